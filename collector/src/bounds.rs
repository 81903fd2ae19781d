//! What a client can make the collector hold and write, as formulas of
//! the flags: the figures collector/README.md ("Memory bounds") states and
//! `tests/memory_bound.rs` checks against the process's RSS.
//!
//! The identity strings (agent id, hostname) are repeated in every line,
//! so the bounds take their longest allowed lengths as parameters: the
//! collector's own bound on them, or `--max-frame` when there is none (a
//! Hello must fit in one frame). JSON escapes a byte into at most 6
//! (`\u0001`), which is the factor used for every client string.

use crate::config::Config;
// The line's own bounds live with the line format; named here too, where
// the formulas use them.
pub use crate::line::{line_max, ESCAPE, LINE_FIXED};

/// Bytes per connection that do not depend on the flags: the read buffer
/// (at most two [`crate::conn::READ_CHUNK`]s), Pongs queued for the Pings of
/// one read, the task, its command queue and session state.
pub const CONNECTION_FIXED: usize = 128 * 1024;

/// Most bytes of the lines of one Batch: each of at most
/// `--max-batch-records` lines has [`LINE_FIXED`] plus the escaped
/// identity, and the payloads, escaped, are at most [`ESCAPE`] times the
/// frame; plus the line ends table (a `usize` per record).
pub fn batch_lines_max(cfg: &Config, id_max: usize, host_max: usize) -> usize {
    let r = cfg.max_batch_records as usize;
    r * (LINE_FIXED + ESCAPE * (id_max + host_max) + std::mem::size_of::<usize>()) + ESCAPE * cfg.max_frame as usize
}

/// Most bytes one agent connection holds: [`CONNECTION_FIXED`], the frame
/// decoder's buffer (`--max-frame`), the Hello's strings kept for the
/// session and the registry (at most 2 x `--max-frame`), and the lines
/// waiting for the sink: up to `--max-inflight-bytes`, plus the one batch
/// that crossed it.
pub fn connection_max(cfg: &Config, id_max: usize, host_max: usize) -> usize {
    CONNECTION_FIXED + 3 * cfg.max_frame as usize + cfg.max_inflight_bytes + batch_lines_max(cfg, id_max, host_max)
}

/// Most bytes the connections that have not said Hello yet hold: at most
/// `--max-handshakes` of them, each [`CONNECTION_FIXED`] and a decoder
/// that may have to hold a whole Hello (`--max-frame`).
pub fn handshakes_max(cfg: &Config) -> usize {
    cfg.max_handshakes * (CONNECTION_FIXED + cfg.max_frame as usize)
}

/// Most bytes the collector holds because of its agent connections:
/// `--max-connections` times [`connection_max`], [`handshakes_max`], plus the commit thread's
/// append buffer ([`crate::commit::APPEND_CHUNK`] plus one batch's lines),
/// plus one batch being formatted per runtime worker (`workers`) before
/// its spare capacity is given back. Beyond it: the process at rest, and
/// what grows with the number of distinct agents (resume points, registry
/// queue), not with traffic.
pub fn connections_max(cfg: &Config, id_max: usize, host_max: usize, workers: usize) -> usize {
    let batch = batch_lines_max(cfg, id_max, host_max);
    cfg.max_connections * connection_max(cfg, id_max, host_max) + handshakes_max(cfg) + crate::commit::APPEND_CHUNK + batch + workers * batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::RecordLine;
    use agent_core::heartbeat::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};

    #[test]
    fn the_widest_line_fits_line_fixed() {
        let host = HostStats {
            cpu_permille: Some(u32::MAX), rss_bytes: Some(u64::MAX), open_fds: Some(u32::MAX), load1_centi: Some(u32::MAX),
            load5_centi: Some(u32::MAX), load15_centi: Some(u32::MAX), mem_used_bytes: Some(u64::MAX),
            mem_total_bytes: Some(u64::MAX), tx_bytes_per_sec: Some(u64::MAX), rx_bytes_per_sec: Some(u64::MAX),
        };
        let m = u64::MAX;
        let lib = AgentStats {
            pushed: m, acked: m, dropped_full: m, dropped_too_large: m, dropped_evicted: m, bytes_sent: m, bytes_received: m,
            frames_sent: m, frames_received: m, connections: m, connect_failures: m, last_rtt_ms: Some(u32::MAX),
            decoder_skipped_bytes: m, decoder_bad_crc: m, unknown_kinds: m, malformed: m, events_dropped: m, tasks_unroutable: m,
            protocol_errors: m, ring_used_bytes: u32::MAX, ring_capacity: u32::MAX, tasks_duplicate: m, decoder_oversized: m,
            clock_anomalies: m, peer_incompatible: m, ack_timeouts: m,
        };
        let mut payload = [0u8; 512];
        let n = AgentHeartbeat { host, lib, heartbeat_records: Some(HeartbeatRecords { pushed: m, dropped_full: m, dropped_evicted: m }) }.encode(&mut payload).unwrap().len();
        let (id, hostname) = ("\u{1}".repeat(100), "\"".repeat(50));
        let mut out = Vec::new();
        let widest = |t: u32, p: &[u8], out: &mut Vec<u8>| {
            out.clear();
            RecordLine { agent: &id, host: &hostname, seq: u64::MAX, data_type: t, ts: u64::MAX, recv: u64::MAX, payload: p }.write(out);
            out.len()
        };
        let hb = widest(agent_core::data_type::AGENT_HEARTBEAT, &payload[..n], &mut out);
        assert!(out.windows(11).any(|w| w == b"\"heartbeat\""), "decoded");
        assert!(hb <= LINE_FIXED + ESCAPE * (id.len() + hostname.len()), "{hb} bytes");
        // Every other kind: fixed part plus at most 6 bytes per payload byte.
        for (t, p) in [(2001u32, vec![1u8; 300]), (2001, vec![0xff; 300]), (1050, [&[200, 1][..], &[1; 200], &[0, 90], &[1; 90]].concat())] {
            let len = widest(t, &p, &mut out);
            assert!(len <= LINE_FIXED + ESCAPE * (id.len() + hostname.len() + p.len()), "type {t}: {len} bytes");
        }
    }
}

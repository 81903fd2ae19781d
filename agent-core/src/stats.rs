//! Statistics: the host's ([`HostStats`]), the library's own counters
//! ([`AgentStats`], [`HeartbeatRecords`]) and the payload that carries them
//! upstream ([`AgentHeartbeat`]), with its layout bound.
//!
//! Every `heartbeat_interval` the agent pushes one record of type 1000
//! ([`AgentHeartbeat`]) and one of type 1001 per registered plugin (the
//! timer is `Timer::Heartbeat` in `agent/timers.rs`, the records are built
//! in `agent/heartbeat.rs`). Heartbeats ride the ring like any record;
//! under `DropOldest` the newest agent heartbeat is never evicted. Their
//! byte layout (postcard's, field order as declared here) is written and
//! read by [`crate::wire::codec`]: [`AgentHeartbeat::encode`],
//! [`AgentHeartbeat::decode`].
//!
//! Host stats are supplied by the caller (`Agent::set_host_stats`), who
//! knows how to read them on its platform; every field is optional.

use serde::{Deserialize, Serialize};

/// Largest encoded [`AgentHeartbeat`] (every field present at its maximum).
pub const MAX_HEARTBEAT_LEN: usize = 384;

/// Host and process statistics, each optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStats {
    /// CPU used by the agent's process, in per-mille of one core.
    pub cpu_permille: Option<u32>,
    /// Resident set size of the agent's process, bytes.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors of the agent's process.
    pub open_fds: Option<u32>,
    /// 1-minute load average x 100.
    pub load1_centi: Option<u32>,
    /// 5-minute load average x 100.
    pub load5_centi: Option<u32>,
    /// 15-minute load average x 100.
    pub load15_centi: Option<u32>,
    /// Memory in use on the host, bytes.
    pub mem_used_bytes: Option<u64>,
    /// Total memory of the host, bytes.
    pub mem_total_bytes: Option<u64>,
    /// The host's network transmit rate (its interfaces but loopback, all
    /// processes), bytes per second, as the caller measured it.
    pub tx_bytes_per_sec: Option<u64>,
    /// The host's network receive rate, bytes per second, likewise.
    pub rx_bytes_per_sec: Option<u64>,
}

/// The library's own counters, as reported upstream and by `Agent::stats`.
/// All counts are since the agent was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Records stored in the ring.
    pub pushed: u64,
    /// Records acked by the server.
    pub acked: u64,
    /// Records refused: ring full.
    pub dropped_full: u64,
    /// Records refused: larger than `max_record`.
    pub dropped_too_large: u64,
    /// Never-sent records evicted by `DropOldest`.
    pub dropped_evicted: u64,
    /// Bytes handed to the caller to send.
    pub bytes_sent: u64,
    /// Bytes received from the caller.
    pub bytes_received: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Valid frames received.
    pub frames_received: u64,
    /// Handshakes completed.
    pub connections: u64,
    /// Connection attempts or connections that failed.
    pub connect_failures: u64,
    /// Round-trip time of the last Ping, ms.
    pub last_rtt_ms: Option<u32>,
    /// Bytes the frame decoder skipped while resynchronizing.
    pub decoder_skipped_bytes: u64,
    /// Frames with a bad CRC.
    pub decoder_bad_crc: u64,
    /// Frames of a kind this agent does not know (skipped).
    pub unknown_kinds: u64,
    /// Frames whose body could not be read, or that were unexpected in the
    /// current state (skipped).
    pub malformed: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Tasks for a plugin that is not registered.
    pub tasks_unroutable: u64,
    /// Connections ended because the server broke the protocol: a
    /// malformed or unexpected frame, an Ack beyond what was sent, a resume
    /// point the agent cannot have produced.
    pub protocol_errors: u64,
    /// Bytes in use in the ring.
    pub ring_used_bytes: u32,
    /// Ring capacity in bytes.
    pub ring_capacity: u32,
    /// Tasks ignored because a task with the same token was received
    /// recently (the server resent it; its result is already queued).
    pub tasks_duplicate: u64,
    /// Frame candidates whose declared size exceeded the receive buffer.
    pub decoder_oversized: u64,
    /// Caller instants that were clamped (far ahead) or re-anchored (far
    /// back); see [`crate::time::AgentClock`].
    pub clock_anomalies: u64,
    /// Handshakes ended because the server cannot carry this agent's
    /// records (`Accept.max_frame` below `Hello.min_frame`) or speaks
    /// another protocol version.
    pub peer_incompatible: u64,
    /// Connections ended by the ack timeout.
    pub ack_timeouts: u64,
}

/// The agent's own heartbeat records (types 1000 and 1001) among the
/// record counts of [`AgentStats`]: `pushed`, `dropped_full` and
/// `dropped_evicted` there count every record, these only the heartbeats,
/// so the application's own records are the difference. (Heartbeats are
/// never too large: `dropped_too_large` is the application's alone.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRecords {
    /// Heartbeat records stored in the ring.
    pub pushed: u64,
    /// Heartbeat records refused: ring full (`RejectNew`).
    pub dropped_full: u64,
    /// Never-sent heartbeat records evicted by `DropOldest` (never the
    /// newest agent heartbeat).
    pub dropped_evicted: u64,
}

/// Payload of an agent heartbeat record (type 1000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    /// What the caller reported about the host.
    pub host: HostStats,
    /// The library's counters.
    pub lib: AgentStats,
    /// Revision 3: the heartbeat records among `lib`'s record counts.
    /// Always present from this agent; `None` when decoding a revision-2
    /// payload (an older agent: unknown, not zero).
    pub heartbeat_records: Option<HeartbeatRecords>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_case_fits_bound() {
        let host = HostStats {
            cpu_permille: Some(u32::MAX),
            rss_bytes: Some(u64::MAX),
            open_fds: Some(u32::MAX),
            load1_centi: Some(u32::MAX),
            load5_centi: Some(u32::MAX),
            load15_centi: Some(u32::MAX),
            mem_used_bytes: Some(u64::MAX),
            mem_total_bytes: Some(u64::MAX),
            tx_bytes_per_sec: Some(u64::MAX),
            rx_bytes_per_sec: Some(u64::MAX),
        };
        let lib = AgentStats {
            pushed: u64::MAX, acked: u64::MAX, dropped_full: u64::MAX, dropped_too_large: u64::MAX,
            dropped_evicted: u64::MAX, bytes_sent: u64::MAX, bytes_received: u64::MAX, frames_sent: u64::MAX,
            frames_received: u64::MAX, connections: u64::MAX, connect_failures: u64::MAX, last_rtt_ms: Some(u32::MAX),
            decoder_skipped_bytes: u64::MAX, decoder_bad_crc: u64::MAX, unknown_kinds: u64::MAX, malformed: u64::MAX,
            events_dropped: u64::MAX, tasks_unroutable: u64::MAX, protocol_errors: u64::MAX,
            ring_used_bytes: u32::MAX, ring_capacity: u32::MAX, tasks_duplicate: u64::MAX,
            decoder_oversized: u64::MAX, clock_anomalies: u64::MAX, peer_incompatible: u64::MAX,
            ack_timeouts: u64::MAX,
        };
        let records = HeartbeatRecords { pushed: u64::MAX, dropped_full: u64::MAX, dropped_evicted: u64::MAX };
        let hb = AgentHeartbeat { host, lib, heartbeat_records: Some(records) };
        let mut buf = [0u8; MAX_HEARTBEAT_LEN];
        let n = hb.encode(&mut buf).unwrap().len();
        assert!(n <= MAX_HEARTBEAT_LEN);
        assert_eq!(AgentHeartbeat::decode(&buf[..n]), Some(hb));
        let mut pc = [0u8; MAX_HEARTBEAT_LEN];
        assert_eq!(postcard::to_slice(&hb, &mut pc).unwrap(), &buf[..n], "hand-written = postcard");
        let small = AgentHeartbeat::default().encode(&mut buf).unwrap().len();
        assert!(small < 40, "an idle heartbeat is small: {small}");
    }

    #[test]
    fn a_revision_2_payload_decodes_with_unknown_heartbeat_records() {
        let lib = AgentStats { pushed: 9, ack_timeouts: 3, ..Default::default() };
        let records = HeartbeatRecords { pushed: 4, dropped_full: 1, dropped_evicted: 2 };
        let hb = AgentHeartbeat { host: HostStats::default(), lib, heartbeat_records: Some(records) };
        let mut buf = [0u8; MAX_HEARTBEAT_LEN];
        let n = hb.encode(&mut buf).unwrap().len();
        // Revision 2 appends one option (tag 1) and three varints.
        assert_eq!(&buf[n - 4..n], &[1, 4, 1, 2]);
        assert_eq!(AgentHeartbeat::decode(&buf[..n]), Some(hb));
        // An older agent's payload ends after `lib`: the new field is
        // unknown, every other one is read.
        let old = AgentHeartbeat::decode(&buf[..n - 4]).unwrap();
        assert_eq!(old, AgentHeartbeat { heartbeat_records: None, ..hb });
        // Cut inside `lib`: not a heartbeat.
        assert_eq!(AgentHeartbeat::decode(&buf[..n - 5]), None);
    }
}

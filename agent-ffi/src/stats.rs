//! `ea_stats`: one flat snapshot of the agent's status and counters, and
//! `ea_host_stats`: what the caller reports about its host.

use agent_core::{Agent, AgentStats, HostStats, StateKind};

/// Where the session is. Numbers are fixed.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_state {
    /// Waiting before the next attempt.
    EA_STATE_BACKOFF = 0,
    /// Waiting for the caller to open the transport.
    EA_STATE_CONNECTING = 1,
    /// Hello sent, waiting for Accept.
    EA_STATE_HANDSHAKING = 2,
    /// Records flow.
    EA_STATE_CONNECTED = 3,
    /// The give-up limit was reached.
    EA_STATE_GAVE_UP = 4,
    /// Closed by the caller.
    EA_STATE_CLOSED = 5,
}

impl From<StateKind> for ea_state {
    fn from(s: StateKind) -> Self {
        match s {
            StateKind::Backoff => ea_state::EA_STATE_BACKOFF,
            StateKind::Connecting => ea_state::EA_STATE_CONNECTING,
            StateKind::Handshaking => ea_state::EA_STATE_HANDSHAKING,
            StateKind::Connected => ea_state::EA_STATE_CONNECTED,
            StateKind::GaveUp => ea_state::EA_STATE_GAVE_UP,
            StateKind::Closed => ea_state::EA_STATE_CLOSED,
        }
    }
}

/// A snapshot of the agent: state, ring occupancy and every counter. All
/// counts are since `ea_agent_init`. Accounting invariant, at every moment:
/// `pushed == acked + dropped_evicted + ring_records`; refused records
/// (`dropped_full`, `dropped_too_large`) were never pushed. `pushed`,
/// `dropped_full` and `dropped_evicted` count every record, the agent's own
/// heartbeat records too; `heartbeats_*` count those alone, so the
/// application's own are `pushed - heartbeats_pushed` and so on
/// (`dropped_too_large` is never a heartbeat).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ea_stats {
    /// `ea_state` value.
    pub state: u32,
    /// 1 when `endpoint` is set (not in GAVE_UP or CLOSED).
    pub has_endpoint: u8,
    /// The endpoint being tried or used (the next one while in BACKOFF).
    pub endpoint: u8,
    /// 1 when every pushed record is acked or dropped.
    pub drained: u8,
    /// 1 when `last_rtt_ms` is set.
    pub has_last_rtt: u8,
    /// Round-trip time of the last Ping, ms.
    pub last_rtt_ms: u32,
    /// Records in the ring (pending, in flight or awaiting resend).
    pub ring_records: u64,
    /// Records in the ring not yet sent on this connection.
    pub ring_pending_records: u64,
    /// Records sent and not yet acked.
    pub ring_inflight_records: u64,
    /// Bytes of records in flight.
    pub ring_inflight_bytes: u64,
    /// The oldest sequence number still unacked.
    pub first_unacked_seq: u64,
    /// The sequence number the next new record will get.
    pub next_seq: u64,
    /// Bytes in use in the ring.
    pub ring_used_bytes: u32,
    /// Ring capacity, bytes.
    pub ring_capacity: u32,
    /// Records stored in the ring.
    pub pushed: u64,
    /// Records acked by the server.
    pub acked: u64,
    /// Records refused: ring full.
    pub dropped_full: u64,
    /// Records refused: larger than `max_record`.
    pub dropped_too_large: u64,
    /// Never-sent records evicted by `EA_OVERFLOW_DROP_OLDEST`.
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
    /// Bytes the frame decoder skipped while resynchronizing.
    pub decoder_skipped_bytes: u64,
    /// Frames with a bad CRC.
    pub decoder_bad_crc: u64,
    /// Frames of a kind this agent does not know (skipped).
    pub unknown_kinds: u64,
    /// Frames unreadable or unexpected in the current state (skipped).
    pub malformed: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Tasks for a plugin that is not registered.
    pub tasks_unroutable: u64,
    /// Acks naming a sequence number never sent, and other protocol errors.
    pub protocol_errors: u64,
    /// Tasks ignored as resent (same token seen recently).
    pub tasks_duplicate: u64,
    /// Frame candidates whose declared size exceeded the receive buffer.
    pub decoder_oversized: u64,
    /// Caller instants clamped (far ahead) or re-anchoring (far back).
    pub clock_anomalies: u64,
    /// Handshakes ended because the server cannot carry this agent's
    /// records or speaks another protocol version.
    pub peer_incompatible: u64,
    /// Connections ended by the ack timeout.
    pub ack_timeouts: u64,
    /// Of `pushed`: the agent's own heartbeat records (agent and plugin
    /// heartbeats, types 1000 and 1001).
    pub heartbeats_pushed: u64,
    /// Of `dropped_full`: heartbeat records refused (ring full).
    pub heartbeats_dropped_full: u64,
    /// Of `dropped_evicted`: never-sent heartbeat records evicted.
    pub heartbeats_dropped_evicted: u64,
}

impl ea_stats {
    /// The snapshot of `agent`.
    pub fn of(agent: &Agent<'_>) -> ea_stats {
        let mut o = ea_stats::default();
        o.fill(agent);
        o
    }

    /// Writes the snapshot of `agent` into `self`.
    pub fn fill(&mut self, agent: &Agent<'_>) {
        // SAFETY: a reference: valid and aligned for writes.
        unsafe { ea_stats::write_to(self, agent) }
    }

    /// Writes the snapshot of `agent` to `*out`, every field (so the
    /// caller's struct needs no clearing first; padding bytes are left as
    /// they were), through the pointer: `ea_agent_stats` fills the
    /// caller's struct in place, with no value built aside and copied. The
    /// counters `ea_stats` carries unchanged go by one loop over
    /// `COPIED_COUNTERS`, the rest field by field.
    ///
    /// # Safety
    /// `out` is valid for writes of an `ea_stats` and aligned.
    pub(crate) unsafe fn write_to(out: *mut ea_stats, agent: &Agent<'_>) {
        let stats = &agent.stats();
        // SAFETY: forwarded.
        unsafe { copy_counters(out, stats) };
        let ring = agent.ring();
        // SAFETY: the caller's contract; assignments through the pointer
        // to plain integer fields (no reference made, nothing dropped).
        // Each value is read just before it is written: `out` may alias
        // the agent as far as the compiler knows, so values read before
        // the first write would all be held (spilled) until written.
        unsafe {
            (*out).state = ea_state::from(agent.state()) as u32;
            let endpoint = agent.endpoint();
            (*out).has_endpoint = u8::from(endpoint.is_some());
            (*out).endpoint = endpoint.unwrap_or(0);
            (*out).drained = u8::from(agent.is_drained());
            (*out).has_last_rtt = u8::from(stats.last_rtt_ms.is_some());
            (*out).last_rtt_ms = stats.last_rtt_ms.unwrap_or(0);
            (*out).ring_records = ring.len();
            (*out).ring_pending_records = ring.pending_records();
            (*out).ring_inflight_records = ring.inflight_records();
            (*out).ring_inflight_bytes = ring.inflight_bytes() as u64;
            (*out).first_unacked_seq = ring.first_unacked_seq();
            (*out).next_seq = ring.next_seq();
            (*out).ring_used_bytes = stats.ring_used_bytes;
            (*out).ring_capacity = stats.ring_capacity;
            (*out).heartbeats_pushed = agent.heartbeat_records().pushed;
            (*out).heartbeats_dropped_full = agent.heartbeat_records().dropped_full;
            (*out).heartbeats_dropped_evicted = agent.heartbeat_records().dropped_evicted;
        }
    }
}

/// Copies every counter in `COPIED_COUNTERS` from `stats` to `*out`: as one
/// block when they lie in both structs as one run in the same order (as
/// they do where `AgentStats`' layout puts its `u64` counters together,
/// checked at compile time: `COPIED_RUN`), else one by one.
///
/// # Safety
/// `out` is valid for writes of an `ea_stats` and aligned.
unsafe fn copy_counters(out: *mut ea_stats, stats: &AgentStats) {
    let from = (stats as *const AgentStats).cast::<u64>();
    let to = out.cast::<u64>();
    if let Some((to_word, from_word)) = COPIED_RUN {
        // SAFETY: `COPIED_RUN` is `Some` only when the counters are
        // `COPIED_COUNTERS.len()` consecutive `u64` words from these
        // indices in both structs (each pair checked by
        // `copied_counters!`), so the block is in bounds of both, which do
        // not overlap (`out` is the caller's, `stats` a value). Copied as
        // bytes: the same bytes, and on Arm through `__aeabi_memcpy`, which
        // every image has, not the 4-byte `__aeabi_memcpy4` (a helper of
        // its own that a copy between `u32` pointers would link).
        unsafe {
            core::ptr::copy_nonoverlapping(
                from.add(from_word as usize).cast::<u8>(),
                to.add(to_word as usize).cast::<u8>(),
                COPIED_COUNTERS.len() * 8,
            )
        };
        return;
    }
    // SAFETY: forwarded.
    unsafe { copy_each(out, stats) }
}

/// `copy_counters` one counter at a time.
///
/// # Safety
/// As for `copy_counters`.
unsafe fn copy_each(out: *mut ea_stats, stats: &AgentStats) {
    let from = (stats as *const AgentStats).cast::<u64>();
    let to = out.cast::<u64>();
    for &(to_word, from_word) in COPIED_COUNTERS {
        // SAFETY: each pair is the index, in 8-byte words, of a `u64`
        // field of `ea_stats` and of one of `AgentStats`
        // (`copied_counters!` checks the types and the alignment), so the
        // read and the write are in bounds and aligned (`out` by the
        // caller's contract).
        unsafe { to.add(to_word as usize).write(from.add(from_word as usize).read()) };
    }
}

/// The first pair of `COPIED_COUNTERS` when every pair follows the one
/// before it by one word on both sides (one run in the same order), else
/// `None`.
const COPIED_RUN: Option<(u8, u8)> = {
    let c = COPIED_COUNTERS;
    let mut i = 1;
    let mut run = !c.is_empty();
    while run && i < c.len() {
        run = c[i].0 as usize == c[0].0 as usize + i && c[i].1 as usize == c[0].1 as usize + i;
        i += 1;
    }
    if run {
        Some(c[0])
    } else {
        None
    }
};

/// The word index (8 bytes) of a `u64` field at byte offset `at`, checked
/// aligned and within a byte.
const fn word(at: usize) -> u8 {
    assert!(at.is_multiple_of(8) && at / 8 < 256);
    (at / 8) as u8
}

/// `COPIED_COUNTERS` from the names of the counters `AgentStats` and
/// `ea_stats` share (a `u64` under the same name in both), followed by the
/// other fields of `AgentStats`, which `fill` writes itself; and a function
/// (never called) that checks each shared counter's type and names every
/// field of `AgentStats` without `..`, so that a counter added there fails
/// to compile here until `ea_stats` has it.
macro_rules! copied_counters {
    (copied: $($c:ident),* ; own: $($o:ident),* $(,)?) => {
        /// `(ea_stats word, AgentStats word)` of every shared counter: one
        /// table and one loop instead of a load and a store per counter
        /// (flash).
        const COPIED_COUNTERS: &[(u8, u8)] = &[$(
            (word(core::mem::offset_of!(ea_stats, $c)), word(core::mem::offset_of!(AgentStats, $c))),
        )*];

        #[allow(dead_code)]
        fn counter_types(a: &AgentStats, o: &mut ea_stats) {
            $(let _: u64 = a.$c; o.$c = a.$c;)*
            let AgentStats { $($c: _,)* $($o: _,)* } = a;
        }

        /// Each counter, given a value no other has, lands in its own
        /// field, and nothing else of `ea_stats` is written.
        #[test]
        fn every_copied_counter_lands_in_its_own_field() {
            let mut a = AgentStats::default();
            let mut n = 0x0102_0304_0506_0708u64;
            $(n = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1); a.$c = n;)*
            let mut o = ea_stats::default();
            // SAFETY: a reference.
            unsafe { copy_counters(&mut o, &a) };
            let mut want = ea_stats::default();
            $(want.$c = a.$c;)*
            assert_eq!(o, want);
            // The one-by-one copy (where the layout gives no single run)
            // agrees.
            let mut each = ea_stats::default();
            // SAFETY: a reference.
            unsafe { copy_each(&mut each, &a) };
            assert_eq!(each, want);
        }
    };
}

copied_counters! {
    copied: pushed, acked, dropped_full, dropped_too_large, dropped_evicted, bytes_sent, bytes_received,
        frames_sent, frames_received, connections, connect_failures, decoder_skipped_bytes, decoder_bad_crc,
        unknown_kinds, malformed, events_dropped, tasks_unroutable, protocol_errors, tasks_duplicate,
        decoder_oversized, clock_anomalies, peer_incompatible, ack_timeouts;
    own: last_rtt_ms, ring_used_bytes, ring_capacity,
}

/// Host statistics for the following heartbeats. Each value counts only
/// when its `has_*` flag is non-zero.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct ea_host_stats {
    /// Non-zero when `cpu_permille` is set.
    pub has_cpu_permille: u8,
    /// Non-zero when `open_fds` is set.
    pub has_open_fds: u8,
    /// Non-zero when `load1_centi` is set.
    pub has_load1_centi: u8,
    /// Non-zero when `load5_centi` is set.
    pub has_load5_centi: u8,
    /// Non-zero when `load15_centi` is set.
    pub has_load15_centi: u8,
    /// Non-zero when `rss_bytes` is set.
    pub has_rss_bytes: u8,
    /// Non-zero when `mem_used_bytes` is set.
    pub has_mem_used_bytes: u8,
    /// Non-zero when `mem_total_bytes` is set.
    pub has_mem_total_bytes: u8,
    /// Non-zero when `tx_bytes_per_sec` is set.
    pub has_tx_bytes_per_sec: u8,
    /// Non-zero when `rx_bytes_per_sec` is set.
    pub has_rx_bytes_per_sec: u8,
    /// CPU used by the agent's process, per-mille of one core.
    pub cpu_permille: u32,
    /// Open file descriptors of the agent's process.
    pub open_fds: u32,
    /// 1-minute load average x 100.
    pub load1_centi: u32,
    /// 5-minute load average x 100.
    pub load5_centi: u32,
    /// 15-minute load average x 100.
    pub load15_centi: u32,
    /// Resident set size of the agent's process, bytes.
    pub rss_bytes: u64,
    /// Memory in use on the host, bytes.
    pub mem_used_bytes: u64,
    /// Total memory of the host, bytes.
    pub mem_total_bytes: u64,
    /// The host's network transmit rate, bytes per second: what the host
    /// sends on its network interfaces (not loopback), all processes, as
    /// the caller measured it over its own interval. The agent's own
    /// traffic is `ea_stats.bytes_sent`.
    pub tx_bytes_per_sec: u64,
    /// The host's network receive rate, bytes per second, measured like
    /// `tx_bytes_per_sec`.
    pub rx_bytes_per_sec: u64,
}

impl ea_host_stats {
    /// The core's host stats.
    pub fn to_core(&self) -> HostStats {
        let mut h = HostStats::default();
        self.write_core(&mut h);
        h
    }

    /// Writes every field of `h`: each value whose `has_*` flag is
    /// non-zero, `None` for the others. One call per field, in place (a
    /// struct literal loads every field before storing any, spilling most
    /// of them on a 32-bit MCU, and is then copied).
    pub(crate) fn write_core(&self, h: &mut HostStats) {
        set(&mut h.cpu_permille, self.has_cpu_permille, self.cpu_permille);
        set(&mut h.rss_bytes, self.has_rss_bytes, self.rss_bytes);
        set(&mut h.open_fds, self.has_open_fds, self.open_fds);
        set(&mut h.load1_centi, self.has_load1_centi, self.load1_centi);
        set(&mut h.load5_centi, self.has_load5_centi, self.load5_centi);
        set(&mut h.load15_centi, self.has_load15_centi, self.load15_centi);
        set(&mut h.mem_used_bytes, self.has_mem_used_bytes, self.mem_used_bytes);
        set(&mut h.mem_total_bytes, self.has_mem_total_bytes, self.mem_total_bytes);
        set(&mut h.tx_bytes_per_sec, self.has_tx_bytes_per_sec, self.tx_bytes_per_sec);
        set(&mut h.rx_bytes_per_sec, self.has_rx_bytes_per_sec, self.rx_bytes_per_sec);
    }
}

/// Never called: names every field of `HostStats` (no `..`), so that a
/// field added there fails to compile here until `write_core` sets it.
#[allow(dead_code)]
fn every_host_field_written(h: HostStats) {
    let HostStats {
        cpu_permille: _,
        rss_bytes: _,
        open_fds: _,
        load1_centi: _,
        load5_centi: _,
        load15_centi: _,
        mem_used_bytes: _,
        mem_total_bytes: _,
        tx_bytes_per_sec: _,
        rx_bytes_per_sec: _,
    } = h;
}

/// `*slot = v` if `has` is non-zero, else `None`.
#[inline(never)]
fn set<T>(slot: &mut Option<T>, has: u8, v: T) {
    *slot = (has != 0).then_some(v);
}

#[cfg(test)]
mod host_tests {
    use super::*;

    /// The conversion as it was written before `write_core`: a struct
    /// literal, field by field.
    fn reference(s: &ea_host_stats) -> HostStats {
        fn opt<T>(has: u8, v: T) -> Option<T> {
            (has != 0).then_some(v)
        }
        HostStats {
            cpu_permille: opt(s.has_cpu_permille, s.cpu_permille),
            rss_bytes: opt(s.has_rss_bytes, s.rss_bytes),
            open_fds: opt(s.has_open_fds, s.open_fds),
            load1_centi: opt(s.has_load1_centi, s.load1_centi),
            load5_centi: opt(s.has_load5_centi, s.load5_centi),
            load15_centi: opt(s.has_load15_centi, s.load15_centi),
            mem_used_bytes: opt(s.has_mem_used_bytes, s.mem_used_bytes),
            mem_total_bytes: opt(s.has_mem_total_bytes, s.mem_total_bytes),
            tx_bytes_per_sec: opt(s.has_tx_bytes_per_sec, s.tx_bytes_per_sec),
            rx_bytes_per_sec: opt(s.has_rx_bytes_per_sec, s.rx_bytes_per_sec),
        }
    }

    /// Every combination of flags (each a different non-zero byte when
    /// set), every value distinct: `write_core` gives the reference, over
    /// stats that were all `None` and over stats that were all `Some`.
    #[test]
    fn write_core_matches_the_field_by_field_conversion() {
        let full = HostStats {
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
        for mask in 0u32..1 << 10 {
            let f = |bit: u32| if mask & (1 << bit) != 0 { bit as u8 + 1 } else { 0 };
            let s = ea_host_stats {
                has_cpu_permille: f(0),
                has_open_fds: f(1),
                has_load1_centi: f(2),
                has_load5_centi: f(3),
                has_load15_centi: f(4),
                has_rss_bytes: f(5),
                has_mem_used_bytes: f(6),
                has_mem_total_bytes: f(7),
                has_tx_bytes_per_sec: f(8),
                has_rx_bytes_per_sec: f(9),
                cpu_permille: 11,
                open_fds: 12,
                load1_centi: 13,
                load5_centi: 14,
                load15_centi: 15,
                rss_bytes: 0x1_0000_0016,
                mem_used_bytes: 0x2_0000_0017,
                mem_total_bytes: 0x3_0000_0018,
                tx_bytes_per_sec: 0x4_0000_0019,
                rx_bytes_per_sec: 0x5_0000_001a,
            };
            let want = reference(&s);
            for start in [HostStats::default(), full] {
                let mut h = start;
                s.write_core(&mut h);
                assert_eq!(h, want, "mask {mask:#x}");
            }
            assert_eq!(s.to_core(), want);
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::handle::{ea_agent, EA_AGENT_STORAGE_WORDS};
    use crate::result::ea_result::EA_OK;
    use std::vec;

    /// `ea_agent_stats` writes every field: a struct full of 0xAA bytes
    /// comes out equal to one that was all zero.
    #[test]
    fn ea_agent_stats_writes_every_field() {
        let mut agent = std::boxed::Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] });
        let (mut ring, mut rx, mut events) = (vec![0u8; 4096], vec![0u8; 1024], vec![0u8; 256]);
        let cfg = crate::ea_config_default();
        // SAFETY: all-zero is a valid ea_identity.
        let id: crate::ea_identity = unsafe { core::mem::zeroed() };
        let a = &mut *agent as *mut ea_agent;
        // SAFETY: every buffer outlives the agent (deinit below); the
        // stats structs are plain integers, any bytes are valid.
        unsafe {
            let r = crate::ea_agent_init(a, size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(), rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len());
            assert_eq!(r, EA_OK);
            assert_eq!(crate::ea_agent_push(a, 0, 2001, 0, b"hi".as_ptr(), 2), EA_OK);
            let mut zero: ea_stats = core::mem::zeroed();
            let mut junk = core::mem::MaybeUninit::<ea_stats>::uninit();
            junk.as_mut_ptr().cast::<u8>().write_bytes(0xAA, size_of::<ea_stats>());
            let mut junk = junk.assume_init();
            assert_eq!(crate::ea_agent_stats(a, &mut zero), EA_OK);
            assert_eq!(crate::ea_agent_stats(a, &mut junk), EA_OK);
            assert_eq!(junk, zero);
            assert_eq!(zero.pushed, 1);
            assert_eq!(crate::ea_agent_deinit(a), EA_OK);
        }
    }
}

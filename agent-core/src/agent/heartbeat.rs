//! Heartbeats: what the heartbeat timer (`Timer::Heartbeat` in
//! `timers.rs`) pushes, the agent's heartbeat record (type 1000, the
//! counters of [`crate::stats`]) and one record per registered plugin
//! (type 1001). The session policy the ring applies to them is
//! `ring_policy.rs`.

use super::*;
use crate::wire::codec::{BodyWriter, WriteBody};

impl Core<'_> {
    /// Pushes the agent's heartbeat record and one per registered plugin.
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    pub(super) fn heartbeat(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        let mut buf = crate::mem::Scratch::<MAX_HEARTBEAT_LEN>::zeroed();
        let buf = &mut buf.0;
        let n = write_body(&OwnHeartbeat { core: self, decoder }, buf);
        let ts = self.wall();
        if let Some(body) = n.and_then(|n| buf.get(..n)) {
            let _ = self.push(now, &Record::new(data_type::AGENT_HEARTBEAT, ts, body));
        }
        for i in 0..crate::plugin::MAX_PLUGINS {
            let Some(p) = self.plugins.get(i) else { continue };
            let phb = PluginHeartbeat { name: Text::new(p.name), version: Text::new(p.version), pid: p.pid, status: p.status };
            if let Some(body) = write_body(&phb, buf).and_then(|n| buf.get(..n)) {
                let _ = self.push(now, &Record::new(data_type::PLUGIN_HEARTBEAT, ts, body));
            }
        }
    }
}

/// The agent's heartbeat body ([`crate::stats::AgentHeartbeat`], with
/// `heartbeat_records` present), written in wire order straight from the
/// counters [`Core::stats_with`] gathers: the same bytes as
/// `HeartbeatParts` over `stats_with`'s [`AgentStats`], without building
/// that value first.
pub(super) struct OwnHeartbeat<'c, 'r, 'd> {
    pub(super) core: &'c Core<'r>,
    pub(super) decoder: &'c FrameDecoder<'d>,
}

impl WriteBody for OwnHeartbeat<'_, '_, '_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        let c = self.core;
        c.host.write(w);
        // Each counter read where it is written (not copied up front,
        // which spills them around the writer's calls).
        let r = || c.ring.counters();
        let s = &c.stats;
        // `AgentStats`, field by field in its declared order.
        w.uint(r().pushed);
        w.uint(r().acked);
        w.uint(r().dropped_full);
        w.uint(r().dropped_too_large);
        w.uint(r().dropped_evicted);
        w.uint(s.bytes_sent);
        w.uint(s.bytes_received);
        w.uint(s.frames_sent);
        w.uint(s.frames_received);
        w.uint(s.connections);
        w.uint(s.connect_failures);
        w.option(s.last_rtt_ms.map(u64::from));
        w.uint(self.decoder.stats().skipped_bytes);
        w.uint(self.decoder.stats().bad_crc);
        w.uint(s.unknown_kinds);
        w.uint(s.malformed);
        w.uint(s.events_dropped);
        w.uint(s.tasks_unroutable);
        w.uint(s.protocol_errors);
        w.uint(u64::from(u32::try_from(c.ring.used_bytes()).unwrap_or(u32::MAX)));
        w.uint(u64::from(u32::try_from(c.ring.capacity()).unwrap_or(u32::MAX)));
        w.uint(s.tasks_duplicate);
        w.uint(self.decoder.stats().oversized);
        w.uint(c.clock.anomalies());
        w.uint(s.peer_incompatible);
        w.uint(s.ack_timeouts);
        // `heartbeat_records`: an option's tag 1, then its three fields.
        let h = c.ring.heartbeats();
        w.option(Some(h.pushed));
        w.uint(h.dropped_full);
        w.uint(h.dropped_evicted);
    }
}

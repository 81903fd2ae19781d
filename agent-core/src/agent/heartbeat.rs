//! Heartbeats: what the heartbeat timer (`Timer::Heartbeat` in
//! `timers.rs`) pushes, the agent's heartbeat record (type 1000, the
//! counters of [`crate::stats`]) and one record per registered plugin
//! (type 1001). The session policy the ring applies to them is
//! `ring_policy.rs`.

use super::*;

impl Core<'_> {
    /// Pushes the agent's heartbeat record and one per registered plugin.
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    pub(super) fn heartbeat(&mut self, now: Instant, lib: &AgentStats) {
        let mut buf = [0u8; MAX_HEARTBEAT_LEN];
        let n = {
            let parts = crate::wire::codec::HeartbeatParts { host: &self.host, lib, heartbeat_records: Some(self.ring.heartbeats()) };
            write_body(&parts, &mut buf)
        };
        let ts = self.wall();
        if let Some(body) = n.and_then(|n| buf.get(..n)) {
            let _ = self.push(now, &Record::new(data_type::AGENT_HEARTBEAT, ts, body));
        }
        for i in 0..crate::plugin::MAX_PLUGINS {
            let Some(p) = self.plugins.get(i) else { continue };
            let phb = PluginHeartbeat { name: Text::new(p.name), version: Text::new(p.version), pid: p.pid, status: p.status };
            if let Some(body) = write_body(&phb, &mut buf).and_then(|n| buf.get(..n)) {
                let _ = self.push(now, &Record::new(data_type::PLUGIN_HEARTBEAT, ts, body));
            }
        }
    }
}

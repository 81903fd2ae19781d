//! Heartbeats: what the heartbeat timer (`Timer::Heartbeat` in
//! `timers.rs`) pushes, the agent's heartbeat record (type 1000, the
//! counters of [`crate::stats`]) and one record per registered plugin
//! (type 1001); and the session policy the ring applies to them: the ring
//! is a container that keeps one entry and counts one class of types apart
//! on request, and the agent decides which.

use super::*;
use crate::ring::EntryKind;

/// How the agent stores a record of `data_type` in its ring: the newest
/// agent heartbeat is the kept entry ([`EntryKind::Kept`]: `DropOldest`
/// evicts it only for a newer one), every other record is plain.
pub fn ring_entry_kind(data_type: u32) -> EntryKind {
    if data_type == data_type::AGENT_HEARTBEAT {
        EntryKind::Kept
    } else {
        EntryKind::Plain
    }
}

/// The records the agent counts apart in `RingCounters::heartbeats` (and
/// so in [`HeartbeatRecords`]): agent and plugin heartbeats.
pub fn is_heartbeat_record(data_type: u32) -> bool {
    data_type == data_type::AGENT_HEARTBEAT || data_type == data_type::PLUGIN_HEARTBEAT
}

impl Core<'_> {
    /// Pushes the agent's heartbeat record and one per registered plugin.
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    pub(super) fn heartbeat(&mut self, now: Instant, lib: &AgentStats) {
        let mut buf = [0u8; MAX_HEARTBEAT_LEN];
        let ts = self.wall();
        let records = self.ring.counters().heartbeats;
        let parts = crate::wire::codec::HeartbeatParts { host: &self.host, lib, heartbeat_records: Some(&records) };
        if let Some(n) = write_body(&parts, &mut buf) {
            let _ = self.push(now, &Record::new(data_type::AGENT_HEARTBEAT, ts, &buf[..n]));
        }
        for i in 0..crate::plugin::MAX_PLUGINS {
            let Some(p) = self.plugins.get(i) else { continue };
            let phb = PluginHeartbeat { name: p.name, version: p.version, pid: p.pid, status: p.status };
            if let Some(n) = write_body(&phb, &mut buf) {
                let _ = self.push(now, &Record::new(data_type::PLUGIN_HEARTBEAT, ts, &buf[..n]));
            }
        }
    }
}

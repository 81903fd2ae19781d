//! The session policy the ring applies to heartbeat records: the ring is a
//! container that keeps one entry and counts one class of types apart on
//! request, and the agent decides which.

use crate::record::data_type;
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
/// so in [`HeartbeatRecords`](crate::stats::HeartbeatRecords)): agent and plugin heartbeats.
pub fn is_heartbeat_record(data_type: u32) -> bool {
    data_type == data_type::AGENT_HEARTBEAT || data_type == data_type::PLUGIN_HEARTBEAT
}

//! Plugins: named components of the agent that receive tasks and report
//! heartbeats (type 1001) through it.
//!
//! Up to [`MAX_PLUGINS`] plugins can be registered. The agent keeps each
//! one's name, version, pid and status (names borrowed from the caller for
//! the agent's lifetime) and, at every heartbeat tick, pushes one plugin
//! heartbeat record per registered plugin. Tasks whose object name matches a
//! plugin's name are delivered with [`crate::events::TaskTarget::Plugin`].

use crate::text::Text;
use serde::{Deserialize, Serialize};

/// Most plugins registered at once.
pub const MAX_PLUGINS: usize = 4;

/// Handle of a registered plugin (its slot index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PluginId(pub u8);

/// A plugin's lifecycle status as reported in its heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum PluginStatus {
    /// Being started.
    Starting = 0,
    /// Up.
    Running = 1,
    /// Being stopped.
    Stopping = 2,
    /// Not running.
    Stopped = 3,
    /// Failed.
    Error = 4,
}

/// Payload of a plugin heartbeat record (type 1001).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginHeartbeat<'a> {
    /// Plugin name.
    #[serde(borrow)]
    pub name: Text<'a>,
    /// Plugin version.
    #[serde(borrow)]
    pub version: Text<'a>,
    /// Process id (0 if not a process).
    pub pid: u32,
    /// Status.
    pub status: PluginStatus,
}

/// Why a plugin call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PluginError {
    /// All [`MAX_PLUGINS`] slots are taken.
    Full = 1,
    /// No plugin has this id.
    UnknownId = 2,
    /// A plugin of this name is registered already.
    Duplicate = 3,
    /// The name and version together are too long for a plugin heartbeat
    /// (at most [`crate::stats::MAX_HEARTBEAT_LEN`] bytes encoded), so
    /// its heartbeats could never be sent.
    TooLong = 4,
}

impl core::fmt::Display for PluginError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PluginError::Full => "every plugin slot is taken",
            PluginError::UnknownId => "no plugin has this id",
            PluginError::Duplicate => "a plugin of this name is registered already",
            PluginError::TooLong => "name and version too long for a plugin heartbeat",
        })
    }
}

impl PluginHeartbeat<'_> {
    /// The longest this heartbeat encodes to (pid at its longest varint).
    pub fn max_encoded_len(&self) -> usize {
        let field = |n: usize| crate::wire::varint::len_u64(n as u64) + n;
        field(self.name.len()) + field(self.version.len()) + 5 + 1
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PluginSlot<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) pid: u32,
    pub(crate) status: PluginStatus,
}

/// The registered plugins.
#[derive(Debug, Default)]
pub(crate) struct Plugins<'a> {
    slots: [Option<PluginSlot<'a>>; MAX_PLUGINS],
}

impl<'a> Plugins<'a> {
    pub(crate) fn register(&mut self, name: &'a str, version: &'a str) -> Result<PluginId, PluginError> {
        if self.find(Text::new(name)).is_some() {
            return Err(PluginError::Duplicate);
        }
        let hb = PluginHeartbeat { name: Text::new(name), version: Text::new(version), pid: u32::MAX, status: PluginStatus::Error };
        if hb.max_encoded_len() > crate::stats::MAX_HEARTBEAT_LEN {
            return Err(PluginError::TooLong);
        }
        let i = self.slots.iter().position(Option::is_none).ok_or(PluginError::Full)?;
        self.slots[i] = Some(PluginSlot { name, version, pid: 0, status: PluginStatus::Starting });
        Ok(PluginId(i as u8))
    }

    pub(crate) fn unregister(&mut self, id: PluginId) -> Result<(), PluginError> {
        let slot = self.slots.get_mut(usize::from(id.0)).ok_or(PluginError::UnknownId)?;
        slot.take().map(|_| ()).ok_or(PluginError::UnknownId)
    }

    pub(crate) fn set_status(&mut self, id: PluginId, pid: u32, status: PluginStatus) -> Result<(), PluginError> {
        let slot = self.slots.get_mut(usize::from(id.0)).and_then(Option::as_mut).ok_or(PluginError::UnknownId)?;
        slot.pid = pid;
        slot.status = status;
        Ok(())
    }

    pub(crate) fn find(&self, name: Text<'_>) -> Option<PluginId> {
        self.slots.iter().position(|s| matches!(s, Some(p) if p.name == name)).map(|i| PluginId(i as u8))
    }

    /// The plugin registered in slot `i`, if any (slots in `iter` order).
    pub(crate) fn get(&self, i: usize) -> Option<PluginSlot<'a>> {
        self.slots.get(i).copied().flatten()
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PluginSlot<'a>> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_find_unregister() {
        let mut p = Plugins::default();
        let a = p.register("collector", "1.0").unwrap();
        assert_eq!(p.register("collector", "2"), Err(PluginError::Duplicate));
        for i in 1..MAX_PLUGINS {
            let name = ["b", "c", "d", "e"][i - 1];
            p.register(name, "1").unwrap();
        }
        assert_eq!(p.register("z", "1"), Err(PluginError::Full));
        assert_eq!(p.find("collector".into()), Some(a));
        p.set_status(a, 42, PluginStatus::Running).unwrap();
        assert_eq!(p.iter().next().unwrap().pid, 42);
        p.unregister(a).unwrap();
        assert_eq!(p.unregister(a), Err(PluginError::UnknownId));
        assert_eq!(p.find("collector".into()), None);
        assert_eq!(p.register("z", "1"), Ok(a));
    }

    #[test]
    fn plugin_whose_heartbeat_cannot_fit_is_refused() {
        let long = "n".repeat(300);
        let mut p = Plugins::default();
        assert_eq!(p.register(&long[..200], &long[..200]), Err(PluginError::TooLong));
        // The largest that fits: 2 + 200 + 2 + 174 + 5 + 1 = 384 bytes.
        let id = p.register(&long[..200], &long[..174]).unwrap();
        let hb = PluginHeartbeat { name: Text::new(&long[..200]), version: Text::new(&long[..174]), pid: u32::MAX, status: PluginStatus::Error };
        let mut buf = [0u8; crate::stats::MAX_HEARTBEAT_LEN];
        assert_eq!(crate::wire::codec::write_body(&hb, &mut buf), Some(hb.max_encoded_len()));
        assert_eq!(p.find(Text::new(&long[..200])), Some(id));
    }
}

//! The network's state: connections of two byte streams ([`Link`]s) each,
//! chunks queued with their delivery times. How writes are delayed, split,
//! corrupted and delivered, and how connections close, is `world/link.rs`.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A direction on a connection.
pub(crate) enum Dir {
    /// Agent to server.
    Up,
    /// Server to agent.
    Down,
}

#[derive(Default)]
/// One direction of a connection: chunks queued with their delivery time,
/// in order.
pub(crate) struct Link {
    pub(crate) q: VecDeque<(u64, Vec<u8>)>,
    pub(crate) last_at: u64,
}

impl Link {
    /// When the next chunk is due.
    pub(crate) fn head(&self) -> Option<u64> {
        self.q.front().map(|c| c.0)
    }
    /// Everything due at `now`, concatenated.
    pub(crate) fn take_due(&mut self, now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while self.q.front().is_some_and(|c| c.0 <= now) {
            out.extend_from_slice(&self.q.pop_front().unwrap().1);
        }
        out
    }
    /// Nothing is delivered before `until` (a stall).
    pub(crate) fn postpone(&mut self, until: u64) {
        for c in &mut self.q {
            c.0 = c.0.max(until);
        }
        self.last_at = self.last_at.max(until);
    }
}

/// One connection between an agent and the collector.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) agent: usize,
    pub(crate) endpoint: u8,
    pub(crate) up: Link,
    pub(crate) down: Link,
    /// The agent's transport (`Sim::conn` names this connection).
    pub(crate) agent_open: bool,
    /// The collector holds the socket (and a decoder slot).
    pub(crate) server_open: bool,
    /// Cut: nothing is delivered any more, either way.
    pub(crate) dead: bool,
    /// The agent closed: the collector sees EOF once `up` is drained.
    pub(crate) up_fin: bool,
    /// When the agent learns the transport is gone (RST or EOF).
    pub(crate) notify_at: Option<u64>,
    /// The collector accepted the Hello, resuming at `accept_next` (the
    /// collector's own session state is the peer's: `Peer::conn`).
    pub(crate) accepted: bool,
    pub(crate) accept_next: u64,
    pub(crate) up_corrupted: bool,
    /// Writes corrupted on the downlink (each may leave a bogus frame
    /// header in the agent's decoder).
    pub(crate) down_corruptions: u64,
    pub(crate) next_unsolicited: u64,
}

//! Either collector behind one interface: the simulation runs against
//! agent-core's test peer or the real collector's sans-IO core
//! ([`Collector`]) alike.

use agent_core::message::CloseCode;

use crate::collector::Collector;
use crate::peer::{AgentLog, Note, Peer, Push, Refusal, Stored};

/// The collector a simulation runs against (one per run: the size of
/// the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Backend<'a> {
    /// agent-core's test peer (optionally with its recovery habits).
    Peer(Peer<'a>),
    /// The real collector's sans-IO core.
    Real(Collector<'a>),
}

impl<'a> Backend<'a> {
    /// See [`Peer::open`].
    pub fn open(&mut self, id: u64) -> bool {
        match self {
            Backend::Peer(p) => p.open(id),
            Backend::Real(c) => c.open(id),
        }
    }
    /// See [`Peer::release`].
    pub fn release(&mut self, id: u64) {
        match self {
            Backend::Peer(p) => p.release(id),
            Backend::Real(c) => c.release(id),
        }
    }
    /// See [`Peer::is_open`].
    pub fn is_open(&self, id: u64) -> bool {
        match self {
            Backend::Peer(p) => p.is_open(id),
            Backend::Real(c) => c.is_open(id),
        }
    }
    /// Frame counter skips seen on `id`.
    pub fn frame_seq_skips(&self, id: u64) -> Option<u64> {
        match self {
            Backend::Peer(p) => p.conn(id).map(|c| c.frame_seq_skips),
            Backend::Real(c) => c.frame_seq_skips(id),
        }
    }
    /// Bytes from the agent on `id` at `now_ms`; the test peer answers
    /// every Hello with `busy` while it is set (the real collector's
    /// admission decides for itself).
    pub fn handle_received(&mut self, id: u64, bytes: &[u8], now_ms: u64, busy: Option<u32>) -> Vec<Note> {
        match self {
            Backend::Peer(p) => {
                p.cfg.reject = busy.map(|retry_after_ms| Refusal { code: CloseCode::Busy, retry_after_ms });
                p.handle_received(id, bytes)
            }
            Backend::Real(c) => c.handle_received(id, bytes, now_ms),
        }
    }
    /// See [`Peer::poll_transmit`].
    pub fn poll_transmit(&mut self, id: u64) -> Option<Vec<u8>> {
        match self {
            Backend::Peer(p) => p.poll_transmit(id),
            Backend::Real(c) => c.poll_transmit(id),
        }
    }
    /// See [`Peer::agent`].
    pub fn agent(&self, agent_id: &str) -> &AgentLog {
        match self {
            Backend::Peer(p) => p.agent(agent_id),
            Backend::Real(c) => c.agent(agent_id),
        }
    }
    /// The resume point the collector holds for `agent_id`.
    pub fn next(&self, agent_id: &str) -> u64 {
        match self {
            Backend::Peer(p) => p.next(agent_id),
            Backend::Real(c) => c.next(agent_id),
        }
    }
    /// See [`Peer::record`].
    pub fn record(&self, agent_id: &str, seq: u64) -> Option<&Stored> {
        match self {
            Backend::Peer(p) => p.record(agent_id, seq),
            Backend::Real(c) => c.record(agent_id, seq),
        }
    }
    /// See [`Peer::push`].
    pub fn push(&mut self, id: u64, p: &Push) {
        match self {
            Backend::Peer(peer) => peer.push(id, p),
            Backend::Real(c) => c.push(id, p),
        }
    }
    /// A collector restart (the caller cuts every connection): the peer
    /// keeps its store and, with `lose_index`, forgets `agents`' resume
    /// points at their next Accept; the real collector starts its admission
    /// afresh and rebuilds its ledger from the sink (the file sink), or
    /// with `lose_index` starts it empty (the stdout sink).
    pub fn restart(&mut self, lose_index: bool, agents: &[&str]) {
        match self {
            Backend::Peer(p) => {
                if lose_index {
                    for a in agents {
                        p.forget(a);
                    }
                }
            }
            Backend::Real(c) => c.restart(lose_index),
        }
    }
    /// Connections closed as a side effect of the last calls.
    pub fn take_closed_elsewhere(&mut self) -> Vec<u64> {
        match self {
            Backend::Peer(_) => Vec::new(),
            Backend::Real(c) => c.take_closed_elsewhere(),
        }
    }
    /// The Accept's `retry_window_ms`.
    pub fn retry_window_ms(&self) -> u32 {
        match self {
            Backend::Peer(p) => p.cfg.retry_window_ms,
            Backend::Real(c) => c.retry_window_ms(),
        }
    }
    /// Hellos answered Busy by the real collector's admission (the peer's
    /// Busy faults are not counted here).
    pub fn busy_rejects(&self) -> u64 {
        match self {
            Backend::Peer(_) => 0,
            Backend::Real(c) => c.busy_rejects,
        }
    }
    /// Connections the real collector closed for a newer one of the agent.
    pub fn replaced(&self) -> u64 {
        match self {
            Backend::Peer(_) => 0,
            Backend::Real(c) => c.replaced,
        }
    }
    /// Connections the peer closed for damage (the real collector has no
    /// such habit: 0).
    pub fn damaged_closes(&self) -> u64 {
        match self {
            Backend::Peer(p) => p.damaged_closes,
            Backend::Real(_) => 0,
        }
    }
}

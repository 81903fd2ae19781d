//! The collector side of the world: either collector ([`Backend`]) and what
//! the simulation checks about it per agent ([`Checks`]). How it is wired to
//! the network, the tasks and configs it sends unprompted and the checks of
//! every frame it receives (each comes back as a `Note`) are
//! `world/server.rs`.

use std::collections::{HashMap, HashSet};

use crate::backend::Backend;
use crate::peer::Push;

/// Largest `Reject.retry_after_ms` the collector sends.
pub(crate) const RETRY_AFTER_MAX: u64 = 2000;

/// What the simulation checks about one agent's stored records beyond
/// what the peer keeps (records, duplicates, gaps: [`Peer::agent`]).
#[derive(Default)]
pub(crate) struct Checks {
    /// Tasks sent: token -> whether the target exists on the agent.
    pub(crate) tasks: HashMap<String, bool>,
    /// Tasks sent whose result the collector has not stored yet, in the
    /// order sent: resent after every Accept (as the collector's registry
    /// does) and once more after the drain.
    pub(crate) open: Vec<(String, Push)>,
    /// Tokens resent at least once.
    pub(crate) resent: HashSet<String>,
    /// Results stored for a task that already had one (a resend after the
    /// agent forgot the token: it remembers the last 8).
    pub(crate) double_results: u64,
    pub(crate) results: HashSet<String>,
    pub(crate) ok_results: HashSet<String>,
    pub(crate) app_seen: HashSet<u64>,
    pub(crate) last_ord: Option<u64>,
    /// Generation instants (agent clock) of the agent heartbeats stored.
    pub(crate) hb_gens: Vec<u64>,
    pub(crate) plugin_hbs: u64,
}

/// The collector and what the simulation checks about it.
pub(crate) struct Server<'a> {
    /// The collector itself: the real collector's sans-IO core
    /// ([`crate::collector`]), or with `EDGE_SIM_COLLECTOR=peer` the
    /// shared test peer (`edge_testkit::peer`).
    pub(crate) collector: Backend<'a>,
    pub(crate) max_frame: usize,
    pub(crate) checks: Vec<Checks>,
    pub(crate) task_seq: u64,
    pub(crate) task_gap: u64,
    /// Neither repeat acks nor close damaged connections (shows the agent
    /// stalling on a lost ack or batch): the real collector, or the peer
    /// with `EDGE_SIM_NAIVE_COLLECTOR=1` (its two habits are set from it).
    pub(crate) naive: bool,
}

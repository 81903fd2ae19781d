//! What a run is against and what it prints: chosen by the caller, read
//! from the environment by [`Options::from_env`] (crate docs, *Running and
//! replaying*).

/// Which collector the agents talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    /// edge-collector's sans-IO core (`EDGE_SIM_COLLECTOR` unset, `real`
    /// or empty). Naive: it neither closes damaged connections nor repeats
    /// acks.
    Real,
    /// agent-core's test peer with its two recovery habits
    /// (`EDGE_SIM_COLLECTOR=peer`).
    Peer,
    /// The test peer without them (`EDGE_SIM_COLLECTOR=peer`,
    /// `EDGE_SIM_NAIVE_COLLECTOR=1`).
    NaivePeer,
}

/// How to run a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The collector.
    pub collector: CollectorKind,
    /// Prints this agent's inputs, frames and events (`EDGE_SIM_TRACE`).
    pub trace: Option<usize>,
}

impl Options {
    /// Against `collector`, tracing nothing.
    pub fn new(collector: CollectorKind) -> Options {
        Options { collector, trace: None }
    }

    /// From `EDGE_SIM_COLLECTOR`, `EDGE_SIM_NAIVE_COLLECTOR` and
    /// `EDGE_SIM_TRACE`. Panics on a value it does not know (a test's
    /// misspelt setting must not silently run something else).
    pub fn from_env() -> Options {
        let collector = match std::env::var("EDGE_SIM_COLLECTOR").as_deref() {
            Err(_) | Ok("real") | Ok("") => CollectorKind::Real,
            Ok("peer") if env_u64("EDGE_SIM_NAIVE_COLLECTOR").is_some_and(|v| v != 0) => CollectorKind::NaivePeer,
            Ok("peer") => CollectorKind::Peer,
            Ok(v) => panic!("EDGE_SIM_COLLECTOR={v:?}: `real` (default) or `peer`"),
        };
        Options { collector, trace: env_u64("EDGE_SIM_TRACE").map(|a| a as usize) }
    }
}

/// The number in environment variable `name`, if it is set. Panics when it
/// is not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

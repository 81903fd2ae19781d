//! The agents under test: each [`Sim`] holds one real [`Agent`] with the
//! driver's model of what it must do (backoff, events, busy-loop counters).
//! The driver itself, which calls the agent in the documented order and
//! checks each event against this model, is `world/agent.rs`.

use std::collections::HashMap;

use agent_core::agent::Agent;
use agent_core::events::{DisconnectReason, Event, TaskTarget};
use agent_core::heartbeat::AgentStats;
use agent_core::plugin::PluginId;

use crate::app::AppRec;
use crate::plan::Plan;

/// One agent under test and the driver's model of it.
pub(crate) struct Sim<'a> {
    pub(crate) agent: Agent<'a>,
    pub(crate) plan: Plan,
    pub(crate) name: &'a str,
    pub(crate) plugin_ids: Vec<PluginId>,
    pub(crate) booted: bool,
    pub(crate) conn: Option<u64>,
    pub(crate) attempt: Option<(u64, u8)>,
    // Backoff model.
    /// The backoff model: failure weight (halved per healthy period),
    /// consecutive failures, start of the failing streak, server advice.
    pub(crate) failures: u32,
    pub(crate) consecutive: u32,
    pub(crate) failing_since: Option<u64>,
    pub(crate) advice: u32,
    pub(crate) ep: u8,
    pub(crate) ep_fail: u8,
    pub(crate) connected_since: Option<u64>,
    pub(crate) expect_connect: Option<u64>,
    pub(crate) expect_gaveup: bool,
    /// (code, retry_after_ms) of the Reject that ended the attempt.
    pub(crate) reject_retry: Option<(u16, u32)>,
    pub(crate) reconnect_at: Option<u64>,
    // The app.
    pub(crate) next_push: u64,
    pub(crate) apps: Vec<AppRec>,
    pub(crate) ord: u64,
    pub(crate) answers: Vec<(u64, String, String)>,
    pub(crate) answered: HashMap<String, (u64, String)>,
    // Accounting.
    pub(crate) last: AgentStats,
    pub(crate) drop_times: Vec<u64>,
    pub(crate) last_delivered: u64,
    pub(crate) failures_after_drain: u64,
    // Busy-loop detection.
    pub(crate) bucket: u64,
    pub(crate) bucket_timeouts: u64,
    pub(crate) bucket_polls: u64,
    pub(crate) bucket_inputs: u64,
    pub(crate) prev_bucket_inputs: u64,
    pub(crate) instant: u64,
    pub(crate) instant_timeouts: u32,
    pub(crate) max_timeouts_per_sec: u64,
    pub(crate) max_polls_per_sec: u64,
    // Drain.
    pub(crate) drain_bound: u64,
    /// Downlink corruptions on the connection the agent held when the
    /// faults stopped (see `Plan::drain_bound`); set at that moment.
    pub(crate) backlog: Option<u64>,
    pub(crate) drained_at: Option<u64>,
    /// Downlink writes corrupted on any of the agent's connections: each may
    /// cost one protocol error (a lost Accept makes the next Task one).
    pub(crate) down_corruptions: u64,
    /// Answers the app gave again for a token it had answered (a resend
    /// handed over again): token -> (order, message), the later ones.
    pub(crate) reanswered: HashMap<String, Vec<(u64, String)>>,
    /// The final phase: when the next open task is resent, which one was
    /// resent last and how often.
    pub(crate) final_due: Option<u64>,
    pub(crate) final_token: Option<(String, u32)>,
}

/// An event, copied out of the agent.
#[derive(Debug)]
pub(crate) enum Ev {
    Connect(u8),
    Disconnect(DisconnectReason),
    Connected(u8),
    Task { target: TaskTarget, object: String, token: String },
    Shutdown,
    Config,
    Delivered { acked_total: u64, first_unacked: u64 },
    GaveUp,
}

impl Ev {
    pub(crate) fn from(ev: &Event<'_>) -> Ev {
        match *ev {
            Event::Connect { endpoint } => Ev::Connect(endpoint),
            Event::Disconnect { reason } => Ev::Disconnect(reason),
            Event::Connected { endpoint } => Ev::Connected(endpoint),
            Event::Task { target, object_name, token, .. } => {
                Ev::Task { target, object: object_name.as_str().into(), token: token.as_str().into() }
            }
            Event::Shutdown { .. } => Ev::Shutdown,
            Event::Config { .. } => Ev::Config,
            Event::Delivered { acked_total, first_unacked_seq } => {
                Ev::Delivered { acked_total, first_unacked: first_unacked_seq }
            }
            Event::GaveUp => Ev::GaveUp,
        }
    }
}

impl Sim<'_> {
    /// Starts a new one-second bucket of the busy-loop counters when `now` left the last one.
    pub(crate) fn roll_bucket(&mut self, now: u64) {
        let b = now / 1000;
        if b != self.bucket {
            self.prev_bucket_inputs = if b == self.bucket + 1 { self.bucket_inputs } else { 0 };
            self.bucket = b;
            self.bucket_timeouts = 0;
            self.bucket_polls = 0;
            self.bucket_inputs = 0;
        }
    }

    /// Counts one input at `now` for the busy-loop bounds.
    pub(crate) fn count_input(&mut self, now: u64) {
        self.roll_bucket(now);
        self.bucket_inputs += 1;
    }
}

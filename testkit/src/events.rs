//! Owned agent events that compare by value.
//!
//! [`Event`] borrows from the agent's event queue, so a test that wants to
//! collect events and compare them later used to keep their `Debug` text
//! (`format!("{e:?}")`) and match on strings. [`Ev`] is the same event with
//! owned fields: collect them with [`drain`] and compare with `assert_eq!`
//! or `matches!`; a renamed field or a changed value is then a compile error
//! or a clear mismatch, not a string that silently stops matching.

use agent_core::{Agent, DisconnectReason, Event, TaskTarget};

/// An [`Event`] with owned fields (one variant per variant of `Event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// [`Event::Connect`].
    Connect {
        /// Endpoint index.
        endpoint: u8,
    },
    /// [`Event::Disconnect`].
    Disconnect {
        /// Why.
        reason: DisconnectReason,
    },
    /// [`Event::Connected`].
    Connected {
        /// Endpoint index.
        endpoint: u8,
    },
    /// [`Event::Task`].
    Task {
        /// Who it is for.
        target: TaskTarget,
        /// The object name.
        object_name: String,
        /// What the task is.
        data_type: u32,
        /// Arguments.
        payload: Vec<u8>,
        /// Token to echo in the result.
        token: String,
    },
    /// [`Event::Shutdown`].
    Shutdown {
        /// Token to echo in the result.
        token: String,
    },
    /// [`Event::Config`].
    Config {
        /// Which configuration.
        name: String,
        /// New version.
        version: String,
        /// The configuration.
        payload: Vec<u8>,
    },
    /// [`Event::Delivered`].
    Delivered {
        /// Total records acked so far.
        acked_total: u64,
        /// Oldest sequence number still unacked.
        first_unacked_seq: u64,
    },
    /// [`Event::GaveUp`].
    GaveUp,
}

impl From<Event<'_>> for Ev {
    fn from(e: Event<'_>) -> Ev {
        match e {
            Event::Connect { endpoint } => Ev::Connect { endpoint },
            Event::Disconnect { reason } => Ev::Disconnect { reason },
            Event::Connected { endpoint } => Ev::Connected { endpoint },
            Event::Task { target, object_name, data_type, payload, token } => {
                Ev::Task { target, object_name: object_name.as_str().into(), data_type, payload: payload.into(), token: token.as_str().into() }
            }
            Event::Shutdown { token } => Ev::Shutdown { token: token.as_str().into() },
            Event::Config { name, version, payload } => {
                Ev::Config { name: name.as_str().into(), version: version.as_str().into(), payload: payload.into() }
            }
            Event::Delivered { acked_total, first_unacked_seq } => Ev::Delivered { acked_total, first_unacked_seq },
            Event::GaveUp => Ev::GaveUp,
        }
    }
}

impl Ev {
    /// A `Disconnect` for `reason`.
    pub fn disconnect(reason: DisconnectReason) -> Ev {
        Ev::Disconnect { reason }
    }

    /// Whether this is a `Disconnect` (for any reason).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Ev::Disconnect { .. })
    }

    /// Whether this is a `Delivered` (with any counts).
    pub fn is_delivered(&self) -> bool {
        matches!(self, Ev::Delivered { .. })
    }
}

/// Every event `agent` has queued, owned, in order.
pub fn drain(agent: &mut Agent<'_>) -> Vec<Ev> {
    let mut v = Vec::new();
    while let Some(e) = agent.poll_event() {
        v.push(Ev::from(e));
    }
    v
}

/// `events` without the `Delivered` ones (which a test of something else
/// often does not care about: they are coalesced, so how many appear
/// depends on timing).
pub fn without_delivered(events: &[Ev]) -> Vec<Ev> {
    events.iter().filter(|e| !e.is_delivered()).cloned().collect()
}

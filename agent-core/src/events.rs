//! Events the agent hands to its caller, and the bounded queue that holds
//! them in caller memory.
//!
//! Events are serialized (postcard) into a caller-provided byte slice, so a
//! Task's payload and token are copied once, when the frame is decoded, and
//! stay valid while the caller looks at the event: [`Event`] borrows the
//! queue until the next call into the agent. When the queue is full the new
//! event is dropped and counted; a task dropped that way is answered with a
//! `DROPPED` task result so the server knows.

use serde::{Deserialize, Serialize};

/// Why the agent ended (or gave up on) a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum DisconnectReason {
    /// The caller reported the transport failed or closed.
    Transport = 1,
    /// The caller did not report the transport up within `connect_timeout`.
    ConnectTimeout = 2,
    /// No Accept within `handshake_timeout`.
    HandshakeTimeout = 3,
    /// No frame within `pong_timeout` after a Ping.
    PongTimeout = 4,
    /// The server refused the handshake.
    Rejected = 5,
    /// The server sent Close.
    PeerClosed = 6,
    /// The server's version or frame size cannot carry this agent's records.
    Incompatible = 7,
    /// The caller asked for the close (`Agent::close`).
    Shutdown = 8,
}

/// Who a task is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskTarget {
    /// The agent itself (object name empty or equal to the product name).
    Agent,
    /// A registered plugin.
    Plugin(crate::plugin::PluginId),
}

/// Something the caller must act on or may want to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event<'a> {
    /// Open a transport to endpoint `endpoint` (an index into the caller's
    /// endpoint list), then call `handle_connected` or `handle_disconnected`.
    Connect {
        /// Endpoint index.
        endpoint: u8,
    },
    /// Close the transport (after sending what `poll_transmit` still gives).
    Disconnect {
        /// Why.
        reason: DisconnectReason,
    },
    /// The handshake completed; records flow.
    Connected {
        /// Endpoint index.
        endpoint: u8,
    },
    /// A task for the agent or a plugin. Answer with `Agent::task_result`.
    Task {
        /// Who it is for.
        target: TaskTarget,
        /// The object name as sent by the server.
        object_name: &'a str,
        /// What the task is.
        data_type: u32,
        /// Arguments.
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
        /// Token to echo in the result.
        token: &'a str,
    },
    /// The server asked the agent to shut down (task type 1060).
    Shutdown {
        /// Token to echo in the result.
        token: &'a str,
    },
    /// A configuration whose version differs from the one held.
    Config {
        /// Which configuration.
        name: &'a str,
        /// New version.
        version: &'a str,
        /// The configuration.
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
    },
    /// Records were acked since the last such event (coalesced).
    Delivered {
        /// Total records acked so far.
        acked_total: u64,
        /// Oldest sequence number still unacked.
        first_unacked_seq: u64,
    },
    /// The give-up limit was reached; no further attempts until
    /// `Agent::reconnect_now`.
    GaveUp,
}

/// A FIFO of serialized events in caller memory.
pub(crate) struct EventQueue<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

const LEN_PREFIX: usize = 2;

impl<'a> EventQueue<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        EventQueue { buf, start: 0, end: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Appends `ev`; false (nothing stored) when it does not fit.
    pub(crate) fn push(&mut self, ev: &Event<'_>) -> bool {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.try_push(ev) {
            return true;
        }
        // Compact and retry once.
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.try_push(ev)
    }

    fn try_push(&mut self, ev: &Event<'_>) -> bool {
        let Some(room) = self.buf.get_mut(self.end + LEN_PREFIX..) else { return false };
        let room_len = room.len().min(u16::MAX as usize);
        let Ok(written) = postcard::to_slice(ev, &mut room[..room_len]) else { return false };
        let n = written.len();
        self.buf[self.end..self.end + LEN_PREFIX].copy_from_slice(&(n as u16).to_le_bytes());
        self.end += LEN_PREFIX + n;
        true
    }

    /// Removes the oldest event; it borrows the queue until the next push.
    pub(crate) fn pop(&mut self) -> Option<Event<'_>> {
        while self.start < self.end {
            let at = self.start;
            let n = usize::from(u16::from_le_bytes([self.buf[at], self.buf[at + 1]]));
            self.start = at + LEN_PREFIX + n;
            // Only this module writes the queue, so decoding cannot fail;
            // a failure would skip the entry rather than panic.
            if let Ok(ev) = postcard::from_bytes(&self.buf[at + LEN_PREFIX..at + LEN_PREFIX + n]) {
                return Some(ev);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_compaction_and_overflow() {
        let mut mem = [0u8; 40];
        let mut q = EventQueue::new(&mut mem);
        assert!(q.push(&Event::Connect { endpoint: 1 }));
        let task = Event::Task { target: TaskTarget::Agent, object_name: "x", data_type: 7, payload: b"0123456789", token: "t" };
        assert!(q.push(&task));
        assert!(!q.push(&task), "third event does not fit");
        assert_eq!(q.pop(), Some(Event::Connect { endpoint: 1 }));
        assert!(q.push(&Event::GaveUp), "compaction makes room");
        assert_eq!(q.pop(), Some(task));
        assert_eq!(q.pop(), Some(Event::GaveUp));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }
}

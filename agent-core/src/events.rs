//! Events the agent hands to its caller, and the bounded queue that holds
//! them in caller memory.
//!
//! Events are serialized into a caller-provided byte slice, so a
//! Task's payload and token are copied once, when the frame is decoded, and
//! stay valid while the caller looks at the event: [`Event`] borrows the
//! queue until the next call into the agent. When the queue is full the new
//! event is dropped and counted; a task dropped that way is answered with a
//! `DROPPED` task result so the server knows.
//!
//! Events also implement serde's traits, for callers that want to copy one
//! out (e.g. into their own queue); the agent itself does not use them.

use crate::text::Text;
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
    /// Records stayed in flight for `ack_timeout` without any ack progress.
    AckTimeout = 9,
    /// The server broke the protocol: a body that cannot be read, a message
    /// the agent must not receive in its state, an Ack of records never
    /// sent. The agent sent Close(ProtocolError).
    ProtocolError = 10,
    /// The server's `Accept.next_seq` is one the agent cannot have produced
    /// (above every number it gave, e.g. two devices sharing one agent id,
    /// or above 2^63). The agent sent Close(ProtocolError); its records
    /// stay in the ring.
    BadResume = 11,
}

/// What happened to the transport, as the caller saw it; given to
/// `Agent::handle_disconnected` and kept for diagnostics
/// (`Agent::last_transport_error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum TransportError {
    /// The peer closed the stream in order (end of stream).
    Closed = 0,
    /// The connection attempt was refused.
    Refused = 1,
    /// The connection was reset or aborted, or a write hit a broken pipe.
    Reset = 2,
    /// The transport's own timeout expired.
    TimedOut = 3,
    /// No route, address unavailable, network down.
    Unreachable = 4,
    /// Anything else.
    Other = 5,
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
        #[serde(borrow)]
        object_name: Text<'a>,
        /// What the task is.
        data_type: u32,
        /// Arguments.
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
        /// Token to echo in the result.
        #[serde(borrow)]
        token: Text<'a>,
    },
    /// The server asked the agent to shut down (task type 1060).
    Shutdown {
        /// Token to echo in the result.
        #[serde(borrow)]
        token: Text<'a>,
    },
    /// A configuration whose version differs from the one held.
    Config {
        /// Which configuration.
        #[serde(borrow)]
        name: Text<'a>,
        /// New version.
        #[serde(borrow)]
        version: Text<'a>,
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

impl DisconnectReason {
    /// The reason for its number, if known.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => DisconnectReason::Transport,
            2 => DisconnectReason::ConnectTimeout,
            3 => DisconnectReason::HandshakeTimeout,
            4 => DisconnectReason::PongTimeout,
            5 => DisconnectReason::Rejected,
            6 => DisconnectReason::PeerClosed,
            7 => DisconnectReason::Incompatible,
            8 => DisconnectReason::Shutdown,
            9 => DisconnectReason::AckTimeout,
            10 => DisconnectReason::ProtocolError,
            11 => DisconnectReason::BadResume,
            _ => return None,
        })
    }
}

/// A FIFO of serialized events in caller memory. It holds every event but
/// `Delivered`, which the agent raises itself, coalesced (a push of one is
/// refused).
///
/// Entry layout: `len: u16 LE | tag: u8 | fields`, where a string or byte
/// field is `len: u16 LE | bytes` and integers are little-endian. Hand-written
/// rather than derived, which costs less flash on a Cortex-M4 (NOTES.md).
pub(crate) struct EventQueue<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

const LEN_PREFIX: usize = 2;

/// Queue bytes that tasks and configs leave free: room for the connection
/// events one input can still raise after them (`Connected`, `Disconnect`,
/// `GaveUp`, two bytes each plus the length prefix), so the caller is never
/// left without the `Disconnect` that tells it to close the transport.
pub(crate) const LIFECYCLE_RESERVE: usize = 3 * (LEN_PREFIX + 2);

/// The smallest event queue an agent accepts (bytes): the connection events
/// of one input, twice over, so a caller that drains the queue after every
/// input never loses one. Tasks and configs need room beyond it; a task that
/// finds none is answered `DROPPED`.
pub const MIN_EVENT_QUEUE: usize = 2 * LIFECYCLE_RESERVE;
const AGENT_TARGET: u8 = 0xFF;

mod tag {
    pub const CONNECT: u8 = 1;
    pub const DISCONNECT: u8 = 2;
    pub const CONNECTED: u8 = 3;
    pub const TASK: u8 = 4;
    pub const SHUTDOWN: u8 = 5;
    pub const CONFIG: u8 = 6;
    pub const GAVE_UP: u8 = 7;
}

/// Appends fields to an entry being written. A field that does not fit is
/// not written but still counted in `at`, so one check at the end (`at`
/// within `buf`) says whether every field fit.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }
    /// A length-prefixed field. A field longer than `u16::MAX` never fits
    /// (the room is at most that), so its cut prefix is never kept.
    fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u16).to_le_bytes());
        self.bytes(b);
    }
}

/// Reads fields of an entry.
struct Reader<'b> {
    buf: &'b [u8],
}

impl<'b> Reader<'b> {
    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let (head, rest) = (self.buf.get(..n)?, self.buf.get(n..)?);
        self.buf = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn field(&mut self) -> Option<&'b [u8]> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        self.take(usize::from(n))
    }
    /// A string field, checked as UTF-8 again ([`Text::from_utf8`]).
    fn str(&mut self) -> Option<Text<'b>> {
        Text::from_utf8(self.field()?)
    }
}

fn encode(ev: &Event<'_>, w: &mut Writer<'_>) {
    // The three two-byte events share one write (a write per arm, or the
    // other events' arms returning here, measured larger).
    let (tag, byte) = match ev {
        Event::Connect { endpoint } => (tag::CONNECT, *endpoint),
        Event::Disconnect { reason } => (tag::DISCONNECT, *reason as u8),
        Event::Connected { endpoint } => (tag::CONNECTED, *endpoint),
        _ => return encode_rest(ev, w),
    };
    w.bytes(&[tag, byte]);
}

/// [`encode`] of the events other than the two-byte ones.
// Inlined into encode, its one caller.
#[inline(always)]
fn encode_rest(ev: &Event<'_>, w: &mut Writer<'_>) {
    // Fields by reference: read where written, not gathered first.
    match ev {
        // Written by `encode`.
        Event::Connect { .. } | Event::Disconnect { .. } | Event::Connected { .. } => {}
        Event::Task { target, object_name, data_type, payload, token } => {
            let target = match *target {
                TaskTarget::Agent => AGENT_TARGET,
                TaskTarget::Plugin(id) => id.0,
            };
            w.bytes(&[tag::TASK, target]);
            w.bytes(&data_type.to_le_bytes());
            w.field(object_name.as_bytes());
            w.field(payload);
            w.field(token.as_bytes());
        }
        Event::Shutdown { token } => {
            w.bytes(&[tag::SHUTDOWN]);
            w.field(token.as_bytes());
        }
        Event::Config { name, version, payload } => {
            w.bytes(&[tag::CONFIG]);
            w.field(name.as_bytes());
            w.field(version.as_bytes());
            w.field(payload);
        }
        // Not queued: the agent raises it itself, coalesced, when the
        // queue is empty (`Agent::poll_event`). Counted as never fitting.
        Event::Delivered { .. } => w.at = usize::MAX,
        Event::GaveUp => w.bytes(&[tag::GAVE_UP]),
    }
}

fn decode<'b>(r: &mut Reader<'b>) -> Option<Event<'b>> {
    let t = r.u8()?;
    // The three two-byte events by one read of their byte.
    if matches!(t, tag::CONNECT | tag::DISCONNECT | tag::CONNECTED) {
        let b = r.u8()?;
        return Some(match t {
            tag::CONNECT => Event::Connect { endpoint: b },
            tag::DISCONNECT => Event::Disconnect { reason: DisconnectReason::from_u8(b)? },
            _ => Event::Connected { endpoint: b },
        });
    }
    Some(match t {
        tag::TASK => {
            let target = match r.u8()? {
                AGENT_TARGET => TaskTarget::Agent,
                id => TaskTarget::Plugin(crate::plugin::PluginId(id)),
            };
            let data_type = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
            Event::Task { target, data_type, object_name: r.str()?, payload: r.field()?, token: r.str()? }
        }
        tag::SHUTDOWN => Event::Shutdown { token: r.str()? },
        tag::CONFIG => Event::Config { name: r.str()?, version: r.str()?, payload: r.field()? },
        tag::GAVE_UP => Event::GaveUp,
        _ => return None,
    })
}

impl<'a> EventQueue<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        EventQueue { buf, start: 0, end: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Appends `ev`; false (nothing stored) when it does not fit.
    pub(crate) fn push(&mut self, ev: &Event<'_>) -> bool {
        self.push_keeping(ev, 0)
    }

    /// Appends `ev` only if `keep` bytes stay free after it.
    pub(crate) fn push_keeping(&mut self, ev: &Event<'_>, keep: usize) -> bool {
        // Compacted first, then one attempt (one `try_push` call site):
        // what fits after compaction is what fitted before it or after
        // the compaction a failed attempt used to make. The held entries
        // move even when nothing was popped (no branch: pushes are rare
        // and the queue is small).
        crate::mem::move_within(self.buf, self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let limit = self.buf.len().saturating_sub(keep);
        self.try_push(ev, limit)
    }

    fn try_push(&mut self, ev: &Event<'_>, limit: usize) -> bool {
        // The entry, its length prefix included, within `limit`.
        let Some(room) = self.buf.get_mut(self.end..limit) else { return false };
        let room_len = room.len().min(LEN_PREFIX + u16::MAX as usize);
        // `split_at_mut` within the length (its check folds away), not an
        // index (an out-of-line call that checks again).
        let mut w = Writer { buf: room.split_at_mut(room_len).0, at: LEN_PREFIX };
        encode(ev, &mut w);
        let n = w.at;
        if n > room_len {
            return false;
        }
        // Every event has a tag byte: the prefix fits too.
        w.at = 0;
        w.bytes(&((n - LEN_PREFIX) as u16).to_le_bytes());
        self.end += n;
        true
    }

    /// Removes the oldest event; it borrows the queue until the next push.
    pub(crate) fn pop(&mut self) -> Option<Event<'_>> {
        while self.start < self.end {
            // An entry is laid out as a length-prefixed field: its length,
            // then its bytes (tag and fields).
            let entry = Reader { buf: self.buf.get(self.start..self.end)? }.field()?;
            self.start += LEN_PREFIX + entry.len();
            // Only this module writes the queue, so decoding cannot fail;
            // a failure would skip the entry rather than panic.
            let mut r = Reader { buf: entry };
            if let Some(ev) = decode(&mut r) {
                return Some(ev);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event is stored exactly when its entry (length prefix, tag and
    /// fields) fits the room left before `keep` free bytes, in any buffer.
    #[test]
    fn an_event_fits_exactly_when_its_entry_does() {
        let task = Event::Task { target: TaskTarget::Agent, object_name: "x".into(), data_type: 7, payload: b"0123456789", token: "t".into() };
        let evs: [(Event<'_>, usize); 5] = [
            (Event::Connect { endpoint: 1 }, 2),
            (Event::GaveUp, 1),
            (Event::Shutdown { token: "tok".into() }, 6),
            (Event::Config { name: "n".into(), version: "v".into(), payload: b"p" }, 10),
            (task, 24),
        ];
        for size in 0..72 {
            for keep in [0, 5, LIFECYCLE_RESERVE] {
                let mut mem = std::vec![0u8; size];
                let mut q = EventQueue::new(&mut mem);
                let mut used = 0;
                for (ev, len) in evs.iter().cycle().take(12) {
                    let fits = used + LEN_PREFIX + len <= size.saturating_sub(keep);
                    assert_eq!(q.push_keeping(ev, keep), fits, "size {size} keep {keep} used {used} {ev:?}");
                    if fits {
                        used += LEN_PREFIX + len;
                    }
                }
                let mut popped = 0;
                while let Some(ev) = q.pop() {
                    assert!(evs.iter().any(|(e, _)| *e == ev));
                    popped += 1;
                }
                assert_eq!(popped > 0, used > 0);
            }
        }
    }

    /// `push_keeping` as it was: an attempt at the end, then compaction
    /// and one more.
    fn old_push_keeping(q: &mut EventQueue<'_>, ev: &Event<'_>, keep: usize) -> bool {
        if q.start == q.end {
            q.start = 0;
            q.end = 0;
        }
        let limit = q.buf.len().saturating_sub(keep);
        if q.try_push(ev, limit) {
            return true;
        }
        crate::mem::move_within(q.buf, q.start..q.end, 0);
        q.end -= q.start;
        q.start = 0;
        q.try_push(ev, limit)
    }

    /// Compacting before the one attempt stores what the old order
    /// stored: the same answers and the same events popped, over random
    /// pushes (every kind, with `keep`) and pops, in queues of many sizes.
    #[test]
    fn compacting_first_stores_what_the_old_order_stored() {
        let evs = [
            Event::Connect { endpoint: 1 },
            Event::GaveUp,
            Event::Disconnect { reason: DisconnectReason::Rejected },
            Event::Shutdown { token: "tok".into() },
            Event::Config { name: "n".into(), version: "v".into(), payload: b"pp" },
            Event::Task { target: TaskTarget::Agent, object_name: "x".into(), data_type: 7, payload: b"0123456789", token: "t".into() },
            Event::Delivered { acked_total: 1, first_unacked_seq: 2 },
        ];
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut stored = 0;
        for size in [0, 3, 8, 13, 24, 40, 64, 100] {
            let (mut mem_a, mut mem_b) = (std::vec![0u8; size], std::vec![0u8; size]);
            let (mut a, mut b) = (EventQueue::new(&mut mem_a), EventQueue::new(&mut mem_b));
            for step in 0..5_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(3) {
                    assert_eq!(a.pop(), b.pop(), "size {size} step {step}");
                } else {
                    let ev = &evs[(x >> 8) as usize % evs.len()];
                    let keep = [0, 1, 5, LIFECYCLE_RESERVE][(x >> 16) as usize % 4];
                    let old = old_push_keeping(&mut a, ev, keep);
                    assert_eq!(b.push_keeping(ev, keep), old, "size {size} step {step}");
                    stored += usize::from(old);
                }
            }
            while let Some(ev) = a.pop() {
                assert_eq!(b.pop(), Some(ev));
            }
            assert_eq!(b.pop(), None);
        }
        assert!(stored > 5_000, "{stored}");
    }

    #[test]
    fn fifo_with_compaction_and_overflow() {
        let mut mem = [0u8; 40];
        let mut q = EventQueue::new(&mut mem);
        assert!(q.push(&Event::Connect { endpoint: 1 }));
        let task = Event::Task { target: TaskTarget::Agent, object_name: "x".into(), data_type: 7, payload: b"0123456789", token: "t".into() };
        assert!(q.push(&task));
        assert!(!q.push(&task), "third event does not fit");
        assert_eq!(q.pop(), Some(Event::Connect { endpoint: 1 }));
        assert!(q.push(&Event::GaveUp), "compaction makes room");
        assert_eq!(q.pop(), Some(task));
        assert_eq!(q.pop(), Some(Event::GaveUp));
        assert_eq!(q.pop(), None);
        for ev in [
            Event::Disconnect { reason: DisconnectReason::PongTimeout },
            Event::Connected { endpoint: 2 },
            Event::Shutdown { token: "tok".into() },
            Event::Config { name: "n".into(), version: "v".into(), payload: b"p" },
            Event::Task { target: TaskTarget::Plugin(crate::plugin::PluginId(3)), object_name: "p".into(), data_type: 1, payload: b"", token: "".into() },
        ] {
            assert!(q.push(&ev));
            assert_eq!(q.pop(), Some(ev));
        }
        assert!(q.is_empty());
        assert!(!q.push(&Event::Delivered { acked_total: 9, first_unacked_seq: 10 }), "never queued");
        assert!(q.is_empty());
    }
}

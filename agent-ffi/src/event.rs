//! `ea_event`: the agent's events as one plain C struct.

use agent_core::{DisconnectReason, Event, TaskTarget, TransportError};

/// What an `ea_event` is. Numbers are fixed and never reused.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_event_kind {
    /// No event: the queue is empty. Nothing else in the struct is set.
    EA_EVENT_NONE = 0,
    /// Open a transport to endpoint `endpoint`, then call
    /// `ea_agent_handle_connected` or `ea_agent_handle_disconnected`.
    EA_EVENT_CONNECT = 1,
    /// Close the transport (after writing what `ea_agent_poll_transmit`
    /// still gives). `reason` says why. Every end of a connection or of an
    /// attempt raises one, also one the caller reported itself: a failed
    /// connect or a dead socket passed to `ea_agent_handle_disconnected`
    /// comes back as this event (`EA_DISCONNECT_TRANSPORT`), with nothing
    /// left to close then; a loop can treat every end in one place here.
    EA_EVENT_DISCONNECT = 2,
    /// The handshake with endpoint `endpoint` completed; records flow.
    EA_EVENT_CONNECTED = 3,
    /// A task for the agent (`plugin == EA_PLUGIN_NONE`) or a plugin: fields
    /// `plugin`, `object_name`, `data_type`, `payload`, `token`. Answer with
    /// `ea_agent_task_result`.
    EA_EVENT_TASK = 4,
    /// The server asked the agent to shut down: field `token`. The library
    /// does not stop by itself. Answer it like a task, with
    /// `ea_agent_task_result` (status 0: shutting down, 1: refused), so the
    /// server learns the outcome: a collector that sees no result resends
    /// the task (at least on every new connection). To shut down cleanly,
    /// answer, stop pushing, keep driving the agent until `ea_stats.drained`
    /// (the answer is a record too), then `ea_agent_close`.
    EA_EVENT_SHUTDOWN = 5,
    /// A configuration whose version differs from the one held: fields
    /// `name`, `version`, `payload`.
    EA_EVENT_CONFIG = 6,
    /// Records were acked since the last such event: fields `acked_total`,
    /// `first_unacked_seq`.
    EA_EVENT_DELIVERED = 7,
    /// The give-up limit was reached; nothing more happens until
    /// `ea_agent_reconnect_now`.
    EA_EVENT_GAVE_UP = 8,
}

/// Why the agent ended a connection (`ea_event.reason`). Numbers are fixed.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_disconnect_reason {
    /// Not a disconnect event.
    EA_DISCONNECT_NONE = 0,
    /// The caller reported the transport failed or closed.
    EA_DISCONNECT_TRANSPORT = 1,
    /// The caller did not report the transport up within `connect_timeout_ms`.
    EA_DISCONNECT_CONNECT_TIMEOUT = 2,
    /// No Accept within `handshake_timeout_ms`.
    EA_DISCONNECT_HANDSHAKE_TIMEOUT = 3,
    /// No frame within `pong_timeout_ms` after a Ping.
    EA_DISCONNECT_PONG_TIMEOUT = 4,
    /// The server refused the handshake.
    EA_DISCONNECT_REJECTED = 5,
    /// The server sent Close.
    EA_DISCONNECT_PEER_CLOSED = 6,
    /// The server's version or frame size cannot carry this agent's records.
    EA_DISCONNECT_INCOMPATIBLE = 7,
    /// The caller closed the agent (`ea_agent_close`).
    EA_DISCONNECT_SHUTDOWN = 8,
    /// Records stayed in flight for `ack_timeout_ms` without ack progress.
    EA_DISCONNECT_ACK_TIMEOUT = 9,
    /// The server broke the protocol (an unreadable or unexpected message,
    /// an ack of records never sent); the agent sent Close.
    EA_DISCONNECT_PROTOCOL_ERROR = 10,
    /// The server's resume point is one this agent cannot have produced
    /// (e.g. two devices sharing one agent id); records stay in the ring.
    EA_DISCONNECT_BAD_RESUME = 11,
}

/// What happened to the transport, given to `ea_agent_handle_disconnected`.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_transport_error {
    /// The peer closed the stream in order.
    EA_TRANSPORT_CLOSED = 0,
    /// The connection attempt was refused.
    EA_TRANSPORT_REFUSED = 1,
    /// Reset, aborted, or a broken pipe.
    EA_TRANSPORT_RESET = 2,
    /// The transport's own timeout expired.
    EA_TRANSPORT_TIMED_OUT = 3,
    /// No route, address unavailable, network down.
    EA_TRANSPORT_UNREACHABLE = 4,
    /// Anything else.
    EA_TRANSPORT_OTHER = 5,
}

/// `ea_event.plugin` for a task addressed to the agent itself.
pub const EA_PLUGIN_NONE: u8 = 0xFF;

/// One event. `kind` says which fields are set; the others are zero / NULL.
/// Byte fields are pointer + length, not NUL-terminated, and point into the
/// agent's event queue: **valid until the next `ea_agent_handle_*`,
/// `ea_agent_poll_event`, `ea_agent_close`, `ea_agent_reconnect_now` or
/// `ea_agent_deinit` call on this agent** (pushes, task results, stats and
/// other getters leave them valid). Copy what you need to keep.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct ea_event {
    /// `ea_event_kind` value.
    pub kind: u32,
    /// CONNECT, CONNECTED: the endpoint index.
    pub endpoint: u8,
    /// TASK: the plugin id the task is for, or `EA_PLUGIN_NONE` for the
    /// agent itself.
    pub plugin: u8,
    /// DISCONNECT: `ea_disconnect_reason` value.
    pub reason: u32,
    /// TASK: what the task is (e.g. 1060 = shutdown).
    pub data_type: u32,
    /// TASK: the object name as sent by the server (UTF-8).
    pub object_name: *const u8,
    /// Bytes at `object_name`.
    pub object_name_len: usize,
    /// CONFIG: which configuration (UTF-8).
    pub name: *const u8,
    /// Bytes at `name`.
    pub name_len: usize,
    /// CONFIG: its new version (UTF-8).
    pub version: *const u8,
    /// Bytes at `version`.
    pub version_len: usize,
    /// TASK: arguments; CONFIG: the configuration.
    pub payload: *const u8,
    /// Bytes at `payload`.
    pub payload_len: usize,
    /// TASK, SHUTDOWN: the token to echo in `ea_agent_task_result` (UTF-8).
    pub token: *const u8,
    /// Bytes at `token`.
    pub token_len: usize,
    /// DELIVERED: records acked so far, in total.
    pub acked_total: u64,
    /// DELIVERED: the oldest sequence number still unacked.
    pub first_unacked_seq: u64,
}

impl ea_event {
    /// The empty event (`EA_EVENT_NONE`, everything zero).
    pub(crate) const NONE: ea_event = ea_event {
        kind: ea_event_kind::EA_EVENT_NONE as u32,
        endpoint: 0,
        plugin: 0,
        reason: 0,
        data_type: 0,
        object_name: core::ptr::null(),
        object_name_len: 0,
        name: core::ptr::null(),
        name_len: 0,
        version: core::ptr::null(),
        version_len: 0,
        payload: core::ptr::null(),
        payload_len: 0,
        token: core::ptr::null(),
        token_len: 0,
        acked_total: 0,
        first_unacked_seq: 0,
    };

    /// The C form of `ev`, borrowing its bytes.
    pub fn from_core(ev: &Event<'_>) -> ea_event {
        let mut e = ea_event::NONE;
        e.fill(ev);
        e
    }

    /// Writes `ev` into `self`, which holds `NONE` (the fields `ev` does
    /// not carry keep their zeros). In place: `ea_agent_poll_event` fills
    /// the caller's struct without building one aside and copying it.
    pub(crate) fn fill(&mut self, ev: &Event<'_>) {
        use ea_event_kind::*;
        let e = self;
        match *ev {
            Event::Connect { endpoint } => {
                e.kind = EA_EVENT_CONNECT as u32;
                e.endpoint = endpoint;
            }
            Event::Disconnect { reason } => {
                e.kind = EA_EVENT_DISCONNECT as u32;
                e.reason = reason_to_c(reason) as u32;
            }
            Event::Connected { endpoint } => {
                e.kind = EA_EVENT_CONNECTED as u32;
                e.endpoint = endpoint;
            }
            Event::Task { target, object_name, data_type, payload, token } => {
                e.kind = EA_EVENT_TASK as u32;
                e.plugin = match target {
                    TaskTarget::Agent => EA_PLUGIN_NONE,
                    TaskTarget::Plugin(id) => id.0,
                };
                e.data_type = data_type;
                (e.object_name, e.object_name_len) = (object_name.as_ptr(), object_name.len());
                (e.payload, e.payload_len) = (payload.as_ptr(), payload.len());
                (e.token, e.token_len) = (token.as_ptr(), token.len());
            }
            Event::Shutdown { token } => {
                e.kind = EA_EVENT_SHUTDOWN as u32;
                (e.token, e.token_len) = (token.as_ptr(), token.len());
            }
            Event::Config { name, version, payload } => {
                e.kind = EA_EVENT_CONFIG as u32;
                (e.name, e.name_len) = (name.as_ptr(), name.len());
                (e.version, e.version_len) = (version.as_ptr(), version.len());
                (e.payload, e.payload_len) = (payload.as_ptr(), payload.len());
            }
            Event::Delivered { acked_total, first_unacked_seq } => {
                e.kind = EA_EVENT_DELIVERED as u32;
                e.acked_total = acked_total;
                e.first_unacked_seq = first_unacked_seq;
            }
            Event::GaveUp => e.kind = EA_EVENT_GAVE_UP as u32,
        }
    }
}

/// The C number of a disconnect reason. Exhaustive: a new core reason must
/// get its own number here.
pub fn reason_to_c(r: DisconnectReason) -> ea_disconnect_reason {
    use ea_disconnect_reason::*;
    match r {
        DisconnectReason::Transport => EA_DISCONNECT_TRANSPORT,
        DisconnectReason::ConnectTimeout => EA_DISCONNECT_CONNECT_TIMEOUT,
        DisconnectReason::HandshakeTimeout => EA_DISCONNECT_HANDSHAKE_TIMEOUT,
        DisconnectReason::PongTimeout => EA_DISCONNECT_PONG_TIMEOUT,
        DisconnectReason::Rejected => EA_DISCONNECT_REJECTED,
        DisconnectReason::PeerClosed => EA_DISCONNECT_PEER_CLOSED,
        DisconnectReason::Incompatible => EA_DISCONNECT_INCOMPATIBLE,
        DisconnectReason::Shutdown => EA_DISCONNECT_SHUTDOWN,
        DisconnectReason::AckTimeout => EA_DISCONNECT_ACK_TIMEOUT,
        DisconnectReason::ProtocolError => EA_DISCONNECT_PROTOCOL_ERROR,
        DisconnectReason::BadResume => EA_DISCONNECT_BAD_RESUME,
    }
}

/// The core transport error of a C number, if it is one.
pub fn transport_error_from_c(n: u32) -> Option<TransportError> {
    Some(match n {
        0 => TransportError::Closed,
        1 => TransportError::Refused,
        2 => TransportError::Reset,
        3 => TransportError::TimedOut,
        4 => TransportError::Unreachable,
        5 => TransportError::Other,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ea_agent_poll_event` zeroes the caller's struct (`args::zero`) as
    /// its empty value: all-zero must be `ea_event::NONE`.
    #[test]
    fn all_zero_is_none() {
        // SAFETY: every field of ea_event is an integer or a raw pointer,
        // for which all-zero is a valid value.
        let z: ea_event = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
        let n = ea_event::NONE;
        let fields = |e: &ea_event| {
            (
                (e.kind, e.endpoint, e.plugin, e.reason, e.data_type),
                (e.object_name, e.object_name_len, e.name, e.name_len, e.version, e.version_len),
                (e.payload, e.payload_len, e.token, e.token_len, e.acked_total, e.first_unacked_seq),
            )
        };
        assert_eq!(fields(&z), fields(&n));
    }
}

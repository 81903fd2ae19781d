//! The messages carried in frame bodies: one body struct per [`Kind`], and
//! [`Message`], any of them.
//!
//! Their one codec is [`crate::wire::codec`] ([`Message::decode`],
//! [`Message::encode`] and a reader and writer per body), in postcard's
//! format (field order as declared, integers as varints, strings and byte
//! strings as `varint(len) | bytes`). Receivers ignore bytes after the last
//! field they know, so later minor versions may append fields. All borrowed
//! fields point into the frame they were decoded from: decoding never copies
//! or allocates. String fields are [`Text`]: UTF-8 checked by the codec
//! when read (see [`crate::text`] for what is checked where). The serde
//! derives describe the same layout for hosts that want it (the
//! collector's JSON, the equality tests against postcard); the agent's code
//! never calls them.
//!
//! Address lists are byte strings of packed addresses: 4 bytes per IPv4
//! address, 16 per IPv6 address, network order. A list whose length is not a
//! multiple of the address size is malformed.

use crate::text::Text;
use crate::wire::frame::Kind;
// Named in `DecodeError`'s docs only.
#[cfg(doc)]
use crate::wire::frame::VERSION;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Agent -> server, first frame of every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// Stable, unique agent identity (e.g. a UUID).
    #[serde(borrow)]
    pub agent_id: Text<'a>,
    /// Host name.
    #[serde(borrow)]
    pub hostname: Text<'a>,
    /// Product name of the software the agent belongs to.
    #[serde(borrow)]
    pub product: Text<'a>,
    /// Version of that product.
    #[serde(borrow)]
    pub version: Text<'a>,
    /// Private IPv4 addresses, 4 bytes each.
    #[serde(with = "serde_bytes")]
    pub intranet_ipv4: &'a [u8],
    /// Private IPv6 addresses, 16 bytes each.
    #[serde(with = "serde_bytes")]
    pub intranet_ipv6: &'a [u8],
    /// Public IPv4 addresses, 4 bytes each.
    #[serde(with = "serde_bytes")]
    pub extranet_ipv4: &'a [u8],
    /// Public IPv6 addresses, 16 bytes each.
    #[serde(with = "serde_bytes")]
    pub extranet_ipv6: &'a [u8],
    /// Opaque credential checked by the server.
    #[serde(with = "serde_bytes")]
    pub auth_token: &'a [u8],
    /// Resume point: the oldest sequence number the agent still holds
    /// unacked (equal to `next_seq` when it holds none).
    pub first_unacked_seq: u64,
    /// The sequence number the agent will give its next new record.
    pub next_seq: u64,
    /// Largest frame the agent accepts, in bytes.
    pub max_frame: u32,
    /// Smallest `Accept.max_frame` this agent can work with: a frame that
    /// carries one Batch holding its largest record. A server that cannot
    /// accept frames this large rejects the Hello with code 5
    /// (Incompatible).
    pub min_frame: u32,
}

/// Server -> agent: the handshake succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    /// The server's resume point: the sequence number it expects next. The
    /// agent treats every record below it as acked and sends from there.
    pub next_seq: u64,
    /// Largest frame the server accepts, in bytes.
    pub max_frame: u32,
    /// The server's pacing advice, in ms (0: none): how long it needs to
    /// admit its whole fleet. After losing this connection the agent spreads
    /// its retries over a window this wide (see [`crate::backoff`]).
    pub retry_window_ms: u32,
}

/// Server -> agent: the handshake failed; the server then closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject<'a> {
    /// Why, as a [`CloseCode`] number.
    pub code: u16,
    /// Human-readable detail.
    #[serde(borrow)]
    pub reason: Text<'a>,
    /// Minimum wait before retrying, in ms (0: the agent's own backoff).
    pub retry_after_ms: u32,
}

/// Agent -> server: `count` records with dense sequence numbers from
/// `first_seq`. `records` holds the entries back to back (see
/// [`crate::record`]); the first entry's timestamp is relative to `base_ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch<'a> {
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Timestamp the first record's delta is relative to.
    pub base_ts: u64,
    /// Number of records in `records`.
    pub count: u32,
    /// The entries.
    #[serde(with = "serde_bytes")]
    pub records: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The records, timestamps resolved.
    pub fn iter(&self) -> crate::record::EntryIter<'a> {
        crate::record::EntryIter::new(self.records, self.base_ts)
    }
}

/// Server -> agent: every record with sequence number `<= up_to` is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Highest sequence number acknowledged (inclusive).
    pub up_to: u64,
}

/// Liveness probe; answered by a [`Pong`] with the same nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Chosen by the sender, echoed back.
    pub nonce: u64,
}

/// Answer to a [`Ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The nonce of the ping answered.
    pub nonce: u64,
}

/// Server -> agent: a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task<'a> {
    /// Who it is for: empty or the agent's product name for the agent
    /// itself, else a plugin name.
    #[serde(borrow)]
    pub object_name: Text<'a>,
    /// What it is (e.g. 1060 = shutdown).
    pub data_type: u32,
    /// Command arguments, opaque to the library.
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
    /// Echoed in the [`TaskResult`].
    #[serde(borrow)]
    pub token: Text<'a>,
}

/// Server -> agent: configuration named `name` at `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config<'a> {
    /// Which configuration.
    #[serde(borrow)]
    pub name: Text<'a>,
    /// Its version; agents act only when it differs from the one held.
    #[serde(borrow)]
    pub version: Text<'a>,
    /// The configuration itself, opaque to the library.
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
}

/// Agent -> server: the outcome of a task. Agents send it as the payload of
/// a record of type 1050 (`TASK_RESULT`) so it is acked and retried like any
/// record; a bare frame of this kind is accepted by collectors too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult<'a> {
    /// The task's token.
    #[serde(borrow)]
    pub token: Text<'a>,
    /// 0 success; see [`task_status`] for the others.
    pub status: u32,
    /// Human-readable detail.
    #[serde(borrow)]
    pub message: Text<'a>,
}

/// Values of [`TaskResult::status`].
pub mod task_status {
    /// The task was carried out.
    pub const OK: u32 = 0;
    /// The task was attempted and failed.
    pub const FAILED: u32 = 1;
    /// No plugin of the task's object name is registered.
    pub const UNKNOWN_TARGET: u32 = 2;
    /// The agent could not queue the task (event queue full).
    pub const DROPPED: u32 = 3;
}

/// Either way: the sender closes the connection after this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close<'a> {
    /// Why, as a [`CloseCode`] number.
    pub code: u16,
    /// Human-readable detail.
    #[serde(borrow)]
    pub reason: Text<'a>,
}

/// Reasons for Close and Reject. Numbers are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// Orderly close.
    Normal = 0,
    /// The peer sent something that breaks the protocol.
    ProtocolError = 1,
    /// The sender is shutting down.
    Shutdown = 2,
    /// No frame arrived within the liveness timeout.
    Timeout = 3,
    /// Authentication failed (Reject).
    Unauthorized = 4,
    /// Protocol version or frame size not supported.
    Incompatible = 5,
    /// The server is overloaded; retry later.
    Busy = 6,
    /// The agent id is held by another live connection, or the Hello claims
    /// a resume point this connection has not proven it may set (collector
    /// Reject or Close; an agent treats it like any failure and backs off).
    Conflict = 7,
}

impl CloseCode {
    /// The code for a wire number, if known.
    pub const fn from_u16(v: u16) -> Option<CloseCode> {
        Some(match v {
            0 => CloseCode::Normal,
            1 => CloseCode::ProtocolError,
            2 => CloseCode::Shutdown,
            3 => CloseCode::Timeout,
            4 => CloseCode::Unauthorized,
            5 => CloseCode::Incompatible,
            6 => CloseCode::Busy,
            7 => CloseCode::Conflict,
            _ => return None,
        })
    }
}

/// Any message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Message<'a> {
    Hello(Hello<'a>),
    Accept(Accept),
    Reject(Reject<'a>),
    Batch(Batch<'a>),
    Ack(Ack),
    Ping(Ping),
    Pong(Pong),
    Task(Task<'a>),
    Config(Config<'a>),
    TaskResult(TaskResult<'a>),
    Close(Close<'a>),
}

/// Why a frame's body could not be read as a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DecodeError {
    /// The frame's version byte is not [`VERSION`].
    UnsupportedVersion = 1,
    /// The kind byte names no known kind.
    UnknownKind = 2,
    /// The body does not hold the kind's fields.
    Malformed = 3,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::UnsupportedVersion => "unsupported protocol version",
            DecodeError::UnknownKind => "unknown message kind",
            DecodeError::Malformed => "malformed message body",
        })
    }
}

impl<'a> Message<'a> {
    /// The message's kind.
    pub const fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Accept(_) => Kind::Accept,
            Message::Reject(_) => Kind::Reject,
            Message::Batch(_) => Kind::Batch,
            Message::Ack(_) => Kind::Ack,
            Message::Ping(_) => Kind::Ping,
            Message::Pong(_) => Kind::Pong,
            Message::Task(_) => Kind::Task,
            Message::Config(_) => Kind::Config,
            Message::TaskResult(_) => Kind::TaskResult,
            Message::Close(_) => Kind::Close,
        }
    }
}

//! The messages carried in frame bodies, and their codec.
//!
//! Each [`Kind`] has one body struct, encoded with postcard (field order as
//! declared, integers as varints, strings and byte strings as
//! `varint(len) | bytes`). Receivers ignore bytes after the last field they
//! know, so later minor versions may append fields. All borrowed fields point
//! into the frame they were decoded from: decoding never copies or allocates.
//!
//! Address lists are byte strings of packed addresses: 4 bytes per IPv4
//! address, 16 per IPv6 address, network order. A list whose length is not a
//! multiple of the address size is malformed.

use crate::frame::{self, EncodeError, Frame, Kind, VERSION};
use core::fmt;
use serde::{Deserialize, Serialize};

/// Agent -> server, first frame of every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// Stable, unique agent identity (e.g. a UUID).
    pub agent_id: &'a str,
    /// Host name.
    pub hostname: &'a str,
    /// Product name of the software the agent belongs to.
    pub product: &'a str,
    /// Version of that product.
    pub version: &'a str,
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
    pub reason: &'a str,
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
    pub object_name: &'a str,
    /// What it is (e.g. 1060 = shutdown).
    pub data_type: u32,
    /// Command arguments, opaque to the library.
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
    /// Echoed in the [`TaskResult`].
    pub token: &'a str,
}

/// Server -> agent: configuration named `name` at `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config<'a> {
    /// Which configuration.
    pub name: &'a str,
    /// Its version; agents act only when it differs from the one held.
    pub version: &'a str,
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
    pub token: &'a str,
    /// 0 success; see [`task_status`] for the others.
    pub status: u32,
    /// Human-readable detail.
    pub message: &'a str,
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
    pub reason: &'a str,
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

/// Reads one body of type `T` (trailing bytes ignored). [`Message::decode`]
/// is this plus dispatch on the kind; code that expects only a few kinds
/// (the agent) calls it directly so the other kinds' decoders are not linked.
pub fn decode_body<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    postcard::take_from_bytes(bytes).map(|(v, _rest)| v).map_err(|_| DecodeError::Malformed)
}

/// Writes `body` as one frame of `kind`; the single-kind counterpart of
/// [`Message::encode`], which links every kind's encoder.
pub fn encode_body<T: Serialize>(kind: Kind, seq: u32, body: &T, out: &mut [u8]) -> Result<usize, EncodeError> {
    frame::encode_with(kind, 0, seq, out, |b| postcard::to_slice(body, b).ok().map(|s| s.len()))
}

use decode_body as body;

fn check_addrs(list: &[u8], size: usize) -> Result<(), DecodeError> {
    if list.len().is_multiple_of(size) { Ok(()) } else { Err(DecodeError::Malformed) }
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

    /// Reads the message in `frame`.
    pub fn decode(frame: &Frame<'a>) -> Result<Message<'a>, DecodeError> {
        if frame.version != VERSION {
            return Err(DecodeError::UnsupportedVersion);
        }
        let b = frame.body;
        let kind = Kind::from_u8(frame.kind).ok_or(DecodeError::UnknownKind)?;
        Ok(match kind {
            Kind::Hello => {
                let h: Hello<'a> = body(b)?;
                check_addrs(h.intranet_ipv4, 4)?;
                check_addrs(h.extranet_ipv4, 4)?;
                check_addrs(h.intranet_ipv6, 16)?;
                check_addrs(h.extranet_ipv6, 16)?;
                Message::Hello(h)
            }
            // Field 3 is optional (see `body`): read by hand, not postcard.
            Kind::Accept => Message::Accept(crate::body::read_body(b)?),
            Kind::Reject => Message::Reject(body(b)?),
            Kind::Batch => Message::Batch(body(b)?),
            Kind::Ack => Message::Ack(body(b)?),
            Kind::Ping => Message::Ping(body(b)?),
            Kind::Pong => Message::Pong(body(b)?),
            Kind::Task => Message::Task(body(b)?),
            Kind::Config => Message::Config(body(b)?),
            Kind::TaskResult => Message::TaskResult(body(b)?),
            Kind::Close => Message::Close(body(b)?),
        })
    }

    /// Writes the message as one frame with frame counter `seq` into `out`;
    /// returns the frame's length.
    pub fn encode(&self, seq: u32, out: &mut [u8]) -> Result<usize, EncodeError> {
        fn put<T: Serialize>(v: &T, b: &mut [u8]) -> Option<usize> {
            postcard::to_slice(v, b).ok().map(|s| s.len())
        }
        frame::encode_with(self.kind(), 0, seq, out, |b| match self {
            Message::Hello(m) => put(m, b),
            Message::Accept(m) => put(m, b),
            Message::Reject(m) => put(m, b),
            Message::Batch(m) => put(m, b),
            Message::Ack(m) => put(m, b),
            Message::Ping(m) => put(m, b),
            Message::Pong(m) => put(m, b),
            Message::Task(m) => put(m, b),
            Message::Config(m) => put(m, b),
            Message::TaskResult(m) => put(m, b),
            Message::Close(m) => put(m, b),
        })
    }
}

/// Encodes a TaskResult body alone (the payload of a `TASK_RESULT` record).
pub fn encode_task_result(r: &TaskResult<'_>, out: &mut [u8]) -> Option<usize> {
    postcard::to_slice(r, out).ok().map(|s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{Feed, FrameDecoder};

    #[test]
    fn round_trip_through_decoder() {
        let msg = Message::Task(Task { object_name: "scanner", data_type: 6000, payload: b"\x01\x02", token: "t-1" });
        let mut out = [0u8; 64];
        let n = msg.encode(3, &mut out).unwrap();
        let mut store = [0u8; 64];
        let mut dec = FrameDecoder::new(&mut store);
        let Feed::Frame { frame, .. } = dec.feed(&out[..n]) else { panic!("no frame") };
        assert_eq!(frame.seq, 3);
        assert_eq!(Message::decode(&frame), Ok(msg));
    }

    #[test]
    fn rejects_bad_bodies() {
        let f = Frame { version: 1, kind: Kind::Ack as u8, flags: 0, seq: 0, body: &[0x80] };
        assert_eq!(Message::decode(&f), Err(DecodeError::Malformed));
        let f = Frame { version: 2, ..f };
        assert_eq!(Message::decode(&f), Err(DecodeError::UnsupportedVersion));
        let f = Frame { version: 1, kind: 99, ..f };
        assert_eq!(Message::decode(&f), Err(DecodeError::UnknownKind));
        // Trailing bytes are ignored (forward compatibility).
        let f = Frame { version: 1, kind: Kind::Ack as u8, flags: 0, seq: 0, body: &[5, 0xff] };
        assert_eq!(Message::decode(&f), Ok(Message::Ack(Ack { up_to: 5 })));
        let mut out = [0u8; 64];
        let hello = Hello {
            agent_id: "a", hostname: "h", product: "p", version: "1", intranet_ipv4: &[10, 0, 0],
            intranet_ipv6: &[], extranet_ipv4: &[], extranet_ipv6: &[], auth_token: &[],
            first_unacked_seq: 0, next_seq: 0, max_frame: 512, min_frame: 512,
        };
        let n = Message::Hello(hello).encode(0, &mut out).unwrap();
        let f = Frame { version: 1, kind: 1, flags: 0, seq: 0, body: &out[13..n - 4] };
        assert_eq!(Message::decode(&f), Err(DecodeError::Malformed));
    }
}

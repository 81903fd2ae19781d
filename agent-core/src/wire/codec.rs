//! The wire codec: one hand-written reader and one writer per body, for
//! every message kind ([`crate::wire::message`]) and for the payloads the
//! agent puts in records (heartbeats of [`crate::stats`], plugin
//! heartbeats, task results).
//!
//! The byte format is postcard's, written out by hand so that no generic
//! serde code is linked into firmware: fields in declared order, unsigned
//! integers as LEB128 varints, strings and byte strings as
//! `varint(len) | bytes`, options as a one-byte tag (0 absent, 1 present)
//! then the value, enums as their variant index (a `u32` varint). Readers
//! keep postcard's limits: a varint is at most 3 bytes for a `u16`, 5 for a
//! `u32`, 10 for a `u64`, and for a length 5 or 10 as `usize` is 32 or 64
//! bits; strings must be UTF-8 (checked by [`crate::text::is_utf8`] and
//! handed out as [`Text`]); bytes after the last field are ignored.
//! The property tests (`tests/body_props.rs`, `tests/heartbeat_layout.rs`)
//! and the `body_codec` fuzz target check every reader and writer against
//! postcard itself on every value and every body.
//!
//! Appended fields: a field added to a kind after its first release is
//! read only when bytes remain (older peers end before it). Adding a field
//! is a change to the type and to its two impls here.

use crate::plugin::{PluginHeartbeat, PluginStatus};
use crate::text::Text;
use crate::stats::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};
use crate::wire::frame::{self, EncodeError, Frame, Kind, VERSION};
use crate::wire::message::{
    Accept, Ack, Batch, Close, Config, DecodeError, Hello, Message, Ping, Pong, Reject, Task, TaskResult,
};
use crate::wire::varint;

/// A cursor over a body.
///
/// Two ways to read: each field's own `Result` (the `pub` methods), or the
/// crate's sticky reads (`get_*`), which give a field that cannot be read
/// as its type's default, remember the failure and are checked once, by
/// the crate-internal `finish`: the body then reads as `Malformed`, the same
/// outcome as the first failing `Result` read.
pub struct BodyReader<'a> {
    bytes: &'a [u8],
    failed: bool,
}

impl<'a> BodyReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BodyReader { bytes, failed: false }
    }

    /// `value` if every sticky read so far succeeded, else `Malformed`.
    pub(crate) fn finish<T>(&self, value: T) -> Result<T, DecodeError> {
        if self.failed { Err(DecodeError::Malformed) } else { Ok(value) }
    }

    /// Runs a sticky read as a `Result` one: `Err` when it fails (the
    /// sticky state, for [`BodyReader::finish`], is left as it was).
    fn checked<T>(&mut self, read: impl FnOnce(&mut Self) -> T) -> Result<T, DecodeError> {
        let earlier = core::mem::replace(&mut self.failed, false);
        let v = read(self);
        let failed = core::mem::replace(&mut self.failed, earlier);
        if failed { Err(DecodeError::Malformed) } else { Ok(v) }
    }

    /// Sticky: an unsigned integer of `bits` bits (16, 32 or 64): a varint
    /// of at most `bits.div_ceil(7)` bytes whose value fits; 0 with the
    /// failure noted when not. An unreadable varint is not consumed; one
    /// that does not fit is.
    // Inlined: `bits` is a constant at every caller, so the length is too
    // (no division at run time in the shared `get_varint`).
    #[inline(always)]
    fn get_uint(&mut self, bits: u32) -> u64 {
        self.get_varint(bits.div_ceil(7) as usize)
    }

    /// [`BodyReader::get_uint`] by the varint's longest length: 3 bytes
    /// for 16 bits, 5 for 32, 10 for 64.
    fn get_varint(&mut self, max_len: usize) -> u64 {
        if let Ok((v, n)) = varint::decode_u64(self.bytes) {
            if n <= max_len {
                self.bytes = self.bytes.get(n..).unwrap_or_default();
                // Halves compared apart: no 64-bit shift by a variable
                // amount (a library call on 32-bit MCUs).
                let fits = match max_len {
                    3 => v <= u64::from(u16::MAX),
                    5 => v <= u64::from(u32::MAX),
                    _ => true,
                };
                if fits {
                    return v;
                }
            }
        }
        self.failed = true;
        0
    }

    /// Sticky [`BodyReader::u16`].
    #[inline(always)]
    pub(crate) fn get_u16(&mut self) -> u16 {
        self.get_uint(16) as u16
    }

    /// Sticky [`BodyReader::u32`].
    #[inline(always)]
    pub(crate) fn get_u32(&mut self) -> u32 {
        self.get_uint(32) as u32
    }

    /// Sticky [`BodyReader::u64`].
    #[inline(always)]
    pub(crate) fn get_u64(&mut self) -> u64 {
        self.get_uint(64)
    }

    /// Sticky [`BodyReader::bytes`]: empty when it fails.
    pub(crate) fn get_bytes(&mut self) -> &'a [u8] {
        // A usize (32 or 64 bits), so the cast keeps the value.
        let n = self.get_uint(usize::BITS) as usize;
        if let Some((head, rest)) = self.bytes.split_at_checked(n) {
            self.bytes = rest;
            return head;
        }
        self.failed = true;
        &[]
    }

    /// Sticky [`BodyReader::str`]: empty when it fails.
    pub(crate) fn get_str(&mut self) -> Text<'a> {
        let b = self.get_bytes();
        Text::from_utf8(b).unwrap_or_else(|| {
            self.failed = true;
            Text::default()
        })
    }

    /// A `u16` varint.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.checked(Self::get_u16)
    }

    /// A `u32` varint.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.checked(Self::get_u32)
    }

    /// A `u64` varint.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.checked(Self::get_u64)
    }

    /// A byte string: varint length (at most as many bytes as postcard
    /// allows for a `usize` on this target), then the bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        self.checked(Self::get_bytes)
    }

    /// Whether the body has no bytes left (an optional trailing field is
    /// absent).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A string: a byte string that must be UTF-8 ([`crate::text::is_utf8`]).
    pub fn str(&mut self) -> Result<Text<'a>, DecodeError> {
        self.checked(Self::get_str)
    }

    /// An option's tag: one byte, 0 (absent) or 1 (present).
    pub fn tag(&mut self) -> Result<bool, DecodeError> {
        let (&t, rest) = self.bytes.split_first().ok_or(DecodeError::Malformed)?;
        self.bytes = rest;
        match t {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed),
        }
    }

    /// An optional `u32`.
    pub fn option_u32(&mut self) -> Result<Option<u32>, DecodeError> {
        if self.tag()? { self.u32().map(Some) } else { Ok(None) }
    }

    /// An optional `u64`.
    pub fn option_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        if self.tag()? { self.u64().map(Some) } else { Ok(None) }
    }
}

/// A body the agent can read by hand.
pub trait ReadBody<'a>: Sized {
    /// Reads the fields in order; trailing bytes are left unread.
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError>;
}

/// Reads a body of type `T` (trailing bytes ignored); also
/// [`crate::message::decode_body`].
pub fn read_body<'a, T: ReadBody<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    T::read(&mut BodyReader::new(body))
}

impl<'a> ReadBody<'a> for Ping {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Ping { nonce: r.get_u64() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Pong {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Pong { nonce: r.get_u64() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Ack {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Ack { up_to: r.get_u64() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Accept {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let (next_seq, max_frame) = (r.get_u64(), r.get_u32());
        // Field 3 came later: an Accept that ends after field 2 (an older
        // collector) gives no advice.
        let retry_window_ms = if r.is_empty() { 0 } else { r.get_u32() };
        let v = Accept { next_seq, max_frame, retry_window_ms };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Reject<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Reject { code: r.get_u16(), reason: r.get_str(), retry_after_ms: r.get_u32() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Close<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Close { code: r.get_u16(), reason: r.get_str() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Task<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Task { object_name: r.get_str(), data_type: r.get_u32(), payload: r.get_bytes(), token: r.get_str() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Config<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let v = Config { name: r.get_str(), version: r.get_str(), payload: r.get_bytes() };
        r.finish(v)
    }
}

impl<'a> ReadBody<'a> for Hello<'a> {
    /// The fields only; [`Message::decode`] also checks the address lists.
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Hello {
            agent_id: r.str()?,
            hostname: r.str()?,
            product: r.str()?,
            version: r.str()?,
            intranet_ipv4: r.bytes()?,
            intranet_ipv6: r.bytes()?,
            extranet_ipv4: r.bytes()?,
            extranet_ipv6: r.bytes()?,
            auth_token: r.bytes()?,
            first_unacked_seq: r.u64()?,
            next_seq: r.u64()?,
            max_frame: r.u32()?,
            min_frame: r.u32()?,
        })
    }
}

impl<'a> ReadBody<'a> for Batch<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Batch { first_seq: r.u64()?, base_ts: r.u64()?, count: r.u32()?, records: r.bytes()? })
    }
}

impl<'a> ReadBody<'a> for TaskResult<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(TaskResult { token: r.str()?, status: r.u32()?, message: r.str()? })
    }
}

impl<'a> ReadBody<'a> for PluginHeartbeat<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let (name, version, pid) = (r.str()?, r.str()?, r.u32()?);
        // An enum is its variant index, a `u32` varint.
        let status = match r.u32()? {
            0 => PluginStatus::Starting,
            1 => PluginStatus::Running,
            2 => PluginStatus::Stopping,
            3 => PluginStatus::Stopped,
            4 => PluginStatus::Error,
            _ => return Err(DecodeError::Malformed),
        };
        Ok(PluginHeartbeat { name, version, pid, status })
    }
}

impl<'a> ReadBody<'a> for HostStats {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(HostStats {
            cpu_permille: r.option_u32()?,
            rss_bytes: r.option_u64()?,
            open_fds: r.option_u32()?,
            load1_centi: r.option_u32()?,
            load5_centi: r.option_u32()?,
            load15_centi: r.option_u32()?,
            mem_used_bytes: r.option_u64()?,
            mem_total_bytes: r.option_u64()?,
            tx_bytes_per_sec: r.option_u64()?,
            rx_bytes_per_sec: r.option_u64()?,
        })
    }
}

impl<'a> ReadBody<'a> for AgentStats {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(AgentStats {
            pushed: r.u64()?,
            acked: r.u64()?,
            dropped_full: r.u64()?,
            dropped_too_large: r.u64()?,
            dropped_evicted: r.u64()?,
            bytes_sent: r.u64()?,
            bytes_received: r.u64()?,
            frames_sent: r.u64()?,
            frames_received: r.u64()?,
            connections: r.u64()?,
            connect_failures: r.u64()?,
            last_rtt_ms: r.option_u32()?,
            decoder_skipped_bytes: r.u64()?,
            decoder_bad_crc: r.u64()?,
            unknown_kinds: r.u64()?,
            malformed: r.u64()?,
            events_dropped: r.u64()?,
            tasks_unroutable: r.u64()?,
            protocol_errors: r.u64()?,
            ring_used_bytes: r.u32()?,
            ring_capacity: r.u32()?,
            tasks_duplicate: r.u64()?,
            decoder_oversized: r.u64()?,
            clock_anomalies: r.u64()?,
            peer_incompatible: r.u64()?,
            ack_timeouts: r.u64()?,
        })
    }
}

impl<'a> ReadBody<'a> for HeartbeatRecords {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(HeartbeatRecords { pushed: r.u64()?, dropped_full: r.u64()?, dropped_evicted: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for AgentHeartbeat {
    /// Revision 3's `heartbeat_records` is read as `None` when it cannot be
    /// read at all (a revision-2 payload ends before it), as postcard's
    /// decoder with a fallback to the revision-2 layout did.
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let (host, lib) = (HostStats::read(r)?, AgentStats::read(r)?);
        let records = |r: &mut BodyReader<'a>| if r.tag()? { HeartbeatRecords::read(r).map(Some) } else { Ok(None) };
        Ok(AgentHeartbeat { host, lib, heartbeat_records: records(r).unwrap_or(None) })
    }
}

/// Appends postcard-encoded fields to a buffer. A field that does not fit
/// is not written but still counted, so one check at the end
/// ([`BodyWriter::fits`]) says whether the body fit (what was written is
/// then meaningless); over an empty buffer it measures a body.
pub struct BodyWriter<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl<'o> BodyWriter<'o> {
    /// A writer at the start of `out`.
    pub fn new(out: &'o mut [u8]) -> Self {
        BodyWriter { out, len: 0 }
    }

    /// Bytes of the body so far, written or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when every field so far fit the buffer.
    pub fn fits(&self) -> bool {
        self.len <= self.out.len()
    }

    fn byte(&mut self, b: u8) {
        if let Some(x) = self.out.get_mut(self.len) {
            *x = b;
        }
        self.len += 1;
    }

    /// Any unsigned integer, as a varint.
    pub fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// A byte string: varint length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        if let Some(dst) = self.out.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
        }
        self.len += b.len();
    }

    /// A string.
    pub fn str(&mut self, s: Text<'_>) {
        self.bytes(s.as_bytes())
    }

    /// An optional unsigned integer: tag 0, or tag 1 and the varint.
    pub fn option(&mut self, v: Option<u64>) {
        self.byte(u8::from(v.is_some()));
        if let Some(v) = v {
            self.uint(v);
        }
    }
}

/// A body the agent writes by hand.
pub trait WriteBody {
    /// Writes the fields in order ([`BodyWriter::fits`] says whether they
    /// fit).
    fn write(&self, w: &mut BodyWriter<'_>);
}

/// Writes `v` into `out`; its length, or `None` if it does not fit.
pub fn write_body<T: WriteBody>(v: &T, out: &mut [u8]) -> Option<usize> {
    let mut w = BodyWriter::new(out);
    v.write(&mut w);
    w.fits().then_some(w.len())
}

/// Writes `v` as one frame of `kind` (flags 0) into `out`; the frame's length.
pub fn write_frame<T: WriteBody>(kind: Kind, seq: u32, v: &T, out: &mut [u8]) -> Result<usize, EncodeError> {
    frame::encode_with(kind, 0, seq, out, |b| write_body(v, b))
}

impl WriteBody for Hello<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.str(self.agent_id);
        w.str(self.hostname);
        w.str(self.product);
        w.str(self.version);
        w.bytes(self.intranet_ipv4);
        w.bytes(self.intranet_ipv6);
        w.bytes(self.extranet_ipv4);
        w.bytes(self.extranet_ipv6);
        w.bytes(self.auth_token);
        w.uint(self.first_unacked_seq);
        w.uint(self.next_seq);
        w.uint(u64::from(self.max_frame));
        w.uint(u64::from(self.min_frame));
    }
}

impl WriteBody for Accept {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.next_seq);
        w.uint(u64::from(self.max_frame));
        w.uint(u64::from(self.retry_window_ms));
    }
}

impl WriteBody for Reject<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(u64::from(self.code));
        w.str(self.reason);
        w.uint(u64::from(self.retry_after_ms));
    }
}

impl WriteBody for Batch<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.first_seq);
        w.uint(self.base_ts);
        w.uint(u64::from(self.count));
        w.bytes(self.records);
    }
}

impl WriteBody for Ack {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.up_to);
    }
}

impl WriteBody for Task<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.str(self.object_name);
        w.uint(u64::from(self.data_type));
        w.bytes(self.payload);
        w.str(self.token);
    }
}

impl WriteBody for Config<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.str(self.name);
        w.str(self.version);
        w.bytes(self.payload);
    }
}

impl WriteBody for Ping {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.nonce);
    }
}

impl WriteBody for Pong {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.nonce);
    }
}

impl WriteBody for Close<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(u64::from(self.code));
        w.str(self.reason);
    }
}

impl WriteBody for TaskResult<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.str(self.token);
        w.uint(u64::from(self.status));
        w.str(self.message);
    }
}

impl WriteBody for PluginHeartbeat<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.str(self.name);
        w.str(self.version);
        w.uint(u64::from(self.pid));
        w.uint(self.status as u64);
    }
}

// Field by field rather than through an array of values: building the
// array costs a load, a spill and a store per field on a Cortex-M4.
impl WriteBody for HostStats {
    #[inline(never)]
    fn write(&self, w: &mut BodyWriter<'_>) {
        let o32 = |v: Option<u32>| v.map(u64::from);
        w.option(o32(self.cpu_permille));
        w.option(self.rss_bytes);
        w.option(o32(self.open_fds));
        w.option(o32(self.load1_centi));
        w.option(o32(self.load5_centi));
        w.option(o32(self.load15_centi));
        w.option(self.mem_used_bytes);
        w.option(self.mem_total_bytes);
        w.option(self.tx_bytes_per_sec);
        w.option(self.rx_bytes_per_sec);
    }
}

impl WriteBody for AgentStats {
    #[inline(never)]
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.pushed);
        w.uint(self.acked);
        w.uint(self.dropped_full);
        w.uint(self.dropped_too_large);
        w.uint(self.dropped_evicted);
        w.uint(self.bytes_sent);
        w.uint(self.bytes_received);
        w.uint(self.frames_sent);
        w.uint(self.frames_received);
        w.uint(self.connections);
        w.uint(self.connect_failures);
        w.option(self.last_rtt_ms.map(u64::from));
        w.uint(self.decoder_skipped_bytes);
        w.uint(self.decoder_bad_crc);
        w.uint(self.unknown_kinds);
        w.uint(self.malformed);
        w.uint(self.events_dropped);
        w.uint(self.tasks_unroutable);
        w.uint(self.protocol_errors);
        w.uint(u64::from(self.ring_used_bytes));
        w.uint(u64::from(self.ring_capacity));
        w.uint(self.tasks_duplicate);
        w.uint(self.decoder_oversized);
        w.uint(self.clock_anomalies);
        w.uint(self.peer_incompatible);
        w.uint(self.ack_timeouts);
    }
}

impl WriteBody for AgentHeartbeat {
    fn write(&self, w: &mut BodyWriter<'_>) {
        HeartbeatParts { host: &self.host, lib: &self.lib, heartbeat_records: self.heartbeat_records.as_ref() }.write(w);
    }
}

/// An [`AgentHeartbeat`] by reference: its parts encoded without first
/// copying them (320 bytes) into a heartbeat value on the stack. (The
/// agent's own heartbeat writes the same bytes straight from its counters;
/// `agent/heartbeat.rs`.)
pub struct HeartbeatParts<'a> {
    /// Host statistics.
    pub host: &'a HostStats,
    /// The library's counters.
    pub lib: &'a AgentStats,
    /// The heartbeat records among them (revision 3; `None` writes the
    /// option's absent tag).
    pub heartbeat_records: Option<&'a HeartbeatRecords>,
}

impl WriteBody for HeartbeatParts<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        self.host.write(w);
        self.lib.write(w);
        match self.heartbeat_records {
            None => w.option(None),
            Some(r) => {
                // An option: tag 1, then the struct's three fields.
                w.option(Some(r.pushed));
                w.uint(r.dropped_full);
                w.uint(r.dropped_evicted);
            }
        }
    }
}


impl WriteBody for HeartbeatRecords {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.uint(self.pushed);
        w.uint(self.dropped_full);
        w.uint(self.dropped_evicted);
    }
}

impl AgentHeartbeat {
    /// Encodes into `out`, returning the used prefix (`None` if it does not
    /// fit; [`crate::stats::MAX_HEARTBEAT_LEN`] bytes always do).
    pub fn encode<'o>(&self, out: &'o mut [u8]) -> Option<&'o mut [u8]> {
        let n = write_body(self, out)?;
        Some(&mut out[..n])
    }

    /// Decodes a heartbeat payload (trailing bytes ignored). A revision-2
    /// payload (ending after `lib`) decodes with `heartbeat_records: None`.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        read_body(bytes).ok()
    }
}

/// Encodes a TaskResult body alone (the payload of a `TASK_RESULT` record).
pub fn encode_task_result(r: &TaskResult<'_>, out: &mut [u8]) -> Option<usize> {
    write_body(r, out)
}

fn check_addrs(list: &[u8], size: usize) -> Result<(), DecodeError> {
    if list.len().is_multiple_of(size) { Ok(()) } else { Err(DecodeError::Malformed) }
}

impl<'a> Message<'a> {
    /// Reads the message in `frame`. Code that expects only a few kinds
    /// (the agent) calls [`read_body`] for those instead, so the other
    /// kinds' readers are not linked.
    pub fn decode(frame: &Frame<'a>) -> Result<Message<'a>, DecodeError> {
        if frame.version != VERSION {
            return Err(DecodeError::UnsupportedVersion);
        }
        let b = frame.body;
        let kind = Kind::from_u8(frame.kind).ok_or(DecodeError::UnknownKind)?;
        Ok(match kind {
            Kind::Hello => {
                let h: Hello<'a> = read_body(b)?;
                check_addrs(h.intranet_ipv4, 4)?;
                check_addrs(h.extranet_ipv4, 4)?;
                check_addrs(h.intranet_ipv6, 16)?;
                check_addrs(h.extranet_ipv6, 16)?;
                Message::Hello(h)
            }
            Kind::Accept => Message::Accept(read_body(b)?),
            Kind::Reject => Message::Reject(read_body(b)?),
            Kind::Batch => Message::Batch(read_body(b)?),
            Kind::Ack => Message::Ack(read_body(b)?),
            Kind::Ping => Message::Ping(read_body(b)?),
            Kind::Pong => Message::Pong(read_body(b)?),
            Kind::Task => Message::Task(read_body(b)?),
            Kind::Config => Message::Config(read_body(b)?),
            Kind::TaskResult => Message::TaskResult(read_body(b)?),
            Kind::Close => Message::Close(read_body(b)?),
        })
    }

    /// Writes the message as one frame with frame counter `seq` into `out`;
    /// returns the frame's length. Code that sends only a few kinds (the
    /// agent) calls [`write_frame`] for those instead.
    pub fn encode(&self, seq: u32, out: &mut [u8]) -> Result<usize, EncodeError> {
        frame::encode_with(self.kind(), 0, seq, out, |b| match self {
            Message::Hello(m) => write_body(m, b),
            Message::Accept(m) => write_body(m, b),
            Message::Reject(m) => write_body(m, b),
            Message::Batch(m) => write_body(m, b),
            Message::Ack(m) => write_body(m, b),
            Message::Ping(m) => write_body(m, b),
            Message::Pong(m) => write_body(m, b),
            Message::Task(m) => write_body(m, b),
            Message::Config(m) => write_body(m, b),
            Message::TaskResult(m) => write_body(m, b),
            Message::Close(m) => write_body(m, b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decoder::{Feed, FrameDecoder};

    /// Postcard's reading of a body of type `T` (trailing bytes ignored).
    fn decode_body<'a, T: serde::Deserialize<'a>>(b: &'a [u8]) -> Result<T, DecodeError> {
        postcard::take_from_bytes(b).map(|(v, _)| v).map_err(|_| DecodeError::Malformed)
    }

    /// Accept by postcard: three fields, or exactly two (field 3 absent).
    fn postcard_accept(b: &[u8]) -> Option<Accept> {
        decode_body::<Accept>(b).ok().or_else(|| match postcard::take_from_bytes::<(u64, u32)>(b) {
            Ok(((next_seq, max_frame), [])) => Some(Accept { next_seq, max_frame, retry_window_ms: 0 }),
            _ => None,
        })
    }

    #[test]
    fn accept_without_field_3_is_no_advice() {
        let b = [0xce, 0x09, 0x80, 0x80, 0x10];
        let want = Accept { next_seq: 1230, max_frame: 262_144, retry_window_ms: 0 };
        assert_eq!(read_body::<Accept>(&b), Ok(want));
        assert_eq!(postcard_accept(&b), Some(want));
        // A truncated field 3 is still malformed.
        assert_eq!(read_body::<Accept>(&[0xce, 0x09, 0x80, 0x80, 0x10, 0x80]), Err(DecodeError::Malformed));
    }

    #[test]
    fn agrees_with_postcard_on_edge_cases() {
        // Overlong u32 (6 bytes), u16 overflow, truncated string, bad UTF-8,
        // trailing bytes, and a plain good body.
        let bodies: [&[u8]; 6] = [
            &[1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0xff, 0xff, 0x04, 0, 0],
            &[0, 5, b'a'],
            &[0, 1, 0xff, 0],
            &[7, 0x80, 0x01, 0xaa, 0xbb],
            &[1, 2, b'h', b'i', 3],
        ];
        for b in bodies {
            assert_eq!(read_body::<Accept>(b).ok(), postcard_accept(b), "{b:?}");
            assert_eq!(read_body::<Reject<'_>>(b).ok(), decode_body::<Reject<'_>>(b).ok(), "{b:?}");
            assert_eq!(read_body::<Close<'_>>(b).ok(), decode_body::<Close<'_>>(b).ok(), "{b:?}");
            assert_eq!(read_body::<Ack>(b).ok(), decode_body::<Ack>(b).ok(), "{b:?}");
        }
    }

    /// The reader as it was before the sticky reads: each field a `Result`,
    /// the first failure returned (kept as the reference for
    /// `sticky_reads_match_the_result_reader`).
    struct OldReader<'a> {
        bytes: &'a [u8],
    }

    impl<'a> OldReader<'a> {
        fn varint(&mut self, max_len: usize) -> Result<u64, DecodeError> {
            let (v, n) = varint::decode_u64(self.bytes).map_err(|_| DecodeError::Malformed)?;
            if n > max_len {
                return Err(DecodeError::Malformed);
            }
            self.bytes = &self.bytes[n..];
            Ok(v)
        }
        fn u16(&mut self) -> Result<u16, DecodeError> {
            u16::try_from(self.varint(3)?).map_err(|_| DecodeError::Malformed)
        }
        fn u32(&mut self) -> Result<u32, DecodeError> {
            u32::try_from(self.varint(5)?).map_err(|_| DecodeError::Malformed)
        }
        fn u64(&mut self) -> Result<u64, DecodeError> {
            self.varint(varint::MAX_LEN_U64)
        }
        fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
            const USIZE_VARINT_MAX: usize = (usize::BITS as usize).div_ceil(7);
            let n = usize::try_from(self.varint(USIZE_VARINT_MAX)?).map_err(|_| DecodeError::Malformed)?;
            let (head, rest) = (self.bytes.get(..n), self.bytes.get(n..));
            let (Some(head), Some(rest)) = (head, rest) else { return Err(DecodeError::Malformed) };
            self.bytes = rest;
            Ok(head)
        }
        fn str(&mut self) -> Result<Text<'a>, DecodeError> {
            Text::from_utf8(self.bytes()?).ok_or(DecodeError::Malformed)
        }
    }

    /// The agent's downlink bodies as the old reader read them.
    fn old_messages(b: &[u8]) -> [Result<Message<'_>, DecodeError>; 6] {
        let r = || OldReader { bytes: b };
        [
            (|| Ok(Message::Ping(Ping { nonce: r().u64()? })))(),
            (|| {
                let mut r = r();
                let (next_seq, max_frame) = (r.u64()?, r.u32()?);
                let retry_window_ms = if r.bytes.is_empty() { 0 } else { r.u32()? };
                Ok(Message::Accept(Accept { next_seq, max_frame, retry_window_ms }))
            })(),
            (|| {
                let mut r = r();
                Ok(Message::Reject(Reject { code: r.u16()?, reason: r.str()?, retry_after_ms: r.u32()? }))
            })(),
            (|| {
                let mut r = r();
                Ok(Message::Close(Close { code: r.u16()?, reason: r.str()? }))
            })(),
            (|| {
                let mut r = r();
                Ok(Message::Task(Task { object_name: r.str()?, data_type: r.u32()?, payload: r.bytes()?, token: r.str()? }))
            })(),
            (|| {
                let mut r = r();
                Ok(Message::Config(Config { name: r.str()?, version: r.str()?, payload: r.bytes()? }))
            })(),
        ]
    }

    fn new_messages(b: &[u8]) -> [Result<Message<'_>, DecodeError>; 6] {
        [
            read_body(b).map(Message::Ping),
            read_body(b).map(Message::Accept),
            read_body(b).map(Message::Reject),
            read_body(b).map(Message::Close),
            read_body(b).map(Message::Task),
            read_body(b).map(Message::Config),
        ]
    }

    /// Bodies: random bytes biased to small varints, continuation bytes,
    /// 0xff and invalid UTF-8, and good bodies of each kind with one byte
    /// changed, dropped or cut.
    fn bodies(mut f: impl FnMut(&[u8])) {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..10_000 {
            let len = (rnd() % 24) as usize;
            let b: [u8; 24] = core::array::from_fn(|_| match rnd() % 6 {
                0 => 0x80 | rnd() as u8,
                1 => 0xff,
                2..=3 => (rnd() % 8) as u8,
                _ => rnd() as u8,
            });
            f(&b[..len]);
        }
        let good = [
            Message::Ping(Ping { nonce: u64::MAX }),
            Message::Accept(Accept { next_seq: 300, max_frame: 70_000, retry_window_ms: 5 }),
            Message::Reject(Reject { code: 503, reason: "busy \u{e9}".into(), retry_after_ms: 1_000 }),
            Message::Close(Close { code: 1, reason: "bye".into() }),
            Message::Task(Task { object_name: "scanner".into(), data_type: 6000, payload: b"\x01\x02", token: "t-1".into() }),
            Message::Config(Config { name: "n\u{e9}".into(), version: "v2".into(), payload: &[0xff; 3] }),
        ];
        for m in good {
            let mut buf = [0u8; 64];
            let n = match &m {
                Message::Ping(x) => write_body(x, &mut buf),
                Message::Accept(x) => write_body(x, &mut buf),
                Message::Reject(x) => write_body(x, &mut buf),
                Message::Close(x) => write_body(x, &mut buf),
                Message::Task(x) => write_body(x, &mut buf),
                Message::Config(x) => write_body(x, &mut buf),
                _ => unreachable!(),
            }
            .unwrap();
            let b = &buf[..n];
            f(b);
            for i in 0..n {
                f(&b[..i]);
                let mut v = [0u8; 64];
                v[..i].copy_from_slice(&b[..i]);
                v[i..n - 1].copy_from_slice(&b[i + 1..]);
                f(&v[..n - 1]);
                for d in [0x00, 0x01, 0x7f, 0x80, 0xc3, 0xff] {
                    let mut v = buf;
                    v[i] = d;
                    f(&v[..n]);
                }
            }
        }
    }

    #[test]
    fn sticky_reads_match_the_result_reader() {
        let mut count = 0;
        bodies(|b| {
            count += 1;
            assert_eq!(new_messages(b), old_messages(b), "body {b:02x?}");
            // The public reads, in every order, keep the old results and
            // the old cursor, failures included (a failed read may be
            // followed by others).
            for ops in 0..6u32.pow(3) {
                let (mut new, mut old) = (BodyReader::new(b), OldReader { bytes: b });
                let mut o = ops;
                for _ in 0..3 {
                    match o % 6 {
                        0 => assert_eq!(new.u16(), old.u16()),
                        1 => assert_eq!(new.u32(), old.u32()),
                        2 => assert_eq!(new.u64(), old.u64()),
                        3 => assert_eq!(new.bytes(), old.bytes()),
                        4 => assert_eq!(new.str(), old.str()),
                        _ => assert_eq!(new.is_empty(), old.bytes.is_empty()),
                    }
                    assert_eq!(new.bytes, old.bytes, "body {b:02x?}, ops {ops}");
                    o /= 6;
                }
                // Result reads leave the sticky state alone.
                assert_eq!(new.finish(()), Ok(()));
            }
        });
        assert!(count > 10_000);
    }

    #[test]
    fn round_trip_through_decoder() {
        let msg = Message::Task(Task { object_name: "scanner".into(), data_type: 6000, payload: b"\x01\x02", token: "t-1".into() });
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
            agent_id: "a".into(), hostname: "h".into(), product: "p".into(), version: "1".into(), intranet_ipv4: &[10, 0, 0],
            intranet_ipv6: &[], extranet_ipv4: &[], extranet_ipv6: &[], auth_token: &[],
            first_unacked_seq: 0, next_seq: 0, max_frame: 512, min_frame: 512,
        };
        let n = Message::Hello(hello).encode(0, &mut out).unwrap();
        let f = Frame { version: 1, kind: 1, flags: 0, seq: 0, body: &out[13..n - 4] };
        assert_eq!(Message::decode(&f), Err(DecodeError::Malformed));
    }
}

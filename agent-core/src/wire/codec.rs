//! Hand-written readers and writers of the bodies an agent handles.
//!
//! [`crate::message`] encodes and decodes every kind through postcard's
//! serde support; that generic code costs flash on a Cortex-M4. The agent
//! reads the eight kinds it can receive with [`read_body`] and writes what
//! it sends (Hello, Ping, Pong, Close, and the payloads of heartbeat and
//! task-result records) with [`write_body`] instead: the same postcard
//! encoding (varints, with postcard's byte limits when reading: 3 for `u16`,
//! 5 for `u32`, 10 for `u64`, and for lengths 5 or 10 as `usize` is 32 or 64
//! bits; strings checked as UTF-8; trailing
//! bytes ignored; options as a 0/1 tag), written out by hand. Property tests
//! check that both agree with postcard on every value and every body.

use crate::frame::{self, EncodeError, Kind};
use crate::heartbeat::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};
use crate::message::{Accept, Ack, Close, Config, DecodeError, Hello, Ping, Pong, Reject, Task, TaskResult};
use crate::plugin::PluginHeartbeat;
use crate::varint;

/// A cursor over a body.
pub struct BodyReader<'a> {
    bytes: &'a [u8],
}

impl<'a> BodyReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BodyReader { bytes }
    }

    fn varint(&mut self, max_len: usize) -> Result<u64, DecodeError> {
        let (v, n) = varint::decode_u64(self.bytes).map_err(|_| DecodeError::Malformed)?;
        if n > max_len {
            return Err(DecodeError::Malformed);
        }
        self.bytes = &self.bytes[n..];
        Ok(v)
    }

    /// A `u16` varint.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.varint(3)?).map_err(|_| DecodeError::Malformed)
    }

    /// A `u32` varint.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint(5)?).map_err(|_| DecodeError::Malformed)
    }

    /// A `u64` varint.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint(varint::MAX_LEN_U64)
    }

    /// A byte string: varint length (at most as many bytes as postcard
    /// allows for a `usize` on this target), then the bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        const USIZE_VARINT_MAX: usize = (usize::BITS as usize).div_ceil(7);
        let n = usize::try_from(self.varint(USIZE_VARINT_MAX)?).map_err(|_| DecodeError::Malformed)?;
        let (head, rest) = (self.bytes.get(..n), self.bytes.get(n..));
        let (Some(head), Some(rest)) = (head, rest) else { return Err(DecodeError::Malformed) };
        self.bytes = rest;
        Ok(head)
    }

    /// Whether the body has no bytes left (an optional trailing field is
    /// absent).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        core::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Malformed)
    }
}

/// A body the agent can read by hand.
pub trait ReadBody<'a>: Sized {
    /// Reads the fields in order; trailing bytes are left unread.
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError>;
}

/// Reads a body of type `T` (trailing bytes ignored, as in
/// [`crate::message::decode_body`]).
pub fn read_body<'a, T: ReadBody<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    T::read(&mut BodyReader::new(body))
}

impl<'a> ReadBody<'a> for Ping {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Ping { nonce: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for Pong {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Pong { nonce: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for Ack {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Ack { up_to: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for Accept {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let (next_seq, max_frame) = (r.u64()?, r.u32()?);
        // Field 3 came later: an Accept that ends after field 2 (an older
        // collector) gives no advice.
        let retry_window_ms = if r.is_empty() { 0 } else { r.u32()? };
        Ok(Accept { next_seq, max_frame, retry_window_ms })
    }
}

impl<'a> ReadBody<'a> for Reject<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Reject { code: r.u16()?, reason: r.str()?, retry_after_ms: r.u32()? })
    }
}

impl<'a> ReadBody<'a> for Close<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Close { code: r.u16()?, reason: r.str()? })
    }
}

impl<'a> ReadBody<'a> for Task<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Task { object_name: r.str()?, data_type: r.u32()?, payload: r.bytes()?, token: r.str()? })
    }
}

impl<'a> ReadBody<'a> for Config<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Config { name: r.str()?, version: r.str()?, payload: r.bytes()? })
    }
}

/// Appends postcard-encoded fields to a buffer; every method returns
/// `None` once the buffer is full (what was written is then meaningless).
pub struct BodyWriter<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl<'o> BodyWriter<'o> {
    /// A writer at the start of `out`.
    pub fn new(out: &'o mut [u8]) -> Self {
        BodyWriter { out, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Any unsigned integer, as a varint.
    pub fn uint(&mut self, v: u64) -> Option<()> {
        self.len += varint::encode_u64(v, self.out.get_mut(self.len..)?)?;
        Some(())
    }

    /// A byte string: varint length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.uint(b.len() as u64)?;
        self.out.get_mut(self.len..self.len + b.len())?.copy_from_slice(b);
        self.len += b.len();
        Some(())
    }

    /// A string.
    pub fn str(&mut self, s: &str) -> Option<()> {
        self.bytes(s.as_bytes())
    }

    /// An optional unsigned integer: tag 0, or tag 1 and the varint.
    pub fn option(&mut self, v: Option<u64>) -> Option<()> {
        *self.out.get_mut(self.len)? = u8::from(v.is_some());
        self.len += 1;
        match v {
            Some(v) => self.uint(v),
            None => Some(()),
        }
    }
}

/// A body the agent writes by hand.
pub trait WriteBody {
    /// Writes the fields in order.
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()>;
}

/// Writes `v` into `out`; its length, or `None` if it does not fit.
pub fn write_body<T: WriteBody>(v: &T, out: &mut [u8]) -> Option<usize> {
    let mut w = BodyWriter::new(out);
    v.write(&mut w)?;
    Some(w.len())
}

/// Writes `v` as one frame of `kind` (flags 0) into `out`; the frame's length.
pub fn write_frame<T: WriteBody>(kind: Kind, seq: u32, v: &T, out: &mut [u8]) -> Result<usize, EncodeError> {
    frame::encode_with(kind, 0, seq, out, |b| write_body(v, b))
}

impl WriteBody for Hello<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.str(self.agent_id)?;
        w.str(self.hostname)?;
        w.str(self.product)?;
        w.str(self.version)?;
        w.bytes(self.intranet_ipv4)?;
        w.bytes(self.intranet_ipv6)?;
        w.bytes(self.extranet_ipv4)?;
        w.bytes(self.extranet_ipv6)?;
        w.bytes(self.auth_token)?;
        w.uint(self.first_unacked_seq)?;
        w.uint(self.next_seq)?;
        w.uint(u64::from(self.max_frame))?;
        w.uint(u64::from(self.min_frame))
    }
}

impl WriteBody for Ping {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.uint(self.nonce)
    }
}

impl WriteBody for Pong {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.uint(self.nonce)
    }
}

impl WriteBody for Close<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.uint(u64::from(self.code))?;
        w.str(self.reason)
    }
}

impl WriteBody for TaskResult<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.str(self.token)?;
        w.uint(u64::from(self.status))?;
        w.str(self.message)
    }
}

impl WriteBody for PluginHeartbeat<'_> {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.str(self.name)?;
        w.str(self.version)?;
        w.uint(u64::from(self.pid))?;
        w.uint(self.status as u64)
    }
}

// Field by field rather than through an array of values: building the
// array costs a load, a spill and a store per field on a Cortex-M4.
impl WriteBody for HostStats {
    #[inline(never)]
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        let o32 = |v: Option<u32>| v.map(u64::from);
        w.option(o32(self.cpu_permille))?;
        w.option(self.rss_bytes)?;
        w.option(o32(self.open_fds))?;
        w.option(o32(self.load1_centi))?;
        w.option(o32(self.load5_centi))?;
        w.option(o32(self.load15_centi))?;
        w.option(self.mem_used_bytes)?;
        w.option(self.mem_total_bytes)?;
        w.option(self.tx_bytes_per_sec)?;
        w.option(self.rx_bytes_per_sec)
    }
}

impl WriteBody for AgentStats {
    #[inline(never)]
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        w.uint(self.pushed)?;
        w.uint(self.acked)?;
        w.uint(self.dropped_full)?;
        w.uint(self.dropped_too_large)?;
        w.uint(self.dropped_evicted)?;
        w.uint(self.bytes_sent)?;
        w.uint(self.bytes_received)?;
        w.uint(self.frames_sent)?;
        w.uint(self.frames_received)?;
        w.uint(self.connections)?;
        w.uint(self.connect_failures)?;
        w.option(self.last_rtt_ms.map(u64::from))?;
        w.uint(self.decoder_skipped_bytes)?;
        w.uint(self.decoder_bad_crc)?;
        w.uint(self.unknown_kinds)?;
        w.uint(self.malformed)?;
        w.uint(self.events_dropped)?;
        w.uint(self.tasks_unroutable)?;
        w.uint(self.protocol_errors)?;
        w.uint(u64::from(self.ring_used_bytes))?;
        w.uint(u64::from(self.ring_capacity))?;
        w.uint(self.tasks_duplicate)?;
        w.uint(self.decoder_oversized)?;
        w.uint(self.clock_anomalies)?;
        w.uint(self.peer_incompatible)?;
        w.uint(self.ack_timeouts)
    }
}

impl WriteBody for AgentHeartbeat {
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        HeartbeatParts { host: &self.host, lib: &self.lib, heartbeat_records: self.heartbeat_records.as_ref() }.write(w)
    }
}

/// An [`AgentHeartbeat`] by reference: the agent encodes its own stats
/// without first copying them (320 bytes) into a heartbeat value on the
/// stack.
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
    fn write(&self, w: &mut BodyWriter<'_>) -> Option<()> {
        self.host.write(w)?;
        self.lib.write(w)?;
        match self.heartbeat_records {
            None => w.option(None),
            Some(r) => {
                // An option: tag 1, then the struct's three fields.
                w.option(Some(r.pushed))?;
                w.uint(r.dropped_full)?;
                w.uint(r.dropped_evicted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::decode_body;

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
}

//! Records: what the application pushes and the server receives.
//!
//! A [`Record`] is a borrowed view: a data type, a timestamp in milliseconds
//! and opaque payload bytes. Inside the send ring and on the wire a record is
//! stored as one *entry*, whose bytes are exactly postcard's encoding of
//! `(data_type: u32, ts_delta: i64, payload: bytes)`:
//!
//! ```text
//! varint(data_type) | zigzag-varint(ts_delta) | varint(payload_len) | payload
//! ```
//!
//! `ts_delta` is the record's timestamp minus the timestamp of the record
//! before it (for the first record of a batch: minus the batch's `base_ts`).
//! A 64-byte payload with a data type below 16 384 and records less than
//! ~8 s apart costs 5 bytes of header: 92.7 % payload efficiency.

use crate::wire::varint::{self, VarintError};

/// Well-known values of [`Record::data_type`].
///
/// Types `1000..=1999` ([`RESERVED`](data_type::RESERVED)) belong to the
/// library and agent framework; every other value is free for applications.
pub mod data_type {
    use core::ops::RangeInclusive;

    /// Agent heartbeat: host stats and library counters (see `heartbeat`).
    pub const AGENT_HEARTBEAT: u32 = 1000;
    /// Plugin heartbeat: name, version, pid and status of one plugin.
    pub const PLUGIN_HEARTBEAT: u32 = 1001;
    /// Agent log line or error report.
    pub const AGENT_LOG: u32 = 1010;
    /// Result of a downlink task; payload is a `TaskResult` body.
    pub const TASK_RESULT: u32 = 1050;
    /// Downlink task asking the agent to shut down.
    pub const SHUTDOWN_TASK: u32 = 1060;
    /// Types reserved for the library and the agent framework.
    pub const RESERVED: RangeInclusive<u32> = 1000..=1999;

    /// True for types an application must not use for its own records.
    pub const fn is_reserved(t: u32) -> bool {
        t >= *RESERVED.start() && t <= *RESERVED.end()
    }
}

/// A record as pushed by the application: borrowed, nothing copied yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// What the payload is; see [`data_type`].
    pub data_type: u32,
    /// When it happened, in milliseconds on whatever clock the application
    /// uses for records (often wall-clock Unix time). May go backwards.
    pub timestamp_ms: u64,
    /// Opaque payload.
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// A record of `data_type` at `timestamp_ms` carrying `payload`.
    pub const fn new(data_type: u32, timestamp_ms: u64, payload: &'a [u8]) -> Self {
        Record { data_type, timestamp_ms, payload }
    }

    /// Bytes this record takes as an entry when its predecessor's timestamp
    /// is `prev_ts`.
    pub fn entry_len(&self, prev_ts: u64) -> usize {
        EntryHeader::new(self.data_type, ts_delta(prev_ts, self.timestamp_ms), self.payload.len()).header_len()
            + self.payload.len()
    }
}

/// Signed difference `ts - prev`, wrapping (so any pair of u64 round-trips).
pub const fn ts_delta(prev: u64, ts: u64) -> i64 {
    ts.wrapping_sub(prev) as i64
}

/// `prev + delta`, wrapping: the inverse of [`ts_delta`].
pub const fn apply_delta(prev: u64, delta: i64) -> u64 {
    prev.wrapping_add(delta as u64)
}

/// The header of one entry, encoded as up to 25 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// The record's data type.
    pub data_type: u32,
    /// Timestamp relative to the previous record.
    pub ts_delta: i64,
    /// Payload length in bytes.
    pub payload_len: usize,
}

/// Longest entry header: 5 + 10 + 10 bytes.
pub const MAX_ENTRY_HEADER: usize = 25;

impl EntryHeader {
    /// A header for the given fields.
    pub const fn new(data_type: u32, ts_delta: i64, payload_len: usize) -> Self {
        EntryHeader { data_type, ts_delta, payload_len }
    }

    /// Encoded length of the header alone.
    pub const fn header_len(&self) -> usize {
        varint::len_u64(self.data_type as u64)
            + varint::len_u64(varint::zigzag(self.ts_delta))
            + varint::len_u64(self.payload_len as u64)
    }

    /// Encoded length of header plus payload.
    pub const fn entry_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header to the front of `out`; returns its length, or
    /// `None` (with `out` partly written) if `out` is shorter than
    /// [`EntryHeader::header_len`].
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let (t, d, l) = (self.data_type as u64, varint::zigzag(self.ts_delta), self.payload_len as u64);
        if let ([t_out, d_out, l_out, ..], true) = (&mut *out, (t | d | l) < 0x80) {
            // The common case: three one-byte fields.
            (*t_out, *d_out, *l_out) = (t as u8, d as u8, l as u8);
            return Some(3);
        }
        let mut at = 0;
        for v in [t, d, l] {
            at += varint::encode_u64(v, out.get_mut(at..)?)?;
        }
        Some(at)
    }

    /// Encodes into a fixed array; returns it and the used length.
    pub fn encode(&self) -> ([u8; MAX_ENTRY_HEADER], usize) {
        let mut out = [0u8; MAX_ENTRY_HEADER];
        // 25 bytes hold any header.
        let n = self.write(&mut out).unwrap_or(0);
        (out, n)
    }

    /// Parses a header from the front of `bytes`, returning it and its
    /// encoded length.
    #[inline]
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), EntryError> {
        if let [t, d, l, ..] = *bytes {
            if (t | d | l) < 0x80 {
                // The common case: three one-byte fields.
                let h = EntryHeader { data_type: t.into(), ts_delta: varint::unzigzag(d.into()), payload_len: l.into() };
                return Ok((h, 3));
            }
        }
        let mut f = [0u64; 3];
        let mut at = 0;
        for v in &mut f {
            let (x, n) = varint::decode_u64(bytes.get(at..).unwrap_or(&[]))?;
            *v = x;
            at += n;
        }
        let data_type = u32::try_from(f[0]).map_err(|_| EntryError::Malformed)?;
        let payload_len = usize::try_from(f[2]).map_err(|_| EntryError::Malformed)?;
        Ok((EntryHeader { data_type, ts_delta: varint::unzigzag(f[1]), payload_len }, at))
    }

    /// Parses a header from bytes produced by `byte_at(i)`, returning it and
    /// its encoded length. Same result as [`EntryHeader::decode`].
    pub fn decode_with(mut byte_at: impl FnMut(usize) -> Option<u8>) -> Result<(Self, usize), EntryError> {
        let (t, a) = varint::decode_u64_with(&mut byte_at)?;
        let data_type = u32::try_from(t).map_err(|_| EntryError::Malformed)?;
        let (d, b) = varint::decode_u64_with(|i| byte_at(a + i))?;
        let (l, c) = varint::decode_u64_with(|i| byte_at(a + b + i))?;
        let payload_len = usize::try_from(l).map_err(|_| EntryError::Malformed)?;
        Ok((EntryHeader { data_type, ts_delta: varint::unzigzag(d), payload_len }, a + b + c))
    }
}

/// Why an entry could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The bytes ended inside the entry.
    Truncated,
    /// A field is out of range or a varint is overlong.
    Malformed,
}

impl From<VarintError> for EntryError {
    fn from(e: VarintError) -> Self {
        match e {
            VarintError::Truncated => EntryError::Truncated,
            VarintError::Overlong => EntryError::Malformed,
        }
    }
}

/// Iterates the records of a batch body: `count` entries back to back, with
/// timestamps chained from `base_ts`. Stops at the first malformed entry and
/// reports it once.
#[derive(Clone, Debug)]
pub struct EntryIter<'a> {
    bytes: &'a [u8],
    prev_ts: u64,
}

impl<'a> EntryIter<'a> {
    /// Records in `bytes`, the first one's timestamp relative to `base_ts`.
    pub fn new(bytes: &'a [u8], base_ts: u64) -> Self {
        EntryIter { bytes, prev_ts: base_ts }
    }
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = Result<Record<'a>, EntryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.is_empty() {
            return None;
        }
        let bytes = self.bytes;
        let parsed = EntryHeader::decode(bytes).and_then(|(h, n)| {
            let end = n.checked_add(h.payload_len).ok_or(EntryError::Malformed)?;
            let payload = bytes.get(n..end).ok_or(EntryError::Truncated)?;
            Ok((h, payload, end))
        });
        match parsed {
            Ok((h, payload, end)) => {
                let ts = apply_delta(self.prev_ts, h.ts_delta);
                self.prev_ts = ts;
                self.bytes = &bytes[end..];
                Some(Ok(Record::new(h.data_type, ts, payload)))
            }
            Err(e) => {
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_matches_postcard_tuple() {
        let h = EntryHeader::new(1000, -5, 3);
        let (b, n) = h.encode();
        let mut pc = [0u8; 32];
        let expect = postcard::to_slice(&(1000u32, -5i64, serde_bytes::Bytes::new(b"abc")), &mut pc).unwrap();
        assert_eq!(&b[..n], &expect[..n]);
        assert_eq!(h.entry_len(), expect.len());
    }

    #[test]
    fn iterates_chained_timestamps() {
        let mut buf = [0u8; 64];
        let mut n = 0;
        let mut prev = 100;
        for (t, ts, p) in [(7u32, 105u64, &b"xy"[..]), (8, 103, b""), (9, 200, b"z")] {
            let h = EntryHeader::new(t, ts_delta(prev, ts), p.len());
            let (hb, hl) = h.encode();
            buf[n..n + hl].copy_from_slice(&hb[..hl]);
            n += hl;
            buf[n..n + p.len()].copy_from_slice(p);
            n += p.len();
            prev = ts;
        }
        let got: heapless::Vec<_, 4> = EntryIter::new(&buf[..n], 100).map(|r| r.unwrap()).collect();
        assert_eq!(got[0], Record::new(7, 105, b"xy"));
        assert_eq!(got[1], Record::new(8, 103, b""));
        assert_eq!(got[2], Record::new(9, 200, b"z"));
        let mut it = EntryIter::new(&buf[..n - 1], 100);
        assert!(it.nth(2).unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn reserved_range() {
        assert!(data_type::is_reserved(data_type::AGENT_HEARTBEAT));
        assert!(!data_type::is_reserved(2000));
        assert!(!data_type::is_reserved(59));
    }
}

//! The streaming frame decoder.
//!
//! [`FrameDecoder`] takes the received byte stream in chunks of any size, in
//! the style of postcard's accumulator: [`FrameDecoder::feed`] consumes bytes
//! until a whole, CRC-valid frame is buffered and returns it together with
//! the input it did not consume yet.
//!
//! Garbage, truncated or corrupt frames are ordinary input: the decoder
//! drops the first byte of the bad candidate, searches the bytes it holds
//! for the next magic, and carries on; every dropped byte is counted in
//! [`DecoderStats::skipped_bytes`]. It buffers at most its storage's length
//! (the largest frame it accepts) and never reads past it.

use crate::wire::frame::{crc32c, Frame, HEADER_LEN, MAGIC, TRAILER_LEN};

/// What the decoder has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Good frames returned.
    pub frames: u64,
    /// Bytes thrown away while resynchronizing.
    pub skipped_bytes: u64,
    /// Candidates whose CRC did not match.
    pub bad_crc: u64,
    /// Candidates whose declared size exceeded the buffer.
    pub oversized: u64,
}

/// Result of [`FrameDecoder::feed`].
#[derive(Debug, PartialEq, Eq)]
pub enum Feed<'input, 'frame> {
    /// All input consumed; no complete frame yet.
    Consumed,
    /// A frame, borrowed from the decoder until the next `feed`, and the
    /// input not consumed yet (feed it next).
    Frame {
        /// The decoded frame.
        frame: Frame<'frame>,
        /// Input after the frame.
        remaining: &'input [u8],
    },
}

/// Reassembles frames from a byte stream into caller-provided storage.
pub struct FrameDecoder<'b> {
    buf: &'b mut [u8],
    filled: usize,
    /// Length of the frame last returned, still at the front of `buf`.
    delivered: usize,
    stats: DecoderStats,
}

impl<'b> FrameDecoder<'b> {
    /// A decoder buffering into `storage`; the largest frame accepted is
    /// `storage.len()` bytes (header, body and CRC).
    pub fn new(storage: &'b mut [u8]) -> Self {
        FrameDecoder { buf: storage, filled: 0, delivered: 0, stats: DecoderStats::default() }
    }

    /// Largest frame accepted, in bytes.
    pub fn max_frame(&self) -> usize {
        self.buf.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Bytes buffered towards the next frame.
    pub fn buffered(&self) -> usize {
        self.filled - self.delivered
    }

    /// Counts `n` bytes as skipped that were never fed (bytes that arrived
    /// while no connection was up, or after the one they came on ended).
    pub fn skip(&mut self, n: usize) {
        self.stats.skipped_bytes += n as u64;
    }

    /// Forgets any partial frame (call when a connection ends). Discarded
    /// bytes are counted as skipped.
    pub fn reset(&mut self) {
        self.stats.skipped_bytes += (self.filled - self.delivered) as u64;
        self.filled = 0;
        self.delivered = 0;
    }

    /// Consumes bytes from `input` until a frame is complete or the input
    /// is exhausted. See [`Feed`].
    pub fn feed<'i>(&mut self, mut input: &'i [u8]) -> Feed<'i, '_> {
        if self.delivered > 0 {
            // Bytes after the last frame (left there by a resync) stay,
            // from the first magic byte among them on.
            let start = self.drop_to_magic(self.delivered);
            self.delivered = 0;
            self.stats.skipped_bytes += start as u64;
        }
        let max = self.buf.len();
        loop {
            // Sync: the buffer must start with the magic.
            if self.filled == 0 {
                match input.iter().position(|&b| b == MAGIC[0]) {
                    Some(i) => {
                        self.stats.skipped_bytes += i as u64;
                        input = &input[i..];
                    }
                    None => {
                        self.stats.skipped_bytes += input.len() as u64;
                        return Feed::Consumed;
                    }
                }
                if max < HEADER_LEN + TRAILER_LEN {
                    // Cannot hold any frame: everything is skipped.
                    self.stats.skipped_bytes += input.len() as u64;
                    self.stats.oversized += 1;
                    return Feed::Consumed;
                }
            }
            // `get`: `filled` is within the buffer, so it is the byte; it
            // spares a bounds check and its panic path (were it ever
            // outside, `resync` would panic on the same invariant).
            if self.filled >= 2 && self.buf.get(1) != Some(&MAGIC[1]) {
                // A false start (left at the front by a resync, or just
                // read): not a candidate, so not counted as oversized or
                // bad CRC.
                self.resync();
                continue;
            }
            let need = if self.filled < HEADER_LEN {
                HEADER_LEN
            } else {
                let body = le_u32(&self.buf[5..9]) as usize;
                match body.checked_add(HEADER_LEN + TRAILER_LEN) {
                    Some(total) if total <= max => total,
                    _ => {
                        self.stats.oversized += 1;
                        self.resync();
                        continue;
                    }
                }
            };
            if self.filled < need {
                if input.is_empty() {
                    return Feed::Consumed;
                }
                // Then checked again from the top: the magic, the declared
                // length once the header is in, the frame once it is whole.
                let take = (need - self.filled).min(input.len());
                // One split (`take` is within `input`: no check left).
                let (head, rest) = input.split_at(take);
                self.buf[self.filled..self.filled + take].copy_from_slice(head);
                self.filled += take;
                input = rest;
                continue;
            }
            // A whole candidate frame: check it.
            let body_end = need - TRAILER_LEN;
            let want = le_u32(&self.buf[body_end..need]);
            if crc32c(&self.buf[..body_end]) != want {
                self.stats.bad_crc += 1;
                self.resync();
                continue;
            }
            self.stats.frames += 1;
            self.delivered = need;
            let b = &self.buf[..need];
            let frame = Frame {
                version: b[2],
                kind: b[3],
                flags: b[4],
                seq: le_u32(&b[9..HEADER_LEN]),
                body: &b[HEADER_LEN..body_end],
            };
            return Feed::Frame { frame, remaining: input };
        }
    }

    /// Drops the first buffered byte and everything up to the next magic
    /// byte among the buffered ones.
    // Inlined: a call and a count around the shared `drop_to_magic` (flash).
    #[inline(always)]
    fn resync(&mut self) {
        let start = self.drop_to_magic(1);
        self.stats.skipped_bytes += 1 + start as u64;
    }

    /// Drops the first `from` buffered bytes and those after them up to
    /// the next magic byte (all if there is none); returns how many were
    /// dropped past `from`. Shared by `resync` and `feed`'s drop of the
    /// frame it last returned.
    // Out of line: one copy for both (flash).
    #[inline(never)]
    fn drop_to_magic(&mut self, from: usize) -> usize {
        let rest = &self.buf[from..self.filled];
        let start = rest.iter().position(|&b| b == MAGIC[0]).unwrap_or(rest.len());
        crate::mem::move_within(self.buf, from + start..self.filled, 0);
        self.filled -= from + start;
        start
    }
}

/// The little-endian `u32` in `b`, four bytes long (one bounds check for
/// the four, where indexing them one by one checks each).
fn le_u32(b: &[u8]) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(b);
    u32::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{encode_with, Kind};

    fn frame(kind: Kind, seq: u32, body: &[u8], out: &mut [u8]) -> usize {
        encode_with(kind, 0, seq, out, |b| {
            b.get_mut(..body.len())?.copy_from_slice(body);
            Some(body.len())
        })
        .unwrap()
    }

    #[test]
    fn byte_at_a_time_and_garbage_between() {
        let mut wire = [0u8; 128];
        let mut n = 0;
        wire[n..n + 3].copy_from_slice(&[0xEA, 0x00, 0x55]);
        n += 3;
        n += frame(Kind::Ping, 1, b"hello", &mut wire[n..]);
        wire[n..n + 2].copy_from_slice(&[0xEA, 0x9E]); // truncated header
        n += 2;
        n += frame(Kind::Pong, 2, b"", &mut wire[n..]);
        // The truncated header above claims a body that swallows the start
        // of this frame; the frame must still come out after the resync.
        n += frame(Kind::Ping, 3, b"x", &mut wire[n..]);
        let mut store = [0u8; 64];
        let mut dec = FrameDecoder::new(&mut store);
        let mut got = heapless::Vec::<(u8, u32, heapless::Vec<u8, 8>), 4>::new();
        for byte in &wire[..n] {
            let mut input = core::slice::from_ref(byte);
            while let Feed::Frame { frame, remaining } = dec.feed(input) {
                got.push((frame.kind, frame.seq, heapless::Vec::from_slice(frame.body).unwrap())).unwrap();
                input = remaining;
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!((got[2].0, got[2].1, &got[2].2[..]), (6, 3, &b"x"[..]));
        assert_eq!((got[0].0, got[0].1, &got[0].2[..]), (6, 1, &b"hello"[..]));
        assert_eq!((got[1].0, got[1].1), (7, 2));
        assert_eq!(dec.stats().skipped_bytes, 5);
        assert_eq!(dec.stats().frames, 3);
    }

    #[test]
    fn oversized_and_corrupt_are_skipped() {
        let mut wire = [0u8; 256];
        let big = frame(Kind::Batch, 1, &[7u8; 100], &mut wire);
        let mut n = big;
        let good = frame(Kind::Ack, 3, &[1], &mut wire[n..]);
        n += good;
        let mut store = [0u8; 40];
        let mut dec = FrameDecoder::new(&mut store);
        match dec.feed(&wire[..n]) {
            Feed::Frame { frame, remaining } => {
                assert_eq!(frame.kind, Kind::Ack as u8);
                assert!(remaining.is_empty());
            }
            Feed::Consumed => panic!("ack frame not found"),
        }
        assert_eq!(dec.stats().oversized, 1);
        // A flipped bit in the body is a CRC failure.
        wire[good - 6 + big] ^= 0x10;
        let mut store = [0u8; 40];
        let mut dec = FrameDecoder::new(&mut store);
        assert_eq!(dec.feed(&wire[big..n]), Feed::Consumed);
        assert_eq!(dec.stats().bad_crc, 1);
        assert_eq!(dec.stats().skipped_bytes as usize + dec.buffered(), good);
    }

    /// A frame's version, kind, flags, sequence number and body.
    type Owned = (u8, u8, u8, u32, std::vec::Vec<u8>);

    /// The decoder as it was before its magic checks were merged and its
    /// leftover bytes moved once: the reference `feed` is held to.
    struct Reference {
        buf: std::vec::Vec<u8>,
        filled: usize,
        delivered: usize,
        stats: DecoderStats,
    }

    impl Reference {
        fn feed<'i>(&mut self, mut input: &'i [u8]) -> Option<(Owned, &'i [u8])> {
            if self.delivered > 0 {
                crate::mem::move_within(&mut self.buf, self.delivered..self.filled, 0);
                self.filled -= self.delivered;
                self.delivered = 0;
                let start = self.buf[..self.filled].iter().position(|&b| b == MAGIC[0]).unwrap_or(self.filled);
                crate::mem::move_within(&mut self.buf, start..self.filled, 0);
                self.filled -= start;
                self.stats.skipped_bytes += start as u64;
            }
            let max = self.buf.len();
            loop {
                if self.filled == 0 {
                    match input.iter().position(|&b| b == MAGIC[0]) {
                        Some(i) => {
                            self.stats.skipped_bytes += i as u64;
                            input = &input[i..];
                        }
                        None => {
                            self.stats.skipped_bytes += input.len() as u64;
                            return None;
                        }
                    }
                    if max < HEADER_LEN + TRAILER_LEN {
                        self.stats.skipped_bytes += input.len() as u64;
                        self.stats.oversized += 1;
                        return None;
                    }
                }
                if self.filled >= 2 && self.buf[1] != MAGIC[1] {
                    self.resync();
                    continue;
                }
                let need = if self.filled < HEADER_LEN {
                    HEADER_LEN
                } else {
                    let body = le_u32(&self.buf[5..9]) as usize;
                    match body.checked_add(HEADER_LEN + TRAILER_LEN) {
                        Some(total) if total <= max => total,
                        _ => {
                            self.stats.oversized += 1;
                            self.resync();
                            continue;
                        }
                    }
                };
                if self.filled < need {
                    let take = (need - self.filled).min(input.len());
                    self.buf[self.filled..self.filled + take].copy_from_slice(&input[..take]);
                    self.filled += take;
                    input = &input[take..];
                    if self.filled >= 2 && self.buf[1] != MAGIC[1] {
                        self.resync();
                        continue;
                    }
                    if self.filled < need {
                        return None;
                    }
                    if need == HEADER_LEN {
                        continue;
                    }
                }
                let body_end = need - TRAILER_LEN;
                let want = le_u32(&self.buf[body_end..need]);
                if crc32c(&self.buf[..body_end]) != want {
                    self.stats.bad_crc += 1;
                    self.resync();
                    continue;
                }
                self.stats.frames += 1;
                self.delivered = need;
                let b = &self.buf[..need];
                let frame = (b[2], b[3], b[4], le_u32(&b[9..HEADER_LEN]), b[HEADER_LEN..body_end].to_vec());
                return Some((frame, input));
            }
        }

        fn resync(&mut self) {
            let next = self.buf[1..self.filled].iter().position(|&b| b == MAGIC[0]).map_or(self.filled, |i| i + 1);
            crate::mem::move_within(&mut self.buf, next..self.filled, 0);
            self.filled -= next;
            self.stats.skipped_bytes += next as u64;
        }
    }

    /// A piece of a received stream: a frame (whole, cut short, with a
    /// flipped bit, with a false length) or garbage rich in magic bytes.
    fn piece() -> impl proptest::strategy::Strategy<Value = std::vec::Vec<u8>> {
        use proptest::prelude::*;
        let garbage = proptest::collection::vec(prop_oneof![Just(0xEAu8), Just(0x9E), any::<u8>()], 0..6);
        (0u8..7, proptest::collection::vec(any::<u8>(), 0..48), any::<u32>(), any::<u16>(), garbage).prop_map(
            |(how, body, seq, r, garbage)| {
                if how == 0 {
                    return garbage;
                }
                let mut out = std::vec![0u8; body.len() + 17];
                let n = frame(Kind::Ping, seq, &body, &mut out);
                out.truncate(n);
                let at = usize::from(r) % n;
                match how {
                    2 => out.truncate(at),
                    3 => out[at] ^= 1 << (r % 8),
                    // A length that swallows what follows, or one far too long.
                    4 => out[5..9].copy_from_slice(&(u32::from(r) % 64).to_le_bytes()),
                    5 => out[5..9].copy_from_slice(&(u32::from(r) * 977).to_le_bytes()),
                    _ => {}
                }
                out
            },
        )
    }

    proptest::proptest! {
        /// The same frames, leftovers and counters as the reference, for any
        /// stream, chunking and buffer size.
        #[test]
        fn feed_matches_the_reference(
            pieces in proptest::collection::vec(piece(), 0..12),
            chunks in proptest::collection::vec(1usize..40, 1..8),
            size in 0usize..80,
        ) {
            let wire: std::vec::Vec<u8> = pieces.concat();
            let mut store = std::vec![0u8; size];
            let mut dec = FrameDecoder::new(&mut store);
            let mut reference = Reference { buf: std::vec![0u8; size], filled: 0, delivered: 0, stats: DecoderStats::default() };
            let (mut at, mut c) = (0, 0);
            while at < wire.len() {
                let end = (at + chunks[c % chunks.len()]).min(wire.len());
                c += 1;
                let (mut input, mut expect) = (&wire[at..end], &wire[at..end]);
                loop {
                    let got = match dec.feed(input) {
                        Feed::Frame { frame, remaining } => {
                            input = remaining;
                            Some(((frame.version, frame.kind, frame.flags, frame.seq, frame.body.to_vec()), remaining.len()))
                        }
                        Feed::Consumed => None,
                    };
                    let want = reference.feed(expect).map(|(f, rest)| {
                        expect = rest;
                        (f, rest.len())
                    });
                    proptest::prop_assert_eq!(&got, &want);
                    proptest::prop_assert_eq!(dec.stats(), reference.stats);
                    proptest::prop_assert_eq!(dec.buffered(), reference.filled - reference.delivered);
                    if got.is_none() {
                        break;
                    }
                }
                at = end;
            }
        }
    }
}

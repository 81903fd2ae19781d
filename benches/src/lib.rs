//! The record pipelines that `benches/pipeline.rs` (criterion) and
//! `src/bin/cases.rs` (callgrind) measure side by side, one module each.
//!
//! Every pipeline does the same job for one round: push `n` records of a
//! payload (data type, timestamp, bytes), take them out as one batch of
//! about [`BATCH_BYTES`], frame it with agent-core's frame header and its
//! CRC-32C ([`agent_core::frame::crc32c`], the same function for all),
//! decode the frame from the byte stream with a CRC check, visit every
//! record, and free the records. [`round`](ours::Pipeline::round) returns
//! the payload bytes received, which the tests check, so no pipeline can be
//! measured doing less than the job.
//!
//! * [`ours`]: `Ring` (entries kept until acked, resendable) + batch frame +
//!   `FrameDecoder` + `Message::decode` + `EntryIter` + `Ring::ack`.
//! * [`heapless_postcard`]: `heapless::spsc::Queue` of fixed-size slots;
//!   records postcard-encoded into the frame when dequeued (freed when
//!   sent: no resend).
//! * [`bbqueue_postcard`]: `bbqueue` byte queue; records postcard-encoded
//!   at push, the committed bytes copied into the frame (freed when sent).
//! * [`prost_pb`]: records in a `Vec`, protobuf-encoded as a repeated
//!   `{data_type, timestamp, data}` message (the Elkeid agent's shape).
//! * [`bound`]: copy the payload in, CRC, copy it out, CRC: the least any
//!   of them can do.

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::{self, crc32c, Kind, OVERHEAD};

/// Target batch size, in bytes of records.
pub const BATCH_BYTES: usize = 4096;

/// Records of `payload` bytes per round: what fills about one batch.
pub fn records_per_batch(payload: usize) -> usize {
    (BATCH_BYTES / (payload + 8)).max(1)
}

/// A `'static` buffer for the ring, decoder or queue storage of a bench.
fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// A record as postcard encodes it (the peers' wire record).
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
pub struct PcRecord<'a> {
    pub data_type: u32,
    pub ts: u64,
    #[serde(with = "serde_bytes", borrow)]
    pub data: &'a [u8],
}

/// Decodes one frame from `bytes` (fed whole) and hands its body to `f`.
fn receive<R>(dec: &mut FrameDecoder<'_>, bytes: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    match dec.feed(bytes) {
        Feed::Frame { frame, .. } => Some(f(frame.body)),
        Feed::Consumed => None,
    }
}

/// Visits postcard records `count` prefix + records; returns payload bytes.
fn visit_postcard(body: &[u8]) -> usize {
    let Ok((count, mut rest)) = postcard::take_from_bytes::<u32>(body) else { return 0 };
    let mut bytes = 0;
    for _ in 0..count {
        let Ok((r, more)) = postcard::take_from_bytes::<PcRecord<'_>>(rest) else { return 0 };
        bytes += std::hint::black_box(&r).data.len();
        rest = more;
    }
    bytes
}

pub mod ours {
    use super::*;
    use agent_core::message::Message;
    use agent_core::ring::{OverflowPolicy, Ring, RingConfig};
    use agent_core::varint;
    use agent_core::Record;

    /// agent-core's data path.
    pub struct Pipeline {
        pub ring: Ring<'static>,
        tx: Vec<u8>,
        dec: FrameDecoder<'static>,
        seq: u32,
        ts: u64,
    }

    impl Pipeline {
        /// A 64 KiB ring.
        pub fn new(policy: OverflowPolicy) -> Self {
            Self::with_capacity(64 * 1024, policy)
        }

        pub fn with_capacity(cap: usize, policy: OverflowPolicy) -> Self {
            let ring = Ring::new(leak(cap), RingConfig { max_record: 1024, policy });
            let dec = FrameDecoder::new(leak(BATCH_BYTES + 1024));
            Pipeline { ring, tx: vec![0; BATCH_BYTES + 1024], dec, seq: 0, ts: 1_700_000_000_000 }
        }

        /// Pushes one record; false if the ring refused it.
        #[inline]
        pub fn push(&mut self, payload: &[u8]) -> bool {
            self.ts += 1;
            self.ring.push(&Record::new(7, self.ts, payload)).is_ok()
        }

        /// Frames the next batch (at most `max_bytes` of records) into the
        /// transmit buffer, as the agent does; returns the frame length.
        pub fn send(&mut self, max_bytes: usize) -> usize {
            let Some(plan) = self.ring.plan_batch(max_bytes, u32::MAX) else { return 0 };
            let ring = &self.ring;
            let n = frame::encode_with(Kind::Batch, 0, self.seq, &mut self.tx, |body| {
                let mut n = 0;
                for v in [plan.first_seq, plan.base_ts, u64::from(plan.count), plan.len as u64] {
                    n += varint::encode_u64(v, body.get_mut(n..)?)?;
                }
                ring.copy_batch(&plan, body.get_mut(n..n + plan.len)?).then_some(n + plan.len)
            });
            self.seq = self.seq.wrapping_add(1);
            let n = n.unwrap_or(0);
            if n > 0 {
                self.ring.commit_batch(&plan);
            }
            n
        }

        /// Receives the frame in the transmit buffer as a collector would;
        /// returns (payload bytes, last sequence number).
        pub fn receive(&mut self, len: usize) -> Option<(usize, u64)> {
            receive(&mut self.dec, &self.tx[..len], |body| {
                let frame = frame::Frame { version: frame::VERSION, kind: Kind::Batch as u8, flags: 0, seq: 0, body };
                let Ok(Message::Batch(b)) = Message::decode(&frame) else { return None };
                let mut bytes = 0;
                for r in b.iter() {
                    bytes += std::hint::black_box(r.ok()?).payload.len();
                }
                Some((bytes, b.first_seq + u64::from(b.count) - 1))
            })?
        }

        /// Sends and acks everything pending (for push-only benches).
        pub fn drain(&mut self) {
            while self.send(BATCH_BYTES) > 0 {
                self.ring.ack(self.ring.next_seq() - 1);
            }
        }

        /// The transmit buffer (the last frame sent is at its front).
        pub fn tx(&self) -> &[u8] {
            &self.tx
        }

        /// One round: push `n`, send one batch, receive it, ack it.
        pub fn round(&mut self, payload: &[u8], n: usize) -> usize {
            for _ in 0..n {
                self.push(payload);
            }
            let len = self.send(usize::MAX);
            let Some((bytes, last)) = self.receive(len) else { return 0 };
            self.ring.ack(last);
            bytes
        }
    }
}

pub mod heapless_postcard {
    use super::*;
    use heapless::spsc::Queue;

    /// A fixed-size slot: the way a heapless queue holds a record.
    pub struct Slot<const N: usize> {
        data_type: u32,
        ts: u64,
        len: u16,
        data: [u8; N],
    }

    /// heapless::spsc + postcard.
    pub struct Pipeline<const N: usize> {
        q: Box<Queue<Slot<N>, 1024>>,
        tx: Vec<u8>,
        dec: FrameDecoder<'static>,
        seq: u32,
        ts: u64,
    }

    impl<const N: usize> Default for Pipeline<N> {
        fn default() -> Self {
            Pipeline {
                q: Box::new(Queue::new()),
                tx: vec![0; BATCH_BYTES + 1024],
                dec: FrameDecoder::new(leak(BATCH_BYTES + 1024)),
                seq: 0,
                ts: 1_700_000_000_000,
            }
        }
    }

    impl<const N: usize> Pipeline<N> {
        #[inline]
        pub fn push(&mut self, payload: &[u8]) -> bool {
            self.ts += 1;
            let mut slot = Slot { data_type: 7, ts: self.ts, len: payload.len() as u16, data: [0; N] };
            slot.data[..payload.len()].copy_from_slice(payload);
            self.q.enqueue(slot).is_ok()
        }

        /// Dequeues everything queued into one frame.
        pub fn send(&mut self) -> usize {
            let q = &mut self.q;
            let count = q.len() as u32;
            let n = frame::encode_with(Kind::Batch, 0, self.seq, &mut self.tx, |body| {
                let mut n = postcard::to_slice(&count, body).ok()?.len();
                while let Some(s) = q.dequeue() {
                    let r = PcRecord { data_type: s.data_type, ts: s.ts, data: &s.data[..s.len as usize] };
                    n += postcard::to_slice(&r, body.get_mut(n..)?).ok()?.len();
                }
                Some(n)
            });
            self.seq = self.seq.wrapping_add(1);
            n.unwrap_or(0)
        }

        /// Empties the queue (for push-only benches).
        pub fn clear(&mut self) {
            while self.q.dequeue().is_some() {}
        }

        pub fn round(&mut self, payload: &[u8], n: usize) -> usize {
            for _ in 0..n {
                self.push(payload);
            }
            let len = self.send();
            receive(&mut self.dec, &self.tx[..len], visit_postcard).unwrap_or(0)
        }
    }
}

pub mod bbqueue_postcard {
    use super::*;
    use bbqueue::nicknames::Churrasco;
    use bbqueue::prod_cons::stream::{StreamConsumer, StreamProducer};

    const CAP: usize = 64 * 1024;
    type Q = &'static Churrasco<CAP>;

    /// bbqueue + postcard.
    pub struct Pipeline {
        prod: StreamProducer<Q>,
        cons: StreamConsumer<Q>,
        tx: Vec<u8>,
        dec: FrameDecoder<'static>,
        seq: u32,
        ts: u64,
        queued: u32,
    }

    impl Default for Pipeline {
        fn default() -> Self {
            let bb: Q = Box::leak(Box::new(Churrasco::new()));
            Pipeline {
                prod: bb.stream_producer(),
                cons: bb.stream_consumer(),
                tx: vec![0; BATCH_BYTES + 1024],
                dec: FrameDecoder::new(leak(BATCH_BYTES + 1024)),
                seq: 0,
                ts: 1_700_000_000_000,
                queued: 0,
            }
        }
    }

    impl Pipeline {
        #[inline]
        pub fn push(&mut self, payload: &[u8]) -> bool {
            self.ts += 1;
            // Header at most 5 + 10 + 5 bytes.
            let Ok(mut g) = self.prod.grant_exact(payload.len() + 20) else { return false };
            let r = PcRecord { data_type: 7, ts: self.ts, data: payload };
            let Ok(used) = postcard::to_slice(&r, &mut g).map(|s| s.len()) else { return false };
            g.commit(used);
            self.queued += 1;
            true
        }

        /// Copies everything committed into one frame.
        pub fn send(&mut self) -> usize {
            let (cons, count) = (&self.cons, self.queued);
            self.queued = 0;
            let n = frame::encode_with(Kind::Batch, 0, self.seq, &mut self.tx, |body| {
                let mut n = postcard::to_slice(&count, body).ok()?.len();
                // Two reads when the committed bytes wrap.
                while let Ok(r) = cons.read() {
                    let len = r.len();
                    body.get_mut(n..n + len)?.copy_from_slice(&r);
                    r.release(len);
                    n += len;
                }
                Some(n)
            });
            self.seq = self.seq.wrapping_add(1);
            n.unwrap_or(0)
        }

        pub fn clear(&mut self) {
            while let Ok(r) = self.cons.read() {
                let len = r.len();
                r.release(len);
            }
            self.queued = 0;
        }

        pub fn round(&mut self, payload: &[u8], n: usize) -> usize {
            for _ in 0..n {
                self.push(payload);
            }
            let len = self.send();
            receive(&mut self.dec, &self.tx[..len], visit_postcard).unwrap_or(0)
        }
    }
}

pub mod prost_pb {
    use super::*;
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PbRecord {
        #[prost(uint32, tag = "1")]
        pub data_type: u32,
        #[prost(uint64, tag = "2")]
        pub timestamp: u64,
        #[prost(bytes = "vec", tag = "3")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PbBatch {
        #[prost(message, repeated, tag = "1")]
        pub records: Vec<PbRecord>,
    }

    /// prost (protobuf), records queued in a `Vec`.
    pub struct Pipeline {
        batch: PbBatch,
        enc: Vec<u8>,
        tx: Vec<u8>,
        dec: FrameDecoder<'static>,
        seq: u32,
        ts: u64,
    }

    impl Default for Pipeline {
        fn default() -> Self {
            Pipeline {
                batch: PbBatch::default(),
                enc: Vec::with_capacity(BATCH_BYTES + 1024),
                // Protobuf spends ~12 bytes a record: tiny records need room.
                tx: vec![0; 3 * BATCH_BYTES],
                dec: FrameDecoder::new(leak(3 * BATCH_BYTES)),
                seq: 0,
                ts: 1_700_000_000_000,
            }
        }
    }

    impl Pipeline {
        pub fn round(&mut self, payload: &[u8], n: usize) -> usize {
            for _ in 0..n {
                self.ts += 1;
                self.batch.records.push(PbRecord { data_type: 7, timestamp: self.ts, data: payload.to_vec() });
            }
            self.enc.clear();
            if self.batch.encode(&mut self.enc).is_err() {
                return 0;
            }
            self.batch.records.clear();
            let enc = &self.enc;
            let len = frame::encode_with(Kind::Batch, 0, self.seq, &mut self.tx, |body| {
                body.get_mut(..enc.len())?.copy_from_slice(enc);
                Some(enc.len())
            })
            .unwrap_or(0);
            self.seq = self.seq.wrapping_add(1);
            receive(&mut self.dec, &self.tx[..len], |body| {
                PbBatch::decode(body).map_or(0, |b| b.records.iter().map(|r| std::hint::black_box(r).data.len()).sum())
            })
            .unwrap_or(0)
        }
    }
}

pub mod bound {
    use super::*;

    /// The least any pipeline does: payloads copied in (the queue) and out
    /// (the receiver), one CRC pass on each side.
    pub struct Pipeline {
        queue: Vec<u8>,
        rx: Vec<u8>,
    }

    impl Default for Pipeline {
        fn default() -> Self {
            Pipeline { queue: vec![0; BATCH_BYTES + 1024], rx: vec![0; BATCH_BYTES + 1024] }
        }
    }

    impl Pipeline {
        pub fn round(&mut self, payload: &[u8], n: usize) -> usize {
            let len = payload.len() * n;
            for i in 0..n {
                self.queue[i * payload.len()..(i + 1) * payload.len()].copy_from_slice(payload);
            }
            let sent = crc32c(&self.queue[..len]);
            self.rx[..len].copy_from_slice(std::hint::black_box(&self.queue[..len]));
            if crc32c(&self.rx[..len]) != sent {
                return 0;
            }
            len
        }
    }
}

/// A stream of `frames` batch frames of 64-byte records, for decoder
/// throughput.
pub fn batch_stream(frames: usize) -> Vec<u8> {
    let mut p = ours::Pipeline::new(agent_core::ring::OverflowPolicy::RejectNew);
    let payload = [0x5a; 64];
    let mut out = Vec::new();
    for _ in 0..frames {
        for _ in 0..records_per_batch(64) {
            p.push(&payload);
        }
        let n = p.send(usize::MAX);
        out.extend_from_slice(&p.tx()[..n]);
        let last = p.ring.next_seq() - 1;
        p.ring.ack(last);
    }
    out
}

/// Chunk lengths in `1..=max` from a fixed xorshift seed.
pub fn chunk_lengths(seed: u64, max: usize, total: usize) -> Vec<usize> {
    let mut x = seed | 1;
    let mut v = Vec::new();
    let mut sum = 0;
    while sum < total {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = 1 + (x % max as u64) as usize;
        v.push(n);
        sum += n;
    }
    v
}

/// Feeds `stream` to a decoder in `chunks`; returns frames decoded.
pub fn decode_chunked(dec: &mut FrameDecoder<'_>, stream: &[u8], chunks: &[usize]) -> usize {
    let mut frames = 0;
    let mut at = 0;
    for &c in chunks {
        let mut input = &stream[at.min(stream.len())..(at + c).min(stream.len())];
        at += c;
        while !input.is_empty() {
            match dec.feed(input) {
                Feed::Frame { frame, remaining } => {
                    std::hint::black_box(frame.body);
                    frames += 1;
                    input = remaining;
                }
                Feed::Consumed => break,
            }
        }
    }
    frames
}

/// Overhead of a frame, for the tests.
pub const FRAME_OVERHEAD: usize = OVERHEAD;

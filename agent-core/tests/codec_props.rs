//! Property tests of the wire codec: messages, framing, the streaming
//! decoder and batch entries.
//!
//! The decoder properties lean on one invariant, checked after every
//! `feed`: every byte the decoder consumed is either skipped, still
//! buffered, or part of a frame it returned. So it never invents bytes and
//! never loses any without counting them.

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::{self, crc32c, EncodeError, Frame, Kind, HEADER_LEN, OVERHEAD, VERSION};
use agent_core::message::{self, Message, TaskResult};
use agent_core::record::{ts_delta, EntryError, EntryHeader, EntryIter, Record};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Decoder storage for the message properties: larger than any generated frame.
const MAX_FRAME: usize = 1024;

// ---- owned messages ---------------------------------------------------------

/// A record as generated: type, timestamp, payload.
type OwnedRecord = (u32, u64, Vec<u8>);

/// The owned mirror of every message, shared with the fuzz targets.
#[path = "support/owned_message.rs"]
#[macro_use]
mod owned_message;

owned_message!();

impl OwnedMessage {
    /// The message as one frame with frame counter `seq`.
    fn frame(&self, seq: u32) -> Vec<u8> {
        let mut out = vec![0u8; MAX_FRAME];
        let n = self.msg().encode(seq, &mut out).expect("generated messages fit MAX_FRAME");
        out.truncate(n);
        out
    }
}

// ---- strategies -------------------------------------------------------------

fn arb_str() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..16).prop_map(|c| c.into_iter().collect())
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..48)
}

/// Timestamp steps: mostly small (either sign), sometimes anything.
fn arb_delta() -> impl Strategy<Value = i64> {
    prop_oneof![3 => -10_000i64..10_000, 1 => any::<i64>()]
}

/// Records whose timestamps wander both ways from `base_ts`, and `base_ts`.
fn arb_records(max: usize) -> impl Strategy<Value = (u64, Vec<OwnedRecord>)> {
    (any::<u64>(), vec((any::<u32>(), arb_delta(), vec(any::<u8>(), 0..24)), 0..max)).prop_map(|(base, raw)| {
        let mut ts = base;
        let recs = raw
            .into_iter()
            .map(|(t, d, p)| {
                ts = ts.wrapping_add(d as u64);
                (t, ts, p)
            })
            .collect();
        (base, recs)
    })
}

/// Entries of `records` back to back, timestamps chained from `base_ts`.
fn encode_entries(base_ts: u64, records: &[OwnedRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = base_ts;
    for (t, ts, p) in records {
        let (h, n) = EntryHeader::new(*t, ts_delta(prev, *ts), p.len()).encode();
        out.extend_from_slice(&h[..n]);
        out.extend_from_slice(p);
        prev = *ts;
    }
    out
}

fn arb_owned() -> impl Strategy<Value = OwnedMessage> {
    prop_oneof![
        (
            [arb_str(), arb_str(), arb_str(), arb_str()],
            (vec(any::<[u8; 4]>(), 0..4), vec(any::<[u8; 16]>(), 0..4)),
            (vec(any::<[u8; 4]>(), 0..4), vec(any::<[u8; 16]>(), 0..4)),
            arb_bytes(),
            (any::<u64>(), any::<u64>(), any::<[u32; 2]>()),
        )
            .prop_map(
                |([agent_id, hostname, product, version], intranet, extranet, auth_token, (first_unacked_seq, next_seq, frames))| {
                    OwnedMessage::Hello {
                        agent_id,
                        hostname,
                        product,
                        version,
                        intranet_ipv4: intranet.0,
                        intranet_ipv6: intranet.1,
                        extranet_ipv4: extranet.0,
                        extranet_ipv6: extranet.1,
                        auth_token,
                        first_unacked_seq,
                        next_seq,
                        max_frame: frames[0],
                        min_frame: frames[1],
                    }
                }
            ),
        (any::<u64>(), any::<u32>()).prop_map(|(next_seq, max_frame)| OwnedMessage::Accept {
            next_seq,
            max_frame,
            retry_window_ms: max_frame.rotate_left(9)
        }),
        (any::<u16>(), arb_str(), any::<u32>()).prop_map(|(code, reason, retry_after_ms)| OwnedMessage::Reject {
            code,
            reason,
            retry_after_ms
        }),
        (any::<u64>(), arb_records(8)).prop_map(|(first_seq, (base_ts, recs))| OwnedMessage::Batch {
            first_seq,
            base_ts,
            count: recs.len() as u32,
            records: encode_entries(base_ts, &recs),
        }),
        any::<u64>().prop_map(|up_to| OwnedMessage::Ack { up_to }),
        any::<u64>().prop_map(|nonce| OwnedMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| OwnedMessage::Pong { nonce }),
        (arb_str(), any::<u32>(), arb_bytes(), arb_str()).prop_map(|(object_name, data_type, payload, token)| {
            OwnedMessage::Task { object_name, data_type, payload, token }
        }),
        (arb_str(), arb_str(), arb_bytes()).prop_map(|(name, version, payload)| OwnedMessage::Config {
            name,
            version,
            payload
        }),
        (arb_str(), any::<u32>(), arb_str()).prop_map(|(token, status, message)| OwnedMessage::TaskResult {
            token,
            status,
            message
        }),
        (any::<u16>(), arb_str()).prop_map(|(code, reason)| OwnedMessage::Close { code, reason }),
    ]
}

/// Chunk sizes to cut a stream into (used cyclically): often all 1-byte.
fn arb_chunks() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![1 => Just(vec![1]), 3 => vec(1usize..80, 1..12)]
}

// ---- feeding the decoder ------------------------------------------------------

/// The bytes of `f` as a frame (header, body, CRC). For a frame the decoder
/// returned, these are exactly the bytes it was decoded from.
fn frame_bytes(f: &Frame<'_>) -> Vec<u8> {
    let mut out = vec![0xEA, 0x9E, f.version, f.kind, f.flags];
    out.extend_from_slice(&(f.body.len() as u32).to_le_bytes());
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(f.body);
    out.extend_from_slice(&crc32c(&out).to_le_bytes());
    out
}

/// What came out of a decoder.
#[derive(Default)]
struct Sink {
    frames: Vec<Vec<u8>>,
    consumed: u64,
    delivered: u64,
}

/// Feeds `data` to `dec` cut into `chunks` (cyclically), collecting frames
/// and checking after every call that consumed bytes are accounted for.
/// Every frame is also run through `Message::decode` (and a Batch through
/// its entry iterator), which must not panic.
fn feed_all(dec: &mut FrameDecoder<'_>, data: &[u8], chunks: &[usize], sink: &mut Sink) {
    let max = dec.max_frame();
    let mut pos = 0;
    let mut chunk = chunks.iter().cycle();
    while pos < data.len() {
        let n = (*chunk.next().unwrap()).clamp(1, data.len() - pos);
        let mut input = &data[pos..pos + n];
        pos += n;
        loop {
            let before = input.len();
            let done = match dec.feed(input) {
                Feed::Consumed => {
                    sink.consumed += before as u64;
                    true
                }
                Feed::Frame { frame, remaining } => {
                    sink.consumed += (before - remaining.len()) as u64;
                    let bytes = frame_bytes(&frame);
                    assert!(bytes.len() <= max, "frame longer than the decoder's storage");
                    if let Ok(Message::Batch(b)) = Message::decode(&frame) {
                        b.iter().for_each(drop);
                    }
                    sink.delivered += bytes.len() as u64;
                    sink.frames.push(bytes);
                    input = remaining;
                    false
                }
            };
            let s = dec.stats();
            assert_eq!(
                s.skipped_bytes + dec.buffered() as u64 + sink.delivered,
                sink.consumed,
                "bytes unaccounted for"
            );
            assert_eq!(s.frames, sink.frames.len() as u64);
            if done {
                break;
            }
        }
    }
}

/// Feeds `data` to a fresh decoder of `storage` bytes; returns the frames,
/// stats and bytes still buffered.
fn run(storage: usize, data: &[u8], chunks: &[usize]) -> (Sink, agent_core::decoder::DecoderStats, usize) {
    let mut store = vec![0u8; storage];
    let mut dec = FrameDecoder::new(&mut store);
    let mut sink = Sink::default();
    feed_all(&mut dec, data, chunks, &mut sink);
    (sink, dec.stats(), dec.buffered())
}

fn decode_frame(bytes: &[u8]) -> Frame<'_> {
    let body_len = u32::from_le_bytes(bytes[5..9].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), body_len + OVERHEAD);
    Frame {
        version: bytes[2],
        kind: bytes[3],
        flags: bytes[4],
        seq: u32::from_le_bytes(bytes[9..13].try_into().unwrap()),
        body: &bytes[HEADER_LEN..HEADER_LEN + body_len],
    }
}

/// A frame of `kind` with an arbitrary body (for sizes the messages do not reach).
fn raw_frame(kind: Kind, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; body.len() + OVERHEAD];
    let n = frame::encode_with(kind, 0, seq, &mut out, |b| {
        b.get_mut(..body.len())?.copy_from_slice(body);
        Some(body.len())
    })
    .unwrap();
    assert_eq!(n, out.len());
    out
}

// ---- properties ---------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// decode(encode(m)) == m for every kind, and the frame is exactly as
    /// long as needed: one byte less of output space is refused.
    #[test]
    fn message_round_trip(m in arb_owned(), seq in any::<u32>()) {
        let msg = m.msg();
        let wire = m.frame(seq);
        let f = decode_frame(&wire);
        prop_assert_eq!((f.version, f.kind, f.flags, f.seq), (VERSION, msg.kind() as u8, 0, seq));
        prop_assert_eq!(Message::decode(&f), Ok(msg));
        let mut exact = vec![0u8; wire.len()];
        prop_assert_eq!(msg.encode(seq, &mut exact), Ok(wire.len()));
        prop_assert_eq!(&exact, &wire);
        prop_assert_eq!(msg.encode(seq, &mut exact[..wire.len() - 1]), Err(EncodeError::BufferTooSmall));
        // The body is the postcard encoding, and survives the decoder too.
        let (sink, stats, buffered) = run(MAX_FRAME, &wire, &[wire.len()]);
        prop_assert_eq!(&sink.frames, &vec![wire.clone()]);
        prop_assert_eq!((stats.skipped_bytes, stats.bad_crc, stats.oversized, buffered), (0, 0, 0, 0));
    }

    /// Several frames with garbage (no 0xEA) around them, cut into arbitrary
    /// chunks: every frame comes out, in order, and exactly the garbage is
    /// skipped.
    #[test]
    fn stream_with_garbage_any_chunking(
        parts in vec((vec(any::<u8>().prop_filter("not magic", |b| *b != 0xEA), 0..20), arb_owned(), any::<u32>()), 1..6),
        tail in vec(any::<u8>().prop_filter("not magic", |b| *b != 0xEA), 0..20),
        chunks in arb_chunks(),
    ) {
        let mut wire = Vec::new();
        let mut expect = Vec::new();
        let mut garbage = tail.len();
        for (g, m, seq) in &parts {
            wire.extend_from_slice(g);
            garbage += g.len();
            let f = m.frame(*seq);
            wire.extend_from_slice(&f);
            expect.push((f, m.clone()));
        }
        wire.extend_from_slice(&tail);
        let (sink, stats, buffered) = run(MAX_FRAME, &wire, &chunks);
        prop_assert_eq!(sink.frames.len(), expect.len());
        for (got, (want, m)) in sink.frames.iter().zip(&expect) {
            prop_assert_eq!(got, want);
            prop_assert_eq!(Message::decode(&decode_frame(got)), Ok(m.msg()));
        }
        prop_assert_eq!(stats.skipped_bytes, garbage as u64);
        prop_assert_eq!((stats.bad_crc, stats.oversized, buffered), (0, 0, 0));
    }

    /// Arbitrary garbage (0xEA and false magics included) between frames:
    /// once enough bytes follow, every frame is still found, in order.
    #[test]
    fn stream_with_any_garbage_recovers_every_frame(
        parts in vec((vec(prop_oneof![any::<u8>(), Just(0xEA), Just(0x9E)], 0..24), arb_owned(), any::<u32>()), 1..5),
        chunks in arb_chunks(),
    ) {
        let mut wire = Vec::new();
        let mut expect = Vec::new();
        for (g, m, seq) in &parts {
            wire.extend_from_slice(g);
            let f = m.frame(*seq);
            wire.extend_from_slice(&f);
            expect.push(f);
        }
        // Enough zeros to complete any false candidate the garbage started.
        wire.resize(wire.len() + MAX_FRAME, 0);
        let (sink, stats, buffered) = run(MAX_FRAME, &wire, &chunks);
        prop_assert_eq!(&sink.frames, &expect);
        prop_assert_eq!(buffered, 0);
        prop_assert_eq!(stats.skipped_bytes + sink.delivered, wire.len() as u64);
    }

    /// One flipped bit anywhere in a frame is always detected: no frame comes
    /// out of it, the damage is counted, and the next frame is found.
    #[test]
    fn single_bit_flip_is_detected(
        m in arb_owned(),
        next in arb_owned(),
        bit in any::<Index>(),
        chunks in arb_chunks(),
    ) {
        let mut bad = m.frame(1);
        let i = bit.index(bad.len() * 8);
        bad[i / 8] ^= 1 << (i % 8);
        let good = next.frame(2);

        let (sink, stats, buffered) = run(MAX_FRAME, &bad, &chunks);
        prop_assert!(sink.frames.is_empty(), "a corrupted frame was delivered");
        prop_assert!(stats.bad_crc + stats.oversized > 0 || stats.skipped_bytes > 0 || buffered > 0);

        let mut wire = bad.clone();
        wire.extend_from_slice(&good);
        wire.resize(wire.len() + MAX_FRAME, 0);
        let (sink, stats, buffered) = run(MAX_FRAME, &wire, &chunks);
        prop_assert_eq!(&sink.frames, &vec![good.clone()]);
        prop_assert_eq!(buffered, 0);
        prop_assert_eq!(stats.skipped_bytes, (wire.len() - good.len()) as u64);
    }

    /// A frame cut short never yields a frame; its bytes are buffered or skipped.
    #[test]
    fn truncated_frame_yields_nothing(m in arb_owned(), cut in any::<Index>(), chunks in arb_chunks()) {
        let wire = m.frame(5);
        let k = cut.index(wire.len());
        let (sink, stats, buffered) = run(MAX_FRAME, &wire[..k], &chunks);
        prop_assert!(sink.frames.is_empty());
        prop_assert_eq!(stats.skipped_bytes + buffered as u64, k as u64);
        prop_assert_eq!((stats.bad_crc, stats.oversized), (0, 0));
    }

    /// A frame larger than the decoder's storage is skipped and counted;
    /// the frame after it is found.
    #[test]
    fn oversized_frame_is_skipped(
        storage in 64usize..256,
        extra in 1usize..200,
        body_bytes in vec(any::<u8>(), 256 + 200),
        small in vec(any::<u8>(), 0..40),
        chunks in arb_chunks(),
    ) {
        let big_len = storage + extra; // whole-frame size, > storage
        let big = raw_frame(Kind::Batch, 1, &body_bytes[..big_len - OVERHEAD]);
        let good = raw_frame(Kind::Config, 2, &small);
        let mut wire = big.clone();
        wire.extend_from_slice(&good);
        wire.resize(wire.len() + storage, 0);
        let (sink, stats, buffered) = run(storage, &wire, &chunks);
        prop_assert_eq!(&sink.frames, &vec![good.clone()]);
        prop_assert!(stats.oversized >= 1);
        prop_assert_eq!(buffered, 0);
        prop_assert_eq!(stats.skipped_bytes, (wire.len() - good.len()) as u64);
    }

    /// Random bytes, any storage size (also too small for any frame), any
    /// chunking: no panic, nothing invented (checked in `feed_all`), every
    /// frame returned has a good CRC and fits the storage, and only
    /// candidates starting with the whole magic count as bad or oversized.
    #[test]
    fn random_input_never_panics(
        data in vec(prop_oneof![4 => any::<u8>(), 1 => Just(0xEA), 1 => Just(0x9E), 1 => Just(0u8)], 0..1500),
        storage in 0usize..300,
        chunks in arb_chunks(),
    ) {
        let (sink, stats, buffered) = run(storage, &data, &chunks);
        prop_assert_eq!(stats.skipped_bytes + buffered as u64 + sink.delivered, data.len() as u64);
        if storage >= OVERHEAD {
            let magics = data.windows(2).filter(|w| *w == frame::MAGIC).count() as u64;
            prop_assert!(stats.bad_crc + stats.oversized + stats.frames <= magics, "{:?}, {} magics", stats, magics);
        }
        for f in &sink.frames {
            let n = f.len();
            prop_assert_eq!(u32::from_le_bytes(f[n - 4..].try_into().unwrap()), crc32c(&f[..n - 4]));
        }
    }

    /// Valid frames damaged by random overwrites, insertions and deletions:
    /// no panic, and whatever comes out is one of the undamaged frames.
    #[test]
    fn damaged_streams_yield_only_true_frames(
        msgs in vec(arb_owned(), 1..5),
        edits in vec((any::<Index>(), 0u8..3, any::<u8>()), 0..8),
        storage in prop_oneof![Just(MAX_FRAME), 17usize..200],
        chunks in arb_chunks(),
    ) {
        let frames: Vec<Vec<u8>> = msgs.iter().enumerate().map(|(i, m)| m.frame(i as u32)).collect();
        let mut wire = frames.concat();
        for (at, op, byte) in edits {
            let i = at.index(wire.len() + 1);
            match op {
                0 if i < wire.len() => wire[i] = byte,
                1 => wire.insert(i, byte),
                _ if i < wire.len() => { wire.remove(i); }
                _ => {}
            }
        }
        let (sink, _, _) = run(storage, &wire, &chunks);
        for f in &sink.frames {
            prop_assert!(frames.contains(f), "decoder produced a frame that was never sent");
            // And such a frame still decodes as what was sent.
            let i = frames.iter().position(|g| g == f).unwrap();
            prop_assert_eq!(Message::decode(&decode_frame(f)), Ok(msgs[i].msg()));
        }
    }

    /// Any body under any kind, version and flags: decoding never panics, and
    /// what decodes re-encodes to a frame that decodes the same.
    #[test]
    fn message_decode_never_panics(kind in any::<u8>(), version in prop_oneof![Just(VERSION), any::<u8>()],
                                   flags in any::<u8>(), body in vec(any::<u8>(), 0..64)) {
        let f = Frame { version, kind, flags, seq: 0, body: &body };
        if let Ok(m) = Message::decode(&f) {
            prop_assert_eq!(m.kind() as u8, kind);
            let mut out = vec![0u8; 256];
            let n = m.encode(0, &mut out).unwrap();
            prop_assert_eq!(Message::decode(&decode_frame(&out[..n])), Ok(m));
            if let Message::Batch(b) = m {
                b.iter().for_each(drop);
            }
        }
    }

    /// A TaskResult body alone (a TASK_RESULT record's payload) round-trips.
    #[test]
    fn task_result_body_round_trip(token in arb_str(), status in any::<u32>(), text in arb_str()) {
        let r = TaskResult { token: token.as_str().into(), status, message: text.as_str().into() };
        let mut out = [0u8; 256];
        let n = message::encode_task_result(&r, &mut out).unwrap();
        let (got, rest) = postcard::take_from_bytes::<TaskResult<'_>>(&out[..n]).unwrap();
        prop_assert_eq!(got, r);
        prop_assert!(rest.is_empty());
    }

    /// Batch entries round-trip through `EntryIter` (timestamps going both
    /// ways, wrapping), and each entry is postcard's encoding of
    /// `(data_type, ts_delta, payload)`.
    #[test]
    fn entries_round_trip((base_ts, recs) in arb_records(16)) {
        let bytes = encode_entries(base_ts, &recs);
        let got: Vec<Record<'_>> = EntryIter::new(&bytes, base_ts).map(Result::unwrap).collect();
        prop_assert_eq!(got.len(), recs.len());
        for (g, (t, ts, p)) in got.iter().zip(&recs) {
            prop_assert_eq!(*g, Record::new(*t, *ts, p));
        }
        let mut oracle = Vec::new();
        let mut prev = base_ts;
        for (t, ts, p) in &recs {
            let mut buf = [0u8; 64];
            let tuple = (*t, ts_delta(prev, *ts), serde_bytes::Bytes::new(p));
            let entry = postcard::to_slice(&tuple, &mut buf).unwrap();
            prop_assert_eq!(Record::new(*t, *ts, p).entry_len(prev), entry.len());
            oracle.extend_from_slice(entry);
            prev = *ts;
        }
        prop_assert_eq!(bytes, oracle);
    }

    /// `EntryIter` on arbitrary bytes: no panic, errors only last, payloads
    /// inside the input, at most one record per 3 bytes (plus the error).
    #[test]
    fn entry_iter_never_panics(bytes in vec(any::<u8>(), 0..200), base_ts in any::<u64>()) {
        let mut it = EntryIter::new(&bytes, base_ts);
        let mut items = 0;
        let mut used = 0;
        while let Some(item) = it.next() {
            items += 1;
            match item {
                Ok(r) => used += 3 + r.payload.len(),
                Err(e) => {
                    prop_assert!(matches!(e, EntryError::Truncated | EntryError::Malformed));
                    prop_assert!(it.next().is_none(), "iterator continued after an error");
                    break;
                }
            }
        }
        prop_assert!(used <= bytes.len());
        prop_assert!(items <= bytes.len() / 3 + 1);
    }
}

/// Regression: after a bad candidate, a false start (`EA` not followed by
/// `9E`) inside it was taken as a candidate and counted as oversized.
#[test]
fn false_start_after_resync_is_not_counted() {
    let mut wire = vec![0xEA, 0x9E, 1, 4, 0, 28, 0, 0, 0, 0, 0, 0, 0];
    let mut body = [0u8; 28];
    body[..9].copy_from_slice(&[0xEA, 0x00, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    wire.extend_from_slice(&body);
    wire.extend_from_slice(&[1, 2, 3, 4]); // not the CRC
    let (sink, stats, buffered) = run(64, &wire, &[wire.len()]);
    assert!(sink.frames.is_empty());
    assert_eq!((stats.bad_crc, stats.oversized, stats.skipped_bytes, buffered), (1, 0, wire.len() as u64, 0));
}

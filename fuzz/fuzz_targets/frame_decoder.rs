//! The streaming frame decoder on any byte stream, in any chunking.
//!
//! The stream is built from pieces: raw bytes, frames with any header values
//! and a valid CRC (optionally damaged: truncated, a flipped byte, a wrong
//! length field), encoded messages, and decoder resets. It is fed to a
//! `FrameDecoder` over a buffer of 0..=4096 bytes in chunks of arbitrary
//! sizes. Checks:
//!
//! * never panics; `Message::decode` (and, for batches, the entries) runs
//!   on every frame yielded;
//! * every frame yielded is the stream's bytes at the position the decoder
//!   implies (so it has a valid CRC-32C over header and body), and is no
//!   longer than the buffer;
//! * `stats().frames` equals the frames yielded, and
//!   `skipped_bytes + bytes of yielded frames + buffered() == bytes consumed`
//!   after every call;
//! * completeness: every intact frame that fits the buffer is yielded,
//!   unless a frame yielded before it overlaps it or a reset cut it off.

#![no_main]
// Fuzzer inputs: variant sizes do not matter.
#![allow(clippy::large_enum_variant)]

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::{HEADER_LEN, OVERHEAD, VERSION};
use agent_core::message::Message;
use agent_core_fuzz::{check_entries, encode_message, raw_frame, OwnedMessage};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Damage {
    None,
    /// Keep only this many bytes (mod the frame length).
    Truncate(u16),
    /// XOR one byte (position mod the frame length) with a non-zero value.
    Flip {
        at: u16,
        xor: u8,
    },
    /// Replace the body length field.
    Length(u32),
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Raw(Vec<u8>),
    /// The magic and a bit more, to provoke false starts.
    Magic {
        second: bool,
    },
    Frame {
        version: Option<u8>,
        kind: u8,
        flags: u8,
        seq: u32,
        body: Vec<u8>,
        damage: Damage,
    },
    Message {
        seq: u32,
        msg: OwnedMessage,
        damage: Damage,
    },
    /// The caller resets the decoder (a connection ended).
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    buf_len: u16,
    /// Chunk sizes, used in turn (0 feeds an empty slice).
    chunks: Vec<u16>,
    pieces: Vec<Piece>,
}

fn damage(mut f: Vec<u8>, d: &Damage) -> (Vec<u8>, bool) {
    match *d {
        Damage::None => (f, true),
        Damage::Truncate(n) => {
            f.truncate(usize::from(n) % f.len());
            (f, false)
        }
        Damage::Flip { at, xor } => {
            let at = usize::from(at) % f.len();
            f[at] ^= xor.max(1);
            (f, false)
        }
        Damage::Length(l) => {
            let intact = l as usize == f.len() - OVERHEAD;
            f[5..9].copy_from_slice(&l.to_le_bytes());
            (f, intact)
        }
    }
}

fn run(input: &Input) {
    let buf_len = usize::from(input.buf_len % 4097);
    // The stream, where resets happen (stream offsets), and the intact frames.
    let mut stream = Vec::new();
    let mut resets = Vec::new();
    let mut intact = Vec::new();
    for p in &input.pieces {
        let (bytes, ok) = match p {
            Piece::Raw(b) => (b.clone(), false),
            Piece::Magic { second } => (if *second { vec![0xEA, 0x9E] } else { vec![0xEA] }, false),
            Piece::Frame { version, kind, flags, seq, body, damage: d } => {
                damage(raw_frame(version.unwrap_or(VERSION), *kind, *flags, *seq, body), d)
            }
            Piece::Message { seq, msg, damage: d } => {
                damage(encode_message(&msg.msg(), *seq), d)
            }
            Piece::Reset => {
                resets.push(stream.len());
                continue;
            }
        };
        if ok && bytes.len() <= buf_len {
            intact.push((stream.len(), stream.len() + bytes.len()));
        }
        stream.extend_from_slice(&bytes);
    }
    // Padding that cannot start a frame, so candidates pending at the end
    // are resolved and the completeness check sees every intact frame.
    let data_end = stream.len();
    stream.extend(std::iter::repeat_n(0u8, buf_len));

    let mut storage = vec![0u8; buf_len];
    let mut dec = FrameDecoder::new(&mut storage);
    let mut consumed = 0usize;
    let mut yielded = Vec::new(); // stream ranges of yielded frames
    let mut yielded_bytes = 0usize;
    let mut chunk_sizes = input.chunks.iter().copied().cycle();
    let mut next_reset = resets.iter().copied().peekable();
    let mut fed = 0usize; // stream offset of the next byte handed to feed
    let mut calls = 0u32;
    let mut last_empty = false;
    while fed < stream.len() || next_reset.peek().is_some() {
        if next_reset.peek() == Some(&fed) {
            next_reset.next();
            dec.reset();
            assert_eq!(dec.buffered(), 0);
            let s = dec.stats();
            assert_eq!(s.skipped_bytes as usize + yielded_bytes, consumed, "accounting after reset");
            continue;
        }
        let stop = next_reset.peek().copied().unwrap_or(stream.len());
        let size = match chunk_sizes.next() {
            // An empty feed now and then, but never twice in a row.
            Some(0) if !last_empty => 0,
            Some(n) => usize::from(n).max(1),
            None => stream.len(),
        };
        last_empty = size == 0;
        let end = (fed + size).min(stop);
        let mut chunk = &stream[fed..end];
        fed = end;
        loop {
            calls += 1;
            assert!(calls < 1_000_000, "decoder does not progress");
            let before = chunk.len();
            match dec.feed(chunk) {
                Feed::Consumed => {
                    consumed += before;
                    chunk = &[];
                }
                Feed::Frame { frame, remaining } => {
                    consumed += before - remaining.len();
                    chunk = remaining;
                    let len = frame.body.len() + OVERHEAD;
                    assert!(len <= buf_len, "frame of {len} bytes from a {buf_len}-byte buffer");
                    let expect = raw_frame(frame.version, frame.kind, frame.flags, frame.seq, frame.body);
                    if let Ok(Message::Batch(b)) = Message::decode(&frame) {
                        check_entries(b.records, b.base_ts);
                    }
                    // The decoder's buffer holds the last bytes consumed:
                    // the frame ends where the buffered rest begins.
                    let end = consumed - dec.buffered();
                    let start = end.checked_sub(len).expect("frame starts inside the stream");
                    assert_eq!(&stream[start..end], &expect[..], "frame is not the stream's bytes at {start}..{end}");
                    assert_eq!(&stream[start + HEADER_LEN..end - 4], &expect[HEADER_LEN..len - 4]);
                    if let Some(&(_, prev_end)) = yielded.last() {
                        assert!(start >= prev_end, "frames overlap or go backwards");
                    }
                    yielded.push((start, end));
                    yielded_bytes += len;
                }
            }
            let s = dec.stats();
            assert_eq!(s.frames as usize, yielded.len(), "stats.frames");
            assert!(dec.buffered() <= buf_len);
            assert_eq!(
                s.skipped_bytes as usize + yielded_bytes + dec.buffered(),
                consumed,
                "skipped + yielded + buffered == consumed"
            );
            if chunk.is_empty() {
                break;
            }
        }
    }
    assert_eq!(consumed, stream.len());
    // Completeness.
    for &(s, e) in &intact {
        debug_assert!(e <= data_end);
        if yielded.contains(&(s, e)) {
            continue;
        }
        let overlapped = yielded.iter().any(|&(ys, ye)| ys < e && s < ye);
        let cut = resets.iter().any(|&r| r > s);
        assert!(overlapped || cut, "intact frame at {s}..{e} was not yielded (yielded: {yielded:?})");
    }
}

fuzz_target!(|input: Input| run(&input));

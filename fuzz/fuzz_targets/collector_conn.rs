//! The collector's per-connection handling, from arbitrary client bytes.
//!
//! Bytes (raw, or well-formed frames of any kind, Hellos and Batches near
//! the expected sequence number, split anywhere) go through the collector's
//! path: `FrameDecoder` (of the collector's `max_frame`) -> `pre_hello`
//! (non-Hello frames before the Hello skipped) -> the ledger's resume point -> `Session::on_frame` -> the ledger's
//! `plan`, as `edge_collector::conn` does. Checks:
//!
//! * no panic, whatever the bytes;
//! * a Store never starts above the session's expected point, holds at
//!   least one line, and the ledger never refuses it as a gap (the session
//!   and the ledger agree);
//! * every line written is JSON naming the Hello's agent and the next
//!   sequence number, and its checksum verifies (`line::check`): the modeled sink holds each agent's records densely
//!   from the resume point, none twice;
//! * nothing is handled after a refusal (Reject or Close ends the connection).

#![no_main]

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::message::{Batch, Hello, Message};
use agent_core::record::{ts_delta, EntryHeader};
use agent_core_fuzz::{encode_message, OwnedMessage};
use arbitrary::Arbitrary;
use edge_collector::ledger::{plan, raise, ResumePoints, StoreOutcome};
use edge_collector::handshake::{pre_hello, HelloBounds, PreHello};
use edge_collector::session::{Session, Step};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Chunk {
    /// Raw bytes.
    Raw(Vec<u8>),
    /// Any message, well framed.
    Msg(OwnedMessage),
    /// A well-formed Hello.
    Hello { first_unacked_seq: u8, next_seq: u8, min_frame: u16 },
    /// A well-formed Batch starting `rel` from the expected point, with a
    /// count off by `count_adj`.
    Batch { rel: i8, count_adj: i8, records: Vec<(u16, i16, Vec<u8>)> },
    /// The previous chunk's bytes again, with one bit flipped.
    Flip { at: u16, bit: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_frame_kib: u8,
    /// What the ledger already holds for the agent.
    stored: Option<u8>,
    /// Split every chunk's bytes at this point (partial reads).
    split: u8,
    chunks: Vec<Chunk>,
}

const AGENT: &str = "fuzz-agent";

fn batch_bytes(first_seq: u64, count_adj: i8, records: &[(u16, i16, Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut prev = 1_000_000u64;
    for (t, d, p) in records.iter().take(64) {
        let ts = prev.wrapping_add_signed(i64::from(*d));
        let p = &p[..p.len().min(256)];
        let (h, n) = EntryHeader::new(u32::from(*t), ts_delta(prev, ts), p.len()).encode();
        entries.extend_from_slice(&h[..n]);
        entries.extend_from_slice(p);
        prev = ts;
    }
    let count = (records.len().min(64) as i64 + i64::from(count_adj)).clamp(0, u32::MAX as i64) as u32;
    encode_message(&Message::Batch(Batch { first_seq, base_ts: 1_000_000, count, records: &entries }), 1)
}

fuzz_target!(|input: Input| {
    let max_frame = 4096 + (u32::from(input.max_frame_kib) % 61) * 1024;
    let mut storage = vec![0u8; max_frame as usize];
    let mut decoder = FrameDecoder::new(&mut storage);
    let mut ledger = ResumePoints::new();
    if let Some(s) = input.stored {
        raise(&mut ledger, AGENT, u64::from(s));
    }
    // The modeled sink: per agent, the sequence numbers written, in order.
    let mut sink: Vec<(String, u64)> = Vec::new();
    let mut session: Option<Session> = None;
    let mut resume_at_hello = 0;
    let mut ended = false;
    let mut last = Vec::new();
    for chunk in &input.chunks {
        if ended {
            break;
        }
        let expected = session.as_ref().map_or(0, |s| s.expected());
        let bytes = match chunk {
            Chunk::Raw(b) => b.clone(),
            Chunk::Msg(m) => {
                encode_message(&m.msg(), 0)
            }
            Chunk::Hello { first_unacked_seq, next_seq, min_frame } => {
                let h = Hello {
                    agent_id: AGENT.into(), hostname: "h".into(), product: "p".into(), version: "1".into(), intranet_ipv4: &[10, 0, 0, 1],
                    intranet_ipv6: &[], extranet_ipv4: &[], extranet_ipv6: &[], auth_token: b"",
                    first_unacked_seq: u64::from(*first_unacked_seq), next_seq: u64::from(*next_seq),
                    max_frame: 65536, min_frame: u32::from(*min_frame),
                };
                encode_message(&Message::Hello(h), 0)
            }
            Chunk::Batch { rel, count_adj, records } => {
                batch_bytes(expected.saturating_add_signed(i64::from(*rel)), *count_adj, records)
            }
            Chunk::Flip { at, bit } => {
                let mut b = last.clone();
                if !b.is_empty() {
                    let i = usize::from(*at) % b.len();
                    b[i] ^= 1 << (bit % 8);
                }
                b
            }
        };
        last = bytes.clone();
        let cut = usize::from(input.split).min(bytes.len());
        for part in [&bytes[..cut], &bytes[cut..]] {
            let mut rest = part;
            while !ended {
                let (frame_step, remaining) = match decoder.feed(rest) {
                    Feed::Consumed => break,
                    Feed::Frame { frame, remaining } => {
                        let step = match session.as_mut() {
                            None => match pre_hello(&frame, max_frame, &HelloBounds::default()) {
                                PreHello::Skip => None,
                                PreHello::Hello(h) => {
                                    assert!(h.min_frame <= max_frame, "a Hello needing bigger frames is refused");
                                    assert!(h.first_unacked_seq <= h.next_seq && h.max_frame >= 64, "an impossible Hello is refused");
                                    let resume = raise(&mut ledger, &h.agent_id, h.first_unacked_seq);
                                    assert!(resume >= h.first_unacked_seq);
                                    resume_at_hello = resume;
                                    session = Some(Session::new(h.agent_id.as_str().into(), h.hostname.clone(), resume));
                                    None
                                }
                                PreHello::Refuse(_) => {
                                    ended = true;
                                    None
                                }
                            },
                            Some(s) => {
                                let before = s.expected();
                                let step = s.on_frame(&frame, 7);
                                Some((before, step, s.expected()))
                            }
                        };
                        (step, remaining)
                    }
                };
                rest = remaining;
                let Some((before, step, after)) = frame_step else { continue };
                match step {
                    Step::Store { lines, .. } => {
                        assert!(lines.first_seq <= before, "a Store above the expected point (a gap)");
                        assert!(!lines.ends.is_empty());
                        assert_eq!(after, before.max(lines.first_seq + lines.ends.len() as u64));
                        let mut buf = Vec::new();
                        match plan(&mut ledger, &lines, &mut buf) {
                            StoreOutcome::Stored { up_to, written } => {
                                assert_eq!(up_to, lines.first_seq + lines.ends.len() as u64 - 1);
                                let text = std::str::from_utf8(&buf).expect("lines are UTF-8");
                                assert_eq!(text.lines().count(), written as usize);
                                for l in text.lines() {
                                    let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
                                    assert!(matches!(edge_collector::line::check(l.as_bytes()), edge_collector::line::Checked::Sound(_)), "each line's checksum verifies");
                                    let agent = v["agent"].as_str().expect("agent").to_string();
                                    let seq = v["seq"].as_u64().expect("seq");
                                    let next = sink.iter().rev().find(|(a, _)| *a == agent).map(|(_, s)| s + 1);
                                    assert_eq!(seq, next.unwrap_or(resume_at_hello), "the sink holds the records densely from the resume point, once");
                                    sink.push((agent, seq));
                                }
                                assert_eq!(ledger[&*lines.agent], after, "ledger and session agree");
                            }
                            o => panic!("the ledger refused what the session let through: {o:?}"),
                        }
                    }
                    Step::Refuse(_) | Step::PeerClosed { .. } => ended = true,
                    Step::Pong(_) | Step::PongReceived(_) | Step::TaskResult(_) | Step::Skip => {
                        assert_eq!(before, after, "only a Store moves the expected point");
                    }
                }
            }
        }
    }
});

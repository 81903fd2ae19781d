//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! * [`raw_frame`]: frame bytes with any header values and a valid CRC, so
//!   the fuzzer gets past the checksum without having to guess it.
//! * [`OwnedMessage`]: an owned, `Arbitrary` [`Message`] of any kind, the
//!   very type the codec property tests use
//!   (`agent-core/tests/support/owned_message.rs`).
//! * [`check_entries`]: decodes a batch body and checks its structure.
//! * [`ring_model`]: the reference model of the send ring and its harness,
//!   the very one the proptest model test uses (`edge_testkit::ring_model`).

use agent_core::frame::{crc32c, MAGIC, OVERHEAD};
use agent_core::message::Message;
use agent_core::record::{apply_delta, EntryHeader, EntryIter, Record};
use arbitrary::Arbitrary;

/// Shared with `agent-core/tests/ring_model.rs`: one model for both.
pub use edge_testkit::ring_model;

/// A whole frame: header with the given fields, `body`, and the CRC-32C of
/// header and body. Unlike `frame::encode_with` the version and kind bytes
/// may be anything.
pub fn raw_frame(version: u8, kind: u8, flags: u8, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + OVERHEAD);
    f.extend_from_slice(&MAGIC);
    f.extend_from_slice(&[version, kind, flags]);
    f.extend_from_slice(&(body.len() as u32).to_le_bytes());
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(body);
    let crc = crc32c(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// Encodes `msg` as one frame (a buffer as large as it needs).
pub fn encode_message(msg: &Message<'_>, seq: u32) -> Vec<u8> {
    let mut out = vec![0u8; OVERHEAD + message_body_bound(msg)];
    let n = msg.encode(seq, &mut out).expect("the bound holds any encoding of the message");
    out.truncate(n);
    out
}

/// An upper bound of the encoded body of `msg`: every varint at its
/// longest (10 bytes), plus the string and byte-string contents.
pub fn message_body_bound(msg: &Message<'_>) -> usize {
    const V: usize = 10;
    match msg {
        Message::Hello(h) => {
            13 * V
                + h.agent_id.len()
                + h.hostname.len()
                + h.product.len()
                + h.version.len()
                + h.intranet_ipv4.len()
                + h.intranet_ipv6.len()
                + h.extranet_ipv4.len()
                + h.extranet_ipv6.len()
                + h.auth_token.len()
        }
        Message::Accept(_) | Message::Ack(_) | Message::Ping(_) | Message::Pong(_) => 2 * V,
        Message::Reject(r) => 3 * V + r.reason.len(),
        Message::Batch(b) => 4 * V + b.records.len(),
        Message::Task(t) => 5 * V + t.object_name.len() + t.payload.len() + t.token.len(),
        Message::Config(c) => 3 * V + c.name.len() + c.version.len() + c.payload.len(),
        Message::TaskResult(r) => 3 * V + r.token.len() + r.message.len(),
        Message::Close(c) => 2 * V + c.reason.len(),
    }
}

/// The one owned mirror of every message, shared with
/// `agent-core/tests/codec_props.rs`; here built from fuzzer input.
#[path = "../../agent-core/tests/support/owned_message.rs"]
#[macro_use]
mod owned_message;

owned_message!(#[derive(Arbitrary)]);

/// Decodes every entry of `bytes` (timestamps chained from `base_ts`) and
/// checks what any entry list must satisfy: the iterator ends, stops right
/// after the first error, and every payload is the slice of `bytes` that
/// ends its entry. Returns the records read before any error, and whether
/// there was one.
pub fn check_entries(bytes: &[u8], base_ts: u64) -> (Vec<Record<'_>>, bool) {
    let mut it = EntryIter::new(bytes, base_ts);
    let mut recs = Vec::new();
    let mut pos = 0usize;
    let mut prev_ts = base_ts;
    loop {
        match it.next() {
            None => {
                assert_eq!(pos, bytes.len(), "entries ended early without an error");
                return (recs, false);
            }
            Some(Ok(rec)) => {
                // Shortest entry: three one-byte varints.
                assert!(recs.len() < bytes.len() / 3 + 1, "more entries than the bytes can hold");
                let off = rec.payload.as_ptr() as usize - bytes.as_ptr() as usize;
                assert!(off >= pos + 3 && off + rec.payload.len() <= bytes.len(), "payload outside its entry");
                // The header in front of the payload says the same.
                let (h, hl) =
                    EntryHeader::decode_with(|i| bytes[pos..].get(i).copied()).expect("header of a good entry");
                assert_eq!(pos + hl, off, "header length");
                assert_eq!((h.data_type, h.payload_len), (rec.data_type, rec.payload.len()));
                assert_eq!(apply_delta(prev_ts, h.ts_delta), rec.timestamp_ms, "timestamps chain");
                prev_ts = rec.timestamp_ms;
                pos = off + rec.payload.len();
                recs.push(rec);
            }
            Some(Err(_)) => {
                assert!(it.next().is_none(), "EntryIter went on after an error");
                assert!(it.next().is_none(), "EntryIter went on after an error");
                return (recs, true);
            }
        }
    }
}

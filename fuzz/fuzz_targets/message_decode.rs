//! The message codec, both ways.
//!
//! * `Decode`: any (version, kind, body) through `Message::decode`. What
//!   decodes must re-encode (into no more room than the body it came from:
//!   postcard's encoding is minimal and trailing bytes are ignored), and the
//!   re-encoded frame must come out of a `FrameDecoder` and decode to the
//!   same message.
//! * `Encode`: any message through `Message::encode` and back: equal. An
//!   output buffer too small must give `BufferTooSmall`, never a short or
//!   different frame.

#![no_main]
// Fuzzer inputs: variant sizes do not matter.
#![allow(clippy::large_enum_variant)]

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::{EncodeError, Frame, OVERHEAD, VERSION};
use agent_core::message::{DecodeError, Message};
use agent_core_fuzz::{check_entries, encode_message, OwnedMessage};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Decode { version: Option<u8>, kind: u8, flags: u8, seq: u32, body: &'a [u8] },
    Encode { seq: u32, msg: OwnedMessage, small_out: u16 },
}

/// Runs `wire` (one whole frame) through a decoder of exactly its size.
fn decode_wire(wire: &[u8], check: impl FnOnce(Frame<'_>)) {
    let mut store = vec![0u8; wire.len()];
    let mut dec = FrameDecoder::new(&mut store);
    match dec.feed(wire) {
        Feed::Frame { frame, remaining } => {
            assert!(remaining.is_empty(), "bytes left after the frame");
            check(frame);
        }
        Feed::Consumed => panic!("an encoded frame did not come out of the decoder"),
    }
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Decode { version, kind, flags, seq, body } => {
        let version = version.unwrap_or(VERSION);
        let frame = Frame { version, kind, flags, seq, body };
        let msg = match Message::decode(&frame) {
            Ok(m) => m,
            Err(DecodeError::UnsupportedVersion) => {
                assert_ne!(version, VERSION);
                return;
            }
            Err(DecodeError::UnknownKind) => {
                assert!(agent_core::frame::Kind::from_u8(kind).is_none());
                return;
            }
            Err(DecodeError::Malformed) => return,
        };
        assert_eq!(msg.kind() as u8, kind);
        if let Message::Batch(b) = msg {
            check_entries(b.records, b.base_ts);
        }
        // Re-encoding is never longer than the body, but for an Accept
        // without its optional field 3, which comes back with it (1 byte).
        let mut out = vec![0u8; body.len() + OVERHEAD + 1];
        let n = msg.encode(seq, &mut out).unwrap_or_else(|e| {
            panic!("re-encoding {msg:?} into {} bytes (decoded from a {}-byte body): {e}", out.len(), body.len())
        });
        decode_wire(&out[..n], |f| {
            assert_eq!((f.version, f.kind, f.flags, f.seq), (VERSION, kind, 0, seq));
            assert_eq!(Message::decode(&f), Ok(msg), "round trip of a decoded message");
        });
        // Re-encoding is stable: the canonical form encodes to itself.
        let again = encode_message(&msg, seq);
        assert_eq!(&again[..], &out[..n]);
    }
    Input::Encode { seq, msg, small_out } => {
        let m = msg.msg();
        let wire = encode_message(&m, seq);
        decode_wire(&wire, |f| {
            assert_eq!(f.seq, seq);
            assert_eq!(Message::decode(&f), Ok(m), "encode then decode");
        });
        let small = usize::from(small_out) % (wire.len() + 2);
        let mut out = vec![0u8; small];
        match m.encode(seq, &mut out) {
            Ok(n) => assert_eq!(&out[..n], &wire[..], "encoding depends on the buffer size"),
            Err(EncodeError::BufferTooSmall) => assert!(small < wire.len(), "refused a buffer that fits"),
        }
    }
});

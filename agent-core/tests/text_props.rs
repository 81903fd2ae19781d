//! `agent_core::text::is_utf8`, the crate's own UTF-8 validator (written so
//! that firmware does not link `core::str::from_utf8`), takes the same
//! decision as `core::str::from_utf8` on every input: exhaustively on
//! every input of 1 to 3 bytes and on every 4-byte sequence led by
//! 0xF0..=0xF7, on every string of 4 and 5 bytes drawn from the bytes at
//! the edges of UTF-8's ranges, and at random on long strings that mix
//! text with broken and random bytes. The C API's `args::str` relies on
//! this equality for its `from_utf8_unchecked`.

use agent_core::text::{is_utf8, Text};
use proptest::prelude::*;

fn agrees(bytes: &[u8]) {
    let want = core::str::from_utf8(bytes).is_ok();
    assert_eq!(is_utf8(bytes), want, "{bytes:02x?}");
}

#[test]
fn every_input_of_one_to_three_bytes() {
    for a in 0..=255u8 {
        agrees(&[a]);
        for b in 0..=255u8 {
            agrees(&[a, b]);
            for c in 0..=255u8 {
                agrees(&[a, b, c]);
            }
        }
    }
}

/// Bytes at the edges of UTF-8's ranges: ASCII, the continuation range and
/// its narrower first-byte ranges (80..8F, 90..9F, A0..BF), the lead bytes
/// that are never valid (C0, C1, F5..FF) and each class of lead byte.
const EDGES: [u8; 26] = [
    0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xFF,
];

#[test]
fn every_four_byte_sequence_led_by_f0_to_f7() {
    // Every second and third byte, the fourth at the edges (it is a plain
    // continuation byte whatever the lead).
    for lead in 0xF0..=0xF7u8 {
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                for d in EDGES {
                    agrees(&[lead, b, c, d]);
                }
            }
        }
    }
}

#[test]
fn every_four_and_five_byte_string_of_edge_bytes() {
    for &a in &EDGES {
        for &b in &EDGES {
            for &c in &EDGES {
                for &d in &EDGES {
                    agrees(&[a, b, c, d]);
                    for &e in &EDGES {
                        agrees(&[a, b, c, d, e]);
                    }
                }
            }
        }
    }
}

#[test]
fn text_keeps_the_bytes_and_reads_back_as_the_str() {
    let s = "tâche-€-\u{10348}";
    let t = Text::from_utf8(s.as_bytes()).unwrap();
    assert_eq!((t.as_bytes(), t.as_str(), t.len()), (s.as_bytes(), s, s.len()));
    assert_eq!(t, Text::new(s));
    assert_eq!(Text::from_utf8(b"\xC0\x80"), None);
}

/// A piece of a test string: text, a character cut short, or any bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        (any::<char>(), 0usize..4).prop_map(|(c, cut)| {
            let mut b = c.to_string().into_bytes();
            b.truncate(cut.min(b.len()));
            b
        }),
        prop::collection::vec(any::<u8>(), 0..8),
        prop::collection::vec(prop::sample::select(EDGES.to_vec()), 0..8),
    ]
}

proptest! {
    #[test]
    fn agrees_with_from_utf8_on_mixed_strings(pieces in prop::collection::vec(piece(), 0..12)) {
        agrees(&pieces.concat());
    }

    #[test]
    fn agrees_with_from_utf8_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        agrees(&bytes);
    }
}

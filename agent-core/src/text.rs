//! Text received from the wire: [`Text`], bytes checked to be UTF-8 by
//! [`is_utf8`], this crate's own validator.
//!
//! What is validated where: the codec ([`crate::wire::codec`]) checks every
//! string field it reads with [`is_utf8`] (a body with invalid UTF-8 is
//! malformed) and hands it out as a [`Text`]; the event queue
//! ([`crate::events`]) checks its string fields again when it hands an
//! event out. Strings given to the agent by its caller are `&str`, checked
//! by Rust's type (the C API checks C's bytes with [`is_utf8`]).
//!
//! Why not `core::str::from_utf8`: this crate forbids `unsafe`, so turning
//! validated bytes into a `&str` takes `from_utf8`, and with it 368 B of
//! code and a 256-B table in every firmware image, while the C API only
//! needs the bytes. [`is_utf8`] takes the same decisions in less code (no
//! table); `tests/text_props.rs` compares the two on every input of up to
//! 3 bytes, on every 4-byte sequence led by F0..=F7, on short strings of
//! edge bytes and on random strings. [`Text::as_str`] calls `from_utf8` for
//! Rust callers that want a `&str`, so only they link it; the agent itself
//! compares, hashes and copies a `Text` as bytes (a task's token goes back
//! to `Agent::task_result` as the `Text` it came as).

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whether `bytes` is UTF-8, by exactly the rules of `core::str::from_utf8`:
/// no overlong encodings, no surrogates (U+D800..=U+DFFF), nothing above
/// U+10FFFF, no sequence cut short.
pub fn is_utf8(bytes: &[u8]) -> bool {
    // Continuation bytes still due, and the range the next one must be in.
    let (mut due, mut lo, mut hi) = (0u32, 0x80u8, 0xBFu8);
    for &b in bytes {
        if due > 0 {
            if b < lo || b > hi {
                return false;
            }
            (due, lo, hi) = (due - 1, 0x80, 0xBF);
        } else if b >= 0x80 {
            // A lead byte: C0 and C1 would only start overlongs, F5..=FF
            // values above U+10FFFF. It takes 1, 2 or 3 continuation bytes;
            // the first one's range is narrower after E0 and F0 (no
            // overlongs), ED (no surrogates) and F4 (nothing above
            // U+10FFFF), the others are 0x80..=0xBF.
            if !(0xC2..=0xF4).contains(&b) {
                return false;
            }
            due = if b < 0xE0 { 1 } else if b < 0xF0 { 2 } else { 3 };
            lo = match b {
                0xE0 => 0xA0,
                0xF0 => 0x90,
                _ => 0x80,
            };
            hi = match b {
                0xED => 0x9F,
                0xF4 => 0x8F,
                _ => 0xBF,
            };
        }
    }
    due == 0
}

/// UTF-8 text borrowed from a buffer: a string field of a received message
/// or of an event. Every `Text` holds valid UTF-8 (checked by [`is_utf8`]
/// when built from bytes), so [`Text::as_bytes`] is text a C caller can
/// take as is and [`Text::as_str`] never fails.
///
/// Compares, prints and (with serde) serializes as the string it holds.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Text<'a>(&'a [u8]);

impl<'a> Text<'a> {
    /// The text of a string.
    pub const fn new(s: &'a str) -> Self {
        Text(s.as_bytes())
    }

    /// `bytes` as text, or `None` if they are not UTF-8 ([`is_utf8`]).
    pub fn from_utf8(bytes: &'a [u8]) -> Option<Self> {
        if is_utf8(bytes) { Some(Text(bytes)) } else { None }
    }

    /// The UTF-8 bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The text as a `&str` (links `core::str::from_utf8`, which checks it
    /// once more: call it from host code, not in a firmware's paths).
    pub fn as_str(&self) -> &'a str {
        // Never fails: a `Text` holds UTF-8 by construction.
        core::str::from_utf8(self.0).unwrap_or_default()
    }

    /// A pointer to its first byte (for C, with [`Text::len`]).
    pub const fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// Its length in bytes.
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text::new(s)
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        same(self.0, other.as_bytes())
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        same(self.0, other.as_bytes())
    }
}

impl PartialEq<Text<'_>> for &str {
    fn eq(&self, other: &Text<'_>) -> bool {
        same(self.as_bytes(), other.0)
    }
}

/// `a == b`, byte by byte: the names compared are short, and a firmware
/// image then needs no `memcmp`.
#[inline(never)]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a str>::deserialize(d).map(Text::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Text`'s comparisons with `str` are the slices' `==`, on equal,
    /// empty, prefix, longer and differing strings.
    #[test]
    fn compares_like_slices() {
        let words = ["", "a", "b", "ab", "abc", "abd", "edge", "edge-", "\u{e9}dge", "edgf"];
        for a in words {
            for b in words {
                let (ta, want) = (Text::new(a), a.as_bytes() == b.as_bytes());
                assert_eq!(ta == *b, want, "{a:?} {b:?}");
                assert_eq!(ta == b, want, "{a:?} {b:?}");
                assert_eq!(b == ta, want, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn edges() {
        for ok in [&b""[..], b"a", "é".as_bytes(), "€".as_bytes(), "\u{10FFFF}".as_bytes(), "\u{D7FF}".as_bytes()] {
            assert!(is_utf8(ok), "{ok:x?}");
        }
        // Overlong, surrogate, above U+10FFFF, truncated, stray continuation.
        for bad in [&b"\xC0\x80"[..], b"\xE0\x9F\xBF", b"\xED\xA0\x80", b"\xF4\x90\x80\x80", b"\xE2\x82", b"\x80"] {
            assert!(!is_utf8(bad), "{bad:x?}");
        }
    }
}

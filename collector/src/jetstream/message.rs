//! The stream's message layout: one message per writer round, its payload
//! the round's JSON lines. Pure: packing lines into messages (the writer)
//! and checking a message's lines against its headers (the consumer).
//!
//! A message on `<prefix>.<token>` holds the records `first..=last` of one
//! agent, contiguous, in sequence order:
//!
//! * payload: exactly the bytes the file sink would write for them, one
//!   JSON line per record ([`crate::line`]), each ending with `\n`;
//! * [`FIRST_SEQ_HEADER`] and [`LAST_SEQ_HEADER`]: `first` and `last` in
//!   decimal, so the payload has `last - first + 1` lines;
//! * `Nats-Msg-Id`: [`super::subject::msg_id`], `<token>:<first>-<last>`.
//!
//! A message of the first layout (one record per message, before
//! 2026-12-07's second session) has only [`LEGACY_SEQ_HEADER`] and one line
//! without its `\n`; [`range`] and [`lines_in`] read it as `first = last`.

use std::fmt;

/// Header with the sequence number of the message's first record.
pub const FIRST_SEQ_HEADER: &str = "Edge-First-Seq";
/// Header with the sequence number of the message's last record.
pub const LAST_SEQ_HEADER: &str = "Edge-Last-Seq";
/// The first layout's header: the one record's sequence number.
pub const LEGACY_SEQ_HEADER: &str = "Edge-Seq";

/// The records `first..=last` of one agent as one message's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Sequence number of the first record.
    pub first: u64,
    /// Sequence number of the last record.
    pub last: u64,
    /// Their lines, each ending with `\n`.
    pub payload: Vec<u8>,
}

/// Packs one round's lines (contiguous sequence numbers, in order) into
/// messages of at most `max` payload bytes each. A line longer than `max`
/// alone makes a message of its own (the config refuses a `max` below the
/// longest possible line, so it does not happen).
#[derive(Debug)]
pub struct Packer {
    max: usize,
    done: Vec<Packed>,
    open: Option<Packed>,
}

impl Packer {
    /// An empty packer for messages of at most `max` payload bytes.
    pub fn new(max: usize) -> Packer {
        Packer { max, done: Vec::new(), open: None }
    }

    /// Adds record `seq`'s line (a missing final `\n` is added). `seq` must
    /// follow the previous record's.
    pub fn push(&mut self, seq: u64, line: &[u8]) {
        let len = line.len() + usize::from(line.last() != Some(&b'\n'));
        if let Some(open) = &self.open {
            debug_assert_eq!(seq, open.last + 1, "a round's records are contiguous");
            if open.payload.len() + len > self.max {
                self.done.extend(self.open.take());
            }
        }
        let open = self.open.get_or_insert_with(|| Packed { first: seq, last: seq, payload: Vec::new() });
        open.last = seq;
        open.payload.extend_from_slice(line);
        if line.last() != Some(&b'\n') {
            open.payload.push(b'\n');
        }
    }

    /// The messages, in order.
    pub fn finish(mut self) -> Vec<Packed> {
        self.done.extend(self.open.take());
        self.done
    }
}

/// What is wrong with a message read from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// Neither [`FIRST_SEQ_HEADER`] and [`LAST_SEQ_HEADER`] (`last >=
    /// first`) nor [`LEGACY_SEQ_HEADER`] as decimal numbers.
    Headers,
    /// The payload's line count is not `last - first + 1`.
    Lines {
        /// Lines the headers promise.
        expected: u64,
        /// Lines in the payload.
        found: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Headers => write!(f, "no valid {FIRST_SEQ_HEADER}/{LAST_SEQ_HEADER} (or {LEGACY_SEQ_HEADER}) headers"),
            LayoutError::Lines { expected, found } => write!(f, "{found} lines in the payload, the headers say {expected}"),
        }
    }
}

impl std::error::Error for LayoutError {}

/// The records `(first, last)` a message holds, from its headers (`get`
/// looks one up by name): the two range headers, else the legacy one.
pub fn range<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<(u64, u64), LayoutError> {
    let num = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
    match (num(FIRST_SEQ_HEADER), num(LAST_SEQ_HEADER)) {
        (Some(first), Some(last)) if last >= first => Ok((first, last)),
        (None, None) => num(LEGACY_SEQ_HEADER).map(|s| (s, s)).ok_or(LayoutError::Headers),
        _ => Err(LayoutError::Headers),
    }
}

/// Checks that `payload` holds exactly the lines of records `first..=last`
/// and returns their count. A payload without a final `\n` (the legacy
/// layout) counts its last line too: write it with a `\n` added.
pub fn lines_in(first: u64, last: u64, payload: &[u8]) -> Result<u64, LayoutError> {
    let expected = last - first + 1;
    let newlines = payload.iter().filter(|&&b| b == b'\n').count() as u64;
    let found = newlines + u64::from(!payload.is_empty() && payload.last() != Some(&b'\n'));
    if found == expected {
        Ok(found)
    } else {
        Err(LayoutError::Lines { expected, found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_within_the_bound_and_keeps_every_byte() {
        let lines: Vec<Vec<u8>> = (0..10u64).map(|i| format!("{{\"seq\":{i}}}\n").into_bytes()).collect();
        let mut p = Packer::new(30);
        for (i, l) in lines.iter().enumerate() {
            p.push(5 + i as u64, l);
        }
        let msgs = p.finish();
        assert!(msgs.len() > 1);
        let mut next = 5;
        let mut all = Vec::new();
        for m in &msgs {
            assert!(m.payload.len() <= 30, "{m:?}");
            assert_eq!(m.first, next);
            assert_eq!(lines_in(m.first, m.last, &m.payload), Ok(m.last - m.first + 1));
            next = m.last + 1;
            all.extend_from_slice(&m.payload);
        }
        assert_eq!(next, 15);
        assert_eq!(all, lines.concat(), "the payloads are the lines, byte for byte");
    }

    #[test]
    fn one_message_for_a_round_that_fits_and_a_long_line_alone() {
        let mut p = Packer::new(1 << 20);
        p.push(0, b"a\n");
        p.push(1, b"b");
        assert_eq!(p.finish(), vec![Packed { first: 0, last: 1, payload: b"a\nb\n".to_vec() }]);
        let mut p = Packer::new(4);
        p.push(0, b"ab\n");
        p.push(1, b"too long\n");
        p.push(2, b"c\n");
        let m = p.finish();
        assert_eq!(m.iter().map(|m| (m.first, m.last)).collect::<Vec<_>>(), [(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn reads_ranges_and_refuses_bad_ones() {
        let h = |pairs: &'static [(&'static str, &'static str)]| move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert_eq!(range(h(&[(FIRST_SEQ_HEADER, "3"), (LAST_SEQ_HEADER, "9")])), Ok((3, 9)));
        assert_eq!(range(h(&[(LEGACY_SEQ_HEADER, "4")])), Ok((4, 4)));
        assert_eq!(range(h(&[(FIRST_SEQ_HEADER, "9"), (LAST_SEQ_HEADER, "3")])), Err(LayoutError::Headers));
        assert_eq!(range(h(&[(FIRST_SEQ_HEADER, "1")])), Err(LayoutError::Headers));
        assert_eq!(range(h(&[(LEGACY_SEQ_HEADER, "x")])), Err(LayoutError::Headers));
        assert_eq!(range(h(&[])), Err(LayoutError::Headers));
        assert_eq!(lines_in(3, 4, b"a\nb\n"), Ok(2));
        assert_eq!(lines_in(4, 4, b"legacy"), Ok(1));
        assert_eq!(lines_in(3, 5, b"a\nb\n"), Err(LayoutError::Lines { expected: 3, found: 2 }));
        assert_eq!(lines_in(3, 3, b""), Err(LayoutError::Lines { expected: 1, found: 0 }));
    }
}

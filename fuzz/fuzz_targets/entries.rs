//! Batch entries (`record::EntryIter`), both ways.
//!
//! * `Parse`: any bytes and base timestamp. Never panics, ends, stops right
//!   after the first error, every payload lies where its header says, and
//!   timestamps chain from `base_ts` (see `check_entries`).
//! * `Build`: any records encoded with `EntryHeader` (as the ring stores
//!   them) parse back to exactly those records, with `entry_len` matching
//!   the bytes written; cutting the bytes short gives a `Truncated` error
//!   after the records that are whole.

#![no_main]

use agent_core::record::{ts_delta, EntryError, EntryHeader, EntryIter, Record};
use agent_core_fuzz::check_entries;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Parse { base_ts: u64, bytes: &'a [u8] },
    Build { base_ts: u64, records: Vec<(u32, u64, &'a [u8])>, cut: u16 },
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Parse { base_ts, bytes } => {
        check_entries(bytes, base_ts);
    }
    Input::Build { base_ts, records, cut } => {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        let mut prev = base_ts;
        for &(t, ts, payload) in &records {
            let rec = Record::new(t, ts, payload);
            let (h, hl) = EntryHeader::new(t, ts_delta(prev, ts), payload.len()).encode();
            bytes.extend_from_slice(&h[..hl]);
            bytes.extend_from_slice(payload);
            assert_eq!(rec.entry_len(prev), hl + payload.len(), "entry_len");
            ends.push(bytes.len());
            prev = ts;
        }
        let (got, err) = check_entries(&bytes, base_ts);
        assert!(!err, "well-formed entries gave an error");
        assert_eq!(got.len(), records.len());
        for (g, &(t, ts, payload)) in got.iter().zip(&records) {
            assert_eq!(*g, Record::new(t, ts, payload));
        }
        if bytes.is_empty() {
            return;
        }
        let cut = usize::from(cut) % bytes.len();
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let mut it = EntryIter::new(&bytes[..cut], base_ts);
        for _ in 0..whole {
            assert!(matches!(it.next(), Some(Ok(_))));
        }
        if cut == 0 || ends.contains(&cut) {
            assert!(it.next().is_none());
        } else {
            assert_eq!(it.next(), Some(Err(EntryError::Truncated)));
            assert!(it.next().is_none());
        }
    }
});

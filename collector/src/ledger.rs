//! What of a batch to write: the per-agent resume points and the rule that
//! keeps the sink exactly once. Pure (no I/O, no clock), shared by the
//! commit thread and the fuzz target.
//!
//! Per agent the ledger holds the next sequence number expected, below which
//! every record is in the sink. A batch is written from that point on: its
//! records below it are duplicates (skipped), and a batch that starts above
//! it would leave a gap (refused whole). The point only grows.

use std::collections::HashMap;
use std::sync::Arc;

/// Resume points: per agent id, the next sequence number expected.
pub type ResumePoints = HashMap<String, u64>;

/// The lines of one Batch, one per record, to be written for `agent`.
#[derive(Debug)]
pub struct Lines {
    /// Agent id.
    pub agent: Arc<str>,
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// The lines back to back.
    pub bytes: Vec<u8>,
    /// End offset in `bytes` of each record's line.
    pub ends: Vec<usize>,
}

/// What became of a store request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Every record of the agent up to `up_to` is durable; `written` of
    /// this batch's records were new, the rest were duplicates.
    Stored {
        /// Highest sequence number of the batch.
        up_to: u64,
        /// Records written now.
        written: u32,
    },
    /// The batch starts above the agent's resume point `expected`: nothing
    /// was written.
    Gap {
        /// The resume point.
        expected: u64,
    },
    /// The sink failed; nothing can be acked.
    Failed,
    /// Another writer (another collector) wrote this agent's records in
    /// the meantime (JetStream sink): nothing of the batch is acked, and the
    /// session is closed so that the agent resumes where the stream is.
    Fenced,
}

/// What a Hello may do to its agent's resume point, by what its connection
/// proved (PROTOCOL.md, Identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A proven connection: raise the point to `first_unacked_seq` (records
    /// below it were acked by another collector); an unknown agent starts
    /// there.
    Raise,
    /// An unproven connection allowed a new id: an unknown agent starts at
    /// `first_unacked_seq` if fewer than `max_agents` agents have a point;
    /// a known agent's point is never moved.
    Create {
        /// Most agents with a resume point.
        max_agents: usize,
    },
    /// An unproven connection: only read the point; an unknown agent stays
    /// unknown.
    Lookup,
}

/// Applies `claim` for `agent` with the Hello's `first_unacked_seq` =
/// `floor`: the agent's resume point afterwards, `None` if it has none.
pub fn claim(resume: &mut ResumePoints, agent: &str, floor: u64, claim: Claim) -> Option<u64> {
    match (claim, resume.get(agent).copied()) {
        (Claim::Raise, _) => Some(raise(resume, agent, floor)),
        (Claim::Create { max_agents }, None) if resume.len() < max_agents => Some(raise(resume, agent, floor)),
        (_, known) => known,
    }
}

/// Raises `agent`'s resume point to at least `floor` (an agent unknown so
/// far starts there) and returns it.
pub fn raise(resume: &mut ResumePoints, agent: &str, floor: u64) -> u64 {
    let e = resume.entry(agent.to_string()).or_insert(floor);
    *e = (*e).max(floor);
    *e
}

/// Decides what of `l` to write (appending it to `buf`) and advances the
/// agent's resume point. An agent without a resume point (none was handed
/// out) is refused like a gap.
pub fn plan(resume: &mut ResumePoints, l: &Lines, buf: &mut Vec<u8>) -> StoreOutcome {
    let count = l.ends.len() as u64;
    if count == 0 {
        return StoreOutcome::Gap { expected: resume.get(&*l.agent).copied().unwrap_or(0) };
    }
    let Some(next) = resume.get_mut(&*l.agent) else {
        // No resume point was handed out for this agent: storing would
        // guess one. Sessions always ask first, so this is a bug upstream.
        return StoreOutcome::Gap { expected: 0 };
    };
    if l.first_seq > *next {
        return StoreOutcome::Gap { expected: *next };
    }
    let end = l.first_seq + count;
    let skip = (*next - l.first_seq).min(count) as usize;
    if skip < l.ends.len() {
        let from = if skip == 0 { 0 } else { l.ends[skip - 1] };
        buf.extend_from_slice(&l.bytes[from..]);
        *next = end;
    }
    StoreOutcome::Stored { up_to: end - 1, written: (l.ends.len() - skip) as u32 }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_raise_moves_a_known_point() {
        let mut r = ResumePoints::new();
        assert_eq!(claim(&mut r, "a", 5, Claim::Lookup), None, "a lookup creates nothing");
        let create = Claim::Create { max_agents: 2 };
        assert_eq!(claim(&mut r, "a", 5, create), Some(5), "a new id starts at its first_unacked_seq");
        assert_eq!(claim(&mut r, "a", 1 << 62, create), Some(5), "an unproven claim never raises a known point");
        assert_eq!(claim(&mut r, "b", 0, create), Some(0));
        assert_eq!(claim(&mut r, "c", 0, create), None, "the table is full for new unproven ids");
        assert_eq!(claim(&mut r, "c", 0, Claim::Raise), Some(0), "a proven id is bounded by the token file instead");
        assert_eq!(claim(&mut r, "a", 1 << 62, Claim::Lookup), Some(5));
        assert_eq!(claim(&mut r, "a", 9, Claim::Raise), Some(9));
        assert_eq!(claim(&mut r, "a", 2, Claim::Raise), Some(9), "never lowered");
    }

    // ---- one test per rule (PROTOCOL.md row numbers: its conformance checklist) ----

    /// The lines of a batch of `count` records from `first_seq`: line `seq` is "<seq>\n".
    fn lines(agent: &str, first_seq: u64, count: u64) -> Lines {
        let mut l = Lines { agent: agent.into(), first_seq, bytes: Vec::new(), ends: Vec::new() };
        for seq in first_seq..first_seq + count {
            l.bytes.extend_from_slice(format!("{seq}\n").as_bytes());
            l.ends.push(l.bytes.len());
        }
        l
    }

    fn written(buf: &[u8]) -> Vec<u64> {
        std::str::from_utf8(buf).unwrap().lines().map(|l| l.parse().unwrap()).collect()
    }

    // Row 6; Sequence numbers (resume point): an agent the ledger does not know starts at
    // the Hello's first_unacked_seq; a known one answers its own point, raised by a higher
    // floor and never lowered.
    #[test]
    fn an_unknown_agent_starts_at_its_floor_and_a_known_point_is_never_lowered() {
        let mut r = ResumePoints::new();
        assert_eq!(raise(&mut r, "a", 7), 7);
        assert_eq!(raise(&mut r, "a", 3), 7, "a lower floor leaves the point");
        assert_eq!(raise(&mut r, "a", 12), 12, "a higher floor (acked by another collector) raises it");
        assert_eq!(raise(&mut r, "b", 0), 0, "points are per agent");
        assert_eq!(r.get("a"), Some(&12));
    }

    // Row 22: an unproven Hello (Lookup) only reads the point and creates none; one allowed
    // a new id (Create) starts it at its floor while the table has room, and never moves a
    // known point; only a proven one (Raise) moves it up.
    #[test]
    fn an_unproven_claim_never_moves_a_known_point() {
        let mut r = ResumePoints::new();
        raise(&mut r, "victim", 10);
        for c in [Claim::Lookup, Claim::Create { max_agents: 100 }] {
            assert_eq!(claim(&mut r, "victim", 1_000, c), Some(10), "{c:?}");
            assert_eq!(claim(&mut r, "victim", 0, c), Some(10), "{c:?}");
        }
        assert_eq!(claim(&mut r, "victim", 1_000, Claim::Raise), Some(1_000));
        assert_eq!(claim(&mut r, "new", 4, Claim::Lookup), None);
        assert_eq!(claim(&mut r, "new", 4, Claim::Create { max_agents: 1 }), None, "the table is full");
        assert_eq!(r.len(), 1, "no point was created for `new`");
        assert_eq!(claim(&mut r, "new", 4, Claim::Create { max_agents: 2 }), Some(4), "room for one more");
    }

    // Rows 7 and 10: a batch at the resume point is written whole, the point moves to its
    // end and the Ack names its last record.
    #[test]
    fn a_batch_at_the_point_is_written_whole_and_advances_it() {
        let mut r = ResumePoints::new();
        raise(&mut r, "a", 5);
        let mut buf = Vec::new();
        assert_eq!(plan(&mut r, &lines("a", 5, 3), &mut buf), StoreOutcome::Stored { up_to: 7, written: 3 });
        assert_eq!(written(&buf), [5, 6, 7]);
        assert_eq!(r["a"], 8);
    }

    // Row 8: a batch wholly below the point writes nothing and is acked again (its last
    // record is durable already); the point stays.
    #[test]
    fn a_wholly_duplicate_batch_writes_nothing_and_is_acked_again() {
        let mut r = ResumePoints::new();
        raise(&mut r, "a", 10);
        let mut buf = Vec::new();
        assert_eq!(plan(&mut r, &lines("a", 4, 3), &mut buf), StoreOutcome::Stored { up_to: 6, written: 0 });
        assert_eq!(plan(&mut r, &lines("a", 7, 3), &mut buf), StoreOutcome::Stored { up_to: 9, written: 0 }, "ends just below the point");
        assert!(buf.is_empty());
        assert_eq!(r["a"], 10);
    }

    // Row 8: a batch straddling the point writes only its records from the point on, each
    // once, and is acked whole.
    #[test]
    fn a_batch_straddling_the_point_writes_only_its_new_records() {
        let mut r = ResumePoints::new();
        raise(&mut r, "a", 10);
        let mut buf = Vec::new();
        assert_eq!(plan(&mut r, &lines("a", 8, 5), &mut buf), StoreOutcome::Stored { up_to: 12, written: 3 });
        assert_eq!(written(&buf), [10, 11, 12]);
        assert_eq!(r["a"], 13);
    }

    // Row 9: a batch starting above the point is a gap: nothing written, nothing acked, the
    // point unchanged (the session closes; the agent resends from the point).
    #[test]
    fn a_batch_above_the_point_is_a_gap_and_writes_nothing() {
        let mut r = ResumePoints::new();
        raise(&mut r, "a", 10);
        let mut buf = Vec::new();
        assert_eq!(plan(&mut r, &lines("a", 11, 2), &mut buf), StoreOutcome::Gap { expected: 10 });
        assert!(buf.is_empty());
        assert_eq!(r["a"], 10);
    }

    // Rows 6 and 10: the ledger never guesses a point: a batch of an agent that was handed
    // none, or a batch without records, is refused like a gap and writes nothing.
    #[test]
    fn a_batch_without_a_handed_out_point_or_records_writes_nothing() {
        let mut r = ResumePoints::new();
        let mut buf = Vec::new();
        assert_eq!(plan(&mut r, &lines("stranger", 0, 2), &mut buf), StoreOutcome::Gap { expected: 0 });
        assert!(r.is_empty(), "no point was made up");
        raise(&mut r, "a", 3);
        assert_eq!(plan(&mut r, &lines("a", 3, 0), &mut buf), StoreOutcome::Gap { expected: 3 });
        assert!(buf.is_empty());
        assert_eq!(r["a"], 3);
    }

    // Rows 8 and 10 together, over a stream with resends, overlaps and a gap: every record
    // is written exactly once and in order, and every Stored ack names only records written.
    #[test]
    fn every_ack_covers_only_records_written_and_each_is_written_once() {
        let mut r = ResumePoints::new();
        raise(&mut r, "a", 0);
        let mut buf = Vec::new();
        let mut acked = None;
        for (first, count) in [(0, 3), (0, 3), (2, 4), (9, 1), (6, 2), (3, 2), (7, 5), (12, 1)] {
            match plan(&mut r, &lines("a", first, count), &mut buf) {
                StoreOutcome::Stored { up_to, .. } => {
                    assert!(up_to < r["a"], "ack {up_to} beyond what is written (point {})", r["a"]);
                    acked = acked.max(Some(up_to));
                }
                StoreOutcome::Gap { expected } => assert_eq!((first, expected), (9, 6)),
                o => panic!("{o:?}"),
            }
        }
        assert_eq!(written(&buf), (0..13).collect::<Vec<_>>());
        assert_eq!((acked, r["a"]), (Some(12), 13));
    }
}

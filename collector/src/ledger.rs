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
}

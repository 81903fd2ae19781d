//! What the collector sees, recorded as it happens: attempts, Accepts, Busy
//! Rejects and refusals per 100 ms, the instant of every Accept, and when
//! each agent is back (first admitted) in each phase of the timeline.
//!
//! An **attempt** is a Hello that reaches the collector or a connect it
//! refuses (a SYN while it is down). A **refusal** is a connect refused
//! while down, or (unpaced) a Hello refused beyond the rate.

use crate::scenario::Timeline;
use crate::server::Answer;

/// Width of one bucket of the series, ms.
pub const BUCKET_MS: u64 = 100;

/// What happened in one 100-ms bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Hellos that reached the collector, plus refused connects.
    pub attempts: u32,
    /// Hellos accepted.
    pub accepts: u32,
    /// Hellos answered Busy.
    pub busy: u32,
    /// Connects refused (down) and Hellos refused (unpaced, beyond the rate).
    pub refused: u32,
}

/// The raw record of one run.
pub struct Recorder {
    timeline: Timeline,
    agents: usize,
    /// The series, bucket `i` covering `[i * 100, (i + 1) * 100)` ms.
    pub buckets: Vec<Bucket>,
    /// Per phase, the instant of every Accept, in order.
    pub accepts: Vec<Vec<u64>>,
    /// Per phase, when each agent was first admitted.
    pub back: Vec<Vec<Option<u64>>>,
    back_count: Vec<usize>,
}

impl Recorder {
    /// An empty record for `agents` agents on `timeline`.
    pub fn new(timeline: Timeline, agents: usize) -> Recorder {
        let phases = timeline.restarts.len() + 1;
        Recorder {
            timeline,
            agents,
            buckets: Vec::new(),
            accepts: vec![Vec::new(); phases],
            back: vec![vec![None; agents]; phases],
            back_count: vec![0; phases],
        }
    }

    /// The timeline recorded on.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn bucket(&mut self, now: u64) -> &mut Bucket {
        let i = (now / BUCKET_MS) as usize;
        if i >= self.buckets.len() {
            self.buckets.resize(i + 1, Bucket::default());
        }
        &mut self.buckets[i]
    }

    /// A connect refused because the collector is down.
    pub fn refused_connect(&mut self, now: u64) {
        let b = self.bucket(now);
        b.attempts += 1;
        b.refused += 1;
    }

    /// A Hello from `client` reached the collector and got `answer`.
    pub fn hello(&mut self, now: u64, client: usize, answer: Answer) {
        let b = self.bucket(now);
        b.attempts += 1;
        match answer {
            Answer::Accept { .. } => {
                b.accepts += 1;
                let phase = self.timeline.phase(now);
                self.accepts[phase].push(now);
                if self.back[phase][client].is_none() {
                    self.back[phase][client] = Some(now);
                    self.back_count[phase] += 1;
                }
            }
            Answer::Busy { .. } => b.busy += 1,
            Answer::Refuse => b.refused += 1,
        }
    }

    /// Agents back (admitted at least once) in `phase`.
    pub fn back_count(&self, phase: usize) -> usize {
        self.back_count[phase]
    }

    /// True once every agent is back after the last restart.
    pub fn all_back(&self) -> bool {
        self.back_count.last() == Some(&self.agents)
    }
}

//! Where a connection stores records and gets resume points: the commit
//! thread over a local sink ([`crate::commit`]) or the JetStream writers
//! ([`crate::jetstream`]). Both answer the same two questions in the same
//! words ([`StoreOutcome`]), so [`crate::conn`] does not know which runs.

use crate::commit::CommitHandle;
use crate::ledger::{Claim, Lines, StoreOutcome};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The record store of one collector (cheap to clone).
#[derive(Clone, Debug)]
pub enum Store {
    /// The commit thread over the file or stdout sink.
    Local(CommitHandle),
    /// The JetStream writers.
    #[cfg(feature = "jetstream")]
    JetStream(crate::jetstream::JetStream),
}

impl Store {
    /// Queues a batch's lines (waits while the queue is full); the answer
    /// comes once they are durable, or refused.
    pub async fn store(&self, lines: Lines) -> oneshot::Receiver<StoreOutcome> {
        match self {
            Store::Local(c) => c.store(lines).await,
            #[cfg(feature = "jetstream")]
            Store::JetStream(j) => j.store(lines).await,
        }
    }

    /// The agent's durable resume point, raised to `floor` (the Hello's
    /// `first_unacked_seq`); `None` if the store cannot answer.
    pub async fn resume(&self, agent: Arc<str>, floor: u64) -> Option<u64> {
        match self {
            Store::Local(c) => c.resume(agent, floor).await,
            #[cfg(feature = "jetstream")]
            Store::JetStream(j) => j.resume(agent, floor).await,
        }
    }

    /// The agent's durable resume point after applying `claim` with the
    /// Hello's `first_unacked_seq` = `floor` (PROTOCOL.md, Identity):
    /// `Some(None)` for an agent the store has no point for, `None` if the
    /// store cannot answer. In JetStream an agent has a point once its
    /// subject holds a record; a lookup of one without records answers
    /// `Some(None)`, so a new unproven id goes through the new-id budget
    /// as with the local store, and `Claim::Create`'s `max_agents` bounds
    /// the stream's subjects (agents with records in the stream, counted by
    /// the stream leader): a new id is refused (`Some(None)`) once the
    /// stream holds `max_agents` of them. Collectors admitting new ids at
    /// the same moment each see the count before the others' first
    /// records, so the stream can pass the bound by the new ids admitted
    /// meanwhile (each collector's `--new-agents-per-sec` bounds those).
    pub async fn claim(&self, agent: Arc<str>, floor: u64, claim: Claim) -> Option<Option<u64>> {
        match self {
            Store::Local(c) => c.claim(agent, floor, claim).await,
            #[cfg(feature = "jetstream")]
            Store::JetStream(j) => match claim {
                Claim::Raise => j.resume(agent, floor).await.map(Some),
                Claim::Lookup => j.resume(agent, 0).await.map(|p| (p > 0).then_some(p)),
                Claim::Create { max_agents } => {
                    let known = j.resume(agent, 0).await?;
                    if known > 0 {
                        return Some(Some(known));
                    }
                    let agents = j.agents().await?;
                    Some((agents < max_agents as u64).then_some(known))
                }
            },
        }
    }

    /// Returns once the store has failed for good (the local sink after an
    /// I/O error; the process then exits for its supervisor). JetStream
    /// publishes that fail are refused batch by batch and retried by the
    /// agents, so that store never fails for good.
    pub async fn failed(&self) {
        match self {
            Store::Local(c) => c.failed().await,
            #[cfg(feature = "jetstream")]
            Store::JetStream(_) => std::future::pending().await,
        }
    }
}

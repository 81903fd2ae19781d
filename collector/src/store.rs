//! Where a connection stores records and gets resume points: the commit
//! thread over a local sink ([`crate::commit`]) or the JetStream writers
//! ([`crate::jetstream`]). Both answer the same two questions in the same
//! words ([`StoreOutcome`]), so [`crate::conn`] does not know which runs.

use crate::commit::CommitHandle;
use crate::ledger::{Lines, StoreOutcome};
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
}

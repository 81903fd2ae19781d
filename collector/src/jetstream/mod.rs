//! The JetStream sink: records in a NATS JetStream stream that any number
//! of collectors share (`--sink nats://...`).
//!
//! # What goes where
//!
//! Each writer round of an agent (every batch of it waiting, contiguous
//! sequence numbers) is **one message** on the agent's subject
//! `<prefix>.<token>` ([`subject`]): its payload exactly the JSON lines the
//! file sink would write for those records ([`crate::line`], each line with
//! its `\n` and its `crc` field), headers `Edge-First-Seq` and
//! `Edge-Last-Seq` (the first and last sequence number) and `Nats-Msg-Id:
//! <token>:<first>-<last>` ([`message`] has the layout). A round longer
//! than `--nats-max-message-bytes` (default 768 KiB, below nats-server's
//! default `max_payload` of 1 MiB) is split over several such messages.
//! The stream (`--nats-stream`, subjects `<prefix>.>`) is created if
//! missing, with `--nats-replicas`, `--nats-max-age` and
//! `--nats-duplicate-window`. With `--nats-partitions N` above 1 the
//! agents are spread over N streams `<stream>_<i>` (subjects
//! `<prefix>.<i>.>`, agent subject `<prefix>.<i>.<token>`,
//! `i` = [`subject::partition`]), so that the servers' per-stream fsyncs
//! run in parallel; N is recorded in each stream and another N refused.
//!
//! # Exactly once, in order, across collectors
//!
//! * **Resume point from the stream.** On Hello the collector reads the
//!   last message on the agent's subject from the stream leader
//!   (`STREAM.MSG.GET`, not a direct get that a replica could answer from
//!   behind): the resume point is its `Edge-Last-Seq` + 1 (0 if the subject
//!   is empty), raised to the Hello's `first_unacked_seq`. So any collector
//!   can take any agent.
//! * **One writer per agent.** Per agent, publishing goes in rounds, one
//!   message each (so one ack and, with `sync_interval: always`, one fsync
//!   per round, not per record). Every message carries
//!   `Nats-Expected-Last-Subject-Sequence` = the stream sequence of the last
//!   message this collector knows on the subject (for the second message of
//!   a split round: the first's, from its ack). If any other writer (a
//!   collector still serving a stale connection of the agent) wrote in
//!   between, JetStream refuses the message: it is not acked and the
//!   session is closed with Close(7) "another collector writes this agent"
//!   ([`crate::ledger::StoreOutcome::Fenced`]); the agent reconnects and
//!   its next collector reads the new resume point. A message JetStream
//!   calls a duplicate (its `Nats-Msg-Id` is in the window: another writer
//!   stored this very range) is fenced too.
//! * **Repeats.** Records below the resume point are dropped by comparing
//!   with it (however old they are); a batch that overlaps it is trimmed to
//!   its new tail, never written twice.
//! * **Acks.** A batch is acked to the agent only once JetStream acked the
//!   message holding its last record. A failed publish or read (timeout,
//!   lost leader) sticks for the session: it acks nothing more and is
//!   closed with code 2; the next Hello re-reads the stream (messages of a
//!   split round stored before the failure count there).
//!
//! # Durability
//!
//! A JetStream publish ack is what the collector calls durable only if
//! either the servers sync every write (`sync_interval: always`,
//! `--nats-sync always`, the default), or the stream has 3 or more
//! replicas (an ack then means a quorum holds it). `--nats-sync interval`
//! with `--nats-replicas 1` is refused at start.
//!
//! # The registry, tasks and configs
//!
//! Shared by every collector through JetStream KV buckets: [`kv`].

pub mod message;
pub mod subject;

#[cfg(feature = "jetstream")]
pub mod consume;
#[cfg(feature = "jetstream")]
pub mod kv;
#[cfg(feature = "jetstream")]
mod writer;

#[cfg(feature = "jetstream")]
pub use writer::JetStream;

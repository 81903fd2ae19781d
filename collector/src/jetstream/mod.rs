//! The JetStream sink: records in a NATS JetStream stream that any number
//! of collectors share (`--sink nats://...`).
//!
//! # What goes where
//!
//! Each record is one message on its agent's subject
//! `<prefix>.<token>` ([`subject`]), its JSON line ([`crate::line`], without
//! the newline) as payload, with headers `Nats-Msg-Id: <token>:<seq>` and
//! `Edge-Seq: <seq>`. The stream (`--nats-stream`, subjects `<prefix>.>`)
//! is created if missing, with `--nats-replicas`, `--nats-max-age` and
//! `--nats-duplicate-window`.
//!
//! # Exactly once, in order, across collectors
//!
//! * **Resume point from the stream.** On Hello the collector reads the
//!   last message on the agent's subject from the stream leader
//!   (`STREAM.MSG.GET`, not a direct get that a replica could answer from
//!   behind): the resume point is its `Edge-Seq` + 1 (0 if the subject is
//!   empty), raised to the Hello's `first_unacked_seq`. So any collector
//!   can take any agent.
//! * **One writer per agent.** Per agent, publishing goes in rounds: a
//!   round publishes every record waiting as atomic batches (stream option
//!   `allow_atomic`, nats-server 2.12+: at most 1,000 messages, stored all
//!   or none, one ack each; so publishing is pipelined, not one round trip
//!   per record). A batch's first message carries
//!   `Nats-Expected-Last-Subject-Sequence` = the stream sequence of the last
//!   message this collector knows on the subject. If any other writer (a
//!   collector still serving a stale connection of the agent) wrote in
//!   between, JetStream refuses the whole batch: it is not acked and the
//!   session is closed with Close(7) "another collector writes this agent"
//!   ([`crate::ledger::StoreOutcome::Fenced`]); the agent reconnects and
//!   its next collector reads the new resume point. (Per-record publishes
//!   with the expectation on a round's first message only are not enough:
//!   the rest of the round would still land after the first was refused.)
//! * **Repeats.** Records below the resume point are dropped by comparing
//!   with it (however old they are); `Nats-Msg-Id` makes JetStream drop a
//!   repeat within the duplicate window too.
//! * **Acks.** A batch is acked to the agent only once JetStream acked the
//!   atomic batch holding its last record. A failed publish or read
//!   (timeout, lost leader) sticks for the session: it acks nothing more and
//!   is closed with code 2; the next Hello re-reads the stream.
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

pub mod subject;

#[cfg(feature = "jetstream")]
pub mod consume;
#[cfg(feature = "jetstream")]
pub mod kv;
#[cfg(feature = "jetstream")]
mod writer;

#[cfg(feature = "jetstream")]
pub use writer::JetStream;

/// Header carrying a record's sequence number.
pub const SEQ_HEADER: &str = "Edge-Seq";

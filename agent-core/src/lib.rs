//! # agent-core
//!
//! The sans-IO heart of edge-agent: records, the send ring, the wire codec
//! and the session state machine. `no_std`, no `alloc`, no `unsafe`: every
//! byte of storage comes from the caller, every instant of time too, and
//! nothing is lost silently (every record is acked or counted dropped).
//!
//! | module | one idea |
//! |---|---|
//! | [`agent`] | the session: handshake, batching, acks, liveness, reconnect, tasks (start here) |
//! | [`ring`] | the send ring: records in caller memory until acked |
//! | [`record`] | records, data types, the entry encoding |
//! | [`wire`] | the bytes on the wire: [`wire::frame`] (layout, CRC), [`wire::decoder`] (the streaming decoder), [`wire::message`] (the message types), [`wire::codec`] (the one codec, by hand in postcard's format), [`wire::varint`] |
//! | [`stats`] | the host's stats, the library's counters, the heartbeat payload that carries them |
//! | [`backoff`], [`rng`] | reconnect timing with full jitter; the caller-seeded PRNG |
//! | [`plugin`], [`events`] | plugins; events for the caller |
//! | [`driver`] | a blocking loop over `embedded-io` transports |
//! | [`time`] | the caller's clock |
//! | [`text`] | [`Text`], received strings checked as UTF-8 without `core::str::from_utf8` |
//!
//! Paths kept for users: [`frame`], [`decoder`], [`codec`] and [`varint`]
//! are [`wire`]'s modules; [`message`] is [`wire::message`] plus the
//! single-kind helpers `decode_body`, `encode_body` and
//! `encode_task_result` (the codec's `read_body`, `write_frame`,
//! `write_body`); [`body`] is [`wire::codec`] and [`heartbeat`] is
//! [`stats`], under their earlier names.
//!
//! In [`agent`], by file: `timers.rs` every deadline (the heartbeat timer
//! among them; their names, [`Timer`](agent::Timer), in `timer.rs`),
//! `heartbeat.rs` the heartbeat records it pushes (`ring_policy.rs` how the
//! ring keeps and counts them), `batch.rs` the batch builder with its batch
//! and window sizing, `send.rs` which frame goes next, `recv.rs` what each
//! received message does, `config.rs` every bound, `identity.rs` who the
//! agent says it is.
//!
//! The agent, from connect to an acked record (the server's side scripted):
//!
//! ```
//! use agent_core::{Agent, AgentConfig, AgentStorage, Event, Identity, Instant, Record};
//! use agent_core::message::{Accept, Ack, Message};
//!
//! let (mut ring, mut rx, mut events) = ([0u8; 4096], [0u8; 1024], [0u8; 512]);
//! let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
//! let id = Identity { agent_id: "a1", product: "edge", ..Identity::default() };
//! let mut agent = Agent::new(AgentConfig::default(), id, storage).unwrap();
//!
//! agent.handle_timeout(Instant(0));
//! assert_eq!(agent.poll_event(), Some(Event::Connect { endpoint: 0 }));
//! agent.handle_connected(Instant(5)); // the caller opened endpoint 0
//! let mut out = [0u8; 4200];
//! assert!(agent.poll_transmit(Instant(5), &mut out) > 0); // the Hello
//!
//! let mut wire = [0u8; 64];
//! let n = Message::Accept(Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 }).encode(0, &mut wire).unwrap();
//! agent.handle_received(Instant(10), &wire[..n]);
//! assert_eq!(agent.poll_event(), Some(Event::Connected { endpoint: 0 }));
//!
//! agent.push(Instant(10), &Record::new(2001, 1_700_000_000_000, b"hello")).unwrap();
//! let due = agent.poll_timeout().unwrap(); // the flush interval
//! agent.handle_timeout(due);
//! assert!(agent.poll_transmit(due, &mut out) > 0); // heartbeat + record in one batch
//!
//! let n = Message::Ack(Ack { up_to: 1 }).encode(1, &mut wire).unwrap();
//! agent.handle_received(Instant(200), &wire[..n]);
//! assert!(agent.is_drained());
//! ```
//!
//! The ring and the codec on their own:
//!
//! ```
//! use agent_core::{Record, Ring, RingConfig, OverflowPolicy};
//! use agent_core::message::{Batch, Message};
//! use agent_core::decoder::{Feed, FrameDecoder};
//!
//! // The ring lives in caller memory.
//! let mut storage = [0u8; 1024];
//! let mut ring = Ring::new(&mut storage, RingConfig { max_record: 256, policy: OverflowPolicy::RejectNew });
//! ring.push(&Record::new(2001, 1_700_000_000_000, b"disk almost full")).unwrap();
//!
//! // Take a batch and frame it.
//! let plan = ring.plan_batch(512, 64).unwrap();
//! let mut records = [0u8; 512];
//! ring.copy_batch(&plan, &mut records);
//! ring.commit_batch(&plan);
//! let batch = Batch { first_seq: plan.first_seq, base_ts: plan.base_ts, count: plan.count, records: &records[..plan.len] };
//! let mut wire = [0u8; 600];
//! let n = Message::Batch(batch).encode(0, &mut wire).unwrap();
//!
//! // The other side decodes it from any chunking of the stream.
//! let mut rx = [0u8; 600];
//! let mut decoder = FrameDecoder::new(&mut rx);
//! let Feed::Frame { frame, .. } = decoder.feed(&wire[..n]) else { unreachable!() };
//! let Ok(Message::Batch(got)) = Message::decode(&frame) else { unreachable!() };
//! let rec = got.iter().next().unwrap().unwrap();
//! assert_eq!(rec.payload, b"disk almost full");
//!
//! // The server's ack frees the ring.
//! ring.ack(got.first_seq);
//! assert!(ring.is_empty());
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod backoff;
pub mod driver;
mod error_impls;
pub mod events;
#[cfg(feature = "defmt")]
mod defmt_impls;
mod mem;
pub mod plugin;
pub mod record;
pub mod ring;
pub mod rng;
pub mod stats;
pub mod text;
pub mod time;
pub mod wire;

pub use wire::{codec, decoder, frame, varint};

/// The message types ([`wire::message`]) and, under the names they have
/// always had here, the single-kind helpers of [`wire::codec`].
pub mod message {
    pub use crate::wire::codec::{encode_task_result, read_body as decode_body, write_frame as encode_body};
    pub use crate::wire::message::*;
}

/// The earlier path of [`wire::codec`] (the hand-written bodies).
pub use wire::codec as body;
/// The earlier path of [`stats`] (heartbeat payloads).
pub use stats as heartbeat;

pub use agent::{Agent, AgentConfig, AgentStorage, ConfigError, Identity, Link, StateKind};
pub use driver::{Clock, Connector, Driver};
pub use events::{DisconnectReason, Event, TaskTarget, TransportError};
pub use heartbeat::{AgentStats, HostStats};
pub use plugin::{PluginId, PluginStatus};
pub use record::{data_type, Record};
pub use ring::{EntryKind, OverflowPolicy, PushError, Ring, RingConfig, RingCounters};
pub use text::Text;
pub use time::{Duration, Instant};

//! # agent-core
//!
//! The sans-IO heart of edge-agent: records, the send ring, the wire codec,
//! and (in later modules) the session state machine. `no_std`, no `alloc`,
//! no `unsafe`: every byte of storage comes from the caller, every instant
//! of time too.
//!
//! ```
//! use agent_core::{Record, Ring, RingConfig, OverflowPolicy};
//! use agent_core::message::{Batch, Message};
//! use agent_core::decoder::{Feed, FrameDecoder};
//!
//! // The ring lives in caller memory.
//! let mut storage = [0u8; 1024];
//! let mut ring = Ring::new(&mut storage, RingConfig { max_record: 256, policy: OverflowPolicy::DropOldest });
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
pub mod body;
pub mod decoder;
pub mod driver;
pub mod events;
pub mod frame;
pub mod heartbeat;
mod mem;
pub mod message;
pub mod plugin;
pub mod record;
pub mod ring;
pub mod rng;
pub mod time;
pub mod varint;

pub use agent::{Agent, AgentConfig, AgentStorage, ConfigError, Identity, StateKind};
pub use driver::{Clock, Connector, Driver};
pub use events::{DisconnectReason, Event, TaskTarget, TransportError};
pub use heartbeat::{AgentStats, HostStats};
pub use plugin::{PluginId, PluginStatus};
pub use record::{data_type, Record};
pub use ring::{OverflowPolicy, PushError, Ring, RingConfig, RingCounters};
pub use time::{Duration, Instant};

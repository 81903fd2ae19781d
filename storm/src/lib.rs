//! # edge-storm
//!
//! The deterministic reconnect-storm simulation of issue 10: when a
//! collector restarts, every agent comes back at once. This crate replays
//! that on a fake millisecond clock, with the **real** `agent_core::Agent`
//! (default configuration, one jitter seed per agent) against the
//! collector's **real** admission (`edge_collector::admission::Admission`),
//! and compares it with textbook reconnect strategies and with the
//! collector as it was before issue 10.
//!
//! ```
//! use edge_storm::{run, targets, Scenario, ServerKind, Strategy};
//!
//! let sc = Scenario {
//!     agents: 200,
//!     outage_ms: 10_000,
//!     rate: 100,
//!     restarts: 2,
//!     strategy: Strategy::Agent,
//!     server: ServerKind::Paced,
//!     seed: 1,
//! };
//! let report = run(&sc);
//! assert_eq!(report.boot_back, 200, "the whole fleet was up before the restart");
//! let first = &report.restarts[0];
//! assert_eq!(first.back_count, 200);
//! println!("back after {:?} ms, N/R = {} ms", first.back_100_ms, sc.n_over_r_ms());
//! assert!(targets::check(&report).iter().all(|c| c.met()), "{:?}", targets::check(&report));
//! assert_eq!(run(&sc), report, "deterministic");
//! ```
//!
//! # What is real, what is modelled
//!
//! * **Real:** the agents' whole session (`Agent`: backoff, advice,
//!   Busy slots, handshake, heartbeats, batches, pings, healthy periods),
//!   driven in the documented call order; the frames on the wire (encoded
//!   by the agent, decoded by the collector with `FrameDecoder` and
//!   `Message::decode`, and back); the collector's admission decisions.
//! * **Modelled:** the network (one fixed one-way latency per agent,
//!   1..=20 ms; no loss, no bandwidth limit, no listen backlog); the
//!   collector's other work (it acks every Batch, answers every Ping, and
//!   takes no time); a restart (every connection cut at once, connects
//!   refused while down); the comparison strategies ([`model`]: simple
//!   clients that only connect and say Hello).
//!
//! # The timeline
//!
//! Agents boot at random instants in `[0, 10 s]`; the collector goes down
//! at 120 s for the scenario's outage, comes back (`up`), and, with two
//! restarts, goes down again 90 s after that. The run ends when every agent
//! is back after the last restart, or 600 s after its `up`.
//!
//! | module | one idea |
//! |---|---|
//! | [`scenario`] | what a run simulates, and its timeline |
//! | [`sim`] | the event loop |
//! | [`net`] | connections, latencies, what travels, client timers |
//! | [`server`] | the collector: up/down, admission, answers |
//! | [`client`], [`fleet`], [`model`] | the clients: the trait, the real agents, the model strategies |
//! | [`record`], [`report`] | what is recorded as it happens; the numbers of a run |
//! | [`targets`] | the targets of issue 10 |
//! | [`table`], [`csv`] | markdown tables; the series as CSV |
//! | [`queue`], [`rng`] | the timed event queue; SplitMix64 |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod csv;
pub mod fleet;
pub mod model;
pub mod net;
pub mod queue;
pub mod record;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod table;
pub mod targets;

pub use report::{Report, RestartStats};
pub use scenario::{Scenario, ServerKind, Strategy, Timeline};
pub use sim::run;

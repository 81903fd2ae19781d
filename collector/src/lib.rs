//! edge-collector: the server side of edge-agent.
//!
//! Agents (`agent_core`) connect over TCP and speak PROTOCOL.md. The
//! collector keeps one session per agent id, writes every record exactly
//! once to a sink (JSON lines, fsync'd with group commit), acks only what is
//! durable, keeps a registry of agents and plugins in SQLite, and offers an
//! HTTP API for tasks, configs and metrics.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser as _;
//! let cfg = edge_collector::config::Args::parse_from(["edge-collector", "--data-dir", "/var/lib/edge"]).resolve()?;
//! let collector = edge_collector::Collector::start(cfg).await?;
//! println!("agents connect to {}", collector.agent_addr);
//! tokio::signal::ctrl_c().await?;
//! collector.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules, one idea each: [`config`] (flags), [`session`] (the protocol of
//! one connection, sans-IO), [`admission`] (which Hellos are admitted now,
//! which get a slot: the handshake rate, sans-IO), [`conn`] (that protocol on a tokio socket),
//! [`heartbeat`] (heartbeat payloads of every layout revision),
//! [`handshake`] (what precedes a session: frames before the Hello, the
//! Hello's bounds, sans-IO), [`newids`] (how fast unproven new agent ids may
//! appear, sans-IO), [`handshakes`] (the pre-Hello connection limit),
//! [`commit`] (the sink's one writer: group commit), [`ledger`] (resume
//! points and dedup, pure),
//! [`sink`] (the JSON-lines file and stdout), [`recovery`] (what the file
//! sink finds at start: damage set aside, torn tails cut), [`jetstream`] (the
//! NATS JetStream sink, shared by many collectors), [`store`] (which of the
//! two a connection talks to), [`line`](mod@line) (the line format),
//! [`registry`] (SQLite), [`api`] (HTTP), [`auth`] (agent tokens and proven identity),
//! [`metrics`] (counters), [`bounds`] (memory and output bounds as formulas
//! of the flags), [`shared`] (the state every task of a collector shares:
//! live sessions, store, registry, admission), [`server`] (all of it
//! assembled: listeners, background tasks, shutdown).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The sans-IO core, built without the `server` feature too (the fuzz target).
pub mod admission;
pub mod handshake;
pub mod heartbeat;
pub mod ledger;
pub mod newids;
pub mod line;
pub mod session;

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod bounds;
#[cfg(feature = "server")]
pub mod commit;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod conn;
#[cfg(feature = "server")]
pub mod handshakes;
#[cfg(feature = "server")]
pub mod jetstream;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod recovery;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod shared;
#[cfg(feature = "server")]
pub mod sink;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tls;

#[cfg(feature = "server")]
pub use server::{Collector, StartError};
#[cfg(feature = "server")]
pub use shared::Shared;

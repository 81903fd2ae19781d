//! # edge-agent-linux
//!
//! The Linux host layer of edge-agent: the sans-IO [`agent_core::Agent`]
//! with its I/O done for it, on `nix`. Endpoints are `host:port` strings
//! (resolved when used), the socket is non-blocking with a bounded out
//! buffer, one epoll set watches the socket and a wake-up eventfd, time is
//! `CLOCK_MONOTONIC`, heartbeats carry host stats from `/proc`, and the
//! Hello carries the hostname and interface addresses. All buffers are
//! sized at init; nothing is allocated per record or per loop turn (over
//! the optional TLS, rustls allocates for its own TLS records).
//!
//! Two shapes: its own thread ([`Host::start`] / [`Host::stop`]) or the
//! caller's loop ([`Host::fd`], [`Host::next_timeout`], [`Host::process`]).
//!
//! ```no_run
//! use edge_agent_linux::{Host, HostConfig, HostEvent};
//! use agent_core::Duration;
//!
//! let cfg = HostConfig::new("gateway-7", ["collector-a:7070", "collector-b:7070"]);
//! let host = Host::new(cfg, |host: &Host, ev: &HostEvent<'_>| {
//!     if let HostEvent::Task { token, .. } = ev {
//!         let _ = host.task_result(token, 0, "done");
//!     }
//! })?;
//! host.start()?;
//! host.push(2001, b"temperature=21.5")?; // from any thread
//! let report = host.stop(Duration::from_secs(5))?;
//! assert!(report.drained);
//! # Ok::<(), edge_agent_linux::HostError>(())
//! ```
//!
//! | module | one idea |
//! |---|---|
//! | [`host`] | the handle, the two shapes, the clean stop |
//! | `engine` | one turn of the loop: connect, read, timers, write, events |
//! | [`connect`] | resolve `host:port`, non-blocking connect, errno to transport error |
//! | [`outbuf`] | the bounded out buffer (partial writes, EAGAIN) |
//! | [`tls`] | the optional rustls client: CA file, client certificate, failures counted apart |
//! | [`wake`], [`signal`] | the wake-up eventfd; opt-in SIGTERM/SIGINT |
//! | [`clock`] | CLOCK_MONOTONIC, the wall-clock offset, the jitter seed |
//! | [`stats`], [`netinfo`] | host stats from /proc; hostname and addresses |
//! | [`config`], [`event`] | what the host is given; what the handler gets |
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod clock;
pub mod config;
pub mod connect;
mod engine;
pub mod event;
pub mod host;
mod memory;
pub mod netinfo;
pub mod outbuf;
pub mod signal;
pub mod stats;
pub mod tls;
pub mod wake;

pub use agent_core;
pub use config::{HostConfig, HostError};
pub use engine::{LoopStats, StopReport};
pub use event::HostEvent;
pub use host::{Handler, Host, Progress};
pub use tls::{TlsConfig, TlsConfigError, TlsFailure};

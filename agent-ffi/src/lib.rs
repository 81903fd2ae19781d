//! # edge_agent: the C ABI of edge-agent
//!
//! `libedge_agent.a` / `libedge_agent.so` and `include/edge_agent.h`
//! (generated from this crate by cbindgen): the whole sans-IO agent of
//! `agent-core` for C and C++ programs, with no heap. The caller declares
//! every byte of memory (the `ea_agent` storage, the ring, the receive
//! buffer, the event queue, the transmit buffer), owns the transport and
//! the clock, and drives the agent with `ea_agent_handle_*` inputs and
//! `ea_agent_poll_*` outputs, as in `agent_core::agent`.
//!
//! Conventions (those of rustls-ffi): names `ea_<type>_<verb>`, the handle
//! first, every buffer pointer followed by its length, one
//! [`result::ea_result`] for every fallible call with fixed numbers, outputs
//! written only on success, NULL checked everywhere, a panic never crosses
//! the boundary ([`panic`](mod@panic)). Each function's contract is its
//! "Pointers:" paragraph, in C terms (what each pointer must point to, for
//! how long; NULL returns `EA_NULL_PARAMETER`): the header shows it as is.
//!
//! | module | one idea |
//! |---|---|
//! | [`result`] | the result enum and its messages |
//! | [`config`], [`identity`] | the flat config (with lock hooks); the identity as pointer+length pairs |
//! | [`handle`] | the opaque storage and the checked path into it |
//! | [`api`] | the `ea_agent_*` entry points |
//! | [`event`], [`stats`] | events and the stats snapshot as plain C structs |
//! | [`intake`] | the lock-free queue an interrupt handler pushes into |
//! | [`sizing`] | versions and buffer sizes to compute before init |
//! | `host` | `ea_host_*`: the Linux host layer (socket, epoll, clock, /proc), feature `host` |
//! | [`panic`](mod@panic) | the panic boundary (std) and the trap (no_std) |
//!
//! From Rust the functions can be called directly (the tests do):
//!
//! ```
//! use edge_agent::*;
//! use edge_agent::result::ea_result::EA_OK;
//!
//! static ID: &[u8] = b"agent-1";
//! let mut agent = core::mem::MaybeUninit::<ea_agent>::zeroed();
//! let (mut ring, mut rx, mut events) = (vec![0u8; 4096], vec![0u8; 1024], vec![0u8; 512]);
//! let cfg = ea_config_default();
//! let mut id: ea_identity = unsafe { core::mem::zeroed() };
//! (id.agent_id, id.agent_id_len) = (ID.as_ptr(), ID.len());
//! let a = agent.as_mut_ptr();
//! unsafe {
//!     let r = ea_agent_init(a, size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(),
//!                           rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len());
//!     assert_eq!(r, EA_OK);
//!     assert_eq!(ea_agent_push(a, 0, 2001, 0, b"hi".as_ptr(), 2), EA_OK);
//!     assert_eq!(ea_agent_handle_timeout(a, 0), EA_OK);
//!     let mut ev = core::mem::zeroed::<ea_event>();
//!     assert_eq!(ea_agent_poll_event(a, &mut ev), EA_OK);
//!     assert_eq!(ev.kind, event::ea_event_kind::EA_EVENT_CONNECT as u32);
//!     assert_eq!(ea_agent_deinit(a), EA_OK);
//! }
//! ```
#![no_std]
#![warn(missing_docs)]
// C names: `ea_agent`, `ea_result`, `EA_OK`.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
// Every `unsafe extern "C" fn` states its contract in a "Pointers:"
// paragraph written for C readers (cbindgen copies doc comments into the
// header verbatim, where a Rust `# Safety` heading reads oddly);
// tests/header.rs checks each one names every pointer parameter, in place
// of clippy's check for the heading.
#![allow(clippy::missing_safety_doc)]

#[cfg(feature = "std")]
extern crate std;

pub mod api;
mod args;
pub mod config;
pub mod event;
pub mod handle;
#[cfg(all(feature = "host", target_os = "linux"))]
pub mod host;
pub mod identity;
pub mod intake;
pub mod link;
pub mod panic;
pub mod result;
pub mod sizing;
pub mod stats;

pub use agent_core;
pub use api::*;
pub use config::{ea_config, ea_config_default, ea_lock_fn, ea_overflow_policy};
pub use event::{ea_disconnect_reason, ea_event, ea_event_kind, ea_transport_error, EA_PLUGIN_NONE};
pub use handle::{ea_agent, EA_AGENT_STORAGE_ALIGN, EA_AGENT_STORAGE_SIZE, EA_AGENT_STORAGE_WORDS};
pub use identity::ea_identity;
pub use intake::{ea_intake, ea_intake_deinit, ea_intake_init, ea_intake_push, ea_intake_stats, ea_intake_counters, EA_INTAKE_SLOT_OVERHEAD, EA_INTAKE_STORAGE_SIZE, EA_INTAKE_STORAGE_WORDS};
pub use link::{ea_agent_set_link, ea_link};
pub use result::{ea_result, ea_result_message};
pub use sizing::*;
pub use stats::{ea_host_stats, ea_state, ea_stats};

//! The simulation's collectors.
//!
//! * [`peer`]: agent-core's test peer (`agent-core/tests/support/peer.rs`,
//!   included, not copied: the agent unit tests and the driver tests use
//!   the same one), with its optional recovery habits;
//! * [`collector`]: the real collector's sans-IO core behind the same
//!   interface, and [`collector::Backend`], either of the two.

#[path = "../../../agent-core/tests/support/peer.rs"]
pub mod peer;

pub mod collector;

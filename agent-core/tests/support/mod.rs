//! Code shared by the integration tests (`mod support;`).
//!
//! * [`peer`]: the test collector, one for every test that needs a server
//!   (the fleet simulation in `sim/` includes it too, with `#[path]`).
//!
//! `ring_model.rs` is included by its users with `#[path]` (it is shared
//! with the fuzz crate too).

pub mod peer;

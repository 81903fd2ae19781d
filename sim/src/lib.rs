//! The fleet simulation of edge-agent, as a test: `tests/simulation.rs`
//! (run it with `cargo test -p edge-sim --release --test simulation`; its
//! module docs describe the model, the invariants and how to replay a
//! seed).
//!
//! It drives real `agent_core::agent::Agent`s against the real collector's
//! sans-IO code (`edge_collector::{session, ledger, admission, line}`,
//! built without the `server` feature) over a simulated faulty network on
//! one fake clock; `EDGE_SIM_COLLECTOR=peer` runs the same fleet against
//! agent-core's test peer instead. This crate exists so the test can
//! depend on both agent-core and edge-collector; it has no library code.

#![forbid(unsafe_code)]

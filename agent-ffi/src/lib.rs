//! C ABI over agent-core: arrives with the C ABI issue.
#![no_std]
pub use agent_core;

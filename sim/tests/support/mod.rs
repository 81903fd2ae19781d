//! The simulation's collectors.
//!
//! * [`peer`]: the workspace's test peer (`edge_testkit::peer`, the one the
//!   agent unit tests and the driver tests use too), with its optional
//!   recovery habits;
//! * [`collector`]: the real collector's sans-IO core behind the same
//!   interface, and [`collector::Backend`], either of the two.

pub use edge_testkit::peer;

pub mod collector;

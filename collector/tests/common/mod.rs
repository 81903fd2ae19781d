//! Helpers for the end-to-end tests: real agents (agent_core's driver over
//! loopback TCP), a chaos proxy, a raw protocol client, seeds; the collector
//! binary as a child process, a minimal HTTP client and a reader of the sink
//! come from `edge_testkit::collector`.
#![allow(dead_code)]

pub mod agent;
pub mod probe;
pub mod proxy;
pub mod raw;
#[path = "../../../examples/demo/tcp_transport.rs"]
pub mod tcp_transport;

// Each test binary uses some of them.
#[allow(unused_imports)]
pub use edge_testkit::collector::{http, json, sink_lines, sink_view, wait_for, CollectorProc, SinkView, TempDir};

/// This build's collector binary (or `$EDGE_COLLECTOR_BIN`, to show that a
/// test fails against an older build); the process helpers are
/// `edge_testkit::collector`'s, shared with the host layer's tests.
pub fn collector() -> edge_testkit::collector::CollectorBin {
    edge_testkit::collector::CollectorBin::new(env!("CARGO_BIN_EXE_edge-collector"))
}

/// A seed from the clock, printed so a failure can be replayed with
/// `EDGE_E2E_SEED`.
pub fn seed() -> u64 {
    let s = std::env::var("EDGE_E2E_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand_u64);
    eprintln!("EDGE_E2E_SEED={s}");
    s
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*: the tests' deterministic randomness.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}


//! The bench cases as a plain program, for instruction counts under
//! `valgrind --tool=callgrind` (`scripts/callgrind.sh`): wall times on
//! shared machines are noisy, instruction counts are not.
//!
//! `cases <case> <iterations>` sets the case up, then runs it
//! `iterations` times. The script runs every case twice (N and 2N) and
//! divides the difference by N, so setup cancels out. `cases list` prints
//! the case names.

use std::hint::black_box;

use agent_core::decoder::FrameDecoder;
use agent_core::ring::OverflowPolicy;
use edge_agent_benches::*;

const CASES: &[&str] = &[
    "push/agent-core",
    "push/heapless",
    "push/bbqueue+postcard",
    "push_full/0",
    "push_full/1",
    "push_full/8",
    "pipeline64/agent-core",
    "pipeline64/heapless+postcard",
    "pipeline64/bbqueue+postcard",
    "pipeline64/prost",
    "pipeline64/bound",
    "pipeline512/agent-core",
    "pipeline512/heapless+postcard",
    "pipeline512/bbqueue+postcard",
    "pipeline512/prost",
    "pipeline512/bound",
    "decoder/1500",
];

/// Runs `round` `iters` times; rounds of `per` operations each.
fn rounds(iters: u64, mut round: impl FnMut() -> usize) {
    for _ in 0..iters {
        black_box(round());
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    if case == "list" || case.is_empty() {
        for c in CASES {
            println!("{c}");
        }
        return;
    }
    let iters: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let p64 = [0x5au8; 64];
    let p512 = [0x5au8; 512];
    let (n64, n512) = (records_per_batch(64), records_per_batch(512));
    // What one iteration is, for the per-operation figures.
    let (per, unit) = match case.as_str() {
        c if c.starts_with("pipeline64/") => (n64, "record"),
        c if c.starts_with("pipeline512/") => (n512, "record"),
        c if c.starts_with("decoder/") => (batch_stream(64).len(), "byte"),
        _ => (1, "push"),
    };
    eprintln!("cases: per_iteration={per} unit={unit}");
    match case.as_str() {
        // One push per iteration. The peers' queues are emptied every 512
        // pushes (their dequeue cost is counted in, a few instructions).
        "push/agent-core" => {
            // A ring that holds every push: nothing else is counted.
            let mut p = ours::Pipeline::with_capacity(iters as usize * 80 + 1024, OverflowPolicy::RejectNew);
            for _ in 0..iters {
                assert!(p.push(black_box(&p64)));
            }
        }
        "push/heapless" => {
            let mut p = heapless_postcard::Pipeline::<64>::default();
            for i in 0..iters {
                assert!(p.push(black_box(&p64)));
                if i % 512 == 511 {
                    p.clear();
                }
            }
        }
        "push/bbqueue+postcard" => {
            let mut p = bbqueue_postcard::Pipeline::default();
            for i in 0..iters {
                assert!(p.push(black_box(&p64)));
                if i % 512 == 511 {
                    p.clear();
                }
            }
        }
        c if c.starts_with("push_full/") => {
            let batches: usize = c["push_full/".len()..].parse().expect("batches");
            let mut p = ours::Pipeline::new(OverflowPolicy::DropOldest);
            // One record sent and acked first, as in a running agent: the
            // oldest never-sent record is then relative to a recent one.
            p.push(&p64);
            p.drain();
            while p.ring.free_bytes() >= 80 {
                p.push(&p64);
            }
            for _ in 0..batches {
                assert!(p.send(BATCH_BYTES) > 0);
            }
            for _ in 0..iters {
                assert!(p.push(black_box(&p64)));
            }
        }
        "pipeline64/agent-core" => {
            let mut p = ours::Pipeline::new(OverflowPolicy::RejectNew);
            rounds(iters, || p.round(black_box(&p64), n64));
        }
        "pipeline64/heapless+postcard" => {
            let mut p = heapless_postcard::Pipeline::<64>::default();
            rounds(iters, || p.round(black_box(&p64), n64));
        }
        "pipeline64/bbqueue+postcard" => {
            let mut p = bbqueue_postcard::Pipeline::default();
            rounds(iters, || p.round(black_box(&p64), n64));
        }
        "pipeline64/prost" => {
            let mut p = prost_pb::Pipeline::default();
            rounds(iters, || p.round(black_box(&p64), n64));
        }
        "pipeline64/bound" => {
            let mut p = bound::Pipeline::default();
            rounds(iters, || p.round(black_box(&p64), n64));
        }
        "pipeline512/agent-core" => {
            let mut p = ours::Pipeline::new(OverflowPolicy::RejectNew);
            rounds(iters, || p.round(black_box(&p512), n512));
        }
        "pipeline512/heapless+postcard" => {
            let mut p = heapless_postcard::Pipeline::<512>::default();
            rounds(iters, || p.round(black_box(&p512), n512));
        }
        "pipeline512/bbqueue+postcard" => {
            let mut p = bbqueue_postcard::Pipeline::default();
            rounds(iters, || p.round(black_box(&p512), n512));
        }
        "pipeline512/prost" => {
            let mut p = prost_pb::Pipeline::default();
            rounds(iters, || p.round(black_box(&p512), n512));
        }
        "pipeline512/bound" => {
            let mut p = bound::Pipeline::default();
            rounds(iters, || p.round(black_box(&p512), n512));
        }
        "decoder/1500" => {
            let stream = batch_stream(64);
            let chunks = chunk_lengths(0x9e37_79b9, 1500, stream.len());
            let mut storage = vec![0u8; BATCH_BYTES + 1024];
            let mut dec = FrameDecoder::new(&mut storage);
            rounds(iters, || decode_chunked(&mut dec, black_box(&stream), &chunks));
        }
        other => {
            eprintln!("unknown case {other:?}; `cases list` prints them");
            std::process::exit(2);
        }
    }
}

//! Side-by-side benches (issue 7). Every group runs agent-core and its peers
//! in the same process, so ratios can be read from one run:
//!
//! * `pipeline/{64,512}`: one round per iteration (push a batch's worth of
//!   records, frame, CRC, decode, visit, free), throughput in records, for
//!   ours, heapless::spsc + postcard, bbqueue + postcard, prost, and the
//!   memcpy + 2 CRC bound;
//! * `push/64`: one push, for ours, heapless and bbqueue (queues drained
//!   outside the timed part);
//! * `push_full/64`: one push into a full 64 KiB ring under `DropOldest`
//!   with 0, 1 and 8 batches of 4 KiB in flight, and a plain push;
//! * `decoder`: frame decoding throughput with the stream cut in random
//!   chunks (1..=64 and 1..=1500 bytes);
//! * `crc/4096`: each CRC-32C choice on 4 KiB.
//!
//! `scripts/bench-table.py` prints the tables and ratios from
//! `target/criterion`; BENCHMARKS.md has the numbers and how they were made.

use std::hint::black_box;
use std::time::{Duration, Instant};

use agent_core::decoder::FrameDecoder;
use agent_core::ring::OverflowPolicy;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edge_agent_benches::*;

fn pipeline(c: &mut Criterion) {
    for size in [64usize, 512] {
        let payload = vec![0x5au8; size];
        let n = records_per_batch(size);
        let mut g = c.benchmark_group(format!("pipeline/{size}"));
        g.throughput(Throughput::Elements(n as u64));
        let mut ours = ours::Pipeline::new(OverflowPolicy::RejectNew);
        g.bench_function("agent-core", |b| b.iter(|| black_box(ours.round(black_box(&payload), n))));
        if size == 64 {
            let mut hp = heapless_postcard::Pipeline::<64>::default();
            g.bench_function("heapless+postcard", |b| b.iter(|| black_box(hp.round(black_box(&payload), n))));
        } else {
            let mut hp = heapless_postcard::Pipeline::<512>::default();
            g.bench_function("heapless+postcard", |b| b.iter(|| black_box(hp.round(black_box(&payload), n))));
        }
        let mut bb = bbqueue_postcard::Pipeline::default();
        g.bench_function("bbqueue+postcard", |b| b.iter(|| black_box(bb.round(black_box(&payload), n))));
        let mut pb = prost_pb::Pipeline::default();
        g.bench_function("prost", |b| b.iter(|| black_box(pb.round(black_box(&payload), n))));
        let mut bound = bound::Pipeline::default();
        g.bench_function("bound", |b| b.iter(|| black_box(bound.round(black_box(&payload), n))));
        g.finish();
    }
}

/// Times `iters` calls of `push`, calling `drain` (untimed) every `every`.
fn timed_pushes(iters: u64, every: u64, mut push: impl FnMut(), mut drain: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(every);
        let t = Instant::now();
        for _ in 0..k {
            push();
        }
        total += t.elapsed();
        drain();
        left -= k;
    }
    total
}

fn push(c: &mut Criterion) {
    let payload = [0x5au8; 64];
    let mut g = c.benchmark_group("push/64");
    g.throughput(Throughput::Elements(1));
    // RefCells: the push and the drain closure share each pipeline.
    let ours = std::cell::RefCell::new(ours::Pipeline::new(OverflowPolicy::RejectNew));
    g.bench_function("agent-core", |b| {
        b.iter_custom(|iters| {
            timed_pushes(iters, 512, || assert!(ours.borrow_mut().push(black_box(&payload))), || ours.borrow_mut().drain())
        })
    });
    let hp = std::cell::RefCell::new(heapless_postcard::Pipeline::<64>::default());
    g.bench_function("heapless", |b| {
        b.iter_custom(|iters| {
            timed_pushes(iters, 200, || assert!(hp.borrow_mut().push(black_box(&payload))), || hp.borrow_mut().clear())
        })
    });
    let bb = std::cell::RefCell::new(bbqueue_postcard::Pipeline::default());
    g.bench_function("bbqueue+postcard", |b| {
        b.iter_custom(|iters| {
            timed_pushes(iters, 512, || assert!(bb.borrow_mut().push(black_box(&payload))), || bb.borrow_mut().clear())
        })
    });
    g.finish();
}

/// A full 64 KiB `DropOldest` ring with `batches` batches of 4 KiB in
/// flight: every push evicts.
pub fn full_ring(batches: usize) -> ours::Pipeline {
    let mut p = ours::Pipeline::new(OverflowPolicy::DropOldest);
    // One record sent and acked first, as in a running agent: the oldest
    // never-sent record is then relative to a recent one.
    p.push(&[0; 64]);
    p.drain();
    let payload = [0x5au8; 64];
    while p.ring.free_bytes() >= 80 {
        p.push(&payload);
    }
    for _ in 0..batches {
        assert!(p.send(BATCH_BYTES) > 0);
    }
    p
}

fn push_full(c: &mut Criterion) {
    let payload = [0x5au8; 64];
    let mut g = c.benchmark_group("push_full/64");
    g.throughput(Throughput::Elements(1));
    for batches in [0usize, 1, 8] {
        let mut p = full_ring(batches);
        g.bench_with_input(BenchmarkId::new("drop-oldest", batches), &batches, |b, _| {
            b.iter(|| assert!(p.push(black_box(&payload))))
        });
    }
    g.finish();
}

fn decoder(c: &mut Criterion) {
    let stream = batch_stream(64);
    let mut g = c.benchmark_group("decoder");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    for max in [64usize, 1500] {
        let chunks = chunk_lengths(0x9e37_79b9, max, stream.len());
        let mut storage = vec![0u8; BATCH_BYTES + 1024];
        let mut dec = FrameDecoder::new(&mut storage);
        g.bench_with_input(BenchmarkId::new("chunks-up-to", max), &max, |b, _| {
            b.iter(|| assert_eq!(decode_chunked(&mut dec, black_box(&stream), &chunks), 64))
        });
    }
    g.finish();
}

fn crc(c: &mut Criterion) {
    use crc::{Crc, NoTable, Table, CRC_32_ISCSI};
    const NOTABLE: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);
    const TABLE1: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);
    const TABLE16: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let mut g = c.benchmark_group("crc/4096");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("crc-notable", |b| b.iter(|| NOTABLE.checksum(black_box(&data))));
    g.bench_function("crc-table1", |b| b.iter(|| TABLE1.checksum(black_box(&data))));
    g.bench_function("crc-table16", |b| b.iter(|| TABLE16.checksum(black_box(&data))));
    g.bench_function("crc-hw", |b| b.iter(|| crc32c::crc32c(black_box(&data))));
    g.bench_function("agent-core", |b| b.iter(|| agent_core::frame::crc32c(black_box(&data))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = pipeline, push, push_full, decoder, crc
}
criterion_main!(benches);

//! The benched pipelines do the whole job: every record pushed in a round
//! arrives, with its payload, through a CRC-checked frame; the decoder
//! bench decodes every frame whatever the chunking. Run by CI, so a bench
//! can never measure a pipeline that silently does less.

use agent_core::decoder::FrameDecoder;
use agent_core::ring::OverflowPolicy;
use edge_agent_benches::*;

#[test]
fn every_pipeline_delivers_every_payload_byte() {
    for size in [1usize, 64, 512] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let n = records_per_batch(size);
        let want = n * size;
        let mut ours = ours::Pipeline::new(OverflowPolicy::RejectNew);
        let mut hp = heapless_postcard::Pipeline::<512>::default();
        let mut bb = bbqueue_postcard::Pipeline::default();
        let mut pb = prost_pb::Pipeline::default();
        let mut bound = bound::Pipeline::default();
        // Many rounds, so the rings and queues wrap.
        for round in 0..100 {
            assert_eq!(ours.round(&payload, n), want, "agent-core, {size} B, round {round}");
            assert_eq!(hp.round(&payload, n), want, "heapless, {size} B, round {round}");
            assert_eq!(bb.round(&payload, n), want, "bbqueue, {size} B, round {round}");
            assert_eq!(pb.round(&payload, n), want, "prost, {size} B, round {round}");
            assert_eq!(bound.round(&payload, n), want, "bound, {size} B, round {round}");
        }
        assert_eq!(ours.ring.counters().acked, 100 * n as u64);
        assert!(ours.ring.is_empty());
    }
}

#[test]
fn batches_fit_the_transmit_buffer() {
    for size in [64usize, 512] {
        let mut ours = ours::Pipeline::new(OverflowPolicy::RejectNew);
        for _ in 0..records_per_batch(size) {
            assert!(ours.push(&vec![0; size]));
        }
        let len = ours.send(usize::MAX);
        assert!(len > FRAME_OVERHEAD + BATCH_BYTES / 2 && len <= BATCH_BYTES + 64, "{size} B: frame of {len}");
    }
}

#[test]
fn decoder_bench_decodes_every_frame_in_any_chunking() {
    let stream = batch_stream(64);
    for max in [1usize, 64, 1500, 100_000] {
        let chunks = chunk_lengths(0x9e37_79b9, max, stream.len());
        let mut storage = vec![0u8; BATCH_BYTES + 1024];
        let mut dec = FrameDecoder::new(&mut storage);
        assert_eq!(decode_chunked(&mut dec, &stream, &chunks), 64, "chunks up to {max}");
        assert_eq!(dec.stats().skipped_bytes, 0);
    }
}

#[test]
fn push_under_drop_oldest_keeps_what_is_in_flight() {
    for batches in [0usize, 1, 8] {
        let mut p = ours::Pipeline::new(OverflowPolicy::DropOldest);
        while p.ring.free_bytes() >= 80 {
            assert!(p.push(&[1; 64]));
        }
        for _ in 0..batches {
            assert!(p.send(BATCH_BYTES) > 0);
        }
        let inflight = p.ring.inflight_records();
        for _ in 0..5000 {
            assert!(p.push(&[2; 64]));
        }
        assert_eq!(p.ring.inflight_records(), inflight);
        let c = p.ring.counters();
        assert_eq!(c.dropped_full, 0);
        assert_eq!(c.pushed, c.acked + c.dropped_evicted + p.ring.len());
        // Evictions keep pace with pushes (a run may evict ahead).
        assert!(c.dropped_evicted > 4000, "{batches} batches: {c:?}");
    }
}

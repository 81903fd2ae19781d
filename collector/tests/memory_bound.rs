//! The collector's memory bound under the worst inputs of issue 15's
//! finding 3 (Build 3): many connections with the longest ids and
//! hostnames (all control characters, which JSON escapes 6x) sending
//! 64 KiB batches of empty records (refused whole above
//! `--max-batch-records`) and then the most expensive batches accepted
//! (the most records, each a heartbeat decoded into a long line). The
//! process's RSS, read from /proc, must stay within the bound of
//! `edge_collector::bounds` (collector/README.md, "Memory bounds") above
//! the same process at rest.

mod common;

use agent_core::heartbeat::AgentHeartbeat;
use agent_core::message::{Batch, Hello, Message};
use agent_core::record::EntryHeader;
use clap::Parser as _;
use common::raw::{Got, Raw};
use common::{collector, http, TempDir};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "memory-test-token";
const CONNECTIONS: usize = 64;
const BATCHES: u64 = 4;
const ID_LEN: usize = 128;
const HOST_LEN: usize = 255;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

fn id_of(i: usize) -> String {
    let mut id = format!("m{i}");
    id.extend(std::iter::repeat_n('\u{1}', ID_LEN - id.len()));
    id
}

fn hello_of<'a>(id: &'a str, host: &'a str, first: u64) -> Hello<'a> {
    Hello {
        agent_id: id.into(), hostname: host.into(), product: "mem".into(), version: "0".into(), intranet_ipv4: &[], intranet_ipv6: &[], extranet_ipv4: &[],
        extranet_ipv6: &[], auth_token: b"", first_unacked_seq: first, next_seq: first, max_frame: 65536, min_frame: 1100,
    }
}

/// Entries of `n` records of type `t` with `payload` each.
fn entries(t: u32, payload: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (h, hl) = EntryHeader::new(t, 0, payload.len()).encode();
        out.extend_from_slice(&h[..hl]);
        out.extend_from_slice(payload);
    }
    out
}

#[test]
fn rss_stays_within_the_documented_bound_under_the_worst_inputs() {
    let tmp = TempDir::new("memory");
    let args = [
        "--max-connections", &CONNECTIONS.to_string(), "--max-batch-records", "256", "--max-inflight-bytes", "1048576",
        "--max-frame", "65536", "--admission-rate", "0", "--api-token", TOKEN, "--api-listen", "127.0.0.1:0",
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cfg = edge_collector::config::Args::try_parse_from(std::iter::once("edge-collector").chain(args.iter().copied())).unwrap().resolve().unwrap();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = edge_collector::bounds::connections_max(&cfg, ID_LEN, HOST_LEN, workers) as u64;
    let c = collector().start(tmp.path(), &args);
    let pid = c.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let rest = rss_bytes(pid);

    let peak = Arc::new(AtomicU64::new(rest));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let host: String = "\u{1}".repeat(HOST_LEN);
    let addr = c.agents;
    let mut hb = [0u8; 64];
    let hb_len = AgentHeartbeat::default().encode(&mut hb).unwrap().len();
    let heartbeats = entries(agent_core::data_type::AGENT_HEARTBEAT, &hb[..hb_len], 256);
    // As many empty records as a 64 KiB frame holds.
    let empty_count = (65536 - 64) / entries(1, b"", 1).len();
    let empties = entries(1, b"", empty_count);
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (host, heartbeats, empties) = (host.clone(), heartbeats.clone(), empties.clone());
            std::thread::spawn(move || {
                let id = id_of(i);
                // Finding 3's input: refused whole, before any line is made.
                // (Busy while the connections before are still closing: wait as agents do.)
                let (mut r, _, _) = Raw::connect_admitted(addr, &hello_of(&id, &host, 0), Duration::from_secs(30), 100);
                r.send(&Message::Batch(Batch { first_seq: 0, base_ts: 0, count: empty_count as u32, records: &empties }));
                let g = r.recv_skipping(Duration::from_secs(30));
                assert!(matches!(&g, Got::Close { code: 1, reason } if reason.contains("at most 256")), "{g:?}");
                // The most expensive batches accepted, pipelined.
                let (mut r, accept, _) = Raw::connect_admitted(addr, &hello_of(&id, &host, 0), Duration::from_secs(30), 100);
                assert!(matches!(accept, Got::Accept { next_seq: 0, .. }));
                let frames: Vec<Vec<u8>> = (0..BATCHES)
                    .map(|b| r.frame(&Message::Batch(Batch { first_seq: b * 256, base_ts: 0, count: 256, records: &heartbeats })))
                    .collect();
                let mut w = r.s.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    for f in frames {
                        std::io::Write::write_all(&mut w, &f).unwrap();
                    }
                });
                loop {
                    match r.recv_skipping(Duration::from_secs(120)) {
                        Got::Ack(up_to) if up_to == BATCHES * 256 - 1 => break,
                        Got::Ack(_) => {}
                        g => panic!("{i}: {g:?}"),
                    }
                }
                writer.join().unwrap();
            })
        })
        .collect();
    for t in clients {
        t.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let (_, metrics) = http(c.api.unwrap(), "GET", "/metrics", Some(TOKEN), None);
    let stored: u64 = metrics.lines().find_map(|l| l.strip_prefix("edge_collector_records_stored_total ")).unwrap().trim().parse().unwrap();
    assert_eq!(stored, CONNECTIONS as u64 * BATCHES * 256, "every accepted record stored");
    let sink_bytes = std::fs::metadata(tmp.path().join("records.jsonl")).unwrap().len();
    eprintln!(
        "memory_bound: RSS at rest {} MiB, peak {} MiB (+{} MiB), bound +{} MiB; {} connections wrote {} MiB of lines",
        rest >> 20,
        peak >> 20,
        (peak - rest) >> 20,
        bound >> 20,
        CONNECTIONS,
        sink_bytes >> 20
    );
    assert!(peak <= rest + bound, "peak RSS {peak} above rest {rest} + bound {bound}");
}

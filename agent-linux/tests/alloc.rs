//! Zero allocations per record and per loop turn after start: a counting
//! global allocator, a running host against the real collector, pushes
//! from another thread and idle turns counted.

mod common;

use agent_core::Duration;
use common::*;
use edge_agent_linux::{Host, HostConfig, HostEvent};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn no_allocation_per_record_or_per_turn_after_start() {
    let dir = TempDir::new("alloc");
    let col = CollectorProc::start(dir.path(), "127.0.0.1:0");
    let mut cfg = HostConfig::new("host-alloc", [col.agents.to_string()]);
    cfg.agent.heartbeat_interval = Duration::from_secs(1);
    cfg.ring_bytes = 8 << 20;
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    wait_for(std::time::Duration::from_secs(20), || (host.stats().acked > 0).then_some(())).expect("connected");

    let pusher = host.clone();
    static GO: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    let t = std::thread::spawn(move || {
        while !GO.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let payload = [7u8; 100];
        for i in 0..20_000u32 {
            pusher.push_at(2001, u64::from(i), &payload).unwrap();
            if i % 1000 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        DONE.store(true, Ordering::SeqCst);
    });
    let before = host.loop_stats();
    COUNTING.store(true, Ordering::SeqCst);
    GO.store(true, Ordering::SeqCst);
    while !DONE.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Let the loop send, receive acks and fire heartbeats (with /proc
    // readings) for a while.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let after = host.loop_stats();
    t.join().unwrap();
    let turns = after.wakeups - before.wakeups;
    eprintln!("20000 records, {turns} turns, {} stats readings: {allocs} allocations", after.stats_readings - before.stats_readings);
    assert!(turns > 10 && after.stats_readings > before.stats_readings, "the loop ran, heartbeats read /proc");
    assert_eq!(allocs, 0, "allocations after start");
    let r = host.stop(Duration::from_secs(20)).unwrap();
    assert!(r.drained);
}

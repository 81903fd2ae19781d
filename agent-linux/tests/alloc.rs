//! Zero allocations per record and per loop turn after start: a counting
//! global allocator, a running host against the real collector, pushes
//! from another thread and idle turns counted. Over TLS, rustls' own
//! allocations per frame, bounded.


use agent_core::Duration;
use edge_testkit::collector::*;
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

/// The tests of this file share the counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one counted run saw.
struct Counted {
    allocs: u64,
    turns: u64,
    /// Frames sent plus frames received while counting.
    frames: u64,
}

/// Starts `cfg`'s host, waits for the first ack, then counts allocations
/// while 20 000 records are pushed from another thread and the loop runs.
fn counted_run(cfg: HostConfig) -> Counted {
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    wait_for(std::time::Duration::from_secs(20), || (host.stats().acked > 0).then_some(())).expect("connected");

    let pusher = host.clone();
    let go = std::sync::Arc::new(AtomicBool::new(false));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let (go2, done2) = (go.clone(), done.clone());
    let t = std::thread::spawn(move || {
        while !go2.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let payload = [7u8; 100];
        for i in 0..20_000u32 {
            pusher.push_at(2001, u64::from(i), &payload).unwrap();
            if i % 1000 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        done2.store(true, Ordering::SeqCst);
    });
    let before = host.loop_stats();
    let st0 = host.stats();
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    go.store(true, Ordering::SeqCst);
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Let the loop send, receive acks and fire heartbeats (with /proc
    // readings) for a while.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let after = host.loop_stats();
    let st1 = host.stats();
    t.join().unwrap();
    let turns = after.wakeups - before.wakeups;
    let frames = (st1.frames_sent - st0.frames_sent) + (st1.frames_received - st0.frames_received);
    eprintln!("20000 records, {turns} turns, {frames} frames, {} stats readings: {allocs} allocations", after.stats_readings - before.stats_readings);
    assert!(turns > 10 && after.stats_readings > before.stats_readings, "the loop ran, heartbeats read /proc");
    let r = host.stop(Duration::from_secs(20)).unwrap();
    assert!(r.drained);
    Counted { allocs, turns, frames }
}

#[test]
fn no_allocation_per_record_or_per_turn_after_start() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("alloc");
    let col = host::start(dir.path(), "127.0.0.1:0");
    let mut cfg = HostConfig::new("host-alloc", [col.agents.to_string()]);
    cfg.agent.heartbeat_interval = Duration::from_secs(1);
    cfg.ring_bytes = 8 << 20;
    let c = counted_run(cfg);
    assert_eq!(c.allocs, 0, "allocations after start ({} turns)", c.turns);
}

/// Over TLS the host layer itself still allocates nothing, but rustls
/// does: it keeps each outgoing TLS record and each decrypted incoming one
/// in a `Vec` of its own. This pins that bound (a few per frame, none per
/// record: records travel many to a frame) so a change shows.
#[test]
fn over_tls_rustls_allocates_per_frame_not_per_record() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pki = TempDir::new("alloc-pki");
    if !dev_pki("over_tls_rustls_allocates_per_frame_not_per_record", pki.path(), &["host-alloc-tls"]) {
        return;
    }
    let p = pki.path();
    let dir = TempDir::new("alloc-tls");
    let col = host::start_with(dir.path(), "127.0.0.1:0", &tls_args(p));
    let mut cfg = HostConfig::new("host-alloc-tls", [col.agents.to_string()]);
    cfg.agent.heartbeat_interval = Duration::from_secs(1);
    cfg.ring_bytes = 8 << 20;
    cfg.tls = Some(edge_agent_linux::TlsConfig {
        ca_file: p.join("ca.pem"),
        cert_file: Some(p.join("host-alloc-tls.pem")),
        key_file: Some(p.join("host-alloc-tls.key")),
        server_name: None,
    });
    let c = counted_run(cfg);
    eprintln!("over TLS: {:.3} allocations per record, {:.2} per frame", c.allocs as f64 / 20_000.0, c.allocs as f64 / c.frames.max(1) as f64);
    assert!(c.frames > 0);
    assert!(c.allocs <= 4 * c.frames, "{} allocations for {} frames", c.allocs, c.frames);
}

//! agent-core never allocates: a counting global allocator sees no
//! allocation from `Agent::new` on, through every path a session takes
//! (connect, handshake, pushes, batches, acks, overflow under DropOldest,
//! pings, tasks, configs, heartbeats, garbage input, disconnects,
//! reconnects, close).
//!
//! Only allocations made on this test's thread while `COUNTING` is set are
//! counted, so the test harness's own threads do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use agent_core::message::{Accept, Ack, Config, Message, Ping, Task};
use agent_core::ring::{OverflowPolicy, RingConfig};
use agent_core::{Agent, AgentConfig, AgentStorage, Identity, Instant, Record, TransportError};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ID: Identity<'static> = Identity {
    agent_id: "agent-1",
    hostname: "host",
    product: "edge",
    version: "0.1",
    intranet_ipv4: &[10, 0, 0, 1],
    intranet_ipv6: &[],
    extranet_ipv4: &[],
    extranet_ipv6: &[],
    auth_token: b"secret",
};

fn deliver(a: &mut Agent<'_>, now: u64, msg: Message<'_>) {
    let mut buf = [0u8; 512];
    let n = msg.encode(0, &mut buf).expect("test frame fits");
    a.handle_received(Instant(now), &buf[..n]);
}

/// Writes out everything the agent has to send; returns the frames.
fn transmit(a: &mut Agent<'_>, now: u64) -> usize {
    let mut out = [0u8; 4096];
    let mut frames = 0;
    while a.poll_transmit(Instant(now), &mut out) > 0 {
        frames += 1;
    }
    frames
}

fn drain_events(a: &mut Agent<'_>) -> usize {
    let mut n = 0;
    while let Some(e) = a.poll_event() {
        std::hint::black_box(&e);
        n += 1;
    }
    n
}

/// The policy the overflow rounds run under: `DropOldest` where it is built
/// (the default), else `RejectNew` (the `drop-oldest` feature off).
#[cfg(feature = "drop-oldest")]
const POLICY: OverflowPolicy = OverflowPolicy::DropOldest;
#[cfg(not(feature = "drop-oldest"))]
const POLICY: OverflowPolicy = OverflowPolicy::RejectNew;

#[test]
fn no_allocation_after_init() {
    let (mut ring, mut rx, mut events) = (vec![0u8; 8192], vec![0u8; 4096], vec![0u8; 1024]);
    let cfg = AgentConfig {
        ring: RingConfig { max_record: 512, policy: POLICY },
        rng_seed: 7,
        ..AgentConfig::default()
    };
    COUNTING.with(|c| c.set(true));
    let mut a = Agent::new(cfg, ID, AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events }).unwrap();
    let plugin = a.register_plugin("probe", "1.0").unwrap();
    a.set_plugin_status(plugin, 42, agent_core::PluginStatus::Running).unwrap();
    let payload = [0x5au8; 64];
    let (mut frames, mut evs) = (0, 0);
    let mut t = 0u64;
    for session in 0..3u64 {
        // Connect and handshake.
        t += 10_000;
        a.handle_timeout(Instant(t));
        evs += drain_events(&mut a);
        a.handle_connected(Instant(t));
        frames += transmit(&mut a, t);
        let next_seq = a.ring().first_unacked_seq();
        deliver(&mut a, t, Message::Accept(Accept { next_seq, max_frame: 4096, retry_window_ms: 0 }));
        evs += drain_events(&mut a);
        for round in 0..50u64 {
            t += 100;
            // More than the ring holds, so DropOldest evicts (RejectNew refuses).
            for i in 0..40u64 {
                let _ = a.push(Instant(t), &Record::new(2000 + (i % 3) as u32, t, &payload[..(i as usize % 64)]));
            }
            a.flush_now(Instant(t));
            frames += transmit(&mut a, t);
            if round % 3 != 2 {
                let up_to = a.ring().next_seq().saturating_sub(1);
                deliver(&mut a, t, Message::Ack(Ack { up_to }));
            }
            if round % 7 == 0 {
                deliver(&mut a, t, Message::Ping(Ping { nonce: round }));
                let task = Task { object_name: "probe".into(), data_type: 7, payload: b"go", token: "tok-a".into() };
                deliver(&mut a, t, Message::Task(task));
                let task = Task { object_name: "nobody".into(), data_type: 7, payload: b"", token: "tok-b".into() };
                deliver(&mut a, t, Message::Task(task));
                deliver(&mut a, t, Message::Config(Config { name: "cfg".into(), version: "3".into(), payload: b"x=1" }));
                let _ = a.task_result(Instant(t), "tok-a", 0, "done");
                // Garbage: the decoder resynchronizes.
                a.handle_received(Instant(t), &[0xEA, 0x00, 0xEA, 0x9E, 1, 4, 0, 0xff, 0xff, 0, 0, 1, 2, 3]);
                a.heartbeat_now(Instant(t));
            }
            a.handle_timeout(Instant(t));
            frames += transmit(&mut a, t);
            evs += drain_events(&mut a);
            std::hint::black_box(a.poll_timeout());
            std::hint::black_box(a.stats());
        }
        // Let the timers run (heartbeats, pings, ack timeout), then drop.
        for _ in 0..20 {
            t += 5_000;
            a.handle_timeout(Instant(t));
            frames += transmit(&mut a, t);
            evs += drain_events(&mut a);
        }
        if session == 2 {
            a.close(Instant(t));
            frames += transmit(&mut a, t);
        }
        a.handle_disconnected(Instant(t), TransportError::Reset);
        evs += drain_events(&mut a);
    }
    COUNTING.with(|c| c.set(false));
    let c = a.ring().counters();
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "allocations after init");
    // The paths above did run.
    let overflowed = if POLICY == OverflowPolicy::RejectNew { c.dropped_full } else { c.dropped_evicted };
    assert!(c.acked > 1000 && overflowed > 0, "{c:?}");
    assert!(frames > 100 && evs > 10, "frames {frames}, events {evs}");
}

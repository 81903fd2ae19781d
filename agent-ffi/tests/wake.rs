//! Wake-up semantics for commands from other threads: a push can move the
//! deadline the loop sleeps on earlier (from the idle Ping or a heartbeat
//! far away to the flush `flush_interval_ms` from now, when it pushes
//! while nothing was pending), and `ea_agent_wake_needed` says when, once
//! per move.

use edge_agent::agent_core::message::{Accept, Ack, Message};
use edge_agent::event::ea_event_kind::*;
use edge_agent::result::ea_result::*;
use edge_agent::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const APP_TYPE: u32 = 2001;

static LOCKED: AtomicBool = AtomicBool::new(false);
unsafe extern "C" fn lock(_: *mut core::ffi::c_void) {
    while LOCKED.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
}
unsafe extern "C" fn unlock(_: *mut core::ffi::c_void) {
    LOCKED.store(false, Ordering::Release);
}

/// An agent in leaked memory (shared by threads), with lock hooks.
struct Shared(*mut ea_agent);
// SAFETY: every call on the agent takes its lock (the hooks).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

fn agent() -> Shared {
    let a = Box::leak(Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] }));
    let ring = Box::leak(vec![0u8; 1 << 16].into_boxed_slice());
    let rx = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let events = Box::leak(vec![0u8; 2048].into_boxed_slice());
    let mut cfg = ea_config_default();
    cfg.lock = Some(lock);
    cfg.unlock = Some(unlock);
    // SAFETY: all-zero is a valid identity (empty strings).
    let id: ea_identity = unsafe { core::mem::zeroed() };
    // SAFETY: every buffer is leaked, so it outlives the agent.
    let r = unsafe {
        ea_agent_init(a, size_of::<ea_agent>(), &cfg, &id, ring.as_mut_ptr(), ring.len(), rx.as_mut_ptr(), rx.len(), events.as_mut_ptr(), events.len())
    };
    assert_eq!(r, EA_OK);
    Shared(a)
}

fn send_all(a: *mut ea_agent, now: u64) -> Vec<Vec<u8>> {
    let mut out = vec![0u8; 1 << 14];
    let mut frames = Vec::new();
    loop {
        let mut n = 0;
        // SAFETY: a live agent; `out` and `n` writable.
        assert_eq!(unsafe { ea_agent_poll_transmit(a, now, out.as_mut_ptr(), out.len(), &mut n) }, EA_OK);
        if n == 0 {
            return frames;
        }
        frames.push(out[..n].to_vec());
    }
}

fn deliver(a: *mut ea_agent, now: u64, m: Message<'_>) {
    let mut b = [0u8; 256];
    let n = m.encode(0, &mut b).unwrap();
    // SAFETY: a live agent; `b` readable.
    assert_eq!(unsafe { ea_agent_handle_received(a, now, b.as_ptr(), n) }, EA_OK);
}

fn drain_events(a: *mut ea_agent) -> Vec<u32> {
    let mut kinds = Vec::new();
    loop {
        // SAFETY: all-zero is a valid ea_event; a live agent.
        let mut ev: ea_event = unsafe { core::mem::zeroed() };
        assert_eq!(unsafe { ea_agent_poll_event(a, &mut ev) }, EA_OK);
        if ev.kind == EA_EVENT_NONE as u32 {
            return kinds;
        }
        kinds.push(ev.kind);
    }
}

/// Connected at `t`, the first heartbeat sent and acked: nothing pending.
fn connected(a: *mut ea_agent, t: u64) {
    // SAFETY: a live agent.
    unsafe {
        assert_eq!(ea_agent_handle_timeout(a, t), EA_OK);
        assert!(drain_events(a).contains(&(EA_EVENT_CONNECT as u32)));
        assert_eq!(ea_agent_handle_connected(a, t), EA_OK);
    }
    assert_eq!(send_all(a, t).len(), 1, "the Hello");
    deliver(a, t, Message::Accept(Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 }));
    assert!(drain_events(a).contains(&(EA_EVENT_CONNECTED as u32)));
    // SAFETY: a live agent.
    unsafe { assert_eq!(ea_agent_flush_now(a, t), EA_OK) };
    assert_eq!(send_all(a, t).len(), 1, "the first heartbeat");
    deliver(a, t, Message::Ack(Ack { up_to: 0 }));
}

fn wake_needed(a: *mut ea_agent) -> bool {
    let mut w = false;
    // SAFETY: a live agent; `w` writable.
    assert_eq!(unsafe { ea_agent_wake_needed(a, &mut w) }, EA_OK);
    w
}

fn delay(a: *mut ea_agent, now: u64) -> u32 {
    let mut d = 0;
    // SAFETY: a live agent; `d` writable.
    assert_eq!(unsafe { ea_agent_timeout_delay(a, now, &mut d) }, EA_OK);
    d
}

fn push(a: *mut ea_agent, now: u64, len: usize) {
    let p = vec![7u8; len];
    // SAFETY: a live agent; `p` readable.
    assert_eq!(unsafe { ea_agent_push(a, now, APP_TYPE, now, p.as_ptr(), p.len()) }, EA_OK);
}

#[test]
fn a_push_that_moves_the_deadline_earlier_asks_for_one_wake_up() {
    let a = agent().0;
    connected(a, 0);
    // The loop reads its deadline: the idle Ping, 15 s away.
    assert_eq!(delay(a, 10), 15_000 - 10);
    assert!(!wake_needed(a), "nothing changed");
    // SAFETY: a live agent; a NULL output is refused, not written.
    assert_eq!(unsafe { ea_agent_wake_needed(a, std::ptr::null_mut()) }, EA_NULL_PARAMETER);
    // Another thread pushes: the flush, 100 ms away, is earlier.
    push(a, 20, 10);
    assert!(wake_needed(a));
    assert!(!wake_needed(a), "reported once");
    // A second push before the loop ran: the deadline is the same.
    push(a, 30, 10);
    assert!(!wake_needed(a));
    // The loop reads the new deadline (the flush at 120) and sleeps.
    assert_eq!(delay(a, 40), 80);
    push(a, 50, 10);
    assert!(!wake_needed(a), "the flush is no earlier");
    // Full batches wait for the same flush (no later than
    // `flush_interval_ms` after the first pending push): no wake-up.
    for _ in 0..20 {
        push(a, 60, 1000);
    }
    assert!(!wake_needed(a));
    assert_eq!(delay(a, 60), 60);
    // Closed: no deadline at all, nothing to wake for.
    // SAFETY: a live agent.
    unsafe { assert_eq!(ea_agent_close(a, 70), EA_OK) };
    let _ = drain_events(a);
    assert_eq!(delay(a, 70), EA_NEVER_DELAY);
    push(a, 80, 10);
    assert!(!wake_needed(a));
}

#[test]
fn a_loop_asleep_on_a_far_deadline_is_woken_by_a_push_from_another_thread() {
    let shared = std::sync::Arc::new(agent());
    let a = shared.0;
    connected(a, 0);
    let (wake_tx, wake_rx) = mpsc::channel::<()>();
    // The loop reads its deadline (15 s away) before the pusher starts.
    let first = delay(a, 0);
    assert_eq!(first, 15_000);
    let pusher = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let a = shared.0;
            push(a, 0, 10);
            if wake_needed(a) {
                wake_tx.send(()).unwrap();
            }
        })
    };
    // The loop sleeps on its deadline or a wake-up, on a simulated clock
    // (the wait itself is real: 15 s, far more than the pusher needs).
    let woken = wake_rx.recv_timeout(Duration::from_millis(u64::from(first))).is_ok();
    pusher.join().unwrap();
    assert!(woken, "the push woke the loop before its 15 s deadline");
    // Woken, the loop reads the new deadline: the push's flush.
    assert_eq!(delay(a, 0), 100);
    // SAFETY: a live agent.
    unsafe { assert_eq!(ea_agent_handle_timeout(a, 100), EA_OK) };
    assert_eq!(send_all(a, 100).len(), 1, "the pushed record goes at its flush deadline");
}

//! Every entry point against bad input: NULL handles and outputs, zeroed
//! (never initialized) and misaligned storage, storage too small, NULL
//! buffers with non-zero lengths, lengths past a documented bound, out of
//! range enum values, invalid UTF-8. Each returns its documented result, and
//! outputs are untouched on failure. Also pins the result numbers.

use edge_agent::result::ea_result::{self, *};
use edge_agent::*;
use std::ptr::{null, null_mut};

/// Caller memory for one agent, kept alive by the test.
struct Mem {
    agent: Box<ea_agent>,
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
}

fn mem() -> Mem {
    Mem {
        agent: Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] }),
        ring: vec![0; 8192],
        rx: vec![0; 2048],
        events: vec![0; 512],
    }
}

static AGENT_ID: &[u8] = b"abi-test";

fn identity() -> ea_identity {
    // SAFETY: all-zero is a valid ea_identity (NULL pointers, zero lengths).
    let mut id: ea_identity = unsafe { std::mem::zeroed() };
    (id.agent_id, id.agent_id_len) = (AGENT_ID.as_ptr(), AGENT_ID.len());
    id
}

unsafe fn init_with(m: &mut Mem, cfg: &ea_config, id: &ea_identity) -> ea_result {
    unsafe {
        ea_agent_init(
            &mut *m.agent,
            size_of::<ea_agent>(),
            cfg,
            id,
            m.ring.as_mut_ptr(),
            m.ring.len(),
            m.rx.as_mut_ptr(),
            m.rx.len(),
            m.events.as_mut_ptr(),
            m.events.len(),
        )
    }
}

fn live() -> Mem {
    let mut m = mem();
    assert_eq!(unsafe { init_with(&mut m, &ea_config_default(), &identity()) }, EA_OK);
    m
}

/// A call of one entry point on a handle.
type HandleCall = Box<dyn Fn(*mut ea_agent) -> ea_result>;

/// Every entry point that takes a handle, with valid other arguments.
fn handle_calls() -> Vec<(&'static str, HandleCall)> {
    let mut out = vec![0u8; 8192];
    let out_ptr = out.as_mut_ptr();
    std::mem::forget(out);
    let ok_hs = ea_host_stats::default();
    unsafe {
        vec![
            ("push", Box::new(|a| ea_agent_push(a, 0, 2001, 0, b"x".as_ptr(), 1)) as HandleCall),
            ("push_tick", Box::new(|a| ea_agent_push_tick(a, 0, 2001, 0, b"x".as_ptr(), 1))),
            ("task_result", Box::new(|a| ea_agent_task_result(a, 0, b"t".as_ptr(), 1, 0, null(), 0))),
            ("task_result_tick", Box::new(|a| ea_agent_task_result_tick(a, 0, b"t".as_ptr(), 1, 0, null(), 0))),
            ("set_host_stats", Box::new(move |a| ea_agent_set_host_stats(a, &ok_hs))),
            ("set_clock_offset", Box::new(|a| ea_agent_set_clock_offset(a, 5))),
            ("set_auth_token", Box::new(|a| ea_agent_set_auth_token(a, b"tok".as_ptr(), 3))),
            ("register_plugin", Box::new(|a| {
                let mut id = 0u8;
                ea_agent_register_plugin(a, b"p".as_ptr(), 1, b"1".as_ptr(), 1, &mut id)
            })),
            ("set_plugin_status", Box::new(|a| ea_agent_set_plugin_status(a, 0, 1, 1))),
            ("unregister_plugin", Box::new(|a| ea_agent_unregister_plugin(a, 0))),
            ("close", Box::new(|a| ea_agent_close(a, 0))),
            ("close_tick", Box::new(|a| ea_agent_close_tick(a, 0))),
            ("reconnect_now", Box::new(|a| ea_agent_reconnect_now(a, 0))),
            ("reconnect_now_tick", Box::new(|a| ea_agent_reconnect_now_tick(a, 0))),
            ("flush_now", Box::new(|a| ea_agent_flush_now(a, 0))),
            ("flush_now_tick", Box::new(|a| ea_agent_flush_now_tick(a, 0))),
            ("heartbeat_now", Box::new(|a| ea_agent_heartbeat_now(a, 0))),
            ("heartbeat_now_tick", Box::new(|a| ea_agent_heartbeat_now_tick(a, 0))),
            ("handle_connected", Box::new(|a| ea_agent_handle_connected(a, 0))),
            ("handle_connected_tick", Box::new(|a| ea_agent_handle_connected_tick(a, 0))),
            ("handle_received", Box::new(|a| ea_agent_handle_received(a, 0, b"junk".as_ptr(), 4))),
            ("handle_received_tick", Box::new(|a| ea_agent_handle_received_tick(a, 0, b"junk".as_ptr(), 4))),
            ("handle_disconnected", Box::new(|a| ea_agent_handle_disconnected(a, 0, 2))),
            ("handle_disconnected_tick", Box::new(|a| ea_agent_handle_disconnected_tick(a, 0, 2))),
            ("handle_timeout", Box::new(|a| ea_agent_handle_timeout(a, 0))),
            ("handle_timeout_tick", Box::new(|a| ea_agent_handle_timeout_tick(a, 0))),
            ("poll_transmit", Box::new(move |a| {
                let mut n = 0;
                ea_agent_poll_transmit(a, 0, out_ptr, 8192, &mut n)
            })),
            ("poll_transmit_tick", Box::new(move |a| {
                let mut n = 0;
                ea_agent_poll_transmit_tick(a, 0, out_ptr, 8192, &mut n)
            })),
            ("poll_event", Box::new(|a| {
                let mut e = std::mem::zeroed();
                ea_agent_poll_event(a, &mut e)
            })),
            ("poll_timeout", Box::new(|a| {
                let mut d = 0;
                ea_agent_poll_timeout(a, &mut d)
            })),
            ("timeout_delay", Box::new(|a| {
                let mut d = 0;
                ea_agent_timeout_delay(a, 0, &mut d)
            })),
            ("timeout_delay_tick", Box::new(|a| {
                let mut d = 0;
                ea_agent_timeout_delay_tick(a, 0, &mut d)
            })),
            ("state", Box::new(|a| {
                let mut s = ea_state::EA_STATE_CLOSED;
                ea_agent_state(a, &mut s)
            })),
            ("is_drained", Box::new(|a| {
                let mut d = false;
                ea_agent_is_drained(a, &mut d)
            })),
            ("stats", Box::new(|a| {
                let mut s = ea_stats::default();
                ea_agent_stats(a, &mut s)
            })),
            ("handle_blocked", Box::new(|a| ea_agent_handle_blocked(a, true))),
            ("wake_needed", Box::new(|a| {
                let mut w = false;
                ea_agent_wake_needed(a, &mut w)
            })),
            ("drain_intake", Box::new(|a| {
                let mut q = ea_intake { _opaque: [0; EA_INTAKE_STORAGE_WORDS] };
                let mut buf = [0u8; 64];
                assert_eq!(ea_intake_init(&mut q, size_of::<ea_intake>(), buf.as_mut_ptr(), buf.len(), 8), EA_OK);
                ea_agent_drain_intake(a, 0, &q, null_mut())
            })),
            ("deinit", Box::new(|a| ea_agent_deinit(a))),
        ]
    }
}

#[test]
fn every_handle_call_refuses_null_zeroed_and_misaligned_handles() {
    let calls = handle_calls();
    let mut zeroed = Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] });
    let mut words = vec![0u64; EA_AGENT_STORAGE_WORDS + 1];
    let misaligned = unsafe { (words.as_mut_ptr() as *mut u8).add(4) } as *mut ea_agent;
    for (name, call) in &calls {
        assert_eq!(call(null_mut()), EA_NULL_PARAMETER, "{name}(NULL)");
        assert_eq!(call(&mut *zeroed), EA_NOT_INITIALIZED, "{name}(zeroed storage)");
        assert_eq!(call(misaligned), EA_STORAGE_MISALIGNED, "{name}(misaligned)");
    }
    assert!(zeroed._opaque.iter().all(|w| *w == 0), "refused calls do not write the storage");
    // And with a live agent every call succeeds (deinit last).
    let mut m = live();
    for (name, call) in &calls {
        assert_eq!(call(&mut *m.agent), EA_OK, "{name}(live agent)");
    }
    assert_eq!(calls.last().unwrap().0, "deinit");
    assert_eq!(unsafe { ea_agent_push(&mut *m.agent, 0, 1, 0, null(), 0) }, EA_NOT_INITIALIZED, "deinit ends the agent");
}

#[test]
fn init_refuses_bad_storage_and_arguments() {
    let cfg = ea_config_default();
    let id = identity();
    unsafe {
        let mut m = mem();
        let a = &mut *m.agent as *mut ea_agent;
        let (ring, rx, ev) = (m.ring.as_mut_ptr(), m.rx.as_mut_ptr(), m.events.as_mut_ptr());
        let (rl, xl, el) = (m.ring.len(), m.rx.len(), m.events.len());
        let full = size_of::<ea_agent>();
        assert_eq!(ea_agent_init(null_mut(), full, &cfg, &id, ring, rl, rx, xl, ev, el), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_init(a, ea_agent_storage_size() - 1, &cfg, &id, ring, rl, rx, xl, ev, el), EA_STORAGE_TOO_SMALL);
        assert_eq!(ea_agent_init(a, 0, &cfg, &id, ring, rl, rx, xl, ev, el), EA_STORAGE_TOO_SMALL);
        let mut words = vec![0u64; EA_AGENT_STORAGE_WORDS + 1];
        let mis = (words.as_mut_ptr() as *mut u8).add(1) as *mut ea_agent;
        assert_eq!(ea_agent_init(mis, full, &cfg, &id, ring, rl, rx, xl, ev, el), EA_STORAGE_MISALIGNED);
        assert_eq!(ea_agent_init(a, full, null(), &id, ring, rl, rx, xl, ev, el), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_init(a, full, &cfg, null(), ring, rl, rx, xl, ev, el), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, null_mut(), rl, rx, xl, ev, el), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, null_mut(), xl, ev, el), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, xl, null_mut(), el), EA_NULL_PARAMETER);
        // Zero lengths are the core's business: each is a config error.
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, 0, rx, xl, ev, el), EA_CONFIG_RING_TOO_SMALL);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, 0, ev, el), EA_CONFIG_RX_BUFFER_TOO_SMALL);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, xl, ev, 0), EA_CONFIG_EVENT_QUEUE_TOO_SMALL);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, xl, ev, EA_MIN_EVENT_QUEUE - 1), EA_CONFIG_EVENT_QUEUE_TOO_SMALL);
        // Overlapping buffers (ring and rx share bytes; rx inside the agent).
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, ring.add(10), 100, ev, el), EA_INVALID_ARGUMENT);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, a as *mut u8, 100, ev, el), EA_INVALID_ARGUMENT);
        // Config values.
        let mut bad = cfg;
        bad.overflow_policy = 7;
        assert_eq!(ea_agent_init(a, full, &bad, &id, ring, rl, rx, xl, ev, el), EA_INVALID_ARGUMENT);
        unsafe extern "C" fn hook(_: *mut core::ffi::c_void) {}
        let mut half = cfg;
        half.lock = Some(hook);
        assert_eq!(ea_agent_init(a, full, &half, &id, ring, rl, rx, xl, ev, el), EA_INVALID_ARGUMENT);
        let mut zero = cfg;
        zero.batch_max_records = 0;
        assert_eq!(ea_agent_init(a, full, &zero, &id, ring, rl, rx, xl, ev, el), EA_CONFIG_ZERO_LIMIT);
        let mut hb = cfg;
        hb.heartbeat_interval_ms = 999;
        assert_eq!(ea_agent_init(a, full, &hb, &id, ring, rl, rx, xl, ev, el), EA_CONFIG_HEARTBEAT_TOO_FREQUENT);
        let mut bo = cfg;
        bo.backoff_base_ms = 0;
        assert_eq!(ea_agent_init(a, full, &bo, &id, ring, rl, rx, xl, ev, el), EA_CONFIG_ZERO_BACKOFF);
        // Identity.
        let mut bad_id = id;
        (bad_id.hostname, bad_id.hostname_len) = (b"\xff\xfe".as_ptr(), 2);
        assert_eq!(ea_agent_init(a, full, &cfg, &bad_id, ring, rl, rx, xl, ev, el), EA_INVALID_UTF8);
        let mut null_id = id;
        (null_id.product, null_id.product_len) = (null(), 3);
        assert_eq!(ea_agent_init(a, full, &cfg, &null_id, ring, rl, rx, xl, ev, el), EA_NULL_PARAMETER);
        let mut addr = id;
        (addr.intranet_ipv4, addr.intranet_ipv4_len) = (b"\x0a\x01\x02".as_ptr(), 3);
        assert_eq!(ea_agent_init(a, full, &cfg, &addr, ring, rl, rx, xl, ev, el), EA_CONFIG_BAD_ADDRESS_LIST);
        let big = vec![b'x'; 5000];
        let mut huge = id;
        (huge.auth_token, huge.auth_token_len) = (big.as_ptr(), big.len());
        assert_eq!(ea_agent_init(a, full, &cfg, &huge, ring, rl, rx, xl, ev, el), EA_CONFIG_HELLO_TOO_LARGE);
        // Nothing was written by any refusal.
        assert!(m.agent._opaque.iter().all(|w| *w == 0));
        // Init works, and twice is refused.
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, xl, ev, el), EA_OK);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, xl, ev, el), EA_ALREADY_INITIALIZED);
        assert_eq!(ea_agent_deinit(a), EA_OK);
        assert_eq!(ea_agent_deinit(a), EA_NOT_INITIALIZED);
        assert_eq!(ea_agent_init(a, full, &cfg, &id, ring, rl, rx, xl, ev, el), EA_OK, "storage reusable after deinit");
    }
}

#[test]
fn arguments_are_checked_and_outputs_untouched_on_failure() {
    let mut m = live();
    let a = &mut *m.agent as *mut ea_agent;
    unsafe {
        // Buffers: NULL with a length is refused, NULL with 0 is empty.
        assert_eq!(ea_agent_push(a, 0, 2001, 0, null(), 5), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_push(a, 0, 2001, 0, null(), 0), EA_OK);
        assert_eq!(ea_agent_handle_received(a, 0, null(), 1), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_handle_received(a, 0, null(), 0), EA_OK);
        assert_eq!(ea_agent_push(a, 0, 2001, 0, b"x".as_ptr(), usize::MAX), EA_INVALID_ARGUMENT);
        // A record over max_record: refused and counted.
        let big = vec![0u8; 1025];
        assert_eq!(ea_agent_push(a, 0, 2001, 0, big.as_ptr(), big.len()), EA_RECORD_TOO_LARGE);
        // Strings.
        assert_eq!(ea_agent_task_result(a, 0, b"\xc3".as_ptr(), 1, 0, null(), 0), EA_INVALID_UTF8);
        assert_eq!(ea_agent_task_result(a, 0, b"t".as_ptr(), 1, 0, b"\xff".as_ptr(), 1), EA_INVALID_UTF8);
        assert_eq!(ea_agent_task_result(a, 0, null(), 2, 0, null(), 0), EA_NULL_PARAMETER);
        // Enums out of range.
        assert_eq!(ea_agent_handle_disconnected(a, 0, 6), EA_INVALID_ARGUMENT);
        assert_eq!(ea_agent_handle_disconnected(a, 0, u32::MAX), EA_INVALID_ARGUMENT);
        assert_eq!(ea_agent_set_plugin_status(a, 0, 1, 5), EA_INVALID_ARGUMENT);
        assert_eq!(ea_agent_set_plugin_status(a, 0, 1, 1), EA_UNKNOWN_PLUGIN);
        assert_eq!(ea_agent_unregister_plugin(a, 200), EA_UNKNOWN_PLUGIN);
        assert_eq!(ea_agent_set_host_stats(a, null()), EA_NULL_PARAMETER);
        // Plugins: duplicate, full, NULL output.
        let mut id = 0xAA;
        assert_eq!(ea_agent_register_plugin(a, b"p".as_ptr(), 1, b"1".as_ptr(), 1, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_register_plugin(a, b"p".as_ptr(), 1, b"1".as_ptr(), 1, &mut id), EA_OK);
        assert_eq!(id, 0);
        let mut id2 = 0xAA;
        assert_eq!(ea_agent_register_plugin(a, b"p".as_ptr(), 1, b"1".as_ptr(), 1, &mut id2), EA_DUPLICATE_PLUGIN);
        assert_eq!(id2, 0xAA, "output untouched on failure");
        for n in [b"q", b"r", b"s"] {
            assert_eq!(ea_agent_register_plugin(a, n.as_ptr(), 1, b"1".as_ptr(), 1, &mut id2), EA_OK);
        }
        assert_eq!(ea_agent_register_plugin(a, b"t".as_ptr(), 1, b"1".as_ptr(), 1, &mut id2), EA_PLUGINS_FULL);
        // Outputs: NULL refused before any work.
        assert_eq!(ea_agent_poll_event(a, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_poll_timeout(a, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_timeout_delay(a, 0, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_state(a, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_is_drained(a, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_stats(a, null_mut()), EA_NULL_PARAMETER);
        // poll_transmit: the documented minimum, NULL buffer, NULL output.
        let mut min = 0usize;
        let (cfg, ident) = (ea_config_default(), identity());
        assert_eq!(ea_min_transmit_len(&cfg, &ident, &mut min), EA_OK);
        let mut out = vec![0u8; min];
        let mut n = 12345usize;
        assert_eq!(ea_agent_poll_transmit(a, 0, out.as_mut_ptr(), min - 1, &mut n), EA_BUFFER_TOO_SMALL);
        assert_eq!(ea_agent_poll_transmit(a, 0, out.as_mut_ptr(), 0, &mut n), EA_BUFFER_TOO_SMALL);
        assert_eq!(ea_agent_poll_transmit(a, 0, null_mut(), min, &mut n), EA_NULL_PARAMETER);
        assert_eq!(ea_agent_poll_transmit(a, 0, out.as_mut_ptr(), min, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(n, 12345, "output untouched on failure");
        assert_eq!(ea_agent_poll_transmit(a, 0, out.as_mut_ptr(), min, &mut n), EA_OK);
        // Auth token: too large for the transmit buffer prescribed at init.
        let huge = vec![b'j'; 8000];
        assert_eq!(ea_agent_set_auth_token(a, huge.as_ptr(), huge.len()), EA_CONFIG_HELLO_TOO_LARGE);
        assert_eq!(ea_agent_set_auth_token(a, null(), 1), EA_NULL_PARAMETER);
        // Sizing queries.
        assert_eq!(ea_min_transmit_len(null(), &ident, &mut min), EA_NULL_PARAMETER);
        assert_eq!(ea_min_transmit_len(&cfg, null(), &mut min), EA_NULL_PARAMETER);
        assert_eq!(ea_min_transmit_len(&cfg, &ident, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_config_validate(&cfg, &ident, 4096, 1024, 256), EA_OK);
        assert_eq!(ea_config_validate(null(), &ident, 4096, 1024, 256), EA_NULL_PARAMETER);
        assert_eq!(ea_config_validate(&cfg, &ident, 4096, 1024, 0), EA_CONFIG_EVENT_QUEUE_TOO_SMALL);
        assert_eq!(ea_config_validate(&cfg, &ident, 10, 1024, 256), EA_CONFIG_RING_TOO_SMALL);
        assert!(ea_agent_storage_size() <= size_of::<ea_agent>());
        assert_eq!(ea_agent_storage_align(), EA_AGENT_STORAGE_ALIGN);
        assert!(align_of::<ea_agent>() >= EA_AGENT_STORAGE_ALIGN);
        assert_eq!(ea_abi_version(), EA_ABI_VERSION);
        assert_eq!(std::ffi::CStr::from_ptr(ea_version()).to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let mut s = ea_stats::default();
        assert_eq!(ea_agent_stats(a, &mut s), EA_OK);
        assert_eq!(s.dropped_too_large, 1, "the oversized push was counted");
    }
}

#[test]
fn intake_refuses_bad_arguments() {
    unsafe {
        let mut q = ea_intake { _opaque: [0; EA_INTAKE_STORAGE_WORDS] };
        let mut buf = [0u8; 100];
        let (b, bl) = (buf.as_mut_ptr(), buf.len());
        let qs = size_of::<ea_intake>();
        assert_eq!(ea_intake_init(null_mut(), qs, b, bl, 8), EA_NULL_PARAMETER);
        assert_eq!(ea_intake_init(&mut q, 8, b, bl, 8), EA_STORAGE_TOO_SMALL);
        let mut words = [0u64; EA_INTAKE_STORAGE_WORDS + 1];
        let mis = (words.as_mut_ptr() as *mut u8).add(2) as *mut ea_intake;
        assert_eq!(ea_intake_init(mis, qs, b, bl, 8), EA_STORAGE_MISALIGNED);
        assert_eq!(ea_intake_init(&mut q, qs, null_mut(), bl, 8), EA_NULL_PARAMETER);
        assert_eq!(ea_intake_init(&mut q, qs, b, 10, 8), EA_BUFFER_TOO_SMALL, "not one slot");
        assert_eq!(ea_intake_init(&mut q, qs, b, bl, usize::MAX), EA_INVALID_ARGUMENT);
        assert_eq!(ea_intake_push(&q, 1, 0, null(), 0), EA_NOT_INITIALIZED);
        assert_eq!(ea_intake_init(&mut q, qs, b, bl, 8), EA_OK);
        assert_eq!(ea_intake_init(&mut q, qs, b, bl, 8), EA_ALREADY_INITIALIZED);
        let mut c = ea_intake_counters::default();
        assert_eq!(ea_intake_stats(&q, &mut c), EA_OK);
        assert_eq!(c.slots, 4, "100 bytes / (16 + 8)");
        assert_eq!(ea_intake_push(&q, 1, 0, null(), 3), EA_NULL_PARAMETER);
        assert_eq!(ea_intake_push(&q, 1, 0, [0u8; 9].as_ptr(), 9), EA_RECORD_TOO_LARGE);
        for _ in 0..4 {
            assert_eq!(ea_intake_push(&q, 1, 0, b"12345678".as_ptr(), 8), EA_OK);
        }
        assert_eq!(ea_intake_push(&q, 1, 0, b"x".as_ptr(), 1), EA_INTAKE_FULL);
        assert_eq!(ea_intake_stats(&q, null_mut()), EA_NULL_PARAMETER);
        assert_eq!(ea_intake_stats(&q, &mut c), EA_OK);
        assert_eq!((c.pushed, c.queued, c.dropped_full, c.dropped_too_large, c.drained), (4, 4, 1, 1, 0));
        // Draining: a NULL or uninitialized intake is refused.
        let mut m = live();
        let a = &mut *m.agent as *mut ea_agent;
        let mut drained = 99u32;
        assert_eq!(ea_agent_drain_intake(a, 0, null(), &mut drained), EA_NULL_PARAMETER);
        let blank = ea_intake { _opaque: [0; EA_INTAKE_STORAGE_WORDS] };
        assert_eq!(ea_agent_drain_intake(a, 0, &blank, &mut drained), EA_NOT_INITIALIZED);
        assert_eq!(drained, 99);
        assert_eq!(ea_agent_drain_intake(a, 0, &q, &mut drained), EA_OK);
        assert_eq!(drained, 4);
        assert_eq!(ea_intake_deinit(&mut q), EA_OK);
        assert_eq!(ea_intake_deinit(&mut q), EA_NOT_INITIALIZED);
    }
}

#[test]
fn result_numbers_are_pinned_and_every_one_has_a_message() {
    // Numbers are part of the ABI: never change one, never reuse one.
    let pinned: &[(ea_result, u32)] = &[
        (EA_OK, 0),
        (EA_NULL_PARAMETER, 1),
        (EA_STORAGE_TOO_SMALL, 2),
        (EA_STORAGE_MISALIGNED, 3),
        (EA_NOT_INITIALIZED, 4),
        (EA_ALREADY_INITIALIZED, 5),
        (EA_PANICKED, 6),
        (EA_INVALID_UTF8, 7),
        (EA_INVALID_ARGUMENT, 8),
        (EA_BUFFER_TOO_SMALL, 9),
        (EA_RING_FULL, 10),
        (EA_RECORD_TOO_LARGE, 11),
        (EA_PLUGINS_FULL, 12),
        (EA_UNKNOWN_PLUGIN, 13),
        (EA_DUPLICATE_PLUGIN, 14),
        (EA_INTAKE_FULL, 15),
        (EA_PLUGIN_NAME_TOO_LONG, 16),
        (EA_CONFIG_BATCH_TOO_SMALL, 100),
        (EA_CONFIG_WINDOW_TOO_SMALL, 101),
        (EA_CONFIG_RX_BUFFER_TOO_SMALL, 102),
        (EA_CONFIG_HEARTBEAT_TOO_FREQUENT, 103),
        (EA_CONFIG_ZERO_LIMIT, 104),
        (EA_CONFIG_ZERO_INTERVAL, 105),
        (EA_CONFIG_MAX_RECORD_TOO_SMALL, 106),
        (EA_CONFIG_BAD_ADDRESS_LIST, 107),
        (EA_CONFIG_ZERO_BACKOFF, 108),
        (EA_CONFIG_HELLO_TOO_LARGE, 109),
        (EA_CONFIG_EVENT_QUEUE_TOO_SMALL, 110),
        (EA_CONFIG_RING_TOO_SMALL, 111),
        (EA_CONFIG_TX_BUFFER_TOO_SMALL, 112),
        (EA_CONFIG_DROP_OLDEST_NOT_BUILT, 113),
        (EA_HOST_BAD_ENDPOINT, 200),
        (EA_HOST_SYSTEM, 201),
        (EA_HOST_STOPPING, 202),
        (EA_HOST_ALREADY_STARTED, 203),
        (EA_HOST_NOT_STARTED, 204),
        (EA_HOST_SIGNALS_TAKEN, 205),
        (EA_HOST_TLS_CONFIG, 206),
    ];
    let mut messages = std::collections::HashSet::new();
    for (r, n) in pinned {
        assert_eq!(*r as u32, *n, "{r:?}");
        let msg = unsafe { std::ffi::CStr::from_ptr(ea_result_message(*n)) }.to_str().unwrap();
        assert!(!msg.is_empty() && messages.insert(msg), "{r:?}: message {msg:?} empty or shared");
        assert_eq!(r.to_string(), msg);
    }
    for n in [17, 99, 114, 1000, u32::MAX] {
        let msg = unsafe { std::ffi::CStr::from_ptr(ea_result_message(n)) };
        assert_eq!(msg.to_str().unwrap(), "unknown result");
    }
    // Every number the library can return is in the table above.
    for n in 0..=1000u32 {
        let known = unsafe { std::ffi::CStr::from_ptr(ea_result_message(n)) }.to_str().unwrap() != "unknown result";
        assert_eq!(known, pinned.iter().any(|(_, p)| *p == n), "result {n}");
    }
}

#[test]
fn the_config_default_is_the_core_default() {
    let c = ea_config_default();
    let core = c.to_core().unwrap();
    assert_eq!(core, edge_agent::agent_core::AgentConfig::default());
    assert!(c.lock.is_none() && c.unlock.is_none() && c.lock_userdata.is_null());
}

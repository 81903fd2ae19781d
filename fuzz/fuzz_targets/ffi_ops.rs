//! Operation sequences on the C ABI: the agent driven only through `ea_*`
//! functions, with arbitrary arguments, lengths, NULL pointers, handles
//! that are NULL, never initialized or misaligned, and enum values out of
//! range; server frames well-formed (Accept, Ack, Ping, Task, Close) or
//! arbitrary bytes, in any chunking.
//!
//! Checks after every call:
//! * no crash, no `EA_PANICKED`, every result a known `ea_result`, and the
//!   documented one for NULL pointers (`EA_NULL_PARAMETER`), bad handles
//!   (`EA_NOT_INITIALIZED`, `EA_STORAGE_MISALIGNED`) and bad enums
//!   (`EA_INVALID_ARGUMENT`);
//! * outputs are written only on `EA_OK`;
//! * a blocked transport (`ea_agent_handle_blocked`) on an open connection
//!   gets no frame, and after its due timers fired its next timeout is not
//!   now;
//! * accounting: `pushed == acked + dropped_evicted + ring_records`; a push
//!   refused with `EA_RING_FULL` / `EA_RECORD_TOO_LARGE` adds exactly one to
//!   `dropped_full` / `dropped_too_large`; one accepted adds one to `pushed`;
//! * at the end, an honest server (connect when asked, Accept from the
//!   agent's resume point, ack every batch, answer pings) gets every record
//!   acked or evicted: nothing is lost silently.

#![no_main]

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::message::{Accept, Ack, Close, Message, Ping, Pong, Task};
use arbitrary::Arbitrary;
use edge_agent::event::ea_event_kind;
use edge_agent::result::ea_result::{self, *};
use edge_agent::*;
use libfuzzer_sys::fuzz_target;
use std::ptr::{self, null_mut};

#[derive(Arbitrary, Debug)]
struct Setup {
    ring_len: u16,
    rx_len: u16,
    events_len: u16,
    max_record: u16,
    batch_max_records: u8,
    batch_max_bytes: u16,
    flush_interval_ms: u16,
    drop_oldest: bool,
    endpoints: u8,
    give_up_after: u8,
    rng_seed: u64,
    /// Keep the arbitrary values even where init will refuse them.
    raw: bool,
}

#[derive(Arbitrary, Debug)]
enum Handle {
    Live,
    Null,
    Zeroed,
    Misaligned,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Push { h: Handle, dt: u32, ts: u64, payload: Vec<u8>, null: bool, tick: bool },
    TaskResult { token: Vec<u8>, status: u32, msg: Vec<u8>, null_token: bool },
    Connected,
    Disconnected { error: u32 },
    Timeout { advance: u16, tick: bool },
    TimeBack { by: u16 },
    RecvRaw { bytes: Vec<u8>, null: bool },
    RecvAccept { next_seq: u64, max_frame: u32, retry_window_ms: u32, honest: bool },
    RecvAck { up_to: u64, honest: bool },
    RecvPing { nonce: u64 },
    RecvTask { object: u8, data_type: u32, payload: Vec<u8>, token: u8 },
    RecvClose,
    Transmit { len: u16, null_out: bool, null_written: bool, tick: bool },
    PollEvent { null: bool },
    PollTimeout { null: bool },
    Delay { null: bool, tick: bool },
    Blocked { on: bool },
    WakeNeeded { null: bool },
    Stats { h: Handle },
    State,
    Drained,
    Close,
    Reconnect,
    Flush,
    Heartbeat,
    AuthToken { token: Vec<u8>, null: bool },
    Register { name: u8, null_id: bool },
    PluginStatus { id: u8, pid: u32, status: u32 },
    Unregister { id: u8 },
    HostStats { has: u16, value: u64 },
    ClockOffset { ms: i64 },
    IntakePush { dt: u32, payload: Vec<u8> },
    Drain { null_intake: bool },
    Reinit,
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

static PLUGIN_NAMES: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];
static AGENT_ID: &[u8] = b"ffi-fuzz";
static PRODUCT: &[u8] = b"edge";

struct Harness {
    agent: Box<ea_agent>,
    zeroed: Box<ea_agent>,
    misaligned_mem: Vec<u64>,
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
    tx: Vec<u8>,
    intake: Box<ea_intake>,
    intake_buf: Vec<u8>,
    /// Auth tokens must outlive the agent: kept here for the whole run.
    tokens: Vec<Box<[u8]>>,
    cfg: ea_config,
    now: u64,
    tick: u32,
    /// The last Hello's resume point and the highest sequence batched, for
    /// honest Accepts and Acks.
    hello_first_unacked: u64,
    hello_min_frame: u32,
    last_batched: Option<u64>,
    server: Vec<u8>,
    server_buf: Vec<u8>,
    pings: Vec<u64>,
}

fn known(r: ea_result) {
    let msg = unsafe { std::ffi::CStr::from_ptr(ea_result_message(r as u32)) };
    assert_ne!(msg.to_str().unwrap(), "unknown result");
    assert_ne!(r, EA_PANICKED, "a panic was caught");
}

fn identity() -> ea_identity {
    let mut id: ea_identity = unsafe { std::mem::zeroed() };
    (id.agent_id, id.agent_id_len) = (AGENT_ID.as_ptr(), AGENT_ID.len());
    (id.product, id.product_len) = (PRODUCT.as_ptr(), PRODUCT.len());
    id
}

impl Harness {
    fn new(s: &Setup) -> Self {
        let mut cfg = ea_config_default();
        if s.raw {
            cfg.max_record = usize::from(s.max_record);
            cfg.batch_max_records = u32::from(s.batch_max_records);
            cfg.batch_max_bytes = usize::from(s.batch_max_bytes);
            cfg.window_bytes = usize::from(s.batch_max_bytes) * 2;
            cfg.endpoints = s.endpoints;
        } else {
            cfg.max_record = 384 + usize::from(s.max_record % 1024);
            cfg.batch_max_records = 1 + u32::from(s.batch_max_records % 64);
            cfg.batch_max_bytes = cfg.max_record + 25 + usize::from(s.batch_max_bytes % 4096);
            cfg.window_bytes = cfg.batch_max_bytes * 2;
            cfg.endpoints = 1 + s.endpoints % 3;
        }
        cfg.flush_interval_ms = u64::from(s.flush_interval_ms % 500);
        cfg.overflow_policy = u32::from(s.drop_oldest);
        cfg.give_up_after = u32::from(s.give_up_after % 8);
        cfg.rng_seed = s.rng_seed;
        let ring_len = if s.raw { usize::from(s.ring_len) } else { 512 + usize::from(s.ring_len % 16384) };
        let rx_len = if s.raw { usize::from(s.rx_len) } else { 64 + usize::from(s.rx_len % 4096) };
        let events_len = if s.raw { usize::from(s.events_len) } else { 24 + usize::from(s.events_len % 2048) };
        Harness {
            agent: Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] }),
            zeroed: Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] }),
            misaligned_mem: vec![0; EA_AGENT_STORAGE_WORDS + 1],
            ring: vec![0; ring_len],
            rx: vec![0; rx_len],
            events: vec![0; events_len],
            tx: vec![0; 1 << 16],
            intake: Box::new(ea_intake { _opaque: [0; EA_INTAKE_STORAGE_WORDS] }),
            intake_buf: vec![0; 8 * (EA_INTAKE_SLOT_OVERHEAD + 32)],
            tokens: Vec::new(),
            cfg,
            now: 0,
            tick: 0,
            hello_first_unacked: 0,
            hello_min_frame: 0,
            last_batched: None,
            server: vec![0; 1 << 18],
            server_buf: Vec::new(),
            pings: Vec::new(),
        }
    }

    fn a(&mut self) -> *mut ea_agent {
        &mut *self.agent
    }

    fn handle(&mut self, h: &Handle) -> *mut ea_agent {
        match h {
            Handle::Live => &mut *self.agent,
            Handle::Null => null_mut(),
            Handle::Zeroed => &mut *self.zeroed,
            Handle::Misaligned => unsafe { (self.misaligned_mem.as_mut_ptr() as *mut u8).add(4) as *mut ea_agent },
        }
    }

    fn init(&mut self) -> ea_result {
        let id = identity();
        let r = unsafe {
            ea_agent_init(
                &mut *self.agent,
                size_of::<ea_agent>(),
                &self.cfg,
                &id,
                self.ring.as_mut_ptr(),
                self.ring.len(),
                self.rx.as_mut_ptr(),
                self.rx.len(),
                self.events.as_mut_ptr(),
                self.events.len(),
            )
        };
        known(r);
        if r == EA_OK {
            // The transmit buffer the agent prescribes for this config.
            let mut min = 0;
            assert_eq!(unsafe { ea_min_transmit_len(&self.cfg, &id, &mut min) }, EA_OK);
            self.tx.resize(min.max(self.tx.len()), 0);
        }
        r
    }

    fn stats(&mut self) -> Option<ea_stats> {
        let mut s = ea_stats::default();
        match unsafe { ea_agent_stats(self.a(), &mut s) } {
            EA_OK => {
                assert_eq!(s.pushed, s.acked + s.dropped_evicted + s.ring_records, "accounting: {s:?}");
                Some(s)
            }
            EA_NOT_INITIALIZED => None,
            r => panic!("stats: {r:?}"),
        }
    }

    fn send(&mut self, m: Message<'_>) {
        let mut b = vec![0u8; 4096];
        if let Ok(n) = m.encode(0, &mut b) {
            let r = unsafe { ea_agent_handle_received(self.a(), self.now, b.as_ptr(), n) };
            known(r);
        }
    }

    /// Reads the agent's frames like a server would: Hello resume points,
    /// batch sequence numbers, pings.
    fn observe(&mut self, bytes: &[u8]) {
        self.server_buf.extend_from_slice(bytes);
        let input = std::mem::take(&mut self.server_buf);
        let mut dec = FrameDecoder::new(&mut self.server[..]);
        let mut rest: &[u8] = &input;
        loop {
            match dec.feed(rest) {
                Feed::Consumed => {
                    self.server_buf = input[input.len() - dec.buffered()..].to_vec();
                    break;
                }
                Feed::Frame { frame, remaining } => {
                    match Message::decode(&frame) {
                        Ok(Message::Hello(h)) => {
                            self.hello_first_unacked = h.first_unacked_seq;
                            self.hello_min_frame = h.min_frame;
                        }
                        Ok(Message::Batch(b)) if b.count > 0 => {
                            self.last_batched = Some(b.first_seq + u64::from(b.count) - 1);
                        }
                        Ok(Message::Ping(p)) => self.pings.push(p.nonce),
                        _ => {}
                    }
                    rest = remaining;
                }
            }
        }
    }

    fn transmit_all(&mut self) {
        for _ in 0..64 {
            let mut n = 0;
            let r = unsafe { ea_agent_poll_transmit(self.a(), self.now, self.tx.as_mut_ptr(), self.tx.len(), &mut n) };
            known(r);
            if r != EA_OK || n == 0 {
                return;
            }
            let frame = self.tx[..n].to_vec();
            self.observe(&frame);
        }
    }

    fn op(&mut self, op: &Op) {
        let a = self.a();
        let now = self.now;
        match op {
            Op::Push { h, dt, ts, payload, null, tick } => {
                let target = self.handle(h);
                let before = self.stats();
                let (p, len) = if *null { (ptr::null(), payload.len()) } else { (payload.as_ptr(), payload.len()) };
                let r = unsafe {
                    if *tick {
                        ea_agent_push_tick(target, self.tick, *dt, *ts, p, len)
                    } else {
                        ea_agent_push(target, now, *dt, *ts, p, len)
                    }
                };
                known(r);
                match h {
                    Handle::Null => assert_eq!(r, EA_NULL_PARAMETER),
                    Handle::Zeroed => assert_eq!(r, EA_NOT_INITIALIZED),
                    Handle::Misaligned => assert_eq!(r, EA_STORAGE_MISALIGNED),
                    Handle::Live => {
                        let Some(before) = before else { return assert_eq!(r, EA_NOT_INITIALIZED) };
                        if *null && len > 0 {
                            assert_eq!(r, EA_NULL_PARAMETER);
                        }
                        let after = self.stats().unwrap();
                        match r {
                            EA_OK => assert_eq!(after.pushed, before.pushed + 1),
                            EA_RING_FULL => assert_eq!(after.dropped_full, before.dropped_full + 1),
                            EA_RECORD_TOO_LARGE => assert_eq!(after.dropped_too_large, before.dropped_too_large + 1),
                            EA_NULL_PARAMETER => assert_eq!(after.pushed, before.pushed),
                            r => panic!("push: {r:?}"),
                        }
                    }
                }
            }
            Op::TaskResult { token, status, msg, null_token } => {
                let tp = if *null_token { ptr::null() } else { token.as_ptr() };
                let r = unsafe { ea_agent_task_result(a, now, tp, token.len(), *status, msg.as_ptr(), msg.len()) };
                known(r);
                if *null_token && !token.is_empty() {
                    assert_eq!(r, EA_NULL_PARAMETER);
                }
            }
            Op::Connected => known(unsafe { ea_agent_handle_connected(a, now) }),
            Op::Disconnected { error } => {
                let r = unsafe { ea_agent_handle_disconnected(a, now, *error) };
                known(r);
                if *error > 5 && r != EA_NOT_INITIALIZED {
                    assert_eq!(r, EA_INVALID_ARGUMENT);
                }
            }
            Op::Timeout { advance, tick } => {
                self.now += u64::from(*advance);
                self.tick = self.tick.wrapping_add(u32::from(*advance));
                let r = unsafe {
                    if *tick {
                        ea_agent_handle_timeout_tick(a, self.tick)
                    } else {
                        ea_agent_handle_timeout(a, self.now)
                    }
                };
                known(r);
            }
            Op::TimeBack { by } => self.now = self.now.saturating_sub(u64::from(*by)),
            Op::RecvRaw { bytes, null } => {
                let p = if *null { ptr::null() } else { bytes.as_ptr() };
                let r = unsafe { ea_agent_handle_received(a, now, p, bytes.len()) };
                known(r);
                if *null && !bytes.is_empty() {
                    assert_eq!(r, EA_NULL_PARAMETER);
                }
            }
            Op::RecvAccept { next_seq, max_frame, retry_window_ms, honest } => {
                let (next_seq, max_frame) = if *honest { (self.hello_first_unacked, self.hello_min_frame.max(65536)) } else { (*next_seq, *max_frame) };
                self.send(Message::Accept(Accept { next_seq, max_frame, retry_window_ms: *retry_window_ms }));
            }
            Op::RecvAck { up_to, honest } => {
                let up_to = if *honest {
                    match self.last_batched {
                        Some(s) => s,
                        None => return,
                    }
                } else {
                    *up_to
                };
                self.send(Message::Ack(Ack { up_to }));
            }
            Op::RecvPing { nonce } => self.send(Message::Ping(Ping { nonce: *nonce })),
            Op::RecvTask { object, data_type, payload, token } => {
                let object = ["", "edge", "p0", "p1", "nobody"][usize::from(*object % 5)];
                let token = format!("t{}", token % 16);
                self.send(Message::Task(Task { object_name: object.into(), data_type: *data_type, payload, token: token.as_str().into() }));
            }
            Op::RecvClose => self.send(Message::Close(Close { code: 1, reason: "bye".into() })),
            Op::Transmit { len, null_out, null_written, tick } => {
                let len = usize::from(*len) * 4;
                let out = if *null_out { null_mut() } else { self.tx.as_mut_ptr() };
                let mut n = usize::MAX;
                let w = if *null_written { null_mut() } else { &mut n as *mut usize };
                let r = unsafe {
                    if *tick {
                        ea_agent_poll_transmit_tick(a, self.tick, out, len, w)
                    } else {
                        ea_agent_poll_transmit(a, now, out, len, w)
                    }
                };
                known(r);
                if *null_written {
                    assert!(matches!(r, EA_NULL_PARAMETER | EA_NOT_INITIALIZED));
                }
                if r == EA_OK {
                    assert!(n <= len);
                    let frame = self.tx[..n].to_vec();
                    self.observe(&frame);
                } else {
                    assert_eq!(n, usize::MAX, "output written on failure");
                }
            }
            Op::PollEvent { null } => {
                let mut ev: ea_event = unsafe { std::mem::zeroed() };
                ev.kind = 0xDEAD;
                let p = if *null { null_mut() } else { &mut ev as *mut ea_event };
                let r = unsafe { ea_agent_poll_event(a, p) };
                known(r);
                if r == EA_OK {
                    assert!(ev.kind <= ea_event_kind::EA_EVENT_GAVE_UP as u32);
                    if ev.kind == ea_event_kind::EA_EVENT_TASK as u32 {
                        // The borrowed bytes are readable until the next call.
                        let tok = unsafe { std::slice::from_raw_parts(ev.token, ev.token_len) };
                        let tok = tok.to_vec();
                        let r = unsafe { ea_agent_task_result(a, now, tok.as_ptr(), tok.len(), 0, ptr::null(), 0) };
                        known(r);
                    }
                } else {
                    assert_eq!(ev.kind, 0xDEAD);
                }
            }
            Op::PollTimeout { null } => {
                let mut d = 7u64;
                let p = if *null { null_mut() } else { &mut d as *mut u64 };
                let r = unsafe { ea_agent_poll_timeout(a, p) };
                known(r);
                if r != EA_OK {
                    assert_eq!(d, 7);
                }
            }
            Op::Delay { null, tick } => {
                let mut d = 7u32;
                let p = if *null { null_mut() } else { &mut d as *mut u32 };
                let r = unsafe { if *tick { ea_agent_timeout_delay_tick(a, self.tick, p) } else { ea_agent_timeout_delay(a, now, p) } };
                known(r);
            }
            Op::Blocked { on } => {
                known(unsafe { ea_agent_handle_blocked(a, *on) });
                let mut st = ea_state::EA_STATE_BACKOFF;
                known(unsafe { ea_agent_state(a, &mut st) });
                let up = matches!(st, ea_state::EA_STATE_HANDSHAKING | ea_state::EA_STATE_CONNECTED);
                if *on && up {
                    // Blocked: nothing to transmit, and once the timers
                    // due now have fired the next wake-up is later (a
                    // blocked socket never makes the loop spin).
                    let mut n = usize::MAX;
                    let r = unsafe { ea_agent_poll_transmit(a, now, self.tx.as_mut_ptr(), self.tx.len(), &mut n) };
                    known(r);
                    if r == EA_OK {
                        assert_eq!(n, 0, "a blocked agent handed out a frame");
                    }
                    known(unsafe { ea_agent_handle_timeout(a, now) });
                    known(unsafe { ea_agent_state(a, &mut st) });
                    if matches!(st, ea_state::EA_STATE_HANDSHAKING | ea_state::EA_STATE_CONNECTED) {
                        let mut d = 7u32;
                        let r = unsafe { ea_agent_timeout_delay(a, now, &mut d) };
                        known(r);
                        if r == EA_OK {
                            assert!(d > 0, "blocked, and the next timeout is now");
                        }
                    }
                }
            }
            Op::WakeNeeded { null } => {
                let mut w = false;
                let p = if *null { null_mut() } else { &mut w as *mut bool };
                let r = unsafe { ea_agent_wake_needed(a, p) };
                known(r);
                if *null {
                    assert!(matches!(r, EA_NULL_PARAMETER | EA_NOT_INITIALIZED));
                }
            }
            Op::Stats { h } => {
                let t = self.handle(h);
                let mut s = ea_stats::default();
                let r = unsafe { ea_agent_stats(t, &mut s) };
                known(r);
                self.stats();
            }
            Op::State => {
                let mut s = ea_state::EA_STATE_BACKOFF;
                known(unsafe { ea_agent_state(a, &mut s) });
            }
            Op::Drained => {
                let mut d = false;
                known(unsafe { ea_agent_is_drained(a, &mut d) });
            }
            Op::Close => known(unsafe { ea_agent_close(a, now) }),
            Op::Reconnect => known(unsafe { ea_agent_reconnect_now(a, now) }),
            Op::Flush => known(unsafe { ea_agent_flush_now(a, now) }),
            Op::Heartbeat => known(unsafe { ea_agent_heartbeat_now(a, now) }),
            Op::AuthToken { token, null } => {
                let t: Box<[u8]> = token.clone().into_boxed_slice();
                let p = if *null { ptr::null() } else { t.as_ptr() };
                let r = unsafe { ea_agent_set_auth_token(a, p, t.len()) };
                known(r);
                self.tokens.push(t);
            }
            Op::Register { name, null_id } => {
                let n = PLUGIN_NAMES[usize::from(*name % 6)];
                let mut id: u8 = 0xEE;
                let p = if *null_id { null_mut() } else { &mut id as *mut u8 };
                let r = unsafe { ea_agent_register_plugin(a, n.as_ptr(), n.len(), b"1.0".as_ptr(), 3, p) };
                known(r);
                if r != EA_OK && !*null_id {
                    assert_eq!(id, 0xEE);
                }
            }
            Op::PluginStatus { id, pid, status } => {
                let r = unsafe { ea_agent_set_plugin_status(a, *id, *pid, *status) };
                known(r);
                if *status > 4 {
                    assert_eq!(r, EA_INVALID_ARGUMENT);
                }
            }
            Op::Unregister { id } => known(unsafe { ea_agent_unregister_plugin(a, *id) }),
            Op::HostStats { has, value } => {
                let mut hs = ea_host_stats::default();
                hs.has_cpu_permille = (*has & 1) as u8;
                hs.has_rss_bytes = (*has >> 1 & 1) as u8;
                hs.has_mem_total_bytes = (*has >> 2 & 1) as u8;
                hs.cpu_permille = *value as u32;
                hs.rss_bytes = *value;
                hs.mem_total_bytes = *value;
                known(unsafe { ea_agent_set_host_stats(a, &hs) });
            }
            Op::ClockOffset { ms } => known(unsafe { ea_agent_set_clock_offset(a, *ms) }),
            Op::IntakePush { dt, payload } => {
                known(unsafe { ea_intake_push(&*self.intake, *dt, 0, payload.as_ptr(), payload.len()) });
            }
            Op::Drain { null_intake } => {
                let q = if *null_intake { ptr::null() } else { &*self.intake as *const ea_intake };
                let before = self.stats();
                let mut n = 0;
                let r = unsafe { ea_agent_drain_intake(a, now, q, &mut n) };
                known(r);
                if let (EA_OK, Some(b)) = (r, before) {
                    let s = self.stats().unwrap();
                    let refused = (s.dropped_full - b.dropped_full) + (s.dropped_too_large - b.dropped_too_large);
                    assert_eq!(s.pushed - b.pushed + refused, u64::from(n), "every drained record pushed or counted");
                }
            }
            Op::Reinit => {
                let r = unsafe { ea_agent_deinit(a) };
                known(r);
                let r = self.init();
                if r != EA_OK {
                    self.cfg = ea_config_default();
                    assert_eq!(self.init(), EA_OK);
                }
                self.hello_first_unacked = 0;
                self.last_batched = None;
                self.server_buf.clear();
            }
        }
        self.stats();
    }

    /// An honest server until every record is acked or evicted.
    fn settle(&mut self) {
        let a = self.a();
        known(unsafe { ea_agent_handle_disconnected(a, self.now, 2) });
        self.server_buf.clear();
        let mut up = false;
        for _ in 0..20_000 {
            let s = self.stats().unwrap();
            if s.drained != 0 {
                return;
            }
            if s.state == ea_state::EA_STATE_CLOSED as u32 || s.state == ea_state::EA_STATE_GAVE_UP as u32 {
                known(unsafe { ea_agent_reconnect_now(a, self.now) });
            }
            let mut d = 0;
            known(unsafe { ea_agent_poll_timeout(a, &mut d) });
            if d != EA_NEVER && d > self.now {
                self.now = d.min(self.now + 200);
            }
            known(unsafe { ea_agent_handle_timeout(a, self.now) });
            for _ in 0..4 {
                self.transmit_all();
                loop {
                    let mut ev: ea_event = unsafe { std::mem::zeroed() };
                    assert_eq!(unsafe { ea_agent_poll_event(a, &mut ev) }, EA_OK);
                    match ev.kind {
                        k if k == ea_event_kind::EA_EVENT_NONE as u32 => break,
                        k if k == ea_event_kind::EA_EVENT_CONNECT as u32 => {
                            self.server_buf.clear();
                            self.last_batched = None;
                            known(unsafe { ea_agent_handle_connected(a, self.now) });
                            up = true;
                        }
                        k if k == ea_event_kind::EA_EVENT_DISCONNECT as u32 => up = false,
                        _ => {}
                    }
                }
                if !up {
                    break;
                }
                self.transmit_all();
                let mut st = ea_state::EA_STATE_BACKOFF;
                known(unsafe { ea_agent_state(a, &mut st) });
                if st == ea_state::EA_STATE_HANDSHAKING {
                    let (next_seq, max_frame) = (self.hello_first_unacked, self.hello_min_frame.max(65536));
                    self.send(Message::Accept(Accept { next_seq, max_frame, retry_window_ms: 0 }));
                }
                if let Some(up_to) = self.last_batched {
                    self.send(Message::Ack(Ack { up_to }));
                }
                for nonce in std::mem::take(&mut self.pings) {
                    self.send(Message::Pong(Pong { nonce }));
                }
            }
        }
        panic!("an honest server did not drain the agent: {:?}", self.stats());
    }
}

fuzz_target!(|input: Input| {
    let mut h = Harness::new(&input.setup);
    let r = h.init();
    if r != EA_OK {
        assert!(matches!(r, EA_INVALID_ARGUMENT) || (r as u32) >= 100, "init: {r:?}");
        h.cfg = ea_config_default();
        h.ring = vec![0; 4096];
        h.rx = vec![0; 2048];
        h.events = vec![0; 512];
        assert_eq!(h.init(), EA_OK);
    }
    let qr = unsafe { ea_intake_init(&mut *h.intake, size_of::<ea_intake>(), h.intake_buf.as_mut_ptr(), h.intake_buf.len(), 32) };
    assert_eq!(qr, EA_OK);
    for op in input.ops.iter().take(256) {
        h.op(op);
    }
    if h.stats().is_some() {
        h.settle();
        let a = h.a();
        assert_eq!(unsafe { ea_agent_deinit(a) }, EA_OK);
    }
});

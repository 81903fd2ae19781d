//! The simulation's guarantee through the C ABI: an agent driven only by
//! `ea_*` calls, against a collector built from agent-core's message codec,
//! over a link that chunks bytes, loses acks and gets cut, with pushes into
//! a ring small enough to refuse some. For every seed, at every step, the
//! stats obey `pushed == acked + dropped_evicted + ring_records`; at the end
//! every record the caller got `EA_OK` for is stored by the collector
//! exactly once, and every refusal is counted by the library one for one.
//! A second test does the same with the records coming through an
//! `ea_intake` filled by another thread.

use edge_agent::agent_core::decoder::{Feed, FrameDecoder};
use edge_agent::agent_core::message::{Accept, Ack, Message};
use edge_agent::event::ea_event_kind::*;
use edge_agent::result::ea_result::*;
use edge_agent::*;
use std::collections::HashMap;
use std::ptr::null_mut;

const APP_TYPE: u32 = 2001;

/// xorshift64*: the test's only randomness, from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A collector: stores records in sequence order, durably (across
/// connections), acks what it stored, and resumes an agent from there.
struct Collector {
    decoder_buf: Box<[u8; 1 << 16]>,
    buffered: Vec<u8>,
    out: Vec<u8>,
    next_seq: u64,
    app: HashMap<u32, u32>,
    order: Vec<u32>,
    stored_other: u64,
}

impl Collector {
    fn new() -> Self {
        Collector { decoder_buf: Box::new([0; 1 << 16]), buffered: Vec::new(), out: Vec::new(), next_seq: 0, app: HashMap::new(), order: Vec::new(), stored_other: 0 }
    }

    fn reset_connection(&mut self) {
        self.buffered.clear();
        self.out.clear();
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buffered.extend_from_slice(bytes);
        let input = std::mem::take(&mut self.buffered);
        let mut dec = FrameDecoder::new(&mut self.decoder_buf[..]);
        let mut rest: &[u8] = &input;
        let mut replies = Vec::new();
        // Whole frames only: keep the tail for the next feed.
        loop {
            let before = rest.len();
            match dec.feed(rest) {
                Feed::Consumed => {
                    let kept = dec.buffered();
                    self.buffered = input[input.len() - kept..].to_vec();
                    break;
                }
                Feed::Frame { frame, remaining } => {
                    match Message::decode(&frame) {
                        Ok(Message::Hello(_)) => {
                            let mut b = [0u8; 64];
                            let n = Message::Accept(Accept { next_seq: self.next_seq, max_frame: 65536, retry_window_ms: 0 }).encode(0, &mut b).unwrap();
                            replies.extend_from_slice(&b[..n]);
                        }
                        Ok(Message::Batch(batch)) => {
                            for (i, rec) in batch.iter().enumerate() {
                                let rec = rec.expect("well-formed records");
                                let seq = batch.first_seq + i as u64;
                                if seq == self.next_seq {
                                    self.next_seq += 1;
                                    if rec.data_type == APP_TYPE {
                                        let idx = u32::from_le_bytes(rec.payload[..4].try_into().unwrap());
                                        *self.app.entry(idx).or_default() += 1;
                                        self.order.push(idx);
                                    } else {
                                        self.stored_other += 1;
                                    }
                                }
                            }
                            if self.next_seq > 0 {
                                let mut b = [0u8; 64];
                                let n = Message::Ack(Ack { up_to: self.next_seq - 1 }).encode(0, &mut b).unwrap();
                                replies.extend_from_slice(&b[..n]);
                            }
                        }
                        Ok(Message::Ping(p)) => {
                            let mut b = [0u8; 64];
                            let n = Message::Pong(edge_agent::agent_core::message::Pong { nonce: p.nonce }).encode(0, &mut b).unwrap();
                            replies.extend_from_slice(&b[..n]);
                        }
                        _ => {}
                    }
                    assert!(remaining.len() < before);
                    rest = remaining;
                }
            }
        }
        self.out.extend_from_slice(&replies);
    }
}

/// Caller memory, as a C program would declare it.
struct Mem {
    agent: Box<ea_agent>,
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
    tx: Vec<u8>,
}

static ID: &[u8] = b"accounting";

fn start(ring_len: usize) -> Mem {
    let mut m = Mem {
        agent: Box::new(ea_agent { _opaque: [0; EA_AGENT_STORAGE_WORDS] }),
        ring: vec![0; ring_len],
        rx: vec![0; 4096],
        events: vec![0; 1024],
        tx: vec![0; 8192],
    };
    let mut cfg = ea_config_default();
    cfg.flush_interval_ms = 5;
    cfg.batch_max_records = 16;
    cfg.heartbeat_interval_ms = 3_600_000; // one heartbeat, at the first input
    cfg.ack_timeout_ms = 2000;
    let mut id: ea_identity = unsafe { std::mem::zeroed() };
    (id.agent_id, id.agent_id_len) = (ID.as_ptr(), ID.len());
    let r = unsafe {
        ea_agent_init(&mut *m.agent, size_of::<ea_agent>(), &cfg, &id, m.ring.as_mut_ptr(), m.ring.len(), m.rx.as_mut_ptr(), m.rx.len(), m.events.as_mut_ptr(), m.events.len())
    };
    assert_eq!(r, EA_OK);
    m
}

fn stats(m: &Mem) -> ea_stats {
    let mut s = ea_stats::default();
    assert_eq!(unsafe { ea_agent_stats(&*m.agent, &mut s) }, EA_OK);
    assert_eq!(s.pushed, s.acked + s.dropped_evicted + s.ring_records, "accounting invariant: {s:?}");
    s
}

/// The link between the agent and the collector.
struct Link {
    up: bool,
    server: Collector,
}

/// One round of outputs: transmit, events, deliver the collector's replies
/// (in random chunks; sometimes lost).
fn outputs(m: &mut Mem, link: &mut Link, now: u64, rng: &mut Rng) {
    let a = &mut *m.agent as *mut ea_agent;
    for _ in 0..4 {
        loop {
            let mut n = 0;
            assert_eq!(unsafe { ea_agent_poll_transmit(a, now, m.tx.as_mut_ptr(), m.tx.len(), &mut n) }, EA_OK);
            if n == 0 {
                break;
            }
            if link.up {
                link.server.feed(&m.tx[..n]);
            }
        }
        loop {
            let mut ev: ea_event = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { ea_agent_poll_event(a, &mut ev) }, EA_OK);
            match ev.kind {
                k if k == EA_EVENT_NONE as u32 => break,
                k if k == EA_EVENT_CONNECT as u32 => {
                    if rng.below(5) == 0 {
                        assert_eq!(unsafe { ea_agent_handle_disconnected(a, now, 1) }, EA_OK); // refused
                    } else {
                        link.server.reset_connection();
                        link.up = true;
                        assert_eq!(unsafe { ea_agent_handle_connected(a, now) }, EA_OK);
                    }
                }
                k if k == EA_EVENT_DISCONNECT as u32 => link.up = false,
                _ => {}
            }
        }
        if link.up && !link.server.out.is_empty() {
            let bytes = std::mem::take(&mut link.server.out);
            if rng.below(10) == 0 {
                continue; // the replies (acks) are lost
            }
            let mut at = 0;
            while at < bytes.len() {
                let n = (1 + rng.below(40) as usize).min(bytes.len() - at);
                assert_eq!(unsafe { ea_agent_handle_received(a, now, bytes[at..].as_ptr(), n) }, EA_OK);
                at += n;
            }
        } else {
            break;
        }
    }
}

/// Drives the agent until drained; returns the time reached.
fn settle(m: &mut Mem, link: &mut Link, mut now: u64, rng: &mut Rng) -> u64 {
    for _ in 0..100_000 {
        let s = stats(m);
        if s.drained != 0 {
            return now;
        }
        let mut d = 0;
        assert_eq!(unsafe { ea_agent_poll_timeout(&*m.agent, &mut d) }, EA_OK);
        assert_ne!(d, EA_NEVER);
        now = now.max(d).min(now + 50);
        assert_eq!(unsafe { ea_agent_handle_timeout(&mut *m.agent, now) }, EA_OK);
        outputs(m, link, now, rng);
    }
    panic!("not drained: {:?}", stats(m));
}

#[test]
fn every_record_is_acked_once_or_counted_refused_through_the_abi() {
    let seeds: u64 = std::env::var("EA_FFI_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let (mut reconnects, mut refusals) = (0, 0);
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut m = start(2048 + rng.below(4096) as usize);
        let mut link = Link { up: false, server: Collector::new() };
        let a = &mut *m.agent as *mut ea_agent;
        let mut now = 0u64;
        assert_eq!(unsafe { ea_agent_handle_timeout(a, now) }, EA_OK); // the heartbeat, into an empty ring
        let (mut accepted, mut refused) = (Vec::new(), 0u64);
        for i in 0..400u32 {
            now += rng.below(4);
            let mut payload = vec![b'r'; 4 + rng.below(120) as usize];
            payload[..4].copy_from_slice(&i.to_le_bytes());
            match unsafe { ea_agent_push(a, now, APP_TYPE, now, payload.as_ptr(), payload.len()) } {
                EA_OK => accepted.push(i),
                EA_RING_FULL => refused += 1,
                r => panic!("push: {r:?}"),
            }
            match rng.below(30) {
                0 if link.up => {
                    link.up = false;
                    assert_eq!(unsafe { ea_agent_handle_disconnected(a, now, 2) }, EA_OK);
                }
                1 => assert_eq!(unsafe { ea_agent_flush_now(a, now) }, EA_OK),
                _ => {}
            }
            assert_eq!(unsafe { ea_agent_handle_timeout(a, now) }, EA_OK);
            outputs(&mut m, &mut link, now, &mut rng);
            stats(&m);
        }
        now = settle(&mut m, &mut link, now, &mut rng);
        let s = stats(&m);
        assert_eq!(s.pushed, accepted.len() as u64 + 1, "seed {seed}: app records + the heartbeat");
        assert_eq!(s.dropped_full, refused, "seed {seed}: each refusal counted once");
        assert_eq!((s.dropped_too_large, s.dropped_evicted), (0, 0), "seed {seed}");
        assert_eq!(s.acked, s.pushed, "seed {seed}");
        assert_eq!(link.server.next_seq, s.acked, "seed {seed}: the collector stored what was acked");
        assert_eq!(link.server.stored_other, 1, "seed {seed}: the heartbeat");
        assert_eq!(link.server.app.len(), accepted.len(), "seed {seed}");
        for i in &accepted {
            assert_eq!(link.server.app.get(i), Some(&1), "seed {seed}: record {i} stored exactly once");
        }
        assert!(s.connections >= 1, "seed {seed}");
        reconnects += s.connections - 1;
        refusals += refused;
        let _ = now;
        assert_eq!(unsafe { ea_agent_deinit(a) }, EA_OK);
    }
    // The scenario exercised what it is for.
    assert!(reconnects >= seeds, "reconnects: {reconnects}");
    assert!(refusals > 0, "no push was ever refused");
}

#[test]
fn records_from_an_intake_filled_by_another_thread_arrive_in_order() {
    const N: u32 = 20_000;
    let mut m = start(8192);
    let mut buf = vec![0u8; 32 * (EA_INTAKE_SLOT_OVERHEAD + 8)];
    let mut q = Box::new(ea_intake { _opaque: [0; EA_INTAKE_STORAGE_WORDS] });
    assert_eq!(unsafe { ea_intake_init(&mut *q, size_of::<ea_intake>(), buf.as_mut_ptr(), buf.len(), 8) }, EA_OK);
    let qp = &*q as *const ea_intake as usize;
    let producer = std::thread::spawn(move || {
        let q = qp as *const ea_intake;
        let mut full = 0u32;
        let mut i = 0u32;
        while i < N {
            let mut p = [0u8; 8];
            p[..4].copy_from_slice(&i.to_le_bytes());
            match unsafe { ea_intake_push(q, APP_TYPE, u64::from(i), p.as_ptr(), p.len()) } {
                EA_OK => i += 1,
                EA_INTAKE_FULL => {
                    full += 1;
                    std::thread::yield_now();
                }
                r => panic!("intake push: {r:?}"),
            }
        }
        full
    });
    let mut link = Link { up: false, server: Collector::new() };
    let mut rng = Rng(7);
    let mut now = 0;
    let a = &mut *m.agent as *mut ea_agent;
    assert_eq!(unsafe { ea_agent_handle_timeout(a, now) }, EA_OK);
    let mut counters = ea_intake_counters::default();
    for _ in 0..10_000_000 {
        now += 1;
        let mut drained = 0;
        assert_eq!(unsafe { ea_agent_drain_intake(a, now, &*q, &mut drained) }, EA_OK);
        assert!(drained <= 32, "one pass at most");
        assert_eq!(unsafe { ea_agent_handle_timeout(a, now) }, EA_OK);
        outputs(&mut m, &mut link, now, &mut rng);
        assert_eq!(unsafe { ea_intake_stats(&*q, &mut counters) }, EA_OK);
        if counters.pushed == N && counters.queued == 0 && stats(&m).drained != 0 {
            break;
        }
    }
    let full = producer.join().unwrap();
    let s = stats(&m);
    assert_eq!((counters.pushed, counters.drained, counters.dropped_full), (N, N, full));
    assert_eq!(s.pushed, u64::from(N) + 1, "every intake record reached the ring (+ the heartbeat)");
    assert_eq!(s.dropped_full, 0, "a full ring leaves records in the intake, it does not drop them");
    assert_eq!(link.server.app.len() as u32, N);
    assert!(link.server.app.values().all(|c| *c == 1));
    assert!(link.server.order.windows(2).all(|w| w[0] < w[1]), "stored in push order");
    let _ = null_mut::<u8>();
}

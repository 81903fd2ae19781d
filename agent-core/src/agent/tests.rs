//! Unit tests of the session. Where a test needs a server it talks to the
//! shared test peer (`edge_testkit::peer`, the collector of the driver
//! tests and the fleet simulation too) through the kit's clockless link
//! ([`Pair`]); events are compared as values ([`Ev`]); frames a test
//! injects on purpose (a wrong resume point, a Reject, an Ack beyond what was
//! sent) are scripted with [`deliver`].

use super::*;
use crate::backoff::BackoffConfig;
use crate::ring::RingConfig;
use crate::wire::message::{Accept, Ack, Close, Message, Ping, Pong};
use crate::time::Tick32;
use std::vec::Vec;

// The kit's peer and events speak agent-core's library build, a second
// copy of this crate: its types are named through `kit_core`.
use edge_testkit::agent_core as kit_core;
use edge_testkit::events::Ev;
use edge_testkit::pair::{Link as Pair, Side};
use edge_testkit::peer::{self, Note, PeerConfig};
use kit_core::DisconnectReason as Reason;

mod backpressure;
mod control_frames;
mod heartbeat_records;

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

struct Mem {
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
}

impl Mem {
    fn new() -> Self {
        Mem { ring: vec![0; 4096], rx: vec![0; 2048], events: vec![0; 1024] }
    }
    fn agent(&mut self, cfg: AgentConfig) -> Agent<'_> {
        let storage = AgentStorage { ring: &mut self.ring, rx: &mut self.rx, events: &mut self.events };
        Agent::new(cfg, ID, storage).unwrap()
    }
}

fn cfg() -> AgentConfig {
    AgentConfig {
        ring: RingConfig { max_record: 384, ..Default::default() },
        batch_max_bytes: 1024,
        window_bytes: 2048,
        rng_seed: 42,
        ..Default::default()
    }
}

/// What the agent sent, decoded (owned copies of what tests look at).
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Hello { first_unacked: u64, next_seq: u64 },
    Batch { first_seq: u64, records: Vec<(u32, Vec<u8>)> },
    Ping(u64),
    Pong(u64),
    Close(u16),
    Other(u8),
}

fn transmit_all(a: &mut Agent<'_>, now: u64) -> Vec<Sent> {
    let mut out = [0u8; 2048];
    let mut sent = Vec::new();
    loop {
        let n = a.poll_transmit(Instant(now), &mut out);
        if n == 0 {
            return sent;
        }
        sent.push(decode_sent(&out[..n]));
    }
}

/// One whole frame the agent wrote, decoded.
fn decode_sent(bytes: &[u8]) -> Sent {
    let mut store = vec![0u8; 4096];
    let mut dec = FrameDecoder::new(&mut store);
    let Feed::Frame { frame, remaining } = dec.feed(bytes) else { panic!("agent sent a partial frame") };
    assert!(remaining.is_empty());
    match Message::decode(&frame).unwrap() {
        Message::Hello(h) => Sent::Hello { first_unacked: h.first_unacked_seq, next_seq: h.next_seq },
        Message::Batch(b) => Sent::Batch {
            first_seq: b.first_seq,
            records: b.iter().map(|r| r.unwrap()).map(|r| (r.data_type, r.payload.to_vec())).collect(),
        },
        Message::Ping(p) => Sent::Ping(p.nonce),
        Message::Pong(p) => Sent::Pong(p.nonce),
        Message::Close(c) => Sent::Close(c.code),
        m => Sent::Other(m.kind() as u8),
    }
}

/// The agent's queued events, owned and comparable by value.
fn events(a: &mut Agent<'_>) -> Vec<Ev> {
    let mut v = Vec::new();
    while let Some(e) = Side::poll_event(a) {
        v.push(e);
    }
    v
}

fn deliver(a: &mut Agent<'_>, now: u64, msg: Message<'_>) {
    let mut buf = [0u8; 1024];
    let n = msg.encode(0, &mut buf).unwrap();
    a.handle_received(Instant(now), &buf[..n]);
}

/// `code` as the kit's agent-core names it.
fn kit_close_code(code: CloseCode) -> kit_core::message::CloseCode {
    kit_core::message::CloseCode::from_u16(code as u16).expect("the same codes in both copies")
}

/// This build's agent as a [`Side`] of the kit's [`Pair`] (the test peer on
/// an instant, lossless link; no clock: each call passes the instant).
///
/// The kit is built against agent-core's library, a second copy of this
/// crate: its events are converted through their serde form, which both
/// copies share.
impl Side for Agent<'_> {
    fn transmit_len(&self) -> usize {
        Agent::transmit_len(self)
    }
    fn poll_transmit(&mut self, now: u64, out: &mut [u8]) -> usize {
        Agent::poll_transmit(self, Instant(now), out)
    }
    fn handle_received(&mut self, now: u64, bytes: &[u8]) {
        Agent::handle_received(self, Instant(now), bytes)
    }
    fn handle_connected(&mut self, now: u64) {
        Agent::handle_connected(self, Instant(now))
    }
    fn poll_event(&mut self) -> Option<Ev> {
        let e = Agent::poll_event(self)?;
        let mut buf = [0u8; 2048];
        let bytes = postcard::to_slice(&e, &mut buf).expect("an event fits 2 KiB");
        let theirs: kit_core::Event<'_> = postcard::from_bytes(bytes).expect("both copies share the event's serde form");
        Some(Ev::from(theirs))
    }
    fn poll_timeout(&self) -> Option<u64> {
        Agent::poll_timeout(self).map(|t| t.0)
    }
    fn handle_timeout(&mut self, now: u64) {
        Agent::handle_timeout(self, Instant(now))
    }
    fn is_drained(&self) -> bool {
        Agent::is_drained(self)
    }
}

/// One attempt at `t` against `p`: the backoff timer fires, a transport
/// opens, the Hello goes up and the peer's answer comes down.
fn attempt(a: &mut Agent<'_>, p: &mut Pair, t: u64) {
    a.handle_timeout(Instant(t));
    events(a);
    p.open();
    a.handle_connected(Instant(t));
    p.uplink(a, t);
    assert!(p.downlink(a, t), "the peer answers the Hello");
}

/// Drives an agent to Connected at `t`: the test peer answers its Hello,
/// resuming at `next`. Returns the pair, for tests that go on with the peer.
fn connect(a: &mut Agent<'_>, t: u64, next: u64) -> Pair {
    let mut p = Pair::default();
    p.peer.set_next_accept(ID.agent_id, next);
    a.handle_timeout(Instant(t));
    let ev = events(a);
    assert!(ev.iter().any(|e| matches!(e, Ev::Connect { .. })), "{ev:?}");
    p.open();
    a.handle_connected(Instant(t));
    let notes = p.uplink(a, t);
    assert!(matches!(notes.first(), Some(Note::Hello { .. })), "{notes:?}");
    assert!(p.downlink(a, t));
    assert_eq!(a.state(), StateKind::Connected);
    assert!(events(a).iter().any(|e| matches!(e, Ev::Connected { .. })));
    p
}

fn batches(sent: &[Sent]) -> Vec<(u64, usize)> {
    sent.iter()
        .filter_map(|s| match s {
            Sent::Batch { first_seq, records } => Some((*first_seq, records.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn agent_state_fits_budget() {
    let size = core::mem::size_of::<Agent<'static>>();
    // The measured size is reported in NOTES.md, not in doc comments.
    eprintln!("size_of::<Agent>() = {size}");
    assert!(size <= 1536, "Agent is {size} bytes");
}

#[test]
fn rejects_bad_config() {
    let mut m = Mem::new();
    let bad = AgentConfig { heartbeat_interval: Duration::from_millis(999), ..cfg() };
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    assert_eq!(Agent::new(bad, ID, s).err(), Some(ConfigError::HeartbeatTooFrequent));
    let bad = AgentConfig { ring: RingConfig { max_record: 383, ..Default::default() }, ..cfg() };
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    assert_eq!(Agent::new(bad, ID, s).err(), Some(ConfigError::MaxRecordTooSmall));
    let bad = AgentConfig { batch_max_bytes: 100, ..cfg() };
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    assert_eq!(Agent::new(bad, ID, s).err(), Some(ConfigError::BatchTooSmall));
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx[..10], events: &mut m.events };
    assert_eq!(Agent::new(cfg(), ID, s).err(), Some(ConfigError::RxBufferTooSmall));
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let id = Identity { extranet_ipv6: &[0; 15], ..ID };
    assert_eq!(Agent::new(cfg(), id, s).err(), Some(ConfigError::BadAddressList));
}

/// Item 6 of the hardening issue: a zero backoff made a refused connect
/// spin at one instant.
#[test]
fn zero_backoff_is_refused() {
    let mut m = Mem::new();
    for (base, cap) in [(0, 1000), (500, 0)] {
        let backoff = BackoffConfig { base: Duration(base), cap: Duration(cap), ..Default::default() };
        let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
        assert_eq!(Agent::new(AgentConfig { backoff, ..cfg() }, ID, s).err(), Some(ConfigError::ZeroBackoff));
    }
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let zero_step = AgentConfig { max_clock_step: Duration::ZERO, ..cfg() };
    assert_eq!(Agent::new(zero_step, ID, s).err(), Some(ConfigError::ZeroInterval));
}

/// Item 8: storage too small for what the agent must hold is refused.
#[test]
fn too_small_event_queue_or_ring_is_refused() {
    let mut m = Mem::new();
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events[..crate::events::MIN_EVENT_QUEUE - 1] };
    assert_eq!(Agent::new(cfg(), ID, s).err(), Some(ConfigError::EventQueueTooSmall));
    let s = AgentStorage { ring: &mut m.ring[..384 + 24], rx: &mut m.rx, events: &mut m.events };
    assert_eq!(Agent::new(cfg(), ID, s).err(), Some(ConfigError::RingTooSmall));
    // The smallest accepted queue still connects.
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events[..crate::events::MIN_EVENT_QUEUE] };
    let mut a = Agent::new(cfg(), ID, s).unwrap();
    connect(&mut a, 0, 0);
}

/// Item 8: a Hello larger than the transmit buffer the agent prescribed
/// never went out; the prescription now counts the Hello, and a Hello
/// collectors need not accept is refused at init.
#[test]
fn hello_larger_than_a_batch_still_goes_out() {
    let mut m = Mem::new();
    let token = [b't'; 600];
    let id = Identity { auth_token: &token, ..ID };
    let small = AgentConfig { batch_max_bytes: 512, ..cfg() };
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let mut a = Agent::new(small, id, s).unwrap();
    assert!(a.transmit_len() >= hello_frame_max_len(&id));
    assert!(a.transmit_len() > 512 + 64, "the Hello, not the batch, sets the size");
    a.handle_timeout(Instant(0));
    events(&mut a);
    a.handle_connected(Instant(0));
    let mut out = vec![0u8; a.transmit_len()];
    let n = a.poll_transmit(Instant(0), &mut out);
    assert!(n > 600 && n <= out.len(), "Hello of {n} bytes went out");
    let huge = [b't'; MAX_HELLO_FRAME];
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let id = Identity { auth_token: &huge, ..ID };
    assert_eq!(Agent::new(cfg(), id, s).err(), Some(ConfigError::HelloTooLarge));
}

/// A rotated credential is used from the next Hello; nothing in the ring
/// is lost or renumbered.
#[test]
fn auth_token_rotates_without_losing_records() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = connect(&mut a, 0, 0);
    for i in 0..3u8 {
        a.push(Instant(0), &Record::new(2001, 0, &[i])).unwrap();
    }
    a.flush_now(Instant(0));
    let first = batches(&transmit_all(&mut a, 0));
    assert_eq!(first.len(), 1);
    assert_eq!(a.set_auth_token(b"rotated-jwt"), Ok(()));
    assert_eq!(a.set_auth_token(&[0u8; MAX_HELLO_FRAME]), Err(ConfigError::HelloTooLarge));
    // The server now takes only the new credential (it would reject the old).
    p.peer.cfg.auth_token = Some(b"rotated-jwt".to_vec());
    a.handle_disconnected(Instant(10), TransportError::Reset);
    let t = a.poll_timeout().unwrap().as_millis();
    a.handle_timeout(Instant(t));
    events(&mut a);
    p.open();
    a.handle_connected(Instant(t));
    let notes = p.uplink(&mut a, t);
    let [Note::Hello { auth_token, first_unacked_seq, next_seq, answer, .. }] = &notes[..] else { panic!("{notes:?}") };
    assert_eq!(auth_token, b"rotated-jwt");
    assert_eq!((*first_unacked_seq, *next_seq), (0, first[0].1 as u64));
    assert_eq!(*answer, peer::Answer::Accept { next_seq: 0 }, "the batch never reached the server");
    assert!(p.downlink(&mut a, t));
    a.flush_now(Instant(t));
    assert_eq!(batches(&transmit_all(&mut a, t)), first, "the same records, the same numbers");
}

#[test]
fn handshake_then_flush_by_time_and_ack() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    assert_eq!(a.poll_timeout(), Some(Instant(0)));
    connect(&mut a, 0, 0);
    // The first heartbeat was pushed at t=0; it and a record wait for the
    // flush interval.
    a.push(Instant(10), &Record::new(2001, 5, b"hello")).unwrap();
    assert!(transmit_all(&mut a, 50).is_empty(), "not due before flush_interval");
    assert_eq!(a.poll_timeout(), Some(Instant(100)));
    a.handle_timeout(Instant(100));
    let sent = transmit_all(&mut a, 100);
    let Sent::Batch { first_seq, records } = &sent[0] else { panic!("{sent:?}") };
    assert_eq!(*first_seq, 0);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].0, data_type::AGENT_HEARTBEAT);
    assert_eq!(records[1], (2001, b"hello".to_vec()));
    assert_eq!(a.ring().inflight_records(), 2);
    deliver(&mut a, 120, Message::Ack(Ack { up_to: 1 }));
    assert!(a.is_drained());
    assert!(events(&mut a).iter().any(|e| matches!(e, Ev::Delivered { acked_total: 2, .. })));
}

#[test]
fn full_batch_goes_at_once() {
    let mut m = Mem::new();
    let mut a = m.agent(AgentConfig { batch_max_records: 4, ..cfg() });
    connect(&mut a, 0, 0);
    for i in 0..3u8 {
        a.push(Instant(1), &Record::new(2001, 1, &[i])).unwrap();
    }
    // Heartbeat + 3 records = 4 = batch_max_records: sent before the flush interval.
    assert_eq!(batches(&transmit_all(&mut a, 1)), vec![(0, 4)]);
}

#[test]
fn one_ping_per_idle_period_and_rtt() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = connect(&mut a, 0, 0);
    let mut pings = 0;
    let mut t = 0;
    // A responsive server for 60 s, stepping 100 ms: one ping per 15 s. Its
    // answers (acks, pongs) arrive 20 ms after what they answer.
    while t < 60_000 {
        t += 100;
        a.handle_timeout(Instant(t));
        pings += p.uplink(&mut a, t).iter().filter(|n| matches!(n, Note::Ping(_))).count();
        p.downlink(&mut a, t + 20);
        let _ = events(&mut a);
    }
    // Frames (acks of heartbeats) count as life too, so pings only come
    // after 15 s with nothing received: at most 4 in 60 s, at least 1.
    assert!((1..=4).contains(&pings), "pings = {pings}");
    assert_eq!(a.stats().last_rtt_ms, Some(20));
    assert_eq!(a.state(), StateKind::Connected);
}

#[test]
fn silent_server_is_detected_and_backoff_is_bounded() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    let _ = transmit_all(&mut a, 0);
    // Nothing received for the idle timeout: one ping.
    a.handle_timeout(Instant(15_000));
    let sent = transmit_all(&mut a, 15_000);
    assert_eq!(sent.iter().filter(|s| matches!(s, Sent::Ping(_))).count(), 1);
    // Polling again sends no second ping.
    assert!(transmit_all(&mut a, 15_001).iter().all(|s| !matches!(s, Sent::Ping(_))));
    assert_eq!(a.poll_timeout(), Some(Instant(20_000)));
    a.handle_timeout(Instant(20_000));
    assert_eq!(a.state(), StateKind::Backoff);
    assert_eq!(transmit_all(&mut a, 20_000), vec![Sent::Close(CloseCode::Timeout as u16)]);
    assert!(events(&mut a).iter().any(|e| *e == Ev::disconnect(Reason::PongTimeout)));
    // The heartbeat was in flight: one shrink step.
    assert_eq!(a.core.shrink, 1);
    let r = a.last_retry().unwrap();
    assert_eq!(r.ceiling, Duration(500));
    assert!(r.delay <= r.ceiling);
    // The heartbeat sent but not acked is back in the pending region.
    assert_eq!(a.ring().inflight_records(), 0);
    assert_eq!(a.ring().pending_records(), 1);
}

#[test]
fn rejects_grow_backoff_and_rotate_endpoints() {
    let mut m = Mem::new();
    let backoff = BackoffConfig { endpoints: 2, attempts_per_endpoint: 2, give_up_after: 5, ..Default::default() };
    let mut a = m.agent(AgentConfig { backoff, ..cfg() });
    let busy = peer::Refusal { code: kit_core::message::CloseCode::Busy, retry_after_ms: 0 };
    let mut p = Pair::new(PeerConfig { reject: Some(busy), ..PeerConfig::default() });
    let mut t = 0;
    let mut endpoints = Vec::new();
    for attempt in 1..=5u32 {
        a.handle_timeout(Instant(t));
        let ev = events(&mut a);
        assert!(matches!(ev[0], Ev::Connect { .. }), "{ev:?}");
        endpoints.push(a.endpoint().unwrap());
        let id = p.open();
        a.handle_connected(Instant(t));
        p.uplink(&mut a, t);
        assert!(p.downlink(&mut a, t), "the peer rejects");
        assert!(!p.peer.is_open(id), "and closes");
        let ev = events(&mut a);
        assert_eq!(ev[0], Ev::disconnect(Reason::Rejected));
        if attempt == 5 {
            assert_eq!(a.state(), StateKind::GaveUp);
            assert_eq!(ev[1], Ev::GaveUp);
            break;
        }
        let r = a.last_retry().unwrap();
        assert_eq!(r.ceiling, Duration(500 << (attempt - 1)));
        assert!(r.delay <= r.ceiling);
        // The next attempt is due exactly after the drawn delay (or at the
        // next heartbeat, whichever is first).
        let next = a.poll_timeout().unwrap().as_millis();
        assert_eq!(next, (t + r.delay.as_millis()).min(60_000));
        t += r.delay.as_millis();
    }
    assert_eq!(endpoints, vec![0, 0, 1, 1, 0]);
    a.reconnect_now(Instant(t + 1));
    a.handle_timeout(Instant(t + 1));
    assert_eq!(a.state(), StateKind::Connecting);
}

#[test]
fn healthy_connection_halves_the_failure_weight() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    a.handle_disconnected(Instant(10), TransportError::Reset);
    let t = a.poll_timeout().unwrap().as_millis();
    connect(&mut a, t, 0);
    a.handle_disconnected(Instant(t + 10), TransportError::Closed);
    assert_eq!(a.last_retry().unwrap().ceiling, Duration(1000), "kicked early: the weight keeps growing");
    // Weight 2; one healthy period (30 s) halves it to 1, the loss adds 1.
    let t = a.poll_timeout().unwrap().as_millis();
    connect(&mut a, t, 0);
    a.handle_timeout(Instant(t + 30_000));
    a.handle_disconnected(Instant(t + 30_001), TransportError::TimedOut);
    assert_eq!(a.last_retry().unwrap().ceiling, Duration(1000), "halved, not reset: a restart soon after keeps its spread");
    // Two more periods: 2 -> 1 -> 0, so the next loss starts from base.
    let t = a.poll_timeout().unwrap().as_millis();
    connect(&mut a, t, 0);
    a.handle_timeout(Instant(t + 30_000));
    assert!(a.poll_timeout().unwrap().as_millis() <= t + 60_000, "the decay timer runs while there is weight");
    a.handle_timeout(Instant(t + 60_000));
    a.handle_disconnected(Instant(t + 60_001), TransportError::TimedOut);
    assert_eq!(a.last_retry().unwrap().ceiling, Duration(500));
}

/// Issue 10: the server's `Accept.retry_window_ms` sets the window of the
/// very first retry after losing a healthy connection, and keeps it flat
/// (no exponential growth past it) through an outage.
#[test]
fn accept_advice_spreads_the_first_retry_over_the_fleet_window() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = Pair::new(PeerConfig { retry_window_ms: 20_000, ..PeerConfig::default() });
    attempt(&mut a, &mut p, 0);
    assert_eq!(a.state(), StateKind::Connected);
    a.handle_timeout(Instant(40_000));
    a.handle_disconnected(Instant(40_000), TransportError::Reset);
    let r = a.last_retry().unwrap();
    assert_eq!(r.ceiling, Duration(20_000), "first retry after a healthy connection: the fleet window");
    assert!(r.delay <= r.ceiling);
    // The collector is down: refused connects keep the window at 20 s
    // (without advice it would have doubled up to the 60-s cap).
    let mut t = a.poll_timeout().unwrap().as_millis();
    for i in 0..8 {
        a.handle_timeout(Instant(t));
        events(&mut a);
        a.handle_disconnected(Instant(t), TransportError::Refused);
        assert_eq!(a.last_retry().unwrap().ceiling, Duration(20_000), "refusal {i}");
        t = a.poll_timeout().unwrap().as_millis();
    }
    // The advice survives the connection it came with, and a new Accept
    // without advice forgets it.
    assert_eq!(a.core.backoff.advice_ms(), 20_000);
    connect(&mut a, t, 0);
    a.handle_disconnected(Instant(t + 1), TransportError::Reset);
    assert_eq!(a.core.backoff.advice_ms(), 0);
}

/// Issue 10: a Busy Reject's `retry_after_ms` is a slot: the retry of the
/// same endpoint comes exactly then (not later by the agent's own draw),
/// within [MIN_BUSY_WAIT, cap]; other Rejects' values are minimums.
#[test]
fn busy_reject_is_a_slot_kept_exactly() {
    use crate::backoff::MIN_BUSY_WAIT;
    let backoff = BackoffConfig { base: Duration(10_000), cap: Duration(60_000), ..Default::default() };
    let cases = [
        (CloseCode::Busy, 2_500, 2_500, true),
        (CloseCode::Busy, 1, MIN_BUSY_WAIT.as_millis(), true),
        (CloseCode::Busy, 90_000, 60_000, true),
        (CloseCode::Unauthorized, 2_500, 2_500, false),
        // A minimum of 0 is no minimum; a minimum past the cap is the cap.
        (CloseCode::Unauthorized, 0, 0, false),
        (CloseCode::Unauthorized, 90_000, 60_000, false),
        // Busy without a slot is no slot: the draw.
        (CloseCode::Busy, 0, 0, false),
    ];
    for (code, retry_after_ms, want, exact) in cases {
        let mut m = Mem::new();
        let mut a = m.agent(AgentConfig { backoff, ..cfg() });
        let mut p = Pair::new(PeerConfig { reject: Some(peer::Refusal { code: kit_close_code(code), retry_after_ms }), ..PeerConfig::default() });
        attempt(&mut a, &mut p, 0);
        assert_eq!(a.state(), StateKind::Backoff);
        let at = a.poll_timeout().unwrap().as_millis();
        let draw = a.last_retry().unwrap().delay.as_millis();
        if exact {
            assert_eq!(at, want, "{code:?} {retry_after_ms}: the slot, not the draw of {draw} ms");
        } else {
            assert_eq!(at, want.max(draw), "{code:?}: at least retry_after, else the draw");
        }
    }
}

#[test]
fn resume_point_skips_what_the_server_has() {
    let mut m = Mem::new();
    let mut a = m.agent(AgentConfig { batch_max_records: 2, ..cfg() });
    let mut p = connect(&mut a, 0, 0);
    for i in 0..3u8 {
        a.push(Instant(0), &Record::new(2001, 0, &[i])).unwrap();
    }
    // hb + 3 records in two batches of 2; the server gets the first before
    // the cut (its Ack is lost with the connection).
    let mut out = [0u8; 2048];
    let mut frames = Vec::new();
    loop {
        let n = a.poll_transmit(Instant(0), &mut out);
        if n == 0 {
            break;
        }
        frames.push(out[..n].to_vec());
    }
    let sent: Vec<Sent> = frames.iter().map(|f| decode_sent(f)).collect();
    assert_eq!(batches(&sent), vec![(0, 2), (2, 2)]);
    let id = p.conn().unwrap();
    let notes = p.peer.handle_received(id, &frames[0]);
    assert!(matches!(notes[..], [Note::Batch { first_seq: 0, count: 2, .. }]), "{notes:?}");
    p.close();
    a.handle_disconnected(Instant(1), TransportError::Reset);
    assert_eq!(a.last_transport_error(), Some(TransportError::Reset));
    let t = a.poll_timeout().unwrap().as_millis();
    a.handle_timeout(Instant(t));
    let _ = events(&mut a);
    a.handle_connected(Instant(t));
    p.open();
    let notes = p.uplink(&mut a, t);
    let Some(Note::Hello { first_unacked_seq: 0, next_seq: 4, answer, .. }) = notes.first() else { panic!("{notes:?}") };
    // The server resumes after the first batch.
    assert_eq!(*answer, peer::Answer::Accept { next_seq: 2 });
    assert!(p.downlink(&mut a, t));
    let sent = transmit_all(&mut a, t);
    let Sent::Batch { first_seq: 2, records } = &sent[0] else { panic!("{sent:?}") };
    assert_eq!(records, &vec![(2001, vec![1u8]), (2001, vec![2u8])]);
}

#[test]
fn tasks_route_to_agent_plugins_or_get_an_error_result() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let p = a.register_plugin("scanner", "1.2").unwrap();
    connect(&mut a, 0, 0);
    let task = |object_name: &'static str, data_type, token: &'static str| {
        Message::Task(message::Task { object_name: object_name.into(), data_type, payload: b"args", token: token.into() })
    };
    deliver(&mut a, 1, task("scanner", 6000, "t1"));
    deliver(&mut a, 1, task("", data_type::SHUTDOWN_TASK, "t2"));
    deliver(&mut a, 1, task("nobody", 6000, "t3"));
    let scan = Event::Task { target: TaskTarget::Plugin(p), object_name: "scanner".into(), data_type: 6000, payload: b"args", token: "t1".into() };
    assert_eq!(a.poll_event(), Some(scan));
    assert_eq!(a.poll_event(), Some(Event::Shutdown { token: "t2".into() }));
    assert_eq!(a.poll_event(), None, "t3 is for nobody: answered, not handed out");
    assert_eq!(a.stats().tasks_unroutable, 1);
    // The server resends a task (it saw no result): not delivered twice.
    deliver(&mut a, 1, task("scanner", 6000, "t1"));
    assert!(a.poll_event().is_none());
    assert_eq!(a.stats().tasks_duplicate, 1);
    a.task_result(Instant(2), "t1", task_status::OK, "done").unwrap();
    a.handle_timeout(Instant(200));
    let sent = transmit_all(&mut a, 200);
    let Sent::Batch { records, .. } = &sent[0] else { panic!("{sent:?}") };
    let results: Vec<_> = records.iter().filter(|r| r.0 == data_type::TASK_RESULT).collect();
    assert_eq!(results.len(), 2);
    let r: TaskResult<'_> = postcard::from_bytes(&results[0].1).unwrap();
    assert_eq!((r.token.as_str(), r.status, r.message.as_str()), ("t3", task_status::UNKNOWN_TARGET, "no such plugin"));
    let r: TaskResult<'_> = postcard::from_bytes(&results[1].1).unwrap();
    assert_eq!((r.token.as_str(), r.status, r.message.as_str()), ("t1", task_status::OK, "done"));
}

/// A task the event queue has no room for is answered DROPPED, with why.
#[test]
fn task_without_queue_room_is_answered_dropped() {
    let mut m = Mem::new();
    let s = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events[..crate::events::MIN_EVENT_QUEUE] };
    let mut a = Agent::new(cfg(), ID, s).unwrap();
    connect(&mut a, 0, 0);
    let task = message::Task { object_name: "".into(), data_type: 6000, payload: b"args", token: "t9".into() };
    deliver(&mut a, 1, Message::Task(task));
    assert_eq!(a.poll_event(), None);
    assert_eq!(a.stats().events_dropped, 1);
    a.handle_timeout(Instant(200));
    let sent = transmit_all(&mut a, 200);
    let Sent::Batch { records, .. } = &sent[0] else { panic!("{sent:?}") };
    let result = records.iter().find(|r| r.0 == data_type::TASK_RESULT).unwrap();
    let r: TaskResult<'_> = postcard::from_bytes(&result.1).unwrap();
    assert_eq!((r.token.as_str(), r.status, r.message.as_str()), ("t9", task_status::DROPPED, "agent event queue full"));
}

#[test]
fn config_only_when_version_changes() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    let conf = |version| Message::Config(message::Config { name: "rules".into(), version, payload: b"{}" });
    deliver(&mut a, 1, conf("1".into()));
    deliver(&mut a, 1, conf("1".into()));
    deliver(&mut a, 1, conf("2".into()));
    let ev = events(&mut a);
    assert_eq!(ev.iter().filter(|e| matches!(e, Ev::Config { .. })).count(), 2, "{ev:?}");
}

#[test]
fn config_names_remembered_are_the_last_max_configs_in_rotation() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    let names = ["n0", "n1", "n2", "n3", "n4", "n5"];
    assert_eq!(MAX_CONFIGS, 4, "the slots below assume 4");
    let emitted = |a: &mut Agent<'_>, i: usize| {
        deliver(a, 1, Message::Config(message::Config { name: names[i].into(), version: "1".into(), payload: b"{}" }));
        events(a).iter().filter(|e| matches!(e, Ev::Config { .. })).count()
    };
    for i in 0..6 {
        assert_eq!(emitted(&mut a, i), 1, "new name {i}");
    }
    // Slots in turn 0, 1, 2, 3, 0, 1: n4, n5, n2, n3 are remembered.
    for i in [2, 3, 4, 5] {
        assert_eq!(emitted(&mut a, i), 0, "remembered {i}");
    }
    // n0 is new again and takes slot 2 (n2's), then n2 slot 3 (n3's).
    assert_eq!(emitted(&mut a, 0), 1);
    assert_eq!(emitted(&mut a, 2), 1);
    for i in [0, 2, 4, 5] {
        assert_eq!(emitted(&mut a, i), 0, "remembered {i}");
    }
    assert_eq!(emitted(&mut a, 3), 1, "n3 was replaced");
}

#[test]
fn heartbeats_at_interval_with_plugins_and_backwards_time() {
    let mut m = Mem::new();
    let mut a = m.agent(AgentConfig { heartbeat_interval: Duration::from_secs(1), ..cfg() });
    let p = a.register_plugin("scanner", "1.2").unwrap();
    a.set_plugin_status(p, 77, PluginStatus::Running).unwrap();
    a.set_host_stats(HostStats { open_fds: Some(9), ..Default::default() });
    a.handle_timeout(Instant(0));
    a.handle_timeout(Instant(999));
    a.handle_timeout(Instant(500)); // backwards: no time passes
    assert_eq!(a.ring().len(), 2, "one agent + one plugin heartbeat");
    a.handle_timeout(Instant(1000));
    assert_eq!(a.ring().len(), 4);
    // A long stall yields one heartbeat, not a burst.
    a.handle_timeout(Instant(10_500));
    assert_eq!(a.ring().len(), 6);
    assert_eq!(a.poll_timeout().map(|t| t.as_millis() <= 11_500), Some(true));
}

#[test]
fn garbage_and_unknown_kinds_are_counted_not_fatal() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    a.handle_received(Instant(1), b"\x00\x01garbage\xEA");
    let mut unknown = patched(frame_of(Message::Ping(Ping { nonce: 7 })), 3, 99);
    a.handle_received(Instant(1), &unknown);
    *unknown.last_mut().unwrap() ^= 0x40; // bad CRC
    a.handle_received(Instant(1), &unknown);
    let s = a.stats();
    assert_eq!((s.malformed, s.unknown_kinds, s.decoder_bad_crc, s.protocol_errors), (0, 1, 1, 0));
    assert!(s.decoder_skipped_bytes >= 9);
    assert_eq!(a.state(), StateKind::Connected);
}

/// What one downlink frame did to a connected (or handshaking) agent.
#[derive(Debug, PartialEq)]
struct Outcome {
    state: StateKind,
    close: Option<u16>,
    reason: Option<Ev>,
    malformed: u64,
    unknown: u64,
    protocol_errors: u64,
    incompatible: u64,
    acked: u64,
}

/// Feeds `frame` to an agent that has sent one batch of 3 records (when
/// `connected`) or only its Hello, and reports what happened.
fn outcome_of(connected: bool, frame: &[u8]) -> Outcome {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    if connected {
        connect(&mut a, 0, 0);
        for i in 0..3u8 {
            a.push(Instant(0), &Record::new(2001, 0, &[i])).unwrap();
        }
        a.flush_now(Instant(0));
        assert_eq!(batches(&transmit_all(&mut a, 0)).len(), 1);
    } else {
        a.handle_timeout(Instant(0));
        events(&mut a);
        a.handle_connected(Instant(0));
        assert!(matches!(transmit_all(&mut a, 0)[0], Sent::Hello { .. }));
    }
    events(&mut a);
    a.handle_received(Instant(1), frame);
    let close = transmit_all(&mut a, 1).into_iter().find_map(|s| if let Sent::Close(c) = s { Some(c) } else { None });
    let reason = events(&mut a).into_iter().find(Ev::is_disconnect);
    let s = a.stats();
    Outcome {
        state: a.state(),
        close,
        reason,
        malformed: s.malformed,
        unknown: s.unknown_kinds,
        protocol_errors: s.protocol_errors,
        incompatible: s.peer_incompatible,
        acked: s.acked,
    }
}

fn frame_of(msg: Message<'_>) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = msg.encode(0, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// `frame` with header byte `at` set to `value` (3: kind, 2: version) and
/// its CRC made good again.
fn patched(mut frame: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    frame[at] = value;
    let n = frame.len();
    let crc = frame::crc32c(&frame[..n - 4]);
    frame[n - 4..].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// Items 2 and 3 of the hardening issue: for every condition of the Codes
/// table the agent does what PROTOCOL.md says, one test row each.
#[test]
fn every_downlink_error_has_one_meaning() {
    let ended = |close: u16, reason: Reason, malformed: u64, protocol_errors: u64, incompatible: u64| Outcome {
        state: StateKind::Backoff,
        close: Some(close),
        reason: Some(Ev::disconnect(reason)),
        malformed,
        unknown: 0,
        protocol_errors,
        incompatible,
        acked: 0,
    };
    let protocol_error = ended(1, Reason::ProtocolError, 1, 1, 0);
    // A frame of another version: Close(Incompatible).
    let v2 = patched(frame_of(Message::Ack(Ack { up_to: 0 })), 2, 2);
    assert_eq!(outcome_of(true, &v2), ended(5, Reason::Incompatible, 0, 0, 1), "version 2");
    // A known kind whose body cannot be read: Close(ProtocolError).
    let mut buf = [0u8; 64];
    let n = frame::encode_with(Kind::Ack, 0, 0, &mut buf, |b| {
        b[0] = 0x80; // truncated varint
        Some(1)
    })
    .unwrap();
    assert_eq!(outcome_of(true, &buf[..n]), protocol_error, "malformed Ack");
    // Messages that never go collector -> agent.
    let batch = Message::Batch(message::Batch { first_seq: 0, base_ts: 0, count: 1, records: &[1, 0, 0] });
    assert_eq!(outcome_of(true, &frame_of(batch)), protocol_error, "Batch from the server");
    let tr = Message::TaskResult(TaskResult { token: "t".into(), status: 0, message: "".into() });
    assert_eq!(outcome_of(true, &frame_of(tr)), protocol_error, "TaskResult from the server");
    // Messages unexpected in the state.
    let accept = Message::Accept(Accept { next_seq: 0, max_frame: 4096, retry_window_ms: 0 });
    assert_eq!(outcome_of(true, &frame_of(accept)), protocol_error, "Accept when connected");
    let task = Message::Task(message::Task { object_name: "".into(), data_type: 7, payload: b"", token: "t1".into() });
    assert_eq!(outcome_of(false, &frame_of(task)), protocol_error, "Task before Accept");
    let ack = Message::Ack(Ack { up_to: 0 });
    assert_eq!(outcome_of(false, &frame_of(ack)), protocol_error, "Ack before Accept");
    // An Ack of records never sent: nothing freed, Close(ProtocolError).
    let beyond = Message::Ack(Ack { up_to: 4 }); // sent: a heartbeat and 3 records, 0..=3
    assert_eq!(outcome_of(true, &frame_of(beyond)), ended(1, Reason::ProtocolError, 0, 1, 0), "Ack beyond sent");
    // Resume points the agent cannot have produced.
    let resume = |next_seq| frame_of(Message::Accept(Accept { next_seq, max_frame: 4096, retry_window_ms: 0 }));
    let bad_resume = ended(1, Reason::BadResume, 0, 1, 0);
    assert_eq!(outcome_of(false, &resume(1 << 63 | 1)), bad_resume, "resume above 2^63");
    // A frame limit too small for the agent's largest record.
    let small = frame_of(Message::Accept(Accept { next_seq: 0, max_frame: min_peer_frame(&cfg()) - 1, retry_window_ms: 0 }));
    assert_eq!(outcome_of(false, &small), ended(5, Reason::Incompatible, 0, 0, 1), "max_frame below min_frame");
    // Harmless: an Ack of what is already acked, a Pong for no Ping, an
    // unknown kind. The connection goes on.
    let fine = |unknown| Outcome {
        state: StateKind::Connected,
        close: None,
        reason: None,
        malformed: 0,
        unknown,
        protocol_errors: 0,
        incompatible: 0,
        acked: 0,
    };
    let mut old_ack = frame_of(Message::Ack(Ack { up_to: 0 }));
    old_ack.extend(frame_of(Message::Pong(Pong { nonce: 5 })));
    let mut o = outcome_of(true, &old_ack);
    assert_eq!(o.acked, 1, "up_to 0 acks record 0");
    o.acked = 0;
    assert_eq!(o, fine(0));
    let unknown = patched(frame_of(Message::Ping(Ping { nonce: 7 })), 3, 64);
    assert_eq!(outcome_of(true, &unknown), fine(1), "unknown kind");
}

/// Item 2: a resume point above every sequence number the agent gave ends
/// the connection (two devices cloned with one agent id), unless the agent
/// never numbered a record (it restarted and continues from the server's).
#[test]
fn resume_beyond_what_was_sent_is_refused_unless_fresh() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    // Fresh: nothing numbered yet. The server's point is adopted.
    connect(&mut a, 0, 5000);
    a.push(Instant(0), &Record::new(2001, 0, b"x")).unwrap();
    a.flush_now(Instant(0));
    assert_eq!(batches(&transmit_all(&mut a, 0)), vec![(5000, 2)]);
    a.handle_disconnected(Instant(1), TransportError::Reset);
    let t = a.poll_timeout().unwrap().as_millis();
    a.handle_timeout(Instant(t));
    events(&mut a);
    a.handle_connected(Instant(t));
    transmit_all(&mut a, t);
    // Now the agent has numbered 5000..5001: a server at 9000 is wrong.
    deliver(&mut a, t, Message::Accept(Accept { next_seq: 9000, max_frame: 4096, retry_window_ms: 0 }));
    assert_eq!(a.state(), StateKind::Backoff);
    assert_eq!(transmit_all(&mut a, t), vec![Sent::Close(1)]);
    assert!(events(&mut a).iter().any(|e| *e == Ev::disconnect(Reason::BadResume)));
    let s = a.stats();
    assert_eq!((s.protocol_errors, s.acked), (1, 0), "nothing freed on a bad resume point");
    assert_eq!(a.ring().len(), 2);
}

#[test]
fn close_sends_close_frame_and_stays_closed() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    a.close(Instant(5));
    assert_eq!(transmit_all(&mut a, 5), vec![Sent::Close(CloseCode::Shutdown as u16)]);
    assert!(events(&mut a).iter().any(|e| *e == Ev::disconnect(Reason::Shutdown)));
    assert_eq!(a.poll_timeout(), None);
    a.handle_timeout(Instant(1_000_000));
    assert_eq!(a.state(), StateKind::Closed);
}

#[test]
fn incompatible_server_frame_size() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    a.handle_timeout(Instant(0));
    let _ = events(&mut a);
    a.handle_connected(Instant(0));
    let _ = transmit_all(&mut a, 0);
    deliver(&mut a, 0, Message::Accept(Accept { next_seq: 0, max_frame: 100, retry_window_ms: 0 }));
    assert_eq!(a.state(), StateKind::Backoff);
    assert!(events(&mut a).iter().any(|e| *e == Ev::disconnect(Reason::Incompatible)));
}

#[test]
fn no_spin_while_the_window_is_full() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg()); // window 2048 bytes, batch 1024
    connect(&mut a, 0, 0);
    for i in 0..12u8 {
        a.push(Instant(0), &Record::new(2001, 0, &[i; 250])).unwrap();
    }
    let sent = transmit_all(&mut a, 200);
    let inflight = a.ring().inflight_bytes();
    assert!(!batches(&sent).is_empty());
    assert!(a.ring().pending_records() > 0, "the window holds records back");
    assert!(inflight <= 2048 && inflight + a.ring().next_pending_len().unwrap() > 2048);
    // Nothing can be sent until an ack: the next wake-up is a real timer in
    // the future, not the (past) flush deadline.
    let next = a.poll_timeout().unwrap();
    assert!(next > Instant(200), "would spin: next timeout {next}");
    a.handle_timeout(Instant(201));
    assert!(transmit_all(&mut a, 201).is_empty());
    // An ack opens the window and the rest flows at once.
    let up_to = a.ring().first_unacked_seq() + a.ring().inflight_records() - 1;
    deliver(&mut a, 300, Message::Ack(Ack { up_to }));
    assert!(!batches(&transmit_all(&mut a, 300)).is_empty());
}

#[test]
fn task_result_truncated_at_a_char_boundary() {
    // The fleet simulation (seed 3) once found long messages refused instead
    // of truncated when max_record was below MAX_TASK_RESULT_LEN; max_record
    // is now at least MAX_HEARTBEAT_LEN (384), above it.
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let long = "é".repeat(200);
    a.task_result(Instant(0), "tok", task_status::OK, &long).unwrap();
    connect(&mut a, 0, 0);
    a.handle_timeout(Instant(100));
    let sent = transmit_all(&mut a, 100);
    let Sent::Batch { records, .. } = &sent[0] else { panic!("{sent:?}") };
    let (_, payload) = records.iter().find(|r| r.0 == data_type::TASK_RESULT).unwrap();
    assert!(payload.len() <= MAX_TASK_RESULT_LEN);
    let r: TaskResult<'_> = postcard::from_bytes(payload).unwrap();
    assert!(long.starts_with(r.message.as_str()) && r.message.len() > 240, "{}", r.message.len());
}

#[test]
fn full_event_queue_keeps_room_for_disconnect() {
    // Found by the fleet simulation: tasks filling the event queue, then a
    // Close in the same chunk, lost the Disconnect event, so the caller was
    // never told to close the transport.
    let mut m = Mem::new();
    m.events = vec![0; 58]; // two 28-byte task events and 2 bytes to spare
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    let mut wire = Vec::new();
    for token in ["t1", "t2", "t3"] {
        let task = message::Task { object_name: "".into(), data_type: 6000, payload: &[7; 12], token: token.into() };
        let mut buf = [0u8; 128];
        let n = Message::Task(task).encode(0, &mut buf).unwrap();
        wire.extend_from_slice(&buf[..n]);
    }
    let mut buf = [0u8; 64];
    let n = Message::Close(Close { code: 0, reason: "".into() }).encode(0, &mut buf).unwrap();
    wire.extend_from_slice(&buf[..n]);
    a.handle_received(Instant(1), &wire);
    assert_eq!(a.state(), StateKind::Backoff);
    let ev = events(&mut a);
    assert!(ev.iter().any(|e| matches!(e, Ev::Task { .. })), "{ev:?}");
    assert_eq!(ev.last(), Some(&Ev::disconnect(Reason::PeerClosed)), "{ev:?}");
    assert!(a.stats().events_dropped > 0);
}

/// A pong timeout shrinks the next batches only with records in flight
/// (the Ping may be queued behind them); with everything acked it does not.
#[test]
fn pong_timeout_shrinks_only_with_records_in_flight() {
    let mut m = Mem::new();
    // One heartbeat only, at the start.
    let mut a = m.agent(AgentConfig { heartbeat_interval: Duration::from_secs(3600), ..cfg() });
    let mut p = connect(&mut a, 0, 0);
    // The heartbeat goes (at the flush deadline) and is acked.
    let t = a.poll_timeout().unwrap().as_millis();
    assert!(t < 15_000);
    a.handle_timeout(Instant(t));
    p.uplink(&mut a, t);
    p.downlink(&mut a, t);
    assert_eq!(a.ring().pending_records(), 0);
    // A Ping whose Pong never comes.
    p.close();
    let t = a.poll_timeout().unwrap().as_millis();
    a.handle_timeout(Instant(t));
    assert!(transmit_all(&mut a, t).iter().any(|s| matches!(s, Sent::Ping(_))));
    assert_eq!(a.ring().inflight_records(), 0);
    let t = a.poll_timeout().unwrap().as_millis();
    a.handle_timeout(Instant(t));
    assert!(events(&mut a).iter().any(|e| *e == Ev::disconnect(Reason::PongTimeout)));
    assert_eq!(a.core.shrink, 0);
}

#[test]
fn lost_ack_is_caught_by_the_ack_timeout() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = connect(&mut a, 0, 0);
    a.push(Instant(0), &Record::new(2001, 0, b"x")).unwrap();
    a.handle_timeout(Instant(100));
    assert_eq!(batches(&transmit_all(&mut a, 100)).len(), 1, "the batch, lost on the way");
    // The peer answers pings (so liveness is happy) but never got the batch.
    let mut t = 100;
    while a.state() == StateKind::Connected {
        t = a.poll_timeout().unwrap().as_millis();
        assert!(t <= 100 + 30_000, "no ack timeout by {t}");
        a.handle_timeout(Instant(t));
        for n in p.uplink(&mut a, t) {
            assert!(matches!(n, Note::Ping(_) | Note::Close(_)), "{n:?}");
        }
        p.downlink(&mut a, t);
    }
    assert_eq!(t, 100 + 30_000);
    assert!(events(&mut a).iter().any(|e| *e == Ev::disconnect(Reason::AckTimeout)));
    assert_eq!(a.core.shrink, 1, "one shrink step");
    assert_eq!(a.ring().pending_records(), 2, "heartbeat and record go again");
}

#[test]
fn accept_before_hello_is_a_protocol_error() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    a.handle_timeout(Instant(0));
    let _ = events(&mut a);
    a.handle_connected(Instant(0));
    // The server answers before the agent sent its Hello: it answers
    // nothing, so it is not a handshake.
    deliver(&mut a, 0, Message::Accept(Accept { next_seq: 0, max_frame: 4096, retry_window_ms: 0 }));
    assert_eq!(a.state(), StateKind::Backoff);
    assert_eq!((a.stats().malformed, a.stats().protocol_errors), (1, 1));
    assert_eq!(transmit_all(&mut a, 0), vec![Sent::Close(1)]);
}

#[test]
fn control_frames_wait_for_a_buffer_that_holds_them() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    let _ = transmit_all(&mut a, 0);
    deliver(&mut a, 1, Message::Ping(Ping { nonce: 7 }));
    // Too small for any frame: nothing sent, nothing lost.
    let mut tiny = [0u8; 10];
    assert_eq!(a.poll_transmit(Instant(2), &mut tiny), 0);
    assert_eq!(transmit_all(&mut a, 2), vec![Sent::Pong(7)]);
    // A ping that could not be written is not outstanding.
    assert_eq!(a.poll_transmit(Instant(15_001), &mut tiny), 0);
    let sent = transmit_all(&mut a, 15_002);
    assert!(matches!(sent[0], Sent::Ping(_)), "{sent:?}");
    assert_eq!(a.poll_timeout(), Some(Instant(15_002 + 5_000)));
}

/// An honest server for the clock tests: runs the agent through the caller
/// instants `times` against the test peer of `p` (connecting on request,
/// accepting at its resume point, acking every batch, answering pings);
/// pushes one record per instant. Returns the number of `Connect` events
/// seen.
fn serve_through(p: &mut Pair, a: &mut Agent<'_>, times: impl IntoIterator<Item = Instant>) -> usize {
    let mut connects = 0;
    for now in times {
        a.push(now, &Record::new(2001, now.as_millis(), b"tick")).unwrap();
        a.handle_timeout(now);
        let seen = p.serve(a, now.as_millis());
        connects += seen.iter().filter(|e| matches!(e, Ev::Connect { .. })).count();
    }
    connects
}

#[test]
fn wrapping_tick32_keeps_the_agent_alive() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut tick = Tick32::default();
    // From 100 s before the 32-bit wrap to 200 s after it, one call a second.
    let start = u32::MAX - 100_000;
    let times: Vec<Instant> = (0..300u32).map(|i| tick.instant(start.wrapping_add(i * 1000))).collect();
    assert_eq!(serve_through(&mut Pair::default(), &mut a, times), 1, "one connection, never dropped");
    let s = a.stats();
    assert_eq!((s.connections, s.connect_failures, s.clock_anomalies), (1, 0, 0));
    // 300 records plus a heartbeat a minute (the first at t = 0): 5 of them.
    assert_eq!(s.pushed, 305);
    assert!(a.ring().len() <= 1 && s.acked >= 304, "{s:?}");
    assert!(a.poll_timeout().unwrap() > Instant(u64::from(u32::MAX)), "deadlines follow the extended tick");
}

#[test]
fn naive_u64_from_a_wrapping_tick_reanchors_instead_of_freezing() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    // A caller passing a wrapping 32-bit tick straight through: at the wrap
    // time seems to go back 49.7 days. The agent re-anchors and goes on.
    let start = u32::MAX - 100_000;
    let times: Vec<Instant> = (0..300u32).map(|i| Instant(u64::from(start.wrapping_add(i * 1000)))).collect();
    assert_eq!(serve_through(&mut Pair::default(), &mut a, times), 1);
    let s = a.stats();
    assert_eq!((s.connections, s.connect_failures, s.clock_anomalies), (1, 0, 1));
    assert_eq!(s.pushed, 305, "heartbeats kept their minute spacing across the wrap");
    // Deadlines are on the caller's (wrapped) clock again.
    assert!(a.poll_timeout().unwrap() < Instant(300_000));
}

#[test]
fn one_bogus_far_future_instant_does_not_pin_the_agent() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = Pair::default();
    assert_eq!(serve_through(&mut p, &mut a, (0..10u64).map(|i| Instant(i * 1000))), 1);
    a.handle_timeout(Instant(u64::MAX));
    let after_bogus = a.stats();
    // Sane time again: the agent reconnects at most once and then works.
    let connects = serve_through(&mut p, &mut a, (10..200u64).map(|i| Instant(i * 1000)));
    assert!(connects <= 1, "{connects} connects after one bogus instant");
    let s = a.stats();
    assert_eq!(a.state(), StateKind::Connected);
    assert!(a.poll_timeout().unwrap() < Instant(300_000), "poll_timeout is not pinned at the far future");
    // One extra heartbeat at most from the bogus step, then minute spacing.
    assert!(s.pushed - after_bogus.pushed <= 190 + 4, "{s:?}");
    assert!(a.ring().len() <= 1 && s.acked + 1 >= s.pushed, "{s:?}");
    assert_eq!(s.clock_anomalies, 2, "clamped once, re-anchored once");
}

/// Item 7 of the hardening issue: `Reject{retry_after_ms: u32::MAX}` made
/// the agent wait 49.7 days and blocked failover to the next endpoint.
#[test]
fn reject_retry_after_is_bounded_and_does_not_block_failover() {
    let backoff = BackoffConfig { endpoints: 2, attempts_per_endpoint: 2, cap: Duration::from_secs(60), ..Default::default() };
    let mut m = Mem::new();
    let mut a = m.agent(AgentConfig { backoff, ..cfg() });
    let busy = peer::Refusal { code: kit_core::message::CloseCode::Busy, retry_after_ms: u32::MAX };
    let mut p = Pair::new(PeerConfig { reject: Some(busy), ..PeerConfig::default() });
    let mut reject = |a: &mut Agent<'_>, t: u64| {
        attempt(a, &mut p, t);
        assert_eq!(a.state(), StateKind::Backoff);
        a.poll_timeout().unwrap().as_millis()
    };
    // First failure on endpoint 0: the next attempt, also on endpoint 0,
    // waits the server's retry_after, cut to the backoff cap.
    let t1 = reject(&mut a, 0);
    assert_eq!(a.endpoint(), Some(0));
    assert_eq!(t1, 60_000, "u32::MAX ms is cut to the 60 s cap");
    // Second failure moves to endpoint 1: endpoint 0's retry_after does not
    // hold it back (the jitter window after 2 failures is 1 s).
    let t2 = reject(&mut a, t1);
    assert_eq!(a.endpoint(), Some(1));
    assert!(t2 - t1 <= 1_000, "failover waited {} ms", t2 - t1);
}

/// Item 9: with a full ring the automatic UNKNOWN_TARGET result was refused
/// but the token remembered, so the server's resend was ignored for good.
#[test]
fn task_whose_answer_was_refused_is_answered_when_resent() {
    let mut m = Mem::new();
    m.ring.truncate(1024);
    let mut a = m.agent(cfg());
    let mut p = connect(&mut a, 0, 0);
    // Fill the ring (RejectNew) with unsent records.
    for size in [100, 10, 0] {
        while a.push(Instant(0), &Record::new(2001, 0, &[7; 100][..size])).is_ok() {}
    }
    let task = Message::Task(message::Task { object_name: "nobody".into(), data_type: 7, payload: b"", token: "t-9".into() });
    deliver(&mut a, 0, task);
    let s = a.stats();
    assert_eq!((s.tasks_unroutable, s.tasks_duplicate), (1, 0));
    // The ring drains into the peer; the server resends the task (no
    // result seen).
    let mut t = 0;
    while !a.ring().is_empty() {
        t += 100;
        a.handle_timeout(Instant(t));
        p.serve(&mut a, t);
    }
    assert!(p.peer.agent(ID.agent_id).payloads(data_type::TASK_RESULT).is_empty(), "the refused result never went");
    deliver(&mut a, t, Message::Task(message::Task { object_name: "nobody".into(), data_type: 7, payload: b"", token: "t-9".into() }));
    let s = a.stats();
    assert_eq!((s.tasks_unroutable, s.tasks_duplicate), (2, 0), "handled afresh, not ignored");
    a.flush_now(Instant(t));
    let sent = transmit_all(&mut a, t);
    let results: Vec<_> = sent
        .iter()
        .flat_map(|s| match s {
            Sent::Batch { records, .. } => records.clone(),
            _ => vec![],
        })
        .filter(|(ty, _)| *ty == data_type::TASK_RESULT)
        .collect();
    assert_eq!(results.len(), 1);
    assert!(results[0].1.starts_with(b"\x03t-9\x02"), "UNKNOWN_TARGET result for t-9: {:?}", results[0].1);
    // Now it is answered, a further resend is a duplicate.
    deliver(&mut a, t, Message::Task(message::Task { object_name: "nobody".into(), data_type: 7, payload: b"", token: "t-9".into() }));
    assert_eq!(a.stats().tasks_duplicate, 1);
}

/// A link that carries `rate` bytes per second upstream (downstream is
/// instant): every byte the agent hands over queues behind the ones before.
/// The server (the test peer) acks a batch once its last byte arrived. When the agent drops
/// the connection, bytes not yet delivered are lost (an abortive close, the
/// worst case). Runs for `secs` with a backlog of `backlog` 64-byte records
/// at t = 0 and one more pushed every `push_every_ms`; returns the agent's
/// stats.
fn run_slow_link(cfg: AgentConfig, rate: u64, secs: u64, backlog: u32, push_every_ms: u64) -> AgentStats {
    let mut m = Mem::new();
    m.ring = vec![0; 64 * 1024];
    let mut a = m.agent(cfg);
    let mut out = vec![0u8; a.transmit_len()];
    // Frames in flight on the uplink: (arrival time, bytes).
    let mut link: std::collections::VecDeque<(u64, Vec<u8>)> = Default::default();
    let mut link_free_at = 0u64;
    let mut p = Pair::new(PeerConfig { max_frame: 8192, ..PeerConfig::default() });
    let (mut t, end, mut next_push, mut seq) = (0u64, secs * 1000, 0u64, 0u32);
    for i in 0..backlog {
        let _ = a.push(Instant(0), &Record::new(2000 + i, 0, &[0; 64]));
    }
    while t < end {
        if t >= next_push {
            let mut p = [0u8; 64];
            p[..4].copy_from_slice(&seq.to_le_bytes());
            seq += 1;
            let _ = a.push(Instant(t), &Record::new(2001, t, &p));
            next_push += push_every_ms;
        }
        a.handle_timeout(Instant(t));
        for ev in events(&mut a) {
            if matches!(ev, Ev::Connect { .. }) {
                p.open();
                a.handle_connected(Instant(t));
            } else if ev.is_disconnect() {
                p.close();
                link.clear();
                link_free_at = t;
            }
        }
        loop {
            let n = a.poll_transmit(Instant(t), &mut out);
            if n == 0 {
                break;
            }
            if p.conn().is_none() {
                continue; // written after the Disconnect (a Close): dropped with the connection
            }
            link_free_at = link_free_at.max(t) + (n as u64 * 1000).div_ceil(rate);
            link.push_back((link_free_at, out[..n].to_vec()));
        }
        while link.front().is_some_and(|(at, _)| *at <= t) {
            let (_, bytes) = link.pop_front().unwrap();
            let id = p.conn().expect("bytes in flight belong to the open connection");
            p.peer.handle_received(id, &bytes);
            p.downlink(&mut a, t);
        }
        let mut next = a.poll_timeout().map_or(end, |x| x.as_millis()).min(next_push);
        if let Some((at, _)) = link.front() {
            next = next.min(*at);
        }
        t = next.max(t + 1);
    }
    a.stats()
}

/// Item 13 of the hardening issue: on a link slower than one batch per
/// `ack_timeout` (4 KiB below ~140 B/s) every connection ended in a timeout
/// (the ack timeout, or the pong timeout of a Ping queued behind the
/// batches) and resent the same batch: nothing was ever delivered (this
/// test saw 0 of 620 records acked). After such a timeout the agent now
/// halves its batch and window (down to one record) and wins back one step
/// per healthy connection.
#[test]
fn slow_link_still_delivers_after_timeouts() {
    // 100 B/s upstream, a backlog of 300 records (4 KiB batches), then a
    // 64-byte record every 4 s (about 18 B/s of the link).
    let s = run_slow_link(cfg_slow(), 100, 1200, 300, 4000);
    assert!(s.connect_failures >= 1, "the first window outlasts the liveness timeouts: {s:?}");
    assert!(s.connect_failures <= 8, "{s:?}");
    assert_eq!(s.acked, s.pushed, "backlog and new records all delivered: {s:?}");
    // Pings only after a minute of silence: the ack timeout is what fires.
    let quiet = AgentConfig { idle_timeout: Duration::from_secs(60), ..cfg_slow() };
    let s = run_slow_link(quiet, 100, 1200, 300, 4000);
    assert!(s.ack_timeouts >= 1 && s.ack_timeouts <= 8, "{s:?}");
    assert_eq!(s.acked, s.pushed, "{s:?}");
}

fn cfg_slow() -> AgentConfig {
    AgentConfig { batch_max_bytes: 4096, window_bytes: 16 * 1024, ..cfg() }
}

/// A frame larger than the agent's receive buffer (its `Hello.max_frame`)
/// is skipped and counted, and the frame after it still arrives.
#[test]
fn oversized_frame_is_skipped_and_counted() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    connect(&mut a, 0, 0);
    let mut header = frame_of(Message::Ping(Ping { nonce: 1 }))[..13].to_vec();
    header[5..9].copy_from_slice(&(m_rx_len() as u32).to_le_bytes());
    let mut stream = header;
    stream.extend(frame_of(Message::Ping(Ping { nonce: 2 })));
    a.handle_received(Instant(1), &stream);
    let s = a.stats();
    assert_eq!((s.decoder_oversized, s.frames_received, s.protocol_errors), (1, 2, 0), "the Accept and the Ping");
    assert_eq!(a.state(), StateKind::Connected);
    assert_eq!(transmit_all(&mut a, 1), vec![Sent::Pong(2)]);
}

/// The receive buffer of [`Mem::new`]: a body this long makes the frame
/// larger than the agent accepts.
fn m_rx_len() -> usize {
    Mem::new().rx.len()
}

/// Issue 15, item 8: under DropOldest the app's result was evicted before it
/// was sent (counted), the server resent the task, and the agent ignored
/// the resend because the token was remembered: unanswered forever. A
/// resend is ignored only while the app holds the task or its result is in
/// the ring.
#[cfg(feature = "drop-oldest")]
#[test]
fn task_whose_result_was_evicted_is_answered_when_resent() {
    use crate::ring::OverflowPolicy;
    let mut m = Mem::new();
    let mut c = cfg();
    c.ring.policy = OverflowPolicy::DropOldest;
    let mut a = m.agent(c);
    let _p = connect(&mut a, 0, 0);
    let task = || Message::Task(message::Task { object_name: "".into(), data_type: 6000, payload: b"args", token: "t-7".into() });
    let task_events = |a: &mut Agent<'_>| events(a).iter().filter(|e| matches!(e, Ev::Task { .. })).count();
    deliver(&mut a, 1, task());
    assert_eq!(task_events(&mut a), 1);
    // Resent while the app holds it: ignored.
    deliver(&mut a, 2, task());
    assert_eq!((task_events(&mut a), a.stats().tasks_duplicate), (0, 1));
    a.task_result(Instant(3), "t-7", task_status::OK, "done").unwrap();
    // Resent while the result waits in the ring: ignored.
    deliver(&mut a, 4, task());
    assert_eq!((task_events(&mut a), a.stats().tasks_duplicate), (0, 2));
    // The app's own records push the unsent result out (DropOldest).
    let mut n = 0u8;
    while a.ring().counters().dropped_evicted == 0 {
        a.push(Instant(5), &Record::new(2001, 5, &[n; 200][..])).unwrap();
        n = n.wrapping_add(1);
    }
    assert!(!ring_holds_result(&a, "t-7"), "the oldest never-sent record went first");
    // The server, which never saw a result, resends: handled afresh.
    deliver(&mut a, 6, task());
    assert_eq!((task_events(&mut a), a.stats().tasks_duplicate), (1, 2), "the resend is handed to the app again");
    a.task_result(Instant(7), "t-7", task_status::OK, "done").unwrap();
    assert!(ring_holds_result(&a, "t-7"));
    deliver(&mut a, 8, task());
    assert_eq!((task_events(&mut a), a.stats().tasks_duplicate), (0, 3), "answered again: a resend is a duplicate");
}

/// Whether `a`'s ring holds a TaskResult for `token` (a token shorter
/// than 128 bytes: its length is one varint byte).
#[cfg(feature = "drop-oldest")]
fn ring_holds_result(a: &Agent<'_>, token: &str) -> bool {
    let mut prefix = [0u8; 64];
    prefix[0] = token.len() as u8;
    prefix[1..=token.len()].copy_from_slice(token.as_bytes());
    a.ring().holds(data_type::TASK_RESULT, &prefix[..=token.len()])
}

/// `new` and `new_in` seed the jitter generator with the configuration's
/// `rng_seed`, as `Rng::new(rng_seed)` (build leaves it unseeded; `seed`
/// seeds it from the agent's own copy of the config), for several seeds.
#[test]
fn both_constructors_seed_the_generator_from_the_config() {
    for seed in [0, 1, 42, u64::MAX, 0x0123_4567_89AB_CDEF] {
        let c = AgentConfig { rng_seed: seed, ..cfg() };
        let mut m = Mem::new();
        let a = m.agent(c);
        assert_eq!(a.core.rng, Rng::new(seed));
        assert_eq!(a.config().rng_seed, seed);
        let mut m2 = Mem::new();
        let storage = AgentStorage { ring: &mut m2.ring, rx: &mut m2.rx, events: &mut m2.events };
        let mut slot = core::mem::MaybeUninit::uninit();
        let b = Agent::new_in(&mut slot, c, ID, storage).unwrap();
        assert_eq!(b.core.rng, Rng::new(seed));
        assert_eq!(b.config(), &c);
    }
}

/// `new` and `new_in` both carry the whole identity (`build` leaves it
/// empty; each constructor copies it in), every field distinct so a field
/// copied into another's place shows.
#[test]
fn both_constructors_carry_the_identity() {
    let id = Identity {
        agent_id: "a",
        hostname: "hh",
        product: "ppp",
        version: "vvvv",
        intranet_ipv4: &[1, 2, 3, 4],
        intranet_ipv6: &[6; 16],
        extranet_ipv4: &[7, 7, 7, 7, 7, 7, 7, 7],
        extranet_ipv6: &[8; 32],
        auth_token: b"token",
    };
    let mut m = Mem::new();
    let storage = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let a = Agent::new(cfg(), id, storage).unwrap();
    assert_eq!(a.core.id, id);
    let mut m2 = Mem::new();
    let storage = AgentStorage { ring: &mut m2.ring, rx: &mut m2.rx, events: &mut m2.events };
    let mut slot = core::mem::MaybeUninit::uninit();
    let b = Agent::new_in(&mut slot, cfg(), id, storage).unwrap();
    assert_eq!(b.core.id, id);
    let mut c = Identity::default();
    c.copy_from(&id);
    assert_eq!(c, id);
}

//! Links without carrier (PROTOCOL.md, "Links without carrier"): the agent
//! on a UART behind a serial-to-TCP gateway that reconnects after a gap,
//! talking to the test collector (`edge_testkit::peer`), which closes a
//! connection whose first frame is not a Hello, as the real collector did.
//!
//! The gateway model: while its TCP connection is up it forwards bytes both
//! ways; when the collector closes that connection, or the collector
//! restarts, it drops every byte the agent writes for `GAP`, then opens a
//! new connection. The agent never hears of any of it: `Connect` is answered
//! with `handle_connected` at once, `Disconnect` is ignored.
//!
//! * With the default link (`Link::Carrier`), the agent's parting Close
//!   after a handshake timeout leads the next connection, the collector
//!   closes it, the next Hello falls into the gap: the session never comes
//!   back (the lock-up of issue 17), reproduced here.
//! * With `Link::Carrierless` the session is back within 5 s of a collector
//!   restart, and every record is stored exactly once.

use agent_core::backoff::BackoffConfig;
use agent_core::{Agent, AgentConfig, AgentStorage, Duration, Event, Identity, Instant, Link, Record};
use edge_testkit::peer::{Peer, PeerConfig};

const ID: Identity<'static> = Identity {
    agent_id: "uart-1",
    hostname: "",
    product: "fw",
    version: "1",
    intranet_ipv4: &[],
    intranet_ipv6: &[],
    extranet_ipv4: &[],
    extranet_ipv6: &[],
    auth_token: b"",
};

/// The gateway's reconnect gap.
const GAP: u64 = 1000;
/// The simulation's step, ms.
const STEP: u64 = 5;

/// A serial-to-TCP gateway: a TCP connection to the collector, or a gap.
struct Gateway {
    conn: Option<u64>,
    reconnect_at: u64,
    next_id: u64,
    /// Bytes the agent wrote that no connection took.
    dropped: u64,
}

impl Gateway {
    fn cut(&mut self, peer: &mut Peer<'_>, now: u64) {
        if let Some(c) = self.conn.take() {
            peer.release(c);
        }
        self.reconnect_at = now + GAP;
    }
}

struct Run {
    /// When each session began (the agent's `Connected` events), ms.
    sessions: Vec<u64>,
    /// Handshakes that failed (`Disconnect` events before a `Connected`).
    failures_after_restart: u64,
    pushed: u64,
}

fn config() -> AgentConfig {
    AgentConfig {
        flush_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(1000),
        pong_timeout: Duration::from_millis(1000),
        ack_timeout: Duration::from_millis(1500),
        handshake_timeout: Duration::from_millis(1500),
        backoff: BackoffConfig { base: Duration::from_millis(100), cap: Duration::from_millis(500), ..BackoffConfig::default() },
        rng_seed: 17,
        ..AgentConfig::default()
    }
}

/// Runs `total_ms`: a record every 20 ms for `records`, the collector
/// restarted at each of `restarts` (ms).
fn run(link: Link, peer: &mut Peer<'_>, records: u64, restarts: &[u64], total_ms: u64) -> Run {
    let (mut ring, mut rx, mut events) = (vec![0u8; 16 * 1024], vec![0u8; 4096], vec![0u8; 1024]);
    let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
    let mut agent = Agent::new(config(), ID, storage).unwrap();
    agent.set_link(link);
    assert_eq!(agent.link(), link);
    let mut gw = Gateway { conn: None, reconnect_at: 0, next_id: 1, dropped: 0 };
    let mut out = vec![0u8; agent.transmit_len()];
    let mut r = Run { sessions: Vec::new(), failures_after_restart: 0, pushed: 0 };
    let mut now = 0;
    while now <= total_ms {
        let t = Instant::from_millis(now);
        if restarts.contains(&now) {
            // kill -9: its connection is gone, what it stored stays.
            gw.cut(peer, now);
        }
        if gw.conn.is_none() && now >= gw.reconnect_at {
            let id = gw.next_id;
            gw.next_id += 1;
            assert!(peer.open(id));
            gw.conn = Some(id);
        }
        if now % 20 == 0 && r.pushed < records {
            let payload = r.pushed.to_le_bytes();
            agent.push(t, &Record { data_type: 2001, timestamp_ms: now, payload: &payload }).unwrap();
            r.pushed += 1;
        }
        agent.handle_timeout(t);
        for _ in 0..16 {
            // Agent -> gateway -> collector.
            loop {
                let n = agent.poll_transmit(t, &mut out);
                if n == 0 {
                    break;
                }
                match gw.conn {
                    Some(c) => {
                        peer.handle_received(c, &out[..n]);
                    }
                    None => gw.dropped += n as u64,
                }
            }
            let mut again = false;
            while let Some(ev) = agent.poll_event() {
                match ev {
                    // The UART is always there.
                    Event::Connect { .. } => again = true,
                    Event::Connected { .. } => r.sessions.push(now),
                    Event::Disconnect { .. } if restarts.iter().any(|&x| x <= now) => r.failures_after_restart += 1,
                    _ => {}
                }
            }
            if again {
                agent.handle_connected(t);
            }
            // Collector -> gateway -> agent; a connection the collector
            // closed is cut after its last bytes.
            let mut got = false;
            if let Some(c) = gw.conn {
                let bytes = peer.transmit_all(c);
                if !bytes.is_empty() {
                    agent.handle_received(t, &bytes);
                    got = true;
                }
                if !peer.is_open(c) {
                    gw.cut(peer, now);
                }
            }
            if !again && !got {
                break;
            }
        }
        now += STEP;
    }
    r
}

#[test]
fn with_parting_frames_a_gateway_gap_locks_the_session_up() {
    let mut store = edge_testkit::peer::storage(4, 4096);
    let mut peer = Peer::new(PeerConfig::default(), &mut store);
    let r = run(Link::Carrier, &mut peer, 300, &[3000], 60_000);
    let after: Vec<_> = r.sessions.iter().filter(|&&t| t > 3000).collect();
    assert_eq!(r.sessions.len(), 1, "one session before the restart, none after: {:?}", r.sessions);
    assert!(after.is_empty());
    assert!(r.failures_after_restart >= 20, "handshake after handshake failed ({})", r.failures_after_restart);
    assert!(peer.agent("uart-1").records.len() < 300, "records stuck in the agent");
    // The parting Closes led the collector's new connections.
    assert!(peer.closes_received.len() >= 10, "{} Closes reached the collector", peer.closes_received.len());
}

#[test]
fn carrierless_the_session_is_back_within_5_s_of_each_restart_and_every_record_arrives_once() {
    let mut store = edge_testkit::peer::storage(4, 4096);
    let mut peer = Peer::new(PeerConfig::default(), &mut store);
    let restarts = [3000, 9000, 15_000];
    let records = 1000; // 20 s of records: restarts while records flow
    let r = run(Link::Carrierless, &mut peer, records, &restarts, 40_000);
    for &at in &restarts {
        let back = r.sessions.iter().find(|&&t| t > at).unwrap_or_else(|| panic!("no session after the restart at {at}: {:?}", r.sessions));
        eprintln!("restart at {at} ms: session back after {} ms", back - at);
        assert!(back - at <= 5000, "session back {} ms after the restart at {at}", back - at);
    }
    assert!(peer.closes_received.is_empty(), "the agent wrote no Close: {:?}", peer.closes_received);
    let log = peer.agent("uart-1");
    // The peer stores each sequence number once; every record is there, in order.
    let ours = log.payloads(2001);
    assert_eq!(ours.len() as u64, records, "every record stored");
    for (i, p) in ours.iter().enumerate() {
        assert_eq!(*p, (i as u64).to_le_bytes(), "record {i} intact and in order");
    }
    assert_eq!(log.next, log.records.len() as u64, "no gap in the sequence");
    assert_eq!(log.dup_mismatches, 0);
    assert_eq!(log.gaps, 0);
}

#[test]
fn carrierless_skips_frames_of_the_previous_stream_while_handshaking() {
    use agent_core::message::{Ack, Accept, Message};
    let (mut ring, mut rx, mut events) = (vec![0u8; 4096], vec![0u8; 1024], vec![0u8; 256]);
    let mut agent = Agent::new(config(), ID, AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events }).unwrap();
    agent.set_link(Link::Carrierless);
    let t = Instant::from_millis(0);
    agent.handle_timeout(t);
    while agent.poll_event().is_some() {}
    agent.handle_connected(t);
    let mut out = [0u8; 2048];
    assert!(agent.poll_transmit(t, &mut out) > 0, "the Hello");
    let mut frame = [0u8; 64];
    // A late Ack of the old stream: skipped, not a protocol error.
    let n = Message::Ack(Ack { up_to: 5 }).encode(0, &mut frame).unwrap();
    agent.handle_received(t, &frame[..n]);
    assert!(agent.poll_event().is_none(), "no Disconnect");
    assert_eq!(agent.stats().decoder_skipped_bytes, n as u64);
    let accept = Accept { next_seq: 0, max_frame: 4096, retry_window_ms: 0 };
    let n = Message::Accept(accept).encode(1, &mut frame).unwrap();
    agent.handle_received(t, &frame[..n]);
    assert!(matches!(agent.poll_event(), Some(Event::Connected { .. })));
}

//! The kit's [`Pair`] (`edge_testkit::pair`): an agent and the test peer on
//! one simulated clock. `drive` steps both to each wake-up until the agent
//! is drained, `drive_for` through a span of simulated time; both are
//! bounded, and the same test gives the same steps.

use agent_core::backoff::BackoffConfig;
use agent_core::message::CloseCode;
use agent_core::{Agent, AgentConfig, AgentStorage, DisconnectReason, Identity, Record};
use edge_testkit::events::Ev;
use edge_testkit::pair::Pair;
use edge_testkit::peer::{PeerConfig, Refusal};

const ID: Identity<'static> = Identity {
    agent_id: "pair-1",
    hostname: "h",
    product: "p",
    version: "1",
    intranet_ipv4: &[],
    intranet_ipv6: &[],
    extranet_ipv4: &[],
    extranet_ipv6: &[],
    auth_token: b"",
};

struct Mem {
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
}

impl Mem {
    fn new() -> Mem {
        Mem { ring: vec![0; 16 * 1024], rx: vec![0; 4096], events: vec![0; 1024] }
    }
    fn agent(&mut self, cfg: AgentConfig) -> Agent<'_> {
        let storage = AgentStorage { ring: &mut self.ring, rx: &mut self.rx, events: &mut self.events };
        Agent::new(cfg, ID, storage).unwrap()
    }
}

fn cfg() -> AgentConfig {
    AgentConfig { rng_seed: 7, ..AgentConfig::default() }
}

/// Pushes `n` records into a fresh pair and drives it; the events, the
/// clock at the end and the payloads the peer stored.
fn deliver(n: u8) -> (Vec<Ev>, u64, Vec<Vec<u8>>) {
    let mut m = Mem::new();
    let mut p = Pair::new(m.agent(cfg()), PeerConfig::default(), 1_000);
    for i in 0..n {
        p.agent.push(agent_core::Instant(1_000), &Record::new(2001, 1_000, &[i])).unwrap();
    }
    let seen = p.drive();
    assert!(p.agent.is_drained(), "drive stops once every record is acked: {seen:?}");
    let stored = p.link.peer.agent(ID.agent_id).payloads(2001);
    (seen, p.now(), stored)
}

#[test]
fn drive_delivers_every_record_and_stops_when_drained() {
    let (seen, now, stored) = deliver(50);
    assert_eq!(stored, (0..50u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(seen[..2], [Ev::Connect { endpoint: 0 }, Ev::Connected { endpoint: 0 }]);
    let delivered = seen.iter().rev().find(|e| e.is_delivered());
    assert!(matches!(delivered, Some(Ev::Delivered { acked_total: 51, .. })), "50 records and a heartbeat: {seen:?}");
    assert!(!seen.iter().any(Ev::is_disconnect), "{seen:?}");
    assert!(now > 1_000, "the clock moved to the wake-ups that sent the batches");
    // Deterministic: the same test, the same steps.
    assert_eq!(deliver(50), (seen, now, stored));
}

#[test]
fn drive_for_ends_exactly_at_its_span_and_keeps_an_idle_session_alive() {
    let mut m = Mem::new();
    let mut p = Pair::new(m.agent(cfg()), PeerConfig::default(), 0);
    let first = p.drive_for(100);
    assert_eq!(p.now(), 100);
    assert_eq!(first[..2], [Ev::Connect { endpoint: 0 }, Ev::Connected { endpoint: 0 }]);
    // Ten idle minutes: pings answered, heartbeats acked, never dropped.
    let idle = p.drive_for(600_000);
    assert_eq!(p.now(), 600_100);
    assert!(!idle.iter().any(|e| e.is_disconnect() || matches!(e, Ev::Connect { .. })), "{idle:?}");
    assert_eq!(p.link.opened(), 1, "one connection throughout");
    let s = p.agent.stats();
    assert!(s.acked >= 1, "heartbeats acked: {s:?}");
    assert_eq!(s.last_rtt_ms, Some(0), "a ping answered on the instant link");
    assert_eq!(p.link.peer.agent(ID.agent_id).hellos, 1);
}

#[test]
fn drive_is_bounded_when_the_agent_never_drains() {
    let mut m = Mem::new();
    let backoff = BackoffConfig { give_up_after: 0, ..BackoffConfig::default() };
    let busy = Refusal { code: CloseCode::Busy, retry_after_ms: 0 };
    let mut p = Pair::new(m.agent(AgentConfig { backoff, ..cfg() }), PeerConfig { reject: Some(busy), ..PeerConfig::default() }, 0);
    p.agent.push(agent_core::Instant(0), &Record::new(2001, 0, b"x")).unwrap();
    p.max_steps = 40;
    let seen = p.drive();
    assert!(!p.agent.is_drained(), "every Hello refused: nothing acked");
    let rejected = seen.iter().filter(|e| **e == Ev::disconnect(DisconnectReason::Rejected)).count();
    assert!(rejected >= 10, "it went on retrying, {rejected} refusals: {seen:?}");
    assert!(p.link.opened() <= 41, "at most one connection per wake-up, and the one at the start");
}

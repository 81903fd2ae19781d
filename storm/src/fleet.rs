//! The real agents: `agent_core::Agent` at `AgentConfig::default()` (only
//! `rng_seed` differs, one per agent), each in its own caller-owned memory,
//! driven in the documented call order after every input: `poll_transmit`
//! until 0, `poll_event` until `None`, then `poll_timeout`.

use agent_core::{Agent, AgentConfig, AgentStorage, Event, Identity, Instant, TransportError};

use crate::client::Clients;
use crate::net::{Net, Payload};

/// Send ring per agent (room for a few heartbeats while disconnected).
pub const RING_BYTES: usize = 4096;
/// Receive buffer per agent (the collector's frames are small).
pub const RX_BYTES: usize = 1024;
/// Event queue per agent.
pub const EVENT_BYTES: usize = 512;
/// The transmit buffer given to `poll_transmit` (shared: one agent at a time).
const TX_BYTES: usize = 8192;

/// The memory of a fleet of agents, allocated before the agents so that
/// they can borrow it: three buffers per agent, cut from three blocks.
pub struct FleetMemory {
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
}

impl FleetMemory {
    /// Memory for `n` agents.
    pub fn new(n: usize) -> FleetMemory {
        FleetMemory { ring: vec![0; n * RING_BYTES], rx: vec![0; n * RX_BYTES], events: vec![0; n * EVENT_BYTES] }
    }
}

/// `N` real agents.
pub struct Fleet<'a> {
    agents: Vec<Agent<'a>>,
    tx: Vec<u8>,
}

impl<'a> Fleet<'a> {
    /// One agent per id, with the matching jitter seed, each in its share of `mem`.
    pub fn new(mem: &'a mut FleetMemory, ids: &'a [String], seeds: &[u64]) -> Fleet<'a> {
        let FleetMemory { ring, rx, events } = mem;
        let buffers = ring.chunks_mut(RING_BYTES).zip(rx.chunks_mut(RX_BYTES)).zip(events.chunks_mut(EVENT_BYTES));
        let agents: Vec<Agent<'a>> = buffers
            .zip(ids.iter().zip(seeds))
            .map(|(((ring, rx), events), (id, &rng_seed))| {
                let cfg = AgentConfig { rng_seed, ..AgentConfig::default() };
                let identity = Identity { agent_id: id, hostname: "storm", product: "edge", version: "1.0", ..Identity::default() };
                Agent::new(cfg, identity, AgentStorage { ring, rx, events }).expect("the default configuration fits this memory")
            })
            .collect();
        assert_eq!(agents.len(), ids.len(), "memory for every agent");
        let tx_len = agents.iter().map(Agent::transmit_len).max().unwrap_or(0);
        assert!(tx_len <= TX_BYTES);
        Fleet { agents, tx: vec![0; TX_BYTES] }
    }

    /// The agent `i` (read-only).
    pub fn agent(&self, i: usize) -> &Agent<'a> {
        &self.agents[i]
    }

    /// The outputs after an input, in the documented order.
    fn drive(&mut self, i: usize, now: u64, net: &mut Net) {
        let a = &mut self.agents[i];
        let t = Instant(now);
        loop {
            let n = a.poll_transmit(t, &mut self.tx);
            if n == 0 {
                break;
            }
            net.send(now, i, Payload::Frame(self.tx[..n].into()));
        }
        while let Some(ev) = a.poll_event() {
            match ev {
                Event::Connect { .. } => net.connect(now, i),
                Event::Disconnect { .. } => net.close(i),
                _ => {}
            }
        }
        net.set_timer(i, a.poll_timeout().map(|at| at.0.max(now)));
    }
}

impl Clients for Fleet<'_> {
    fn on_timer(&mut self, i: usize, now: u64, net: &mut Net) {
        self.agents[i].handle_timeout(Instant(now));
        self.drive(i, now, net);
    }

    fn on_connect(&mut self, i: usize, now: u64, ok: bool, net: &mut Net) {
        if ok {
            self.agents[i].handle_connected(Instant(now));
        } else {
            self.agents[i].handle_disconnected(Instant(now), TransportError::Refused);
        }
        self.drive(i, now, net);
    }

    fn on_payload(&mut self, i: usize, now: u64, payload: Payload, net: &mut Net) {
        if let Payload::Frame(bytes) = payload {
            self.agents[i].handle_received(Instant(now), &bytes);
        }
        self.drive(i, now, net);
    }

    fn on_lost(&mut self, i: usize, now: u64, error: TransportError, net: &mut Net) {
        self.agents[i].handle_disconnected(Instant(now), error);
        self.drive(i, now, net);
    }

    fn anomalies(&self) -> u64 {
        self.agents
            .iter()
            .map(|a| {
                let s = a.stats();
                s.protocol_errors + s.malformed + s.peer_incompatible + s.ack_timeouts + s.events_dropped + s.decoder_bad_crc
            })
            .sum()
    }
}

//! An agent and the test [`peer`](crate::peer) on one simulated clock,
//! after quinn-proto's `Pair` (`src/tests/util.rs`).
//!
//! * [`Link`]: the peer's end of one lossless, instant connection at a time.
//!   It has no clock: each call takes the instant. [`Link::serve`] runs
//!   agent and peer at one instant until nothing moves: the agent's events
//!   first (`Connect` opens a connection and is answered with
//!   `handle_connected`, `Disconnect` drops it), then frames both ways.
//! * [`Pair`]: a [`Link`], the agent and the clock. [`Pair::drive`] steps
//!   both to the next wake-up (the earlier of the two sides' timeouts; the
//!   peer has none, so the agent's), serves, and repeats until the agent is
//!   drained or [`Pair::max_steps`] wake-ups have passed;
//!   [`Pair::drive_for`] does the same for a span of simulated time.
//!
//! Time never comes from the machine: the same test gives the same steps.
//!
//! The agent is anything that is a [`Side`]:
//! [`agent_core::Agent`] is one; agent-core's own unit tests, built
//! against their own copy of the crate, implement it for theirs.

use crate::events::Ev;
use crate::peer::{Note, Peer, PeerConfig};
use agent_core::{Agent, Instant};

/// What a [`Link`] and a [`Pair`] need of an agent (times in ms on the
/// caller's clock, agent-core's `Instant`).
pub trait Side {
    /// The smallest buffer `poll_transmit` fills.
    fn transmit_len(&self) -> usize;
    /// The next frame to send at `now` into `out`; 0 when none.
    fn poll_transmit(&mut self, now: u64, out: &mut [u8]) -> usize;
    /// Bytes received at `now`.
    fn handle_received(&mut self, now: u64, bytes: &[u8]);
    /// The transport asked for by `Connect` is open.
    fn handle_connected(&mut self, now: u64);
    /// The next event, owned.
    fn poll_event(&mut self) -> Option<Ev>;
    /// When the agent next wants `handle_timeout`.
    fn poll_timeout(&self) -> Option<u64>;
    /// Time passed.
    fn handle_timeout(&mut self, now: u64);
    /// Every pushed record acked or dropped.
    fn is_drained(&self) -> bool;
}

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
        Agent::poll_event(self).map(Ev::from)
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

/// The test peer on an instant, lossless link to one agent, one connection
/// at a time; no clock (see the module docs).
pub struct Link {
    /// The peer, for knobs and assertions.
    pub peer: Peer<'static>,
    conn: Option<u64>,
    conns: u64,
}

impl Default for Link {
    /// A link to a peer of the default configuration.
    fn default() -> Link {
        Link::new(PeerConfig::default())
    }
}

impl Link {
    /// A link to a peer configured so (one decoder slot).
    pub fn new(cfg: PeerConfig) -> Link {
        Link { peer: crate::peer::leaked(cfg, 1), conn: None, conns: 0 }
    }

    /// The open connection's id, if any.
    pub fn conn(&self) -> Option<u64> {
        self.conn
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.conns
    }

    /// A new connection (the previous one, if any, is gone); its id.
    pub fn open(&mut self) -> u64 {
        self.close();
        let id = self.conns;
        self.conns += 1;
        assert!(self.peer.open(id), "the link's one decoder slot is free once the previous connection is released");
        self.conn = Some(id);
        id
    }

    /// Drops the connection, if any.
    pub fn close(&mut self) {
        if let Some(id) = self.conn.take() {
            self.peer.release(id);
        }
    }

    /// Every frame the agent has at `now`, each handed to the peer (dropped
    /// when no connection is open); what the peer did with them.
    pub fn uplink(&mut self, a: &mut impl Side, now: u64) -> Vec<Note> {
        let mut out = vec![0u8; a.transmit_len()];
        let mut notes = Vec::new();
        loop {
            let n = a.poll_transmit(now, &mut out);
            if n == 0 {
                return notes;
            }
            if let Some(id) = self.conn {
                notes.extend(self.peer.handle_received(id, &out[..n]));
            }
        }
    }

    /// What the peer wrote, handed to the agent at `now`; whether there was
    /// anything.
    pub fn downlink(&mut self, a: &mut impl Side, now: u64) -> bool {
        let Some(id) = self.conn else { return false };
        let bytes = self.peer.transmit_all(id);
        if !bytes.is_empty() {
            a.handle_received(now, &bytes);
        }
        !bytes.is_empty()
    }

    /// Runs agent and peer at `now` until nothing moves: events first
    /// (`Connect` opens a connection, `Disconnect` drops it), then frames
    /// both ways. Returns the events seen, in order.
    pub fn serve(&mut self, a: &mut impl Side, now: u64) -> Vec<Ev> {
        let mut seen = Vec::new();
        loop {
            let mut progressed = false;
            while let Some(e) = a.poll_event() {
                match e {
                    Ev::Connect { .. } => {
                        self.open();
                        a.handle_connected(now);
                        progressed = true;
                    }
                    Ev::Disconnect { .. } => self.close(),
                    _ => {}
                }
                seen.push(e);
            }
            self.uplink(a, now);
            progressed |= self.downlink(a, now);
            if !progressed {
                return seen;
            }
        }
    }
}

/// An agent and the test peer on one simulated clock (see the module docs).
pub struct Pair<A> {
    /// The agent.
    pub agent: A,
    /// The peer's end.
    pub link: Link,
    /// Bound on the wake-ups one [`Pair::drive`] or [`Pair::drive_for`]
    /// steps through (default 100 000): a test whose agent never settles
    /// ends instead of spinning.
    pub max_steps: usize,
    now: u64,
}

impl<A: Side> Pair<A> {
    /// `agent` and a peer configured so, the clock at `start` ms.
    pub fn new(agent: A, cfg: PeerConfig, start: u64) -> Pair<A> {
        Pair { agent, link: Link::new(cfg), max_steps: 100_000, now: start }
    }

    /// The simulated time, ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The peer.
    pub fn peer(&mut self) -> &mut Peer<'static> {
        &mut self.link.peer
    }

    /// [`Link::serve`] at the current time.
    pub fn serve(&mut self) -> Vec<Ev> {
        self.link.serve(&mut self.agent, self.now)
    }

    /// One wake-up no later than `until`: the clock moves to the agent's
    /// next timeout (never backwards), `handle_timeout`, then [`Pair::serve`].
    /// `None` (clock unmoved) when the agent has no timeout or it is after
    /// `until`.
    pub fn step(&mut self, until: u64) -> Option<Vec<Ev>> {
        let t = self.agent.poll_timeout()?.max(self.now);
        if t > until {
            return None;
        }
        self.now = t;
        self.agent.handle_timeout(t);
        Some(self.serve())
    }

    /// Serves now, then steps from wake-up to wake-up until the agent is
    /// drained (every record acked or dropped), it has no timeout, or
    /// [`Pair::max_steps`] wake-ups passed. Returns every event seen.
    pub fn drive(&mut self) -> Vec<Ev> {
        let mut seen = self.serve();
        for _ in 0..self.max_steps {
            if self.agent.is_drained() {
                break;
            }
            match self.step(u64::MAX) {
                Some(evs) => seen.extend(evs),
                None => break,
            }
        }
        seen
    }

    /// Serves now, then steps through every wake-up in the next `ms`
    /// milliseconds (at most [`Pair::max_steps`]), and ends with the clock
    /// `ms` later, served there. Returns every event seen.
    pub fn drive_for(&mut self, ms: u64) -> Vec<Ev> {
        let end = self.now.saturating_add(ms);
        let mut seen = self.serve();
        for _ in 0..self.max_steps {
            match self.step(end) {
                Some(evs) => seen.extend(evs),
                None => break,
            }
        }
        self.now = self.now.max(end);
        self.agent.handle_timeout(self.now);
        seen.extend(self.serve());
        seen
    }
}

//! The network at work: a write arrives after the link's latency plus
//! jitter, in order, sometimes split into chunks a millisecond apart, and
//! corrupted or stalled while such a fault is active; everything due at one
//! instant is handed over at once (so frames also merge). A cut kills both
//! directions; an agent's close still delivers what it wrote before (like
//! TCP's orderly close).

use agent_core::events::TransportError;
use agent_core::Instant;

use super::World;
use crate::faults::corrupt_bytes;
use crate::link::{Conn, Dir, Link};

impl<'a> World<'a> {
    /// A connect of agent `a` succeeds: a new connection, a collector slot
    /// taken (the oldest lingering connection reset when none is free).
    pub(crate) fn open_conn(&mut self, a: usize, endpoint: u8) -> u64 {
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        if !self.server.collector.open(id) {
            // Out of collector sockets: the oldest lingering connection of
            // any agent is reset to make room.
            let victim = self
                .conns
                .iter()
                .filter(|c| c.server_open && !c.agent_open)
                .map(|c| c.id)
                .min()
                .expect("collector out of decoder slots with no lingering connection");
            self.cut(victim, None);
            assert!(self.server.collector.open(id));
        }
        let mut c = Conn {
            id,
            agent: a,
            endpoint,
            up: Link::default(),
            down: Link::default(),
            agent_open: true,
            server_open: true,
            dead: false,
            up_fin: false,
            notify_at: None,
            accepted: false,
            accept_next: 0,
            up_corrupted: false,
            down_corruptions: 0,
            next_unsolicited: 0,
        };
        c.up.last_at = self.now;
        c.down.last_at = self.now;
        self.conns.push(c);
        id
    }

    /// Writes `bytes` on a connection: latency, jitter, stalls, corruption
    /// and chunking are applied here.
    pub(crate) fn send(&mut self, id: u64, dir: Dir, mut bytes: Vec<u8>) {
        let now = self.now;
        let Some(c) = self.conn(id) else { return };
        let a = c.agent;
        let writable = !c.dead
            && match dir {
                Dir::Up => c.agent_open && !c.up_fin,
                Dir::Down => c.server_open,
            };
        if !writable {
            return;
        }
        let mut corrupted = false;
        if let Some(pm) = self.faults.corrupt(a, dir, now) {
            if self.rng.chance(pm) {
                corrupted = true;
                corrupt_bytes(&mut self.rng, &mut bytes);
            }
        }
        let stall = self.faults.stall_until(a, dir, now);
        let (lat, jitter) = (self.sims[a].plan.lat, self.sims[a].plan.jitter);
        let earliest = now + lat + self.rng.range(0, jitter);
        let parts = match self.rng.below(10) {
            0..=6 => 1,
            7 | 8 => 2,
            _ => 3,
        }
        .min(bytes.len());
        let mut cuts: Vec<usize> = (1..parts).map(|_| self.rng.range_usize(1, bytes.len() - 1)).collect();
        cuts.sort_unstable();
        let spread: Vec<u64> = (0..parts).map(|_| self.rng.range(0, 1)).collect();
        if corrupted && dir == Dir::Down {
            self.sims[a].down_corruptions += 1;
        }
        let c = self.conn_mut(id).unwrap();
        if corrupted && dir == Dir::Up {
            c.up_corrupted = true;
        }
        if corrupted && dir == Dir::Down {
            c.down_corruptions += 1;
        }
        let link = match dir {
            Dir::Up => &mut c.up,
            Dir::Down => &mut c.down,
        };
        let busy = link.last_at > earliest;
        let mut at = earliest.max(link.last_at).max(stall);
        let mut from = 0;
        for (i, end) in cuts.into_iter().chain([bytes.len()]).enumerate() {
            if i > 0 && !busy {
                at += spread[i];
            }
            link.q.push_back((at, bytes[from..end].to_vec()));
            from = end;
        }
        link.last_at = at;
    }

    /// What is due on connection `id` at `now`: the agent's disconnect
    /// notice, deliveries either way, the collector's unprompted frames.
    pub(crate) fn conn_step(&mut self, id: u64) {
        let now = self.now;
        let Some(c) = self.conn(id) else { return };
        let a = c.agent;
        if c.notify_at.is_some_and(|x| x <= now) {
            let open = c.agent_open;
            self.conn_mut(id).unwrap().notify_at = None;
            if open && self.sims[a].conn == Some(id) {
                self.count_input(a);
                self.sims[a].agent.handle_disconnected(Instant(now), TransportError::Reset);
                self.drive(a);
            }
        }
        let c = self.conn_mut(id).unwrap();
        if c.up.head().is_some_and(|x| x <= now) {
            let bytes = c.up.take_due(now);
            if c.server_open && !c.dead {
                self.server_rx(id, &bytes);
            }
            let c = self.conn_mut(id).unwrap();
            if c.up_fin && c.up.q.is_empty() && c.server_open {
                self.server_release(id);
            }
        }
        let c = self.conn_mut(id).unwrap();
        if c.down.head().is_some_and(|x| x <= now) {
            let bytes = c.down.take_due(now);
            let open = c.agent_open && !c.dead;
            if open && self.sims[a].conn == Some(id) {
                self.count_input(a);
                self.trace(a, format_args!("rx {} bytes", bytes.len()));
                self.sims[a].agent.handle_received(Instant(now), &bytes);
                let st = self.sims[a].agent.stats();
                self.trace(a, format_args!(
                    "  -> frames {} skipped {} bad_crc {} malformed {} unknown {} bytes {:02x?}",
                    st.frames_received, st.decoder_skipped_bytes, st.decoder_bad_crc, st.malformed, st.unknown_kinds, bytes
                ));
                self.drive(a);
            }
        }
        let c = self.conn(id).unwrap();
        if c.accepted && c.server_open && !c.dead && c.next_unsolicited <= now && now < self.fault_end {
            self.unsolicited(id);
        }
    }

    /// The agent closed its transport (after a Disconnect event): what it
    /// wrote still reaches the collector, then EOF.
    pub(crate) fn close_by_agent(&mut self, id: u64) {
        let c = self.conn_mut(id).unwrap();
        c.agent_open = false;
        c.down.q.clear();
        c.notify_at = None;
        if c.dead {
            return;
        }
        c.up_fin = true;
        if c.up.q.is_empty() && c.server_open {
            self.server_release(id);
        }
    }

    /// The connection dies at once in both directions (RST, restart, cable).
    pub(crate) fn cut(&mut self, id: u64, notify: Option<u64>) {
        let now = self.now;
        let c = self.conn_mut(id).unwrap();
        c.dead = true;
        c.up.q.clear();
        c.down.q.clear();
        if c.agent_open {
            c.notify_at = notify.map(|d| now + d);
        }
        if c.server_open {
            self.server_release(id);
        }
    }
}

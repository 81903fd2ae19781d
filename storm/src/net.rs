//! The network: connections with a one-way latency per client, what travels
//! on them, and each client's one timer.
//!
//! A client's connect sends a SYN that reaches the collector `L` later; the
//! outcome (up: connected, down: refused) reaches the client `L` after that.
//! Bytes take `L` each way and arrive in order (one latency per client).
//! A connection killed by a restart drops everything still in flight on it,
//! both ways, and the client learns of the loss `L` after the restart.
//! A connection the collector closed after its last answer (Reject, or a
//! refusal) still delivers that answer. A client that has moved on to
//! another connection gets nothing more from the old one.

use agent_core::TransportError;

use crate::queue::Queue;
use crate::server::Answer;

/// What a connection carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// One whole frame (the real agent and the collector's answers to it).
    Frame(Box<[u8]>),
    /// A model client's Hello.
    Hello,
    /// The collector's answer to a model client's Hello.
    Answer(Answer),
}

/// Something that happens at an instant of the fake clock.
#[derive(Clone, Debug)]
pub enum Ev {
    /// A client's timer, valid if `gen` is still the client's generation.
    Timer {
        /// The client.
        client: u32,
        /// The generation it was set with; stale ones are skipped.
        gen: u32,
    },
    /// A SYN reaches the collector.
    Syn {
        /// The connection.
        conn: u32,
    },
    /// The connect's outcome reaches the client.
    ConnectOutcome {
        /// The connection.
        conn: u32,
        /// Connected (else refused).
        ok: bool,
    },
    /// Bytes reach the collector.
    ToServer {
        /// The connection.
        conn: u32,
        /// What.
        payload: Payload,
    },
    /// Bytes reach the client.
    ToClient {
        /// The connection.
        conn: u32,
        /// What.
        payload: Payload,
    },
    /// The client learns that its connection is gone.
    Lost {
        /// The connection.
        conn: u32,
        /// How, as the client's transport reports it.
        error: TransportError,
    },
    /// The collector goes down (every connection is cut).
    ServerDown,
    /// The collector comes back.
    ServerUp,
}

/// One connection's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conn {
    /// The client that opened it.
    pub client: u32,
    /// The collector took the SYN.
    pub accepted: bool,
    /// A restart cut it: everything in flight is dropped.
    pub killed: bool,
    /// The collector closed it after its last answer: the client's bytes
    /// are ignored, the answer still arrives.
    pub server_closed: bool,
    /// The collector's next frame counter on it.
    pub tx_seq: u32,
}

/// Connections, latencies, client timers and the event queue.
pub struct Net {
    /// Everything scheduled.
    pub queue: Queue<Ev>,
    /// Every connection ever opened, by id.
    pub conns: Vec<Conn>,
    /// Each client's current connection.
    current: Vec<Option<u32>>,
    /// Each client's one-way latency, ms.
    latency: Vec<u64>,
    gen: Vec<u32>,
    timer_at: Vec<Option<u64>>,
}

impl Net {
    /// A network for clients with these one-way latencies (ms).
    pub fn new(latency: Vec<u64>) -> Net {
        let n = latency.len();
        Net { queue: Queue::default(), conns: Vec::new(), current: vec![None; n], latency, gen: vec![0; n], timer_at: vec![None; n] }
    }

    /// `client`'s one-way latency, ms.
    pub fn latency(&self, client: usize) -> u64 {
        self.latency[client]
    }

    // ---- the clients' side ------------------------------------------------

    /// Opens a new connection for `client` (its SYN is on the way); it
    /// becomes the client's current one.
    pub fn connect(&mut self, now: u64, client: usize) {
        let conn = u32::try_from(self.conns.len()).expect("fewer than 2^32 connections");
        self.conns.push(Conn { client: client as u32, ..Conn::default() });
        self.current[client] = Some(conn);
        self.queue.push(now + self.latency[client], Ev::Syn { conn });
    }

    /// `client` sends on its current connection (nothing happens without one).
    pub fn send(&mut self, now: u64, client: usize, payload: Payload) {
        if let Some(conn) = self.current[client] {
            self.queue.push(now + self.latency[client], Ev::ToServer { conn, payload });
        }
    }

    /// `client` closes its current connection: it hears nothing more of it.
    pub fn close(&mut self, client: usize) {
        self.current[client] = None;
    }

    /// Sets `client`'s one timer to `at` (`None`: stopped). An unchanged
    /// deadline schedules nothing new; a changed one makes the old event stale.
    pub fn set_timer(&mut self, client: usize, at: Option<u64>) {
        if self.timer_at[client] == at {
            return;
        }
        self.gen[client] = self.gen[client].wrapping_add(1);
        self.timer_at[client] = at;
        if let Some(at) = at {
            self.queue.push(at, Ev::Timer { client: client as u32, gen: self.gen[client] });
        }
    }

    /// A timer event popped: true (and the timer is cleared) if it is the
    /// client's current one.
    pub fn timer_fired(&mut self, client: usize, gen: u32) -> bool {
        let live = self.gen[client] == gen;
        if live {
            self.timer_at[client] = None;
        }
        live
    }

    // ---- delivery rules ---------------------------------------------------

    /// The client whose connection `conn` is.
    pub fn client_of(&self, conn: u32) -> usize {
        self.conns[conn as usize].client as usize
    }

    /// True if `conn` is its client's current connection.
    pub fn is_current(&self, conn: u32) -> bool {
        self.current[self.client_of(conn)] == Some(conn)
    }

    /// True if bytes arriving at the client on `conn` are delivered.
    pub fn client_gets(&self, conn: u32) -> bool {
        self.is_current(conn) && !self.conns[conn as usize].killed
    }

    /// True if bytes arriving at the collector on `conn` are delivered.
    pub fn server_gets(&self, conn: u32) -> bool {
        let c = &self.conns[conn as usize];
        c.accepted && !c.killed && !c.server_closed
    }

    // ---- the collector's side ---------------------------------------------

    /// The collector answers on `conn`.
    pub fn reply(&mut self, now: u64, conn: u32, payload: Payload) {
        let at = now + self.latency[self.client_of(conn)];
        self.queue.push(at, Ev::ToClient { conn, payload });
    }

    /// The collector ends `conn`; the client learns it (`error`) `L` later.
    pub fn drop_conn(&mut self, now: u64, conn: u32, error: TransportError) {
        self.conns[conn as usize].server_closed = true;
        let at = now + self.latency[self.client_of(conn)];
        self.queue.push(at, Ev::Lost { conn, error });
    }

    /// A restart: every open connection is cut; each client that still
    /// holds one hears a reset `L` later.
    pub fn kill_all(&mut self, now: u64) {
        for id in 0..self.conns.len() {
            let c = &mut self.conns[id];
            if !c.accepted || c.killed || c.server_closed {
                continue;
            }
            c.killed = true;
            let client = c.client as usize;
            if self.current[client] == Some(id as u32) {
                self.queue.push(now + self.latency[client], Ev::Lost { conn: id as u32, error: TransportError::Reset });
            }
        }
    }
}

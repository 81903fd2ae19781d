//! The test peer: the collector side of PROTOCOL.md, written once over the
//! public agent-core API and shared by agent-core's unit tests
//! (`src/agent/tests.rs`), its driver and carrierless tests, and the fleet
//! simulation (`sim/`), after quinn-proto's `Pair`: every test talks to the
//! same collector instead of a hand-written one of its own. Its own tests
//! are `agent-core/tests/against_peer.rs`; [`crate::pair`] puts it and an
//! agent on one clock.
//!
//! Sans-IO like the agent. The caller owns the transport and the clock:
//!
//! * [`Peer::open`] a connection under an id of the caller's choice (it takes
//!   a [`FrameDecoder`] from the peer's pool, or fails when none is free);
//! * [`Peer::handle_received`] the bytes the agent wrote on it, in any
//!   chunking; it returns a [`Note`] per frame: what the peer saw and did;
//! * [`Peer::poll_transmit`] until `None`: each call is one frame for the
//!   agent, in order;
//! * [`Peer::is_open`]: `false` once the peer closed the connection (after a
//!   Reject or a Close it sent, or a Close it received): the caller then
//!   closes the transport (after writing what `poll_transmit` gave);
//! * [`Peer::release`] when the transport is gone (either side): the
//!   decoder goes back to the pool.
//!
//! What it does, following PROTOCOL.md literally:
//!
//! * **Hello** → Accept with its resume point for that `agent_id` (one past
//!   what it stores contiguously; for an agent it knows nothing of, the
//!   agent's `first_unacked_seq`), or Reject and close: every Hello when
//!   [`PeerConfig::reject`] is set (busy, incompatible, ... with
//!   `retry_after_ms`), Unauthorized for a token other than
//!   [`PeerConfig::auth_token`], Incompatible (5) for a `min_frame` above its
//!   `max_frame` or a Hello of another version.
//! * **Batch**: the first Batch of a connection is expected at
//!   `max(Accept.next_seq, Hello.first_unacked_seq)` (or where the peer's
//!   store goes on, if that is higher); records below the expected point are
//!   duplicates (dropped, compared with what is stored, counted); a Batch
//!   starting above it is a gap: Close(ProtocolError) and close. Every
//!   stored Batch is answered by a cumulative Ack up to the last record
//!   stored contiguously.
//! * **Ping** → Pong. A frame with a bad CRC is skipped (the decoder
//!   resynchronizes). A malformed body, a collector → agent kind, a frame
//!   before the Hello (but a Close) or a second Hello, a Batch before the Accept:
//!   Close(ProtocolError) and close. Unknown kinds are skipped. A Close from
//!   the agent closes the connection without an answer; a bare TaskResult is
//!   noted.
//! * Tasks and Configs go out when told ([`Peer::send`], or queued for the
//!   next Accept with [`Peer::after_accept`]).
//!
//! Two optional habits that speed recovery from corruption (off by default):
//! [`PeerConfig::repeat_ack_after_pong`] (acks are cumulative: repeat the
//! latest after every Pong) and [`PeerConfig::close_on_damage`] (close a
//! connection whose decoder skipped bytes or saw a bad CRC: a frame may be
//! lost). Test knobs that break the protocol on purpose are named so
//! ([`PeerConfig::ignore_batches`], [`Peer::set_next_accept`]).
//!
//! Observable state for assertions: per agent ([`Peer::agent`]) the records
//! stored in sequence order, the resume point, duplicates, gaps, hellos and
//! damaged closes; per peer every Close sent and received.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use agent_core::decoder::{DecoderStats, Feed, FrameDecoder};
use agent_core::frame::{Frame, Kind, VERSION};
use agent_core::message::{Accept, Ack, Close, CloseCode, Config, DecodeError, Message, Pong, Reject, Task};

/// A refusal the peer answers every Hello with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The Reject's code.
    pub code: CloseCode,
    /// The Reject's `retry_after_ms`.
    pub retry_after_ms: u32,
}

/// How the peer behaves; every field may be changed between calls.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// `Accept.max_frame`; also the size of each decoder buffer.
    pub max_frame: u32,
    /// Reject every Hello so.
    pub reject: Option<Refusal>,
    /// Reject (Unauthorized) a Hello carrying another token.
    pub auth_token: Option<Vec<u8>>,
    /// Habit: after every Pong, repeat the latest Ack.
    pub repeat_ack_after_pong: bool,
    /// Habit: close a connection whose uplink showed damage (bytes skipped
    /// or a bad CRC in its decoder), after the chunk that showed it.
    pub close_on_damage: bool,
    /// Test knob, breaks the protocol: drop every Batch unseen (no store, no
    /// Ack), as if lost in transit.
    pub ignore_batches: bool,
    /// `Accept.retry_window_ms`: the pacing advice (0: none).
    pub retry_window_ms: u32,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            max_frame: 4096,
            reject: None,
            auth_token: None,
            repeat_ack_after_pong: false,
            close_on_damage: false,
            ignore_batches: false,
            retry_window_ms: 0,
        }
    }
}

/// A record the peer stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Its sequence number.
    pub seq: u64,
    /// Its data type.
    pub data_type: u32,
    /// Its timestamp (resolved from the batch's chain).
    pub ts: u64,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The connection that delivered it first.
    pub conn: u64,
}

/// What the peer knows of one agent.
#[derive(Clone, Debug, Default)]
pub struct AgentLog {
    /// Records stored, by sequence number.
    pub records: BTreeMap<u64, Stored>,
    /// Resume point: one past the last record stored contiguously (or past
    /// what an agent's first Batch showed was acked elsewhere).
    pub next: u64,
    /// Whether the peer knows the agent (stored a record or resumed it).
    pub known: bool,
    /// Records received again (dropped).
    pub dups: u64,
    /// Duplicates whose content differs from what is stored.
    pub dup_mismatches: u64,
    /// Batches above the expected point (each closed its connection).
    pub gaps: u64,
    /// Connections closed because their uplink showed damage (after a
    /// Hello; [`Peer::damaged_closes`] counts them all).
    pub damaged_closes: u64,
    /// Hellos received.
    pub hellos: u64,
}

impl AgentLog {
    /// Payloads of the stored records of `data_type`, in sequence order.
    pub fn payloads(&self, data_type: u32) -> Vec<Vec<u8>> {
        self.records.values().filter(|r| r.data_type == data_type).map(|r| r.payload.clone()).collect()
    }
}

/// How the peer answered a Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Accept with this resume point.
    Accept {
        /// The Accept's resume point.
        next_seq: u64,
    },
    /// Reject with this code (the connection is closed).
    Reject {
        /// The Reject's code.
        code: u16,
        /// The Reject's `retry_after_ms`.
        retry_after_ms: u32,
    },
}

/// A record received again, below the expected point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dup {
    /// Its sequence number.
    pub seq: u64,
    /// The stored copy: the connection that delivered it and whether the
    /// content is identical (`None`: acked elsewhere, not stored here).
    pub earlier: Option<(u64, bool)>,
}

/// What the peer did with a Batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored (`new`, possibly empty), duplicates dropped, then acked.
    Stored {
        /// The sequence numbers stored for the first time.
        new: Range<u64>,
        /// The records received again.
        dups: Vec<Dup>,
        /// The Ack sent: the last record stored contiguously.
        up_to: u64,
    },
    /// Above the expected point: Close(ProtocolError), connection closed.
    Gap,
    /// Dropped by [`PeerConfig::ignore_batches`].
    Ignored,
}

/// Why the peer closed a connection with Close(ProtocolError).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A body that does not decode.
    Malformed(u8),
    /// A kind that only goes collector → agent.
    WrongDirection(u8),
    /// Anything but a Close before the Hello.
    BeforeHello(u8),
    /// A second Hello.
    SecondHello,
    /// A Batch before the Accept (after a Reject, say).
    BeforeAccept,
    /// A frame of another version after the Hello.
    OtherVersion(u8),
}

/// What the peer saw in one frame and what it did, in the order received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A Hello and the answer.
    Hello {
        /// `Hello.agent_id`.
        agent_id: String,
        /// `Hello.first_unacked_seq`.
        first_unacked_seq: u64,
        /// `Hello.next_seq`.
        next_seq: u64,
        /// `Hello.max_frame`.
        max_frame: u32,
        /// `Hello.min_frame`.
        min_frame: u32,
        /// `Hello.auth_token`.
        auth_token: Vec<u8>,
        /// The peer's resume point for the agent before the Hello.
        stored_next: u64,
        /// How the peer answered.
        answer: Answer,
    },
    /// A Batch; the connection's points before it.
    Batch {
        /// `Batch.first_seq`.
        first_seq: u64,
        /// `Batch.count`.
        count: u32,
        /// Where the peer expected it (above: a gap).
        expected: u64,
        /// One past the previous Batch on this connection (at first: the
        /// Accept's resume point).
        conn_next: u64,
        /// One past the latest Ack sent on this connection (at first: the
        /// Accept's resume point).
        ack_next: u64,
        /// What the peer did with it.
        outcome: BatchOutcome,
    },
    /// A Ping, answered.
    Ping(u64),
    /// A Pong.
    Pong(u64),
    /// A bare TaskResult frame.
    TaskResult {
        /// The result's token.
        token: String,
        /// The result's status.
        status: u32,
    },
    /// A Close from the agent: the connection is closed.
    Close(u16),
    /// A frame of an unknown kind, skipped.
    Unknown(u8),
    /// Close(ProtocolError) sent, connection closed.
    ProtocolError(Violation),
}

/// A message the peer can be told to send later (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// A Task.
    Task {
        /// `Task.object_name`.
        object_name: String,
        /// `Task.data_type`.
        data_type: u32,
        /// `Task.payload`.
        payload: Vec<u8>,
        /// `Task.token`.
        token: String,
    },
    /// A Config.
    Config {
        /// `Config.name`.
        name: String,
        /// `Config.version`.
        version: String,
        /// `Config.payload`.
        payload: Vec<u8>,
    },
}

impl Push {
    /// A task.
    pub fn task(object_name: &str, data_type: u32, payload: &[u8], token: &str) -> Push {
        Push::Task { object_name: object_name.into(), data_type, payload: payload.into(), token: token.into() }
    }
    /// A config.
    pub fn config(name: &str, version: &str, payload: &[u8]) -> Push {
        Push::Config { name: name.into(), version: version.into(), payload: payload.into() }
    }
    fn message(&self) -> Message<'_> {
        match self {
            Push::Task { object_name, data_type, payload, token } => {
                Message::Task(Task { object_name: object_name.as_str().into(), data_type: *data_type, payload, token: token.as_str().into() })
            }
            Push::Config { name, version, payload } => Message::Config(Config { name: name.as_str().into(), version: version.as_str().into(), payload }),
        }
    }
}

/// The peer's side of one connection.
pub struct PeerConn<'a> {
    decoder: FrameDecoder<'a>,
    damage_mark: (u64, u64),
    open: bool,
    /// The Hello's agent id, once received.
    pub agent_id: Option<String>,
    /// The agent's `Hello.max_frame`.
    pub agent_max_frame: Option<u32>,
    /// The Accept's resume point, once accepted.
    pub accepted: Option<u64>,
    /// Where the first Batch is expected: max(Accept.next_seq, Hello.first_unacked_seq).
    floor: u64,
    conn_next: u64,
    ack_next: u64,
    rx_frame_seq: u32,
    /// Frames whose counter was not one past the previous one's.
    pub frame_seq_skips: u64,
    tx_seq: u32,
    out: std::collections::VecDeque<Vec<u8>>,
}

impl PeerConn<'_> {
    /// The decoder's counters.
    pub fn decoder_stats(&self) -> DecoderStats {
        self.decoder.stats()
    }
}

/// The collector side of PROTOCOL.md for tests; see the module docs.
pub struct Peer<'a> {
    /// How it behaves.
    pub cfg: PeerConfig,
    pool: Vec<FrameDecoder<'a>>,
    conns: HashMap<u64, PeerConn<'a>>,
    agents: HashMap<String, AgentLog>,
    forget: HashMap<String, bool>,
    next_accept: HashMap<String, u64>,
    after_accept: Vec<Push>,
    /// Every Close (and Reject) the peer sent: (connection, code, reason).
    pub closes_sent: Vec<(u64, u16, &'static str)>,
    /// Every Close the agent sent: (connection, code).
    pub closes_received: Vec<(u64, u16)>,
    /// Hellos received, all agents.
    pub hellos: u64,
    /// Connections closed because their uplink showed damage, all agents
    /// (also those whose Hello was lost).
    pub damaged_closes: u64,
    /// Tasks sent: (connection, token).
    pub tasks_sent: Vec<(u64, String)>,
    scratch: Vec<u8>,
    empty: AgentLog,
}

/// Decoder storage for [`Peer::new`]: `slots` buffers of `max_frame` bytes.
pub fn storage(slots: usize, max_frame: u32) -> Vec<Vec<u8>> {
    (0..slots).map(|_| vec![0; max_frame as usize]).collect()
}

impl<'a> Peer<'a> {
    /// A peer with one decoder slot per buffer of `storage` (each cut to
    /// `cfg.max_frame`): that many connections can be open at once.
    pub fn new(cfg: PeerConfig, storage: &'a mut [Vec<u8>]) -> Peer<'a> {
        let max = cfg.max_frame as usize;
        let pool = storage.iter_mut().rev().map(|b| FrameDecoder::new(&mut b[..max])).collect();
        Peer {
            cfg,
            pool,
            conns: HashMap::new(),
            agents: HashMap::new(),
            forget: HashMap::new(),
            next_accept: HashMap::new(),
            after_accept: Vec::new(),
            closes_sent: Vec::new(),
            closes_received: Vec::new(),
            hellos: 0,
            damaged_closes: 0,
            tasks_sent: Vec::new(),
            scratch: vec![0; 1 << 17],
            empty: AgentLog::default(),
        }
    }

    /// Opens connection `id` (an id not open now); `false` when every
    /// decoder slot is taken.
    pub fn open(&mut self, id: u64) -> bool {
        assert!(!self.conns.contains_key(&id), "connection {id} is open already");
        let Some(mut decoder) = self.pool.pop() else { return false };
        decoder.reset();
        let d = decoder.stats();
        let conn = PeerConn {
            decoder,
            damage_mark: (d.skipped_bytes, d.bad_crc),
            open: true,
            agent_id: None,
            agent_max_frame: None,
            accepted: None,
            floor: 0,
            conn_next: 0,
            ack_next: 0,
            rx_frame_seq: 0,
            frame_seq_skips: 0,
            tx_seq: 0,
            out: Default::default(),
        };
        self.conns.insert(id, conn);
        true
    }

    /// Forgets connection `id` (the transport is gone); frames not yet
    /// taken with `poll_transmit` are dropped. Unknown ids are ignored.
    pub fn release(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            self.pool.push(c.decoder);
        }
    }

    /// Whether `id` is open and the peer has not closed it.
    pub fn is_open(&self, id: u64) -> bool {
        self.conns.get(&id).is_some_and(|c| c.open)
    }

    /// The peer's side of connection `id`, if not released.
    pub fn conn(&self, id: u64) -> Option<&PeerConn<'a>> {
        self.conns.get(&id)
    }

    /// What the peer knows of `agent_id` (empty if nothing).
    pub fn agent(&self, agent_id: &str) -> &AgentLog {
        self.agents.get(agent_id).unwrap_or(&self.empty)
    }

    /// The resume point for `agent_id` (0 if unknown).
    pub fn next(&self, agent_id: &str) -> u64 {
        self.agents.get(agent_id).map_or(0, |a| a.next)
    }

    /// The stored record `seq` of `agent_id`.
    pub fn record(&self, agent_id: &str, seq: u64) -> Option<&Stored> {
        self.agents.get(agent_id)?.records.get(&seq)
    }

    /// The next Accept to `agent_id` names the agent's own
    /// `first_unacked_seq`, as if the peer had lost its resume index (the
    /// records stay stored: what the agent resends is a duplicate).
    pub fn forget(&mut self, agent_id: &str) {
        self.forget.insert(agent_id.into(), true);
    }

    /// Test knob: the next Accept to `agent_id` names `next_seq`, whatever
    /// the peer stores (a wrong one tests the agent's checks).
    pub fn set_next_accept(&mut self, agent_id: &str, next_seq: u64) {
        self.next_accept.insert(agent_id.into(), next_seq);
    }

    /// Queues `p` to go out right after the next Accept (on any connection).
    pub fn after_accept(&mut self, p: Push) {
        self.after_accept.push(p);
    }

    /// Sends `p` on connection `id` now (if open and accepted).
    pub fn push(&mut self, id: u64, p: &Push) {
        if let Push::Task { token, .. } = p {
            self.tasks_sent.push((id, token.clone()));
        }
        self.send(id, &p.message());
    }

    /// Sends `msg` on connection `id` (ignored when it is not open). A frame
    /// above the agent's `Hello.max_frame` is a bug of the test: panics.
    pub fn send(&mut self, id: u64, msg: &Message<'_>) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        if !c.open {
            return;
        }
        let n = msg.encode(c.tx_seq, &mut self.scratch).expect("peer frame fits its scratch buffer");
        if let Some(max) = c.agent_max_frame {
            assert!(n <= max as usize, "peer frame of {n} bytes above the agent's max_frame {max}");
        }
        c.tx_seq = c.tx_seq.wrapping_add(1);
        c.out.push_back(self.scratch[..n].to_vec());
    }

    /// Raw bytes for the agent on connection `id`, as they are.
    pub fn send_raw(&mut self, id: u64, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.out.push_back(bytes.to_vec());
        }
    }

    /// The next frame for the agent on connection `id`, in order.
    pub fn poll_transmit(&mut self, id: u64) -> Option<Vec<u8>> {
        self.conns.get_mut(&id)?.out.pop_front()
    }

    /// Everything queued for the agent on `id`, concatenated.
    pub fn transmit_all(&mut self, id: u64) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(f) = self.poll_transmit(id) {
            v.extend_from_slice(&f);
        }
        v
    }

    /// Feeds bytes the agent wrote on connection `id`; returns what the peer
    /// did with each frame. Nothing happens on a closed or unknown id.
    pub fn handle_received(&mut self, id: u64, bytes: &[u8]) -> Vec<Note> {
        let mut frames = Vec::new();
        {
            let Some(c) = self.conns.get_mut(&id) else { return Vec::new() };
            if !c.open {
                return Vec::new();
            }
            let mut input = bytes;
            while let Feed::Frame { frame, remaining } = c.decoder.feed(input) {
                frames.push((frame.version, frame.kind, frame.flags, frame.seq, frame.body.to_vec()));
                input = remaining;
            }
        }
        let mut notes = Vec::new();
        for (version, kind, flags, seq, body) in frames {
            let c = self.conns.get_mut(&id).unwrap();
            if !c.open {
                break;
            }
            if seq != c.rx_frame_seq {
                c.frame_seq_skips += 1;
            }
            c.rx_frame_seq = seq.wrapping_add(1);
            let frame = Frame { version, kind, flags, seq, body: &body };
            notes.push(self.on_frame(id, &frame));
        }
        let c = self.conns.get_mut(&id).unwrap();
        let d = c.decoder.stats();
        if self.cfg.close_on_damage && c.open && (d.skipped_bytes, d.bad_crc) != c.damage_mark {
            if let Some(agent) = c.agent_id.clone() {
                self.agents.entry(agent).or_default().damaged_closes += 1;
            }
            self.damaged_closes += 1;
            self.close(id, CloseCode::ProtocolError, "damaged");
        }
        notes
    }

    fn close(&mut self, id: u64, code: CloseCode, reason: &'static str) {
        self.send(id, &Message::Close(Close { code: code as u16, reason: reason.into() }));
        self.closes_sent.push((id, code as u16, reason));
        self.conns.get_mut(&id).unwrap().open = false;
    }

    fn violation(&mut self, id: u64, v: Violation) -> Note {
        self.close(id, CloseCode::ProtocolError, "protocol error");
        Note::ProtocolError(v)
    }

    fn reject(&mut self, id: u64, code: u16, reason: &'static str, retry_after_ms: u32) {
        self.send(id, &Message::Reject(Reject { code, reason: reason.into(), retry_after_ms }));
        self.closes_sent.push((id, code, reason));
        self.conns.get_mut(&id).unwrap().open = false;
    }

    fn on_frame(&mut self, id: u64, frame: &Frame<'_>) -> Note {
        let c = &self.conns[&id];
        let hello_seen = c.agent_id.is_some();
        if frame.version != VERSION {
            if !hello_seen && frame.kind == Kind::Hello as u8 {
                self.reject(id, CloseCode::Incompatible as u16, "version", 0);
                return Note::ProtocolError(Violation::OtherVersion(frame.version));
            }
            return self.violation(id, Violation::OtherVersion(frame.version));
        }
        let msg = match Message::decode(frame) {
            Ok(m) => m,
            Err(DecodeError::UnknownKind) if hello_seen => return Note::Unknown(frame.kind),
            Err(_) if !hello_seen => return self.violation(id, Violation::BeforeHello(frame.kind)),
            Err(_) => return self.violation(id, Violation::Malformed(frame.kind)),
        };
        // A Close may come first: the Hello before it can have been lost.
        if !hello_seen && !matches!(msg, Message::Hello(_) | Message::Close(_)) {
            return self.violation(id, Violation::BeforeHello(frame.kind));
        }
        match msg {
            Message::Hello(_) if hello_seen => self.violation(id, Violation::SecondHello),
            Message::Hello(h) => {
                self.hellos += 1;
                let agent = self.agents.entry(h.agent_id.as_str().into()).or_default();
                agent.hellos += 1;
                let stored_next = agent.next;
                let known = agent.known;
                let c = self.conns.get_mut(&id).unwrap();
                c.agent_id = Some(h.agent_id.as_str().into());
                c.agent_max_frame = Some(h.max_frame);
                let note = |answer| Note::Hello {
                    agent_id: h.agent_id.as_str().into(),
                    first_unacked_seq: h.first_unacked_seq,
                    next_seq: h.next_seq,
                    max_frame: h.max_frame,
                    min_frame: h.min_frame,
                    auth_token: h.auth_token.into(),
                    stored_next,
                    answer,
                };
                let refusal = if let Some(r) = self.cfg.reject {
                    Some((r.code as u16, "refused", r.retry_after_ms))
                } else if self.cfg.auth_token.as_deref().is_some_and(|t| t != h.auth_token) {
                    Some((CloseCode::Unauthorized as u16, "bad token", 0))
                } else if h.min_frame > self.cfg.max_frame {
                    Some((CloseCode::Incompatible as u16, "frame too small", 0))
                } else {
                    None
                };
                if let Some((code, reason, retry_after_ms)) = refusal {
                    self.reject(id, code, reason, retry_after_ms);
                    return note(Answer::Reject { code, retry_after_ms });
                }
                let forgot = self.forget.remove(h.agent_id.as_str()).unwrap_or(false);
                let next_seq = match self.next_accept.remove(h.agent_id.as_str()) {
                    Some(n) => n,
                    None if known && !forgot => stored_next,
                    None => h.first_unacked_seq,
                };
                let c = self.conns.get_mut(&id).unwrap();
                c.accepted = Some(next_seq);
                c.floor = next_seq.max(h.first_unacked_seq);
                c.conn_next = next_seq;
                c.ack_next = next_seq;
                self.send(id, &Message::Accept(Accept { next_seq, max_frame: self.cfg.max_frame, retry_window_ms: self.cfg.retry_window_ms }));
                for p in std::mem::take(&mut self.after_accept) {
                    self.push(id, &p);
                }
                note(Answer::Accept { next_seq })
            }
            Message::Batch(b) => {
                let c = &self.conns[&id];
                let Some(_) = c.accepted else { return self.violation(id, Violation::BeforeAccept) };
                let recs: Option<Vec<_>> =
                    b.iter().map(|r| r.ok().map(|r| (r.data_type, r.timestamp_ms, r.payload.to_vec()))).collect();
                let Some(recs) = recs.filter(|r| r.len() == b.count as usize && !r.is_empty()) else {
                    return self.violation(id, Violation::Malformed(Kind::Batch as u8));
                };
                let agent_id = c.agent_id.clone().unwrap();
                let (conn_next, ack_next, floor) = (c.conn_next, c.ack_next, c.floor);
                let agent = self.agents.entry(agent_id).or_default();
                let expected = agent.next.max(floor);
                let note = |outcome| Note::Batch { first_seq: b.first_seq, count: b.count, expected, conn_next, ack_next, outcome };
                if self.cfg.ignore_batches {
                    return note(BatchOutcome::Ignored);
                }
                if b.first_seq > expected {
                    agent.gaps += 1;
                    self.close(id, CloseCode::ProtocolError, "gap");
                    return note(BatchOutcome::Gap);
                }
                if b.first_seq > agent.next {
                    // The first Batch above what the peer knows: the records
                    // below were acked elsewhere.
                    agent.next = b.first_seq;
                }
                agent.known = true;
                let mut dups = Vec::new();
                let start = agent.next;
                for (i, (data_type, ts, payload)) in recs.into_iter().enumerate() {
                    let seq = b.first_seq + i as u64;
                    if seq < agent.next {
                        let earlier = agent.records.get(&seq).map(|old| {
                            (old.conn, old.data_type == data_type && old.ts == ts && old.payload == payload)
                        });
                        agent.dups += 1;
                        if earlier.is_some_and(|(_, same)| !same) {
                            agent.dup_mismatches += 1;
                        }
                        dups.push(Dup { seq, earlier });
                    } else {
                        agent.records.insert(seq, Stored { seq, data_type, ts, payload, conn: id });
                        agent.next = seq + 1;
                    }
                }
                let up_to = agent.next - 1;
                let new = start.max(b.first_seq)..agent.next;
                let c = self.conns.get_mut(&id).unwrap();
                c.conn_next = b.first_seq + u64::from(b.count);
                c.ack_next = up_to + 1;
                self.send(id, &Message::Ack(Ack { up_to }));
                note(BatchOutcome::Stored { new, dups, up_to })
            }
            Message::Ping(p) => {
                self.send(id, &Message::Pong(Pong { nonce: p.nonce }));
                let c = &self.conns[&id];
                let next = c.agent_id.as_deref().map_or(0, |a| self.next(a));
                if self.cfg.repeat_ack_after_pong && c.accepted.is_some() && next > 0 {
                    self.conns.get_mut(&id).unwrap().ack_next = next;
                    self.send(id, &Message::Ack(Ack { up_to: next - 1 }));
                }
                Note::Ping(p.nonce)
            }
            Message::Pong(p) => Note::Pong(p.nonce),
            Message::TaskResult(r) => Note::TaskResult { token: r.token.as_str().into(), status: r.status },
            Message::Close(cl) => {
                self.closes_received.push((id, cl.code));
                self.conns.get_mut(&id).unwrap().open = false;
                Note::Close(cl.code)
            }
            m => self.violation(id, Violation::WrongDirection(m.kind() as u8)),
        }
    }
}

/// A peer with its decoder storage leaked (`slots` connections at once):
/// for tests that keep the peer in shared state for the whole test.
pub fn leaked(cfg: PeerConfig, slots: usize) -> Peer<'static> {
    let st = Box::leak(storage(slots, cfg.max_frame).into_boxed_slice());
    Peer::new(cfg, st)
}

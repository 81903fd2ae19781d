//! The real collector for the simulation: edge-collector's sans-IO code
//! wired as `edge_collector::conn` wires it, on the simulation's clock.
//!
//! Per connection, as `conn.rs` does: the agent's bytes go through a
//! [`FrameDecoder`] of the collector's `max_frame`; the first frame is
//! judged by [`first_frame`], then by the collector's [`Admission`] (Busy:
//! Reject 6 with the agent's slot), then the agent's resume point comes
//! from the ledger ([`raise`]) and the Accept names it; every later frame
//! goes to [`Session::on_frame`], whose `Store` steps go through the
//! ledger's [`plan`] (the commit thread's rule) into the sink model, and
//! only then is the batch acked (cumulative `up_to`, as `committed` does). A
//! newer accepted connection of an agent replaces an older one (Close 0,
//! "replaced"), as `Shared::register` does. A restart starts a fresh
//! admission state and rebuilds the ledger from the sink, as
//! `FileSink::open` does (the highest sequence number stored per agent, plus
//! one); a restart that loses the index is the stdout sink's (resume points
//! in memory only): the ledger starts empty, each agent resumes at its own
//! `first_unacked_seq` and resends what the sink has, which is written
//! again (the stdout sink is exactly-once within one process; the model
//! checks each such line is identical to the first and reports it as a
//! duplicate).
//!
//! Not modeled (tokio-side, not in the sans-IO core): the collector's own
//! Ping/idle timers and handshake timeout, group commit's latency (a
//! commit here is immediate), the registry, per-agent tokens.
//!
//! The sink model holds every line [`plan`] wrote, parsed back: each must be
//! JSON naming the agent, the sequence number, data type and timestamp of
//! the record the agent sent under that number, with its payload (`text`,
//! `b64`, or the decoded task result, plugin or heartbeat). Every Ack is
//! checked against it: all records up to `up_to` are in the sink ("an ack
//! means durable").
//!
//! The interface is the test peer's ([`Peer`](crate::peer::Peer)), and so are the [`Note`]s,
//! so the simulation checks both collectors alike; [`Backend`](crate::backend::Backend)
//! is either.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use agent_core::data_type;
use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::{Frame, Kind};
use agent_core::message::{Accept, Ack, Close, CloseCode, Message, Pong, Reject, TaskResult};
use base64::Engine as _;
use edge_collector::admission::{Admission, AdmissionConfig, Decision};
use edge_collector::ledger::{plan, raise, ResumePoints, StoreOutcome};
use edge_collector::session::{first_frame, Refusal as SessionRefusal, Session, Step};

use crate::peer::{AgentLog, Answer, BatchOutcome, Dup, Note, Push, Stored, Violation};

/// How the simulation configures the real collector.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// `--max-frame`.
    pub max_frame: u32,
    /// The admission rate and its bounds.
    pub admission: AdmissionConfig,
    /// Seed of the first admission state (each restart derives the next).
    pub seed: u64,
    /// The fleet the Accept's advice is computed for
    /// ([`Admission::retry_window_ms`]).
    pub fleet: usize,
}

struct RealConn<'a> {
    decoder: FrameDecoder<'a>,
    open: bool,
    session: Option<Session>,
    agent_max_frame: u32,
    conn_next: u64,
    ack_next: u64,
    acked: Option<u64>,
    rx_frame_seq: u32,
    frame_seq_skips: u64,
    tx_seq: u32,
    out: VecDeque<Vec<u8>>,
}

/// The real collector's sans-IO core; see the module docs.
pub struct Collector<'a> {
    cfg: CollectorConfig,
    admission: Admission,
    restarts: u64,
    /// Restarts that lost the ledger (records may be written again).
    lossy_restarts: u64,
    ledger: ResumePoints,
    /// Per agent: the sink model (`records`) and counters.
    agents: HashMap<String, AgentLog>,
    pool: Vec<FrameDecoder<'a>>,
    conns: HashMap<u64, RealConn<'a>>,
    /// The live (latest accepted) connection of each agent.
    live: HashMap<String, u64>,
    /// Connections closed by the collector outside `handle_received`'s own
    /// connection (replaced ones), for the caller to close.
    closed_elsewhere: Vec<u64>,
    /// Every Close and Reject sent: (connection, code).
    pub closes_sent: Vec<(u64, u16)>,
    /// Admission Busy answers.
    pub busy_rejects: u64,
    /// Connections replaced by a newer one of the same agent.
    pub replaced: u64,
    scratch: Vec<u8>,
    empty: AgentLog,
}

impl<'a> Collector<'a> {
    /// A collector with one decoder per buffer of `storage` (cut to
    /// `cfg.max_frame`): that many connections at once.
    pub fn new(cfg: CollectorConfig, storage: &'a mut [Vec<u8>]) -> Collector<'a> {
        let max = cfg.max_frame as usize;
        let pool = storage.iter_mut().rev().map(|b| FrameDecoder::new(&mut b[..max])).collect();
        Collector {
            admission: Admission::new(cfg.admission.clone(), cfg.seed),
            cfg,
            restarts: 0,
            lossy_restarts: 0,
            ledger: ResumePoints::new(),
            agents: HashMap::new(),
            pool,
            conns: HashMap::new(),
            live: HashMap::new(),
            closed_elsewhere: Vec::new(),
            closes_sent: Vec::new(),
            busy_rejects: 0,
            replaced: 0,
            scratch: vec![0; 1 << 17],
            empty: AgentLog::default(),
        }
    }

    /// The Accept's `retry_window_ms`.
    pub fn retry_window_ms(&self) -> u32 {
        self.admission.retry_window_ms(self.cfg.fleet)
    }

    /// Opens connection `id`; `false` when every decoder is taken.
    pub fn open(&mut self, id: u64) -> bool {
        assert!(!self.conns.contains_key(&id), "connection {id} is open already");
        let Some(mut decoder) = self.pool.pop() else { return false };
        decoder.reset();
        let c = RealConn {
            decoder,
            open: true,
            session: None,
            agent_max_frame: agent_core::frame::MIN_MAX_FRAME as u32,
            conn_next: 0,
            ack_next: 0,
            acked: None,
            rx_frame_seq: 0,
            frame_seq_skips: 0,
            tx_seq: 0,
            out: VecDeque::new(),
        };
        self.conns.insert(id, c);
        true
    }

    /// The transport of `id` is gone.
    pub fn release(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            if let Some(s) = &c.session {
                if self.live.get(&**s.agent()) == Some(&id) {
                    self.live.remove(&**s.agent());
                }
            }
            self.pool.push(c.decoder);
        }
    }

    /// Whether `id` is open and the collector has not closed it.
    pub fn is_open(&self, id: u64) -> bool {
        self.conns.get(&id).is_some_and(|c| c.open)
    }

    /// Frames on `id` whose counter was not one past the previous one's.
    pub fn frame_seq_skips(&self, id: u64) -> Option<u64> {
        self.conns.get(&id).map(|c| c.frame_seq_skips)
    }

    /// The sink model and counters of `agent_id`.
    pub fn agent(&self, agent_id: &str) -> &AgentLog {
        self.agents.get(agent_id).unwrap_or(&self.empty)
    }

    /// One past the highest record of `agent_id` in the sink (0 if none):
    /// the sink holds every record below it.
    pub fn next(&self, agent_id: &str) -> u64 {
        self.agents.get(agent_id).and_then(|l| l.records.keys().next_back()).map_or(0, |s| s + 1)
    }

    /// The ledger's resume point for `agent_id` (0 if none).
    pub fn ledger_point(&self, agent_id: &str) -> u64 {
        self.ledger.get(agent_id).copied().unwrap_or(0)
    }

    /// The stored record `seq` of `agent_id`.
    pub fn record(&self, agent_id: &str, seq: u64) -> Option<&Stored> {
        self.agents.get(agent_id)?.records.get(&seq)
    }

    /// A restart (every connection is cut by the caller): the ledger is
    /// rebuilt from the sink (file sink) or, with `lose_index`, starts
    /// empty (stdout sink); the admission state starts afresh.
    pub fn restart(&mut self, lose_index: bool) {
        self.restarts += 1;
        self.ledger = if lose_index {
            self.lossy_restarts += 1;
            ResumePoints::new()
        } else {
            self.agents
                .iter()
                .filter_map(|(a, log)| log.records.keys().next_back().map(|&s| (a.clone(), s + 1)))
                .collect()
        };
        self.admission = Admission::new(self.cfg.admission.clone(), self.cfg.seed ^ self.restarts.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.live.clear();
    }

    /// Connections the collector closed during the last calls other than
    /// the one they were about (replaced by a newer connection).
    pub fn take_closed_elsewhere(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.closed_elsewhere)
    }

    /// Sends `p` (a Task or Config) on `id` if it is open and accepted.
    pub fn push(&mut self, id: u64, p: &Push) {
        if self.conns.get(&id).is_some_and(|c| c.session.is_some()) {
            let msg = match p {
                Push::Task { object_name, data_type, payload, token } => Message::Task(agent_core::message::Task {
                    object_name: object_name.as_str().into(),
                    data_type: *data_type,
                    payload,
                    token: token.as_str().into(),
                }),
                Push::Config { name, version, payload } => {
                    Message::Config(agent_core::message::Config { name: name.as_str().into(), version: version.as_str().into(), payload })
                }
            };
            self.send(id, &msg);
        }
    }

    /// The next frame for the agent on `id`.
    pub fn poll_transmit(&mut self, id: u64) -> Option<Vec<u8>> {
        self.conns.get_mut(&id)?.out.pop_front()
    }

    fn send(&mut self, id: u64, msg: &Message<'_>) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        if !c.open {
            return;
        }
        let n = msg.encode(c.tx_seq, &mut self.scratch).expect("collector frame fits its scratch buffer");
        assert!(n <= c.agent_max_frame as usize, "collector frame of {n} bytes above the agent's max_frame {}", c.agent_max_frame);
        c.tx_seq = c.tx_seq.wrapping_add(1);
        c.out.push_back(self.scratch[..n].to_vec());
    }

    fn close(&mut self, id: u64, code: CloseCode, reason: &str) {
        self.send(id, &Message::Close(Close { code: code as u16, reason: reason.into() }));
        self.closes_sent.push((id, code as u16));
        self.conns.get_mut(&id).unwrap().open = false;
    }

    /// Feeds bytes the agent wrote on `id` at `now_ms`; what the collector
    /// saw and did, one [`Note`] per frame.
    pub fn handle_received(&mut self, id: u64, bytes: &[u8], now_ms: u64) -> Vec<Note> {
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
            let note = if c.session.is_none() { self.on_first(id, &frame, now_ms) } else { self.on_frame(id, &frame, now_ms) };
            notes.push(note);
        }
        notes
    }

    fn on_first(&mut self, id: u64, frame: &Frame<'_>, now_ms: u64) -> Note {
        let h = match first_frame(frame, self.cfg.max_frame) {
            Ok(h) => h,
            Err(SessionRefusal::Close { code, reason }) => {
                // A Close first (its Hello was lost to corruption): the agent
                // is gone anyway; the collector answers Close 1 and closes.
                let agent_close = (frame.kind == Kind::Close as u8).then(|| Message::decode(frame).ok()).flatten();
                self.close(id, code, &reason);
                return match agent_close {
                    Some(Message::Close(cl)) => Note::Close(cl.code),
                    _ => Note::ProtocolError(Violation::BeforeHello(frame.kind)),
                };
            }
            Err(SessionRefusal::Reject { code, reason, retry_after_ms }) => {
                self.send(id, &Message::Reject(Reject { code: code as u16, reason: reason.as_str().into(), retry_after_ms }));
                self.closes_sent.push((id, code as u16));
                self.conns.get_mut(&id).unwrap().open = false;
                return Note::ProtocolError(Violation::OtherVersion(frame.version));
            }
        };
        let log = self.agents.entry(h.agent_id.clone()).or_default();
        log.hellos += 1;
        let stored_next = self.next(&h.agent_id);
        self.conns.get_mut(&id).unwrap().agent_max_frame = h.max_frame.max(agent_core::frame::MIN_MAX_FRAME as u32);
        let note = |answer| Note::Hello {
            agent_id: h.agent_id.clone(),
            first_unacked_seq: h.first_unacked_seq,
            next_seq: h.next_seq,
            max_frame: h.max_frame,
            min_frame: h.min_frame,
            auth_token: h.auth_token.clone(),
            stored_next,
            answer,
        };
        if let Decision::Busy { retry_after_ms } = self.admission.decide(&h.agent_id, Duration::from_millis(now_ms)) {
            self.busy_rejects += 1;
            let reason = "handshake rate exceeded; come back after retry_after_ms";
            self.send(id, &Message::Reject(Reject { code: CloseCode::Busy as u16, reason: reason.into(), retry_after_ms }));
            self.closes_sent.push((id, CloseCode::Busy as u16));
            self.conns.get_mut(&id).unwrap().open = false;
            return note(Answer::Reject { code: CloseCode::Busy as u16, retry_after_ms });
        }
        let resume = raise(&mut self.ledger, &h.agent_id, h.first_unacked_seq);
        let retry_window_ms = self.retry_window_ms();
        self.send(id, &Message::Accept(Accept { next_seq: resume, max_frame: self.cfg.max_frame, retry_window_ms }));
        let c = self.conns.get_mut(&id).unwrap();
        c.session = Some(Session::new(h.agent_id.as_str().into(), h.hostname.clone(), resume));
        c.conn_next = resume;
        c.ack_next = resume;
        if let Some(old) = self.live.insert(h.agent_id.clone(), id) {
            if self.is_open(old) {
                self.replaced += 1;
                self.close(old, CloseCode::Normal, "replaced by a newer connection");
                self.closed_elsewhere.push(old);
            }
        }
        note(Answer::Accept { next_seq: resume })
    }

    fn on_frame(&mut self, id: u64, frame: &Frame<'_>, now_ms: u64) -> Note {
        let c = self.conns.get_mut(&id).unwrap();
        let session = c.session.as_mut().unwrap();
        let expected_before = session.expected();
        let step = session.on_frame(frame, now_ms);
        match step {
            Step::Store { lines, .. } => self.on_store(id, frame, lines),
            Step::Pong(nonce) => {
                self.send(id, &Message::Pong(Pong { nonce }));
                Note::Ping(nonce)
            }
            Step::PongReceived(nonce) => Note::Pong(nonce),
            Step::TaskResult(r) => Note::TaskResult { token: r.token, status: r.status },
            Step::PeerClosed { code, .. } => {
                self.conns.get_mut(&id).unwrap().open = false;
                Note::Close(code)
            }
            Step::Skip => Note::Unknown(frame.kind),
            Step::Refuse(r) => {
                let (code, reason) = match r {
                    SessionRefusal::Close { code, reason } => (code, reason),
                    SessionRefusal::Reject { code, reason, .. } => (code, reason),
                };
                let note = match Message::decode(frame) {
                    Ok(Message::Batch(b)) if b.first_seq > expected_before => {
                        let c = &self.conns[&id];
                        let agent = c.session.as_ref().unwrap().agent().to_string();
                        let (conn_next, ack_next) = (c.conn_next, c.ack_next);
                        self.agents.entry(agent).or_default().gaps += 1;
                        Note::Batch {
                            first_seq: b.first_seq,
                            count: b.count,
                            expected: expected_before,
                            conn_next,
                            ack_next,
                            outcome: BatchOutcome::Gap,
                        }
                    }
                    _ => Note::ProtocolError(Violation::Malformed(frame.kind)),
                };
                self.close(id, code, &reason);
                note
            }
        }
    }

    /// A Batch the session let through: the ledger decides what is new, the
    /// lines written go into the sink model (checked), then the Ack.
    fn on_store(&mut self, id: u64, frame: &Frame<'_>, lines: edge_collector::ledger::Lines) -> Note {
        let Ok(Message::Batch(b)) = Message::decode(frame) else { unreachable!("the session stored a frame that is not a Batch") };
        let recs: Vec<(u32, u64, Vec<u8>)> =
            b.iter().map(|r| r.map(|r| (r.data_type, r.timestamp_ms, r.payload.to_vec())).expect("the session checked every entry")).collect();
        let agent = lines.agent.to_string();
        assert_eq!(lines.first_seq, b.first_seq);
        assert_eq!(lines.ends.len(), recs.len(), "one line per record");
        let before = self.ledger_point(&agent);
        let mut buf = Vec::new();
        let StoreOutcome::Stored { up_to, written } = plan(&mut self.ledger, &lines, &mut buf) else {
            panic!("the ledger refused what the session let through (they must agree)");
        };
        let end = b.first_seq + recs.len() as u64;
        assert_eq!(up_to, end - 1);
        let skip = before.saturating_sub(b.first_seq).min(recs.len() as u64);
        assert_eq!(u64::from(written), recs.len() as u64 - skip, "the ledger writes exactly the records above its point");
        let text = std::str::from_utf8(&buf).expect("sink lines are UTF-8");
        assert_eq!(text.lines().count(), written as usize);
        let log = self.agents.entry(agent.clone()).or_default();
        let mut dups = Vec::new();
        for (i, (dt, ts, payload)) in recs.iter().enumerate().take(skip as usize) {
            let seq = b.first_seq + i as u64;
            let earlier = log.records.get(&seq).map(|old| (old.conn, old.data_type == *dt && old.ts == *ts && old.payload == *payload));
            log.dups += 1;
            if earlier.is_some_and(|(_, same)| !same) {
                log.dup_mismatches += 1;
            }
            dups.push(Dup { seq, earlier });
        }
        let mut new: Option<Range<u64>> = None;
        for (line, (i, (dt, ts, payload))) in text.lines().zip(recs.iter().enumerate().skip(skip as usize)) {
            let seq = b.first_seq + i as u64;
            check_line(line, &agent, seq, *dt, *ts, payload);
            if let Some(old) = log.records.get(&seq) {
                // Written again: only after a restart that lost the ledger.
                assert!(self.lossy_restarts > 0, "agent {agent}: seq {seq} written to the sink twice");
                let same = old.data_type == *dt && old.ts == *ts && old.payload == *payload;
                log.dups += 1;
                if !same {
                    log.dup_mismatches += 1;
                }
                dups.push(Dup { seq, earlier: Some((old.conn, same)) });
                continue;
            }
            log.records.insert(seq, Stored { seq, data_type: *dt, ts: *ts, payload: payload.clone(), conn: id });
            let r = new.get_or_insert(seq..seq);
            assert_eq!(r.end, seq, "agent {agent}: new records not contiguous");
            r.end = seq + 1;
        }
        let new = new.unwrap_or(end..end);
        if written > 0 {
            log.next = end;
        }
        log.known = true;
        let c = self.conns.get_mut(&id).unwrap();
        let (conn_next, ack_next) = (c.conn_next, c.ack_next);
        let acked = c.acked.map_or(up_to, |a| a.max(up_to));
        c.acked = Some(acked);
        c.conn_next = end;
        c.ack_next = acked + 1;
        // An Ack means durable: every record up to it is in the sink.
        let records = &self.agents[&agent].records;
        assert!(
            records.len() as u64 == records.keys().next_back().map_or(0, |s| s + 1) && records.contains_key(&acked),
            "agent {agent}: Ack up to {acked} but the sink holds {} records up to {:?}",
            records.len(),
            records.keys().next_back()
        );
        self.send(id, &Message::Ack(Ack { up_to: acked }));
        Note::Batch {
            first_seq: b.first_seq,
            count: b.count,
            expected: before,
            conn_next,
            ack_next,
            outcome: BatchOutcome::Stored { new, dups, up_to: acked },
        }
    }
}

/// Checks one sink line against the record the agent sent under `seq`.
fn check_line(line: &str, agent: &str, seq: u64, dt: u32, ts: u64, payload: &[u8]) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("sink line is not JSON ({e}): {line}"));
    assert_eq!(v["agent"].as_str(), Some(agent), "{line}");
    assert_eq!(v["seq"].as_u64(), Some(seq), "{line}");
    assert_eq!(v["type"].as_u64(), Some(u64::from(dt)), "{line}");
    assert_eq!(v["ts"].as_u64(), Some(ts), "{line}");
    if let Some(t) = v.get("text") {
        assert_eq!(t.as_str().map(str::as_bytes), Some(payload), "{line}");
    } else if let Some(b) = v.get("b64") {
        let raw = base64::engine::general_purpose::STANDARD.decode(b.as_str().expect("b64 is a string")).expect("b64 decodes");
        assert_eq!(raw, payload, "{line}");
    } else if let Some(r) = v.get("task_result") {
        assert_eq!(dt, data_type::TASK_RESULT, "{line}");
        let want: TaskResult<'_> = postcard::from_bytes(payload).expect("a task_result line is a decodable result");
        assert_eq!(r["token"].as_str(), Some(want.token.as_str()), "{line}");
        assert_eq!(r["status"].as_u64(), Some(u64::from(want.status)), "{line}");
        assert_eq!(r["message"].as_str(), Some(want.message.as_str()), "{line}");
    } else if let Some(p) = v.get("plugin") {
        assert_eq!(dt, data_type::PLUGIN_HEARTBEAT, "{line}");
        let want: agent_core::plugin::PluginHeartbeat<'_> = postcard::from_bytes(payload).expect("a plugin line decodes");
        assert_eq!(p["name"].as_str(), Some(want.name.as_str()), "{line}");
        assert_eq!(p["pid"].as_u64(), Some(u64::from(want.pid)), "{line}");
    } else {
        assert!(v.get("heartbeat").is_some() && dt == data_type::AGENT_HEARTBEAT, "sink line without a payload: {line}");
        assert!(agent_core::heartbeat::AgentHeartbeat::decode(payload).is_some(), "{line}");
    }
}

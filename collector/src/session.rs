//! The protocol of one connection, sans-IO: what a frame from an agent
//! means and what the collector must do about it.
//!
//! [`first_frame`] judges a frame as the Hello that opens a connection (a Hello, or a
//! reason to Reject or Close). After the Accept, [`Session::on_frame`] turns
//! every later frame into one [`Step`] for the connection task
//! ([`crate::conn`]) to carry out. Nothing here does I/O, reads a clock or
//! allocates beyond the lines of a batch, so the fuzz target drives it
//! directly.
//!
//! The rules (PROTOCOL.md, and the hardening issue's rules for gaps):
//!
//! * the Hello: another version gets Reject 5, a `min_frame` above the
//!   collector's `max_frame` Reject 5, a bad token Reject 4, a malformed
//!   body Close 1 (and, through [`crate::handshake::pre_hello`], which
//!   calls [`first_frame`] only for frames of kind Hello: other frames
//!   before it skipped, impossible Hellos Reject 1, identity beyond its
//!   bounds Reject 5);
//! * a Batch must hold exactly `count` (≥ 1) well-formed entries, and must
//!   not start above the next sequence number expected on this connection
//!   (a gap: Close 1, nothing past it is ever acked); records below it are
//!   duplicates, stored once and acked again;
//! * a second Hello, kinds that only the collector sends (Accept, Reject,
//!   Ack, Task, Config) and bodies that do not decode are protocol errors
//!   (Close 1); a frame of another version after Accept is Close 5
//!   (Incompatible); unknown kinds are skipped.
//!
//! What precedes the Hello (skipped frames, bounds, impossible Hellos) is
//! [`crate::handshake`]'s.

use crate::ledger::Lines;
use crate::line::RecordLine;
use agent_core::data_type;
use agent_core::frame::{Frame, Kind, VERSION};
use agent_core::heartbeat::AgentHeartbeat;
use agent_core::message::{decode_body, CloseCode, DecodeError, Message, TaskResult};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What a Hello told the collector, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    /// Agent id.
    pub agent_id: String,
    /// Host name.
    pub hostname: String,
    /// Product.
    pub product: String,
    /// Product version.
    pub version: String,
    /// Every address, private first, as text.
    pub addresses: Vec<String>,
    /// Auth token presented.
    pub auth_token: Vec<u8>,
    /// Oldest record the agent holds unacked.
    pub first_unacked_seq: u64,
    /// The agent's next sequence number (0: freshly started).
    pub next_seq: u64,
    /// Largest frame the agent accepts.
    pub max_frame: u32,
    /// Smallest Accept.max_frame the agent can work with.
    pub min_frame: u32,
}

/// How a connection ends on the collector's initiative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Answer the Hello with a Reject (version 1 frame) and close.
    Reject {
        /// Why.
        code: CloseCode,
        /// Detail for the agent's logs.
        reason: String,
        /// The Reject's `retry_after_ms` (0: the agent's own backoff decides).
        retry_after_ms: u32,
    },
    /// Send Close and close.
    Close {
        /// Why.
        code: CloseCode,
        /// Detail.
        reason: String,
    },
}

fn protocol_error(reason: impl Into<String>) -> Refusal {
    Refusal::Close { code: CloseCode::ProtocolError, reason: reason.into() }
}

/// Judges the first frame of a connection: the agent's Hello, or why not.
/// Authentication is the caller's ([`crate::auth::Auth::check`]).
pub fn first_frame(frame: &Frame<'_>, max_frame: u32) -> Result<HelloInfo, Refusal> {
    if frame.kind == Kind::Hello as u8 && frame.version != VERSION {
        return Err(Refusal::Reject {
            code: CloseCode::Incompatible,
            reason: format!("protocol version {}; speaks {VERSION}", frame.version),
            // Incompatible does not get better by waiting.
            retry_after_ms: 0,
        });
    }
    let h = match Message::decode(frame) {
        Ok(Message::Hello(h)) => h,
        Ok(m) => return Err(protocol_error(format!("the first frame must be a Hello, not {:?}", m.kind()))),
        Err(DecodeError::Malformed) => return Err(protocol_error("malformed Hello")),
        Err(e) => return Err(protocol_error(format!("the first frame must be a Hello ({e})"))),
    };
    if h.min_frame > max_frame {
        return Err(Refusal::Reject {
            code: CloseCode::Incompatible,
            reason: format!("needs max_frame {} > {max_frame}", h.min_frame),
            retry_after_ms: 0,
        });
    }
    let mut addresses = Vec::new();
    for list in [h.intranet_ipv4, h.extranet_ipv4] {
        addresses.extend(list.chunks_exact(4).map(|c| Ipv4Addr::from(<[u8; 4]>::try_from(c).unwrap()).to_string()));
    }
    for list in [h.intranet_ipv6, h.extranet_ipv6] {
        addresses.extend(list.chunks_exact(16).map(|c| Ipv6Addr::from(<[u8; 16]>::try_from(c).unwrap()).to_string()));
    }
    Ok(HelloInfo {
        agent_id: h.agent_id.to_string(),
        hostname: h.hostname.to_string(),
        product: h.product.to_string(),
        version: h.version.to_string(),
        addresses,
        auth_token: h.auth_token.to_vec(),
        first_unacked_seq: h.first_unacked_seq,
        next_seq: h.next_seq,
        max_frame: h.max_frame,
        min_frame: h.min_frame,
    })
}

/// A task result, from a record or a bare frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultInfo {
    /// The task's token.
    pub token: String,
    /// Task status number.
    pub status: u32,
    /// Detail.
    pub message: String,
}

/// A plugin heartbeat, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// Status as text (`running`, ...).
    pub status: &'static str,
}

/// What the registry learns from one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchNews {
    /// The latest agent heartbeat in the batch.
    pub heartbeat: Option<Box<AgentHeartbeat>>,
    /// Plugin heartbeats.
    pub plugins: Vec<PluginInfo>,
    /// Task results.
    pub results: Vec<ResultInfo>,
}

/// What to do about one frame.
#[derive(Debug)]
pub enum Step {
    /// Store these lines (then Ack), and tell the registry `news`.
    Store {
        /// The batch's lines.
        lines: Lines,
        /// Registry news.
        news: BatchNews,
    },
    /// Answer with a Pong of this nonce.
    Pong(u64),
    /// The agent answered a Ping of ours.
    PongReceived(u64),
    /// A bare TaskResult frame.
    TaskResult(ResultInfo),
    /// The agent closes.
    PeerClosed {
        /// Its code number.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// A kind this collector does not know: skipped.
    Skip,
    /// End the connection.
    Refuse(Refusal),
}

/// One accepted connection's protocol state.
#[derive(Debug)]
pub struct Session {
    agent: Arc<str>,
    host: String,
    expected: u64,
    max_records: u32,
}

impl Session {
    /// A session whose first Batch is expected at `expected` (the Accept's
    /// resume point, which is already at least `first_unacked_seq`).
    pub fn new(agent: Arc<str>, host: String, expected: u64) -> Session {
        Session { agent, host, expected, max_records: u32::MAX }
    }

    /// Refuses (Close 1) any Batch of more than `n` records, before its
    /// lines are made: what one Batch can cost in memory and on disk is
    /// bounded by `n` ([`crate::bounds`]).
    pub fn with_max_records(mut self, n: u32) -> Session {
        self.max_records = n;
        self
    }

    /// The next sequence number expected on this connection.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The agent id.
    pub fn agent(&self) -> &Arc<str> {
        &self.agent
    }

    /// Judges one frame received at `now_ms` (Unix ms, the lines' `recv`).
    pub fn on_frame(&mut self, frame: &Frame<'_>, now_ms: u64) -> Step {
        if frame.version != VERSION {
            // As the agent does on a frame of another version: Close 5.
            return Step::Refuse(Refusal::Close { code: CloseCode::Incompatible, reason: format!("frame of protocol version {} after Accept; speaks {VERSION}", frame.version) });
        }
        let msg = match Message::decode(frame) {
            Ok(m) => m,
            Err(DecodeError::UnknownKind) => return Step::Skip,
            Err(e) => return Step::Refuse(protocol_error(format!("{e} (kind {})", frame.kind))),
        };
        match msg {
            Message::Batch(b) => self.on_batch(b, now_ms),
            Message::Ping(p) => Step::Pong(p.nonce),
            Message::Pong(p) => Step::PongReceived(p.nonce),
            Message::TaskResult(r) => Step::TaskResult(ResultInfo { token: r.token.into(), status: r.status, message: r.message.into() }),
            Message::Close(c) => Step::PeerClosed { code: c.code, reason: c.reason.into() },
            Message::Hello(_) => Step::Refuse(protocol_error("a second Hello on one connection")),
            m => Step::Refuse(protocol_error(format!("{:?} must not come from an agent", m.kind()))),
        }
    }

    fn on_batch(&mut self, b: agent_core::message::Batch<'_>, now_ms: u64) -> Step {
        if b.count == 0 {
            return Step::Refuse(protocol_error("Batch with count 0"));
        }
        if b.count > self.max_records {
            return Step::Refuse(protocol_error(format!("Batch of {} records; this collector takes at most {}", b.count, self.max_records)));
        }
        if b.first_seq > self.expected {
            return Step::Refuse(protocol_error(format!(
                "gap: Batch starts at {} but {} is the next record expected",
                b.first_seq, self.expected
            )));
        }
        let Some(end) = b.first_seq.checked_add(u64::from(b.count)) else {
            return Step::Refuse(protocol_error("Batch sequence numbers overflow"));
        };
        let mut lines = Lines { agent: self.agent.clone(), first_seq: b.first_seq, bytes: Vec::with_capacity(b.records.len() * 2 + 96 * b.count.min(4096) as usize), ends: Vec::with_capacity(b.count.min(65536) as usize) };
        let mut news = BatchNews::default();
        let mut n: u64 = 0;
        for (i, rec) in b.iter().enumerate() {
            let Ok(rec) = rec else { return Step::Refuse(protocol_error(format!("Batch entry {i} is malformed"))) };
            if n == u64::from(b.count) {
                return Step::Refuse(protocol_error(format!("Batch holds more than its count of {} entries", b.count)));
            }
            let seq = b.first_seq + n;
            n += 1;
            RecordLine { agent: &self.agent, host: &self.host, seq, data_type: rec.data_type, ts: rec.timestamp_ms, recv: now_ms, payload: rec.payload }
                .write(&mut lines.bytes);
            lines.ends.push(lines.bytes.len());
            match rec.data_type {
                data_type::AGENT_HEARTBEAT => {
                    if let Some((hb, _)) = crate::heartbeat::decode(rec.payload) {
                        news.heartbeat = Some(Box::new(hb));
                    }
                }
                data_type::PLUGIN_HEARTBEAT => {
                    if let Some(p) = crate::line::PluginBeat::decode(rec.payload) {
                        news.plugins.push(PluginInfo { name: p.name.into(), version: p.version.into(), pid: p.pid, status: crate::line::plugin_status_number(p.status) });
                    }
                }
                data_type::TASK_RESULT => {
                    if let Ok(r) = decode_body::<TaskResult<'_>>(rec.payload) {
                        news.results.push(ResultInfo { token: r.token.into(), status: r.status, message: r.message.into() });
                    }
                }
                _ => {}
            }
        }
        if n != u64::from(b.count) {
            return Step::Refuse(protocol_error(format!("Batch holds {n} entries, not its count of {}", b.count)));
        }
        self.expected = self.expected.max(end);
        // What waits for the sink is counted by capacity: no slack kept.
        lines.bytes.shrink_to_fit();
        Step::Store { lines, news }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::message::{Batch, Hello, Ping};
    use agent_core::record::{ts_delta, EntryHeader};

    fn frame_of<'b>(msg: Message<'_>, buf: &'b mut [u8]) -> Frame<'b> {
        let n = msg.encode(0, buf).unwrap();
        Frame { version: buf[2], kind: buf[3], flags: 0, seq: 0, body: &buf[13..n - 4] }
    }

    fn entries(recs: &[(u32, u64, &[u8])], base: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = base;
        for &(t, ts, p) in recs {
            let (h, n) = EntryHeader::new(t, ts_delta(prev, ts), p.len()).encode();
            out.extend_from_slice(&h[..n]);
            out.extend_from_slice(p);
            prev = ts;
        }
        out
    }

    fn hello(min_frame: u32) -> Hello<'static> {
        Hello {
            agent_id: "a1", hostname: "h", product: "p", version: "1", intranet_ipv4: &[10, 0, 0, 9],
            intranet_ipv6: &[], extranet_ipv4: &[], extranet_ipv6: &[], auth_token: b"tok",
            first_unacked_seq: 3, next_seq: 9, max_frame: 4096, min_frame,
        }
    }

    #[test]
    fn first_frame_rules() {
        let mut buf = [0u8; 256];
        let h = first_frame(&frame_of(Message::Hello(hello(512)), &mut buf), 4096).unwrap();
        assert_eq!((h.agent_id.as_str(), h.addresses.as_slice(), h.auth_token.as_slice()), ("a1", &["10.0.0.9".to_string()][..], &b"tok"[..]));
        let too_big = first_frame(&frame_of(Message::Hello(hello(8192)), &mut buf), 4096);
        assert!(matches!(too_big, Err(Refusal::Reject { code: CloseCode::Incompatible, .. })));
        let mut f = frame_of(Message::Hello(hello(512)), &mut buf);
        f.version = 2;
        assert!(matches!(first_frame(&f, 4096), Err(Refusal::Reject { code: CloseCode::Incompatible, .. })));
        let ping = first_frame(&frame_of(Message::Ping(Ping { nonce: 1 }), &mut buf), 4096);
        assert!(matches!(ping, Err(Refusal::Close { code: CloseCode::ProtocolError, .. })));
    }

    #[test]
    fn batches_gaps_and_malformed() {
        let mut s = Session::new("a1".into(), "h".into(), 10);
        let recs = entries(&[(2001, 105, b"x"), (1050, 106, &[2, b't', b'1', 0, 0]), (2002, 100, &[0xff])], 100);
        let mut buf = [0u8; 256];
        let b = |first_seq, count, records: &[u8], buf: &mut [u8; 256]| {
            let n = Message::Batch(Batch { first_seq, base_ts: 100, count, records }).encode(0, buf).unwrap();
            n
        };
        let n = b(8, 3, &recs, &mut buf);
        let f = Frame { version: 1, kind: 4, flags: 0, seq: 0, body: &buf[13..n - 4] };
        let Step::Store { lines, news } = s.on_frame(&f, 7) else { panic!() };
        assert_eq!((lines.first_seq, lines.ends.len()), (8, 3));
        assert_eq!(news.results, vec![ResultInfo { token: "t1".into(), status: 0, message: String::new() }]);
        assert_eq!(s.expected(), 11);
        let text = String::from_utf8(lines.bytes).unwrap();
        assert!(text.lines().nth(2).unwrap().contains("\"b64\":\"/w==\""), "{text}");
        // A gap: starts above 11.
        let n = b(12, 3, &recs, &mut buf);
        let f = Frame { version: 1, kind: 4, flags: 0, seq: 0, body: &buf[13..n - 4] };
        assert!(matches!(s.on_frame(&f, 7), Step::Refuse(Refusal::Close { code: CloseCode::ProtocolError, .. })));
        // Count mismatch either way, and count 0.
        for count in [0, 2, 4] {
            let n = b(11, count, &recs, &mut buf);
            let f = Frame { version: 1, kind: 4, flags: 0, seq: 0, body: &buf[13..n - 4] };
            assert!(matches!(s.on_frame(&f, 7), Step::Refuse(_)), "count {count}");
        }
        // A truncated entry.
        let n = b(11, 3, &recs[..recs.len() - 1], &mut buf);
        let f = Frame { version: 1, kind: 4, flags: 0, seq: 0, body: &buf[13..n - 4] };
        assert!(matches!(s.on_frame(&f, 7), Step::Refuse(_)));
        assert_eq!(s.expected(), 11, "nothing refused moved the expected point");
        // Collector-only kinds and unknown kinds.
        let f = frame_of(Message::Hello(hello(512)), &mut buf);
        let Step::Refuse(Refusal::Close { code: CloseCode::ProtocolError, reason }) = s.on_frame(&f, 7) else { panic!() };
        assert_eq!(reason, "a second Hello on one connection");
        let mut f = frame_of(Message::Ping(Ping { nonce: 1 }), &mut buf);
        f.version = 2;
        assert!(matches!(s.on_frame(&f, 7), Step::Refuse(Refusal::Close { code: CloseCode::Incompatible, .. })), "another version after Accept: Close 5");
        let f = Frame { version: 1, kind: 64, flags: 0, seq: 0, body: &[1, 2, 3] };
        assert!(matches!(s.on_frame(&f, 7), Step::Skip));
    }

    #[test]
    fn batches_above_max_records_are_refused_before_their_lines_are_made() {
        let recs = entries(&[(2001, 105, b"x"), (2001, 106, b"y"), (2001, 107, b"z")], 100);
        let mut buf = [0u8; 256];
        let n = Message::Batch(Batch { first_seq: 0, base_ts: 100, count: 3, records: &recs }).encode(0, &mut buf).unwrap();
        let f = Frame { version: 1, kind: 4, flags: 0, seq: 0, body: &buf[13..n - 4] };
        let mut s = Session::new("a1".into(), "h".into(), 0).with_max_records(2);
        assert!(matches!(s.on_frame(&f, 7), Step::Refuse(Refusal::Close { code: CloseCode::ProtocolError, reason }) if reason.contains("at most 2")));
        let mut s = Session::new("a1".into(), "h".into(), 0).with_max_records(3);
        let Step::Store { lines, .. } = s.on_frame(&f, 7) else { panic!() };
        assert_eq!(lines.bytes.capacity(), lines.bytes.len(), "no spare capacity waits for the sink");
    }
}

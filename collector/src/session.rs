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
            Message::TaskResult(r) => Step::TaskResult(ResultInfo { token: r.token.as_str().into(), status: r.status, message: r.message.as_str().into() }),
            Message::Close(c) => Step::PeerClosed { code: c.code, reason: c.reason.as_str().into() },
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
                        news.results.push(ResultInfo { token: r.token.as_str().into(), status: r.status, message: r.message.as_str().into() });
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
            agent_id: "a1".into(), hostname: "h".into(), product: "p".into(), version: "1".into(), intranet_ipv4: &[10, 0, 0, 9],
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

    // ---- one test per rule (PROTOCOL.md row numbers: its conformance checklist) ----

    use agent_core::message::{encode_task_result, Accept, Ack, Close, Config, Pong, Reject, Task};

    /// A Batch frame's body: `first_seq`, `count`, `records` (entries of `entries`).
    fn batch_body(first_seq: u64, count: u32, records: &[u8], buf: &mut [u8]) -> usize {
        let n = Message::Batch(Batch { first_seq, base_ts: 100, count, records }).encode(0, buf).unwrap();
        n - 4
    }

    fn on_batch(s: &mut Session, first_seq: u64, count: u32, records: &[u8], now_ms: u64) -> Step {
        let mut buf = vec![0u8; records.len() + 64];
        let end = batch_body(first_seq, count, records, &mut buf);
        s.on_frame(&Frame { version: 1, kind: Kind::Batch as u8, flags: 0, seq: 0, body: &buf[13..end] }, now_ms)
    }

    fn app_records(n: usize) -> Vec<u8> {
        let recs: Vec<(u32, u64, &[u8])> = (0..n).map(|i| (2001, 100 + i as u64, &b"rec"[..])).collect();
        entries(&recs, 100)
    }

    fn is_close(step: &Step, want: CloseCode) -> bool {
        matches!(step, Step::Refuse(Refusal::Close { code, .. }) if *code == want)
    }

    fn json_lines(lines: &Lines) -> Vec<serde_json::Value> {
        let mut from = 0;
        lines
            .ends
            .iter()
            .map(|&end| {
                let v = serde_json::from_slice(&lines.bytes[from..end]).unwrap();
                from = end;
                v
            })
            .collect()
    }

    // Row 3; Forward compatibility: a Hello of another version gets a version-1 Reject(5), retry 0.
    #[test]
    fn a_hello_of_another_version_is_rejected_with_code_5() {
        let mut buf = [0u8; 256];
        let mut f = frame_of(Message::Hello(hello(512)), &mut buf);
        f.version = 7;
        let r = first_frame(&f, 4096);
        assert!(matches!(r, Err(Refusal::Reject { code: CloseCode::Incompatible, retry_after_ms: 0, .. })), "{r:?}");
    }

    // Row 4: Reject(5), not Accept, when max_frame < Hello.min_frame; equal is enough.
    #[test]
    fn a_min_frame_above_the_collectors_max_frame_is_rejected_with_code_5() {
        let mut buf = [0u8; 256];
        let f = frame_of(Message::Hello(hello(4097)), &mut buf);
        assert!(matches!(first_frame(&f, 4096), Err(Refusal::Reject { code: CloseCode::Incompatible, retry_after_ms: 0, .. })));
        let f = frame_of(Message::Hello(hello(4096)), &mut buf);
        assert_eq!(first_frame(&f, 4096).unwrap().min_frame, 4096);
    }

    // Lifecycle 1 and row 12: the first frame judged here must be a Hello; anything else,
    // or a Hello whose body does not decode, is Close(1).
    #[test]
    fn a_first_frame_other_than_a_well_formed_hello_is_closed_with_code_1() {
        let mut buf = [0u8; 256];
        for msg in [Message::Ping(Ping { nonce: 1 }), Message::Close(Close { code: 0, reason: "".into() })] {
            let r = first_frame(&frame_of(msg, &mut buf), 4096);
            assert!(matches!(r, Err(Refusal::Close { code: CloseCode::ProtocolError, .. })), "{msg:?}: {r:?}");
        }
        let f = frame_of(Message::Hello(hello(512)), &mut buf);
        let truncated = Frame { body: &f.body[..5], ..f };
        let Err(Refusal::Close { code: CloseCode::ProtocolError, reason }) = first_frame(&truncated, 4096) else { panic!() };
        assert_eq!(reason, "malformed Hello");
    }

    // Identity: what the Hello tells is kept whole; addresses as text, IPv4 before IPv6.
    #[test]
    fn a_hello_is_kept_with_every_address_as_text() {
        let mut buf = [0u8; 256];
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let h = Hello { extranet_ipv4: &[192, 0, 2, 1], intranet_ipv6: &v6, ..hello(512) };
        let info = first_frame(&frame_of(Message::Hello(h), &mut buf), 4096).unwrap();
        assert_eq!(info.addresses, ["10.0.0.9", "192.0.2.1", "2001:db8::1"]);
        assert_eq!((info.first_unacked_seq, info.next_seq, info.max_frame, info.min_frame), (3, 9, 4096, 512));
        assert_eq!((info.hostname.as_str(), info.product.as_str(), info.version.as_str()), ("h", "p", "1"));
    }

    // Row 7: the first Batch is expected at the session's start (the Accept's point), then
    // each where the last one ended.
    #[test]
    fn a_batch_at_the_expected_point_is_stored_and_moves_the_point_to_its_end() {
        let mut s = Session::new("a1".into(), "h".into(), 4);
        assert_eq!(s.expected(), 4);
        let Step::Store { lines, .. } = on_batch(&mut s, 4, 3, &app_records(3), 7) else { panic!() };
        assert_eq!((lines.first_seq, lines.ends.len()), (4, 3));
        assert_eq!(s.expected(), 7);
        assert!(matches!(on_batch(&mut s, 7, 1, &app_records(1), 7), Step::Store { .. }));
        assert_eq!(s.expected(), 8);
    }

    // Row 8: a Batch starting below the point carries duplicates; the session hands it to the
    // ledger whole (which writes only the new records, ledger tests) so all of it is acked,
    // and the point never moves back.
    #[test]
    fn a_batch_below_the_expected_point_is_passed_on_for_dedupe_and_never_lowers_the_point() {
        let mut s = Session::new("a1".into(), "h".into(), 10);
        let Step::Store { lines, .. } = on_batch(&mut s, 5, 3, &app_records(3), 7) else { panic!() };
        assert_eq!((lines.first_seq, lines.ends.len()), (5, 3));
        assert_eq!(s.expected(), 10, "wholly duplicate: the point stays");
        let Step::Store { lines, .. } = on_batch(&mut s, 9, 3, &app_records(3), 7) else { panic!() };
        assert_eq!((lines.first_seq, lines.ends.len()), (9, 3));
        assert_eq!(s.expected(), 12, "straddling: the point moves to its end");
    }

    // Row 9; Sequence numbers: a Batch above the expected point is a gap: nothing of it is
    // stored or acked, Close(1), and the point stays (nothing after it is acked either).
    #[test]
    fn a_batch_above_the_expected_point_is_a_gap_closed_with_code_1() {
        let mut s = Session::new("a1".into(), "h".into(), 10);
        let step = on_batch(&mut s, 11, 2, &app_records(2), 7);
        let Step::Refuse(Refusal::Close { code: CloseCode::ProtocolError, reason }) = step else { panic!("{step:?}") };
        assert!(reason.starts_with("gap:"), "{reason}");
        assert_eq!(s.expected(), 10);
    }

    // Row 11: a malformed Batch (count 0, entries not matching count, a broken entry, count
    // above the bound, numbers past u64) is refused whole with Close(1); the point stays.
    #[test]
    fn a_malformed_batch_is_refused_whole_with_code_1() {
        let three = app_records(3);
        let mut s = Session::new("a1".into(), "h".into(), 0).with_max_records(8);
        for (count, records) in [(0, &three[..0]), (0, &three[..]), (2, &three[..]), (4, &three[..]), (3, &three[..three.len() - 1])] {
            let step = on_batch(&mut s, 0, count, records, 7);
            assert!(is_close(&step, CloseCode::ProtocolError), "count {count}, {} bytes: {step:?}", records.len());
        }
        assert!(is_close(&on_batch(&mut s, 0, 9, &app_records(9), 7), CloseCode::ProtocolError), "above max_records");
        assert_eq!(s.expected(), 0);
        let mut s = Session::new("a1".into(), "h".into(), u64::MAX - 1);
        let step = on_batch(&mut s, u64::MAX - 1, 3, &three, 7);
        let Step::Refuse(Refusal::Close { code: CloseCode::ProtocolError, reason }) = step else { panic!("{step:?}") };
        assert_eq!(reason, "Batch sequence numbers overflow");
        assert_eq!(s.expected(), u64::MAX - 1);
    }

    // Sequence numbers (dense) and the sink's line format: one line per record, numbered
    // first_seq, first_seq + 1, ..., with the agent, host, type, timestamp and receive time.
    #[test]
    fn each_record_becomes_one_line_with_its_sequence_number() {
        let mut s = Session::new("a1".into(), "host-1".into(), 20);
        let recs = entries(&[(2001, 150, b"one"), (2002, 140, b"two")], 100);
        let Step::Store { lines, .. } = on_batch(&mut s, 20, 2, &recs, 1234) else { panic!() };
        let v = json_lines(&lines);
        assert_eq!(v.len(), 2);
        for (i, (line, (ty, ts, text))) in v.iter().zip([(2001, 150, "one"), (2002, 140, "two")]).enumerate() {
            assert_eq!(line["agent"], "a1");
            assert_eq!(line["host"], "host-1");
            assert_eq!(line["seq"], 20 + i as u64);
            assert_eq!(line["type"], ty);
            assert_eq!(line["ts"], ts, "a timestamp going backwards is kept as sent");
            assert_eq!(line["recv"], 1234);
            assert_eq!(line["text"], text);
        }
    }

    // Row 21; Forward compatibility: records of any data type are passed on unchanged (an
    // unknown type, or a known type whose payload does not decode, is still one line).
    #[test]
    fn records_of_unknown_types_or_undecodable_payloads_are_passed_on() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let bad_result: &[u8] = &[0xff, 0xff];
        let recs = entries(&[(54_321, 100, &[0, 159, 146, 150]), (data_type::TASK_RESULT, 100, bad_result)], 100);
        let Step::Store { lines, news } = on_batch(&mut s, 0, 2, &recs, 7) else { panic!() };
        let v = json_lines(&lines);
        assert_eq!((v[0]["type"].as_u64(), v[0]["b64"].as_str()), (Some(54_321), Some("AJ+Slg==")));
        assert_eq!((v[1]["type"].as_u64(), v[1]["b64"].as_str()), (Some(u64::from(data_type::TASK_RESULT)), Some("//8=")));
        assert_eq!(news, BatchNews::default(), "nothing for the registry in either");
    }

    // Row 17: task results come from TASK_RESULT records and from bare TaskResult frames,
    // each with its token, status and message.
    #[test]
    fn task_results_come_from_records_and_from_bare_frames() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let mut payload = [0u8; 64];
        let n = encode_task_result(&TaskResult { token: "tok-1".into(), status: 1, message: "disk full".into() }, &mut payload).unwrap();
        let recs = entries(&[(data_type::TASK_RESULT, 100, &payload[..n])], 100);
        let Step::Store { news, .. } = on_batch(&mut s, 0, 1, &recs, 7) else { panic!() };
        assert_eq!(news.results, [ResultInfo { token: "tok-1".into(), status: 1, message: "disk full".into() }]);
        let mut buf = [0u8; 128];
        let f = frame_of(Message::TaskResult(TaskResult { token: "tok-2".into(), status: 0, message: "".into() }), &mut buf);
        let Step::TaskResult(r) = s.on_frame(&f, 7) else { panic!() };
        assert_eq!(r, ResultInfo { token: "tok-2".into(), status: 0, message: String::new() });
    }

    // Heartbeats; row 20: the registry gets the latest agent heartbeat of a batch and every
    // plugin heartbeat; a heartbeat that does not decode is stored but tells it nothing.
    #[test]
    fn the_latest_agent_heartbeat_and_every_plugin_heartbeat_reach_the_registry() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let (mut hb1, mut hb2) = ([0u8; 256], [0u8; 256]);
        let first = AgentHeartbeat { lib: agent_core::AgentStats { pushed: 1, ..Default::default() }, ..Default::default() };
        let latest = AgentHeartbeat { lib: agent_core::AgentStats { pushed: 2, ..Default::default() }, ..Default::default() };
        let hb1: &[u8] = first.encode(&mut hb1).unwrap();
        let hb2: &[u8] = latest.encode(&mut hb2).unwrap();
        // A plugin heartbeat: name, version, pid 7, status 1 (running).
        let plugin: &[u8] = &[7, b's', b'c', b'a', b'n', b'n', b'e', b'r', 3, b'1', b'.', b'0', 7, 1];
        let broken: &[u8] = &[0x80];
        let recs = entries(
            &[
                (data_type::AGENT_HEARTBEAT, 100, hb1),
                (data_type::PLUGIN_HEARTBEAT, 100, plugin),
                (data_type::AGENT_HEARTBEAT, 101, hb2),
                (data_type::AGENT_HEARTBEAT, 102, broken),
            ],
            100,
        );
        let Step::Store { lines, news } = on_batch(&mut s, 0, 4, &recs, 7) else { panic!() };
        assert_eq!(lines.ends.len(), 4);
        assert_eq!(news.heartbeat.map(|h| h.lib.pushed), Some(2), "the latest one that decodes");
        assert_eq!(news.plugins.len(), 1);
        assert_eq!((news.plugins[0].name.as_str(), news.plugins[0].version.as_str(), news.plugins[0].pid), ("scanner", "1.0", 7));
        assert!(news.results.is_empty());
    }

    // Row 14: every Ping is answered with a Pong of the same nonce; a Pong answers ours.
    #[test]
    fn a_ping_is_answered_with_its_nonce_and_a_pong_is_reported() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let mut buf = [0u8; 64];
        assert!(matches!(s.on_frame(&frame_of(Message::Ping(Ping { nonce: u64::MAX }), &mut buf), 7), Step::Pong(u64::MAX)));
        assert!(matches!(s.on_frame(&frame_of(Message::Pong(Pong { nonce: 42 }), &mut buf), 7), Step::PongReceived(42)));
    }

    // Lifecycle 4: an agent's Close ends the session; the collector closes without answering.
    #[test]
    fn a_close_from_the_agent_is_reported_with_its_code_and_reason() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let mut buf = [0u8; 64];
        let step = s.on_frame(&frame_of(Message::Close(Close { code: 2, reason: "bye".into() }), &mut buf), 7);
        let Step::PeerClosed { code, reason } = step else { panic!("{step:?}") };
        assert_eq!((code, reason.as_str()), (2, "bye"));
    }

    // Row 12: a second Hello and every kind only a collector sends are Close(1).
    #[test]
    fn a_second_hello_and_kinds_only_a_collector_sends_are_closed_with_code_1() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let mut buf = [0u8; 256];
        let msgs = [
            Message::Hello(hello(512)),
            Message::Accept(Accept { next_seq: 0, max_frame: 4096, retry_window_ms: 0 }),
            Message::Reject(Reject { code: 6, reason: "".into(), retry_after_ms: 0 }),
            Message::Ack(Ack { up_to: 0 }),
            Message::Task(Task { object_name: "".into(), data_type: 6000, payload: b"", token: "t".into() }),
            Message::Config(Config { name: "c".into(), version: "1".into(), payload: b"" }),
        ];
        for msg in msgs {
            let step = s.on_frame(&frame_of(msg, &mut buf), 7);
            assert!(is_close(&step, CloseCode::ProtocolError), "{msg:?}: {step:?}");
        }
        assert_eq!(s.expected(), 0);
    }

    // Row 12: a body that does not decode is Close(1); a frame of another version after the
    // Accept is Close(5), whatever its kind.
    #[test]
    fn a_malformed_body_is_closed_with_code_1_and_another_version_with_code_5() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        let truncated_varint = Frame { version: 1, kind: Kind::Ping as u8, flags: 0, seq: 0, body: &[0x80] };
        assert!(is_close(&s.on_frame(&truncated_varint, 7), CloseCode::ProtocolError));
        for kind in [Kind::Batch as u8, Kind::Ping as u8, 200] {
            let f = Frame { version: 2, kind, flags: 0, seq: 0, body: &[] };
            assert!(is_close(&s.on_frame(&f, 7), CloseCode::Incompatible), "kind {kind}");
        }
    }

    // Forward compatibility: unknown kinds are skipped (the connection goes on), trailing
    // body bytes and unknown flag bits are ignored.
    #[test]
    fn unknown_kinds_are_skipped_and_trailing_bytes_and_flags_ignored() {
        let mut s = Session::new("a1".into(), "h".into(), 0);
        for kind in [0, 12, 63, 255] {
            assert!(matches!(s.on_frame(&Frame { version: 1, kind, flags: 0, seq: 0, body: &[1, 2] }, 7), Step::Skip), "kind {kind}");
        }
        let ping_with_more = Frame { version: 1, kind: Kind::Ping as u8, flags: 0xff, seq: 9, body: &[5, 1, 2, 3] };
        assert!(matches!(s.on_frame(&ping_with_more, 7), Step::Pong(5)));
        assert!(matches!(on_batch(&mut s, 0, 1, &app_records(1), 7), Step::Store { .. }), "the connection went on");
    }
}

//! The test vectors of PROTOCOL.md, checked against the codec.
//!
//! Every vector in the document is a fenced block right after a line
//! `<!-- vector: NAME -->`. Each block lists hex bytes, one field per line,
//! with a `#` comment naming the field and its value. This file builds the
//! same vectors from Rust values and checks, for every one:
//!
//! * the block's bytes equal what `agent_core` encodes (`Message::encode`,
//!   `encode_task_result`, `crc32c`), exactly;
//! * the bytes decode back (`FrameDecoder`, then `Message::decode`) to the
//!   message they were built from;
//! * the whole block text, comments included, equals the generated one, so
//!   the field annotations cannot go stale either;
//! * every named vector in the document is known here, every vector here is
//!   in the document, and every message kind has one.
//!
//! The annotated blocks are produced by a small second encoder in this file
//! (varints, zigzag, length prefixes, CRC), which the checks above hold
//! against the library's encoder. To regenerate the blocks after changing a
//! vector:
//!
//! ```text
//! cargo test -p agent-core --test vectors -- --ignored --nocapture print_vectors
//! ```

use agent_core::Text;
use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::frame::{self, crc32c, Kind, MAGIC, VERSION};
use agent_core::message::{
    self, task_status, Accept, Ack, Batch, Close, CloseCode, Config, DecodeError, Hello, Message, Ping, Pong, Reject,
    Task, TaskResult,
};
use agent_core::heartbeat::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};
use agent_core::record::{data_type, ts_delta, EntryHeader, Record};
use agent_core::varint;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

const DOC: &str = include_str!("../../PROTOCOL.md");

/// Column where a line's comment starts (16 hex bytes fit before it).
const COMMENT_COL: usize = 49;
/// Bytes per line when a field is long.
const BYTES_PER_LINE: usize = 16;

// ---- annotated byte blocks ------------------------------------------------

/// Bytes with one comment per field; renders as the document's blocks.
#[derive(Default)]
struct Block {
    fields: Vec<(Vec<u8>, String)>,
}

impl Block {
    fn raw(&mut self, bytes: &[u8], comment: impl Into<String>) {
        self.fields.push((bytes.to_vec(), comment.into()));
    }

    fn append(&mut self, other: Block) {
        self.fields.extend(other.fields);
    }

    fn uint(&mut self, name: &str, v: u64) {
        let (b, n) = varint::encode_u64_array(v);
        self.raw(&b[..n], format!("{name} = {v}"));
    }

    fn sint(&mut self, name: &str, v: i64, extra: &str) {
        let z = varint::zigzag(v);
        let (b, n) = varint::encode_u64_array(z);
        self.raw(&b[..n], format!("{name} = {v} (zigzag {z}){extra}"));
    }

    fn len_prefix(&mut self, name: &str, len: usize, extra: &str) {
        let (b, n) = varint::encode_u64_array(len as u64);
        self.raw(&b[..n], format!("{name}: length {len}{extra}"));
    }

    /// A string field: length, then the UTF-8 bytes (omitted when empty).
    fn string(&mut self, name: &str, s: &str) {
        self.bytes(name, s.as_bytes(), &format!("{s:?}"));
    }

    /// A byte-string field: length, then the bytes described by `what`
    /// (indented like `name`).
    fn bytes(&mut self, name: &str, b: &[u8], what: &str) {
        self.len_prefix(name, b.len(), "");
        if !b.is_empty() {
            let indent = &name[..name.len() - name.trim_start().len()];
            self.raw(b, format!("{indent}{what}"));
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.fields.iter().flat_map(|(b, _)| b.iter().copied()).collect()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (bytes, comment) in &self.fields {
            for (i, chunk) in bytes.chunks(BYTES_PER_LINE).enumerate() {
                let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                let hex = hex.join(" ");
                if i == 0 {
                    let _ = writeln!(out, "{hex:<width$}# {comment}", width = COMMENT_COL - 1);
                } else {
                    let _ = writeln!(out, "{hex}");
                }
            }
        }
        out
    }
}

/// Text shown as a quoted string, anything else as "(opaque bytes)".
fn describe(b: &[u8]) -> String {
    match core::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n') => format!("{s:?}"),
        _ => "(opaque bytes)".to_string(),
    }
}

fn ipv4_list(b: &[u8]) -> String {
    let list: Vec<String> = b.chunks(4).map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()).collect();
    list.join(", ")
}

fn ipv6_list(b: &[u8]) -> String {
    let list: Vec<String> =
        b.chunks(16).map(|a| Ipv6Addr::from(<[u8; 16]>::try_from(a).unwrap()).to_string()).collect();
    list.join(", ")
}

fn kind_name(kind: u8) -> String {
    match Kind::from_u8(kind) {
        Some(k) => format!("kind = {kind} ({k:?})"),
        None => format!("kind = {kind} (unknown to this version)"),
    }
}

fn close_code_name(code: u16) -> String {
    match CloseCode::from_u16(code) {
        Some(c) => format!("{c:?}"),
        None => "unknown".to_string(),
    }
}

fn task_result_fields(r: &TaskResult<'_>, prefix: &str) -> Block {
    let status = match r.status {
        task_status::OK => "OK",
        task_status::FAILED => "FAILED",
        task_status::UNKNOWN_TARGET => "UNKNOWN_TARGET",
        task_status::DROPPED => "DROPPED",
        _ => "unknown",
    };
    let mut b = Block::default();
    b.string(&format!("{prefix}token"), r.token.as_str());
    let (v, n) = varint::encode_u64_array(r.status.into());
    b.raw(&v[..n], format!("{prefix}status = {} ({status})", r.status));
    b.string(&format!("{prefix}message"), r.message.as_str());
    b
}

/// The annotated body of `msg`, field by field.
fn body_fields(msg: &Message<'_>) -> Block {
    let mut b = Block::default();
    match msg {
        Message::Hello(h) => {
            b.string("agent_id", h.agent_id.as_str());
            b.string("hostname", h.hostname.as_str());
            b.string("product", h.product.as_str());
            b.string("version", h.version.as_str());
            b.bytes("intranet_ipv4", h.intranet_ipv4, &ipv4_list(h.intranet_ipv4));
            b.bytes("intranet_ipv6", h.intranet_ipv6, &ipv6_list(h.intranet_ipv6));
            b.bytes("extranet_ipv4", h.extranet_ipv4, &ipv4_list(h.extranet_ipv4));
            b.bytes("extranet_ipv6", h.extranet_ipv6, &ipv6_list(h.extranet_ipv6));
            b.bytes("auth_token", h.auth_token, &describe(h.auth_token));
            b.uint("first_unacked_seq", h.first_unacked_seq);
            b.uint("next_seq", h.next_seq);
            b.uint("max_frame", h.max_frame.into());
            b.uint("min_frame", h.min_frame.into());
        }
        Message::Accept(a) => {
            b.uint("next_seq", a.next_seq);
            b.uint("max_frame", a.max_frame.into());
            b.uint("retry_window_ms", a.retry_window_ms.into());
        }
        Message::Reject(r) => {
            let (v, n) = varint::encode_u64_array(r.code.into());
            b.raw(&v[..n], format!("code = {} ({})", r.code, close_code_name(r.code)));
            b.string("reason", r.reason.as_str());
            b.uint("retry_after_ms", r.retry_after_ms.into());
        }
        Message::Batch(batch) => {
            b.uint("first_seq", batch.first_seq);
            b.uint("base_ts", batch.base_ts);
            b.uint("count", batch.count.into());
            b.len_prefix("records", batch.records.len(), ", the entries below");
            let mut prev = batch.base_ts;
            for (i, rec) in batch.iter().enumerate() {
                let rec = rec.expect("vector batch is well formed");
                let seq = batch.first_seq + i as u64;
                b.uint(&format!("entry {i} (seq {seq}): data_type"), rec.data_type.into());
                let delta = ts_delta(prev, rec.timestamp_ms);
                b.sint("  ts_delta", delta, &format!(", ts = {}", rec.timestamp_ms));
                prev = rec.timestamp_ms;
                b.uint("  payload_len", rec.payload.len() as u64);
                if rec.data_type == data_type::TASK_RESULT {
                    let (r, rest) = postcard::take_from_bytes::<TaskResult<'_>>(rec.payload).unwrap();
                    assert!(rest.is_empty());
                    b.append(task_result_fields(&r, "  payload (TaskResult) "));
                } else if !rec.payload.is_empty() {
                    b.raw(rec.payload, format!("  payload {}", describe(rec.payload)));
                }
            }
        }
        Message::Ack(a) => b.uint("up_to", a.up_to),
        Message::Ping(p) => b.uint("nonce", p.nonce),
        Message::Pong(p) => b.uint("nonce", p.nonce),
        Message::Task(t) => {
            b.string("object_name", t.object_name.as_str());
            b.uint("data_type", t.data_type.into());
            b.bytes("payload", t.payload, &describe(t.payload));
            b.string("token", t.token.as_str());
        }
        Message::Config(c) => {
            b.string("name", c.name.as_str());
            b.string("version", c.version.as_str());
            b.bytes("payload", c.payload, &describe(c.payload));
        }
        Message::TaskResult(r) => b.append(task_result_fields(r, "")),
        Message::Close(c) => {
            let (v, n) = varint::encode_u64_array(c.code.into());
            b.raw(&v[..n], format!("code = {} ({})", c.code, close_code_name(c.code)));
            b.string("reason", c.reason.as_str());
        }
    }
    b
}

/// A whole frame around `body`: header, body, CRC.
fn frame_block(kind: u8, flags: u8, seq: u32, body: Block) -> Block {
    let body_len = body.to_bytes().len();
    let mut b = Block::default();
    b.raw(&MAGIC, "magic");
    b.raw(&[VERSION], format!("version = {VERSION}"));
    b.raw(&[kind], kind_name(kind));
    b.raw(&[flags], format!("flags = 0x{flags:02x}"));
    b.raw(&(body_len as u32).to_le_bytes(), format!("body_len = {body_len} (u32 LE)"));
    b.raw(&seq.to_le_bytes(), format!("seq = {seq} (u32 LE)"));
    b.append(body);
    let covered = b.to_bytes();
    let crc = crc32c(&covered);
    b.raw(&crc.to_le_bytes(), format!("crc32c = 0x{crc:08x} (u32 LE) over the {} bytes above", covered.len()));
    b
}

// ---- the vectors ------------------------------------------------------------

/// What a vector's bytes must be and do.
enum Expect {
    /// A frame: `Message::encode(seq)` gives exactly these bytes, and they
    /// decode back to the message.
    Message { seq: u32, msg: Message<'static> },
    /// A frame built by hand (unknown kind, flags, trailing bytes): the
    /// decoder returns it, and `Message::decode` gives this result.
    RawFrame { seq: u32, kind: u8, flags: u8, decodes_to: Result<Message<'static>, DecodeError> },
    /// A TaskResult body alone (a TASK_RESULT record's payload).
    TaskResultBody(TaskResult<'static>),
    /// `b"123456789"` followed by its CRC-32C, little-endian.
    Crc,
    /// An agent heartbeat record's payload.
    HeartbeatPayload(AgentHeartbeat),
    /// A byte stream a decoder reads as exactly this: the frames delivered
    /// (in order), and its skip counters.
    Resync { frames: Vec<Message<'static>>, skipped: u64, bad_crc: u64 },
}

struct Vector {
    name: &'static str,
    block: Block,
    expect: Expect,
}

fn leak(b: Vec<u8>) -> &'static [u8] {
    b.leak()
}

const TASK_RESULT_OK: TaskResult<'static> = TaskResult { token: Text::new("t-42"), status: task_status::OK, message: Text::new("ok") };

fn task_result_body(r: &TaskResult<'_>) -> Vec<u8> {
    let mut out = [0u8; 256];
    let n = message::encode_task_result(r, &mut out).unwrap();
    out[..n].to_vec()
}

/// The records of the `batch` vector.
fn batch_records() -> Vec<Record<'static>> {
    let tr = leak(task_result_body(&TASK_RESULT_OK));
    vec![
        Record::new(2001, 1_700_000_000_250, b"disk /var 91%"),
        Record::new(3002, 1_700_000_000_245, b"\x01\x02\x03"), // 5 ms earlier
        Record::new(data_type::TASK_RESULT, 1_700_000_001_000, tr),
        Record::new(70_000, 1_699_999_999_000, b""), // 2 s earlier, empty payload
    ]
}

const BATCH_BASE_TS: u64 = 1_700_000_000_000;

fn encode_entries(records: &[Record<'_>], base_ts: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = base_ts;
    for r in records {
        let (h, n) = EntryHeader::new(r.data_type, ts_delta(prev, r.timestamp_ms), r.payload.len()).encode();
        out.extend_from_slice(&h[..n]);
        out.extend_from_slice(r.payload);
        prev = r.timestamp_ms;
    }
    out
}

fn messages() -> Vec<(&'static str, u32, Message<'static>)> {
    let records = batch_records();
    let batch = Batch {
        first_seq: 1230,
        base_ts: BATCH_BASE_TS,
        count: records.len() as u32,
        records: leak(encode_entries(&records, BATCH_BASE_TS)),
    };
    vec![
        (
            "hello",
            0,
            Message::Hello(Hello {
                agent_id: "5f2d1c7a-3b9e-4c1d-8a6f-0e4b2a9c7d31".into(),
                hostname: "web-01".into(),
                product: "edge-agent".into(),
                version: "1.4.2".into(),
                intranet_ipv4: &[10, 0, 0, 5, 192, 168, 1, 20],
                intranet_ipv6: &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
                extranet_ipv4: &[203, 0, 113, 7],
                extranet_ipv6: &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
                auth_token: b"tok-8f3a",
                first_unacked_seq: 1200,
                next_seq: 1234,
                max_frame: 65_536,
                min_frame: 4_163,
            }),
        ),
        (
            "hello-small",
            0,
            Message::Hello(Hello {
                agent_id: "a1".into(),
                hostname: "h".into(),
                product: "p".into(),
                version: "1".into(),
                intranet_ipv4: &[192, 168, 0, 9],
                intranet_ipv6: &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                extranet_ipv4: &[],
                extranet_ipv6: &[],
                auth_token: &[],
                first_unacked_seq: 0,
                next_seq: 0,
                max_frame: 1024,
                min_frame: 456,
            }),
        ),
        ("accept", 0, Message::Accept(Accept { next_seq: 1230, max_frame: 262_144, retry_window_ms: 20_000 })),
        (
            "reject",
            0,
            Message::Reject(Reject {
                code: CloseCode::Unauthorized as u16,
                reason: "bad token".into(),
                retry_after_ms: 30_000,
            }),
        ),
        ("batch", 1, Message::Batch(batch)),
        ("ack", 1, Message::Ack(Ack { up_to: 1233 })),
        ("ping", 7, Message::Ping(Ping { nonce: 0xdead_beef })),
        ("pong", 9, Message::Pong(Pong { nonce: 0xdead_beef })),
        (
            "task",
            2,
            Message::Task(Task {
                object_name: "scanner".into(),
                data_type: 6001,
                payload: br#"{"path":"/tmp"}"#,
                token: "t-42".into(),
            }),
        ),
        (
            "task-shutdown",
            3,
            Message::Task(Task { object_name: "".into(), data_type: data_type::SHUTDOWN_TASK, payload: b"", token: "t-43".into() }),
        ),
        ("config", 4, Message::Config(Config { name: "agent".into(), version: "v12".into(), payload: b"log_level=debug\n" })),
        (
            "task-result",
            5,
            Message::TaskResult(TaskResult { token: "t-42".into(), status: task_status::FAILED, message: "no such path".into() }),
        ),
        ("close", 6, Message::Close(Close { code: CloseCode::Shutdown as u16, reason: "agent stopping".into() })),
    ]
}

fn vectors() -> Vec<Vector> {
    let mut v: Vec<Vector> = messages()
        .into_iter()
        .map(|(name, seq, msg)| Vector {
            name,
            block: frame_block(msg.kind() as u8, 0, seq, body_fields(&msg)),
            expect: Expect::Message { seq, msg },
        })
        .collect();

    // Forward compatibility: a flag bit this version does not know and two
    // bytes after the last field; both ignored.
    let mut body = body_fields(&Message::Ack(Ack { up_to: 1233 }));
    body.raw(&[0x01, 0x02], "a field appended by a later version: ignored");
    v.push(Vector {
        name: "ack-extended",
        block: frame_block(Kind::Ack as u8, 0x80, 2, body),
        expect: Expect::RawFrame {
            seq: 2,
            kind: Kind::Ack as u8,
            flags: 0x80,
            decodes_to: Ok(Message::Ack(Ack { up_to: 1233 })),
        },
    });

    // A kind this version does not know: a valid frame, skipped by receivers.
    let mut body = Block::default();
    body.raw(&[0x01, 0x02, 0x03], "body of the unknown kind");
    v.push(Vector {
        name: "unknown-kind",
        block: frame_block(0x40, 0, 3, body),
        expect: Expect::RawFrame { seq: 3, kind: 0x40, flags: 0, decodes_to: Err(DecodeError::UnknownKind) },
    });

    v.push(Vector {
        name: "task-result-body",
        block: task_result_fields(&TASK_RESULT_OK, ""),
        expect: Expect::TaskResultBody(TASK_RESULT_OK),
    });

    let hb = heartbeat_example();
    v.push(Vector { name: "heartbeat-payload", block: heartbeat_fields(&hb), expect: Expect::HeartbeatPayload(hb) });

    v.push(resync_vector());

    let mut crc = Block::default();
    crc.raw(b"123456789", "input: ASCII \"123456789\"");
    let c = crc32c(b"123456789");
    crc.raw(&c.to_le_bytes(), format!("crc32c = 0x{c:08x}, written little-endian"));
    v.push(Vector { name: "crc", block: crc, expect: Expect::Crc });
    v
}

/// A heartbeat with some host stats present and some absent, and every
/// library counter distinct, so each field's place shows.
fn heartbeat_example() -> AgentHeartbeat {
    let host = HostStats {
        cpu_permille: Some(37),
        rss_bytes: Some(3_145_728),
        open_fds: None,
        load1_centi: Some(125),
        load5_centi: Some(98),
        load15_centi: Some(80),
        mem_used_bytes: None,
        mem_total_bytes: None,
        tx_bytes_per_sec: Some(2048),
        rx_bytes_per_sec: Some(512),
    };
    let lib = AgentStats {
        pushed: 1500,
        acked: 1480,
        dropped_full: 3,
        dropped_too_large: 1,
        dropped_evicted: 0,
        bytes_sent: 200_000,
        bytes_received: 9_000,
        frames_sent: 410,
        frames_received: 400,
        connections: 2,
        connect_failures: 1,
        last_rtt_ms: Some(42),
        decoder_skipped_bytes: 17,
        decoder_bad_crc: 1,
        unknown_kinds: 0,
        malformed: 0,
        events_dropped: 0,
        tasks_unroutable: 1,
        protocol_errors: 0,
        ring_used_bytes: 1_200,
        ring_capacity: 65_536,
        tasks_duplicate: 2,
        decoder_oversized: 0,
        clock_anomalies: 0,
        peer_incompatible: 0,
        ack_timeouts: 1,
    };
    let records = HeartbeatRecords { pushed: 30, dropped_full: 0, dropped_evicted: 2 };
    AgentHeartbeat { host, lib, heartbeat_records: Some(records) }
}

fn heartbeat_fields(hb: &AgentHeartbeat) -> Block {
    let mut b = Block::default();
    let option = |b: &mut Block, name: &str, v: Option<u64>| match v {
        None => b.raw(&[0], format!("host.{name}: absent")),
        Some(x) => {
            let (vb, n) = varint::encode_u64_array(x);
            let mut bytes = vec![1];
            bytes.extend_from_slice(&vb[..n]);
            b.raw(&bytes, format!("host.{name}: present, {x}"));
        }
    };
    let h = &hb.host;
    option(&mut b, "cpu_permille", h.cpu_permille.map(u64::from));
    option(&mut b, "rss_bytes", h.rss_bytes);
    option(&mut b, "open_fds", h.open_fds.map(u64::from));
    option(&mut b, "load1_centi", h.load1_centi.map(u64::from));
    option(&mut b, "load5_centi", h.load5_centi.map(u64::from));
    option(&mut b, "load15_centi", h.load15_centi.map(u64::from));
    option(&mut b, "mem_used_bytes", h.mem_used_bytes);
    option(&mut b, "mem_total_bytes", h.mem_total_bytes);
    option(&mut b, "tx_bytes_per_sec", h.tx_bytes_per_sec);
    option(&mut b, "rx_bytes_per_sec", h.rx_bytes_per_sec);
    let l = &hb.lib;
    let before_rtt = [
        ("pushed", l.pushed),
        ("acked", l.acked),
        ("dropped_full", l.dropped_full),
        ("dropped_too_large", l.dropped_too_large),
        ("dropped_evicted", l.dropped_evicted),
        ("bytes_sent", l.bytes_sent),
        ("bytes_received", l.bytes_received),
        ("frames_sent", l.frames_sent),
        ("frames_received", l.frames_received),
        ("connections", l.connections),
        ("connect_failures", l.connect_failures),
    ];
    for (name, v) in before_rtt {
        b.uint(&format!("lib.{name}"), v);
    }
    match l.last_rtt_ms {
        None => b.raw(&[0], "lib.last_rtt_ms: absent"),
        Some(x) => {
            let (vb, n) = varint::encode_u64_array(x.into());
            let mut bytes = vec![1];
            bytes.extend_from_slice(&vb[..n]);
            b.raw(&bytes, format!("lib.last_rtt_ms: present, {x}"));
        }
    }
    let after_rtt = [
        ("decoder_skipped_bytes", l.decoder_skipped_bytes),
        ("decoder_bad_crc", l.decoder_bad_crc),
        ("unknown_kinds", l.unknown_kinds),
        ("malformed", l.malformed),
        ("events_dropped", l.events_dropped),
        ("tasks_unroutable", l.tasks_unroutable),
        ("protocol_errors", l.protocol_errors),
        ("ring_used_bytes", l.ring_used_bytes.into()),
        ("ring_capacity", l.ring_capacity.into()),
        ("tasks_duplicate", l.tasks_duplicate),
        ("decoder_oversized", l.decoder_oversized),
        ("clock_anomalies", l.clock_anomalies),
        ("peer_incompatible", l.peer_incompatible),
        ("ack_timeouts", l.ack_timeouts),
    ];
    for (name, v) in after_rtt {
        b.uint(&format!("lib.{name}"), v);
    }
    match hb.heartbeat_records {
        None => b.raw(&[0], "heartbeat_records: absent (revision 3)"),
        Some(r) => {
            let (vb, n) = varint::encode_u64_array(r.pushed);
            let mut bytes = vec![1];
            bytes.extend_from_slice(&vb[..n]);
            b.raw(&bytes, format!("heartbeat_records: present (revision 3); pushed = {}", r.pushed));
            b.uint("heartbeat_records.dropped_full", r.dropped_full);
            b.uint("heartbeat_records.dropped_evicted", r.dropped_evicted);
        }
    }
    b
}

/// Three bytes of garbage, a Ping whose CRC was damaged, a false start
/// (`ea` not followed by `9e`), then a good Ack. The decoder skips the
/// garbage (3), the damaged frame (21, one bad CRC) and the false start (2),
/// and delivers the Ack.
fn resync_vector() -> Vector {
    let mut b = Block::default();
    b.raw(&[0x00, 0x13, 0x37], "garbage: skipped (3 bytes)");
    let ping = frame_block(Kind::Ping as u8, 0, 7, body_fields(&Message::Ping(Ping { nonce: 0x0102_0304 })));
    let mut damaged = ping.fields;
    let (crc, _) = damaged.pop().unwrap();
    let bad: Vec<u8> = crc.iter().enumerate().map(|(i, &x)| if i == 0 { x ^ 0x01 } else { x }).collect();
    let good = u32::from_le_bytes(crc.clone().try_into().unwrap());
    let got = u32::from_le_bytes(bad.clone().try_into().unwrap());
    for (bytes, comment) in damaged {
        b.raw(&bytes, format!("damaged Ping: {comment}"));
    }
    b.raw(&bad, format!("damaged Ping: crc32c 0x{got:08x}, not 0x{good:08x}: bad CRC, all 21 bytes skipped"));
    b.raw(&[0xea, 0x00], "false start: 0xEA not followed by 0x9E, both skipped");
    let ack = frame_block(Kind::Ack as u8, 0, 8, body_fields(&Message::Ack(Ack { up_to: 1233 })));
    for (bytes, comment) in ack.fields {
        b.raw(&bytes, format!("good Ack: {comment}"));
    }
    Vector {
        name: "resync",
        block: b,
        expect: Expect::Resync { frames: vec![Message::Ack(Ack { up_to: 1233 })], skipped: 26, bad_crc: 1 },
    }
}

// ---- reading the document ---------------------------------------------------

struct DocVector {
    name: String,
    /// The block's lines, as written.
    text: String,
    bytes: Vec<u8>,
}

const MARKER: &str = "<!-- vector:";

fn parse_hex_line(line: &str, name: &str) -> Vec<u8> {
    let hex = line.split('#').next().unwrap_or("");
    hex.split_whitespace()
        .map(|tok| {
            assert!(tok.len() == 2, "vector {name}: token {tok:?} is not one hex byte (line {line:?})");
            u8::from_str_radix(tok, 16)
                .unwrap_or_else(|_| panic!("vector {name}: token {tok:?} is not hex (line {line:?})"))
        })
        .collect()
}

fn doc_vectors() -> Vec<DocVector> {
    let mut out = Vec::new();
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix(MARKER) else { continue };
        let name = rest.strip_suffix("-->").unwrap_or_else(|| panic!("bad vector marker {line:?}")).trim();
        let fence = lines.by_ref().find(|l| !l.trim().is_empty()).expect("vector marker at end of document");
        assert!(fence.trim_start().starts_with("```"), "vector {name}: marker not followed by a code block");
        let mut text = String::new();
        let mut bytes = Vec::new();
        loop {
            let l = lines.next().unwrap_or_else(|| panic!("vector {name}: unterminated code block"));
            if l.trim_start().starts_with("```") {
                break;
            }
            text.push_str(l);
            text.push('\n');
            bytes.extend(parse_hex_line(l, name));
        }
        assert!(!bytes.is_empty(), "vector {name}: empty block");
        out.push(DocVector { name: name.to_string(), text, bytes });
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Feeds `bytes` to a fresh decoder one byte at a time and returns the one
/// frame's fields, checking nothing else comes out and nothing is skipped.
fn decode_one(bytes: &[u8], check: impl FnOnce(&frame::Frame<'_>)) {
    let mut store = [0u8; 1024];
    let mut dec = FrameDecoder::new(&mut store);
    let mut check = Some(check);
    for (i, b) in bytes.iter().enumerate() {
        match dec.feed(core::slice::from_ref(b)) {
            Feed::Consumed => assert!(i + 1 < bytes.len(), "no frame after the last byte"),
            Feed::Frame { frame, remaining } => {
                assert_eq!(i + 1, bytes.len(), "frame before the last byte");
                assert!(remaining.is_empty());
                (check.take().expect("two frames"))(&frame);
            }
        }
    }
    assert!(check.is_none(), "no frame decoded");
    let stats = dec.stats();
    assert_eq!((stats.frames, stats.skipped_bytes, stats.bad_crc, stats.oversized), (1, 0, 0, 0));
}

fn check_vector(v: &Vector, bytes: &[u8]) {
    let name = v.name;
    match &v.expect {
        Expect::Message { seq, msg } => {
            let mut out = [0u8; 1024];
            let n = msg.encode(*seq, &mut out).unwrap();
            assert_eq!(hex(&out[..n]), hex(bytes), "vector {name}: encoder output differs from the document");
            decode_one(bytes, |f| {
                assert_eq!((f.version, f.kind, f.flags, f.seq), (VERSION, msg.kind() as u8, 0, *seq), "{name}");
                assert_eq!(Message::decode(f), Ok(*msg), "vector {name}");
            });
        }
        Expect::RawFrame { seq, kind, flags, decodes_to } => {
            decode_one(bytes, |f| {
                assert_eq!((f.version, f.kind, f.flags, f.seq), (VERSION, *kind, *flags, *seq), "{name}");
                assert_eq!(Message::decode(f), *decodes_to, "vector {name}");
            });
        }
        Expect::TaskResultBody(r) => {
            assert_eq!(hex(&task_result_body(r)), hex(bytes), "vector {name}");
            let (got, rest) = postcard::take_from_bytes::<TaskResult<'_>>(bytes).unwrap();
            assert!(rest.is_empty());
            assert_eq!(got, *r, "vector {name}");
        }
        Expect::HeartbeatPayload(hb) => {
            let mut out = [0u8; agent_core::heartbeat::MAX_HEARTBEAT_LEN];
            let n = hb.encode(&mut out).unwrap().len();
            assert_eq!(hex(&out[..n]), hex(bytes), "vector {name}: encoder output differs");
            assert_eq!(AgentHeartbeat::decode(bytes), Some(*hb), "vector {name}");
            // The same payload from a revision-2 agent ends before
            // `heartbeat_records`: it decodes, that field unknown.
            let old = AgentHeartbeat { heartbeat_records: None, ..*hb };
            let m = old.encode(&mut out).unwrap().len() - 1;
            assert_eq!(AgentHeartbeat::decode(&bytes[..m]), Some(old), "vector {name}, revision 2 prefix");
        }
        Expect::Resync { frames, skipped, bad_crc } => {
            // Any chunking gives the same result; try whole and byte by byte.
            for chunk in [bytes.len(), 1] {
                let mut store = [0u8; 1024];
                let mut dec = FrameDecoder::new(&mut store);
                let mut got = Vec::new();
                for piece in bytes.chunks(chunk) {
                    let mut input = piece;
                    loop {
                        match dec.feed(input) {
                            Feed::Consumed => break,
                            Feed::Frame { frame, remaining } => {
                                let mut buf = [0u8; 64];
                                let msg = Message::decode(&frame).unwrap();
                                let n = msg.encode(frame.seq, &mut buf).unwrap();
                                got.push(buf[..n].to_vec());
                                input = remaining;
                            }
                        }
                    }
                }
                let want: Vec<Vec<u8>> = frames
                    .iter()
                    .map(|m| {
                        let mut buf = [0u8; 64];
                        let n = m.encode(8, &mut buf).unwrap();
                        buf[..n].to_vec()
                    })
                    .collect();
                assert_eq!(got, want, "vector {name}: frames delivered (chunks of {chunk})");
                let st = dec.stats();
                assert_eq!((st.skipped_bytes, st.bad_crc, st.oversized), (*skipped, *bad_crc, 0), "vector {name}");
            }
        }
        Expect::Crc => {
            let (input, crc) = bytes.split_at(bytes.len() - 4);
            assert_eq!(input, b"123456789");
            assert_eq!(crc32c(input).to_le_bytes(), crc, "vector {name}");
            assert_eq!(crc, [0x83, 0x92, 0x06, 0xe3], "CRC-32C check value");
        }
    }
}

// ---- the tests ----------------------------------------------------------------

#[test]
fn every_vector_in_the_document_matches_the_codec() {
    let ours = vectors();
    let doc = doc_vectors();
    assert!(!doc.is_empty(), "no `{MARKER} NAME -->` markers in PROTOCOL.md");
    for d in &doc {
        let v = ours
            .iter()
            .find(|v| v.name == d.name)
            .unwrap_or_else(|| panic!("PROTOCOL.md has vector {:?}, which tests/vectors.rs does not know", d.name));
        check_vector(v, &d.bytes);
        assert_eq!(
            d.text,
            v.block.render(),
            "vector {}: the bytes match but the annotations differ; regenerate with \
             `cargo test -p agent-core --test vectors -- --ignored --nocapture print_vectors`",
            d.name
        );
    }
    for v in &ours {
        let n = doc.iter().filter(|d| d.name == v.name).count();
        assert_eq!(n, 1, "vector {:?} appears {n} times in PROTOCOL.md (want once)", v.name);
    }
}

#[test]
fn every_kind_has_a_vector() {
    let doc = doc_vectors();
    let ours = vectors();
    for k in 1..=255u8 {
        let Some(kind) = Kind::from_u8(k) else { continue };
        let found = ours.iter().any(|v| {
            matches!(&v.expect, Expect::Message { msg, .. } if msg.kind() == kind)
                && doc.iter().any(|d| d.name == v.name)
        });
        assert!(found, "no vector for {kind:?} in PROTOCOL.md");
    }
}

#[test]
fn generated_blocks_are_the_encoder_output() {
    // The annotating encoder of this file agrees with the library's.
    for v in vectors() {
        check_vector(&v, &v.block.to_bytes());
    }
}

#[test]
fn batch_vector_records_round_trip() {
    let (_, _, msg) = messages().into_iter().find(|(n, _, _)| *n == "batch").unwrap();
    let Message::Batch(b) = msg else { unreachable!() };
    let got: Vec<Record<'_>> = b.iter().map(Result::unwrap).collect();
    assert_eq!(got, batch_records());
    assert_eq!(got.len(), b.count as usize);
    assert!(got.windows(2).any(|w| w[1].timestamp_ms < w[0].timestamp_ms), "a negative delta is shown");
    // The TASK_RESULT record's payload is the task-result-body vector.
    let tr = got.iter().find(|r| r.data_type == data_type::TASK_RESULT).unwrap();
    assert_eq!(tr.payload, &task_result_body(&TASK_RESULT_OK)[..]);
}

/// Prints every vector as it belongs in PROTOCOL.md.
#[test]
#[ignore = "generator: run with --ignored --nocapture to print the blocks"]
fn print_vectors() {
    for v in vectors() {
        println!("{MARKER} {} -->\n```text\n{}```\n", v.name, v.block.render());
    }
}

/// Every test the conformance checklist of PROTOCOL.md points to exists
/// (`agent::tests::NAME` as a `fn NAME` anywhere in the crate's sources and
/// tests), so the checklist cannot point at a test that was renamed.
#[test]
fn conformance_checklist_names_real_tests() {
    let checklist = DOC.split("## Conformance checklist").nth(1).expect("PROTOCOL.md has a conformance checklist");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    let mut dirs = vec![root.join("src"), root.join("tests")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut named = 0;
    for part in checklist.split("agent::tests::").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            continue; // the legend's `agent::tests::*`
        }
        assert!(sources.contains(&format!("fn {name}(")), "PROTOCOL.md's checklist names a missing test {name}");
        named += 1;
    }
    assert!(named >= 10, "only {named} tests named in the checklist");
}

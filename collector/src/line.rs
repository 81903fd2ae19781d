//! The JSON-lines format: one object per record, as the sink writes it.
//!
//! ```json
//! {"agent":"a1","host":"gw-7","seq":1230,"type":2001,"ts":1700000000250,"recv":1700000000300,"text":"disk /var 91%","crc":"5b1c1e0f"}
//! ```
//!
//! Every line has `agent`, `host`, `seq` (the agent's record sequence
//! number), `type` (data type), `ts` (the agent's timestamp, ms) and `recv`
//! (the collector's receive time, Unix ms), then exactly one of:
//!
//! * `heartbeat`: an agent heartbeat (type 1000) decoded, `{"host":{..},"lib":{..}}`
//!   (counters a revision-1 agent does not send are `null`);
//! * `plugin`: a plugin heartbeat (type 1001), `{"name","version","pid","status"}`
//!   (a status number this collector does not know is `"unknown"`);
//! * `task_result`: a task result (type 1050), `{"token","status","message"}`;
//! * `text`: the payload, when it is valid UTF-8;
//! * `b64`: the payload in standard base64, otherwise (also for a type
//!   1000/1001/1050 payload that does not decode).
//!
//! and last `crc`: the line's checksum (see [`check`]), so that damage at
//! rest is found, not read back as a record.
//!
//! `(agent, seq)` identifies a record: the file sink writes each at most once.

use agent_core::data_type;
use agent_core::frame::crc32c;
use agent_core::message::{decode_body, DecodeError, TaskResult};
use agent_core::plugin::PluginStatus;
use agent_core::wire::codec::{BodyReader, ReadBody};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A plugin status as written in lines and the registry.
pub fn plugin_status(s: PluginStatus) -> &'static str {
    plugin_status_number(s as u32)
}

/// A plugin status number as written in lines and the registry: a number
/// this collector does not know is `"unknown"` (PROTOCOL.md, Heartbeats).
pub fn plugin_status_number(n: u32) -> &'static str {
    match n {
        0 => "starting",
        1 => "running",
        2 => "stopping",
        3 => "stopped",
        4 => "error",
        _ => "unknown",
    }
}

/// A plugin heartbeat payload with its status as a bare number, so that a
/// status added by a later agent decodes (as `"unknown"`) instead of
/// making the payload unreadable.
#[derive(Debug, Clone, Copy)]
pub struct PluginBeat<'a> {
    /// Plugin name.
    pub name: &'a str,
    /// Plugin version.
    pub version: &'a str,
    /// Process id.
    pub pid: u32,
    /// Status number (the enum's variant index).
    pub status: u32,
}

/// The layout of agent-core's `PluginHeartbeat`, the status read as the
/// bare variant index.
impl<'a> ReadBody<'a> for PluginBeat<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(PluginBeat { name: r.str()?.as_str(), version: r.str()?.as_str(), pid: r.u32()?, status: r.u32()? })
    }
}

impl<'a> PluginBeat<'a> {
    /// Decodes a type-1001 payload (trailing bytes ignored).
    pub fn decode(payload: &'a [u8]) -> Option<PluginBeat<'a>> {
        decode_body::<PluginBeat<'a>>(payload).ok()
    }
}

#[derive(Serialize)]
struct PluginLine<'a> {
    name: &'a str,
    version: &'a str,
    pid: u32,
    status: &'static str,
}

#[derive(Serialize)]
struct TaskResultLine<'a> {
    token: &'a str,
    status: u32,
    message: &'a str,
}

#[derive(Serialize)]
struct Line<'a> {
    agent: &'a str,
    host: &'a str,
    seq: u64,
    #[serde(rename = "type")]
    data_type: u32,
    ts: u64,
    recv: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<PluginLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_result: Option<TaskResultLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
}

/// One record to write, with its context.
#[derive(Clone, Copy, Debug)]
pub struct RecordLine<'a> {
    /// Agent id.
    pub agent: &'a str,
    /// Hostname from the agent's Hello.
    pub host: &'a str,
    /// Record sequence number.
    pub seq: u64,
    /// Data type.
    pub data_type: u32,
    /// Agent timestamp, ms.
    pub ts: u64,
    /// Collector receive time, Unix ms.
    pub recv: u64,
    /// Payload.
    pub payload: &'a [u8],
}

impl RecordLine<'_> {
    /// Appends the line, `\n` included, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut line = Line {
            agent: self.agent,
            host: self.host,
            seq: self.seq,
            data_type: self.data_type,
            ts: self.ts,
            recv: self.recv,
            heartbeat: None,
            plugin: None,
            task_result: None,
            text: None,
            b64: None,
        };
        let p = self.payload;
        let decoded = match self.data_type {
            data_type::AGENT_HEARTBEAT => {
                crate::heartbeat::decode(p).map(|(h, missing)| line.heartbeat = Some(crate::heartbeat::to_json(&h, missing))).is_some()
            }
            data_type::PLUGIN_HEARTBEAT => PluginBeat::decode(p)
                .map(|h| {
                    line.plugin =
                        Some(PluginLine { name: h.name, version: h.version, pid: h.pid, status: plugin_status_number(h.status) })
                })
                .is_some(),
            data_type::TASK_RESULT => decode_body::<TaskResult<'_>>(p)
                .map(|r| line.task_result = Some(TaskResultLine { token: r.token.as_str(), status: r.status, message: r.message.as_str() }))
                .is_ok(),
            _ => false,
        };
        if !decoded {
            match std::str::from_utf8(p) {
                Ok(t) => line.text = Some(t),
                Err(_) => line.b64 = Some(base64::engine::general_purpose::STANDARD.encode(p)),
            }
        }
        let start = out.len();
        serde_json::to_writer(&mut *out, &line).expect("serializing to a Vec cannot fail");
        // The object's closing brace gives way to the checksum field.
        out.pop();
        let crc = crc32c(&out[start..]);
        out.extend_from_slice(CRC_KEY);
        out.extend_from_slice(format!("{crc:08x}\"}}\n").as_bytes());
    }
}

/// What every checksummed line ends with, before its 8 hex digits, `"}`
/// and the newline.
const CRC_KEY: &[u8] = b",\"crc\":\"";
/// Bytes of the checksum suffix: `,"crc":"` + 8 hex digits + `"}`.
pub const CRC_SUFFIX_LEN: usize = CRC_KEY.len() + 8 + 2;

/// What [`check`] found in one line.
#[derive(Debug)]
pub enum Checked<'a> {
    /// A line with a checksum that matches, and its key.
    Sound(LineKey<'a>),
    /// A line without a checksum (written before checksums existed) that
    /// parses: it cannot be verified, only read.
    Unchecked(LineKey<'a>),
    /// A line whose checksum does not match, or that does not parse.
    Damaged,
}

/// Checks one line (with or without its `\n`).
///
/// The format, for downstream readers who want to verify it too: a line
/// ends with `,"crc":"XXXXXXXX"}` where `XXXXXXXX` is the CRC-32C
/// (Castagnoli, the frames' checksum) of every byte of the line before
/// that `,"crc"`, in 8 lowercase hex digits. The suffix has a fixed length
/// ([`CRC_SUFFIX_LEN`]), so the check needs no JSON parser.
pub fn check(line: &[u8]) -> Checked<'_> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let Some(body_len) = line.len().checked_sub(CRC_SUFFIX_LEN) else {
        return parse_unchecked(line);
    };
    let (body, suffix) = line.split_at(body_len);
    let (key, rest) = suffix.split_at(CRC_KEY.len());
    if key != CRC_KEY || !rest.ends_with(b"\"}") {
        return parse_unchecked(line);
    }
    let hex = &rest[..8];
    let stored = std::str::from_utf8(hex).ok().filter(|h| h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    match stored.and_then(|h| u32::from_str_radix(h, 16).ok()) {
        Some(crc) if crc == crc32c(body) => match leading_key(line).map_or_else(|| serde_json::from_slice::<LineKey<'_>>(line).ok(), Some) {
            Some(k) => Checked::Sound(k),
            None => Checked::Damaged,
        },
        _ => Checked::Damaged,
    }
}

/// The key of a line as [`RecordLine::write`] lays it out (`{"agent":..,
/// "host":..,"seq":N,"type":T,`), read without parsing the rest: for lines whose
/// checksum matched, so the layout is the writer's. `None` if it is not.
fn leading_key(line: &[u8]) -> Option<LineKey<'_>> {
    /// The JSON string at the start of `b` (quotes included) and whether it
    /// has escapes.
    fn string(b: &[u8]) -> Option<(&[u8], bool)> {
        if b.first() != Some(&b'"') {
            return None;
        }
        let (mut i, mut escaped) = (1, false);
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => return Some((&b[..=i], escaped)),
                _ => i += 1,
            }
        }
        None
    }
    let rest = line.strip_prefix(b"{\"agent\":")?;
    let (quoted, escaped) = string(rest)?;
    let agent: Cow<'_, str> = if escaped {
        Cow::Owned(serde_json::from_slice::<String>(quoted).ok()?)
    } else {
        Cow::Borrowed(std::str::from_utf8(&quoted[1..quoted.len() - 1]).ok()?)
    };
    let rest = rest[quoted.len()..].strip_prefix(b",\"host\":")?;
    let (host, _) = string(rest)?;
    let rest = rest[host.len()..].strip_prefix(b",\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if rest.get(digits) != Some(&b',') {
        return None;
    }
    let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b",\"type\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let data_type = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
    Some(LineKey { agent, seq, data_type })
}

fn parse_unchecked(line: &[u8]) -> Checked<'_> {
    match serde_json::from_slice::<LineKey<'_>>(line) {
        Ok(k) => Checked::Unchecked(k),
        Err(_) => Checked::Damaged,
    }
}

/// The identifying fields of a line, as read back at start.
#[derive(Deserialize, Debug)]
pub struct LineKey<'a> {
    /// Agent id.
    #[serde(borrow)]
    pub agent: Cow<'a, str>,
    /// Record sequence number.
    pub seq: u64,
    /// Data type (absent from hand-made lines before checksums).
    #[serde(rename = "type", default)]
    pub data_type: Option<u32>,
}

/// JSON escaping's worst case: one input byte, six output bytes.
pub const ESCAPE: usize = 6;

/// Most bytes of one line apart from its identity strings and its payload's
/// text: the field names, every number at its widest, the checksum, and a
/// decoded heartbeat with every counter at its widest (pinned by a test).
pub const LINE_FIXED: usize = 2048;

/// Most bytes of one record's line (its newline included): [`LINE_FIXED`],
/// the escaped identity and the payload escaped, which is at most the
/// frame (`max_frame`). The JetStream sink's messages must hold one.
pub fn line_max(max_frame: u32, id_max: usize, host_max: usize) -> usize {
    LINE_FIXED + ESCAPE * (id_max + host_max) + ESCAPE * max_frame as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::heartbeat::AgentHeartbeat;

    fn line(data_type: u32, payload: &[u8]) -> serde_json::Value {
        let mut out = Vec::new();
        RecordLine { agent: "a\"1", host: "h", seq: 5, data_type, ts: 10, recv: 20, payload }.write(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let key: LineKey<'_> = serde_json::from_slice(&out).unwrap();
        assert_eq!((key.agent.as_ref(), key.seq), ("a\"1", 5));
        let Checked::Sound(key) = check(&out) else { panic!("checksum: {}", String::from_utf8_lossy(&out)) };
        assert_eq!(key.seq, 5);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn text_binary_and_decoded_types() {
        assert_eq!(line(2001, b"disk\n91%")["text"], "disk\n91%");
        assert_eq!(line(2001, &[0xff, 0, 1])["b64"], "/wAB");
        let tr = line(data_type::TASK_RESULT, &[4, b't', b'-', b'4', b'2', 0, 2, b'o', b'k']);
        assert_eq!(tr["task_result"], serde_json::json!({"token": "t-42", "status": 0, "message": "ok"}));
        let mut hb = [0u8; 64];
        let n = AgentHeartbeat::default().encode(&mut hb).unwrap().len();
        let v = line(data_type::AGENT_HEARTBEAT, &hb[..n]);
        assert_eq!(v["heartbeat"]["lib"]["pushed"], 0);
        assert_eq!(v["type"], 1000);
        // A reserved type that does not decode is kept as bytes.
        assert_eq!(line(data_type::PLUGIN_HEARTBEAT, &[0xff])["b64"], "/w==");
    }

    #[test]
    fn unknown_plugin_status_is_unknown_not_bytes() {
        let p = line(data_type::PLUGIN_HEARTBEAT, &[2, b's', b'c', 1, b'1', 7, 9]);
        assert_eq!(p["plugin"], serde_json::json!({"name": "sc", "version": "1", "pid": 7, "status": "unknown"}));
        assert!(p.get("b64").is_none() && p.get("text").is_none());
        let known = line(data_type::PLUGIN_HEARTBEAT, &[2, b's', b'c', 1, b'1', 7, 1, 0xaa]);
        assert_eq!(known["plugin"]["status"], "running", "trailing bytes of a later layout are ignored");
        // A revision-1 heartbeat (22 lib counters): decoded, the 4 later counters null.
        let mut hb = [0u8; 400];
        let n = AgentHeartbeat::default().encode(&mut hb).unwrap().len();
        let v = line(data_type::AGENT_HEARTBEAT, &hb[..n - 4]);
        assert_eq!(v["heartbeat"]["lib"]["tasks_duplicate"], 0);
        assert!(v["heartbeat"]["lib"]["ack_timeouts"].is_null() && v.get("b64").is_none(), "{v}");
    }

    #[test]
    fn every_flipped_byte_is_found() {
        let mut out = Vec::new();
        RecordLine { agent: "agent-7", host: "gw", seq: 91, data_type: 2001, ts: 1, recv: 2, payload: b"disk /var 91%" }.write(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.ends_with("\"}\n") && text.contains(",\"crc\":\""), "{text}");
        // A downstream reader's check, as collector/README.md describes it.
        let body = &out[..out.len() - 1 - CRC_SUFFIX_LEN];
        assert_eq!(format!("{:08x}", crc32c(body)), text[text.len() - 11..text.len() - 3]);
        for i in 0..out.len() - 1 {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut bad = out.clone();
                bad[i] ^= bit;
                assert!(matches!(check(&bad), Checked::Damaged | Checked::Unchecked(_)), "byte {i} bit {bit:#x} not found");
                if i < out.len() - 1 - CRC_SUFFIX_LEN {
                    assert!(matches!(check(&bad), Checked::Damaged), "byte {i} bit {bit:#x} in the body not found");
                }
            }
        }
        // The key read from the layout is the key a JSON parser reads.
        for agent in ["a", "a\"1\\", "\u{1}x\u{7f}é", ""] {
            let mut out = Vec::new();
            RecordLine { agent, host: "h\"\\", seq: u64::MAX, data_type: u32::MAX, ts: 0, recv: 0, payload: b"" }.write(&mut out);
            let Checked::Sound(k) = check(&out) else { panic!() };
            let full: LineKey<'_> = serde_json::from_slice(&out).unwrap();
            assert_eq!((k.agent.as_ref(), k.seq, k.data_type), (full.agent.as_ref(), full.seq, Some(u32::MAX)));
            assert_eq!(leading_key(&out).map(|k| k.data_type), Some(Some(u32::MAX)), "{agent:?}: the fast path");
        }
        // Lines written before checksums are read, unverified.
        assert!(matches!(check(b"{\"agent\":\"a\",\"seq\":3}\n"), Checked::Unchecked(LineKey { seq: 3, .. })));
        assert!(matches!(check(b"{\"agent\":\"a\",\"se"), Checked::Damaged));
        assert!(matches!(check(b""), Checked::Damaged));
    }
}

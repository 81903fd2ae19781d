//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! * [`raw_frame`]: frame bytes with any header values and a valid CRC, so
//!   the fuzzer gets past the checksum without having to guess it.
//! * [`ArbMessage`]: an owned, `Arbitrary` [`Message`] of any kind.
//! * [`check_entries`]: decodes a batch body and checks its structure.
//! * [`ring_model`]: the reference model of the send ring and its harness,
//!   the very one the proptest model test uses (`edge_testkit::ring_model`).

use agent_core::frame::{crc32c, MAGIC, OVERHEAD};
use agent_core::message::{Accept, Ack, Batch, Close, Config, Hello, Message, Ping, Pong, Reject, Task, TaskResult};
use agent_core::record::{apply_delta, EntryHeader, EntryIter, Record};
use arbitrary::Arbitrary;

/// Shared with `agent-core/tests/ring_model.rs`: one model for both.
pub use edge_testkit::ring_model;

/// A whole frame: header with the given fields, `body`, and the CRC-32C of
/// header and body. Unlike `frame::encode_with` the version and kind bytes
/// may be anything.
pub fn raw_frame(version: u8, kind: u8, flags: u8, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + OVERHEAD);
    f.extend_from_slice(&MAGIC);
    f.extend_from_slice(&[version, kind, flags]);
    f.extend_from_slice(&(body.len() as u32).to_le_bytes());
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(body);
    let crc = crc32c(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// Encodes `msg` as one frame (a buffer as large as it needs).
pub fn encode_message(msg: &Message<'_>, seq: u32) -> Vec<u8> {
    let mut out = vec![0u8; OVERHEAD + message_body_bound(msg)];
    let n = msg.encode(seq, &mut out).expect("the bound holds any encoding of the message");
    out.truncate(n);
    out
}

/// An upper bound of the encoded body of `msg`: every varint at its
/// longest (10 bytes), plus the string and byte-string contents.
pub fn message_body_bound(msg: &Message<'_>) -> usize {
    const V: usize = 10;
    match msg {
        Message::Hello(h) => {
            13 * V
                + h.agent_id.len()
                + h.hostname.len()
                + h.product.len()
                + h.version.len()
                + h.intranet_ipv4.len()
                + h.intranet_ipv6.len()
                + h.extranet_ipv4.len()
                + h.extranet_ipv6.len()
                + h.auth_token.len()
        }
        Message::Accept(_) | Message::Ack(_) | Message::Ping(_) | Message::Pong(_) => 2 * V,
        Message::Reject(r) => 3 * V + r.reason.len(),
        Message::Batch(b) => 4 * V + b.records.len(),
        Message::Task(t) => 5 * V + t.object_name.len() + t.payload.len() + t.token.len(),
        Message::Config(c) => 3 * V + c.name.len() + c.version.len() + c.payload.len(),
        Message::TaskResult(r) => 3 * V + r.token.len() + r.message.len(),
        Message::Close(c) => 2 * V + c.reason.len(),
    }
}

/// An owned message of any kind, built from fuzzer input. Address lists are
/// whole addresses, so every value encodes to something that decodes back.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ArbMessage {
    Hello {
        agent_id: String,
        hostname: String,
        product: String,
        version: String,
        intranet_ipv4: Vec<[u8; 4]>,
        intranet_ipv6: Vec<[u8; 16]>,
        extranet_ipv4: Vec<[u8; 4]>,
        extranet_ipv6: Vec<[u8; 16]>,
        auth_token: Vec<u8>,
        first_unacked_seq: u64,
        next_seq: u64,
        max_frame: u32,
        min_frame: u32,
    },
    Accept {
        next_seq: u64,
        max_frame: u32,
        retry_window_ms: u32,
    },
    Reject {
        code: u16,
        reason: String,
        retry_after_ms: u32,
    },
    Batch {
        first_seq: u64,
        base_ts: u64,
        count: u32,
        records: Vec<u8>,
    },
    Ack {
        up_to: u64,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Task {
        object_name: String,
        data_type: u32,
        payload: Vec<u8>,
        token: String,
    },
    Config {
        name: String,
        version: String,
        payload: Vec<u8>,
    },
    TaskResult {
        token: String,
        status: u32,
        message: String,
    },
    Close {
        code: u16,
        reason: String,
    },
}

/// Owned, flattened address lists of an [`ArbMessage::Hello`].
pub struct HelloAddrs {
    pub intranet_ipv4: Vec<u8>,
    pub intranet_ipv6: Vec<u8>,
    pub extranet_ipv4: Vec<u8>,
    pub extranet_ipv6: Vec<u8>,
}

impl ArbMessage {
    /// The flattened address lists (empty for other kinds).
    pub fn addrs(&self) -> HelloAddrs {
        match self {
            ArbMessage::Hello { intranet_ipv4, intranet_ipv6, extranet_ipv4, extranet_ipv6, .. } => HelloAddrs {
                intranet_ipv4: intranet_ipv4.concat(),
                intranet_ipv6: intranet_ipv6.concat(),
                extranet_ipv4: extranet_ipv4.concat(),
                extranet_ipv6: extranet_ipv6.concat(),
            },
            _ => HelloAddrs {
                intranet_ipv4: Vec::new(),
                intranet_ipv6: Vec::new(),
                extranet_ipv4: Vec::new(),
                extranet_ipv6: Vec::new(),
            },
        }
    }

    /// The borrowed message; `addrs` must come from [`ArbMessage::addrs`].
    pub fn as_message<'a>(&'a self, addrs: &'a HelloAddrs) -> Message<'a> {
        match self {
            ArbMessage::Hello {
                agent_id,
                hostname,
                product,
                version,
                auth_token,
                first_unacked_seq,
                next_seq,
                max_frame,
                min_frame,
                ..
            } => Message::Hello(Hello {
                agent_id,
                hostname,
                product,
                version,
                intranet_ipv4: &addrs.intranet_ipv4,
                intranet_ipv6: &addrs.intranet_ipv6,
                extranet_ipv4: &addrs.extranet_ipv4,
                extranet_ipv6: &addrs.extranet_ipv6,
                auth_token,
                first_unacked_seq: *first_unacked_seq,
                next_seq: *next_seq,
                max_frame: *max_frame,
                min_frame: *min_frame,
            }),
            ArbMessage::Accept { next_seq, max_frame, retry_window_ms } => {
                Message::Accept(Accept { next_seq: *next_seq, max_frame: *max_frame, retry_window_ms: *retry_window_ms })
            }
            ArbMessage::Reject { code, reason, retry_after_ms } => {
                Message::Reject(Reject { code: *code, reason, retry_after_ms: *retry_after_ms })
            }
            ArbMessage::Batch { first_seq, base_ts, count, records } => {
                Message::Batch(Batch { first_seq: *first_seq, base_ts: *base_ts, count: *count, records })
            }
            ArbMessage::Ack { up_to } => Message::Ack(Ack { up_to: *up_to }),
            ArbMessage::Ping { nonce } => Message::Ping(Ping { nonce: *nonce }),
            ArbMessage::Pong { nonce } => Message::Pong(Pong { nonce: *nonce }),
            ArbMessage::Task { object_name, data_type, payload, token } => {
                Message::Task(Task { object_name, data_type: *data_type, payload, token })
            }
            ArbMessage::Config { name, version, payload } => Message::Config(Config { name, version, payload }),
            ArbMessage::TaskResult { token, status, message } => {
                Message::TaskResult(TaskResult { token, status: *status, message })
            }
            ArbMessage::Close { code, reason } => Message::Close(Close { code: *code, reason }),
        }
    }
}

/// Decodes every entry of `bytes` (timestamps chained from `base_ts`) and
/// checks what any entry list must satisfy: the iterator ends, stops right
/// after the first error, and every payload is the slice of `bytes` that
/// ends its entry. Returns the records read before any error, and whether
/// there was one.
pub fn check_entries(bytes: &[u8], base_ts: u64) -> (Vec<Record<'_>>, bool) {
    let mut it = EntryIter::new(bytes, base_ts);
    let mut recs = Vec::new();
    let mut pos = 0usize;
    let mut prev_ts = base_ts;
    loop {
        match it.next() {
            None => {
                assert_eq!(pos, bytes.len(), "entries ended early without an error");
                return (recs, false);
            }
            Some(Ok(rec)) => {
                // Shortest entry: three one-byte varints.
                assert!(recs.len() < bytes.len() / 3 + 1, "more entries than the bytes can hold");
                let off = rec.payload.as_ptr() as usize - bytes.as_ptr() as usize;
                assert!(off >= pos + 3 && off + rec.payload.len() <= bytes.len(), "payload outside its entry");
                // The header in front of the payload says the same.
                let (h, hl) =
                    EntryHeader::decode_with(|i| bytes[pos..].get(i).copied()).expect("header of a good entry");
                assert_eq!(pos + hl, off, "header length");
                assert_eq!((h.data_type, h.payload_len), (rec.data_type, rec.payload.len()));
                assert_eq!(apply_delta(prev_ts, h.ts_delta), rec.timestamp_ms, "timestamps chain");
                prev_ts = rec.timestamp_ms;
                pos = off + rec.payload.len();
                recs.push(rec);
            }
            Some(Err(_)) => {
                assert!(it.next().is_none(), "EntryIter went on after an error");
                assert!(it.next().is_none(), "EntryIter went on after an error");
                return (recs, true);
            }
        }
    }
}

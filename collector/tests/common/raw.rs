//! A raw protocol client: hand-made frames, for the rules real agents never
//! break.

use agent_core::frame::{crc32c, Frame};
use agent_core::message::{Batch, Hello, Message};
use agent_core::record::{ts_delta, EntryHeader};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A received message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Accept { next_seq: u64, max_frame: u32, retry_window_ms: u32 },
    Reject { code: u16, reason: String, retry_after_ms: u32 },
    Ack(u64),
    Ping(u64),
    Pong(u64),
    Task { token: String, object_name: String, data_type: u32, payload: Vec<u8> },
    Config { name: String, version: String },
    Close { code: u16, reason: String },
    Other(u8),
    /// The connection ended.
    Eof,
    /// Nothing within the timeout.
    Timeout,
}

pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
    seq: u32,
}

pub fn hello<'a>(id: &'a str, token: &'a [u8], first_unacked_seq: u64, next_seq: u64) -> Hello<'a> {
    Hello {
        agent_id: id.into(), hostname: "raw-host".into(), product: "raw".into(), version: "0".into(), intranet_ipv4: &[], intranet_ipv6: &[],
        extranet_ipv4: &[], extranet_ipv6: &[], auth_token: token, first_unacked_seq, next_seq, max_frame: 65536, min_frame: 1100,
    }
}

/// `n` entries of type 2001 with texts `<prefix><seq>`.
pub fn entries(prefix: &str, first_seq: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 1000;
    for s in first_seq..first_seq + n {
        let text = format!("{prefix}{s}");
        let (h, hl) = EntryHeader::new(2001, ts_delta(prev, 1000 + s), text.len()).encode();
        prev = 1000 + s;
        out.extend_from_slice(&h[..hl]);
        out.extend_from_slice(text.as_bytes());
    }
    out
}

impl Raw {
    /// Connects and says Hello until Accepted, waiting each Busy Reject's
    /// `retry_after_ms` as an agent does; the connection, the Accept and
    /// the number of Busy answers. Panics on anything else, or after
    /// `max_busy` Busy answers.
    pub fn connect_admitted(addr: SocketAddr, h: &Hello<'_>, limit: Duration, max_busy: u32) -> (Raw, Got, u32) {
        let mut busy = 0;
        loop {
            let mut c = Raw::connect(addr);
            c.send(&Message::Hello(*h));
            match c.recv_skipping(limit) {
                a @ Got::Accept { .. } => return (c, a, busy),
                Got::Reject { code: 6, retry_after_ms, .. } if busy < max_busy => {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(u64::from(retry_after_ms)));
                }
                g => panic!("{}: expected Accept, got {g:?} after {busy} Busy answers", h.agent_id),
            }
        }
    }

    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        s.set_nodelay(true).unwrap();
        Raw { s, buf: Vec::new(), seq: 0 }
    }

    pub fn frame(&mut self, m: &Message<'_>) -> Vec<u8> {
        let mut out = vec![0u8; 1 << 17];
        let n = m.encode(self.seq, &mut out).unwrap();
        self.seq += 1;
        out.truncate(n);
        out
    }

    pub fn send(&mut self, m: &Message<'_>) {
        let f = self.frame(m);
        self.send_bytes(&f);
    }

    /// False if the write failed (the peer closed).
    pub fn send_bytes(&mut self, b: &[u8]) -> bool {
        self.s.write_all(b).is_ok()
    }

    pub fn batch(&mut self, prefix: &str, first_seq: u64, n: u64) {
        let records = entries(prefix, first_seq, n);
        self.send(&Message::Batch(Batch { first_seq, base_ts: 1000, count: n as u32, records: &records }));
    }

    /// The next message, within `limit`.
    pub fn recv(&mut self, limit: Duration) -> Got {
        let end = Instant::now() + limit;
        loop {
            if let Some(g) = self.parse() {
                return g;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return Got::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Got::Timeout,
                Err(_) => return Got::Eof,
            }
        }
    }

    /// Skips Pings, Tasks and Configs until something else comes.
    pub fn recv_skipping(&mut self, limit: Duration) -> Got {
        let end = Instant::now() + limit;
        loop {
            match self.recv(end.saturating_duration_since(Instant::now())) {
                Got::Ping(_) | Got::Task { .. } | Got::Config { .. } => continue,
                g => return g,
            }
        }
    }

    /// Like [`Raw::recv_skipping`], but answers each Ping with its Pong, as
    /// a live agent does (the collector probes a live session with a Ping
    /// before it lets an unproven newcomer replace it).
    pub fn recv_answering(&mut self, limit: Duration) -> Got {
        let end = Instant::now() + limit;
        loop {
            match self.recv(end.saturating_duration_since(Instant::now())) {
                Got::Ping(nonce) => self.send(&Message::Pong(agent_core::message::Pong { nonce })),
                Got::Task { .. } | Got::Config { .. } => continue,
                g => return g,
            }
        }
    }

    fn parse(&mut self) -> Option<Got> {
        if self.buf.len() < 13 {
            return None;
        }
        assert_eq!(&self.buf[..2], &[0xEA, 0x9E], "the collector sends whole frames");
        let len = u32::from_le_bytes(self.buf[5..9].try_into().unwrap()) as usize;
        if self.buf.len() < len + 17 {
            return None;
        }
        let crc = u32::from_le_bytes(self.buf[13 + len..17 + len].try_into().unwrap());
        assert_eq!(crc, crc32c(&self.buf[..13 + len]), "the collector's CRC");
        let bytes: Vec<u8> = self.buf.drain(..len + 17).collect();
        let f = Frame { version: bytes[2], kind: bytes[3], flags: bytes[4], seq: 0, body: &bytes[13..13 + len] };
        Some(match Message::decode(&f) {
            Ok(Message::Accept(a)) => Got::Accept { next_seq: a.next_seq, max_frame: a.max_frame, retry_window_ms: a.retry_window_ms },
            Ok(Message::Reject(r)) => Got::Reject { code: r.code, reason: r.reason.as_str().into(), retry_after_ms: r.retry_after_ms },
            Ok(Message::Ack(a)) => Got::Ack(a.up_to),
            Ok(Message::Ping(p)) => Got::Ping(p.nonce),
            Ok(Message::Pong(p)) => Got::Pong(p.nonce),
            Ok(Message::Task(t)) => Got::Task { token: t.token.as_str().into(), object_name: t.object_name.as_str().into(), data_type: t.data_type, payload: t.payload.to_vec() },
            Ok(Message::Config(c)) => Got::Config { name: c.name.as_str().into(), version: c.version.as_str().into() },
            Ok(Message::Close(c)) => Got::Close { code: c.code, reason: c.reason.as_str().into() },
            _ => Got::Other(f.kind),
        })
    }
}

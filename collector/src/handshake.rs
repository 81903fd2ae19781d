//! What precedes a session, sans-IO: the frames before the Hello, and the
//! Hello's own bounds and sanity (PROTOCOL.md, "Before the Hello" and the
//! Codes table).
//!
//! * Before the Hello, whole frames of any other kind (a stale Close or
//!   Ping from the far side of a serial-to-TCP gateway, a Pong, a kind this
//!   collector does not know) are skipped and counted, like garbage, within
//!   the handshake timeout and a byte budget ([`PreHelloBudget`]).
//! * A Hello of another version gets Reject 5; a Hello whose body does not
//!   decode, Close 1.
//! * A Hello is *impossible* when no conforming agent could send it:
//!   `first_unacked_seq` above `next_seq`, `next_seq` above 2^63, or
//!   `max_frame` below 64. Reject 1 (ProtocolError): such an agent could
//!   only loop on an Accept it must refuse.
//! * Identity fields beyond their bounds ([`HelloBounds`]), an empty agent
//!   id, or a `min_frame` above the collector's `max_frame`: Reject 5
//!   (Incompatible), which waiting does not cure.

use crate::session::{first_frame, HelloInfo, Refusal};
use agent_core::frame::{Frame, Kind, MIN_MAX_FRAME, OVERHEAD};
use agent_core::message::CloseCode;
use agent_core::ring::MAX_RESUME_SEQ;

/// Largest sizes of the client-controlled identity in a Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloBounds {
    /// Most bytes of `agent_id` (at least 1 byte is always required).
    pub agent_id: usize,
    /// Most bytes of each of `hostname`, `product` and `version`.
    pub identity: usize,
    /// Most addresses in all four lists together.
    pub addresses: usize,
    /// Most bytes of `auth_token`.
    pub token: usize,
}

impl Default for HelloBounds {
    /// 128-byte ids, 255-byte names (a DNS name's limit), 64 addresses,
    /// 1024-byte tokens.
    fn default() -> HelloBounds {
        HelloBounds { agent_id: 128, identity: 255, addresses: 64, token: 1024 }
    }
}

/// What to make of one whole frame that arrived before the Hello.
#[derive(Debug)]
pub enum PreHello {
    /// The Hello, sane and within bounds (its token is still to be checked).
    Hello(HelloInfo),
    /// Not a Hello: skip it and count it.
    Skip,
    /// Refuse the connection.
    Refuse(Refusal),
}

/// Judges a whole frame received before the Hello, for a collector whose
/// `max_frame` is `max_frame`.
pub fn pre_hello(frame: &Frame<'_>, max_frame: u32, bounds: &HelloBounds) -> PreHello {
    if frame.kind != Kind::Hello as u8 {
        return PreHello::Skip;
    }
    let h = match first_frame(frame, max_frame) {
        Ok(h) => h,
        Err(r) => return PreHello::Refuse(r),
    };
    if let Some(why) = impossible(&h) {
        return PreHello::Refuse(Refusal::Reject { code: CloseCode::ProtocolError, reason: format!("impossible Hello: {why}"), retry_after_ms: 0 });
    }
    if let Some(why) = out_of_bounds(&h, bounds) {
        return PreHello::Refuse(Refusal::Reject { code: CloseCode::Incompatible, reason: why, retry_after_ms: 0 });
    }
    PreHello::Hello(h)
}

/// Why no conforming agent could have sent `h`, if so.
pub fn impossible(h: &HelloInfo) -> Option<String> {
    if h.first_unacked_seq > h.next_seq {
        return Some(format!("first_unacked_seq {} above next_seq {}", h.first_unacked_seq, h.next_seq));
    }
    if h.next_seq > MAX_RESUME_SEQ {
        return Some(format!("next_seq {} above 2^63", h.next_seq));
    }
    if (h.max_frame as usize) < MIN_MAX_FRAME {
        return Some(format!("max_frame {} below {MIN_MAX_FRAME}", h.max_frame));
    }
    None
}

/// Which identity field of `h` breaks `b`, if any.
pub fn out_of_bounds(h: &HelloInfo, b: &HelloBounds) -> Option<String> {
    if h.agent_id.is_empty() {
        return Some("empty agent_id".into());
    }
    let fields = [("agent_id", h.agent_id.len(), b.agent_id), ("hostname", h.hostname.len(), b.identity), ("product", h.product.len(), b.identity), ("version", h.version.len(), b.identity), ("auth_token", h.auth_token.len(), b.token), ("addresses", h.addresses.len(), b.addresses)];
    fields.iter().find(|(_, len, max)| len > max).map(|(name, len, max)| format!("{name} too long: {len} > {max}"))
}

/// The bytes a connection may send before its Hello that are not part of
/// it: garbage and skipped frames. Beyond the budget the connection is
/// closed (Close 1), so a client cannot feed the decoder forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreHelloBudget {
    left: u64,
}

impl PreHelloBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> PreHelloBudget {
        PreHelloBudget { left: bytes }
    }

    /// Spends `n` skipped bytes; false once the budget is exceeded.
    pub fn spend(&mut self, n: u64) -> bool {
        match self.left.checked_sub(n) {
            Some(l) => {
                self.left = l;
                true
            }
            None => {
                self.left = 0;
                false
            }
        }
    }
}

/// The whole size of a frame (header, body, CRC).
pub fn frame_len(frame: &Frame<'_>) -> u64 {
    (frame.body.len() + OVERHEAD) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::message::{Close, Hello, Message, Ping};

    fn frame_of<'b>(msg: Message<'_>, buf: &'b mut [u8]) -> Frame<'b> {
        let n = msg.encode(0, buf).unwrap();
        Frame { version: buf[2], kind: buf[3], flags: 0, seq: 0, body: &buf[13..n - 4] }
    }

    fn hello(id: &str, first_unacked_seq: u64, next_seq: u64, max_frame: u32) -> Hello<'_> {
        Hello {
            agent_id: id.into(), hostname: "h".into(), product: "p".into(), version: "1".into(), intranet_ipv4: &[], intranet_ipv6: &[], extranet_ipv4: &[],
            extranet_ipv6: &[], auth_token: b"", first_unacked_seq, next_seq, max_frame, min_frame: 100,
        }
    }

    fn judge(m: Message<'_>) -> PreHello {
        let mut buf = vec![0u8; 8192];
        pre_hello(&frame_of(m, &mut buf), 4096, &HelloBounds::default())
    }

    #[test]
    fn stale_frames_before_the_hello_are_skipped() {
        assert!(matches!(judge(Message::Close(Close { code: 2, reason: "agent stopping".into() })), PreHello::Skip));
        assert!(matches!(judge(Message::Ping(Ping { nonce: 3 })), PreHello::Skip));
        let unknown = Frame { version: 1, kind: 64, flags: 0, seq: 0, body: &[1, 2, 3] };
        assert!(matches!(pre_hello(&unknown, 4096, &HelloBounds::default()), PreHello::Skip));
        assert!(matches!(judge(Message::Hello(hello("a", 1, 2, 1024))), PreHello::Hello(_)));
        // A Hello whose body does not decode is still a protocol error.
        let bad = Frame { version: 1, kind: 1, flags: 0, seq: 0, body: &[200] };
        assert!(matches!(pre_hello(&bad, 4096, &HelloBounds::default()), PreHello::Refuse(Refusal::Close { code: CloseCode::ProtocolError, .. })));
    }

    #[test]
    fn impossible_hellos_get_reject_1() {
        for h in [hello("a", 3, 2, 1024), hello("a", 0, MAX_RESUME_SEQ + 1, 1024), hello("a", 1 << 63, 1 << 63 | 1, 1024), hello("a", 0, 0, 63)] {
            match judge(Message::Hello(h)) {
                PreHello::Refuse(Refusal::Reject { code: CloseCode::ProtocolError, reason, .. }) => assert!(reason.starts_with("impossible Hello"), "{reason}"),
                other => panic!("{h:?}: {other:?}"),
            }
        }
        assert!(matches!(judge(Message::Hello(hello("a", 1 << 63, 1 << 63, 64))), PreHello::Hello(_)), "2^63 itself is a point an agent adopts");
    }

    #[test]
    fn identity_fields_are_bounded() {
        let long = "x".repeat(129);
        assert!(matches!(judge(Message::Hello(hello(&long, 0, 0, 1024))), PreHello::Refuse(Refusal::Reject { code: CloseCode::Incompatible, .. })));
        assert!(matches!(judge(Message::Hello(hello(&long[..128], 0, 0, 1024))), PreHello::Hello(_)));
        assert!(matches!(judge(Message::Hello(hello("", 0, 0, 1024))), PreHello::Refuse(Refusal::Reject { code: CloseCode::Incompatible, .. })));
        let host = "h".repeat(256);
        let mut h = hello("a", 0, 0, 1024);
        h.hostname = host.as_str().into();
        let PreHello::Refuse(Refusal::Reject { reason, .. }) = judge(Message::Hello(h)) else { panic!() };
        assert!(reason.contains("hostname"), "{reason}");
        let addrs = [0u8; 4 * 65];
        let mut h = hello("a", 0, 0, 1024);
        h.intranet_ipv4 = &addrs;
        assert!(matches!(judge(Message::Hello(h)), PreHello::Refuse(_)));
    }

    #[test]
    fn the_budget_runs_out() {
        let mut b = PreHelloBudget::new(10);
        assert!(b.spend(4) && b.spend(6));
        assert!(!b.spend(1));
    }
}

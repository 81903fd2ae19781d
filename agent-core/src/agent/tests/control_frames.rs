//! The control frames `transmit` writes (Hello, Pong, Ping, Close): each
//! byte for byte what the codec's own encoder (`Message::encode`) makes of
//! the same message, and each kept pending, with no frame counted, when the
//! caller's buffer is one byte too short.

use super::*;
use crate::wire::message::Hello;

/// `msg` as the codec encodes it with frame counter `seq`.
fn reference(msg: Message<'_>, seq: u32) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = msg.encode(seq, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// The next frame, given first a buffer one byte shorter than `want`
/// (nothing written, nothing counted), then one of exactly its length.
fn short_then_exact(a: &mut Agent<'_>, now: u64, want: &[u8]) {
    let mut out = [0u8; 512];
    let frames = a.stats().frames_sent;
    assert_eq!(a.poll_transmit(Instant(now), &mut out[..want.len() - 1]), 0, "one byte short");
    assert_eq!(a.stats().frames_sent, frames);
    let n = a.poll_transmit(Instant(now), &mut out[..want.len()]);
    assert_eq!(&out[..n], want);
    assert_eq!(a.stats().frames_sent, frames + 1);
}

/// The frame counter of the next frame: the frames sent on this connection.
fn seq_of(frame: &[u8]) -> u32 {
    u32::from_le_bytes(frame[9..13].try_into().unwrap())
}

#[test]
fn control_frames_are_the_codecs_and_stay_pending_when_short() {
    let mut m = Mem::new();
    let cfg = cfg();
    let mut a = m.agent(cfg);
    a.handle_timeout(Instant(0));
    let _ = events(&mut a);
    a.handle_connected(Instant(0));
    // Hello, frame 0.
    let hello = Hello {
        agent_id: ID.agent_id.into(),
        hostname: ID.hostname.into(),
        product: ID.product.into(),
        version: ID.version.into(),
        intranet_ipv4: ID.intranet_ipv4,
        intranet_ipv6: ID.intranet_ipv6,
        extranet_ipv4: ID.extranet_ipv4,
        extranet_ipv6: ID.extranet_ipv6,
        auth_token: ID.auth_token,
        first_unacked_seq: a.ring().first_unacked_seq(),
        next_seq: a.ring().next_seq(),
        max_frame: 2048,
        min_frame: min_peer_frame(&cfg),
    };
    short_then_exact(&mut a, 0, &reference(Message::Hello(hello), 0));
    deliver(&mut a, 0, Message::Accept(Accept { next_seq: 0, max_frame: 4096, retry_window_ms: 0 }));
    assert_eq!(a.state(), StateKind::Connected);
    let _ = events(&mut a);
    // A Pong owed goes before anything else: frame 1.
    deliver(&mut a, 1, Message::Ping(Ping { nonce: 0x0123_4567_89ab_cdef }));
    short_then_exact(&mut a, 1, &reference(Message::Pong(Pong { nonce: 0x0123_4567_89ab_cdef }), 1));
    // Idle for the idle timeout: a Ping, after whatever batch is due.
    let idle = cfg.idle_timeout.as_millis() + 1;
    a.handle_timeout(Instant(idle));
    let mut out = [0u8; 512];
    let mut seq = 2;
    let ping = loop {
        let n = a.poll_transmit(Instant(idle), &mut out);
        assert!(n > 0, "a Ping is due");
        assert_eq!(seq_of(&out[..n]), seq);
        seq += 1;
        if let Sent::Ping(nonce) = decode_sent(&out[..n]) {
            break (nonce, n);
        }
    };
    assert_eq!(&out[..ping.1], &reference(Message::Ping(Ping { nonce: ping.0 }), seq - 1)[..]);
    // A Ping one byte short stays due (a new nonce is drawn each time).
    deliver(&mut a, idle, Message::Pong(Pong { nonce: ping.0 }));
    let again = idle + cfg.idle_timeout.as_millis() + 1;
    a.handle_timeout(Instant(again));
    let frames = a.stats().frames_sent;
    assert_eq!(a.poll_transmit(Instant(again), &mut out[..OVERHEAD]), 0);
    assert_eq!(a.stats().frames_sent, frames);
    let n = a.poll_transmit(Instant(again), &mut out);
    let Sent::Ping(nonce) = decode_sent(&out[..n]) else { panic!("a Ping") };
    assert_eq!(&out[..n], &reference(Message::Ping(Ping { nonce }), seq)[..]);
    seq += 1;
    // Close on shutdown: the code, an empty reason.
    a.close(Instant(again));
    let close = Close { code: CloseCode::Shutdown as u16, reason: Text::default() };
    short_then_exact(&mut a, again, &reference(Message::Close(close), seq));
    assert_eq!(a.poll_transmit(Instant(again), &mut out), 0);
}

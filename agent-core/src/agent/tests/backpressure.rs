//! A transport that will not take more bytes (`handle_blocked`): the agent
//! hands out nothing more, its next timeout is never "now" while blocked,
//! a dead blocked link still ends, and writable again resumes at once.

use super::*;

/// A caller's loop over a socket that accepts nothing: wakes at each
/// `poll_timeout`, fires timers, and (blocked) asks for no frame. Returns
/// the wake-up instants and the events until the first `Disconnect`, or
/// until `until`.
fn sleep_blocked(a: &mut Agent<'_>, from: u64, until: u64) -> (Vec<u64>, Vec<Ev>) {
    let mut wakes = Vec::new();
    let mut seen = Vec::new();
    let mut last = from;
    while let Some(at) = a.poll_timeout() {
        let t = at.as_millis().max(last);
        if t > until {
            break;
        }
        // The one property: a blocked agent never asks to be woken at the
        // instant it was just woken (a busy loop).
        assert!(wakes.last().is_none_or(|&w| t > w), "spin at {t}: wakes {wakes:?}");
        wakes.push(t);
        last = t;
        a.handle_timeout(Instant(t));
        if a.is_blocked() {
            assert!(transmit_all(a, t).is_empty(), "a blocked agent handed out a frame at {t}");
        }
        let ev = events(a);
        let done = ev.iter().any(|e| e.is_disconnect());
        seen.extend(ev);
        if done {
            break;
        }
    }
    (wakes, seen)
}

#[test]
fn blocked_transport_never_makes_the_next_timeout_now() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let _p = connect(&mut a, 0, 0);
    let _ = transmit_all(&mut a, 0); // the first heartbeat
    // A batch is handed out and only part of it is written: EAGAIN.
    for i in 0..3u8 {
        a.push(Instant(10), &Record::new(2001, 10, &[i; 100])).unwrap();
    }
    a.flush_now(Instant(10));
    assert_eq!(batches(&transmit_all(&mut a, 10)).len(), 1);
    a.handle_blocked(true);
    assert!(a.is_blocked());
    // More records, a flush asked for, their flush deadline long past:
    // without the blocked input the next timeout would be "now" for ever.
    for i in 0..3u8 {
        a.push(Instant(20), &Record::new(2001, 20, &[i; 100])).unwrap();
    }
    a.flush_now(Instant(20));
    a.handle_timeout(Instant(500));
    let next = a.poll_timeout().unwrap();
    assert!(next > Instant(500), "next timeout {next} while blocked");
    assert!(!matches!(a.next_timer(), Some((Timer::Flush | Timer::Idle, _))) || a.next_timer().unwrap().1 > Instant(500));
    // Nothing ever arrives: the loop sleeps from timer to timer until the
    // liveness deadline (no frame since the Accept at 0 for idle + pong
    // timeout, before the ack timeout at 30 s) ends the connection; no
    // spin, one wake-up, and nothing handed out meanwhile.
    let (wakes, seen) = sleep_blocked(&mut a, 500, 120_000);
    assert_eq!(wakes, vec![20_000], "wake-ups while blocked");
    assert!(seen.iter().any(|e| *e == Ev::disconnect(Reason::PongTimeout)), "{seen:?}");
    // The connection is gone and so is the blocked state; the records are
    // pending again for the next connection, none lost.
    assert!(!a.is_blocked());
    assert_eq!(a.ring().inflight_records(), 0);
    assert_eq!(a.ring().pending_records(), 7);
}

#[test]
fn blocked_with_nothing_in_flight_ends_by_liveness() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let _p = connect(&mut a, 0, 0);
    // Nothing in flight, so no ack timeout runs.
    assert_eq!(a.ring().inflight_records(), 0);
    // The server pings; the Pong is handed out and the write falls short.
    deliver(&mut a, 2_000, Message::Ping(Ping { nonce: 7 }));
    let mut out = [0u8; 2048];
    let n = a.poll_transmit(Instant(2_000), &mut out);
    assert_eq!(decode_sent(&out[..n]), Sent::Pong(7));
    a.handle_blocked(true);
    assert_eq!(a.ring().inflight_records(), 0, "the pending heartbeat waits");
    // No Ping can go: the idle timer runs on to idle + pong timeout after
    // the last frame received, and then the link is dead.
    assert_eq!(a.next_timer(), Some((Timer::Idle, Instant(2_000 + 15_000 + 5_000))));
    let (wakes, seen) = sleep_blocked(&mut a, 2_000, 120_000);
    assert_eq!(wakes, vec![22_000], "one wake-up, at the liveness deadline");
    assert!(seen.iter().any(|e| *e == Ev::disconnect(Reason::PongTimeout)), "{seen:?}");
    assert_eq!(a.state(), StateKind::Backoff);
}

#[test]
fn frames_received_while_blocked_keep_the_link() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let _p = connect(&mut a, 0, 0);
    assert_eq!(a.ring().inflight_records(), 0);
    a.handle_blocked(true);
    // The peer is alive (it reads slowly but talks): its frames move the
    // liveness deadline, so a slow reader is not mistaken for a dead one.
    for t in (10_000..=60_000).step_by(10_000) {
        a.handle_timeout(Instant(t));
        deliver(&mut a, t, Message::Ping(Ping { nonce: t }));
        assert_eq!(a.state(), StateKind::Connected, "at {t}");
        assert!(a.poll_timeout().unwrap() > Instant(t));
    }
    assert!(a.is_blocked());
}

#[test]
fn writable_again_sends_what_waited_at_once() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = connect(&mut a, 0, 0);
    p.uplink(&mut a, 0);
    p.downlink(&mut a, 0);
    a.handle_blocked(true);
    for i in 0..5u8 {
        a.push(Instant(100), &Record::new(2001, 100, &[i; 50])).unwrap();
    }
    // Blocked past the flush deadline: nothing goes, nothing is due.
    a.handle_timeout(Instant(1_000));
    assert!(p.uplink(&mut a, 1_000).is_empty());
    assert!(a.poll_timeout().unwrap() > Instant(1_000));
    // Writable again: the flush is due at once and the records go.
    a.handle_blocked(false);
    assert!(a.poll_timeout().unwrap() <= Instant(1_000));
    a.handle_timeout(Instant(1_000));
    let notes = p.uplink(&mut a, 1_000);
    assert!(!notes.is_empty());
    p.downlink(&mut a, 1_010);
    assert!(a.is_drained(), "every record acked after the socket drained");
    assert_eq!(a.stats().pushed, a.stats().acked);
}

#[test]
fn blocked_is_ignored_without_a_connection_and_cleared_by_a_new_one() {
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    a.handle_blocked(true);
    assert!(!a.is_blocked(), "no transport yet");
    let mut p = connect(&mut a, 0, 0);
    a.handle_blocked(true);
    a.handle_disconnected(Instant(50), TransportError::Reset);
    p.close();
    assert!(!a.is_blocked());
    // The next connection starts writable: its Hello goes out.
    let t = a.poll_timeout().unwrap().as_millis();
    attempt(&mut a, &mut p, t);
    assert_eq!(a.state(), StateKind::Connected);
    assert!(!a.is_blocked());
}

/// A socket slower than the application: it holds `CAP` bytes and drains
/// `DRAIN` bytes to the peer every 50 ms. The caller's loop keeps the rest
/// of one frame at most, reports the socket blocked while it does, and
/// sleeps until the earliest of the agent's timeout, the next drain
/// (writable) and the next push. Every wake-up is later than the last one
/// (no spin), and every record reaches the peer exactly once.
#[test]
fn a_slow_socket_delivers_every_record_once_without_spinning() {
    const CAP: usize = 500;
    const DRAIN: usize = 150;
    const RECORDS: u32 = 600;
    let mut m = Mem::new();
    let mut a = m.agent(cfg());
    let mut p = connect(&mut a, 0, 0);
    let id = p.conn().unwrap();
    let mut sock: Vec<u8> = Vec::new();
    let mut held: Vec<u8> = Vec::new();
    let mut out = vec![0u8; a.transmit_len()];
    let (mut t, mut next_push, mut next_drain) = (0u64, 0u64, 50u64);
    let (mut accepted, mut refused, mut blocked_turns) = (0u32, 0u32, 0u32);
    let mut i = 0u32;
    while t < 120_000 {
        if t >= next_push && i < RECORDS {
            let mut payload = [0xA5u8; 100];
            payload[..4].copy_from_slice(&i.to_le_bytes());
            match a.push(Instant(t), &Record::new(2001, t, &payload)) {
                Ok(()) => accepted += 1,
                Err(PushError::Full) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
            i += 1;
            next_push = t + 20;
        }
        if t >= next_drain {
            let n = sock.len().min(DRAIN);
            let bytes: Vec<u8> = sock.drain(..n).collect();
            p.peer.handle_received(id, &bytes);
            p.downlink(&mut a, t);
            next_drain = t + 50;
        }
        a.handle_timeout(Instant(t));
        let ev = events(&mut a);
        assert!(!ev.iter().any(|e| e.is_disconnect()), "t={t}: {ev:?}");
        loop {
            if !held.is_empty() {
                let n = (CAP - sock.len()).min(held.len());
                sock.extend(held.drain(..n));
                if !held.is_empty() {
                    a.handle_blocked(true);
                    blocked_turns += 1;
                    break;
                }
                a.handle_blocked(false);
            }
            let n = a.poll_transmit(Instant(t), &mut out);
            if n == 0 {
                break;
            }
            held.extend_from_slice(&out[..n]);
        }
        let mut next = a.poll_timeout().map_or(u64::MAX, |d| d.as_millis()).min(next_drain);
        if i < RECORDS {
            next = next.min(next_push);
        }
        assert!(next > t, "t={t}: the loop would spin (blocked: {})", a.is_blocked());
        if i == RECORDS && a.is_drained() && held.is_empty() && sock.is_empty() {
            break;
        }
        t = next;
    }
    assert!(blocked_turns > 10, "the socket was the bottleneck: {blocked_turns} blocked turns");
    assert!(a.is_drained(), "t={t}: every record acked");
    let log = p.peer.agent(ID.agent_id);
    assert_eq!(log.dups, 0);
    let got: Vec<u32> = log.payloads(2001).iter().map(|p| u32::from_le_bytes(p[..4].try_into().unwrap())).collect();
    assert_eq!(got.len() as u32, accepted, "refused: {refused}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    // What the ring refused while the socket held it back is counted, as
    // the application's own (not heartbeats).
    assert_eq!(a.stats().dropped_full - a.heartbeat_records().dropped_full, u64::from(refused));
}

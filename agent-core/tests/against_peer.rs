//! The test peer (`edge_testkit::peer`) against the collector rules of
//! PROTOCOL.md, frame by frame: what the agent, driver and simulation tests
//! rely on when they use it as their server.

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::message::{Accept, Ack, Batch, Close, CloseCode, Config, Hello, Message, Ping, Pong, Reject, Task};
use edge_testkit::peer::{self, Answer, BatchOutcome, Note, Peer, PeerConfig, Push, Refusal, Violation};

fn hello(first_unacked_seq: u64, next_seq: u64, min_frame: u32) -> Vec<u8> {
    let h = Hello {
        agent_id: "a1".into(),
        hostname: "h".into(),
        product: "p".into(),
        version: "1".into(),
        intranet_ipv4: &[],
        intranet_ipv6: &[],
        extranet_ipv4: &[],
        extranet_ipv6: &[],
        auth_token: b"tok",
        first_unacked_seq,
        next_seq,
        max_frame: 4096,
        min_frame,
    };
    frame(Message::Hello(h), 0)
}

fn frame(m: Message<'_>, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    let n = m.encode(seq, &mut b).unwrap();
    b.truncate(n);
    b
}

/// A Batch of `count` one-byte records from `first_seq`.
fn batch(first_seq: u64, count: u8, seq: u32) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..count {
        records.extend_from_slice(&[0xd1, 0x0f, 0x00, 0x01, i]); // type 2001, delta 0, payload [i]
    }
    frame(Message::Batch(Batch { first_seq, base_ts: 7, count: u32::from(count), records: &records }), seq)
}

/// The frames the peer wrote on `id`, as written.
fn replies(p: &mut Peer<'_>, id: u64) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| p.poll_transmit(id)).collect()
}

/// Asserts that the peer wrote exactly `want` on `id`, compared as decoded
/// values.
#[track_caller]
fn expect_replies(p: &mut Peer<'_>, id: u64, want: &[Message<'_>]) {
    let got = replies(p, id);
    assert_eq!(got.len(), want.len(), "{} frames, want {want:?}", got.len());
    for (f, w) in got.iter().zip(want) {
        let mut st = vec![0u8; 4096];
        let mut dec = FrameDecoder::new(&mut st);
        let Feed::Frame { frame, remaining } = dec.feed(f) else { panic!("peer wrote a partial frame") };
        assert!(remaining.is_empty());
        assert_eq!(Message::decode(&frame).unwrap(), *w);
    }
}

fn accepted(p: &mut Peer<'_>, first_unacked: u64) -> u64 {
    assert!(p.open(1));
    let notes = p.handle_received(1, &hello(first_unacked, first_unacked + 10, 200));
    assert!(matches!(notes[..], [Note::Hello { answer: Answer::Accept { .. }, .. }]), "{notes:?}");
    replies(p, 1);
    1
}

#[test]
fn accepts_stores_dedupes_and_closes_on_a_gap() {
    let mut p = peer::leaked(PeerConfig::default(), 1);
    assert!(p.open(1));
    // Unknown agent: resume at its own first_unacked_seq.
    let notes = p.handle_received(1, &hello(5, 9, 200));
    assert!(matches!(notes[..], [Note::Hello { stored_next: 0, answer: Answer::Accept { next_seq: 5 }, .. }]), "{notes:?}");
    expect_replies(&mut p, 1, &[Message::Accept(Accept { next_seq: 5, max_frame: 4096, retry_window_ms: 0 })]);
    // Stored, split across two chunks, acked cumulatively.
    let b = batch(5, 2, 1);
    assert!(p.handle_received(1, &b[..10]).is_empty());
    let notes = p.handle_received(1, &b[10..]);
    let [Note::Batch { expected: 5, outcome: BatchOutcome::Stored { new, dups, up_to: 6 }, .. }] = &notes[..] else {
        panic!("{notes:?}")
    };
    assert_eq!((new.clone(), dups.len()), (5..7, 0));
    expect_replies(&mut p, 1, &[Message::Ack(Ack { up_to: 6 })]);
    // Overlap: 5 and 6 are duplicates, 7 is new.
    p.handle_received(1, &batch(5, 3, 2));
    expect_replies(&mut p, 1, &[Message::Ack(Ack { up_to: 7 })]);
    let log = p.agent("a1");
    assert_eq!((log.dups, log.dup_mismatches, log.next), (2, 0, 8));
    assert_eq!(log.records.keys().copied().collect::<Vec<_>>(), [5, 6, 7]);
    assert_eq!(log.payloads(2001), [vec![0], vec![1], vec![2]]);
    // Above the expected point (8): a gap, Close(ProtocolError), closed.
    let notes = p.handle_received(1, &batch(9, 1, 3));
    assert!(matches!(notes[..], [Note::Batch { expected: 8, outcome: BatchOutcome::Gap, .. }]), "{notes:?}");
    expect_replies(&mut p, 1, &[Message::Close(Close { code: 1, reason: "gap".into() })]);
    assert!(!p.is_open(1));
    assert_eq!(p.agent("a1").gaps, 1);
    // Nothing more is read on a closed connection; released, the slot is free.
    assert!(p.handle_received(1, &batch(8, 1, 4)).is_empty());
    p.release(1);
    assert!(p.open(2));
    // A known agent resumes at what the peer stores.
    let notes = p.handle_received(2, &hello(6, 12, 200));
    assert!(matches!(notes[..], [Note::Hello { answer: Answer::Accept { next_seq: 8 }, .. }]), "{notes:?}");
}

#[test]
fn a_bad_crc_is_skipped_and_the_loss_it_leaves_is_a_gap() {
    let mut p = peer::leaked(PeerConfig::default(), 1);
    let id = accepted(&mut p, 0);
    let mut bad = batch(0, 2, 1);
    bad[15] ^= 0x01;
    assert!(p.handle_received(id, &bad).is_empty(), "skipped");
    assert!(p.is_open(id));
    assert_eq!(p.conn(id).unwrap().decoder_stats().bad_crc, 1);
    let notes = p.handle_received(id, &batch(2, 1, 2));
    assert!(matches!(notes[..], [Note::Batch { outcome: BatchOutcome::Gap, .. }]), "{notes:?}");
    assert_eq!(p.conn(id).unwrap().frame_seq_skips, 1, "frame 1 never arrived");
    assert!(p.agent("a1").records.is_empty());
}

#[test]
fn ping_pong_and_the_repeated_ack_habit() {
    let mut p = peer::leaked(PeerConfig::default(), 1);
    let id = accepted(&mut p, 0);
    p.handle_received(id, &batch(0, 1, 1));
    replies(&mut p, id);
    assert_eq!(p.handle_received(id, &frame(Message::Ping(Ping { nonce: 9 }), 2)), [Note::Ping(9)]);
    expect_replies(&mut p, id, &[Message::Pong(Pong { nonce: 9 })]);
    p.cfg.repeat_ack_after_pong = true;
    p.handle_received(id, &frame(Message::Ping(Ping { nonce: 10 }), 3));
    expect_replies(&mut p, id, &[Message::Pong(Pong { nonce: 10 }), Message::Ack(Ack { up_to: 0 })]);
}

#[test]
fn rejects_busy_unauthorized_and_too_small_a_frame() {
    let busy = Refusal { code: CloseCode::Busy, retry_after_ms: 1500 };
    let mut p = peer::leaked(PeerConfig { reject: Some(busy), ..PeerConfig::default() }, 1);
    assert!(p.open(1));
    let notes = p.handle_received(1, &hello(0, 0, 200));
    assert!(matches!(notes[..], [Note::Hello { answer: Answer::Reject { code: 6, retry_after_ms: 1500 }, .. }]));
    expect_replies(&mut p, 1, &[Message::Reject(Reject { code: 6, reason: "refused".into(), retry_after_ms: 1500 })]);
    assert!(!p.is_open(1));
    p.release(1);

    p.cfg.reject = None;
    p.cfg.auth_token = Some(b"other".to_vec());
    assert!(p.open(2));
    let notes = p.handle_received(2, &hello(0, 0, 200));
    assert!(matches!(notes[..], [Note::Hello { answer: Answer::Reject { code: 4, .. }, .. }]), "{notes:?}");
    p.release(2);

    p.cfg.auth_token = None;
    assert!(p.open(3));
    let notes = p.handle_received(3, &hello(0, 0, 4097)); // min_frame above the peer's max_frame
    assert!(matches!(notes[..], [Note::Hello { answer: Answer::Reject { code: 5, .. }, .. }]), "{notes:?}");
    assert_eq!(p.closes_sent.iter().map(|c| c.1).collect::<Vec<_>>(), [6, 4, 5]);
}

#[test]
fn protocol_errors_close_with_code_1() {
    let cases: [(&str, Vec<u8>, Violation); 3] = [
        ("batch before the hello", batch(0, 1, 0), Violation::BeforeHello(4)),
        ("collector -> agent kind", frame(Message::Ack(Ack { up_to: 0 }), 1), Violation::WrongDirection(5)),
        ("second hello", hello(0, 0, 200), Violation::SecondHello),
    ];
    for (what, bytes, want) in cases {
        let mut p = peer::leaked(PeerConfig::default(), 1);
        if want != Violation::BeforeHello(4) {
            accepted(&mut p, 0);
        } else {
            assert!(p.open(1));
        }
        assert_eq!(p.handle_received(1, &bytes), [Note::ProtocolError(want)], "{what}");
        expect_replies(&mut p, 1, &[Message::Close(Close { code: 1, reason: "protocol error".into() })]);
        assert!(!p.is_open(1), "{what}");
    }
}

#[test]
fn close_on_damage_habit_and_pushed_tasks() {
    let mut p = peer::leaked(PeerConfig::default(), 1);
    p.after_accept(Push::task("", 6000, b"x", "t1"));
    assert!(p.open(1));
    p.handle_received(1, &hello(0, 0, 200));
    let accept = Message::Accept(Accept { next_seq: 0, max_frame: 4096, retry_window_ms: 0 });
    let task = Message::Task(Task { object_name: "".into(), data_type: 6000, payload: b"x", token: "t1".into() });
    expect_replies(&mut p, 1, &[accept, task]);
    p.push(1, &Push::config("rules", "2", b"{}"));
    expect_replies(&mut p, 1, &[Message::Config(Config { name: "rules".into(), version: "2".into(), payload: b"{}" })]);
    // Garbage is skipped and the connection goes on, unless the habit is on.
    p.handle_received(1, b"junk");
    assert!(p.is_open(1));
    p.cfg.close_on_damage = true;
    p.handle_received(1, b"more junk");
    expect_replies(&mut p, 1, &[Message::Close(Close { code: 1, reason: "damaged".into() })]);
    assert_eq!(p.agent("a1").damaged_closes, 1);
    assert_eq!(p.tasks_sent, [(1, "t1".to_string())]);
}

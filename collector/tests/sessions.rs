//! The session rules, against the collector binary, with a raw client that
//! can break them: handshake, resume points, duplicates, gaps, bad frames,
//! tokens, limits, replacement, pings and timeouts.

mod common;

use agent_core::frame::crc32c;
use agent_core::message::{Ack, Batch, Message, Ping};
use common::raw::{entries, hello, Got, Raw};
use common::{collector, sink_view, TempDir};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn accept(c: &mut Raw) -> u64 {
    match c.recv_skipping(T) {
        Got::Accept { next_seq, max_frame, retry_window_ms } => {
            assert_eq!(max_frame, 65536);
            assert!(retry_window_ms >= 1, "the default admission rate gives advice for a fleet of at least this connection");
            next_seq
        }
        g => panic!("expected Accept, got {g:?}"),
    }
}

fn closed_with(c: &mut Raw, code: u16) -> String {
    match c.recv_skipping(T) {
        Got::Close { code: got, reason } if got == code => {
            assert_eq!(c.recv_skipping(T), Got::Eof, "closed after the Close");
            reason
        }
        g => panic!("expected Close {code}, got {g:?}"),
    }
}

#[test]
fn resume_points_duplicates_and_acks() {
    let dir = TempDir::new("resume");
    // a1 proves its id (a per-agent token), so its Hello may raise its
    // resume point; identity.rs has what unproven connections may do.
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "a1 tok-a1\n").unwrap();
    let col = collector().start(dir.path(), &["--api-token", "api-token-for-tests", "--api-listen", "127.0.0.1:0", "--token-file", tokens.to_str().unwrap()]);
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("a1", b"tok-a1", 0, 0)));
    assert_eq!(accept(&mut c), 0, "an unknown agent resumes at its first_unacked_seq");
    c.batch("r", 0, 5);
    assert_eq!(c.recv_skipping(T), Got::Ack(4));
    c.batch("r", 3, 5); // 3 and 4 again: duplicates, acked again
    assert_eq!(c.recv_skipping(T), Got::Ack(7));
    c.batch("r", 0, 2); // all duplicates
    assert_eq!(c.recv_skipping(T), Got::Ack(7), "acks are cumulative, never lower");
    drop(c);

    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("a1", b"tok-a1", 5, 8)));
    assert_eq!(accept(&mut c), 8, "the resume point: one past the highest stored");
    drop(c);
    // An agent whose records up to 20 were acked by another collector.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("a1", b"tok-a1", 20, 25)));
    assert_eq!(accept(&mut c), 20);
    c.batch("r", 20, 5);
    assert_eq!(c.recv_skipping(T), Got::Ack(24));
    drop(c);

    // A Hello whose next_seq is below the resume point (a cloned agent id):
    // refused with code 7 (the agent would refuse the point anyway), never
    // answered with a lower point; counted.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("a1", b"tok-a1", 2, 3)));
    match c.recv_skipping(T) {
        Got::Reject { code: 7, reason, .. } => assert!(reason.contains("next_seq"), "{reason}"),
        g => panic!("expected Reject 7, got {g:?}"),
    }
    drop(c);
    let (_, metrics) = common::http(col.api.unwrap(), "GET", "/metrics", Some("api-token-for-tests"), None);
    assert!(metrics.contains("edge_collector_resume_conflicts_total 1\n"), "{metrics}");
    assert!(metrics.contains("edge_collector_records_duplicate_total 4\n"), "{metrics}");

    let v = sink_view(dir.path());
    assert_eq!(v.seqs["a1"], (0..8).chain(20..25).collect::<Vec<_>>());
    assert_eq!(v.texts["a1"][3], "r3");
}

#[test]
fn stdout_sink_writes_lines_and_acks_after_the_flush() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = TempDir::new("stdout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-collector"))
        .args(["--sink", "stdout", "--listen", "127.0.0.1:0", "--log", "warn", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The ready line goes to stderr when the records go to stdout (after
    // the start-up warnings, such as the open port's).
    /// Kills the child however the test ends.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (stderr, stdout) = (child.stderr.take().unwrap(), child.stdout.take().unwrap());
    let _child = Reap(child);
    let mut err = BufReader::new(stderr);
    let addr: std::net::SocketAddr = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "no ready line");
        if let Some(a) = line.split_whitespace().find_map(|p| p.strip_prefix("agents=")) {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut c = Raw::connect(addr);
    c.send(&Message::Hello(hello("out-1", b"", 0, 0)));
    accept(&mut c);
    c.batch("o", 0, 3);
    assert_eq!(c.recv_skipping(T), Got::Ack(2));
    let mut out = BufReader::new(stdout);
    for seq in 0..3u64 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!((v["agent"].as_str(), v["seq"].as_u64(), v["text"].as_str()), (Some("out-1"), Some(seq), Some(format!("o{seq}").as_str())));
    }
}

#[test]
fn gap_bad_crc_and_malformed_close_with_protocol_error() {
    let dir = TempDir::new("gap");
    let col = collector().start(dir.path(), &[]);

    // A gap inside the connection.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("g1", b"", 0, 0)));
    accept(&mut c);
    c.batch("g", 0, 3);
    assert_eq!(c.recv_skipping(T), Got::Ack(2));
    c.batch("g", 4, 3);
    assert!(closed_with(&mut c, 1).contains("gap"));

    // A Batch with a bad CRC is skipped; the next one shows the gap.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("g1", b"", 3, 3)));
    assert_eq!(accept(&mut c), 3);
    let records = entries("g", 3, 2);
    let mut f = c.frame(&Message::Batch(Batch { first_seq: 3, base_ts: 1000, count: 2, records: &records }));
    f[15] ^= 0x40;
    c.send_bytes(&f);
    c.batch("g", 5, 2);
    closed_with(&mut c, 1);

    // Malformed batches: count 0, count above the entries, a truncated entry.
    for (count, cut) in [(0u32, 0usize), (3, 0), (2, 1)] {
        let mut c = Raw::connect(col.agents);
        c.send(&Message::Hello(hello("g1", b"", 3, 3)));
        accept(&mut c);
        let records = entries("g", 3, 2);
        c.send(&Message::Batch(Batch { first_seq: 3, base_ts: 1000, count, records: &records[..records.len() - cut] }));
        closed_with(&mut c, 1);
    }
    // Kinds only a collector sends; anything but Hello first.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("g1", b"", 3, 3)));
    accept(&mut c);
    c.send(&Message::Ack(Ack { up_to: 1 }));
    closed_with(&mut c, 1);
    // A Ping before the Hello is skipped (a stale frame of a serial
    // gateway; prehello.rs has the rest), not a reason to close.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Ping(Ping { nonce: 1 }));
    c.send(&Message::Hello(hello("g1", b"", 3, 3)));
    assert_eq!(accept(&mut c), 3);
    // A second Hello on the connection: Close 1, saying so.
    c.send(&Message::Hello(hello("g1", b"", 3, 3)));
    assert_eq!(closed_with(&mut c, 1), "a second Hello on one connection");
    // A frame of another version after Accept: Close 5, as the agent does.
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("g1", b"", 3, 3)));
    accept(&mut c);
    let mut f = c.frame(&Message::Ping(Ping { nonce: 2 }));
    f[2] = 2;
    let n = f.len();
    let crc = crc32c(&f[..n - 4]);
    f[n - 4..].copy_from_slice(&crc.to_le_bytes());
    c.send_bytes(&f);
    closed_with(&mut c, 5);
    // No Hello field is optional: a Hello that ends before min_frame is
    // malformed (Close 1).
    let mut c = Raw::connect(col.agents);
    let mut f = c.frame(&Message::Hello(hello("g1", b"", 3, 3)));
    let body_len = u32::from_le_bytes(f[5..9].try_into().unwrap()) as usize;
    let cut = 2; // min_frame 1100 is `cc 08`: the body ends right after max_frame
    let mut short = f[..13 + body_len - cut].to_vec();
    short[5..9].copy_from_slice(&((body_len - cut) as u32).to_le_bytes());
    let crc = crc32c(&short);
    short.extend_from_slice(&crc.to_le_bytes());
    f.clear();
    c.send_bytes(&short);
    assert!(closed_with(&mut c, 1).contains("malformed Hello"));

    let v = sink_view(dir.path());
    assert_eq!(v.seqs["g1"], vec![0, 1, 2], "nothing past the gap, nothing from a malformed batch");
}

#[test]
fn tokens_versions_and_frame_sizes_get_rejects() {
    let dir = TempDir::new("reject");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "special s3cret\n").unwrap();
    let col = collector().start(dir.path(), &["--agent-token", "fleet", "--token-file", tokens.to_str().unwrap(), "--retry-after-ms", "7000"]);
    let cases: [(&str, &[u8], Option<u16>); 5] = [
        ("any", b"fleet", None),
        ("any", b"fleeT", Some(4)),
        ("special", b"s3cret", None),
        ("special", b"fleet", Some(4)),
        ("any", b"", Some(4)),
    ];
    for (id, token, want) in cases {
        let mut c = Raw::connect(col.agents);
        c.send(&Message::Hello(hello(id, token, 0, 0)));
        match (c.recv_skipping(T), want) {
            (Got::Accept { .. }, None) => {}
            (Got::Reject { code, retry_after_ms, .. }, Some(w)) if code == w => {
                assert_eq!(retry_after_ms, 7000);
                assert_eq!(c.recv(T), Got::Eof);
            }
            (g, w) => panic!("{id} {token:?}: expected {w:?}, got {g:?}"),
        }
    }
    // A Hello of protocol version 2: a version-1 Reject, code 5.
    let mut c = Raw::connect(col.agents);
    let mut f = c.frame(&Message::Hello(hello("any", b"fleet", 0, 0)));
    f[2] = 2;
    let n = f.len();
    let crc = crc32c(&f[..n - 4]);
    f[n - 4..].copy_from_slice(&crc.to_le_bytes());
    c.send_bytes(&f);
    assert!(matches!(c.recv(T), Got::Reject { code: 5, .. }));
    // An agent that needs bigger frames than the collector's --max-frame.
    drop(col);
    let col = collector().start(dir.path(), &["--max-frame", "4096"]);
    let mut c = Raw::connect(col.agents);
    let mut h = hello("any", b"", 0, 0);
    h.min_frame = 5000;
    c.send(&Message::Hello(h));
    match c.recv(T) {
        Got::Reject { code: 5, reason, .. } => assert!(reason.contains("4096"), "{reason}"),
        g => panic!("expected Reject 5, got {g:?}"),
    }
}

#[test]
fn busy_replacement_pings_and_timeouts() {
    let dir = TempDir::new("busy");
    let col = collector().start(
        dir.path(),
        &["--max-connections", "2", "--idle-timeout", "1.5", "--ping-after", "0.5", "--handshake-timeout", "1", "--api-token", "api-token-for-tests", "--api-listen", "127.0.0.1:0"],
    );
    let mut a = Raw::connect(col.agents);
    a.send(&Message::Hello(hello("b1", b"", 0, 0)));
    accept(&mut a);
    let mut b = Raw::connect(col.agents);
    b.send(&Message::Hello(hello("b2", b"", 0, 0)));
    accept(&mut b);
    let mut c = Raw::connect(col.agents);
    c.send(&Message::Hello(hello("b3", b"", 0, 0)));
    match c.recv(T) {
        Got::Reject { code: 6, retry_after_ms, .. } => assert!(retry_after_ms > 0),
        g => panic!("expected Reject 6 (Busy), got {g:?}"),
    }
    // The Ping of an agent is answered with its nonce.
    a.send(&Message::Ping(Ping { nonce: 0xfeed }));
    assert_eq!(a.recv(T), Got::Pong(0xfeed));
    // The same id again, unproven: refused with code 7, the live session
    // goes on (identity.rs: a proven one replaces it)...
    drop(b);
    std::thread::sleep(Duration::from_millis(200));
    let mut a2 = Raw::connect(col.agents);
    a2.send(&Message::Hello(hello("b1", b"", 0, 0)));
    // The live session is probed with a Ping; it answers, so it keeps its id.
    let Got::Ping(nonce) = a.recv(T) else { panic!("the live session was probed") };
    a.send(&Message::Pong(agent_core::message::Pong { nonce }));
    assert!(matches!(a2.recv(T), Got::Reject { code: 7, .. }));
    a.send(&Message::Ping(Ping { nonce: 0xbeef }));
    assert_eq!(a.recv(T), Got::Pong(0xbeef), "the live session was not ended");
    // ... and a silent connection is pinged, then closed with code 3.
    assert!(matches!(a.recv(Duration::from_secs(3)), Got::Ping(_)));
    match a.recv(Duration::from_secs(3)) {
        Got::Close { code: 3, .. } => {}
        g => panic!("expected Close 3 (Timeout), got {g:?}"),
    }
    // No Hello in time: closed.
    let mut quiet = Raw::connect(col.agents);
    assert!(matches!(quiet.recv(Duration::from_secs(3)), Got::Close { code: 3, .. }));
    let (status, metrics) = common::http(col.api.unwrap(), "GET", "/metrics", Some("api-token-for-tests"), None);
    assert_eq!(status, 200);
    for m in ["rejects_busy_total 1", "rejects_conflict_total 1", "sessions_replaced_total 0", "pongs_sent_total 2"] {
        assert!(metrics.contains(&format!("edge_collector_{m}\n")), "{m} in\n{metrics}");
    }
}

#[test]
fn garbage_and_slowloris_clients_do_not_hurt_others() {
    let dir = TempDir::new("garbage");
    let col = collector().start(dir.path(), &["--idle-timeout", "1.5", "--ping-after", "0.5", "--handshake-timeout", "1"]);
    let mut rng = common::Rng(common::seed());
    // Garbage: random bytes, sometimes with the magic in them.
    let mut g = Raw::connect(col.agents);
    let mut junk = vec![0u8; 64 * 1024];
    for b in junk.iter_mut() {
        *b = if rng.below(50) == 0 { 0xEA } else { rng.next() as u8 };
    }
    g.send_bytes(&junk);
    // Slowloris: a Hello, then a Batch one byte at a time, too slowly.
    let mut s = Raw::connect(col.agents);
    s.send(&Message::Hello(hello("slow", b"", 0, 0)));
    accept(&mut s);
    let records = entries("s", 0, 50);
    let slow = s.frame(&Message::Batch(Batch { first_seq: 0, base_ts: 1000, count: 50, records: &records }));
    // A good agent meanwhile.
    let mut ok = Raw::connect(col.agents);
    ok.send(&Message::Hello(hello("good", b"", 0, 0)));
    accept(&mut ok);
    let start = std::time::Instant::now();
    let mut closed = false;
    for (i, byte) in slow.iter().enumerate() {
        if !s.send_bytes(&[*byte]) {
            closed = true;
            break;
        }
        if i % 10 == 0 {
            ok.batch("k", i as u64 / 10, 1);
            assert_eq!(ok.recv_skipping(T), Got::Ack(i as u64 / 10));
        }
        std::thread::sleep(Duration::from_millis(20));
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    // The slow one got a Ping, then Close 3 (its bytes never made a frame).
    let mut saw_close = false;
    for _ in 0..4 {
        match s.recv(Duration::from_secs(3)) {
            Got::Close { code: 3, .. } => {
                saw_close = true;
                break;
            }
            Got::Ping(_) => continue,
            Got::Eof => break,
            g => panic!("slowloris: {g:?}"),
        }
    }
    assert!(closed || saw_close, "the slowloris was closed for its silence (bytes that make no frame do not count)");
    // The garbage one was closed by the handshake timeout.
    assert!(matches!(g.recv(Duration::from_secs(3)), Got::Close { code: 3, .. } | Got::Close { code: 1, .. } | Got::Eof));
    let v = sink_view(dir.path());
    assert!(!v.seqs.contains_key("slow"));
    assert!(!v.seqs["good"].is_empty());
}

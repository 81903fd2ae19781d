//! What precedes a Hello, against the collector binary: the stale frames a
//! serial-to-TCP gateway delivers at the start of the next connection are
//! skipped and counted, not a reason to close (issue 17, Build 5); garbage
//! before a Hello is counted and bounded (issue 15, finding 7); sockets
//! that never send a Hello cannot lock agents out of their session slots
//! (finding 6).

mod common;

use agent_core::frame::crc32c;
use agent_core::message::{Close, Message, Ping, Pong};
use common::raw::{hello, Got, Raw};
use common::probe::under_attack;
use common::{collector, sink_view, CollectorProc, TempDir};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

fn metric(api: SocketAddr, name: &str) -> u64 {
    let (status, text) = common::http(api, "GET", "/metrics", Some("api-token-for-tests"), None);
    assert_eq!(status, 200);
    let key = format!("edge_collector_{name} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or_else(|| panic!("no {name} in\n{text}")).parse().unwrap()
}

fn start(dir: &TempDir, extra: &[&str]) -> CollectorProc {
    let mut args = vec!["--api-token", "api-token-for-tests", "--api-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    collector().start(dir.path(), &args)
}

/// A frame of kind 64 (unknown to version 1) with a good CRC.
fn unknown_kind_frame() -> Vec<u8> {
    let mut f = vec![0xEA, 0x9E, 1, 64, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3];
    let crc = crc32c(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// The gateway's case: the agent's parting Close and an idle Ping from
/// the last connection, line noise, a Pong, a frame of an unknown kind and
/// half a frame arrive before the Hello of the new one. The collector skips
/// them all, counts them, and accepts the Hello on this connection.
#[test]
fn stale_frames_and_noise_before_the_hello_are_skipped_and_counted() {
    let dir = TempDir::new("stale");
    let col = start(&dir, &[]);
    let mut c = Raw::connect(col.agents);
    let mut stream = Vec::new();
    stream.extend(c.frame(&Message::Close(Close { code: 2, reason: "agent stopping".into() })));
    stream.extend(c.frame(&Message::Ping(Ping { nonce: 7 })));
    let noise = [0x00, 0x13, 0xEA, 0x00, 0x55];
    stream.extend_from_slice(&noise);
    stream.extend(c.frame(&Message::Pong(Pong { nonce: 9 })));
    stream.extend(unknown_kind_frame());
    let frames_len = stream.len() - noise.len();
    // Half a Ping whose rest the gateway lost: its header claims 4 body
    // bytes, which the Hello's first bytes then fill, so the CRC fails and
    // the decoder resyncs onto the Hello.
    let half = c.frame(&Message::Ping(Ping { nonce: 8 }));
    stream.extend_from_slice(&half[..13]);
    stream.extend(c.frame(&Message::Hello(hello("serial-1", b"", 0, 0))));
    // In small pieces, as a UART would deliver them.
    for piece in stream.chunks(7) {
        c.send_bytes(piece);
        std::thread::sleep(Duration::from_millis(2));
    }
    match c.recv(T) {
        Got::Accept { next_seq: 0, .. } => {}
        g => panic!("expected Accept, got {g:?}"),
    }
    c.batch("s", 0, 3);
    assert_eq!(c.recv_skipping(T), Got::Ack(2));
    drop(c);
    let api = col.api.unwrap();
    assert_eq!(metric(api, "prehello_frames_skipped_total"), 4, "Close, Ping, Pong, unknown kind");
    assert_eq!(metric(api, "protocol_errors_total"), 0);
    let skipped = metric(api, "prehello_bytes_skipped_total");
    assert!(skipped >= (frames_len + noise.len() + 13) as u64, "{skipped} bytes skipped before the Hello");
    assert!(metric(api, "decoder_skipped_bytes_total") >= (noise.len() + 13) as u64);
    assert_eq!(sink_view(dir.path()).seqs["serial-1"], vec![0, 1, 2]);
}

/// Finding 7: garbage before a Hello is counted as it arrives, and a
/// connection that sends more than `--prehello-bytes` of it (or of
/// skipped frames) without a Hello is closed with code 1, while a steady
/// agent keeps its acks.
#[test]
fn garbage_before_the_hello_is_counted_and_bounded() {
    let dir = TempDir::new("garbage-budget");
    let col = start(&dir, &["--handshake-timeout", "20"]); // --prehello-bytes: the default, 65536
    let api = col.api.unwrap();
    let addr = col.agents;
    let mut rng = common::Rng(common::seed());
    let mut junk = vec![0u8; 256 * 1024];
    for b in junk.iter_mut() {
        // No 0xEA: every byte is skipped at once, none waits in a candidate.
        *b = (rng.next() as u8) & 0x7f;
    }
    let closed = under_attack(addr, "steady", b"", Duration::from_millis(600), || {
        let mut closed = 0;
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            let mut g = Raw::connect(addr);
            g.send_bytes(&junk[..80 * 1024]);
            match g.recv(T) {
                Got::Close { code: 1, reason } => assert!(reason.contains("no Hello within 65536 bytes"), "{reason}"),
                got => panic!("expected Close 1, got {got:?}"),
            }
            closed += 1;
        }
        // Skipped frames count too: Pings alone never make a Hello.
        let mut p = Raw::connect(addr);
        let ping = p.frame(&Message::Ping(Ping { nonce: 1 }));
        let mut pings = Vec::new();
        while pings.len() <= 65536 {
            pings.extend_from_slice(&ping);
        }
        p.send_bytes(&pings);
        assert!(matches!(p.recv(T), Got::Close { code: 1, .. }));
        closed + 1
    });
    let skipped = metric(api, "decoder_skipped_bytes_total");
    assert!(skipped >= 65536 * (closed - 1), "garbage counted: {skipped} bytes");
    assert_eq!(metric(api, "prehello_budget_exceeded_total"), closed);
    // Garbage that stops short of the budget waits for the handshake
    // timeout; then the garbage is counted too.
    let before = metric(api, "prehello_bytes_skipped_total");
    let mut g = Raw::connect(addr);
    g.send_bytes(&junk[..1000]);
    let counted = common::wait_for(T, || (metric(api, "prehello_bytes_skipped_total") >= before + 1000).then_some(()));
    assert!(counted.is_some(), "garbage is counted as it arrives, before the connection ends");
}

/// Finding 6: sockets that never send a Hello do not count against
/// `--max-connections`; beyond `--max-handshakes` the oldest is closed,
/// so agents that do say Hello are admitted, and a steady agent keeps its
/// acks.
#[test]
fn silent_sockets_cannot_lock_agents_out() {
    let dir = TempDir::new("silent");
    let col = start(&dir, &["--max-connections", "20", "--max-handshakes", "40", "--handshake-timeout", "30"]);
    let api = col.api.unwrap();
    let addr = col.agents;
    let silent: Vec<TcpStream> = under_attack(addr, "steady", b"", Duration::from_millis(600), || {
        let until = Instant::now() + Duration::from_secs(1);
        let mut silent = Vec::new();
        for _ in 0..150 {
            silent.push(TcpStream::connect_timeout(&addr, T).expect("connect"));
        }
        // Agents still get in, up to the session limit (the steady one holds one).
        for i in 0..10 {
            let id = format!("late-{i}");
            let (_c, accept, busy) = Raw::connect_admitted(addr, &hello(&id, b"", 0, 0), T, 0);
            assert!(matches!(accept, Got::Accept { .. }) && busy == 0);
        }
        // The silent sockets stay while the steady agent goes on.
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        silent
    });
    let evicted = common::wait_for(T, || {
        let n = metric(api, "handshakes_evicted_total");
        (n >= 150 - 40).then_some(n)
    });
    assert!(evicted.is_some(), "the oldest silent sockets were closed to make room");
    // The evicted ones see the connection end (no frame: they said nothing).
    let mut ended = 0;
    for mut s in silent.into_iter().take(50) {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => ended += 1,
            Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => ended += 1,
            _ => {}
        }
    }
    assert!(ended >= 40, "{ended} of the 50 oldest silent sockets were closed");
    assert_eq!(metric(api, "rejects_busy_total"), 0, "no agent was turned away");
}

//! Identity, against the collector binary: without a per-agent credential
//! no connection moves another agent's resume point or ends its session
//! (issue 15, finding 1 and "two live connections with one id"); impossible
//! Hellos and identity fields beyond their bounds are refused; new
//! unproven ids arrive at a bounded rate. Each attack runs beside a
//! well-behaved agent whose acks and latency are checked
//! ([`common::probe::under_attack`]).

mod common;

use agent_core::message::{Message, Pong};
use common::raw::{hello, Got, Raw};
use common::probe::under_attack;
use common::{collector, sink_view, CollectorProc, TempDir};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);
const REST: Duration = Duration::from_millis(600);

fn metric(api: SocketAddr, name: &str) -> u64 {
    let (status, text) = common::http(api, "GET", "/metrics", Some("api-token-for-tests"), None);
    assert_eq!(status, 200);
    let key = format!("edge_collector_{name} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or_else(|| panic!("no {name} in\n{text}")).parse().unwrap()
}

/// The attacks below send Hellos back to back, faster than the default
/// admission rate: `--admission-rate 0`, so each answer is the identity
/// rule's and not a paced Busy (admission.rs tests the rate).
fn api_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--api-token", "api-token-for-tests", "--api-listen", "127.0.0.1:0", "--admission-rate", "0"].iter().map(|s| s.to_string()).collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn start(dir: &TempDir, extra: &[&str]) -> CollectorProc {
    let args = api_args(extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    collector().start(dir.path(), &refs)
}

fn accepted(c: &mut Raw) -> u64 {
    match c.recv_skipping(T) {
        Got::Accept { next_seq, .. } => next_seq,
        g => panic!("expected Accept, got {g:?}"),
    }
}

fn rejected(c: &mut Raw) -> (u16, String, u32) {
    match c.recv_skipping(T) {
        Got::Reject { code, reason, retry_after_ms } => (code, reason, retry_after_ms),
        g => panic!("expected Reject, got {g:?}"),
    }
}

/// The victim stores records 0..10 (acked), then holds 10..20 unacked
/// while it is away.
fn victim_stores_ten(addr: SocketAddr, token: &[u8]) {
    let mut v = Raw::connect(addr);
    v.send(&Message::Hello(hello("victim", token, 0, 0)));
    assert_eq!(accepted(&mut v), 0);
    v.batch("v", 0, 10);
    assert_eq!(v.recv_skipping(T), Got::Ack(9));
}

/// The victim comes back holding 10..20: it must be told 10, and every
/// record of it must end up stored, its own.
fn victim_resumes_losing_nothing(addr: SocketAddr, token: &[u8], dir: &TempDir) {
    let mut v = Raw::connect(addr);
    v.send(&Message::Hello(hello("victim", token, 10, 20)));
    assert_eq!(accepted(&mut v), 10, "the victim's resume point was not moved");
    v.batch("v", 10, 10);
    assert_eq!(v.recv_skipping(T), Got::Ack(19));
    drop(v);
    let view = sink_view(dir.path());
    assert_eq!(view.seqs["victim"], (0..20).collect::<Vec<_>>());
    assert_eq!(view.texts["victim"], (0..20).map(|i| format!("v{i}")).collect::<Vec<_>>(), "only the victim's own records");
}

/// Finding 1, open port and shared token: a Hello with the victim's id and
/// a `first_unacked_seq` above its point (10 records "acked elsewhere", or
/// 2^62 to lock it out) is refused with code 7, nothing of the victim's
/// state moves, and after a restart the victim resumes where it was.
#[test]
fn an_unproven_hello_cannot_raise_a_victims_resume_point() {
    for token in [&b""[..], b"fleet"] {
        let dir = TempDir::new("takeover");
        let shared: Vec<&str> = if token.is_empty() { vec![] } else { vec!["--agent-token", "fleet"] };
        let mut col = start(&dir, &shared);
        let api = col.api.unwrap();
        victim_stores_ten(col.agents, token);
        let addr = col.agents;
        let refused = under_attack(addr, "bystander", token, REST, || {
            let until = Instant::now() + Duration::from_secs(1);
            let mut refused = 0;
            while Instant::now() < until {
                for (first, next) in [(20, 30), (1 << 62, 1 << 62), (11, 11)] {
                    let mut a = Raw::connect(addr);
                    a.send(&Message::Hello(hello("victim", token, first, next)));
                    let (code, reason, _) = rejected(&mut a);
                    assert_eq!(code, 7, "{reason}");
                    assert!(reason.contains("first_unacked_seq"), "{reason}");
                    refused += 1;
                }
            }
            refused
        });
        assert_eq!(metric(api, "resume_raises_refused_total"), refused);
        // An attacker that answers below the point learns nothing it can use
        // to move it: a Hello at 5..9 is accepted at 10 and its duplicates
        // are acked, not stored.
        let mut a = Raw::connect(addr);
        a.send(&Message::Hello(hello("victim", token, 5, 10)));
        assert_eq!(accepted(&mut a), 10);
        a.batch("x", 5, 5);
        assert_eq!(a.recv_skipping(T), Got::Ack(9));
        drop(a);
        // The raise never reached the checkpoint either: a restart keeps 10.
        std::thread::sleep(Duration::from_millis(200));
        col.kill9();
        let col = start(&dir, &shared);
        victim_resumes_losing_nothing(col.agents, token, &dir);
    }
}

/// With a per-agent token the same Hello proves the agent, so it may raise
/// its own point (the failover case); the attacker without that token is
/// refused with code 4 before anything else.
#[test]
fn a_proven_agent_may_raise_its_own_point() {
    let dir = TempDir::new("proven-raise");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "victim v-secret\n").unwrap();
    let col = start(&dir, &["--agent-token", "fleet", "--token-file", tokens.to_str().unwrap()]);
    victim_stores_ten(col.agents, b"v-secret");
    let mut a = Raw::connect(col.agents);
    a.send(&Message::Hello(hello("victim", b"fleet", 1 << 62, 1 << 62)));
    assert_eq!(rejected(&mut a).0, 4, "the shared token does not open a listed id");
    let mut v = Raw::connect(col.agents);
    v.send(&Message::Hello(hello("victim", b"v-secret", 20, 25)));
    assert_eq!(accepted(&mut v), 20, "records below 20 were acked by another collector");
    v.batch("v", 20, 5);
    assert_eq!(v.recv_skipping(T), Got::Ack(24));
}

/// "Two live connections with one id": an unproven second connection does
/// not end a live session (which answers the liveness probe); it gets
/// Reject 7, and the session keeps acking. A session that cannot answer
/// (half-open: its agent has gone) is replaced, with Close 7. A proven
/// newcomer replaces at once.
#[test]
fn an_unproven_connection_cannot_end_a_live_session() {
    let dir = TempDir::new("second-conn");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "listed l-secret\n").unwrap();
    let col = start(&dir, &["--token-file", tokens.to_str().unwrap(), "--agent-token", "fleet"]);
    let addr = col.agents;
    let api = col.api.unwrap();

    // The victim is live and answers Pings from its own thread.
    let victim = std::thread::spawn(move || {
        let mut v = Raw::connect(addr);
        v.send(&Message::Hello(hello("live", b"fleet", 0, 0)));
        assert_eq!(accepted(&mut v), 0);
        let mut seq = 0;
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            v.batch("l", seq, 1);
            loop {
                match v.recv(T) {
                    Got::Ack(up_to) if up_to == seq => break,
                    Got::Ping(nonce) => v.send(&Message::Pong(Pong { nonce })),
                    g => panic!("the live session got {g:?} for record {seq}"),
                }
            }
            seq += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        seq
    });
    std::thread::sleep(Duration::from_millis(300));
    let refused = under_attack(addr, "bystander", b"fleet", REST, || {
        let mut n = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let mut a = Raw::connect(addr);
            a.send(&Message::Hello(hello("live", b"fleet", 0, 0)));
            let (code, reason, retry_after_ms) = rejected(&mut a);
            assert_eq!(code, 7, "{reason}");
            assert!(retry_after_ms > 0);
            n += 1;
        }
        n
    });
    let sent = victim.join().expect("the live session was never closed");
    assert!(refused >= 2 && sent > 10, "refused {refused}, victim sent {sent}");
    assert_eq!(metric(api, "sessions_replaced_total"), 0);
    assert_eq!(metric(api, "rejects_conflict_total"), refused);

    // A half-open session (it never answers) is replaced after the probe.
    let mut dead = Raw::connect(addr);
    dead.send(&Message::Hello(hello("gone", b"fleet", 0, 0)));
    accepted(&mut dead);
    let mut back = Raw::connect(addr);
    back.send(&Message::Hello(hello("gone", b"fleet", 0, 0)));
    assert_eq!(accepted(&mut back), 0, "the agent that came back gets its id");
    match dead.recv_skipping(T) {
        Got::Close { code: 7, .. } => {}
        g => panic!("the replaced session: {g:?}"),
    }
    // A proven newcomer replaces a live session without a probe.
    let mut first = Raw::connect(addr);
    first.send(&Message::Hello(hello("listed", b"l-secret", 0, 0)));
    accepted(&mut first);
    let mut second = Raw::connect(addr);
    second.send(&Message::Hello(hello("listed", b"l-secret", 0, 0)));
    accepted(&mut second);
    assert!(matches!(first.recv_skipping(T), Got::Close { code: 7, .. }));
    assert_eq!(metric(api, "sessions_replaced_total"), 2);
}

/// Hellos no conforming agent sends get Reject 1 (not an Accept every
/// agent must refuse, looping): `first_unacked_seq` above `next_seq`,
/// `next_seq` above 2^63, `max_frame` below 64. The agent's id is untouched.
#[test]
fn impossible_hellos_are_refused_with_code_1() {
    let dir = TempDir::new("impossible");
    let col = start(&dir, &[]);
    victim_stores_ten(col.agents, b"");
    let mut small = hello("victim", b"", 10, 10);
    small.max_frame = 63;
    let cases = [hello("victim", b"", 30, 20), hello("victim", b"", 0, (1 << 63) + 1), hello("victim", b"", 1 << 63 | 5, 1 << 63 | 5), small];
    for h in cases {
        let mut c = Raw::connect(col.agents);
        c.send(&Message::Hello(h));
        let (code, reason, _) = rejected(&mut c);
        assert_eq!(code, 1, "{h:?}: {reason}");
        assert!(reason.starts_with("impossible Hello"), "{reason}");
        assert_eq!(c.recv(T), Got::Eof);
    }
    victim_resumes_losing_nothing(col.agents, b"", &dir);
}

/// Build 3, the client-controlled identity: an agent id or hostname beyond
/// its bound gets Reject 5 and leaves no trace; new unproven ids arrive at
/// most at `--new-agents-per-sec` after the burst (finding 7: 8.9k 4-KiB
/// ids in 10 s), while known and proven ids are not held back, and a
/// steady agent keeps its acks.
#[test]
fn identity_bounds_and_the_new_id_rate() {
    let dir = TempDir::new("bounds");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "proven-1 p1\n").unwrap();
    let col = start(&dir, &["--new-agents-per-sec", "20", "--new-agents-burst", "10", "--agent-token", "fleet", "--token-file", tokens.to_str().unwrap()]);
    let addr = col.agents;
    let api = col.api.unwrap();
    let long_id = "i".repeat(4096);
    let long_host = "h".repeat(256);
    for (id, host, field) in [(long_id.as_str(), "h", "agent_id"), ("x".repeat(129).as_str(), "h", "agent_id"), ("ok-id", long_host.as_str(), "hostname"), ("", "h", "agent_id")] {
        let mut c = Raw::connect(addr);
        let mut h = hello(id, b"fleet", 0, 0);
        h.hostname = host.into();
        c.send(&Message::Hello(h));
        let (code, reason, _) = rejected(&mut c);
        assert_eq!(code, 5, "{reason}");
        assert!(reason.contains(field), "{reason}");
    }
    let at_bound = "y".repeat(128);
    let mut c = Raw::connect(addr);
    c.send(&Message::Hello(hello(&at_bound, b"fleet", 0, 0)));
    accepted(&mut c);
    drop(c);

    let t0 = Instant::now();
    let (admitted, busy) = under_attack(addr, "bystander", b"fleet", REST, || {
        let (mut admitted, mut busy) = (0u64, 0u64);
        for i in 0..300 {
            let id = format!("flood-{i:04}-{}", "z".repeat(100));
            let mut c = Raw::connect(addr);
            c.send(&Message::Hello(hello(&id, b"fleet", 0, 0)));
            match c.recv_skipping(T) {
                Got::Accept { .. } => admitted += 1,
                Got::Reject { code: 6, retry_after_ms, reason } => {
                    assert!(retry_after_ms > 0 && retry_after_ms <= 1000, "{retry_after_ms} {reason}");
                    busy += 1;
                }
                g => panic!("{g:?}"),
            }
        }
        (admitted, busy)
    });
    let secs = t0.elapsed().as_secs_f64();
    // Burst 10, +1 bystander +1 at_bound taken before; 20/s since.
    let bound = 10.0 + 20.0 * secs + 1.0;
    assert!((admitted as f64) <= bound, "{admitted} new ids admitted in {secs:.1} s, bound {bound:.0}");
    assert!(busy >= 300 - bound as u64, "{busy} refused");
    assert_eq!(metric(api, "new_agents_refused_total"), busy);
    // Known ids come back, and a proven id is never held by the rate.
    let mut c = Raw::connect(addr);
    c.send(&Message::Hello(hello(&at_bound, b"fleet", 0, 0)));
    accepted(&mut c);
    let mut p = Raw::connect(addr);
    p.send(&Message::Hello(hello("proven-1", b"p1", 0, 0)));
    accepted(&mut p);
    let (status, agents) = common::http(api, "GET", "/agents", Some("api-token-for-tests"), None);
    assert_eq!(status, 200);
    assert!(!agents.contains(&long_id) && !agents.contains(&long_host), "refused Hellos leave no registry row");
}

//! Hostile clients of the HTTP API and hostile settings, end to end against
//! the collector binary on loopback (issue 15, finding 4 and the API's quiet
//! items of finding 7): floods of half-sent requests neither keep their
//! sockets past the header timeout nor take the agents' descriptors, while a
//! well-behaved agent keeps its acks and its ack latency; big and slow
//! bodies and clients that stop reading are cut off; a short API token, a
//! connection budget above the open-file limit are refused at start;
//! `--help` prints no token; an API beyond loopback is warned about.
//!
//! Every wait is bounded; the collector is killed on drop.

mod common;

use common::probe::{within, Probe};
use common::raw::{hello, Got, Raw};
use common::{collector, http, sink_view, CollectorProc, TempDir};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "hostile-api-token-0123";
const BIN: &str = env!("CARGO_BIN_EXE_edge-collector");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The collector binary under `sh -c 'ulimit -n <nofile>'` (soft and hard),
/// `--data-dir <dir> --listen 127.0.0.1:0 <args>`, once its ready line came.
fn start_with_nofile(dir: &Path, nofile: u64, args: &[&str]) -> CollectorProc {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"ulimit -n "$0" && exec "$@""#, &nofile.to_string(), BIN, "--listen", "127.0.0.1:0", "--data-dir"]);
    cmd.arg(dir).args(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    let mut child = cmd.spawn().expect("start edge-collector under sh");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).expect("ready line");
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = |key: &str| line.split_whitespace().find_map(|p| p.strip_prefix(key)).and_then(|a| a.parse::<SocketAddr>().ok());
    let agents = addr("agents=").unwrap_or_else(|| panic!("no agent address in ready line {line:?}"));
    let api = addr("api=");
    CollectorProc { child, agents, api }
}

/// Raises this test process's open-file soft limit to its hard limit; false
/// (with a notice, or a failure under CI) when that stays below `need`.
fn fds_for_test(need: u64) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise the test's open-file limit");
    }
    if hard < need {
        assert!(!in_ci(), "the test needs {need} open files, the hard limit is {hard}");
        eprintln!("SKIPPED: the test needs {need} open files, the hard limit is {hard}");
        return false;
    }
    true
}

/// Runs the binary with `args` (and `env`) and waits at most 10 s for its
/// exit; the status and stderr. Panics if it is still running (it started).
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let dir = TempDir::new("hostile-exit");
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).args(args);
    cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("start edge-collector");
    wait_exit(child, Duration::from_secs(10))
}

fn wait_exit(mut child: Child, limit: Duration) -> (ExitStatus, String, String) {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status, out, err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("edge-collector did not exit within {limit:?}: it started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` connections to `api`, each holding a request head that never ends
/// (no blank line, no token), with the time each was connected.
fn half_sent(api: SocketAddr, n: usize) -> Vec<(TcpStream, Instant)> {
    (0..n)
        .map(|i| {
            let at = Instant::now();
            let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(10)).unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
            // The server may already have refused it (503 and close): a
            // failed write is that, seen below as a closed socket.
            let _ = s.write_all(b"GET /agents HTTP/1.1\r\nHost: edge\r\nUser-Agent: slowloris\r\n");
            s.set_nonblocking(true).unwrap();
            (s, at)
        })
        .collect()
}

/// Waits until every socket is closed by the server (EOF or reset), at
/// most `limit`; how long each lived from its connect (as seen by a poll
/// every 25 ms). Panics naming how many are still open.
fn wait_all_closed(socks: &mut [(TcpStream, Instant)], limit: Duration) -> Vec<Duration> {
    let mut closed: Vec<Option<Duration>> = vec![None; socks.len()];
    let end = Instant::now() + limit;
    let mut buf = [0u8; 1024];
    loop {
        for ((s, at), c) in socks.iter_mut().zip(closed.iter_mut()).filter(|(_, c)| c.is_none()) {
            loop {
                match s.read(&mut buf) {
                    Ok(0) => *c = Some(at.elapsed()),
                    Ok(_) => continue, // a 503 (refused): read on to the close
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => *c = Some(at.elapsed()),
                }
                break;
            }
        }
        let open = closed.iter().filter(|c| c.is_none()).count();
        if open == 0 {
            return closed.into_iter().map(Option::unwrap).collect();
        }
        assert!(Instant::now() < end, "{open} of {} half-sent requests still open after {limit:?}", socks.len());
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Rotated sink files (`records-NNNNNN.jsonl`) in `dir`.
fn rotated_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("records-")).count()
}

/// One metric's value from `GET /metrics`.
fn metric(api: SocketAddr, name: &str) -> u64 {
    let (status, body) = http(api, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    let prefix = format!("edge_collector_{name} ");
    body.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// Issue 15, finding 4: 400 and then 1,100 half-sent requests without a
/// token, against a collector whose open-file limit is 1,024. Each is
/// closed within the header timeout (or refused at once beyond the API's
/// connection limit); meanwhile new agents are accepted, the sink rotates,
/// and a well-behaved agent keeps every ack with its p99 ack latency within
/// 10x its rest value (plus slack for a loaded machine).
#[test]
fn half_sent_requests_neither_linger_nor_take_the_agents_descriptors() {
    if !fds_for_test(1_100 + 200) {
        return;
    }
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    let dir = TempDir::new("hostile-slowloris");
    let col = start_with_nofile(
        dir.path(),
        1024,
        &[
            "--api-token", TOKEN, "--api-listen", "127.0.0.1:0", "--api-max-connections", "64", "--api-header-timeout", "2",
            "--max-connections", "512", "--rotate-bytes", "4096", "--registry-flush", "0.2",
        ],
    );
    let api = col.api.unwrap();
    let probe = Probe::start(col.agents, "probe-1", b"", Duration::from_millis(5));
    let rest = probe.phase(150, Duration::from_secs(30));
    assert!(rest.len() >= 150, "the probe measured only {} round trips at rest", rest.len());

    let mut newcomers = 0;
    for flood in [400, 1_100] {
        let since = Instant::now();
        let mut socks = half_sent(api, flood);
        eprintln!("{flood} half-sent requests open in {:?}", since.elapsed());
        // New agents while the flood is open: each gets its Accept, and
        // an Ack for 10 records (about 22 KB of lines in all: the sink
        // rotates, opening files, during the flood).
        let files_before = rotated_files(dir.path());
        for i in 0..20 {
            let id = format!("new-{flood}-{i}");
            let (mut c, got, _busy) = Raw::connect_admitted(col.agents, &hello(&id, b"", 0, 0), Duration::from_secs(10), 5);
            assert!(matches!(got, Got::Accept { .. }), "{id}: {got:?}");
            c.batch("n", 0, 10);
            assert_eq!(c.recv_skipping(Duration::from_secs(10)), Got::Ack(9), "{id}");
            newcomers += 1;
        }
        assert!(rotated_files(dir.path()) > files_before, "{flood}: the sink rotated during the flood");
        // Every socket closed by the server: within the header timeout of
        // its connect, or at once when beyond the limit. The slack is for a
        // loaded machine.
        let lived = wait_all_closed(&mut socks, HEADER_TIMEOUT + Duration::from_secs(30));
        let longest = *lived.iter().max().unwrap();
        let at_once = lived.iter().filter(|l| **l < HEADER_TIMEOUT).count();
        eprintln!("{flood} half-sent requests: all closed, the longest after {longest:?}; {at_once} before the header timeout (refused)");
        assert!(longest <= HEADER_TIMEOUT + Duration::from_secs(5), "{flood}: a half-sent request lived {longest:?}");
        assert!(at_once > 0, "{flood}: beyond 64 at once, refused at once");
        let attack = probe.phase(0, Duration::ZERO);
        assert!(attack.len() >= 10, "{flood}: the probe got only {} acks during the flood", attack.len());
        within(&rest, &attack, 10, Duration::from_millis(500)).unwrap_or_else(|e| panic!("{flood} half-sent requests: {e}"));
    }

    // The API still answers its operator, and says what it refused.
    assert!(metric(api, "api_connections_total") >= 1_500);
    assert!(metric(api, "api_connections_refused_total") > 0, "beyond 64 connections at once, refusals");
    let acked = probe.acked();
    let report = probe.stop();
    assert_eq!((report.reconnects, report.troubles.len()), (0, 0), "the probe's connection was never cut: {:?}", report.troubles);
    assert!(report.acked >= acked && acked > 150);

    // Everything acked is in the sink exactly once, across the rotations.
    let view = sink_view(dir.path());
    let seqs = &view.seqs["probe-1"];
    assert!(seqs.len() as u64 >= report.acked && seqs.iter().take(report.acked as usize).copied().eq(0..report.acked), "every acked record stored once");
    assert_eq!(newcomers, 40);
    assert_eq!(view.seqs.keys().filter(|a| a.starts_with("new-")).count(), 40, "every newcomer's records stored");
    drop(col);
}

/// Sends `head` (and `body`) on a fresh connection and reads the answer
/// until the server closes or `limit`; the status line's code (0 if none)
/// and whether the server closed.
fn exchange(api: SocketAddr, head: &str, body: &[u8], limit: Duration) -> (u16, bool) {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break false,
            Err(_) => break true,
        }
    };
    let text = String::from_utf8_lossy(&got);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, closed)
}

/// Bodies above `--api-max-body` get 413 (declared or chunked), without
/// the token a 401 before any body is read, a body that stalls a 408 within
/// `--api-request-timeout`, and a client that stops reading its answers is
/// cut off instead of holding its connection for ever.
#[test]
fn big_bodies_slow_bodies_and_stalled_readers_are_cut_off() {
    let dir = TempDir::new("hostile-bodies");
    let col = collector().start(
        dir.path(),
        &["--api-token", TOKEN, "--api-listen", "127.0.0.1:0", "--api-max-body", "65536", "--api-request-timeout", "2", "--api-header-timeout", "2"],
    );
    let api = col.api.unwrap();
    let t = Duration::from_secs(10);
    let put = |len: &str, auth: bool| {
        let auth = if auth { format!("Authorization: Bearer {TOKEN}\r\n") } else { String::new() };
        format!("PUT /configs/big HTTP/1.1\r\nHost: edge\r\n{auth}Content-Type: application/json\r\n{len}\r\n")
    };

    // Declared above the limit: 413 at once, the body never read.
    assert_eq!(exchange(api, &put("Content-Length: 10000000\r\n", true), b"", t), (413, true));
    // Without the token: 401, the body never read.
    assert_eq!(exchange(api, &put("Content-Length: 10000000\r\n", false), b"", t).0, 401);
    // Within the limit: accepted (the limit is not tighter than it says).
    let fits = format!(r#"{{"version": "v1", "payload": "{}"}}"#, "x".repeat(60_000));
    assert_eq!(exchange(api, &put(&format!("Content-Length: {}\r\n", fits.len()), true), fits.as_bytes(), t).0, 200);
    // Chunked, no length declared: cut at the limit, 413.
    let big = format!(r#"{{"version": "v1", "payload": "{}"}}"#, "x".repeat(70_000));
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    assert_eq!(exchange(api, &put("Transfer-Encoding: chunked\r\n", true), chunked.as_bytes(), t).0, 413);

    // A body that stalls: 408 within the request timeout, then closed.
    let started = Instant::now();
    assert_eq!(exchange(api, &put("Content-Length: 100\r\n", true), br#"{"version""#, t), (408, true));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < t, "408 after {took:?}");

    // A client that pipelines requests and never reads the answers: once
    // its answers fill the socket buffers, the stalled write ends the
    // connection within the request timeout.
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5)).unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        std::thread::spawn(move || {
            let req = b"GET /metrics HTTP/1.1\r\nHost: edge\r\n\r\n";
            let mut sent = 0u64;
            while w.write_all(req).is_ok() {
                sent += 1;
            }
            sent
        })
    };
    let sent = writer.join().unwrap();
    assert!(sent > 1000, "the server read {sent} requests before its answers backed up");
    // Now read: the buffered answers, then the close. A connection still
    // open leaves the read waiting until the timeout.
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut answers = 0u64;
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answers += buf[..n].windows(12).filter(|w| w == b"HTTP/1.1 401").count() as u64,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break false,
            Err(_) => break true,
        }
    };
    eprintln!("stalled reader: {sent} requests written, {answers} answers read before the close");
    assert!(closed, "a client that stopped reading still holds its connection");
    assert!(answers < sent, "the connection was cut before every answer was written");

    // The API is still there for a client that behaves.
    assert_eq!(http(api, "GET", "/agents", Some(TOKEN), None).0, 200);
}

/// The keep-alive idle limit is the header timeout: a connection that got
/// its answer and stays silent is closed then, not before; a request head
/// above 64 KiB gets 431.
#[test]
fn idle_keep_alive_connections_and_huge_heads_are_closed() {
    let dir = TempDir::new("hostile-idle");
    let col = collector().start(dir.path(), &["--api-token", TOKEN, "--api-listen", "127.0.0.1:0", "--api-header-timeout", "1"]);
    let api = col.api.unwrap();
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5)).unwrap();
    write!(s, "GET /agents HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(br#"{"agents":[]}"#) {
        let n = s.read(&mut buf).expect("the answer");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    let answered = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    let idle = answered.elapsed();
    assert_eq!(n, 0, "nothing more is sent; the connection is closed");
    assert!(idle >= Duration::from_millis(900) && idle < Duration::from_secs(8), "an idle keep-alive connection lived {idle:?} (limit 1 s)");

    let huge = format!("GET /agents HTTP/1.1\r\nHost: edge\r\nX-Filler: {}\r\n\r\n", "y".repeat(70_000));
    assert_eq!(exchange(api, &huge, b"", Duration::from_secs(10)), (431, true));
}

/// Finding 7: a short API token is refused at start with its own error,
/// from the flag, the environment or the config file, and never echoed.
#[test]
fn short_api_token_refused_at_start() {
    const SHORT: &str = "Q7-fifteen-byte";
    let dir = TempDir::new("hostile-token");
    let file = dir.path().join("config.json");
    std::fs::write(&file, format!(r#"{{"api_token": "{SHORT}"}}"#)).unwrap();
    let file = file.to_str().unwrap();
    for (args, env) in [
        (vec!["--api-token", SHORT], vec![]),
        (vec![], vec![("EDGE_COLLECTOR_API_TOKEN", SHORT)]),
        (vec!["--config", file], vec![]),
    ] {
        let (status, _, err) = run_to_exit(&args, &env);
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains("--api-token must be at least 16 bytes, got 15"), "{err}");
        assert!(!err.contains(SHORT), "the refusal never prints the token: {err}");
    }
    // 16 bytes start (and are not printed either).
    let ok = "Q7-sixteen-bytes";
    let mut col = collector().start(dir.path(), &["--api-token", ok, "--api-listen", "127.0.0.1:0"]);
    assert!(col.api.is_some());
    assert_eq!(col.child.try_wait().unwrap(), None);
}

/// Finding 7: `--help` names the token variables but never their values.
#[test]
fn help_prints_no_token_values() {
    let api = "api-secret-value-9f8e7d6c";
    let agent = "agent-secret-value-1a2b3c4d";
    let (status, out, err) = run_to_exit(&["--help"], &[("EDGE_COLLECTOR_API_TOKEN", api), ("EDGE_COLLECTOR_AGENT_TOKEN", agent)]);
    assert!(status.success(), "{err}");
    assert!(out.contains("EDGE_COLLECTOR_API_TOKEN") && out.contains("EDGE_COLLECTOR_AGENT_TOKEN"), "{out}");
    assert!(!out.contains(api) && !out.contains(agent) && !err.contains(api) && !err.contains(agent), "{out}{err}");
}

/// Finding 7: an API listening beyond loopback is warned about at start;
/// one on loopback is not.
#[test]
fn api_beyond_loopback_is_warned_about() {
    let stderr_of = |listen: &str| {
        let dir = TempDir::new("hostile-warn");
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--api-token", TOKEN, "--api-listen", listen, "--log", "warn", "--data-dir"]).arg(dir.path());
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start edge-collector");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert!(ready.starts_with("listening"), "{ready:?}");
        // The warning comes before the ready line; stop it and read.
        child.kill().unwrap();
        child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        err
    };
    let wide = stderr_of("0.0.0.0:0");
    assert!(wide.contains("WARN") && wide.contains("the HTTP API listens beyond loopback"), "{wide}");
    assert!(!wide.contains(TOKEN), "{wide}");
    let local = stderr_of("127.0.0.1:0");
    assert!(!local.contains("beyond loopback"), "{local}");
}

/// The descriptor budget: agent connections + API connections + 256 must
/// fit the open-file limit, or the collector refuses to start.
#[test]
fn descriptor_budget_above_the_open_file_limit_refused_at_start() {
    let (status, _, err) = run_to_exit(&["--max-connections", "4000000000"], &[]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("RLIMIT_NOFILE") && err.contains("--max-connections 4000000000"), "{err}");

    // Under a limit of 1,024 (soft and hard).
    let at_1024 = |args: &[&str]| {
        let dir = TempDir::new("hostile-budget");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"ulimit -n 1024 && exec "$@""#, "sh", BIN, "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).args(args);
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        // Either it exits (refused) or prints its ready line (started).
        let _ = out.read_line(&mut ready);
        let started = ready.starts_with("listening");
        let _ = child.kill();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (started, status, err)
    };
    let (started, _, err) = at_1024(&["--max-connections", "700", "--api-token", TOKEN, "--api-listen", "127.0.0.1:0", "--api-max-connections", "64"]);
    assert!(started, "700 + 64 + 256 = 1,020 fits 1,024: {err}");
    let (started, status, err) = at_1024(&["--max-connections", "800", "--api-token", TOKEN, "--api-listen", "127.0.0.1:0", "--api-max-connections", "64"]);
    assert!(!started && status.code() == Some(2), "800 + 64 + 256 = 1,120 does not fit 1,024: {err}");
    assert!(err.contains("the open-file limit (RLIMIT_NOFILE) is 1024, below the 1120 descriptors"), "{err}");
    let (started, _, err) = at_1024(&["--max-connections", "768"]);
    assert!(started, "768 + 256 = 1,024 fits, without an API: {err}");
}

//! Mutual TLS on the agent port, against the collector binary (issue 19,
//! item 5): agents with their certificates deliver exactly once, answer a
//! task and reconnect; every bad credential is refused with its own code and
//! counter, the collector unharmed and a well-behaved agent's acks and
//! latency checked meanwhile; certificates reload on SIGHUP while sessions
//! stay.

mod common;
#[path = "common/tls.rs"]
mod tls_util;

use common::agent::{run_agent, AgentSpec};
use common::raw::{hello, Got, Raw};
use common::probe::under_attack;
use common::{collector, sink_view, wait_for, CollectorProc, TempDir};
use std::net::SocketAddr;
use std::time::Duration;
use tls_util::{agent_config, client_config, collector_args, dev_pki, handshake, Bridge};

const T: Duration = Duration::from_secs(5);
const API_TOKEN: &str = "api-token-for-tests";

fn metric(api: SocketAddr, name: &str) -> u64 {
    let (status, text) = common::http(api, "GET", "/metrics", Some(API_TOKEN), None);
    assert_eq!(status, 200);
    let key = format!("edge_collector_{name} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or_else(|| panic!("no {name} in\n{text}")).parse().unwrap()
}

fn start(dir: &TempDir, pki: Option<&TempDir>, extra: &[&str]) -> CollectorProc {
    let mut args: Vec<String> = ["--api-token", API_TOKEN, "--api-listen", "127.0.0.1:0", "--admission-rate", "0"].iter().map(|s| s.to_string()).collect();
    if let Some(p) = pki {
        args.extend(collector_args(p.path()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    collector().start(dir.path(), &refs)
}

#[test]
fn agents_over_mtls_deliver_exactly_once_and_reconnect() {
    let pki = TempDir::new("tls-pki");
    if !dev_pki(pki.path(), &["agent-1", "agent-2"]) {
        return;
    }
    let dir = TempDir::new("tls-deliver");
    let c = start(&dir, Some(&pki), &[]);
    let api = c.api.unwrap();
    let b1 = Bridge::start(c.agents, agent_config(pki.path(), "agent-1"), "localhost");
    let b2 = Bridge::start(c.agents, agent_config(pki.path(), "agent-2"), "127.0.0.1");
    let (a1, a2) = (b1.addr, b2.addr);
    let n = 400;
    let t1 = std::thread::spawn(move || run_agent(AgentSpec { every: Duration::from_millis(5), ..AgentSpec::new("agent-1", n) }, a1));
    let spec2 = AgentSpec { wait_tasks: 1, plugin: true, ..AgentSpec::new("agent-2", n) };
    let t2 = std::thread::spawn(move || run_agent(spec2, a2));
    // A task to agent-2 over its mTLS session, and its result back.
    let online = wait_for(T, || {
        let (s, b) = common::http(api, "GET", "/agents/agent-2", Some(API_TOKEN), None);
        (s == 200 && common::json(&b)["status"] == "online").then_some(())
    });
    assert!(online.is_some(), "agent-2 online");
    let (s, b) = common::http(api, "POST", "/agents/agent-2/tasks", Some(API_TOKEN), Some(r#"{"object_name": "scanner", "data_type": 6001, "payload": "/var/log"}"#));
    assert_eq!(s, 201, "{b}");
    let token = common::json(&b)["token"].as_str().unwrap().to_string();
    // Cut agent-1's connection twice while it sends: it must reconnect
    // over TLS and resume without loss or duplicates.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(600));
        b1.cut_all();
    }
    let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
    assert!(r1.drained && r2.drained, "every record acked: {r1:?} {r2:?}");
    assert!(r1.connects >= 2, "agent-1 reconnected ({} connects)", r1.connects);
    assert_eq!(r2.tasks, vec![(token.clone(), "/var/log".to_string())], "the task arrived once");
    let done = wait_for(T, || {
        let (_, t) = common::http(api, "GET", &format!("/tasks/{token}"), Some(API_TOKEN), None);
        (common::json(&t)["state"] == "done").then_some(())
    });
    assert!(done.is_some(), "the task's result came back over mTLS");
    let view = sink_view(dir.path());
    for id in ["agent-1", "agent-2"] {
        assert_eq!(view.texts[id].len(), n as usize, "{id}: every record exactly once");
    }
    assert!(metric(api, "tls_handshakes_total") >= 3);
    assert_eq!(metric(api, "rejects_cert_mismatch_total"), 0);
    assert!(b1.errors.lock().unwrap().is_empty() && b2.errors.lock().unwrap().is_empty());
}

/// Waits until `name` reaches `want` (the collector counts after the
/// client saw the end).
fn counted(api: SocketAddr, name: &str, want: u64) {
    let got = wait_for(T, || (metric(api, name) >= want).then_some(()));
    assert!(got.is_some(), "{name} stayed at {} (< {want})", metric(api, name));
}

#[test]
fn bad_credentials_are_refused_each_with_its_code() {
    let pki = TempDir::new("tls-pki-bad");
    if !dev_pki(pki.path(), &["agent-1", "agent-2", "steady"]) {
        return;
    }
    let p = pki.path();
    let dir = TempDir::new("tls-bad");
    let c = start(&dir, Some(&pki), &["--handshake-timeout", "1"]);
    let api = c.api.unwrap();
    let steady = Bridge::start(c.agents, agent_config(p, "steady"), "localhost");
    under_attack(steady.addr, "steady", b"", Duration::from_millis(600), || {
        // A certificate from another CA, and an expired one: the
        // collector's alert, each counted under its cause.
        for (name, alert, counter) in [("rogue", "UnknownCA", "tls_unknown_ca_total"), ("expired", "CertificateExpired", "tls_expired_client_cert_total")] {
            let e = handshake(c.agents, agent_config(p, name), "localhost", T).expect_err(name);
            assert!(e.contains(alert), "{name}: {e}");
            counted(api, counter, 1);
        }
        assert_eq!(metric(api, "tls_bad_client_cert_total"), 0);
        // No client certificate at all.
        let e = handshake(c.agents, client_config(&p.join("ca.pem"), None), "localhost", T).expect_err("no cert");
        assert!(e.contains("CertificateRequired") || e.to_lowercase().contains("certificate"), "{e}");
        counted(api, "tls_no_client_cert_total", 1);
        // The collector's certificate is for 127.0.0.1 and localhost: a
        // client expecting another name refuses it, and the collector
        // counts the client's alert.
        let e = handshake(c.agents, agent_config(p, "agent-1"), "collector.example", T).expect_err("wrong name");
        assert!(e.contains("NotValidForName") || e.contains("not valid for"), "{e}");
        counted(api, "tls_peer_alerts_total", 1);
        // A client trusting another CA refuses the collector too.
        let e = handshake(c.agents, client_config(&p.join("rogue-ca.pem"), Some((&p.join("agent-1.pem"), &p.join("agent-1.key")))), "localhost", T);
        assert!(e.is_err_and(|e| e.contains("UnknownIssuer")));
        counted(api, "tls_peer_alerts_total", 2);
        // A good certificate, another agent's id in the Hello: Reject 4.
        let mismatch = Bridge::start(c.agents, agent_config(p, "agent-1"), "localhost");
        let mut r = Raw::connect(mismatch.addr);
        r.send(&agent_core::message::Message::Hello(hello("agent-2", b"", 0, 0)));
        assert!(matches!(r.recv(T), Got::Reject { code: 4, .. }), "id not matching the certificate");
        counted(api, "rejects_cert_mismatch_total", 1);
        // Plaintext on the TLS port.
        let mut r = Raw::connect(c.agents);
        r.send(&agent_core::message::Message::Hello(hello("agent-1", b"", 0, 0)));
        assert_eq!(r.recv(T), Got::Eof, "plaintext gets no protocol answer");
        counted(api, "tls_not_tls_total", 1);
        // A stalled handshake: connected, silent; closed at the handshake timeout.
        let mut r = Raw::connect(c.agents);
        assert_eq!(r.recv(T), Got::Eof);
        counted(api, "tls_handshake_timeouts_total", 1);
    });
    // The collector is unharmed: an agent with its own certificate delivers.
    let good = Bridge::start(c.agents, agent_config(p, "agent-2"), "localhost");
    let r = run_agent(AgentSpec::new("agent-2", 50), good.addr);
    assert!(r.drained);
    assert_eq!(sink_view(dir.path()).texts["agent-2"].len(), 50);
    assert!(!sink_view(dir.path()).seqs.contains_key("agent-1"), "nothing stored for the refused ones");
}

#[test]
fn tls_against_the_plain_port_is_closed_and_counted() {
    let pki = TempDir::new("tls-pki-plain");
    if !dev_pki(pki.path(), &["agent-1"]) {
        return;
    }
    let dir = TempDir::new("tls-plain");
    let c = start(&dir, None, &[]);
    let api = c.api.unwrap();
    let e = handshake(c.agents, agent_config(pki.path(), "agent-1"), "localhost", T).expect_err("no TLS here");
    eprintln!("TLS against the plain port: {e}");
    counted(api, "tls_on_plain_port_total", 1);
    // Plain agents are unaffected.
    let (mut r, _, _) = Raw::connect_admitted(c.agents, &hello("plain-1", b"", 0, 0), T, 5);
    r.batch("p-", 0, 3);
    assert_eq!(r.recv_skipping(T), Got::Ack(2));
}

#[test]
fn certificates_reload_on_sighup_while_sessions_stay() {
    let (old, new) = (TempDir::new("tls-pki-old"), TempDir::new("tls-pki-new"));
    if !dev_pki(old.path(), &["agent-1", "agent-2"]) || !dev_pki(new.path(), &[]) {
        return;
    }
    // The collector reads its files from `live`; they start as `old`'s.
    let live = TempDir::new("tls-pki-live");
    for f in ["collector.pem", "collector.key", "ca.pem"] {
        std::fs::copy(old.path().join(f), live.path().join(f)).unwrap();
    }
    let dir = TempDir::new("tls-reload");
    let c = start(&dir, Some(&live), &[]);
    let api = c.api.unwrap();
    let b1 = Bridge::start(c.agents, agent_config(old.path(), "agent-1"), "localhost");
    let (mut r, _, _) = Raw::connect_admitted(b1.addr, &hello("agent-1", b"", 0, 0), T, 5);
    r.batch("before-", 0, 5);
    assert_eq!(r.recv_skipping(T), Got::Ack(4));
    // A new server certificate from another CA; the client CA stays.
    for f in ["collector.pem", "collector.key"] {
        std::fs::copy(new.path().join(f), live.path().join(f)).unwrap();
    }
    let pid = c.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    counted(api, "tls_reloads_total", 1);
    // The session from before the reload goes on.
    r.batch("after-", 5, 5);
    assert_eq!(r.recv_skipping(T), Got::Ack(9), "the session survived the reload");
    // New handshakes get the new certificate: the old trust fails, the new works.
    let agent2 = |ca: &std::path::Path| {
        client_config(&ca.join("ca.pem"), Some((&old.path().join("agent-2.pem"), &old.path().join("agent-2.key"))))
    };
    assert!(handshake(c.agents, agent2(old.path()), "localhost", T).is_err(), "old CA no longer matches the collector");
    handshake(c.agents, agent2(new.path()), "localhost", T).expect("new certificate served");
    // A broken file is refused and the current certificates stay.
    std::fs::write(live.path().join("collector.key"), "not a key").unwrap();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    counted(api, "tls_reload_failures_total", 1);
    handshake(c.agents, agent2(new.path()), "localhost", T).expect("still served after a failed reload");
    assert_eq!(sink_view(dir.path()).seqs["agent-1"], (0..10).collect::<Vec<u64>>());
}

#[test]
fn the_api_serves_https_only_when_configured() {
    let pki = TempDir::new("tls-pki-api");
    if !dev_pki(pki.path(), &[]) {
        return;
    }
    let p = pki.path();
    let dir = TempDir::new("tls-api");
    let (cert, key) = (p.join("collector.pem"), p.join("collector.key"));
    let c = start(&dir, None, &["--api-tls-cert", cert.to_str().unwrap(), "--api-tls-key", key.to_str().unwrap()]);
    let api = c.api.unwrap();
    let (status, body) = tls_util::https_get(api, client_config(&p.join("ca.pem"), None), "/metrics", API_TOKEN).expect("HTTPS");
    assert_eq!(status, 200);
    assert!(body.contains("edge_collector_tls_reloads_total 0"), "{body}");
    let (status, _) = tls_util::https_get(api, client_config(&p.join("ca.pem"), None), "/metrics", "wrong-token-wrong-token").unwrap();
    assert_eq!(status, 401, "the bearer token still applies");
    // Plain HTTP gets no answer.
    let mut s = std::net::TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "plain HTTP is not served");
    // A client that does not trust the certificate is refused by its own check.
    assert!(tls_util::https_get(api, client_config(&p.join("rogue-ca.pem"), None), "/metrics", API_TOKEN).is_err());
}

#[test]
fn stalled_tls_handshakes_cannot_lock_agents_out() {
    let pki = TempDir::new("tls-pki-stall");
    if !dev_pki(pki.path(), &["agent-1"]) {
        return;
    }
    let dir = TempDir::new("tls-stall");
    // Long handshake timeout: only the --max-handshakes eviction can help.
    let c = start(&dir, Some(&pki), &["--max-handshakes", "10", "--handshake-timeout", "60"]);
    let api = c.api.unwrap();
    let silent: Vec<std::net::TcpStream> = (0..40).map(|_| std::net::TcpStream::connect(c.agents).unwrap()).collect();
    counted(api, "handshakes_evicted_total", 30);
    let b = Bridge::start(c.agents, agent_config(pki.path(), "agent-1"), "localhost");
    let r = run_agent(AgentSpec { deadline: Duration::from_secs(20), ..AgentSpec::new("agent-1", 30) }, b.addr);
    assert!(r.drained, "the agent got in past 40 stalled TLS handshakes");
    assert_eq!(sink_view(dir.path()).texts["agent-1"].len(), 30);
    drop(silent);
}

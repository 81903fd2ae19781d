//! The host layer's TLS client against the real collector over mutual TLS
//! (the dev PKI of `scripts/dev-pki.sh`): records exactly once across a
//! `kill -9` and a restart; a collector certificate from another CA, and a
//! client certificate for another agent id, refused and counted as TLS or
//! auth failures, never as network failures; unusable files refused at init;
//! a TLS session whose peer stops reading waits instead of spinning.


mod blocked;

use agent_core::{DisconnectReason, Duration};
use edge_testkit::collector::*;
use edge_agent_linux::{Host, HostConfig, HostError, HostEvent, TlsConfig, TlsConfigError, TlsFailure};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Seen {
    connected: u32,
    rejected: u32,
}

fn config(agent_id: &str, port: u16, ca: &Path, cert: &Path, key: &Path) -> HostConfig {
    let mut cfg = HostConfig::new(agent_id, [format!("127.0.0.1:{port}")]);
    cfg.agent.backoff.base = Duration::from_millis(50);
    cfg.agent.backoff.cap = Duration::from_millis(400);
    cfg.agent.heartbeat_interval = Duration::from_secs(1);
    cfg.tls = Some(TlsConfig {
        ca_file: ca.into(),
        cert_file: Some(cert.into()),
        key_file: Some(key.into()),
        server_name: None,
    });
    cfg
}

fn start(cfg: HostConfig) -> (Host, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let host = Host::new(cfg, move |_: &Host, ev: &HostEvent<'_>| {
        let mut s = s2.lock().unwrap();
        match *ev {
            HostEvent::Connected { .. } => s.connected += 1,
            HostEvent::Disconnected { reason: DisconnectReason::Rejected } => s.rejected += 1,
            _ => {}
        }
    })
    .unwrap();
    host.start().unwrap();
    (host, seen)
}

#[test]
fn records_over_mtls_exactly_once_across_a_kill9_restart() {
    let pki = TempDir::new("tls-pki");
    if !dev_pki("records_over_mtls_exactly_once_across_a_kill9_restart", pki.path(), &["agent-1"]) {
        return;
    }
    let p = pki.path();
    let dir = TempDir::new("tls-e2e");
    let args = tls_args(p);
    let mut col = host::start_with(dir.path(), "127.0.0.1:0", &args);
    let cfg = config("agent-1", col.agents.port(), &p.join("ca.pem"), &p.join("agent-1.pem"), &p.join("agent-1.key"));
    let (host, seen) = start(cfg);

    const N: usize = 2000;
    let pusher = {
        let host = host.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                host.push(2001, format!("r{i}").as_bytes()).unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        })
    };
    wait_for(std::time::Duration::from_secs(20), || (seen.lock().unwrap().connected > 0).then_some(())).expect("connected over mTLS");
    std::thread::sleep(std::time::Duration::from_millis(150));
    let agents = col.agents;
    col.kill9();
    std::thread::sleep(std::time::Duration::from_millis(200));
    col = host::restart_with(dir.path(), agents, &args);
    wait_for(std::time::Duration::from_secs(20), || (seen.lock().unwrap().connected >= 2).then_some(())).expect("reconnected over mTLS");
    pusher.join().unwrap();
    let report = host.stop(Duration::from_secs(30)).unwrap();
    assert!(report.drained, "everything acked before Close: {report:?}");
    drop(col);

    let got = texts(dir.path(), "agent-1", 2001);
    for i in 0..N {
        assert_eq!(got.get(&format!("r{i}")).copied(), Some(1), "r{i}: exactly once");
    }
    assert_eq!(got.len(), N);
    let ls = host.loop_stats();
    assert_eq!(ls.tls_failures, 0, "{ls:?}");
    assert!(ls.network_failures >= 1, "the kill -9 is a network failure: {ls:?}");
}

#[test]
fn a_wrong_ca_and_another_agents_certificate_are_tls_and_auth_failures() {
    let pki = TempDir::new("tls-pki-bad");
    if !dev_pki("a_wrong_ca_and_another_agents_certificate_are_tls_and_auth_failures", pki.path(), &["agent-1", "agent-2"]) {
        return;
    }
    let p = pki.path();
    let dir = TempDir::new("tls-bad");
    let col = host::start_with(dir.path(), "127.0.0.1:0", &tls_args(p));
    let port = col.agents.port();

    // Trusting another CA: this client refuses the collector's certificate.
    let cfg = config("agent-1", port, &p.join("rogue-ca.pem"), &p.join("agent-1.pem"), &p.join("agent-1.key"));
    let (host, seen) = start(cfg);
    wait_for(std::time::Duration::from_secs(20), || (host.loop_stats().tls_failures >= 2).then_some(())).expect("TLS failures counted");
    let _ = host.stop(Duration::from_millis(100));
    let ls = host.loop_stats();
    assert_eq!(ls.last_tls_failure, Some(TlsFailure::ServerCertificate), "{ls:?}");
    assert_eq!(ls.network_failures, 0, "a wrong CA is not a network failure: {ls:?}");
    assert_eq!(seen.lock().unwrap().connected, 0);

    // A certificate from another CA: the collector's alert.
    let cfg = config("agent-1", port, &p.join("ca.pem"), &p.join("rogue.pem"), &p.join("rogue.key"));
    let (host, seen) = start(cfg);
    wait_for(std::time::Duration::from_secs(20), || (host.loop_stats().tls_failures >= 2).then_some(())).expect("TLS failures counted");
    let _ = host.stop(Duration::from_millis(100));
    let ls = host.loop_stats();
    assert_eq!(ls.last_tls_failure, Some(TlsFailure::PeerAlert), "{ls:?}");
    assert_eq!(ls.network_failures, 0, "a refused certificate is not a network failure: {ls:?}");
    assert_eq!(seen.lock().unwrap().connected, 0);

    // agent-2's certificate, agent-1 in the Hello: TLS is fine, the collector
    // rejects the Hello (auth), and nothing counts as a network failure.
    let cfg = config("agent-1", port, &p.join("ca.pem"), &p.join("agent-2.pem"), &p.join("agent-2.key"));
    let (host, seen) = start(cfg);
    wait_for(std::time::Duration::from_secs(20), || (seen.lock().unwrap().rejected >= 2).then_some(())).expect("rejected");
    let _ = host.stop(Duration::from_millis(100));
    let ls = host.loop_stats();
    assert_eq!(ls.tls_failures, 0, "{ls:?}");
    assert_eq!(seen.lock().unwrap().connected, 0, "never accepted");
    let (_, m) = host::http(&col, "GET", "/metrics", None);
    let mismatch: u64 = m.lines().find_map(|l| l.strip_prefix("edge_collector_rejects_cert_mismatch_total ")).unwrap().parse().unwrap();
    assert!(mismatch >= 2, "the collector counted the mismatch: {mismatch}");
    assert!(texts(dir.path(), "agent-1", 2001).is_empty());
}

#[test]
fn unusable_tls_files_are_refused_at_init() {
    let pki = TempDir::new("tls-pki-init");
    if !dev_pki("unusable_tls_files_are_refused_at_init", pki.path(), &["agent-1"]) {
        return;
    }
    let p = pki.path();
    let refused = |cfg: HostConfig| Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).err();
    let ok = config("agent-1", 1, &p.join("ca.pem"), &p.join("agent-1.pem"), &p.join("agent-1.key"));
    let mut c = ok.clone();
    c.tls.as_mut().unwrap().ca_file = p.join("missing.pem");
    assert_eq!(refused(c), Some(HostError::Tls(TlsConfigError::CaFile)));
    let mut c = ok.clone();
    c.tls.as_mut().unwrap().ca_file = p.join("agent-1.key");
    assert_eq!(refused(c), Some(HostError::Tls(TlsConfigError::CaFile)), "a key is not a CA");
    let mut c = ok.clone();
    c.tls.as_mut().unwrap().key_file = None;
    assert_eq!(refused(c), Some(HostError::Tls(TlsConfigError::CertWithoutKey)));
    let mut c = ok.clone();
    c.tls.as_mut().unwrap().key_file = Some(p.join("ca.key"));
    assert_eq!(refused(c), Some(HostError::Tls(TlsConfigError::KeyMismatch)));
    let mut c = ok.clone();
    c.tls.as_mut().unwrap().server_name = Some("bad name!".into());
    assert_eq!(refused(c), Some(HostError::Tls(TlsConfigError::ServerName)));
    assert!(refused(ok).is_none());
}

/// A TLS peer (rustls, the dev PKI's collector certificate) that completes
/// the handshake, accepts the Hello and then never reads: the host's
/// rustls buffer and socket fill up, and the loop must wait, not spin.
#[test]
#[allow(deprecated)]
fn a_blocked_tls_session_does_not_spin() {
    use agent_core::message::{Accept, Message};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let pki = TempDir::new("tls-pki-blocked");
    if !dev_pki("a_blocked_tls_session_does_not_spin", pki.path(), &["agent-1"]) {
        return;
    }
    let p = pki.path().to_path_buf();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p.join("collector.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(p.join("collector.key")).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _ = nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::RcvBuf, &4096);
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        let mut hello = [0u8; 4096];
        let _ = tls.read(&mut hello).unwrap();
        let mut wire = [0u8; 64];
        let n = Message::Accept(Accept { next_seq: 0, max_frame: 65536, retry_window_ms: 0 }).encode(0, &mut wire).unwrap();
        tls.write_all(&wire[..n]).unwrap();
        tls.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(8));
    });
    let mut cfg = HostConfig::new("agent-1", [addr.to_string()]);
    cfg.agent.backoff.base = Duration::from_millis(50);
    cfg.agent.window_bytes = 4 << 20;
    cfg.ring_bytes = 8 << 20;
    cfg.socket_send_buffer = Some(4096);
    cfg.host_stats = false;
    cfg.tls = Some(TlsConfig { ca_file: p.join("ca.pem"), ..TlsConfig::default() });
    let host = Host::new(cfg, |_: &Host, _: &HostEvent<'_>| {}).unwrap();
    host.start().unwrap();
    let l1 = blocked::assert_a_blocked_host_waits(&host, "TLS");
    assert_eq!((l1.tls_failures, l1.network_failures), (0, 0));
    let report = host.stop(Duration::from_millis(200)).unwrap();
    assert!(!report.drained && report.unacked > 0, "what stayed unacked is reported: {report:?}");
    peer.join().unwrap();
}

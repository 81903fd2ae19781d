//! TLS for the end-to-end tests: the development PKI (scripts/dev-pki.sh),
//! rustls client configs, and a bridge that lets the plain-TCP test clients
//! (the real agent's driver, the raw client, the steady agent) speak TLS:
//! it accepts plain connections on loopback and carries each over its own
//! TLS connection (with the bridge's client certificate) to the collector.

#![allow(dead_code)]

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs scripts/dev-pki.sh into `dir` for `agents`. Under CI a missing
/// openssl fails the test; elsewhere the caller skips (returns false).
pub fn dev_pki(dir: &Path, agents: &[&str]) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-pki.sh");
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "openssl is missing (apt-get install openssl)");
        eprintln!("NOTICE: openssl not found; TLS test skipped");
        return false;
    }
    let out = std::process::Command::new("sh").arg(script).arg(dir).args(agents).output().expect("run dev-pki.sh");
    assert!(out.status.success(), "dev-pki.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    true
}

pub fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The collector's TLS flags for the PKI in `pki` (mutual TLS).
pub fn collector_args(pki: &Path) -> Vec<String> {
    let f = |n: &str| pki.join(n).to_str().unwrap().to_string();
    vec!["--tls-cert".into(), f("collector.pem"), "--tls-key".into(), f("collector.key"), "--tls-client-ca".into(), f("ca.pem")]
}

/// A client trusting `ca` (PEM file), presenting `cert`/`key` if given.
#[allow(deprecated)]
pub fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
    };
    Arc::new(cfg)
}

/// The agent's client config from the dev PKI: CA `ca.pem`, certificate
/// `<name>.pem`/`<name>.key`.
pub fn agent_config(pki: &Path, name: &str) -> Arc<ClientConfig> {
    client_config(&pki.join("ca.pem"), Some((&pki.join(format!("{name}.pem")), &pki.join(format!("{name}.key")))))
}

/// One TLS handshake (and nothing else) against `addr`: `Ok` once
/// established, else the client's error text. Bounded by `limit`.
pub fn handshake(addr: SocketAddr, cfg: Arc<ClientConfig>, name: &str, limit: Duration) -> Result<(), String> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(limit)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    // In TLS 1.3 the server judges the client's certificate after the
    // client is done: read once, so its refusal (an alert) arrives here.
    let mut buf = [0u8; 64];
    match std::io::Read::read(&mut rustls::Stream::new(&mut conn, &mut tcp), &mut buf) {
        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut => Err(e.to_string()),
        Ok(0) => Err("closed".into()),
        _ => Ok(()),
    }
}

/// A plain-to-TLS bridge on loopback, with one client config.
pub struct Bridge {
    pub addr: SocketAddr,
    /// Errors of TLS handshakes to the collector, in order.
    pub errors: Arc<Mutex<Vec<String>>>,
    cut: tokio::sync::broadcast::Sender<()>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    /// Bridges to `upstream`, verifying its certificate for `name`.
    pub fn start(upstream: SocketAddr, cfg: Arc<ClientConfig>, name: &str) -> Bridge {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let name = ServerName::try_from(name.to_string()).unwrap();
        let (errs, cut_tx) = (errors.clone(), cut.clone());
        rt.spawn(async move {
            while let Ok((mut plain, _)) = listener.accept().await {
                let (connector, name, errs, mut cut) = (connector.clone(), name.clone(), errs.clone(), cut_tx.subscribe());
                tokio::spawn(async move {
                    let _ = plain.set_nodelay(true);
                    let Ok(tcp) = tokio::net::TcpStream::connect(upstream).await else { return };
                    let _ = tcp.set_nodelay(true);
                    let mut tls = match connector.connect(name, tcp).await {
                        Ok(t) => t,
                        Err(e) => {
                            errs.lock().unwrap().push(e.to_string());
                            return;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut plain, &mut tls) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Bridge { addr, errors, cut, rt: Some(rt) }
    }

    /// Drops every bridged connection open now (both sides see the end).
    pub fn cut_all(&self) {
        let _ = self.cut.send(());
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One HTTPS request (`Connection: close`) with the bearer `token`: the
/// status and body, or the client's error text.
pub fn https_get(addr: SocketAddr, cfg: Arc<ClientConfig>, path: &str, token: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut conn = rustls::ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).map_err(|e| e.to_string())?;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::Stream::new(&mut conn, &mut tcp);
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    match s.read_to_end(&mut text) {
        Ok(_) => {}
        // A peer closing without close_notify after a whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !text.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&text).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

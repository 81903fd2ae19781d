//! Load generator for edge-collector: many simulated agents in one process
//! over loopback, against the collector binary, and the same bytes against
//! a trivial reader (no decoding, no acks: read and append to a file) for
//! the machine's bound.
//!
//! ```sh
//! cargo build --release -p edge-collector --bin edge-collector --example load
//! target/release/examples/load --bin target/release/edge-collector --agents 10,100,1000 --seconds 5
//! target/release/examples/load --bin target/release/edge-collector --storm 10000 [--admission-rate 2000]
//! target/release/examples/load --bin target/release/edge-collector --agents 100,1000 --collectors 3 \
//!     --collector-args "--sink nats://127.0.0.1:4222 --nats-stream LOAD{run}" --measure-pid $(pidof nats-server) --skip-trivial
//! ```
//!
//! `--collectors K` starts K collectors and spreads the agents over them
//! (agent i to collector i mod K); `--collector-args` adds flags to each
//! (`{run}` is replaced by a name unique to the run, so that each run has a
//! stream of its own); `--measure-pid P` adds process P's CPU (a
//! nats-server) to the table; `--skip-trivial` skips the trivial reader.
//!
//! `--storm N`: N agents connect and stay; the collector is killed (-9) and
//! restarted on the same port; printed: handshakes per 250 ms from the kill,
//! the time until every agent is back, and the collector's Busy rejects.
//! Storm agents reconnect after a full-jitter wait of up to 1 s, or, after a
//! Busy Reject, after exactly its `retry_after_ms` (PROTOCOL.md, Reconnect);
//! the collector runs with `--admission-rate` as given to this tool (its
//! default when not given).
//!
//! The ingest runs measure the sink, not the handshake: their collector
//! runs with `--admission-rate 0`, so that all agents start at once.
//!
//! Each agent sends Batches of `--batch` records of 64-byte payloads, keeps
//! at most `--window` batches unacked, and measures each batch's time from
//! its send to the Ack that covers it (push-to-ack for the batch's records).
//! Printed per run: records/s acked, p50/p99 push-to-ack, the collector's
//! CPU (cores) and peak RSS; for the trivial reader, records/s written.

use agent_core::frame::crc32c;
use agent_core::message::{decode_body, Batch, CloseCode, Hello, Message, Reject};
use agent_core::record::{ts_delta, EntryHeader};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAYLOAD: usize = 64;

struct Opts {
    /// Reconnect storm of this many agents instead of the ingest runs.
    storm: Option<usize>,
    bin: String,
    agents: Vec<usize>,
    seconds: u64,
    batch: u64,
    window: usize,
    /// `--admission-rate` of the storm's collector.
    admission_rate: Option<String>,
    collectors: usize,
    collector_args: String,
    measure_pid: Option<u32>,
    skip_trivial: bool,
}

fn opts() -> Opts {
    let mut o = Opts { storm: None, bin: "target/release/edge-collector".into(), agents: vec![10, 100, 1000], seconds: 5, batch: 50, window: 4, admission_rate: None, collectors: 1, collector_args: String::new(), measure_pid: None, skip_trivial: false };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--skip-trivial") {
        args.remove(i);
        o.skip_trivial = true;
    }
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--bin" => o.bin = v,
            "--agents" => o.agents = v.split(',').map(|n| n.parse().expect("--agents a,b,c")).collect(),
            "--seconds" => o.seconds = v.parse().expect("--seconds N"),
            "--batch" => o.batch = v.parse().expect("--batch N"),
            "--window" => o.window = v.parse().expect("--window N"),
            "--storm" => o.storm = Some(v.parse().expect("--storm N")),
            "--admission-rate" => o.admission_rate = Some(v),
            "--collectors" => o.collectors = v.parse().expect("--collectors N"),
            "--collector-args" => o.collector_args = v,
            "--measure-pid" => o.measure_pid = Some(v.parse().expect("--measure-pid PID")),
            "--trivial-reader" => {
                trivial_reader(&v);
                std::process::exit(0);
            }
            f => panic!("unknown flag {f}"),
        }
    }
    o
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    raise_fd_limit();
    if let Some(n) = o.storm {
        rt.block_on(storm(n, &o.bin, o.admission_rate.as_deref()));
        return;
    }
    println!("window {} batches of {} records of {PAYLOAD} B per agent, {} s per run", o.window, o.batch, o.seconds);
    println!("| agents | collector records/s | p50 ms | p99 ms | collector CPU (cores) | CPU per 100k rec/s | peak RSS MiB | mean commit ms | records per commit | trivial reader records/s | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &o.agents {
        let dir = std::env::temp_dir().join(format!("edge-load-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run_name = format!("{}x{n}x{}", std::process::id(), o.collectors);
        let mut children: Vec<Child> = (0..o.collectors.max(1))
            .map(|k| {
                let sub = dir.join(format!("c{k}"));
                spawn(
                    Command::new(&o.bin)
                        .args(["--listen", "127.0.0.1:0", "--log", "warn", "--max-connections", &max_connections(), "--admission-rate", "0"])
                        .args(["--api-token", "load-generator-api-token", "--api-listen", "127.0.0.1:0"])
                        .args(o.collector_args.replace("{run}", &run_name).split_whitespace())
                        .arg("--data-dir")
                        .arg(&sub),
                )
            })
            .collect();
        let addrs: Vec<(SocketAddr, Option<SocketAddr>)> = children.iter_mut().map(ready_addrs).collect();
        let agent_addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.0).collect();
        let cpu_of = |children: &[Child]| children.iter().map(|c| cpu_ticks(c.id())).sum::<u64>() + o.measure_pid.map_or(0, cpu_ticks);
        let cpu0 = cpu_of(&children);
        let r = rt.block_on(run(&agent_addrs, n, &o, true));
        let cpu = (cpu_of(&children) - cpu0) as f64 / ticks_per_sec() / r.elapsed.as_secs_f64();
        let rss = children.iter().map(|c| peak_rss_kib(c.id())).sum::<u64>() as f64 / 1024.0;
        let mut m: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
        for (_, api) in &addrs {
            for (k, v) in metrics(api.expect("API address")) {
                *m.entry(k).or_default() += v;
            }
        }
        let commits = m.get("sink_commits_total").copied().filter(|v| *v > 0.0).or(m.get("jetstream_rounds_total").copied()).unwrap_or(0.0).max(1.0);
        let micros = m.get("sink_commit_micros_total").copied().filter(|v| *v > 0.0).or(m.get("jetstream_publish_micros_total").copied()).unwrap_or(0.0);
        let commit_ms = micros / commits / 1000.0;
        let per_commit = m.get("records_stored_total").copied().unwrap_or(0.0) / commits;
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        let rate = r.records as f64 / r.elapsed.as_secs_f64();
        let mut lat = r.latencies;
        lat.sort_unstable();
        let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        if o.skip_trivial {
            println!("| {n} | {rate:.0} | {:.1} | {:.1} | {cpu:.2} | {:.2} | {rss:.0} | {commit_ms:.1} | {per_commit:.0} | - | - |", pct(0.5), pct(0.99), cpu / (rate / 100_000.0));
            continue;
        }

        let file = std::env::temp_dir().join(format!("edge-load-trivial-{}-{n}", std::process::id()));
        let me = std::env::current_exe().unwrap();
        let mut reader = spawn(Command::new(me).arg("--trivial-reader").arg(&file));
        let (taddr, _) = ready_addrs(&mut reader);
        let t = rt.block_on(run(&[taddr], n, &o, false));
        std::thread::sleep(Duration::from_millis(200));
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let _ = reader.kill();
        let _ = reader.wait();
        let _ = std::fs::remove_file(&file);
        let trivial_rate = (bytes / t.frame_len) as f64 * o.batch as f64 / t.elapsed.as_secs_f64();

        println!(
            "| {n} | {rate:.0} | {:.1} | {:.1} | {cpu:.2} | {:.2} | {rss:.0} | {commit_ms:.1} | {per_commit:.0} | {trivial_rate:.0} | {:.2} |",
            pct(0.5),
            pct(0.99),
            cpu / (rate / 100_000.0),
            rate / trivial_rate
        );
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn")
}

fn ready_addrs(child: &mut Child) -> (SocketAddr, Option<SocketAddr>) {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let field = |k: &str| line.split_whitespace().find_map(|p| p.strip_prefix(k)).and_then(|a| a.parse().ok());
    (field("agents=").expect("ready line"), field("api="))
}

/// The collector's counters, from `GET /metrics`.
fn metrics(api: SocketAddr) -> std::collections::HashMap<String, f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer load-generator-api-token\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("edge_collector_"))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from after the command name.
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn ticks_per_sec() -> f64 {
    100.0 // CLK_TCK on Linux
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

struct RunResult {
    records: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    frame_len: u64,
}

fn batch_frame(first_seq: u64, n: u64, out: &mut Vec<u8>) -> usize {
    let mut entries = Vec::with_capacity((n as usize) * (PAYLOAD + 6));
    let mut prev = 1_700_000_000_000u64;
    for s in 0..n {
        let ts = prev + 1;
        let (h, hl) = EntryHeader::new(2001, ts_delta(prev, ts), PAYLOAD).encode();
        entries.extend_from_slice(&h[..hl]);
        let text = format!("{:<64}", format!("reading {}", first_seq + s));
        entries.extend_from_slice(&text.as_bytes()[..PAYLOAD]);
        prev = ts;
    }
    out.resize(entries.len() + 64, 0);
    let len = Message::Batch(Batch { first_seq, base_ts: 1_700_000_000_000, count: n as u32, records: &entries }).encode(0, out).unwrap();
    out.truncate(len);
    len
}

/// Runs `n` agents for the configured time; with `acks`, windowed on the
/// collector's Acks, else blasting (trivial reader).
async fn run(addrs: &[SocketAddr], n: usize, o: &Opts, acks: bool) -> RunResult {
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let mut sample = Vec::new();
    let frame_len = batch_frame(0, o.batch, &mut sample) as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (stop, records) = (stop.clone(), records.clone());
        let (batch, window) = (o.batch, o.window);
        let addr = addrs[i % addrs.len()];
        tasks.push(tokio::spawn(async move { agent(addr, i, batch, window, acks, stop, records).await }));
    }
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok(Some(l)) = t.await {
            latencies.extend(l);
        }
    }
    RunResult { records: records.load(Ordering::Relaxed), elapsed, latencies, frame_len }
}

async fn agent(addr: SocketAddr, i: usize, batch: u64, window: usize, acks: bool, stop: Arc<AtomicBool>, records: Arc<AtomicU64>) -> Option<Vec<Duration>> {
    let mut s = loop {
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(_) if !stop.load(Ordering::Relaxed) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => return None,
        }
    };
    s.set_nodelay(true).ok()?;
    let id = format!("load-{i}");
    let hello = Hello {
        agent_id: id.as_str().into(), hostname: "load".into(), product: "load".into(), version: "0".into(), intranet_ipv4: &[], intranet_ipv6: &[],
        extranet_ipv4: &[], extranet_ipv6: &[], auth_token: b"", first_unacked_seq: 0, next_seq: 0, max_frame: 65536, min_frame: 4096,
    };
    let mut out = vec![0u8; 512];
    let n = Message::Hello(hello).encode(0, &mut out).ok()?;
    s.write_all(&out[..n]).await.ok()?;
    let mut inbuf: Vec<u8> = Vec::new();
    let mut seq = 0u64;
    let mut frame = Vec::new();
    if !acks {
        while !stop.load(Ordering::Relaxed) {
            batch_frame(seq, batch, &mut frame);
            seq += batch;
            s.write_all(&frame).await.ok()?;
        }
        return Some(Vec::new());
    }
    read_msg(&mut s, &mut inbuf).await?; // Accept
    let mut inflight: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut lat = Vec::new();
    loop {
        while inflight.len() < window && !stop.load(Ordering::Relaxed) {
            batch_frame(seq, batch, &mut frame);
            s.write_all(&frame).await.ok()?;
            seq += batch;
            inflight.push_back((seq - 1, Instant::now()));
        }
        if inflight.is_empty() {
            return Some(lat);
        }
        let msg = tokio::time::timeout(Duration::from_secs(10), read_msg(&mut s, &mut inbuf)).await.ok()??;
        if let (5, body) = msg {
            let up_to = postcard_varint(&body);
            while inflight.front().is_some_and(|(last, _)| *last <= up_to) {
                let (_, t) = inflight.pop_front().unwrap();
                lat.push(t.elapsed());
                records.fetch_add(batch, Ordering::Relaxed);
            }
        }
    }
}

fn postcard_varint(b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// The next frame's (kind, body); the collector sends whole, valid frames.
async fn read_msg(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    loop {
        if buf.len() >= 13 {
            let len = u32::from_le_bytes(buf[5..9].try_into().unwrap()) as usize;
            if buf.len() >= len + 17 {
                let f: Vec<u8> = buf.drain(..len + 17).collect();
                debug_assert_eq!(u32::from_le_bytes(f[13 + len..].try_into().unwrap()), crc32c(&f[..13 + len]));
                return Some((f[3], f[13..13 + len].to_vec()));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The bound: accept, read, append to one file; no decoding, no acks.
fn trivial_reader(path: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening agents={}", l.local_addr().unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
        let path = path.to_string();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(path).unwrap();
            while let Some(b) = rx.blocking_recv() {
                f.write_all(&b).unwrap();
            }
        });
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// `--max-connections` of the collectors started here: 20,000, or what
/// the open-file limit leaves after the collector's reserve (the API's 64
/// connections and 256 for files and refusals, which it checks at start).
fn max_connections() -> String {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(20_000, |(soft, _)| soft);
    limit.saturating_sub(64 + 256).min(20_000).to_string()
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// A reconnect storm: `n` agents connected, the collector killed (-9) and
/// restarted on the same port; connects per second until all are back.
async fn storm(n: usize, bin: &str, admission_rate: Option<&str>) {
    let dir = std::env::temp_dir().join(format!("edge-storm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let args = |listen: &str| {
        let mut c = Command::new(bin);
        c.args(["--listen", listen, "--log", "error", "--max-connections", &max_connections(), "--api-token", "load-generator-api-token", "--api-listen", "127.0.0.1:0"]).arg("--data-dir").arg(&dir);
        if let Some(r) = admission_rate {
            c.args(["--admission-rate", r]);
        }
        c
    };
    let mut child = spawn(&mut args("127.0.0.1:0"));
    let (addr, _) = ready_addrs(&mut child);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let t0 = Instant::now();
    for i in 0..n {
        let tx = tx.clone();
        tokio::spawn(async move { storm_agent(addr, i, tx).await });
    }
    let mut up = 0;
    while up < n {
        rx.recv().await.unwrap();
        up += 1;
    }
    println!("storm: {n} agents connected in {:.2} s", t0.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut child = spawn(&mut args(&addr.to_string()));
    let (_, api) = ready_addrs(&mut child);
    let restarted = killed.elapsed();
    let mut times = Vec::with_capacity(n);
    while times.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(t)) => times.push(t.duration_since(killed)),
            _ => break,
        }
    }
    let m = metrics(api.expect("API"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let all_back = times.last().copied().unwrap_or_default();
    println!("storm: collector killed, restarted after {:.2} s; {} of {n} agents back after {:.2} s (from the kill)", restarted.as_secs_f64(), times.len(), all_back.as_secs_f64());
    let span = all_back.as_secs_f64() - restarted.as_secs_f64();
    println!(
        "storm: mean {:.0} connects/s from the restart; collector rejects: busy {}, paced {}; accepts {}",
        times.len() as f64 / span.max(0.001),
        m.get("rejects_busy_total").copied().unwrap_or(0.0),
        m.get("rejects_paced_total").copied().unwrap_or(0.0),
        m.get("accepts_total").copied().unwrap_or(0.0)
    );
    println!("| from the kill, s | handshakes in the 250 ms |");
    println!("|---:|---:|");
    let mut bucket = 0usize;
    let mut i = 0;
    while i < times.len() {
        let end = Duration::from_millis(250 * (bucket as u64 + 1));
        let start = i;
        while i < times.len() && times[i] < end {
            i += 1;
        }
        if i > start {
            println!("| {:.2} | {} |", end.as_secs_f64(), i - start);
        }
        bucket += 1;
    }
}

/// An agent that stays connected and reconnects after a full-jitter wait
/// (up to 1 s, the agent's default base 500 ms doubled once), reporting
/// each Accept.
async fn storm_agent(addr: SocketAddr, i: usize, up: tokio::sync::mpsc::UnboundedSender<Instant>) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut jitter = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_millis(rng % 1000)
    };
    let id = format!("storm-{i}");
    loop {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            tokio::time::sleep(jitter()).await;
            continue;
        };
        let hello = Hello {
            agent_id: id.as_str().into(), hostname: "storm".into(), product: "load".into(), version: "0".into(), intranet_ipv4: &[], intranet_ipv6: &[],
            extranet_ipv4: &[], extranet_ipv6: &[], auth_token: b"", first_unacked_seq: 0, next_seq: 0, max_frame: 65536, min_frame: 4096,
        };
        let mut out = vec![0u8; 512];
        let n = Message::Hello(hello).encode(0, &mut out).unwrap();
        if s.write_all(&out[..n]).await.is_err() {
            tokio::time::sleep(jitter()).await;
            continue;
        }
        let mut buf = Vec::new();
        match read_msg(&mut s, &mut buf).await {
            Some((2, _)) => {
                if up.send(Instant::now()).is_err() {
                    return;
                }
                // Connected until the collector goes away.
                while read_msg(&mut s, &mut buf).await.is_some() {}
            }
            // A Busy Reject with a slot: back exactly then.
            Some((3, body)) => match decode_body::<Reject<'_>>(&body) {
                Ok(r) if r.code == CloseCode::Busy as u16 && r.retry_after_ms > 0 => {
                    tokio::time::sleep(Duration::from_millis(u64::from(r.retry_after_ms).clamp(50, 60_000))).await;
                    continue;
                }
                _ => {}
            },
            // Anything else (a failed handshake): wait, retry.
            _ => {}
        }
        tokio::time::sleep(jitter()).await;
    }
}

//! Handshakes per second the collector admits, plain TCP beside mutual TLS
//! (TLS 1.3, ECDSA P-256 certificates from scripts/dev-pki.sh), for
//! BENCHMARKS.md (issue 19, Targets).
//!
//! ```sh
//! cargo build --release -p edge-collector --bin edge-collector --example tls_handshakes
//! scripts/dev-pki.sh /tmp/pki $(seq -f 'bench-%g' 0 7)
//! target/release/examples/tls_handshakes --bin target/release/edge-collector --pki /tmp/pki --clients 8 --seconds 5
//! ```
//!
//! Each of `--clients` threads loops: connect, (TLS handshake with its own
//! client certificate `bench-<i>`), Hello as `bench-<i>` (plain: a fresh id
//! each time, see below), wait for the
//! Accept, close. The collector runs with `--admission-rate 0`, so every
//! Hello is admitted and the figure is its handshake capacity. Printed per
//! mode: admitted handshakes per second and the collector's CPU (cores, from
//! /proc). The clients run on the same machine: their own TLS work shares
//! its cores, so the TLS figure is a floor.

use agent_core::message::{Hello, Message};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next();
        }
    }
    None
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

#[allow(deprecated)]
fn client_config(pki: &Path, i: usize) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(pki.join(format!("bench-{i}.pem"))).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(pki.join(format!("bench-{i}.key"))).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(cfg)
}

/// One connect-Hello-Accept cycle; true if the first frame back is an Accept.
fn cycle(addr: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>, id: &str) -> bool {
    let Ok(mut tcp) = TcpStream::connect(addr) else { return false };
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let hello = Hello {
        agent_id: id.into(), hostname: "bench".into(), product: "bench".into(), version: "0".into(), intranet_ipv4: &[], intranet_ipv6: &[],
        extranet_ipv4: &[], extranet_ipv6: &[], auth_token: b"", first_unacked_seq: 0, next_seq: 0, max_frame: 65536, min_frame: 1100,
    };
    let mut frame = vec![0u8; 1024];
    let n = Message::Hello(hello).encode(0, &mut frame).unwrap();
    frame.truncate(n);
    let mut head = [0u8; 4];
    let ok = match tls {
        None => tcp.write_all(&frame).is_ok() && tcp.read_exact(&mut head).is_ok(),
        Some(cfg) => {
            let Ok(mut conn) = rustls::ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap()) else { return false };
            let mut s = rustls::Stream::new(&mut conn, &mut tcp);
            let ok = s.write_all(&frame).is_ok() && s.read_exact(&mut head).is_ok();
            s.conn.send_close_notify();
            let _ = s.flush();
            ok
        }
    };
    ok && head[3] == 2
}

fn run(bin: &Path, pki: &Path, tls: bool, clients: usize, seconds: u64) {
    let data = std::env::temp_dir().join(format!("tls-bench-{}-{tls}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir").arg(&data).args(["--listen", "127.0.0.1:0", "--admission-rate", "0", "--new-agents-per-sec", "0", "--log", "error"]);
    if tls {
        cmd.arg("--tls-cert").arg(pki.join("collector.pem")).arg("--tls-key").arg(pki.join("collector.key"));
        cmd.arg("--tls-client-ca").arg(pki.join("ca.pem"));
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start the collector");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr: SocketAddr = line.split_whitespace().find_map(|p| p.strip_prefix("agents=")).expect("ready line").parse().unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
            let cfg = tls.then(|| client_config(pki, i));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Over mTLS the id is the certificate's, and a proven
                    // Hello replaces the previous session at once; a plain
                    // (unproven) one would wait for a liveness probe of a
                    // session still closing, so plain ids are fresh.
                    n += 1;
                    let id = if cfg.is_some() { format!("bench-{i}") } else { format!("bench-{i}-{n}") };
                    if cycle(addr, cfg.as_ref(), &id) {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500)); // warm up
    let (d0, c0, t0) = (done.load(Ordering::Relaxed), cpu_ticks(child.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (d1, c1, el) = (done.load(Ordering::Relaxed), cpu_ticks(child.id()), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    let tick = 100.0; // USER_HZ
    println!(
        "{:>5}: {:>8.0} admitted handshakes/s, collector {:.2} cores, {} failed",
        if tls { "mTLS" } else { "plain" },
        (d1 - d0) as f64 / el,
        (c1 - c0) as f64 / tick / el,
        failed.load(Ordering::Relaxed)
    );
}

fn main() {
    let bin = PathBuf::from(arg("--bin").unwrap_or_else(|| "target/release/edge-collector".into()));
    let pki = PathBuf::from(arg("--pki").expect("--pki DIR (scripts/dev-pki.sh DIR bench-0 .. bench-N)"));
    let clients: usize = arg("--clients").map_or(8, |c| c.parse().unwrap());
    let seconds: u64 = arg("--seconds").map_or(5, |s| s.parse().unwrap());
    run(&bin, &pki, false, clients, seconds);
    run(&bin, &pki, true, clients, seconds);
}

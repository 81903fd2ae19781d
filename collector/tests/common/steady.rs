//! A well-behaved agent beside an attack: one record at a time, each
//! waiting for its Ack, its round trips timed. Its rest value and its value
//! under attack are measured in the same test, so a busy machine moves both.

use super::raw::{hello, Got, Raw};
use agent_core::message::{Message, Pong};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running steady agent.
pub struct Steady {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<(Instant, Duration)>, u64)>,
}

/// What it saw: round trips in order (when each started, how long it
/// took), and the records acked.
pub struct SteadyReport {
    pub rtts: Vec<(Instant, Duration)>,
    pub acked: u64,
}

impl SteadyReport {
    /// The `q` quantile (0..=1) of the round trips in `range`.
    pub fn quantile(&self, range: std::ops::Range<usize>, q: f64) -> Duration {
        let mut v: Vec<Duration> = self.rtts[range].iter().map(|r| r.1).collect();
        assert!(!v.is_empty(), "no round trips in that range");
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

impl Steady {
    /// Connects as `id` (token `token`) and sends record after record
    /// (pausing `every` between them) until stopped; answers Pings.
    pub fn start(addr: SocketAddr, id: &str, token: &[u8], every: Duration) -> Steady {
        let (id, token) = (id.to_string(), token.to_vec());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut c, accept, _) = Raw::connect_admitted(addr, &hello(&id, &token, 0, 0), Duration::from_secs(10), 20);
            let Got::Accept { next_seq, .. } = accept else { unreachable!() };
            let mut seq = next_seq;
            let mut rtts = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.batch("steady-", seq, 1);
                loop {
                    match c.recv(Duration::from_secs(30)) {
                        Got::Ack(up_to) if up_to == seq => break,
                        Got::Ping(nonce) => c.send(&Message::Pong(Pong { nonce })),
                        Got::Task { .. } | Got::Config { .. } | Got::Pong(_) => {}
                        g => panic!("steady agent {id}: record {seq} got {g:?}"),
                    }
                }
                rtts.push((t, t.elapsed()));
                seq += 1;
                std::thread::sleep(every);
            }
            (rtts, seq - next_seq)
        });
        Steady { stop, thread }
    }

    /// Stops it and returns what it saw.
    pub fn finish(self) -> SteadyReport {
        self.stop.store(true, Ordering::Relaxed);
        let (rtts, acked) = self.thread.join().expect("steady agent");
        SteadyReport { rtts, acked }
    }
}

/// Runs a steady agent for `rest` alone, then while `attack` runs, and
/// checks that under attack its p99 round trip stays within 10x its rest
/// p99 (plus 250 ms of slack for a loaded 2-core machine) and that every
/// record it sent was acked. Returns what `attack` returned.
pub fn under_attack<T>(addr: SocketAddr, id: &str, token: &[u8], rest: Duration, attack: impl FnOnce() -> T) -> T {
    let steady = Steady::start(addr, id, token, Duration::from_millis(5));
    std::thread::sleep(rest);
    let marker = Instant::now();
    let out = attack();
    let attack_time = marker.elapsed();
    let r = steady.finish();
    // Round trips that ended before the attack began are the rest value.
    let split = r.rtts.iter().position(|(t, d)| *t + *d >= marker).unwrap_or(r.rtts.len());
    assert!(split >= 5, "too few round trips at rest: {split}");
    assert!(r.rtts.len() > split, "the steady agent made no round trip during the attack ({attack_time:?})");
    let at_rest = r.quantile(0..split, 0.99);
    let attacked = r.quantile(split..r.rtts.len(), 0.99);
    eprintln!("steady {id}: {} acked; p99 at rest {at_rest:?}, under attack {attacked:?} (attack {attack_time:?})", r.acked);
    assert!(attacked <= at_rest * 10 + Duration::from_millis(250), "p99 ack latency under attack {attacked:?} vs {at_rest:?} at rest");
    assert_eq!(r.acked as usize, r.rtts.len(), "every record acked");
    out
}

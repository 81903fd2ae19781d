//! A well-behaved agent with a latency probe, for tests that attack the
//! collector and must show that a good agent is still served.
//!
//! [`Probe::start`] runs one agent in its own thread: it sends one record
//! per Batch, waits for the Ack covering it, and times that round trip
//! (one sample per record, fsync included). When its connection ends or an
//! Ack does not come within [`ACK_LIMIT`], it reconnects as an agent does,
//! reporting its resume point in Hello, and resends what was not acked; the
//! wait counts in that record's sample. Records are type 2001 with the text
//! `<id>#<seq>`, so [`super::sink_view`] can check them afterwards.
//!
//! A test measures a rest phase ([`Probe::phase`]), starts its attack,
//! measures the attack phase, and compares the two with [`within`].

use super::raw::{hello, Got, Raw};
use agent_core::message::Message;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest wait for an Accept or an Ack before the probe reconnects.
pub const ACK_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    /// Round trips not yet taken by `phase`.
    samples: Vec<Duration>,
    /// Every sequence number below this is acked.
    acked: u64,
    /// Connections made after the first.
    reconnects: u32,
    /// Why connections ended, in order (empty for a quiet run).
    troubles: Vec<String>,
}

/// What the probe saw, at [`Probe::stop`].
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub id: String,
    /// Records `0..acked` were all acked.
    pub acked: u64,
    pub reconnects: u32,
    pub troubles: Vec<String>,
}

/// A running probe agent; stopped (and joined) by [`Probe::stop`] or drop.
pub struct Probe {
    id: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Probe {
    /// Starts agent `id` (with agent `token`, empty for none) against the
    /// agent port `addr`, one record every `every` (after the previous Ack).
    pub fn start(addr: SocketAddr, id: &str, token: &[u8], every: Duration) -> Probe {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, agent, token) = (state.clone(), stop.clone(), id.to_string(), token.to_vec());
        let thread = std::thread::spawn(move || run(addr, &agent, &token, every, &st, &sp));
        Probe { id: id.to_string(), state, stop, thread: Some(thread) }
    }

    /// Waits until `n` round trips were measured since the last call (or
    /// `limit` passed) and returns them: one phase of a test.
    pub fn phase(&self, n: usize, limit: Duration) -> Vec<Duration> {
        let end = Instant::now() + limit;
        while self.state.lock().unwrap().samples.len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::take(&mut self.state.lock().unwrap().samples)
    }

    /// Records acked so far (all of `0..acked`).
    pub fn acked(&self) -> u64 {
        self.state.lock().unwrap().acked
    }

    /// Stops the agent after its current round trip and reports.
    pub fn stop(mut self) -> ProbeReport {
        self.join();
        let s = self.state.lock().unwrap();
        ProbeReport { id: self.id.clone(), acked: s.acked, reconnects: s.reconnects, troubles: s.troubles.clone() }
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test: stop the thread, do not wait for it.
            self.stop.store(true, Ordering::Relaxed);
        } else {
            self.join();
        }
    }
}

/// The `p`-th percentile (nearest rank, `p` in 0..=100) of `samples`;
/// zero for none.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Checks the attack phase's p99 against `factor` x the rest phase's p99
/// plus `slack` (for a loaded machine), printing both; `Err` says why not.
pub fn within(rest: &[Duration], attack: &[Duration], factor: u32, slack: Duration) -> Result<(), String> {
    let (r, a) = (percentile(rest, 99.0), percentile(attack, 99.0));
    let bound = r * factor + slack;
    eprintln!("probe: rest p99 {r:?} ({} samples), attack p99 {a:?} ({} samples), bound {bound:?}", rest.len(), attack.len());
    if rest.is_empty() || attack.is_empty() {
        return Err(format!("no samples (rest {}, attack {})", rest.len(), attack.len()));
    }
    if a > bound {
        return Err(format!("attack p99 {a:?} above {factor} x rest p99 {r:?} + {slack:?}"));
    }
    Ok(())
}

fn run(addr: SocketAddr, id: &str, token: &[u8], every: Duration, state: &Mutex<State>, stop: &AtomicBool) {
    // `next` is the record in flight (sent or about to be); all below are acked.
    let mut next = 0u64;
    let mut since: Option<Instant> = None;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        if !first {
            state.lock().unwrap().reconnects += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        first = false;
        // The one unacked record, if any, is still held: report it.
        let held_to = if since.is_some() { next + 1 } else { next };
        let mut c = match std::panic::catch_unwind(|| Raw::connect(addr)) {
            Ok(c) => c,
            Err(_) => {
                state.lock().unwrap().troubles.push("connect failed".into());
                continue;
            }
        };
        c.send(&Message::Hello(hello(id, token, next, held_to)));
        match c.recv_answering(ACK_LIMIT) {
            Got::Accept { next_seq, .. } if next_seq > next && since.is_some() => {
                // The record in flight was stored before the connection ended.
                note(state, &mut since, next_seq);
                next = next_seq;
            }
            Got::Accept { .. } => {}
            g => {
                state.lock().unwrap().troubles.push(format!("handshake: {g:?}"));
                continue;
            }
        }
        while !stop.load(Ordering::Relaxed) {
            since.get_or_insert_with(Instant::now);
            c.batch(&format!("{id}#"), next, 1);
            match c.recv_answering(ACK_LIMIT) {
                Got::Ack(up_to) if up_to >= next => {
                    note(state, &mut since, up_to + 1);
                    next = up_to + 1;
                    std::thread::sleep(every);
                }
                g => {
                    state.lock().unwrap().troubles.push(format!("record {next}: {g:?}"));
                    break;
                }
            }
        }
    }
}

/// Records one round trip (from the first send of the record in flight)
/// and moves the acked point to `acked`.
fn note(state: &Mutex<State>, since: &mut Option<Instant>, acked: u64) {
    let mut s = state.lock().unwrap();
    if let Some(t) = since.take() {
        s.samples.push(t.elapsed());
    }
    s.acked = s.acked.max(acked);
}

/// Runs a probe agent for `rest` alone, then while `attack` runs, and
/// checks that under attack its p99 ack latency stays within 10x its rest
/// p99 (plus 250 ms of slack for a loaded 2-core machine), that its
/// connection was never cut or refused, and that it kept getting acks.
/// Returns what `attack` returned.
pub fn under_attack<T>(addr: SocketAddr, id: &str, token: &[u8], rest: Duration, attack: impl FnOnce() -> T) -> T {
    let probe = Probe::start(addr, id, token, Duration::from_millis(5));
    std::thread::sleep(rest);
    let at_rest = probe.phase(5, ACK_LIMIT);
    let acked_before = probe.acked();
    let marker = Instant::now();
    let out = attack();
    let attack_time = marker.elapsed();
    let attacked = probe.phase(1, ACK_LIMIT);
    let report = probe.stop();
    eprintln!("probe {id}: {} acked, attack {attack_time:?}", report.acked);
    assert!(report.troubles.is_empty() && report.reconnects == 0, "probe {id} was disturbed: {:?}", report.troubles);
    assert!(report.acked > acked_before, "probe {id} got no ack during the attack");
    within(&at_rest, &attacked, 10, Duration::from_millis(250)).unwrap();
    out
}

//! The simulated collector: up or down, the admission of Hellos, and the
//! few answers an agent needs (Accept or Reject, Ack, Pong).
//!
//! Admission is the collector's own sans-IO `Admission`
//! (`edge_collector::admission`), a fresh instance with a new seed at each
//! start, driven with the fake clock:
//!
//! * [`ServerKind::Paced`]: `AdmissionConfig { rate_per_sec: R, ..default }`
//!   (τ = 50 ms, slots honoured 1 s late); a Hello beyond the rate gets
//!   Reject(6, Busy) with its slot's `retry_after_ms`; Accept carries the
//!   advice `retry_window_ms(N)` (the collector's registry knows the fleet).
//! * [`ServerKind::Unpaced`]: the same GCRA (R, τ = 50 ms) without slots
//!   (`max_reservations: 0`); a Hello beyond the rate is refused: the
//!   collector closes the connection without an answer. No advice.

use std::time::Duration;

use agent_core::decoder::{Feed, FrameDecoder};
use agent_core::message::{Accept, Ack, CloseCode, Message, Pong, Reject};
use edge_collector::admission::{Admission, AdmissionConfig, Decision};

use crate::rng::SplitMix64;
use crate::scenario::ServerKind;

/// The largest frame the collector accepts, sent in Accept.
pub const SERVER_MAX_FRAME: u32 = 65_536;

/// The collector's answer to a Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Accept, with the pacing advice (0: none).
    Accept {
        /// `Accept.retry_window_ms`.
        retry_window_ms: u32,
    },
    /// Reject(6, Busy), come back after this long.
    Busy {
        /// `Reject.retry_after_ms`.
        retry_after_ms: u32,
    },
    /// Refused: the connection is closed without an answer (unpaced).
    Refuse,
}

/// What a received frame asks of the collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A Hello, judged; the frame to answer with (none when refused).
    Hello {
        /// The decision.
        answer: Answer,
        /// Accept or Reject, encoded.
        reply: Option<Box<[u8]>>,
    },
    /// An Ack (for a Batch) or a Pong (for a Ping).
    Reply(Box<[u8]>),
    /// Nothing to answer (Pong, Close, anything else).
    Nothing,
}

/// One collector start's admission: its `Admission` and its advice.
struct Gate {
    kind: ServerKind,
    admission: Admission,
    advice: u32,
}

impl Gate {
    fn new(kind: ServerKind, rate: u32, fleet: usize, seed: u64) -> Gate {
        let paced = AdmissionConfig { rate_per_sec: rate, ..AdmissionConfig::default() };
        let cfg = match kind {
            ServerKind::Paced => paced,
            ServerKind::Unpaced => AdmissionConfig { max_reservations: 0, ..paced },
        };
        let admission = Admission::new(cfg, seed);
        let advice = match kind {
            ServerKind::Paced => admission.retry_window_ms(fleet),
            ServerKind::Unpaced => 0,
        };
        Gate { kind, admission, advice }
    }

    fn decide(&mut self, agent_id: &str, now_ms: u64) -> Answer {
        match (self.admission.decide(agent_id, Duration::from_millis(now_ms)), self.kind) {
            (Decision::Admit, _) => Answer::Accept { retry_window_ms: self.advice },
            (Decision::Busy { retry_after_ms }, ServerKind::Paced) => Answer::Busy { retry_after_ms },
            (Decision::Busy { .. }, ServerKind::Unpaced) => Answer::Refuse,
        }
    }
}

/// The collector.
pub struct Server {
    kind: ServerKind,
    rate: u32,
    fleet: usize,
    up: bool,
    gate: Gate,
    seeds: SplitMix64,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Server {
    /// A collector of `kind` at `rate` Hellos/s serving `fleet` agents, up.
    pub fn new(kind: ServerKind, rate: u32, fleet: usize, seed: u64) -> Server {
        let mut seeds = SplitMix64::new(seed);
        let gate = Gate::new(kind, rate, fleet, seeds.next_u64());
        Server { kind, rate, fleet, up: true, gate, seeds, rx: vec![0; SERVER_MAX_FRAME as usize], tx: vec![0; 256] }
    }

    /// True while the collector takes connections.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Goes down (the caller cuts the connections).
    pub fn stop(&mut self) {
        self.up = false;
    }

    /// Comes back with a fresh admission state (nothing promised).
    pub fn start(&mut self) {
        self.up = true;
        self.gate = Gate::new(self.kind, self.rate, self.fleet, self.seeds.next_u64());
    }

    /// Judges a Hello from `agent_id` at `now_ms`.
    pub fn decide(&mut self, agent_id: &str, now_ms: u64) -> Answer {
        self.gate.decide(agent_id, now_ms)
    }

    /// Handles one received frame (the agent writes whole frames, so one
    /// decoder, reset for each, is enough); `seq` is the connection's frame
    /// counter for the answer.
    pub fn on_frame(&mut self, now_ms: u64, bytes: &[u8], seq: &mut u32) -> Outcome {
        let mut decoder = FrameDecoder::new(&mut self.rx);
        let Feed::Frame { frame, .. } = decoder.feed(bytes) else { return Outcome::Nothing };
        let reply = match Message::decode(&frame) {
            Ok(Message::Hello(h)) => {
                let answer = self.gate.decide(h.agent_id.as_str(), now_ms);
                let msg = match answer {
                    Answer::Accept { retry_window_ms } => {
                        Message::Accept(Accept { next_seq: h.first_unacked_seq, max_frame: SERVER_MAX_FRAME, retry_window_ms })
                    }
                    Answer::Busy { retry_after_ms } => {
                        Message::Reject(Reject { code: CloseCode::Busy as u16, reason: "busy".into(), retry_after_ms })
                    }
                    Answer::Refuse => return Outcome::Hello { answer, reply: None },
                };
                let reply = Some(encode(&msg, seq, &mut self.tx));
                return Outcome::Hello { answer, reply };
            }
            Ok(Message::Batch(b)) if b.count > 0 => Message::Ack(Ack { up_to: b.first_seq + u64::from(b.count) - 1 }),
            Ok(Message::Ping(p)) => Message::Pong(Pong { nonce: p.nonce }),
            _ => return Outcome::Nothing,
        };
        Outcome::Reply(encode(&reply, seq, &mut self.tx))
    }
}

fn encode(msg: &Message<'_>, seq: &mut u32, buf: &mut [u8]) -> Box<[u8]> {
    let n = msg.encode(*seq, buf).expect("the collector's answers are small");
    *seq = seq.wrapping_add(1);
    buf[..n].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_gives_slots_and_advice_unpaced_refuses() {
        let mut s = Server::new(ServerKind::Paced, 100, 1000, 1);
        let mut answers = (0..20).map(|i| s.decide(&format!("a{i}"), 1000));
        assert_eq!(answers.next(), Some(Answer::Accept { retry_window_ms: 10_000 }));
        assert!(answers.any(|a| matches!(a, Answer::Busy { .. })));
        let mut u = Server::new(ServerKind::Unpaced, 100, 1000, 1);
        let answers: Vec<_> = (0..20).map(|i| u.decide(&format!("a{i}"), 1000)).collect();
        assert_eq!(answers[0], Answer::Accept { retry_window_ms: 0 });
        assert!(answers.contains(&Answer::Refuse) && !answers.iter().any(|a| matches!(a, Answer::Busy { .. })));
    }

    #[test]
    fn answers_batches_and_pings() {
        let mut s = Server::new(ServerKind::Paced, 100, 10, 1);
        let mut buf = [0u8; 128];
        let mut seq = 0;
        let n = Message::Ping(agent_core::message::Ping { nonce: 7 }).encode(0, &mut buf).unwrap();
        let Outcome::Reply(r) = s.on_frame(5, &buf[..n], &mut seq) else { panic!() };
        let mut rx = [0u8; 128];
        let mut decoder = FrameDecoder::new(&mut rx);
        let Feed::Frame { frame, .. } = decoder.feed(&r) else { panic!() };
        assert_eq!(Message::decode(&frame), Ok(Message::Pong(Pong { nonce: 7 })));
        assert_eq!(seq, 1);
        assert_eq!(s.on_frame(5, b"garbage", &mut seq), Outcome::Nothing);
    }
}

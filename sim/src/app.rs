//! The application on each agent: it pushes records with unique,
//! self-describing payloads at random times (sometimes in bursts, sometimes
//! too large, sometimes with timestamps going backwards), answers every task
//! after 0 to [`ANSWER_DELAY_MAX`] ms, and calls `reconnect_now` a while
//! after the agent gave up.

use agent_core::message::task_status;
use agent_core::ring::PushError;
use agent_core::{Instant, Record};

use crate::invariants::check_push_delta;
use crate::world::World;

pub(crate) const PRODUCT: &str = "edge";
pub(crate) const PLUGIN_NAMES: [&str; 2] = ["scanner", "updater"];
/// App records use data types from here up (never reserved ones).
pub(crate) const APP_TYPE_BASE: u32 = 2000;
/// An app record's payload starts with its index (8 bytes) and the agent's.
pub(crate) const APP_HEADER: usize = 9;
/// Longest time the app takes to answer a task.
pub(crate) const ANSWER_DELAY_MAX: u64 = 500;

/// One record the app pushed (accepted or not), as the checks need it.
pub(crate) struct AppRec {
    pub(crate) data_type: u32,
    pub(crate) ts: u64,
    pub(crate) len: usize,
    pub(crate) ord: u64,
    pub(crate) accepted: bool,
}

/// The payload of app record `n` of agent `a`, `len` bytes long.
pub(crate) fn app_payload(a: usize, n: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..8].copy_from_slice(&n.to_le_bytes());
    p[8] = a as u8;
    for (i, b) in p.iter_mut().enumerate().skip(APP_HEADER) {
        *b = (n.wrapping_mul(131) as usize + i * 7 + a) as u8;
    }
    p
}

impl<'a> World<'a> {
    /// The app's turn at `now`: `reconnect_now` after a give-up, task
    /// answers due, and a push (or burst) when one is due before `F`.
    pub(crate) fn app_step(&mut self, a: usize) {
        let now = self.now;
        if !self.sims[a].booted {
            return;
        }
        if self.sims[a].reconnect_at.is_some_and(|x| x <= now) {
            let s = &mut self.sims[a];
            s.reconnect_at = None;
            s.failures = 0;
            s.consecutive = 0;
            s.failing_since = None;
            s.ep_fail = 0;
            s.expect_connect = Some(now);
            s.agent.reconnect_now(Instant(now));
            self.count_input(a);
            self.drive(a);
        }
        while let Some(i) = self.sims[a].answers.iter().position(|x| x.0 <= now) {
            let (_, token, msg) = self.sims[a].answers.remove(i);
            let s = &mut self.sims[a];
            let before = s.agent.stats();
            let r = s.agent.task_result(Instant(now), &token, task_status::OK, &msg);
            check_push_delta(a, now, &before, &s.agent.stats(), r, s.plan.cfg.ring.policy);
            // Documented: a long message is truncated; only a token too long
            // to fit is refused as too large (ours are short).
            assert_ne!(r, Err(PushError::TooLarge), "t={now} agent {a}: task result of {} bytes refused", msg.len());
            if r.is_ok() {
                match s.answered.get(&token) {
                    None => {
                        s.answered.insert(token, (s.ord, msg));
                    }
                    Some(_) => s.reanswered.entry(token).or_default().push((s.ord, msg)),
                }
                s.ord += 1;
            }
            self.count_input(a);
            self.drive(a);
        }
        if self.sims[a].next_push <= now && now < self.fault_end {
            let burst = if self.rng.chance(30) { self.rng.range(5, 30) } else { 1 };
            for _ in 0..burst {
                let max_record = self.sims[a].plan.cfg.ring.max_record;
                let len = if self.rng.chance(20) {
                    max_record + self.rng.range_usize(1, 40)
                } else {
                    self.rng.range_usize(APP_HEADER, max_record)
                };
                let back = if self.rng.chance(100) { self.rng.range(0, 5000) } else { 0 };
                let s = &mut self.sims[a];
                let n = s.apps.len() as u64;
                let dt = APP_TYPE_BASE + (n % 50) as u32;
                let ts = now + s.plan.clock_offset - back;
                let payload = app_payload(a, n, len);
                let before = s.agent.stats();
                let r = s.agent.push(Instant(now), &Record::new(dt, ts, &payload));
                check_push_delta(a, now, &before, &s.agent.stats(), r, s.plan.cfg.ring.policy);
                s.apps.push(AppRec { data_type: dt, ts, len, ord: s.ord, accepted: r.is_ok() });
                if r.is_ok() {
                    s.ord += 1;
                }
                self.count_input(a);
                self.drive(a);
            }
            let gap = self.sims[a].plan.push_gap;
            self.sims[a].next_push = now + self.rng.range(1, 2 * gap);
        }
    }
}

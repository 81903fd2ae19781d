//! The app's turn on each agent: `reconnect_now` a while after a give-up,
//! task answers when due, pushes (sometimes in bursts, sometimes too large,
//! sometimes with timestamps going backwards) before the faults stop.

use agent_core::message::task_status;
use agent_core::ring::PushError;
use agent_core::{Instant, Record};

use super::World;
use crate::app::{app_payload, AppRec, APP_HEADER, APP_TYPE_BASE};
use crate::invariants::check_push_delta;

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
            let r = s.agent.task_result(Instant(now), token.as_str(), task_status::OK, &msg);
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

//! The final phase (issue 15, item 8): when the run would end, every task
//! still without a result at the collector is resent until it is answered.

use super::World;
use crate::app::ANSWER_DELAY_MAX;

/// Resends of one task in the final phase before it counts as unanswered.
pub(crate) const FINAL_RESENDS: u32 = 5;
/// Wait after a final-phase resend (plus two link latencies): the app's
/// answer delay, a flush interval (at most 200 ms) and room.
pub(crate) const FINAL_RESEND_WAIT: u64 = ANSWER_DELAY_MAX + 200 + 300;

impl<'a> World<'a> {
    /// The final phase (issue 15, item 8): when the run would end, every
    /// task still without a result at the collector is resent, one at a
    /// time per agent (a small ring holds one result at a time), until it is
    /// answered: at most [`FINAL_RESENDS`] times each, [`FINAL_RESEND_WAIT`]
    /// plus two link latencies apart. A result evicted (DropOldest) or
    /// refused (ring full) must not leave its task unanswered for good.
    pub(crate) fn final_phase(&mut self) {
        let now = self.now;
        let last = self.sims.iter().filter_map(|s| s.drained_at).max().unwrap();
        let tail = self.sims.iter().map(|s| s.plan.cfg.heartbeat_interval.as_millis()).max().unwrap() * 3 + 1000;
        let start = *self.final_start.get_or_insert(last + tail);
        if now < start {
            return;
        }
        if self.final_resend_at.is_none() {
            self.final_resend_at = Some(now);
            for s in &mut self.sims {
                s.final_due = Some(now);
            }
        }
        for a in 0..self.sims.len() {
            let Some(due) = self.sims[a].final_due else { continue };
            if due > now {
                continue;
            }
            let Some((token, p)) = self.server.checks[a].open.first().cloned() else {
                self.sims[a].final_due = None;
                continue;
            };
            let s = &mut self.sims[a];
            let tries = match &s.final_token {
                Some((t, n)) if *t == token => n + 1,
                _ => 1,
            };
            assert!(
                tries <= FINAL_RESENDS,
                "t={now} agent {a}: task {token} unanswered after {FINAL_RESENDS} resends in the final phase"
            );
            s.final_token = Some((token.clone(), tries));
            s.final_due = Some(now + FINAL_RESEND_WAIT + 2 * s.plan.lat_max());
            if let Some(id) = s.conn {
                self.server.checks[a].resent.insert(token);
                self.server.collector.push(id, &p);
                self.server_flush(id);
            }
        }
        if let Some(due) = self.sims.iter().filter_map(|s| s.final_due).max() {
            self.end = self.end.max(due + 1);
        }
    }
}

//! The drain (crate docs, *What is asserted*, Drain): once the faults stop
//! at `F`, every agent must be connected, with an empty ring and no answer
//! pending, within its bound `D`; once all are, the run's end is set and
//! the final phase begins.

use agent_core::agent::StateKind;

use super::World;

impl<'a> World<'a> {
    /// After `F`: every agent drains within its bound `D`; once all have,
    /// the run's end is set and the final phase begins.
    pub(crate) fn drain_checks(&mut self) {
        let now = self.now;
        if now < self.fault_end {
            return;
        }
        for (a, s) in self.sims.iter_mut().enumerate() {
            if s.backlog.is_none() {
                let c = s.conn.and_then(|id| self.conns.iter().find(|c| c.id == id));
                let k = c.map_or(0, |c| c.down_corruptions);
                s.backlog = Some(k);
                s.drain_bound += k * s.plan.liveness_cycle();
                // A naive collector neither closes a damaged connection nor
                // repeats acks: a batch or ack lost to corruption is then
                // found by the agent's ack timeout, once (the next
                // connection is clean).
                let damaged = c.is_some_and(|c| c.up_corrupted || c.down_corruptions > 0);
                if self.server.naive && damaged {
                    s.drain_bound += s.plan.cfg.ack_timeout.as_millis() + 2 * s.plan.lat_max() + 1;
                }
            }
            if s.drained_at.is_some() {
                continue;
            }
            // Bytes written before the faults stopped (a task, say) have all
            // arrived by `fault_end + lat_max`.
            let settled = now > self.fault_end + s.plan.lat_max();
            if settled && s.agent.state() == StateKind::Connected && s.agent.is_drained() && s.answers.is_empty() {
                s.drained_at = Some(now);
                continue;
            }
            let limit = self.fault_end + s.drain_bound;
            if now > limit {
                if let Some(c) = s.conn.and_then(|id| self.conns.iter().find(|c| c.id == id)) {
                    eprintln!(
                        "conn {}: agent_open {} server_open {} dead {} up_fin {} notify {:?} accepted {} up {} down {} \
                         corrupted {} next_unsolicited {}; agent poll_timeout {:?}, cfg {:?}",
                        c.id, c.agent_open, c.server_open, c.dead, c.up_fin, c.notify_at, c.accepted, c.up.q.len(),
                        c.down.q.len(), c.up_corrupted, c.next_unsolicited, s.agent.poll_timeout(), s.plan.cfg
                    );
                }
            }
            assert!(
                now <= limit,
                "t={now} agent {a}: not drained {} ms after the faults stopped (bound {} ms): state {:?}, ring {:?}, \
                 stats {:?}",
                now - self.fault_end,
                s.drain_bound,
                s.agent.state(),
                s.agent.ring(),
                s.agent.stats()
            );
        }
        if self.sims.iter().all(|s| s.drained_at.is_some()) {
            let last = self.sims.iter().filter_map(|s| s.drained_at).max().unwrap();
            let tail = self.sims.iter().map(|s| s.plan.cfg.heartbeat_interval.as_millis()).max().unwrap() * 3 + 1000;
            self.end = self.end.min(last + tail);
            self.final_phase();
        }
    }
}

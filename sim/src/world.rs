//! The world: every agent, the network, the faults and the collector on one
//! simulated millisecond clock, stepped from one event to the next (it
//! never steps or spins).
//!
//! The parts are state types with their own methods in the modules below
//! this one (`agent`, `link`, `faults`, `server`; the checks in
//! `invariants`). What one instant does to several parts at once is a step
//! of the world, grouped by the part it starts from in this module's
//! children:
//!
//! | module | the world's steps |
//! |---|---|
//! | `world/agent.rs` | boot, timeouts, the call order, events against the driver's model, connect outcomes |
//! | `world/app.rs` | the app's pushes, task answers and `reconnect_now` |
//! | `world/link.rs` | connections opened, writes delayed and damaged, deliveries, closes and cuts |
//! | `world/faults.rs` | how a fault acts when it starts |
//! | `world/server.rs` | the collector's input, its notes checked, its answers, tasks and configs |
//! | `world/drain.rs` | the drain bound after the faults stop |
//! | `world/final_phase.rs` | task resends at the end of a run |

mod agent;
mod app;
mod drain;
mod faults;
mod final_phase;
mod link;
mod server;

use crate::agent::Sim;
use crate::faults::Faults;
use crate::invariants::final_checks;
use crate::link::Conn;
use crate::rng::SplitMix;
use crate::server::Server;
use crate::summary::Summary;

/// Steps after which a run counts as not terminating.
pub(crate) const MAX_STEPS: u64 = 20_000_000;

/// Everything one seed's run holds. Bounds: at most [`MAX_STEPS`] steps;
/// the run ends at `end` (the drain bounds plus three heartbeat intervals
/// after the faults stop, moved by the drain and the final phase).
pub(crate) struct World<'a> {
    /// The agent whose inputs and outputs are printed (`EDGE_SIM_TRACE`).
    pub(crate) trace: Option<usize>,
    /// The run's generator (the seed's, after the fleet and faults were drawn).
    pub(crate) rng: SplitMix,
    /// The simulated clock, ms.
    pub(crate) now: u64,
    /// `F`: no fault starts or lasts past it; the drain is measured from it.
    pub(crate) fault_end: u64,
    /// When the run ends.
    pub(crate) end: u64,
    /// When the final phase starts (the run's end without it) and when it
    /// started: every task still without a result is resent, one at a time
    /// per agent, until it is answered.
    pub(crate) final_start: Option<u64>,
    pub(crate) final_resend_at: Option<u64>,
    /// Steps taken (one per instant at which something was due).
    pub(crate) steps: u64,
    /// Every fault of the run, by start time, and which have started.
    pub(crate) faults: Faults,
    /// The agents.
    pub(crate) sims: Vec<Sim<'a>>,
    /// The collector and what is checked about it.
    pub(crate) server: Server<'a>,
    /// Connections still holding anything (open on a side, bytes in flight, a notice due).
    pub(crate) conns: Vec<Conn>,
    pub(crate) next_conn_id: u64,
    /// The buffer `poll_transmit` writes frames into.
    pub(crate) tx: Vec<u8>,
}

impl<'a> World<'a> {
    /// `EDGE_SIM_TRACE=<agent>` prints that agent's inputs and outputs.
    pub(crate) fn trace(&self, a: usize, what: std::fmt::Arguments<'_>) {
        if self.trace == Some(a) {
            println!("t={} agent {a}: {what}", self.now);
        }
    }

    /// Steps until the end, then checks the end-of-run invariants.
    pub(crate) fn run(&mut self) {
        loop {
            let t = self.next_time();
            if t > self.end {
                break;
            }
            assert!(t >= self.now, "time went backwards: {t} < {}", self.now);
            self.now = t;
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "simulation does not terminate (t={t})");
            self.step();
        }
        final_checks(self.now, &self.sims, &self.server.checks, self.final_resend_at);
    }

    /// Connection `id`, while it holds anything.
    pub(crate) fn conn(&self, id: u64) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    /// Connection `id`, mutable.
    pub(crate) fn conn_mut(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    /// The earliest instant at which anything is due (never before `now`).
    pub(crate) fn next_time(&self) -> u64 {
        let now = self.now;
        let mut t = u64::MAX;
        let mut at = |x: u64| t = t.min(x.max(now));
        for s in &self.sims {
            if !s.booted {
                at(s.plan.boot);
                continue;
            }
            if let Some(x) = s.agent.poll_timeout() {
                at(x.as_millis());
            }
            if let Some((x, _)) = s.attempt {
                at(x);
            }
            if let Some(x) = s.reconnect_at {
                at(x);
            }
            if s.next_push < self.fault_end {
                at(s.next_push);
            }
            for (x, _, _) in &s.answers {
                at(*x);
            }
            if s.drained_at.is_none() {
                at(self.fault_end + s.drain_bound + 1);
            }
            if let Some(x) = s.final_due {
                at(x);
            }
        }
        for c in &self.conns {
            if let Some(x) = c.notify_at {
                at(x);
            }
            if let Some(x) = c.up.head() {
                at(x);
            }
            if let Some(x) = c.down.head() {
                at(x);
            }
            if c.accepted && c.server_open && !c.dead && c.next_unsolicited < self.fault_end {
                at(c.next_unsolicited);
            }
        }
        if let Some(x) = self.faults.next_start() {
            at(x);
        }
        if let (Some(x), None) = (self.final_start, self.final_resend_at) {
            at(x);
        }
        at(self.end.saturating_add(1));
        t
    }

    /// Everything due at `now`: boots, timers, faults, connects, deliveries,
    /// the apps; then the drain checks.
    pub(crate) fn step(&mut self) {
        let now = self.now;
        for a in 0..self.sims.len() {
            if !self.sims[a].booted && self.sims[a].plan.boot <= now {
                self.boot(a);
            }
        }
        // Timers first, so that at one instant a due timer is seen before
        // other inputs (the backoff model relies on this order).
        for a in 0..self.sims.len() {
            let s = &self.sims[a];
            if s.booted && s.agent.poll_timeout().is_some_and(|x| x.as_millis() <= now) {
                self.timeout(a);
            }
        }
        while let Some(f) = self.faults.start_due(now) {
            self.apply_fault(f);
        }
        for a in 0..self.sims.len() {
            if self.sims[a].attempt.is_some_and(|(x, _)| x <= now) {
                self.resolve_attempt(a);
            }
        }
        let ids: Vec<u64> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            self.conn_step(id);
        }
        for a in 0..self.sims.len() {
            self.app_step(a);
        }
        self.conns.retain(|c| {
            c.agent_open || c.server_open || c.notify_at.is_some() || !c.up.q.is_empty() || !c.down.q.is_empty()
        });
        self.drain_checks();
    }

    /// What the run did.
    pub(crate) fn summary(&self) -> Summary {
        let mut sm = Summary {
            agents: self.sims.len() as u64,
            sim_ms: self.now,
            faults: self.faults.len() as u64,
            damaged_closes: self.server.collector.damaged_closes(),
            busy_rejects: self.server.collector.busy_rejects(),
            double_results: self.server.checks.iter().map(|c| c.double_results).sum(),
            replaced: self.server.collector.replaced(),
            ..Default::default()
        };
        for s in &self.sims {
            let st = s.agent.stats();
            let store = self.server.collector.agent(s.name);
            sm.connections += st.connections;
            sm.failures += st.connect_failures;
            sm.records += store.records.len() as u64;
            sm.dups += store.dups;
            sm.gaps += store.gaps;
            sm.evicted += st.dropped_evicted;
            sm.refused += st.dropped_full;
            let d = s.drained_at.unwrap_or(self.now) - self.fault_end;
            sm.max_drain_ms = sm.max_drain_ms.max(d);
            sm.max_drain_permille = sm.max_drain_permille.max(d * 1000 / s.drain_bound);
            sm.max_timeouts_per_sec = sm.max_timeouts_per_sec.max(s.max_timeouts_per_sec);
            sm.max_polls_per_sec = sm.max_polls_per_sec.max(s.max_polls_per_sec);
        }
        sm
    }
}

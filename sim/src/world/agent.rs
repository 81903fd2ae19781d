//! The driver of the agents under test: boot, `handle_timeout` within the
//! busy-loop bounds, the documented call order after every input (one
//! input, then `poll_transmit` until 0, then `poll_event` until `None`,
//! then `poll_timeout`), each event checked against the driver's model
//! (backoff, endpoints, resume point, task routing) and acted on as the app
//! would, and connect outcomes.

use agent_core::agent::StateKind;
use agent_core::events::{DisconnectReason, TaskTarget, TransportError};
use agent_core::message::CloseCode;
use agent_core::Instant;

use super::World;
use crate::agent::Ev;
use crate::app::{ANSWER_DELAY_MAX, PLUGIN_NAMES, PRODUCT};
use crate::backoff_model::expected_ceiling;
use crate::invariants::{check_agent, MAX_FRAMES_PER_ROUND, SAME_INSTANT_TIMEOUTS};
use crate::link::Dir;

impl<'a> World<'a> {
    /// The agent starts: clock offset set, first timeout handled.
    pub(crate) fn boot(&mut self, a: usize) {
        let now = self.now;
        let s = &mut self.sims[a];
        s.booted = true;
        s.agent.set_clock_offset(s.plan.clock_offset as i64);
        s.expect_connect = Some(now);
        s.next_push = now + s.plan.push_gap;
        self.timeout(a);
    }

    /// Counts one input of agent `a` for the busy-loop bounds.
    pub(crate) fn count_input(&mut self, a: usize) {
        self.sims[a].count_input(self.now);
    }

    /// `handle_timeout` at `now`, checked against the busy-loop bounds.
    pub(crate) fn timeout(&mut self, a: usize) {
        self.trace(a, format_args!("timeout"));
        let now = self.now;
        let s = &mut self.sims[a];
        s.roll_bucket(now);
        if s.instant == now {
            s.instant_timeouts += 1;
            assert!(
                s.instant_timeouts <= SAME_INSTANT_TIMEOUTS,
                "t={now} agent {a}: busy loop: poll_timeout() stays at {:?} after {} handle_timeout calls at this \
                 instant (state {:?}, ring {:?})",
                s.agent.poll_timeout(),
                s.instant_timeouts - 1,
                s.agent.state(),
                s.agent.ring()
            );
        } else {
            s.instant = now;
            s.instant_timeouts = 1;
        }
        s.bucket_timeouts += 1;
        s.max_timeouts_per_sec = s.max_timeouts_per_sec.max(s.bucket_timeouts);
        let bound = 16 + 1000 / s.plan.cfg.flush_interval.as_millis() + 2 * (s.bucket_inputs + s.prev_bucket_inputs);
        assert!(
            s.bucket_timeouts <= bound,
            "t={now} agent {a}: {} handle_timeout calls this second, bound {bound}",
            s.bucket_timeouts
        );
        s.agent.handle_timeout(Instant(now));
        self.drive_checked(a, true);
    }

    /// The documented outputs after an input: transmit until 0, then events.
    pub(crate) fn drive(&mut self, a: usize) {
        self.drive_checked(a, false)
    }

    /// `drive`; after a `handle_timeout` (`timed_out`) also checks the timer
    /// invariant: once the transmits are drained, no timer is due at `now`.
    pub(crate) fn drive_checked(&mut self, a: usize, timed_out: bool) {
        let now = self.now;
        let mut frames = 0;
        loop {
            let n = self.sims[a].agent.poll_transmit(Instant(now), &mut self.tx);
            let s = &mut self.sims[a];
            s.roll_bucket(now);
            s.bucket_polls += 1;
            s.max_polls_per_sec = s.max_polls_per_sec.max(s.bucket_polls);
            let rounds = s.bucket_timeouts + s.bucket_inputs;
            assert!(
                s.bucket_polls <= (MAX_FRAMES_PER_ROUND as u64 + 1) * rounds,
                "t={now} agent {a}: {} poll_transmit calls this second for {rounds} inputs",
                s.bucket_polls
            );
            if n == 0 {
                break;
            }
            frames += 1;
            let s = &self.sims[a];
            assert!(frames <= MAX_FRAMES_PER_ROUND, "t={now} agent {a}: more than {MAX_FRAMES_PER_ROUND} frames in one round");
            if s.agent.state() == StateKind::Connected {
                assert!(n <= self.server.max_frame, "t={now} agent {a}: {n}-byte frame, collector max {}", self.server.max_frame);
            }
            let Some(id) = s.conn else {
                panic!("t={now} agent {a}: wrote a frame with no transport up (state {:?})", s.agent.state())
            };
            let bytes = self.tx[..n].to_vec();
            self.trace(a, format_args!("tx kind {} len {n} state {:?}", bytes[3], self.sims[a].agent.state()));
            self.send(id, Dir::Up, bytes);
        }
        if timed_out {
            let agent = &self.sims[a].agent;
            if let Some((timer, at)) = agent.next_timer() {
                assert!(
                    at > Instant(now),
                    "t={now} agent {a}: timer {timer:?} still due at {at:?} after handle_timeout and poll_transmit \
                     (state {:?}, ring {:?})",
                    agent.state(),
                    agent.ring()
                );
            }
        }
        let mut evs = Vec::new();
        while let Some(ev) = self.sims[a].agent.poll_event() {
            evs.push(Ev::from(&ev));
        }
        // The state after the round; an event followed by a Disconnect in
        // the same round (say Connected, then a Close in the same chunk)
        // describes a state already left.
        let last_disconnect = evs.iter().rposition(|e| matches!(e, Ev::Disconnect(_)));
        for (i, ev) in evs.into_iter().enumerate() {
            self.trace(a, format_args!("event {ev:?}"));
            let superseded = last_disconnect.is_some_and(|d| d > i);
            self.on_event(a, ev, superseded);
        }
        check_agent(a, now, &mut self.sims[a], &self.server.collector, self.final_resend_at.is_some());
    }

    /// Checks one event against the state and the driver's model, and acts
    /// on it as the app would (`superseded`: a later Disconnect of the same
    /// round already left the state it describes).
    pub(crate) fn on_event(&mut self, a: usize, ev: Ev, superseded: bool) {
        let now = self.now;
        let state = self.sims[a].agent.state();
        match ev {
            Ev::Connect(e) => {
                let s = &mut self.sims[a];
                assert!(superseded || state == StateKind::Connecting, "t={now} agent {a}: Connect event in state {state:?}");
                assert!(s.conn.is_none() && s.attempt.is_none(), "t={now} agent {a}: Connect while a transport is open");
                assert_eq!(s.expect_connect, Some(now), "t={now} agent {a}: Connect not at the drawn backoff time");
                assert_eq!(e, s.ep, "t={now} agent {a}: Connect to an unexpected endpoint");
                s.expect_connect = None;
                let lat = s.plan.conn_lat;
                let at = now + self.rng.range(1, lat);
                self.sims[a].attempt = Some((at, e));
            }
            Ev::Disconnect(reason) => {
                if let Some(id) = self.sims[a].conn.take() {
                    self.close_by_agent(id);
                }
                let s = &mut self.sims[a];
                s.attempt = None;
                if s.drained_at.is_some() {
                    s.failures_after_drain += 1;
                }
                assert_ne!(reason, DisconnectReason::Shutdown, "t={now} agent {a}: nobody called close()");
                let reject = if reason == DisconnectReason::Rejected {
                    Some(s.reject_retry.take().unwrap_or_else(|| panic!("t={now} agent {a}: Rejected without a Reject")))
                } else {
                    None
                };
                let c = s.plan.cfg;
                if let Some(since) = s.connected_since.take() {
                    // One halving per healthy period the connection lived.
                    let periods = (now - since) / c.healthy_after.as_millis();
                    for _ in 0..periods.min(64) {
                        s.failures /= 2;
                    }
                    if periods > 0 {
                        s.consecutive = 0;
                        s.ep_fail = 0;
                        s.failing_since = None;
                    }
                }
                s.failures += 1;
                s.consecutive += 1;
                let give_up = c.backoff.give_up_after;
                if give_up != 0 && s.consecutive >= give_up {
                    assert_eq!(s.agent.last_retry(), None, "t={now} agent {a}: retry drawn past the give-up limit");
                    s.expect_gaveup = true;
                } else {
                    let failing_for = now - *s.failing_since.get_or_insert(now);
                    let failed_ep = s.ep;
                    s.ep_fail += 1;
                    if s.ep_fail >= c.backoff.attempts_per_endpoint {
                        s.ep_fail = 0;
                        s.ep = (s.ep + 1) % c.backoff.endpoints;
                    }
                    let r = s.agent.last_retry().unwrap_or_else(|| panic!("t={now} agent {a}: failure without a retry"));
                    let ceiling = expected_ceiling(&c.backoff, s.failures, failing_for, s.advice);
                    assert_eq!(
                        r.ceiling.as_millis(),
                        ceiling,
                        "t={now} agent {a}: ceiling at weight {}, {failing_for} ms failing, advice {}",
                        s.failures,
                        s.advice
                    );
                    assert!(r.delay <= r.ceiling, "t={now} agent {a}: delay {:?} above ceiling {:?}", r.delay, r.ceiling);
                    assert_eq!(r.endpoint, s.ep, "t={now} agent {a}: endpoint rotation");
                    // A Reject's retry_after applies only to a retry of the
                    // same endpoint: a Busy one is a slot, kept exactly
                    // (within 50 ms .. cap), any other a minimum (at most cap).
                    let cap = c.backoff.cap.as_millis();
                    let wait = match reject {
                        Some((code, ra)) if s.ep == failed_ep && code == CloseCode::Busy as u16 && ra > 0 => {
                            u64::from(ra).clamp(50, cap)
                        }
                        Some((_, ra)) if s.ep == failed_ep => r.delay.as_millis().max(u64::from(ra).min(cap)),
                        _ => r.delay.as_millis(),
                    };
                    s.expect_connect = Some(now + wait);
                }
            }
            Ev::Connected(e) => {
                assert!(superseded || state == StateKind::Connected, "t={now} agent {a}: Connected event in state {state:?}");
                let s = &self.sims[a];
                let id = s.conn.unwrap_or_else(|| panic!("t={now} agent {a}: Connected without a transport"));
                let c = self.conn(id).unwrap();
                assert_eq!(c.endpoint, e, "t={now} agent {a}: Connected to another endpoint");
                assert!(
                    s.agent.ring().first_unacked_seq() >= c.accept_next,
                    "t={now} agent {a}: resume point {} not applied: {:?}",
                    c.accept_next,
                    s.agent.ring()
                );
                let advice = self.server.collector.retry_window_ms();
                let s = &mut self.sims[a];
                s.connected_since = Some(now);
                s.advice = advice;
            }
            Ev::Task { target, object, token } => {
                let s = &mut self.sims[a];
                let want = if object.is_empty() || object == PRODUCT {
                    TaskTarget::Agent
                } else {
                    let k = PLUGIN_NAMES[..s.plan.plugins].iter().position(|p| *p == object);
                    let k = k.unwrap_or_else(|| panic!("t={now} agent {a}: task for unknown {object:?} delivered"));
                    TaskTarget::Plugin(s.plugin_ids[k])
                };
                assert_eq!(target, want, "t={now} agent {a}: task routed wrong");
                let due = now + self.rng.range(0, ANSWER_DELAY_MAX);
                let mut msg = String::new();
                for _ in 0..self.rng.range(0, 150) {
                    msg.push(if self.rng.chance(100) { 'é' } else { 'x' });
                }
                self.sims[a].answers.push((due, token, msg));
            }
            Ev::Shutdown => panic!("t={now} agent {a}: Shutdown event, but no shutdown task was sent"),
            Ev::Config => {}
            Ev::Delivered { acked_total, first_unacked } => {
                let s = &mut self.sims[a];
                assert_eq!(acked_total, s.agent.stats().acked, "t={now} agent {a}: Delivered total");
                assert_eq!(first_unacked, s.agent.ring().first_unacked_seq());
                assert!(acked_total > s.last_delivered, "t={now} agent {a}: Delivered without new acks");
                s.last_delivered = acked_total;
            }
            Ev::GaveUp => {
                let s = &mut self.sims[a];
                assert_eq!(state, StateKind::GaveUp, "t={now} agent {a}: GaveUp event in state {state:?}");
                assert!(s.expect_gaveup, "t={now} agent {a}: gave up after {} failures", s.failures);
                s.expect_gaveup = false;
                s.reconnect_at = Some(now + s.plan.gaveup_delay);
            }
        }
    }

    /// A connect attempt's outcome is due: refused, black-holed or connected.
    pub(crate) fn resolve_attempt(&mut self, a: usize) {
        let now = self.now;
        let (_, endpoint) = self.sims[a].attempt.take().unwrap();
        self.count_input(a);
        match self.faults.refused(a, endpoint, now) {
            Some(true) => {} // black hole: the agent's connect_timeout decides
            Some(false) => {
                self.sims[a].agent.handle_disconnected(Instant(now), TransportError::Refused);
                self.drive(a);
            }
            None => {
                let id = self.open_conn(a, endpoint);
                let s = &mut self.sims[a];
                s.conn = Some(id);
                s.reject_retry = None;
                s.agent.handle_connected(Instant(now));
                self.drive(a);
            }
        }
    }
}

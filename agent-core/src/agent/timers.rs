//! The timer table: every deadline of the session has a name ([`Timer`],
//! in `timer.rs`), one place computes it (`Core::deadline`), `handle_timeout` fires the
//! due ones and `poll_timeout` reports the earliest. What a timer does when
//! it fires lives with its subject: the heartbeat records in `heartbeat.rs`,
//! the batch (and its window) in `batch.rs`.
//!
//! Invariant (tested after every step of the fleet simulation): after
//! `handle_timeout(now)` and draining `poll_transmit(now)`, no timer is due
//! at `now`: `poll_timeout()` is later, and [`super::Agent::next_timer`]
//! names the timer it is.

use super::*;

impl Core<'_> {
    /// When `timer` fires; `None` when it is not running.
    pub(super) fn deadline(&self, timer: Timer) -> Option<Instant> {
        let c = &self.cfg;
        // Each running timer is a start instant plus an interval.
        let (from, after) = match (timer, self.state) {
            (Timer::Reconnect, State::Backoff { until, .. }) => (until, Duration::ZERO),
            (Timer::ConnectTimeout, State::Connecting { deadline, .. })
            | (Timer::HandshakeTimeout, State::Handshaking { deadline, .. }) => (deadline, Duration::ZERO),
            (Timer::Idle, State::Connected { .. }) if self.ping.is_none() => {
                // Blocked: longer by the pong timeout. Added to the instant
                // (both saturate: the same sum) by the one shared `add`.
                let from = if self.blocked { self.last_rx + c.pong_timeout } else { self.last_rx };
                (from, c.idle_timeout)
            }
            (Timer::PongTimeout, State::Connected { .. }) => (self.ping?.sent, c.pong_timeout),
            (Timer::AckTimeout, State::Connected { .. }) if self.ring.inflight_records() > 0 => {
                (self.ack_progress, c.ack_timeout)
            }
            // Running until the first healthy period ends, then while there
            // is failure weight left to halve.
            (Timer::Healthy, State::Connected { decay_at, healthy, .. }) if !healthy || self.backoff.weight() > 0 => {
                (decay_at, Duration::ZERO)
            }
            // "Send now" is not a timer: a blocked transport stops it.
            (Timer::Flush, State::Connected { .. }) if !self.blocked => return self.flush_deadline(),
            (Timer::Heartbeat, state) if !matches!(state, State::Closed) && self.heartbeat_armed => {
                (self.next_heartbeat, Duration::ZERO)
            }
            _ => return None,
        };
        Some(from + after)
    }

    /// The earliest running timer and its deadline.
    pub(super) fn next_timer(&self) -> Option<(Timer, Instant)> {
        let mut next: Option<(Timer, Instant)> = None;
        // By reference: read from flash, not copied to the stack first.
        for &t in &Timer::ALL {
            // Strictly earlier: of timers due together, the first in `ALL`.
            if let Some(at) = self.deadline(t) {
                if next.is_none_or(|(_, best)| at < best) {
                    next = Some((t, at));
                }
            }
        }
        next
    }

    /// When `handle_timeout` must be called next.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(_, at)| at)
    }

    /// Fires every timer due at `now`, again and again until none is (one
    /// firing can arm another for the same instant: a connect timeout with a
    /// zero backoff draw makes the next attempt due at once). Each firing
    /// moves its timer past `now` or stops it, so this ends; the bound is a
    /// second guard.
    pub(super) fn on_timeout(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        for _ in 0..2 * Timer::ALL.len() {
            let due = Timer::ALL
                .iter()
                .copied()
                .filter(|t| self.blocked || !t.is_transmit())
                .find(|&t| self.deadline(t).is_some_and(|at| at <= now));
            match due {
                Some(timer) => self.fire(timer, now, decoder),
                None => return,
            }
        }
    }

    // Inlined into both callers (`on_timeout`, `heartbeat_tick`): as a call it
    // costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    fn fire(&mut self, timer: Timer, now: Instant, decoder: &FrameDecoder<'_>) {
        // The timeouts end in the one failure path, called once below, after
        // the one shrink step of those that shrink (`grow`).
        let (reason, close, grow) = match (timer, self.state) {
            (Timer::Reconnect, State::Backoff { endpoint, .. }) => {
                self.state = State::Connecting { endpoint, deadline: now + self.cfg.connect_timeout };
                self.close_pending = None;
                self.emit(Event::Connect { endpoint });
                return;
            }
            (Timer::ConnectTimeout, _) => (DisconnectReason::ConnectTimeout, None, false),
            (Timer::HandshakeTimeout, _) => (DisconnectReason::HandshakeTimeout, Some(CloseCode::Timeout), false),
            (Timer::Healthy, State::Connected { endpoint, decay_at, healthy }) => {
                self.backoff.on_healthy_period();
                if !healthy {
                    // A healthy connection wins back one step of batch size.
                    self.shrink = self.shrink.saturating_sub(1);
                }
                self.state = State::Connected { endpoint, decay_at: decay_at + self.cfg.healthy_after, healthy: true };
                return;
            }
            (Timer::AckTimeout, _) => {
                // Either a batch or an ack was lost, or the link is too slow
                // to carry a window within `ack_timeout`: the next connection
                // sends half the batch and half the window.
                self.stats.ack_timeouts += 1;
                (DisconnectReason::AckTimeout, Some(CloseCode::Timeout), true)
            }
            // Only while blocked (otherwise `poll_transmit` serves it): no
            // sign of life for as long as a Ping and its Pong may take.
            (Timer::Idle, _) => (DisconnectReason::PongTimeout, Some(CloseCode::Timeout), false),
            (Timer::PongTimeout, _) => {
                let sent = self.ping.map_or(now, |p| p.sent);
                if self.last_rx > sent {
                    // The peer is alive; the pong is just late or lost.
                    self.ping = None;
                    return;
                }
                // With records in flight the Ping may just be queued
                // behind them on a slow link: shrink too.
                (DisconnectReason::PongTimeout, Some(CloseCode::Timeout), self.ring.inflight_records() > 0)
            }
            (Timer::Heartbeat, _) => {
                let due = if self.heartbeat_armed { self.next_heartbeat } else { now };
                self.heartbeat(now, decoder);
                let next = due + self.cfg.heartbeat_interval;
                // After a long stall, one heartbeat, not a burst.
                self.next_heartbeat = if next > now { next } else { now + self.cfg.heartbeat_interval };
                self.heartbeat_armed = true;
                return;
            }
            // `deadline` runs each timer only in the states above, and the
            // transmit timers are not fired here.
            _ => return,
        };
        if grow {
            self.shrink = (self.shrink + 1).min(MAX_SHRINK);
        }
        self.fail(now, reason, close, Hold::None);
    }

    /// Pushes a heartbeat now (the heartbeat timer, or `heartbeat_now`).
    pub(super) fn heartbeat_tick(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        if self.heartbeat_armed && now >= self.next_heartbeat && !matches!(self.state, State::Closed) {
            self.fire(Timer::Heartbeat, now, decoder);
        }
    }

    /// When pending records must be flushed, if the window lets a batch go.
    pub(super) fn flush_deadline(&self) -> Option<Instant> {
        let since = self.pending_since?;
        if self.ring.pending_records() == 0 || !self.window_open() {
            return None;
        }
        if self.ring.has_resends() || self.flush_requested {
            // Records awaiting resend, or a `flush_now`, go at once.
            return Some(self.clock.now());
        }
        Some(since + self.cfg.flush_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The idle deadline while blocked adds the pong timeout to the instant
    /// rather than to the idle timeout: both additions saturate, so the
    /// deadline is the one the old form (`idle + pong` saturated, then
    /// added) gave, at every boundary.
    #[test]
    fn blocked_idle_deadline_sums_as_before() {
        let edges = [0, 1, 1_000, u64::MAX / 2, u64::MAX / 2 + 1, u64::MAX - 1, u64::MAX];
        for rx in edges {
            for idle in edges {
                for pong in edges {
                    let old = Instant(rx) + Duration(idle.saturating_add(pong));
                    let new = Instant(rx) + Duration(pong) + Duration(idle);
                    assert_eq!(new, old, "{rx} {idle} {pong}");
                }
            }
        }
    }
}

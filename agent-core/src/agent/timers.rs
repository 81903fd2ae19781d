//! Timers: what `handle_timeout` fires and what `poll_timeout` reports,
//! and the heartbeats they push.

use super::*;

impl Core<'_> {
    pub(super) fn on_timeout(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        match self.state {
            State::Backoff { until, endpoint } if now >= until => {
                self.state = State::Connecting { endpoint, deadline: now + self.cfg.connect_timeout };
                self.close_pending = None;
                self.emit(Event::Connect { endpoint });
            }
            State::Connecting { deadline, .. } if now >= deadline => {
                self.fail(now, DisconnectReason::ConnectTimeout, None, Duration::ZERO);
            }
            State::Handshaking { deadline, .. } if now >= deadline => {
                self.fail(now, DisconnectReason::HandshakeTimeout, Some(CloseCode::Timeout), Duration::ZERO);
            }
            State::Connected { endpoint, since, healthy } => {
                if !healthy && now >= since + self.cfg.healthy_after {
                    self.backoff.reset();
                    // A healthy connection wins back one step of batch size.
                    self.shrink = self.shrink.saturating_sub(1);
                    self.state = State::Connected { endpoint, since, healthy: true };
                }
                if self.ring.inflight_records() > 0 && now >= self.ack_progress + self.cfg.ack_timeout {
                    // Either a batch or an ack was lost, or the link is too
                    // slow to carry a window within `ack_timeout`: the next
                    // connection sends half the batch and half the window.
                    self.stats.ack_timeouts += 1;
                    self.shrink = (self.shrink + 1).min(MAX_SHRINK);
                    self.fail(now, DisconnectReason::AckTimeout, Some(CloseCode::Timeout), Duration::ZERO);
                    return self.heartbeat_tick(now, decoder);
                }
                if let Some(p) = self.ping {
                    if now >= p.sent + self.cfg.pong_timeout {
                        if self.last_rx > p.sent {
                            // The peer is alive; the pong is just late or lost.
                            self.ping = None;
                        } else {
                            // With records in flight the Ping may just be
                            // queued behind them on a slow link: shrink too.
                            if self.ring.inflight_records() > 0 {
                                self.shrink = (self.shrink + 1).min(MAX_SHRINK);
                            }
                            self.fail(now, DisconnectReason::PongTimeout, Some(CloseCode::Timeout), Duration::ZERO);
                        }
                    }
                }
            }
            _ => {}
        }
        self.heartbeat_tick(now, decoder);
    }

    pub(super) fn heartbeat_tick(&mut self, now: Instant, decoder: &FrameDecoder<'_>) {
        if let Some(due) = self.next_heartbeat {
            if now >= due && !matches!(self.state, State::Closed) {
                self.heartbeat(now, self.stats_with(decoder));
                let next = due + self.cfg.heartbeat_interval;
                self.next_heartbeat = Some(if next > now { next } else { now + self.cfg.heartbeat_interval });
            }
        }
    }

    pub(super) fn heartbeat(&mut self, now: Instant, lib: AgentStats) {
        let mut buf = [0u8; MAX_HEARTBEAT_LEN];
        let ts = self.wall();
        if let Some(bytes) = (AgentHeartbeat { host: self.host, lib }).encode(&mut buf) {
            let n = bytes.len();
            let _ = self.push(now, &Record::new(data_type::AGENT_HEARTBEAT, ts, &buf[..n]));
        }
        for i in 0..crate::plugin::MAX_PLUGINS {
            let Some(p) = self.plugins.iter().nth(i).copied() else { break };
            let phb = PluginHeartbeat { name: p.name, version: p.version, pid: p.pid, status: p.status };
            if let Some(n) = write_body(&phb, &mut buf) {
                let _ = self.push(now, &Record::new(data_type::PLUGIN_HEARTBEAT, ts, &buf[..n]));
            }
        }
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let state_timer = match self.state {
            State::Backoff { until, .. } => Some(until),
            State::Connecting { deadline, .. } | State::Handshaking { deadline, .. } => Some(deadline),
            State::Connected { since, healthy, .. } => {
                let mut t = match self.ping {
                    Some(p) => p.sent + self.cfg.pong_timeout,
                    None => self.last_rx + self.cfg.idle_timeout,
                };
                if !healthy {
                    t = t.min(since + self.cfg.healthy_after);
                }
                if self.ring.inflight_records() > 0 {
                    t = t.min(self.ack_progress + self.cfg.ack_timeout);
                }
                if let Some(flush) = self.flush_deadline() {
                    t = t.min(flush);
                }
                Some(t)
            }
            State::GaveUp => None,
            State::Closed => return None,
        };
        match (state_timer, self.next_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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

    /// True when the next pending record fits the unacked window (and a
    /// batch slot is free). Checked exactly, not just "window not full", so
    /// a flush deadline is never reported while nothing can be sent: that
    /// would make the caller's loop spin until the next ack.
    pub(super) fn window_open(&self) -> bool {
        let Some(next) = self.ring.next_pending_len() else { return false };
        self.ring.inflight_batches() < crate::ring::MAX_INFLIGHT_BATCHES
            && self.ring.inflight_bytes() + next <= self.window_limit()
    }


    /// The largest batch, in bytes of entries: `batch_max_bytes`, halved for
    /// every step of `shrink`, never below one record of `max_record`.
    pub(super) fn batch_limit(&self) -> usize {
        (self.cfg.batch_max_bytes >> self.shrink).max(max_entry(&self.cfg))
    }

    /// The unacked window, halved like the batch, never below one batch.
    pub(super) fn window_limit(&self) -> usize {
        (self.cfg.window_bytes >> self.shrink).max(self.batch_limit())
    }
}

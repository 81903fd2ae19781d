//! Transmit: which frame goes out next, and batches.

use super::*;

impl Core<'_> {
    pub(super) fn transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        if self.blocked {
            return 0;
        }
        let seq = self.tx_seq;
        let limit = out.len().min(match self.state {
            State::Connected { .. } => self.peer_max_frame as usize,
            _ => usize::MAX,
        });
        let out = &mut out[..limit];
        // A pending control frame stays pending until it was written, so a
        // too small `out` delays it rather than losing it.
        let written = if let Some(code) = self.close_pending {
            let r = write_frame(Kind::Close, seq, &Close { code: code as u16, reason: "" }, out);
            if r.is_ok() {
                self.close_pending = None;
            }
            r
        } else if !matches!(self.state, State::Handshaking { .. } | State::Connected { .. }) {
            return 0;
        } else if self.hello_pending {
            let id = self.id;
            let hello = Hello {
                agent_id: id.agent_id,
                hostname: id.hostname,
                product: id.product,
                version: id.version,
                intranet_ipv4: id.intranet_ipv4,
                intranet_ipv6: id.intranet_ipv6,
                extranet_ipv4: id.extranet_ipv4,
                extranet_ipv6: id.extranet_ipv6,
                auth_token: id.auth_token,
                first_unacked_seq: self.ring.first_unacked_seq(),
                next_seq: self.ring.next_seq(),
                max_frame: self.max_frame_rx,
                min_frame: min_peer_frame(&self.cfg),
            };
            let r = write_frame(Kind::Hello, seq, &hello, out);
            self.hello_pending = r.is_err();
            r
        } else if let Some(nonce) = self.pong_pending {
            let r = write_frame(Kind::Pong, seq, &Pong { nonce }, out);
            if r.is_ok() {
                self.pong_pending = None;
            }
            r
        } else if !matches!(self.state, State::Connected { .. }) {
            return 0;
        } else if self.ping.is_none() && now >= self.last_rx + self.cfg.idle_timeout {
            let nonce = self.rng.next_u64();
            let r = write_frame(Kind::Ping, seq, &Ping { nonce }, out);
            if r.is_ok() {
                self.ping = Some(PingState { nonce, sent: now });
            }
            r
        } else {
            return self.transmit_batch(now, out);
        };
        match written {
            Ok(n) => self.sent(n),
            Err(_) => 0,
        }
    }

    pub(super) fn transmit_batch(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let pending = self.ring.pending_records();
        if pending == 0 || !self.window_open() {
            return 0;
        }
        let room = out.len().saturating_sub(OVERHEAD + BATCH_HEADER_MAX);
        let window = self.window_limit().saturating_sub(self.ring.inflight_bytes());
        let max_bytes = self.batch_limit().min(room).min(window.max(1));
        // Decide before planning (planning walks the batch's records): a
        // batch is full when the records pending would not fit one batch
        // with room for one more record of the largest size.
        let full = pending >= u64::from(self.cfg.batch_max_records)
            || self.ring.pending_bytes() + max_entry(&self.cfg) > max_bytes;
        let resend = self.ring.has_resends();
        let due = self.flush_requested || self.pending_since.is_some_and(|s| now >= s + self.cfg.flush_interval);
        if !(full || resend || due) {
            return 0;
        }
        let Some(plan) = self.ring.plan_batch(max_bytes, self.cfg.batch_max_records) else { return 0 };
        let seq = self.tx_seq;
        let ring = &self.ring;
        let written = frame::encode_with(Kind::Batch, 0, seq, out, |body| {
            let mut n = 0;
            for v in [plan.first_seq, plan.base_ts, u64::from(plan.count), plan.len as u64] {
                n += varint::encode_u64(v, body.get_mut(n..)?)?;
            }
            let dst = body.get_mut(n..n + plan.len)?;
            ring.copy_batch(&plan, dst).then_some(n + plan.len)
        });
        let Ok(n) = written else { return 0 };
        if self.ring.inflight_records() == 0 {
            self.ack_progress = now;
        }
        self.ring.commit_batch(&plan);
        if self.ring.pending_records() == 0 {
            self.pending_since = None;
            self.flush_requested = false;
        }
        self.sent(n)
    }

    pub(super) fn sent(&mut self, n: usize) -> usize {
        self.tx_seq = self.tx_seq.wrapping_add(1);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        n
    }
}

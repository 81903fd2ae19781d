//! Transmit: which frame goes out next (batches are built in `batch.rs`).

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
            let r = write_frame(Kind::Close, seq, &Close { code: code as u16, reason: Text::default() }, out);
            if r.is_ok() {
                self.close_pending = None;
            }
            r
        } else if !matches!(self.state, State::Handshaking { .. } | State::Connected { .. }) {
            return 0;
        } else if self.hello_pending {
            let id = self.id;
            let hello = Hello {
                agent_id: Text::new(id.agent_id),
                hostname: Text::new(id.hostname),
                product: Text::new(id.product),
                version: Text::new(id.version),
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

    pub(super) fn sent(&mut self, n: usize) -> usize {
        self.tx_seq = self.tx_seq.wrapping_add(1);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        n
    }
}

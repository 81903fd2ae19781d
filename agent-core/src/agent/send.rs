//! Transmit: which frame goes out next (batches are built in `batch.rs`).

use super::*;
use crate::wire::codec::BodyWriter;
use crate::wire::frame::EncodeError;

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
            let r = self.write_hello(seq, out);
            self.hello_pending = r.is_err();
            r
        } else {
            // A Pong owed, else a Ping due: Ping and Pong have the same
            // body (the nonce), written by one call.
            let (kind, nonce) = if let Some(nonce) = self.pong_pending {
                (Kind::Pong, nonce)
            } else if !matches!(self.state, State::Connected { .. }) {
                return 0;
            } else if self.ping.is_none() && now >= self.last_rx + self.cfg.idle_timeout {
                (Kind::Ping, self.rng.next_u64())
            } else {
                return self.transmit_batch(now, out);
            };
            let r = write_frame(kind, seq, &Ping { nonce }, out);
            if r.is_ok() {
                if kind == Kind::Pong {
                    self.pong_pending = None;
                } else {
                    self.ping = Some(PingState { nonce, sent: now });
                }
            }
            r
        };
        match written {
            Ok(n) => self.sent(n),
            Err(_) => 0,
        }
    }

    /// Writes the Hello frame: the identity and the resume point, in
    /// [`Hello`](message::Hello)'s layout. Field by field from the identity: a `Hello` value
    /// would first gather every field on the stack, as the output may alias
    /// the agent (the C API's buffers) and the writes could change them.
    fn write_hello(&self, seq: u32, out: &mut [u8]) -> Result<usize, EncodeError> {
        let min_frame = min_peer_frame(&self.cfg);
        frame::encode_with(Kind::Hello, 0, seq, out, |body| {
            let mut w = BodyWriter::new(body);
            let id = &self.id;
            // Strings go as their bytes.
            w.bytes(id.agent_id.as_bytes());
            w.bytes(id.hostname.as_bytes());
            w.bytes(id.product.as_bytes());
            w.bytes(id.version.as_bytes());
            w.bytes(id.intranet_ipv4);
            w.bytes(id.intranet_ipv6);
            w.bytes(id.extranet_ipv4);
            w.bytes(id.extranet_ipv6);
            w.bytes(id.auth_token);
            w.uint(self.ring.first_unacked_seq());
            w.uint(self.ring.next_seq());
            w.uint(u64::from(self.max_frame_rx));
            w.uint(u64::from(min_frame));
            w.fits().then_some(w.len())
        })
    }

    pub(super) fn sent(&mut self, n: usize) -> usize {
        self.tx_seq = self.tx_seq.wrapping_add(1);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        n
    }
}

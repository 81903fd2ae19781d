//! Transmit: which frame goes out next (batches are built in `batch.rs`).

use super::*;
use crate::wire::codec::BodyWriter;

/// The control frame `transmit` writes, when one is due.
#[derive(Clone, Copy)]
enum Control {
    /// `Close` with this code.
    Close(u16),
    /// The `Hello` of a new connection.
    Hello,
    /// `Pong` echoing this nonce.
    Pong(u64),
    /// `Ping` with this nonce.
    Ping(u64),
}

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
        // too small `out` delays it rather than losing it. One frame
        // encoder for the four control kinds: the body differs, the
        // framing does not.
        let ctl = if let Some(code) = self.close_pending {
            Control::Close(code as u16)
        } else if !matches!(self.state, State::Handshaking { .. } | State::Connected { .. }) {
            return 0;
        } else if self.hello_pending {
            Control::Hello
        } else if let Some(nonce) = self.pong_pending {
            // A Pong owed, else a Ping due: Ping and Pong have the same
            // body (the nonce).
            Control::Pong(nonce)
        } else if !matches!(self.state, State::Connected { .. }) {
            return 0;
        } else if self.ping.is_none() && now >= self.last_rx + self.cfg.idle_timeout {
            Control::Ping(self.rng.next_u64())
        } else {
            return self.transmit_batch(now, out);
        };
        let kind = match ctl {
            Control::Close(_) => Kind::Close,
            Control::Hello => Kind::Hello,
            Control::Pong(_) => Kind::Pong,
            Control::Ping(_) => Kind::Ping,
        };
        let written = frame::encode_with(kind, 0, seq, out, |body| {
            let mut w = BodyWriter::new(body);
            match ctl {
                // `Close`'s fields: the code, an empty reason (a string is
                // its length, then its bytes: here 0 and none).
                Control::Close(code) => {
                    w.uint(u64::from(code));
                    w.uint(0);
                }
                Control::Hello => self.write_hello(&mut w),
                // `Ping`'s and `Pong`'s one field.
                Control::Pong(nonce) | Control::Ping(nonce) => w.uint(nonce),
            }
            w.fits().then_some(w.len())
        });
        let Ok(n) = written else {
            return 0;
        };
        match ctl {
            Control::Close(_) => self.close_pending = None,
            Control::Hello => self.hello_pending = false,
            Control::Pong(_) => self.pong_pending = None,
            Control::Ping(nonce) => self.ping = Some(PingState { nonce, sent: now }),
        }
        self.sent(n)
    }

    /// Writes the Hello body: the identity and the resume point, in
    /// [`Hello`](message::Hello)'s layout. Field by field from the identity: a `Hello` value
    /// would first gather every field on the stack, as the output may alias
    /// the agent (the C API's buffers) and the writes could change them.
    fn write_hello(&self, w: &mut BodyWriter<'_>) {
        let min_frame = min_peer_frame(&self.cfg);
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
    }

    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    pub(super) fn sent(&mut self, n: usize) -> usize {
        self.tx_seq = self.tx_seq.wrapping_add(1);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        n
    }
}

//! Received frames: the downlink messages and what each does.

use super::*;
use crate::wire::codec::BodyReader;

impl Core<'_> {
    /// Handles one frame; returns the bytes of a frame skipped as left over
    /// from a previous stream, for the caller to count in the decoder's
    /// skipped bytes (the decoder is borrowed by `frame` here).
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    pub(super) fn on_frame(&mut self, now: Instant, frame: &Frame<'_>) -> usize {
        self.stats.frames_received += 1;
        self.last_rx = now;
        if frame.version != frame::VERSION {
            self.stats.peer_incompatible += 1;
            self.fail(now, DisconnectReason::Incompatible, Some(CloseCode::Incompatible), Hold::None);
            return 0;
        }
        let Some(kind) = Kind::from_u8(frame.kind) else {
            self.stats.unknown_kinds += 1;
            return 0;
        };
        if self.link == Link::Carrierless
            && matches!(self.state, State::Handshaking { .. })
            && !matches!(kind, Kind::Accept | Kind::Reject | Kind::Close)
        {
            // Left over from the previous stream: this one starts at our Hello.
            return frame::OVERHEAD + frame.body.len();
        }
        if self.on_message(now, kind, frame.body).is_err() {
            // A body that cannot be read, or a kind the agent must not get
            // in this state: the server broke the protocol.
            self.stats.malformed += 1;
            self.protocol_error(now, DisconnectReason::ProtocolError);
        }
        0
    }

    /// Ends the connection because the server broke the protocol:
    /// Close(ProtocolError), counted, reported in the `Disconnect` event.
    fn protocol_error(&mut self, now: Instant, reason: DisconnectReason) {
        self.stats.protocol_errors += 1;
        self.fail(now, reason, Some(CloseCode::ProtocolError), Hold::None);
    }

    /// Handles one downlink message. Only the kinds an agent can receive
    /// are decoded here, by the hand-written readers of [`crate::wire::codec`]. An
    /// error (unreadable body, or a kind unexpected in the current state)
    /// is a protocol error, which the caller turns into a Close.
    // Inlined into on_frame, its one caller (flash).
    #[inline(always)]
    pub(super) fn on_message(&mut self, now: Instant, kind: Kind, body: &[u8]) -> Result<(), DecodeError> {
        let handshaking = matches!(self.state, State::Handshaking { .. });
        let connected = matches!(self.state, State::Connected { .. });
        match kind {
            // Ping, Pong and Ack are one u64 each (nonce, nonce, `up_to`):
            // read by one call.
            Kind::Ping | Kind::Pong | Kind::Ack if kind != Kind::Ack || connected => {
                let mut r = BodyReader::new(body);
                let v = r.get_u64();
                let v = r.finish(v)?;
                match kind {
                    Kind::Ping => self.pong_pending = Some(v),
                    Kind::Pong => self.on_pong(now, v),
                    _ => self.on_ack(now, v),
                }
            }
            // The body (code and reason) is not read: even an unreadable
            // Close means the peer is going away.
            Kind::Close => self.fail(now, DisconnectReason::PeerClosed, None, Hold::None),
            // An Accept is an answer to our Hello: before the Hello went out
            // it answers nothing, which the unexpected-kind arm reports.
            Kind::Accept if handshaking && !self.hello_pending => {
                if let State::Handshaking { endpoint, .. } = self.state {
                    self.on_accept(now, endpoint, read_body(body)?);
                }
            }
            Kind::Reject if handshaking && !self.hello_pending => {
                let r = read_body::<message::Reject<'_>>(body)?;
                // Bounded by the backoff cap (a hostile or mistaken value
                // cannot park the agent for 49 days) and, for a Busy slot,
                // below by MIN_BUSY_WAIT (nor make it spin). Both are at
                // most `retry_after_ms` or MIN_BUSY_WAIT: they fit in u32.
                let cfg = &self.cfg.backoff;
                let hold = if r.code == CloseCode::Busy as u16 && r.retry_after_ms > 0 {
                    Hold::Exactly(Backoff::busy_slot(cfg, r.retry_after_ms).as_millis() as u32)
                } else {
                    Hold::AtLeast(Duration::from_millis(u64::from(r.retry_after_ms)).min(cfg.cap).as_millis() as u32)
                };
                self.fail(now, DisconnectReason::Rejected, None, hold);
            }
            Kind::Task if connected => self.on_task(now, read_body(body)?),
            Kind::Config if connected => self.on_config(read_body(body)?),
            _ => return Err(DecodeError::Malformed),
        }
        Ok(())
    }

    /// A Pong: an answer to the outstanding Ping gives the round trip; one
    /// answering none is harmless: ignored.
    fn on_pong(&mut self, now: Instant, nonce: u64) {
        if let Some(ping) = self.ping.filter(|ping| ping.nonce == nonce) {
            let rtt = now.saturating_since(ping.sent).as_millis();
            self.stats.last_rtt_ms = Some(u32::try_from(rtt).unwrap_or(u32::MAX));
            self.ping = None;
        }
    }

    /// An Ack of every record up to `up_to`.
    fn on_ack(&mut self, now: Instant, up_to: u64) {
        if up_to >= self.ring.next_seq() {
            // Acks a record never sent: nothing is freed on the word of a
            // server that cannot be right.
            self.protocol_error(now, DisconnectReason::ProtocolError);
        } else if self.ring.ack(up_to).acked > 0 {
            self.delivered_pending = true;
            self.ack_progress = now;
        }
    }

    pub(super) fn on_accept(&mut self, now: Instant, endpoint: u8, a: message::Accept) {
        // The server must take a batch holding the largest record (the agent
        // told it so in Hello.min_frame).
        if a.max_frame < min_peer_frame(&self.cfg) {
            self.stats.peer_incompatible += 1;
            self.fail(now, DisconnectReason::Incompatible, Some(CloseCode::Incompatible), Hold::None);
            return;
        }
        // A resume point the agent cannot have produced: above every number
        // it gave (two devices sharing an id, a collector mixing agents up),
        // unless the agent never numbered a record (it restarted and lost its
        // numbering: it continues from the server's point), or too close to
        // the end of the number space to go on from.
        let next = self.ring.next_seq();
        if a.next_seq > crate::ring::MAX_RESUME_SEQ || (a.next_seq > next && next != 0) {
            self.protocol_error(now, DisconnectReason::BadResume);
            return;
        }
        self.peer_max_frame = a.max_frame;
        self.ring.resume(a.next_seq);
        self.stats.connections += 1;
        self.backoff.set_advice(a.retry_window_ms);
        self.state = State::Connected { endpoint, decay_at: now + self.cfg.healthy_after, healthy: false };
        if self.ring.pending_records() > 0 {
            self.pending_since = Some(now);
        }
        self.emit(Event::Connected { endpoint });
    }

    pub(super) fn on_task(&mut self, now: Instant, t: message::Task<'_>) {
        // A server that saw no result (the connection dropped) resends the
        // task. Tokens are remembered as 64-bit hashes, the last 8 (with
        // whether the task was answered). A resend of a remembered task is
        // ignored while the app holds it (handed over, not answered) or
        // while its result is in the ring (it will be delivered), so the
        // task is not run twice; once the result left the ring without
        // reaching the server (evicted under DropOldest, refused) the
        // resend is handled afresh, or the task would go unanswered forever.
        let (h, slot) = self.recent_slot(t.token);
        if let Some(i) = slot {
            if self.recent_answered & (1 << i) == 0 || self.result_held(t.token) {
                self.stats.tasks_duplicate += 1;
                return;
            }
        }
        let for_agent = t.object_name.is_empty() || t.object_name == self.id.product;
        let target = if for_agent {
            Some(TaskTarget::Agent)
        } else {
            self.plugins.find(t.object_name).map(TaskTarget::Plugin)
        };
        // Not handed over: answered here, with why.
        let (handed_over, status, message) = if let Some(target) = target {
            let queued = if for_agent && t.data_type == data_type::SHUTDOWN_TASK {
                self.emit_droppable(Event::Shutdown { token: t.token })
            } else {
                self.emit_droppable(Event::Task {
                    target,
                    object_name: t.object_name,
                    data_type: t.data_type,
                    payload: t.payload,
                    token: t.token,
                })
            };
            (queued, task_status::DROPPED, "agent event queue full")
        } else {
            self.stats.tasks_unroutable += 1;
            (false, task_status::UNKNOWN_TARGET, "no such plugin")
        };
        if !handed_over {
            let _ = self.push_task_result(now, t.token, status, message);
        }
        if !t.token.is_empty() {
            let i = slot.unwrap_or_else(|| {
                let i = usize::from(self.recent_task_next);
                self.recent_task_next = ((i + 1) % RECENT_TASKS) as u8;
                i
            });
            self.recent_tasks[i] = h;
            // Handed over: the app answers; otherwise answered here.
            let bit = 1u8 << i;
            self.recent_answered = if handed_over { self.recent_answered & !bit } else { self.recent_answered | bit };
        }
    }

    /// Marks a remembered task as answered by the app.
    pub(super) fn note_answered(&mut self, token: Text<'_>) {
        if let (_, Some(i)) = self.recent_slot(token) {
            self.recent_answered |= 1 << i;
        }
    }

    /// The token's hash as remembered, and its slot if it is (an empty
    /// token is never remembered).
    // Out of line: shared by both callers instead of inlined twice (flash).
    #[inline(never)]
    fn recent_slot(&self, token: Text<'_>) -> (u64, Option<usize>) {
        let h = fnv1a(token).max(1);
        (h, self.recent_tasks.iter().position(|&k| k == h).filter(|_| !token.is_empty()))
    }

    /// Whether a TaskResult record for `token` is in the ring.
    fn result_held(&self, token: Text<'_>) -> bool {
        let mut len = [0u8; 2];
        result_prefix(token, &mut len).is_some_and(|(len, bytes)| self.ring.holds_parts(data_type::TASK_RESULT, len, bytes))
    }

    pub(super) fn on_config(&mut self, c: message::Config<'_>) {
        let (name, version) = (fnv1a(c.name), fnv1a(c.version));
        let slot = self.configs.iter().position(|(n, _)| *n == name);
        if let Some(i) = slot {
            if self.configs[i].1 == version {
                return;
            }
        }
        if self.emit_droppable(Event::Config { name: c.name, version: c.version, payload: c.payload }) {
            let i = slot.unwrap_or_else(|| {
                // Always below MAX_CONFIGS (only set here): the `%` changes
                // nothing but lets the compiler drop the bounds check.
                let v = usize::from(self.config_victim) % MAX_CONFIGS;
                self.config_victim = ((v + 1) % MAX_CONFIGS) as u8;
                v
            });
            self.configs[i] = (name, version);
        }
    }

}

/// The start of every TaskResult payload for `token` (the token as
/// TaskResult writes it: its length's varint, written into `len`, then its
/// bytes), as those two pieces; `None` when no result for `token` fits
/// [`MAX_TASK_RESULT_LEN`], not even with status 0 and an empty message
/// (one byte each).
fn result_prefix<'b, 't>(token: Text<'t>, len: &'b mut [u8; 2]) -> Option<(&'b [u8], &'t [u8])> {
    let bytes = token.as_bytes();
    let n = bytes.len();
    // The varint of a length below 2^7 is one byte, below 2^14 two; a
    // longer token does not fit (nor does the wrapped second byte matter).
    *len = [n as u8 | 0x80, (n >> 7) as u8];
    let len: &[u8] = if n < 0x80 {
        len[0] = n as u8;
        &len[..1]
    } else {
        len
    };
    (len.len() + n <= MAX_TASK_RESULT_LEN - 2).then_some((len, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::BodyWriter;

    /// The prefix as result_held took it before: a whole TaskResult with
    /// status 0 and an empty message, less its last two bytes.
    fn old_prefix<'b>(token: Text<'_>, buf: &'b mut [u8; MAX_TASK_RESULT_LEN]) -> Option<&'b [u8]> {
        let n = write_body(&TaskResult { token, status: 0, message: Text::default() }, buf)?;
        Some(&buf[..n - 2])
    }

    /// The prefix as result_held took it last: the token written by
    /// BodyWriter::str into a buffer two bytes shorter than a result.
    fn buffered_prefix<'b>(token: Text<'_>, buf: &'b mut [u8; MAX_TASK_RESULT_LEN - 2]) -> Option<&'b [u8]> {
        let mut w = BodyWriter::new(buf);
        w.str(token);
        let n = w.fits().then_some(w.len());
        n.and_then(|n| buf.get(..n))
    }

    #[test]
    fn result_prefix_matches_the_whole_result_less_its_tail() {
        let mut tried = 0;
        // Every length up to past the largest that fits, and some whose
        // varint is two bytes (300) or three (2^14 and more).
        for text in ["t".repeat(1 << 15), "t\u{e9}".repeat(1 << 14)] {
            for len in (0..=MAX_TASK_RESULT_LEN + 4).chain([300, (1 << 14) - 1, 1 << 14, (1 << 14) + 5, (1 << 14) + 129]) {
                let Some(token) = text.get(..len) else { continue };
                let (mut a, mut b, mut c) = ([0u8; 2], [0u8; MAX_TASK_RESULT_LEN], [0u8; MAX_TASK_RESULT_LEN - 2]);
                let joined = result_prefix(token.into(), &mut a).map(|(l, t)| [l, t].concat());
                let old = old_prefix(token.into(), &mut b);
                assert_eq!(joined.as_deref(), old, "token of {len} bytes");
                assert_eq!(buffered_prefix(token.into(), &mut c), old, "token of {len} bytes");
                tried += 1;
            }
        }
        assert!(tried > MAX_TASK_RESULT_LEN);
    }
}

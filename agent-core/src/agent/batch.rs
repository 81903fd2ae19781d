//! The batch builder and its sizing: when a batch goes (full, resend or
//! flush due), how large it may be (`batch_max_bytes`, halved for every
//! step of `shrink`) and the unacked window it must fit.

use super::*;
use crate::wire::codec::BodyWriter;

impl Core<'_> {
    /// Writes one Batch frame into `out` if one is due and the window lets
    /// it go; the frame's length, or 0.
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
        // Whether the window was idle before this batch (the ring does not
        // change until the batch is recorded as sent).
        let idle = self.ring.inflight_records() == 0;
        let seq = self.tx_seq;
        let written = self.ring.send_batch(max_bytes, self.cfg.batch_max_records, |plan, entries| {
            frame::encode_with(Kind::Batch, 0, seq, out, |body| {
                // Batch's fields; its records are copied from the ring after them.
                let mut w = BodyWriter::new(body);
                w.uint(plan.first_seq);
                w.uint(plan.base_ts);
                w.uint(u64::from(plan.count));
                w.uint(plan.len as u64);
                let n = w.len();
                Some(n + entries.copy_to(body.get_mut(n..)?)?)
            })
            .ok()
        });
        let Some(n) = written else { return 0 };
        if idle {
            self.ack_progress = now;
        }
        if self.ring.pending_records() == 0 {
            self.pending_since = None;
            self.flush_requested = false;
        }
        self.sent(n)
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

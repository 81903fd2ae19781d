//! The send ring: records kept in caller memory until the server acks them.
//!
//! [`Ring`] stores records back to back in a caller-provided byte slice, each
//! already in its wire encoding (see [`crate::record`]), so a batch is built
//! by copying one contiguous region (two slices when it wraps). Records may
//! straddle the end of the slice: no capacity is wasted on wrap-around.
//!
//! # Regions
//!
//! ```text
//!  tail            cursor             sent_end             head
//!   | in flight      | sent before,      | never sent          | free ...
//!   | (this conn.)   | awaiting resend   |                     |
//! ```
//!
//! * **in flight**: sent on the current connection, not acked yet.
//! * **awaiting resend**: sent on an earlier connection; [`Ring::rewind`]
//!   (called on every disconnect) moves the cursor back to the tail, so
//!   everything unacked is sent again (at-least-once).
//! * **never sent**: pushed, not yet sent on any connection.
//!
//! A record gets its sequence number the first time it is sent, so sequence
//! numbers are dense: records dropped before sending leave no gap, and a
//! record keeps its number across every resend. A record leaves the ring
//! only when the server acks its sequence number ([`Ring::ack`]).
//!
//! # Overflow
//!
//! Chosen at init ([`OverflowPolicy`]): `RejectNew` refuses the new record
//! with [`PushError::Full`]; `DropOldest` evicts the oldest *never-sent*
//! records to make room (records that were sent are never evicted, and the
//! *kept* entry is never evicted for an ordinary record), and refuses the new
//! record only when even that cannot make room. Every refusal and eviction is
//! counted in [`RingCounters`]; a pushed record is always either acked,
//! counted dropped, or still in the ring.
//!
//! # Kept entry and counted class
//!
//! The ring knows no record types: what it keeps and what it counts apart is
//! the caller's policy, given with each [`Ring::push_as`]: with
//! [`EntryKind::Kept`] it stores the kept entry (at most one: a newer kept
//! push supersedes it), and it names a class of data types counted apart in
//! [`RingCounters::heartbeats`]. The agent keeps its newest heartbeat and
//! counts agent and plugin heartbeats (`agent/heartbeat.rs`).
//!
//! Evicting leaves a gap between the sent records and the rest, which is
//! closed by moving bytes. To keep that cost independent of what is in
//! flight, one push evicts a whole run of the oldest never-sent records,
//! longer than it needs when the bytes to move would exceed
//! [`EVICTION_MOVE_FACTOR`] times the bytes evicted (the exact rule is on
//! [`Ring::push`]).
//!
//! # Costs
//!
//! Push is O(record) unless it overflows under `DropOldest`; then it is
//! O(records evicted) to choose the run, and it moves at most
//! [`EVICTION_MOVE_FACTOR`] bytes per byte evicted plus the kept
//! entry twice, with `memcpy` (in chunks, never `memmove`). Ack is O(1) per
//! batch acked when the ack falls on a batch boundary (the normal case),
//! O(records) within a partly acked batch.

use crate::record::{apply_delta, ts_delta, EntryHeader, Record};
use crate::stats::HeartbeatRecords;
use crate::wire::varint;
use core::fmt;
use heapless::Deque;

/// Largest resume point [`Ring::resume`] adopts: 2^63, leaving 2^63 numbers,
/// so sequence numbers can never overflow.
pub const MAX_RESUME_SEQ: u64 = 1 << 63;

/// How many batches can be in flight at once (per connection).
pub const MAX_INFLIGHT_BATCHES: usize = 8;

/// Bytes a `DropOldest` eviction may move per byte it evicts; the trade
/// against evicting more than needed is stated on [`Ring::push`].
pub const EVICTION_MOVE_FACTOR: usize = 4;

/// A `DropOldest` eviction evicts at least `capacity / EVICTION_CHUNK_DIVISOR`
/// bytes (or every never-sent record it may): under sustained overflow the
/// next pushes then find room without evicting, so the cost of choosing and
/// closing a run (header decodes, the fit check, re-basing the next entry)
/// is paid once per chunk instead of once per push.
pub const EVICTION_CHUNK_DIVISOR: usize = 64;

/// What [`Ring::push`] does when the record does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OverflowPolicy {
    /// Refuse the new record ([`PushError::Full`]); the caller decides.
    RejectNew = 0,
    /// Evict the oldest never-sent records to make room. Only with the
    /// `drop-oldest` feature (on by default).
    #[cfg(feature = "drop-oldest")]
    DropOldest = 1,
}

/// Ring settings fixed at init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Largest payload accepted, in bytes; larger ones are refused with
    /// [`PushError::TooLarge`].
    pub max_record: usize,
    /// What happens when the ring is full.
    pub policy: OverflowPolicy,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { max_record: 1024, policy: OverflowPolicy::RejectNew }
    }
}

/// Why a record was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PushError {
    /// No room, and the policy could not make any. Counted in
    /// [`RingCounters::dropped_full`].
    Full = 1,
    /// Payload over `max_record`, or the entry is larger than the whole
    /// ring. Counted in [`RingCounters::dropped_too_large`].
    TooLarge = 2,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushError::Full => "send ring full",
            PushError::TooLarge => "record larger than the configured maximum",
        })
    }
}

/// How [`Ring::push_as`] stores a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An ordinary entry: `DropOldest` evicts it oldest first.
    Plain,
    /// The kept entry: the ring holds at most one. `DropOldest` never evicts
    /// it to make room for a `Plain` record; a newer `Kept` push supersedes
    /// it (it becomes an ordinary entry, which that push may evict).
    Kept,
}

/// A class of data types, counted apart in [`RingCounters::heartbeats`]
/// (see [`Ring::push_as`]).
pub type CountedClass = fn(u32) -> bool;

/// The class of no data type: what [`Ring::push`] counts apart.
fn no_type(_: u32) -> bool {
    false
}

/// Counters of what happened to pushed records. Invariant:
/// `pushed == acked + evicted + records still in the ring`; refused records
/// (`dropped_full`, `dropped_too_large`) were never pushed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    /// Records stored.
    pub pushed: u64,
    /// Records acked by the server and freed.
    pub acked: u64,
    /// Records refused because the ring was full.
    pub dropped_full: u64,
    /// Records refused as too large.
    pub dropped_too_large: u64,
    /// Never-sent records evicted by `DropOldest`.
    pub dropped_evicted: u64,
    /// Of `pushed`, `dropped_full` and `dropped_evicted`: the records of
    /// the class counted apart ([`Ring::push_as`]; none with [`Ring::push`]). The agent
    /// counts its heartbeats here (data types `AGENT_HEARTBEAT` and
    /// `PLUGIN_HEARTBEAT`), so the application's own are the difference.
    pub heartbeats: HeartbeatRecords,
}

/// A batch chosen by [`Ring::plan_batch`], to be copied out with
/// [`Ring::copy_batch`] and recorded with [`Ring::commit_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Timestamp the first record's delta is relative to.
    pub base_ts: u64,
    /// Number of records.
    pub count: u32,
    /// Bytes of the records (entries back to back).
    pub len: usize,
    start: u64,
    end_ts: u64,
    // `dropped_evicted` when planned: an eviction may have rewritten the
    // planned bytes without moving the cursor.
    evictions: u64,
}

#[derive(Clone, Copy, Debug)]
struct BatchMark {
    count: u32,
    len: u32,
    end_ts: u64,
}

/// The entries of the batch [`Ring::send_batch`] is sending, to be copied
/// into the frame.
pub struct BatchEntries<'r, 'a> {
    ring: &'r Ring<'a>,
    at: usize,
    len: usize,
}

impl BatchEntries<'_, '_> {
    /// Copies the entries into the start of `out`; their length, or `None`
    /// (copying nothing) if `out` is shorter.
    pub fn copy_to(&self, out: &mut [u8]) -> Option<usize> {
        self.ring.read_at(self.at, out.get_mut(..self.len)?);
        Some(self.len)
    }
}

/// A run of never-sent entries chosen for eviction: `[sent_end, end)`,
/// every entry but the kept entry at `kept`.
#[cfg(feature = "drop-oldest")]
#[derive(Clone, Copy, Debug)]
struct Run {
    /// Offsets from the tail, like `kept`.
    end: usize,
    /// Timestamp of the last entry of the run.
    end_ts: u64,
    kept: Option<usize>,
    /// The kept entry's timestamp, and its length once re-based on the
    /// last sent record (0 without one).
    kept_ts: u64,
    kept_len: usize,
    /// Entries and bytes evicted, and those of the counted class.
    records: usize,
    bytes: usize,
    counted: usize,
    /// The header of the entry at `end` (`None` at the head) and its length.
    next: Option<(EntryHeader, usize)>,
}

/// What [`Ring::ack`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Records freed by this ack.
    pub acked: u64,
    /// The ack named a sequence number never sent (a protocol error by the
    /// peer); everything sent was acked.
    pub beyond_sent: bool,
}

/// The send ring over caller memory. See the module docs.
pub struct Ring<'a> {
    buf: &'a mut [u8],
    cfg: RingConfig,
    // Stream positions (physical index = position % capacity).
    tail: u64,
    /// Physical index of `tail`, kept so no position needs a division.
    tail_phys: usize,
    cursor: u64,
    sent_end: u64,
    head: u64,
    // Sequence numbers of the entries at tail / cursor / sent_end.
    tail_seq: u64,
    cursor_seq: u64,
    next_seq: u64,
    // Timestamps the entry at tail / cursor / sent_end / head is relative to.
    tail_base: u64,
    cursor_base: u64,
    sent_end_base: u64,
    head_base: u64,
    never_sent: u64,
    marks: Deque<BatchMark, MAX_INFLIGHT_BATCHES>,
    /// Position of the kept entry ([`EntryKind::Kept`]), if still stored.
    protected: Option<u64>,
    counters: RingCounters,
}

#[cfg(all(test, feature = "drop-oldest"))]
std::thread_local! {
    /// Bytes moved within ring storage by evictions on this thread (unit
    /// tests only; a thread-local so the ring's size is the same as built).
    static MOVED: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

impl<'a> Ring<'a> {
    /// A ring over `storage`. Capacity is `storage.len()` bytes; an empty
    /// slice gives a ring that refuses every record as too large.
    pub fn new(storage: &'a mut [u8], cfg: RingConfig) -> Self {
        Ring {
            buf: storage,
            cfg,
            tail: 0,
            tail_phys: 0,
            cursor: 0,
            sent_end: 0,
            head: 0,
            tail_seq: 0,
            cursor_seq: 0,
            next_seq: 0,
            tail_base: 0,
            cursor_base: 0,
            sent_end_base: 0,
            head_base: 0,
            never_sent: 0,
            marks: Deque::new(),
            protected: None,
            counters: RingCounters::default(),
        }
    }

    // ---- getters -------------------------------------------------------

    /// The settings given at init.
    pub fn config(&self) -> RingConfig {
        self.cfg
    }
    /// Total bytes of storage.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Bytes used by stored records.
    pub fn used_bytes(&self) -> usize {
        (self.head - self.tail) as usize
    }
    /// Bytes free for new records.
    pub fn free_bytes(&self) -> usize {
        self.capacity() - self.used_bytes()
    }
    /// Bytes sent on this connection and not acked.
    pub fn inflight_bytes(&self) -> usize {
        (self.cursor - self.tail) as usize
    }
    /// Bytes waiting to be sent (resends and never-sent).
    pub fn pending_bytes(&self) -> usize {
        (self.head - self.cursor) as usize
    }
    /// Records stored (in flight, awaiting resend and never sent).
    pub fn len(&self) -> u64 {
        (self.next_seq - self.tail_seq) + self.never_sent
    }
    /// True when no record is stored.
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }
    /// Records sent on this connection and not acked.
    pub fn inflight_records(&self) -> u64 {
        self.cursor_seq - self.tail_seq
    }
    /// Records waiting to be sent (resends and never-sent).
    // Out of line: inlined, it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(never)]
    pub fn pending_records(&self) -> u64 {
        (self.next_seq - self.cursor_seq) + self.never_sent
    }
    /// Batches in flight on this connection.
    pub fn inflight_batches(&self) -> usize {
        self.marks.len()
    }
    /// Sequence number of the oldest unacked record (== `next_seq` when
    /// nothing sent is unacked).
    pub fn first_unacked_seq(&self) -> u64 {
        self.tail_seq
    }
    /// Sequence number the next never-sent record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// True when records sent on an earlier connection wait to be sent again.
    pub fn has_resends(&self) -> bool {
        self.cursor < self.sent_end
    }

    /// Bytes of the next record to send (its whole entry), if any.
    pub fn next_pending_len(&self) -> Option<usize> {
        if self.cursor == self.head {
            return None;
        }
        self.header_at(self.off(self.cursor)).map(|(h, hl)| hl + h.payload_len)
    }

    /// Whether the ring holds (sent and unacked, or never sent) a record of
    /// `data_type` whose payload starts with `prefix`. Walks every entry:
    /// O(records held); for rare questions (a resent task), not per record.
    pub fn holds(&self, data_type: u32, prefix: &[u8]) -> bool {
        self.holds_parts(data_type, prefix, &[])
    }

    /// [`Ring::holds`] of the prefix `head` followed by `tail` (a prefix
    /// in two pieces, not joined in a buffer first).
    pub(crate) fn holds_parts(&self, data_type: u32, head: &[u8], tail: &[u8]) -> bool {
        let mut at = 0;
        while let Some((h, hl)) = self.header_at(at) {
            let payload = at + hl;
            if h.data_type == data_type
                && h.payload_len >= head.len() + tail.len()
                && self.starts_with(payload, head)
                && self.starts_with(payload + head.len(), tail)
            {
                return true;
            }
            at = payload + h.payload_len;
        }
        false
    }

    /// Whether the bytes at logical offset `at` are `bytes` (all within
    /// the used part: the caller checks).
    fn starts_with(&self, at: usize, bytes: &[u8]) -> bool {
        bytes.iter().enumerate().all(|(i, &b)| self.byte_at(at + i) == Some(b))
    }

    /// What happened to pushed records so far.
    pub fn counters(&self) -> RingCounters {
        self.counters
    }

    /// [`RingCounters::heartbeats`] alone, by reference.
    pub(crate) fn heartbeats(&self) -> &HeartbeatRecords {
        &self.counters.heartbeats
    }

    // ---- push ----------------------------------------------------------

    /// Stores `rec` at the head as an ordinary entry, counting nothing
    /// apart: [`Ring::push_as`] with [`EntryKind::Plain`] and no class.
    pub fn push(&mut self, rec: &Record<'_>) -> Result<(), PushError> {
        self.push_as(rec, EntryKind::Plain, no_type)
    }

    /// Stores `rec` at the head as `kind`, applying the overflow policy if
    /// it does not fit. On error nothing stored is disturbed: `DropOldest`
    /// evicts only when the new record then fits.
    ///
    /// `counted` is the class of data types counted apart in
    /// [`RingCounters::heartbeats`]: this record (stored or refused full)
    /// and the records this push evicts. The ring stores no class, so a
    /// caller that wants consistent counts passes the same one to every push.
    ///
    /// Under `DropOldest` one push evicts one *run*: the oldest never-sent
    /// records, skipping the kept entry unless `kind` is
    /// [`EntryKind::Kept`] (it then moves to the front of what is left),
    /// until the new record fits; then one more
    /// record at a time while `min(sent bytes, bytes after the run) >`
    /// [`EVICTION_MOVE_FACTOR`] `* bytes evicted` or fewer than
    /// `capacity /` [`EVICTION_CHUNK_DIVISOR`] bytes are evicted, sizes as
    /// stored before the push. So, whatever is in flight:
    ///
    /// * a push moves at most `EVICTION_MOVE_FACTOR` bytes per byte it
    ///   evicts, plus the kept entry twice;
    /// * a push evicts what it needs, or if more, fewer than
    ///   `capacity / (2 * EVICTION_MOVE_FACTOR + 1)` bytes plus one entry
    ///   (records that the next pushes would have evicted anyway under
    ///   sustained overflow; the chunk, `capacity / 64`, is below that).
    pub fn push_as(&mut self, rec: &Record<'_>, kind: EntryKind, counted: CountedClass) -> Result<(), PushError> {
        let len = rec.payload.len();
        let mut hdr = EntryHeader::new(rec.data_type, ts_delta(self.head_base, rec.timestamp_ms), len);
        let mut need = hdr.entry_len();
        if len > self.cfg.max_record || need > self.capacity() {
            self.counters.dropped_too_large += 1;
            return Err(PushError::TooLarge);
        }
        let kept = kind == EntryKind::Kept;
        let own = u64::from(counted(rec.data_type));
        if need > self.free_bytes() {
            // A new kept entry supersedes the old one.
            let keep = if kept { None } else { self.protected.filter(|&p| p >= self.sent_end) };
            if !self.make_room(rec, keep, counted) {
                self.counters.dropped_full += 1;
                self.counters.heartbeats.dropped_full += own;
                return Err(PushError::Full);
            }
            // Evicting the newest entries changes what this one is relative to.
            hdr.ts_delta = ts_delta(self.head_base, rec.timestamp_ms);
            need = hdr.entry_len();
        }
        let at = self.head;
        let off = self.used_bytes();
        // The header's varints in place and one copy when nothing wraps.
        let hl = self.write_header(off, &hdr);
        self.write_at(off + hl, rec.payload);
        self.head = at + need as u64;
        self.head_base = rec.timestamp_ms;
        self.never_sent += 1;
        self.counters.pushed += 1;
        self.counters.heartbeats.pushed += own;
        if kept {
            self.protected = Some(at);
        }
        Ok(())
    }

    /// Counts a record refused as too large before it reached the ring (a
    /// task result whose token alone is too long), in
    /// [`RingCounters::dropped_too_large`] with the ring's own refusals.
    pub fn count_too_large(&mut self) {
        self.counters.dropped_too_large += 1;
    }

    /// Makes room for `rec` by the policy (evicting a run under
    /// `DropOldest`, see [`Ring::push`]); false if the record is refused.
    #[cfg(feature = "drop-oldest")]
    fn make_room(&mut self, rec: &Record<'_>, keep: Option<u64>, counted: CountedClass) -> bool {
        let run = match self.cfg.policy {
            OverflowPolicy::DropOldest => self.plan_eviction(rec, keep, counted),
            OverflowPolicy::RejectNew => None,
        };
        let Some(run) = run else { return false };
        self.evict(&run);
        true
    }

    /// Without the `drop-oldest` feature the only policy is `RejectNew`:
    /// a record that does not fit is refused.
    #[cfg(not(feature = "drop-oldest"))]
    fn make_room(&mut self, _rec: &Record<'_>, _keep: Option<u64>, _counted: CountedClass) -> bool {
        false
    }

    /// Chooses the run of never-sent entries that [`Ring::push`] evicts to
    /// make room for `rec` (see there), keeping the entry at `keep` and
    /// counting the entries of the `counted` class.
    /// `None` if even evicting every never-sent entry but `keep` leaves no
    /// room. Reads only; sizes are exact, re-based headers included.
    #[cfg(feature = "drop-oldest")]
    fn plan_eviction(&self, rec: &Record<'_>, keep: Option<u64>, counted: CountedClass) -> Option<Run> {
        // Offsets from the tail: 32-bit arithmetic on 32-bit targets.
        let keep = keep.map(|p| self.off(p));
        let sent = self.off(self.sent_end);
        let used = self.used_bytes();
        let mut run = Run {
            end: sent,
            end_ts: self.sent_end_base,
            kept: None,
            kept_ts: 0,
            kept_len: 0,
            records: 0,
            bytes: 0,
            counted: 0,
            next: None,
        };
        // Whether the run as it stands makes room; it is judged only when
        // it ends with an evicted entry.
        let mut fits = false;
        let mut last_evicted = false;
        let chunk = self.capacity() / EVICTION_CHUNK_DIVISOR;
        loop {
            let next = if run.end < used { Some(self.header_at(run.end)?) } else { None };
            run.next = next;
            // Below the chunk the run cannot end here unless the walk does
            // (no entry left, or only the kept one): `fits` is judged only
            // where it can decide something, so the common step is a header
            // decode and two additions.
            let walk_ends = match next {
                None => true,
                Some((h, hl)) => Some(run.end) == keep && run.end + hl + h.payload_len >= used,
            };
            if last_evicted && (run.bytes >= chunk || walk_ends) {
                // What is left if the run ends here: the sent bytes, the kept
                // entry re-based on the last sent record, the entry after
                // the run re-based on the kept one (or the last sent
                // record), and the rest as is.
                let base = if run.kept.is_some() { run.kept_ts } else { self.sent_end_base };
                let mut left = sent + run.kept_len;
                let mut head_base = base;
                if let Some((f, fhl)) = next {
                    let f_ts = apply_delta(run.end_ts, f.ts_delta);
                    left += EntryHeader::new(f.data_type, ts_delta(base, f_ts), f.payload_len).header_len();
                    left += used - run.end - fhl;
                    head_base = self.head_base;
                }
                fits = left + rec.entry_len(head_base) <= self.capacity();
                if fits && run.bytes >= chunk && sent.min(used - run.end) <= EVICTION_MOVE_FACTOR * run.bytes {
                    return Some(run);
                }
            }
            let Some((h, hl)) = next else { return fits.then_some(run) };
            let size = hl + h.payload_len;
            let ts = apply_delta(run.end_ts, h.ts_delta);
            last_evicted = Some(run.end) != keep;
            if last_evicted {
                run.records += 1;
                run.bytes += size;
                run.counted += usize::from(counted(h.data_type));
            } else if run.end + size >= used {
                // Nothing after the kept entry to evict.
                return fits.then_some(run);
            } else {
                run.kept = Some(run.end);
                run.kept_ts = ts;
                run.kept_len = EntryHeader::new(h.data_type, ts_delta(self.sent_end_base, ts), h.payload_len).entry_len();
            }
            run.end += size;
            run.end_ts = ts;
        }
    }

    /// Evicts `run` (from [`Ring::plan_eviction`]). The kept entry, if
    /// any, first moves to the front of the run; then the gap closes by
    /// moving the smaller side: the sent entries (and the kept one) up, or
    /// what follows the run down. The entry after the run is re-based on
    /// its new predecessor, so every timestamp stays exact.
    #[cfg(feature = "drop-oldest")]
    fn evict(&mut self, run: &Run) {
        // Offsets from the tail as it is now. The gap to close is [p, q);
        // `base` is the timestamp the entry at q must be relative to.
        let mut p = self.off(self.sent_end);
        let q = run.end;
        let mut base = self.sent_end_base;
        let mut prot = self.protected.map(|x| self.off(x));
        if let Some((at, (k, khl))) = run.kept.and_then(|at| Some((at, self.header_at(at)?))) {
            let h = EntryHeader::new(k.data_type, ts_delta(base, run.kept_ts), k.payload_len);
            let hl = h.header_len();
            self.move_bytes(at + khl, p + hl, k.payload_len);
            self.write_header(p, &h);
            prot = Some(p);
            p += hl + k.payload_len;
            base = run.kept_ts;
        } else if matches!(prot, Some(x) if x >= p && x < q) {
            // The kept entry is evicted only for a new kept entry.
            prot = None;
        }
        let mut shift = 0;
        match run.next {
            Some((f, fhl)) => {
                let f_ts = apply_delta(run.end_ts, f.ts_delta);
                let new_f = EntryHeader::new(f.data_type, ts_delta(base, f_ts), f.payload_len);
                let f_payload = q + fhl;
                let f_start = f_payload - new_f.header_len();
                // Bytes freed (F's header never grows by more than the run).
                let k = f_start - p;
                let suffix = self.used_bytes() - f_payload;
                if p <= suffix {
                    self.write_header(f_start, &new_f);
                    self.move_bytes(0, k, p);
                    shift = k;
                    prot = match prot {
                        Some(x) if x < p => Some(x + k),
                        Some(x) if x == q => Some(f_start),
                        other => other,
                    };
                } else {
                    self.write_header(p, &new_f);
                    self.move_bytes(f_payload, f_payload - k, suffix);
                    self.head -= k as u64;
                    prot = match prot {
                        Some(x) if x == q => Some(p),
                        Some(x) if x > q => Some(x - k),
                        other => other,
                    };
                }
            }
            None => {
                // The run reaches the head.
                self.head = self.tail + p as u64;
                self.head_base = base;
            }
        }
        self.protected = prot.map(|x| self.tail + x as u64);
        self.advance_tail(shift as u64);
        self.cursor += shift as u64;
        self.sent_end += shift as u64;
        self.never_sent -= run.records as u64;
        self.counters.dropped_evicted += run.records as u64;
        self.counters.heartbeats.dropped_evicted += run.counted as u64;
    }

    // ---- batches -------------------------------------------------------

    /// Chooses the next batch: records from the cursor, at most
    /// `max_records` of them and `max_bytes` of entries. `None` when nothing
    /// is pending, [`MAX_INFLIGHT_BATCHES`] are in flight, or the first
    /// pending entry alone exceeds `max_bytes`.
    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    pub fn plan_batch(&self, max_bytes: usize, max_records: u32) -> Option<BatchPlan> {
        if self.cursor == self.head || self.marks.is_full() || max_records == 0 {
            return None;
        }
        let start = self.off(self.cursor);
        let used = self.used_bytes();
        let mut pos = start;
        let mut ts = self.cursor_base;
        let mut count = 0u32;
        while pos < used && count < max_records {
            let (h, hl) = self.header_at(pos)?;
            let size = hl + h.payload_len;
            if pos + size - start > max_bytes {
                break;
            }
            pos += size;
            ts = apply_delta(ts, h.ts_delta);
            count += 1;
        }
        if count == 0 {
            return None;
        }
        Some(BatchPlan {
            first_seq: self.cursor_seq,
            base_ts: self.cursor_base,
            count,
            len: pos - start,
            start: self.cursor,
            end_ts: ts,
            evictions: self.counters.dropped_evicted,
        })
    }

    /// Sends the next batch in one step: plans it like [`Ring::plan_batch`],
    /// hands the plan and its entries to `write`, and, when `write` returns
    /// `Some`, records the batch as sent like [`Ring::commit_batch`]. `None`
    /// (nothing recorded) when there is no batch to plan or `write` returns
    /// `None`. The same bytes and state as plan, copy and commit: the ring
    /// cannot change while `write` runs, so the plan is checked only once.
    pub fn send_batch<R>(
        &mut self,
        max_bytes: usize,
        max_records: u32,
        write: impl FnOnce(&BatchPlan, BatchEntries<'_, 'a>) -> Option<R>,
    ) -> Option<R> {
        let plan = self.plan_batch(max_bytes, max_records)?;
        let r = write(&plan, BatchEntries { ring: self, at: self.off(plan.start), len: plan.len })?;
        // Cannot fail: `plan_batch` plans nothing while every batch slot is
        // taken, and `write` cannot change the ring.
        self.record_sent(&plan);
        Some(r)
    }

    /// Copies the planned batch's entries into `out[..plan.len]`. Returns
    /// false (copying nothing) if `out` is too short or the plan is stale.
    pub fn copy_batch(&self, plan: &BatchPlan, out: &mut [u8]) -> bool {
        if !self.plan_is_current(plan) || out.len() < plan.len {
            return false;
        }
        self.read_at(self.off(plan.start), &mut out[..plan.len]);
        true
    }

    /// True if `plan` still describes the records at the cursor: same
    /// position and sequence number, and no eviction since it was planned.
    // Inlined into both callers (copy and commit of a batch): as a call it
    // costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    fn plan_is_current(&self, plan: &BatchPlan) -> bool {
        plan.start == self.cursor
            && plan.first_seq == self.cursor_seq
            && plan.evictions == self.counters.dropped_evicted
            && plan.len <= self.pending_bytes()
    }

    /// Records the planned batch as sent: it is now in flight, and its
    /// records own their sequence numbers. False if the plan is stale.
    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    pub fn commit_batch(&mut self, plan: &BatchPlan) -> bool {
        if !self.plan_is_current(plan) || self.marks.is_full() {
            return false;
        }
        self.record_sent(plan)
    }

    /// Commits a current plan (see [`Ring::commit_batch`]); false, changing
    /// nothing, if no batch slot is free.
    // Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
    #[inline(always)]
    fn record_sent(&mut self, plan: &BatchPlan) -> bool {
        let mark = BatchMark { count: plan.count, len: plan.len as u32, end_ts: plan.end_ts };
        if self.marks.push_back(mark).is_err() {
            return false;
        }
        self.cursor += plan.len as u64;
        self.cursor_seq += u64::from(plan.count);
        self.cursor_base = plan.end_ts;
        if self.cursor > self.sent_end {
            self.never_sent -= self.cursor_seq - self.next_seq;
            self.sent_end = self.cursor;
            self.next_seq = self.cursor_seq;
            self.sent_end_base = self.cursor_base;
        }
        true
    }

    // ---- acks and reconnects --------------------------------------------

    /// Frees every sent record with sequence number `<= up_to`. Acks for
    /// records already freed are ignored; an ack naming a number never sent
    /// frees everything sent and sets [`AckOutcome::beyond_sent`].
    // Inlined: the callers that read only `acked` drop `beyond_sent`, and
    // the count comes back in registers, not through memory.
    #[inline(always)]
    pub fn ack(&mut self, up_to: u64) -> AckOutcome {
        // `ack_count` leaves `next_seq` as it is, and `tail_seq <= next_seq`:
        // an ack at or past `next_seq` is never below the tail.
        let beyond_sent = up_to >= self.next_seq;
        AckOutcome { acked: self.ack_count(up_to), beyond_sent }
    }

    /// [`Ring::ack`]'s work: the records freed.
    fn ack_count(&mut self, up_to: u64) -> u64 {
        if up_to < self.tail_seq {
            return 0;
        }
        let target = up_to.saturating_add(1).min(self.next_seq);
        let first = self.tail_seq;
        // One loop, one tail step per turn: a whole in-flight batch (O(1)),
        // else one record of a partly acked batch, or of those sent on an
        // earlier connection. Once in a partly acked batch, the whole ones
        // are done: it ends past `target`.
        while self.tail_seq < target {
            let whole = self.marks.front().copied().filter(|m| self.tail_seq + u64::from(m.count) <= target);
            let (count, len, end_ts) = if let Some(m) = whole {
                self.marks.pop_front();
                (u64::from(m.count), u64::from(m.len), m.end_ts)
            } else {
                let Some((h, hl)) = self.header_at(0) else { break };
                let size = hl + h.payload_len;
                if let Some(m) = self.marks.front_mut() {
                    m.count -= 1;
                    m.len -= size as u32;
                    if m.count == 0 {
                        self.marks.pop_front();
                    }
                }
                (1, size as u64, apply_delta(self.tail_base, h.ts_delta))
            };
            self.advance_tail(len);
            self.tail_seq += count;
            self.tail_base = end_ts;
        }
        if self.cursor < self.tail {
            self.cursor = self.tail;
            self.cursor_seq = self.tail_seq;
            self.cursor_base = self.tail_base;
        }
        if matches!(self.protected, Some(p) if p < self.tail) {
            self.protected = None;
        }
        // One record freed per sequence number the tail moved.
        let acked = self.tail_seq - first;
        self.counters.acked += acked;
        acked
    }

    /// Marks everything in flight as awaiting resend (call on disconnect).
    pub fn rewind(&mut self) {
        self.cursor = self.tail;
        self.cursor_seq = self.tail_seq;
        self.cursor_base = self.tail_base;
        self.marks.clear();
    }

    /// Applies the server's resume point after a handshake: `server_next`
    /// is the sequence number the server expects next. Records below it are
    /// acked; if the server is ahead of everything this ring ever numbered
    /// (for example the agent restarted with an empty ring), numbering
    /// continues from `server_next`. Returns the records acked.
    ///
    /// A `server_next` above [`MAX_RESUME_SEQ`] leaves no room for further
    /// numbers: it is not adopted (records are still acked below it).
    pub fn resume(&mut self, server_next: u64) -> u64 {
        let acked = if server_next > 0 { self.ack(server_next - 1).acked } else { 0 };
        if server_next > self.next_seq && server_next <= MAX_RESUME_SEQ && self.tail == self.sent_end {
            self.tail_seq = server_next;
            self.cursor_seq = server_next;
            self.next_seq = server_next;
        }
        acked
    }

    // ---- storage helpers -----------------------------------------------

    /// Offset from the tail of a stream position in `[tail, tail +
    /// capacity]` (every position the ring touches). The storage helpers
    /// below take offsets: 32-bit arithmetic on 32-bit targets.
    fn off(&self, pos: u64) -> usize {
        (pos - self.tail) as usize
    }

    /// Physical index of the byte at offset `off` (at most the capacity)
    /// from the tail, by one compare-and-subtract: no division, which a
    /// 32-bit MCU would pay for in flash.
    fn phys(&self, off: usize) -> usize {
        let p = self.tail_phys + off;
        if p >= self.buf.len() { p - self.buf.len() } else { p }
    }

    /// Moves the tail forward by `by` (at most the capacity) bytes.
    fn advance_tail(&mut self, by: u64) {
        self.tail += by;
        self.tail_phys += by as usize;
        if self.tail_phys >= self.buf.len() {
            self.tail_phys -= self.buf.len();
        }
    }

    /// The header of the entry at offset `at` and its length; `None` at or
    /// past the head.
    fn header_at(&self, at: usize) -> Option<(EntryHeader, usize)> {
        // Read in place, across the wrap: no copy of the header.
        header_with(|i| self.byte_at(at + i))
    }

    /// The byte at offset `at`; `None` at or past the head.
    // Out of line: shared by the varint reader and `starts_with`.
    #[inline(never)]
    fn byte_at(&self, at: usize) -> Option<u8> {
        // Below the head, `phys` is within the storage: `get` never fails.
        if at < self.used_bytes() { self.buf.get(self.phys(at)).copied() } else { None }
    }

    fn write_at(&mut self, at: usize, data: &[u8]) {
        let start = self.phys(at);
        let (wrapped, tail) = self.buf.split_at_mut(start);
        let (first, rest) = data.split_at(data.len().min(tail.len()));
        // `split_at_mut` within the length (its check folds away), not an
        // index (an out-of-line call that checks again).
        tail.split_at_mut(first.len()).0.copy_from_slice(first);
        wrapped[..rest.len()].copy_from_slice(rest);
    }

    fn read_at(&self, at: usize, out: &mut [u8]) {
        // The bytes from `at` to the end of storage, then from its start.
        let (wrapped, from) = self.buf.split_at(self.phys(at));
        let (first, rest) = out.split_at_mut(out.len().min(from.len()));
        first.copy_from_slice(&from[..first.len()]);
        rest.copy_from_slice(&wrapped[..rest.len()]);
    }

    /// Writes `h` at offset `at`; returns its length.
    fn write_header(&mut self, at: usize, h: &EntryHeader) -> usize {
        let mut n = 0;
        for v in [u64::from(h.data_type), varint::zigzag(h.ts_delta), h.payload_len as u64] {
            n += self.varint_put(at + n, v);
        }
        n
    }

    /// Writes `v` as a varint at offset `at`, across the wrap; its length.
    fn varint_put(&mut self, at: usize, mut v: u64) -> usize {
        let mut i = 0;
        loop {
            let p = self.phys(at + i);
            i += 1;
            if v < 0x80 {
                self.buf[p] = v as u8;
                return i;
            }
            self.buf[p] = (v as u8 & 0x7f) | 0x80;
            v >>= 7;
        }
    }

    /// memmove on offsets from the tail (all within the capacity). Copies
    /// chunks no longer than the distance moved, so that no chunk overlaps
    /// itself and each is a plain `copy_from_slice`: memcpy speed without
    /// linking `memmove`.
    #[cfg(feature = "drop-oldest")]
    fn move_bytes(&mut self, src: usize, dst: usize, len: usize) {
        #[cfg(test)]
        MOVED.set(MOVED.get() + if src == dst { 0 } else { len as u64 });
        let cap = self.buf.len();
        let dist = src.abs_diff(dst);
        let mut done = 0usize;
        while done < len && dist > 0 {
            let rem = (len - done).min(dist);
            let (s, d, n) = if dst < src {
                // Down: front to back.
                let s = self.phys(src + done);
                let d = self.phys(dst + done);
                (s, d, rem.min(cap - s).min(cap - d))
            } else {
                // Up: back to front.
                let back = len - done - 1;
                let s_end = self.phys(src + back) + 1;
                let d_end = self.phys(dst + back) + 1;
                let n = rem.min(s_end).min(d_end);
                (s_end - n, d_end - n, n)
            };
            copy_disjoint(self.buf, s, d, n);
            done += n;
        }
    }
}

/// Copies `buf[src..src + n]` to `buf[dst..dst + n]`, two ranges that do
/// not overlap (the ring's invariants guarantee the indices).
#[cfg(feature = "drop-oldest")]
fn copy_disjoint(buf: &mut [u8], src: usize, dst: usize, n: usize) {
    let (lo, hi) = if src < dst { (src, dst) } else { (dst, src) };
    let (a, b) = buf.split_at_mut(hi);
    let (low, high) = (&mut a[lo..lo + n], &mut b[..n]);
    if src < dst {
        high.copy_from_slice(low);
    } else {
        low.copy_from_slice(high);
    }
}

impl fmt::Debug for Ring<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail)
            .field("cursor", &self.cursor)
            .field("sent_end", &self.sent_end)
            .field("head", &self.head)
            .field("tail_seq", &self.tail_seq)
            .field("next_seq", &self.next_seq)
            .field("counters", &self.counters)
            .finish()
    }
}

/// An entry header read from the bytes `byte(0)`, `byte(1)`, ... (`None`:
/// past the end), and its length; `None` if it is cut short, a varint is
/// overlong, or a field is out of range: what three
/// [`varint::decode_u64_with`] calls would give, in one loop. Each value is
/// assembled from the first byte up by a multiplier (no 64-bit shift by a
/// variable amount), so no array of the three values has to be cleared and
/// the one loop serves every field.
// Inlined into header_at, its one caller.
#[inline(always)]
fn header_with(mut byte: impl FnMut(usize) -> Option<u8>) -> Option<(EntryHeader, usize)> {
    let (mut t, mut d, mut n) = (0, 0, 0);
    for field in 0..3 {
        let (mut acc, mut mul) = (0u64, 1u64);
        loop {
            let b = byte(n)?;
            n += 1;
            // The tenth byte (multiplier 2^63) may only hold bit 63, and
            // ends the varint.
            if mul == 1 << 63 && b > 1 {
                return None;
            }
            acc |= u64::from(b & 0x7f).wrapping_mul(mul);
            if b & 0x80 == 0 {
                break;
            }
            mul <<= 7;
        }
        match field {
            0 => t = u32::try_from(acc).ok()?,
            1 => d = acc,
            _ => return Some((EntryHeader::new(t, varint::unzigzag(d), usize::try_from(acc).ok()?), n)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EntryIter;

    fn drain(ring: &mut Ring<'_>, out: &mut [u8]) -> Option<BatchPlan> {
        let plan = ring.plan_batch(out.len(), u32::MAX)?;
        assert!(ring.copy_batch(&plan, out));
        assert!(ring.commit_batch(&plan));
        Some(plan)
    }

    /// Every field `send_batch` and `commit_batch` may change.
    fn state(r: &Ring<'_>) -> impl PartialEq + fmt::Debug {
        let marks: heapless::Vec<(u32, u32, u64), MAX_INFLIGHT_BATCHES> =
            r.marks.iter().map(|m| (m.count, m.len, m.end_ts)).collect();
        (
            [r.tail, r.cursor, r.sent_end, r.head, r.tail_seq, r.cursor_seq, r.next_seq],
            [r.tail_base, r.cursor_base, r.sent_end_base, r.head_base, r.never_sent],
            marks,
            r.counters,
        )
    }

    /// `header_with` against the header reader it replaced (three
    /// `decode_u64_with` varints into a cleared array), on every header
    /// shape near the varints' length boundaries, cut at every length, and
    /// on random and mutated bytes.
    #[test]
    fn header_with_reads_what_three_varints_read() {
        fn old(bytes: &[u8]) -> Option<(EntryHeader, usize)> {
            let mut v = [0u64; 3];
            let mut n = 0;
            for x in &mut v {
                let (value, len) = varint::decode_u64_with(|i| bytes.get(n + i).copied()).ok()?;
                *x = value;
                n += len;
            }
            let [t, d, l] = v;
            let h = EntryHeader::new(u32::try_from(t).ok()?, varint::unzigzag(d), usize::try_from(l).ok()?);
            Some((h, n))
        }
        let check = |bytes: &[u8]| {
            assert_eq!(header_with(|i| bytes.get(i).copied()), old(bytes), "{bytes:02x?}");
        };
        let mut values = vec![0u64, u64::MAX, u64::MAX - 1];
        for shift in (0..64).step_by(7).chain([31, 32, 33, 63]) {
            values.extend([(1u64 << shift) - 1, 1 << shift, (1 << shift) + 1]);
        }
        let mut checked = 0;
        for &a in &values {
            for &b in &values {
                for c in [0, 1, 300, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::MAX] {
                    let mut bytes = [0u8; 40];
                    let mut n = 0;
                    for v in [a, b, c] {
                        n += varint::encode_u64(v, &mut bytes[n..]).unwrap();
                    }
                    // Cut at every length, and followed by more bytes.
                    for len in 0..=n + 2 {
                        check(&bytes[..len]);
                        checked += 1;
                    }
                }
            }
        }
        // Random and mutated bytes: overlong varints, tenth bytes past bit
        // 63, continuation bytes running to the end.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let r = next();
            let mut bytes = [0u8; 32];
            for (i, byte) in bytes.iter_mut().enumerate() {
                let v = next();
                // Mostly continuation bytes, some 0x80/0x81/0x01/0x02 near
                // the tenth-byte rule.
                *byte = match (v >> 60) & 7 {
                    0 => 0x80,
                    1 => 0x81 | (i as u8 & 1),
                    2 => (v as u8) & 3,
                    3 => (v as u8) & 0x7f,
                    _ => (v as u8) | 0x80,
                };
            }
            let len = (r % 33) as usize;
            check(&bytes[..len]);
            checked += 1;
        }
        assert!(checked > 200_000);
    }

    /// `ack_count` as it was: whole batches first, then record by record.
    fn old_ack_count(r: &mut Ring<'_>, up_to: u64) -> u64 {
        if up_to < r.tail_seq {
            return 0;
        }
        let target = up_to.saturating_add(1).min(r.next_seq);
        let first = r.tail_seq;
        while let Some(m) = r.marks.front().copied() {
            if r.tail_seq + u64::from(m.count) > target {
                break;
            }
            r.marks.pop_front();
            r.advance_tail(u64::from(m.len));
            r.tail_seq += u64::from(m.count);
            r.tail_base = m.end_ts;
        }
        while r.tail_seq < target {
            let Some((h, hl)) = r.header_at(0) else { break };
            let size = hl + h.payload_len;
            r.advance_tail(size as u64);
            r.tail_seq += 1;
            r.tail_base = apply_delta(r.tail_base, h.ts_delta);
            if let Some(m) = r.marks.front_mut() {
                m.count -= 1;
                m.len -= size as u32;
                if m.count == 0 {
                    r.marks.pop_front();
                }
            }
        }
        if r.cursor < r.tail {
            r.cursor = r.tail;
            r.cursor_seq = r.tail_seq;
            r.cursor_base = r.tail_base;
        }
        if matches!(r.protected, Some(p) if p < r.tail) {
            r.protected = None;
        }
        let acked = r.tail_seq - first;
        r.counters.acked += acked;
        acked
    }

    /// `ack_count` in one loop against the two loops it replaced: the same
    /// count and state after acks below, into and past the batches in
    /// flight, of records sent on an earlier connection (after a rewind,
    /// and by `resume`), over wraps and a full window of batches.
    #[test]
    fn ack_count_is_the_two_loops() {
        let (mut mem_a, mut mem_b) = ([0u8; 61], [0u8; 61]);
        let cfg = RingConfig { max_record: 16, policy: OverflowPolicy::RejectNew };
        let (mut a, mut b) = (Ring::new(&mut mem_a, cfg), Ring::new(&mut mem_b, cfg));
        let mut x = 0x243f_6a88_85a3_08d3u64;
        let mut acked = 0;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let payload = &b"0123456789abcdef"[..(x % 17) as usize];
            let ts = 1000 + step * 3 - step % 5;
            assert_eq!(a.push(&Record::new(step as u32 % 3, ts, payload)), b.push(&Record::new(step as u32 % 3, ts, payload)));
            let (max_bytes, max_records) = ((x >> 8) as usize % 60, (x >> 16) as u32 % 5);
            let (pa, pb) = (a.plan_batch(max_bytes, max_records), b.plan_batch(max_bytes, max_records));
            assert_eq!(pa, pb, "step {step}");
            if let (Some(pa), Some(pb)) = (pa, pb) {
                assert_eq!(a.commit_batch(&pa), b.commit_batch(&pb));
            }
            match (x >> 24) % 8 {
                0..=3 => {
                    // Anywhere from below the tail to past the last number.
                    let (lo, hi) = (a.first_unacked_seq().saturating_sub(2), a.next_seq() + 2);
                    let up_to = lo + (x >> 32) % (hi - lo + 1);
                    let n = old_ack_count(&mut a, up_to);
                    assert_eq!(b.ack_count(up_to), n, "step {step}, ack {up_to}");
                    acked += n;
                }
                4 => {
                    a.rewind();
                    b.rewind();
                }
                5 => {
                    // A resume point within what the ring holds.
                    let up_to = a.first_unacked_seq() + (x >> 32) % 3;
                    let n = old_ack_count(&mut a, up_to);
                    assert_eq!(b.ack_count(up_to), n, "step {step}, resume at {up_to}");
                }
                _ => {}
            }
            assert_eq!(state(&a), state(&b), "step {step}");
            assert_eq!((a.protected, a.tail_phys), (b.protected, b.tail_phys), "step {step}");
        }
        assert!(acked > 5_000, "{acked}");
    }

    /// `send_batch` against plan, copy and commit: the same bytes, the same
    /// outcome and the same state, over wraps, resends, partial acks, short
    /// outputs and a full window of batches.
    #[test]
    fn send_batch_is_plan_copy_commit() {
        let (mut mem_a, mut mem_b) = ([0u8; 53], [0u8; 53]);
        let cfg = RingConfig { max_record: 16, policy: OverflowPolicy::RejectNew };
        let (mut a, mut b) = (Ring::new(&mut mem_a, cfg), Ring::new(&mut mem_b, cfg));
        let mut sent = 0;
        for step in 0..400u64 {
            let payload = &b"0123456789abcdef"[..(step * 7 % 17) as usize];
            let ts = 1000 + step * 3 - step % 5;
            assert_eq!(a.push(&Record::new(step as u32 % 3, ts, payload)), b.push(&Record::new(step as u32 % 3, ts, payload)));
            let max_bytes = (step * 11 % 60) as usize;
            let max_records = (step % 4) as u32;
            let out_len = (step * 13 % 70) as usize;
            let (mut out_a, mut out_b) = ([0xaau8; 80], [0xaau8; 80]);
            let old = a.plan_batch(max_bytes, max_records).and_then(|plan| {
                let ok = a.copy_batch(&plan, &mut out_a[..out_len]);
                (ok && a.commit_batch(&plan)).then_some(plan)
            });
            let new = b.send_batch(max_bytes, max_records, |plan, entries| {
                entries.copy_to(&mut out_b[..out_len]).map(|n| (*plan, n))
            });
            assert_eq!(old.map(|p| (p, p.len)), new, "step {step}");
            assert_eq!(out_a, out_b, "step {step}");
            assert_eq!(state(&a), state(&b), "step {step}");
            sent += usize::from(new.is_some());
            match step % 9 {
                3 => assert_eq!(a.ack(a.first_unacked_seq() + 1), b.ack(b.first_unacked_seq() + 1)),
                5 => assert_eq!(a.ack(a.next_seq()), b.ack(b.next_seq())),
                7 => {
                    a.rewind();
                    b.rewind();
                }
                _ => {}
            }
        }
        assert!(sent > 50, "{sent}");
    }

    #[test]
    fn push_send_ack_roundtrip_with_wrap() {
        let mut mem = [0u8; 40];
        let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::RejectNew });
        let mut out = [0u8; 64];
        for round in 0..20u64 {
            ring.push(&Record::new(7, 1000 + round, b"0123456789")).unwrap();
            ring.push(&Record::new(8, 990 + round, b"abc")).unwrap();
            let plan = drain(&mut ring, &mut out).unwrap();
            assert_eq!(plan.first_seq, round * 2);
            assert_eq!(plan.count, 2);
            let recs: heapless::Vec<_, 4> =
                EntryIter::new(&out[..plan.len], plan.base_ts).map(|r| r.unwrap()).collect();
            assert_eq!(recs[0], Record::new(7, 1000 + round, b"0123456789"));
            assert_eq!(recs[1], Record::new(8, 990 + round, b"abc"));
            assert_eq!(ring.ack(plan.first_seq + 1), AckOutcome { acked: 2, beyond_sent: false });
            assert!(ring.is_empty());
        }
        assert_eq!(ring.counters().acked, 40);
    }

    /// `ring.holds(data_type, prefix)`, checked to be what `holds_parts`
    /// says of the prefix split at every place.
    fn holds(ring: &Ring<'_>, data_type: u32, prefix: &[u8]) -> bool {
        let whole = ring.holds(data_type, prefix);
        for at in 0..=prefix.len() {
            let (head, tail) = prefix.split_at(at);
            assert_eq!(ring.holds_parts(data_type, head, tail), whole, "split at {at}");
        }
        whole
    }

    #[test]
    fn holds_finds_sent_and_unsent_records_across_the_wrap() {
        let mut mem = [0u8; 40];
        let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::RejectNew });
        let mut out = [0u8; 64];
        for round in 0..20u8 {
            ring.push(&Record::new(7, 0, &[round, 1, 2, 3, 4, 5, 6, 7, 8, 9])).unwrap();
            let plan = drain(&mut ring, &mut out).unwrap();
            ring.push(&Record::new(8, 0, &[round, 9])).unwrap();
            assert!(holds(&ring, 7, &[round, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "sent, unacked (round {round})");
            assert!(holds(&ring, 8, &[round]), "never sent");
            assert!(holds(&ring, 8, &[]));
            assert!(!holds(&ring, 8, &[round, 9, 0]), "longer than the payload");
            assert!(!holds(&ring, 7, &[round, 2]));
            assert!(!holds(&ring, 9, &[]));
            ring.ack(plan.first_seq);
            assert!(!holds(&ring, 7, &[round]), "acked: freed");
            drain(&mut ring, &mut out).unwrap();
            ring.ack(plan.first_seq + 1);
            assert!(!holds(&ring, 8, &[]));
        }
    }

    #[test]
    fn reject_new_when_full_and_too_large() {
        let mut mem = [0u8; 22];
        let mut ring = Ring::new(&mut mem, RingConfig { max_record: 8, policy: OverflowPolicy::RejectNew });
        assert_eq!(ring.push(&Record::new(1, 0, &[0; 9])), Err(PushError::TooLarge));
        ring.push(&Record::new(1, 0, &[1; 8])).unwrap();
        ring.push(&Record::new(1, 0, &[2; 8])).unwrap();
        assert_eq!(ring.push(&Record::new(1, 0, &[3; 8])), Err(PushError::Full));
        let c = ring.counters();
        assert_eq!((c.pushed, c.dropped_full, c.dropped_too_large), (2, 1, 1));
    }

    #[cfg(feature = "drop-oldest")]
    #[test]
    fn drop_oldest_spares_inflight_and_kept() {
        let mut mem = [0u8; 48];
        let mut ring = Ring::new(&mut mem, RingConfig { max_record: 8, policy: OverflowPolicy::DropOldest });
        let mut out = [0u8; 64];
        ring.push(&Record::new(1, 10, &[1; 8])).unwrap(); // will be in flight
        let plan = drain(&mut ring, &mut out).unwrap();
        // Any type may be the kept entry: the ring knows no types.
        ring.push_as(&Record::new(9, 20, &[9; 8]), EntryKind::Kept, no_type).unwrap();
        ring.push(&Record::new(2, 30, &[2; 8])).unwrap();
        ring.push(&Record::new(3, 40, &[3; 8])).unwrap();
        // Full (4 x 11 bytes). Next push evicts record 2, not the in-flight
        // one nor the kept one.
        ring.push(&Record::new(4, 50, &[4; 8])).unwrap();
        assert_eq!(ring.counters().dropped_evicted, 1);
        assert_eq!(ring.ack(plan.first_seq).acked, 1);
        let plan = drain(&mut ring, &mut out).unwrap();
        let recs: heapless::Vec<_, 8> =
            EntryIter::new(&out[..plan.len], plan.base_ts).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0], Record::new(9, 20, &[9; 8]));
        assert_eq!(recs[1], Record::new(3, 40, &[3; 8]));
        assert_eq!(recs[2], Record::new(4, 50, &[4; 8]));
        assert_eq!(plan.first_seq, 1);
    }

    #[cfg(feature = "drop-oldest")]
    #[test]
    fn a_kept_push_supersedes_the_kept_entry_and_the_class_is_counted() {
        let mut mem = [0u8; 33];
        let mut ring = Ring::new(&mut mem, RingConfig { max_record: 8, policy: OverflowPolicy::DropOldest });
        let class: CountedClass = |t| t >= 5;
        let push = |ring: &mut Ring<'_>, t: u32, kind| ring.push_as(&Record::new(t, 0, &[t as u8; 8]), kind, class);
        push(&mut ring, 5, EntryKind::Kept).unwrap();
        push(&mut ring, 1, EntryKind::Plain).unwrap();
        push(&mut ring, 2, EntryKind::Plain).unwrap();
        // Full (3 x 11 bytes). A plain push evicts the oldest plain record.
        push(&mut ring, 3, EntryKind::Plain).unwrap();
        // A kept push may evict the entry it supersedes: the oldest.
        push(&mut ring, 6, EntryKind::Kept).unwrap();
        // Plain pushes evict around the new kept entry: 2, then 3, then 7
        // (the kept one moving to the front).
        for t in [7, 8, 9] {
            push(&mut ring, t, EntryKind::Plain).unwrap();
        }
        let mut out = [0u8; 64];
        let plan = drain(&mut ring, &mut out).unwrap();
        let types: heapless::Vec<u32, 8> =
            EntryIter::new(&out[..plan.len], plan.base_ts).map(|r| r.unwrap().data_type).collect();
        assert_eq!(&types[..], &[6, 8, 9]);
        let c = ring.counters();
        assert_eq!((c.pushed, c.dropped_evicted), (8, 5));
        assert_eq!((c.heartbeats.pushed, c.heartbeats.dropped_evicted, c.heartbeats.dropped_full), (5, 2, 0));
    }

    #[test]
    fn rewind_resends_same_sequence_numbers_and_resume_skips() {
        let mut mem = [0u8; 128];
        let mut ring = Ring::new(&mut mem, RingConfig::default());
        let mut out = [0u8; 128];
        for i in 0..6u64 {
            ring.push(&Record::new(5, i, &[i as u8; 4])).unwrap();
        }
        let a = ring.plan_batch(100, 3).unwrap();
        assert!(ring.commit_batch(&a));
        let b = ring.plan_batch(100, 3).unwrap();
        assert!(ring.commit_batch(&b));
        assert_eq!((a.first_seq, b.first_seq), (0, 3));
        ring.rewind();
        assert_eq!(ring.inflight_records(), 0);
        assert_eq!(ring.pending_records(), 6);
        // Server says it has 0..=3: resume acks four, resend starts at 4.
        assert_eq!(ring.resume(4), 4);
        let c = drain(&mut ring, &mut out).unwrap();
        assert_eq!((c.first_seq, c.count), (4, 2));
        let recs: heapless::Vec<_, 8> = EntryIter::new(&out[..c.len], c.base_ts).map(|r| r.unwrap()).collect();
        assert_eq!(recs[0], Record::new(5, 4, &[4; 4]));
        drop(recs);
        assert_eq!(ring.ack(10), AckOutcome { acked: 2, beyond_sent: true });
        // A restarted agent adopts a server that is ahead.
        assert_eq!(ring.resume(u64::MAX), 0, "absurd resume point is not adopted");
        assert_eq!(ring.next_seq(), 6);
        assert_eq!(ring.resume(100), 0);
        ring.push(&Record::new(5, 9, b"x")).unwrap();
        assert_eq!(drain(&mut ring, &mut out).unwrap().first_seq, 100);
    }

    /// `ack` computes `beyond_sent` apart from the freeing (`ack_count`):
    /// the same outcome as the old one-piece ack, which returned nothing for
    /// an ack below the tail and set `beyond_sent` for one at or past
    /// `next_seq`, freeing up to `min(up_to + 1, next_seq)`.
    #[test]
    fn ack_outcome_matches_old_rule() {
        for up_to in 0..12u64 {
            let mut mem = [0u8; 128];
            let mut ring = Ring::new(&mut mem, RingConfig::default());
            for i in 0..8u64 {
                ring.push(&Record::new(5, i, &[1; 3])).unwrap();
            }
            for _ in 0..2 {
                let p = ring.plan_batch(128, 3).unwrap();
                assert!(ring.commit_batch(&p));
            }
            assert_eq!(ring.ack(1).acked, 2);
            let (tail, next) = (ring.first_unacked_seq(), ring.next_seq());
            assert_eq!((tail, next), (2, 6));
            let old = if up_to < tail {
                AckOutcome::default()
            } else {
                AckOutcome { acked: (up_to + 1).min(next) - tail, beyond_sent: up_to >= next }
            };
            assert_eq!(ring.ack(up_to), old, "up_to {up_to}");
            assert_eq!(ring.ack(up_to), AckOutcome { acked: 0, beyond_sent: up_to >= next });
        }
    }

    #[test]
    fn partial_ack_within_batch() {
        let mut mem = [0u8; 64];
        let mut ring = Ring::new(&mut mem, RingConfig::default());
        for i in 0..4u64 {
            ring.push(&Record::new(5, i, &[0; 3])).unwrap();
        }
        let p = ring.plan_batch(64, 10).unwrap();
        assert!(ring.commit_batch(&p));
        assert_eq!(ring.ack(1).acked, 2);
        assert_eq!(ring.inflight_records(), 2);
        assert_eq!(ring.ack(1).acked, 0);
        assert_eq!(ring.ack(3).acked, 2);
        assert_eq!(ring.inflight_batches(), 0);
        assert!(ring.is_empty());
    }

    /// Issue 6, item 12: under `DropOldest`, each eviction moved every
    /// sent byte (one 4 KiB batch in flight: 4 KiB moved per push; eight:
    /// 32 KiB). The bytes moved per evicted byte must not depend on what is
    /// in flight.
    #[cfg(feature = "drop-oldest")]
    #[test]
    fn eviction_cost() {
        const CAP: usize = 64 * 1024;
        const PUSHES: u64 = 4000;
        let payload = [0x5au8; 64];
        let hb_payload = [0x11u8; 32];
        let mut per_case = [0u64; 3];
        for (case, batches) in [0usize, 1, 8].into_iter().enumerate() {
            let mut mem = vec![0u8; CAP];
            let mut ring = Ring::new(&mut mem, RingConfig { max_record: 1024, policy: OverflowPolicy::DropOldest });
            let mut ts = 1_000u64;
            let mut push = |ring: &mut Ring<'_>, i: u64| {
                ts += 1;
                if i % 64 == 63 {
                    ring.push_as(&Record::new(8, ts, &hb_payload), EntryKind::Kept, no_type).unwrap();
                } else {
                    ring.push(&Record::new(7, ts, &payload)).unwrap();
                }
            };
            let mut i = 0;
            while ring.free_bytes() >= 67 {
                push(&mut ring, i);
                i += 1;
            }
            let mut sent = 0u64;
            for _ in 0..batches {
                let plan = ring.plan_batch(4096, u32::MAX).unwrap();
                assert!(ring.commit_batch(&plan));
                sent += u64::from(plan.count);
            }
            assert_eq!(ring.inflight_batches(), batches);
            let inflight = ring.inflight_bytes();
            MOVED.set(0);
            let before = ring.counters();
            for k in 0..PUSHES {
                push(&mut ring, i + k);
            }
            let c = ring.counters();
            let evicted = c.dropped_evicted - before.dropped_evicted;
            assert_eq!(c.pushed - before.pushed, PUSHES);
            assert_eq!(c.dropped_full, 0);
            assert!(evicted >= PUSHES, "each push evicts at least one record");
            // Nothing sent was evicted: every in-flight record is acked.
            assert_eq!(ring.inflight_bytes(), inflight);
            assert_eq!(ring.ack(sent.wrapping_sub(1)).acked, sent);
            // At most EVICTION_MOVE_FACTOR bytes moved per byte evicted, plus
            // the kept entry moved twice per push.
            let bound = EVICTION_MOVE_FACTOR as u64 * evicted * 67 + PUSHES * 2 * 35;
            let moved = MOVED.get();
            assert!(moved <= bound, "{batches} batches in flight: moved {moved} > {bound}");
            per_case[case] = moved / PUSHES;
        }
        // And the same order of cost whatever is in flight.
        assert!(per_case[2] <= per_case[0] + 8 * 67, "bytes moved per push by batches in flight (0, 1, 8): {per_case:?}");
    }
}

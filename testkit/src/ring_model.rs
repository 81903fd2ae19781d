//! Reference model of the send ring ([`agent_core::ring`]) and the harness
//! that runs a `Ring` and the model side by side.
//!
//! One copy serves two drivers:
//!
//! * `agent-core/tests/ring_model.rs` (proptest);
//! * the `ring_ops` cargo-fuzz target (`fuzz/` depends on this crate with
//!   the `ring-model` feature).
//!
//! Every mismatch is a panic: libFuzzer reports it as a crash, proptest
//! catches it and shrinks the case. The drivers only generate operations
//! and resolve them against the model's state (timestamps, ack and resume
//! targets); every check lives here.
//!
//! The model: records in a `VecDeque`, sizes and evictions computed from
//! first principles. After every operation [`Harness::check`] compares
//! every getter and counter with the model and decodes everything pending;
//! every batch is decoded and compared record by record; [`Harness::drain`]
//! sends and acks everything left and checks that every push attempt had
//! exactly one fate: acked (after being delivered in order), evicted, or
//! refused.

use std::collections::VecDeque;

use agent_core::record::{EntryIter, Record};
use agent_core::ring::{
    AckOutcome, BatchPlan, CountedClass, EntryKind, OverflowPolicy, PushError, Ring, RingConfig, RingCounters, EVICTION_CHUNK_DIVISOR, EVICTION_MOVE_FACTOR,
    MAX_INFLIGHT_BATCHES, MAX_RESUME_SEQ,
};

// ---- the model -------------------------------------------------------------

/// A stored record.
#[derive(Clone, Debug)]
pub struct MRec {
    /// Index of the push attempt that stored it.
    pub id: usize,
    pub data_type: u32,
    pub ts: u64,
    pub payload: Vec<u8>,
}

impl MRec {
    pub fn record(&self) -> Record<'_> {
        Record::new(self.data_type, self.ts, &self.payload)
    }
}

/// What became of a push attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Stored,
    Acked,
    Evicted,
    RefusedFull,
    RefusedTooLarge,
}

/// The reference model: records in stream order, the first `inflight` of
/// them sent on this connection, the first `sent` sent on some connection
/// (so `recs[inflight..sent]` awaits resend), the rest never sent.
pub struct Model {
    pub cap: usize,
    pub cfg: RingConfig,
    pub recs: VecDeque<MRec>,
    pub inflight: usize,
    pub sent: usize,
    /// Records per in-flight batch (what is left of it), oldest first.
    pub batches: VecDeque<u32>,
    /// Sequence number of `recs[0]` when it is sent; `recs[i]` has
    /// `tail_seq + i` for `i < sent`.
    pub tail_seq: u64,
    pub next_seq: u64,
    /// Timestamp of the last acked record: what `recs[0]` is relative to.
    pub acked_ts: u64,
    /// Id of the kept entry ([`EntryKind::Kept`]), if still stored.
    pub protected: Option<usize>,
    pub counters: RingCounters,
    /// Per push attempt.
    pub fates: Vec<Fate>,
    pub delivered: Vec<u32>,
    pub seqs: Vec<Option<u64>>,
    /// Ids in the order they were acked.
    pub ack_log: Vec<usize>,
}

pub fn bytes_of<'a>(recs: impl IntoIterator<Item = &'a MRec>, mut prev: u64) -> usize {
    let mut n = 0;
    for r in recs {
        n += r.record().entry_len(prev);
        prev = r.ts;
    }
    n
}

impl Model {
    pub fn new(cap: usize, cfg: RingConfig) -> Self {
        Model {
            cap,
            cfg,
            recs: VecDeque::new(),
            inflight: 0,
            sent: 0,
            batches: VecDeque::new(),
            tail_seq: 0,
            next_seq: 0,
            acked_ts: 0,
            protected: None,
            counters: RingCounters::default(),
            fates: Vec::new(),
            delivered: Vec::new(),
            seqs: Vec::new(),
            ack_log: Vec::new(),
        }
    }

    pub fn used(&self) -> usize {
        bytes_of(&self.recs, self.acked_ts)
    }

    pub fn inflight_bytes(&self) -> usize {
        bytes_of(self.recs.range(..self.inflight), self.acked_ts)
    }

    fn head_base(&self) -> u64 {
        self.recs.back().map_or(self.acked_ts, |r| r.ts)
    }

    pub fn cursor_base(&self) -> u64 {
        if self.inflight == 0 {
            self.acked_ts
        } else {
            self.recs[self.inflight - 1].ts
        }
    }

    pub fn cursor_seq(&self) -> u64 {
        self.tail_seq + self.inflight as u64
    }

    /// Ids of the first `n` records at the cursor (fewer if there are not
    /// that many).
    pub fn ids_at_cursor(&self, n: usize) -> Vec<usize> {
        self.recs.range(self.inflight..).take(n).map(|r| r.id).collect()
    }

    /// Pushes as `kind`, counting the `counted` class apart (as
    /// [`Ring::push_as`]); returns the outcome and the ids evicted.
    pub fn push(
        &mut self,
        data_type: u32,
        ts: u64,
        payload: Vec<u8>,
        kind: EntryKind,
        counted: CountedClass,
    ) -> (Result<(), PushError>, Vec<usize>) {
        let id = self.fates.len();
        self.fates.push(Fate::Stored);
        self.delivered.push(0);
        self.seqs.push(None);
        let rec = MRec { id, data_type, ts, payload };
        let need = |prev: u64| rec.record().entry_len(prev);
        if rec.payload.len() > self.cfg.max_record || need(self.head_base()) > self.cap {
            self.fates[id] = Fate::RefusedTooLarge;
            self.counters.dropped_too_large += 1;
            return (Err(PushError::TooLarge), Vec::new());
        }
        let kept = kind == EntryKind::Kept;
        // Counted apart: the caller's class.
        let own = u64::from(counted(data_type));
        // A new kept entry takes the protection from the previous one.
        let keep = if kept { None } else { self.protected };
        let mut evicted = Vec::new();
        if self.used() + need(self.head_base()) > self.cap {
            if self.cfg.policy == OverflowPolicy::RejectNew {
                self.fates[id] = Fate::RefusedFull;
                self.counters.dropped_full += 1;
                self.counters.heartbeats.dropped_full += own;
                return (Err(PushError::Full), evicted);
            }
            // Evict the oldest never-sent records other than the kept entry
            // until the new one fits, then more while the smaller
            // of the sent bytes and the bytes after the last one evicted
            // exceeds EVICTION_MOVE_FACTOR times the bytes evicted, or fewer
            // than cap / EVICTION_CHUNK_DIVISOR bytes are evicted (sizes as
            // stored before this push).
            let sizes: Vec<usize> = self
                .recs
                .iter()
                .scan(self.acked_ts, |prev, r| {
                    let n = r.record().entry_len(*prev);
                    *prev = r.ts;
                    Some(n)
                })
                .collect();
            let sent_bytes: usize = sizes[..self.sent].iter().sum();
            let candidates: Vec<usize> = (self.sent..self.recs.len()).filter(|&i| Some(self.recs[i].id) != keep).collect();
            let mut chosen = None;
            for j in 1..=candidates.len() {
                let gone = &candidates[..j];
                let survivors: Vec<&MRec> =
                    self.recs.iter().enumerate().filter(|(i, _)| !gone.contains(i)).map(|(_, r)| r).collect();
                let prev = survivors.last().map_or(self.acked_ts, |r| r.ts);
                let fits = bytes_of(survivors.iter().copied(), self.acked_ts) + need(prev) <= self.cap;
                let evicted: usize = gone.iter().map(|&i| sizes[i]).sum();
                let after: usize = sizes[gone[j - 1] + 1..].iter().sum();
                let cheap = sent_bytes.min(after) <= EVICTION_MOVE_FACTOR * evicted;
                let chunk = evicted >= self.cap / EVICTION_CHUNK_DIVISOR;
                if fits && ((cheap && chunk) || j == candidates.len()) {
                    chosen = Some(j);
                    break;
                }
            }
            let Some(j) = chosen else {
                self.fates[id] = Fate::RefusedFull;
                self.counters.dropped_full += 1;
                self.counters.heartbeats.dropped_full += own;
                return (Err(PushError::Full), evicted);
            };
            // Highest index first, so the lower ones stay valid.
            for &i in candidates[..j].iter().rev() {
                let r = self.recs.remove(i).expect("index in range");
                assert!(i >= self.sent, "model evicts only never-sent records");
                self.fates[r.id] = Fate::Evicted;
                self.counters.dropped_evicted += 1;
                self.counters.heartbeats.dropped_evicted += u64::from(counted(r.data_type));
                if self.protected == Some(r.id) {
                    assert!(kept, "model evicts the kept entry only for a new kept entry");
                    self.protected = None;
                }
                evicted.push(r.id);
            }
            evicted.reverse();
        }
        self.recs.push_back(rec);
        self.counters.pushed += 1;
        self.counters.heartbeats.pushed += own;
        if kept {
            self.protected = Some(id);
        }
        (Ok(()), evicted)
    }

    /// What `plan_batch` should return: (first_seq, base_ts, count, len).
    pub fn plan(&self, max_bytes: usize, max_records: u32) -> Option<(u64, u64, u32, usize)> {
        if self.batches.len() >= MAX_INFLIGHT_BATCHES || max_records == 0 || self.inflight == self.recs.len() {
            return None;
        }
        let mut prev = self.cursor_base();
        let mut count = 0u32;
        let mut len = 0usize;
        for r in self.recs.range(self.inflight..) {
            if count == max_records {
                break;
            }
            let size = r.record().entry_len(prev);
            if len + size > max_bytes {
                break;
            }
            len += size;
            prev = r.ts;
            count += 1;
        }
        (count > 0).then(|| (self.cursor_seq(), self.cursor_base(), count, len))
    }

    pub fn commit(&mut self, count: u32) {
        for i in self.inflight..self.inflight + count as usize {
            let id = self.recs[i].id;
            let seq = self.tail_seq + i as u64;
            if i >= self.sent {
                assert_eq!(seq, self.next_seq, "model: seqs are dense");
                assert_eq!(self.seqs[id], None);
                self.seqs[id] = Some(seq);
                self.next_seq += 1;
            } else {
                assert_eq!(self.seqs[id], Some(seq), "model: a resend keeps its seq");
            }
            self.delivered[id] += 1;
        }
        self.inflight += count as usize;
        self.sent = self.sent.max(self.inflight);
        self.batches.push_back(count);
    }

    pub fn ack(&mut self, up_to: u64) -> AckOutcome {
        let mut out = AckOutcome::default();
        if up_to < self.tail_seq {
            return out;
        }
        out.beyond_sent = up_to >= self.next_seq;
        let target = up_to.saturating_add(1).min(self.next_seq);
        let n = (target - self.tail_seq) as usize;
        for _ in 0..n {
            let r = self.recs.pop_front().expect("acked records are stored");
            assert_eq!(self.seqs[r.id], Some(self.tail_seq));
            self.fates[r.id] = Fate::Acked;
            self.ack_log.push(r.id);
            self.acked_ts = r.ts;
            if self.protected == Some(r.id) {
                self.protected = None;
            }
            self.tail_seq += 1;
        }
        self.inflight = self.inflight.saturating_sub(n);
        self.sent -= n;
        let mut rem = n as u32;
        while rem > 0 {
            let Some(front) = self.batches.front_mut() else { break };
            if *front <= rem {
                rem -= *front;
                self.batches.pop_front();
            } else {
                *front -= rem;
                rem = 0;
            }
        }
        out.acked = n as u64;
        self.counters.acked += out.acked;
        out
    }

    pub fn rewind(&mut self) {
        self.inflight = 0;
        self.batches.clear();
    }

    pub fn resume(&mut self, server_next: u64) -> u64 {
        let acked = if server_next > 0 { self.ack(server_next - 1).acked } else { 0 };
        if server_next > self.next_seq && server_next <= MAX_RESUME_SEQ && self.sent == 0 {
            self.tail_seq = server_next;
            self.next_seq = server_next;
        }
        acked
    }

    /// The model's own consistency.
    pub fn self_check(&self) {
        assert!(self.inflight <= self.sent && self.sent <= self.recs.len());
        assert_eq!(self.batches.iter().map(|&c| c as usize).sum::<usize>(), self.inflight);
        assert!(self.batches.iter().all(|&c| c > 0));
        assert_eq!(self.next_seq, self.tail_seq + self.sent as u64);
        for (i, r) in self.recs.iter().enumerate() {
            let want = (i < self.sent).then(|| self.tail_seq + i as u64);
            assert_eq!(self.seqs[r.id], want);
        }
    }
}

// ---- checks ------------------------------------------------------------------

/// Decodes batch bytes and compares them with `want`, record by record.
pub fn check_records(bytes: &[u8], base_ts: u64, want: &[&MRec]) {
    let got: Vec<_> = EntryIter::new(bytes, base_ts).collect();
    assert_eq!(got.len(), want.len(), "records in batch");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.unwrap_or_else(|e| panic!("record {k} (id {}) malformed: {e:?}", w.id));
        assert_eq!(g.data_type, w.data_type, "data_type of record {k} (id {})", w.id);
        assert_eq!(g.timestamp_ms, w.ts, "timestamp of record {k} (id {})", w.id);
        assert_eq!(g.payload, &w.payload[..], "payload of record {k} (id {})", w.id);
    }
}

/// Everything observable, compared with the model.
pub fn check(ring: &Ring<'_>, m: &Model) {
    m.self_check();
    let used = m.used();
    assert_eq!(ring.capacity(), m.cap);
    assert_eq!(ring.used_bytes(), used, "used_bytes");
    assert_eq!(ring.used_bytes() + ring.free_bytes(), ring.capacity(), "used + free == capacity");
    assert_eq!(ring.inflight_bytes(), m.inflight_bytes(), "inflight_bytes");
    assert_eq!(ring.pending_bytes(), used - m.inflight_bytes(), "pending_bytes");
    assert_eq!(ring.len(), m.recs.len() as u64, "len");
    assert_eq!(ring.is_empty(), m.recs.is_empty());
    assert_eq!(ring.inflight_records(), m.inflight as u64, "inflight_records");
    assert_eq!(ring.pending_records(), (m.recs.len() - m.inflight) as u64, "pending_records");
    assert_eq!(ring.inflight_batches(), m.batches.len(), "inflight_batches");
    assert_eq!(ring.first_unacked_seq(), m.tail_seq, "first_unacked_seq");
    assert_eq!(ring.next_seq(), m.next_seq, "next_seq");
    let c = ring.counters();
    assert_eq!(c, m.counters, "counters");
    assert_eq!(c.pushed, c.acked + c.dropped_evicted + ring.len(), "pushed == acked + evicted + len");
    assert_eq!(c.pushed + c.dropped_full + c.dropped_too_large, m.fates.len() as u64);
    if m.cfg.policy == OverflowPolicy::RejectNew {
        assert_eq!(c.dropped_evicted, 0);
    }
    let next = m.recs.get(m.inflight).map(|r| r.record().entry_len(m.cursor_base()));
    assert_eq!(ring.next_pending_len(), next, "next_pending_len");
    // Peek at everything pending without committing: the bytes after the
    // cursor must be exactly the model's pending records.
    let want = m.plan(usize::MAX, u32::MAX);
    let plan = ring.plan_batch(usize::MAX, u32::MAX);
    assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "peek plan");
    if let Some(p) = plan {
        let mut out = vec![0u8; p.len];
        assert!(ring.copy_batch(&p, &mut out), "peek copy");
        let pending: Vec<&MRec> = m.recs.range(m.inflight..).collect();
        check_records(&out, p.base_ts, &pending);
    }
}

// ---- the harness -------------------------------------------------------------

/// How many plans a harness can keep at once.
pub const SLOTS: usize = 3;

/// A plan kept across other operations.
struct Planned {
    plan: BatchPlan,
    /// The records it covered when it was made.
    ids: Vec<usize>,
    /// Whether a push evicted anything since.
    evicted_since: bool,
}

/// A ring and its model, driven by the same operations. Every method
/// checks the ring's answer against the model's and panics on a mismatch;
/// call [`Harness::check`] after each operation.
pub struct Harness<'a> {
    pub ring: Ring<'a>,
    pub m: Model,
    /// Plans kept for a later [`Harness::commit_planned`] or
    /// [`Harness::commit_blind`].
    slots: [Option<Planned>; SLOTS],
    /// Timestamp of the last push attempt (base of relative timestamps).
    pub last_ts: u64,
    /// The class every push counts apart.
    counted: CountedClass,
}

impl<'a> Harness<'a> {
    /// A ring on `mem` (its whole length is the capacity) whose pushes
    /// count `counted` apart, checked once.
    pub fn new(mem: &'a mut [u8], cfg: RingConfig, counted: CountedClass) -> Self {
        let cap = mem.len();
        let h = Harness { ring: Ring::new(mem, cfg), m: Model::new(cap, cfg), slots: [None, None, None], last_ts: 0, counted };
        h.check();
        h
    }

    /// Everything observable, compared with the model.
    pub fn check(&self) {
        check(&self.ring, &self.m);
    }

    /// Pushes a record of `len` bytes (derived from `fill`) with timestamp
    /// `ts`, which becomes `last_ts`, as `kind`.
    pub fn push(&mut self, data_type: u32, ts: u64, len: usize, fill: u8, kind: EntryKind) {
        self.last_ts = ts;
        let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i as u8).wrapping_mul(31))).collect();
        let got = self.ring.push_as(&Record::new(data_type, ts, &payload), kind, self.counted);
        let (want, evicted) = self.m.push(data_type, ts, payload, kind, self.counted);
        assert_eq!(got, want, "push outcome");
        if !evicted.is_empty() {
            for p in self.slots.iter_mut().flatten() {
                p.evicted_since = true;
            }
        }
    }

    /// plan + copy + commit, back to back (with `short_buf`, first a copy
    /// into a buffer one byte short, which must fail); checks the copied
    /// records against the model. Returns the plan committed, if any.
    pub fn batch(&mut self, max_bytes: usize, max_records: u32, short_buf: bool) -> Option<BatchPlan> {
        let (ring, m) = (&mut self.ring, &mut self.m);
        let want = m.plan(max_bytes, max_records);
        let plan = ring.plan_batch(max_bytes, max_records);
        assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "plan_batch");
        let plan = plan?;
        let mut out = vec![0u8; plan.len];
        if short_buf && plan.len > 0 {
            assert!(!ring.copy_batch(&plan, &mut out[..plan.len - 1]), "copy into a short buffer");
        }
        assert!(ring.copy_batch(&plan, &mut out), "copy_batch of a fresh plan");
        let want_recs: Vec<&MRec> = m.recs.range(m.inflight..m.inflight + plan.count as usize).collect();
        check_records(&out, plan.base_ts, &want_recs);
        assert!(ring.commit_batch(&plan), "commit_batch of a fresh plan");
        assert!(!ring.commit_batch(&plan), "a committed plan is stale");
        m.commit(plan.count);
        Some(plan)
    }

    /// plan only; the plan (if any) is kept in `slot % SLOTS`, replacing
    /// what was there.
    pub fn plan(&mut self, slot: usize, max_bytes: usize, max_records: u32) {
        let want = self.m.plan(max_bytes, max_records);
        let plan = self.ring.plan_batch(max_bytes, max_records);
        assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "plan_batch");
        self.slots[slot % SLOTS] =
            plan.map(|plan| Planned { plan, ids: self.m.ids_at_cursor(plan.count as usize), evicted_since: false });
    }

    /// Takes the plan kept in `slot % SLOTS` and whether the model still
    /// deems it valid: the same records at the cursor, with the same
    /// sequence number and timestamp base.
    fn take_planned(&mut self, slot: usize) -> Option<(Planned, bool)> {
        let p = self.slots[slot % SLOTS].take()?;
        let m = &self.m;
        let valid = m.ids_at_cursor(p.ids.len()) == p.ids
            && m.cursor_seq() == p.plan.first_seq
            && m.cursor_base() == p.plan.base_ts;
        Some((p, valid))
    }

    /// copy + commit of the plan kept in `slot % SLOTS`, whatever happened
    /// since; nothing if the slot is empty. The copy goes into `out_len`
    /// bytes (at most `plan.len + 16`), or exactly `plan.len` with `None`.
    pub fn commit_planned(&mut self, slot: usize, out_len: Option<usize>) {
        let Some((Planned { plan, ids, evicted_since }, valid)) = self.take_planned(slot) else { return };
        let out_len = out_len.map_or(plan.len, |n| n.min(plan.len + 16));
        let mut out = vec![0u8; out_len];
        if self.ring.copy_batch(&plan, &mut out) {
            let now = self.m.ids_at_cursor(ids.len());
            assert!(valid, "copy_batch accepted a stale plan {plan:?} (records now {now:?}, were {ids:?})");
            assert!(out_len >= plan.len, "copy_batch into a short buffer");
            let m = &self.m;
            let want_recs: Vec<&MRec> = m.recs.range(m.inflight..m.inflight + ids.len()).collect();
            check_records(&out[..plan.len], plan.base_ts, &want_recs);
            assert!(self.ring.commit_batch(&plan), "commit_batch after copy_batch");
            self.m.commit(plan.count);
        } else if out_len >= plan.len {
            // Evictions may invalidate a plan conservatively.
            assert!(!valid || evicted_since, "copy_batch refused a valid plan {plan:?}");
            assert!(!self.ring.commit_batch(&plan), "commit_batch of a plan copy_batch refused");
        }
    }

    /// commit of the plan kept in `slot % SLOTS` without copying it first;
    /// nothing if the slot is empty.
    pub fn commit_blind(&mut self, slot: usize) {
        let Some((Planned { plan, evicted_since, .. }, valid)) = self.take_planned(slot) else { return };
        if self.ring.commit_batch(&plan) {
            assert!(valid, "commit_batch accepted a stale plan {plan:?}");
            self.m.commit(plan.count);
        } else {
            assert!(
                !valid || evicted_since || self.m.batches.len() >= MAX_INFLIGHT_BATCHES,
                "commit_batch refused a valid plan {plan:?}"
            );
        }
    }

    pub fn ack(&mut self, up_to: u64) {
        assert_eq!(self.ring.ack(up_to), self.m.ack(up_to), "ack({up_to})");
    }

    pub fn rewind(&mut self) {
        self.ring.rewind();
        self.m.rewind();
    }

    pub fn resume(&mut self, server_next: u64) {
        assert_eq!(self.ring.resume(server_next), self.m.resume(server_next), "resume({server_next})");
    }

    /// Reconnects and sends and acks everything left, then checks every
    /// push attempt's fate.
    pub fn drain(&mut self) {
        self.rewind();
        self.check();
        let mut rounds = 0;
        while !self.m.recs.is_empty() {
            rounds += 1;
            assert!(rounds <= 2 * self.m.fates.len() + 2, "drain does not progress");
            // Alternate small and whole batches; ack each right away.
            let limit = if rounds % 2 == 0 { 1 } else { u32::MAX };
            let plan = self.batch(usize::MAX, limit, false).expect("nothing to send while records remain");
            let last = plan.first_seq + u64::from(plan.count) - 1;
            assert_eq!(self.ring.ack(last), self.m.ack(last), "drain ack");
            self.check();
        }
        assert!(self.ring.is_empty());
        let c = self.ring.counters();
        assert_eq!(c.pushed, c.acked + c.dropped_evicted, "drained: pushed == acked + evicted");
        let m = &self.m;
        for (id, fate) in m.fates.iter().enumerate() {
            match fate {
                Fate::Acked => assert!(m.delivered[id] >= 1, "id {id} acked but never delivered"),
                Fate::Evicted | Fate::RefusedFull | Fate::RefusedTooLarge => {
                    assert_eq!(m.delivered[id], 0, "id {id} delivered but {fate:?}")
                }
                Fate::Stored => panic!("id {id} neither acked nor dropped"),
            }
        }
        // Acked in push order, with increasing sequence numbers.
        let acked: Vec<usize> = (0..m.fates.len()).filter(|&id| m.fates[id] == Fate::Acked).collect();
        assert_eq!(m.ack_log, acked, "acked in push order");
        let seqs: Vec<u64> = acked.iter().map(|&id| m.seqs[id].expect("acked records have a seq")).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase: {seqs:?}");
    }
}

//! Model test of the send ring ([`agent_core::ring`]).
//!
//! Random operation sequences (push, batch, ack, rewind, resume, and plans
//! kept across other operations) run against the ring and against a plain
//! reference model built on a `VecDeque` of records. After every step the
//! ring's getters, counters and pending bytes must match the model; every
//! batch is decoded and compared record by record; at the end everything is
//! drained and every push attempt must have exactly one fate: acked (after
//! being delivered in order), evicted, or refused.
//!
//! `PROPTEST_CASES` overrides the number of cases.

use std::collections::VecDeque;

use agent_core::record::{data_type, EntryIter, Record};
use agent_core::ring::{
    AckOutcome, BatchPlan, OverflowPolicy, PushError, Ring, RingConfig, RingCounters, MAX_INFLIGHT_BATCHES,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const DEFAULT_CASES: u32 = 2000;
const MAX_OPS: usize = 100;

// ---- operations ----------------------------------------------------------

/// A timestamp, relative to the previous push attempt or absolute.
#[derive(Clone, Copy, Debug)]
enum Ts {
    Rel(i64),
    Abs(u64),
}

/// A payload length: small, or a fraction of `max_record + 5`.
#[derive(Clone, Copy, Debug)]
enum Len {
    Small(usize),
    Frac(u16),
}

/// An ack target, resolved against the model's sequence numbers.
#[derive(Clone, Copy, Debug)]
enum AckTo {
    /// `tail_seq - k`: already acked.
    Stale(u64),
    /// Somewhere in `tail_seq - 1 ..= next_seq - 1`.
    InRange(u64),
    /// `next_seq + k`: never sent.
    Beyond(u64),
    Max,
}

/// A resume point, resolved against the model's sequence numbers.
#[derive(Clone, Copy, Debug)]
enum ResumeTo {
    Zero,
    Behind(u64),
    InRange(u64),
    Ahead(u64),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Push { data_type: u32, ts: Ts, len: Len, fill: u8 },
    /// plan + copy + commit, back to back.
    Batch { max_bytes: usize, max_records: u32, short_buf: bool },
    /// Several small batches in a row, to reach `MAX_INFLIGHT_BATCHES`.
    Burst { batches: u8, max_records: u32 },
    /// plan only; the plan is kept for a later `CommitPlanned`.
    Plan { max_bytes: usize, max_records: u32 },
    /// copy + commit of the kept plan, whatever happened since.
    CommitPlanned,
    Ack(AckTo),
    Rewind,
    Resume(ResumeTo),
}

fn ts_strategy() -> impl Strategy<Value = Ts> {
    prop_oneof![
        8 => (-50i64..200).prop_map(Ts::Rel),
        2 => (-100_000i64..1_000_000).prop_map(Ts::Rel),
        1 => any::<i64>().prop_map(Ts::Rel),
        1 => prop_oneof![Just(0u64), Just(u64::MAX), 0u64..1000, any::<u64>()].prop_map(Ts::Abs),
    ]
}

fn max_bytes_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..600, 1 => Just(usize::MAX)]
}

fn max_records_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 0u32..6, 1 => Just(u32::MAX)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let push = (
        prop_oneof![3 => Just(data_type::AGENT_HEARTBEAT), 5 => 0u32..20, 1 => Just(data_type::PLUGIN_HEARTBEAT), 1 => any::<u32>()],
        ts_strategy(),
        prop_oneof![(0usize..8).prop_map(Len::Small), any::<u16>().prop_map(Len::Frac)],
        any::<u8>(),
    )
        .prop_map(|(data_type, ts, len, fill)| Op::Push { data_type, ts, len, fill });
    let batch = (max_bytes_strategy(), max_records_strategy(), prop::bool::weighted(0.1))
        .prop_map(|(max_bytes, max_records, short_buf)| Op::Batch { max_bytes, max_records, short_buf });
    let burst = (2u8..=10, 1u32..3).prop_map(|(batches, max_records)| Op::Burst { batches, max_records });
    let plan =
        (max_bytes_strategy(), max_records_strategy()).prop_map(|(max_bytes, max_records)| Op::Plan { max_bytes, max_records });
    let ack = prop_oneof![
        1 => (1u64..4).prop_map(AckTo::Stale),
        4 => any::<u64>().prop_map(AckTo::InRange),
        1 => (0u64..4).prop_map(AckTo::Beyond),
        1 => Just(AckTo::Max),
    ]
    .prop_map(Op::Ack);
    let resume = prop_oneof![
        1 => Just(ResumeTo::Zero),
        1 => (1u64..4).prop_map(ResumeTo::Behind),
        3 => any::<u64>().prop_map(ResumeTo::InRange),
        1 => prop_oneof![1u64..4, 1000u64..100_000, Just(1u64 << 40)].prop_map(ResumeTo::Ahead),
    ]
    .prop_map(Op::Resume);
    prop_oneof![
        10 => push,
        4 => batch,
        1 => burst,
        1 => plan,
        1 => Just(Op::CommitPlanned),
        4 => ack,
        1 => Just(Op::Rewind),
        1 => resume,
    ]
}

/// Ring capacity, `max_record`, policy.
fn ring_strategy() -> impl Strategy<Value = (usize, usize, OverflowPolicy)> {
    (
        prop_oneof![16usize..64, 16usize..=512],
        any::<u16>(),
        prop_oneof![Just(OverflowPolicy::RejectNew), Just(OverflowPolicy::DropOldest)],
    )
        .prop_map(|(cap, mr, policy)| (cap, mr as usize % (cap + 9), policy))
}

// ---- the model -------------------------------------------------------------

#[derive(Clone, Debug)]
struct MRec {
    /// Index of the push attempt that stored it.
    id: usize,
    data_type: u32,
    ts: u64,
    payload: Vec<u8>,
}

impl MRec {
    fn record(&self) -> Record<'_> {
        Record::new(self.data_type, self.ts, &self.payload)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Stored,
    Acked,
    Evicted,
    RefusedFull,
    RefusedTooLarge,
}

/// The reference model: records in stream order, the first `inflight` of
/// them sent on this connection, the first `sent` sent on some connection
/// (so `recs[inflight..sent]` awaits resend), the rest never sent.
struct Model {
    cap: usize,
    cfg: RingConfig,
    recs: VecDeque<MRec>,
    inflight: usize,
    sent: usize,
    /// Records per in-flight batch (what is left of it), oldest first.
    batches: VecDeque<u32>,
    /// Sequence number of `recs[0]` when it is sent; `recs[i]` has
    /// `tail_seq + i` for `i < sent`.
    tail_seq: u64,
    next_seq: u64,
    /// Timestamp of the last acked record: what `recs[0]` is relative to.
    acked_ts: u64,
    /// Id of the newest heartbeat still stored.
    protected: Option<usize>,
    counters: RingCounters,
    /// Per push attempt.
    fates: Vec<Fate>,
    delivered: Vec<u32>,
    seqs: Vec<Option<u64>>,
    /// Ids in the order they were acked.
    ack_log: Vec<usize>,
    /// Timestamp of the last push attempt (base of `Ts::Rel`).
    last_ts: u64,
}

fn bytes_of<'a>(recs: impl IntoIterator<Item = &'a MRec>, mut prev: u64) -> usize {
    let mut n = 0;
    for r in recs {
        n += r.record().entry_len(prev);
        prev = r.ts;
    }
    n
}

impl Model {
    fn new(cap: usize, cfg: RingConfig) -> Self {
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
            last_ts: 0,
        }
    }

    fn used(&self) -> usize {
        bytes_of(&self.recs, self.acked_ts)
    }

    fn inflight_bytes(&self) -> usize {
        bytes_of(self.recs.range(..self.inflight), self.acked_ts)
    }

    fn head_base(&self) -> u64 {
        self.recs.back().map_or(self.acked_ts, |r| r.ts)
    }

    fn cursor_base(&self) -> u64 {
        if self.inflight == 0 {
            self.acked_ts
        } else {
            self.recs[self.inflight - 1].ts
        }
    }

    fn cursor_seq(&self) -> u64 {
        self.tail_seq + self.inflight as u64
    }

    /// Returns the outcome and the ids evicted.
    fn push(&mut self, data_type: u32, ts: u64, payload: Vec<u8>) -> (Result<(), PushError>, Vec<usize>) {
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
        let heartbeat = data_type == data_type::AGENT_HEARTBEAT;
        // A new heartbeat takes the protection from the previous one.
        let keep = if heartbeat { None } else { self.protected };
        let mut evicted = Vec::new();
        if self.used() + need(self.head_base()) > self.cap {
            if self.cfg.policy == OverflowPolicy::RejectNew {
                self.fates[id] = Fate::RefusedFull;
                self.counters.dropped_full += 1;
                return (Err(PushError::Full), evicted);
            }
            // What would be left if every evictable record went.
            let survivors: Vec<&MRec> =
                self.recs.iter().enumerate().filter(|&(i, r)| i < self.sent || Some(r.id) == keep).map(|(_, r)| r).collect();
            let prev = survivors.last().map_or(self.acked_ts, |r| r.ts);
            if bytes_of(survivors.iter().copied(), self.acked_ts) + need(prev) > self.cap {
                self.fates[id] = Fate::RefusedFull;
                self.counters.dropped_full += 1;
                return (Err(PushError::Full), evicted);
            }
            // Evict the oldest never-sent record other than the protected
            // heartbeat until the new one fits.
            while self.used() + need(self.head_base()) > self.cap {
                let i = (self.sent..self.recs.len())
                    .find(|&i| Some(self.recs[i].id) != keep)
                    .expect("model: survivors fit, so something is evictable");
                let r = self.recs.remove(i).expect("index in range");
                assert!(i >= self.sent, "model evicts only never-sent records");
                self.fates[r.id] = Fate::Evicted;
                self.counters.dropped_evicted += 1;
                if self.protected == Some(r.id) {
                    assert!(heartbeat, "model evicts the protected heartbeat only for a new heartbeat");
                    self.protected = None;
                }
                evicted.push(r.id);
            }
        }
        self.recs.push_back(rec);
        self.counters.pushed += 1;
        if heartbeat {
            self.protected = Some(id);
        }
        (Ok(()), evicted)
    }

    /// What `plan_batch` should return: (first_seq, base_ts, count, len).
    fn plan(&self, max_bytes: usize, max_records: u32) -> Option<(u64, u64, u32, usize)> {
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

    fn commit(&mut self, count: u32) {
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

    fn ack(&mut self, up_to: u64) -> AckOutcome {
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

    fn rewind(&mut self) {
        self.inflight = 0;
        self.batches.clear();
    }

    fn resume(&mut self, server_next: u64) -> u64 {
        let acked = if server_next > 0 { self.ack(server_next - 1).acked } else { 0 };
        if server_next > self.next_seq && self.sent == 0 {
            self.tail_seq = server_next;
            self.next_seq = server_next;
        }
        acked
    }

    /// The model's own consistency.
    fn self_check(&self) {
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

// ---- the harness -----------------------------------------------------------

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// A plan kept across other operations.
struct Planned {
    plan: BatchPlan,
    ids: Vec<usize>,
    evicted_since: bool,
}

/// Decodes batch bytes and compares them with `want`.
fn check_records(bytes: &[u8], base_ts: u64, want: &[&MRec]) -> Result<(), TestCaseError> {
    let got: Vec<_> = EntryIter::new(bytes, base_ts).collect();
    prop_assert_eq!(got.len(), want.len(), "records in batch");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.map_err(|e| fail(format!("record {k} (id {}) malformed: {e:?}", w.id)))?;
        prop_assert_eq!(g.data_type, w.data_type, "data_type of record {} (id {})", k, w.id);
        prop_assert_eq!(g.timestamp_ms, w.ts, "timestamp of record {} (id {})", k, w.id);
        prop_assert_eq!(g.payload, &w.payload[..], "payload of record {} (id {})", k, w.id);
    }
    Ok(())
}

/// Everything observable, after every step.
fn check(ring: &Ring<'_>, m: &Model) -> Result<(), TestCaseError> {
    m.self_check();
    let used = m.used();
    prop_assert_eq!(ring.capacity(), m.cap);
    prop_assert_eq!(ring.used_bytes(), used, "used_bytes");
    prop_assert_eq!(ring.used_bytes() + ring.free_bytes(), ring.capacity());
    prop_assert_eq!(ring.inflight_bytes(), m.inflight_bytes(), "inflight_bytes");
    prop_assert_eq!(ring.pending_bytes(), used - m.inflight_bytes(), "pending_bytes");
    prop_assert_eq!(ring.len(), m.recs.len() as u64, "len");
    prop_assert_eq!(ring.is_empty(), m.recs.is_empty());
    prop_assert_eq!(ring.inflight_records(), m.inflight as u64, "inflight_records");
    prop_assert_eq!(ring.pending_records(), (m.recs.len() - m.inflight) as u64, "pending_records");
    prop_assert_eq!(ring.inflight_batches(), m.batches.len(), "inflight_batches");
    prop_assert_eq!(ring.first_unacked_seq(), m.tail_seq, "first_unacked_seq");
    prop_assert_eq!(ring.next_seq(), m.next_seq, "next_seq");
    let c = ring.counters();
    prop_assert_eq!(c, m.counters, "counters");
    prop_assert_eq!(c.pushed, c.acked + c.dropped_evicted + ring.len());
    prop_assert_eq!(c.pushed + c.dropped_full + c.dropped_too_large, m.fates.len() as u64);
    if m.cfg.policy == OverflowPolicy::RejectNew {
        prop_assert_eq!(c.dropped_evicted, 0);
    }
    // Peek at everything pending without committing: the bytes after the
    // cursor must be exactly the model's pending records.
    let want = m.plan(usize::MAX, u32::MAX);
    let plan = ring.plan_batch(usize::MAX, u32::MAX);
    prop_assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "peek plan");
    if let Some(p) = plan {
        let mut out = vec![0u8; p.len];
        prop_assert!(ring.copy_batch(&p, &mut out), "peek copy");
        let pending: Vec<&MRec> = m.recs.range(m.inflight..).collect();
        check_records(&out, p.base_ts, &pending)?;
    }
    Ok(())
}

fn resolve_ack(m: &Model, to: AckTo) -> u64 {
    let span = m.next_seq - m.tail_seq;
    match to {
        AckTo::Stale(k) => m.tail_seq.saturating_sub(k),
        AckTo::InRange(r) => (m.tail_seq + r % (span + 1)).saturating_sub(1),
        AckTo::Beyond(k) => m.next_seq + k,
        AckTo::Max => u64::MAX,
    }
}

fn resolve_resume(m: &Model, to: ResumeTo) -> u64 {
    let span = m.next_seq - m.tail_seq;
    match to {
        ResumeTo::Zero => 0,
        ResumeTo::Behind(k) => m.tail_seq.saturating_sub(k),
        ResumeTo::InRange(r) => m.tail_seq + r % (span + 1),
        ResumeTo::Ahead(k) => m.next_seq + k,
    }
}

/// plan + copy + commit; returns the plan committed, if any.
fn batch(
    ring: &mut Ring<'_>,
    m: &mut Model,
    max_bytes: usize,
    max_records: u32,
    short_buf: bool,
) -> Result<Option<BatchPlan>, TestCaseError> {
    let want = m.plan(max_bytes, max_records);
    let plan = ring.plan_batch(max_bytes, max_records);
    prop_assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "plan_batch");
    let Some(plan) = plan else { return Ok(None) };
    let mut out = vec![0u8; plan.len];
    if short_buf {
        prop_assert!(!ring.copy_batch(&plan, &mut out[..plan.len - 1]), "copy into a short buffer");
    }
    prop_assert!(ring.copy_batch(&plan, &mut out), "copy_batch");
    let want_recs: Vec<&MRec> = m.recs.range(m.inflight..m.inflight + plan.count as usize).collect();
    check_records(&out, plan.base_ts, &want_recs)?;
    prop_assert!(ring.commit_batch(&plan), "commit_batch");
    prop_assert!(!ring.commit_batch(&plan), "a committed plan is stale");
    m.commit(plan.count);
    Ok(Some(plan))
}

fn step(ring: &mut Ring<'_>, m: &mut Model, planned: &mut Option<Planned>, op: Op) -> Result<(), TestCaseError> {
    match op {
        Op::Push { data_type, ts, len, fill } => {
            let ts = match ts {
                Ts::Rel(d) => m.last_ts.wrapping_add(d as u64),
                Ts::Abs(t) => t,
            };
            m.last_ts = ts;
            let len = match len {
                Len::Small(n) => n,
                Len::Frac(f) => f as usize % (m.cfg.max_record + 5),
            };
            let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i as u8).wrapping_mul(31))).collect();
            let got = ring.push(&Record::new(data_type, ts, &payload));
            let (want, evicted) = m.push(data_type, ts, payload);
            prop_assert_eq!(got, want, "push outcome");
            if !evicted.is_empty() {
                if let Some(p) = planned.as_mut() {
                    p.evicted_since = true;
                }
            }
        }
        Op::Batch { max_bytes, max_records, short_buf } => {
            batch(ring, m, max_bytes, max_records, short_buf)?;
        }
        Op::Burst { batches, max_records } => {
            for _ in 0..batches {
                batch(ring, m, usize::MAX, max_records, false)?;
            }
        }
        Op::Plan { max_bytes, max_records } => {
            let want = m.plan(max_bytes, max_records);
            let plan = ring.plan_batch(max_bytes, max_records);
            prop_assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "plan_batch");
            *planned = plan.map(|plan| Planned {
                plan,
                ids: m.recs.range(m.inflight..m.inflight + plan.count as usize).map(|r| r.id).collect(),
                evicted_since: false,
            });
        }
        Op::CommitPlanned => {
            let Some(Planned { plan, ids, evicted_since }) = planned.take() else { return Ok(()) };
            // Still valid in the model: the same records at the cursor, with
            // the same sequence number and timestamp base.
            let now: Vec<usize> = m.recs.range(m.inflight..).take(ids.len()).map(|r| r.id).collect();
            let valid = now == ids && m.cursor_seq() == plan.first_seq && m.cursor_base() == plan.base_ts;
            let mut out = vec![0u8; plan.len];
            let copied = ring.copy_batch(&plan, &mut out);
            if copied {
                prop_assert!(valid, "copy_batch accepted a stale plan {:?} (records now {:?}, were {:?})", plan, now, ids);
                let want_recs: Vec<&MRec> = m.recs.range(m.inflight..m.inflight + ids.len()).collect();
                check_records(&out, plan.base_ts, &want_recs)?;
                prop_assert!(ring.commit_batch(&plan), "commit_batch after copy_batch");
                m.commit(plan.count);
            } else {
                // Evictions may invalidate a plan conservatively.
                prop_assert!(!valid || evicted_since, "copy_batch refused a valid plan {:?}", plan);
                prop_assert!(!ring.commit_batch(&plan), "commit_batch of a plan copy_batch refused");
            }
        }
        Op::Ack(to) => {
            let up_to = resolve_ack(m, to);
            let got = ring.ack(up_to);
            prop_assert_eq!(got, m.ack(up_to), "ack({})", up_to);
        }
        Op::Rewind => {
            ring.rewind();
            m.rewind();
        }
        Op::Resume(to) => {
            let server_next = resolve_resume(m, to);
            let got = ring.resume(server_next);
            prop_assert_eq!(got, m.resume(server_next), "resume({})", server_next);
        }
    }
    Ok(())
}

/// Reconnects and sends and acks everything left, then checks every push
/// attempt's fate.
fn drain(ring: &mut Ring<'_>, m: &mut Model) -> Result<(), TestCaseError> {
    ring.rewind();
    m.rewind();
    check(ring, m)?;
    let mut rounds = 0;
    while !m.recs.is_empty() {
        rounds += 1;
        prop_assert!(rounds <= 2 * m.fates.len() + 2, "drain does not progress");
        // Alternate small and whole batches; ack each right away.
        let limit = if rounds % 2 == 0 { 1 } else { u32::MAX };
        let plan = batch(ring, m, usize::MAX, limit, false)?
            .ok_or_else(|| fail("nothing to send while records remain".into()))?;
        let last = plan.first_seq + u64::from(plan.count) - 1;
        prop_assert_eq!(ring.ack(last), m.ack(last), "drain ack");
        check(ring, m)?;
    }
    prop_assert!(ring.is_empty());
    let c = ring.counters();
    prop_assert_eq!(c.pushed, c.acked + c.dropped_evicted);
    for (id, fate) in m.fates.iter().enumerate() {
        match fate {
            Fate::Acked => prop_assert!(m.delivered[id] >= 1, "id {} acked but never delivered", id),
            Fate::Evicted | Fate::RefusedFull | Fate::RefusedTooLarge => {
                prop_assert_eq!(m.delivered[id], 0, "id {} delivered but {:?}", id, fate)
            }
            Fate::Stored => return Err(fail(format!("id {id} neither acked nor dropped"))),
        }
    }
    // Acked in push order, with increasing sequence numbers.
    let acked: Vec<usize> = (0..m.fates.len()).filter(|&id| m.fates[id] == Fate::Acked).collect();
    prop_assert_eq!(&m.ack_log, &acked);
    let seqs: Vec<u64> = acked.iter().map(|&id| m.seqs[id].expect("acked records have a seq")).collect();
    prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase: {:?}", seqs);
    Ok(())
}

fn run(cap: usize, max_record: usize, policy: OverflowPolicy, ops: &[Op]) -> Result<(), TestCaseError> {
    let cfg = RingConfig { max_record, policy };
    let mut mem = vec![0xA5u8; cap];
    let mut ring = Ring::new(&mut mem, cfg);
    let mut m = Model::new(cap, cfg);
    let mut planned = None;
    check(&ring, &m)?;
    for (i, &op) in ops.iter().enumerate() {
        step(&mut ring, &mut m, &mut planned, op)
            .and_then(|()| check(&ring, &m))
            .map_err(|e| fail(format!("step {i} {op:?}: {e}\nring: {ring:?}")))?;
    }
    drain(&mut ring, &mut m).map_err(|e| fail(format!("drain: {e}\nring: {ring:?}")))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Keep the tests directory clean; a failure prints the minimal case.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_matches_model(
        (cap, max_record, policy) in ring_strategy(),
        ops in prop::collection::vec(op_strategy(), 0..MAX_OPS),
    ) {
        run(cap, max_record, policy, &ops)?;
    }
}

// ---- regressions -------------------------------------------------------------

/// Sends everything pending in one batch and acks it; returns the records as
/// (seq, data_type, timestamp, payload).
fn send_all(ring: &mut Ring<'_>) -> Vec<(u64, u32, u64, Vec<u8>)> {
    let Some(plan) = ring.plan_batch(usize::MAX, u32::MAX) else { return Vec::new() };
    let mut out = vec![0u8; plan.len];
    assert!(ring.copy_batch(&plan, &mut out));
    assert!(ring.commit_batch(&plan));
    let recs = EntryIter::new(&out, plan.base_ts)
        .zip(plan.first_seq..)
        .map(|(r, seq)| {
            let r = r.unwrap();
            (seq, r.data_type, r.timestamp_ms, r.payload.to_vec())
        })
        .collect();
    ring.ack(plan.first_seq + u64::from(plan.count) - 1);
    recs
}

/// `DropOldest` used to estimate the room eviction makes from the current
/// entry sizes. Evicting re-bases timestamp deltas, so the estimate could be
/// too optimistic: it evicted records and then refused the new one anyway.
#[test]
fn drop_oldest_refusal_evicts_nothing() {
    let mut mem = [0u8; 17];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 24, policy: OverflowPolicy::DropOldest });
    ring.push(&Record::new(0, 8225, b"")).unwrap(); // 5 bytes (3-byte delta from 0)
    // 16 bytes after the record above, 18 once it is gone (delta from 0 again).
    let hb = Record::new(data_type::AGENT_HEARTBEAT, 8225, &[1; 12]);
    assert_eq!(ring.push(&hb), Err(PushError::Full));
    let c = ring.counters();
    assert_eq!((c.pushed, c.dropped_full, c.dropped_evicted), (1, 1, 0));
    assert_eq!(send_all(&mut ring), vec![(0, 0, 8225, vec![])]);
}

/// ... and too pessimistic: the protected heartbeat's header shrinks when the
/// record before it is evicted, which makes room the old estimate missed.
#[test]
fn drop_oldest_counts_rebased_headers() {
    let mut mem = [0u8; 16];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::DropOldest });
    ring.push(&Record::new(0, 10_000, b"")).unwrap(); // 5 bytes
    ring.push(&Record::new(data_type::AGENT_HEARTBEAT, 0, b"")).unwrap(); // 6 bytes, 4 once re-based to 0
    ring.push(&Record::new(5, 0, &[7; 9])).unwrap(); // 12 bytes: fits only after the eviction
    assert_eq!(ring.counters().dropped_evicted, 1);
    assert_eq!(ring.used_bytes(), 16);
    assert_eq!(
        send_all(&mut ring),
        vec![(0, data_type::AGENT_HEARTBEAT, 0, vec![]), (1, 5, 0, vec![7; 9])]
    );
}

/// The protected heartbeat was remembered by position once per push; an
/// eviction that moved the bytes before it (the heartbeat among them) left
/// that position stale, and the next eviction of the same push took the
/// heartbeat.
#[test]
fn drop_oldest_keeps_heartbeat_moved_by_eviction() {
    let mut mem = [0u8; 48];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::DropOldest });
    let hb = data_type::AGENT_HEARTBEAT;
    ring.push(&Record::new(hb, 0, b"")).unwrap(); // 4 bytes
    ring.push(&Record::new(hb, 0, b"")).unwrap(); // 4
    ring.push(&Record::new(hb, 0, b"abc")).unwrap(); // 7, the newest heartbeat
    ring.push(&Record::new(1, 0, b"")).unwrap(); // 3
    ring.push(&Record::new(2, 0, b"fghij")).unwrap(); // 8
    ring.push(&Record::new(3, 8192, &[3; 15])).unwrap(); // 20: 46 of 48 bytes used
    // 14 bytes: evicts the two older heartbeats, then records 1 and 2.
    ring.push(&Record::new(1 << 28, 8192, &[4; 7])).unwrap();
    assert_eq!(ring.counters().dropped_evicted, 4);
    assert_eq!(ring.used_bytes(), 41);
    assert_eq!(
        send_all(&mut ring),
        vec![(0, hb, 0, b"abc".to_vec()), (1, 3, 8192, vec![3; 15]), (2, 1 << 28, 8192, vec![4; 7])]
    );
}

/// A plan kept across a push that evicted its records: the cursor did not
/// move, so the plan looked current, and copying it gave a truncated entry
/// (committing it would have put the cursor inside an entry).
#[test]
fn plan_is_stale_after_eviction() {
    let mut mem = [0u8; 16];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::DropOldest });
    let hb = data_type::AGENT_HEARTBEAT;
    ring.push(&Record::new(hb, 0, &[1; 10])).unwrap(); // 14 bytes
    let plan = ring.plan_batch(64, 8).unwrap();
    ring.push(&Record::new(hb, 0, &[2; 11])).unwrap(); // 15 bytes: evicts the first
    assert_eq!(ring.counters().dropped_evicted, 1);
    let mut out = [0u8; 64];
    assert!(!ring.copy_batch(&plan, &mut out));
    assert!(!ring.commit_batch(&plan));
    assert_eq!(send_all(&mut ring), vec![(0, hb, 0, vec![2; 11])]);
}

/// A plan kept across a resume that renumbered the ring: committing it
/// would have sent the records under the old sequence numbers.
#[test]
fn plan_is_stale_after_resume_renumbers() {
    let mut mem = [0u8; 64];
    let mut ring = Ring::new(&mut mem, RingConfig::default());
    ring.push(&Record::new(1, 5, b"x")).unwrap();
    let plan = ring.plan_batch(64, 8).unwrap();
    assert_eq!(plan.first_seq, 0);
    assert_eq!(ring.resume(7), 0);
    let mut out = [0u8; 64];
    assert!(!ring.copy_batch(&plan, &mut out));
    assert!(!ring.commit_batch(&plan));
    assert_eq!(send_all(&mut ring), vec![(7, 1, 5, b"x".to_vec())]);
}

/// A plan kept across pushes that only append, or across a rewind with
/// nothing in flight, is still good.
#[test]
fn plan_survives_appends() {
    let mut mem = [0u8; 64];
    let mut ring = Ring::new(&mut mem, RingConfig::default());
    ring.push(&Record::new(1, 5, b"x")).unwrap();
    let plan = ring.plan_batch(64, 8).unwrap();
    ring.push(&Record::new(2, 6, b"y")).unwrap();
    ring.rewind();
    let mut out = [0u8; 64];
    assert!(ring.copy_batch(&plan, &mut out));
    assert!(ring.commit_batch(&plan));
    assert_eq!(plan.count, 1);
    assert_eq!(send_all(&mut ring), vec![(1, 2, 6, b"y".to_vec())]);
}

/// The model harness on the shrunk proptest failures above.
#[test]
fn model_regressions() {
    use Op::*;
    let push = |data_type, ts, len| Push { data_type, ts, len: Len::Small(len), fill: 0 };
    let hb = data_type::AGENT_HEARTBEAT;
    let cases: Vec<(usize, usize, OverflowPolicy, Vec<Op>)> = vec![
        (17, 24, OverflowPolicy::DropOldest, vec![push(0, Ts::Abs(8225), 0), push(hb, Ts::Rel(0), 12)]),
        (
            48,
            16,
            OverflowPolicy::DropOldest,
            vec![
                push(hb, Ts::Abs(0), 0),
                push(hb, Ts::Abs(0), 0),
                push(hb, Ts::Abs(0), 3),
                push(0, Ts::Abs(0), 0),
                push(0, Ts::Abs(0), 5),
                push(0, Ts::Abs(8192), 15),
                push(1 << 28, Ts::Abs(8192), 7),
            ],
        ),
        (
            19,
            6,
            OverflowPolicy::RejectNew,
            vec![
                push(hb, Ts::Abs(0), 0),
                Plan { max_bytes: 4, max_records: 1 },
                Resume(ResumeTo::Ahead(1)),
                CommitPlanned,
            ],
        ),
        (
            19,
            17,
            OverflowPolicy::DropOldest,
            vec![
                push(hb, Ts::Rel(-281_474_976_710_657), 2),
                Plan { max_bytes: 13, max_records: 1 },
                push(hb, Ts::Rel(0), 3),
                CommitPlanned,
            ],
        ),
    ];
    for (cap, max_record, policy, ops) in cases {
        if let Err(e) = run(cap, max_record, policy, &ops) {
            panic!("{e}");
        }
    }
}

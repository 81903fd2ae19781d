//! Reference model of the send ring: records in a `VecDeque`, sizes and
//! evictions computed from first principles. A port of the model in
//! `agent-core/tests/ring_model.rs` (keep the two in step), with panics in
//! place of proptest errors so libFuzzer reports a mismatch as a crash.

use std::collections::VecDeque;

use agent_core::record::{data_type, EntryIter, Record};
use agent_core::ring::{
    AckOutcome, OverflowPolicy, PushError, Ring, RingConfig, RingCounters, MAX_INFLIGHT_BATCHES, MAX_RESUME_SEQ,
};

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

/// Records in stream order; the first `inflight` sent on this connection,
/// the first `sent` sent on some connection, the rest never sent.
pub struct Model {
    pub cap: usize,
    pub cfg: RingConfig,
    pub recs: VecDeque<MRec>,
    pub inflight: usize,
    pub sent: usize,
    /// Records per in-flight batch (what is left of it), oldest first.
    pub batches: VecDeque<u32>,
    pub tail_seq: u64,
    pub next_seq: u64,
    /// Timestamp of the last acked record: what `recs[0]` is relative to.
    pub acked_ts: u64,
    /// Id of the newest heartbeat still stored.
    pub protected: Option<usize>,
    pub counters: RingCounters,
    pub fates: Vec<Fate>,
    pub delivered: Vec<u32>,
    pub seqs: Vec<Option<u64>>,
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

    /// Returns the outcome and the ids evicted.
    pub fn push(&mut self, data_type: u32, ts: u64, payload: Vec<u8>) -> (Result<(), PushError>, Vec<usize>) {
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
        let keep = if heartbeat { None } else { self.protected };
        let mut evicted = Vec::new();
        if self.used() + need(self.head_base()) > self.cap {
            if self.cfg.policy == OverflowPolicy::RejectNew {
                self.fates[id] = Fate::RefusedFull;
                self.counters.dropped_full += 1;
                return (Err(PushError::Full), evicted);
            }
            let survivors: Vec<&MRec> = self
                .recs
                .iter()
                .enumerate()
                .filter(|&(i, r)| i < self.sent || Some(r.id) == keep)
                .map(|(_, r)| r)
                .collect();
            let prev = survivors.last().map_or(self.acked_ts, |r| r.ts);
            if bytes_of(survivors.iter().copied(), self.acked_ts) + need(prev) > self.cap {
                self.fates[id] = Fate::RefusedFull;
                self.counters.dropped_full += 1;
                return (Err(PushError::Full), evicted);
            }
            while self.used() + need(self.head_base()) > self.cap {
                let i = (self.sent..self.recs.len())
                    .find(|&i| Some(self.recs[i].id) != keep)
                    .expect("model: survivors fit, so something is evictable");
                let r = self.recs.remove(i).expect("index in range");
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
    }
}

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
}

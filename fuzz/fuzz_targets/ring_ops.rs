//! Operation sequences on `agent_core::Ring` against the reference model.
//!
//! Any capacity (0..=1024 bytes), `max_record` and policy; operations: push
//! (any data type, timestamp and payload length), plan / copy / commit with
//! any limits (plans may be kept across other operations and go stale),
//! ack, rewind, resume. After every operation: the counters identity
//! `pushed == acked + dropped_evicted + len()`, `used + free == capacity`,
//! every getter equal to the model's, and every committed batch decodes
//! with `EntryIter` into exactly `plan.count` records, equal to the model's.
//! At the end everything left is sent and acked, and every push attempt has
//! exactly one fate.

#![no_main]

use agent_core::record::{data_type, Record};
use agent_core::ring::{BatchPlan, OverflowPolicy, Ring, RingConfig};
use agent_core_fuzz::ring_model::{check, check_records, Fate, MRec, Model};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum DataType {
    Heartbeat,
    PluginHeartbeat,
    Small(u8),
    Any(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ts {
    /// Relative to the previous push attempt.
    Rel(i16),
    RelWide(i64),
    Abs(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Limit {
    Small(u8),
    Any(u16),
    Max,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqTo {
    /// Below the first unacked sequence number (already acked).
    Stale(u8),
    /// Between `first_unacked - 1` and `next_seq - 1` (`next_seq` for resume).
    InRange(u64),
    /// At or past `next_seq`.
    Beyond(u8),
    Any(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Push {
        data_type: DataType,
        ts: Ts,
        len: u16,
        fill: u8,
    },
    /// plan + copy + commit back to back.
    Batch {
        max_bytes: Limit,
        max_records: Limit,
        short_buf: bool,
    },
    /// plan only, kept in slot `slot` for a later `Commit`.
    Plan {
        slot: u8,
        max_bytes: Limit,
        max_records: Limit,
    },
    /// copy + commit of a kept plan, whatever happened since.
    Commit {
        slot: u8,
        out_len: Limit,
    },
    /// commit without copying first.
    CommitBlind {
        slot: u8,
    },
    Ack(SeqTo),
    Rewind,
    Resume(SeqTo),
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u16,
    max_record: u16,
    drop_oldest: bool,
    ops: Vec<Op>,
}

const SLOTS: usize = 3;

struct Planned {
    plan: BatchPlan,
    ids: Vec<usize>,
    evicted_since: bool,
}

fn limit_bytes(l: Limit) -> usize {
    match l {
        Limit::Small(n) => n as usize,
        Limit::Any(n) => n as usize,
        Limit::Max => usize::MAX,
    }
}

fn limit_records(l: Limit) -> u32 {
    match l {
        Limit::Small(n) => u32::from(n % 8),
        Limit::Any(n) => u32::from(n),
        Limit::Max => u32::MAX,
    }
}

fn resolve(m: &Model, to: SeqTo, resume: bool) -> u64 {
    let span = m.next_seq - m.tail_seq;
    match to {
        SeqTo::Stale(k) => m.tail_seq.saturating_sub(u64::from(k) + 1),
        SeqTo::InRange(r) if resume => m.tail_seq + r % (span + 1),
        SeqTo::InRange(r) => (m.tail_seq + r % (span + 1)).saturating_sub(1),
        SeqTo::Beyond(k) => m.next_seq + u64::from(k),
        SeqTo::Any(v) => v,
    }
}

/// plan + copy + commit; checks the copied records against the model.
fn batch(ring: &mut Ring<'_>, m: &mut Model, max_bytes: usize, max_records: u32, short_buf: bool) -> Option<BatchPlan> {
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

fn run(input: &Input) {
    let cap = usize::from(input.capacity % 1025);
    let max_record = usize::from(input.max_record) % (cap + 9);
    let policy = if input.drop_oldest { OverflowPolicy::DropOldest } else { OverflowPolicy::RejectNew };
    let cfg = RingConfig { max_record, policy };
    let mut mem = vec![0xA5u8; cap];
    let mut ring = Ring::new(&mut mem, cfg);
    let mut m = Model::new(cap, cfg);
    let mut slots: [Option<Planned>; SLOTS] = [None, None, None];
    let mut last_ts = 0u64;
    check(&ring, &m);
    for op in input.ops.iter().take(400) {
        match *op {
            Op::Push { data_type: dt, ts, len, fill } => {
                let dt = match dt {
                    DataType::Heartbeat => data_type::AGENT_HEARTBEAT,
                    DataType::PluginHeartbeat => data_type::PLUGIN_HEARTBEAT,
                    DataType::Small(t) => u32::from(t % 16),
                    DataType::Any(t) => t,
                };
                let ts = match ts {
                    Ts::Rel(d) => last_ts.wrapping_add(d as i64 as u64),
                    Ts::RelWide(d) => last_ts.wrapping_add(d as u64),
                    Ts::Abs(t) => t,
                };
                last_ts = ts;
                let len = usize::from(len) % (max_record + 6);
                let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i as u8).wrapping_mul(31))).collect();
                let got = ring.push(&Record::new(dt, ts, &payload));
                let (want, evicted) = m.push(dt, ts, payload);
                assert_eq!(got, want, "push outcome");
                if !evicted.is_empty() {
                    for p in slots.iter_mut().flatten() {
                        p.evicted_since = true;
                    }
                }
            }
            Op::Batch { max_bytes, max_records, short_buf } => {
                batch(&mut ring, &mut m, limit_bytes(max_bytes), limit_records(max_records), short_buf);
            }
            Op::Plan { slot, max_bytes, max_records } => {
                let (max_bytes, max_records) = (limit_bytes(max_bytes), limit_records(max_records));
                let want = m.plan(max_bytes, max_records);
                let plan = ring.plan_batch(max_bytes, max_records);
                assert_eq!(plan.map(|p| (p.first_seq, p.base_ts, p.count, p.len)), want, "plan_batch");
                slots[usize::from(slot) % SLOTS] = plan.map(|plan| Planned {
                    plan,
                    ids: m.recs.range(m.inflight..m.inflight + plan.count as usize).map(|r| r.id).collect(),
                    evicted_since: false,
                });
            }
            Op::Commit { slot, out_len } => {
                let Some(Planned { plan, ids, evicted_since }) = slots[usize::from(slot) % SLOTS].take() else {
                    continue;
                };
                let now: Vec<usize> = m.recs.range(m.inflight..).take(ids.len()).map(|r| r.id).collect();
                let valid = now == ids && m.cursor_seq() == plan.first_seq && m.cursor_base() == plan.base_ts;
                let out_len = match out_len {
                    Limit::Max => plan.len,
                    l => limit_bytes(l).min(plan.len + 16),
                };
                let mut out = vec![0u8; out_len];
                let copied = ring.copy_batch(&plan, &mut out);
                if copied {
                    assert!(valid, "copy_batch accepted a stale plan {plan:?} (records now {now:?}, were {ids:?})");
                    assert!(out_len >= plan.len, "copy_batch into a short buffer");
                    let want_recs: Vec<&MRec> = m.recs.range(m.inflight..m.inflight + ids.len()).collect();
                    check_records(&out[..plan.len], plan.base_ts, &want_recs);
                    assert!(ring.commit_batch(&plan), "commit_batch after copy_batch");
                    m.commit(plan.count);
                } else if out_len >= plan.len {
                    // Evictions may invalidate a plan conservatively.
                    assert!(!valid || evicted_since, "copy_batch refused a valid plan {plan:?}");
                    assert!(!ring.commit_batch(&plan), "commit_batch of a plan copy_batch refused");
                }
            }
            Op::CommitBlind { slot } => {
                let Some(Planned { plan, ids, evicted_since }) = slots[usize::from(slot) % SLOTS].take() else {
                    continue;
                };
                let now: Vec<usize> = m.recs.range(m.inflight..).take(ids.len()).map(|r| r.id).collect();
                let valid = now == ids && m.cursor_seq() == plan.first_seq && m.cursor_base() == plan.base_ts;
                if ring.commit_batch(&plan) {
                    assert!(valid, "commit_batch accepted a stale plan {plan:?}");
                    m.commit(plan.count);
                } else {
                    assert!(
                        !valid || evicted_since || m.batches.len() >= agent_core::ring::MAX_INFLIGHT_BATCHES,
                        "commit_batch refused a valid plan {plan:?}"
                    );
                }
            }
            Op::Ack(to) => {
                let up_to = resolve(&m, to, false);
                assert_eq!(ring.ack(up_to), m.ack(up_to), "ack({up_to})");
            }
            Op::Rewind => {
                ring.rewind();
                m.rewind();
            }
            Op::Resume(to) => {
                let server_next = resolve(&m, to, true);
                assert_eq!(ring.resume(server_next), m.resume(server_next), "resume({server_next})");
            }
        }
        check(&ring, &m);
    }
    // Reconnect, then send and ack everything left.
    ring.rewind();
    m.rewind();
    check(&ring, &m);
    let mut rounds = 0;
    while !m.recs.is_empty() {
        rounds += 1;
        assert!(rounds <= 2 * m.fates.len() + 2, "drain does not progress");
        let limit = if rounds % 2 == 0 { 1 } else { u32::MAX };
        let plan = batch(&mut ring, &mut m, usize::MAX, limit, false).expect("nothing to send while records remain");
        let last = plan.first_seq + u64::from(plan.count) - 1;
        assert_eq!(ring.ack(last), m.ack(last), "drain ack");
        check(&ring, &m);
    }
    assert!(ring.is_empty());
    for (id, fate) in m.fates.iter().enumerate() {
        match fate {
            Fate::Acked => assert!(m.delivered[id] >= 1, "id {id} acked but never delivered"),
            Fate::Evicted | Fate::RefusedFull | Fate::RefusedTooLarge => {
                assert_eq!(m.delivered[id], 0, "id {id} delivered but {fate:?}")
            }
            Fate::Stored => panic!("id {id} neither acked nor dropped"),
        }
    }
}

fuzz_target!(|input: Input| run(&input));

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
//! The model, the checks and the harness are in `edge_testkit::ring_model`,
//! shared with the `ring_ops` fuzz target; this file only generates the
//! operations. A mismatch panics, and proptest shrinks the case.
//!
//! `PROPTEST_CASES` overrides the number of cases.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use agent_core::record::{data_type, EntryIter, Record};
use agent_core::agent::{is_heartbeat_record, ring_entry_kind};
use agent_core::ring::{EntryKind, OverflowPolicy, PushError, Ring, RingConfig};
use edge_testkit::ring_model as model;
use model::Harness;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const DEFAULT_CASES: u32 = 2000;
const MAX_OPS: usize = 100;

// ---- operations ----------------------------------------------------------

/// How a push stores its record.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// As the agent stores it ([`ring_entry_kind`]).
    Agent,
    /// Whatever the type: the ring's mechanism knows no types.
    Plain,
    Kept,
}

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
    Push { data_type: u32, ts: Ts, len: Len, fill: u8, kind: Kind },
    /// plan + copy + commit, back to back.
    Batch { max_bytes: usize, max_records: u32, short_buf: bool },
    /// Several small batches in a row, to reach `MAX_INFLIGHT_BATCHES`.
    Burst { batches: u8, max_records: u32 },
    /// plan only; the plan is kept for a later `CommitPlanned`.
    Plan { max_bytes: usize, max_records: u32 },
    /// copy + commit of the kept plan, whatever happened since.
    CommitPlanned,
    /// commit of the kept plan without copying it first.
    CommitBlind,
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
        prop_oneof![4 => Just(Kind::Agent), 1 => Just(Kind::Plain), 1 => Just(Kind::Kept)],
    )
        .prop_map(|(data_type, ts, len, fill, kind)| Op::Push { data_type, ts, len, fill, kind });
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
        1 => Just(Op::CommitBlind),
        4 => ack,
        1 => Just(Op::Rewind),
        1 => resume,
    ]
}

/// `DropOldest` where it is built (the default `drop-oldest` feature), else
/// `RejectNew`: the strategy and the regression cases run under either.
#[cfg(feature = "drop-oldest")]
const EVICTING: OverflowPolicy = OverflowPolicy::DropOldest;
#[cfg(not(feature = "drop-oldest"))]
const EVICTING: OverflowPolicy = OverflowPolicy::RejectNew;

/// Ring capacity, `max_record`, policy.
fn ring_strategy() -> impl Strategy<Value = (usize, usize, OverflowPolicy)> {
    (
        prop_oneof![16usize..64, 16usize..=512],
        any::<u16>(),
        prop_oneof![Just(OverflowPolicy::RejectNew), Just(EVICTING)],
    )
        .prop_map(|(cap, mr, policy)| (cap, mr as usize % (cap + 9), policy))
}

// ---- the driver ------------------------------------------------------------

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

fn resolve_ack(h: &Harness<'_>, to: AckTo) -> u64 {
    let m = &h.m;
    let span = m.next_seq - m.tail_seq;
    match to {
        AckTo::Stale(k) => m.tail_seq.saturating_sub(k),
        AckTo::InRange(r) => (m.tail_seq + r % (span + 1)).saturating_sub(1),
        AckTo::Beyond(k) => m.next_seq + k,
        AckTo::Max => u64::MAX,
    }
}

fn resolve_resume(h: &Harness<'_>, to: ResumeTo) -> u64 {
    let m = &h.m;
    let span = m.next_seq - m.tail_seq;
    match to {
        ResumeTo::Zero => 0,
        ResumeTo::Behind(k) => m.tail_seq.saturating_sub(k),
        ResumeTo::InRange(r) => m.tail_seq + r % (span + 1),
        ResumeTo::Ahead(k) => m.next_seq + k,
    }
}

/// Runs `op` on the ring and the model; panics on a mismatch.
fn step(h: &mut Harness<'_>, op: Op) {
    match op {
        Op::Push { data_type, ts, len, fill, kind } => {
            let ts = match ts {
                Ts::Rel(d) => h.last_ts.wrapping_add(d as u64),
                Ts::Abs(t) => t,
            };
            let len = match len {
                Len::Small(n) => n,
                Len::Frac(f) => f as usize % (h.m.cfg.max_record + 5),
            };
            let kind = match kind {
                Kind::Agent => ring_entry_kind(data_type),
                Kind::Plain => EntryKind::Plain,
                Kind::Kept => EntryKind::Kept,
            };
            h.push(data_type, ts, len, fill, kind);
        }
        Op::Batch { max_bytes, max_records, short_buf } => {
            h.batch(max_bytes, max_records, short_buf);
        }
        Op::Burst { batches, max_records } => {
            for _ in 0..batches {
                h.batch(usize::MAX, max_records, false);
            }
        }
        Op::Plan { max_bytes, max_records } => h.plan(0, max_bytes, max_records),
        Op::CommitPlanned => h.commit_planned(0, None),
        Op::CommitBlind => h.commit_blind(0),
        Op::Ack(to) => h.ack(resolve_ack(h, to)),
        Op::Rewind => h.rewind(),
        Op::Resume(to) => h.resume(resolve_resume(h, to)),
    }
}

thread_local! {
    /// Set while [`caught`] runs on this thread: its panics are reported
    /// through the `TestCaseError` only.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic on this thread happened.
    static PANIC_AT: Cell<Option<String>> = const { Cell::new(None) };
}

/// Runs `f`, turning a panic into its message and location. The panic is
/// not printed: proptest may run hundreds of failing cases while it
/// shrinks, and reports the minimal one with this message.
fn caught(f: impl FnOnce()) -> Result<(), String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.get() {
                PANIC_AT.set(info.location().map(|l| l.to_string()));
            } else {
                default(info);
            }
        }));
    });
    QUIET.set(true);
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.set(false);
    r.map_err(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("{} (at {})", msg.unwrap_or_default(), PANIC_AT.take().unwrap_or_default())
    })
}

fn run(cap: usize, max_record: usize, policy: OverflowPolicy, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut mem = vec![0xA5u8; cap];
    let mut h = Harness::new(&mut mem, RingConfig { max_record, policy }, is_heartbeat_record);
    for (i, &op) in ops.iter().enumerate() {
        caught(|| {
            step(&mut h, op);
            h.check();
        })
        .map_err(|e| fail(format!("step {i} {op:?}: {e}\nring: {:?}", h.ring)))?;
    }
    caught(|| h.drain()).map_err(|e| fail(format!("drain: {e}\nring: {:?}", h.ring)))
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

/// Pushes as the agent does: its newest heartbeat is the kept entry.
fn agent_push(ring: &mut Ring<'_>, rec: &Record<'_>) -> Result<(), PushError> {
    ring.push_as(rec, ring_entry_kind(rec.data_type), is_heartbeat_record)
}

/// `DropOldest` used to estimate the room eviction makes from the current
/// entry sizes. Evicting re-bases timestamp deltas, so the estimate could be
/// too optimistic: it evicted records and then refused the new one anyway.
#[cfg(feature = "drop-oldest")]
#[test]
fn drop_oldest_refusal_evicts_nothing() {
    let mut mem = [0u8; 17];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 24, policy: OverflowPolicy::DropOldest });
    agent_push(&mut ring, &Record::new(0, 8225, b"")).unwrap(); // 5 bytes (3-byte delta from 0)
    // 16 bytes after the record above, 18 once it is gone (delta from 0 again).
    let hb = Record::new(data_type::AGENT_HEARTBEAT, 8225, &[1; 12]);
    assert_eq!(agent_push(&mut ring, &hb), Err(PushError::Full));
    let c = ring.counters();
    assert_eq!((c.pushed, c.dropped_full, c.dropped_evicted), (1, 1, 0));
    assert_eq!(send_all(&mut ring), vec![(0, 0, 8225, vec![])]);
}

/// ... and too pessimistic: the protected heartbeat's header shrinks when the
/// record before it is evicted, which makes room the old estimate missed.
#[cfg(feature = "drop-oldest")]
#[test]
fn drop_oldest_counts_rebased_headers() {
    let mut mem = [0u8; 16];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::DropOldest });
    agent_push(&mut ring, &Record::new(0, 10_000, b"")).unwrap(); // 5 bytes
    agent_push(&mut ring, &Record::new(data_type::AGENT_HEARTBEAT, 0, b"")).unwrap(); // 6 bytes, 4 once re-based to 0
    agent_push(&mut ring, &Record::new(5, 0, &[7; 9])).unwrap(); // 12 bytes: fits only after the eviction
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
#[cfg(feature = "drop-oldest")]
#[test]
fn drop_oldest_keeps_heartbeat_moved_by_eviction() {
    let mut mem = [0u8; 48];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::DropOldest });
    let hb = data_type::AGENT_HEARTBEAT;
    agent_push(&mut ring, &Record::new(hb, 0, b"")).unwrap(); // 4 bytes
    agent_push(&mut ring, &Record::new(hb, 0, b"")).unwrap(); // 4
    agent_push(&mut ring, &Record::new(hb, 0, b"abc")).unwrap(); // 7, the newest heartbeat
    agent_push(&mut ring, &Record::new(1, 0, b"")).unwrap(); // 3
    agent_push(&mut ring, &Record::new(2, 0, b"fghij")).unwrap(); // 8
    agent_push(&mut ring, &Record::new(3, 8192, &[3; 15])).unwrap(); // 20: 46 of 48 bytes used
    // 14 bytes: evicts the two older heartbeats, then records 1 and 2.
    agent_push(&mut ring, &Record::new(1 << 28, 8192, &[4; 7])).unwrap();
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
#[cfg(feature = "drop-oldest")]
#[test]
fn plan_is_stale_after_eviction() {
    let mut mem = [0u8; 16];
    let mut ring = Ring::new(&mut mem, RingConfig { max_record: 16, policy: OverflowPolicy::DropOldest });
    let hb = data_type::AGENT_HEARTBEAT;
    agent_push(&mut ring, &Record::new(hb, 0, &[1; 10])).unwrap(); // 14 bytes
    let plan = ring.plan_batch(64, 8).unwrap();
    agent_push(&mut ring, &Record::new(hb, 0, &[2; 11])).unwrap(); // 15 bytes: evicts the first
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
    agent_push(&mut ring, &Record::new(1, 5, b"x")).unwrap();
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
    agent_push(&mut ring, &Record::new(1, 5, b"x")).unwrap();
    let plan = ring.plan_batch(64, 8).unwrap();
    agent_push(&mut ring, &Record::new(2, 6, b"y")).unwrap();
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
    let push = |data_type, ts, len| Push { data_type, ts, len: Len::Small(len), fill: 0, kind: Kind::Agent };
    let hb = data_type::AGENT_HEARTBEAT;
    let cases: Vec<(usize, usize, OverflowPolicy, Vec<Op>)> = vec![
        (17, 24, EVICTING, vec![push(0, Ts::Abs(8225), 0), push(hb, Ts::Rel(0), 12)]),
        (
            48,
            16,
            EVICTING,
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
            EVICTING,
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

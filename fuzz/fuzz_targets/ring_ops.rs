//! Operation sequences on `agent_core::Ring` against the reference model.
//!
//! Any capacity (0..=1024 bytes), `max_record` and policy; operations: push
//! (any data type, timestamp and payload length), plan / copy / commit with
//! any limits (plans may be kept across other operations and go stale),
//! ack, rewind, resume. After every operation: the counters identity
//! `pushed == acked + dropped_evicted + len()`, `used + free == capacity`,
//! every getter equal to the model's, and the pending bytes decode into the
//! model's pending records; every committed batch decodes with `EntryIter`
//! into exactly `plan.count` records, equal to the model's. At the end
//! everything left is sent and acked, every push attempt has exactly one
//! fate, and records were acked in push order with increasing sequence
//! numbers.
//!
//! The model, the checks and the harness are
//! `edge_testkit::ring_model`, shared with the proptest model
//! test; this target only decodes the operations from the fuzzer's input.

#![no_main]

use agent_core::record::data_type;
use agent_core::agent::{is_heartbeat_record, ring_entry_kind};
use agent_core::ring::{OverflowPolicy, RingConfig};
use agent_core_fuzz::ring_model::{Harness, Model};
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

fn run(input: &Input) {
    let cap = usize::from(input.capacity % 1025);
    let max_record = usize::from(input.max_record) % (cap + 9);
    let policy = if input.drop_oldest { OverflowPolicy::DropOldest } else { OverflowPolicy::RejectNew };
    let mut mem = vec![0xA5u8; cap];
    // The agent's session policy: its newest heartbeat kept, heartbeats counted.
    let mut h = Harness::new(&mut mem, RingConfig { max_record, policy }, is_heartbeat_record);
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
                    Ts::Rel(d) => h.last_ts.wrapping_add(d as i64 as u64),
                    Ts::RelWide(d) => h.last_ts.wrapping_add(d as u64),
                    Ts::Abs(t) => t,
                };
                let len = usize::from(len) % (max_record + 6);
                h.push(dt, ts, len, fill, ring_entry_kind(dt));
            }
            Op::Batch { max_bytes, max_records, short_buf } => {
                h.batch(limit_bytes(max_bytes), limit_records(max_records), short_buf);
            }
            Op::Plan { slot, max_bytes, max_records } => {
                h.plan(usize::from(slot), limit_bytes(max_bytes), limit_records(max_records));
            }
            Op::Commit { slot, out_len } => {
                let out_len = match out_len {
                    Limit::Max => None,
                    l => Some(limit_bytes(l)),
                };
                h.commit_planned(usize::from(slot), out_len);
            }
            Op::CommitBlind { slot } => h.commit_blind(usize::from(slot)),
            Op::Ack(to) => h.ack(resolve(&h.m, to, false)),
            Op::Rewind => h.rewind(),
            Op::Resume(to) => h.resume(resolve(&h.m, to, true)),
        }
        h.check();
    }
    // Reconnect, then send and ack everything left; every push has one fate.
    h.drain();
}

fuzz_target!(|input: Input| run(&input));

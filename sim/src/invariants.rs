//! The invariants (crate docs, *What is asserted*): after every push, after
//! every round of an agent's outputs, on every record the collector stores
//! for the first time and at the end of the run, each a function of the
//! parts it checks. A broken one panics with the simulated time and the
//! agent. The drain bound is checked in `world/drain.rs` (it moves the
//! run's end).

use agent_core::agent::{StateKind, MAX_TASK_RESULT_LEN};
use agent_core::heartbeat::{AgentHeartbeat, AgentStats};
use agent_core::message::{task_status, TaskResult};
use agent_core::plugin::{PluginHeartbeat, PluginStatus};
use agent_core::record::data_type;
use agent_core::ring::{OverflowPolicy, PushError, MAX_INFLIGHT_BATCHES};

use crate::agent::Sim;
use crate::app::{app_payload, APP_HEADER, APP_TYPE_BASE, PLUGIN_NAMES};
use crate::backend::Backend;
use crate::server::Checks;

/// A round of `poll_transmit`: Close, Hello, Pong, Ping and a window of batches.
pub(crate) const MAX_FRAMES_PER_ROUND: usize = MAX_INFLIGHT_BATCHES + 4;
/// `handle_timeout` calls allowed at one instant before it counts as a busy loop.
pub(crate) const SAME_INSTANT_TIMEOUTS: u32 = 3;

/// A `push` or `task_result` moved exactly the counter its result names.
pub(crate) fn check_push_delta(a: usize, now: u64, b: &AgentStats, s: &AgentStats, r: Result<(), PushError>, policy: OverflowPolicy) {
    let d = |x: u64, y: u64| y - x;
    let got = (d(b.pushed, s.pushed), d(b.dropped_full, s.dropped_full), d(b.dropped_too_large, s.dropped_too_large));
    let want = match r {
        Ok(()) => (1, 0, 0),
        Err(PushError::Full) => (0, 1, 0),
        Err(PushError::TooLarge) => (0, 0, 1),
    };
    assert_eq!(got, want, "t={now} agent {a}: push returned {r:?} but counters moved by {got:?}");
    assert_eq!(b.acked, s.acked, "t={now} agent {a}: push acked records");
    if r.is_err() || policy == OverflowPolicy::RejectNew {
        assert_eq!(b.dropped_evicted, s.dropped_evicted, "t={now} agent {a}: push evicted (result {r:?})");
    }
}

/// Invariants checked after every round of agent `a`'s outputs at `now`
/// (`final_phase`: the final phase's resends have started).
pub(crate) fn check_agent(a: usize, now: u64, s: &mut Sim<'_>, collector: &Backend<'_>, final_phase: bool) {
    let st = s.agent.stats();
    let ring = s.agent.ring();
    assert_eq!(
        st.pushed,
        st.acked + st.dropped_evicted + ring.len(),
        "t={now} agent {a}: record accounting broken: {st:?}, ring {ring:?}"
    );
    // An honest collector never breaks the protocol; a corrupted downlink
    // can make it look so (a lost Accept, then a Task).
    assert!(
        st.protocol_errors <= s.down_corruptions,
        "t={now} agent {a}: {} protocol errors, {} downlink corruptions",
        st.protocol_errors,
        s.down_corruptions
    );
    if s.plan.cfg.ring.policy == OverflowPolicy::RejectNew {
        assert_eq!(st.dropped_evicted, 0, "t={now} agent {a}: eviction under RejectNew");
    }
    let have = collector.next(s.name);
    assert!(
        ring.first_unacked_seq() <= have && have <= ring.next_seq(),
        "t={now} agent {a}: collector holds {have} records, agent acked below {} and numbered below {}",
        ring.first_unacked_seq(),
        ring.next_seq()
    );
    assert!(!s.expect_gaveup, "t={now} agent {a}: give-up limit reached without GaveUp");
    let open = matches!(s.agent.state(), StateKind::Handshaking | StateKind::Connected);
    assert_eq!(open, s.conn.is_some(), "t={now} agent {a}: state {:?} but transport {:?}", s.agent.state(), s.conn);
    let drops = (st.dropped_full, st.dropped_too_large, st.dropped_evicted);
    let before = (s.last.dropped_full, s.last.dropped_too_large, s.last.dropped_evicted);
    if drops != before {
        // Answers to the final phase's resends may evict or be refused
        // in a small ring: that phase resends until each is answered.
        assert!(
            s.drained_at.is_none() || final_phase,
            "t={now} agent {a}: dropped after the drain (at {:?}): (full, too large, evicted) {before:?} -> {drops:?}, \
             state {:?}, ring {:?}",
            s.drained_at,
            s.agent.state(),
            s.agent.ring()
        );
        s.drop_times.push(now);
    }
    s.last = st;
}

/// Checks a record of agent `a` (`s`) the collector stores for the first
/// time at `now`; `store` is what is checked about the agent's records.
pub(crate) fn validate_new(a: usize, now: u64, s: &Sim<'_>, store: &mut Checks, dt: u32, ts: u64, payload: &[u8]) {
    let hb = s.plan.cfg.heartbeat_interval.as_millis();
    let gen = ts.wrapping_sub(s.plan.clock_offset);
    let on_schedule = gen >= s.plan.boot && (gen - s.plan.boot).is_multiple_of(hb) && gen <= now;
    let check_order = |last: &mut Option<u64>, ord: u64| {
        assert!(last.is_none_or(|o| o < ord), "t={now} agent {a}: records out of push order");
        *last = Some(ord);
    };
    match dt {
        data_type::AGENT_HEARTBEAT => {
            assert!(AgentHeartbeat::decode(payload).is_some(), "t={now} agent {a}: heartbeat does not decode");
            assert!(on_schedule, "t={now} agent {a}: heartbeat at {gen} is off its schedule");
            if let Some(&prev) = store.hb_gens.last() {
                assert!(gen > prev, "t={now} agent {a}: heartbeats out of order");
                let lossy = s.drop_times.partition_point(|&x| x < prev) < s.drop_times.len();
                assert!(
                    lossy || gen - prev == hb,
                    "t={now} agent {a}: heartbeats at {prev} and {gen}, {hb} ms apart expected, nothing dropped"
                );
            }
            store.hb_gens.push(gen);
        }
        data_type::PLUGIN_HEARTBEAT => {
            let p: PluginHeartbeat<'_> = postcard::from_bytes(payload).expect("plugin heartbeat decodes");
            assert!(PLUGIN_NAMES[..s.plan.plugins].contains(&p.name.as_str()), "t={now} agent {a}: unknown plugin");
            assert_eq!(p.status, PluginStatus::Running);
            assert!(on_schedule, "t={now} agent {a}: plugin heartbeat off its schedule");
            store.plugin_hbs += 1;
        }
        data_type::TASK_RESULT => {
            let r: TaskResult<'_> = postcard::from_bytes(payload).expect("task result decodes");
            let known = *store.tasks.get(r.token.as_str()).unwrap_or_else(|| panic!("t={now} agent {a}: result for unsent task"));
            store.open.retain(|(t, _)| t != r.token.as_str());
            if !store.results.insert(r.token.as_str().into()) {
                // Only a resent task is answered twice, and only once the
                // agent forgot its token (it remembers the last 8; a
                // resend of a remembered token is ignored while its
                // result is in the ring, and such a result was not
                // delivered before).
                assert!(store.resent.contains(r.token.as_str()), "t={now} agent {a}: two results for {}", r.token);
                store.double_results += 1;
            }
            match r.status {
                task_status::OK => {
                    // Truncated only to fit a record: then it fills one.
                    let limit = s.plan.cfg.ring.max_record.min(MAX_TASK_RESULT_LEN);
                    let first = s.answered.get(r.token.as_str()).expect("OK result the app gave");
                    let again = s.reanswered.get(r.token.as_str()).into_iter().flatten();
                    // Of the app's answers to this token that match (two
                    // can be alike), the oldest one not yet stored.
                    let last = store.last_ord;
                    let (ord, _) = std::iter::once(first)
                        .chain(again)
                        .filter(|(_, msg)| {
                            msg.starts_with(r.message.as_str()) && (r.message.len() == msg.len() || payload.len() + 3 >= limit)
                        })
                        .filter(|(o, _)| last.is_none_or(|l| *o > l))
                        .min_by_key(|(o, _)| *o)
                        .unwrap_or_else(|| panic!("t={now} agent {a}: task result message altered or out of push order"));
                    check_order(&mut store.last_ord, *ord);
                    store.ok_results.insert(r.token.as_str().into());
                }
                task_status::UNKNOWN_TARGET => assert!(!known, "t={now} agent {a}: known target reported unknown"),
                task_status::DROPPED => assert!(known, "t={now} agent {a}: unknown target reported dropped"),
                st => panic!("t={now} agent {a}: task status {st}"),
            }
        }
        dt if dt >= APP_TYPE_BASE => {
            assert!(payload.len() >= APP_HEADER, "t={now} agent {a}: short app record");
            let n = u64::from_le_bytes(payload[..8].try_into().unwrap());
            assert_eq!(payload[8] as usize, a, "t={now} agent {a}: another agent's record");
            let rec = s.apps.get(n as usize).unwrap_or_else(|| panic!("t={now} agent {a}: app record {n} never pushed"));
            assert!(rec.accepted, "t={now} agent {a}: app record {n} was refused but arrived");
            assert!(
                rec.data_type == dt && rec.ts == ts && payload == app_payload(a, n, rec.len),
                "t={now} agent {a}: app record {n} altered"
            );
            check_order(&mut store.last_ord, rec.ord);
            assert!(store.app_seen.insert(n));
        }
        dt => panic!("t={now} agent {a}: unexpected data type {dt}"),
    }
}

/// At the end of the run (`now`): nothing accepted is missing (beyond what
/// was evicted), every task answered, no drop after the drain, every
/// heartbeat after the drain arrived (up to the final phase's start,
/// `final_resend_at`). `checks[a]` is what was checked about agent `a`.
pub(crate) fn final_checks(now: u64, sims: &[Sim<'_>], checks: &[Checks], final_resend_at: Option<u64>) {
    for (a, s) in sims.iter().enumerate() {
        let drained = s.drained_at.unwrap_or_else(|| panic!("agent {a}: never drained"));
        let st = s.agent.stats();
        let store = &checks[a];
        assert_eq!(st.pushed, st.acked + st.dropped_evicted + s.agent.ring().len());
        let missing_apps = s.apps.iter().enumerate().filter(|(n, r)| r.accepted && !store.app_seen.contains(&(*n as u64))).count();
        let missing_answers = s.answered.keys().filter(|t| !store.ok_results.contains(*t)).count();
        let unanswered: Vec<&str> = store.open.iter().map(|(t, _)| t.as_str()).collect();
        assert!(unanswered.is_empty(), "agent {a}: tasks never answered, though resent in the final phase: {unanswered:?}");
        let missing = (missing_apps + missing_answers) as u64;
        if s.plan.cfg.ring.policy == OverflowPolicy::RejectNew {
            assert_eq!(missing, 0, "agent {a}: {missing_apps} app records, {missing_answers} answers lost");
        } else {
            assert!(
                missing <= st.dropped_evicted,
                "agent {a}: {missing} accepted records missing, only {} evicted",
                st.dropped_evicted
            );
        }
        let horizon = final_resend_at.unwrap_or(now);
        assert!(
            s.drop_times.iter().rfind(|&&t| t < horizon).is_none_or(|&t| t <= drained),
            "agent {a}: a record was dropped after the drain (drained at {drained}, drops at {:?}): {st:?}",
            &s.drop_times[s.drop_times.len().saturating_sub(5)..]
        );
        // Every heartbeat scheduled after the drain arrived, one interval apart.
        let hb = s.plan.cfg.heartbeat_interval.as_millis();
        let flight = s.plan.cfg.flush_interval.as_millis() + 2 * s.plan.lat_max() + 2;
        // Until the final phase (whose answers may evict heartbeats).
        if s.failures_after_drain == 0 && horizon > drained + hb + flight {
            // Strictly after: a heartbeat refused at the drain instant is a drop before it.
            let first = s.plan.boot + ((drained - s.plan.boot) / hb + 1) * hb;
            let expect: Vec<u64> = (first..horizon - flight).step_by(hb as usize).collect();
            let got: Vec<u64> = store.hb_gens.iter().copied().filter(|&g| g >= first && g < horizon - flight).collect();
            assert_eq!(got, expect, "agent {a}: heartbeats after the drain");
        }
    }
}

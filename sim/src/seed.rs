//! One seed's run: the fleet, collector and faults it draws, the world
//! built from them, run to the end.

use std::collections::HashMap;

use agent_core::agent::{Agent, AgentStorage, Identity, BATCH_HEADER_MAX};
use agent_core::frame::OVERHEAD;
use agent_core::heartbeat::AgentStats;
use agent_core::plugin::PluginStatus;
use agent_core::record::MAX_ENTRY_HEADER;
use edge_collector::admission::AdmissionConfig;

use crate::agent::Sim;
use crate::app::{PLUGIN_NAMES, PRODUCT};
use crate::backend::Backend;
use crate::collector::{Collector, CollectorConfig};
use crate::faults::{gen_faults, Faults};
use crate::peer::{Peer, PeerConfig};
use crate::plan::Plan;
use crate::rng::SplitMix;
use crate::server::{Checks, Server, RETRY_AFTER_MAX};
use crate::options::{CollectorKind, Options};
use crate::summary::SeedRun;
use crate::world::World;

/// Collector-side connection slots (decoders) per agent.
pub(crate) const SLOTS_PER_AGENT: usize = 4;

/// One agent's memory: what `AgentStorage` borrows.
pub(crate) struct Mem {
    pub(crate) ring: Vec<u8>,
    pub(crate) rx: Vec<u8>,
    pub(crate) events: Vec<u8>,
}

/// Runs seed `seed` against the collector `options` name: builds the
/// world, runs it to its end and checks every invariant on the way (a
/// broken one panics). A run that takes 20,000,000 steps counts as not
/// terminating (a panic too).
pub fn run_seed(seed: u64, options: &Options) -> SeedRun {
    let mut rng = SplitMix::new(seed ^ 0xED6E_A6E7_51A0_0001);
    let n = rng.range_usize(3, 8);
    let fault_end = rng.range(30_000, 120_000);
    let plans: Vec<Plan> = (0..n).map(|_| Plan::random(&mut rng)).collect();
    let need = plans.iter().map(|p| OVERHEAD + BATCH_HEADER_MAX + p.cfg.ring.max_record + MAX_ENTRY_HEADER).max().unwrap();
    let server_max = rng.range_usize(need, 8192);
    let task_gap = if rng.chance(300) { rng.range(100, 1000) } else { rng.range(1000, 20_000) };
    let faults = gen_faults(&mut rng, &plans, fault_end);
    let names: Vec<String> = (0..n).map(|i| format!("agent-{i}")).collect();
    let mut mems: Vec<Mem> = plans
        .iter()
        .map(|p| Mem { ring: vec![0; p.ring_cap], rx: vec![0; p.rx_len], events: vec![0; p.ev_len] })
        .collect();
    let mut slots = crate::peer::storage(n * SLOTS_PER_AGENT, server_max as u32);
    let sims: Vec<Sim<'_>> = mems
        .iter_mut()
        .zip(&plans)
        .zip(&names)
        .map(|((m, p), name)| {
            let id = Identity {
                agent_id: name,
                hostname: "sim-host",
                product: PRODUCT,
                version: "1.0",
                intranet_ipv4: &[10, 0, 0, 1],
                intranet_ipv6: &[],
                extranet_ipv4: &[],
                extranet_ipv6: &[],
                auth_token: b"token",
            };
            let storage = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
            let mut agent = Agent::new(p.cfg, id, storage).expect("valid config");
            let plugin_ids = PLUGIN_NAMES[..p.plugins]
                .iter()
                .map(|name| {
                    let id = agent.register_plugin(name, "1.0").unwrap();
                    agent.set_plugin_status(id, 4242, PluginStatus::Running).unwrap();
                    id
                })
                .collect();
            Sim {
                agent,
                plan: p.clone(),
                name,
                plugin_ids,
                booted: false,
                conn: None,
                attempt: None,
                failures: 0,
                consecutive: 0,
                failing_since: None,
                advice: 0,
                ep: 0,
                ep_fail: 0,
                connected_since: None,
                expect_connect: None,
                expect_gaveup: false,
                reject_retry: None,
                reconnect_at: None,
                next_push: 0,
                apps: Vec::new(),
                ord: 0,
                answers: Vec::new(),
                answered: HashMap::new(),
                last: AgentStats::default(),
                drop_times: Vec::new(),
                last_delivered: 0,
                failures_after_drain: 0,
                bucket: 0,
                bucket_timeouts: 0,
                bucket_polls: 0,
                bucket_inputs: 0,
                prev_bucket_inputs: 0,
                instant: u64::MAX,
                instant_timeouts: 0,
                max_timeouts_per_sec: 0,
                max_polls_per_sec: 0,
                drain_bound: p.drain_bound(server_max),
                backlog: None,
                drained_at: None,
                down_corruptions: 0,
                reanswered: HashMap::new(),
                final_due: None,
                final_token: None,
            }
        })
        .collect();
    let max_bound = sims.iter().map(|s| s.drain_bound).max().unwrap();
    let max_hb = plans.iter().map(|p| p.cfg.heartbeat_interval.as_millis()).max().unwrap();
    let real = options.collector == CollectorKind::Real;
    let naive = options.collector != CollectorKind::Peer;
    let cfg = PeerConfig {
        max_frame: server_max as u32,
        repeat_ack_after_pong: !naive,
        close_on_damage: !naive,
        retry_window_ms: if rng.chance(500) { rng.range(100, 8000) as u32 } else { 0 },
        ..PeerConfig::default()
    };
    let collector = if real {
        // Drawn from a generator of their own, so the rest of the run draws
        // as it does against the peer (a seed is the same fleet, faults and
        // traffic for both collectors).
        let mut own = SplitMix::new(seed ^ 0xC011_EC70_0000_0002);
        Backend::Real(Collector::new(real_config(&mut own, server_max as u32, n), &mut slots))
    } else {
        Backend::Peer(Peer::new(cfg, &mut slots))
    };
    let server = Server {
        collector,
        max_frame: server_max,
        checks: (0..n).map(|_| Checks::default()).collect(),
        task_seq: 0,
        task_gap,
        naive,
    };
    let mut w = World {
        trace: options.trace,
        rng,
        now: 0,
        fault_end,
        end: fault_end + max_bound + 3 * max_hb + 1000,
        final_start: None,
        final_resend_at: None,
        steps: 0,
        faults: Faults::new(faults),
        sims,
        server,
        conns: Vec::new(),
        next_conn_id: 0,
        tx: vec![0; 16 * 1024],
    };
    w.run();
    SeedRun { seed, summary: w.summary(), steps: w.steps, rng_tail: w.rng.clone().next_u64() }
}

/// The real collector's settings for one seed: its `max_frame`, and an
/// admission rate from 2 to 40 handshakes a second (a restart's reconnect
/// of 3-8 agents meets Busy answers with slots), burst tolerance 0-200 ms,
/// 0-16 reservations, slots honoured 0.2-1 s late, at most `RETRY_AFTER_MAX`
/// ahead (the drain bound's wait); the Accept advises the time to admit
/// the `fleet`.
pub(crate) fn real_config(rng: &mut SplitMix, max_frame: u32, fleet: usize) -> CollectorConfig {
    let rate_per_sec = if rng.chance(200) { 0 } else { rng.range(2, 40) as u32 };
    CollectorConfig {
        max_frame,
        admission: AdmissionConfig {
            rate_per_sec,
            burst: std::time::Duration::from_millis(rng.range(0, 200)),
            max_reservations: rng.range_usize(0, 16),
            forget_after: std::time::Duration::from_millis(rng.range(200, 1000)),
            max_wait: std::time::Duration::from_millis(RETRY_AFTER_MAX),
        },
        seed: rng.next_u64(),
        fleet,
    }
}

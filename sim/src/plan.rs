//! One agent's plan: its configuration and the environment it lives in
//! (memory sizes, boot time, clock offset, link latencies, app habits), all
//! drawn from the seed, and the drain bound `D` those imply (crate docs,
//! *What is asserted*).

use agent_core::agent::{AgentConfig, BATCH_HEADER_MAX};
use agent_core::backoff::BackoffConfig;
use agent_core::frame::OVERHEAD;
use agent_core::heartbeat::MAX_HEARTBEAT_LEN;
use agent_core::record::MAX_ENTRY_HEADER;
use agent_core::ring::{OverflowPolicy, RingConfig, MAX_INFLIGHT_BATCHES};
use agent_core::Duration;

use crate::app::ANSWER_DELAY_MAX;
use crate::rng::SplitMix;
use crate::server::RETRY_AFTER_MAX;

/// Smallest entry any record of this simulation takes (a task result).
pub(crate) const MIN_ENTRY: usize = 10;

#[derive(Clone, Debug)]
/// One agent's plan, drawn from the seed.
pub(crate) struct Plan {
    pub(crate) cfg: AgentConfig,
    pub(crate) ring_cap: usize,
    pub(crate) rx_len: usize,
    pub(crate) ev_len: usize,
    pub(crate) boot: u64,
    pub(crate) clock_offset: u64,
    /// Base one-way latency and jitter of the agent's links.
    pub(crate) lat: u64,
    pub(crate) jitter: u64,
    /// Longest time a connect takes to succeed or be refused.
    pub(crate) conn_lat: u64,
    /// Mean gap between app pushes.
    pub(crate) push_gap: u64,
    pub(crate) plugins: usize,
    /// How long the app waits after `GaveUp` before `reconnect_now`.
    pub(crate) gaveup_delay: u64,
}

impl Plan {
    /// Draws a plan (the number and order of draws is part of what a seed means).
    pub(crate) fn random(rng: &mut SplitMix) -> Plan {
        let max_record = rng.range_usize(MAX_HEARTBEAT_LEN, 1024);
        let max_entry = max_record + MAX_ENTRY_HEADER;
        let policy = if rng.chance(500) { OverflowPolicy::DropOldest } else { OverflowPolicy::RejectNew };
        let ring_cap = if rng.chance(500) { rng.range_usize(max_entry, 2048) } else { rng.range_usize(8192, 65536) };
        let batch_max_bytes = rng.range_usize(max_entry, 4096);
        let batch_max_records = [1u32, 3, 16, 64, 256][rng.below(5) as usize];
        let window_bytes = batch_max_bytes * rng.range_usize(1, 4);
        let base = rng.range(20, 500);
        let give_up_after = if rng.chance(200) { rng.range(3, 10) as u32 } else { 0 };
        let cfg = AgentConfig {
            ring: RingConfig { max_record, policy },
            batch_max_bytes,
            batch_max_records,
            flush_interval: Duration(rng.range(10, 200)),
            window_bytes,
            heartbeat_interval: Duration(rng.range(1000, 5000)),
            idle_timeout: Duration(rng.range(1500, 10_000)),
            pong_timeout: Duration(rng.range(500, 3000)),
            ack_timeout: Duration(rng.range(3000, 20_000)),
            connect_timeout: Duration(rng.range(500, 3000)),
            handshake_timeout: Duration(rng.range(1000, 3000)),
            healthy_after: Duration(rng.range(1000, 10_000)),
            backoff: BackoffConfig {
                base: Duration(base),
                cap: Duration(rng.range(base.max(1000), 5000)),
                endpoints: rng.range(1, 3) as u8,
                attempts_per_endpoint: rng.range(1, 3) as u8,
                give_up_after,
                fleet_window: Duration(if rng.chance(300) { rng.range(100, 10_000) } else { 0 }),
            },
            rng_seed: rng.next_u64(),
            ..AgentConfig::default()
        };
        Plan {
            cfg,
            ring_cap,
            rx_len: rng.range_usize(256, 2048),
            ev_len: if rng.chance(300) { rng.range_usize(48, 160) } else { rng.range_usize(160, 1024) },
            boot: rng.range(0, 2000),
            clock_offset: 1_700_000_000_000 + rng.range(0, 1_000_000_000),
            lat: rng.range(1, 80),
            jitter: rng.range(0, 20),
            conn_lat: rng.range(1, 100),
            push_gap: rng.range(30, 1000),
            plugins: rng.range_usize(0, 2),
            gaveup_delay: rng.range(0, 2000),
        }
    }

    /// Worst one-way latency of a byte on an unstalled link.
    pub(crate) fn lat_max(&self) -> u64 {
        self.lat + self.jitter + 2
    }

    /// Longest a connection that receives nothing takes to be declared dead.
    pub(crate) fn liveness_cycle(&self) -> u64 {
        let c = &self.cfg;
        c.idle_timeout.as_millis() + 2 * c.pong_timeout.as_millis() + 2 * self.lat_max()
    }

    /// The drain bound `D` of the module docs, in ms after the faults stop.
    pub(crate) fn drain_bound(&self, server_max: usize) -> u64 {
        let c = &self.cfg;
        let ms = |d: Duration| d.as_millis();
        let lat = self.lat_max();
        let rtt = 2 * lat + 1;
        let flush = ms(c.flush_interval);
        let detect = self
            .liveness_cycle()
            .max(ms(c.connect_timeout))
            .max(ms(c.handshake_timeout))
            .max(ms(c.heartbeat_interval) + flush + 2 * rtt);
        let wait = ms(c.backoff.cap).max(RETRY_AFTER_MAX).max(self.gaveup_delay);
        let attempt = self.conn_lat + rtt;
        let max_entry = c.ring.max_record + MAX_ENTRY_HEADER;
        let batch_bytes = c.batch_max_bytes.min(server_max - OVERHEAD - BATCH_HEADER_MAX);
        let per_round = c
            .window_bytes
            .saturating_sub(max_entry)
            .min(MAX_INFLIGHT_BATCHES * (batch_bytes + 1 - max_entry))
            .min(MAX_INFLIGHT_BATCHES * c.batch_max_records as usize * MIN_ENTRY)
            .max(MIN_ENTRY);
        let rounds = (self.ring_cap / per_round) as u64;
        let drain = (rounds + 2) * (flush + rtt + 1) + ANSWER_DELAY_MAX;
        detect + wait + attempt + drain + lat
    }
}

//! The agent's own heartbeat records are counted apart from the
//! application's: `stats()` counts every record, `heartbeat_records()` the
//! heartbeats among them, and every heartbeat carries both upstream.

use super::*;
use crate::stats::{AgentHeartbeat, HeartbeatRecords};
#[cfg(feature = "drop-oldest")]
use crate::ring::OverflowPolicy;

const APP: u32 = 2001;

#[test]
fn refused_heartbeats_are_told_apart_from_refused_application_records() {
    let mut m = Mem::new(); // a 4 KiB ring
    let mut a = m.agent(AgentConfig { heartbeat_interval: Duration::from_secs(1), ..cfg() });
    let plugin = a.register_plugin("scanner", "1.2").unwrap();
    a.set_plugin_status(plugin, 1, PluginStatus::Running).unwrap();
    a.handle_timeout(Instant(0)); // agent + plugin heartbeat
    let (mut app_ok, mut app_full) = (0u64, 0u64);
    // Large records, then one-byte ones, until not even those fit.
    for len in [200usize, 1] {
        for i in 0..200u8 {
            match a.push(Instant(1), &Record::new(APP, 1, &[i; 200][..len])) {
                Ok(()) => app_ok += 1,
                Err(PushError::Full) => app_full += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    assert!(app_full > 0, "the ring filled");
    // The next heartbeats find the ring full (RejectNew): refused, counted.
    a.handle_timeout(Instant(1_000));
    a.handle_timeout(Instant(2_000));
    let s = a.stats();
    let h = a.heartbeat_records();
    assert_eq!(h, HeartbeatRecords { pushed: 2, dropped_full: 4, dropped_evicted: 0 });
    // The application's own counts are the differences, exactly.
    assert_eq!(s.pushed - h.pushed, app_ok);
    assert_eq!(s.dropped_full - h.dropped_full, app_full);
}

#[cfg(feature = "drop-oldest")]
#[test]
fn evicted_heartbeats_are_told_apart_from_evicted_application_records() {
    let mut m = Mem::new();
    let ring = RingConfig { max_record: 384, policy: OverflowPolicy::DropOldest };
    let mut a = m.agent(AgentConfig { ring, heartbeat_interval: Duration::from_secs(1), ..cfg() });
    let mut app_ok = 0u64;
    // Not connected: nothing is sent, so old records are evicted for new
    // ones; heartbeats every second among the application's records.
    for t in 0..30u64 {
        a.handle_timeout(Instant(t * 1_000));
        for i in 0..3u8 {
            a.push(Instant(t * 1_000), &Record::new(APP, t, &[i; 150])).unwrap();
            app_ok += 1;
        }
    }
    let s = a.stats();
    let h = a.heartbeat_records();
    assert_eq!(h.pushed, 30);
    assert!(h.dropped_evicted > 0 && h.dropped_evicted < 30, "old heartbeats evicted, the newest kept: {h:?}");
    let app_evicted = s.dropped_evicted - h.dropped_evicted;
    assert!(app_evicted > 0);
    assert_eq!(s.pushed - h.pushed, app_ok);
    // Every record pushed is acked, evicted or still in the ring, for the
    // application's records alone too.
    let in_ring = a.ring().len();
    let hb_in_ring = h.pushed - h.dropped_evicted;
    assert_eq!(app_ok, app_evicted + (in_ring - hb_in_ring));
}

#[test]
fn every_heartbeat_carries_the_split_upstream() {
    let mut m = Mem::new();
    let mut a = m.agent(AgentConfig { heartbeat_interval: Duration::from_secs(1), ..cfg() });
    a.handle_timeout(Instant(0));
    a.push(Instant(0), &Record::new(APP, 0, b"x")).unwrap();
    a.handle_timeout(Instant(1_000)); // the second heartbeat sees the first
    let mut p = connect(&mut a, 1_000, 0);
    let _ = &mut p;
    a.flush_now(Instant(1_000));
    let sent = transmit_all(&mut a, 1_000);
    let hbs: Vec<AgentHeartbeat> = sent
        .iter()
        .filter_map(|s| match s {
            Sent::Batch { records, .. } => Some(records.clone()),
            _ => None,
        })
        .flatten()
        .filter(|(t, _)| *t == data_type::AGENT_HEARTBEAT)
        .map(|(_, p)| AgentHeartbeat::decode(&p).unwrap())
        .collect();
    assert_eq!(hbs.len(), 2);
    let r = hbs[1].heartbeat_records.expect("revision 3: always present");
    assert_eq!(r, HeartbeatRecords { pushed: 1, dropped_full: 0, dropped_evicted: 0 });
    assert_eq!(hbs[1].lib.pushed, 2, "the first heartbeat and the application's record");
}

/// The heartbeat body written straight from the counters
/// (`heartbeat::OwnHeartbeat`) is byte for byte the old one:
/// `HeartbeatParts` over `stats_with`'s `AgentStats` and the ring's
/// heartbeat counts, with every counter distinct (so a swap would show)
/// and at one- to ten-byte varints, `last_rtt_ms` absent and present.
#[test]
fn heartbeat_body_written_from_the_counters_matches_the_stats_value() {
    use crate::wire::codec::{write_body, HeartbeatParts};
    let mut m = Mem::new();
    let mut a = m.agent(AgentConfig { heartbeat_interval: Duration::from_secs(1), ..cfg() });
    a.set_host_stats(HostStats {
        cpu_permille: Some(7),
        rss_bytes: Some(1 << 40),
        open_fds: None,
        load1_centi: Some(300),
        mem_total_bytes: Some(u64::MAX),
        ..HostStats::default()
    });
    a.handle_timeout(Instant(0));
    for i in 0..5u8 {
        a.push(Instant(1), &Record::new(APP, 1, &[i; 40])).unwrap();
    }
    // Garbage for the decoder to skip.
    a.handle_received(Instant(2), &[0x55; 37]);
    a.handle_timeout(Instant(1_000));
    for (round, rtt) in [(0u64, None), (1, Some(250u32)), (2, Some(u32::MAX))] {
        let base = 1u64 << (round * 21);
        let s = &mut a.core.stats;
        let mut k = 0u64;
        let mut next = || {
            k += 1;
            base.wrapping_mul(k).wrapping_add(k)
        };
        s.bytes_sent = next();
        s.bytes_received = next();
        s.frames_sent = next();
        s.frames_received = next();
        s.connections = next();
        s.connect_failures = next();
        s.last_rtt_ms = rtt;
        s.unknown_kinds = next();
        s.malformed = next();
        s.events_dropped = next();
        s.tasks_unroutable = next();
        s.protocol_errors = next();
        s.tasks_duplicate = next();
        s.peer_incompatible = next();
        s.ack_timeouts = u64::MAX - next();
        let lib = a.core.stats_with(&a.decoder);
        assert!(lib.decoder_skipped_bytes > 0 && lib.pushed > 5 && lib.ring_used_bytes > 0);
        let old = HeartbeatParts { host: &a.core.host, lib: &lib, heartbeat_records: Some(a.core.ring.heartbeats()) };
        let (mut want, mut got) = ([0u8; MAX_HEARTBEAT_LEN], [0u8; MAX_HEARTBEAT_LEN]);
        let n = write_body(&old, &mut want).unwrap();
        let own = super::super::heartbeat::OwnHeartbeat { core: &a.core, decoder: &a.decoder };
        assert_eq!(write_body(&own, &mut got), Some(n));
        assert_eq!(got[..n], want[..n], "round {round}");
        // And it decodes to the same values.
        let hb = AgentHeartbeat::decode(&got[..n]).unwrap();
        assert_eq!(hb.lib, lib);
        assert_eq!(hb.heartbeat_records, Some(a.heartbeat_records()));
        // One byte short: does not fit, like the old one.
        assert_eq!(write_body(&own, &mut got[..n - 1]), None);
        assert_eq!(write_body(&old, &mut want[..n - 1]), None);
    }
}

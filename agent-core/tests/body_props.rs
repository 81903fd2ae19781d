//! The one codec (`agent_core::wire::codec`, written by hand) must agree
//! with postcard's serde codec on every input, for every body it reads and
//! writes: same value on success, failure on the same inputs (for Accept,
//! whose field 3 is optional, postcard's reading of three fields or of
//! exactly two; for a heartbeat, postcard's reading of revision 3 or of
//! revision 2), and the writers produce postcard's bytes exactly.

use agent_core::heartbeat::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};
use agent_core::message::{Accept, Ack, Batch, Close, Config, Hello, Ping, Pong, Reject, Task, TaskResult};
use agent_core::plugin::PluginHeartbeat;
use agent_core::wire::codec::{read_body, ReadBody};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

fn agree<'a, T>(body: &'a [u8])
where
    T: ReadBody<'a> + Deserialize<'a> + PartialEq + Debug,
{
    assert_eq!(read_body::<T>(body).ok(), decode_body::<T>(body), "body {body:02x?}");
}

/// Postcard's reading of a body of type `T` (trailing bytes ignored).
fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    postcard::take_from_bytes(body).ok().map(|(v, _rest)| v)
}

fn all_agree(body: &[u8]) {
    agree::<Ping>(body);
    agree::<Pong>(body);
    agree::<Ack>(body);
    // Accept's field 3 is optional: postcard's three fields, or exactly two.
    let two = match postcard::take_from_bytes::<(u64, u32)>(body) {
        Ok(((next_seq, max_frame), [])) => Some(Accept { next_seq, max_frame, retry_window_ms: 0 }),
        _ => None,
    };
    assert_eq!(read_body::<Accept>(body).ok(), decode_body::<Accept>(body).or(two), "body {body:02x?}");
    agree::<Reject<'_>>(body);
    agree::<Close<'_>>(body);
    agree::<Task<'_>>(body);
    agree::<Config<'_>>(body);
    agree::<Hello<'_>>(body);
    agree::<Batch<'_>>(body);
    agree::<TaskResult<'_>>(body);
    agree::<PluginHeartbeat<'_>>(body);
    agree::<HostStats>(body);
    agree::<AgentStats>(body);
    agree::<HeartbeatRecords>(body);
    // A heartbeat: revision 3, else revision 2 with the new field unknown.
    let rev2 = decode_body::<(HostStats, AgentStats)>(body)
        .map(|(host, lib)| AgentHeartbeat { host, lib, heartbeat_records: None });
    assert_eq!(AgentHeartbeat::decode(body), decode_body::<AgentHeartbeat>(body).or(rev2), "body {body:02x?}");
}

fn round_trip<'a, T>(msg: &T, buf: &'a mut [u8])
where
    T: ReadBody<'a> + Serialize + PartialEq + Debug,
{
    let n = postcard::to_slice(msg, buf).unwrap().len();
    assert_eq!(read_body::<T>(&buf[..n]).as_ref(), Ok(msg));
}

/// Bodies biased towards what these kinds look like: short varints,
/// plausible lengths, and sometimes invalid UTF-8 or overlong varints.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(prop_oneof![0u8..8, Just(0x80), Just(0xff), any::<u8>()], 0..24),
        // Long runs of option tags and small varints: what stats look like.
        proptest::collection::vec(prop_oneof![0u8..3, Just(0x80), Just(0x81), any::<u8>()], 20..120),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn readers_agree_with_postcard_on_any_body(b in body()) {
        all_agree(&b);
    }

    #[test]
    fn readers_round_trip_every_downlink_kind(
        n in any::<u64>(), m in any::<u32>(), c in any::<u16>(),
        s1 in ".{0,12}", s2 in "\\PC{0,8}", s3 in ".{0,6}",
        p in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut buf = [0u8; 256];
        round_trip(&Ping { nonce: n }, &mut buf);
        round_trip(&Pong { nonce: n }, &mut buf);
        round_trip(&Ack { up_to: n }, &mut buf);
        round_trip(&Accept { next_seq: n, max_frame: m, retry_window_ms: m.rotate_left(7) }, &mut buf);
        round_trip(&Reject { code: c, reason: s1.as_str().into(), retry_after_ms: m }, &mut buf);
        round_trip(&Close { code: c, reason: s2.as_str().into() }, &mut buf);
        round_trip(&Task { object_name: s1.as_str().into(), data_type: m, payload: &p, token: s3.as_str().into() }, &mut buf);
        round_trip(&Config { name: s2.as_str().into(), version: s3.as_str().into(), payload: &p }, &mut buf);
        round_trip(&Batch { first_seq: n, base_ts: n ^ 0x5a5a, count: m, records: &p }, &mut buf);
        round_trip(&TaskResult { token: s3.as_str().into(), status: m, message: s1.as_str().into() }, &mut buf);
    }
}

/// The hand-written writer must produce postcard's bytes exactly.
fn same_bytes<T: agent_core::wire::codec::WriteBody + Serialize + Debug>(v: &T) {
    let mut mine = [0u8; 1024];
    let mut theirs = [0u8; 1024];
    let n = agent_core::wire::codec::write_body(v, &mut mine).expect("fits");
    let expect = postcard::to_slice(v, &mut theirs).unwrap();
    assert_eq!(&mine[..n], &expect[..], "{v:?}");
    // One byte short is refused, never truncated.
    assert_eq!(agent_core::wire::codec::write_body(v, &mut mine[..n - 1]), None, "{v:?}");
}

fn opt_u32() -> impl Strategy<Value = Option<u32>> {
    proptest::option::of(any::<u32>())
}

fn opt_u64() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(prop_oneof![any::<u64>(), 0u64..300])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn writers_match_postcard(
        n in any::<u64>(), m in any::<u32>(), c in any::<u16>(),
        s1 in ".{0,12}", s2 in "\\PC{0,8}", s3 in ".{0,6}",
        p in proptest::collection::vec(any::<u8>(), 0..40),
        status in 0u8..5,
        host in (opt_u32(), opt_u64(), opt_u32(), opt_u32(), opt_u32(), opt_u32(), opt_u64(), opt_u64(), opt_u64(), opt_u64()),
        counters in proptest::array::uniform24(prop_oneof![any::<u64>(), 0u64..200]),
        rtt in opt_u32(),
    ) {
        use agent_core::plugin::PluginStatus;
        same_bytes(&Ping { nonce: n });
        same_bytes(&Pong { nonce: n });
        same_bytes(&Ack { up_to: n });
        same_bytes(&Accept { next_seq: n, max_frame: m, retry_window_ms: m.rotate_left(7) });
        same_bytes(&Reject { code: c, reason: s1.as_str().into(), retry_after_ms: m });
        same_bytes(&Batch { first_seq: n, base_ts: n.rotate_left(5), count: m, records: &p });
        same_bytes(&Task { object_name: s1.as_str().into(), data_type: m, payload: &p, token: s3.as_str().into() });
        same_bytes(&Config { name: s2.as_str().into(), version: s3.as_str().into(), payload: &p });
        same_bytes(&Close { code: c, reason: s2.as_str().into() });
        same_bytes(&TaskResult { token: s1.as_str().into(), status: m, message: s2.as_str().into() });
        let status = [PluginStatus::Starting, PluginStatus::Running, PluginStatus::Stopping, PluginStatus::Stopped, PluginStatus::Error][status as usize];
        same_bytes(&PluginHeartbeat { name: s1.as_str().into(), version: s3.as_str().into(), pid: m, status });
        same_bytes(&Hello {
            agent_id: s1.as_str().into(), hostname: s2.as_str().into(), product: s3.as_str().into(), version: s1.as_str().into(),
            intranet_ipv4: &p, intranet_ipv6: &p[..p.len() / 2], extranet_ipv4: &[], extranet_ipv6: &p,
            auth_token: &p[p.len() / 3..], first_unacked_seq: n, next_seq: n / 3, max_frame: m, min_frame: m / 2,
        });
        let host = HostStats {
            cpu_permille: host.0, rss_bytes: host.1, open_fds: host.2, load1_centi: host.3, load5_centi: host.4,
            load15_centi: host.5, mem_used_bytes: host.6, mem_total_bytes: host.7, tx_bytes_per_sec: host.8,
            rx_bytes_per_sec: host.9,
        };
        let k = counters;
        let lib = AgentStats {
            pushed: k[0], acked: k[1], dropped_full: k[2], dropped_too_large: k[3], dropped_evicted: k[4],
            bytes_sent: k[5], bytes_received: k[6], frames_sent: k[7], frames_received: k[8], connections: k[9],
            connect_failures: k[10], last_rtt_ms: rtt, decoder_skipped_bytes: k[11], decoder_bad_crc: k[12],
            unknown_kinds: k[13], malformed: k[14], events_dropped: k[15], tasks_unroutable: k[16],
            protocol_errors: k[17], ring_used_bytes: k[18] as u32, ring_capacity: (k[19] >> 7) as u32,
            tasks_duplicate: k[19], decoder_oversized: k[20], clock_anomalies: k[21], peer_incompatible: k[22],
            ack_timeouts: k[23],
        };
        same_bytes(&AgentHeartbeat { host, lib, heartbeat_records: None });
        let records = HeartbeatRecords { pushed: k[0] / 3, dropped_full: k[2] / 2, dropped_evicted: k[4] };
        same_bytes(&records);
        same_bytes(&AgentHeartbeat { host, lib, heartbeat_records: Some(records) });
        // And the readers take those bytes back.
        let mut buf = [0u8; 1024];
        let hb = AgentHeartbeat { host, lib, heartbeat_records: Some(records) };
        let n = hb.encode(&mut buf).unwrap().len();
        prop_assert_eq!(AgentHeartbeat::decode(&buf[..n]), Some(hb));
        round_trip(&PluginHeartbeat { name: s1.as_str().into(), version: s3.as_str().into(), pid: m, status }, &mut buf);
    }
}

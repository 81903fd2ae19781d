//! Checks the heartbeat payload layout documented in PROTOCOL.md
//! ("Heartbeats") by decoding an encoded heartbeat field by field, the way a
//! collector written from the document would.

use agent_core::heartbeat::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};
use agent_core::plugin::{PluginHeartbeat, PluginStatus};
use agent_core::varint::decode_u64;

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn varint(&mut self) -> u64 {
        let (v, n) = decode_u64(self.0).unwrap();
        self.0 = &self.0[n..];
        v
    }
    fn option(&mut self) -> Option<u64> {
        let tag = self.0[0];
        self.0 = &self.0[1..];
        match tag {
            0 => None,
            1 => Some(self.varint()),
            t => panic!("bad option tag {t}"),
        }
    }
    fn string(&mut self) -> String {
        let n = self.varint() as usize;
        let s = std::str::from_utf8(&self.0[..n]).unwrap().to_owned();
        self.0 = &self.0[n..];
        s
    }
}

#[test]
fn agent_heartbeat_fields_in_documented_order() {
    let host = HostStats {
        cpu_permille: Some(1),
        rss_bytes: None,
        open_fds: Some(3),
        load1_centi: Some(4),
        load5_centi: None,
        load15_centi: Some(6),
        mem_used_bytes: Some(7),
        mem_total_bytes: Some(8),
        tx_bytes_per_sec: None,
        rx_bytes_per_sec: Some(10),
    };
    // Every counter gets a distinct value: 100 + its position in the table.
    let lib = AgentStats {
        pushed: 100,
        acked: 101,
        dropped_full: 102,
        dropped_too_large: 103,
        dropped_evicted: 104,
        bytes_sent: 105,
        bytes_received: 106,
        frames_sent: 107,
        frames_received: 108,
        connections: 109,
        connect_failures: 110,
        last_rtt_ms: Some(111),
        decoder_skipped_bytes: 112,
        decoder_bad_crc: 113,
        unknown_kinds: 114,
        malformed: 115,
        events_dropped: 116,
        tasks_unroutable: 117,
        protocol_errors: 118,
        ring_used_bytes: 119,
        ring_capacity: 120,
        tasks_duplicate: 121,
        decoder_oversized: 122,
        clock_anomalies: 123,
        peer_incompatible: 124,
        ack_timeouts: 125,
    };
    let mut buf = [0u8; 512];
    let records = HeartbeatRecords { pushed: 126, dropped_full: 127, dropped_evicted: 128 };
    let n = AgentHeartbeat { host, lib, heartbeat_records: Some(records) }.encode(&mut buf).unwrap().len();
    let mut c = Cursor(&buf[..n]);
    let host_fields: Vec<Option<u64>> = (0..10).map(|_| c.option()).collect();
    assert_eq!(host_fields, vec![Some(1), None, Some(3), Some(4), None, Some(6), Some(7), Some(8), None, Some(10)]);
    for expect in 100..=110 {
        assert_eq!(c.varint(), expect);
    }
    assert_eq!(c.option(), Some(111));
    for expect in 112..=125 {
        assert_eq!(c.varint(), expect);
    }
    // Revision 2: heartbeat_records, an option of three counters.
    assert_eq!(c.option(), Some(126));
    assert_eq!(c.varint(), 127);
    assert_eq!(c.varint(), 128);
    assert!(c.0.is_empty());
}

#[test]
fn plugin_heartbeat_fields_in_documented_order() {
    let hb = PluginHeartbeat { name: "scanner".into(), version: "1.2".into(), pid: 4242, status: PluginStatus::Error };
    let mut buf = [0u8; 64];
    let n = postcard::to_slice(&hb, &mut buf).unwrap().len();
    let mut c = Cursor(&buf[..n]);
    assert_eq!(c.string(), "scanner");
    assert_eq!(c.string(), "1.2");
    assert_eq!(c.varint(), 4242);
    assert_eq!(c.varint(), 4, "status is the variant index: 4 = error");
    assert!(c.0.is_empty());
}

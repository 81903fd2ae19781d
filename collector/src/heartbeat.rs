//! Agent heartbeat payloads (type 1000) of every layout revision
//! (PROTOCOL.md, Heartbeats): revision 1 ends after `tasks_duplicate`,
//! revision 2 appended four counters, revision 3 `heartbeat_records`
//! (which agent-core's decoder itself reads as unknown when absent). A payload that ends at a field
//! boundary after revision 1's fields decodes; the counters it lacks are
//! unknown (from an older agent), not zero.

use agent_core::heartbeat::AgentHeartbeat;

/// The `lib` counters appended after revision 1, in wire order.
pub const APPENDED: [&str; 4] = ["decoder_oversized", "clock_anomalies", "peer_incompatible", "ack_timeouts"];

/// Decodes a heartbeat payload of any revision: the heartbeat (counters it
/// lacks read as 0) and how many of the trailing [`APPENDED`] counters it
/// lacks. `None` if it is not a heartbeat of revision 1 or later.
pub fn decode(payload: &[u8]) -> Option<(AgentHeartbeat, usize)> {
    if let Some(h) = AgentHeartbeat::decode(payload) {
        return Some((h, 0));
    }
    // A payload that ends inside a varint is malformed, not early.
    if payload.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    // Each missing counter is one varint; 0 is one byte `00`.
    let mut padded = payload.to_vec();
    for missing in 1..=APPENDED.len() {
        padded.push(0);
        if let Some(h) = AgentHeartbeat::decode(&padded) {
            return Some((h, missing));
        }
    }
    None
}

/// `h` as JSON, the counters it lacked (`missing` of [`APPENDED`], from the
/// end) as `null`.
pub fn to_json(h: &AgentHeartbeat, missing: usize) -> serde_json::Value {
    let mut v = serde_json::to_value(h).expect("a heartbeat serializes");
    for name in &APPENDED[APPENDED.len() - missing.min(APPENDED.len())..] {
        v["lib"][*name] = serde_json::Value::Null;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_1_payloads_decode_with_unknown_counters() {
        let mut hb = AgentHeartbeat::default();
        hb.lib.pushed = 300;
        hb.lib.tasks_duplicate = 2;
        hb.lib.ack_timeouts = 9;
        let mut buf = [0u8; 400];
        let rev3 = hb.encode(&mut buf).unwrap().to_vec();
        // Revision 3 appended `heartbeat_records`, here absent: one byte.
        let full = &rev3[..rev3.len() - 1];
        // Revision 2 ends with four one-byte counters here (9 and three 0s).
        let rev1 = &full[..full.len() - 4];
        let (h, missing) = decode(rev1).unwrap();
        assert_eq!((h.lib.pushed, h.lib.tasks_duplicate, missing), (300, 2, 4));
        let v = to_json(&h, missing);
        assert_eq!(v["lib"]["tasks_duplicate"], 2);
        assert!(APPENDED.iter().all(|n| v["lib"][*n].is_null()), "{v}");
        let (h, missing) = decode(&full[..full.len() - 1]).unwrap();
        assert_eq!(missing, 1);
        assert_eq!(to_json(&h, missing)["lib"]["peer_incompatible"], 0);
        assert_eq!(decode(full).unwrap().1, 0);
        assert_eq!(decode(&rev3).unwrap().1, 0);
        assert!(decode(&full[..full.len() - 5]).is_none(), "shorter than revision 1");
        assert!(decode(&[0x81]).is_none());
    }
}

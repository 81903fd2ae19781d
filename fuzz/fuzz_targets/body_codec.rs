//! agent-core's one codec (`agent_core::wire::codec`, written by hand)
//! against postcard's serde codec, differentially.
//!
//! * Readers: on any bytes, for every body the codec reads (the eleven
//!   message kinds and the record payloads), `read_body` and postcard give
//!   the same value or both fail.
//! * Writers: any value postcard can decode from the input (every kind and
//!   payload) is written by `write_body` byte for byte as
//!   `postcard::to_slice` writes it; into a buffer of any size both succeed
//!   or both fail; `write_frame` gives the frame that `frame::encode_with`
//!   around postcard's body gives.
//!
//! (The property tests in `agent-core/tests/body_props.rs` check the same on
//! random inputs.)

#![no_main]

use std::fmt::Debug;

use agent_core::frame::{self, Kind, OVERHEAD};
use agent_core::heartbeat::{AgentHeartbeat, AgentStats, HeartbeatRecords, HostStats};
use agent_core::message::{Accept, Ack, Batch, Close, Config, Hello, Ping, Pong, Reject, Task, TaskResult};
use agent_core::wire::codec::{read_body, write_body, write_frame, ReadBody, WriteBody};
use agent_core::plugin::PluginHeartbeat;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    out_len: u16,
    seq: u32,
    bytes: &'a [u8],
}

fn reads_agree<'a, T>(body: &'a [u8])
where
    T: ReadBody<'a> + Deserialize<'a> + PartialEq + Debug,
{
    let by_hand = read_body::<T>(body).ok();
    let by_postcard = decode_body::<T>(body);
    assert_eq!(by_hand, by_postcard, "reading {} from {body:02x?}", std::any::type_name::<T>());
}

/// Postcard's reading of a body of type `T` (trailing bytes ignored).
fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    postcard::take_from_bytes(body).ok().map(|(v, _rest)| v)
}

/// A heartbeat: postcard's reading of revision 3, else of revision 2 (the
/// new field unknown).
fn heartbeat_reads_agree(body: &[u8]) {
    let rev2 = decode_body::<(HostStats, AgentStats)>(body)
        .map(|(host, lib)| AgentHeartbeat { host, lib, heartbeat_records: None });
    let by_postcard = decode_body::<AgentHeartbeat>(body).or(rev2);
    assert_eq!(AgentHeartbeat::decode(body), by_postcard, "reading a heartbeat from {body:02x?}");
}

/// Accept's field 3 is optional: the hand reader must match postcard's
/// reading of three fields, or of exactly two (field 3 absent = 0).
fn accept_reads_agree(body: &[u8]) {
    let two = match postcard::take_from_bytes::<(u64, u32)>(body) {
        Ok(((next_seq, max_frame), [])) => Some(Accept { next_seq, max_frame, retry_window_ms: 0 }),
        _ => None,
    };
    let by_postcard = decode_body::<Accept>(body).or(two);
    assert_eq!(read_body::<Accept>(body).ok(), by_postcard, "reading Accept from {body:02x?}");
}

fn writes_agree<'a, T>(input: &Input<'a>, kind: Option<Kind>)
where
    T: WriteBody + Serialize + Deserialize<'a> + Debug,
{
    let Ok((v, _)) = postcard::take_from_bytes::<T>(input.bytes) else { return };
    let name = std::any::type_name::<T>();
    // Re-encoding is never longer than the bytes decoded (varints minimal).
    let room = input.bytes.len() + 16;
    let mut a = vec![0u8; room];
    let n = postcard::to_slice(&v, &mut a).unwrap_or_else(|e| panic!("postcard re-encoding {v:?}: {e}")).len();
    let mut b = vec![0u8; room];
    let m = write_body(&v, &mut b).unwrap_or_else(|| panic!("write_body {name} into {room} bytes: {v:?}"));
    assert_eq!(&b[..m], &a[..n], "write_body differs from postcard for {v:?}");
    // Any buffer size: fits exactly when postcard's output fits.
    let k = usize::from(input.out_len) % (n + 2);
    let mut small = vec![0u8; k];
    match write_body(&v, &mut small) {
        Some(m) => {
            assert!(k >= n, "write_body claims {m} bytes in a {k}-byte buffer, postcard needs {n}");
            assert_eq!(&small[..m], &a[..n]);
        }
        None => assert!(k < n, "write_body refused a {k}-byte buffer for {n} bytes"),
    }
    if let Some(kind) = kind {
        let frame_len = usize::from(input.out_len) % (n + OVERHEAD + 2);
        let mut f1 = vec![0u8; frame_len];
        let mut f2 = vec![0u8; frame_len];
        let r1 = write_frame(kind, input.seq, &v, &mut f1);
        let r2 = frame::encode_with(kind, 0, input.seq, &mut f2, |b| postcard::to_slice(&v, b).ok().map(|s| s.len()));
        assert_eq!(r1, r2, "write_frame vs postcard in encode_with ({frame_len}-byte buffer)");
        if let Ok(len) = r1 {
            assert_eq!(&f1[..len], &f2[..len]);
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let body = input.bytes;
    reads_agree::<Ping>(body);
    reads_agree::<Pong>(body);
    reads_agree::<Ack>(body);
    accept_reads_agree(body);
    reads_agree::<Reject<'_>>(body);
    reads_agree::<Close<'_>>(body);
    reads_agree::<Task<'_>>(body);
    reads_agree::<Config<'_>>(body);
    reads_agree::<Hello<'_>>(body);
    reads_agree::<Batch<'_>>(body);
    reads_agree::<TaskResult<'_>>(body);
    reads_agree::<PluginHeartbeat<'_>>(body);
    reads_agree::<HostStats>(body);
    reads_agree::<AgentStats>(body);
    reads_agree::<HeartbeatRecords>(body);
    heartbeat_reads_agree(body);

    writes_agree::<Hello<'_>>(&input, Some(Kind::Hello));
    writes_agree::<Accept>(&input, Some(Kind::Accept));
    writes_agree::<Reject<'_>>(&input, Some(Kind::Reject));
    writes_agree::<Batch<'_>>(&input, Some(Kind::Batch));
    writes_agree::<Ack>(&input, Some(Kind::Ack));
    writes_agree::<Ping>(&input, Some(Kind::Ping));
    writes_agree::<Pong>(&input, Some(Kind::Pong));
    writes_agree::<Task<'_>>(&input, Some(Kind::Task));
    writes_agree::<Config<'_>>(&input, Some(Kind::Config));
    writes_agree::<Close<'_>>(&input, Some(Kind::Close));
    writes_agree::<TaskResult<'_>>(&input, Some(Kind::TaskResult));
    writes_agree::<HeartbeatRecords>(&input, None);
    writes_agree::<PluginHeartbeat<'_>>(&input, None);
    writes_agree::<HostStats>(&input, None);
    writes_agree::<AgentStats>(&input, None);
    writes_agree::<AgentHeartbeat>(&input, None);
});

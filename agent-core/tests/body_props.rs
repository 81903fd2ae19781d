//! The agent's hand-written body readers (`agent_core::body`) must agree with
//! postcard's serde decoder (`message::decode_body`) on every input: same
//! value on success, failure on the same inputs.

use agent_core::body::{read_body, ReadBody};
use agent_core::message::{decode_body, Accept, Ack, Close, Config, Ping, Pong, Reject, Task};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

fn agree<'a, T>(body: &'a [u8])
where
    T: ReadBody<'a> + Deserialize<'a> + PartialEq + Debug,
{
    assert_eq!(read_body::<T>(body).ok(), decode_body::<T>(body).ok(), "body {body:02x?}");
}

fn all_agree(body: &[u8]) {
    agree::<Ping>(body);
    agree::<Pong>(body);
    agree::<Ack>(body);
    agree::<Accept>(body);
    agree::<Reject<'_>>(body);
    agree::<Close<'_>>(body);
    agree::<Task<'_>>(body);
    agree::<Config<'_>>(body);
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
        round_trip(&Accept { next_seq: n, max_frame: m }, &mut buf);
        round_trip(&Reject { code: c, reason: &s1, retry_after_ms: m }, &mut buf);
        round_trip(&Close { code: c, reason: &s2 }, &mut buf);
        round_trip(&Task { object_name: &s1, data_type: m, payload: &p, token: &s3 }, &mut buf);
        round_trip(&Config { name: &s2, version: &s3, payload: &p }, &mut buf);
    }
}

//! Every CRC-32C choice gives the same value: the one this build of
//! `agent_core::frame::crc32c` uses (chosen by the `crc-*` features), the
//! `crc` crate's bitwise, 1-table and 16-table variants (the firmware
//! choices) and the `crc32c` crate (hardware instructions where the CPU
//! has them, the `crc-hw` feature). CI runs this with the default features
//! and with `--features crc-hw`.

use agent_core::frame::crc32c;
use crc::{Crc, NoTable, Table, CRC_32_ISCSI};
use proptest::prelude::*;

const NOTABLE: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);
const TABLE1: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);
const TABLE16: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

fn all_agree(bytes: &[u8]) {
    let want = NOTABLE.checksum(bytes);
    assert_eq!(TABLE1.checksum(bytes), want, "table1, {} bytes", bytes.len());
    assert_eq!(TABLE16.checksum(bytes), want, "table16, {} bytes", bytes.len());
    assert_eq!(crc32c::crc32c(bytes), want, "crc32c crate, {} bytes", bytes.len());
    assert_eq!(crc32c(bytes), want, "agent_core::frame::crc32c, {} bytes", bytes.len());
}

#[test]
fn check_value_and_edges() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    all_agree(b"");
    all_agree(b"123456789");
    // Lengths around the hardware paths' 8-byte words and unaligned starts.
    let data: Vec<u8> = (0..4200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for start in 0..9 {
        for len in (0..80).chain([511, 512, 513, 4095, 4096, 4191 - start]) {
            all_agree(&data[start..start + len]);
        }
    }
}

proptest! {
    #[test]
    fn every_crc_choice_agrees(bytes in prop::collection::vec(any::<u8>(), 0..3000), start in 0usize..16) {
        let start = start.min(bytes.len());
        all_agree(&bytes[start..]);
    }
}

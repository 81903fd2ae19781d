//! LEB128 varints and zigzag, bit-identical to postcard's integer encoding.
//!
//! Used where the ring and the batch encoder write record headers by hand, so
//! that those bytes are exactly what postcard would produce for the same
//! fields (see PROTOCOL.md, "Integers").

/// Longest encoding of a `u64`.
pub const MAX_LEN_U64: usize = 10;

/// Number of bytes `value` takes as a varint (1..=10): one per 7
/// significant bits, computed from the leading zeros (no loop).
pub const fn len_u64(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    // Not `div_ceil`: that costs a remainder and a branch on this hot path.
    #[allow(clippy::manual_div_ceil)]
    let n = (bits + 6) / 7;
    n
}

/// Writes `value` into `out`, returning the bytes written, or `None` if `out`
/// is too short (nothing meaningful is written then).
pub fn encode_u64(mut value: u64, out: &mut [u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let byte = out.get_mut(i)?;
        if value < 0x80 {
            *byte = value as u8;
            return Some(i + 1);
        }
        *byte = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
        i += 1;
    }
}

/// Encodes into a fixed array, returning it and the used length.
pub fn encode_u64_array(value: u64) -> ([u8; MAX_LEN_U64], usize) {
    let mut buf = [0u8; MAX_LEN_U64];
    // A 10-byte buffer always holds a u64.
    let n = encode_u64(value, &mut buf).unwrap_or(0);
    (buf, n)
}

/// Why a varint could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than 10 bytes, or bits beyond 64.
    Overlong,
}

/// Reads a varint from the bytes yielded by `next`, returning the value and
/// the number of bytes consumed.
pub fn decode_u64_with(mut next: impl FnMut(usize) -> Option<u8>) -> Result<(u64, usize), VarintError> {
    // Assembled from the first byte up by a multiplier: no 64-bit shift by
    // a variable amount (a library call on 32-bit MCUs), and one pass.
    let (mut value, mut mul, mut n) = (0u64, 1u64, 0);
    loop {
        let byte = next(n).ok_or(VarintError::Truncated)?;
        n += 1;
        // The tenth byte (multiplier 2^63) may only hold bit 63, and ends
        // the varint.
        if mul == 1 << 63 && byte > 1 {
            return Err(VarintError::Overlong);
        }
        value |= u64::from(byte & 0x7f).wrapping_mul(mul);
        if byte & 0x80 == 0 {
            return Ok((value, n));
        }
        mul <<= 7;
    }
}

/// Reads a varint from the front of `bytes`, returning the value and the
/// number of bytes consumed. Same result as [`decode_u64_with`].
pub fn decode_u64(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
    decode_u64_with(|i| bytes.get(i).copied())
}

/// Zigzag-maps a signed value to unsigned (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...).
pub const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn len_matches_encoding_at_every_boundary() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                assert_eq!(len_u64(v), encode_u64_array(v).1, "{v}");
            }
        }
        assert_eq!(len_u64(0), 1);
        assert_eq!(len_u64(u64::MAX), 10);
    }

    #[test]
    fn round_trips_and_lengths() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let (buf, n) = encode_u64_array(v);
            assert_eq!(n, len_u64(v));
            assert_eq!(decode_u64(&buf[..n]), Ok((v, n)));
        }
        assert_eq!(encode_u64_array(300).0[..2], [0xac, 0x02]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode_u64(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(decode_u64(&[0xff; 11]), Err(VarintError::Overlong));
        assert_eq!(decode_u64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), Err(VarintError::Overlong));
    }

    #[test]
    fn slice_and_closure_decoders_agree_with_the_reference() {
        let mut inputs: std::vec::Vec<std::vec::Vec<u8>> = std::vec![std::vec![], std::vec![0x80; 11], std::vec![0xff; 10]];
        for v in [0u64, 1, 127, 128, 16_384, u32::MAX as u64, u64::MAX] {
            let (b, n) = encode_u64_array(v);
            for cut in 0..=n {
                inputs.push(b[..cut].to_vec());
            }
        }
        let mut last = [0xff; 10];
        last[9] = 0x02;
        inputs.push(last.to_vec());
        // Every 1- and 2-byte input, and the 10th byte's every value.
        for a in 0..=255u8 {
            inputs.push(std::vec![a]);
            for b in 0..=255u8 {
                inputs.push(std::vec![a, b]);
            }
            let mut ten = [0x80; 10];
            ten[9] = a;
            inputs.push(ten.to_vec());
        }
        // Random inputs of up to 12 bytes, mostly continuation bytes.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 13) as usize;
            let raw = x.to_le_bytes();
            let bytes = raw.iter().chain(&[0x81, 0x80, 0x01, 0x7f]).enumerate();
            inputs.push(bytes.map(|(i, &b)| if x >> (40 + i) & 3 == 0 { b & 0x7f } else { b | 0x80 }).take(len).collect());
        }
        for bytes in &inputs {
            let want = reference(bytes);
            assert_eq!(decode_u64(bytes), want, "{bytes:?}");
            assert_eq!(decode_u64_with(|i| bytes.get(i).copied()), want, "{bytes:?}");
        }
    }

    /// The decoder as first written (forward, a shift by 7 * i per byte):
    /// what the two decoders must agree with.
    fn reference(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
        let mut value: u64 = 0;
        for (i, &byte) in bytes.iter().take(MAX_LEN_U64).enumerate() {
            let bits = u64::from(byte & 0x7f);
            if i == MAX_LEN_U64 - 1 && bits > 1 {
                return Err(VarintError::Overlong);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok((value, i + 1));
            }
        }
        Err(if bytes.len() >= MAX_LEN_U64 { VarintError::Overlong } else { VarintError::Truncated })
    }

    #[test]
    fn zigzag_matches_postcard() {
        for v in [0i64, -1, 1, -2, 63, -64, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
            let mut buf = [0u8; 16];
            let pc = postcard::to_slice(&v, &mut buf).unwrap();
            let (mine, n) = encode_u64_array(zigzag(v));
            assert_eq!(pc, &mine[..n]);
        }
    }
}

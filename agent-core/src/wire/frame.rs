//! Frame layout, CRC-32C and the frame encoder.
//!
//! ```text
//! offset size field
//!  0     2    magic       0xEA 0x9E
//!  2     1    version     1
//!  3     1    kind        see [`Kind`]
//!  4     1    flags       0; receivers ignore bits they do not know
//!  5     4    body_len    u32 little-endian
//!  9     4    seq         u32 little-endian, per-connection frame counter
//! 13     n    body        postcard encoding of the kind's message
//! 13+n   4    crc         CRC-32C (Castagnoli) of bytes 0..13+n, little-endian
//! ```
//!
//! A frame is therefore `body_len + 17` bytes. Each side announces the
//! largest frame it accepts (`max_frame`) in Hello / Accept; a frame whose
//! declared size exceeds the receiver's buffer is treated as corrupt.

use core::fmt;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = [0xEA, 0x9E];
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 13;
/// Bytes after the body (the CRC).
pub const TRAILER_LEN: usize = 4;
/// Header plus trailer: a frame's size beyond its body.
pub const OVERHEAD: usize = HEADER_LEN + TRAILER_LEN;
/// Smallest `max_frame` either side may announce.
pub const MIN_MAX_FRAME: usize = 64;

/// Message kinds (the frame's `kind` byte). Numbers are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Agent -> server: identity and resume point; first frame of a connection.
    Hello = 1,
    /// Server -> agent: handshake accepted, with the server's resume point.
    Accept = 2,
    /// Server -> agent: handshake refused.
    Reject = 3,
    /// Agent -> server: records.
    Batch = 4,
    /// Server -> agent: records up to a sequence number are stored.
    Ack = 5,
    /// Either way: liveness probe.
    Ping = 6,
    /// Either way: answer to Ping.
    Pong = 7,
    /// Server -> agent: a command for the agent or a plugin.
    Task = 8,
    /// Server -> agent: a named configuration blob with a version.
    Config = 9,
    /// Agent -> server: outcome of a Task (also carried as a record).
    TaskResult = 10,
    /// Either way: the sender is closing the connection, and why.
    Close = 11,
}

impl Kind {
    /// The kind for a wire byte, if known.
    pub const fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Accept,
            3 => Kind::Reject,
            4 => Kind::Batch,
            5 => Kind::Ack,
            6 => Kind::Ping,
            7 => Kind::Pong,
            8 => Kind::Task,
            9 => Kind::Config,
            10 => Kind::TaskResult,
            11 => Kind::Close,
            _ => return None,
        })
    }
}

/// A decoded frame, body not yet interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Protocol version byte.
    pub version: u8,
    /// Kind byte (may be a kind this crate does not know).
    pub kind: u8,
    /// Flags byte.
    pub flags: u8,
    /// The sender's frame counter.
    pub seq: u32,
    /// The body bytes.
    pub body: &'a [u8],
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EncodeError {
    /// The output buffer (or the negotiated maximum) is too small.
    BufferTooSmall = 1,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("frame does not fit the output buffer")
    }
}

#[cfg(all(feature = "crc-notable", not(feature = "crc-hw")))]
type CrcImpl = crc::NoTable;
#[cfg(all(
    not(feature = "crc-hw"),
    not(feature = "crc-notable"),
    any(feature = "crc-table1", not(feature = "crc-table16"))
))]
type CrcImpl = crc::Table<1>;
#[cfg(all(not(feature = "crc-hw"), not(feature = "crc-notable"), not(feature = "crc-table1"), feature = "crc-table16"))]
type CrcImpl = crc::Table<16>;

#[cfg(not(feature = "crc-hw"))]
const CASTAGNOLI: crc::Crc<u32, CrcImpl> = crc::Crc::<u32, CrcImpl>::new(&crc::CRC_32_ISCSI);

/// CRC-32C of `bytes` (the check value of `b"123456789"` is `0xE3069283`).
///
/// Computed as the crate's features choose: `crc-hw` (hardware
/// instructions where the host CPU has them), else the `crc` crate with
/// `crc-notable` (bitwise), `crc-table1` (1 KiB table) or `crc-table16`
/// (16 KiB, the default). Every choice gives the same value.
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(feature = "crc-hw")]
    {
        ::crc32c::crc32c(bytes)
    }
    #[cfg(not(feature = "crc-hw"))]
    {
        CASTAGNOLI.checksum(bytes)
    }
}

/// Writes a frame of `kind` into `out`: `body` is called with the space for
/// the body and returns how many bytes it wrote (`None` if it did not fit).
/// Returns the frame's total length.
pub fn encode_with(
    kind: Kind,
    flags: u8,
    seq: u32,
    out: &mut [u8],
    body: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Result<usize, EncodeError> {
    let body_room = out.len().checked_sub(OVERHEAD).ok_or(EncodeError::BufferTooSmall)?;
    let room = out.get_mut(HEADER_LEN..HEADER_LEN + body_room).ok_or(EncodeError::BufferTooSmall)?;
    let n = body(room).ok_or(EncodeError::BufferTooSmall)?;
    match finish(kind, flags, seq, out, n) {
        0 => Err(EncodeError::BufferTooSmall),
        len => Ok(len),
    }
}

/// Writes the header and CRC around the `n` body bytes already at
/// `out[HEADER_LEN..]`; the frame's total length, or 0 (no frame is empty)
/// when `n` bytes and the overhead do not fit `out`. One copy for every
/// kind: [`encode_with`] is generic, this is not. (A plain length, not a
/// `Result`: returned in a register, not through memory.)
#[inline(never)]
fn finish(kind: Kind, flags: u8, seq: u32, out: &mut [u8], n: usize) -> usize {
    if n > out.len().saturating_sub(OVERHEAD) || n > u32::MAX as usize {
        return 0;
    }
    let [l0, l1, l2, l3] = (n as u32).to_le_bytes();
    let [s0, s1, s2, s3] = seq.to_le_bytes();
    let end = HEADER_LEN + n;
    // In bounds: `n` fits with the overhead (checked above); checked again
    // by the getters, whose `None` (never taken) costs a branch, not a
    // panic path.
    let Some((frame, trailer)) = out.split_at_mut_checked(end) else { return 0 };
    let Some(head) = frame.first_chunk_mut::<HEADER_LEN>() else { return 0 };
    *head = [MAGIC[0], MAGIC[1], VERSION, kind as u8, flags, l0, l1, l2, l3, s0, s1, s2, s3];
    let crc = crc32c(frame).to_le_bytes();
    let Some(tail) = trailer.first_chunk_mut::<TRAILER_LEN>() else { return 0 };
    *tail = crc;
    end + TRAILER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn encodes_header_and_crc() {
        let mut out = [0u8; 32];
        let n = encode_with(Kind::Ping, 0, 7, &mut out, |b| {
            b[0] = 0x2a;
            Some(1)
        })
        .unwrap();
        assert_eq!(n, 18);
        assert_eq!(&out[..13], &[0xEA, 0x9E, 1, 6, 0, 1, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(out[13], 0x2a);
        assert_eq!(u32::from_le_bytes(out[14..18].try_into().unwrap()), crc32c(&out[..14]));
        assert_eq!(encode_with(Kind::Ping, 0, 0, &mut out[..16], |_| Some(0)), Err(EncodeError::BufferTooSmall));
    }

    /// A frame fits a buffer of exactly `n + OVERHEAD` bytes and not one
    /// byte less, and writes nothing past its end.
    #[test]
    fn fits_exactly_and_writes_nothing_past_the_frame() {
        for n in [0usize, 1, 5, 40] {
            let mut out = [0xAAu8; 64];
            let len = n + OVERHEAD;
            assert_eq!(finish(Kind::Batch, 0, 0x0102_0304, &mut out[..len - 1], n), 0);
            assert_eq!(finish(Kind::Batch, 0, 0x0102_0304, &mut out[..len], n), len);
            assert_eq!(&out[..HEADER_LEN], &[0xEA, 0x9E, 1, 4, 0, n as u8, 0, 0, 0, 4, 3, 2, 1]);
            assert_eq!(out[len - TRAILER_LEN..len], crc32c(&out[..len - TRAILER_LEN]).to_le_bytes());
            assert!(out[len..].iter().all(|&b| b == 0xAA));
        }
    }

    #[test]
    fn kinds_round_trip() {
        for b in 0..=255u8 {
            if let Some(k) = Kind::from_u8(b) {
                assert_eq!(k as u8, b);
            }
        }
        assert_eq!(Kind::from_u8(12), None);
    }
}

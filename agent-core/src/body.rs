//! A hand-written reader of the message bodies an agent receives.
//!
//! [`crate::message`] decodes every kind through postcard's serde
//! deserializer; that generic code costs about 2 KiB of flash on a Cortex-M4
//! for the eight kinds an agent can receive. The agent reads those kinds
//! with [`read_body`] instead: the same postcard encoding (varints, with
//! postcard's byte limits: 3 for `u16`, 5 for `u32`, 10 for `u64` and
//! lengths; strings checked as UTF-8; trailing bytes ignored), written out by
//! hand. A property test checks that both decoders agree on every body.

use crate::message::{Accept, Ack, Close, Config, DecodeError, Ping, Pong, Reject, Task};
use crate::varint;

/// A cursor over a body.
pub struct BodyReader<'a> {
    bytes: &'a [u8],
}

impl<'a> BodyReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BodyReader { bytes }
    }

    fn varint(&mut self, max_len: usize) -> Result<u64, DecodeError> {
        let (v, n) = varint::decode_u64(self.bytes).map_err(|_| DecodeError::Malformed)?;
        if n > max_len {
            return Err(DecodeError::Malformed);
        }
        self.bytes = &self.bytes[n..];
        Ok(v)
    }

    /// A `u16` varint.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.varint(3)?).map_err(|_| DecodeError::Malformed)
    }

    /// A `u32` varint.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint(5)?).map_err(|_| DecodeError::Malformed)
    }

    /// A `u64` varint.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint(varint::MAX_LEN_U64)
    }

    /// A byte string: varint length, then the bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(self.varint(varint::MAX_LEN_U64)?).map_err(|_| DecodeError::Malformed)?;
        let (head, rest) = (self.bytes.get(..n), self.bytes.get(n..));
        let (Some(head), Some(rest)) = (head, rest) else { return Err(DecodeError::Malformed) };
        self.bytes = rest;
        Ok(head)
    }

    /// A UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        core::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Malformed)
    }
}

/// A body the agent can read by hand.
pub trait ReadBody<'a>: Sized {
    /// Reads the fields in order; trailing bytes are left unread.
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError>;
}

/// Reads a body of type `T` (trailing bytes ignored, as in
/// [`crate::message::decode_body`]).
pub fn read_body<'a, T: ReadBody<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    T::read(&mut BodyReader::new(body))
}

impl<'a> ReadBody<'a> for Ping {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Ping { nonce: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for Pong {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Pong { nonce: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for Ack {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Ack { up_to: r.u64()? })
    }
}

impl<'a> ReadBody<'a> for Accept {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Accept { next_seq: r.u64()?, max_frame: r.u32()? })
    }
}

impl<'a> ReadBody<'a> for Reject<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Reject { code: r.u16()?, reason: r.str()?, retry_after_ms: r.u32()? })
    }
}

impl<'a> ReadBody<'a> for Close<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Close { code: r.u16()?, reason: r.str()? })
    }
}

impl<'a> ReadBody<'a> for Task<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Task { object_name: r.str()?, data_type: r.u32()?, payload: r.bytes()?, token: r.str()? })
    }
}

impl<'a> ReadBody<'a> for Config<'a> {
    fn read(r: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        Ok(Config { name: r.str()?, version: r.str()?, payload: r.bytes()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::decode_body;

    #[test]
    fn agrees_with_postcard_on_edge_cases() {
        // Overlong u32 (6 bytes), u16 overflow, truncated string, bad UTF-8,
        // trailing bytes, and a plain good body.
        let bodies: [&[u8]; 6] = [
            &[1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0xff, 0xff, 0x04, 0, 0],
            &[0, 5, b'a'],
            &[0, 1, 0xff, 0],
            &[7, 0x80, 0x01, 0xaa, 0xbb],
            &[1, 2, b'h', b'i', 3],
        ];
        for b in bodies {
            assert_eq!(read_body::<Accept>(b).ok(), decode_body::<Accept>(b).ok(), "{b:?}");
            assert_eq!(read_body::<Reject<'_>>(b).ok(), decode_body::<Reject<'_>>(b).ok(), "{b:?}");
            assert_eq!(read_body::<Close<'_>>(b).ok(), decode_body::<Close<'_>>(b).ok(), "{b:?}");
            assert_eq!(read_body::<Ack>(b).ok(), decode_body::<Ack>(b).ok(), "{b:?}");
        }
    }
}

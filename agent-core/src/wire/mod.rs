//! Everything that touches bytes on the wire, one idea per module:
//!
//! | module | holds |
//! |---|---|
//! | [`frame`] | the frame layout, [`frame::Kind`], CRC-32C, the frame encoder |
//! | [`decoder`] | the streaming frame decoder (any chunking, resynchronizes on garbage) |
//! | [`message`] | the message types, one body struct per kind, and [`message::Message`] |
//! | [`codec`] | the one codec: a hand-written reader and writer per body (postcard's format) |
//! | [`varint`] | LEB128 varints and zigzag |

pub mod codec;
pub mod decoder;
pub mod frame;
pub mod message;
pub mod varint;

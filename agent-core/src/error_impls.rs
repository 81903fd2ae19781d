//! `core::error::Error` for every error type of this crate, and `Display`
//! for the two that had none (`VarintError`, `EntryError`). Kept apart from
//! the types' own modules: one place lists what counts as an error here.
//!
//! Every error is a small `Copy` value with no inner cause, so `source()`
//! is always `None`; `Display` says what went wrong in one lower-case phrase.

use core::fmt;

use crate::agent::ConfigError;
use crate::driver::{BufferTooSmall, TransportLoss};
use crate::wire::frame::EncodeError;
use crate::wire::message::DecodeError;
use crate::plugin::PluginError;
use crate::record::EntryError;
use crate::ring::PushError;
use crate::wire::varint::VarintError;

impl fmt::Display for VarintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VarintError::Truncated => "input ended inside a varint",
            VarintError::Overlong => "varint longer than 10 bytes or beyond 64 bits",
        })
    }
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryError::Truncated => "batch entry truncated",
            EntryError::Malformed => "batch entry malformed",
        })
    }
}

impl core::error::Error for ConfigError {}
impl core::error::Error for PushError {}
impl core::error::Error for PluginError {}
impl core::error::Error for DecodeError {}
impl core::error::Error for EncodeError {}
impl core::error::Error for VarintError {}
impl core::error::Error for EntryError {}
impl core::error::Error for BufferTooSmall {}
impl core::error::Error for TransportLoss {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::error::Error;
    use embedded_io::ErrorKind;

    /// Each error is usable as `&dyn Error` (what `?` into a boxed error and
    /// error-reporting crates need) and says something through it.
    #[test]
    fn every_error_is_a_core_error_with_a_message() {
        let errors: [&dyn Error; 11] = [
            &ConfigError::RingTooSmall,
            &PushError::Full,
            &PluginError::Duplicate,
            &DecodeError::Malformed,
            &EncodeError::BufferTooSmall,
            &VarintError::Truncated,
            &VarintError::Overlong,
            &EntryError::Truncated,
            &EntryError::Malformed,
            &BufferTooSmall { needed: 512 },
            &TransportLoss::Read(ErrorKind::ConnectionReset),
        ];
        let mut seen = std::collections::HashSet::new();
        for e in errors {
            let text = std::format!("{e}");
            assert!(!text.is_empty(), "{e:?} has an empty message");
            assert!(e.source().is_none(), "{e:?} has no inner cause");
            assert!(seen.insert(text), "{e:?} repeats another error's message");
        }
        assert_eq!(std::format!("{}", BufferTooSmall { needed: 512 }), "driver work buffer too small: needs at least 512 bytes");
    }
}

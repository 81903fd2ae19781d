//! `defmt::Format` (feature `defmt`) for what firmware logs: the error
//! types, the session's state and events, and the stats snapshots. Written
//! here rather than derived at each type, so the types' modules stay free
//! of logging concerns. The stats impls destructure their struct without
//! `..`, so a field added there fails the `defmt` build until it is printed.
//!
//! defmt interns every string at build time: a log line costs the device
//! an index and the raw numbers, not the text.

use defmt::{write, Format, Formatter};

use crate::agent::{ConfigError, Link, StateKind};
use crate::driver::{BufferTooSmall, TransportLoss};
use crate::events::{DisconnectReason, Event, TaskTarget, TransportError};
use crate::wire::frame::EncodeError;
use crate::stats::{AgentStats, HeartbeatRecords};
use crate::wire::message::DecodeError;
use crate::plugin::{PluginError, PluginId, PluginStatus};
use crate::record::EntryError;
use crate::ring::{PushError, RingCounters};
use crate::time::{Duration, Instant};
use crate::wire::varint::VarintError;

/// `Format` for a field-less enum: each variant prints as its name (sent as
/// `{=str}`: defmt's macros need a literal to intern, and `stringify!` is
/// not one yet when they run).
macro_rules! format_by_name {
    ($($ty:ident { $($variant:ident),+ $(,)? })+) => {$(
        impl Format for $ty {
            fn format(&self, f: Formatter<'_>) {
                match self {
                    $($ty::$variant => write!(f, "{=str}", stringify!($variant)),)+
                }
            }
        }
    )+};
}

format_by_name! {
    ConfigError {
        BatchTooSmall, WindowTooSmall, RxBufferTooSmall, HeartbeatTooFrequent, ZeroLimit, ZeroInterval,
        MaxRecordTooSmall, BadAddressList, ZeroBackoff, HelloTooLarge, EventQueueTooSmall, RingTooSmall,
        TxBufferTooSmall,
    }
    PushError { Full, TooLarge }
    PluginError { Full, UnknownId, Duplicate, TooLong }
    DecodeError { UnsupportedVersion, UnknownKind, Malformed }
    EncodeError { BufferTooSmall }
    VarintError { Truncated, Overlong }
    EntryError { Truncated, Malformed }
    DisconnectReason {
        Transport, ConnectTimeout, HandshakeTimeout, PongTimeout, Rejected, PeerClosed, Incompatible, Shutdown,
        AckTimeout, ProtocolError, BadResume,
    }
    TransportError { Closed, Refused, Reset, TimedOut, Unreachable, Other }
    StateKind { Backoff, Connecting, Handshaking, Connected, GaveUp, Closed }
    Link { Carrier, Carrierless }
    PluginStatus { Starting, Running, Stopping, Stopped, Error }
}

impl Format for BufferTooSmall {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "BufferTooSmall {{ needed: {=usize} }}", self.needed)
    }
}

impl Format for TransportLoss {
    fn format(&self, f: Formatter<'_>) {
        // embedded-io's ErrorKind has its own Format behind its `defmt` feature.
        match self {
            TransportLoss::Connect(k) => write!(f, "Connect({})", k),
            TransportLoss::Read(k) => write!(f, "Read({})", k),
            TransportLoss::Write(k) => write!(f, "Write({})", k),
            TransportLoss::Eof => write!(f, "Eof"),
        }
    }
}

impl Format for Instant {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "{=u64}ms", self.0)
    }
}

impl Format for Duration {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "{=u64}ms", self.0)
    }
}

impl Format for PluginId {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "PluginId({=u8})", self.0)
    }
}

impl Format for TaskTarget {
    fn format(&self, f: Formatter<'_>) {
        match self {
            TaskTarget::Agent => write!(f, "Agent"),
            TaskTarget::Plugin(id) => write!(f, "Plugin({})", id),
        }
    }
}

// The strings print through `Text::as_str`, so a build that logs events
// links `core::str::from_utf8` (crate::text).
impl Format for Event<'_> {
    fn format(&self, f: Formatter<'_>) {
        match self {
            Event::Connect { endpoint } => write!(f, "Connect {{ endpoint: {=u8} }}", endpoint),
            Event::Disconnect { reason } => write!(f, "Disconnect {{ reason: {} }}", reason),
            Event::Connected { endpoint } => write!(f, "Connected {{ endpoint: {=u8} }}", endpoint),
            Event::Task { target, object_name, data_type, payload, token } => write!(
                f,
                "Task {{ target: {}, object_name: {=str}, data_type: {=u32}, payload: {=usize} bytes, token: {=str} }}",
                target,
                object_name.as_str(),
                data_type,
                payload.len(),
                token.as_str()
            ),
            Event::Shutdown { token } => write!(f, "Shutdown {{ token: {=str} }}", token.as_str()),
            Event::Config { name, version, payload } => write!(
                f,
                "Config {{ name: {=str}, version: {=str}, payload: {=usize} bytes }}",
                name.as_str(),
                version.as_str(),
                payload.len()
            ),
            Event::Delivered { acked_total, first_unacked_seq } => write!(
                f,
                "Delivered {{ acked_total: {=u64}, first_unacked_seq: {=u64} }}",
                acked_total,
                first_unacked_seq
            ),
            Event::GaveUp => write!(f, "GaveUp"),
        }
    }
}

impl Format for HeartbeatRecords {
    fn format(&self, f: Formatter<'_>) {
        let HeartbeatRecords { pushed, dropped_full, dropped_evicted } = *self;
        write!(
            f,
            "HeartbeatRecords {{ pushed: {=u64}, dropped_full: {=u64}, dropped_evicted: {=u64} }}",
            pushed,
            dropped_full,
            dropped_evicted
        )
    }
}

impl Format for RingCounters {
    fn format(&self, f: Formatter<'_>) {
        let RingCounters { pushed, acked, dropped_full, dropped_too_large, dropped_evicted, heartbeats } = *self;
        write!(
            f,
            "RingCounters {{ pushed: {=u64}, acked: {=u64}, dropped_full: {=u64}, dropped_too_large: {=u64}, dropped_evicted: {=u64}, heartbeats: {} }}",
            pushed,
            acked,
            dropped_full,
            dropped_too_large,
            dropped_evicted,
            heartbeats
        )
    }
}

impl Format for AgentStats {
    fn format(&self, f: Formatter<'_>) {
        let AgentStats {
            pushed,
            acked,
            dropped_full,
            dropped_too_large,
            dropped_evicted,
            bytes_sent,
            bytes_received,
            frames_sent,
            frames_received,
            connections,
            connect_failures,
            last_rtt_ms,
            decoder_skipped_bytes,
            decoder_bad_crc,
            unknown_kinds,
            malformed,
            events_dropped,
            tasks_unroutable,
            protocol_errors,
            ring_used_bytes,
            ring_capacity,
            tasks_duplicate,
            decoder_oversized,
            clock_anomalies,
            peer_incompatible,
            ack_timeouts
        } = *self;
        // Two writes: the record and connection counts, then the protocol's.
        write!(
            f,
            "AgentStats {{ pushed: {=u64}, acked: {=u64}, dropped_full: {=u64}, dropped_too_large: {=u64}, dropped_evicted: {=u64}, \
             events_dropped: {=u64}, ring_used_bytes: {=u32}, ring_capacity: {=u32}, bytes_sent: {=u64}, bytes_received: {=u64}, \
             frames_sent: {=u64}, frames_received: {=u64}, connections: {=u64}, connect_failures: {=u64}, last_rtt_ms: {}, ",
            pushed,
            acked,
            dropped_full,
            dropped_too_large,
            dropped_evicted,
            events_dropped,
            ring_used_bytes,
            ring_capacity,
            bytes_sent,
            bytes_received,
            frames_sent,
            frames_received,
            connections,
            connect_failures,
            last_rtt_ms
        );
        write!(
            f,
            "decoder_skipped_bytes: {=u64}, decoder_bad_crc: {=u64}, decoder_oversized: {=u64}, unknown_kinds: {=u64}, \
             malformed: {=u64}, protocol_errors: {=u64}, peer_incompatible: {=u64}, ack_timeouts: {=u64}, \
             tasks_unroutable: {=u64}, tasks_duplicate: {=u64}, clock_anomalies: {=u64} }}",
            decoder_skipped_bytes,
            decoder_bad_crc,
            decoder_oversized,
            unknown_kinds,
            malformed,
            protocol_errors,
            peer_incompatible,
            ack_timeouts,
            tasks_unroutable,
            tasks_duplicate,
            clock_anomalies
        )
    }
}

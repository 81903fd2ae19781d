//! Every bound and interval of the session, and the one validation step that
//! refuses configurations that cannot work.

use core::fmt;

use super::identity::Identity;
use crate::backoff::BackoffConfig;
use crate::record::MAX_ENTRY_HEADER;
use crate::ring::RingConfig;
use crate::stats::MAX_HEARTBEAT_LEN;
use crate::time::Duration;
use crate::wire::frame::{self, OVERHEAD};
use crate::wire::varint;

/// Bytes a Batch body needs beyond its entries: four varints.
pub const BATCH_HEADER_MAX: usize = 10 + 10 + 5 + 5;


/// Every bound and interval of the session. `Default` gives the documented
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// Ring settings (largest record, overflow policy).
    pub ring: RingConfig,
    /// Largest batch, in bytes of record entries (default 4096).
    pub batch_max_bytes: usize,
    /// Most records in one batch (default 256).
    pub batch_max_records: u32,
    /// Longest a pending record waits before a partial batch is sent
    /// (default 100 ms).
    pub flush_interval: Duration,
    /// Most unacked bytes in flight (default 16 KiB).
    pub window_bytes: usize,
    /// Interval between heartbeats (default 60 s, at least 1 s).
    pub heartbeat_interval: Duration,
    /// Time without any received frame before a Ping (default 15 s).
    pub idle_timeout: Duration,
    /// Time to wait for any frame after a Ping (default 5 s).
    pub pong_timeout: Duration,
    /// Longest time records may stay in flight without any ack making
    /// progress before the connection is deemed broken and records are
    /// resent on a new one (default 30 s). Catches a peer that answers
    /// pings but lost a batch or an ack; on slow links, allow for the time
    /// one window takes to transmit.
    pub ack_timeout: Duration,
    /// Time for the caller to report the transport up (default 10 s).
    pub connect_timeout: Duration,
    /// Time for the server to answer Hello (default 10 s).
    pub handshake_timeout: Duration,
    /// Length of a healthy period: each one a connection stays up halves
    /// the backoff's failure weight (default 30 s; see [`crate::backoff`]).
    pub healthy_after: Duration,
    /// Reconnect timing and endpoint rotation.
    pub backoff: BackoffConfig,
    /// Seed of the jitter PRNG; give each device its own.
    pub rng_seed: u64,
    /// Largest step agent time takes per input (default 1 h): a caller
    /// instant further ahead counts as this much time passing, so one bogus
    /// far-future instant cannot pin the timers. Every timer is shorter.
    pub max_clock_step: Duration,
    /// A caller instant at most this much earlier than the latest one is a
    /// stale reading (no time passes); one further back re-anchors the clock
    /// (default 1 s). See [`crate::time::AgentClock`].
    pub clock_backstep_tolerance: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            ring: RingConfig::default(),
            batch_max_bytes: 4096,
            batch_max_records: 256,
            flush_interval: Duration::from_millis(100),
            window_bytes: 16 * 1024,
            heartbeat_interval: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            healthy_after: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            rng_seed: 0,
            max_clock_step: Duration::from_secs(3600),
            clock_backstep_tolerance: Duration::from_secs(1),
        }
    }
}

/// Why [`Agent::new`](super::Agent::new) refused a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConfigError {
    /// `batch_max_bytes` cannot hold one record of `max_record` bytes.
    BatchTooSmall = 1,
    /// `window_bytes` is smaller than `batch_max_bytes`.
    WindowTooSmall = 2,
    /// The receive buffer is smaller than [`frame::MIN_MAX_FRAME`].
    RxBufferTooSmall = 3,
    /// `heartbeat_interval` is below 1 s.
    HeartbeatTooFrequent = 4,
    /// No endpoints, zero attempts per endpoint, or zero records per batch.
    ZeroLimit = 5,
    /// An interval that must be positive is zero.
    ZeroInterval = 6,
    /// `max_record` is below [`MAX_HEARTBEAT_LEN`]: heartbeats might not fit.
    MaxRecordTooSmall = 8,
    /// An identity address list's length is not a multiple of 4 (IPv4) or
    /// 16 (IPv6) bytes; the server would reject the Hello as malformed.
    BadAddressList = 7,
    /// `backoff.base` or `backoff.cap` is zero: a refused connect would be
    /// retried at once, forever.
    ZeroBackoff = 9,
    /// The Hello (identity, address lists, token) would be larger than
    /// [`MAX_HELLO_FRAME`], which collectors need not accept.
    HelloTooLarge = 10,
    /// The event queue is smaller than [`crate::events::MIN_EVENT_QUEUE`]:
    /// the `Connect` event itself might not fit.
    EventQueueTooSmall = 11,
    /// The ring cannot hold one record of `max_record` bytes.
    RingTooSmall = 12,
    /// A transmit buffer is smaller than [`min_transmit_len`]
    /// (a full batch or the Hello would never go out).
    TxBufferTooSmall = 13,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::BatchTooSmall => "batch_max_bytes cannot hold a record of max_record bytes",
            ConfigError::WindowTooSmall => "window_bytes is smaller than batch_max_bytes",
            ConfigError::RxBufferTooSmall => "receive buffer smaller than the minimum frame size",
            ConfigError::HeartbeatTooFrequent => "heartbeat_interval below 1 s",
            ConfigError::ZeroLimit => "an endpoint, attempt or batch-record limit is zero",
            ConfigError::ZeroInterval => "an interval that must be positive is zero",
            ConfigError::BadAddressList => "an address list is not a whole number of addresses",
            ConfigError::MaxRecordTooSmall => "max_record is smaller than the largest heartbeat",
            ConfigError::ZeroBackoff => "backoff base or cap is zero",
            ConfigError::HelloTooLarge => "the Hello would exceed MAX_HELLO_FRAME bytes",
            ConfigError::EventQueueTooSmall => "event queue smaller than MIN_EVENT_QUEUE",
            ConfigError::RingTooSmall => "ring cannot hold a record of max_record bytes",
            ConfigError::TxBufferTooSmall => "transmit buffer smaller than min_transmit_len",
        })
    }
}


/// Largest Hello frame an agent sends: collectors accept Hellos of at least
/// this size before they know anything else of the agent (PROTOCOL.md).
pub const MAX_HELLO_FRAME: usize = 4096;

/// The lengths of the caller's buffers, as [`validate`] checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageSizes {
    /// Send ring, bytes.
    pub ring: usize,
    /// Receive buffer, bytes (the largest frame accepted).
    pub rx: usize,
    /// Event queue, bytes.
    pub events: usize,
}

/// The one validation step: refuses every configuration, identity and
/// storage that cannot work, each with its own [`ConfigError`]. Used by
/// [`super::Agent::new`]; callers may run it first to size their buffers.
/// The transmit buffer is checked where it is given (e.g. by
/// [`crate::driver::Driver::new`]) against [`min_transmit_len`].
pub fn validate(cfg: &AgentConfig, id: &Identity<'_>, sizes: StorageSizes) -> Result<(), ConfigError> {
    if cfg.backoff.endpoints == 0 || cfg.backoff.attempts_per_endpoint == 0 || cfg.batch_max_records == 0 {
        return Err(ConfigError::ZeroLimit);
    }
    if cfg.heartbeat_interval < Duration::from_secs(1) {
        return Err(ConfigError::HeartbeatTooFrequent);
    }
    let zero = |d: Duration| d == Duration::ZERO;
    if zero(cfg.idle_timeout)
        || zero(cfg.pong_timeout)
        || zero(cfg.ack_timeout)
        || zero(cfg.connect_timeout)
        || zero(cfg.handshake_timeout)
        || zero(cfg.max_clock_step)
    {
        return Err(ConfigError::ZeroInterval);
    }
    if cfg.backoff.base == Duration::ZERO || cfg.backoff.cap == Duration::ZERO {
        return Err(ConfigError::ZeroBackoff);
    }
    if cfg.ring.max_record < MAX_HEARTBEAT_LEN {
        return Err(ConfigError::MaxRecordTooSmall);
    }
    if cfg.batch_max_bytes < max_entry(cfg) {
        return Err(ConfigError::BatchTooSmall);
    }
    if cfg.window_bytes < cfg.batch_max_bytes {
        return Err(ConfigError::WindowTooSmall);
    }
    if sizes.rx < frame::MIN_MAX_FRAME {
        return Err(ConfigError::RxBufferTooSmall);
    }
    if sizes.events < crate::events::MIN_EVENT_QUEUE {
        return Err(ConfigError::EventQueueTooSmall);
    }
    if sizes.ring < max_entry(cfg) {
        return Err(ConfigError::RingTooSmall);
    }
    // Whole addresses: both lengths of a family are multiples of its size
    // exactly when their bitwise or is.
    let (v4, v6) = (id.intranet_ipv4.len() | id.extranet_ipv4.len(), id.intranet_ipv6.len() | id.extranet_ipv6.len());
    if v4 % 4 != 0 || v6 % 16 != 0 {
        return Err(ConfigError::BadAddressList);
    }
    if hello_frame_max_len(id) > MAX_HELLO_FRAME {
        return Err(ConfigError::HelloTooLarge);
    }
    Ok(())
}

/// The longest the Hello of `id` can be: every sequence number and frame
/// size at its longest varint.
pub fn hello_frame_max_len(id: &Identity<'_>) -> usize {
    let lens = [
        id.agent_id.len(),
        id.hostname.len(),
        id.product.len(),
        id.version.len(),
        id.intranet_ipv4.len(),
        id.intranet_ipv6.len(),
        id.extranet_ipv4.len(),
        id.extranet_ipv6.len(),
        id.auth_token.len(),
    ];
    // first_unacked_seq and next_seq (u64), max_frame and min_frame (u32).
    let mut n = OVERHEAD + 2 * varint::MAX_LEN_U64 + 2 * 5;
    for len in lens {
        n += varint::len_u64(len as u64) + len;
    }
    n
}

/// The smallest transmit buffer (`poll_transmit`'s `out`) that always
/// holds the next frame: a full batch, and the Hello of `id`.
// Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
#[inline(always)]
pub fn min_transmit_len(cfg: &AgentConfig, id: &Identity<'_>) -> usize {
    (OVERHEAD + BATCH_HEADER_MAX + cfg.batch_max_bytes).max(hello_frame_max_len(id))
}

/// The smallest frame limit a server may announce: one Batch holding a
/// record of `max_record` bytes (sent in Hello as `min_frame`).
// Inlined: as a call it costs Thumb flash (NOTES.md, "flash by function").
#[inline(always)]
pub fn min_peer_frame(cfg: &AgentConfig) -> u32 {
    u32::try_from(OVERHEAD + BATCH_HEADER_MAX + max_entry(cfg)).unwrap_or(u32::MAX)
}

/// Largest entry a record of `max_record` bytes can take.
pub(super) fn max_entry(cfg: &AgentConfig) -> usize {
    cfg.ring.max_record.saturating_add(MAX_ENTRY_HEADER)
}


#[cfg(test)]
mod tests {
    use super::*;

    const ID: Identity<'static> = Identity {
        agent_id: "a",
        hostname: "h",
        product: "p",
        version: "v",
        intranet_ipv4: &[],
        intranet_ipv6: &[],
        extranet_ipv4: &[],
        extranet_ipv6: &[],
        auth_token: b"",
    };
    const SIZES: StorageSizes = StorageSizes { ring: 1 << 16, rx: 2048, events: 1024 };

    /// Each interval alone at zero is refused.
    #[test]
    fn every_zero_interval_is_refused() {
        assert_eq!(validate(&AgentConfig::default(), &ID, SIZES), Ok(()));
        let fields: [fn(&mut AgentConfig) -> &mut Duration; 6] = [
            |c| &mut c.idle_timeout,
            |c| &mut c.pong_timeout,
            |c| &mut c.ack_timeout,
            |c| &mut c.connect_timeout,
            |c| &mut c.handshake_timeout,
            |c| &mut c.max_clock_step,
        ];
        for field in fields {
            let mut cfg = AgentConfig::default();
            *field(&mut cfg) = Duration::ZERO;
            assert_eq!(validate(&cfg, &ID, SIZES), Err(ConfigError::ZeroInterval));
        }
    }

    /// Address lists are refused exactly when one of them holds a partial
    /// address (the rule list by list).
    #[test]
    fn address_lists_hold_whole_addresses() {
        let bytes = [0u8; 40];
        let cfg = AgentConfig::default();
        for (a, b) in (0..=36).flat_map(|a| (0..=36).map(move |b| (a, b))) {
            let v4 = Identity { intranet_ipv4: &bytes[..a], extranet_ipv4: &bytes[..b], ..ID };
            let want = if a % 4 != 0 || b % 4 != 0 { Err(ConfigError::BadAddressList) } else { Ok(()) };
            assert_eq!(validate(&cfg, &v4, SIZES), want, "v4 {a} {b}");
            let v6 = Identity { intranet_ipv6: &bytes[..a], extranet_ipv6: &bytes[..b], ..ID };
            let want = if a % 16 != 0 || b % 16 != 0 { Err(ConfigError::BadAddressList) } else { Ok(()) };
            assert_eq!(validate(&cfg, &v6, SIZES), want, "v6 {a} {b}");
        }
    }
}

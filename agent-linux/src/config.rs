//! What a host layer is given at init, and what it refuses.

use agent_core::{AgentConfig, ConfigError, Duration, PushError};
use core::fmt;

/// Everything the host layer needs; every buffer is sized from it at init
/// and never grows. `HostConfig::new` gives the defaults.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Collectors as `host:port` (`[v6]:port` for IPv6 literals), tried in
    /// this order by the agent's backoff; each name is resolved when it is
    /// used, so DNS changes are followed. 1 to 255 of them.
    pub endpoints: Vec<String>,
    /// The session's bounds and intervals. `backoff.endpoints` is set from
    /// `endpoints`; `rng_seed` 0 means "draw a per-device seed"
    /// (machine id, pid, time).
    pub agent: AgentConfig,
    /// Stable, unique agent id.
    pub agent_id: String,
    /// Product name (tasks addressed to it, or to "", are the agent's).
    pub product: String,
    /// Product version.
    pub version: String,
    /// Credential sent in Hello.
    pub auth_token: Vec<u8>,
    /// Host name for Hello; `None`: `gethostname()`.
    pub hostname: Option<String>,
    /// Send the host's interface addresses (private/public, IPv4/IPv6) in
    /// Hello (default true). Ignored when `addresses` is given.
    pub send_addresses: bool,
    /// The addresses to send in Hello instead of the interfaces' (default
    /// `None`: detected, if `send_addresses`).
    pub addresses: Option<crate::netinfo::Addresses>,
    /// Send ring, bytes (default 256 KiB).
    pub ring_bytes: usize,
    /// Receive buffer, bytes: the largest frame accepted (default 64 KiB).
    pub rx_bytes: usize,
    /// Event queue, bytes (default 16 KiB).
    pub event_bytes: usize,
    /// Out buffer between the agent and the socket, bytes; 0 (default):
    /// twice the agent's `transmit_len`. Refused below one `transmit_len`.
    pub out_bytes: usize,
    /// Bytes read from the socket per read call (default 16 KiB).
    pub read_chunk: usize,
    /// Read host stats from `/proc` for every heartbeat (default true).
    pub host_stats: bool,
    /// How long a stop waits for unacked records before sending Close
    /// (default 5 s; also used on a signal).
    pub drain_timeout: Duration,
    /// Start a clean stop on SIGTERM or SIGINT (default false: opt-in; only
    /// one host per process may own the signals).
    pub handle_signals: bool,
    /// `SO_SNDBUF` for the socket (default `None`: the kernel's).
    pub socket_send_buffer: Option<usize>,
    /// TLS to the collector (default `None`: plain TCP). The handshake runs
    /// under the agent's `connect_timeout`; rustls' outgoing buffers are
    /// bounded by the out buffer's size.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl HostConfig {
    /// The defaults, for `agent_id` and `endpoints`.
    pub fn new<S: Into<String>>(agent_id: &str, endpoints: impl IntoIterator<Item = S>) -> Self {
        HostConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            agent: AgentConfig::default(),
            agent_id: agent_id.into(),
            product: "edge-agent".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            auth_token: Vec::new(),
            hostname: None,
            send_addresses: true,
            addresses: None,
            ring_bytes: 256 * 1024,
            rx_bytes: 64 * 1024,
            event_bytes: 16 * 1024,
            out_bytes: 0,
            read_chunk: 16 * 1024,
            host_stats: true,
            drain_timeout: Duration::from_secs(5),
            handle_signals: false,
            socket_send_buffer: None,
            tls: None,
        }
    }
}

/// Why a host-layer call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The agent refused the configuration (see [`ConfigError`]).
    Config(ConfigError),
    /// No endpoint, or more than 255.
    Endpoints,
    /// An endpoint is not `host:port` with a port number.
    BadEndpoint,
    /// `out_bytes` (or `read_chunk`) is too small for a frame (or zero).
    OutBufferTooSmall,
    /// The system refused an epoll set, an eventfd or a thread.
    System(nix::errno::Errno),
    /// The send ring is full; counted in `dropped_full`.
    RingFull,
    /// Larger than `max_record`; counted in `dropped_too_large`.
    RecordTooLarge,
    /// The host is stopping or stopped: it takes no more records.
    Stopping,
    /// `start` on a host whose own thread already runs (or that stopped).
    AlreadyStarted,
    /// The host has no own thread to stop or wait for.
    NotStarted,
    /// `handle_signals` is set but another host owns the signals.
    SignalsTaken,
    /// The TLS configuration was refused (see [`TlsConfigError`](crate::tls::TlsConfigError)).
    Tls(crate::tls::TlsConfigError),
}

impl From<PushError> for HostError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Full => HostError::RingFull,
            PushError::TooLarge => HostError::RecordTooLarge,
        }
    }
}

impl From<ConfigError> for HostError {
    fn from(e: ConfigError) -> Self {
        HostError::Config(e)
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Config(e) => write!(f, "configuration refused: {e}"),
            HostError::Endpoints => f.write_str("between 1 and 255 endpoints are needed"),
            HostError::BadEndpoint => f.write_str("an endpoint is not host:port"),
            HostError::OutBufferTooSmall => f.write_str("out buffer or read chunk too small"),
            HostError::System(e) => write!(f, "the system refused a resource: {e}"),
            HostError::RingFull => f.write_str("send ring full"),
            HostError::RecordTooLarge => f.write_str("record larger than the configured maximum"),
            HostError::Stopping => f.write_str("the host is stopping"),
            HostError::AlreadyStarted => f.write_str("the host's thread was started already"),
            HostError::NotStarted => f.write_str("the host has no thread running"),
            HostError::SignalsTaken => f.write_str("another host handles SIGTERM/SIGINT"),
            HostError::Tls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for HostError {}

/// True when `s` is `host:port` with a non-empty host and a port number.
pub(crate) fn is_endpoint(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

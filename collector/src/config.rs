//! The collector's settings: command-line flags, an optional JSON config
//! file, and the checks that refuse impossible combinations at start.
//!
//! A flag given on the command line wins over the same key in the file; the
//! file's keys are the flags' long names with `-` written as `_`
//! (`{"listen": "0.0.0.0:7070", "max_connections": 20000}`).

use clap::Parser;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Smallest `--max-frame`: a Hello must fit (PROTOCOL.md asks for 4096).
pub const MIN_MAX_FRAME: u32 = 4096;
/// Largest `--max-frame` (16 MiB): bounds each connection's buffers.
pub const MAX_MAX_FRAME: u32 = 16 << 20;
/// Shortest `--api-token` accepted, in bytes: a guessable token on an HTTP
/// port is refused at start rather than warned about.
pub const MIN_API_TOKEN_LEN: usize = 16;
/// `--api-max-body` bounds (1 KiB ..= 64 MiB).
pub const API_BODY_RANGE: std::ops::RangeInclusive<usize> = 1024..=64 << 20;

/// Listen backlog of the agent port: a reconnect storm of thousands of
/// agents should queue in the kernel, not time out (capped by somaxconn).
/// `--max-handshakes` defaults to it: the connections the kernel queues may
/// all be waiting for their Hello.
pub const BACKLOG: u32 = 4096;

/// The files of the agent port's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM private key of the leaf.
    pub key: std::path::PathBuf,
    /// PEM CA certificates for client certificates; `None`: no client
    /// certificates asked for (TLS protects the path, tokens prove agents).
    pub client_ca: Option<std::path::PathBuf>,
}

/// Largest `--max-batch-records`.
pub const MAX_BATCH_RECORDS: u32 = 65536;
/// Default of `--nats-max-message-bytes`: 768 KiB, below nats-server's
/// default `max_payload` of 1 MiB with room for the headers.
pub const DEFAULT_NATS_MAX_MESSAGE_BYTES: usize = 768 << 10;
/// Default of `--nats-task-retention`: a finished task stays readable for a day.
pub const DEFAULT_NATS_TASK_RETENTION: Duration = Duration::from_secs(86_400);
/// Shortest `--nats-task-retention`: two of the registry's 5-s timeouts, so
/// a `GET /tasks/{token}` sent as the result lands, or one poll interval of
/// that length later, still finds it.
pub const MIN_NATS_TASK_RETENTION: Duration = Duration::from_secs(10);
/// Longest `--nats-task-retention`: a year.
pub const MAX_NATS_TASK_RETENTION: Duration = Duration::from_secs(365 * 86_400);
/// Largest `--nats-max-message-bytes`: nats-server refuses a `max_payload`
/// above 64 MiB.
pub const MAX_NATS_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Command-line flags (`edge-collector --help`).
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(name = "edge-collector", version, about = "The edge-agent collector: sessions, a durable exactly-once JSON-lines sink, a SQLite registry and an HTTP API.")]
#[serde(default, deny_unknown_fields)]
pub struct Args {
    /// JSON config file; its keys are these flags' names with `_` for `-`. Flags win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address agents connect to [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain of the agent port: with it (and --tls-key) agents connect over TLS 1.3 or 1.2 only; reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of --tls-cert; reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates that sign agents' client certificates: mutual TLS, every agent must present one, and its subject CN must equal the Hello's agent_id (the connection is then proven); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// PEM certificate chain of the HTTP API: with it (and --api-tls-key) the API serves HTTPS only (TLS 1.3 or 1.2); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key of --api-tls-cert; reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub api_tls_key: Option<PathBuf>,
    /// Address of the HTTP API [default: 127.0.0.1:7071].
    #[arg(long, value_name = "ADDR")]
    pub api_listen: Option<SocketAddr>,
    /// Bearer token the HTTP API requires (`Authorization: Bearer <token>`), at least 16 bytes. Without it the API is not started.
    #[arg(long, value_name = "TOKEN", env = "EDGE_COLLECTOR_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Directory for the sink files, the checkpoint and the registry [default: ./edge-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where records go: `file` (JSON lines in the data dir, fsync'd, exactly once), `stdout` (flushed, not durable) or `nats://HOST:PORT[,nats://...]` (a NATS JetStream stream shared by many collectors; see the --nats-* flags) [default: file].
    #[arg(long, value_name = "KIND|URL")]
    pub sink: Option<String>,
    /// JetStream stream of the records (created if missing) [default: EDGE_RECORDS].
    #[arg(long, value_name = "NAME")]
    pub nats_stream: Option<String>,
    /// Subject prefix; agent `a` publishes to `<prefix>.a` [default: edge.records].
    #[arg(long, value_name = "SUBJECT")]
    pub nats_subject_prefix: Option<String>,
    /// Replicas of a stream created by the collector (1, 3 or 5) [default: 1].
    #[arg(long, value_name = "N")]
    pub nats_replicas: Option<usize>,
    /// What the NATS servers' storage promises: `always` (they run with `sync_interval: always`: an ack is on disk) or `interval` (the default periodic sync: an ack is durable only with --nats-replicas 3 or more) [default: always].
    #[arg(long, value_name = "SYNC")]
    pub nats_sync: Option<NatsSync>,
    /// Seconds a record stays in a stream created by the collector; 0 = no age limit [default: 0].
    #[arg(long, value_name = "SECS")]
    pub nats_max_age: Option<f64>,
    /// Seconds of the stream's duplicate window (`Nats-Msg-Id` tracking) [default: 120].
    #[arg(long, value_name = "SECS")]
    pub nats_duplicate_window: Option<f64>,
    /// Seconds to wait for JetStream's publish ack before the session is closed [default: 10].
    #[arg(long, value_name = "SECS")]
    pub nats_ack_timeout: Option<f64>,
    /// Most payload bytes of one JetStream message (one agent's round of records as JSON lines; a longer round is split over several messages). Must hold one record line at its longest (from --max-frame and the identity bounds) and stay below the servers' max_payload, checked at start [default: 786432].
    #[arg(long, value_name = "BYTES")]
    pub nats_max_message_bytes: Option<usize>,
    /// Streams the agents are spread over (1..=64): 1 is the stream --nats-stream with subjects `<prefix>.<agent>`; N > 1 are streams `<name>_0` .. `<name>_<N-1>`, agent `a` in stream `crc32c(a) mod N` on subject `<prefix>.<i>.<a>`. Fixed for the streams' life (recorded in them; another count is refused at start) [default: 1].
    #[arg(long, value_name = "N")]
    pub nats_partitions: Option<usize>,
    /// Prefix of the JetStream KV buckets holding the registry, tasks and configs shared by every collector: `<prefix>_AGENTS`, `<prefix>_TASKS`, `<prefix>_OPEN`, `<prefix>_CONFIGS` (created if missing, with --nats-replicas) [default: EDGE].
    #[arg(long, value_name = "NAME")]
    pub nats_kv_prefix: Option<String>,
    /// This collector's name in the shared registry (which collector holds an agent's session) [default: HOSTNAME:AGENT_PORT, the host name and the agent port].
    #[arg(long, value_name = "NAME")]
    pub nats_collector_name: Option<String>,
    /// Tasks without a result one agent may have waiting in the shared registry; a task beyond it is refused with 429 (1..=10000) [default: 1000].
    #[arg(long, value_name = "N")]
    pub nats_max_open_tasks: Option<usize>,
    /// Seconds a finished task (one with its result) stays in the shared registry, readable by `GET /tasks/{token}` on every collector; then nats-server removes it (a per-message TTL on the result's write). Whole seconds within 10..=31536000 [default: 86400].
    #[arg(long, value_name = "SECS")]
    pub nats_task_retention: Option<u64>,
    /// Rotate the JSON-lines file when it grows past this many bytes [default: 256 MiB].
    #[arg(long, value_name = "BYTES")]
    pub rotate_bytes: Option<u64>,
    /// Shared auth token every agent must present in its Hello.
    #[arg(long, value_name = "TOKEN", env = "EDGE_COLLECTOR_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,
    /// File of per-agent tokens, one `agent_id token` pair a line (`#` comments). Overrides --agent-token for agents listed.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Most agent connections at once; beyond it a Reject with code 6 (Busy) [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest frame accepted, announced in Accept (4096 ..= 16 MiB) [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_frame: Option<u32>,
    /// Batches per connection waiting for the sink before the collector stops reading that socket [default: 8].
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<usize>,
    /// Bytes of lines per connection waiting for the sink (queued or being written) before the collector stops reading that socket; one batch always goes through [default: 2 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_inflight_bytes: Option<usize>,
    /// Most records in one Batch (1 ..= 65536); a Batch with more is closed with code 1. Agents send at most their batch_max_records (default 256) [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_batch_records: Option<u32>,
    /// Seconds a new connection has to send its Hello [default: 10].
    #[arg(long, value_name = "SECS")]
    pub handshake_timeout: Option<f64>,
    /// Seconds of silence after which a connection is closed (3x the agents' idle timeout) [default: 45].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// Seconds of silence after which the collector pings an agent [default: idle-timeout / 3].
    #[arg(long, value_name = "SECS")]
    pub ping_after: Option<f64>,
    /// retry_after_ms sent with Unauthorized rejects, and the least sent with connection-limit Busy rejects (plus jitter) [default: 5000].
    #[arg(long, value_name = "MS")]
    pub retry_after_ms: Option<u32>,
    /// Handshakes admitted per second; beyond it a Hello gets Reject 6 (Busy) pointing at a slot of its own; 0 = unlimited [default: 2000].
    #[arg(long, value_name = "PER_SEC")]
    pub admission_rate: Option<u32>,
    /// Burst tolerance of the admission rate, in ms (about rate x burst Hellos at once); 0 = strict (at most 60000) [default: 50].
    #[arg(long, value_name = "MS")]
    pub admission_burst_ms: Option<u32>,
    /// Most admission slots remembered at once; beyond it a Busy reject carries the time until the last slot, without a slot (at least 1 with a rate) [default: 100000].
    #[arg(long, value_name = "N")]
    pub max_reservations: Option<usize>,
    /// Connections that have not completed a Hello, at most, apart from --max-connections; a new one beyond it closes the oldest waiting one [default: 4096, the listen backlog].
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// Bytes of garbage and skipped non-Hello frames a connection may send before its Hello; beyond it Close 1 (at least 4096) [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub prehello_bytes: Option<u64>,
    /// Agent ids never seen before admitted per second from connections that did not prove their id (no --token-file entry); beyond it Reject 6; 0 = unlimited [default: 100].
    #[arg(long, value_name = "PER_SEC")]
    pub new_agents_per_sec: Option<u32>,
    /// Burst of the new-agent rate: new unproven ids admitted at once [default: 2000].
    #[arg(long, value_name = "N")]
    pub new_agents_burst: Option<u32>,
    /// Most agent ids the collector keeps resume points for; an unproven Hello of a new id beyond it gets Reject 6 [default: 1000000].
    #[arg(long, value_name = "N")]
    pub max_agents: Option<usize>,
    /// Ms a live session has to answer a liveness Ping when an unproven connection claims its agent id; a session that answers keeps the id (the newcomer gets Reject 7), one that does not is replaced [default: 2000].
    #[arg(long, value_name = "MS")]
    pub liveness_probe_ms: Option<u32>,
    /// Most bytes of a Hello's agent_id; longer: Reject 5 [default: 128].
    #[arg(long, value_name = "BYTES")]
    pub max_agent_id_bytes: Option<usize>,
    /// Most bytes of a Hello's hostname, product and version, each; longer: Reject 5 [default: 255].
    #[arg(long, value_name = "BYTES")]
    pub max_identity_bytes: Option<usize>,
    /// Most addresses in a Hello's four address lists together; more: Reject 5 [default: 64].
    #[arg(long, value_name = "N")]
    pub max_hello_addresses: Option<usize>,
    /// Most bytes of a Hello's auth_token; longer: Reject 5 [default: 1024].
    #[arg(long, value_name = "BYTES")]
    pub max_token_bytes: Option<usize>,
    /// The agents' heartbeat interval in seconds, for stale marking [default: 60].
    #[arg(long, value_name = "SECS")]
    pub heartbeat_interval: Option<f64>,
    /// An online agent silent for this many heartbeat intervals is marked stale [default: 3].
    #[arg(long, value_name = "N")]
    pub stale_after: Option<u32>,
    /// Seconds between registry flushes (one SQLite transaction each) [default: 1].
    #[arg(long, value_name = "SECS")]
    pub registry_flush: Option<f64>,
    /// Start with a new, empty registry although the data dir holds sink files (its tasks, configs and agents are gone); without it a missing or empty registry.sqlite3 is refused.
    #[arg(long)]
    #[serde(default)]
    pub allow_new_registry: bool,
    /// Log filter (tracing EnvFilter syntax) [default: info, or RUST_LOG].
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Most HTTP API connections at once, apart from the agents' --max-connections; beyond it a connection gets 503 and is closed at once [default: 64].
    #[arg(long, value_name = "N")]
    pub api_max_connections: Option<usize>,
    /// Seconds an API client has to send a whole request head, from its connect or its previous response (so also the keep-alive idle limit) [default: 10].
    #[arg(long, value_name = "SECS")]
    pub api_header_timeout: Option<f64>,
    /// Seconds an API request may take from its head to its answer (body and handling; 408 after), and the longest a response write may stall [default: 30].
    #[arg(long, value_name = "SECS")]
    pub api_request_timeout: Option<f64>,
    /// Largest API request body, in bytes (1024 ..= 64 MiB); larger gets 413 [default: 1572864].
    #[arg(long, value_name = "BYTES")]
    pub api_max_body: Option<usize>,
}

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// JSON lines in `<data-dir>/records.jsonl`, fsync'd, rotated, exactly once across crashes.
    File,
    /// JSON lines on standard output, flushed; not durable, resume points kept in memory only.
    Stdout,
    /// A NATS JetStream stream ([`Config::nats`]), shared by any number of collectors.
    Nats,
}

/// What the NATS servers' storage promises (`--nats-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsSync {
    /// The servers run with `jetstream { sync_interval: always }`: a
    /// publish ack means the record is on the disk of every replica that
    /// acked it.
    Always,
    /// The servers sync on their default interval (2 minutes): an ack means
    /// the record is in the memory of a quorum of replicas.
    Interval,
}

/// The JetStream sink's settings (`--sink nats://...` and `--nats-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct NatsSettings {
    /// Server URLs, tried in turn.
    pub urls: Vec<String>,
    /// Stream name.
    pub stream: String,
    /// Subject prefix (records of agent `a` go to `<prefix>.a`).
    pub subject_prefix: String,
    /// Replicas of a stream the collector creates.
    pub replicas: usize,
    /// The servers' storage promise.
    pub sync: NatsSync,
    /// Age limit of a stream the collector creates; zero: none.
    pub max_age: Duration,
    /// Duplicate window of a stream the collector creates.
    pub duplicate_window: Duration,
    /// Longest wait for a publish ack.
    pub ack_timeout: Duration,
    /// Most payload bytes of one message.
    pub max_message_bytes: usize,
    /// Streams the agents are spread over.
    pub partitions: usize,
    /// Prefix of the KV buckets ([`crate::jetstream::kv`]).
    pub kv_prefix: String,
    /// This collector's name in the shared registry; `None`: hostname and
    /// agent port, found at start.
    pub collector_name: Option<String>,
    /// Most tasks without a result per agent in the shared registry.
    pub max_open_tasks: usize,
    /// How long a finished task stays in the shared registry (whole
    /// seconds, [`MIN_NATS_TASK_RETENTION`] at least).
    pub task_retention: Duration,
}

impl NatsSettings {
    /// True if a publish ack means the record survives a crash of any one
    /// host: every replica syncs before acking, or a quorum of at least 2
    /// of 3 holds it.
    pub fn durable(&self) -> bool {
        self.sync == NatsSync::Always || self.replicas >= 3
    }
}

/// Settings after defaults and checks.
#[derive(Debug, Clone)]
pub struct Config {
    /// Agent listener.
    pub listen: SocketAddr,
    /// API listener and its token; `None`: no API.
    pub api: Option<(SocketAddr, Secret)>,
    /// TLS on the agent port; `None`: plain TCP.
    pub tls: Option<TlsFiles>,
    /// TLS on the HTTP API (no client certificates); `None`: plain HTTP.
    pub api_tls: Option<TlsFiles>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Sink.
    pub sink: SinkKind,
    /// The JetStream sink's settings, with [`SinkKind::Nats`].
    pub nats: Option<NatsSettings>,
    /// Rotation size of the JSON-lines file.
    pub rotate_bytes: u64,
    /// Shared agent token.
    pub agent_token: Option<String>,
    /// Per-agent token file.
    pub token_file: Option<PathBuf>,
    /// Connection limit.
    pub max_connections: usize,
    /// Largest frame accepted.
    pub max_frame: u32,
    /// Batches in flight to the sink per connection.
    pub max_inflight: usize,
    /// Bytes of lines in flight to the sink per connection (beyond it,
    /// one more batch).
    pub max_inflight_bytes: usize,
    /// Most records in one Batch.
    pub max_batch_records: u32,
    /// Time to receive the Hello.
    pub handshake_timeout: Duration,
    /// Silence that closes a connection.
    pub idle_timeout: Duration,
    /// Silence after which the collector pings.
    pub ping_after: Duration,
    /// retry_after_ms of Unauthorized rejects; the floor of connection-limit Busy rejects.
    pub retry_after_ms: u32,
    /// Handshakes admitted per second; 0 = unlimited.
    pub admission_rate: u32,
    /// Burst tolerance of the admission rate; zero is strict.
    pub admission_burst: Duration,
    /// Most admission slots (reservations) held.
    pub max_reservations: usize,
    /// Most connections waiting for their Hello.
    pub max_handshakes: usize,
    /// Bytes skipped before a Hello, at most.
    pub prehello_bytes: u64,
    /// New unproven agent ids per second; 0 = unlimited.
    pub new_agents_per_sec: u32,
    /// Burst of new unproven agent ids.
    pub new_agents_burst: u32,
    /// Most agent ids with a resume point (new unproven ids beyond it refused).
    pub max_agents: usize,
    /// How long a live session has to answer a liveness probe.
    pub liveness_probe: Duration,
    /// Bounds on a Hello's identity fields.
    pub hello_bounds: crate::handshake::HelloBounds,
    /// Agents' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Heartbeat intervals of silence before an agent is stale.
    pub stale_after: u32,
    /// Registry flush period.
    pub registry_flush: Duration,
    /// Start with a new registry although sink files exist.
    pub allow_new_registry: bool,
    /// The HTTP API's own bounds.
    pub api_limits: ApiLimits,
}

/// A token: its `Debug` shows only its length, so a logged or printed
/// `Config` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The token itself, for comparing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The HTTP API's bounds (see `collector/README.md`, Limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Most API connections at once; separate from the agents' limit.
    pub max_connections: usize,
    /// Time to receive a whole request head, from connect or the previous
    /// response (hyper's header-read timeout, also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// Time from a request head to its answer; also the longest stall of a
    /// response write.
    pub request_timeout: Duration,
    /// Largest request body.
    pub max_body: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body: 1536 << 10,
        }
    }
}

/// A setting that cannot work, found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn secs(name: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v < 1e7 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(ConfigError(format!("--{name} must be a positive number of seconds, got {v}")))
    }
}

impl Args {
    /// `--sink` and the `--nats-*` flags, checked.
    fn sink_settings(&self) -> Result<(SinkKind, Option<NatsSettings>), ConfigError> {
        let urls = match self.sink.as_deref() {
            None | Some("file") => return Ok((SinkKind::File, None)),
            Some("stdout") => return Ok((SinkKind::Stdout, None)),
            Some(s) if s.starts_with("nats://") => s.split(',').map(str::trim).map(String::from).collect::<Vec<_>>(),
            Some(s) => return Err(ConfigError(format!("--sink must be file, stdout or nats://HOST:PORT[,...], got {s:?}"))),
        };
        if !cfg!(feature = "jetstream") {
            return Err(ConfigError("--sink nats://... needs a collector built with the `jetstream` feature".into()));
        }
        if let Some(u) = urls.iter().find(|u| !u.starts_with("nats://") || u.len() <= "nats://".len()) {
            return Err(ConfigError(format!("--sink: every server must be a nats://HOST:PORT URL, got {u:?}")));
        }
        let stream = self.nats_stream.clone().unwrap_or_else(|| "EDGE_RECORDS".into());
        if stream.is_empty() || stream.contains(['.', '*', '>', '/', '\\']) || stream.chars().any(char::is_whitespace) {
            return Err(ConfigError(format!("--nats-stream must be a name without . * > / \\ or spaces, got {stream:?}")));
        }
        let subject_prefix = self.nats_subject_prefix.clone().unwrap_or_else(|| "edge.records".into());
        if !crate::jetstream::subject::valid_prefix(&subject_prefix) {
            return Err(ConfigError(format!("--nats-subject-prefix must be dot-separated tokens without wildcards, got {subject_prefix:?}")));
        }
        let replicas = self.nats_replicas.unwrap_or(1);
        if ![1, 3, 5].contains(&replicas) {
            return Err(ConfigError(format!("--nats-replicas must be 1, 3 or 5, got {replicas}")));
        }
        let max_age = match self.nats_max_age.unwrap_or(0.0) {
            0.0 => Duration::ZERO,
            v => secs("nats-max-age", v)?,
        };
        let duplicate_window = secs("nats-duplicate-window", self.nats_duplicate_window.unwrap_or(120.0))?;
        if !max_age.is_zero() && duplicate_window > max_age {
            return Err(ConfigError("--nats-duplicate-window must not exceed --nats-max-age".into()));
        }
        let kv_prefix = self.nats_kv_prefix.clone().unwrap_or_else(|| "EDGE".into());
        if kv_prefix.is_empty() || kv_prefix.len() > 64 || !kv_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(ConfigError(format!("--nats-kv-prefix must be 1 to 64 of A-Z a-z 0-9 _ -, got {kv_prefix:?}")));
        }
        if let Some(name) = &self.nats_collector_name {
            if name.is_empty() || name.len() > 255 {
                return Err(ConfigError("--nats-collector-name must be 1 to 255 bytes".into()));
            }
        }
        let max_open_tasks = self.nats_max_open_tasks.unwrap_or(1000);
        if !(1..=10_000).contains(&max_open_tasks) {
            return Err(ConfigError(format!("--nats-max-open-tasks must be within 1..=10000, got {max_open_tasks}")));
        }
        let task_retention = self.nats_task_retention.unwrap_or(DEFAULT_NATS_TASK_RETENTION.as_secs());
        if !(MIN_NATS_TASK_RETENTION.as_secs()..=MAX_NATS_TASK_RETENTION.as_secs()).contains(&task_retention) {
            return Err(ConfigError(format!(
                "--nats-task-retention must be within {}..={} seconds (below {} s a result could expire before a client polling GET /tasks at the registry's 5-s timeout reads it), got {task_retention}",
                MIN_NATS_TASK_RETENTION.as_secs(),
                MAX_NATS_TASK_RETENTION.as_secs(),
                MIN_NATS_TASK_RETENTION.as_secs()
            )));
        }
        let n = NatsSettings {
            urls,
            stream,
            subject_prefix,
            replicas,
            sync: self.nats_sync.unwrap_or(NatsSync::Always),
            max_age,
            duplicate_window,
            ack_timeout: secs("nats-ack-timeout", self.nats_ack_timeout.unwrap_or(10.0))?,
            max_message_bytes: self.nats_max_message_bytes.unwrap_or(DEFAULT_NATS_MAX_MESSAGE_BYTES),
            partitions: self.nats_partitions.unwrap_or(1),
            kv_prefix,
            collector_name: self.nats_collector_name.clone(),
            max_open_tasks,
            task_retention: Duration::from_secs(task_retention),
        };
        if !(1..=64).contains(&n.partitions) {
            return Err(ConfigError(format!("--nats-partitions must be within 1..=64, got {}", n.partitions)));
        }
        if !n.durable() {
            return Err(ConfigError(
                "--nats-sync interval with --nats-replicas 1: a publish ack would not be durable, and the collector acks only durable records; use --nats-replicas 3 or servers with sync_interval: always".into(),
            ));
        }
        Ok((SinkKind::Nats, Some(n)))
    }

    /// `self` with every unset flag taken from `file`.
    pub fn or(self, file: Args) -> Args {
        macro_rules! pick { ($($f:ident),*) => { Args { config: self.config, allow_new_registry: self.allow_new_registry || file.allow_new_registry, $($f: self.$f.or(file.$f)),* } } }
        pick!(listen, tls_cert, tls_key, tls_client_ca, api_tls_cert, api_tls_key, api_listen, api_token, data_dir, sink, nats_stream, nats_subject_prefix, nats_replicas, nats_sync,
            nats_max_age, nats_duplicate_window, nats_ack_timeout, nats_max_message_bytes, nats_partitions, nats_kv_prefix, nats_collector_name, nats_max_open_tasks, nats_task_retention, rotate_bytes, agent_token, token_file,
            max_connections, max_frame, max_inflight, max_inflight_bytes, max_batch_records, handshake_timeout, idle_timeout,
            ping_after, retry_after_ms, admission_rate, admission_burst_ms, max_reservations, max_handshakes, prehello_bytes,
            new_agents_per_sec, new_agents_burst, max_agents, liveness_probe_ms, max_agent_id_bytes, max_identity_bytes,
            max_hello_addresses, max_token_bytes, heartbeat_interval, stale_after, registry_flush, log, api_max_connections,
            api_header_timeout, api_request_timeout, api_max_body)
    }

    /// Reads the config file named by `--config`, if any, under the flags.
    pub fn with_file(self) -> Result<Args, ConfigError> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let file: Args = serde_json::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Ok(self.or(file))
    }

    /// Applies defaults and refuses impossible settings.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let (sink, nats) = self.sink_settings()?;
        let idle_timeout = secs("idle-timeout", self.idle_timeout.unwrap_or(45.0))?;
        let ping_after = match self.ping_after {
            Some(v) => secs("ping-after", v)?,
            None => idle_timeout / 3,
        };
        if ping_after >= idle_timeout {
            return Err(ConfigError("--ping-after must be below --idle-timeout".into()));
        }
        let max_frame = self.max_frame.unwrap_or(64 * 1024);
        if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&max_frame) {
            return Err(ConfigError(format!("--max-frame must be within {MIN_MAX_FRAME}..={MAX_MAX_FRAME}, got {max_frame}")));
        }
        let max_connections = self.max_connections.unwrap_or(10_000);
        if max_connections == 0 {
            return Err(ConfigError("--max-connections must be at least 1".into()));
        }
        let max_inflight = self.max_inflight.unwrap_or(8);
        if !(1..=1024).contains(&max_inflight) {
            return Err(ConfigError("--max-inflight must be within 1..=1024".into()));
        }
        let max_inflight_bytes = self.max_inflight_bytes.unwrap_or(2 << 20);
        if max_inflight_bytes < 4096 {
            return Err(ConfigError(format!("--max-inflight-bytes must be at least 4096, got {max_inflight_bytes}")));
        }
        let max_batch_records = self.max_batch_records.unwrap_or(1024);
        if !(1..=MAX_BATCH_RECORDS).contains(&max_batch_records) {
            return Err(ConfigError(format!("--max-batch-records must be within 1..={MAX_BATCH_RECORDS}, got {max_batch_records}")));
        }
        let rotate_bytes = self.rotate_bytes.unwrap_or(256 << 20);
        if rotate_bytes < 4096 {
            return Err(ConfigError("--rotate-bytes must be at least 4096".into()));
        }
        let stale_after = self.stale_after.unwrap_or(3);
        if stale_after == 0 {
            return Err(ConfigError("--stale-after must be at least 1".into()));
        }
        let admission_rate = self.admission_rate.unwrap_or(2000);
        let admission_burst_ms = self.admission_burst_ms.unwrap_or(50);
        if admission_burst_ms > 60_000 {
            return Err(ConfigError(format!("--admission-burst-ms must be at most 60000, got {admission_burst_ms}")));
        }
        let max_reservations = self.max_reservations.unwrap_or(100_000);
        if admission_rate > 0 && max_reservations == 0 {
            return Err(ConfigError("--max-reservations must be at least 1 when --admission-rate is set (0 would answer every Hello beyond the burst without a slot)".into()));
        }
        let max_handshakes = self.max_handshakes.unwrap_or(BACKLOG as usize);
        if max_handshakes == 0 {
            return Err(ConfigError("--max-handshakes must be at least 1".into()));
        }
        let prehello_bytes = self.prehello_bytes.unwrap_or(64 * 1024);
        if prehello_bytes < 4096 {
            return Err(ConfigError(format!("--prehello-bytes must be at least 4096, got {prehello_bytes}")));
        }
        let new_agents_per_sec = self.new_agents_per_sec.unwrap_or(100);
        let new_agents_burst = self.new_agents_burst.unwrap_or(2000);
        if new_agents_per_sec > 0 && new_agents_burst == 0 {
            return Err(ConfigError("--new-agents-burst must be at least 1 when --new-agents-per-sec is set".into()));
        }
        let max_agents = self.max_agents.unwrap_or(1_000_000);
        if max_agents == 0 {
            return Err(ConfigError("--max-agents must be at least 1".into()));
        }
        let d = crate::handshake::HelloBounds::default();
        let hello_bounds = crate::handshake::HelloBounds {
            agent_id: self.max_agent_id_bytes.unwrap_or(d.agent_id),
            identity: self.max_identity_bytes.unwrap_or(d.identity),
            addresses: self.max_hello_addresses.unwrap_or(d.addresses),
            token: self.max_token_bytes.unwrap_or(d.token),
        };
        if !(1..=4096).contains(&hello_bounds.agent_id) {
            return Err(ConfigError(format!("--max-agent-id-bytes must be within 1..=4096, got {}", hello_bounds.agent_id)));
        }
        if hello_bounds.identity > 4096 || hello_bounds.token > 4096 {
            return Err(ConfigError("--max-identity-bytes and --max-token-bytes must be at most 4096".into()));
        }
        if let Some(n) = &nats {
            let line = crate::line::line_max(max_frame, hello_bounds.agent_id, hello_bounds.identity);
            if n.max_message_bytes < line || n.max_message_bytes > MAX_NATS_MAX_MESSAGE_BYTES {
                return Err(ConfigError(format!(
                    "--nats-max-message-bytes must be within {line}..={MAX_NATS_MAX_MESSAGE_BYTES} (one record line at its longest with --max-frame {max_frame}, --max-agent-id-bytes {} and --max-identity-bytes {} is {line} bytes), got {}",
                    hello_bounds.agent_id, hello_bounds.identity, n.max_message_bytes
                )));
            }
        }
        let api_limits = self.api_limits()?;
        let api = match (self.api_token, self.api_listen) {
            (Some(t), _) if t.len() < MIN_API_TOKEN_LEN => {
                // The message gives the length, never the token.
                return Err(ConfigError(format!("--api-token must be at least {MIN_API_TOKEN_LEN} bytes, got {} (use a random token, e.g. `openssl rand -hex 16`)", t.len())));
            }
            (Some(t), addr) => Some((addr.unwrap_or_else(|| "127.0.0.1:7071".parse().unwrap()), Secret(t))),
            (None, Some(_)) => return Err(ConfigError("--api-listen needs --api-token".into())),
            (None, None) => None,
        };
        let tls = match (self.tls_cert, self.tls_key, self.tls_client_ca) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles { cert, key, client_ca }),
            (None, None, None) => None,
            (None, None, Some(_)) => return Err(ConfigError("--tls-client-ca needs --tls-cert and --tls-key".into())),
            _ => return Err(ConfigError("--tls-cert and --tls-key go together".into())),
        };
        let api_tls = match (self.api_tls_cert, self.api_tls_key) {
            (Some(cert), Some(key)) if api.is_some() => Some(TlsFiles { cert, key, client_ca: None }),
            (Some(_), Some(_)) => return Err(ConfigError("--api-tls-cert needs the API (--api-token)".into())),
            (None, None) => None,
            _ => return Err(ConfigError("--api-tls-cert and --api-tls-key go together".into())),
        };
        Ok(Config {
            tls,
            api_tls,
            listen: self.listen.unwrap_or_else(|| "127.0.0.1:7070".parse().unwrap()),
            api,
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("edge-data")),
            sink,
            nats,
            rotate_bytes,
            agent_token: self.agent_token,
            token_file: self.token_file,
            max_connections,
            max_frame,
            max_inflight,
            max_inflight_bytes,
            max_batch_records,
            handshake_timeout: secs("handshake-timeout", self.handshake_timeout.unwrap_or(10.0))?,
            idle_timeout,
            ping_after,
            retry_after_ms: self.retry_after_ms.unwrap_or(5000),
            admission_rate,
            admission_burst: Duration::from_millis(u64::from(admission_burst_ms)),
            max_reservations,
            max_handshakes,
            prehello_bytes,
            new_agents_per_sec,
            new_agents_burst,
            max_agents,
            liveness_probe: Duration::from_millis(u64::from(self.liveness_probe_ms.unwrap_or(2000).clamp(1, 60_000))),
            hello_bounds,
            heartbeat_interval: secs("heartbeat-interval", self.heartbeat_interval.unwrap_or(60.0))?,
            stale_after,
            registry_flush: secs("registry-flush", self.registry_flush.unwrap_or(1.0))?,
            allow_new_registry: self.allow_new_registry,
            api_limits,
        })
    }

    fn api_limits(&self) -> Result<ApiLimits, ConfigError> {
        let d = ApiLimits::default();
        let max_connections = self.api_max_connections.unwrap_or(d.max_connections);
        if max_connections == 0 {
            return Err(ConfigError("--api-max-connections must be at least 1".into()));
        }
        let max_body = self.api_max_body.unwrap_or(d.max_body);
        if !API_BODY_RANGE.contains(&max_body) {
            return Err(ConfigError(format!("--api-max-body must be within {}..={}, got {max_body}", API_BODY_RANGE.start(), API_BODY_RANGE.end())));
        }
        let or = |v: Option<f64>, d: Duration| v.unwrap_or(d.as_secs_f64());
        Ok(ApiLimits {
            max_connections,
            header_timeout: secs("api-header-timeout", or(self.api_header_timeout, d.header_timeout))?,
            request_timeout: secs("api-request-timeout", or(self.api_request_timeout, d.request_timeout))?,
            max_body,
        })
    }
}

impl Config {
    /// File descriptors this configuration may hold at once: one per agent
    /// connection and per API connection, plus [`FD_RESERVE`] for
    /// everything else. The program refuses to start when its open-file
    /// limit is below this.
    pub fn descriptors_needed(&self) -> u64 {
        let api = self.api.as_ref().map_or(0, |_| self.api_limits.max_connections);
        (self.max_connections as u64).saturating_add(api as u64).saturating_add(FD_RESERVE)
    }
}

/// Descriptors kept for everything but connections: standard streams, the
/// runtime, both listeners, the sink and checkpoint files, SQLite's files,
/// and connections accepted only to be refused (a Busy reject, a 503).
pub const FD_RESERVE: u64 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let c = Args::default().resolve().unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(45));
        assert_eq!(c.ping_after, Duration::from_secs(15));
        assert_eq!(c.max_frame, 65536);
        assert!(c.api.is_none());
        assert_eq!((c.admission_rate, c.admission_burst, c.max_reservations), (2000, Duration::from_millis(50), 100_000));
    }

    #[test]
    fn admission_settings() {
        let strict = Args { admission_burst_ms: Some(0), ..Args::default() }.resolve().unwrap();
        assert_eq!(strict.admission_burst, Duration::ZERO, "a zero burst is allowed: strict");
        let unlimited = Args { admission_rate: Some(0), max_reservations: Some(0), ..Args::default() }.resolve().unwrap();
        assert_eq!((unlimited.admission_rate, unlimited.max_reservations), (0, 0), "no table needed without a rate");
        let file: Args = serde_json::from_str(r#"{"admission_rate": 50, "admission_burst_ms": 20, "max_reservations": 10}"#).unwrap();
        let c = Args { admission_rate: Some(70), ..Args::default() }.or(file).resolve().unwrap();
        assert_eq!((c.admission_rate, c.admission_burst, c.max_reservations), (70, Duration::from_millis(20), 10));
        let c = Args::try_parse_from(["edge-collector", "--admission-rate", "5", "--admission-burst-ms", "0", "--max-reservations", "3"]).unwrap().resolve().unwrap();
        assert_eq!((c.admission_rate, c.admission_burst, c.max_reservations), (5, Duration::ZERO, 3));
    }

    #[test]
    fn refuses_impossible_settings() {
        let bad = [
            Args { max_frame: Some(100), ..Args::default() },
            Args { max_connections: Some(0), ..Args::default() },
            Args { idle_timeout: Some(0.0), ..Args::default() },
            Args { idle_timeout: Some(10.0), ping_after: Some(10.0), ..Args::default() },
            Args { api_listen: Some("127.0.0.1:1".parse().unwrap()), ..Args::default() },
            Args { stale_after: Some(0), ..Args::default() },
            Args { max_reservations: Some(0), ..Args::default() },
            Args { admission_rate: Some(10), max_reservations: Some(0), ..Args::default() },
            Args { admission_burst_ms: Some(60_001), ..Args::default() },
            Args { api_max_connections: Some(0), ..Args::default() },
            Args { api_header_timeout: Some(0.0), ..Args::default() },
            Args { api_request_timeout: Some(f64::NAN), ..Args::default() },
            Args { api_max_body: Some(1023), ..Args::default() },
            Args { api_max_body: Some((64 << 20) + 1), ..Args::default() },
            Args { max_handshakes: Some(0), ..Args::default() },
            Args { prehello_bytes: Some(4095), ..Args::default() },
            Args { new_agents_burst: Some(0), ..Args::default() },
            Args { max_agents: Some(0), ..Args::default() },
            Args { max_agent_id_bytes: Some(0), ..Args::default() },
            Args { max_batch_records: Some(0), ..Args::default() },
            Args { max_batch_records: Some(65537), ..Args::default() },
            Args { max_inflight_bytes: Some(100), ..Args::default() },
        ];
        for a in bad {
            assert!(a.clone().resolve().is_err(), "{a:?}");
        }
    }

    #[test]
    fn tls_files_go_together() {
        let f = |s: &str| Some(PathBuf::from(s));
        let ok = Args { tls_cert: f("c.pem"), tls_key: f("c.key"), tls_client_ca: f("ca.pem"), ..Args::default() }.resolve().unwrap();
        assert_eq!(ok.tls.unwrap().client_ca, f("ca.pem"));
        let api = Args { api_token: Some("sixteen-bytes-ok".into()), api_tls_cert: f("a.pem"), api_tls_key: f("a.key"), ..Args::default() };
        assert!(api.resolve().unwrap().api_tls.is_some());
        for (bad, says) in [
            (Args { tls_cert: f("c.pem"), ..Args::default() }, "--tls-cert and --tls-key go together"),
            (Args { tls_key: f("c.key"), tls_client_ca: f("ca.pem"), ..Args::default() }, "--tls-cert and --tls-key go together"),
            (Args { tls_client_ca: f("ca.pem"), ..Args::default() }, "--tls-client-ca needs --tls-cert and --tls-key"),
            (Args { api_tls_cert: f("a.pem"), api_tls_key: f("a.key"), ..Args::default() }, "--api-tls-cert needs the API"),
            (Args { api_token: Some("sixteen-bytes-ok".into()), api_tls_key: f("a.key"), ..Args::default() }, "go together"),
        ] {
            let e = bad.resolve().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn api_token_length_and_limits() {
        let token = |t: &str| Args { api_token: Some(t.into()), ..Args::default() }.resolve();
        for short in ["", "Z", "fifteen-bytes.."] {
            let e = token(short).unwrap_err().to_string();
            assert!(e.contains("--api-token must be at least 16 bytes"), "{e}");
            assert!(short.is_empty() || !e.contains(short), "the refusal never repeats the token: {e}");
        }
        let c = token("sixteen-bytes-ok").unwrap();
        assert_eq!(c.api.as_ref().map(|(a, t)| (a.port(), t.expose())), Some((7071, "sixteen-bytes-ok")));
        assert!(!format!("{c:?}").contains("sixteen-bytes-ok"), "Debug never shows the API token");
        assert_eq!(c.api_limits, ApiLimits::default());
        let file: Args = serde_json::from_str(r#"{"api_max_connections": 5, "api_header_timeout": 2.5, "api_max_body": 4096}"#).unwrap();
        let c = Args { api_max_connections: Some(7), api_request_timeout: Some(3.0), ..Args::default() }.or(file).resolve().unwrap();
        let want = ApiLimits { max_connections: 7, header_timeout: Duration::from_millis(2500), request_timeout: Duration::from_secs(3), max_body: 4096 };
        assert_eq!(c.api_limits, want);
    }

    #[test]
    fn descriptor_budget() {
        let c = Args::default().resolve().unwrap();
        assert_eq!(c.descriptors_needed(), 10_000 + FD_RESERVE, "no API, no API connections");
        let c = Args { api_token: Some("sixteen-bytes-ok".into()), max_connections: Some(500), api_max_connections: Some(20), ..Args::default() };
        assert_eq!(c.resolve().unwrap().descriptors_needed(), 520 + FD_RESERVE);
    }

    #[test]
    fn help_hides_token_values() {
        use clap::CommandFactory as _;
        let cmd = Args::command();
        for id in ["api_token", "agent_token"] {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            assert!(arg.get_env().is_some() && arg.is_hide_env_values_set(), "{id}");
        }
    }

    #[test]
    fn nats_sink_settings() {
        let c = Args::try_parse_from(["edge-collector", "--sink", "nats://a:4222,nats://b:4222"]).unwrap().resolve().unwrap();
        assert_eq!(c.sink, SinkKind::Nats);
        let n = c.nats.unwrap();
        assert_eq!(n.urls, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!((n.stream.as_str(), n.subject_prefix.as_str(), n.replicas, n.sync), ("EDGE_RECORDS", "edge.records", 1, NatsSync::Always));
        assert_eq!((n.duplicate_window, n.max_age, n.max_message_bytes, n.partitions), (Duration::from_secs(120), Duration::ZERO, 786_432, 1));
        assert_eq!(n.task_retention, Duration::from_secs(86_400));
        let short = Args::try_parse_from(["edge-collector", "--sink", "nats://a:1", "--nats-task-retention", "10"]).unwrap().resolve().unwrap();
        assert_eq!(short.nats.unwrap().task_retention, Duration::from_secs(10), "the shortest accepted");
        assert_eq!((n.kv_prefix.as_str(), n.collector_name.as_deref(), n.max_open_tasks), ("EDGE", None, 1000));
        let r3 = Args::try_parse_from(["edge-collector", "--sink", "nats://a:1", "--nats-replicas", "3", "--nats-sync", "interval"]).unwrap().resolve().unwrap();
        assert!(r3.nats.unwrap().durable(), "R3 with the default sync: a quorum holds every ack");
        assert_eq!(Args::default().resolve().unwrap().sink, SinkKind::File);
        let file: Args = serde_json::from_str(r#"{"sink": "stdout"}"#).unwrap();
        assert_eq!(Args::default().or(file).resolve().unwrap().sink, SinkKind::Stdout);
    }

    #[test]
    fn refuses_unworkable_nats_settings() {
        let base = |extra: &[&str]| {
            let mut v = vec!["edge-collector", "--sink", "nats://a:4222"];
            v.extend_from_slice(extra);
            Args::try_parse_from(v).unwrap()
        };
        let bad = [
            base(&["--nats-sync", "interval"]),
            base(&["--nats-replicas", "2"]),
            base(&["--nats-stream", "a.b"]),
            base(&["--nats-subject-prefix", "a.>"]),
            base(&["--nats-duplicate-window", "0"]),
            base(&["--nats-max-age", "60", "--nats-duplicate-window", "120"]),
            base(&["--nats-max-message-bytes", "0"]),
            base(&["--nats-partitions", "0"]),
            base(&["--nats-partitions", "65"]),
            base(&["--nats-max-message-bytes", "397561"]),
            base(&["--max-frame", "1048576"]),
            base(&["--nats-kv-prefix", "a.b"]),
            base(&["--nats-kv-prefix", ""]),
            base(&["--nats-collector-name", ""]),
            base(&["--nats-max-open-tasks", "0"]),
            base(&["--nats-max-open-tasks", "10001"]),
            base(&["--nats-task-retention", "0"]),
            base(&["--nats-task-retention", "9"]),
            base(&["--nats-task-retention", "31536001"]),
            Args { sink: Some("nats://a:1,tcp://b:2".into()), ..Args::default() },
            Args { sink: Some("kafka".into()), ..Args::default() },
        ];
        for a in bad {
            assert!(a.clone().resolve().is_err(), "{a:?}");
        }
    }

    #[test]
    fn flags_win_over_file() {
        let file: Args = serde_json::from_str(r#"{"max_connections": 5, "idle_timeout": 9}"#).unwrap();
        let flags = Args { max_connections: Some(7), ..Args::default() };
        let c = flags.or(file).resolve().unwrap();
        assert_eq!((c.max_connections, c.idle_timeout), (7, Duration::from_secs(9)));
        assert!(serde_json::from_str::<Args>(r#"{"max_conections": 5}"#).is_err(), "unknown keys refused");
    }
}

//! The collector assembled: listeners, the session table, the background
//! tasks, and graceful shutdown.
//!
//! [`Collector::start`] binds the agent port (and the API port), opens the
//! sink (rebuilding resume points) and the registry, and spawns: the accept
//! loop (one task per connection; at most `max_handshakes` wait for their
//! Hello, the oldest evicted; sessions beyond `max_connections` get a
//! Reject Busy to their Hello),
//! the registry flusher (which also recounts, every [`FLEET_REFRESH`], the
//! fleet behind the pacing advice) and the API. [`Collector::shutdown`] tells every
//! connection to Close with code 2 (Shutdown), waits for them (bounded),
//! flushes the registry and stops the commit thread after its last commit.

use crate::admission::{Admission, AdmissionConfig};
use crate::auth::Auth;
use crate::commit;
use crate::config::{Config, SinkKind};
use crate::handshakes::Handshakes;
use crate::metrics::Metrics;
use crate::newids::NewIds;
use crate::registry::Registry;
use crate::shared::{unix_ms, Shared, FLEET_HORIZON, FLEET_REFRESH};
use crate::sink::{FileSink, ResumePoints, Sink, StdoutSink};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;


/// A running collector.
pub struct Collector {
    /// Shared state (for tests and the demo: metrics, registry).
    pub shared: Arc<Shared>,
    /// The agent listener's address.
    pub agent_addr: SocketAddr,
    /// The API's address, if it runs.
    pub api_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    conns: Arc<tokio::sync::Semaphore>,
    /// `None` with the JetStream sink.
    commit_thread: Option<std::thread::JoinHandle<()>>,
}

/// Why the collector could not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting (token file) could not be used.
    Config(crate::config::ConfigError),
    /// A listener, the sink or the data directory failed.
    Io(io::Error),
    /// The registry database failed.
    Registry(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Io(e) => write!(f, "{e}"),
            StartError::Registry(e) => write!(f, "registry: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// The registry's name in the data directory.
pub const REGISTRY: &str = "registry.sqlite3";

/// True if the registry database is not there or has no byte in it (SQLite
/// would take either for a new, empty database).
fn registry_is_missing(path: &std::path::Path) -> Result<bool, StartError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len() == 0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(StartError::Io(crate::recovery::at(path, e))),
    }
}

/// Most connections a shutdown waits for before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Collector {
    /// Starts a collector; see the module docs.
    pub async fn start(cfg: Config) -> Result<Collector, StartError> {
        let auth = Auth::load(cfg.agent_token.as_deref(), cfg.token_file.as_deref()).map_err(StartError::Config)?;
        let tls = cfg.tls.clone().map(crate::tls::Tls::load).transpose().map_err(StartError::Config)?.map(Arc::new);
        let api_tls = cfg.api_tls.clone().map(crate::tls::Tls::load).transpose().map_err(StartError::Config)?.map(Arc::new);
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| crate::recovery::at(&cfg.data_dir, e))?;
        let metrics = Arc::new(Metrics::default());
        let registry_path = cfg.data_dir.join(REGISTRY);
        // Looked at before the sink may create files.
        let registry_missing = registry_is_missing(&registry_path)?;
        // The local sink and its resume points (none with JetStream), and
        // whether the data directory held no sink files.
        type Local = Option<(Box<dyn Sink>, ResumePoints)>;
        let mut found_results = Vec::new();
        let (local, fresh): (Local, bool) = match cfg.sink {
            SinkKind::File => {
                let (s, mut rec) = FileSink::open(&cfg.data_dir, cfg.rotate_bytes)?;
                found_results = std::mem::take(&mut rec.results);
                tracing::info!(agents = rec.resume.len(), files = rec.files, lines = rec.lines, truncated_bytes = rec.truncated_bytes, quarantined = rec.quarantined, "sink opened; resume points rebuilt");
                Metrics::add(&metrics.sink_quarantined_total, rec.quarantined);
                Metrics::add(&metrics.sink_quarantined_bytes_total, rec.quarantined_bytes);
                Metrics::add(&metrics.sink_truncated_bytes_total, rec.truncated_bytes);
                (Some((Box::new(s), rec.resume)), rec.fresh)
            }
            SinkKind::Stdout => (Some((Box::new(StdoutSink), ResumePoints::new())), true),
            // The records live in the stream; this data directory holds only
            // the registry, so there are no sink files to check it against.
            SinkKind::Nats => (None, true),
        };
        if registry_missing && !fresh {
            if !cfg.allow_new_registry {
                return Err(StartError::Registry(format!(
                    "{}: missing or empty while {} holds sink files: its queued tasks, configs and agents would be silently gone; restore it from a backup, or start once with --allow-new-registry to begin a new one",
                    registry_path.display(),
                    cfg.data_dir.display()
                )));
            }
            tracing::warn!(registry = %registry_path.display(), "the registry was missing or empty; starting a new one (--allow-new-registry)");
        }
        let registry = Arc::new(Registry::open(&registry_path).map_err(StartError::Registry)?);
        // A result acked but not yet flushed to the registry when the last
        // run ended would leave its task open, to be sent and run again.
        if !found_results.is_empty() {
            let n = found_results.len();
            for f in found_results {
                registry.task_result(&f.agent, f.result, f.recv_ms);
            }
            registry.flush(0).map_err(StartError::Registry)?;
            tracing::info!(results = n, "task results in the sink files applied to the registry (tasks already done are left as they are)");
        }
        // Known at once, so the first Accepts after a restart carry the advice.
        let fleet_recent = registry.recent_agents(fleet_since()).map_err(StartError::Registry)?;
        let (commit, commit_thread) = match local {
            Some((sink, resume)) => {
                let (c, t) = commit::spawn(sink, resume, metrics.clone(), cfg.max_connections.clamp(64, 65536));
                (crate::store::Store::Local(c), Some(t))
            }
            None => (jetstream_store(&cfg, metrics.clone()).await?, None),
        };
        let listener = bind_agents(cfg.listen).map_err(|e| io::Error::new(e.kind(), format!("--listen {}: {e}", cfg.listen)))?;
        let agent_addr = listener.local_addr()?;
        let api = match &cfg.api {
            Some((addr, _)) => Some(crate::api::bind(*addr).await.map_err(|e| io::Error::new(e.kind(), format!("--api-listen {addr}: {e}")))?),
            None => None,
        };
        let api_addr = api.as_ref().map(|l| l.local_addr()).transpose()?;
        #[cfg(feature = "jetstream")]
        let kv = match (&cfg.sink, &cfg.nats) {
            (SinkKind::Nats, Some(n)) => Some(crate::jetstream::kv::Kv::connect(n, agent_addr.port(), metrics.clone()).await?),
            _ => None,
        };
        let (stop, shutdown) = watch::channel(false);
        let conns = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
        warn_about_trust(&auth, &cfg);
        // Registered now, so a SIGHUP right after the ready line is not fatal.
        let hangup = match tls.is_some() || api_tls.is_some() {
            true => Some(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?),
            false => None,
        };
        let admission = AdmissionConfig {
            rate_per_sec: cfg.admission_rate,
            burst: cfg.admission_burst,
            max_reservations: cfg.max_reservations,
            ..AdmissionConfig::default()
        };
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let handshakes = Handshakes::new(cfg.max_handshakes);
        let new_ids = NewIds::new(cfg.new_agents_per_sec, cfg.new_agents_burst);
        let shared = Arc::new(Shared {
            cfg,
            auth,
            tls,
            api_tls,
            metrics,
            commit,
            registry,
            #[cfg(feature = "jetstream")]
            kv,
            shutdown,
            admission: Mutex::new(Admission::new(admission, seed)),
            started: Instant::now(),
            fleet_recent: AtomicU64::new(fleet_recent as u64),
            sessions: Mutex::new(HashMap::new()),
            handshakes,
            session_slots: conns.clone(),
            new_ids: Mutex::new(new_ids),
            next_conn: AtomicU64::new(1),
            next_task: AtomicU64::new(1),
            started_ms: unix_ms(),
        });
        let mut tasks = JoinSet::new();
        #[cfg(feature = "jetstream")]
        if let Some(kv) = &shared.kv {
            kv.spawn(shared.clone(), shared.shutdown.clone(), &mut tasks).await?;
        }
        tasks.spawn(accept_loop(shared.clone(), listener));
        tasks.spawn(registry_flusher(shared.clone()));
        if let Some(h) = hangup {
            tasks.spawn(reload_on_hangup(shared.clone(), h));
        }
        if let Some(l) = api {
            tasks.spawn(crate::api::serve(shared.clone(), l));
        }
        tracing::info!(%agent_addr, ?api_addr, "collector listening");
        Ok(Collector { shared, agent_addr, api_addr, stop, tasks, conns, commit_thread })
    }

    /// Returns once the sink has failed (a write or fsync error): nothing is
    /// acked any more, and the program shuts down and exits with status 3
    /// so that its supervisor restarts it ([`crate::commit`]).
    pub async fn sink_failed(&self) {
        self.shared.commit.failed().await
    }

    /// Stops the collector gracefully; see the module docs.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        // Every connection holds a permit; all back means all ended.
        let max = self.shared.cfg.max_connections as u32;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.conns.acquire_many(max)).await;
        while self.tasks.join_next().await.is_some() {}
        let shared = self.shared;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = shared.registry.flush(0) {
                tracing::error!(error = %e, "final registry flush failed");
            }
            drop(shared);
        })
        .await;
        // The commit thread ends once the last handle (held by connection
        // tasks, all ended) is gone; someone still holding `Shared` keeps
        // it alive, so the wait is bounded.
        let Some(thread) = self.commit_thread else { return };
        if tokio::time::timeout(SHUTDOWN_GRACE, tokio::task::spawn_blocking(move || thread.join())).await.is_err() {
            tracing::warn!("the commit thread did not end (a handle to the collector's state is still held)");
        }
    }
}

/// Connects the JetStream sink (`--sink nats://...`).
#[cfg(feature = "jetstream")]
async fn jetstream_store(cfg: &Config, metrics: Arc<Metrics>) -> Result<crate::store::Store, StartError> {
    let settings = cfg.nats.as_ref().ok_or_else(|| StartError::Config(crate::config::ConfigError("the nats sink needs its settings".into())))?;
    Ok(crate::store::Store::JetStream(crate::jetstream::JetStream::connect(settings, metrics).await?))
}

#[cfg(not(feature = "jetstream"))]
async fn jetstream_store(_: &Config, _: Arc<Metrics>) -> Result<crate::store::Store, StartError> {
    Err(StartError::Config(crate::config::ConfigError("built without the `jetstream` feature".into())))
}


fn bind_agents(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(crate::config::BACKLOG)
}

/// Says loudly, at start, who can write under any agent id: everyone with
/// the port when no token is set, every holder of the shared token, and
/// (with a token file, or mutual TLS) nobody but each agent; and that a
/// plain port beyond loopback is readable on the path.
fn warn_about_trust(auth: &Auth, cfg: &Config) {
    match &cfg.tls {
        None if !cfg.listen.ip().is_loopback() => {
            tracing::warn!(listen = %cfg.listen, "the agent port is PLAIN TCP beyond loopback: tokens and records cross the network in clear text, and anyone on the path can read or change them; use --tls-cert, --tls-key and --tls-client-ca");
        }
        Some(t) if t.client_ca.is_none() => {
            tracing::warn!("TLS without --tls-client-ca: the path is protected, but agents prove their ids only by token");
        }
        Some(_) => {
            tracing::info!("mutual TLS: every agent proves its id with its client certificate");
            return;
        }
        None => {}
    }
    if auth.is_open() {
        tracing::warn!(listen = %cfg.listen, "the agent port accepts ANYONE: no --agent-token or --token-file; any client can write records under any agent id it names (ids it has not seen are limited by --new-agents-per-sec and --max-agents)");
    } else if auth.admits_unproven() {
        tracing::warn!("a shared --agent-token is set: every holder of it is trusted to write records under any agent id not in --token-file; only --token-file entries prove an agent's identity");
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        Metrics::inc(&shared.metrics.connections_total);
        // Pre-Hello connections are limited apart from sessions: the
        // newest enters, the oldest waiting one makes room.
        let conn_id = shared.conn_id();
        let (waiting, evicted) = shared.handshakes.enter(conn_id);
        if evicted {
            Metrics::inc(&shared.metrics.handshakes_evicted_total);
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            Metrics::inc(&shared.metrics.connections_open);
            crate::conn::serve(shared.clone(), stream, peer, conn_id, waiting).await;
            shared.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Reloads the TLS certificates (agent port and API) on every SIGHUP;
/// sessions already established keep theirs.
async fn reload_on_hangup(shared: Arc<Shared>, mut hangup: tokio::signal::unix::Signal) {
    let mut stop = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = hangup.recv() => if r.is_none() { return },
        }
        for (what, tls) in [("agent port", &shared.tls), ("API", &shared.api_tls)] {
            let Some(tls) = tls else { continue };
            match tls.reload() {
                Ok(()) => {
                    Metrics::inc(&shared.metrics.tls_reloads_total);
                    tracing::info!(what, "SIGHUP: TLS certificates reloaded");
                }
                Err(e) => {
                    Metrics::inc(&shared.metrics.tls_reload_failures_total);
                    tracing::error!(what, error = %e, "SIGHUP: TLS certificates NOT reloaded; the old ones stay in use");
                }
            }
        }
    }
}

/// Most agents written into the shared registry at once.
#[cfg(feature = "jetstream")]
const PUBLISH_CONCURRENCY: usize = 32;

/// Writes the agents whose local rows changed into the shared registry
/// (JetStream KV), [`PUBLISH_CONCURRENCY`] at a time.
#[cfg(feature = "jetstream")]
async fn publish_agents(shared: &Arc<Shared>, touched: std::collections::HashSet<String>) {
    let Some(kv) = shared.kv.clone() else { return };
    let mut ids = touched.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < PUBLISH_CONCURRENCY {
            let Some(id) = ids.next() else { break };
            let (kv, s) = (kv.clone(), shared.clone());
            running.spawn(async move {
                let reg = s.registry.clone();
                let who = id.clone();
                let snapshot = match tokio::task::spawn_blocking(move || reg.agent(&who)).await {
                    Ok(Ok(Some(a))) => a,
                    _ => return,
                };
                if let Err(e) = kv.publish_agent(&id, snapshot, s.is_live(&id)).await {
                    tracing::warn!(agent = %id, error = %e, "JetStream KV: the agent's entry not written");
                }
            });
        }
        if running.join_next().await.is_none() {
            return;
        }
    }
}

/// The start of [`FLEET_HORIZON`], Unix ms.
fn fleet_since() -> u64 {
    unix_ms().saturating_sub(FLEET_HORIZON.as_millis() as u64)
}

async fn registry_flusher(shared: Arc<Shared>) {
    let mut stop = shared.shutdown.clone();
    let mut tick = tokio::time::interval(shared.cfg.registry_flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stale = shared.cfg.heartbeat_interval * shared.cfg.stale_after;
    let mut counted = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let s = shared.clone();
        let cutoff = unix_ms().saturating_sub(stale.as_millis() as u64);
        let count = counted.elapsed() >= FLEET_REFRESH;
        let r = tokio::task::spawn_blocking(move || {
            let mut touched = std::collections::HashSet::new();
            s.registry.flush_noting(cutoff, &mut touched)?;
            let fleet = count.then(|| s.registry.recent_agents(fleet_since())).transpose()?;
            Ok::<_, String>((fleet, touched))
        })
        .await;
        match r {
            Ok(Ok((fleet, _touched))) => {
                #[cfg(feature = "jetstream")]
                publish_agents(&shared, _touched).await;
                Metrics::inc(&shared.metrics.registry_flushes_total);
                if let Some(n) = fleet {
                    shared.fleet_recent.store(n as u64, Ordering::Relaxed);
                    counted = Instant::now();
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "registry flush failed"),
            Err(e) => tracing::error!(error = %e, "registry flush panicked"),
        }
    }
}

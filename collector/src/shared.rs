//! The state every task of one collector shares ([`Shared`]): settings,
//! the store, the registry, the live sessions (one per agent id), admission,
//! the handshake and session slots, the new-id budget; and the commands a
//! live connection takes ([`Command`]).
//!
//! [`crate::server`] builds it at start; [`crate::conn`] and [`crate::api`]
//! use it. It imports neither, so no module imports back into one that
//! imports it.

use crate::admission::{Admission, Decision};
use crate::auth::Auth;
use crate::config::Config;
use crate::handshakes::Handshakes;
use crate::metrics::Metrics;
use crate::newids::NewIds;
use crate::registry::{ConfigRow, Registry, TaskRow};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// Wall-clock time, Unix milliseconds (receive times, registry times).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A command for a live connection.
#[derive(Debug, Clone)]
pub enum Command {
    /// A newer, proven connection of the same agent id took over: Close 7
    /// (Conflict) and end.
    Replaced,
    /// An unproven connection claims this agent id: send a Ping and answer
    /// on the sender once any frame arrives (the session is alive, so the
    /// newcomer is refused); a session that cannot answer in time is
    /// replaced.
    Probe(Arc<tokio::sync::Notify>),
    /// Send this task.
    Task(TaskRow),
    /// Send this config.
    Config(ConfigRow),
}

/// Capacity of each connection's command queue; a command that does not
/// fit is not lost (tasks wait in SQLite for the next connect).
pub const COMMAND_QUEUE: usize = 64;

/// The fleet behind the pacing advice counts every agent the registry saw
/// within this long (PROTOCOL.md, Pacing: the last 24 hours).
pub const FLEET_HORIZON: Duration = Duration::from_secs(24 * 3600);

/// How often the registry flusher recounts that fleet: a scan of the
/// agents table (its cost is measured in NOTES.md, "Issue 10: collector
/// admission"), while the fleet of a day changes slowly and the open
/// connections are counted live anyway.
pub const FLEET_REFRESH: Duration = Duration::from_secs(10);

pub(crate) struct Live {
    pub(crate) conn_id: u64,
    pub(crate) tx: mpsc::Sender<Command>,
}

/// State shared by every task of one collector.
pub struct Shared {
    /// Settings.
    pub cfg: Config,
    /// Agent tokens.
    pub auth: Auth,
    /// TLS on the agent port, if configured.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// TLS on the HTTP API, if configured.
    pub api_tls: Option<Arc<crate::tls::Tls>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where records go: the commit thread or the JetStream writers.
    pub commit: crate::store::Store,
    /// The registry.
    pub registry: Arc<Registry>,
    /// The registry, tasks and configs shared through JetStream KV, with
    /// the JetStream sink ([`crate::jetstream::kv`]): then the API reads
    /// and writes there, and tasks and configs reach agents from there.
    #[cfg(feature = "jetstream")]
    pub kv: Option<Arc<crate::jetstream::kv::Kv>>,
    /// Fires once, at shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// The handshake rate ([`crate::admission`]); held for microseconds.
    pub admission: Mutex<Admission>,
    /// The admission clock's origin.
    pub(crate) started: Instant,
    /// Agents the registry saw within [`FLEET_HORIZON`], counted at start
    /// and every [`FLEET_REFRESH`].
    pub(crate) fleet_recent: AtomicU64,
    pub(crate) sessions: Mutex<HashMap<String, Live>>,
    /// Connections waiting for their Hello (`--max-handshakes`).
    pub handshakes: Arc<Handshakes>,
    /// Session slots (`--max-connections`), taken once a Hello is judged.
    pub session_slots: Arc<tokio::sync::Semaphore>,
    /// The budget of new unproven agent ids ([`crate::newids`]).
    pub(crate) new_ids: Mutex<NewIds>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) next_task: AtomicU64,
    pub(crate) started_ms: u64,
}

impl Shared {
    /// A fresh connection id.
    pub fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Judges an authenticated Hello of `agent` at the admission rate, and
    /// updates the admission metrics.
    pub fn admit(&self, agent: &str) -> Decision {
        let mut a = self.admission.lock().unwrap();
        let d = a.decide(agent, self.started.elapsed());
        self.metrics.note_admission(&a.stats());
        d
    }

    /// `retry_after_ms` for a connection beyond `max_connections`: at least
    /// `--retry-after-ms` and the time until the last promised slot, jittered.
    pub fn busy_hint(&self) -> u32 {
        self.admission.lock().unwrap().busy_hint(self.started.elapsed(), self.cfg.retry_after_ms)
    }

    /// The agents this collector serves, for the advice: the larger of the
    /// agents its registry saw within [`FLEET_HORIZON`] (counted at start
    /// and every [`FLEET_REFRESH`]) and those it knows of now, its open
    /// connections plus the `waiting` agents holding an admission slot (so
    /// the first boot of a collector with an empty registry, whose fleet
    /// all waits for slots, already advises the whole storm).
    fn fleet(&self, waiting: usize) -> usize {
        let open = Metrics::get(&self.metrics.connections_open) as usize;
        open.saturating_add(waiting).max(self.fleet_recent.load(Ordering::Relaxed) as usize)
    }

    /// Accept's `retry_window_ms`: the time to admit the fleet (see
    /// `fleet`) at the admission rate; 0 when the rate is unlimited.
    pub fn retry_window_ms(&self) -> u32 {
        let a = self.admission.lock().unwrap();
        a.retry_window_ms(self.fleet(a.stats().reservations))
    }

    /// A fresh task token, unique across restarts (start time and counter).
    pub fn task_token(&self) -> String {
        format!("t{:x}-{}", self.started_ms, self.next_task.fetch_add(1, Ordering::Relaxed))
    }

    /// Makes `conn_id` the live session of `agent`. If another connection
    /// holds the id, it is replaced only when `may_replace` (the newcomer
    /// proved its id, or the live session failed its liveness probe; the
    /// older one is told, and closes with code 7); otherwise `false` and
    /// the live session goes on.
    pub fn register(&self, agent: &str, conn_id: u64, tx: mpsc::Sender<Command>, may_replace: bool) -> bool {
        let mut sessions = self.sessions.lock().unwrap();
        if !may_replace && sessions.contains_key(agent) {
            return false;
        }
        if let Some(old) = sessions.insert(agent.to_string(), Live { conn_id, tx }) {
            Metrics::inc(&self.metrics.sessions_replaced_total);
            let _ = old.tx.try_send(Command::Replaced);
        }
        true
    }

    /// Takes a token of the new-unproven-id budget: `Err(ms)` until the next.
    pub fn take_new_id(&self) -> Result<(), u32> {
        self.new_ids.lock().unwrap().take(self.started.elapsed())
    }

    /// Forgets `conn_id` as `agent`'s session; false if a newer one had
    /// replaced it already.
    pub fn unregister(&self, agent: &str, conn_id: u64) -> bool {
        let mut s = self.sessions.lock().unwrap();
        if s.get(agent).is_some_and(|l| l.conn_id == conn_id) {
            s.remove(agent);
            true
        } else {
            false
        }
    }

    /// Asks `agent`'s live session, if any, to prove it is alive: the
    /// notice is notified once it has received a frame after the request.
    /// `None` if there is no live session.
    pub fn probe(&self, agent: &str) -> Option<Arc<tokio::sync::Notify>> {
        let alive = Arc::new(tokio::sync::Notify::new());
        let sessions = self.sessions.lock().unwrap();
        let live = sessions.get(agent)?;
        // A full command queue cannot take the probe: then no answer comes,
        // read as "not alive".
        let _ = live.tx.try_send(Command::Probe(alive.clone()));
        Some(alive)
    }

    /// True if `agent` has a live session.
    pub fn is_live(&self, agent: &str) -> bool {
        self.sessions.lock().unwrap().contains_key(agent)
    }

    /// Hands `cmd` to `agent`'s live session, if any and if its queue has room.
    pub fn send_to(&self, agent: &str, cmd: Command) -> bool {
        self.sessions.lock().unwrap().get(agent).is_some_and(|l| l.tx.try_send(cmd).is_ok())
    }

    /// "Task sent", to the local registry and (with the JetStream sink) the
    /// shared one.
    pub fn task_sent(&self, token: &str, now_ms: u64) {
        self.registry.task_sent(token, now_ms);
        #[cfg(feature = "jetstream")]
        if let Some(kv) = &self.kv {
            kv.task_sent(token);
        }
    }

    /// A task result of `agent`, to the local registry and (with the
    /// JetStream sink) the shared one, queued: for a bare TaskResult frame,
    /// which nothing acks.
    pub fn task_result(&self, agent: &str, r: crate::session::ResultInfo, now_ms: u64) {
        #[cfg(feature = "jetstream")]
        if let Some(kv) = &self.kv {
            kv.task_result(agent, r.clone());
        }
        self.registry.task_result(agent, r, now_ms);
    }

    /// [`Shared::task_result`] for a result that came in a record: with the
    /// shared registry in JetStream KV the write is done (or has failed)
    /// before this returns, so the batch's Ack, which follows its commit,
    /// never precedes the task's done mark. A collector killed between an
    /// Ack and a queued write would leave the task open, to be sent again
    /// and run twice by an agent that no longer holds the result (the file
    /// sink closes the same window at start: [`crate::recovery`]).
    pub async fn task_result_before_ack(&self, agent: &str, r: crate::session::ResultInfo, now_ms: u64) {
        #[cfg(feature = "jetstream")]
        if let Some(kv) = &self.kv {
            kv.write_result(agent, r.clone()).await;
        }
        self.registry.task_result(agent, r, now_ms);
    }

    /// Agents online but silent since before this time read as `stale`.
    pub fn stale_before_ms(&self) -> u64 {
        let stale = self.cfg.heartbeat_interval * self.cfg.stale_after;
        unix_ms().saturating_sub(stale.as_millis() as u64)
    }

    /// Hands `cmd` to every live session.
    pub fn broadcast(&self, cmd: Command) {
        for l in self.sessions.lock().unwrap().values() {
            let _ = l.tx.try_send(cmd.clone());
        }
    }
}

/// The JetStream KV followers hand tasks and configs to this collector's
/// live sessions through this.
#[cfg(feature = "jetstream")]
impl crate::jetstream::kv::Sessions for Shared {
    fn task(&self, agent: &str, task: TaskRow) {
        self.send_to(agent, Command::Task(task));
    }

    fn config(&self, config: ConfigRow) {
        self.broadcast(Command::Config(config));
    }
}

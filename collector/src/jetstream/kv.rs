//! The registry, tasks and configs shared by every collector of one
//! JetStream sink, in JetStream KV buckets (`--sink nats://...`). With the
//! file sink they stay in the collector's SQLite ([`crate::registry`]).
//!
//! # Buckets (prefix `--nats-kv-prefix`, replicas `--nats-replicas`)
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `<prefix>_AGENTS` | [`key`] of the agent id | the agent as `GET /agents/{id}` shows it, plus `"collector"`: the collector that holds (or last held) its session |
//! | `<prefix>_TASKS` | the task token | [`encode`]: JSON of the task (state, sends, result) + newline + payload |
//! | `<prefix>_OPEN` | [`key`] of the agent id | JSON array of the agent's tokens without a result, oldest first (at most `--nats-max-open-tasks`) |
//! | `<prefix>_CONFIGS` | [`key`] of the config name | [`encode`]: JSON `{"name", "version"}` + newline + payload |
//!
//! Every bucket keeps one value per key (history 1). A value must fit the
//! NATS server's `max_payload` (1 MiB by default): a task or config whose
//! value would not is refused by the API with 413.
//!
//! # Who writes what, and what wins
//!
//! * **Agents.** Each collector keeps its own SQLite rows as before; every
//!   registry flush it writes the agents whose rows changed into the
//!   bucket, with an update at the read revision (retried on a conflict).
//!   The collector that holds the agent's live session writes; a newer
//!   session elsewhere (a later `connected_since`, not offline) wins over
//!   an older one, and a collector without the session writes only an entry
//!   it holds itself (its "offline" never covers another collector's
//!   "online"). A collector killed with `kill -9` leaves its agents
//!   `online` until they reconnect elsewhere; reads show an agent silent
//!   for the stale period as `stale`.
//! * **Tasks.** `POST` adds the token to the agent's open list (update at
//!   the read revision: two collectors posting at once both land, or one
//!   retries; the bound is checked on the list read) and then creates the
//!   task (`create`: a token is never overwritten). Every collector watches
//!   the tasks bucket and hands a new task to the agent if it holds its
//!   session; on Hello the collector reads the open list and sends every
//!   task without a result. "Sent" and the result are updates at the read
//!   revision; the first result wins (as in SQLite), and the token then
//!   leaves the open list. A task is resent on every Hello until its result
//!   is in the bucket, wherever the agent connects.
//! * **Finished tasks expire.** The result is written with a per-message
//!   TTL of `--nats-task-retention` (the bucket allows TTLs; one made by
//!   an older collector is switched at start), so nats-server removes the
//!   task that long after its result was written: until then
//!   `GET /tasks/{token}` on every collector shows the result, afterwards
//!   404. Open tasks carry no TTL and never expire.
//! * **Configs.** `PUT` puts the config (the last writer wins, as in
//!   SQLite). Every collector watches the bucket into an in-memory copy
//!   (what a Hello sends) and hands a changed config to its live agents.
//!
//! # Bounds
//!
//! The watchers and listings read through ephemeral pull consumers (no
//! acks, in memory, gone 30 s after their last fetch), at most
//! [`LIST_FETCH`] messages per fetch, on a NATS connection of their own
//! whose subscriptions hold at most [`SUBSCRIPTION_CAPACITY`] messages
//! (each at most the server's `max_payload`): a fetch never brings more than
//! is read, so nothing is dropped on the way. A watcher whose consumer is
//! gone (NATS restarted) follows again from the revision after the last one
//! it handled (no task is skipped). Task
//! updates from the connections wait in a queue of [`OP_QUEUE`]; one that
//! does not fit is dropped and counted in the log (the task stays open, so
//! it is resent at the next Hello and its result comes again). The open
//! list of an agent holds at most `--nats-max-open-tasks` tokens; the
//! configs copy holds every config (as SQLite sends every config on
//! connect). The tasks bucket holds the open tasks (at most agents x
//! `--nats-max-open-tasks`) and the tasks finished within the last
//! `--nats-task-retention`.
//!
//! # Metrics
//!
//! Every read and write of a key is counted (`kv_reads_total`,
//! `kv_writes_total`) and timed (`kv_micros_total`, `kv_micros_max`, as the
//! sink's `jetstream_publish_micros_*`); revision conflicts, failures,
//! listings, follower restarts, the update queue and the tasks bucket's
//! size (read every [`STATS_EVERY`]) have their own ([`crate::metrics`]).

use crate::config::NatsSettings;
use crate::metrics::Metrics;
use crate::registry::{ConfigRow, TaskRow};
use crate::session::ResultInfo;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::kv::{self, Operation, Store};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Messages a watcher's subscription holds before NATS drops for it.
pub const SUBSCRIPTION_CAPACITY: usize = 64;
/// Task updates ("sent", results) waiting to be written.
pub const OP_QUEUE: usize = 4096;
/// Conflicting updates retried before a write gives up.
const RETRIES: usize = 8;
/// Messages fetched at a time by a listing (below the subscription's capacity).
pub const LIST_FETCH: usize = 50;
/// Longest a follower's fetch waits for news before it asks again.
const FOLLOW_WAIT: Duration = Duration::from_secs(2);
/// Longest a listing (`GET /agents`) may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a shutdown waits for the queued task updates.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);
/// Longest wait for a KV answer or a listing.
const KV_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the tasks bucket's size is read into the metrics.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// The KV key of an agent id or config name: the string itself when it is
/// non-empty and only `A-Z a-z 0-9 _ -`, else `=` and its bytes in
/// lowercase hex. Distinct strings give distinct keys (a plain key never
/// starts with `=`), and every key is a valid single-token KV key.
pub fn key(s: &str) -> String {
    super::subject::plain_or_hex(s, '=')
}

/// A task or config value: compact JSON (which holds no raw newline), a
/// newline, the raw payload.
pub fn encode(meta: &Value, payload: &[u8]) -> Bytes {
    let mut v = serde_json::to_vec(meta).expect("JSON values serialize");
    v.push(b'\n');
    v.extend_from_slice(payload);
    v.into()
}

/// The JSON and the payload of an [`encode`]d value; `None` if it is not one.
pub fn decode(b: &[u8]) -> Option<(Value, &[u8])> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    Some((serde_json::from_slice(&b[..nl]).ok()?, &b[nl + 1..]))
}

fn task_meta(t: &TaskRow, created_at: u64) -> Value {
    json!({
        "token": t.token, "agent_id": t.agent_id, "object_name": t.object_name, "data_type": t.data_type,
        "state": t.state, "sends": t.sends, "result_status": t.result_status, "result_message": t.result_message,
        "created_at": created_at,
    })
}

fn task_from(b: &[u8]) -> Option<(TaskRow, Value)> {
    let (m, payload) = decode(b)?;
    let t = TaskRow {
        token: m["token"].as_str()?.to_string(),
        agent_id: m["agent_id"].as_str()?.to_string(),
        object_name: m["object_name"].as_str()?.to_string(),
        data_type: u32::try_from(m["data_type"].as_u64()?).ok()?,
        payload: payload.to_vec(),
        state: m["state"].as_str()?.to_string(),
        sends: u32::try_from(m["sends"].as_u64()?).ok()?,
        result_status: m["result_status"].as_u64().and_then(|s| u32::try_from(s).ok()),
        result_message: m["result_message"].as_str().map(String::from),
    };
    Some((t, m))
}

fn config_from(b: &[u8]) -> Option<ConfigRow> {
    let (m, payload) = decode(b)?;
    Some(ConfigRow { name: m["name"].as_str()?.to_string(), version: m["version"].as_str()?.to_string(), payload: payload.to_vec() })
}

/// Why a task was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRefused {
    /// The agent has `--nats-max-open-tasks` tasks without a result.
    Full,
    /// The stored task would not fit the NATS server's `max_payload`.
    TooLarge,
    /// The buckets did not answer (NATS down, a timeout, conflicts beyond
    /// the retries).
    Unavailable,
}

impl std::fmt::Display for TaskRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskRefused::Full => "the agent has --nats-max-open-tasks tasks without a result",
            TaskRefused::TooLarge => "the task does not fit the NATS server's max_payload",
            TaskRefused::Unavailable => "the shared registry (JetStream KV) did not answer",
        })
    }
}

/// A queued task update.
enum Op {
    Sent(String),
    Result(String, ResultInfo),
}

/// Where the followers hand what they read: the live sessions of this
/// collector ([`crate::shared::Shared`] implements it). A trait, so that
/// this module does not import the shared state that holds it.
pub trait Sessions: Send + Sync + 'static {
    /// Hands a new task to the agent's session, if this collector holds it.
    fn task(&self, agent: &str, task: TaskRow);
    /// Hands a changed config to every live session.
    fn config(&self, config: ConfigRow);
}

/// The shared registry: four buckets, this collector's name, the configs
/// copy and the queue of task updates.
pub struct Kv {
    ctx: async_nats::jetstream::Context,
    metrics: Arc<Metrics>,
    task_retention: Duration,
    agents: Store,
    tasks: Store,
    open: Store,
    configs: Store,
    name: String,
    max_open_tasks: usize,
    max_value: usize,
    config_copy: Mutex<HashMap<String, ConfigRow>>,
    ops: mpsc::Sender<Op>,
    ops_rx: Mutex<Option<mpsc::Receiver<Op>>>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv").field("name", &self.name).finish_non_exhaustive()
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("JetStream KV: {what}: {e}"))
}

async fn bucket(ctx: &async_nats::jetstream::Context, name: String, replicas: usize, max_value: usize) -> io::Result<Store> {
    if let Ok(s) = ctx.get_key_value(&name).await {
        return Ok(s);
    }
    let cfg = kv::Config { bucket: name.clone(), history: 1, num_replicas: replicas, max_value_size: max_value.min(i32::MAX as usize) as i32, ..Default::default() };
    match ctx.create_key_value(cfg).await {
        Ok(s) => Ok(s),
        // Another collector created it meanwhile.
        Err(e) => ctx.get_key_value(&name).await.map_err(|_| io_err(&format!("creating bucket {name}"), e)),
    }
}

/// Lets the tasks bucket take per-message TTLs (nats-server 2.11 and
/// later), which is how a finished task expires: a bucket made by an older
/// collector is updated in place (existing finished tasks keep no TTL).
async fn allow_ttl(ctx: &async_nats::jetstream::Context, store: &Store) -> io::Result<()> {
    let config = &store.stream.cached_info().config;
    if config.allow_message_ttl {
        return Ok(());
    }
    let config = async_nats::jetstream::stream::Config { allow_message_ttl: true, ..config.clone() };
    ctx.update_stream(config).await.map_err(|e| io_err(&format!("letting bucket {} expire finished tasks (per-message TTL, nats-server 2.11 or later)", store.name), e))?;
    Ok(())
}

/// `/proc/sys/kernel/hostname`, else `collector`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| "collector".into())
}

/// What a KV request is, for the metrics.
#[derive(Debug, Clone, Copy)]
enum Req {
    Read,
    Write,
}

/// Why a write at a revision did not land.
enum WriteFailed {
    /// Another writer changed the key first (or created it): re-read.
    Conflict,
    /// NATS refused or did not answer.
    Failed(String),
}

const NO_ANSWER: &str = "JetStream KV did not answer in time";

/// `f` within [`KV_TIMEOUT`], its error as text (not counted: consumers,
/// not keys).
async fn in_time<T, E: std::fmt::Display>(f: impl std::future::Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(KV_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(NO_ANSWER.into()),
    }
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

impl Kv {
    /// Connects (a connection of its own), creates the buckets if missing.
    /// `agent_port` names this collector by default (`<hostname>:<port>`).
    pub async fn connect(s: &NatsSettings, agent_port: u16, metrics: Arc<Metrics>) -> io::Result<Arc<Kv>> {
        let addrs: Vec<async_nats::ServerAddr> = s.urls.iter().map(|u| u.parse()).collect::<Result<_, _>>().map_err(|e| io_err("server URL", e))?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .connect(addrs)
            .await
            .map_err(|e| io_err("connecting to NATS", e))?;
        let max_value = client.server_info().max_payload.saturating_sub(1024);
        let ctx = async_nats::jetstream::new(client.clone());
        let p = &s.kv_prefix;
        let agents = bucket(&ctx, format!("{p}_AGENTS"), s.replicas, max_value).await?;
        let tasks = bucket(&ctx, format!("{p}_TASKS"), s.replicas, max_value).await?;
        allow_ttl(&ctx, &tasks).await?;
        let open = bucket(&ctx, format!("{p}_OPEN"), s.replicas, max_value).await?;
        let configs = bucket(&ctx, format!("{p}_CONFIGS"), s.replicas, max_value).await?;
        let (ops, ops_rx) = mpsc::channel(OP_QUEUE);
        let name = s.collector_name.clone().unwrap_or_else(|| format!("{}:{agent_port}", hostname()));
        Ok(Arc::new(Kv {
            ctx,
            metrics,
            task_retention: s.task_retention,
            agents,
            tasks,
            open,
            configs,
            name,
            max_open_tasks: s.max_open_tasks,
            max_value,
            config_copy: Mutex::new(HashMap::new()),
            ops,
            ops_rx: Mutex::new(Some(ops_rx)),
        }))
    }

    /// This collector's name in the agents bucket.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long a finished task stays in the tasks bucket.
    pub fn task_retention(&self) -> Duration {
        self.task_retention
    }

    /// Runs one KV request within [`KV_TIMEOUT`], counted and timed in the
    /// metrics (`kv_reads_total` / `kv_writes_total`, `kv_micros_*`).
    async fn timed<T, E>(&self, req: Req, f: impl std::future::Future<Output = Result<T, E>>) -> Result<Result<T, E>, tokio::time::error::Elapsed> {
        let m = &self.metrics;
        Metrics::inc(match req {
            Req::Read => &m.kv_reads_total,
            Req::Write => &m.kv_writes_total,
        });
        let started = Instant::now();
        let r = tokio::time::timeout(KV_TIMEOUT, f).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Metrics::add(&m.kv_micros_total, micros);
        m.kv_micros_max.fetch_max(micros, Ordering::Relaxed);
        r
    }

    /// [`Kv::timed`], every error (counted in `kv_errors_total`) as text.
    async fn within<T, E: std::fmt::Display>(&self, req: Req, f: impl std::future::Future<Output = Result<T, E>>) -> Result<T, String> {
        let r = match self.timed(req, f).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(NO_ANSWER.to_string()),
        };
        if r.is_err() {
            Metrics::inc(&self.metrics.kv_errors_total);
        }
        r
    }

    /// Writes `key` of `store` if its last revision is still `rev` (`None`:
    /// if it has no value), with a per-message TTL if `ttl` is given (the
    /// server then removes the value that long after this write). A
    /// conflict is counted in `kv_conflicts_total`, anything else that went
    /// wrong in `kv_errors_total`.
    async fn write_at(&self, store: &Store, key: &str, value: Bytes, rev: Option<u64>, ttl: Option<Duration>) -> Result<u64, WriteFailed> {
        let r = match (rev, ttl) {
            (None, None) => self.timed(Req::Write, store.create(key, value)).await.map(|r| r.map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string()))),
            (Some(rev), None) => self.timed(Req::Write, store.update(key, value, rev)).await.map(|r| r.map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string()))),
            (rev, Some(ttl)) => {
                // What `Store::update` sends, plus `Nats-TTL` (async-nats has
                // no update with a TTL).
                let subject = format!("{}{key}", store.put_prefix.as_deref().unwrap_or(&store.prefix));
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, rev.unwrap_or(0).to_string().as_str());
                headers.insert(async_nats::header::NATS_MESSAGE_TTL, ttl.as_secs().max(1).to_string().as_str());
                let publish = async { self.ctx.publish_with_headers(subject, headers, value).await?.await.map(|ack| ack.sequence) };
                self.timed(Req::Write, publish)
                    .await
                    .map(|r| r.map_err(|e: async_nats::jetstream::context::PublishError| (e.kind() == async_nats::jetstream::context::PublishErrorKind::WrongLastSequence, e.to_string())))
            }
        };
        match r {
            Ok(Ok(rev)) => Ok(rev),
            Ok(Err((true, _))) => {
                Metrics::inc(&self.metrics.kv_conflicts_total);
                Err(WriteFailed::Conflict)
            }
            Ok(Err((false, e))) => {
                Metrics::inc(&self.metrics.kv_errors_total);
                Err(WriteFailed::Failed(e))
            }
            Err(_) => {
                Metrics::inc(&self.metrics.kv_errors_total);
                Err(WriteFailed::Failed(NO_ANSWER.into()))
            }
        }
    }

    /// Starts the watchers and the task-update writer; they end at shutdown.
    /// Returns once the tasks watcher is in place, so that a task created
    /// after a Hello read the open list is seen by the watcher (the
    /// collector accepts agents only after this).
    pub async fn spawn(self: &Arc<Self>, sessions: Arc<dyn Sessions>, shutdown: watch::Receiver<bool>, tasks: &mut tokio::task::JoinSet<()>) -> io::Result<()> {
        let first = self.follow(&self.tasks, DeliverPolicy::New).await.map_err(|e| io_err("following the tasks bucket", e))?;
        let configs = self.follow(&self.configs, DeliverPolicy::LastPerSubject).await.map_err(|e| io_err("following the configs bucket", e))?;
        let rx = self.ops_rx.lock().unwrap().take().expect("spawned once");
        tasks.spawn(self.clone().write_ops(rx, shutdown.clone()));
        tasks.spawn(self.clone().watch_tasks(sessions.clone(), shutdown.clone(), first));
        tasks.spawn(self.clone().watch_configs(sessions, shutdown.clone(), configs));
        tasks.spawn(self.clone().task_stats(shutdown));
        Ok(())
    }

    /// Reads the tasks bucket's size into `kv_task_entries` and
    /// `kv_task_bytes` every [`STATS_EVERY`] (from the stream's leader: one
    /// request); ends at shutdown.
    async fn task_stats(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(STATS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! { _ = every.tick() => {}, _ = stop.changed() => return }
            match in_time(self.tasks.stream.get_info()).await {
                Ok(info) => {
                    self.metrics.kv_task_entries.store(info.state.messages, Ordering::Relaxed);
                    self.metrics.kv_task_bytes.store(info.state.bytes, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(error = %e, "JetStream KV: reading the tasks bucket's size failed"),
            }
        }
    }

    // ---- agents ----

    /// Writes `snapshot` (the agent as the local registry shows it) into the
    /// agents bucket by the rules in the module docs; `live_here` if this
    /// collector holds the agent's session now.
    pub async fn publish_agent(&self, id: &str, mut snapshot: Value, live_here: bool) -> Result<(), String> {
        let k = key(id);
        snapshot["collector"] = self.name.clone().into();
        for _ in 0..RETRIES {
            let entry = self.within(Req::Read, self.agents.entry(k.clone())).await?;
            let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
                match self.write_at(&self.agents, &k, serde_json::to_vec(&snapshot).unwrap().into(), None, None).await {
                    Ok(_) => return Ok(()),
                    Err(_) => continue,
                }
            };
            let old: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
            let held_here = old["collector"].as_str() == Some(self.name.as_str());
            if !live_here && !held_here {
                return Ok(());
            }
            let newer_elsewhere = !held_here && old["status"] != "offline" && u(&old["connected_since"]) > u(&snapshot["connected_since"]);
            if newer_elsewhere {
                return Ok(());
            }
            let mut v = snapshot.clone();
            if let (Some(a), Some(b)) = (u(&old["first_seen"]), u(&v["first_seen"])) {
                v["first_seen"] = a.min(b).into();
            }
            if let (Some(a), Some(b)) = (u(&old["last_seen"]), u(&v["last_seen"])) {
                v["last_seen"] = a.max(b).into();
            }
            if v["last_heartbeat"]["at"].is_null() && !old["last_heartbeat"].is_null() {
                v["last_heartbeat"] = old["last_heartbeat"].clone();
            }
            if v["plugins"].as_array().is_none_or(|p| p.is_empty()) && old["plugins"].is_array() {
                v["plugins"] = old["plugins"].clone();
            }
            match self.write_at(&self.agents, &k, serde_json::to_vec(&v).unwrap().into(), Some(entry.revision), None).await {
                Ok(_) => return Ok(()),
                Err(WriteFailed::Conflict) => continue,
                Err(WriteFailed::Failed(e)) => return Err(e),
            }
        }
        Err(format!("agent {id}: more than {RETRIES} conflicting updates"))
    }

    /// `status` as a reader sees it: `online` silent since before
    /// `stale_before_ms` reads `stale`.
    fn as_read(mut a: Value, stale_before_ms: u64) -> Value {
        if a["status"] == "online" && u(&a["last_seen"]).is_some_and(|l| l < stale_before_ms) {
            a["status"] = "stale".into();
        }
        a
    }

    /// One agent; `None` if unknown.
    pub async fn agent(&self, id: &str, stale_before_ms: u64) -> Result<Option<Value>, String> {
        let v = self.within(Req::Read, self.agents.get(key(id))).await?;
        Ok(v.and_then(|b| serde_json::from_slice(&b).ok()).map(|a| Self::as_read(a, stale_before_ms)))
    }

    /// Every agent, by id.
    pub async fn agents(&self, stale_before_ms: u64) -> Result<Vec<Value>, String> {
        let mut out: Vec<Value> = self.last_values(&self.agents).await?.into_iter().filter_map(|(_, b)| serde_json::from_slice(&b).ok()).map(|a| Self::as_read(a, stale_before_ms)).collect();
        out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        Ok(out)
    }

    /// The latest value of every key of `store` (tombstones left out),
    /// through an ephemeral pull consumer (last per subject, no acks) read
    /// in fetches of [`LIST_FETCH`]: a pull is never more than the
    /// subscription holds, so nothing is dropped on the way (an ordered
    /// push consumer falling behind would stall until its heartbeat).
    async fn last_values(&self, store: &Store) -> Result<Vec<(String, Bytes)>, String> {
        Metrics::inc(&self.metrics.kv_listings_total);
        let consumer = self.follow(store, DeliverPolicy::LastPerSubject).await?;
        let mut out = Vec::new();
        let read = async {
            if consumer.cached_info().num_pending == 0 {
                return Ok(());
            }
            loop {
                let mut batch = consumer.fetch().max_messages(LIST_FETCH).expires(KV_TIMEOUT).messages().await.map_err(|e| e.to_string())?;
                let mut got = 0;
                while let Some(m) = batch.next().await {
                    let m = m.map_err(|e| e.to_string())?;
                    got += 1;
                    let pending = m.info().map_err(|e| e.to_string())?.pending;
                    let op = m.headers.as_ref().and_then(|h| h.get("KV-Operation")).map(|v| v.as_str().to_string());
                    if op.is_none() {
                        if let Some(k) = m.subject.strip_prefix(store.prefix.as_str()) {
                            out.push((k.to_string(), m.payload.clone()));
                        }
                    }
                    if pending == 0 {
                        return Ok(());
                    }
                }
                if got == 0 {
                    return Err("a KV listing stalled".to_string());
                }
            }
        };
        let r = tokio::time::timeout(LIST_TIMEOUT, read).await;
        let name = consumer.cached_info().name.clone();
        let _ = in_time(store.stream.delete_consumer(&name)).await;
        let r = match r {
            Ok(Ok(())) => Ok(out),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("listing a KV bucket took too long".into()),
        };
        if r.is_err() {
            Metrics::inc(&self.metrics.kv_errors_total);
        }
        r
    }

    /// True if the agents bucket has the agent.
    pub async fn knows(&self, id: &str) -> Result<bool, String> {
        Ok(self.within(Req::Read, self.agents.get(key(id))).await?.is_some())
    }

    // ---- tasks ----

    /// Queues a new task: its token into the agent's open list (refused
    /// when full), then the task itself.
    pub async fn create_task(&self, t: &TaskRow, now_ms: u64) -> Result<(), TaskRefused> {
        let value = encode(&task_meta(t, now_ms), &t.payload);
        if value.len() > self.max_value {
            return Err(TaskRefused::TooLarge);
        }
        let unavailable = |e: String| {
            tracing::warn!(error = %e, "JetStream KV: queueing a task failed");
            TaskRefused::Unavailable
        };
        self.edit_open(&t.agent_id, |list| {
            if list.len() >= self.max_open_tasks {
                return Err(TaskRefused::Full);
            }
            list.push(t.token.clone());
            Ok(())
        })
        .await
        .map_err(|e| e.map_or(TaskRefused::Unavailable, |r| r))?;
        self.within(Req::Write, self.tasks.create(&t.token, value)).await.map_err(unavailable)?;
        Ok(())
    }

    /// Changes the agent's open list with `f` (update at the read revision,
    /// retried on a conflict). `Err(Some(r))`: `f` refused; `Err(None)`: KV.
    async fn edit_open(&self, agent: &str, f: impl Fn(&mut Vec<String>) -> Result<(), TaskRefused>) -> Result<(), Option<TaskRefused>> {
        let k = key(agent);
        for _ in 0..RETRIES {
            let entry = self.within(Req::Read, self.open.entry(k.clone())).await.map_err(|_| None)?;
            let (mut list, rev): (Vec<String>, Option<u64>) = match entry {
                Some(e) if e.operation == Operation::Put => (serde_json::from_slice(&e.value).unwrap_or_default(), Some(e.revision)),
                Some(e) => (Vec::new(), Some(e.revision)),
                None => (Vec::new(), None),
            };
            let before = list.clone();
            f(&mut list).map_err(Some)?;
            if list == before {
                return Ok(());
            }
            let v: Bytes = serde_json::to_vec(&list).unwrap().into();
            match self.write_at(&self.open, &k, v, rev, None).await {
                Ok(_) => return Ok(()),
                Err(WriteFailed::Conflict) => continue,
                Err(WriteFailed::Failed(_)) => return Err(None),
            }
        }
        Err(None)
    }

    /// One task.
    pub async fn task(&self, token: &str) -> Result<Option<TaskRow>, String> {
        if !kv_key_ok(token) {
            return Ok(None);
        }
        Ok(self.within(Req::Read, self.tasks.get(token)).await?.and_then(|b| task_from(&b)).map(|(t, _)| t))
    }

    /// The agent's tasks without a result, oldest first: what is (re)sent
    /// on Hello. Tokens whose task is done or gone leave the open list.
    pub async fn open_tasks(&self, agent: &str) -> Result<Vec<TaskRow>, String> {
        let list: Vec<String> = match self.within(Req::Read, self.open.get(key(agent))).await? {
            Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
            None => return Ok(Vec::new()),
        };
        let mut open = Vec::new();
        let mut closed = Vec::new();
        for token in list {
            match self.task(&token).await? {
                Some(t) if t.state != "done" && t.agent_id == agent => open.push(t),
                _ => closed.push(token),
            }
        }
        if !closed.is_empty() {
            let _ = self.edit_open(agent, |l| {
                l.retain(|t| !closed.contains(t));
                Ok(())
            })
            .await;
        }
        Ok(open)
    }

    /// Queues "task sent" (dropped, with a warning, if the queue is full).
    pub fn task_sent(&self, token: &str) {
        self.queue(Op::Sent(token.to_string()));
    }

    /// Queues a task result of `agent` (the first one is kept).
    pub fn task_result(&self, agent: &str, r: ResultInfo) {
        self.queue(Op::Result(agent.to_string(), r));
    }

    /// Writes a task result of `agent` now (what the queue of
    /// [`Kv::task_result`] does): the first result is kept, and the token
    /// then leaves the agent's open list.
    pub async fn write_result(&self, agent: &str, r: ResultInfo) {
        self.apply(Op::Result(agent.to_string(), r)).await;
    }

    /// Sets `kv_updates_queued` from the queue.
    fn note_queue(&self) {
        let queued = self.ops.max_capacity() - self.ops.capacity();
        self.metrics.kv_updates_queued.store(queued as u64, Ordering::Relaxed);
    }

    fn queue(&self, op: Op) {
        let sent = self.ops.try_send(op).is_ok();
        self.note_queue();
        if !sent {
            Metrics::inc(&self.metrics.kv_updates_dropped_total);
            tracing::warn!("JetStream KV: task update queue full; dropped (the task stays open and is resent at the next Hello)");
        }
    }

    async fn write_ops(self: Arc<Self>, mut rx: mpsc::Receiver<Op>, mut stop: watch::Receiver<bool>) {
        loop {
            let op = tokio::select! {
                op = rx.recv() => match op { Some(op) => { self.note_queue(); op }, None => return },
                _ = stop.changed() => {
                    // What is queued still goes out, within SHUTDOWN_DRAIN.
                    rx.close();
                    let drain = async {
                        while let Some(op) = rx.recv().await {
                            self.apply(op).await;
                        }
                    };
                    if tokio::time::timeout(SHUTDOWN_DRAIN, drain).await.is_err() {
                        tracing::warn!("JetStream KV: task updates not written at shutdown (those tasks stay open and are resent)");
                    }
                    return;
                }
            };
            self.apply(op).await;
        }
    }

    async fn apply(&self, op: Op) {
        let (token, agent) = match &op {
            Op::Sent(t) => (t.clone(), None),
            Op::Result(a, r) => (r.token.clone(), Some(a.clone())),
        };
        if !kv_key_ok(&token) {
            return;
        }
        let done = self.edit_task(&token, |t| match &op {
            Op::Sent(_) if t.state == "done" => false,
            Op::Sent(_) => {
                t.state = "sent".into();
                t.sends = t.sends.saturating_add(1);
                true
            }
            Op::Result(a, r) if t.agent_id == *a && t.state != "done" => {
                t.state = "done".into();
                t.result_status = Some(r.status);
                t.result_message = Some(r.message.clone());
                true
            }
            Op::Result(..) => false,
        });
        match done.await {
            Ok(Some(t)) if t.state == "done" && Some(&t.agent_id) == agent.as_ref() => {
                let _ = self.edit_open(&t.agent_id, |l| {
                    l.retain(|x| *x != token);
                    Ok(())
                })
                .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%token, error = %e, "JetStream KV: task update not written (the task stays open)"),
        }
    }

    /// Changes a task with `f` (false: leave it) at the read revision,
    /// retried on a conflict; the task as it is afterwards.
    async fn edit_task(&self, token: &str, f: impl Fn(&mut TaskRow) -> bool) -> Result<Option<TaskRow>, String> {
        for _ in 0..RETRIES {
            let Some(entry) = self.within(Req::Read, self.tasks.entry(token.to_string())).await?.filter(|e| e.operation == Operation::Put) else { return Ok(None) };
            let Some((mut t, meta)) = task_from(&entry.value) else { return Ok(None) };
            if !f(&mut t) {
                return Ok(Some(t));
            }
            let created_at = u(&meta["created_at"]).unwrap_or(0);
            let v = encode(&task_meta(&t, created_at), &t.payload);
            // A finished task expires --nats-task-retention after its
            // result is written; nothing rewrites it (a result or "sent"
            // for a done task changes nothing).
            let ttl = (t.state == "done").then_some(self.task_retention);
            match self.write_at(&self.tasks, token, v, Some(entry.revision), ttl).await {
                Ok(_) => return Ok(Some(t)),
                Err(WriteFailed::Conflict) => continue,
                Err(WriteFailed::Failed(e)) => return Err(e),
            }
        }
        Err(format!("more than {RETRIES} conflicting updates"))
    }

    /// An ephemeral pull consumer over every key of `store` from `policy`
    /// on (no acks; gone 30 s after its last fetch).
    async fn follow(&self, store: &Store, policy: DeliverPolicy) -> Result<PullConsumer, String> {
        let r = in_time(store.stream.create_consumer(pull::Config {
            deliver_policy: policy,
            filter_subject: format!("{}>", store.prefix),
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        }))
        .await;
        if r.is_err() {
            Metrics::inc(&self.metrics.kv_errors_total);
        }
        r
    }

    /// Follows `store` from `first` (or `policy` after a failure, where the
    /// revision to resume at is given) and calls `each` with every
    /// (revision, key, value) of a put, in order, at most [`LIST_FETCH`]
    /// fetched at a time; ends at shutdown. After a failure (NATS restarted:
    /// the consumer is gone) it follows again from the revision after the
    /// last one handled.
    async fn follow_forever(&self, store: &Store, first: PullConsumer, resume: impl Fn(Option<u64>) -> DeliverPolicy, mut stop: watch::Receiver<bool>, mut each: impl FnMut(&str, Bytes)) {
        let mut consumer = Some(first);
        let mut next: Option<u64> = None;
        loop {
            let c = match consumer.take() {
                Some(c) => c,
                None => match self.follow(store, resume(next)).await {
                    Ok(c) => {
                        Metrics::inc(&self.metrics.kv_follow_restarts_total);
                        c
                    }
                    Err(e) => {
                        tracing::warn!(bucket = %store.name, error = %e, "JetStream KV: following the bucket failed; retrying");
                        tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => continue, _ = stop.changed() => return }
                    }
                },
            };
            loop {
                let fetch = c.fetch().max_messages(LIST_FETCH).expires(FOLLOW_WAIT).messages();
                let mut batch = match tokio::select! { b = fetch => b, _ = stop.changed() => return } {
                    Ok(b) => b,
                    Err(_) => break,
                };
                let mut failed = false;
                loop {
                    let m = tokio::select! { m = batch.next() => m, _ = stop.changed() => return };
                    let Some(m) = m else { break };
                    let Ok(m) = m else {
                        failed = true;
                        break;
                    };
                    let Ok(info) = m.info() else { continue };
                    next = Some(info.stream_sequence + 1);
                    let deleted = m.headers.as_ref().and_then(|h| h.get("KV-Operation")).is_some();
                    if !deleted {
                        if let Some(k) = m.subject.strip_prefix(store.prefix.as_str()) {
                            each(k, m.payload.clone());
                        }
                    }
                }
                if failed {
                    break;
                }
            }
            tracing::debug!(bucket = %store.name, "JetStream KV: following the bucket again");
            tokio::select! { _ = tokio::time::sleep(Duration::from_millis(200)) => {}, _ = stop.changed() => return }
        }
    }

    /// Hands every new task (state queued, never sent) to the agent if this
    /// collector holds its session.
    async fn watch_tasks(self: Arc<Self>, sessions: Arc<dyn Sessions>, stop: watch::Receiver<bool>, first: PullConsumer) {
        let resume = |next: Option<u64>| next.map_or(DeliverPolicy::New, |start_sequence| DeliverPolicy::ByStartSequence { start_sequence });
        self.follow_forever(&self.tasks, first, resume, stop, |_, value| {
            if let Some((t, _)) = task_from(&value) {
                if t.state == "queued" && t.sends == 0 {
                    let agent = t.agent_id.clone();
                    sessions.task(&agent, t);
                }
            }
        })
        .await;
    }

    /// Keeps the configs copy and hands a changed config to every live agent.
    async fn watch_configs(self: Arc<Self>, sessions: Arc<dyn Sessions>, stop: watch::Receiver<bool>, first: PullConsumer) {
        let me = self.clone();
        self.follow_forever(&self.configs, first, |_| DeliverPolicy::LastPerSubject, stop, move |_, value| {
            let Some(c) = config_from(&value) else { return };
            let changed = {
                let mut copy = me.config_copy.lock().unwrap();
                let same = copy.get(&c.name).is_some_and(|o| o.version == c.version && o.payload == c.payload);
                if !same {
                    copy.insert(c.name.clone(), c.clone());
                }
                !same
            };
            if changed {
                sessions.config(c);
            }
        })
        .await;
    }

    // ---- configs ----

    /// Stores a config's latest version (the watchers send it out).
    pub async fn put_config(&self, c: &ConfigRow) -> Result<(), TaskRefused> {
        let v = encode(&json!({ "name": c.name, "version": c.version }), &c.payload);
        if v.len() > self.max_value {
            return Err(TaskRefused::TooLarge);
        }
        self.within(Req::Write, self.configs.put(key(&c.name), v)).await.map(|_| ()).map_err(|e| {
            tracing::warn!(error = %e, "JetStream KV: storing a config failed");
            TaskRefused::Unavailable
        })
    }

    /// Every config this collector has seen in the bucket, by name: what is
    /// sent on Hello.
    pub fn configs(&self) -> Vec<ConfigRow> {
        let mut v: Vec<ConfigRow> = self.config_copy.lock().unwrap().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// True if `s` can be a KV key (task tokens from the API path are checked
/// before they are looked up).
fn kv_key_ok(s: &str) -> bool {
    !s.split('.').any(str::is_empty) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_valid() {
        assert_eq!(key("gw-7_a"), "gw-7_a");
        assert_eq!(key("a.b"), "=612e62");
        assert_eq!(key(""), "=");
        assert_ne!(key("=61"), "=61");
        for s in ["x>", "x*", "é", "a\r\nb", "a b", "~"] {
            assert!(kv_key_ok(&key(s)), "{s}");
        }
        assert!(!kv_key_ok("a b") && !kv_key_ok("") && !kv_key_ok(".a") && !kv_key_ok("a.") && !kv_key_ok("a..b") && !kv_key_ok("a*"));
        assert!(kv_key_ok("t18f-2") && kv_key_ok("a.b/c=d"));
    }

    #[test]
    fn values_round_trip() {
        let t = TaskRow {
            token: "t1".into(), agent_id: "a\nb".into(), object_name: "o".into(), data_type: 7, payload: b"x\ny\0".to_vec(),
            state: "queued".into(), sends: 0, result_status: None, result_message: None,
        };
        let v = encode(&task_meta(&t, 5), &t.payload);
        let (back, meta) = task_from(&v).unwrap();
        assert_eq!(back, t);
        assert_eq!(meta["created_at"], 5);
        let c = ConfigRow { name: "n".into(), version: "2".into(), payload: b"\n\n".to_vec() };
        assert_eq!(config_from(&encode(&json!({ "name": "n", "version": "2" }), &c.payload)), Some(c));
        assert!(decode(b"no newline").is_none());
        assert!(task_from(b"{}\nx").is_none());
    }
}

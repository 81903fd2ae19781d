//! The agent registry in SQLite: agents, their plugins, tasks and configs.
//!
//! Writes that come with traffic (a Hello, heartbeats, a disconnect, task
//! results) are queued in memory and applied by [`Registry::flush`] in one
//! transaction per flush interval, so a busy fleet costs one transaction a
//! second, not one per heartbeat. Heartbeats and "last seen" times are
//! coalesced per agent (only the latest is kept), so the queue grows with
//! the number of distinct agents and connection events per interval, not
//! with traffic. Tasks and configs from the API are written at once (the
//! API answers only after they are in the database).
//!
//! Status of an agent: `online` from its Hello, `offline` when its
//! connection ends (and, at start, every agent a previous process left
//! online), `stale` when it is online but silent for the stale period. Rows
//! are never deleted.

use crate::session::{HelloInfo, PluginInfo, ResultInfo};
use agent_core::heartbeat::AgentHeartbeat;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    addresses TEXT NOT NULL,
    status TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    connected_since INTEGER,
    endpoint TEXT,
    last_heartbeat_at INTEGER,
    host_stats TEXT,
    lib_counters TEXT
);
CREATE TABLE IF NOT EXISTS plugins (
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    pid INTEGER NOT NULL,
    status TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (agent_id, name)
);
CREATE TABLE IF NOT EXISTS tasks (
    token TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    object_name TEXT NOT NULL,
    data_type INTEGER NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    sends INTEGER NOT NULL DEFAULT 0,
    result_status INTEGER,
    result_message TEXT,
    result_at INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (agent_id, state);
CREATE TABLE IF NOT EXISTS configs (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    payload BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
";

enum Op {
    Hello(HelloInfo, String, u64),
    Offline(String, u64),
    TaskSent(String, u64),
    Result(String, ResultInfo, u64),
}

#[derive(Default)]
struct Pending {
    ops: Vec<Op>,
    seen: HashMap<String, u64>,
    heartbeats: HashMap<String, (AgentHeartbeat, u64)>,
    plugins: HashMap<(String, String), (PluginInfo, u64)>,
}

/// A task as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskRow {
    /// Token (echoed by the agent's result).
    pub token: String,
    /// Agent it is for.
    pub agent_id: String,
    /// Target: empty/product for the agent, else a plugin.
    pub object_name: String,
    /// Command type.
    pub data_type: u32,
    /// Arguments.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// `queued`, `sent` or `done`.
    pub state: String,
    /// How often it was sent.
    pub sends: u32,
    /// Task status of the result, once done.
    pub result_status: Option<u32>,
    /// Result message, once done.
    pub result_message: Option<String>,
}

/// A config as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// The registry: one SQLite connection and the queue of pending writes.
pub struct Registry {
    db: Mutex<Connection>,
    pending: Mutex<Pending>,
}

fn sql_err(e: rusqlite::Error) -> String {
    e.to_string()
}

impl Registry {
    /// Opens (creating) the database at `path` (`:memory:` works), and
    /// marks agents a previous process left online as offline.
    pub fn open(path: &Path) -> Result<Registry, String> {
        let named = |e: rusqlite::Error| format!("{}: {}", path.display(), sql_err(e));
        let db = Connection::open(path).map_err(named)?;
        db.busy_timeout(std::time::Duration::from_secs(5)).map_err(named)?;
        db.execute_batch(SCHEMA).map_err(named)?;
        db.execute(
            "UPDATE agents SET status = 'offline', connected_since = NULL WHERE status != 'offline'",
            [],
        )
        .map_err(named)?;
        Ok(Registry { db: Mutex::new(db), pending: Mutex::new(Pending::default()) })
    }

    /// Queues the upsert of a Hello's identity, online since `now_ms`,
    /// connected from `endpoint`.
    pub fn hello(&self, h: &HelloInfo, endpoint: String, now_ms: u64) {
        self.pending.lock().unwrap().ops.push(Op::Hello(h.clone(), endpoint, now_ms));
    }

    /// Queues "offline since `now_ms`".
    pub fn offline(&self, agent: &str, now_ms: u64) {
        self.pending.lock().unwrap().ops.push(Op::Offline(agent.to_string(), now_ms));
    }

    /// Notes traffic from the agent (coalesced).
    pub fn seen(&self, agent: &str, now_ms: u64) {
        self.pending.lock().unwrap().seen.insert(agent.to_string(), now_ms);
    }

    /// Queues a heartbeat (only the latest per agent per flush is written).
    pub fn heartbeat(&self, agent: &str, hb: AgentHeartbeat, now_ms: u64) {
        self.pending.lock().unwrap().heartbeats.insert(agent.to_string(), (hb, now_ms));
    }

    /// Queues a plugin heartbeat.
    pub fn plugin(&self, agent: &str, p: PluginInfo, now_ms: u64) {
        self.pending.lock().unwrap().plugins.insert((agent.to_string(), p.name.clone()), (p, now_ms));
    }

    /// Queues "task sent".
    pub fn task_sent(&self, token: &str, now_ms: u64) {
        self.pending.lock().unwrap().ops.push(Op::TaskSent(token.to_string(), now_ms));
    }

    /// Queues a task result (repeats are harmless: the first one is kept).
    pub fn task_result(&self, agent: &str, r: ResultInfo, now_ms: u64) {
        self.pending.lock().unwrap().ops.push(Op::Result(agent.to_string(), r, now_ms));
    }

    /// Writes everything queued in one transaction, then marks online
    /// agents not seen since `stale_before_ms` as stale. Returns how many
    /// queued writes were applied.
    pub fn flush(&self, stale_before_ms: u64) -> Result<usize, String> {
        self.flush_noting(stale_before_ms, &mut std::collections::HashSet::new())
    }

    /// [`Registry::flush`], adding to `touched` the id of every agent with
    /// a Hello, a disconnect, a heartbeat or a plugin heartbeat queued:
    /// what the shared registry in JetStream KV is told. Traffic alone
    /// ("last seen") is not: it would cost a KV write per busy agent per
    /// flush, and the next heartbeat carries the time.
    pub fn flush_noting(&self, stale_before_ms: u64, touched: &mut std::collections::HashSet<String>) -> Result<usize, String> {
        let p = std::mem::take(&mut *self.pending.lock().unwrap());
        for op in &p.ops {
            match op {
                Op::Hello(h, ..) => touched.insert(h.agent_id.clone()),
                Op::Offline(a, _) => touched.insert(a.clone()),
                Op::TaskSent(..) | Op::Result(..) => false,
            };
        }
        touched.extend(p.heartbeats.keys().cloned());
        touched.extend(p.plugins.keys().map(|(a, _)| a.clone()));
        let mut db = self.db.lock().unwrap();
        let tx = db.transaction().map_err(sql_err)?;
        let n = p.ops.len() + p.seen.len() + p.heartbeats.len() + p.plugins.len();
        for op in p.ops {
            match op {
                Op::Hello(h, endpoint, now) => {
                    let addrs = serde_json::to_string(&h.addresses).unwrap();
                    tx.execute(
                        "INSERT INTO agents (id, hostname, product, version, addresses, status, first_seen, last_seen, connected_since, endpoint)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'online', ?6, ?6, ?6, ?7)
                         ON CONFLICT (id) DO UPDATE SET hostname = ?2, product = ?3, version = ?4, addresses = ?5,
                           status = 'online', last_seen = ?6, connected_since = ?6, endpoint = ?7",
                        params![h.agent_id, h.hostname, h.product, h.version, addrs, now as i64, endpoint],
                    )
                    .map_err(sql_err)?;
                }
                Op::Offline(agent, now) => {
                    tx.execute(
                        "UPDATE agents SET status = 'offline', connected_since = NULL, last_seen = MAX(last_seen, ?2) WHERE id = ?1",
                        params![agent, now as i64],
                    )
                    .map_err(sql_err)?;
                }
                Op::TaskSent(token, now) => {
                    tx.execute(
                        "UPDATE tasks SET state = CASE state WHEN 'done' THEN 'done' ELSE 'sent' END, sent_at = ?2, sends = sends + 1 WHERE token = ?1",
                        params![token, now as i64],
                    )
                    .map_err(sql_err)?;
                }
                Op::Result(agent, r, now) => {
                    tx.execute(
                        "UPDATE tasks SET state = 'done', result_status = ?3, result_message = ?4, result_at = ?5
                         WHERE token = ?1 AND agent_id = ?2 AND state != 'done'",
                        params![r.token, agent, r.status, r.message, now as i64],
                    )
                    .map_err(sql_err)?;
                }
            }
        }
        for (agent, now) in p.seen {
            tx.execute(
                "UPDATE agents SET last_seen = MAX(last_seen, ?2), status = CASE status WHEN 'stale' THEN 'online' ELSE status END WHERE id = ?1",
                params![agent, now as i64],
            )
            .map_err(sql_err)?;
        }
        for (agent, (hb, now)) in p.heartbeats {
            tx.execute(
                "UPDATE agents SET last_heartbeat_at = ?2, host_stats = ?3, lib_counters = ?4 WHERE id = ?1",
                params![agent, now as i64, serde_json::to_string(&hb.host).unwrap(), serde_json::to_string(&hb.lib).unwrap()],
            )
            .map_err(sql_err)?;
        }
        for ((agent, name), (pl, now)) in p.plugins {
            tx.execute(
                "INSERT INTO plugins (agent_id, name, version, pid, status, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (agent_id, name) DO UPDATE SET version = ?3, pid = ?4, status = ?5, last_seen = ?6",
                params![agent, name, pl.version, pl.pid, pl.status, now as i64],
            )
            .map_err(sql_err)?;
        }
        tx.execute("UPDATE agents SET status = 'stale' WHERE status = 'online' AND last_seen < ?1", params![stale_before_ms as i64])
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(n)
    }

    /// Every agent, as JSON objects (see [`Registry::agent`]), by id.
    pub fn agents(&self) -> Result<Vec<serde_json::Value>, String> {
        let db = self.db.lock().unwrap();
        let mut st = db.prepare("SELECT id FROM agents ORDER BY id").map_err(sql_err)?;
        let ids: Vec<String> = st.query_map([], |r| r.get(0)).map_err(sql_err)?.collect::<Result<_, _>>().map_err(sql_err)?;
        drop(st);
        ids.iter().map(|id| Self::agent_in(&db, id).map(|a| a.expect("listed agent exists"))).collect()
    }

    /// The latest snapshot of one agent: identity, status, last heartbeat,
    /// plugins. `None` if unknown.
    pub fn agent(&self, id: &str) -> Result<Option<serde_json::Value>, String> {
        Self::agent_in(&self.db.lock().unwrap(), id)
    }

    fn agent_in(db: &Connection, id: &str) -> Result<Option<serde_json::Value>, String> {
        let row = db
            .query_row(
                "SELECT id, hostname, product, version, addresses, status, first_seen, last_seen, connected_since, endpoint,
                        last_heartbeat_at, host_stats, lib_counters FROM agents WHERE id = ?1",
                params![id],
                |r| {
                    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
                        let s: Option<String> = r.get(i)?;
                        Ok(s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(serde_json::Value::Null))
                    };
                    Ok(serde_json::json!({
                        "id": r.get::<_, String>(0)?,
                        "hostname": r.get::<_, String>(1)?,
                        "product": r.get::<_, String>(2)?,
                        "version": r.get::<_, String>(3)?,
                        "addresses": json(4)?,
                        "status": r.get::<_, String>(5)?,
                        "first_seen": r.get::<_, i64>(6)?,
                        "last_seen": r.get::<_, i64>(7)?,
                        "connected_since": r.get::<_, Option<i64>>(8)?,
                        "endpoint": r.get::<_, Option<String>>(9)?,
                        "last_heartbeat": {
                            "at": r.get::<_, Option<i64>>(10)?,
                            "host": json(11)?,
                            "lib": json(12)?,
                        },
                    }))
                },
            )
            .optional()
            .map_err(sql_err)?;
        let Some(mut agent) = row else { return Ok(None) };
        let mut st = db.prepare("SELECT name, version, pid, status, last_seen FROM plugins WHERE agent_id = ?1 ORDER BY name").map_err(sql_err)?;
        let plugins: Vec<serde_json::Value> = st
            .query_map(params![id], |r| {
                Ok(serde_json::json!({
                    "name": r.get::<_, String>(0)?,
                    "version": r.get::<_, String>(1)?,
                    "pid": r.get::<_, u32>(2)?,
                    "status": r.get::<_, String>(3)?,
                    "last_seen": r.get::<_, i64>(4)?,
                }))
            })
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        agent["plugins"] = plugins.into();
        Ok(Some(agent))
    }

    /// How many agents are online, or were last seen at or after
    /// `since_ms` (flushed writes only): the fleet behind the admission
    /// advice. One COUNT over the agents table.
    pub fn recent_agents(&self, since_ms: u64) -> Result<usize, String> {
        let db = self.db.lock().unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM agents WHERE status != 'offline' OR last_seen >= ?1",
            params![since_ms.min(i64::MAX as u64) as i64],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as usize)
        .map_err(sql_err)
    }

    /// True if the agent has ever said Hello (and the Hello was flushed).
    pub fn knows(&self, id: &str) -> Result<bool, String> {
        let db = self.db.lock().unwrap();
        db.query_row("SELECT 1 FROM agents WHERE id = ?1", params![id], |_| Ok(())).optional().map(|o| o.is_some()).map_err(sql_err)
    }

    /// Stores a new task, `queued`.
    pub fn create_task(&self, t: &TaskRow, now_ms: u64) -> Result<(), String> {
        self.db
            .lock()
            .unwrap()
            .execute(
                "INSERT INTO tasks (token, agent_id, object_name, data_type, payload, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
                params![t.token, t.agent_id, t.object_name, t.data_type, t.payload, now_ms as i64],
            )
            .map(|_| ())
            .map_err(sql_err)
    }

    fn task_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRow> {
        Ok(TaskRow {
            token: r.get(0)?,
            agent_id: r.get(1)?,
            object_name: r.get(2)?,
            data_type: r.get(3)?,
            payload: r.get(4)?,
            state: r.get(5)?,
            sends: r.get(6)?,
            result_status: r.get(7)?,
            result_message: r.get(8)?,
        })
    }

    /// One task.
    pub fn task(&self, token: &str) -> Result<Option<TaskRow>, String> {
        let db = self.db.lock().unwrap();
        db.query_row(
            "SELECT token, agent_id, object_name, data_type, payload, state, sends, result_status, result_message FROM tasks WHERE token = ?1",
            params![token],
            Self::task_from,
        )
        .optional()
        .map_err(sql_err)
    }

    /// The agent's tasks without a result, oldest first: what is (re)sent
    /// on connect.
    pub fn open_tasks(&self, agent: &str) -> Result<Vec<TaskRow>, String> {
        let db = self.db.lock().unwrap();
        let mut st = db
            .prepare(
                "SELECT token, agent_id, object_name, data_type, payload, state, sends, result_status, result_message
                 FROM tasks WHERE agent_id = ?1 AND state != 'done' ORDER BY created_at, token",
            )
            .map_err(sql_err)?;
        let rows = st.query_map(params![agent], Self::task_from).map_err(sql_err)?.collect::<Result<_, _>>().map_err(sql_err);
        rows
    }

    /// Stores a config's latest version.
    pub fn put_config(&self, c: &ConfigRow, now_ms: u64) -> Result<(), String> {
        self.db
            .lock()
            .unwrap()
            .execute(
                "INSERT INTO configs (name, version, payload, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET version = ?2, payload = ?3, updated_at = ?4",
                params![c.name, c.version, c.payload, now_ms as i64],
            )
            .map(|_| ())
            .map_err(sql_err)
    }

    /// Every config's latest version, by name: what is sent on connect.
    pub fn configs(&self) -> Result<Vec<ConfigRow>, String> {
        let db = self.db.lock().unwrap();
        let mut st = db.prepare("SELECT name, version, payload FROM configs ORDER BY name").map_err(sql_err)?;
        let rows = st
            .query_map([], |r| Ok(ConfigRow { name: r.get(0)?, version: r.get(1)?, payload: r.get(2)? }))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str) -> HelloInfo {
        HelloInfo {
            agent_id: id.into(), hostname: "h".into(), product: "p".into(), version: "1".into(),
            addresses: vec!["10.0.0.1".into()], auth_token: vec![], first_unacked_seq: 0, next_seq: 0, max_frame: 4096, min_frame: 512,
        }
    }

    #[test]
    fn states_heartbeats_tasks() {
        let r = Registry::open(Path::new(":memory:")).unwrap();
        r.hello(&hello("a"), "127.0.0.1:5".into(), 1000);
        r.hello(&hello("b"), "127.0.0.1:6".into(), 1000);
        let mut hb = AgentHeartbeat::default();
        hb.lib.pushed = 42;
        r.heartbeat("a", hb, 1500);
        r.plugin("a", PluginInfo { name: "scanner".into(), version: "1.0".into(), pid: 7, status: "running" }, 1500);
        r.seen("a", 5000);
        assert!(r.agent("a").unwrap().is_none(), "nothing written before the flush");
        assert_eq!(r.flush(2000).unwrap(), 5);
        let a = r.agent("a").unwrap().unwrap();
        assert_eq!(a["status"], "online");
        assert_eq!(a["last_heartbeat"]["lib"]["pushed"], 42);
        assert_eq!(a["plugins"][0]["status"], "running");
        assert_eq!(r.agent("b").unwrap().unwrap()["status"], "stale", "b silent since 1000 < 2000");
        r.seen("b", 6000);
        r.offline("a", 7000);
        r.flush(2000).unwrap();
        assert_eq!(r.agent("b").unwrap().unwrap()["status"], "online", "traffic ends staleness");
        assert_eq!(r.agent("a").unwrap().unwrap()["status"], "offline");
        assert_eq!(r.agents().unwrap().len(), 2);

        let t = TaskRow {
            token: "t1".into(), agent_id: "a".into(), object_name: "scanner".into(), data_type: 6001, payload: b"x".to_vec(),
            state: String::new(), sends: 0, result_status: None, result_message: None,
        };
        r.create_task(&t, 1).unwrap();
        assert!(r.create_task(&t, 1).is_err(), "tokens are unique");
        assert_eq!(r.open_tasks("a").unwrap().len(), 1);
        r.task_sent("t1", 2);
        r.task_result("b", ResultInfo { token: "t1".into(), status: 0, message: "wrong agent".into() }, 3);
        r.flush(0).unwrap();
        assert_eq!(r.task("t1").unwrap().unwrap().state, "sent");
        r.task_result("a", ResultInfo { token: "t1".into(), status: 1, message: "failed".into() }, 3);
        r.task_result("a", ResultInfo { token: "t1".into(), status: 0, message: "repeat".into() }, 4);
        r.flush(0).unwrap();
        let done = r.task("t1").unwrap().unwrap();
        assert_eq!((done.state.as_str(), done.result_status, done.result_message.as_deref()), ("done", Some(1), Some("failed")));
        assert!(r.open_tasks("a").unwrap().is_empty());
    }

    #[test]
    fn flush_notes_the_agents_the_shared_registry_is_told_of() {
        let r = Registry::open(Path::new(":memory:")).unwrap();
        r.hello(&hello("a"), "127.0.0.1:5".into(), 1);
        r.hello(&hello("b"), "127.0.0.1:6".into(), 1);
        r.hello(&hello("c"), "127.0.0.1:7".into(), 1);
        r.flush(0).unwrap();
        r.seen("a", 2);
        r.heartbeat("b", AgentHeartbeat::default(), 2);
        r.offline("c", 2);
        r.task_sent("t", 2);
        let mut touched = std::collections::HashSet::new();
        r.flush_noting(0, &mut touched).unwrap();
        let mut t: Vec<_> = touched.into_iter().collect();
        t.sort();
        assert_eq!(t, ["b", "c"], "traffic alone and task updates are not agent news");
    }

    #[test]
    fn recent_agents_counts_online_and_recently_seen() {
        let r = Registry::open(Path::new(":memory:")).unwrap();
        assert_eq!(r.recent_agents(0).unwrap(), 0);
        for (id, at) in [("old", 1_000), ("mid", 5_000), ("new", 9_000), ("live", 500)] {
            r.hello(&hello(id), "127.0.0.1:1".into(), at);
        }
        assert_eq!(r.recent_agents(0).unwrap(), 0, "nothing flushed yet");
        r.flush(0).unwrap();
        assert_eq!(r.recent_agents(u64::MAX).unwrap(), 4, "online agents count whenever last seen");
        for (id, at) in [("old", 1_000), ("mid", 5_000), ("new", 9_000)] {
            r.offline(id, at);
        }
        r.flush(0).unwrap();
        assert_eq!(r.recent_agents(0).unwrap(), 4);
        assert_eq!(r.recent_agents(5_000).unwrap(), 3, "mid, new, and live (online)");
        assert_eq!(r.recent_agents(5_001).unwrap(), 2);
        assert_eq!(r.recent_agents(u64::MAX).unwrap(), 1);
    }
}

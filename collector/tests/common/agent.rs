//! A real agent: agent_core's `Driver` over a loopback `TcpStream`.

use agent_core::driver::{Clock, Connector, Driver, RunEnd};
use agent_core::message::task_status;
use agent_core::{Agent, AgentConfig, AgentStats, AgentStorage, Duration, Event, Identity, Instant, OverflowPolicy, PushError, Record};
use agent_core::backoff::BackoffConfig;
use agent_core::ring::RingConfig;
use super::tcp_transport::TcpTransport;
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

/// What the agent does.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub id: String,
    pub token: String,
    /// Records to push (type 2001, text `<id>#<i>` padded with `.`).
    pub records: u32,
    /// Pause between pushes.
    pub every: StdDuration,
    /// Payload length (at least the text's).
    pub payload_len: usize,
    pub ring_bytes: usize,
    pub policy: OverflowPolicy,
    pub heartbeat: Duration,
    pub seed: u64,
    /// Give up waiting for acks this long after the start.
    pub deadline: StdDuration,
    /// Keep running (answering tasks) until this many distinct tasks came.
    pub wait_tasks: usize,
    /// Register a plugin named `scanner`.
    pub plugin: bool,
    /// Set to stop early (e.g. to simulate an agent going away).
    pub stop: Option<Arc<AtomicBool>>,
}

impl AgentSpec {
    pub fn new(id: &str, records: u32) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            token: String::new(),
            records,
            every: StdDuration::from_millis(2),
            payload_len: 16,
            ring_bytes: 64 * 1024,
            policy: OverflowPolicy::RejectNew,
            heartbeat: Duration::from_secs(1),
            seed: 1,
            deadline: StdDuration::from_secs(40),
            wait_tasks: 0,
            plugin: false,
            stop: None,
        }
    }
}

/// What the agent saw.
#[derive(Debug, Default, Clone)]
pub struct AgentReport {
    pub id: String,
    /// Indexes of records the ring took.
    pub accepted: Vec<u32>,
    /// Records the ring refused (Full).
    pub refused: u32,
    pub stats: AgentStats,
    /// Everything acked at the end.
    pub drained: bool,
    /// Distinct task tokens received, in order, with their payloads.
    pub tasks: Vec<(String, String)>,
    /// Configs received (name, version).
    pub configs: Vec<(String, String)>,
    pub connects: u32,
}

pub fn text_of(id: &str, i: u32, len: usize) -> String {
    let mut t = format!("{id}#{i}");
    while t.len() < len {
        t.push('.');
    }
    t
}

/// The host's monotonic clock, in ms since the instant it holds.
pub struct StdClock(pub StdInstant);

impl Clock for StdClock {
    fn now(&mut self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
    fn sleep_until(&mut self, t: Instant) {
        let ms = t.saturating_since(self.now()).as_millis();
        std::thread::sleep(StdDuration::from_millis(ms));
    }
}

pub struct TcpConnector(pub SocketAddr);

impl Connector for TcpConnector {
    type Transport = TcpTransport;
    type Error = std::io::Error;
    fn connect(&mut self, _endpoint: u8) -> Result<TcpTransport, std::io::Error> {
        let s = TcpStream::connect_timeout(&self.0, StdDuration::from_secs(1))?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(StdDuration::from_secs(2)))?;
        Ok(TcpTransport::new(s))
    }
}

/// Runs the agent to its end (everything acked and the tasks it waits for
/// answered, or the deadline), closes, and reports.
pub fn run_agent(spec: AgentSpec, collector: SocketAddr) -> AgentReport {
    let mut ring = vec![0u8; spec.ring_bytes];
    let mut rx = vec![0u8; 8192];
    let mut events = vec![0u8; 4096];
    let mut buf = vec![0u8; 8192 + 64];
    let id = Identity {
        agent_id: &spec.id,
        hostname: "test-host",
        product: "edge-test",
        version: "1.0",
        intranet_ipv4: &[127, 0, 0, 1],
        auth_token: spec.token.as_bytes(),
        ..Identity::default()
    };
    let cfg = AgentConfig {
        ring: RingConfig { max_record: 1024, policy: spec.policy },
        heartbeat_interval: spec.heartbeat,
        flush_interval: Duration::from_millis(20),
        backoff: BackoffConfig { base: Duration::from_millis(100), cap: Duration::from_millis(800), ..BackoffConfig::default() },
        ack_timeout: Duration::from_secs(5),
        rng_seed: spec.seed,
        ..AgentConfig::default()
    };
    let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
    let mut agent = Agent::new(cfg, id, storage).expect("valid agent config");
    if spec.plugin {
        let p = agent.register_plugin("scanner", "1.0").unwrap();
        agent.set_plugin_status(p, 4242, agent_core::PluginStatus::Running).unwrap();
    }
    let start = StdInstant::now();
    let mut driver = Driver::new(agent, StdClock(start), TcpConnector(collector), &mut buf).expect("buffer");
    let mut report = AgentReport { id: spec.id.clone(), ..AgentReport::default() };
    let tasks: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    let configs: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    let connects = Cell::new(0u32);
    let mut on_event = |ev: Event<'_>, agent: &mut Agent<'_>, now: Instant| match ev {
        Event::Connected { .. } => connects.set(connects.get() + 1),
        Event::Task { token, payload, .. } => {
            let p = String::from_utf8_lossy(payload).to_string();
            let _ = agent.task_result(now, token, task_status::OK, &format!("done:{p}"));
            let mut t = tasks.borrow_mut();
            if !t.iter().any(|(t, _)| t == token.as_str()) {
                t.push((token.to_string(), p));
            }
        }
        Event::Shutdown { token } => {
            let _ = agent.task_result(now, token, task_status::FAILED, "no");
        }
        Event::Config { name, version, .. } => configs.borrow_mut().push((name.to_string(), version.to_string())),
        _ => {}
    };
    let deadline = Instant::from_millis(spec.deadline.as_millis() as u64);
    let stopped = || spec.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    for i in 0..spec.records {
        if stopped() {
            break;
        }
        let text = text_of(&spec.id, i, spec.payload_len);
        match driver.push(&Record::new(2001, 1_700_000_000_000 + u64::from(i), text.as_bytes())) {
            Ok(()) => report.accepted.push(i),
            Err(PushError::Full) => report.refused += 1,
            Err(e) => panic!("push: {e:?}"),
        }
        let next = driver.now() + Duration::from_millis(spec.every.as_millis() as u64);
        if driver.run_until(next.min(deadline), |_| false, &mut on_event) == RunEnd::Deadline && driver.now() >= deadline {
            break;
        }
    }
    let wait_tasks = spec.wait_tasks;
    driver.run_until(deadline, |a| stopped() || (a.is_drained() && tasks.borrow().len() >= wait_tasks), &mut on_event);
    report.drained = driver.agent().is_drained();
    driver.close();
    let soon = driver.now() + Duration::from_millis(200);
    driver.run_until(soon, |_| true, &mut on_event);
    report.stats = driver.agent().stats();
    drop(driver);
    report.tasks = tasks.into_inner();
    report.configs = configs.into_inner();
    report.connects = connects.get();
    report
}

//! The driver ([`agent_core::driver`]) against an in-memory transport, the
//! shared test peer (`edge_testkit::peer`) as collector and a simulated clock:
//! time moves only when the driver sleeps, and the collector answers
//! whatever was written each time it does.

use agent_core::driver::{min_buffer_len, BufferTooSmall, DriverStats, RunEnd, TransportLoss};
use agent_core::message::{task_status, CloseCode, TaskResult};
use agent_core::{
    data_type, Agent, AgentConfig, DisconnectReason, AgentStorage, Clock, Connector, Driver, Duration, Event, Identity, Instant, Record,
    RingConfig, StateKind, TaskTarget,
};
use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use edge_testkit::events::Ev;
use edge_testkit::peer::{self, BatchOutcome, Note, Peer, PeerConfig, Push};

const ID: Identity<'static> = Identity {
    agent_id: "agent-1",
    hostname: "host",
    product: "edge",
    version: "0.1",
    intranet_ipv4: &[],
    intranet_ipv6: &[],
    extranet_ipv4: &[],
    extranet_ipv6: &[],
    auth_token: b"secret",
};

type Shared<T> = Rc<RefCell<T>>;

/// One connection: bytes each way, and faults a test can inject.
#[derive(Default)]
struct Pipe {
    to_server: Vec<u8>,
    to_agent: Vec<u8>,
    /// The driver dropped its end.
    dropped: bool,
    fail_read: bool,
    fail_write: bool,
    /// The collector closed: reads return 0 once `to_agent` is empty.
    eof: bool,
}

/// The driver's end of a [`Pipe`]. Reads and writes move small chunks,
/// so frames are split across calls.
struct MockTransport(Shared<Pipe>);

impl ErrorType for MockTransport {
    type Error = ErrorKind;
}

impl Read for MockTransport {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let mut p = self.0.borrow_mut();
        if p.fail_read {
            return Err(ErrorKind::ConnectionReset);
        }
        assert!(!p.to_agent.is_empty() || p.eof, "read with nothing ready would block");
        let n = buf.len().min(p.to_agent.len()).min(37);
        buf[..n].copy_from_slice(&p.to_agent[..n]);
        p.to_agent.drain(..n);
        Ok(n)
    }
}

impl ReadReady for MockTransport {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        let p = self.0.borrow();
        Ok(p.fail_read || p.eof || !p.to_agent.is_empty())
    }
}

impl Write for MockTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let mut p = self.0.borrow_mut();
        if p.fail_write {
            return Err(ErrorKind::BrokenPipe);
        }
        let n = buf.len().min(29);
        p.to_server.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl Drop for MockTransport {
    fn drop(&mut self) {
        self.0.borrow_mut().dropped = true;
    }
}

/// The collector: the test peer on the one connection open at a time,
/// moving bytes between it and the pipe each time the clock moves.
struct Collector {
    peer: Peer<'static>,
    conn: Option<(u64, Shared<Pipe>)>,
    conns: u64,
}

impl Default for Collector {
    fn default() -> Self {
        Collector { peer: peer::leaked(PeerConfig::default(), 2), conn: None, conns: 0 }
    }
}

impl Collector {
    fn connect(&mut self) -> Shared<Pipe> {
        if let Some((id, _)) = self.conn.take() {
            self.peer.release(id);
        }
        let id = self.conns;
        self.conns += 1;
        assert!(self.peer.open(id));
        let pipe = Rc::new(RefCell::new(Pipe::default()));
        self.conn = Some((id, pipe.clone()));
        pipe
    }

    fn step(&mut self) {
        let Some((id, pipe)) = self.conn.clone() else { return };
        let mut p = pipe.borrow_mut();
        let bytes = std::mem::take(&mut p.to_server);
        for note in self.peer.handle_received(id, &bytes) {
            assert!(!matches!(note, Note::ProtocolError(_)), "agent broke the protocol: {note:?}");
            assert!(
                !matches!(note, Note::Batch { outcome: BatchOutcome::Gap, .. }),
                "gap in sequence numbers: {note:?}"
            );
        }
        if let Some(c) = self.peer.conn(id) {
            let d = c.decoder_stats();
            assert_eq!((d.skipped_bytes, d.bad_crc), (0, 0), "agent sent a bad frame");
        }
        let reply = self.peer.transmit_all(id);
        p.to_agent.extend_from_slice(&reply);
        if !self.peer.is_open(id) {
            p.eof = true;
        }
        if p.dropped {
            self.peer.release(id);
            self.conn = None;
        }
    }

    fn pipe(&self) -> Option<Shared<Pipe>> {
        self.conn.as_ref().map(|c| c.1.clone())
    }

    fn records(&self, ty: u32) -> Vec<Vec<u8>> {
        self.peer.agent(ID.agent_id).payloads(ty)
    }

    /// (Hellos, duplicates) seen from the agent.
    fn hellos_dups(&self) -> (u64, u64) {
        let log = self.peer.agent(ID.agent_id);
        (log.hellos, log.dups)
    }
}

#[derive(Default)]
struct World {
    now: u64,
    collector: Collector,
    /// Connect attempts to refuse before accepting.
    refuse: u32,
    sleeps: u64,
    clock_reads: u64,
}

struct SimClock(Shared<World>);

impl Clock for SimClock {
    fn now(&mut self) -> Instant {
        let mut w = self.0.borrow_mut();
        w.clock_reads += 1;
        Instant(w.now)
    }
    fn sleep_until(&mut self, t: Instant) {
        let mut w = self.0.borrow_mut();
        assert!(t.0 > w.now, "asked to sleep for no time: until {t:?} at {}", w.now);
        w.now = t.0;
        w.sleeps += 1;
        w.collector.step();
    }
}

struct SimConnector(Shared<World>);

impl Connector for SimConnector {
    type Transport = MockTransport;
    type Error = ErrorKind;
    fn connect(&mut self, endpoint: u8) -> Result<MockTransport, ErrorKind> {
        assert_eq!(endpoint, 0);
        let mut w = self.0.borrow_mut();
        if w.refuse > 0 {
            w.refuse -= 1;
            return Err(ErrorKind::ConnectionRefused);
        }
        Ok(MockTransport(w.collector.connect()))
    }
}

struct Mem {
    ring: Vec<u8>,
    rx: Vec<u8>,
    events: Vec<u8>,
    buf: Vec<u8>,
}

impl Mem {
    fn new() -> Self {
        Mem { ring: vec![0; 8192], rx: vec![0; 4096], events: vec![0; 4096], buf: vec![0; 4096 + 64] }
    }
}

fn cfg() -> AgentConfig {
    AgentConfig {
        ring: RingConfig { max_record: 384, ..Default::default() },
        batch_max_bytes: 1024,
        window_bytes: 2048,
        rng_seed: 7,
        ..Default::default()
    }
}

fn world() -> Shared<World> {
    Rc::new(RefCell::new(World::default()))
}

fn driver<'m>(m: &'m mut Mem, w: &Shared<World>, cfg: AgentConfig) -> Driver<'m, SimClock, SimConnector> {
    let storage = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let agent = Agent::new(cfg, ID, storage).unwrap();
    Driver::new(agent, SimClock(w.clone()), SimConnector(w.clone()), &mut m.buf).unwrap()
}

fn count(seen: &[Ev], which: impl Fn(&Ev) -> bool) -> usize {
    seen.iter().filter(|e| which(e)).count()
}

#[test]
fn connects_handshakes_and_delivers_in_order() {
    let w = world();
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    for i in 0..20u8 {
        d.push(&Record::new(2001, u64::from(i), &[i])).unwrap();
    }
    let mut seen = Vec::new();
    let end = d.run_until(Instant(5_000), |a| a.is_drained(), |ev, _, _| seen.push(Ev::from(ev)));
    assert_eq!(end, RunEnd::Done);
    let wr = w.borrow();
    let c = &wr.collector;
    assert_eq!(c.records(2001), (0..20u8).map(|i| vec![i]).collect::<Vec<_>>());
    let stored = &c.peer.agent(ID.agent_id).records;
    assert!(stored.values().enumerate().all(|(i, r)| r.seq == i as u64), "dense from 0");
    assert_eq!(c.hellos_dups(), (1, 0));
    assert_eq!(seen[0], Ev::Connect { endpoint: 0 });
    assert_eq!(seen[1], Ev::Connected { endpoint: 0 });
    assert!(seen.iter().any(|e| matches!(e, Ev::Delivered { acked_total: 21, .. })), "{seen:?}");
    let s = d.stats();
    assert_eq!((s.connects, s.connect_errors, s.last_loss), (1, 0, None));
    assert!(s.bytes_written > 0 && s.bytes_read > 0);
    assert!(d.is_open());
    // Handshake after one max_wait, the batch at the flush interval.
    assert!(wr.now <= 150, "took until {}", wr.now);
}

#[test]
fn task_and_config_reach_the_callback_which_answers() {
    let w = world();
    {
        let peer = &mut w.borrow_mut().collector.peer;
        peer.after_accept(Push::task("scanner", 6000, b"scan", "t-1"));
        peer.after_accept(Push::config("rules", "3", b"{}"));
    }
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    let plugin = d.agent_mut().register_plugin("scanner", "1.0").unwrap();
    let mut got = Vec::new();
    let answered = |_: &Agent<'_>| !w.borrow().collector.records(data_type::TASK_RESULT).is_empty();
    let end = d.run_until(Instant(5_000), answered, |ev, agent, now| {
        if let Event::Task { token, .. } = ev {
            agent.task_result(now, token, task_status::OK, "scanned").unwrap();
        }
        if matches!(ev, Event::Task { .. } | Event::Config { .. }) {
            got.push(Ev::from(ev));
        }
    });
    assert_eq!(end, RunEnd::Done);
    let task = Ev::Task {
        target: TaskTarget::Plugin(plugin),
        object_name: "scanner".into(),
        data_type: 6000,
        payload: b"scan".to_vec(),
        token: "t-1".into(),
    };
    let config = Ev::Config { name: "rules".into(), version: "3".into(), payload: b"{}".to_vec() };
    assert_eq!(got, vec![task, config]);
    let results = w.borrow().collector.records(data_type::TASK_RESULT);
    let r: TaskResult<'_> = postcard::from_bytes(&results[0]).unwrap();
    assert_eq!((r.token.as_str(), r.status, r.message.as_str()), ("t-1", task_status::OK, "scanned"));
}

/// Sends 5 records into a collector that loses them, injects `fault`,
/// pushes a sixth record and checks that the driver reconnects and all
/// six arrive, once each.
fn fault_reconnects_and_resends(fault: fn(&mut Pipe), loss: TransportLoss) -> DriverStats {
    let w = world();
    w.borrow_mut().collector.peer.cfg.ignore_batches = true;
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    for i in 0..5u8 {
        d.push(&Record::new(2001, 0, &[i])).unwrap();
    }
    let mut seen = Vec::new();
    d.run_until(Instant(500), |_| false, |ev, _, _| seen.push(Ev::from(ev)));
    assert_eq!(d.agent().ring().inflight_records(), 6, "heartbeat + 5 sent, unacked");
    let first = w.borrow().collector.pipe().unwrap();
    {
        let mut wm = w.borrow_mut();
        wm.collector.peer.cfg.ignore_batches = false;
        fault(&mut first.borrow_mut());
    }
    d.push(&Record::new(2001, 0, &[5])).unwrap();
    let end = d.run_until(Instant(10_000), |a| a.is_drained(), |ev, _, _| seen.push(Ev::from(ev)));
    assert_eq!(end, RunEnd::Done);
    let c = &w.borrow().collector;
    assert_eq!(c.records(2001), (0..6u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(c.hellos_dups(), (2, 0));
    assert!(first.borrow().dropped, "the failed transport was dropped");
    assert_eq!(count(&seen, |e| *e == Ev::disconnect(DisconnectReason::Transport)), 1, "{seen:?}");
    assert_eq!(count(&seen, |e| matches!(e, Ev::Connected { .. })), 2, "{seen:?}");
    let s = d.stats();
    assert_eq!((s.connects, s.last_loss), (2, Some(loss)));
    s
}

#[test]
fn write_error_reconnects_and_resends() {
    let s = fault_reconnects_and_resends(|p| p.fail_write = true, TransportLoss::Write(ErrorKind::BrokenPipe));
    assert_eq!((s.write_errors, s.read_errors, s.eofs), (1, 0, 0));
}

#[test]
fn read_error_reconnects_and_resends() {
    let s = fault_reconnects_and_resends(|p| p.fail_read = true, TransportLoss::Read(ErrorKind::ConnectionReset));
    assert_eq!((s.write_errors, s.read_errors, s.eofs), (0, 1, 0));
}

#[test]
fn eof_reconnects_and_resends() {
    let s = fault_reconnects_and_resends(|p| p.eof = true, TransportLoss::Eof);
    assert_eq!((s.write_errors, s.read_errors, s.eofs), (0, 0, 1));
}

#[test]
fn connect_errors_back_off_then_connect() {
    let w = world();
    w.borrow_mut().refuse = 3;
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    d.push(&Record::new(2001, 0, b"x")).unwrap();
    let mut seen = Vec::new();
    let end = d.run_until(Instant(30_000), |a| a.is_drained(), |ev, _, _| seen.push(Ev::from(ev)));
    assert_eq!(end, RunEnd::Done);
    let s = d.stats();
    assert_eq!((s.connect_errors, s.connects), (3, 1));
    assert_eq!(s.last_loss, Some(TransportLoss::Connect(ErrorKind::ConnectionRefused)));
    assert_eq!(count(&seen, |e| matches!(e, Ev::Connect { .. })), 4, "{seen:?}");
    assert_eq!(count(&seen, |e| *e == Ev::disconnect(DisconnectReason::Transport)), 3, "{seen:?}");
    let wr = w.borrow();
    // Full-jitter backoff: at most 0.5 + 1 + 2 s of waiting.
    assert!(wr.now <= 3_700, "took until {}", wr.now);
    // While refused, the driver sleeps until the backoff timer, not in
    // max_wait steps.
    assert!(wr.sleeps < 40, "{} sleeps", wr.sleeps);
}

#[test]
fn sleeps_instead_of_spinning() {
    let w = world();
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    d.run_until(Instant(60_000), |_| false, |_, _, _| {});
    assert!(d.is_open() && d.agent().state() == StateKind::Connected);
    let (sleeps, reads) = (w.borrow().sleeps, w.borrow().clock_reads);
    // Connected and idle: one wake per max_wait (10 ms), plus timers.
    assert!((5_990..=6_100).contains(&sleeps), "{sleeps} sleeps in 60 s");
    assert!(reads < 20 * sleeps, "{reads} clock reads: polling without sleeping");
    d.set_max_wait(Duration(50));
    d.run_until(Instant(120_000), |_| false, |_, _, _| {});
    let sleeps = w.borrow().sleeps - sleeps;
    assert!((1_190..=1_300).contains(&sleeps), "{sleeps} sleeps in 60 s at max_wait 50 ms");
    assert_eq!(d.stats().connects, 1, "pings kept the idle connection alive");

    // Never connected: wakes only for backoff and heartbeat timers.
    let w = world();
    w.borrow_mut().refuse = u32::MAX;
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    d.run_until(Instant(60_000), |_| false, |_, _, _| {});
    let wr = w.borrow();
    assert!(wr.sleeps < 30, "{} sleeps in 60 s while disconnected", wr.sleeps);
    assert!(d.stats().connect_errors >= 5);
}

#[test]
fn oversized_task_is_answered_dropped() {
    let w = world();
    let big = vec![7u8; 2000];
    w.borrow_mut().collector.peer.after_accept(Push::task("", 6000, &big, "big"));
    let mut m = Mem::new();
    m.buf.truncate(min_buffer_len(1024));
    let mut d = driver(&mut m, &w, cfg());
    let mut tasks = 0;
    let answered = |_: &Agent<'_>| !w.borrow().collector.records(data_type::TASK_RESULT).is_empty();
    let end = d.run_until(Instant(5_000), answered, |ev, _, _| tasks += matches!(ev, Event::Task { .. }) as u32);
    assert_eq!(end, RunEnd::Done);
    assert_eq!(tasks, 0);
    assert_eq!(d.stats().events_too_large, 1);
    let results = w.borrow().collector.records(data_type::TASK_RESULT);
    let r: TaskResult<'_> = postcard::from_bytes(&results[0]).unwrap();
    assert_eq!((r.token.as_str(), r.status), ("big", task_status::DROPPED));
}

#[test]
fn shutdown_task_then_close_sends_close_and_drops_transport() {
    let w = world();
    w.borrow_mut().collector.peer.after_accept(Push::task("", data_type::SHUTDOWN_TASK, b"", "bye"));
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    let asked = Cell::new(false);
    let end = d.run_until(
        Instant(5_000),
        |a| asked.get() && a.is_drained(),
        |ev, agent, now| {
            if let Event::Shutdown { token } = ev {
                agent.task_result(now, token, task_status::OK, "shutting down").unwrap();
                asked.set(true);
            }
        },
    );
    assert_eq!(end, RunEnd::Done);
    let pipe = w.borrow().collector.pipe().unwrap();
    d.close();
    let mut seen = Vec::new();
    let end = d.run_until(Instant(0), |a| a.state() == StateKind::Closed, |ev, _, _| seen.push(Ev::from(ev)));
    assert_eq!(end, RunEnd::Done, "polls once even with a past deadline");
    assert_eq!(seen, vec![Ev::disconnect(DisconnectReason::Shutdown)]);
    assert!(!d.is_open() && pipe.borrow().dropped);
    w.borrow_mut().collector.step();
    let closes: Vec<u16> = w.borrow().collector.peer.closes_received.iter().map(|c| c.1).collect();
    assert_eq!(closes, vec![CloseCode::Shutdown as u16]);
    assert_eq!(w.borrow().collector.records(data_type::TASK_RESULT).len(), 1);
    assert_eq!(d.poll(|_, _, _| {}), None, "closed: no timer, no transport");
}

#[test]
fn callback_may_close_before_the_connect() {
    let w = world();
    let mut m = Mem::new();
    let mut d = driver(&mut m, &w, cfg());
    d.poll(|ev, agent, now| {
        if let Event::Connect { .. } = ev {
            agent.close(now);
        }
    });
    assert_eq!(d.agent().state(), StateKind::Closed);
    assert!(!d.is_open());
    assert_eq!(d.stats().connects, 0);
}

#[test]
fn buffer_too_small_is_refused() {
    let w = world();
    let mut m = Mem::new();
    let storage = AgentStorage { ring: &mut m.ring, rx: &mut m.rx, events: &mut m.events };
    let agent = Agent::new(cfg(), ID, storage).unwrap();
    let r = Driver::new(agent, SimClock(w.clone()), SimConnector(w.clone()), &mut m.buf[..1087]);
    assert_eq!(r.err(), Some(BufferTooSmall { needed: 1088 }));
}

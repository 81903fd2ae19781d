//! A blocking driver: the agent loop, written once, over any
//! [`embedded_io`] transport.
//!
//! [`Agent`] is sans-IO: something must move bytes between it and a
//! transport, keep time, open and close connections and hand events to the
//! application. [`Driver`] does exactly that, in the call order documented
//! in [`crate::agent`], for anything that implements
//! [`embedded_io::Read`] + [`Write`] + [`ReadReady`]: a UART, a smoltcp or
//! embassy socket, a `std::net::TcpStream` through `embedded-io-adapters`.
//! The agent underneath stays sans-IO; the driver only adds the loop.
//!
//! You provide three small things:
//!
//! * a [`Clock`]: a monotonic millisecond [`Instant`] and a way to wait;
//! * a [`Connector`]: opens a transport to endpoint `i` when the agent asks;
//! * a work buffer `&mut [u8]` of at least [`min_buffer_len`] bytes (and
//!   [`Agent::transmit_len`], which counts the Hello), used
//!   for reads, outgoing frames and event copies (the driver allocates
//!   nothing).
//!
//! Then call [`Driver::poll`] from your own loop, or [`Driver::run_until`]
//! to let the driver sleep between polls.
//!
//! # Promises
//!
//! * **Reads never block**: the driver reads only after
//!   [`ReadReady::read_ready`] returned true, and then once per poll.
//! * **No spinning**: [`Driver::run_until`] sleeps whenever no input is
//!   ready and no timer is due, until the agent's next timer, the deadline,
//!   or (while a transport is open) at most [`Driver::max_wait`] later, so
//!   that received bytes are noticed within `max_wait`.
//! * **Every transport failure is a disconnect**: a connect error, a read or
//!   write error, a failed flush or end-of-stream (a read of 0 bytes) drops
//!   the transport and reports [`Agent::handle_disconnected`]; the agent's
//!   backoff decides when to try again, and unacked records are resent on
//!   the next connection.
//! * **Every event reaches the callback**, in order, with `&mut Agent` (so
//!   a task can be answered with [`Agent::task_result`] right there), before
//!   the driver acts on it: `Connect` opens a transport, `Disconnect` sends
//!   what [`Agent::poll_transmit`] still gives (a Close frame) and drops it.
//! * **A transport is open only while the agent is handshaking or
//!   connected**; it is dropped (closed) as soon as the agent leaves those
//!   states.
//! * No allocation, no `unsafe`, no `std`.
//!
//! What may block: [`Connector::connect`], the transport's `write` and
//! `flush`, and [`Clock::sleep_until`]. Bound the first two (a connect
//! timeout, a write timeout that returns an error): while they block, the
//! agent's own timers cannot fire.
//!
//! # Example
//!
//! ```no_run
//! use agent_core::driver::{Clock, Connector, Driver};
//! use agent_core::{Agent, AgentConfig, AgentStorage, Event, Identity, Instant, Record};
//! use agent_core::message::task_status;
//! # use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
//! # struct Uart;
//! # impl ErrorType for Uart { type Error = ErrorKind; }
//! # impl Read for Uart { fn read(&mut self, _: &mut [u8]) -> Result<usize, ErrorKind> { Ok(0) } }
//! # impl ReadReady for Uart { fn read_ready(&mut self) -> Result<bool, ErrorKind> { Ok(false) } }
//! # impl Write for Uart {
//! #     fn write(&mut self, b: &[u8]) -> Result<usize, ErrorKind> { Ok(b.len()) }
//! #     fn flush(&mut self) -> Result<(), ErrorKind> { Ok(()) }
//! # }
//! # fn millis() -> u64 { 0 }
//! # fn wait_for_interrupt_until(_ms: u64) {}
//!
//! struct SysTick;
//! impl Clock for SysTick {
//!     fn now(&mut self) -> Instant { Instant::from_millis(millis()) }
//!     fn sleep_until(&mut self, t: Instant) { wait_for_interrupt_until(t.as_millis()) }
//! }
//!
//! struct Modem;
//! impl Connector for Modem {
//!     type Transport = Uart;
//!     type Error = ErrorKind;
//!     fn connect(&mut self, _endpoint: u8) -> Result<Uart, ErrorKind> { Ok(Uart) }
//! }
//!
//! let (mut ring, mut rx, mut events, mut buf) = ([0u8; 8192], [0u8; 2048], [0u8; 1024], [0u8; 4160]);
//! let id = Identity { agent_id: "dev-42", product: "sensor", ..Default::default() };
//! let storage = AgentStorage { ring: &mut ring, rx: &mut rx, events: &mut events };
//! let mut agent = Agent::new(AgentConfig::default(), id, storage).unwrap();
//! let valve = agent.register_plugin("valve", "1.0").unwrap();
//! let mut driver = Driver::new(agent, SysTick, Modem, &mut buf).unwrap();
//!
//! loop {
//!     driver.push(&Record::new(2001, millis(), b"temp=21.5")).ok();
//!     let next_sample = driver.now() + agent_core::Duration::from_secs(10);
//!     driver.run_until(next_sample, |_| false, |ev, agent, now| {
//!         if let Event::Task { token, .. } = ev {
//!             // ... act on the task, then answer it:
//!             agent.task_result(now, token, task_status::OK, "done").ok();
//!         }
//!     });
//! }
//! ```

use crate::agent::{Agent, StateKind, MAX_TASK_RESULT_LEN};
use crate::events::{Event, TransportError};
use crate::wire::message::task_status;
use crate::record::Record;
use crate::ring::PushError;
use crate::text::Text;
use crate::time::{Duration, Instant};
use core::fmt;
use embedded_io::{Error as _, ErrorKind, Read, ReadReady, Write};

/// Bytes the work buffer needs beyond `batch_max_bytes`: a full Batch frame
/// (17 bytes of framing, up to 30 of batch header) fits with room to spare.
pub const BUFFER_SLACK: usize = 64;

/// The smallest work buffer for an agent with `batch_max_bytes`:
/// `batch_max_bytes + BUFFER_SLACK`. Events (tasks, configurations) are
/// copied into it too, so make it at least as large as the agent's receive
/// buffer if tasks may carry large payloads.
pub const fn min_buffer_len(batch_max_bytes: usize) -> usize {
    batch_max_bytes + BUFFER_SLACK
}

/// Default for [`Driver::max_wait`].
pub const DEFAULT_MAX_WAIT: Duration = Duration(10);

/// The caller's monotonic clock.
pub trait Clock {
    /// The current instant, in milliseconds since any fixed origin. Must
    /// not go backwards (if it does, the agent counts it as no time
    /// passing).
    fn now(&mut self) -> Instant;

    /// Waits until `now() >= t`. Returning earlier is allowed (for example
    /// when a receive interrupt fires): the driver checks again and sleeps
    /// again if nothing is ready. The driver calls it only with `t` later
    /// than the `now()` it last read.
    fn sleep_until(&mut self, t: Instant);
}

/// Opens transports to the agent's endpoints.
pub trait Connector {
    /// The byte stream: blocking reads and writes, plus
    /// [`ReadReady`] so the driver can avoid blocking reads.
    type Transport: Read + Write + ReadReady;
    /// Why a connect failed (use [`embedded_io::ErrorKind`] if you have
    /// nothing better).
    type Error: embedded_io::Error;

    /// Opens a transport to endpoint `endpoint`, an index into your list
    /// of endpoints (below `BackoffConfig::endpoints`). Return once the
    /// transport is ready to carry bytes, or with an error; either way the
    /// agent is told. Blocks the loop while it runs, so bound its time.
    /// Dropping the returned transport must close it.
    fn connect(&mut self, endpoint: u8) -> Result<Self::Transport, Self::Error>;
}

/// How a transport was lost (see [`DriverStats::last_loss`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportLoss {
    /// [`Connector::connect`] failed.
    Connect(ErrorKind),
    /// `read_ready` or `read` failed.
    Read(ErrorKind),
    /// `write` or `flush` failed (a `write` of 0 bytes counts as
    /// [`ErrorKind::WriteZero`]).
    Write(ErrorKind),
    /// The peer closed the stream (a read returned 0 bytes).
    Eof,
}

impl TransportLoss {
    /// The agent's view of this loss, for `Agent::handle_disconnected`.
    pub fn transport_error(&self) -> TransportError {
        let kind = match self {
            TransportLoss::Eof => return TransportError::Closed,
            TransportLoss::Connect(k) | TransportLoss::Read(k) | TransportLoss::Write(k) => *k,
        };
        match kind {
            ErrorKind::ConnectionRefused => TransportError::Refused,
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => TransportError::Reset,
            ErrorKind::TimedOut => TransportError::TimedOut,
            ErrorKind::NotConnected | ErrorKind::AddrNotAvailable => TransportError::Unreachable,
            _ => TransportError::Other,
        }
    }
}

impl fmt::Display for TransportLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportLoss::Connect(k) => write!(f, "connect failed: {k}"),
            TransportLoss::Read(k) => write!(f, "read failed: {k}"),
            TransportLoss::Write(k) => write!(f, "write failed: {k}"),
            TransportLoss::Eof => f.write_str("peer closed the stream"),
        }
    }
}

/// The driver's own counters (the agent keeps its own, see
/// [`Agent::stats`]). All counts are since the driver was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Transports opened.
    pub connects: u64,
    /// Connect attempts that failed.
    pub connect_errors: u64,
    /// Transports dropped because a read (or `read_ready`) failed.
    pub read_errors: u64,
    /// Transports dropped because a write or flush failed.
    pub write_errors: u64,
    /// Transports dropped because the peer closed the stream.
    pub eofs: u64,
    /// Bytes read from transports.
    pub bytes_read: u64,
    /// Bytes written to transports.
    pub bytes_written: u64,
    /// Events too large for the work buffer: not shown to the callback.
    /// A task lost this way is answered with `task_status::DROPPED`.
    pub events_too_large: u64,
    /// The last transport failure, if any.
    pub last_loss: Option<TransportLoss>,
}

/// Why [`Driver::new`] refused its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// The smallest work buffer this agent's configuration needs.
    pub needed: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "driver work buffer too small: needs at least {} bytes", self.needed)
    }
}

/// Why [`Driver::run_until`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The `done` predicate returned true.
    Done,
    /// The clock reached the deadline first.
    Deadline,
}

/// An [`Agent`] with its clock, its connector, the open transport (if any)
/// and a work buffer: the whole agent loop. See the module docs.
pub struct Driver<'a, C: Clock, K: Connector> {
    agent: Agent<'a>,
    clock: C,
    connector: K,
    transport: Option<K::Transport>,
    buf: &'a mut [u8],
    max_wait: Duration,
    stats: DriverStats,
}

/// What the driver does after the callback has seen an event.
#[derive(Clone, Copy)]
enum Action {
    None,
    Connect(u8),
    Close,
}

impl<'a, C: Clock, K: Connector> Driver<'a, C, K> {
    /// A driver for `agent`, with no transport open yet. Nothing happens
    /// until the first [`poll`](Self::poll). Fails when `buf` is shorter
    /// than [`min_buffer_len`] for the agent's configuration or than
    /// [`Agent::transmit_len`] (a full batch or the Hello would never fit).
    pub fn new(agent: Agent<'a>, clock: C, connector: K, buf: &'a mut [u8]) -> Result<Self, BufferTooSmall> {
        let needed = min_buffer_len(agent.config().batch_max_bytes).max(agent.transmit_len());
        if buf.len() < needed {
            return Err(BufferTooSmall { needed });
        }
        Ok(Driver {
            agent,
            clock,
            connector,
            transport: None,
            buf,
            max_wait: DEFAULT_MAX_WAIT,
            stats: DriverStats::default(),
        })
    }

    // ---- getters and commands --------------------------------------------

    /// The agent (state, stats, ring).
    pub fn agent(&self) -> &Agent<'a> {
        &self.agent
    }

    /// The agent, for commands (`push`, `task_result`, `close`,
    /// `register_plugin`, ...). Leave its `handle_*` and `poll_*` methods to
    /// the driver: calling them here would lose frames or events.
    pub fn agent_mut(&mut self) -> &mut Agent<'a> {
        &mut self.agent
    }

    /// The clock.
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }

    /// The connector.
    pub fn connector_mut(&mut self) -> &mut K {
        &mut self.connector
    }

    /// The clock's current instant.
    pub fn now(&mut self) -> Instant {
        self.clock.now()
    }

    /// True while a transport is open.
    pub fn is_open(&self) -> bool {
        self.transport.is_some()
    }

    /// The driver's counters.
    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// Longest sleep while a transport is open (default 10 ms): the worst
    /// added latency before received bytes are handled, when the clock's
    /// `sleep_until` does not wake on received data.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Sets [`max_wait`](Self::max_wait); at least 1 ms is used.
    pub fn set_max_wait(&mut self, d: Duration) {
        self.max_wait = if d < Duration(1) { Duration(1) } else { d };
    }

    /// Pushes a record at the clock's current instant ([`Agent::push`]).
    /// It goes out at a later poll.
    pub fn push(&mut self, rec: &Record<'_>) -> Result<(), PushError> {
        let now = self.clock.now();
        self.agent.push(now, rec)
    }

    /// Closes the agent for good ([`Agent::close`]); the next poll sends the
    /// Close frame and drops the transport.
    pub fn close(&mut self) {
        let now = self.clock.now();
        self.agent.close(now);
    }

    /// Takes the driver apart; an open transport is dropped.
    pub fn into_parts(self) -> (Agent<'a>, C, K) {
        (self.agent, self.clock, self.connector)
    }

    // ---- the loop ----------------------------------------------------------

    /// One iteration of the agent loop, without sleeping:
    ///
    /// 1. `handle_timeout` if the agent's timer is due;
    /// 2. if the transport is open and `read_ready`, one `read` into the work
    ///    buffer, then `handle_received` (an error or EOF is a disconnect);
    /// 3. every frame from `poll_transmit` is written (then one `flush`),
    ///    every event is passed to `on_event(event, agent, now)` and acted
    ///    on; repeated until neither gives anything, so records pushed and
    ///    tasks answered from the callback go out in this same poll.
    ///
    /// Returns when to poll again at the latest: `Some(now)` when more input
    /// may be ready at once, otherwise the agent's next timer or, while a
    /// transport is open, `now + max_wait` if sooner. `None` only when the
    /// agent runs no timer and no transport is open (after
    /// [`Agent::close`]): nothing happens until a command.
    ///
    /// The callback may use any agent command; `now` is the instant the
    /// driver passes to the agent.
    pub fn poll<F>(&mut self, mut on_event: F) -> Option<Instant>
    where
        F: FnMut(Event<'_>, &mut Agent<'a>, Instant),
    {
        let now = self.clock.now();
        if self.agent.poll_timeout().is_some_and(|t| t <= now) {
            self.agent.handle_timeout(now);
        }
        let read = self.read(now);
        loop {
            self.flush();
            if !self.drain_events(&mut on_event) {
                break;
            }
        }
        if self.transport.is_some() && !matches!(self.agent.state(), StateKind::Handshaking | StateKind::Connected) {
            // The agent left the connection without a Disconnect event
            // reaching us (e.g. the callback closed it after Connect).
            self.flush();
            self.transport = None;
        }
        let now = self.clock.now();
        if read {
            return Some(now);
        }
        let gap = self.transport.as_ref().map(|_| now + self.max_wait);
        match (self.agent.poll_timeout(), gap) {
            (Some(t), Some(g)) => Some(t.min(g)),
            (t, g) => t.or(g),
        }
    }

    /// Polls, sleeping in between, until `done(agent)` holds after a poll
    /// or the clock reaches `deadline`. Polls at least once, so a record
    /// just pushed or a close just asked for is acted on even with a
    /// deadline in the past.
    ///
    /// Sleeps (with [`Clock::sleep_until`]) only when [`poll`](Self::poll)
    /// says nothing is ready, never past `deadline`.
    pub fn run_until<D, F>(&mut self, deadline: Instant, mut done: D, mut on_event: F) -> RunEnd
    where
        D: FnMut(&Agent<'a>) -> bool,
        F: FnMut(Event<'_>, &mut Agent<'a>, Instant),
    {
        loop {
            let next = self.poll(&mut on_event);
            if done(&self.agent) {
                return RunEnd::Done;
            }
            let now = self.clock.now();
            if now >= deadline {
                return RunEnd::Deadline;
            }
            let wake = next.map_or(deadline, |t| t.min(deadline));
            if wake > now {
                self.clock.sleep_until(wake);
            }
        }
    }

    // ---- steps ---------------------------------------------------------------

    /// Reads once if the transport is ready; true when something happened
    /// (bytes handled, or the transport lost).
    fn read(&mut self, now: Instant) -> bool {
        let Some(t) = self.transport.as_mut() else { return false };
        let outcome = match t.read_ready() {
            Ok(false) => return false,
            Ok(true) => match t.read(self.buf) {
                Ok(0) => Err(TransportLoss::Eof),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => return false,
                Err(e) => Err(TransportLoss::Read(e.kind())),
            },
            Err(e) => Err(TransportLoss::Read(e.kind())),
        };
        match outcome {
            Ok(n) => {
                self.stats.bytes_read += n as u64;
                self.agent.handle_received(now, &self.buf[..n]);
            }
            Err(loss) => self.lose(loss),
        }
        true
    }

    /// Writes every frame the agent has to send, then flushes once.
    fn flush(&mut self) {
        let failure = 'io: {
            let Some(t) = self.transport.as_mut() else { return };
            let now = self.clock.now();
            let mut wrote = false;
            loop {
                let n = self.agent.poll_transmit(now, self.buf);
                if n == 0 {
                    break;
                }
                if let Err(kind) = write_all(t, &self.buf[..n]) {
                    break 'io TransportLoss::Write(kind);
                }
                self.stats.bytes_written += n as u64;
                wrote = true;
            }
            if !wrote {
                return;
            }
            match t.flush() {
                Ok(()) => return,
                Err(e) => TransportLoss::Write(e.kind()),
            }
        };
        self.lose(failure);
    }

    /// Drops the transport after a failure and tells the agent.
    fn lose(&mut self, loss: TransportLoss) {
        self.transport = None;
        match loss {
            TransportLoss::Connect(_) => self.stats.connect_errors += 1,
            TransportLoss::Read(_) => self.stats.read_errors += 1,
            TransportLoss::Write(_) => self.stats.write_errors += 1,
            TransportLoss::Eof => self.stats.eofs += 1,
        }
        self.stats.last_loss = Some(loss);
        let now = self.clock.now();
        self.agent.handle_disconnected(now, loss.transport_error());
    }

    /// Hands every queued event to the callback, then acts on it. True when
    /// there was at least one.
    fn drain_events<F>(&mut self, on_event: &mut F) -> bool
    where
        F: FnMut(Event<'_>, &mut Agent<'a>, Instant),
    {
        let mut any = false;
        loop {
            let now = self.clock.now();
            // Copy the event out of the agent's queue into the work buffer,
            // so the callback can have the agent and the event at once.
            let copied = {
                let Some(ev) = self.agent.poll_event() else { break };
                any = true;
                copy_event(&ev, self.buf).ok_or_else(|| TooLarge::of(&ev))
            };
            let ev = match copied {
                Ok(ev) => ev,
                Err(lost) => {
                    self.stats.events_too_large += 1;
                    lost.answer(&mut self.agent, now);
                    continue;
                }
            };
            let action = match ev {
                Event::Connect { endpoint } => Action::Connect(endpoint),
                Event::Disconnect { .. } => Action::Close,
                _ => Action::None,
            };
            on_event(ev, &mut self.agent, now);
            match action {
                Action::None => {}
                Action::Connect(endpoint) => self.open(endpoint),
                Action::Close => {
                    self.flush();
                    self.transport = None;
                }
            }
        }
        any
    }

    /// Opens a transport for a `Connect` event (unless the callback already
    /// moved the agent on) and reports the outcome.
    fn open(&mut self, endpoint: u8) {
        self.transport = None;
        if self.agent.state() != StateKind::Connecting {
            return;
        }
        match self.connector.connect(endpoint) {
            Ok(t) => {
                self.transport = Some(t);
                self.stats.connects += 1;
                let now = self.clock.now();
                self.agent.handle_connected(now);
            }
            Err(e) => self.lose(TransportLoss::Connect(e.kind())),
        }
    }
}

impl<C: Clock, K: Connector> fmt::Debug for Driver<'_, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("agent", &self.agent)
            .field("open", &self.transport.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

/// `write` until all of `buf` is written. Unlike `Write::write_all`, a
/// write of 0 bytes is an error (not a panic) and interrupted writes are
/// retried.
fn write_all<W: Write>(w: &mut W, mut buf: &[u8]) -> Result<(), ErrorKind> {
    while !buf.is_empty() {
        match w.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero),
            Ok(n) => buf = &buf[n.min(buf.len())..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.kind()),
        }
    }
    Ok(())
}

/// `ev` with its strings and bytes copied into `buf`, or `None` when they
/// do not fit.
fn copy_event<'b>(ev: &Event<'_>, buf: &'b mut [u8]) -> Option<Event<'b>> {
    let mut rest = buf;
    Some(match *ev {
        Event::Connect { endpoint } => Event::Connect { endpoint },
        Event::Disconnect { reason } => Event::Disconnect { reason },
        Event::Connected { endpoint } => Event::Connected { endpoint },
        Event::Task { target, object_name, data_type, payload, token } => Event::Task {
            target,
            object_name: put_str(&mut rest, object_name)?,
            data_type,
            payload: put(&mut rest, payload)?,
            token: put_str(&mut rest, token)?,
        },
        Event::Shutdown { token } => Event::Shutdown { token: put_str(&mut rest, token)? },
        Event::Config { name, version, payload } => Event::Config {
            name: put_str(&mut rest, name)?,
            version: put_str(&mut rest, version)?,
            payload: put(&mut rest, payload)?,
        },
        Event::Delivered { acked_total, first_unacked_seq } => Event::Delivered { acked_total, first_unacked_seq },
        Event::GaveUp => Event::GaveUp,
    })
}

/// Copies `bytes` to the front of `rest` and moves `rest` past them.
fn put<'b>(rest: &mut &'b mut [u8], bytes: &[u8]) -> Option<&'b [u8]> {
    if rest.len() < bytes.len() {
        return None;
    }
    let (head, tail) = core::mem::take(rest).split_at_mut(bytes.len());
    head.copy_from_slice(bytes);
    *rest = tail;
    Some(head)
}

fn put_str<'b>(rest: &mut &'b mut [u8], s: Text<'_>) -> Option<Text<'b>> {
    // A copy of valid UTF-8 is valid UTF-8: this never fails.
    Text::from_utf8(put(rest, s.as_bytes())?)
}

/// What is kept of an event too large to copy: a task's token, so the task
/// can still be answered.
struct TooLarge {
    token: [u8; MAX_TASK_RESULT_LEN],
    len: usize,
    is_task: bool,
}

impl TooLarge {
    fn of(ev: &Event<'_>) -> Self {
        let mut lost = TooLarge { token: [0; MAX_TASK_RESULT_LEN], len: 0, is_task: false };
        if let Event::Task { token, .. } | Event::Shutdown { token } = ev {
            if let Some(dst) = lost.token.get_mut(..token.len()) {
                dst.copy_from_slice(token.as_bytes());
                lost.len = token.len();
                lost.is_task = true;
            }
        }
        lost
    }

    fn answer(&self, agent: &mut Agent<'_>, now: Instant) {
        if !self.is_task {
            return;
        }
        if let Some(token) = Text::from_utf8(&self.token[..self.len]) {
            let _ = agent.task_result(now, token, task_status::DROPPED, "task too large for the driver buffer");
        }
    }
}

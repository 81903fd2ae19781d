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
use crate::message::task_status;
use crate::record::Record;
use crate::ring::PushError;
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

fn put_str<'b>(rest: &mut &'b mut [u8], s: &str) -> Option<&'b str> {
    // A copy of valid UTF-8 is valid UTF-8: this never fails.
    core::str::from_utf8(put(rest, s.as_bytes())?).ok()
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
        if let Ok(token) = core::str::from_utf8(&self.token[..self.len]) {
            let _ = agent.task_result(now, token, task_status::DROPPED, "task too large for the driver buffer");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The driver against an in-memory transport, a scripted collector and a
    //! simulated clock: time moves only when the driver sleeps, and the
    //! collector answers whatever was written each time it does.

    use super::*;
    use crate::decoder::{Feed, FrameDecoder};
    use crate::message::{Accept, Ack, CloseCode, Config, Message, Pong, Task, TaskResult};
    use crate::{data_type, AgentConfig, AgentStorage, Identity, RingConfig, TaskTarget};
    use embedded_io::ErrorType;
    use std::cell::{Cell, RefCell};
    use std::format;
    use std::rc::Rc;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

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

    fn encode(m: Message<'_>) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        let n = m.encode(0, &mut b).unwrap();
        b.truncate(n);
        b
    }

    /// A collector that stores records in sequence order, acks each batch,
    /// answers Pings, and sends scripted frames after the next Accept.
    #[derive(Default)]
    struct Collector {
        conn: Option<Shared<Pipe>>,
        /// Records stored: (seq, data type, payload).
        stored: Vec<(u64, u32, Vec<u8>)>,
        next_seq: u64,
        duplicates: u64,
        /// Ignore batches (no store, no ack), as if lost in transit.
        blackhole: bool,
        /// Frames sent after the next Accept.
        after_accept: Vec<Vec<u8>>,
        hellos: u32,
        closes: Vec<u16>,
    }

    impl Collector {
        fn step(&mut self) {
            let Some(pipe) = self.conn.clone() else { return };
            let mut p = pipe.borrow_mut();
            while p.to_server.len() >= 13 {
                let total = u32::from_le_bytes(p.to_server[5..9].try_into().unwrap()) as usize + 17;
                if p.to_server.len() < total {
                    break;
                }
                let bytes: Vec<u8> = p.to_server.drain(..total).collect();
                let mut store = vec![0u8; total];
                let mut dec = FrameDecoder::new(&mut store);
                let Feed::Frame { frame, .. } = dec.feed(&bytes) else { panic!("agent sent a bad frame") };
                for reply in self.on_message(Message::decode(&frame).unwrap()) {
                    p.to_agent.extend_from_slice(&reply);
                }
            }
            if p.dropped {
                self.conn = None;
            }
        }

        fn on_message(&mut self, msg: Message<'_>) -> Vec<Vec<u8>> {
            match msg {
                Message::Hello(_) => {
                    self.hellos += 1;
                    let mut out = vec![encode(Message::Accept(Accept { next_seq: self.next_seq, max_frame: 4096 }))];
                    out.append(&mut self.after_accept);
                    out
                }
                Message::Batch(b) if !self.blackhole => {
                    for (i, r) in b.iter().enumerate() {
                        let r = r.unwrap();
                        let seq = b.first_seq + i as u64;
                        if seq < self.next_seq {
                            self.duplicates += 1;
                        } else {
                            assert_eq!(seq, self.next_seq, "gap in sequence numbers");
                            self.stored.push((seq, r.data_type, r.payload.to_vec()));
                            self.next_seq = seq + 1;
                        }
                    }
                    vec![encode(Message::Ack(Ack { up_to: b.first_seq + u64::from(b.count) - 1 }))]
                }
                Message::Ping(p) => vec![encode(Message::Pong(Pong { nonce: p.nonce }))],
                Message::Close(c) => {
                    self.closes.push(c.code);
                    vec![]
                }
                _ => vec![],
            }
        }

        fn records(&self, ty: u32) -> Vec<Vec<u8>> {
            self.stored.iter().filter(|r| r.1 == ty).map(|r| r.2.clone()).collect()
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
            let pipe = Rc::new(RefCell::new(Pipe::default()));
            w.collector.conn = Some(pipe.clone());
            Ok(MockTransport(pipe))
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

    fn count(seen: &[String], prefix: &str) -> usize {
        seen.iter().filter(|e| e.starts_with(prefix)).count()
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
        let end = d.run_until(Instant(5_000), |a| a.is_drained(), |ev, _, _| seen.push(format!("{ev:?}")));
        assert_eq!(end, RunEnd::Done);
        let wr = w.borrow();
        let c = &wr.collector;
        assert_eq!(c.records(2001), (0..20u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert!(c.stored.iter().enumerate().all(|(i, r)| r.0 == i as u64), "dense from 0");
        assert_eq!((c.hellos, c.duplicates), (1, 0));
        assert_eq!(seen[0], "Connect { endpoint: 0 }");
        assert_eq!(seen[1], "Connected { endpoint: 0 }");
        assert!(seen.iter().any(|e| e.starts_with("Delivered { acked_total: 21")), "{seen:?}");
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
        w.borrow_mut().collector.after_accept = vec![
            encode(Message::Task(Task { object_name: "scanner", data_type: 6000, payload: b"scan", token: "t-1" })),
            encode(Message::Config(Config { name: "rules", version: "3", payload: b"{}" })),
        ];
        let mut m = Mem::new();
        let mut d = driver(&mut m, &w, cfg());
        let plugin = d.agent_mut().register_plugin("scanner", "1.0").unwrap();
        let mut got = Vec::new();
        let answered = |_: &Agent<'_>| !w.borrow().collector.records(data_type::TASK_RESULT).is_empty();
        let end = d.run_until(Instant(5_000), answered, |ev, agent, now| match ev {
            Event::Task { target, payload, token, .. } => {
                got.push(format!("task {target:?} {}", String::from_utf8_lossy(payload)));
                agent.task_result(now, token, task_status::OK, "scanned").unwrap();
            }
            Event::Config { name, version, payload } => got.push(format!("config {name} {version} {payload:?}")),
            _ => {}
        });
        assert_eq!(end, RunEnd::Done);
        assert_eq!(got, vec![format!("task {:?} scan", TaskTarget::Plugin(plugin)), "config rules 3 [123, 125]".into()]);
        let results = w.borrow().collector.records(data_type::TASK_RESULT);
        let r: TaskResult<'_> = postcard::from_bytes(&results[0]).unwrap();
        assert_eq!((r.token, r.status, r.message), ("t-1", task_status::OK, "scanned"));
    }

    /// Sends 5 records into a collector that loses them, injects `fault`,
    /// pushes a sixth record and checks that the driver reconnects and all
    /// six arrive, once each.
    fn fault_reconnects_and_resends(fault: fn(&mut Pipe), loss: TransportLoss) -> DriverStats {
        let w = world();
        w.borrow_mut().collector.blackhole = true;
        let mut m = Mem::new();
        let mut d = driver(&mut m, &w, cfg());
        for i in 0..5u8 {
            d.push(&Record::new(2001, 0, &[i])).unwrap();
        }
        let mut seen = Vec::new();
        d.run_until(Instant(500), |_| false, |ev, _, _| seen.push(format!("{ev:?}")));
        assert_eq!(d.agent().ring().inflight_records(), 6, "heartbeat + 5 sent, unacked");
        let first = w.borrow().collector.conn.clone().unwrap();
        {
            let mut wm = w.borrow_mut();
            wm.collector.blackhole = false;
            fault(&mut first.borrow_mut());
        }
        d.push(&Record::new(2001, 0, &[5])).unwrap();
        let end = d.run_until(Instant(10_000), |a| a.is_drained(), |ev, _, _| seen.push(format!("{ev:?}")));
        assert_eq!(end, RunEnd::Done);
        let c = &w.borrow().collector;
        assert_eq!(c.records(2001), (0..6u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert_eq!((c.hellos, c.duplicates), (2, 0));
        assert!(first.borrow().dropped, "the failed transport was dropped");
        assert_eq!(count(&seen, "Disconnect { reason: Transport }"), 1, "{seen:?}");
        assert_eq!(count(&seen, "Connected"), 2, "{seen:?}");
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
        let end = d.run_until(Instant(30_000), |a| a.is_drained(), |ev, _, _| seen.push(format!("{ev:?}")));
        assert_eq!(end, RunEnd::Done);
        let s = d.stats();
        assert_eq!((s.connect_errors, s.connects), (3, 1));
        assert_eq!(s.last_loss, Some(TransportLoss::Connect(ErrorKind::ConnectionRefused)));
        assert_eq!(count(&seen, "Connect {"), 4, "{seen:?}");
        assert_eq!(count(&seen, "Disconnect { reason: Transport }"), 3, "{seen:?}");
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
        w.borrow_mut().collector.after_accept =
            vec![encode(Message::Task(Task { object_name: "", data_type: 6000, payload: &big, token: "big" }))];
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
        assert_eq!((r.token, r.status), ("big", task_status::DROPPED));
    }

    #[test]
    fn shutdown_task_then_close_sends_close_and_drops_transport() {
        let w = world();
        w.borrow_mut().collector.after_accept = vec![encode(Message::Task(Task {
            object_name: "",
            data_type: data_type::SHUTDOWN_TASK,
            payload: b"",
            token: "bye",
        }))];
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
        let pipe = w.borrow().collector.conn.clone().unwrap();
        d.close();
        let mut seen = Vec::new();
        let end = d.run_until(Instant(0), |a| a.state() == StateKind::Closed, |ev, _, _| seen.push(format!("{ev:?}")));
        assert_eq!(end, RunEnd::Done, "polls once even with a past deadline");
        assert_eq!(seen, vec!["Disconnect { reason: Shutdown }"]);
        assert!(!d.is_open() && pipe.borrow().dropped);
        w.borrow_mut().collector.step();
        assert_eq!(w.borrow().collector.closes, vec![CloseCode::Shutdown as u16]);
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
}

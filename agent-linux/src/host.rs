//! [`Host`]: the agent with its own I/O on Linux, in two shapes.
//!
//! * **Its own thread**: [`Host::start`] spawns the loop; [`Host::stop`]
//!   drains and joins it; [`Host::wait`] joins a loop that a signal stops.
//! * **The caller's loop**: watch [`Host::fd`] for readable, wake up no
//!   later than [`Host::next_timeout`], and call [`Host::process`].
//!
//! In both, [`Host::push`] and [`Host::task_result`] work from any thread:
//! a push that makes the agent's next deadline earlier than the one the
//! loop sleeps on writes the wake-up fd, so the record leaves within the
//! flush interval without the caller doing anything. The handler runs on
//! the loop's thread, with no lock held.

use crate::clock;
use crate::config::{HostConfig, HostError};
use crate::engine::{Engine, LoopStats, StopReport, TOKEN_SOCKET, TOKEN_WAKE};
use crate::event::{EventCopy, HostEvent};
use crate::signal;
use crate::wake::Wake;
use agent_core::{AgentStats, Duration, Instant, Record, StateKind};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The application's side of the loop: called on the loop thread for
/// every [`HostEvent`], with no lock held (it may push, answer tasks or ask
/// for a stop through `host`). It should return quickly.
pub trait Handler: Send {
    /// One event.
    fn on_event(&mut self, host: &Host, event: &HostEvent<'_>);
}

impl<F: FnMut(&Host, &HostEvent<'_>) + Send> Handler for F {
    fn on_event(&mut self, host: &Host, event: &HostEvent<'_>) {
        self(host, event)
    }
}

/// What [`Host::process`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Running: call `process` again when the fd is readable or at `next`
    /// (`None`: only when the fd is readable).
    Running {
        /// The next timeout, on the agent's clock ([`crate::clock::monotonic`]).
        next: Option<Instant>,
    },
    /// The clean stop completed.
    Stopped(StopReport),
}

/// The agent on Linux: a cheap handle (`Clone`, `Send`, `Sync`); every
/// clone is the same agent. The loop (own thread or the caller's) keeps
/// running until [`Host::stop`] (or a signal, when opted in).
#[derive(Clone)]
pub struct Host {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Mutex<Engine>,
    /// Held by whoever runs a turn: the handler and the event copy.
    turn: Mutex<Turn>,
    wake: Wake,
    epoll: Epoll,
    stopping: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    drain_timeout: Duration,
    handle_signals: bool,
}

struct Turn {
    handler: Box<dyn Handler>,
    copy: EventCopy,
}

impl Host {
    /// A host for `cfg`, not yet running: every buffer is allocated here,
    /// and every unworkable setting refused. Nothing connects until the
    /// loop runs (`start`, or the first `process`).
    pub fn new(cfg: HostConfig, handler: impl Handler + 'static) -> Result<Host, HostError> {
        let engine = Engine::new(&cfg)?;
        let wake = Wake::new().map_err(HostError::System)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(HostError::System)?;
        epoll.add(wake.fd(), EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_WAKE)).map_err(HostError::System)?;
        if cfg.handle_signals && !signal::install(wake.raw()) {
            return Err(HostError::SignalsTaken);
        }
        Ok(Host {
            shared: Arc::new(Shared {
                engine: Mutex::new(engine),
                turn: Mutex::new(Turn { handler: Box::new(handler), copy: EventCopy::new(cfg.rx_bytes) }),
                wake,
                epoll,
                stopping: AtomicBool::new(false),
                thread: Mutex::new(None),
                drain_timeout: cfg.drain_timeout,
                handle_signals: cfg.handle_signals,
            }),
        })
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.shared.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- any thread ------------------------------------------------------

    /// Queues a record timestamped with the wall clock (Unix ms).
    pub fn push(&self, data_type: u32, payload: &[u8]) -> Result<(), HostError> {
        self.push_at(data_type, clock::wall_ms(), payload)
    }

    /// Queues a record with the caller's timestamp. Refused once a stop
    /// began ([`HostError::Stopping`]); a full ring or an oversized record
    /// is refused and counted by the agent.
    pub fn push_at(&self, data_type: u32, timestamp_ms: u64, payload: &[u8]) -> Result<(), HostError> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(HostError::Stopping);
        }
        let now = clock::monotonic();
        let mut e = self.engine();
        e.agent.push(now, &Record::new(data_type, timestamp_ms, payload))?;
        self.wake_if_earlier(e);
        Ok(())
    }

    /// Answers a task (`token` from [`HostEvent::Task`] or
    /// [`HostEvent::Shutdown`]); works while stopping, so a shutdown task
    /// can be answered.
    pub fn task_result(&self, token: &str, status: u32, message: &str) -> Result<(), HostError> {
        let now = clock::monotonic();
        let mut e = self.engine();
        e.agent.task_result(now, token, status, message)?;
        self.wake_if_earlier(e);
        Ok(())
    }

    /// Wakes the loop when the agent's next deadline is now earlier than
    /// the one it sleeps on (one eventfd write per flush, not per record).
    fn wake_if_earlier(&self, mut e: MutexGuard<'_, Engine>) {
        let Some(sleeping) = e.sleep_until else { return };
        // A record can only bring the Flush timer forward, and it runs only
        // while Connected (agent_core::agent::Timer): skip the timer table
        // otherwise.
        if e.agent.state() != StateKind::Connected {
            return;
        }
        if e.agent.poll_timeout().is_some_and(|d| d < sleeping) {
            e.sleep_until = None;
            drop(e);
            self.shared.wake.wake();
        }
    }

    /// The agent's counters.
    pub fn stats(&self) -> AgentStats {
        self.engine().agent.stats()
    }

    /// Runs `f` on the agent, under the lock pushes take (for getters the
    /// host does not offer; keep it short).
    pub fn with_agent<R>(&self, f: impl FnOnce(&agent_core::Agent<'static>) -> R) -> R {
        f(&self.engine().agent)
    }

    /// The loop's own counters (wake-ups, deferred timeouts, ...).
    pub fn loop_stats(&self) -> LoopStats {
        self.engine().loop_stats
    }

    /// The session's state.
    pub fn state(&self) -> StateKind {
        self.engine().agent.state()
    }

    /// Starts the clean stop without waiting: no more pushes, pending
    /// records sent at once, Close after everything is acked or `drain`
    /// passed. The loop (own thread or caller's) completes it.
    pub fn begin_stop(&self, drain: Duration) {
        if !self.shared.stopping.swap(true, Ordering::AcqRel) {
            let mut e = self.engine();
            let now = clock::monotonic();
            e.stop_at = Some(now + drain);
            e.sleep_until = None;
        }
        self.shared.wake.wake();
    }

    // ---- shape 1: its own thread -----------------------------------------

    /// Runs the loop on a thread of its own until the stop completes.
    pub fn start(&self) -> Result<(), HostError> {
        let mut t = self.shared.thread.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_some() || self.engine().report.is_some() {
            return Err(HostError::AlreadyStarted);
        }
        let host = self.clone();
        let handle = std::thread::Builder::new()
            .name("edge-agent".into())
            .spawn(move || host.run())
            .map_err(|e| HostError::System(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        *t = Some(handle);
        Ok(())
    }

    fn run(&self) {
        loop {
            let timeout = {
                let mut e = self.engine();
                let now = clock::monotonic();
                e.next_wake(now).map(|d| d.saturating_since(now).as_millis())
            };
            let t = match timeout {
                None => EpollTimeout::NONE,
                Some(ms) => EpollTimeout::try_from(ms.min(i32::MAX as u64)).unwrap_or(EpollTimeout::MAX),
            };
            if let Progress::Stopped(_) = self.turn(t) {
                return;
            }
        }
    }

    /// Stops the own thread cleanly: [`Host::begin_stop`] with `drain`,
    /// then waits for the loop to send Close and end.
    /// [`HostError::NotStarted`] (and nothing begun) without an own thread:
    /// in the caller's loop, use [`Host::begin_stop`] and keep processing.
    pub fn stop(&self, drain: Duration) -> Result<StopReport, HostError> {
        if self.shared.thread.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Err(HostError::NotStarted);
        }
        self.begin_stop(drain);
        self.wait()
    }

    /// Waits until the own thread ends (after a stop, e.g. one a signal
    /// began) and reports what stayed unacked.
    pub fn wait(&self) -> Result<StopReport, HostError> {
        let handle = self.shared.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else { return Err(HostError::NotStarted) };
        let _ = handle.join();
        self.engine().report.ok_or(HostError::NotStarted)
    }

    // ---- shape 2: the caller's loop ----------------------------------------

    /// The fd to watch for readable (an epoll set over the socket and the
    /// wake-up fd); when it is, call [`Host::process`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.epoll.0.as_fd()
    }

    /// The latest time to call [`Host::process`] even if the fd stays quiet
    /// (`None`: no timer runs); on [`clock::monotonic`].
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut e = self.engine();
        e.next_wake(clock::monotonic())
    }

    /// Milliseconds until [`Host::next_timeout`] (-1: none), for `poll` /
    /// `epoll_wait` / an event library's timer.
    pub fn next_timeout_ms(&self) -> i32 {
        let now = clock::monotonic();
        match self.next_timeout() {
            None => -1,
            Some(t) => t.saturating_since(now).as_millis().min(i32::MAX as u64) as i32,
        }
    }

    /// Does everything due now, without waiting: reads, timers, writes,
    /// handler calls. Call it when the fd is readable or the timeout came.
    pub fn process(&self) -> Progress {
        self.turn(EpollTimeout::ZERO)
    }

    /// Waits for the epoll set at most `timeout`, then runs one turn.
    fn turn(&self, timeout: EpollTimeout) -> Progress {
        let mut turn = self.shared.turn.lock().unwrap_or_else(|p| p.into_inner());
        let mut events = [EpollEvent::empty(); 4];
        let n = self.shared.epoll.wait(&mut events, timeout).unwrap_or(0);
        let mut ready = EpollFlags::empty();
        let mut woken = false;
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_WAKE => woken |= self.shared.wake.drain(),
                TOKEN_SOCKET => ready |= ev.events(),
                _ => {}
            }
        }
        if self.shared.handle_signals && signal::requested() && !self.shared.stopping.load(Ordering::Acquire) {
            self.begin_stop(self.shared.drain_timeout);
            self.shared.wake.drain();
        }
        let Turn { handler, copy } = &mut *turn;
        {
            let mut e = self.engine();
            e.loop_stats.wakeups += 1;
            e.loop_stats.woken_by_push += u64::from(woken);
            e.sleep_until = None;
        }
        loop {
            let now = clock::monotonic();
            let copied = self.engine().turn(&self.shared.epoll, now, ready, copy);
            ready = EpollFlags::empty();
            if !copied {
                break;
            }
            if let Some(ev) = copy.get() {
                handler.on_event(self, &ev);
            }
        }
        let mut e = self.engine();
        let now = clock::monotonic();
        if let Some(r) = e.report {
            if self.shared.handle_signals {
                signal::restore(self.shared.wake.raw());
            }
            return Progress::Stopped(r);
        }
        Progress::Running { next: e.next_wake(now) }
    }
}

impl core::fmt::Debug for Host {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Host").field("state", &self.state()).finish()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.handle_signals {
            signal::restore(self.wake.raw());
        }
    }
}

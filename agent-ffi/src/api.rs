//! The `ea_agent_*` entry points: init, commands, inputs, outputs, getters.
//!
//! Every function here goes through `handle::with` (NULL, alignment and
//! init checks, the agent's lock, the panic boundary) and writes its outputs
//! only on success. Time-taking functions come in two forms: `now_ms`, a
//! 64-bit monotonic millisecond instant, and `_tick`, a wrapping 32-bit
//! millisecond tick (`HAL_GetTick()`) that the agent extends itself. Use one
//! form per agent.

use crate::args;
use crate::config::{ea_config, LockHooks};
use crate::event::{ea_event, transport_error_from_c};
use crate::handle::{self, ea_agent, State};
use crate::identity::ea_identity;
use crate::intake::{self, ea_intake};
use crate::result::{code, ea_result};
use crate::stats::{ea_host_stats, ea_state, ea_stats};
use agent_core::{Agent, AgentStorage, Instant, PluginId, PluginStatus, Record};

/// `ea_agent_poll_timeout`'s deadline when no timer runs (closed agent).
pub const EA_NEVER: u64 = u64::MAX;
/// `ea_agent_timeout_delay`'s delay when no timer runs.
pub const EA_NEVER_DELAY: u32 = u32::MAX;

/// A plugin's status, for `ea_agent_set_plugin_status`. Numbers are fixed.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_plugin_status {
    /// Being started.
    EA_PLUGIN_STARTING = 0,
    /// Up.
    EA_PLUGIN_RUNNING = 1,
    /// Being stopped.
    EA_PLUGIN_STOPPING = 2,
    /// Not running.
    EA_PLUGIN_STOPPED = 3,
    /// Failed.
    EA_PLUGIN_ERROR = 4,
}

/// The caller's time, in one of the two forms.
#[derive(Clone, Copy)]
enum Now {
    Ms(u64),
    Tick(u32),
}

impl State {
    fn now(&mut self, t: Now) -> Instant {
        match t {
            Now::Ms(ms) => Instant(ms),
            Now::Tick(tick) => self.ticks.instant(tick),
        }
    }
}

/// Ranges `[a, a+alen)` and `[b, b+blen)` share a byte.
fn overlap(a: *const u8, alen: usize, b: *const u8, blen: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    alen > 0 && blen > 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

/// Initializes an agent in `agent` (`agent_size` bytes, normally
/// `sizeof(ea_agent)`; at least `ea_agent_storage_size()`, aligned to
/// `EA_AGENT_STORAGE_ALIGN`). `config` and `identity` are copied; the
/// identity's bytes, and `ring`, `rx` and `events` (the send ring, the
/// receive buffer and the event queue) **must stay valid, and must not be
/// touched by the caller, until `ea_agent_deinit`**. The four memory areas
/// must not overlap. `rx_len` is the largest frame accepted (announced to
/// the server); `events_len` at least `EA_MIN_EVENT_QUEUE`.
///
/// Returns `EA_OK`, or: `EA_NULL_PARAMETER`, `EA_STORAGE_MISALIGNED`,
/// `EA_STORAGE_TOO_SMALL`, `EA_ALREADY_INITIALIZED` (deinit first),
/// `EA_INVALID_ARGUMENT` (overlapping buffers, bad policy, half lock hooks),
/// `EA_INVALID_UTF8` (identity strings), or an `EA_CONFIG_*` result
/// (`EA_CONFIG_DROP_OLDEST_NOT_BUILT`: `EA_OVERFLOW_DROP_OLDEST` in a
/// library built without it, as the documented firmware build is). On
/// failure the storage is left as it was.
///
/// The first `ea_agent_handle_timeout` (due at once) asks for a connection
/// to endpoint 0.
///
/// Pointers: `agent` points to `agent_size` writable bytes aligned to
/// `EA_AGENT_STORAGE_ALIGN`; `config` and `identity` to readable structs
/// (copied; the identity's bytes are kept); `ring`, `rx`, `events` to
/// `ring_len`, `rx_len`, `events_len` writable bytes. The identity's bytes
/// and the three buffers stay valid and untouched by the caller until
/// `ea_agent_deinit`. NULL anywhere: `EA_NULL_PARAMETER`, storage
/// unchanged.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ea_agent_init(
    agent: *mut ea_agent,
    agent_size: usize,
    config: *const ea_config,
    identity: *const ea_identity,
    ring: *mut u8,
    ring_len: usize,
    rx: *mut u8,
    rx_len: usize,
    events: *mut u8,
    events_len: usize,
) -> ea_result {
    let r = crate::panic::guard(|| {
        let p = handle::check_addr(agent)?;
        if agent_size < core::mem::size_of::<handle::Inner>() {
            return Err(ea_result::EA_STORAGE_TOO_SMALL);
        }
        // SAFETY: non-NULL, aligned, large enough (the caller's contract).
        if unsafe { handle::is_live(p) } {
            return Err(ea_result::EA_ALREADY_INITIALIZED);
        }
        // SAFETY: the caller's contract for each pointer.
        let (cfg, id) = unsafe { (args::read(config)?, args::read(identity)?) };
        let areas = [(agent as *const u8, agent_size), (ring as *const u8, ring_len), (rx as *const u8, rx_len), (events as *const u8, events_len)];
        for (i, a) in areas.iter().enumerate() {
            for b in &areas[i + 1..] {
                if overlap(a.0, a.1, b.0, b.1) {
                    return Err(ea_result::EA_INVALID_ARGUMENT);
                }
            }
        }
        let mut core_id = core::mem::MaybeUninit::uninit();
        // SAFETY: the caller promises these outlive the agent ('static
        // from here on) and are not otherwise accessed; checked disjoint.
        let (ring, rx, events, id) = unsafe {
            (args::bytes_mut(ring, ring_len)?, args::bytes_mut(rx, rx_len)?, args::bytes_mut(events, events_len)?, &*id.write_core(&mut core_id)?)
        };
        let mut core_cfg = core::mem::MaybeUninit::uninit();
        let core_cfg = &*cfg.write_core(&mut core_cfg)?;
        let hooks = LockHooks { lock: cfg.lock, unlock: cfg.unlock, userdata: cfg.lock_userdata };
        // SAFETY: checked above. The agent is built in the storage itself.
        unsafe { handle::install(p, hooks, core_cfg, id, AgentStorage { ring, rx, events }) }
    });
    code(r)
}

/// Ends the agent (also a poisoned one): its storage, ring, buffers and
/// identity bytes may be reused afterwards. Records still in the ring are abandoned (check
/// `ea_stats.drained` first for a clean shutdown). No other call on this
/// agent may run concurrently or follow (except a new `ea_agent_init`).
///
/// Pointers: `agent` points to an `ea_agent` (NULL: `EA_NULL_PARAMETER`).
/// No other call on it may run at the same time.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_deinit(agent: *mut ea_agent) -> ea_result {
    // SAFETY: the caller's contract.
    code(unsafe { handle::end(agent) })
}

// ---- commands -------------------------------------------------------------

unsafe fn push(agent: *mut ea_agent, now: Now, data_type: u32, timestamp_ms: u64, payload: *const u8, payload_len: usize) -> ea_result {
    // SAFETY: the caller's contract (forwarded).
    unsafe {
        handle::with(agent, |s| {
            let payload = args::bytes(payload, payload_len)?;
            let now = s.now(now);
            s.agent.push(now, &Record::new(data_type, timestamp_ms, payload)).map_err(ea_result::from)
        })
    }
}

/// Queues a record (copied into the ring) for delivery; works in every
/// state. `EA_RING_FULL` / `EA_RECORD_TOO_LARGE` when refused (counted in
/// the stats). Types 1000-1999 are reserved for the library.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `payload` to `payload_len` readable bytes, copied
/// before the call returns (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_push(
    agent: *mut ea_agent,
    now_ms: u64,
    data_type: u32,
    timestamp_ms: u64,
    payload: *const u8,
    payload_len: usize,
) -> ea_result {
    // SAFETY: forwarded.
    unsafe { push(agent, Now::Ms(now_ms), data_type, timestamp_ms, payload, payload_len) }
}

/// `ea_agent_push` with a 32-bit tick.
///
/// Pointers: as for `ea_agent_push`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_push_tick(
    agent: *mut ea_agent,
    tick: u32,
    data_type: u32,
    timestamp_ms: u64,
    payload: *const u8,
    payload_len: usize,
) -> ea_result {
    // SAFETY: forwarded.
    unsafe { push(agent, Now::Tick(tick), data_type, timestamp_ms, payload, payload_len) }
}

unsafe fn drain(agent: *mut ea_agent, now: Now, intake: *const ea_intake, drained: *mut u32) -> ea_result {
    // SAFETY: the caller's contract (forwarded).
    unsafe {
        handle::with(agent, |s| {
            let q = intake::inner(intake)?;
            let now = s.now(now);
            let n = q.drain(&mut s.agent, now);
            if !drained.is_null() {
                args::write(drained, n);
            }
            Ok(())
        })
    }
}

/// Moves the records waiting in `intake` into the ring (at most one pass
/// over its slots, so a busy producer cannot hold the caller here), in
/// order. With `EA_OVERFLOW_REJECT_NEW` it stops at the first record the
/// ring has no room for, which stays queued for a later drain; a record
/// larger than `max_record` is counted in `dropped_too_large`. Writes
/// the number moved to `*drained` unless it is NULL. Call it from the main
/// loop, e.g. before `ea_agent_handle_timeout`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `intake` to an `ea_intake` set up by
/// `ea_intake_init`; `drained` to a writable `uint32_t`, or NULL.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_drain_intake(agent: *mut ea_agent, now_ms: u64, intake: *const ea_intake, drained: *mut u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe { drain(agent, Now::Ms(now_ms), intake, drained) }
}

/// `ea_agent_drain_intake` with a 32-bit tick.
///
/// Pointers: as for `ea_agent_drain_intake`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_drain_intake_tick(agent: *mut ea_agent, tick: u32, intake: *const ea_intake, drained: *mut u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe { drain(agent, Now::Tick(tick), intake, drained) }
}

unsafe fn task_result(
    agent: *mut ea_agent,
    now: Now,
    token: *const u8,
    token_len: usize,
    status: u32,
    message: *const u8,
    message_len: usize,
) -> ea_result {
    // SAFETY: the caller's contract (forwarded).
    unsafe {
        handle::with(agent, |s| {
            let token = args::str(token, token_len)?;
            let message = args::str(message, message_len)?;
            let now = s.now(now);
            s.agent.task_result(now, token, status, message).map_err(ea_result::from)
        })
    }
}

/// Answers a task: queues a task-result record carrying the task's token
/// (copied from the event), `status` (0 ok, 1 failed) and a UTF-8 message
/// (truncated to 256 bytes at a character boundary).
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `token` and `message` to `token_len` and
/// `message_len` readable bytes, copied (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_task_result(
    agent: *mut ea_agent,
    now_ms: u64,
    token: *const u8,
    token_len: usize,
    status: u32,
    message: *const u8,
    message_len: usize,
) -> ea_result {
    // SAFETY: forwarded.
    unsafe { task_result(agent, Now::Ms(now_ms), token, token_len, status, message, message_len) }
}

/// `ea_agent_task_result` with a 32-bit tick.
///
/// Pointers: as for `ea_agent_task_result`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_task_result_tick(
    agent: *mut ea_agent,
    tick: u32,
    token: *const u8,
    token_len: usize,
    status: u32,
    message: *const u8,
    message_len: usize,
) -> ea_result {
    // SAFETY: forwarded.
    unsafe { task_result(agent, Now::Tick(tick), token, token_len, status, message, message_len) }
}

/// Replaces the credential sent in Hello (a rotating token, a JWT), from
/// the next Hello on: the connection up now and every record in the ring
/// are untouched. The token's bytes **must stay valid until the next
/// `ea_agent_set_auth_token` or `ea_agent_deinit`** (the agent keeps the
/// pointer). `EA_CONFIG_HELLO_TOO_LARGE` when the Hello would no longer fit
/// the transmit buffer prescribed at init (the old token stays).
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `token` to `token_len` readable bytes that stay
/// valid and unchanged until `ea_agent_deinit` or the next
/// `ea_agent_set_auth_token` (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_set_auth_token(agent: *mut ea_agent, token: *const u8, token_len: usize) -> ea_result {
    // SAFETY: the caller's contract; the token is 'static by it.
    unsafe {
        handle::with(agent, |s| {
            let token: &'static [u8] = args::bytes(token, token_len)?;
            Ok(s.agent.set_auth_token(token)?)
        })
    }
}

/// Sends what is pending without waiting for `flush_interval_ms` (within
/// the unacked window): the next `ea_agent_poll_transmit` gives the batch.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_flush_now(agent: *mut ea_agent, now_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Ms(now_ms), |a, now| a.flush_now(now)) }
}

/// `ea_agent_flush_now` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_flush_now_tick(agent: *mut ea_agent, tick: u32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Tick(tick), |a, now| a.flush_now(now)) }
}

/// Pushes a heartbeat record (and the plugin heartbeats) now; the next one
/// follows `heartbeat_interval_ms` later. Nothing happens while CLOSED.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_heartbeat_now(agent: *mut ea_agent, now_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Ms(now_ms), |a, now| a.heartbeat_now(now)) }
}

/// `ea_agent_heartbeat_now` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_heartbeat_now_tick(agent: *mut ea_agent, tick: u32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Tick(tick), |a, now| a.heartbeat_now(now)) }
}

/// Sets the host stats carried by the following heartbeats (copied).
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `stats` to a readable `ea_host_stats` (copied).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_set_host_stats(agent: *mut ea_agent, stats: *const ea_host_stats) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let st = args::read(stats)?;
            st.write_core(s.agent.host_stats_mut());
            Ok(())
        })
    }
}

/// Sets the offset added to the caller's clock to timestamp the agent's own
/// records (heartbeats, task results): pass `wall_clock_ms - now_ms` for
/// Unix-time timestamps. Default 0.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_set_clock_offset(agent: *mut ea_agent, offset_ms: i64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            s.agent.set_clock_offset(offset_ms);
            Ok(())
        })
    }
}

/// Registers a plugin: tasks whose object name is `name` are delivered with
/// `plugin` = its id, and it gets a heartbeat record at every heartbeat.
/// `name` and `version` (UTF-8) **must stay valid until `ea_agent_deinit`**
/// (the agent keeps the pointers). Writes the id to `*id`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `name` and `version` to `name_len` and
/// `version_len` readable bytes that stay valid until the plugin is
/// unregistered or the agent deinitialized; `id` to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_register_plugin(
    agent: *mut ea_agent,
    name: *const u8,
    name_len: usize,
    version: *const u8,
    version_len: usize,
    id: *mut u8,
) -> ea_result {
    // SAFETY: the caller's contract; the names are 'static by it.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(id)?;
            let name: &'static str = args::str(name, name_len)?;
            let version: &'static str = args::str(version, version_len)?;
            let pid = s.agent.register_plugin(name, version)?;
            args::write(out, pid.0);
            Ok(())
        })
    }
}

/// Updates a plugin's process id and `ea_plugin_status` for its next
/// heartbeats.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_set_plugin_status(agent: *mut ea_agent, id: u8, pid: u32, status: u32) -> ea_result {
    let status = match status {
        0 => PluginStatus::Starting,
        1 => PluginStatus::Running,
        2 => PluginStatus::Stopping,
        3 => PluginStatus::Stopped,
        4 => PluginStatus::Error,
        _ => return ea_result::EA_INVALID_ARGUMENT,
    };
    // SAFETY: the caller's contract.
    unsafe { handle::with(agent, |s| Ok(s.agent.set_plugin_status(PluginId(id), pid, status)?)) }
}

/// Removes a plugin; its name and version may be freed afterwards.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_unregister_plugin(agent: *mut ea_agent, id: u8) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { handle::with(agent, |s| Ok(s.agent.unregister_plugin(PluginId(id))?)) }
}

/// Closes for good: a Close frame is queued (if a transport is up), an
/// `EA_EVENT_DISCONNECT` (SHUTDOWN) follows, and nothing reconnects until
/// `ea_agent_reconnect_now`. Records stay in the ring.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_close(agent: *mut ea_agent, now_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Ms(now_ms), |a, now| a.close(now)) }
}

/// `ea_agent_close` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_close_tick(agent: *mut ea_agent, tick: u32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Tick(tick), |a, now| a.close(now)) }
}

/// Leaves GAVE_UP, CLOSED or BACKOFF: the next attempt is due now, with the
/// failure count reset.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_reconnect_now(agent: *mut ea_agent, now_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Ms(now_ms), |a, now| a.reconnect_now(now)) }
}

/// `ea_agent_reconnect_now` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_reconnect_now_tick(agent: *mut ea_agent, tick: u32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Tick(tick), |a, now| a.reconnect_now(now)) }
}

/// Runs a time-taking call that cannot fail.
unsafe fn simple(agent: *mut ea_agent, now: Now, f: impl FnOnce(&mut Agent<'static>, Instant)) -> ea_result {
    // SAFETY: forwarded.
    unsafe {
        handle::with(agent, |s| {
            let now = s.now(now);
            f(&mut s.agent, now);
            Ok(())
        })
    }
}

// ---- inputs ---------------------------------------------------------------

/// The transport asked for by the last `EA_EVENT_CONNECT` is up. Ignored in
/// any state but CONNECTING.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_connected(agent: *mut ea_agent, now_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Ms(now_ms), |a, now| a.handle_connected(now)) }
}

/// `ea_agent_handle_connected` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_connected_tick(agent: *mut ea_agent, tick: u32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Tick(tick), |a, now| a.handle_connected(now)) }
}

unsafe fn received(agent: *mut ea_agent, now: Now, bytes: *const u8, len: usize) -> ea_result {
    // SAFETY: forwarded.
    unsafe {
        handle::with(agent, |s| {
            let bytes = args::bytes(bytes, len)?;
            let now = s.now(now);
            s.agent.handle_received(now, bytes);
            Ok(())
        })
    }
}

/// Bytes arrived on the transport (any chunking; the bytes are consumed
/// before the call returns). Garbage is skipped and counted, never an
/// error.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `bytes` to `len` readable bytes, consumed before
/// the call returns (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_received(agent: *mut ea_agent, now_ms: u64, bytes: *const u8, len: usize) -> ea_result {
    // SAFETY: forwarded.
    unsafe { received(agent, Now::Ms(now_ms), bytes, len) }
}

/// `ea_agent_handle_received` with a 32-bit tick.
///
/// Pointers: as for `ea_agent_handle_received`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_received_tick(agent: *mut ea_agent, tick: u32, bytes: *const u8, len: usize) -> ea_result {
    // SAFETY: forwarded.
    unsafe { received(agent, Now::Tick(tick), bytes, len) }
}

unsafe fn disconnected(agent: *mut ea_agent, now: Now, error: u32) -> ea_result {
    let Some(error) = transport_error_from_c(error) else { return ea_result::EA_INVALID_ARGUMENT };
    // SAFETY: forwarded.
    unsafe { simple(agent, now, |a, now| a.handle_disconnected(now, error)) }
}

/// The transport failed, could not be opened, or was closed by the peer;
/// `error` is an `ea_transport_error` value (`EA_INVALID_ARGUMENT`
/// otherwise). Records in flight will be resent on the next connection.
/// The agent answers with an `EA_EVENT_DISCONNECT` (reason
/// `EA_DISCONNECT_TRANSPORT`) like for any end of a connection, also for a
/// connect that failed: the transport is already gone, nothing to close.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_disconnected(agent: *mut ea_agent, now_ms: u64, error: u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe { disconnected(agent, Now::Ms(now_ms), error) }
}

/// `ea_agent_handle_disconnected` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_disconnected_tick(agent: *mut ea_agent, tick: u32, error: u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe { disconnected(agent, Now::Tick(tick), error) }
}

/// The transport will not take more bytes now (`blocked` true: a write
/// returned EAGAIN / EWOULDBLOCK and the caller holds the unwritten rest of
/// a frame), or takes them again (false: the rest is written). While
/// blocked, `ea_agent_poll_transmit` writes nothing and the deadlines that
/// only a transmit serves stop (the flush of pending records; the idle
/// Ping becomes a liveness check: no frame received for `idle_timeout_ms +
/// pong_timeout_ms` ends the connection with `EA_DISCONNECT_PONG_TIMEOUT`),
/// so `ea_agent_timeout_delay` never says 0 for ever while the socket is
/// full. A loop then waits for "writable, readable or the timeout".
///
/// The rule that bounds the caller's buffer to one frame
/// (`ea_min_transmit_len()` bytes): call `ea_agent_poll_transmit` only once
/// the previous frame is fully written; when a write falls short, keep the
/// rest and call this with true; when the rest is out, call it with false
/// and go on. Ignored (true) unless a connection is up; every new
/// connection starts unblocked. Takes no time and cannot fail but for the
/// handle checks.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_blocked(agent: *mut ea_agent, blocked: bool) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            s.agent.handle_blocked(blocked);
            Ok(())
        })
    }
}

/// Time has passed: fires every timer due at `now_ms`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_timeout(agent: *mut ea_agent, now_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Ms(now_ms), |a, now| a.handle_timeout(now)) }
}

/// `ea_agent_handle_timeout` with a 32-bit tick.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_agent_handle_timeout_tick(agent: *mut ea_agent, tick: u32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { simple(agent, Now::Tick(tick), |a, now| a.handle_timeout(now)) }
}

// ---- outputs --------------------------------------------------------------

unsafe fn transmit(agent: *mut ea_agent, now: Now, out: *mut u8, out_len: usize, written: *mut usize) -> ea_result {
    // SAFETY: forwarded.
    unsafe {
        handle::with(agent, |s| {
            let written = args::out(written)?;
            if out_len < s.agent.transmit_len() {
                return Err(ea_result::EA_BUFFER_TOO_SMALL);
            }
            let buf = args::bytes_mut(out, out_len)?;
            let now = s.now(now);
            let n = s.agent.poll_transmit(now, buf);
            args::write(written, n);
            Ok(())
        })
    }
}

/// Writes the next frame to send into `out` and its length to `*written`;
/// 0 when there is nothing to send now. Call until it writes 0 after every
/// input, and write each frame to the transport. `out_len` must be at least
/// `ea_min_transmit_len()` for this agent's config and identity
/// (`EA_BUFFER_TOO_SMALL` otherwise): then every frame fits.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `out` to `out_len` writable bytes; `written` to a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_poll_transmit(agent: *mut ea_agent, now_ms: u64, out: *mut u8, out_len: usize, written: *mut usize) -> ea_result {
    // SAFETY: forwarded.
    unsafe { transmit(agent, Now::Ms(now_ms), out, out_len, written) }
}

/// `ea_agent_poll_transmit` with a 32-bit tick.
///
/// Pointers: as for `ea_agent_poll_transmit`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_poll_transmit_tick(agent: *mut ea_agent, tick: u32, out: *mut u8, out_len: usize, written: *mut usize) -> ea_result {
    // SAFETY: forwarded.
    unsafe { transmit(agent, Now::Tick(tick), out, out_len, written) }
}

/// Takes the next event into `*event`; `kind == EA_EVENT_NONE` when there
/// is none. Call until NONE after every input (after the transmits). Byte
/// fields borrow the agent's event queue: see `ea_event`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `event` to a writable `ea_event`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_poll_event(agent: *mut ea_agent, event: *mut ea_event) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(event)?;
            // In place (the outer SAFETY: the caller's contract): all-zero
            // is `ea_event::NONE` (a test checks it), so the reference made
            // after the write is to a valid value.
            args::zero(out);
            if let Some(ev) = s.agent.poll_event() {
                (*out).fill(&ev);
            }
            Ok(())
        })
    }
}

/// Writes to `*deadline_ms` the instant (on the caller's `now_ms` clock) by
/// which `ea_agent_handle_timeout` must be called next, or `EA_NEVER` when
/// no timer runs (CLOSED). Does not take a time argument; `_tick` users
/// want `ea_agent_timeout_delay_tick`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `deadline_ms` to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_poll_timeout(agent: *const ea_agent, deadline_ms: *mut u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(deadline_ms)?;
            let deadline = s.agent.poll_timeout();
            s.slept_until = Some(deadline);
            args::write(out, deadline.map_or(EA_NEVER, |t| t.as_millis()));
            Ok(())
        })
    }
}

unsafe fn delay(agent: *const ea_agent, now: Now, delay_ms: *mut u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(delay_ms)?;
            let now = s.now(now);
            let deadline = s.agent.poll_timeout();
            s.slept_until = Some(deadline);
            let d = match deadline {
                None => EA_NEVER_DELAY,
                Some(t) => u32::try_from(t.saturating_since(now).as_millis()).unwrap_or(EA_NEVER_DELAY - 1).min(EA_NEVER_DELAY - 1),
            };
            args::write(out, d);
            Ok(())
        })
    }
}

/// Writes to `*delay_ms` how long from `now_ms` until
/// `ea_agent_handle_timeout` is due: 0 when due already, `EA_NEVER_DELAY`
/// when no timer runs, else at most `EA_NEVER_DELAY - 1`. What an RTOS
/// wait wants.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `delay_ms` to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_timeout_delay(agent: *const ea_agent, now_ms: u64, delay_ms: *mut u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe { delay(agent, Now::Ms(now_ms), delay_ms) }
}

/// `ea_agent_timeout_delay` with a 32-bit tick.
///
/// Pointers: as for `ea_agent_timeout_delay`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_timeout_delay_tick(agent: *mut ea_agent, tick: u32, delay_ms: *mut u32) -> ea_result {
    // SAFETY: forwarded.
    unsafe { delay(agent, Now::Tick(tick), delay_ms) }
}

/// Writes to `*wake` whether the thread that runs the agent's loop must be
/// woken: true when the agent's next deadline is now earlier than the one
/// the loop last read with `ea_agent_poll_timeout` or
/// `ea_agent_timeout_delay` (or the loop has read none yet). Call it after
/// a command from another thread (`ea_agent_push`, `ea_agent_task_result`,
/// `ea_agent_flush_now`, `ea_agent_heartbeat_now`, ...): a push can move
/// the deadline the loop sleeps on from a heartbeat a minute away to the
/// flush `flush_interval_ms` from now (full batches wait for that flush
/// too, unless the loop runs earlier).
/// When true, wake the loop (eventfd, pipe, semaphore, task
/// notification); it reads the new deadline itself. Each move is reported
/// once: the call records the new deadline as the one the loop will read.
/// Pushes into an `ea_intake` do not touch the agent: the loop drains the
/// intake on its own schedule (or its producer wakes it). Needs no time.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `wake` to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_wake_needed(agent: *const ea_agent, wake: *mut bool) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(wake)?;
            let deadline = s.agent.poll_timeout();
            let earlier = match (deadline, s.slept_until) {
                (None, _) => false,
                (Some(_), None | Some(None)) => true,
                (Some(d), Some(Some(slept))) => d < slept,
            };
            if earlier {
                s.slept_until = Some(deadline);
            }
            args::write(out, earlier);
            Ok(())
        })
    }
}

// ---- getters --------------------------------------------------------------

/// Writes the session's state to `*state`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `state` to a writable `ea_state`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_state(agent: *const ea_agent, state: *mut ea_state) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(state)?;
            args::write(out, ea_state::from(s.agent.state()));
            Ok(())
        })
    }
}

/// Writes to `*drained` whether every pushed record is acked or dropped
/// (the moment to close for a clean shutdown).
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `drained` to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_is_drained(agent: *const ea_agent, drained: *mut bool) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(drained)?;
            args::write(out, s.agent.is_drained());
            Ok(())
        })
    }
}

/// Writes a snapshot of the state, ring and counters to `*stats`.
///
/// Pointers: `agent` points to an initialized `ea_agent` (NULL:
/// `EA_NULL_PARAMETER`); `stats` to a writable `ea_stats`.
#[no_mangle]
pub unsafe extern "C" fn ea_agent_stats(agent: *const ea_agent, stats: *mut ea_stats) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        handle::with(agent, |s| {
            let out = args::out(stats)?;
            // In place, every field (the outer SAFETY: the caller's
            // contract, `out` checked non-NULL).
            ea_stats::write_to(out, &s.agent);
            Ok(())
        })
    }
}

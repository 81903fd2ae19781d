//! `ea_host_*`: the Linux host layer (`edge-agent-linux`) for C. The
//! library owns the socket, the epoll loop, the clock and the host stats;
//! the caller gives `host:port` endpoints and a callback, and pushes from
//! any thread. Unlike `ea_agent`, an `ea_host` lives on the heap: it is
//! made by `ea_host_new` and freed by `ea_host_free`. Linux only (feature
//! `host`, on by default; not in bare-metal builds).
//!
//! Two shapes: its own thread (`ea_host_start`, `ea_host_stop` /
//! `ea_host_wait`) or the caller's loop (`ea_host_fd`, `ea_host_timeout_ms`,
//! `ea_host_process`).

use crate::args;
use crate::config::ea_config;
use crate::event::ea_event;
use crate::identity::ea_identity;
use crate::panic;
use crate::result::{ea_result, Res};
use crate::stats::ea_stats;
use agent_core::Duration;
use core::ffi::{c_char, c_void, CStr};
use edge_agent_linux::{Host, HostConfig, HostError, HostEvent, LoopStats, Progress, StopReport, TlsFailure};
use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

/// The callback for a host's events, on the loop's thread, with no lock
/// held: it may call `ea_host_push`, `ea_host_task_result` and
/// `ea_host_begin_stop` (not `ea_host_process`, `ea_host_stop`,
/// `ea_host_wait` or `ea_host_free`). `event` and the bytes it points to are
/// valid only during the call. Kinds delivered: CONNECTED, DISCONNECT (for
/// information: the host reconnects by itself), TASK and SHUTDOWN (answer
/// with `ea_host_task_result`; a SHUTDOWN does not stop the host: call
/// `ea_host_begin_stop` if the program agrees), CONFIG, GAVE_UP.
pub type ea_host_event_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, host: *mut ea_host, event: *const ea_event)>;

/// A running agent with its own I/O. Opaque; made by `ea_host_new`.
pub struct ea_host {
    host: Host,
}

/// Everything `ea_host_new` needs. Start from `ea_host_config_default()`.
/// Strings are pointer + length (UTF-8), copied by `ea_host_new`.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct ea_host_config {
    /// Collectors as NUL-terminated `"host:port"` strings (`"[v6]:port"`
    /// for IPv6 literals), tried in this order; each name is resolved when
    /// it is used. 1 to 255 of them.
    pub endpoints: *const *const c_char,
    /// Entries at `endpoints`.
    pub endpoints_len: usize,
    /// The agent's bounds and intervals. `endpoints` is set from
    /// `endpoints_len`; `rng_seed` 0 draws a per-device seed (machine id,
    /// pid, time); the lock hooks must be NULL (the host locks itself).
    pub agent: ea_config,
    /// Who the agent is. An empty `hostname` means `gethostname()`. Address
    /// lists given here are sent as they are; when all four are empty and
    /// `detect_addresses` is set, the interfaces' addresses are sent.
    pub identity: ea_identity,
    /// Fill the Hello's address lists from the host's interfaces (default true).
    pub detect_addresses: bool,
    /// Read host stats from /proc for every heartbeat (default true).
    pub host_stats: bool,
    /// Start the clean stop on SIGTERM or SIGINT (default false). One host
    /// per process; the previous handlers come back when it stops.
    pub handle_signals: bool,
    /// Send ring, bytes (default 262144).
    pub ring_bytes: usize,
    /// Receive buffer, bytes: the largest frame accepted (default 65536).
    pub rx_bytes: usize,
    /// Event queue, bytes (default 16384).
    pub event_bytes: usize,
    /// Out buffer between the agent and the socket; 0 (default) = twice
    /// `ea_min_transmit_len`. Smaller than that: EA_CONFIG_TX_BUFFER_TOO_SMALL.
    pub out_bytes: usize,
    /// How long a stop (also one a signal starts) waits for unacked
    /// records before sending Close, ms (default 5000).
    pub drain_timeout_ms: u64,
    /// SO_SNDBUF for the socket; 0 (default) = the kernel's.
    pub socket_send_buffer: usize,
    /// TLS to the collector: path (UTF-8, not NUL-terminated) of a PEM file
    /// with the CA certificates trusted for it (or the collector's own
    /// certificate, pinned). Length 0 (default): plain TCP. rustls with the
    /// ring provider; the handshake runs under `connect_timeout_ms`. An
    /// unusable file: EA_HOST_TLS_CONFIG at `ea_host_new`.
    pub tls_ca_file: *const u8,
    /// Bytes at `tls_ca_file`.
    pub tls_ca_file_len: usize,
    /// Path of the PEM client certificate chain (mutual TLS; its CN is the
    /// agent id the collector expects); length 0: none. Needs `tls_key_file`.
    pub tls_cert_file: *const u8,
    /// Bytes at `tls_cert_file`.
    pub tls_cert_file_len: usize,
    /// Path of the PEM private key of `tls_cert_file`; length 0: none.
    pub tls_key_file: *const u8,
    /// Bytes at `tls_key_file`.
    pub tls_key_file_len: usize,
    /// The name the collector's certificate must hold; length 0 (default):
    /// each endpoint's host (a DNS name or an IP address).
    pub tls_server_name: *const u8,
    /// Bytes at `tls_server_name`.
    pub tls_server_name_len: usize,
    /// Called for events (may be NULL).
    pub on_event: ea_host_event_fn,
    /// Passed to `on_event`.
    pub userdata: *mut c_void,
}

/// What the last TLS failure was (`ea_host_loop_stats.last_tls_failure`).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_tls_failure {
    /// No TLS failure yet (or no TLS configured).
    #[default]
    EA_TLS_FAILURE_NONE = 0,
    /// This host refused the collector's certificate (unknown issuer,
    /// wrong name, expired, ...).
    EA_TLS_FAILURE_SERVER_CERTIFICATE = 1,
    /// The collector sent an alert: it refused this host's certificate
    /// (missing, unknown, expired, not the agent id) or the handshake.
    EA_TLS_FAILURE_PEER_ALERT = 2,
    /// Anything else TLS refused (malformed records, a peer that is not TLS).
    EA_TLS_FAILURE_PROTOCOL = 3,
}

/// The host loop's own counters (`ea_host_loop_counters`): what the agent's
/// `ea_stats` cannot tell, such as a refused certificate apart from a
/// flaky network.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct ea_host_loop_stats {
    /// Times the loop returned from waiting or `ea_host_process` ran.
    pub wakeups: u64,
    /// Connection attempts started.
    pub connects: u64,
    /// Connections lost or attempts failed for a network reason (resolve,
    /// connect, read or write errors, end of stream).
    pub network_failures: u64,
    /// TLS sessions that failed (a refused certificate on either side, an
    /// alert, a protocol error); never counted in `network_failures`.
    pub tls_failures: u64,
    /// What the last of `tls_failures` was.
    pub last_tls_failure: ea_tls_failure,
    /// Writes that left bytes in the out buffer (socket full).
    pub blocked_writes: u64,
}

impl From<LoopStats> for ea_host_loop_stats {
    fn from(s: LoopStats) -> Self {
        ea_host_loop_stats {
            wakeups: s.wakeups,
            connects: s.connects,
            network_failures: s.network_failures,
            tls_failures: s.tls_failures,
            last_tls_failure: match s.last_tls_failure {
                None => ea_tls_failure::EA_TLS_FAILURE_NONE,
                Some(TlsFailure::ServerCertificate) => ea_tls_failure::EA_TLS_FAILURE_SERVER_CERTIFICATE,
                Some(TlsFailure::PeerAlert) => ea_tls_failure::EA_TLS_FAILURE_PEER_ALERT,
                Some(TlsFailure::Protocol) => ea_tls_failure::EA_TLS_FAILURE_PROTOCOL,
            },
            blocked_writes: s.blocked_writes,
        }
    }
}

/// What a clean stop left behind.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct ea_host_report {
    /// Every record was acked (or dropped and counted) before Close.
    pub drained: bool,
    /// Records still unacked at Close (the agent's heartbeats included).
    pub unacked: u64,
    /// Records the ring took in total.
    pub pushed: u64,
    /// Records acked by the collector.
    pub acked: u64,
    /// Records refused because the ring was full.
    pub dropped_full: u64,
    /// Records refused because they were larger than `max_record`.
    pub dropped_too_large: u64,
    /// Never-sent records evicted under `EA_OVERFLOW_DROP_OLDEST`.
    pub dropped_evicted: u64,
}

impl From<StopReport> for ea_host_report {
    fn from(r: StopReport) -> Self {
        ea_host_report {
            drained: r.drained,
            unacked: r.unacked,
            pushed: r.stats.pushed,
            acked: r.stats.acked,
            dropped_full: r.stats.dropped_full,
            dropped_too_large: r.stats.dropped_too_large,
            dropped_evicted: r.stats.dropped_evicted,
        }
    }
}

impl From<HostError> for ea_result {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Config(c) => c.into(),
            HostError::Endpoints | HostError::BadEndpoint => ea_result::EA_HOST_BAD_ENDPOINT,
            HostError::OutBufferTooSmall => ea_result::EA_CONFIG_TX_BUFFER_TOO_SMALL,
            HostError::System(_) => ea_result::EA_HOST_SYSTEM,
            HostError::RingFull => ea_result::EA_RING_FULL,
            HostError::RecordTooLarge => ea_result::EA_RECORD_TOO_LARGE,
            HostError::Stopping => ea_result::EA_HOST_STOPPING,
            HostError::AlreadyStarted => ea_result::EA_HOST_ALREADY_STARTED,
            HostError::NotStarted => ea_result::EA_HOST_NOT_STARTED,
            HostError::SignalsTaken => ea_result::EA_HOST_SIGNALS_TAKEN,
            HostError::Tls(_) => ea_result::EA_HOST_TLS_CONFIG,
        }
    }
}

/// The defaults of `ea_host_config` (no endpoints, no callback).
#[no_mangle]
pub extern "C" fn ea_host_config_default() -> ea_host_config {
    let d = HostConfig::new::<&str>("", []);
    ea_host_config {
        endpoints: core::ptr::null(),
        endpoints_len: 0,
        agent: ea_config::default_values(),
        // SAFETY: all-zero is a valid ea_identity (NULL pointers, zero lengths).
        identity: unsafe { core::mem::zeroed() },
        detect_addresses: d.send_addresses,
        host_stats: d.host_stats,
        handle_signals: d.handle_signals,
        ring_bytes: d.ring_bytes,
        rx_bytes: d.rx_bytes,
        event_bytes: d.event_bytes,
        out_bytes: d.out_bytes,
        drain_timeout_ms: d.drain_timeout.as_millis(),
        socket_send_buffer: 0,
        tls_ca_file: core::ptr::null(),
        tls_ca_file_len: 0,
        tls_cert_file: core::ptr::null(),
        tls_cert_file_len: 0,
        tls_key_file: core::ptr::null(),
        tls_key_file_len: 0,
        tls_server_name: core::ptr::null(),
        tls_server_name_len: 0,
        on_event: None,
        userdata: core::ptr::null_mut(),
    }
}

/// The C callback and its userdata, carried to the loop thread.
struct Callback {
    f: ea_host_event_fn,
    userdata: *mut c_void,
    /// The `ea_host` handed to the callback (read from `slot` at the first
    /// event: the box exists only after `Host::new`).
    handle: *mut ea_host,
    slot: std::sync::Arc<core::sync::atomic::AtomicPtr<ea_host>>,
}

impl edge_agent_linux::Handler for Callback {
    fn on_event(&mut self, _: &Host, ev: &HostEvent<'_>) {
        if self.handle.is_null() {
            self.handle = self.slot.load(core::sync::atomic::Ordering::Acquire);
        }
        if let Some(f) = self.f {
            let e = ea_event::from_core(&ev.to_core());
            // SAFETY: the caller's callback with its own userdata; `e` and
            // the bytes it points to live through the call.
            unsafe { f(self.userdata, self.handle, &e) };
        }
    }
}

// SAFETY: the userdata is the caller's, documented to be used from the
// loop thread; the handle outlives the loop (ea_host_free stops it first).
unsafe impl Send for Callback {}

unsafe fn host_config(c: &ea_host_config) -> Res<HostConfig> {
    let list = if c.endpoints_len == 0 {
        &[][..]
    } else {
        if c.endpoints.is_null() {
            return Err(ea_result::EA_NULL_PARAMETER);
        }
        // SAFETY: the caller's contract: `endpoints_len` pointers.
        unsafe { core::slice::from_raw_parts(c.endpoints, c.endpoints_len) }
    };
    let mut endpoints = Vec::with_capacity(list.len());
    for &e in list {
        if e.is_null() {
            return Err(ea_result::EA_NULL_PARAMETER);
        }
        // SAFETY: the caller's contract: NUL-terminated strings.
        let s = unsafe { CStr::from_ptr(e) }.to_str().map_err(|_| ea_result::EA_INVALID_UTF8)?;
        endpoints.push(String::from(s));
    }
    if c.agent.lock.is_some() || c.agent.unlock.is_some() {
        return Err(ea_result::EA_INVALID_ARGUMENT);
    }
    let mut agent_cfg = ea_config { endpoints: 1, ..c.agent }.to_core()?;
    agent_cfg.backoff.endpoints = u8::try_from(endpoints.len()).unwrap_or(0);
    let mut core_id = core::mem::MaybeUninit::uninit();
    // SAFETY: the caller's contract for every identity pointer.
    let id = unsafe { c.identity.write_core(&mut core_id) }?;
    let mut h = HostConfig::new(id.agent_id, endpoints);
    h.agent = agent_cfg;
    h.product = id.product.into();
    h.version = id.version.into();
    h.auth_token = id.auth_token.into();
    h.hostname = (!id.hostname.is_empty()).then(|| id.hostname.into());
    let given = [id.intranet_ipv4, id.intranet_ipv6, id.extranet_ipv4, id.extranet_ipv6];
    h.send_addresses = c.detect_addresses;
    if given.iter().any(|l| !l.is_empty()) {
        h.addresses = Some(edge_agent_linux::netinfo::Addresses {
            private_v4: id.intranet_ipv4.into(),
            private_v6: id.intranet_ipv6.into(),
            public_v4: id.extranet_ipv4.into(),
            public_v6: id.extranet_ipv6.into(),
        });
    }
    h.host_stats = c.host_stats;
    h.handle_signals = c.handle_signals;
    h.ring_bytes = c.ring_bytes;
    h.rx_bytes = c.rx_bytes;
    h.event_bytes = c.event_bytes;
    h.out_bytes = c.out_bytes;
    h.drain_timeout = Duration::from_millis(c.drain_timeout_ms);
    h.socket_send_buffer = (c.socket_send_buffer > 0).then_some(c.socket_send_buffer);
    // SAFETY: the caller's contract for the four TLS pointer + length pairs.
    let tls = unsafe {
        [
            text(c.tls_ca_file, c.tls_ca_file_len)?,
            text(c.tls_cert_file, c.tls_cert_file_len)?,
            text(c.tls_key_file, c.tls_key_file_len)?,
            text(c.tls_server_name, c.tls_server_name_len)?,
        ]
    };
    match tls {
        [None, None, None, None] => {}
        [Some(ca), cert, key, name] => {
            h.tls = Some(edge_agent_linux::TlsConfig {
                ca_file: ca.into(),
                cert_file: cert.map(Into::into),
                key_file: key.map(Into::into),
                server_name: name,
            })
        }
        // A certificate, key or name without a CA file.
        [None, ..] => return Err(ea_result::EA_HOST_TLS_CONFIG),
    }
    Ok(h)
}

/// A pointer + length pair as text; `None` for length 0.
///
/// # Safety
/// `p` is valid for `len` bytes when `len` > 0.
unsafe fn text(p: *const u8, len: usize) -> Res<Option<String>> {
    if len == 0 {
        return Ok(None);
    }
    if p.is_null() {
        return Err(ea_result::EA_NULL_PARAMETER);
    }
    // SAFETY: the caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(p, len) };
    core::str::from_utf8(bytes).map(|s| Some(String::from(s))).map_err(|_| ea_result::EA_INVALID_UTF8)
}

/// Makes a host from `config` (every buffer allocated now, every
/// unworkable setting refused with its `EA_CONFIG_*` / `EA_HOST_*` result)
/// and writes it to `*out`. Nothing connects until `ea_host_start` (its own
/// thread) or the first `ea_host_process` (the caller's loop).
///
/// Pointers: `config` points to a readable `ea_host_config`, whose strings
/// and arrays need be valid only during this call (everything is copied);
/// `out` to a writable `ea_host *`. NULL: `EA_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_new(config: *const ea_host_config, out: *mut *mut ea_host) -> ea_result {
    crate::result::code(panic::catch(|| {
        let out = args::out(out)?;
        // SAFETY: the caller's contract.
        let c = unsafe { args::read(config) }?;
        // SAFETY: the caller's contract.
        let cfg = unsafe { host_config(c) }?;
        // The handle the callback gets: known only once the box exists.
        let slot = std::sync::Arc::new(core::sync::atomic::AtomicPtr::<ea_host>::new(core::ptr::null_mut()));
        let shared = slot.clone();
        let handler = Callback { f: c.on_event, userdata: c.userdata, handle: core::ptr::null_mut(), slot: shared };
        let host = Host::new(cfg, handler).map_err(ea_result::from)?;
        let p = Box::into_raw(Box::new(ea_host { host }));
        slot.store(p, core::sync::atomic::Ordering::Release);
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, p) };
        Ok(())
    }).unwrap_or(Err(ea_result::EA_PANICKED)))
}

/// `&*host`, or `EA_NULL_PARAMETER`.
unsafe fn get<'a>(host: *const ea_host) -> Res<&'a Host> {
    // SAFETY: the caller's contract: NULL or a live `ea_host`.
    unsafe { args::read(host) }.map(|h| &h.host)
}

/// Runs `f` on the host behind a panic boundary.
unsafe fn with(host: *const ea_host, f: impl FnOnce(&Host) -> Res) -> ea_result {
    // SAFETY: forwarded.
    let h = match unsafe { get(host) } {
        Ok(h) => h,
        Err(e) => return e,
    };
    crate::result::code(panic::catch(|| f(h)).unwrap_or(Err(ea_result::EA_PANICKED)))
}

/// Runs the host's loop on a thread of its own until the stop completes.
/// `EA_HOST_ALREADY_STARTED` when it runs (or ran) already.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_host_start(host: *mut ea_host) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe { with(host, |h| h.start().map_err(ea_result::from)) }
}

/// Queues a record timestamped with the wall clock (Unix ms); from any
/// thread. The loop is woken when the record makes its next deadline
/// earlier, so it leaves within `flush_interval_ms`. `EA_RING_FULL` /
/// `EA_RECORD_TOO_LARGE` (counted), `EA_HOST_STOPPING` once a stop began.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `payload` to `payload_len` readable bytes, copied
/// (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_host_push(host: *mut ea_host, data_type: u32, payload: *const u8, payload_len: usize) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let p = args::bytes(payload, payload_len)?;
            h.push(data_type, p).map_err(ea_result::from)
        })
    }
}

/// As `ea_host_push`, with the caller's timestamp.
///
/// Pointers: as for `ea_host_push`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_push_at(
    host: *mut ea_host,
    data_type: u32,
    timestamp_ms: u64,
    payload: *const u8,
    payload_len: usize,
) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let p = args::bytes(payload, payload_len)?;
            h.push_at(data_type, timestamp_ms, p).map_err(ea_result::from)
        })
    }
}

/// Answers a task (the `token` of a TASK or SHUTDOWN event), from any
/// thread, also while stopping. A message longer than 256 bytes is cut at
/// a character boundary.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `token` and `message` to `token_len` and
/// `message_len` readable bytes, copied (NULL only with length 0).
#[no_mangle]
pub unsafe extern "C" fn ea_host_task_result(
    host: *mut ea_host,
    token: *const u8,
    token_len: usize,
    status: u32,
    message: *const u8,
    message_len: usize,
) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let t = args::str(token, token_len)?;
            let m = args::str(message, message_len)?;
            h.task_result(t, status, m).map_err(ea_result::from)
        })
    }
}

/// Starts the clean stop and returns at once: pushes are refused
/// (`EA_HOST_STOPPING`), pending records go now, and Close follows when
/// everything is acked or `drain_ms` passed. Callable from the callback.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_host_begin_stop(host: *mut ea_host, drain_ms: u64) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            h.begin_stop(Duration::from_millis(drain_ms));
            Ok(())
        })
    }
}

/// Stops the host's own thread cleanly (`ea_host_begin_stop` with
/// `drain_ms`, then waits for Close) and writes what stayed unacked to
/// `*report` (may be NULL). `EA_HOST_NOT_STARTED` (and nothing begun)
/// without a thread of its own: in the caller's loop, use
/// `ea_host_begin_stop` and keep calling `ea_host_process`.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `report` to a writable `ea_host_report`, or NULL.
#[no_mangle]
pub unsafe extern "C" fn ea_host_stop(host: *mut ea_host, drain_ms: u64, report: *mut ea_host_report) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let r = h.stop(Duration::from_millis(drain_ms)).map_err(ea_result::from)?;
            if !report.is_null() {
                args::write(report, r.into());
            }
            Ok(())
        })
    }
}

/// Waits until the host's own thread ends: after a stop another thread or
/// a signal (`handle_signals`) began. Writes the report (may be NULL).
///
/// Pointers: as for `ea_host_stop`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_wait(host: *mut ea_host, report: *mut ea_host_report) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let r = h.wait().map_err(ea_result::from)?;
            if !report.is_null() {
                args::write(report, r.into());
            }
            Ok(())
        })
    }
}

/// The caller's loop: the fd to watch for readable (`*out_fd`); when it
/// is, call `ea_host_process`. Valid until `ea_host_free`.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `out_fd` to a writable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_fd(host: *const ea_host, out_fd: *mut i32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let out = args::out(out_fd)?;
            args::write(out, std::os::fd::AsRawFd::as_raw_fd(&h.fd()));
            Ok(())
        })
    }
}

/// The caller's loop: milliseconds until `ea_host_process` must run even
/// if the fd stays quiet (`*out_ms`; -1 = no timer), ready for `poll()` /
/// `epoll_wait()`.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `out_ms` to a writable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_timeout_ms(host: *mut ea_host, out_ms: *mut i32) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let out = args::out(out_ms)?;
            args::write(out, h.next_timeout_ms());
            Ok(())
        })
    }
}

/// The caller's loop: does everything due now (reads, timers, writes,
/// callbacks) without waiting. `*out_stopped` (may be NULL) becomes true
/// once a stop completed; then `*report` (may be NULL) is written.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`), and its own thread (`ea_host_start`) is not
/// running; `out_stopped` to a writable `bool`, or NULL; `report` to a
/// writable `ea_host_report`, or NULL.
#[no_mangle]
pub unsafe extern "C" fn ea_host_process(host: *mut ea_host, out_stopped: *mut bool, report: *mut ea_host_report) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let (stopped, r) = match h.process() {
                Progress::Running { .. } => (false, None),
                Progress::Stopped(r) => (true, Some(r)),
            };
            if !out_stopped.is_null() {
                args::write(out_stopped, stopped);
            }
            if let (Some(r), false) = (r, report.is_null()) {
                args::write(report, r.into());
            }
            Ok(())
        })
    }
}

/// The agent's counters (`ea_stats`), from any thread.
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `out` to a writable `ea_stats`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_agent_stats(host: *const ea_host, out: *mut ea_stats) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let out = args::out(out)?;
            let s = h.with_agent(|a| ea_stats::of(a));
            args::write(out, s);
            Ok(())
        })
    }
}

/// The host loop's counters (`ea_host_loop_stats`), from any thread
/// (named apart from the struct: C has one namespace for both).
///
/// Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
/// `EA_NULL_PARAMETER`); `out` to a writable `ea_host_loop_stats`.
#[no_mangle]
pub unsafe extern "C" fn ea_host_loop_counters(host: *const ea_host, out: *mut ea_host_loop_stats) -> ea_result {
    // SAFETY: the caller's contract.
    unsafe {
        with(host, |h| {
            let out = args::out(out)?;
            args::write(out, h.loop_stats().into());
            Ok(())
        })
    }
}

/// Frees the host. A running own thread is stopped first without draining
/// (use `ea_host_stop` for a clean stop). NULL is a no-op.
///
/// Pointers: `host` comes from `ea_host_new`, is freed once, and no other
/// call on it runs at the same time or follows (NULL: `EA_NULL_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn ea_host_free(host: *mut ea_host) -> ea_result {
    if host.is_null() {
        return ea_result::EA_OK;
    }
    crate::result::code(panic::catch(|| {
        // SAFETY: the caller's contract: from `ea_host_new`, freed once.
        let b = unsafe { Box::from_raw(host) };
        let _ = b.host.stop(Duration::ZERO);
        drop(b);
        Ok(())
    }).unwrap_or(Err(ea_result::EA_PANICKED)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ea_result::*;

    #[test]
    fn nulls_and_bad_configs_are_refused_with_their_results() {
        let mut out: *mut ea_host = core::ptr::null_mut();
        // SAFETY: every pointer is NULL or valid for the call.
        unsafe {
            assert_eq!(ea_host_new(core::ptr::null(), &mut out), EA_NULL_PARAMETER);
            let mut cfg = ea_host_config_default();
            assert_eq!(ea_host_new(&cfg, core::ptr::null_mut()), EA_NULL_PARAMETER);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_HOST_BAD_ENDPOINT, "no endpoint");
            let bad = [c"no-port".as_ptr()];
            (cfg.endpoints, cfg.endpoints_len) = (bad.as_ptr(), 1);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_HOST_BAD_ENDPOINT);
            let nul = [core::ptr::null::<c_char>()];
            (cfg.endpoints, cfg.endpoints_len) = (nul.as_ptr(), 1);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_NULL_PARAMETER);
            let good = [c"127.0.0.1:1".as_ptr()];
            (cfg.endpoints, cfg.endpoints_len) = (good.as_ptr(), 1);
            cfg.agent.heartbeat_interval_ms = 10;
            assert_eq!(ea_host_new(&cfg, &mut out), EA_CONFIG_HEARTBEAT_TOO_FREQUENT);
            cfg.agent.heartbeat_interval_ms = 60_000;
            cfg.out_bytes = 16;
            assert_eq!(ea_host_new(&cfg, &mut out), EA_CONFIG_TX_BUFFER_TOO_SMALL);
            cfg.out_bytes = 0;
            let three = [10u8, 0, 0];
            (cfg.identity.intranet_ipv4, cfg.identity.intranet_ipv4_len) = (three.as_ptr(), 3);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_CONFIG_BAD_ADDRESS_LIST, "given addresses are checked");
            (cfg.identity.intranet_ipv4, cfg.identity.intranet_ipv4_len) = (three.as_ptr(), 0);
            unsafe extern "C" fn lock(_: *mut c_void) {}
            cfg.agent.lock = Some(lock);
            cfg.agent.unlock = Some(lock);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_INVALID_ARGUMENT, "the host locks itself");
            (cfg.agent.lock, cfg.agent.unlock) = (None, None);
            let missing = b"/nonexistent/ca.pem";
            (cfg.tls_cert_file, cfg.tls_cert_file_len) = (missing.as_ptr(), missing.len());
            assert_eq!(ea_host_new(&cfg, &mut out), EA_HOST_TLS_CONFIG, "a certificate without a CA file");
            (cfg.tls_cert_file, cfg.tls_cert_file_len) = (core::ptr::null(), 0);
            (cfg.tls_ca_file, cfg.tls_ca_file_len) = (missing.as_ptr(), missing.len());
            assert_eq!(ea_host_new(&cfg, &mut out), EA_HOST_TLS_CONFIG, "an unreadable CA file");
            (cfg.tls_ca_file, cfg.tls_ca_file_len) = (core::ptr::null(), 3);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_NULL_PARAMETER);
            (cfg.tls_ca_file, cfg.tls_ca_file_len) = (b"\xff".as_ptr(), 1);
            assert_eq!(ea_host_new(&cfg, &mut out), EA_INVALID_UTF8);
            (cfg.tls_ca_file, cfg.tls_ca_file_len) = (core::ptr::null(), 0);
            assert!(out.is_null(), "outputs written only on success");
            assert_eq!(ea_host_new(&cfg, &mut out), EA_OK);
            assert!(!out.is_null());
            assert_eq!(ea_host_push(core::ptr::null_mut(), 2001, core::ptr::null(), 0), EA_NULL_PARAMETER);
            assert_eq!(ea_host_push(out, 2001, core::ptr::null(), 3), EA_NULL_PARAMETER);
            assert_eq!(ea_host_push(out, 2001, b"x".as_ptr(), 1), EA_OK);
            assert_eq!(ea_host_task_result(out, b"\xff".as_ptr(), 1, 0, core::ptr::null(), 0), EA_INVALID_UTF8);
            assert_eq!(ea_host_stop(out, 0, core::ptr::null_mut()), EA_HOST_NOT_STARTED);
            assert_eq!(ea_host_push(out, 2001, b"x".as_ptr(), 1), EA_OK, "no stop began");
            assert_eq!(ea_host_begin_stop(out, 0), EA_OK);
            assert_eq!(ea_host_push(out, 2001, b"x".as_ptr(), 1), EA_HOST_STOPPING, "a stop began");
            let mut fd = -1;
            assert_eq!(ea_host_fd(out, &mut fd), EA_OK);
            assert!(fd >= 0);
            let mut stats = ea_stats::default();
            assert_eq!(ea_host_agent_stats(out, &mut stats), EA_OK);
            assert_eq!(stats.pushed, 2);
            let mut ls = ea_host_loop_stats::default();
            assert_eq!(ea_host_loop_counters(out, core::ptr::null_mut()), EA_NULL_PARAMETER);
            assert_eq!(ea_host_loop_counters(core::ptr::null(), &mut ls), EA_NULL_PARAMETER);
            assert_eq!(ea_host_loop_counters(out, &mut ls), EA_OK);
            assert_eq!((ls.tls_failures, ls.last_tls_failure), (0, ea_tls_failure::EA_TLS_FAILURE_NONE));
            assert_eq!(ea_host_free(out), EA_OK);
            assert_eq!(ea_host_free(core::ptr::null_mut()), EA_OK);
        }
    }
}

//! The one result type of the C API, and its messages.
//!
//! Every fallible `ea_*` function returns an [`ea_result`]. Numbers are fixed
//! and never reused: a variant that goes away leaves a hole. Configuration
//! errors live from 100 up, mirroring [`agent_core::ConfigError`] one to one.

use agent_core::plugin::PluginError;
use agent_core::{ConfigError, PushError};
use core::ffi::c_char;
use core::fmt;

/// The outcome of an `ea_*` call. `EA_OK` is 0; everything else says what
/// was refused. Numbers are fixed and never reused.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ea_result {
    /// Success; outputs were written.
    EA_OK = 0,
    /// A required pointer was NULL (or a buffer pointer was NULL with a
    /// non-zero length). Nothing was done.
    EA_NULL_PARAMETER = 1,
    /// The storage given to `ea_agent_init` / `ea_intake_init` is smaller
    /// than the library needs (see `ea_agent_storage_size`).
    EA_STORAGE_TOO_SMALL = 2,
    /// The storage is not aligned to `ea_agent_storage_align()` bytes.
    EA_STORAGE_MISALIGNED = 3,
    /// The handle was never initialized, or was deinitialized.
    EA_NOT_INITIALIZED = 4,
    /// `ea_agent_init` / `ea_intake_init` on storage that holds a live
    /// handle: deinitialize it first.
    EA_ALREADY_INITIALIZED = 5,
    /// A panic was caught inside the library (a bug); the handle is
    /// poisoned and every later call on it returns this.
    EA_PANICKED = 6,
    /// A string argument is not valid UTF-8.
    EA_INVALID_UTF8 = 7,
    /// An enum argument is out of range, or lock hooks were half given.
    EA_INVALID_ARGUMENT = 8,
    /// An output buffer is smaller than the call's documented minimum.
    EA_BUFFER_TOO_SMALL = 9,
    /// The send ring is full and the overflow policy could not make room;
    /// the record was counted in `dropped_full`.
    EA_RING_FULL = 10,
    /// The record is larger than `max_record` (or the whole ring); it was
    /// counted in `dropped_too_large`.
    EA_RECORD_TOO_LARGE = 11,
    /// All plugin slots are taken.
    EA_PLUGINS_FULL = 12,
    /// No plugin has this id.
    EA_UNKNOWN_PLUGIN = 13,
    /// A plugin of this name is registered already.
    EA_DUPLICATE_PLUGIN = 14,
    /// The intake queue is full; the record was counted in its
    /// `dropped_full`.
    EA_INTAKE_FULL = 15,
    /// A plugin's name and version together are too long for its heartbeat.
    EA_PLUGIN_NAME_TOO_LONG = 16,
    /// `batch_max_bytes` cannot hold one record of `max_record` bytes.
    EA_CONFIG_BATCH_TOO_SMALL = 100,
    /// `ea_host_new`: no endpoint, more than 255, or one that is not
    /// `"host:port"`.
    EA_HOST_BAD_ENDPOINT = 200,
    /// `ea_host_new` / `ea_host_start`: the system refused an epoll set, an
    /// eventfd or a thread.
    EA_HOST_SYSTEM = 201,
    /// The host is stopping or stopped: it takes no more records.
    EA_HOST_STOPPING = 202,
    /// `ea_host_start` on a host whose thread runs already (or ran).
    EA_HOST_ALREADY_STARTED = 203,
    /// `ea_host_stop` / `ea_host_wait` on a host without its own thread.
    EA_HOST_NOT_STARTED = 204,
    /// `handle_signals` is set but another host of this process owns
    /// SIGTERM / SIGINT.
    EA_HOST_SIGNALS_TAKEN = 205,
    /// `ea_host_new`: a TLS file (CA, certificate, key) unreadable or not
    /// PEM, a key that does not fit its certificate, a certificate without a
    /// key (or a key, certificate or server name without a CA file), or a
    /// server name that is not a DNS name or IP address.
    EA_HOST_TLS_CONFIG = 206,
    /// `window_bytes` is smaller than `batch_max_bytes`.
    EA_CONFIG_WINDOW_TOO_SMALL = 101,
    /// The receive buffer is smaller than the minimum frame size.
    EA_CONFIG_RX_BUFFER_TOO_SMALL = 102,
    /// `heartbeat_interval_ms` is below 1000.
    EA_CONFIG_HEARTBEAT_TOO_FREQUENT = 103,
    /// No endpoints, zero attempts per endpoint, or zero records per batch.
    EA_CONFIG_ZERO_LIMIT = 104,
    /// An interval that must be positive is zero.
    EA_CONFIG_ZERO_INTERVAL = 105,
    /// `max_record` is smaller than the largest heartbeat.
    EA_CONFIG_MAX_RECORD_TOO_SMALL = 106,
    /// An identity address list is not a whole number of addresses (4 bytes
    /// per IPv4, 16 per IPv6).
    EA_CONFIG_BAD_ADDRESS_LIST = 107,
    /// `backoff_base_ms` or `backoff_cap_ms` is zero.
    EA_CONFIG_ZERO_BACKOFF = 108,
    /// The Hello (identity, address lists, auth token) would be larger than
    /// collectors must accept (4096 bytes), or than the transmit buffer
    /// prescribed at init (`ea_agent_set_auth_token`).
    EA_CONFIG_HELLO_TOO_LARGE = 109,
    /// The event queue is smaller than `EA_MIN_EVENT_QUEUE`.
    EA_CONFIG_EVENT_QUEUE_TOO_SMALL = 110,
    /// The ring cannot hold one record of `max_record` bytes.
    EA_CONFIG_RING_TOO_SMALL = 111,
    /// A transmit buffer is smaller than `ea_min_transmit_len`.
    EA_CONFIG_TX_BUFFER_TOO_SMALL = 112,
    /// `EA_OVERFLOW_DROP_OLDEST` in a library built without it (the
    /// `drop-oldest` feature, which the documented firmware build leaves
    /// out; every other build has it).
    EA_CONFIG_DROP_OLDEST_NOT_BUILT = 113,
}

impl ea_result {
    /// The message for this result, NUL-terminated, static.
    pub const fn message(self) -> &'static core::ffi::CStr {
        match self {
            ea_result::EA_OK => c"ok",
            ea_result::EA_NULL_PARAMETER => c"a required pointer is NULL",
            ea_result::EA_STORAGE_TOO_SMALL => c"storage smaller than the library needs",
            ea_result::EA_STORAGE_MISALIGNED => c"storage not suitably aligned",
            ea_result::EA_NOT_INITIALIZED => c"handle not initialized",
            ea_result::EA_ALREADY_INITIALIZED => c"storage already holds a live handle",
            ea_result::EA_PANICKED => c"a panic was caught inside the library; the handle is poisoned",
            ea_result::EA_INVALID_UTF8 => c"a string is not valid UTF-8",
            ea_result::EA_INVALID_ARGUMENT => c"an argument is out of range",
            ea_result::EA_BUFFER_TOO_SMALL => c"output buffer smaller than the documented minimum",
            ea_result::EA_RING_FULL => c"send ring full",
            ea_result::EA_RECORD_TOO_LARGE => c"record larger than the configured maximum",
            ea_result::EA_PLUGINS_FULL => c"all plugin slots are taken",
            ea_result::EA_UNKNOWN_PLUGIN => c"no plugin has this id",
            ea_result::EA_DUPLICATE_PLUGIN => c"a plugin of this name is registered already",
            ea_result::EA_INTAKE_FULL => c"intake queue full",
            ea_result::EA_PLUGIN_NAME_TOO_LONG => c"plugin name and version too long for a plugin heartbeat",
            ea_result::EA_CONFIG_BATCH_TOO_SMALL => c"batch_max_bytes cannot hold a record of max_record bytes",
            ea_result::EA_HOST_BAD_ENDPOINT => c"between 1 and 255 endpoints of the form host:port are needed",
            ea_result::EA_HOST_SYSTEM => c"the system refused an epoll set, an eventfd or a thread",
            ea_result::EA_HOST_STOPPING => c"the host is stopping: no more records",
            ea_result::EA_HOST_ALREADY_STARTED => c"the host's thread was started already",
            ea_result::EA_HOST_NOT_STARTED => c"the host has no thread of its own",
            ea_result::EA_HOST_SIGNALS_TAKEN => c"another host handles SIGTERM and SIGINT",
            ea_result::EA_HOST_TLS_CONFIG => c"TLS configuration refused (a file, the key or the server name)",
            ea_result::EA_CONFIG_WINDOW_TOO_SMALL => c"window_bytes is smaller than batch_max_bytes",
            ea_result::EA_CONFIG_RX_BUFFER_TOO_SMALL => c"receive buffer smaller than the minimum frame size",
            ea_result::EA_CONFIG_HEARTBEAT_TOO_FREQUENT => c"heartbeat_interval below 1 s",
            ea_result::EA_CONFIG_ZERO_LIMIT => c"an endpoint, attempt or batch-record limit is zero",
            ea_result::EA_CONFIG_ZERO_INTERVAL => c"an interval that must be positive is zero",
            ea_result::EA_CONFIG_MAX_RECORD_TOO_SMALL => c"max_record is smaller than the largest heartbeat",
            ea_result::EA_CONFIG_BAD_ADDRESS_LIST => c"an address list is not a whole number of addresses",
            ea_result::EA_CONFIG_ZERO_BACKOFF => c"backoff base or cap is zero",
            ea_result::EA_CONFIG_HELLO_TOO_LARGE => c"the Hello would be too large",
            ea_result::EA_CONFIG_EVENT_QUEUE_TOO_SMALL => c"event queue smaller than EA_MIN_EVENT_QUEUE",
            ea_result::EA_CONFIG_RING_TOO_SMALL => c"ring cannot hold a record of max_record bytes",
            ea_result::EA_CONFIG_TX_BUFFER_TOO_SMALL => c"transmit buffer smaller than ea_min_transmit_len",
            ea_result::EA_CONFIG_DROP_OLDEST_NOT_BUILT => c"EA_OVERFLOW_DROP_OLDEST is not built into this library",
        }
    }

    /// Every result, in number order (for tests and `ea_result_message`).
    pub(crate) const ALL: [ea_result; 38] = [
        ea_result::EA_OK,
        ea_result::EA_NULL_PARAMETER,
        ea_result::EA_STORAGE_TOO_SMALL,
        ea_result::EA_STORAGE_MISALIGNED,
        ea_result::EA_NOT_INITIALIZED,
        ea_result::EA_ALREADY_INITIALIZED,
        ea_result::EA_PANICKED,
        ea_result::EA_INVALID_UTF8,
        ea_result::EA_INVALID_ARGUMENT,
        ea_result::EA_BUFFER_TOO_SMALL,
        ea_result::EA_RING_FULL,
        ea_result::EA_RECORD_TOO_LARGE,
        ea_result::EA_PLUGINS_FULL,
        ea_result::EA_UNKNOWN_PLUGIN,
        ea_result::EA_DUPLICATE_PLUGIN,
        ea_result::EA_INTAKE_FULL,
        ea_result::EA_PLUGIN_NAME_TOO_LONG,
        ea_result::EA_CONFIG_BATCH_TOO_SMALL,
        ea_result::EA_CONFIG_WINDOW_TOO_SMALL,
        ea_result::EA_CONFIG_RX_BUFFER_TOO_SMALL,
        ea_result::EA_CONFIG_HEARTBEAT_TOO_FREQUENT,
        ea_result::EA_CONFIG_ZERO_LIMIT,
        ea_result::EA_CONFIG_ZERO_INTERVAL,
        ea_result::EA_CONFIG_MAX_RECORD_TOO_SMALL,
        ea_result::EA_CONFIG_BAD_ADDRESS_LIST,
        ea_result::EA_CONFIG_ZERO_BACKOFF,
        ea_result::EA_CONFIG_HELLO_TOO_LARGE,
        ea_result::EA_CONFIG_EVENT_QUEUE_TOO_SMALL,
        ea_result::EA_CONFIG_RING_TOO_SMALL,
        ea_result::EA_CONFIG_TX_BUFFER_TOO_SMALL,
        ea_result::EA_CONFIG_DROP_OLDEST_NOT_BUILT,
        ea_result::EA_HOST_BAD_ENDPOINT,
        ea_result::EA_HOST_SYSTEM,
        ea_result::EA_HOST_STOPPING,
        ea_result::EA_HOST_ALREADY_STARTED,
        ea_result::EA_HOST_NOT_STARTED,
        ea_result::EA_HOST_SIGNALS_TAKEN,
        ea_result::EA_HOST_TLS_CONFIG,
    ];

    /// The result of this number, if it is one.
    pub fn from_u32(n: u32) -> Option<ea_result> {
        ea_result::ALL.iter().copied().find(|r| *r as u32 == n)
    }
}

impl fmt::Display for ea_result {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message().to_str().unwrap_or("?"))
    }
}

/// The Rust side carries failures as `Err(ea_result)` (never `EA_OK`).
impl core::error::Error for ea_result {}

impl From<ConfigError> for ea_result {
    /// Exhaustive on purpose: a new `ConfigError` must get its own number.
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::BatchTooSmall => ea_result::EA_CONFIG_BATCH_TOO_SMALL,
            ConfigError::WindowTooSmall => ea_result::EA_CONFIG_WINDOW_TOO_SMALL,
            ConfigError::RxBufferTooSmall => ea_result::EA_CONFIG_RX_BUFFER_TOO_SMALL,
            ConfigError::HeartbeatTooFrequent => ea_result::EA_CONFIG_HEARTBEAT_TOO_FREQUENT,
            ConfigError::ZeroLimit => ea_result::EA_CONFIG_ZERO_LIMIT,
            ConfigError::ZeroInterval => ea_result::EA_CONFIG_ZERO_INTERVAL,
            ConfigError::MaxRecordTooSmall => ea_result::EA_CONFIG_MAX_RECORD_TOO_SMALL,
            ConfigError::BadAddressList => ea_result::EA_CONFIG_BAD_ADDRESS_LIST,
            ConfigError::ZeroBackoff => ea_result::EA_CONFIG_ZERO_BACKOFF,
            ConfigError::HelloTooLarge => ea_result::EA_CONFIG_HELLO_TOO_LARGE,
            ConfigError::EventQueueTooSmall => ea_result::EA_CONFIG_EVENT_QUEUE_TOO_SMALL,
            ConfigError::RingTooSmall => ea_result::EA_CONFIG_RING_TOO_SMALL,
            ConfigError::TxBufferTooSmall => ea_result::EA_CONFIG_TX_BUFFER_TOO_SMALL,
        }
    }
}

impl From<PushError> for ea_result {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Full => ea_result::EA_RING_FULL,
            PushError::TooLarge => ea_result::EA_RECORD_TOO_LARGE,
        }
    }
}

impl From<PluginError> for ea_result {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Full => ea_result::EA_PLUGINS_FULL,
            PluginError::UnknownId => ea_result::EA_UNKNOWN_PLUGIN,
            PluginError::Duplicate => ea_result::EA_DUPLICATE_PLUGIN,
            PluginError::TooLong => ea_result::EA_PLUGIN_NAME_TOO_LONG,
        }
    }
}

/// `Ok` for `EA_OK`, so `?` can be used inside the library.
pub(crate) type Res<T = ()> = Result<T, ea_result>;

/// Turns a `Res<()>` into the C return value.
pub(crate) fn code(r: Res) -> ea_result {
    match r {
        Ok(()) => ea_result::EA_OK,
        Err(e) => e,
    }
}

/// The static, NUL-terminated message of `result`; "unknown result" for a
/// number that is not an `ea_result`. Never NULL.
#[no_mangle]
pub extern "C" fn ea_result_message(result: u32) -> *const c_char {
    match ea_result::from_u32(result) {
        Some(r) => r.message().as_ptr(),
        None => c"unknown result".as_ptr(),
    }
}

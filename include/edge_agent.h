/*
 * edge_agent.h - the C API of edge-agent: a no-heap agent-to-server
 * transport (records in a send ring, batches, acks, heartbeats, tasks,
 * reconnect) for daemons and firmware.
 *
 * MEMORY. The library never allocates. The caller declares every byte: an
 * ea_agent (static, stack or pool; sizeof(ea_agent) bytes, aligned to
 * EA_AGENT_STORAGE_ALIGN), the send ring, the receive buffer, the event
 * queue, and the transmit buffer given to each ea_agent_poll_transmit.
 * Memory handed to ea_agent_init (the buffers and every byte the identity
 * points to) and to ea_agent_register_plugin (names) must stay valid, and
 * must not be touched by the caller, until ea_agent_deinit.
 *
 * CONTENTS, in this order: results; setup (sizes, ea_config, ea_agent_init);
 * the loop (ea_agent_handle_* inputs, ea_agent_poll_* outputs); commands
 * (push, intake, task results, plugins, close); getters (state, stats);
 * the Linux host layer (ea_host_*). Each type sits by the first function
 * that uses it.
 *
 * THE LOOP, in outline (error checks left out; examples/c/ has it whole):
 *   ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring,
 *                 rx, sizeof rx, events, sizeof events);
 *   for (;;) {
 *       ea_agent_timeout_delay(&agent, now(), &delay_ms);
 *       if (wait_readable(sock, delay_ms) && (n = read(sock, buf, sizeof buf)) > 0)
 *           ea_agent_handle_received(&agent, now(), buf, n);
 *       ea_agent_handle_timeout(&agent, now());
 *       while (ea_agent_poll_transmit(&agent, now(), tx, sizeof tx, &n) == EA_OK && n > 0)
 *           send_all(sock, tx, n);
 *       while (ea_agent_poll_event(&agent, &ev) == EA_OK && ev.kind != EA_EVENT_NONE)
 *           act_on(&ev); // Connect: open, then ea_agent_handle_connected; Task: run it
 *   }
 *
 * CALL ORDER (sans-IO: the caller owns the transport and the clock).
 *   inputs:  ea_agent_handle_connected / _received / _disconnected / _timeout
 *            and commands (ea_agent_push, ea_agent_task_result, ...)
 *   outputs: after every input, ea_agent_poll_transmit until it writes 0
 *            (send each frame), then ea_agent_poll_event until EA_EVENT_NONE
 *            (act on each), then ea_agent_poll_timeout / _timeout_delay: call
 *            ea_agent_handle_timeout no later than that.
 *   a socket that will not take more: when a write falls short (EAGAIN),
 *            keep the rest of the frame, call ea_agent_handle_blocked(true)
 *            and stop polling transmits; once the rest is written, call
 *            ea_agent_handle_blocked(false) and go on. Then the timeout is
 *            never "now" while blocked, and one frame of buffer
 *            (ea_min_transmit_len) is all the caller ever holds.
 *
 * TIME. Every time-taking call takes now_ms, a monotonic millisecond count
 * of the caller's choosing, or (the _tick variants) a wrapping 32-bit
 * millisecond tick such as HAL_GetTick(), extended by the agent (call at
 * least once every 24 days). Use one form per agent.
 *
 * RESULTS. Every fallible call returns an ea_result: EA_OK (0) or a fixed
 * number that is never reused; ea_result_message() names it. NULL pointers
 * and bad lengths return a result, never crash. Outputs are written only on
 * EA_OK.
 *
 * POINTERS. Each function's "Pointers:" note says what every pointer
 * argument must point to and for how long (during the call, unless it says
 * otherwise). A NULL pointer returns EA_NULL_PARAMETER and changes nothing,
 * except where a note says "or NULL" (that output is then skipped) or
 * "NULL only with length 0" (an empty buffer). An ea_agent that
 * ea_agent_init never set up returns EA_NOT_INITIALIZED if its memory is
 * zeroed (static storage is), and so does one after ea_agent_deinit. A
 * pointer to the wrong thing or to too few bytes is undefined behaviour,
 * as in any C API: the library cannot see it.
 *
 * THREADS AND INTERRUPTS.
 *   - Without lock hooks, an agent is single-threaded: every ea_agent_* call
 *     on it must come from one thread (or be serialized by the caller), and
 *     none from an interrupt handler.
 *   - With lock hooks (ea_config.lock / .unlock), any ea_agent_* call may
 *     come from any thread: each one takes the lock for its whole duration.
 *     Event byte fields stay valid across other threads' pushes, task
 *     results and getters, but not across their handle/poll/close calls.
 *     The hooks must not call back into the agent.
 *   - A command from another thread (a push most of all) can move the
 *     deadline the loop sleeps on earlier (a push into an empty ring: the
 *     flush, flush_interval_ms away, instead of a heartbeat a minute away).
 *     After it, call ea_agent_wake_needed and, when it says so, wake the
 *     loop (eventfd, pipe, semaphore); the loop reads the new deadline.
 *   - An interrupt handler (or any context that must not block) pushes
 *     into an ea_intake with ea_intake_push: wait-free, lock-free, one
 *     producer per intake; the main loop moves its records into the ring
 *     with ea_agent_drain_intake. Never call ea_agent_* from an interrupt.
 *   - ea_agent_init and ea_agent_deinit must not run concurrently with any
 *     other call on the same agent.
 *
 * PANICS. The library is written not to panic. A build with the std
 * feature and panic=unwind (the dev profile) catches a panic, returns
 * EA_PANICKED and poisons the agent (every later call returns it too); a
 * panic=abort build (the release profile) aborts the process; the no_std
 * build (--no-default-features, bare metal) executes a trap instruction
 * (udf on Arm: a HardFault; unimp on RISC-V: an illegal-instruction
 * exception). libc is not needed by the no_std build.
 *
 * LINUX HOST LAYER (ea_host_*, Linux builds only, feature "host", on by
 * default). The library runs the I/O itself: ea_host_new allocates every
 * buffer once (nothing per record or per loop turn afterwards), connects
 * to "host:port" endpoints in order, owns the socket, the epoll loop, the
 * CLOCK_MONOTONIC clock and the /proc host stats, and calls on_event on
 * its loop thread with no lock held. ea_host_push and ea_host_task_result
 * work from any thread. Its own thread: ea_host_start, then ea_host_stop
 * (or ea_host_wait after SIGTERM/SIGINT with handle_signals). The caller's
 * loop: watch ea_host_fd for readable, wake after ea_host_timeout_ms, call
 * ea_host_process. Bare-metal builds have no ea_host_* symbols.
 *
 * VERSIONS. EA_ABI_VERSION (this header) must equal ea_abi_version() (the
 * library).
 */

#ifndef EDGE_AGENT_H
#define EDGE_AGENT_H

/* Generated by cbindgen from agent-ffi/ (agent-ffi/cbindgen.toml). Do not edit by hand. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#if UINTPTR_MAX == 0xFFFFFFFFu
#define EA_TARGET_32BIT 1
#endif

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/* ========================================================================
 * RESULTS
 * Every fallible call returns one of these; ea_result_message names it.
 * ======================================================================== */

/**
 * The outcome of an `ea_*` call. `EA_OK` is 0; everything else says what
 * was refused. Numbers are fixed and never reused.
 */
enum ea_result
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * Success; outputs were written.
   */
  EA_OK = 0,
  /**
   * A required pointer was NULL (or a buffer pointer was NULL with a
   * non-zero length). Nothing was done.
   */
  EA_NULL_PARAMETER = 1,
  /**
   * The storage given to `ea_agent_init` / `ea_intake_init` is smaller
   * than the library needs (see `ea_agent_storage_size`).
   */
  EA_STORAGE_TOO_SMALL = 2,
  /**
   * The storage is not aligned to `ea_agent_storage_align()` bytes.
   */
  EA_STORAGE_MISALIGNED = 3,
  /**
   * The handle was never initialized, or was deinitialized.
   */
  EA_NOT_INITIALIZED = 4,
  /**
   * `ea_agent_init` / `ea_intake_init` on storage that holds a live
   * handle: deinitialize it first.
   */
  EA_ALREADY_INITIALIZED = 5,
  /**
   * A panic was caught inside the library (a bug); the handle is
   * poisoned and every later call on it returns this.
   */
  EA_PANICKED = 6,
  /**
   * A string argument is not valid UTF-8.
   */
  EA_INVALID_UTF8 = 7,
  /**
   * An enum argument is out of range, or lock hooks were half given.
   */
  EA_INVALID_ARGUMENT = 8,
  /**
   * An output buffer is smaller than the call's documented minimum.
   */
  EA_BUFFER_TOO_SMALL = 9,
  /**
   * The send ring is full and the overflow policy could not make room;
   * the record was counted in `dropped_full`.
   */
  EA_RING_FULL = 10,
  /**
   * The record is larger than `max_record` (or the whole ring); it was
   * counted in `dropped_too_large`.
   */
  EA_RECORD_TOO_LARGE = 11,
  /**
   * All plugin slots are taken.
   */
  EA_PLUGINS_FULL = 12,
  /**
   * No plugin has this id.
   */
  EA_UNKNOWN_PLUGIN = 13,
  /**
   * A plugin of this name is registered already.
   */
  EA_DUPLICATE_PLUGIN = 14,
  /**
   * The intake queue is full; the record was counted in its
   * `dropped_full`.
   */
  EA_INTAKE_FULL = 15,
  /**
   * A plugin's name and version together are too long for its heartbeat.
   */
  EA_PLUGIN_NAME_TOO_LONG = 16,
  /**
   * `batch_max_bytes` cannot hold one record of `max_record` bytes.
   */
  EA_CONFIG_BATCH_TOO_SMALL = 100,
  /**
   * `ea_host_new`: no endpoint, more than 255, or one that is not
   * `"host:port"`.
   */
  EA_HOST_BAD_ENDPOINT = 200,
  /**
   * `ea_host_new` / `ea_host_start`: the system refused an epoll set, an
   * eventfd or a thread.
   */
  EA_HOST_SYSTEM = 201,
  /**
   * The host is stopping or stopped: it takes no more records.
   */
  EA_HOST_STOPPING = 202,
  /**
   * `ea_host_start` on a host whose thread runs already (or ran).
   */
  EA_HOST_ALREADY_STARTED = 203,
  /**
   * `ea_host_stop` / `ea_host_wait` on a host without its own thread.
   */
  EA_HOST_NOT_STARTED = 204,
  /**
   * `handle_signals` is set but another host of this process owns
   * SIGTERM / SIGINT.
   */
  EA_HOST_SIGNALS_TAKEN = 205,
  /**
   * `ea_host_new`: a TLS file (CA, certificate, key) unreadable or not
   * PEM, a key that does not fit its certificate, a certificate without a
   * key (or a key, certificate or server name without a CA file), or a
   * server name that is not a DNS name or IP address.
   */
  EA_HOST_TLS_CONFIG = 206,
  /**
   * `window_bytes` is smaller than `batch_max_bytes`.
   */
  EA_CONFIG_WINDOW_TOO_SMALL = 101,
  /**
   * The receive buffer is smaller than the minimum frame size.
   */
  EA_CONFIG_RX_BUFFER_TOO_SMALL = 102,
  /**
   * `heartbeat_interval_ms` is below 1000.
   */
  EA_CONFIG_HEARTBEAT_TOO_FREQUENT = 103,
  /**
   * No endpoints, zero attempts per endpoint, or zero records per batch.
   */
  EA_CONFIG_ZERO_LIMIT = 104,
  /**
   * An interval that must be positive is zero.
   */
  EA_CONFIG_ZERO_INTERVAL = 105,
  /**
   * `max_record` is smaller than the largest heartbeat.
   */
  EA_CONFIG_MAX_RECORD_TOO_SMALL = 106,
  /**
   * An identity address list is not a whole number of addresses (4 bytes
   * per IPv4, 16 per IPv6).
   */
  EA_CONFIG_BAD_ADDRESS_LIST = 107,
  /**
   * `backoff_base_ms` or `backoff_cap_ms` is zero.
   */
  EA_CONFIG_ZERO_BACKOFF = 108,
  /**
   * The Hello (identity, address lists, auth token) would be larger than
   * collectors must accept (4096 bytes), or than the transmit buffer
   * prescribed at init (`ea_agent_set_auth_token`).
   */
  EA_CONFIG_HELLO_TOO_LARGE = 109,
  /**
   * The event queue is smaller than `EA_MIN_EVENT_QUEUE`.
   */
  EA_CONFIG_EVENT_QUEUE_TOO_SMALL = 110,
  /**
   * The ring cannot hold one record of `max_record` bytes.
   */
  EA_CONFIG_RING_TOO_SMALL = 111,
  /**
   * A transmit buffer is smaller than `ea_min_transmit_len`.
   */
  EA_CONFIG_TX_BUFFER_TOO_SMALL = 112,
  /**
   * `EA_OVERFLOW_DROP_OLDEST` in a library built without it (the
   * `drop-oldest` feature, which the documented firmware build leaves
   * out; every other build has it).
   */
  EA_CONFIG_DROP_OLDEST_NOT_BUILT = 113,
};
#ifndef __cplusplus
typedef uint32_t ea_result;
#endif // __cplusplus

/**
 * The static, NUL-terminated message of `result`; "unknown result" for a
 * number that is not an `ea_result`. Never NULL.
 */
const char *ea_result_message(uint32_t result);

/* ========================================================================
 * SETUP: storage, config, identity, init
 * Declare an ea_agent, fill an ea_config (from ea_config_default) and an
 * ea_identity, size the buffers, then ea_agent_init. ea_agent_deinit ends it.
 * ======================================================================== */

/**
 * The ABI version of this header and library. Bumped whenever a function
 * signature, a struct layout or an enum number changes incompatibly;
 * compare it with `ea_abi_version()` at run time.
 */
#define EA_ABI_VERSION 3

/**
 * The library's `EA_ABI_VERSION`: refuse to run if it differs from the
 * header's.
 */
uint32_t ea_abi_version(void);

/**
 * The library's version, e.g. "0.1.0" (static, NUL-terminated).
 */
const char *ea_version(void);

#if defined(EA_TARGET_32BIT)
/**
 * Bytes of an `ea_agent` on 32-bit targets (Cortex-M, RISC-V 32): what
 * the agent needs there, within its 1.5 KiB budget
 * (`ea_agent_storage_size()` says how much of it is used).
 */
#define EA_AGENT_STORAGE_SIZE 1536
#endif

#if !defined(EA_TARGET_32BIT)
/**
 * Bytes of an `ea_agent` on 64-bit targets.
 */
#define EA_AGENT_STORAGE_SIZE 2048
#endif

/**
 * `EA_AGENT_STORAGE_SIZE` in 8-byte words.
 */
#define EA_AGENT_STORAGE_WORDS (EA_AGENT_STORAGE_SIZE / 8)

/**
 * Alignment an `ea_agent` needs (that of `uint64_t` on the supported
 * targets; `ea_agent` itself has it).
 */
#define EA_AGENT_STORAGE_ALIGN 8

/**
 * Storage for one agent, in caller memory: declare it static, on the stack
 * or in a pool, pass it to `ea_agent_init`, and to every other `ea_agent_*`
 * call afterwards. Its contents are private. It must not be moved or copied
 * while initialized (the agent keeps no pointer into it, but a copy is not
 * a second agent).
 */
typedef struct ea_agent {
  /**
   * Private.
   */
  uint64_t _opaque[EA_AGENT_STORAGE_WORDS];
} ea_agent;

/**
 * Bytes the agent needs in its storage (`<= sizeof(ea_agent)`), for
 * callers that carve storage out of a pool.
 */
size_t ea_agent_storage_size(void);

/**
 * Alignment the agent's storage needs (`EA_AGENT_STORAGE_ALIGN`).
 */
size_t ea_agent_storage_align(void);

/**
 * Smallest event queue `ea_agent_init` accepts, bytes. A queue this small
 * holds connection events only; tasks and configs need room for their
 * payloads (a few hundred bytes is typical).
 */
#define EA_MIN_EVENT_QUEUE 24

/**
 * What the ring does when a record does not fit.
 */
enum ea_overflow_policy
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * Refuse the new record (`EA_RING_FULL`, counted in `dropped_full`).
   */
  EA_OVERFLOW_REJECT_NEW = 0,
  /**
   * Evict the oldest never-sent records to make room (counted in
   * `dropped_evicted`); records already sent are never evicted. A
   * library built without it (the documented firmware build) refuses it
   * at init with `EA_CONFIG_DROP_OLDEST_NOT_BUILT`.
   */
  EA_OVERFLOW_DROP_OLDEST = 1,
};
#ifndef __cplusplus
typedef uint32_t ea_overflow_policy;
#endif // __cplusplus

/**
 * A lock or unlock hook: called with the config's `lock_userdata`.
 */
typedef void (*ea_lock_fn)(void *userdata);

/**
 * Every bound and interval of the agent. Get the defaults from
 * `ea_config_default()`, then change what you need. All times are in
 * milliseconds. `ea_agent_init` refuses an impossible combination with an
 * `EA_CONFIG_*` result.
 */
typedef struct ea_config {
  /**
   * Largest record payload accepted, bytes (default 1024, at least 384).
   */
  size_t max_record;
  /**
   * `ea_overflow_policy` value (default `EA_OVERFLOW_REJECT_NEW`).
   */
  uint32_t overflow_policy;
  /**
   * Most records in one batch (default 256).
   */
  uint32_t batch_max_records;
  /**
   * Largest batch, bytes of record entries (default 4096).
   */
  size_t batch_max_bytes;
  /**
   * Most unacked bytes in flight (default 16384; at least
   * `batch_max_bytes`).
   */
  size_t window_bytes;
  /**
   * Longest a pending record waits before a partial batch goes (default
   * 100).
   */
  uint64_t flush_interval_ms;
  /**
   * Interval between heartbeat records (default 60000, at least 1000).
   */
  uint64_t heartbeat_interval_ms;
  /**
   * Time without any received frame before a Ping (default 15000).
   */
  uint64_t idle_timeout_ms;
  /**
   * Time to wait for any frame after a Ping (default 5000).
   */
  uint64_t pong_timeout_ms;
  /**
   * Longest records may stay in flight with no ack progress before the
   * connection is deemed broken (default 30000).
   */
  uint64_t ack_timeout_ms;
  /**
   * Time for the caller to report the transport up (default 10000).
   */
  uint64_t connect_timeout_ms;
  /**
   * Time for the server to answer Hello (default 10000).
   */
  uint64_t handshake_timeout_ms;
  /**
   * Length of a healthy period: each one a connection stays up halves
   * the backoff's failure weight (default 30000).
   */
  uint64_t healthy_after_ms;
  /**
   * Upper bound of the first reconnect wait (default 500).
   */
  uint64_t backoff_base_ms;
  /**
   * Upper bound of any reconnect wait (default 60000).
   */
  uint64_t backoff_cap_ms;
  /**
   * Number of endpoints the caller can open, indexed from 0 (default 1).
   */
  uint8_t endpoints;
  /**
   * Failed attempts on one endpoint before moving on (default 3).
   */
  uint8_t attempts_per_endpoint;
  /**
   * Give up after this many consecutive failures; 0 = never (default 0).
   */
  uint32_t give_up_after;
  /**
   * Window to spread reconnects over when the collector gives no pacing
   * advice (`Accept.retry_window_ms` = 0): about the fleet's size divided
   * by the collector's admission rate; 0 = none, the window grows
   * exponentially from `backoff_base_ms` (default 0).
   */
  uint64_t backoff_fleet_window_ms;
  /**
   * Seed of the jitter PRNG; give each device its own (default 0).
   */
  uint64_t rng_seed;
  /**
   * Largest step agent time takes per input (default 3600000): a caller
   * instant further ahead counts as this much time passing.
   */
  uint64_t max_clock_step_ms;
  /**
   * A caller instant at most this much earlier than the latest one is a
   * stale reading (no time passes); one further back re-anchors the
   * agent's clock (default 1000).
   */
  uint64_t clock_backstep_tolerance_ms;
  /**
   * Called before every call that touches the agent, on the calling
   * thread; NULL for no locking (single-threaded use). Give both hooks or
   * neither (`EA_INVALID_ARGUMENT`). Must not call back into the agent.
   */
  ea_lock_fn lock;
  /**
   * Called after every such call; releases what `lock` took.
   */
  ea_lock_fn unlock;
  /**
   * Passed to `lock` and `unlock`.
   */
  void *lock_userdata;
} ea_config;

/**
 * The documented defaults: every bound and interval as listed on each
 * field of `ea_config`, no lock hooks.
 */
struct ea_config ea_config_default(void);

/**
 * Who the agent is, sent in every Hello. Strings are UTF-8, not
 * NUL-terminated, given as pointer + length; a NULL pointer is allowed with
 * length 0. **Every pointed-to byte must stay valid and unchanged until
 * `ea_agent_deinit`**: the agent keeps the pointers, not copies (string
 * literals and static arrays are the usual choice). The struct itself is
 * copied at init and may be discarded.
 */
typedef struct ea_identity {
  /**
   * Stable, unique agent id (e.g. a UUID).
   */
  const uint8_t *agent_id;
  /**
   * Bytes at `agent_id`.
   */
  size_t agent_id_len;
  /**
   * Host name.
   */
  const uint8_t *hostname;
  /**
   * Bytes at `hostname`.
   */
  size_t hostname_len;
  /**
   * Product name; tasks addressed to it (or to "") are for the agent.
   */
  const uint8_t *product;
  /**
   * Bytes at `product`.
   */
  size_t product_len;
  /**
   * Product version.
   */
  const uint8_t *version;
  /**
   * Bytes at `version`.
   */
  size_t version_len;
  /**
   * Packed private IPv4 addresses, 4 bytes each.
   */
  const uint8_t *intranet_ipv4;
  /**
   * Bytes at `intranet_ipv4` (a multiple of 4).
   */
  size_t intranet_ipv4_len;
  /**
   * Packed private IPv6 addresses, 16 bytes each.
   */
  const uint8_t *intranet_ipv6;
  /**
   * Bytes at `intranet_ipv6` (a multiple of 16).
   */
  size_t intranet_ipv6_len;
  /**
   * Packed public IPv4 addresses, 4 bytes each.
   */
  const uint8_t *extranet_ipv4;
  /**
   * Bytes at `extranet_ipv4` (a multiple of 4).
   */
  size_t extranet_ipv4_len;
  /**
   * Packed public IPv6 addresses, 16 bytes each.
   */
  const uint8_t *extranet_ipv6;
  /**
   * Bytes at `extranet_ipv6` (a multiple of 16).
   */
  size_t extranet_ipv6_len;
  /**
   * Credential for the server (opaque bytes); see also
   * `ea_agent_set_auth_token`.
   */
  const uint8_t *auth_token;
  /**
   * Bytes at `auth_token`.
   */
  size_t auth_token_len;
} ea_identity;

/**
 * Checks `config` and `identity` as `ea_agent_init` would, for a ring of
 * `ring_len`, a receive buffer of `rx_len` and an event queue of
 * `events_len` bytes, without creating anything: `EA_OK` or the result
 * init would return.
 *
 * Pointers: `config` and `identity` point to readable structs, the
 * identity's bytes valid during the call (NULL: `EA_NULL_PARAMETER`).
 */
ea_result ea_config_validate(const struct ea_config *config, const struct ea_identity *identity, size_t ring_len, size_t rx_len, size_t events_len);

/**
 * Writes to `*len` the smallest transmit buffer `ea_agent_poll_transmit`
 * accepts for this config and identity: every frame (a full batch, the
 * Hello) fits it.
 *
 * Pointers: `config` and `identity` point to readable structs, the
 * identity's bytes valid during the call; `len` to a writable `size_t`
 * (NULL: `EA_NULL_PARAMETER`).
 */
ea_result ea_min_transmit_len(const struct ea_config *config, const struct ea_identity *identity, size_t *len);

/**
 * Initializes an agent in `agent` (`agent_size` bytes, normally
 * `sizeof(ea_agent)`; at least `ea_agent_storage_size()`, aligned to
 * `EA_AGENT_STORAGE_ALIGN`). `config` and `identity` are copied; the
 * identity's bytes, and `ring`, `rx` and `events` (the send ring, the
 * receive buffer and the event queue) **must stay valid, and must not be
 * touched by the caller, until `ea_agent_deinit`**. The four memory areas
 * must not overlap. `rx_len` is the largest frame accepted (announced to
 * the server); `events_len` at least `EA_MIN_EVENT_QUEUE`.
 *
 * Returns `EA_OK`, or: `EA_NULL_PARAMETER`, `EA_STORAGE_MISALIGNED`,
 * `EA_STORAGE_TOO_SMALL`, `EA_ALREADY_INITIALIZED` (deinit first),
 * `EA_INVALID_ARGUMENT` (overlapping buffers, bad policy, half lock hooks),
 * `EA_INVALID_UTF8` (identity strings), or an `EA_CONFIG_*` result
 * (`EA_CONFIG_DROP_OLDEST_NOT_BUILT`: `EA_OVERFLOW_DROP_OLDEST` in a
 * library built without it, as the documented firmware build is). On
 * failure the storage is left as it was.
 *
 * The first `ea_agent_handle_timeout` (due at once) asks for a connection
 * to endpoint 0.
 *
 * Pointers: `agent` points to `agent_size` writable bytes aligned to
 * `EA_AGENT_STORAGE_ALIGN`; `config` and `identity` to readable structs
 * (copied; the identity's bytes are kept); `ring`, `rx`, `events` to
 * `ring_len`, `rx_len`, `events_len` writable bytes. The identity's bytes
 * and the three buffers stay valid and untouched by the caller until
 * `ea_agent_deinit`. NULL anywhere: `EA_NULL_PARAMETER`, storage
 * unchanged.
 */
ea_result ea_agent_init(struct ea_agent *agent, size_t agent_size, const struct ea_config *config, const struct ea_identity *identity, uint8_t *ring, size_t ring_len, uint8_t *rx, size_t rx_len, uint8_t *events, size_t events_len);

/**
 * Ends the agent (also a poisoned one): its storage, ring, buffers and
 * identity bytes may be reused afterwards. Records still in the ring are abandoned (check
 * `ea_stats.drained` first for a clean shutdown). No other call on this
 * agent may run concurrently or follow (except a new `ea_agent_init`).
 *
 * Pointers: `agent` points to an `ea_agent` (NULL: `EA_NULL_PARAMETER`).
 * No other call on it may run at the same time.
 */
ea_result ea_agent_deinit(struct ea_agent *agent);

/**
 * The kind of link the agent speaks over (PROTOCOL.md, "Links without
 * carrier"). Numbers are fixed.
 */
enum ea_link
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * A transport that is opened and closed (a TCP socket): the default.
   */
  EA_LINK_CARRIER = 0,
  /**
   * A byte stream with no connect or disconnect signal (a UART to a
   * serial-to-TCP gateway, a modem, a BLE bridge). The agent writes no
   * parting Close after a failure (it would lead the gateway's next
   * connection) and skips frames of any kind but Accept, Reject and
   * Close between its Hello and the Accept (leftovers of the previous
   * stream). Answer `EA_EVENT_CONNECT` with `ea_agent_handle_connected`
   * at once and ignore `EA_EVENT_DISCONNECT`: there is nothing to open
   * or close.
   */
  EA_LINK_CARRIERLESS = 1,
};
#ifndef __cplusplus
typedef uint32_t ea_link;
#endif // __cplusplus

/**
 * Sets the kind of link (`ea_link`), once, right after `ea_agent_init`;
 * `EA_INVALID_ARGUMENT` for a number that is not an `ea_link`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_set_link(struct ea_agent *agent, uint32_t link);

/**
 * Replaces the credential sent in Hello (a rotating token, a JWT), from
 * the next Hello on: the connection up now and every record in the ring
 * are untouched. The token's bytes **must stay valid until the next
 * `ea_agent_set_auth_token` or `ea_agent_deinit`** (the agent keeps the
 * pointer). `EA_CONFIG_HELLO_TOO_LARGE` when the Hello would no longer fit
 * the transmit buffer prescribed at init (the old token stays).
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `token` to `token_len` readable bytes that stay
 * valid and unchanged until `ea_agent_deinit` or the next
 * `ea_agent_set_auth_token` (NULL only with length 0).
 */
ea_result ea_agent_set_auth_token(struct ea_agent *agent, const uint8_t *token, size_t token_len);

/**
 * Sets the offset added to the caller's clock to timestamp the agent's own
 * records (heartbeats, task results): pass `wall_clock_ms - now_ms` for
 * Unix-time timestamps. Default 0.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_set_clock_offset(struct ea_agent *agent, int64_t offset_ms);

/* ========================================================================
 * THE LOOP: inputs (ea_agent_handle_*), then outputs (ea_agent_poll_*)
 * Report what the transport did, then poll transmits, events and the next
 * deadline, as in the loop at the top of this file.
 * ======================================================================== */

/**
 * The transport asked for by the last `EA_EVENT_CONNECT` is up. Ignored in
 * any state but CONNECTING.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_connected(struct ea_agent *agent, uint64_t now_ms);

/**
 * `ea_agent_handle_connected` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_connected_tick(struct ea_agent *agent, uint32_t tick);

/**
 * Bytes arrived on the transport (any chunking; the bytes are consumed
 * before the call returns). Garbage is skipped and counted, never an
 * error.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `bytes` to `len` readable bytes, consumed before
 * the call returns (NULL only with length 0).
 */
ea_result ea_agent_handle_received(struct ea_agent *agent, uint64_t now_ms, const uint8_t *bytes, size_t len);

/**
 * `ea_agent_handle_received` with a 32-bit tick.
 *
 * Pointers: as for `ea_agent_handle_received`.
 */
ea_result ea_agent_handle_received_tick(struct ea_agent *agent, uint32_t tick, const uint8_t *bytes, size_t len);

/**
 * What happened to the transport, given to `ea_agent_handle_disconnected`.
 */
enum ea_transport_error
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * The peer closed the stream in order.
   */
  EA_TRANSPORT_CLOSED = 0,
  /**
   * The connection attempt was refused.
   */
  EA_TRANSPORT_REFUSED = 1,
  /**
   * Reset, aborted, or a broken pipe.
   */
  EA_TRANSPORT_RESET = 2,
  /**
   * The transport's own timeout expired.
   */
  EA_TRANSPORT_TIMED_OUT = 3,
  /**
   * No route, address unavailable, network down.
   */
  EA_TRANSPORT_UNREACHABLE = 4,
  /**
   * Anything else.
   */
  EA_TRANSPORT_OTHER = 5,
};
#ifndef __cplusplus
typedef uint32_t ea_transport_error;
#endif // __cplusplus

/**
 * The transport failed, could not be opened, or was closed by the peer;
 * `error` is an `ea_transport_error` value (`EA_INVALID_ARGUMENT`
 * otherwise). Records in flight will be resent on the next connection.
 * The agent answers with an `EA_EVENT_DISCONNECT` (reason
 * `EA_DISCONNECT_TRANSPORT`) like for any end of a connection, also for a
 * connect that failed: the transport is already gone, nothing to close.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_disconnected(struct ea_agent *agent, uint64_t now_ms, uint32_t error);

/**
 * `ea_agent_handle_disconnected` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_disconnected_tick(struct ea_agent *agent, uint32_t tick, uint32_t error);

/**
 * The transport will not take more bytes now (`blocked` true: a write
 * returned EAGAIN / EWOULDBLOCK and the caller holds the unwritten rest of
 * a frame), or takes them again (false: the rest is written). While
 * blocked, `ea_agent_poll_transmit` writes nothing and the deadlines that
 * only a transmit serves stop (the flush of pending records; the idle
 * Ping becomes a liveness check: no frame received for `idle_timeout_ms +
 * pong_timeout_ms` ends the connection with `EA_DISCONNECT_PONG_TIMEOUT`),
 * so `ea_agent_timeout_delay` never says 0 for ever while the socket is
 * full. A loop then waits for "writable, readable or the timeout".
 *
 * The rule that bounds the caller's buffer to one frame
 * (`ea_min_transmit_len()` bytes): call `ea_agent_poll_transmit` only once
 * the previous frame is fully written; when a write falls short, keep the
 * rest and call this with true; when the rest is out, call it with false
 * and go on. Ignored (true) unless a connection is up; every new
 * connection starts unblocked. Takes no time and cannot fail but for the
 * handle checks.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_blocked(struct ea_agent *agent, bool blocked);

/**
 * Time has passed: fires every timer due at `now_ms`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_timeout(struct ea_agent *agent, uint64_t now_ms);

/**
 * `ea_agent_handle_timeout` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_handle_timeout_tick(struct ea_agent *agent, uint32_t tick);

/**
 * Writes the next frame to send into `out` and its length to `*written`;
 * 0 when there is nothing to send now. Call until it writes 0 after every
 * input, and write each frame to the transport. `out_len` must be at least
 * `ea_min_transmit_len()` for this agent's config and identity
 * (`EA_BUFFER_TOO_SMALL` otherwise): then every frame fits.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `out` to `out_len` writable bytes; `written` to a
 * writable `size_t`.
 */
ea_result ea_agent_poll_transmit(struct ea_agent *agent, uint64_t now_ms, uint8_t *out, size_t out_len, size_t *written);

/**
 * `ea_agent_poll_transmit` with a 32-bit tick.
 *
 * Pointers: as for `ea_agent_poll_transmit`.
 */
ea_result ea_agent_poll_transmit_tick(struct ea_agent *agent, uint32_t tick, uint8_t *out, size_t out_len, size_t *written);

/**
 * What an `ea_event` is. Numbers are fixed and never reused.
 */
enum ea_event_kind
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * No event: the queue is empty. Nothing else in the struct is set.
   */
  EA_EVENT_NONE = 0,
  /**
   * Open a transport to endpoint `endpoint`, then call
   * `ea_agent_handle_connected` or `ea_agent_handle_disconnected`.
   */
  EA_EVENT_CONNECT = 1,
  /**
   * Close the transport (after writing what `ea_agent_poll_transmit`
   * still gives). `reason` says why. Every end of a connection or of an
   * attempt raises one, also one the caller reported itself: a failed
   * connect or a dead socket passed to `ea_agent_handle_disconnected`
   * comes back as this event (`EA_DISCONNECT_TRANSPORT`), with nothing
   * left to close then; a loop can treat every end in one place here.
   */
  EA_EVENT_DISCONNECT = 2,
  /**
   * The handshake with endpoint `endpoint` completed; records flow.
   */
  EA_EVENT_CONNECTED = 3,
  /**
   * A task for the agent (`plugin == EA_PLUGIN_NONE`) or a plugin: fields
   * `plugin`, `object_name`, `data_type`, `payload`, `token`. Answer with
   * `ea_agent_task_result`.
   */
  EA_EVENT_TASK = 4,
  /**
   * The server asked the agent to shut down: field `token`. The library
   * does not stop by itself. Answer it like a task, with
   * `ea_agent_task_result` (status 0: shutting down, 1: refused), so the
   * server learns the outcome: a collector that sees no result resends
   * the task (at least on every new connection). To shut down cleanly,
   * answer, stop pushing, keep driving the agent until `ea_stats.drained`
   * (the answer is a record too), then `ea_agent_close`.
   */
  EA_EVENT_SHUTDOWN = 5,
  /**
   * A configuration whose version differs from the one held: fields
   * `name`, `version`, `payload`.
   */
  EA_EVENT_CONFIG = 6,
  /**
   * Records were acked since the last such event: fields `acked_total`,
   * `first_unacked_seq`.
   */
  EA_EVENT_DELIVERED = 7,
  /**
   * The give-up limit was reached; nothing more happens until
   * `ea_agent_reconnect_now`.
   */
  EA_EVENT_GAVE_UP = 8,
};
#ifndef __cplusplus
typedef uint32_t ea_event_kind;
#endif // __cplusplus

/**
 * Why the agent ended a connection (`ea_event.reason`). Numbers are fixed.
 */
enum ea_disconnect_reason
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * Not a disconnect event.
   */
  EA_DISCONNECT_NONE = 0,
  /**
   * The caller reported the transport failed or closed.
   */
  EA_DISCONNECT_TRANSPORT = 1,
  /**
   * The caller did not report the transport up within `connect_timeout_ms`.
   */
  EA_DISCONNECT_CONNECT_TIMEOUT = 2,
  /**
   * No Accept within `handshake_timeout_ms`.
   */
  EA_DISCONNECT_HANDSHAKE_TIMEOUT = 3,
  /**
   * No frame within `pong_timeout_ms` after a Ping.
   */
  EA_DISCONNECT_PONG_TIMEOUT = 4,
  /**
   * The server refused the handshake.
   */
  EA_DISCONNECT_REJECTED = 5,
  /**
   * The server sent Close.
   */
  EA_DISCONNECT_PEER_CLOSED = 6,
  /**
   * The server's version or frame size cannot carry this agent's records.
   */
  EA_DISCONNECT_INCOMPATIBLE = 7,
  /**
   * The caller closed the agent (`ea_agent_close`).
   */
  EA_DISCONNECT_SHUTDOWN = 8,
  /**
   * Records stayed in flight for `ack_timeout_ms` without ack progress.
   */
  EA_DISCONNECT_ACK_TIMEOUT = 9,
  /**
   * The server broke the protocol (an unreadable or unexpected message,
   * an ack of records never sent); the agent sent Close.
   */
  EA_DISCONNECT_PROTOCOL_ERROR = 10,
  /**
   * The server's resume point is one this agent cannot have produced
   * (e.g. two devices sharing one agent id); records stay in the ring.
   */
  EA_DISCONNECT_BAD_RESUME = 11,
};
#ifndef __cplusplus
typedef uint32_t ea_disconnect_reason;
#endif // __cplusplus

/**
 * `ea_event.plugin` for a task addressed to the agent itself.
 */
#define EA_PLUGIN_NONE 255

/**
 * One event. `kind` says which fields are set; the others are zero / NULL.
 * Byte fields are pointer + length, not NUL-terminated, and point into the
 * agent's event queue: **valid until the next `ea_agent_handle_*`,
 * `ea_agent_poll_event`, `ea_agent_close`, `ea_agent_reconnect_now` or
 * `ea_agent_deinit` call on this agent** (pushes, task results, stats and
 * other getters leave them valid). Copy what you need to keep.
 */
typedef struct ea_event {
  /**
   * `ea_event_kind` value.
   */
  uint32_t kind;
  /**
   * CONNECT, CONNECTED: the endpoint index.
   */
  uint8_t endpoint;
  /**
   * TASK: the plugin id the task is for, or `EA_PLUGIN_NONE` for the
   * agent itself.
   */
  uint8_t plugin;
  /**
   * DISCONNECT: `ea_disconnect_reason` value.
   */
  uint32_t reason;
  /**
   * TASK: what the task is (e.g. 1060 = shutdown).
   */
  uint32_t data_type;
  /**
   * TASK: the object name as sent by the server (UTF-8).
   */
  const uint8_t *object_name;
  /**
   * Bytes at `object_name`.
   */
  size_t object_name_len;
  /**
   * CONFIG: which configuration (UTF-8).
   */
  const uint8_t *name;
  /**
   * Bytes at `name`.
   */
  size_t name_len;
  /**
   * CONFIG: its new version (UTF-8).
   */
  const uint8_t *version;
  /**
   * Bytes at `version`.
   */
  size_t version_len;
  /**
   * TASK: arguments; CONFIG: the configuration.
   */
  const uint8_t *payload;
  /**
   * Bytes at `payload`.
   */
  size_t payload_len;
  /**
   * TASK, SHUTDOWN: the token to echo in `ea_agent_task_result` (UTF-8).
   */
  const uint8_t *token;
  /**
   * Bytes at `token`.
   */
  size_t token_len;
  /**
   * DELIVERED: records acked so far, in total.
   */
  uint64_t acked_total;
  /**
   * DELIVERED: the oldest sequence number still unacked.
   */
  uint64_t first_unacked_seq;
} ea_event;

/**
 * Takes the next event into `*event`; `kind == EA_EVENT_NONE` when there
 * is none. Call until NONE after every input (after the transmits). Byte
 * fields borrow the agent's event queue: see `ea_event`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `event` to a writable `ea_event`.
 */
ea_result ea_agent_poll_event(struct ea_agent *agent, struct ea_event *event);

/**
 * `ea_agent_poll_timeout`'s deadline when no timer runs (closed agent).
 */
#define EA_NEVER UINT64_MAX

/**
 * Writes to `*deadline_ms` the instant (on the caller's `now_ms` clock) by
 * which `ea_agent_handle_timeout` must be called next, or `EA_NEVER` when
 * no timer runs (CLOSED). Does not take a time argument; `_tick` users
 * want `ea_agent_timeout_delay_tick`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `deadline_ms` to a writable `uint64_t`.
 */
ea_result ea_agent_poll_timeout(const struct ea_agent *agent, uint64_t *deadline_ms);

/**
 * `ea_agent_timeout_delay`'s delay when no timer runs.
 */
#define EA_NEVER_DELAY UINT32_MAX

/**
 * Writes to `*delay_ms` how long from `now_ms` until
 * `ea_agent_handle_timeout` is due: 0 when due already, `EA_NEVER_DELAY`
 * when no timer runs, else at most `EA_NEVER_DELAY - 1`. What an RTOS
 * wait wants.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `delay_ms` to a writable `uint32_t`.
 */
ea_result ea_agent_timeout_delay(const struct ea_agent *agent, uint64_t now_ms, uint32_t *delay_ms);

/**
 * `ea_agent_timeout_delay` with a 32-bit tick.
 *
 * Pointers: as for `ea_agent_timeout_delay`.
 */
ea_result ea_agent_timeout_delay_tick(struct ea_agent *agent, uint32_t tick, uint32_t *delay_ms);

/**
 * Writes to `*wake` whether the thread that runs the agent's loop must be
 * woken: true when the agent's next deadline is now earlier than the one
 * the loop last read with `ea_agent_poll_timeout` or
 * `ea_agent_timeout_delay` (or the loop has read none yet). Call it after
 * a command from another thread (`ea_agent_push`, `ea_agent_task_result`,
 * `ea_agent_flush_now`, `ea_agent_heartbeat_now`, ...): a push can move
 * the deadline the loop sleeps on from a heartbeat a minute away to the
 * flush `flush_interval_ms` from now (full batches wait for that flush
 * too, unless the loop runs earlier).
 * When true, wake the loop (eventfd, pipe, semaphore, task
 * notification); it reads the new deadline itself. Each move is reported
 * once: the call records the new deadline as the one the loop will read.
 * Pushes into an `ea_intake` do not touch the agent: the loop drains the
 * intake on its own schedule (or its producer wakes it). Needs no time.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `wake` to a writable `bool`.
 */
ea_result ea_agent_wake_needed(const struct ea_agent *agent, bool *wake);

/* ========================================================================
 * COMMANDS: records, tasks, plugins, close
 * Calls the application makes between turns of the loop. After one, poll
 * transmits (and, from another thread, check ea_agent_wake_needed).
 * ======================================================================== */

/**
 * Queues a record (copied into the ring) for delivery; works in every
 * state. `EA_RING_FULL` / `EA_RECORD_TOO_LARGE` when refused (counted in
 * the stats). Types 1000-1999 are reserved for the library.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `payload` to `payload_len` readable bytes, copied
 * before the call returns (NULL only with length 0).
 */
ea_result ea_agent_push(struct ea_agent *agent, uint64_t now_ms, uint32_t data_type, uint64_t timestamp_ms, const uint8_t *payload, size_t payload_len);

/**
 * `ea_agent_push` with a 32-bit tick.
 *
 * Pointers: as for `ea_agent_push`.
 */
ea_result ea_agent_push_tick(struct ea_agent *agent, uint32_t tick, uint32_t data_type, uint64_t timestamp_ms, const uint8_t *payload, size_t payload_len);

/**
 * Bytes of an `ea_intake`.
 */
#define EA_INTAKE_STORAGE_SIZE 64

/**
 * `EA_INTAKE_STORAGE_SIZE` in 8-byte words.
 */
#define EA_INTAKE_STORAGE_WORDS (EA_INTAKE_STORAGE_SIZE / 8)

/**
 * Bytes of slot header beside each record's payload in the intake buffer.
 */
#define EA_INTAKE_SLOT_OVERHEAD 16

/**
 * Storage for one intake queue (the queue's records live in the buffer
 * given to `ea_intake_init`). Contents private; do not move or copy while
 * initialized.
 */
typedef struct ea_intake {
  /**
   * Private.
   */
  uint64_t _opaque[EA_INTAKE_STORAGE_WORDS];
} ea_intake;

/**
 * Initializes an intake queue over `buf[0..buf_len]` holding records of at
 * most `max_payload` bytes: `buf_len / (EA_INTAKE_SLOT_OVERHEAD +
 * max_payload)` slots (at least one, else `EA_BUFFER_TOO_SMALL`). `buf`
 * must stay valid until `ea_intake_deinit`. `intake_size` is the bytes at
 * `intake` (`sizeof(ea_intake)`).
 *
 * Pointers: `intake` points to `intake_size` writable bytes (an
 * `ea_intake`); `buf` to `buf_len` writable bytes used by nothing else
 * until `ea_intake_deinit`. NULL: `EA_NULL_PARAMETER`.
 */
ea_result ea_intake_init(struct ea_intake *intake, size_t intake_size, uint8_t *buf, size_t buf_len, size_t max_payload);

/**
 * Ends an intake; records still queued are discarded (they show in
 * `ea_intake_stats` as `queued` until then). Its storage and buffer may
 * then be reused. No push or drain may run concurrently.
 *
 * Pointers: `intake` points to an `ea_intake` set up by `ea_intake_init`
 * (NULL: `EA_NULL_PARAMETER`).
 */
ea_result ea_intake_deinit(struct ea_intake *intake);

/**
 * Queues one record (copied). Wait-free, lock-free, interrupt-safe; for one
 * producer per intake. `EA_INTAKE_FULL` or `EA_RECORD_TOO_LARGE` when
 * refused (and counted).
 *
 * Pointers: `intake` points to an `ea_intake` set up by `ea_intake_init`
 * (NULL: `EA_NULL_PARAMETER`); `payload` to `payload_len` readable bytes,
 * copied (NULL only with length 0).
 */
ea_result ea_intake_push(const struct ea_intake *intake, uint32_t data_type, uint64_t timestamp_ms, const uint8_t *payload, size_t payload_len);

/**
 * Counters of an intake queue (32-bit, wrapping).
 */
typedef struct ea_intake_counters {
  /**
   * Records accepted by `ea_intake_push`.
   */
  uint32_t pushed;
  /**
   * Records moved into the agent's ring by `ea_agent_drain_intake`. A
   * record the ring has no room for stays queued (with
   * `EA_OVERFLOW_REJECT_NEW`; `EA_OVERFLOW_DROP_OLDEST` evicts as for any
   * push); one larger than `max_record` is counted in the agent's
   * `dropped_too_large`.
   */
  uint32_t drained;
  /**
   * Records refused because every slot was taken.
   */
  uint32_t dropped_full;
  /**
   * Records refused as larger than the intake's `max_payload`.
   */
  uint32_t dropped_too_large;
  /**
   * Records waiting in the queue now (`pushed - drained`).
   */
  uint32_t queued;
  /**
   * Slots in the queue.
   */
  uint32_t slots;
} ea_intake_counters;

/**
 * The intake's counters. Callable from any context.
 *
 * Pointers: `intake` points to an `ea_intake` set up by `ea_intake_init`
 * (NULL: `EA_NULL_PARAMETER`); `out` to a writable `ea_intake_counters`.
 */
ea_result ea_intake_stats(const struct ea_intake *intake, struct ea_intake_counters *out);

/**
 * Moves the records waiting in `intake` into the ring (at most one pass
 * over its slots, so a busy producer cannot hold the caller here), in
 * order. With `EA_OVERFLOW_REJECT_NEW` it stops at the first record the
 * ring has no room for, which stays queued for a later drain; a record
 * larger than `max_record` is counted in `dropped_too_large`. Writes
 * the number moved to `*drained` unless it is NULL. Call it from the main
 * loop, e.g. before `ea_agent_handle_timeout`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `intake` to an `ea_intake` set up by
 * `ea_intake_init`; `drained` to a writable `uint32_t`, or NULL.
 */
ea_result ea_agent_drain_intake(struct ea_agent *agent, uint64_t now_ms, const struct ea_intake *intake, uint32_t *drained);

/**
 * `ea_agent_drain_intake` with a 32-bit tick.
 *
 * Pointers: as for `ea_agent_drain_intake`.
 */
ea_result ea_agent_drain_intake_tick(struct ea_agent *agent, uint32_t tick, const struct ea_intake *intake, uint32_t *drained);

/**
 * Answers a task: queues a task-result record carrying the task's token
 * (copied from the event), `status` (0 ok, 1 failed) and a UTF-8 message
 * (truncated to 256 bytes at a character boundary).
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `token` and `message` to `token_len` and
 * `message_len` readable bytes, copied (NULL only with length 0).
 */
ea_result ea_agent_task_result(struct ea_agent *agent, uint64_t now_ms, const uint8_t *token, size_t token_len, uint32_t status, const uint8_t *message, size_t message_len);

/**
 * `ea_agent_task_result` with a 32-bit tick.
 *
 * Pointers: as for `ea_agent_task_result`.
 */
ea_result ea_agent_task_result_tick(struct ea_agent *agent, uint32_t tick, const uint8_t *token, size_t token_len, uint32_t status, const uint8_t *message, size_t message_len);

/**
 * Sends what is pending without waiting for `flush_interval_ms` (within
 * the unacked window): the next `ea_agent_poll_transmit` gives the batch.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_flush_now(struct ea_agent *agent, uint64_t now_ms);

/**
 * `ea_agent_flush_now` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_flush_now_tick(struct ea_agent *agent, uint32_t tick);

/**
 * Pushes a heartbeat record (and the plugin heartbeats) now; the next one
 * follows `heartbeat_interval_ms` later. Nothing happens while CLOSED.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_heartbeat_now(struct ea_agent *agent, uint64_t now_ms);

/**
 * `ea_agent_heartbeat_now` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_heartbeat_now_tick(struct ea_agent *agent, uint32_t tick);

/**
 * Host statistics for the following heartbeats. Each value counts only
 * when its `has_*` flag is non-zero.
 */
typedef struct ea_host_stats {
  /**
   * Non-zero when `cpu_permille` is set.
   */
  uint8_t has_cpu_permille;
  /**
   * Non-zero when `open_fds` is set.
   */
  uint8_t has_open_fds;
  /**
   * Non-zero when `load1_centi` is set.
   */
  uint8_t has_load1_centi;
  /**
   * Non-zero when `load5_centi` is set.
   */
  uint8_t has_load5_centi;
  /**
   * Non-zero when `load15_centi` is set.
   */
  uint8_t has_load15_centi;
  /**
   * Non-zero when `rss_bytes` is set.
   */
  uint8_t has_rss_bytes;
  /**
   * Non-zero when `mem_used_bytes` is set.
   */
  uint8_t has_mem_used_bytes;
  /**
   * Non-zero when `mem_total_bytes` is set.
   */
  uint8_t has_mem_total_bytes;
  /**
   * Non-zero when `tx_bytes_per_sec` is set.
   */
  uint8_t has_tx_bytes_per_sec;
  /**
   * Non-zero when `rx_bytes_per_sec` is set.
   */
  uint8_t has_rx_bytes_per_sec;
  /**
   * CPU used by the agent's process, per-mille of one core.
   */
  uint32_t cpu_permille;
  /**
   * Open file descriptors of the agent's process.
   */
  uint32_t open_fds;
  /**
   * 1-minute load average x 100.
   */
  uint32_t load1_centi;
  /**
   * 5-minute load average x 100.
   */
  uint32_t load5_centi;
  /**
   * 15-minute load average x 100.
   */
  uint32_t load15_centi;
  /**
   * Resident set size of the agent's process, bytes.
   */
  uint64_t rss_bytes;
  /**
   * Memory in use on the host, bytes.
   */
  uint64_t mem_used_bytes;
  /**
   * Total memory of the host, bytes.
   */
  uint64_t mem_total_bytes;
  /**
   * The host's network transmit rate, bytes per second: what the host
   * sends on its network interfaces (not loopback), all processes, as
   * the caller measured it over its own interval. The agent's own
   * traffic is `ea_stats.bytes_sent`.
   */
  uint64_t tx_bytes_per_sec;
  /**
   * The host's network receive rate, bytes per second, measured like
   * `tx_bytes_per_sec`.
   */
  uint64_t rx_bytes_per_sec;
} ea_host_stats;

/**
 * Sets the host stats carried by the following heartbeats (copied).
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `stats` to a readable `ea_host_stats` (copied).
 */
ea_result ea_agent_set_host_stats(struct ea_agent *agent, const struct ea_host_stats *stats);

/**
 * A plugin's status, for `ea_agent_set_plugin_status`. Numbers are fixed.
 */
enum ea_plugin_status
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * Being started.
   */
  EA_PLUGIN_STARTING = 0,
  /**
   * Up.
   */
  EA_PLUGIN_RUNNING = 1,
  /**
   * Being stopped.
   */
  EA_PLUGIN_STOPPING = 2,
  /**
   * Not running.
   */
  EA_PLUGIN_STOPPED = 3,
  /**
   * Failed.
   */
  EA_PLUGIN_ERROR = 4,
};
#ifndef __cplusplus
typedef uint32_t ea_plugin_status;
#endif // __cplusplus

/**
 * Registers a plugin: tasks whose object name is `name` are delivered with
 * `plugin` = its id, and it gets a heartbeat record at every heartbeat.
 * `name` and `version` (UTF-8) **must stay valid until `ea_agent_deinit`**
 * (the agent keeps the pointers). Writes the id to `*id`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `name` and `version` to `name_len` and
 * `version_len` readable bytes that stay valid until the plugin is
 * unregistered or the agent deinitialized; `id` to a writable `uint8_t`.
 */
ea_result ea_agent_register_plugin(struct ea_agent *agent, const uint8_t *name, size_t name_len, const uint8_t *version, size_t version_len, uint8_t *id);

/**
 * Updates a plugin's process id and `ea_plugin_status` for its next
 * heartbeats.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_set_plugin_status(struct ea_agent *agent, uint8_t id, uint32_t pid, uint32_t status);

/**
 * Removes a plugin; its name and version may be freed afterwards.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_unregister_plugin(struct ea_agent *agent, uint8_t id);

/**
 * Closes for good: a Close frame is queued (if a transport is up), an
 * `EA_EVENT_DISCONNECT` (SHUTDOWN) follows, and nothing reconnects until
 * `ea_agent_reconnect_now`. Records stay in the ring.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_close(struct ea_agent *agent, uint64_t now_ms);

/**
 * `ea_agent_close` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_close_tick(struct ea_agent *agent, uint32_t tick);

/**
 * Leaves GAVE_UP, CLOSED or BACKOFF: the next attempt is due now, with the
 * failure count reset.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_reconnect_now(struct ea_agent *agent, uint64_t now_ms);

/**
 * `ea_agent_reconnect_now` with a 32-bit tick.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_agent_reconnect_now_tick(struct ea_agent *agent, uint32_t tick);

/* ========================================================================
 * GETTERS: state and counters
 * Read-only; each takes the lock (if any) for a consistent snapshot.
 * ======================================================================== */

/**
 * Where the session is. Numbers are fixed.
 */
enum ea_state
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * Waiting before the next attempt.
   */
  EA_STATE_BACKOFF = 0,
  /**
   * Waiting for the caller to open the transport.
   */
  EA_STATE_CONNECTING = 1,
  /**
   * Hello sent, waiting for Accept.
   */
  EA_STATE_HANDSHAKING = 2,
  /**
   * Records flow.
   */
  EA_STATE_CONNECTED = 3,
  /**
   * The give-up limit was reached.
   */
  EA_STATE_GAVE_UP = 4,
  /**
   * Closed by the caller.
   */
  EA_STATE_CLOSED = 5,
};
#ifndef __cplusplus
typedef uint32_t ea_state;
#endif // __cplusplus

/**
 * Writes the session's state to `*state`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `state` to a writable `ea_state`.
 */
ea_result ea_agent_state(const struct ea_agent *agent, ea_state *state);

/**
 * Writes to `*drained` whether every pushed record is acked or dropped
 * (the moment to close for a clean shutdown).
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `drained` to a writable `bool`.
 */
ea_result ea_agent_is_drained(const struct ea_agent *agent, bool *drained);

/**
 * A snapshot of the agent: state, ring occupancy and every counter. All
 * counts are since `ea_agent_init`. Accounting invariant, at every moment:
 * `pushed == acked + dropped_evicted + ring_records`; refused records
 * (`dropped_full`, `dropped_too_large`) were never pushed. `pushed`,
 * `dropped_full` and `dropped_evicted` count every record, the agent's own
 * heartbeat records too; `heartbeats_*` count those alone, so the
 * application's own are `pushed - heartbeats_pushed` and so on
 * (`dropped_too_large` is never a heartbeat).
 */
typedef struct ea_stats {
  /**
   * `ea_state` value.
   */
  uint32_t state;
  /**
   * 1 when `endpoint` is set (not in GAVE_UP or CLOSED).
   */
  uint8_t has_endpoint;
  /**
   * The endpoint being tried or used (the next one while in BACKOFF).
   */
  uint8_t endpoint;
  /**
   * 1 when every pushed record is acked or dropped.
   */
  uint8_t drained;
  /**
   * 1 when `last_rtt_ms` is set.
   */
  uint8_t has_last_rtt;
  /**
   * Round-trip time of the last Ping, ms.
   */
  uint32_t last_rtt_ms;
  /**
   * Records in the ring (pending, in flight or awaiting resend).
   */
  uint64_t ring_records;
  /**
   * Records in the ring not yet sent on this connection.
   */
  uint64_t ring_pending_records;
  /**
   * Records sent and not yet acked.
   */
  uint64_t ring_inflight_records;
  /**
   * Bytes of records in flight.
   */
  uint64_t ring_inflight_bytes;
  /**
   * The oldest sequence number still unacked.
   */
  uint64_t first_unacked_seq;
  /**
   * The sequence number the next new record will get.
   */
  uint64_t next_seq;
  /**
   * Bytes in use in the ring.
   */
  uint32_t ring_used_bytes;
  /**
   * Ring capacity, bytes.
   */
  uint32_t ring_capacity;
  /**
   * Records stored in the ring.
   */
  uint64_t pushed;
  /**
   * Records acked by the server.
   */
  uint64_t acked;
  /**
   * Records refused: ring full.
   */
  uint64_t dropped_full;
  /**
   * Records refused: larger than `max_record`.
   */
  uint64_t dropped_too_large;
  /**
   * Never-sent records evicted by `EA_OVERFLOW_DROP_OLDEST`.
   */
  uint64_t dropped_evicted;
  /**
   * Bytes handed to the caller to send.
   */
  uint64_t bytes_sent;
  /**
   * Bytes received from the caller.
   */
  uint64_t bytes_received;
  /**
   * Frames sent.
   */
  uint64_t frames_sent;
  /**
   * Valid frames received.
   */
  uint64_t frames_received;
  /**
   * Handshakes completed.
   */
  uint64_t connections;
  /**
   * Connection attempts or connections that failed.
   */
  uint64_t connect_failures;
  /**
   * Bytes the frame decoder skipped while resynchronizing.
   */
  uint64_t decoder_skipped_bytes;
  /**
   * Frames with a bad CRC.
   */
  uint64_t decoder_bad_crc;
  /**
   * Frames of a kind this agent does not know (skipped).
   */
  uint64_t unknown_kinds;
  /**
   * Frames unreadable or unexpected in the current state (skipped).
   */
  uint64_t malformed;
  /**
   * Events dropped because the event queue was full.
   */
  uint64_t events_dropped;
  /**
   * Tasks for a plugin that is not registered.
   */
  uint64_t tasks_unroutable;
  /**
   * Acks naming a sequence number never sent, and other protocol errors.
   */
  uint64_t protocol_errors;
  /**
   * Tasks ignored as resent (same token seen recently).
   */
  uint64_t tasks_duplicate;
  /**
   * Frame candidates whose declared size exceeded the receive buffer.
   */
  uint64_t decoder_oversized;
  /**
   * Caller instants clamped (far ahead) or re-anchoring (far back).
   */
  uint64_t clock_anomalies;
  /**
   * Handshakes ended because the server cannot carry this agent's
   * records or speaks another protocol version.
   */
  uint64_t peer_incompatible;
  /**
   * Connections ended by the ack timeout.
   */
  uint64_t ack_timeouts;
  /**
   * Of `pushed`: the agent's own heartbeat records (agent and plugin
   * heartbeats, types 1000 and 1001).
   */
  uint64_t heartbeats_pushed;
  /**
   * Of `dropped_full`: heartbeat records refused (ring full).
   */
  uint64_t heartbeats_dropped_full;
  /**
   * Of `dropped_evicted`: never-sent heartbeat records evicted.
   */
  uint64_t heartbeats_dropped_evicted;
} ea_stats;

/**
 * Writes a snapshot of the state, ring and counters to `*stats`.
 *
 * Pointers: `agent` points to an initialized `ea_agent` (NULL:
 * `EA_NULL_PARAMETER`); `stats` to a writable `ea_stats`.
 */
ea_result ea_agent_stats(const struct ea_agent *agent, struct ea_stats *stats);

/* ========================================================================
 * LINUX HOST LAYER (ea_host_*): the library runs the socket, loop and clock
 * Linux builds with the "host" feature only (on by default); bare-metal
 * builds have none of these symbols.
 * ======================================================================== */

/**
 * A running agent with its own I/O. Opaque; made by `ea_host_new`.
 */
typedef struct ea_host ea_host;

/**
 * What the last TLS failure was (`ea_host_loop_stats.last_tls_failure`).
 */
enum ea_tls_failure
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /**
   * No TLS failure yet (or no TLS configured).
   */
  EA_TLS_FAILURE_NONE = 0,
  /**
   * This host refused the collector's certificate (unknown issuer,
   * wrong name, expired, ...).
   */
  EA_TLS_FAILURE_SERVER_CERTIFICATE = 1,
  /**
   * The collector sent an alert: it refused this host's certificate
   * (missing, unknown, expired, not the agent id) or the handshake.
   */
  EA_TLS_FAILURE_PEER_ALERT = 2,
  /**
   * Anything else TLS refused (malformed records, a peer that is not TLS).
   */
  EA_TLS_FAILURE_PROTOCOL = 3,
};
#ifndef __cplusplus
typedef uint32_t ea_tls_failure;
#endif // __cplusplus

/**
 * The callback for a host's events, on the loop's thread, with no lock
 * held: it may call `ea_host_push`, `ea_host_task_result` and
 * `ea_host_begin_stop` (not `ea_host_process`, `ea_host_stop`,
 * `ea_host_wait` or `ea_host_free`). `event` and the bytes it points to are
 * valid only during the call. Kinds delivered: CONNECTED, DISCONNECT (for
 * information: the host reconnects by itself), TASK and SHUTDOWN (answer
 * with `ea_host_task_result`; a SHUTDOWN does not stop the host: call
 * `ea_host_begin_stop` if the program agrees), CONFIG, GAVE_UP.
 */
typedef void (*ea_host_event_fn)(void *userdata, struct ea_host *host, const struct ea_event *event);

/**
 * Everything `ea_host_new` needs. Start from `ea_host_config_default()`.
 * Strings are pointer + length (UTF-8), copied by `ea_host_new`.
 */
typedef struct ea_host_config {
  /**
   * Collectors as NUL-terminated `"host:port"` strings (`"[v6]:port"`
   * for IPv6 literals), tried in this order; each name is resolved when
   * it is used. 1 to 255 of them.
   */
  const char *const *endpoints;
  /**
   * Entries at `endpoints`.
   */
  size_t endpoints_len;
  /**
   * The agent's bounds and intervals. `endpoints` is set from
   * `endpoints_len`; `rng_seed` 0 draws a per-device seed (machine id,
   * pid, time); the lock hooks must be NULL (the host locks itself).
   */
  struct ea_config agent;
  /**
   * Who the agent is. An empty `hostname` means `gethostname()`. Address
   * lists given here are sent as they are; when all four are empty and
   * `detect_addresses` is set, the interfaces' addresses are sent.
   */
  struct ea_identity identity;
  /**
   * Fill the Hello's address lists from the host's interfaces (default true).
   */
  bool detect_addresses;
  /**
   * Read host stats from /proc for every heartbeat (default true).
   */
  bool host_stats;
  /**
   * Start the clean stop on SIGTERM or SIGINT (default false). One host
   * per process; the previous handlers come back when it stops.
   */
  bool handle_signals;
  /**
   * Send ring, bytes (default 262144).
   */
  size_t ring_bytes;
  /**
   * Receive buffer, bytes: the largest frame accepted (default 65536).
   */
  size_t rx_bytes;
  /**
   * Event queue, bytes (default 16384).
   */
  size_t event_bytes;
  /**
   * Out buffer between the agent and the socket; 0 (default) = twice
   * `ea_min_transmit_len`. Smaller than that: EA_CONFIG_TX_BUFFER_TOO_SMALL.
   */
  size_t out_bytes;
  /**
   * How long a stop (also one a signal starts) waits for unacked
   * records before sending Close, ms (default 5000).
   */
  uint64_t drain_timeout_ms;
  /**
   * SO_SNDBUF for the socket; 0 (default) = the kernel's.
   */
  size_t socket_send_buffer;
  /**
   * TLS to the collector: path (UTF-8, not NUL-terminated) of a PEM file
   * with the CA certificates trusted for it (or the collector's own
   * certificate, pinned). Length 0 (default): plain TCP. rustls with the
   * ring provider; the handshake runs under `connect_timeout_ms`. An
   * unusable file: EA_HOST_TLS_CONFIG at `ea_host_new`.
   */
  const uint8_t *tls_ca_file;
  /**
   * Bytes at `tls_ca_file`.
   */
  size_t tls_ca_file_len;
  /**
   * Path of the PEM client certificate chain (mutual TLS; its CN is the
   * agent id the collector expects); length 0: none. Needs `tls_key_file`.
   */
  const uint8_t *tls_cert_file;
  /**
   * Bytes at `tls_cert_file`.
   */
  size_t tls_cert_file_len;
  /**
   * Path of the PEM private key of `tls_cert_file`; length 0: none.
   */
  const uint8_t *tls_key_file;
  /**
   * Bytes at `tls_key_file`.
   */
  size_t tls_key_file_len;
  /**
   * The name the collector's certificate must hold; length 0 (default):
   * each endpoint's host (a DNS name or an IP address).
   */
  const uint8_t *tls_server_name;
  /**
   * Bytes at `tls_server_name`.
   */
  size_t tls_server_name_len;
  /**
   * Called for events (may be NULL).
   */
  ea_host_event_fn on_event;
  /**
   * Passed to `on_event`.
   */
  void *userdata;
} ea_host_config;

/**
 * The defaults of `ea_host_config` (no endpoints, no callback).
 */
struct ea_host_config ea_host_config_default(void);

/**
 * Makes a host from `config` (every buffer allocated now, every
 * unworkable setting refused with its `EA_CONFIG_*` / `EA_HOST_*` result)
 * and writes it to `*out`. Nothing connects until `ea_host_start` (its own
 * thread) or the first `ea_host_process` (the caller's loop).
 *
 * Pointers: `config` points to a readable `ea_host_config`, whose strings
 * and arrays need be valid only during this call (everything is copied);
 * `out` to a writable `ea_host *`. NULL: `EA_NULL_PARAMETER`.
 */
ea_result ea_host_new(const struct ea_host_config *config, struct ea_host **out);

/**
 * Runs the host's loop on a thread of its own until the stop completes.
 * `EA_HOST_ALREADY_STARTED` when it runs (or ran) already.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_host_start(struct ea_host *host);

/**
 * Queues a record timestamped with the wall clock (Unix ms); from any
 * thread. The loop is woken when the record makes its next deadline
 * earlier, so it leaves within `flush_interval_ms`. `EA_RING_FULL` /
 * `EA_RECORD_TOO_LARGE` (counted), `EA_HOST_STOPPING` once a stop began.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `payload` to `payload_len` readable bytes, copied
 * (NULL only with length 0).
 */
ea_result ea_host_push(struct ea_host *host, uint32_t data_type, const uint8_t *payload, size_t payload_len);

/**
 * As `ea_host_push`, with the caller's timestamp.
 *
 * Pointers: as for `ea_host_push`.
 */
ea_result ea_host_push_at(struct ea_host *host, uint32_t data_type, uint64_t timestamp_ms, const uint8_t *payload, size_t payload_len);

/**
 * Answers a task (the `token` of a TASK or SHUTDOWN event), from any
 * thread, also while stopping. A message longer than 256 bytes is cut at
 * a character boundary.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `token` and `message` to `token_len` and
 * `message_len` readable bytes, copied (NULL only with length 0).
 */
ea_result ea_host_task_result(struct ea_host *host, const uint8_t *token, size_t token_len, uint32_t status, const uint8_t *message, size_t message_len);

/**
 * What a clean stop left behind.
 */
typedef struct ea_host_report {
  /**
   * Every record was acked (or dropped and counted) before Close.
   */
  bool drained;
  /**
   * Records still unacked at Close (the agent's heartbeats included).
   */
  uint64_t unacked;
  /**
   * Records the ring took in total.
   */
  uint64_t pushed;
  /**
   * Records acked by the collector.
   */
  uint64_t acked;
  /**
   * Records refused because the ring was full.
   */
  uint64_t dropped_full;
  /**
   * Records refused because they were larger than `max_record`.
   */
  uint64_t dropped_too_large;
  /**
   * Never-sent records evicted under `EA_OVERFLOW_DROP_OLDEST`.
   */
  uint64_t dropped_evicted;
} ea_host_report;

/**
 * Starts the clean stop and returns at once: pushes are refused
 * (`EA_HOST_STOPPING`), pending records go now, and Close follows when
 * everything is acked or `drain_ms` passed. Callable from the callback.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`).
 */
ea_result ea_host_begin_stop(struct ea_host *host, uint64_t drain_ms);

/**
 * Stops the host's own thread cleanly (`ea_host_begin_stop` with
 * `drain_ms`, then waits for Close) and writes what stayed unacked to
 * `*report` (may be NULL). `EA_HOST_NOT_STARTED` (and nothing begun)
 * without a thread of its own: in the caller's loop, use
 * `ea_host_begin_stop` and keep calling `ea_host_process`.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `report` to a writable `ea_host_report`, or NULL.
 */
ea_result ea_host_stop(struct ea_host *host, uint64_t drain_ms, struct ea_host_report *report);

/**
 * Waits until the host's own thread ends: after a stop another thread or
 * a signal (`handle_signals`) began. Writes the report (may be NULL).
 *
 * Pointers: as for `ea_host_stop`.
 */
ea_result ea_host_wait(struct ea_host *host, struct ea_host_report *report);

/**
 * The caller's loop: the fd to watch for readable (`*out_fd`); when it
 * is, call `ea_host_process`. Valid until `ea_host_free`.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `out_fd` to a writable `int32_t`.
 */
ea_result ea_host_fd(const struct ea_host *host, int32_t *out_fd);

/**
 * The caller's loop: milliseconds until `ea_host_process` must run even
 * if the fd stays quiet (`*out_ms`; -1 = no timer), ready for `poll()` /
 * `epoll_wait()`.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `out_ms` to a writable `int32_t`.
 */
ea_result ea_host_timeout_ms(struct ea_host *host, int32_t *out_ms);

/**
 * The caller's loop: does everything due now (reads, timers, writes,
 * callbacks) without waiting. `*out_stopped` (may be NULL) becomes true
 * once a stop completed; then `*report` (may be NULL) is written.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`), and its own thread (`ea_host_start`) is not
 * running; `out_stopped` to a writable `bool`, or NULL; `report` to a
 * writable `ea_host_report`, or NULL.
 */
ea_result ea_host_process(struct ea_host *host, bool *out_stopped, struct ea_host_report *report);

/**
 * The agent's counters (`ea_stats`), from any thread.
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `out` to a writable `ea_stats`.
 */
ea_result ea_host_agent_stats(const struct ea_host *host, struct ea_stats *out);

/**
 * The host loop's own counters (`ea_host_loop_counters`): what the agent's
 * `ea_stats` cannot tell, such as a refused certificate apart from a
 * flaky network.
 */
typedef struct ea_host_loop_stats {
  /**
   * Times the loop returned from waiting or `ea_host_process` ran.
   */
  uint64_t wakeups;
  /**
   * Connection attempts started.
   */
  uint64_t connects;
  /**
   * Connections lost or attempts failed for a network reason (resolve,
   * connect, read or write errors, end of stream).
   */
  uint64_t network_failures;
  /**
   * TLS sessions that failed (a refused certificate on either side, an
   * alert, a protocol error); never counted in `network_failures`.
   */
  uint64_t tls_failures;
  /**
   * What the last of `tls_failures` was.
   */
  ea_tls_failure last_tls_failure;
  /**
   * Writes that left bytes in the out buffer (socket full).
   */
  uint64_t blocked_writes;
} ea_host_loop_stats;

/**
 * The host loop's counters (`ea_host_loop_stats`), from any thread
 * (named apart from the struct: C has one namespace for both).
 *
 * Pointers: `host` comes from `ea_host_new` and is not yet freed (NULL:
 * `EA_NULL_PARAMETER`); `out` to a writable `ea_host_loop_stats`.
 */
ea_result ea_host_loop_counters(const struct ea_host *host, struct ea_host_loop_stats *out);

/**
 * Frees the host. A running own thread is stopped first without draining
 * (use `ea_host_stop` for a clean stop). NULL is a no-op.
 *
 * Pointers: `host` comes from `ea_host_new`, is freed once, and no other
 * call on it runs at the same time or follows (NULL: `EA_NULL_PARAMETER`).
 */
ea_result ea_host_free(struct ea_host *host);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* EDGE_AGENT_H */

/*
 * main.c - the edge agent in a bare-metal C firmware (QEMU mps2-an386, a
 * Cortex-M4): static storage only, SysTick as the clock, UART0 as the
 * transport (a serial link to a serial-to-TCP gateway: no carrier), records
 * pushed from the SysTick interrupt through an ea_intake and from the main
 * loop, heartbeats carrying the firmware's own figures, a task answered and
 * a configuration applied to later records.
 *
 * The run ends (semihosting exit, status 0) once every record has been
 * acked, a task was answered and a configuration applied; status 1 on a
 * failed check or the deadline, 3 on a fault (board.c).
 *
 * Build and run: see Makefile and README "Using it in firmware".
 */
#include "board.h"
#include "edge_agent.h"

/* ---- what the run does (override with -D) -------------------------------- */
#ifndef FW_MAIN_RECORDS
#define FW_MAIN_RECORDS 300u /* pushed by the main loop ... */
#endif
#ifndef FW_MAIN_PERIOD_MS
#define FW_MAIN_PERIOD_MS 40u /* ... one every this many ms */
#endif
#ifndef FW_TIMER_RECORDS
#define FW_TIMER_RECORDS 150u /* pushed by the SysTick interrupt ... */
#endif
#ifndef FW_TIMER_PERIOD_MS
#define FW_TIMER_PERIOD_MS 80u /* ... one every this many ms */
#endif
#ifndef FW_DEADLINE_MS
#define FW_DEADLINE_MS 120000u /* give up (status 1) after this long */
#endif
#ifndef FW_CARRIERLESS
#define FW_CARRIERLESS 1 /* 0: the agent's default, for links with a carrier */
#endif

#define TYPE_MAIN 2001u
#define TYPE_TIMER 2002u
#define BOOT_UNIX_MS 1765000000000ull /* no RTC: wall time of boot, fixed */

/* ---- every byte the agent uses ------------------------------------------- */
static ea_agent agent;
static uint8_t ring[8192];   /* records waiting for their ack */
static uint8_t rx[1024];     /* the largest frame the collector may send */
static uint8_t events[512];  /* tasks and configs waiting for the loop */
static uint8_t tx[1280];     /* one outgoing frame (checked at boot) */
static ea_intake intake;     /* records from interrupt context */
static uint8_t intake_buf[8 * (EA_INTAKE_SLOT_OVERHEAD + 32)];

static const char AGENT_ID[] = "fw-mps2-1";
static const char PRODUCT[] = "edge-fw-example";
static const char VERSION[] = "1.0.0";

/* The configuration applied: records carry its version. Two buffers, so the
 * SysTick interrupt reading the current one never sees a half-written one. */
static char cfg_buf[2][24];
static const char *volatile cfg_version = "none";
static uint32_t cfg_applied;

static volatile uint32_t timer_pushed, timer_refused;
static uint32_t main_pushed, tasks_answered, fails;

static size_t put_str(char *out, size_t at, size_t cap, const char *s) {
    while (*s && at < cap) out[at++] = *s++;
    return at;
}

static size_t put_u32(char *out, size_t at, size_t cap, uint32_t v) {
    char d[10];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n > 0 && at < cap) out[at++] = d[--n];
    return at;
}

/* "m 17 cfg=v2": who pushed it, its number, the configuration in force. */
static size_t record_text(char *out, size_t cap, char who, uint32_t i) {
    size_t n = 0;
    out[n++] = who;
    out[n++] = ' ';
    n = put_u32(out, n, cap, i);
    n = put_str(out, n, cap, " cfg=");
    return put_str(out, n, cap, cfg_version);
}

/* Counts a failed check; logs the first few (a broken run must not flood
 * the log), and ends the run after too many. */
static void check(int ok, const char *what, ea_result r) {
    if (!ok) {
        if (++fails > 20u) {
            log_str("fw: too many failures");
            log_end();
            board_exit(1);
        }
        /* The result's number (ea_result_message would add its table of
         * messages, about 1.4 KB, to the image). */
        log_str("fw: FAILED ");
        log_str(what);
        log_u32("result", r);
        log_end();
    }
}
#define OK(call)                                                                \
    do {                                                                        \
        ea_result r_ = (call);                                                  \
        check(r_ == EA_OK, #call, r_);                                          \
    } while (0)

/* ---- stack per call, painted ------------------------------------------- */
/* Every ea_agent_* call of the loop runs through MEASURED: the 3 KiB below
 * the caller's stack pointer are painted first (inline, no call: nothing
 * of ours lives below the stack pointer), and afterwards the deepest word
 * touched gives the call's stack, interrupts that landed during it
 * included. The high-water mark per call is in the summary line. */
enum { S_PUSH, S_DRAIN, S_RECEIVED, S_DELAY, S_TIMEOUT, S_TRANSMIT, S_EVENT, S_CONNECTED, S_TASK_RESULT,
       S_HOST_STATS, S_COUNT };
static const char *const stack_names[S_COUNT] = {"push", "drain", "received", "delay", "timeout", "transmit",
                                                 "poll_event", "connected", "task_result", "host_stats"};
static uint32_t stack_max[S_COUNT];
#define STACK_WINDOW_WORDS 768u
#define STACK_PAINT 0xC0DEC0DEu
#define MEASURED(slot, r, call)                                                  \
    do {                                                                         \
        volatile uint32_t *sp_, *p_;                                             \
        uint32_t used_;                                                          \
        BOARD_READ_SP(sp_);                                                      \
        for (p_ = sp_ - STACK_WINDOW_WORDS; p_ < sp_; p_++) *p_ = STACK_PAINT;   \
        (r) = (call);                                                            \
        for (p_ = sp_ - STACK_WINDOW_WORDS; p_ < sp_ && *p_ == STACK_PAINT; p_++) { \
        }                                                                        \
        used_ = (uint32_t)(sp_ - p_) * 4u;                                       \
        if (used_ > stack_max[slot]) stack_max[slot] = used_;                    \
    } while (0)
#define OK_MEASURED(slot, call)                                                  \
    do {                                                                         \
        ea_result rm_;                                                           \
        MEASURED(slot, rm_, call);                                               \
        check(rm_ == EA_OK, #call, rm_);                                         \
    } while (0)

/* SysTick, every millisecond: the interrupt's share of the records. The
 * intake is lock-free; the main loop moves its records into the agent. */
void app_tick(uint32_t now) {
    if (now % FW_TIMER_PERIOD_MS == 0 && timer_pushed + timer_refused < FW_TIMER_RECORDS) {
        char text[32];
        size_t n = record_text(text, sizeof text, 't', timer_pushed + timer_refused);
        if (ea_intake_push(&intake, TYPE_TIMER, BOOT_UNIX_MS + now, (const uint8_t *)text, n) == EA_OK) {
            timer_pushed++;
        } else {
            timer_refused++;
        }
    }
}

static void transmit(uint32_t now) {
    size_t n;
    for (;;) {
        n = 0;
        ea_result r;
        MEASURED(S_TRANSMIT, r, ea_agent_poll_transmit_tick(&agent, now, tx, sizeof tx, &n));
        if (r != EA_OK || n == 0) return;
        uart_write(tx, n);
    }
}

static void copy_bytes(char *dst, size_t cap, const uint8_t *src, size_t len) {
    size_t i;
    if (len > cap - 1u) len = cap - 1u;
    for (i = 0; i < len; i++) dst[i] = (char)src[i];
    dst[len] = 0;
}

static void on_events(uint32_t now) {
    ea_event ev;
    for (;;) {
        ea_result r;
        MEASURED(S_EVENT, r, ea_agent_poll_event(&agent, &ev));
        check(r == EA_OK, "ea_agent_poll_event", r);
        if (r != EA_OK) return;
        switch (ev.kind) {
        case EA_EVENT_NONE:
            return;
        case EA_EVENT_CONNECT:
            /* The UART is always "open": the gateway's link to the
             * collector is its business. */
            OK_MEASURED(S_CONNECTED, ea_agent_handle_connected_tick(&agent, now));
            break;
        case EA_EVENT_CONNECTED:
            log_str("fw: connected");
            log_u32("t", now);
            log_end();
            break;
        case EA_EVENT_DISCONNECT:
            log_str("fw: session lost");
            log_u32("t", now);
            log_u32("reason", ev.reason);
            log_end();
            break;
        case EA_EVENT_TASK: {
            /* Answer with the task's own payload; the token is valid until
             * the next poll, so the answer goes out now. */
            static const char prefix[] = "fw did: ";
            uint8_t msg[64];
            size_t n = 0, i;
            for (i = 0; prefix[i]; i++) msg[n++] = (uint8_t)prefix[i];
            for (i = 0; i < ev.payload_len && n < sizeof msg; i++) msg[n++] = ev.payload[i];
            OK_MEASURED(S_TASK_RESULT, ea_agent_task_result_tick(&agent, now, ev.token, ev.token_len, 0, msg, n));
            tasks_answered++;
            log_str("fw: task answered");
            log_u32("t", now);
            log_end();
            break;
        }
        case EA_EVENT_CONFIG: {
            char *next = cfg_buf[cfg_applied % 2u];
            copy_bytes(next, sizeof cfg_buf[0], ev.version, ev.version_len);
            cfg_version = next;
            cfg_applied++;
            log_str("fw: config applied ");
            log_str(next);
            log_u32("t", now);
            log_end();
            break;
        }
        default:
            break;
        }
    }
}

/* The firmware's own figures, carried by every heartbeat: CPU load (the
 * share of SysTick interrupts that found the CPU busy), static RAM, and the
 * UART's byte rates. Refreshed at most twice a second. */
struct host_window {
    uint32_t at, idle, rx, tx;
};

static void update_host_stats(uint32_t now, struct host_window *w) {
    extern uint32_t _sdata, _ebss;
    ea_host_stats hs = {0};
    uint32_t span = now - w->at, idle = board_idle_ticks - w->idle;
    uint32_t rx_now = uart_rx_bytes, tx_now = uart_tx_bytes;
    if (span < 500u) return;
    hs.has_cpu_permille = 1;
    hs.cpu_permille = idle >= span ? 0u : (span - idle) * 1000u / span;
    hs.has_mem_used_bytes = 1;
    hs.mem_used_bytes = (uint64_t)((uintptr_t)&_ebss - (uintptr_t)&_sdata);
    hs.has_mem_total_bytes = 1;
    hs.mem_total_bytes = 128u * 1024u;
    hs.has_rx_bytes_per_sec = 1;
    /* 32-bit arithmetic: a UART moves far less than 4 MB per window, and
     * a 64-bit division would link ~1 KB of libgcc/compiler_builtins. */
    hs.rx_bytes_per_sec = (rx_now - w->rx) * 1000u / span;
    hs.has_tx_bytes_per_sec = 1;
    hs.tx_bytes_per_sec = (tx_now - w->tx) * 1000u / span;
    OK_MEASURED(S_HOST_STATS, ea_agent_set_host_stats(&agent, &hs));
    w->at = now;
    w->idle = board_idle_ticks;
    w->rx = rx_now;
    w->tx = tx_now;
}

int main(void) {
    ea_config cfg = ea_config_default();
    ea_identity id = {0};
    size_t min_tx = 0;
    uint32_t init_stack, next_main = FW_MAIN_PERIOD_MS;
    struct host_window window = {0, 0, 0, 0};
    uint8_t buf[64];

    id.agent_id = (const uint8_t *)AGENT_ID;
    id.agent_id_len = sizeof AGENT_ID - 1u;
    id.product = (const uint8_t *)PRODUCT;
    id.product_len = sizeof PRODUCT - 1u;
    id.version = (const uint8_t *)VERSION;
    id.version_len = sizeof VERSION - 1u;

    /* A serial link: small batches, quick liveness checks, and a handshake
     * that gives up soon enough to retry past a gateway's reconnect gap. */
    cfg.rng_seed = 0x5eed0001u;
    cfg.max_record = 384; /* a heartbeat's largest; our records are smaller */
    cfg.batch_max_records = 16;
    cfg.batch_max_bytes = 1024;
    cfg.window_bytes = 4096;
    cfg.flush_interval_ms = 50;
    cfg.heartbeat_interval_ms = 1000;
    cfg.idle_timeout_ms = 1000;
    cfg.pong_timeout_ms = 1000;
    cfg.ack_timeout_ms = 1500;
    cfg.handshake_timeout_ms = 1500;
    cfg.backoff_base_ms = 100;
    cfg.backoff_cap_ms = 500;

    if (ea_abi_version() != EA_ABI_VERSION) board_exit(1);
#ifdef FW_TRAP_AT_BOOT
    /* The test of the fault path: what a trapped panic executes. */
    BOARD_TRAP();
#endif
    OK(ea_min_transmit_len(&cfg, &id, &min_tx));
    check(min_tx <= sizeof tx, "tx buffer holds the largest frame", EA_OK);
    OK(ea_intake_init(&intake, sizeof intake, intake_buf, sizeof intake_buf, 32));

    /* Init's stack, painted: interrupts are not running yet. */
    stack_paint();
    OK(ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring, rx, sizeof rx, events, sizeof events));
    init_stack = stack_used();
    if (fails) return 1;
#if FW_CARRIERLESS
    OK(ea_agent_set_link(&agent, EA_LINK_CARRIERLESS));
#endif
    /* The agent's own records (heartbeats, task results) in Unix time. */
    OK(ea_agent_set_clock_offset(&agent, (int64_t)BOOT_UNIX_MS));
    log_str("fw: boot");
    log_u32("agent_storage", (uint32_t)ea_agent_storage_size());
    log_u32("sizeof_ea_agent", (uint32_t)sizeof agent);
    log_u32("min_tx", (uint32_t)min_tx);
    log_u32("stack_init", init_stack);
    log_end();

    uart_init();
    board_clock_init();

    for (;;) {
        uint32_t now = board_ticks, delay = 0, drained = 0;
        size_t n;
        bool done = false;

        while ((n = uart_read(buf, sizeof buf)) > 0) OK_MEASURED(S_RECEIVED, ea_agent_handle_received_tick(&agent, now, buf, n));
        if (main_pushed < FW_MAIN_RECORDS && (int32_t)(now - next_main) >= 0) {
            char text[32];
            size_t len = record_text(text, sizeof text, 'm', main_pushed);
            OK_MEASURED(S_PUSH, ea_agent_push_tick(&agent, now, TYPE_MAIN, BOOT_UNIX_MS + now, (const uint8_t *)text, len));
            main_pushed++;
            next_main += FW_MAIN_PERIOD_MS;
        }
        OK_MEASURED(S_DRAIN, ea_agent_drain_intake_tick(&agent, now, &intake, &drained));
        update_host_stats(now, &window);
        OK_MEASURED(S_DELAY, ea_agent_timeout_delay_tick(&agent, now, &delay));
        if (delay == 0) OK_MEASURED(S_TIMEOUT, ea_agent_handle_timeout_tick(&agent, now));
        transmit(now);
        on_events(now);
        transmit(now); /* a task result or a Hello queued by an event */

        OK(ea_agent_is_drained(&agent, &done));
        if (done && main_pushed == FW_MAIN_RECORDS && timer_pushed + timer_refused == FW_TIMER_RECORDS &&
            tasks_answered > 0 && cfg_applied > 0) {
            ea_stats st;
            uint32_t i;
            OK(ea_agent_stats(&agent, &st));
            log_str("fw: done");
            log_u32("t", now);
            log_u32("main", main_pushed);
            log_u32("timer", timer_pushed);
            log_u32("timer_refused", timer_refused);
            log_u32("pushed", (uint32_t)st.pushed);
            log_u32("acked", (uint32_t)st.acked);
            log_u32("connections", (uint32_t)st.connections);
            log_u32("connect_failures", (uint32_t)st.connect_failures);
            log_u32("stack_init", init_stack);
            log_u32("uart_overruns", uart_rx_overruns);
            log_u32("fails", fails);
            log_end();
            log_str("fw: stack");
            for (i = 0; i < S_COUNT; i++) log_u32(stack_names[i], stack_max[i]);
            log_end();
            return fails || timer_refused || uart_rx_overruns ? 1 : 0;
        }
        if (now > FW_DEADLINE_MS) {
            log_str("fw: deadline passed");
            log_u32("main", main_pushed);
            log_u32("timer", timer_pushed);
            log_u32("tasks", tasks_answered);
            log_u32("configs", cfg_applied);
            log_u32("drained", done);
            log_end();
            return 1;
        }
        board_idle();
    }
}

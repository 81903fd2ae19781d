/*
 * threads.c - one agent driven by a main loop while other contexts push:
 * PUSHERS threads call ea_agent_push directly (the config's lock hooks wrap
 * every call in a pthread mutex), and one "interrupt" thread pushes into an
 * ea_intake, lock-free, which the main loop drains into the ring. The main
 * loop talks to the in-memory collector of fake_server.h.
 *
 * Exact counts at the end: every record each producer got EA_OK for was
 * stored by the server exactly once; every refusal (ring full, intake full)
 * is in the library's counters, one for one. Run under ThreadSanitizer.
 * Built with -DTHREADS_NO_LOCK it is the race TSan must report.
 */
#define _POSIX_C_SOURCE 200809L
#include "edge_agent.h"
#include "fake_server.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PUSHERS 3
#define PER_THREAD 2000u
#define IRQ_RECORDS 2000u
#define APP_TYPE 2001u

static ea_agent agent;
static uint8_t ring[8192];
static uint8_t rx[4096];
static uint8_t events[1024];
static uint8_t tx[8192];
static ea_intake intake;
static uint8_t intake_buf[64 * (EA_INTAKE_SLOT_OVERHEAD + 8)];
static fs_server server;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

/* Written by one thread each, read after join. */
static unsigned long ring_full_seen[PUSHERS];
static unsigned long intake_full_seen;
static int done_threads;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_briefly(void) {
    struct timespec ts = {0, 200000}; /* 0.2 ms */
    nanosleep(&ts, NULL);
}

static void lock(void *m) { pthread_mutex_lock((pthread_mutex_t *)m); }
static void unlock(void *m) { pthread_mutex_unlock((pthread_mutex_t *)m); }

/* Payload: 4-byte unique index (thread * PER_THREAD + i), 4 more bytes. */
static void payload_of(uint32_t idx, uint8_t p[8]) {
    p[0] = (uint8_t)idx; p[1] = (uint8_t)(idx >> 8); p[2] = (uint8_t)(idx >> 16); p[3] = (uint8_t)(idx >> 24);
    memcpy(p + 4, "thrd", 4);
}

static void *pusher(void *arg) {
    int t = (int)(size_t)arg;
    uint32_t i = 0;
    while (i < PER_THREAD) {
        uint8_t p[8];
        ea_result r;
        payload_of((uint32_t)t * PER_THREAD + i, p);
        r = ea_agent_push(&agent, now_ms(), APP_TYPE, 0, p, sizeof p);
        if (r == EA_OK) {
            i++;
        } else if (r == EA_RING_FULL) {
            ring_full_seen[t]++;
            pause_briefly();
        } else {
            printf("threads: push -> %s\n", ea_result_message(r));
            return NULL;
        }
    }
    __atomic_add_fetch(&done_threads, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The "interrupt handler": never takes the agent's lock. */
static void *irq(void *arg) {
    uint32_t i = 0;
    (void)arg;
    while (i < IRQ_RECORDS) {
        uint8_t p[8];
        ea_result r;
        payload_of(PUSHERS * PER_THREAD + i, p);
        r = ea_intake_push(&intake, APP_TYPE, 0, p, sizeof p);
        if (r == EA_OK) {
            i++;
        } else if (r == EA_INTAKE_FULL) {
            intake_full_seen++;
            pause_briefly();
        } else {
            printf("threads: intake push -> %s\n", ea_result_message(r));
            return NULL;
        }
    }
    __atomic_add_fetch(&done_threads, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(void) {
    ea_config cfg = ea_config_default();
    ea_identity id;
    ea_stats st;
    ea_intake_counters ic;
    pthread_t th[PUSHERS + 1];
    unsigned long ring_full_total = 0;
    uint32_t i, once = 0;
    int t, up = 0, fails = 0;
    uint64_t start;
    static const char ID[] = "threads";

    memset(&id, 0, sizeof id);
    id.agent_id = (const uint8_t *)ID;
    id.agent_id_len = sizeof ID - 1;
#ifndef THREADS_NO_LOCK
    cfg.lock = lock;
    cfg.unlock = unlock;
    cfg.lock_userdata = &mutex;
#else
    /* The negative control of the ThreadSanitizer test: no lock hooks, so
     * the pushers race with the main loop inside the library. */
    (void)lock;
    (void)unlock;
    (void)mutex;
#endif
    cfg.flush_interval_ms = 2;
    /* One heartbeat, at the first call below (into an empty ring), and no
     * other during the test: the counts stay exact. */
    cfg.heartbeat_interval_ms = 3600000;
    if (ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring, rx, sizeof rx, events, sizeof events) != EA_OK ||
        ea_intake_init(&intake, sizeof intake, intake_buf, sizeof intake_buf, 8) != EA_OK) {
        printf("threads: init failed\n");
        return 1;
    }
    fs_init(&server, APP_TYPE);
    ea_agent_handle_timeout(&agent, now_ms());

    for (t = 0; t < PUSHERS; t++) pthread_create(&th[t], NULL, pusher, (void *)(size_t)t);
    pthread_create(&th[PUSHERS], NULL, irq, NULL);

    start = now_ms();
    for (;;) {
        uint64_t now = now_ms();
        size_t n;
        ea_event ev;
        int all_done = __atomic_load_n(&done_threads, __ATOMIC_ACQUIRE) == PUSHERS + 1;
        if (ea_agent_drain_intake(&agent, now, &intake, NULL) != EA_OK) fails++;
        ea_agent_handle_timeout(&agent, now);
        while (ea_agent_poll_transmit(&agent, now, tx, sizeof tx, &n) == EA_OK && n > 0)
            if (up) fs_feed(&server, tx, n);
        while (ea_agent_poll_event(&agent, &ev) == EA_OK && ev.kind != EA_EVENT_NONE) {
            if (ev.kind == EA_EVENT_CONNECT) {
                fs_connection_reset(&server);
                up = 1;
                ea_agent_handle_connected(&agent, now);
            } else if (ev.kind == EA_EVENT_DISCONNECT) {
                up = 0;
            }
        }
        if (up && server.out_len) {
            uint8_t copy[sizeof server.out];
            size_t len = server.out_len;
            memcpy(copy, server.out, len);
            server.out_len = 0;
            ea_agent_handle_received(&agent, now, copy, len);
        }
        ea_agent_stats(&agent, &st);
        ea_intake_stats(&intake, &ic);
        if (all_done && st.drained && ic.queued == 0) break;
        if (now - start > 60000) {
            printf("threads: timed out\n");
            fails++;
            break;
        }
        pause_briefly();
    }
    for (t = 0; t <= PUSHERS; t++) pthread_join(th[t], NULL);

    ea_agent_stats(&agent, &st);
    ea_intake_stats(&intake, &ic);
    for (t = 0; t < PUSHERS; t++) ring_full_total += ring_full_seen[t];
    for (i = 0; i < PUSHERS * PER_THREAD + IRQ_RECORDS; i++) once += server.app_seen[i] == 1;
    printf("threads: app records stored %llu (once each: %u), agent pushed %llu acked %llu, ring full %llu "
           "(threads saw %lu), intake pushed %u drained %u full %u (irq saw %lu)\n",
           (unsigned long long)server.app_records, once, (unsigned long long)st.pushed, (unsigned long long)st.acked,
           (unsigned long long)st.dropped_full, ring_full_total, ic.pushed, ic.drained, ic.dropped_full,
           intake_full_seen);
    fails += server.app_records != PUSHERS * PER_THREAD + IRQ_RECORDS;
    fails += once != PUSHERS * PER_THREAD + IRQ_RECORDS;
    fails += st.pushed != st.acked || st.acked != server.stored;
    fails += server.stored != server.app_records + 1; /* + the heartbeat */
    /* The intake never overflowed into the ring's counters: every intake
     * record got into the ring, so every ring refusal is a thread's. */
    fails += st.dropped_full != ring_full_total;
    fails += ic.pushed != IRQ_RECORDS || ic.drained != IRQ_RECORDS || ic.dropped_full != intake_full_seen;
    fails += st.dropped_too_large != 0 || ic.dropped_too_large != 0;
    ea_intake_deinit(&intake);
    ea_agent_deinit(&agent);
    printf("threads: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}

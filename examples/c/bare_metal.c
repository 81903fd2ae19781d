/*
 * bare_metal.c - the agent driven by hand, firmware style: static storage
 * only (no malloc), no sockets, a simulated millisecond clock, an in-memory
 * "link" and the tiny collector of fake_server.h at its other end.
 *
 * It walks through: connect, handshake, batches and acks, a task round
 * trip, a cut link with records in flight, and the reconnect that resumes
 * where the server stopped (nothing lost, nothing stored twice). It exits 0
 * only if every record pushed was acked and stored exactly once.
 *
 * Build: see examples/c/Makefile (pkg-config --cflags --libs edge_agent).
 */
#include "edge_agent.h"
#include "fake_server.h"

#include <stdio.h>
#include <string.h>

#define APP_TYPE 2001u
#define RECORDS 300u

/* Every byte the agent uses, declared here. */
static ea_agent agent;
static uint8_t ring[16384];
static uint8_t rx[4096];
static uint8_t events[1024];
static uint8_t tx[8192];

static const char AGENT_ID[] = "bare-metal-1";
static const char PRODUCT[] = "edge-demo";
static const char VERSION[] = "1.0.0";
static const uint8_t IPV4[] = {192, 168, 1, 20};
/* Credentials: the first at init, the second rotated in while running. */
static const char TOKEN_1[] = "jwt-epoch-1";
static const char TOKEN_2[] = "jwt-epoch-2";

static fs_server server;
static uint64_t now;      /* the simulated clock, ms */
static int link_up;       /* the fake transport */
static int cut_pending;   /* cut the link after the next frames */
static uint64_t inflight_at_cut;
static int fails;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("bare_metal: FAILED %s (line %d)\n", #cond, __LINE__);      \
            fails++;                                                             \
        }                                                                        \
    } while (0)

#define OK(call)                                                                 \
    do {                                                                         \
        ea_result r_ = (call);                                                   \
        if (r_ != EA_OK) {                                                       \
            printf("bare_metal: %s -> %u %s\n", #call, (unsigned)r_,            \
                   ea_result_message(r_));                                       \
            fails++;                                                             \
        }                                                                        \
    } while (0)

/* Writes every frame the agent has to the link (or loses it on a cut). */
static void transmit(void) {
    size_t n = 0;
    for (;;) {
        OK(ea_agent_poll_transmit(&agent, now, tx, sizeof tx, &n));
        if (n == 0) break;
        if (link_up) fs_feed(&server, tx, n);
    }
    if (cut_pending && link_up) {
        /* The link dies: the server stored the last batches, but its acks
         * are lost, so the agent still holds those records in flight. On
         * reconnect the server's resume point acks them: not resent. */
        ea_stats st;
        OK(ea_agent_stats(&agent, &st));
        inflight_at_cut = st.ring_inflight_records;
        server.out_len = 0;
        link_up = 0;
        cut_pending = 0;
        printf("bare_metal: t=%llu link cut, %llu records in flight, their acks lost\n", (unsigned long long)now,
               (unsigned long long)inflight_at_cut);
        OK(ea_agent_handle_disconnected(&agent, now, EA_TRANSPORT_RESET));
    }
}

/* Acts on every event. */
static void events_drain(void) {
    ea_event ev;
    for (;;) {
        OK(ea_agent_poll_event(&agent, &ev));
        switch (ev.kind) {
        case EA_EVENT_NONE:
            return;
        case EA_EVENT_CONNECT:
            /* Open endpoint ev.endpoint; here it always works at once. */
            fs_connection_reset(&server);
            link_up = 1;
            OK(ea_agent_handle_connected(&agent, now));
            break;
        case EA_EVENT_CONNECTED:
            printf("bare_metal: t=%llu connected to endpoint %u\n", (unsigned long long)now, ev.endpoint);
            break;
        case EA_EVENT_DISCONNECT:
            printf("bare_metal: t=%llu disconnect, reason %u\n", (unsigned long long)now, (unsigned)ev.reason);
            link_up = 0;
            break;
        case EA_EVENT_TASK: {
            /* Copy what is needed: the bytes are valid until the next
             * handle/poll call. Run the task and answer it. */
            char token[64];
            size_t tl = ev.token_len < sizeof token - 1 ? ev.token_len : sizeof token - 1;
            memcpy(token, ev.token, tl);
            token[tl] = 0;
            printf("bare_metal: t=%llu task type %u token %s payload %.*s\n", (unsigned long long)now,
                   (unsigned)ev.data_type, token, (int)ev.payload_len, (const char *)ev.payload);
            OK(ea_agent_task_result(&agent, now, (const uint8_t *)token, tl, 0, (const uint8_t *)"done", 4));
            break;
        }
        case EA_EVENT_DELIVERED:
            break;
        default:
            printf("bare_metal: t=%llu event %u\n", (unsigned long long)now, (unsigned)ev.kind);
            break;
        }
    }
}

/* Delivers what the server wrote, in two pieces (any chunking works). */
static void receive(void) {
    if (link_up && server.out_len > 0) {
        size_t half = server.out_len / 2;
        size_t n = server.out_len;
        uint8_t copy[sizeof server.out];
        memcpy(copy, server.out, n);
        server.out_len = 0;
        OK(ea_agent_handle_received(&agent, now, copy, half));
        OK(ea_agent_handle_received(&agent, now, copy + half, n - half));
    }
}

/* One turn of the main loop: input done, now the outputs. */
static void outputs(void) {
    int i;
    for (i = 0; i < 8; i++) {
        transmit();
        events_drain();
        receive();
        if (server.out_len == 0) break;
    }
}

static void push_record(uint32_t i) {
    uint8_t payload[32];
    ea_result r;
    payload[0] = (uint8_t)i;
    payload[1] = (uint8_t)(i >> 8);
    payload[2] = (uint8_t)(i >> 16);
    payload[3] = (uint8_t)(i >> 24);
    memset(payload + 4, 'x', sizeof payload - 4);
    r = ea_agent_push(&agent, now, APP_TYPE, 1700000000000ull + now, payload, sizeof payload);
    CHECK(r == EA_OK);
}

int main(void) {
    ea_config cfg = ea_config_default();
    ea_identity id;
    ea_stats st;
    size_t min_tx = 0;
    uint32_t pushed = 0;
    uint64_t deadline;
    int task_sent = 0, cut_done = 0, steps = 0;

    if (ea_abi_version() != EA_ABI_VERSION) {
        printf("bare_metal: header ABI %u, library ABI %u\n", (unsigned)EA_ABI_VERSION, (unsigned)ea_abi_version());
        return 1;
    }
    printf("bare_metal: edge_agent %s, storage %u of %u bytes\n", ea_version(), (unsigned)ea_agent_storage_size(),
           (unsigned)sizeof agent);

    memset(&id, 0, sizeof id);
    id.agent_id = (const uint8_t *)AGENT_ID;
    id.agent_id_len = sizeof AGENT_ID - 1;
    id.product = (const uint8_t *)PRODUCT;
    id.product_len = sizeof PRODUCT - 1;
    id.version = (const uint8_t *)VERSION;
    id.version_len = sizeof VERSION - 1;
    id.intranet_ipv4 = IPV4;
    id.intranet_ipv4_len = sizeof IPV4;
    id.auth_token = (const uint8_t *)TOKEN_1;
    id.auth_token_len = sizeof TOKEN_1 - 1;

    cfg.rng_seed = 0x5eed;
    cfg.flush_interval_ms = 20;
    cfg.batch_max_records = 32;
    OK(ea_min_transmit_len(&cfg, &id, &min_tx));
    CHECK(min_tx <= sizeof tx);
    OK(ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring, rx, sizeof rx, events, sizeof events));

    fs_init(&server, APP_TYPE);
    now = 0;
    OK(ea_agent_handle_timeout(&agent, now)); /* asks to connect */
    outputs();

    /* Push a record every 5 ms; the agent batches, the server acks. */
    while (steps++ < 100000) {
        uint64_t next_push = pushed < RECORDS ? now + 5 : (uint64_t)-1;
        OK(ea_agent_poll_timeout(&agent, &deadline));
        deadline = deadline < next_push ? deadline : next_push;
        if (deadline == EA_NEVER) break;
        if (deadline > now) now = deadline; /* the clock never goes back */
        if (now == next_push) {
            push_record(pushed++);
        }
        OK(ea_agent_handle_timeout(&agent, now));
        if (pushed == RECORDS / 3 && !task_sent && link_up) {
            fs_send_task(&server, "", 42, "reboot-later", "tok-1");
            task_sent = 1;
        }
        if (pushed == RECORDS / 2 && !cut_done) {
            /* The credential rotates: the next Hello carries the new one,
             * and nothing in the ring is touched. */
            CHECK(strcmp(server.hello_auth, TOKEN_1) == 0);
            OK(ea_agent_set_auth_token(&agent, (const uint8_t *)TOKEN_2, sizeof TOKEN_2 - 1));
            cut_pending = 1; /* the batches now in flight are lost */
            cut_done = 1;
        }
        outputs();
        OK(ea_agent_stats(&agent, &st));
        if (pushed == RECORDS && st.drained && server.task_results > 0) break;
    }

    OK(ea_agent_stats(&agent, &st));
    printf("bare_metal: pushed %llu acked %llu (server stored %llu, resent ignored %llu), connections %llu, "
           "hellos %llu, batches %llu, dropped %llu\n",
           (unsigned long long)st.pushed, (unsigned long long)st.acked, (unsigned long long)server.stored,
           (unsigned long long)server.resent_ignored, (unsigned long long)st.connections,
           (unsigned long long)server.hellos, (unsigned long long)server.batches,
           (unsigned long long)(st.dropped_full + st.dropped_too_large + st.dropped_evicted));
    CHECK(st.drained);
    CHECK(st.pushed == st.acked);
    CHECK(st.acked == server.stored);
    CHECK(st.dropped_full + st.dropped_too_large + st.dropped_evicted == 0);
    CHECK(st.connections == 2);
    CHECK(server.app_records == RECORDS);
    {
        uint32_t i, once = 0;
        for (i = 0; i < RECORDS; i++) once += server.app_seen[i] == 1;
        CHECK(once == RECORDS);
    }
    CHECK(inflight_at_cut > 0);
    CHECK(strcmp(server.hello_auth, TOKEN_2) == 0); /* the rotated credential */
    CHECK(server.resent_ignored == 0); /* the resume point covered them */
    CHECK(server.task_results == 1);
    CHECK(strcmp(server.last_token, "tok-1") == 0);
    CHECK(server.bad_frames == 0);

    OK(ea_agent_close(&agent, now));
    outputs();
    OK(ea_agent_deinit(&agent));
    CHECK(ea_agent_push(&agent, now, APP_TYPE, 0, NULL, 0) == EA_NOT_INITIALIZED);
    printf("bare_metal: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}

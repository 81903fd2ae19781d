/*
 * blocked.c - a daemon's own event loop over a real, non-blocking loopback
 * TCP socket whose peer stops reading: the socket fills, a write falls
 * short, and the loop must sleep (on the agent's timeout) instead of
 * spinning. The clock is simulated (the loop jumps to each deadline), so
 * the count of wake-ups is exact and nothing depends on the machine's
 * speed; the socket is real.
 *
 * The loop keeps one frame at most (the rule in ea_agent_handle_blocked):
 * it asks for a frame only when the previous one is fully written, reports
 * a short write with ea_agent_handle_blocked(true) and the end of it with
 * false. Built with -DBLOCKED_CONTROL it never reports it, as a loop that
 * just stops calling ea_agent_poll_transmit on EAGAIN would: that must
 * spin (exit 3), so this test cannot pass by accident.
 *
 * Exits 0 and prints "blocked: ok" when the blocked loop woke only for
 * real timers and the dead link ended by its liveness deadline.
 */
#define _POSIX_C_SOURCE 200809L
#include "edge_agent.h"
#include "fake_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define APP_TYPE 2001u
#define RECORD_LEN 1000u
#define MAX_WAKES 100000

static ea_agent agent;
static uint8_t ring[1u << 20];
static uint8_t rx[4096];
static uint8_t events[1024];
/* The one frame being written, and how much of it is out. */
static uint8_t tx[16384];
static size_t tx_len, tx_off;
static fs_server server;
static uint64_t now;
static int fails;

#define OK(call)                                                                       \
    do {                                                                               \
        ea_result r_ = (call);                                                         \
        if (r_ != EA_OK) {                                                             \
            printf("blocked: %s -> %s (line %d)\n", #call, ea_result_message(r_), __LINE__); \
            fails++;                                                                   \
        }                                                                              \
    } while (0)

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            printf("blocked: FAILED %s (line %d)\n", #cond, __LINE__);                \
            fails++;                                                                   \
        }                                                                              \
    } while (0)

/* Writes what is left of the current frame; returns 1 when it is all out. */
static int write_rest(int fd) {
    while (tx_off < tx_len) {
        ssize_t n = write(fd, tx + tx_off, tx_len - tx_off);
        if (n < 0) return 0; /* EAGAIN (the only error a full socket gives) */
        tx_off += (size_t)n;
    }
    tx_len = tx_off = 0;
    return 1;
}

/* Everything the agent has to send, one frame at a time, until it has
 * nothing or the socket is full. Returns the frames handed out. */
static unsigned transmit(int fd, int *blocked) {
    unsigned frames = 0;
    size_t n = 0;
    for (;;) {
        if (!write_rest(fd)) {
#ifndef BLOCKED_CONTROL
            if (!*blocked) OK(ea_agent_handle_blocked(&agent, true));
#endif
            *blocked = 1;
            return frames;
        }
        if (*blocked) {
#ifndef BLOCKED_CONTROL
            OK(ea_agent_handle_blocked(&agent, false));
#endif
            *blocked = 0;
        }
        OK(ea_agent_poll_transmit(&agent, now, tx, sizeof tx, &n));
        if (n == 0) return frames;
        tx_len = n;
        frames++;
    }
}

/* Waits (really) for fd to be readable, then hands what it has to the agent. */
static void receive(int fd) {
    uint8_t buf[4096];
    struct pollfd p;
    ssize_t n;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    CHECK(poll(&p, 1, 5000) == 1);
    n = read(fd, buf, sizeof buf);
    CHECK(n > 0);
    if (n > 0) OK(ea_agent_handle_received(&agent, now, buf, (size_t)n));
}

int main(void) {
    ea_config cfg = ea_config_default();
    ea_identity id;
    ea_event ev;
    ea_stats st;
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    int lst, cli = -1, srv = -1, small = 4096, blocked = 0, disconnected = 0;
    unsigned reason = 0, wakes = 0, spins = 0, frames = 0, i;
    uint8_t payload[RECORD_LEN];
    uint32_t delay = 0;
    ssize_t got;

    memset(&id, 0, sizeof id);
    id.agent_id = (const uint8_t *)"blocked-1";
    id.agent_id_len = 9;
    cfg.rng_seed = 7;
    cfg.flush_interval_ms = 20;
    cfg.batch_max_bytes = 8192;
    cfg.window_bytes = sizeof ring - 16384; /* the socket fills before the window */
    OK(ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring, rx, sizeof rx, events, sizeof events));
    fs_init(&server, APP_TYPE);

    /* A loopback listener with a small receive buffer (inherited by the
     * accepted socket), and a client with a small send buffer. */
    lst = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(setsockopt(lst, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    CHECK(bind(lst, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(listen(lst, 1) == 0);
    CHECK(getsockname(lst, (struct sockaddr *)&addr, &alen) == 0);

    /* Connect: the first timeout asks for endpoint 0. */
    OK(ea_agent_handle_timeout(&agent, now));
    OK(ea_agent_poll_event(&agent, &ev));
    CHECK(ev.kind == EA_EVENT_CONNECT);
    cli = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(setsockopt(cli, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    CHECK(connect(cli, (struct sockaddr *)&addr, sizeof addr) == 0);
    srv = accept(lst, NULL, NULL);
    CHECK(srv >= 0);
    CHECK(fcntl(cli, F_SETFL, fcntl(cli, F_GETFL) | O_NONBLOCK) == 0);
    OK(ea_agent_handle_connected(&agent, now));

    /* The handshake, with a server that still reads. */
    transmit(cli, &blocked);
    CHECK(!blocked);
    {
        uint8_t buf[4096];
        struct pollfd p;
        p.fd = srv;
        p.events = POLLIN;
        p.revents = 0;
        CHECK(poll(&p, 1, 5000) == 1);
        got = read(srv, buf, sizeof buf);
        CHECK(got > 0);
        if (got > 0) fs_feed(&server, buf, (size_t)got);
        CHECK(write(srv, server.out, server.out_len) == (ssize_t)server.out_len);
        server.out_len = 0;
    }
    receive(cli);
    do OK(ea_agent_poll_event(&agent, &ev)); while (ev.kind != EA_EVENT_NONE && ev.kind != EA_EVENT_CONNECTED);
    CHECK(ev.kind == EA_EVENT_CONNECTED);

    /* The server stops reading. The application pushes far more than the
     * socket buffers hold. */
    for (i = 0; i < 900; i++) {
        memset(payload, (int)(i & 0xff), sizeof payload);
        OK(ea_agent_push(&agent, now, APP_TYPE, now, payload, sizeof payload));
    }

    /* The daemon's loop: outputs, events, then wait for "readable,
     * writable (when a frame is half out) or the agent's timeout". The
     * wait is simulated: poll() with no wait says what is ready now, and
     * when nothing is, the clock jumps to the deadline. */
    while (wakes < MAX_WAKES && !disconnected) {
        struct pollfd p;
        frames += transmit(cli, &blocked);
        for (;;) {
            OK(ea_agent_poll_event(&agent, &ev));
            if (ev.kind == EA_EVENT_NONE) break;
            if (ev.kind == EA_EVENT_DISCONNECT) {
                disconnected = 1;
                reason = ev.reason;
            }
        }
        if (disconnected) break;
        OK(ea_agent_timeout_delay(&agent, now, &delay));
        p.fd = cli;
        p.events = (short)(POLLIN | (blocked ? POLLOUT : 0));
        p.revents = 0;
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLOUT | POLLIN))) {
            continue; /* the server never writes again: only POLLOUT */
        }
        if (delay == EA_NEVER_DELAY) break;
        if (delay == 0) spins++;
        now += delay;
        wakes++;
        OK(ea_agent_handle_timeout(&agent, now));
    }

    OK(ea_agent_stats(&agent, &st));
    printf("blocked: %u frames written, blocked %d, %u wake-ups, %u with no wait, disconnect reason %u at t=%llu ms\n",
           frames, blocked, wakes, spins, reason, (unsigned long long)now);
    if (wakes >= MAX_WAKES) {
        printf("blocked: SPIN: the loop woke %u times without the clock moving\n", spins);
        return 3;
    }
    CHECK(frames > 1);
    CHECK(spins == 0);
    CHECK(wakes <= 4);
    /* No frame arrives after the Accept at t=0: the liveness deadline,
     * idle + pong timeout (15 s + 5 s by default), ends the link. */
    CHECK(disconnected && reason == EA_DISCONNECT_PONG_TIMEOUT);
    CHECK(now == 20000);
    /* Nothing lost: every record is still in the ring for the next
     * connection. */
    CHECK(st.pushed == 900 + 1 && st.acked == 0 && st.dropped_full == 0 && st.dropped_evicted == 0);
    close(cli);
    close(srv);
    close(lst);
    OK(ea_agent_deinit(&agent));
    if (fails) return 1;
    printf("blocked: ok\n");
    return 0;
}

/*
 * host_loop.c - the host layer in the caller's own loop: poll() on
 * ea_host_fd with ea_host_timeout_ms, ea_host_process when it fires.
 * Pushes N records "r<i>", waits until they are acked, stops cleanly, and
 * exits 0 only if the report says drained. Usage: host_loop AGENT HOST:PORT N
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_agent.h"

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    long n = atol(argv[3]);
    const char *endpoints[] = {argv[2]};
    ea_host_config cfg = ea_host_config_default();
    cfg.endpoints = endpoints;
    cfg.endpoints_len = 1;
    cfg.identity.agent_id = (const uint8_t *)argv[1];
    cfg.identity.agent_id_len = strlen(argv[1]);
    ea_host *host;
    ea_result r = ea_host_new(&cfg, &host);
    if (r != EA_OK) {
        fprintf(stderr, "ea_host_new: %s\n", ea_result_message(r));
        return 1;
    }
    int fd = -1;
    if (ea_host_fd(host, &fd) != EA_OK)
        return 1;
    if (ea_host_stop(host, 0, NULL) != EA_HOST_NOT_STARTED) /* no thread of its own here */
        return 1;
    char line[32];
    for (long i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "r%ld", i);
        if (ea_host_push(host, 2001, (const uint8_t *)line, (size_t)len) != EA_OK)
            return 3;
    }
    bool stopped = false, stopping = false;
    ea_host_report report = {0};
    long turns = 0;
    while (!stopped && turns < 100000) {
        int32_t ms = -1;
        ea_host_timeout_ms(host, &ms);
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, ms < 0 || ms > 1000 ? 1000 : ms);
        if (ea_host_process(host, &stopped, &report) != EA_OK)
            return 4;
        turns++;
        ea_stats s;
        if (!stopping && ea_host_agent_stats(host, &s) == EA_OK && s.acked >= (uint64_t)n) {
            ea_host_begin_stop(host, 10000);
            stopping = true;
        }
    }
    printf("stopped=%d drained=%d unacked=%llu turns=%ld\n", stopped, report.drained,
           (unsigned long long)report.unacked, turns);
    ea_host_free(host);
    return stopped && report.drained ? 0 : 5;
}

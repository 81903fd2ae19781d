/*
 * asan_control.c - a deliberately wrong caller, the negative control of the
 * AddressSanitizer test: it gives ea_agent_poll_transmit a 20-byte buffer
 * but claims 8192 bytes. The library (trusting the length, as documented)
 * writes the Hello past the array; the test requires ASan to report it,
 * which proves the Rust side is instrumented. Not an example to follow.
 */
#include "edge_agent.h"

#include <stdio.h>
#include <string.h>

static ea_agent agent;
static uint8_t ring[4096];
static uint8_t rx[1024];
static uint8_t events[256];
static uint8_t tx[20];

int main(void) {
    static const char ID[] = "a-rather-long-agent-identifier-for-the-hello";
    ea_config cfg = ea_config_default();
    ea_identity id;
    ea_event ev;
    size_t n = 0;
    memset(&id, 0, sizeof id);
    id.agent_id = (const uint8_t *)ID;
    id.agent_id_len = sizeof ID - 1;
    if (ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring, rx, sizeof rx, events, sizeof events) != EA_OK)
        return 2;
    ea_agent_handle_timeout(&agent, 0);
    ea_agent_poll_event(&agent, &ev); /* CONNECT */
    ea_agent_handle_connected(&agent, 1);
    ea_agent_poll_transmit(&agent, 1, tx, 8192 /* a lie */, &n);
    printf("asan_control: the overflow went unnoticed (%u bytes)\n", (unsigned)n);
    return 0;
}

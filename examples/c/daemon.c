/*
 * daemon.c - a Linux daemon on the edge-agent host layer (ea_host_*):
 * connects to a list of collectors, pushes records from two threads,
 * answers tasks, applies configs, and drains on SIGTERM. The library owns
 * the socket, the event loop, the clock and the host stats.
 *
 *   daemon AGENT_ID HOST:PORT [HOST:PORT ...]
 *
 * Each worker pushes DAEMON_RECORDS records (default 1000) "w<id>-<n>" of
 * type 2001, then the daemon runs until SIGTERM / SIGINT, drains, and exits
 * 0 if every record was acked. With DAEMON_TLS_CA set (a PEM file) it
 * speaks TLS, presenting DAEMON_TLS_CERT / DAEMON_TLS_KEY if set (mutual
 * TLS). Lines marked "agent" are the agent-related code (the rest is the
 * daemon's own logic).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge_agent.h"

/* The daemon's own setting, changed by the config named "sampling". */
static char sampling[64] = "default";

static void apply_config(const uint8_t *name, size_t name_len, const uint8_t *payload, size_t len) {
    if (name_len == 8 && memcmp(name, "sampling", 8) == 0 && len < sizeof sampling) {
        memcpy(sampling, payload, len);
        sampling[len] = '\0';
        printf("config sampling=%s\n", sampling);
        fflush(stdout);
    }
}

static void on_event(void *userdata, ea_host *host, const ea_event *ev) {           /* agent */
    char reply[300];
    (void)userdata;
    if (ev->kind == EA_EVENT_TASK) {                                                  /* agent */
        int n = snprintf(reply, sizeof reply, "done:%.*s", (int)ev->payload_len, (const char *)ev->payload);
        ea_host_task_result(host, ev->token, ev->token_len, 0, (const uint8_t *)reply, (size_t)n); /* agent */
    } else if (ev->kind == EA_EVENT_CONFIG) {                                         /* agent */
        apply_config(ev->name, ev->name_len, ev->payload, ev->payload_len);           /* agent */
    }
}

struct worker {
    ea_host *host;
    int id;
    long records;
};

static void *work(void *arg) {
    struct worker *w = arg;
    struct timespec pause = {0, 1000000};
    char line[48];
    for (long i = 0; i < w->records; i++) {
        int n = snprintf(line, sizeof line, "w%d-%ld", w->id, i);
        ea_result r;
        while ((r = ea_host_push(w->host, 2001, (const uint8_t *)line, (size_t)n)) == EA_RING_FULL) /* agent */
            nanosleep(&pause, NULL);
        if (r != EA_OK) {                                                             /* agent */
            fprintf(stderr, "push: %s\n", ea_result_message(r));                      /* agent */
            break;
        }
        if (i % 20 == 0)
            nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s AGENT_ID HOST:PORT [HOST:PORT ...]\n", argv[0]);
        return 2;
    }
    const char *env = getenv("DAEMON_RECORDS");
    long records = env ? atol(env) : 1000;

    ea_host_config cfg = ea_host_config_default();                                    /* agent */
    cfg.endpoints = (const char *const *)&argv[2];                                    /* agent */
    cfg.endpoints_len = (size_t)(argc - 2);                                           /* agent */
    cfg.identity.agent_id = (const uint8_t *)argv[1];                                 /* agent */
    cfg.identity.agent_id_len = strlen(argv[1]);                                      /* agent */
    cfg.agent.backoff_cap_ms = 2000;                                                  /* agent */
    cfg.on_event = on_event;                                                          /* agent */
    cfg.handle_signals = true;                                                        /* agent */
    const char *ca = getenv("DAEMON_TLS_CA");
    const char *cert = getenv("DAEMON_TLS_CERT");
    const char *key = getenv("DAEMON_TLS_KEY");
    if (ca) {
        cfg.tls_ca_file = (const uint8_t *)ca;                                        /* agent */
        cfg.tls_ca_file_len = strlen(ca);                                             /* agent */
    }
    if (cert && key) {
        cfg.tls_cert_file = (const uint8_t *)cert;                                    /* agent */
        cfg.tls_cert_file_len = strlen(cert);                                         /* agent */
        cfg.tls_key_file = (const uint8_t *)key;                                      /* agent */
        cfg.tls_key_file_len = strlen(key);                                           /* agent */
    }
    ea_host *host;                                                                    /* agent */
    ea_result r = ea_host_new(&cfg, &host);                                           /* agent */
    if (r != EA_OK || (r = ea_host_start(host)) != EA_OK) {                           /* agent */
        fprintf(stderr, "ea_host: %s\n", ea_result_message(r));                       /* agent */
        return 1;
    }

    pthread_t threads[2];
    struct worker workers[2];
    for (int i = 0; i < 2; i++) {
        workers[i] = (struct worker){host, i, records};
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("pushed %ld\n", 2 * records);
    fflush(stdout);

    ea_host_report report;                                                            /* agent */
    ea_host_wait(host, &report); /* until SIGTERM / SIGINT has drained */            /* agent */
    printf("stopped drained=%d unacked=%llu acked=%llu\n", report.drained,
           (unsigned long long)report.unacked, (unsigned long long)report.acked);
    ea_host_free(host);                                                               /* agent */
    return report.drained ? 0 : 1;
}

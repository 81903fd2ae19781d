/*
 * edge_plugin.c - a Mosquitto 2 broker plugin (plugin interface 5) that
 * forwards every message under a topic filter to an edge-agent collector
 * as a record (type 2101, payload: topic, a NUL byte, the message), with
 * the broker host's identity and host stats in the heartbeats, and answers
 * a task (any data type, object "mosquitto") with the broker's statistics.
 * The agent runs on the host layer's own thread: the broker's loop only
 * pushes into the ring (a short lock, never I/O).
 *
 * mosquitto.conf:
 *   plugin /path/to/edge_plugin.so
 *   plugin_opt_endpoints 127.0.0.1:7070,backup:7070   (tried in order)
 *   plugin_opt_topic sensors/#                         (default #)
 *   plugin_opt_agent_id broker-1                       (default mosquitto)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "edge_agent.h"

#define RECORD_TYPE 2101
#define MAX_ENDPOINTS 8
#define MAX_RECORD 2048

static struct {
    mosquitto_plugin_id_t *id;
    ea_host *host;
    char *endpoint_list;
    const char *endpoints[MAX_ENDPOINTS];
    const char *topic;
    const char *agent_id;
    unsigned long seen, forwarded, dropped;
    uint8_t record[MAX_RECORD];
} g;

static void on_event(void *userdata, ea_host *host, const ea_event *ev) {
    char stats[160];
    (void)userdata;
    if (ev->kind != EA_EVENT_TASK && ev->kind != EA_EVENT_SHUTDOWN)
        return;
    int n = snprintf(stats, sizeof stats, "messages=%lu forwarded=%lu dropped=%lu filter=%s",
                     g.seen, g.forwarded, g.dropped, g.topic);
    ea_host_task_result(host, ev->token, ev->token_len, 0, (const uint8_t *)stats, (size_t)n);
}

static int on_message(int event, void *event_data, void *userdata) {
    struct mosquitto_evt_message *m = event_data;
    bool match = false;
    (void)event;
    (void)userdata;
    g.seen++;
    if (mosquitto_topic_matches_sub(g.topic, m->topic, &match) != 0 || !match)
        return MOSQ_ERR_SUCCESS;
    size_t tlen = strlen(m->topic);
    if (tlen + 1 + m->payloadlen > sizeof g.record) {
        g.dropped++;
        return MOSQ_ERR_SUCCESS;
    }
    memcpy(g.record, m->topic, tlen);
    g.record[tlen] = 0;
    if (m->payloadlen)
        memcpy(g.record + tlen + 1, m->payload, m->payloadlen);
    if (ea_host_push(g.host, RECORD_TYPE, g.record, tlen + 1 + m->payloadlen) == EA_OK)
        g.forwarded++;
    else
        g.dropped++; /* ring full or stopping: counted, never blocks the broker */
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5)
            return 5;
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *id, void **userdata, struct mosquitto_opt *opts, int opt_count) {
    (void)userdata;
    memset(&g, 0, sizeof g);
    g.id = id;
    g.topic = "#";
    g.agent_id = "mosquitto";
    for (int i = 0; i < opt_count; i++) {
        if (strcmp(opts[i].key, "endpoints") == 0)
            g.endpoint_list = strdup(opts[i].value);
        else if (strcmp(opts[i].key, "topic") == 0)
            g.topic = opts[i].value;
        else if (strcmp(opts[i].key, "agent_id") == 0)
            g.agent_id = opts[i].value;
    }
    size_t n = 0;
    for (char *s = g.endpoint_list ? strtok(g.endpoint_list, ",") : NULL; s && n < MAX_ENDPOINTS; s = strtok(NULL, ","))
        g.endpoints[n++] = s;

    ea_host_config cfg = ea_host_config_default();
    cfg.endpoints = g.endpoints;
    cfg.endpoints_len = n;
    cfg.identity.agent_id = (const uint8_t *)g.agent_id;
    cfg.identity.agent_id_len = strlen(g.agent_id);
    cfg.identity.product = (const uint8_t *)"mosquitto";
    cfg.identity.product_len = 9;
    cfg.agent.max_record = MAX_RECORD;
    cfg.agent.backoff_cap_ms = 2000;
    cfg.on_event = on_event;
    ea_result r = ea_host_new(&cfg, &g.host);
    if (r == EA_OK && (r = ea_host_start(g.host)) != EA_OK)
        ea_host_free(g.host);
    if (r != EA_OK) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "edge_plugin: %s", ea_result_message(r));
        free(g.endpoint_list);
        return MOSQ_ERR_INVAL;
    }
    return mosquitto_callback_register(id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count) {
    ea_host_report report;
    (void)userdata;
    (void)opts;
    (void)opt_count;
    mosquitto_callback_unregister(g.id, MOSQ_EVT_MESSAGE, on_message, NULL);
    ea_host_stop(g.host, 5000, &report); /* drain: send what is queued, Close */
    mosquitto_log_printf(MOSQ_LOG_INFO, "edge_plugin: stopped drained=%d unacked=%llu forwarded=%lu",
                         report.drained, (unsigned long long)report.unacked, g.forwarded);
    ea_host_free(g.host);
    free(g.endpoint_list);
    return MOSQ_ERR_SUCCESS;
}

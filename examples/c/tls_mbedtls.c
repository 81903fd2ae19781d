/*
 * tls_mbedtls.c - the template for firmware that talks to the collector
 * over mutual TLS: the sans-IO agent (ea_agent_*) makes and takes plaintext
 * frames, mbedTLS turns them into TLS records, and the socket moves those
 * (mbedtls_ssl_set_bio). Every byte is static: the agent's buffers, the TLS
 * buffers, and mbedTLS's heap, a fixed pool of POOL_BYTES.
 *
 *   tls_mbedtls HOST PORT CA.pem CERT.pem KEY.pem AGENT_ID RECORDS
 *
 * connects (server name "localhost", verified against CA.pem; client
 * certificate CERT.pem whose CN is AGENT_ID), pushes RECORDS records of type
 * 2001 with text "<AGENT_ID>#<i>", and exits 0 once all are acked, printing
 * "tls_mbedtls: ok" and the pool's peak ("pool peak N bytes").
 *
 * The static pool. On firmware, build mbedTLS with
 * MBEDTLS_MEMORY_BUFFER_ALLOC_C and call
 *   mbedtls_memory_buffer_alloc_init(pool, sizeof pool);
 * before anything else. Debian's libmbedtls (2.28) is built without it (and
 * without MBEDTLS_PLATFORM_MEMORY), so this program gives mbedTLS the same
 * thing at link time instead: it links the static archives with
 *   -Wl,--wrap=calloc -Wl,--wrap=free
 * so every mbedTLS calloc/free lands in pool_calloc/pool_free below (a
 * first-fit allocator over a static array). A request the pool cannot
 * serve fails (mbedTLS reports MBEDTLS_ERR_SSL_ALLOC_FAILED); it never
 * falls back to the system heap.
 *
 * Time is the caller's (CLOCK_MONOTONIC here, a tick counter on firmware);
 * randomness comes from mbedTLS's CTR-DRBG over its entropy source (on
 * firmware: a hardware TRNG via mbedtls_entropy_add_source).
 */
#define _POSIX_C_SOURCE 200809L

#include "edge_agent.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the static heap of mbedTLS ---------------------------------------- */

#define POOL_BYTES (96u * 1024u)
#define ALIGN 16u

/* A block: its header (size including the header, in use or not), then
 * its bytes. Blocks tile the pool. */
typedef struct block {
    size_t size;
    size_t used;
} block;

#define HDR ((sizeof(block) + ALIGN - 1) / ALIGN * ALIGN)

static union {
    uint8_t bytes[POOL_BYTES];
    long double align_;
} pool;
static size_t pool_in_use, pool_peak, pool_failures;
static int pool_ready;

static void pool_init(void) {
    block *b = (block *)pool.bytes;
    b->size = POOL_BYTES;
    b->used = 0;
    pool_ready = 1;
}

static void *pool_calloc(size_t n, size_t size) {
    size_t want, off = 0;
    if (!pool_ready) pool_init();
    if (n != 0 && size > (SIZE_MAX - HDR - ALIGN) / n) return NULL;
    want = (n * size + HDR + ALIGN - 1) / ALIGN * ALIGN;
    while (off < POOL_BYTES) {
        block *b = (block *)(pool.bytes + off);
        if (!b->used && b->size >= want) {
            if (b->size - want >= HDR + ALIGN) { /* split */
                block *rest = (block *)(pool.bytes + off + want);
                rest->size = b->size - want;
                rest->used = 0;
                b->size = want;
            }
            b->used = 1;
            pool_in_use += b->size;
            if (pool_in_use > pool_peak) pool_peak = pool_in_use;
            memset(pool.bytes + off + HDR, 0, b->size - HDR);
            return pool.bytes + off + HDR;
        }
        off += b->size;
    }
    pool_failures++;
    return NULL;
}

static int in_pool(const void *p) {
    const uint8_t *q = (const uint8_t *)p;
    return q >= pool.bytes + HDR && q < pool.bytes + POOL_BYTES;
}

static void pool_free(void *p) {
    size_t off = 0;
    block *b = (block *)((uint8_t *)p - HDR);
    b->used = 0;
    pool_in_use -= b->size;
    /* Merge free neighbours, in one pass over the pool. */
    while (off < POOL_BYTES) {
        block *cur = (block *)(pool.bytes + off);
        while (!cur->used && off + cur->size < POOL_BYTES) {
            block *next = (block *)(pool.bytes + off + cur->size);
            if (next->used) break;
            cur->size += next->size;
        }
        off += cur->size;
    }
}

/* The link-time hooks (-Wl,--wrap=calloc -Wl,--wrap=free). Memory that
 * did not come from the pool (another library's malloc) goes back to the
 * system's free. */
void *__wrap_calloc(size_t n, size_t size);
void __wrap_free(void *p);
void __real_free(void *p);

void *__wrap_calloc(size_t n, size_t size) {
    return pool_calloc(n, size);
}

void __wrap_free(void *p) {
    if (p == NULL) return;
    if (in_pool(p)) {
        pool_free(p);
    } else {
        __real_free(p);
    }
}

/* ---- the agent's static buffers ------------------------------------------ */

static ea_agent agent;
static uint8_t ring[32768];
static uint8_t rx[8192];
static uint8_t events[1024];
static uint8_t tx[8192];
static uint8_t rbuf[4096];

static mbedtls_net_context net;
static mbedtls_ssl_context ssl;
static mbedtls_ssl_config conf;
static mbedtls_x509_crt ca, cert;
static mbedtls_pk_context key;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

static const char *host, *port;
static int connected; /* TLS up and the agent told */
static int fails;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tls_error(const char *what, int ret) {
    char text[128];
    mbedtls_strerror(ret, text, sizeof text);
    printf("tls_mbedtls: %s: -0x%04x %s\n", what, (unsigned)-ret, text);
}

#define OK(call)                                                                 \
    do {                                                                         \
        ea_result r_ = (call);                                                   \
        if (r_ != EA_OK) {                                                       \
            printf("tls_mbedtls: %s -> %u %s\n", #call, (unsigned)r_,           \
                   ea_result_message(r_));                                       \
            fails++;                                                             \
        }                                                                        \
    } while (0)

/* Ends the TLS connection (if any) and tells the agent why. */
static void drop_link(uint32_t why) {
    if (connected) mbedtls_ssl_close_notify(&ssl);
    mbedtls_ssl_session_reset(&ssl);
    mbedtls_net_free(&net);
    connected = 0;
    OK(ea_agent_handle_disconnected(&agent, now_ms(), why));
}

/* The agent asked for a connection: TCP, then the TLS handshake (bounded
 * by the read timeout per step and the agent's own connect timer). */
static void open_link(void) {
    int ret;
    mbedtls_net_init(&net);
    ret = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_TCP);
    if (ret != 0) {
        tls_error("connect", ret);
        OK(ea_agent_handle_disconnected(&agent, now_ms(), EA_TRANSPORT_REFUSED));
        return;
    }
    mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
    mbedtls_ssl_conf_read_timeout(&conf, 5000);
    while ((ret = mbedtls_ssl_handshake(&ssl)) != 0) {
        if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
            tls_error("handshake", ret);
            if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) printf("tls_mbedtls: the collector's certificate did not verify\n");
            mbedtls_ssl_session_reset(&ssl);
            mbedtls_net_free(&net);
            OK(ea_agent_handle_disconnected(&agent, now_ms(), EA_TRANSPORT_REFUSED));
            return;
        }
    }
    printf("tls_mbedtls: %s %s established, pool in use %u bytes\n", mbedtls_ssl_get_version(&ssl),
           mbedtls_ssl_get_ciphersuite(&ssl), (unsigned)pool_in_use);
    connected = 1;
    OK(ea_agent_handle_connected(&agent, now_ms()));
}

/* Everything the agent has to send, through TLS. */
static void transmit(void) {
    size_t n = 0;
    for (;;) {
        size_t off = 0;
        OK(ea_agent_poll_transmit(&agent, now_ms(), tx, sizeof tx, &n));
        if (n == 0 || !connected) return;
        while (off < n) {
            int ret = mbedtls_ssl_write(&ssl, tx + off, n - off);
            if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
            if (ret < 0) {
                tls_error("write", ret);
                drop_link(EA_TRANSPORT_RESET);
                return;
            }
            off += (size_t)ret;
        }
    }
}

static void events_drain(void) {
    ea_event ev;
    for (;;) {
        OK(ea_agent_poll_event(&agent, &ev));
        switch (ev.kind) {
        case EA_EVENT_NONE:
            return;
        case EA_EVENT_CONNECT:
            open_link();
            break;
        case EA_EVENT_DISCONNECT:
            printf("tls_mbedtls: disconnect, reason %u\n", (unsigned)ev.reason);
            if (connected) {
                mbedtls_ssl_close_notify(&ssl);
                mbedtls_ssl_session_reset(&ssl);
                mbedtls_net_free(&net);
                connected = 0;
            }
            break;
        default:
            break;
        }
    }
}

/* Waits for TLS records up to `wait_ms` and hands their plaintext to the agent. */
static void receive(uint64_t wait_ms) {
    int ret;
    if (!connected) return;
    mbedtls_ssl_conf_read_timeout(&conf, (uint32_t)(wait_ms == 0 ? 1 : wait_ms > 50 ? 50 : wait_ms));
    ret = mbedtls_ssl_read(&ssl, rbuf, sizeof rbuf);
    if (ret > 0) {
        OK(ea_agent_handle_received(&agent, now_ms(), rbuf, (size_t)ret));
    } else if (ret == MBEDTLS_ERR_SSL_TIMEOUT || ret == MBEDTLS_ERR_SSL_WANT_READ) {
        /* nothing yet */
    } else if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        drop_link(EA_TRANSPORT_CLOSED);
    } else {
        tls_error("read", ret);
        drop_link(EA_TRANSPORT_RESET);
    }
}

static int load(const char *ca_path, const char *cert_path, const char *key_path) {
    int ret;
    static const char pers[] = "edge-agent tls_mbedtls";
    if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)pers, sizeof pers - 1)) != 0 ||
        (ret = mbedtls_x509_crt_parse_file(&ca, ca_path)) != 0 ||
        (ret = mbedtls_x509_crt_parse_file(&cert, cert_path)) != 0 ||
        (ret = mbedtls_pk_parse_keyfile(&key, key_path, NULL)) != 0 ||
        (ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        tls_error("setup", ret);
        return -1;
    }
    /* TLS 1.2 at least (2.28 has no TLS 1.3); the collector's certificate
     * must verify, for the name "localhost". */
    mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    if ((ret = mbedtls_ssl_conf_own_cert(&conf, &cert, &key)) != 0 || (ret = mbedtls_ssl_setup(&ssl, &conf)) != 0 ||
        (ret = mbedtls_ssl_set_hostname(&ssl, "localhost")) != 0) {
        tls_error("setup", ret);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    ea_config cfg = ea_config_default();
    ea_identity id;
    ea_stats st;
    uint32_t records, pushed = 0;
    size_t min_tx = 0;
    uint64_t started, deadline;
    char text[128];

    if (argc != 8) {
        printf("usage: tls_mbedtls HOST PORT CA.pem CERT.pem KEY.pem AGENT_ID RECORDS\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    records = (uint32_t)strtoul(argv[7], NULL, 10);

    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&cert);
    mbedtls_pk_init(&key);
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_net_init(&net);
    if (load(argv[3], argv[4], argv[5]) != 0) return 1;
    printf("tls_mbedtls: credentials loaded, pool in use %u bytes\n", (unsigned)pool_in_use);

    memset(&id, 0, sizeof id);
    id.agent_id = (const uint8_t *)argv[6];
    id.agent_id_len = strlen(argv[6]);
    id.product = (const uint8_t *)"tls-mbedtls";
    id.product_len = 11;
    id.version = (const uint8_t *)"1.0.0";
    id.version_len = 5;
    cfg.rng_seed = now_ms();
    cfg.flush_interval_ms = 10;
    OK(ea_min_transmit_len(&cfg, &id, &min_tx));
    if (min_tx > sizeof tx) {
        printf("tls_mbedtls: tx buffer too small (%u needed)\n", (unsigned)min_tx);
        return 1;
    }
    OK(ea_agent_init(&agent, sizeof agent, &cfg, &id, ring, sizeof ring, rx, sizeof rx, events, sizeof events));

    started = now_ms();
    OK(ea_agent_handle_timeout(&agent, started));
    for (;;) {
        uint64_t now = now_ms();
        /* Push what the ring takes; the rest waits for acks to free room. */
        while (pushed < records) {
            int len = snprintf(text, sizeof text, "%s#%u", argv[6], (unsigned)pushed);
            ea_result r = ea_agent_push(&agent, now, 2001, 1700000000000ull + pushed, (const uint8_t *)text, (size_t)len);
            if (r == EA_RING_FULL) break;
            OK(r);
            pushed++;
        }
        OK(ea_agent_poll_timeout(&agent, &deadline));
        if (deadline <= now) OK(ea_agent_handle_timeout(&agent, now));
        transmit();
        events_drain();
        transmit();
        receive(deadline == EA_NEVER ? 50 : deadline > now ? deadline - now : 0);
        OK(ea_agent_stats(&agent, &st));
        if (pushed == records && st.drained) break;
        if (now - started > 60000 || fails) {
            printf("tls_mbedtls: gave up (pushed %u, acked %llu)\n", (unsigned)pushed, (unsigned long long)st.acked);
            fails++;
            break;
        }
    }
    OK(ea_agent_stats(&agent, &st));
    printf("tls_mbedtls: pushed %llu acked %llu connections %llu dropped %llu\n", (unsigned long long)st.pushed,
           (unsigned long long)st.acked, (unsigned long long)st.connections,
           (unsigned long long)(st.dropped_full + st.dropped_too_large + st.dropped_evicted));
    OK(ea_agent_close(&agent, now_ms()));
    transmit();
    if (connected) mbedtls_ssl_close_notify(&ssl);
    mbedtls_net_free(&net);
    OK(ea_agent_deinit(&agent));
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&cert);
    mbedtls_pk_free(&key);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    printf("tls_mbedtls: pool peak %u bytes of %u, %u bytes in use at exit, %u failed requests\n", (unsigned)pool_peak,
           (unsigned)POOL_BYTES, (unsigned)pool_in_use, (unsigned)pool_failures);
    if (pool_in_use != 0 || pool_failures != 0) fails++;
    printf("tls_mbedtls: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}

/*
 * fake_server.h - a tiny in-memory collector for the examples and tests:
 * just enough of PROTOCOL.md to answer an agent (Hello -> Accept, Batch ->
 * Ack, Ping -> Pong) and to send it a Task. No heap, no sockets: bytes go
 * in with fs_feed() and come out of fs->out.
 *
 * Records are "stored" (durably, in this toy: counted) when a batch brings
 * them in sequence order; the Accept's resume point is the next sequence
 * number the server expects, so a reconnecting agent resends only what the
 * server does not have. Header-only, C99 and C++11.
 */
#ifndef EA_FAKE_SERVER_H
#define EA_FAKE_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FS_KIND_HELLO 1
#define FS_KIND_ACCEPT 2
#define FS_KIND_BATCH 4
#define FS_KIND_ACK 5
#define FS_KIND_PING 6
#define FS_KIND_PONG 7
#define FS_KIND_TASK 8
#define FS_KIND_CLOSE 11

#define FS_TYPE_TASK_RESULT 1050u
#define FS_MAX_SEEN 8192

typedef struct fs_server {
    /* Bytes from the agent not yet parsed (a frame may arrive in pieces). */
    uint8_t in[16384];
    size_t in_len;
    /* Bytes for the agent, not yet delivered. */
    uint8_t out[16384];
    size_t out_len;
    uint32_t out_seq;
    int handshaken;
    /* Durable state: survives connections. */
    uint64_t next_seq;       /* records stored: 0..next_seq-1 */
    uint64_t stored;         /* = next_seq */
    uint64_t resent_ignored; /* records received again (already stored) */
    uint64_t hellos;
    char hello_auth[64]; /* the auth token of the last Hello */
    uint64_t batches;
    uint64_t app_records;    /* stored records of the application's type */
    uint32_t app_type;
    uint8_t app_seen[FS_MAX_SEEN]; /* app payload index -> times stored */
    uint64_t task_results;
    char last_token[64];
    uint32_t last_status;
    uint64_t bad_frames;
} fs_server;

static inline uint32_t fs_crc32c(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* LEB128 varint reader over [*p, end). Returns 0 on truncation. */
static inline int fs_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    unsigned shift = 0;
    while (*p < end && shift < 64) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
        shift += 7;
    }
    return 0;
}

/* A length-prefixed field (string or bytes). */
static inline int fs_field(const uint8_t **p, const uint8_t *end, const uint8_t **f, size_t *len) {
    uint64_t n;
    if (!fs_varint(p, end, &n) || n > (uint64_t)(end - *p)) return 0;
    *f = *p;
    *len = (size_t)n;
    *p += n;
    return 1;
}

static inline size_t fs_put_varint(uint8_t *o, uint64_t v) {
    size_t n = 0;
    do {
        uint8_t b = (uint8_t)(v & 0x7F);
        v >>= 7;
        o[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

static inline size_t fs_put_field(uint8_t *o, const void *b, size_t len) {
    size_t n = fs_put_varint(o, len);
    memcpy(o + n, b, len);
    return n + len;
}

/* Appends a frame of `kind` with `body` to the agent-bound bytes. */
static inline void fs_send(fs_server *s, uint8_t kind, const uint8_t *body, size_t len) {
    uint8_t *f = s->out + s->out_len;
    uint32_t crc;
    if (s->out_len + 17 + len > sizeof s->out) return; /* the toy drops it */
    f[0] = 0xEA; f[1] = 0x9E; f[2] = 1; f[3] = kind; f[4] = 0;
    f[5] = (uint8_t)len; f[6] = (uint8_t)(len >> 8); f[7] = (uint8_t)(len >> 16); f[8] = (uint8_t)(len >> 24);
    f[9] = (uint8_t)s->out_seq; f[10] = (uint8_t)(s->out_seq >> 8);
    f[11] = (uint8_t)(s->out_seq >> 16); f[12] = (uint8_t)(s->out_seq >> 24);
    memcpy(f + 13, body, len);
    crc = fs_crc32c(f, 13 + len);
    f[13 + len] = (uint8_t)crc; f[14 + len] = (uint8_t)(crc >> 8);
    f[15 + len] = (uint8_t)(crc >> 16); f[16 + len] = (uint8_t)(crc >> 24);
    s->out_len += 17 + len;
    s->out_seq++;
}

static inline void fs_init(fs_server *s, uint32_t app_type) {
    memset(s, 0, sizeof *s);
    s->app_type = app_type;
}

/* A new connection: per-connection state resets, durable state stays. */
static inline void fs_connection_reset(fs_server *s) {
    s->in_len = 0;
    s->out_len = 0;
    s->out_seq = 0;
    s->handshaken = 0;
}

/* Sends a Task to the agent. */
static inline void fs_send_task(fs_server *s, const char *object, uint32_t type, const char *payload, const char *token) {
    uint8_t b[256];
    size_t n = 0;
    n += fs_put_field(b + n, object, strlen(object));
    n += fs_put_varint(b + n, type);
    n += fs_put_field(b + n, payload, strlen(payload));
    n += fs_put_field(b + n, token, strlen(token));
    fs_send(s, FS_KIND_TASK, b, n);
}

static inline void fs_record(fs_server *s, uint64_t seq, uint64_t type, const uint8_t *p, size_t len) {
    (void)seq;
    if (type == s->app_type && len >= 4) {
        uint32_t idx = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (idx < FS_MAX_SEEN && s->app_seen[idx] < 255) s->app_seen[idx]++;
        s->app_records++;
    } else if (type == FS_TYPE_TASK_RESULT) {
        /* TaskResult { token: str, status: varint, message: str } */
        const uint8_t *q = p, *end = p + len, *tok;
        size_t tlen;
        uint64_t status;
        if (fs_field(&q, end, &tok, &tlen) && fs_varint(&q, end, &status)) {
            if (tlen >= sizeof s->last_token) tlen = sizeof s->last_token - 1;
            memcpy(s->last_token, tok, tlen);
            s->last_token[tlen] = 0;
            s->last_status = (uint32_t)status;
            s->task_results++;
        }
    }
}

static inline void fs_on_batch(fs_server *s, const uint8_t *p, const uint8_t *end) {
    uint64_t first, base_ts, count, i, seq;
    const uint8_t *rec, *rend;
    size_t rlen;
    uint8_t ack[16];
    if (!fs_varint(&p, end, &first) || !fs_varint(&p, end, &base_ts) || !fs_varint(&p, end, &count) ||
        !fs_field(&p, end, &rec, &rlen)) {
        s->bad_frames++;
        return;
    }
    s->batches++;
    rend = rec + rlen;
    for (i = 0, seq = first; i < count; i++, seq++) {
        uint64_t type, delta, len;
        if (!fs_varint(&rec, rend, &type) || !fs_varint(&rec, rend, &delta) || !fs_varint(&rec, rend, &len) ||
            len > (uint64_t)(rend - rec)) {
            s->bad_frames++;
            return;
        }
        if (seq == s->next_seq) {
            fs_record(s, seq, type, rec, (size_t)len);
            s->next_seq++;
            s->stored++;
        } else if (seq < s->next_seq) {
            s->resent_ignored++;
        } /* a gap: not stored; the agent resends after its ack timeout */
        rec += len;
    }
    if (s->next_seq > 0) fs_send(s, FS_KIND_ACK, ack, fs_put_varint(ack, s->next_seq - 1));
}

static inline void fs_on_frame(fs_server *s, uint8_t kind, const uint8_t *body, size_t len) {
    uint8_t b[32];
    size_t n;
    switch (kind) {
    case FS_KIND_HELLO: {
        /* agent_id, hostname, product, version, 4 address lists, token */
        const uint8_t *p = body, *end = body + len, *f = NULL;
        size_t flen = 0;
        int i, ok = 1;
        for (i = 0; i < 9 && ok; i++) ok = fs_field(&p, end, &f, &flen);
        if (ok) {
            if (flen >= sizeof s->hello_auth) flen = sizeof s->hello_auth - 1;
            memcpy(s->hello_auth, f, flen);
            s->hello_auth[flen] = 0;
        } else {
            s->bad_frames++;
        }
        s->hellos++;
        s->handshaken = 1;
        n = fs_put_varint(b, s->next_seq);
        n += fs_put_varint(b + n, 65536);
        /* Field 3 (retry_window_ms) left out: no pacing advice, which
         * PROTOCOL.md allows (the agent reads it as 0). */
        fs_send(s, FS_KIND_ACCEPT, b, n);
        break;
    }
    case FS_KIND_BATCH:
        if (s->handshaken) fs_on_batch(s, body, body + len);
        break;
    case FS_KIND_PING:
        memcpy(b, body, len < sizeof b ? len : sizeof b);
        fs_send(s, FS_KIND_PONG, b, len < sizeof b ? len : sizeof b);
        break;
    default:
        break;
    }
}

/* Bytes from the agent: parses every whole frame. */
static inline void fs_feed(fs_server *s, const uint8_t *p, size_t n) {
    size_t at = 0;
    if (n > sizeof s->in - s->in_len) n = sizeof s->in - s->in_len;
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
    for (;;) {
        uint32_t len, crc;
        const uint8_t *f = s->in + at;
        size_t avail = s->in_len - at;
        if (avail < 17) break;
        len = (uint32_t)f[5] | (uint32_t)f[6] << 8 | (uint32_t)f[7] << 16 | (uint32_t)f[8] << 24;
        if (f[0] != 0xEA || f[1] != 0x9E || len > sizeof s->in - 17) {
            s->bad_frames++;
            at = s->in_len; /* the toy gives up on this stream */
            break;
        }
        if (avail < 17 + (size_t)len) break;
        crc = (uint32_t)f[13 + len] | (uint32_t)f[14 + len] << 8 | (uint32_t)f[15 + len] << 16 | (uint32_t)f[16 + len] << 24;
        if (crc == fs_crc32c(f, 13 + (size_t)len)) fs_on_frame(s, f[3], f + 13, len);
        else s->bad_frames++;
        at += 17 + (size_t)len;
    }
    memmove(s->in, s->in + at, s->in_len - at);
    s->in_len -= at;
}

#endif /* EA_FAKE_SERVER_H */

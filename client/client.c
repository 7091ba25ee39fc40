/* client.c -- libredwork: calling redwork handlers from C.
 *
 * DESIGN. A client has three Redis connections and one reader thread:
 *
 *   sub  SUBSCRIBEd to the one channel <reply_prefix><id> before the first
 *        call, so no reply can be published before the client listens;
 *        every request names it in reply_to (protocol 1.1). An exact
 *        channel, not a pattern: Redis matches every PUBLISH against every
 *        pattern subscription, so a thousand idle pattern clients would
 *        slow every reply down. With reply_store = list each reply is
 *        stored under its own req_id instead, so the client then
 *        PSUBSCRIBEs <reply_prefix><id>.* (glob characters escaped) and
 *        sends no reply_to. Read only by the reader thread.
 *   pub  callers append PUBLISH (XADD for transport = stream) without
 *        waiting for Redis's answer: calls
 *        from many threads are pipelined, and while an answer is awaited
 *        new PUBLISHes gather in the buffer (see publish()). The reader
 *        thread reads the answers (how many subscribers got each request)
 *        in order, matching them through a FIFO of sequence numbers; a 0
 *        completes that call with no_workers. Both sides hold the client
 *        lock while they touch the context.
 *   cmd  used by the reader thread for LPOP of stored replies, when the
 *        daemons keep them (reply_store = list), on a timeout and after the
 *        subscriber reconnects, so such a reply is never missed.
 *
 * Each call is a waiter, in a hash table keyed by its sequence number (the
 * <n> of its req_id <id>.<n>.<token>) and in a min-heap by deadline, which
 * gives the reader its poll timeout. The token is 64 random bits: a reply
 * is taken for a call only if its req_id names both, so nobody who cannot
 * see the client's ids can guess the next one and answer it first. Whoever takes a waiter out of the table -- the reply,
 * the no_workers answer, the deadline, a lost connection, or close -- is the
 * one that completes it, outside the lock, so each callback runs exactly
 * once. */
#include "redwork/client.h"

#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "envelope.h"
#include "options.h"
#include "protocol.h"
#include "sentinel.h"
#include "url.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

typedef struct waiter {
    uint64_t seq;
    uint64_t token;      /* the random part of its req_id */
    uint64_t sent_us;
    uint64_t deadline_us;
    redwork_callback cb;
    void *arg;
    struct waiter *next; /* hash chain */
    size_t heap_at;      /* index in the deadline heap */
    /* Set when taken out, so completion knows what to report. */
    redwork_status status;
    const char *why;
    char *reply;
    char detail[256]; /* a why made for this call (Redis's refusal) */
} waiter;

struct redwork_client {
    redwork_client_options opt;
    char id[sizeof ((redwork_client_options *)0)->client_name + 20];
    pthread_t reader;
    int wake[2]; /* callers and close wake the reader */

    pthread_mutex_t lock; /* everything below */
    int closing;
    int subscribed; /* the sub connection is up: calls may be made */
    uint64_t next_seq;
    waiter **buckets;
    size_t bucket_count, count;
    waiter **heap;
    size_t heap_len, heap_cap;
    redisContext *pub;
    int pub_renewed; /* pub was reconnected: the reader must poll its new fd */
    size_t *shards;  /* stream_shards: the shards pub takes requests for, */
    size_t shard_count, shard_turn; /* and whose turn is next */
    uint64_t *fifo; /* seqs whose PUBLISH answer is awaited, oldest first */
    size_t fifo_head, fifo_len, fifo_cap;

    redisContext *sub; /* reader thread only */
    redisContext *cmd; /* reader thread only */

    redwork_sentinel *sentinel; /* NULL: no sentinels; else shared, thread-safe */
    redisContext *watch;        /* reader thread only: SUBSCRIBEd to +switch-master */
    uint64_t watch_retry_us;    /* when to open it again after a loss */

    /* cluster, reader thread only: the slot map (count 0: ask again) and
     * a connection per master, for stored replies */
    redwork_cluster_map map;
    redisContext **node;
};

/* ---- options of any size (client.h) -------------------------------------- */

/* The options struct as ABI 0 first had it: no caller's is smaller. */
#define OPTIONS_SIZE_0 \
    (offsetof(redwork_client_options, client_name) + \
     sizeof ((redwork_client_options *)0)->client_name)

static void options_defaults(redwork_client_options *o) {
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    strcpy(o->host, "127.0.0.1");
    o->port = 6379;
    o->connect_timeout_ms = 2000;
    strcpy(o->channel, "request");
    strcpy(o->reply_prefix, PROTOCOL_REPLY_PREFIX);
}

void redwork_client_options_init_size(redwork_client_options *opt, size_t size) {
    redwork_client_options full;
    options_defaults(&full);
    full.size = size;
    memcpy(opt, &full, size < sizeof full ? size : sizeof full);
    if (size > sizeof full) /* a newer header's options: left at their defaults */
        memset((char *)opt + sizeof full, 0, size - sizeof full);
}

/* OPT, whatever size its program was built with, as this library's whole
 * struct in *FULL: options it does not cover at their defaults. Returns 0,
 * or -1 with ERR when OPT was not made by redwork_client_options_init(),
 * or sets options this library does not know. */
static int options_in(const redwork_client_options *opt, redwork_client_options *full,
                      char *err, size_t errlen) {
    if (opt->size < OPTIONS_SIZE_0 || opt->size > ((size_t)1 << 20)) {
        snprintf(err, errlen, "options not made by redwork_client_options_init() "
                 "(size %zu)", opt->size);
        return -1;
    }
    options_defaults(full);
    memcpy(full, opt, opt->size < sizeof *full ? opt->size : sizeof *full);
    for (size_t i = sizeof *full; i < opt->size; i++)
        if (((const unsigned char *)opt)[i] != 0) {
            snprintf(err, errlen, "options set that this libredwork (%zu bytes of them) does "
                     "not know: the program was built against a newer redwork", sizeof *full);
            return -1;
        }
    full->size = sizeof *full;
    return 0;
}

/* Writes FULL back into OPT, as much of it as OPT's size covers. */
static void options_out(const redwork_client_options *full, redwork_client_options *opt) {
    size_t size = opt->size;
    memcpy(opt, full, size < sizeof *full ? size : sizeof *full);
    opt->size = size;
}

/* Copies SRC into DST[SIZE]; -1 (with ERR) if it does not fit. */
static int copy_field(char *dst, size_t size, const char *src, const char *what,
                      const char *path, char *err, size_t errlen) {
    if (strlen(src) >= size) {
        snprintf(err, errlen, "%s: %s is longer than %zu characters", path, what,
                 size - 1);
        return -1;
    }
    strcpy(dst, src);
    return 0;
}

int redwork_client_options_load(redwork_client_options *opt,
                                const char *ini_path, char *err,
                                size_t errlen) {
    redwork_client_options o;
    if (options_in(opt, &o, err, errlen) != 0)
        return -1;
    config *cfg = redwork_config_load(ini_path, err, errlen);
    if (cfg == NULL)
        return -1;
    const char *password = *cfg->redis_password_env
                               ? getenv(cfg->redis_password_env) : "";
    const char *sentinel_password = *cfg->sentinel_password_env
                                        ? getenv(cfg->sentinel_password_env) : "";
    const char *channel = NULL;
    for (size_t i = 0; i < cfg->channel_count && channel == NULL; i++)
        if (strpbrk(cfg->channel_list[i], "*?[") == NULL)
            channel = cfg->channel_list[i];
    int status =
        copy_field(o.host, sizeof o.host, cfg->redis_host, "[redis] host", ini_path, err, errlen) ||
        copy_field(o.username, sizeof o.username, cfg->redis_username, "[redis] username", ini_path, err, errlen) ||
        copy_field(o.password, sizeof o.password, password, "the password", ini_path, err, errlen) ||
        copy_field(o.reply_prefix, sizeof o.reply_prefix, cfg->reply_prefix, "[worker] reply_prefix", ini_path, err, errlen) ||
        copy_field(o.tls_ca_file, sizeof o.tls_ca_file, cfg->tls_ca_file, "[redis] tls_ca_file", ini_path, err, errlen) ||
        copy_field(o.tls_cert_file, sizeof o.tls_cert_file, cfg->tls_cert_file, "[redis] tls_cert_file", ini_path, err, errlen) ||
        copy_field(o.tls_key_file, sizeof o.tls_key_file, cfg->tls_key_file, "[redis] tls_key_file", ini_path, err, errlen) ||
        copy_field(o.tls_server_name, sizeof o.tls_server_name, cfg->tls_server_name, "[redis] tls_server_name", ini_path, err, errlen) ||
        (channel != NULL &&
         copy_field(o.channel, sizeof o.channel, channel, "[worker] channels", ini_path, err, errlen)) ||
        copy_field(o.sentinels, sizeof o.sentinels, cfg->sentinels, "[redis] sentinels", ini_path, err, errlen) ||
        copy_field(o.master_name, sizeof o.master_name, cfg->master_name, "[redis] master_name", ini_path, err, errlen) ||
        copy_field(o.sentinel_username, sizeof o.sentinel_username, cfg->sentinel_username, "[redis] sentinel_username", ini_path, err, errlen) ||
        copy_field(o.sentinel_password, sizeof o.sentinel_password, sentinel_password, "the sentinel password", ini_path, err, errlen);
    o.port = (int)cfg->redis_port;
    o.db = cfg->redis_db;
    o.connect_timeout_ms = (int)cfg->connect_timeout_ms;
    o.reply_store_list = cfg->reply_store == REPLY_STORE_LIST;
    o.transport_stream = cfg->transport == TRANSPORT_STREAM;
    o.tls = (int)cfg->tls;
    o.cluster = (int)cfg->cluster;
    o.stream_shards = (int)cfg->stream_shards;
    redwork_config_free(cfg);
    if (status != 0)
        return -1;
    options_out(&o, opt);
    return 0;
}

int redwork_client_options_set_url(redwork_client_options *opt, const char *url,
                                   char *err, size_t errlen) {
    redwork_url u;
    char why[256];
    char shown[512];
    if (url == NULL) {
        snprintf(err, errlen, "no url given");
        return -1;
    }
    if (redwork_url_parse(url, &u, why, sizeof why) != 0) {
        snprintf(err, errlen, "url '%s': %s", redwork_url_redacted(url, shown, sizeof shown),
                 why);
        return -1;
    }
    redwork_client_options o;
    if (options_in(opt, &o, err, errlen) != 0)
        return -1;
    if (strlen(u.host) >= sizeof o.host || strlen(u.username) >= sizeof o.username) {
        snprintf(err, errlen, "url '%s': the host or user name is too long", url);
        return -1;
    }
    strcpy(o.host, u.host);
    o.port = u.port ? u.port : 6379;
    o.db = u.db >= 0 ? u.db : 0;
    strcpy(o.username, u.username);
    o.tls = u.tls;
    options_out(&o, opt);
    return 0;
}

conn_params redwork_client_conn_params(const redwork_client_options *o,
                                       redwork_sentinel *sentinel) {
    return (conn_params){
        .host = o->host, .port = o->port, .db = o->db, .username = o->username,
        .password = o->password, .connect_timeout_ms = o->connect_timeout_ms,
        .tls = o->tls, .tls_ca_file = o->tls_ca_file, .tls_cert_file = o->tls_cert_file,
        .tls_key_file = o->tls_key_file, .tls_server_name = o->tls_server_name,
        .sentinel = sentinel,
    };
}

int redwork_client_sentinel(const redwork_client_options *o, redwork_sentinel **out,
                            char *err, size_t errlen) {
    *out = NULL;
    if (*o->sentinels == '\0')
        return 0;
    char why[256];
    *out = redwork_sentinel_create(o->sentinels, o->master_name, o->sentinel_username,
                                   o->sentinel_password, why, sizeof why);
    if (*out == NULL) {
        snprintf(err, errlen, "sentinels '%s', master_name '%s': %s", o->sentinels,
                 o->master_name, why);
        return -1;
    }
    return 0;
}

/* The connection parameters of C's options. */
static conn_params params_of(const redwork_client *c) {
    return redwork_client_conn_params(&c->opt, c->sentinel);
}

static redisContext *connect_redis(const redwork_client *c, char *err, size_t errlen) {
    conn_params p = params_of(c);
    return redwork_conn_connect(&p, err, errlen);
}

/* A number nobody else picks: for the random shard a connection starts at. */
static uint64_t random_u64(void) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) /* rare: mix what we have */
        r = clock_wall_ms() * 6364136223846793005ULL ^ (uint64_t)getpid() << 32 ^ clock_now_us();
    return r;
}

/* Sets C's shards to those of the N that MAP's master OWNER serves (all N
 * when MAP is NULL). Returns 0, or -1 out of memory. */
static int pick_shards(redwork_client *c, const redwork_cluster_map *map, uint16_t owner,
                       size_t n) {
    size_t *list = realloc(c->shards, n * sizeof *list);
    if (list == NULL)
        return -1;
    c->shards = list;
    c->shard_count = 0;
    for (size_t i = 0; i < n; i++) {
        char key[sizeof c->opt.channel + 24];
        int len = snprintf(key, sizeof key, "%s{%zu}", c->opt.channel, i);
        if (map == NULL || map->slot_node[redwork_cluster_key_slot(key, (size_t)len)] == owner)
            list[c->shard_count++] = i;
    }
    return 0;
}

/* The connection requests go out on (under the lock, or before the
 * reader starts): in a cluster with streams, to the master of the stream's
 * slot -- with shards, of a random shard's, whose shards it then takes in
 * turn; else as connect_redis(). */
static redisContext *connect_pub(redwork_client *c, char *err, size_t errlen) {
    size_t n = c->opt.transport_stream && c->opt.stream_shards > 0
                   ? (size_t)c->opt.stream_shards : 0;
    if (!(c->opt.cluster && c->opt.transport_stream)) {
        if (n > 0 && pick_shards(c, NULL, 0, n) != 0) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        return connect_redis(c, err, errlen);
    }
    conn_params p = params_of(c);
    if (n == 0)
        return redwork_cluster_connect_key(&p, c->opt.channel, strlen(c->opt.channel), err,
                                           errlen);
    redwork_cluster_map map;
    redwork_cluster_map_init(&map);
    redisContext *seed = redwork_cluster_discover(&p, NULL, &map, err, errlen);
    if (seed == NULL)
        return NULL;
    redisFree(seed);
    char key[sizeof c->opt.channel + 24];
    int len = snprintf(key, sizeof key, "%s{%llu}", c->opt.channel,
                       (unsigned long long)(random_u64() % n));
    uint16_t owner = map.slot_node[redwork_cluster_key_slot(key, (size_t)len)];
    redisContext *ctx = NULL;
    if (owner == CLUSTER_NO_NODE)
        snprintf(err, errlen, "redis %s:%d: no master serves %s", p.host, p.port, key);
    else if (pick_shards(c, &map, owner, n) != 0)
        snprintf(err, errlen, "out of memory");
    else
        ctx = redwork_cluster_connect_node(&p, &map, owner, err, errlen);
    redwork_cluster_map_clear(&map);
    return ctx;
}

/* ---- SIGPIPE ------------------------------------------------------------- */

/* A write to a connection that Redis (or the TLS pump) has closed raises
 * SIGPIPE, whose default kills the process; the application's signal
 * dispositions are its own business, so the library changes none: a
 * thread of the caller's blocks SIGPIPE around what it writes and takes
 * back the one it raised, if any, and the reader thread blocks it for
 * good. The write then fails with EPIPE, as an error to report. */
typedef struct sigpipe_guard {
    sigset_t old;
    int was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g) {
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

static void sigpipe_unblock(const sigpipe_guard *g) {
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec now = {0, 0};
        sigtimedwait(&pipe_set, NULL, &now); /* the one our write raised */
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- the waiter table and the deadline heap (under the lock) ----------- */

static int table_grow(redwork_client *c) {
    size_t n = c->bucket_count ? c->bucket_count * 2 : 64;
    waiter **b = redwork_calloc(n, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < c->bucket_count; i++)
        for (waiter *w = c->buckets[i], *next; w != NULL; w = next) {
            next = w->next;
            w->next = b[w->seq & (n - 1)];
            b[w->seq & (n - 1)] = w;
        }
    free(c->buckets);
    c->buckets = b;
    c->bucket_count = n;
    return 0;
}

static void heap_swap(redwork_client *c, size_t i, size_t j) {
    waiter *t = c->heap[i];
    c->heap[i] = c->heap[j];
    c->heap[j] = t;
    c->heap[i]->heap_at = i;
    c->heap[j]->heap_at = j;
}

static void heap_up(redwork_client *c, size_t i) {
    while (i > 0 && c->heap[(i - 1) / 2]->deadline_us > c->heap[i]->deadline_us) {
        heap_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(redwork_client *c, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->heap_len && c->heap[l]->deadline_us < c->heap[m]->deadline_us)
            m = l;
        if (r < c->heap_len && c->heap[r]->deadline_us < c->heap[m]->deadline_us)
            m = r;
        if (m == i)
            return;
        heap_swap(c, i, m);
        i = m;
    }
}

/* Adds W to the table and the heap. Returns 0, or -1 out of memory. */
static int waiter_add(redwork_client *c, waiter *w) {
    if (c->count >= c->bucket_count && table_grow(c) != 0)
        return -1;
    if (c->heap_len == c->heap_cap) {
        size_t n = c->heap_cap ? c->heap_cap * 2 : 64;
        waiter **h = redwork_realloc(c->heap, n * sizeof *h);
        if (h == NULL)
            return -1;
        c->heap = h;
        c->heap_cap = n;
    }
    w->next = c->buckets[w->seq & (c->bucket_count - 1)];
    c->buckets[w->seq & (c->bucket_count - 1)] = w;
    c->count++;
    w->heap_at = c->heap_len;
    c->heap[c->heap_len++] = w;
    heap_up(c, w->heap_at);
    return 0;
}

/* The waiter of SEQ, left in place; NULL if it has been completed. */
static waiter *waiter_find(redwork_client *c, uint64_t seq) {
    waiter *w = c->bucket_count > 0 ? c->buckets[seq & (c->bucket_count - 1)] : NULL;
    while (w != NULL && w->seq != seq)
        w = w->next;
    return w;
}

/* Takes the waiter of SEQ out of the table and the heap; NULL if it has
 * been completed already. */
static waiter *waiter_take(redwork_client *c, uint64_t seq) {
    if (c->bucket_count == 0)
        return NULL;
    waiter **p = &c->buckets[seq & (c->bucket_count - 1)];
    while (*p != NULL && (*p)->seq != seq)
        p = &(*p)->next;
    waiter *w = *p;
    if (w == NULL)
        return NULL;
    *p = w->next;
    c->count--;
    size_t at = w->heap_at;
    if (at != --c->heap_len) {
        heap_swap(c, at, c->heap_len);
        heap_down(c, at);
        heap_up(c, at);
    }
    w->next = NULL;
    return w;
}

/* ---- completing calls --------------------------------------------------- */

static char *dup_or_null(const char *s) { return s != NULL ? redwork_strdup(s) : NULL; }

/* W's req_id, <client id>.<seq>.<token in hex>, into OUT. */
static void format_req_id(const redwork_client *c, const waiter *w, char *out, size_t len) {
    snprintf(out, len, "%s.%llu.%016llx", c->id, (unsigned long long)w->seq,
             (unsigned long long)w->token);
}

/* Runs W's callback with what it was taken out for, and frees W. Called
 * without the lock. */
static void waiter_complete(redwork_client *c, waiter *w) {
    redwork_result res = {.status = w->status};
    format_req_id(c, w, res.req_id, sizeof res.req_id);
    res.latency_us = (long long)(clock_now_us() - w->sent_us);
    if (w->reply != NULL) {
        redwork_envelope_result(&res, w->reply);
        free(w->reply);
    } else {
        res.error_code = redwork_strdup(redwork_status_name(w->status));
        res.error_message = dup_or_null(w->why);
    }
    w->cb(&res, w->arg);
    free(w);
}

/* Waiters taken out, chained through their next field, to be completed
 * after the lock is released: no allocation, so nothing can fail here. */
typedef struct done_list {
    waiter *head, *tail;
} done_list;

static void done_add(done_list *d, waiter *w, redwork_status status,
                     const char *why, char *reply) {
    w->status = status;
    w->why = why;
    w->reply = reply;
    w->next = NULL;
    if (d->tail != NULL)
        d->tail->next = w;
    else
        d->head = w;
    d->tail = w;
}

static waiter *done_pop(done_list *d) {
    waiter *w = d->head;
    if (w != NULL && (d->head = w->next) == NULL)
        d->tail = NULL;
    return w;
}

static void done_run(redwork_client *c, done_list *d) {
    waiter *w;
    while ((w = done_pop(d)) != NULL)
        waiter_complete(c, w);
}

/* Takes every waiting call (under the lock) into D. */
static void take_all(redwork_client *c, done_list *d, redwork_status status,
                     const char *why) {
    while (c->heap_len > 0)
        done_add(d, waiter_take(c, c->heap[0]->seq), status, why, NULL);
    c->fifo_len = 0;
}

/* ---- the reader thread --------------------------------------------------- */

/* Takes the waiter that the req_id ID names, <client id>.<seq>.<token>,
 * out of the table (under the lock); NULL if it is not one of ours, has
 * been completed already, or names the wrong token. */
static waiter *waiter_take_id(redwork_client *c, const char *id) {
    size_t idlen = strlen(c->id);
    if (strncmp(id, c->id, idlen) != 0 || id[idlen] != '.')
        return NULL;
    char *end;
    unsigned long long seq = strtoull(id + idlen + 1, &end, 10);
    if (*end != '.' || strlen(end + 1) != 16)
        return NULL;
    unsigned long long token = strtoull(end + 1, &end, 16);
    waiter *w = *end == '\0' ? waiter_find(c, seq) : NULL;
    return w != NULL && w->token == token ? waiter_take(c, seq) : NULL;
}

/* Appends S to OUT (LEN bytes, NUL-terminated) with Redis's glob
 * characters escaped, for a pattern that must match S literally. */
static void glob_escape(char *out, size_t len, const char *s) {
    size_t n = strlen(out);
    for (; *s != '\0' && n + 2 < len; s++) {
        if (strchr("*?[]\\", *s) != NULL)
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n] = '\0';
}

static redisContext *subscribe(redwork_client *c, char *err, size_t errlen) {
    redisContext *s = connect_redis(c, err, errlen);
    if (s == NULL)
        return NULL;
    redisReply *r;
    if (c->opt.reply_store_list) { /* a channel per call: see DESIGN */
        char pattern[2 * (sizeof c->opt.reply_prefix + sizeof c->id) + 4] = "";
        glob_escape(pattern, sizeof pattern, c->opt.reply_prefix);
        glob_escape(pattern, sizeof pattern, c->id);
        strcat(pattern, ".*");
        r = redisCommand(s, "PSUBSCRIBE %s", pattern);
    } else {
        r = redisCommand(s, "SUBSCRIBE %s%s", c->opt.reply_prefix, c->id);
    }
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY;
    if (!ok)
        redwork_conn_error(s, r, err, errlen);
    freeReplyObject(r);
    if (!ok) {
        redisFree(s);
        return NULL;
    }
    return s;
}

/* Forgets the cluster's slot map and closes the connections to its masters. */
static void forget_cluster(redwork_client *c) {
    for (size_t i = 0; c->node != NULL && i < c->map.count; i++)
        if (c->node[i] != NULL)
            redisFree(c->node[i]);
    free(c->node);
    c->node = NULL;
    redwork_cluster_map_clear(&c->map);
}

/* The connection for KEY: C->cmd, or in a cluster the one to its slot's
 * master (the map asked for when not known). NULL if it cannot be had. */
static redisContext *cmd_for(redwork_client *c, const char *key) {
    char err[256];
    if (!c->opt.cluster) {
        if (c->cmd == NULL)
            c->cmd = connect_redis(c, err, sizeof err);
        return c->cmd;
    }
    conn_params p = params_of(c);
    if (c->map.count == 0) {
        redisContext *seed = redwork_cluster_discover(&p, NULL, &c->map, err, sizeof err);
        if (seed == NULL)
            return NULL;
        redisFree(seed);
        c->node = calloc(c->map.count, sizeof *c->node);
        if (c->node == NULL) {
            redwork_cluster_map_clear(&c->map);
            return NULL;
        }
    }
    uint16_t owner = c->map.slot_node[redwork_cluster_key_slot(key, strlen(key))];
    if (owner == CLUSTER_NO_NODE)
        return NULL;
    if (c->node[owner] == NULL)
        c->node[owner] = redwork_cluster_connect_node(&p, &c->map, owner, err, sizeof err);
    return c->node[owner];
}

/* With reply_store = list: LPOPs the stored reply of every waiter in LIST
 * into its reply field (NULL where there is none yet); one at a time, as
 * in a cluster each key may live on another master. A lost connection or
 * a redirect is given up on for this round (the map is asked again). */
static void fetch_stored(redwork_client *c, done_list *list) {
    for (waiter *w = list->head; w != NULL; w = w->next) {
        char key[sizeof c->opt.reply_prefix + PROTOCOL_ID_MAX + 1], id[PROTOCOL_ID_MAX + 1];
        format_req_id(c, w, id, sizeof id);
        snprintf(key, sizeof key, "%s%s", c->opt.reply_prefix, id);
        redisContext *ctx = cmd_for(c, key);
        redisReply *r = ctx != NULL ? redisCommand(ctx, "LPOP %s", key) : NULL;
        if (r != NULL && r->type == REDIS_REPLY_STRING)
            w->reply = redwork_strdup(r->str);
        int broken = ctx != NULL && (r == NULL || ctx->err || r->type == REDIS_REPLY_ERROR);
        freeReplyObject(r);
        if (broken && c->opt.cluster) {
            forget_cluster(c);
        } else if (broken && ctx->err) {
            redisFree(c->cmd);
            c->cmd = NULL;
        }
    }
}

/* Completes the waiters whose deadline has passed: with their stored reply
 * if the daemons keep one, else with a timeout. */
static void expire(redwork_client *c, done_list *d) {
    uint64_t now = clock_now_us();
    done_list late = {0};
    pthread_mutex_lock(&c->lock);
    while (c->heap_len > 0 && c->heap[0]->deadline_us <= now)
        done_add(&late, waiter_take(c, c->heap[0]->seq), REDWORK_TIMEOUT,
                 "no reply within the timeout", NULL);
    pthread_mutex_unlock(&c->lock);
    if (late.head != NULL && c->opt.reply_store_list)
        fetch_stored(c, &late);
    waiter *w;
    while ((w = done_pop(&late)) != NULL)
        done_add(d, w, w->reply != NULL ? REDWORK_OK : REDWORK_TIMEOUT, w->why,
                 w->reply);
}

/* Handles every reply parsed on the sub connection: a message (SUBSCRIBE)
 * or a pmessage (PSUBSCRIBE), matched to its call by the envelope's
 * req_id. */
static void read_replies(redwork_client *c, done_list *d) {
    redisReply *r;
    while (redisGetReplyFromReader(c->sub, (void **)&r) == REDIS_OK && r != NULL) {
        const redisReply *body = r->type == REDIS_REPLY_ARRAY && (r->elements == 3 ||
                                                                  r->elements == 4)
                                     ? r->element[r->elements - 1] : NULL;
        char id[PROTOCOL_ID_MAX + 1];
        if (body != NULL && body->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, r->elements == 3 ? "message" : "pmessage") == 0 &&
            redwork_envelope_req_id(body->str, id) == 0) {
            pthread_mutex_lock(&c->lock);
            waiter *w = waiter_take_id(c, id);
            pthread_mutex_unlock(&c->lock);
            char *copy = w != NULL ? redwork_strdup(body->str) : NULL;
            if (w != NULL) /* else: late, a second copy, or not ours; dropped */
                done_add(d, w, copy != NULL ? REDWORK_OK : REDWORK_CONNECTION,
                         copy != NULL ? NULL : "out of memory", copy);
        }
        freeReplyObject(r);
    }
}

/* Writes what the pub connection has buffered (under the lock). Returns
 * 0, or -1 after dropping the broken connection. */
static int write_pub(redwork_client *c) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(c->pub, &done) != REDIS_OK) {
            redisFree(c->pub);
            c->pub = NULL;
            c->fifo_len = 0;
            return -1;
        }
    return 0;
}

/* Reads PUBLISH answers on the pub connection, then writes the PUBLISHes
 * that waited for them (under the lock). */
static void read_publish_counts(redwork_client *c, done_list *d) {
    if (c->pub == NULL || redisBufferRead(c->pub) != REDIS_OK) {
        if (c->pub != NULL) {
            redisFree(c->pub);
            c->pub = NULL; /* reconnected by the next call */
        }
        c->fifo_len = 0;
        return;
    }
    redisReply *r;
    int moved = 0; /* a replica now, loading, or the slot moved: ask where again */
    while (redisGetReplyFromReader(c->pub, (void **)&r) == REDIS_OK && r != NULL) {
        moved |= (c->sentinel != NULL || c->opt.cluster) && r->type == REDIS_REPLY_ERROR &&
                 (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "LOADING", 7) == 0 ||
                  strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
                  strncmp(r->str, "CLUSTERDOWN", 11) == 0);
        if (c->fifo_len > 0) {
            uint64_t seq = c->fifo[c->fifo_head];
            c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
            c->fifo_len--;
            /* In a cluster PUBLISH counts only the node's own subscribers. */
            int nobody = !c->opt.cluster && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
            waiter *w = nobody || r->type == REDIS_REPLY_ERROR ? waiter_take(c, seq) : NULL;
            if (w != NULL && !nobody) /* the command and Redis's own words */
                snprintf(w->detail, sizeof w->detail, "Redis refused the %s: %s",
                         c->opt.transport_stream ? "XADD" : "PUBLISH", r->str);
            if (w != NULL)
                done_add(d, w, nobody ? REDWORK_NO_WORKERS : REDWORK_CONNECTION,
                         nobody ? "PUBLISH reached no worker on the channel" : w->detail, NULL);
        }
        freeReplyObject(r);
    }
    if (moved) {
        /* The calls whose answers have not come went to a server that no
         * longer takes writes: refused too, and never answered now. */
        while (c->fifo_len > 0) {
            waiter *w = waiter_take(c, c->fifo[c->fifo_head]);
            c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
            c->fifo_len--;
            if (w != NULL)
                done_add(d, w, REDWORK_CONNECTION, "Redis moved: the request was not taken",
                         NULL);
        }
        redisFree(c->pub);
        c->pub = NULL; /* reconnected by the next call, to the master */
        return;
    }
    if (c->pub != NULL && sdslen(c->pub->obuf) > 0 && write_pub(c) != 0)
        take_all(c, d, REDWORK_CONNECTION,
                 "lost the connection to Redis while publishing");
}

/* ---- following the master (sentinels) ------------------------------------ */

#define WATCH_RETRY_US 1000000u

/* Opens the +switch-master subscription at a sentinel (when it is due).
 * Returns 0, or -1 (tried again later). */
static int watch_open(redwork_client *c) {
    if (c->watch != NULL || clock_now_us() < c->watch_retry_us)
        return c->watch != NULL ? 0 : -1;
    char err[256];
    conn_params p = params_of(c);
    c->watch = redwork_conn_sentinel(&p, err, sizeof err);
    redisReply *r = c->watch != NULL ? redisCommand(c->watch, "SUBSCRIBE +switch-master") : NULL;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (c->watch != NULL)
            redisFree(c->watch);
        c->watch = NULL;
        c->watch_retry_us = clock_now_us() + WATCH_RETRY_US;
    }
    freeReplyObject(r);
    return c->watch != NULL ? 0 : -1;
}

/* Reads the watch: returns 1 if a failover moved our master, else 0. */
static int watch_read(redwork_client *c) {
    int moved = 0;
    redisReply *r;
    if (redisBufferRead(c->watch) != REDIS_OK) {
        redisFree(c->watch);
        c->watch = NULL;
        c->watch_retry_us = clock_now_us() + WATCH_RETRY_US;
        return 0;
    }
    while (redisGetReplyFromReader(c->watch, (void **)&r) == REDIS_OK && r != NULL) {
        char name[128];
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING &&
            sscanf(r->element[2]->str, "%127s", name) == 1 &&
            strcmp(name, redwork_sentinel_name(c->sentinel)) == 0)
            moved = 1;
        freeReplyObject(r);
    }
    return moved;
}

/* The master moved: the publishing connection is dropped (the next call
 * opens one to the new master), and so is the subscriber (resubscribe()
 * follows). */
static void leave_old_master(redwork_client *c) {
    pthread_mutex_lock(&c->lock);
    if (c->pub != NULL) {
        redisFree(c->pub);
        c->pub = NULL;
        c->fifo_len = 0;
    }
    pthread_mutex_unlock(&c->lock);
}

/* The subscriber connection is gone: fail or keep the waiting calls, then
 * reconnect with backoff until it works or the client closes. Returns 0
 * when subscribed again, -1 on close. */
static int resubscribe(redwork_client *c, done_list *d) {
    redisFree(c->sub);
    c->sub = NULL;
    pthread_mutex_lock(&c->lock);
    c->subscribed = 0;
    if (!c->opt.reply_store_list) /* their replies cannot be recovered */
        take_all(c, d, REDWORK_CONNECTION, "lost the connection to Redis");
    pthread_mutex_unlock(&c->lock);
    done_run(c, d);

    int delay = BACKOFF_MIN_MS;
    for (;;) {
        /* Deadlines still run while Redis is away (reply_store = list keeps
         * the calls waiting): wake for the nearest one too. */
        pthread_mutex_lock(&c->lock);
        int closing = c->closing, wait_ms = delay;
        if (c->heap_len > 0) {
            uint64_t now = clock_now_us(), due = c->heap[0]->deadline_us;
            int due_ms = due <= now ? 0 : (int)((due - now + 999) / 1000);
            wait_ms = due_ms < wait_ms ? due_ms : wait_ms;
        }
        pthread_mutex_unlock(&c->lock);
        if (closing)
            return -1;
        /* A failover announced meanwhile ends the wait: the new master is
         * known. */
        if (c->sentinel != NULL)
            watch_open(c);
        struct pollfd fds[2] = {
            {.fd = c->wake[0], .events = POLLIN},
            {.fd = c->watch != NULL ? c->watch->fd : -1, .events = POLLIN},
        };
        poll(fds, 2, wait_ms);
        if ((fds[1].revents & (POLLIN | POLLERR | POLLHUP)) && c->watch != NULL &&
            watch_read(c)) {
            leave_old_master(c);
            delay = BACKOFF_MIN_MS / 2;
        }
        expire(c, d);
        done_run(c, d);
        pthread_mutex_lock(&c->lock);
        closing = c->closing;
        pthread_mutex_unlock(&c->lock);
        if (closing)
            return -1;
        char err[256];
        c->sub = subscribe(c, err, sizeof err);
        if (c->sub != NULL)
            break;
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
    /* Replies published while we were away wait in their lists; the calls
     * without one go back to waiting. */
    done_list pending = {0};
    pthread_mutex_lock(&c->lock);
    c->subscribed = 1;
    while (c->heap_len > 0)
        done_add(&pending, waiter_take(c, c->heap[0]->seq), REDWORK_OK, NULL, NULL);
    pthread_mutex_unlock(&c->lock);
    fetch_stored(c, &pending);
    waiter *w;
    pthread_mutex_lock(&c->lock);
    while ((w = done_pop(&pending)) != NULL)
        if (w->reply != NULL || waiter_add(c, w) != 0)
            done_add(d, w, w->reply != NULL ? REDWORK_OK : REDWORK_CONNECTION,
                     "out of memory", w->reply);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void *reader_main(void *arg) {
    redwork_client *c = arg;
    done_list d = {0};
    for (;;) {
        pthread_mutex_lock(&c->lock);
        int closing = c->closing;
        int timeout = -1;
        if (c->heap_len > 0) {
            uint64_t now = clock_now_us(), due = c->heap[0]->deadline_us;
            timeout = due <= now ? 0 : (int)((due - now + 999) / 1000);
        }
        int pub_fd = c->pub != NULL ? c->pub->fd : -1;
        pthread_mutex_unlock(&c->lock);
        if (closing)
            break;
        if (c->sentinel != NULL && watch_open(c) != 0) /* poll again within a second */
            timeout = timeout >= 0 && timeout < 1000 ? timeout : 1000;

        struct pollfd fds[4] = {
            {.fd = c->wake[0], .events = POLLIN},
            {.fd = c->sub->fd, .events = POLLIN},
            {.fd = pub_fd, .events = POLLIN},
            {.fd = c->watch != NULL ? c->watch->fd : -1, .events = POLLIN},
        };
        if (poll(fds, 4, timeout) < 0 && errno != EINTR)
            break;
        if ((fds[3].revents & (POLLIN | POLLERR | POLLHUP)) && c->watch != NULL &&
            watch_read(c)) {
            leave_old_master(c);
            if (resubscribe(c, &d) != 0)
                break;
            continue;
        }
        if (fds[0].revents & POLLIN) {
            char buf[64];
            while (read(c->wake[0], buf, sizeof buf) > 0)
                ;
        }
        if (fds[2].revents & (POLLIN | POLLERR | POLLHUP)) {
            pthread_mutex_lock(&c->lock);
            if (c->pub != NULL && c->pub->fd == pub_fd)
                read_publish_counts(c, &d);
            pthread_mutex_unlock(&c->lock);
        }
        if (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) {
            if (redisBufferRead(c->sub) != REDIS_OK) {
                read_replies(c, &d); /* what arrived before the loss */
                done_run(c, &d);
                if (resubscribe(c, &d) != 0)
                    break;
            }
            read_replies(c, &d);
        }
        expire(c, &d);
        done_run(c, &d);
    }
    done_run(c, &d);
    return NULL;
}

/* ---- the public calls ---------------------------------------------------- */

/* redwork_client_open() with SIGPIPE blocked (the reader inherits that). */
static redwork_client *client_open(const redwork_client_options *opt, char *err,
                                   size_t errlen);

redwork_client *redwork_client_open(const redwork_client_options *opt,
                                    char *err, size_t errlen) {
    sigpipe_guard g;
    sigpipe_block(&g);
    redwork_client *c = client_open(opt, err, errlen);
    sigpipe_unblock(&g);
    return c;
}

static redwork_client *client_open(const redwork_client_options *opt, char *err,
                                   size_t errlen) {
    redwork_client_options full;
    if (options_in(opt, &full, err, errlen) != 0)
        return NULL;
    opt = &full;
    redwork_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->opt = full;
    c->wake[0] = c->wake[1] = -1;
    c->next_seq = 1;
    const char *name = *opt->client_name ? opt->client_name : "rw";
    size_t name_len = strnlen(name, sizeof opt->client_name);
    if (name_len == sizeof opt->client_name ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
            name_len) {
        snprintf(err, errlen, "client_name must be 1..32 of [A-Za-z0-9_-]");
        free(c);
        return NULL;
    }
    snprintf(c->id, sizeof c->id, "%.32s-%016llx", name, (unsigned long long)random_u64());
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        snprintf(err, errlen, "cannot make a mutex");
        free(c);
        return NULL;
    }
    if (redwork_client_sentinel(opt, &c->sentinel, err, errlen) != 0)
        goto err;
    if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
        goto err;
    }
    redwork_cluster_map_init(&c->map);
    if ((c->sub = subscribe(c, err, errlen)) == NULL ||
        (c->pub = connect_pub(c, err, errlen)) == NULL)
        goto err;
    c->subscribed = 1;
    if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
        snprintf(err, errlen, "cannot start the reader thread");
        goto err;
    }
    return c;
err:
    if (c->sub != NULL)
        redisFree(c->sub);
    if (c->pub != NULL)
        redisFree(c->pub);
    if (c->wake[0] >= 0) {
        close(c->wake[0]);
        close(c->wake[1]);
    }
    free(c->shards);
    redwork_sentinel_free(c->sentinel);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

void redwork_client_close(redwork_client *c) {
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->closing = 1;
    pthread_mutex_unlock(&c->lock);
    ssize_t ignored = write(c->wake[1], "x", 1);
    (void)ignored;
    pthread_join(c->reader, NULL);

    done_list d = {0};
    pthread_mutex_lock(&c->lock);
    take_all(c, &d, REDWORK_CONNECTION, "the client was closed");
    pthread_mutex_unlock(&c->lock);
    done_run(c, &d);

    if (c->sub != NULL)
        redisFree(c->sub);
    if (c->pub != NULL)
        redisFree(c->pub);
    if (c->cmd != NULL)
        redisFree(c->cmd);
    if (c->watch != NULL)
        redisFree(c->watch);
    forget_cluster(c);
    free(c->shards);
    redwork_sentinel_free(c->sentinel);
    close(c->wake[0]);
    close(c->wake[1]);
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c->heap);
    free(c->fifo);
    free(c);
}

const char *redwork_client_id(const redwork_client *c) { return c->id; }

/* Why the payload OBJ cannot be sent, or NULL: a field the client sets
 * itself (a second req_id would send the reply elsewhere, a second
 * handler run another handler), or a key given twice. */
static const char *payload_refused(const cJSON *obj) {
    static const char *const envelope[] = {PROTOCOL_FIELD_REQ_ID, PROTOCOL_FIELD_HANDLER,
                                           PROTOCOL_FIELD_REPLY_TO};
    for (const cJSON *a = obj->child; a != NULL; a = a->next) {
        for (size_t i = 0; i < sizeof envelope / sizeof envelope[0]; i++)
            if (strcmp(a->string, envelope[i]) == 0)
                return "the payload carries an envelope field (req_id, handler or reply_to): "
                       "the client sets those";
        for (const cJSON *b = a->next; b != NULL; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return "the payload has a key twice";
    }
    return NULL;
}

/* The request body for W: PAYLOAD with req_id, handler and reply_to set.
 * NULL with WHY and *STATUS: REDWORK_INVALID for the payload, or
 * REDWORK_CONNECTION out of memory. */
static char *make_body(const redwork_client *c, const waiter *w, const char *handler,
                       const char *payload, const char **why, redwork_status *status) {
    cJSON *obj = payload != NULL ? cJSON_Parse(payload) : cJSON_CreateObject();
    *status = REDWORK_INVALID;
    if (!cJSON_IsObject(obj) || (*why = payload_refused(obj)) != NULL) {
        if (obj == NULL && payload == NULL) {
            *status = REDWORK_CONNECTION;
            *why = "out of memory";
        } else if (obj == NULL) { /* cJSON cannot tell the two apart */
            *why = "the payload is not JSON (or memory ran out parsing it)";
        } else if (!cJSON_IsObject(obj)) {
            *why = "the payload is not a JSON object";
        }
        cJSON_Delete(obj);
        return NULL;
    }
    char id[PROTOCOL_ID_MAX + 1], reply_to[sizeof c->opt.reply_prefix + sizeof c->id];
    format_req_id(c, w, id, sizeof id);
    snprintf(reply_to, sizeof reply_to, "%s%s", c->opt.reply_prefix, c->id);
    int ok = cJSON_AddStringToObject(obj, PROTOCOL_FIELD_REQ_ID, id) != NULL &&
             (handler == NULL || cJSON_AddStringToObject(obj, PROTOCOL_FIELD_HANDLER, handler)) &&
             (c->opt.reply_store_list ||
              cJSON_AddStringToObject(obj, PROTOCOL_FIELD_REPLY_TO, reply_to) != NULL);
    char *body = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (body == NULL) {
        *status = REDWORK_CONNECTION;
        *why = "out of memory";
    }
    return body;
}

/* Remembers that the PUBLISH of SEQ awaits its answer. */
static int fifo_push(redwork_client *c, uint64_t seq) {
    if (c->fifo_len == c->fifo_cap) {
        size_t n = c->fifo_cap ? c->fifo_cap * 2 : 64;
        uint64_t *f = redwork_malloc(n * sizeof *f);
        if (f == NULL)
            return -1;
        for (size_t i = 0; i < c->fifo_len; i++)
            f[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
        free(c->fifo);
        c->fifo = f;
        c->fifo_head = 0;
        c->fifo_cap = n;
    }
    c->fifo[(c->fifo_head + c->fifo_len++) % c->fifo_cap] = seq;
    return 0;
}

/* Sends BODY for W (under the lock). Returns NULL, or why it failed.
 * Like Nagle's algorithm: with no PUBLISH awaiting its answer, it is
 * written now; otherwise it waits in the buffer and the reader thread
 * writes it with the others when the earlier answer arrives, so a busy
 * client makes one write for many calls and an idle one waits for none. */
static const char *publish(redwork_client *c, waiter *w, const char *body) {
    char err[256];
    if (c->pub == NULL) {
        if ((c->pub = connect_pub(c, err, sizeof err)) == NULL)
            return "cannot connect to Redis to publish";
        c->pub_renewed = 1;
    }
    int idle = c->fifo_len == 0;
    if (fifo_push(c, w->seq) != 0)
        return "out of memory";
    int appended;
    if (c->opt.transport_stream && c->shard_count > 0) {
        char key[sizeof c->opt.channel + 24]; /* hiredis's format has no %zu */
        snprintf(key, sizeof key, "%s{%zu}", c->opt.channel,
                 c->shards[c->shard_turn++ % c->shard_count]);
        appended = redisAppendCommand(c->pub, "XADD %s * msg %s", key, body);
    } else if (c->opt.transport_stream)
        appended = redisAppendCommand(c->pub, "XADD %s * msg %s", c->opt.channel, body);
    else
        appended = redisAppendCommand(c->pub, "PUBLISH %s %s", c->opt.channel, body);
    if (appended != REDIS_OK) { /* nothing went out: no answer to await */
        c->fifo_len--;
        return "out of memory";
    }
    if (idle && write_pub(c) != 0)
        return "lost the connection to Redis while publishing";
    return NULL;
}

int redwork_call_async(redwork_client *c, const char *handler,
                       const char *payload, int timeout_ms, redwork_callback cb,
                       void *arg) {
    waiter *w = redwork_calloc(1, sizeof *w);
    if (w == NULL || cb == NULL) {
        free(w);
        if (cb != NULL) { /* out of memory: told, with no string to allocate */
            redwork_result res = {.status = REDWORK_CONNECTION};
            cb(&res, arg);
        }
        return -1;
    }
    w->cb = cb;
    w->arg = arg;
    w->sent_us = clock_now_us();
    w->deadline_us = w->sent_us + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;

    w->token = random_u64();
    pthread_mutex_lock(&c->lock);
    w->seq = c->next_seq++;
    pthread_mutex_unlock(&c->lock);

    const char *why = timeout_ms > 0 ? NULL : "timeout_ms must be positive";
    redwork_status status = REDWORK_INVALID;
    char *body = why == NULL ? make_body(c, w, handler, payload, &why, &status) : NULL;
    int wake = 0;
    if (body != NULL) {
        status = REDWORK_CONNECTION;
        pthread_mutex_lock(&c->lock);
        if (c->closing)
            why = "the client is closed";
        else if (!c->subscribed)
            why = "not subscribed: the connection to Redis is lost";
        else if (waiter_add(c, w) != 0)
            why = "out of memory";
        else {
            sigpipe_guard g;
            sigpipe_block(&g);
            if ((why = publish(c, w, body)) != NULL)
                waiter_take(c, w->seq);
            sigpipe_unblock(&g);
        }
        /* The reader must see a deadline earlier than the one it sleeps for,
         * or a new pub connection; not if it is the caller. */
        wake = why == NULL && (c->heap[0] == w || c->pub_renewed) &&
               !pthread_equal(pthread_self(), c->reader);
        c->pub_renewed = 0;
        pthread_mutex_unlock(&c->lock);
        free(body);
    }
    if (why != NULL) {
        w->status = status;
        w->why = why;
        waiter_complete(c, w);
        return -1;
    }
    if (wake) {
        ssize_t ignored = write(c->wake[1], "x", 1);
        (void)ignored; /* a full pipe is already a wake-up */
    }
    return 0;
}

typedef struct sync_call {
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    int done;
    redwork_result *out;
} sync_call;

static void sync_done(redwork_result *res, void *arg) {
    sync_call *s = arg;
    pthread_mutex_lock(&s->lock);
    *s->out = *res;
    s->done = 1;
    pthread_cond_signal(&s->done_cond);
    pthread_mutex_unlock(&s->lock);
}

redwork_status redwork_call(redwork_client *c, const char *handler,
                            const char *payload, int timeout_ms,
                            redwork_result *out) {
    sync_call s = {.out = out};
    if (pthread_mutex_init(&s.lock, NULL) != 0) {
        *out = (redwork_result){.status = REDWORK_CONNECTION};
        return out->status;
    }
    if (pthread_cond_init(&s.done_cond, NULL) != 0) {
        pthread_mutex_destroy(&s.lock);
        *out = (redwork_result){.status = REDWORK_CONNECTION};
        return out->status;
    }
    redwork_call_async(c, handler, payload, timeout_ms, sync_done, &s);
    pthread_mutex_lock(&s.lock);
    while (!s.done)
        pthread_cond_wait(&s.done_cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    pthread_cond_destroy(&s.done_cond);
    pthread_mutex_destroy(&s.lock);
    return out->status;
}

/* wire.c -- one Redis connection owned by the event loop, or one per
 * master of a cluster.
 *
 * DESIGN. hiredis opens each connection (conn.c: TCP or TLS, AUTH, SELECT,
 * with timeouts); then the wire keeps only its socket, non-blocking, and
 * speaks RESP through resp.c. A socket and what goes with it (output
 * buffer, reader, the answers awaited) is a strand; a wire has one, or in
 * a cluster one per master. Commands gather in an output buffer during a
 * loop round and go out in one write per strand before the loop waits, so
 * batching comes from load. The answers each strand awaits sit in a ring,
 * oldest first: an answer is matched to its command by position, as Redis
 * answers in order.
 *
 * In a cluster, users append to the wire's staging buffer; before the
 * loop waits, each staged command is cut out, routed by its key's slot and
 * kept, with its expectation, on its strand until answered, so that a
 * -MOVED or -ASK answer can send the same bytes elsewhere. The wire is up
 * only while every strand is: one lost strand drops them all, and the
 * reconnect starts from a fresh slot map, which keeps the users' rule
 * (answers come back NULL, send again when up) the same as for one server.
 *
 * A reconnect must never block the loop (a stopped Redis accepts TCP
 * connections and then says nothing), so each attempt runs conn.c on a
 * detached thread and hands the sockets back through a loop_async. The
 * attempt is shared by the two under a mutex: a wire freed while its
 * attempt is under way marks it abandoned, and the thread then closes what
 * it made and frees the attempt itself. */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define STABLE_MS 100 /* up this long, a lost connection is tried again at once */
#define READ_MAX (256u * 1024u)   /* per readable event: then others' turn */
#define OUT_KEEP (256u * 1024u)   /* an idle output buffer keeps at most this */

static const char ASKING[] = "*1\r\n$6\r\nASKING\r\n";

typedef struct expect {
    wire_answer_fn *fn;
    void *ctx;
    size_t len; /* cluster: the command's bytes at the front of `kept` */
} expect;

/* A ring of expectations, oldest first. */
typedef struct expect_ring {
    expect *at;
    size_t head, count, cap;
} expect_ring;

/* One socket of a wire. */
typedef struct strand {
    wire *w;
    int fd;         /* -1 while down */
    int writing;    /* LOOP_WRITE is watched */
    buffer out;
    size_t sent;    /* bytes of out already written */
    resp_reader in;
    expect_ring awaited;
    buffer kept;    /* cluster: the commands awaited, in order, from kept_head */
    size_t kept_head;
    redwork_cluster_node node; /* cluster: which master */
    loop_timer stall;
} strand;

/* One background connect, shared by the wire and its thread. */
typedef struct attempt {
    pthread_mutex_t lock;
    int refs;
    int abandoned;    /* the wire is gone: the thread cleans up */
    const config *cfg;
    unsigned flags;   /* the wire's */
    loop_async *done; /* the wire's, signalled unless abandoned */
    char pin[WIRE_PIN_MAX]; /* the wire's, "" for none */
    int *fds;         /* the result: a socket per strand, or NULL with err */
    int nfds;
    redwork_cluster_map map; /* cluster: the known one in, the new one out */
    char err[512];
} attempt;

struct wire {
    loop *lp;
    const config *cfg;
    char name[32];
    wire_handlers h;
    void *ctx;
    unsigned flags; /* WIRE_PUSH, WIRE_SENTINEL */
    int routed;     /* a cluster command wire: commands go by slot */
    char pin[WIRE_PIN_MAX]; /* cluster: only the master of this key's slot */
    stats *st;      /* counts reconnects, if set */
    int up;
    int reads_held; /* LOOP_READ is not (wire_hold_reads) */
    strand one;     /* without routing, the one strand */
    strand *strands;
    size_t count;
    buffer staged;  /* routed: commands not yet routed, */
    expect_ring staged_awaited; /* and their expectations */
    redwork_cluster_map map;    /* cluster: the last slot map */
    loop_timer retry;
    loop_async connected;
    attempt *trying;
    int backoff_ms;
    uint64_t up_since_us;  /* when the connection last came up */
    unsigned seed;
    int lost;       /* logged as lost: log the return */
    int hurry;      /* wire_reconnect() during an attempt: retry at once */
    uint64_t read_us;
    char last_err[512];
    log_limit redirect_limit;
};

static void on_io(void *ctx, int events);
static void on_stall(void *ctx);
static void on_retry(void *ctx);
static void on_connected(void *ctx);
static void flush_hook(void *ctx);
static void flush_strand(strand *s);

static void strand_init(strand *s, wire *w) {
    memset(s, 0, sizeof *s);
    s->w = w;
    s->fd = -1;
    s->out = (buffer)BUFFER_INIT;
    s->kept = (buffer)BUFFER_INIT;
    resp_reader_init(&s->in);
    loop_timer_init(&s->stall, on_stall, s);
}

static void strand_free(strand *s) {
    redwork_buffer_free(&s->out);
    redwork_buffer_free(&s->kept);
    resp_reader_free(&s->in);
    free(s->awaited.at);
}

wire *wire_create(loop *lp, const config *cfg, const char *name,
                  const wire_handlers *h, void *ctx, unsigned flags) {
    wire *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->lp = lp;
    w->cfg = cfg;
    snprintf(w->name, sizeof w->name, "%s", name);
    if (h != NULL)
        w->h = *h;
    w->ctx = ctx;
    w->flags = flags;
    w->routed = cfg->cluster && !(flags & WIRE_PUSH);
    strand_init(&w->one, w);
    w->strands = &w->one;
    w->count = 1;
    w->staged = (buffer)BUFFER_INIT;
    redwork_cluster_map_init(&w->map);
    w->backoff_ms = BACKOFF_MIN_MS;
    w->seed = (unsigned)clock_now_us() ^ (unsigned)(uintptr_t)w;
    w->redirect_limit = (log_limit)LOG_LIMIT_INIT;
    loop_timer_init(&w->retry, on_retry, w);
    loop_async_init(lp, &w->connected, on_connected, w);
    if (loop_before_wait(lp, flush_hook, w) != 0) {
        loop_async_remove(lp, &w->connected);
        strand_free(&w->one);
        free(w);
        return NULL;
    }
    return w;
}

void wire_count_reconnects(wire *w, stats *st) { w->st = st; }

int wire_pin(wire *w, const char *key) {
    if (strlen(key) >= sizeof w->pin)
        return -1;
    strcpy(w->pin, key);
    return 0;
}

int wire_is_up(const wire *w) { return w->up; }

buffer *wire_out(wire *w) { return w->routed ? &w->staged : &w->strands[0].out; }

size_t wire_waiting(const wire *w) {
    size_t n = w->staged_awaited.count;
    for (size_t i = 0; i < w->count; i++)
        n += w->strands[i].awaited.count;
    return n;
}

uint64_t wire_read_us(const wire *w) { return w->read_us; }

/* ---- the connection ---------------------------------------------------- */

/* Keeps only C's socket, made non-blocking. Returns the fd, or -1 with ERR. */
static int keep_fd(redisContext *c, const char *where, char *err, size_t errlen) {
    int fd = redisFreeKeepFd(c);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "redis %s: cannot make the socket non-blocking: %s", where,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Connects to the master of MAP at INDEX as CFG says. Returns the fd, or
 * -1 with ERR. */
static int connect_node(const config *cfg, const redwork_cluster_map *map, size_t index,
                        char *err, size_t errlen) {
    conn_params p = redwork_conn_params(cfg);
    redisContext *c = redwork_cluster_connect_node(&p, map, index, err, errlen);
    return c == NULL ? -1 : keep_fd(c, map->nodes[index].host, err, errlen);
}

/* The master of M serving PIN's slot, or CLUSTER_NO_NODE. */
static size_t pinned_node(const redwork_cluster_map *m, const char *pin) {
    return m->slot_node[redwork_cluster_key_slot(pin, strlen(pin))];
}

/* The cluster's connect: the slot map (from the seed, or a master of MAP
 * as it was), then a socket to every master (or, for a push wire, to the
 * node that answered; for a wire pinned to PIN, "" if not, to the master
 * of its slot). Sets *FDS (malloc'd) and MAP, or returns -1 with
 * ERR. */
static int connect_cluster(const config *cfg, unsigned wire_flags, const char *pin,
                           redwork_cluster_map *map, int **fds, char *err, size_t errlen) {
    conn_params p = redwork_conn_params(cfg);
    redwork_cluster_map known = *map;
    redwork_cluster_map_init(map);
    redisContext *c = redwork_cluster_discover(&p, &known, map, err, errlen);
    free(known.nodes);
    if (c == NULL)
        return -1;
    size_t want = wire_flags & WIRE_PUSH || *pin ? 1 : map->count;
    size_t first = *pin ? pinned_node(map, pin) : 0; /* the master of strand 0 */
    if (first == CLUSTER_NO_NODE) {
        redisFree(c);
        snprintf(err, errlen, "redis %s: no master serves the slot of %s", cfg->redis_where, pin);
        return -1;
    }
    /* The node that answered is kept: as the push wire's one strand, or
     * as its own master's. */
    size_t reuse = want;
    if (wire_flags & WIRE_PUSH)
        reuse = 0;
    else if (c->connection_type == REDIS_CONN_TCP && c->tcp.host != NULL)
        for (size_t i = 0; i < want && reuse == want; i++)
            if (map->nodes[first + i].port == c->tcp.port &&
                strcmp(map->nodes[first + i].host, c->tcp.host) == 0)
                reuse = i;
    int reused_fd = -1;
    if (reuse < want) {
        if ((reused_fd = keep_fd(c, cfg->redis_where, err, errlen)) < 0)
            return -1;
    } else {
        redisFree(c);
    }
    *fds = malloc(want * sizeof **fds);
    if (*fds == NULL)
        snprintf(err, errlen, "redis %s: out of memory", cfg->redis_where);
    for (size_t i = 0; *fds != NULL && i < want; i++) {
        (*fds)[i] = i == reuse ? reused_fd : connect_node(cfg, map, first + i, err, errlen);
        if ((*fds)[i] < 0) {
            for (size_t j = 0; j < i; j++)
                close((*fds)[j]);
            free(*fds);
            *fds = NULL;
            if (reuse > i && reuse < want)
                close(reused_fd);
            return -1;
        }
    }
    if (*fds == NULL && reused_fd >= 0)
        close(reused_fd);
    return *fds != NULL ? 0 : -1;
}

/* A connect for a wire with FLAGS (pinned to PIN, "" if not) to the
 * [redis] of CFG: sets *FDS
 * (malloc'd, one per strand) and, in a cluster, MAP. Returns the number of
 * sockets, or -1 with ERR. */
static int connect_fds(const config *cfg, unsigned flags, const char *pin,
                       redwork_cluster_map *map, int **fds, char *err, size_t errlen) {
    if (cfg->cluster && !(flags & WIRE_SENTINEL))
        return connect_cluster(cfg, flags, pin, map, fds, err, errlen) == 0
                   ? (int)(flags & WIRE_PUSH || *pin ? 1 : map->count) : -1;
    redisContext *c = flags & WIRE_SENTINEL ? redwork_conn_open_sentinel(cfg, err, errlen)
                                            : redwork_conn_open(cfg, err, errlen);
    if (c == NULL)
        return -1;
    *fds = malloc(sizeof **fds);
    if (*fds == NULL) {
        redisFree(c);
        snprintf(err, errlen, "redis %s: out of memory", cfg->redis_where);
        return -1;
    }
    (*fds)[0] = keep_fd(c, cfg->redis_where, err, errlen);
    if ((*fds)[0] < 0) {
        free(*fds);
        return -1;
    }
    return 1;
}

static void on_stall(void *ctx) {
    strand *s = ctx;
    char why[64];
    snprintf(why, sizeof why, "no answer for %d ms", WIRE_STALL_MS);
    wire_drop(s->w, why);
}

/* What a strand's socket is watched for. */
static int watched(const strand *s, int writing) {
    return (s->w->reads_held ? 0 : LOOP_READ) | (writing ? LOOP_WRITE : 0);
}

/* Logs the masters of a slot map that differs from the last one. */
static void log_map(const wire *w, const redwork_cluster_map *old) {
    int same = old->count == w->map.count;
    for (size_t i = 0; same && i < w->map.count; i++)
        same = old->nodes[i].port == w->map.nodes[i].port &&
               strcmp(old->nodes[i].host, w->map.nodes[i].host) == 0;
    if (same || (w->flags & WIRE_PUSH) || *w->pin) /* the command wire's is enough */
        return;
    char list[512] = "";
    for (size_t i = 0; i < w->map.count; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s:%d", i ? ", " : "", w->map.nodes[i].host,
                 w->map.nodes[i].port);
    }
    log_info("wire", "cluster (%s): %zu masters serve %zu of %d slots: %s", w->name,
             w->map.count, redwork_cluster_map_served(&w->map), CLUSTER_SLOTS, list);
}

/* Takes the N sockets in FDS (and MAP, in a cluster) as the connection and
 * tells the user. Frees FDS. */
static void adopt(wire *w, int *fds, size_t n, redwork_cluster_map *map) {
    if (w->cfg->cluster && !(w->flags & WIRE_SENTINEL)) {
        redwork_cluster_map old = w->map;
        w->map = *map;
        redwork_cluster_map_init(map);
        log_map(w, &old);
        free(old.nodes);
    }
    if (n != w->count) {
        strand *grown = n == 1 ? &w->one : calloc(n, sizeof *grown);
        if (grown == NULL) {
            for (size_t i = 0; i < n; i++)
                close(fds[i]);
            free(fds);
            log_warn("wire", "out of memory for %zu connections (%s); retrying", n, w->name);
            loop_timer_start(w->lp, &w->retry, (uint64_t)BACKOFF_MAX_MS * 1000u);
            return;
        }
        for (size_t i = 0; i < w->count; i++)
            strand_free(&w->strands[i]);
        if (w->strands != &w->one)
            free(w->strands);
        w->strands = grown;
        w->count = n;
        for (size_t i = 0; i < n; i++)
            strand_init(&w->strands[i], w);
    }
    w->up = 1;
    w->up_since_us = clock_now_us();
    for (size_t i = 0; i < n; i++) {
        strand *s = &w->strands[i];
        s->fd = fds[i];
        s->writing = 0;
        buffer_reset(&s->out);
        s->sent = 0;
        buffer_reset(&s->kept);
        s->kept_head = 0;
        resp_reader_reset(&s->in);
        if (w->routed)
            s->node = w->map.nodes[*w->pin ? pinned_node(&w->map, w->pin) : i];
    }
    free(fds);
    w->backoff_ms = BACKOFF_MIN_MS;
    w->last_err[0] = '\0';
    for (size_t i = 0; i < n && w->up; i++)
        if (loop_watch(w->lp, w->strands[i].fd, watched(&w->strands[i], 0), on_io,
                       &w->strands[i]) != 0)
            wire_drop(w, "cannot watch the socket");
    if (!w->up)
        return;
    if (w->lost) {
        log_info("wire", "reconnected to redis %s (%s)", w->cfg->redis_where, w->name);
        if (w->st != NULL)
            stats_add(w->st->reconnects);
    }
    w->lost = 0;
    if (w->h.up != NULL)
        w->h.up(w->ctx);
}

int wire_connect(wire *w, char *err, size_t errlen) {
    int *fds = NULL;
    int n = connect_fds(w->cfg, w->flags, w->pin, &w->map, &fds, err, errlen);
    if (n < 0)
        return -1;
    redwork_cluster_map map = w->map;
    redwork_cluster_map_init(&w->map);
    adopt(w, fds, (size_t)n, &map);
    redwork_cluster_map_clear(&map);
    return wire_is_up(w) ? 0 : (snprintf(err, errlen, "redis %s: lost at once",
                                         w->cfg->redis_where), -1);
}

/* Lets go of an attempt (the wire's side or the thread's). */
static void attempt_release(attempt *a) {
    pthread_mutex_lock(&a->lock);
    int last = --a->refs == 0;
    pthread_mutex_unlock(&a->lock);
    if (last) {
        pthread_mutex_destroy(&a->lock);
        free(a->fds);
        redwork_cluster_map_clear(&a->map);
        free(a);
    }
}

static void *attempt_main(void *arg) {
    attempt *a = arg;
    char err[sizeof a->err];
    int *fds = NULL;
    redwork_cluster_map map = a->map; /* the wire's copy: this thread's alone */
    redwork_cluster_map_init(&a->map);
    int n = connect_fds(a->cfg, a->flags, a->pin, &map, &fds, err, sizeof err);
    pthread_mutex_lock(&a->lock);
    if (a->abandoned) {
        for (int i = 0; i < n; i++)
            close(fds[i]);
        free(fds);
        redwork_cluster_map_clear(&map);
    } else {
        a->fds = fds;
        a->nfds = n;
        a->map = map;
        memcpy(a->err, err, sizeof err);
        loop_async_signal(a->done);
    }
    pthread_mutex_unlock(&a->lock);
    attempt_release(a);
    return NULL;
}

/* A copy of M's masters (its slots are not needed to find the cluster
 * again). Returns 0, or -1 out of memory. */
static int copy_nodes(redwork_cluster_map *to, const redwork_cluster_map *m) {
    redwork_cluster_map_init(to);
    if (m->count == 0)
        return 0;
    to->nodes = malloc(m->count * sizeof *to->nodes);
    if (to->nodes == NULL)
        return -1;
    memcpy(to->nodes, m->nodes, m->count * sizeof *to->nodes);
    to->count = m->count;
    return 0;
}

/* The retry timer: starts one background attempt. */
static void on_retry(void *ctx) {
    wire *w = ctx;
    attempt *a = calloc(1, sizeof *a);
    pthread_t thread;
    pthread_attr_t attr;
    int started = 0;
    if (a != NULL && copy_nodes(&a->map, &w->map) == 0 &&
        pthread_mutex_init(&a->lock, NULL) == 0) {
        a->refs = 2;
        a->cfg = w->cfg;
        a->flags = w->flags;
        memcpy(a->pin, w->pin, sizeof a->pin);
        a->done = &w->connected;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            started = pthread_create(&thread, &attr, attempt_main, a) == 0;
            pthread_attr_destroy(&attr);
        }
        if (!started)
            pthread_mutex_destroy(&a->lock);
    }
    if (!started) {
        if (a != NULL)
            redwork_cluster_map_clear(&a->map);
        free(a);
        log_warn("wire", "cannot start a reconnect to redis (%s); retrying", w->name);
        loop_timer_start(w->lp, &w->retry, (uint64_t)BACKOFF_MAX_MS * 1000u);
        return;
    }
    w->trying = a;
}

/* Arms the next attempt after the backoff, with jitter. */
static void schedule_retry(wire *w) {
    int delay = w->backoff_ms / 2 + (int)(rand_r(&w->seed) % (unsigned)(w->backoff_ms / 2 + 1));
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
    loop_timer_start(w->lp, &w->retry, (uint64_t)delay * 1000u);
}

/* A background attempt finished. */
static void on_connected(void *ctx) {
    wire *w = ctx;
    attempt *a = w->trying;
    if (a == NULL)
        return;
    w->trying = NULL;
    pthread_mutex_lock(&a->lock);
    int *fds = a->fds;
    size_t n = (size_t)a->nfds;
    a->fds = NULL;
    redwork_cluster_map map = a->map;
    redwork_cluster_map_init(&a->map);
    char err[sizeof a->err];
    memcpy(err, a->err, sizeof err);
    pthread_mutex_unlock(&a->lock);
    attempt_release(a);
    if (fds != NULL) {
        adopt(w, fds, n, &map);
        redwork_cluster_map_clear(&map);
        return;
    }
    redwork_cluster_map_clear(&map);
    if (strcmp(err, w->last_err) != 0) /* e.g. refused, then a wrong password */
        log_warn("wire", "reconnect failed (%s): %s; retrying", w->name, err);
    snprintf(w->last_err, sizeof w->last_err, "%s", err);
    if (w->hurry)
        loop_timer_start(w->lp, &w->retry, 0);
    else
        schedule_retry(w);
    w->hurry = 0;
}

void wire_reconnect(wire *w, const char *why) {
    if (w->up) {
        wire_drop(w, why);
        return;
    }
    w->backoff_ms = BACKOFF_MIN_MS;
    if (w->trying != NULL)
        w->hurry = 1; /* it may have asked the sentinels before they knew */
    else if (w->retry.armed)
        loop_timer_start(w->lp, &w->retry, 0);
}

/* Takes the oldest expectation off R. */
static expect ring_pop(expect_ring *r) {
    expect e = r->at[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return e;
}

/* Appends E to R. Returns 0, or -1 out of memory. */
static int ring_push(expect_ring *r, expect e) {
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        expect *grown = malloc(cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        for (size_t i = 0; i < r->count; i++)
            grown[i] = r->at[(r->head + i) % r->cap];
        free(r->at);
        r->at = grown;
        r->head = 0;
        r->cap = cap;
    }
    r->at[(r->head + r->count) % r->cap] = e;
    r->count++;
    return 0;
}

/* Gives every expectation of R its answer as NULL. */
static void ring_fail(expect_ring *r) {
    while (r->count > 0) {
        expect e = ring_pop(r);
        if (e.fn != NULL)
            e.fn(e.ctx, NULL);
    }
}

/* Closes the strands' sockets and gives every awaited answer as NULL. */
static void close_sockets(wire *w) {
    w->up = 0;
    for (size_t i = 0; i < w->count; i++) {
        strand *s = &w->strands[i];
        if (s->fd >= 0) {
            loop_unwatch(w->lp, s->fd);
            close(s->fd);
        }
        s->fd = -1;
        s->writing = 0;
        loop_timer_stop(w->lp, &s->stall);
    }
    for (size_t i = 0; i < w->count; i++) {
        strand *s = &w->strands[i];
        ring_fail(&s->awaited);
        buffer_reset(&s->out);
        s->sent = 0;
        redwork_buffer_shrink(&s->out, OUT_KEEP);
        buffer_reset(&s->kept);
        s->kept_head = 0;
        redwork_buffer_shrink(&s->kept, OUT_KEEP);
    }
    ring_fail(&w->staged_awaited);
    buffer_reset(&w->staged);
    redwork_buffer_shrink(&w->staged, OUT_KEEP);
}

void wire_drop(wire *w, const char *why) {
    if (!w->up)
        return;
    log_warn("wire", "lost the connection to redis %s (%s): %s; reconnecting",
             w->cfg->redis_where, w->name, why);
    w->lost = 1;
    close_sockets(w);
    if (w->h.down != NULL)
        w->h.down(w->ctx, why);
    /* A connection that had been up a while is tried again at once: a
     * Redis that closed it on purpose (an output buffer over its limit) is
     * there, and one that is gone refuses at once. One that fell again
     * right after coming up (a cluster that is down answers CLUSTERDOWN to
     * everything) waits the backoff, or it would spin. */
    if (!w->up && w->trying == NULL && !w->retry.armed) {
        if (clock_now_us() - w->up_since_us >= (uint64_t)STABLE_MS * 1000u)
            loop_timer_start(w->lp, &w->retry, 0);
        else
            schedule_retry(w);
    }
}

void wire_free(wire *w) {
    if (w == NULL)
        return;
    if (w->up)
        close_sockets(w);
    if (w->trying != NULL) {
        pthread_mutex_lock(&w->trying->lock);
        w->trying->abandoned = 1;
        pthread_mutex_unlock(&w->trying->lock);
        attempt_release(w->trying);
    }
    loop_timer_stop(w->lp, &w->retry);
    loop_async_remove(w->lp, &w->connected);
    loop_before_wait_remove(w->lp, flush_hook, w);
    for (size_t i = 0; i < w->count; i++)
        strand_free(&w->strands[i]);
    if (w->strands != &w->one)
        free(w->strands);
    redwork_buffer_free(&w->staged);
    free(w->staged_awaited.at);
    redwork_cluster_map_clear(&w->map);
    free(w);
}

/* ---- commands and answers ---------------------------------------------- */

/* S awaits E: its stall clock starts with the first. Returns 0, or -1 out
 * of memory (E is not registered). */
static int strand_expect(strand *s, expect e) {
    if (ring_push(&s->awaited, e) != 0)
        return -1;
    if (s->awaited.count == 1)
        loop_timer_start(s->w->lp, &s->stall, (uint64_t)WIRE_STALL_MS * 1000u);
    return 0;
}

int wire_expect(wire *w, wire_answer_fn *fn, void *ctx) {
    expect e = {fn, ctx, 0};
    if (w->routed ? ring_push(&w->staged_awaited, e) : strand_expect(&w->strands[0], e)) {
        wire_drop(w, "out of memory");
        return -1;
    }
    return 0;
}

/* Reads one bulk string's header at P (N bytes): its length, and the
 * bytes it takes with the header and the CRLF. Returns 0, or -1. */
static int bulk_at(const char *p, size_t n, size_t *len, size_t *span) {
    if (n < 4 || p[0] != '$')
        return -1;
    char *end;
    unsigned long long v = strtoull(p + 1, &end, 10);
    size_t header = (size_t)(end - p) + 2;
    if (end == p + 1 || header > n || end[0] != '\r' || v > n || header + v + 2 > n)
        return -1;
    *len = (size_t)v;
    *span = header + (size_t)v + 2;
    return 0;
}

/* The command at P (N bytes, as resp.c writes them): its length in *SPAN
 * and the key it is routed by (KEY NULL for none). Returns 0, or -1 if it
 * is not a whole command. */
static int command_key(const char *p, size_t n, size_t *span, const char **key, size_t *keylen) {
    if (n < 4 || p[0] != '*')
        return -1;
    char *end;
    unsigned long argc = strtoul(p + 1, &end, 10);
    if (end == p + 1 || end + 2 > p + n || end[0] != '\r' || argc == 0)
        return -1;
    size_t at = (size_t)(end - p) + 2;
    int key_arg = 1, after_streams = 0;
    *key = NULL;
    *keylen = 0;
    for (unsigned long i = 0; i < argc; i++) {
        size_t len, arg_span;
        if (bulk_at(p + at, n - at, &len, &arg_span) != 0)
            return -1;
        const char *arg = p + at + (arg_span - len - 2);
        if (i == 0) {
            if ((len == 6 && strncasecmp(arg, "XGROUP", 6) == 0) ||
                (len == 5 && strncasecmp(arg, "XINFO", 5) == 0))
                key_arg = 2;
            else if ((len == 10 && strncasecmp(arg, "XREADGROUP", 10) == 0) ||
                     (len == 5 && strncasecmp(arg, "XREAD", 5) == 0))
                key_arg = -1; /* the first after STREAMS */
        } else if (*key == NULL && (key_arg < 0 ? after_streams : (unsigned long)key_arg == i)) {
            *key = arg;
            *keylen = len;
        } else if (key_arg < 0 && len == 7 && strncasecmp(arg, "STREAMS", 7) == 0) {
            after_streams = 1;
        }
        at += arg_span;
    }
    *span = at;
    return 0;
}

/* Sends the LEN bytes at CMD to strand S, awaiting E (whose taker has
 * been promised an answer). Returns 0, or -1 out of memory: E is answered
 * NULL and the wire dropped. */
static int strand_send(strand *s, const char *cmd, size_t len, expect e) {
    e.len = len;
    if (buffer_append(&s->out, cmd, len) != 0 || buffer_append(&s->kept, cmd, len) != 0 ||
        strand_expect(s, e) != 0) {
        if (e.fn != NULL)
            e.fn(e.ctx, NULL);
        wire_drop(s->w, "out of memory");
        return -1;
    }
    return 0;
}

/* Routes what is staged, command by command, to the strands. */
static void route_staged(wire *w) {
    size_t at = 0;
    while (at < w->staged.len && w->up) {
        const char *key;
        size_t span, keylen;
        if (command_key(w->staged.data + at, w->staged.len - at, &span, &key, &keylen) != 0 ||
            w->staged_awaited.count == 0) {
            wire_drop(w, "a command the cluster cannot route");
            return;
        }
        size_t node = 0;
        if (key != NULL && !*w->pin) {
            uint16_t owner = w->map.slot_node[redwork_cluster_key_slot(key, keylen)];
            node = owner < w->count ? owner : 0; /* unserved: any master says so */
        }
        if (strand_send(&w->strands[node], w->staged.data + at, span,
                        ring_pop(&w->staged_awaited)) != 0)
            return;
        at += span;
    }
    buffer_reset(&w->staged);
    redwork_buffer_shrink(&w->staged, OUT_KEEP);
}

static void flush_strand(strand *s) {
    wire *w = s->w;
    if (s->fd < 0) {
        buffer_reset(&s->out);
        return;
    }
    if (s->out.failed) {
        wire_drop(w, "out of memory");
        return;
    }
    while (s->sent < s->out.len) {
        ssize_t n = write(s->fd, s->out.data + s->sent, s->out.len - s->sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            char why[128];
            snprintf(why, sizeof why, "write: %s", strerror(errno));
            wire_drop(w, why);
            return;
        }
        s->sent += (size_t)n;
    }
    int pending = s->sent < s->out.len;
    if (!pending) {
        buffer_reset(&s->out);
        s->sent = 0;
        redwork_buffer_shrink(&s->out, OUT_KEEP);
    }
    if (pending != s->writing && loop_watch(w->lp, s->fd, watched(s, pending), on_io, s) == 0)
        s->writing = pending;
}

void wire_flush(wire *w) {
    if (!w->up) {
        buffer_reset(&w->staged);
        buffer_reset(&w->strands[0].out);
        return;
    }
    if (w->routed) {
        if (w->staged.failed) {
            wire_drop(w, "out of memory");
            return;
        }
        route_staged(w);
    }
    for (size_t i = 0; i < w->count && w->up; i++)
        flush_strand(&w->strands[i]);
}

static void flush_hook(void *ctx) {
    wire *w = ctx;
    if (!w->up)
        return;
    if (w->routed && w->staged.len > 0)
        route_staged(w);
    for (size_t i = 0; i < w->count && w->up; i++) {
        strand *s = &w->strands[i];
        if (!s->writing && s->sent < s->out.len)
            flush_strand(s); /* a socket that is full is written when writable */
    }
}

/* The strand of the master at HOST:PORT, or NULL. */
static strand *strand_at(wire *w, const char *host, int port) {
    for (size_t i = 0; i < w->count; i++)
        if (w->strands[i].node.port == port && strcmp(w->strands[i].node.host, host) == 0)
            return &w->strands[i];
    return NULL;
}

/* A -MOVED or -ASK answer to E's command (CMD, E.len bytes, kept by S):
 * the command goes to the master named, after ASKING for -ASK; -MOVED
 * also moves the slot in the map. A master the wire has no strand to
 * means the cluster changed: the wire starts over. */
static void redirect(strand *s, expect e, const char *cmd, const redwork_cluster_redirect *r) {
    wire *w = s->w;
    strand *to = strand_at(w, *r->host ? r->host : s->node.host, r->port);
    if (to == NULL || to == s) {
        if (e.fn != NULL)
            e.fn(e.ctx, NULL);
        char why[400];
        snprintf(why, sizeof why, "%s %u to %s:%d, %s", r->ask ? "ASK" : "MOVED", r->slot,
                 *r->host ? r->host : s->node.host, r->port,
                 to == NULL ? "a master not known: the cluster changed" : "the same master");
        wire_drop(w, why);
        return;
    }
    if (!r->ask) {
        w->map.slot_node[r->slot] = (uint16_t)(to - w->strands);
        log_limited(&w->redirect_limit, LOG_LEVEL_INFO, "wire",
                    "cluster (%s): slot %u moved to %s:%d", w->name, r->slot, to->node.host,
                    to->node.port);
    } else if (strand_send(to, ASKING, sizeof ASKING - 1, (expect){NULL, NULL, 0}) != 0) {
        if (e.fn != NULL)
            e.fn(e.ctx, NULL);
        return;
    }
    strand_send(to, cmd, e.len, e);
}

/* Drops the front LEN bytes of S's kept commands. */
static void kept_consume(strand *s, size_t len) {
    s->kept_head += len;
    if (s->kept_head >= s->kept.len) {
        buffer_reset(&s->kept);
        s->kept_head = 0;
    }
}

/* Hands one whole reply to its taker. */
static void deliver(strand *s, const resp_value *v) {
    wire *w = s->w;
    if (w->flags & WIRE_PUSH) {
        if (w->h.push != NULL)
            w->h.push(w->ctx, v);
        return;
    }
    if (s->awaited.count == 0) {
        wire_drop(w, "an answer to no command");
        return;
    }
    if ((w->cfg->sentinel != NULL || w->cfg->cluster) && v->type == RESP_ERROR &&
        (strncmp(v->str, "READONLY", 8) == 0 || strncmp(v->str, "LOADING", 7) == 0 ||
         strncmp(v->str, "CLUSTERDOWN", 11) == 0 || strncmp(v->str, "UNBLOCKED", 9) == 0)) {
        /* Not the master (any more: a blocked read is UNBLOCKED when it
         * turns replica), not ready, or the cluster is failing over: where
         * the master is gets asked again, and every answer awaited comes
         * back as NULL, to be sent again. */
        char why[160];
        snprintf(why, sizeof why, "redis answered %.100s", v->str);
        wire_drop(w, why);
        return;
    }
    expect e = ring_pop(&s->awaited);
    if (!w->routed) {
        if (e.fn != NULL)
            e.fn(e.ctx, v);
        return;
    }
    redwork_cluster_redirect r;
    const char *cmd = s->kept.data + s->kept_head;
    if (v->type == RESP_ERROR && redwork_cluster_redirect_parse(v->str, v->len, &r)) {
        redirect(s, e, cmd, &r);
        if (w->up)
            kept_consume(s, e.len);
        return;
    }
    kept_consume(s, e.len);
    if (e.fn != NULL)
        e.fn(e.ctx, v);
}

static void read_replies(strand *s) {
    wire *w = s->w;
    long n = resp_reader_read(&s->in, s->fd, READ_MAX);
    if (n < 0) {
        char why[128];
        snprintf(why, sizeof why, "%s", errno == 0 ? "closed by the server" : strerror(errno));
        wire_drop(w, why);
        return;
    }
    w->read_us = clock_now_us();
    const resp_value *v;
    int status;
    int answered = 0;
    while (s->fd >= 0 && (status = resp_reader_next(&s->in, &v)) != 0) {
        if (status < 0) {
            wire_drop(w, s->in.err);
            return;
        }
        answered = 1;
        deliver(s, v);
    }
    if (answered && s->fd >= 0) { /* answers flow: the stall clock restarts */
        if (s->awaited.count > 0)
            loop_timer_start(w->lp, &s->stall, (uint64_t)WIRE_STALL_MS * 1000u);
        else
            loop_timer_stop(w->lp, &s->stall);
    }
}

void wire_hold_reads(wire *w, int hold) {
    if (hold == w->reads_held)
        return;
    w->reads_held = hold;
    for (size_t i = 0; i < w->count && w->up; i++) {
        strand *s = &w->strands[i];
        if (loop_watch(w->lp, s->fd, watched(s, s->writing), on_io, s) != 0)
            wire_drop(w, "cannot watch the socket");
    }
}

void wire_read(wire *w) {
    for (size_t i = 0; i < w->count && w->up; i++)
        read_replies(&w->strands[i]);
}

static void on_io(void *ctx, int events) {
    strand *s = ctx;
    if ((events & LOOP_WRITE) && s->fd >= 0)
        flush_strand(s);
    if ((events & LOOP_READ) && s->fd >= 0)
        read_replies(s);
}

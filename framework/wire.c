/* wire.c -- one Redis connection owned by the event loop.
 *
 * DESIGN. hiredis opens the connection (conn.c: TCP or TLS, AUTH, SELECT,
 * with timeouts); then the wire keeps only its socket, non-blocking, and
 * speaks RESP through resp.c. Commands gather in `out` during a loop round
 * and go out in one write before the loop waits, so batching comes from
 * load. The answers each command awaits sit in a ring, oldest first: an
 * answer is matched to its command by position, as Redis answers in
 * order.
 *
 * A reconnect must never block the loop (a stopped Redis accepts TCP
 * connections and then says nothing), so each attempt runs conn.c on a
 * detached thread and hands the socket back through a loop_async. The
 * attempt is shared by the two under a mutex: a wire freed while its
 * attempt is under way marks it abandoned, and the thread then closes what
 * it made and frees the attempt itself. */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define READ_MAX (256u * 1024u)   /* per readable event: then others' turn */
#define OUT_KEEP (256u * 1024u)   /* an idle output buffer keeps at most this */

typedef struct expect {
    wire_answer_fn *fn;
    void *ctx;
} expect;

/* One background connect, shared by the wire and its thread. */
typedef struct attempt {
    pthread_mutex_t lock;
    int refs;
    int abandoned;    /* the wire is gone: the thread cleans up */
    const config *cfg;
    unsigned flags;   /* the wire's */
    loop_async *done; /* the wire's, signalled unless abandoned */
    int fd;           /* the result: a socket, or -1 with err */
    char err[256];
} attempt;

struct wire {
    loop *lp;
    const config *cfg;
    char name[32];
    wire_handlers h;
    void *ctx;
    unsigned flags; /* WIRE_PUSH, WIRE_SENTINEL */
    int fd;         /* -1 while down */
    int writing;    /* LOOP_WRITE is watched */
    int reads_held; /* LOOP_READ is not (wire_hold_reads) */
    buffer out;
    size_t sent;    /* bytes of out already written */
    resp_reader in;
    expect *ring;
    size_t head, count, cap;
    loop_timer stall;
    loop_timer retry;
    loop_async connected;
    attempt *trying;
    int backoff_ms;
    unsigned seed;
    int lost;       /* logged as lost: log the return */
    int hurry;      /* wire_reconnect() during an attempt: retry at once */
    uint64_t read_us;
    char last_err[256];
};

static void on_io(void *ctx, int events);
static void on_stall(void *ctx);
static void on_retry(void *ctx);
static void on_connected(void *ctx);
static void flush_hook(void *ctx);

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
    w->fd = -1;
    w->out = (buffer)BUFFER_INIT;
    resp_reader_init(&w->in);
    w->backoff_ms = BACKOFF_MIN_MS;
    w->seed = (unsigned)clock_now_us() ^ (unsigned)(uintptr_t)w;
    loop_timer_init(&w->stall, on_stall, w);
    loop_timer_init(&w->retry, on_retry, w);
    loop_async_init(lp, &w->connected, on_connected, w);
    if (loop_before_wait(lp, flush_hook, w) != 0) {
        loop_async_remove(lp, &w->connected);
        resp_reader_free(&w->in);
        free(w);
        return NULL;
    }
    return w;
}

int wire_is_up(const wire *w) { return w->fd >= 0; }

buffer *wire_out(wire *w) { return &w->out; }

size_t wire_waiting(const wire *w) { return w->count; }

uint64_t wire_read_us(const wire *w) { return w->read_us; }

/* ---- the connection ---------------------------------------------------- */

/* conn.c's blocking connect, keeping only the socket, made non-blocking.
 * Returns the fd, or -1 with ERR. */
static int connect_fd(const config *cfg, unsigned wire_flags, char *err, size_t errlen) {
    redisContext *c = wire_flags & WIRE_SENTINEL ? redwork_conn_open_sentinel(cfg, err, errlen)
                                                 : redwork_conn_open(cfg, err, errlen);
    if (c == NULL)
        return -1;
    int fd = redisFreeKeepFd(c);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "redis %s: cannot make the socket non-blocking: %s",
                 cfg->redis_where, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void on_stall(void *ctx) {
    wire *w = ctx;
    char why[64];
    snprintf(why, sizeof why, "no answer for %d ms", WIRE_STALL_MS);
    wire_drop(w, why);
}

/* What the socket is watched for. */
static int watched(const wire *w, int writing) {
    return (w->reads_held ? 0 : LOOP_READ) | (writing ? LOOP_WRITE : 0);
}

/* Takes FD as the connection and tells the user. */
static void adopt(wire *w, int fd) {
    w->fd = fd;
    w->writing = 0;
    buffer_reset(&w->out);
    w->sent = 0;
    resp_reader_reset(&w->in);
    w->backoff_ms = BACKOFF_MIN_MS;
    w->last_err[0] = '\0';
    if (loop_watch(w->lp, fd, watched(w, 0), on_io, w) != 0) {
        wire_drop(w, "cannot watch the socket");
        return;
    }
    if (w->lost)
        log_info("wire", "reconnected to redis %s (%s)", w->cfg->redis_where, w->name);
    w->lost = 0;
    if (w->h.up != NULL)
        w->h.up(w->ctx);
}

int wire_connect(wire *w, char *err, size_t errlen) {
    int fd = connect_fd(w->cfg, w->flags, err, errlen);
    if (fd < 0)
        return -1;
    adopt(w, fd);
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
        free(a);
    }
}

static void *attempt_main(void *arg) {
    attempt *a = arg;
    char err[sizeof a->err];
    int fd = connect_fd(a->cfg, a->flags, err, sizeof err);
    pthread_mutex_lock(&a->lock);
    if (a->abandoned) {
        if (fd >= 0)
            close(fd);
    } else {
        a->fd = fd;
        memcpy(a->err, err, sizeof err);
        loop_async_signal(a->done);
    }
    pthread_mutex_unlock(&a->lock);
    attempt_release(a);
    return NULL;
}

/* The retry timer: starts one background attempt. */
static void on_retry(void *ctx) {
    wire *w = ctx;
    attempt *a = calloc(1, sizeof *a);
    pthread_t thread;
    pthread_attr_t attr;
    int started = 0;
    if (a != NULL) {
        pthread_mutex_init(&a->lock, NULL);
        a->refs = 2;
        a->cfg = w->cfg;
        a->flags = w->flags;
        a->done = &w->connected;
        a->fd = -1;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&thread, &attr, attempt_main, a) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        if (a != NULL) {
            pthread_mutex_destroy(&a->lock);
            free(a);
        }
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
    int fd = a->fd;
    char err[sizeof a->err];
    memcpy(err, a->err, sizeof err);
    pthread_mutex_unlock(&a->lock);
    attempt_release(a);
    if (fd >= 0) {
        adopt(w, fd);
        return;
    }
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
    if (w->fd >= 0) {
        wire_drop(w, why);
        return;
    }
    w->backoff_ms = BACKOFF_MIN_MS;
    if (w->trying != NULL)
        w->hurry = 1; /* it may have asked the sentinels before they knew */
    else if (w->retry.armed)
        loop_timer_start(w->lp, &w->retry, 0);
}

/* Closes the socket and gives every awaited answer as NULL. */
static void close_socket(wire *w) {
    loop_unwatch(w->lp, w->fd);
    close(w->fd);
    w->fd = -1;
    w->writing = 0;
    loop_timer_stop(w->lp, &w->stall);
    while (w->count > 0) {
        expect e = w->ring[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
        if (e.fn != NULL)
            e.fn(e.ctx, NULL);
    }
    buffer_reset(&w->out);
    w->sent = 0;
    redwork_buffer_shrink(&w->out, OUT_KEEP);
}

void wire_drop(wire *w, const char *why) {
    if (w->fd < 0)
        return;
    log_warn("wire", "lost the connection to redis %s (%s): %s; reconnecting",
             w->cfg->redis_where, w->name, why);
    w->lost = 1;
    close_socket(w);
    if (w->h.down != NULL)
        w->h.down(w->ctx, why);
    if (w->fd < 0 && w->trying == NULL && !w->retry.armed)
        schedule_retry(w);
}

void wire_free(wire *w) {
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close_socket(w);
    if (w->trying != NULL) {
        pthread_mutex_lock(&w->trying->lock);
        w->trying->abandoned = 1;
        pthread_mutex_unlock(&w->trying->lock);
        attempt_release(w->trying);
    }
    loop_timer_stop(w->lp, &w->retry);
    loop_async_remove(w->lp, &w->connected);
    loop_before_wait_remove(w->lp, flush_hook, w);
    redwork_buffer_free(&w->out);
    resp_reader_free(&w->in);
    free(w->ring);
    free(w);
}

/* ---- commands and answers ---------------------------------------------- */

int wire_expect(wire *w, wire_answer_fn *fn, void *ctx) {
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        expect *grown = malloc(cap * sizeof *grown);
        if (grown == NULL) {
            wire_drop(w, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < w->count; i++)
            grown[i] = w->ring[(w->head + i) % w->cap];
        free(w->ring);
        w->ring = grown;
        w->head = 0;
        w->cap = cap;
    }
    w->ring[(w->head + w->count) % w->cap] = (expect){fn, ctx};
    if (w->count++ == 0)
        loop_timer_start(w->lp, &w->stall, (uint64_t)WIRE_STALL_MS * 1000u);
    return 0;
}

void wire_flush(wire *w) {
    if (w->fd < 0) {
        buffer_reset(&w->out);
        return;
    }
    if (w->out.failed) {
        wire_drop(w, "out of memory");
        return;
    }
    while (w->sent < w->out.len) {
        ssize_t n = write(w->fd, w->out.data + w->sent, w->out.len - w->sent);
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
        w->sent += (size_t)n;
    }
    int pending = w->sent < w->out.len;
    if (!pending) {
        buffer_reset(&w->out);
        w->sent = 0;
        redwork_buffer_shrink(&w->out, OUT_KEEP);
    }
    if (pending != w->writing && loop_watch(w->lp, w->fd, watched(w, pending), on_io, w) == 0)
        w->writing = pending;
}

static void flush_hook(void *ctx) {
    wire *w = ctx;
    if (w->fd >= 0 && !w->writing && w->sent < w->out.len)
        wire_flush(w); /* a socket that is full is written when writable */
}

/* Hands one whole reply to its taker. */
static void deliver(wire *w, const resp_value *v) {
    if (w->flags & WIRE_PUSH) {
        if (w->h.push != NULL)
            w->h.push(w->ctx, v);
        return;
    }
    if (w->count == 0) {
        wire_drop(w, "an answer to no command");
        return;
    }
    if (w->cfg->sentinel != NULL && v->type == RESP_ERROR &&
        (strncmp(v->str, "READONLY", 8) == 0 || strncmp(v->str, "LOADING", 7) == 0)) {
        /* Not the master (any more), or not ready: the sentinels are asked
         * again, and every answer awaited comes back as NULL, to be sent
         * again to the master. */
        char why[160];
        snprintf(why, sizeof why, "redis answered %.100s", v->str);
        wire_drop(w, why);
        return;
    }
    expect e = w->ring[w->head];
    w->head = (w->head + 1) % w->cap;
    w->count--;
    if (e.fn != NULL)
        e.fn(e.ctx, v);
}

static void read_replies(wire *w) {
    long n = resp_reader_read(&w->in, w->fd, READ_MAX);
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
    while (w->fd >= 0 && (status = resp_reader_next(&w->in, &v)) != 0) {
        if (status < 0) {
            wire_drop(w, w->in.err);
            return;
        }
        answered = 1;
        deliver(w, v);
    }
    if (answered && w->fd >= 0) { /* answers flow: the stall clock restarts */
        if (w->count > 0)
            loop_timer_start(w->lp, &w->stall, (uint64_t)WIRE_STALL_MS * 1000u);
        else
            loop_timer_stop(w->lp, &w->stall);
    }
}

void wire_hold_reads(wire *w, int hold) {
    if (hold == w->reads_held)
        return;
    w->reads_held = hold;
    if (w->fd >= 0 && loop_watch(w->lp, w->fd, watched(w, w->writing), on_io, w) != 0)
        wire_drop(w, "cannot watch the socket");
}

void wire_read(wire *w) {
    if (w->fd >= 0)
        read_replies(w);
}

static void on_io(void *ctx, int events) {
    wire *w = ctx;
    if ((events & LOOP_WRITE) && w->fd >= 0)
        wire_flush(w);
    if ((events & LOOP_READ) && w->fd >= 0)
        read_replies(w);
}

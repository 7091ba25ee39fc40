/* pool.c -- the thread pool that runs handlers.
 *
 * DESIGN. THREADS identical workers, each with its own reply sink (its own
 * Redis connection: a redisContext is never shared). A worker loops: pop,
 * answer 'timeout' if the request waited past its timeout_ms, else run the
 * handler, publish, free. Replies are sent when the queue runs dry or every
 * WRITE_BATCH, and Redis's answers are read as they arrive: a busy worker
 * pipelines, an idle one answers at once. queue_pop() returning NULL -- the
 * queue closed and drained -- is the only way a worker ends, so a stop
 * never abandons a queued request. pool_wait() bounds the wait for the
 * drain: each worker counts itself out under a mutex and signals a
 * condition on a monotonic clock, so the caller can give up on a stuck
 * handler without cancelling threads. */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "plugin.h"
#include "reply.h"
#include "request.h"

#define WRITE_BATCH 32
#define WRITE_DELAY_US 200

struct pool {
    const config *cfg;
    queue *q;
    stats *st;
    pthread_t *threads;
    size_t count;
    pthread_mutex_t lock;
    pthread_cond_t exited;
    size_t running; /* threads that have not finished yet */
};

/* Runs one request and publishes its reply. Frees REQ. */
static void run_request(reply_sink *sink, request *req) {
    const char *handler = plugin_name(req->handler);
    reply_target to = reply_target_of(req);
    uint64_t start = clock_now_us();
    if (request_expired(req, start)) {
        reply_send_error(sink, &to, "timeout",
                         "waited %llu ms in the queue, over its timeout_ms %lld",
                         (unsigned long long)((start - req->received_us) / 1000u),
                         req->timeout_ms);
        request_free(req);
        return;
    }
    reply r;
    reply_init(&r);
    int rc = plugin_handle(req->handler, req, &r);
    long long duration = (long long)(clock_now_us() - start);
    if (rc != 0 && !reply_is_error(&r))
        redwork_reply_error(&r, "handler_failed",
                            "handler '%s' failed (returned %d)", handler, rc);
    reply_send(sink, &r, &to, duration);
    reply_clear(&r);
    request_free(req);
}

/* The next request for a worker: at once if one is queued (sending the
 * replies made so far every WRITE_BATCH, or once the oldest has waited
 * WRITE_DELAY_US: a slow handler must not hold back its neighbours'
 * replies), else after sending them. While
 * replies wait for Redis's answers, or for Redis itself, it wakes every
 * REPLY_RETRY_INTERVAL_MS to move them on. NULL once the queue is closed
 * and drained. */
static request *next_request(pool *p, reply_sink *sink, size_t *unwritten,
                             uint64_t oldest_us) {
    request *req = queue_trypop(p->q);
    if (req != NULL && (*unwritten == 0 || (*unwritten < WRITE_BATCH &&
                                            clock_now_us() - oldest_us < WRITE_DELAY_US)))
        return req;
    reply_sink_write(sink);
    *unwritten = 0;
    while (req == NULL && reply_sink_pending(sink) > 0) {
        int got = queue_pop_timeout(p->q, (void **)&req, REPLY_RETRY_INTERVAL_MS);
        if (got < 0)
            return NULL;
        if (got == 0)
            reply_sink_write(sink);
    }
    return req != NULL ? req : queue_pop(p->q);
}

static void *worker_main(void *arg) {
    pool *p = arg;
    reply_sink *sink = reply_sink_create(p->cfg, p->st);
    size_t unwritten = 0;
    request *req;
    if (sink == NULL) { /* out of memory at start: lose loudly, never hang */
        while ((req = queue_pop(p->q)) != NULL) {
            stats_add(p->st->lost);
            request_free(req);
        }
    }
    uint64_t oldest_us = 0; /* when the oldest unsent reply was made */
    while (sink != NULL && (req = next_request(p, sink, &unwritten, oldest_us)) != NULL) {
        run_request(sink, req);
        if (unwritten++ == 0)
            oldest_us = clock_now_us();
    }
    reply_sink_free(sink);
    pthread_mutex_lock(&p->lock);
    p->running--;
    pthread_cond_signal(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

pool *pool_start(const config *cfg, size_t threads, queue *q, stats *st,
                 char *err, size_t errlen) {
    pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc(threads, sizeof *p->threads)) == NULL) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->q = q;
    p->st = st;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->exited, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&p->lock, NULL);

    /* Workers inherit this mask: signals go to the main thread only. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; p->count < threads; p->count++) {
        pthread_mutex_lock(&p->lock);
        p->running++;
        pthread_mutex_unlock(&p->lock);
        int rc = pthread_create(&p->threads[p->count], NULL, worker_main, p);
        if (rc != 0) {
            p->running--;
            snprintf(err, errlen, "cannot start pool thread %zu of %zu: %s",
                     p->count + 1, threads, strerror(rc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->count < threads) {
        queue_close(q);
        pool_wait(p, -1);
        pool_free(p);
        return NULL;
    }
    return p;
}

int pool_wait(pool *p, long long timeout_ms) {
    struct timespec deadline = clock_deadline(timeout_ms > 0 ? timeout_ms : 0);
    int timed_out = 0;
    pthread_mutex_lock(&p->lock);
    while (p->running > 0 && !timed_out) {
        if (timeout_ms < 0)
            pthread_cond_wait(&p->exited, &p->lock);
        else
            timed_out = pthread_cond_timedwait(&p->exited, &p->lock, &deadline) != 0;
    }
    int done = p->running == 0;
    pthread_mutex_unlock(&p->lock);
    if (!done)
        return -1;
    for (size_t i = 0; i < p->count; i++)
        pthread_join(p->threads[i], NULL);
    p->count = 0;
    return 0;
}

void pool_free(pool *p) {
    if (p == NULL)
        return;
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

/* pool.c -- the thread pool that runs handlers.
 *
 * DESIGN. THREADS identical workers and no Redis connection among them:
 * the event loop's thread owns all the I/O. A worker loops: pop one
 * request, answer 'timeout' if it waited past its timeout_ms, else parse
 * it and run its handler (after the handler's thread_init, the first time
 * on this thread), write the reply commands into the request with
 * the worker's own scratch buffer, and hand it back at once (pool_done_fn:
 * a lock-free push), saying whether the next request is already in hand:
 * the last reply of a burst wakes the loop for all of them.
 * queue_pop() returning NULL -- the queue closed and drained -- is the
 * only way a worker ends, so a stop never abandons a queued request.
 * pool_wait() bounds the wait for the drain: each worker counts itself out
 * under a mutex and signals a condition on a monotonic clock, so the
 * caller can give up on a stuck handler without cancelling threads. */
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

typedef struct pool_thread {
    pthread_t id;
    struct pool *p;
    int index;
} pool_thread;

struct pool {
    const config *cfg;
    queue *q;
    plugin_set *plugins;
    deferrals *deferrals;
    pool_done_fn *done;
    void *ctx;
    pool_thread *threads;
    size_t count;
    pthread_mutex_t lock;
    pthread_cond_t exited;
    size_t running; /* threads that have not finished yet */
};

/* The calling pool thread's index, for redwork_thread_index(). */
static _Thread_local int thread_index = -1;

int redwork_thread_index(void) { return thread_index; }

/* Runs REQ and writes its reply into it, unless its handler defers it
 * (REQ->deferred is set then, and the reply is made later: defer.h). */
static void run_request(const pool *p, request *req, buffer *scratch) {
    const config *cfg = p->cfg;
    uint64_t start = clock_now_us();
    char why[256];
    if (request_expired(req, start)) {
        reply_write_error(cfg, req, scratch, PROTOCOL_TIMEOUT,
                          "waited %llu ms in the queue, over its timeout_ms %lld",
                          (unsigned long long)((start - req->received_us) / 1000u),
                          req->timeout_ms);
        return;
    }
    if (request_parse_tree(req, why, sizeof why) != 0) {
        reply_write_error(cfg, req, scratch, PROTOCOL_INTERNAL, "%s", why);
        return;
    }
    req->wait_us = (long long)(start - req->received_us); /* its handler runs */
    int rc = plugin_thread_state(req->handler, thread_index, &req->thread_state);
    if (rc != 0) {
        reply_write_error(cfg, req, scratch, PROTOCOL_HANDLER_FAILED,
                          "thread_init of handler '%s' failed (returned %d)",
                          plugin_name(req->handler), rc);
        request_drop_tree(req);
        return;
    }
    reply r;
    reply_init_for(&r, req, p->deferrals);
    rc = plugin_handle(req->handler, req, &r);
    long long duration = (long long)(clock_now_us() - start);
    req->duration_us = duration;
    if (r.deferred != NULL) { /* its reply comes later */
        req->deferred = r.deferred;
        reply_clear(&r);
        request_drop_tree(req);
        return;
    }
    if (rc != 0 && !reply_is_error(&r))
        redwork_reply_error(&r, PROTOCOL_HANDLER_FAILED, "handler '%s' failed (returned %d)",
                            plugin_name(req->handler), rc);
    reply_write(cfg, req, &r, duration, scratch);
    reply_clear(&r);
    request_drop_tree(req);
}

static void *worker_main(void *arg) {
    pool_thread *self = arg;
    pool *p = self->p;
    thread_index = self->index;
    buffer scratch = BUFFER_INIT;
    request *req = queue_pop(p->q);
    while (req != NULL) {
        run_request(p, req, &scratch);
        request *next = queue_trypop(p->q);
        p->done(p->ctx, req, next != NULL);
        req = next != NULL ? next : queue_pop(p->q);
    }
    redwork_buffer_free(&scratch);
    plugin_thread_exit(p->plugins, thread_index);
    pthread_mutex_lock(&p->lock);
    p->running--;
    pthread_cond_signal(&p->exited);
    pthread_mutex_unlock(&p->lock);
    p->done(p->ctx, NULL, 0);
    return NULL;
}

pool *pool_start(const config *cfg, size_t threads, queue *q, plugin_set *plugins,
                 deferrals *ds, pool_done_fn *done, void *ctx, char *err, size_t errlen) {
    pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc(threads, sizeof *p->threads)) == NULL) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->q = q;
    p->plugins = plugins;
    p->deferrals = ds;
    p->done = done;
    p->ctx = ctx;
    pthread_condattr_t attr;
    int failed = pthread_condattr_init(&attr) != 0;
    failed = failed || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
             pthread_cond_init(&p->exited, &attr) != 0;
    pthread_condattr_destroy(&attr);
    if (failed || pthread_mutex_init(&p->lock, NULL) != 0) {
        if (!failed)
            pthread_cond_destroy(&p->exited);
        snprintf(err, errlen, "cannot make the pool's mutex or condition");
        free(p->threads);
        free(p);
        return NULL;
    }

    /* Workers inherit this mask: signals go to the main thread only. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; p->count < threads; p->count++) {
        pthread_mutex_lock(&p->lock);
        p->running++;
        pthread_mutex_unlock(&p->lock);
        pool_thread *t = &p->threads[p->count];
        t->p = p;
        t->index = (int)p->count;
        int rc = pthread_create(&t->id, NULL, worker_main, t);
        if (rc != 0) {
            pthread_mutex_lock(&p->lock);
            p->running--;
            pthread_mutex_unlock(&p->lock);
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
        pthread_join(p->threads[i].id, NULL);
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

/* defer.c -- deferred replies (defer.h): the SDK's side, on any thread,
 * and the event loop's.
 *
 * DESIGN. Exactly one answer per request comes from one atomic state per
 * deferred reply, OPEN until either side moves it: the handler's finish
 * (OPEN -> FINISHED) or the daemon's own answer, a timeout or the drain's
 * end (OPEN -> ANSWERED). Whoever moves it answers; the other side's move
 * fails and drops what it had. A finish hands the reply to the loop
 * through a lock-free stack (handback.c) and a loop_async, so the handler's
 * thread never waits and never touches the loop's lists.
 *
 * Two events reach the loop for a deferred request, in either order: the
 * pool's hand-back (deferrals_register) and, if the handler finishes, the
 * finish. The request is answered at the second of them -- or at a
 * timeout or the drain's end in between.
 *
 * Lifetime. A deferred reply counts two references: the handler's, which
 * its finish gives to the loop along with the reply (or drops, if the
 * daemon answered first), and the loop's, dropped when the request is
 * answered. Whoever drops the last frees it. It also holds a reference to
 * its handler's version, so a reload cannot unload code that a timer of
 * that version will still call back into, and one to the deferrals, whose
 * memory outlives the loop while a handler still holds a reply: a finish
 * that comes after deferrals_free() finds them marked gone and drops its
 * reply. A finish moves the state, pushes and signals the loop under one
 * mutex that deferrals_free() also takes, so no finish is half-way through
 * signalling a loop that is being freed.
 *
 * The deadlines share one loop timer, set to the nearest; when it fires
 * the open requests are scanned, which is cheap next to what a thousand
 * of them would cost in timers. */
#include "defer.h"

#include "alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handback.h"
#include "plugin.h"
#include "reply.h"

enum { OPEN, FINISHED, ANSWERED };

struct redwork_deferred {
    atomic_int state;
    atomic_int refs;
    reply r;                  /* the handler's, until it finishes */
    deferrals *owner;
    const struct plugin *handler; /* a reference of its own */
    uint64_t started_us;      /* when it was deferred */
    handback_node back;       /* finished: on its way to the loop */

    /* The loop's. */
    request *req;             /* NULL once answered */
    int registered;           /* back from the pool */
    struct redwork_deferred *prev, *next; /* the open list; NULL when not in it */
};

struct deferrals {
    const config *cfg;
    loop *lp;
    deferrals_answer_fn *answer;
    void *ctx;
    atomic_long in_flight;    /* deferred and not answered: max_deferred */
    atomic_long refs;         /* the owner's, and one per deferred reply alive */
    pthread_mutex_t finishing; /* a finish's hand-over; gone */
    int gone;                 /* deferrals_free() has run: finishes are dropped */
    handback finished;        /* any thread -> the loop */
    loop_async finished_async;

    /* The loop's. */
    redwork_deferred open;    /* the anchor of a ring of the open ones */
    size_t open_count;
    loop_timer deadline;      /* the nearest timeout_ms among them */
    buffer scratch;
    int closed;
};

/* Drops a reference to DS; the last frees it. */
static void deferrals_unref(deferrals *ds) {
    if (atomic_fetch_sub_explicit(&ds->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&ds->finishing);
    free(ds);
}

/* Drops a reference to D; the last frees it. */
static void unref(redwork_deferred *d) {
    if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
        return;
    deferrals *ds = d->owner;
    reply_clear(&d->r);
    plugin_release(d->handler);
    free(d);
    deferrals_unref(ds);
}

/* ---- the SDK ------------------------------------------------------------ */

redwork_deferred *redwork_reply_defer(redwork_reply *rep) {
    deferrals *ds = rep->deferrals;
    if (ds == NULL || rep->req == NULL || rep->deferred != NULL)
        return NULL;
    if (atomic_fetch_add(&ds->in_flight, 1) >= ds->cfg->max_deferred) {
        atomic_fetch_sub(&ds->in_flight, 1);
        return NULL;
    }
    redwork_deferred *d = redwork_calloc(1, sizeof *d);
    if (d == NULL) {
        atomic_fetch_sub(&ds->in_flight, 1);
        return NULL;
    }
    atomic_init(&d->state, OPEN);
    atomic_init(&d->refs, 2);
    atomic_fetch_add(&ds->refs, 1);
    reply_init(&d->r);
    d->owner = ds;
    d->req = rep->req;
    d->handler = rep->req->handler;
    plugin_hold(d->handler);
    d->started_us = clock_now_us();
    rep->deferred = d;
    return d;
}

redwork_reply *redwork_deferred_reply(redwork_deferred *d) { return &d->r; }

int redwork_deferred_finish(redwork_deferred *d) {
    deferrals *ds = d->owner; /* alive: D holds a reference */
    int open = OPEN, sent = 0;
    pthread_mutex_lock(&ds->finishing);
    if (!ds->gone && atomic_compare_exchange_strong_explicit(&d->state, &open, FINISHED,
                                                             memory_order_acq_rel,
                                                             memory_order_acquire)) {
        handback_push(&ds->finished, &d->back); /* with the handler's reference */
        loop_async_signal(&ds->finished_async);
        sent = 1; /* D may be gone already: the loop frees it */
    }
    pthread_mutex_unlock(&ds->finishing);
    if (sent)
        return 0;
    reply_clear(&d->r); /* the daemon answered first, or has stopped */
    unref(d);
    return 1;
}

/* ---- the loop ----------------------------------------------------------- */

/* Answers D's request with the handler's reply (CODE NULL) or the error
 * CODE and MESSAGE, hands it on and drops the loop's reference. */
static void answer(deferrals *ds, redwork_deferred *d, const char *code, const char *message) {
    request *req = d->req;
    d->req = NULL;
    if (d->next != NULL) {
        d->prev->next = d->next;
        d->next->prev = d->prev;
        d->prev = d->next = NULL;
        ds->open_count--;
    }
    long long duration = (long long)(clock_now_us() - d->started_us);
    req->deferred = NULL;
    if (code == NULL) {
        req->duration_us += duration;
        reply_write(ds->cfg, req, &d->r, req->duration_us, &ds->scratch);
        reply_clear(&d->r);
    } else {
        reply_write_error(ds->cfg, req, &ds->scratch, code, "%s", message);
    }
    atomic_fetch_sub(&ds->in_flight, 1);
    ds->answer(ds->ctx, req);
    unref(d);
}

/* The daemon answers D itself, unless the handler has finished it. */
static void answer_for_handler(deferrals *ds, redwork_deferred *d, const char *code,
                               const char *message) {
    int open = OPEN;
    if (atomic_compare_exchange_strong_explicit(&d->state, &open, ANSWERED,
                                                memory_order_acq_rel, memory_order_acquire))
        answer(ds, d, code, message);
    /* else the finish is on its way to take_finished() */
}

static uint64_t due_us(const redwork_deferred *d) {
    return d->req->received_us + (uint64_t)d->req->timeout_ms * 1000u;
}

/* Answers 'timeout' for the open requests past their timeout_ms and sets
 * the timer for the next. */
static void on_deadline(void *ctx) {
    deferrals *ds = ctx;
    uint64_t now = clock_now_us(), next = 0;
    char message[160];
    redwork_deferred *d = ds->open.next;
    while (d != &ds->open) {
        redwork_deferred *after = d->next;
        if (d->req->timeout_ms >= 0 && atomic_load(&d->state) == OPEN) {
            uint64_t due = due_us(d);
            if (due <= now) {
                snprintf(message, sizeof message,
                         "the handler did not finish its deferred reply within timeout_ms %lld",
                         d->req->timeout_ms);
                answer_for_handler(ds, d, PROTOCOL_TIMEOUT, message);
            } else if (next == 0 || due < next) {
                next = due;
            }
        }
        d = after;
    }
    if (next != 0)
        loop_timer_start(ds->lp, &ds->deadline, next - now);
}

/* The finishes handed over since the last round. */
static void take_finished(void *ctx) {
    deferrals *ds = ctx;
    handback_node *n = handback_take(&ds->finished);
    while (n != NULL) {
        redwork_deferred *d = (redwork_deferred *)((char *)n - offsetof(redwork_deferred, back));
        n = n->next;
        if (d->registered && d->req != NULL)
            answer(ds, d, NULL, NULL);
        unref(d); /* the handler's, which came with it */
    }
}

deferrals *deferrals_create(const config *cfg, loop *lp, deferrals_answer_fn *answer_fn,
                            void *ctx) {
    deferrals *ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        return NULL;
    ds->cfg = cfg;
    ds->lp = lp;
    ds->answer = answer_fn;
    ds->ctx = ctx;
    atomic_init(&ds->in_flight, 0);
    atomic_init(&ds->refs, 1);
    if (pthread_mutex_init(&ds->finishing, NULL) != 0) {
        free(ds);
        return NULL;
    }
    handback_init(&ds->finished);
    loop_async_init(lp, &ds->finished_async, take_finished, ds);
    ds->open.prev = ds->open.next = &ds->open;
    loop_timer_init(&ds->deadline, on_deadline, ds);
    ds->scratch = (buffer)BUFFER_INIT;
    return ds;
}

void deferrals_register(deferrals *ds, request *req) {
    redwork_deferred *d = req->deferred;
    d->registered = 1;
    if (atomic_load_explicit(&d->state, memory_order_acquire) == FINISHED) {
        answer(ds, d, NULL, NULL);
        return;
    }
    d->next = &ds->open;
    d->prev = ds->open.prev;
    ds->open.prev->next = d;
    ds->open.prev = d;
    ds->open_count++;
    if (ds->closed) {
        answer_for_handler(ds, d, PROTOCOL_SHUTTING_DOWN,
                           "the daemon stopped before the handler finished its deferred reply");
        return;
    }
    if (req->timeout_ms < 0)
        return;
    uint64_t due = due_us(d), now = clock_now_us();
    if (!ds->deadline.armed || due < ds->deadline.due_us)
        loop_timer_start(ds->lp, &ds->deadline, due > now ? due - now : 0);
}

size_t deferrals_open(const deferrals *ds) { return ds->open_count; }

void deferrals_close(deferrals *ds) {
    char message[160];
    snprintf(message, sizeof message,
             "the daemon stopped before the handler finished its deferred reply "
             "(shutdown_timeout_ms %lld)", ds->cfg->shutdown_timeout_ms);
    ds->closed = 1;
    loop_timer_stop(ds->lp, &ds->deadline);
    redwork_deferred *d = ds->open.next;
    while (d != &ds->open) {
        redwork_deferred *after = d->next;
        answer_for_handler(ds, d, PROTOCOL_SHUTTING_DOWN, message);
        d = after;
    }
}

void deferrals_free(deferrals *ds) {
    if (ds == NULL)
        return;
    pthread_mutex_lock(&ds->finishing); /* no finish is signalling now, nor will */
    ds->gone = 1;
    pthread_mutex_unlock(&ds->finishing);
    handback_node *n = handback_take(&ds->finished);
    while (n != NULL) { /* finished, not answered: the handlers' references */
        redwork_deferred *d = (redwork_deferred *)((char *)n - offsetof(redwork_deferred, back));
        n = n->next;
        unref(d);
    }
    while (ds->open.next != &ds->open) {
        redwork_deferred *d = ds->open.next;
        d->prev->next = d->next;
        d->next->prev = d->prev;
        int open = OPEN; /* a finish to come is dropped */
        atomic_compare_exchange_strong(&d->state, &open, ANSWERED);
        request_free(d->req);
        unref(d);
    }
    redwork_buffer_free(&ds->scratch);
    loop_async_remove(ds->lp, &ds->finished_async);
    deferrals_unref(ds); /* the owner's: the handlers may hold the rest */
}

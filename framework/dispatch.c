/* dispatch.c -- the dispatcher: the thread that owns the Redis I/O.
 *
 * DESIGN. Redis's own shape: one thread, one event loop (loop.c), every
 * connection non-blocking (wire.c), nothing on this thread waits for
 * anything but epoll. Each message the source hands over goes through
 *
 *   1. validate (request_scan) and route (its handler field, else the
 *      first [routes] glob that matches its channel, else
 *      default_handler);
 *   2. with claim = on (Pub/Sub), claim it (claim.c) -- only when the
 *      daemon wants more work (take_room(): enough to keep its threads
 *      busy for PREFETCH_US), counting the claims in flight, so a busy
 *      daemon leaves the request to one with free threads;
 *   3. push it on the queue for the pool (gathered, one push per round),
 *      or answer it at once (bad_request, unknown_handler, overloaded)
 *      through the publisher.
 *
 * A daemon with claim = on that wants no more work parks the request for
 * DISPATCH_OVERLOAD_GRACE_MS, oldest first, and claims parked requests as
 * its threads free up; a daemon that has free threads claims at once, so
 * it wins the race, and work goes to the daemons that can start it
 * soonest. When the grace ends the daemon claims the request anyway: to
 * queue it if the queue has room, else to answer 'overloaded' -- only if
 * its claim takes, that is, if no daemon with room took it first. Exactly
 * one daemon answers either way. A stream source reads the same way: no
 * more than take_room(), so entries wait in Redis for whichever daemon is
 * free first instead of in one daemon's queue.
 *
 * The pool hands each finished request back through a lock-free stack
 * (handback.c) and a loop_async; the publisher writes its reply in the
 * same round, so batching comes from load, never from a timer.
 *
 * Stopping: the source stops taking requests (Pub/Sub unsubscribes and
 * takes what Redis already sent), claims in flight are answered, the
 * queue is closed, the pool drains it, and the thread ends when every
 * pool thread has exited and Redis has answered every reply. At
 * shutdown_timeout_ms whatever is still queued is answered
 * 'shutting_down' (a stream entry is left pending for another daemon),
 * and the replies made get DISPATCH_FLUSH_GRACE_MS more: a stopped Redis
 * cannot hold the daemon longer than that. */
#include "dispatch.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "claim.h"
#include "heartbeat.h"
#include "log.h"
#include "loop.h"
#include "publish.h"
#include "reply.h"
#include "source.h"
#include "watch.h"
#include "wire.h"

#define RUNNABLE_MAX 256        /* requests gathered before a push */
#define SPIN_US 50              /* see spin_for_replies() */
#define WAKE_US 50              /* see wake_pool() */
#define CACHE_MAX 1024          /* requests kept for reuse */
#define PARK_MIN 1024           /* parked requests allowed, at least */
#define PREFETCH_US 6000        /* work held per thread: see take_room() */
#define BUSY_ROUND_US (PREFETCH_US / 2) /* a busy loop's round: see want_more() */
#define PREFETCH_MIN 2          /* requests held per thread, at least */
#define BEAT_EVERY_US 1000000u

enum state { RUNNING, STOPPING, DRAINING, FLUSHING, DONE };

struct dispatcher {
    const config *cfg;
    plugin_set *plugins;
    queue *q;
    stats *st;
    metrics *m;
    size_t slot;               /* ours in m */
    loop *lp;
    wire *cmd;
    const source_ops *source;
    source *src;
    publisher *pub;
    claims *claims;             /* NULL: no claims (claim = off, or streams) */
    heartbeat *hb;
    deferrals *deferrals;       /* replies handlers finish later */
    watch *watch;               /* NULL: no sentinels */
    request_cache cache;
    buffer scratch;             /* for the answers made on this thread */

    request *runnable[RUNNABLE_MAX]; /* to push on the queue this round */
    size_t runnable_count;
    size_t reserved;            /* queue places promised to claims in flight */
    size_t at_pool;             /* queued or running: pushed, not handed back */
    long long handler_us;       /* handlers' recent run time (moving average);
                                   -1 until the first request is done */
    request parked;             /* claim = on, queue full: oldest first */
    size_t parked_count;

    handback back;
    loop_async back_async;
    atomic_int exited;          /* pool threads that have ended */
    loop_async stop_async;
    loop_async names_async;
    pthread_mutex_t names_lock;
    char *names;                /* new handler names for the heartbeat */

    enum state state;
    int ready;                  /* subscribed: the heartbeat may say so */
    int busy;                   /* told the source: see want_more() */
    int source_stopped;
    int timed_out;
    loop_timer beat_timer, park_timer, deadline_timer, flush_timer;
    loop_timer pool_timer;      /* a round at least every DEFER_MAX_MS */
    pthread_t thread;
    int started;
    log_limit reject_limit;
};

/* ---- answering and queueing -------------------------------------------- */

/* Free places on the queue, less what this round and the claims in flight
 * will take. */
static size_t room(dispatcher *d) {
    size_t free_places = queue_room(d->q), taken = d->runnable_count + d->reserved;
    return free_places > taken ? free_places - taken : 0;
}

/* How many more requests the daemon takes on now (claims them, or reads
 * them from a stream): enough to keep every thread busy for PREFETCH_US at
 * the handlers' recent pace (PREFETCH_MIN a thread at least), less what it
 * holds, within the queue's room. Holding more would only hoard work that
 * another daemon could start sooner; for fast handlers the bound is the
 * queue's room. */
static size_t take_room(dispatcher *d) {
    size_t threads = (size_t)d->cfg->threads;
    size_t per_thread = d->handler_us > 0    ? (size_t)(PREFETCH_US / d->handler_us)
                        : d->handler_us == 0 ? SIZE_MAX
                                             : PREFETCH_MIN; /* no pace yet: assume slow */
    if (per_thread < PREFETCH_MIN)
        per_thread = PREFETCH_MIN;
    size_t want = per_thread > SIZE_MAX / threads ? SIZE_MAX : per_thread * threads;
    size_t held = d->at_pool + d->runnable_count + d->reserved, free_places = room(d);
    size_t more = want > held ? want - held : 0;
    return more < free_places ? more : free_places;
}

/* REQ's reply is in REQ->out: claim it first if claims decide who
 * answers, else send it. */
static void answer(dispatcher *d, request *req) {
    if (d->claims != NULL)
        claims_send(d->claims, req);
    else
        publisher_send(d->pub, req);
}

/* Answers REQ, which could not be queued (the queue closed or filled):
 * 'shutting_down' or 'overloaded'. A stream entry is let go instead, to
 * be taken over by another daemon. Its claim, if any, is already won. */
static void refuse(dispatcher *d, request *req, int closed) {
    if (hold_is_held(&req->hold)) {
        hold_release(&req->hold);
        request_put(&d->cache, req);
        return;
    }
    if (closed)
        reply_write_error(d->cfg, req, &d->scratch, PROTOCOL_SHUTTING_DOWN,
                          "the daemon stopped before running it (shutdown_timeout_ms %lld)",
                          d->cfg->shutdown_timeout_ms);
    else
        reply_write_error(d->cfg, req, &d->scratch, PROTOCOL_OVERLOADED,
                          "the work queue is full (queue_size %lld)", d->cfg->queue_size);
    publisher_send(d->pub, req);
}

/* Pushes what this round gathered, in one lock. */
static void flush_runnable(dispatcher *d) {
    size_t n = d->runnable_count;
    if (n == 0)
        return;
    /* With every thread asleep one is woken here, in the same lock;
     * wake_pool() decides about more. */
    size_t all_asleep = queue_sleepers(d->q) == (size_t)d->cfg->threads;
    size_t pushed = queue_push_many(d->q, (void *const *)d->runnable, n, all_asleep);
    d->runnable_count = 0;
    d->at_pool += pushed;
    for (size_t i = pushed; i < n; i++)
        refuse(d, d->runnable[i], d->state != RUNNING && d->state != STOPPING);
}

static void push_runnable(dispatcher *d, request *req) {
    if (d->runnable_count == RUNNABLE_MAX)
        flush_runnable(d);
    d->runnable[d->runnable_count++] = req;
}

static void unpark(dispatcher *d);

/* A claim's verdict (claim.c). */
static void on_claim(void *ctx, request *req, int won) {
    dispatcher *d = ctx;
    int runnable = req->commands == 0; /* else it carries an answer */
    if (runnable)
        d->reserved--;
    if (won == 0) {
        stats_add(d->st->claims_lost);
        log_debug("dispatch", "req_id %s dropped: its claim key exists (another daemon "
                  "took it, or the id was reused within claim_ttl_ms)", req->id);
    }
    if (won != 1)
        request_put(&d->cache, req);
    else if (runnable)
        push_runnable(d, req);
    else
        publisher_send(d->pub, req);
    unpark(d);
}

/* Claims a runnable REQ, its place on the queue reserved. */
static void claim_to_run(dispatcher *d, request *req) {
    d->reserved++;
    claims_send(d->claims, req);
}

/* Claims REQ to answer it 'overloaded' (WHY says more): sent only if the
 * claim takes, that is, if no daemon with room took it first. */
static void claim_overloaded(dispatcher *d, request *req, const char *why) {
    reply_write_error(d->cfg, req, &d->scratch, PROTOCOL_OVERLOADED,
                      "the work queue is full (queue_size %lld)%s", d->cfg->queue_size, why);
    answer(d, req);
}

/* Parks REQ (claim = on only): the parked requests are this daemon's
 * share of the queue -- claimed oldest first as its threads free up --
 * as far as the queue has room for them; those beyond it overflow, and
 * are answered 'overloaded' when their grace ends unless room came (see
 * on_park_timer()). At most max(queue_size, PARK_MIN) overflow: past
 * that, under a flood, a request is claimed at once to be answered so. */
static void park(dispatcher *d, request *req) {
    size_t most = (size_t)d->cfg->queue_size > PARK_MIN ? (size_t)d->cfg->queue_size : PARK_MIN;
    size_t share = room(d);
    if (d->parked_count >= share + most) {
        claim_overloaded(d, req, "");
        return;
    }
    request_list_append(&d->parked, req);
    if (d->parked_count++ >= share && !d->park_timer.armed)
        loop_timer_start(d->lp, &d->park_timer, (uint64_t)DISPATCH_OVERLOAD_GRACE_MS * 1000u);
}

static request *unpark_first(dispatcher *d) {
    request *req = d->parked.next;
    request_list_remove(req);
    d->parked_count--;
    return req;
}

/* Threads freed up: the parked requests, oldest first, are claimed to run. */
static void unpark(dispatcher *d) {
    while (d->parked_count > 0 && take_room(d) > 0)
        claim_to_run(d, unpark_first(d));
    if (d->parked_count == 0)
        loop_timer_stop(d->lp, &d->park_timer);
}

/* The grace of some overflowing requests may be over: those still beyond
 * the queue's room are answered 'overloaded'; the timer is set again for
 * the next grace to end. */
static void on_park_timer(void *ctx) {
    dispatcher *d = ctx;
    uint64_t now = clock_now_us(), grace = (uint64_t)DISPATCH_OVERLOAD_GRACE_MS * 1000u;
    uint64_t next_due = 0;
    char why[96];
    snprintf(why, sizeof why, " and no other daemon took the request within %d ms",
             DISPATCH_OVERLOAD_GRACE_MS);
    unpark(d);
    size_t share = room(d), i = 0;
    request *req = d->parked.next;
    while (req != &d->parked) {
        request *next = req->next;
        uint64_t due = req->received_us + grace;
        if (i++ < share) {
            /* within the queue's room: it waits its turn */
        } else if (due <= now) {
            request_list_remove(req);
            d->parked_count--;
            i--;
            claim_overloaded(d, req, why);
        } else if (next_due == 0 || due < next_due) {
            next_due = due;
        }
        req = next;
    }
    if (next_due != 0)
        loop_timer_start(d->lp, &d->park_timer, next_due - now);
}

/* REQ is runnable: queue it, claim it, park it, or answer overloaded. */
static void want_run(dispatcher *d, request *req) {
    if (d->claims == NULL) {
        if (room(d) > 0)
            push_runnable(d, req);
        else
            refuse(d, req, 0);
    } else if (d->parked_count == 0 && take_room(d) > 0) {
        claim_to_run(d, req);
    } else { /* behind the parked ones: oldest first */
        park(d, req);
        unpark(d);
    }
}

/* Routes REQ: its handler field, else the first matching [routes] glob,
 * else default_handler. Returns 0, or -1 with the answer written. */
static int route(dispatcher *d, request *req) {
    const char *name = req->handler_field;
    if (name == NULL)
        name = redwork_config_route_for(d->cfg, req->channel);
    if (name == NULL && *d->cfg->default_handler)
        name = d->cfg->default_handler;
    if (name == NULL) {
        reply_write_error(d->cfg, req, &d->scratch, PROTOCOL_UNKNOWN_HANDLER,
                          "no handler in the request, no [routes] entry for channel "
                          "'%.64s' and no default_handler", req->channel);
        return -1;
    }
    req->handler = plugin_acquire(d->plugins, name);
    if (req->handler == NULL) {
        reply_write_error(d->cfg, req, &d->scratch, PROTOCOL_UNKNOWN_HANDLER,
                          "no handler named '%.64s'", name);
        return -1;
    }
    return 0;
}

/* ---- the source's sink ------------------------------------------------- */

static request *sink_get(void *ctx) {
    dispatcher *d = ctx;
    return request_get(&d->cache);
}

static void sink_put(void *ctx, request *req) {
    dispatcher *d = ctx;
    hold_release(&req->hold);
    request_put(&d->cache, req);
}

/* What a stream may read: take_room(), in batches -- nothing until the
 * daemon wants at least half its fill, so a saturated daemon reads a few
 * entries a round trip, not one. */
static size_t sink_room(void *ctx) {
    dispatcher *d = ctx;
    size_t more = take_room(d), held = d->at_pool + d->runnable_count;
    return held == 0 || more >= held ? more : 0;
}

static int sink_take(void *ctx, request *req, const char *body, size_t len,
                     const char *channel, size_t channel_len, uint64_t received_us,
                     char *why, size_t whylen) {
    dispatcher *d = ctx;
    int status = request_scan(req, body, len, channel, channel_len,
                              (size_t)d->cfg->max_request_bytes, d->cfg->reply_prefix, received_us,
                              why, whylen);
    if (status == REQUEST_UNANSWERABLE) {
        stats_add(d->st->rejected);
        log_limited(&d->reject_limit, LOG_LEVEL_WARN, "dispatch",
                    "rejected a %zu-byte message on %s '%.*s': %s", len,
                    hold_is_held(&req->hold) ? "stream" : "channel", (int)channel_len,
                    channel, why);
        return -1;
    }
    if (status != REQUEST_OK) {
        reply_write_error(d->cfg, req, &d->scratch,
                          status == REQUEST_BAD ? PROTOCOL_BAD_REQUEST : PROTOCOL_INTERNAL,
                          "%s", why);
        answer(d, req);
    } else if (route(d, req) != 0) {
        answer(d, req);
    } else {
        want_run(d, req);
    }
    return 0;
}

/* A reply to send (the source's, or a deferred one's). */
static void send_reply(void *ctx, request *req) {
    dispatcher *d = ctx;
    publisher_send(d->pub, req);
}

static void sink_stopped(void *ctx) {
    dispatcher *d = ctx;
    d->source_stopped = 1;
    log_info("dispatch", "stopped taking requests");
}

/* ---- the pool's hand-back ---------------------------------------------- */

void dispatch_handback(void *ctx, request *req, int more) {
    dispatcher *d = ctx;
    if (req != NULL)
        handback_push(&d->back, &req->back);
    else
        atomic_fetch_add(&d->exited, 1);
    if (!more)
        loop_async_signal(&d->back_async);
}

/* Takes what the pool handed back: the replies go out in this round's
 * write. Runs every round, and when a pool thread wakes the loop. */
static void take_back(void *ctx) {
    dispatcher *d = ctx;
    handback_node *n = handback_take(&d->back);
    if (n == NULL) {
        if (d->busy) /* the subscriber is read once a round */
            d->source->read(d->src);
        return;
    }
    while (n != NULL) {
        request *req = (request *)((char *)n - offsetof(request, back));
        n = n->next;
        d->at_pool--;
        if (d->handler_us < 0)
            d->handler_us = req->duration_us;
        else
            d->handler_us += (req->duration_us - d->handler_us) / 8;
        if (req->deferred != NULL)
            deferrals_register(d->deferrals, req);
        else
            publisher_send(d->pub, req);
    }
    if (d->state == RUNNING || d->state == STOPPING) {
        unpark(d);
        d->source->read(d->src); /* a stream reads as far as there is room */
    }
}

/* ---- the command wire -------------------------------------------------- */

/* Threads running a handler now: handed to the pool and not waiting in
 * the queue. */
static size_t threads_running(dispatcher *d) {
    size_t depth = queue_depth(d->q);
    size_t running = d->at_pool > depth ? d->at_pool - depth : 0;
    return running < (size_t)d->cfg->threads ? running : (size_t)d->cfg->threads;
}

/* Our slot's gauges and health, for /metrics and /healthz. */
static void report_state(dispatcher *d) {
    metrics_gauges(d->m, d->slot, queue_depth(d->q), (size_t)d->cfg->queue_size,
                   threads_running(d));
    metrics_health_set(d->m, d->slot, wire_is_up(d->cmd), d->ready && d->state == RUNNING);
}

static void on_cmd_down(void *ctx, const char *why) {
    (void)why;
    report_state(ctx);
}

static void on_cmd_up(void *ctx) {
    dispatcher *d = ctx;
    report_state(d);
    publisher_wire_up(d->pub);
    if (d->claims != NULL)
        claims_wire_up(d->claims);
    if (d->src != NULL)
        d->source->cmd_up(d->src);
    if (d->ready) /* not before the first subscription: it means ready */
        heartbeat_beat(d->hb, queue_depth(d->q), threads_running(d));
}

/* The sentinels moved the master: every connection goes to the new one. */
static void on_master_switch(void *ctx, const char *new_address) {
    dispatcher *d = ctx;
    char why[320];
    snprintf(why, sizeof why, "the sentinels moved the master to %s", new_address);
    wire_reconnect(d->cmd, why);
    d->source->reconnect(d->src, why);
}

static void on_beat(void *ctx) {
    dispatcher *d = ctx;
    heartbeat_beat(d->hb, queue_depth(d->q), threads_running(d));
    report_state(d);
    metrics_beat(d->m, d->slot); /* the loop goes round: the watchdog may be fed */
    publisher_expire(d->pub);
    loop_timer_start(d->lp, &d->beat_timer, BEAT_EVERY_US);
}

static void on_names(void *ctx) {
    dispatcher *d = ctx;
    pthread_mutex_lock(&d->names_lock);
    char *names = d->names;
    d->names = NULL;
    pthread_mutex_unlock(&d->names_lock);
    if (names != NULL && heartbeat_set_handlers(d->hb, names) == 0)
        heartbeat_beat(d->hb, queue_depth(d->q), threads_running(d));
    free(names);
}

/* ---- stopping ---------------------------------------------------------- */

/* Moves the stop along, after every round of the loop: close the queue
 * once nothing more can be queued, end once the pool has ended and Redis
 * has answered every reply. */
static void check_progress(dispatcher *d) {
    if (d->state == STOPPING && d->source_stopped && d->parked_count == 0 &&
        (d->claims == NULL || claims_waiting(d->claims) == 0)) {
        flush_runnable(d);
        queue_close(d->q);
        d->state = DRAINING;
    }
    if ((d->state == DRAINING || d->state == FLUSHING) &&
        atomic_load(&d->exited) == (int)d->cfg->threads && d->runnable_count == 0 &&
        deferrals_open(d->deferrals) == 0 && publisher_waiting(d->pub) == 0)
        d->state = DONE;
}

static void on_stop(void *ctx) {
    dispatcher *d = ctx;
    if (d->state != RUNNING)
        return;
    d->state = STOPPING;
    plugin_set_draining(d->plugins); /* for handlers that poll redwork_host_draining() */
    report_state(d); /* not serving: /healthz says so while it drains */
    log_info("dispatch", "draining: %zu queued, %zu parked", queue_depth(d->q),
             d->parked_count);
    loop_timer_start(d->lp, &d->deadline_timer, (uint64_t)d->cfg->shutdown_timeout_ms * 1000u);
    /* The parked requests are run as the queue is (claimed, as far as it
     * has room); the rest are claimed to be answered 'shutting_down'. */
    while (d->parked_count > 0) {
        request *req = unpark_first(d);
        if (room(d) > 0) {
            claim_to_run(d, req);
            continue;
        }
        reply_write_error(d->cfg, req, &d->scratch, PROTOCOL_SHUTTING_DOWN,
                          "the daemon stopped before running it (the queue is full)");
        answer(d, req);
    }
    loop_timer_stop(d->lp, &d->park_timer);
    d->source->stop(d->src);
}

static void on_flush_end(void *ctx) {
    dispatcher *d = ctx;
    d->state = DONE;
}

/* shutdown_timeout_ms is over: refuse what is still queued, give the
 * replies made a last DISPATCH_FLUSH_GRACE_MS, and end. */
static void on_deadline(void *ctx) {
    dispatcher *d = ctx;
    if (d->state == DONE)
        return;
    size_t refused = 0;
    if (d->state == STOPPING) { /* the source or the claims did not answer */
        claims_free(d->claims);
        d->claims = NULL;
        flush_runnable(d);
        queue_close(d->q);
    }
    request *req;
    while ((req = queue_trypop(d->q)) != NULL) {
        refuse(d, req, 1);
        refused++;
    }
    size_t deferred = deferrals_open(d->deferrals);
    deferrals_close(d->deferrals);
    int running = atomic_load(&d->exited) < (int)d->cfg->threads;
    d->timed_out = 1;
    log_error("dispatch", "shutdown timed out after %lld ms: %zu queued and %zu deferred "
              "requests answered shutting_down, %zu replies still wait for redis%s",
              d->cfg->shutdown_timeout_ms, refused, deferred, publisher_waiting(d->pub),
              running ? "; handlers still running are abandoned" : "");
    d->state = FLUSHING;
    loop_timer_start(d->lp, &d->flush_timer, (uint64_t)DISPATCH_FLUSH_GRACE_MS * 1000u);
}

static void *dispatch_main(void *arg) {
    dispatcher *d = arg;
    while (d->state != DONE) {
        if (loop_run_once(d->lp, -1) != 0) {
            log_error("dispatch", "the event loop failed; stopping");
            break;
        }
        check_progress(d);
    }
    heartbeat_delete(d->hb);
    if (!d->timed_out)
        d->source->leave(d->src);
    wire_flush(d->cmd);
    return NULL;
}

/* ---- life cycle -------------------------------------------------------- */

/* Wakes as many pool threads as the queued work needs, once a round (and
 * so at least every DISPATCH_DEFER_MAX_MS while requests are at the pool).
 * A thread woken to find the queue already empty costs two context
 * switches, which for a fast handler is more than the work: so another
 * thread is woken only when the queue holds more than the awake threads
 * would clear in WAKE_US at the handlers' recent pace, or when the oldest
 * queued request has waited WAKE_US already (the awake threads may be in
 * slow handlers). With no thread awake, one is woken for any work. */
static void wake_pool(dispatcher *d) {
    size_t depth = queue_depth(d->q), asleep = queue_sleepers(d->q);
    if (depth == 0 || asleep == 0)
        return;
    size_t awake = (size_t)d->cfg->threads > asleep ? (size_t)d->cfg->threads - asleep : 0;
    long long pace = d->handler_us > 0 ? d->handler_us : 1;
    size_t want = (size_t)((long long)depth * pace / WAKE_US);
    if (want < 1)
        want = 1;
    uint64_t oldest = queue_oldest_us(d->q), now = clock_now_us();
    if (awake > 0 && oldest != 0 && now - oldest > WAKE_US && want <= awake)
        want = awake + 1;
    if (want > awake)
        queue_wake(d->q, want - awake);
}

/* Whether the loop spins a little before it sleeps: when the requests at
 * the pool will all be done within SPIN_US at the handlers' recent pace,
 * the replies are due in microseconds, and waiting for them awake saves
 * the loop a sleep and a wake-up and the pool thread a system call to
 * wake it. Measured (bench/run, echo): for a lone request a tenth of its
 * latency; at 64 in flight less CPU per request than sleeping, not more.
 * Slow handlers, or more work than SPIN_US, and the loop sleeps. */
static void spin_for_replies(dispatcher *d) {
    long long pace = d->handler_us > 0 ? d->handler_us : 0;
    int soon = d->at_pool > 0 && (long long)d->at_pool * (pace + 1) <= SPIN_US;
    loop_set_spin(d->lp, soon ? SPIN_US : 0);
}

/* While requests are at the pool, the loop runs a round at least every
 * DISPATCH_DEFER_MAX_MS (BUSY_ROUND_US when busy): it takes the replies a
 * busy thread did not wake it for, and wakes threads for requests that
 * wait. The round is the work; the timer only ends the wait. */
static void on_pool_timer(void *ctx) { (void)ctx; }

/* A daemon that holds all the work it wants (take_room() is 0) is busy:
 * its pool has PREFETCH_US of work a thread, and nothing it does can start
 * a request sooner. So it runs a round every BUSY_ROUND_US -- half that
 * work -- instead of on every event: its wires are read once a round (the
 * source is told about its own), and the replies of a round go out together (a
 * thread that goes straight on to its next request does not wake the
 * loop). Each round's reads, claims, replies and stream reads then share
 * one wake-up and one write, here and in Redis, instead of costing one
 * each; on a machine where a system call costs a microsecond that is most
 * of the cost of a request that is not the handler's. A reply waits at
 * most BUSY_ROUND_US for its round, while the requests behind it wait
 * PREFETCH_US; and a busy daemon leaves each new message a little longer
 * to a daemon with free threads. */
static void want_more(dispatcher *d) {
    int busy = d->state == RUNNING && d->at_pool > 0 && take_room(d) == 0;
    if (busy != d->busy) {
        d->busy = busy;
        wire_hold_reads(d->cmd, busy);
        d->source->busy(d->src, busy);
    }
}

/* The first hook of every round, before the wires write. */
static void before_wait(void *ctx) {
    dispatcher *d = ctx;
    if (d->busy) /* Redis's answers are read once a round */
        wire_read(d->cmd);
    take_back(d);
    flush_runnable(d);
    wake_pool(d);
    spin_for_replies(d);
    want_more(d);
    if (d->at_pool == 0)
        loop_timer_stop(d->lp, &d->pool_timer);
    else if (!d->pool_timer.armed)
        loop_timer_start(d->lp, &d->pool_timer,
                         d->busy ? BUSY_ROUND_US : (uint64_t)DISPATCH_DEFER_MAX_MS * 1000u);
}

dispatcher *dispatch_create(const config *cfg, plugin_set *plugins, queue *q, metrics *m,
                            size_t slot, const char *handlers, char *err, size_t errlen) {
    stats *st = metrics_stats(m, slot);
    dispatcher *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->plugins = plugins;
    d->q = q;
    d->st = st;
    d->m = m;
    d->slot = slot;
    d->source = cfg->transport == TRANSPORT_STREAM ? &source_stream : &source_pubsub;
    d->cache.max = CACHE_MAX;
    d->handler_us = -1;
    d->scratch = (buffer)BUFFER_INIT;
    request_list_init(&d->parked);
    d->reject_limit = (log_limit)LOG_LIMIT_INIT;
    handback_init(&d->back);
    atomic_init(&d->exited, 0);
    if (pthread_mutex_init(&d->names_lock, NULL) != 0) {
        snprintf(err, errlen, "cannot make a mutex");
        free(d);
        return NULL;
    }
    if ((d->lp = loop_create(err, errlen)) == NULL)
        goto err;
    /* Registered before any wire's: the replies handed back in a round go
     * out in that round's write. */
    if (loop_before_wait(d->lp, before_wait, d) != 0) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    loop_async_init(d->lp, &d->back_async, take_back, d);
    loop_async_init(d->lp, &d->stop_async, on_stop, d);
    loop_async_init(d->lp, &d->names_async, on_names, d);
    loop_timer_init(&d->beat_timer, on_beat, d);
    loop_timer_init(&d->park_timer, on_park_timer, d);
    loop_timer_init(&d->deadline_timer, on_deadline, d);
    loop_timer_init(&d->flush_timer, on_flush_end, d);
    loop_timer_init(&d->pool_timer, on_pool_timer, d);

    static const wire_handlers cmd_handlers = {.up = on_cmd_up, .down = on_cmd_down};
    static const source_sink sink_fns = {
        .get = sink_get, .put = sink_put, .room = sink_room, .take = sink_take,
        .send = send_reply, .stopped = sink_stopped,
    };
    source_sink sink = sink_fns;
    sink.ctx = d;
    d->cmd = wire_create(d->lp, cfg, "commands", &cmd_handlers, d, 0);
    d->pub = d->cmd != NULL ? publisher_create(cfg, d->cmd, m, slot, &d->cache) : NULL;
    d->hb = d->cmd != NULL ? heartbeat_create(cfg, d->cmd, handlers, st) : NULL;
    d->deferrals = deferrals_create(cfg, d->lp, send_reply, d);
    if (cfg->transport == TRANSPORT_PUBSUB && cfg->claim)
        d->claims = d->cmd != NULL ? claims_create(cfg, d->cmd, on_claim, d) : NULL;
    d->src = d->cmd != NULL ? d->source->create(cfg, d->lp, d->cmd, st, &sink) : NULL;
    if (cfg->sentinel != NULL && (d->watch = watch_create(d->lp, cfg, on_master_switch, d)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    if (d->pub == NULL || d->hb == NULL || d->src == NULL || d->deferrals == NULL ||
        (cfg->transport == TRANSPORT_PUBSUB && cfg->claim && d->claims == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    if (wire_connect(d->cmd, err, errlen) != 0 || d->source->start(d->src, err, errlen) != 0 ||
        (d->watch != NULL && watch_start(d->watch, err, errlen) != 0))
        goto err;
    d->ready = 1;
    wire_count_reconnects(d->cmd, st);
    heartbeat_beat(d->hb, 0, 0);
    report_state(d);
    metrics_beat(m, slot);
    loop_timer_start(d->lp, &d->beat_timer, BEAT_EVERY_US);
    return d;
err:
    dispatch_free(d);
    return NULL;
}

int dispatch_start(dispatcher *d) {
    if (pthread_create(&d->thread, NULL, dispatch_main, d) != 0)
        return -1;
    d->started = 1;
    return 0;
}

void dispatch_set_handlers(dispatcher *d, const char *names) {
    char *copy = strdup(names);
    if (copy == NULL)
        return;
    pthread_mutex_lock(&d->names_lock);
    free(d->names);
    d->names = copy;
    pthread_mutex_unlock(&d->names_lock);
    loop_async_signal(&d->names_async);
}

deferrals *dispatch_deferrals(dispatcher *d) { return d->deferrals; }

void dispatch_stop(dispatcher *d) { loop_async_signal(&d->stop_async); }

int dispatch_join(dispatcher *d) {
    if (!d->started)
        return -1;
    pthread_join(d->thread, NULL);
    d->started = 0;
    return d->timed_out;
}

void dispatch_free(dispatcher *d) {
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->runnable_count; i++)
        request_put(&d->cache, d->runnable[i]);
    d->runnable_count = 0;
    while (d->parked_count > 0)
        request_put(&d->cache, unpark_first(d));
    /* The wires go first: the answers they still await come back as NULL
     * to the requests the claims and the publisher hold. */
    if (d->src != NULL)
        d->source->close(d->src);
    deferrals_free(d->deferrals);
    watch_free(d->watch);
    wire_free(d->cmd);
    claims_free(d->claims);
    publisher_free(d->pub);
    heartbeat_free(d->hb);
    request *req;
    while ((req = queue_trypop(d->q)) != NULL)
        request_free(req);
    handback_node *n = handback_take(&d->back);
    while (n != NULL) {
        req = (request *)((char *)n - offsetof(request, back));
        n = n->next;
        request_free(req);
    }
    request_cache_clear(&d->cache);
    redwork_buffer_free(&d->scratch);
    loop_free(d->lp);
    pthread_mutex_destroy(&d->names_lock);
    free(d->names);
    free(d);
}

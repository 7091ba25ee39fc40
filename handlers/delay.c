/* delay -- replies {"delayed_ms": ms} after "ms" milliseconds (0..60000)
 * without holding a pool thread: handle() defers the reply
 * (redwork_reply_defer) and one timer thread of the handler's own
 * finishes it when its time comes. The example of a deferred reply: with
 * threads = 1, a thousand delays of 500 ms all answer after about 500 ms.
 *
 * The timer thread keeps the pending replies in a binary heap ordered by
 * due time, under one mutex, and sleeps on a condition variable on the
 * monotonic clock until the earliest is due or a nearer one arrives.
 * fini() stops it and finishes what is left (the daemon has answered
 * those already at its drain's end, so the finishes are dropped). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <redwork/handler.h>

#define DELAY_MAX_MS 60000

typedef struct pending {
    uint64_t due_ns;
    long long ms;
    redwork_deferred *reply;
} pending;

typedef struct delay_state {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t timer;
    pending *heap; /* a min-heap on due_ns */
    size_t count, cap;
    int stopping;
} delay_state;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void swap(pending *a, pending *b) {
    pending t = *a;
    *a = *b;
    *b = t;
}

/* Adds P. Returns 0, or -1 out of memory. Under the lock. */
static int heap_push(delay_state *st, pending p) {
    if (st->count == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        pending *grown = realloc(st->heap, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        st->heap = grown;
        st->cap = cap;
    }
    size_t i = st->count++;
    st->heap[i] = p;
    while (i > 0 && st->heap[(i - 1) / 2].due_ns > st->heap[i].due_ns) {
        swap(&st->heap[(i - 1) / 2], &st->heap[i]);
        i = (i - 1) / 2;
    }
    return 0;
}

/* Removes and returns the earliest. Under the lock; COUNT > 0. */
static pending heap_pop(delay_state *st) {
    pending top = st->heap[0];
    st->heap[0] = st->heap[--st->count];
    for (size_t i = 0;;) {
        size_t least = i, l = 2 * i + 1, r = l + 1;
        if (l < st->count && st->heap[l].due_ns < st->heap[least].due_ns)
            least = l;
        if (r < st->count && st->heap[r].due_ns < st->heap[least].due_ns)
            least = r;
        if (least == i)
            break;
        swap(&st->heap[i], &st->heap[least]);
        i = least;
    }
    return top;
}

/* Finishes P with its result (outside the lock: the finish may free). */
static void finish(pending p) {
    redwork_reply *rep = redwork_deferred_reply(p.reply);
    cJSON *result = cJSON_CreateObject();
    if (result == NULL || cJSON_AddNumberToObject(result, "delayed_ms", (double)p.ms) == NULL) {
        cJSON_Delete(result);
        redwork_reply_error(rep, "internal", "out of memory");
    } else {
        redwork_reply_json(rep, result);
    }
    redwork_deferred_finish(p.reply);
}

static void *timer_main(void *arg) {
    delay_state *st = arg;
    pthread_mutex_lock(&st->lock);
    while (!st->stopping) {
        if (st->count == 0) {
            pthread_cond_wait(&st->changed, &st->lock);
            continue;
        }
        uint64_t due = st->heap[0].due_ns;
        if (due > now_ns()) {
            struct timespec at = {.tv_sec = (time_t)(due / 1000000000u),
                                  .tv_nsec = (long)(due % 1000000000u)};
            pthread_cond_timedwait(&st->changed, &st->lock, &at);
            continue;
        }
        pending p = heap_pop(st);
        pthread_mutex_unlock(&st->lock);
        finish(p);
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static int delay_init(const redwork_host *host, void **state) {
    (void)host;
    delay_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&st->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&st->lock, NULL);
    if (pthread_create(&st->timer, NULL, timer_main, st) != 0) {
        pthread_cond_destroy(&st->changed);
        pthread_mutex_destroy(&st->lock);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int delay_handle(void *state, const redwork_request *req, redwork_reply *rep) {
    delay_state *st = state;
    long long ms = 0;
    if (redwork_request_int(req, "ms", &ms) != 0 || ms < 0 || ms > DELAY_MAX_MS)
        return redwork_reply_error(rep, "bad_request", "ms must be an integer 0..%d",
                                   DELAY_MAX_MS);
    redwork_deferred *d = redwork_reply_defer(rep);
    if (d == NULL)
        return redwork_reply_error(rep, "overloaded", "too many deferred replies open");
    pending p = {now_ns() + (uint64_t)ms * 1000000u, ms, d};
    pthread_mutex_lock(&st->lock);
    int rc = heap_push(st, p);
    int earliest = rc == 0 && st->heap[0].reply == d;
    pthread_mutex_unlock(&st->lock);
    if (rc != 0) { /* deferred already: the error goes through the handle */
        redwork_reply_error(redwork_deferred_reply(d), "internal", "out of memory");
        redwork_deferred_finish(d);
    } else if (earliest) {
        pthread_cond_signal(&st->changed);
    }
    return 0;
}

static void delay_fini(void *state) {
    delay_state *st = state;
    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_signal(&st->changed);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->timer, NULL);
    while (st->count > 0) {
        pending p = heap_pop(st);
        redwork_reply_error(redwork_deferred_reply(p.reply), "shutting_down",
                            "the delay handler stopped");
        redwork_deferred_finish(p.reply);
    }
    free(st->heap);
    pthread_cond_destroy(&st->changed);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

REDWORK_HANDLER(.name = "delay",
                .description = "replies after ms milliseconds, deferred: no thread waits",
                .init = delay_init, .handle = delay_handle, .fini = delay_fini);

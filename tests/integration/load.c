/* load.c -- calls through libredwork for the topology tests (load.h). */
#include "load.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_outcome(redwork_result *res, void *arg)
{
    rw_load_call *c = arg;
    c->status = res->status;
    redwork_result_free(res);
    __atomic_store_n(&c->done_ms, rw_now_ms(), __ATOMIC_RELEASE); /* status before */
}

static void *load_main(void *arg)
{
    rw_load *l = arg;
    long long t0 = rw_now_ms();
    for (int i = 0; i < RW_LOAD_MAX && !atomic_load(&l->stop); i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "{\"i\":%d}", i);
        pthread_mutex_lock(&l->lock);
        l->calls[i].sent_ms = rw_now_ms();
        l->sent = i + 1;
        pthread_mutex_unlock(&l->lock);
        int published = redwork_call_async(l->client, "echo", payload, RW_LOAD_TIMEOUT_MS,
                                           on_outcome, &l->calls[i]) == 0;
        pthread_mutex_lock(&l->lock);
        l->calls[i].published = published;
        pthread_mutex_unlock(&l->lock);
        long long next = t0 + (long long)(i + 1) * RW_LOAD_INTERVAL_MS;
        long long now = rw_now_ms();
        if (next > now)
            sleep_ms(next - now);
    }
    return NULL;
}

int rw_load_start(rw_load *l, redwork_client *c)
{
    memset(l, 0, sizeof *l);
    l->client = c;
    pthread_mutex_init(&l->lock, NULL);
    atomic_store(&l->stop, 0);
    if (pthread_create(&l->thread, NULL, load_main, l) != 0)
        return -1;
    l->running = 1;
    return 0;
}

void rw_load_stop(rw_load *l)
{
    if (!l->running)
        return;
    atomic_store(&l->stop, 1);
    pthread_join(l->thread, NULL);
    l->running = 0;
}

/* The outcome time of call I (0: none yet). */
static long long done_ms(const rw_load *l, int i)
{
    return __atomic_load_n(&l->calls[i].done_ms, __ATOMIC_ACQUIRE);
}

/* The number of calls sent so far. */
static int sent(rw_load *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->sent;
    pthread_mutex_unlock(&l->lock);
    return n;
}

int rw_load_failover(rw_load *l, const char *what, long long fault_ms, long long switch_ms,
                     rw_failover *out)
{
    memset(out, 0, sizeof *out);
    out->fault_ms = fault_ms;
    out->switch_ms = switch_ms;
    for (long long deadline = rw_now_ms() + 10000;
         out->recovered_ms == 0 && rw_now_ms() < deadline; sleep_ms(10)) {
        int n = sent(l);
        for (int i = 0; i < n; i++) {
            long long done = done_ms(l, i);
            if (l->calls[i].sent_ms >= switch_ms && done != 0 && l->calls[i].status == REDWORK_OK &&
                (out->recovered_ms == 0 || done < out->recovered_ms))
                out->recovered_ms = done;
        }
    }
    sleep_ms(1500); /* the load goes on after the recovery */
    rw_load_stop(l);
    int pending = 1;
    for (long long deadline = rw_now_ms() + RW_LOAD_TIMEOUT_MS + 3000;
         pending && rw_now_ms() < deadline;) {
        pending = 0;
        for (int i = 0; i < l->sent; i++)
            pending += done_ms(l, i) == 0;
        if (pending)
            sleep_ms(20);
    }
    if (pending)
        return -1;

    size_t used = 0;
    out->sent = l->sent;
    for (int i = 0; i < l->sent; i++) {
        const rw_load_call *c = &l->calls[i];
        if (c->status == REDWORK_OK) {
            out->answered++;
            continue;
        }
        int lost = c->published && c->status == REDWORK_TIMEOUT;
        out->refused += !lost;
        out->lost += lost;
        if (lost && used + 16 < sizeof out->lost_at)
            used += (size_t)snprintf(out->lost_at + used, sizeof out->lost_at - used, " %+lld",
                                     c->sent_ms - switch_ms);
        out->failed_late += out->recovered_ms != 0 && c->sent_ms > out->recovered_ms + 500;
    }
    fprintf(stderr, "FAILOVER %s: switch %lld ms after the fault; first new call answered "
            "%lld ms after the switch; of %d calls %d answered, %d failed at once (the caller "
            "told: no master, a redirect, a lost connection), %d lost (no answer)%s%s%s\n",
            what, switch_ms - fault_ms,
            out->recovered_ms ? out->recovered_ms - switch_ms : -1, out->sent, out->answered,
            out->refused, out->lost, out->lost ? " (sent at, ms from the switch:" : "",
            out->lost ? out->lost_at : "", out->lost ? ")" : "");
    return 0;
}

void rw_load_assert_recovered(const rw_failover *f, const char *what, long long bound_ms)
{
    cr_assert_neq(f->recovered_ms, 0, "%s: no call made after the switch was answered", what);
    cr_assert_leq(f->recovered_ms - f->switch_ms, bound_ms,
                  "%s: the first new call was answered %lld ms after the switch", what,
                  f->recovered_ms - f->switch_ms);
    cr_assert_eq(f->failed_late, 0, "%s: %d calls failed after the recovery", what,
                  f->failed_late);
}

/* ---- a burst -------------------------------------------------------------- */

typedef struct burst {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int in_flight, ok, done;
} burst;

static void on_burst(redwork_result *res, void *arg)
{
    burst *b = arg;
    int ok = res->status == REDWORK_OK;
    redwork_result_free(res);
    pthread_mutex_lock(&b->lock);
    b->in_flight--;
    b->done++;
    b->ok += ok;
    pthread_cond_signal(&b->changed);
    pthread_mutex_unlock(&b->lock);
}

int rw_load_burst(redwork_client *c, int n, int window, int timeout_ms)
{
    /* On the heap: calls still in flight when this gives up complete later. */
    burst *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->changed, NULL);
    long long deadline = rw_now_ms() + 60000;
    int issued = 0;
    pthread_mutex_lock(&b->lock);
    while (b->done < n && rw_now_ms() < deadline) {
        while (issued < n && b->in_flight < window) {
            b->in_flight++;
            issued++;
            pthread_mutex_unlock(&b->lock);
            int rc = redwork_call_async(c, "echo", "{}", timeout_ms, on_burst, b);
            pthread_mutex_lock(&b->lock);
            if (rc != 0) { /* never issued: done, not ok */
                b->in_flight--;
                b->done++;
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->changed, &b->lock, &until);
    }
    int in_flight = b->in_flight, ok = b->ok;
    pthread_mutex_unlock(&b->lock);
    if (in_flight > 0)
        return -1; /* b stays: its calls still point at it */
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->changed);
    free(b);
    return ok;
}

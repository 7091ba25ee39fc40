/* test_queue.c -- the bounded work queue (framework/queue.h).
 *
 * Covers: queue_create(0), FIFO order, the capacity bound (QUEUE_FULL, the
 * caller keeps the item), trypop on empty, queue_depth, close (QUEUE_CLOSED,
 * poppers drain then get NULL, blocked poppers are woken), and many
 * producers with many consumers receiving every item exactly once. Threads
 * are joined against a deadline, so a broken queue fails instead of hanging. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "queue.h"

/* Items are small integers cast to pointers; 0 would be NULL, so +1. */
#define ITEM(n) ((void *)(uintptr_t)((n) + 1))
#define VALUE(p) ((size_t)(uintptr_t)(p) - 1)

/* Joins T, waiting at most SECONDS. Returns 0 if joined. */
static int join_within(pthread_t t, int seconds, void **ret) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return pthread_timedjoin_np(t, ret, &ts);
}

Test(queue, create_zero_capacity_is_null) {
    cr_assert_null(queue_create(0));
}

Test(queue, free_null_is_fine) {
    queue_free(NULL);
}

Test(queue, fifo_order) {
    queue *q = queue_create(8);
    cr_assert_not_null(q);
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(queue_push(q, ITEM(i)), QUEUE_OK);
    for (size_t i = 0; i < 8; i++) {
        void *p = queue_pop(q);
        cr_assert_not_null(p);
        cr_assert_eq(VALUE(p), i, "popped %zu, expected %zu", VALUE(p), i);
    }
    cr_assert_null(queue_trypop(q));
    queue_free(q);
}

Test(queue, fifo_order_across_wraparound) {
    /* Interleave pushes and pops so the ring wraps several times. */
    queue *q = queue_create(3);
    cr_assert_not_null(q);
    size_t next_in = 0, next_out = 0;
    for (int round = 0; round < 20; round++) {
        cr_assert_eq(queue_push(q, ITEM(next_in)), QUEUE_OK);
        next_in++;
        cr_assert_eq(queue_push(q, ITEM(next_in)), QUEUE_OK);
        next_in++;
        for (int k = 0; k < 2; k++) {
            void *p = queue_trypop(q);
            cr_assert_not_null(p);
            cr_assert_eq(VALUE(p), next_out);
            next_out++;
        }
    }
    cr_assert_eq(queue_depth(q), 0);
    queue_free(q);
}

Test(queue, capacity_bound) {
    queue *q = queue_create(3);
    cr_assert_not_null(q);
    cr_assert_eq(queue_push(q, ITEM(0)), QUEUE_OK);
    cr_assert_eq(queue_push(q, ITEM(1)), QUEUE_OK);
    cr_assert_eq(queue_push(q, ITEM(2)), QUEUE_OK);
    cr_assert_eq(queue_depth(q), 3);

    /* Full: refused, nothing changes, and the refused item is not in it. */
    cr_assert_eq(queue_push(q, ITEM(3)), QUEUE_FULL);
    cr_assert_eq(queue_depth(q), 3);

    /* Room again after one pop. */
    cr_assert_eq(VALUE(queue_trypop(q)), 0);
    cr_assert_eq(queue_push(q, ITEM(4)), QUEUE_OK);
    cr_assert_eq(queue_push(q, ITEM(5)), QUEUE_FULL);

    cr_assert_eq(VALUE(queue_trypop(q)), 1);
    cr_assert_eq(VALUE(queue_trypop(q)), 2);
    cr_assert_eq(VALUE(queue_trypop(q)), 4);
    cr_assert_null(queue_trypop(q));
    queue_free(q);
}

Test(queue, capacity_one) {
    queue *q = queue_create(1);
    cr_assert_not_null(q);
    cr_assert_eq(queue_push(q, ITEM(7)), QUEUE_OK);
    cr_assert_eq(queue_push(q, ITEM(8)), QUEUE_FULL);
    cr_assert_eq(VALUE(queue_pop(q)), 7);
    cr_assert_eq(queue_push(q, ITEM(8)), QUEUE_OK);
    cr_assert_eq(VALUE(queue_pop(q)), 8);
    queue_free(q);
}

Test(queue, trypop_on_empty_is_null) {
    queue *q = queue_create(4);
    cr_assert_not_null(q);
    cr_assert_null(queue_trypop(q));
    cr_assert_eq(queue_depth(q), 0);
    queue_free(q);
}

Test(queue, depth_follows_pushes_and_pops) {
    queue *q = queue_create(10);
    cr_assert_not_null(q);
    cr_assert_eq(queue_depth(q), 0);
    for (size_t i = 0; i < 5; i++) {
        queue_push(q, ITEM(i));
        cr_assert_eq(queue_depth(q), i + 1);
    }
    queue_pop(q);
    cr_assert_eq(queue_depth(q), 4);
    queue_trypop(q);
    cr_assert_eq(queue_depth(q), 3);
    queue_close(q);
    cr_assert_eq(queue_depth(q), 3, "close must not drop items");
    while (queue_trypop(q) != NULL)
        ;
    cr_assert_eq(queue_depth(q), 0);
    queue_free(q);
}

Test(queue, close_refuses_pushes_and_drains) {
    queue *q = queue_create(4);
    cr_assert_not_null(q);
    cr_assert_eq(queue_push(q, ITEM(0)), QUEUE_OK);
    cr_assert_eq(queue_push(q, ITEM(1)), QUEUE_OK);
    queue_close(q);
    queue_close(q); /* idempotent */

    cr_assert_eq(queue_push(q, ITEM(2)), QUEUE_CLOSED);
    cr_assert_eq(VALUE(queue_pop(q)), 0);
    cr_assert_eq(VALUE(queue_pop(q)), 1);
    cr_assert_null(queue_pop(q), "closed and empty: pop must return NULL");
    cr_assert_null(queue_pop(q), "and keep returning NULL");
    cr_assert_null(queue_trypop(q));
    queue_free(q);
}

Test(queue, close_of_full_queue_says_closed) {
    queue *q = queue_create(1);
    cr_assert_not_null(q);
    cr_assert_eq(queue_push(q, ITEM(0)), QUEUE_OK);
    queue_close(q);
    cr_assert_eq(queue_push(q, ITEM(1)), QUEUE_CLOSED);
    cr_assert_eq(VALUE(queue_trypop(q)), 0);
    queue_free(q);
}

/* ---- blocking pop ------------------------------------------------------ */

struct popper {
    queue *q;
    atomic_int started;
    void *got;
};

static void *popper_main(void *arg) {
    struct popper *p = arg;
    atomic_store(&p->started, 1);
    p->got = queue_pop(p->q);
    return NULL;
}

/* Waits (bounded) until every popper has announced it is about to pop. */
static void wait_started(struct popper *ps, int n) {
    uint64_t deadline = clock_now_us() + 10 * 1000000u;
    for (int i = 0; i < n; i++)
        while (!atomic_load(&ps[i].started)) {
            cr_assert_lt(clock_now_us(), deadline, "popper did not start");
            sched_yield();
        }
}

Test(queue, blocked_popper_gets_pushed_item) {
    queue *q = queue_create(2);
    cr_assert_not_null(q);
    struct popper p = {.q = q};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, popper_main, &p), 0);
    wait_started(&p, 1);
    cr_assert_eq(queue_push(q, ITEM(42)), QUEUE_OK);
    cr_assert_eq(join_within(t, 10, NULL), 0, "popper not woken by push");
    cr_assert_eq(VALUE(p.got), 42);
    queue_free(q);
}

Test(queue, close_wakes_every_blocked_popper) {
    enum { N = 4 };
    queue *q = queue_create(2);
    cr_assert_not_null(q);
    struct popper ps[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        ps[i] = (struct popper){.q = q, .got = ITEM(99)};
        cr_assert_eq(pthread_create(&t[i], NULL, popper_main, &ps[i]), 0);
    }
    wait_started(ps, N);
    queue_close(q);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(join_within(t[i], 10, NULL), 0,
                     "popper %d not woken by close", i);
        cr_assert_null(ps[i].got);
    }
    queue_free(q);
}

/* ---- many producers, many consumers ------------------------------------ */

enum { PRODUCERS = 4, CONSUMERS = 4, PER_PRODUCER = 25000 };
#define TOTAL (PRODUCERS * PER_PRODUCER)

struct mpmc {
    queue *q;
    uint64_t deadline_us;
    atomic_uchar seen[TOTAL];
    atomic_int timed_out;
    atomic_int out_of_order;
};

struct producer {
    struct mpmc *m;
    int index;
};

static void *producer_main(void *arg) {
    struct producer *p = arg;
    for (size_t i = 0; i < PER_PRODUCER; i++) {
        void *item = ITEM((size_t)p->index * PER_PRODUCER + i);
        int rc;
        while ((rc = queue_push(p->m->q, item)) == QUEUE_FULL) {
            if (clock_now_us() > p->m->deadline_us) {
                atomic_store(&p->m->timed_out, 1);
                return NULL;
            }
            sched_yield();
        }
        if (rc != QUEUE_OK) {
            atomic_store(&p->m->timed_out, 1);
            return NULL;
        }
    }
    return NULL;
}

static void *consumer_main(void *arg) {
    struct mpmc *m = arg;
    /* Within one consumer, each producer's items must come in order. */
    long long last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    void *item;
    while ((item = queue_pop(m->q)) != NULL) {
        size_t v = VALUE(item);
        if (v >= TOTAL) {
            atomic_fetch_add(&m->out_of_order, 1);
            continue;
        }
        atomic_fetch_add(&m->seen[v], 1);
        size_t from = v / PER_PRODUCER;
        long long seq = (long long)(v % PER_PRODUCER);
        if (seq <= last[from])
            atomic_fetch_add(&m->out_of_order, 1);
        last[from] = seq;
    }
    return NULL;
}

Test(queue, many_producers_many_consumers, .timeout = 60) {
    static struct mpmc m; /* 100 KB: keep it off the stack */
    memset(&m, 0, sizeof m);
    m.q = queue_create(64);
    cr_assert_not_null(m.q);
    m.deadline_us = clock_now_us() + 30 * 1000000u;

    pthread_t cons[CONSUMERS], prod[PRODUCERS];
    struct producer pa[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++)
        cr_assert_eq(pthread_create(&cons[i], NULL, consumer_main, &m), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (struct producer){.m = &m, .index = i};
        cr_assert_eq(pthread_create(&prod[i], NULL, producer_main, &pa[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        cr_assert_eq(join_within(prod[i], 40, NULL), 0, "producer %d hung", i);
    queue_close(m.q);
    for (int i = 0; i < CONSUMERS; i++)
        cr_assert_eq(join_within(cons[i], 40, NULL), 0, "consumer %d hung", i);

    cr_assert_eq(atomic_load(&m.timed_out), 0, "producers gave up: queue stuck");
    cr_assert_eq(atomic_load(&m.out_of_order), 0,
                 "a producer's items came out of order");
    size_t missing = 0, doubled = 0;
    for (size_t i = 0; i < TOTAL; i++) {
        unsigned char n = atomic_load(&m.seen[i]);
        if (n == 0)
            missing++;
        else if (n > 1)
            doubled++;
    }
    cr_assert_eq(missing, 0, "%zu items never received", missing);
    cr_assert_eq(doubled, 0, "%zu items received twice", doubled);
    cr_assert_eq(queue_depth(m.q), 0);
    queue_free(m.q);
}

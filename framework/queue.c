/* queue.c -- the bounded work queue between the dispatcher and the pool.
 *
 * DESIGN: a ring buffer of CAPACITY pointers (and the time each was
 * pushed) under one mutex, with one condition variable for poppers. The
 * dispatcher pushes a burst under one lock and says how many sleeping
 * poppers to wake: as many as the work needs, not one per item, for a
 * thread woken to find nothing costs two context switches. Producers never wait: the
 * dispatcher must keep reading Redis even when the pool is saturated; it
 * asks queue_room() before it takes work. Consumers take one item at a
 * time, so a slow handler never holds back items another thread could run,
 * and wait on the condition while the queue is open and empty. Closing wakes every consumer; they drain the
 * remaining items and then get NULL, which is how the pool stops without
 * cancelling threads. */
#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    void **items;
    uint64_t *pushed_us;
    size_t capacity;
    size_t head; /* index of the oldest item */
    size_t count;
    atomic_size_t depth; /* count, for readers that take no lock */
    size_t waiting; /* poppers asleep on nonempty */
    atomic_size_t sleepers; /* waiting, for readers that take no lock */
    int closed;
};

queue *queue_create(size_t capacity) {
    if (capacity == 0)
        return NULL;
    queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->items = calloc(capacity, sizeof *q->items);
    q->pushed_us = calloc(capacity, sizeof *q->pushed_us);
    if (q->items == NULL || q->pushed_us == NULL)
        goto err;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        goto err;
    if (pthread_cond_init(&q->nonempty, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        goto err;
    }
    q->capacity = capacity;
    atomic_init(&q->depth, 0);
    atomic_init(&q->sleepers, 0);
    return q;
err:
    free(q->items);
    free(q->pushed_us);
    free(q);
    return NULL;
}

void queue_free(queue *q) {
    if (q == NULL)
        return;
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    free(q->pushed_us);
    free(q);
}

/* Appends ITEM pushed at NOW; the caller holds the lock, the queue is
 * open and has room. */
static void add_locked(queue *q, void *item, uint64_t now) {
    q->pushed_us[(q->head + q->count) % q->capacity] = now;
    q->items[(q->head + q->count) % q->capacity] = item;
    q->count++;
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
}

/* How many of N wake-ups would find a sleeper and an item; the caller
 * holds the lock. */
static size_t wakeable_locked(const queue *q, size_t n) {
    size_t k = n < q->count ? n : q->count;
    return k < q->waiting ? k : q->waiting;
}

/* Wakes N sleepers. Called after the lock is released: a sleeper woken
 * while it is held would wake only to block on it (two more system calls).
 * No wake-up is lost: each of the N was counted in `waiting` under the
 * lock, so it is inside pthread_cond_wait before this signal. */
static void wake(queue *q, size_t n) {
    for (size_t i = 0; i < n; i++)
        pthread_cond_signal(&q->nonempty);
}

int queue_push(queue *q, void *item) {
    size_t woken = 0;
    pthread_mutex_lock(&q->lock);
    int status = q->closed ? QUEUE_CLOSED
                 : q->count == q->capacity ? QUEUE_FULL : QUEUE_OK;
    if (status == QUEUE_OK) {
        add_locked(q, item, clock_now_us());
        woken = wakeable_locked(q, 1);
    }
    pthread_mutex_unlock(&q->lock);
    wake(q, woken);
    return status;
}

size_t queue_push_many(queue *q, void *const *items, size_t n, size_t wakes) {
    size_t pushed = 0;
    uint64_t now = clock_now_us();
    pthread_mutex_lock(&q->lock);
    while (!q->closed && pushed < n && q->count < q->capacity)
        add_locked(q, items[pushed++], now);
    size_t woken = wakeable_locked(q, wakes < pushed ? wakes : pushed);
    pthread_mutex_unlock(&q->lock);
    wake(q, woken);
    return pushed;
}

size_t queue_wake(queue *q, size_t n) {
    pthread_mutex_lock(&q->lock);
    size_t woken = wakeable_locked(q, n);
    pthread_mutex_unlock(&q->lock);
    wake(q, woken);
    return woken;
}

size_t queue_sleepers(queue *q) {
    return atomic_load_explicit(&q->sleepers, memory_order_relaxed);
}

uint64_t queue_oldest_us(queue *q) {
    pthread_mutex_lock(&q->lock);
    uint64_t oldest = q->count > 0 ? q->pushed_us[q->head] : 0;
    pthread_mutex_unlock(&q->lock);
    return oldest;
}

/* Takes the oldest item; the caller holds the lock and count > 0. */
static void *take_locked(queue *q) {
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->capacity;
    q->count--;
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
    return item;
}

void *queue_pop(queue *q) {
    void *item = NULL;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed) {
        atomic_store_explicit(&q->sleepers, ++q->waiting, memory_order_relaxed);
        pthread_cond_wait(&q->nonempty, &q->lock);
        atomic_store_explicit(&q->sleepers, --q->waiting, memory_order_relaxed);
    }
    if (q->count > 0)
        item = take_locked(q);
    pthread_mutex_unlock(&q->lock);
    return item;
}

void *queue_trypop(queue *q) {
    if (atomic_load_explicit(&q->depth, memory_order_relaxed) == 0)
        return NULL; /* empty, or an item pushed just now: next time */
    void *item = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->count > 0)
        item = take_locked(q);
    pthread_mutex_unlock(&q->lock);
    return item;
}

void queue_close(queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

size_t queue_depth(queue *q) {
    return atomic_load_explicit(&q->depth, memory_order_relaxed);
}

size_t queue_room(queue *q) {
    return q->capacity - atomic_load_explicit(&q->depth, memory_order_relaxed);
}

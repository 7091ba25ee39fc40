/* queue.c -- the bounded work queue between the dispatcher and the pool.
 *
 * DESIGN: a ring buffer of CAPACITY pointers under one mutex, with one
 * condition variable for poppers. The dispatcher pushes a burst under one
 * lock and wakes one sleeping popper per item, none when every popper is
 * awake: a busy pool costs no system call. Producers never wait: the
 * dispatcher must keep reading Redis even when the pool is saturated; it
 * asks queue_room() before it takes work. Consumers take one item at a
 * time, so a slow handler never holds back items another thread could run,
 * and wait on the condition while the queue is open and empty. Closing wakes every consumer; they drain the
 * remaining items and then get NULL, which is how the pool stops without
 * cancelling threads. */
#include "queue.h"

#include <pthread.h>
#include <stdlib.h>

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    void **items;
    size_t capacity;
    size_t head; /* index of the oldest item */
    size_t count;
    size_t waiting; /* poppers asleep on nonempty */
    int closed;
};

queue *queue_create(size_t capacity) {
    if (capacity == 0)
        return NULL;
    queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->items = calloc(capacity, sizeof *q->items);
    if (q->items == NULL)
        goto err;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        goto err;
    if (pthread_cond_init(&q->nonempty, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        goto err;
    }
    q->capacity = capacity;
    return q;
err:
    free(q->items);
    free(q);
    return NULL;
}

void queue_free(queue *q) {
    if (q == NULL)
        return;
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    free(q);
}

/* Appends ITEM; the caller holds the lock, the queue is open and has room. */
static void add_locked(queue *q, void *item) {
    q->items[(q->head + q->count) % q->capacity] = item;
    q->count++;
}

int queue_push(queue *q, void *item) {
    pthread_mutex_lock(&q->lock);
    int status = q->closed ? QUEUE_CLOSED
                 : q->count == q->capacity ? QUEUE_FULL : QUEUE_OK;
    if (status == QUEUE_OK) {
        add_locked(q, item);
        if (q->waiting > 0)
            pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

size_t queue_push_many(queue *q, void *const *items, size_t n) {
    size_t pushed = 0;
    pthread_mutex_lock(&q->lock);
    while (!q->closed && pushed < n && q->count < q->capacity)
        add_locked(q, items[pushed++]);
    /* One wake-up per item, and none for a popper that is not asleep. */
    for (size_t i = 0; i < pushed && i < q->waiting; i++)
        pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
    return pushed;
}

/* Takes the oldest item; the caller holds the lock and count > 0. */
static void *take_locked(queue *q) {
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->capacity;
    q->count--;
    return item;
}

void *queue_pop(queue *q) {
    void *item = NULL;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed) {
        q->waiting++;
        pthread_cond_wait(&q->nonempty, &q->lock);
        q->waiting--;
    }
    if (q->count > 0)
        item = take_locked(q);
    pthread_mutex_unlock(&q->lock);
    return item;
}

void *queue_trypop(queue *q) {
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
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t queue_room(queue *q) {
    pthread_mutex_lock(&q->lock);
    size_t n = q->capacity - q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

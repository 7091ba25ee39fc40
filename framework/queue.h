/* queue.h -- the bounded work queue between the dispatcher and the pool.
 *
 * A fixed-capacity FIFO of pointers, safe for many producers and many
 * consumers. Pushing never blocks (a full queue is the caller's cue to answer
 * 'overloaded'); popping blocks until an item arrives or the queue is closed
 * and empty, which is how the pool is stopped. The queue never owns the items:
 * whoever pops one owns it. */
#ifndef REDWORK_QUEUE_H
#define REDWORK_QUEUE_H

#include <stddef.h>

typedef struct queue queue;

enum queue_status { QUEUE_OK = 0, QUEUE_FULL = -1, QUEUE_CLOSED = -2 };

/* Returns a new empty queue holding at most CAPACITY (>= 1) items, or NULL
 * if CAPACITY is 0 or memory ran out. */
queue *queue_create(size_t capacity);

/* Frees the queue. Items still in it are not freed: drain it first with
 * queue_trypop(). Accepts NULL. No thread may be using the queue. */
void queue_free(queue *q);

/* Appends ITEM (not NULL). Never blocks. Returns QUEUE_OK, QUEUE_FULL, or
 * QUEUE_CLOSED; on failure the caller still owns ITEM. */
int queue_push(queue *q, void *item);

/* Appends the N items of ITEMS in order, as far as there is room: one lock
 * and one wake-up for a burst. Never blocks. Returns how many were pushed
 * (the first ones); the caller still owns the rest. 0 when closed. */
size_t queue_push_many(queue *q, void *const *items, size_t n);

/* Removes the oldest item, waiting while the queue is open and empty.
 * Returns NULL once the queue is closed and empty. */
void *queue_pop(queue *q);

/* Removes the oldest item without waiting; NULL if the queue is empty. */
void *queue_trypop(queue *q);

/* Closes the queue: pushes fail from now on, poppers drain what is left and
 * then get NULL. Wakes every waiting thread. Idempotent. */
void queue_close(queue *q);

/* The number of items in the queue now (a snapshot). */
size_t queue_depth(queue *q);

/* How many more items fit now (a snapshot). */
size_t queue_room(queue *q);

#endif

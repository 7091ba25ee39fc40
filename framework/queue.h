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
#include <stdint.h>

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

/* Appends the N items of ITEMS in order, as far as there is room, under
 * one lock, and wakes at most WAKE sleeping poppers (the caller decides
 * how many threads the work needs: queue_wake() can add more later).
 * Never blocks. Returns how many were pushed (the first ones); the caller
 * still owns the rest. 0 when closed. */
size_t queue_push_many(queue *q, void *const *items, size_t n, size_t wake);

/* Wakes up to N sleeping poppers if items wait. Returns how many. */
size_t queue_wake(queue *q, size_t n);

/* Poppers asleep now (a snapshot, without a lock). */
size_t queue_sleepers(queue *q);

/* When the oldest item was pushed (clock_now_us()), or 0 if none. */
uint64_t queue_oldest_us(queue *q);

/* Removes the oldest item, waiting while the queue is open and empty.
 * Returns NULL once the queue is closed and empty. */
void *queue_pop(queue *q);

/* Removes the oldest item without waiting; NULL if the queue is empty (or
 * an item is being pushed at this very moment). */
void *queue_trypop(queue *q);

/* Closes the queue: pushes fail from now on, poppers drain what is left and
 * then get NULL. Wakes every waiting thread. Idempotent. */
void queue_close(queue *q);

/* The number of items in the queue now (a snapshot, taken without a
 * lock: any thread, as often as it likes). */
size_t queue_depth(queue *q);

/* How many more items fit now (a snapshot). */
size_t queue_room(queue *q);

#endif

/* pool.h -- the thread pool that runs handlers.
 *
 * Each thread pops a request from the queue, answers 'timeout' if it waited
 * longer than its timeout_ms, else runs its handler, and publishes the reply
 * on its own connection. The pool stops when the queue is closed and empty:
 * closing the queue is the only way to stop it. Pool threads block every
 * signal. */
#ifndef REDWORK_POOL_H
#define REDWORK_POOL_H

#include <stddef.h>

#include "config.h"
#include "queue.h"
#include "stats.h"

typedef struct pool pool;

/* Starts THREADS threads on Q. Arguments are borrowed and must outlive the
 * pool. Returns NULL with ERR if a thread could not start (those started
 * are stopped by closing Q). */
pool *pool_start(const config *cfg, size_t threads, queue *q, stats *st,
                 char *err, size_t errlen);

/* After queue_close(): waits up to TIMEOUT_MS for every thread to finish
 * the queue and exit. Returns 0 once all are joined, -1 on timeout (the
 * threads that are still running keep running). */
int pool_wait(pool *p, long long timeout_ms);

/* Frees the pool. Only after pool_wait() returned 0. Accepts NULL. */
void pool_free(pool *p);

#endif

/* pool.h -- the thread pool that runs handlers.
 *
 * Each thread pops a request from the queue, answers 'timeout' if it waited
 * longer than its timeout_ms, else builds its JSON tree and runs its
 * handler, writes the reply commands into the request, and hands the
 * request straight back through DONE, saying whether it goes straight on
 * to another request (so the dispatcher may leave a burst's replies to be
 * written together, at most DISPATCH_DEFER_MAX_MS later). The pool stops when the queue is closed and
 * empty: closing the queue is the only way to stop it. Pool threads block
 * every signal and never touch Redis. */
#ifndef REDWORK_POOL_H
#define REDWORK_POOL_H

#include <stddef.h>

#include "config.h"
#include "defer.h"
#include "plugin.h"
#include "queue.h"
#include "request.h"

typedef struct pool pool;

/* Called on a pool thread with each request whose reply is written
 * (REQ->out), MORE 1 if the thread has already taken its next request;
 * and with NULL when the thread exits. */
typedef void pool_done_fn(void *ctx, request *req, int more);

/* Starts THREADS threads on Q, running the handlers of PLUGINS, whose
 * replies may be deferred to DS (a request whose handler deferred it comes
 * back through DONE with REQ->deferred set and no reply written; at its
 * end each thread runs the handlers' thread_fini). Arguments are borrowed
 * and must outlive the pool. Returns NULL with ERR if a thread could not start (those started
 * are stopped by closing Q). */
pool *pool_start(const config *cfg, size_t threads, queue *q, plugin_set *plugins,
                 deferrals *ds, pool_done_fn *done, void *ctx, char *err, size_t errlen);

/* After queue_close(): waits up to TIMEOUT_MS (-1: for ever) for every
 * thread to finish the queue and exit. Returns 0 once all are joined, -1
 * on timeout (the threads still running keep running). */
int pool_wait(pool *p, long long timeout_ms);

/* Frees the pool. Only after pool_wait() returned 0. Accepts NULL. */
void pool_free(pool *p);

#endif

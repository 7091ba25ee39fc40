/* dispatch.h -- the dispatcher: the thread that owns the Redis I/O.
 *
 * One event-loop thread holds every connection the request path uses --
 * the source's (subscriber, or stream reader) and the command wire, which
 * carries claims, replies, acknowledgements and the heartbeat. It takes
 * each message from the source, validates, routes and (with claim = on)
 * claims it, and queues it for the pool or answers it at once; the pool
 * hands each finished request back, and its reply goes out in the next
 * write. Pool threads never touch Redis. */
#ifndef REDWORK_DISPATCH_H
#define REDWORK_DISPATCH_H

#include <stddef.h>

#include "config.h"
#include "defer.h"
#include "plugin.h"
#include "queue.h"
#include "request.h"
#include "metrics.h"

/* How long a daemon with claim = on leaves a request it has no room for
 * (its queue and its parked requests full) to the other daemons before it
 * claims it to answer 'overloaded'. */
#define DISPATCH_OVERLOAD_GRACE_MS 50
/* A pool thread that goes straight on to its next request does not wake
 * the loop for the reply it just made; the loop looks for such replies at
 * least this often while requests are at the pool, so a reply waits at
 * most this long behind a slow neighbour -- unless the daemon is busy
 * (holds all the work it wants), when its rounds are a few ms apart. */
#define DISPATCH_DEFER_MAX_MS 1
/* After shutdown_timeout_ms: how long the replies already made still get
 * to reach Redis. */
#define DISPATCH_FLUSH_GRACE_MS 500

typedef struct dispatcher dispatcher;

/* Connects the command wire and the source and subscribes (or makes the
 * consumer groups), blocking for at most the connect timeout: when it
 * returns, requests are being received, and queued once the pool runs.
 * It counts in slot SLOT of M, and keeps that slot's gauges and health.
 * HANDLERS is the list for the heartbeat (copied). The other arguments are
 * borrowed and must outlive the dispatcher. Returns NULL with ERR naming
 * the server, channel or stream on failure. */
dispatcher *dispatch_create(const config *cfg, plugin_set *plugins, queue *q, metrics *m,
                            size_t slot, const char *handlers, char *err, size_t errlen);

/* The pool's hand-back (a pool_done_fn, with the dispatcher as CTX): a
 * finished request, or NULL when a pool thread exits. Any thread. */
void dispatch_handback(void *ctx, request *req, int more);

/* Where the pool's handlers defer their replies to (the loop answers
 * them). Owned by D. */
deferrals *dispatch_deferrals(dispatcher *d);

/* Starts the loop's thread. Returns 0, or -1 if it could not start. */
int dispatch_start(dispatcher *d);

/* Replaces the handler names the heartbeat shows (copied). Any thread. */
void dispatch_set_handlers(dispatcher *d, const char *names);

/* Asks the thread to stop: stop taking requests, let the pool finish the
 * queue, write every reply made; at shutdown_timeout_ms answer what is
 * still queued 'shutting_down' (a stream entry is left pending instead)
 * and give the replies made DISPATCH_FLUSH_GRACE_MS more. Returns at once;
 * any thread. */
void dispatch_stop(dispatcher *d);

/* Waits for the thread to end (after dispatch_stop). Returns 0 if the
 * drain finished in time, 1 if shutdown_timeout_ms ran out, -1 if the
 * thread was not started. */
int dispatch_join(dispatcher *d);

/* Frees the dispatcher (after dispatch_join, and after the pool stopped
 * handing requests back). Accepts NULL. */
void dispatch_free(dispatcher *d);

#endif

/* dispatch.h -- the dispatcher: the thread that reads requests from Redis.
 *
 * It owns the subscriber connection (SUBSCRIBE for plain channels,
 * PSUBSCRIBE for globs), runs each message once even when overlapping
 * subscriptions deliver it twice, validates and routes it, and pushes it on
 * the work queue; what it cannot queue it answers at once on its own reply
 * connection. It reconnects and resubscribes when Redis goes away. */
#ifndef REDWORK_DISPATCH_H
#define REDWORK_DISPATCH_H

#include <stddef.h>

#include "config.h"
#include "plugin.h"
#include "queue.h"
#include "stats.h"

typedef struct dispatcher dispatcher;

/* Connects and subscribes to every configured channel, waiting for Redis to
 * confirm each: when it returns, requests are being received (and buffered
 * until dispatch_start). All arguments are borrowed and must outlive the
 * dispatcher. Returns NULL with ERR naming the server or channel on failure. */
dispatcher *dispatch_create(const config *cfg, plugin_set *plugins,
                            queue *q, stats *st, char *err, size_t errlen);

/* Starts the dispatcher thread. Returns 0, or -1 if it could not start. */
int dispatch_start(dispatcher *d);

/* Asks the thread to stop taking requests: it unsubscribes, queues what
 * Redis had already delivered, and exits. Returns at once; thread-safe. */
void dispatch_stop(dispatcher *d);

/* Waits for the thread to exit. Returns 0, or -1 if it was not started. */
int dispatch_join(dispatcher *d);

/* Frees the dispatcher (after dispatch_join). Accepts NULL. */
void dispatch_free(dispatcher *d);

#endif

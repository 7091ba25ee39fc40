/* watch.h -- following the master when Sentinel moves it.
 *
 * With [redis] sentinels, one push wire to a sentinel is SUBSCRIBEd to
 * +switch-master. When a failover names this daemon's master, the resolver
 * learns the new address and the watcher's function runs: the dispatcher
 * drops its connections, which reconnect to the new master at once
 * instead of when Sentinel turns the old master into a replica (seconds
 * later) or when it fails. It belongs to the event loop's thread. */
#ifndef REDWORK_WATCH_H
#define REDWORK_WATCH_H

#include <stddef.h>

#include "config.h"
#include "loop.h"

typedef struct watch watch;

/* The master moved to NEW_ADDRESS ("host:port"). */
typedef void watch_fn(void *ctx, const char *new_address);

/* A watch of CFG's sentinels (cfg->sentinel not NULL) on LP, calling
 * ON_SWITCH(CTX). Not connected yet. NULL out of memory. */
watch *watch_create(loop *lp, const config *cfg, watch_fn *on_switch, void *ctx);

/* Connects to a sentinel and subscribes, blocking for at most the connect
 * timeout; afterwards a lost sentinel is replaced in the background.
 * Returns 0, or -1 with ERR naming the sentinels. */
int watch_start(watch *w, char *err, size_t errlen);

/* Frees. Accepts NULL. */
void watch_free(watch *w);

#endif

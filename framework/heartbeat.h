/* heartbeat.h -- the liveness key redwork:worker:<id>.
 *
 * A hash (pid, host, channels, handlers, started, counters, queue depth)
 * refreshed by heartbeat_beat() about every second with a short PEXPIRE,
 * so `redwork stats` lists live workers and a stalled one disappears. It has
 * its own connection and belongs to one thread. */
#ifndef REDWORK_HEARTBEAT_H
#define REDWORK_HEARTBEAT_H

#include <stddef.h>

#include "config.h"
#include "stats.h"

#define HEARTBEAT_PREFIX "redwork:worker:"
#define HEARTBEAT_TTL_MS 3000

typedef struct heartbeat heartbeat;

/* A heartbeat for this daemon. HANDLERS is copied. NULL when out of memory. */
heartbeat *heartbeat_create(const config *cfg, const char *handlers,
                            stats *st);

/* Replaces the handler names written from now on (copied). Returns 0, or
 * -1 out of memory (the old names stay). */
int heartbeat_set_handlers(heartbeat *hb, const char *handlers);

/* Writes the key now with QUEUE_DEPTH. Returns 0, or -1 if Redis failed
 * (logged once per change between working and failing). */
int heartbeat_beat(heartbeat *hb, size_t queue_depth);

/* Deletes the key (best effort) and frees. Accepts NULL. */
void heartbeat_free(heartbeat *hb);

#endif

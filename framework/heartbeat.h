/* heartbeat.h -- the liveness key redwork:worker:<id>.
 *
 * A hash (pid, host, channels, handlers, started, counters, queue depth)
 * written by heartbeat_beat() about every second with a short PEXPIRE, so
 * `redwork stats` lists live workers and a stalled one disappears. It is
 * written on the event loop's command wire and belongs to that thread. */
#ifndef REDWORK_HEARTBEAT_H
#define REDWORK_HEARTBEAT_H

#include <stddef.h>

#include "config.h"
#include "stats.h"
#include "wire.h"

typedef struct heartbeat heartbeat;

/* A heartbeat written on W. HANDLERS is copied. NULL out of memory. */
heartbeat *heartbeat_create(const config *cfg, wire *w, const char *handlers,
                            stats *st);

/* Replaces the handler names written from now on (copied). Returns 0, or
 * -1 out of memory (the old names stay). */
int heartbeat_set_handlers(heartbeat *hb, const char *handlers);

/* Writes the key with QUEUE_DEPTH and BUSY (threads running a handler), if
 * the wire is up. A failure is logged
 * once per change between working and failing. */
void heartbeat_beat(heartbeat *hb, size_t queue_depth, size_t busy);

/* Deletes the key (written, not waited for). */
void heartbeat_delete(heartbeat *hb);

/* Frees. Accepts NULL. */
void heartbeat_free(heartbeat *hb);

#endif

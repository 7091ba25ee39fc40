/* stats.h -- the daemon's counters. They live in the worker's metrics slot
 * (metrics.h), so a respawned worker goes on from them; counted by the modules
 * of the event loop's thread, the one writer; read by the heartbeat on that
 * thread and by anyone else at any time: every field is atomic. With one
 * writer an increment needs no locked instruction, only a load and a
 * store that no reader sees torn. */
#ifndef REDWORK_STATS_H
#define REDWORK_STATS_H

#include <stdatomic.h>

typedef struct stats {
    atomic_ullong received;   /* messages read from Redis */
    atomic_ullong duplicates; /* extra copies from overlapping subscriptions */
    atomic_ullong rejected;   /* no usable req_id: logged, not answered */
    atomic_ullong requests;   /* replies published, ok or error */
    atomic_ullong errors;     /* of those, error replies */
    atomic_ullong lost;       /* replies that could not be published */
    atomic_ullong unstored;   /* reply_store = list: published, but Redis
                               * refused to store it (maxmemory) */
    atomic_ullong claims_lost; /* dropped: the claim key existed (another
                                * daemon took it, or the req_id was reused
                                * within claim_ttl_ms) */
    atomic_ullong reconnects;   /* connections to Redis made again after a loss */
    atomic_ullong dead_letters; /* stream entries moved to <stream>:dead */
} stats;

#define stats_add(field)                                                          \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + 1, \
                          memory_order_relaxed)
#define stats_get(field) atomic_load_explicit(&(field), memory_order_relaxed)

#endif

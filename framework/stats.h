/* stats.h -- the daemon's counters, shared by the event loop's modules and
 * the heartbeat. Owned by main; every field is atomic, so any thread may
 * bump or read them without a lock. */
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
    atomic_ullong claims_lost; /* dropped: the claim key existed (another
                                * daemon took it, or the req_id was reused
                                * within claim_ttl_ms) */
} stats;

#define stats_add(field) atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)
#define stats_get(field) atomic_load_explicit(&(field), memory_order_relaxed)

#endif

/* holds.h -- the stream entries a daemon holds: read (or taken over) and
 * not yet acknowledged.
 *
 * An entry is held from the moment XREADGROUP or XAUTOCLAIM hands it over
 * until Redis has answered the XACK for it; while held it is touched
 * (XCLAIM ... JUSTID) often enough that no daemon takes it for an orphan.
 * A hold is a small struct embedded in the request that carries the
 * entry, so holding costs no allocation. Everything here belongs to the
 * event loop's thread. */
#ifndef REDWORK_HOLDS_H
#define REDWORK_HOLDS_H

#include <stddef.h>

#include "buffer.h"

#define HOLD_ID_MAX 48 /* a stream entry id: two 64-bit numbers and a '-' */

typedef struct holds holds;

typedef struct hold {
    struct hold *prev, *next;
    holds *set;          /* NULL while not held */
    const char *stream;  /* the stream key, borrowed from the config */
    char id[HOLD_ID_MAX];
} hold;

struct holds {
    hold head;           /* a ring: head.next is the oldest */
    size_t count;
};

/* An empty set. Cannot fail. */
void holds_init(holds *set);

/* Holds H (its stream and id set): it is touched from now on. H must not
 * be held already. */
void holds_add(holds *set, hold *h);

/* Lets H go, if held: nothing touches it any more. */
void hold_release(hold *h);

/* 1 if H is held. */
static inline int hold_is_held(const hold *h) { return h->set != NULL; }

/* Appends to OUT one command per stream in STREAMS (N of them) that has
 * held entries: XCLAIM <stream> <group> <consumer> 0 <ids...> JUSTID,
 * which resets their idle time without counting a delivery. Returns how
 * many commands, or -1 out of memory. */
int holds_touch(const holds *set, const char *const *streams, size_t n,
                const char *group, const char *consumer, buffer *out);

#endif

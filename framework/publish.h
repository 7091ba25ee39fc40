/* publish.h -- the publisher: the one writer of results to Redis.
 *
 * It takes a request whose `out` holds whole commands -- a reply (PUBLISH,
 * and RPUSH + PEXPIRE with reply_store = list), a dead letter, or both --
 * writes them on the command wire and, for a stream entry, XACK and XDEL
 * in the same round trip after them. It keeps the request until Redis has
 * answered every one of those commands; then it releases the entry's hold
 * (the XACK is answered: nothing more to touch) and recycles the request.
 * This is the one place where a stream entry's acknowledgement ends.
 *
 * While Redis is away, what is unanswered waits and is written again when
 * the wire is back; a reply is lost (counted and logged, rate-limited, with
 * its channel) only when Redis refuses it, when it waited longer than
 * PUBLISH_RETRY_MAX_MS for Redis, or when the daemon stops before Redis
 * took it. The publisher belongs to the event loop's thread. */
#ifndef REDWORK_PUBLISH_H
#define REDWORK_PUBLISH_H

#include <stddef.h>

#include "config.h"
#include "request.h"
#include "metrics.h"
#include "wire.h"

#define PUBLISH_RETRY_MAX_MS 30000

typedef struct publisher publisher;

/* A publisher writing on W, counting in slot SLOT of M, giving answered
 * requests back to CACHE. All borrowed. NULL out of memory. */
publisher *publisher_create(const config *cfg, wire *w, metrics *m, size_t slot,
                            request_cache *cache);

/* Loses (counts and logs) what still waits, releases its holds, recycles
 * its requests, frees. Accepts NULL. */
void publisher_free(publisher *p);

/* Takes REQ and writes its commands (REQ->commands of them in REQ->out)
 * now if the wire is up, else when it is back. A request whose reply could
 * not be made (REQ->lost) is counted lost; its entry, if any, is released
 * unacknowledged, to be taken over and run again. */
void publisher_send(publisher *p, request *req);

/* The wire is back: writes again everything unanswered, oldest first. */
void publisher_wire_up(publisher *p);

/* Loses the replies that have waited longer than PUBLISH_RETRY_MAX_MS. */
void publisher_expire(publisher *p);

/* Requests taken and not yet answered by Redis. */
size_t publisher_waiting(const publisher *p);

#endif

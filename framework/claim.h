/* claim.h -- claims: which of several daemons serves a Pub/Sub request.
 *
 * Every daemon on a channel receives every request; with claim = on each
 * one that wants a request sends SET <claim_prefix><req_id> <worker-id> NX
 * PX <claim_ttl_ms>, and only the daemon whose SET took serves it. Claims
 * are pipelined on the command wire and their answers handled as they
 * arrive, so the dispatcher never waits for them. A claim refused by Redis
 * (an ACL without SET, say) is served anyway, with a rate-limited
 * warning: better twice than never. A claim whose answer was lost with the
 * connection is sent again when the wire is back, with a GET of the key,
 * so that a SET that did take the first time is still recognised as ours.
 * Claims belong to the event loop's thread. */
#ifndef REDWORK_CLAIM_H
#define REDWORK_CLAIM_H

#include <stddef.h>

#include "config.h"
#include "request.h"
#include "wire.h"

typedef struct claims claims;

/* Called once per claimed request: WON 1 if this daemon serves it (or the
 * claim was refused), 0 if another daemon has it or its req_id was used
 * within claim_ttl_ms, -1 if the claims are being freed. */
typedef void claim_done_fn(void *ctx, request *req, int won);

/* Claims written on W. Borrowed arguments. NULL out of memory. */
claims *claims_create(const config *cfg, wire *w, claim_done_fn *done, void *ctx);

/* Gives every claim still waiting to DONE with -1, frees. Accepts NULL. */
void claims_free(claims *c);

/* Claims REQ (its id): now if the wire is up, else when it is back. */
void claims_send(claims *c, request *req);

/* The wire is back: sends again every claim not answered. */
void claims_wire_up(claims *c);

/* Claims sent or waiting and not answered. */
size_t claims_waiting(const claims *c);

#endif

/* defer.h -- deferred replies: a handler takes its reply with it and
 * finishes it later from any thread (the SDK's redwork_reply_defer(),
 * redwork_deferred_reply(), redwork_deferred_finish(), implemented here),
 * and the event loop's side of them: their deadlines, the drain, and
 * exactly one answer per request.
 *
 * A request whose handler deferred it comes back from the pool with
 * REQ->deferred set; the loop gives it to deferrals_register(). From then
 * on the first of three things answers it: the handler's finish, its
 * timeout_ms running out ('timeout'), or deferrals_close() at the drain's
 * deadline ('shutting_down'). The answer is written into REQ->out and the
 * request handed to the answer function, as the pool would have. Every
 * function here but the SDK's belongs to the loop's thread. */
#ifndef REDWORK_DEFER_H
#define REDWORK_DEFER_H

#include <stddef.h>

#include "config.h"
#include "loop.h"
#include "request.h"

typedef struct deferrals deferrals;

/* Called on the loop with a request whose reply is in REQ->out. */
typedef void deferrals_answer_fn(void *ctx, request *req);

/* Deferred replies answered on LP through ANSWER(CTX, req); at most
 * CFG->max_deferred open at once. Returns NULL out of memory. */
deferrals *deferrals_create(const config *cfg, loop *lp, deferrals_answer_fn *answer,
                            void *ctx);

/* Frees DS (once the loop has stopped and no pool thread runs; before
 * the loop is freed). Requests still open are freed unanswered, and any
 * finish from now on is dropped; the memory a finish needs lasts until
 * the last deferred reply is finished. Accepts NULL. */
void deferrals_free(deferrals *ds);

/* REQ, deferred by its handler (REQ->deferred), is back from the pool:
 * answered now if its handler has finished it already (or DS is closed),
 * else kept until one of the three answers comes. */
void deferrals_register(deferrals *ds, request *req);

/* Registered requests not answered yet. */
size_t deferrals_open(const deferrals *ds);

/* The drain's deadline: every open request is answered 'shutting_down',
 * and so is any registered from now on. */
void deferrals_close(deferrals *ds);

#endif

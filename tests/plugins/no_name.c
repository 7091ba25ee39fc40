/* no_name.c -- fixture: a handler with a NULL name. The loader must
 * refuse it. */
#include "redwork/handler.h"

static int nn_handle(void *state, const redwork_request *req,
                     redwork_reply *rep) {
    (void)state, (void)req;
    return redwork_reply_string(rep, "nameless");
}

REDWORK_HANDLER(.description = "no name", .handle = nn_handle);

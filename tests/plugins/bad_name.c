/* bad_name.c -- fixture: a handler whose name is not [a-z0-9_-]{1,64}.
 * The loader must refuse it. */
#include "redwork/handler.h"

static int bn_handle(void *state, const redwork_request *req,
                     redwork_reply *rep) {
    (void)state, (void)req;
    return redwork_reply_string(rep, "bad");
}

REDWORK_HANDLER(.name = "Bad Name", .handle = bn_handle);

/* dup_b.c -- fixture: one of two handlers both named "dup" (dup_a.c and
 * dup_b.c). Whichever loads second must be refused as a duplicate. It
 * replies "b" so the test can tell which one is in the set. */
#include "redwork/handler.h"

static int dup_handle(void *state, const redwork_request *req,
                      redwork_reply *rep) {
    (void)state, (void)req;
    return redwork_reply_string(rep, "b");
}

REDWORK_HANDLER(.name = "dup", .handle = dup_handle);

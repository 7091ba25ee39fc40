/* too_small.c -- a struct that claims to be smaller than the ABI 1.0
 * struct: the loader must refuse it before it reads any field past the
 * size it was given. */
#include <stddef.h>

#include "redwork/handler.h"

static int ts_handle(void *state, const redwork_request *req, redwork_reply *rep) {
    (void)state;
    (void)req;
    return redwork_reply_string(rep, "never");
}

__attribute__((visibility("default"))) const redwork_handler redwork_handler_v1 = {
    .abi = REDWORK_HANDLER_ABI,
    .size = offsetof(redwork_handler, handle), /* handle and fini left out */
    .name = "too_small",
    .handle = ts_handle,
};

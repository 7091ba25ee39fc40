/* newer_minor.c -- fixture: built for a newer minor ABI than the daemon's.
 * The loader must refuse it and name both versions. */
#include "redwork/handler.h"

static int nm_handle(void *state, const redwork_request *req,
                     redwork_reply *rep) {
    (void)state, (void)req;
    return redwork_reply_string(rep, "newer_minor");
}

extern __attribute__((visibility("default")))
const redwork_handler redwork_handler_v1;
__attribute__((visibility("default")))
const redwork_handler redwork_handler_v1 = {
    .abi = ((uint32_t)REDWORK_HANDLER_ABI_MAJOR << 16) |
           (REDWORK_HANDLER_ABI_MINOR + 1),
    .size = sizeof(redwork_handler),
    .name = "newer_minor",
    .handle = nm_handle,
};

/* wrong_major.c -- fixture: built for ABI major 2. The loader must refuse
 * it. */
#include "redwork/handler.h"

static int wm_handle(void *state, const redwork_request *req,
                     redwork_reply *rep) {
    (void)state, (void)req;
    return redwork_reply_string(rep, "wrong_major");
}

extern __attribute__((visibility("default")))
const redwork_handler redwork_handler_v1;
__attribute__((visibility("default")))
const redwork_handler redwork_handler_v1 = {
    .abi = (uint32_t)2 << 16,
    .size = sizeof(redwork_handler),
    .name = "wrong_major",
    .handle = wm_handle,
};

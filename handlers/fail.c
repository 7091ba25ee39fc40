/* fail -- always fails, for fault tests: replies a handler_failed error,
 * or with "crash": true calls abort() and takes its process down. */
#include <stdlib.h>

#include <redwork/handler.h>

static int fail_handle(void *state, const redwork_request *req,
                       redwork_reply *rep) {
    (void)state;
    int crash = 0;
    if (redwork_request_bool(req, "crash", &crash) == 0 && crash)
        abort();
    return redwork_reply_error(rep, "handler_failed",
                               "the fail handler always fails (req_id %s)",
                               redwork_request_id(req));
}

REDWORK_HANDLER(.name = "fail",
                .description = "always fails; crash: true aborts the process",
                .handle = fail_handle);

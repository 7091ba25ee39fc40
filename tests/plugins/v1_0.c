/* v1_0.c -- a handler built against the ABI 1.0 header (handler_1_0.h),
 * as a plugin compiled before 1.1 existed: its struct is the 1.0 size.
 * It replies {"abi": "1.0", "size": <its struct size>, "name": ...} so the
 * test sees the daemon called it and read its fields right. */
#include "handler_1_0.h"

static int v1_0_handle(void *state, const redwork_request *req, redwork_reply *rep) {
    (void)state;
    (void)req;
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "abi", "1.0");
    cJSON_AddNumberToObject(out, "size", (double)sizeof(redwork_handler));
    return redwork_reply_json(rep, out);
}

REDWORK_HANDLER(.name = "v1_0", .description = "built against SDK 1.0",
                .handle = v1_0_handle);

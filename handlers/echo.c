/* echo -- replies with the request object minus the envelope fields
 * (req_id, handler, timeout_ms): what the caller sent is what it gets. */
#include <redwork/handler.h>

static int echo_handle(void *state, const redwork_request *req,
                       redwork_reply *rep) {
    (void)state;
    cJSON *copy = cJSON_Duplicate(redwork_request_json(req), 1);
    if (copy == NULL)
        return redwork_reply_error(rep, "internal", "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "req_id");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "handler");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "timeout_ms");
    return redwork_reply_json(rep, copy);
}

REDWORK_HANDLER(.name = "echo",
                .description = "replies with the request's payload fields",
                .handle = echo_handle);

/* echo_v2.c -- a second build of the shipped echo handler, for the hot
 * reload test (test_scale): the same name, "echo", the same reply (the
 * request minus req_id, handler and timeout_ms) plus "v": 2, so each reply
 * tells which build ran it. */
#include <redwork/handler.h>

static int echo_v2_handle(void *state, const redwork_request *req,
                          redwork_reply *rep) {
    (void)state;
    cJSON *copy = cJSON_Duplicate(redwork_request_json(req), 1);
    if (copy == NULL)
        return redwork_reply_error(rep, "internal", "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "req_id");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "handler");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "timeout_ms");
    if (cJSON_AddNumberToObject(copy, "v", 2) == NULL) {
        cJSON_Delete(copy);
        return redwork_reply_error(rep, "internal", "out of memory");
    }
    return redwork_reply_json(rep, copy);
}

REDWORK_HANDLER(.name = "echo",
                .description = "echo, build 2: adds \"v\": 2 (test fixture)",
                .handle = echo_v2_handle);

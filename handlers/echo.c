/* echo -- replies with the request object minus the envelope fields
 * (req_id, handler, timeout_ms, reply_to): what the caller sent is what it gets. */
#include <string.h>

#include <redwork/handler.h>

static int is_envelope(const char *key) {
    return strcmp(key, "req_id") == 0 || strcmp(key, "handler") == 0 ||
           strcmp(key, "timeout_ms") == 0 || strcmp(key, "reply_to") == 0;
}

static int echo_handle(void *state, const redwork_request *req,
                       redwork_reply *rep) {
    (void)state;
    cJSON *copy = cJSON_CreateObject();
    if (copy == NULL)
        return redwork_reply_error(rep, "internal", "out of memory");
    /* References, not copies: a reply set by handle() is written before
     * the request is freed (see redwork_request_json()). */
    for (cJSON *field = redwork_request_json(req)->child; field != NULL; field = field->next)
        if (!is_envelope(field->string) &&
            !cJSON_AddItemReferenceToObject(copy, field->string, field)) {
            cJSON_Delete(copy);
            return redwork_reply_error(rep, "internal", "out of memory");
        }
    return redwork_reply_json(rep, copy);
}

REDWORK_HANDLER(.name = "echo",
                .description = "replies with the request's payload fields",
                .handle = echo_handle);

/* envelope.c -- reply envelopes as libredwork reads them, and the
 * results made from them (envelope.h; redwork_result_free and
 * redwork_status_name of client.h). */
#include "envelope.h"

#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int redwork_envelope_req_id(const char *body, char id[PROTOCOL_ID_MAX + 1]) {
    static const char head[] = "{\"req_id\":\"";
    if (strncmp(body, head, sizeof head - 1) == 0) {
        const char *from = body + sizeof head - 1, *to = strchr(from, '"');
        if (to == NULL || to - from > PROTOCOL_ID_MAX)
            return -1;
        memcpy(id, from, (size_t)(to - from));
        id[to - from] = '\0';
        return 0;
    }
    cJSON *env = cJSON_Parse(body);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(env, PROTOCOL_FIELD_REQ_ID);
    int ok = cJSON_IsString(v) && strlen(v->valuestring) <= PROTOCOL_ID_MAX;
    if (ok)
        strcpy(id, v->valuestring);
    cJSON_Delete(env);
    return ok ? 0 : -1;
}

void redwork_envelope_result(redwork_result *res, const char *body) {
    res->reply = redwork_strdup(body);
    cJSON *env = cJSON_Parse(body);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(env, "ok");
    if (cJSON_IsTrue(ok)) {
        const cJSON *result = cJSON_GetObjectItemCaseSensitive(env, "result");
        res->status = REDWORK_OK;
        res->result = result != NULL ? cJSON_PrintUnformatted(result) : redwork_strdup("null");
    } else {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(env, "error");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");
        res->status = REDWORK_ERROR_REPLY;
        res->error_code = redwork_strdup(cJSON_IsString(code) ? code->valuestring : "internal");
        res->error_message = redwork_strdup(cJSON_IsString(msg) ? msg->valuestring
                                            : env == NULL ? "the reply could not be parsed "
                                                            "(not JSON, or memory ran out)"
                                                          : "the reply has no error message");
    }
    cJSON_Delete(env);
    if (res->reply == NULL || (res->status == REDWORK_OK ? res->result == NULL
                                                         : res->error_code == NULL ||
                                                               res->error_message == NULL)) {
        redwork_result_free(res);
        res->status = REDWORK_CONNECTION;
        res->error_code = redwork_strdup(redwork_status_name(REDWORK_CONNECTION));
        res->error_message = redwork_strdup("out of memory");
    }
}

static const char *const status_names[] = {
    "ok", "error_reply", "timeout", "no_workers", "connection", "invalid",
};

const char *redwork_status_name(redwork_status status) {
    return (unsigned)status < sizeof status_names / sizeof status_names[0]
               ? status_names[status] : "invalid";
}

void redwork_result_free(redwork_result *res) {
    if (res == NULL)
        return;
    free(res->reply);
    free(res->result);
    free(res->error_code);
    free(res->error_message);
    res->reply = res->result = res->error_code = res->error_message = NULL;
}

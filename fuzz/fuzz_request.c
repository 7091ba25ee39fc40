/* fuzz_request.c -- libFuzzer target: request parsing and validation
 * (request_parse), the SDK's request accessors on what it accepts, and the
 * error envelope built from what it refuses (which must stay valid JSON).
 * Run by `make fuzz`; seeds in tests/fuzz/request/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "reply.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    request *req = NULL;
    char id[REQUEST_ID_MAX + 1], err[256];
    int status = request_parse((const char *)data, size, "request", 4096, 0, &req,
                               id, err, sizeof err);
    if (status == REQUEST_OK) {
        if (strlen(redwork_request_id(req)) == 0 || strcmp(req->id, id) != 0)
            abort(); /* an accepted request always has its id */
        long long n;
        double d;
        int b;
        redwork_request_string(req, "handler");
        redwork_request_int(req, "n", &n);
        redwork_request_number(req, "x", &d);
        redwork_request_bool(req, "crash", &b);
        redwork_request_time_left_ms(req);
        request_free(req);
        return 0;
    }
    if (status == REQUEST_BAD && id[0] == '\0')
        abort(); /* BAD promises a usable id */
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "bad_request", "%s", err);
    char *json = reply_encode(&r, id[0] ? id : "x", NULL, "fuzz", 0);
    cJSON *back = json != NULL ? cJSON_Parse(json) : NULL;
    if (json != NULL && back == NULL)
        abort(); /* the envelope must parse */
    cJSON_Delete(back);
    free(json);
    reply_clear(&r);
    return 0;
}

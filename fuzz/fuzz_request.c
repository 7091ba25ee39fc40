/* fuzz_request.c -- libFuzzer target: the request scan (request_scan), the
 * cJSON tree a handler gets of what it accepts (which cJSON must always
 * build), the SDK's request accessors, and the reply commands made for
 * what it refuses (whose envelope must stay valid JSON). Run by
 * `make fuzz`; seeds in tests/fuzz/request/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "reply.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    request *req = request_new();
    char err[256];
    if (req == NULL)
        return 0;
    int status = request_scan(req, (const char *)data, size, "request", 7, 4096, "callback:", 0, err,
                              sizeof err);
    if (status == REQUEST_OK) {
        if (strlen(redwork_request_id(req)) == 0)
            abort(); /* an accepted request always has its id */
        if (request_parse_tree(req, err, sizeof err) != 0)
            abort(); /* what the scan accepts, cJSON parses */
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
    if (status == REQUEST_BAD && req->id[0] == '\0')
        abort(); /* BAD promises a usable id */
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "bad_request", "%s", err);
    buffer json = BUFFER_INIT;
    reply_envelope(&json, &r, req->id[0] ? req->id : "x", req->id_is_number, NULL, "fuzz", 0);
    cJSON *back = json.failed ? NULL : cJSON_Parse(json.data);
    if (!json.failed && back == NULL)
        abort(); /* the envelope must parse */
    cJSON_Delete(back);
    redwork_buffer_free(&json);
    reply_clear(&r);
    request_free(req);
    return 0;
}

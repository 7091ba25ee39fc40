/* request.c -- one request of protocol v1: parsing, validation and the
 * SDK's read-only accessors (redwork_request_*).
 *
 * Validation order matters for "nothing lost": the req_id is established
 * first, because once a message has one, every later failure is answered
 * with 'bad_request' on its reply channel instead of only being logged.
 * Even a body over max_request_bytes is scanned (not parsed) for a top-level
 * req_id so that it can be answered. */
#include "request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "plugin.h"
#include "streams.h"

#define ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
#define MAX_EXACT_INT 9007199254740991.0 /* 2^53 - 1: exact in a double */

/* Copies S (N bytes) into ID if it is a valid string req_id. */
static int id_from_chars(const char *s, size_t n, char id[REQUEST_ID_MAX + 1]) {
    if (n == 0 || n > REQUEST_ID_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(ID_CHARS, s[i]) == NULL)
            return -1;
    memcpy(id, s, n);
    id[n] = '\0';
    return 0;
}

/* Writes the integral, non-negative, exactly representable D into ID. */
static int id_from_number(double d, char id[REQUEST_ID_MAX + 1]) {
    if (!(d >= 0 && d <= MAX_EXACT_INT) || floor(d) != d)
        return -1;
    snprintf(id, REQUEST_ID_MAX + 1, "%lld", (long long)d);
    return 0;
}

static size_t skip_space(const char *p, size_t len, size_t i) {
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Returns the index just past the JSON string starting at P[I] == '"'. */
static size_t skip_string(const char *p, size_t len, size_t i) {
    for (i++; i < len; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return len;
}

/* Finds the req_id of the top-level object in P without parsing the rest:
 * used for a body too big to parse. Returns 0 with ID set, or -1. */
static int sniff_id(const char *p, size_t len, char id[REQUEST_ID_MAX + 1]) {
    size_t i = skip_space(p, len, 0);
    if (i >= len || p[i] != '{')
        return -1;
    int depth = 0, expect_key = 0;
    while (i < len) {
        char c = p[i];
        if (c == '"') {
            size_t end = skip_string(p, len, i);
            int is_id = depth == 1 && expect_key && end - i == 8 &&
                        memcmp(p + i, "\"req_id\"", 8) == 0;
            expect_key = 0;
            i = end;
            if (!is_id)
                continue;
            i = skip_space(p, len, i);
            if (i >= len || p[i] != ':')
                return -1;
            i = skip_space(p, len, i + 1);
            if (i < len && p[i] == '"') {
                end = skip_string(p, len, i);
                return id_from_chars(p + i + 1, end - i - 2, id);
            }
            /* A number: the same strtod reading cJSON gives it. */
            size_t n = strspn(p + i, "0123456789+-.eE");
            char number[32];
            if (n == 0 || n >= sizeof number || i + n > len)
                return -1;
            memcpy(number, p + i, n);
            number[n] = '\0';
            char *rest;
            double d = strtod(number, &rest);
            return *rest == '\0' ? id_from_number(d, id) : -1;
        }
        if (c == '{' || c == '[') {
            depth++;
            expect_key = depth == 1;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = 1;
        }
        i++;
    }
    return -1;
}

/* 1 if the JSON text P nests objects and arrays deeper than MAX: checked
 * by a scan before parsing, so a hostile body costs one pass, not a
 * recursion per level. */
static int nests_deeper(const char *p, size_t len, int max) {
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"') {
            i = skip_string(p, len, i) - 1;
        } else if (p[i] == '{' || p[i] == '[') {
            if (++depth > max)
                return 1;
        } else if (p[i] == '}' || p[i] == ']') {
            depth--;
        }
    }
    return 0;
}

int request_parse(const char *body, size_t len, const char *channel,
                  size_t max_bytes, uint64_t received_us, request **out,
                  char id[REQUEST_ID_MAX + 1], char *err, size_t errlen) {
    *out = NULL;
    id[0] = '\0';
    if (len > max_bytes) {
        snprintf(err, errlen, "request is %zu bytes, over max_request_bytes (%zu)",
                 len, max_bytes);
        return sniff_id(body, len, id) == 0 ? REQUEST_BAD : REQUEST_UNANSWERABLE;
    }
    if (memchr(body, '\0', len) != NULL) {
        snprintf(err, errlen, "not JSON: contains a NUL byte");
        return REQUEST_UNANSWERABLE;
    }
    if (nests_deeper(body, len, REQUEST_DEPTH_MAX)) {
        snprintf(err, errlen, "JSON nested deeper than %d levels", REQUEST_DEPTH_MAX);
        return sniff_id(body, len, id) == 0 ? REQUEST_BAD : REQUEST_UNANSWERABLE;
    }

    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (json == NULL || skip_space(body, len, (size_t)(end - body)) != len) {
        snprintf(err, errlen, "not JSON (at byte %zu)",
                 end != NULL ? (size_t)(end - body) : (size_t)0);
        cJSON_Delete(json);
        return REQUEST_UNANSWERABLE;
    }
    if (!cJSON_IsObject(json)) {
        snprintf(err, errlen, "not a JSON object");
        goto unanswerable;
    }

    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(json, "req_id");
    if (rid == NULL) {
        snprintf(err, errlen, "no req_id");
        goto unanswerable;
    }
    /* A string id is read from the raw text too: cJSON decodes escapes
     * such as \u0000, which would cut the id short and name another
     * caller's reply channel. The raw text has no escapes in a valid id. */
    char raw[REQUEST_ID_MAX + 1];
    if (cJSON_IsString(rid) ? sniff_id(body, len, raw) != 0 ||
                                  id_from_chars(rid->valuestring,
                                                strlen(rid->valuestring), id) != 0 ||
                                  strcmp(raw, id) != 0
        : cJSON_IsNumber(rid) ? id_from_number(rid->valuedouble, id) != 0
                              : 1) {
        snprintf(err, errlen,
                 "req_id must be 1..128 of [A-Za-z0-9_.:-] or an integer 0..2^53-1");
        goto unanswerable;
    }

    const cJSON *handler = cJSON_GetObjectItemCaseSensitive(json, "handler");
    if (handler != NULL && (!cJSON_IsString(handler) || *handler->valuestring == '\0')) {
        snprintf(err, errlen, "handler must be a non-empty string");
        goto bad;
    }
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(json, "timeout_ms");
    long long timeout_ms = -1;
    if (timeout != NULL) {
        double d = cJSON_IsNumber(timeout) ? timeout->valuedouble : -1;
        if (!(d >= 0 && d <= MAX_EXACT_INT) || floor(d) != d) {
            snprintf(err, errlen, "timeout_ms must be an integer 0..2^53-1");
            goto bad;
        }
        timeout_ms = (long long)d;
    }

    request *req = calloc(1, sizeof *req);
    if (req == NULL || (req->channel = strdup(channel)) == NULL) {
        free(req);
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    memcpy(req->id, id, sizeof req->id);
    req->json = json;
    req->handler_field = handler != NULL ? handler->valuestring : NULL;
    req->timeout_ms = timeout_ms;
    req->received_us = received_us;
    *out = req;
    return REQUEST_OK;

bad:
    cJSON_Delete(json);
    return REQUEST_BAD;
unanswerable:
    id[0] = '\0';
    cJSON_Delete(json);
    return REQUEST_UNANSWERABLE;
}

void request_free(request *req) {
    if (req == NULL)
        return;
    plugin_release(req->handler);
    if (req->holds != NULL)
        stream_holds_remove(req->holds, req->channel, req->entry_id);
    cJSON_Delete(req->json);
    free(req->channel);
    free(req);
}

int request_expired(const request *req, uint64_t now_us) {
    return req->timeout_ms >= 0 &&
           now_us - req->received_us > (uint64_t)req->timeout_ms * 1000u;
}

/* ---- the SDK's accessors ---------------------------------------------- */

const char *redwork_request_id(const redwork_request *req) { return req->id; }

const char *redwork_request_channel(const redwork_request *req) {
    return req->channel;
}

const cJSON *redwork_request_json(const redwork_request *req) {
    return req->json;
}

const char *redwork_request_string(const redwork_request *req, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->json, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int redwork_request_number(const redwork_request *req, const char *key,
                           double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->json, key);
    if (!cJSON_IsNumber(v))
        return -1;
    *out = v->valuedouble;
    return 0;
}

int redwork_request_int(const redwork_request *req, const char *key,
                        long long *out) {
    double d;
    /* 2^63 is exact in a double; anything below it converts safely. */
    if (redwork_request_number(req, key, &d) != 0 || floor(d) != d ||
        d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return -1;
    *out = (long long)d;
    return 0;
}

int redwork_request_bool(const redwork_request *req, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->json, key);
    if (!cJSON_IsBool(v))
        return -1;
    *out = cJSON_IsTrue(v);
    return 0;
}

long long redwork_request_time_left_ms(const redwork_request *req) {
    if (req->timeout_ms < 0)
        return -1;
    long long waited_ms = (long long)((clock_now_us() - req->received_us) / 1000u);
    return waited_ms >= req->timeout_ms ? 0 : req->timeout_ms - waited_ms;
}

/* request.c -- one request: the scan of its envelope, the tree for its
 * handler, the cache that recycles requests, and the SDK's read-only
 * accessors (redwork_request_*).
 *
 * DESIGN. The dispatcher's thread is the one every request passes
 * through, so it does as little as it can: one validating pass over the
 * bytes (the JSON grammar of RFC 8259, recursion bounded by
 * REQUEST_DEPTH_MAX) that also picks out the top-level req_id, handler and
 * timeout_ms. The cJSON tree a handler reads is built later, on the pool
 * thread that runs it. Validation order matters for "nothing lost": once
 * a message has a usable req_id, every later failure is answered
 * 'bad_request' instead of only being logged, and even a body over
 * max_request_bytes is searched (not checked) for a top-level req_id. */
#include "request.h"

#include "alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "plugin.h"

#define KEEP_BYTES 65536 /* a recycled request keeps buffers up to this */

/* ---- scanning ---------------------------------------------------------- */

enum span_kind { SPAN_NONE = 0, SPAN_STRING, SPAN_NUMBER, SPAN_OTHER };

/* Where a top-level field's value is: a string's raw content between its
 * quotes, a number's text, or only its kind. */
typedef struct span {
    enum span_kind kind;
    const char *p;
    size_t n;
    int escaped; /* a string with backslash escapes */
} span;

typedef struct scanner {
    const char *p, *end, *start;
    span req_id, handler, timeout, reply_to;
    int too_deep;
    int bad_utf8; /* the scan stopped at bytes that are not UTF-8 */
} scanner;

static void skip_space(scanner *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex_value(char c) {
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The four hex digits at P (before END) as a UTF-16 unit, or -1. */
static long hex4(const char *p, const char *end) {
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_value(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at s->p == '"': its escapes, and UTF-8 (RFC 8259 section 8.1)
 * with no lone surrogate, escaped or not. Fills OUT (may be NULL). On
 * failure s->p is where it stopped. */
static int scan_string(scanner *s, span *out) {
    const char *start = ++s->p, *p = start, *end = s->end;
    int escaped = 0;
    for (;;) {
        while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
               *p != '\\')
            p++;
        if (p < end && (unsigned char)*p >= 0x80) {
            size_t n = redwork_utf8_len((const unsigned char *)p, (const unsigned char *)end);
            if (n == 0) {
                s->bad_utf8 = 1;
                s->p = p;
                return -1;
            }
            p += n;
            continue;
        }
        if (p >= end || (unsigned char)*p < 0x20) {
            s->p = p;
            return -1;
        }
        if (*p == '"')
            break;
        escaped = 1; /* a backslash: one escape */
        const char *escape = p;
        if (++p >= end) {
            s->p = escape;
            return -1;
        }
        if (*p == 'u') {
            long unit = hex4(p + 1, end);
            int bad = unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF); /* a lone low surrogate */
            p += 5;
            if (!bad && unit >= 0xD800 && unit <= 0xDBFF) { /* a pair, or not Unicode */
                long low = end - p >= 2 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, end) : -1;
                bad = low < 0xDC00 || low > 0xDFFF;
                p += 6;
            }
            if (bad) {
                s->bad_utf8 = unit >= 0xD800 && unit <= 0xDFFF;
                s->p = escape;
                return -1;
            }
        } else if (*p == '"' || *p == '\\' || *p == '/' || *p == 'b' || *p == 'f' ||
                   *p == 'n' || *p == 'r' || *p == 't') {
            p++;
        } else {
            s->p = escape;
            return -1;
        }
    }
    if (out != NULL)
        *out = (span){SPAN_STRING, start, (size_t)(p - start), escaped};
    s->p = p + 1;
    return 0;
}

static int digits(scanner *s) {
    const char *from = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > from ? 0 : -1;
}

/* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(scanner *s, span *out) {
    const char *start = s->p;
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits(s) != 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) != 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) != 0)
            return -1;
    }
    if (out != NULL)
        *out = (span){SPAN_NUMBER, start, (size_t)(s->p - start), 0};
    return 0;
}

static int scan_literal(scanner *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

/* Decodes the string content RAW (N bytes, escapes checked by the scan)
 * into OUT (CAP bytes, NUL-terminated, cut to fit). A \u escape beyond
 * ASCII becomes '?': what is decoded here are field names and handler
 * names, which are ASCII when they are valid. Returns the decoded length,
 * which is more than CAP - 1 when it was cut. */
static size_t decode_string(const char *raw, size_t n, char *out, size_t cap) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++, w++) {
        char c = raw[i];
        if (c == '\\') {
            char e = raw[++i];
            if (e == 'u') {
                char hex[5] = {raw[i + 1], raw[i + 2], raw[i + 3], raw[i + 4], '\0'};
                unsigned long cp = strtoul(hex, NULL, 16);
                c = cp < 0x80 ? (char)cp : '?';
                i += 4;
            } else {
                static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
                const char *at = strchr(from, e);
                c = at != NULL ? to[at - from] : e;
            }
        }
        if (w + 1 < cap)
            out[w] = c;
    }
    out[w + 1 < cap ? w : cap - 1] = '\0';
    return w;
}

/* 1 if the key RAW (N bytes of string content) is NAME. */
static int key_is(const char *raw, size_t n, int escaped, const char *name) {
    size_t len = strlen(name);
    if (!escaped)
        return n == len && memcmp(raw, name, len) == 0;
    char decoded[16];
    return n <= 6 * sizeof decoded && decode_string(raw, n, decoded, sizeof decoded) == len &&
           memcmp(decoded, name, len) == 0;
}

static int scan_value(scanner *s, int depth, span *out);

/* An object at s->p == '{'; TOP: the request itself, whose fields are
 * picked out (the first of each name, as cJSON would find it). */
static int scan_object(scanner *s, int depth, int top) {
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        span key;
        skip_space(s);
        if (s->p >= s->end || *s->p != '"' || scan_string(s, &key) != 0)
            return -1;
        skip_space(s);
        if (s->p >= s->end || *s->p++ != ':')
            return -1;
        span *field = NULL;
        if (top) {
            if (s->req_id.kind == SPAN_NONE && key_is(key.p, key.n, key.escaped, PROTOCOL_FIELD_REQ_ID))
                field = &s->req_id;
            else if (s->handler.kind == SPAN_NONE &&
                     key_is(key.p, key.n, key.escaped, PROTOCOL_FIELD_HANDLER))
                field = &s->handler;
            else if (s->timeout.kind == SPAN_NONE &&
                     key_is(key.p, key.n, key.escaped, PROTOCOL_FIELD_TIMEOUT_MS))
                field = &s->timeout;
            else if (s->reply_to.kind == SPAN_NONE &&
                     key_is(key.p, key.n, key.escaped, PROTOCOL_FIELD_REPLY_TO))
                field = &s->reply_to;
        }
        if (scan_value(s, depth, field) != 0)
            return -1;
        skip_space(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == '}') {
            s->p++;
            return 0;
        }
        if (*s->p++ != ',')
            return -1;
    }
}

static int scan_array(scanner *s, int depth) {
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        if (scan_value(s, depth, NULL) != 0)
            return -1;
        skip_space(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ']') {
            s->p++;
            return 0;
        }
        if (*s->p++ != ',')
            return -1;
    }
}

/* One value at DEPTH (the containers around it); OUT, if not NULL, gets
 * where it is. */
static int scan_value(scanner *s, int depth, span *out) {
    skip_space(s);
    if (s->p >= s->end)
        return -1;
    span other = {SPAN_OTHER, s->p, 0, 0};
    int status;
    switch (*s->p) {
    case '{':
    case '[':
        if (depth + 1 > REQUEST_DEPTH_MAX) {
            s->too_deep = 1;
            return -1;
        }
        status = *s->p == '{' ? scan_object(s, depth + 1, 0) : scan_array(s, depth + 1);
        break;
    case '"':
        return scan_string(s, out);
    case 't':
        status = scan_literal(s, "true");
        break;
    case 'f':
        status = scan_literal(s, "false");
        break;
    case 'n':
        status = scan_literal(s, "null");
        break;
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s, out);
        return -1;
    }
    if (status == 0 && out != NULL)
        *out = other;
    return status;
}

/* Reads an integer 0..PROTOCOL_INT_MAX from a JSON number's text, the way
 * strtod (and so cJSON) reads it: 1e3 is 1000. Returns 0, or -1. */
static int whole_number(const char *p, size_t n, long long *out) {
    char text[64];
    if (n == 0 || n >= sizeof text)
        return -1;
    memcpy(text, p, n);
    text[n] = '\0';
    char *rest;
    double d = strtod(text, &rest);
    if (*rest != '\0' || !(d >= 0 && d <= (double)PROTOCOL_INT_MAX) || floor(d) != d)
        return -1;
    *out = (long long)d;
    return 0;
}

/* Writes the req_id that the value at SPAN gives into REQ (its text, and
 * whether it was a number). Returns 0, or -1 if it is not a usable one. */
static int id_of(const span *v, request *req) {
    long long n;
    if (v->kind == SPAN_STRING && !v->escaped && protocol_id_valid(v->p, v->n)) {
        memcpy(req->id, v->p, v->n);
        req->id[v->n] = '\0';
        req->id_is_number = 0;
        return 0;
    }
    if (v->kind == SPAN_NUMBER && whole_number(v->p, v->n, &n) == 0) {
        req->id[redwork_ll_text(n, req->id)] = '\0';
        req->id_is_number = 1;
        return 0;
    }
    return -1;
}

/* Finds the req_id of the top-level object in P without checking the
 * rest: for a body too big, too deep or too broken to scan. Returns 0
 * with REQ's id set, or -1. */
static int sniff_id(const char *p, size_t len, request *req) {
    scanner s = {.p = p, .end = p + len, .start = p};
    skip_space(&s);
    if (s.p >= s.end || *s.p != '{')
        return -1;
    int depth = 0, expect_key = 0;
    while (s.p < s.end) {
        char c = *s.p;
        if (c == '"') {
            span key = {0};
            int is_key = depth == 1 && expect_key;
            if (scan_string(&s, &key) != 0)
                return -1;
            expect_key = 0;
            if (!is_key || !key_is(key.p, key.n, key.escaped, PROTOCOL_FIELD_REQ_ID))
                continue;
            skip_space(&s);
            if (s.p >= s.end || *s.p++ != ':')
                return -1;
            skip_space(&s);
            span v = {0};
            if (s.p >= s.end) /* the body ends before the value */
                return -1;
            if (*s.p == '"' ? scan_string(&s, &v) != 0 : scan_number(&s, &v) != 0)
                return -1;
            return id_of(&v, req);
        }
        if (c == '{' || c == '[') {
            depth++;
            expect_key = depth == 1;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = 1;
        }
        s.p++;
    }
    return -1;
}

/* The verdict for a body that could not be scanned whole, or is not a
 * request: answered if it has a req_id to be found. */
static int refuse(request *req, const char *body, size_t len) {
    if (sniff_id(body, len, req) == 0)
        return REQUEST_BAD;
    req->id[0] = '\0';
    return REQUEST_UNANSWERABLE;
}

int request_scan(request *req, const char *body, size_t len, const char *channel,
                 size_t channel_len, size_t max_bytes, const char *reply_prefix,
                 uint64_t received_us, char *err, size_t errlen) {
    req->id[0] = '\0';
    req->id_is_number = 0;
    req->reply_to = NULL;
    if (len == 0) { /* and BODY may be NULL */
        snprintf(err, errlen, "an empty message");
        return REQUEST_UNANSWERABLE;
    }
    if (len > max_bytes) {
        snprintf(err, errlen, "request is %zu bytes, over max_request_bytes (%zu)",
                 len, max_bytes);
        return refuse(req, body, len);
    }
    if (memchr(body, '\0', len) != NULL) {
        snprintf(err, errlen, "not JSON: contains a NUL byte");
        return refuse(req, body, len);
    }
    scanner s = {.p = body, .end = body + len, .start = body};
    skip_space(&s);
    int is_object = s.p < s.end && *s.p == '{';
    int status = is_object ? scan_object(&s, 1, 1) : scan_value(&s, 0, NULL);
    skip_space(&s);
    if (s.too_deep) {
        snprintf(err, errlen, "JSON nested deeper than %d levels", REQUEST_DEPTH_MAX);
        return refuse(req, body, len);
    }
    if (status != 0 || s.p != s.end) {
        snprintf(err, errlen, "%s (at byte %zu)",
                 s.bad_utf8 ? "not UTF-8 JSON: invalid UTF-8 or a lone surrogate" : "not JSON",
                 (size_t)(s.p - body));
        return refuse(req, body, len);
    }
    if (!is_object) {
        snprintf(err, errlen, "not a JSON object");
        return REQUEST_UNANSWERABLE;
    }
    if (s.req_id.kind == SPAN_NONE) {
        snprintf(err, errlen, "no req_id");
        return REQUEST_UNANSWERABLE;
    }
    if (id_of(&s.req_id, req) != 0) {
        snprintf(err, errlen, "req_id must be 1..128 of [A-Za-z0-9_.:-] or an integer 0..2^53-1");
        return REQUEST_UNANSWERABLE;
    }
    if (s.handler.kind != SPAN_NONE && (s.handler.kind != SPAN_STRING || s.handler.n == 0)) {
        snprintf(err, errlen, "handler must be a non-empty string");
        return REQUEST_BAD;
    }
    if (s.reply_to.kind != SPAN_NONE &&
        (s.reply_to.kind != SPAN_STRING || s.reply_to.escaped ||
         !protocol_reply_to_valid(s.reply_to.p, s.reply_to.n, reply_prefix))) {
        snprintf(err, errlen, "reply_to must be '%s' followed by 1..128 of [A-Za-z0-9_.:-]",
                 reply_prefix);
        return REQUEST_BAD;
    }
    long long timeout_ms = -1;
    if (s.timeout.kind != SPAN_NONE &&
        (s.timeout.kind != SPAN_NUMBER || whole_number(s.timeout.p, s.timeout.n, &timeout_ms) != 0)) {
        snprintf(err, errlen, "timeout_ms must be an integer 0..2^53-1");
        return REQUEST_BAD;
    }

    buffer_reset(&req->text);
    buffer_append(&req->text, body, len);
    buffer_append(&req->text, "", 1);
    buffer_append(&req->text, channel, channel_len);
    if (req->text.failed) {
        snprintf(err, errlen, "out of memory for a copy of the request");
        return REQUEST_NO_MEMORY;
    }
    req->body_len = len;
    req->channel = req->text.data + len + 1;
    req->handler_field = NULL;
    if (s.handler.kind == SPAN_STRING) {
        if (s.handler.escaped) {
            decode_string(s.handler.p, s.handler.n, req->handler_text, sizeof req->handler_text);
        } else {
            size_t n = s.handler.n < sizeof req->handler_text - 1 ? s.handler.n
                                                                   : sizeof req->handler_text - 1;
            memcpy(req->handler_text, s.handler.p, n);
            req->handler_text[n] = '\0';
        }
        req->handler_field = req->handler_text;
    }
    if (s.reply_to.kind == SPAN_STRING) { /* in the copy: valid as long as the request */
        req->reply_to = req->text.data + (s.reply_to.p - body);
        req->reply_to_len = s.reply_to.n;
    }
    req->timeout_ms = timeout_ms;
    req->received_us = received_us;
    return REQUEST_OK;
}

int request_parse_tree(request *req, char *err, size_t errlen) {
    const char *end = NULL;
    req->json = cJSON_ParseWithLengthOpts(req->text.data, req->body_len, &end, 0);
    if (req->json == NULL) { /* request_scan found it valid: out of memory */
        snprintf(err, errlen, "out of memory for the request's JSON tree (%zu bytes)",
                 req->body_len);
        return -1;
    }
    return 0;
}

void request_drop_tree(request *req) {
    cJSON_Delete(req->json);
    req->json = NULL;
}

int request_expired(const request *req, uint64_t now_us) {
    return req->timeout_ms >= 0 &&
           now_us - req->received_us > (uint64_t)req->timeout_ms * 1000u;
}

/* ---- lifetime ---------------------------------------------------------- */

request *request_new(void) {
    request *req = redwork_calloc(1, sizeof *req);
    if (req != NULL) {
        req->timeout_ms = -1;
        req->wait_us = -1;
    }
    return req;
}

/* Makes REQ empty for reuse, keeping its buffers unless they grew large. */
static void request_clear(request *req) {
    plugin_release(req->handler);
    request_drop_tree(req);
    buffer text = req->text, out = req->out;
    buffer_reset(&text);
    buffer_reset(&out);
    redwork_buffer_shrink(&text, KEEP_BYTES);
    redwork_buffer_shrink(&out, KEEP_BYTES);
    memset(req, 0, sizeof *req);
    req->text = text;
    req->out = out;
    req->timeout_ms = -1;
    req->wait_us = -1;
}

void request_free(request *req) {
    if (req == NULL)
        return;
    hold_release(&req->hold);
    plugin_release(req->handler);
    request_drop_tree(req);
    redwork_buffer_free(&req->text);
    redwork_buffer_free(&req->out);
    free(req);
}

request *request_get(request_cache *cache) {
    request *req = cache->free;
    if (req == NULL)
        return request_new();
    cache->free = req->next;
    cache->count--;
    req->next = NULL;
    return req;
}

void request_put(request_cache *cache, request *req) {
    if (cache->count >= cache->max) {
        request_free(req);
        return;
    }
    request_clear(req);
    req->next = cache->free;
    cache->free = req;
    cache->count++;
}

void request_cache_clear(request_cache *cache) {
    while (cache->free != NULL) {
        request *next = cache->free->next;
        request_free(cache->free);
        cache->free = next;
    }
    cache->count = 0;
}

int request_json_check(const char *text, size_t len, size_t *error_at) {
    scanner s = {.p = text, .end = text + len, .start = text};
    int status = scan_value(&s, 0, NULL);
    if (status == 0)
        skip_space(&s);
    *error_at = (size_t)(s.p - text);
    return status == 0 && s.p == s.end ? 0 : -1;
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

void *redwork_request_thread_state(const redwork_request *req) { return req->thread_state; }

long long redwork_request_time_left_ms(const redwork_request *req) {
    if (req->timeout_ms < 0)
        return -1;
    long long waited_ms = (long long)((clock_now_us() - req->received_us) / 1000u);
    return waited_ms >= req->timeout_ms ? 0 : req->timeout_ms - waited_ms;
}

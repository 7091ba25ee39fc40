/* reply.c -- replies: the SDK's redwork_reply_* setters, the protocol v1
 * envelope, and the commands that publish it.
 *
 * The envelope is written as text, not built as a cJSON tree: it is made
 * once per request, and a tree's allocations and number printing cost more
 * than the handler in a fast service. Only the result goes through cJSON,
 * printed straight into the caller's scratch buffer. The commands are
 * RESP written directly: no format string is interpreted per reply. */
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "plugin.h"
#include "resp.h"

#define RESULT_MIN 256 /* first room offered to cJSON for a result */
#define SCRATCH_KEEP 65536

/* Empties the result and the error. */
static void empty(reply *r) {
    r->result = NULL;
    r->raw = (buffer)BUFFER_INIT;
    r->code[0] = '\0';
    r->message[0] = '\0';
}

void reply_init(reply *r) { reply_init_for(r, NULL, NULL); }

void reply_init_for(reply *r, request *req, struct deferrals *ds) {
    empty(r);
    r->req = req;
    r->deferrals = ds;
    r->deferred = NULL;
}

void reply_clear(reply *r) {
    cJSON_Delete(r->result);
    redwork_buffer_free(&r->raw);
    empty(r);
}

int reply_is_error(const reply *r) { return r->code[0] != '\0'; }

int redwork_reply_json(redwork_reply *rep, cJSON *value) {
    if (value == NULL)
        return -1;
    reply_clear(rep);
    rep->result = value;
    return 0;
}

int redwork_reply_string(redwork_reply *rep, const char *s) {
    return s == NULL ? -1 : redwork_reply_json(rep, cJSON_CreateString(s));
}

int redwork_reply_raw(redwork_reply *rep, const char *json, size_t len) {
    size_t at = 0;
    if (json == NULL || request_json_check(json, len, &at) != 0)
        return redwork_reply_error(rep, PROTOCOL_HANDLER_FAILED,
                                   "the handler's raw reply is not one JSON value "
                                   "(at byte %zu of %zu)", at, len);
    reply_clear(rep);
    if (buffer_append(&rep->raw, json, len) != 0) {
        redwork_buffer_free(&rep->raw);
        return -1;
    }
    return 0;
}

/* Replaces every byte of S that is not part of valid UTF-8 with '?', so a
 * message cut at REPLY_MESSAGE_MAX, or quoting a client's bytes, is still a
 * valid JSON string. */
static void utf8_sanitize(char *s) {
    size_t n = strlen(s), at;
    while ((at = redwork_utf8_invalid_at(s, n)) < n) {
        s[at] = '?';
        s += at + 1;
        n -= at + 1;
    }
}

void reply_verror(reply *r, const char *code, const char *fmt, va_list ap) {
    size_t n = 0;
    while (code != NULL && protocol_code_char((unsigned char)code[n]))
        n++;
    int valid = n > 0 && n <= PROTOCOL_CODE_MAX && code[n] == '\0';
    reply_clear(r);
    snprintf(r->code, sizeof r->code, "%s", valid ? code : PROTOCOL_HANDLER_FAILED);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    utf8_sanitize(r->message);
}

int redwork_reply_error(redwork_reply *rep, const char *code, const char *fmt,
                        ...) {
    va_list ap;
    va_start(ap, fmt);
    reply_verror(rep, code, fmt, ap);
    va_end(ap);
    return -1;
}

/* Appends the result of R as compact JSON. */
static int append_result(buffer *out, const reply *r) {
    if (r->raw.len > 0)
        return buffer_append(out, r->raw.data, r->raw.len);
    if (r->result == NULL)
        return buffer_append_str(out, "null");
    /* cJSON prints into the buffer's spare room; given too little it says
     * so, and the room is doubled. It needs 5 bytes more than it writes. */
    size_t room = RESULT_MIN;
    for (;;) {
        if (buffer_reserve(out, room) != 0)
            return -1;
        room = out->cap - out->len - 1;
        if (cJSON_PrintPreallocated(r->result, out->data + out->len, (int)(room > 0x7fffffff ? 0x7fffffff : room), 0)) {
            out->len += strlen(out->data + out->len);
            return 0;
        }
        if (room >= 0x7fffffff) {
            out->failed = 1;
            return -1;
        }
        room *= 2;
    }
}

int reply_envelope(buffer *out, const reply *r, const char *req_id, int id_is_number,
                   const char *handler, const char *worker, long long duration_us) {
    size_t start = out->len;
    buffer_append_str(out, "{\"req_id\":");
    if (id_is_number) /* the seed's integer id comes back an integer */
        buffer_append_str(out, req_id);
    else
        redwork_buffer_append_json(out, req_id, strlen(req_id));
    if (reply_is_error(r)) {
        buffer_append_str(out, ",\"ok\":false,\"error\":{\"code\":");
        redwork_buffer_append_json(out, r->code, strlen(r->code));
        buffer_append_str(out, ",\"message\":");
        redwork_buffer_append_json(out, r->message, strlen(r->message));
        buffer_append_str(out, "}");
    } else {
        buffer_append_str(out, ",\"ok\":true,\"result\":");
        size_t from = out->len;
        append_result(out, r);
        /* A raw result passed request_json_check, UTF-8 included. */
        size_t bad = out->failed || r->raw.len > 0
                         ? out->len - from
                         : redwork_utf8_invalid_at(out->data + from, out->len - from);
        if (bad < out->len - from) {
            /* JSON is UTF-8: a handler's bytes that are not become its error. */
            out->len = start;
            reply e;
            reply_init(&e);
            snprintf(e.code, sizeof e.code, "%s", PROTOCOL_HANDLER_FAILED);
            snprintf(e.message, sizeof e.message,
                     "the handler's result is not valid UTF-8 (at byte %zu of it)", bad);
            return reply_envelope(out, &e, req_id, id_is_number, handler, worker, duration_us);
        }
    }
    buffer_append_str(out, ",\"handler\":");
    if (handler != NULL)
        redwork_buffer_append_json(out, handler, strlen(handler));
    else
        buffer_append_str(out, "null");
    buffer_append_str(out, ",\"worker\":");
    redwork_buffer_append_json(out, worker, strlen(worker));
    buffer_append_str(out, ",\"duration_us\":");
    buffer_append_ll(out, duration_us);
    buffer_append_str(out, "}");
    return out->failed ? -1 : 0;
}

/* Appends the argument naming REQ's reply channel (and stored reply):
 * its reply_to, or <reply_prefix><req_id>. */
static void reply_channel(buffer *out, const config *cfg, const request *req) {
    if (req->reply_to != NULL)
        resp_bulk(out, req->reply_to, req->reply_to_len);
    else
        resp_bulk_pair(out, cfg->reply_prefix, req->id);
}

int reply_write(const config *cfg, request *req, const reply *r,
                long long duration_us, buffer *scratch) {
    buffer_reset(scratch);
    redwork_buffer_shrink(scratch, SCRATCH_KEEP); /* after one very large reply */
    buffer_reset(&req->out);
    req->has_reply = 1;
    req->is_error = reply_is_error(r);
    req->outcome = metrics_outcome(r->code);
    reply_envelope(scratch, r, req->id, req->id_is_number,
                   req->handler != NULL ? plugin_name(req->handler) : NULL,
                   cfg->id, duration_us);
    buffer *out = &req->out;
    req->commands = 1;
    req->store_commands = 0;
    if (cfg->reply_store == REPLY_STORE_LIST) {
        resp_array(out, 3);
        resp_bulk_str(out, "RPUSH");
        reply_channel(out, cfg, req);
        resp_bulk(out, scratch->data, scratch->len);
        resp_array(out, 3);
        resp_bulk_str(out, "PEXPIRE");
        reply_channel(out, cfg, req);
        resp_bulk_ll(out, cfg->reply_ttl_ms);
        req->commands = 3;
        req->store_commands = 2;
    }
    resp_array(out, 3);
    resp_bulk_str(out, "PUBLISH");
    reply_channel(out, cfg, req);
    resp_bulk(out, scratch->data, scratch->len);
    req->lost = scratch->failed || out->failed;
    return req->lost ? -1 : 0;
}

int reply_write_error(const config *cfg, request *req, buffer *scratch, const char *code,
                      const char *fmt, ...) {
    reply r;
    reply_init(&r);
    va_list ap;
    va_start(ap, fmt);
    reply_verror(&r, code, fmt, ap);
    va_end(ap);
    return reply_write(cfg, req, &r, 0, scratch);
}

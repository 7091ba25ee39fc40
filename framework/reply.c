/* reply.c -- replies: the SDK's redwork_reply_* setters, the protocol v1
 * envelope, and reply_sink, which publishes envelopes on Redis.
 *
 * A sink reconnects once when its connection broke, then gives up on that
 * reply (Pub/Sub is at-most-once; the loss is counted and logged, rate-
 * limited). With reply_store = list, RPUSH + PEXPIRE + PUBLISH go out in
 * one pipelined round trip. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"

#define CODE_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"

static log_limit lost_limit = LOG_LIMIT_INIT;

void reply_init(reply *r) {
    r->result = NULL;
    r->code[0] = '\0';
    r->message[0] = '\0';
}

void reply_clear(reply *r) {
    cJSON_Delete(r->result);
    reply_init(r);
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

/* Replaces every byte of S that is not part of valid UTF-8 with '?', so a
 * message cut at REPLY_MESSAGE_MAX, or quoting a client's bytes, is still a
 * valid JSON string. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2
                 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        size_t i = 1;
        while (i < n && (p[i] & 0xC0) == 0x80)
            i++;
        if (n == 0 || i < n) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static void reply_verror(reply *r, const char *code, const char *fmt,
                         va_list ap) {
    size_t n = code != NULL ? strspn(code, CODE_CHARS) : 0;
    int valid = n > 0 && n <= REPLY_CODE_MAX && code[n] == '\0';
    reply_clear(r);
    snprintf(r->code, sizeof r->code, "%s", valid ? code : "handler_failed");
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

char *reply_encode(const reply *r, const char *req_id, const char *handler,
                   const char *worker, long long duration_us) {
    cJSON *env = cJSON_CreateObject();
    if (env == NULL)
        return NULL;
    int ok = cJSON_AddStringToObject(env, "req_id", req_id) != NULL &&
             cJSON_AddBoolToObject(env, "ok", !reply_is_error(r)) != NULL;
    if (ok && reply_is_error(r)) {
        cJSON *error = cJSON_AddObjectToObject(env, "error");
        ok = error != NULL &&
             cJSON_AddStringToObject(error, "code", r->code) != NULL &&
             cJSON_AddStringToObject(error, "message", r->message) != NULL;
    } else if (ok && r->result != NULL) {
        /* A reference: the envelope is freed without freeing the result. */
        ok = cJSON_AddItemReferenceToObject(env, "result", r->result);
    } else if (ok) {
        ok = cJSON_AddNullToObject(env, "result") != NULL;
    }
    ok = ok &&
         (handler != NULL ? cJSON_AddStringToObject(env, "handler", handler)
                          : cJSON_AddNullToObject(env, "handler")) != NULL &&
         cJSON_AddStringToObject(env, "worker", worker) != NULL &&
         cJSON_AddNumberToObject(env, "duration_us", (double)duration_us) != NULL;
    char *out = ok ? cJSON_PrintUnformatted(env) : NULL;
    cJSON_Delete(env);
    return out;
}

struct reply_sink {
    const config *cfg;
    stats *st;
    redisContext *c; /* NULL while disconnected */
};

reply_sink *reply_sink_create(const config *cfg, stats *st) {
    reply_sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->st = st;
    return s;
}

void reply_sink_free(reply_sink *s) {
    if (s == NULL)
        return;
    if (s->c != NULL)
        redisFree(s->c);
    free(s);
}

/* One attempt to publish JSON for REQ_ID on the open connection. Returns 0,
 * or -1 with ERR. */
static int publish_once(reply_sink *s, const char *req_id, const char *json,
                        size_t len, char *err, size_t errlen) {
    const config *cfg = s->cfg;
    char key[512];
    snprintf(key, sizeof key, "%s%s", cfg->reply_prefix, req_id);
    int commands = 1;
    if (cfg->reply_store == REPLY_STORE_LIST) {
        redisAppendCommand(s->c, "RPUSH %s %b", key, json, len);
        redisAppendCommand(s->c, "PEXPIRE %s %lld", key, cfg->reply_ttl_ms);
        commands = 3;
    }
    redisAppendCommand(s->c, "PUBLISH %s %b", key, json, len);
    int status = 0;
    for (int i = 0; i < commands; i++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK ||
            r->type == REDIS_REPLY_ERROR) {
            if (status == 0)
                conn_error(s->c, r, err, errlen);
            status = -1;
        }
        freeReplyObject(r);
        if (s->c->err)
            break;
    }
    return status;
}

int reply_send(reply_sink *s, const reply *r, const char *req_id,
               const char *handler, long long duration_us) {
    char err[256] = "out of memory";
    char *json = reply_encode(r, req_id, handler, s->cfg->id, duration_us);
    int status = -1;
    for (int attempt = 0; json != NULL && attempt < 2 && status != 0; attempt++) {
        if (s->c == NULL && (s->c = conn_open(s->cfg, err, sizeof err)) == NULL)
            break;
        status = publish_once(s, req_id, json, strlen(json), err, sizeof err);
        if (status != 0 && s->c->err) { /* broken: reconnect, try again */
            redisFree(s->c);
            s->c = NULL;
        } else if (status != 0) {
            break; /* Redis refused it: trying again would not help */
        }
    }
    free(json);

    stats_add(s->st->requests);
    if (reply_is_error(r))
        stats_add(s->st->errors);
    if (status != 0) {
        stats_add(s->st->lost);
        log_limited(&lost_limit, LOG_LEVEL_WARN, "reply",
                    "reply for req_id %s lost: %s", req_id, err);
    }
    return status;
}

int reply_send_error(reply_sink *s, const char *req_id, const char *handler,
                     const char *code, const char *fmt, ...) {
    reply r;
    reply_init(&r);
    va_list ap;
    va_start(ap, fmt);
    reply_verror(&r, code, fmt, ap);
    va_end(ap);
    return reply_send(s, &r, req_id, handler, 0);
}

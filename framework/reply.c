/* reply.c -- replies: the SDK's redwork_reply_* setters, the protocol v1
 * envelope, and reply_sink, which publishes envelopes on Redis.
 *
 * A sink reconnects once when its connection broke, then gives up on that
 * reply (Pub/Sub is at-most-once; the loss is counted and logged, rate-
 * limited). With reply_store = list, RPUSH + PEXPIRE + PUBLISH go out in
 * one pipelined round trip. */
#include "reply.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "jsonstr.h"
#include "log.h"
#include "plugin.h"

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

/* The envelope is written as text, not built as a cJSON tree: it is made
 * once per request, and the tree's allocations and number printing cost
 * more than the handler in a fast service. Only the result goes through
 * cJSON. */
char *reply_encode(const reply *r, const char *req_id, const char *handler,
                   const char *worker, long long duration_us) {
    int is_error = reply_is_error(r);
    char *result = NULL;
    if (!is_error && r->result != NULL && (result = cJSON_PrintUnformatted(r->result)) == NULL)
        return NULL;
    size_t cap = 160 + JSONSTR_ESCAPED_MAX(strlen(req_id) + strlen(worker)) +
                 (handler != NULL ? JSONSTR_ESCAPED_MAX(strlen(handler)) : 0) +
                 (result != NULL ? strlen(result) : 0) +
                 (is_error ? JSONSTR_ESCAPED_MAX(strlen(r->code) + strlen(r->message)) : 0);
    char *out = malloc(cap);
    if (out == NULL) {
        free(result);
        return NULL;
    }
    size_t pos = (size_t)snprintf(out, cap, "{\"req_id\":\"");
    redwork_jsonstr_escape(out, cap, &pos, req_id);
    if (is_error) {
        pos += (size_t)snprintf(out + pos, cap - pos, "\",\"ok\":false,\"error\":{\"code\":\"");
        redwork_jsonstr_escape(out, cap, &pos, r->code);
        pos += (size_t)snprintf(out + pos, cap - pos, "\",\"message\":\"");
        redwork_jsonstr_escape(out, cap, &pos, r->message);
        pos += (size_t)snprintf(out + pos, cap - pos, "\"}");
    } else {
        pos += (size_t)snprintf(out + pos, cap - pos, "\",\"ok\":true,\"result\":%s",
                                result != NULL ? result : "null");
    }
    if (handler != NULL) {
        pos += (size_t)snprintf(out + pos, cap - pos, ",\"handler\":\"");
        redwork_jsonstr_escape(out, cap, &pos, handler);
        pos += (size_t)snprintf(out + pos, cap - pos, "\"");
    } else {
        pos += (size_t)snprintf(out + pos, cap - pos, ",\"handler\":null");
    }
    pos += (size_t)snprintf(out + pos, cap - pos, ",\"worker\":\"");
    redwork_jsonstr_escape(out, cap, &pos, worker);
    snprintf(out + pos, cap - pos, "\",\"duration_us\":%lld}", duration_us);
    free(result);
    return out;
}

/* A reply handed to Redis whose answers have not been read yet. */
typedef struct pending_reply {
    char *key; /* <reply_prefix><req_id>: the channel, and the list */
    char *json;
    size_t len;
    uint64_t made_us; /* to give up on it after REPLY_RETRY_MAX_MS */
    char *ack_stream; /* transport = stream: XACK + XDEL ack_id after it */
    char ack_id[48];
} pending_reply;

struct reply_sink {
    const config *cfg;
    stats *st;
    redisContext *c; /* NULL while disconnected */
    int broken;      /* the connection failed: reconnect and resend */
    uint64_t last_attempt_us; /* of a reconnect */
    pending_reply pending[REPLY_PIPELINE];
    size_t first;   /* the oldest reply not fully answered */
    size_t count;   /* replies in pending[] */
    int answers;    /* answers already read for pending[first] */
    char refused[256]; /* Redis's error for pending[first], if any */
};

reply_sink *reply_sink_create(const config *cfg, stats *st) {
    reply_sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->st = st;
    return s;
}

static void drop_connection(reply_sink *s) {
    if (s->c != NULL)
        redisFree(s->c);
    s->c = NULL;
    s->broken = 1;
    s->answers = 0;
    s->refused[0] = '\0';
}

static void release(pending_reply *p) {
    free(p->key);
    free(p->json);
    free(p->ack_stream);
}

static void lose(reply_sink *s, pending_reply *p, const char *why) {
    stats_add(s->st->lost);
    redwork_log_limited(&lost_limit, LOG_LEVEL_WARN, "reply", "reply on %s lost: %s",
                p->key, why);
    release(p);
}

/* The commands a pending reply takes, so many answers to read for it. */
static int commands_of(const reply_sink *s, const pending_reply *p) {
    return 1 + (s->cfg->reply_store == REPLY_STORE_LIST ? 2 : 0) +
           (p->ack_stream != NULL ? 2 : 0);
}

reply_target reply_target_of(const request *req) {
    reply_target to = {
        .req_id = req->id,
        .handler = req->handler != NULL ? plugin_name(req->handler) : NULL,
        .stream = req->entry_id[0] ? req->channel : NULL,
        .entry_id = req->entry_id[0] ? req->entry_id : NULL,
    };
    return to;
}

void reply_sink_free(reply_sink *s) {
    if (s == NULL)
        return;
    reply_sink_flush(s);
    for (; s->first < s->count; s->first++)
        lose(s, &s->pending[s->first], "the daemon is stopping and Redis did "
             "not take it");
    if (s->c != NULL)
        redisFree(s->c);
    free(s);
}

size_t reply_sink_pending(const reply_sink *s) { return s->count - s->first; }

/* Appends the commands of P to the connection's output buffer. */
static void append_reply(reply_sink *s, const pending_reply *p) {
    if (s->cfg->reply_store == REPLY_STORE_LIST) {
        redisAppendCommand(s->c, "RPUSH %s %b", p->key, p->json, p->len);
        redisAppendCommand(s->c, "PEXPIRE %s %lld", p->key, s->cfg->reply_ttl_ms);
    }
    redisAppendCommand(s->c, "PUBLISH %s %b", p->key, p->json, p->len);
    if (p->ack_stream != NULL) { /* in the same round trip, after the reply */
        redisAppendCommand(s->c, "XACK %s %s %s", p->ack_stream, s->cfg->group,
                           p->ack_id);
        redisAppendCommand(s->c, "XDEL %s %s", p->ack_stream, p->ack_id);
    }
}

/* Writes the output buffer; marks the connection broken on failure. */
static void write_out(reply_sink *s) {
    int done = 0;
    while (!s->broken && !done)
        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            s->broken = 1;
}

/* Gives up on the replies older than REPLY_RETRY_MAX_MS, oldest first. */
static void lose_stale(reply_sink *s, const char *why) {
    uint64_t cutoff = clock_now_us() - (uint64_t)REPLY_RETRY_MAX_MS * 1000u;
    while (s->first < s->count && s->pending[s->first].made_us < cutoff) {
        lose(s, &s->pending[s->first++], why);
        s->answers = 0;
        s->refused[0] = '\0';
    }
}

/* Makes sure the connection is up, reconnecting (at most once per
 * REPLY_RETRY_INTERVAL_MS unless FORCE) and sending again every reply not
 * answered yet. Returns 0 if connected. */
static int ensure_connected(reply_sink *s, int force) {
    if (s->c != NULL && !s->broken)
        return 0;
    uint64_t now = clock_now_us();
    if (!force && now - s->last_attempt_us < REPLY_RETRY_INTERVAL_MS * 1000u)
        return -1;
    s->last_attempt_us = now;
    char err[256];
    int was_up = s->c != NULL;
    if (s->c != NULL)
        snprintf(err, sizeof err, "%s", s->c->errstr);
    drop_connection(s);
    if ((s->c = redwork_conn_open(s->cfg, err, sizeof err)) == NULL) {
        if (was_up)
            log_warn("reply", "lost the connection to redis: %s; %zu replies "
                     "wait for it", err, reply_sink_pending(s));
        lose_stale(s, err);
        return -1;
    }
    s->broken = 0;
    if (reply_sink_pending(s) > 0)
        log_info("reply", "connected to redis again: sending %zu waiting replies",
                 reply_sink_pending(s));
    for (size_t i = s->first; i < s->count; i++)
        append_reply(s, &s->pending[i]);
    return 0;
}

/* Reads answers and retires the replies they complete, oldest first.
 * WAIT: block until every reply is answered; else take only what has
 * arrived. Stops on a broken connection. */
static void read_answers(reply_sink *s, int wait) {
    if (!wait) {
        struct pollfd fd = {.fd = s->c->fd, .events = POLLIN};
        if (poll(&fd, 1, 0) > 0 && redisBufferRead(s->c) != REDIS_OK) {
            s->broken = 1;
            return;
        }
    }
    while (s->first < s->count) {
        redisReply *r = NULL;
        int status = wait ? redisGetReply(s->c, (void **)&r)
                          : redisGetReplyFromReader(s->c, (void **)&r);
        if (status != REDIS_OK) {
            s->broken = 1;
            return;
        }
        if (r == NULL)
            return; /* not arrived yet */
        if (r->type == REDIS_REPLY_ERROR && s->refused[0] == '\0')
            redwork_conn_error(s->c, r, s->refused, sizeof s->refused);
        freeReplyObject(r);
        if (++s->answers < commands_of(s, &s->pending[s->first]))
            continue;
        pending_reply *p = &s->pending[s->first++];
        if (s->refused[0] != '\0') /* Redis said no: resending would not help */
            lose(s, p, s->refused);
        else
            release(p);
        s->answers = 0;
        s->refused[0] = '\0';
    }
    s->first = s->count = 0; /* all answered */
}

/* Sends what is buffered and reads answers (WAIT: all of them), with one
 * reconnect if the connection breaks on the way. */
static void send_pending(reply_sink *s, int wait, int force) {
    for (int attempt = 0; attempt < 2 && reply_sink_pending(s) > 0; attempt++) {
        if (ensure_connected(s, force || attempt > 0) != 0)
            return;
        write_out(s);
        if (!s->broken)
            read_answers(s, wait);
        if (!s->broken)
            return;
    }
}

void reply_sink_write(reply_sink *s) {
    send_pending(s, 0, 0);
}

int reply_sink_flush(reply_sink *s) {
    send_pending(s, 1, 1);
    return reply_sink_pending(s) == 0 ? 0 : -1;
}

int reply_send(reply_sink *s, const reply *r, const reply_target *to,
               long long duration_us) {
    stats_add(s->st->requests);
    if (reply_is_error(r))
        stats_add(s->st->errors);
    if (s->count == REPLY_PIPELINE) {
        reply_sink_flush(s);
        if (reply_sink_pending(s) == REPLY_PIPELINE) /* Redis is away: make room */
            lose(s, &s->pending[s->first++], "too many replies wait for redis");
        if (s->first > 0) { /* compact; the connection is resent from first */
            memmove(s->pending, s->pending + s->first,
                    reply_sink_pending(s) * sizeof *s->pending);
            s->count -= s->first;
            s->first = 0;
            s->answers = 0;
            drop_connection(s);
        }
    }
    pending_reply *p = &s->pending[s->count];
    memset(p, 0, sizeof *p);
    p->json = reply_encode(r, to->req_id, to->handler, s->cfg->id, duration_us);
    size_t keylen = strlen(s->cfg->reply_prefix) + strlen(to->req_id) + 1;
    p->key = malloc(keylen);
    if (to->stream != NULL) {
        p->ack_stream = strdup(to->stream);
        snprintf(p->ack_id, sizeof p->ack_id, "%s", to->entry_id);
    }
    if (p->json == NULL || p->key == NULL || (to->stream != NULL && p->ack_stream == NULL)) {
        lose(s, p, "out of memory");
        return -1;
    }
    snprintf(p->key, keylen, "%s%s", s->cfg->reply_prefix, to->req_id);
    p->len = strlen(p->json);
    p->made_us = clock_now_us();
    /* Appended only to a working connection (a reconnect sends everything
     * pending again), so the answers stay in step with pending[]. */
    int up = ensure_connected(s, 0) == 0;
    s->count++;
    if (up)
        append_reply(s, p);
    return 0;
}

int reply_send_error(reply_sink *s, const reply_target *to, const char *code,
                     const char *fmt, ...) {
    reply r;
    reply_init(&r);
    va_list ap;
    va_start(ap, fmt);
    reply_verror(&r, code, fmt, ap);
    va_end(ap);
    return reply_send(s, &r, to, 0);
}

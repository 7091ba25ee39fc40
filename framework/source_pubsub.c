/* source_pubsub.c -- transport = pubsub: requests from Redis Pub/Sub.
 *
 * DESIGN. One subscriber wire: SUBSCRIBE for plain channels, PSUBSCRIBE
 * for globs, sent again whenever the wire comes back. Every message is
 * handed to the dispatcher as it is parsed; Pub/Sub cannot be asked to
 * wait, so the dispatcher answers what it has no room for.
 *
 * Overlapping subscriptions (a channel and a pattern, or two patterns)
 * deliver one PUBLISH once per match. Redis writes all deliveries of one
 * PUBLISH to a subscriber back to back, so a copy is a message equal to
 * the previous one (channel and body) arriving through a subscription
 * that has not delivered it yet; it is counted and dropped.
 *
 * Stopping: UNSUBSCRIBE and PUNSUBSCRIBE, then keep taking messages until
 * Redis confirms there is no subscription left (bounded by
 * STOP_TIMEOUT_MS), so nothing Redis already delivered here is dropped. */
#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "resp.h"

#define STOP_TIMEOUT_MS 2000

struct source {
    const config *cfg;
    loop *lp;
    stats *st;
    source_sink sink;
    wire *sub;
    size_t confirmed;      /* subscriptions confirmed on this connection */
    int stopping, stopped;
    int busy;              /* the subscriber is read once a round */
    loop_timer stop_timer;
    char refused[512];     /* a (P)SUBSCRIBE refused, for start() */
    int has_patterns;
    buffer last_channel, last_body; /* the previous message, to spot copies */
    unsigned char *delivered;    /* per subscription: delivered it */
    log_limit oom_limit;
};

static int is_pattern(const char *channel) { return strpbrk(channel, "*?[") != NULL; }

/* Sends SUBSCRIBE and PSUBSCRIBE for every channel. */
static void subscribe_all(source *s) {
    buffer *out = wire_out(s->sub);
    for (int patterns = 0; patterns <= 1; patterns++) {
        size_t n = 0;
        for (size_t i = 0; i < s->cfg->channel_count; i++)
            n += is_pattern(s->cfg->channel_list[i]) == patterns;
        if (n == 0)
            continue;
        resp_array(out, n + 1);
        resp_bulk_str(out, patterns ? "PSUBSCRIBE" : "SUBSCRIBE");
        for (size_t i = 0; i < s->cfg->channel_count; i++)
            if (is_pattern(s->cfg->channel_list[i]) == patterns)
                resp_bulk_str(out, s->cfg->channel_list[i]);
    }
}

static void finish_stop(source *s) {
    if (s->stopped)
        return;
    s->stopped = 1;
    loop_timer_stop(s->lp, &s->stop_timer);
    s->sink.stopped(s->sink.ctx);
}

static void on_up(void *ctx) {
    source *s = ctx;
    s->confirmed = 0;
    if (s->stopping) {
        finish_stop(s);
        return;
    }
    subscribe_all(s);
}

static void on_down(void *ctx, const char *why) {
    (void)why;
    source *s = ctx;
    if (s->stopping)
        finish_stop(s); /* nothing more can come from this connection */
}

/* The index of the subscription a delivery came through, or -1. */
static int subscription_index(const source *s, const resp_value *name) {
    for (size_t i = 0; i < s->cfg->channel_count; i++)
        if (resp_is(name, s->cfg->channel_list[i]))
            return (int)i;
    return -1;
}

/* 1 if this delivery is another copy of the previous message (only with
 * patterns: plain channels never overlap). */
static int is_copy(source *s, int sub, const resp_value *channel, const resp_value *body) {
    if (sub < 0)
        return 0;
    if (!s->delivered[sub] && body->len == s->last_body.len &&
        channel->len == s->last_channel.len && s->last_channel.data != NULL &&
        memcmp(channel->str, s->last_channel.data, channel->len) == 0 &&
        memcmp(body->str, s->last_body.data, body->len) == 0) {
        s->delivered[sub] = 1;
        return 1;
    }
    /* A new message: remember it. Out of memory only weakens the check. */
    memset(s->delivered, 0, s->cfg->channel_count);
    s->delivered[sub] = 1;
    buffer_reset(&s->last_channel);
    buffer_reset(&s->last_body);
    redwork_buffer_shrink(&s->last_body, 65536);
    if (buffer_append(&s->last_channel, channel->str, channel->len) != 0 ||
        buffer_append(&s->last_body, body->str, body->len) != 0) {
        redwork_buffer_free(&s->last_channel);
        redwork_buffer_free(&s->last_body);
    }
    return 0;
}

static void take_message(source *s, const resp_value *through, const resp_value *channel,
                         const resp_value *body) {
    stats_add(s->st->received);
    if (s->has_patterns && is_copy(s, subscription_index(s, through), channel, body)) {
        stats_add(s->st->duplicates);
        return;
    }
    request *req = s->sink.get(s->sink.ctx);
    if (req == NULL) {
        stats_add(s->st->rejected);
        log_limited(&s->oom_limit, LOG_LEVEL_ERROR, "pubsub",
                    "out of memory: a message on %s dropped", channel->str);
        return;
    }
    char why[256];
    if (s->sink.take(s->sink.ctx, req, body->str, body->len, channel->str, channel->len,
                     wire_read_us(s->sub), why, sizeof why) != 0)
        s->sink.put(s->sink.ctx, req);
}

/* Every reply of the subscriber wire: messages and subscription changes. */
static void on_push(void *ctx, const resp_value *v) {
    source *s = ctx;
    if (v->type == RESP_ERROR) {
        snprintf(s->refused, sizeof s->refused, "redis %s: (P)SUBSCRIBE %s refused: %s",
                 s->cfg->redis_where, s->cfg->channels, v->str);
        if (s->confirmed == s->cfg->channel_count)
            log_error("pubsub", "%s", s->refused);
        return;
    }
    if (v->type != RESP_ARRAY || v->integer < 3 || v[1].type != RESP_STRING)
        return;
    const resp_value *kind = &v[1], *a = resp_next(v, kind), *b = resp_next(v, a);
    if (resp_is(kind, "message")) {
        take_message(s, a, a, b);
    } else if (resp_is(kind, "pmessage") && v->integer == 4) {
        take_message(s, a, b, resp_next(v, b));
    } else if (resp_is(kind, "subscribe") || resp_is(kind, "psubscribe")) {
        s->confirmed++;
        log_debug("pubsub", "%s %s", kind->str, a->str);
    } else if ((resp_is(kind, "unsubscribe") || resp_is(kind, "punsubscribe")) &&
               b->type == RESP_INTEGER && b->integer == 0 && s->stopping) {
        finish_stop(s);
    }
}

static void on_stop_timeout(void *ctx) {
    source *s = ctx;
    log_warn("pubsub", "no unsubscribe confirmation from redis within %d ms",
             STOP_TIMEOUT_MS);
    finish_stop(s);
}

static source *pubsub_create(const config *cfg, loop *lp, wire *cmd, stats *st,
                             const source_sink *sink) {
    (void)cmd;
    source *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->lp = lp;
    s->st = st;
    s->sink = *sink;
    s->last_channel = (buffer)BUFFER_INIT;
    s->last_body = (buffer)BUFFER_INIT;
    s->oom_limit = (log_limit)LOG_LIMIT_INIT;
    for (size_t i = 0; i < cfg->channel_count; i++)
        s->has_patterns |= is_pattern(cfg->channel_list[i]);
    loop_timer_init(&s->stop_timer, on_stop_timeout, s);
    static const wire_handlers handlers = {.up = on_up, .down = on_down, .push = on_push};
    s->delivered = calloc(cfg->channel_count, 1);
    s->sub = wire_create(lp, cfg, "subscriber", &handlers, s, WIRE_PUSH);
    if (s->delivered == NULL || s->sub == NULL) {
        wire_free(s->sub);
        free(s->delivered);
        free(s);
        return NULL;
    }
    wire_count_reconnects(s->sub, st);
    return s;
}

static int pubsub_start(source *s, char *err, size_t errlen) {
    if (wire_connect(s->sub, err, errlen) != 0)
        return -1;
    uint64_t deadline = clock_now_us() + (uint64_t)s->cfg->connect_timeout_ms * 1000u;
    while (s->confirmed < s->cfg->channel_count && s->refused[0] == '\0' &&
           wire_is_up(s->sub) && clock_now_us() < deadline)
        loop_run_once(s->lp, 10);
    if (s->refused[0] != '\0') {
        snprintf(err, errlen, "%s", s->refused);
        return -1;
    }
    if (s->confirmed < s->cfg->channel_count) {
        snprintf(err, errlen, "redis %s: no confirmation of (P)SUBSCRIBE %s",
                 s->cfg->redis_where, s->cfg->channels);
        return -1;
    }
    return 0;
}

static void pubsub_read(source *s) {
    if (s->busy)
        wire_read(s->sub);
}

static void pubsub_busy(source *s, int busy) {
    s->busy = busy && !s->stopping;
    wire_hold_reads(s->sub, s->busy);
}

static void pubsub_stop(source *s) {
    if (s->stopping)
        return;
    pubsub_busy(s, 0);
    s->stopping = 1;
    if (!wire_is_up(s->sub)) {
        finish_stop(s);
        return;
    }
    resp_args(wire_out(s->sub), "UNSUBSCRIBE");
    resp_args(wire_out(s->sub), "PUNSUBSCRIBE");
    loop_timer_start(s->lp, &s->stop_timer, (uint64_t)STOP_TIMEOUT_MS * 1000u);
}

static void pubsub_reconnect(source *s, const char *why) { wire_reconnect(s->sub, why); }

static void pubsub_cmd_up(source *s) { (void)s; }

static void pubsub_close(source *s) {
    if (s == NULL)
        return;
    loop_timer_stop(s->lp, &s->stop_timer);
    wire_free(s->sub);
    redwork_buffer_free(&s->last_channel);
    redwork_buffer_free(&s->last_body);
    free(s->delivered);
    free(s);
}

/* Nothing of a subscription outlives its connection. */
static void pubsub_leave(source *s) { (void)s; }

const source_ops source_pubsub = {
    .name = "pubsub",
    .create = pubsub_create,
    .start = pubsub_start,
    .read = pubsub_read,
    .busy = pubsub_busy,
    .stop = pubsub_stop,
    .reconnect = pubsub_reconnect,
    .cmd_up = pubsub_cmd_up,
    .leave = pubsub_leave,
    .close = pubsub_close,
};

/* dispatch.c -- the dispatcher: the thread that reads requests from Redis.
 *
 * DESIGN. One thread owns the subscriber connection and never blocks on
 * anything but poll(2) over that socket and a stop pipe. Each round it takes
 * every message hiredis has already parsed (up to BATCH), so one wake-up
 * serves a burst:
 *
 *   1. drop the extra copies that overlapping subscriptions deliver: Redis
 *      writes all deliveries of one PUBLISH to a subscriber back to back, so
 *      a copy is a message equal to the previous one (channel and body)
 *      arriving through a subscription that has not delivered it yet;
 *   2. parse, validate and route it (request.c, [routes], default_handler);
 *   3. with claim = on, claim every answerable message in one pipelined
 *      round trip (SET <claim_prefix><req_id> <id> NX PX ttl) so that of
 *      several daemons on a channel exactly one runs or answers it;
 *   4. push what is runnable on the queue; answer at once what is not
 *      (bad_request, unknown_handler, overloaded) on its own reply sink.
 *
 * Stopping: UNSUBSCRIBE and PUNSUBSCRIBE, then keep handling messages until
 * Redis confirms there is no subscription left, so nothing Redis already
 * delivered to this daemon is dropped. A lost connection is re-established
 * with capped, jittered exponential backoff and the subscriptions renewed;
 * it is logged once when lost and once when back. */
#include "dispatch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "streams.h"

#define BATCH 256
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define STOP_TIMEOUT_MS 2000

/* One message that has a usable req_id, waiting for its claim. */
typedef struct inbound {
    request *req;                  /* runnable; or NULL: answer with code */
    char id[REQUEST_ID_MAX + 1];
    const char *code;
    char message[256];
    const char *stream;            /* transport = stream: its entry, to */
    char entry_id[STREAM_ID_MAX];  /* acknowledge with the answer */
} inbound;

struct dispatcher {
    const config *cfg;
    plugin_set *plugins;
    queue *q;
    stats *st;
    redisContext *sub;   /* pubsub: the subscriber connection */
    stream_source *streams; /* stream: the stream connection */
    stream_holds *holds;    /* stream: the entries this process holds */
    redisContext *cmd;   /* claims; NULL until needed or after a failure */
    reply_sink *sink;    /* immediate answers */
    int stop_pipe[2];
    pthread_t thread;
    int started;
    int has_patterns;
    /* The last message, to recognise copies from overlapping subscriptions. */
    char *last_channel;
    char *last_body;
    size_t last_len, last_cap;
    unsigned char *delivered; /* per subscription: delivered the last one */
    inbound batch[BATCH];
    size_t batch_count;
    log_limit reject_limit;
    log_limit claim_limit;
};

static int is_pattern(const char *channel) {
    return strpbrk(channel, "*?[") != NULL;
}

/* Sends SUBSCRIBE and PSUBSCRIBE for every channel. Returns 0, or -1 with
 * ERR. The confirmations are read by wait_subscribed(). */
static int send_subscribe(dispatcher *d, redisContext *c, char *err,
                          size_t errlen) {
    const config *cfg = d->cfg;
    const char **argv = malloc((cfg->channel_count + 1) * sizeof *argv);
    if (argv == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int patterns = 0; patterns <= 1; patterns++) {
        int argc = 1;
        argv[0] = patterns ? "PSUBSCRIBE" : "SUBSCRIBE";
        for (size_t i = 0; i < cfg->channel_count; i++)
            if (is_pattern(cfg->channel_list[i]) == patterns)
                argv[argc++] = cfg->channel_list[i];
        if (argc > 1)
            redisAppendCommandArgv(c, argc, argv, NULL);
    }
    free(argv);
    return 0;
}

static void handle_reply(dispatcher *d, redisReply *r, uint64_t now);

/* Reads until every channel is confirmed, handling any message that slips
 * in between. Returns 0, or -1 with ERR naming the channel refused. */
static int wait_subscribed(dispatcher *d, redisContext *c, char *err,
                           size_t errlen) {
    size_t confirmed = 0;
    while (confirmed < d->cfg->channel_count) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            redwork_conn_error(c, NULL, err, errlen);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis %s:%lld: (P)SUBSCRIBE %s refused: %s",
                     d->cfg->redis_host, d->cfg->redis_port, d->cfg->channels, r->str);
            freeReplyObject(r);
            return -1;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            (strcmp(r->element[0]->str, "subscribe") == 0 ||
             strcmp(r->element[0]->str, "psubscribe") == 0)) {
            confirmed++;
            log_debug("dispatch", "%s %s", r->element[0]->str,
                      r->element[1]->str);
        } else {
            handle_reply(d, r, clock_now_us());
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Opens a subscriber connection with every channel confirmed. */
static redisContext *subscribe_all(dispatcher *d, char *err, size_t errlen) {
    redisContext *c = redwork_conn_open(d->cfg, err, errlen);
    if (c == NULL)
        return NULL;
    if (send_subscribe(d, c, err, errlen) == 0 &&
        wait_subscribed(d, c, err, errlen) == 0)
        return c;
    redisFree(c);
    return NULL;
}

/* The index of the subscription a delivery came through, or -1. */
static int subscription_index(const dispatcher *d, const char *name) {
    for (size_t i = 0; i < d->cfg->channel_count; i++)
        if (strcmp(d->cfg->channel_list[i], name) == 0)
            return (int)i;
    return -1;
}

/* 1 if this delivery is another copy of the previous message. */
static int is_copy(dispatcher *d, int sub, const char *channel,
                   const char *body, size_t len) {
    if (!d->has_patterns || sub < 0)
        return 0; /* plain channels never overlap */
    if (d->last_channel != NULL && !d->delivered[sub] && len == d->last_len &&
        strcmp(channel, d->last_channel) == 0 &&
        memcmp(body, d->last_body, len) == 0) {
        d->delivered[sub] = 1;
        return 1;
    }
    /* A new message: remember it. Out of memory only weakens the check. */
    memset(d->delivered, 0, d->cfg->channel_count);
    d->delivered[sub] = 1;
    free(d->last_channel);
    d->last_channel = strdup(channel);
    if (len > d->last_cap) {
        char *grown = realloc(d->last_body, len);
        if (grown == NULL) {
            free(d->last_channel);
            d->last_channel = NULL;
            return 0;
        }
        d->last_body = grown;
        d->last_cap = len;
    }
    memcpy(d->last_body, body, len);
    d->last_len = len;
    return 0;
}

/* Routes REQ: its handler field, else the first matching [routes] glob,
 * else default_handler. Returns 0, or -1 with IN->code and message set. */
static int route(dispatcher *d, request *req, inbound *in) {
    const char *name = req->handler_field;
    if (name == NULL)
        name = redwork_config_route_for(d->cfg, req->channel);
    if (name == NULL && *d->cfg->default_handler)
        name = d->cfg->default_handler;
    if (name == NULL) {
        in->code = "unknown_handler";
        snprintf(in->message, sizeof in->message,
                 "no handler in the request, no [routes] entry for channel "
                 "'%.64s' and no default_handler", req->channel);
        return -1;
    }
    req->handler = plugin_acquire(d->plugins, name);
    if (req->handler == NULL) {
        in->code = "unknown_handler";
        snprintf(in->message, sizeof in->message, "no handler named '%.64s'",
                 name);
        return -1;
    }
    return 0;
}

/* Parses, validates and routes one request body that came on CHANNEL (for
 * a stream entry: ENTRY of that stream) and adds it to the batch, to be
 * queued or answered. Returns 0, or -1 if it cannot be answered (logged,
 * counted, and its reason left in WHY). */
static int take_body(dispatcher *d, const char *channel, const char *body,
                     size_t len, uint64_t received_us, const stream_entry *entry,
                     char *why, size_t whylen) {
    inbound *in = &d->batch[d->batch_count];
    request *req = NULL;
    int status = request_parse(body, len, channel,
                               (size_t)d->cfg->max_request_bytes, received_us, &req,
                               in->id, in->message, sizeof in->message);
    if (status == REQUEST_UNANSWERABLE) {
        stats_add(d->st->rejected);
        redwork_log_limited(&d->reject_limit, LOG_LEVEL_WARN, "dispatch",
                    "rejected a %zu-byte message on %s '%s': %s", len,
                    entry != NULL ? "stream" : "channel", channel, in->message);
        snprintf(why, whylen, "%s", in->message);
        return -1;
    }
    in->req = NULL;
    in->code = "bad_request";
    in->stream = entry != NULL ? entry->stream : NULL;
    snprintf(in->entry_id, sizeof in->entry_id, "%s", entry != NULL ? entry->id : "");
    if (status == REQUEST_OK) {
        snprintf(req->entry_id, sizeof req->entry_id, "%s", in->entry_id);
        req->holds = entry != NULL ? d->holds : NULL; /* released when freed */
        if (route(d, req, in) == 0)
            in->req = req;
        else
            request_free(req);
    }
    d->batch_count++;
    return 0;
}

/* Takes one Pub/Sub message: drops the copies of overlapping
 * subscriptions, then takes its body. */
static void take_message(dispatcher *d, int sub, const char *channel,
                         const char *body, size_t len, uint64_t now) {
    stats_add(d->st->received);
    if (is_copy(d, sub, channel, body, len)) {
        stats_add(d->st->duplicates);
        return;
    }
    char why[256];
    take_body(d, channel, body, len, now, NULL, why, sizeof why);
}

/* Sends one SET NX PX per message of the batch, pipelined, and records in
 * LOST which ones another daemon holds. CHECK_OWNER: a nil answer may be
 * our own claim from an attempt whose answers were lost, so GET the key and
 * compare. Returns 0, or -1 with ERR if the connection failed. */
static int claim_round(dispatcher *d, unsigned char *lost, int check_owner,
                       char *err, size_t errlen) {
    const config *cfg = d->cfg;
    for (size_t i = 0; i < d->batch_count; i++) {
        redisAppendCommand(d->cmd, "SET %s%s %s NX PX %lld", cfg->claim_prefix,
                           d->batch[i].id, cfg->id, cfg->claim_ttl_ms);
        if (check_owner)
            redisAppendCommand(d->cmd, "GET %s%s", cfg->claim_prefix, d->batch[i].id);
    }
    for (size_t i = 0; i < d->batch_count; i++) {
        redisReply *set = NULL, *owner = NULL;
        if (redisGetReply(d->cmd, (void **)&set) != REDIS_OK ||
            (check_owner && redisGetReply(d->cmd, (void **)&owner) != REDIS_OK)) {
            freeReplyObject(set);
            redwork_conn_error(d->cmd, NULL, err, errlen);
            return -1;
        }
        /* Lost only when another daemon's id is seen, or (first round) the
         * SET was refused for an existing key; any doubt serves it. */
        lost[i] = set->type == REDIS_REPLY_NIL &&
                  (!check_owner || (owner->type == REDIS_REPLY_STRING &&
                                    strcmp(owner->str, cfg->id) != 0));
        redisReply *refused = set->type == REDIS_REPLY_ERROR ? set
                              : owner != NULL && owner->type == REDIS_REPLY_ERROR ? owner
                                                                                 : NULL;
        if (refused != NULL) /* served anyway */
            redwork_log_limited(&d->claim_limit, LOG_LEVEL_WARN, "dispatch",
                        "claim of req_id %s refused: %s", d->batch[i].id, refused->str);
        freeReplyObject(set);
        freeReplyObject(owner);
    }
    return 0;
}

/* Claims every message of the batch in one pipelined round trip and drops
 * those another daemon won (id emptied). A broken claim connection (Redis
 * restarted, or closed it for idleness) is replaced and the claims sent
 * again, checking which earlier ones were already ours; only if that fails
 * too are the messages served unclaimed: better twice than never. */
static void claim_batch(dispatcher *d) {
    char err[256] = "";
    unsigned char lost[BATCH];
    int claimed = 0;
    for (int attempt = 0; attempt < 2 && !claimed; attempt++) {
        if (d->cmd == NULL && (d->cmd = redwork_conn_open(d->cfg, err, sizeof err)) == NULL)
            continue;
        claimed = claim_round(d, lost, attempt > 0, err, sizeof err) == 0;
        if (!claimed) {
            redisFree(d->cmd);
            d->cmd = NULL;
        }
    }
    if (!claimed) {
        redwork_log_limited(&d->claim_limit, LOG_LEVEL_WARN, "dispatch",
                    "cannot claim %zu requests, serving them unclaimed: %s",
                    d->batch_count, err);
        return;
    }
    for (size_t i = 0; i < d->batch_count; i++)
        if (lost[i]) {
            request_free(d->batch[i].req);
            d->batch[i].req = NULL;
            d->batch[i].id[0] = '\0'; /* another daemon has it */
        }
}

/* Claims, then queues or answers every message of the batch. The runnable
 * ones are pushed in one go; what does not fit is answered 'overloaded' (or
 * 'shutting_down' once the queue is closed). */
static void flush_batch(dispatcher *d) {
    if (d->batch_count == 0) {
        reply_sink_write(d->sink); /* answers given outside the batch */
        return;
    }
    if (d->cfg->claim && d->streams == NULL) /* a group delivers once anyway */
        claim_batch(d);
    void *runnable[BATCH];
    size_t n = 0;
    for (size_t i = 0; i < d->batch_count; i++) {
        inbound *in = &d->batch[i];
        if (in->id[0] == '\0')
            continue;
        if (in->req != NULL)
            runnable[n++] = in->req;
        else
        {
            reply_send_error(d->sink, &(reply_target){.req_id = in->id,
                             .stream = in->stream, .entry_id = in->entry_id},
                             in->code, "%s", in->message);
            if (in->stream != NULL) /* answered and acknowledged */
                stream_holds_remove(d->holds, in->stream, in->entry_id);
        }
    }
    d->batch_count = 0;
    size_t pushed = queue_push_many(d->q, runnable, n);
    for (size_t i = pushed; i < n; i++) {
        request *req = runnable[i];
        int status = queue_push(d->q, req); /* a worker may have made room */
        if (status == QUEUE_OK)
            continue;
        reply_target to = reply_target_of(req);
        if (status == QUEUE_CLOSED && to.stream != NULL) {
            request_free(req); /* left pending: another worker takes it over */
            continue;
        }
        if (status == QUEUE_CLOSED)
            reply_send_error(d->sink, &to, "shutting_down", "the daemon is shutting down");
        else
            reply_send_error(d->sink, &to, "overloaded",
                             "the work queue is full (queue_size %lld)", d->cfg->queue_size);
        request_free(req);
    }
    reply_sink_write(d->sink);
}

/* Handles one reply from the subscriber connection: a message, or a
 * subscription change. */
static void handle_reply(dispatcher *d, redisReply *r, uint64_t now) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "message") == 0) {
        redisReply *body = r->element[2];
        take_message(d, subscription_index(d, r->element[1]->str),
                     r->element[1]->str, body->str, body->len, now);
    } else if (strcmp(kind, "pmessage") == 0 && r->elements == 4) {
        redisReply *body = r->element[3];
        take_message(d, subscription_index(d, r->element[1]->str),
                     r->element[2]->str, body->str, body->len, now);
    }
    if (d->batch_count == BATCH)
        flush_batch(d);
}

/* 1 if R confirms that no subscription is left. */
static int is_last_unsubscribe(const redisReply *r) {
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           (strcmp(r->element[0]->str, "unsubscribe") == 0 ||
            strcmp(r->element[0]->str, "punsubscribe") == 0) &&
           r->element[2]->type == REDIS_REPLY_INTEGER &&
           r->element[2]->integer == 0;
}

/* Handles every reply hiredis has already parsed. Returns 1 if the last
 * unsubscribe confirmation was among them, 0 if not, -1 on a protocol
 * error. */
static int drain_parsed(dispatcher *d) {
    int done = 0;
    uint64_t now = clock_now_us();
    for (;;) {
        redisReply *r = NULL;
        if (redisGetReplyFromReader(d->sub, (void **)&r) != REDIS_OK)
            return -1;
        if (r == NULL)
            break;
        if (is_last_unsubscribe(r))
            done = 1;
        else
            handle_reply(d, r, now);
        freeReplyObject(r);
    }
    flush_batch(d);
    return done;
}

/* Waits for the socket or the stop pipe. Returns poll's revents of the
 * socket (0 on timeout), or -1 if the stop pipe is readable. */
static int wait_readable(dispatcher *d, int timeout_ms) {
    struct pollfd fds[2] = {
        {.fd = d->stop_pipe[0], .events = POLLIN},
        {.fd = d->sub != NULL ? d->sub->fd : -1, .events = POLLIN},
    };
    int n = poll(fds, 2, timeout_ms);
    if (n > 0 && (fds[0].revents & POLLIN))
        return -1;
    return n > 0 ? fds[1].revents : 0;
}

/* Drops the dispatcher's Redis connection, whichever the transport. */
static void disconnect(dispatcher *d) {
    if (d->sub != NULL)
        redisFree(d->sub);
    d->sub = NULL;
    stream_source_free(d->streams);
    d->streams = NULL;
}

/* Opens the dispatcher's connection for its transport. Returns 0, or -1
 * with ERR. */
static int connect_source(dispatcher *d, char *err, size_t errlen) {
    if (d->cfg->transport == TRANSPORT_STREAM)
        d->streams = stream_source_open(d->cfg, err, errlen);
    else
        d->sub = subscribe_all(d, err, errlen);
    return d->sub != NULL || d->streams != NULL ? 0 : -1;
}

/* The connection failed (WHY): sleeps with jitter and reconnects (and
 * resubscribes) until that works or stop is asked, logging the loss, the
 * first failed attempt of each kind, and the return. Returns 0 when
 * connected again, -1 on stop. */
static int reconnect(dispatcher *d, const char *why) {
    log_warn("dispatch", "lost the connection to redis %s:%lld: %s; reconnecting",
             d->cfg->redis_host, d->cfg->redis_port, why);
    disconnect(d);
    int delay = BACKOFF_MIN_MS;
    unsigned seed = (unsigned)clock_now_us();
    char last[256] = "";
    for (;;) {
        int jittered = delay / 2 + (int)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
        struct pollfd fd = {.fd = d->stop_pipe[0], .events = POLLIN};
        if (poll(&fd, 1, jittered) > 0)
            return -1;
        char err[256];
        if (connect_source(d, err, sizeof err) == 0) {
            log_info("dispatch", "reconnected to redis %s:%lld", d->cfg->redis_host,
                     d->cfg->redis_port);
            return 0;
        }
        if (strcmp(err, last) != 0) /* e.g. refused, then a wrong password */
            log_warn("dispatch", "reconnect failed: %s; retrying", err);
        snprintf(last, sizeof last, "%s", err);
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
}

/* Unsubscribes and handles what arrives until Redis confirms none is left
 * (bounded by STOP_TIMEOUT_MS). */
static void unsubscribe_all(dispatcher *d) {
    if (d->sub == NULL)
        return;
    redisAppendCommand(d->sub, "UNSUBSCRIBE");
    redisAppendCommand(d->sub, "PUNSUBSCRIBE");
    int done = 0;
    while (redisBufferWrite(d->sub, &done) == REDIS_OK && !done)
        ;
    uint64_t deadline = clock_now_us() + STOP_TIMEOUT_MS * 1000u;
    for (;;) {
        int status = drain_parsed(d);
        if (status != 0)
            break;
        uint64_t now = clock_now_us();
        if (now >= deadline) {
            log_warn("dispatch", "no unsubscribe confirmation from redis "
                     "within %d ms", STOP_TIMEOUT_MS);
            break;
        }
        struct pollfd fd = {.fd = d->sub->fd, .events = POLLIN};
        if (poll(&fd, 1, (int)((deadline - now) / 1000u) + 1) > 0 &&
            redisBufferRead(d->sub) != REDIS_OK)
            break;
    }
}

/* ---- transport = stream ------------------------------------------------ */

#define STREAM_BLOCK_MS 200   /* how long one read waits: the stop latency */
#define STREAM_TRIM_US 1000000u

/* Takes one stream entry: dead-letters what cannot be served (no msg
 * field, no req_id, too many deliveries), else takes its body. */
static void take_entry(dispatcher *d, stream_entry *e, uint64_t now_us,
                       uint64_t now_ms) {
    char why[512], err[256];
    stats_add(d->st->received);
    /* timeout_ms counts from the entry's creation, not from its reading. */
    uint64_t age_us = now_ms > e->entry_ms ? (now_ms - e->entry_ms) * 1000u : 0;
    uint64_t received_us = now_us > age_us ? now_us - age_us : 0;
    if (e->body == NULL) {
        stats_add(d->st->rejected);
        snprintf(why, sizeof why, "the entry has no msg field");
    } else if (e->deliveries > d->cfg->max_deliveries) {
        snprintf(why, sizeof why, "delivered %lld times without an answer "
                 "(its handler crashed or stalled its worker)", e->deliveries);
        char id[REQUEST_ID_MAX + 1], msg[256]; /* id: "" if it has none */
        request *req = NULL;
        request_parse(e->body, e->len, e->stream, (size_t)d->cfg->max_request_bytes,
                      received_us, &req, id, msg, sizeof msg);
        request_free(req);
        stream_holds_remove(d->holds, e->stream, e->id);
        if (stream_source_dead_letter(d->streams, e, why, err, sizeof err) != 0)
            return; /* still pending: taken over again later */
        if (id[0] != '\0')
            reply_send_error(d->sink, &(reply_target){.req_id = id}, "handler_failed",
                             "%s; moved to %s%s", why, e->stream, STREAM_DEAD_SUFFIX);
        return;
    } else if (take_body(d, e->stream, e->body, e->len, received_us, e, why,
                         sizeof why) == 0) {
        return;
    }
    stream_holds_remove(d->holds, e->stream, e->id);
    stream_source_dead_letter(d->streams, e, why, err, sizeof err);
}

/* Waits up to MS for the stop pipe. Returns 1 if stop was asked. */
static int stop_asked(dispatcher *d, int ms) {
    struct pollfd fd = {.fd = d->stop_pipe[0], .events = POLLIN};
    return poll(&fd, 1, ms) > 0;
}

/* Takes the N entries just read or taken over (holding each). */
static void take_entries(dispatcher *d, stream_entry *entries, size_t n) {
    uint64_t now_us = clock_now_us(), now_ms = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        take_entry(d, &entries[i], now_us, now_ms);
        stream_entry_clear(&entries[i]);
    }
    flush_batch(d);
}

/* Holds N entries: they are touched from now until they are answered. */
static void hold_all(dispatcher *d, const stream_entry *entries, size_t n) {
    for (size_t i = 0; i < n; i++)
        stream_holds_add(d->holds, entries[i].stream, entries[i].id);
}

/* An interval of FRACTION (1/FRACTION) of claim_idle_ms, in us, kept
 * within MIN_MS..MAX_MS. */
static uint64_t idle_fraction_us(const config *cfg, long long fraction,
                                 long long min_ms, long long max_ms) {
    long long ms = cfg->claim_idle_ms / fraction;
    ms = ms < min_ms ? min_ms : ms > max_ms ? max_ms : ms;
    return (uint64_t)ms * 1000u;
}

/* The stream loop. Three times per claim_idle_ms it touches the entries it
 * holds, so none of them looks idle; every second it trims; now and then it
 * looks for orphans, entries idle in a dead consumer's pending list. Having
 * found some, it stops reading new entries, waits until it holds none (at
 * most claim_idle_ms: a stuck handler must not stop the worker), and then
 * takes the orphans over one at a time, each run alone: an entry whose
 * handler kills its worker takes no other entry with it, and an innocent
 * entry's delivery count grows only when it really ran. Otherwise it reads
 * as many new entries as the queue has room for. */
static void stream_main(dispatcher *d) {
    stream_entry entries[BATCH];
    uint64_t touch_every = idle_fraction_us(d->cfg, 3, 20, 10000);
    uint64_t orphan_check_every = idle_fraction_us(d->cfg, 2, 100, 1000);
    uint64_t next_touch = 0, next_orphan_check = 0, next_trim = 0;
    uint64_t quiet_by = 0; /* recovery gives up waiting for quiet then */
    int recovering = 0;
    char err[256];
    while (!stop_asked(d, 0)) {
        uint64_t now = clock_now_us();
        int status = 0;
        if (now >= next_touch) {
            status = stream_source_touch(d->streams, d->holds, err, sizeof err);
            next_touch = now + touch_every;
        } else if (now >= next_trim) {
            status = stream_source_trim(d->streams, err, sizeof err);
            next_trim = now + STREAM_TRIM_US;
        } else if (recovering) {
            if (stream_holds_count(d->holds) > 0 && now < quiet_by) {
                stop_asked(d, 5); /* let what it holds finish first */
                continue;
            }
            if (stream_holds_count(d->holds) > 0) { /* a stuck handler: read on */
                log_warn("dispatch", "orphaned entries wait: this worker's handlers "
                         "did not finish within claim_idle_ms (%lld ms)",
                         d->cfg->claim_idle_ms);
                recovering = 0;
                next_orphan_check = now + (uint64_t)d->cfg->claim_idle_ms * 1000u;
                continue;
            }
            status = stream_source_reclaim(d->streams, 1, entries, err, sizeof err);
            if (status > 0) {
                hold_all(d, entries, 1);
                take_entries(d, entries, 1);
                quiet_by = clock_now_us() + (uint64_t)d->cfg->claim_idle_ms * 1000u;
            } else if (status == 0) {
                recovering = 0;
            }
        } else if (now >= next_orphan_check) {
            status = stream_source_has_orphans(d->streams, err, sizeof err);
            recovering = status > 0;
            quiet_by = now + (uint64_t)d->cfg->claim_idle_ms * 1000u;
            next_orphan_check = now + orphan_check_every;
        } else {
            size_t room = queue_room(d->q);
            if (room == 0) {
                stop_asked(d, 10); /* the pool is full: let it work */
                continue;
            }
            status = stream_source_read(d->streams, room < BATCH ? room : BATCH,
                                        STREAM_BLOCK_MS, entries, err, sizeof err);
            if (status > 0) {
                hold_all(d, entries, (size_t)status);
                take_entries(d, entries, (size_t)status);
            }
        }
        if (status < 0 && reconnect(d, err) != 0)
            break;
    }
}

static void *dispatch_main(void *arg) {
    dispatcher *d = arg;
    if (d->streams != NULL) {
        stream_main(d);
        log_info("dispatch", "stopped taking requests");
        return NULL;
    }
    for (;;) {
        int status = drain_parsed(d);
        if (status < 0 && reconnect(d, d->sub->errstr) != 0)
            break;
        int ready = wait_readable(d, -1);
        if (ready < 0) {
            unsubscribe_all(d);
            break;
        }
        if (ready != 0 && redisBufferRead(d->sub) != REDIS_OK &&
            reconnect(d, d->sub->errstr) != 0)
            break;
    }
    log_info("dispatch", "stopped taking requests");
    return NULL;
}

dispatcher *dispatch_create(const config *cfg, plugin_set *plugins,
                            queue *q, stats *st, char *err, size_t errlen) {
    dispatcher *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->plugins = plugins;
    d->q = q;
    d->st = st;
    d->stop_pipe[0] = d->stop_pipe[1] = -1;
    d->reject_limit = (log_limit)LOG_LIMIT_INIT;
    d->claim_limit = (log_limit)LOG_LIMIT_INIT;
    for (size_t i = 0; i < cfg->channel_count; i++)
        d->has_patterns |= is_pattern(cfg->channel_list[i]);
    d->delivered = calloc(cfg->channel_count, 1);
    d->sink = reply_sink_create(cfg, st);
    d->holds = stream_holds_create();
    if (d->delivered == NULL || d->sink == NULL || d->holds == NULL ||
        pipe2(d->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "out of memory or file descriptors");
        goto err;
    }
    if (connect_source(d, err, errlen) != 0)
        goto err;
    flush_batch(d); /* anything that arrived between the subscriptions */
    return d;
err:
    dispatch_free(d);
    return NULL;
}

int dispatch_start(dispatcher *d) {
    if (pthread_create(&d->thread, NULL, dispatch_main, d) != 0)
        return -1;
    d->started = 1;
    return 0;
}

void dispatch_stop(dispatcher *d) {
    char byte = 1;
    ssize_t ignored = write(d->stop_pipe[1], &byte, 1);
    (void)ignored; /* a full pipe already says stop */
}

int dispatch_join(dispatcher *d) {
    if (!d->started)
        return -1;
    pthread_join(d->thread, NULL);
    d->started = 0;
    return 0;
}

void dispatch_free(dispatcher *d) {
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->batch_count; i++)
        request_free(d->batch[i].req);
    disconnect(d);
    stream_holds_free(d->holds);
    if (d->cmd != NULL)
        redisFree(d->cmd);
    reply_sink_free(d->sink);
    if (d->stop_pipe[0] >= 0)
        close(d->stop_pipe[0]);
    if (d->stop_pipe[1] >= 0)
        close(d->stop_pipe[1]);
    free(d->last_channel);
    free(d->last_body);
    free(d->delivered);
    free(d);
}

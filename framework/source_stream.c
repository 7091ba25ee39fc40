/* source_stream.c -- transport = stream: requests read from Redis streams
 * with a consumer group.
 *
 * DESIGN. At-least-once is the point, so an entry leaves the group's
 * pending list only when its reply is out: the publisher writes XACK and
 * XDEL after the reply and releases the entry's hold when Redis has
 * answered them. Until then the entry is held here, and touched (XCLAIM
 * JUSTID) three times per claim_idle_ms, so a slow handler is never taken
 * for a dead one.
 *
 * The reading wire runs one step at a time, each chosen when the last
 * one's answer is in: trim (every second), look for orphans (entries idle
 * past claim_idle_ms: a dead consumer's), take one orphan over, or read
 * new entries -- no more than the dispatcher has room for, so a busy pool
 * pushes back on Redis instead of overflowing. Having seen orphans, the
 * source stops reading, waits until it holds nothing (at most
 * claim_idle_ms: a stuck handler must not stop the worker), and takes the
 * orphans over one at a time, each run alone: an entry whose handler
 * kills its worker takes no other entry with it, and an innocent entry's
 * delivery count grows only when it really ran. An entry delivered more
 * than max_deliveries times, one without a msg field, and one with no
 * usable req_id move to <stream>:dead with the reason (and the caller of
 * a poison entry gets handler_failed).
 *
 * Consumers do not pile up across restarts. A daemon that stops cleanly,
 * holding nothing and sure that nothing was delivered to it unseen (no
 * connection was lost while a read was out), deletes its own consumer
 * (XGROUP DELCONSUMER) as it leaves; and every CONSUMER_FORGET_FACTOR *
 * claim_idle_ms each daemon deletes the consumers that have been idle that
 * long with nothing pending -- a live daemon reads every READ_BLOCK_MS,
 * and XREADGROUP creates a deleted consumer again anyway.
 *
 * In a cluster with more than one stream key (several channels, or
 * stream_shards), no one XREADGROUP can name them all (their slots differ)
 * and one blocking read per key on a shared connection would wait behind
 * the others. So each key has its own reader: a wire pinned to the key's
 * master that blocks on that key alone and reads again as soon as it is
 * answered, while the steps above (without the read) go on the reading
 * wire. The readers share the room: what they ask for in all never
 * exceeds what the dispatcher has room for. */
#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "entry.h"
#include "holds.h"
#include "log.h"
#include "protocol.h"
#include "reply.h"
#include "resp.h"

#define READ_BATCH 256
#define READ_BLOCK_MS 200  /* how long one read waits: the stop latency */
#define TRIM_EVERY_US 1000000u
#define QUIET_POLL_US 5000u
#define RETRY_US 1000000u  /* after Redis refused a step: not in a tight loop */
#define CONSUMER_FORGET_FACTOR 10 /* idle this many claim_idle_ms, nothing pending: gone */

enum step {
    STEP_NONE = 0, STEP_GROUPS, STEP_TRIM, STEP_ORPHANS, STEP_CLAIM, STEP_READ, STEP_CONSUMERS
};

/* In a cluster with several stream keys: the reader of one. */
typedef struct reader {
    source *s;
    size_t stream;  /* index in stream_list */
    wire *w;        /* pinned to the stream's master */
    size_t asked;   /* COUNT of the read in flight; 0: none */
} reader;

struct source {
    const config *cfg;
    loop *lp;
    stats *st;
    source_sink sink;
    wire *rd;              /* reads: one step at a time */
    wire *cmd;             /* touches */
    reader *readers;       /* in a cluster with several keys, one per key; */
    size_t reader_count;   /* else none, and rd reads */
    size_t asked;          /* what the readers' reads in flight asked for */
    holds held;
    enum step step;        /* in flight on rd */
    unsigned outstanding;  /* answers of the step still to come */
    int groups_ready;      /* the groups exist (checked on each connection) */
    int stopping, stopped;
    int busy;              /* rd is read once a round (stream_busy) */
    int recovering;        /* orphans seen: take them over when quiet */
    int orphan_found;      /* this step's answers showed one */
    uint64_t quiet_by, next_orphan_check, next_trim, next_consumer_check;
    int unsure;            /* a connection was lost: entries may be ours unseen */
    uint64_t touch_every, orphan_check_every;
    size_t orphan_stream;  /* where the orphan of the last XPENDING is */
    char orphan_id[HOLD_ID_MAX];
    long long orphan_deliveries;
    loop_timer touch_timer, wake_timer;
    char group_err[512];   /* XGROUP CREATE refused: fatal at start */
    int started;           /* start() has succeeded */
    uint64_t retry_at;     /* no step before this, after a refusal */
    buffer scratch;
    log_limit error_limit;
};

static void next_step(source *s);
static void readers_read(source *s);

/* ---- taking entries ---------------------------------------------------- */

/* The configured stream named V (for a pointer that outlives replies). */
static const char *stream_named(const source *s, const resp_value *v) {
    for (size_t i = 0; i < s->cfg->stream_count; i++)
        if (resp_is(v, s->cfg->stream_list[i]))
            return s->cfg->stream_list[i];
    return NULL;
}

/* Moves REQ's entry to <stream>:dead with WHY: XADD appended to REQ->out
 * (after the caller's error reply, if one was written), then sent through
 * the publisher, which acknowledges the entry after it. */
static void dead_letter(source *s, request *req, const char *body, size_t len,
                        const char *why) {
    char dead[512], maxlen[24], deliveries[24];
    snprintf(dead, sizeof dead, "%s%s", req->hold.stream, PROTOCOL_DEAD_SUFFIX);
    snprintf(maxlen, sizeof maxlen, "%lld", s->cfg->stream_maxlen);
    snprintf(deliveries, sizeof deliveries, "%lld", req->deliveries);
    const char *argv[16];
    size_t lens[16], n = 0;
#define ARG(p, l) (argv[n] = (p), lens[n++] = (l))
#define STR(p) ARG((p), strlen(p))
    STR("XADD");
    STR(dead);
    if (s->cfg->stream_maxlen > 0) {
        STR("MAXLEN");
        STR("~");
        STR(maxlen);
    }
    STR("*");
    STR(PROTOCOL_STREAM_FIELD);
    ARG(body != NULL ? body : "", body != NULL ? len : 0);
    STR("error");
    STR(why);
    STR("deliveries");
    STR(deliveries);
    STR("stream");
    STR(req->hold.stream);
    STR("id");
    STR(req->hold.id);
#undef STR
#undef ARG
    resp_command(&req->out, (int)n, argv, lens);
    req->commands++;
    req->lost = req->lost || req->out.failed;
    stats_add(s->st->dead_letters);
    log_warn("streams", "moving entry %s of %s to %s after %lld deliveries: %s",
             req->hold.id, req->hold.stream, dead, req->deliveries, why);
    s->sink.send(s->sink.ctx, req);
}

/* Takes the entry E of STREAM, delivered DELIVERIES times: held from now
 * on, then queued, answered or dead-lettered. */
static void take_entry(source *s, const char *stream, const entry *e, long long deliveries) {
    request *req = s->sink.get(s->sink.ctx);
    if (req == NULL) { /* left pending: taken over and run later */
        log_limited(&s->error_limit, LOG_LEVEL_ERROR, "streams",
                    "out of memory: entry %s of %s left pending", e->id, stream);
        return;
    }
    stats_add(s->st->received);
    req->hold.stream = stream;
    memcpy(req->hold.id, e->id, e->id_len + 1);
    req->deliveries = deliveries;
    holds_add(&s->held, &req->hold);

    char why[512];
    /* timeout_ms counts from the entry's creation, not from its reading. */
    uint64_t now_us = clock_now_us(), now_ms = clock_wall_ms();
    uint64_t entry_ms = strtoull(req->hold.id, NULL, 10);
    uint64_t age_us = now_ms > entry_ms ? (now_ms - entry_ms) * 1000u : 0;
    uint64_t received_us = now_us > age_us ? now_us - age_us : 0;
    if (e->body == NULL) {
        stats_add(s->st->rejected);
        dead_letter(s, req, NULL, 0, "the entry has no " PROTOCOL_STREAM_FIELD " field");
        return;
    }
    if (deliveries > s->cfg->max_deliveries) {
        snprintf(why, sizeof why, "delivered %lld times without an answer "
                 "(its handler crashed or stalled its worker)", deliveries);
        char err[256];
        if (request_scan(req, e->body, e->body_len, stream, strlen(stream),
                         (size_t)s->cfg->max_request_bytes, s->cfg->reply_prefix, received_us, err,
                         sizeof err) !=
            REQUEST_UNANSWERABLE)
            reply_write_error(s->cfg, req, &s->scratch, PROTOCOL_HANDLER_FAILED,
                              "%s; moved to %s%s", why, stream, PROTOCOL_DEAD_SUFFIX);
        dead_letter(s, req, e->body, e->body_len, why);
        return;
    }
    if (s->sink.take(s->sink.ctx, req, e->body, e->body_len, stream, strlen(stream),
                     received_us, why, sizeof why) != 0)
        dead_letter(s, req, e->body, e->body_len, why);
}

/* ---- the steps --------------------------------------------------------- */

static void on_answer(void *ctx, const resp_value *v);

/* Starts STEP with the N commands just appended to the reading wire. */
static void begin(source *s, enum step step, unsigned n) {
    s->step = step;
    s->outstanding = n;
    s->orphan_found = 0;
    for (unsigned i = 0; i < n; i++)
        if (wire_expect(s->rd, on_answer, s) != 0)
            return;
}

static void send_groups(source *s) {
    buffer *out = wire_out(s->rd);
    for (size_t i = 0; i < s->cfg->stream_count; i++)
        resp_args(out, "XGROUP", "CREATE", s->cfg->stream_list[i], s->cfg->group, "0",
                  "MKSTREAM");
    begin(s, STEP_GROUPS, (unsigned)s->cfg->stream_count);
}

static void send_trim(source *s) {
    buffer *out = wire_out(s->rd);
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%lld", s->cfg->stream_maxlen);
    for (size_t i = 0; i < s->cfg->stream_count; i++) {
        char dead[512];
        snprintf(dead, sizeof dead, "%s%s", s->cfg->stream_list[i], PROTOCOL_DEAD_SUFFIX);
        resp_args(out, "XTRIM", s->cfg->stream_list[i], "MAXLEN", "~", maxlen);
        resp_args(out, "XTRIM", dead, "MAXLEN", "~", maxlen);
    }
    begin(s, STEP_TRIM, 2 * (unsigned)s->cfg->stream_count);
}

/* Deletes the consumer NAME of STREAM, on the command wire. */
static void delete_consumer(source *s, const char *stream, const char *name) {
    resp_args(wire_out(s->cmd), "XGROUP", "DELCONSUMER", stream, s->cfg->group, name);
    wire_expect(s->cmd, NULL, NULL);
}

/* XINFO CONSUMERS of every stream: for forget_consumers(). */
static void send_consumer_query(source *s) {
    for (size_t i = 0; i < s->cfg->stream_count; i++)
        resp_args(wire_out(s->rd), "XINFO", "CONSUMERS", s->cfg->stream_list[i], s->cfg->group);
    begin(s, STEP_CONSUMERS, (unsigned)s->cfg->stream_count);
}

/* Deletes, on the command wire, STREAM's consumers in the XINFO CONSUMERS
 * answer V (each [name, N, pending, N, idle, N, ...]) other than ours that
 * are idle past the limit with nothing pending. */
static void forget_consumers(source *s, const resp_value *v, const char *stream) {
    long long limit_ms = CONSUMER_FORGET_FACTOR * s->cfg->claim_idle_ms;
    if (v->type != RESP_ARRAY)
        return;
    for (const resp_value *c = v + 1; c < v + v->end; c = resp_next(v, c)) {
        const resp_value *name = resp_map_get(v, c, "name", RESP_STRING);
        const resp_value *pending = resp_map_get(v, c, "pending", RESP_INTEGER);
        const resp_value *idle = resp_map_get(v, c, "idle", RESP_INTEGER);
        if (name == NULL || strcmp(name->str, s->cfg->id) == 0 || pending == NULL ||
            pending->integer != 0 || idle == NULL || idle->integer < limit_ms)
            continue;
        log_info("streams", "removed consumer %s of %s: idle %lld ms with nothing pending",
                 name->str, stream, idle->integer);
        delete_consumer(s, stream, name->str);
    }
}

/* XPENDING <stream> <group> IDLE <claim_idle_ms> - + 1 on every stream:
 * the oldest entry idle too long, if any. */
static void send_orphan_query(source *s) {
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", s->cfg->claim_idle_ms);
    for (size_t i = 0; i < s->cfg->stream_count; i++)
        resp_args(wire_out(s->rd), "XPENDING", s->cfg->stream_list[i], s->cfg->group, "IDLE",
                  idle, "-", "+", "1");
    begin(s, STEP_ORPHANS, (unsigned)s->cfg->stream_count);
}

/* XCLAIM the orphan found, if it is still idle: it is ours then. */
static void send_claim(source *s) {
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", s->cfg->claim_idle_ms);
    resp_args(wire_out(s->rd), "XCLAIM", s->cfg->stream_list[s->orphan_stream], s->cfg->group,
              s->cfg->id, idle, s->orphan_id);
    begin(s, STEP_CLAIM, 1);
}

/* Appends XREADGROUP ... COUNT <count> BLOCK ... STREAMS for the N streams
 * from FIRST to OUT. */
static void append_read(const source *s, buffer *out, size_t first, size_t n, size_t count) {
    resp_array(out, 9 + 2 * n);
    resp_bulk_str(out, "XREADGROUP");
    resp_bulk_str(out, "GROUP");
    resp_bulk_str(out, s->cfg->group);
    resp_bulk_str(out, s->cfg->id);
    resp_bulk_str(out, "COUNT");
    resp_bulk_ll(out, (long long)count);
    resp_bulk_str(out, "BLOCK");
    resp_bulk_ll(out, READ_BLOCK_MS);
    resp_bulk_str(out, "STREAMS");
    for (size_t i = 0; i < n; i++)
        resp_bulk_str(out, s->cfg->stream_list[first + i]);
    for (size_t i = 0; i < n; i++)
        resp_bulk_str(out, ">"); /* entries never delivered to this group */
}

static void send_read(source *s, size_t room) {
    append_read(s, wire_out(s->rd), 0, s->cfg->stream_count,
                room < READ_BATCH ? room : READ_BATCH);
    begin(s, STEP_READ, 1);
}

static void finish_stop(source *s) {
    if (s->stopped || s->asked > 0) /* a reader's read is still out */
        return;
    s->stopped = 1;
    s->sink.stopped(s->sink.ctx);
}

/* An entry of an XREADGROUP answer, first delivered now. */
static void take_read_entry(void *ctx, const resp_value *stream_value, const entry *e) {
    source *s = ctx;
    const char *stream = stream_named(s, stream_value);
    if (stream != NULL)
        take_entry(s, stream, e, 1);
}

/* The answer to XREADGROUP: [[stream, [entry, ...]], ...], or nil. */
static void take_read(source *s, const resp_value *v) { entry_each_read(v, take_read_entry, s); }

/* The answer V to a read, taken or, for an error, acted on. */
static void take_answer(source *s, const resp_value *v) {
    if (v->type != RESP_ERROR) {
        take_read(s, v);
    } else if (strncmp(v->str, "NOGROUP", 7) == 0) { /* the stream was deleted */
        log_warn("streams", "XREADGROUP: %s; making the group again", v->str);
        s->groups_ready = 0;
    } else {
        log_limited(&s->error_limit, LOG_LEVEL_WARN, "streams", "XREADGROUP: %s", v->str);
        s->retry_at = clock_now_us() + RETRY_US;
    }
}

/* One answer of an XPENDING ... IDLE: [[id, consumer, idle, deliveries]]. */
static void note_orphan(source *s, const resp_value *v, size_t stream) {
    if (s->orphan_found || v->type != RESP_ARRAY || v->integer < 1)
        return;
    const resp_value *e = v + 1;
    if (e->type != RESP_ARRAY || e->integer != 4 || e[1].type != RESP_STRING ||
        e[1].len >= HOLD_ID_MAX)
        return;
    const resp_value *consumer = resp_next(v, &e[1]), *idle = resp_next(v, consumer),
                     *count = resp_next(v, idle);
    s->orphan_found = 1;
    s->orphan_stream = stream;
    memcpy(s->orphan_id, e[1].str, e[1].len + 1);
    s->orphan_deliveries = count->type == RESP_INTEGER ? count->integer : 1;
}

static void on_answer(void *ctx, const resp_value *v) {
    source *s = ctx;
    if (v == NULL) { /* the wire was lost: on_rd_down follows */
        s->outstanding = 0;
        s->step = STEP_NONE;
        return;
    }
    unsigned index = 0;
    switch (s->step) {
    case STEP_GROUPS:
        if (v->type == RESP_ERROR && strncmp(v->str, "BUSYGROUP", 9) != 0) {
            snprintf(s->group_err, sizeof s->group_err, "cannot create group %s on stream %s: %s",
                     s->cfg->group, s->cfg->stream_list[s->cfg->stream_count - s->outstanding],
                     v->str);
            log_limited(&s->error_limit, LOG_LEVEL_ERROR, "streams", "%s", s->group_err);
        }
        break;
    case STEP_ORPHANS:
        index = (unsigned)s->cfg->stream_count - s->outstanding;
        if (v->type == RESP_ERROR)
            log_limited(&s->error_limit, LOG_LEVEL_WARN, "streams", "XPENDING on %s: %s",
                        s->cfg->stream_list[index], v->str);
        note_orphan(s, v, index);
        break;
    case STEP_CLAIM:
        if (v->type == RESP_ARRAY && v->integer > 0) {
            entry taken;
            log_info("streams", "took over entry %s of %s left pending by another consumer",
                     s->orphan_id, s->cfg->stream_list[s->orphan_stream]);
            if (entry_parse(v, v + 1, &taken) == 0) /* else deleted meanwhile */
                take_entry(s, s->cfg->stream_list[s->orphan_stream], &taken,
                           s->orphan_deliveries + 1);
            s->quiet_by = clock_now_us() + (uint64_t)s->cfg->claim_idle_ms * 1000u;
        }
        break;
    case STEP_READ:
        take_answer(s, v);
        break;
    case STEP_TRIM:
        if (v->type == RESP_ERROR)
            log_limited(&s->error_limit, LOG_LEVEL_WARN, "streams", "XTRIM: %s", v->str);
        break;
    case STEP_CONSUMERS:
        index = (unsigned)s->cfg->stream_count - s->outstanding;
        if (v->type == RESP_ERROR)
            log_limited(&s->error_limit, LOG_LEVEL_WARN, "streams", "XINFO CONSUMERS on %s: %s",
                        s->cfg->stream_list[index], v->str);
        else
            forget_consumers(s, v, s->cfg->stream_list[index]);
        break;
    case STEP_NONE:
        break;
    }
    if (s->outstanding > 0 && --s->outstanding > 0)
        return;
    enum step done = s->step;
    s->step = STEP_NONE;
    if (done == STEP_GROUPS) {
        s->groups_ready = s->group_err[0] == '\0';
        if (!s->groups_ready && s->started) { /* after start: try again later */
            s->group_err[0] = '\0';
            s->retry_at = clock_now_us() + RETRY_US;
        }
    }
    if (done == STEP_ORPHANS) {
        if (s->orphan_found && !s->recovering) {
            s->recovering = 1;
            s->quiet_by = clock_now_us() + (uint64_t)s->cfg->claim_idle_ms * 1000u;
        } else if (s->orphan_found && s->recovering && s->held.count == 0) {
            send_claim(s);
            return;
        } else if (!s->orphan_found) {
            s->recovering = 0;
        }
    }
    next_step(s);
}

/* Chooses what the reading wire does next, when it is idle. */
static void next_step(source *s) {
    if (s->stopping) { /* ends when no step and no reader's read is out */
        if (s->step == STEP_NONE || !wire_is_up(s->rd))
            finish_stop(s);
        return;
    }
    if (s->step != STEP_NONE || !wire_is_up(s->rd))
        return;
    uint64_t now = clock_now_us();
    if (now < s->retry_at) {
        loop_timer_start(s->lp, &s->wake_timer, s->retry_at - now);
        return;
    }
    if (!s->groups_ready) {
        if (s->group_err[0] == '\0')
            send_groups(s);
        return;
    }
    if (now >= s->next_trim && s->cfg->stream_maxlen > 0) {
        s->next_trim = now + TRIM_EVERY_US;
        send_trim(s);
    } else if (s->recovering) {
        if (s->held.count == 0) {
            send_orphan_query(s); /* the oldest orphan now, then claim it */
        } else if (now < s->quiet_by) {
            loop_timer_start(s->lp, &s->wake_timer, QUIET_POLL_US); /* let it finish */
        } else { /* a stuck handler: read on */
            log_warn("streams", "orphaned entries wait: this worker's handlers did not "
                     "finish within claim_idle_ms (%lld ms)", s->cfg->claim_idle_ms);
            s->recovering = 0;
            s->next_orphan_check = now + (uint64_t)s->cfg->claim_idle_ms * 1000u;
            next_step(s);
        }
    } else if (now >= s->next_orphan_check) {
        s->next_orphan_check = now + s->orphan_check_every;
        send_orphan_query(s);
    } else if (now >= s->next_consumer_check) {
        s->next_consumer_check =
            now + (uint64_t)(CONSUMER_FORGET_FACTOR * s->cfg->claim_idle_ms) * 1000u;
        send_consumer_query(s);
    } else if (s->reader_count > 0) {
        readers_read(s);
        uint64_t next = s->next_orphan_check;
        if (s->cfg->stream_maxlen > 0 && s->next_trim < next)
            next = s->next_trim;
        loop_timer_start(s->lp, &s->wake_timer, next > now ? next - now : 0);
    } else {
        size_t room = s->sink.room(s->sink.ctx);
        if (room > 0)
            send_read(s, room);
        else /* the dispatcher calls read() when room comes; this is a backstop */
            loop_timer_start(s->lp, &s->wake_timer, 10000);
    }
}

static void on_wake(void *ctx) { next_step(ctx); }

/* ---- the readers (a cluster with several keys) ------------------------- */

static void on_reader_answer(void *ctx, const resp_value *v) {
    reader *r = ctx;
    source *s = r->s;
    s->asked -= r->asked;
    r->asked = 0;
    if (v != NULL)
        take_answer(s, v);
    next_step(s); /* reads again, or, stopping, ends when nothing is out */
}

/* Starts a read on every idle reader, sharing the room among them. */
static void readers_read(source *s) {
    size_t room = s->sink.room(s->sink.ctx);
    room = room > s->asked ? room - s->asked : 0;
    size_t idle = 0;
    for (size_t i = 0; i < s->reader_count; i++)
        idle += s->readers[i].asked == 0 && wire_is_up(s->readers[i].w);
    for (size_t i = 0; i < s->reader_count && room > 0; i++) {
        reader *r = &s->readers[i];
        if (r->asked > 0 || !wire_is_up(r->w))
            continue;
        size_t count = room / idle > 0 ? room / idle : 1;
        count = count < READ_BATCH ? count : READ_BATCH;
        append_read(s, wire_out(r->w), r->stream, 1, count);
        if (wire_expect(r->w, on_reader_answer, r) != 0)
            continue; /* dropped: its down handler has run */
        r->asked = count;
        s->asked += count;
        room -= count;
        idle--;
    }
}

static void on_reader_up(void *ctx) { next_step(((reader *)ctx)->s); }

static void on_reader_down(void *ctx, const char *why) {
    (void)why;
    reader *r = ctx;
    r->s->unsure |= r->asked > 0; /* a read was out: its entries unseen */
    r->s->asked -= r->asked; /* its answer came back NULL first */
    r->asked = 0;
}

/* In a cluster with several stream keys, a reader per key. Returns 0, or
 * -1 out of memory. */
static int readers_create(source *s) {
    if (!s->cfg->cluster || s->cfg->stream_count < 2)
        return 0;
    s->readers = calloc(s->cfg->stream_count, sizeof *s->readers);
    if (s->readers == NULL)
        return -1;
    static const wire_handlers handlers = {.up = on_reader_up, .down = on_reader_down};
    for (size_t i = 0; i < s->cfg->stream_count; i++) {
        reader *r = &s->readers[i];
        r->s = s;
        r->stream = i;
        r->w = wire_create(s->lp, s->cfg, "stream reader", &handlers, r, 0);
        if (r->w == NULL)
            return -1;
        s->reader_count++;
        if (wire_pin(r->w, s->cfg->stream_list[i]) != 0)
            return -1;
    }
    return 0;
}

static void readers_free(source *s) {
    for (size_t i = 0; i < s->reader_count; i++)
        wire_free(s->readers[i].w);
    free(s->readers);
    s->readers = NULL;
    s->reader_count = 0;
}

/* ---- touching what is held --------------------------------------------- */

static void touch(source *s) {
    if (s->held.count == 0 || !wire_is_up(s->cmd))
        return;
    int n = holds_touch(&s->held, (const char *const *)s->cfg->stream_list,
                        s->cfg->stream_count, s->cfg->group, s->cfg->id, wire_out(s->cmd));
    for (int i = 0; i < n; i++)
        if (wire_expect(s->cmd, NULL, NULL) != 0)
            return;
}

static void on_touch(void *ctx) {
    source *s = ctx;
    touch(s);
    loop_timer_start(s->lp, &s->touch_timer, s->touch_every);
}

/* ---- the reading wire -------------------------------------------------- */

static void on_rd_up(void *ctx) {
    source *s = ctx;
    s->groups_ready = 0;
    s->step = STEP_NONE;
    next_step(s);
}

static void on_rd_down(void *ctx, const char *why) {
    (void)why;
    source *s = ctx;
    s->unsure |= s->step == STEP_READ || s->step == STEP_CLAIM; /* its entries unseen */
    s->step = STEP_NONE;
    s->outstanding = 0;
    if (s->stopping)
        finish_stop(s);
}

/* An interval of 1/FRACTION of claim_idle_ms, in us, within MIN_MS..MAX_MS. */
static uint64_t idle_fraction_us(const config *cfg, long long fraction, long long min_ms,
                                 long long max_ms) {
    long long ms = cfg->claim_idle_ms / fraction;
    ms = ms < min_ms ? min_ms : ms > max_ms ? max_ms : ms;
    return (uint64_t)ms * 1000u;
}

static source *stream_create(const config *cfg, loop *lp, wire *cmd, stats *st,
                             const source_sink *sink) {
    source *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->lp = lp;
    s->st = st;
    s->sink = *sink;
    s->cmd = cmd;
    s->scratch = (buffer)BUFFER_INIT;
    s->error_limit = (log_limit)LOG_LIMIT_INIT;
    holds_init(&s->held);
    s->touch_every = idle_fraction_us(cfg, 3, 20, 10000);
    s->orphan_check_every = idle_fraction_us(cfg, 2, 100, 1000);
    loop_timer_init(&s->touch_timer, on_touch, s);
    loop_timer_init(&s->wake_timer, on_wake, s);
    static const wire_handlers handlers = {.up = on_rd_up, .down = on_rd_down};
    s->rd = wire_create(lp, cfg, "streams", &handlers, s, 0);
    if (s->rd != NULL)
        wire_count_reconnects(s->rd, st);
    if (s->rd == NULL || readers_create(s) != 0) {
        readers_free(s);
        wire_free(s->rd);
        free(s);
        return NULL;
    }
    return s;
}

static int stream_start(source *s, char *err, size_t errlen) {
    if (wire_connect(s->rd, err, errlen) != 0)
        return -1;
    uint64_t deadline = clock_now_us() + (uint64_t)s->cfg->connect_timeout_ms * 1000u;
    while (!s->groups_ready && s->group_err[0] == '\0' && wire_is_up(s->rd) &&
           clock_now_us() < deadline)
        loop_run_once(s->lp, 10);
    if (s->group_err[0] != '\0' || !s->groups_ready) {
        snprintf(err, errlen, "redis %s: %s", s->cfg->redis_where,
                 s->group_err[0] != '\0' ? s->group_err : "no answer to XGROUP CREATE");
        return -1;
    }
    for (size_t i = 0; i < s->reader_count; i++)
        if (wire_connect(s->readers[i].w, err, errlen) != 0)
            return -1;
    s->started = 1;
    loop_timer_start(s->lp, &s->touch_timer, s->touch_every);
    next_step(s);
    return 0;
}

static void stream_read(source *s) {
    if (s->busy) {
        wire_read(s->rd);
        for (size_t i = 0; i < s->reader_count; i++)
            wire_read(s->readers[i].w);
    }
    next_step(s);
}

static void stream_busy(source *s, int busy) {
    s->busy = busy;
    wire_hold_reads(s->rd, busy);
    for (size_t i = 0; i < s->reader_count; i++)
        wire_hold_reads(s->readers[i].w, busy);
}

static void stream_stop(source *s) {
    s->stopping = 1;
    if (s->step == STEP_NONE || !wire_is_up(s->rd))
        finish_stop(s); /* else when the read in flight is answered */
}

static void stream_reconnect(source *s, const char *why) {
    wire_reconnect(s->rd, why);
    for (size_t i = 0; i < s->reader_count; i++)
        wire_reconnect(s->readers[i].w, why);
}

static void stream_cmd_up(source *s) { touch(s); }

static void stream_close(source *s) {
    if (s == NULL)
        return;
    loop_timer_stop(s->lp, &s->touch_timer);
    loop_timer_stop(s->lp, &s->wake_timer);
    readers_free(s);
    wire_free(s->rd);
    while (s->held.count > 0) /* left pending: another worker takes them over */
        hold_release(s->held.head.next);
    redwork_buffer_free(&s->scratch);
    free(s);
}

/* Leaving for good: the consumer goes too, if nothing can be pending to it. */
static void stream_leave(source *s) {
    if (s->unsure || s->held.count > 0 || !wire_is_up(s->cmd))
        return; /* left to the others' idle check */
    for (size_t i = 0; i < s->cfg->stream_count; i++)
        delete_consumer(s, s->cfg->stream_list[i], s->cfg->id);
}

const source_ops source_stream = {
    .name = "stream",
    .create = stream_create,
    .start = stream_start,
    .read = stream_read,
    .busy = stream_busy,
    .stop = stream_stop,
    .reconnect = stream_reconnect,
    .cmd_up = stream_cmd_up,
    .leave = stream_leave,
    .close = stream_close,
};

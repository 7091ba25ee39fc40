/* publish.c -- the publisher: the one writer of results to Redis.
 *
 * DESIGN. Every request taken is on one list, oldest first, until Redis
 * has answered all its commands. Each command's answer comes back through
 * the wire in order; `answers` counts down what is still to come. When the
 * wire is lost every awaited answer arrives as NULL: the request stays on
 * the list, unsent, and publisher_wire_up() writes the whole list again.
 * A request partly answered is written again whole: Pub/Sub and the
 * stream commands here are idempotent but for a repeated PUBLISH, which
 * at worst delivers a reply twice, never loses it. */
#include "publish.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "plugin.h"
#include "resp.h"

struct publisher {
    const config *cfg;
    wire *w;
    metrics *m;
    size_t slot;
    stats *st;
    request_cache *cache;
    request head;        /* the list's anchor: head.next is the oldest */
    size_t waiting;
    log_limit lost_limit;
};

publisher *publisher_create(const config *cfg, wire *w, metrics *m, size_t slot,
                            request_cache *cache) {
    publisher *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cfg = cfg;
    p->w = w;
    p->m = m;
    p->slot = slot;
    p->st = metrics_stats(m, slot);
    p->cache = cache;
    request_list_init(&p->head);
    p->lost_limit = (log_limit)LOG_LIMIT_INIT;
    return p;
}

size_t publisher_waiting(const publisher *p) { return p->waiting; }

static void unlink_request(publisher *p, request *req) {
    request_list_remove(req);
    p->waiting--;
}

/* Ends REQ: its hold released, recycled. */
static void finish(publisher *p, request *req) {
    unlink_request(p, req);
    hold_release(&req->hold);
    request_put(p->cache, req);
}

/* Logs (rate-limited) that the reply to REQ, on the channel it went to,
 * is WHAT: WHY. */
static void warn_reply(publisher *p, const request *req, const char *what, const char *why) {
    if (req->reply_to != NULL)
        log_limited(&p->lost_limit, LOG_LEVEL_WARN, "publish", "reply on %.*s (req_id %s) %s: %s",
                    (int)req->reply_to_len, req->reply_to, req->id, what, why);
    else
        log_limited(&p->lost_limit, LOG_LEVEL_WARN, "publish", "reply on %s%s %s: %s",
                    p->cfg->reply_prefix, req->id, what, why);
}

static void lose(publisher *p, request *req, const char *why) {
    stats_add(p->st->lost);
    warn_reply(p, req, "lost", why);
}

/* Redis refused to store REQ's reply (RPUSH or PEXPIRE, reply_store =
 * list), which its PUBLISH may still deliver: not stored, not lost. */
static void unstored(publisher *p, request *req, const char *why) {
    stats_add(p->st->unstored);
    warn_reply(p, req, "not stored", why);
}

static void on_answer(void *ctx, const resp_value *v);

/* Appends REQ's commands, and its entry's XACK and XDEL, to the wire. */
static void write_request(publisher *p, request *req) {
    buffer *out = wire_out(p->w);
    unsigned commands = req->commands;
    buffer_append(out, req->out.data, req->out.len);
    if (hold_is_held(&req->hold)) {
        resp_args(out, "XACK", req->hold.stream, p->cfg->group, req->hold.id);
        resp_args(out, "XDEL", req->hold.stream, req->hold.id);
        commands += 2;
    }
    req->answers = commands;
    req->refused = 0;
    req->unstored = 0;
    for (unsigned i = 0; i < commands; i++)
        if (wire_expect(p->w, on_answer, req) != 0)
            return; /* the wire was dropped: the answers came back as NULL */
}

static void on_answer(void *ctx, const resp_value *v) {
    request *req = ctx;
    publisher *p = req->owner;
    if (v == NULL) { /* the wire was lost: written again when it is back */
        req->answers = 0;
        return;
    }
    /* The answers come in order: [RPUSH, PEXPIRE,] PUBLISH, ... */
    unsigned total = req->commands + (hold_is_held(&req->hold) ? 2u : 0u);
    unsigned index = total - req->answers;
    if (v->type == RESP_ERROR && index < req->store_commands) {
        if (!req->unstored) /* once for the RPUSH and its PEXPIRE */
            unstored(p, req, v->str);
        req->unstored = 1;
    } else if (v->type == RESP_ERROR && !req->refused) {
        req->refused = 1;
        lose(p, req, v->str);
    }
    if (req->answers > 0 && --req->answers == 0)
        finish(p, req);
}

void publisher_send(publisher *p, request *req) {
    req->owner = p;
    request_list_append(&p->head, req);
    p->waiting++;
    if (req->made_us == 0)
        req->made_us = clock_now_us();
    if (req->has_reply) {
        stats_add(p->st->requests);
        if (req->is_error)
            stats_add(p->st->errors);
        const char *handler = req->handler != NULL ? plugin_name(req->handler) : NULL;
        metrics_request(p->m, p->slot, handler, req->outcome, req->duration_us, req->wait_us);
        if (p->cfg->log_requests)
            log_info("request", "req_id=%s handler=%s outcome=%s wait_us=%lld duration_us=%lld",
                     req->id, handler != NULL ? handler : "-",
                     metrics_outcome_name(req->outcome), req->wait_us, req->duration_us);
    }
    if (req->lost) {
        lose(p, req, "out of memory");
        unlink_request(p, req);
        hold_release(&req->hold); /* unacknowledged: taken over later */
        request_put(p->cache, req);
        return;
    }
    if (wire_is_up(p->w))
        write_request(p, req);
}

void publisher_wire_up(publisher *p) {
    size_t again = 0;
    for (request *req = p->head.next; req != &p->head && wire_is_up(p->w); req = req->next)
        if (req->answers == 0) {
            write_request(p, req);
            again++;
        }
    if (again > 0)
        log_info("publish", "sending %zu waiting replies again", again);
}

void publisher_expire(publisher *p) {
    if (wire_is_up(p->w))
        return; /* what is written is answered, or the wire is dropped */
    uint64_t cutoff = clock_now_us() - (uint64_t)PUBLISH_RETRY_MAX_MS * 1000u;
    while (!request_list_empty(&p->head) && p->head.next->made_us < cutoff) {
        request *req = p->head.next;
        lose(p, req, "redis was away too long");
        finish(p, req);
    }
}

void publisher_free(publisher *p) {
    if (p == NULL)
        return;
    if (p->waiting > 0)
        log_warn("publish", "%zu replies lost: the daemon stopped before redis took them",
                 p->waiting);
    while (!request_list_empty(&p->head)) {
        request *req = p->head.next;
        if (req->has_reply)
            stats_add(p->st->lost);
        finish(p, req);
    }
    free(p);
}

/* claim.c -- claims: which of several daemons serves a Pub/Sub request.
 *
 * DESIGN. A claim in flight sits on a list until its answer arrives; its
 * request's `answers` counts what is still to come (one SET, or SET and
 * GET after a lost connection) and `claim_won` collects the verdict. A
 * wire lost before the answer gives NULL: the claim stays on the list with
 * nothing in flight and claims_wire_up() sends it again, now with the GET
 * that tells our own earlier SET apart from another daemon's. */
#include "claim.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "resp.h"

struct claims {
    const config *cfg;
    wire *w;
    claim_done_fn *done;
    void *ctx;
    request head;
    size_t waiting;
    log_limit refused_limit;
};

claims *claims_create(const config *cfg, wire *w, claim_done_fn *done, void *ctx) {
    claims *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    c->w = w;
    c->done = done;
    c->ctx = ctx;
    request_list_init(&c->head);
    c->refused_limit = (log_limit)LOG_LIMIT_INIT;
    return c;
}

size_t claims_waiting(const claims *c) { return c->waiting; }

static void unlink_claim(claims *c, request *req) {
    request_list_remove(req);
    req->owner = NULL;
    c->waiting--;
}

static void on_answer(void *ctx, const resp_value *v);

static void write_claim(claims *c, request *req) {
    buffer *out = wire_out(c->w);
    resp_array(out, 6);
    resp_bulk_str(out, "SET");
    resp_bulk_pair(out, c->cfg->claim_prefix, req->id);
    resp_bulk_str(out, c->cfg->id);
    resp_bulk_str(out, "NX");
    resp_bulk_str(out, "PX");
    resp_bulk_ll(out, c->cfg->claim_ttl_ms);
    req->answers = 1;
    if (req->claim_retry) {
        resp_array(out, 2);
        resp_bulk_str(out, "GET");
        resp_bulk_pair(out, c->cfg->claim_prefix, req->id);
        req->answers = 2;
    }
    req->claim_won = 0;
    req->refused = 0;
    for (unsigned i = req->answers; i > 0; i--)
        if (wire_expect(c->w, on_answer, req) != 0)
            return;
}

static void on_answer(void *ctx, const resp_value *v) {
    request *req = ctx;
    claims *c = req->owner;
    if (v == NULL) { /* lost with the connection: sent again, checking */
        req->answers = 0;
        req->claim_retry = 1;
        return;
    }
    int is_set = req->answers == (req->claim_retry ? 2u : 1u);
    if (v->type == RESP_ERROR) {
        req->refused = 1;
        log_limited(&c->refused_limit, LOG_LEVEL_WARN, "claim",
                    "claim of req_id %s refused, serving it unclaimed: %s", req->id, v->str);
    } else if (is_set) {
        req->claim_won = v->type == RESP_STRING; /* OK; nil: the key exists */
    } else if (!req->claim_won) { /* the GET after a retried SET */
        req->claim_won = v->type == RESP_STRING && strcmp(v->str, c->cfg->id) == 0;
    }
    if (--req->answers > 0)
        return;
    unlink_claim(c, req);
    c->done(c->ctx, req, req->claim_won || req->refused);
}

void claims_send(claims *c, request *req) {
    req->owner = c;
    request_list_append(&c->head, req);
    c->waiting++;
    req->claim_retry = 0;
    req->answers = 0;
    if (wire_is_up(c->w))
        write_claim(c, req);
    else
        req->claim_retry = 1; /* a claim may never have gone out: check */
}

void claims_wire_up(claims *c) {
    for (request *req = c->head.next; req != &c->head && wire_is_up(c->w); req = req->next)
        if (req->answers == 0)
            write_claim(c, req);
}

void claims_free(claims *c) {
    if (c == NULL)
        return;
    while (!request_list_empty(&c->head)) {
        request *req = c->head.next;
        unlink_claim(c, req);
        c->done(c->ctx, req, -1);
    }
    free(c);
}

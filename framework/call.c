/* call.c -- `redworkd --call`: one request through one handler, in
 * process, with no Redis (call.h).
 *
 * DESIGN. Nothing here is a second implementation of the request path:
 * the handlers load through plugin.c, the request is checked by
 * request_scan(), it runs on a pool.c thread, a deferred reply goes
 * through defer.c on a loop of its own, and the reply is what reply.c
 * writes for Redis -- the PUBLISH command, whose message is printed. So
 * what passes here is what the daemon would have answered. */
#include "call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "defer.h"
#include "handback.h"
#include "loop.h"
#include "plugin.h"
#include "pool.h"
#include "queue.h"
#include "reply.h"
#include "request.h"
#include "resp.h"

#define CALL_ID "call"

typedef struct call {
    deferrals *ds;
    handback back;
    loop_async back_async;
    request *answered; /* its reply in its out buffer */
} call;

/* The pool's hand-back: to the loop. */
static void on_done(void *ctx, request *req, int more) {
    call *c = ctx;
    (void)more;
    if (req == NULL)
        return;
    handback_push(&c->back, &req->back);
    loop_async_signal(&c->back_async);
}

static void on_answer(void *ctx, request *req) {
    call *c = ctx;
    c->answered = req;
}

static void take_back(void *ctx) {
    call *c = ctx;
    for (handback_node *n = handback_take(&c->back); n != NULL;) {
        request *req = (request *)((char *)n - offsetof(request, back));
        n = n->next;
        if (req->deferred != NULL)
            deferrals_register(c->ds, req);
        else
            on_answer(c, req);
    }
}

/* Prints the message of the PUBLISH in REQ->out. Returns 0 for an ok
 * reply, 1 for an error reply (or none). */
static int print_reply(const request *req) {
    resp_reader r;
    resp_reader_init(&r);
    const resp_value *cmd;
    int status = 1;
    if (resp_reader_feed(&r, req->out.data, req->out.len) == 0)
        while (resp_reader_next(&r, &cmd) == 1)
            if (cmd->type == RESP_ARRAY && cmd->integer == 3 && resp_is(cmd + 1, "PUBLISH")) {
                const resp_value *message = resp_next(cmd, resp_next(cmd, cmd + 1));
                printf("%.*s\n", (int)message->len, message->str);
                status = req->is_error || req->lost ? 1 : 0;
            }
    resp_reader_free(&r);
    fflush(stdout);
    return status;
}

/* The request body: JSON (LEN bytes) with req_id "call" if it has none and
 * HANDLER as its handler. NULL with WHY when it is not a JSON object. */
static char *make_body(const char *json, size_t len, const char *handler, char *why,
                       size_t whylen) {
    size_t at = 0;
    if (request_json_check(json, len, &at) != 0) {
        snprintf(why, whylen, "the request is not one JSON value (at byte %zu of %zu)", at, len);
        return NULL;
    }
    cJSON *req = cJSON_ParseWithLength(json, len);
    char *body = NULL;
    if (!cJSON_IsObject(req)) {
        snprintf(why, whylen, "a request is a JSON object");
    } else {
        if (!cJSON_HasObjectItem(req, PROTOCOL_FIELD_REQ_ID))
            cJSON_AddStringToObject(req, PROTOCOL_FIELD_REQ_ID, CALL_ID);
        cJSON_DeleteItemFromObjectCaseSensitive(req, PROTOCOL_FIELD_HANDLER);
        cJSON_AddStringToObject(req, PROTOCOL_FIELD_HANDLER, handler);
        if ((body = cJSON_PrintUnformatted(req)) == NULL)
            snprintf(why, whylen, "out of memory");
    }
    cJSON_Delete(req);
    return body;
}

/* Runs REQ (routed) on a one-thread pool until it is answered. */
static void run(config *cfg, plugin_set *plugins, request *req, buffer *scratch) {
    char err[256];
    call c = {0};
    handback_init(&c.back);
    loop *lp = loop_create(err, sizeof err);
    queue *q = queue_create(1);
    c.ds = lp != NULL ? deferrals_create(cfg, lp, on_answer, &c) : NULL;
    pool *p = NULL;
    if (c.ds != NULL && q != NULL) {
        loop_async_init(lp, &c.back_async, take_back, &c);
        p = pool_start(cfg, 1, q, plugins, c.ds, on_done, &c, err, sizeof err);
    }
    if (p == NULL || queue_push(q, req) != QUEUE_OK) {
        reply_write_error(cfg, req, scratch, PROTOCOL_INTERNAL,
                          "cannot run it: %s", p == NULL ? err : "the queue refused it");
    } else {
        while (c.answered == NULL && loop_run_once(lp, -1) == 0)
            ;
    }
    if (p != NULL) {
        queue_close(q);
        pool_wait(p, -1);
    }
    pool_free(p);
    deferrals_free(c.ds);
    queue_free(q);
    loop_free(lp);
}

int call_run(config *cfg, const char *handler, const char *json, size_t len) {
    char err[1024];
    cfg->threads = 1;
    cfg->reply_store = REPLY_STORE_NONE; /* one command: the PUBLISH */
    plugin_set *plugins = plugin_set_create(cfg, err, sizeof err);
    int loaded = plugins != NULL ? plugin_load_dir(plugins, cfg->handlers_dir, err, sizeof err)
                                 : -1;
    if (loaded <= 0) {
        fprintf(stderr, "redworkd --call: %s\n",
                loaded == 0 ? "no handler could be loaded from handlers_dir" : err);
        plugin_set_free(plugins);
        return EX_CONFIG;
    }
    request *req = request_new();
    buffer scratch = BUFFER_INIT;
    char why[256];
    char *body = req != NULL ? make_body(json, len, handler, why, sizeof why) : NULL;
    int status = 1, scanned;
    if (req == NULL) {
        fprintf(stderr, "redworkd --call: out of memory\n");
    } else if (body == NULL) {
        snprintf(req->id, sizeof req->id, CALL_ID);
        reply_write_error(cfg, req, &scratch, PROTOCOL_BAD_REQUEST, "%s", why);
        status = print_reply(req);
    } else if ((scanned = request_scan(req, body, strlen(body), CALL_ID, strlen(CALL_ID),
                                       (size_t)cfg->max_request_bytes, cfg->reply_prefix,
                                       clock_now_us(), why, sizeof why)) != REQUEST_OK) {
        if (*req->id == '\0')
            snprintf(req->id, sizeof req->id, CALL_ID);
        reply_write_error(cfg, req, &scratch,
                          scanned == REQUEST_NO_MEMORY ? PROTOCOL_INTERNAL : PROTOCOL_BAD_REQUEST,
                          "%s", why);
        status = print_reply(req);
    } else if ((req->handler = plugin_acquire(plugins, handler)) == NULL) {
        reply_write_error(cfg, req, &scratch, PROTOCOL_UNKNOWN_HANDLER,
                          "no handler named '%.64s' in %s", handler, cfg->handlers_dir);
        status = print_reply(req);
    } else {
        run(cfg, plugins, req, &scratch);
        status = print_reply(req);
    }
    cJSON_free(body);
    redwork_buffer_free(&scratch);
    request_free(req);
    plugin_collect(plugins);
    plugin_set_free(plugins);
    return status;
}

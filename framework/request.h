/* request.h -- one request on its way from a source to its reply.
 *
 * The struct is the SDK's redwork_request and the unit of work of the
 * whole path: the dispatcher fills it from a message (request_scan), a
 * pool thread parses it for the handler (request_parse_tree) and writes
 * its reply commands into `out`, and the publisher keeps it until Redis
 * has answered them. Requests are recycled through a request_cache, which
 * keeps their buffers, so the path allocates nothing per request once
 * warm. Every field belongs to one thread at a time: the loop's, or the
 * pool thread's that popped it.
 *
 * request_scan() checks the protocol envelope in one pass over the bytes,
 * without building a tree: the JSON syntax, the nesting depth, req_id,
 * handler and timeout_ms. Its verdict is one of two kinds of failure, or
 * success: the message has a usable req_id (so it can be answered
 * 'bad_request' on its reply channel), or it has none (it can only be
 * logged). */
#ifndef REDWORK_REQUEST_H
#define REDWORK_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buffer.h"
#include "handback.h"
#include "holds.h"
#include "protocol.h"
#include "redwork/handler.h"

#define REQUEST_DEPTH_MAX 64 /* nesting of objects and arrays in a request */

struct plugin;

struct redwork_request {
    handback_node back;          /* pool -> loop */
    struct redwork_request *prev, *next; /* the list its owner keeps it in */
    void *owner;                 /* that owner, for callbacks given only the request */

    /* The message, as the dispatcher found it. */
    buffer text;                 /* the body, a NUL, the channel, a NUL */
    size_t body_len;
    const char *channel;         /* in text */
    char id[PROTOCOL_ID_MAX + 1]; /* an integer id as its decimal text */
    int id_is_number;            /* the request's req_id was a JSON number */
    const char *reply_to;        /* its reply_to channel (in text, not NUL-ended), or NULL */
    size_t reply_to_len;
    const char *handler_field;   /* the "handler" field (decoded), or NULL */
    char handler_text[PROTOCOL_HANDLER_MAX + 2]; /* its storage; cut past 64 */
    long long timeout_ms;        /* -1: none */
    uint64_t received_us;        /* clock_now_us() at receipt */
    const struct plugin *handler; /* routed: a reference, given back on reuse */
    hold hold;                   /* transport = stream: the entry */
    long long deliveries;        /* stream: how often the group delivered it */

    /* The pool thread's. */
    cJSON *json;                 /* the whole object, while the handler runs */
    void *thread_state;          /* its handler's, on that thread (thread_init) */
    struct redwork_deferred *deferred; /* its handler deferred the reply */

    /* The reply: whole commands, ready to write. */
    buffer out;
    unsigned commands;           /* in out */
    unsigned store_commands;     /* the first of them that store the reply */
    int has_reply;               /* out publishes a reply (not only a dead letter) */
    int is_error;                /* that reply is an error */
    int lost;                    /* no reply could be made (out of memory) */
    long long duration_us;       /* how long its handler ran */
    long long wait_us;           /* from receipt to its handler's start; -1: it never ran */
    int outcome;                 /* the reply's outcome (metrics_outcome()) */

    /* The claimer's, then the publisher's: answers still to come, and
     * what came. */
    unsigned answers;
    int refused;                 /* Redis refused a command */
    int unstored;                /* Redis refused to store the reply */
    int claim_retry;             /* a claim sent again after a lost connection */
    int claim_won;
    uint64_t made_us;
};
typedef struct redwork_request request;

/* A list of requests kept by their owner (the claims in flight, the
 * replies awaiting Redis, the parked requests), oldest first, through
 * their prev/next fields: HEAD is an unused request, the list's anchor. */
static inline void request_list_init(request *head) { head->prev = head->next = head; }

static inline int request_list_empty(const request *head) { return head->next == head; }

/* Appends REQ (in no list) at the end of HEAD's list. */
static inline void request_list_append(request *head, request *req) {
    req->next = head;
    req->prev = head->prev;
    head->prev->next = req;
    head->prev = req;
}

/* Takes REQ out of the list it is in. */
static inline void request_list_remove(request *req) {
    req->prev->next = req->next;
    req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

enum request_status {
    REQUEST_OK = 0,
    REQUEST_BAD = -1,          /* invalid, but the req_id is usable */
    REQUEST_UNANSWERABLE = -2, /* no usable req_id */
    REQUEST_NO_MEMORY = -3,    /* valid, but out of memory; the req_id is usable */
};

/* Checks BODY (LEN bytes, need not be NUL-terminated) that arrived on
 * CHANNEL (CHANNEL_LEN bytes) at RECEIVED_US, and fills REQ from it: its
 * id always when there is a usable one, the rest (a copy of body and
 * channel included) on success. The JSON must be valid UTF-8; a reply_to
 * must be REPLY_PREFIX then 1..128 req_id characters. A body over
 * MAX_BYTES, nested deeper than REQUEST_DEPTH_MAX or not JSON is refused,
 * though its top-level req_id is still looked for so it can be answered.
 * Returns REQUEST_OK, REQUEST_BAD, REQUEST_UNANSWERABLE or
 * REQUEST_NO_MEMORY; on a failure ERR says why, and REQ->id is set
 * unless it is REQUEST_UNANSWERABLE. */
int request_scan(request *req, const char *body, size_t len, const char *channel,
                 size_t channel_len, size_t max_bytes, const char *reply_prefix,
                 uint64_t received_us, char *err, size_t errlen);

/* Builds REQ->json from the body for the handler (on the pool thread).
 * Returns 0, or -1 with ERR out of memory (the scan's grammar and nesting
 * bound are stricter than cJSON's, so it accepts what the scan passed). */
int request_parse_tree(request *req, char *err, size_t errlen);

/* Frees REQ->json (on the thread that built it). */
void request_drop_tree(request *req);

/* Checks that TEXT (LEN bytes) is one JSON value, by the grammar and the
 * nesting bound the scan applies to requests (a handler's raw reply).
 * Returns 0, or -1 with *ERROR_AT the offset where it stops being one. */
int request_json_check(const char *text, size_t len, size_t *error_at);

/* 1 if the request's timeout_ms has run out at NOW_US, else 0. */
int request_expired(const request *req, uint64_t now_us);

/* A new empty request, or NULL out of memory. */
request *request_new(void);

/* Frees REQ and everything it owns (its handler reference included).
 * Accepts NULL. */
void request_free(request *req);

/* Requests to reuse, owned by one thread (the event loop's). */
typedef struct request_cache {
    request *free;
    size_t count;
    size_t max;    /* kept at most; the rest are freed */
} request_cache;

/* An empty request: a reused one, or a new one. NULL out of memory. */
request *request_get(request_cache *cache);

/* Empties REQ (gives its handler reference back, keeps its buffers unless
 * they grew large) and keeps it for reuse, or frees it if the cache holds
 * MAX already. REQ must not be held. */
void request_put(request_cache *cache, request *req);

/* Frees every request the cache keeps. */
void request_cache_clear(request_cache *cache);

#endif

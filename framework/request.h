/* request.h -- one request of protocol v1: parsing and validation.
 *
 * request_parse() turns a message body into a request, or says why it
 * cannot, in one of two ways: the message has a usable req_id (so the caller
 * can answer 'bad_request' on its reply channel), or it has none (the caller
 * can only log it). The struct is the SDK's redwork_request: handlers read it
 * through the accessors of redwork/handler.h, implemented in request.c. */
#ifndef REDWORK_REQUEST_H
#define REDWORK_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "redwork/handler.h"

#define REQUEST_ID_MAX 128 /* characters in a req_id */
#define REQUEST_HANDLER_MAX 64
#define REQUEST_DEPTH_MAX 64 /* nesting of objects and arrays in a request */

struct plugin;

struct redwork_request {
    char id[REQUEST_ID_MAX + 1];
    char *channel;               /* owned */
    cJSON *json;                 /* owned: the whole object */
    const char *handler_field;   /* the request's "handler", in json; or NULL */
    const struct plugin *handler; /* routed: a reference, released by request_free */
    long long timeout_ms;        /* -1: none */
    char entry_id[48];           /* transport = stream: its entry; else "" */
    struct stream_holds *holds;  /* stream: where the entry is held, until freed */
    uint64_t received_us;        /* clock_now_us() at receipt */
};
typedef struct redwork_request request;

enum request_status {
    REQUEST_OK = 0,
    REQUEST_BAD = -1,          /* invalid, but ID holds a usable req_id */
    REQUEST_UNANSWERABLE = -2, /* no usable req_id */
};

/* Parses BODY (LEN bytes, need not be NUL-terminated) that arrived on
 * CHANNEL at RECEIVED_US. A body over MAX_BYTES, or nested deeper than
 * REQUEST_DEPTH_MAX, is refused before it is parsed, though its req_id is
 * still looked for so it can be answered.
 * Returns REQUEST_OK with a new request in *OUT (the caller frees it with
 * request_free), or REQUEST_BAD with the req_id in ID, or
 * REQUEST_UNANSWERABLE; on either failure ERR says why. */
int request_parse(const char *body, size_t len, const char *channel,
                  size_t max_bytes, uint64_t received_us, request **out,
                  char id[REQUEST_ID_MAX + 1], char *err, size_t errlen);

/* Frees a request and everything it owns, its handler reference included.
 * Accepts NULL. */
void request_free(request *req);

/* 1 if the request's timeout_ms has run out at NOW_US, else 0. */
int request_expired(const request *req, uint64_t now_us);

#endif

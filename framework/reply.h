/* reply.h -- replies: what a handler builds, the envelope, and publishing.
 *
 * struct redwork_reply is what the SDK's redwork_reply_* functions fill in
 * (implemented here). reply_encode() wraps it in the protocol v1 envelope.
 * A reply_sink owns one Redis connection and PUBLISHes envelopes on
 * <reply_prefix><req_id> (and RPUSHes them when reply_store = list); it
 * belongs to one thread at a time. */
#ifndef REDWORK_REPLY_H
#define REDWORK_REPLY_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "redwork/handler.h"
#include "stats.h"

#define REPLY_CODE_MAX 32
#define REPLY_MESSAGE_MAX 1024

struct redwork_reply {
    cJSON *result; /* owned; NULL means JSON null */
    char code[REPLY_CODE_MAX + 1]; /* "" while no error is set */
    char message[REPLY_MESSAGE_MAX + 1];
};
typedef struct redwork_reply reply;

/* Makes R empty: no result, no error. Cannot fail. */
void reply_init(reply *r);

/* Frees what R owns and makes it empty. */
void reply_clear(reply *r);

/* 1 if an error is set on R. */
int reply_is_error(const reply *r);

/* The envelope for R: {"req_id":..,"ok":..,"result"|"error":..,"handler":..,
 * "worker":..,"duration_us":..}. HANDLER may be NULL (not routed). Returns a
 * malloc'd NUL-terminated string (the caller frees it), or NULL when out of
 * memory. R is not changed. */
char *reply_encode(const reply *r, const char *req_id, const char *handler,
                   const char *worker, long long duration_us);

typedef struct reply_sink reply_sink;

/* A sink publishing as CFG says and counting in ST. It connects lazily, so
 * it can be created while Redis is away. NULL only when out of memory. */
reply_sink *reply_sink_create(const config *cfg, stats *st);

/* Frees the sink and closes its connection. Accepts NULL. */
void reply_sink_free(reply_sink *s);

/* Encodes R and publishes it for REQ_ID, reconnecting once if the
 * connection broke. Counts it in stats (requests, errors; lost on failure,
 * with a rate-limited log line naming the req_id). Returns 0 if Redis took
 * the reply, -1 if it is lost. R is not changed. */
int reply_send(reply_sink *s, const reply *r, const char *req_id,
               const char *handler, long long duration_us);

/* reply_send() of an error reply built from CODE and a printf-style
 * message. */
int reply_send_error(reply_sink *s, const char *req_id, const char *handler,
                     const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif

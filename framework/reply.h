/* reply.h -- replies: what a handler builds, the envelope, and publishing.
 *
 * struct redwork_reply is what the SDK's redwork_reply_* functions fill in
 * (implemented here). reply_encode() wraps it in the protocol v1 envelope.
 * A reply_sink owns one Redis connection and PUBLISHes envelopes on
 * <reply_prefix><req_id> (and RPUSHes them when reply_store = list),
 * pipelined; it belongs to one thread at a time. */
#ifndef REDWORK_REPLY_H
#define REDWORK_REPLY_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "request.h"
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

/* Whom a reply is for, and what to acknowledge once it is out. */
typedef struct reply_target {
    const char *req_id;
    const char *handler;  /* NULL: the request was not routed */
    const char *stream;   /* transport = stream: XACK and XDEL entry_id of */
    const char *entry_id; /* this stream once the reply is out; else NULL */
} reply_target;

/* The target of REQ's reply (borrowing from REQ). */
reply_target reply_target_of(const request *req);

/* Replies a sink holds before it must have Redis's answers to them. */
#define REPLY_PIPELINE 128
/* While Redis is away: how often a sink tries to reconnect, and how long a
 * reply may wait for it before it is given up as lost. */
#define REPLY_RETRY_INTERVAL_MS 200
#define REPLY_RETRY_MAX_MS 30000

/* A sink publishing as CFG says and counting in ST. It connects lazily, so
 * it can be created while Redis is away. NULL only when out of memory. */
reply_sink *reply_sink_create(const config *cfg, stats *st);

/* Flushes, counts what Redis still has not taken as lost, closes the
 * connection, frees the sink. Accepts NULL. */
void reply_sink_free(reply_sink *s);

/* Encodes R as the reply for TO and queues it (with TO's acknowledgement): appended at once to the
 * connection's output buffer if the connection works, else kept for when
 * it does. reply_sink_write() sends what is buffered, reply_sink_flush()
 * also waits for Redis's answers. Counts it in stats (requests, errors).
 * Returns 0, or -1 if it is lost already (out of memory). A reply is lost
 * (counted and logged, rate-limited, with its channel) only when Redis
 * refuses it, when it waited REPLY_RETRY_MAX_MS for Redis, when
 * REPLY_PIPELINE replies wait, or when the sink is freed without Redis. */
int reply_send(reply_sink *s, const reply *r, const reply_target *to,
               long long duration_us);

/* Sends what is buffered and retires the replies whose answers have
 * arrived, without waiting for the others. If the connection is down it
 * reconnects (at most every REPLY_RETRY_INTERVAL_MS) and sends every
 * waiting reply again. Call it after a burst, and periodically while
 * reply_sink_pending() is not 0. */
void reply_sink_write(reply_sink *s);

/* Like reply_sink_write(), reconnecting now if needed, and waits for every
 * answer. Returns 0 if no reply is left waiting, -1 if some are (Redis is
 * away). */
int reply_sink_flush(reply_sink *s);

/* Replies sent or waiting whose answers have not been read. */
size_t reply_sink_pending(const reply_sink *s);

/* reply_send() of an error reply built from CODE and a printf-style
 * message. */
int reply_send_error(reply_sink *s, const reply_target *to, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif

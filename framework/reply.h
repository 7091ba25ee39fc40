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

/* Replies a sink writes before it reads Redis's answers to them. */
#define REPLY_PIPELINE 128

/* A sink publishing as CFG says and counting in ST. It connects lazily, so
 * it can be created while Redis is away. NULL only when out of memory. */
reply_sink *reply_sink_create(const config *cfg, stats *st);

/* Flushes (see reply_sink_flush), closes the connection, frees the sink.
 * Accepts NULL. */
void reply_sink_free(reply_sink *s);

/* Encodes R as REQ_ID's reply and appends it to the connection's output
 * buffer: reply_sink_write() sends what is buffered, reply_sink_flush()
 * also waits for Redis's answers (it runs by itself when REPLY_PIPELINE
 * replies are unanswered). Counts it in stats (requests, errors). Returns
 * 0, or -1 if it is lost already (out of memory). R is not changed. */
int reply_send(reply_sink *s, const reply *r, const char *req_id,
               const char *handler, long long duration_us);

/* Sends what reply_send() buffered, and retires the replies whose answers
 * have already arrived, without waiting for the others. */
void reply_sink_write(reply_sink *s);

/* Sends what is buffered and reads Redis's answers to every reply. If the
 * connection broke, it is reopened once and the unanswered replies are
 * sent again; what still fails, or what Redis refused, is counted lost and
 * logged (rate-limited) with its channel. Returns 0 if nothing was lost,
 * -1 if something was. */
int reply_sink_flush(reply_sink *s);

/* reply_send() of an error reply built from CODE and a printf-style
 * message. */
int reply_send_error(reply_sink *s, const char *req_id, const char *handler,
                     const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif

/* reply.h -- replies: what a handler builds, and the commands that carry
 * it to Redis.
 *
 * struct redwork_reply is what the SDK's redwork_reply_* functions fill in
 * (implemented here). reply_envelope() wraps it in the protocol v1
 * envelope; reply_write() turns it into the whole commands for a request
 * ([RPUSH, PEXPIRE,] PUBLISH on its reply_to, or <reply_prefix><req_id>) in the request's
 * out buffer, ready for the publisher to write. Both run on any thread, on
 * the objects they are given. */
#ifndef REDWORK_REPLY_H
#define REDWORK_REPLY_H

#include <stdarg.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "buffer.h"
#include "config.h"
#include "protocol.h"
#include "redwork/handler.h"
#include "request.h"

#define REPLY_MESSAGE_MAX 1024

struct deferrals;

struct redwork_reply {
    cJSON *result; /* owned; NULL means JSON null (or raw, if it holds text) */
    buffer raw;    /* redwork_reply_raw(): the result as checked JSON text */
    char code[PROTOCOL_CODE_MAX + 1]; /* "" while no error is set */
    char message[REPLY_MESSAGE_MAX + 1];
    /* Where redwork_reply_defer() takes the request to (NULL: it cannot
     * be deferred), and what it made. */
    request *req;
    struct deferrals *deferrals;
    struct redwork_deferred *deferred;
};
typedef struct redwork_reply reply;

/* Makes R empty: no result, no error, nothing to defer. Cannot fail. */
void reply_init(reply *r);

/* reply_init(), for REQ's handler: one that may defer it to DS. */
void reply_init_for(reply *r, request *req, struct deferrals *ds);

/* Frees what R owns (its result, its raw text) and makes it empty; what
 * it may defer to stays. */
void reply_clear(reply *r);

/* 1 if an error is set on R. */
int reply_is_error(const reply *r);

/* Makes R the error CODE with a printf-style message (cut to
 * REPLY_MESSAGE_MAX bytes, kept valid UTF-8). A CODE that is not
 * [a-z0-9_]{1,32} becomes handler_failed. */
void reply_verror(reply *r, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Appends to OUT the envelope for R: {"req_id":..,"ok":..,"result"|"error":..,
 * "handler":..,"worker":..,"duration_us":..}; REQ_ID is written as a JSON
 * number if ID_IS_NUMBER (its text is then decimal digits), else as a
 * string. HANDLER may be NULL (not routed). A result that is not valid
 * UTF-8 becomes a 'handler_failed' error. R is not changed. Returns 0, or
 * -1 out of memory. */
int reply_envelope(buffer *out, const reply *r, const char *req_id, int id_is_number,
                   const char *handler, const char *worker, long long duration_us);

/* Writes into REQ->out the commands that publish R as REQ's reply, as CFG
 * says, and sets REQ->commands and REQ->is_error. SCRATCH is the caller's
 * buffer for the envelope (kept between calls, so a thread allocates
 * nothing once warm). Returns 0, or -1 out of memory (REQ->lost is set:
 * no reply will go out). */
int reply_write(const config *cfg, request *req, const reply *r,
                long long duration_us, buffer *scratch);

/* reply_write() of an error reply: CODE and a printf-style message. */
int reply_write_error(const config *cfg, request *req, buffer *scratch, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif

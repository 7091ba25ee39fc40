/* source.h -- where requests come from: one implementation per transport.
 *
 * A source owns the reading side of a transport: source_pubsub.c
 * SUBSCRIBEs and PSUBSCRIBEs (and drops the copies that overlapping
 * subscriptions deliver), source_stream.c reads a consumer group (and
 * holds, touches, takes over and dead-letters entries). Both run on the
 * event loop and hand each message to the dispatcher through a
 * source_sink; the dispatcher validates, routes, claims and queues. A
 * source asks the sink how much room there is before it reads (a stream
 * reads no more than that), opens, reads and closes through source_ops,
 * and belongs to the event loop's thread. */
#ifndef REDWORK_SOURCE_H
#define REDWORK_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "request.h"
#include "stats.h"
#include "wire.h"

/* What a source needs from the dispatcher. */
typedef struct source_sink {
    void *ctx;
    /* An empty request to carry a message; NULL out of memory. */
    request *(*get)(void *ctx);
    /* Gives back a request that was not taken. */
    void (*put)(void *ctx, request *req);
    /* How many more requests may be taken now. */
    size_t (*room)(void *ctx);
    /* Takes the message BODY (LEN bytes) that came on CHANNEL at
     * RECEIVED_US, carried by REQ (which, for a stream, holds the entry).
     * Returns 0 when the dispatcher took REQ (to queue or answer it), or
     * -1 when the message cannot be answered (no usable req_id; WHY says
     * why): the source keeps REQ. */
    int (*take)(void *ctx, request *req, const char *body, size_t len,
                const char *channel, size_t channel_len, uint64_t received_us,
                char *why, size_t whylen);
    /* Writes REQ's commands (REQ->out) through the publisher, which
     * acknowledges REQ's entry after them: a dead letter. */
    void (*send)(void *ctx, request *req);
    /* The source has stopped taking requests (after source_ops.stop). */
    void (*stopped)(void *ctx);
} source_sink;

typedef struct source source;

typedef struct source_ops {
    const char *name;
    /* A source reading what CFG says, on LP, with the command wire CMD
     * for what it writes besides reading. Borrowed arguments. NULL out of
     * memory. */
    source *(*create)(const config *cfg, loop *lp, wire *cmd, stats *st,
                      const source_sink *sink);
    /* Connects and subscribes (or makes the consumer groups), blocking for
     * at most the connect timeout: at start-up. Returns 0, or -1 with ERR
     * naming the server, channel or stream. */
    int (*start)(source *s, char *err, size_t errlen);
    /* Room may have grown: read more if the transport reads on demand;
     * while busy, take what waits. Called every round of the loop. */
    void (*read)(source *s);
    /* BUSY 1: the dispatcher wants no new request at once and runs a
     * round at least every few milliseconds, calling read() in each: the
     * source leaves what Redis sends in the socket until then -- one
     * wake-up for many messages. 0: take them as they come. */
    void (*busy)(source *s, int busy);
    /* Stops taking requests: what Redis already delivered is still
     * taken; then the sink's stopped() is called. */
    void (*stop)(source *s);
    /* Connects the source again now (wire_reconnect()): to the master the
     * sentinels name now. */
    void (*reconnect)(source *s, const char *why);
    /* The command wire is back (stream: holds are touched on it). */
    void (*cmd_up)(source *s);
    /* The daemon is leaving for good, its replies written: a stream's
     * consumer is deleted if nothing can be pending to it. The commands go
     * on the command wire, which the caller flushes. */
    void (*leave)(source *s);
    /* Closes and frees. Entries still held are let go unacknowledged.
     * Accepts NULL. */
    void (*close)(source *s);
} source_ops;

extern const source_ops source_pubsub;
extern const source_ops source_stream;

#endif

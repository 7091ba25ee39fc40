/* wire.h -- one Redis connection owned by the event loop: a wire.
 *
 * A wire writes commands that its users append in RESP to its output
 * buffer, once per loop round, and reads what Redis answers. A command
 * wire hands each answer, in order, to the function registered for it with
 * wire_expect(); a push wire (a subscriber connection) hands every reply
 * to its push handler. When the connection fails, or answers stop coming
 * for WIRE_STALL_MS, every answer still awaited is given as NULL, the
 * down handler runs, and the wire reconnects in the background with capped
 * backoff (the blocking connect runs on a short-lived thread, so the loop
 * never waits for it); the up handler runs once it is back. With
 * sentinels, each connect asks them where the master is, and an answer
 * -READONLY or -LOADING drops the connection the same way. Losses, failed
 * attempts (once per new reason) and returns are logged.
 *
 * With [redis] cluster = on, a wire is one connection per master (its
 * strands), found from CLUSTER SLOTS of the seed (or of a master known
 * before); a push wire needs only one, to any node, as Pub/Sub is
 * cluster-wide. A command wire routes each command to the master serving
 * its key's slot, follows -MOVED (the slot map is updated) and -ASK
 * (ASKING, then the command, there) without its user seeing either, and
 * treats -CLUSTERDOWN, -READONLY, -LOADING and -UNBLOCKED, a lost strand and a MOVED
 * to a master it does not know as the loss of the whole wire: every
 * answer awaited comes back NULL, and the reconnect asks for the slot map
 * again. Users see one wire either way.
 *
 * A wire and its callbacks belong to the loop's thread. */
#ifndef REDWORK_WIRE_H
#define REDWORK_WIRE_H

#include <stddef.h>

#include "buffer.h"
#include "config.h"
#include "loop.h"
#include "resp.h"
#include "stats.h"

#define WIRE_STALL_MS 5000

typedef struct wire wire;

/* The answer to one command: REPLY (its values in preorder, valid during
 * the call), or NULL if the connection was lost before it came. */
typedef void wire_answer_fn(void *ctx, const resp_value *reply);

typedef struct wire_handlers {
    void (*up)(void *ctx);                        /* connected again */
    void (*down)(void *ctx, const char *why);     /* lost, answers given NULL */
    void (*push)(void *ctx, const resp_value *v); /* push wires: each reply */
} wire_handlers;

enum {
    WIRE_PUSH = 1,     /* a subscriber connection: every reply to h.push */
    WIRE_SENTINEL = 2, /* to one of [redis] sentinels, not to the master */
};

/* A wire to the [redis] of CFG named NAME in logs ("commands",
 * "subscriber", ...), with FLAGS (WIRE_*). H's functions may be NULL. Not
 * connected yet. Returns NULL out of memory. */
wire *wire_create(loop *lp, const config *cfg, const char *name,
                  const wire_handlers *h, void *ctx, unsigned flags);

/* In a cluster: W (not connected yet) holds only the connection to the
 * master serving KEY's slot (copied; at most WIRE_PIN_MAX bytes), and
 * follows it when it moves -- for a blocking read of one stream, which
 * must not wait behind another's. Without a cluster it changes nothing.
 * Returns 0, or -1 if KEY is too long. */
#define WIRE_PIN_MAX 512
int wire_pin(wire *w, const char *key);

/* Counts each return of W after a loss in ST->reconnects (borrowed). */
void wire_count_reconnects(wire *w, stats *st);

/* Closes the connection (answers awaited are given NULL; the down handler
 * does not run), abandons a reconnect under way, frees. Accepts NULL. */
void wire_free(wire *w);

/* Connects now, blocking for at most the connect timeout: for start-up,
 * where a failure ends the daemon. Runs the up handler. Returns 0, or -1
 * with ERR naming the server and the reason. */
int wire_connect(wire *w, char *err, size_t errlen);

/* 1 while connected. */
int wire_is_up(const wire *w);

/* The output buffer: append whole commands (resp.h), then one
 * wire_expect() per command, in order. Only while the wire is up. The key
 * a cluster routes a command by is its first argument after the name (the
 * second for XGROUP and XINFO, the first after STREAMS for XREADGROUP and
 * XREAD); a command with none goes to any master. */
buffer *wire_out(wire *w);

/* Registers FN(CTX) for the answer to the next command appended. Returns
 * 0, or -1 out of memory (the wire is then dropped and reconnected: the
 * command's answer could not be told from the next one's). */
int wire_expect(wire *w, wire_answer_fn *fn, void *ctx);

/* When the wire last read from its socket (clock_now_us()): the time of
 * receipt of everything parsed from that read. */
uint64_t wire_read_us(const wire *w);

/* Answers still awaited. */
size_t wire_waiting(const wire *w);

/* Writes what the output buffer holds, as far as the socket takes it (the
 * rest when it is writable). The loop does this before every wait; call
 * it to write earlier. */
void wire_flush(wire *w);

/* HOLD 1: stop watching the socket for input, so what Redis sends waits
 * there (a failed connection is still noticed) until wire_read() or HOLD
 * 0 -- for a subscriber whose messages are not wanted at once. Kept across
 * reconnects. */
void wire_hold_reads(wire *w, int hold);

/* Reads what has arrived and hands it over, without waiting. */
void wire_read(wire *w);

/* Connects again now: drops the connection if it is up (WHY is logged),
 * else starts the next attempt at once, or right after the one under way
 * if that fails -- for when the master moved. */
void wire_reconnect(wire *w, const char *why);

/* Drops the connection as failed (WHY is logged) and reconnects. */
void wire_drop(wire *w, const char *why);

#endif

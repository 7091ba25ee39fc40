/* streams.h -- transport = stream: requests read from Redis streams with a
 * consumer group.
 *
 * A stream_source owns one connection and speaks the stream commands: it
 * creates the group (MKSTREAM) on every stream, reads new entries with
 * XREADGROUP as this worker (the consumer is the worker id), takes over the
 * entries that dead consumers left pending with XAUTOCLAIM, moves entries
 * that cannot be served to <stream>:dead, and trims the streams. Replies
 * are acknowledged by the reply sink (XACK + XDEL after the PUBLISH). It
 * belongs to the dispatcher thread. */
#ifndef REDWORK_STREAMS_H
#define REDWORK_STREAMS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define STREAM_ID_MAX 48
#define STREAM_DEAD_SUFFIX ":dead"

/* One entry read from a stream. */
typedef struct stream_entry {
    const char *stream;   /* the stream key, borrowed from the config */
    char id[STREAM_ID_MAX];
    char *body;           /* its "msg" field, owned; NULL if it has none */
    size_t len;
    long long deliveries; /* how many times the group delivered it */
    uint64_t entry_ms;    /* the time in its id (ms since the epoch) */
} stream_entry;

typedef struct stream_source stream_source;

/* Connects and creates the group on every stream of CFG (from the start of
 * the stream, so entries added before any worker ran are served). Returns
 * NULL with ERR naming the server or stream on failure. */
stream_source *stream_source_open(const config *cfg, char *err, size_t errlen);

/* Closes and frees. Accepts NULL. */
void stream_source_free(stream_source *s);

/* Reads up to ROOM (>= 1) new entries into OUT, waiting up to BLOCK_MS
 * for the first. Returns how many (the caller frees each body with
 * stream_entry_clear), 0 if none came, -1 with ERR if the connection
 * failed (the source is then unusable: free it and open another). */
int stream_source_read(stream_source *s, size_t room, int block_ms,
                       stream_entry *out, char *err, size_t errlen);

/* Takes over up to ROOM entries idle for more than claim_idle_ms in other
 * consumers' pending lists (XAUTOCLAIM), with their delivery counts.
 * Returns how many are in OUT, or -1 with ERR. */
int stream_source_reclaim(stream_source *s, size_t room, stream_entry *out,
                          char *err, size_t errlen);

/* Whether any stream has an entry idle for more than claim_idle_ms in a
 * pending list (a dead consumer's, as held entries are touched). Returns 1
 * or 0, or -1 with ERR. */
int stream_source_has_orphans(stream_source *s, char *err, size_t errlen);

/* Moves E to <stream>:dead (its body, WHY and its delivery count), then
 * acknowledges and deletes it. Returns 0, or -1 with ERR. */
int stream_source_dead_letter(stream_source *s, const stream_entry *e,
                              const char *why, char *err, size_t errlen);

/* Trims every stream and its dead-letter stream to about stream_maxlen
 * entries (0: no trimming). Returns 0, or -1 with ERR. */
int stream_source_trim(stream_source *s, char *err, size_t errlen);

/* Frees E's body. */
void stream_entry_clear(stream_entry *e);

/* The entries this process holds: read or taken over, and not yet
 * answered. They are "touched" (XCLAIM ... JUSTID) regularly, so that no
 * daemon -- this one included -- takes over an entry that is merely slow.
 * Thread-safe: the dispatcher adds, whoever finishes an entry removes. */
typedef struct stream_holds stream_holds;

stream_holds *stream_holds_create(void);
void stream_holds_free(stream_holds *h);

/* Adds entry ID of STREAM (borrowed from the config). Returns 0, or -1
 * out of memory (the entry is then merely not touched). */
int stream_holds_add(stream_holds *h, const char *stream, const char *id);

/* Removes entry ID of STREAM, if held. */
void stream_holds_remove(stream_holds *h, const char *stream, const char *id);

/* How many entries are held. */
size_t stream_holds_count(stream_holds *h);

/* Resets the idle time of every held entry (XCLAIM <stream> <group> <id>
 * 0 <ids> JUSTID, which counts no delivery). Returns 0, or -1 with ERR. */
int stream_source_touch(stream_source *s, stream_holds *h, char *err,
                        size_t errlen);

#endif

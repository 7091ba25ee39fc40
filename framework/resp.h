/* resp.h -- the Redis protocol (RESP2) on the daemon's own buffers.
 *
 * Writing: commands are appended to a buffer as RESP arrays of bulk strings,
 * with no format string to interpret. Reading: a resp_reader holds the
 * bytes read from one socket and parses one whole reply at a time into a
 * flat array of values in preorder (an array, then its elements), which
 * point into the reader's buffer: no allocation per reply, no copy of a
 * message body. hiredis is still what opens connections (conn.h); once a
 * connection is up, its socket is read and written through here. */
#ifndef REDWORK_RESP_H
#define REDWORK_RESP_H

#include <stddef.h>

#include "buffer.h"

/* ---- writing ----------------------------------------------------------- */

/* Appends "*N\r\n": the start of a command of N arguments. */
int resp_array(buffer *out, size_t n);

/* Appends one argument: N bytes at P as a bulk string. */
int resp_bulk(buffer *out, const void *p, size_t n);

/* Appends one argument: a NUL-terminated string. */
int resp_bulk_str(buffer *out, const char *s);

/* Appends one argument made of two strings, A then B: a key such as
 * <prefix><req_id>, with no copy to build it first. */
int resp_bulk_pair(buffer *out, const char *a, const char *b);

/* Appends one argument: V in decimal. */
int resp_bulk_ll(buffer *out, long long v);

/* Appends a whole command of ARGC arguments: ARGV[i] of LENS[i] bytes
 * (LENS NULL: NUL-terminated strings). */
int resp_command(buffer *out, int argc, const char *const *argv, const size_t *lens);

/* resp_command() of NUL-terminated string arguments, counted for you:
 * resp_args(out, "XACK", stream, group, id). */
#define resp_args(out, ...)                                                        \
    resp_command((out), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
                 (const char *const[]){__VA_ARGS__}, NULL)

/* Each returns 0, or -1 out of memory (OUT's failed flag is set). */

/* ---- reading ----------------------------------------------------------- */

enum resp_type {
    RESP_STRING = 1, /* a bulk or simple string */
    RESP_ERROR,
    RESP_INTEGER,
    RESP_NIL,        /* a null bulk string or null array */
    RESP_ARRAY,
};

typedef struct resp_value {
    int type;
    const char *str;   /* STRING, ERROR: the bytes, NUL-terminated */
    size_t len;
    long long integer; /* INTEGER: the value; ARRAY: how many elements */
    size_t end;        /* the index just past this value's last element */
} resp_value;

/* The elements of the ARRAY at V are V + 1, then each next one at the
 * previous one's end, relative to the first value of the reply. */
#define RESP_LIMIT_BULK (512u * 1024u * 1024u)  /* Redis's own proto-max-bulk-len */
#define RESP_LIMIT_DEPTH 16

typedef struct resp_reader {
    buffer in;        /* bytes read and not yet consumed, from pos */
    size_t pos;
    size_t need;      /* bytes from pos the reply being read needs, if known */
    resp_value *values;
    size_t values_cap;
    char err[128];    /* a protocol error, once resp_reader_next said so */
} resp_reader;

/* An empty reader. Cannot fail (memory comes with the first read). */
void resp_reader_init(resp_reader *r);

/* Frees what R holds. */
void resp_reader_free(resp_reader *r);

/* Drops every byte read: for a connection that starts over. */
void resp_reader_reset(resp_reader *r);

/* Reads what FD has now (non-blocking), at most MAX bytes. Values returned
 * by resp_reader_next() before are invalid afterwards. Returns how many
 * bytes were read (0: nothing there), or -1 at end of file or on an error
 * (errno says which; 0 at end of file). */
long resp_reader_read(resp_reader *r, int fd, size_t max);

/* Appends N bytes at P as if read: for tests and callers that read
 * themselves. Returns 0, or -1 out of memory. */
int resp_reader_feed(resp_reader *r, const void *p, size_t n);

/* Parses the next whole reply. Returns 1 with *OUT pointing at its values
 * (valid until the next call on R), 0 if its bytes have not all arrived
 * yet, or -1 on a protocol error (R->err says what; R is then unusable
 * until reset) or out of memory. */
int resp_reader_next(resp_reader *r, const resp_value **out);

/* The element after V (an element of an array) within the reply ROOT. */
static inline const resp_value *resp_next(const resp_value *root,
                                          const resp_value *v) {
    return root + v->end;
}

/* 1 if V is a string equal to the NUL-terminated S. */
int resp_is(const resp_value *v, const char *s);

/* In MAP, an array of ROOT's holding key, value, key, value, ...: the
 * value of the first key equal to KEY whose value is of TYPE; NULL if
 * there is none, or MAP is not an array. (Stream entries' fields, XINFO's
 * answers.) */
const resp_value *resp_map_get(const resp_value *root, const resp_value *map, const char *key,
                               int type);

#endif

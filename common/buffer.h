/* buffer.h -- a growable byte buffer: the one way redwork builds text and
 * protocol bytes (RESP commands, reply envelopes, JSON log lines), instead
 * of `pos += snprintf` against a size worked out by hand.
 *
 * The data is always NUL-terminated (the NUL is not counted in len). An
 * append that cannot get memory leaves the buffer as it was, sets the
 * sticky `failed` flag and returns -1, so a caller may append a whole
 * message and check once at the end. A buffer made with
 * redwork_buffer_init_fixed() lives in the caller's storage and never grows: an append that does not
 * fit is cut short (never inside a JSON escape) and sets `failed`.
 *
 * A buffer belongs to one thread at a time. The small appends are inline;
 * the rest are redwork_buffer_* functions. */
#ifndef REDWORK_BUFFER_H
#define REDWORK_BUFFER_H

#include <stddef.h>
#include <string.h>

typedef struct buffer {
    char *data;   /* NULL until the first append (growable buffers) */
    size_t len;
    size_t cap;   /* bytes at data, the NUL's included */
    int fixed;    /* caller's storage: never grows, never freed */
    int failed;   /* an append was refused or cut short since the reset */
} buffer;

#define BUFFER_INIT {NULL, 0, 0, 0, 0}

/* A buffer over STORAGE (CAP >= 1 bytes) that never grows. */
void redwork_buffer_init_fixed(buffer *b, char *storage, size_t cap);

/* Makes room for N more bytes (and the NUL). Returns 0, or -1 (failed set)
 * out of memory or, for a fixed buffer, when they do not fit. */
int redwork_buffer_grow(buffer *b, size_t n);

/* Empties B, keeping its memory. */
static inline void buffer_reset(buffer *b) {
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Frees B's memory (not a fixed buffer's) and empties it. Accepts a buffer
 * that never held anything. */
void redwork_buffer_free(buffer *b);

/* Frees B's memory if it is empty and holds more than KEEP bytes, so one
 * large message does not pin its memory for the life of the process. */
void redwork_buffer_shrink(buffer *b, size_t keep);

static inline int buffer_reserve(buffer *b, size_t n) {
    return b->len + n < b->cap ? 0 : redwork_buffer_grow(b, n);
}

/* Appends N bytes at P. Returns 0 or -1. */
static inline int buffer_append(buffer *b, const void *p, size_t n) {
    int status = buffer_reserve(b, n);
    if (status != 0) {
        if (!b->fixed)
            return -1;
        n = b->cap - 1 - b->len; /* a fixed buffer keeps what fits */
    }
    if (n > 0) /* P may be NULL for nothing: memcpy may not be given it */
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return status;
}

static inline int buffer_append_str(buffer *b, const char *s) {
    return buffer_append(b, s, strlen(s));
}

/* Writes V in decimal at TEXT (no NUL). Returns how many bytes (<= 20). */
size_t redwork_ll_text(long long v, char text[20]);

/* Drops the first N bytes (N <= len), moving the rest to the front. */
void redwork_buffer_consume(buffer *b, size_t n);

/* Appends V in decimal. Returns 0 or -1. */
static inline int buffer_append_ll(buffer *b, long long v) {
    char text[20];
    return buffer_append(b, text, redwork_ll_text(v, text));
}

/* Appends the N bytes at S as a JSON string, quotes included, escaping
 * '"', '\\' and control characters. Returns 0 or -1. */
int redwork_buffer_append_json(buffer *b, const char *s, size_t n);

/* The length of the UTF-8 sequence at P (before END): 1..4, or 0 if the
 * bytes there are not one valid sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
size_t redwork_utf8_len(const unsigned char *p, const unsigned char *end);

/* The offset of the first byte of the N at P that is not part of valid
 * UTF-8, or N if they all are. ASCII goes eight bytes at a time: every
 * reply is checked, and most are ASCII. */
size_t redwork_utf8_invalid_at(const char *p, size_t n);

#endif

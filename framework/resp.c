/* resp.c -- the Redis protocol (RESP2) on the daemon's own buffers.
 *
 * DESIGN. The reader keeps the bytes of one socket in a buffer and parses a
 * reply only once all of it has arrived: a partial reply is parsed again
 * from its start after the next read, which for the messages redwork gets
 * costs less than keeping a parser's state across reads. A reply becomes a
 * flat preorder array of values whose strings point into the buffer; the
 * '\r' after each string is overwritten with a NUL once the reply is
 * whole. Nothing is allocated per reply: the buffer and the value array
 * grow to the largest reply seen, and the buffer shrinks back when a large
 * one has been consumed. */
#include "resp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define READ_KEEP (256u * 1024u)   /* an idle reader keeps at most this */
#define LINE_MAX_BYTES 65536       /* a header or simple string line */
#define ARRAY_MAX 16777216LL

/* ---- writing ----------------------------------------------------------- */

/* Appends PREFIX, the decimal V and CRLF. */
static int header(buffer *out, char prefix, long long v) {
    char text[24];
    size_t n = 1;
    text[0] = prefix;
    n += redwork_ll_text(v, text + 1);
    text[n++] = '\r';
    text[n++] = '\n';
    return buffer_append(out, text, n);
}

int resp_array(buffer *out, size_t n) { return header(out, '*', (long long)n); }

int resp_bulk(buffer *out, const void *p, size_t n) {
    if (buffer_reserve(out, n + 24) != 0)
        return -1;
    header(out, '$', (long long)n);
    buffer_append(out, p, n);
    return buffer_append(out, "\r\n", 2);
}

int resp_bulk_str(buffer *out, const char *s) { return resp_bulk(out, s, strlen(s)); }

int resp_bulk_pair(buffer *out, const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (buffer_reserve(out, na + nb + 24) != 0)
        return -1;
    header(out, '$', (long long)(na + nb));
    buffer_append(out, a, na);
    buffer_append(out, b, nb);
    return buffer_append(out, "\r\n", 2);
}

int resp_bulk_ll(buffer *out, long long v) {
    char text[20];
    return resp_bulk(out, text, redwork_ll_text(v, text));
}

int resp_command(buffer *out, int argc, const char *const *argv, const size_t *lens) {
    resp_array(out, (size_t)argc);
    for (int i = 0; i < argc; i++)
        resp_bulk(out, argv[i], lens != NULL ? lens[i] : strlen(argv[i]));
    return out->failed ? -1 : 0;
}

/* ---- reading ----------------------------------------------------------- */

void resp_reader_init(resp_reader *r) {
    memset(r, 0, sizeof *r);
    r->in = (buffer)BUFFER_INIT;
}

void resp_reader_free(resp_reader *r) {
    redwork_buffer_free(&r->in);
    free(r->values);
    resp_reader_init(r);
}

void resp_reader_reset(resp_reader *r) {
    buffer_reset(&r->in);
    r->pos = 0;
    r->need = 0;
    r->err[0] = '\0';
    redwork_buffer_shrink(&r->in, READ_KEEP);
}

/* Moves the unconsumed bytes to the front of the buffer. */
static void compact(resp_reader *r) {
    if (r->pos == 0)
        return;
    size_t left = r->in.len - r->pos;
    memmove(r->in.data, r->in.data + r->pos, left);
    r->in.len = left;
    r->in.data[left] = '\0';
    r->pos = 0;
    if (left == 0)
        redwork_buffer_shrink(&r->in, READ_KEEP);
}

long resp_reader_read(resp_reader *r, int fd, size_t max) {
    compact(r);
    size_t want = r->need > r->in.len ? r->need - r->in.len : 0;
    if (want < READ_CHUNK)
        want = READ_CHUNK;
    if (buffer_reserve(&r->in, want) != 0) {
        errno = ENOMEM;
        return -1;
    }
    size_t room = r->in.cap - 1 - r->in.len;
    ssize_t n = read(fd, r->in.data + r->in.len, room < max ? room : max);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        if (n == 0)
            errno = 0;
        return -1;
    }
    r->in.len += (size_t)n;
    r->in.data[r->in.len] = '\0';
    return (long)n;
}

int resp_reader_feed(resp_reader *r, const void *p, size_t n) {
    compact(r);
    return buffer_append(&r->in, p, n);
}

/* Parses the integer between P and END (exclusive). Returns 0, or -1. */
static int parse_ll(const char *p, const char *end, long long *out) {
    int negative = p < end && *p == '-';
    if (negative)
        p++;
    if (p == end || end - p > 19)
        return -1;
    unsigned long long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    if (v > (unsigned long long)9223372036854775807LL + (unsigned long long)negative)
        return -1;
    *out = negative ? (long long)(0ULL - v) : (long long)v;
    return 0;
}

static int fail(resp_reader *r, const char *what) {
    snprintf(r->err, sizeof r->err, "protocol error: %s", what);
    return -1;
}

int resp_reader_next(resp_reader *r, const resp_value **out) {
    char *const base = r->in.data;
    const char *p = base + r->pos, *const end = base + r->in.len;
    struct { size_t index; long long left; } stack[RESP_LIMIT_DEPTH];
    int depth = 0;
    size_t n = 0;
    if (r->err[0] != '\0')
        return -1;
    for (;;) {
        if (p >= end)
            return 0;
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (cr == NULL || cr + 1 >= end) {
            if (end - p > LINE_MAX_BYTES)
                return fail(r, "line too long");
            return 0;
        }
        if (cr[1] != '\n')
            return fail(r, "line not ended by CRLF");
        if (n == r->values_cap) {
            size_t cap = r->values_cap ? r->values_cap * 2 : 64;
            resp_value *grown = realloc(r->values, cap * sizeof *grown);
            if (grown == NULL)
                return fail(r, "out of memory");
            r->values = grown;
            r->values_cap = cap;
        }
        resp_value *v = &r->values[n];
        v->str = NULL;
        v->len = 0;
        v->integer = 0;
        long long count = 0;
        switch (*p) {
        case '+':
        case '-':
            v->type = *p == '+' ? RESP_STRING : RESP_ERROR;
            v->str = p + 1;
            v->len = (size_t)(cr - p - 1);
            p = cr + 2;
            break;
        case ':':
            v->type = RESP_INTEGER;
            if (parse_ll(p + 1, cr, &v->integer) != 0)
                return fail(r, "bad integer");
            p = cr + 2;
            break;
        case '$':
            if (parse_ll(p + 1, cr, &count) != 0 || count < -1 || count > RESP_LIMIT_BULK)
                return fail(r, "bad bulk length");
            if (count == -1) {
                v->type = RESP_NIL;
                p = cr + 2;
                break;
            }
            if (end - (cr + 2) < count + 2) {
                r->need = (size_t)(cr + 2 - (base + r->pos)) + (size_t)count + 2;
                return 0;
            }
            if (cr[2 + count] != '\r' || cr[3 + count] != '\n')
                return fail(r, "bulk string not ended by CRLF");
            v->type = RESP_STRING;
            v->str = cr + 2;
            v->len = (size_t)count;
            p = cr + 4 + count;
            break;
        case '*':
            if (parse_ll(p + 1, cr, &count) != 0 || count < -1 || count > ARRAY_MAX)
                return fail(r, "bad array length");
            v->type = count == -1 ? RESP_NIL : RESP_ARRAY;
            v->integer = count > 0 ? count : 0;
            p = cr + 2;
            break;
        default:
            return fail(r, "unknown reply type");
        }
        v->end = ++n;
        if (v->type == RESP_ARRAY && v->integer > 0) {
            if (depth == RESP_LIMIT_DEPTH)
                return fail(r, "replies nested too deep");
            stack[depth].index = n - 1;
            stack[depth++].left = v->integer;
            continue;
        }
        /* A value is complete: so is every array it completes. */
        while (depth > 0 && --stack[depth - 1].left == 0)
            r->values[stack[--depth].index].end = n;
        if (depth == 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        if (r->values[i].str != NULL)
            ((char *)r->values[i].str)[r->values[i].len] = '\0';
    r->pos = (size_t)(p - base);
    r->need = 0;
    *out = r->values;
    return 1;
}

int resp_is(const resp_value *v, const char *s) {
    size_t n = strlen(s);
    return v->type == RESP_STRING && v->len == n && memcmp(v->str, s, n) == 0;
}

const resp_value *resp_map_get(const resp_value *root, const resp_value *map, const char *key,
                               int type) {
    if (map->type != RESP_ARRAY)
        return NULL;
    for (const resp_value *k = map + 1; k < root + map->end;) {
        const resp_value *v = resp_next(root, k);
        if (v >= root + map->end)
            break;
        if (v->type == type && resp_is(k, key))
            return v;
        k = resp_next(root, v);
    }
    return NULL;
}

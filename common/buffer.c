/* buffer.c -- a growable byte buffer (see buffer.h). */
#include "buffer.h"

#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>

#define BUFFER_MIN 256

void redwork_buffer_init_fixed(buffer *b, char *storage, size_t cap) {
    b->data = storage;
    b->len = 0;
    b->cap = cap;
    b->fixed = 1;
    b->failed = 0;
    storage[0] = '\0';
}

int redwork_buffer_grow(buffer *b, size_t n) {
    if (b->len + n < b->cap)
        return 0;
    if (b->fixed || b->len + n + 1 < n) {
        b->failed = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : BUFFER_MIN;
    while (cap < b->len + n + 1)
        cap = cap * 2 > cap ? cap * 2 : b->len + n + 1;
    char *data = redwork_realloc(b->data, cap);
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    if (b->data == NULL)
        data[0] = '\0';
    b->data = data;
    b->cap = cap;
    return 0;
}

void redwork_buffer_free(buffer *b) {
    if (!b->fixed)
        free(b->data);
    *b = (buffer)BUFFER_INIT;
}

void redwork_buffer_shrink(buffer *b, size_t keep) {
    if (b->len == 0 && b->cap > keep && !b->fixed)
        redwork_buffer_free(b);
}

void redwork_buffer_consume(buffer *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

size_t redwork_ll_text(long long v, char text[20]) {
    char digits[20];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        text[len++] = '-';
    while (n > 0)
        text[len++] = digits[--n];
    return len;
}

int redwork_buffer_append_json(buffer *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buffer_reserve(b, 6 * n + 2) != 0 && !b->fixed)
        return -1;
    if (b->cap - b->len < 3) { /* a full fixed buffer: not even "" fits */
        b->failed = 1;
        return -1;
    }
    /* A fixed buffer may be too small: LIMIT keeps room for the closing
     * quote, and an escape is written whole or not at all. */
    size_t limit = b->cap - 2 - b->len;
    char *out = b->data + b->len;
    size_t w = 0, i = 0;
    int cut = 0;
    out[w++] = '"';
    while (i < n && !cut) {
        size_t run = i;
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
            run++;
        size_t take = run - i;
        if (take > limit - w) {
            take = limit - w;
            cut = 1;
        }
        memcpy(out + w, s + i, take);
        w += take;
        i += take;
        if (cut || i == n)
            break;
        unsigned char ch = (unsigned char)s[i++];
        char esc[6] = {'\\', (char)ch};
        size_t k = 2;
        if (ch < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            k = 6;
        }
        if (w + k > limit) {
            cut = 1;
            break;
        }
        memcpy(out + w, esc, k);
        w += k;
    }
    out[w++] = '"';
    b->len += w;
    b->data[b->len] = '\0';
    if (cut) {
        b->failed = 1;
        return -1;
    }
    return 0;
}

size_t redwork_utf8_len(const unsigned char *p, const unsigned char *end) {
    if (p >= end)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

size_t redwork_utf8_invalid_at(const char *p, size_t n) {
    const unsigned char *u = (const unsigned char *)p, *end = u + n, *q = u;
    while (q < end) {
        uint64_t word;
        while (end - q >= 8 && (memcpy(&word, q, 8), (word & 0x8080808080808080u) == 0))
            q += 8;
        if (q < end && *q < 0x80) {
            q++;
            continue;
        }
        if (q >= end)
            break;
        size_t len = redwork_utf8_len(q, end);
        if (len == 0)
            return (size_t)(q - u);
        q += len;
    }
    return n;
}

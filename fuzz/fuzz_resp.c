/* fuzz_resp.c -- libFuzzer target: the RESP reader (resp_reader_next) on
 * any bytes, fed whole and then in two pieces split where the input's
 * first byte says, which must parse the same replies: a reply is parsed
 * only once all of it has arrived. Run by `make fuzz`; seeds in
 * tests/fuzz/resp/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds the N bytes at P (in two pieces at SPLIT) and returns a checksum
 * of every value parsed, or -1 after a protocol error. */
static long long parse_all(const uint8_t *p, size_t n, size_t split) {
    resp_reader r;
    resp_reader_init(&r);
    unsigned long long sum = 0;
    int status = 0;
    for (int piece = 0; piece < 2 && status >= 0; piece++) {
        size_t from = piece == 0 ? 0 : split, to = piece == 0 ? split : n;
        if (resp_reader_feed(&r, p + from, to - from) != 0)
            abort();
        const resp_value *v;
        while ((status = resp_reader_next(&r, &v)) == 1)
            for (size_t i = 0; i < v->end; i++) {
                if (v[i].end <= i || v[i].end > v->end)
                    abort(); /* an element past its reply */
                sum = sum * 31 + (unsigned long long)v[i].type * 7 + v[i].len +
                      (unsigned long long)v[i].integer;
                if (v[i].str != NULL && v[i].str[v[i].len] != '\0')
                    abort(); /* strings end with a NUL */
            }
    }
    resp_reader_free(&r);
    return status < 0 ? -1 : (long long)(sum >> 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t split = data[0] % size;
    long long whole = parse_all(data + 1, size - 1, size - 1);
    long long pieces = parse_all(data + 1, size - 1, split < size - 1 ? split : size - 1);
    if (whole != pieces && whole != -1 && pieces != -1)
        abort(); /* the same bytes, parsed differently */
    return 0;
}

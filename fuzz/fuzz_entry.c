/* fuzz_entry.c -- libFuzzer target: stream entries (entry.h) in any RESP
 * answer, walked as an XREADGROUP answer and, from its first element, as
 * an XCLAIM answer. Every entry found must lie in the reader's buffer with
 * its NUL, and its id fit a hold. Run by `make fuzz`; seeds in
 * tests/fuzz/entry/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "holds.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const entry *e) {
    if (e->id == NULL || e->id_len >= HOLD_ID_MAX || e->id[e->id_len] != '\0')
        abort();
    if (e->body != NULL && e->body[e->body_len] != '\0')
        abort();
}

static void on_entry(void *ctx, const resp_value *stream, const entry *e) {
    (void)stream;
    ++*(size_t *)ctx;
    check(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    resp_reader r;
    resp_reader_init(&r);
    if (resp_reader_feed(&r, data, size) != 0)
        abort();
    const resp_value *v;
    size_t entries = 0;
    while (resp_reader_next(&r, &v) == 1) {
        entry_each_read(v, on_entry, &entries);
        entry one;
        if (v->type == RESP_ARRAY && v->integer > 0 && entry_parse(v, v + 1, &one) == 0)
            check(&one);
    }
    resp_reader_free(&r);
    return 0;
}

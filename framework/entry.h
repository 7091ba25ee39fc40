/* entry.h -- stream entries as Redis answers XREADGROUP and XCLAIM: their
 * shapes checked in one place, so that an answer of any shape is walked
 * without reading past it (fuzz/fuzz_entry.c drives this on any RESP). */
#ifndef REDWORK_ENTRY_H
#define REDWORK_ENTRY_H

#include <stddef.h>

#include "resp.h"

typedef struct entry {
    const char *id;     /* NUL-terminated, in the reader's buffer */
    size_t id_len;      /* shorter than HOLD_ID_MAX */
    const char *body;   /* the msg field's value (NUL-terminated), or NULL */
    size_t body_len;
} entry;

/* Reads the value E of the answer ROOT as an entry [id, [field, value,
 * ...]] into OUT: its id and the first msg field. Returns 0, or -1 if E
 * is not an entry (a nil for a deleted one, say). */
int entry_parse(const resp_value *root, const resp_value *e, entry *out);

/* Called with each entry of a read and the value naming its stream. */
typedef void entry_fn(void *ctx, const resp_value *stream, const entry *e);

/* Calls FN(CTX, ...) for each entry of the XREADGROUP answer V,
 * [[stream, [entry, ...]], ...]; what has another shape is skipped. */
void entry_each_read(const resp_value *v, entry_fn *fn, void *ctx);

#endif

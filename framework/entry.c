/* entry.c -- stream entries in XREADGROUP and XCLAIM answers (entry.h).
 * Every step checks the type and stays within the element it is in: a
 * value's end bounds its elements, the answer's end bounds everything. */
#include "entry.h"

#include "holds.h"
#include "protocol.h"

int entry_parse(const resp_value *root, const resp_value *e, entry *out) {
    if (e->type != RESP_ARRAY || e->integer != 2 || e[1].type != RESP_STRING ||
        e[1].len >= HOLD_ID_MAX)
        return -1;
    const resp_value *id = &e[1], *fields = resp_next(root, id);
    out->id = id->str;
    out->id_len = id->len;
    out->body = NULL;
    out->body_len = 0;
    if (fields >= root + e->end)
        return 0;
    const resp_value *body = resp_map_get(root, fields, PROTOCOL_STREAM_FIELD, RESP_STRING);
    if (body != NULL) {
        out->body = body->str;
        out->body_len = body->len;
    }
    return 0;
}

void entry_each_read(const resp_value *v, entry_fn *fn, void *ctx) {
    if (v->type != RESP_ARRAY)
        return;
    for (const resp_value *st = v + 1; st < v + v->end; st = resp_next(v, st)) {
        if (st->type != RESP_ARRAY || st->integer != 2)
            continue;
        const resp_value *entries = resp_next(v, &st[1]);
        if (entries >= v + st->end || entries->type != RESP_ARRAY)
            continue;
        for (const resp_value *e = entries + 1; e < v + entries->end; e = resp_next(v, e)) {
            entry one;
            if (entry_parse(v, e, &one) == 0)
                fn(ctx, &st[1], &one);
        }
    }
}

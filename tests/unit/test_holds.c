/* test_holds.c -- the stream entries a daemon holds (framework/holds.h):
 * adding and releasing in any order, and the XCLAIM ... JUSTID touches
 * written per stream for exactly the entries still held. */
#include <criterion/criterion.h>

#include <string.h>

#include "holds.h"
#include "resp.h"

static const char *const streams[] = {"jobs", "mail"};

static void take(holds *set, hold *h, const char *stream, const char *id) {
    memset(h, 0, sizeof *h);
    h->stream = stream;
    strcpy(h->id, id);
    holds_add(set, h);
}

/* Parses the commands in OUT; checks there are N and returns them as
 * "XCLAIM jobs g c 0 1-0 2-0 JUSTID" lines in TEXT. */
static void commands(const buffer *out, int n, char *text, size_t len) {
    resp_reader r;
    resp_reader_init(&r);
    cr_assert_eq(resp_reader_feed(&r, out->data, out->len), 0);
    text[0] = '\0';
    const resp_value *v;
    int got = 0;
    while (resp_reader_next(&r, &v) == 1) {
        cr_assert_eq(v->type, RESP_ARRAY);
        for (const resp_value *a = v + 1; a < v + v->end; a = resp_next(v, a)) {
            strncat(text, a->str, len - strlen(text) - 2);
            strncat(text, " ", len - strlen(text) - 1);
        }
        text[strlen(text) - 1] = '\n';
        got++;
    }
    cr_assert_eq(got, n, "%d commands, expected %d:\n%s", got, n, text);
    resp_reader_free(&r);
}

Test(holds, empty_set_touches_nothing) {
    holds set;
    holds_init(&set);
    buffer out = BUFFER_INIT;
    cr_assert_eq(holds_touch(&set, streams, 2, "g", "c", &out), 0);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(set.count, 0);
}

Test(holds, add_release_count) {
    holds set;
    holds_init(&set);
    hold a, b, c;
    take(&set, &a, streams[0], "1-0");
    take(&set, &b, streams[0], "2-0");
    take(&set, &c, streams[1], "3-0");
    cr_assert_eq(set.count, 3);
    cr_assert(hold_is_held(&b));
    hold_release(&b);
    cr_assert(!hold_is_held(&b));
    cr_assert_eq(set.count, 2);
    hold_release(&b); /* twice: nothing happens */
    cr_assert_eq(set.count, 2);
    hold_release(&a);
    hold_release(&c);
    cr_assert_eq(set.count, 0);
    cr_assert_eq(set.head.next, &set.head, "the ring is empty again");
}

Test(holds, touch_names_each_stream_held_entries_once) {
    holds set;
    holds_init(&set);
    hold a, b, c, d;
    take(&set, &a, streams[0], "1-0");
    take(&set, &b, streams[1], "2-0");
    take(&set, &c, streams[0], "3-0");
    take(&set, &d, streams[0], "4-0");
    hold_release(&c); /* answered: not touched any more */
    buffer out = BUFFER_INIT;
    cr_assert_eq(holds_touch(&set, streams, 2, "redwork", "w1", &out), 2);
    char text[512];
    commands(&out, 2, text, sizeof text);
    cr_assert_str_eq(text, "XCLAIM jobs redwork w1 0 1-0 4-0 JUSTID\n"
                           "XCLAIM mail redwork w1 0 2-0 JUSTID\n");
    redwork_buffer_free(&out);
}

Test(holds, touch_skips_a_stream_with_nothing_held) {
    holds set;
    holds_init(&set);
    hold a;
    take(&set, &a, streams[1], "9-1");
    buffer out = BUFFER_INIT;
    cr_assert_eq(holds_touch(&set, streams, 2, "g", "c", &out), 1);
    char text[256];
    commands(&out, 1, text, sizeof text);
    cr_assert_str_eq(text, "XCLAIM mail g c 0 9-1 JUSTID\n");
    redwork_buffer_free(&out);
}

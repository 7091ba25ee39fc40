/* test_resp.c -- the Redis protocol on redwork's own buffers
 * (framework/resp.h): commands written byte for byte as Redis expects
 * them, and replies parsed whole, in pieces, nested, and refused when
 * they are not RESP. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "resp.h"

/* ---- writing ------------------------------------------------------------- */

Test(resp, command_bytes) {
    buffer out = BUFFER_INIT;
    cr_assert_eq(resp_args(&out, "SET", "k", "v"), 0);
    cr_assert_str_eq(out.data, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    buffer_reset(&out);
    const char *argv[] = {"PUBLISH", "c", "a\0b"};
    const size_t lens[] = {7, 1, 3};
    cr_assert_eq(resp_command(&out, 3, argv, lens), 0);
    cr_assert_eq(out.len, 33);
    cr_assert_eq(memcmp(out.data, "*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$3\r\na\0b\r\n", 33), 0,
                 "binary arguments are written whole");
    redwork_buffer_free(&out);
}

Test(resp, numbers_and_empty_arguments) {
    buffer out = BUFFER_INIT;
    resp_array(&out, 4);
    resp_bulk_ll(&out, 0);
    resp_bulk_ll(&out, -42);
    resp_bulk_ll(&out, LLONG_MIN);
    resp_bulk_str(&out, "");
    cr_assert_str_eq(out.data, "*4\r\n$1\r\n0\r\n$3\r\n-42\r\n$20\r\n-9223372036854775808\r\n"
                               "$0\r\n\r\n");
    redwork_buffer_free(&out);
}

/* ---- reading -------------------------------------------------------------- */

static resp_reader reader;

static void setup(void) { resp_reader_init(&reader); }
static void teardown(void) { resp_reader_free(&reader); }

TestSuite(resp_read, .init = setup, .fini = teardown);

static const resp_value *feed_one(const char *text) {
    cr_assert_eq(resp_reader_feed(&reader, text, strlen(text)), 0);
    const resp_value *v = NULL;
    cr_assert_eq(resp_reader_next(&reader, &v), 1, "not parsed: %s", text);
    return v;
}

Test(resp_read, scalars) {
    const resp_value *v = feed_one("+OK\r\n");
    cr_assert_eq(v->type, RESP_STRING);
    cr_assert_str_eq(v->str, "OK");
    v = feed_one("-ERR wrong\r\n");
    cr_assert_eq(v->type, RESP_ERROR);
    cr_assert_str_eq(v->str, "ERR wrong");
    v = feed_one(":-17\r\n");
    cr_assert_eq(v->type, RESP_INTEGER);
    cr_assert_eq(v->integer, -17);
    v = feed_one("$-1\r\n");
    cr_assert_eq(v->type, RESP_NIL);
    v = feed_one("*-1\r\n");
    cr_assert_eq(v->type, RESP_NIL);
    v = feed_one("$0\r\n\r\n");
    cr_assert_eq(v->type, RESP_STRING);
    cr_assert_eq(v->len, 0);
    cr_assert_str_eq(v->str, "");
}

Test(resp_read, bulk_with_crlf_and_nul_inside) {
    const char text[] = "$6\r\na\r\n\0bc\r\n";
    cr_assert_eq(resp_reader_feed(&reader, text, sizeof text - 1), 0);
    const resp_value *v;
    cr_assert_eq(resp_reader_next(&reader, &v), 1);
    cr_assert_eq(v->len, 6);
    cr_assert_eq(memcmp(v->str, "a\r\n\0bc", 6), 0);
    cr_assert_eq(v->str[6], '\0', "strings end with a NUL");
}

/* A pub/sub message: [message, channel, body]. */
Test(resp_read, nested_arrays_in_preorder) {
    const resp_value *v = feed_one("*2\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"
                                   "*2\r\n:1\r\n*0\r\n");
    cr_assert_eq(v->type, RESP_ARRAY);
    cr_assert_eq(v->integer, 2);
    const resp_value *msg = v + 1;
    cr_assert_eq(msg->integer, 3);
    const resp_value *kind = msg + 1, *chan = resp_next(v, kind), *body = resp_next(v, chan);
    cr_assert(resp_is(kind, "message"));
    cr_assert(resp_is(chan, "c"));
    cr_assert(resp_is(body, "hi"));
    cr_assert_eq(resp_next(v, body), v + msg->end, "the message ends after its body");
    const resp_value *second = resp_next(v, msg);
    cr_assert_eq(second->type, RESP_ARRAY);
    cr_assert_eq((second + 1)->integer, 1);
    const resp_value *empty = resp_next(v, second + 1);
    cr_assert_eq(empty->type, RESP_ARRAY);
    cr_assert_eq(empty->integer, 0);
    cr_assert_eq(v->end, (size_t)(empty - v) + 1, "the reply ends with its last value");
}

/* Fed one byte at a time, a reply is parsed once, when its last byte is
 * in; the next one after it. */
Test(resp_read, replies_split_anywhere) {
    const char *text = "*3\r\n$9\r\nsubscribe\r\n$7\r\nrequest\r\n:1\r\n$5\r\nhello\r\n";
    size_t n = strlen(text), first_end = strlen("*3\r\n$9\r\nsubscribe\r\n$7\r\nrequest\r\n:1\r\n");
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(resp_reader_feed(&reader, text + i, 1), 0);
        const resp_value *v;
        int status;
        while ((status = resp_reader_next(&reader, &v)) == 1) {
            got++;
            if (got == 1) {
                cr_assert_eq(i + 1, first_end, "the first reply came at byte %zu", i + 1);
                cr_assert(resp_is(v + 1, "subscribe"));
            } else {
                cr_assert_eq(i + 1, n);
                cr_assert(resp_is(v, "hello"));
            }
        }
        cr_assert_eq(status, 0);
    }
    cr_assert_eq(got, 2);
}

Test(resp_read, protocol_errors) {
    const char *bad[] = {"?what\r\n", ":12x\r\n", "$abc\r\n", "$3\r\nabcd\r\n", "*-2\r\n",
                         "+OK\rX\n", ":99999999999999999999\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp_reader_reset(&reader);
        cr_assert_eq(resp_reader_feed(&reader, bad[i], strlen(bad[i])), 0);
        const resp_value *v;
        cr_assert_eq(resp_reader_next(&reader, &v), -1, "accepted %s", bad[i]);
        cr_assert_neq(reader.err[0], '\0');
        cr_assert_eq(resp_reader_next(&reader, &v), -1, "an error sticks until a reset");
    }
}

Test(resp_read, nesting_is_bounded) {
    char text[256] = "";
    for (int i = 0; i <= RESP_LIMIT_DEPTH; i++)
        strcat(text, "*1\r\n");
    strcat(text, ":1\r\n");
    cr_assert_eq(resp_reader_feed(&reader, text, strlen(text)), 0);
    const resp_value *v;
    cr_assert_eq(resp_reader_next(&reader, &v), -1);
}

/* Reads from a pipe, as from a socket: a reply larger than the pipe
 * arrives over several reads and is parsed once whole; end of file is -1
 * with errno 0. */
Test(resp_read, reads_from_a_descriptor) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    static char text[200020];
    size_t len = (size_t)snprintf(text, sizeof text, "$%d\r\n", 200000);
    memset(text + len, 'x', 200000);
    len += 200000;
    memcpy(text + len, "\r\n", 2);
    len += 2;
    size_t sent = 0;
    int status = 0, reads = 0;
    const resp_value *v = NULL;
    while (status == 0) {
        if (sent < len) {
            ssize_t n = write(fds[1], text + sent, len - sent);
            if (n > 0)
                sent += (size_t)n;
            if (sent == len)
                close(fds[1]);
        }
        long got = resp_reader_read(&reader, fds[0], 1 << 20);
        cr_assert_geq(got, 0);
        reads += got > 0;
        status = resp_reader_next(&reader, &v);
        cr_assert(status == 0 || sent == len, "parsed before the last byte was written");
    }
    cr_assert_eq(status, 1);
    cr_assert_gt(reads, 1, "the reply came in one read");
    cr_assert_eq(v->len, 200000);
    cr_assert_eq(v->str[199999], 'x');
    cr_assert_eq(resp_reader_read(&reader, fds[0], 1 << 20), -1, "end of file");
    close(fds[0]);
}

/* test_request.c -- scanning and validating requests (framework/request.h)
 * and the SDK's request accessors (include/redwork/handler.h).
 *
 * Covers: a table of good messages, of unanswerable ones (no usable req_id)
 * and of bad ones (usable req_id, bad envelope: the id must come back), the
 * over-max_bytes path that still finds a top-level req_id, NUL bytes,
 * bodies that are not NUL-terminated, request_expired(), and every
 * redwork_request_* accessor on a parsed request. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../leaks.h"
#include "../oom.h"
#include "clock.h"
#include "request.h"

#define MAX_BYTES 4096

/* Scans BODY (LEN bytes) copied into a buffer of exactly LEN bytes, so
 * that a read past the end is caught by ASan or valgrind, as received on
 * CHANNEL at RECEIVED_US. On REQUEST_OK *OUT gets the request with its
 * tree built for the accessors (the caller frees it); else NULL. ID gets
 * the req_id found, if any. */
static int scan_as(const char *body, size_t len, const char *channel, size_t max_bytes,
                   uint64_t received_us, request **out, char id[PROTOCOL_ID_MAX + 1],
                   char *err, size_t errlen) {
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, body, len);
    request *req = request_new();
    cr_assert_not_null(req);
    int rc = request_scan(req, copy, len, channel, strlen(channel), max_bytes, "callback:",
                          received_us, err, errlen);
    free(copy);
    strcpy(id, req->id);
    *out = NULL;
    if (rc == REQUEST_OK) {
        cr_assert_eq(request_parse_tree(req, err, errlen), 0, "cJSON refused what the scan took: %s", err);
        *out = req;
    } else {
        request_free(req);
    }
    return rc;
}

static int parse_len(const char *body, size_t len, size_t max_bytes,
                     request **out, char id[PROTOCOL_ID_MAX + 1], char *err,
                     size_t errlen) {
    return scan_as(body, len, "request", max_bytes, 1000000, out, id, err, errlen);
}

static int parse(const char *body, request **out, char id[PROTOCOL_ID_MAX + 1],
                 char *err, size_t errlen) {
    return parse_len(body, strlen(body), MAX_BYTES, out, id, err, errlen);
}

/* Parses BODY, which must be good, and returns the request. */
static request *parse_ok(const char *body) {
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256] = "";
    int rc = parse(body, &req, id, err, sizeof err);
    cr_assert_eq(rc, REQUEST_OK, "refused %s: %s", body, err);
    cr_assert_not_null(req);
    return req;
}

/* A string of N copies of C (static, overwritten by the next call). */
static const char *repeat(char c, size_t n) {
    static char buf[1024];
    cr_assert_lt(n, sizeof buf);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* ---- good messages ----------------------------------------------------- */

static const struct {
    const char *body;
    const char *id;
} good[] = {
    {"{\"req_id\":\"abc\",\"x\":1}", "abc"},
    {"{\"req_id\":123}", "123"},
    {"{\"req_id\":0}", "0"},
    {"{\"user_id\":\"Alice\",\"req_id\":123}", "123"},
    {"{\"req_id\":\"AZaz09_.:-\"}", "AZaz09_.:-"},
    {"  {\"req_id\" : \"sp\"}\n", "sp"},
    {"{\"req_id\":\"h\",\"handler\":\"greet\"}", "h"},
    {"{\"req_id\":\"t\",\"timeout_ms\":250}", "t"},
    {"{\"req_id\":\"t0\",\"timeout_ms\":0}", "t0"},
    {"{\"nested\":{\"req_id\":\"inner\"},\"req_id\":\"outer\"}", "outer"},
};

Test(request, good_messages) {
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        request *req = parse_ok(good[i].body);
        cr_expect_str_eq(req->id, good[i].id, "%s", good[i].body);
        cr_expect_str_eq(redwork_request_id(req), good[i].id);
        cr_expect_str_eq(req->channel, "request");
        cr_expect_eq(req->received_us, 1000000);
        request_free(req);
    }
}

Test(request, id_of_128_chars_is_good) {
    char body[256];
    snprintf(body, sizeof body, "{\"req_id\":\"%s\"}", repeat('k', 128));
    request *req = parse_ok(body);
    cr_assert_eq(strlen(req->id), 128);
    cr_assert_str_eq(req->id, repeat('k', 128));
    request_free(req);
}

Test(request, handler_and_timeout_fields) {
    request *req = parse_ok("{\"req_id\":\"a\",\"handler\":\"greet\","
                            "\"timeout_ms\":1500}");
    cr_assert_not_null(req->handler_field);
    cr_assert_str_eq(req->handler_field, "greet");
    cr_assert_eq(req->timeout_ms, 1500);
    cr_assert_null(req->handler);
    request_free(req);

    req = parse_ok("{\"req_id\":\"b\"}");
    cr_assert_null(req->handler_field);
    cr_assert_eq(req->timeout_ms, -1, "no timeout_ms must be -1");
    request_free(req);
}

Test(request, max_bytes_is_inclusive) {
    const char *body = "{\"req_id\":\"edge\"}";
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256];
    int rc = parse_len(body, strlen(body), strlen(body), &req, id, err,
                       sizeof err);
    cr_assert_eq(rc, REQUEST_OK, "a body of exactly max_bytes: %s", err);
    request_free(req);
}

Test(request, body_need_not_be_nul_terminated) {
    /* The parse sees 16 bytes of a longer buffer: the rest is not JSON. */
    const char *buf = "{\"req_id\":\"abc\"}GARBAGE";
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256];
    int rc = scan_as(buf, 16, "request", MAX_BYTES, 0, &req, id, err, sizeof err);
    cr_assert_eq(rc, REQUEST_OK, "%s", err);
    cr_assert_str_eq(req->id, "abc");
    request_free(req);
}

/* ---- unanswerable: no usable req_id ------------------------------------ */

static const char *const unanswerable[] = {
    "not json",
    "",
    "{",
    "{\"x\":\"\xff\", \"req_id\":\"after-bad-bytes\"}",
    "[1,2,3]",
    "[{\"req_id\":\"abc\"}]",
    "\"req_id\"",
    "42",
    "null",
    "{}",
    "{\"x\":1}",
    "{\"REQ_ID\":\"abc\"}",
    "{\"nested\":{\"req_id\":\"inner\"}}",
    "{\"req_id\":\"\"}",
    "{\"req_id\":\"has space\"}",
    "{\"req_id\":\"a/b\"}",
    "{\"req_id\":\"a*\"}",
    "{\"req_id\":\"\\u00e9\"}",
    "{\"req_id\":\"a\\u0000b\"}",
    "{\"req_id\":\"tab\\t\"}",
    "{\"req_id\":-1}",
    "{\"req_id\":1.5}",
    "{\"req_id\":true}",
    "{\"req_id\":false}",
    "{\"req_id\":null}",
    "{\"req_id\":{}}",
    "{\"req_id\":[\"abc\"]}",
};

Test(request, unanswerable_messages) {
    for (size_t i = 0; i < sizeof unanswerable / sizeof unanswerable[0]; i++) {
        request *req = NULL;
        char id[PROTOCOL_ID_MAX + 1], err[256] = "";
        int rc = parse(unanswerable[i], &req, id, err, sizeof err);
        cr_expect_eq(rc, REQUEST_UNANSWERABLE, "'%s' gave %d (id '%s')",
                     unanswerable[i], rc, rc == REQUEST_OK ? req->id : id);
        cr_expect_null(req, "'%s': a request came back", unanswerable[i]);
        cr_expect_neq(err[0], '\0', "'%s': no reason in err", unanswerable[i]);
        request_free(req);
    }
}

Test(request, id_of_129_chars_is_unanswerable) {
    char body[256];
    snprintf(body, sizeof body, "{\"req_id\":\"%s\"}", repeat('k', 129));
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256];
    cr_assert_eq(parse(body, &req, id, err, sizeof err), REQUEST_UNANSWERABLE);
    cr_assert_null(req);
}

/* ---- bad: the req_id is usable, the rest is not ------------------------ */

static const struct {
    const char *body;
    const char *id;
} bad[] = {
    {"{\"req_id\":\"h1\",\"handler\":5}", "h1"},
    {"{\"req_id\":\"h2\",\"handler\":\"\"}", "h2"},
    {"{\"req_id\":\"h3\",\"handler\":null}", "h3"},
    {"{\"req_id\":\"h4\",\"handler\":[\"greet\"]}", "h4"},
    {"{\"req_id\":7,\"handler\":true}", "7"},
    {"{\"req_id\":\"t1\",\"timeout_ms\":-1}", "t1"},
    {"{\"req_id\":\"t2\",\"timeout_ms\":\"100\"}", "t2"},
    {"{\"req_id\":\"t3\",\"timeout_ms\":1.5}", "t3"},
    {"{\"req_id\":\"t4\",\"timeout_ms\":null}", "t4"},
    {"{\"req_id\":\"t5\",\"timeout_ms\":{}}", "t5"},
    /* Not JSON, or not UTF-8, with a req_id to be found first (protocol 1.1). */
    {"{\"req_id\":\"abc\"", "abc"},
    {"{\"req_id\":\"abc\"} trailing", "abc"},
    {"{\"req_id\":\"m1\",\"x\":}", "m1"},
    {"{\"req_id\":12,\"x\":[1,}", "12"},
    {"{\"req_id\":\"u1\",\"x\":\"\xff\xfe\xc3\"}", "u1"},
    {"{\"req_id\":\"u2\",\"x\":\"\xc0\xaf\"}", "u2"},        /* overlong '/' */
    {"{\"req_id\":\"u3\",\"x\":\"\xed\xa0\x80\"}", "u3"},    /* an encoded surrogate */
    {"{\"req_id\":\"u4\",\"x\":\"\xf4\x90\x80\x80\"}", "u4"}, /* past U+10FFFF */
    {"{\"req_id\":\"u5\",\"x\":\"\\udc80\"}", "u5"},       /* a lone surrogate */
    {"{\"req_id\":\"u6\",\"x\":\"\xe2\x82\"}", "u6"},        /* cut short */
    {"{\"req_id\":\"r1\",\"reply_to\":\"other:x\"}", "r1"},
    {"{\"req_id\":\"r2\",\"reply_to\":\"callback:\"}", "r2"},
    {"{\"req_id\":\"r3\",\"reply_to\":\"callback:a b\"}", "r3"},
    {"{\"req_id\":\"r4\",\"reply_to\":5}", "r4"},
    {"{\"req_id\":\"r5\",\"reply_to\":\"callback:\\u0061\"}", "r5"},
};

Test(request, bad_messages_keep_their_id) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request *req = NULL;
        char id[PROTOCOL_ID_MAX + 1] = "", err[256] = "";
        int rc = parse(bad[i].body, &req, id, err, sizeof err);
        cr_expect_eq(rc, REQUEST_BAD, "'%s' gave %d", bad[i].body, rc);
        cr_expect_str_eq(id, bad[i].id, "'%s': id", bad[i].body);
        cr_expect_null(req);
        cr_expect_neq(err[0], '\0', "'%s': no reason in err", bad[i].body);
        if (rc == REQUEST_OK)
            request_free(req);
    }
}

/* ---- bodies over max_bytes --------------------------------------------- */

/* Parses TEXT padded with a long "pad" field so it is over 200 bytes, with
 * max_bytes 100. Returns the status, with the id in ID. */
static int parse_oversize(const char *head, const char *tail,
                          char id[PROTOCOL_ID_MAX + 1]) {
    char body[1024];
    snprintf(body, sizeof body, "%s\"pad\":\"%s\"%s", head, repeat('p', 200),
             tail);
    request *req = NULL;
    char err[256] = "";
    int rc = parse_len(body, strlen(body), 100, &req, id, err, sizeof err);
    cr_assert_null(req, "an oversize body must not be parsed into a request");
    cr_assert_neq(err[0], '\0');
    return rc;
}

Test(request, oversize_with_top_level_id_is_bad) {
    char id[PROTOCOL_ID_MAX + 1];
    cr_assert_eq(parse_oversize("{\"req_id\":\"big1\",", "}", id), REQUEST_BAD);
    cr_assert_str_eq(id, "big1");

    /* After the padding, after a nested object, and as an integer. */
    cr_assert_eq(parse_oversize("{", ",\"req_id\":\"big2\"}", id), REQUEST_BAD);
    cr_assert_str_eq(id, "big2");
    cr_assert_eq(parse_oversize("{\"meta\":{\"req_id\":\"inner\",\"a\":[1,{}]},",
                                ",\"req_id\":\"outer\"}", id),
                 REQUEST_BAD);
    cr_assert_str_eq(id, "outer");
    cr_assert_eq(parse_oversize("{ \"req_id\" : 99 ,", "}", id), REQUEST_BAD);
    cr_assert_str_eq(id, "99");

    /* Strings holding braces, quotes and backslashes do not confuse it. */
    cr_assert_eq(parse_oversize("{\"s\":\"}{[\\\"\\\\\",", ",\"req_id\":\"big3\"}",
                                id),
                 REQUEST_BAD);
    cr_assert_str_eq(id, "big3");
}

Test(request, oversize_integer_id_same_as_parsed) {
    /* A 16-digit integer id is good in a normal body (it is below 2^53);
     * over max_bytes it must give the same id, not become unanswerable. */
    request *req = parse_ok("{\"req_id\":1234567890123456}");
    cr_assert_str_eq(req->id, "1234567890123456");
    request_free(req);
    char id[PROTOCOL_ID_MAX + 1] = "";
    cr_assert_eq(parse_oversize("{\"req_id\":1234567890123456,", "}", id),
                 REQUEST_BAD, "oversize body with a 16-digit integer id");
    cr_assert_str_eq(id, "1234567890123456");
}

Test(request, oversize_without_findable_id_is_unanswerable) {
    char id[PROTOCOL_ID_MAX + 1];
    cr_assert_eq(parse_oversize("{", "}", id), REQUEST_UNANSWERABLE);
    /* Nested only: not the request's id. */
    cr_assert_eq(parse_oversize("{\"meta\":{\"req_id\":\"inner\"},", "}", id),
                 REQUEST_UNANSWERABLE, "took nested id '%s'", id);
    cr_assert_eq(parse_oversize("{\"list\":[{\"req_id\":\"inner\"}],", "}", id),
                 REQUEST_UNANSWERABLE, "took id '%s' from an array", id);
    /* "req_id" as a value, or inside a string, is not the key. */
    cr_assert_eq(parse_oversize("{\"k\":\"req_id\",", "}", id),
                 REQUEST_UNANSWERABLE, "took id '%s'", id);
    cr_assert_eq(parse_oversize("{\"k\":\"\\\"req_id\\\":\\\"fake\\\"\",", "}",
                                id),
                 REQUEST_UNANSWERABLE, "took id '%s' from inside a string", id);
    /* A bad id stays bad, oversize or not. */
    cr_assert_eq(parse_oversize("{\"req_id\":\"a b\",", "}", id),
                 REQUEST_UNANSWERABLE);
    cr_assert_eq(parse_oversize("{\"req_id\":-3,", "}", id),
                 REQUEST_UNANSWERABLE);
    cr_assert_eq(parse_oversize("{\"req_id\":1.5,", "}", id),
                 REQUEST_UNANSWERABLE);
    cr_assert_eq(parse_oversize("[", "]", id), REQUEST_UNANSWERABLE);
}

/* ---- NUL bytes ---------------------------------------------------------- */

Test(request, nul_bytes_never_crash) {
    static const struct {
        const char *body;
        size_t len;
    } cases[] = {
        {"{\"req_id\":\"a\0b\"}", 16},
        {"{\"req_id\":\"abc\"}\0", 17},
        {"{\"req_id\":\"abc\",\0\"x\":1}", 23},
        {"\0{\"req_id\":\"abc\"}", 17},
        {"{\"req_id\":\"abc\",\"x\":\"\0\"}", 24},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request *req = NULL;
        char id[PROTOCOL_ID_MAX + 1] = "", err[256] = "";
        int rc = parse_len(cases[i].body, cases[i].len, MAX_BYTES, &req, id,
                           err, sizeof err);
        cr_expect(rc == REQUEST_UNANSWERABLE || rc == REQUEST_BAD,
                  "case %zu: a body with a NUL gave %d", i, rc);
        cr_expect_null(req);
        if (rc == REQUEST_BAD)
            cr_expect_str_eq(id, "abc", "case %zu", i);
        if (rc == REQUEST_OK)
            request_free(req);
    }
    /* Oversize with NUL bytes: the sniffer must not crash either. */
    char big[300];
    memset(big, 0, sizeof big);
    memcpy(big, "{\"req_id\":\"abc\",\"x\":\"", 21);
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256];
    int rc = parse_len(big, sizeof big, 100, &req, id, err, sizeof err);
    cr_assert(rc == REQUEST_UNANSWERABLE || rc == REQUEST_BAD);
    cr_assert_null(req);
}

Test(request, free_null_is_fine) {
    request_free(NULL);
}

/* ---- request_expired --------------------------------------------------- */

Test(request, expired_after_timeout) {
    request *req = parse_ok("{\"req_id\":\"e\",\"timeout_ms\":100}");
    uint64_t t0 = req->received_us; /* 1,000,000 from parse_len */
    cr_assert_eq(request_expired(req, t0), 0);
    cr_assert_eq(request_expired(req, t0 + 99999), 0);
    cr_assert_eq(request_expired(req, t0 + 100000), 0,
                 "waiting exactly timeout_ms is not longer than it");
    cr_assert_eq(request_expired(req, t0 + 100001), 1);
    cr_assert_eq(request_expired(req, t0 + 10000000), 1);
    request_free(req);
}

Test(request, never_expires_without_timeout) {
    request *req = parse_ok("{\"req_id\":\"n\"}");
    cr_assert_eq(request_expired(req, req->received_us + 3600000000ull), 0);
    request_free(req);
}

Test(request, zero_timeout_expires_once_time_passed) {
    request *req = parse_ok("{\"req_id\":\"z\",\"timeout_ms\":0}");
    cr_assert_eq(request_expired(req, req->received_us + 1001), 1);
    request_free(req);
}

/* ---- the SDK accessors --------------------------------------------------- */

Test(request, accessors) {
    const char *body = "{\"req_id\":\"acc\",\"name\":\"Al\",\"n\":42,\"neg\":-7,"
                       "\"f\":2.5,\"t\":true,\"no\":false,\"nil\":null,"
                       "\"big\":1e300,\"obj\":{\"name\":\"inner\"}}";
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256];
    cr_assert_eq(scan_as(body, strlen(body), "news_sports", MAX_BYTES, clock_now_us(), &req,
                         id, err, sizeof err),
                 REQUEST_OK, "%s", err);

    cr_assert_str_eq(redwork_request_id(req), "acc");
    cr_assert_str_eq(redwork_request_channel(req), "news_sports");

    const cJSON *json = redwork_request_json(req);
    cr_assert(cJSON_IsObject(json));
    cr_assert_str_eq(cJSON_GetObjectItem(json, "req_id")->valuestring, "acc");

    cr_assert_str_eq(redwork_request_string(req, "name"), "Al");
    cr_assert_str_eq(redwork_request_string(req, "req_id"), "acc");
    cr_assert_null(redwork_request_string(req, "n"));
    cr_assert_null(redwork_request_string(req, "absent"));
    cr_assert_null(redwork_request_string(req, "Name"), "keys are case-sensitive");

    long long i = 0;
    cr_assert_eq(redwork_request_int(req, "n", &i), 0);
    cr_assert_eq(i, 42);
    cr_assert_eq(redwork_request_int(req, "neg", &i), 0);
    cr_assert_eq(i, -7);
    i = 5;
    cr_assert_eq(redwork_request_int(req, "f", &i), -1);
    cr_assert_eq(redwork_request_int(req, "big", &i), -1, "1e300 fits no long long");
    cr_assert_eq(redwork_request_int(req, "name", &i), -1);
    cr_assert_eq(redwork_request_int(req, "nil", &i), -1);
    cr_assert_eq(redwork_request_int(req, "absent", &i), -1);
    cr_assert_eq(i, 5, "a failed getter must not write *out");

    double d = 0;
    cr_assert_eq(redwork_request_number(req, "f", &d), 0);
    cr_assert_float_eq(d, 2.5, 1e-12);
    cr_assert_eq(redwork_request_number(req, "n", &d), 0);
    cr_assert_float_eq(d, 42.0, 1e-12);
    cr_assert_eq(redwork_request_number(req, "name", &d), -1);
    cr_assert_eq(redwork_request_number(req, "t", &d), -1);

    int b = -1;
    cr_assert_eq(redwork_request_bool(req, "t", &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(redwork_request_bool(req, "no", &b), 0);
    cr_assert_eq(b, 0);
    cr_assert_eq(redwork_request_bool(req, "n", &b), -1);
    cr_assert_eq(redwork_request_bool(req, "nil", &b), -1);
    cr_assert_eq(redwork_request_bool(req, "absent", &b), -1);

    cr_assert_eq(redwork_request_time_left_ms(req), -1, "no timeout_ms: -1");
    request_free(req);
}

Test(request, time_left_ms) {
    const char *body = "{\"req_id\":\"tl\",\"timeout_ms\":10000}";
    request *req = NULL;
    char id[PROTOCOL_ID_MAX + 1], err[256];
    cr_assert_eq(scan_as(body, strlen(body), "request", MAX_BYTES, clock_now_us(), &req, id,
                         err, sizeof err),
                 REQUEST_OK);
    long long left = redwork_request_time_left_ms(req);
    cr_assert_leq(left, 10000);
    cr_assert_gt(left, 5000, "10 s timeout, just received: %lld left", left);
    request_free(req);

    /* Received 20 s ago with a 10 s timeout: nothing left. */
    uint64_t now = clock_now_us();
    cr_assert_eq(scan_as(body, strlen(body), "request", MAX_BYTES,
                         now > 20000000u ? now - 20000000u : 0, &req, id, err, sizeof err),
                 REQUEST_OK);
    if (now > 20000000u)
        cr_assert_eq(redwork_request_time_left_ms(req), 0);
    request_free(req);
}

/* ---- nesting depth ------------------------------------------------------ */

/* {"req_id":"deep","x":[[[...1...]]]} with N levels in all (the outer object
 * counts as one); malloc'd. */
static char *nested(int n, int with_id) {
    size_t cap = (size_t)n * 2 + 64;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    size_t len = (size_t)snprintf(s, cap, "{%s\"x\":", with_id ? "\"req_id\":\"deep\"," : "");
    for (int i = 1; i < n; i++)
        s[len++] = '[';
    s[len++] = '1';
    for (int i = 1; i < n; i++)
        s[len++] = ']';
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

Test(request, nesting_up_to_the_limit_is_parsed) {
    char *body = nested(REQUEST_DEPTH_MAX, 1);
    request *req = parse_ok(body);
    request_free(req);
    free(body);
}

Test(request, nesting_past_the_limit_is_refused_before_parsing) {
    char id[PROTOCOL_ID_MAX + 1], err[256];
    request *req = NULL;
    char *body = nested(REQUEST_DEPTH_MAX + 1, 1);
    cr_assert_eq(parse(body, &req, id, err, sizeof err), REQUEST_BAD);
    cr_assert_null(req);
    cr_assert_str_eq(id, "deep", "the caller must still be answerable");
    cr_assert_not_null(strstr(err, "nested"), "%s", err);
    free(body);

    body = nested(100000, 0); /* far past any recursion budget */
    cr_assert_eq(parse(body, &req, id, err, sizeof err), REQUEST_UNANSWERABLE);
    free(body);
}

Test(request, brackets_inside_strings_do_not_count) {
    char body[512];
    snprintf(body, sizeof body, "{\"req_id\":\"s\",\"t\":\"%s\"}", repeat('[', 200));
    request *req = parse_ok(body);
    request_free(req);
}

/* \u escapes must be Unicode: a surrogate pair is one character, a lone
 * surrogate is refused (as cJSON refuses it, which builds the handler's
 * tree from what the scan accepted). */
Test(request, surrogates_in_pairs_only) {
    request *req = parse_ok("{\"req_id\":\"s\",\"x\":\"\\uD83D\\uDE00\"}");
    cr_assert_str_eq(redwork_request_string(req, "x"), "\xF0\x9F\x98\x80");
    request_free(req);
    const char *lone[] = {"{\"req_id\":\"s\",\"x\":\"\\uD800\"}",
                         "{\"req_id\":\"s\",\"x\":\"\\uDC00\"}",
                         "{\"req_id\":\"s\",\"x\":\"\\uDB00)\"}",
                         "{\"req_id\":\"s\",\"x\":\"\\uD800\\u0041\"}"};
    for (size_t i = 0; i < sizeof lone / sizeof lone[0]; i++) {
        char id[PROTOCOL_ID_MAX + 1], err[256];
        cr_assert_eq(parse(lone[i], &req, id, err, sizeof err), REQUEST_BAD, "%s", lone[i]);
        cr_assert_str_eq(id, "s", "the req_id before the surrogate is answered");
        cr_assert_not_null(strstr(err, "surrogate"), "%s", err);
        cr_assert_null(req);
    }
}

Test(request, integer_id_is_marked_a_number) {
    request *req = parse_ok("{\"user_id\":\"Alice\",\"req_id\":123}");
    cr_assert_str_eq(req->id, "123");
    cr_assert(req->id_is_number);
    request_free(req);
    req = parse_ok("{\"req_id\":\"123\"}");
    cr_assert_not(req->id_is_number, "a string id stays a string");
    request_free(req);
}

Test(request, reply_to_points_into_the_copy) {
    request *req = parse_ok("{\"req_id\":\"q1\",\"reply_to\":\"callback:client-7.x\"}");
    cr_assert_not_null(req->reply_to);
    cr_assert_eq(req->reply_to_len, strlen("callback:client-7.x"));
    cr_assert_eq(memcmp(req->reply_to, "callback:client-7.x", req->reply_to_len), 0);
    request_free(req);
    req = parse_ok("{\"req_id\":\"q2\"}");
    cr_assert_null(req->reply_to);
    request_free(req);
}

Test(request, valid_utf8_of_every_length_passes) {
    request *req = parse_ok("{\"req_id\":\"v\",\"x\":\"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
    cr_assert_str_eq(redwork_request_string(req, "x"), "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    request_free(req);
}

/* An empty message, whose body hiredis or a reader may give as NULL: no
 * memcpy or memchr on NULL (UBSan's nonnull), refused with a reason. */
Test(request, empty_message_with_a_null_body) {
    request *req = request_new();
    char err[256] = "";
    cr_assert_eq(request_scan(req, NULL, 0, "request", 7, 1024, "callback:", 1, err, sizeof err),
                 REQUEST_UNANSWERABLE);
    cr_assert_not_null(strstr(err, "empty"), "%s", err);
    request_free(req);
}

/* Every prefix of a request, each in a buffer of exactly its length (no
 * NUL after it): under ASan a read past the end is an error. (The fuzzer
 * found one: a body ending right after "req_id":, which the search for an
 * id to answer read one byte past.) */
Test(request, no_read_past_the_length) {
    static const char body[] = "{\"req_id\":\"p1\",\"handler\":\"echo\",\"reply_to\":\"callback:c\","
                               "\"x\":[1,-2.5e3,true,null,\"\\u00e9\\ud83d\\ude00\"],\"timeout_ms\":5}";
    for (size_t n = 0; n <= sizeof body - 1; n++) {
        char *exact = malloc(n ? n : 1);
        cr_assert_not_null(exact);
        memcpy(exact, body, n);
        request *req = request_new();
        char err[256];
        int rc = request_scan(req, n ? exact : NULL, n, "request", 7, 1024, "callback:", 1, err,
                              sizeof err);
        cr_assert_eq(rc, n == sizeof body - 1 ? REQUEST_OK : rc, "length %zu", n);
        cr_assert(n == sizeof body - 1 || rc != REQUEST_OK, "a prefix of %zu bytes passed", n);
        request_free(req);
        free(exact);
    }
}

/* Every allocation of taking a request in, failed in turn (tests/oom.h):
 * making it, the scan's copy and the cJSON tree. Each run ends with the
 * request whole, or answerable -- its id known, the error "internal"'s
 * out of memory, never blamed on the client -- and nothing leaks (CI runs
 * this under ASan and valgrind). */
Test(request, each_allocation_failing_in_turn_is_answered) {
    static const char body[] = "{\"req_id\":\"oom1\",\"handler\":\"echo\","
                               "\"a\":[1,{\"b\":\"c\"}],\"s\":\"x\"}";
    long n = 1;
    for (;; n++) {
        char err[256] = "";
        oom_fail_nth(n);
        request *req = request_new();
        int scanned = req == NULL ? -100
                                  : request_scan(req, body, sizeof body - 1, "request", 7, 1024,
                                                 "callback:", 1, err, sizeof err);
        int parsed = scanned == REQUEST_OK ? request_parse_tree(req, err, sizeof err) : -1;
        int reached = oom_stop();
        if (!reached) {
            cr_assert_eq(parsed, 0, "nothing failed, yet: %s", err);
            cr_assert_str_eq(redwork_request_string(req, "s"), "x");
            request_free(req);
            break;
        }
        cr_assert(req == NULL || scanned == REQUEST_NO_MEMORY || parsed != 0,
                  "allocation %ld failed unseen (scan %d, parse %d)", n, scanned, parsed);
        if (req != NULL) {
            cr_assert_str_eq(req->id, "oom1", "allocation %ld: the id is lost", n);
            cr_assert_not_null(strstr(err, "out of memory"), "allocation %ld: %s", n, err);
        }
        request_free(req);
    }
    cr_log_info("walked %ld allocations", n - 1);
    cr_assert_geq(n, 4, "only %ld allocations were walked", n - 1);
    assert_no_leaks();
}

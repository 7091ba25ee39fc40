/* test_reply.c -- building and encoding replies (framework/reply.h) and the
 * SDK's reply setters (include/redwork/handler.h).
 *
 * Covers: reply_init/reply_clear, redwork_reply_json (ownership, NULL),
 * redwork_reply_string, redwork_reply_error (return value, code checking,
 * printf formatting, truncation), each call replacing the previous one, and
 * reply_envelope's envelope parsed back with cJSON. Publishing needs
 * Redis and is left to the integration tests. Run under valgrind or
 * ASan to check the ownership rules leak nothing. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../leaks.h"
#include "../oom.h"
#include "reply.h"

/* The envelope of R as a malloc'd string (the caller frees it). */
static char *reply_encode(const reply *r, const char *req_id, const char *handler,
                          const char *worker, long long duration_us) {
    buffer out = BUFFER_INIT;
    cr_assert_eq(reply_envelope(&out, r, req_id, 0, handler, worker, duration_us), 0);
    return out.data;
}

/* Encodes R and parses the envelope back; the caller deletes it. */
static cJSON *encode_parse(const reply *r, const char *req_id,
                           const char *handler) {
    char *text = reply_encode(r, req_id, handler, "host:42", 1234);
    cr_assert_not_null(text);
    cJSON *env = cJSON_Parse(text);
    cr_assert_not_null(env, "not JSON: %s", text);
    cr_assert(cJSON_IsObject(env), "not an object: %s", text);
    free(text);
    return env;
}

/* 1 if the N bytes at S are well-formed UTF-8. */
static int valid_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t more;
        if (p[i] < 0x80)
            more = 0;
        else if ((p[i] & 0xe0) == 0xc0 && p[i] >= 0xc2)
            more = 1;
        else if ((p[i] & 0xf0) == 0xe0)
            more = 2;
        else if ((p[i] & 0xf8) == 0xf0 && p[i] <= 0xf4)
            more = 3;
        else
            return 0;
        if (i + more >= n)
            return 0;
        for (size_t k = 1; k <= more; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}

/* ---- the reply struct and the SDK setters ------------------------------ */

Test(reply, init_is_empty) {
    reply r;
    memset(&r, 0x5a, sizeof r);
    reply_init(&r);
    cr_assert_null(r.result);
    cr_assert_str_eq(r.code, "");
    cr_assert_eq(reply_is_error(&r), 0);
}

Test(reply, clear_frees_and_empties) {
    reply r;
    reply_init(&r);
    cr_assert_eq(redwork_reply_string(&r, "x"), 0);
    reply_clear(&r);
    cr_assert_null(r.result);
    cr_assert_eq(reply_is_error(&r), 0);
    redwork_reply_error(&r, "timeout", "late");
    reply_clear(&r);
    cr_assert_eq(reply_is_error(&r), 0);
    cr_assert_str_eq(r.code, "");
    reply_clear(&r); /* twice is fine */
}

Test(reply, json_takes_ownership) {
    reply r;
    reply_init(&r);
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddNumberToObject(obj, "n", 7);
    cr_assert_eq(redwork_reply_json(&r, obj), 0);
    cr_assert_eq(r.result, obj);
    cr_assert_eq(reply_is_error(&r), 0);
    /* Replacing it frees the first (valgrind/ASan would see a leak). */
    cr_assert_eq(redwork_reply_json(&r, cJSON_CreateArray()), 0);
    cr_assert(cJSON_IsArray(r.result));
    reply_clear(&r);
}

Test(reply, json_null_is_refused) {
    reply r;
    reply_init(&r);
    cr_assert_eq(redwork_reply_json(&r, NULL), -1);
    cr_assert_null(r.result);
    cr_assert_eq(reply_is_error(&r), 0);
    reply_clear(&r);
}

Test(reply, string_is_copied) {
    reply r;
    reply_init(&r);
    char s[] = "Hi Alice";
    cr_assert_eq(redwork_reply_string(&r, s), 0);
    s[0] = 'X';
    cr_assert(cJSON_IsString(r.result));
    cr_assert_str_eq(r.result->valuestring, "Hi Alice");
    cr_assert_eq(redwork_reply_string(&r, NULL), -1);
    reply_clear(&r);
}

Test(reply, error_sets_code_and_message) {
    reply r;
    reply_init(&r);
    cr_assert_eq(redwork_reply_error(&r, "bad_request", "user_id %s, %d",
                                     "missing", 3),
                 -1);
    cr_assert_eq(reply_is_error(&r), 1);
    cr_assert_str_eq(r.code, "bad_request");
    cr_assert_str_eq(r.message, "user_id missing, 3");
    reply_clear(&r);
}

Test(reply, error_codes_checked) {
    static const struct {
        const char *code;
        const char *want;
    } cases[] = {
        {"bad_request", "bad_request"},
        {"unknown_handler", "unknown_handler"},
        {"handler_failed", "handler_failed"},
        {"timeout", "timeout"},
        {"overloaded", "overloaded"},
        {"shutting_down", "shutting_down"},
        {"internal", "internal"},
        {"my_code_2", "my_code_2"},
        {"abcdefghijabcdefghijabcdefghijab", "abcdefghijabcdefghijabcdefghijab"},
        {"abcdefghijabcdefghijabcdefghijabc", "handler_failed"}, /* 33 chars */
        {"Bad Code!", "handler_failed"},
        {"UPPER", "handler_failed"},
        {"dash-code", "handler_failed"},
        {"", "handler_failed"},
        {NULL, "handler_failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r;
        reply_init(&r);
        cr_expect_eq(redwork_reply_error(&r, cases[i].code, "m"), -1);
        cr_expect_str_eq(r.code, cases[i].want, "code '%s'",
                         cases[i].code ? cases[i].code : "(null)");
        cr_expect_str_eq(r.message, "m");
        reply_clear(&r);
    }
}

Test(reply, error_message_truncated) {
    char *big = malloc(5000);
    cr_assert_not_null(big);
    memset(big, 'm', 4999);
    big[4999] = '\0';
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "internal", "%s", big);
    cr_assert_eq(strlen(r.message), REPLY_MESSAGE_MAX);
    cr_assert_eq(strspn(r.message, "m"), REPLY_MESSAGE_MAX);
    free(big);

    /* And the envelope still carries it whole, as valid JSON. */
    cJSON *env = encode_parse(&r, "t", "h");
    cJSON *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(env, "error"), "message");
    cr_assert(cJSON_IsString(msg));
    cr_assert_eq(strlen(msg->valuestring), REPLY_MESSAGE_MAX);
    cJSON_Delete(env);
    reply_clear(&r);
}

Test(reply, truncation_keeps_utf8_whole) {
    /* 1023 ASCII bytes then a 2-byte character: cutting at 1024 bytes
     * would leave half of it, and the reply would not be valid UTF-8. */
    char text[1100];
    memset(text, 'a', REPLY_MESSAGE_MAX - 1);
    strcpy(text + REPLY_MESSAGE_MAX - 1, "\xc3\xa9tail");
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "internal", "%s", text);
    size_t n = strlen(r.message);
    cr_assert_leq(n, REPLY_MESSAGE_MAX);
    cr_assert_geq(n, REPLY_MESSAGE_MAX - 1);
    cr_assert(valid_utf8(r.message, n),
              "message cut inside a UTF-8 character (last byte 0x%02x)",
              (unsigned char)r.message[n - 1]);
    reply_clear(&r);
}

Test(reply, each_call_replaces_the_previous) {
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "timeout", "first");
    cr_assert_eq(redwork_reply_string(&r, "then ok"), 0);
    cr_assert_eq(reply_is_error(&r), 0, "a result after an error clears it");
    cr_assert_str_eq(r.result->valuestring, "then ok");

    redwork_reply_error(&r, "internal", "then error");
    cr_assert_eq(reply_is_error(&r), 1);
    cr_assert_null(r.result, "an error after a result frees it");
    cr_assert_str_eq(r.code, "internal");

    redwork_reply_error(&r, "overloaded", "again");
    cr_assert_str_eq(r.code, "overloaded");
    cr_assert_str_eq(r.message, "again");

    cr_assert_eq(redwork_reply_json(&r, cJSON_CreateNumber(5)), 0);
    cr_assert_eq(reply_is_error(&r), 0);
    cr_assert_eq(r.result->valuedouble, 5);
    reply_clear(&r);
}

/* ---- the envelope ------------------------------------------------------ */

Test(reply, encode_ok_with_result) {
    reply r;
    reply_init(&r);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "greeting", "Hi Alice");
    cJSON_AddNumberToObject(res, "n", 3);
    redwork_reply_json(&r, res);

    cJSON *env = encode_parse(&r, "123", "greet");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(env, "req_id")),
              "req_id must be a string, even when it looks like a number");
    cr_assert_str_eq(cJSON_GetObjectItem(env, "req_id")->valuestring, "123");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(env, "ok")));
    cr_assert(cJSON_Compare(cJSON_GetObjectItem(env, "result"), res, 1),
              "result differs");
    cr_assert_null(cJSON_GetObjectItem(env, "error"));
    cr_assert_str_eq(cJSON_GetObjectItem(env, "handler")->valuestring, "greet");
    cr_assert_str_eq(cJSON_GetObjectItem(env, "worker")->valuestring, "host:42");
    cJSON *dur = cJSON_GetObjectItem(env, "duration_us");
    cr_assert(cJSON_IsNumber(dur));
    cr_assert_eq(dur->valuedouble, 1234);
    cJSON_Delete(env);

    /* Encoding leaves R as it was: encoding again gives the same text. */
    cr_assert_eq(r.result, res);
    char *a = reply_encode(&r, "123", "greet", "host:42", 1234);
    char *b = reply_encode(&r, "123", "greet", "host:42", 1234);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    reply_clear(&r);
}

Test(reply, encode_nothing_set_is_null_result) {
    reply r;
    reply_init(&r);
    cJSON *env = encode_parse(&r, "e", "echo");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(env, "ok")));
    cJSON *result = cJSON_GetObjectItem(env, "result");
    cr_assert_not_null(result, "\"result\" must be present");
    cr_assert(cJSON_IsNull(result));
    cJSON_Delete(env);
}

Test(reply, encode_string_result) {
    reply r;
    reply_init(&r);
    redwork_reply_string(&r, "Hi Alice");
    cJSON *env = encode_parse(&r, "s", "greet");
    cr_assert_str_eq(cJSON_GetObjectItem(env, "result")->valuestring, "Hi Alice");
    cJSON_Delete(env);
    reply_clear(&r);
}

Test(reply, encode_error) {
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "unknown_handler", "no handler named '%s'", "gret");
    cJSON *env = encode_parse(&r, "123", NULL);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(env, "ok")));
    cJSON *error = cJSON_GetObjectItem(env, "error");
    cr_assert(cJSON_IsObject(error));
    cr_assert_str_eq(cJSON_GetObjectItem(error, "code")->valuestring,
                     "unknown_handler");
    cr_assert_str_eq(cJSON_GetObjectItem(error, "message")->valuestring,
                     "no handler named 'gret'");
    cJSON *result = cJSON_GetObjectItem(env, "result");
    cr_assert(result == NULL || cJSON_IsNull(result),
              "an error reply carries no result");
    cr_assert_str_eq(cJSON_GetObjectItem(env, "req_id")->valuestring, "123");
    cr_assert_str_eq(cJSON_GetObjectItem(env, "worker")->valuestring, "host:42");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(env, "duration_us")));
    cJSON_Delete(env);
    reply_clear(&r);
}

Test(reply, encode_without_handler) {
    /* Not routed: DESIGN.md shows a "handler" key on every reply; with no
     * handler it is null (or left out). It must never be a bogus string. */
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "bad_request", "x");
    cJSON *env = encode_parse(&r, "n", NULL);
    cJSON *h = cJSON_GetObjectItem(env, "handler");
    cr_assert(h == NULL || cJSON_IsNull(h), "handler should be null or absent");
    cJSON_Delete(env);
    reply_clear(&r);
}

Test(reply, encode_special_characters) {
    const char *nasty = "quote\" backslash\\ nl\n tab\t ctl\x01 slash/ "
                        "utf8 \xc3\xa9\xe2\x82\xac </script>";
    reply r;
    reply_init(&r);
    redwork_reply_error(&r, "internal", "%s", nasty);
    cJSON *env = encode_parse(&r, "a.b:c-d_e", "h-1");
    cJSON *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(env, "error"), "message");
    cr_assert_str_eq(msg->valuestring, nasty);
    cr_assert_str_eq(cJSON_GetObjectItem(env, "req_id")->valuestring, "a.b:c-d_e");
    cJSON_Delete(env);

    redwork_reply_string(&r, nasty);
    env = encode_parse(&r, "x", "h");
    cr_assert_str_eq(cJSON_GetObjectItem(env, "result")->valuestring, nasty);
    cJSON_Delete(env);
    reply_clear(&r);
}

Test(reply, encode_is_one_line) {
    /* Compact JSON: no newline in the published message. */
    reply r;
    reply_init(&r);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddItemToObject(res, "list", cJSON_CreateArray());
    redwork_reply_json(&r, res);
    char *text = reply_encode(&r, "x", "h", "w", 0);
    cr_assert_not_null(text);
    cr_assert_null(strchr(text, '\n'), "%s", text);
    free(text);
    reply_clear(&r);
}

Test(reply, raw_json_goes_in_as_written) {
    reply r;
    reply_init(&r);
    const char raw[] = " {\"n\":[1,2.5e3,\"\\u00e9\"],\"t\":true} ";
    cr_assert_eq(redwork_reply_raw(&r, raw, sizeof raw - 1), 0);
    char *text = reply_encode(&r, "raw1", "h", "w", 1);
    cr_assert_not_null(strstr(text, "\"result\": {\"n\":[1,2.5e3,\"\\u00e9\"],\"t\":true} ,"),
                       "the raw text was not put in as written: %s", text);
    free(text);
    cJSON *env = encode_parse(&r, "raw1", "h");
    cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(env, "result"), "n");
    cr_assert_eq(cJSON_GetArraySize(n), 3);
    cJSON_Delete(env);
    cr_assert_eq(redwork_reply_string(&r, "replaced"), 0);
    cr_assert_eq(r.raw.len, 0, "a later setter did not replace the raw text");
    reply_clear(&r);
}

Test(reply, raw_that_is_not_one_json_value_is_an_error) {
    static const char *const bad[] = {"", "   ", "{\"a\":", "[1,]", "1 2", "{\"a\":1}x", "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply r;
        reply_init(&r);
        cr_expect_eq(redwork_reply_raw(&r, bad[i], strlen(bad[i])), -1, "accepted '%s'", bad[i]);
        cr_expect_str_eq(r.code, "handler_failed", "'%s'", bad[i]);
        cr_expect_not_null(strstr(r.message, "at byte"), "%s", r.message);
        reply_clear(&r);
    }
    reply r;
    reply_init(&r);
    cr_assert_eq(redwork_reply_raw(&r, NULL, 0), -1);
    reply_clear(&r);
}

Test(reply, integer_id_is_written_as_a_number) {
    reply r;
    reply_init(&r);
    buffer out = BUFFER_INIT;
    cr_assert_eq(reply_envelope(&out, &r, "123", 1, "greet", "w", 1), 0);
    cr_assert_not_null(strstr(out.data, "{\"req_id\":123,"), "%s", out.data);
    buffer_reset(&out);
    cr_assert_eq(reply_envelope(&out, &r, "123", 0, "greet", "w", 1), 0);
    cr_assert_not_null(strstr(out.data, "{\"req_id\":\"123\","), "%s", out.data);
    redwork_buffer_free(&out);
}

Test(reply, a_result_that_is_not_utf8_becomes_an_error) {
    static const char *const bad[] = {"\xff", "ok \xc3", "\xed\xa0\x80", "\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply r;
        reply_init(&r);
        cr_assert_eq(redwork_reply_string(&r, bad[i]), 0);
        cJSON *env = encode_parse(&r, "u", "h");
        cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(env, "ok")), "case %zu was sent", i);
        cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(env, "error"), "code")->valuestring,
                         "handler_failed");
        char *text = reply_encode(&r, "u", "h", "w", 1);
        cr_expect(valid_utf8(text, strlen(text)), "case %zu: the envelope is not UTF-8", i);
        free(text);
        cJSON_Delete(env);
        /* The same bytes as raw JSON are refused by the setter itself (the
         * envelope does not check a raw result again). */
        char raw[32];
        int n = snprintf(raw, sizeof raw, "[\"%s\"]", bad[i]);
        cr_expect_eq(redwork_reply_raw(&r, raw, (size_t)n), -1, "raw case %zu was taken", i);
        text = reply_encode(&r, "u", "h", "w", 1);
        cr_expect(valid_utf8(text, strlen(text)), "raw case %zu: the envelope is not UTF-8", i);
        free(text);
        reply_clear(&r);
    }
    reply r;
    reply_init(&r);
    cr_assert_eq(redwork_reply_string(&r, "caf\xc3\xa9 \xf0\x9f\x98\x80"), 0);
    cJSON *env = encode_parse(&r, "u", "h");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(env, "ok")), "valid UTF-8 was refused");
    cJSON_Delete(env);
    reply_clear(&r);
}

/* Sets reply R the way KIND names: 0 a string, 1 a cJSON tree, 2 raw
 * JSON text, 3 an error. Returns what the setter returned (the tree's
 * making included). */
static int set_reply(reply *r, int kind) {
    static const char raw[] = "{\"list\":[1,2,3],\"name\":\"caf\u00e9\"}";
    if (kind == 0)
        return redwork_reply_string(r, "a string of some length, copied");
    if (kind == 1) {
        cJSON *tree = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(tree, "list");
        int whole = list != NULL;
        for (int i = 0; whole && i < 3; i++)
            whole = cJSON_AddItemToArray(list, cJSON_CreateNumber(i));
        if (!whole || cJSON_AddStringToObject(tree, "name", "café") == NULL) {
            cJSON_Delete(tree);
            return -1;
        }
        return redwork_reply_json(r, tree);
    }
    if (kind == 2)
        return redwork_reply_raw(r, raw, sizeof raw - 1);
    redwork_reply_error(r, "bad_request", "a message %s", "with an argument");
    return 0;
}

/* Every allocation of building a reply and its envelope, failed in turn
 * (tests/oom.h), for each kind of reply: each time the failing call says
 * so -- nothing half-written passes as whole -- and nothing leaks (CI runs
 * this under ASan and valgrind). */
Test(reply, each_allocation_failing_in_turn_is_reported) {
    for (int kind = 0; kind < 4; kind++) {
        long n = 1;
        for (;; n++) {
            reply r;
            reply_init(&r);
            buffer out = BUFFER_INIT;
            oom_fail_nth(n);
            int set = set_reply(&r, kind);
            int built = reply_envelope(&out, &r, "oom", 0, "h", "w", 1);
            int reached = oom_stop();
            if (reached) {
                cr_assert(set != 0 || built != 0,
                          "kind %d, allocation %ld failed unseen", kind, n);
                cr_assert(built != 0 || !out.failed, "kind %d: a failed buffer passed", kind);
            } else {
                cr_assert(set == 0 && built == 0, "kind %d failed with nothing failing", kind);
                cJSON *env = cJSON_ParseWithLength(out.data, out.len);
                cr_assert_not_null(env, "kind %d: %.*s", kind, (int)out.len, out.data);
                cJSON_Delete(env);
            }
            redwork_buffer_free(&out);
            reply_clear(&r);
            if (!reached)
                break;
        }
        cr_log_info("kind %d: walked %ld allocations", kind, n - 1);
        cr_assert_geq(n, 2, "kind %d allocated nothing", kind);
    }
    assert_no_leaks();
}

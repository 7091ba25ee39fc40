/* test_sentinel.c -- the sentinels' list and what they last said
 * (common/sentinel.h).
 *
 * Covers: parsing the list (default port, IPv6, spaces), each refusal with
 * its reason, the order in which sentinels are asked (the last to answer
 * first), and the fallback to the last master: none before any answer,
 * one warning however often it is used, one more when a sentinel answers
 * again. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "sentinel.h"

static char err[256];
static char warned[4][512];
static int warnings;

static void on_warn(void *ctx, const char *message) {
    (void)ctx;
    if (warnings < 4)
        snprintf(warned[warnings], sizeof warned[0], "%s", message);
    warnings++;
}

static redwork_sentinel *create_ok(const char *list) {
    err[0] = '\0';
    redwork_sentinel *s = redwork_sentinel_create(list, "mymaster", "", NULL, err, sizeof err);
    cr_assert_not_null(s, "'%s' refused: %s", list, err);
    return s;
}

static void expect_at(redwork_sentinel *s, size_t k, const char *host, int port, size_t index) {
    char h[256];
    int p = 0;
    size_t i = redwork_sentinel_address(s, k, h, sizeof h, &p);
    cr_expect_str_eq(h, host, "sentinel asked %zu-th", k);
    cr_expect_eq(p, port, "sentinel asked %zu-th", k);
    cr_expect_eq(i, index, "sentinel asked %zu-th", k);
}

Test(sentinel, list_with_default_port_ipv6_and_spaces) {
    redwork_sentinel *s = create_ok(" 10.0.0.1:26380,sentinel-b ,\t[::1]:5000 ");
    cr_assert_eq(redwork_sentinel_count(s), 3);
    expect_at(s, 0, "10.0.0.1", 26380, 0);
    expect_at(s, 1, "sentinel-b", SENTINEL_DEFAULT_PORT, 1);
    expect_at(s, 2, "::1", 5000, 2);
    cr_expect_str_eq(redwork_sentinel_name(s), "mymaster");
    cr_expect_str_eq(redwork_sentinel_username(s), "");
    cr_expect_str_eq(redwork_sentinel_password(s), "");
    redwork_sentinel_free(s);
}

Test(sentinel, credentials_are_kept) {
    redwork_sentinel *s =
        redwork_sentinel_create("h:1", "m", "watcher", "s3cret", err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_expect_str_eq(redwork_sentinel_username(s), "watcher");
    cr_expect_str_eq(redwork_sentinel_password(s), "s3cret");
    redwork_sentinel_free(s);
}

Test(sentinel, bad_lists_are_refused_with_a_reason) {
    static const struct {
        const char *list, *name, *reason;
    } cases[] = {
        {"", "m", "no sentinel"},
        {" , ", "m", "empty entry"},
        {"a:1,,b:2", "m", "empty entry"},
        {"a:99999", "m", "a:99999"},
        {"a:x", "m", "a:x"},
        {"user@a:1", "m", "user@a:1"},
        {"a:1/2", "m", "a:1/2"},
        {"a:1", "", "name"},
        {"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "m", "more than 16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        redwork_sentinel *s =
            redwork_sentinel_create(cases[i].list, cases[i].name, NULL, NULL, err, sizeof err);
        cr_expect_null(s, "'%s' accepted", cases[i].list);
        redwork_sentinel_free(s);
        cr_expect_not_null(strstr(err, cases[i].reason), "'%s': error '%s' lacks '%s'",
                           cases[i].list, err, cases[i].reason);
    }
}

/* The sentinel that answered last is asked first; the others keep the
 * configured order around it. */
Test(sentinel, last_to_answer_is_asked_first) {
    redwork_sentinel *s = create_ok("a:1, b:2, c:3");
    redwork_sentinel_answered(s, 2, "10.0.0.9", 6379);
    expect_at(s, 0, "c", 3, 2);
    expect_at(s, 1, "a", 1, 0);
    expect_at(s, 2, "b", 2, 1);
    redwork_sentinel_answered(s, 1, "10.0.0.9", 6379);
    expect_at(s, 0, "b", 2, 1);
    expect_at(s, 1, "a", 1, 0);
    expect_at(s, 2, "c", 3, 2);
    redwork_sentinel_free(s);
}

Test(sentinel, fallback_to_the_last_master_warns_once) {
    redwork_sentinel *s = create_ok("a:1, b:2");
    redwork_sentinel_set_warn(s, on_warn, NULL);
    char host[256] = "";
    int port = 0;
    cr_assert_eq(redwork_sentinel_last_master(s, host, sizeof host, &port, "refused"), 0,
                 "a master before any sentinel answered");
    cr_assert_eq(warnings, 0);

    redwork_sentinel_answered(s, 1, "10.0.0.7", 6400);
    cr_assert_eq(warnings, 0, "a first answer is no news");
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(redwork_sentinel_last_master(s, host, sizeof host, &port, "a:1 refused"), 1);
        cr_assert_str_eq(host, "10.0.0.7");
        cr_assert_eq(port, 6400);
    }
    cr_assert_eq(warnings, 1, "%d warnings for one outage", warnings);
    cr_expect_not_null(strstr(warned[0], "mymaster"), "%s", warned[0]);
    cr_expect_not_null(strstr(warned[0], "10.0.0.7:6400"), "%s", warned[0]);
    cr_expect_not_null(strstr(warned[0], "a:1 refused"), "%s", warned[0]);

    redwork_sentinel_answered(s, 0, "10.0.0.8", 6401);
    cr_assert_eq(warnings, 2, "the end of the outage was not told");
    cr_expect_not_null(strstr(warned[1], "answers again"), "%s", warned[1]);
    cr_expect_not_null(strstr(warned[1], "10.0.0.8:6401"), "%s", warned[1]);
    redwork_sentinel_free(s);
}

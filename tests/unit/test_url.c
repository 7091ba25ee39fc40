/* test_url.c -- where Redis is, written as a URL (common/url.h).
 *
 * Covers: each scheme with and without its optional parts, IPv6 literals,
 * the defaults left for what a URL omits, and every refusal (password,
 * unknown scheme, bad port, bad db, relative socket path, query on a TCP
 * URL, over-long host), each with a reason. */
#include <criterion/criterion.h>

#include <string.h>

#include "url.h"

static redwork_url u;
static char err[256];

static void parse_ok(const char *url) {
    err[0] = '\0';
    cr_assert_eq(redwork_url_parse(url, &u, err, sizeof err), 0, "%s refused: %s", url, err);
}

Test(url, redis_with_every_part) {
    parse_ok("redis://worker@cache.internal:6380/7");
    cr_assert_str_eq(u.host, "cache.internal");
    cr_assert_eq(u.port, 6380);
    cr_assert_eq(u.db, 7);
    cr_assert_str_eq(u.username, "worker");
    cr_assert_not(u.tls);
    cr_assert_not(u.unix_socket);
}

Test(url, omitted_parts_are_marked_absent) {
    parse_ok("redis://localhost");
    cr_assert_str_eq(u.host, "localhost");
    cr_assert_eq(u.port, 0);
    cr_assert_eq(u.db, -1);
    cr_assert_str_eq(u.username, "");
    parse_ok("redis://localhost/");
    cr_assert_eq(u.db, -1, "a bare / names no database");
}

Test(url, rediss_is_tls) {
    parse_ok("rediss://r.example:6390");
    cr_assert(u.tls);
    cr_assert_eq(u.port, 6390);
}

Test(url, ipv6_literal) {
    parse_ok("redis://[::1]:7000/1");
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 7000);
    cr_assert_eq(u.db, 1);
    parse_ok("redis://[fe80::1]");
    cr_assert_str_eq(u.host, "fe80::1");
    cr_assert_eq(u.port, 0);
}

Test(url, unix_socket_with_and_without_db) {
    parse_ok("unix:///run/redis/redis.sock");
    cr_assert(u.unix_socket);
    cr_assert_str_eq(u.host, "/run/redis/redis.sock");
    cr_assert_eq(u.db, -1);
    parse_ok("unix:///tmp/r.sock?db=12");
    cr_assert_str_eq(u.host, "/tmp/r.sock");
    cr_assert_eq(u.db, 12);
}

Test(url, refusals_say_why) {
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"redis://user:pw@h", "password"},
        {"redis://:pw@h", "password"},
        {"http://h", "not a redis"},
        {"h:6379", "not a redis"},
        {"redis://", "host"},
        {"redis://h:0", "port"},
        {"redis://h:65536", "port"},
        {"redis://h:63x", "port"},
        {"redis://h:", "port"},
        {"redis://h/x", "database"},
        {"redis://h/-1", "database"},
        {"redis://h?db=1", "query"},
        {"redis://[::1", "']'"},
        {"redis://[::1]x", "port"},
        {"redis://@h", "user"},
        {"unix://relative.sock", "absolute"},
        {"unix://", "absolute"},
        {"unix:///tmp/r.sock?db=x", "db=N"},
        {"unix:///tmp/r.sock?timeout=1", "db=N"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_expect_eq(redwork_url_parse(bad[i].url, &u, err, sizeof err), -1, "%s accepted",
                     bad[i].url);
        cr_expect_not_null(strstr(err, bad[i].why), "%s: '%s' lacks '%s'", bad[i].url, err,
                           bad[i].why);
    }
}

Test(url, over_long_host_is_refused) {
    char url[600] = "redis://";
    memset(url + 8, 'a', 400);
    url[408] = '\0';
    cr_assert_eq(redwork_url_parse(url, &u, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "too long"), "%s", err);
}

Test(url, redacted_hides_only_the_password) {
    char buf[128];
    cr_assert_str_eq(redwork_url_redacted("redis://u:secret@h:1/2", buf, sizeof buf),
                     "redis://u:***@h:1/2");
    cr_assert_str_eq(redwork_url_redacted("rediss://:secret@h", buf, sizeof buf),
                     "rediss://:***@h");
    cr_assert_str_eq(redwork_url_redacted("redis://u@h:1", buf, sizeof buf), "redis://u@h:1");
    cr_assert_str_eq(redwork_url_redacted("redis://h:1/2", buf, sizeof buf), "redis://h:1/2");
    cr_assert_str_eq(redwork_url_redacted("unix:///tmp/a:b@c", buf, sizeof buf),
                     "unix:///tmp/a:b@c");
}

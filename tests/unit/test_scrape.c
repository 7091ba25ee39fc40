/* test_scrape.c -- what `redwork top` reads from a metrics endpoint
 * (client/scrape.h).
 *
 * Covers: the per-handler requests, errors and duration buckets taken from
 * an exposition as the daemon writes it (escaped label values, series top
 * does not need, a last line without a newline); the quantile of a
 * histogram against Prometheus's interpolation worked by hand; wildcard
 * listen addresses resolved to the worker's host; a fetch from a port
 * nobody serves, refused with the endpoint named. */
#include <criterion/criterion.h>

#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "scrape.h"

static const char exposition[] =
    "# HELP redwork_requests_total Requests answered, by handler and outcome.\n"
    "# TYPE redwork_requests_total counter\n"
    "redwork_requests_total{handler=\"echo\",outcome=\"ok\"} 90\n"
    "redwork_requests_total{handler=\"echo\",outcome=\"timeout\"} 10\n"
    "redwork_requests_total{handler=\"\",outcome=\"unknown_handler\"} 3\n"
    "redwork_requests_total{handler=\"we\\\"ird\\\\\",outcome=\"ok\"} 1\n"
    "redwork_request_duration_seconds_bucket{handler=\"echo\",le=\"0.001\"} 50\n"
    "redwork_request_duration_seconds_bucket{handler=\"echo\",le=\"0.01\"} 100\n"
    "redwork_request_duration_seconds_bucket{handler=\"echo\",le=\"+Inf\"} 100\n"
    "redwork_request_duration_seconds_sum{handler=\"echo\"} 0.3\n"
    "redwork_queue_wait_seconds_bucket{le=\"0.001\"} 7\n"
    "redwork_messages_received_total 104";

Test(scrape, parse_takes_each_handler) {
    scrape s = {0};
    cr_assert_eq(scrape_parse(exposition, &s), 0);
    cr_assert_eq(s.count, 3);
    const scrape_handler *echo = scrape_find(&s, "echo");
    cr_assert_not_null(echo);
    cr_assert_float_eq(echo->requests, 100, 1e-9);
    cr_assert_float_eq(echo->errors, 10, 1e-9);
    cr_assert_eq(echo->buckets, 3);
    cr_assert_float_eq(echo->le[1], 0.01, 1e-12);
    cr_assert(isinf(echo->le[2]));
    cr_assert_float_eq(echo->count[0], 50, 1e-9);
    const scrape_handler *none = scrape_find(&s, "");
    cr_assert_not_null(none);
    cr_assert_float_eq(none->errors, 3, 1e-9);
    cr_assert_not_null(scrape_find(&s, "we\"ird\\"), "escaped label value not unescaped");
    cr_assert_null(scrape_find(&s, "sleep"));
    scrape_clear(&s);
    cr_assert_eq(s.count, 0);
}

Test(scrape, quantile_interpolates_like_prometheus) {
    const double le[] = {0.001, 0.01, INFINITY};
    const double count[] = {50, 100, 100};
    cr_assert_float_eq(scrape_quantile(le, count, 3, 0.5), 0.001, 1e-12);
    cr_assert_float_eq(scrape_quantile(le, count, 3, 0.99), 0.001 + 0.009 * 49 / 50, 1e-12);
    cr_assert_float_eq(scrape_quantile(le, count, 3, 0.25), 0.0005, 1e-12);
    const double slow[] = {0, 0, 10};
    cr_assert_float_eq(scrape_quantile(le, slow, 3, 0.99), 0.01, 1e-12,
                       "in +Inf: the last finite bound");
    const double none[] = {0, 0, 0};
    cr_assert_lt(scrape_quantile(le, none, 3, 0.99), 0);
}

Test(scrape, endpoint_resolves_wildcards) {
    char out[300];
    cr_assert_eq(scrape_endpoint("0.0.0.0:9100", "web1", out, sizeof out), 0);
    cr_assert_str_eq(out, "web1:9100");
    cr_assert_eq(scrape_endpoint("[::]:9100", "web1", out, sizeof out), 0);
    cr_assert_str_eq(out, "web1:9100");
    cr_assert_eq(scrape_endpoint("10.0.0.7:9100", "web1", out, sizeof out), 0);
    cr_assert_str_eq(out, "10.0.0.7:9100");
    cr_assert_eq(scrape_endpoint("[::1]:9100", "web1", out, sizeof out), 0);
    cr_assert_str_eq(out, "[::1]:9100");
    cr_assert_neq(scrape_endpoint("", "web1", out, sizeof out), 0);
    cr_assert_neq(scrape_endpoint("web1", "web1", out, sizeof out), 0, "no port");
}

Test(scrape, fetch_names_an_endpoint_that_does_not_answer) {
    /* A port bound and closed again: nobody listens there now. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char endpoint[64], err[512] = "";
    snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", ntohs(a.sin_port));
    scrape s = {0};
    cr_assert_neq(scrape_fetch(endpoint, 300, &s, err, sizeof err), 0);
    cr_assert(strstr(err, endpoint) != NULL, "the error does not name %s: %s", endpoint, err);
    cr_assert_eq(s.count, 0);
}

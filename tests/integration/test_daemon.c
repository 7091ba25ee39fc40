/* test_daemon.c -- end-to-end tests of redworkd against a real redis-server.
 *
 * Each Criterion test runs in its own process and starts its own
 * redis-server (free loopback port, no persistence, temp folder) and its own
 * bin/redworkd with a config written for the test (see harness.h). The
 * fixture `env` below is per process, so tests may run with --jobs 2.
 *
 * Waits are bounded; "no duplicate reply" is proven without sleeping by a
 * fence: with threads = 1 replies go out in order, so once the fence's reply
 * is in, any duplicate of an earlier request would have arrived before it.
 *
 * Run: make all build/tests/integration/test_daemon &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_daemon --jobs 2 */
#include <criterion/criterion.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CALL_TIMEOUT_MS 5000

/* The test's own fixture (each test is its own process); the suite's
 * .fini stops whatever the test started, even after a failed assert. */
static rw_env env;

static void teardown(void)
{
    rw_env_stop(&env);
}

TestSuite(daemon, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------- */

static void start(const char *tag, rw_opts o)
{
    cr_assert_eq(rw_env_start(&env, tag, &o), 0,
                 "redis-server or redworkd did not start (tag %s)", tag);
}

/* One request and its reply; asserts that a worker got it and answered. */
static cJSON *call_on(const char *channel, const char *body, const char *req_id)
{
    long long published = -1;
    cJSON *reply = rw_call(env.redis.port, channel, body, req_id, NULL,
                           CALL_TIMEOUT_MS, &published);
    cr_assert_geq(published, 1, "PUBLISH %s reached %lld subscribers", body,
                  published);
    cr_assert_not_null(reply, "no reply to %s on callback:%s within %d ms",
                       body, req_id, CALL_TIMEOUT_MS);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(reply, "req_id");
    char text[32] = "";
    if (cJSON_IsNumber(id)) /* an integer id comes back an integer */
        snprintf(text, sizeof text, "%.0f", id->valuedouble);
    cr_assert_str_eq(cJSON_IsNumber(id) ? text : rw_str(reply, "req_id"), req_id);
    cr_assert_str_eq(rw_str(reply, "worker"), env.daemon.id);
    return reply;
}

static cJSON *call(const char *body, const char *req_id)
{
    return call_on("request", body, req_id);
}

static void assert_ok(const cJSON *reply)
{
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")),
              "expected ok:true, got error %s", rw_error_code(reply));
}

static void assert_error(const cJSON *reply, const char *code)
{
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ok")),
              "expected ok:false");
    cr_assert_str_eq(rw_error_code(reply), code);
}

/* Calls BODY and asserts the reply is an error CODE. */
static void expect_error(const char *body, const char *req_id, const char *code)
{
    cJSON *reply = call(body, req_id);
    assert_error(reply, code);
    cJSON_Delete(reply);
}

/* A good request is still answered (the daemon kept serving). */
static void assert_still_serving(void)
{
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"alive\",\"x\":1}", "alive");
    assert_ok(reply);
    rw_assert_result(reply, "{\"x\":1}");
    cJSON_Delete(reply);
}

/* Request bodies for rw_bulk_publish. ARG points to an int: the ms a sleep
 * request sleeps. */
static int echo_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)arg;
    int n = snprintf(buf, len, "{\"handler\":\"echo\",\"req_id\":\"%s\",\"i\":%d}",
                     req_id, i);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int sleep_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)i;
    int n = snprintf(buf, len, "{\"handler\":\"sleep\",\"req_id\":\"%s\",\"ms\":%d}",
                     req_id, *(const int *)arg);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* ---- the seed's exchange and routing --------------------------------------- */

Test(daemon, seed_greet_exchange)
{
    start("seed", (rw_opts){.default_handler = "greet"});
    cJSON *reply = call("{\"user_id\":\"Alice\",\"req_id\":123}", "123");
    assert_ok(reply);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(reply, "req_id");
    cr_assert(cJSON_IsNumber(id) && id->valuedouble == 123,
              "an integer req_id is answered as that integer (protocol 1.1)");
    cr_assert_str_eq(rw_str(reply, "result"), "Hello, Alice!");
    cr_assert_str_eq(rw_str(reply, "handler"), "greet");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(reply, "duration_us");
    cr_assert(cJSON_IsNumber(d) && d->valuedouble >= 0, "duration_us");
    cJSON_Delete(reply);
}

Test(daemon, echo_by_handler_field)
{
    start("echo", (rw_opts){.default_handler = "greet"});
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"e1\",\"timeout_ms\":5000,"
                        "\"a\":[1,2]}", "e1");
    assert_ok(reply);
    cr_assert_str_eq(rw_str(reply, "handler"), "echo");
    rw_assert_result(reply, "{\"a\":[1,2]}");
    cJSON_Delete(reply);
}

Test(daemon, greet_word_from_config)
{
    start("word", (rw_opts){.default_handler = "greet",
                            .extra = "[handler.greet]\nword = Hi\n"});
    cJSON *reply = call("{\"user_id\":\"Alice\",\"req_id\":\"w1\"}", "w1");
    assert_ok(reply);
    cr_assert_str_eq(rw_str(reply, "result"), "Hi, Alice!");
    cJSON_Delete(reply);
}

Test(daemon, greet_without_user_id_is_bad_request)
{
    start("greetbad", (rw_opts){.default_handler = "greet"});
    expect_error("{\"req_id\":\"g1\"}", "g1", "bad_request");
}

/* The shipped CPU-bound handler: FIPS 180-2's "abc" vector, then 1000
 * rounds (each over the previous digest; the value from Python's hashlib). */
Test(daemon, hash_handler)
{
    start("hash", (rw_opts){0});
    cJSON *reply = call("{\"handler\":\"hash\",\"req_id\":\"h1\",\"data\":\"abc\"}", "h1");
    assert_ok(reply);
    rw_assert_result(reply, "{\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\","
                         "\"rounds\":1}");
    cJSON_Delete(reply);
    reply = call("{\"handler\":\"hash\",\"req_id\":\"h2\",\"data\":\"abc\",\"rounds\":1000}",
                 "h2");
    assert_ok(reply);
    rw_assert_result(reply, "{\"sha256\":\"fc8a6b86a13f71cd9a67f558ab6fd82a3dd89186163a017ed8051acf6d3f8f99\","
                         "\"rounds\":1000}");
    cJSON_Delete(reply);
    expect_error("{\"handler\":\"hash\",\"req_id\":\"h3\"}", "h3", "bad_request");
    expect_error("{\"handler\":\"hash\",\"req_id\":\"h4\",\"data\":\"x\",\"rounds\":0}", "h4",
                 "bad_request");
    expect_error("{\"handler\":\"hash\",\"req_id\":\"h5\",\"data\":\"x\",\"rounds\":1.5}", "h5",
                 "bad_request");
}

Test(daemon, psubscribe_route)
{
    start("route", (rw_opts){.channels = "request, news_*",
                             .default_handler = "greet",
                             .extra = "[routes]\nnews_* = echo\n"});
    cJSON *reply = call_on("news_sports", "{\"req_id\":\"n1\",\"headline\":\"x\"}", "n1");
    assert_ok(reply);
    cr_assert_str_eq(rw_str(reply, "handler"), "echo");
    rw_assert_result(reply, "{\"headline\":\"x\"}");
    cJSON_Delete(reply);

    /* The plain channel still goes to the default handler. */
    reply = call("{\"user_id\":\"Bob\",\"req_id\":\"n2\"}", "n2");
    cr_assert_str_eq(rw_str(reply, "handler"), "greet");
    cr_assert_str_eq(rw_str(reply, "result"), "Hello, Bob!");
    cJSON_Delete(reply);
}

Test(daemon, no_route_no_default_is_unknown_handler)
{
    start("noroute", (rw_opts){.channels = "request, news_*",
                               .extra = "[routes]\nnews_* = echo\n"});
    expect_error("{\"req_id\":\"nr1\",\"x\":1}", "nr1", "unknown_handler");
}

/* ---- load and exactly-once ---------------------------------------------------- */

Test(daemon, five_thousand_from_four_publishers, .timeout = 60)
{
    enum { N = 5000 };
    start("load", (rw_opts){.threads = 1, .worker_extra = "queue_size = 10000\n"});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "ld", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 4, echo_body, NULL), N,
                 "every PUBLISH reached the worker");
    int all = rw_bulk_collect(&b, 30000);
    cr_assert_eq(all, 0, "only %d of %d requests answered in 30 s", b.seen, N);
    cr_assert_eq(rw_bulk_fence(&b, "request", 5000), 0, "fence not answered");
    cr_assert_eq(rw_bulk_exactly_once(&b), N, "some request answered twice");
    cr_assert_eq(b.stray, 0, "%d replies not matching a request", b.stray);
    for (int i = 0; i < N; i++) {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(b.reply[i], "result");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "i");
        cr_assert(cJSON_IsNumber(v) && v->valueint == i, "reply %d carries i", i);
    }
    rw_bulk_close(&b);
}

Test(daemon, overlapping_subscriptions_run_once)
{
    enum { N = 200 };
    start("overlap", (rw_opts){.channels = "request, req*, r?quest", .threads = 1,
                               .worker_extra = "queue_size = 1000\n"});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "ov", N), 0);
    /* One PUBLISH reaches the one connection through three subscriptions. */
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, echo_body, NULL), N);
    cr_assert_eq(rw_bulk_collect(&b, 10000), 0, "%d of %d answered", b.seen, N);
    cr_assert_eq(rw_bulk_fence(&b, "request", 5000), 0);
    cr_assert_eq(rw_bulk_exactly_once(&b), N, "a request answered twice");
    cr_assert_eq(rw_bulk_count_code(&b, ""), N);
    long long dups = rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key,
                                           "duplicates", 2 * N, 3000);
    cr_assert_geq(dups, 2 * N, "heartbeat duplicates = %lld", dups);
    rw_bulk_close(&b);
}

Test(daemon, claim_on_answers_once_and_keeps_claim)
{
    start("claim", (rw_opts){.threads = 1, .claim_on = 1});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "cl", 1), 0);
    char id[96], body[256];
    rw_bulk_req_id(&b, 0, id, sizeof id);
    snprintf(body, sizeof body, "{\"handler\":\"echo\",\"req_id\":\"%s\"}", id);
    /* The same req_id twice: the second loses the claim and is dropped. */
    cr_assert_eq(rw_bulk_send(&b, "request", body), 1);
    cr_assert_eq(rw_bulk_send(&b, "request", body), 1);
    cr_assert_eq(rw_bulk_collect(&b, CALL_TIMEOUT_MS), 0);
    cr_assert_eq(rw_bulk_fence(&b, "request", CALL_TIMEOUT_MS), 0);
    cr_assert_eq(b.count[0], 1, "claimed request answered %d times", b.count[0]);
    assert_ok(b.reply[0]);

    long long ttl = rw_command_int(b.pub, "PTTL redwork:claim:%s", id);
    cr_assert_gt(ttl, 0, "claim key redwork:claim:%s has PTTL %lld", id, ttl);
    rw_bulk_close(&b);
}

/* ---- messages that cannot be answered ------------------------------------------ */

/* Publishes BODY (no usable req_id), then checks the daemon kept serving,
 * counted it as rejected and logged it. */
static void expect_rejected(const char *tag, const char *body)
{
    start(tag, (rw_opts){0});
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    cr_assert_eq(rw_command_int(c, "PUBLISH request %s", body), 1);
    redisFree(c);
    assert_still_serving();
    long long rejected = rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key,
                                               "rejected", 1, 3000);
    cr_assert_eq(rejected, 1, "heartbeat rejected = %lld", rejected);
    cr_assert(rw_wait_file_contains(env.daemon.log, "reject", 2000),
              "the log does not mention the rejected message");
}

Test(daemon, rejects_not_json)
{
    expect_rejected("rj1", "hello, not json");
}

Test(daemon, rejects_json_array)
{
    expect_rejected("rj2", "[1,2,{\"req_id\":\"x\"}]");
}

Test(daemon, rejects_missing_req_id)
{
    expect_rejected("rj3", "{\"handler\":\"echo\",\"x\":1}");
}

Test(daemon, rejects_req_id_with_space)
{
    expect_rejected("rj4", "{\"handler\":\"echo\",\"req_id\":\"a b\"}");
}

Test(daemon, rejects_req_id_too_long)
{
    char body[400], id[130];
    memset(id, 'a', 129);
    id[129] = '\0';
    snprintf(body, sizeof body, "{\"handler\":\"echo\",\"req_id\":\"%s\"}", id);
    expect_rejected("rj5", body);
}

Test(daemon, rejects_negative_req_id)
{
    expect_rejected("rj6", "{\"handler\":\"echo\",\"req_id\":-1}");
}

Test(daemon, accepts_req_id_of_128_chars)
{
    start("id128", (rw_opts){0});
    char body[400], id[129];
    memset(id, 'a', 128);
    id[0] = 'Z';
    id[127] = ':';
    id[128] = '\0';
    snprintf(body, sizeof body, "{\"handler\":\"echo\",\"req_id\":\"%s\"}", id);
    cJSON *reply = call(body, id);
    assert_ok(reply);
    cJSON_Delete(reply);
}

/* ---- error replies ----------------------------------------------------------------- */

Test(daemon, oversized_body_is_bad_request)
{
    start("big", (rw_opts){.worker_extra = "max_request_bytes = 256\n"});
    char body[600], pad[301];
    memset(pad, 'x', 300);
    pad[300] = '\0';
    snprintf(body, sizeof body, "{\"handler\":\"echo\",\"req_id\":\"big1\",\"pad\":\"%s\"}", pad);
    expect_error(body, "big1", "bad_request");
    /* A body under the limit is served. */
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"small1\",\"pad\":\"x\"}", "small1");
    assert_ok(reply);
    cJSON_Delete(reply);
}

/* Protocol 1.1: broken JSON, bytes that are not UTF-8 and lone surrogate
 * escapes are answered bad_request when a req_id comes before them. */
Test(daemon, broken_json_and_bad_utf8_with_an_id_are_answered)
{
    start("utf8", (rw_opts){0});
    static const struct {
        const char *body, *id;
    } cases[] = {
        {"{\"req_id\":\"mj1\",\"handler\":\"echo\",\"x\":}", "mj1"},
        {"{\"req_id\":\"mj2\",\"handler\":\"echo\"", "mj2"},
        {"{\"req_id\":\"u8a\",\"handler\":\"echo\",\"x\":\"\xff\xfe\xc3\"}", "u8a"},
        {"{\"req_id\":\"u8b\",\"handler\":\"echo\",\"x\":\"\\udc80\"}", "u8b"},
        {"{\"req_id\":\"u8c\",\"handler\":\"echo\",\"x\":\"\\ud800\"}", "u8c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].body, cases[i].id, "bad_request");
    /* Valid UTF-8 of every length comes back as it went. */
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"u8ok\",\"x\":\"caf\xc3\xa9 "
                        "\xe2\x82\xac \xf0\x9f\x98\x80 \\u00e9\"}", "u8ok");
    rw_assert_result(reply, "{\"x\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9\"}");
    cJSON_Delete(reply);
    assert_still_serving();
}

/* Protocol 1.1: reply_to sends the reply (and the stored one) to another
 * channel under reply_prefix; anything else there is bad_request on
 * <reply_prefix><req_id>. */
Test(daemon, reply_to_chooses_the_reply_channel)
{
    start("rto", (rw_opts){.worker_extra = "reply_store = list\n"});
    long long published = -1;
    cJSON *reply = rw_call(env.redis.port, "request",
                           "{\"handler\":\"echo\",\"req_id\":\"rt1\",\"reply_to\":"
                           "\"callback:client-9\",\"x\":1}",
                           "client-9", NULL, CALL_TIMEOUT_MS, &published);
    cr_assert_not_null(reply, "no reply on callback:client-9");
    cr_assert_str_eq(rw_str(reply, "req_id"), "rt1", "the envelope tells the calls apart");
    rw_assert_result(reply, "{\"x\":1}");
    cJSON_Delete(reply);
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    cr_assert_eq(rw_command_int(c, "LLEN callback:client-9"), 1, "not stored at reply_to");
    cr_assert_eq(rw_command_int(c, "EXISTS callback:rt1"), 0, "stored at the default channel");
    redisFree(c);
    expect_error("{\"handler\":\"echo\",\"req_id\":\"rt2\",\"reply_to\":\"elsewhere:x\"}",
                 "rt2", "bad_request");
    expect_error("{\"handler\":\"echo\",\"req_id\":\"rt3\",\"reply_to\":\"callback:a b\"}",
                 "rt3", "bad_request");
}

Test(daemon, unknown_handler_names_it)
{
    start("unknown", (rw_opts){.default_handler = "greet"});
    cJSON *reply = call("{\"handler\":\"gret\",\"req_id\":\"u1\"}", "u1");
    assert_error(reply, "unknown_handler");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
    cr_assert(strstr(rw_str(err, "message"), "gret") != NULL,
              "message '%s' does not name 'gret'", rw_str(err, "message"));
    cJSON_Delete(reply);
}

Test(daemon, handler_not_a_string_is_bad_request)
{
    start("hnum", (rw_opts){.default_handler = "greet"});
    expect_error("{\"handler\":5,\"req_id\":\"h1\",\"user_id\":\"A\"}", "h1", "bad_request");
}

Test(daemon, fail_handler_is_handler_failed)
{
    start("fail", (rw_opts){0});
    expect_error("{\"handler\":\"fail\",\"req_id\":\"f1\"}", "f1", "handler_failed");
    assert_still_serving();
}

Test(daemon, timeout_ms_expires_while_queued)
{
    start("tmo", (rw_opts){.threads = 1});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "tm", 2), 0);
    char id0[96], id1[96], body[256];
    rw_bulk_req_id(&b, 0, id0, sizeof id0);
    rw_bulk_req_id(&b, 1, id1, sizeof id1);
    snprintf(body, sizeof body, "{\"handler\":\"sleep\",\"req_id\":\"%s\",\"ms\":500}", id0);
    cr_assert_eq(rw_bulk_send(&b, "request", body), 1);
    snprintf(body, sizeof body,
             "{\"handler\":\"echo\",\"req_id\":\"%s\",\"timeout_ms\":50}", id1);
    cr_assert_eq(rw_bulk_send(&b, "request", body), 1);
    cr_assert_eq(rw_bulk_collect(&b, CALL_TIMEOUT_MS), 0);
    assert_ok(b.reply[0]);
    rw_assert_result(b.reply[0], "{\"slept_ms\":500}");
    assert_error(b.reply[1], "timeout");
    rw_bulk_close(&b);
}

Test(daemon, queue_full_is_overloaded_at_once)
{
    enum { N = 4 };
    int ms = 300;
    start("full", (rw_opts){.threads = 1, .worker_extra = "queue_size = 1\n"});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "qf", N), 0);
    /* One pipelined batch: the four arrive together. */
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, sleep_body, &ms), N);
    cr_assert_eq(rw_bulk_collect(&b, CALL_TIMEOUT_MS), 0, "%d of %d answered", b.seen, N);
    cr_assert_eq(rw_bulk_fence(&b, "request", CALL_TIMEOUT_MS), 0);
    cr_assert_eq(rw_bulk_exactly_once(&b), N);
    int ok = rw_bulk_count_code(&b, ""), over = rw_bulk_count_code(&b, "overloaded");
    cr_assert_eq(ok + over, N, "ok %d + overloaded %d", ok, over);
    cr_assert_geq(ok, 1);
    cr_assert_geq(over, 2, "one runs, one waits: the others are overloaded");
    for (int i = 0; i < N; i++) {
        if (strcmp(rw_error_code(b.reply[i]), "overloaded") == 0)
            cr_assert_lt(b.arrival_ms[i], ms, "overloaded reply %d came after %lld ms",
                         i, b.arrival_ms[i]);
    }
    rw_bulk_close(&b);
}

Test(daemon, sleep_ms_out_of_range_is_refused)
{
    start("sleepbad", (rw_opts){0});
    cJSON *reply = call("{\"handler\":\"sleep\",\"req_id\":\"s1\",\"ms\":60001}", "s1");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ok")),
              "ms = 60001 is outside 0..60000");
    cJSON_Delete(reply);
}

/* ---- Redis going away ---------------------------------------------------------------- */

/* The time of day, in ms, stamped on the first line of the text log at PATH
 * that contains NEEDLE; -1 if there is none. */
static long long log_stamp_ms(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[4096];
    long long ms = -1;
    int h, m, sec, milli;
    while (ms < 0 && fgets(line, sizeof line, f) != NULL)
        if (strstr(line, needle) != NULL &&
            sscanf(line, "%*d-%*d-%*dT%d:%d:%d.%dZ", &h, &m, &sec, &milli) == 4)
            ms = ((h * 60LL + m) * 60 + sec) * 1000 + milli;
    fclose(f);
    return ms;
}

/* A PUBLISH over the Pub/Sub output-buffer hard limit makes Redis drop the
 * subscribed daemon: it logs why and subscribes again at once. */
Test(daemon, oversized_publish_drop_is_logged_and_resubscribed_at_once)
{
    static const char *const args[] = {"--client-output-buffer-limit", "pubsub 256kb 128kb 60",
                                       NULL};
    cr_assert_eq(rw_redis_start_with(&env.redis, args), 0, "redis-server did not start");
    cr_assert_eq(rw_daemon_config(&env.daemon, env.redis.dir, env.redis.port, "obuf",
                                  &(rw_opts){0}), 0);
    cr_assert_eq(rw_daemon_start(&env.daemon, 10000), 0);
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    /* A subscription that has been up a while (Redis counts its age in
     * seconds): one that fell right after coming up would wait a backoff. */
    int settled = 0;
    for (long long until = rw_now_ms() + 5000; !settled && rw_now_ms() < until;) {
        redisReply *list = redisCommand(c, "CLIENT LIST TYPE pubsub");
        const char *text = list && (list->type == REDIS_REPLY_STRING ||
                                    list->type == REDIS_REPLY_STATUS) ? list->str : "";
        const char *age = strstr(text, " age=");
        settled = age != NULL && atoi(age + 5) >= 1;
        freeReplyObject(list);
        if (!settled)
            nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    cr_assert(settled, "the daemon's subscription did not settle");
    size_t n = 1u << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, 'x', n);
    redisReply *r = redisCommand(c, "PUBLISH request %b", big, n);
    free(big);
    freeReplyObject(r);
    redisFree(c);
    cr_assert(rw_wait_file_contains(env.daemon.log, "closed by the server", 5000),
              "the drop is not logged with its cause");
    cr_assert(rw_wait_file_contains(env.daemon.log, "reconnected to redis", 5000),
              "the daemon did not connect again");
    /* Timed by the daemon's own log stamps: a test process descheduled for
     * a while on a busy machine must not read as a backoff. */
    long long lost = log_stamp_ms(env.daemon.log, "lost the connection to redis");
    long long back = log_stamp_ms(env.daemon.log, "reconnected to redis");
    cr_assert(lost >= 0 && back >= 0, "the drop and the reconnection are not both logged");
    cr_log_info("connected again %lld ms after the drop", back - lost);
    cr_assert_lt(back - lost, 40, "connected again only after %lld ms (a backoff?)",
                 back - lost);
    cr_assert_not(rw_wait_file_contains(env.daemon.log, "reconnect failed", 0),
                  "the immediate attempt failed and waited a backoff");
    assert_still_serving();
}

/* A full Redis (maxmemory, noeviction) refuses the RPUSH of a stored reply
 * while PUBLISH still delivers it: counted and logged as not stored, not as
 * lost. */
Test(daemon, reply_published_but_not_stored_is_not_lost)
{
    start("oom", (rw_opts){.worker_extra = "reply_store = list\n"});
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "CONFIG SET maxmemory 1");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "CONFIG SET maxmemory-policy noeviction");
    freeReplyObject(r);
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"full1\",\"x\":1}", "full1");
    assert_ok(reply);
    cJSON_Delete(reply);
    cr_assert(rw_wait_file_contains(env.daemon.log, "callback:full1 not stored", 5000),
              "the refused RPUSH is not logged as not stored");
    cr_assert_eq(rw_command_int(c, "EXISTS callback:full1"), 0);
    /* With reply_to, the line names the channel the reply went to. */
    reply = rw_call(env.redis.port, "request",
                    "{\"handler\":\"echo\",\"req_id\":\"full2\",\"reply_to\":"
                    "\"callback:client-7\"}",
                    "client-7", NULL, CALL_TIMEOUT_MS, NULL);
    assert_ok(reply);
    cJSON_Delete(reply);
    cr_assert(rw_wait_file_contains(env.daemon.log,
                                    "callback:client-7 (req_id full2) not stored", 5000),
              "the refused RPUSH to reply_to does not name its channel");
    r = redisCommand(c, "CONFIG SET maxmemory 0");
    freeReplyObject(r);
    redisFree(c);
    char *log = rw_read_file(env.daemon.log);
    cr_assert(log != NULL && strstr(log, " lost") == NULL, "counted as lost:\n%s", log);
    free(log);
    /* Once Redis has room, the heartbeat says nothing was lost. */
    cr_assert_eq(rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key, "requests", 2, 5000), 2);
    redisContext *h = rw_connect(env.redis.port);
    char *lost = rw_hget(h, env.daemon.hb_key, "lost");
    cr_assert(lost != NULL && strcmp(lost, "0") == 0, "lost = %s", lost ? lost : "(none)");
    free(lost);
    redisFree(h);
}

Test(daemon, reconnects_after_redis_restart)
{
    start("reconn", (rw_opts){.default_handler = "greet"});
    cJSON *reply = call("{\"user_id\":\"A\",\"req_id\":\"before\"}", "before");
    cJSON_Delete(reply);
    cr_assert_eq(rw_redis_restart(&env.redis), 0, "redis-server did not restart");

    /* Poll until the daemon has resubscribed (PUBLISH reaches it), bounded. */
    long long deadline = rw_now_ms() + 15000, published = 0;
    reply = NULL;
    while (!reply && rw_now_ms() < deadline) {
        reply = rw_call(env.redis.port, "request",
                        "{\"user_id\":\"B\",\"req_id\":\"after\"}", "after", NULL,
                        1000, &published);
        if (!reply)
            usleep(50 * 1000);
    }
    cr_assert_not_null(reply, "no reply within 15 s of the restart (last PUBLISH %lld)",
                       published);
    assert_ok(reply);
    cr_assert_str_eq(rw_str(reply, "result"), "Hello, B!");
    cJSON_Delete(reply);
}

/* ---- shutdown -------------------------------------------------------------------------- */

Test(daemon, sigterm_drains_queue)
{
    enum { N = 10 };
    int ms = 200;
    start("drain", (rw_opts){.threads = 2,
                             .worker_extra = "shutdown_timeout_ms = 10000\n"});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "dr", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, sleep_body, &ms), N);
    long long t0 = rw_now_ms();
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    cr_assert_eq(rw_bulk_collect(&b, 10000), 0, "%d of %d answered", b.seen, N);
    cr_assert_eq(rw_bulk_count_code(&b, ""), N, "all drained requests succeed");
    for (int i = 0; i < N; i++)
        rw_assert_result(b.reply[i], "{\"slept_ms\":200}");
    int st = rw_daemon_wait(&env.daemon, 12000);
    long long took = rw_now_ms() - t0;
    cr_assert_eq(st, 0, "exit status %d", st);
    cr_assert_leq(took, 10000, "took %lld ms", took);
    cr_assert_eq(rw_bulk_exactly_once(&b), N);
    rw_bulk_close(&b);
}

Test(daemon, sigint_is_a_clean_stop)
{
    start("sigint", (rw_opts){0});
    cr_assert_eq(kill(env.daemon.pid, SIGINT), 0);
    int st = rw_daemon_wait(&env.daemon, 10000);
    cr_assert_eq(st, 0, "exit status %d after SIGINT", st);
}

Test(daemon, shutdown_timeout_exits_1)
{
    enum { N = 3 };
    int ms = 5000; /* far longer than the drain may take, even under TSan */
    start("stmo", (rw_opts){.threads = 1,
                            .worker_extra = "shutdown_timeout_ms = 300\n"});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "st", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, sleep_body, &ms), N);
    /* Wait until the daemon has read all three (one running, two queued). */
    long long got = rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key,
                                          "received", N, 3000);
    cr_assert_geq(got, N, "heartbeat received = %lld", got);
    long long t0 = rw_now_ms();
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    int st = rw_daemon_wait(&env.daemon, 5000);
    long long took = rw_now_ms() - t0;
    cr_assert_eq(st, 1, "exit status %d", st);
    cr_assert_lt(took, 2500, "took %lld ms to exit (shutdown_timeout_ms 300)", took);
    rw_bulk_collect(&b, 500); /* the running one may get no reply */
    cr_assert_geq(rw_bulk_count_code(&b, "shutting_down"), N - 1, "queued requests get shutting_down");
    cr_assert_eq(rw_bulk_count_code(&b, ""), 0, "no 5 s sleep could finish");
    for (int i = 0; i < N; i++)
        cr_assert_leq(b.count[i], 1);
    rw_bulk_close(&b);
}

Test(daemon, heartbeat_key)
{
    start("hb", (rw_opts){.channels = "request, news_*"});
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    const char *fields[] = {"pid", "host", "channels", "handlers", "started", "requests"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        char *v = rw_hget(c, env.daemon.hb_key, fields[i]);
        cr_assert(v && *v, "%s has no field %s", env.daemon.hb_key, fields[i]);
        free(v);
    }
    char *pid = rw_hget(c, env.daemon.hb_key, "pid");
    cr_assert_eq(strtol(pid, NULL, 10), (long)env.daemon.pid);
    free(pid);
    char *handlers = rw_hget(c, env.daemon.hb_key, "handlers");
    cr_assert(strstr(handlers, "echo"), "handlers = %s", handlers);
    free(handlers);
    char *channels = rw_hget(c, env.daemon.hb_key, "channels");
    cr_assert(strstr(channels, "news_*"), "channels = %s", channels);
    free(channels);
    long long ttl = rw_command_int(c, "PTTL %s", env.daemon.hb_key);
    cr_assert(ttl > 0 && ttl <= 3000, "PTTL %lld", ttl);

    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"hb1\"}", "hb1");
    cJSON_Delete(reply);
    long long n = rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key,
                                        "requests", 1, 3000);
    cr_assert_geq(n, 1, "heartbeat requests = %lld after one reply", n);

    int st = rw_daemon_stop(&env.daemon, 10000);
    cr_assert_eq(st, 0, "exit status %d", st);
    cr_assert_eq(rw_command_int(c, "EXISTS %s", env.daemon.hb_key), 0,
                 "heartbeat key left after a clean exit");
    redisFree(c);
}

Test(daemon, reply_store_list)
{
    start("list", (rw_opts){.worker_extra = "reply_store = list\nreply_ttl_ms = 60000\n"});
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"l1\",\"v\":7}", "l1");
    assert_ok(reply);

    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "LRANGE callback:l1 0 -1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1,
              "list callback:l1 holds one reply");
    cJSON *stored = cJSON_Parse(r->element[0]->str);
    freeReplyObject(r);
    cr_assert(stored && cJSON_Compare(stored, reply, 1),
              "the stored reply equals the published one");
    cJSON_Delete(stored);
    cJSON_Delete(reply);
    long long ttl = rw_command_int(c, "PTTL callback:l1");
    cr_assert(ttl > 0 && ttl <= 60000, "PTTL %lld", ttl);

    /* A late client that never subscribed still finds its reply. */
    cr_assert_eq(rw_command_int(c, "PUBLISH request %s",
                                "{\"handler\":\"echo\",\"req_id\":\"l2\",\"v\":8}"), 1);
    r = redisCommand(c, "BLPOP callback:l2 3");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2,
              "BLPOP callback:l2 got nothing");
    cJSON *late = cJSON_Parse(r->element[1]->str);
    freeReplyObject(r);
    cr_assert_str_eq(rw_str(late, "req_id"), "l2");
    rw_assert_result(late, "{\"v\":8}");
    cJSON_Delete(late);
    redisFree(c);
}

/* A reply made while Redis is away waits for it and is published (and
 * stored) once it is back: here the handler finishes during the outage. */
Test(daemon, reply_made_while_redis_is_down_is_sent_when_it_returns)
{
    start("retry", (rw_opts){.threads = 1,
                             .worker_extra = "reply_store = list\nreply_ttl_ms = 60000\n"});
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    cr_assert_eq(rw_command_int(c, "PUBLISH request %s",
                                "{\"handler\":\"sleep\",\"ms\":1500,\"req_id\":\"away\"}"),
                 1);
    redisFree(c);
    /* Wait until the handler runs, then take Redis away past its end. */
    cr_assert_geq(rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key, "received", 1,
                                        3000), 1);
    cr_assert_eq(rw_redis_restart(&env.redis), 0, "redis-server did not restart");

    c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "BLPOP callback:away 5");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2,
              "the reply made during the outage never reached Redis");
    cJSON *reply = cJSON_Parse(r->element[1]->str);
    freeReplyObject(r);
    assert_ok(reply);
    cr_assert_str_eq(rw_str(reply, "req_id"), "away");
    cJSON_Delete(reply);
    redisFree(c);
}

Test(daemon, json_log_lines)
{
    start("jlog", (rw_opts){.extra = "[log]\nformat = json\nlevel = debug\n"});
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    cr_assert_eq(rw_command_int(c, "PUBLISH request %s", "not json"), 1);
    redisFree(c);
    assert_still_serving();
    cr_assert_eq(rw_daemon_stop(&env.daemon, 10000), 0);

    char *log = rw_read_file(env.daemon.log);
    cr_assert_not_null(log);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(j), "log line is not a JSON object: %s", line);
        const char *keys[] = {"ts", "level", "module", "msg"};
        for (size_t k = 0; k < 4; k++)
            cr_assert(cJSON_GetObjectItemCaseSensitive(j, keys[k]),
                      "log line has no %s: %s", keys[k], line);
        cJSON_Delete(j);
        lines++;
    }
    free(log);
    cr_assert_geq(lines, 2, "only %d log lines", lines);
}

/* A client's bytes in a log line -- here a channel name holding a
 * terminal's clear-screen sequence and a byte that is not UTF-8 -- are
 * escaped (\xNN) in text lines; in JSON lines the line stays JSON. */
static void check_log_escapes(const char *format)
{
    char extra[64];
    snprintf(extra, sizeof extra, "[log]\nformat = %s\n", format);
    start(format, (rw_opts){.channels = "request, news_*", .extra = extra});
    static const char channel[] = "news_\x1b[2J\xff";
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "PUBLISH %b %s", channel, sizeof channel - 1, "not json");
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    redisFree(c);
    cr_assert(rw_wait_file_contains(env.daemon.log, "rejected", 5000), "no rejection logged");
    cr_assert_eq(rw_daemon_stop(&env.daemon, 10000), 0);
    char *log = rw_read_file(env.daemon.log);
    cr_assert_not_null(log);
    cr_assert_null(strchr(log, '\x1b'), "an ESC byte reached the %s log", format);
    cr_assert_null(strchr(log, '\xff'), "a byte that is not UTF-8 reached the %s log", format);
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strcmp(format, "json") == 0) {
            cJSON *j = cJSON_Parse(line);
            cr_assert(cJSON_IsObject(j), "not a JSON line: %s", line);
            if (strstr(line, "rejected a ") != NULL)
                cr_assert_not_null(strstr(rw_str(j, "msg"), "news_\x1b[2J\\xff"), "%s", line);
            cJSON_Delete(j);
        } else if (strstr(line, "rejected a ") != NULL) {
            cr_assert_not_null(strstr(line, "news_\\x1b[2J\\xff"), "not escaped: %s", line);
        }
    }
    free(log);
}

Test(daemon, text_log_lines_escape_control_characters)
{
    check_log_escapes("text");
}

Test(daemon, json_log_lines_stay_json_whatever_a_client_sends)
{
    check_log_escapes("json");
}

/* ---- the request path: replies out at once, drains, bounded stops ------- */

/* Publishes requests FIRST..FIRST+N-1 of B in one pipeline, one write:
 * they reach the daemon together. FMT[i] is the body of request FIRST+i,
 * a printf format taking its req_id. */
static void send_pipelined(rw_bulk *b, int first, int n, const char *const *fmt)
{
    for (int i = 0; i < n; i++) {
        char id[96], body[256];
        rw_bulk_req_id(b, first + i, id, sizeof id);
        snprintf(body, sizeof body, fmt[i], id);
        redisAppendCommand(b->pub, "PUBLISH request %s", body);
    }
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(b->pub, (void **)&r), REDIS_OK);
        cr_assert(r->type == REDIS_REPLY_INTEGER && r->integer == 1, "PUBLISH %d", first + i);
        freeReplyObject(r);
    }
}

#define FAST "{\"handler\":\"echo\",\"req_id\":\"%s\"}"
#define SLOW "{\"handler\":\"sleep\",\"ms\":1500,\"req_id\":\"%s\"}"

/* One thread, a fast request and a slow one in one pipeline: the fast
 * one's reply must not wait for the slow handler. */
Test(daemon, fast_reply_does_not_wait_behind_a_slow_handler)
{
    start("behind", (rw_opts){.threads = 1});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "bh", 2), 0);
    long long t0 = rw_now_ms();
    send_pipelined(&b, 0, 2, (const char *[]){FAST, SLOW});
    cr_assert_eq(rw_bulk_wait_one(&b, 0, CALL_TIMEOUT_MS), 0, "the fast request went unanswered");
    long long took = rw_now_ms() - t0;
    cr_assert_lt(took, 100, "the fast reply took %lld ms: it waited for the slow handler", took);
    cr_assert_eq(rw_bulk_wait_one(&b, 1, CALL_TIMEOUT_MS), 0);
    assert_ok(b.reply[0]);
    assert_ok(b.reply[1]);
    rw_bulk_close(&b);
}

/* Two threads, bursts of one slow request and seven fast ones in one
 * pipeline: the fast ones are answered at once, whichever thread ran them
 * (each burst once the last one's slow request is done). */
Test(daemon, fast_requests_do_not_queue_behind_a_busy_thread)
{
    enum { BURSTS = 5, FASTS = 7 };
    start("bursts", (rw_opts){.threads = 2});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "bu", BURSTS * (FASTS + 1)), 0);
    const char *burst[FASTS + 1] = {"{\"handler\":\"sleep\",\"ms\":300,\"req_id\":\"%s\"}"};
    for (int i = 1; i <= FASTS; i++)
        burst[i] = FAST;
    long long worst = 0;
    for (int k = 0; k < BURSTS; k++) {
        int first = k * (FASTS + 1);
        long long t0 = rw_now_ms();
        send_pipelined(&b, first, FASTS + 1, burst);
        for (int i = 1; i <= FASTS; i++) {
            cr_assert_eq(rw_bulk_wait_one(&b, first + i, CALL_TIMEOUT_MS), 0,
                         "burst %d: fast request %d unanswered", k, i);
            long long took = rw_now_ms() - t0;
            worst = took > worst ? took : worst;
        }
        cr_assert_eq(rw_bulk_wait_one(&b, first, CALL_TIMEOUT_MS), 0, "burst %d: slow", k);
    }
    fprintf(stderr, "bursts: the slowest fast reply came %lld ms after its burst\n", worst);
    cr_assert_lt(worst, 100, "a fast reply took %lld ms", worst);
    rw_bulk_close(&b);
}

/* A stop that runs out of time still writes every reply already made:
 * two threads each make a fast reply and then start a handler that
 * outlives shutdown_timeout_ms. */
Test(daemon, timed_out_drain_still_writes_replies_made)
{
    start("made", (rw_opts){.threads = 2, .worker_extra = "shutdown_timeout_ms = 500\n"});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "md", 4), 0);
    const char *slow = "{\"handler\":\"sleep\",\"ms\":5000,\"req_id\":\"%s\"}";
    send_pipelined(&b, 0, 4, (const char *[]){FAST, slow, FAST, slow});
    cr_assert_eq(rw_bulk_wait_one(&b, 0, CALL_TIMEOUT_MS), 0);
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    int st = rw_daemon_wait(&env.daemon, 10000);
    cr_assert_eq(st, 1, "the handlers outlive the timeout: exit 1, not %d", st);
    cr_assert_eq(rw_bulk_wait_one(&b, 2, 2000), 0, "a reply made before the stop was lost");
    assert_ok(b.reply[0]);
    assert_ok(b.reply[2]);
    rw_bulk_close(&b);
}

/* SIGTERM while replies are being made: every request received is
 * answered, exactly once, and the daemon exits 0; three rounds. */
Test(daemon, drain_answers_every_request_once)
{
    enum { ROUNDS = 3, N = 400 };
    for (int round = 0; round < ROUNDS; round++) {
        start("drain5", (rw_opts){.threads = 2,
                                  .worker_extra = "shutdown_timeout_ms = 20000\n"});
        rw_bulk b;
        cr_assert_eq(rw_bulk_open(&b, env.redis.port, "dl", N), 0);
        /* Mostly echo, with a sleep now and then so that some replies are
         * made after the signal. */
        cr_assert_eq(rw_bulk_publish(&b, "request", 2, echo_body, NULL), N);
        cr_assert_eq(rw_bulk_send(&b, "request", "{\"handler\":\"sleep\",\"req_id\":\"dl-last\","
                                                 "\"ms\":200}"), 1);
        cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
        cr_assert_eq(rw_bulk_collect(&b, 15000), 0, "round %d: %d of %d answered", round,
                     b.seen, N);
        cr_assert_eq(rw_daemon_wait(&env.daemon, 20000), 0, "round %d: exit status", round);
        cr_assert_eq(rw_bulk_exactly_once(&b), N, "round %d", round);
        cr_assert_eq(rw_bulk_count_code(&b, ""), N, "round %d: not every reply is ok", round);
        rw_bulk_close(&b);
        rw_env_stop(&env);
    }
}

/* Redis stopped (SIGSTOP): it takes connections and never answers. The
 * stop must still end within shutdown_timeout_ms and a second. */
Test(daemon, sigterm_with_redis_stopped_is_bounded)
{
    start("frozen", (rw_opts){.threads = 1, .worker_extra = "shutdown_timeout_ms = 2000\n"});
    redisContext *c = rw_connect(env.redis.port);
    cr_assert_not_null(c);
    cr_assert_eq(rw_command_int(c, "PUBLISH request %s",
                                "{\"handler\":\"sleep\",\"ms\":300,\"req_id\":\"frozen\"}"), 1);
    redisFree(c);
    cr_assert_geq(rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key, "received", 1,
                                        3000), 1);
    cr_assert_eq(kill(env.redis.pid, SIGSTOP), 0);
    long long t0 = rw_now_ms();
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    int st = rw_daemon_wait(&env.daemon, 15000);
    long long took = rw_now_ms() - t0;
    kill(env.redis.pid, SIGCONT);
    fprintf(stderr, "frozen: SIGTERM with Redis stopped ended in %lld ms, status %d\n", took,
            st);
    cr_assert_leq(took, 3000, "took %lld ms for shutdown_timeout_ms 2000", took);
    cr_assert_eq(st, 1, "a stop that could not deliver its reply exits 1, not %d", st);
}

/* A req_id used again within claim_ttl_ms is dropped, counted and logged. */
Test(daemon, reused_req_id_is_counted_and_logged)
{
    start("reuse", (rw_opts){.threads = 1, .claim_on = 1, .extra = "[log]\nlevel = debug\n"});
    cJSON *reply = call("{\"handler\":\"echo\",\"req_id\":\"again\"}", "again");
    assert_ok(reply);
    cJSON_Delete(reply);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "again", 1), 0);
    cr_assert_eq(rw_bulk_send(&b, "request", "{\"handler\":\"echo\",\"req_id\":\"again\"}"), 1);
    cr_assert_eq(rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key, "claims_lost", 1,
                                       5000), 1);
    cr_assert_eq(rw_bulk_fence(&b, "request", CALL_TIMEOUT_MS), 0);
    cr_assert_eq(b.stray, 0, "the reused id was answered again");
    cr_assert(rw_wait_file_contains(env.daemon.log, "req_id again dropped", 3000),
              "no debug line names the dropped req_id");
    rw_bulk_close(&b);
}

/* ---- the command line and config errors ------------------------------------------------ */

TestSuite(cli, .timeout = 30);

/* A temp folder for tests that run the daemon to completion. */
typedef struct cli_dir {
    char dir[RW_PATH_MAX];
    char err[RW_PATH_MAX + 16];
    char out[RW_PATH_MAX + 24];
} cli_dir;

static void cli_open(cli_dir *d)
{
    cr_assert_eq(rw_tmpdir(d->dir, sizeof d->dir), 0);
    snprintf(d->err, sizeof d->err, "%s/stderr", d->dir);
    snprintf(d->out, sizeof d->out, "%s.out", d->err);
}

/* Runs the daemon with ARGS and asserts exit status WANT. */
#define expect_exit(d, want, ...)                                              \
    do {                                                                       \
        int st_ = rw_run_daemon((d)->err, 10000, __VA_ARGS__, (char *)NULL);   \
        char *e_ = rw_read_file((d)->err);                                     \
        cr_assert_eq(st_, (want), "exit status %d, expected %d; stderr: %s",   \
                     st_, (want), e_ ? e_ : "");                               \
        free(e_);                                                              \
    } while (0)

Test(cli, version_and_help)
{
    cli_dir d;
    cli_open(&d);
    expect_exit(&d, 0, "--version");
    cr_assert(rw_wait_file_contains(d.out, "0.1.0", 0) ||
              rw_wait_file_contains(d.err, "0.1.0", 0), "--version prints 0.1.0");
    expect_exit(&d, 0, "--help");
    cr_assert(rw_wait_file_contains(d.out, "-c", 0) ||
              rw_wait_file_contains(d.err, "-c", 0), "--help shows -c");
    rw_rmdir(d.dir);
}

Test(cli, unknown_option_is_usage)
{
    cli_dir d;
    cli_open(&d);
    expect_exit(&d, 64, "--bogus-option");
    rw_rmdir(d.dir);
}

Test(cli, check_good_config)
{
    cli_dir d;
    cli_open(&d);
    rw_daemon dm;
    cr_assert_eq(rw_daemon_config(&dm, d.dir, rw_free_port(), "chk", &(rw_opts){0}), 0);
    expect_exit(&d, 0, "-t", "-c", dm.conf);
    rw_rmdir(d.dir);
}

Test(cli, unknown_key_names_file_line_key)
{
    cli_dir d;
    cli_open(&d);
    char conf[RW_PATH_MAX + 16], where[RW_PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/bad.ini", d.dir);
    cr_assert_eq(rw_write_file(conf, "[worker]\nthreads = 1\n\nbogus_key = 1\n"), 0);
    expect_exit(&d, 78, "-c", conf);
    snprintf(where, sizeof where, "%s:4", conf);
    cr_assert(rw_wait_file_contains(d.err, where, 0), "stderr does not name %s", where);
    cr_assert(rw_wait_file_contains(d.err, "bogus_key", 0), "stderr does not name the key");
    expect_exit(&d, 78, "-t", "-c", conf);
    rw_rmdir(d.dir);
}

Test(cli, bad_value_and_missing_file)
{
    cli_dir d;
    cli_open(&d);
    char conf[RW_PATH_MAX + 16], missing[RW_PATH_MAX + 16];
    snprintf(conf, sizeof conf, "%s/bad.ini", d.dir);
    cr_assert_eq(rw_write_file(conf, "[worker]\nthreads = lots\n"), 0);
    expect_exit(&d, 78, "-c", conf);
    cr_assert(rw_wait_file_contains(d.err, "threads", 0), "stderr names the key");
    snprintf(missing, sizeof missing, "%s/absent.ini", d.dir);
    expect_exit(&d, 78, "-c", missing);
    cr_assert(rw_wait_file_contains(d.err, "absent.ini", 0), "stderr names the file");
    rw_rmdir(d.dir);
}

/* -t on a folder, /dev/null or an empty file: 78, saying which and why
 * (it used to say "configuration OK"). */
Test(cli, config_that_is_a_folder_device_or_empty)
{
    cli_dir d;
    cli_open(&d);
    char empty[RW_PATH_MAX + 16];
    snprintf(empty, sizeof empty, "%s/empty.ini", d.dir);
    cr_assert_eq(rw_write_file(empty, ""), 0);
    expect_exit(&d, 78, "-t", "-c", d.dir);
    cr_assert(rw_wait_file_contains(d.err, "is a folder", 0), "stderr does not say why");
    expect_exit(&d, 78, "-t", "-c", "/dev/null");
    cr_assert(rw_wait_file_contains(d.err, "not a regular file", 0), "stderr does not say why");
    expect_exit(&d, 78, "-t", "-c", empty);
    cr_assert(rw_wait_file_contains(d.err, "is empty", 0), "stderr does not say why");
    rw_rmdir(d.dir);
}

Test(cli, no_loadable_handler_is_config_error)
{
    /* A live Redis, so only the empty handlers_dir can be the reason. */
    rw_redis r;
    cr_assert_eq(rw_redis_start(&r), 0);
    char empty[RW_PATH_MAX + 8], err[RW_PATH_MAX + 16];
    snprintf(empty, sizeof empty, "%s/empty", r.dir);
    snprintf(err, sizeof err, "%s/stderr", r.dir);
    cr_assert_eq(mkdir(empty, 0755), 0);
    rw_daemon dm;
    cr_assert_eq(rw_daemon_config(&dm, r.dir, r.port, "nohandlers",
                                  &(rw_opts){.handlers_dir = empty}), 0);
    int st = rw_run_daemon(err, 10000, "-c", dm.conf, (char *)NULL);
    rw_redis_stop(&r);
    cr_assert_eq(st, 78, "exit status %d", st);
}

Test(cli, redis_unreachable_at_start)
{
    cli_dir d;
    cli_open(&d);
    rw_daemon dm;
    int port = rw_free_port(); /* nothing listens there */
    cr_assert_eq(rw_daemon_config(&dm, d.dir, port, "nored", &(rw_opts){0}), 0);
    expect_exit(&d, 69, "-c", dm.conf);
    rw_rmdir(d.dir);
}

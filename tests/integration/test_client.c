/* test_client.c -- libredwork (include/redwork/client.h) against a real
 * redis-server and the real bin/redworkd.
 *
 * Each Criterion test is its own process with its own redis-server (free
 * loopback port, temp folder) and, where it needs one, its own daemon with a
 * config written for the test (see harness.h); the fixture `env` is per
 * process, so the suite runs with --jobs 2. Async outcomes are collected
 * under a mutex and waited for on a condition variable with a deadline;
 * failures are injected for real: SIGKILL of the daemon or of redis-server,
 * CLIENT KILL of the client's subscriber, SIGSTOP of the daemon so that
 * every call is in flight at once.
 *
 * Run: make all build/tests/integration/test_client &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_client --jobs 2 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../oom.h"
#include "harness.h"
#include "redwork/client.h"
#include "tls.h"

#define CALL_TIMEOUT_MS 5000

static rw_env env;

static void teardown(void)
{
    if (env.daemon.pid > 0)
        kill(env.daemon.pid, SIGCONT); /* in case a test stopped it */
    rw_env_stop(&env);
}

TestSuite(client, .fini = teardown, .timeout = 90);

/* ---- helpers ------------------------------------------------------------- */

static void start(const char *tag, rw_opts o)
{
    cr_assert_eq(rw_env_start(&env, tag, &o), 0,
                 "redis-server or redworkd did not start (tag %s)", tag);
}

/* Only a redis-server, no daemon. */
static void start_redis(void)
{
    memset(&env, 0, sizeof env);
    cr_assert_eq(rw_redis_start(&env.redis), 0, "redis-server did not start");
}

static redwork_client *open_with(const redwork_client_options *o)
{
    char err[512] = "";
    redwork_client *c = redwork_client_open(o, err, sizeof err);
    cr_assert_not_null(c, "redwork_client_open: %s", err);
    return c;
}

/* A client for the test's Redis on CHANNEL (NULL: "request"). */
static redwork_client *open_client(const char *channel, int store_list)
{
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = env.redis.port;
    if (channel)
        snprintf(o.channel, sizeof o.channel, "%s", channel);
    o.reply_store_list = store_list;
    return open_with(&o);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* 1 if the JSON text GOT equals the JSON text WANT. */
static int json_eq(const char *got, const char *want)
{
    cJSON *g = got ? cJSON_Parse(got) : NULL, *w = cJSON_Parse(want);
    int same = g && w && cJSON_Compare(g, w, 1);
    cJSON_Delete(g);
    cJSON_Delete(w);
    return same;
}

#define assert_json(got, want)                                                 \
    cr_assert(json_eq((got), (want)), "got %s, expected %s",                 \
              (got) ? (got) : "(null)", (want))

/* Asserts that REQ_ID is <client id>.<n>.<16 hex digits: 64 random bits>
 * with n >= 1; returns n. */
static unsigned long long assert_req_id(const redwork_client *c, const char *req_id)
{
    const char *id = redwork_client_id(c);
    size_t len = strlen(id);
    cr_assert(strncmp(req_id, id, len) == 0 && req_id[len] == '.',
              "req_id %s is not %s.<n>.<token>", req_id, id);
    char *end;
    unsigned long long n = strtoull(req_id + len + 1, &end, 10);
    cr_assert(*end == '.' && n >= 1, "req_id %s has no number", req_id);
    cr_assert_eq(strlen(end + 1), 16, "req_id %s has no 64-bit token", req_id);
    cr_assert_eq(strspn(end + 1, "0123456789abcdef"), 16, "req_id %s: token not hex", req_id);
    return n;
}

/* How many PUBLISH commands this Redis has run (0 if none). */
static long long publish_calls(redisContext *a)
{
    long long n = rw_info_int(a, "commandstats", "cmdstat_publish", "calls");
    return n < 0 ? 0 : n;
}

/* Waits (bounded) until Redis has run at least N PUBLISH commands:
 * the requests are then delivered to whoever was subscribed. */
static void wait_published(redisContext *a, long long n)
{
    long long deadline = rw_now_ms() + 3000, got;
    while ((got = publish_calls(a)) < n && rw_now_ms() < deadline)
        sleep_ms(2);
    cr_assert_geq(got, n, "Redis ran %lld PUBLISH, expected %lld", got, n);
}

/* ---- async outcomes: a table of results filled by callbacks ------------- */

typedef struct outcomes {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    int done;
    int *calls;              /* callbacks per slot */
    redwork_result *res;     /* the first outcome per slot (owned) */
    long long *at_ms;        /* when it came */
    pthread_t *thread;       /* which thread ran the callback */
} outcomes;

typedef struct slot {
    outcomes *o;
    int i;
} slot;

static void outcomes_init(outcomes *o, int n)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cond, &ca);
    pthread_condattr_destroy(&ca);
    o->n = n;
    o->calls = calloc((size_t)n, sizeof *o->calls);
    o->res = calloc((size_t)n, sizeof *o->res);
    o->at_ms = calloc((size_t)n, sizeof *o->at_ms);
    o->thread = calloc((size_t)n, sizeof *o->thread);
    cr_assert(o->calls && o->res && o->at_ms && o->thread);
}

static void outcomes_free(outcomes *o)
{
    for (int i = 0; i < o->n; i++)
        redwork_result_free(&o->res[i]);
    free(o->calls);
    free(o->res);
    free(o->at_ms);
    free(o->thread);
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->lock);
}

static void on_outcome(redwork_result *res, void *arg)
{
    slot *s = arg;
    outcomes *o = s->o;
    pthread_mutex_lock(&o->lock);
    if (o->calls[s->i]++ == 0) {
        o->res[s->i] = *res; /* keep it: freed by outcomes_free */
        o->at_ms[s->i] = rw_now_ms();
        o->thread[s->i] = pthread_self();
        o->done++;
    } else {
        redwork_result_free(res);
    }
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

/* Waits until N slots have an outcome, at most TIMEOUT_MS. Returns how
 * many have one. */
static int outcomes_wait(outcomes *o, int n, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&o->lock);
    while (o->done < n)
        if (pthread_cond_timedwait(&o->cond, &o->lock, &until) == ETIMEDOUT)
            break;
    int done = o->done;
    pthread_mutex_unlock(&o->lock);
    return done;
}

/* ---- closing with a deadline -------------------------------------------- */

static void *closer_main(void *c)
{
    redwork_client_close(c);
    return NULL;
}

/* Closes C on another thread and waits at most TIMEOUT_MS. Returns the
 * milliseconds it took, or -1 if it did not return in time. */
static long long close_within(redwork_client *c, int timeout_ms)
{
    long long t0 = rw_now_ms();
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, closer_main, c), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000 + 1;
    if (pthread_timedjoin_np(t, NULL, &until) != 0)
        return -1;
    long long took = rw_now_ms() - t0;
    return took <= timeout_ms ? took : -1;
}

/* ---- open, close, ids, options ------------------------------------------- */

Test(client, open_close_and_ids)
{
    start_redis();
    redwork_client *a = open_client(NULL, 0), *b = open_client(NULL, 0);
    const char *ids[] = {redwork_client_id(a), redwork_client_id(b)};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(strlen(ids[k]), 19, "id %s is not rw- and 16 hex digits", ids[k]);
        cr_assert(strncmp(ids[k], "rw-", 3) == 0, "id %s", ids[k]);
        for (int i = 3; i < 19; i++)
            cr_assert(isxdigit((unsigned char)ids[k][i]), "id %s", ids[k]);
    }
    cr_assert_str_neq(ids[0], ids[1], "two clients share the id %s", ids[0]);

    /* Each client listens on its own exact channel (no pattern: Redis would
     * match every PUBLISH against it) before its first call. */
    redisContext *r = rw_connect(env.redis.port);
    cr_assert_not_null(r);
    cr_assert_eq(rw_command_int(r, "PUBSUB NUMPAT"), 0);
    for (int k = 0; k < 2; k++) {
        redisReply *n = redisCommand(r, "PUBSUB NUMSUB callback:%s", ids[k]);
        cr_assert(n && n->type == REDIS_REPLY_ARRAY && n->elements == 2 &&
                  n->element[1]->integer == 1, "client %s is not subscribed to its channel",
                  ids[k]);
        freeReplyObject(n);
    }

    redwork_client_close(a);
    redwork_client_close(b);
    redwork_client_close(NULL); /* accepted */
    long long deadline = rw_now_ms() + 3000;
    redisReply *left = NULL;
    for (;;) {
        freeReplyObject(left);
        left = redisCommand(r, "PUBSUB CHANNELS callback:rw-*");
        if (left == NULL || left->elements == 0 || rw_now_ms() > deadline)
            break;
        sleep_ms(5);
    }
    cr_assert(left && left->elements == 0, "reply channels still subscribed after close");
    freeReplyObject(left);
    redisFree(r);
    assert_no_leaks();
}

Test(client, open_refused_names_the_server)
{
    int port = rw_free_port(); /* nothing listens there */
    cr_assert_gt(port, 0);
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = port;
    char err[512] = "", want[64];
    long long t0 = rw_now_ms();
    redwork_client *c = redwork_client_open(&o, err, sizeof err);
    cr_assert_null(c, "opened a client on a port where nothing listens");
    cr_assert_lt(rw_now_ms() - t0, 3000, "open took too long to fail");
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    cr_assert(strstr(err, want), "err '%s' does not name %s", err, want);
    assert_no_leaks();
}

Test(client, options_defaults)
{
    redwork_client_options o;
    memset(&o, 0x5a, sizeof o);
    redwork_client_options_init(&o);
    cr_assert_str_eq(o.host, "127.0.0.1");
    cr_assert_eq(o.port, 6379);
    cr_assert_eq(o.db, 0);
    cr_assert_str_eq(o.username, "");
    cr_assert_str_eq(o.password, "");
    cr_assert_eq(o.connect_timeout_ms, 2000);
    cr_assert_str_eq(o.channel, "request");
    cr_assert_str_eq(o.reply_prefix, "callback:");
    cr_assert_eq(o.reply_store_list, 0);
    assert_no_leaks();
}

/* The options carry the size their program was built with (client.h):
 * init writes no byte past it; options from a newer header run on this
 * library while the options it does not know stay at zero, and are
 * refused, by name, once one is set; options never initialised are
 * refused too. */
Test(client, options_of_other_sizes)
{
    struct {
        redwork_client_options o;
        unsigned char after[64];
    } guarded;
    memset(&guarded, 0x5a, sizeof guarded);
    redwork_client_options_init(&guarded.o);
    cr_assert_eq(guarded.o.size, sizeof guarded.o);
    for (size_t i = 0; i < sizeof guarded.after; i++)
        cr_assert_eq(guarded.after[i], 0x5a, "init wrote byte %zu past the struct", i);

    start_redis();
    struct {
        redwork_client_options o;
        char future_option[64]; /* what a newer header would have appended */
    } newer;
    redwork_client_options_init_size(&newer.o, sizeof newer);
    cr_assert_eq(newer.o.size, sizeof newer);
    cr_assert_eq(newer.future_option[0], 0, "the unknown options are not zeroed");
    char err[512] = "";
    cr_assert_eq(redwork_client_options_set_url(&newer.o, "redis://127.0.0.1", err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(newer.o.size, sizeof newer, "set_url changed the size");
    newer.o.port = env.redis.port;
    redwork_client *c = redwork_client_open(&newer.o, err, sizeof err);
    cr_assert_not_null(c, "options from a newer header, unknown ones unset: %s", err);
    redwork_client_close(c);
    strcpy(newer.future_option, "on");
    cr_assert_null(redwork_client_open(&newer.o, err, sizeof err));
    cr_assert_not_null(strstr(err, "newer redwork"), "%s", err);

    redwork_client_options never;
    memset(&never, 0, sizeof never);
    never.port = env.redis.port;
    cr_assert_null(redwork_client_open(&never, err, sizeof err));
    cr_assert_not_null(strstr(err, "redwork_client_options_init"), "%s", err);
    cr_assert_eq(redwork_client_options_set_url(&never, "redis://x", err, sizeof err), -1);
    assert_no_leaks();
}

Test(client, options_set_url)
{
    redwork_client_options o;
    redwork_client_options_init(&o);
    char err[512] = "";
    cr_assert_eq(redwork_client_options_set_url(&o, "rediss://bob@r.example:6390/4", err,
                                                sizeof err), 0, "%s", err);
    cr_assert_str_eq(o.host, "r.example");
    cr_assert_eq(o.port, 6390);
    cr_assert_eq(o.db, 4);
    cr_assert_str_eq(o.username, "bob");
    cr_assert(o.tls);
    cr_assert_eq(redwork_client_options_set_url(&o, "unix:///run/r.sock", err, sizeof err), 0);
    cr_assert_str_eq(o.host, "/run/r.sock");
    cr_assert_eq(o.port, 6379);
    cr_assert_eq(o.db, 0);
    cr_assert_not(o.tls);

    /* Refused: OPT is left as it was, the error says why without the
     * password. */
    redwork_client_options before = o;
    cr_assert_eq(redwork_client_options_set_url(&o, "redis://bob:s3cret@h", err, sizeof err),
                 -1);
    cr_assert(strstr(err, "password"), "%s", err);
    cr_assert_null(strstr(err, "s3cret"), "%s", err);
    cr_assert_eq(redwork_client_options_set_url(&o, "redis://h:99999", err, sizeof err), -1);
    cr_assert(strstr(err, "port"), "%s", err);
    cr_assert_eq(redwork_client_options_set_url(&o, NULL, err, sizeof err), -1);
    cr_assert_eq(memcmp(&before, &o, sizeof o), 0, "a refused url changed the options");
    assert_no_leaks();
}

Test(client, status_names)
{
    const char *want[] = {"ok", "error_reply", "timeout", "no_workers",
                          "connection", "invalid"};
    for (int s = REDWORK_OK; s <= REDWORK_INVALID; s++)
        cr_assert_str_eq(redwork_status_name((redwork_status)s), want[s]);
    cr_assert_not_null(redwork_status_name((redwork_status)42));
    cr_assert_not_null(redwork_status_name((redwork_status)-1));
    redwork_result_free(NULL); /* accepted */
    assert_no_leaks();
}

Test(client, options_load)
{
    char dir[RW_PATH_MAX], path[RW_PATH_MAX + 16];
    cr_assert_eq(rw_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/client.ini", dir);
    cr_assert_eq(rw_write_file(path,
                               "[redis]\n"
                               "host = 127.0.0.2\n"
                               "port = 7001\n"
                               "db = 3\n"
                               "username = alice\n"
                               "password_env = RW_TEST_CLIENT_PW\n"
                               "connect_timeout_ms = 750\n"
                               "\n"
                               "[worker]\n"
                               "channels = news_*, jobs, later\n"
                               "reply_prefix = cb:\n"
                               "reply_store = list\n"),
                 0);
    cr_assert_eq(setenv("RW_TEST_CLIENT_PW", "s3cret", 1), 0);
    redwork_client_options o;
    redwork_client_options_init(&o);
    char err[512] = "";
    cr_assert_eq(redwork_client_options_load(&o, path, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(o.host, "127.0.0.2");
    cr_assert_eq(o.port, 7001);
    cr_assert_eq(o.db, 3);
    cr_assert_str_eq(o.username, "alice");
    cr_assert_str_eq(o.password, "s3cret");
    cr_assert_eq(o.connect_timeout_ms, 750);
    cr_assert_str_eq(o.channel, "jobs", "the first channel that is not a pattern");
    cr_assert_str_eq(o.reply_prefix, "cb:");
    cr_assert_eq(o.reply_store_list, 1);

    /* A minimal file: the daemon's defaults. */
    cr_assert_eq(rw_write_file(path, "[redis]\nport = 7002\n"), 0);
    redwork_client_options_init(&o);
    cr_assert_eq(redwork_client_options_load(&o, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(o.port, 7002);
    cr_assert_str_eq(o.channel, "request");
    cr_assert_str_eq(o.reply_prefix, "callback:");
    cr_assert_eq(o.reply_store_list, 0);
    rw_rmdir(dir);
    assert_no_leaks();
}

/* A bad file fails with ERR naming file:line (and the key), OPT unchanged. */
static void expect_load_error(const char *dir, const char *text, int line,
                              const char *key)
{
    char path[RW_PATH_MAX + 16], want[RW_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    cr_assert_eq(rw_write_file(path, text), 0);
    redwork_client_options o, before;
    redwork_client_options_init(&o);
    o.port = 4242;
    snprintf(o.channel, sizeof o.channel, "mine");
    before = o;
    char err[1024] = "";
    cr_assert_eq(redwork_client_options_load(&o, path, err, sizeof err), -1,
                 "loaded a bad file:\n%s", text);
    snprintf(want, sizeof want, "%s:%d", path, line);
    cr_assert(strstr(err, want), "err '%s' does not name %s", err, want);
    cr_assert(strstr(err, key), "err '%s' does not name the key %s", err, key);
    cr_assert_eq(memcmp(&o, &before, sizeof o), 0, "the options changed on error");
}

Test(client, options_load_errors)
{
    char dir[RW_PATH_MAX], missing[RW_PATH_MAX + 16];
    cr_assert_eq(rw_tmpdir(dir, sizeof dir), 0);
    expect_load_error(dir, "[redis]\nport = 7003\n\n[worker]\nbogus_key = 1\n", 5,
                      "bogus_key");
    expect_load_error(dir, "[redis]\nport = lots\n", 2, "port");
    expect_load_error(dir, "[worker]\nreply_store = sometimes\n", 2, "reply_store");

    snprintf(missing, sizeof missing, "%s/absent.ini", dir);
    redwork_client_options o;
    redwork_client_options_init(&o);
    char err[1024] = "";
    cr_assert_eq(redwork_client_options_load(&o, missing, err, sizeof err), -1);
    cr_assert(strstr(err, "absent.ini"), "err '%s' does not name the file", err);
    rw_rmdir(dir);
    assert_no_leaks();
}

/* ---- calls that get a reply ---------------------------------------------- */

Test(client, sync_call_ok)
{
    start("csync", (rw_opts){.default_handler = "greet"});
    redwork_client *c = open_client(NULL, 0);
    redwork_result res;

    cr_assert_eq(redwork_call(c, "echo", "{\"a\":1}", CALL_TIMEOUT_MS, &res), REDWORK_OK,
                 "status %s: %s", redwork_status_name(res.status),
                 res.error_message ? res.error_message : "");
    cr_assert_eq(res.status, REDWORK_OK);
    cr_assert_str_eq(res.result, "{\"a\":1}");
    cr_assert_null(res.error_code);
    cr_assert_null(res.error_message);
    unsigned long long n1 = assert_req_id(c, res.req_id);
    cr_assert(res.latency_us > 0 && res.latency_us < CALL_TIMEOUT_MS * 1000LL,
              "latency_us %lld", res.latency_us);
    cr_assert_not_null(res.reply);
    cJSON *env_reply = cJSON_Parse(res.reply);
    cr_assert_not_null(env_reply, "reply is not JSON: %s", res.reply);
    cr_assert_str_eq(rw_str(env_reply, "req_id"), res.req_id);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(env_reply, "ok")));
    cr_assert_str_eq(rw_str(env_reply, "handler"), "echo");
    cr_assert_str_eq(rw_str(env_reply, "worker"), env.daemon.id);
    cJSON_Delete(env_reply);
    redwork_result_free(&res);
    cr_assert_null(res.reply);
    cr_assert_null(res.result);

    /* A named handler with a string result. */
    cr_assert_eq(redwork_call(c, "greet", "{\"user_id\":\"Alice\"}", CALL_TIMEOUT_MS, &res),
                 REDWORK_OK);
    cr_assert_str_eq(res.result, "\"Hello, Alice!\"");
    unsigned long long n2 = assert_req_id(c, res.req_id);
    cr_assert_neq(n1, n2, "two calls share the req_id %s", res.req_id);
    redwork_result_free(&res);

    /* No handler: the daemon routes it (default_handler = greet). */
    cr_assert_eq(redwork_call(c, NULL, "{\"user_id\":\"Bob\"}", CALL_TIMEOUT_MS, &res),
                 REDWORK_OK, "status %s", redwork_status_name(res.status));
    cr_assert_str_eq(res.result, "\"Hello, Bob!\"");
    cr_assert(strstr(res.reply, "\"handler\":\"greet\""), "reply %s", res.reply);
    redwork_result_free(&res);

    /* No payload: {}. */
    cr_assert_eq(redwork_call(c, "echo", NULL, CALL_TIMEOUT_MS, &res), REDWORK_OK);
    assert_json(res.result, "{}");
    redwork_result_free(&res);

    /* The client sets req_id, handler and reply_to: a payload that carries
     * one (a second "req_id" used to send the reply to another caller's
     * channel, a second "handler" to run another handler), or a key twice,
     * is refused before anything is sent. */
    static const char *const refused[] = {
        "{\"req_id\":\"mine\",\"x\":2}", "{\"handler\":\"fail\",\"x\":2}",
        "{\"reply_to\":\"callback:victim\"}", "{\"x\":1,\"x\":2}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_assert_eq(redwork_call(c, "echo", refused[i], CALL_TIMEOUT_MS, &res), REDWORK_INVALID,
                     "%s: status %s", refused[i], redwork_status_name(res.status));
        redwork_result_free(&res);
    }
    /* Two calls' ids differ in their random part too. */
    char first[160];
    cr_assert_eq(redwork_call(c, "echo", NULL, CALL_TIMEOUT_MS, &res), REDWORK_OK);
    snprintf(first, sizeof first, "%s", res.req_id);
    redwork_result_free(&res);
    cr_assert_eq(redwork_call(c, "echo", NULL, CALL_TIMEOUT_MS, &res), REDWORK_OK);
    cr_assert_str_neq(strrchr(first, '.'), strrchr(res.req_id, '.'), "the same token twice");
    redwork_result_free(&res);

    redwork_client_close(c);
    assert_no_leaks();
}

Test(client, error_replies)
{
    start("cerr", (rw_opts){0});
    redwork_client *c = open_client(NULL, 0);
    redwork_result res;

    cr_assert_eq(redwork_call(c, "nope", "{}", CALL_TIMEOUT_MS, &res), REDWORK_ERROR_REPLY,
                 "status %s", redwork_status_name(res.status));
    cr_assert_str_eq(res.error_code, "unknown_handler");
    cr_assert(res.error_message && strstr(res.error_message, "nope"),
              "message '%s' does not name the handler", res.error_message);
    cr_assert_null(res.result);
    cr_assert(res.reply && strstr(res.reply, "\"ok\":false"), "reply %s", res.reply);
    assert_req_id(c, res.req_id);
    redwork_result_free(&res);

    cr_assert_eq(redwork_call(c, "fail", "{}", CALL_TIMEOUT_MS, &res), REDWORK_ERROR_REPLY);
    cr_assert_str_eq(res.error_code, "handler_failed");
    cr_assert(res.error_message && strstr(res.error_message, res.req_id),
              "message '%s' (the fail handler names the req_id %s)",
              res.error_message, res.req_id);
    redwork_result_free(&res);

    cr_assert_eq(redwork_call(c, "greet", "{}", CALL_TIMEOUT_MS, &res), REDWORK_ERROR_REPLY);
    cr_assert_str_eq(res.error_code, "bad_request");
    redwork_result_free(&res);

    redwork_client_close(c);
    assert_no_leaks();
}

/* ---- calls that fail before they are sent --------------------------------- */

typedef struct inline_cb {
    pthread_t caller;
    atomic_int calls;
    atomic_int on_caller;
    redwork_result res;
} inline_cb;

static void on_inline(redwork_result *res, void *arg)
{
    inline_cb *s = arg;
    if (atomic_fetch_add(&s->calls, 1) == 0) {
        s->res = *res;
        atomic_store(&s->on_caller, pthread_equal(pthread_self(), s->caller));
    } else {
        redwork_result_free(res);
    }
}

static void expect_invalid(redwork_client *c, const char *payload, int timeout_ms)
{
    inline_cb s = {.caller = pthread_self()};
    int rc = redwork_call_async(c, "echo", payload, timeout_ms, on_inline, &s);
    cr_assert_eq(rc, -1, "payload %s, timeout %d: returned %d", payload, timeout_ms, rc);
    cr_assert_eq(atomic_load(&s.calls), 1,
                 "payload %s: callback not called exactly once before the return", payload);
    cr_assert(atomic_load(&s.on_caller), "the callback ran on another thread");
    cr_assert_eq(s.res.status, REDWORK_INVALID, "payload %s: status %s", payload,
                 redwork_status_name(s.res.status));
    cr_assert_str_eq(s.res.error_code, "invalid");
    cr_assert(s.res.error_message && *s.res.error_message);
    cr_assert_null(s.res.result);
    redwork_result_free(&s.res);

    redwork_result res;
    cr_assert_eq(redwork_call(c, "echo", payload, timeout_ms, &res), REDWORK_INVALID);
    cr_assert_str_eq(res.error_code, "invalid");
    redwork_result_free(&res);
}

Test(client, invalid_calls_fail_at_once)
{
    start_redis();
    redwork_client *c = open_client(NULL, 0);
    const char *bad[] = {"[1,2]", "not json", "", "42", "\"text\"", "null", "{\"a\":"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_invalid(c, bad[i], 1000);
    expect_invalid(c, "{}", 0);
    expect_invalid(c, "{}", -5);

    /* Nothing was published. */
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    cr_assert_eq(publish_calls(a), 0, "an invalid call was published");
    redisFree(a);
    redwork_client_close(c);
    assert_no_leaks();
}

/* ---- calls that get no reply -------------------------------------------- */

Test(client, timeout_then_late_reply_dropped)
{
    /* One daemon thread: the next call waits behind the sleep, so the late
     * reply reaches the client while that call is in flight. */
    start("ctmo", (rw_opts){.threads = 1});
    redisContext *watch = rw_connect(env.redis.port);
    cr_assert_not_null(watch);
    redisReply *r = redisCommand(watch, "PSUBSCRIBE callback:*");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);

    redwork_client *c = open_client(NULL, 0);
    outcomes o;
    outcomes_init(&o, 1);
    slot s = {&o, 0};
    long long t0 = rw_now_ms();
    cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":1500}", 200, on_outcome, &s), 0);
    cr_assert_eq(outcomes_wait(&o, 1, 3000), 1, "no outcome within 3 s");
    long long took = o.at_ms[0] - t0;
    cr_assert_eq(o.res[0].status, REDWORK_TIMEOUT, "status %s",
                 redwork_status_name(o.res[0].status));
    cr_assert_str_eq(o.res[0].error_code, "timeout");
    cr_assert_null(o.res[0].result);
    cr_assert(took >= 190 && took < 1000, "timed out after %lld ms (timeout 200)", took);
    cr_assert_geq(o.res[0].latency_us, 190000);
    char late_id[160];
    snprintf(late_id, sizeof late_id, "%s", o.res[0].req_id);

    /* This call is answered after the sleep's late reply. */
    redwork_result res;
    cr_assert_eq(redwork_call(c, "echo", "{\"i\":2}", CALL_TIMEOUT_MS, &res), REDWORK_OK,
                 "status %s", redwork_status_name(res.status));
    assert_json(res.result, "{\"i\":2}");
    cr_assert_str_neq(res.req_id, late_id);
    redwork_result_free(&res);

    /* The late reply was published on the client's channel (and so reached
     * the client first)... */
    char chan[200];
    snprintf(chan, sizeof chan, "callback:%s", redwork_client_id(c));
    int seen = 0;
    long long deadline = rw_now_ms() + 2000;
    while (!seen && (r = rw_read_reply(watch, deadline)) != NULL) {
        seen = r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
               strcmp(r->element[2]->str, chan) == 0 && strstr(r->element[3]->str, late_id);
        freeReplyObject(r);
    }
    cr_assert(seen, "the late reply to %s was never published", late_id);
    /* ... and was dropped: the timed-out call was completed once only. */
    cr_assert_eq(o.calls[0], 1);

    redwork_client_close(c);
    cr_assert_eq(o.calls[0], 1);
    outcomes_free(&o);
    redisFree(watch);
    assert_no_leaks();
}

Test(client, no_workers_fails_fast)
{
    start("cnow", (rw_opts){0});
    redwork_client *c = open_client("nobody", 0);
    redwork_result res;
    long long t0 = rw_now_ms();
    cr_assert_eq(redwork_call(c, "echo", "{}", 10000, &res), REDWORK_NO_WORKERS,
                 "status %s", redwork_status_name(res.status));
    long long took = rw_now_ms() - t0;
    cr_assert_lt(took, 1000, "no_workers took %lld ms (timeout 10000)", took);
    cr_assert_str_eq(res.error_code, "no_workers");
    cr_assert_null(res.result);
    assert_req_id(c, res.req_id);
    redwork_result_free(&res);

    /* Async: published (returns 0), then completed with no_workers. */
    outcomes o;
    outcomes_init(&o, 1);
    slot s = {&o, 0};
    cr_assert_eq(redwork_call_async(c, "echo", "{}", 10000, on_outcome, &s), 0);
    cr_assert_eq(outcomes_wait(&o, 1, 2000), 1);
    cr_assert_eq(o.res[0].status, REDWORK_NO_WORKERS);
    redwork_client_close(c);
    cr_assert_eq(o.calls[0], 1);
    outcomes_free(&o);
    assert_no_leaks();
}

/* ---- many calls in flight -------------------------------------------------- */

/* Asserts that slot I's outcome is an echo of {"i":I,...} with a
 * matching req_id. Call with the lock not needed (all done). */
static void assert_echo_slot(const redwork_client *c, const outcomes *o, int i,
                             const char *field)
{
    const redwork_result *r = &o->res[i];
    cr_assert_eq(o->calls[i], 1, "call %d completed %d times", i, o->calls[i]);
    cr_assert_eq(r->status, REDWORK_OK, "call %d: %s %s", i,
                 redwork_status_name(r->status), r->error_message ? r->error_message : "");
    cJSON *got = cJSON_Parse(r->result);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(got, field);
    cr_assert(cJSON_IsNumber(v) && v->valueint == i,
              "call %d got the result %s", i, r->result);
    cJSON_Delete(got);
    cJSON *env_reply = cJSON_Parse(r->reply);
    cr_assert_str_eq(rw_str(env_reply, "req_id"), r->req_id);
    cJSON_Delete(env_reply);
    assert_req_id(c, r->req_id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

Test(client, async_thousand)
{
    enum { N = 1000 };
    start("casync", (rw_opts){.worker_extra = "queue_size = 4096\n"});
    redwork_client *c = open_client(NULL, 0);
    outcomes o;
    outcomes_init(&o, N);
    slot *slots = calloc(N, sizeof *slots);
    cr_assert_not_null(slots);
    char body[64];
    for (int i = 0; i < N; i++) {
        slots[i] = (slot){&o, i};
        snprintf(body, sizeof body, "{\"i\":%d}", i);
        cr_assert_eq(redwork_call_async(c, "echo", body, 30000, on_outcome, &slots[i]), 0,
                     "call %d was not published", i);
    }
    int done = outcomes_wait(&o, N, 30000);
    cr_assert_eq(done, N, "%d of %d calls completed", done, N);
    const char **ids = calloc(N, sizeof *ids);
    cr_assert_not_null(ids);
    pthread_t self = pthread_self();
    for (int i = 0; i < N; i++) {
        assert_echo_slot(c, &o, i, "i");
        cr_assert(!pthread_equal(o.thread[i], self),
                  "a reply's callback ran on the caller's thread");
        ids[i] = o.res[i].req_id;
    }
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++)
        cr_assert_str_neq(ids[i - 1], ids[i], "req_id %s used twice", ids[i]);
    redwork_client_close(c);
    for (int i = 0; i < N; i++)
        cr_assert_eq(o.calls[i], 1, "call %d completed again by close", i);
    free(ids);
    free(slots);
    outcomes_free(&o);
    assert_no_leaks();
}

/* A callback may start new calls (header: "they may start new calls"):
 * each reply starts the next call, CHAIN deep. */
enum { CHAIN = 20 };

typedef struct chain {
    redwork_client *c;
    outcomes *o;
    slot slots[CHAIN];
    atomic_int start_failed;
} chain;

static void on_chain(redwork_result *res, void *arg);

static int chain_start(chain *ch, int i)
{
    char body[48];
    snprintf(body, sizeof body, "{\"i\":%d}", i);
    return redwork_call_async(ch->c, "echo", body, 10000, on_chain, &ch->slots[i]);
}

static chain *the_chain; /* the test's, for the callback */

static void on_chain(redwork_result *res, void *arg)
{
    slot *s = arg;
    chain *ch = the_chain;
    int i = s->i;
    on_outcome(res, arg);
    if (i + 1 < CHAIN && chain_start(ch, i + 1) != 0)
        atomic_fetch_add(&ch->start_failed, 1);
}

Test(client, callback_starts_the_next_call)
{
    start("cchain", (rw_opts){0});
    outcomes o;
    outcomes_init(&o, CHAIN);
    chain ch = {.c = open_client(NULL, 0), .o = &o};
    for (int i = 0; i < CHAIN; i++)
        ch.slots[i] = (slot){&o, i};
    the_chain = &ch;
    cr_assert_eq(chain_start(&ch, 0), 0);
    int done = outcomes_wait(&o, CHAIN, 20000);
    cr_assert_eq(done, CHAIN, "the chain stopped after %d calls", done);
    cr_assert_eq(atomic_load(&ch.start_failed), 0);
    for (int i = 0; i < CHAIN; i++)
        assert_echo_slot(ch.c, &o, i, "i");
    redwork_client_close(ch.c);
    outcomes_free(&o);
    assert_no_leaks();
}

/* 64 threads on one client: each submits its share of 10,000 async calls
 * and then makes sync calls. The daemon is stopped (SIGSTOP) while they
 * submit, so all 10,000 are in flight at once, and the sync calls wait
 * among them; then it is continued and every reply must reach its own
 * caller. */
enum { MT_THREADS = 64, MT_ASYNC = 10000, MT_SYNC = 8 };

typedef struct mt_shared {
    redwork_client *c;
    outcomes *o;
    slot *slots;
    pthread_barrier_t go;
    atomic_int submitted;
    atomic_int submit_failed;
    atomic_int sync_ok;
    atomic_int sync_bad;
    char bad_example[256];
} mt_shared;

typedef struct mt_thread {
    pthread_t t;
    mt_shared *sh;
    int index;
} mt_thread;

static void *mt_main(void *arg)
{
    mt_thread *me = arg;
    mt_shared *sh = me->sh;
    pthread_barrier_wait(&sh->go);
    char body[96];
    for (int i = me->index; i < MT_ASYNC; i += MT_THREADS) {
        snprintf(body, sizeof body, "{\"i\":%d,\"t\":%d}", i, me->index);
        if (redwork_call_async(sh->c, "echo", body, 60000, on_outcome, &sh->slots[i]) != 0)
            atomic_fetch_add(&sh->submit_failed, 1);
        atomic_fetch_add(&sh->submitted, 1);
    }
    for (int k = 0; k < MT_SYNC; k++) {
        char want[96];
        snprintf(body, sizeof body, "{\"t\":%d,\"k\":%d,\"sync\":true}", me->index, k);
        snprintf(want, sizeof want, "{\"t\":%d,\"k\":%d,\"sync\":true}", me->index, k);
        redwork_result res;
        redwork_status st = redwork_call(sh->c, "echo", body, 60000, &res);
        if (st == REDWORK_OK && json_eq(res.result, want)) {
            atomic_fetch_add(&sh->sync_ok, 1);
        } else if (atomic_fetch_add(&sh->sync_bad, 1) == 0) {
            snprintf(sh->bad_example, sizeof sh->bad_example, "thread %d call %d: %s %s",
                     me->index, k, redwork_status_name(st),
                     res.result ? res.result : res.error_message ? res.error_message : "");
        }
        redwork_result_free(&res);
    }
    return NULL;
}

Test(client, many_threads_ten_thousand_in_flight)
{
    start("cmt", (rw_opts){.threads = 2, .worker_extra = "queue_size = 20000\n"});
    mt_shared sh = {0};
    sh.c = open_client(NULL, 0);
    outcomes o;
    outcomes_init(&o, MT_ASYNC);
    sh.o = &o;
    sh.slots = calloc(MT_ASYNC, sizeof *sh.slots);
    cr_assert_not_null(sh.slots);
    for (int i = 0; i < MT_ASYNC; i++)
        sh.slots[i] = (slot){&o, i};
    pthread_barrier_init(&sh.go, NULL, MT_THREADS);
    mt_thread *th = calloc(MT_THREADS, sizeof *th);
    cr_assert_not_null(th);

    cr_assert_eq(kill(env.daemon.pid, SIGSTOP), 0);
    for (int t = 0; t < MT_THREADS; t++) {
        th[t] = (mt_thread){.sh = &sh, .index = t};
        cr_assert_eq(pthread_create(&th[t].t, NULL, mt_main, &th[t]), 0);
    }
    long long deadline = rw_now_ms() + 30000;
    while (atomic_load(&sh.submitted) < MT_ASYNC && rw_now_ms() < deadline)
        sleep_ms(5);
    int submitted = atomic_load(&sh.submitted);
    pthread_mutex_lock(&o.lock);
    int early = o.done;
    pthread_mutex_unlock(&o.lock);
    /* Continue the daemon before asserting, so a failure cannot leave it stopped. */
    cr_assert_eq(kill(env.daemon.pid, SIGCONT), 0);
    cr_assert_eq(submitted, MT_ASYNC, "only %d calls submitted in 30 s", submitted);
    cr_assert_eq(atomic_load(&sh.submit_failed), 0, "some calls were not published");
    cr_assert_eq(early, 0, "%d calls completed while the daemon was stopped", early);

    long long t0 = rw_now_ms();
    int done = outcomes_wait(&o, MT_ASYNC, 60000);
    cr_assert_eq(done, MT_ASYNC, "%d of %d async calls completed in 60 s", done, MT_ASYNC);
    for (int t = 0; t < MT_THREADS; t++) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        cr_assert_eq(pthread_timedjoin_np(th[t].t, NULL, &until), 0,
                     "thread %d still in redwork_call", t);
    }
    long long took = rw_now_ms() - t0;
    cr_assert_eq(atomic_load(&sh.sync_bad), 0, "%d sync calls wrong, e.g. %s",
                 atomic_load(&sh.sync_bad), sh.bad_example);
    cr_assert_eq(atomic_load(&sh.sync_ok), MT_THREADS * MT_SYNC);
    for (int i = 0; i < MT_ASYNC; i++) {
        assert_echo_slot(sh.c, &o, i, "i");
        cJSON *got = cJSON_Parse(o.res[i].result);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(got, "t");
        cr_assert(cJSON_IsNumber(t) && t->valueint == i % MT_THREADS,
                  "call %d got %s", i, o.res[i].result);
        cJSON_Delete(got);
    }
    cr_log_info("%d async + %d sync calls answered in %lld ms after SIGCONT",
                MT_ASYNC, MT_THREADS * MT_SYNC, took);
    redwork_client_close(sh.c);
    pthread_barrier_destroy(&sh.go);
    free(th);
    free(sh.slots);
    outcomes_free(&o);
    assert_no_leaks();
}

/* ---- durable replies (reply_store = list) ----------------------------------- */

Test(client, durable_reply_is_stored)
{
    start("cdur", (rw_opts){.worker_extra = "reply_store = list\nreply_ttl_ms = 60000\n"});
    redwork_client_options opt;
    redwork_client_options_init(&opt);
    char err[512] = "";
    cr_assert_eq(redwork_client_options_load(&opt, env.daemon.conf, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(opt.reply_store_list, 1);
    cr_assert_eq(opt.port, env.redis.port);
    redwork_client *c = open_with(&opt);
    redwork_result res;
    cr_assert_eq(redwork_call(c, "echo", "{\"d\":1}", CALL_TIMEOUT_MS, &res), REDWORK_OK,
                 "status %s", redwork_status_name(res.status));
    assert_json(res.result, "{\"d\":1}");

    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    char key[200];
    snprintf(key, sizeof key, "callback:%s", res.req_id);
    cr_assert_eq(rw_command_int(a, "EXISTS %s", key), 1, "no list %s", key);
    long long ttl = rw_command_int(a, "PTTL %s", key);
    cr_assert(ttl > 0 && ttl <= 60000, "PTTL %s = %lld", key, ttl);
    redisReply *r = redisCommand(a, "LINDEX %s 0", key);
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_assert(json_eq(r->str, res.reply), "stored %s, received %s", r->str, res.reply);
    freeReplyObject(r);
    redwork_result_free(&res);
    redisFree(a);
    redwork_client_close(c);
    assert_no_leaks();
}

/* A stand-in worker subscribed to CHANNEL: reads one request, then stores
 * a reply in the list without publishing it (the publish was "missed"). */
static void store_without_publish(redisContext *worker, redisContext *a,
                                  const redwork_client *c, char *req_id, size_t len)
{
    redisReply *r = rw_read_reply(worker, rw_now_ms() + 3000);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3,
              "the stand-in worker got no request");
    cJSON *req = cJSON_Parse(r->element[2]->str);
    freeReplyObject(r);
    snprintf(req_id, len, "%s", rw_str(req, "req_id"));
    assert_req_id(c, req_id);
    cr_assert_str_eq(rw_str(req, "handler"), "echo");
    cJSON_Delete(req);
    char reply[512];
    snprintf(reply, sizeof reply,
             "{\"req_id\":\"%s\",\"ok\":true,\"result\":{\"from\":\"list\"},"
             "\"handler\":\"echo\",\"worker\":\"stand-in\",\"duration_us\":1}",
             req_id);
    redisReply *p = redisCommand(a, "RPUSH callback:%s %s", req_id, reply);
    cr_assert(p && p->type == REDIS_REPLY_INTEGER && p->integer == 1);
    freeReplyObject(p);
    cr_assert_eq(rw_command_int(a, "PEXPIRE callback:%s 60000", req_id), 1);
}

Test(client, durable_reply_found_on_timeout)
{
    start_redis();
    redisContext *a = rw_connect(env.redis.port);
    redisContext *worker = rw_connect(env.redis.port);
    cr_assert(a && worker);
    redisReply *r = redisCommand(worker, "SUBSCRIBE durable-q");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);

    /* reply_store_list = 1: at its deadline the call finds the stored reply. */
    redwork_client *c = open_client("durable-q", 1);
    outcomes o;
    outcomes_init(&o, 2);
    slot s0 = {&o, 0}, s1 = {&o, 1};
    long long t0 = rw_now_ms();
    cr_assert_eq(redwork_call_async(c, "echo", "{\"v\":5}", 600, on_outcome, &s0), 0);
    char req_id[160];
    store_without_publish(worker, a, c, req_id, sizeof req_id);
    cr_assert_eq(outcomes_wait(&o, 1, 3000), 1);
    cr_assert_eq(o.res[0].status, REDWORK_OK, "status %s",
                 redwork_status_name(o.res[0].status));
    assert_json(o.res[0].result, "{\"from\":\"list\"}");
    cr_assert_str_eq(o.res[0].req_id, req_id);
    cr_assert_geq(o.at_ms[0] - t0, 550, "completed before its deadline: the reply "
                  "was never published, so only the list can have given it");
    cr_assert_eq(rw_command_int(a, "EXISTS callback:%s", req_id), 0,
                 "the client did not take the stored reply");
    redwork_client_close(c);

    /* Without reply_store_list the same call times out: the list is not read. */
    c = open_client("durable-q", 0);
    cr_assert_eq(redwork_call_async(c, "echo", "{\"v\":6}", 400, on_outcome, &s1), 0);
    store_without_publish(worker, a, c, req_id, sizeof req_id);
    cr_assert_eq(outcomes_wait(&o, 2, 3000), 2);
    cr_assert_eq(o.res[1].status, REDWORK_TIMEOUT, "status %s",
                 redwork_status_name(o.res[1].status));
    cr_assert_eq(rw_command_int(a, "EXISTS callback:%s", req_id), 1);
    redwork_client_close(c);
    outcomes_free(&o);
    redisFree(worker);
    redisFree(a);
    assert_no_leaks();
}

/* The id= of the one client connection subscribed to a pattern (the
 * redwork client's subscriber), or -1. */
static long long pattern_subscriber_id(redisContext *a)
{
    redisReply *r = redisCommand(a, "CLIENT LIST");
    long long id = -1;
    int found = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        for (char *save = NULL, *line = strtok_r(r->str, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (strstr(line, " psub=1 ")) {
                found++;
                id = strtoll(line + 3, NULL, 10); /* "id=N ..." */
            }
        }
    }
    freeReplyObject(r);
    return found == 1 ? id : -1;
}

Test(client, durable_reply_after_resubscribe)
{
    /* The client logs in as its own ACL user. Its subscriber is killed and
     * cannot come back (the user is switched off: connections already
     * authenticated keep working, new ones fail) while the daemon publishes
     * the reply to nobody; once it resubscribes it must find the stored
     * reply. */
    start("cresub", (rw_opts){.worker_extra = "reply_store = list\nreply_ttl_ms = 60000\n"});
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    redisReply *r = redisCommand(a, "ACL SETUSER rwclient on >rw-test-pw ~* &* +@all");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(r);
    redwork_client_options opt;
    redwork_client_options_init(&opt);
    opt.port = env.redis.port;
    opt.reply_store_list = 1;
    snprintf(opt.username, sizeof opt.username, "rwclient");
    snprintf(opt.password, sizeof opt.password, "rw-test-pw");
    redwork_client *c = open_with(&opt);

    outcomes o;
    outcomes_init(&o, 1);
    slot s = {&o, 0};
    long long before = publish_calls(a);
    cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":300}", 20000, on_outcome, &s), 0);
    wait_published(a, before + 1);

    r = redisCommand(a, "ACL SETUSER rwclient off");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    long long sub_id = pattern_subscriber_id(a);
    cr_assert_gt(sub_id, 0, "cannot find the client's subscriber");
    cr_assert_eq(rw_command_int(a, "CLIENT KILL ID %lld", sub_id), 1);

    /* The daemon stores (and publishes to nobody) the reply. */
    char pattern[64];
    snprintf(pattern, sizeof pattern, "callback:%s.*", redwork_client_id(c));
    long long deadline = rw_now_ms() + 5000;
    size_t stored = 0;
    while (stored == 0 && rw_now_ms() < deadline) {
        r = redisCommand(a, "KEYS %s", pattern);
        stored = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        freeReplyObject(r);
        if (stored == 0)
            sleep_ms(10);
    }
    cr_assert_eq(stored, 1, "the daemon stored no reply");
    cr_assert_eq(rw_command_int(a, "PUBSUB NUMPAT"), 0, "the client resubscribed already");
    pthread_mutex_lock(&o.lock);
    int calls = o.calls[0];
    pthread_mutex_unlock(&o.lock);
    cr_assert_eq(calls, 0, "the call ended while its reply is waiting in the list: %s",
                 redwork_status_name(o.res[0].status));

    /* While unsubscribed, a new call fails at once. */
    redwork_result res;
    long long t0 = rw_now_ms();
    cr_assert_eq(redwork_call(c, "echo", "{}", 5000, &res), REDWORK_CONNECTION,
                 "status %s", redwork_status_name(res.status));
    cr_assert_lt(rw_now_ms() - t0, 1000);
    redwork_result_free(&res);

    r = redisCommand(a, "ACL SETUSER rwclient on");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    cr_assert_eq(outcomes_wait(&o, 1, 8000), 1, "no outcome after the resubscribe");
    cr_assert_eq(o.res[0].status, REDWORK_OK, "status %s: %s",
                 redwork_status_name(o.res[0].status),
                 o.res[0].error_message ? o.res[0].error_message : "");
    assert_json(o.res[0].result, "{\"slept_ms\":300}");
    r = redisCommand(a, "KEYS %s", pattern);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 0,
              "the client did not take the stored reply");
    freeReplyObject(r);

    cr_assert_eq(redwork_call(c, "echo", "{\"after\":1}", CALL_TIMEOUT_MS, &res), REDWORK_OK,
                 "status %s", redwork_status_name(res.status));
    assert_json(res.result, "{\"after\":1}");
    redwork_result_free(&res);
    redwork_client_close(c);
    cr_assert_eq(o.calls[0], 1);
    outcomes_free(&o);
    redisFree(a);
    assert_no_leaks();
}

/* ---- failures --------------------------------------------------------------- */

Test(client, close_fails_pending_calls)
{
    start("cclose", (rw_opts){0});
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    redwork_client *c = open_client(NULL, 0);
    outcomes o;
    outcomes_init(&o, 1);
    slot s = {&o, 0};
    long long before = publish_calls(a);
    cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":300}", 10000, on_outcome, &s), 0);
    wait_published(a, before + 1);
    long long took = close_within(c, 2000);
    cr_assert_geq(took, 0, "redwork_client_close did not return within 2 s");
    cr_assert_eq(o.calls[0], 1, "close did not complete the pending call");
    cr_assert_eq(o.res[0].status, REDWORK_CONNECTION, "status %s",
                 redwork_status_name(o.res[0].status));
    cr_assert_str_eq(o.res[0].error_code, "connection");
    cr_assert(o.res[0].error_message && strstr(o.res[0].error_message, "closed"),
              "message '%s'", o.res[0].error_message);
    outcomes_free(&o);
    redisFree(a);
    assert_no_leaks();
}

Test(client, daemon_killed_mid_call)
{
    start("ckill", (rw_opts){0});
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    redwork_client *c = open_client(NULL, 0);
    outcomes o;
    outcomes_init(&o, 1);
    slot s = {&o, 0};
    long long before = publish_calls(a);
    long long t0 = rw_now_ms();
    cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":2000}", 1000, on_outcome, &s), 0);
    wait_published(a, before + 1); /* delivered while the daemon was alive */
    cr_assert_eq(kill(env.daemon.pid, SIGKILL), 0);
    cr_assert_eq(rw_daemon_wait(&env.daemon, 5000), 128 + SIGKILL);

    cr_assert_eq(outcomes_wait(&o, 1, 4000), 1, "the call hangs after the daemon died");
    long long took = o.at_ms[0] - t0;
    cr_assert_eq(o.res[0].status, REDWORK_TIMEOUT, "status %s",
                 redwork_status_name(o.res[0].status));
    cr_assert(took >= 900 && took < 2500, "ended after %lld ms (timeout 1000)", took);

    /* With no daemon left, calls now fail with no_workers (once Redis has
     * dropped the dead daemon's subscription). */
    redwork_result res = {0};
    redwork_status st = REDWORK_OK;
    long long deadline = rw_now_ms() + 3000;
    do {
        redwork_result_free(&res);
        st = redwork_call(c, "echo", "{}", 500, &res);
    } while (st != REDWORK_NO_WORKERS && rw_now_ms() < deadline);
    cr_assert_eq(st, REDWORK_NO_WORKERS, "status %s", redwork_status_name(st));
    redwork_result_free(&res);
    cr_assert_geq(close_within(c, 2000), 0, "close did not return");
    cr_assert_eq(o.calls[0], 1);
    outcomes_free(&o);
    redisFree(a);
    assert_no_leaks();
}

/* SIGKILLs the test's redis-server and reaps it. */
static void kill_redis(void)
{
    cr_assert_eq(kill(env.redis.pid, SIGKILL), 0);
    cr_assert_eq(rw_wait_exit(env.redis.pid, 5000), 128 + SIGKILL);
    env.redis.pid = 0;
}

Test(client, redis_killed_mid_call)
{
    enum { N = 3 };
    start("credis", (rw_opts){.threads = 4});
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    redwork_client *c = open_client(NULL, 0);
    outcomes o;
    outcomes_init(&o, N + 1);
    slot s[N + 1];
    long long before = publish_calls(a);
    for (int i = 0; i < N; i++) {
        s[i] = (slot){&o, i};
        cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":3000}", 20000, on_outcome,
                                        &s[i]), 0);
    }
    wait_published(a, before + N);
    redisFree(a);

    long long t0 = rw_now_ms();
    kill_redis();
    int done = outcomes_wait(&o, N, 3000);
    long long took = rw_now_ms() - t0;
    cr_assert_eq(done, N, "%d of %d pending calls ended after Redis died", done, N);
    cr_assert_lt(took, 2000, "pending calls took %lld ms to fail", took);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(o.res[i].status, REDWORK_CONNECTION, "call %d: status %s", i,
                     redwork_status_name(o.res[i].status));
        cr_assert_str_eq(o.res[i].error_code, "connection");
    }

    /* While Redis is down, a call fails at once, on the caller's thread. */
    inline_cb ic = {.caller = pthread_self()};
    t0 = rw_now_ms();
    cr_assert_eq(redwork_call_async(c, "echo", "{}", 5000, on_inline, &ic), -1);
    cr_assert_eq(atomic_load(&ic.calls), 1);
    cr_assert_eq(ic.res.status, REDWORK_CONNECTION, "status %s",
                 redwork_status_name(ic.res.status));
    cr_assert_lt(rw_now_ms() - t0, 1000);
    redwork_result_free(&ic.res);

    /* Redis comes back on the same port: the client (and the daemon)
     * reconnect on their own and calls work again. */
    cr_assert_eq(rw_redis_restart(&env.redis), 0, "redis-server did not restart");
    redwork_result res = {0};
    redwork_status st = REDWORK_CONNECTION;
    long long deadline = rw_now_ms() + 15000;
    int attempts = 0;
    while (st != REDWORK_OK && rw_now_ms() < deadline && attempts++ < 1000) {
        redwork_result_free(&res);
        st = redwork_call(c, "echo", "{\"back\":1}", 1000, &res);
        if (st != REDWORK_OK)
            sleep_ms(50);
    }
    cr_assert_eq(st, REDWORK_OK, "no call worked within 15 s of the restart: %s",
                 redwork_status_name(st));
    assert_json(res.result, "{\"back\":1}");
    redwork_result_free(&res);

    /* Redis dies again, with a call pending: close is still bounded. */
    s[N] = (slot){&o, N};
    cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":3000}", 20000, on_outcome,
                                    &s[N]), 0);
    kill_redis();
    long long closed = close_within(c, 3000);
    cr_assert_geq(closed, 0, "redwork_client_close did not return within 3 s");
    cr_assert_eq(o.calls[N], 1);
    cr_assert_eq(o.res[N].status, REDWORK_CONNECTION, "status %s",
                 redwork_status_name(o.res[N].status));
    for (int i = 0; i <= N; i++)
        cr_assert_eq(o.calls[i], 1, "call %d completed %d times", i, o.calls[i]);
    outcomes_free(&o);
    assert_no_leaks();
}

/* ---- contract checks found while writing the suite ------------------------- */

Test(client, options_load_unset_password_env)
{
    /* password_env names a variable that is not set: the daemon connects
     * without AUTH (conn_open passes NULL); the client must not crash --
     * either no password, or an error naming the variable. */
    char dir[RW_PATH_MAX], path[RW_PATH_MAX + 16];
    cr_assert_eq(rw_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/client.ini", dir);
    cr_assert_eq(rw_write_file(path, "[redis]\nport = 7004\npassword_env = RW_TEST_UNSET_PW\n"),
                 0);
    unsetenv("RW_TEST_UNSET_PW");
    redwork_client_options o;
    redwork_client_options_init(&o);
    char err[512] = "";
    int rc = redwork_client_options_load(&o, path, err, sizeof err);
    if (rc == 0) {
        cr_assert_str_eq(o.password, "");
        cr_assert_eq(o.port, 7004);
    } else {
        cr_assert_eq(rc, -1);
        cr_assert(strstr(err, "RW_TEST_UNSET_PW"), "err '%s'", err);
    }
    rw_rmdir(dir);
    assert_no_leaks();
}

Test(client, store_list_timeout_while_redis_down)
{
    /* "CB is called exactly once with the outcome, after at most TIMEOUT_MS
     * plus the time to deliver it" -- also for a client with
     * reply_store_list while Redis is unreachable. */
    start("cdown", (rw_opts){.worker_extra = "reply_store = list\n"});
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    redwork_client *c = open_client(NULL, 1);
    outcomes o;
    outcomes_init(&o, 1);
    slot s = {&o, 0};
    long long before = publish_calls(a);
    long long t0 = rw_now_ms();
    cr_assert_eq(redwork_call_async(c, "sleep", "{\"ms\":3000}", 500, on_outcome, &s), 0);
    wait_published(a, before + 1);
    redisFree(a);
    kill_redis();
    int done = outcomes_wait(&o, 1, 3000);
    cr_assert_eq(done, 1, "no outcome %lld ms after the call (timeout 500) with Redis down",
                 rw_now_ms() - t0);
    cr_assert(o.res[0].status == REDWORK_TIMEOUT || o.res[0].status == REDWORK_CONNECTION,
              "status %s", redwork_status_name(o.res[0].status));
    cr_assert_geq(close_within(c, 3000), 0);
    outcomes_free(&o);
    assert_no_leaks();
}

/* A refused XADD names XADD and Redis's own message (it used to say
 * PUBLISH): here a stream jammed by an entry with the largest id, which
 * SECURITY.md tells how to clear. */
Test(client, refused_xadd_names_the_command_and_the_reason)
{
    start_redis();
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    redisReply *r = redisCommand(a, "XADD jammed 18446744073709551615-18446744073709551615 msg x");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = env.redis.port;
    o.transport_stream = 1;
    snprintf(o.channel, sizeof o.channel, "jammed");
    redwork_client *c = open_with(&o);
    redwork_result res;
    cr_assert_eq(redwork_call(c, "echo", NULL, CALL_TIMEOUT_MS, &res), REDWORK_CONNECTION);
    cr_assert(res.error_message && strstr(res.error_message, "XADD") &&
              strstr(res.error_message, "last possible ID"), "message: %s",
              res.error_message ? res.error_message : "(none)");
    redwork_result_free(&res);
    redwork_client_close(c);
    redisFree(a);
    assert_no_leaks();
}

/* A reply_prefix with glob characters: the pattern a client of stored
 * replies subscribes to escapes them, or it would never match its own
 * reply channel ("cb[1]*:" as a glob matches "cb1...", not "cb[1]*:"). */
Test(client, glob_characters_in_reply_prefix_are_escaped)
{
    start("cglob", (rw_opts){.worker_extra = "reply_prefix = cb[1]*:\nreply_store = list\n"});
    redwork_client_options opt;
    redwork_client_options_init(&opt);
    char err[512] = "";
    cr_assert_eq(redwork_client_options_load(&opt, env.daemon.conf, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(opt.reply_prefix, "cb[1]*:");
    redwork_client *c = open_with(&opt);
    redwork_result res;
    cr_assert_eq(redwork_call(c, "echo", "{\"g\":1}", CALL_TIMEOUT_MS, &res), REDWORK_OK,
                 "status %s", redwork_status_name(res.status));
    assert_json(res.result, "{\"g\":1}");
    redwork_result_free(&res);
    /* And with one exact channel (reply_to): nothing to escape. */
    opt.reply_store_list = 0;
    redwork_client *d = open_with(&opt);
    cr_assert_eq(redwork_call(d, "echo", "{\"g\":2}", CALL_TIMEOUT_MS, &res), REDWORK_OK,
                 "status %s", redwork_status_name(res.status));
    redwork_result_free(&res);
    redwork_client_close(d);
    redwork_client_close(c);
    assert_no_leaks();
}

typedef struct caller {
    redwork_client *c;
    atomic_int stop;
    int calls, lost;
} caller;

/* Calls without pause until told to stop (at most 20,000 calls), each
 * given 50 ms: one whose PUBLISH went down with its connection waits that
 * long, as its reply could still come. */
static void *call_on(void *arg)
{
    caller *k = arg;
    while (!atomic_load(&k->stop) && k->calls < 20000) {
        redwork_result res;
        k->lost += redwork_call(k->c, "echo", NULL, 50, &res) == REDWORK_CONNECTION;
        redwork_result_free(&res);
        k->calls++;
    }
    return NULL;
}

/* With the application keeping SIGPIPE's default (death), Redis closes
 * the client's publishing connection (CLIENT KILL) every 5 ms, a hundred
 * times, while two threads call without pause, so writes race the
 * closes: the client connects again, the application lives on and its
 * disposition is untouched. O says where Redis is: plain, or TLS, where
 * the pump closes its end of the socketpair and a write to that raises
 * SIGPIPE at once (without the library's guard, the TLS run died of it in
 * three of four tries). */
static void survive_closed_publishers(const redwork_client_options *o)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, before;
    sigemptyset(&dfl.sa_mask);
    cr_assert_eq(sigaction(SIGPIPE, &dfl, &before), 0);
    redwork_client *c = open_with(o);
    redisContext *admin = rw_connect(env.redis.port);
    cr_assert_not_null(admin);
    caller k[2] = {{.c = c}, {.c = c}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, call_on, &k[i]), 0);
    int killed = 0;
    for (int round = 0; round < 100; round++) {
        redisReply *r = redisCommand(admin, "CLIENT KILL TYPE normal SKIPME yes");
        killed += r != NULL && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
        freeReplyObject(r);
        nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
    }
    for (int i = 0; i < 2; i++) {
        atomic_store(&k[i].stop, 1);
        pthread_join(t[i], NULL);
    }
    cr_log_info("%d connections killed; %d and %d calls, %d and %d lost", killed, k[0].calls,
                k[1].calls, k[0].lost, k[1].lost);
    cr_assert_geq(killed, 3, "only %d publishing connections were killed", killed);
    redwork_result res;
    cr_assert_eq(redwork_call(c, "echo", NULL, 2000, &res), REDWORK_NO_WORKERS,
                 "after the kills: %s", redwork_status_name(res.status));
    redwork_result_free(&res);
    struct sigaction now;
    cr_assert_eq(sigaction(SIGPIPE, NULL, &now), 0);
    cr_assert(now.sa_handler == SIG_DFL, "the library changed SIGPIPE's disposition");
    redisFree(admin);
    redwork_client_close(c);
    sigaction(SIGPIPE, &before, NULL);
}

Test(client, a_closed_connection_never_raises_sigpipe)
{
    start_redis();
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = env.redis.port;
    survive_closed_publishers(&o);
}

/* Every allocation of a call in the client, failed in turn (tests/oom.h;
 * hiredis's own are not counted): each call ends at once -- redwork_call
 * never waits for ever -- with its result, or with REDWORK_CONNECTION
 * "out of memory" (never REDWORK_OK without a result), and the next call
 * still gets its own answer. */
Test(client, each_allocation_failing_in_turn_fails_the_call_and_the_client_goes_on)
{
    start("coom", (rw_opts){0});
    redwork_client *c = open_client(NULL, 0);
    long n = 1;
    for (; n < 200; n++) {
        redwork_result res;
        oom_fail_nth(n);
        long long began = rw_now_ms();
        redwork_status st = redwork_call(c, "echo", "{\"a\":[1,2],\"b\":\"x\"}",
                                         CALL_TIMEOUT_MS, &res);
        int reached = oom_stop();
        cr_assert_lt(rw_now_ms() - began, CALL_TIMEOUT_MS / 2,
                     "allocation %ld: the call waited for its timeout", n);
        /* cJSON cannot tell a parse that ran out of memory from text that
         * is not JSON: the payload's is then refused as invalid, the
         * reply's is an error reply, and each says it may be either. */
        if (st == REDWORK_OK)
            assert_json(res.result, "{\"a\":[1,2],\"b\":\"x\"}");
        else
            cr_assert(reached && (st == REDWORK_CONNECTION || st == REDWORK_INVALID ||
                                  st == REDWORK_ERROR_REPLY) &&
                          (res.error_message == NULL ||
                           strstr(res.error_message, "memory") != NULL),
                      "allocation %ld: %s: %s", n, redwork_status_name(st),
                      res.error_message ? res.error_message : "(null)");
        redwork_result_free(&res);
        char payload[32];
        snprintf(payload, sizeof payload, "{\"n\":%ld}", n);
        cr_assert_eq(redwork_call(c, "echo", payload, CALL_TIMEOUT_MS, &res), REDWORK_OK,
                     "the call after allocation %ld failed: %s", n,
                     redwork_status_name(res.status));
        assert_json(res.result, payload);
        redwork_result_free(&res);
        if (!reached)
            break;
    }
    cr_log_info("walked %ld allocations", n - 1);
    cr_assert_lt(n, 200, "a call made 200 allocations or more");
    cr_assert_geq(n, 4, "only %ld allocations were walked", n - 1);
    redwork_client_close(c);
    assert_no_leaks();
}

/* ---- the TLS pump ---------------------------------------------------------- */

/* Runs `openssl ARGS...` in DIR (quietly). Returns its exit status. */
static int openssl_in(const char *dir, const char *arg, ...)
{
    char *argv[32] = {"openssl"};
    int argc = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char out[RW_PATH_MAX + 16], cwd[RW_PATH_MAX];
    snprintf(out, sizeof out, "%s/openssl.log", dir);
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(dir), 0);
    int st = rw_run_cmd(argv, NULL, out, out, 60000);
    cr_assert_eq(chdir(cwd), 0);
    return st;
}

/* Starts env.redis with a TLS port besides its plain one, a self-signed
 * certificate for 127.0.0.1 made in a new folder DIR (its path in CRT),
 * and EXTRA arguments (NULL-terminated, may be NULL). Returns the TLS
 * port. */
static int start_tls_redis(char dir[RW_PATH_MAX], char crt[RW_PATH_MAX + 16],
                           const char *const *extra)
{
    cr_assert_eq(rw_tmpdir(dir, RW_PATH_MAX), 0);
    cr_assert_eq(openssl_in(dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", "server.key", "-out", "server.crt", NULL), 0,
                 "openssl could not make a certificate");
    char key[RW_PATH_MAX + 16], tls_port[16];
    snprintf(crt, RW_PATH_MAX + 16, "%s/server.crt", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    int port = rw_free_port();
    snprintf(tls_port, sizeof tls_port, "%d", port);
    const char *args[32] = {"--tls-port", tls_port, "--tls-cert-file", crt,
                            "--tls-key-file", key, "--tls-ca-cert-file", crt,
                            "--tls-auth-clients", "no"};
    for (int i = 0; extra != NULL && extra[i] != NULL && i < 20; i++)
        args[10 + i] = extra[i];
    memset(&env, 0, sizeof env);
    cr_assert_eq(rw_redis_start_with(&env.redis, args), 0, "redis-server with TLS did not start");
    return port;
}

/* The TLS pump holds at most 1 MiB: past that it leaves the bytes in TCP,
 * so Redis's own Pub/Sub output-buffer limit (here 256 KB) drops a TLS
 * subscriber that does not read, as it drops a plain one. (A pump that
 * buffered without bound would read every byte and hide it from Redis.) */
Test(client, a_tls_subscriber_that_does_not_read_meets_redis_limit)
{
    char dir[RW_PATH_MAX], crt[RW_PATH_MAX + 16];
    static const char *const limit[] = {"--client-output-buffer-limit", "pubsub 256kb 128kb 60",
                                        NULL};
    int port = start_tls_redis(dir, crt, limit);

    char err[512] = "";
    tls_params p = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000,
                    .ca_file = crt};
    int fd = redwork_tls_connect(&p, err, sizeof err);
    cr_assert_geq(fd, 0, "%s", err);
    static const char subscribe[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nbp\r\n";
    cr_assert_eq(write(fd, subscribe, sizeof subscribe - 1), (ssize_t)(sizeof subscribe - 1));
    redisContext *a = rw_connect(env.redis.port);
    cr_assert_not_null(a);
    long long subscribers = 0;
    for (long long until = rw_now_ms() + 5000; subscribers != 1 && rw_now_ms() < until;) {
        redisReply *r = redisCommand(a, "PUBSUB NUMSUB bp");
        subscribers = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
                          ? r->element[1]->integer : 0;
        freeReplyObject(r);
    }
    cr_assert_eq(subscribers, 1, "the TLS subscriber did not subscribe");
    /* From now on it reads nothing. Up to 40 MB are published at about
     * 10 MB/s, in bursts of 100 KB: slow enough for a pump that reads
     * without bound to keep Redis's buffer for it small, so only a pump
     * that stops reading lets Redis see the subscriber fall behind. */
    char *message = malloc(1024);
    cr_assert_not_null(message);
    memset(message, 'x', 1024);
    for (int burst = 0; burst < 400 && subscribers == 1; burst++) {
        for (int i = 0; i < 100; i++)
            redisAppendCommand(a, "PUBLISH bp %b", message, (size_t)1024);
        for (int i = 0; i < 100; i++) {
            redisReply *r = NULL;
            cr_assert_eq(redisGetReply(a, (void **)&r), REDIS_OK);
            subscribers = r->type == REDIS_REPLY_INTEGER ? r->integer : subscribers;
            freeReplyObject(r);
        }
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    }
    free(message);
    cr_assert_eq(subscribers, 0, "Redis never dropped the TLS subscriber that does not read: "
                 "the pump buffered what it should have left in TCP");
    close(fd);
    redisFree(a);
    rw_rmdir(dir);
}

Test(client, a_closed_tls_connection_never_raises_sigpipe)
{
    char dir[RW_PATH_MAX], crt[RW_PATH_MAX + 16];
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = start_tls_redis(dir, crt, NULL);
    o.tls = 1;
    cr_assert_lt(strlen(crt), sizeof o.tls_ca_file);
    memcpy(o.tls_ca_file, crt, strlen(crt) + 1);
    survive_closed_publishers(&o);
    rw_rmdir(dir);
}

/* test_sdk.c -- the handler SDK 1.1 against a real redis-server and the
 * real bin/redworkd.
 *
 * Covers: deferred replies (the shipped delay handler: 200 at once on one
 * thread; finishes before, at and after timeout_ms, each request answered
 * once; a drain that waits for them, and one that reaches
 * shutdown_timeout_ms; a reload while one is open; max_deferred; a
 * thousand in flight with the daemon's memory checked); a plugin built
 * against the 1.0 header; per-thread state, raw replies, the worker id
 * and the drain flag (the tstate fixture); a reloaded handler's init
 * reading its section as the file has it now; and `redworkd --call`
 * (ok, error reply, bad JSON, unknown handler, a deferred reply, stdin,
 * config error).
 *
 * Each test gets its own redis-server and a daemon whose handlers_dir is
 * a private folder holding only the plugins it names.
 *
 * Run: make all build/tests/integration/test_sdk &&
 *      REDWORK_ROOT=$PWD REDWORK_TEST_PLUGINS=build/tests/plugins \
 *      build/tests/integration/test_sdk --jobs 2 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CALL_TIMEOUT_MS 5000

static rw_env env;
static char handlers_dir[RW_PATH_MAX + 16];

static void teardown(void)
{
    rw_env_stop(&env);
}

TestSuite(sdk, .fini = teardown, .timeout = 60);

/* The path of plugin NAME: a shipped handler, or with "fixture:" a test
 * plugin from $REDWORK_TEST_PLUGINS. */
static void plugin_path(const char *name, char *out, size_t len)
{
    const char *fixtures = getenv("REDWORK_TEST_PLUGINS");
    if (strncmp(name, "fixture:", 8) == 0)
        snprintf(out, len, "%s/%s.so", fixtures != NULL ? fixtures : "build/tests/plugins",
                 name + 8);
    else
        snprintf(out, len, "%s/handlers/%s.so", rw_root(), name);
}

/* Puts plugin NAME into the private handlers_dir (a new file each time, so
 * a reload sees it changed). */
static void install(const char *name)
{
    char src[RW_PATH_MAX], dst[RW_PATH_MAX * 2];
    plugin_path(name, src, sizeof src);
    const char *base = strchr(name, ':') != NULL ? strchr(name, ':') + 1 : name;
    snprintf(dst, sizeof dst, "%s/%s.so", handlers_dir, base);
    cr_assert_eq(rw_replace_file(src, dst, 0755), 0, "cannot install %s as %s", src, dst);
}

/* Starts Redis, then a daemon configured by O whose handlers_dir holds the
 * PLUGINS (NULL-terminated names, as install() takes them). */
static void start(const char *tag, rw_opts o, const char *const *plugins)
{
    cr_assert_eq(rw_redis_start(&env.redis), 0, "redis-server did not start");
    snprintf(handlers_dir, sizeof handlers_dir, "%s/handlers", env.redis.dir);
    cr_assert_eq(mkdir(handlers_dir, 0755), 0);
    cr_assert_eq(chmod(handlers_dir, 0755), 0); /* whatever the umask: strict_modes */
    for (const char *const *p = plugins; *p != NULL; p++)
        install(*p);
    o.handlers_dir = handlers_dir;
    cr_assert_eq(rw_daemon_config(&env.daemon, env.redis.dir, env.redis.port, tag, &o), 0);
    cr_assert_eq(rw_daemon_start(&env.daemon, 10000), 0, "redworkd did not start (tag %s)",
                 tag);
}

static cJSON *call(const char *body, const char *req_id)
{
    cJSON *reply = rw_call(env.redis.port, "request", body, req_id, NULL, CALL_TIMEOUT_MS, NULL);
    cr_assert_not_null(reply, "no reply to %s within %d ms", body, CALL_TIMEOUT_MS);
    cr_assert_str_eq(rw_str(reply, "req_id"), req_id);
    return reply;
}

static int is_ok(const cJSON *reply)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"));
}

/* A number member of the reply's result, or -1. */
static double result_number(const cJSON *reply, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(reply, "result"), name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Bodies of delay requests; ARG points to {ms, timeout_ms} (timeout_ms
 * < 0: none). */
static int delay_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)i;
    const int *v = arg;
    int n = v[1] >= 0 ? snprintf(buf, len,
                                 "{\"handler\":\"delay\",\"req_id\":\"%s\",\"ms\":%d,"
                                 "\"timeout_ms\":%d}", req_id, v[0], v[1])
                      : snprintf(buf, len, "{\"handler\":\"delay\",\"req_id\":\"%s\",\"ms\":%d}",
                                 req_id, v[0]);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int tstate_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)i;
    (void)arg;
    int n = snprintf(buf, len, "{\"handler\":\"tstate\",\"req_id\":\"%s\"}", req_id);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Waits until the daemon has received at least N messages. */
static void wait_received(long long n)
{
    long long got = rw_wait_hash_at_least(env.redis.port, env.daemon.hb_key, "received", n, 5000);
    cr_assert_geq(got, n, "the daemon received %lld of %lld", got, n);
}

/* The daemon's resident memory in KiB, from /proc. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

static const char *const delay_only[] = {"delay", "echo", NULL};

/* ---- deferred replies ------------------------------------------------------- */

/* The target: with one pool thread, 200 delays of 500 ms sent at
 * once all answer within 1.5 s, because no thread waits. */
Test(sdk, two_hundred_delays_on_one_thread)
{
    enum { N = 200 };
    int args[2] = {500, -1};
    start("d200", (rw_opts){.threads = 1}, delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "d200", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, delay_body, args), N);
    cr_assert_eq(rw_bulk_collect(&b, 5000), 0, "%d of %d answered", b.seen, N);
    long long last = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(is_ok(b.reply[i]), "request %d: %s", i, rw_error_code(b.reply[i]));
        cr_assert_eq(result_number(b.reply[i], "delayed_ms"), 500);
        last = b.arrival_ms[i] > last ? b.arrival_ms[i] : last;
    }
    cr_log_info("200 delays of 500 ms on one thread: the last reply %lld ms after the sending "
                "began", last);
    cr_assert_leq(last, 1500, "the last reply came %lld ms after the sending began", last);
    cr_assert_eq(rw_bulk_fence(&b, "request", 5000), 0);
    cr_assert_eq(rw_bulk_exactly_once(&b), N);
    rw_bulk_close(&b);
}

/* Finishes before, at and after the deadline: each request is answered
 * once -- ok, either, or 'timeout' -- and a finish after the timeout's
 * answer is dropped. */
Test(sdk, deferred_finish_against_the_deadline)
{
    enum { N = 3 };
    start("ddl", (rw_opts){.threads = 1}, delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "ddl", N), 0);
    static const int cases[N][2] = {{50, 2000}, {300, 300}, {900, 200}};
    for (int i = 0; i < N; i++) {
        char id[96], body[256];
        rw_bulk_req_id(&b, i, id, sizeof id);
        delay_body(i, id, body, sizeof body, (void *)cases[i]);
        cr_assert_geq(rw_bulk_send(&b, "request", body), 1);
    }
    cr_assert_eq(rw_bulk_collect(&b, 5000), 0, "%d of %d answered", b.seen, N);
    cr_assert(is_ok(b.reply[0]), "finished before: %s", rw_error_code(b.reply[0]));
    cr_assert(is_ok(b.reply[1]) || strcmp(rw_error_code(b.reply[1]), "timeout") == 0,
              "finished at the deadline: %s", rw_error_code(b.reply[1]));
    cr_assert_str_eq(rw_error_code(b.reply[2]), "timeout");
    cr_assert_lt(b.arrival_ms[2], 800, "the timeout waited for the handler");
    /* The 900 ms finish comes after the timeout's answer: it is dropped.
     * Pump past it, then a fence; one reply each. */
    rw_bulk_pump(&b, rw_now_ms() + 1200);
    cr_assert_eq(rw_bulk_fence(&b, "request", 5000), 0);
    cr_assert_eq(rw_bulk_exactly_once(&b), N);
    rw_bulk_close(&b);
    cJSON *still = call("{\"handler\":\"echo\",\"req_id\":\"after\",\"x\":1}", "after");
    cr_assert(is_ok(still), "the daemon stopped answering");
    cJSON_Delete(still);
}

/* Bodies racing a finish against timeout_ms: ms 0..59 against 30. */
static int race_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)arg;
    return delay_body(i, req_id, buf, len, (int[]){i % 60, 30});
}

/* Hundreds of finishes racing their own deadlines, on two threads: every
 * request is answered exactly once, ok or 'timeout' (run under TSan by
 * make tsan). */
Test(sdk, finish_and_timeout_race)
{
    enum { N = 600 };
    start("drace", (rw_opts){.threads = 2}, delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "drace", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 2, race_body, NULL), N);
    cr_assert_eq(rw_bulk_collect(&b, 10000), 0, "%d of %d answered", b.seen, N);
    int ok = rw_bulk_count_code(&b, ""), timeout = rw_bulk_count_code(&b, "timeout");
    cr_assert_eq(ok + timeout, N, "%d ok and %d timeouts of %d", ok, timeout, N);
    cr_assert_gt(ok, 0);
    cr_assert_gt(timeout, 0);
    rw_bulk_pump(&b, rw_now_ms() + 200); /* past the last finish (59 ms) */
    cr_assert_eq(rw_bulk_fence(&b, "request", 5000), 0);
    cr_assert_eq(rw_bulk_exactly_once(&b), N);
    rw_bulk_close(&b);
}

/* A drain waits for an open deferred reply, which then answers ok. */
Test(sdk, drain_waits_for_deferred_replies)
{
    enum { N = 4 };
    int args[2] = {800, -1};
    start("ddrain", (rw_opts){.threads = 1, .worker_extra = "shutdown_timeout_ms = 10000\n"},
          delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "ddr", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, delay_body, args), N);
    wait_received(N);
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    cr_assert_eq(rw_bulk_collect(&b, 5000), 0, "%d of %d answered", b.seen, N);
    cr_assert_eq(rw_bulk_count_code(&b, ""), N, "the drain did not wait for them");
    cr_assert_eq(rw_daemon_wait(&env.daemon, 5000), 0);
    cr_assert_eq(rw_bulk_exactly_once(&b), N);
    rw_bulk_close(&b);
}

/* At shutdown_timeout_ms, open deferred replies are answered
 * 'shutting_down' and the daemon exits 1 in time. */
Test(sdk, drain_deadline_answers_deferred_shutting_down)
{
    enum { N = 3 };
    int args[2] = {5000, -1};
    start("ddead", (rw_opts){.threads = 1, .worker_extra = "shutdown_timeout_ms = 300\n"},
          delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "dde", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, delay_body, args), N);
    wait_received(N);
    long long t0 = rw_now_ms();
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    cr_assert_eq(rw_bulk_collect(&b, 5000), 0, "%d of %d answered", b.seen, N);
    cr_assert_eq(rw_bulk_count_code(&b, "shutting_down"), N);
    int st = rw_daemon_wait(&env.daemon, 5000);
    cr_assert_eq(st, 1, "exit status %d", st);
    cr_assert_lt(rw_now_ms() - t0, 2500, "the drain overran shutdown_timeout_ms 300");
    rw_bulk_close(&b);
}

/* A reload replaces delay while a deferred reply of the old version is
 * open: new requests go to the new version, the old one finishes its
 * reply (its timer still runs: it is not unloaded) and only then goes. */
Test(sdk, reload_keeps_the_old_version_until_its_deferred_reply)
{
    start("dhup", (rw_opts){.threads = 1, .extra = "[log]\nlevel = debug\n"}, delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "dhup", 2), 0);
    char id[96], body[256];
    rw_bulk_req_id(&b, 0, id, sizeof id);
    delay_body(0, id, body, sizeof body, (int[]){1500, -1});
    cr_assert_geq(rw_bulk_send(&b, "request", body), 1);
    wait_received(1);
    install("delay"); /* a new file: a new version */
    cr_assert_eq(kill(env.daemon.pid, SIGHUP), 0);
    cr_assert(rw_wait_file_contains(env.daemon.log, "SIGHUP: 1 handler changes", 5000));
    rw_bulk_req_id(&b, 1, id, sizeof id);
    delay_body(1, id, body, sizeof body, (int[]){10, -1});
    cr_assert_geq(rw_bulk_send(&b, "request", body), 1);
    cr_assert_eq(rw_bulk_wait_one(&b, 1, 5000), 0, "the new version did not answer");
    cr_assert(is_ok(b.reply[1]));
    char *log = rw_read_file(env.daemon.log);
    cr_assert(log != NULL && strstr(log, "finalised the old handler 'delay'") == NULL,
              "the old version was unloaded with a deferred reply open");
    free(log);
    cr_assert_eq(rw_bulk_wait_one(&b, 0, 5000), 0, "the old version's reply never came");
    cr_assert(is_ok(b.reply[0]), "%s", rw_error_code(b.reply[0]));
    cr_assert_eq(result_number(b.reply[0], "delayed_ms"), 1500);
    cr_assert(rw_wait_file_contains(env.daemon.log, "finalised the old handler 'delay'", 5000),
              "the old version was not unloaded after its last reply");
    rw_bulk_close(&b);
}

/* Past max_deferred, redwork_reply_defer() refuses and delay answers
 * 'overloaded' at once. */
Test(sdk, max_deferred_bounds_open_replies)
{
    enum { N = 5 };
    int args[2] = {400, -1};
    start("dmax", (rw_opts){.threads = 1, .worker_extra = "max_deferred = 2\n"}, delay_only);
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "dmax", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, delay_body, args), N);
    cr_assert_eq(rw_bulk_collect(&b, 5000), 0, "%d of %d answered", b.seen, N);
    cr_assert_eq(rw_bulk_count_code(&b, ""), 2);
    cr_assert_eq(rw_bulk_count_code(&b, "overloaded"), N - 2);
    rw_bulk_close(&b);
}

/* A thousand deferred replies open at once: all answered once, and the
 * daemon's memory stays bounded and comes back to the same level for a
 * second thousand. */
Test(sdk, a_thousand_deferred_in_flight)
{
    enum { N = 1000 };
    int args[2] = {1000, -1};
    start("d1k", (rw_opts){.threads = 2}, delay_only);
    long before = rss_kib(env.daemon.pid);
    long after[2] = {0, 0}, peak = 0;
    for (int round = 0; round < 2; round++) {
        rw_bulk b;
        char tag[16];
        snprintf(tag, sizeof tag, "d1k%d", round);
        cr_assert_eq(rw_bulk_open(&b, env.redis.port, tag, N), 0);
        cr_assert_eq(rw_bulk_publish(&b, "request", 2, delay_body, args), N);
        wait_received((long long)N * (round + 1));
        long during = rss_kib(env.daemon.pid);
        peak = during > peak ? during : peak;
        cr_assert_eq(rw_bulk_collect(&b, 10000), 0, "%d of %d answered", b.seen, N);
        cr_assert_eq(rw_bulk_count_code(&b, ""), N);
        cr_assert_eq(rw_bulk_fence(&b, "request", 5000), 0);
        cr_assert_eq(rw_bulk_exactly_once(&b), N);
        rw_bulk_close(&b);
        after[round] = rss_kib(env.daemon.pid);
    }
    /* Bounds loose enough for sanitizer builds, whose allocators keep
     * freed memory a while (leaks themselves are theirs to find). */
    cr_log_info("RSS KiB: before %ld, peak %ld, after the first thousand %ld, the second %ld",
                before, peak, after[0], after[1]);
    cr_assert_gt(before, 0);
    cr_assert_lt(peak - before, 64 * 1024, "1000 open deferred replies took %ld KiB", peak - before);
    cr_assert_lt(after[1] - after[0], 16 * 1024, "RSS grew by %ld KiB from the first thousand to "
                 "the second", after[1] - after[0]);
}

/* ---- ABI, thread state, raw replies, host calls -------------------------------- */

/* A plugin compiled against the 1.0 header loads into this daemon and
 * answers. */
Test(sdk, a_plugin_built_for_1_0_runs)
{
    start("v10", (rw_opts){0}, (const char *const[]){"echo", "fixture:v1_0", NULL});
    cJSON *reply = call("{\"handler\":\"v1_0\",\"req_id\":\"old\"}", "old");
    cr_assert(is_ok(reply), "%s", rw_error_code(reply));
    cr_assert_str_eq(rw_str(cJSON_GetObjectItemCaseSensitive(reply, "result"), "abi"), "1.0");
    cJSON_Delete(reply);
}

/* Each pool thread gets its own state from thread_init, made on that
 * thread, found by handle(); thread_fini runs once per state at the
 * stop, before fini. */
Test(sdk, thread_state_per_pool_thread)
{
    enum { N = 60 };
    char dir[RW_PATH_MAX], notes[RW_PATH_MAX + 16];
    cr_assert_eq(rw_tmpdir(dir, sizeof dir), 0);
    snprintf(notes, sizeof notes, "%s/notes", dir);
    setenv("REDWORK_TEST_FINI_FILE", notes, 1); /* the daemon inherits it */
    start("tst", (rw_opts){.threads = 2}, (const char *const[]){"echo", "fixture:tstate", NULL});
    unsetenv("REDWORK_TEST_FINI_FILE");
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "tst", N), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 2, tstate_body, NULL), N);
    cr_assert_eq(rw_bulk_collect(&b, 5000), 0, "%d of %d answered", b.seen, N);
    int most[2] = {0, 0}, count[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        cr_assert(is_ok(b.reply[i]), "%s", rw_error_code(b.reply[i]));
        int t = (int)result_number(b.reply[i], "thread");
        cr_assert(t == 0 || t == 1, "thread index %d", t);
        cr_assert_eq(result_number(b.reply[i], "made_on"), t, "a state made on another thread");
        cr_assert_str_eq(rw_str(cJSON_GetObjectItemCaseSensitive(b.reply[i], "result"), "worker"),
                         env.daemon.id);
        int k = (int)result_number(b.reply[i], "requests");
        most[t] = k > most[t] ? k : most[t];
        count[t]++;
    }
    cr_assert_eq(most[0], count[0], "thread 0's state counted %d of its %d", most[0], count[0]);
    cr_assert_eq(most[1], count[1], "thread 1's state counted %d of its %d", most[1], count[1]);
    rw_bulk_close(&b);
    cr_assert_eq(rw_daemon_stop(&env.daemon, 10000), 0);
    for (int t = 0; t < 2; t++) {
        if (count[t] == 0)
            continue;
        char line[32];
        snprintf(line, sizeof line, "thread_init %d\n", t);
        cr_assert_eq(rw_file_count(notes, line), 1, "%s", line);
        snprintf(line, sizeof line, "thread_fini %d\n", t);
        cr_assert_eq(rw_file_count(notes, line), 1, "%s", line);
    }
    char *text = rw_read_file(notes);
    cr_assert_not_null(text);
    size_t n = strlen(text);
    cr_assert(n >= 12 && strcmp(text + n - 12, "fini tstate\n") == 0, "fini is not last:\n%s",
              text);
    free(text);
    rw_rmdir(dir);
}

Test(sdk, raw_replies)
{
    start("raw", (rw_opts){0}, (const char *const[]){"echo", "fixture:tstate", NULL});
    cJSON *reply = call("{\"handler\":\"tstate\",\"req_id\":\"r1\",\"mode\":\"raw\"}", "r1");
    cr_assert(is_ok(reply), "%s", rw_error_code(reply));
    rw_assert_result(reply, "{\"raw\":[1,2,3]}");
    cJSON_Delete(reply);
    reply = call("{\"handler\":\"tstate\",\"req_id\":\"r2\",\"mode\":\"badraw\"}", "r2");
    cr_assert_str_eq(rw_error_code(reply), "handler_failed");
    cJSON_Delete(reply);
}

/* redwork_host_draining() turns 1 at SIGTERM, for a handler that polls it. */
Test(sdk, a_handler_sees_the_drain_begin)
{
    start("drf", (rw_opts){.threads = 1}, (const char *const[]){"echo", "fixture:tstate", NULL});
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, env.redis.port, "drf", 1), 0);
    char id[96], body[160];
    rw_bulk_req_id(&b, 0, id, sizeof id);
    snprintf(body, sizeof body, "{\"handler\":\"tstate\",\"req_id\":\"%s\",\"mode\":\"drain\"}", id);
    cr_assert_geq(rw_bulk_send(&b, "request", body), 1);
    wait_received(1);
    cr_assert_eq(kill(env.daemon.pid, SIGTERM), 0);
    cr_assert_eq(rw_bulk_wait_one(&b, 0, 5000), 0);
    rw_assert_result(b.reply[0], "{\"draining\":true}");
    cr_assert_eq(rw_daemon_wait(&env.daemon, 5000), 0);
    rw_bulk_close(&b);
}

/* On SIGHUP a reloaded handler's init reads its section as the config
 * file has it now. */
Test(sdk, reload_reads_the_section_anew)
{
    start("sect", (rw_opts){.extra = "[handler.good]\nword = Before\n"},
          (const char *const[]){"echo", "fixture:good", NULL});
    cJSON *reply = call("{\"handler\":\"good\",\"req_id\":\"s1\"}", "s1");
    cr_assert_str_eq(rw_str(cJSON_GetObjectItemCaseSensitive(reply, "result"), "word"), "Before");
    cJSON_Delete(reply);
    char *conf = rw_read_file(env.daemon.conf);
    cr_assert_not_null(conf);
    char *at = strstr(conf, "word = Before");
    cr_assert_not_null(at);
    memcpy(at, "word = After ", 13);
    cr_assert_eq(rw_write_file(env.daemon.conf, conf), 0);
    free(conf);
    install("fixture:good");
    cr_assert_eq(kill(env.daemon.pid, SIGHUP), 0);
    cr_assert(rw_wait_file_contains(env.daemon.log, "SIGHUP: 1 handler changes", 5000));
    reply = call("{\"handler\":\"good\",\"req_id\":\"s2\"}", "s2");
    cr_assert_str_eq(rw_str(cJSON_GetObjectItemCaseSensitive(reply, "result"), "word"), "After");
    cJSON_Delete(reply);
}

/* ---- redworkd --call ------------------------------------------------------------ */

static struct {
    char dir[RW_PATH_MAX];
    char conf[RW_PATH_MAX + 16], out[RW_PATH_MAX + 16], err[RW_PATH_MAX + 16];
    char in[RW_PATH_MAX + 16];
    cJSON *reply;
} cl;

static void call_setup(void)
{
    cr_assert_eq(rw_tmpdir(cl.dir, sizeof cl.dir), 0);
    snprintf(cl.conf, sizeof cl.conf, "%s/redwork.ini", cl.dir);
    snprintf(cl.out, sizeof cl.out, "%s/stdout", cl.dir);
    snprintf(cl.err, sizeof cl.err, "%s/stderr", cl.dir);
    snprintf(cl.in, sizeof cl.in, "%s/stdin", cl.dir);
    char text[RW_PATH_MAX * 2];
    snprintf(text, sizeof text, "[worker]\nhandlers_dir = %s/handlers\n[handler.greet]\n"
             "word = Hi\n", rw_root());
    cr_assert_eq(rw_write_file(cl.conf, text), 0);
}

static void call_teardown(void)
{
    cJSON_Delete(cl.reply);
    cl.reply = NULL;
    rw_rmdir(cl.dir);
}

TestSuite(call, .init = call_setup, .fini = call_teardown, .timeout = 30);

/* Runs `redworkd -c CONF --call HANDLER [JSON]` (JSON NULL: none) with
 * STDIN_TEXT on stdin (NULL: none). Returns the exit status; cl.reply is
 * the envelope it printed, parsed (NULL if it printed none). */
static int redworkd_call(const char *conf, const char *handler, const char *json,
                         const char *stdin_text)
{
    char bin[RW_PATH_MAX];
    snprintf(bin, sizeof bin, "%s/bin/redworkd", rw_root());
    char *argv[] = {bin, "-c", (char *)conf, "--call", (char *)handler, (char *)json, NULL};
    if (stdin_text != NULL)
        cr_assert_eq(rw_write_file(cl.in, stdin_text), 0);
    int st = rw_run_cmd(argv, stdin_text != NULL ? cl.in : NULL, cl.out, cl.err, 20000);
    char *text = rw_read_file(cl.out);
    cJSON_Delete(cl.reply);
    cl.reply = text != NULL ? cJSON_Parse(text) : NULL;
    free(text);
    return st;
}

Test(call, ok_reply_exits_0)
{
    cr_assert_eq(redworkd_call(cl.conf, "greet", "{\"user_id\":\"Ann\"}", NULL), 0);
    cr_assert_not_null(cl.reply, "no envelope printed");
    cr_assert(is_ok(cl.reply));
    cr_assert_str_eq(rw_str(cl.reply, "req_id"), "call");
    cr_assert_str_eq(rw_str(cl.reply, "handler"), "greet");
    cr_assert_not_null(strstr(rw_str(cl.reply, "result"), "Hi"), "[handler.greet] not read");
}

Test(call, error_reply_exits_1)
{
    cr_assert_eq(redworkd_call(cl.conf, "fail", "{\"req_id\":\"mine\"}", NULL), 1);
    cr_assert_not_null(cl.reply);
    cr_assert_str_eq(rw_error_code(cl.reply), "handler_failed");
    cr_assert_str_eq(rw_str(cl.reply, "req_id"), "mine");
}

Test(call, bad_json_is_bad_request)
{
    cr_assert_eq(redworkd_call(cl.conf, "echo", "{\"a\":", NULL), 1);
    cr_assert_not_null(cl.reply);
    cr_assert_str_eq(rw_error_code(cl.reply), "bad_request");
    cr_assert_eq(redworkd_call(cl.conf, "echo", "[1,2]", NULL), 1);
    cr_assert_str_eq(rw_error_code(cl.reply), "bad_request");
}

Test(call, unknown_handler)
{
    cr_assert_eq(redworkd_call(cl.conf, "nosuch", "{}", NULL), 1);
    cr_assert_not_null(cl.reply);
    cr_assert_str_eq(rw_error_code(cl.reply), "unknown_handler");
}

Test(call, deferred_reply_and_its_timeout)
{
    cr_assert_eq(redworkd_call(cl.conf, "delay", "{\"ms\":50}", NULL), 0);
    rw_assert_result(cl.reply, "{\"delayed_ms\":50}");
    cr_assert_eq(redworkd_call(cl.conf, "delay", "{\"ms\":3000,\"timeout_ms\":100}", NULL), 1);
    cr_assert_str_eq(rw_error_code(cl.reply), "timeout");
}

Test(call, request_from_stdin)
{
    cr_assert_eq(redworkd_call(cl.conf, "echo", "-", "{\"x\":[1,2]}\n"), 0);
    rw_assert_result(cl.reply, "{\"x\":[1,2]}");
}

Test(call, config_error_exits_78)
{
    char bad[RW_PATH_MAX + 32];
    snprintf(bad, sizeof bad, "%s/bad.ini", cl.dir);
    cr_assert_eq(rw_write_file(bad, "[worker]\nthreads = many\n"), 0);
    cr_assert_eq(redworkd_call(bad, "echo", "{}", NULL), 78);
    cr_assert_null(cl.reply, "a reply was printed for a config error");
    snprintf(bad, sizeof bad, "%s/none.ini", cl.dir);
    char text[RW_PATH_MAX * 2];
    snprintf(text, sizeof text, "[worker]\nhandlers_dir = %s\n", cl.dir);
    cr_assert_eq(rw_write_file(bad, text), 0);
    cr_assert_eq(redworkd_call(bad, "echo", "{}", NULL), 78, "no handler loads: a config error");
}

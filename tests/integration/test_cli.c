/* test_cli.c -- bin/redwork (call, bench, stats) against a real
 * redis-server and the real bin/redworkd.
 *
 * Each test is its own process with its own temp folder and, where it
 * needs them, its own redis-server and daemon (see harness.h). The CLI is
 * run with fork/exec (rw_run_cmd): stdin from a file or /dev/null, stdout
 * and stderr into files in the test's folder, bounded by a deadline; the
 * test then reads the files. Exit codes: 0 ok, 1 error reply, 2 timeout /
 * no workers / connection, 64 usage.
 *
 * Run: make all build/tests/integration/test_cli &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_cli --jobs 2 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 15000
#define ARGS_MAX 32

static rw_env env;

/* The test's folder and what the last run printed. */
static struct {
    char dir[RW_PATH_MAX];
    char in[RW_PATH_MAX + 16];
    char out[RW_PATH_MAX + 16];
    char err[RW_PATH_MAX + 16];
    char *stdout_text;
    char *stderr_text;
    long long took_ms;
} run;

static void setup(void)
{
    memset(&env, 0, sizeof env);
    cr_assert_eq(rw_tmpdir(run.dir, sizeof run.dir), 0);
    snprintf(run.in, sizeof run.in, "%s/stdin", run.dir);
    snprintf(run.out, sizeof run.out, "%s/stdout", run.dir);
    snprintf(run.err, sizeof run.err, "%s/stderr", run.dir);
}

static void teardown(void)
{
    rw_env_stop(&env);
    free(run.stdout_text);
    free(run.stderr_text);
    run.stdout_text = run.stderr_text = NULL;
    if (run.dir[0])
        rw_rmdir(run.dir);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

static void start(const char *tag)
{
    cr_assert_eq(rw_env_start(&env, tag, &(rw_opts){0}), 0,
                 "redis-server or redworkd did not start (tag %s)", tag);
}

/* Runs `redwork ARGS...` (NULL-terminated) with STDIN_TEXT on stdin (NULL:
 * /dev/null). Returns the exit status; run.stdout_text / stderr_text hold
 * what it printed. */
static int redwork(const char *stdin_text, const char *arg, ...)
{
    char bin[RW_PATH_MAX];
    snprintf(bin, sizeof bin, "%s/bin/redwork", rw_root());
    char *argv[ARGS_MAX + 2];
    int argc = 0;
    argv[argc++] = bin;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < ARGS_MAX; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    if (stdin_text)
        cr_assert_eq(rw_write_file(run.in, stdin_text), 0);
    long long t0 = rw_now_ms();
    int st = rw_run_cmd(argv, stdin_text ? run.in : NULL, run.out, run.err,
                        RUN_TIMEOUT_MS);
    run.took_ms = rw_now_ms() - t0;
    free(run.stdout_text);
    free(run.stderr_text);
    run.stdout_text = rw_read_file(run.out);
    run.stderr_text = rw_read_file(run.err);
    cr_assert(run.stdout_text && run.stderr_text, "cannot read the outputs");
    cr_assert_neq(st, -1, "redwork did not finish within %d ms", RUN_TIMEOUT_MS);
    return st;
}

#define expect_exit(got, want)                                                 \
    cr_assert_eq((got), (want), "exit status %d, expected %d\nstdout: %s\nstderr: %s", \
                 (got), (want), run.stdout_text, run.stderr_text)

/* The port as a string, for --port. */
static const char *port_arg(int port)
{
    static char buf[16];
    snprintf(buf, sizeof buf, "%d", port);
    return buf;
}

static int lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* stdout parsed as one JSON value on one line (cJSON_Delete it). */
static cJSON *stdout_json(void)
{
    cr_assert_eq(lines(run.stdout_text), 1, "stdout is not one line: %s", run.stdout_text);
    cJSON *j = cJSON_Parse(run.stdout_text);
    cr_assert_not_null(j, "stdout is not JSON: %s", run.stdout_text);
    return j;
}

static double num(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    cr_assert(cJSON_IsNumber(v), "no number %s in %s", name, run.stdout_text);
    return v->valuedouble;
}

/* ---- call ------------------------------------------------------------------ */

Test(cli, call_ok)
{
    start("lcall");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "call", "echo",
                     "{\"a\":1}", NULL);
    expect_exit(st, 0);
    cJSON *reply = stdout_json();
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")));
    rw_assert_result(reply, "{\"a\":1}");
    cr_assert(strncmp(rw_str(reply, "req_id"), "rw-", 3) == 0, "req_id %s",
              rw_str(reply, "req_id"));
    cr_assert_str_eq(rw_str(reply, "handler"), "echo");
    cr_assert_str_eq(rw_str(reply, "worker"), env.daemon.id);
    cJSON_Delete(reply);
    cr_assert_str_eq(run.stderr_text, "", "stderr on success: %s", run.stderr_text);

    /* No payload: {}. */
    st = redwork(NULL, "--port", port_arg(env.redis.port), "call", "echo", NULL);
    expect_exit(st, 0);
    reply = stdout_json();
    rw_assert_result(reply, "{}");
    cJSON_Delete(reply);
}

Test(cli, call_error_reply_exits_1)
{
    start("lerr");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "call", "nope", "{}", NULL);
    expect_exit(st, 1);
    cJSON *reply = stdout_json();
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ok")));
    cr_assert_str_eq(rw_error_code(reply), "unknown_handler", "stdout: %s", run.stdout_text);
    cJSON_Delete(reply);

    st = redwork(NULL, "--port", port_arg(env.redis.port), "call", "fail", "{}", NULL);
    expect_exit(st, 1);
    cr_assert(strstr(run.stdout_text, "handler_failed"), "stdout: %s", run.stdout_text);
}

Test(cli, call_no_workers_exits_2)
{
    start("lnow");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "--channel", "nobody",
                     "call", "echo", NULL);
    expect_exit(st, 2);
    cr_assert(strstr(run.stderr_text, "no_workers"), "stderr: %s", run.stderr_text);
    cr_assert_str_eq(run.stdout_text, "");
    cr_assert_lt(run.took_ms, 3000, "no_workers took %lld ms", run.took_ms);
}

Test(cli, call_timeout_exits_2)
{
    start("ltmo");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "--timeout", "200",
                     "call", "sleep", "{\"ms\":1500}", NULL);
    expect_exit(st, 2);
    cr_assert(strstr(run.stderr_text, "timeout"), "stderr: %s", run.stderr_text);
    cr_assert_str_eq(run.stdout_text, "");
    cr_assert_lt(run.took_ms, 1400, "the 200 ms timeout took %lld ms", run.took_ms);
}

Test(cli, call_reads_stdin)
{
    start("lstdin");
    int st = redwork("{\"b\":2}\n", "--port", port_arg(env.redis.port), "call", "echo",
                     "-", NULL);
    expect_exit(st, 0);
    cJSON *reply = stdout_json();
    rw_assert_result(reply, "{\"b\":2}");
    cJSON_Delete(reply);

    st = redwork("not json", "--port", port_arg(env.redis.port), "call", "echo", "-", NULL);
    expect_exit(st, 64);
}

Test(cli, config_file)
{
    start("lconf");
    /* The daemon's own ini: the port comes from [redis]. */
    int st = redwork(NULL, "-c", env.daemon.conf, "call", "echo", "{\"c\":3}", NULL);
    expect_exit(st, 0);
    cJSON *reply = stdout_json();
    rw_assert_result(reply, "{\"c\":3}");
    cr_assert_str_eq(rw_str(reply, "worker"), env.daemon.id);
    cJSON_Delete(reply);
    st = redwork(NULL, "--config", env.daemon.conf, "call", "echo", NULL);
    expect_exit(st, 0);

    /* A flag overrides the file. */
    int free_port = rw_free_port();
    st = redwork(NULL, "-c", env.daemon.conf, "--port", port_arg(free_port), "call",
                 "echo", NULL);
    expect_exit(st, 2);

    /* A bad file: usage, naming file:line. */
    char bad[RW_PATH_MAX + 16], where[RW_PATH_MAX + 32];
    snprintf(bad, sizeof bad, "%s/bad.ini", run.dir);
    cr_assert_eq(rw_write_file(bad, "[redis]\nport = 1\n[worker]\nbogus_key = 2\n"), 0);
    st = redwork(NULL, "-c", bad, "call", "echo", NULL);
    expect_exit(st, 64);
    snprintf(where, sizeof where, "%s:4", bad);
    cr_assert(strstr(run.stderr_text, where), "stderr does not name %s: %s", where,
              run.stderr_text);
}

/* A redis-server on a Unix socket only: the daemon finds it by [redis]
 * url, the CLI by --url and by REDIS_URL; -c/--url/--host/--port each
 * take precedence over REDIS_URL. */
Test(cli, unix_socket_by_url_and_redis_url)
{
    cr_assert_eq(rw_redis_start_unix(&env.redis), 0, "no redis-server on a Unix socket");
    char url[RW_PATH_MAX + 32];
    snprintf(url, sizeof url, "unix://%s?db=2", env.redis.sock);
    cr_assert_eq(rw_daemon_config(&env.daemon, env.redis.dir, 0, "lunix",
                                  &(rw_opts){.redis_url = url}), 0);
    cr_assert_eq(rw_daemon_start(&env.daemon, 10000), 0, "redworkd did not start on %s", url);

    int st = redwork(NULL, "--url", url, "call", "echo", "{\"u\":1}", NULL);
    expect_exit(st, 0);
    cJSON *reply = stdout_json();
    rw_assert_result(reply, "{\"u\":1}");
    cr_assert_str_eq(rw_str(reply, "worker"), env.daemon.id);
    cJSON_Delete(reply);

    cr_assert_eq(setenv("REDIS_URL", url, 1), 0);
    expect_exit(redwork(NULL, "-u", url, "call", "echo", NULL), 0);
    expect_exit(redwork(NULL, "call", "echo", "{\"env\":true}", NULL), 0);
    reply = stdout_json();
    rw_assert_result(reply, "{\"env\":true}");
    cJSON_Delete(reply);

    /* The daemon took ?db=2: its heartbeat is there, not in database 0. */
    redisContext *r = rw_connect_redis(&env.redis);
    cr_assert_not_null(r);
    cr_assert_eq(rw_command_int(r, "EXISTS %s", env.daemon.hb_key), 0);
    redisReply *ok = redisCommand(r, "SELECT 2");
    cr_assert(ok && ok->type == REDIS_REPLY_STATUS, "SELECT 2 failed");
    freeReplyObject(ok);
    cr_assert_eq(rw_command_int(r, "EXISTS %s", env.daemon.hb_key), 1);
    redisFree(r);

    /* A flag wins over REDIS_URL: nothing listens on this port. */
    int port = rw_free_port();
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    expect_exit(redwork(NULL, "--port", port_arg(port), "call", "echo", NULL), 2);
    cr_assert(strstr(run.stderr_text, where), "stderr does not name %s: %s", where,
              run.stderr_text);

    /* Bad URLs are usage errors naming what is wrong. */
    expect_exit(redwork(NULL, "--url", "redis://u:pw@127.0.0.1", "call", "echo", NULL), 64);
    cr_assert(strstr(run.stderr_text, "password"), "stderr: %s", run.stderr_text);
    cr_assert_null(strstr(run.stderr_text, "pw@"), "the password is echoed: %s",
                   run.stderr_text);
    cr_assert_eq(setenv("REDIS_URL", "http://nowhere", 1), 0);
    expect_exit(redwork(NULL, "call", "echo", NULL), 64);
    cr_assert(strstr(run.stderr_text, "REDIS_URL"), "stderr: %s", run.stderr_text);
    unsetenv("REDIS_URL");
}

Test(cli, nothing_listening_exits_2)
{
    int port = rw_free_port();
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    int st = redwork(NULL, "--port", port_arg(port), "call", "echo", "{}", NULL);
    expect_exit(st, 2);
    cr_assert(strstr(run.stderr_text, where), "stderr does not name %s: %s", where,
              run.stderr_text);
    st = redwork(NULL, "--port", port_arg(port), "bench", "--requests", "5", NULL);
    expect_exit(st, 2);
    st = redwork(NULL, "--port", port_arg(port), "stats", NULL);
    expect_exit(st, 2);
}

Test(cli, usage_errors_exit_64)
{
    /* Nothing listens on the port: a usage error must be found first. */
    const char *p = port_arg(rw_free_port());
    char port[16];
    snprintf(port, sizeof port, "%s", p);
    expect_exit(redwork(NULL, "--port", port, "call", "echo", "not json", NULL), 64);
    cr_assert(strstr(run.stderr_text, "JSON"), "stderr: %s", run.stderr_text);
    expect_exit(redwork(NULL, "--port", port, "call", "echo", "[1,2]", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, NULL), 64);
    cr_assert(strstr(run.stderr_text, "usage"), "stderr: %s", run.stderr_text);
    expect_exit(redwork(NULL, "--port", port, "frobnicate", NULL), 64);
    cr_assert(strstr(run.stderr_text, "frobnicate"), "stderr: %s", run.stderr_text);
    expect_exit(redwork(NULL, "--port", port, "call", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "call", "echo", "{}", "extra", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "--timeout", "0", "call", "echo", NULL), 64);
    expect_exit(redwork(NULL, "--port", "70000", "call", "echo", NULL), 64);
    expect_exit(redwork(NULL, "--port", "abc", "call", "echo", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "--timeout", "5x", "call", "echo", NULL), 64);
    expect_exit(redwork(NULL, "--bogus-flag", "call", "echo", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "stats", "--bogus", NULL), 64);
    expect_exit(redwork(NULL, "--help", NULL), 0);
    cr_assert(strstr(run.stdout_text, "usage"), "--help: %s", run.stdout_text);
}

/* ---- bench ------------------------------------------------------------------- */

Test(cli, bench_requests_json)
{
    start("lbench");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "bench", "--requests", "500",
                     "--concurrency", "8", "--json", NULL);
    expect_exit(st, 0);
    cJSON *j = stdout_json();
    cr_assert(cJSON_IsObject(j));
    cr_assert_eq(num(j, "requests"), 500);
    cr_assert_eq(num(j, "ok"), 500);
    cr_assert_eq(num(j, "errors"), 0);
    cr_assert_eq(num(j, "timeouts"), 0);
    cr_assert_eq(num(j, "concurrency"), 8);
    cr_assert_gt(num(j, "rps"), 0);
    double p50 = num(j, "p50_us"), p99 = num(j, "p99_us");
    cr_assert_gt(p50, 0);
    cr_assert_geq(p99, p50);
    cr_assert_geq(num(j, "max_us"), p99);
    cr_assert_leq(num(j, "min_us"), p50);
    cr_assert_str_eq(rw_str(j, "handler"), "echo");
    cJSON_Delete(j);

    /* Every request an error reply: exit 1, counted as errors. */
    st = redwork(NULL, "--port", port_arg(env.redis.port), "bench", "--requests", "20",
                 "--concurrency", "4", "--handler", "nope", "--json", NULL);
    expect_exit(st, 1);
    j = stdout_json();
    cr_assert_eq(num(j, "requests"), 20);
    cr_assert_eq(num(j, "ok"), 0);
    cr_assert_eq(num(j, "errors"), 20);
    cJSON_Delete(j);
}

/* --hgrm writes HdrHistogram's percentile text: a header, levels rising
 * to 1 with values that never fall, the last line holding every request,
 * and the summary lines. */
Test(cli, bench_hgrm)
{
    start("lhgrm");
    char path[RW_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/latency.hgrm", run.dir);
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "bench", "--requests", "300",
                     "--concurrency", "8", "--hgrm", path, NULL);
    expect_exit(st, 0);
    char *text = rw_read_file(path);
    cr_assert_not_null(text, "no %s", path);
    static const char header[] = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
    cr_assert(strncmp(text, header, sizeof header - 1) == 0, "header: %.80s", text);
    double last_value = 0, last_level = -1;
    long long last_count = 0;
    int lines = 0;
    for (char *line = strtok(text + sizeof header - 1, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            break;
        double value, level;
        long long count;
        cr_assert_geq(sscanf(line, "%lf %lf %lld", &value, &level, &count), 3, "line: %s", line);
        cr_assert_geq(value, last_value, "values fall at: %s", line);
        cr_assert_geq(level, last_level, "levels fall at: %s", line);
        cr_assert_geq(count, last_count);
        last_value = value;
        last_level = level;
        last_count = count;
        lines++;
    }
    cr_assert_gt(lines, 10);
    cr_assert_eq(last_level, 1.0);
    cr_assert_eq(last_count, 300, "the last line holds every request");
    free(text);
    text = rw_read_file(path);
    cr_assert(strstr(text, "Total count    =          300]") != NULL, "%s", text);
    free(text);
}

Test(cli, bench_duration_json)
{
    start("ldur");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "bench", "--duration", "1",
                     "--concurrency", "4", "--json", NULL);
    expect_exit(st, 0);
    cJSON *j = stdout_json();
    double n = num(j, "requests");
    cr_assert_gt(n, 0);
    cr_assert_eq(num(j, "ok"), n);
    double secs = num(j, "seconds");
    cr_assert(secs >= 0.95 && secs < 5, "seconds %g for --duration 1", secs);
    cr_assert_lt(run.took_ms, 6000);
    cJSON_Delete(j);

    /* The table form. */
    st = redwork(NULL, "--port", port_arg(env.redis.port), "bench", "--requests", "50",
                 "--concurrency", "2", NULL);
    expect_exit(st, 0);
    cr_assert(strstr(run.stdout_text, "requests 50"), "stdout: %s", run.stdout_text);
}

Test(cli, bench_bad_flags_exit_64)
{
    const char *p = port_arg(rw_free_port());
    char port[16];
    snprintf(port, sizeof port, "%s", p);
    expect_exit(redwork(NULL, "--port", port, "bench", "--requests", "5", "--duration", "1",
                        NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "--concurrency", "0", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "--requests", "-3", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "--payload", "-1", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "--bogus", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "--requests", "abc", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "--duration", "1s", NULL), 64);
    expect_exit(redwork(NULL, "--port", port, "bench", "extra", NULL), 64);
}

/* ---- stats ------------------------------------------------------------------- */

Test(cli, stats_lists_the_daemon)
{
    start("lstats");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "stats", "--json", NULL);
    expect_exit(st, 0);
    cJSON *j = stdout_json();
    cr_assert(cJSON_IsArray(j), "not an array: %s", run.stdout_text);
    cr_assert_eq(cJSON_GetArraySize(j), 1, "stdout: %s", run.stdout_text);
    const cJSON *w = cJSON_GetArrayItem(j, 0);
    cr_assert_str_eq(rw_str(w, "id"), env.daemon.id);
    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)env.daemon.pid);
    cr_assert_str_eq(rw_str(w, "pid"), pid);
    cr_assert(strstr(rw_str(w, "handlers"), "echo"), "handlers %s", rw_str(w, "handlers"));
    cr_assert(strstr(rw_str(w, "channels"), "request"), "channels %s",
              rw_str(w, "channels"));
    cJSON_Delete(j);

    st = redwork(NULL, "--port", port_arg(env.redis.port), "stats", NULL);
    expect_exit(st, 0);
    cr_assert_eq(lines(run.stdout_text), 2, "header and one worker: %s", run.stdout_text);
    const char *nl = strchr(run.stdout_text, '\n');
    cr_assert(nl && memmem(run.stdout_text, (size_t)(nl - run.stdout_text), "ID", 2),
              "no ID in the header: %s", run.stdout_text);
    cr_assert(strstr(nl, env.daemon.id), "no %s in: %s", env.daemon.id, run.stdout_text);
    cr_assert(strstr(nl, pid), "no pid %s in: %s", pid, run.stdout_text);
}

Test(cli, stats_without_daemon_is_empty)
{
    cr_assert_eq(rw_redis_start(&env.redis), 0);
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "stats", "--json", NULL);
    expect_exit(st, 0);
    cJSON *j = stdout_json();
    cr_assert(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0, "stdout: %s", run.stdout_text);
    cJSON_Delete(j);
    st = redwork(NULL, "--port", port_arg(env.redis.port), "stats", NULL);
    expect_exit(st, 0);
    cr_assert_eq(lines(run.stdout_text), 1, "only the header: %s", run.stdout_text);
    cr_assert(strstr(run.stdout_text, "ID"));
}

/* ---- top --------------------------------------------------------------------- */

static char tmux_socket[RW_PATH_MAX + 16];

/* Runs `tmux -S <socket> ARGS...`; returns its exit status, with what it
 * printed in run.stdout_text. */
static int tmux(const char *arg, ...)
{
    char *argv[ARGS_MAX + 4];
    int argc = 0;
    argv[argc++] = "tmux";
    argv[argc++] = "-S";
    argv[argc++] = tmux_socket;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL && argc < ARGS_MAX; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    int st = rw_run_cmd(argv, NULL, run.out, run.err, RUN_TIMEOUT_MS);
    free(run.stdout_text);
    run.stdout_text = rw_read_file(run.out);
    return st;
}

/* Captures the pane until it shows NEEDLE, bounded. Returns 1 if it did. */
static int pane_shows(const char *needle, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    do {
        if (tmux("capture-pane", "-p", "-t", "top", NULL) == 0 && run.stdout_text &&
            strstr(run.stdout_text, needle))
            return 1;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    } while (rw_now_ms() < deadline);
    return 0;
}

/* The largest REQ/S on the pane (the fifth column of worker rows). */
static double pane_max_rate(const char *id_a, const char *id_b)
{
    double best = -1;
    char *text = run.stdout_text ? strdup(run.stdout_text) : NULL;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (strncmp(line, id_a, strlen(id_a)) != 0 && strncmp(line, id_b, strlen(id_b)) != 0)
            continue;
        char c1[64], c2[64], c3[64], c4[64], c5[64];
        if (sscanf(line, "%63s %63s %63s %63s %63s", c1, c2, c3, c4, c5) == 5 && atof(c5) > best)
            best = atof(c5);
    }
    free(text);
    return best;
}

/* The handler row NAME on the pane (HANDLER REQ/S ERR/S P99): its rate
 * into *RATE (left alone when absent) and its p99 text into P99. */
static void pane_handler_row(const char *name, double *rate, char *p99, size_t len)
{
    char *text = run.stdout_text ? strdup(run.stdout_text) : NULL;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        char c1[64], c2[64], c3[64], c4[64];
        if (sscanf(line, "%63s %63s %63s %63s", c1, c2, c3, c4) == 4 && strcmp(c1, name) == 0) {
            *rate = atof(c2);
            snprintf(p99, len, "%s", c4);
        }
    }
    free(text);
}

/* `redwork top` in an 80-column tmux pane, two daemons with metrics
 * endpoints (one on a wildcard address): both rows, numbers that move
 * under load, a handler row with its rate and p99 from the endpoints, `s`
 * changes the sort, `q` exits 0. */
Test(cli, top_under_tmux)
{
    char metrics_a[64], metrics_b[64];
    snprintf(metrics_a, sizeof metrics_a, "[metrics]\nlisten = 127.0.0.1:%d\n", rw_free_port());
    snprintf(metrics_b, sizeof metrics_b, "[metrics]\nlisten = 0.0.0.0:%d\n", rw_free_port());
    cr_assert_eq(rw_env_start(&env, "ltop", &(rw_opts){.extra = metrics_a}), 0);
    rw_daemon second;
    cr_assert_eq(rw_daemon_config(&second, env.redis.dir, env.redis.port, "ltop2",
                                  &(rw_opts){.claim_on = 1, .extra = metrics_b}), 0);
    cr_assert_eq(rw_daemon_start(&second, 10000), 0, "the second daemon did not start");
    snprintf(tmux_socket, sizeof tmux_socket, "%s/tmux.sock", run.dir);
    char cmd[RW_PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "%s/bin/redwork --port %d top", rw_root(), env.redis.port);
    cr_assert_eq(tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", cmd, NULL), 0,
                 "tmux did not start");
    tmux("set-option", "-t", "top", "remain-on-exit", "on", NULL);

    int both = pane_shows(env.daemon.id, 5000) && pane_shows(second.id, 5000);
    cr_assert(both, "the pane does not show both workers:\n%s", run.stdout_text);
    cr_assert(pane_shows("sort id", 1000));

    /* Load, in the background: the rates move while it runs. */
    char bin[RW_PATH_MAX + 16], port[16];
    snprintf(bin, sizeof bin, "%s/bin/redwork", rw_root());
    snprintf(port, sizeof port, "%d", env.redis.port);
    pid_t load = fork();
    cr_assert_geq(load, 0);
    if (load == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(bin, "redwork", "--port", port, "bench", "--duration", "4", "--concurrency", "8",
              (char *)NULL);
        _exit(127);
    }
    double moved = 0;
    for (long long deadline = rw_now_ms() + 4000; moved <= 0 && rw_now_ms() < deadline;) {
        tmux("capture-pane", "-p", "-t", "top", NULL);
        moved = pane_max_rate(env.daemon.id, second.id);
    }
    cr_assert_gt(moved, 0, "no REQ/S moved under load:\n%s", run.stdout_text);
    /* Both endpoints scraped: echo's row has a rate and a p99 from them. */
    double echo_rate = -1;
    char p99[64] = "";
    for (long long deadline = rw_now_ms() + 4000; echo_rate <= 0 && rw_now_ms() < deadline;) {
        tmux("capture-pane", "-p", "-t", "top", NULL);
        pane_handler_row("echo", &echo_rate, p99, sizeof p99);
    }
    cr_assert_gt(echo_rate, 0, "no echo row with a rate under load:\n%s", run.stdout_text);
    cr_assert(*p99 && strcmp(p99, "-") != 0, "echo has no p99:\n%s", run.stdout_text);
    cr_assert_null(strstr(run.stdout_text, "metrics "), "an endpoint did not answer:\n%s",
                   run.stdout_text);
    cr_assert_eq(rw_wait_exit(load, 10000), 0, "the load failed");

    tmux("send-keys", "-t", "top", "s", NULL);
    cr_assert(pane_shows("sort req/s", 3000), "s did not change the sort:\n%s",
              run.stdout_text);
    tmux("send-keys", "-t", "top", "q", NULL);
    long long deadline = rw_now_ms() + 5000;
    int dead = 0;
    while (!dead && rw_now_ms() < deadline) {
        tmux("display-message", "-p", "-t", "top", "#{pane_dead} #{pane_dead_status}", NULL);
        dead = run.stdout_text && strncmp(run.stdout_text, "1 ", 2) == 0;
    }
    cr_assert(dead, "q did not end top: %s", run.stdout_text);
    cr_assert_eq(atoi(run.stdout_text + 2), 0, "top exited %s", run.stdout_text + 2);
    tmux("kill-server", NULL);
    rw_daemon_stop(&second, 5000);
}

/* ---- hostile arguments ------------------------------------------------------- */

/* --duration refuses what is not a finite positive number of seconds. */
Test(cli, bench_duration_must_be_finite)
{
    static const char *const bad[] = {"nan", "inf", "-inf", "1e400", "-1", "0", "3x"};
    int port = rw_free_port(); /* refused before any connection */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = redwork(NULL, "--port", port_arg(port), "bench", "--duration", bad[i], NULL);
        cr_expect_eq(st, 64, "--duration %s: exit %d", bad[i], st);
        cr_expect_eq(run.stdout_text ? strlen(run.stdout_text) : 0, 0);
    }
}

/* --json is valid JSON whatever the handler's name. */
Test(cli, bench_json_with_any_handler_name)
{
    start("lbjson");
    int st = redwork(NULL, "--port", port_arg(env.redis.port), "bench", "--handler",
                     "we\"ird\\name\n", "--requests", "3", "--json", NULL);
    cr_assert_eq(st, 1, "exit %d (the handler does not exist: error replies)", st);
    cJSON *j = stdout_json();
    cr_assert_str_eq(rw_str(j, "handler"), "we\"ird\\name\n");
    cr_assert_eq(cJSON_GetObjectItem(j, "errors")->valuedouble, 3);
    cJSON_Delete(j);
}

/* stats that cannot reach Redis says why on stderr and nothing on stdout. */
Test(cli, stats_failure_prints_nothing_on_stdout)
{
    int port = rw_free_port();
    for (int json = 0; json < 2; json++) {
        int st = json ? redwork(NULL, "--port", port_arg(port), "stats", "--json", NULL)
                      : redwork(NULL, "--port", port_arg(port), "stats", NULL);
        cr_assert_eq(st, 2);
        cr_assert_eq(run.stdout_text ? strlen(run.stdout_text) : 0, 0, "stdout: %s",
                     run.stdout_text);
        cr_assert(run.stderr_text && *run.stderr_text, "no reason on stderr");
    }
}

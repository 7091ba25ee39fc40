/* test_metrics.c -- the metrics endpoint: /metrics and /healthz.
 *
 * Each test starts its own redis-server and a daemon with [metrics] listen
 * on a free loopback port, sends a known mix of requests, and reads the
 * endpoint as Prometheus would. What they check:
 *
 * - after ok, unknown-handler, failing-handler and overloaded requests, the
 *   counts by handler and outcome equal the replies the client got, the
 *   histograms count what ran, and `promtool check metrics` accepts the
 *   whole exposition; other paths are 404;
 * - with processes = 2 the one endpoint (the master's) serves the sum of
 *   both workers, and a worker killed and respawned takes no count back;
 * - /healthz goes 503 within 2 s of Redis stopping and 200 within 2 s of
 *   its return;
 * - [log] requests = on writes one line per request answered, valid JSON
 *   with format = json, naming req_id, handler and outcome;
 * - a real Prometheus server on loopback, scraping the daemon every
 *   second: sum(redwork_requests_total), asked over its HTTP API, equals
 *   the requests sent;
 * - the shipped alert rules pass `promtool check rules`.
 *
 * Run: make all build/tests/integration/test_metrics &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_metrics */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "harness.h"

static struct {
    rw_env env;
    int port; /* the metrics endpoint's */
    char extra[256];
} fx;

static void teardown(void)
{
    rw_env_stop(&fx.env);
}

TestSuite(metrics, .fini = teardown, .timeout = 60);

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* Starts Redis and a daemon as O says, with [metrics] listen on a free
 * port and O.extra (more sections) after it. */
static void start(const char *tag, rw_opts o)
{
    fx.port = rw_free_port();
    snprintf(fx.extra, sizeof fx.extra, "[metrics]\nlisten = 127.0.0.1:%d\n%s", fx.port,
             o.extra != NULL ? o.extra : "");
    o.extra = fx.extra;
    cr_assert_eq(rw_env_start(&fx.env, tag, &o), 0, "redis-server or redworkd did not start");
}

/* GET /metrics, which must answer 200. */
static char *scrape(void)
{
    int status = 0;
    char *text = rw_http_get(fx.port, "/metrics", &status, 2000);
    cr_assert_not_null(text, "no answer from /metrics on port %d", fx.port);
    cr_assert_eq(status, 200, "/metrics answered %d", status);
    return text;
}

static double metric(const char *name)
{
    char *text = scrape();
    double v = rw_metric(text, name);
    free(text);
    return v;
}

/* Polls sample NAME until it is WANT, bounded. Returns the last value. */
static double wait_metric(const char *name, double want, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    double v = metric(name);
    while (v != want && rw_now_ms() < deadline) {
        sleep_ms(20);
        v = metric(name);
    }
    return v;
}

/* One at a time: 20 echo, 5 to an unknown handler, 5 fail; then a burst
 * of 10 sleep 100 ms, most of which one thread and two places in the
 * queue answer overloaded. */
enum { ECHO = 20, UNKNOWN = 5, FAIL = 5, SLEEP = 10, MIX = ECHO + UNKNOWN + FAIL + SLEEP };

static int sleep_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)i;
    (void)arg;
    int n = snprintf(buf, len, "{\"handler\":\"sleep\",\"req_id\":\"%s\",\"ms\":100}", req_id);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Calls HANDLER once; returns the reply's error code ("" for ok). */
static const char *call_one(const char *handler, int i)
{
    static char code[32];
    char id[48], body[128];
    snprintf(id, sizeof id, "%s-%d", handler, i);
    snprintf(body, sizeof body, "{\"handler\":\"%s\",\"req_id\":\"%s\"}", handler, id);
    cJSON *reply = rw_call(fx.env.redis.port, "request", body, id, NULL, 5000, NULL);
    cr_assert_not_null(reply, "no reply to %s", id);
    snprintf(code, sizeof code, "%s", rw_error_code(reply));
    cJSON_Delete(reply);
    return code;
}

/* Writes TEXT to a file in the env's folder and runs promtool ARG on it. */
static int promtool(const char *arg, const char *text)
{
    char in[RW_PATH_MAX + 32], out[RW_PATH_MAX + 32];
    snprintf(in, sizeof in, "%s/metrics.txt", fx.env.redis.dir);
    snprintf(out, sizeof out, "%s/promtool.out", fx.env.redis.dir);
    cr_assert_eq(rw_write_file(in, text), 0);
    char *argv[] = {"promtool", "check", (char *)arg, NULL};
    int rc = rw_run_cmd(argv, in, out, out, 20000);
    if (rc != 0) {
        char *said = rw_read_file(out);
        fprintf(stderr, "promtool check %s:\n%s\n", arg, said ? said : "");
        free(said);
    }
    return rc;
}

Test(metrics, counts_match_a_known_mix)
{
    start("mix", (rw_opts){.threads = 1, .worker_extra = "queue_size = 2\n"});
    for (int i = 0; i < ECHO; i++)
        cr_assert_str_eq(call_one("echo", i), "");
    for (int i = 0; i < UNKNOWN; i++)
        cr_assert_str_eq(call_one("nope", i), "unknown_handler");
    for (int i = 0; i < FAIL; i++)
        cr_assert_str_eq(call_one("fail", i), "handler_failed");
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, fx.env.redis.port, "sl", SLEEP), 0);
    cr_assert_eq(rw_bulk_publish(&b, "request", 1, sleep_body, NULL), SLEEP);
    cr_assert_eq(rw_bulk_collect(&b, 15000), 0, "%d of %d answered", b.seen, SLEEP);
    int sleep_ok = 0, overloaded = 0;
    for (int i = 0; i < SLEEP; i++) {
        const char *code = rw_error_code(b.reply[i]);
        sleep_ok += *code == '\0';
        overloaded += strcmp(code, "overloaded") == 0;
    }
    rw_bulk_close(&b);
    cr_assert_gt(overloaded, 0, "no sleep request was overloaded: the mix lacks that outcome");
    cr_assert_eq(sleep_ok + overloaded, SLEEP);

    char *text = scrape();
    cr_assert_eq(rw_metric(text, "redwork_requests_total{handler=\"echo\",outcome=\"ok\"}"), ECHO);
    cr_assert_eq(rw_metric(text, "redwork_requests_total{handler=\"\",outcome=\"unknown_handler\"}"),
                 UNKNOWN);
    cr_assert_eq(rw_metric(text, "redwork_requests_total{handler=\"fail\",outcome=\"handler_failed\"}"),
                 FAIL);
    cr_assert_eq(rw_metric(text, "redwork_requests_total{handler=\"sleep\",outcome=\"ok\"}"),
                 sleep_ok);
    cr_assert_eq(rw_metric(text, "redwork_requests_total{handler=\"sleep\",outcome=\"overloaded\"}"),
                 overloaded);
    cr_assert_eq(rw_metric(text, "redwork_messages_received_total"), MIX);
    cr_assert_eq(rw_metric(text, "redwork_request_duration_seconds_count{handler=\"echo\"}"), ECHO);
    cr_assert_eq(rw_metric(text, "redwork_request_duration_seconds_count{handler=\"sleep\"}"),
                 sleep_ok);
    cr_assert_geq(rw_metric(text, "redwork_request_duration_seconds_sum{handler=\"sleep\"}"),
                  0.1 * sleep_ok, "the sleeps took 100 ms each");
    cr_assert_eq(rw_metric(text, "redwork_queue_wait_seconds_count"), ECHO + FAIL + sleep_ok,
                 "the queue wait counts every request whose handler ran");
    cr_assert_eq(rw_metric(text, "redwork_queue_capacity"), 2);
    cr_assert_eq(rw_metric(text, "redwork_healthy"), 1);
    cr_assert_eq(rw_metric(text, "redwork_workers"), 1);
    cr_assert_gt(rw_metric(text, "process_resident_memory_bytes"), 1e6);
    cr_assert_eq(promtool("metrics", text), 0, "promtool check metrics refused the exposition");
    free(text);

    int status = 0;
    char *body = rw_http_get(fx.port, "/nothing", &status, 2000);
    cr_assert_eq(status, 404);
    free(body);
    body = rw_http_get(fx.port, "/healthz", &status, 2000);
    cr_assert_eq(status, 200);
    cr_assert_str_eq(body, "ok\n");
    free(body);
}

static int echo_body(int i, const char *req_id, char *buf, size_t len, void *arg)
{
    (void)i;
    (void)arg;
    int n = snprintf(buf, len, "{\"handler\":\"echo\",\"req_id\":\"%s\"}", req_id);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Sends N echo requests tagged TAG and waits for every reply. */
static void send_echo(const char *tag, int n)
{
    rw_bulk b;
    cr_assert_eq(rw_bulk_open(&b, fx.env.redis.port, tag, n), 0);
    cr_assert_gt(rw_bulk_publish(&b, "request", 1, echo_body, NULL), 0);
    cr_assert_eq(rw_bulk_collect(&b, 15000), 0, "%d of %d answered", b.seen, n);
    cr_assert_eq(rw_bulk_exactly_once(&b), n);
    rw_bulk_close(&b);
}

#define ECHO_OK "redwork_requests_total{handler=\"echo\",outcome=\"ok\"}"

Test(metrics, two_processes_sum_and_survive_a_respawn)
{
    enum { N = 200 };
    fx.port = rw_free_port();
    snprintf(fx.extra, sizeof fx.extra, "[metrics]\nlisten = 127.0.0.1:%d\n", fx.port);
    cr_assert_eq(rw_redis_start(&fx.env.redis), 0);
    cr_assert_eq(rw_daemon_config(&fx.env.daemon, fx.env.redis.dir, fx.env.redis.port, "two",
                                  &(rw_opts){.threads = 1, .claim_on = 1, .extra = fx.extra,
                                             .worker_extra = "processes = 2\n"}), 0);
    if (rw_daemon_start_workers(&fx.env.daemon, 2, 10000) != 0) {
        char *log = rw_read_file(fx.env.daemon.log);
        cr_assert_fail("the workers did not start; the daemon's log:\n%s", log ? log : "");
    }
    cr_assert_eq(wait_metric("redwork_workers", 2, 5000), 2);

    send_echo("a", N);
    cr_assert_eq(wait_metric(ECHO_OK, N, 2000), N, "the sum over the workers");
    cr_assert_eq(metric("redwork_messages_received_total"), 2 * N,
                 "each worker received every request");

    char key[192];
    rw_worker_key(&fx.env.daemon, 2, key, sizeof key);
    redisContext *c = rw_connect(fx.env.redis.port);
    long pid = rw_worker_pid(c, key);
    redisFree(c);
    cr_assert_gt(pid, 0);
    kill((pid_t)pid, SIGKILL);
    long respawned = rw_wait_worker_pid_change(fx.env.redis.port, key, pid, 10000);
    cr_assert_gt(respawned, 0, "worker 2 was not respawned");
    cr_assert_eq(metric(ECHO_OK), N, "a count went back with the worker's death");

    send_echo("b", N);
    cr_assert_eq(wait_metric(ECHO_OK, 2 * N, 2000), 2 * N, "counted on after the respawn");
    cr_assert_eq(wait_metric("redwork_healthy", 1, 5000), 1);
    char *text = scrape();
    cr_assert_eq(promtool("metrics", text), 0);
    free(text);
}

/* The status of GET /healthz polled until it is WANT, bounded: the time it
 * took in ms, or -1. */
static long long wait_health(int want, int timeout_ms)
{
    long long t0 = rw_now_ms();
    while (rw_now_ms() - t0 <= timeout_ms) {
        int status = 0;
        char *body = rw_http_get(fx.port, "/healthz", &status, 1000);
        free(body);
        if (status == want)
            return rw_now_ms() - t0;
        sleep_ms(20);
    }
    return -1;
}

Test(metrics, healthz_follows_redis)
{
    start("health", (rw_opts){.threads = 1});
    cr_assert_neq(wait_health(200, 2000), -1, "not healthy at start");
    rw_redis_kill(&fx.env.redis);
    long long down = wait_health(503, 2000);
    cr_assert_neq(down, -1, "/healthz still 200 two seconds after Redis stopped");
    int status = 0;
    char *body = rw_http_get(fx.port, "/healthz", &status, 1000);
    cr_assert(body && strstr(body, "not connected to redis"), "the reason: %s", body);
    free(body);
    cr_assert_eq(rw_redis_restart(&fx.env.redis), 0);
    long long up = wait_health(200, 2000);
    cr_assert_neq(up, -1, "/healthz not 200 two seconds after Redis returned");
    fprintf(stderr, "healthz: 503 %lld ms after Redis stopped, 200 %lld ms after it returned\n",
            down, up);
    cr_assert_geq(metric("redwork_redis_reconnects_total"), 1);
}

Test(metrics, shipped_alert_rules_pass_promtool)
{
    char path[RW_PATH_MAX + 64], out[RW_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/etc/prometheus/redwork.rules.yml", rw_root());
    cr_assert_eq(rw_tmpdir(fx.env.redis.dir, sizeof fx.env.redis.dir), 0);
    snprintf(out, sizeof out, "%s/promtool.out", fx.env.redis.dir);
    char *argv[] = {"promtool", "check", "rules", path, NULL};
    int rc = rw_run_cmd(argv, NULL, out, out, 20000);
    char *said = rw_read_file(out);
    cr_assert_eq(rc, 0, "promtool check rules %s:\n%s", path, said ? said : "");
    cr_assert(said && strstr(said, "SUCCESS"), "%s", said);
    free(said);
}

/* sum(redwork_requests_total) as Prometheus on PORT answers it, or -1. */
static double prometheus_sum(int port)
{
    int status = 0;
    char *body = rw_http_get(port, "/api/v1/query?query=sum(redwork_requests_total)", &status,
                             2000);
    double v = -1;
    cJSON *j = body != NULL && status == 200 ? cJSON_Parse(body) : NULL;
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "data"), "result");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(result, 0), "value");
    const cJSON *text = cJSON_GetArrayItem(value, 1);
    if (cJSON_IsString(text))
        v = atof(text->valuestring);
    cJSON_Delete(j);
    free(body);
    return v;
}

Test(metrics, a_prometheus_server_scrapes_it)
{
    enum { N = 50 };
    start("prom", (rw_opts){.threads = 2});
    send_echo("p", N);

    int port = rw_free_port();
    char conf[RW_PATH_MAX + 32], data[RW_PATH_MAX + 32], log[RW_PATH_MAX + 32], text[512];
    snprintf(conf, sizeof conf, "%s/prometheus.yml", fx.env.redis.dir);
    snprintf(data, sizeof data, "%s/prometheus-data", fx.env.redis.dir);
    snprintf(log, sizeof log, "%s/prometheus.log", fx.env.redis.dir);
    snprintf(text, sizeof text,
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "scrape_configs:\n  - job_name: redwork\n    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n", fx.port);
    cr_assert_eq(rw_write_file(conf, text), 0);
    char config_arg[RW_PATH_MAX + 64], data_arg[RW_PATH_MAX + 64], listen_arg[64];
    snprintf(config_arg, sizeof config_arg, "--config.file=%s", conf);
    snprintf(data_arg, sizeof data_arg, "--storage.tsdb.path=%s", data);
    snprintf(listen_arg, sizeof listen_arg, "--web.listen-address=127.0.0.1:%d", port);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execlp("prometheus", "prometheus", config_arg, data_arg, listen_arg, (char *)NULL);
        _exit(127);
    }
    long long deadline = rw_now_ms() + 45000;
    double v = -1;
    while (v != N && rw_now_ms() < deadline) {
        sleep_ms(250);
        v = prometheus_sum(port);
    }
    kill(pid, SIGTERM);
    rw_wait_exit(pid, 10000);
    if (v != N) {
        char *said = rw_read_file(log);
        fprintf(stderr, "prometheus log:\n%s\n", said ? said : "");
        free(said);
    }
    cr_assert_eq(v, N, "Prometheus says sum(redwork_requests_total) = %g, sent %d", v, N);
}

Test(metrics, request_log_lines)
{
    start("rlog", (rw_opts){.threads = 1, .extra = "[log]\nrequests = on\nformat = json\n"});
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(call_one("echo", i), "");
    cr_assert_str_eq(call_one("nope", 0), "unknown_handler");
    cr_assert_geq(rw_wait_file_count(fx.env.daemon.log, "req_id=", 4, 2000), 4,
                  "not four request lines");
    char *log = rw_read_file(fx.env.daemon.log);
    int lines = 0, unknown = 0;
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strstr(line, "req_id=") == NULL)
            continue;
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j, "not JSON: %s", line);
        const char *msg = rw_str(j, "msg");
        lines++;
        unknown += strstr(msg, "req_id=nope-0 handler=- outcome=unknown_handler wait_us=-1") != NULL;
        cr_assert(strstr(msg, "handler=echo outcome=ok") != NULL || strstr(msg, "nope-0"), "%s",
                  msg);
        cJSON_Delete(j);
    }
    free(log);
    cr_assert_eq(lines, 4);
    cr_assert_eq(unknown, 1, "the unknown handler's line");
}

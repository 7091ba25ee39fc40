/* test_stream.c -- end to end tests of transport = stream: requests XADDed
 * to a stream key and read by consumer groups (DESIGN.md, "Many processes,
 * many hosts"), against a real redis-server and the real bin/redworkd.
 *
 * Every test starts its own redis-server (free loopback port, temp folder)
 * and its own daemons with a config written for it; the fixture is per test
 * process, so the suite runs with --jobs 2. Every wait has a deadline and
 * every load is bounded in count and time. Faults are injected for real:
 * SIGKILL of a daemon, SIGKILL of redis-server (restarted on its port from
 * its append-only file), a handler that calls abort() in a supervised
 * worker, SIGTERM with a shutdown timeout shorter than the running work.
 *
 * Each fault test prints one line to stderr,
 *     FAULT <name>: sent N answered M lost L
 * where sent counts the requests whose XADD Redis took (XINFO STREAM's
 * entries-added, so a call whose XADD died with a Redis restart is not
 * sent), answered those whose caller got the handler's reply, and
 * lost = sent - answered. The stream transport is at-least-once: the tests
 * assert that nothing sent is lost.
 *
 * Run: make all build/tests/integration/test_stream &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_stream --jobs 2 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "redwork/client.h"

#define STREAM "jobs"
#define DEAD "jobs:dead"
#define START_TIMEOUT_MS 10000
#define MAX_DAEMONS 3
#define MAX_WORKER_PIDS 16

#define MAX_GOT 4

struct load;
static void load_release(struct load *l);
static void load_free(struct load *l);

/* The test's own fixture (each test is its own process). What a test
 * allocates lives here, so that a failed assert leaves nothing for the
 * leak check: teardown frees it. */
static struct {
    rw_redis redis;
    rw_daemon d[MAX_DAEMONS];
    redisContext *a;      /* the test's own connection: XLEN, XPENDING, ... */
    redisContext *sub;    /* subscribed to some replies */
    redwork_client *client;
    struct load *load;
    redwork_result res;   /* of a call */
    redisReply *reply;    /* an XRANGE */
    cJSON *got[MAX_GOT];  /* replies collected */
    /* Worker processes of supervised daemons (they do not die with their
     * master): killed at teardown if still there. */
    long worker_pids[MAX_WORKER_PIDS];
    int worker_pid_count;
} fx;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* SIGKILLs PID if it is still a redworkd (the pid may have been reused). */
static void kill_if_redworkd(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    char *cmd = rw_read_file(path);
    if (cmd && strstr(cmd, "redworkd"))
        kill((pid_t)pid, SIGKILL);
    free(cmd);
}

static void teardown(void)
{
    if (fx.load)
        load_release(fx.load); /* stops its driver; freed after the client */
    if (fx.client)
        redwork_client_close(fx.client);
    fx.client = NULL;
    if (fx.load)
        load_free(fx.load);
    redwork_result_free(&fx.res);
    if (fx.reply)
        freeReplyObject(fx.reply);
    fx.reply = NULL;
    for (int k = 0; k < MAX_GOT; k++) {
        cJSON_Delete(fx.got[k]);
        fx.got[k] = NULL;
    }
    if (fx.sub)
        redisFree(fx.sub);
    fx.sub = NULL;
    for (int k = 0; k < MAX_DAEMONS; k++) {
        if (fx.d[k].pid <= 0)
            continue;
        kill(fx.d[k].pid, SIGCONT);
        rw_daemon_stop(&fx.d[k], 10000);
    }
    for (int i = 0; i < fx.worker_pid_count; i++)
        kill_if_redworkd(fx.worker_pids[i]);
    if (fx.a)
        redisFree(fx.a);
    fx.a = NULL;
    rw_redis_stop(&fx.redis);
}

TestSuite(stream, .fini = teardown, .timeout = 60);

/* ---- redis-server ---------------------------------------------------------- */

/* Forks redis-server on PORT in R's folder, with an append-only file when
 * AOF (fsync before every reply), and waits until it answers PING (after
 * loading its data). Returns 0 with R->pid set, or -1. */
static int redis_spawn(rw_redis *r, int port, int aof)
{
    char logpath[RW_PATH_MAX + 16], portstr[16];
    snprintf(logpath, sizeof logpath, "%s/redis.log", r->dir);
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execlp("redis-server", "redis-server", "--port", portstr, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", aof ? "yes" : "no",
               "--appendfsync", "always", "--dir", r->dir, (char *)NULL);
        _exit(127);
    }
    long long deadline = rw_now_ms() + 10000;
    while (rw_now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return -1;
        redisContext *c = rw_connect(port);
        if (c) {
            redisReply *p = redisCommand(c, "PING");
            int ok = p && p->type == REDIS_REPLY_STATUS && strcmp(p->str, "PONG") == 0;
            if (p)
                freeReplyObject(p);
            redisFree(c);
            if (ok) {
                r->pid = pid;
                r->port = port;
                return 0;
            }
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    rw_wait_exit(pid, 5000);
    return -1;
}

/* Starts the test's redis-server (AOF: with an fsynced append-only file)
 * and opens fx.a on it. */
static void start_redis(int aof)
{
    memset(&fx.redis, 0, sizeof fx.redis);
    cr_assert_eq(rw_tmpdir(fx.redis.dir, sizeof fx.redis.dir), 0);
    int started = -1;
    for (int attempt = 0; attempt < 5 && started != 0; attempt++) {
        int port = rw_free_port();
        if (port > 0)
            started = redis_spawn(&fx.redis, port, aof);
    }
    cr_assert_eq(started, 0, "redis-server did not start (log in %s)", fx.redis.dir);
    fx.a = rw_connect(fx.redis.port);
    cr_assert_not_null(fx.a);
}

/* SIGKILLs the AOF redis-server and starts it again on the same port and
 * folder, so that it reloads its append-only file. */
static void crash_and_restart_redis(void)
{
    kill(fx.redis.pid, SIGKILL);
    rw_wait_exit(fx.redis.pid, 5000);
    fx.redis.pid = 0;
    int started = -1;
    for (int attempt = 0; attempt < 20 && started != 0; attempt++) {
        started = redis_spawn(&fx.redis, fx.redis.port, 1);
        if (started != 0)
            sleep_ms(100);
    }
    cr_assert_eq(started, 0, "redis-server did not restart on port %d", fx.redis.port);
    redisFree(fx.a);
    fx.a = rw_connect(fx.redis.port);
    cr_assert_not_null(fx.a);
}

/* ---- daemons --------------------------------------------------------------- */

/* Writes the config of daemon K (its files in <redis dir>/<tag>): transport
 * = stream on STREAM, THREADS threads, and EXTRA lines for [worker]. */
static rw_daemon *daemon_config(int k, const char *tag, int threads, const char *extra)
{
    char dir[RW_PATH_MAX + 80], lines[1024];
    snprintf(dir, sizeof dir, "%s/%s", fx.redis.dir, tag);
    cr_assert(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    snprintf(lines, sizeof lines, "transport = stream\n%s", extra ? extra : "");
    rw_opts o = {.channels = STREAM, .threads = threads, .worker_extra = lines};
    cr_assert_eq(rw_daemon_config(&fx.d[k], dir, fx.redis.port, tag, &o), 0);
    return &fx.d[k];
}

static void assert_started(const rw_daemon *d, int ok)
{
    if (!ok) {
        char *log = rw_read_file(d->log);
        cr_assert_fail("redworkd %s did not start; its log:\n%s", d->id,
                       log ? log : "(none)");
    }
}

/* Starts D (one process) and waits for its heartbeat key. */
static void start_daemon(rw_daemon *d)
{
    redisReply *r = redisCommand(fx.a, "DEL %s", d->hb_key); /* of a killed run */
    if (r)
        freeReplyObject(r);
    assert_started(d, rw_daemon_start(d, START_TIMEOUT_MS) == 0);
}

/* Starts D with processes = N: forks redworkd and waits until the heartbeat
 * keys <hb_key>-1 .. -N exist; records the workers' pids. */
static void start_supervised(rw_daemon *d, int n)
{
    char bin[RW_PATH_MAX];
    snprintf(bin, sizeof bin, "%s/bin/redworkd", rw_root());
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0 || dup2(fd, 1) < 0)
            _exit(127);
        execl(bin, bin, "-c", d->conf, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    long long deadline = rw_now_ms() + START_TIMEOUT_MS;
    int ready = 0;
    while (!ready && rw_now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            d->pid = 0;
            break;
        }
        ready = 1;
        for (int k = 1; k <= n && ready; k++)
            ready = rw_command_int(fx.a, "EXISTS %s-%d", d->hb_key, k) == 1;
        if (!ready)
            sleep_ms(10);
    }
    assert_started(d, ready);
    for (int k = 1; k <= n && fx.worker_pid_count < MAX_WORKER_PIDS; k++) {
        char key[200];
        snprintf(key, sizeof key, "%s-%d", d->hb_key, k);
        char *v = rw_hget(fx.a, key, "pid");
        if (v)
            fx.worker_pids[fx.worker_pid_count++] = strtol(v, NULL, 10);
        free(v);
    }
}

/* ---- the stream, seen from Redis -------------------------------------------- */

static long long xlen(const char *key)
{
    return rw_command_int(fx.a, "XLEN %s", key);
}

/* Entries of STREAM pending in group redwork (delivered, not acked). */
static long long xpending(void)
{
    redisReply *r = redisCommand(fx.a, "XPENDING %s redwork", STREAM);
    long long n = LLONG_MIN;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    if (r)
        freeReplyObject(r);
    return n;
}

/* XINFO STREAM's entries-added: how many XADDs KEY ever took. */
static long long entries_added(const char *key)
{
    redisReply *r = redisCommand(fx.a, "XINFO STREAM %s", key);
    long long n = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[i]->str, "entries-added") == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_INTEGER)
            n = r->element[i + 1]->integer;
    if (r)
        freeReplyObject(r);
    return n;
}

/* Polls until XPENDING and XLEN of STREAM are both 0, bounded. Returns 1
 * if they are. */
static int wait_stream_empty(int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    for (;;) {
        if (xpending() == 0 && xlen(STREAM) == 0)
            return 1;
        if (rw_now_ms() >= deadline)
            return 0;
        sleep_ms(20);
    }
}

typedef struct entry_id {
    char s[64];
} entry_id;

/* XADD STREAM * msg BODY; returns the entry id ("" if refused). */
static entry_id xadd(const char *body)
{
    entry_id id = {""};
    redisReply *r = redisCommand(fx.a, "XADD %s * msg %s", STREAM, body);
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(id.s, sizeof id.s, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return id;
}

/* The value of FIELD in a stream entry reply [id, [f, v, ...]], or NULL. */
static const char *entry_field(const redisReply *e, const char *field)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(f->element[i]->str, field) == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING)
            return f->element[i + 1]->str;
    return NULL;
}

/* A connection SUBSCRIBEd (confirmed) to callback:<id> for each of IDS
 * (fx.sub: teardown frees it). */
static redisContext *subscribe_replies(const char *const *ids, int n)
{
    redisContext *s = fx.sub = rw_connect(fx.redis.port);
    cr_assert_not_null(s);
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(s, "SUBSCRIBE callback:%s", ids[i]);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3,
                  "SUBSCRIBE callback:%s not confirmed", ids[i]);
        freeReplyObject(r);
    }
    return s;
}

/* The next reply envelope on subscriber S (by DEADLINE_MS), or NULL. */
static cJSON *next_reply(redisContext *s, long long deadline_ms)
{
    for (;;) {
        redisReply *r = rw_read_reply(s, deadline_ms);
        if (!r)
            return NULL;
        cJSON *j = NULL;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0)
            j = cJSON_ParseWithLength(r->element[2]->str, r->element[2]->len);
        freeReplyObject(r);
        if (j)
            return j;
    }
}

/* Collects replies on S until each of IDS[0..N-1] has one (stored in
 * OUT[i]), bounded. Returns how many have one. */
static int collect_replies(redisContext *s, const char *const *ids, int n,
                           cJSON **out, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    int got = 0;
    for (int i = 0; i < n; i++)
        got += out[i] != NULL;
    while (got < n) {
        cJSON *j = next_reply(s, deadline);
        if (!j)
            break;
        int used = 0;
        for (int i = 0; i < n && !used; i++)
            if (!out[i] && strcmp(rw_str(j, "req_id"), ids[i]) == 0) {
                out[i] = j;
                got++;
                used = 1;
            }
        if (!used)
            cJSON_Delete(j);
    }
    return got;
}

/* ---- libredwork ------------------------------------------------------------- */

static redwork_client *open_stream_client(int store_list)
{
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = fx.redis.port;
    snprintf(o.channel, sizeof o.channel, "%s", STREAM);
    o.transport_stream = 1;
    o.reply_store_list = store_list;
    char err[512] = "";
    redwork_client *c = fx.client = redwork_client_open(&o, err, sizeof err);
    cr_assert_not_null(c, "redwork_client_open: %s", err);
    return c;
}

static void close_client(void)
{
    redwork_client_close(fx.client);
    fx.client = NULL;
}

/* A load: N echo calls {"i":<i>} (or, with SLEEP_MS > 0, sleep calls
 * {"ms":SLEEP_MS}) from a driver thread, at most WINDOW in flight, the next
 * one issued when one ends (or every INTERVAL_US at most).
 * A call that fails before it is sent (Redis away) makes the driver pause
 * 20 ms, so a load runs on through a Redis restart. */
typedef struct load load;
typedef struct load_slot {
    load *l;
    int i;
} load_slot;

struct load {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    redwork_client *c;
    int n, window, timeout_ms, interval_us, sleep_ms;
    long long issue_until_ms; /* stop issuing after this */
    /* under lock */
    int issued, inflight, done, ok, not_sent, dup, wrong, finished;
    int *calls;               /* callbacks per call */
    redwork_status *status;
    char **code;              /* error code of a call that failed */
    unsigned char *unsent;    /* redwork_call_async returned -1 */
    load_slot *slots;
    pthread_t thread;
    int started;
};

static void load_cb(redwork_result *res, void *arg)
{
    load_slot *s = arg;
    load *l = s->l;
    int right = 0;
    if (res->status == REDWORK_OK && res->result) {
        cJSON *j = cJSON_Parse(res->result);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, l->sleep_ms > 0 ? "slept_ms" : "i");
        right = cJSON_IsNumber(v) && cJSON_GetArraySize(j) == 1 &&
                v->valueint == (l->sleep_ms > 0 ? l->sleep_ms : s->i);
        cJSON_Delete(j);
    }
    pthread_mutex_lock(&l->lock);
    if (l->calls[s->i]++ == 0) {
        l->status[s->i] = res->status;
        l->done++;
        l->inflight--;
        if (res->status == REDWORK_OK) {
            l->ok++;
            l->wrong += !right;
        } else if (res->error_code) {
            l->code[s->i] = strdup(res->error_code);
        }
    } else {
        l->dup++;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    redwork_result_free(res);
}

static void *load_main(void *arg)
{
    load *l = arg;
    long long t0_us = rw_now_ms() * 1000;
    for (int i = 0; i < l->n; i++) {
        pthread_mutex_lock(&l->lock);
        while (l->inflight >= l->window && rw_now_ms() < l->issue_until_ms) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += 20 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&l->cond, &l->lock, &until);
        }
        int stop = rw_now_ms() >= l->issue_until_ms;
        if (!stop) {
            l->inflight++;
            l->issued++;
        }
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        char payload[64];
        if (l->sleep_ms > 0)
            snprintf(payload, sizeof payload, "{\"ms\":%d}", l->sleep_ms);
        else
            snprintf(payload, sizeof payload, "{\"i\":%d}", i);
        l->slots[i] = (load_slot){l, i};
        if (redwork_call_async(l->c, l->sleep_ms > 0 ? "sleep" : "echo", payload, l->timeout_ms, load_cb,
                               &l->slots[i]) != 0) {
            pthread_mutex_lock(&l->lock);
            l->unsent[i] = 1;
            l->not_sent++;
            pthread_mutex_unlock(&l->lock);
            sleep_ms(20);
        }
        if (l->interval_us > 0) {
            long long next_us = t0_us + (long long)(i + 1) * l->interval_us;
            long long wait_us = next_us - rw_now_ms() * 1000;
            if (wait_us > 0)
                sleep_ms(wait_us / 1000);
        }
    }
    pthread_mutex_lock(&l->lock);
    l->finished = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static load *load_start_sleep(redwork_client *c, int n, int window,
                              int timeout_ms, int interval_us, int issue_for_ms,
                              int sleep_ms_each)
{
    cr_assert_null(fx.load, "one load at a time");
    load *l = fx.load = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    l->c = c;
    l->n = n;
    l->window = window;
    l->timeout_ms = timeout_ms;
    l->interval_us = interval_us;
    l->sleep_ms = sleep_ms_each;
    l->issue_until_ms = rw_now_ms() + issue_for_ms;
    l->calls = calloc((size_t)n, sizeof *l->calls);
    l->status = calloc((size_t)n, sizeof *l->status);
    l->code = calloc((size_t)n, sizeof *l->code);
    l->unsent = calloc((size_t)n, 1);
    l->slots = calloc((size_t)n, sizeof *l->slots);
    cr_assert(l->calls && l->status && l->code && l->unsent && l->slots);
    cr_assert_eq(pthread_create(&l->thread, NULL, load_main, l), 0);
    l->started = 1;
    return l;
}

static load *load_start(redwork_client *c, int n, int window, int timeout_ms,
                        int interval_us, int issue_for_ms)
{
    return load_start_sleep(c, n, window, timeout_ms, interval_us, issue_for_ms, 0);
}

/* Calls that have an outcome. */
static int load_done(load *l)
{
    pthread_mutex_lock(&l->lock);
    int done = l->done;
    pthread_mutex_unlock(&l->lock);
    return done;
}

/* 1 once the driver has issued everything and every call has an outcome. */
static int load_over(load *l)
{
    pthread_mutex_lock(&l->lock);
    int over = l->finished && l->done == l->issued;
    pthread_mutex_unlock(&l->lock);
    return over;
}

/* Waits (bounded) until the load is over, then joins the driver. Returns
 * 1 if it was over in time. */
static int load_wait(load *l, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    while (!load_over(l) && rw_now_ms() < deadline)
        sleep_ms(10);
    int over = load_over(l);
    load_release(l);
    return over;
}

/* Stops the driver (if it still issues calls) and joins it. */
static void load_release(load *l)
{
    if (l->started) {
        pthread_mutex_lock(&l->lock);
        l->issue_until_ms = 0;
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
        l->started = 0;
    }
}

/* Prints what the calls that did not end REDWORK_OK ended with. */
static void load_report(load *l, const char *name)
{
    int shown = 0;
    for (int i = 0; i < l->n && shown < 10; i++)
        if (l->calls[i] > 0 && l->status[i] != REDWORK_OK) {
            fprintf(stderr, "%s: call %d: %s (%s)%s\n", name, i,
                    redwork_status_name(l->status[i]), l->code[i] ? l->code[i] : "",
                    l->unsent[i] ? ", not sent" : "");
            shown++;
        }
}

/* Frees L: after its client is closed (no callback runs any more). */
static void load_free(load *l)
{
    for (int i = 0; l->code && i < l->n; i++)
        free(l->code[i]);
    free(l->calls);
    free(l->status);
    free(l->code);
    free(l->unsent);
    free(l->slots);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
    if (fx.load == l)
        fx.load = NULL;
}

/* One async call's outcome (into fx.res), waited for with a deadline.
 * Static: the call may end in teardown's redwork_client_close(). */
static pthread_mutex_t one_lock = PTHREAD_MUTEX_INITIALIZER;
static int one_calls;

static void one_cb(redwork_result *res, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&one_lock);
    if (one_calls++ == 0)
        fx.res = *res;
    else
        redwork_result_free(res);
    pthread_mutex_unlock(&one_lock);
}

/* Waits (bounded) for one_cb. Returns how many times it ran. */
static int one_wait(int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&one_lock);
        int calls = one_calls;
        pthread_mutex_unlock(&one_lock);
        if (calls > 0 || rw_now_ms() >= deadline)
            return calls;
        sleep_ms(10);
    }
}

/* How many times NEEDLE occurs in file PATH. */
static int file_count(const char *path, const char *needle)
{
    char *text = rw_read_file(path);
    int n = 0;
    for (const char *at = text; at && (at = strstr(at, needle)) != NULL; at += strlen(needle))
        n++;
    free(text);
    return n;
}

static void fault_line(const char *name, long long sent, long long answered)
{
    fprintf(stderr, "FAULT %s: sent %lld answered %lld lost %lld\n", name, sent,
            answered, sent - answered);
}

/* ---- 1. basics -------------------------------------------------------------- */

/* Entries added while no daemon runs are served when one starts; one whose
 * timeout_ms passed (counted from the entry id's time) gets 'timeout'. */
Test(stream, entries_added_before_the_daemon_are_served)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "early", 2, NULL);
    const char *ids[] = {"early-1", "early-timeout"};
    redisContext *s = subscribe_replies(ids, 2);

    entry_id e1 = xadd("{\"req_id\":\"early-1\",\"handler\":\"echo\",\"x\":1}");
    entry_id e2 = xadd("{\"req_id\":\"early-timeout\",\"handler\":\"echo\",\"timeout_ms\":100}");
    cr_assert(*e1.s && *e2.s, "XADD failed");
    sleep_ms(400);
    start_daemon(d);

    cJSON **got = fx.got;
    cr_assert_eq(collect_replies(s, ids, 2, got, 5000), 2, "replies: early-1 %s, "
                 "early-timeout %s", got[0] ? "yes" : "no", got[1] ? "yes" : "no");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(got[0], "ok")));
    cJSON *want = got[2] = cJSON_Parse("{\"x\":1}");
    cr_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(got[0], "result"), want, 1),
              "early-1 result is not {\"x\":1}");
    cr_assert_str_eq(rw_str(got[0], "worker"), d->id);
    cr_assert_str_eq(rw_error_code(got[1]), "timeout", "early-timeout got '%s'",
                     rw_error_code(got[1]));
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld after the replies",
              xlen(STREAM), xpending());
    cr_assert_eq(rw_daemon_stop(d, 10000), 0, "a clean stop exits 0");
    assert_no_leaks();
}

/* libredwork with transport_stream: echo and unknown handler, and the
 * entry is gone (acked and deleted) once answered. */
Test(stream, libredwork_echo_and_unknown_handler)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "lib", 2, NULL);
    start_daemon(d);
    redwork_client *c = open_stream_client(0);
    redwork_result *res = &fx.res;

    cr_assert_eq(redwork_call(c, "echo", "{\"a\":[1,2]}", 5000, res), REDWORK_OK,
                 "status %s (%s)", redwork_status_name(res->status),
                 res->error_message ? res->error_message : "");
    cr_assert_str_eq(res->result, "{\"a\":[1,2]}");
    redwork_result_free(res);
    cr_assert_eq(entries_added(STREAM), 1, "libredwork did not XADD to %s", STREAM);
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld after echo",
              xlen(STREAM), xpending());

    cr_assert_eq(redwork_call(c, "nope", "{}", 5000, res), REDWORK_ERROR_REPLY,
                 "status %s", redwork_status_name(res->status));
    cr_assert_str_eq(res->error_code, "unknown_handler");
    cr_assert(res->error_message && strstr(res->error_message, "nope"), "message '%s'",
              res->error_message);
    redwork_result_free(res);
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld after unknown_handler",
              xlen(STREAM), xpending());
    cr_assert_eq(xlen(DEAD), 0, "an answered request was dead-lettered");

    /* The daemon's own failure codes come through too. */
    cr_assert_eq(redwork_call(c, "fail", "{}", 5000, res), REDWORK_ERROR_REPLY);
    cr_assert_str_eq(res->error_code, "handler_failed");
    redwork_result_free(res);
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld after fail",
              xlen(STREAM), xpending());
    cr_assert_eq(entries_added(STREAM), 3);
    close_client();
    assert_no_leaks();
}

/* Entries that cannot be answered go to jobs:dead with the reason. */
Test(stream, unanswerable_entries_are_dead_lettered)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "dead", 2, NULL);
    start_daemon(d);

    entry_id bad = xadd("this is {not json"), nomsg = {""};
    redisReply *r = redisCommand(fx.a, "XADD %s * payload nomsg", STREAM);
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    snprintf(nomsg.s, sizeof nomsg.s, "%s", r->str);
    freeReplyObject(r);
    entry_id noid = xadd("{\"handler\":\"echo\"}");
    cr_assert(*bad.s && *noid.s);

    long long deadline = rw_now_ms() + 5000;
    while (xlen(DEAD) < 3 && rw_now_ms() < deadline)
        sleep_ms(20);
    cr_assert_eq(xlen(DEAD), 3, "%s has %lld entries, expected 3", DEAD, xlen(DEAD));
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld after dead-lettering",
              xlen(STREAM), xpending());

    r = fx.reply = redisCommand(fx.a, "XRANGE %s - +", DEAD);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    const char *want_ids[] = {bad.s, nomsg.s, noid.s};
    const char *want_msg[] = {"this is {not json", "", "{\"handler\":\"echo\"}"};
    for (size_t k = 0; k < 3; k++) {
        const redisReply *e = r->element[k];
        const char *msg = entry_field(e, "msg"), *error = entry_field(e, "error");
        const char *stream = entry_field(e, "stream"), *id = entry_field(e, "id");
        cr_assert(msg && error && stream && id && entry_field(e, "deliveries"),
                  "dead entry %zu lacks msg, error, deliveries, stream or id", k);
        cr_assert_str_eq(msg, want_msg[k]);
        cr_assert_gt(strlen(error), 0, "dead entry %zu has an empty error", k);
        cr_assert_str_eq(stream, STREAM);
        cr_assert_str_eq(id, want_ids[k]);
    }
    cr_assert(strstr(entry_field(r->element[1], "error"), "msg"),
              "error '%s' does not say the msg field is missing",
              entry_field(r->element[1], "error"));
    fprintf(stderr, "dead-letter reasons: [%s] [%s] [%s]\n",
            entry_field(r->element[0], "error"), entry_field(r->element[1], "error"),
            entry_field(r->element[2], "error"));
    freeReplyObject(r);
    fx.reply = NULL;

    /* The daemon carries on. */
    const char *ids[] = {"after-dead"};
    redisContext *s = subscribe_replies(ids, 1);
    cr_assert(*xadd("{\"req_id\":\"after-dead\",\"handler\":\"echo\"}").s);
    cr_assert_eq(collect_replies(s, ids, 1, fx.got, 5000), 1);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fx.got[0], "ok")));
    assert_no_leaks();
}

/* ---- 2. two daemons, one killed mid-load ------------------------------------ */

Test(stream, sigkill_of_one_of_two_daemons_loses_nothing)
{
    start_redis(0);
    const char *extra = "claim_idle_ms = 500\nreply_store = list\n";
    rw_daemon *a = daemon_config(0, "two-a", 2, extra);
    rw_daemon *b = daemon_config(1, "two-b", 2, extra);
    start_daemon(a);
    start_daemon(b);
    redwork_client *c = open_stream_client(1);

    /* sleep 1 ms each, so each daemon always holds entries it has not
     * answered yet: the kill leaves some pending for the other one. */
    const int n = 3000;
    load *l = load_start_sleep(c, n, 64, 15000, 0, 20000, 1);
    long long deadline = rw_now_ms() + 15000;
    while (load_done(l) < n / 3 && rw_now_ms() < deadline)
        sleep_ms(1);
    cr_assert_geq(load_done(l), n / 3, "the load did not get going");
    /* Kill it while it holds entries: frozen (SIGSTOP), it cannot answer
     * them any more, so what XPENDING shows for it then is what the kill
     * orphans. */
    size_t orphans = 0;
    for (int attempt = 0; attempt < 50 && orphans == 0; attempt++) {
        cr_assert_eq(kill(a->pid, SIGSTOP), 0);
        sleep_ms(5); /* its last pipeline reaches Redis */
        redisReply *r = redisCommand(fx.a, "XPENDING %s redwork - + 1000 %s", STREAM,
                                     a->id);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        orphans = r->elements;
        freeReplyObject(r);
        if (orphans == 0) {
            kill(a->pid, SIGCONT);
            sleep_ms(3);
        }
    }
    cr_assert_eq(kill(a->pid, SIGKILL), 0);
    int killed_at = load_done(l);
    cr_assert_eq(rw_daemon_wait(a, 5000), 128 + SIGKILL);
    fprintf(stderr, "sigkill: killed after %d outcomes, holding %zu pending entries\n",
            killed_at, orphans);

    int over = load_wait(l, 25000);
    long long sent = entries_added(STREAM);
    fault_line("stream_sigkill_one_of_two", sent, l->ok);
    load_report(l, "sigkill");
    cr_assert(over, "the load did not end: %d of %d calls have an outcome", l->done,
              l->issued);
    cr_assert_lt(killed_at, n, "the kill came after the load");
    cr_assert_eq(l->issued, n);
    cr_assert_eq(l->not_sent, 0);
    cr_assert_eq(sent, n, "entries-added %lld, expected %d", sent, n);
    cr_assert_eq(l->ok, n, "%d of %d calls answered REDWORK_OK", l->ok, n);
    cr_assert_eq(l->wrong, 0, "%d replies carry another call's payload", l->wrong);
    cr_assert_eq(l->dup, 0, "%d calls completed twice", l->dup);
    cr_assert(wait_stream_empty(5000), "XLEN %lld, XPENDING %lld at the end",
              xlen(STREAM), xpending());
    cr_assert_gt(orphans, 0, "the killed daemon held no entries: nothing to take over");
    cr_assert(rw_wait_file_contains(b->log, "took over", 1000),
              "the surviving daemon never took over the killed one's entries");
    close_client();
    load_free(l);
    assert_no_leaks();
}

/* ---- 3. redis-server restarted from its AOF mid-load ---------------------- */

Test(stream, redis_restart_with_aof_loses_nothing)
{
    start_redis(1);
    rw_daemon *d = daemon_config(0, "aof", 2, "claim_idle_ms = 1000\nreply_store = list\n");
    start_daemon(d);
    redwork_client *c = open_stream_client(1);

    const int n = 3000;
    /* ~3 s of load at 1 call per ms at most, 32 in flight. */
    load *l = load_start(c, n, 32, 8000, 1000, 15000);
    long long deadline = rw_now_ms() + 10000;
    while (load_done(l) < n / 3 && rw_now_ms() < deadline)
        sleep_ms(1);
    cr_assert_geq(load_done(l), n / 3, "the load did not get going");
    int before = load_done(l);
    crash_and_restart_redis();
    long long restarted_ms = rw_now_ms();

    int over = load_wait(l, 25000);
    long long sent = entries_added(STREAM);
    fault_line("stream_redis_restart_aof", sent, l->ok);
    load_report(l, "aof");
    fprintf(stderr, "aof: restart after %d outcomes; %d not sent; load over %lld ms "
            "after the restart\n", before, l->not_sent, rw_now_ms() - restarted_ms);
    cr_assert(over, "the load did not end: %d of %d calls have an outcome", l->done,
              l->issued);
    cr_assert_lt(before, l->issued, "the restart came after the load");
    cr_assert_geq(sent, l->ok, "more answers (%d) than entries added (%lld)", l->ok, sent);
    cr_assert_eq(sent - l->ok, 0, "%lld requests taken by Redis were never answered",
                 sent - l->ok);
    cr_assert_eq(l->wrong, 0);
    cr_assert_eq(l->dup, 0);
    cr_assert_gt(l->ok, n / 2, "only %d calls answered", l->ok);
    cr_assert(wait_stream_empty(5000), "XLEN %lld, XPENDING %lld at the end",
              xlen(STREAM), xpending());
    cr_assert_eq(waitpid(d->pid, NULL, WNOHANG), 0, "the daemon died");
    cr_assert(rw_wait_file_contains(d->log, "reconnected", 1000),
              "the daemon log does not say it reconnected");
    close_client();
    load_free(l);
    assert_no_leaks();
}

/* ---- 4. a poison entry ------------------------------------------------------ */

/* A poison entry {"handler":"fail","crash":true} (its handler calls
 * abort()) with processes = 2, max_deliveries = 2, claim_idle_ms = 300,
 * then N echo calls (SLEEP_MS > 0: sleep calls), WINDOW in flight, one
 * every INTERVAL_US; with QUEUED_FIRST all of them are in the stream before
 * the daemon starts. */
static void poison_run(const char *fault, int n, int window, int interval_us,
                       int sleep_ms_each, int queued_first)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "poison", 2,
                                 "processes = 2\nmax_deliveries = 2\nclaim_idle_ms = 300\n");
    if (!queued_first)
        start_supervised(d, 2);
    redwork_client *c = open_stream_client(0);

    cr_assert_eq(redwork_call_async(c, "fail", "{\"crash\":true}", 15000, one_cb,
                                    NULL), 0);
    load *l = load_start_sleep(c, n, window, 15000, interval_us, 10000, sleep_ms_each);
    if (queued_first) {
        long long deadline = rw_now_ms() + 5000;
        while (entries_added(STREAM) < n + 1 && rw_now_ms() < deadline)
            sleep_ms(5);
        cr_assert_eq(entries_added(STREAM), n + 1, "the calls did not all reach the stream");
        start_supervised(d, 2);
    }

    cr_assert_eq(one_wait(15000), 1, "the poison call got no outcome");
    redwork_result poison = fx.res;
    cr_assert_eq(poison.status, REDWORK_ERROR_REPLY, "poison: %s",
                 redwork_status_name(poison.status));
    cr_assert_str_eq(poison.error_code, "handler_failed");
    cr_assert(poison.error_message && strstr(poison.error_message, DEAD),
              "message '%s' does not name %s", poison.error_message, DEAD);
    fprintf(stderr, "poison: %s\n", poison.error_message);

    int over = load_wait(l, 20000);
    long long sent = entries_added(STREAM) - 1; /* the other requests */
    fault_line(fault, sent, l->ok);
    load_report(l, "poison");

    redisReply *r = fx.reply = redisCommand(fx.a, "XRANGE %s - +", DEAD);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    int poisons = 0;
    for (size_t k = 0; k < r->elements; k++) {
        const redisReply *e = r->element[k];
        const char *msg = entry_field(e, "msg"), *dl = entry_field(e, "deliveries");
        fprintf(stderr, "poison: %s entry: msg %s deliveries %s error %s\n", DEAD,
                msg ? msg : "?", dl ? dl : "?", entry_field(e, "error"));
        if (msg && strstr(msg, "\"crash\":true")) {
            poisons++;
            cr_assert(dl && atoll(dl) >= 3, "deliveries %s, expected >= 3", dl);
            cr_assert_str_eq(entry_field(e, "stream"), STREAM);
        }
    }
    size_t dead_entries = r->elements;
    cr_assert_eq(poisons, 1, "%d poison entries in %s", poisons, DEAD);
    cr_assert(over, "the echo load did not end: %d of %d", l->done, l->issued);
    cr_assert_eq(l->issued, n);
    cr_assert_eq(sent, n);
    cr_assert_eq(l->ok, n, "%d of %d other requests answered OK (%zu entries in %s)",
                 l->ok, n, dead_entries, DEAD);
    cr_assert_eq(dead_entries, 1, "innocent entries were dead-lettered");
    cr_assert(wait_stream_empty(5000), "XLEN %lld, XPENDING %lld at the end",
              xlen(STREAM), xpending());
    cr_assert_geq(file_count(d->log, "killed by signal"), 2,
                  "the supervisor did not log two worker deaths");
    cr_assert_eq(waitpid(d->pid, NULL, WNOHANG), 0, "the master died");

    close_client();
    load_free(l);
    assert_no_leaks();
}

/* Echo requests meanwhile: 300, one every 10 ms, 8 in flight. */
Test(stream, poison_entry_is_dead_lettered)
{
    poison_run("stream_poison_entry", 300, 8, 10000, 0, 0);
}

/* 16 requests (sleep 50 ms: still queued or running when the poison's
 * abort() comes) in the stream behind the poison entry before the daemon
 * starts share its batch (one XREADGROUP, then XAUTOCLAIMs of the same
 * idle entries), so they die with its worker each time: they must still
 * be run, not dead-lettered with it. */
Test(stream, poison_entry_spares_its_batch_mates)
{
    poison_run("stream_poison_batch_mates", 16, 16, 0, 50, 1);
}

/* ---- 5. a client that never subscribed ---------------------------------------- */

Test(stream, late_client_finds_the_stored_reply)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "late", 2, "reply_store = list\nreply_ttl_ms = 30000\n");
    start_daemon(d);
    cr_assert(*xadd("{\"req_id\":\"late-1\",\"handler\":\"echo\",\"x\":7}").s);
    long long deadline = rw_now_ms() + 5000;
    while (rw_command_int(fx.a, "EXISTS callback:late-1") != 1 && rw_now_ms() < deadline)
        sleep_ms(10);
    cr_assert_eq(rw_command_int(fx.a, "EXISTS callback:late-1"), 1,
                 "no list callback:late-1 within 5 s");
    long long ttl = rw_command_int(fx.a, "PTTL callback:late-1");
    cr_assert(ttl > 0 && ttl <= 30000, "PTTL %lld, expected 1..30000", ttl);

    redisReply *r = fx.reply = redisCommand(fx.a, "LRANGE callback:late-1 0 -1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1,
              "LRANGE: %zu replies", r ? r->elements : 0);
    cJSON *j = fx.got[0] = cJSON_Parse(r->element[0]->str);
    cr_assert_not_null(j);
    cr_assert_str_eq(rw_str(j, "req_id"), "late-1");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")));
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "result"), "x");
    cr_assert(cJSON_IsNumber(x) && x->valueint == 7, "result is not {\"x\":7}");
    cJSON_Delete(j);
    fx.got[0] = NULL;
    freeReplyObject(r);

    r = fx.reply = redisCommand(fx.a, "BLPOP callback:late-1 1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "BLPOP got nothing");
    cr_assert(strstr(r->element[1]->str, "\"req_id\":\"late-1\""), "BLPOP: %s",
              r->element[1]->str);
    freeReplyObject(r);
    fx.reply = NULL;
    cr_assert_eq(rw_command_int(fx.a, "EXISTS callback:late-1"), 0, "BLPOP left a reply");
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld", xlen(STREAM), xpending());
    assert_no_leaks();
}

/* ---- 6. stream_maxlen bounds the stream ------------------------------------- */

Test(stream, stream_maxlen_bounds_the_stream)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "bound", 1, "stream_maxlen = 1000\n");
    for (int k = 0; k < 3000; k++)
        redisAppendCommand(fx.a, "XADD %s * msg {\"req_id\":\"s-%d\",\"handler\":\"sleep\",\"ms\":20}",
                           STREAM, k);
    for (int k = 0; k < 3000; k++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(fx.a, (void **)&r), REDIS_OK);
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "XADD %d refused", k);
        freeReplyObject(r);
    }
    cr_assert_eq(xlen(STREAM), 3000);
    long long t0 = rw_now_ms();
    start_daemon(d);
    long long len;
    while ((len = xlen(STREAM)) > 1100 && rw_now_ms() - t0 < 5000)
        sleep_ms(20);
    fprintf(stderr, "bound: XLEN %lld %lld ms after the start\n", len, rw_now_ms() - t0);
    cr_assert_leq(len, 1100, "XLEN %lld, 5 s after the daemon started", len);

    /* The rest would take 20 s of sleeping: start again on an empty stream. */
    kill(d->pid, SIGKILL);
    rw_daemon_wait(d, 5000);
    redisReply *r = redisCommand(fx.a, "DEL %s %s", STREAM, DEAD);
    freeReplyObject(r);
    start_daemon(d);

    redwork_client *c = open_stream_client(0);
    const int n = 5000;
    load *l = load_start(c, n, 256, 15000, 0, 15000);
    long long max_len = 0, samples = 0;
    long long deadline = rw_now_ms() + 20000;
    while (!load_over(l) && rw_now_ms() < deadline) {
        long long v = xlen(STREAM);
        max_len = v > max_len ? v : max_len;
        samples++;
        sleep_ms(20);
    }
    int over = load_wait(l, 1000);
    fprintf(stderr, "bound: %lld XLEN samples during the load, max %lld\n", samples,
            max_len);
    cr_assert(over, "the load did not end: %d of %d", l->done, l->issued);
    cr_assert_eq(l->ok, n, "%d of %d answered OK", l->ok, n);
    cr_assert_leq(max_len, 1100, "XLEN reached %lld during the load", max_len);
    cr_assert_gt(samples, 0);
    close_client();
    load_free(l);
    assert_no_leaks();
}

/* ---- 7. shutdown leaves entries pending for another worker ------------------- */

Test(stream, shutdown_leaves_unrun_entries_pending)
{
    start_redis(0);
    rw_daemon *a = daemon_config(0, "stop-a", 1, "shutdown_timeout_ms = 300\n");
    start_daemon(a);
    const char *ids[] = {"slow-1", "slow-2", "slow-3"};
    redisContext *s = subscribe_replies(ids, 3);
    for (int k = 0; k < 3; k++) {
        char body[128];
        snprintf(body, sizeof body, "{\"req_id\":\"%s\",\"handler\":\"sleep\",\"ms\":2000}",
                 ids[k]);
        cr_assert(*xadd(body).s, "XADD refused");
    }
    /* One thread, a handler of unknown pace: it reads two (one to run,
     * one ready), the third waits in the stream. */
    long long deadline = rw_now_ms() + 3000;
    while (xpending() < 2 && rw_now_ms() < deadline)
        sleep_ms(10);
    cr_assert_eq(xpending(), 2, "the daemon did not read 2 of the 3 entries");
    sleep_ms(100); /* the first one runs */

    long long t0 = rw_now_ms();
    int st = rw_daemon_stop(a, 5000);
    long long took = rw_now_ms() - t0;
    cr_assert_eq(st, 1, "exit status %d after a timed-out shutdown, expected 1", st);
    cr_assert_lt(took, 2000, "the stop took %lld ms", took);
    long long pending = xpending();
    fprintf(stderr, "shutdown: exit %d after %lld ms; %lld entries still pending\n", st,
            took, pending);
    cr_assert_geq(pending, 1, "no entry left pending after the shutdown");
    cr_assert_eq(xlen(STREAM), 3);
    cJSON *early = fx.got[0] = next_reply(s, rw_now_ms() + 200);
    cr_assert_null(early, "a reply came at shutdown: %s", early ? rw_error_code(early) : "");

    /* A second daemon takes them over once idle for claim_idle_ms. Every
     * reply is collected, to see that each entry is answered exactly once
     * and OK (not dead-lettered while it runs, not run twice). */
    rw_daemon *b = daemon_config(1, "stop-b", 3,
                                 "claim_idle_ms = 200\nshutdown_timeout_ms = 1000\n");
    start_daemon(b);
    long long b_started = rw_now_ms();
    int replies[3] = {0, 0, 0}, oks[3] = {0, 0, 0}, answered = 0;
    char codes[3][512] = {"", "", ""};
    deadline = rw_now_ms() + 10000;
    long long quiet_until = LLONG_MAX;
    while (rw_now_ms() < deadline && rw_now_ms() < quiet_until) {
        long long until = deadline < quiet_until ? deadline : quiet_until;
        cJSON *j = fx.got[0] = next_reply(s, until);
        if (!j)
            continue;
        for (int k = 0; k < 3; k++) {
            if (strcmp(rw_str(j, "req_id"), ids[k]) != 0)
                continue;
            replies[k]++;
            int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
            oks[k] += ok;
            size_t used = strlen(codes[k]);
            snprintf(codes[k] + used, sizeof codes[k] - used, "%s%s by %s at +%lld ms",
                     used ? ", " : "", ok ? "ok" : rw_error_code(j), rw_str(j, "worker"),
                     rw_now_ms() - b_started);
        }
        cJSON_Delete(j);
        fx.got[0] = NULL;
        answered = (oks[0] > 0) + (oks[1] > 0) + (oks[2] > 0);
        if (answered == 3 && quiet_until == LLONG_MAX)
            quiet_until = rw_now_ms() + 500; /* any second reply comes by then */
    }
    fprintf(stderr, "shutdown: replies after the takeover: slow-1 [%s] slow-2 [%s] "
            "slow-3 [%s]; %lld entries in %s\n", codes[0], codes[1], codes[2],
            xlen(DEAD), DEAD);
    cr_assert_eq(answered, 3, "%d of 3 answered OK by the second daemon", answered);
    for (int k = 0; k < 3; k++)
        cr_assert(replies[k] == 1 && oks[k] == 1,
                  "%s got %d replies (%s), expected one OK reply", ids[k], replies[k],
                  codes[k]);
    cr_assert_eq(xlen(DEAD), 0, "entries that were running went to %s", DEAD);
    cr_assert(wait_stream_empty(3000), "XLEN %lld, XPENDING %lld at the end",
              xlen(STREAM), xpending());
    assert_no_leaks();
}

/* ---- 8. a slow handler ------------------------------------------------------ */

/* A handler slower than claim_idle_ms is neither taken over (its entry is
 * touched) nor able to stop the worker from reading while an orphan waits
 * for a quiet moment: a fresh request is served meanwhile, and the orphan
 * is taken over once the slow one is done. Each is answered exactly once. */
Test(stream, slow_handler_is_not_taken_over_and_does_not_block_reading)
{
    start_redis(0);
    /* An orphan: read by a consumer that never answers. */
    redisReply *r = fx.reply = redisCommand(fx.a, "XGROUP CREATE %s redwork 0 MKSTREAM", STREAM);
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    fx.reply = NULL;
    cr_assert(*xadd("{\"req_id\":\"orphan\",\"handler\":\"echo\"}").s);
    r = fx.reply = redisCommand(fx.a, "XREADGROUP GROUP redwork ghost COUNT 1 STREAMS %s >",
                                STREAM);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "the ghost consumer read nothing");
    freeReplyObject(r);
    fx.reply = NULL;

    const char *ids[] = {"slow", "fresh", "orphan"};
    redisContext *s = subscribe_replies(ids, 3);
    rw_daemon *d = daemon_config(0, "slowpoke", 2, "claim_idle_ms = 300\n");
    start_daemon(d);
    cr_assert(*xadd("{\"req_id\":\"slow\",\"handler\":\"sleep\",\"ms\":3000}").s);
    sleep_ms(700); /* the orphan is idle; the worker holds the slow one */
    long long fresh_at = rw_now_ms();
    cr_assert(*xadd("{\"req_id\":\"fresh\",\"handler\":\"echo\"}").s);

    int count[3] = {0, 0, 0}, ok[3] = {0, 0, 0};
    long long at[3] = {0, 0, 0}, deadline = rw_now_ms() + 10000, quiet_until = LLONG_MAX;
    while (rw_now_ms() < deadline && rw_now_ms() < quiet_until) {
        cJSON *j = fx.got[0] = next_reply(s, deadline < quiet_until ? deadline : quiet_until);
        if (!j)
            continue;
        for (int k = 0; k < 3; k++)
            if (strcmp(rw_str(j, "req_id"), ids[k]) == 0) {
                count[k]++;
                ok[k] += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
                at[k] = rw_now_ms();
            }
        cJSON_Delete(j);
        fx.got[0] = NULL;
        if (count[0] && count[1] && count[2] && quiet_until == LLONG_MAX)
            quiet_until = rw_now_ms() + 700; /* a second reply would come by then */
    }
    fprintf(stderr, "slow: fresh answered %lld ms after it was added; replies slow %d, "
            "fresh %d, orphan %d\n", at[1] ? at[1] - fresh_at : -1, count[0], count[1],
            count[2]);
    for (int k = 0; k < 3; k++)
        cr_assert(count[k] == 1 && ok[k] == 1, "%s: %d replies, %d ok", ids[k], count[k],
                  ok[k]);
    cr_assert_lt(at[1] - fresh_at, 2000, "the fresh request waited behind the slow one");
    cr_assert_lt(at[1], at[0], "the fresh request was not served before the slow one ended");
    cr_assert_eq(xlen(DEAD), 0, "something was dead-lettered");
}

/* Counts the replies on subscriber S per id of IDS (N of them) until a
 * PING sent now is answered: Redis delivers in order, so every reply
 * published before the PING has arrived by then. Returns 0, or -1 if the
 * PONG did not come within TIMEOUT_MS. */
static int count_until_barrier(redisContext *s, const char *const *ids, int n, int *count,
                               int timeout_ms)
{
    if (redisAppendCommand(s, "PING") != REDIS_OK)
        return -1;
    int done = 0;
    while (redisBufferWrite(s, &done) == REDIS_OK && !done)
        ;
    long long deadline = rw_now_ms() + timeout_ms;
    for (;;) {
        redisReply *r = rw_read_reply(s, deadline);
        if (!r)
            return -1;
        int pong = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                   r->element[0]->type == REDIS_REPLY_STRING &&
                   strcmp(r->element[0]->str, "pong") == 0;
        if (!pong && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            strcmp(r->element[0]->str, "message") == 0) {
            cJSON *j = cJSON_ParseWithLength(r->element[2]->str, r->element[2]->len);
            for (int i = 0; j && i < n; i++)
                count[i] += strcmp(rw_str(j, "req_id"), ids[i]) == 0;
            cJSON_Delete(j);
        }
        freeReplyObject(r);
        if (pong)
            return 0;
    }
}

/* Two live daemons, claim_idle_ms 500, one pool thread each, and handlers
 * slower than that: no entry may be taken over and answered twice -- a
 * held entry is touched until the XACK for it has been answered. */
Test(stream, two_live_daemons_never_answer_an_entry_twice)
{
    enum { PAIRS = 3 };
    start_redis(0);
    const char *ids[2 * PAIRS];
    char names[2 * PAIRS][32];
    for (int k = 0; k < 2 * PAIRS; k++) {
        snprintf(names[k], sizeof names[k], "%s-%d", k % 2 ? "slow" : "fast", k / 2);
        ids[k] = names[k];
    }
    redisContext *s = subscribe_replies(ids, 2 * PAIRS);
    for (int k = 0; k < 2; k++) {
        char tag[16];
        snprintf(tag, sizeof tag, "live%d", k + 1);
        start_daemon(daemon_config(k, tag, 1, "claim_idle_ms = 500\n"));
    }
    for (int k = 0; k < 2 * PAIRS; k++) {
        char body[160];
        snprintf(body, sizeof body, "{\"req_id\":\"%s\",\"handler\":\"sleep\",\"ms\":%d}",
                 ids[k], k % 2 ? 1200 : 10);
        cr_assert(*xadd(body).s);
    }
    cr_assert(wait_stream_empty(15000), "XLEN %lld, XPENDING %lld: not all answered",
              xlen(STREAM), xpending());
    int count[2 * PAIRS] = {0};
    cr_assert_eq(count_until_barrier(s, ids, 2 * PAIRS, count, 5000), 0);
    for (int k = 0; k < 2 * PAIRS; k++)
        cr_assert_eq(count[k], 1, "%s answered %d times", ids[k], count[k]);
    cr_assert_eq(xlen(DEAD), 0, "something was dead-lettered");
}

/* Two daemons with one thread each and a burst of slow entries: a daemon
 * reads no more than it can start soon (a few entries a thread), so the
 * rest wait in the stream for whichever daemon is free first and both do
 * about half -- not the first reader all of them while the other idles. */
Test(stream, two_daemons_share_a_burst)
{
    enum { N = 40 };
    start_redis(0);
    char names[N][32];
    const char *ids[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "share-%d", i);
        ids[i] = names[i];
    }
    redisContext *s = subscribe_replies(ids, N);
    rw_daemon *d[2];
    for (int k = 0; k < 2; k++) {
        char tag[16];
        snprintf(tag, sizeof tag, "share%d", k + 1);
        start_daemon(d[k] = daemon_config(k, tag, 1, NULL));
    }
    for (int i = 0; i < N; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"req_id\":\"%s\",\"handler\":\"sleep\",\"ms\":20}",
                 ids[i]);
        cr_assert(*xadd(body).s);
    }
    cJSON *reply[N] = {0};
    int got = collect_replies(s, ids, N, reply, 15000);
    int per[2] = {0};
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++)
            per[k] += reply[i] != NULL && strcmp(rw_str(reply[i], "worker"), d[k]->id) == 0;
    for (int i = 0; i < N; i++)
        cJSON_Delete(reply[i]);
    cr_assert_eq(got, N, "only %d of %d answered", got, N);
    cr_assert_eq(per[0] + per[1], N, "a reply names another worker");
    cr_assert(per[0] >= N / 4 && per[1] >= N / 4, "the burst was not shared: %d and %d",
              per[0], per[1]);
}

/* The stream deleted under a running daemon (and so its group): the next
 * XREADGROUP says NOGROUP, the daemon makes the group again and serves
 * what is added after. */
Test(stream, deleted_stream_gets_its_group_again)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "nogroup", 1, NULL);
    start_daemon(d);
    const char *ids[] = {"after-del"};
    redisContext *s = subscribe_replies(ids, 1);
    cr_assert_eq(rw_command_int(fx.a, "DEL %s", STREAM), 1);
    cr_assert(*xadd("{\"req_id\":\"after-del\",\"handler\":\"echo\",\"x\":1}").s);
    cJSON *got[1] = {NULL};
    cr_assert_eq(collect_replies(s, ids, 1, got, 5000), 1, "not served after the DEL");
    fx.got[0] = got[0];
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(got[0], "ok")));
    cr_assert(rw_wait_file_contains(d->log, "making the group again", 3000));
}

/* stream_shards on one server: the daemon reads every shard (one
 * XREADGROUP names them all); libredwork sends requests to them in turn. */
Test(stream, shards_take_requests_in_turn)
{
    enum { SHARDS = 3, CALLS = 30 };
    start_redis(0);
    start_daemon(daemon_config(0, "shards", 2, "stream_shards = 3\n"));
    redwork_client_options o;
    redwork_client_options_init(&o);
    o.port = fx.redis.port;
    snprintf(o.channel, sizeof o.channel, "%s", STREAM);
    o.transport_stream = 1;
    o.stream_shards = SHARDS;
    char err[512] = "";
    fx.client = redwork_client_open(&o, err, sizeof err);
    cr_assert_not_null(fx.client, "redwork_client_open: %s", err);
    for (int i = 0; i < CALLS; i++) {
        redwork_status st = redwork_call(fx.client, "echo", "{}", 5000, &fx.res);
        cr_assert_eq(st, REDWORK_OK, "call %d: %s", i, redwork_status_name(st));
        redwork_result_free(&fx.res);
    }
    for (int i = 0; i < SHARDS; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s{%d}", STREAM, i);
        cr_assert_eq(entries_added(key), CALLS / SHARDS, "%s did not get its turn", key);
    }
    cr_assert_eq(rw_command_int(fx.a, "EXISTS %s", STREAM), 0, "a request went to the plain key");
}

/* The consumers named XINFO CONSUMERS <STREAM> redwork lists, into NAMES
 * (at most MAX); returns how many. */
static int consumer_names(char names[][128], int max)
{
    redisReply *r = redisCommand(fx.a, "XINFO CONSUMERS %s redwork", STREAM);
    int n = 0;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements && n < max;
         i++) {
        const redisReply *c = r->element[i];
        for (size_t k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements; k += 2)
            if (strcmp(c->element[k]->str, "name") == 0)
                snprintf(names[n++], 128, "%s", c->element[k + 1]->str);
    }
    freeReplyObject(r);
    return n;
}

static int has_consumer(const char *name)
{
    char names[16][128];
    int n = consumer_names(names, 16);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Consumers do not pile up: a daemon that stops cleanly removes its own,
 * and the daemons remove one idle past 10 x claim_idle_ms with nothing
 * pending (the ghost of a daemon that died holding nothing). */
Test(stream, consumers_do_not_pile_up)
{
    start_redis(0);
    rw_daemon *d = daemon_config(0, "cons", 1, "claim_idle_ms = 100\n");
    start_daemon(d);
    redisReply *r = redisCommand(fx.a, "XGROUP CREATECONSUMER %s redwork ghost", STREAM);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "no ghost consumer made");
    freeReplyObject(r);
    /* Redis makes a consumer when it first delivers to it. */
    r = redisCommand(fx.a, "XADD %s * msg {\"req_id\":\"cons1\",\"handler\":\"echo\"}", STREAM);
    freeReplyObject(r);
    long long deadline = rw_now_ms() + 5000;
    while (!has_consumer(d->id) && rw_now_ms() < deadline)
        sleep_ms(20);
    cr_assert(has_consumer(d->id), "the daemon has no consumer while it runs");
    deadline = rw_now_ms() + 5000;
    while (has_consumer("ghost") && rw_now_ms() < deadline)
        sleep_ms(50);
    cr_assert_not(has_consumer("ghost"), "the idle ghost consumer was not removed");
    cr_assert(rw_wait_file_contains(d->log, "removed consumer ghost", 1000));
    cr_assert(has_consumer(d->id), "the running daemon's own consumer was removed");
    cr_assert_eq(rw_daemon_stop(d, 10000), 0);
    cr_assert_not(has_consumer(d->id), "a clean stop left its consumer behind");
}

/* test_sentinel.c -- redworkd and libredwork behind Redis Sentinel.
 *
 * Each test starts its own topology on free loopback ports: a master, one
 * replica and three sentinels (quorum 2, down-after-milliseconds 1000),
 * and waits until every sentinel knows the replica and the two other
 * sentinels. The daemon and the client find the master through the
 * sentinels only.
 *
 * Failover tests run a steady load through libredwork (one call every
 * RW_LOAD_INTERVAL_MS, each with its own outcome: load.h), make the failover happen
 * (SENTINEL FAILOVER, or SIGKILL of the master), and take the time of the
 * switch from the +switch-master message of a sentinel. They report, and
 * bound, the time from the switch to the first call made after it that is
 * answered, and report how many calls failed; after the recovery every
 * call must be answered.
 *
 * Run: make all build/tests/integration/test_sentinel &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_sentinel */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"
#include "redwork/client.h"

#define MASTER_NAME "rwmaster"
#define DOWN_AFTER_MS 1000
#define SENTINELS 3
#define RECOVERY_BOUND_MS 5000 /* the target is 3 s; CI machines are slower */

static struct {
    rw_redis master, replica, sentinel[SENTINELS];
    rw_daemon d;
    char dir[RW_PATH_MAX];
    char sentinels[256];
    redwork_client *client;
    rw_load load;
} fx;

static void teardown(void)
{
    rw_load_stop(&fx.load);
    redwork_client_close(fx.client);
    fx.client = NULL;
    rw_daemon_stop(&fx.d, 15000);
    for (int k = 0; k < SENTINELS; k++)
        rw_redis_stop(&fx.sentinel[k]);
    rw_redis_stop(&fx.replica);
    rw_redis_stop(&fx.master);
    if (fx.dir[0])
        rw_rmdir(fx.dir);
}

TestSuite(sentinel, .fini = teardown, .timeout = 90);

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the topology ---------------------------------------------------------- */

/* The integer field NAME of SENTINEL MASTER <name> on sentinel K, or -1. */
static long long sentinel_field(int k, const char *name)
{
    redisContext *c = rw_connect(fx.sentinel[k].port);
    if (c == NULL)
        return -1;
    long long v = -1;
    redisReply *r = redisCommand(c, "SENTINEL MASTER %s", MASTER_NAME);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            v = atoll(r->element[i + 1]->str);
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* Whether the replica on PORT has its link to the master up. */
static int replica_linked(int port)
{
    redisContext *c = rw_connect(port);
    if (c == NULL)
        return 0;
    redisReply *r = redisCommand(c, "INFO replication");
    int up = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up");
    freeReplyObject(r);
    redisFree(c);
    return up;
}

/* Starts the master and the replica (with ARGS too), then the sentinels,
 * and waits until the replica is in sync and each sentinel sees the
 * replica and the two other sentinels. */
static void start_topology(const char *const *args)
{
    static const char *const none[] = {NULL};
    static char replicaof[64];
    static const char *replica_args[16];
    args = args != NULL ? args : none;
    cr_assert_eq(rw_tmpdir(fx.dir, sizeof fx.dir), 0);
    cr_assert_eq(rw_redis_start_with(&fx.master, args), 0, "the master did not start");
    snprintf(replicaof, sizeof replicaof, "127.0.0.1 %d", fx.master.port);
    int n = 0;
    for (; args[n] != NULL && n < 12; n++)
        replica_args[n] = args[n];
    replica_args[n++] = "--replicaof";
    replica_args[n++] = replicaof;
    replica_args[n] = NULL;
    cr_assert_eq(rw_redis_start_with(&fx.replica, replica_args), 0, "the replica did not start");
    size_t used = 0;
    for (int k = 0; k < SENTINELS; k++) {
        cr_assert_eq(rw_sentinel_start(&fx.sentinel[k], fx.master.port, MASTER_NAME,
                                       DOWN_AFTER_MS), 0, "sentinel %d did not start", k);
        used += (size_t)snprintf(fx.sentinels + used, sizeof fx.sentinels - used, "%s127.0.0.1:%d",
                                 k ? ", " : "", fx.sentinel[k].port);
    }
    long long deadline = rw_now_ms() + 20000;
    int ready = 0;
    while (!ready && rw_now_ms() < deadline) {
        ready = replica_linked(fx.replica.port);
        for (int k = 0; k < SENTINELS && ready; k++)
            ready = sentinel_field(k, "num-slaves") == 1 &&
                    sentinel_field(k, "num-other-sentinels") == SENTINELS - 1;
        if (!ready)
            sleep_ms(100);
    }
    cr_assert(ready, "the sentinels did not find the replica and each other in 20 s");
}

/* The [redis] lines that find the master through the sentinels. */
static const char *redis_lines(void)
{
    static char lines[512];
    snprintf(lines, sizeof lines, "sentinels = %s\nmaster_name = %s\n",
             fx.sentinels, MASTER_NAME);
    return lines;
}

static void start_daemon(const char *channels, const char *worker_extra)
{
    cr_assert_eq(rw_daemon_config(&fx.d, fx.dir, fx.master.port, "sen",
                                  &(rw_opts){.redis_lines = redis_lines(), .threads = 2,
                                             .channels = channels,
                                             .worker_extra = worker_extra}), 0);
    int rc = rw_daemon_start(&fx.d, 10000);
    if (rc != 0) {
        char *log = rw_read_file(fx.d.log);
        fprintf(stderr, "daemon log:\n%s\n", log ? log : "(none)");
        free(log);
    }
    cr_assert_eq(rc, 0, "redworkd did not start through the sentinels");
}

static void open_client(int stream)
{
    redwork_client_options o;
    redwork_client_options_init(&o);
    snprintf(o.sentinels, sizeof o.sentinels, "%s", fx.sentinels);
    snprintf(o.master_name, sizeof o.master_name, "%s", MASTER_NAME);
    o.connect_timeout_ms = 500;
    o.transport_stream = stream;
    if (stream)
        snprintf(o.channel, sizeof o.channel, "jobs");
    char err[512] = "";
    fx.client = redwork_client_open(&o, err, sizeof err);
    cr_assert_not_null(fx.client, "the client did not open through the sentinels: %s", err);
}

/* A connection SUBSCRIBEd to +switch-master on sentinel 0. */
static redisContext *watch_switch(void)
{
    redisContext *c = rw_connect(fx.sentinel[0].port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "SUBSCRIBE +switch-master");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    return c;
}

/* Waits (bounded) for the +switch-master message on C; returns its time. */
static long long wait_switch(redisContext *c, int timeout_ms)
{
    redisReply *r = rw_read_reply(c, rw_now_ms() + timeout_ms);
    long long at = rw_now_ms();
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3,
              "no +switch-master within %d ms", timeout_ms);
    cr_assert(strncmp(r->element[2]->str, MASTER_NAME " ", strlen(MASTER_NAME) + 1) == 0,
              "switch of another master: %s", r->element[2]->str);
    fprintf(stderr, "sentinel: +switch-master %s\n", r->element[2]->str);
    freeReplyObject(r);
    return at;
}

/* ---- a failover under load ---------------------------------------------------- */

/* Runs the load through a failover FAIL() makes, switched when a sentinel
 * announces +switch-master, and checks: a call made after the switch is
 * answered within RECOVERY_BOUND_MS, and after the recovery every call. */
static void load_through_failover(const char *what, void (*fail)(void))
{
    redisContext *sw = watch_switch();
    cr_assert_eq(rw_load_start(&fx.load, fx.client), 0);
    sleep_ms(1000); /* a steady state first */
    long long fault_ms = rw_now_ms();
    fail();
    long long switch_ms = wait_switch(sw, 20000);
    redisFree(sw);
    rw_failover f;
    cr_assert_eq(rw_load_failover(&fx.load, what, fault_ms, switch_ms, &f), 0,
                 "%s: some calls have no outcome", what);
    rw_load_assert_recovered(&f, what, RECOVERY_BOUND_MS);
}

static void sentinel_failover(void)
{
    redisContext *c = rw_connect(fx.sentinel[1].port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "SENTINEL FAILOVER %s", MASTER_NAME);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "SENTINEL FAILOVER refused");
    freeReplyObject(r);
    redisFree(c);
}

static void kill_master(void)
{
    kill(fx.master.pid, SIGKILL);
    rw_wait_exit(fx.master.pid, 5000);
    fx.master.pid = 0;
}

/* ---- tests -------------------------------------------------------------------- */

Test(sentinel, pubsub_follows_sentinel_failover)
{
    start_topology(NULL);
    start_daemon(NULL, NULL);
    open_client(0);
    load_through_failover("SENTINEL FAILOVER, Pub/Sub", sentinel_failover);
}

Test(sentinel, pubsub_follows_kill_of_the_master)
{
    start_topology(NULL);
    start_daemon(NULL, NULL);
    open_client(0);
    load_through_failover("kill -9 of the master, Pub/Sub", kill_master);
}

Test(sentinel, stream_follows_sentinel_failover)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    start_topology(aof);
    start_daemon("jobs", "transport = stream\nclaim_idle_ms = 1000\n");
    open_client(1);
    load_through_failover("SENTINEL FAILOVER, stream", sentinel_failover);
}

Test(sentinel, stream_follows_kill_of_the_master)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    start_topology(aof);
    start_daemon("jobs", "transport = stream\nclaim_idle_ms = 1000\n");
    open_client(1);
    load_through_failover("kill -9 of the master, stream", kill_master);
}

/* No sentinel answers at start: exit 69, naming each of them. */
Test(sentinel, all_sentinels_down_at_start_exits_69)
{
    cr_assert_eq(rw_tmpdir(fx.dir, sizeof fx.dir), 0);
    int ports[SENTINELS];
    size_t used = 0;
    for (int k = 0; k < SENTINELS; k++) {
        ports[k] = rw_free_port();
        used += (size_t)snprintf(fx.sentinels + used, sizeof fx.sentinels - used, "%s127.0.0.1:%d",
                                 k ? ", " : "", ports[k]);
    }
    cr_assert_eq(rw_daemon_config(&fx.d, fx.dir, ports[0], "nosen",
                                  &(rw_opts){.redis_lines = redis_lines()}), 0);
    char errlog[RW_PATH_MAX + 16];
    snprintf(errlog, sizeof errlog, "%s/exit.log", fx.dir);
    int st = rw_run_daemon(errlog, 15000, "-c", fx.d.conf, NULL);
    char *log = rw_read_file(errlog);
    cr_assert_eq(st, 69, "exit status %d, expected 69; log:\n%s", st, log ? log : "");
    for (int k = 0; k < SENTINELS; k++) {
        char where[32];
        snprintf(where, sizeof where, "127.0.0.1:%d", ports[k]);
        cr_assert(log && strstr(log, where), "the log does not name sentinel %s:\n%s", where,
                  log ? log : "");
    }
    cr_assert(strstr(log, MASTER_NAME), "the log does not name the master:\n%s", log);
    free(log);
}

/* Kills the daemon's connections to the master (CLIENT KILL of every
 * other normal and Pub/Sub client) and waits until it is back (its
 * heartbeat key written again after being deleted). */
static void cut_daemon_connections(void)
{
    redisContext *c = rw_connect(fx.master.port);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "DEL %s", fx.d.hb_key);
    freeReplyObject(r);
    r = redisCommand(c, "CLIENT KILL TYPE pubsub");
    freeReplyObject(r);
    r = redisCommand(c, "CLIENT KILL TYPE normal");
    freeReplyObject(r);
    redisFree(c);
    long long deadline = rw_now_ms() + 10000;
    int back = 0;
    while (!back && rw_now_ms() < deadline) {
        c = rw_connect(fx.master.port);
        back = c != NULL && rw_command_int(c, "EXISTS %s", fx.d.hb_key) == 1;
        if (c != NULL)
            redisFree(c);
        if (!back)
            sleep_ms(50);
    }
    cr_assert(back, "the daemon did not come back to the master");
}

/* The sentinels stop after the start: the daemon keeps to the master it
 * found, through lost connections too, and says so once. */
Test(sentinel, sentinels_down_later_keep_the_master)
{
    start_topology(NULL);
    start_daemon(NULL, NULL);
    for (int k = 0; k < SENTINELS; k++)
        rw_redis_stop(&fx.sentinel[k]);
    for (int round = 0; round < 2; round++) {
        cut_daemon_connections();
        char id[32], body[96];
        snprintf(id, sizeof id, "down-%d", round);
        snprintf(body, sizeof body, "{\"handler\":\"echo\",\"req_id\":\"%s\"}", id);
        cJSON *reply = rw_call(fx.master.port, "request", body, id, NULL, 5000, NULL);
        cr_assert_not_null(reply, "no reply after losing the sentinels (round %d)", round);
        cr_assert_str_eq(rw_error_code(reply), "");
        cJSON_Delete(reply);
    }
    cr_assert_eq(rw_file_count(fx.d.log, "no sentinel answers"), 1,
                 "the fallback to the last master was not logged exactly once");
}

/* harness.c -- the end-to-end test harness (see harness.h).
 *
 * A real redis-server per test in a mktemp -d folder, the real
 * bin/redworkd forked with its stderr in that folder, and small hiredis
 * clients. Reads never block past a deadline: rw_read_reply() polls the
 * socket and feeds hiredis' reader, so a timeout leaves the context usable.
 * Children get PR_SET_PDEATHSIG so a crashed test leaves no servers behind.
 * Set REDWORK_KEEP_TMP=1 to keep the temp folders for a post-mortem. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_START_ATTEMPTS 5
#define REDIS_READY_MS 5000
#define REDIS_STOP_MS 5000
#define POLL_STEP_MS 10
#define PUBLISH_BATCH 64
#define BODY_MAX 4096
#define ARGS_MAX 16

long long rw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- processes ---------------------------------------------------------- */

/* In a freshly forked child: die with the test, and point fd TARGET at
 * PATH (truncated). Returns 0 or -1. */
static int child_setup_fd(int target, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    if (dup2(fd, target) < 0)
        return -1;
    close(fd);
    return 0;
}

static void child_die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int rw_wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return decode_status(status);
        if (r < 0 && errno != EINTR)
            return -1;
        if (rw_now_ms() >= deadline)
            break;
        sleep_ms(5);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return -1;
}

/* 1 if child PID has exited (and is reaped), else 0. */
static int child_exited(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == pid;
}

/* ---- files --------------------------------------------------------------- */

int rw_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

char *rw_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        if (got == 0)
            break;
        len += got;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

int rw_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    for (;;) {
        char *text = rw_read_file(path);
        int found = text && strcasestr(text, needle) != NULL;
        free(text);
        if (found)
            return 1;
        if (rw_now_ms() >= deadline)
            return 0;
        sleep_ms(POLL_STEP_MS);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void rw_rmdir(const char *dir)
{
    const char *keep = getenv("REDWORK_KEEP_TMP");
    if (keep && *keep && strcmp(keep, "0") != 0) {
        fprintf(stderr, "harness: keeping %s\n", dir);
        return;
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int rw_tmpdir(char *buf, size_t len)
{
    if (snprintf(buf, len, "/tmp/redwork-test-XXXXXX") >= (int)len)
        return -1;
    return mkdtemp(buf) ? 0 : -1;
}

/* ---- redis-server ------------------------------------------------------- */

int rw_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t alen = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Gives C the harness's command timeout, or frees it if it failed. */
static redisContext *usable(redisContext *c)
{
    if (!c)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    /* A bound for plain blocking commands; rw_read_reply polls instead. */
    struct timeval cmd = {5, 0};
    redisSetTimeout(c, cmd);
    return c;
}

redisContext *rw_connect(int port)
{
    struct timeval tv = {1, 0};
    return usable(redisConnectWithTimeout("127.0.0.1", port, tv));
}

redisContext *rw_connect_redis(const rw_redis *r)
{
    struct timeval tv = {1, 0};
    return r->sock[0] ? usable(redisConnectUnixWithTimeout(r->sock, tv)) : rw_connect(r->port);
}

/* Polls PING on SERVER until PONG or the deadline, giving up early if
 * child PID exits. Returns 0 when it answers. */
static int wait_ping(const rw_redis *server, pid_t pid, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    while (rw_now_ms() < deadline) {
        if (child_exited(pid))
            return -1;
        redisContext *c = rw_connect_redis(server);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS &&
                     strcmp(r->str, "PONG") == 0;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        sleep_ms(POLL_STEP_MS);
    }
    return -1;
}

#define SERVER_ARGS_MAX 48

/* The command line of R's server on PORT into ARGV (SERVER_ARGS_MAX), using
 * PORTSTR and CONF as storage. */
static void redis_argv(const rw_redis *r, int port, char *portstr, char *conf,
                       const char **argv)
{
    int n = 0;
    argv[n++] = "redis-server";
    if (r->sentinel) { /* redis-server <conf> --sentinel --port P ... */
        snprintf(conf, RW_PATH_MAX + 16, "%s/sentinel.conf", r->dir);
        argv[n++] = conf;
        argv[n++] = "--sentinel";
    }
    argv[n++] = "--port";
    if (port == 0) {
        argv[n++] = "0";
        argv[n++] = "--unixsocket";
        argv[n++] = r->sock;
        argv[n++] = "--unixsocketperm";
        argv[n++] = "700";
    } else {
        snprintf(portstr, 16, "%d", port);
        argv[n++] = portstr;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
    }
    if (!r->sentinel) {
        static const char *const plain[] = {"--save", "", "--appendonly", "no"};
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
            argv[n++] = plain[i];
    }
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    for (int i = 0; r->args != NULL && r->args[i] != NULL && n < SERVER_ARGS_MAX - 1; i++)
        argv[n++] = r->args[i]; /* later arguments win: --appendonly yes */
    argv[n] = NULL;
}

/* Forks redis-server on PORT (0: only on the Unix socket R->sock) in R's
 * folder, with R's extra arguments, and waits until it answers. Returns 0
 * with R->pid set, or -1 (the child is gone). */
static int redis_spawn(rw_redis *r, int port)
{
    char logpath[RW_PATH_MAX + 16], portstr[16], conf[RW_PATH_MAX + 16];
    const char *argv[SERVER_ARGS_MAX];
    snprintf(logpath, sizeof logpath, "%s/redis.log", r->dir);
    redis_argv(r, port, portstr, conf, argv);
    rw_redis server = *r;
    server.port = port;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_die_with_parent(parent);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    if (wait_ping(&server, pid, REDIS_READY_MS) == 0) {
        r->pid = pid;
        r->port = port;
        return 0;
    }
    kill(pid, SIGKILL);
    rw_wait_exit(pid, REDIS_STOP_MS);
    return -1;
}

int rw_redis_start_unix(rw_redis *r)
{
    memset(r, 0, sizeof *r);
    if (rw_tmpdir(r->dir, sizeof r->dir) != 0)
        return -1;
    if (strlen(r->dir) + sizeof "/redis.sock" > sizeof r->sock)
        return -1;
    strcpy(r->sock, r->dir);
    strcat(r->sock, "/redis.sock");
    if (redis_spawn(r, 0) == 0)
        return 0;
    rw_rmdir(r->dir);
    r->dir[0] = '\0';
    return -1;
}

/* Starts R (its dir made, its args and sentinel flag set) on a free port. */
static int redis_start_on_free_port(rw_redis *r)
{
    for (int attempt = 0; attempt < REDIS_START_ATTEMPTS; attempt++) {
        int port = rw_free_port();
        if (port > 0 && redis_spawn(r, port) == 0)
            return 0;
    }
    rw_rmdir(r->dir);
    r->dir[0] = '\0';
    return -1;
}

int rw_redis_start_with(rw_redis *r, const char *const *args)
{
    memset(r, 0, sizeof *r);
    r->args = args;
    if (rw_tmpdir(r->dir, sizeof r->dir) != 0)
        return -1;
    return redis_start_on_free_port(r);
}

int rw_redis_start(rw_redis *r)
{
    return rw_redis_start_with(r, NULL);
}

int rw_sentinel_start(rw_redis *s, int master_port, const char *name, int down_after_ms)
{
    memset(s, 0, sizeof *s);
    s->sentinel = 1;
    if (rw_tmpdir(s->dir, sizeof s->dir) != 0)
        return -1;
    char conf[RW_PATH_MAX + 16], text[512];
    snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
    snprintf(text, sizeof text,
             "sentinel monitor %s 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds %s %d\n"
             "sentinel failover-timeout %s 10000\n",
             name, master_port, name, down_after_ms, name);
    if (rw_write_file(conf, text) != 0) {
        rw_rmdir(s->dir);
        return -1;
    }
    return redis_start_on_free_port(s);
}

static const char *const cluster_args[] = {
    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no", NULL};

/* A string reply to a command on node K, copied into BUF; -1 if none. */
static int cluster_string(rw_cluster *c, int k, char *buf, size_t len, const char *cmd)
{
    redisContext *ctx = rw_connect(c->node[k].port);
    redisReply *r = ctx ? redisCommand(ctx, cmd) : NULL;
    int ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
             r->len < len;
    if (ok)
        memcpy(buf, r->str, r->len + 1);
    if (r)
        freeReplyObject(r);
    if (ctx)
        redisFree(ctx);
    return ok ? 0 : -1;
}

/* Sends a command that must answer +OK to node K. Returns 0 or -1. */
static int cluster_ok(rw_cluster *c, int k, const char *fmt, ...)
{
    redisContext *ctx = rw_connect(c->node[k].port);
    if (!ctx)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (r)
        freeReplyObject(r);
    redisFree(ctx);
    return ok ? 0 : -1;
}

/* 1 when every node says cluster_state:ok and knows all the others. */
static int cluster_ready(rw_cluster *c)
{
    for (int k = 0; k < c->count; k++) {
        char info[4096], want[64];
        if (cluster_string(c, k, info, sizeof info, "CLUSTER INFO") != 0 ||
            !strstr(info, "cluster_state:ok"))
            return 0;
        snprintf(want, sizeof want, "cluster_known_nodes:%d\r", c->count);
        if (!strstr(info, want))
            return 0;
    }
    return 1;
}

void rw_cluster_stop(rw_cluster *c)
{
    for (int k = 0; k < c->count; k++)
        rw_redis_stop(&c->node[k]);
    c->count = 0;
}

int rw_cluster_start(rw_cluster *c, int count)
{
    memset(c, 0, sizeof *c);
    if (count < 1 || count > RW_CLUSTER_MAX)
        return -1;
    for (int k = 0; k < count; k++) {
        if (rw_redis_start_with(&c->node[k], cluster_args) != 0) {
            rw_cluster_stop(c);
            return -1;
        }
        c->count = k + 1;
        if (cluster_string(c, k, c->id[k], sizeof c->id[k], "CLUSTER MYID") != 0) {
            rw_cluster_stop(c);
            return -1;
        }
    }
    /* redis-cli --cluster create: equal slot ranges in order, the nodes met. */
    char addr[RW_CLUSTER_MAX][32], out[RW_PATH_MAX + 32];
    char *argv[RW_CLUSTER_MAX + 5];
    int n = 0;
    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int k = 0; k < count; k++) {
        snprintf(addr[k], sizeof addr[k], "127.0.0.1:%d", c->node[k].port);
        argv[n++] = addr[k];
    }
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    snprintf(out, sizeof out, "%s/cluster-create.log", c->node[0].dir);
    if (rw_run_cmd(argv, NULL, out, out, 20000) != 0) {
        rw_cluster_stop(c);
        return -1;
    }
    long long deadline = rw_now_ms() + 20000;
    while (!cluster_ready(c)) {
        if (rw_now_ms() > deadline) {
            rw_cluster_stop(c);
            return -1;
        }
        sleep_ms(50);
    }
    return 0;
}

int rw_cluster_add_replica(rw_cluster *c, int master)
{
    int k = c->count;
    if (k >= RW_CLUSTER_MAX || rw_redis_start_with(&c->node[k], cluster_args) != 0)
        return -1;
    c->count = k + 1;
    if (cluster_string(c, k, c->id[k], sizeof c->id[k], "CLUSTER MYID") != 0 ||
        cluster_ok(c, k, "CLUSTER MEET 127.0.0.1 %d", c->node[master].port) != 0)
        return -1;
    long long deadline = rw_now_ms() + 20000;
    /* REPLICATE needs the master known first; then the sync and the news. */
    while (cluster_ok(c, k, "CLUSTER REPLICATE %s", c->id[master]) != 0) {
        if (rw_now_ms() > deadline)
            return -1;
        sleep_ms(50);
    }
    for (;;) {
        char info[4096];
        int synced = cluster_string(c, k, info, sizeof info, "INFO replication") == 0 &&
                     strstr(info, "master_link_status:up") != NULL;
        if (synced && cluster_ready(c))
            return k;
        if (rw_now_ms() > deadline)
            return -1;
        sleep_ms(50);
    }
}

int rw_cluster_owner(rw_cluster *c, const char *key)
{
    redisContext *ctx = rw_connect(c->node[0].port);
    if (!ctx)
        return -1;
    long long slot = rw_command_int(ctx, "CLUSTER KEYSLOT %s", key);
    redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
    int owner = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *range = r->element[i];
        if (range->element[0]->integer <= slot && slot <= range->element[1]->integer)
            for (int k = 0; k < c->count; k++)
                if (range->element[2]->element[1]->integer == c->node[k].port)
                    owner = k;
    }
    if (r)
        freeReplyObject(r);
    redisFree(ctx);
    return owner;
}

/* 1 when every node's CLUSTER SLOTS gives SLOT to node TO. */
static int slot_moved(rw_cluster *c, int slot, int to)
{
    for (int k = 0; k < c->count; k++) {
        redisContext *ctx = rw_connect(c->node[k].port);
        redisReply *r = ctx ? redisCommand(ctx, "CLUSTER SLOTS") : NULL;
        int there = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *range = r->element[i];
            if (range->element[0]->integer <= slot && slot <= range->element[1]->integer)
                there = range->element[2]->element[1]->integer == c->node[to].port;
        }
        if (r)
            freeReplyObject(r);
        if (ctx)
            redisFree(ctx);
        if (!there)
            return 0;
    }
    return 1;
}

int rw_cluster_move_slot(rw_cluster *c, int slot, int from, int to, int stop_at_migrating)
{
    if (cluster_ok(c, to, "CLUSTER SETSLOT %d IMPORTING %s", slot, c->id[from]) != 0 ||
        cluster_ok(c, from, "CLUSTER SETSLOT %d MIGRATING %s", slot, c->id[to]) != 0)
        return -1;
    if (stop_at_migrating)
        return 0;
    if (cluster_ok(c, to, "CLUSTER SETSLOT %d NODE %s", slot, c->id[to]) != 0 ||
        cluster_ok(c, from, "CLUSTER SETSLOT %d NODE %s", slot, c->id[to]) != 0)
        return -1;
    for (int k = 0; k < c->count; k++)
        if (k != to && k != from &&
            cluster_ok(c, k, "CLUSTER SETSLOT %d NODE %s", slot, c->id[to]) != 0)
            return -1;
    long long deadline = rw_now_ms() + 10000;
    while (!slot_moved(c, slot, to)) {
        if (rw_now_ms() > deadline)
            return -1;
        sleep_ms(50);
    }
    return 0;
}

/* Stops the server process, if any, leaving its folder. */
static void redis_kill(rw_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        rw_wait_exit(r->pid, REDIS_STOP_MS);
        r->pid = 0;
    }
}

void rw_redis_kill(rw_redis *r)
{
    redis_kill(r);
}

int rw_redis_restart(rw_redis *r)
{
    redis_kill(r);
    /* The port was ours a moment ago; retry briefly in case it lingers. */
    for (int attempt = 0; attempt < REDIS_START_ATTEMPTS; attempt++) {
        if (redis_spawn(r, r->port) == 0)
            return 0;
        sleep_ms(100);
    }
    return -1;
}

void rw_redis_stop(rw_redis *r)
{
    redis_kill(r);
    if (r->dir[0]) {
        rw_rmdir(r->dir);
        r->dir[0] = '\0';
    }
}

/* ---- replies ------------------------------------------------------------ */

redisReply *rw_read_reply(redisContext *c, long long deadline_ms)
{
    /* Flush pipelined commands first (blocking, bounded by SO_SNDTIMEO). */
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return NULL;
    }
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return NULL;
        if (reply)
            return reply;
        long long left = deadline_ms - rw_now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return NULL;
        if (rc == 0)
            continue; /* the deadline check above ends it */
        if (redisBufferRead(c) != REDIS_OK)
            return NULL;
    }
}

long long rw_command_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = LLONG_MIN;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    if (r)
        freeReplyObject(r);
    return v;
}

long long rw_exists(redisContext **c, const char *key)
{
    for (int hop = 0; hop < 2; hop++) {
        redisReply *r = redisCommand(*c, "EXISTS %s", key);
        long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : LLONG_MIN;
        const char *colon = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0
                                ? strrchr(r->str, ':') : NULL;
        int port = colon ? atoi(colon + 1) : 0;
        if (r)
            freeReplyObject(r);
        if (port <= 0)
            return v;
        redisContext *there = rw_connect(port);
        if (!there)
            return LLONG_MIN;
        redisFree(*c);
        *c = there;
    }
    return LLONG_MIN;
}

char *rw_hget(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    char *v = NULL;
    if (r && r->type == REDIS_REPLY_STRING)
        v = strdup(r->str);
    if (r)
        freeReplyObject(r);
    return v;
}

long long rw_wait_hash_at_least(int port, const char *key, const char *field,
                                long long min, int timeout_ms)
{
    redisContext *c = rw_connect(port);
    if (!c)
        return -1;
    long long deadline = rw_now_ms() + timeout_ms, last = -1;
    for (;;) {
        char *v = rw_hget(c, key, field);
        if (v) {
            last = strtoll(v, NULL, 10);
            free(v);
        }
        if (last >= min || rw_now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    redisFree(c);
    return last;
}

const char *rw_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int rw_result_is(const cJSON *reply, const char *want, char *got, size_t gotlen)
{
    cJSON *w = cJSON_Parse(want);
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(reply, "result");
    int same = w != NULL && result != NULL && cJSON_Compare(result, w, 1);
    char *text = result != NULL ? cJSON_PrintUnformatted(result) : NULL;
    snprintf(got, gotlen, "%s", text != NULL ? text : "(none)");
    cJSON_free(text);
    cJSON_Delete(w);
    return same;
}

int rw_bulk_count_code(const rw_bulk *b, const char *code)
{
    int k = 0;
    for (int i = 0; i < b->n; i++)
        k += b->reply[i] && strcmp(rw_error_code(b->reply[i]), code) == 0;
    return k;
}

const char *rw_error_code(const cJSON *reply)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
    return cJSON_IsObject(err) ? rw_str(err, "code") : "";
}

/* ---- the daemon ---------------------------------------------------------- */

const char *rw_root(void)
{
    const char *root = getenv("REDWORK_ROOT");
    return root && *root ? root : ".";
}

int rw_daemon_config(rw_daemon *d, const char *dir, int port, const char *tag,
                     const rw_opts *o)
{
    memset(d, 0, sizeof *d);
    d->port = port;
    d->sock[0] = '\0';
    if (o->redis_url != NULL && strncmp(o->redis_url, "unix://", 7) == 0) {
        const char *path = o->redis_url + 7, *db = strstr(path, "?db=");
        snprintf(d->sock, sizeof d->sock, "%.*s", (int)strcspn(path, "?"), path);
        d->db = db ? atoi(db + 4) : 0;
    }
    snprintf(d->id, sizeof d->id, "t-%s-%ld", tag, (long)getpid());
    snprintf(d->conf, sizeof d->conf, "%s/redwork.ini", dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", dir);
    snprintf(d->hb_key, sizeof d->hb_key, "redwork:worker:%s", d->id);

    char root[PATH_MAX], hdir[PATH_MAX + 16];
    if (!realpath(rw_root(), root))
        return -1;
    snprintf(hdir, sizeof hdir, "%s/handlers", root);
    char dh[128] = "";
    if (o->default_handler)
        snprintf(dh, sizeof dh, "default_handler = %s\n", o->default_handler);

    char where[RW_PATH_MAX + 1024];
    if (o->redis_lines != NULL)
        snprintf(where, sizeof where, "%s", o->redis_lines);
    else if (o->redis_url != NULL)
        snprintf(where, sizeof where, "url = %s\n", o->redis_url);
    else
        snprintf(where, sizeof where, "host = 127.0.0.1\nport = %d\n", port);
    char text[8192];
    int n = snprintf(text, sizeof text,
                     "# written by the redwork test harness\n"
                     "[redis]\n"
                     "%s"
                     "connect_timeout_ms = 1000\n"
                     "\n"
                     "[worker]\n"
                     "id = %s\n"
                     "channels = %s\n"
                     "threads = %d\n"
                     "handlers_dir = %s\n"
                     "claim = %s\n"
                     "%s%s\n"
                     "%s",
                     where, d->id, o->channels ? o->channels : "request",
                     o->threads ? o->threads : 2,
                     o->handlers_dir ? o->handlers_dir : hdir,
                     o->claim_on ? "on" : "off", dh,
                     o->worker_extra ? o->worker_extra : "",
                     o->extra ? o->extra : "");
    if (n < 0 || (size_t)n >= sizeof text)
        return -1;
    return rw_write_file(d->conf, text);
}

/* Forks BIN with ARGV, stderr to ERR_PATH and stdout to ERR_PATH.out.
 * Returns the child's pid or -1. */
static pid_t spawn(char *const argv[], const char *err_path)
{
    char out_path[RW_PATH_MAX + 8];
    snprintf(out_path, sizeof out_path, "%s.out", err_path);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        child_die_with_parent(parent);
        if (child_setup_fd(2, err_path) < 0 || child_setup_fd(1, out_path) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void daemon_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/bin/redworkd", rw_root());
}

/* A connection to the Redis (and database) D uses, or NULL. */
static redisContext *daemon_redis(const rw_daemon *d)
{
    rw_redis r = {.port = d->port};
    snprintf(r.sock, sizeof r.sock, "%s", d->sock);
    redisContext *c = rw_connect_redis(&r);
    if (c && d->db != 0) {
        redisReply *ok = redisCommand(c, "SELECT %d", d->db);
        int selected = ok && ok->type == REDIS_REPLY_STATUS;
        freeReplyObject(ok);
        if (!selected) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Spawns D's daemon and waits (bounded) until its PROCESSES workers' heartbeat
 * keys exist -- 0: the single daemon's own key. Returns 0, or -1 (it is then
 * stopped). */

static int start_and_wait(rw_daemon *d, int processes, int timeout_ms)
{
    char bin[RW_PATH_MAX];
    daemon_path(bin, sizeof bin);
    char *argv[] = {bin, "-c", d->conf, NULL};
    pid_t pid = spawn(argv, d->log);
    if (pid < 0)
        return -1;
    d->pid = pid;

    int keys = processes > 0 ? processes : 1;
    long long deadline = rw_now_ms() + timeout_ms;
    redisContext *c = NULL;
    while (rw_now_ms() < deadline) {
        if (child_exited(pid)) {
            d->pid = 0;
            if (c)
                redisFree(c);
            return -1;
        }
        if (!c)
            c = daemon_redis(d);
        int ready = 0;
        for (int k = 1; c && k <= keys; k++) {
            char key[192];
            if (processes > 0)
                rw_worker_key(d, k, key, sizeof key);
            else
                snprintf(key, sizeof key, "%s", d->hb_key);
            long long e = rw_exists(&c, key);
            if (e == LLONG_MIN) {
                redisFree(c);
                c = NULL;
                break;
            }
            ready += e == 1;
        }
        if (ready == keys) {
            redisFree(c);
            return 0;
        }
        sleep_ms(POLL_STEP_MS);
    }
    if (c)
        redisFree(c);
    rw_daemon_stop(d, 2000);
    return -1;
}

int rw_daemon_start(rw_daemon *d, int timeout_ms)
{
    return start_and_wait(d, 0, timeout_ms);
}

int rw_daemon_wait(rw_daemon *d, int timeout_ms)
{
    if (d->pid <= 0)
        return -1;
    int st = rw_wait_exit(d->pid, timeout_ms);
    d->pid = 0;
    return st;
}

int rw_daemon_stop(rw_daemon *d, int timeout_ms)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    return rw_daemon_wait(d, timeout_ms);
}

int rw_run_daemon(const char *err_path, int timeout_ms, const char *arg, ...)
{
    char bin[RW_PATH_MAX];
    daemon_path(bin, sizeof bin);
    char *argv[ARGS_MAX + 2];
    int argc = 0;
    argv[argc++] = bin;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < ARGS_MAX; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    pid_t pid = spawn(argv, err_path);
    if (pid < 0)
        return -1;
    return rw_wait_exit(pid, timeout_ms);
}

/* ---- the fixture ---------------------------------------------------------- */

int rw_env_start(rw_env *e, const char *tag, const rw_opts *o)
{
    memset(e, 0, sizeof *e);
    if (rw_redis_start(&e->redis) != 0)
        return -1;
    if (rw_daemon_config(&e->daemon, e->redis.dir, e->redis.port, tag, o) != 0 ||
        rw_daemon_start(&e->daemon, 10000) != 0) {
        char *log = rw_read_file(e->daemon.log);
        fprintf(stderr, "harness: daemon did not start; its log:\n%s\n",
                log ? log : "(none)");
        free(log);
        rw_redis_stop(&e->redis);
        return -1;
    }
    return 0;
}

int rw_env_stop(rw_env *e)
{
    int st = rw_daemon_stop(&e->daemon, 15000);
    rw_redis_stop(&e->redis);
    return st;
}

/* ---- one call ------------------------------------------------------------ */

/* The JSON body of a pub/sub "message" (3 elements) or "pmessage" (4)
 * reply, with its channel in *CHANNEL; NULL if R is something else. */
static cJSON *parse_message(const redisReply *r, const char **channel)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return NULL;
    const redisReply *kind = r->element[0];
    size_t chan_i, body_i;
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "message") == 0 &&
        r->elements == 3) {
        chan_i = 1;
        body_i = 2;
    } else if (kind->type == REDIS_REPLY_STRING &&
               strcmp(kind->str, "pmessage") == 0 && r->elements == 4) {
        chan_i = 2;
        body_i = 3;
    } else {
        return NULL;
    }
    if (r->element[chan_i]->type != REDIS_REPLY_STRING ||
        r->element[body_i]->type != REDIS_REPLY_STRING)
        return NULL;
    *channel = r->element[chan_i]->str;
    return cJSON_ParseWithLength(r->element[body_i]->str,
                                 r->element[body_i]->len);
}

/* 1 if R confirms a (p)subscribe to NAME. */
static int subscribe_confirmed(const redisReply *r, const char *kind,
                               const char *name)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[0]->str, kind) == 0 &&
           r->element[1]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[1]->str, name) == 0;
}

cJSON *rw_call(int port, const char *channel, const char *body,
               const char *req_id, const char *prefix, int timeout_ms,
               long long *published)
{
    char reply_chan[256];
    snprintf(reply_chan, sizeof reply_chan, "%s%s", prefix ? prefix : "callback:",
             req_id);
    if (published)
        *published = -1;
    cJSON *result = NULL;
    redisContext *sub = rw_connect(port);
    redisContext *pub = rw_connect(port);
    if (!sub || !pub)
        goto done;

    redisReply *r = redisCommand(sub, "SUBSCRIBE %s", reply_chan);
    int ok = subscribe_confirmed(r, "subscribe", reply_chan);
    if (r)
        freeReplyObject(r);
    if (!ok)
        goto done;

    long long n = rw_command_int(pub, "PUBLISH %s %s", channel, body);
    if (published)
        *published = n;
    if (n < 1)
        goto done;

    long long deadline = rw_now_ms() + timeout_ms;
    while (!result) {
        r = rw_read_reply(sub, deadline);
        if (!r)
            break;
        const char *chan = NULL;
        result = parse_message(r, &chan);
        freeReplyObject(r);
    }
done:
    if (sub)
        redisFree(sub);
    if (pub)
        redisFree(pub);
    return result;
}

/* ---- many in flight ------------------------------------------------------- */

int rw_bulk_open(rw_bulk *b, int port, const char *tag, int n)
{
    memset(b, 0, sizeof *b);
    b->port = port;
    b->n = n;
    snprintf(b->tag, sizeof b->tag, "%s", tag);
    b->count = calloc((size_t)n + 1, sizeof *b->count);
    b->reply = calloc((size_t)n + 1, sizeof *b->reply);
    b->arrival_ms = calloc((size_t)n + 1, sizeof *b->arrival_ms);
    b->sub = rw_connect(port);
    b->pub = rw_connect(port);
    b->t0_ms = rw_now_ms();
    if (!b->count || !b->reply || !b->arrival_ms || !b->sub || !b->pub)
        return -1;
    redisReply *r = redisCommand(b->sub, "PSUBSCRIBE callback:*");
    int ok = subscribe_confirmed(r, "psubscribe", "callback:*");
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

void rw_bulk_req_id(const rw_bulk *b, int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s-%d", b->tag, i);
}

typedef struct publisher {
    pthread_t thread;
    rw_bulk *b;
    const char *channel;
    int first, end, step; /* requests first, first + step, ... below end */
    rw_body_fn fn;
    void *arg;
    int published; /* PUBLISHes that reached a subscriber, -1 on error */
} publisher;

/* One publisher thread: its own connection, requests first, first+step,
 * ... pipelined PUBLISH_BATCH at a time. */
static void *publisher_main(void *p_)
{
    publisher *p = p_;
    redisContext *c = rw_connect(p->b->port);
    if (!c) {
        p->published = -1;
        return NULL;
    }
    char body[BODY_MAX], id[96];
    int i = p->first;
    while (i < p->end && p->published >= 0) {
        int batch = 0;
        for (; i < p->end && batch < PUBLISH_BATCH; i += p->step, batch++) {
            rw_bulk_req_id(p->b, i, id, sizeof id);
            if (p->fn(i, id, body, sizeof body, p->arg) != 0 ||
                redisAppendCommand(c, "PUBLISH %s %s", p->channel, body) != REDIS_OK) {
                p->published = -1;
                break;
            }
        }
        for (int k = 0; k < batch; k++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
                p->published = -1;
                break;
            }
            if (r->type == REDIS_REPLY_INTEGER && r->integer >= 1 && p->published >= 0)
                p->published++;
            freeReplyObject(r);
        }
    }
    redisFree(c);
    return NULL;
}

int rw_bulk_publish(rw_bulk *b, const char *channel, int nthreads,
                    rw_body_fn fn, void *arg)
{
    return rw_bulk_publish_range(b, channel, 0, b->n, nthreads, fn, arg);
}

int rw_bulk_publish_range(rw_bulk *b, const char *channel, int first,
                          int count, int nthreads, rw_body_fn fn, void *arg)
{
    if (nthreads < 1 || nthreads > 64 || first < 0 || count < 0 ||
        first + count > b->n)
        return -1;
    publisher pubs[64];
    memset(pubs, 0, sizeof pubs);
    b->t0_ms = rw_now_ms();
    int started = 0, total = 0;
    for (; started < nthreads; started++) {
        publisher *p = &pubs[started];
        p->b = b;
        p->channel = channel;
        p->first = first + started;
        p->end = first + count;
        p->step = nthreads;
        p->fn = fn;
        p->arg = arg;
        if (pthread_create(&p->thread, NULL, publisher_main, p) != 0) {
            total = -1;
            break;
        }
    }
    for (int k = 0; k < started; k++) {
        pthread_join(pubs[k].thread, NULL);
        if (pubs[k].published < 0)
            total = -1;
        else if (total >= 0)
            total += pubs[k].published;
    }
    return total;
}

long long rw_bulk_send(rw_bulk *b, const char *channel, const char *body)
{
    long long n = rw_command_int(b->pub, "PUBLISH %s %s", channel, body);
    return n == LLONG_MIN ? -1 : n;
}

/* Files one pub/sub reply R into B's counts. */
static void bulk_take(rw_bulk *b, const redisReply *r)
{
    const char *chan = NULL;
    cJSON *j = parse_message(r, &chan);
    if (!j) {
        b->stray++;
        return;
    }
    const char *id = rw_str(j, "req_id");
    size_t taglen = strlen(b->tag);
    int ours = strncmp(chan, "callback:", 9) == 0 && strcmp(chan + 9, id) == 0 &&
               strncmp(id, b->tag, taglen) == 0 && id[taglen] == '-';
    if (ours && strcmp(id + taglen + 1, "fence") == 0) {
        b->fence_seen = 1;
        cJSON_Delete(j);
        return;
    }
    int index = -1;
    if (ours) {
        char *end;
        long v = strtol(id + taglen + 1, &end, 10);
        if (*end == '\0' && end != id + taglen + 1 && v >= 0 && v < b->n)
            index = (int)v;
    }
    if (index < 0) {
        b->stray++;
        cJSON_Delete(j);
        return;
    }
    if (b->count[index]++ == 0) {
        b->seen++;
        b->reply[index] = j;
        b->arrival_ms[index] = rw_now_ms() - b->t0_ms;
    } else {
        cJSON_Delete(j);
    }
}

int rw_bulk_collect(rw_bulk *b, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    while (b->seen < b->n) {
        redisReply *r = rw_read_reply(b->sub, deadline);
        if (!r)
            return -1;
        bulk_take(b, r);
        freeReplyObject(r);
    }
    return 0;
}

int rw_bulk_fence(rw_bulk *b, const char *channel, int timeout_ms)
{
    char id[96], body[192];
    snprintf(id, sizeof id, "%s-fence", b->tag);
    snprintf(body, sizeof body, "{\"handler\":\"echo\",\"req_id\":\"%s\"}", id);
    if (rw_bulk_send(b, channel, body) < 1)
        return -1;
    long long deadline = rw_now_ms() + timeout_ms;
    while (!b->fence_seen) {
        redisReply *r = rw_read_reply(b->sub, deadline);
        if (!r)
            return -1;
        bulk_take(b, r);
        freeReplyObject(r);
    }
    return 0;
}

int rw_bulk_exactly_once(const rw_bulk *b)
{
    int k = 0;
    for (int i = 0; i < b->n; i++)
        k += b->count && b->count[i] == 1;
    return k;
}

void rw_bulk_close(rw_bulk *b)
{
    if (b->reply) {
        for (int i = 0; i < b->n; i++)
            cJSON_Delete(b->reply[i]);
    }
    free(b->reply);
    free(b->count);
    free(b->arrival_ms);
    if (b->sub)
        redisFree(b->sub);
    if (b->pub)
        redisFree(b->pub);
    memset(b, 0, sizeof *b);
}

/* ---- running a program ----------------------------------------------------- */

int rw_run_cmd(char *const argv[], const char *in_path, const char *out_path,
               const char *err_path, int timeout_ms)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_die_with_parent(parent);
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0)
            _exit(127);
        close(in);
        if (child_setup_fd(1, out_path) < 0 || child_setup_fd(2, err_path) < 0)
            _exit(127);
        execvp(argv[0], argv); /* a bare name is looked up in PATH */
        _exit(127);
    }
    return rw_wait_exit(pid, timeout_ms);
}

long long rw_info_int(redisContext *c, const char *section, const char *key,
                      const char *field)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        char want[128];
        snprintf(want, sizeof want, "\n%s:", key);
        const char *line = strstr(r->str, want);
        if (line) {
            line += strlen(want);
            if (field) {
                char f[128];
                snprintf(f, sizeof f, "%s=", field);
                const char *eol = strchr(line, '\n');
                const char *at = strstr(line, f);
                if (at && (!eol || at < eol))
                    v = strtoll(at + strlen(f), NULL, 10);
            } else {
                v = strtoll(line, NULL, 10);
            }
        }
    }
    if (r)
        freeReplyObject(r);
    return v;
}

/* ---- several processes and faults (test_scale) ---------------------------- */

void rw_worker_key(const rw_daemon *d, int k, char *buf, size_t len)
{
    snprintf(buf, len, "%s-%d", d->hb_key, k);
}

int rw_daemon_start_workers(rw_daemon *d, int processes, int timeout_ms)
{
    return processes < 1 ? -1 : start_and_wait(d, processes, timeout_ms);
}

long rw_worker_pid(redisContext *c, const char *key)
{
    char *v = rw_hget(c, key, "pid");
    long pid = -1;
    if (v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (end != v && *end == '\0' && n > 0)
            pid = n;
        free(v);
    }
    return pid;
}

long rw_wait_worker_pid_change(int port, const char *key, long old_pid,
                               int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    redisContext *c = NULL;
    for (;;) {
        if (!c)
            c = rw_connect(port);
        long pid = c ? rw_worker_pid(c, key) : -1;
        if (pid > 0 && pid != old_pid) {
            redisFree(c);
            return pid;
        }
        if (c && c->err) {
            redisFree(c);
            c = NULL;
        }
        if (rw_now_ms() >= deadline)
            break;
        sleep_ms(POLL_STEP_MS);
    }
    if (c)
        redisFree(c);
    return -1;
}

int rw_proc_ended(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    char *text = rw_read_file(path);
    if (!text)
        return 1; /* no such process */
    /* "pid (comm) S ...": the state follows the last ')'. */
    const char *paren = strrchr(text, ')');
    int ended = paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
    free(text);
    return ended;
}

int rw_wait_proc_ended(pid_t pid, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    for (;;) {
        if (rw_proc_ended(pid))
            return 1;
        if (rw_now_ms() >= deadline)
            return 0;
        sleep_ms(2);
    }
}

int rw_file_count(const char *path, const char *needle)
{
    char *text = rw_read_file(path);
    if (!text || !*needle) {
        free(text);
        return 0;
    }
    int n = 0;
    for (const char *at = text; (at = strstr(at, needle)) != NULL; at += strlen(needle))
        n++;
    free(text);
    return n;
}

int rw_wait_file_count(const char *path, const char *needle, int min,
                       int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    for (;;) {
        int n = rw_file_count(path, needle);
        if (n >= min || rw_now_ms() >= deadline)
            return n;
        sleep_ms(POLL_STEP_MS);
    }
}

int rw_replace_file(const char *src, const char *dst, mode_t mode)
{
    char tmp[RW_PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp)
        return -1;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = in >= 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    int ok = in >= 0 && out >= 0;
    char buf[65536];
    ssize_t got;
    while (ok && (got = read(in, buf, sizeof buf)) != 0)
        ok = got > 0 && write(out, buf, (size_t)got) == got;
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        ok = 0;
    /* chmod, not the umask-filtered mode of open(): strict_modes looks at it. */
    if (ok && chmod(tmp, mode) == 0 && rename(tmp, dst) == 0)
        return 0;
    if (out >= 0)
        unlink(tmp);
    return -1;
}


int rw_bulk_take_one(rw_bulk *b, long long deadline_ms)
{
    if (!b->sub)
        return -1;
    redisReply *r = rw_read_reply(b->sub, deadline_ms);
    if (r) {
        bulk_take(b, r);
        freeReplyObject(r);
        return 1;
    }
    if (!b->sub->err)
        return 0; /* the deadline passed */
    redisFree(b->sub);
    b->sub = NULL;
    return -1;
}

/* Opens B's subscriber connection again and PSUBSCRIBEs callback:*.
 * Returns 0 or -1 (B->sub stays NULL). */
static int bulk_resubscribe(rw_bulk *b)
{
    b->sub = rw_connect(b->port);
    if (!b->sub)
        return -1;
    redisReply *r = redisCommand(b->sub, "PSUBSCRIBE callback:*");
    int ok = subscribe_confirmed(r, "psubscribe", "callback:*");
    if (r)
        freeReplyObject(r);
    if (ok)
        return 0;
    redisFree(b->sub);
    b->sub = NULL;
    return -1;
}

int rw_bulk_pump(rw_bulk *b, long long deadline_ms)
{
    while (b->seen < b->n && rw_now_ms() < deadline_ms) {
        if (!b->sub && bulk_resubscribe(b) != 0) {
            sleep_ms(POLL_STEP_MS);
            continue;
        }
        rw_bulk_take_one(b, deadline_ms);
    }
    return b->seen;
}

int rw_bulk_wait_one(rw_bulk *b, int i, int timeout_ms)
{
    long long deadline = rw_now_ms() + timeout_ms;
    while (b->count[i] == 0 && rw_now_ms() < deadline) {
        if (!b->sub && bulk_resubscribe(b) != 0) {
            sleep_ms(POLL_STEP_MS);
            continue;
        }
        rw_bulk_take_one(b, deadline);
    }
    return b->count[i] > 0 ? 0 : -1;
}

/* Sleeps until AT_US on the monotonic clock (no-op if it has passed). */
static void sleep_until_us(long long at_us)
{
    struct timespec ts = {(time_t)(at_us / 1000000), (long)(at_us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *pacer_main(void *arg)
{
    rw_pacer *p = arg;
    redisContext *c = rw_connect(p->b->port);
    char body[BODY_MAX], id[96];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long t0_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    for (int k = 0; k < p->count; k++) {
        if (atomic_load(&p->stop))
            break; /* the rest stay RW_PACER_UNSENT */
        sleep_until_us(t0_us + (long long)k * p->interval_us);
        int i = p->first + k;
        rw_bulk_req_id(p->b, i, id, sizeof id);
        p->at_ms[k] = rw_now_ms();
        if (!c)
            c = rw_connect(p->b->port);
        redisReply *r = NULL;
        if (c && p->fn(i, id, body, sizeof body, p->arg) == 0)
            r = redisCommand(c, "PUBLISH %s %s", p->channel, body);
        if (r && r->type == REDIS_REPLY_INTEGER) {
            p->result[k] = (int)r->integer;
        } else {
            p->result[k] = RW_PACER_FAILED;
            if (c && c->err) { /* reopened for the next request */
                redisFree(c);
                c = NULL;
            }
        }
        if (r)
            freeReplyObject(r);
        atomic_store(&p->progress, k + 1);
    }
    if (c)
        redisFree(c);
    return NULL;
}

int rw_pacer_start(rw_pacer *p, rw_bulk *b, const char *channel, int first,
                   int count, int interval_us, rw_body_fn fn, void *arg)
{
    memset(p, 0, sizeof *p);
    if (first < 0 || count < 1 || first + count > b->n || interval_us < 1)
        return -1;
    p->b = b;
    snprintf(p->channel, sizeof p->channel, "%s", channel);
    p->first = first;
    p->count = count;
    p->interval_us = interval_us;
    p->fn = fn;
    p->arg = arg;
    p->result = malloc((size_t)count * sizeof *p->result);
    p->at_ms = calloc((size_t)count, sizeof *p->at_ms);
    if (!p->result || !p->at_ms)
        return -1;
    for (int k = 0; k < count; k++)
        p->result[k] = RW_PACER_UNSENT;
    atomic_init(&p->stop, 0);
    atomic_init(&p->progress, 0);
    if (pthread_create(&p->thread, NULL, pacer_main, p) != 0)
        return -1;
    p->started = 1;
    return 0;
}

int rw_pacer_join(rw_pacer *p, int stop_now)
{
    if (!p->started)
        return -1;
    if (stop_now)
        atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    p->started = 0;
    return 0;
}

void rw_pacer_free(rw_pacer *p)
{
    if (p->started)
        rw_pacer_join(p, 1);
    free(p->result);
    free(p->at_ms);
    p->result = NULL;
    p->at_ms = NULL;
}

/* ---- HTTP ------------------------------------------------------------------- */

char *rw_http_get(int port, const char *path, int *status, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !body) {
        free(buf);
        return NULL;
    }
    *status = atoi(buf + 9);
    char *out = strdup(body + 4);
    free(buf);
    return out;
}

double rw_metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return atof(line + n + 1);
    return -1;
}

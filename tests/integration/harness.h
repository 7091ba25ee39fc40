/* harness.h -- the end-to-end test harness: a real redis-server, the real
 * redworkd, and clients that speak protocol v1 to them.
 *
 * Everything a test uses lives in structs the test owns (no global mutable
 * state), so Criterion may run tests in parallel: each test gets its own
 * temp folder, its own free loopback port, its own daemon id.
 *
 * Every wait here has a deadline. Functions return 0 / a count on success
 * and -1 (or NULL) on failure; they never abort the test themselves, so the
 * test's own asserts say what went wrong. */
#ifndef REDWORK_TEST_HARNESS_H
#define REDWORK_TEST_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#define RW_PATH_MAX 512

/* ---- time -------------------------------------------------------------- */

/* Milliseconds on the monotonic clock. */
long long rw_now_ms(void);

/* ---- temp folders ------------------------------------------------------- */

/* Makes a new /tmp/redwork-test-XXXXXX folder into BUF. Returns 0 or -1. */
int rw_tmpdir(char *buf, size_t len);

/* Removes DIR and everything in it (kept if REDWORK_KEEP_TMP is set). */
void rw_rmdir(const char *dir);

/* ---- redis-server ------------------------------------------------------ */

typedef struct rw_redis {
    pid_t pid;               /* 0 when not running */
    int port;                /* 0: a Unix socket only */
    char sock[RW_PATH_MAX];  /* that socket's path, "" for TCP */
    char dir[RW_PATH_MAX];   /* mktemp -d folder: redis.log, configs, logs */
    const char *const *args; /* more redis-server arguments, NULL-ended
                                (borrowed, also for restarts), or NULL */
    int sentinel;            /* a sentinel (redis-server CONF --sentinel) */
} rw_redis;

/* Makes a temp folder, starts redis-server on a free loopback port (no
 * persistence) and waits (bounded) until it answers PING. Retries with a
 * new port if the start fails. Returns 0, or -1 (R is left stopped). */
int rw_redis_start(rw_redis *r);

/* Like rw_redis_start, with ARGS (NULL-terminated, borrowed: they must
 * outlive R) after the harness's own, which they override: for example
 * {"--replicaof", "127.0.0.1 6379", "--appendonly", "yes", NULL}. */
int rw_redis_start_with(rw_redis *r, const char *const *args);

/* Starts a Redis Sentinel on a free loopback port, in its own folder,
 * monitoring the master NAME at 127.0.0.1:MASTER_PORT (quorum 2) with
 * down-after-milliseconds DOWN_AFTER_MS, and waits until it answers.
 * Stop it with rw_redis_stop. Returns 0 or -1. */
int rw_sentinel_start(rw_redis *s, int master_port, const char *name, int down_after_ms);

/* A Redis Cluster on loopback: masters, and replicas if added. */
#define RW_CLUSTER_MAX 6
typedef struct rw_cluster {
    rw_redis node[RW_CLUSTER_MAX];
    char id[RW_CLUSTER_MAX][48]; /* CLUSTER MYID of each */
    int count;
} rw_cluster;

/* Starts COUNT (3..RW_CLUSTER_MAX) cluster-enabled redis-servers
 * (cluster-node-timeout 1000, full coverage not required), makes them a
 * cluster with `redis-cli --cluster create` (the 16384 slots in equal
 * ranges, in order) and waits (bounded) until every node says
 * cluster_state:ok and knows all.
 * Returns 0, or -1 (what was started is stopped). */
int rw_cluster_start(rw_cluster *c, int count);

/* Starts one more node, joins it and makes it a replica of node MASTER;
 * waits (bounded) until the master sees it in sync and every node knows
 * it. Returns its index, or -1. */
int rw_cluster_add_replica(rw_cluster *c, int master);

/* Stops every node and removes their folders. */
void rw_cluster_stop(rw_cluster *c);

/* The index of the node whose slot map gives KEY's slot, or -1. */
int rw_cluster_owner(rw_cluster *c, const char *key);

/* Moves SLOT (holding no key) from node FROM to node TO, as a reshard
 * does (IMPORTING on TO, MIGRATING on FROM, then NODE on all), and waits
 * (bounded) until every node sends it to TO. STOP_AT_MIGRATING 1 leaves
 * it half-way, IMPORTING and MIGRATING, where FROM answers -ASK for keys
 * it lacks; rw_cluster_move_slot with 0 then finishes. Returns 0 or -1. */
int rw_cluster_move_slot(rw_cluster *c, int slot, int from, int to, int stop_at_migrating);

/* Like rw_redis_start, for a server that listens only on a Unix socket
 * (--port 0 --unixsocket <dir>/redis.sock). Returns 0, or -1. */
int rw_redis_start_unix(rw_redis *r);

/* SIGTERM, bounded waitpid, then SIGKILL; removes the temp folder.
 * Accepts a stopped R. */
void rw_redis_stop(rw_redis *r);

/* Stops R's server (SIGTERM, bounded), keeping its folder and port for
 * rw_redis_restart(). */
void rw_redis_kill(rw_redis *r);

/* Stops R's server and starts a new one on the same port and folder,
 * waiting (bounded) until it answers PING. Returns 0 or -1. */
int rw_redis_restart(rw_redis *r);

/* A free loopback TCP port (bind to port 0, read it, close), or -1. */
int rw_free_port(void);

/* ---- connections ------------------------------------------------------- */

/* A new connection to 127.0.0.1:PORT (1 s connect timeout), or NULL. */
redisContext *rw_connect(int port);

/* A new connection to R: its TCP port or its Unix socket. NULL on failure. */
redisContext *rw_connect_redis(const rw_redis *r);

/* Runs a command and returns its integer reply, or LLONG_MIN if the
 * command failed or the reply is not an integer. */
long long rw_command_int(redisContext *c, const char *fmt, ...);

/* Reads the next reply from C, waiting at most until DEADLINE_MS
 * (rw_now_ms() scale) without breaking the context on timeout. Returns the
 * reply (free it with freeReplyObject) or NULL on timeout or error. */
redisReply *rw_read_reply(redisContext *c, long long deadline_ms);

/* EXISTS KEY on *C (1 or 0), following a cluster's -MOVED: *C is then
 * the connection to the node named (127.0.0.1). LLONG_MIN on failure. */
long long rw_exists(redisContext **c, const char *key);

/* HGET KEY FIELD as a malloc'd string (caller frees), or NULL. */
char *rw_hget(redisContext *c, const char *key, const char *field);

/* ---- the daemon -------------------------------------------------------- */

/* What a test wants in its config. Zero means "harness default". */
typedef struct rw_opts {
    const char *channels;        /* NULL: "request" */
    const char *default_handler; /* NULL: no default_handler line */
    int threads;                 /* 0: 2 */
    int claim_on;                /* 0: claim = off */
    const char *handlers_dir;    /* NULL: $REDWORK_ROOT/handlers (absolute) */
    const char *worker_extra;    /* more "key = value\n" lines for [worker] */
    const char *extra;           /* more sections, appended verbatim */
    const char *redis_url;       /* NULL: host 127.0.0.1 and the port */
    const char *redis_lines;     /* instead of both: [redis] lines, such as
                                    "sentinels = ...\nmaster_name = ...\n" */
} rw_opts;

typedef struct rw_daemon {
    pid_t pid;                   /* 0 when not running */
    char id[96];                 /* [worker] id, unique per test process */
    char conf[RW_PATH_MAX];      /* the ini file */
    char log[RW_PATH_MAX];       /* the daemon's stderr */
    char hb_key[160];            /* redwork:worker:<id> */
    int port;                    /* the Redis port it uses */
    char sock[RW_PATH_MAX];      /* or its Unix socket (redis_url unix://) */
    int db;                      /* and the database there (unix://...?db=N) */
} rw_daemon;

/* $REDWORK_ROOT, or "." when unset. */
const char *rw_root(void);

/* Writes TEXT to PATH. Returns 0 or -1. */
int rw_write_file(const char *path, const char *text);

/* Reads PATH into a malloc'd NUL-terminated string, or NULL. */
char *rw_read_file(const char *path);

/* Fills D's names (id from TAG and the pid, files in DIR) and writes the
 * config for Redis on PORT as O says. Returns 0 or -1. */
int rw_daemon_config(rw_daemon *d, const char *dir, int port, const char *tag,
                     const rw_opts *o);

/* Starts `redworkd -c D->conf` with stderr to D->log and waits (bounded by
 * TIMEOUT_MS) until its heartbeat key exists. Returns 0; -1 if it exited
 * or did not become ready (it is then stopped). */
int rw_daemon_start(rw_daemon *d, int timeout_ms);

/* SIGTERM and a waitpid bounded by TIMEOUT_MS (then SIGKILL). Returns the
 * exit status (0..255), 128+signal if killed by a signal, or -1 on timeout.
 * Accepts a stopped D (returns -1). */
int rw_daemon_stop(rw_daemon *d, int timeout_ms);

/* Like rw_daemon_stop without the SIGTERM: for a test that signalled the
 * daemon itself and now waits for it to exit. */
int rw_daemon_wait(rw_daemon *d, int timeout_ms);

/* Waits (bounded) for child PID. Returns as rw_daemon_stop; on timeout
 * the child is SIGKILLed and reaped, and -1 is returned. */
int rw_wait_exit(pid_t pid, int timeout_ms);

/* Runs `redworkd ARGS...` (NULL-terminated) to completion with stderr to
 * ERR_PATH, bounded by TIMEOUT_MS. Returns its exit status, or -1. */
int rw_run_daemon(const char *err_path, int timeout_ms, const char *arg, ...);

/* Polls FILE until it contains NEEDLE (case-insensitive), bounded by
 * TIMEOUT_MS. Returns 1 if found, 0 if not. */
int rw_wait_file_contains(const char *path, const char *needle, int timeout_ms);

/* Polls HGET KEY FIELD until its integer value is at least MIN, bounded by
 * TIMEOUT_MS. Returns the last value read, or -1 if none. */
long long rw_wait_hash_at_least(int port, const char *key, const char *field,
                                long long min, int timeout_ms);

/* ---- a test fixture: one Redis and one daemon --------------------------- */

typedef struct rw_env {
    rw_redis redis;
    rw_daemon daemon;
} rw_env;

/* rw_redis_start, rw_daemon_config and rw_daemon_start in one go.
 * Returns 0 or -1 (everything started is stopped again). */
int rw_env_start(rw_env *e, const char *tag, const rw_opts *o);

/* Stops the daemon (if running) and Redis. Returns the daemon's exit
 * status as rw_daemon_stop, or -1 if it was not running. */
int rw_env_stop(rw_env *e);

/* ---- one request, one reply --------------------------------------------- */

/* SUBSCRIBEs <prefix>REQ_ID (confirmed) first, then PUBLISHes BODY on
 * CHANNEL, then waits up to TIMEOUT_MS for the reply and parses it. PREFIX
 * NULL means "callback:". If PUBLISHED is not NULL it receives PUBLISH's
 * result. Returns the parsed reply (cJSON_Delete it) or NULL. */
cJSON *rw_call(int port, const char *channel, const char *body,
               const char *req_id, const char *prefix, int timeout_ms,
               long long *published);

/* The reply's error.code ("" when it has none); never NULL. */
const char *rw_error_code(const cJSON *reply);

/* The string member NAME of OBJ, or "" if missing or not a string. */
const char *rw_str(const cJSON *obj, const char *name);

/* 1 if REPLY's result equals the JSON text WANT, else 0; GOT (GOTLEN
 * bytes) gets the result as text either way. */
int rw_result_is(const cJSON *reply, const char *want, char *got, size_t gotlen);

/* Asserts (in a Criterion test) that REPLY's result is the JSON text WANT. */
#define rw_assert_result(reply, want)                                                  \
    do {                                                                               \
        char got_[1024];                                                               \
        cr_assert(rw_result_is((reply), (want), got_, sizeof got_),                    \
                  "result %s, expected %s", got_, (want));                             \
    } while (0)

/* ---- many requests in flight -------------------------------------------- */

/* Builds the body of request I (req_id REQ_ID) into BUF. Returns 0 or -1. */
typedef int (*rw_body_fn)(int i, const char *req_id, char *buf, size_t len,
                          void *arg);

/* One connection PSUBSCRIBEd to callback:* collecting the replies of N
 * requests with req_ids "<tag>-<i>", plus a fence "<tag>-fence". */
typedef struct rw_bulk {
    int port;
    int n;
    char tag[64];
    redisContext *sub;       /* PSUBSCRIBE callback:* */
    redisContext *pub;       /* for rw_bulk_send / the fence */
    int *count;              /* replies seen per request */
    cJSON **reply;           /* first reply per request (owned) */
    long long *arrival_ms;   /* when it came, from t0_ms */
    long long t0_ms;         /* set by rw_bulk_open, reset by publish */
    int seen;                /* requests with at least one reply */
    int stray;               /* replies that are not ours or malformed */
    int fence_seen;
} rw_bulk;

/* Connects, PSUBSCRIBEs callback:* (confirmed) and allocates for N
 * requests. Returns 0 or -1. */
int rw_bulk_open(rw_bulk *b, int port, const char *tag, int n);

/* Writes the req_id of request I into BUF (at least 96 bytes). */
void rw_bulk_req_id(const rw_bulk *b, int i, char *buf, size_t len);

/* Publishes requests 0..N-1 on CHANNEL from NTHREADS threads, each with
 * its own connection (pipelined), bodies from FN. Returns how many
 * PUBLISHes reached at least one subscriber, or -1 on error. */
int rw_bulk_publish(rw_bulk *b, const char *channel, int nthreads,
                    rw_body_fn fn, void *arg);

/* PUBLISHes one raw BODY on CHANNEL. Returns PUBLISH's result or -1. */
long long rw_bulk_send(rw_bulk *b, const char *channel, const char *body);

/* Collects replies until every request has one, bounded by TIMEOUT_MS.
 * Returns 0 when all came, -1 otherwise (the counts say which). */
int rw_bulk_collect(rw_bulk *b, int timeout_ms);

/* Publishes an echo request "<tag>-fence" on CHANNEL and collects until
 * its reply arrives (bounded). With one daemon thread replies go out in
 * order, so any duplicate of an earlier reply has arrived by then.
 * Returns 0 or -1. */
int rw_bulk_fence(rw_bulk *b, const char *channel, int timeout_ms);

/* Requests with exactly one reply. */
int rw_bulk_exactly_once(const rw_bulk *b);

/* How many of B's first replies have error code CODE ("" = ok). */
int rw_bulk_count_code(const rw_bulk *b, const char *code);

/* Frees everything. Accepts a zeroed B. */
void rw_bulk_close(rw_bulk *b);

/* ---- HTTP (the metrics endpoint) ----------------------------------------- */

/* GET PATH from 127.0.0.1:PORT (HTTP/1.0), bounded by TIMEOUT_MS. Returns
 * the body (malloc'd, NUL-terminated) with the status in *STATUS, or NULL
 * if there was no whole answer. */
char *rw_http_get(int port, const char *path, int *status, int timeout_ms);

/* The value of the sample NAME (with its labels, as written: for example
 * "redwork_requests_total{handler=\"echo\",outcome=\"ok\"}") in the
 * exposition TEXT, or -1 if it is not there. */
double rw_metric(const char *text, const char *name);

/* ---- running a program (the CLI) ----------------------------------------- */

/* Runs ARGV (ARGV[0] a path, or a name looked up in PATH; NULL-terminated) to completion with stdin
 * from IN_PATH (NULL: /dev/null), stdout to OUT_PATH and stderr to
 * ERR_PATH (both truncated), bounded by TIMEOUT_MS. Returns its exit status
 * as rw_wait_exit (0..255, 128+signal), or -1 if it could not be started
 * or did not finish in time (it is then SIGKILLed and reaped). */
int rw_run_cmd(char *const argv[], const char *in_path, const char *out_path,
               const char *err_path, int timeout_ms);

/* The integer FIELD ("calls" of "cmdstat_publish", ...) of INFO SECTION:
 * reads the line "<KEY>:...<FIELD>=<n>" or "<KEY>:<n>". Returns n, or -1
 * if there is no such line. */
long long rw_info_int(redisContext *c, const char *section, const char *key,
                      const char *field);

/* ---- several processes and faults (test_scale) -------------------------- */

/* The heartbeat key of worker process K (1..processes) of D's daemon when
 * its config has processes > 1: redwork:worker:<id>-<K>. */
void rw_worker_key(const rw_daemon *d, int k, char *buf, size_t len);

/* Starts `redworkd -c D->conf` like rw_daemon_start, for a config with
 * processes = PROCESSES: D->pid is the master's, and it waits (bounded by
 * TIMEOUT_MS) until the heartbeat keys of all PROCESSES workers exist.
 * Returns 0; -1 if the master exited or the workers did not all become
 * ready (it is then stopped). */
int rw_daemon_start_workers(rw_daemon *d, int processes, int timeout_ms);

/* The pid field of heartbeat KEY, or -1 if the key or field is missing. */
long rw_worker_pid(redisContext *c, const char *key);

/* Polls heartbeat KEY until its pid field holds a pid other than OLD_PID,
 * bounded by TIMEOUT_MS. Returns the new pid, or -1. */
long rw_wait_worker_pid_change(int port, const char *key, long old_pid,
                               int timeout_ms);

/* 1 if process PID has ended: there is no such process, or it is a zombie
 * its parent has not reaped yet (/proc/PID/stat state Z or X); else 0. */
int rw_proc_ended(pid_t pid);

/* Polls rw_proc_ended(PID) until it is 1, bounded by TIMEOUT_MS. Returns
 * 1 if the process ended, 0 if not. */
int rw_wait_proc_ended(pid_t pid, int timeout_ms);

/* How many times NEEDLE (case-sensitive) occurs in file PATH; 0 if the
 * file cannot be read. */
int rw_file_count(const char *path, const char *needle);

/* Polls PATH until NEEDLE occurs at least MIN times, bounded by
 * TIMEOUT_MS. Returns the last count. */
int rw_wait_file_count(const char *path, const char *needle, int min,
                       int timeout_ms);

/* Replaces DST with a copy of SRC the way a deployment must: writes
 * "DST.tmp" in DST's folder (a name that does not end in .so), sets MODE,
 * then rename()s it over DST, so a reader sees the old file or the new one,
 * never a half-written one. Returns 0 or -1. */
int rw_replace_file(const char *src, const char *dst, mode_t mode);

/* Publishes requests FIRST..FIRST+COUNT-1 of B (within 0..N-1) like
 * rw_bulk_publish. Returns how many PUBLISHes reached a subscriber, or -1. */
int rw_bulk_publish_range(rw_bulk *b, const char *channel, int first,
                          int count, int nthreads, rw_body_fn fn, void *arg);

/* Reads one reply on B's subscriber connection, waiting at most until
 * DEADLINE_MS, and files it. Returns 1 if one was read, 0 on timeout, -1
 * if the connection broke (B->sub is then freed and NULL). */
int rw_bulk_take_one(rw_bulk *b, long long deadline_ms);

/* Collects replies until DEADLINE_MS or until every request has one. If
 * the subscriber connection breaks (Redis restarted), it reconnects and
 * PSUBSCRIBEs again, polling until the deadline; replies published while
 * it was away are not seen. Returns B->seen. */
int rw_bulk_pump(rw_bulk *b, long long deadline_ms);

/* Collects until request I has a reply, bounded by TIMEOUT_MS (with
 * rw_bulk_pump's reconnects). Returns 0, or -1. */
int rw_bulk_wait_one(rw_bulk *b, int i, int timeout_ms);

/* A steady load: a thread that publishes requests FIRST..FIRST+COUNT-1 of
 * a bulk one at a time, the k-th INTERVAL_US * k after the start (it does
 * not catch up in bursts when late), on its own connection. A PUBLISH that
 * fails (Redis away) is recorded and the connection reopened for the next
 * one, so the load runs through a Redis restart. Everything but STOP and
 * PROGRESS is written by the thread alone and read after rw_pacer_join. */
typedef struct rw_pacer {
    rw_bulk *b;
    char channel[128];
    int first, count, interval_us;
    rw_body_fn fn;
    void *arg;
    int *result;         /* per request (index - first): PUBLISH's result;
                            RW_PACER_FAILED: Redis did not take it;
                            RW_PACER_UNSENT: stopped before its turn */
    long long *at_ms;    /* when its PUBLISH was started (rw_now_ms) */
    _Atomic int stop;    /* set by rw_pacer_join or the test: stop early */
    _Atomic int progress;/* requests handled so far (sent or failed) */
    pthread_t thread;
    int started;
} rw_pacer;

#define RW_PACER_FAILED (-1)
#define RW_PACER_UNSENT (-2)

/* Starts P publishing COUNT requests from FIRST of B on CHANNEL, one every
 * INTERVAL_US, bodies from FN. Returns 0 or -1. */
int rw_pacer_start(rw_pacer *p, rw_bulk *b, const char *channel, int first,
                   int count, int interval_us, rw_body_fn fn, void *arg);

/* Waits for P's thread to send its last request (it ends by itself within
 * about COUNT * INTERVAL_US plus one connect timeout per failed request);
 * with STOP_NOW it asks it to stop first. Returns 0, or -1 if it was
 * never started. */
int rw_pacer_join(rw_pacer *p, int stop_now);

/* Frees P's arrays. Accepts a zeroed or joined P. */
void rw_pacer_free(rw_pacer *p);

#include "../leaks.h"

#endif

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
    int port;
    char dir[RW_PATH_MAX];   /* mktemp -d folder: redis.log, configs, logs */
} rw_redis;

/* Makes a temp folder, starts redis-server on a free loopback port (no
 * persistence) and waits (bounded) until it answers PING. Retries with a
 * new port if the start fails. Returns 0, or -1 (R is left stopped). */
int rw_redis_start(rw_redis *r);

/* SIGTERM, bounded waitpid, then SIGKILL; removes the temp folder.
 * Accepts a stopped R. */
void rw_redis_stop(rw_redis *r);

/* Stops R's server and starts a new one on the same port and folder,
 * waiting (bounded) until it answers PING. Returns 0 or -1. */
int rw_redis_restart(rw_redis *r);

/* A free loopback TCP port (bind to port 0, read it, close), or -1. */
int rw_free_port(void);

/* ---- connections ------------------------------------------------------- */

/* A new connection to 127.0.0.1:PORT (1 s connect timeout), or NULL. */
redisContext *rw_connect(int port);

/* Runs a command and returns its integer reply, or LLONG_MIN if the
 * command failed or the reply is not an integer. */
long long rw_command_int(redisContext *c, const char *fmt, ...);

/* Reads the next reply from C, waiting at most until DEADLINE_MS
 * (rw_now_ms() scale) without breaking the context on timeout. Returns the
 * reply (free it with freeReplyObject) or NULL on timeout or error. */
redisReply *rw_read_reply(redisContext *c, long long deadline_ms);

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
} rw_opts;

typedef struct rw_daemon {
    pid_t pid;                   /* 0 when not running */
    char id[96];                 /* [worker] id, unique per test process */
    char conf[RW_PATH_MAX];      /* the ini file */
    char log[RW_PATH_MAX];       /* the daemon's stderr */
    char hb_key[160];            /* redwork:worker:<id> */
    int port;                    /* the Redis port it uses */
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

/* Frees everything. Accepts a zeroed B. */
void rw_bulk_close(rw_bulk *b);

/* ---- running a program (the CLI) ----------------------------------------- */

/* Runs ARGV (ARGV[0] a path, NULL-terminated) to completion with stdin
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

#endif

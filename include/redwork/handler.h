/* redwork/handler.h -- the handler SDK: the only header a redwork plugin needs.
 *
 * A handler is a shared object (NAME.so) dropped into the daemon's
 * handlers_dir. It exports one constant struct, redwork_handler_v1, which the
 * REDWORK_HANDLER() macro writes:
 *
 *     #include <redwork/handler.h>
 *
 *     static int hello(void *state, const redwork_request *req,
 *                      redwork_reply *rep) {
 *         (void)state;
 *         const char *who = redwork_request_string(req, "user_id");
 *         if (who == NULL)
 *             return redwork_reply_error(rep, "bad_request", "user_id missing");
 *         return redwork_reply_string(rep, who);
 *     }
 *
 *     REDWORK_HANDLER(.name = "hello", .description = "says who",
 *                     .handle = hello);
 *
 * Build it with:  cc -shared -fPIC -o hello.so hello.c $(pkg-config --cflags --libs redwork-handler)
 *
 * ABI rules. The struct starts with its ABI version and its size, and
 * grows only by appending: a field, once released, never moves, changes
 * type or goes away, and a new minor version only adds fields at the end
 * (and functions to this header). The daemon reads a field only when the
 * plugin's size covers it, so a plugin built against 1.0 loads unchanged
 * into a 1.1 daemon, with the 1.1 fields taken as absent. The daemon
 * refuses a plugin of another MAJOR version or of a newer MINOR version
 * than its own, one smaller than the 1.0 struct, one without a name or a
 * handle callback, and one whose name is already taken; it says which
 * file and why. ABI 1.1 added thread_init/thread_fini, deferred replies,
 * redwork_reply_raw(), redwork_request_thread_state(),
 * redwork_host_worker_id(), redwork_host_draining() and
 * redwork_thread_index().
 *
 * Ownership. The request is borrowed for the duration of handle() and must
 * not be kept. Whatever the handler gives to the reply belongs to the
 * framework afterwards. The host pointer given to init() stays valid until
 * fini() has returned.
 *
 * Threads. handle() runs on many pool threads at once, with the same state
 * pointer: state must be read-only after init(), or protected by the handler.
 * init() and fini() run once each, on the daemon's main thread. Every
 * function below is safe to call from any thread on the objects it is given.
 *
 * cJSON. Plugins link the same shared libcjson as the daemon
 * (`pkg-config --libs redwork-handler` says -lcjson) and never call
 * cJSON_InitHooks(): trees cross between plugin and daemon, and one side's
 * allocator must free what the other's allocated.
 *
 * Reload. On SIGHUP the daemon rescans handlers_dir and re-reads the
 * [handler.NAME] sections of its config file. A changed file is loaded as
 * a new version whose init() runs (with the section as the file has it
 * now) before the old version's fini(); both versions may serve requests
 * for a while: new requests go to the new one, and the old one finishes
 * what it has -- deferred requests included -- before its fini() runs and
 * it is unloaded. Keep nothing in global variables that two versions
 * could share by mistake; state belongs in *state.
 */
#ifndef REDWORK_HANDLER_H
#define REDWORK_HANDLER_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REDWORK_HANDLER_ABI_MAJOR 1
#define REDWORK_HANDLER_ABI_MINOR 1
#define REDWORK_HANDLER_ABI \
    (((uint32_t)REDWORK_HANDLER_ABI_MAJOR << 16) | REDWORK_HANDLER_ABI_MINOR)

/* The name of the symbol the daemon looks up in each plugin. */
#define REDWORK_HANDLER_SYMBOL "redwork_handler_v1"

/* Log levels for redwork_log(). */
#define REDWORK_LOG_DEBUG 0
#define REDWORK_LOG_INFO 1
#define REDWORK_LOG_WARN 2
#define REDWORK_LOG_ERROR 3

typedef struct redwork_host redwork_host;       /* the daemon, for init() */
typedef struct redwork_request redwork_request; /* one request, borrowed */
typedef struct redwork_reply redwork_reply;     /* the reply being built */
typedef struct redwork_deferred redwork_deferred; /* a reply to finish later */

typedef struct redwork_handler {
    uint32_t abi;            /* REDWORK_HANDLER_ABI when built; first field */
    uint32_t size;           /* sizeof(redwork_handler) when built */
    const char *name;        /* routing name: [a-z0-9_-]{1,64}; required */
    const char *description; /* one line for operators; may be NULL */

    /* Optional. Called once at start with the daemon's host handle. Store
     * whatever handle() needs in *state (NULL if nothing). Return 0 on
     * success; non-zero refuses the plugin (the daemon logs it and starts
     * with the others; fini() is not called). */
    int (*init)(const redwork_host *host, void **state);

    /* Required. Handles one request: set a result or an error on rep.
     * Runs concurrently on many threads. Return 0 on success. Non-zero with
     * no error set on rep makes the reply a 'handler_failed' error; an error
     * set on rep is always sent as it is. Returning 0 with nothing set
     * replies "result": null. */
    int (*handle)(void *state, const redwork_request *req, redwork_reply *rep);

    /* Optional. Called once at exit after the last handle() has returned,
     * with the state init() gave. */
    void (*fini)(void *state);

    /* ---- ABI 1.1 ------------------------------------------------------ */

    /* Optional. Called on a pool thread before the first handle() of this
     * handler on that thread, with the state init() gave: store the
     * thread's own state (a database connection, a buffer) in
     * *thread_state, where handle() finds it with
     * redwork_request_thread_state(). Return 0; non-zero makes each
     * request that thread runs a 'handler_failed' error, and thread_init
     * is tried again on its next request. */
    int (*thread_init)(void *state, void **thread_state);

    /* Optional. Called once for each thread_state that thread_init made:
     * on that pool thread when the pool stops, or, for a version unloaded
     * by a reload, on the main thread once no request of that version is
     * left (no handle() of it runs on any thread then). Before fini(). */
    void (*thread_fini)(void *state, void *thread_state);
} redwork_handler;

/* REDWORK_HANDLER(.name = "x", .handle = fn, ...) defines the exported
 * redwork_handler_v1 with the ABI version and size filled in. Use it once,
 * at file scope, in exactly one source file of the plugin. */
#define REDWORK_HANDLER(...)                                                 \
    extern __attribute__((visibility("default")))                            \
    const redwork_handler redwork_handler_v1;                                \
    __attribute__((visibility("default")))                                   \
    const redwork_handler redwork_handler_v1 = {                             \
        .abi = REDWORK_HANDLER_ABI, .size = sizeof(redwork_handler),         \
        __VA_ARGS__}

/* ---- the request: borrowed, valid only during handle() ---------------- */

/* The request's correlation id (an integer id comes as its decimal
 * string). Never NULL. The reply goes to <reply_prefix><id>. */
const char *redwork_request_id(const redwork_request *req);

/* The channel the request arrived on. Never NULL. */
const char *redwork_request_channel(const redwork_request *req);

/* The whole request object, envelope fields (req_id, handler, timeout_ms)
 * included. Read-only: do not modify or free it. To put part of it in the
 * reply, copy it with cJSON_Duplicate(), or, cheaper, refer to it with
 * cJSON_AddItemReferenceToObject() / cJSON_CreateObjectReference(): the
 * reply that handle() sets is written before the request is freed. A
 * deferred reply is written after: copy into it, never refer. */
const cJSON *redwork_request_json(const redwork_request *req);

/* The string value of top-level field KEY, or NULL if it is absent or not
 * a string. Borrowed from the request. */
const char *redwork_request_string(const redwork_request *req,
                                   const char *key);

/* Stores the value of top-level field KEY in *out. Returns 0 on success,
 * -1 if it is absent or not of the type: for _int, a JSON number with no
 * fractional part that fits a long long; for _bool, true or false. */
int redwork_request_int(const redwork_request *req, const char *key,
                        long long *out);
int redwork_request_number(const redwork_request *req, const char *key,
                           double *out);
int redwork_request_bool(const redwork_request *req, const char *key,
                         int *out);

/* Milliseconds left before the request's timeout_ms runs out (0 once it
 * has), or -1 if the request has no timeout_ms. A long handler can poll it
 * to give up early. */
long long redwork_request_time_left_ms(const redwork_request *req);

/* (1.1) What thread_init stored in *thread_state for this handler on the
 * calling pool thread; NULL if it has no thread_init (or outside handle()). */
void *redwork_request_thread_state(const redwork_request *req);

/* (1.1) The calling pool thread's index, 0 .. [worker] threads - 1, for
 * per-thread arrays that the handler keeps itself; -1 on any other
 * thread. */
int redwork_thread_index(void);

/* ---- the reply: each call replaces what an earlier call set ----------- */

/* Sets the result to VALUE. Ownership of VALUE moves to the framework in
 * every case, so `redwork_reply_json(rep, cJSON_CreateObject())` is safe.
 * Returns 0, or -1 if VALUE is NULL (an allocation upstream failed). */
int redwork_reply_json(redwork_reply *rep, cJSON *value);

/* Sets the result to the JSON string S (copied). Returns 0, or -1 if S is
 * NULL or out of memory. */
int redwork_reply_string(redwork_reply *rep, const char *s);

/* Makes the reply an error. CODE is one of the protocol's error codes
 * ("bad_request", "handler_failed", ...) or the handler's own
 * [a-z0-9_]{1,32} code; anything else becomes "handler_failed". The message
 * is formatted like printf and truncated to 1 KiB. Returns -1, so a handler
 * can `return redwork_reply_error(...)`. */
int redwork_reply_error(redwork_reply *rep, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* (1.1) Sets the result to LEN bytes of JSON text (copied): one JSON
 * value, already written, put in the reply as it is without building a
 * cJSON tree. It is checked once (RFC 8259 grammar, nesting within 64
 * levels). Returns 0, or -1 if it is not such a value (the reply is then
 * a 'handler_failed' error naming the offset) or out of memory. */
int redwork_reply_raw(redwork_reply *rep, const char *json, size_t len);

/* ---- deferred replies (1.1): finish later, from any thread ------------- *
 *
 * A handler that waits for I/O need not hold its pool thread: it calls
 * redwork_reply_defer() in handle(), returns, and finishes the reply
 * later from a timer, a callback of its own I/O library or another
 * thread:
 *
 *     redwork_deferred *d = redwork_reply_defer(rep);
 *     if (d == NULL)
 *         return redwork_reply_error(rep, "overloaded", "too many deferred");
 *     start_my_io(d);              // handle() returns now; later:
 *     ...
 *     redwork_reply_json(redwork_deferred_reply(d), result);
 *     redwork_deferred_finish(d);  // d is gone after this
 *
 * Rules. Every deferred reply is finished exactly once, by
 * redwork_deferred_finish(), whatever happened meanwhile. The request is
 * answered exactly once: by the finish, or by the daemon first --
 * 'timeout' when the request's timeout_ms runs out, 'shutting_down' when
 * a drain reaches shutdown_timeout_ms -- and a finish after that is
 * accepted and dropped (what it set is freed). A drain waits for deferred
 * requests up to shutdown_timeout_ms; redwork_host_draining() says when
 * one has begun. A reload keeps the old version of a handler loaded until
 * each of its deferred replies is finished; fini() must finish (or know
 * to drop) any it still holds, since a finish after fini() returned would
 * call into an unloaded daemon part. [worker] max_deferred bounds how
 * many are open at once. */

/* Defers REP's request: handle() returns without a reply (its return
 * value and anything set on REP are ignored), and the reply is made
 * through the handle returned. The request itself is still borrowed only
 * until handle() returns: copy what the reply will need. Call it only in
 * handle(), once. Returns
 * the handle, owned by the handler until redwork_deferred_finish(); or
 * NULL when max_deferred are open already or memory ran out (then reply
 * now, on REP, as usual). */
redwork_deferred *redwork_reply_defer(redwork_reply *rep);

/* The reply of D, to fill with the redwork_reply_* setters above before
 * redwork_deferred_finish(D). Owned by D. Use it from one thread at a
 * time. */
redwork_reply *redwork_deferred_reply(redwork_deferred *d);

/* Sends D's reply (or drops it, if the daemon has answered the request
 * already) and frees D: neither D nor its reply may be used after.
 * Any thread. Returns 0 if the reply is sent, 1 if it was dropped. */
int redwork_deferred_finish(redwork_deferred *d);

/* ---- the host: given to init(), valid until fini() returns ------------- */

/* The handler's own name, as routed. */
const char *redwork_host_name(const redwork_host *host);

/* (1.1) The daemon's worker id ([worker] id, or host:pid): what replies
 * carry in their "worker" field. */
const char *redwork_host_worker_id(const redwork_host *host);

/* (1.1) 1 once the daemon has begun to drain (SIGTERM): a long handler or
 * a deferred reply's own thread can poll it to finish early; 0 before. */
int redwork_host_draining(const redwork_host *host);

/* The raw value of KEY in the handler's [handler.NAME] config section, or
 * DEF if the key is absent. Borrowed from the daemon's config. */
const char *redwork_config_string(const redwork_host *host, const char *key,
                                  const char *def);

/* Stores KEY's value (DEF if absent) in *out. Returns 0, or -1 if the value
 * is present but malformed (the daemon logs the file, section and key). */
int redwork_config_int(const redwork_host *host, const char *key,
                       long long def, long long *out);
int redwork_config_bool(const redwork_host *host, const char *key, int def,
                        int *out);

/* Writes one line to the daemon's log at LEVEL (REDWORK_LOG_*), tagged
 * with the handler's name. Thread-safe; keep the host pointer in your state
 * to log from handle(). */
void redwork_log(const redwork_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif /* REDWORK_HANDLER_H */

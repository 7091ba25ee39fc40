/* redwork/client.h -- libredwork: call redwork handlers from C.
 *
 *     redwork_client_options opt;
 *     redwork_client_options_init(&opt);            (127.0.0.1:6379, "request")
 *     char err[256];
 *     redwork_client *c = redwork_client_open(&opt, err, sizeof err);
 *     redwork_result res;
 *     if (redwork_call(c, "greet", "{\"user_id\":\"Alice\"}", 5000, &res) == REDWORK_OK)
 *         printf("%s\n", res.result);                 ("Hello, Alice!" as JSON)
 *     redwork_result_free(&res);
 *     redwork_client_close(c);
 *
 * How it works. A client makes one id, unique across processes and hosts
 * ("rw-" and 16 random hex digits), and SUBSCRIBEs callback:<id> once,
 * before its first request; every request names that channel in reply_to
 * (protocol 1.1), so one exact subscription receives every reply and none
 * can be published before the client listens. Each call's req_id is
 * <id>.<n>.<64 random bits in hex>: a reply is taken only if it names the
 * whole id, so one that sees the client's earlier ids cannot guess the
 * next. (With reply_store_list the daemons store each reply under its own
 * req_id, so the client PSUBSCRIBEs callback:<id>.* and sends no reply_to.)
 * A background thread reads replies and matches them to their callers
 * through a table keyed by req_id; callers publish on a shared connection
 * without waiting for each other (pipelined).
 *
 * Threads. Every function taking a client is thread-safe, except
 * redwork_client_close(), which must be called once, after every other call
 * on the client has returned. Async callbacks run on the client's reader
 * thread (or on the caller's thread when a call fails before it is sent):
 * keep them short; they may start new calls with redwork_call_async(),
 * never wait for one with redwork_call() (the reader would wait for
 * itself), and never close the client.
 *
 * Link with -lredwork (pkg-config redwork-client). */
#ifndef REDWORK_CLIENT_H
#define REDWORK_CLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define REDWORK_API __attribute__((visibility("default")))
#else
#define REDWORK_API
#endif

/* What a call ended with. Each has a fixed error_code string, given below,
 * except REDWORK_ERROR_REPLY, whose code comes from the daemon. */
typedef enum redwork_status {
    REDWORK_OK = 0,          /* the handler's reply: ok true */
    REDWORK_ERROR_REPLY = 1, /* the daemon's reply: ok false, with its code */
    REDWORK_TIMEOUT = 2,     /* "timeout": no reply within the timeout */
    REDWORK_NO_WORKERS = 3,  /* "no_workers": PUBLISH reached nobody */
    REDWORK_CONNECTION = 4,  /* "connection": Redis unreachable or lost, or out of memory */
    REDWORK_INVALID = 5,     /* "invalid": bad arguments (payload not a JSON object, ...;
                                cJSON cannot tell a payload it could not parse
                                from running out of memory while parsing it) */
} redwork_status;

typedef struct redwork_client redwork_client;

/* Everything a client needs to know. Plain arrays, so a struct can be
 * filled, copied and overridden without ownership questions.
 *
 * The struct grows at its end only, and carries its own size: the size a
 * program was built with, set by redwork_client_options_init() (a macro
 * passing sizeof). The library reads and writes only the fields that size
 * covers, so a program built against an older header keeps working with a
 * newer libredwork.so.0, the options it never knew at their defaults. A
 * program built against a newer header on an older library works too, as
 * long as it leaves the options that library does not know at their
 * defaults (zero); redwork_client_open() refuses it otherwise. */
typedef struct redwork_client_options {
    size_t size;                 /* set by redwork_client_options_init() */
    char host[256];              /* a host name or address; or, starting
                                  * with '/', a Unix socket's path */
    int port;
    long long db;
    char username[128];          /* "" for the default user */
    char password[256];          /* "" for no AUTH */
    int connect_timeout_ms;
    int tls;                     /* TLS to Redis, verified against: */
    char tls_ca_file[256];       /* a CA file ("" = the system's CAs), */
    char tls_cert_file[256];     /* optional client certificate and key, */
    char tls_key_file[256];
    char tls_server_name[256];   /* the name to check ("" = host) */
    char channel[256];           /* where requests are published (or added) */
    int transport_stream;        /* the daemons read streams (transport =
                                  * stream): XADD <channel> * msg <json>
                                  * instead of PUBLISH; REDWORK_NO_WORKERS
                                  * cannot happen then: a request waits in
                                  * the stream for a worker */
    char reply_prefix[128];      /* the daemons' reply_prefix */
    int reply_store_list;        /* the daemons store replies (reply_store = list) */
    char sentinels[512];         /* "host:port, ...": find the master through
                                  * Redis Sentinel (host and port are then
                                  * unused); "" for none */
    char master_name[128];       /* the name the sentinels know it by */
    char sentinel_username[128]; /* for the sentinels; "" for none */
    char sentinel_password[256]; /* for the sentinels; "" for no AUTH */
    int cluster;                 /* Redis Cluster: host and port are a seed
                                  * node. Pub/Sub works through any node;
                                  * XADD (transport_stream) goes to the master
                                  * of the channel's slot, stored replies are
                                  * fetched from theirs. PUBLISH counts only
                                  * the node's own subscribers, so
                                  * REDWORK_NO_WORKERS is never reported: a
                                  * call no worker takes times out */
    int stream_shards;           /* the daemons' stream_shards: each request
                                  * goes to one of <channel>{0..N-1}, in turn
                                  * (in a cluster: in turn among the shards of
                                  * one master, a random one per connection);
                                  * 0: to <channel> */
    char client_name[33];        /* the client id's prefix, 1..32 of
                                  * [A-Za-z0-9_-] ("" = "rw"): ids are
                                  * <client_name>-<16 hex digits>, so a Redis
                                  * ACL can grant an application its own reply
                                  * channels (&callback:<client_name>-*) */
} redwork_client_options;

/* One call's outcome. Strings are malloc'd and owned by the struct; free
 * them with redwork_result_free(). */
typedef struct redwork_result {
    redwork_status status;
    char req_id[160];
    char *reply;         /* the reply envelope as received, or NULL */
    char *result;        /* REDWORK_OK: the result as JSON text; else NULL */
    char *error_code;    /* not REDWORK_OK: the code ("timeout", ...); NULL
                            only when even that could not be allocated */
    char *error_message; /* not REDWORK_OK: what went wrong, for people (NULL
                            as error_code) */
    long long latency_us; /* from publish to reply (or to the failure) */
} redwork_result;

/* Called once per async call with its outcome. RES belongs to the callback:
 * free it with redwork_result_free() (or keep it). */
typedef void (*redwork_callback)(redwork_result *res, void *arg);

/* Sets the defaults: 127.0.0.1:6379, db 0, no auth, connect timeout
 * 2000 ms, channel "request", reply_prefix "callback:", no reply store;
 * and opt->size. Cannot fail. Every other call taking options needs them
 * made by it first. */
#define redwork_client_options_init(opt) redwork_client_options_init_size((opt), sizeof *(opt))

/* What redwork_client_options_init() calls: writes the SIZE bytes of OPT
 * (the caller's sizeof). */
REDWORK_API void redwork_client_options_init_size(redwork_client_options *opt, size_t size);

/* Reads what a client needs from the ini file the daemons read: [redis]
 * (the password from the variable password_env names), reply_prefix,
 * reply_store, transport, the tls settings, and the first channel of [worker] channels that
 * is not a pattern. Returns 0, or -1 with ERR naming the file, line and key; OPT is
 * unchanged on error, and when OPT was not made by
 * redwork_client_options_init(). */
REDWORK_API int redwork_client_options_load(redwork_client_options *opt,
                                            const char *ini_path, char *err,
                                            size_t errlen);

/* Sets where Redis is from URL: redis://[user@]host[:port][/db],
 * rediss://... (TLS, verified as the tls_* options say), or
 * unix:///path/to/redis.sock[?db=N]. What the URL leaves out keeps its
 * default (port 6379, db 0). A password in the URL is refused: set the
 * password field. Returns 0, or -1 with ERR saying what is wrong; OPT is
 * unchanged on error (as for redwork_client_options_load). */
REDWORK_API int redwork_client_options_set_url(redwork_client_options *opt, const char *url,
                                               char *err, size_t errlen);

/* Connects, subscribes and starts the reader thread. With sentinels the
 * master is found through them (ROLE must say it is the master), and the
 * client follows it: a sentinel's +switch-master moves its connections to
 * the new master (calls waiting then fail with REDWORK_CONNECTION unless
 * the daemons store replies), as does a -READONLY answer. Returns a
 * client, or NULL with ERR naming the server (or the sentinels) and the
 * reason. */
REDWORK_API redwork_client *redwork_client_open(const redwork_client_options *opt,
                                                char *err, size_t errlen);

/* Fails every call still waiting with REDWORK_CONNECTION ("closed"),
 * stops the reader thread, closes the connections and frees the client.
 * Accepts NULL. Not thread-safe (see above). */
REDWORK_API void redwork_client_close(redwork_client *c);

/* The client's id: every req_id it makes is <id>.<n>.<16 hex digits>, and
 * its replies come on <reply_prefix><id>. */
REDWORK_API const char *redwork_client_id(const redwork_client *c);

/* Starts a call: HANDLER (or NULL: the daemon routes by channel) with
 * PAYLOAD, a JSON object as text (NULL: {}); its req_id, handler and
 * reply_to are set by the client: a payload that has any of them, or a key
 * twice, is refused (REDWORK_INVALID). CB is called exactly once with the
 * outcome, after at most TIMEOUT_MS (> 0) plus the time to deliver it. Returns 0 if the request was
 * published; -1 if the call already failed, in which case CB has been
 * called, on this thread, before the return. */
REDWORK_API int redwork_call_async(redwork_client *c, const char *handler,
                                   const char *payload, int timeout_ms,
                                   redwork_callback cb, void *arg);

/* The same, waiting for the outcome, which is stored in *OUT (free it with
 * redwork_result_free()). Returns OUT->status. */
REDWORK_API redwork_status redwork_call(redwork_client *c, const char *handler,
                                        const char *payload, int timeout_ms,
                                        redwork_result *out);

/* Frees the strings of RES (not RES itself) and clears them. Accepts NULL. */
REDWORK_API void redwork_result_free(redwork_result *res);

/* The fixed error_code of STATUS ("ok", "error_reply", "timeout",
 * "no_workers", "connection", "invalid"). Never NULL. */
REDWORK_API const char *redwork_status_name(redwork_status status);

#ifdef __cplusplus
}
#endif

#endif /* REDWORK_CLIENT_H */

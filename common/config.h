/* config.h -- the daemon's configuration, read from one ini file.
 *
 * Every key is declared once in a table in config.c (section, name, type,
 * bounds, default). Unknown sections or keys, values out of bounds and
 * missing files are errors that name the file, the line and the key. Paths
 * in the file are relative to the file's own directory. A config is
 * read-only after redwork_config_load(), so any thread may read it. */
#ifndef REDWORK_CONFIG_H
#define REDWORK_CONFIG_H

#include <stddef.h>

enum config_transport { TRANSPORT_PUBSUB = 0, TRANSPORT_STREAM };
enum config_reply_store { REPLY_STORE_NONE = 0, REPLY_STORE_LIST };

typedef struct config_entry {
    char *key;
    char *value;
    int line;
} config_entry;

/* [handler.NAME]: free keys for one handler. */
typedef struct config_section {
    char *name;
    config_entry *entries;
    size_t count;
    int line;
} config_section;

/* [routes]: channel glob -> handler name, in file order. */
typedef struct config_route {
    char *glob;
    char *handler;
} config_route;

typedef struct config {
    char *path;

    /* [redis] */
    char *redis_url;       /* as written; host, port, db, username, tls come from it */
    char *redis_host;      /* starting with '/': a Unix socket's path */
    long long redis_port;
    long long redis_db;
    char *redis_username;
    char *redis_password_env; /* the variable's name, "" for none */
    long long connect_timeout_ms;
    long long tls;         /* TLS to Redis (see tls.h) */
    char *tls_ca_file;     /* paths resolved against the file's directory */
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_server_name; /* "" means redis_host */
    char *sentinels;       /* "host:port, ...": the master is found through them */
    char *master_name;
    char *sentinel_username;
    char *sentinel_password_env;
    long long cluster;     /* Redis Cluster: host/port (or url) is a seed node */
    char *redis_where;     /* for messages: "host:port", the socket's path, or
                              "master NAME of sentinels LIST", "cluster
                              of seed host:port" */
    /* With sentinels: what they say and said (sentinel.h), shared by every
     * connection of the process. The one part of a config that changes
     * after load; it is thread-safe. */
    struct redwork_sentinel *sentinel;

    /* [worker] */
    char *id;       /* "" in the file means host:pid, filled in by load */
    int id_is_default; /* id was not in the file */
    char *channels; /* the raw comma list; channel_list holds its items */
    char **channel_list;
    size_t channel_count;
    long long transport; /* enum config_transport */
    char *group;
    long long threads; /* 0 in the file means the number of CPUs */
    long long queue_size;
    long long max_deferred;  /* deferred replies open at once (SDK 1.1) */
    char *handlers_dir; /* resolved against the file's directory */
    char *default_handler;
    char *reply_prefix;
    long long reply_store; /* enum config_reply_store */
    long long reply_ttl_ms;
    long long claim;
    char *claim_prefix;
    long long claim_ttl_ms;
    long long claim_idle_ms;
    long long max_deliveries;
    long long max_request_bytes;
    long long shutdown_timeout_ms;
    long long processes;
    long long stream_maxlen;
    long long stream_shards; /* 0: each stream is its channel; N: <channel>{0..N-1} */
    char **stream_list;      /* transport = stream: every stream key read, */
    size_t stream_count;     /* channel by channel, shard by shard */
    long long strict_modes;

    /* [metrics] */
    char *metrics_listen; /* "host:port" of /metrics and /healthz; "" for none */

    /* [log] */
    long long log_level;  /* enum log_level */
    long long log_format; /* enum log_format */
    long long log_requests; /* a line per request answered */

    config_route *routes;
    size_t route_count;
    config_section *sections;
    size_t section_count;
} config;

/* Reads PATH. Returns a new config, or NULL with a message in ERR such as
 * "etc/redwork.ini:12: [worker] threads: 'x' is not an integer". */
config *redwork_config_load(const char *path, char *err, size_t errlen);

/* Frees everything the config owns. Accepts NULL. */
void redwork_config_free(config *cfg);

/* Sets the worker id of worker INDEX (1..processes) of a supervisor, or of
 * the only worker (0): "<hostname>:<pid>" of the calling process if the
 * file gave no id, else the file's id, with "-<INDEX>" for INDEX > 0. Call
 * it once per process. Returns 0, or -1 out of memory. */
int redwork_config_worker_id(config *cfg, int index);

/* Parses a boolean: on/off, yes/no, true/false, 1/0 (any case). Returns 0
 * with *OUT set, or -1 if V is none of them. */
int redwork_config_parse_bool(const char *v, int *out);

/* The handler the first [routes] glob matching CHANNEL names, or NULL. */
const char *redwork_config_route_for(const config *cfg, const char *channel);

/* The [handler.NAME] section, or NULL if the file has none. */
const config_section *redwork_config_section_for(const config *cfg, const char *name);

/* Makes OUT a copy of S, its own (S NULL: an empty section, with no
 * name). Returns 0, or -1 out of memory (OUT is then empty). */
int redwork_config_section_copy(config_section *out, const config_section *s);

/* Frees what section S owns and makes it empty. */
void redwork_config_section_clear(config_section *s);

/* The value of KEY in SECTION (NULL section or absent key: NULL). */
const config_entry *redwork_config_section_get(const config_section *section,
                                       const char *key);

/* ---- the table of fixed keys, read-only ------------------------------- *
 * The man page redwork.ini(5) is generated from these (man/gen_ini_man.c),
 * so it lists exactly the keys, types, bounds and defaults the parser
 * uses. [routes] and [handler.NAME] hold free keys: they are not here. */

/* One fixed key as the parser's table has it. */
typedef struct config_key_info {
    const char *section; /* "redis", "worker", "metrics" or "log" */
    const char *name;    /* "threads" */
    const char *type;    /* "string", "integer", "boolean" or "enum" */
    long long min, max;  /* integer: the accepted range, both ends in it;
                            string: max is the longest value, 0 for any;
                            boolean, enum: 0 */
    char choices[128];   /* enum: the accepted words as the parser's error
                            lists them, "pubsub, stream"; else "" */
    const char *def;     /* the default as the file would write it; "" for
                            empty (the meaning of "" is the key's own) */
} config_key_info;

/* How many fixed keys the table has. */
size_t redwork_config_key_count(void);

/* Fills OUT with fixed key I, 0 .. redwork_config_key_count() - 1, in the
 * table's order (grouped by section). The strings are static: never
 * freed, never changed. Returns 0, or -1 if I is out of range. Any
 * thread. */
int redwork_config_key_describe(size_t i, config_key_info *out);

#endif

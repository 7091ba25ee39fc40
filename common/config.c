/* config.c -- the daemon's configuration, read from one ini file.
 *
 * Every fixed key is one row of config_keys[]: section, name, type, bounds,
 * default and where it lands in struct config. Defaults go through the same
 * parser as the file's values, so a default and a file value can never be
 * read differently. [routes] and [handler.NAME] hold free keys. inih does
 * the lexing; a reader wrapper counts lines so that every error names the
 * file, the line and the key. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include "protocol.h"
#include "sentinel.h"
#include "url.h"

enum key_type { KEY_STRING, KEY_INT, KEY_BOOL, KEY_ENUM };

typedef struct key_spec {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset; /* of a char * (KEY_STRING) or a long long (the rest) */
    long long min, max; /* KEY_STRING: max is the longest value, 0: any */
    const char *const *choices; /* KEY_ENUM: NULL-terminated, index stored */
    const char *def;
} key_spec;

static const char *const transports[] = {"pubsub", "stream", NULL};
static const char *const reply_stores[] = {"none", "list", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

#define MS_MAX 2147483647LL
#define NAME_MAX_LEN 256
#define STR(s, k, f, d) {s, k, KEY_STRING, offsetof(config, f), 0, 0, NULL, d}
/* A string that ends up in Redis key or channel names: bounded. */
#define NAME(s, k, f, d) {s, k, KEY_STRING, offsetof(config, f), 0, NAME_MAX_LEN, NULL, d}
#define INT(s, k, f, lo, hi, d) {s, k, KEY_INT, offsetof(config, f), lo, hi, NULL, d}
#define BOOL(s, k, f, d) {s, k, KEY_BOOL, offsetof(config, f), 0, 1, NULL, d}
#define ENUM(s, k, f, c, d) {s, k, KEY_ENUM, offsetof(config, f), 0, 0, c, d}

static const key_spec config_keys[] = {
    STR("redis", "url", redis_url, ""),
    STR("redis", "host", redis_host, "127.0.0.1"),
    INT("redis", "port", redis_port, 1, 65535, "6379"),
    INT("redis", "db", redis_db, 0, 2147483647LL, "0"),
    STR("redis", "username", redis_username, ""),
    STR("redis", "password_env", redis_password_env, ""),
    INT("redis", "connect_timeout_ms", connect_timeout_ms, 1, 600000, "2000"),
    BOOL("redis", "tls", tls, "off"),
    STR("redis", "tls_ca_file", tls_ca_file, ""),
    STR("redis", "tls_cert_file", tls_cert_file, ""),
    STR("redis", "tls_key_file", tls_key_file, ""),
    STR("redis", "tls_server_name", tls_server_name, ""),
    STR("redis", "sentinels", sentinels, ""),
    STR("redis", "master_name", master_name, ""),
    STR("redis", "sentinel_username", sentinel_username, ""),
    STR("redis", "sentinel_password_env", sentinel_password_env, ""),
    BOOL("redis", "cluster", cluster, "off"),

    NAME("worker", "id", id, ""),
    STR("worker", "channels", channels, "request"),
    ENUM("worker", "transport", transport, transports, "pubsub"),
    NAME("worker", "group", group, "redwork"),
    INT("worker", "threads", threads, 0, 1024, "0"),
    INT("worker", "queue_size", queue_size, 1, 1048576, "1024"),
    INT("worker", "max_deferred", max_deferred, 0, 1048576, "10000"),
    STR("worker", "handlers_dir", handlers_dir, "handlers"),
    STR("worker", "default_handler", default_handler, ""),
    NAME("worker", "reply_prefix", reply_prefix, PROTOCOL_REPLY_PREFIX),
    ENUM("worker", "reply_store", reply_store, reply_stores, "none"),
    INT("worker", "reply_ttl_ms", reply_ttl_ms, 1, MS_MAX, "60000"),
    BOOL("worker", "claim", claim, "on"),
    NAME("worker", "claim_prefix", claim_prefix, PROTOCOL_CLAIM_PREFIX),
    INT("worker", "claim_ttl_ms", claim_ttl_ms, 1, MS_MAX, "60000"),
    INT("worker", "claim_idle_ms", claim_idle_ms, 1, MS_MAX, "30000"),
    INT("worker", "max_deliveries", max_deliveries, 1, 1000, "5"),
    INT("worker", "max_request_bytes", max_request_bytes, 64, 536870912, "1048576"),
    INT("worker", "shutdown_timeout_ms", shutdown_timeout_ms, 0, 3600000, "10000"),
    INT("worker", "processes", processes, 1, 256, "1"),
    INT("worker", "stream_maxlen", stream_maxlen, 0, 4611686018427387904LL, "1000000"),
    INT("worker", "stream_shards", stream_shards, 0, 1024, "0"),
    BOOL("worker", "strict_modes", strict_modes, "on"),

    STR("metrics", "listen", metrics_listen, ""),

    ENUM("log", "level", log_level, log_levels, "info"),
    ENUM("log", "format", log_format, log_formats, "text"),
    BOOL("log", "requests", log_requests, "off"),
};

#define KEY_COUNT (sizeof config_keys / sizeof config_keys[0])
#define SECTION_PREFIX "handler."

/* What one redwork_config_load() call carries through inih's callbacks. */
typedef struct parse_state {
    config *cfg;
    FILE *file;
    int line;             /* the line inih is handling now */
    char section[256];    /* the section of that line, whole (inih cuts long names) */
    int key_line[KEY_COUNT]; /* where each fixed key was set; 0: default */
    char *err;
    size_t errlen;
    int failed;
} parse_state;

/* Records the first error as "PATH:LINE: [SECTION] KEY: reason". */
__attribute__((format(printf, 5, 6))) static void fail(parse_state *ps,
                                                       int line,
                                                       const char *section,
                                                       const char *key,
                                                       const char *fmt, ...) {
    if (ps->failed)
        return;
    ps->failed = 1;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (key != NULL)
        snprintf(ps->err, ps->errlen, "%s:%d: [%s] %s: %s", ps->cfg->path,
                 line, section, key, reason);
    else
        snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->cfg->path, line, reason);
}

int redwork_config_parse_bool(const char *v, int *out) {
    static const char *const yes[] = {"on", "yes", "true", "1"};
    static const char *const no[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* Writes the NULL-terminated CHOICES into OUT as "a, b, c": the one
 * spelling of the list, in errors and in the man page. */
static void join_choices(const char *const *choices, char *out, size_t len) {
    out[0] = '\0';
    for (const char *const *c = choices; *c != NULL; c++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s",
                 c == choices ? "" : ", ", *c);
}

/* Sets the field of SPEC from text VALUE. Returns 0, or -1 after fail(). */
static int set_value(parse_state *ps, const key_spec *spec, const char *value,
                     int line) {
    char *base = (char *)ps->cfg;
    if (spec->type == KEY_STRING) {
        char **field = (char **)(base + spec->offset);
        if (spec->max > 0 && strlen(value) > (size_t)spec->max) {
            fail(ps, line, spec->section, spec->name,
                 "longer than %lld characters", spec->max);
            return -1;
        }
        char *copy = strdup(value);
        if (copy == NULL) {
            fail(ps, line, spec->section, spec->name, "out of memory");
            return -1;
        }
        free(*field);
        *field = copy;
        return 0;
    }

    long long *field = (long long *)(base + spec->offset);
    long long n = 0;
    if (spec->type == KEY_INT) {
        char *end;
        errno = 0;
        n = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno == ERANGE) {
            fail(ps, line, spec->section, spec->name,
                 "'%s' is not an integer", value);
            return -1;
        }
        if (n < spec->min || n > spec->max) {
            fail(ps, line, spec->section, spec->name,
                 "%lld is out of range %lld..%lld", n, spec->min, spec->max);
            return -1;
        }
    } else if (spec->type == KEY_BOOL) {
        int b = 0;
        if (redwork_config_parse_bool(value, &b) != 0) {
            fail(ps, line, spec->section, spec->name,
                 "'%s' is not a boolean (on/off, yes/no, true/false, 1/0)",
                 value);
            return -1;
        }
        n = b;
    } else {
        const char *const *c = spec->choices;
        while (*c != NULL && strcmp(*c, value) != 0)
            c++;
        if (*c == NULL) {
            char list[128];
            join_choices(spec->choices, list, sizeof list);
            fail(ps, line, spec->section, spec->name,
                 "'%s' is not one of: %s", value, list);
            return -1;
        }
        n = c - spec->choices;
    }
    *field = n;
    return 0;
}

/* 1 if S is a valid handler name: [a-z0-9_-]{1,64}. */
static int valid_handler_name(const char *s) {
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");
    return n > 0 && n <= 64 && s[n] == '\0';
}

static int add_route(parse_state *ps, const char *glob, const char *handler) {
    config *cfg = ps->cfg;
    if (!valid_handler_name(handler)) {
        fail(ps, ps->line, "routes", glob,
             "'%s' is not a handler name ([a-z0-9_-]{1,64})", handler);
        return -1;
    }
    config_route *r = realloc(cfg->routes, (cfg->route_count + 1) * sizeof *r);
    if (r == NULL)
        goto oom;
    cfg->routes = r;
    r += cfg->route_count;
    r->glob = strdup(glob);
    r->handler = strdup(handler);
    cfg->route_count++; /* counted now so config_free frees a half entry */
    if (r->glob == NULL || r->handler == NULL)
        goto oom;
    return 0;
oom:
    fail(ps, ps->line, "routes", glob, "out of memory");
    return -1;
}

/* The [handler.NAME] section, created (empty) if new. NULL when out of
 * memory. */
static config_section *handler_section(parse_state *ps, const char *name) {
    config *cfg = ps->cfg;
    config_section *sec = (config_section *)redwork_config_section_for(cfg, name);
    if (sec != NULL)
        return sec;
    sec = realloc(cfg->sections, (cfg->section_count + 1) * sizeof *sec);
    if (sec == NULL)
        return NULL;
    cfg->sections = sec;
    sec += cfg->section_count;
    memset(sec, 0, sizeof *sec);
    sec->line = ps->line;
    if ((sec->name = strdup(name)) == NULL)
        return NULL;
    cfg->section_count++;
    return sec;
}

static int add_section_entry(parse_state *ps, const char *key,
                             const char *value) {
    const char *section = ps->section;
    config_section *sec = handler_section(ps, section + strlen(SECTION_PREFIX));
    if (sec == NULL)
        goto oom;
    const config_entry *prev = redwork_config_section_get(sec, key);
    if (prev != NULL) {
        fail(ps, ps->line, section, key, "set twice (first on line %d)",
             prev->line);
        return -1;
    }
    config_entry *e = realloc(sec->entries, (sec->count + 1) * sizeof *e);
    if (e == NULL)
        goto oom;
    sec->entries = e;
    e += sec->count;
    e->line = ps->line;
    e->key = strdup(key);
    e->value = strdup(value);
    sec->count++;
    if (e->key == NULL || e->value == NULL)
        goto oom;
    return 0;
oom:
    fail(ps, ps->line, section, key, "out of memory");
    return -1;
}

/* 1 if SECTION is one of the fixed sections of config_keys[]. */
static int is_fixed_section(const char *section) {
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(config_keys[i].section, section) == 0)
            return 1;
    return 0;
}

/* Called for each raw line before inih parses it: keeps the whole name of
 * a [section] header and checks it, so that an unknown or empty section is
 * an error at its own line. */
static void track_section(parse_state *ps, const char *line) {
    if (ps->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* a UTF-8 BOM, which inih skips too */
    line += strspn(line, " \t");
    const char *end = line[0] == '[' ? strchr(line, ']') : NULL;
    if (end == NULL)
        return; /* not a header; or a broken one, which inih reports */
    snprintf(ps->section, sizeof ps->section, "%.*s", (int)(end - line - 1),
             line + 1);
    const char *name = ps->section + strlen(SECTION_PREFIX);
    if (strncmp(ps->section, SECTION_PREFIX, strlen(SECTION_PREFIX)) == 0) {
        if (!valid_handler_name(name))
            fail(ps, ps->line, NULL, NULL, "[%s]: '%s' is not a handler name "
                 "([a-z0-9_-]{1,64})", ps->section, name);
        else if (handler_section(ps, name) == NULL)
            fail(ps, ps->line, NULL, NULL, "out of memory");
    } else if (strcmp(ps->section, "routes") != 0 &&
               !is_fixed_section(ps->section)) {
        fail(ps, ps->line, NULL, NULL, "[%s]: unknown section (known: redis, "
             "worker, log, metrics, routes, handler.NAME)", ps->section);
    }
}

/* inih's callback for each key = value. Returns 1 to go on, 0 on error. */
static int on_entry(void *user, const char *inih_section, const char *key,
                    const char *value) {
    parse_state *ps = user;
    const char *section = ps->section; /* inih's copy may be cut short */
    (void)inih_section;
    if (ps->failed) /* the first error is the one reported */
        return 0;
    if (strcmp(section, "routes") == 0)
        return add_route(ps, key, value) == 0;
    if (strncmp(section, SECTION_PREFIX, strlen(SECTION_PREFIX)) == 0)
        return add_section_entry(ps, key, value) == 0;
    if (*section == '\0') {
        fail(ps, ps->line, "", key, "key outside any section");
        return 0;
    }
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const key_spec *spec = &config_keys[i];
        if (strcmp(spec->section, section) != 0 || strcmp(spec->name, key) != 0)
            continue;
        if (ps->key_line[i] != 0) {
            fail(ps, ps->line, section, key, "set twice (first on line %d)",
                 ps->key_line[i]);
            return 0;
        }
        ps->key_line[i] = ps->line;
        return set_value(ps, spec, value, ps->line) == 0;
    }
    fail(ps, ps->line, section, key, "unknown key");
    return 0;
}

/* inih's line reader: fgets that counts lines and refuses overlong ones
 * instead of letting inih split them into two. */
static char *read_line(char *str, int num, void *stream) {
    parse_state *ps = stream;
    char *line = fgets(str, num, ps->file);
    if (line == NULL)
        return NULL;
    ps->line++;
    track_section(ps, line);
    if (strchr(line, '\n') == NULL && !feof(ps->file)) {
        fail(ps, ps->line, NULL, NULL, "line longer than %d characters",
             num - 3);
        int ch;
        while ((ch = fgetc(ps->file)) != EOF && ch != '\n')
            ;
        str[0] = '\0';
    }
    return line;
}

static const key_spec *spec_named(const char *section, const char *name,
                                  size_t *index) {
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(config_keys[i].section, section) == 0 &&
            strcmp(config_keys[i].name, name) == 0) {
            *index = i;
            return &config_keys[i];
        }
    return NULL;
}

/* The line that set key NAME of SECTION, 0 if it kept its default. */
static int line_in(const parse_state *ps, const char *section, const char *name) {
    size_t i = 0;
    return spec_named(section, name, &i) ? ps->key_line[i] : 0;
}

/* The line that set [worker] key NAME, 0 if it kept its default. */
static int line_of(const parse_state *ps, const char *name) {
    return line_in(ps, "worker", name);
}

/* Replaces the string *FIELD with a copy of VALUE. Returns 0, or -1. */
static int replace(char **field, const char *value) {
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* [redis] sentinels and master_name: the master is found through them, so
 * no key may say where it is; the resolver is made here. */
static int apply_sentinels(parse_state *ps) {
    config *cfg = ps->cfg;
    int line = line_in(ps, "redis", "sentinels");
    if (*cfg->sentinels == '\0') {
        if (*cfg->master_name != '\0') {
            fail(ps, line_in(ps, "redis", "master_name"), "redis", "master_name",
                 "'%s' without sentinels: set sentinels too, or remove it", cfg->master_name);
            return -1;
        }
        return 0;
    }
    static const char *const address_keys[] = {"url", "host", "port"};
    for (size_t i = 0; i < sizeof address_keys / sizeof address_keys[0]; i++)
        if (line_in(ps, "redis", address_keys[i])) {
            fail(ps, line_in(ps, "redis", address_keys[i]), "redis", address_keys[i],
                 "with sentinels the master's address comes from them: remove %s",
                 address_keys[i]);
            return -1;
        }
    if (*cfg->master_name == '\0') {
        fail(ps, line, "redis", "sentinels", "needs master_name: the name the sentinels "
             "monitor the master by");
        return -1;
    }
    const char *password = NULL;
    if (*cfg->sentinel_password_env != '\0' &&
        (password = getenv(cfg->sentinel_password_env)) == NULL) {
        fail(ps, line_in(ps, "redis", "sentinel_password_env"), "redis", "sentinel_password_env",
             "the environment variable %s is not set", cfg->sentinel_password_env);
        return -1;
    }
    char why[512];
    cfg->sentinel = redwork_sentinel_create(cfg->sentinels, cfg->master_name,
                                            cfg->sentinel_username, password, why, sizeof why);
    if (cfg->sentinel == NULL) {
        fail(ps, line, "redis", "sentinels", "%s", why);
        return -1;
    }
    return 0;
}

/* [redis] cluster = on: the address is a seed node; a cluster has one
 * database and no sentinels. */
static int check_cluster(parse_state *ps) {
    config *cfg = ps->cfg;
    int line = line_in(ps, "redis", "cluster");
    if (!cfg->cluster)
        return 0;
    if (cfg->sentinel != NULL) {
        fail(ps, line, "redis", "cluster", "on with sentinels: a cluster finds its masters "
             "itself; give a seed node (url, or host and port) instead of sentinels");
        return -1;
    }
    if (cfg->redis_db != 0) {
        fail(ps, line, "redis", "cluster", "on with db = %lld: a cluster has database 0 only",
             cfg->redis_db);
        return -1;
    }
    return 0;
}

/* [redis] url: the address it gives, checked against the keys it stands
 * for (the file may give one or the other, not both); then where Redis
 * is, for messages. */
static int apply_url(parse_state *ps) {
    config *cfg = ps->cfg;
    int line = line_in(ps, "redis", "url");
    if (*cfg->redis_url != '\0') {
        redwork_url u;
        char why[256];
        if (redwork_url_parse(cfg->redis_url, &u, why, sizeof why) != 0) {
            char shown[512];
            fail(ps, line, "redis", "url", "'%s': %s",
                 redwork_url_redacted(cfg->redis_url, shown, sizeof shown), why);
            return -1;
        }
        const char *clash = line_in(ps, "redis", "host") ? "host"
                            : line_in(ps, "redis", "port") ? "port"
                            : u.db >= 0 && line_in(ps, "redis", "db") ? "db"
                            : *u.username && line_in(ps, "redis", "username") ? "username"
                            : u.tls && line_in(ps, "redis", "tls") && !cfg->tls ? "tls"
                                                                                  : NULL;
        if (clash != NULL) {
            fail(ps, line, "redis", "url", "the url and the key %s both say where Redis is: "
                 "give one of them", clash);
            return -1;
        }
        if (replace(&cfg->redis_host, u.host) != 0 ||
            (*u.username && replace(&cfg->redis_username, u.username) != 0)) {
            fail(ps, line, "redis", "url", "out of memory");
            return -1;
        }
        cfg->redis_port = u.port ? u.port : 6379;
        if (u.db >= 0)
            cfg->redis_db = u.db;
        cfg->tls |= u.tls;
    }
    if (cfg->redis_host[0] == '/' && cfg->tls) {
        fail(ps, line ? line : line_in(ps, "redis", "tls"), "redis", line ? "url" : "tls",
             "TLS is not spoken over a Unix socket (%s)", cfg->redis_host);
        return -1;
    }
    if (apply_sentinels(ps) != 0 || check_cluster(ps) != 0)
        return -1;
    char where[1400];
    if (cfg->cluster)
        snprintf(where, sizeof where, strchr(cfg->redis_host, ':') ? "cluster of seed [%s]:%lld"
                                                                   : "cluster of seed %s:%lld",
                 cfg->redis_host, cfg->redis_port);
    else if (cfg->sentinel != NULL)
        snprintf(where, sizeof where, "master '%s' of sentinels %s", cfg->master_name,
                 cfg->sentinels);
    else if (cfg->redis_host[0] == '/')
        snprintf(where, sizeof where, "%s", cfg->redis_host);
    else
        snprintf(where, sizeof where, strchr(cfg->redis_host, ':') ? "[%s]:%lld" : "%s:%lld",
                 cfg->redis_host, cfg->redis_port);
    if (replace(&cfg->redis_where, where) != 0) {
        fail(ps, 0, NULL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

static int split_channels(parse_state *ps) {
    config *cfg = ps->cfg;
    int line = line_of(ps, "channels");
    char *copy = strdup(cfg->channels);
    if (copy == NULL) {
        fail(ps, line, "worker", "channels", "out of memory");
        return -1;
    }
    char *next = copy;
    while (next != NULL && !ps->failed) {
        char *item = next;
        next = strchr(item, ',');
        if (next != NULL)
            *next++ = '\0';
        item += strspn(item, " \t");
        size_t n = strlen(item);
        while (n > 0 && (item[n - 1] == ' ' || item[n - 1] == '\t'))
            item[--n] = '\0';
        if (n == 0 || strpbrk(item, " \t") != NULL) {
            fail(ps, line, "worker", "channels",
                 "'%s' has an empty or blank-containing channel",
                 cfg->channels);
            break;
        }
        char **list = realloc(cfg->channel_list,
                              (cfg->channel_count + 1) * sizeof *list);
        if (list != NULL)
            cfg->channel_list = list;
        if (list == NULL || (list[cfg->channel_count] = strdup(item)) == NULL) {
            fail(ps, line, "worker", "channels", "out of memory");
            break;
        }
        cfg->channel_count++;
    }
    free(copy);
    return ps->failed ? -1 : 0;
}

/* The stream keys of transport = stream: each channel, or with
 * stream_shards = N its shards <channel>{0} ... <channel>{N-1}, whose hash
 * tags spread them over a cluster's masters (and keep <channel>{i}:dead
 * with its shard). Returns 0, or -1 after fail(). */
static int list_streams(parse_state *ps) {
    config *cfg = ps->cfg;
    if (cfg->transport != TRANSPORT_STREAM) {
        if (line_of(ps, "stream_shards")) {
            fail(ps, line_of(ps, "stream_shards"), "worker", "stream_shards",
                 "set with transport = pubsub: shards are streams");
            return -1;
        }
        return 0;
    }
    size_t shards = cfg->stream_shards > 0 ? (size_t)cfg->stream_shards : 1;
    cfg->stream_list = calloc(cfg->channel_count * shards, sizeof *cfg->stream_list);
    if (cfg->stream_list == NULL) {
        fail(ps, line_of(ps, "channels"), "worker", "channels", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->channel_count; i++)
        for (size_t k = 0; k < shards; k++) {
            size_t n = strlen(cfg->channel_list[i]) + 16;
            char *key = malloc(n);
            if (key == NULL) {
                fail(ps, line_of(ps, "channels"), "worker", "channels", "out of memory");
                return -1;
            }
            if (cfg->stream_shards > 0)
                snprintf(key, n, "%s{%zu}", cfg->channel_list[i], k);
            else
                snprintf(key, n, "%s", cfg->channel_list[i]);
            cfg->stream_list[cfg->stream_count++] = key;
        }
    return 0;
}

/* Makes the relative path in *FIELD (SECTION KEY) relative to the file's
 * directory, and absolute, so that logs and a later chdir cannot make it
 * mean something else. "" stays "". Returns 0, or -1 after fail(). */
static int resolve_path(parse_state *ps, char **field, const char *section,
                        const char *key) {
    config *cfg = ps->cfg;
    size_t i = 0;
    spec_named(section, key, &i);
    if (**field == '\0' || **field == '/')
        return 0;
    char *slash = strrchr(cfg->path, '/');
    char *dir = slash != NULL ? strndup(cfg->path, (size_t)(slash - cfg->path + 1))
                              : strdup(".");
    char *real = dir != NULL ? realpath(dir, NULL) : NULL;
    free(dir);
    if (real == NULL) {
        fail(ps, ps->key_line[i], section, key,
             "cannot resolve the directory of %s: %s", cfg->path, strerror(errno));
        return -1;
    }
    size_t n = strlen(real) + strlen(*field) + 2;
    char *joined = malloc(n);
    if (joined != NULL)
        snprintf(joined, n, "%s/%s", real, *field);
    free(real);
    if (joined == NULL) {
        fail(ps, ps->key_line[i], section, key, "out of memory");
        return -1;
    }
    free(*field);
    *field = joined;
    return 0;
}

/* Whether the character class at P (just past its '[') holds C, in
 * Redis's glob syntax ('^' negates, a-z ranges, '\\' escapes). Sets *END
 * past the class. */
static int class_holds(const char *p, char c, const char **end) {
    int negate = *p == '^', held = 0;
    p += negate;
    while (*p != '\0' && *p != ']') {
        if (*p == '\\' && p[1] != '\0') {
            held |= p[1] == c;
            p += 2;
        } else if (p[1] == '-' && p[2] != '\0' && p[2] != ']') {
            char lo = p[0] < p[2] ? p[0] : p[2], hi = p[0] < p[2] ? p[2] : p[0];
            held |= c >= lo && c <= hi;
            p += 3;
        } else {
            held |= *p++ == c;
        }
    }
    *end = *p == ']' ? p + 1 : p;
    return negate ? !held : held;
}

/* 1 if some channel that begins with PREFIX matches the Redis glob PAT:
 * PREFIX is matched character by character, and once it is used up what
 * is left of PAT can match the free rest (a req_id). */
static int glob_reaches(const char *pat, const char *prefix) {
    for (; *prefix != '\0'; prefix++) {
        switch (*pat) {
        case '\0':
            return 0;
        case '*': /* it can take the rest of PREFIX, and its rest the tail */
            return 1;
        case '?':
            pat++;
            break;
        case '[':
            if (!class_holds(pat + 1, *prefix, &pat))
                return 0;
            break;
        default: /* a literal, escaped or not */
            pat += *pat == '\\' && pat[1] != '\0';
            if (*pat++ != *prefix)
                return 0;
        }
    }
    return 1;
}

/* Checks and derived values that need the whole file. */
static int finish(parse_state *ps) {
    config *cfg = ps->cfg;
    if (split_channels(ps) != 0 || apply_url(ps) != 0)
        return -1;

    if (cfg->processes > 1 && !cfg->claim && cfg->transport == TRANSPORT_PUBSUB) {
        fail(ps, line_of(ps, "claim"), "worker", "claim",
             "off with processes = %lld would run every request %lld times "
             "(each worker receives every message)", cfg->processes, cfg->processes);
        return -1;
    }
    for (size_t i = 0; cfg->transport == TRANSPORT_STREAM && i < cfg->channel_count; i++)
        if (strpbrk(cfg->channel_list[i], "*?[") != NULL) {
            fail(ps, line_of(ps, "channels"), "worker", "channels",
                 "'%s' is a pattern: with transport = stream each channel is "
                 "a stream key", cfg->channel_list[i]);
            return -1;
        }
    /* A subscription that can hear the replies would answer them: a loop
     * of replies to replies until the daemon stops. */
    for (size_t i = 0; cfg->transport == TRANSPORT_PUBSUB && i < cfg->channel_count; i++) {
        const char *ch = cfg->channel_list[i];
        int pattern = strpbrk(ch, "*?[") != NULL;
        if (pattern ? glob_reaches(ch, cfg->reply_prefix)
                    : strncmp(ch, cfg->reply_prefix, strlen(cfg->reply_prefix)) == 0) {
            fail(ps, line_of(ps, "channels"), "worker", "channels",
                 "'%s' %s the reply channels, which begin with reply_prefix '%s': the "
                 "daemon would answer its own replies", ch, pattern ? "can match" : "is one of",
                 cfg->reply_prefix);
            return -1;
        }
    }
    if (list_streams(ps) != 0)
        return -1;
    if (*cfg->metrics_listen) {
        char host[256], why[300] = "";
        int port = 0;
        int bad = redwork_address_parse(cfg->metrics_listen, strlen(cfg->metrics_listen), host,
                                        sizeof host, &port, why, sizeof why) != 0;
        if (bad || port == 0) {
            fail(ps, line_in(ps, "metrics", "listen"), "metrics", "listen", "'%s' %s",
                 cfg->metrics_listen, bad ? why : "needs a port: host:port");
            return -1;
        }
    }
    if (*cfg->default_handler && !valid_handler_name(cfg->default_handler)) {
        fail(ps, line_of(ps, "default_handler"), "worker", "default_handler",
             "'%s' is not a handler name ([a-z0-9_-]{1,64})",
             cfg->default_handler);
        return -1;
    }
    if (*cfg->redis_password_env && getenv(cfg->redis_password_env) == NULL) {
        size_t i = 0;
        spec_named("redis", "password_env", &i);
        fail(ps, ps->key_line[i], "redis", "password_env",
             "the environment variable %s is not set", cfg->redis_password_env);
        return -1;
    }

    cfg->id_is_default = *cfg->id == '\0';
    if (redwork_config_worker_id(cfg, 0) != 0)
        goto oom;

    if (resolve_path(ps, &cfg->handlers_dir, "worker", "handlers_dir") != 0 ||
        resolve_path(ps, &cfg->tls_ca_file, "redis", "tls_ca_file") != 0 ||
        resolve_path(ps, &cfg->tls_cert_file, "redis", "tls_cert_file") != 0 ||
        resolve_path(ps, &cfg->tls_key_file, "redis", "tls_key_file") != 0)
        return -1;
    if (*cfg->tls_cert_file != '\0' && *cfg->tls_key_file == '\0') {
        size_t i = 0;
        spec_named("redis", "tls_cert_file", &i);
        fail(ps, ps->key_line[i], "redis", "tls_cert_file",
             "a client certificate needs tls_key_file too");
        return -1;
    }
    return 0;
oom:
    fail(ps, 0, NULL, NULL, "out of memory");
    return -1;
}

config *redwork_config_load(const char *path, char *err, size_t errlen) {
    config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(cfg);
        return NULL;
    }
    parse_state ps = {.cfg = cfg, .err = err, .errlen = errlen};
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (set_value(&ps, &config_keys[i], config_keys[i].def, 0) != 0)
            goto err;

    ps.file = fopen(path, "r");
    if (ps.file == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto err;
    }
    /* A folder, a device such as /dev/null, or an empty file is no config:
     * starting on defaults by mistake would be worse than stopping. */
    struct stat st;
    const char *not_config = fstat(fileno(ps.file), &st) != 0 ? strerror(errno)
                             : S_ISDIR(st.st_mode)             ? "is a folder, not a config file"
                             : !S_ISREG(st.st_mode)            ? "is not a regular file"
                             : st.st_size == 0                 ? "is empty"
                                                               : NULL;
    if (not_config != NULL) {
        snprintf(err, errlen, "%s: %s", path, not_config);
        fclose(ps.file);
        goto err;
    }
    int rc = ini_parse_stream(read_line, &ps, on_entry, &ps);
    fclose(ps.file);
    if (rc != 0 && !ps.failed)
        fail(&ps, rc, NULL, NULL, "syntax error (expected [section] or key = value)");
    if (ps.failed || finish(&ps) != 0)
        goto err;
    return cfg;
err:
    redwork_config_free(cfg);
    return NULL;
}

void redwork_config_free(config *cfg) {
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (config_keys[i].type == KEY_STRING)
            free(*(char **)((char *)cfg + config_keys[i].offset));
    for (size_t i = 0; i < cfg->channel_count; i++)
        free(cfg->channel_list[i]);
    free(cfg->channel_list);
    for (size_t i = 0; i < cfg->stream_count; i++)
        free(cfg->stream_list[i]);
    free(cfg->stream_list);
    for (size_t i = 0; i < cfg->route_count; i++) {
        free(cfg->routes[i].glob);
        free(cfg->routes[i].handler);
    }
    free(cfg->routes);
    for (size_t i = 0; i < cfg->section_count; i++)
        redwork_config_section_clear(&cfg->sections[i]);
    free(cfg->sections);
    free(cfg->redis_where);
    redwork_sentinel_free(cfg->sentinel);
    free(cfg->path);
    free(cfg);
}

size_t redwork_config_key_count(void) { return KEY_COUNT; }

int redwork_config_key_describe(size_t i, config_key_info *out) {
    static const char *const type_words[] = {
        [KEY_STRING] = "string", [KEY_INT] = "integer",
        [KEY_BOOL] = "boolean", [KEY_ENUM] = "enum",
    };
    if (i >= KEY_COUNT)
        return -1;
    const key_spec *spec = &config_keys[i];
    memset(out, 0, sizeof *out);
    out->section = spec->section;
    out->name = spec->name;
    out->type = type_words[spec->type];
    out->def = spec->def;
    if (spec->type == KEY_INT || spec->type == KEY_STRING) {
        out->min = spec->min;
        out->max = spec->max;
    }
    if (spec->type == KEY_ENUM)
        join_choices(spec->choices, out->choices, sizeof out->choices);
    return 0;
}

int redwork_config_worker_id(config *cfg, int index) {
    char id[400];
    if (cfg->id_is_default) {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(id, sizeof id, "%s:%ld", host, (long)getpid());
    } else if (index > 0) {
        snprintf(id, sizeof id, "%s-%d", cfg->id, index);
    } else {
        return 0;
    }
    char *copy = strdup(id);
    if (copy == NULL)
        return -1;
    free(cfg->id);
    cfg->id = copy;
    return 0;
}

const char *redwork_config_route_for(const config *cfg, const char *channel) {
    for (size_t i = 0; i < cfg->route_count; i++)
        if (fnmatch(cfg->routes[i].glob, channel, 0) == 0)
            return cfg->routes[i].handler;
    return NULL;
}

const config_section *redwork_config_section_for(const config *cfg, const char *name) {
    for (size_t i = 0; i < cfg->section_count; i++)
        if (strcmp(cfg->sections[i].name, name) == 0)
            return &cfg->sections[i];
    return NULL;
}

const config_entry *redwork_config_section_get(const config_section *section,
                                       const char *key) {
    if (section == NULL)
        return NULL;
    for (size_t i = 0; i < section->count; i++)
        if (strcmp(section->entries[i].key, key) == 0)
            return &section->entries[i];
    return NULL;
}

void redwork_config_section_clear(config_section *s) {
    for (size_t j = 0; j < s->count; j++) {
        free(s->entries[j].key);
        free(s->entries[j].value);
    }
    free(s->entries);
    free(s->name);
    memset(s, 0, sizeof *s);
}

int redwork_config_section_copy(config_section *out, const config_section *s) {
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return 0;
    out->line = s->line;
    out->name = strdup(s->name);
    out->entries = s->count > 0 ? calloc(s->count, sizeof *out->entries) : NULL;
    if (out->name == NULL || (s->count > 0 && out->entries == NULL)) {
        redwork_config_section_clear(out);
        return -1;
    }
    for (; out->count < s->count; out->count++) {
        config_entry *e = &out->entries[out->count];
        e->line = s->entries[out->count].line;
        e->key = strdup(s->entries[out->count].key);
        e->value = strdup(s->entries[out->count].value);
        if (e->key == NULL || e->value == NULL) {
            out->count++;
            redwork_config_section_clear(out);
            return -1;
        }
    }
    return 0;
}

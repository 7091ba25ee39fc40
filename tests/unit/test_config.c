/* test_config.c -- loading the ini file (common/config.h).
 *
 * Covers: a file setting every key (each value checked), the defaults when
 * keys are absent, threads = 0 kept as 0, the id filled with host:pid, the
 * channel list split and trimmed, handlers_dir resolved against the file's
 * directory, [routes] order and glob matching, [handler.NAME] sections, the
 * accepted bool spellings and integer bounds, and every kind of bad file:
 * NULL with an error naming the file, the line and the key. Each test writes
 * its ini files into its own mkdtemp() directory. */
#include <criterion/criterion.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "sentinel.h"

static char tmpdir[64];
static char err[512];

static void make_tmpdir(void) {
    strcpy(tmpdir, "/tmp/redwork-config-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    err[0] = '\0';
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void) {
    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = make_tmpdir, .fini = remove_tmpdir);

/* Writes TEXT to tmpdir/NAME; returns the path (static, overwritten by the
 * next call). */
static const char *write_ini(const char *name, const char *text) {
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads TEXT as a file named good.ini and asserts it loads. */
static config *load_ok(const char *text) {
    const char *path = write_ini("good.ini", text);
    config *cfg = redwork_config_load(path, err, sizeof err);
    cr_assert_not_null(cfg, "config_load refused a good file: %s\n%s", err,
                       text);
    return cfg;
}

/* ---- good files -------------------------------------------------------- */

static const char every_key[] =
    "; every key; none at its default but transport and processes, whose\n"
    "; other values have a test of their own\n"
    "[redis]\n"
    "host = redis.example\n"
    "port = 6380\n"
    "db = 3\n"
    "username = alice\n"
    "password_env = REDWORK_TEST_PASSWORD\n"
    "connect_timeout_ms = 1500\n"
    "\n"
    "[worker]\n"
    "id = worker-7\n"
    "channels = jobs\n"
    "transport = pubsub\n"
    "group = crew\n"
    "threads = 12\n"
    "queue_size = 256\n"
    "handlers_dir = /opt/redwork/handlers\n"
    "default_handler = echo\n"
    "reply_prefix = answer:\n"
    "reply_store = list\n"
    "reply_ttl_ms = 5000\n"
    "claim = off\n"
    "claim_prefix = mine:\n"
    "claim_ttl_ms = 7000\n"
    "claim_idle_ms = 8000\n"
    "max_deliveries = 9\n"
    "max_request_bytes = 4096\n"
    "shutdown_timeout_ms = 2500\n"
    "processes = 1\n"
    "stream_maxlen = 500\n"
    "strict_modes = off\n"
    "\n"
    "[log]\n"
    "level = warn\n"
    "format = json\n";

Test(config, every_key_parsed) {
    setenv("REDWORK_TEST_PASSWORD", "secret", 1);
    config *cfg = load_ok(every_key);

    cr_assert_str_eq(cfg->redis_host, "redis.example");
    cr_assert_eq(cfg->redis_port, 6380);
    cr_assert_eq(cfg->redis_db, 3);
    cr_assert_str_eq(cfg->redis_username, "alice");
    cr_assert_str_eq(cfg->redis_password_env, "REDWORK_TEST_PASSWORD");
    cr_assert_eq(cfg->connect_timeout_ms, 1500);

    cr_assert_str_eq(cfg->id, "worker-7");
    cr_assert_eq(cfg->channel_count, 1);
    cr_assert_str_eq(cfg->channel_list[0], "jobs");
    cr_assert_eq(cfg->transport, TRANSPORT_PUBSUB);
    cr_assert_str_eq(cfg->group, "crew");
    cr_assert_eq(cfg->threads, 12);
    cr_assert_eq(cfg->queue_size, 256);
    cr_assert_str_eq(cfg->handlers_dir, "/opt/redwork/handlers");
    cr_assert_str_eq(cfg->default_handler, "echo");
    cr_assert_str_eq(cfg->reply_prefix, "answer:");
    cr_assert_eq(cfg->reply_store, REPLY_STORE_LIST);
    cr_assert_eq(cfg->reply_ttl_ms, 5000);
    cr_assert_eq(cfg->claim, 0);
    cr_assert_str_eq(cfg->claim_prefix, "mine:");
    cr_assert_eq(cfg->claim_ttl_ms, 7000);
    cr_assert_eq(cfg->claim_idle_ms, 8000);
    cr_assert_eq(cfg->max_deliveries, 9);
    cr_assert_eq(cfg->max_request_bytes, 4096);
    cr_assert_eq(cfg->shutdown_timeout_ms, 2500);
    cr_assert_eq(cfg->processes, 1);
    cr_assert_eq(cfg->stream_maxlen, 500);
    cr_assert_eq(cfg->strict_modes, 0);

    cr_assert_eq(cfg->log_level, 2); /* warn */
    cr_assert_eq(cfg->log_format, 1); /* json */

    cr_assert_eq(cfg->route_count, 0);
    cr_assert_eq(cfg->section_count, 0);
    cr_assert_not_null(cfg->path);
    cr_assert_not_null(strstr(cfg->path, "good.ini"));
    redwork_config_free(cfg);
}

Test(config, defaults_when_keys_absent) {
    config *cfg = load_ok("; nothing set\n[worker]\n[redis]\n[log]\n");
    cr_assert_str_eq(cfg->redis_host, "127.0.0.1");
    cr_assert_eq(cfg->redis_port, 6379);
    cr_assert_eq(cfg->redis_db, 0);
    cr_assert_str_eq(cfg->redis_username, "");
    cr_assert_str_eq(cfg->redis_password_env, "");
    cr_assert_eq(cfg->connect_timeout_ms, 2000);

    cr_assert_eq(cfg->channel_count, 1);
    cr_assert_str_eq(cfg->channel_list[0], "request");
    cr_assert_eq(cfg->transport, TRANSPORT_PUBSUB);
    cr_assert_str_eq(cfg->group, "redwork");
    cr_assert_eq(cfg->threads, 0);
    cr_assert_eq(cfg->queue_size, 1024);
    cr_assert_str_eq(cfg->default_handler, "");
    cr_assert_str_eq(cfg->reply_prefix, "callback:");
    cr_assert_eq(cfg->reply_store, REPLY_STORE_NONE);
    cr_assert_eq(cfg->reply_ttl_ms, 60000);
    cr_assert_eq(cfg->claim, 1);
    cr_assert_str_eq(cfg->claim_prefix, "redwork:claim:");
    cr_assert_eq(cfg->claim_ttl_ms, 60000);
    cr_assert_eq(cfg->claim_idle_ms, 30000);
    cr_assert_eq(cfg->max_deliveries, 5);
    cr_assert_eq(cfg->max_request_bytes, 1048576);
    cr_assert_eq(cfg->shutdown_timeout_ms, 10000);
    cr_assert_eq(cfg->processes, 1);
    cr_assert_eq(cfg->stream_maxlen, 1000000);
    cr_assert_eq(cfg->strict_modes, 1);

    cr_assert_eq(cfg->log_level, 1); /* info */
    cr_assert_eq(cfg->log_format, 0); /* text */

    /* handlers_dir defaults to "handlers" beside the file. */
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/handlers", tmpdir);
    cr_assert_str_eq(cfg->handlers_dir, want);
    redwork_config_free(cfg);
}

/* Patterns and channels that cannot reach the reply channels load. */
Test(config, channels_apart_from_the_replies_load) {
    config *cfg = load_ok("[worker]\nchannels = request, news_*, [^c]*, call, callback, a?\n");
    cr_assert_eq(cfg->channel_count, 6);
    redwork_config_free(cfg);
}

Test(config, a_file_of_comments_is_all_defaults) {
    config *cfg = load_ok("; nothing set: every key at its default\n");
    cr_assert_eq(cfg->redis_port, 6379);
    cr_assert_eq(cfg->channel_count, 1);
    cr_assert_str_eq(cfg->channel_list[0], "request");
    redwork_config_free(cfg);
}

Test(config, threads_zero_is_kept) {
    config *cfg = load_ok("[worker]\nthreads = 0\n");
    cr_assert_eq(cfg->threads, 0, "config must keep 0; main resolves CPUs");
    redwork_config_free(cfg);
}

Test(config, empty_id_becomes_host_pid) {
    config *cfg = load_ok("[worker]\nid =\n");
    cr_assert_not_null(strchr(cfg->id, ':'), "id '%s' has no ':'", cfg->id);
    char suffix[32];
    snprintf(suffix, sizeof suffix, ":%ld", (long)getpid());
    size_t n = strlen(cfg->id), s = strlen(suffix);
    cr_assert_gt(n, s, "id '%s' has no host part", cfg->id);
    cr_assert_str_eq(cfg->id + n - s, suffix, "id '%s' does not end in :pid",
                     cfg->id);
    redwork_config_free(cfg);
}

Test(config, absent_id_becomes_host_pid) {
    config *cfg = load_ok("[worker]\nthreads = 2\n");
    cr_assert_not_null(strchr(cfg->id, ':'), "id '%s' has no ':'", cfg->id);
    redwork_config_free(cfg);
}

Test(config, channels_split_and_trimmed) {
    config *cfg = load_ok("[worker]\nchannels = request, news_*\n");
    cr_assert_eq(cfg->channel_count, 2);
    cr_assert_str_eq(cfg->channel_list[0], "request");
    cr_assert_str_eq(cfg->channel_list[1], "news_*");
    redwork_config_free(cfg);

    cfg = load_ok("[worker]\nchannels =a ,  b\t,c  \n");
    cr_assert_eq(cfg->channel_count, 3);
    cr_assert_str_eq(cfg->channel_list[0], "a");
    cr_assert_str_eq(cfg->channel_list[1], "b");
    cr_assert_str_eq(cfg->channel_list[2], "c");
    redwork_config_free(cfg);
}

Test(config, handlers_dir_relative_to_ini_dir) {
    config *cfg = load_ok("[worker]\nhandlers_dir = plug/ins\n");
    cr_assert_eq(cfg->handlers_dir[0], '/', "not absolute: %s",
                 cfg->handlers_dir);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/plug/ins", tmpdir);
    cr_assert_str_eq(cfg->handlers_dir, want);
    redwork_config_free(cfg);
}

Test(config, handlers_dir_relative_when_ini_path_relative) {
    /* Load "sub/r.ini" from tmpdir: the directory is tmpdir/sub/h. */
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    write_ini("sub/r.ini", "[worker]\nhandlers_dir = h\n");
    char h[PATH_MAX];
    snprintf(h, sizeof h, "%s/sub/h", tmpdir);
    cr_assert_eq(mkdir(h, 0755), 0);
    cr_assert_eq(chdir(tmpdir), 0);

    config *cfg = redwork_config_load("sub/r.ini", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->handlers_dir[0], '/', "not absolute: %s",
                 cfg->handlers_dir);
    char got_real[PATH_MAX], want_real[PATH_MAX];
    cr_assert_not_null(realpath(h, want_real));
    cr_assert_eq(chdir("/"), 0); /* must not depend on the cwd any more */
    cr_assert_not_null(realpath(cfg->handlers_dir, got_real),
                       "handlers_dir %s does not exist", cfg->handlers_dir);
    cr_assert_str_eq(got_real, want_real);
    redwork_config_free(cfg);
}

Test(config, handlers_dir_absolute_kept) {
    config *cfg = load_ok("[worker]\nhandlers_dir = /usr/lib/redwork\n");
    cr_assert_str_eq(cfg->handlers_dir, "/usr/lib/redwork");
    redwork_config_free(cfg);
}

Test(config, routes_in_order_first_match_wins) {
    config *cfg = load_ok("[routes]\n"
                          "news_s* = sports\n"
                          "news_* = news\n"
                          "req?est = echo\n");
    cr_assert_eq(cfg->route_count, 3);
    cr_assert_str_eq(cfg->routes[0].glob, "news_s*");
    cr_assert_str_eq(cfg->routes[0].handler, "sports");
    cr_assert_str_eq(cfg->routes[1].glob, "news_*");
    cr_assert_str_eq(cfg->routes[1].handler, "news");
    cr_assert_str_eq(cfg->routes[2].glob, "req?est");
    cr_assert_str_eq(cfg->routes[2].handler, "echo");

    cr_assert_str_eq(redwork_config_route_for(cfg, "news_sports"), "sports");
    cr_assert_str_eq(redwork_config_route_for(cfg, "news_world"), "news");
    cr_assert_str_eq(redwork_config_route_for(cfg, "request"), "echo");
    cr_assert_null(redwork_config_route_for(cfg, "other"));
    cr_assert_null(redwork_config_route_for(cfg, "news"), "news_* needs the '_'");
    redwork_config_free(cfg);
}

Test(config, news_glob_matches_news_sports) {
    config *cfg = load_ok("[routes]\nnews_* = news\n");
    cr_assert_str_eq(redwork_config_route_for(cfg, "news_sports"), "news");
    cr_assert_null(redwork_config_route_for(cfg, "request"));
    redwork_config_free(cfg);
}

Test(config, no_routes_no_match) {
    config *cfg = load_ok("[worker]\n");
    cr_assert_eq(cfg->route_count, 0);
    cr_assert_null(redwork_config_route_for(cfg, "request"));
    redwork_config_free(cfg);
}

Test(config, handler_section) {
    config *cfg = load_ok("[worker]\n"
                          "threads = 1\n"
                          "[handler.greet]\n"
                          "word = Hi\n"
                          "times = 3\n"
                          "[handler.other-one_2]\n"
                          "x = 1\n");
    cr_assert_eq(cfg->section_count, 2);

    const config_section *s = redwork_config_section_for(cfg, "greet");
    cr_assert_not_null(s);
    cr_assert_str_eq(s->name, "greet");
    cr_assert_eq(s->count, 2);
    const config_entry *e = redwork_config_section_get(s, "word");
    cr_assert_not_null(e);
    cr_assert_str_eq(e->key, "word");
    cr_assert_str_eq(e->value, "Hi");
    cr_assert_eq(e->line, 4);
    e = redwork_config_section_get(s, "times");
    cr_assert_not_null(e);
    cr_assert_str_eq(e->value, "3");
    cr_assert_null(redwork_config_section_get(s, "absent"));
    cr_assert_null(redwork_config_section_get(NULL, "word"));

    s = redwork_config_section_for(cfg, "other-one_2");
    cr_assert_not_null(s);
    cr_assert_eq(s->count, 1);
    cr_assert_null(redwork_config_section_for(cfg, "nope"));
    redwork_config_free(cfg);
}

Test(config, bool_spellings) {
    static const struct {
        const char *text;
        long long want;
    } cases[] = {
        {"on", 1},  {"off", 0},   {"yes", 1},   {"no", 0},
        {"true", 1}, {"false", 0}, {"1", 1},    {"0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[worker]\nclaim = %s\nstrict_modes = %s\n",
                 cases[i].text, cases[i].text);
        config *cfg = load_ok(text);
        cr_assert_eq(cfg->claim, cases[i].want, "claim = %s", cases[i].text);
        cr_assert_eq(cfg->strict_modes, cases[i].want, "strict_modes = %s",
                     cases[i].text);
        redwork_config_free(cfg);
    }
}

Test(config, enum_values) {
    static const struct {
        const char *text;
        long long want;
    } levels[] = {{"debug", 0}, {"info", 1}, {"warn", 2}, {"error", 3}};
    for (size_t i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "[log]\nlevel = %s\nformat = text\n",
                 levels[i].text);
        config *cfg = load_ok(text);
        cr_assert_eq(cfg->log_level, levels[i].want, "level = %s",
                     levels[i].text);
        cr_assert_eq(cfg->log_format, 0);
        redwork_config_free(cfg);
    }
    config *cfg = load_ok("[worker]\ntransport = pubsub\nreply_store = none\n");
    cr_assert_eq(cfg->transport, TRANSPORT_PUBSUB);
    cr_assert_eq(cfg->reply_store, REPLY_STORE_NONE);
    redwork_config_free(cfg);
}

Test(config, integer_bounds_inclusive) {
    config *cfg = load_ok("[redis]\n"
                          "port = 65535\n"
                          "db = 2147483647\n"
                          "connect_timeout_ms = 1\n"
                          "[worker]\n"
                          "threads = 1024\n"
                          "queue_size = 1048576\n"
                          "max_request_bytes = 64\n"
                          "shutdown_timeout_ms = 0\n"
                          "stream_maxlen = 4611686018427387904\n"
                          "max_deliveries = 1000\n");
    cr_assert_eq(cfg->redis_port, 65535);
    cr_assert_eq(cfg->redis_db, 2147483647LL);
    cr_assert_eq(cfg->connect_timeout_ms, 1);
    cr_assert_eq(cfg->threads, 1024);
    cr_assert_eq(cfg->queue_size, 1048576);
    cr_assert_eq(cfg->max_request_bytes, 64);
    cr_assert_eq(cfg->shutdown_timeout_ms, 0);
    cr_assert_eq(cfg->stream_maxlen, 4611686018427387904LL);
    cr_assert_eq(cfg->max_deliveries, 1000);
    redwork_config_free(cfg);

    cfg = load_ok("[redis]\nport = 1\n[worker]\nstream_maxlen = 0\n");
    cr_assert_eq(cfg->redis_port, 1);
    cr_assert_eq(cfg->stream_maxlen, 0);
    redwork_config_free(cfg);
}

/* Names and globs are not cut short, whatever the ini lexer's limits. */
Test(config, long_names_kept_whole) {
    char name64[65], glob[101], text[512];
    memset(name64, 'h', 64);
    name64[64] = '\0';
    memset(glob, 'c', 99);
    glob[99] = '*';
    glob[100] = '\0';
    snprintf(text, sizeof text, "[handler.%s]\nword = x\n[routes]\n%s = %s\n",
             name64, glob, name64);
    config *cfg = load_ok(text);
    const config_section *s = redwork_config_section_for(cfg, name64);
    cr_assert_not_null(s, "[handler.<64 chars>] not found under its name");
    cr_assert_eq(cfg->route_count, 1);
    cr_assert_str_eq(cfg->routes[0].glob, glob);
    cr_assert_str_eq(cfg->routes[0].handler, name64);
    redwork_config_free(cfg);
}

Test(config, handler_name_of_65_chars_refused) {
    char name65[66], text[128];
    memset(name65, 'a', 65);
    name65[65] = '\0';
    snprintf(text, sizeof text, "[worker]\n[handler.%s]\nword = x\n", name65);
    const char *path = write_ini("bad.ini", text);
    cr_assert_null(redwork_config_load(path, err, sizeof err),
                   "a 65-character handler name was accepted");
    cr_assert(strstr(err, "bad.ini:2:") || strstr(err, "bad.ini:3:"), "%s", err);
}

Test(config, password_env_set_is_accepted) {
    setenv("REDWORK_TEST_PW2", "x", 1);
    config *cfg = load_ok("[redis]\npassword_env = REDWORK_TEST_PW2\n");
    cr_assert_str_eq(cfg->redis_password_env, "REDWORK_TEST_PW2");
    redwork_config_free(cfg);
}

/* The documented default config loads as it is (tests run from the top of
 * the checkout, or REDWORK_ROOT names it). */
Test(config, shipped_etc_redwork_ini_loads) {
    const char *root = getenv("REDWORK_ROOT");
    char path[PATH_MAX], want[PATH_MAX], got[PATH_MAX];
    snprintf(path, sizeof path, "%s/etc/redwork.ini", root ? root : ".");
    cr_assert_not_null(realpath(path, want), "%s not found", path);
    config *cfg = redwork_config_load(want, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->channel_count, 2);
    cr_assert_str_eq(cfg->channel_list[0], "request");
    cr_assert_str_eq(cfg->channel_list[1], "news_*");
    cr_assert_str_eq(redwork_config_route_for(cfg, "news_sports"), "echo");
    cr_assert_not_null(redwork_config_section_for(cfg, "greet"));
    /* handlers_dir = ../handlers: the checkout's handlers/ folder. */
    snprintf(path, sizeof path, "%s/handlers", root ? root : ".");
    cr_assert_not_null(realpath(path, want));
    cr_assert_not_null(realpath(cfg->handlers_dir, got), "%s",
                       cfg->handlers_dir);
    cr_assert_str_eq(got, want);
    redwork_config_free(cfg);
}

/* [redis] url stands for host, port, db, username and tls; the derived
 * redis_where is what messages name. */
Test(config, url_gives_host_port_db_username_tls) {
    config *cfg = load_ok("[redis]\nurl = rediss://alice@redis.example:6390/5\n");
    cr_assert_str_eq(cfg->redis_host, "redis.example");
    cr_assert_eq(cfg->redis_port, 6390);
    cr_assert_eq(cfg->redis_db, 5);
    cr_assert_str_eq(cfg->redis_username, "alice");
    cr_assert(cfg->tls);
    cr_assert_str_eq(cfg->redis_where, "redis.example:6390");
    redwork_config_free(cfg);

    cfg = load_ok("[redis]\nurl = redis://[::1]\ndb = 2\n");
    cr_assert_str_eq(cfg->redis_host, "::1");
    cr_assert_eq(cfg->redis_port, 6379);
    cr_assert_eq(cfg->redis_db, 2, "db from its key when the url has none");
    cr_assert_not(cfg->tls);
    cr_assert_str_eq(cfg->redis_where, "[::1]:6379");
    redwork_config_free(cfg);
}

Test(config, unix_socket_by_url_or_host) {
    config *cfg = load_ok("[redis]\nurl = unix:///run/redis/redis.sock?db=3\n");
    cr_assert_str_eq(cfg->redis_host, "/run/redis/redis.sock");
    cr_assert_eq(cfg->redis_db, 3);
    cr_assert_str_eq(cfg->redis_where, "/run/redis/redis.sock");
    redwork_config_free(cfg);

    cfg = load_ok("[redis]\nhost = /run/redis/redis.sock\n");
    cr_assert_str_eq(cfg->redis_where, "/run/redis/redis.sock");
    redwork_config_free(cfg);

    cfg = load_ok("[redis]\nhost = 10.0.0.5\nport = 7001\n");
    cr_assert_str_eq(cfg->redis_where, "10.0.0.5:7001");
    redwork_config_free(cfg);
}

/* [redis] sentinels and master_name: the master is found through them,
 * and messages name both. */
Test(config, sentinels_give_where_redis_is) {
    config *cfg = load_ok("[redis]\nsentinels = s1:26380, s2\nmaster_name = orders\n"
                          "sentinel_username = watcher\n");
    cr_assert_not_null(cfg->sentinel);
    cr_assert_eq(redwork_sentinel_count(cfg->sentinel), 2);
    cr_assert_str_eq(redwork_sentinel_name(cfg->sentinel), "orders");
    cr_assert_str_eq(redwork_sentinel_username(cfg->sentinel), "watcher");
    cr_assert_not_null(strstr(cfg->redis_where, "orders"), "%s", cfg->redis_where);
    cr_assert_not_null(strstr(cfg->redis_where, "s1:26380, s2"), "%s", cfg->redis_where);
    redwork_config_free(cfg);
}

Test(config, free_null_is_fine) {
    redwork_config_free(NULL);
}

/* ---- bad files --------------------------------------------------------- */

struct bad_case {
    const char *what;
    const char *text;
    int line;         /* the line the error must name */
    const char *key;  /* a word the error must contain */
    int alt_line;     /* for a bad section: its first key's line will do */
};

static const struct bad_case bad_cases[] = {
    {"unknown section", "[redis]\nhost = x\n[bogus]\nkey = 1\n", 3, "bogus", 4},
    {"unknown key", "[worker]\n\nthreadz = 4\n", 3, "threadz", 0},
    {"unknown key in redis", "[redis]\nhost = h\nhots = 1\n", 3, "hots", 0},
    {"unknown key in log", "[log]\ncolour = on\n", 2, "colour", 0},
    {"non-integer", "[worker]\nthreads = x\n", 2, "threads", 0},
    {"integer with junk", "[worker]\nthreads = 4x\n", 2, "threads", 0},
    {"empty integer", "[redis]\n\nport =\n", 3, "port", 0},
    {"fractional integer", "[worker]\nqueue_size = 1.5\n", 2, "queue_size", 0},
    {"integer overflow", "[worker]\nstream_maxlen = 99999999999999999999\n", 2,
     "stream_maxlen", 0},
    {"port 0", "[redis]\nport = 0\n", 2, "port", 0},
    {"port 65536", "[redis]\nport = 65536\n", 2, "port", 0},
    {"negative db", "[redis]\ndb = -1\n", 2, "db", 0},
    {"connect_timeout_ms 0", "[redis]\nconnect_timeout_ms = 0\n", 2,
     "connect_timeout_ms", 0},
    {"threads 1025", "[worker]\nthreads = 1025\n", 2, "threads", 0},
    {"negative threads", "[worker]\nthreads = -1\n", 2, "threads", 0},
    {"queue_size 0", "[worker]\nqueue_size = 0\n", 2, "queue_size", 0},
    {"queue_size too big", "[worker]\nqueue_size = 1048577\n", 2, "queue_size", 0},
    {"reply_ttl_ms 0", "[worker]\nreply_ttl_ms = 0\n", 2, "reply_ttl_ms", 0},
    {"max_deliveries 1001", "[worker]\nmax_deliveries = 1001\n", 2,
     "max_deliveries", 0},
    {"max_request_bytes 63", "[worker]\nmax_request_bytes = 63\n", 2,
     "max_request_bytes", 0},
    {"shutdown_timeout_ms negative", "[worker]\nshutdown_timeout_ms = -5\n", 2,
     "shutdown_timeout_ms", 0},
    {"processes 0", "[worker]\nprocesses = 0\n", 2, "processes", 0},
    {"processes without claims", "[worker]\nprocesses = 2\nclaim = off\n", 3, "claim", 0},
    {"stream with a pattern", "[worker]\ntransport = stream\nchannels = jobs, news_*\n", 3,
     "channels", 0},
    /* Subscriptions that can hear the replies: a loop of replies to replies. */
    {"channels = *", "[worker]\nchannels = request, *\n", 2, "answer its own replies", 0},
    {"channels = callback:*", "[worker]\nchannels = callback:*\n", 2, "channels", 0},
    {"channels = c?llback:*", "[worker]\nchannels = c?llback:*\n", 2, "callback:", 0},
    {"channels = [a-c]*", "[worker]\nchannels = [a-c]*\n", 2, "channels", 0},
    {"channels = cal\\lback:*", "[worker]\nchannels = cal\\lback:*\n", 2, "channels", 0},
    {"a channel under reply_prefix", "[worker]\nchannels = callback:x\n", 2, "channels", 0},
    {"reply_prefix under a channel", "[worker]\nreply_prefix = req\nchannels = request\n", 3,
     "req", 0},
    {"reply_prefix under a pattern", "[worker]\nchannels = re*\nreply_prefix = rep:\n", 2,
     "rep:", 0},
    {"processes 257", "[worker]\nprocesses = 257\n", 2, "processes", 0},
    {"stream_maxlen over 2^62",
     "[worker]\nstream_maxlen = 4611686018427387905\n", 2, "stream_maxlen", 0},
    {"bad transport", "[worker]\ntransport = kafka\n", 2, "transport", 0},
    {"bad reply_store", "[worker]\nreply_store = set\n", 2, "reply_store", 0},
    {"bad log level", "[log]\nlevel = loud\n", 2, "level", 0},
    {"bad log format", "[log]\nformat = xml\n", 2, "format", 0},
    {"bad bool", "[worker]\nclaim = maybe\n", 2, "claim", 0},
    {"bool 2", "[worker]\n\n\nstrict_modes = 2\n", 4, "strict_modes", 0},
    {"empty channels", "[worker]\nchannels =\n", 2, "channels", 0},
    {"only commas", "[worker]\nchannels = , ,\n", 2, "channels", 0},
    {"empty handler name", "[worker]\n[handler.]\nword = x\n", 2, "handler.", 3},
    {"upper-case handler name", "[handler.Greet]\nword = x\n", 1, "Greet", 2},
    {"handler name with '!'", "[log]\n[handler.bad!]\nword = x\n", 2, "bad!", 3},
    {"url with a password", "[redis]\nurl = redis://u:secret@h:1\n", 2, "url", 0},
    {"url of an unknown scheme", "[redis]\nurl = http://h\n", 2, "url", 0},
    {"url and host", "[redis]\nhost = h\nurl = redis://h2\n", 3, "host", 0},
    {"url and port", "[redis]\nurl = redis://h2\nport = 7000\n", 2, "port", 0},
    {"url with db and db", "[redis]\ndb = 1\nurl = redis://h2/4\n", 3, "db", 0},
    {"rediss url with tls off", "[redis]\nurl = rediss://h\ntls = off\n", 2, "tls", 0},
    {"unix url with tls", "[redis]\nurl = unix:///tmp/r.sock\ntls = on\n", 2, "TLS", 0},
    {"socket host with tls", "[redis]\nhost = /tmp/r.sock\ntls = on\n", 3, "TLS", 0},
    {"sentinels without master_name", "[redis]\nsentinels = s1:26379\n", 2, "master_name", 0},
    {"master_name without sentinels", "[redis]\n\nmaster_name = m\n", 3, "sentinels", 0},
    {"sentinels and host", "[redis]\nsentinels = s1\nmaster_name = m\nhost = h\n", 4,
     "host", 0},
    {"sentinels and url", "[redis]\nurl = redis://h\nsentinels = s1\nmaster_name = m\n", 2,
     "url", 0},
    {"bad sentinel port", "[redis]\nsentinels = s1:0\nmaster_name = m\n", 2, "s1:0", 0},
    {"sentinel_password_env unset",
     "[redis]\nsentinels = s1\nmaster_name = m\n"
     "sentinel_password_env = REDWORK_TEST_SURELY_UNSET_VAR\n", 4, "sentinel_password_env", 0},
    {"cluster with sentinels", "[redis]\nsentinels = s1\nmaster_name = m\ncluster = on\n", 4,
     "seed node", 0},
    {"cluster with db", "[redis]\nport = 7000\ndb = 3\ncluster = on\n", 4, "database 0", 0},
    {"stream_shards with pubsub", "[worker]\nchannels = a\nstream_shards = 4\n", 3,
     "transport = pubsub", 0},
    {"stream_shards too many", "[worker]\ntransport = stream\nstream_shards = 1025\n", 3,
     "stream_shards", 0},
    {"password_env unset",
     "[redis]\nhost = h\npassword_env = REDWORK_TEST_SURELY_UNSET_VAR\n", 3,
     "password_env", 0},
};

Test(config, bad_files_are_refused_with_file_line_key) {
    unsetenv("REDWORK_TEST_SURELY_UNSET_VAR");
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        const char *path = write_ini("bad.ini", c->text);
        err[0] = '\0';
        config *cfg = redwork_config_load(path, err, sizeof err);
        cr_expect_null(cfg, "%s: accepted:\n%s", c->what, c->text);
        redwork_config_free(cfg);
        char where[32], alt[32];
        snprintf(where, sizeof where, "bad.ini:%d:", c->line);
        snprintf(alt, sizeof alt, "bad.ini:%d:", c->alt_line);
        cr_expect(strstr(err, where) != NULL ||
                      (c->alt_line && strstr(err, alt) != NULL),
                  "%s: error '%s' lacks '%s'", c->what, err, where);
        cr_expect_not_null(strstr(err, path), "%s: error '%s' lacks the path",
                           c->what, err);
        cr_expect_not_null(strstr(err, c->key), "%s: error '%s' lacks '%s'",
                           c->what, err, c->key);
    }
}

/* The error quoting a refused url does not quote its password. */
Test(config, url_password_is_not_echoed) {
    const char *path = write_ini("bad.ini", "[redis]\nurl = redis://u:hunter2@h\n");
    cr_assert_null(redwork_config_load(path, err, sizeof err));
    cr_assert_not_null(strstr(err, "password_env"), "%s", err);
    cr_assert_null(strstr(err, "hunter2"), "the password is in the error: %s", err);
}

/* Key table: channel items must be non-empty, so "a,,b" is refused (it is
 * most likely a typo for a missing channel). */
Test(config, empty_channel_item_refused) {
    const char *path = write_ini("bad.ini", "[worker]\nchannels = a,,b\n");
    config *cfg = redwork_config_load(path, err, sizeof err);
    cr_assert_null(cfg, "\"a,,b\" accepted as %zu channels",
                   cfg ? cfg->channel_count : 0);
    cr_assert_not_null(strstr(err, "bad.ini:2:"), "%s", err);
    cr_assert_not_null(strstr(err, "channels"), "%s", err);
}

Test(config, error_format_names_section_and_key) {
    const char *path = write_ini("bad.ini", "[worker]\nthreads = x\n");
    cr_assert_null(redwork_config_load(path, err, sizeof err));
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s:2: [worker] threads: ", path);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0,
                 "error '%s' does not start with '%s'", err, want);
}

/* A section with no keys is still in the file: an unknown one is refused
 * (DESIGN.md: unknown sections are errors). */
Test(config, empty_unknown_section_is_refused) {
    const char *path = write_ini("bad.ini", "[redis]\nhost = x\n[bogus]\n");
    cr_assert_null(redwork_config_load(path, err, sizeof err));
    cr_assert_not_null(strstr(err, "bad.ini:3:"), "%s", err);
    cr_assert_not_null(strstr(err, "bogus"), "%s", err);
}

Test(config, key_outside_any_section_is_refused) {
    const char *path = write_ini("bad.ini", "threads = 4\n");
    cr_assert_null(redwork_config_load(path, err, sizeof err));
    cr_assert_not_null(strstr(err, "bad.ini:1"), "%s", err);
}

Test(config, missing_file_names_path) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/does-not-exist.ini", tmpdir);
    err[0] = '\0';
    cr_assert_null(redwork_config_load(path, err, sizeof err));
    cr_assert_not_null(strstr(err, path), "error '%s' lacks the path", err);
}

/* A folder, a device or an empty file is not a config: refused, named. */
Test(config, folder_device_and_empty_file_refused) {
    const char *empty = write_ini("empty.ini", "");
    char empty_path[PATH_MAX];
    snprintf(empty_path, sizeof empty_path, "%s", empty);
    const struct {
        const char *path, *why;
    } cases[] = {{tmpdir, "is a folder"}, {"/dev/null", "not a regular file"},
                 {empty_path, "is empty"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        cr_expect_null(redwork_config_load(cases[i].path, err, sizeof err), "%s accepted",
                       cases[i].path);
        cr_expect_not_null(strstr(err, cases[i].path), "'%s' lacks the path", err);
        cr_expect_not_null(strstr(err, cases[i].why), "'%s' does not say '%s'", err, cases[i].why);
    }
}

Test(config, small_error_buffer_is_terminated) {
    const char *path = write_ini("bad.ini", "[worker]\nthreads = x\n");
    char small[8];
    memset(small, 'z', sizeof small);
    cr_assert_null(redwork_config_load(path, small, sizeof small));
    cr_assert_not_null(memchr(small, '\0', sizeof small));
}

/* Each worker of a supervisor gets its own id. */
Test(config, worker_ids_of_a_supervisor) {
    config *cfg = load_ok("[worker]\nid = w\nprocesses = 3\n");
    cr_assert_eq(cfg->processes, 3);
    cr_assert_eq(redwork_config_worker_id(cfg, 2), 0);
    cr_assert_str_eq(cfg->id, "w-2");
    redwork_config_free(cfg);

    cfg = load_ok("[worker]\nprocesses = 3\n");
    cr_assert_eq(redwork_config_worker_id(cfg, 1), 0);
    char pid[32];
    snprintf(pid, sizeof pid, ":%ld", (long)getpid());
    size_t n = strlen(cfg->id), m = strlen(pid);
    cr_assert(n > m && strcmp(cfg->id + n - m, pid) == 0,
              "default id '%s' is not host:pid", cfg->id);
    redwork_config_free(cfg);
}

Test(config, stream_shards_name_every_stream_key) {
    config *cfg = load_ok("[worker]\ntransport = stream\nchannels = jobs, mail\n"
                            "stream_shards = 3\n");
    cr_assert_eq(cfg->stream_count, 6);
    static const char *const want[] = {"jobs{0}", "jobs{1}", "jobs{2}",
                                       "mail{0}", "mail{1}", "mail{2}"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(cfg->stream_list[i], want[i]);
    redwork_config_free(cfg);

    cfg = load_ok("[worker]\ntransport = stream\nchannels = jobs, mail\n");
    cr_assert_eq(cfg->stream_count, 2, "no shards: each channel is its stream");
    cr_assert_str_eq(cfg->stream_list[0], "jobs");
    cr_assert_str_eq(cfg->stream_list[1], "mail");
    redwork_config_free(cfg);

    cfg = load_ok("[worker]\nchannels = jobs\n");
    cr_assert_eq(cfg->stream_count, 0, "pubsub reads no stream");
    redwork_config_free(cfg);
}

/* ---- the key table as redwork.ini(5) sees it --------------------------- */

/* Loads "[SECTION]\nNAME = VALUE" (with transport = stream, so that
 * stream_shards may be set too). Returns the config, or NULL with err. */
static config *load_one(const config_key_info *k, const char *value) {
    char text[512];
    int stream = !(strcmp(k->section, "worker") == 0 && strcmp(k->name, "transport") == 0);
    snprintf(text, sizeof text, "%s[%s]\n%s = %s\n", stream ? "[worker]\ntransport = stream\n" : "",
             k->section, k->name, value);
    return redwork_config_load(write_ini("one.ini", text), err, sizeof err);
}

/* The man page is generated from redwork_config_key_describe(): each key it
 * names is one the parser takes, at its default, and the bounds and choices
 * it gives are the ones the parser enforces. */
Test(config, key_table_describes_what_the_parser_takes) {
    size_t n = redwork_config_key_count();
    cr_assert_gt(n, 40);
    config_key_info k, other;
    cr_assert_eq(redwork_config_key_describe(n, &k), -1);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(redwork_config_key_describe(i, &k), 0);
        for (size_t j = 0; j < i; j++) {
            redwork_config_key_describe(j, &other);
            cr_assert(strcmp(k.section, other.section) != 0 || strcmp(k.name, other.name) != 0,
                      "[%s] %s is in the table twice", k.section, k.name);
        }
        config *cfg = load_one(&k, k.def);
        cr_assert_not_null(cfg, "[%s] %s = '%s' (its default): %s", k.section, k.name, k.def,
                           err);
        redwork_config_free(cfg);

        char value[64], want[160];
        if (strcmp(k.type, "integer") == 0) {
            cr_assert_lt(k.min, k.max, "[%s] %s", k.section, k.name);
            snprintf(want, sizeof want, "out of range %lld..%lld", k.min, k.max);
            for (int end = 0; end < 2; end++) {
                snprintf(value, sizeof value, "%lld", end ? k.max : k.min);
                cfg = load_one(&k, value);
                cr_assert_not_null(cfg, "[%s] %s = %s: %s", k.section, k.name, value, err);
                redwork_config_free(cfg);
                snprintf(value, sizeof value, "%lld", end ? k.max + 1 : k.min - 1);
                cr_assert_null(load_one(&k, value), "[%s] %s = %s", k.section, k.name, value);
                cr_assert(strstr(err, want) != NULL, "%s: wanted '%s'", err, want);
            }
        } else if (strcmp(k.type, "enum") == 0) {
            cr_assert(strstr(k.choices, k.def) != NULL, "[%s] %s", k.section, k.name);
            cr_assert_null(load_one(&k, "nope"));
            snprintf(want, sizeof want, "is not one of: %s", k.choices);
            cr_assert(strstr(err, want) != NULL, "%s: wanted '%s'", err, want);
        } else if (strcmp(k.type, "boolean") == 0) {
            cr_assert_null(load_one(&k, "maybe"));
            cr_assert(strstr(err, "is not a boolean") != NULL, "%s", err);
        } else {
            cr_assert_str_eq(k.type, "string");
            cr_assert_eq(k.min, 0);
            cr_assert_str_eq(k.choices, "");
        }
    }
}

Test(config, key_table_rows_as_the_parser_has_them) {
    int seen = 0;
    config_key_info k;
    for (size_t i = 0; redwork_config_key_describe(i, &k) == 0; i++) {
        if (strcmp(k.section, "worker") == 0 && strcmp(k.name, "threads") == 0) {
            cr_assert_str_eq(k.type, "integer");
            cr_assert_eq(k.min, 0);
            cr_assert_eq(k.max, 1024);
            cr_assert_str_eq(k.def, "0");
            seen++;
        } else if (strcmp(k.section, "worker") == 0 && strcmp(k.name, "transport") == 0) {
            cr_assert_str_eq(k.type, "enum");
            cr_assert_str_eq(k.choices, "pubsub, stream");
            cr_assert_str_eq(k.def, "pubsub");
            seen++;
        } else if (strcmp(k.section, "worker") == 0 && strcmp(k.name, "id") == 0) {
            cr_assert_str_eq(k.type, "string");
            cr_assert_eq(k.max, 256, "a name in Redis keys is bounded");
            cr_assert_str_eq(k.def, "");
            seen++;
        } else if (strcmp(k.section, "log") == 0 && strcmp(k.name, "requests") == 0) {
            cr_assert_str_eq(k.type, "boolean");
            cr_assert_str_eq(k.def, "off");
            seen++;
        }
    }
    cr_assert_eq(seen, 4);
}

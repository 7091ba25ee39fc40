/* main.c -- redworkd: the command line, the start-up order, signals and
 * the end of the drain.
 *
 * Start-up goes from what can be checked alone to what needs others:
 * config (exit 78), handlers (exit 78 if none loads), Redis (exit 69), then
 * the pool and the dispatcher's thread. Every signal is blocked before any
 * thread exists, so threads inherit the mask and only this thread takes
 * signals, synchronously, with sigtimedwait(): no handler runs in signal
 * context. Its one-second timeout paces the finalising of handlers that a
 * reload retired. The drain itself is the dispatcher's (dispatch.h). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "plugin.h"
#include "pool.h"
#include "queue.h"
#include "sentinel.h"
#include "stats.h"
#include "supervisor.h"

#define EXIT_SHUTDOWN_TIMEOUT 1

static void usage(FILE *out) {
    fprintf(out,
            "usage: redworkd -c FILE [-t]\n"
            "       redworkd -c FILE --call HANDLER [JSON|-]\n"
            "\n"
            "Runs handler plugins for JSON requests published on Redis.\n"
            "\n"
            "  -c, --config FILE  the ini file to run with\n"
            "  -t, --test         check the config file and exit\n"
            "  --call HANDLER     run one request (JSON, '-' for stdin; default {})\n"
            "                     through HANDLER in-process, no Redis; print the\n"
            "                     reply; exit 0 ok, 1 error reply, 78 config error\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n"
            "\n"
            "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads handlers.\n"
            "Exit codes: 0 clean, 1 shutdown timed out, 64 usage,\n"
            "69 redis unreachable at start, 78 config error.\n");
}

/* Warns about config that names handlers nobody loaded: likely typos. */
static void check_handler_names(const config *cfg, plugin_set *plugins) {
    for (size_t i = 0; i < cfg->section_count; i++)
        if (!plugin_exists(plugins, cfg->sections[i].name))
            log_warn("main", "%s:%d: [handler.%s]: no such handler is loaded",
                     cfg->path, cfg->sections[i].line, cfg->sections[i].name);
    for (size_t i = 0; i < cfg->route_count; i++)
        if (!plugin_exists(plugins, cfg->routes[i].handler))
            log_warn("main", "%s: [routes] %s: no handler '%s' is loaded",
                     cfg->path, cfg->routes[i].glob, cfg->routes[i].handler);
    if (*cfg->default_handler && !plugin_exists(plugins, cfg->default_handler))
        log_warn("main", "%s: [worker] default_handler: no handler '%s' is loaded",
                 cfg->path, cfg->default_handler);
}

/* SIGHUP: re-reads the config file for the [handler.NAME] sections,
 * rescans handlers_dir and tells the heartbeat the new names. A file that
 * no longer reads stops the reload: nothing changes. */
static void reload_handlers(const config *cfg, plugin_set *plugins, dispatcher *d) {
    char err[1024];
    config *now = redwork_config_load(cfg->path, err, sizeof err);
    if (now == NULL) {
        log_error("main", "SIGHUP: handlers not reloaded: %s", err);
        return;
    }
    int changes = plugin_reload_dir(plugins, cfg->handlers_dir, now, err, sizeof err);
    redwork_config_free(now);
    if (changes < 0) {
        log_error("main", "SIGHUP: handlers not reloaded: %s", err);
        return;
    }
    char *names = plugin_names(plugins);
    if (names != NULL)
        dispatch_set_handlers(d, names);
    log_info("main", "SIGHUP: %d handler changes; handlers %s", changes,
             names != NULL ? names : "?");
    free(names);
}

/* Waits for SIGTERM or SIGINT, reloading handlers on SIGHUP; every second
 * it finalises the handlers that reloads retired. */
/* A worker's loop beats every second: older than this, it is stuck. */
#define PROGRESS_MAX_AGE_MS 3000

/* How often systemd hears from us: every second, and twice per watchdog
 * period if it wants one. */
static uint64_t systemd_tick_us(const notifier *nt) {
    uint64_t watchdog = notify_watchdog_usec(nt);
    return watchdog > 0 && watchdog / 2 < 1000000u ? watchdog / 2 : 1000000u;
}

/* STATUS= a summary, and WATCHDOG=1 while every worker's loop goes round. */
static void report_to_systemd(notifier *nt, const metrics *m) {
    char summary[200], line[320];
    metrics_summary(m, summary, sizeof summary);
    int fed = notify_watchdog_usec(nt) > 0 && metrics_progressing(m, PROGRESS_MAX_AGE_MS);
    snprintf(line, sizeof line, "STATUS=%s%s", summary, fed ? "\nWATCHDOG=1" : "");
    notify_send(nt, line);
}

/* Tells systemd a SIGHUP reload begins (RELOADING=1, with the monotonic
 * time newer systemd wants) and, after RELOAD(CTX), that it ended. */
static void reload_told(notifier *nt, void (*reload)(void *ctx), void *ctx) {
    char line[64];
    snprintf(line, sizeof line, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)clock_now_us());
    notify_send(nt, line);
    if (reload != NULL)
        reload(ctx);
    notify_send(nt, "READY=1");
}

typedef struct worker_reload {
    const config *cfg;
    plugin_set *plugins;
    dispatcher *d;
} worker_reload;

static void reload_worker(void *ctx) {
    worker_reload *r = ctx;
    reload_handlers(r->cfg, r->plugins, r->d);
}

static int wait_for_stop(const sigset_t *signals, const config *cfg, plugin_set *plugins,
                         dispatcher *d, notifier *nt, const metrics *m) {
    uint64_t tick = systemd_tick_us(nt);
    const struct timespec wait = {.tv_sec = (time_t)(tick / 1000000u),
                                  .tv_nsec = (long)(tick % 1000000u) * 1000};
    worker_reload r = {cfg, plugins, d};
    for (;;) {
        int sig = sigtimedwait(signals, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        if (sig == SIGHUP)
            reload_told(nt, reload_worker, &r);
        plugin_collect(plugins);
        report_to_systemd(nt, m);
    }
}

/* The master's dealings with systemd and its metrics endpoint. */
typedef struct master {
    http *web;
    notifier *nt;
    metrics *m;
    int ready; /* READY=1 sent: every worker served once */
} master;

static void master_tick(void *ctx) {
    master *ms = ctx;
    char why[256];
    if (!ms->ready && metrics_health(ms->m, why, sizeof why)) {
        ms->ready = 1;
        notify_send(ms->nt, "READY=1");
    }
    if (ms->ready)
        report_to_systemd(ms->nt, ms->m);
}

static void master_signaled(void *ctx, int sig) {
    master *ms = ctx;
    if (sig == SIGHUP)
        reload_told(ms->nt, NULL, NULL); /* the workers reload on their own */
    else
        notify_send(ms->nt, "STOPPING=1");
}

/* The sentinels stopped answering, or answer again (sentinel.h). */
static void log_sentinel(void *ctx, const char *message) {
    (void)ctx;
    log_warn("sentinel", "%s", message);
}

/* The master's metrics endpoint, served on its one thread. */
static void serve_http(void *ctx) { http_serve(((master *)ctx)->web); }

/* In a worker just forked: the master's sockets are not ours. */
static void forget_master(void *ctx) {
    master *ms = ctx;
    http_forget(ms->web);
    notify_close(ms->nt);
}

/* --call: the request from ARG ("-": stdin). */
static int call_main(const char *path, const char *handler, const char *arg) {
    char err[1024];
    config *cfg = redwork_config_load(path, err, sizeof err);
    if (cfg == NULL) {
        log_error("config", "%s", err);
        return EX_CONFIG;
    }
    redwork_log_setup((int)cfg->log_level, (int)cfg->log_format);
    buffer in = BUFFER_INIT;
    if (strcmp(arg, "-") == 0) {
        char chunk[65536];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            buffer_append(&in, chunk, got);
    } else {
        buffer_append_str(&in, arg);
    }
    int status;
    if (in.failed || redwork_config_worker_id(cfg, 0) != 0) {
        fprintf(stderr, "redworkd --call: out of memory\n");
        status = EXIT_FAILURE;
    } else {
        status = call_run(cfg, handler, in.data != NULL ? in.data : "", in.len);
    }
    redwork_buffer_free(&in);
    redwork_config_free(cfg);
    return status;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"call", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *call_handler = NULL;
    int test_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:thV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = 1; break;
        case 'C': call_handler = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("redworkd %s\n", REDWORK_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (path == NULL || optind != argc - (call_handler != NULL && optind < argc)) {
        usage(stderr);
        return EX_USAGE;
    }
    if (call_handler != NULL)
        return call_main(path, call_handler, optind < argc ? argv[optind] : "{}");

    char err[1024];
    config *cfg = redwork_config_load(path, err, sizeof err);
    if (cfg == NULL) {
        log_error("config", "%s", err);
        return EX_CONFIG;
    }
    if (test_only) {
        printf("redworkd: %s: configuration OK\n", path);
        redwork_config_free(cfg);
        return 0;
    }
    redwork_log_setup((int)cfg->log_level, (int)cfg->log_format);
    if (cfg->sentinel != NULL)
        redwork_sentinel_set_warn(cfg->sentinel, log_sentinel, NULL);
    if (cfg->threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cpus > 0 ? cpus : 1;
    }

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN); /* a dead Redis socket is an error, not death */

    /* The counters every worker keeps, in one mapping its forks share. */
    metrics *m = metrics_create(cfg->processes > 1 ? (size_t)cfg->processes : 1, err,
                                sizeof err);
    if (m == NULL) {
        log_error("main", "%s", err);
        redwork_config_free(cfg);
        return EXIT_FAILURE;
    }
    http *web = NULL;
    notifier *nt = notify_open(); /* after this, no child inherits $NOTIFY_SOCKET */
    size_t slot = 0;
    if (cfg->processes > 1) {
        /* The master serves the sum of its workers: the endpoint lives
         * through any worker's death. */
        if (*cfg->metrics_listen && (web = http_start(cfg->metrics_listen, m, 0, err,
                                                      sizeof err)) == NULL) {
            log_error("main", "%s", err);
            metrics_free(m);
            redwork_config_free(cfg);
            return EX_CONFIG;
        }
        int master_status = 0;
        master ms = {.web = web, .nt = nt, .m = m};
        supervisor_hooks hooks = {.m = m, .fd = web != NULL ? http_fd(web) : -1,
                                  .fd_ready = serve_http, .tick_us = systemd_tick_us(nt),
                                  .tick = master_tick, .signaled = master_signaled,
                                  .in_child = forget_master, .ctx = &ms};
        int index = supervisor_run(cfg, &signals, &hooks, &master_status);
        if (index <= 0) { /* the master, after its workers stopped */
            http_stop(web);
            notify_close(nt);
            metrics_free(m);
            redwork_config_free(cfg);
            return master_status;
        }
        web = NULL; /* the master's */
        nt = NULL;
        slot = (size_t)index - 1;
        if (redwork_config_worker_id(cfg, index) != 0) {
            log_error("main", "out of memory");
            return EXIT_FAILURE;
        }
    }
    metrics_worker(m, slot, getpid());

    int status = EX_CONFIG;
    stats *st = metrics_stats(m, slot);
    queue *q = NULL;
    dispatcher *d = NULL;
    pool *p = NULL;
    char *names = NULL;
    plugin_set *plugins = plugin_set_create(cfg, err, sizeof err);
    int loaded = plugins != NULL
                     ? plugin_load_dir(plugins, cfg->handlers_dir, err, sizeof err)
                     : -1;
    if (loaded <= 0) {
        if (loaded == 0)
            snprintf(err, sizeof err, "%s: no handler could be loaded",
                     cfg->handlers_dir);
        log_error("main", "%s", err);
        goto out;
    }
    check_handler_names(cfg, plugins);

    status = EX_UNAVAILABLE;
    q = queue_create((size_t)cfg->queue_size);
    names = plugin_names(plugins);
    if (q == NULL || names == NULL) {
        log_error("main", "out of memory");
        goto out;
    }
    d = dispatch_create(cfg, plugins, q, m, slot, names, err, sizeof err);
    if (d == NULL) {
        log_error("main", "cannot subscribe: %s", err);
        goto out;
    }
    p = pool_start(cfg, (size_t)cfg->threads, q, plugins, dispatch_deferrals(d),
                   dispatch_handback, d, err, sizeof err);
    if (p == NULL || dispatch_start(d) != 0) {
        log_error("main", "cannot start: %s", p == NULL ? err : "no dispatcher thread");
        status = EXIT_FAILURE;
        goto out;
    }
    if (cfg->processes <= 1 && *cfg->metrics_listen &&
        (web = http_start(cfg->metrics_listen, m, 1, err, sizeof err)) == NULL) {
        log_error("main", "%s", err);
        status = EX_CONFIG;
        goto out;
    }
    log_info("main", "redworkd %s ready: worker %s, %lld threads, channels %s, "
             "handlers %s%s%s", REDWORK_VERSION, cfg->id, cfg->threads,
             cfg->channels, names, web != NULL ? ", metrics on " : "",
             web != NULL ? cfg->metrics_listen : "");
    notify_send(nt, "READY=1");
    report_to_systemd(nt, m);

    int sig = wait_for_stop(&signals, cfg, plugins, d, nt, m);
    notify_send(nt, "STOPPING=1");
    log_info("main", "%s: draining", strsignal(sig));
    dispatch_stop(d);
    int timed_out = dispatch_join(d);
    if (pool_wait(p, 0) != 0)
        _exit(EXIT_SHUTDOWN_TIMEOUT); /* handlers still run: no teardown */
    log_info("main", "stopped: %llu replies, %llu errors, %llu lost, %llu rejected, "
             "%llu claims lost", stats_get(st->requests), stats_get(st->errors),
             stats_get(st->lost), stats_get(st->rejected), stats_get(st->claims_lost));
    status = timed_out ? EXIT_SHUTDOWN_TIMEOUT : 0;
out:
    if (p != NULL) { /* on a failed start the workers are still waiting */
        queue_close(q);
        pool_wait(p, -1);
    }
    http_stop(web);
    notify_close(nt);
    pool_free(p);
    dispatch_free(d);
    queue_free(q);
    free(names);
    plugin_set_free(plugins);
    metrics_free(m);
    redwork_config_free(cfg);
    return status;
}

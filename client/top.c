/* top.c -- `redwork top`: every live worker, refreshed each second, and
 * every handler's rate and p99 from the workers' metrics endpoints.
 *
 * DESIGN. Each round reads every heartbeat (workers.h) and takes rates
 * from the counters' change since the previous round, per worker id. A
 * heartbeat names its worker's metrics endpoint ([metrics] listen; the
 * workers of one master share its one); each distinct endpoint is scraped
 * once a round (scrape.h), and the handler figures come from the change
 * of its counters and duration histogram since the previous round, summed
 * over the endpoints seen in both. The terminal is put in non-canonical mode without echo for single keys, and
 * restored on every way out, SIGINT included (a flag the wait sees). */
#include "top.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "clock.h"
#include "scrape.h"
#include "workers.h"

#define ROUND_MS 1000
#define ROWS_MAX 200
#define ENDPOINTS_MAX 32
#define SCRAPE_TIMEOUT_MS 300
#define HANDLER_ROWS_MAX 128
#define HANDLER_ROWS_SHOWN 10

enum sort_key { SORT_ID, SORT_RATE, SORT_ERRORS, SORT_QUEUE, SORTS };
static const char *const sort_names[SORTS] = {"id", "req/s", "err/s", "queue"};

typedef struct row {
    char id[64], host[32], pid[12];
    long long uptime_s, queue, busy;
    double rate, error_rate; /* -1: not known yet */
} row;

/* The metrics endpoints scraped in one round. */
typedef struct endpoints {
    struct {
        char address[300];
        scrape figures;
    } at[ENDPOINTS_MAX];
    size_t count;
    size_t failed;   /* endpoints that did not answer */
    char error[512]; /* why the first of them did not */
    int configured;  /* some worker named an endpoint */
} endpoints;

/* One handler's figures over a round, summed over the endpoints. */
typedef struct handler_row {
    char name[128];
    double requests, errors; /* in the round */
    double le[SCRAPE_BUCKETS], count[SCRAPE_BUCKETS];
    size_t buckets;
    double rate, error_rate, p99; /* p99 in seconds; -1: none ran */
    double beyond;                /* > 0: p99 is above this, the last bound */
} handler_row;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* The counter NAME of worker W in PREV (a list from SECONDS ago) turned
 * into a rate; -1 when W was not there. */
static double rate_of(const cJSON *w, const cJSON *prev, const char *name, double seconds) {
    const cJSON *p;
    cJSON_ArrayForEach(p, prev)
        if (strcmp(workers_field(p, "id"), workers_field(w, "id")) == 0) {
            double now = atof(workers_field(w, name)), then = atof(workers_field(p, name));
            return seconds > 0 && now >= then ? (now - then) / seconds : -1;
        }
    return -1;
}

static int compare(const row *a, const row *b, enum sort_key key) {
    double x = 0, y = 0;
    switch (key) {
    case SORT_ID: return strcmp(a->id, b->id);
    case SORT_RATE: x = a->rate, y = b->rate; break;
    case SORT_ERRORS: x = a->error_rate, y = b->error_rate; break;
    case SORT_QUEUE: x = (double)a->queue, y = (double)b->queue; break;
    case SORTS: break;
    }
    return x < y ? 1 : x > y ? -1 : strcmp(a->id, b->id); /* largest first */
}

/* Fills ROWS (at most ROWS_MAX) from LIST, with rates against PREV. */
static size_t make_rows(const cJSON *list, const cJSON *prev, double seconds, row *rows,
                        enum sort_key key) {
    size_t n = 0;
    uint64_t now_ms = clock_wall_ms();
    const cJSON *w;
    cJSON_ArrayForEach(w, list) {
        if (n == ROWS_MAX)
            break;
        row *r = &rows[n++];
        snprintf(r->id, sizeof r->id, "%s", workers_field(w, "id"));
        snprintf(r->host, sizeof r->host, "%s", workers_field(w, "host"));
        snprintf(r->pid, sizeof r->pid, "%s", workers_field(w, "pid"));
        long long started = atoll(workers_field(w, "started"));
        r->uptime_s = started > 0 ? ((long long)now_ms - started) / 1000 : 0;
        r->queue = atoll(workers_field(w, "queue_depth"));
        r->busy = atoll(workers_field(w, "busy"));
        r->rate = rate_of(w, prev, "requests", seconds);
        r->error_rate = rate_of(w, prev, "errors", seconds);
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a screenful */
        for (size_t j = i; j > 0 && compare(&rows[j - 1], &rows[j], key) > 0; j--) {
            row t = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = t;
        }
    return n;
}

static void endpoints_clear(endpoints *e) {
    for (size_t i = 0; i < e->count; i++)
        scrape_clear(&e->at[i].figures);
    memset(e, 0, sizeof *e);
}

/* Scrapes, into E (cleared first), every distinct endpoint the workers of
 * LIST name. */
static void endpoints_read(const cJSON *list, endpoints *e) {
    endpoints_clear(e);
    const cJSON *w;
    cJSON_ArrayForEach(w, list) {
        char address[300];
        if (scrape_endpoint(workers_field(w, "metrics"), workers_field(w, "host"), address,
                            sizeof address) != 0)
            continue;
        e->configured = 1;
        size_t i = 0;
        while (i < e->count && strcmp(e->at[i].address, address) != 0)
            i++;
        if (i < e->count || e->count == ENDPOINTS_MAX)
            continue;
        char err[512];
        if (scrape_fetch(address, SCRAPE_TIMEOUT_MS, &e->at[e->count].figures, err,
                         sizeof err) != 0) {
            if (e->failed++ == 0)
                snprintf(e->error, sizeof e->error, "%s", err);
            continue;
        }
        snprintf(e->at[e->count++].address, sizeof e->at[0].address, "%s", address);
    }
}

/* Adds handler H's change since THEN (the same endpoint a round before)
 * to ROWS (*N of them). A counter that went back (a restart) adds none. */
static void add_change(handler_row *rows, size_t *n, const scrape_handler *h,
                       const scrape_handler *then) {
    size_t i = 0;
    while (i < *n && strcmp(rows[i].name, h->name) != 0)
        i++;
    if (i == *n) {
        if (*n == HANDLER_ROWS_MAX)
            return;
        memset(&rows[i], 0, sizeof rows[i]);
        snprintf(rows[i].name, sizeof rows[i].name, "%s", h->name);
        rows[i].buckets = h->buckets;
        memcpy(rows[i].le, h->le, sizeof h->le);
        (*n)++;
    }
    handler_row *r = &rows[i];
    if (then == NULL || h->requests < then->requests || h->errors < then->errors)
        return;
    r->requests += h->requests - then->requests;
    r->errors += h->errors - then->errors;
    if (then->buckets != h->buckets || r->buckets != h->buckets)
        return;
    for (size_t b = 0; b < h->buckets; b++)
        if (h->count[b] >= then->count[b])
            r->count[b] += h->count[b] - then->count[b];
}

static int compare_handlers(const handler_row *a, const handler_row *b) {
    return a->rate < b->rate ? 1 : a->rate > b->rate ? -1 : strcmp(a->name, b->name);
}

/* Fills ROWS from the endpoints NOW against PREV, a round of SECONDS
 * before; returns how many, busiest first. */
static size_t make_handler_rows(const endpoints *now, const endpoints *prev, double seconds,
                                handler_row *rows) {
    size_t n = 0;
    for (size_t e = 0; e < now->count; e++) {
        const scrape *then = NULL;
        for (size_t p = 0; p < prev->count && then == NULL; p++)
            if (strcmp(prev->at[p].address, now->at[e].address) == 0)
                then = &prev->at[p].figures;
        const scrape *figures = &now->at[e].figures;
        for (size_t h = 0; h < figures->count; h++)
            add_change(rows, &n, &figures->handler[h],
                       then != NULL ? scrape_find(then, figures->handler[h].name) : NULL);
    }
    for (size_t i = 0; i < n; i++) {
        handler_row *r = &rows[i];
        r->rate = seconds > 0 ? r->requests / seconds : -1;
        r->error_rate = seconds > 0 ? r->errors / seconds : -1;
        r->p99 = scrape_quantile(r->le, r->count, r->buckets, 0.99);
        size_t last = r->buckets > 1 ? r->buckets - 2 : 0; /* the last finite bound */
        r->beyond = r->p99 >= 0 && r->count[last] < 0.99 * r->count[r->buckets - 1]
                        ? r->le[last] : 0;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && compare_handlers(&rows[j - 1], &rows[j]) > 0; j--) {
            handler_row t = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = t;
        }
    return n;
}

/* "850us", "12.5ms", "1.25s"; ">10s" past BEYOND (when > 0); "-" for
 * none. */
static void format_seconds(double s, double beyond, char *out, size_t len) {
    if (s < 0)
        snprintf(out, len, "-");
    else if (beyond > 0)
        snprintf(out, len, ">%gs", beyond);
    else if (s < 0.001)
        snprintf(out, len, "%.0fus", s * 1e6);
    else if (s < 1)
        snprintf(out, len, "%.1fms", s * 1e3);
    else
        snprintf(out, len, "%.2fs", s);
}

/* "1d02h", "3h04m", "5m06s", "7s". */
static void format_uptime(long long s, char *out, size_t len) {
    if (s >= 86400)
        snprintf(out, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(out, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(out, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(out, len, "%llds", s);
}

static void format_rate(double v, char *out, size_t len) {
    if (v < 0)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.0f", v);
}

/* The handler table under the workers' (HANDLER_ROWS_SHOWN rows at most),
 * or why there is none. */
static void draw_handlers(FILE *out, const handler_row *rows, size_t n, const endpoints *e) {
    if (!e->configured) {
        fputs("\n(per-handler figures: set [metrics] listen on the workers)\n", out);
        return;
    }
    fprintf(out, "\n%-44.44s %10s %10s %10s\n", "HANDLER", "REQ/S", "ERR/S", "P99");
    for (size_t i = 0; i < n && i < HANDLER_ROWS_SHOWN; i++) {
        char rate[32], errors[32], p99[32];
        format_rate(rows[i].rate, rate, sizeof rate);
        format_rate(rows[i].error_rate, errors, sizeof errors);
        format_seconds(rows[i].p99, rows[i].beyond, p99, sizeof p99);
        fprintf(out, "%-44.44s %10s %10s %10s\n", *rows[i].name ? rows[i].name : "(none)", rate,
                errors, p99);
    }
    if (n > HANDLER_ROWS_SHOWN)
        fprintf(out, "... %zu more\n", n - HANDLER_ROWS_SHOWN);
    if (e->failed > 0)
        fprintf(out, "%.70s%s\n", e->error,
                e->failed > 1 ? " (and more)" : "");
}

/* The tables: 78 columns at most. */
static void draw(FILE *out, const row *rows, size_t n, enum sort_key key, int live,
                 const handler_row *handlers, size_t handler_count, const endpoints *e) {
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += rows[i].rate > 0 ? rows[i].rate : 0;
    fprintf(out, "redwork top: %zu worker%s, %.0f req/s; sort %s%s\n", n, n == 1 ? "" : "s",
            total, sort_names[key], live ? " (s: sort, q: quit)" : "");
    fprintf(out, "%-20.20s %-14.14s %7s %7s %8s %7s %6s %4s\n", "ID", "HOST", "PID", "UP",
            "REQ/S", "ERR/S", "QUEUE", "BUSY");
    for (size_t i = 0; i < n; i++) {
        char up[48], rate[32], errors[32];
        format_uptime(rows[i].uptime_s, up, sizeof up);
        format_rate(rows[i].rate, rate, sizeof rate);
        format_rate(rows[i].error_rate, errors, sizeof errors);
        fprintf(out, "%-20.20s %-14.14s %7.7s %7s %8s %7s %6lld %4lld\n", rows[i].id,
                rows[i].host, rows[i].pid, up, rate, errors, rows[i].queue, rows[i].busy);
    }
    draw_handlers(out, handlers, handler_count, e);
    fflush(out);
}

/* Waits up to MS for a key on stdin. Returns it, 0 for none, -1 when
 * stdin ended or SIGINT came. */
static int wait_key(int ms) {
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    int n = poll(&p, 1, ms);
    if (interrupted || (n < 0 && errno != EINTR))
        return -1;
    if (n <= 0)
        return 0;
    char c;
    return read(STDIN_FILENO, &c, 1) == 1 ? (unsigned char)c : -1;
}

/* What top keeps from round to round. */
typedef struct view {
    row rows[ROWS_MAX];
    endpoints scraped[2]; /* a round ago, and now (swapped each round) */
    endpoints *then, *now;
    uint64_t then_us;
    handler_row handlers[HANDLER_ROWS_MAX];
    size_t handler_count;
} view;

/* Scrapes the endpoints LIST names and turns their change since the
 * previous round into V's handler rows. */
static void view_scrape(view *v, const cJSON *list) {
    endpoints_read(list, v->now);
    uint64_t now_us = clock_now_us();
    v->handler_count = make_handler_rows(v->now, v->then, (double)(now_us - v->then_us) / 1e6,
                                         v->handlers);
    endpoints *t = v->then;
    v->then = v->now;
    v->now = t;
    v->then_us = now_us;
}

static void view_free(view *v) {
    if (v == NULL)
        return;
    endpoints_clear(&v->scraped[0]);
    endpoints_clear(&v->scraped[1]);
    free(v);
}

int top_run(const redwork_client_options *opt) {
    char err[1024];
    view *v = calloc(1, sizeof *v);
    cJSON *prev = workers_read(opt, err, sizeof err);
    if (v == NULL || prev == NULL) {
        fprintf(stderr, "redwork top: %s\n", v == NULL ? "out of memory" : err);
        free(v);
        cJSON_Delete(prev);
        return 2;
    }
    v->then = &v->scraped[0];
    v->now = &v->scraped[1];
    view_scrape(v, prev);
    uint64_t prev_us = clock_now_us();
    int live = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    struct termios saved, raw;
    if (live && tcgetattr(STDIN_FILENO, &saved) == 0) {
        raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        struct sigaction sa = {.sa_handler = on_sigint};
        sigaction(SIGINT, &sa, NULL);
        fputs("\033[?25l", stdout); /* no cursor */
    } else {
        live = 0;
    }
    enum sort_key key = SORT_ID;
    int code = 0;
    for (;;) {
        int k = 0;
        if (live)
            k = wait_key(ROUND_MS);
        else /* no keys to read: a round's wait for the rates */
            poll(NULL, 0, ROUND_MS);
        if (k < 0 || k == 'q')
            break;
        if (k == 's')
            key = (enum sort_key)((key + 1) % SORTS);
        cJSON *list = workers_read(opt, err, sizeof err);
        if (list == NULL) {
            if (!live) {
                fprintf(stderr, "redwork top: %s\n", err);
                code = 2;
                break;
            }
            continue; /* Redis away a moment: keep the last screen */
        }
        uint64_t now_us = clock_now_us();
        size_t n = make_rows(list, prev, (double)(now_us - prev_us) / 1e6, v->rows, key);
        if (k == 0) { /* a whole round: the next rates start from here */
            view_scrape(v, list);
            cJSON_Delete(prev);
            prev = list;
            prev_us = now_us;
        } else {
            cJSON_Delete(list);
        }
        if (live)
            fputs("\033[H\033[2J", stdout);
        draw(stdout, v->rows, n, key, live, v->handlers, v->handler_count, v->then);
        if (!live)
            break;
    }
    if (live) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        fputs("\033[?25h", stdout);
        fflush(stdout);
    }
    cJSON_Delete(prev);
    view_free(v);
    return code;
}

/* top.c -- `redwork top`: every live worker, refreshed each second.
 *
 * DESIGN. Each round reads every heartbeat (workers.h) and takes rates
 * from the counters' change since the previous round, per worker id. The
 * terminal is put in non-canonical mode without echo for single keys, and
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
#include "workers.h"

#define ROUND_MS 1000
#define ROWS_MAX 200

enum sort_key { SORT_ID, SORT_RATE, SORT_ERRORS, SORT_QUEUE, SORTS };
static const char *const sort_names[SORTS] = {"id", "req/s", "err/s", "queue"};

typedef struct row {
    char id[64], host[32], pid[12];
    long long uptime_s, queue, busy;
    double rate, error_rate; /* -1: not known yet */
} row;

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

/* The table: 78 columns at most. */
static void draw(FILE *out, const row *rows, size_t n, enum sort_key key, int live) {
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

int top_run(const redwork_client_options *opt) {
    char err[1024];
    row *rows = malloc(ROWS_MAX * sizeof *rows);
    cJSON *prev = workers_read(opt, err, sizeof err);
    if (rows == NULL || prev == NULL) {
        fprintf(stderr, "redwork top: %s\n", rows == NULL ? "out of memory" : err);
        free(rows);
        cJSON_Delete(prev);
        return 2;
    }
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
        size_t n = make_rows(list, prev, (double)(now_us - prev_us) / 1e6, rows, key);
        if (k == 0) { /* a whole round: the next rates start from here */
            cJSON_Delete(prev);
            prev = list;
            prev_us = now_us;
        } else {
            cJSON_Delete(list);
        }
        if (live)
            fputs("\033[H\033[2J", stdout);
        draw(stdout, rows, n, key, live);
        if (!live)
            break;
    }
    if (live) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        fputs("\033[?25h", stdout);
        fflush(stdout);
    }
    cJSON_Delete(prev);
    free(rows);
    return code;
}

/* metrics.c -- what the daemon counts, for Prometheus and /healthz.
 *
 * DESIGN. One anonymous shared mapping: a header (the handler names and
 * their mutex) and an array of slots. A slot has one writer, its worker's
 * event-loop thread, so an increment is a relaxed load and store (stats.h);
 * readers sum the slots. Histogram buckets are fixed: a bucket holds the
 * observations up to its bound and above the one before, and the
 * cumulative counts Prometheus wants are made at render time. */
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "protocol.h"

/* Upper bounds in microseconds: 50 us to 10 s. */
static const long long bucket_us[] = {50,     100,    250,     500,     1000,    2500,
                                      5000,   10000,  25000,   50000,   100000,  250000,
                                      500000, 1000000, 2500000, 5000000, 10000000};
#define BUCKETS (sizeof bucket_us / sizeof bucket_us[0])

static const char *const outcomes[] = {
    "ok",
    PROTOCOL_BAD_REQUEST,
    PROTOCOL_UNKNOWN_HANDLER,
    PROTOCOL_HANDLER_FAILED,
    PROTOCOL_TIMEOUT,
    PROTOCOL_OVERLOADED,
    PROTOCOL_SHUTTING_DOWN,
    PROTOCOL_INTERNAL,
};
#define OUTCOMES (sizeof outcomes / sizeof outcomes[0])
#define NO_HANDLER METRICS_HANDLERS /* the row of requests no handler took */

typedef struct histogram {
    atomic_ullong bucket[BUCKETS + 1]; /* the last: above the last bound */
    atomic_ullong sum_us;
} histogram;

typedef struct worker_slot {
    stats st;
    atomic_ullong requests[METRICS_HANDLERS + 1][OUTCOMES];
    histogram duration[METRICS_HANDLERS];
    histogram wait;
    atomic_ullong queue_depth, queue_capacity, threads_busy;
    atomic_int pid, connected, serving;
    atomic_ullong beat_ms; /* clock_now_us() / 1000 of the loop's last round */
} worker_slot;

struct metrics {
    size_t size;     /* of the mapping */
    size_t slots;
    uint64_t started_wall_ms;
    pthread_mutex_t names_lock; /* process-shared: adding a name */
    atomic_int name_count;
    char names[METRICS_HANDLERS][PROTOCOL_HANDLER_MAX + 1];
    worker_slot slot[];
};

metrics *metrics_create(size_t slots, char *err, size_t errlen) {
    size_t size = sizeof(metrics) + slots * sizeof(worker_slot);
    metrics *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %zu bytes for the metrics: %s", size, strerror(errno));
        return NULL;
    }
    m->size = size; /* the mapping comes zeroed */
    m->slots = slots;
    m->started_wall_ms = clock_wall_ms();
    pthread_mutexattr_t attr;
    int failed = pthread_mutexattr_init(&attr) != 0;
    failed = failed || pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
             pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0 || /* a worker may die holding it */
             pthread_mutex_init(&m->names_lock, &attr) != 0;
    pthread_mutexattr_destroy(&attr);
    if (failed) {
        snprintf(err, errlen, "cannot make the metrics' process-shared mutex");
        munmap(m, size);
        return NULL;
    }
    return m;
}

void metrics_free(metrics *m) {
    if (m != NULL)
        munmap(m, m->size);
}

stats *metrics_stats(metrics *m, size_t slot) { return &m->slot[slot].st; }

int metrics_outcome(const char *code) {
    if (code == NULL || *code == '\0')
        return 0;
    for (size_t i = 1; i < OUTCOMES; i++)
        if (strcmp(code, outcomes[i]) == 0)
            return (int)i;
    return (int)OUTCOMES - 1;
}

const char *metrics_outcome_name(int outcome) {
    return outcome >= 0 && (size_t)outcome < OUTCOMES ? outcomes[outcome] : "internal";
}

/* The row of handler NAME, added if new; NO_HANDLER for none, and when
 * the table is full. */
static size_t handler_row(metrics *m, const char *name) {
    if (name == NULL || *name == '\0')
        return NO_HANDLER;
    int count = atomic_load_explicit(&m->name_count, memory_order_acquire);
    for (int i = 0; i < count; i++)
        if (strcmp(m->names[i], name) == 0)
            return (size_t)i;
    if (pthread_mutex_lock(&m->names_lock) == EOWNERDEAD)
        pthread_mutex_consistent(&m->names_lock);
    count = atomic_load_explicit(&m->name_count, memory_order_relaxed);
    size_t row = NO_HANDLER;
    for (int i = 0; i < count && row == NO_HANDLER; i++)
        if (strcmp(m->names[i], name) == 0)
            row = (size_t)i;
    if (row == NO_HANDLER && count < METRICS_HANDLERS) {
        snprintf(m->names[count], sizeof m->names[count], "%s", name);
        atomic_store_explicit(&m->name_count, count + 1, memory_order_release);
        row = (size_t)count;
    }
    pthread_mutex_unlock(&m->names_lock);
    return row;
}

static void observe(histogram *h, long long us) {
    size_t b = 0;
    while (b < BUCKETS && us > bucket_us[b])
        b++;
    stats_add(h->bucket[b]);
    atomic_store_explicit(&h->sum_us,
                          atomic_load_explicit(&h->sum_us, memory_order_relaxed) +
                              (unsigned long long)(us > 0 ? us : 0),
                          memory_order_relaxed);
}

void metrics_request(metrics *m, size_t slot_index, const char *handler, int outcome,
                     long long duration_us, long long wait_us) {
    worker_slot *s = &m->slot[slot_index];
    size_t row = handler_row(m, handler);
    stats_add(s->requests[row][outcome]);
    if (wait_us >= 0) { /* it ran */
        observe(&s->wait, wait_us);
        if (row != NO_HANDLER)
            observe(&s->duration[row], duration_us);
    }
}

void metrics_gauges(metrics *m, size_t slot_index, size_t queue_depth, size_t queue_capacity,
                    size_t threads_busy) {
    worker_slot *s = &m->slot[slot_index];
    atomic_store_explicit(&s->queue_depth, queue_depth, memory_order_relaxed);
    atomic_store_explicit(&s->queue_capacity, queue_capacity, memory_order_relaxed);
    atomic_store_explicit(&s->threads_busy, threads_busy, memory_order_relaxed);
}

void metrics_worker(metrics *m, size_t slot_index, pid_t pid) {
    worker_slot *s = &m->slot[slot_index];
    if (pid == 0) {
        metrics_gauges(m, slot_index, 0, 0, 0);
        metrics_health_set(m, slot_index, 0, 0);
    }
    atomic_store(&s->pid, (int)pid);
}

void metrics_health_set(metrics *m, size_t slot_index, int connected, int serving) {
    atomic_store(&m->slot[slot_index].connected, connected);
    atomic_store(&m->slot[slot_index].serving, serving);
}

int metrics_health(const metrics *m, char *why, size_t whylen) {
    for (size_t i = 0; i < m->slots; i++) {
        const worker_slot *s = &m->slot[i];
        const char *wrong = atomic_load(&s->pid) == 0        ? "is not running"
                            : !atomic_load(&s->connected)    ? "is not connected to redis"
                            : !atomic_load(&s->serving)      ? "is not serving (starting or "
                                                               "draining)"
                                                             : NULL;
        if (wrong != NULL) {
            if (m->slots > 1)
                snprintf(why, whylen, "worker %zu %s", i + 1, wrong);
            else
                snprintf(why, whylen, "the worker %s", wrong);
            return 0;
        }
    }
    return 1;
}

void metrics_beat(metrics *m, size_t slot_index) {
    atomic_store(&m->slot[slot_index].beat_ms, clock_now_us() / 1000u);
}

int metrics_progressing(const metrics *m, uint64_t max_age_ms) {
    uint64_t now_ms = clock_now_us() / 1000u;
    for (size_t i = 0; i < m->slots; i++)
        if (atomic_load(&m->slot[i].pid) != 0 &&
            now_ms - atomic_load(&m->slot[i].beat_ms) > max_age_ms)
            return 0;
    return 1;
}

/* ---- the exposition ------------------------------------------------------ */

/* Writes V as Prometheus reads a label value: \, " and newline escaped. */
static void label_value(buffer *out, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buffer_append(out, "\\", 1);
        if (*v == '\n')
            buffer_append_str(out, "\\n");
        else
            buffer_append(out, v, 1);
    }
}

static void header(buffer *out, const char *name, const char *type, const char *help) {
    buffer_append_str(out, "# HELP ");
    buffer_append_str(out, name);
    buffer_append_str(out, " ");
    buffer_append_str(out, help);
    buffer_append_str(out, "\n# TYPE ");
    buffer_append_str(out, name);
    buffer_append_str(out, " ");
    buffer_append_str(out, type);
    buffer_append_str(out, "\n");
}

/* Microseconds as seconds, exactly enough ("0.000050", "12.5"). */
static void append_seconds(buffer *out, unsigned long long us) {
    char text[48];
    snprintf(text, sizeof text, "%llu.%06llu", us / 1000000u, us % 1000000u);
    buffer_append_str(out, text);
}

/* Sums field OFFSET (an atomic_ullong in a slot) over all slots. */
static unsigned long long sum_at(const metrics *m, size_t offset) {
    unsigned long long total = 0;
    for (size_t i = 0; i < m->slots; i++)
        total += atomic_load_explicit(
            (const atomic_ullong *)((const char *)&m->slot[i] + offset), memory_order_relaxed);
    return total;
}

#define SUM(field) sum_at(m, offsetof(worker_slot, field))

static void one_value(buffer *out, const char *name, const char *type, const char *help,
                      unsigned long long v) {
    header(out, name, type, help);
    buffer_append_str(out, name);
    buffer_append_str(out, " ");
    buffer_append_ll(out, (long long)v);
    buffer_append_str(out, "\n");
}

/* The series of the histogram at OFFSET in each slot, with LABEL
 * ("handler=\"echo\"," or ""). */
static void histogram_series(buffer *out, const metrics *m, const char *name, size_t offset,
                             const char *label_name, const char *label) {
    unsigned long long cumulative = 0;
    for (size_t b = 0; b <= BUCKETS; b++) {
        cumulative += sum_at(m, offset + offsetof(histogram, bucket) + b * sizeof(atomic_ullong));
        buffer_append_str(out, name);
        buffer_append_str(out, "_bucket{");
        if (label_name != NULL) {
            buffer_append_str(out, label_name);
            buffer_append_str(out, "=\"");
            label_value(out, label);
            buffer_append_str(out, "\",");
        }
        buffer_append_str(out, "le=\"");
        if (b < BUCKETS)
            append_seconds(out, (unsigned long long)bucket_us[b]);
        else
            buffer_append_str(out, "+Inf");
        buffer_append_str(out, "\"} ");
        buffer_append_ll(out, (long long)cumulative);
        buffer_append_str(out, "\n");
    }
    const char *suffix[] = {"_sum", "_count"};
    for (int k = 0; k < 2; k++) {
        buffer_append_str(out, name);
        buffer_append_str(out, suffix[k]);
        if (label_name != NULL) {
            buffer_append_str(out, "{");
            buffer_append_str(out, label_name);
            buffer_append_str(out, "=\"");
            label_value(out, label);
            buffer_append_str(out, "\"}");
        }
        buffer_append_str(out, " ");
        if (k == 0)
            append_seconds(out, sum_at(m, offset + offsetof(histogram, sum_us)));
        else
            buffer_append_ll(out, (long long)cumulative);
        buffer_append_str(out, "\n");
    }
}

/* RSS bytes and CPU seconds (in us) of PID, from /proc. Returns 0, or -1. */
static int process_figures(pid_t pid, unsigned long long *rss, unsigned long long *cpu_us) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* the command may hold spaces */
    unsigned long long utime = 0, stime = 0;
    long long rss_pages = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice threads
     * itrealvalue starttime vsize rss */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                                   "%*d %*d %*d %*d %*d %*d %*u %*u %lld",
                            &utime, &stime, &rss_pages) != 3)
        return -1;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    *rss = (unsigned long long)(rss_pages > 0 ? rss_pages : 0) * (unsigned long long)page;
    *cpu_us = (utime + stime) * 1000000ull / (unsigned long long)(tick > 0 ? tick : 100);
    return 0;
}

void metrics_summary(const metrics *m, char *out, size_t len) {
    unsigned long long live = 0;
    for (size_t i = 0; i < m->slots; i++)
        live += atomic_load(&m->slot[i].pid) != 0;
    snprintf(out, len, "%llu worker%s, %llu requests, %llu errors, queue %llu/%llu", live,
             live == 1 ? "" : "s", SUM(st.requests), SUM(st.errors), SUM(queue_depth),
             SUM(queue_capacity));
}

int metrics_render(const metrics *m, buffer *out) {
    header(out, "redwork_requests_total", "counter",
           "Requests answered, by handler (empty: none was found) and outcome (ok or the "
           "error code).");
    int names = atomic_load_explicit(&m->name_count, memory_order_acquire);
    for (size_t row = 0; row <= METRICS_HANDLERS; row++) {
        if (row < METRICS_HANDLERS && row >= (size_t)names)
            continue;
        const char *handler = row == NO_HANDLER ? "" : m->names[row];
        for (size_t o = 0; o < OUTCOMES; o++) {
            unsigned long long v =
                sum_at(m, offsetof(worker_slot, requests) + (row * OUTCOMES + o) * sizeof(atomic_ullong));
            if (v == 0 && !(row == NO_HANDLER && o == 0))
                continue; /* series appear when first counted */
            buffer_append_str(out, "redwork_requests_total{handler=\"");
            label_value(out, handler);
            buffer_append_str(out, "\",outcome=\"");
            buffer_append_str(out, outcomes[o]);
            buffer_append_str(out, "\"} ");
            buffer_append_ll(out, (long long)v);
            buffer_append_str(out, "\n");
        }
    }
    header(out, "redwork_request_duration_seconds", "histogram",
           "How long handlers ran, by handler.");
    for (int row = 0; row < names; row++)
        histogram_series(out, m, "redwork_request_duration_seconds",
                         offsetof(worker_slot, duration) + (size_t)row * sizeof(histogram), "handler",
                         m->names[row]);
    header(out, "redwork_queue_wait_seconds", "histogram",
           "From the receipt of a request to the start of its handler.");
    histogram_series(out, m, "redwork_queue_wait_seconds", offsetof(worker_slot, wait), NULL, NULL);

    one_value(out, "redwork_queue_depth", "gauge", "Requests waiting for a thread.",
              SUM(queue_depth));
    one_value(out, "redwork_queue_capacity", "gauge", "Places in the work queues (queue_size).",
              SUM(queue_capacity));
    one_value(out, "redwork_threads_busy", "gauge", "Pool threads running a handler.",
              SUM(threads_busy));
    one_value(out, "redwork_messages_received_total", "counter",
              "Messages read from Redis (requests, before validation).", SUM(st.received));
    one_value(out, "redwork_messages_rejected_total", "counter",
              "Messages with no usable req_id: logged, not answered.", SUM(st.rejected));
    one_value(out, "redwork_duplicates_dropped_total", "counter",
              "Extra copies of a message from overlapping subscriptions.", SUM(st.duplicates));
    one_value(out, "redwork_claims_lost_total", "counter",
              "Requests another daemon claimed first (or req_ids reused within claim_ttl_ms).",
              SUM(st.claims_lost));
    one_value(out, "redwork_replies_lost_total", "counter",
              "Replies that could not be published.", SUM(st.lost));
    one_value(out, "redwork_replies_unstored_total", "counter",
              "Replies published but not stored (reply_store = list; Redis refused the RPUSH).",
              SUM(st.unstored));
    one_value(out, "redwork_redis_reconnects_total", "counter",
              "Connections to Redis made again after a loss.", SUM(st.reconnects));
    one_value(out, "redwork_stream_dead_letters_total", "counter",
              "Stream entries moved to <stream>:dead.", SUM(st.dead_letters));

    char why[256];
    one_value(out, "redwork_healthy", "gauge",
              "1 while every worker is connected to Redis and serving (as /healthz), else 0.",
              (unsigned long long)metrics_health(m, why, sizeof why));
    unsigned long long live = 0;
    for (size_t i = 0; i < m->slots; i++)
        live += atomic_load(&m->slot[i].pid) != 0;
    one_value(out, "redwork_workers", "gauge", "Worker processes running.", live);
    header(out, "redwork_build_info", "gauge", "The running version, as a label.");
    buffer_append_str(out, "redwork_build_info{version=\"" REDWORK_VERSION "\"} 1\n");

    unsigned long long rss_total = 0, cpu_total = 0, rss, cpu;
    if (process_figures(getpid(), &rss, &cpu) == 0) {
        rss_total += rss;
        cpu_total += cpu;
    }
    for (size_t i = 0; i < m->slots; i++) {
        pid_t pid = (pid_t)atomic_load(&m->slot[i].pid);
        if (pid != 0 && pid != getpid() && process_figures(pid, &rss, &cpu) == 0) {
            rss_total += rss;
            cpu_total += cpu;
        }
    }
    one_value(out, "process_resident_memory_bytes", "gauge",
              "Resident memory of the daemon's processes, in bytes.", rss_total);
    header(out, "process_cpu_seconds_total", "counter",
           "CPU time (user and system) of the daemon's live processes, in seconds.");
    buffer_append_str(out, "process_cpu_seconds_total ");
    append_seconds(out, cpu_total);
    buffer_append_str(out, "\n");
    header(out, "process_start_time_seconds", "gauge",
           "When the daemon started, in seconds since the epoch.");
    buffer_append_str(out, "process_start_time_seconds ");
    append_seconds(out, (unsigned long long)m->started_wall_ms * 1000u);
    buffer_append_str(out, "\n");
    return out->failed ? -1 : 0;
}

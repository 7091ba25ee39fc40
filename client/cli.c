/* cli.c -- bin/redwork, the command line client: call, bench, stats.
 *
 * `call` and `bench` go through libredwork like any application; `stats`
 * reads the daemons' heartbeat keys. Exit codes: 0 ok, 1 an error reply (or
 * errors in a bench), 2 timeout / no workers / connection, 64 usage. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "conn.h"
#include "histogram.h"
#include "options.h"
#include "redwork/client.h"
#include "top.h"
#include "workers.h"

#define EXIT_ERROR_REPLY 1
#define EXIT_UNAVAILABLE 2
#define EXIT_USAGE 64
#define BENCH_SECONDS_MAX (365.0 * 86400) /* --duration: a year at most */

static void usage(FILE *out) {
    fprintf(out,
        "usage: redwork [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE   read [redis], reply_prefix, reply_store and the\n"
        "                      first plain channel from the daemons' ini file\n"
        "  -u, --url URL       where Redis is: redis://[user@]host[:port][/db],\n"
        "                      rediss://... (TLS) or unix:///path/redis.sock[?db=N];\n"
        "                      with none of -c, -u, --host, --port: $REDIS_URL\n"
        "      --host HOST     Redis host, or a Unix socket's path (default 127.0.0.1)\n"
        "      --port PORT     Redis port (default 6379)\n"
        "      --sentinels LIST  find the master through Redis Sentinel: host:port,...\n"
        "      --master-name NAME  the name the sentinels know the master by\n"
        "      --cluster       Redis Cluster: the host and port are a seed node\n"
        "      --channel NAME  request channel (default request)\n"
        "      --client-name NAME  the prefix of this client's id and reply channel,\n"
        "                      1..32 of [A-Za-z0-9_-] (default rw): for Redis ACLs\n"
        "      --timeout MS    per-request timeout (default 5000)\n"
        "      --transport T   pubsub (PUBLISH, the default) or stream (XADD)\n"
        "      --stream-shards N  the daemons' stream_shards: XADD to <channel>{0..N-1}\n"
        "\n"
        "Commands:\n"
        "  call HANDLER [JSON|-]   send one request, print the reply JSON\n"
        "  bench [--handler H] [--payload BYTES] [--requests N | --duration S]\n"
        "        [--concurrency C] [--json] [--hgrm FILE]\n"
        "                          load the daemons and report throughput and\n"
        "                          latency percentiles\n"
        "  stats [--json]          list the live workers from their heartbeats\n"
        "  top                     the live workers, refreshed each second (s: sort,\n"
        "                          q: quit); not on a terminal: one snapshot\n"
        "\n"
        "Exit codes: 0 ok, 1 error reply (bench: any error), 2 timeout,\n"
        "no workers or connection error, 64 usage.\n");
}

/* Parses a whole decimal number in MIN..MAX into *OUT; -1 if it is not. */
static int parse_long(const char *text, long min, long max, long *out) {
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

typedef struct globals {
    redwork_client_options opt;
    int timeout_ms;
} globals;

/* Reads all of stdin into a malloc'd string. */
static char *read_stdin(void) {
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
        }
    }
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

static int cmd_call(globals *g, int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *handler = argv[1];
    char *payload = argc == 3 ? (strcmp(argv[2], "-") == 0 ? read_stdin()
                                                            : strdup(argv[2]))
                              : strdup("{}");
    cJSON *check = payload != NULL ? cJSON_Parse(payload) : NULL;
    int is_object = cJSON_IsObject(check);
    cJSON_Delete(check);
    if (!is_object) {
        fprintf(stderr, "redwork call: the payload is not a JSON object\n");
        free(payload);
        return EXIT_USAGE;
    }
    char err[512];
    redwork_client *c = redwork_client_open(&g->opt, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "redwork call: %s\n", err);
        free(payload);
        return EXIT_UNAVAILABLE;
    }
    redwork_result res;
    redwork_status status = redwork_call(c, handler, payload, g->timeout_ms, &res);
    int code = 0;
    if (status == REDWORK_OK || status == REDWORK_ERROR_REPLY) {
        printf("%s\n", res.reply);
        code = status == REDWORK_OK ? 0 : EXIT_ERROR_REPLY;
    } else {
        fprintf(stderr, "redwork call: %s: %s (req_id %s)\n", res.error_code,
                res.error_message, res.req_id);
        code = EXIT_UNAVAILABLE;
    }
    redwork_result_free(&res);
    redwork_client_close(c);
    free(payload);
    return code;
}

/* ---- bench --------------------------------------------------------------- */

/* A bench run. Each completion starts the next call from its callback,
 * on the client's reader thread, as an asynchronous application would: the
 * window stays full with no hand-off between threads. The main thread only
 * fills the window once and then reports progress until the run ends. */
typedef struct bench {
    redwork_client *client;
    const char *handler, *body;
    int timeout_ms;
    long total;        /* requests to send; 0: until stop_at */
    uint64_t stop_at;  /* clock_now_us() deadline; UINT64_MAX: none */
    pthread_mutex_t lock;
    pthread_cond_t finished;
    long sent, in_flight, done, ok, errors, timeouts, unavailable;
    histogram latency;
} bench;

/* Under the lock: 1 if another call may start (and counts it as sent). */
static int take_slot(bench *b) {
    int more = b->unavailable == 0 && (b->total > 0 ? b->sent < b->total
                                                    : clock_now_us() < b->stop_at);
    if (more) {
        b->sent++;
        b->in_flight++;
    }
    return more;
}

static void bench_done(redwork_result *res, void *arg) {
    bench *b = arg;
    pthread_mutex_lock(&b->lock);
    b->in_flight--;
    b->done++;
    if (res->status == REDWORK_OK) {
        b->ok++;
        histogram_record(&b->latency, (uint64_t)res->latency_us);
    } else if (res->status == REDWORK_TIMEOUT) {
        b->timeouts++;
    } else if (res->status == REDWORK_ERROR_REPLY) {
        b->errors++;
    } else { /* no workers, connection: stop rather than spin */
        b->unavailable++;
    }
    int next = take_slot(b);
    if (!next && b->in_flight == 0)
        pthread_cond_signal(&b->finished);
    pthread_mutex_unlock(&b->lock);
    redwork_result_free(res);
    if (next)
        redwork_call_async(b->client, b->handler, b->body, b->timeout_ms,
                           bench_done, b);
}

static void progress(const bench *b, long total, double elapsed) {
    fprintf(stderr, "\r  %ld/%ld done, %.0f req/s, %ld errors, %ld timeouts   ",
            b->done, total, elapsed > 0 ? (double)b->done / elapsed : 0.0,
            b->errors + b->unavailable, b->timeouts);
}

static int cmd_bench(globals *g, int argc, char **argv) {
    static const struct option options[] = {
        {"handler", required_argument, NULL, 'H'},
        {"payload", required_argument, NULL, 'p'},
        {"requests", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {"concurrency", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"hgrm", required_argument, NULL, 'g'},
        {NULL, 0, NULL, 0},
    };
    const char *handler = "echo", *hgrm = NULL;
    long payload = 16, requests = 0, concurrency = 16;
    double duration = 0;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        char *end = NULL;
        int bad = 0;
        switch (opt) {
        case 'H': handler = optarg; break;
        case 'p': bad = parse_long(optarg, 0, 64L << 20, &payload); break;
        case 'n': bad = parse_long(optarg, 1, 1000000000L, &requests); break;
        case 'd': /* NaN fails the comparison; inf and overflow fail the bound */
            duration = strtod(optarg, &end);
            bad = *end != '\0' || !(duration > 0 && duration <= BENCH_SECONDS_MAX);
            break;
        case 'C': bad = parse_long(optarg, 1, 1000000L, &concurrency); break;
        case 'j': json = 1; break;
        case 'g': hgrm = optarg; break;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "redwork bench: bad value '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || (requests > 0 && duration > 0)) {
        fprintf(stderr, "redwork bench: give --requests N or --duration S, "
                "a --concurrency >= 1 and a --payload >= 0\n");
        return EXIT_USAGE;
    }
    if (requests == 0 && duration == 0)
        requests = 10000;

    char *body = malloc((size_t)payload + 16);
    if (body == NULL)
        return EXIT_UNAVAILABLE;
    int n = sprintf(body, "{\"data\":\"");
    memset(body + n, 'x', (size_t)payload);
    strcpy(body + n + payload, "\"}");

    char err[512];
    redwork_client *c = redwork_client_open(&g->opt, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "redwork bench: %s\n", err);
        free(body);
        return EXIT_UNAVAILABLE;
    }
    bench *b = calloc(1, sizeof *b);
    if (b == NULL || pthread_mutex_init(&b->lock, NULL) != 0 ||
        pthread_cond_init(&b->finished, NULL) != 0) {
        fprintf(stderr, "redwork bench: out of memory\n");
        free(b);
        redwork_client_close(c);
        free(body);
        return EXIT_UNAVAILABLE;
    }
    b->client = c;
    b->handler = handler;
    b->body = body;
    b->timeout_ms = g->timeout_ms;
    b->total = requests;
    histogram_init(&b->latency);
    int live = isatty(STDERR_FILENO);

    uint64_t start = clock_now_us();
    b->stop_at = duration > 0 ? start + (uint64_t)(duration * 1e6) : UINT64_MAX;
    for (long i = 0; i < concurrency; i++) {
        pthread_mutex_lock(&b->lock);
        int more = take_slot(b);
        pthread_mutex_unlock(&b->lock);
        if (!more)
            break;
        redwork_call_async(c, handler, body, g->timeout_ms, bench_done, b);
    }
    /* Bounded: every call ends by its timeout, and no call starts after
     * the deadline or the total. */
    pthread_mutex_lock(&b->lock);
    while (b->in_flight > 0) {
        struct timespec tick;
        clock_gettime(CLOCK_REALTIME, &tick);
        tick.tv_nsec += 200000000L;
        if (tick.tv_nsec >= 1000000000L) {
            tick.tv_sec++;
            tick.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->finished, &b->lock, &tick);
        if (live)
            progress(b, b->total > 0 ? b->total : b->sent,
                     (double)(clock_now_us() - start) / 1e6);
    }
    pthread_mutex_unlock(&b->lock);
    double secs = (double)(clock_now_us() - start) / 1e6;
    if (live) {
        progress(b, b->sent, secs);
        fputc('\n', stderr);
    }
    redwork_client_close(c);
    long sent = b->sent;

    const histogram *h = &b->latency;
    double rps = secs > 0 ? (double)b->ok / secs : 0;
    /* min, p50, p90, p99, p99.9, max */
    unsigned long long us[6] = {h->min, histogram_percentile(h, 50),
                                histogram_percentile(h, 90), histogram_percentile(h, 99),
                                histogram_percentile(h, 99.9), h->max};
    if (json) { /* built by cJSON: valid JSON whatever the handler's name */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "handler", handler);
        const char *const names[] = {"concurrency", "payload", "requests", "ok", "errors",
                                     "timeouts", "unavailable"};
        const double values[] = {(double)concurrency, (double)payload, (double)sent,
                                 (double)b->ok, (double)b->errors, (double)b->timeouts,
                                 (double)b->unavailable};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            cJSON_AddNumberToObject(o, names[i], values[i]);
        cJSON_AddNumberToObject(o, "seconds", (double)(long long)(secs * 1000) / 1000);
        cJSON_AddNumberToObject(o, "rps", (double)(long long)rps);
        const char *const percentiles[] = {"min_us", "p50_us", "p90_us", "p99_us", "p999_us",
                                           "max_us"};
        for (size_t i = 0; i < 6; i++)
            cJSON_AddNumberToObject(o, percentiles[i], (double)us[i]);
        char *text = cJSON_PrintUnformatted(o);
        if (text != NULL)
            printf("%s\n", text);
        cJSON_free(text);
        cJSON_Delete(o);
    } else
        printf("handler %s, concurrency %ld, payload %ld bytes\n"
               "requests %ld: ok %ld, errors %ld, timeouts %ld, unavailable %ld\n"
               "throughput %.0f req/s over %.2f s\n"
               "latency us: min %llu  p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu\n",
               handler, concurrency, payload, sent, b->ok, b->errors, b->timeouts,
               b->unavailable, rps, secs, us[0], us[1], us[2], us[3], us[4], us[5]);
    int code = b->ok == sent ? 0 : b->ok == 0 && b->unavailable > 0 ? EXIT_UNAVAILABLE
                                                                 : EXIT_ERROR_REPLY;
    if (hgrm != NULL) { /* milliseconds, as HdrHistogram's plotters show */
        FILE *f = fopen(hgrm, "w");
        if (f == NULL || histogram_write_hgrm(h, f, 1000.0) != 0) {
            fprintf(stderr, "redwork bench: cannot write %s: %s\n", hgrm, strerror(errno));
            code = code ? code : EXIT_ERROR_REPLY;
        }
        if (f != NULL)
            fclose(f);
    }
    pthread_cond_destroy(&b->finished);
    pthread_mutex_destroy(&b->lock);
    free(b);
    free(body);
    return code;
}

/* ---- stats --------------------------------------------------------------- */

static const char *const stat_fields[] = {
    "id", "host", "pid", "handlers", "started", "requests", "errors",
    "queue_depth", "received", "rejected", "lost", "claims_lost", "channels", "threads",
    "version",
};
#define STAT_FIELDS (sizeof stat_fields / sizeof stat_fields[0])

/* Seconds since the worker W started. */
static long long uptime_s(const cJSON *w) {
    long long started = atoll(workers_field(w, "started"));
    return started > 0 ? ((long long)clock_wall_ms() - started) / 1000 : 0;
}

static int cmd_stats(globals *g, int argc, char **argv) {
    int json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 2 || (argc == 2 && !json)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char err[1024];
    cJSON *list = workers_read(&g->opt, err, sizeof err);
    if (list == NULL) {
        fprintf(stderr, "redwork stats: %s\n", err);
        return EXIT_UNAVAILABLE;
    }
    cJSON *shown = cJSON_CreateArray();
    if (!json)
        printf("%-24s %-16s %8s %-24s %10s %10s %8s %6s\n", "ID", "HOST", "PID",
               "HANDLERS", "UPTIME_S", "REQUESTS", "ERRORS", "QUEUE");
    const cJSON *w;
    cJSON_ArrayForEach(w, list) {
        if (json) {
            cJSON *o = cJSON_CreateObject();
            for (size_t f = 0; f < STAT_FIELDS; f++)
                cJSON_AddStringToObject(o, stat_fields[f], workers_field(w, stat_fields[f]));
            cJSON_AddNumberToObject(o, "uptime_s", (double)uptime_s(w));
            cJSON_AddItemToArray(shown, o);
        } else {
            printf("%-24s %-16s %8s %-24s %10lld %10s %8s %6s\n", workers_field(w, "id"),
                   workers_field(w, "host"), workers_field(w, "pid"),
                   workers_field(w, "handlers"), uptime_s(w), workers_field(w, "requests"),
                   workers_field(w, "errors"), workers_field(w, "queue_depth"));
        }
    }
    if (json) {
        char *text = cJSON_PrintUnformatted(shown);
        printf("%s\n", text);
        free(text);
    }
    cJSON_Delete(shown);
    cJSON_Delete(list);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"url", required_argument, NULL, 'u'},
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"channel", required_argument, NULL, 'C'},
        {"timeout", required_argument, NULL, 't'},
        {"transport", required_argument, NULL, 'T'},
        {"sentinels", required_argument, NULL, 'S'},
        {"master-name", required_argument, NULL, 'M'},
        {"cluster", no_argument, NULL, 'K'},
        {"stream-shards", required_argument, NULL, 'N'},
        {"client-name", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'H'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    signal(SIGPIPE, SIG_IGN); /* a closed connection is an error to report, not death */
    globals g = {.timeout_ms = 5000};
    redwork_client_options_init(&g.opt);
    const char *ini = NULL, *url = NULL, *host = NULL, *channel = NULL, *transport = NULL;
    const char *sentinels = NULL, *master_name = NULL, *client_name = NULL;
    long port = 0, timeout = 5000, shards = -1;
    int opt;
    /* "+": stop at the command, whose own options follow it. */
    while ((opt = getopt_long(argc, argv, "+c:u:", options, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'c': ini = optarg; break;
        case 'u': url = optarg; break;
        case 'h': host = optarg; break;
        case 'p': bad = parse_long(optarg, 1, 65535, &port); break;
        case 'C': channel = optarg; break;
        case 'S': sentinels = optarg; break;
        case 'M': master_name = optarg; break;
        case 'K': g.opt.cluster = 1; break;
        case 'I':
            client_name = optarg;
            bad = strlen(optarg) >= sizeof g.opt.client_name;
            break;
        case 'N': bad = parse_long(optarg, 0, 1024, &shards); break;
        case 't': bad = parse_long(optarg, 1, 86400000L, &timeout); break;
        case 'T':
            transport = optarg;
            bad = strcmp(optarg, "pubsub") != 0 && strcmp(optarg, "stream") != 0;
            break;
        case 'H': usage(stdout); return 0;
        case 'V': printf("redwork %s\n", REDWORK_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "redwork: bad value '%s'\n", optarg);
            return EXIT_USAGE;
        }
    }
    g.timeout_ms = (int)timeout;
    char err[1024];
    if (ini != NULL && redwork_client_options_load(&g.opt, ini, err, sizeof err) != 0) {
        fprintf(stderr, "redwork: %s\n", err);
        return EXIT_USAGE;
    }
    const char *url_from = "--url";
    if (url == NULL && ini == NULL && host == NULL && port == 0) {
        url = getenv("REDIS_URL"); /* the convention of most Redis tools */
        url_from = "REDIS_URL";
    }
    if (url != NULL && *url != '\0' &&
        redwork_client_options_set_url(&g.opt, url, err, sizeof err) != 0) {
        fprintf(stderr, "redwork: %s: %s\n", url_from, err);
        return EXIT_USAGE;
    }
    if ((host != NULL && strlen(host) >= sizeof g.opt.host) ||
        (channel != NULL && strlen(channel) >= sizeof g.opt.channel) ||
        (sentinels != NULL && strlen(sentinels) >= sizeof g.opt.sentinels) ||
        (master_name != NULL && strlen(master_name) >= sizeof g.opt.master_name)) {
        fprintf(stderr, "redwork: --host, --channel, --sentinels or --master-name too long\n");
        return EXIT_USAGE;
    }
    if (sentinels != NULL)
        strcpy(g.opt.sentinels, sentinels);
    if (master_name != NULL)
        strcpy(g.opt.master_name, master_name);
    if (host != NULL)
        strcpy(g.opt.host, host);
    if (channel != NULL)
        strcpy(g.opt.channel, channel);
    if (port != 0)
        g.opt.port = (int)port;
    if (transport != NULL)
        g.opt.transport_stream = strcmp(transport, "stream") == 0;
    if (shards >= 0)
        g.opt.stream_shards = (int)shards;
    if (client_name != NULL)
        strcpy(g.opt.client_name, client_name);
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "call") == 0)
        return cmd_call(&g, argc, argv);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(&g, argc, argv);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(&g, argc, argv);
    if (strcmp(cmd, "top") == 0) {
        if (argc != 1) {
            usage(stderr);
            return EXIT_USAGE;
        }
        return top_run(&g.opt);
    }
    fprintf(stderr, "redwork: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}

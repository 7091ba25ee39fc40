/* ceiling.c -- the physical limit of redwork's design on one Redis: the
 * same protocol with no framework at all, to measure redworkd against.
 *
 *   ceiling serve [-h HOST] [-p PORT] [-C CHANNEL] [-S]
 *       A raw hiredis echo responder: SUBSCRIBE CHANNEL; for each message,
 *       PUBLISH callback:<req_id> {"req_id":..,"ok":true,"result":<body>},
 *       everything pipelined on one thread. -S: CHANNEL is a stream read
 *       with XREADGROUP GROUP ceiling (COUNT 256, BLOCK), and each entry's
 *       PUBLISH is followed by its XACK and XDEL, pipelined, as redworkd
 *       acknowledges entries. Stops on SIGTERM/SIGINT.
 *   ceiling load [-h HOST] [-p PORT] [-C CHANNEL] [-c CONCURRENCY]
 *                [-n REQUESTS | -d SECONDS] [-b PAYLOAD_BYTES] [-H HANDLER]
 *                [-e MEMBERS] [-s] [-S] [-j] [-g HGRM_FILE]
 *       A raw hiredis load client: PSUBSCRIBE callback:<tag>.* first, then
 *       keeps CONCURRENCY requests in flight with pipelined PUBLISHes (-S:
 *       XADD CHANNEL * msg <json>; the request names HANDLER, echo by
 *       default, and carries "data" of PAYLOAD_BYTES and any further JSON
 *       MEMBERS, such as '"rounds":900'), and prints throughput and latency
 *       percentiles (-j: one JSON object with the keys of `redwork bench
 *       --json`). It is the one load client of `make bench`, against
 *       redworkd and against `ceiling serve` alike. -s: the other client
 *       design, one SUBSCRIBE callback:<req_id> per request, published once
 *       Redis confirms it, and UNSUBSCRIBEd after its reply; run it
 *       against redworkd to compare the two designs. -g: also writes the
 *       latency distribution to HGRM_FILE in HdrHistogram's percentile
 *       text format (milliseconds), for bench/run's picture. -r: the
 *       protocol 1.1 design instead of the pattern: SUBSCRIBE the one
 *       channel callback:<tag> and name it in each request's reply_to.
 *   ceiling idle [-h HOST] [-p PORT] [-n CLIENTS] [-P]
 *       CLIENTS idle clients, as many applications' callers waiting for
 *       nothing: each a connection SUBSCRIBEd to its own channel
 *       callback:idle<pid>-<i> (-P: PSUBSCRIBEd to the pattern
 *       callback:idle<pid>-<i>.*, the 1.0 client design), until SIGTERM.
 *
 * Both loop on poll(2) over their two connections; neither validates more
 * than it must: that is the point of a ceiling. */
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "histogram.h"

#define RING (1u << 20) /* send times by seq; in flight never exceeds it */
#define REQUEST_TIMEOUT_US 5000000u

typedef struct args {
    const char *host, *channel;
    const char *handler, *members; /* of each request; members: "" or ",..." */
    int port;
    long concurrency, requests, payload;
    double seconds;
    int json;
    int subscribe_each;
    int reply_to; /* -r: one exact channel named in reply_to */
    int stream;
    int patterns; /* idle -P */
    const char *hgrm; /* NULL: none */
} args;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static redisContext *connect_or_die(const args *a) {
    redisContext *c = redisConnect(a->host, a->port);
    if (c == NULL || c->err) {
        fprintf(stderr, "ceiling: %s:%d: %s\n", a->host, a->port,
                c ? c->errstr : "out of memory");
        exit(69);
    }
    return c;
}

/* Writes what C has buffered. */
static void flush(redisContext *c) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            fprintf(stderr, "ceiling: write: %s\n", c->errstr);
            exit(1);
        }
}

/* Reads what C has and drops every reply (PUBLISH counts). */
static void discard_replies(redisContext *c) {
    if (redisBufferRead(c) != REDIS_OK) {
        fprintf(stderr, "ceiling: read: %s\n", c->errstr);
        exit(1);
    }
    redisReply *r;
    while (redisGetReplyFromReader(c, (void **)&r) == REDIS_OK && r != NULL)
        freeReplyObject(r);
}

/* Waits up to TIMEOUT_MS for either connection, drops PUBLISH's answers
 * on PUB, and reads what came on SUB into its reader. Returns 1 if SUB
 * has new data, 0 if not; exits if SUB fails. */
static int wait_sub(redisContext *sub, redisContext *pub, int timeout_ms) {
    struct pollfd fds[2] = {{.fd = sub->fd, .events = POLLIN},
                            {.fd = pub->fd, .events = POLLIN}};
    if (poll(fds, 2, timeout_ms) <= 0)
        return 0;
    if (fds[1].revents & POLLIN)
        discard_replies(pub);
    if (!(fds[0].revents & POLLIN))
        return 0;
    if (redisBufferRead(sub) != REDIS_OK) {
        fprintf(stderr, "ceiling: subscriber: %s\n", sub->errstr);
        exit(1);
    }
    return 1;
}

/* The req_id string value in BODY, copied to ID; -1 if none. */
static int find_req_id(const char *body, char *id, size_t size) {
    const char *p = strstr(body, "\"req_id\":\"");
    if (p == NULL)
        return -1;
    p += 10;
    const char *end = strchr(p, '"');
    if (end == NULL || (size_t)(end - p) >= size)
        return -1;
    memcpy(id, p, (size_t)(end - p));
    id[end - p] = '\0';
    return 0;
}

/* Appends the echo reply to BODY for ID on PUB. */
static void reply_to(redisContext *pub, const char *id, const char *body) {
    redisAppendCommand(pub, "PUBLISH callback:%s {\"req_id\":\"%s\",\"ok\":true,\"result\":%s}",
                       id, id, body);
}

static int serve_pubsub(const args *a) {
    redisContext *sub = connect_or_die(a), *pub = connect_or_die(a);
    redisReply *r = redisCommand(sub, "SUBSCRIBE %s", a->channel);
    freeReplyObject(r);
    long served = 0;
    while (!stop) {
        if (!wait_sub(sub, pub, 200))
            continue;
        while (redisGetReplyFromReader(sub, (void **)&r) == REDIS_OK && r != NULL) {
            char id[160];
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                r->element[2]->type == REDIS_REPLY_STRING &&
                find_req_id(r->element[2]->str, id, sizeof id) == 0) {
                reply_to(pub, id, r->element[2]->str);
                served++;
            }
            freeReplyObject(r);
        }
        flush(pub);
    }
    fprintf(stderr, "ceiling: served %ld\n", served);
    redisFree(sub);
    redisFree(pub);
    return 0;
}

/* The stream worker: XREADGROUP on one connection (blocking), the
 * replies and acknowledgements pipelined on the other. */
static int serve_stream(const args *a) {
    redisContext *rd = connect_or_die(a), *pub = connect_or_die(a);
    redisReply *r = redisCommand(rd, "XGROUP CREATE %s ceiling $ MKSTREAM", a->channel);
    freeReplyObject(r);
    long served = 0;
    while (!stop) {
        r = redisCommand(rd, "XREADGROUP GROUP ceiling c1 COUNT 256 BLOCK 200 STREAMS %s >",
                         a->channel);
        if (r == NULL) {
            fprintf(stderr, "ceiling: XREADGROUP: %s\n", rd->errstr);
            return 1;
        }
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *entries = r->element[i]->element[1];
            for (size_t j = 0; j < entries->elements; j++) {
                redisReply *e = entries->element[j], *fields = e->element[1];
                char id[160];
                if (fields->elements < 2 ||
                    find_req_id(fields->element[1]->str, id, sizeof id) != 0)
                    continue;
                reply_to(pub, id, fields->element[1]->str);
                redisAppendCommand(pub, "XACK %s ceiling %s", a->channel, e->element[0]->str);
                redisAppendCommand(pub, "XDEL %s %s", a->channel, e->element[0]->str);
                served++;
            }
        }
        freeReplyObject(r);
        flush(pub);
        struct pollfd fd = {.fd = pub->fd, .events = POLLIN};
        if (poll(&fd, 1, 0) > 0)
            discard_replies(pub);
    }
    fprintf(stderr, "ceiling: served %ld\n", served);
    redisFree(rd);
    redisFree(pub);
    return 0;
}

static int serve(const args *a) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    return a->stream ? serve_stream(a) : serve_pubsub(a);
}

static void publish(redisContext *pub, const args *a, const char *tag, long seq,
                    const char *data) {
    if (a->reply_to)
        redisAppendCommand(pub, "PUBLISH %s {\"req_id\":\"%s.%ld\",\"reply_to\":\"callback:%s\","
                                "\"handler\":\"%s\",\"data\":\"%s\"%s}",
                           a->channel, tag, seq, tag, a->handler, data, a->members);
    else
        redisAppendCommand(pub, a->stream ? "XADD %s * msg {\"req_id\":\"%s.%ld\",\"handler\":\"%s\","
                                            "\"data\":\"%s\"%s}"
                                          : "PUBLISH %s {\"req_id\":\"%s.%ld\",\"handler\":\"%s\","
                                            "\"data\":\"%s\"%s}",
                           a->channel, tag, seq, a->handler, data, a->members);
}

static int load(const args *a) {
    redisContext *sub = connect_or_die(a), *pub = connect_or_die(a);
    char tag[32];
    snprintf(tag, sizeof tag, "ceil%ld", (long)getpid());
    redisReply *r;
    if (a->reply_to) {
        r = redisCommand(sub, "SUBSCRIBE callback:%s", tag);
        freeReplyObject(r);
    } else if (!a->subscribe_each) {
        r = redisCommand(sub, "PSUBSCRIBE callback:%s.*", tag);
        freeReplyObject(r);
    }

    char *data = malloc((size_t)a->payload + 1);
    uint64_t *sent_at = calloc(RING, sizeof *sent_at);
    histogram *h = malloc(sizeof *h);
    if (data == NULL || sent_at == NULL || h == NULL)
        return 1;
    memset(data, 'x', (size_t)a->payload);
    data[a->payload] = '\0';
    histogram_init(h);

    uint64_t start = clock_now_us();
    uint64_t stop_at = a->seconds > 0 ? start + (uint64_t)(a->seconds * 1e6) : UINT64_MAX;
    long sent = 0, ok = 0, in_flight = 0;
    uint64_t last_reply = start;
    for (;;) {
        uint64_t now = clock_now_us();
        int more = (a->requests == 0 || sent < a->requests) && now < stop_at;
        while (more && in_flight < a->concurrency) {
            sent_at[(unsigned long)sent % RING] = clock_now_us();
            if (a->subscribe_each)
                redisAppendCommand(sub, "SUBSCRIBE callback:%s.%ld", tag, sent);
            else
                publish(pub, a, tag, sent, data);
            sent++;
            in_flight++;
            more = a->requests == 0 || sent < a->requests;
        }
        flush(pub);
        flush(sub);
        if (in_flight == 0 && !more)
            break;
        if (now - last_reply > REQUEST_TIMEOUT_US) {
            fprintf(stderr, "ceiling: no reply for %u s: is `ceiling serve` running?\n",
                    REQUEST_TIMEOUT_US / 1000000u);
            break;
        }
        if (!wait_sub(sub, pub, 100))
            continue;
        now = clock_now_us();
        while (redisGetReplyFromReader(sub, (void **)&r) == REDIS_OK && r != NULL) {
            const char *kind = r->type == REDIS_REPLY_ARRAY && r->elements >= 3
                                   ? r->element[0]->str : "";
            const char *channel = r->elements == 4 ? r->element[2]->str
                                  : r->elements == 3 ? r->element[1]->str : "";
            char id[160] = "";
            if (a->reply_to && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
                find_req_id(r->element[2]->str, id, sizeof id); /* one channel: the id says */
            const char *dot = strrchr(a->reply_to ? id : channel, '.');
            long seq = dot != NULL ? atol(dot + 1) : 0;
            if (strcmp(kind, "subscribe") == 0) { /* now it may be published */
                publish(pub, a, tag, seq, data);
            } else if (strcmp(kind, "message") == 0 || strcmp(kind, "pmessage") == 0) {
                histogram_record(h, now - sent_at[(unsigned long)seq % RING]);
                ok++;
                in_flight--;
                last_reply = now;
                if (a->subscribe_each)
                    redisAppendCommand(sub, "UNSUBSCRIBE %s", channel);
            }
            freeReplyObject(r);
        }
    }
    double secs = (double)(clock_now_us() - start) / 1e6;
    double rps = secs > 0 ? (double)ok / secs : 0;
    unsigned long long p50 = histogram_percentile(h, 50), p90 = histogram_percentile(h, 90),
                       p99 = histogram_percentile(h, 99), p999 = histogram_percentile(h, 99.9);
    if (a->json)
        printf("{\"handler\":\"%s\",\"concurrency\":%ld,\"payload\":%ld,"
               "\"requests\":%ld,\"ok\":%ld,\"errors\":0,\"timeouts\":%ld,"
               "\"seconds\":%.3f,\"rps\":%.0f,\"min_us\":%llu,\"p50_us\":%llu,"
               "\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu}\n",
               a->subscribe_each ? "subscribe-each" : a->handler,
               a->concurrency, a->payload, sent, ok, sent - ok, secs, rps,
               (unsigned long long)h->min, p50, p90, p99, p999,
               (unsigned long long)h->max);
    else
        printf("ceiling: concurrency %ld: %ld/%ld answered, %.0f req/s, "
               "latency us p50 %llu p90 %llu p99 %llu p99.9 %llu max %llu\n",
               a->concurrency, ok, sent, rps, p50, p90, p99, p999,
               (unsigned long long)h->max);
    FILE *hgrm = a->hgrm != NULL ? fopen(a->hgrm, "w") : NULL;
    if (a->hgrm != NULL && (hgrm == NULL || histogram_write_hgrm(h, hgrm, 1000.0) != 0))
        fprintf(stderr, "ceiling: cannot write %s\n", a->hgrm);
    if (hgrm != NULL)
        fclose(hgrm);
    free(data);
    free(sent_at);
    free(h);
    redisFree(sub);
    redisFree(pub);
    return ok == sent ? 0 : 1;
}

/* `ceiling idle`: A->requests connections, each subscribed to its own
 * channel or pattern, held until SIGTERM. */
static int idle(const args *a) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max; /* a thousand sockets and more */
        setrlimit(RLIMIT_NOFILE, &files);
    }
    long n = a->requests;
    redisContext **c = calloc((size_t)n, sizeof *c);
    if (c == NULL)
        return 1;
    for (long i = 0; i < n; i++) {
        c[i] = connect_or_die(a);
        redisReply *r = redisCommand(c[i], a->patterns ? "PSUBSCRIBE callback:idle%ld-%ld.*"
                                                       : "SUBSCRIBE callback:idle%ld-%ld",
                                     (long)getpid(), i);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "ceiling: idle client %ld: cannot subscribe\n", i);
            return 1;
        }
        freeReplyObject(r);
    }
    while (!stop)
        pause();
    for (long i = 0; i < n; i++)
        redisFree(c[i]);
    free(c);
    return 0;
}

int main(int argc, char **argv) {
    args a = {.host = "127.0.0.1", .port = 6379, .channel = "request",
              .handler = "echo", .members = "", .concurrency = 64, .payload = 16};
    char members[512];
    if (argc < 2 || (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "load") != 0 &&
                     strcmp(argv[1], "idle") != 0)) {
        fprintf(stderr, "usage: ceiling serve|load|idle [-h HOST] [-p PORT] [-C CHANNEL] "
                "[-c CONCURRENCY] [-n REQUESTS | -d SECONDS] [-b PAYLOAD] [-H HANDLER] "
                "[-e MEMBERS] [-s | -r] [-S] [-j] [-g HGRM_FILE] [-P]\n");
        return 64;
    }
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "h:p:C:c:n:d:b:H:e:jsrSg:P")) != -1) {
        switch (opt) {
        case 'h': a.host = optarg; break;
        case 'p': a.port = atoi(optarg); break;
        case 'C': a.channel = optarg; break;
        case 'c': a.concurrency = atol(optarg); break;
        case 'n': a.requests = atol(optarg); break;
        case 'd': a.seconds = atof(optarg); break;
        case 'b': a.payload = atol(optarg); break;
        case 'H': a.handler = optarg; break;
        case 'e':
            snprintf(members, sizeof members, ",%s", optarg);
            a.members = members;
            break;
        case 'j': a.json = 1; break;
        case 'g': a.hgrm = optarg; break;
        case 's': a.subscribe_each = 1; break;
        case 'r': a.reply_to = 1; break;
        case 'P': a.patterns = 1; break;
        case 'S': a.stream = 1; break;
        default: return 64;
        }
    }
    if (a.concurrency < 1 || a.concurrency > (long)RING || a.payload < 0 ||
        (a.stream && (a.subscribe_each || a.reply_to)) || (a.subscribe_each && a.reply_to))
        return 64;
    if (a.requests == 0 && a.seconds == 0)
        a.requests = strcmp(argv[1], "idle") == 0 ? 1000 : 10000;
    if (strcmp(argv[1], "idle") == 0)
        return idle(&a);
    return strcmp(argv[1], "serve") == 0 ? serve(&a) : load(&a);
}

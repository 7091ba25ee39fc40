/* heartbeat.c -- the liveness key redwork:worker:<id>: one HSET of the
 * daemon's identity and counters plus a PEXPIRE, on the command wire,
 * about once a second. A failing write is logged when it starts failing
 * and when it works again, not at every beat. */
#include "heartbeat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "protocol.h"
#include "resp.h"

struct heartbeat {
    const config *cfg;
    wire *w;
    stats *st;
    char *handlers;
    char key[sizeof PROTOCOL_WORKER_PREFIX + 256];
    char host[256];
    char pid[24];
    char started[24];
    int failing;
};

heartbeat *heartbeat_create(const config *cfg, wire *w, const char *handlers,
                            stats *st) {
    heartbeat *hb = calloc(1, sizeof *hb);
    if (hb == NULL || (hb->handlers = strdup(handlers)) == NULL) {
        free(hb);
        return NULL;
    }
    hb->cfg = cfg;
    hb->w = w;
    hb->st = st;
    snprintf(hb->key, sizeof hb->key, "%s%s", PROTOCOL_WORKER_PREFIX, cfg->id);
    if (gethostname(hb->host, sizeof hb->host - 1) != 0)
        strcpy(hb->host, "unknown");
    snprintf(hb->pid, sizeof hb->pid, "%ld", (long)getpid());
    snprintf(hb->started, sizeof hb->started, "%llu",
             (unsigned long long)clock_wall_ms());
    return hb;
}

int heartbeat_set_handlers(heartbeat *hb, const char *handlers) {
    char *copy = strdup(handlers);
    if (copy == NULL)
        return -1;
    free(hb->handlers);
    hb->handlers = copy;
    return 0;
}

/* The answer to the HSET or the PEXPIRE. */
static void on_answer(void *ctx, const resp_value *v) {
    heartbeat *hb = ctx;
    if (v == NULL)
        return; /* the wire logs its own loss */
    int failed = v->type == RESP_ERROR;
    if (failed && !hb->failing)
        log_warn("heartbeat", "cannot write %s: %s", hb->key, v->str);
    else if (!failed && hb->failing)
        log_info("heartbeat", "writing %s again", hb->key);
    hb->failing = failed;
}

void heartbeat_beat(heartbeat *hb, size_t queue_depth, size_t busy) {
    if (!wire_is_up(hb->w))
        return;
    char counters[9][24];
    unsigned long long values[9] = {
        stats_get(hb->st->received), stats_get(hb->st->duplicates),
        stats_get(hb->st->rejected), stats_get(hb->st->requests),
        stats_get(hb->st->errors), stats_get(hb->st->lost),
        stats_get(hb->st->claims_lost), queue_depth, busy,
    };
    for (int i = 0; i < 9; i++)
        snprintf(counters[i], sizeof counters[i], "%llu", values[i]);
    char threads[24], ttl[24];
    snprintf(threads, sizeof threads, "%lld", hb->cfg->threads);
    snprintf(ttl, sizeof ttl, "%d", PROTOCOL_WORKER_TTL_MS);
    const char *hset[] = {
        "HSET", hb->key, "pid", hb->pid, "host", hb->host, "id", hb->cfg->id,
        "channels", hb->cfg->channels, "handlers", hb->handlers,
        "started", hb->started, "threads", threads,
        "version", REDWORK_VERSION, "metrics", hb->cfg->metrics_listen,
        "received", counters[0], "duplicates", counters[1],
        "rejected", counters[2], "requests", counters[3],
        "errors", counters[4], "lost", counters[5], "claims_lost", counters[6],
        "queue_depth", counters[7], "busy", counters[8],
    };
    buffer *out = wire_out(hb->w);
    resp_command(out, (int)(sizeof hset / sizeof hset[0]), hset, NULL);
    resp_args(out, "PEXPIRE", hb->key, ttl);
    if (wire_expect(hb->w, on_answer, hb) == 0)
        wire_expect(hb->w, on_answer, hb);
}

void heartbeat_delete(heartbeat *hb) {
    if (!wire_is_up(hb->w))
        return;
    resp_args(wire_out(hb->w), "DEL", hb->key);
    wire_expect(hb->w, NULL, NULL);
}

void heartbeat_free(heartbeat *hb) {
    if (hb == NULL)
        return;
    free(hb->handlers);
    free(hb);
}

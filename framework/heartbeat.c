/* heartbeat.c -- the liveness key redwork:worker:<id>: one HSET of the
 * daemon's identity and counters plus a PEXPIRE, pipelined, about once a
 * second. A failing Redis is logged when it starts failing and when it
 * works again, not at every beat. */
#include "heartbeat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "conn.h"
#include "log.h"

struct heartbeat {
    const config *cfg;
    stats *st;
    char *handlers;
    char key[sizeof HEARTBEAT_PREFIX + 256];
    char host[256];
    char pid[24];
    char started[24];
    redisContext *c; /* NULL while disconnected */
    int failing;
};

heartbeat *heartbeat_create(const config *cfg, const char *handlers,
                            stats *st) {
    heartbeat *hb = calloc(1, sizeof *hb);
    if (hb == NULL || (hb->handlers = strdup(handlers)) == NULL) {
        free(hb);
        return NULL;
    }
    hb->cfg = cfg;
    hb->st = st;
    snprintf(hb->key, sizeof hb->key, "%s%s", HEARTBEAT_PREFIX, cfg->id);
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

/* Sends the HSET and PEXPIRE and reads both replies. Returns 0, or -1
 * with ERR. */
static int write_key(heartbeat *hb, size_t queue_depth, char *err,
                     size_t errlen) {
    char counters[7][24];
    unsigned long long values[7] = {
        stats_get(hb->st->received), stats_get(hb->st->duplicates),
        stats_get(hb->st->rejected), stats_get(hb->st->requests),
        stats_get(hb->st->errors), stats_get(hb->st->lost), queue_depth,
    };
    for (int i = 0; i < 7; i++)
        snprintf(counters[i], sizeof counters[i], "%llu", values[i]);
    char threads[24];
    snprintf(threads, sizeof threads, "%lld", hb->cfg->threads);
    const char *argv[] = {
        "HSET", hb->key, "pid", hb->pid, "host", hb->host, "id", hb->cfg->id,
        "channels", hb->cfg->channels, "handlers", hb->handlers,
        "started", hb->started, "threads", threads,
        "version", REDWORK_VERSION,
        "received", counters[0], "duplicates", counters[1],
        "rejected", counters[2], "requests", counters[3],
        "errors", counters[4], "lost", counters[5], "queue_depth", counters[6],
    };
    redisAppendCommandArgv(hb->c, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
    redisAppendCommand(hb->c, "PEXPIRE %s %d", hb->key, HEARTBEAT_TTL_MS);
    int status = 0;
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(hb->c, (void **)&r) != REDIS_OK ||
            r->type == REDIS_REPLY_ERROR) {
            redwork_conn_error(hb->c, r, err, errlen);
            status = -1;
        }
        freeReplyObject(r);
        if (hb->c->err)
            break;
    }
    return status;
}

int heartbeat_beat(heartbeat *hb, size_t queue_depth) {
    char err[256];
    int status = -1;
    if (hb->c == NULL)
        hb->c = redwork_conn_open(hb->cfg, err, sizeof err);
    if (hb->c != NULL) {
        status = write_key(hb, queue_depth, err, sizeof err);
        if (status != 0 && hb->c->err) {
            redisFree(hb->c);
            hb->c = NULL;
        }
    }
    if (status != 0 && !hb->failing)
        log_warn("heartbeat", "cannot write %s: %s", hb->key, err);
    else if (status == 0 && hb->failing)
        log_info("heartbeat", "writing %s again", hb->key);
    hb->failing = status != 0;
    return status;
}

void heartbeat_free(heartbeat *hb) {
    if (hb == NULL)
        return;
    if (hb->c != NULL) {
        redisReply *r = redisCommand(hb->c, "DEL %s", hb->key);
        freeReplyObject(r);
        redisFree(hb->c);
    }
    free(hb->handlers);
    free(hb);
}

/* streams.c -- transport = stream: requests read from Redis streams with a
 * consumer group.
 *
 * DESIGN. At-least-once is the point, so an entry leaves the group's
 * pending list only when its reply is out (the reply sink pipelines XACK
 * and XDEL after the PUBLISH) or when it is moved to <stream>:dead. The
 * dispatcher reads no more entries than its queue has room for, so a busy
 * pool pushes back on Redis instead of overflowing. Entries a dead consumer
 * left pending are taken over with XAUTOCLAIM once idle for claim_idle_ms;
 * their delivery count (XPENDING) tells a poison entry -- one whose handler
 * keeps killing its worker -- apart, and the dispatcher dead-letters it
 * after max_deliveries. An entry still being worked on must not look idle,
 * or a slow handler would be taken over and run twice: the entries a
 * process holds are touched (XCLAIM JUSTID) several times per
 * claim_idle_ms. */
#include "streams.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "conn.h"
#include "log.h"

struct stream_source {
    const config *cfg;
    redisContext *c;
    char **cursors; /* XAUTOCLAIM position per stream */
};

/* Reads the answers to N pipelined commands. Returns 0, or -1 with ERR
 * holding the first error (the connection's, or Redis's). */
static int read_answers(stream_source *s, size_t n, char *err, size_t errlen) {
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK) {
            redwork_conn_error(s->c, NULL, err, errlen);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && status == 0) {
            redwork_conn_error(s->c, r, err, errlen);
            status = -1;
        }
        freeReplyObject(r);
    }
    return status;
}

void stream_entry_clear(stream_entry *e) {
    free(e->body);
    e->body = NULL;
}

void stream_source_free(stream_source *s) {
    if (s == NULL)
        return;
    for (size_t i = 0; s->cursors != NULL && i < s->cfg->channel_count; i++)
        free(s->cursors[i]);
    free(s->cursors);
    if (s->c != NULL)
        redisFree(s->c);
    free(s);
}

stream_source *stream_source_open(const config *cfg, char *err, size_t errlen) {
    stream_source *s = calloc(1, sizeof *s);
    if (s == NULL || (s->cursors = calloc(cfg->channel_count, sizeof *s->cursors)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    for (size_t i = 0; i < cfg->channel_count; i++)
        if ((s->cursors[i] = strdup("0-0")) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto err;
        }
    if ((s->c = redwork_conn_open(cfg, err, errlen)) == NULL)
        goto err;
    for (size_t i = 0; i < cfg->channel_count; i++) {
        redisReply *r = redisCommand(s->c, "XGROUP CREATE %s %s 0 MKSTREAM",
                                     cfg->channel_list[i], cfg->group);
        int ok = r != NULL && (r->type != REDIS_REPLY_ERROR ||
                               strncmp(r->str, "BUSYGROUP", 9) == 0);
        if (!ok) {
            char why[256];
            snprintf(err, errlen, "cannot create group %s on stream %s: %s",
                     cfg->group, cfg->channel_list[i],
                     redwork_conn_error(s->c, r, why, sizeof why));
        }
        freeReplyObject(r);
        if (!ok)
            goto err;
    }
    return s;
err:
    stream_source_free(s);
    return NULL;
}

/* Fills E from an entry reply [id, [field, value, ...]] of STREAM.
 * Returns 0, or -1 if the reply is not an entry. */
static int entry_from_reply(stream_entry *e, const char *stream,
                            const redisReply *r) {
    memset(e, 0, sizeof *e);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        strlen(r->element[0]->str) >= sizeof e->id)
        return -1;
    e->stream = stream;
    strcpy(e->id, r->element[0]->str);
    e->entry_ms = strtoull(e->id, NULL, 10);
    e->deliveries = 1;
    const redisReply *fields = r->element[1];
    for (size_t i = 0; fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, "msg") == 0 && e->body == NULL) {
            e->body = malloc(fields->element[i + 1]->len + 1);
            if (e->body != NULL) {
                memcpy(e->body, fields->element[i + 1]->str, fields->element[i + 1]->len);
                e->body[fields->element[i + 1]->len] = '\0';
                e->len = fields->element[i + 1]->len;
            }
        }
    return 0;
}

/* The configured stream named NAME (for a pointer that outlives replies). */
static const char *stream_named(const stream_source *s, const char *name) {
    for (size_t i = 0; i < s->cfg->channel_count; i++)
        if (strcmp(s->cfg->channel_list[i], name) == 0)
            return s->cfg->channel_list[i];
    return NULL;
}

int stream_source_read(stream_source *s, size_t room, int block_ms,
                       stream_entry *out, char *err, size_t errlen) {
    const config *cfg = s->cfg;
    const char **argv = malloc((9 + 2 * cfg->channel_count) * sizeof *argv);
    if (argv == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char count[24], block[24];
    snprintf(count, sizeof count, "%zu", room);
    snprintf(block, sizeof block, "%d", block_ms);
    const char *head[] = {"XREADGROUP", "GROUP", cfg->group, cfg->id, "COUNT",
                          count, "BLOCK", block, "STREAMS"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[n++] = head[i];
    for (size_t i = 0; i < cfg->channel_count; i++)
        argv[n++] = cfg->channel_list[i];
    for (size_t i = 0; i < cfg->channel_count; i++)
        argv[n++] = ">"; /* entries never delivered to this group */
    redisReply *r = redisCommandArgv(s->c, (int)n, argv, NULL);
    free(argv);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        redwork_conn_error(s->c, r, err, errlen);
        freeReplyObject(r);
        return -1;
    }
    size_t got = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *st = r->element[i]; /* [stream, [entries]] */
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2)
            continue;
        const char *stream = stream_named(s, st->element[0]->str);
        for (size_t j = 0; stream != NULL && j < st->element[1]->elements && got < room; j++)
            if (entry_from_reply(&out[got], stream, st->element[1]->element[j]) == 0)
                got++;
    }
    freeReplyObject(r);
    return (int)got;
}

int stream_source_reclaim(stream_source *s, size_t room, stream_entry *out,
                          char *err, size_t errlen) {
    const config *cfg = s->cfg;
    size_t got = 0;
    for (size_t i = 0; i < cfg->channel_count && got < room; i++) {
        const char *stream = cfg->channel_list[i];
        redisReply *r = redisCommand(s->c, "XAUTOCLAIM %s %s %s %lld %s COUNT %lu",
                                     stream, cfg->group, cfg->id, cfg->claim_idle_ms,
                                     s->cursors[i], (unsigned long)(room - got));
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
            redwork_conn_error(s->c, r, err, errlen);
            freeReplyObject(r);
            return -1;
        }
        char *next = strdup(r->element[0]->str);
        if (next != NULL) {
            free(s->cursors[i]);
            s->cursors[i] = next;
        }
        size_t first = got;
        for (size_t j = 0; j < r->element[1]->elements && got < room; j++)
            if (entry_from_reply(&out[got], stream, r->element[1]->element[j]) == 0)
                got++;
        freeReplyObject(r);
        /* Their delivery counts, which XAUTOCLAIM has just raised. */
        for (size_t k = first; k < got; k++)
            redisAppendCommand(s->c, "XPENDING %s %s %s %s 1", stream, cfg->group,
                               out[k].id, out[k].id);
        for (size_t k = first; k < got; k++) {
            redisReply *p = NULL;
            if (redisGetReply(s->c, (void **)&p) != REDIS_OK) {
                redwork_conn_error(s->c, NULL, err, errlen);
                while (k < got)
                    stream_entry_clear(&out[k++]);
                for (k = 0; k < first; k++)
                    stream_entry_clear(&out[k]);
                return -1;
            }
            if (p->type == REDIS_REPLY_ARRAY && p->elements == 1 &&
                p->element[0]->elements == 4)
                out[k].deliveries = p->element[0]->element[3]->integer;
            freeReplyObject(p);
        }
        if (got > first)
            log_info("streams", "took over %zu entries of %s left pending by "
                     "other consumers", got - first, stream);
    }
    return (int)got;
}

/* Appends one argument to a command being built. */
static void add_arg(const char **argv, size_t *lens, size_t *n, const char *arg,
                    size_t len) {
    argv[*n] = arg;
    lens[(*n)++] = len;
}

int stream_source_has_orphans(stream_source *s, char *err, size_t errlen) {
    const config *cfg = s->cfg;
    for (size_t i = 0; i < cfg->channel_count; i++)
        redisAppendCommand(s->c, "XPENDING %s %s IDLE %lld - + 1", cfg->channel_list[i],
                           cfg->group, cfg->claim_idle_ms);
    int found = 0, status = 0;
    for (size_t i = 0; i < cfg->channel_count; i++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK) {
            redwork_conn_error(s->c, NULL, err, errlen);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && status == 0) {
            redwork_conn_error(s->c, r, err, errlen);
            status = -1;
        }
        found |= r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        freeReplyObject(r);
    }
    return status < 0 ? -1 : found;
}

int stream_source_dead_letter(stream_source *s, const stream_entry *e,
                              const char *why, char *err, size_t errlen) {
    const config *cfg = s->cfg;
    char dead[512], maxlen[24], deliveries[24];
    snprintf(dead, sizeof dead, "%s%s", e->stream, STREAM_DEAD_SUFFIX);
    snprintf(maxlen, sizeof maxlen, "%lld", cfg->stream_maxlen);
    snprintf(deliveries, sizeof deliveries, "%lld", e->deliveries);
    const char *argv[16];
    size_t lens[16], n = 0;
    add_arg(argv, lens, &n, "XADD", 4);
    add_arg(argv, lens, &n, dead, strlen(dead));
    if (cfg->stream_maxlen > 0) {
        add_arg(argv, lens, &n, "MAXLEN", 6);
        add_arg(argv, lens, &n, "~", 1);
        add_arg(argv, lens, &n, maxlen, strlen(maxlen));
    }
    add_arg(argv, lens, &n, "*", 1);
    add_arg(argv, lens, &n, "msg", 3);
    add_arg(argv, lens, &n, e->body != NULL ? e->body : "", e->body != NULL ? e->len : 0);
    add_arg(argv, lens, &n, "error", 5);
    add_arg(argv, lens, &n, why, strlen(why));
    add_arg(argv, lens, &n, "deliveries", 10);
    add_arg(argv, lens, &n, deliveries, strlen(deliveries));
    add_arg(argv, lens, &n, "stream", 6);
    add_arg(argv, lens, &n, e->stream, strlen(e->stream));
    add_arg(argv, lens, &n, "id", 2);
    add_arg(argv, lens, &n, e->id, strlen(e->id));
    redisAppendCommandArgv(s->c, (int)n, argv, lens);
    redisAppendCommand(s->c, "XACK %s %s %s", e->stream, cfg->group, e->id);
    redisAppendCommand(s->c, "XDEL %s %s", e->stream, e->id);
    int status = read_answers(s, 3, err, errlen);
    if (status != 0)
        return -1;
    log_warn("streams", "moved entry %s of %s to %s after %lld deliveries: %s",
             e->id, e->stream, dead, e->deliveries, why);
    return status;
}

int stream_source_trim(stream_source *s, char *err, size_t errlen) {
    const config *cfg = s->cfg;
    if (cfg->stream_maxlen == 0)
        return 0;
    for (size_t i = 0; i < cfg->channel_count; i++) {
        redisAppendCommand(s->c, "XTRIM %s MAXLEN ~ %lld", cfg->channel_list[i],
                           cfg->stream_maxlen);
        redisAppendCommand(s->c, "XTRIM %s%s MAXLEN ~ %lld", cfg->channel_list[i],
                           STREAM_DEAD_SUFFIX, cfg->stream_maxlen);
    }
    return read_answers(s, 2 * cfg->channel_count, err, errlen);
}

/* ---- held entries ------------------------------------------------------- */

typedef struct held {
    const char *stream;
    char id[STREAM_ID_MAX];
} held;

struct stream_holds {
    pthread_mutex_t lock;
    held *items;
    size_t count, cap;
};

stream_holds *stream_holds_create(void) {
    stream_holds *h = calloc(1, sizeof *h);
    if (h != NULL)
        pthread_mutex_init(&h->lock, NULL);
    return h;
}

void stream_holds_free(stream_holds *h) {
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h->items);
    free(h);
}

int stream_holds_add(stream_holds *h, const char *stream, const char *id) {
    int status = 0;
    pthread_mutex_lock(&h->lock);
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        held *grown = realloc(h->items, cap * sizeof *grown);
        if (grown != NULL) {
            h->items = grown;
            h->cap = cap;
        }
    }
    if (h->count < h->cap) {
        h->items[h->count].stream = stream;
        snprintf(h->items[h->count].id, STREAM_ID_MAX, "%s", id);
        h->count++;
    } else {
        status = -1;
    }
    pthread_mutex_unlock(&h->lock);
    return status;
}

void stream_holds_remove(stream_holds *h, const char *stream, const char *id) {
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->count; i++)
        if (strcmp(h->items[i].id, id) == 0 && strcmp(h->items[i].stream, stream) == 0) {
            h->items[i] = h->items[--h->count];
            break;
        }
    pthread_mutex_unlock(&h->lock);
}

size_t stream_holds_count(stream_holds *h) {
    pthread_mutex_lock(&h->lock);
    size_t n = h->count;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int stream_source_touch(stream_source *s, stream_holds *h, char *err,
                        size_t errlen) {
    const config *cfg = s->cfg;
    held *copy = NULL;
    pthread_mutex_lock(&h->lock);
    size_t n = h->count;
    if (n > 0 && (copy = malloc(n * sizeof *copy)) != NULL)
        memcpy(copy, h->items, n * sizeof *copy);
    pthread_mutex_unlock(&h->lock);
    if (copy == NULL)
        return 0;
    size_t commands = 0;
    const char **argv = malloc((n + 7) * sizeof *argv);
    for (size_t i = 0; argv != NULL && i < cfg->channel_count; i++) {
        size_t argc = 0;
        const char *head[] = {"XCLAIM", cfg->channel_list[i], cfg->group, cfg->id, "0"};
        for (size_t k = 0; k < 5; k++)
            argv[argc++] = head[k];
        for (size_t j = 0; j < n; j++)
            if (copy[j].stream == cfg->channel_list[i])
                argv[argc++] = copy[j].id;
        if (argc == 5)
            continue;
        argv[argc++] = "JUSTID";
        redisAppendCommandArgv(s->c, (int)argc, argv, NULL);
        commands++;
    }
    free(argv);
    free(copy);
    return read_answers(s, commands, err, errlen);
}

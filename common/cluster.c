/* cluster.c -- Redis Cluster: hash slots, the slot map and redirects.
 *
 * DESIGN. The map is a flat array of 16384 node indexes: routing a
 * command is one CRC16 of its key and one load. CRC16 is computed bit by
 * bit; keys are short and the cost is a few tens of nanoseconds. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint16_t redwork_cluster_crc16(const void *p, size_t n) {
    const unsigned char *s = p;
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(s[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned redwork_cluster_key_slot(const char *key, size_t n) {
    const char *open = memchr(key, '{', n);
    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', n - from);
        if (close != NULL && close > key + from) /* "{}" is no tag: the whole key */
            return redwork_cluster_crc16(key + from, (size_t)(close - key) - from) % CLUSTER_SLOTS;
    }
    return redwork_cluster_crc16(key, n) % CLUSTER_SLOTS;
}

void redwork_cluster_map_init(redwork_cluster_map *m) {
    m->nodes = NULL;
    m->count = 0;
    for (size_t i = 0; i < CLUSTER_SLOTS; i++)
        m->slot_node[i] = CLUSTER_NO_NODE;
}

void redwork_cluster_map_clear(redwork_cluster_map *m) {
    free(m->nodes);
    redwork_cluster_map_init(m);
}

int redwork_cluster_map_find(const redwork_cluster_map *m, const char *host, int port) {
    for (size_t i = 0; i < m->count; i++)
        if (m->nodes[i].port == port && strcmp(m->nodes[i].host, host) == 0)
            return (int)i;
    return -1;
}

size_t redwork_cluster_map_served(const redwork_cluster_map *m) {
    size_t served = 0;
    for (size_t i = 0; i < CLUSTER_SLOTS; i++)
        served += m->slot_node[i] != CLUSTER_NO_NODE;
    return served;
}

/* The master of one CLUSTER SLOTS range, added to M if new. Returns its
 * index, or -1 with ERR. */
static int add_master(redwork_cluster_map *m, const redisReply *at, const char *asked_host,
                      char *err, size_t errlen) {
    if (at->type != REDIS_REPLY_ARRAY || at->elements < 2 ||
        at->element[0]->type != REDIS_REPLY_STRING || at->element[1]->type != REDIS_REPLY_INTEGER ||
        at->element[1]->integer < 1 || at->element[1]->integer > 65535) {
        snprintf(err, errlen, "CLUSTER SLOTS: a master's address is not [host, port, ...]");
        return -1;
    }
    const char *host = at->element[0]->str;
    if (*host == '\0' || strcmp(host, "?") == 0)
        host = asked_host;
    if (strlen(host) >= CLUSTER_HOST_MAX) {
        snprintf(err, errlen, "CLUSTER SLOTS: a host name of %zu bytes", strlen(host));
        return -1;
    }
    int port = (int)at->element[1]->integer;
    int found = redwork_cluster_map_find(m, host, port);
    if (found >= 0)
        return found;
    if (m->count == CLUSTER_NO_NODE) {
        snprintf(err, errlen, "CLUSTER SLOTS: more masters than slots");
        return -1;
    }
    redwork_cluster_node *grown = realloc(m->nodes, (m->count + 1) * sizeof *grown);
    if (grown == NULL) {
        snprintf(err, errlen, "CLUSTER SLOTS: out of memory");
        return -1;
    }
    m->nodes = grown;
    snprintf(m->nodes[m->count].host, CLUSTER_HOST_MAX, "%s", host);
    m->nodes[m->count].port = port;
    return (int)m->count++;
}

int redwork_cluster_map_parse(redwork_cluster_map *m, const redisReply *r, const char *asked_host,
                              char *err, size_t errlen) {
    redwork_cluster_map_clear(m);
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "CLUSTER SLOTS answered %s", r->type == REDIS_REPLY_ERROR ? r->str
                                                                                       : "no array");
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER ||
            range->element[0]->integer < 0 ||
            range->element[1]->integer < range->element[0]->integer ||
            range->element[1]->integer >= CLUSTER_SLOTS) {
            snprintf(err, errlen, "CLUSTER SLOTS: range %zu is not [first, last, master, ...]", i);
            redwork_cluster_map_clear(m);
            return -1;
        }
        int node = add_master(m, range->element[2], asked_host, err, errlen);
        if (node < 0) {
            redwork_cluster_map_clear(m);
            return -1;
        }
        for (long long s = range->element[0]->integer; s <= range->element[1]->integer; s++)
            m->slot_node[s] = (uint16_t)node;
    }
    if (m->count == 0) {
        snprintf(err, errlen, "CLUSTER SLOTS: no slot is served");
        return -1;
    }
    return 0;
}

int redwork_cluster_redirect_parse(const char *msg, size_t n, redwork_cluster_redirect *out) {
    char text[CLUSTER_HOST_MAX + 32];
    if (n >= sizeof text)
        return 0;
    memcpy(text, msg, n);
    text[n] = '\0';
    if (strncmp(text, "MOVED ", 6) == 0)
        out->ask = 0;
    else if (strncmp(text, "ASK ", 4) == 0)
        out->ask = 1;
    else
        return 0;
    char *p = text + (out->ask ? 4 : 6), *end;
    if (*p < '0' || *p > '9') /* strtoul would skip spaces and take a sign */
        return 0;
    unsigned long slot = strtoul(p, &end, 10);
    if (end == p || *end != ' ' || slot >= CLUSTER_SLOTS)
        return 0;
    char *addr = end + 1, *colon = strrchr(addr, ':');
    if (colon == NULL)
        return 0;
    if (colon[1] < '0' || colon[1] > '9')
        return 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return 0;
    *colon = '\0';
    if (addr[0] == '[' && colon > addr + 1 && colon[-1] == ']') { /* [v6]:port */
        colon[-1] = '\0';
        addr++;
    }
    out->slot = (unsigned)slot;
    out->port = (int)port;
    snprintf(out->host, sizeof out->host, "%s", addr);
    return 1;
}

/* A connection to HOST:PORT, as P says but for the address. */
static redisContext *connect_at(const conn_params *p, const char *host, int port, char *err,
                                size_t errlen) {
    conn_params at = *p;
    at.host = host;
    at.port = port;
    return redwork_conn_connect(&at, err, errlen);
}

/* Connects to HOST:PORT as P says and asks CLUSTER SLOTS. Returns the
 * connection with OUT filled, or NULL with WHY. */
static redisContext *ask_node(const conn_params *p, const char *host, int port,
                              redwork_cluster_map *out, char *why, size_t whylen) {
    redisContext *c = connect_at(p, host, port, why, whylen);
    if (c == NULL)
        return NULL;
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    int ok = r != NULL && redwork_cluster_map_parse(out, r, host, why, whylen) == 0;
    if (r == NULL)
        redwork_conn_error(c, NULL, why, whylen);
    freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Appends "host:port: WHY" to the list in ERR. */
static void note_failure(char *err, size_t errlen, const char *why) {
    size_t used = strlen(err);
    if (used < errlen)
        snprintf(err + used, errlen - used, "%s%s", used ? "; " : "", why);
}

redisContext *redwork_cluster_discover(const conn_params *p, const redwork_cluster_map *known,
                                       redwork_cluster_map *out, char *err, size_t errlen) {
    char reasons[1024] = "", why[512];
    redisContext *c = ask_node(p, p->host, p->port, out, why, sizeof why);
    if (c != NULL)
        return c;
    note_failure(reasons, sizeof reasons, why);
    for (size_t i = 0; known != NULL && i < known->count; i++) {
        const redwork_cluster_node *n = &known->nodes[i];
        if (n->port == p->port && strcmp(n->host, p->host) == 0)
            continue;
        c = ask_node(p, n->host, n->port, out, why, sizeof why);
        if (c != NULL)
            return c;
        note_failure(reasons, sizeof reasons, why);
    }
    snprintf(err, errlen, "no node of the cluster answers CLUSTER SLOTS: %s", reasons);
    return NULL;
}

redisContext *redwork_cluster_connect_node(const conn_params *p, const redwork_cluster_map *m,
                                           size_t index, char *err, size_t errlen) {
    return connect_at(p, m->nodes[index].host, m->nodes[index].port, err, errlen);
}

redisContext *redwork_cluster_connect_key(const conn_params *p, const char *key, size_t n,
                                          char *err, size_t errlen) {
    redwork_cluster_map m;
    redwork_cluster_map_init(&m);
    redisContext *c = redwork_cluster_discover(p, NULL, &m, err, errlen);
    if (c == NULL)
        return NULL;
    uint16_t owner = m.slot_node[redwork_cluster_key_slot(key, n)];
    if (owner == CLUSTER_NO_NODE) {
        snprintf(err, errlen, "cluster of seed %s:%d: no master serves slot %u (key '%.*s')",
                 p->host, p->port, redwork_cluster_key_slot(key, n), (int)(n > 200 ? 200 : n),
                 key);
        redisFree(c);
        redwork_cluster_map_clear(&m);
        return NULL;
    }
    const redwork_cluster_node *node = &m.nodes[owner];
    if (!(c->connection_type == REDIS_CONN_TCP && c->tcp.host != NULL &&
          c->tcp.port == node->port && strcmp(c->tcp.host, node->host) == 0)) {
        redisFree(c);
        c = redwork_cluster_connect_node(p, &m, owner, err, errlen);
    }
    redwork_cluster_map_clear(&m);
    return c;
}

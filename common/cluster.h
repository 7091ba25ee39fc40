/* cluster.h -- Redis Cluster: hash slots, the slot map and redirects.
 *
 * A cluster splits the keys over 16384 hash slots: CRC16 (XMODEM) of the
 * key, or of its hash tag (what stands between the first '{' and the next
 * '}', when that is not empty), modulo 16384. Each master serves some
 * slots; CLUSTER SLOTS says which, and a node asked for a key it does not
 * serve answers -MOVED (the slot lives elsewhere now) or -ASK (this one
 * key is being migrated: ask there, once, after ASKING).
 *
 * Everything here is plain data and parsing, with no connection of its
 * own but redwork_cluster_discover(); the daemon's wires (framework/wire.c)
 * and libredwork route with it. Part of libredwork, hence the prefix. */
#ifndef REDWORK_CLUSTER_H
#define REDWORK_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "conn.h"

#define CLUSTER_SLOTS 16384
#define CLUSTER_NO_NODE 0xFFFFu    /* a slot no master serves */
#define CLUSTER_HOST_MAX 256

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis uses. */
uint16_t redwork_cluster_crc16(const void *p, size_t n);

/* The hash slot of the N-byte KEY, hash tags respected. */
unsigned redwork_cluster_key_slot(const char *key, size_t n);

typedef struct redwork_cluster_node {
    char host[CLUSTER_HOST_MAX];
    int port;
} redwork_cluster_node;

/* Which master serves each slot. */
typedef struct redwork_cluster_map {
    redwork_cluster_node *nodes; /* the masters, malloc'd, owned */
    size_t count;
    uint16_t slot_node[CLUSTER_SLOTS]; /* index into nodes, or CLUSTER_NO_NODE */
} redwork_cluster_map;

/* An empty map (no node, no slot served). */
void redwork_cluster_map_init(redwork_cluster_map *m);

/* Frees M's nodes and empties it. */
void redwork_cluster_map_clear(redwork_cluster_map *m);

/* Fills M (emptied first) from R, the answer to CLUSTER SLOTS of a node
 * reached at ASKED_HOST: a master announced with no address ("" or "?")
 * is taken to be on that host. Returns 0, or -1 with ERR saying what is
 * wrong with R (M is then empty). */
int redwork_cluster_map_parse(redwork_cluster_map *m, const redisReply *r, const char *asked_host,
                              char *err, size_t errlen);

/* The index of HOST:PORT among M's masters, or -1. */
int redwork_cluster_map_find(const redwork_cluster_map *m, const char *host, int port);

/* The slots M serves, for messages: "16384 slots on 3 masters". */
size_t redwork_cluster_map_served(const redwork_cluster_map *m);

/* A redirect parsed from an error answer. */
typedef struct redwork_cluster_redirect {
    int ask;       /* 1: -ASK (this once, after ASKING); 0: -MOVED */
    unsigned slot;
    char host[CLUSTER_HOST_MAX]; /* "" when the node left it out: its own host */
    int port;
} redwork_cluster_redirect;

/* Parses the N-byte error text MSG ("MOVED 3999 127.0.0.1:6381", "ASK
 * 3999 [::1]:6381" or "ASK 3999 ::1:6381"). Returns 1 and fills OUT if MSG
 * is a redirect, 0 if it is another error or malformed. */
int redwork_cluster_redirect_parse(const char *msg, size_t n, redwork_cluster_redirect *out);

/* Asks the cluster for its slot map: P's host and port first (the seed),
 * then each master of KNOWN (may be NULL: a map from before). Returns the
 * connection to the first node that answered CLUSTER SLOTS, with OUT
 * filled (emptied first), or NULL with ERR naming every node tried and why
 * each failed. P->sentinel must be NULL. */
redisContext *redwork_cluster_discover(const conn_params *p, const redwork_cluster_map *known,
                                       redwork_cluster_map *out, char *err, size_t errlen);

/* A connection to the master serving the N-byte KEY: the slot map is
 * asked of P's host and port (the seed), then that master is connected
 * to (the seed's own connection when it is the one). Returns it, or NULL
 * with ERR naming the node and the reason. */
redisContext *redwork_cluster_connect_key(const conn_params *p, const char *key, size_t n,
                                          char *err, size_t errlen);

/* A connection to master INDEX of M, as P says but for the address.
 * Returns it, or NULL with ERR. */
redisContext *redwork_cluster_connect_node(const conn_params *p, const redwork_cluster_map *m,
                                           size_t index, char *err, size_t errlen);

#endif

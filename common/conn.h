/* conn.h -- opening a blocking connection to the configured Redis.
 *
 * Every thread that talks to Redis opens its own connection through here:
 * a redisContext is never shared between threads. */
#ifndef REDWORK_CONN_H
#define REDWORK_CONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* Where and as whom to connect. Strings are borrowed; "" or NULL username
 * and password mean none. */
typedef struct conn_params {
    const char *host;            /* starting with '/': a Unix socket's path */
    int port;
    long long db;
    const char *username;
    const char *password;
    long long connect_timeout_ms;
    int tls;                     /* TLS (tls.h); the tls_* may be NULL */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_server_name;
    const char *role;            /* for messages: "redis" when NULL */
    struct redwork_sentinel *sentinel; /* not NULL: host and port are the
                                        * master's, found through it
                                        * (sentinel.h); borrowed */
} conn_params;

/* Connects within connect_timeout_ms (through TLS if asked), authenticates (AUTH with username and
 * password when a password is given) and selects db. With a sentinel, the
 * master is found first (the sentinels with the same TLS settings and
 * their own user and password), and ROLE must say it is the master.
 * Commands on the connection time out after 5 s. Returns the context, or
 * NULL with ERR naming host:port (or the sentinels) and the reason. */
redisContext *redwork_conn_connect(const conn_params *p, char *err, size_t errlen);

/* A connection to one of P->sentinel's sentinels (not NULL): the one that
 * answered last, else the first that accepts. Returns the context, or NULL
 * with ERR naming them all and why each failed. */
redisContext *redwork_conn_sentinel(const conn_params *p, char *err, size_t errlen);

/* The parameters for the [redis] of CFG, with the password read from the
 * variable password_env names; strings are borrowed from CFG (and the
 * environment). */
conn_params redwork_conn_params(const config *cfg);

/* redwork_conn_connect() to the [redis] of CFG, with the password read from the
 * variable password_env names. */
redisContext *redwork_conn_open(const config *cfg, char *err, size_t errlen);

/* redwork_conn_sentinel() for the [redis] of CFG (cfg->sentinel not NULL). */
redisContext *redwork_conn_open_sentinel(const config *cfg, char *err, size_t errlen);

/* Formats REPLY's error (or C's) into ERR. Returns ERR. */
const char *redwork_conn_error(const redisContext *c, const redisReply *reply,
                       char *err, size_t errlen);

#endif

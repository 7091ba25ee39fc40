/* conn.h -- opening a blocking connection to the configured Redis.
 *
 * Every thread that talks to Redis opens its own connection through here:
 * a redisContext is never shared between threads. */
#ifndef REDWORK_CONN_H
#define REDWORK_CONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* Connects within connect_timeout_ms, authenticates (username and the
 * password from the variable password_env names) and selects db. Commands
 * on the connection time out after 5 s. Returns the context, or NULL with
 * ERR naming host:port and the reason. */
redisContext *conn_open(const config *cfg, char *err, size_t errlen);

/* Formats REPLY's error (or C's) into ERR. Returns ERR. */
const char *conn_error(const redisContext *c, const redisReply *reply,
                       char *err, size_t errlen);

#endif

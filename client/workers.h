/* workers.h -- the live workers, read from their heartbeat keys
 * (redwork:worker:<id>), on one server or on every master of a cluster:
 * what `redwork stats` lists and `redwork top` watches. */
#ifndef REDWORK_WORKERS_H
#define REDWORK_WORKERS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "redwork/client.h"

/* Reads every heartbeat where OPT says Redis is. Returns a cJSON array
 * (the caller's, cJSON_Delete it) of one object per worker, each field of
 * its hash a string member, or NULL with ERR naming the server and why. */
cJSON *workers_read(const redwork_client_options *opt, char *err, size_t errlen);

/* The string member NAME of worker W, or "". */
const char *workers_field(const cJSON *w, const char *name);

#endif

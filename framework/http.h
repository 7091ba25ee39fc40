/* http.h -- the metrics endpoint: GET /metrics and GET /healthz.
 *
 * One libmicrohttpd thread serves [metrics] listen: /metrics renders the
 * shared metrics (metrics.h), /healthz answers 200 "ok" while every worker
 * is connected to Redis and serving, else 503 with a one-line reason;
 * anything else is 404, and a method other than GET or HEAD 405. The
 * thread reads the metrics mapping only: it never touches Redis and takes
 * no lock the request path holds. */
#ifndef REDWORK_HTTP_H
#define REDWORK_HTTP_H

#include <stddef.h>

#include "metrics.h"

typedef struct http http;

/* Serves M on LISTEN ("host:port", "[v6]:port"; borrowed M), on a thread
 * of its own if OWN_THREAD, else through http_fd() and http_serve().
 * Returns the server, or NULL with ERR naming the address and the reason. */
http *http_start(const char *listen, metrics *m, int own_thread, char *err, size_t errlen);

/* Without a thread of its own: the descriptor to wait on for reading
 * (-1 with a thread). */
int http_fd(const http *h);

/* Without a thread of its own: answers what waits, without blocking. */
void http_serve(http *h);

/* In a process forked after http_start(): closes the descriptors it
 * inherited. H is not used again in this process. Accepts NULL. */
void http_forget(http *h);

/* Stops serving and frees. Accepts NULL. */
void http_stop(http *h);

#endif

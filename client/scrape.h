/* scrape.h -- a worker's metrics endpoint as `redwork top` reads it: one
 * HTTP GET of /metrics, and from its Prometheus text the figures per
 * handler (requests, errors, the duration histogram); and the quantile of
 * a histogram's growth, as Prometheus's histogram_quantile() computes it. */
#ifndef REDWORK_SCRAPE_H
#define REDWORK_SCRAPE_H

#include <stddef.h>

#define SCRAPE_BUCKETS 32 /* the daemon has 18 (50 us .. 10 s, +Inf) */

typedef struct scrape_handler {
    char name[128];               /* "" for requests no handler was found for */
    double requests;              /* redwork_requests_total, every outcome */
    double errors;                /* ... every outcome but ok */
    size_t buckets;               /* redwork_request_duration_seconds_bucket: */
    double le[SCRAPE_BUCKETS];    /* upper bounds in seconds, in order, +Inf last */
    double count[SCRAPE_BUCKETS]; /* cumulative counts */
} scrape_handler;

/* One endpoint's figures. Zeroed, it is empty; the handlers are its own. */
typedef struct scrape {
    scrape_handler *handler;
    size_t count, cap;
} scrape;

/* Resolves the [metrics] listen address LISTEN of a worker on HOST into
 * OUT ("host:port" to connect to): a wildcard host (empty, 0.0.0.0, ::,
 * *) becomes HOST. Returns 0, or -1 when LISTEN is empty or no address. */
int scrape_endpoint(const char *listen, const char *host, char *out, size_t len);

/* GET http://ENDPOINT/metrics within TIMEOUT_MS, parsed into OUT (cleared
 * first). Returns 0, or -1 with ERR naming the endpoint and why. */
int scrape_fetch(const char *endpoint, int timeout_ms, scrape *out, char *err, size_t errlen);

/* Parses the exposition TEXT into OUT (added to what it holds). Returns 0,
 * or -1 out of memory. Lines it does not need are skipped. */
int scrape_parse(const char *text, scrape *out);

/* The handler NAME in S, or NULL. */
const scrape_handler *scrape_find(const scrape *s, const char *name);

/* Empties S and frees what it holds. Accepts an empty S. */
void scrape_clear(scrape *s);

/* The Q-quantile (0..1) of a histogram of N cumulative COUNT at upper
 * bounds LE (+Inf last), interpolated linearly inside the bucket the rank
 * falls in, as Prometheus does; in the +Inf bucket, the last finite
 * bound. -1 when the histogram is empty. */
double scrape_quantile(const double *le, const double *count, size_t n, double q);

#endif

/* metrics.h -- what the daemon counts, for Prometheus and /healthz.
 *
 * Every worker process has a slot in one shared mapping that main makes
 * before the supervisor forks: the slot holds the worker's stats (stats.h),
 * its requests by handler and outcome, two latency histograms, its gauges
 * and its health. A worker respawned in the same slot goes on counting
 * where its predecessor stopped, so no counter goes backwards. One thread
 * per worker writes its slot (the event loop's); anyone reads any slot at
 * any time: every field is atomic, and recording a request is a handful
 * of relaxed loads and stores, no lock and no allocation.
 *
 * The handler names behind the labels live in the mapping too, added (under
 * a process-shared mutex, once per name) as workers first see them.
 * metrics_render() writes the sum over all slots in the Prometheus text
 * exposition format; metrics_health() says whether every worker is
 * connected to Redis and serving. */
#ifndef REDWORK_METRICS_H
#define REDWORK_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buffer.h"
#include "stats.h"

#define METRICS_HANDLERS 128 /* distinct handler names counted; more share "other" */

typedef struct metrics metrics;

/* A mapping with SLOTS worker slots (1 for processes = 1), shared with the
 * processes forked after it. Returns NULL with ERR. */
metrics *metrics_create(size_t slots, char *err, size_t errlen);

/* Unmaps M (in the process that calls it). Accepts NULL. */
void metrics_free(metrics *m);

/* The stats of slot SLOT: the counters the modules keep (stats.h). */
stats *metrics_stats(metrics *m, size_t slot);

/* The outcome index of an error CODE ("" or NULL: 0, ok), for
 * metrics_request(); an unknown code counts as "internal". */
int metrics_outcome(const char *code);

/* The name of OUTCOME ("ok", or the error code). */
const char *metrics_outcome_name(int outcome);

/* Records one answered request in SLOT: HANDLER (NULL or "": none was
 * found), OUTCOME (metrics_outcome()), how long its handler ran and how
 * long it waited from receipt to its start (negative: it never ran). */
void metrics_request(metrics *m, size_t slot, const char *handler, int outcome,
                     long long duration_us, long long wait_us);

/* Sets SLOT's gauges. */
void metrics_gauges(metrics *m, size_t slot, size_t queue_depth, size_t queue_capacity,
                    size_t threads_busy);

/* SLOT's worker PID is alive (0: gone: its gauges and health are cleared). */
void metrics_worker(metrics *m, size_t slot, pid_t pid);

/* SLOT's health: connected to Redis, and serving (started, not draining). */
void metrics_health_set(metrics *m, size_t slot, int connected, int serving);

/* 1 if every slot has a live worker that is connected and serving; else 0
 * with WHY naming the first that is not. */
int metrics_health(const metrics *m, char *why, size_t whylen);

/* SLOT's event loop has just done its periodic round: it makes progress. */
void metrics_beat(metrics *m, size_t slot);

/* 1 if every live worker's loop made its round within MAX_AGE_MS. */
int metrics_progressing(const metrics *m, uint64_t max_age_ms);

/* A one-line summary for people ("2 workers, 1520 requests, 3 errors,
 * queue 0/2048") into OUT. */
void metrics_summary(const metrics *m, char *out, size_t len);

/* Appends the exposition of every slot's sum to OUT (the Prometheus text
 * format, version 0.0.4), with the process figures of the live workers and
 * of the calling process. Returns 0, or -1 out of memory. */
int metrics_render(const metrics *m, buffer *out);

#endif

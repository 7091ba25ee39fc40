/* load.h -- calls through libredwork for the topology tests: a steady
 * load across a failover and what the failover cost, and a burst of many
 * calls in flight.
 *
 * A steady load makes one echo call every RW_LOAD_INTERVAL_MS from its own
 * thread, each with its own outcome. rw_load_failover() takes the time of
 * the fault and of the switch (the moment the new master is known to be
 * one), waits until a call made after the switch is answered, lets the
 * load run on, stops it, and tallies: every call is answered, failed at
 * once (the client told its caller at once: no master to send to, a
 * redirect, a connection lost with the call in it) or lost (sent, and no
 * answer came: a timeout). It prints one line, "FAILOVER <what>: ...", for the docs. */
#ifndef RW_LOAD_H
#define RW_LOAD_H

#include <pthread.h>
#include <stdatomic.h>

#include "redwork/client.h"

#define RW_LOAD_INTERVAL_MS 5
#define RW_LOAD_MAX 4000
#define RW_LOAD_TIMEOUT_MS 3000

typedef struct rw_load_call {
    long long sent_ms, done_ms; /* done_ms 0: no outcome yet */
    redwork_status status;
    int published;              /* redwork_call_async() returned 0 */
} rw_load_call;

typedef struct rw_load {
    redwork_client *client;     /* borrowed */
    rw_load_call calls[RW_LOAD_MAX];
    pthread_mutex_t lock;
    int sent;
    atomic_int stop;
    pthread_t thread;
    int running;
} rw_load;

/* What a failover cost. Times are rw_now_ms(). */
typedef struct rw_failover {
    long long fault_ms, switch_ms;
    long long recovered_ms;     /* the first call sent after the switch answered; 0: none */
    int sent, answered, refused, lost; /* refused: failed at once */
    int failed_late;            /* calls sent 500 ms after the recovery that failed */
    char lost_at[160];          /* when the lost ones were sent, ms from the switch */
} rw_failover;

/* Starts the load on C (L zeroed first). Returns 0, or -1. */
int rw_load_start(rw_load *l, redwork_client *c);

/* Stops the load (accepts a stopped one). */
void rw_load_stop(rw_load *l);

/* Runs L through a failover whose fault came at FAULT_MS and whose switch
 * at SWITCH_MS: as the header says. Fills OUT, prints the FAILOVER line
 * naming WHAT. Returns 0, or -1 if some call never got an outcome. */
int rw_load_failover(rw_load *l, const char *what, long long fault_ms, long long switch_ms,
                     rw_failover *out);

/* Asserts (Criterion) that F recovered: a call made after the switch was
 * answered within BOUND_MS of it, and none failed after the recovery.
 * WHAT names the failover in the messages. */
void rw_load_assert_recovered(const rw_failover *f, const char *what, long long bound_ms);

/* Makes N echo calls on C with at most WINDOW in flight, each with
 * TIMEOUT_MS. Returns how many were answered ok, or -1. */
int rw_load_burst(redwork_client *c, int n, int window, int timeout_ms);

#endif

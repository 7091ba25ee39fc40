/* supervisor.h -- processes = N: a master process that forks N worker
 * processes, respawns the ones that die, and passes signals on.
 *
 * The master holds no Redis connection and loads no handler: each worker
 * is a whole daemon (dispatcher, pool, handlers, heartbeat) with its own
 * worker id. Signals stay blocked in the master, which takes them with
 * sigtimedwait(), as the workers do. */
#ifndef REDWORK_SUPERVISOR_H
#define REDWORK_SUPERVISOR_H

#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

/* What the master does for the rest of the daemon, all on its one thread
 * (a fork from a process with other threads could hand the child their
 * locks held): tells M which worker runs in which slot (slot K-1 for
 * worker K; pid 0 when it died); while it waits, also waits for FD (-1:
 * none) to be readable and then runs FD_READY(CTX) (the metrics endpoint),
 * and runs TICK(CTX) at least every TICK_US (systemd's status and
 * watchdog); runs SIGNALED(CTX, SIG) as it takes SIGTERM, SIGINT or
 * SIGHUP; and IN_CHILD(CTX) in each worker right after the fork (to let go
 * of what is the master's alone). The functions may be NULL. */
typedef struct supervisor_hooks {
    metrics *m;
    int fd;
    void (*fd_ready)(void *ctx);
    uint64_t tick_us;
    void (*tick)(void *ctx);
    void (*signaled)(void *ctx, int sig);
    void (*in_child)(void *ctx);
    void *ctx;
} supervisor_hooks;

/* Forks CFG's processes workers and supervises them, as HOOKS says. SIGNALS is the set the
 * caller blocked (SIGTERM, SIGINT, SIGHUP); SIGCHLD is added. Returns in
 * each worker process with its index (1..processes), after unblocking
 * SIGCHLD, so the caller goes on as a worker. In the master it returns 0
 * once every worker has stopped, with the master's exit status in *STATUS:
 * 0 if every worker exited 0 after SIGTERM/SIGINT; 1 otherwise; or the
 * worker's 64, 69 or 78 when the first workers failed at start (a config
 * error, or Redis unreachable), which respawning cannot mend. Returns -1
 * with *STATUS set if the first fork failed. */
int supervisor_run(const config *cfg, const sigset_t *signals, const supervisor_hooks *hooks,
                   int *status);

#endif

/* supervisor.c -- the master process of processes = N.
 *
 * DESIGN. As nginx's master: every signal is blocked, and one loop takes
 * SIGCHLD, SIGTERM, SIGINT and SIGHUP with sigtimedwait(), its timeout
 * being the next respawn due. SIGCHLD reaps every dead worker (WNOHANG) and
 * logs its exit status or signal; a worker that dies is respawned, at once
 * if it had run for a while, else after a backoff that doubles with each
 * quick death (a crash loop must not become a fork bomb). SIGHUP is passed
 * to the workers (they reload their handlers). SIGTERM/SIGINT is passed on
 * once, respawning stops, and workers still alive after their drain time
 * are killed. Workers that fail at the very start with 64, 69 or 78 stop
 * everything: a bad config or an unreachable Redis is not a crash. */
#include "supervisor.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define STEADY_US 10000000u  /* a worker that ran this long was healthy */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define KILL_GRACE_MS 5000   /* past shutdown_timeout_ms, before SIGKILL */

typedef struct worker {
    pid_t pid;           /* 0: not running */
    uint64_t started_us;
    uint64_t respawn_us; /* when to start it again; 0: not scheduled */
    unsigned quick_deaths;
    int ever_steady;     /* it ran long enough once: no more start failure */
    int last_status;     /* wait status of its last exit */
} worker;

/* Forks worker K. Returns 0 in the parent (W updated), 1 in the child, -1
 * if fork failed. */
static int spawn(worker *w, int k, const sigset_t *chld, int sfd, const supervisor_hooks *hooks) {
    pid_t pid = fork();
    if (pid < 0) {
        log_error("supervisor", "cannot fork worker %d: %s", k, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        pthread_sigmask(SIG_UNBLOCK, chld, NULL);
        close(sfd); /* the master's */
        if (hooks->in_child != NULL)
            hooks->in_child(hooks->ctx);
        return 1;
    }
    metrics_worker(hooks->m, (size_t)k - 1, pid);
    w->pid = pid;
    w->started_us = clock_now_us();
    w->respawn_us = 0;
    log_info("supervisor", "started worker %d (pid %ld)", k, (long)pid);
    return 0;
}

static void describe(int status, char *out, size_t len) {
    if (WIFEXITED(status))
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(out, len, "stopped with wait status %d", status);
}

/* A start failure respawning cannot mend: usage, config, no Redis. */
static int fatal_at_start(const worker *w, int status) {
    if (w->ever_steady || !WIFEXITED(status))
        return 0;
    int code = WEXITSTATUS(status);
    return code == EX_USAGE || code == EX_CONFIG || code == EX_UNAVAILABLE;
}

static void signal_all(worker *ws, long n, int sig) {
    for (long i = 0; i < n; i++)
        if (ws[i].pid > 0)
            kill(ws[i].pid, sig);
}

/* Waits up to WAIT_US for a signal on SFD, serving HOOKS's fd meanwhile.
 * Returns the signal, or 0 if none came. */
static int wait_signal(int sfd, const supervisor_hooks *hooks, uint64_t wait_us) {
    uint64_t until = clock_now_us() + wait_us;
    for (;;) {
        struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = hooks->fd, .events = POLLIN}};
        uint64_t now = clock_now_us();
        int ms = now >= until ? 0 : (int)((until - now + 999) / 1000);
        int n = poll(fds, hooks->fd >= 0 ? 2 : 1, ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (hooks->fd >= 0 && (fds[1].revents & POLLIN) && hooks->fd_ready != NULL)
            hooks->fd_ready(hooks->ctx);
        struct signalfd_siginfo si;
        if ((fds[0].revents & POLLIN) && read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            return (int)si.ssi_signo;
        if (clock_now_us() >= until)
            return 0;
    }
}

int supervisor_run(const config *cfg, const sigset_t *signals, const supervisor_hooks *hooks,
                   int *status) {
    long n = (long)cfg->processes;
    worker *ws = calloc((size_t)n, sizeof *ws);
    if (ws == NULL) {
        log_error("supervisor", "out of memory");
        *status = EXIT_FAILURE;
        return -1;
    }
    sigset_t set = *signals, chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        log_error("supervisor", "cannot make a signalfd: %s", strerror(errno));
        free(ws);
        *status = EXIT_FAILURE;
        return -1;
    }

    log_info("supervisor", "starting %ld worker processes", n);
    for (long i = 0; i < n; i++) {
        int r = spawn(&ws[i], (int)i + 1, &chld, sfd, hooks);
        if (r == 1) {
            free(ws);
            return (int)i + 1;
        }
        if (r < 0 && i == 0) {
            free(ws);
            close(sfd);
            *status = EXIT_FAILURE;
            return -1;
        }
        if (r < 0)
            ws[i].respawn_us = clock_now_us() + BACKOFF_MIN_MS * 1000u;
    }

    int stopping = 0, failed = 0, fatal = 0;
    uint64_t kill_at = 0;
    for (;;) {
        long alive = 0;
        uint64_t now = clock_now_us(), next = now + 1000000u;
        if (hooks->tick != NULL) {
            hooks->tick(hooks->ctx);
            if (hooks->tick_us > 0 && now + hooks->tick_us < next)
                next = now + hooks->tick_us;
        }
        for (long i = 0; i < n; i++) {
            alive += ws[i].pid > 0;
            if (!stopping && ws[i].pid == 0 && ws[i].respawn_us != 0) {
                if (ws[i].respawn_us <= now) {
                    if (spawn(&ws[i], (int)i + 1, &chld, sfd, hooks) == 1) {
                        free(ws);
                        return (int)i + 1;
                    }
                    alive += ws[i].pid > 0;
                    if (ws[i].pid == 0) /* fork failed: try again later */
                        ws[i].respawn_us = now + BACKOFF_MAX_MS * 1000u;
                } else if (ws[i].respawn_us < next) {
                    next = ws[i].respawn_us;
                }
            }
        }
        if (stopping && alive == 0)
            break;
        if (stopping && kill_at != 0 && now >= kill_at) {
            log_warn("supervisor", "%ld workers still running after their drain "
                     "time: SIGKILL", alive);
            signal_all(ws, n, SIGKILL);
            kill_at = 0;
            failed = 1;
        }
        int sig = wait_signal(sfd, hooks, next > now ? next - now : 0);
        if ((sig == SIGTERM || sig == SIGINT || sig == SIGHUP) && hooks->signaled != NULL)
            hooks->signaled(hooks->ctx, sig);

        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping) {
                log_info("supervisor", "%s: stopping the workers", strsignal(sig));
                stopping = 1;
                kill_at = clock_now_us() +
                          ((uint64_t)cfg->shutdown_timeout_ms + KILL_GRACE_MS) * 1000u;
                signal_all(ws, n, SIGTERM);
            }
        } else if (sig == SIGHUP) {
            log_info("supervisor", "SIGHUP: passed to the workers");
            signal_all(ws, n, SIGHUP);
        } else if (sig == SIGCHLD) {
            int st;
            pid_t pid;
            while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                long i = 0;
                while (i < n && ws[i].pid != pid)
                    i++;
                if (i == n)
                    continue;
                worker *w = &ws[i];
                uint64_t ran = clock_now_us() - w->started_us;
                char how[128];
                describe(st, how, sizeof how);
                w->pid = 0;
                metrics_worker(hooks->m, (size_t)i, 0);
                w->last_status = st;
                if (ran >= STEADY_US) {
                    w->ever_steady = 1;
                    w->quick_deaths = 0;
                }
                if (stopping) {
                    failed |= !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                    log_info("supervisor", "worker %ld (pid %ld) %s", i + 1,
                             (long)pid, how);
                    continue;
                }
                if (fatal_at_start(w, st)) {
                    log_error("supervisor", "worker %ld (pid %ld) %s at start: "
                              "stopping", i + 1, (long)pid, how);
                    fatal = WEXITSTATUS(st);
                    stopping = 1;
                    kill_at = clock_now_us() +
                              ((uint64_t)cfg->shutdown_timeout_ms + KILL_GRACE_MS) * 1000u;
                    signal_all(ws, n, SIGTERM);
                    continue;
                }
                unsigned delay_ms = 0;
                if (ran < STEADY_US) {
                    w->quick_deaths++;
                    delay_ms = BACKOFF_MIN_MS << (w->quick_deaths < 8 ? w->quick_deaths - 1 : 7);
                    if (delay_ms > BACKOFF_MAX_MS)
                        delay_ms = BACKOFF_MAX_MS;
                }
                log_warn("supervisor", "worker %ld (pid %ld) %s after %.1f s; "
                         "respawning in %u ms", i + 1, (long)pid, how,
                         (double)ran / 1e6, delay_ms);
                w->respawn_us = clock_now_us() + delay_ms * 1000u;
            }
        }
    }
    free(ws);
    close(sfd);
    *status = fatal ? fatal : failed ? EXIT_FAILURE : 0;
    log_info("supervisor", "all workers stopped; exiting %d", *status);
    return 0;
}

/* loop.h -- the event loop of the thread that owns the Redis I/O.
 *
 * A small epoll loop in the manner of Redis's ae: file descriptors with a
 * callback, one-shot timers, hooks that run before the loop sleeps (where
 * buffered output is written, once per round), and wake-ups from other
 * threads (loop_async). Everything but loop_async_signal() belongs to the
 * thread that runs the loop. */
#ifndef REDWORK_LOOP_H
#define REDWORK_LOOP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct loop loop;

enum { LOOP_READ = 1, LOOP_WRITE = 2 };

typedef void loop_io_fn(void *ctx, int events);
typedef void loop_fn(void *ctx);

/* A one-shot timer, owned (embedded) by its user. */
typedef struct loop_timer {
    uint64_t due_us;          /* clock_now_us() scale */
    loop_fn *fn;
    void *ctx;
    int armed;
    struct loop_timer *next;  /* the loop's list of armed timers */
} loop_timer;

/* A wake-up from another thread: loop_async_signal() makes the loop call
 * FN once soon, however many signals came before it ran. */
typedef struct loop_async {
    atomic_int pending;
    loop *owner;
    loop_fn *fn;
    void *ctx;
    struct loop_async *next;
} loop_async;

/* A new loop. Returns NULL with ERR if epoll or eventfd failed. */
loop *loop_create(char *err, size_t errlen);

/* Frees the loop (not the fds it watched). No async may be signalled any
 * more. Accepts NULL. */
void loop_free(loop *l);

/* Calls FN(CTX, events) when FD is readable (LOOP_READ in EVENTS) or
 * writable (LOOP_WRITE); a second call changes the events. Errors and
 * hang-ups are reported as LOOP_READ, asked for or not, for the reader to
 * find them. Returns 0, or -1 (errno set). */
int loop_watch(loop *l, int fd, int events, loop_io_fn *fn, void *ctx);

/* Stops watching FD (before it is closed). */
void loop_unwatch(loop *l, int fd);

/* Sets T up to call FN(CTX). Cannot fail. */
void loop_timer_init(loop_timer *t, loop_fn *fn, void *ctx);

/* Arms T to fire in DELAY_US (re-arms it if armed). */
void loop_timer_start(loop *l, loop_timer *t, uint64_t delay_us);

/* Disarms T. Accepts a disarmed timer. */
void loop_timer_stop(loop *l, loop_timer *t);

/* Registers A to call FN(CTX) on the loop after loop_async_signal(). */
void loop_async_init(loop *l, loop_async *a, loop_fn *fn, void *ctx);

/* Unregisters A (on the loop's thread, once nothing signals it). */
void loop_async_remove(loop *l, loop_async *a);

/* Asks A's loop to run its function soon. Any thread; lock-free; costs a
 * system call only when the loop is asleep. */
void loop_async_signal(loop_async *a);

/* Adds FN(CTX) to the hooks run at the start of every round, before the
 * loop waits: where output gathered during a round is written. Returns 0,
 * or -1 out of memory. */
int loop_before_wait(loop *l, loop_fn *fn, void *ctx);

/* Removes the hook FN(CTX). */
void loop_before_wait_remove(loop *l, loop_fn *fn, void *ctx);

/* Sets how long the loop watches its asyncs before it sleeps, from the
 * next round on: a wake-up that comes within SPIN_US then costs no system
 * call on either side, and no sleep and wake of this thread. 0: none. */
void loop_set_spin(loop *l, unsigned spin_us);

/* Runs one round: the before-wait hooks, then a wait of at most
 * MAX_WAIT_MS (-1: until something happens) for fds, timers and asyncs,
 * then their callbacks. Returns 0, or -1 if epoll failed. */
int loop_run_once(loop *l, int max_wait_ms);

#endif

/* test_loop.c -- the event loop (framework/loop.h): fds, timers in order
 * and once, hooks every round, and wake-ups from another thread that
 * reach a loop asleep with no timeout. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"

static loop *lp;
static char err[256];

static void setup(void) {
    lp = loop_create(err, sizeof err);
    cr_assert_not_null(lp, "%s", err);
}

static void teardown(void) { loop_free(lp); }

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 20);

static int order[8], fired;

static void record(void *ctx) { order[fired++] = (int)(long)ctx; }

Test(loop, timers_fire_once_in_due_order) {
    loop_timer a, b, c;
    loop_timer_init(&a, record, (void *)1L);
    loop_timer_init(&b, record, (void *)2L);
    loop_timer_init(&c, record, (void *)3L);
    loop_timer_start(lp, &b, 20000);
    loop_timer_start(lp, &a, 5000);
    loop_timer_start(lp, &c, 40000);
    loop_timer_stop(lp, &c); /* disarmed: never fires */
    uint64_t until = clock_now_us() + 200000;
    while (fired < 2 && clock_now_us() < until)
        cr_assert_eq(loop_run_once(lp, 100), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(loop_run_once(lp, 20), 0);
    cr_assert_eq(fired, 2);
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 2);
    cr_assert(!a.armed && !b.armed && !c.armed);
}

Test(loop, restarting_a_timer_moves_it) {
    loop_timer a;
    loop_timer_init(&a, record, (void *)7L);
    loop_timer_start(lp, &a, 1000);
    loop_timer_start(lp, &a, 60000000); /* a minute from now */
    cr_assert_eq(loop_run_once(lp, 30), 0);
    cr_assert_eq(fired, 0, "the first arming must be gone");
    loop_timer_stop(lp, &a);
}

static int rounds;

static void count_round(void *ctx) {
    (void)ctx;
    rounds++;
}

Test(loop, hooks_run_every_round_until_removed) {
    cr_assert_eq(loop_before_wait(lp, count_round, NULL), 0);
    for (int i = 0; i < 3; i++)
        loop_run_once(lp, 0);
    loop_before_wait_remove(lp, count_round, NULL);
    loop_run_once(lp, 0);
    cr_assert_eq(rounds, 3);
}

static int readable;

static void on_read(void *ctx, int events) {
    int fd = *(int *)ctx;
    char c;
    if ((events & LOOP_READ) && read(fd, &c, 1) == 1)
        readable++;
}

Test(loop, a_watched_fd_reports_input) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(loop_watch(lp, fds[0], LOOP_READ, on_read, &fds[0]), 0);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    cr_assert_eq(loop_run_once(lp, 1000), 0);
    cr_assert_eq(readable, 1);
    loop_unwatch(lp, fds[0]);
    cr_assert_eq(write(fds[1], "y", 1), 1);
    cr_assert_eq(loop_run_once(lp, 10), 0);
    cr_assert_eq(readable, 1, "an unwatched fd reports nothing");
    close(fds[0]);
    close(fds[1]);
}

static int woken;

static void on_wake(void *ctx) {
    (void)ctx;
    woken++;
}

static void *signal_later(void *arg) {
    usleep(50000);
    loop_async_signal(arg);
    return NULL;
}

/* A loop asleep with no timeout wakes for a signal from another thread,
 * and runs the function once for several signals. */
Test(loop, async_wakes_a_sleeping_loop) {
    loop_async a;
    loop_async_init(lp, &a, on_wake, NULL);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, signal_later, &a), 0);
    cr_assert_eq(loop_run_once(lp, -1), 0);
    cr_assert_eq(woken, 1);
    pthread_join(t, NULL);
    loop_async_signal(&a);
    loop_async_signal(&a);
    cr_assert_eq(loop_run_once(lp, -1), 0);
    cr_assert_eq(woken, 2, "two signals before a round: one call");
    loop_async_remove(lp, &a);
}

/* With a spin set, a signal that comes within it is taken awake. */
Test(loop, spin_takes_a_quick_signal) {
    loop_async a;
    loop_async_init(lp, &a, on_wake, NULL);
    loop_set_spin(lp, 200000);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, signal_later, &a), 0);
    uint64_t t0 = clock_now_us();
    cr_assert_eq(loop_run_once(lp, -1), 0);
    cr_assert_eq(woken, 1);
    cr_assert_lt(clock_now_us() - t0, 1000000u);
    pthread_join(t, NULL);
    loop_async_remove(lp, &a);
}

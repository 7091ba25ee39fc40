/* loop.c -- the event loop of the thread that owns the Redis I/O.
 *
 * DESIGN. epoll over a handful of sockets, a short list of one-shot timers
 * scanned for the nearest (a daemon arms fewer than twenty), and one
 * eventfd for wake-ups from other threads. The wake-up protocol keeps the
 * common case free of system calls: before it waits the loop stores
 * `sleeping = 1` and then looks at every async's pending flag; a signaller
 * stores its flag and then swaps `sleeping` to 0, writing the eventfd only
 * if it was 1. Both sides use sequentially consistent atomics, so either
 * the loop sees the flag and does not sleep, or the signaller sees the loop
 * asleep and wakes it: a signal is never missed, and a busy loop is never
 * woken by a system call. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"

#define MAX_EVENTS 64
#define SPIN_POLL_US 10

typedef struct watch {
    loop_io_fn *fn;
    void *ctx;
    int events;
} watch;

typedef struct hook {
    loop_fn *fn;
    void *ctx;
} hook;

struct loop {
    int epfd;
    int wakefd;
    atomic_int sleeping;
    watch *watches; /* by fd */
    size_t watch_cap;
    loop_timer *timers; /* armed */
    loop_async *asyncs;
    hook *hooks;
    size_t hook_count;
    unsigned spin_us;
};

loop *loop_create(char *err, size_t errlen) {
    loop *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l->wakefd};
    if (l->epfd < 0 || l->wakefd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0) {
        snprintf(err, errlen, "cannot make the event loop: %s", strerror(errno));
        loop_free(l);
        return NULL;
    }
    return l;
}

void loop_free(loop *l) {
    if (l == NULL)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    free(l->watches);
    free(l->hooks);
    free(l);
}

int loop_watch(loop *l, int fd, int events, loop_io_fn *fn, void *ctx) {
    if ((size_t)fd >= l->watch_cap) {
        size_t cap = l->watch_cap ? l->watch_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        watch *grown = realloc(l->watches, cap * sizeof *grown);
        if (grown == NULL) {
            errno = ENOMEM;
            return -1;
        }
        memset(grown + l->watch_cap, 0, (cap - l->watch_cap) * sizeof *grown);
        l->watches = grown;
        l->watch_cap = cap;
    }
    watch *w = &l->watches[fd];
    struct epoll_event ev = {
        .events = ((events & LOOP_READ) ? EPOLLIN : 0) | ((events & LOOP_WRITE) ? EPOLLOUT : 0),
        .data.fd = fd,
    };
    int op = w->fn != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if ((w->fn == NULL || w->events != events) && epoll_ctl(l->epfd, op, fd, &ev) != 0)
        return -1;
    w->fn = fn;
    w->ctx = ctx;
    w->events = events;
    return 0;
}

void loop_unwatch(loop *l, int fd) {
    if (fd < 0 || (size_t)fd >= l->watch_cap || l->watches[fd].fn == NULL)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(&l->watches[fd], 0, sizeof l->watches[fd]);
}

void loop_timer_init(loop_timer *t, loop_fn *fn, void *ctx) {
    memset(t, 0, sizeof *t);
    t->fn = fn;
    t->ctx = ctx;
}

void loop_timer_stop(loop *l, loop_timer *t) {
    if (!t->armed)
        return;
    for (loop_timer **p = &l->timers; *p != NULL; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    t->armed = 0;
    t->next = NULL;
}

void loop_timer_start(loop *l, loop_timer *t, uint64_t delay_us) {
    loop_timer_stop(l, t);
    t->due_us = clock_now_us() + delay_us;
    t->armed = 1;
    t->next = l->timers;
    l->timers = t;
}

void loop_async_init(loop *l, loop_async *a, loop_fn *fn, void *ctx) {
    atomic_init(&a->pending, 0);
    a->owner = l;
    a->fn = fn;
    a->ctx = ctx;
    a->next = l->asyncs;
    l->asyncs = a;
}

void loop_async_remove(loop *l, loop_async *a) {
    for (loop_async **p = &l->asyncs; *p != NULL; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            return;
        }
}

void loop_async_signal(loop_async *a) {
    atomic_store(&a->pending, 1);
    if (atomic_exchange(&a->owner->sleeping, 0) == 1) {
        uint64_t one = 1;
        ssize_t ignored = write(a->owner->wakefd, &one, sizeof one);
        (void)ignored; /* only EAGAIN, when the counter is already set */
    }
}

int loop_before_wait(loop *l, loop_fn *fn, void *ctx) {
    hook *grown = realloc(l->hooks, (l->hook_count + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    l->hooks = grown;
    l->hooks[l->hook_count++] = (hook){fn, ctx};
    return 0;
}

void loop_before_wait_remove(loop *l, loop_fn *fn, void *ctx) {
    for (size_t i = 0; i < l->hook_count; i++)
        if (l->hooks[i].fn == fn && l->hooks[i].ctx == ctx) {
            memmove(l->hooks + i, l->hooks + i + 1, (l->hook_count - i - 1) * sizeof *l->hooks);
            l->hook_count--;
            return;
        }
}

/* The wait until the nearest timer, within MAX_WAIT_MS (-1: none). */
static int wait_ms(const loop *l, int max_wait_ms) {
    uint64_t now = clock_now_us();
    long long ms = max_wait_ms;
    for (const loop_timer *t = l->timers; t != NULL; t = t->next) {
        long long until = t->due_us <= now ? 0 : (long long)((t->due_us - now + 999) / 1000);
        if (ms < 0 || until < ms)
            ms = until;
    }
    return (int)ms;
}

static int any_pending(const loop *l) {
    for (loop_async *a = l->asyncs; a != NULL; a = a->next)
        if (atomic_load(&a->pending))
            return 1;
    return 0;
}

/* Runs every timer that is due, each once. */
static void run_timers(loop *l) {
    uint64_t now = clock_now_us();
    for (;;) {
        loop_timer *due = NULL;
        for (loop_timer *t = l->timers; t != NULL && due == NULL; t = t->next)
            if (t->due_us <= now)
                due = t;
        if (due == NULL)
            return;
        loop_timer_stop(l, due);
        due->fn(due->ctx);
    }
}

void loop_set_spin(loop *l, unsigned spin_us) { l->spin_us = spin_us; }

/* A pause in a spin loop: it frees the core's resources for the other
 * hardware thread and saves power. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Watches the asyncs for up to SPIN_US, and the fds every
 * SPIN_POLL_US (a system call, so not at every turn): input that comes
 * during a spin is not left waiting for it. Returns 1 if something is
 * ready. */
static int spin(const loop *l, unsigned spin_us) {
    uint64_t now = clock_now_us(), until = now + spin_us, next_poll = now + SPIN_POLL_US;
    do {
        for (int i = 0; i < 64; i++) {
            if (any_pending(l))
                return 1;
            cpu_relax();
        }
        now = clock_now_us();
        if (now >= next_poll) {
            struct pollfd fd = {.fd = l->epfd, .events = POLLIN};
            if (poll(&fd, 1, 0) > 0)
                return 1;
            next_poll = now + SPIN_POLL_US;
        }
    } while (now < until);
    return 0;
}

int loop_run_once(loop *l, int max_wait_ms) {
    for (size_t i = 0; i < l->hook_count; i++)
        l->hooks[i].fn(l->hooks[i].ctx);
    int timeout = wait_ms(l, max_wait_ms);
    if (timeout != 0 && l->spin_us > 0 && spin(l, l->spin_us))
        timeout = 0;
    atomic_store(&l->sleeping, 1);
    if (timeout != 0 && any_pending(l))
        timeout = 0;
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(l->epfd, events, MAX_EVENTS, timeout);
    atomic_store(&l->sleeping, 0);
    if (n < 0 && errno != EINTR)
        return -1;
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd == l->wakefd) {
            uint64_t count;
            ssize_t ignored = read(l->wakefd, &count, sizeof count);
            (void)ignored; /* EAGAIN: another round drained it */
            continue;
        }
        if ((size_t)fd >= l->watch_cap || l->watches[fd].fn == NULL)
            continue; /* unwatched by an earlier callback of this round */
        int ev = ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? LOOP_READ : 0) |
                 ((events[i].events & EPOLLOUT) ? LOOP_WRITE : 0);
        l->watches[fd].fn(l->watches[fd].ctx, ev);
    }
    for (loop_async *a = l->asyncs; a != NULL; a = a->next)
        if (atomic_exchange(&a->pending, 0))
            a->fn(a->ctx);
    run_timers(l);
    return 0;
}

/* clock.h -- the two clocks redwork uses: monotonic for durations and
 * timeouts, wall-clock for what operators read. Cannot fail. */
#ifndef REDWORK_CLOCK_H
#define REDWORK_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t clock_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif

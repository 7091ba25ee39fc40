/* histogram.c -- a latency histogram in constant memory, log-bucketed. */
#include "histogram.h"

#include <string.h>

void histogram_init(histogram *h) {
    memset(h, 0, sizeof *h);
}

static unsigned bucket_of(uint64_t v) {
    if (v < HISTOGRAM_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v >= 32, so e >= 5 */
    unsigned i = HISTOGRAM_SUB + (e - 5) * HISTOGRAM_SUB +
                 (unsigned)((v >> (e - 5)) & (HISTOGRAM_SUB - 1));
    return i < HISTOGRAM_BUCKETS ? i : HISTOGRAM_BUCKETS - 1;
}

/* The highest value bucket I holds. */
static uint64_t bucket_top(unsigned i) {
    if (i < HISTOGRAM_SUB)
        return i;
    unsigned e = (i - HISTOGRAM_SUB) / HISTOGRAM_SUB + 5;
    uint64_t m = (i - HISTOGRAM_SUB) % HISTOGRAM_SUB;
    return ((HISTOGRAM_SUB + m + 1) << (e - 5)) - 1;
}

void histogram_record(histogram *h, uint64_t value) {
    h->counts[bucket_of(value)]++;
    if (h->total == 0 || value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
    h->total++;
}

uint64_t histogram_percentile(const histogram *h, double p) {
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? (top > h->min ? top : h->min) : h->max;
        }
    }
    return h->max;
}

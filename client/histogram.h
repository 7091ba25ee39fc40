/* histogram.h -- a latency histogram in constant memory, log-bucketed in
 * the manner of HdrHistogram: exact below 32, then 32 sub-buckets per power
 * of two (about 3% relative precision) up to 2^40. One writer at a time:
 * the caller serialises. */
#ifndef REDWORK_HISTOGRAM_H
#define REDWORK_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB 32
#define HISTOGRAM_BUCKETS (HISTOGRAM_SUB + 36 * HISTOGRAM_SUB)

typedef struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t min, max;
} histogram;

/* Empties H. Cannot fail. */
void histogram_init(histogram *h);

/* Counts one VALUE (values past 2^41 count in the last bucket). */
void histogram_record(histogram *h, uint64_t value);

/* The value at percentile P (0..100): the highest value of the bucket
 * holding it, never above the maximum recorded. 0 when H is empty. */
uint64_t histogram_percentile(const histogram *h, double p);

#endif

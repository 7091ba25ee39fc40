/* histogram.h -- a latency histogram in constant memory, log-bucketed in
 * the manner of HdrHistogram: exact below 32, then 32 sub-buckets per power
 * of two (about 3% relative precision) up to 2^40. One writer at a time:
 * the caller serialises. */
#ifndef REDWORK_HISTOGRAM_H
#define REDWORK_HISTOGRAM_H

#include <stdint.h>
#include <stdio.h>

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

/* Writes H to OUT in HdrHistogram's percentile distribution text format
 * (what its plotters read): value (the recorded unit divided by
 * UNIT_RATIO), percentile, total count at or below, 1/(1-percentile), at
 * five ticks per halving of the distance to 100%, then the mean, standard
 * deviation, maximum and count. Returns 0, or -1 if writing failed. */
int histogram_write_hgrm(const histogram *h, FILE *out, double unit_ratio);

#endif

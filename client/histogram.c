/* histogram.c -- a latency histogram in constant memory, log-bucketed. */
#include "histogram.h"

#include <math.h>
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

/* The bucket holding the value at fraction F (0..1) of H (not empty), and
 * the count at or below it in *AT_OR_BELOW. */
static unsigned bucket_at(const histogram *h, double f, uint64_t *at_or_below) {
    uint64_t rank = (uint64_t)ceil(f * (double)h->total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    unsigned i = 0;
    for (; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            break;
    }
    *at_or_below = seen;
    return i < HISTOGRAM_BUCKETS ? i : HISTOGRAM_BUCKETS - 1;
}

/* The value reported for bucket I: its top, within [min, max]. */
static uint64_t reported(const histogram *h, unsigned i) {
    uint64_t top = bucket_top(i);
    return top < h->max ? (top > h->min ? top : h->min) : h->max;
}

int histogram_write_hgrm(const histogram *h, FILE *out, double unit_ratio) {
    fprintf(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    double mean = 0, var = 0;
    if (h->total > 0) {
        for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++)
            mean += (double)h->counts[i] * (double)reported(h, i);
        mean /= (double)h->total;
        for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
            double d = (double)reported(h, i) - mean;
            var += (double)h->counts[i] * d * d;
        }
        var /= (double)h->total;
        /* Five ticks per halving of the distance to 100% (as HdrHistogram
         * reports), until every value is at or below the level reached. */
        double level = 0;
        for (int line = 0; line < 1000; line++) {
            uint64_t below;
            unsigned i = bucket_at(h, level, &below);
            fprintf(out, "%12.3f %2.12f %10llu %14.2f\n", (double)reported(h, i) / unit_ratio,
                    level, (unsigned long long)below, 1.0 / (1.0 - level));
            if (below >= h->total)
                break;
            double ticks = 10.0 * pow(2.0, floor(log2(1.0 / (1.0 - level))));
            level += 1.0 / ticks;
        }
        fprintf(out, "%12.3f %2.12f %10llu\n", (double)h->max / unit_ratio, 1.0,
                (unsigned long long)h->total);
    }
    fprintf(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean / unit_ratio,
            sqrt(var) / unit_ratio);
    fprintf(out, "#[Max     = %12.3f, Total count    = %12llu]\n", (double)h->max / unit_ratio,
            (unsigned long long)h->total);
    fprintf(out, "#[Buckets = %12d, SubBuckets     = %12d]\n", HISTOGRAM_BUCKETS / HISTOGRAM_SUB,
            HISTOGRAM_SUB);
    return ferror(out) ? -1 : 0;
}

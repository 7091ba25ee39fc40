/* oom.h -- for tests: makes one allocation fail, the Nth from now, in
 * redwork's own code (through alloc.h) and in cJSON (through its hooks),
 * so that a test can walk every out-of-memory path of a piece of code in
 * turn: N = 1, 2, ... until a run makes fewer than N allocations.
 * hiredis 0.14 has no allocator hooks, so its allocations are not counted.
 * Any thread may allocate meanwhile; one test arms it at a time. */
#ifndef REDWORK_TESTS_OOM_H
#define REDWORK_TESTS_OOM_H

/* From now on, the Nth allocation (N >= 1) returns NULL; the others
 * succeed. */
void oom_fail_nth(long n);

/* Back to the C library's allocators. Returns 1 if the Nth allocation was
 * reached (and failed), 0 if the code made fewer: the walk is over. */
int oom_stop(void);

#endif

/* oom.c -- the failing allocator of the tests (oom.h). */
#include "oom.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "alloc.h"

static atomic_long calls;
static long fail_at;

/* Counts a call; 1 if it is the one to fail. */
static int fails_now(void) {
    return atomic_fetch_add(&calls, 1) + 1 == fail_at;
}

static void *oom_malloc(size_t n) {
    return fails_now() ? NULL : malloc(n);
}

static void *oom_calloc(size_t count, size_t n) {
    return fails_now() ? NULL : calloc(count, n);
}

static void *oom_realloc(void *p, size_t n) {
    return fails_now() ? NULL : realloc(p, n);
}

void oom_fail_nth(long n) {
    static const redwork_allocator counting = {oom_malloc, oom_calloc, oom_realloc};
    fail_at = n;
    atomic_store(&calls, 0);
    cJSON_Hooks hooks = {oom_malloc, free};
    cJSON_InitHooks(&hooks);
    redwork_alloc_set(&counting);
}

int oom_stop(void) {
    redwork_alloc_set(NULL);
    cJSON_InitHooks(NULL);
    return atomic_load(&calls) >= fail_at;
}

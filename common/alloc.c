/* alloc.c -- the replaceable allocator (alloc.h). The installed one is an
 * atomic pointer, read relaxed: installing it is for tests, and a call
 * sees the old one or the new one, each whole. */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const redwork_allocator libc_allocator = {malloc, calloc, realloc};
static _Atomic(const redwork_allocator *) installed = &libc_allocator;

static void *fail_malloc(size_t n) {
    (void)n;
    return NULL;
}

static void *fail_calloc(size_t count, size_t n) {
    (void)count;
    (void)n;
    return NULL;
}

static void *fail_realloc(void *p, size_t n) {
    (void)p;
    (void)n;
    return NULL;
}

const redwork_allocator *redwork_alloc_failing(void) {
    static const redwork_allocator failing = {fail_malloc, fail_calloc, fail_realloc};
    return &failing;
}

void redwork_alloc_set(const redwork_allocator *a) {
    atomic_store(&installed, a != NULL ? a : &libc_allocator);
}

void *redwork_malloc(size_t n) {
    return atomic_load_explicit(&installed, memory_order_relaxed)->malloc_fn(n);
}

void *redwork_calloc(size_t count, size_t n) {
    return atomic_load_explicit(&installed, memory_order_relaxed)->calloc_fn(count, n);
}

void *redwork_realloc(void *p, size_t n) {
    return atomic_load_explicit(&installed, memory_order_relaxed)->realloc_fn(p, n);
}

char *redwork_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = redwork_malloc(n);
    return copy != NULL ? memcpy(copy, s, n) : NULL;
}

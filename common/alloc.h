/* alloc.h -- the allocator of redwork's own code (buffers, requests,
 * deferred replies, the client's waiters): the C library's, unless a test
 * installs one that fails, to drive the out-of-memory paths. cJSON and
 * hiredis keep their own allocators. What these return is freed with
 * free(): an installed allocator must hand out the C library's memory. */
#ifndef REDWORK_ALLOC_H
#define REDWORK_ALLOC_H

#include <stddef.h>

typedef struct redwork_allocator {
    void *(*malloc_fn)(size_t n);
    void *(*calloc_fn)(size_t count, size_t n);
    void *(*realloc_fn)(void *p, size_t n);
} redwork_allocator;

/* Installs A (borrowed: it must outlive its use; NULL: the C library's)
 * for every allocation from now on. Any thread; a test's tool. */
void redwork_alloc_set(const redwork_allocator *a);

/* An allocator whose every call fails (returns NULL), for tests. (A
 * function, not an exported variable: sanitizers add symbols of their own
 * for those, and the library exports only redwork_ names.) */
const redwork_allocator *redwork_alloc_failing(void);

/* As malloc, calloc and realloc, through the installed allocator. */
void *redwork_malloc(size_t n);
void *redwork_calloc(size_t count, size_t n);
void *redwork_realloc(void *p, size_t n);

/* As strdup, through the installed allocator. */
char *redwork_strdup(const char *s);

#endif

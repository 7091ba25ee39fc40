/* leaks.h -- for tests: under ASan (make SANITIZE=address,...) a test may
 * end with a leak check of its own process, so a leak fails the test
 * instead of going unseen (Criterion's test processes end without
 * LeakSanitizer's exit check). Needs criterion.h. */
#ifndef REDWORK_TESTS_LEAKS_H
#define REDWORK_TESTS_LEAKS_H

#if defined(__SANITIZE_ADDRESS__)
#define RW_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RW_LSAN 1
#endif
#endif
#ifdef RW_LSAN
#include <sanitizer/lsan_interface.h>
#define assert_no_leaks()                                                      \
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,                       \
                 "LeakSanitizer found leaks (reported above)")
#else
#define assert_no_leaks() ((void)0)
#endif

#endif

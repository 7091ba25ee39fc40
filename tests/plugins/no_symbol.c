/* no_symbol.c -- fixture: a shared object that exports no
 * redwork_handler_v1 (only another symbol). The loader must refuse it and
 * name the missing symbol. */
#include "redwork/handler.h"

extern __attribute__((visibility("default"))) int redwork_not_a_handler(void);

__attribute__((visibility("default"))) int redwork_not_a_handler(void) {
    return 42;
}

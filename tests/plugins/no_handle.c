/* no_handle.c -- fixture: a handler without the required handle callback.
 * The loader must refuse it. */
#include "redwork/handler.h"

REDWORK_HANDLER(.name = "no_handle", .description = "has no handle");

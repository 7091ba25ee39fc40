/* options.h -- libredwork's options as connection parameters, for the
 * library and the redwork command (which links it statically); not part
 * of the public API. */
#ifndef REDWORK_CLIENT_OPTIONS_H
#define REDWORK_CLIENT_OPTIONS_H

#include <stddef.h>

#include "conn.h"
#include "redwork/client.h"
#include "sentinel.h"

/* The parameters for connecting as O says, with SENTINEL (NULL if O names
 * no sentinels). Strings are borrowed from O. */
conn_params redwork_client_conn_params(const redwork_client_options *o,
                                       redwork_sentinel *sentinel);

/* The resolver for O's sentinels: sets *OUT (NULL when O names none) and
 * returns 0, or returns -1 with ERR naming the sentinels and the reason.
 * Free it with redwork_sentinel_free(). */
int redwork_client_sentinel(const redwork_client_options *o, redwork_sentinel **out,
                            char *err, size_t errlen);

#endif

/* envelope.h -- reading a reply envelope as libredwork receives it, for
 * the library (and fuzz/fuzz_envelope.c); not part of the public API. */
#ifndef REDWORK_CLIENT_ENVELOPE_H
#define REDWORK_CLIENT_ENVELOPE_H

#include "protocol.h"
#include "redwork/client.h"

/* The req_id of the envelope BODY (NUL-terminated) into ID: the daemon
 * writes it first, so it is read without parsing the rest; any other
 * envelope is parsed. Returns 0, or -1 if it has no string req_id of at
 * most PROTOCOL_ID_MAX characters. */
int redwork_envelope_req_id(const char *body, char id[PROTOCOL_ID_MAX + 1]);

/* Fills RES's status, reply, result or error from the envelope BODY (any
 * text: one that is not an ok envelope is an error reply, with a message
 * saying what it lacks). The strings are RES's (redwork_result_free). Out
 * of memory, RES is REDWORK_CONNECTION "out of memory" (its strings NULL
 * where they could not be made): never REDWORK_OK without its result. */
void redwork_envelope_result(redwork_result *res, const char *body);

#endif

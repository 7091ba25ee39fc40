/* protocol.h -- the wire protocol's constants, shared by redworkd and
 * libredwork: key and channel prefixes, field names, error codes and the
 * req_id rules. README's "Protocol v1" section says the same for users.
 * Everything here is a macro or a static inline function: no symbol. */
#ifndef REDWORK_PROTOCOL_H
#define REDWORK_PROTOCOL_H

#include <stddef.h>

/* Default prefixes (the [worker] keys reply_prefix and claim_prefix). */
#define PROTOCOL_REPLY_PREFIX "callback:"
#define PROTOCOL_CLAIM_PREFIX "redwork:claim:"
/* The liveness hash of each daemon: <prefix><worker id>. */
#define PROTOCOL_WORKER_PREFIX "redwork:worker:"
#define PROTOCOL_WORKER_TTL_MS 3000
/* transport = stream: the entry field holding the request, and the stream
 * that entries which cannot be served move to (<stream><suffix>). */
#define PROTOCOL_STREAM_FIELD "msg"
#define PROTOCOL_DEAD_SUFFIX ":dead"

/* Request fields the protocol reads; the rest is payload. */
#define PROTOCOL_FIELD_REQ_ID "req_id"
#define PROTOCOL_FIELD_HANDLER "handler"
#define PROTOCOL_FIELD_TIMEOUT_MS "timeout_ms"
#define PROTOCOL_FIELD_REPLY_TO "reply_to" /* protocol 1.1 */

/* Error codes of an "ok": false reply. */
#define PROTOCOL_BAD_REQUEST "bad_request"
#define PROTOCOL_UNKNOWN_HANDLER "unknown_handler"
#define PROTOCOL_HANDLER_FAILED "handler_failed"
#define PROTOCOL_TIMEOUT "timeout"
#define PROTOCOL_OVERLOADED "overloaded"
#define PROTOCOL_SHUTTING_DOWN "shutting_down"
#define PROTOCOL_INTERNAL "internal"

/* A req_id is 1..PROTOCOL_ID_MAX characters of [A-Za-z0-9_.:-], or a
 * non-negative integer up to PROTOCOL_INT_MAX (2^53 - 1: exact in a
 * double), which names channels and keys by its decimal text. */
#define PROTOCOL_ID_MAX 128
#define PROTOCOL_INT_MAX 9007199254740991LL
/* Handler names: [a-z0-9_-]{1,PROTOCOL_HANDLER_MAX}. Error codes a handler
 * sets: [a-z0-9_]{1,PROTOCOL_CODE_MAX}. */
#define PROTOCOL_HANDLER_MAX 64
#define PROTOCOL_CODE_MAX 32

/* 1 if C may appear in a string req_id. */
static inline int protocol_id_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
}

/* 1 if the N bytes at S are a valid string req_id. */
static inline int protocol_id_valid(const char *s, size_t n) {
    if (n == 0 || n > PROTOCOL_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!protocol_id_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* 1 if the N bytes at S are a valid reply_to for replies prefixed PREFIX:
 * PREFIX, then 1..PROTOCOL_ID_MAX characters of the req_id set. */
static inline int protocol_reply_to_valid(const char *s, size_t n, const char *prefix) {
    size_t p = 0;
    while (prefix[p] != '\0' && p < n && s[p] == prefix[p])
        p++;
    return prefix[p] == '\0' && protocol_id_valid(s + p, n - p);
}

/* 1 if C may appear in a handler name. */
static inline int protocol_handler_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* 1 if C may appear in an error code. */
static inline int protocol_code_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

#endif

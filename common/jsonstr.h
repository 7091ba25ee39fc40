/* jsonstr.h -- writing JSON text by hand where building a cJSON tree would
 * cost more than the text: the reply envelope and JSON log lines. */
#ifndef REDWORK_JSONSTR_H
#define REDWORK_JSONSTR_H

#include <stddef.h>

/* The most bytes redwork_jsonstr_escape() writes for LEN input bytes. */
#define JSONSTR_ESCAPED_MAX(len) (6 * (len))

/* Appends S to BUF (CAP bytes) at *POS as the content of a JSON string (no
 * quotes), escaping what JSON requires. Stops before an escape that would
 * not fit, leaving room for a NUL. Cannot fail. */
void redwork_jsonstr_escape(char *buf, size_t cap, size_t *pos, const char *s);

#endif

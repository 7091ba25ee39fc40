/* jsonstr.c -- writing JSON string content by hand. */
#include "jsonstr.h"

#include <stdio.h>

void redwork_jsonstr_escape(char *buf, size_t cap, size_t *pos, const char *s) {
    for (; *s && *pos + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = (char)ch;
        } else if (ch < 0x20) {
            *pos += (size_t)snprintf(buf + *pos, cap - *pos, "\\u%04x", ch);
        } else {
            buf[(*pos)++] = (char)ch;
        }
    }
    buf[*pos] = '\0';
}

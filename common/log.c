/* log.c -- operator logging: one line per event on stderr.
 *
 * Text lines read "2026-11-28T00:12:03.123Z INFO  [4242] dispatch: message";
 * JSON lines are {"ts":..,"level":..,"pid":..,"module":..,"msg":..}. The
 * pid tells apart the workers of a supervisor, which share one stderr. Each line is
 * formatted into a local buffer and written with one write(2), so lines
 * from different threads never interleave. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "buffer.h"

#define LOG_LINE_MAX 2048

/* Set once by redwork_log_setup() before any thread starts; read-only afterwards. */
static int log_min_level = LOG_LEVEL_INFO;
static int log_out_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

void redwork_log_setup(int level, int format) {
    log_min_level = level;
    log_out_format = format;
}

/* Copies the N bytes of RAW into OUT (4 * N + 1 bytes at least) so that
 * they print as one line that cannot drive a terminal or break JSON: each
 * byte that is not part of valid UTF-8 becomes \xNN, and so, in text lines
 * (CONTROLS), does each control character -- ESC, newlines and DEL
 * included. (JSON lines escape controls as \u00NN themselves.) Returns the
 * length written. */
static size_t clean_message(const char *raw, size_t n, int controls, char *out) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)raw, *end = p + n;
    size_t w = 0;
    while (p < end) {
        size_t len = redwork_utf8_len(p, end);
        if (len > 0 && !(controls && len == 1 && (*p < 0x20 || *p == 0x7f))) {
            memcpy(out + w, p, len);
            w += len;
            p += len;
            continue;
        }
        out[w++] = '\\';
        out[w++] = 'x';
        out[w++] = hex[*p >> 4];
        out[w++] = hex[*p & 15];
        p++;
    }
    out[w] = '\0';
    return w;
}

void redwork_log_vwrite(int level, const char *module, const char *fmt, va_list ap) {
    if (level < log_min_level)
        return;
    if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;

    char raw[LOG_LINE_MAX], msg[4 * LOG_LINE_MAX + 1];
    int written = vsnprintf(raw, sizeof raw, fmt, ap);
    size_t len = written < 0 ? 0 : (size_t)written < sizeof raw ? (size_t)written : sizeof raw - 1;
    clean_message(raw, len, log_out_format != LOG_FORMAT_JSON, msg);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

    char storage[6 * LOG_LINE_MAX + 512]; /* the message cleaned and escaped, at worst */
    buffer line;
    redwork_buffer_init_fixed(&line, storage, sizeof storage - 1); /* room for the newline */
    if (log_out_format == LOG_FORMAT_JSON) {
        buffer_append_str(&line, "{\"ts\":\"");
        buffer_append_str(&line, ts);
        buffer_append_str(&line, "\",\"level\":\"");
        buffer_append_str(&line, level_names[level]);
        buffer_append_str(&line, "\",\"pid\":");
        buffer_append_ll(&line, (long long)getpid());
        buffer_append_str(&line, ",\"module\":");
        redwork_buffer_append_json(&line, module, strlen(module));
        buffer_append_str(&line, ",\"msg\":");
        redwork_buffer_append_json(&line, msg, strlen(msg));
        buffer_append_str(&line, "}");
    } else {
        buffer_append_str(&line, ts);
        buffer_append_str(&line, " ");
        buffer_append_str(&line, level_tags[level]);
        buffer_append_str(&line, " [");
        buffer_append_ll(&line, (long long)getpid());
        buffer_append_str(&line, "] ");
        buffer_append_str(&line, module);
        buffer_append_str(&line, ": ");
        buffer_append_str(&line, msg);
    }
    storage[line.len] = '\n'; /* a cut line still ends its line */
    ssize_t ignored = write(STDERR_FILENO, storage, line.len + 1);
    (void)ignored; /* nowhere to report a failure to log */
}

void redwork_log_write(int level, const char *module, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redwork_log_vwrite(level, module, fmt, ap);
    va_end(ap);
}

void redwork_log_limited(log_limit *lim, int level, const char *module,
                 const char *fmt, ...) {
    if (level < log_min_level)
        return;
    time_t now = time(NULL);
    unsigned long suppressed = 0;
    int print;

    pthread_mutex_lock(&lim->lock);
    if (now != lim->window) {
        suppressed = lim->suppressed;
        lim->window = now;
        lim->printed = 0;
        lim->suppressed = 0;
    }
    print = lim->printed < LOG_LIMIT_BURST;
    if (print)
        lim->printed++;
    else
        lim->suppressed++;
    pthread_mutex_unlock(&lim->lock);

    if (suppressed > 0)
        redwork_log_write(level, module, "%lu similar messages suppressed", suppressed);
    if (print) {
        va_list ap;
        va_start(ap, fmt);
        redwork_log_vwrite(level, module, fmt, ap);
        va_end(ap);
    }
}

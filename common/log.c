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

void redwork_log_vwrite(int level, const char *module, const char *fmt, va_list ap) {
    if (level < log_min_level)
        return;
    if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;

    char msg[LOG_LINE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* One event, one line: a newline inside a message would split it. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

    char storage[6 * LOG_LINE_MAX + 512]; /* the message escaped at worst */
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

/* log.h -- operator logging: one line per event on stderr, text or JSON.
 *
 * The level and format are set once by redwork_log_setup() before threads start;
 * after that every function here is thread-safe (each line is one write(2)).
 * redwork_log_limited() rate-limits a class of warnings so that an attack on the
 * daemon cannot flood the log. */
#ifndef REDWORK_LOG_H
#define REDWORK_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <time.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Sets the minimum level and the format. Call before starting threads. */
void redwork_log_setup(int level, int format);

/* Writes one line if LEVEL is at or above the configured level. MODULE names
 * the part of the daemon ("dispatch", "plugin", or a handler's name). */
void redwork_log_write(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void redwork_log_vwrite(int level, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_debug(mod, ...) redwork_log_write(LOG_LEVEL_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) redwork_log_write(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) redwork_log_write(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) redwork_log_write(LOG_LEVEL_ERROR, mod, __VA_ARGS__)

/* A rate limit for one class of message: at most LOG_LIMIT_BURST lines per
 * second; the number suppressed is reported with the next line let through.
 * Initialise with LOG_LIMIT_INIT. */
#define LOG_LIMIT_BURST 5
typedef struct log_limit {
    pthread_mutex_t lock;
    time_t window;
    unsigned printed;
    unsigned long suppressed;
} log_limit;
#define LOG_LIMIT_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0}

void redwork_log_limited(log_limit *lim, int level, const char *module,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define log_limited(...) redwork_log_limited(__VA_ARGS__)

#endif

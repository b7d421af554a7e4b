/* Error log to stderr. Access logs (issue 8) are a separate module that
 * never writes from a worker loop. */
#include "anonproxy/common.h"

#include <stdarg.h>
#include <time.h>

#include "anonproxy/log.h"

static int min_level = AP_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int ap_log_set_level(const char *name)
{
    for (int i = 0; i < (int)AP_ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            __atomic_store_n(&min_level, i, __ATOMIC_RELAXED);
            return 0;
        }
    }
    return -22; /* -EINVAL */
}

int ap_log_is_enabled(enum ap_log_level level)
{
    return (int)level >= __atomic_load_n(&min_level, __ATOMIC_RELAXED);
}

void ap_log(enum ap_log_level level, const char *fmt, ...)
{
    if (!ap_log_is_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof(line) - (size_t)n - 1 ? (size_t)m : sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    /* One write per line keeps lines whole when several threads log. */
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}

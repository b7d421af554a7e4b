#ifndef ANONPROXY_LOG_H
#define ANONPROXY_LOG_H

enum ap_log_level { AP_LOG_DEBUG = 0, AP_LOG_INFO, AP_LOG_WARN, AP_LOG_ERROR };

/* The process's error log: one line per call on stderr, with an RFC 3339
 * UTC timestamp and the level. Thread-safe. Messages never carry client
 * addresses or request data beyond what the caller has anonymised. */
void ap_log(enum ap_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Set the minimum level; "debug", "info", "warn", "error". Returns 0 or
 * -EINVAL for an unknown name. */
int ap_log_set_level(const char *name);

int ap_log_is_enabled(enum ap_log_level level);

#endif

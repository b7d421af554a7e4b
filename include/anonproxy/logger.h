/* The logger thread (proxy/logger.c): it owns every log sink, the syslog
 * listeners and all log I/O, on its own libuv loop. Worker threads hand it
 * records through one single-producer queue each (anonproxy/accesslog.h,
 * anonproxy/logrelay.h) and never wait for it.
 *
 * Lifecycle, all on the main thread: ap_logger_start before the workers
 * start, ap_logger_stop after they were joined (so every record they
 * queued is taken). There is one logger per process. */
#ifndef ANONPROXY_LOGGER_H
#define ANONPROXY_LOGGER_H

#include "anonproxy/config-t.h"
#include "anonproxy/logger-t.h"

struct ap_pseudo_source;

/* Start the logger for `cfg` (a reference is taken) and `nworkers` worker
 * queues: open the spools (replaying what an earlier run left), bind the
 * syslog listeners, start the thread. `pseudo` gives the logger thread's
 * own pseudonym keys (syslog relay); it must outlive the logger. Does
 * nothing and returns 0 when cfg has no sink. Returns 0, or a negative
 * errno after logging why (a syslog listener that cannot bind, no memory);
 * a spool that cannot be opened is only a warning (its sink then works from
 * memory). */
int ap_logger_start(struct ap_config *cfg, struct ap_pseudo_source *pseudo, unsigned nworkers);

/* Take what the workers still queued, give the sinks up to `grace_ms` to
 * deliver, save what is left to the spools, stop the thread, log a summary
 * line per sink, and free everything. Safe to call when not started. */
void ap_logger_stop(unsigned grace_ms);

/* Is the logger running? (Any thread.) */
int ap_logger_is_running(void);

/* Ask every file sink to reopen its file (SIGUSR1, after logrotate moved
 * it). Async-signal-safe: it sets a flag and wakes the logger thread. */
void ap_logger_reopen(void);

struct ap_logger_update;

/* Reload, step one (main thread): check what the logging sections of `cfg`
 * need (new spool directories are created and must be writable, new file
 * sinks must open, new syslog listeners are bound now) and plan the change
 * against the running sink set: a sink whose settings did not change keeps
 * running untouched. Changes nothing that is running. On success *out is
 * the plan (NULL when the logger is not running and cfg has no sink), to be
 * given to ap_logger_reload_commit or ap_logger_reload_discard. Returns 0,
 * or a negative errno with the reason in err. */
int ap_logger_reload_prepare(struct ap_config *cfg, struct ap_logger_update **out, char *err, size_t errlen);

/* Reload, step two (main thread; cannot fail): hand the plan to the logger
 * thread, which takes what the workers queued under the old sections, then
 * swaps. Removed and changed sinks deliver what they hold (up to 10 s)
 * before they close; their spools stay on disk. Takes ownership of u. */
void ap_logger_reload_commit(struct ap_logger_update *u);

/* Drop a plan that will not be committed (closes its sockets). NULL is fine. */
void ap_logger_reload_discard(struct ap_logger_update *u);

/* Copy the counters into *out (any thread; each value is read atomically,
 * the set is not a snapshot). Returns 0, or -ENOENT when not running. */
int ap_logger_get_stats(struct ap_logger_stats *out);

#endif

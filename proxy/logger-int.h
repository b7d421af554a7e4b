/* Internal types and functions shared by the logging modules: the logger
 * thread (logger.c), the generic sink machinery (logsink.c), the sink
 * types (logsink_file.c, logsink_syslog.c, logsink_http.c), the access log
 * (accesslog.c) and the log relay (logrelay.c). Not a public API. */
#ifndef ANONPROXY_LOGGER_INT_H
#define ANONPROXY_LOGGER_INT_H

#include <stdint.h>
#include <uv.h>

#include "anonproxy/config-t.h"
#include "anonproxy/buf-t.h"
#include "anonproxy/logfmt-t.h"
#include "anonproxy/logger-t.h"
#include "anonproxy/logring-t.h"
#include "anonproxy/logscrub-t.h"
#include "anonproxy/logspool-t.h"
#include "anonproxy/pseudo-t.h"

/* ---- what travels in a worker's queue ---- */

enum ap_logmsg_kind {
    AP_LOGMSG_ACCESS = 1, /* an encoded struct ap_logfmt_rec, for the access log's sinks */
    AP_LOGMSG_LINES = 2,  /* `count` records, each a line ending in '\n', for `sinks` */
};

struct ap_logmsg_hdr {
    uint8_t kind;
    uint8_t pri;          /* syslog PRI of the records */
    uint16_t reserved;
    uint32_t count;
    uint64_t sinks;       /* AP_LOGMSG_LINES: bit i = the logger's sink i */
    int64_t time_us;
};

/* ---- one record in a sink's memory queue ---- */

struct ap_lrec {
    struct ap_lrec *next;
    uint64_t seq;         /* the sink's sequence number */
    int64_t time_us;
    uint64_t t_in;        /* loop time (ms) it was queued: batch age */
    struct ap_logspool_pos pos; /* from_spool: where it ends in the spool */
    uint32_t len;
    uint8_t pri;
    uint8_t from_spool;
    char data[];
};

/* What one delivery attempt came to. */
enum ap_logsink_result {
    AP_LOGSINK_OK = 0,   /* delivered */
    AP_LOGSINK_RETRY,    /* the destination failed: back off, spool, try again */
    AP_LOGSINK_REJECT,   /* refused for good: count and drop */
    AP_LOGSINK_BUSY,     /* the destination is slow (EAGAIN): try again soon, no back-off */
};

struct ap_logsink;

/* Operations of a sink type. deliver must end in exactly one call of
 * ap_logsink_done, from inside it or later from the logger loop. */
struct ap_logsink_ops {
    const char *name;
    int (*init)(struct ap_logsink *s);
    void (*deliver)(struct ap_logsink *s, struct ap_lrec *first, size_t n);
    void (*tick)(struct ap_logsink *s);        /* about once a second; may be NULL */
    void (*reopen)(struct ap_logsink *s);      /* SIGUSR1; may be NULL */
    void (*abort)(struct ap_logsink *s);       /* give up the delivery in flight (stop); may be NULL */
    void (*close)(struct ap_logsink *s);       /* uv_close the type's handles */
    void (*destroy)(struct ap_logsink *s);     /* free what init allocated, after the loop ended */
    int batching;                              /* wait for batch.max_events/max_age */
};

struct ap_logger;

#define AP_LOGSINK_MAGIC 0x4c534e4bu /* "LSNK" */

/* Counters are written by the logger thread only and read by any thread:
 * every write is an atomic relaxed store. */
struct ap_logsink {
    unsigned magic;
    unsigned index;
    const struct ap_config_log_sink *cfg;
    struct ap_logger *lg;
    const struct ap_logsink_ops *ops;
    void *impl;
    struct ap_lrec *qhead, *qtail;
    size_t qcount;
    uint64_t qbytes;
    size_t inflight;          /* the first `inflight` records of the queue are being delivered */
    uint64_t next_seq;
    struct ap_logspool spool;
    int has_spool;            /* opened */
    int spooling;             /* new records go to the spool (it holds records, or the sink is down) */
    int down;                 /* waiting for the retry timer */
    unsigned attempt;
    int in_deliver;
    int in_pump;
    int closed;
    int batch_timer_on;
    uv_timer_t retry_timer;
    uv_timer_t batch_timer;
    unsigned handles_open;
    struct {
        const char *fmt;      /* kind of error: its format string */
        uint64_t last;        /* loop time it was last logged */
        uint64_t suppressed;  /* not logged since */
    } errlog[8];              /* rate limit per kind of error */
    struct ap_logsink_stats st;
    /* Reload (logger.c). */
    struct ap_config *cfg_ref;  /* keeps `cfg` alive: the configuration the sink was made from */
    struct ap_logsink *next;    /* on lg->retiring or lg->dead */
    uint64_t retire_deadline;   /* retiring: loop time it is shut down at the latest */
};

/* What the worker threads read of the logger's sink set: immutable once
 * published, replaced whole by a reload and freed only when the logger
 * stops (a worker may still read an older one). */
struct ap_logger_map {
    struct ap_logger_map *older;
    size_t nslots;
    uint64_t access_mask;             /* slots of the access log */
    char names[AP_LOGGER_MAX_SINKS][72]; /* "" = free slot */
};

struct ap_logger_update;

#define AP_LOGGER_MAGIC 0x4c4f4747u /* "LOGG" */

struct ap_logger_listener;

/* What each worker owns in the logger: touched by that worker only. */
struct ap_logger_wstate {
    _Alignas(64) uint64_t next_id; /* request ids */
    struct ap_buf scratch;         /* log relay output */
    struct ap_buf path;            /* an access record's path, scrubbed */
};

struct ap_logger {
    unsigned magic;
    struct ap_config *cfg;            /* a reference */
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;                  /* workers: records queued; main: stop or reopen */
    uv_timer_t tick;
    struct ap_logring *rings;
    struct ap_logger_wstate *ws;      /* one per ring */
    unsigned nrings;
    struct ap_logsink *sinks[AP_LOGGER_MAX_SINKS]; /* by slot; NULL = free (written by the logger
                                                     thread, read atomically by any thread) */
    size_t nsinks;                    /* slots in use: the highest one + 1 */
    uint64_t access_mask;             /* sinks of the access log (logger thread) */
    struct ap_logger_map *map;        /* atomic: what the workers see */
    struct ap_logger_map *main_map;   /* main thread: the newest map handed over */
    struct ap_logsink *retiring;      /* removed or changed sinks delivering what they hold */
    struct ap_logsink *dead;          /* shut down; freed when the logger stops */
    struct ap_logger_update *pending; /* atomic: a reload for the logger thread */
    struct ap_config *main_cfg;       /* main thread: the configuration of main_map (a reference) */
    unsigned nworkers;
    enum ap_log_format format;
    struct ap_logfmt_tmpl tmpl;
    struct ap_buf *line;              /* formatting buffer */
    struct ap_pseudo_keyring keyring; /* the logger thread's (syslog relay) */
    struct ap_logger_listener **listeners;
    size_t nlisteners;
    int listeners_stopped;
    struct ap_buf relay_raw;          /* syslog relay: a message as JSON */
    struct ap_buf relay_out;          /* ... and anonymised */
    int stop;                         /* atomic: ap_logger_stop asked */
    int reopen;                       /* atomic: ap_logger_reopen asked */
    int stopping;                     /* the loop is flushing */
    uint64_t stop_deadline;
    unsigned grace_ms;
    int blocked;                      /* a ring waits for a `block` sink */
    uint64_t last_tick_s;
    uint64_t id_prefix;               /* request ids: random high bits per run */
    /* Counters (atomic relaxed writes by the logger thread; relay_rejected
     * is also counted by workers, with atomic adds). */
    uint64_t access_records, relay_records, relay_rejected, syslog_messages;
};

/* Atomic counter helpers: one writer, any number of readers. */
#define AP_LOGSTAT_ADD(field, n) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define AP_LOGSTAT_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* logger.c */
/* The running logger, or NULL. Any thread. */
struct ap_logger *ap_logger__get(void);
/* The access log's sinks as the workers see them (any thread). */
uint64_t ap_logger__access_mask(const struct ap_logger *lg);
/* Find a sink's slot by name (-1 when the logger has none of that name).
 * Any thread: it reads the published map. */
int ap_logger__sink_index(const struct ap_logger *lg, const char *name);
/* Queue raw records on the logger thread itself (syslog relay): each line
 * of `lines` (ending in '\n') becomes a record for the sinks of `mask`. */
void ap_logger__dispatch_lines(struct ap_logger *lg, uint64_t mask, uint8_t pri, int64_t time_us,
                               const char *lines, size_t len);
/* Loop time in milliseconds. */
uint64_t ap_logger__now(struct ap_logger *lg);

/* logsink.c */
int ap_logsink_init(struct ap_logsink *s, struct ap_logger *lg, unsigned index,
                    const struct ap_config_log_sink *cfg);
/* Can the sink take one more record now without dropping it? (block) */
int ap_logsink_has_room(const struct ap_logsink *s);
/* Hand one record to the sink (copied). */
void ap_logsink_push(struct ap_logsink *s, const char *data, size_t len, uint8_t pri, int64_t time_us);
/* Start a delivery if none runs and records wait. */
void ap_logsink_pump(struct ap_logsink *s);
/* A delivery ended: the first `n_ok` records of it were delivered, the
 * rest came to `result`; `retry_after_ms` (0: none) is a hint. */
void ap_logsink_done(struct ap_logsink *s, enum ap_logsink_result result, size_t n_ok,
                     uint64_t retry_after_ms);
/* Flush the spool to disk per its fsync policy (end of a logger cycle). */
void ap_logsink_sync(struct ap_logsink *s);
/* Once a second. */
void ap_logsink_tick(struct ap_logsink *s);
void ap_logsink_reopen(struct ap_logsink *s);
/* Nothing queued, nothing in flight, nothing in the spool. */
int ap_logsink_is_idle(const struct ap_logsink *s);
/* Stop: abort the delivery in flight, save the memory queue to the spool
 * (or count it as dropped), close the spool, close every handle. */
void ap_logsink_shutdown(struct ap_logsink *s);
/* Free what the sink holds; after the loop ran its close callbacks. */
void ap_logsink_destroy(struct ap_logsink *s);
/* A close callback that does nothing: memory is freed by destroy. */
void ap_logsink_on_closed(uv_handle_t *h);
/* Log an error of the sink at most once every 10 seconds. */
void ap_logsink_error(struct ap_logsink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const struct ap_logsink_ops ap_logsink_file_ops;
extern const struct ap_logsink_ops ap_logsink_stdout_ops;
extern const struct ap_logsink_ops ap_logsink_syslog_ops;
extern const struct ap_logsink_ops ap_logsink_http_ops;

/* logrelay.c: the syslog listeners, on the logger loop. */
int ap_logrelay_listen_start(struct ap_logger *lg);
void ap_logrelay_listen_stop(struct ap_logger *lg);
/* After the loop ended. */
void ap_logrelay_listen_free(struct ap_logger *lg);
/* Reload, on the logger loop: close the listeners of `lg->listeners` whose
 * index is not in keep[] and make the new list: keep[j] >= 0 is the old
 * listener kept for cfg->syslog_listen[j], otherwise fds[j] is a socket the
 * main thread bound for it (taken over). Masks are recomputed. */
void ap_logrelay_listen_update(struct ap_logger *lg, const struct ap_config *cfg, const int *keep,
                               const int *fds);
/* Recompute each listener's sinks (after the sink set changed). */
void ap_logrelay_listen_remask(struct ap_logger *lg);

#endif

/* Types of the logger thread's counters (proxy/logger.c), for the metrics
 * endpoint and the stop summary. */
#ifndef ANONPROXY_LOGGER_T_H
#define ANONPROXY_LOGGER_T_H

#include <stddef.h>
#include <stdint.h>

#define AP_LOGGER_MAX_SINKS 64

/* One sink's counters since start. `in` = delivered + rejected + every
 * dropped_* + what is still queued or spooled. */
struct ap_logsink_stats {
    char name[72];
    unsigned type;                /* enum ap_log_sink_type */
    uint64_t in;                  /* records handed to the sink */
    uint64_t delivered;           /* acknowledged by the destination (written, sent, 2xx) */
    uint64_t rejected;            /* refused for good (HTTP 4xx but 408 and 429, 501) */
    uint64_t retries;             /* failed delivery attempts */
    uint64_t spooled;             /* records written to the spool */
    uint64_t replayed;            /* records read back from the spool */
    uint64_t dropped_queue_full;  /* when_full: drop_newest (or block past the workers' queues) */
    uint64_t dropped_spool_full;  /* the spool reached spool.max_bytes */
    uint64_t dropped_disk;        /* the spool could not be written (disk full, I/O error) */
    uint64_t dropped_shutdown;    /* queued at stop with no spool to keep them */
    uint64_t spool_corrupt;       /* damaged spool regions skipped */
    uint64_t queue_len;           /* records in memory now */
    uint64_t spool_bytes;         /* spool size now */
    uint64_t spool_peak_bytes;    /* largest spool size seen */
    int up;                       /* 1 unless the last attempt failed */
};

struct ap_logger_stats {
    uint64_t access_records;      /* access records taken from the workers */
    uint64_t relay_records;       /* application records relayed (HTTP and syslog) */
    uint64_t relay_rejected;      /* NDJSON batches or syslog messages refused */
    uint64_t syslog_messages;     /* received by the syslog listeners */
    uint64_t queue_drops;         /* records a worker could not queue (its queue was full) */
    size_t nsinks;
    struct ap_logsink_stats sinks[AP_LOGGER_MAX_SINKS];
};

#endif

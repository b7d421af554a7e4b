/* Types of the on-disk spool of a log sink (proxy/logspool.c). */
#ifndef ANONPROXY_LOGSPOOL_T_H
#define ANONPROXY_LOGSPOOL_T_H

#include <stddef.h>
#include <stdint.h>

/* Largest record payload the spool stores. */
#define AP_LOGSPOOL_MAX_RECORD (1024u * 1024u)

/* Bytes in front of every record in a segment file. */
#define AP_LOGSPOOL_HDR 32u

enum ap_logspool_fsync {
    AP_LOGSPOOL_FSYNC_BATCH = 0, /* fdatasync when ap_logspool_sync is called (once per logger cycle) */
    AP_LOGSPOOL_FSYNC_ALWAYS,    /* fdatasync after every append */
    AP_LOGSPOOL_FSYNC_NEVER,     /* leave it to the kernel */
};

struct ap_logspool_opts {
    uint64_t max_bytes;          /* appends past this fail with -EDQUOT; 0: no cap */
    uint64_t segment_bytes;      /* a new segment starts past this size */
    enum ap_logspool_fsync fsync;
};

/* One record as the spool hands it in and out. */
struct ap_logspool_item {
    uint64_t seq;     /* the sink's sequence number: strictly increasing */
    int64_t time_us;  /* when the record was made (microseconds since the epoch) */
    uint8_t pri;      /* syslog PRI of the record */
    const void *data; /* ap_logspool_read: valid until the next call on the spool */
    size_t len;
};

/* Where a record ends: what ap_logspool_ack takes. */
struct ap_logspool_pos {
    uint64_t seg; /* id (first sequence number) of its segment */
    uint64_t off; /* offset just past it */
};

/* One segment file, "<16 hex digits>.seg", named by its first record's
 * sequence number so that name order is replay order. */
struct ap_logspool_seg {
    uint64_t id;
    uint64_t size;     /* bytes written (the file may be longer after a torn write) */
    uint64_t start;    /* offset of the first record not yet acknowledged */
};

#define AP_LOGSPOOL_MAGIC 0x53504f4cu /* "SPOL" */

/* A sink's spool: segment files in one directory that this process locks.
 * Used by one thread (the logger's). */
struct ap_logspool {
    unsigned magic;
    char *dir;
    int dirfd;
    int lockfd;
    struct ap_logspool_opts opts;
    struct ap_logspool_seg *segs; /* sorted by id */
    size_t nsegs, capsegs;
    int wfd;                      /* append descriptor of the last segment, or -1 */
    int wdirty;                   /* written since the last fdatasync */
    /* Reader: position of the next record to read. */
    uint64_t rseg;                /* segment id; a missing id means "the first segment after it" */
    uint64_t roff;
    int rfd;                      /* descriptor of segment rfd_seg, or -1 */
    uint64_t rfd_seg;
    char *rbuf;                   /* read buffer */
    size_t rbuf_cap;
    uint64_t rbuf_seg, rbuf_off;  /* what rbuf holds: segment and file offset of rbuf[0] */
    size_t rbuf_len;
    int reading;                  /* rseg/roff are set */
    uint64_t bytes;               /* sum of segment sizes */
    uint64_t peak_bytes;
    uint64_t last_seq;            /* highest sequence number stored, 0 when none ever was */
    uint64_t corrupt;             /* damaged regions skipped while reading */
    uint64_t order_errors;        /* records read out of sequence order (never expected) */
    uint64_t last_read_seq;
};

#endif

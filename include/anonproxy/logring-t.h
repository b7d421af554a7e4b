/* Types of the single-producer single-consumer byte ring that carries log
 * records from one worker thread to the logger thread. */
#ifndef ANONPROXY_LOGRING_T_H
#define ANONPROXY_LOGRING_T_H

#include <stddef.h>
#include <stdint.h>

#define AP_LOGRING_MAGIC 0x4c52474eu /* "LRGN" */

/* Entries are variable-sized byte strings, each behind an 8-byte header and
 * padded to 8 bytes; an entry never wraps (a marker sends the reader back
 * to the start). `head` and `tail` count bytes since creation and are
 * masked into the buffer, so full and empty are never ambiguous. Exactly
 * one thread produces and one consumes; neither takes a lock. The two
 * counters live on separate cache lines so the threads do not bounce one
 * line on every record. */
struct ap_logring {
    unsigned magic;
    char *buf;
    size_t cap;              /* power of two, bytes */
    size_t max_entry;        /* largest payload accepted */
    /* Producer side. */
    _Alignas(64) size_t head;   /* published: written with release */
    size_t res_pos;             /* reserved, not yet committed */
    size_t res_next;            /* head after the commit */
    uint64_t drops;             /* ap_logring_reserve found no room (atomic reads) */
    /* Consumer side. */
    _Alignas(64) size_t tail;   /* written with release */
};

#endif

/* Types of the strict request-head scanner (proxy/head.c). */
#ifndef ANONPROXY_HEAD_T_H
#define ANONPROXY_HEAD_T_H

#include <stddef.h>
#include <stdint.h>

struct ap_head_limits {
    uint32_t line_bytes;   /* one header line */
    uint32_t head_bytes;   /* whole head including the blank line */
    uint32_t header_count;
    uint32_t target_bytes;
};

/* Incremental scan state: zero it before the first byte of a request. */
struct ap_head_scan {
    size_t off;        /* bytes of the buffer already scanned */
    size_t line_start; /* offset of the line being scanned */
    unsigned nlines;   /* complete lines so far, request line included */
};

#endif

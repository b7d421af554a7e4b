#ifndef ANONPROXY_BUF_T_H
#define ANONPROXY_BUF_T_H

#include <stddef.h>

/* Growable byte buffer with a hard cap set at init (curl dynbuf). */
struct ap_buf {
    char *data;
    size_t len;
    size_t cap;   /* allocated */
    size_t limit; /* never grows past this many bytes */
};

#endif

/* Types of the value detectors (proxy/engine/detect.c). */
#ifndef ANONPROXY_DETECT_T_H
#define ANONPROXY_DETECT_T_H

#include <stddef.h>

/* What a detector recognises inside a string. */
enum ap_detect_kind {
    AP_DETECT_EMAIL = 0, /* local@domain.tld, '@' written plainly or as %40 */
    AP_DETECT_IP,        /* an IPv4 dotted quad or an IPv6 literal */
    AP_DETECT_MAC,       /* six hex pairs separated by ':' or '-' */
    AP_DETECT_IMEI,      /* exactly 15 digits passing the Luhn check */
    AP_DETECT_PHONE,     /* E.164: '+' (or %2B) and 7..15 digits, the first not 0 */
    AP_DETECT_CLICKID,   /* a whole-string http(s) URL whose query has a click id,
                            and members named like a click id */
    AP_DETECT_REGEX,     /* a route's own regular expression */
    AP_DETECT_NKINDS
};

#define AP_DETECT_MASK_ALL 0x3fu /* every built-in kind (not REGEX) */

/* One finding: `len` bytes at `off` of the scanned string. */
struct ap_detect_match {
    size_t off;
    size_t len;
    enum ap_detect_kind kind;
};

/* A scan over one string: the next match of each kind is cached so that
 * taking matches left to right stays linear in the string's length. */
struct ap_detect_scan {
    const char *s;
    size_t len;
    unsigned mask;                  /* kinds still searched */
    size_t from;                    /* matches start at or after this */
    size_t next_off[AP_DETECT_NKINDS];
    size_t next_len[AP_DETECT_NKINDS];
    unsigned have;                  /* bit k: next_off[k] is valid */
};

#endif

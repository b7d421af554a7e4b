/* Types of access log records and their formats (proxy/engine/logfmt.c). */
#ifndef ANONPROXY_LOGFMT_T_H
#define ANONPROXY_LOGFMT_T_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/http-t.h"

/* One access log record. Every field holds data that is already
 * anonymised: the truncated client address or its pseudonym, the path
 * without its query, a reduced User-Agent. A field of length 0 is absent
 * ("-" in text, null in JSON). */
struct ap_logfmt_rec {
    int64_t time_us;         /* request start, microseconds since the epoch */
    uint64_t id;             /* request id: unique per process run */
    int status;              /* 0: no response was sent */
    uint64_t bytes_in;       /* request body bytes */
    uint64_t bytes_out;      /* bytes written to the client, head included */
    int64_t duration_us;     /* request start to the end of the exchange */
    int64_t upstream_us;     /* upstream request sent to its response head; -1: none */
    struct ap_slice route;
    struct ap_slice method;
    struct ap_slice host;
    struct ap_slice path;    /* without query or fragment */
    struct ap_slice protocol;/* "HTTP/1.1" */
    struct ap_slice upstream;/* server "host:port" */
    struct ap_slice tls;     /* "TLSv1.3", or absent */
    struct ap_slice client;  /* truncated address or pseudonym */
    struct ap_slice geo;     /* coarse location ("FR", "FR-IDF"), or absent */
    struct ap_slice ua;      /* reduced User-Agent */
    struct ap_slice rules;   /* "address:truncate header:drop*3 ..." */
};

/* Variables of the text template, "$name" or "${name}". */
enum ap_logfmt_var {
    AP_LOGFMT_LITERAL = 0,
    AP_LOGFMT_TIME,         /* 2024-05-01T12:00:00.123Z */
    AP_LOGFMT_TIME_LOCAL,   /* 01/May/2024:12:00:00 +0000 (common log format) */
    AP_LOGFMT_ID,
    AP_LOGFMT_ROUTE,
    AP_LOGFMT_METHOD,
    AP_LOGFMT_HOST,
    AP_LOGFMT_PATH,
    AP_LOGFMT_PROTOCOL,
    AP_LOGFMT_STATUS,
    AP_LOGFMT_BYTES_IN,
    AP_LOGFMT_BYTES_OUT,
    AP_LOGFMT_DURATION_MS,
    AP_LOGFMT_UPSTREAM_MS,
    AP_LOGFMT_UPSTREAM,
    AP_LOGFMT_TLS,
    AP_LOGFMT_CLIENT,
    AP_LOGFMT_GEO,
    AP_LOGFMT_UA,
    AP_LOGFMT_RULES,
    AP_LOGFMT_NVARS
};

struct ap_logfmt_seg {
    enum ap_logfmt_var var;
    size_t off, len;         /* AP_LOGFMT_LITERAL: bytes of `lits` */
};

/* A compiled text template. */
struct ap_logfmt_tmpl {
    struct ap_logfmt_seg *segs;
    size_t nsegs;
    char *lits;
};

#endif

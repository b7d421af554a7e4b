/* Types of a parsed HTTP/1.x request as the engine and the network layer
 * share it. Strings are (pointer, length) slices; they point into a buffer
 * owned by whoever built the request (the connection's head buffer or an
 * arena) and are not NUL-terminated. */
#ifndef ANONPROXY_HTTP_T_H
#define ANONPROXY_HTTP_T_H

#include <stddef.h>
#include <stdint.h>

struct ap_slice {
    const char *p;
    size_t len;
};

/* Header flags. */
#define AP_HEADER_CONNECTION_NAMED 0x1u /* named by Connection: hop-by-hop, never forwarded */
#define AP_HEADER_DROPPED 0x2u          /* removed by a rule: never forwarded */

struct ap_header {
    struct ap_slice name;  /* as received (case preserved); compare case-insensitively */
    struct ap_slice value; /* leading and trailing OWS removed */
    uint32_t flags;        /* AP_HEADER_* */
};

#define AP_REQUEST_MAGIC 0x52455131u /* "REQ1" */

struct ap_request {
    unsigned magic;
    struct ap_slice method;
    struct ap_slice target;    /* origin-form or absolute-form as received */
    struct ap_slice path;      /* target without query, for routing */
    struct ap_slice query;     /* after '?', without it; len 0 and p NULL when absent */
    struct ap_slice host;      /* Host header value (authority), validated */
    int version_minor;         /* HTTP/1.<minor>: 0 or 1 */
    struct ap_header *headers; /* in received order, hop-by-hop already removed */
    size_t nheaders;
    size_t headers_cap;
    int64_t content_length;    /* -1 when absent */
    unsigned chunked : 1;      /* Transfer-Encoding: chunked */
    unsigned expect_continue : 1;
    unsigned keep_alive : 1;   /* client wants the connection kept */
};

/* Status and reason of a rejected request head. status 0 means accepted. */
struct ap_head_error {
    int status;         /* 400, 414, 431, 501, ... */
    const char *reason; /* static string for the log line and the body */
};

#endif

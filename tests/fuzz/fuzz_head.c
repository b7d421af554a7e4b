/* Fuzz the strict request-head scanner and parser (proxy/head.c): feed the
 * input in two pieces, as the network would, then parse what was accepted.
 * The same input scanned whole, and byte by byte when short, must give the
 * same answer and leave the same scan state: the incremental scan never
 * checks a byte differently for having seen it in another piece. */
#include "anonproxy/common.h"

#include "anonproxy/arena.h"
#include "anonproxy/head.h"

static int scan_from(struct ap_head_scan *s, const char *p, size_t size, size_t step,
                     const struct ap_head_limits *lim, struct ap_head_error *err)
{
    int rc = 0;
    memset(s, 0, sizeof(*s));
    for (size_t n = step < size ? step : size; rc == 0; n = n + step < size ? n + step : size) {
        rc = ap_head_scan(s, p, n, lim, err);
        if (n == size)
            break;
    }
    return rc;
}

static void check_same(int rc, const struct ap_head_scan *s, const struct ap_head_error *err, int rc2,
                       const struct ap_head_scan *s2, const struct ap_head_error *err2)
{
    AP_BUG_ON(rc != rc2);
    AP_BUG_ON(s->off != s2->off || s->nlines != s2->nlines || s->line_start != s2->line_start);
    if (rc < 0)
        AP_BUG_ON(err->status != err2->status || strcmp(err->reason, err2->reason) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ap_head_limits lim = {
        .line_bytes = 1024, .head_bytes = 4096, .header_count = 50, .target_bytes = 512};
    struct ap_head_scan s;
    struct ap_head_error err;
    memset(&s, 0, sizeof(s));
    size_t split = size ? data[0] % (size + 1) : 0;
    const char *p = (const char *)data;
    int rc = ap_head_scan(&s, p, split, &lim, &err);
    if (rc == 0)
        rc = ap_head_scan(&s, p, size, &lim, &err);

    struct ap_head_scan s2;
    struct ap_head_error err2;
    int rc2 = scan_from(&s2, p, size, size ? size : 1, &lim, &err2);
    check_same(rc, &s, &err, rc2, &s2, &err2);
    if (size <= 4096) {
        rc2 = scan_from(&s2, p, size, 1, &lim, &err2);
        check_same(rc, &s, &err, rc2, &s2, &err2);
    }

    if (rc > 0) {
        AP_BUG_ON((size_t)rc > size);
        struct ap_arena a;
        struct ap_request req;
        ap_arena_init(&a, 1024, 1 << 20);
        if (ap_head_parse(p, (size_t)rc, &req, &a, &err) == 0) {
            AP_BUG_ON(req.method.len == 0 || req.target.len == 0);
            AP_BUG_ON(req.nheaders > req.headers_cap);
            for (size_t i = 0; i < req.nheaders; i++)
                AP_BUG_ON(req.headers[i].name.p < p || req.headers[i].name.p >= p + rc);
        } else {
            AP_BUG_ON(err.status < 400 || err.reason == NULL);
        }
        ap_arena_free(&a);
    } else if (rc < 0) {
        AP_BUG_ON(err.status < 400 || err.reason == NULL);
    }
    return 0;
}

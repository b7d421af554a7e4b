/* Fuzz the strict request-head scanner and parser (proxy/head.c): feed the
 * input in two pieces, as the network would, then parse what was accepted. */
#include "anonproxy/common.h"

#include "anonproxy/arena.h"
#include "anonproxy/head.h"

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

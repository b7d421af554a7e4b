/* Fuzz the PROXY protocol parser (proxy/engine/proxyproto.c). Besides not
 * crashing, the parser must be consistent as bytes arrive: a complete
 * header of k bytes needs more for every shorter prefix and gives the same
 * k for every longer input; an error never turns back into "need more". */
#include "anonproxy/common.h"

#include "anonproxy/ip.h"
#include "anonproxy/proxyproto.h"

static void check_result(const struct ap_proxyproto_result *r, int rc, size_t size)
{
    AP_BUG_ON((size_t)rc > size || rc > AP_PROXYPROTO_MAX_LEN);
    AP_BUG_ON(r->version != 1 && r->version != 2);
    AP_BUG_ON(r->version == 1 && rc > AP_PROXYPROTO_V1_MAX_LEN);
    if (r->has_addr) {
        char buf[AP_IP_STRLEN];
        AP_BUG_ON(r->command != AP_PROXYPROTO_CMD_PROXY);
        AP_BUG_ON(r->src.family != r->dst.family);
        AP_BUG_ON(ap_ip_format(&r->src, buf, sizeof(buf)) <= 0);
        AP_BUG_ON(ap_ip_format(&r->dst, buf, sizeof(buf)) <= 0);
    }
    AP_BUG_ON(r->tlv_off + r->tlv_len > (size_t)rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ap_proxyproto_result r, r2;
    int rc = ap_proxyproto_parse(data, size, &r);

    if (rc > 0)
        check_result(&r, rc, size);
    else if (rc < 0)
        AP_BUG_ON(strcmp(ap_proxyproto_strerror(rc), "unknown error") == 0);

    /* Prefixes: every one up to 128 bytes (all of v1), and a few more. */
    size_t probes[] = {size / 2, size / 3, size > 0 ? size - 1 : 0, 16, 15, 13, 12};
    size_t lim = size < 128 ? size : 128;
    for (size_t k = 0; k < lim + AP_ARRAY_SIZE(probes); k++) {
        size_t n = k < lim ? k : probes[k - lim];
        if (n > size)
            continue;
        int prc = ap_proxyproto_parse(data, n, &r2);
        if (rc > 0)
            AP_BUG_ON(n < (size_t)rc ? prc != 0 : prc != rc);
        else if (rc == 0)
            AP_BUG_ON(prc != 0);
        else
            AP_BUG_ON(prc != 0 && prc != rc);
        if (prc < 0) {
            /* Once an error, always that error: the full input agrees. */
            AP_BUG_ON(rc != prc);
        }
    }
    return 0;
}

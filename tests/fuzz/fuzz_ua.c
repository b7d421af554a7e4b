/* Fuzz target of proxy/engine/ua.c. Checks, besides the sanitizers: the
 * output is "Other" or reduces to itself with the same classification, it
 * always fits AP_UA_REDUCED_MAX, and a small buffer gives -ENOBUFS or the
 * same output. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/ua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char out[AP_UA_REDUCED_MAX], again[AP_UA_REDUCED_MAX];
    size_t n, n2;
    AP_BUG_ON(ap_ua_reduce(in, size, out, sizeof(out), &n) != 0);
    AP_BUG_ON(n == 0 || n != strlen(out));

    struct ap_ua_info a, b;
    ap_ua_classify(in, size, &a);
    ap_ua_classify(out, n, &b);
    AP_BUG_ON(a.family != b.family || a.platform != b.platform || a.device != b.device);
    AP_BUG_ON(a.family != AP_UA_OTHER && (a.major != b.major || a.name != b.name));
    AP_BUG_ON(ap_ua_reduce(out, n, again, sizeof(again), &n2) != 0);
    AP_BUG_ON(n2 != n || memcmp(out, again, n) != 0);
    AP_BUG_ON(a.family == AP_UA_OTHER && strcmp(out, "Other") != 0);

    size_t small = size ? data[0] % (n + 2) : 0;
    int rc = ap_ua_reduce(in, size, again, small, &n2);
    AP_BUG_ON(small > n && (rc != 0 || memcmp(out, again, n + 1) != 0));
    AP_BUG_ON(small <= n && rc != -ENOBUFS);
    return 0;
}

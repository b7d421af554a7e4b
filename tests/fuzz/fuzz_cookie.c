/* Fuzz target of proxy/engine/cookie.c and proxy/engine/lang.c: the same
 * input is a Cookie header and an Accept-Language value. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/cookie.h"
#include "anonproxy/lang.h"

static int pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)val[k]) * 16777619u;
    if (h % 5 == 0)
        return -EINVAL;
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), (h % 3 == 0) ? "%08x;" : "%08x", h);
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, tmp, (size_t)n);
    return n;
}

static const struct ap_cookie_rule rules[] = {
    {"_ga*", AP_COOKIE_KEEP}, {"uid", AP_COOKIE_PSEUDO}, {"s?d", AP_COOKIE_KEEP},
    {"*x*", AP_COOKIE_PSEUDO},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct ap_cookie_policy policy;
    ap_cookie_policy_init(&policy);
    policy.rules = rules;
    policy.nrules = AP_ARRAY_SIZE(rules);
    if (size > 0 && (data[0] & 1))
        policy.default_action = AP_COOKIE_KEEP;
    struct ap_cookie_ctx ctx = {.policy = &policy, .pseudo = {pseudo, NULL}};

    size_t cap = 2 * size + 16 * (size + 1) + 1;
    char *out = malloc(cap), *out2 = malloc(cap);
    if (out == NULL || out2 == NULL)
        goto done;
    size_t n, n2;
    AP_BUG_ON(ap_cookie_rewrite(&ctx, in, size, out, cap, &n) != 0);
    AP_BUG_ON(n != strlen(out));
    /* The same policy compiled rewrites the same. */
    struct ap_cookie_policy comp = policy;
    if (ap_cookie_policy_compile(&comp) == 0) {
        struct ap_cookie_ctx cctx = {.policy = &comp, .pseudo = {pseudo, NULL}};
        AP_BUG_ON(ap_cookie_rewrite(&cctx, in, size, out2, cap, &n2) != 0);
        AP_BUG_ON(n2 != n || memcmp(out, out2, n) != 0);
        ap_cookie_policy_release(&comp);
    }
    /* Kept cookies are well formed: rewriting the output keeps it whole
     * when every name is kept. */
    policy.default_action = AP_COOKIE_KEEP;
    policy.nrules = 0;
    AP_BUG_ON(ap_cookie_rewrite(&ctx, out, n, out2, cap, &n2) != 0);
    AP_BUG_ON(n2 != n || memcmp(out, out2, n) != 0);
    size_t small = size ? data[size - 1] % (n + 2) : 0;
    int rc = ap_cookie_rewrite(&ctx, out, n, out2, small, &n2);
    AP_BUG_ON(small > n && (rc != 0 || memcmp(out, out2, n) != 0));
    AP_BUG_ON(small <= n && rc != -ENOBUFS);

    char lang[AP_LANG_REDUCED_MAX];
    AP_BUG_ON(ap_lang_reduce(in, size, lang, sizeof(lang), &n) != 0);
    AP_BUG_ON(n != strlen(lang) || (n != 0 && n != 2 && n != 3));
    for (size_t k = 0; k < n; k++)
        AP_BUG_ON(lang[k] < 'a' || lang[k] > 'z');
done:
    free(out);
    free(out2);
    return 0;
}

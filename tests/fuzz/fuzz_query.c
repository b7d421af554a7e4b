/* Fuzz target of proxy/engine/query.c. The first input byte picks policy
 * switches, the rest is the query string, target or URL. Checks, besides the
 * sanitizers: no click id survives, a callback-free rewrite is idempotent,
 * a smaller buffer gives -ENOBUFS or exactly the same output, a compiled
 * policy rewrites as the policy as built, and the one-pass strict referrer
 * reduction agrees with the two-step one. Half the inputs also have
 * identifiers cut out of paths. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/detect.h"
#include "anonproxy/query.h"

static int pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)val[k]) * 16777619u;
    if (h % 7 == 0)
        return -EINVAL;
    /* Bytes that must be encoded on the way out, now and then. */
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), (h % 3 == 0) ? "%08x&=%%" : "%08x", h);
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, tmp, (size_t)n);
    return n;
}

static int ip(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    if (len == 0 || len > 45 || val[0] == 'x')
        return -EINVAL;
    size_t n = len < 8 ? len : 8;
    if (n > outcap)
        return -ENOBUFS;
    memcpy(out, val, n);
    return (int)n;
}

static const struct ap_query_rule rules[] = {
    {"uid", AP_QUERY_PSEUDO},    {"ip", AP_QUERY_TRUNCATE_IP}, {"dl", AP_QUERY_CLEAN_URL},
    {"url", AP_QUERY_CLEAN_URL}, {"ref", AP_QUERY_ORIGIN_ONLY}, {"dr", AP_QUERY_REFERRER},
    {"urlref", AP_QUERY_REFERRER}, {"utm_*", AP_QUERY_KEEP},  {"_ga*", AP_QUERY_DROP},
    {"a?c", AP_QUERY_PSEUDO},    {"*x*y*", AP_QUERY_DROP},
};

/* The same table without callbacks, for the idempotence check. */
static const struct ap_query_rule pure_rules[] = {
    {"dl", AP_QUERY_CLEAN_URL}, {"url", AP_QUERY_CLEAN_URL}, {"ref", AP_QUERY_ORIGIN_ONLY},
    {"dr", AP_QUERY_REFERRER},  {"urlref", AP_QUERY_REFERRER}, {"utm_*", AP_QUERY_KEEP},
    {"_ga*", AP_QUERY_DROP},    {"*x*y*", AP_QUERY_DROP},
};

static const char *const keep_all[] = {"*"};

typedef int (*rewrite_fn)(const struct ap_query_ctx *, const char *, size_t, char *, size_t,
                          size_t *);

static void check_no_click_id(const char *q, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        while (i < len && q[i] != '&')
            i++;
        size_t n = s;
        while (n < i && q[n] != '=')
            n++;
        AP_BUG_ON(ap_query_is_click_id(q + s, n - s));
        i++;
    }
}

static void run(rewrite_fn fn, const struct ap_query_ctx *ctx, const struct ap_query_ctx *pure,
                const char *in, size_t len, size_t small, bool is_query)
{
    size_t cap = 12 * len + 256;
    char *out = malloc(cap);
    char *out2 = malloc(cap);
    if (out == NULL || out2 == NULL)
        goto done;
    size_t n, n2;
    int rc = fn(ctx, in, len, out, cap, &n);
    AP_BUG_ON(rc != 0);
    AP_BUG_ON(out[n] != '\0');
    if (is_query)
        check_no_click_id(out, n);

    /* A smaller buffer: an error or the very same bytes. */
    if (small < cap) {
        rc = fn(ctx, in, len, out2, small, &n2);
        AP_BUG_ON(rc != 0 && rc != -ENOBUFS);
        AP_BUG_ON(rc == 0 && (n2 != n || memcmp(out, out2, n) != 0));
        AP_BUG_ON(rc == -ENOBUFS && small >= n + len + 1);
    }

    /* Without callbacks, rewriting the output changes nothing more. */
    rc = fn(pure, in, len, out, cap, &n);
    AP_BUG_ON(rc != 0);
    AP_BUG_ON(3 * len + 1 < n + 1);
    rc = fn(pure, out, n, out2, cap, &n2);
    AP_BUG_ON(rc != 0);
    if (n2 != n || memcmp(out, out2, n) != 0) {
        fprintf(stderr, "not idempotent:\n  in:  %.*s\n  out: %.*s\n  2nd: %.*s\n", (int)len, in,
                (int)n, out, (int)n2, out2);
        abort();
    }
done:
    free(out);
    free(out2);
}

/* A compiled policy (ap_query_policy_compile) rewrites exactly as the
 * policy as built. */
static void same_compiled(rewrite_fn fn, const struct ap_query_ctx *ctx, const struct ap_query_ctx *comp,
                          const char *in, size_t len)
{
    size_t cap = 12 * len + 256;
    char *out = malloc(cap);
    char *out2 = malloc(cap);
    if (out != NULL && out2 != NULL) {
        size_t n = 0, n2 = 0;
        int rc = fn(ctx, in, len, out, cap, &n);
        int rc2 = fn(comp, in, len, out2, cap, &n2);
        AP_BUG_ON(rc != rc2 || n != n2 || memcmp(out, out2, n) != 0);
    }
    free(out);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    struct ap_query_policy policy, pure_policy;
    ap_query_policy_init(&policy);
    policy.rules = rules;
    policy.nrules = AP_ARRAY_SIZE(rules);
    policy.default_action = (flags & 1) ? AP_QUERY_DROP : AP_QUERY_KEEP;
    policy.strict_referrer = (flags >> 1) & 1;
    if (flags & 4) {
        policy.url_keep = keep_all;
        policy.nurl_keep = 1;
    }
    pure_policy = policy;
    pure_policy.rules = pure_rules;
    pure_policy.nrules = AP_ARRAY_SIZE(pure_rules);
    /* Odd lengths: identifiers are cut out of paths too (the strict
     * profile's path_detect); the idempotence check runs without it. */
    if (len % 2) {
        policy.path_detect = (1u << AP_DETECT_EMAIL) | (1u << AP_DETECT_IP) | (1u << AP_DETECT_MAC) |
                             (1u << AP_DETECT_IMEI) | (1u << AP_DETECT_PHONE);
        policy.path_tokens = true;
    }

    struct ap_query_ctx ctx, pure;
    memset(&ctx, 0, sizeof(ctx));
    ctx.policy = &policy;
    ctx.pseudo.fn = pseudo;
    ctx.truncate_ip.fn = ip;
    if (flags & 8) {
        ctx.site_host = "shop.example:8080";
        ctx.site_host_len = strlen(ctx.site_host);
    }
    pure = ctx;
    pure.policy = &pure_policy;
    pure.pseudo.fn = NULL;
    pure.truncate_ip.fn = NULL;

    size_t small = (size_t)(flags >> 4) * (len / 8 + 1);
    run(ap_query_rewrite, &ctx, &pure, in, len, small, true);
    run(ap_query_rewrite_target, &ctx, &pure, in, len, small, false);
    run(ap_query_rewrite_url, &ctx, &pure, in, len, small, false);

    struct ap_query_policy comp = policy;
    if (ap_query_policy_compile(&comp) == 0) {
        struct ap_query_ctx cctx = ctx;
        cctx.policy = &comp;
        same_compiled(ap_query_rewrite, &ctx, &cctx, in, len);
        same_compiled(ap_query_rewrite_target, &ctx, &cctx, in, len);
        same_compiled(ap_query_rewrite_url, &ctx, &cctx, in, len);
        ap_query_policy_release(&comp);
    }

    char buf[4096], buf2[4096];
    size_t n, n2;
    if (len < sizeof(buf) / 3) {
        AP_BUG_ON(ap_query_origin(in, len, buf, sizeof(buf), &n) != 0);
        AP_BUG_ON(ap_query_referrer(&ctx, in, len, buf, sizeof(buf), &n) != 0);
        /* Strict: the one-pass reduction is the referrer's origin. */
        if (policy.strict_referrer) {
            if (n > 0)
                AP_BUG_ON(ap_query_origin(in, len, buf, sizeof(buf), &n) != 0);
            AP_BUG_ON(ap_query_referrer_origin(&ctx, in, len, buf2, sizeof(buf2), &n2) != 0);
            AP_BUG_ON(n2 != n || memcmp(buf, buf2, n) != 0);
        }
        AP_BUG_ON(ap_query_clean_url(&policy, in, len, buf, sizeof(buf), &n) != 0);
    }
    return 0;
}

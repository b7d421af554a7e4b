/* Shared driver of the body rewriter's fuzz targets (fuzz_body_*.c). Each
 * target picks a Content-Type and how the input becomes a body; the driver
 * runs ap_body_rewrite under a policy with rules of every kind and checks,
 * besides the sanitizers:
 *   - the verdict and the return code agree, and a rejected body has a
 *     status of 400, 413 or 415;
 *   - a forwarded JSON body is valid JSON (each line for NDJSON);
 *   - rewriting the output again changes nothing (the policy's actions are
 *     idempotent, pseudonyms included: they are short hex that no rule or
 *     detector matches);
 *   - a smaller arena gives -ENOMEM or exactly the same output.
 * The first input byte chooses policy switches; the rest is the body. */
#ifndef ANONPROXY_FUZZ_BODY_H
#define ANONPROXY_FUZZ_BODY_H

#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/arena.h"
#include "anonproxy/body.h"
#include "anonproxy/bodypreset.h"
#include "anonproxy/json.h"

/* Pseudonyms: 'h' and 8 hex digits of FNV-1a: nothing a detector matches
 * (no '@', no 15 digits, no '+'). */
static int fuzz_pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    /* A pseudonym of a pseudonym is itself, so that a second pass over the
     * output must change nothing. */
    if (len == 9 && val[0] == 'h' && strspn(val + 1, "0123456789abcdef") == 8) {
        if (outcap < 9)
            return -ENOBUFS;
        memcpy(out, val, 9);
        return 9;
    }
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)val[k]) * 16777619u;
    if (h % 61 == 0)
        return -EINVAL; /* now and then the keyring fails */
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), "h%08x", h);
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, tmp, (size_t)n);
    return n;
}

static const struct {
    const char *path;
    enum ap_body_action action;
    const char *arg;
} fuzz_rules[] = {
    {"$.id", AP_BODY_PSEUDO, NULL},
    {"$..distinct_id", AP_BODY_PSEUDO, NULL},
    {"$.events[*].user_id", AP_BODY_DROP, NULL},
    {"$..ip", AP_BODY_TRUNCATE_IP, NULL},
    {"$..url", AP_BODY_CLEAN_URL, NULL},
    {"$..ref", AP_BODY_ORIGIN_ONLY, NULL},
    {"$..ua", AP_BODY_REDUCE_UA, NULL},
    {"$.s", AP_BODY_SET, "\"x\""},
    {"$.n", AP_BODY_SET, "{\"k\":[1]}"},
    {"$..w", AP_BODY_ROUND, "100"},
    {"$..t", AP_BODY_ROUND, "hour"},
    {"$.props.geo", AP_BODY_GEO, NULL},
    {"$.keep", AP_BODY_KEEP, NULL},
    {"$.a[1]", AP_BODY_SET, "0"}, /* a drop by index shifts the next element: not idempotent */
    {"$.g.*_x", AP_BODY_DROP, NULL},
    {"$.co>json..id", AP_BODY_PSEUDO, NULL},
    {"$.data>base64json..id", AP_BODY_PSEUDO, NULL},
    {"$.data>json[*].drop", AP_BODY_DROP, NULL},
    {"$.u>url.gid", AP_BODY_PSEUDO, NULL},
    {"$.u>url.j>json.k", AP_BODY_DROP, NULL},
    {"$.e>base64json.u>url.q", AP_BODY_DROP, NULL},
    {"$['we ird']", AP_BODY_PSEUDO, NULL},
};

static void fuzz_policy(struct ap_body_policy *pol, uint8_t flags)
{
    ap_body_policy_init(pol, (flags & 1) ? AP_PROFILE_BALANCED : AP_PROFILE_STRICT);
    for (size_t i = 0; i < AP_ARRAY_SIZE(fuzz_rules); i++)
        AP_BUG_ON(ap_body_policy_add_rule(pol, fuzz_rules[i].path, fuzz_rules[i].action, fuzz_rules[i].arg, NULL) != 0);
    if (flags & 2)
        AP_BUG_ON(ap_bodypreset_add(pol, "snowplow") != 0);
    if (flags & 4)
        AP_BUG_ON(ap_body_policy_add_regex(pol, "cust-[0-9]+", AP_BODY_PSEUDO, NULL) != 0);
    if (flags & 8)
        pol->on_invalid = AP_BODY_INVALID_DROP_BODY;
    pol->max_depth = (flags & 16) ? 8 : 64;
    pol->max_inflated = 1 << 20;
    AP_BUG_ON(ap_body_policy_add_query_flag(pol, "compression", "gzip-js", AP_BODY_ENC_GZIP) != 0);
    AP_BUG_ON(ap_body_policy_finish(pol) != 0);
}

static int fuzz_run(const struct ap_body_policy *pol, struct ap_arena *arena, const char *ct, const char *ce,
                    const char *query, const char *in, size_t len, struct ap_body_out *out)
{
    struct ap_body_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.arena = arena;
    ctx.pseudo.fn = fuzz_pseudo;
    ctx.geo_json = "{\"country\":\"FR\"}";
    ctx.geo_len = strlen(ctx.geo_json);
    ctx.query = query;
    ctx.query_len = query ? strlen(query) : 0;
    ctx.audit = (len & 1) != 0;
    return ap_body_rewrite(pol, &ctx, ct, ct ? strlen(ct) : 0, ce, ce ? strlen(ce) : 0, in, len, out);
}

static void fuzz_check_json(enum ap_body_format fmt, const char *s, size_t n)
{
    if (fmt == AP_BODY_FMT_JSON) {
        int rc = ap_json_validate(s, n, 1024);
        if (rc != 0) {
            fprintf(stderr, "invalid JSON forwarded (%d): %.*s\n", rc, (int)n, s);
            abort();
        }
    } else if (fmt == AP_BODY_FMT_NDJSON) {
        size_t i = 0;
        while (i < n) {
            const char *nl = memchr(s + i, '\n', n - i);
            size_t e = nl ? (size_t)(nl - s) : n;
            size_t b = i;
            ap_json_skip_ws(s, e, &b);
            if (b < e && ap_json_validate(s + i, e - i, 1024) != 0) {
                fprintf(stderr, "invalid NDJSON line forwarded: %.*s\n", (int)(e - i), s + i);
                abort();
            }
            i = e + 1;
        }
    }
}

/* The whole check for one body. `ce` and `query` may be NULL. */
static void fuzz_body(uint8_t flags, const char *ct, const char *ce, const char *query, const char *in, size_t len)
{
    struct ap_body_policy pol;
    fuzz_policy(&pol, flags);
    struct ap_arena arena;
    ap_arena_init(&arena, 4096, 0);
    struct ap_body_out out;
    int rc = fuzz_run(&pol, &arena, ct, ce, query, in, len, &out);
    AP_BUG_ON(rc == -ENOMEM);
    if (rc != 0) {
        AP_BUG_ON(out.verdict != AP_BODY_REJECT);
        AP_BUG_ON(!(rc == -EINVAL || rc == -E2BIG || rc == -ENOTSUP));
        AP_BUG_ON(!(out.status == 400 || out.status == 413 || out.status == 415));
        goto done;
    }
    AP_BUG_ON(out.verdict == AP_BODY_REJECT);
    if (out.verdict == AP_BODY_FORWARD_EMPTY) {
        AP_BUG_ON(out.len != 0 || !(out.status == 400 || out.status == 415));
        goto done;
    }
    if (out.passthrough || out.content_encoding != NULL)
        goto done;
    fuzz_check_json(out.format, out.body, out.len);

    /* Idempotence: the output, sent again as plain text of the same type. */
    char *first = malloc(out.len + 1);
    if (first == NULL)
        goto done;
    memcpy(first, out.body, out.len);
    size_t flen = out.len;
    enum ap_body_format ffmt = out.format;
    struct ap_arena a2;
    ap_arena_init(&a2, 4096, 0);
    struct ap_body_out out2;
    const char *ct2 = ffmt == AP_BODY_FMT_NDJSON ? "application/x-ndjson" : ct;
    int rc2 = fuzz_run(&pol, &a2, ct2, NULL, NULL, first, flen, &out2);
    /* text/plain is sniffed: an output whose first line lost its '=' (say)
     * reads as another format the second time, with other rules. */
    if (rc2 == 0 && out2.verdict == AP_BODY_FORWARD && flen > 0 && out2.format == ffmt &&
        (out2.len != flen || memcmp(out2.body, first, flen) != 0)) {
        size_t d = 0;
        while (d < flen && d < out2.len && first[d] == out2.body[d])
            d++;
        if (getenv("FUZZ_BODY_DUMP") != NULL) {
            FILE *f = fopen(getenv("FUZZ_BODY_DUMP"), "wb");
            if (f != NULL) {
                fwrite(first, 1, flen, f);
                fwrite("\n=====\n", 1, 7, f);
                fwrite(out2.body, 1, out2.len, f);
                fclose(f);
            }
        }
        fprintf(stderr, "not idempotent (format %s, %zu and %zu bytes, first difference at %zu):\n  1st: %.*s\n  2nd: %.*s\n",
                ap_body_format_name(ffmt), flen, out2.len, d, (int)(flen - d < 200 ? flen - d : 200), first + d,
                (int)(out2.len - d < 200 ? out2.len - d : 200), out2.body + d);
        abort();
    }
    ap_arena_free(&a2);

    /* A smaller arena: -ENOMEM or the very same bytes. */
    struct ap_arena small;
    ap_arena_init(&small, 512, (size_t)(flags >> 5) * (len + 64) + 1024);
    struct ap_body_out out3;
    int rc3 = fuzz_run(&pol, &small, ct, ce, query, in, len, &out3);
    AP_BUG_ON(rc3 != 0 && rc3 != -ENOMEM);
    AP_BUG_ON(rc3 == 0 && (out3.len != flen || memcmp(out3.body, first, flen) != 0));
    ap_arena_free(&small);
    free(first);
done:
    ap_arena_free(&arena);
    ap_body_policy_free(&pol);
}

#endif

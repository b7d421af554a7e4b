/* Cookie header rewriting. Cookie names are compared byte for byte (they
 * are case-sensitive and not percent-encoded); values are copied unchanged
 * or replaced by a pseudonym. The pseudonymiser writes straight into the
 * output buffer, so nothing is copied twice and nothing is allocated. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/cookie.h"
#include "anonproxy/text.h"

void ap_cookie_policy_init(struct ap_cookie_policy *policy)
{
    AP_BUG_ON(policy == NULL);
    memset(policy, 0, sizeof(*policy));
    policy->magic = AP_COOKIE_POLICY_MAGIC;
    policy->default_action = AP_COOKIE_DROP;
}

void ap_cookie_policy_release(struct ap_cookie_policy *policy)
{
    AP_CHECK_OBJ(policy, AP_COOKIE_POLICY_MAGIC);
    ap_text_globset_free(&policy->rule_set);
    /* A zero magic marks the set as not built. */
    memset(&policy->rule_set, 0, sizeof(policy->rule_set));
    policy->compiled_rules = NULL;
    policy->compiled_nrules = 0;
}

int ap_cookie_policy_compile(struct ap_cookie_policy *policy)
{
    AP_CHECK_OBJ(policy, AP_COOKIE_POLICY_MAGIC);
    AP_BUG_ON(policy->rules == NULL && policy->nrules > 0);
    ap_cookie_policy_release(policy);
    struct ap_text_globset set;
    ap_text_globset_init(&set, 0); /* cookie names are case-sensitive */
    int rc = 0;
    for (size_t k = 0; k < policy->nrules && rc == 0; k++)
        rc = ap_text_globset_add(&set, policy->rules[k].glob);
    if (rc != 0) {
        ap_text_globset_free(&set);
        return rc;
    }
    policy->rule_set = set;
    policy->compiled_rules = policy->rules;
    policy->compiled_nrules = policy->nrules;
    return 0;
}

enum ap_cookie_action ap_cookie_action_for(const struct ap_cookie_policy *policy, const char *name,
                                           size_t len)
{
    AP_CHECK_OBJ(policy, AP_COOKIE_POLICY_MAGIC);
    if (policy->rule_set.magic == AP_TEXT_GLOBSET_MAGIC && policy->compiled_rules == policy->rules &&
        policy->compiled_nrules == policy->nrules) {
        size_t k = ap_text_globset_find(&policy->rule_set, name, len);
        return k == AP_TEXT_GLOBSET_NONE ? policy->default_action : policy->rules[k].action;
    }
    for (size_t k = 0; k < policy->nrules; k++)
        if (ap_text_matches_glob(policy->rules[k].glob, name, len, 0))
            return policy->rules[k].action;
    return policy->default_action;
}

/* RFC 9110 tchar: a bitmap, since every byte of every name is tested. */
static bool is_tchar(unsigned char c)
{
    static const unsigned char set[32] = {
        0x00, 0x00, 0x00, 0x00, 0xfa, 0x6c, 0xff, 0x03, /* ! # $ % & ' * + - . 0-9 */
        0xfe, 0xff, 0xff, 0xc7, 0xff, 0xff, 0xff, 0x57, /* A-Z ^ _ ` a-z | ~ */
    };
    return (set[c >> 3] >> (c & 7)) & 1;
}

/* RFC 6265 cookie-octet: what a pseudonym must be made of. */
static bool is_cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Is the trimmed value acceptable? Browsers send values outside RFC 6265's
 * cookie-octet (spaces, commas, UTF-8), so only what cannot be a value is
 * refused: control bytes and stray quotes. */
static bool value_is_valid(const char *v, size_t len)
{
    size_t a = 0, b = len;
    if (len > 0 && v[0] == '"') {
        if (len < 2 || v[len - 1] != '"')
            return false;
        a = 1;
        b = len - 1;
    }
    /* Eight bytes at a time: a word is refused when some byte is below
     * 0x20, 0x7f or '"' (the usual has-zero-byte tricks; a false alarm is
     * impossible for "below" and exact for "equal"). */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t k = a;
    for (; b - k >= 8; k += 8) {
        uint64_t w;
        memcpy(&w, v + k, sizeof(w));
        uint64_t del = w ^ (ones * 0x7f), quote = w ^ (ones * '"');
        uint64_t bad = ((w - ones * 0x20) & ~w) | ((del - ones) & ~del) | ((quote - ones) & ~quote);
        if (bad & highs)
            return false;
    }
    for (; k < b; k++) {
        unsigned char c = (unsigned char)v[k];
        if (c < 0x20 || c == 0x7f || c == '"')
            return false;
    }
    return true;
}

int ap_cookie_rewrite(const struct ap_cookie_ctx *ctx, const char *hdr, size_t len, char *out,
                      size_t outcap, size_t *outlen)
{
    AP_BUG_ON(ctx == NULL || outlen == NULL);
    AP_CHECK_OBJ(ctx->policy, AP_COOKIE_POLICY_MAGIC);
    AP_BUG_ON(hdr == NULL && len > 0);
    AP_BUG_ON(out == NULL && outcap > 0);
    *outlen = 0;
    if (outcap == 0)
        return -ENOBUFS;
    size_t lim = outcap - 1, o = 0;
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        const char *semi = memchr(hdr + i, ';', len - i);
        i = semi ? (size_t)(semi - hdr) : len;
        size_t e = i;
        i++;
        while (s < e && is_ows(hdr[s]))
            s++;
        while (e > s && is_ows(hdr[e - 1]))
            e--;
        if (s == e)
            continue;
        const char *eq = memchr(hdr + s, '=', e - s);
        if (eq == NULL)
            continue;
        size_t ns = s, ne = (size_t)(eq - hdr);
        while (ne > ns && is_ows(hdr[ne - 1]))
            ne--;
        size_t vs = (size_t)(eq - hdr) + 1;
        while (vs < e && is_ows(hdr[vs]))
            vs++;
        if (ne == ns)
            continue;
        bool token = true;
        for (size_t k = ns; k < ne; k++)
            token &= is_tchar((unsigned char)hdr[k]);
        enum ap_cookie_action act = AP_COOKIE_DROP;
        if (token && value_is_valid(hdr + vs, e - vs))
            act = ap_cookie_action_for(ctx->policy, hdr + ns, ne - ns);
        if (act == AP_COOKIE_PSEUDO && ctx->pseudo.fn == NULL)
            act = AP_COOKIE_DROP;
        if (ctx->observer.fn != NULL)
            ctx->observer.fn(ctx->observer.ctx, hdr + ns, ne - ns, act);
        if (act != AP_COOKIE_KEEP && act != AP_COOKIE_PSEUDO)
            continue;
        size_t mark = o;
        size_t need = (o > 0 ? 2 : 0) + (ne - ns) + 1;
        if (need > lim - o)
            goto nobufs;
        if (o > 0) {
            memcpy(out + o, "; ", 2);
            o += 2;
        }
        memcpy(out + o, hdr + ns, ne - ns);
        o += ne - ns;
        out[o++] = '=';
        if (act == AP_COOKIE_KEEP) {
            if (e - vs > lim - o)
                goto nobufs;
            memcpy(out + o, hdr + vs, e - vs);
            o += e - vs;
            continue;
        }
        const char *v = hdr + vs;
        size_t vlen = e - vs;
        if (vlen >= 2 && v[0] == '"') {
            v++;
            vlen -= 2;
        }
        int r = ctx->pseudo.fn(ctx->pseudo.ctx, v, vlen, out + o, lim - o);
        if (r == -ENOBUFS)
            goto nobufs;
        if (r < 0) {
            o = mark;
            continue;
        }
        AP_BUG_ON((size_t)r > lim - o);
        bool octets = true;
        for (size_t k = 0; !ctx->pseudo_is_safe && k < (size_t)r; k++)
            octets &= is_cookie_octet((unsigned char)out[o + k]);
        if (!octets) {
            o = mark;
            continue;
        }
        o += (size_t)r;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;

nobufs:
    out[0] = '\0';
    *outlen = 0;
    return -ENOBUFS;
}

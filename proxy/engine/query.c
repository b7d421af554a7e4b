/* Query-string and URL rewriting. One pass over the input writes the output
 * into the caller's buffer; values that must be decoded (for a callback or
 * for URL cleaning) are decoded into the unused tail of that same buffer, so
 * nothing is allocated. Decisions are taken on percent-decoded names, but
 * what is kept is copied byte for byte: re-encoding would change bytes the
 * origin server may sign or compare.
 *
 * Rules on malformed input (documented in docs/anonymisation.md):
 * - a '%' not followed by two hex digits is the literal byte '%': names
 *   compare with it, kept parameters keep it, re-encoded values get "%25";
 * - '+' in names and values decodes to a space (form encoding);
 * - ';' is not a separator (WHATWG URLSearchParams), it stays in the value;
 * - an empty name ("=x") is looked up like any other name. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/query.h"
#include "anonproxy/text.h"
#include "anonproxy/detect.h"

static const char *const click_ids[] = {
    "gclid", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid",
    "twclid", "li_fat_id", "mc_eid", "_hsenc", "mkt_tok", "igshid", "yclid",
};

static const char *const default_url_keep[] = {"utm_source", "utm_medium", "utm_campaign"};

#define NAME_FLAGS (AP_TEXT_PCT | AP_TEXT_PLUS)

/* The output under construction. `lim` is how far writes may go: the end of
 * the buffer less the NUL, or less a scratch area at the tail. */
struct wbuf {
    char *p;
    size_t lim;
    size_t len;
    const struct ap_query_observer *obs; /* told of path redactions; may be NULL */
};

static bool wput(struct wbuf *w, const char *s, size_t n)
{
    if (n > w->lim - w->len)
        return false;
    if (n > 0)
        memcpy(w->p + w->len, s, n);
    w->len += n;
    return true;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

void ap_query_policy_init(struct ap_query_policy *policy)
{
    AP_BUG_ON(policy == NULL);
    memset(policy, 0, sizeof(*policy));
    policy->magic = AP_QUERY_POLICY_MAGIC;
    policy->default_action = AP_QUERY_KEEP;
}

/* ASCII case-insensitive equality with a lower-case literal of `len`
 * bytes (strncasecmp would follow the locale). */
static bool eq_lower(const char *s, const char *lit, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

/* Click-id test on an already decoded name: length and first letter pick
 * the one or two candidates of click_ids[], so most names cost a switch.
 * test_query checks that this agrees with click_ids[]. */
static bool is_click_id_plain(const char *n, size_t len)
{
    if (len < 5)
        return false;
    unsigned char c = lower((unsigned char)n[0]);
    switch (len) {
    case 5:
        return (c == 'g' && eq_lower(n, "gclid", 5)) || (c == 'd' && eq_lower(n, "dclid", 5)) ||
               (c == 'y' && eq_lower(n, "yclid", 5));
    case 6:
        switch (c) {
        case 'g': return eq_lower(n, "gbraid", 6);
        case 'w': return eq_lower(n, "wbraid", 6);
        case 'f': return eq_lower(n, "fbclid", 6);
        case 't': return eq_lower(n, "ttclid", 6) || eq_lower(n, "twclid", 6);
        case 'm': return eq_lower(n, "mc_eid", 6);
        case '_': return eq_lower(n, "_hsenc", 6);
        case 'i': return eq_lower(n, "igshid", 6);
        default: return false;
        }
    case 7:
        return c == 'm' && (eq_lower(n, "msclkid", 7) || eq_lower(n, "mkt_tok", 7));
    case 9:
        return c == 'l' && eq_lower(n, "li_fat_id", 9);
    default:
        return false;
    }
}

/* Decoded names up to this length are decoded once on the stack; longer
 * ones are matched through the decoding glob matcher. */
#define NAME_STACK 128

static const bool decodes[256] = {['%'] = true, ['+'] = true};

/* Does the name hold anything that percent-decoding changes? Most do not,
 * and then they are matched as they are. */
static bool needs_decoding(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (decodes[(unsigned char)name[i]])
            return true;
    return false;
}

bool ap_query_is_click_id(const char *name, size_t len)
{
    AP_BUG_ON(name == NULL && len > 0);
    if (len <= NAME_STACK) {
        if (!needs_decoding(name, len))
            return is_click_id_plain(name, len);
        char dec[NAME_STACK];
        size_t dl = ap_text_pct_decode(name, len, dec, AP_TEXT_PLUS);
        return is_click_id_plain(dec, dl);
    }
    for (size_t k = 0; k < AP_ARRAY_SIZE(click_ids); k++)
        if (ap_text_matches_glob(click_ids[k], name, len, NAME_FLAGS | AP_TEXT_NOCASE))
            return true;
    return false;
}

static bool rules_are_compiled(const struct ap_query_policy *policy)
{
    return policy->rule_set.magic == AP_TEXT_GLOBSET_MAGIC && policy->compiled_rules == policy->rules &&
           policy->compiled_nrules == policy->nrules;
}

static bool keep_is_compiled(const struct ap_query_policy *policy)
{
    return policy->keep_set.magic == AP_TEXT_GLOBSET_MAGIC &&
           policy->compiled_url_keep == policy->url_keep &&
           policy->compiled_nurl_keep == policy->nurl_keep;
}

void ap_query_policy_release(struct ap_query_policy *policy)
{
    AP_CHECK_OBJ(policy, AP_QUERY_POLICY_MAGIC);
    ap_text_globset_free(&policy->rule_set);
    ap_text_globset_free(&policy->keep_set);
    /* A zero magic marks the sets as not built. */
    memset(&policy->rule_set, 0, sizeof(policy->rule_set));
    memset(&policy->keep_set, 0, sizeof(policy->keep_set));
    policy->compiled_rules = NULL;
    policy->compiled_nrules = 0;
    policy->compiled_url_keep = NULL;
    policy->compiled_nurl_keep = 0;
}

int ap_query_policy_compile(struct ap_query_policy *policy)
{
    AP_CHECK_OBJ(policy, AP_QUERY_POLICY_MAGIC);
    AP_BUG_ON(policy->rules == NULL && policy->nrules > 0);
    ap_query_policy_release(policy);
    struct ap_text_globset rules, keep;
    /* Parameter names are case-sensitive; they are decoded before lookup. */
    ap_text_globset_init(&rules, 0);
    ap_text_globset_init(&keep, 0);
    int rc = 0;
    for (size_t k = 0; k < policy->nrules && rc == 0; k++)
        rc = ap_text_globset_add(&rules, policy->rules[k].glob);
    const char *const *kl = policy->url_keep ? policy->url_keep : default_url_keep;
    size_t kn = policy->url_keep ? policy->nurl_keep : AP_ARRAY_SIZE(default_url_keep);
    for (size_t k = 0; k < kn && rc == 0; k++)
        rc = ap_text_globset_add(&keep, kl[k]);
    if (rc != 0) {
        ap_text_globset_free(&rules);
        ap_text_globset_free(&keep);
        return rc;
    }
    policy->rule_set = rules;
    policy->keep_set = keep;
    policy->compiled_rules = policy->rules;
    policy->compiled_nrules = policy->nrules;
    policy->compiled_url_keep = policy->url_keep;
    policy->compiled_nurl_keep = policy->nurl_keep;
    return 0;
}

/* The action for a decoded name; *click tells a click id from a rule. */
static enum ap_query_action decide_plain(const struct ap_query_policy *policy, const char *n,
                                         size_t nl, bool *click)
{
    *click = is_click_id_plain(n, nl);
    if (*click)
        return AP_QUERY_DROP;
    if (rules_are_compiled(policy)) {
        size_t k = ap_text_globset_find(&policy->rule_set, n, nl);
        return k == AP_TEXT_GLOBSET_NONE ? policy->default_action : policy->rules[k].action;
    }
    for (size_t k = 0; k < policy->nrules; k++)
        if (ap_text_matches_glob(policy->rules[k].glob, n, nl, 0))
            return policy->rules[k].action;
    return policy->default_action;
}

/* The action for a percent-encoded name, as ap_query_action_for.
 * `encoded`: the name holds a '%' or '+' (needs_decoding), which the caller
 * may know already. */
static enum ap_query_action decide(const struct ap_query_policy *policy, const char *name, size_t len,
                                   bool encoded, bool *click)
{
    if (len <= NAME_STACK) {
        if (!encoded)
            return decide_plain(policy, name, len, click);
        char dec[NAME_STACK];
        size_t nl = ap_text_pct_decode(name, len, dec, AP_TEXT_PLUS);
        return decide_plain(policy, dec, nl, click);
    }
    *click = ap_query_is_click_id(name, len);
    if (*click)
        return AP_QUERY_DROP;
    for (size_t k = 0; k < policy->nrules; k++)
        if (ap_text_matches_glob(policy->rules[k].glob, name, len, NAME_FLAGS))
            return policy->rules[k].action;
    return policy->default_action;
}

enum ap_query_action ap_query_action_for(const struct ap_query_policy *policy, const char *name,
                                         size_t len)
{
    AP_CHECK_OBJ(policy, AP_QUERY_POLICY_MAGIC);
    AP_BUG_ON(name == NULL && len > 0);
    bool click;
    return decide(policy, name, len, len <= NAME_STACK && needs_decoding(name, len), &click);
}

static bool url_keeps(const struct ap_query_policy *policy, const char *name, size_t len)
{
    if (len <= NAME_STACK && keep_is_compiled(policy)) {
        char dec[NAME_STACK];
        const char *n = name;
        size_t nl = len;
        if (needs_decoding(name, len)) {
            nl = ap_text_pct_decode(name, len, dec, AP_TEXT_PLUS);
            n = dec;
        }
        return !is_click_id_plain(n, nl) &&
               ap_text_globset_find(&policy->keep_set, n, nl) != AP_TEXT_GLOBSET_NONE;
    }
    if (ap_query_is_click_id(name, len))
        return false;
    const char *const *keep = policy->url_keep ? policy->url_keep : default_url_keep;
    size_t n = policy->url_keep ? policy->nurl_keep : AP_ARRAY_SIZE(default_url_keep);
    for (size_t k = 0; k < n; k++)
        if (ap_text_matches_glob(keep[k], name, len, NAME_FLAGS))
            return true;
    return false;
}

/* The parts of a URL or of a relative reference, as slices of the input. */
struct url {
    const char *scheme;
    size_t scheme_len; /* 0: no "scheme:" */
    bool has_authority;
    const char *host;  /* userinfo excluded; IPv6 literal with its brackets */
    size_t host_len;
    const char *port;
    size_t port_len;
    bool has_port;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    bool has_query;
};

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Set the path, and the query if any, of u[i, len): the path ends at the
 * first '?' or '#', the query at the first '#'. */
static void split_path_query(const char *u, size_t i, size_t len, struct url *url)
{
    const char *hash = memchr(u + i, '#', len - i);
    size_t end = hash ? (size_t)(hash - u) : len;
    const char *q = memchr(u + i, '?', end - i);
    size_t pend = q ? (size_t)(q - u) : end;
    url->path = u + i;
    url->path_len = pend - i;
    if (q != NULL) {
        url->has_query = true;
        url->query = q + 1;
        url->query_len = end - pend - 1;
    }
}

/* Split a URL. '\' ends the authority like '/', as browsers do for http(s),
 * so that "https://evil.example\@site.example" has the host a browser sees. */
static void parse_url(const char *u, size_t len, struct url *url)
{
    memset(url, 0, sizeof(*url));
    size_t i = 0;
    if (len > 0 && is_alpha((unsigned char)u[0])) {
        size_t j = 1;
        while (j < len && (is_alpha((unsigned char)u[j]) || is_digit((unsigned char)u[j]) ||
                           u[j] == '+' || u[j] == '-' || u[j] == '.'))
            j++;
        if (j < len && u[j] == ':') {
            url->scheme = u;
            url->scheme_len = j;
            i = j + 1;
        }
    }
    if (len - i >= 2 && u[i] == '/' && u[i + 1] == '/') {
        url->has_authority = true;
        size_t a = i + 2, e = a;
        static const bool ends_authority[256] = {['/'] = 1, ['\\'] = 1, ['?'] = 1, ['#'] = 1};
        while (e < len && !ends_authority[(unsigned char)u[e]])
            e++;
        size_t h = a;
        for (size_t k = a; k < e; k++)
            if (u[k] == '@')
                h = k + 1;
        size_t hend = h;
        if (h < e && u[h] == '[') {
            while (hend < e && u[hend] != ']')
                hend++;
            if (hend < e)
                hend++; /* include ']' */
        } else {
            while (hend < e && u[hend] != ':')
                hend++;
        }
        url->host = u + h;
        url->host_len = hend - h;
        if (hend < e && u[hend] == ':') {
            url->has_port = true;
            url->port = u + hend + 1;
            url->port_len = e - hend - 1;
        } else if (hend < e) {
            /* Junk after an IPv6 literal: keep it in the host so that
             * validation rejects it. */
            url->host_len = e - h;
        }
        i = e;
    }
    split_path_query(u, i, len, url);
}

static bool host_is_valid(const char *h, size_t len)
{
    if (len == 0)
        return false;
    if (h[0] == '[') {
        if (len < 3 || h[len - 1] != ']')
            return false;
        for (size_t k = 1; k + 1 < len; k++) {
            unsigned char c = (unsigned char)h[k];
            if (!(is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f') || c == ':' || c == '.'))
                return false;
        }
        return true;
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)h[k];
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
              c == '%' || c >= 0x80))
            return false;
    }
    return true;
}

static bool port_is_valid(const char *p, size_t len)
{
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t k = 0; k < len; k++) {
        if (!is_digit((unsigned char)p[k]))
            return false;
        v = v * 10 + (unsigned)(p[k] - '0');
    }
    return v <= 65535;
}

static bool put_lower(struct wbuf *w, const char *s, size_t n)
{
    if (n > w->lim - w->len)
        return false;
    for (size_t k = 0; k < n; k++)
        w->p[w->len + k] = (char)lower((unsigned char)s[k]);
    w->len += n;
    return true;
}

/* Append the origin of `url`; *ok is false when it has none. */
static bool write_origin(struct wbuf *w, const struct url *url, bool *ok)
{
    *ok = url->scheme_len > 0 && url->has_authority && host_is_valid(url->host, url->host_len) &&
          (!url->has_port || port_is_valid(url->port, url->port_len));
    if (!*ok)
        return true;
    return put_lower(w, url->scheme, url->scheme_len) && wput(w, "://", 3) &&
           put_lower(w, url->host, url->host_len) &&
           (!url->has_port || (wput(w, ":", 1) && wput(w, url->port, url->port_len)));
}

/* True when a detector of policy->clean_url_detect finds something in the
 * raw value (the detectors read %40 and %2B as '@' and '+'). */
static bool value_is_detected(const struct ap_query_policy *policy, const char *v, size_t len)
{
    if (!ap_detect_may_match(policy->clean_url_detect, v, len))
        return false;
    struct ap_detect_scan sc;
    struct ap_detect_match m;
    return ap_detect_scan_start(&sc, policy->clean_url_detect, v, len) && ap_detect_scan_next(&sc, &m);
}

/* Append a path with every match of a detector of `mask` replaced by
 * AP_QUERY_REDACTED. The detectors read the raw bytes (%40 is an '@'), so
 * an encoded e-mail goes too; a path they cannot match is copied at once. */
static bool put_redacted(struct wbuf *w, const char *what)
{
    if (!wput(w, AP_QUERY_REDACTED, sizeof(AP_QUERY_REDACTED) - 1))
        return false;
    if (w->obs != NULL && w->obs->redacted != NULL)
        w->obs->redacted(w->obs->ctx, what);
    return true;
}

static bool is_token_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '_';
}

static bool is_hex_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool ap_query_path_token(const char *s, size_t len)
{
    AP_BUG_ON(s == NULL && len > 0);
    /* A UUID: 8-4-4-4-12 hex digits. */
    if (len == 36) {
        bool uuid = true;
        for (size_t i = 0; i < 36 && uuid; i++)
            uuid = (i == 8 || i == 13 || i == 18 || i == 23) ? s[i] == '-' : is_hex_byte((unsigned char)s[i]);
        if (uuid)
            return true;
    }
    size_t hex = 0, digit = 0, upper = 0, lower = 0, sep = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        hex += is_hex_byte(c);
        digit += c >= '0' && c <= '9';
        upper += c >= 'A' && c <= 'Z';
        lower += c >= 'a' && c <= 'z';
        sep += c == '-' || c == '_';
    }
    /* 16 hex digits or more: ids, hashes, card numbers, snowflake ids. */
    if (len >= 16 && hex == len)
        return true;
    /* A long mix of cases and digits with few separators: a random token
     * (base64url session ids, JWT parts), not a slug of words. */
    return len >= 32 && digit > 0 && upper > 0 && lower > 0 && sep <= 3;
}

/* Copy a stretch of path, cutting out its tokens (runs of letters, digits,
 * '-' and '_' that ap_query_path_token takes for one). */
static bool write_path_tokens(struct wbuf *w, const char *p, size_t len)
{
    size_t i = 0, done = 0;
    while (i < len) {
        if (!is_token_byte((unsigned char)p[i])) {
            i++;
            continue;
        }
        size_t a = i;
        while (i < len && is_token_byte((unsigned char)p[i]))
            i++;
        if (i - a >= 16 && ap_query_path_token(p + a, i - a)) {
            if (!wput(w, p + done, a - done) || !put_redacted(w, "token"))
                return false;
            done = i;
        }
    }
    return wput(w, p + done, len - done);
}

/* Copy a stretch of path, with tokens cut out when the policy says so. */
static bool write_path_part(struct wbuf *w, bool tokens, const char *p, size_t len)
{
    return tokens ? write_path_tokens(w, p, len) : wput(w, p, len);
}

static bool write_path(struct wbuf *w, unsigned mask, bool tokens, const char *p, size_t len)
{
    struct ap_detect_scan sc;
    struct ap_detect_match m;
    if (mask == 0 || !ap_detect_may_match(mask, p, len) || !ap_detect_scan_start(&sc, mask, p, len))
        return write_path_part(w, tokens, p, len);
    size_t prev = 0;
    while (ap_detect_scan_next(&sc, &m)) {
        if (!write_path_part(w, tokens, p + prev, m.off - prev) ||
            !put_redacted(w, ap_detect_kind_name(m.kind)))
            return false;
        prev = m.off + m.len;
    }
    return write_path_part(w, tokens, p + prev, len - prev);
}

/* Append the query parameters of q that the CLEAN_URL allowlist keeps. */
static bool write_kept_params(struct wbuf *w, const struct ap_query_policy *policy, const char *q,
                              size_t len, bool *any)
{
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        while (i < len && q[i] != '&')
            i++;
        size_t e = i;
        i++;
        if (e == s)
            continue;
        size_t n = s;
        while (n < e && q[n] != '=')
            n++;
        if (!url_keeps(policy, q + s, n - s))
            continue;
        if (policy->clean_url_detect != 0 && n < e && value_is_detected(policy, q + n + 1, e - n - 1))
            continue;
        if (!wput(w, *any ? "&" : "?", 1) || !wput(w, q + s, e - s))
            return false;
        *any = true;
    }
    return true;
}

/* Append the cleaned form of a raw URL. */
static bool write_clean(struct wbuf *w, const struct ap_query_policy *policy, const struct url *url)
{
    if (url->scheme_len > 0 && (!wput(w, url->scheme, url->scheme_len) || !wput(w, ":", 1)))
        return false;
    if (url->has_authority) {
        if (!wput(w, "//", 2) || !wput(w, url->host, url->host_len))
            return false;
        if (url->has_port && (!wput(w, ":", 1) || !wput(w, url->port, url->port_len)))
            return false;
    }
    if (!write_path(w, policy->path_detect, policy->path_tokens, url->path, url->path_len))
        return false;
    bool any = false;
    if (url->has_query)
        return write_kept_params(w, policy, url->query, url->query_len, &any);
    return true;
}

/* Host of a Host header value, without its port. */
static void site_host_of(const char *h, size_t len, const char **host, size_t *hlen)
{
    size_t e = len;
    if (len > 0 && h[0] == '[') {
        const char *rb = memchr(h, ']', len);
        e = rb ? (size_t)(rb - h) + 1 : len;
    } else {
        const char *colon = memchr(h, ':', len);
        if (colon)
            e = (size_t)(colon - h);
    }
    /* A fully qualified name may end in a dot; it names the same host. */
    if (e > 0 && h[e - 1] == '.')
        e--;
    *host = h;
    *hlen = e;
}

static bool is_internal(const struct ap_query_ctx *ctx, const struct url *url)
{
    if (ctx->site_host == NULL || ctx->site_host_len == 0)
        return false;
    const char *sh, *uh;
    size_t shl, uhl;
    site_host_of(ctx->site_host, ctx->site_host_len, &sh, &shl);
    uh = url->host;
    uhl = url->host_len;
    if (uhl > 0 && uh[uhl - 1] == '.')
        uhl--;
    return shl > 0 && shl == uhl && strncasecmp(sh, uh, shl) == 0;
}

/* Append the referrer reduction of a raw URL; *keep false means drop. */
static bool write_referrer(struct wbuf *w, const struct ap_query_ctx *ctx, const struct url *url,
                           bool *keep)
{
    *keep = false;
    if (url->scheme_len == 0 || !url->has_authority || !host_is_valid(url->host, url->host_len) ||
        (url->has_port && !port_is_valid(url->port, url->port_len)))
        return true;
    if (is_internal(ctx, url)) {
        *keep = true;
        return write_clean(w, ctx->policy, url);
    }
    if (ctx->policy->strict_referrer)
        return true;
    return write_origin(w, url, keep);
}

/* Percent-encode in place the raw bytes at w->p + at (the end of w),
 * growing w->len. */
static bool encode_tail(struct wbuf *w, size_t at)
{
    size_t enc;
    if (ap_text_pct_encode_in_place(w->p + at, w->len - at, w->lim - at, &enc) != 0)
        return false;
    w->len = at + enc;
    return true;
}

/* Transform the value of one parameter. The value is decoded into the tail
 * of the buffer, the raw result is written at w->len and then encoded in
 * place. Returns 0 and sets *keep, or -ENOBUFS. */
static int transform_value(const struct ap_query_ctx *ctx, enum ap_query_action act,
                           const char *val, size_t vlen, struct wbuf *w, bool *keep)
{
    *keep = false;
    size_t full = w->lim;
    if (act == AP_QUERY_PSEUDO && !needs_decoding(val, vlen)) {
        /* Most ids hold nothing to decode: the callback reads them where
         * they are, and no scratch copy is made. */
        if (ctx->pseudo.fn == NULL)
            return 0;
        size_t at = w->len;
        int r = ctx->pseudo.fn(ctx->pseudo.ctx, val, vlen, w->p + at, w->lim - at);
        if (r == -ENOBUFS)
            return -ENOBUFS;
        if (r < 0)
            return 0;
        AP_BUG_ON((size_t)r > w->lim - at);
        w->len = at + (size_t)r;
        *keep = true;
        return ctx->pseudo_is_safe || encode_tail(w, at) ? 0 : -ENOBUFS;
    }
    if (vlen > w->lim - w->len)
        return -ENOBUFS;
    char *scratch = w->p + w->lim - vlen;
    size_t dlen = ap_text_pct_decode(val, vlen, scratch, AP_TEXT_PLUS);
    /* The decoded copy sits at the end of the scratch area. */
    if (dlen < vlen) {
        memmove(scratch + (vlen - dlen), scratch, dlen);
        scratch += vlen - dlen;
    }
    w->lim = (size_t)(scratch - w->p);
    size_t at = w->len;
    bool fits = true;

    if (act == AP_QUERY_PSEUDO || act == AP_QUERY_TRUNCATE_IP) {
        const struct ap_text_fn *fn = act == AP_QUERY_PSEUDO ? &ctx->pseudo : &ctx->truncate_ip;
        if (fn->fn != NULL) {
            int r = fn->fn(fn->ctx, scratch, dlen, w->p + at, w->lim - at);
            if (r == -ENOBUFS) {
                fits = false;
            } else if (r >= 0) {
                AP_BUG_ON((size_t)r > w->lim - at);
                w->len = at + (size_t)r;
                *keep = true;
            }
        }
    } else {
        struct url url;
        parse_url(scratch, dlen, &url);
        if (act == AP_QUERY_CLEAN_URL) {
            fits = write_clean(w, ctx->policy, &url);
            *keep = true;
        } else if (act == AP_QUERY_ORIGIN_ONLY) {
            fits = write_origin(w, &url, keep);
        } else {
            fits = write_referrer(w, ctx, &url, keep);
        }
    }
    w->lim = full;
    if (!fits)
        return -ENOBUFS;
    if (*keep && !(act == AP_QUERY_PSEUDO && ctx->pseudo_is_safe) && !encode_tail(w, at))
        return -ENOBUFS;
    return 0;
}

static int rewrite_query(const struct ap_query_ctx *ctx, const char *q, size_t len, struct wbuf *w,
                         const char *first_sep)
{
    const struct ap_query_policy *policy = ctx->policy;
    const size_t first_sep_len = strlen(first_sep);
    bool any = false;
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        const char *amp = memchr(q + i, '&', len - i);
        i = amp ? (size_t)(amp - q) : len;
        size_t e = i;
        i++;
        if (e == s)
            continue;
        /* Names are short: a loop finds the '=' for less than a call, and
         * notes on the way whether the name needs decoding. */
        size_t n = s;
        bool encoded = false;
        for (; n < e && q[n] != '='; n++)
            encoded |= decodes[(unsigned char)q[n]];
        bool click;
        enum ap_query_action act = decide(policy, q + s, n - s, encoded, &click);
        if (ctx->observer.fn != NULL)
            ctx->observer.fn(ctx->observer.ctx, q + s, n - s, act, click);
        /* An action we do not know is a bug in the policy builder; dropping
         * is the safe reading of it. */
        if (act == AP_QUERY_DROP || (unsigned)act >= AP_QUERY_NACTIONS)
            continue;
        size_t mark = w->len;
        if (!(any ? wput(w, "&", 1) : wput(w, first_sep, first_sep_len)))
            return -ENOBUFS;
        bool has_value = n + 1 < e;
        if (act == AP_QUERY_KEEP && has_value && ctx->keep_filter.fn != NULL) {
            if (!wput(w, q + s, n + 1 - s))
                return -ENOBUFS;
            int r = ctx->keep_filter.fn(ctx->keep_filter.ctx, q + n + 1, e - n - 1, w->p + w->len,
                                        w->lim - w->len);
            if (r == -EALREADY) {
                if (!wput(w, q + n + 1, e - n - 1))
                    return -ENOBUFS;
            } else if (r == -ENOBUFS) {
                return -ENOBUFS;
            } else if (r < 0) {
                w->len = mark; /* failing closed: the value cannot be made safe */
                continue;
            } else {
                w->len += (size_t)r;
            }
            any = true;
            continue;
        }
        if (act == AP_QUERY_KEEP || !has_value) {
            if (!wput(w, q + s, e - s))
                return -ENOBUFS;
            any = true;
            continue;
        }
        if (!wput(w, q + s, n + 1 - s))
            return -ENOBUFS;
        bool keep;
        int rc = transform_value(ctx, act, q + n + 1, e - n - 1, w, &keep);
        if (rc < 0)
            return rc;
        if (!keep) {
            w->len = mark;
            continue;
        }
        any = true;
    }
    return 0;
}

static void check_ctx(const struct ap_query_ctx *ctx)
{
    AP_BUG_ON(ctx == NULL);
    AP_CHECK_OBJ(ctx->policy, AP_QUERY_POLICY_MAGIC);
}

static int finish(struct wbuf *w, int rc, size_t *outlen)
{
    if (rc < 0) {
        *outlen = 0;
        w->p[0] = '\0';
        return rc;
    }
    w->p[w->len] = '\0';
    *outlen = w->len;
    return 0;
}

/* Start a write buffer; fails when there is not even room for the NUL. */
static bool wbuf_init(struct wbuf *w, char *out, size_t outcap, size_t *outlen,
                      const struct ap_query_observer *obs)
{
    AP_BUG_ON(outlen == NULL);
    AP_BUG_ON(out == NULL && outcap > 0);
    *outlen = 0;
    if (outcap == 0)
        return false;
    w->p = out;
    w->lim = outcap - 1;
    w->len = 0;
    w->obs = obs;
    return true;
}

int ap_query_rewrite(const struct ap_query_ctx *ctx, const char *query, size_t len, char *out,
                     size_t outcap, size_t *outlen)
{
    check_ctx(ctx);
    AP_BUG_ON(query == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, &ctx->observer))
        return -ENOBUFS;
    return finish(&w, rewrite_query(ctx, query, len, &w, ""), outlen);
}

static int rewrite_url_parts(const struct ap_query_ctx *ctx, const struct url *url,
                             struct wbuf *w)
{
    if (url->scheme_len > 0 && (!wput(w, url->scheme, url->scheme_len) || !wput(w, ":", 1)))
        return -ENOBUFS;
    if (url->has_authority) {
        if (!wput(w, "//", 2) || !wput(w, url->host, url->host_len))
            return -ENOBUFS;
        if (url->has_port && (!wput(w, ":", 1) || !wput(w, url->port, url->port_len)))
            return -ENOBUFS;
    }
    if (!write_path(w, ctx->policy->path_detect, ctx->policy->path_tokens, url->path, url->path_len))
        return -ENOBUFS;
    if (url->has_query)
        return rewrite_query(ctx, url->query, url->query_len, w, "?");
    return 0;
}

int ap_query_rewrite_url(const struct ap_query_ctx *ctx, const char *url, size_t len, char *out,
                         size_t outcap, size_t *outlen)
{
    check_ctx(ctx);
    AP_BUG_ON(url == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, &ctx->observer))
        return -ENOBUFS;
    struct url u;
    parse_url(url, len, &u);
    return finish(&w, rewrite_url_parts(ctx, &u, &w), outlen);
}

int ap_query_rewrite_target(const struct ap_query_ctx *ctx, const char *target, size_t len,
                            char *out, size_t outcap, size_t *outlen)
{
    check_ctx(ctx);
    AP_BUG_ON(target == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, &ctx->observer))
        return -ENOBUFS;
    struct url u;
    if (len > 0 && target[0] == '/') {
        /* Origin-form: a path that starts with "//" is still a path here, not
         * an authority. */
        memset(&u, 0, sizeof(u));
        split_path_query(target, 0, len, &u);
    } else {
        parse_url(target, len, &u);
    }
    return finish(&w, rewrite_url_parts(ctx, &u, &w), outlen);
}

int ap_query_clean_url(const struct ap_query_policy *policy, const char *url, size_t len,
                       char *out, size_t outcap, size_t *outlen)
{
    AP_CHECK_OBJ(policy, AP_QUERY_POLICY_MAGIC);
    AP_BUG_ON(url == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, NULL))
        return -ENOBUFS;
    struct url u;
    parse_url(url, len, &u);
    return finish(&w, write_clean(&w, policy, &u) ? 0 : -ENOBUFS, outlen);
}

int ap_query_redact_path(const struct ap_query_policy *policy, const char *path, size_t len, char *out,
                         size_t outcap, size_t *outlen)
{
    AP_CHECK_OBJ(policy, AP_QUERY_POLICY_MAGIC);
    AP_BUG_ON(path == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, NULL))
        return -ENOBUFS;
    bool ok = write_path(&w, policy->path_detect, policy->path_tokens, path, len);
    return finish(&w, ok ? 0 : -ENOBUFS, outlen);
}

int ap_query_origin(const char *url, size_t len, char *out, size_t outcap, size_t *outlen)
{
    AP_BUG_ON(url == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, NULL))
        return -ENOBUFS;
    struct url u;
    parse_url(url, len, &u);
    bool ok;
    if (!write_origin(&w, &u, &ok))
        return finish(&w, -ENOBUFS, outlen);
    if (!ok)
        w.len = 0;
    return finish(&w, 0, outlen);
}

int ap_query_referrer(const struct ap_query_ctx *ctx, const char *url, size_t len, char *out,
                      size_t outcap, size_t *outlen)
{
    check_ctx(ctx);
    AP_BUG_ON(url == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, &ctx->observer))
        return -ENOBUFS;
    struct url u;
    parse_url(url, len, &u);
    bool keep;
    if (!write_referrer(&w, ctx, &u, &keep))
        return finish(&w, -ENOBUFS, outlen);
    if (!keep)
        w.len = 0;
    return finish(&w, 0, outlen);
}

int ap_query_referrer_origin(const struct ap_query_ctx *ctx, const char *url, size_t len, char *out,
                             size_t outcap, size_t *outlen)
{
    check_ctx(ctx);
    AP_BUG_ON(url == NULL && len > 0);
    struct wbuf w;
    if (!wbuf_init(&w, out, outcap, outlen, &ctx->observer))
        return -ENOBUFS;
    struct url u;
    parse_url(url, len, &u);
    /* The conditions of write_referrer for a URL to be reduced at all. */
    if (u.scheme_len == 0 || !u.has_authority || !host_is_valid(u.host, u.host_len) ||
        (u.has_port && !port_is_valid(u.port, u.port_len)) || !is_internal(ctx, &u))
        return finish(&w, 0, outlen);
    bool ok;
    if (!write_origin(&w, &u, &ok))
        return finish(&w, -ENOBUFS, outlen);
    if (!ok)
        w.len = 0;
    return finish(&w, 0, outlen);
}

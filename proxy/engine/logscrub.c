/* Log record anonymisation for the log relay. A JSON record is rewritten
 * in one pass without building a tree: every member name picks an action
 * (the route's rules, then the built-in table), every string is decoded,
 * rewritten by its action and escaped again. Free text goes through the
 * value detectors of proxy/engine/detect.c. Privacy by default: a field no
 * rule names is free text, so what the detectors recognise never passes. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/buf.h"
#include "anonproxy/detect.h"
#include "anonproxy/ip.h"
#include "anonproxy/json.h"
#include "anonproxy/logscrub.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"
#include "anonproxy/query.h"
#include "anonproxy/text.h"
#include "anonproxy/ua.h"

/* ---- names and the built-in table ---- */

static const char *const action_names[AP_LOGSCRUB_NACTIONS] = {
    "text", "keep", "drop", "address", "pseudonymise", "reduce-ua", "clean-url"};

int ap_logscrub_action_parse(const char *s, enum ap_logscrub_action *out)
{
    for (int i = 0; i < AP_LOGSCRUB_NACTIONS; i++) {
        if (strcmp(s, action_names[i]) == 0) {
            *out = (enum ap_logscrub_action)i;
            return 0;
        }
    }
    if (strcmp(s, "pseudonymize") == 0) {
        *out = AP_LOGSCRUB_PSEUDO;
        return 0;
    }
    return -EINVAL;
}

const char *ap_logscrub_action_name(enum ap_logscrub_action a)
{
    return (size_t)a < AP_ARRAY_SIZE(action_names) ? action_names[a] : "?";
}

/* Field names of common log schemas (nginx, Apache, ECS, Bunyan, pino,
 * Segment...). Matched case-insensitively; '-' and '_' spellings both
 * listed where both are common. Order matters: first match wins. */
static const struct {
    const char *glob;
    enum ap_logscrub_action action;
} builtin[] = {
    /* Secrets: never useful to analytics. */
    {"password", AP_LOGSCRUB_DROP},
    {"passwd", AP_LOGSCRUB_DROP},
    {"*token*", AP_LOGSCRUB_DROP},
    {"*secret*", AP_LOGSCRUB_DROP},
    {"authorization", AP_LOGSCRUB_DROP},
    {"api_key", AP_LOGSCRUB_DROP},
    {"apikey", AP_LOGSCRUB_DROP},
    {"cookie", AP_LOGSCRUB_DROP},
    {"cookies", AP_LOGSCRUB_DROP},
    {"set-cookie", AP_LOGSCRUB_DROP},
    {"set_cookie", AP_LOGSCRUB_DROP},
    /* Addresses. */
    {"ip", AP_LOGSCRUB_ADDRESS},
    {"*_ip", AP_LOGSCRUB_ADDRESS},
    {"*-ip", AP_LOGSCRUB_ADDRESS},
    {"ip_*", AP_LOGSCRUB_ADDRESS},
    {"*ipaddress", AP_LOGSCRUB_ADDRESS},
    {"*ip_address", AP_LOGSCRUB_ADDRESS},
    {"*_addr", AP_LOGSCRUB_ADDRESS},
    {"addr", AP_LOGSCRUB_ADDRESS},
    {"address", AP_LOGSCRUB_ADDRESS},
    {"client_address", AP_LOGSCRUB_ADDRESS},
    {"*forwarded*", AP_LOGSCRUB_ADDRESS},
    {"x-real-ip", AP_LOGSCRUB_ADDRESS},
    /* User-Agents. */
    {"user_agent", AP_LOGSCRUB_UA},
    {"user-agent", AP_LOGSCRUB_UA},
    {"useragent", AP_LOGSCRUB_UA},
    {"http_user_agent", AP_LOGSCRUB_UA},
    {"ua", AP_LOGSCRUB_UA},
    /* URLs. */
    {"url", AP_LOGSCRUB_URL},
    {"*_url", AP_LOGSCRUB_URL},
    {"uri", AP_LOGSCRUB_URL},
    {"*_uri", AP_LOGSCRUB_URL},
    {"href", AP_LOGSCRUB_URL},
    {"path", AP_LOGSCRUB_URL},
    {"request", AP_LOGSCRUB_URL},
    {"referer", AP_LOGSCRUB_URL},
    {"referrer", AP_LOGSCRUB_URL},
    {"http_referer", AP_LOGSCRUB_URL},
    {"location", AP_LOGSCRUB_URL},
    {"page", AP_LOGSCRUB_URL},
    /* Identifiers of people and devices. */
    {"user", AP_LOGSCRUB_PSEUDO},
    {"user_*", AP_LOGSCRUB_PSEUDO},
    {"userid", AP_LOGSCRUB_PSEUDO},
    {"username", AP_LOGSCRUB_PSEUDO},
    {"uid", AP_LOGSCRUB_PSEUDO},
    {"*_uid", AP_LOGSCRUB_PSEUDO},
    {"login", AP_LOGSCRUB_PSEUDO},
    {"email", AP_LOGSCRUB_PSEUDO},
    {"e-mail", AP_LOGSCRUB_PSEUDO},
    {"mail", AP_LOGSCRUB_PSEUDO},
    {"*session*", AP_LOGSCRUB_PSEUDO},
    {"sid", AP_LOGSCRUB_PSEUDO},
    {"*device*", AP_LOGSCRUB_PSEUDO},
    {"client_id", AP_LOGSCRUB_PSEUDO},
    {"clientid", AP_LOGSCRUB_PSEUDO},
    {"visitor*", AP_LOGSCRUB_PSEUDO},
    {"anonymous_id", AP_LOGSCRUB_PSEUDO},
    {"account*", AP_LOGSCRUB_PSEUDO},
    {"customer*", AP_LOGSCRUB_PSEUDO},
    {"phone*", AP_LOGSCRUB_PSEUDO},
    {"msisdn", AP_LOGSCRUB_PSEUDO},
    {"imei", AP_LOGSCRUB_PSEUDO},
    {"idfa", AP_LOGSCRUB_PSEUDO},
    {"idfv", AP_LOGSCRUB_PSEUDO},
    {"gaid", AP_LOGSCRUB_PSEUDO},
    {"adid", AP_LOGSCRUB_PSEUDO},
    {"advertising_id", AP_LOGSCRUB_PSEUDO},
    {"mac", AP_LOGSCRUB_PSEUDO},
};

static enum ap_logscrub_action lookup(const struct ap_logscrub_ctx *ctx, const char *key, size_t len,
                                      int *explicit_rule)
{
    *explicit_rule = 1;
    for (size_t i = 0; i < ctx->nrules; i++)
        if (ap_text_matches_glob(ctx->rules[i].glob, key, len, AP_TEXT_NOCASE))
            return ctx->rules[i].action;
    for (size_t i = 0; i < AP_ARRAY_SIZE(builtin); i++)
        if (ap_text_matches_glob(builtin[i].glob, key, len, AP_TEXT_NOCASE))
            return builtin[i].action;
    *explicit_rule = 0;
    return AP_LOGSCRUB_TEXT;
}

enum ap_logscrub_action ap_logscrub_action_for(const struct ap_logscrub_ctx *ctx, const char *key,
                                               size_t len)
{
    int ex;
    return lookup(ctx, key, len, &ex);
}

/* ---- single values ---- */

static unsigned pseudo_bits(const struct ap_logscrub_ctx *ctx)
{
    return ctx->policy != NULL && ctx->policy->pseudo_bits ? ctx->policy->pseudo_bits
                                                          : AP_PSEUDO_BITS_DEFAULT;
}

/* The pseudonym of a value into out (AP_PSEUDO_HEX_MAX bytes); returns its
 * length, or a negative errno (no keyring: -ENOKEY). */
static int pseudonym(const struct ap_logscrub_ctx *ctx, const char *v, size_t len, char *out)
{
    if (ctx->keyring == NULL)
        return -ENOKEY;
    const char *scope = ctx->scope ? ctx->scope : "logs";
    return ap_pseudo_hex(ctx->keyring, ctx->now, (struct ap_slice){scope, strlen(scope)},
                         (struct ap_slice){v, len}, pseudo_bits(ctx), out, AP_PSEUDO_HEX_MAX);
}

static enum ap_addr_mode addr_mode(const struct ap_logscrub_ctx *ctx)
{
    return ctx->policy != NULL ? ctx->policy->addr_mode : AP_ADDR_TRUNCATE;
}

static int append_str(struct ap_buf *out, const char *s)
{
    return ap_buf_append(out, s, strlen(s));
}

/* An address as the policy says: `in_text` selects the form used inside
 * free text ("[ip:...]", "[ip]") over the bare form of a field. */
static int scrub_ip(const struct ap_logscrub_ctx *ctx, const struct ap_ip *ip, int in_text,
                    struct ap_buf *out)
{
    char txt[AP_IP_STRLEN];
    struct ap_ip t;
    unsigned v4 = ctx->policy ? ctx->policy->v4_prefix : AP_IP_TRUNCATE_V4_DEFAULT;
    unsigned v6 = ctx->policy ? ctx->policy->v6_prefix : AP_IP_TRUNCATE_V6_DEFAULT;
    switch (addr_mode(ctx)) {
    case AP_ADDR_DROP:
        return append_str(out, "[ip]");
    case AP_ADDR_PLACEHOLDER:
        return append_str(out, "0.0.0.0");
    case AP_ADDR_PSEUDO: {
        char h[AP_PSEUDO_HEX_MAX];
        if (ap_ip_format(ip, txt, sizeof(txt)) < 0)
            return append_str(out, "[ip]");
        int n = pseudonym(ctx, txt, strlen(txt), h);
        if (n < 0)
            return append_str(out, "[ip]");
        int rc = in_text ? append_str(out, "[ip:") : 0;
        rc = rc ? rc : ap_buf_append(out, h, (size_t)n);
        return rc ? rc : in_text ? append_str(out, "]") : 0;
    }
    case AP_ADDR_TRUNCATE:
    default:
        if (ap_ip_truncate(&t, ip, v4, v6) != 0 || ap_ip_format(&t, txt, sizeof(txt)) < 0)
            return append_str(out, "[ip]");
        return append_str(out, txt);
    }
}

static void count_detection(const struct ap_logscrub_ctx *ctx)
{
    if (ctx->stats)
        ctx->stats->detections++;
}

/* "[kind:PSEUDONYM]" of a detected value, "[kind]" without a keyring. */
static int tagged_pseudonym(const struct ap_logscrub_ctx *ctx, const char *kind, const char *v,
                            size_t len, int lower, struct ap_buf *out)
{
    char h[AP_PSEUDO_HEX_MAX];
    char tmp[512];
    const char *src = v;
    if (lower && len <= sizeof(tmp)) {
        /* E-mail addresses compare case-insensitively in practice: one
         * person, one pseudonym. */
        for (size_t i = 0; i < len; i++)
            tmp[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
        src = tmp;
    }
    int n = pseudonym(ctx, src, len, h);
    int rc = ap_buf_append(out, "[", 1);
    rc = rc ? rc : append_str(out, kind);
    if (n > 0) {
        rc = rc ? rc : ap_buf_append(out, ":", 1);
        rc = rc ? rc : ap_buf_append(out, h, (size_t)n);
    }
    return rc ? rc : ap_buf_append(out, "]", 1);
}

static int clean_url(const struct ap_logscrub_ctx *ctx, const char *v, size_t len, struct ap_buf *out)
{
    struct ap_query_policy def;
    const struct ap_query_policy *qp;
    if (ctx->policy != NULL) {
        qp = &ctx->policy->query;
    } else {
        ap_query_policy_init(&def);
        qp = &def;
    }
    size_t cap = 3 * len + 64;
    for (int attempt = 0; attempt < 4; attempt++, cap *= 2) {
        if (ap_buf_reserve(out, cap) != 0)
            return -E2BIG;
        size_t n = 0;
        int rc = ap_query_clean_url(qp, v, len, out->data + out->len, cap, &n);
        if (rc == 0) {
            out->len += n;
            return 0;
        }
        if (rc != -ENOBUFS)
            return rc;
    }
    return -E2BIG;
}

static int detect_text(const struct ap_logscrub_ctx *ctx, const char *s, size_t len, struct ap_buf *out)
{
    if (!ap_detect_may_match(AP_DETECT_MASK_ALL, s, len))
        return ap_buf_append(out, s, len);
    struct ap_detect_scan sc;
    struct ap_detect_match m;
    ap_detect_scan_init(&sc, AP_DETECT_MASK_ALL, s, len);
    size_t prev = 0;
    int rc = 0;
    while (rc == 0 && ap_detect_scan_next(&sc, &m)) {
        rc = ap_buf_append(out, s + prev, m.off - prev);
        if (rc)
            break;
        const char *v = s + m.off;
        count_detection(ctx);
        switch (m.kind) {
        case AP_DETECT_EMAIL:
            rc = tagged_pseudonym(ctx, "email", v, m.len, 1, out);
            break;
        case AP_DETECT_IP: {
            struct ap_ip ip;
            if (ap_ip_parse(&ip, v, m.len) == 0) {
                ap_ip_unmap(&ip);
                rc = scrub_ip(ctx, &ip, 1, out);
            } else {
                rc = append_str(out, "[ip]");
            }
            break;
        }
        case AP_DETECT_MAC:
            rc = tagged_pseudonym(ctx, "mac", v, m.len, 1, out);
            break;
        case AP_DETECT_IMEI:
            rc = tagged_pseudonym(ctx, "imei", v, m.len, 0, out);
            break;
        case AP_DETECT_PHONE:
            rc = tagged_pseudonym(ctx, "phone", v, m.len, 0, out);
            break;
        case AP_DETECT_CLICKID:
            rc = clean_url(ctx, v, m.len, out);
            break;
        default:
            rc = append_str(out, "[redacted]");
            break;
        }
        prev = m.off + m.len;
    }
    return rc ? rc : ap_buf_append(out, s + prev, len - prev);
}

/* Start of an http(s) URL at s[i], at a word boundary. */
static size_t url_scheme_len(const char *s, size_t len, size_t i)
{
    if (i > 0 && ((s[i - 1] >= 'a' && s[i - 1] <= 'z') || (s[i - 1] >= 'A' && s[i - 1] <= 'Z')))
        return 0;
    if (len - i >= 7 && strncasecmp(s + i, "http://", 7) == 0)
        return 7;
    if (len - i >= 8 && strncasecmp(s + i, "https://", 8) == 0)
        return 8;
    return 0;
}

static int url_ends_at(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '<' ||
           c == '>' || c == '`';
}

int ap_logscrub_text(const struct ap_logscrub_ctx *ctx, const char *s, size_t len, struct ap_buf *out)
{
    /* URLs inside the text lose their query (but url_keep) and fragment
     * first, whatever their parameters are called; then the detectors run
     * over everything. */
    size_t prev = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        if (s[i] != 'h' && s[i] != 'H')
            continue;
        size_t sl = url_scheme_len(s, len, i);
        if (sl == 0)
            continue;
        size_t e = i + sl;
        while (e < len && !url_ends_at(s[e]))
            e++;
        rc = detect_text(ctx, s + prev, i - prev, out);
        if (rc)
            break;
        struct ap_buf tmp;
        ap_buf_init(&tmp, 3 * (e - i) + 64);
        rc = clean_url(ctx, s + i, e - i, &tmp);
        if (rc == 0)
            rc = detect_text(ctx, tmp.data ? tmp.data : "", tmp.len, out);
        ap_buf_free(&tmp);
        prev = e;
        i = e - 1;
    }
    return rc ? rc : detect_text(ctx, s + prev, len - prev, out);
}

static int is_list_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

/* One or more addresses ("a, b", as X-Forwarded-For carries them, with
 * or without ports); what is not an address is free text. */
static int scrub_address(const struct ap_logscrub_ctx *ctx, const char *v, size_t len, struct ap_buf *out)
{
    size_t i = 0;
    int first = 1, rc = 0;
    while (i < len && rc == 0) {
        while (i < len && is_list_sep(v[i]))
            i++;
        size_t a = i;
        while (i < len && !is_list_sep(v[i]))
            i++;
        if (i == a)
            break;
        if (!first)
            rc = ap_buf_append(out, ", ", 2);
        first = 0;
        struct ap_ip ip;
        int port;
        if (rc == 0 && ap_ip_parse_hostport(&ip, &port, v + a, i - a) == 0) {
            ap_ip_unmap(&ip);
            rc = scrub_ip(ctx, &ip, 0, out);
        } else if (rc == 0) {
            rc = ap_logscrub_text(ctx, v + a, i - a, out);
        }
    }
    return rc;
}

int ap_logscrub_value(const struct ap_logscrub_ctx *ctx, enum ap_logscrub_action action, const char *v,
                      size_t len, struct ap_buf *out)
{
    if (ctx->stats && (size_t)action < AP_LOGSCRUB_NACTIONS)
        ctx->stats->fields[action]++;
    switch (action) {
    case AP_LOGSCRUB_KEEP:
        return ap_buf_append(out, v, len);
    case AP_LOGSCRUB_DROP:
        return 1;
    case AP_LOGSCRUB_ADDRESS:
        if (addr_mode(ctx) == AP_ADDR_DROP)
            return 1;
        return scrub_address(ctx, v, len, out);
    case AP_LOGSCRUB_PSEUDO: {
        char h[AP_PSEUDO_HEX_MAX];
        if (len == 0)
            return 0;
        int n = pseudonym(ctx, v, len, h);
        if (n < 0)
            return 1;
        return ap_buf_append(out, h, (size_t)n);
    }
    case AP_LOGSCRUB_UA: {
        char r[AP_UA_REDUCED_MAX];
        size_t n = 0;
        if (ap_ua_reduce(v, len, r, sizeof(r), &n) != 0)
            return append_str(out, "Other");
        return ap_buf_append(out, r, n);
    }
    case AP_LOGSCRUB_URL: {
        /* Clean the URL, then look at what is left (its path may still
         * carry an e-mail address or an IP). */
        struct ap_buf tmp;
        ap_buf_init(&tmp, out->limit ? out->limit : 3 * len + 64);
        int rc = clean_url(ctx, v, len, &tmp);
        if (rc == 0)
            rc = ap_logscrub_text(ctx, tmp.data ? tmp.data : "", tmp.len, out);
        ap_buf_free(&tmp);
        return rc;
    }
    case AP_LOGSCRUB_TEXT:
    default:
        return ap_logscrub_text(ctx, v, len, out);
    }
}

/* ---- JSON ---- */

struct walk {
    const struct ap_logscrub_ctx *ctx;
    const char *s;
    size_t len;
    struct ap_buf *out;
    struct ap_buf dec;  /* a decoded string */
    struct ap_buf val;  /* a rewritten string before escaping */
};

/* Append `n` bytes as the contents of a JSON string, with its quotes. */
static int put_json_string(struct ap_buf *out, const char *p, size_t n)
{
    size_t e = ap_json_escaped_len(p, n);
    if (ap_buf_reserve(out, e + 2) != 0)
        return -E2BIG;
    out->data[out->len++] = '"';
    out->len += ap_json_escape(p, n, out->data + out->len);
    out->data[out->len++] = '"';
    return 0;
}

/* Decode the string whose quote is at s[a] and ends before s[b-1]. */
static int decode(struct walk *w, size_t a, size_t b)
{
    ap_buf_reset(&w->dec);
    size_t raw = b - a - 2;
    if (ap_buf_reserve(&w->dec, raw + 1) != 0)
        return -ENOMEM;
    w->dec.len = ap_json_unescape(w->s + a + 1, raw, w->dec.data);
    return 0;
}

static int walk_value(struct walk *w, size_t *pos, enum ap_logscrub_action act, unsigned depth);

static int walk_string(struct walk *w, size_t *pos, enum ap_logscrub_action act)
{
    size_t a = *pos;
    int rc = ap_json_scan_string(w->s, w->len, pos, NULL);
    if (rc != 0)
        return rc;
    if (act == AP_LOGSCRUB_KEEP) {
        if (w->ctx->stats)
            w->ctx->stats->fields[AP_LOGSCRUB_KEEP]++;
        return ap_buf_append(w->out, w->s + a, *pos - a);
    }
    if ((rc = decode(w, a, *pos)) != 0)
        return rc;
    ap_buf_reset(&w->val);
    rc = ap_logscrub_value(w->ctx, act, w->dec.data, w->dec.len, &w->val);
    if (rc < 0)
        return rc;
    if (rc == 1) /* decided before the member was written; not reached */
        return ap_buf_append(w->out, "null", 4);
    return put_json_string(w->out, w->val.data ? w->val.data : "", w->val.len);
}

/* Whether a member under `act` is left out entirely. */
static int drops_member(const struct ap_logscrub_ctx *ctx, enum ap_logscrub_action act)
{
    return act == AP_LOGSCRUB_DROP || (act == AP_LOGSCRUB_PSEUDO && ctx->keyring == NULL) ||
           (act == AP_LOGSCRUB_ADDRESS && addr_mode(ctx) == AP_ADDR_DROP);
}

static int walk_object(struct walk *w, size_t *pos, enum ap_logscrub_action parent, unsigned depth)
{
    const char *s = w->s;
    size_t len = w->len;
    (*pos)++; /* '{' */
    int rc = ap_buf_append(w->out, "{", 1);
    int emitted = 0;
    ap_json_skip_ws(s, len, pos);
    if (*pos < len && s[*pos] == '}') {
        (*pos)++;
        return rc ? rc : ap_buf_append(w->out, "}", 1);
    }
    while (rc == 0) {
        ap_json_skip_ws(s, len, pos);
        if (*pos >= len || s[*pos] != '"')
            return -EINVAL;
        size_t ka = *pos;
        if ((rc = ap_json_scan_string(s, len, pos, NULL)) != 0)
            return rc;
        size_t kb = *pos;
        ap_json_skip_ws(s, len, pos);
        if (*pos >= len || s[*pos] != ':')
            return -EINVAL;
        (*pos)++;
        if ((rc = decode(w, ka, kb)) != 0)
            return rc;
        int explicit_rule;
        enum ap_logscrub_action act = lookup(w->ctx, w->dec.data, w->dec.len, &explicit_rule);
        if (!explicit_rule && parent != AP_LOGSCRUB_TEXT)
            act = parent;
        if (drops_member(w->ctx, act)) {
            if (w->ctx->stats)
                w->ctx->stats->fields[AP_LOGSCRUB_DROP]++;
            ap_json_skip_ws(s, len, pos);
            if ((rc = ap_json_skip_value(s, len, pos, AP_LOGSCRUB_MAX_DEPTH - depth)) != 0)
                return rc;
        } else {
            if (emitted)
                rc = ap_buf_append(w->out, ",", 1);
            emitted = 1;
            /* The name itself may hold what the detectors look for. */
            ap_buf_reset(&w->val);
            rc = rc ? rc : ap_logscrub_text(w->ctx, w->dec.data, w->dec.len, &w->val);
            rc = rc ? rc : put_json_string(w->out, w->val.data ? w->val.data : "", w->val.len);
            rc = rc ? rc : ap_buf_append(w->out, ":", 1);
            rc = rc ? rc : walk_value(w, pos, act, depth);
            if (rc)
                return rc;
        }
        ap_json_skip_ws(s, len, pos);
        if (*pos >= len)
            return -EINVAL;
        if (s[*pos] == '}') {
            (*pos)++;
            return ap_buf_append(w->out, "}", 1);
        }
        if (s[*pos] != ',')
            return -EINVAL;
        (*pos)++;
    }
    return rc;
}

static int walk_array(struct walk *w, size_t *pos, enum ap_logscrub_action act, unsigned depth)
{
    const char *s = w->s;
    size_t len = w->len;
    (*pos)++;
    int rc = ap_buf_append(w->out, "[", 1);
    ap_json_skip_ws(s, len, pos);
    if (*pos < len && s[*pos] == ']') {
        (*pos)++;
        return rc ? rc : ap_buf_append(w->out, "]", 1);
    }
    for (int first = 1; rc == 0; first = 0) {
        if (!first)
            rc = ap_buf_append(w->out, ",", 1);
        rc = rc ? rc : walk_value(w, pos, act, depth);
        if (rc)
            return rc;
        ap_json_skip_ws(s, len, pos);
        if (*pos >= len)
            return -EINVAL;
        if (s[*pos] == ']') {
            (*pos)++;
            return ap_buf_append(w->out, "]", 1);
        }
        if (s[*pos] != ',')
            return -EINVAL;
        (*pos)++;
    }
    return rc;
}

static int walk_value(struct walk *w, size_t *pos, enum ap_logscrub_action act, unsigned depth)
{
    ap_json_skip_ws(w->s, w->len, pos);
    if (*pos >= w->len)
        return -EINVAL;
    char c = w->s[*pos];
    if (c == '{' || c == '[') {
        if (depth >= AP_LOGSCRUB_MAX_DEPTH)
            return -ELOOP;
        return c == '{' ? walk_object(w, pos, act, depth + 1) : walk_array(w, pos, act, depth + 1);
    }
    if (c == '"')
        return walk_string(w, pos, act);
    size_t a = *pos;
    int rc = ap_json_skip_value(w->s, w->len, pos, 0);
    if (rc != 0)
        return rc;
    size_t n = *pos - a;
    if (c == '-' || (c >= '0' && c <= '9')) {
        /* Numbers: identifiers are often numeric, addresses sometimes. */
        if (act == AP_LOGSCRUB_PSEUDO) {
            char h[AP_PSEUDO_HEX_MAX];
            int hn = pseudonym(w->ctx, w->s + a, n, h);
            if (hn < 0)
                return ap_buf_append(w->out, "null", 4);
            return put_json_string(w->out, h, (size_t)hn);
        }
        if (act == AP_LOGSCRUB_ADDRESS)
            return ap_buf_append(w->out, "null", 4);
    }
    return ap_buf_append(w->out, w->s + a, n);
}

int ap_logscrub_json(const struct ap_logscrub_ctx *ctx, const char *in, size_t len, struct ap_buf *out)
{
    /* Validate first: a record that is not JSON leaves nothing behind. */
    int rc = ap_json_validate(in, len, AP_LOGSCRUB_MAX_DEPTH);
    if (rc != 0) {
        if (ctx->stats)
            ctx->stats->rejected++;
        return rc;
    }
    struct walk w = {.ctx = ctx, .s = in, .len = len, .out = out};
    size_t limit = len + 1024;
    ap_buf_init(&w.dec, limit);
    ap_buf_init(&w.val, out->limit ? out->limit : 4 * limit);
    size_t start = out->len;
    size_t pos = 0;
    rc = walk_value(&w, &pos, AP_LOGSCRUB_TEXT, 0);
    ap_buf_free(&w.dec);
    ap_buf_free(&w.val);
    if (rc != 0) {
        out->len = start;
        return rc;
    }
    if (ctx->stats)
        ctx->stats->records++;
    return 0;
}

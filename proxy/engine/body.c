/* The body rewriter's entry point and its policy: formats from
 * Content-Type (and from the bytes for text/plain), compression from
 * Content-Encoding, query flags or magic bytes, the limits, and the verdict
 * the network layer acts on. The walk itself is in bodywalk.c. */
#include "anonproxy/common.h"

#include <errno.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "anonproxy/arena.h"
#include "anonproxy/body.h"
#include "anonproxy/bodypath.h"
#include "anonproxy/gzip.h"
#include "anonproxy/ip.h"
#include "anonproxy/json.h"
#include "anonproxy/text.h"
#include "engine/bodywalk.h"

/* ---- names ---- */

static const char *const action_names[AP_BODY_NACTIONS] = {
    "keep", "drop", "pseudonymise", "truncate-ip", "clean-url", "origin-only", "reduce-ua", "set", "round", "geo",
};
static const char *const on_invalid_names[] = {"reject", "drop-body"};
static const char *const on_unsupported_names[] = {"reject", "drop-body", "pass"};
static const char *const format_names[AP_BODY_NFORMATS] = {
    "empty", "json", "ndjson", "form", "form-lines", "text", "other",
};
static const char *const encoding_names[] = {"identity", "gzip", "deflate"};

int ap_body_action_parse(const char *s, enum ap_body_action *out)
{
    int v;
    int rc = ap_text_name_index(s, action_names, AP_ARRAY_SIZE(action_names), &v);
    if (rc == 0)
        *out = (enum ap_body_action)v;
    return rc;
}

const char *ap_body_action_name(enum ap_body_action a)
{
    return (unsigned)a < AP_BODY_NACTIONS ? action_names[a] : "?";
}

int ap_body_on_invalid_parse(const char *s, enum ap_body_on_invalid *out)
{
    int v;
    int rc = ap_text_name_index(s, on_invalid_names, AP_ARRAY_SIZE(on_invalid_names), &v);
    if (rc == 0)
        *out = (enum ap_body_on_invalid)v;
    return rc;
}

int ap_body_on_unsupported_parse(const char *s, enum ap_body_on_unsupported *out)
{
    int v;
    int rc = ap_text_name_index(s, on_unsupported_names, AP_ARRAY_SIZE(on_unsupported_names), &v);
    if (rc == 0)
        *out = (enum ap_body_on_unsupported)v;
    return rc;
}

const char *ap_body_format_name(enum ap_body_format f)
{
    return (unsigned)f < AP_BODY_NFORMATS ? format_names[f] : "?";
}

const char *ap_body_encoding_name(enum ap_body_encoding e)
{
    return (unsigned)e < AP_ARRAY_SIZE(encoding_names) ? encoding_names[e] : "?";
}

/* ---- building ---- */

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p != NULL)
        memcpy(p, s, n + 1);
    return p;
}

void ap_body_policy_init(struct ap_body_policy *pol, enum ap_profile profile)
{
    memset(pol, 0, sizeof(*pol));
    pol->magic = AP_BODY_POLICY_MAGIC;
    pol->max_body = AP_BODY_MAX_BODY_DEFAULT;
    pol->max_inflated = AP_BODY_MAX_INFLATED_DEFAULT;
    pol->max_ratio = AP_BODY_MAX_RATIO_DEFAULT;
    pol->max_depth = AP_BODY_MAX_DEPTH_DEFAULT;
    pol->gzip_magic = 1;
    pol->v4_prefix = AP_IP_TRUNCATE_V4_DEFAULT;
    pol->v6_prefix = AP_IP_TRUNCATE_V6_DEFAULT;
    if (profile == AP_PROFILE_STRICT) {
        pol->detect[AP_DETECT_EMAIL] = AP_BODY_PSEUDO;
        pol->detect[AP_DETECT_IP] = AP_BODY_TRUNCATE_IP;
        pol->detect[AP_DETECT_MAC] = AP_BODY_PSEUDO;
        pol->detect[AP_DETECT_IMEI] = AP_BODY_PSEUDO;
        pol->detect[AP_DETECT_PHONE] = AP_BODY_PSEUDO;
    }
    pol->detect[AP_DETECT_CLICKID] = AP_BODY_DROP;
}

static const uint64_t max_round_step = 1000000000000000000ull;

/* The constant of a SET rule in its two spellings. */
static int set_arg(struct ap_body_rule *r, const char *arg)
{
    size_t n = strlen(arg);
    if (ap_json_is_utf8(arg, n) && ap_json_validate(arg, n, 32) == 0) {
        r->set_json = xstrdup(arg);
        size_t i = 0;
        ap_json_skip_ws(arg, n, &i);
        if (arg[i] == '"') {
            /* A JSON string: forms get its contents. */
            size_t e = n;
            while (e > i && ap_json_is_ws((unsigned char)arg[e - 1]))
                e--;
            r->set_plain = malloc(e - i);
            if (r->set_plain != NULL)
                r->set_plain[ap_json_unescape(arg + i + 1, e - i - 2, r->set_plain)] = '\0';
        } else {
            r->set_plain = xstrdup(arg);
        }
    } else {
        if (!ap_json_is_utf8(arg, n))
            return -EINVAL;
        r->set_json = malloc(ap_json_escaped_len(arg, n) + 3);
        if (r->set_json != NULL) {
            size_t k = 0;
            r->set_json[k++] = '"';
            k += ap_json_escape(arg, n, r->set_json + k);
            r->set_json[k++] = '"';
            r->set_json[k] = '\0';
        }
        r->set_plain = xstrdup(arg);
    }
    return r->set_json != NULL && r->set_plain != NULL ? 0 : -ENOMEM;
}

static int round_arg(struct ap_body_rule *r, const char *arg)
{
    static const char *const units[] = {"", "minute", "hour", "day"};
    for (unsigned u = 1; u < AP_ARRAY_SIZE(units); u++) {
        if (strcmp(arg, units[u]) == 0) {
            r->round_unit = (enum ap_body_round_unit)u;
            return 0;
        }
    }
    uint64_t v = 0;
    size_t i = 0;
    if (arg[0] == '\0' || arg[0] == '0')
        return -EINVAL;
    for (; arg[i] != '\0'; i++) {
        if (arg[i] < '0' || arg[i] > '9' || v > max_round_step / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(arg[i] - '0');
    }
    if (v == 0 || v > max_round_step)
        return -EINVAL;
    r->round_unit = AP_BODY_ROUND_STEP;
    r->round_step = v;
    return 0;
}

static void rule_free(struct ap_body_rule *r)
{
    free(r->text);
    ap_bodypath_free(r->steps, r->nsteps);
    free(r->set_json);
    free(r->set_plain);
}

int ap_body_policy_add_rule_from(struct ap_body_policy *pol, const char *origin, const char *path,
                                 enum ap_body_action action, const char *arg, size_t *err_off)
{
    AP_CHECK_OBJ(pol, AP_BODY_POLICY_MAGIC);
    if (err_off)
        *err_off = SIZE_MAX;
    if (pol->finished || (unsigned)action >= AP_BODY_NACTIONS)
        return -EINVAL;
    struct ap_body_rule r;
    memset(&r, 0, sizeof(r));
    r.action = action;
    r.origin = origin ? origin : "route";
    int rc = ap_bodypath_parse(path, &r.steps, &r.nsteps, err_off);
    if (rc != 0)
        return rc;
    if (err_off)
        *err_off = SIZE_MAX;
    if (action == AP_BODY_SET) {
        rc = arg == NULL ? -EINVAL : set_arg(&r, arg);
    } else if (action == AP_BODY_ROUND) {
        rc = arg == NULL ? -EINVAL : round_arg(&r, arg);
    } else if (arg != NULL) {
        rc = -EINVAL;
    }
    if (rc == 0) {
        r.text = xstrdup(path);
        if (r.text == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        struct ap_body_rule *nr = realloc(pol->rules, (pol->nrules + 1) * sizeof(*nr));
        if (nr == NULL) {
            rc = -ENOMEM;
        } else {
            pol->rules = nr;
            pol->rules[pol->nrules++] = r;
            return 0;
        }
    }
    rule_free(&r);
    return rc;
}

int ap_body_policy_add_rule(struct ap_body_policy *pol, const char *path, enum ap_body_action action,
                            const char *arg, size_t *err_off)
{
    return ap_body_policy_add_rule_from(pol, NULL, path, action, arg, err_off);
}

int ap_body_policy_set_detector(struct ap_body_policy *pol, enum ap_detect_kind kind, enum ap_body_action action)
{
    AP_CHECK_OBJ(pol, AP_BODY_POLICY_MAGIC);
    if (pol->finished || (unsigned)kind >= AP_DETECT_REGEX)
        return -EINVAL;
    bool ok;
    if (kind == AP_DETECT_CLICKID)
        ok = action == AP_BODY_KEEP || action == AP_BODY_DROP;
    else if (kind == AP_DETECT_IP)
        ok = action == AP_BODY_KEEP || action == AP_BODY_DROP || action == AP_BODY_PSEUDO ||
             action == AP_BODY_TRUNCATE_IP;
    else
        ok = action == AP_BODY_KEEP || action == AP_BODY_DROP || action == AP_BODY_PSEUDO;
    if (!ok)
        return -EINVAL;
    pol->detect[kind] = action;
    return 0;
}

int ap_body_policy_add_regex(struct ap_body_policy *pol, const char *pattern, enum ap_body_action action,
                             size_t *err_off)
{
    AP_CHECK_OBJ(pol, AP_BODY_POLICY_MAGIC);
    if (err_off)
        *err_off = SIZE_MAX;
    if (pol->finished || pattern == NULL || (action != AP_BODY_PSEUDO && action != AP_BODY_DROP))
        return -EINVAL;
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
    if (code == NULL) {
        if (err_off)
            *err_off = erroff;
        return errcode == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EINVAL;
    }
    /* JIT when the platform has it; the interpreter otherwise. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    char *p = xstrdup(pattern);
    struct ap_body_regex *nr = p ? realloc(pol->regexes, (pol->nregexes + 1) * sizeof(*nr)) : NULL;
    if (nr == NULL) {
        free(p);
        pcre2_code_free(code);
        return -ENOMEM;
    }
    pol->regexes = nr;
    pol->regexes[pol->nregexes++] = (struct ap_body_regex){p, code, action};
    return 0;
}

int ap_body_policy_add_query_flag(struct ap_body_policy *pol, const char *name, const char *value,
                                  enum ap_body_encoding enc)
{
    AP_CHECK_OBJ(pol, AP_BODY_POLICY_MAGIC);
    if (pol->finished || name == NULL || value == NULL || name[0] == '\0' ||
        (enc != AP_BODY_ENC_GZIP && enc != AP_BODY_ENC_DEFLATE))
        return -EINVAL;
    for (size_t i = 0; i < pol->nqflags; i++)
        if (strcmp(pol->qflags[i].name, name) == 0 && strcasecmp(pol->qflags[i].value, value) == 0)
            return 0;
    char *n = xstrdup(name), *v = xstrdup(value);
    struct ap_body_qflag *nf = n && v ? realloc(pol->qflags, (pol->nqflags + 1) * sizeof(*nf)) : NULL;
    if (nf == NULL) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    pol->qflags = nf;
    pol->qflags[pol->nqflags++] = (struct ap_body_qflag){n, v, (int)enc};
    return 0;
}

int ap_body_policy_finish(struct ap_body_policy *pol)
{
    AP_CHECK_OBJ(pol, AP_BODY_POLICY_MAGIC);
    if (pol->finished)
        return 0;
    if (pol->max_depth == 0 || pol->max_depth > AP_BODY_MAX_DEPTH_LIMIT)
        return -EINVAL;
    uint64_t total = 0;
    for (size_t r = 0; r < pol->nrules; r++)
        total += pol->rules[r].nsteps + 1;
    if (total > UINT16_MAX || pol->nrules > (UINT32_MAX >> 8))
        return -E2BIG;
    if (total > 0) {
        pol->state_map = malloc(total * sizeof(*pol->state_map));
        pol->state_steps = malloc(total * sizeof(*pol->state_steps));
        pol->root_states = malloc(pol->nrules * sizeof(*pol->root_states));
        if (pol->state_map == NULL || pol->state_steps == NULL || pol->root_states == NULL) {
            free(pol->state_map);
            free(pol->state_steps);
            free(pol->root_states);
            pol->state_map = NULL;
            pol->state_steps = NULL;
            pol->root_states = NULL;
            return -ENOMEM;
        }
    }
    uint32_t k = 0;
    for (size_t r = 0; r < pol->nrules; r++) {
        pol->rules[r].state_base = k;
        pol->root_states[r] = (uint16_t)k;
        for (size_t s = 0; s <= pol->rules[r].nsteps; s++) {
            pol->state_steps[k] = s < pol->rules[r].nsteps ? &pol->rules[r].steps[s] : NULL;
            pol->state_map[k++] = (uint32_t)(r << 8 | s);
        }
    }
    pol->nstates = k;
    pol->nroot = (uint32_t)pol->nrules;
    pol->finished = 1;
    return 0;
}

void ap_body_policy_free(struct ap_body_policy *pol)
{
    if (pol == NULL || pol->magic != AP_BODY_POLICY_MAGIC)
        return;
    for (size_t i = 0; i < pol->nrules; i++)
        rule_free(&pol->rules[i]);
    free(pol->rules);
    for (size_t i = 0; i < pol->nregexes; i++) {
        free(pol->regexes[i].pattern);
        pcre2_code_free(pol->regexes[i].code);
    }
    free(pol->regexes);
    for (size_t i = 0; i < pol->nqflags; i++) {
        free(pol->qflags[i].name);
        free(pol->qflags[i].value);
    }
    free(pol->qflags);
    free(pol->state_map);
    free((void *)pol->state_steps);
    free(pol->root_states);
    memset(pol, 0, sizeof(*pol));
}

/* ---- headers ---- */

static bool token_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* The format a Content-Type names, or OTHER; a charset other than UTF-8
 * (or its ASCII subset) is OTHER too. *sniff is set for text/plain and a
 * missing header, whose bytes decide. */
static enum ap_body_format format_of(const char *ct, size_t n, bool *sniff)
{
    *sniff = false;
    if (ct == NULL || n == 0) {
        *sniff = true;
        return AP_BODY_FMT_TEXT;
    }
    const char *semi = memchr(ct, ';', n);
    const char *mt = ct;
    size_t mn = semi ? (size_t)(semi - ct) : n;
    trim(&mt, &mn);
    /* Parameters: only charset matters. */
    const char *p = semi;
    while (p != NULL) {
        const char *start = p + 1;
        size_t rest = n - (size_t)(start - ct);
        const char *next = memchr(start, ';', rest);
        size_t pn = next ? (size_t)(next - start) : rest;
        const char *pv = start;
        trim(&pv, &pn);
        const char *eq = memchr(pv, '=', pn);
        if (eq != NULL) {
            const char *name = pv, *val = eq + 1;
            size_t nn = (size_t)(eq - pv), vn = pn - nn - 1;
            trim(&name, &nn);
            trim(&val, &vn);
            if (vn >= 2 && val[0] == '"' && val[vn - 1] == '"') {
                val++;
                vn -= 2;
            }
            if (token_eq(name, nn, "charset") && !token_eq(val, vn, "utf-8") && !token_eq(val, vn, "utf8") &&
                !token_eq(val, vn, "us-ascii"))
                return AP_BODY_FMT_OTHER;
        }
        p = next;
    }
    if (token_eq(mt, mn, "application/json") || token_eq(mt, mn, "text/json") ||
        token_eq(mt, mn, "application/csp-report"))
        return AP_BODY_FMT_JSON;
    if (mn > 5 && strncasecmp(mt + mn - 5, "+json", 5) == 0 && mn > 12 && strncasecmp(mt, "application/", 12) == 0)
        return AP_BODY_FMT_JSON;
    if (token_eq(mt, mn, "application/x-ndjson") || token_eq(mt, mn, "application/ndjson") ||
        token_eq(mt, mn, "application/jsonl") || token_eq(mt, mn, "application/x-jsonlines") ||
        token_eq(mt, mn, "application/jsonlines") || token_eq(mt, mn, "application/json-lines"))
        return AP_BODY_FMT_NDJSON;
    if (token_eq(mt, mn, "application/x-www-form-urlencoded"))
        return AP_BODY_FMT_FORM;
    if (token_eq(mt, mn, "text/plain")) {
        *sniff = true;
        return AP_BODY_FMT_TEXT;
    }
    return AP_BODY_FMT_OTHER;
}

/* text/plain bodies: sendBeacon JSON, GA4's lines of parameters, or text. */
static enum ap_body_format sniff(const char *s, size_t n)
{
    size_t i = 0;
    ap_json_skip_ws(s, n, &i);
    if (i < n && (s[i] == '{' || s[i] == '['))
        return AP_BODY_FMT_JSON;
    /* Lines of parameters: a query string never holds a raw space, so a
     * first line with a '=' and no blank is one. */
    bool eq = false;
    for (size_t k = i; k < n && s[k] != '\n' && s[k] != '\r'; k++) {
        if (s[k] == ' ' || s[k] == '\t')
            return AP_BODY_FMT_TEXT;
        eq |= s[k] == '=';
    }
    return eq ? AP_BODY_FMT_FORM_LINES : AP_BODY_FMT_TEXT;
}

/* Content-Encoding: identity (or none), gzip, x-gzip, deflate; one coding
 * only. Returns 0 or -ENOTSUP. */
static int encoding_of(const char *ce, size_t n, enum ap_body_encoding *enc)
{
    *enc = AP_BODY_ENC_IDENTITY;
    size_t i = 0;
    int codings = 0;
    while (ce != NULL && i < n) {
        const char *comma = memchr(ce + i, ',', n - i);
        size_t e = comma ? (size_t)(comma - ce) : n;
        const char *t = ce + i;
        size_t tn = e - i;
        trim(&t, &tn);
        i = e + 1;
        if (tn == 0 || token_eq(t, tn, "identity"))
            continue;
        if (++codings > 1)
            return -ENOTSUP;
        if (token_eq(t, tn, "gzip") || token_eq(t, tn, "x-gzip"))
            *enc = AP_BODY_ENC_GZIP;
        else if (token_eq(t, tn, "deflate"))
            *enc = AP_BODY_ENC_DEFLATE;
        else
            return -ENOTSUP;
    }
    return 0;
}

/* The query flag of the policy that the request's query carries. */
static const struct ap_body_qflag *qflag_of(const struct ap_body_policy *pol, const char *q, size_t n)
{
    if (q == NULL || pol->nqflags == 0)
        return NULL;
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t e = amp ? (size_t)(amp - q) : n;
        const char *eq = memchr(q + i, '=', e - i);
        if (eq != NULL) {
            char name[64], val[64];
            size_t nn = (size_t)(eq - (q + i)), vn = e - (size_t)(eq - q) - 1;
            if (nn < sizeof(name) && vn < sizeof(val)) {
                nn = ap_text_pct_decode(q + i, nn, name, AP_TEXT_PLUS);
                vn = ap_text_pct_decode(eq + 1, vn, val, AP_TEXT_PLUS);
                name[nn] = '\0';
                val[vn] = '\0';
                for (size_t f = 0; f < pol->nqflags; f++)
                    if (strcmp(pol->qflags[f].name, name) == 0 && strcasecmp(pol->qflags[f].value, val) == 0)
                        return &pol->qflags[f];
            }
        }
        i = e + 1;
    }
    return NULL;
}

/* ---- running ---- */

static int verdict(const struct ap_body_policy *pol, const struct ap_body_ctx *ctx, struct ap_body_out *out,
                   int rc, const char *reason)
{
    struct ap_body_stats *st = ctx->stats;
    out->body = NULL;
    out->len = 0;
    out->content_encoding = NULL;
    out->changed = 1;
    out->reason = reason;
    switch (rc) {
    case -E2BIG:
        out->status = 413;
        out->verdict = AP_BODY_REJECT;
        if (st)
            st->rejected_413++;
        return rc;
    case -ENOTSUP:
        out->status = 415;
        if (pol->on_unsupported == AP_BODY_UNSUPPORTED_DROP_BODY)
            break;
        out->verdict = AP_BODY_REJECT;
        if (st)
            st->rejected_415++;
        return rc;
    case -ENOMEM:
        out->status = 500;
        out->verdict = AP_BODY_REJECT;
        return rc;
    default:
        out->status = 400;
        if (pol->on_invalid == AP_BODY_INVALID_DROP_BODY)
            break;
        out->verdict = AP_BODY_REJECT;
        if (st)
            st->rejected_400++;
        return -EINVAL;
    }
    out->verdict = AP_BODY_FORWARD_EMPTY;
    out->body = "";
    if (st)
        st->dropped_bodies++;
    return 0;
}

int ap_body_rewrite(const struct ap_body_policy *pol, const struct ap_body_ctx *ctx, const char *content_type,
                    size_t ctlen, const char *content_encoding, size_t celen, const char *in, size_t inlen,
                    struct ap_body_out *out)
{
    AP_CHECK_OBJ(pol, AP_BODY_POLICY_MAGIC);
    AP_BUG_ON(!pol->finished || ctx == NULL || ctx->arena == NULL || out == NULL);
    memset(out, 0, sizeof(*out));
    out->body = in != NULL ? in : "";
    out->len = inlen;
    if (ctx->stats)
        ctx->stats->bodies++;
    if (inlen == 0) {
        out->format = AP_BODY_FMT_EMPTY;
        out->passthrough = 1;
        return 0;
    }
    if (inlen > pol->max_body)
        return verdict(pol, ctx, out, -E2BIG, "body too large");

    /* Compression: the header, else a query flag, else the magic bytes. */
    enum ap_body_encoding enc;
    if (encoding_of(content_encoding, content_encoding ? celen : 0, &enc) != 0) {
        if (pol->on_unsupported == AP_BODY_UNSUPPORTED_PASS) {
            out->passthrough = 1;
            return 0;
        }
        return verdict(pol, ctx, out, -ENOTSUP, "unsupported Content-Encoding");
    }
    const struct ap_body_qflag *flag = NULL;
    bool by_magic = false;
    if (enc == AP_BODY_ENC_IDENTITY) {
        flag = qflag_of(pol, ctx->query, ctx->query_len);
        /* A gzip flag on a body that is not gzip (an SDK that fell back to
         * plain JSON) is stale: the body is read as it is. */
        if (flag != NULL && flag->encoding == AP_BODY_ENC_GZIP && !ap_gzip_has_magic(in, inlen))
            flag = NULL;
        if (flag != NULL)
            enc = (enum ap_body_encoding)flag->encoding;
        else if (pol->gzip_magic && ap_gzip_has_magic(in, inlen)) {
            enc = AP_BODY_ENC_GZIP;
            by_magic = true;
        }
    }
    out->encoding_in = enc;
    const char *body = in;
    size_t blen = inlen;
    if (enc != AP_BODY_ENC_IDENTITY) {
        char *dec;
        size_t dlen;
        size_t max_out = pol->max_inflated > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)pol->max_inflated;
        int rc = ap_gzip_inflate(ctx->arena, enc == AP_BODY_ENC_GZIP ? AP_GZIP_GZIP : AP_GZIP_DEFLATE, in, inlen,
                                 max_out, pol->max_ratio, AP_BODY_RATIO_FLOOR, &dec, &dlen);
        if (rc != 0)
            return verdict(pol, ctx, out, rc,
                           rc == -E2BIG ? "decompressed body too large" : "invalid compressed body");
        if (ctx->stats)
            ctx->stats->inflated++;
        body = dec;
        blen = dlen;
    }

    bool sniffed;
    enum ap_body_format fmt = format_of(content_type, content_type ? ctlen : 0, &sniffed);
    if (sniffed && blen > 0)
        fmt = sniff(body, blen);
    out->format = fmt;
    if (fmt == AP_BODY_FMT_OTHER) {
        if (pol->on_unsupported == AP_BODY_UNSUPPORTED_PASS) {
            /* The route accepts unread bodies: forwarded as they came. */
            out->body = in;
            out->len = inlen;
            out->passthrough = 1;
            return 0;
        }
        return verdict(pol, ctx, out, -ENOTSUP, "unsupported Content-Type");
    }
    if (!ap_json_is_utf8(body, blen))
        return verdict(pol, ctx, out, -EILSEQ, "body is not UTF-8");

    /* The output may grow (pseudonyms of short values, geo objects) but not
     * without bound. */
    size_t limit = blen > SIZE_MAX / 4 ? SIZE_MAX : blen * 4 + (1u << 20);
    const char *res;
    size_t rlen, err_off;
    size_t saved_naudit = out->naudit;
    int rc = ap_bodywalk_run(pol, ctx, out, fmt, body, blen, limit, &res, &rlen, &err_off);
    if (rc == -EBADMSG && sniffed && fmt == AP_BODY_FMT_JSON && memchr(body, '\n', blen) != NULL) {
        /* JSON followed by more lines of JSON: NDJSON sent as text/plain. */
        out->naudit = saved_naudit;
        fmt = out->format = AP_BODY_FMT_NDJSON;
        rc = ap_bodywalk_run(pol, ctx, out, fmt, body, blen, limit, &res, &rlen, &err_off);
    }
    if (rc != 0) {
        const char *why = rc == -EILSEQ ? "body is not UTF-8"
                          : rc == -ELOOP ? "body nested too deeply"
                          : rc == -E2BIG ? "rewritten body too large"
                                         : "invalid body";
        return verdict(pol, ctx, out, rc == -EBADMSG ? -EINVAL : rc, why);
    }
    bool changed = res != body || rlen != blen;
    if (changed && ctx->stats)
        ctx->stats->rewritten++;

    if (enc == AP_BODY_ENC_IDENTITY) {
        out->body = res;
        out->len = rlen;
        out->changed = changed;
        return 0;
    }
    if (pol->recompress) {
        if (!changed) {
            /* Nothing to hide: the original compressed bytes go on. */
            out->body = in;
            out->len = inlen;
        } else {
            char *z;
            size_t zlen;
            rc = ap_gzip_deflate(ctx->arena, enc == AP_BODY_ENC_GZIP ? AP_GZIP_GZIP : AP_GZIP_DEFLATE, 6, res,
                                 rlen, &z, &zlen);
            if (rc != 0)
                return verdict(pol, ctx, out, -ENOMEM, "cannot compress the body");
            out->body = z;
            out->len = zlen;
            out->changed = 1;
        }
        /* It goes on the way it came: same header, same flag, or neither. */
        out->content_encoding = flag || by_magic ? NULL : ap_body_encoding_name(enc);
        return 0;
    }
    out->body = res;
    out->len = rlen;
    out->changed = 1;
    out->content_encoding = NULL;
    out->strip_param = flag ? flag->name : NULL;
    return 0;
}

int ap_body_strip_param(const char *target, size_t len, const char *name, char *out, size_t outcap,
                        size_t *outlen)
{
    *outlen = 0;
    if (outcap == 0)
        return -ENOBUFS;
    out[0] = '\0';
    const char *q = memchr(target, '?', len);
    size_t qs = q ? (size_t)(q - target) + 1 : len;
    const char *h = memchr(target + qs, '#', len - qs);
    size_t qe = h ? (size_t)(h - target) : len;
    size_t o = 0;
    size_t nlen = strlen(name);
#define PUT(p, n)                                                                                        \
    do {                                                                                                 \
        if (o + (n) + 1 > outcap) {                                                                      \
            out[0] = '\0';                                                                               \
            return -ENOBUFS;                                                                             \
        }                                                                                                \
        memcpy(out + o, (p), (n));                                                                       \
        o += (n);                                                                                        \
    } while (0)
    PUT(target, q ? qs - 1 : len);
    if (q != NULL) {
        size_t i = qs;
        bool any = false;
        while (i <= qe) {
            const char *amp = memchr(target + i, '&', qe - i);
            size_t e = amp ? (size_t)(amp - target) : qe;
            const char *eq = memchr(target + i, '=', e - i);
            size_t ne = eq ? (size_t)(eq - target) : e;
            char dec[128];
            size_t dl = ne - i < sizeof(dec) ? ap_text_pct_decode(target + i, ne - i, dec, AP_TEXT_PLUS) : 0;
            bool strip = ne - i < sizeof(dec) && dl == nlen && memcmp(dec, name, nlen) == 0;
            if (!strip && e > i) {
                PUT(any ? "&" : "?", 1);
                PUT(target + i, e - i);
                any = true;
            }
            if (amp == NULL)
                break;
            i = e + 1;
        }
        PUT(target + qe, len - qe);
    }
#undef PUT
    out[o] = '\0';
    *outlen = o;
    return 0;
}

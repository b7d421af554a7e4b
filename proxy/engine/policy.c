/* The engine's entry point: a route's privacy policy applied to a request.
 *
 * Privacy by default: the header list is an allowlist (a header no rule
 * names is dropped), every inbound client-address header is removed, the
 * outbound address is set only by the policy, cookies are dropped unless a
 * rule keeps them, click ids are always dropped. The modules this file calls
 * (clientaddr, ip, pseudo, ua, lang, query, cookie) are pure; so is this
 * one: outputs come from the request's arena. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/arena.h"
#include "anonproxy/clientaddr.h"
#include "anonproxy/cookie.h"
#include "anonproxy/head.h"
#include "anonproxy/ip.h"
#include "anonproxy/lang.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"
#include "anonproxy/query.h"
#include "anonproxy/text.h"
#include "anonproxy/ua.h"
#include "anonproxy/detect.h"

/* ---- names ---- */

static const char *const profile_names[] = {"strict", "balanced"};
static const char *const addr_mode_names[] = {"drop", "placeholder", "truncate", "pseudonymise"};
static const char *const hdr_action_names[] = {
    "keep", "drop", "set", "pseudonymise", "reduce-ua", "reduce-language",
    "referrer", "clean-url", "origin-only", "cookies"};
static const char *const cookie_action_names[] = {"drop", "keep", "pseudonymise"};
static const char *const query_action_names[] = {
    "keep", "drop", "pseudonymise", "truncate-ip", "clean-url", "origin-only", "referrer"};
static const char *const kind_names[] = {"address", "header", "cookie", "param", "path"};
static const char *const action_names[] = {
    "keep", "drop", "set", "pseudonymise", "truncate", "reduce", "clean-url", "origin-only",
    "placeholder", "redact"};
_Static_assert(AP_ARRAY_SIZE(kind_names) == AP_AUDIT_NKINDS, "kind_names");
_Static_assert(AP_ARRAY_SIZE(action_names) == AP_ACT_NACTIONS, "action_names");

int ap_policy_profile_parse(const char *s, enum ap_profile *out)
{
    int v;
    int rc = ap_text_name_index(s, profile_names, AP_ARRAY_SIZE(profile_names), &v);
    if (rc == 0)
        *out = (enum ap_profile)v;
    return rc;
}

const char *ap_policy_profile_name(enum ap_profile p)
{
    return (size_t)p < AP_ARRAY_SIZE(profile_names) ? profile_names[p] : "?";
}

int ap_policy_addr_mode_parse(const char *s, enum ap_addr_mode *out)
{
    int v;
    int rc = ap_text_name_index(s, addr_mode_names, AP_ARRAY_SIZE(addr_mode_names), &v);
    if (rc == 0)
        *out = (enum ap_addr_mode)v;
    return rc;
}

const char *ap_policy_addr_mode_name(enum ap_addr_mode m)
{
    return (size_t)m < AP_ARRAY_SIZE(addr_mode_names) ? addr_mode_names[m] : "?";
}

int ap_policy_hdr_action_parse(const char *s, enum ap_hdr_action *out)
{
    int v;
    int rc = ap_text_name_index(s, hdr_action_names, AP_ARRAY_SIZE(hdr_action_names), &v);
    if (rc == 0)
        *out = (enum ap_hdr_action)v;
    return rc;
}

const char *ap_policy_hdr_action_name(enum ap_hdr_action a)
{
    return (size_t)a < AP_ARRAY_SIZE(hdr_action_names) ? hdr_action_names[a] : "?";
}

int ap_policy_cookie_action_parse(const char *s, enum ap_cookie_action *out)
{
    int v;
    int rc = ap_text_name_index(s, cookie_action_names, AP_ARRAY_SIZE(cookie_action_names), &v);
    if (rc == 0)
        *out = (enum ap_cookie_action)v;
    return rc;
}

const char *ap_policy_cookie_action_name(enum ap_cookie_action a)
{
    return (size_t)a < AP_ARRAY_SIZE(cookie_action_names) ? cookie_action_names[a] : "?";
}

int ap_policy_query_action_parse(const char *s, enum ap_query_action *out)
{
    int v;
    int rc = ap_text_name_index(s, query_action_names, AP_ARRAY_SIZE(query_action_names), &v);
    if (rc == 0)
        *out = (enum ap_query_action)v;
    return rc;
}

const char *ap_policy_query_action_name(enum ap_query_action a)
{
    return (size_t)a < AP_ARRAY_SIZE(query_action_names) ? query_action_names[a] : "?";
}

const char *ap_audit_kind_name(enum ap_audit_kind k)
{
    return (size_t)k < AP_ARRAY_SIZE(kind_names) ? kind_names[k] : "?";
}

const char *ap_audit_action_name(enum ap_audit_action a)
{
    return (size_t)a < AP_ARRAY_SIZE(action_names) ? action_names[a] : "?";
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

static int grow(void **arr, size_t *n, size_t elem)
{
    /* Arrays grow one element at a time: they are built once, at load. */
    void *na = realloc(*arr, (*n + 1) * elem);
    if (na == NULL)
        return -ENOMEM;
    *arr = na;
    return 0;
}

static const char *rule_origin(struct ap_policy *pol, int from_profile)
{
    char buf[256];
    if (from_profile)
        snprintf(buf, sizeof(buf), "profile %s", ap_policy_profile_name(pol->profile));
    else
        snprintf(buf, sizeof(buf), "route %s", pol->name);
    for (size_t i = 0; i < pol->nhdr_origin_strs; i++)
        if (strcmp(pol->hdr_origin_strs[i], buf) == 0)
            return pol->hdr_origin_strs[i];
    char *s = xstrdup(buf);
    if (s == NULL || grow((void **)&pol->hdr_origin_strs, &pol->nhdr_origin_strs, sizeof(char *))) {
        free(s);
        return NULL;
    }
    pol->hdr_origin_strs[pol->nhdr_origin_strs++] = s;
    return s;
}

int ap_policy_init(struct ap_policy *pol, const char *route_name, enum ap_profile profile)
{
    memset(pol, 0, sizeof(*pol));
    pol->magic = AP_POLICY_MAGIC;
    pol->name = xstrdup(route_name ? route_name : "");
    pol->addr_header = xstrdup("X-Forwarded-For");
    if (pol->name == NULL || pol->addr_header == NULL)
        return -ENOMEM;
    pol->profile = profile;
    pol->pseudo_bits = AP_PSEUDO_BITS_DEFAULT;
    pol->v4_prefix = AP_IP_TRUNCATE_V4_DEFAULT;
    pol->v6_prefix = AP_IP_TRUNCATE_V6_DEFAULT;
    pol->addr_mode = profile == AP_PROFILE_STRICT ? AP_ADDR_DROP : AP_ADDR_TRUNCATE;
    ap_cookie_policy_init(&pol->cookies);
    ap_query_policy_init(&pol->query);
    return 0;
}

static int add_header_rule(struct ap_policy *pol, const char *glob, enum ap_hdr_action action,
                           const char *value, int from_profile)
{
    if (glob == NULL || glob[0] == '\0' || (unsigned)action >= AP_HDR_NACTIONS ||
        (action == AP_HDR_SET && value == NULL))
        return -EINVAL;
    if (grow((void **)&pol->headers, &pol->nheaders, sizeof(*pol->headers)))
        return -ENOMEM;
    struct ap_header_rule *r = &pol->headers[pol->nheaders];
    memset(r, 0, sizeof(*r));
    r->glob = xstrdup(glob);
    r->value = value ? xstrdup(value) : NULL;
    r->action = action;
    r->origin = rule_origin(pol, from_profile);
    if (r->glob == NULL || (value && r->value == NULL) || r->origin == NULL) {
        free(r->glob);
        free(r->value);
        return -ENOMEM;
    }
    pol->nheaders++;
    return 0;
}

int ap_policy_add_header_rule(struct ap_policy *pol, const char *glob, enum ap_hdr_action action,
                              const char *value)
{
    return add_header_rule(pol, glob, action, value, 0);
}

/* Has ap_policy_finish run? It builds the header set, whatever the rules. */
static bool is_finished(const struct ap_policy *pol)
{
    return pol->header_set.magic == AP_TEXT_GLOBSET_MAGIC;
}

int ap_policy_add_cookie_rule(struct ap_policy *pol, const char *glob, enum ap_cookie_action action)
{
    if (glob == NULL || glob[0] == '\0' || (unsigned)action >= AP_COOKIE_NACTIONS)
        return -EINVAL;
    if (grow((void **)&pol->cookie_rules, &pol->ncookie_rules, sizeof(*pol->cookie_rules)))
        return -ENOMEM;
    char *g = xstrdup(glob);
    if (g == NULL)
        return -ENOMEM;
    pol->cookie_rules[pol->ncookie_rules++] = (struct ap_cookie_rule){g, action};
    /* After ap_policy_finish the cookie policy points at the array, which
     * may just have moved: follow it (the compiled set then no longer
     * matches and the engine walks the rules instead). */
    if (is_finished(pol)) {
        pol->cookies.rules = pol->cookie_rules;
        pol->cookies.nrules = pol->ncookie_rules;
    }
    return 0;
}

int ap_policy_add_query_rule(struct ap_policy *pol, const char *glob, enum ap_query_action action)
{
    if (glob == NULL || glob[0] == '\0' || (unsigned)action >= AP_QUERY_NACTIONS)
        return -EINVAL;
    if (grow((void **)&pol->query_rules, &pol->nquery_rules, sizeof(*pol->query_rules)))
        return -ENOMEM;
    char *g = xstrdup(glob);
    if (g == NULL)
        return -ENOMEM;
    pol->query_rules[pol->nquery_rules++] = (struct ap_query_rule){g, action};
    if (is_finished(pol)) { /* as for cookies */
        pol->query.rules = pol->query_rules;
        pol->query.nrules = pol->nquery_rules;
    }
    return 0;
}

static int add_str(char ***arr, size_t *n, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return -EINVAL;
    if (grow((void **)arr, n, sizeof(char *)))
        return -ENOMEM;
    char *c = xstrdup(s);
    if (c == NULL)
        return -ENOMEM;
    (*arr)[(*n)++] = c;
    return 0;
}

int ap_policy_add_url_keep(struct ap_policy *pol, const char *glob)
{
    int rc = add_str(&pol->url_keep, &pol->nurl_keep, glob);
    if (rc == 0 && is_finished(pol)) { /* as for cookies */
        pol->query.url_keep = (const char *const *)pol->url_keep;
        pol->query.nurl_keep = pol->nurl_keep;
    }
    return rc;
}

int ap_policy_add_remove_header(struct ap_policy *pol, const char *name)
{
    return add_str(&pol->remove_headers, &pol->nremove_headers, name);
}

/* The profiles' allowlist: Content-Length and Host are written by the
 * proxy itself, so they are not listed. */
struct profile_header {
    const char *name;
    enum ap_hdr_action action;
};

static const struct profile_header profile_headers[] = {
    {"Content-Type", AP_HDR_KEEP},
    /* The body's coding is part of what the body means: dropping it would
     * hand the backend bytes it cannot read. */
    {"Content-Encoding", AP_HDR_KEEP},
    {"Accept", AP_HDR_KEEP},
    {"Accept-Encoding", AP_HDR_KEEP},
    {"Accept-Language", AP_HDR_REDUCE_LANG},
    {"User-Agent", AP_HDR_REDUCE_UA},
    {"Origin", AP_HDR_KEEP},
    {"Referer", AP_HDR_REFERRER},
    {"Sec-CH-UA", AP_HDR_KEEP},
    {"Sec-CH-UA-Mobile", AP_HDR_KEEP},
    {"Sec-CH-UA-Platform", AP_HDR_KEEP},
    {"DNT", AP_HDR_KEEP},
    {"Sec-GPC", AP_HDR_KEEP},
    {"Cookie", AP_HDR_COOKIE},
};

/* Header names most requests carry, lower-case: ap_policy_finish works out
 * what the header set says of each, so that the engine classifies them
 * with one table look-up and one comparison instead of a hash-set probe. A
 * name that is not here is looked up in the set as before. */
static const char *const common_headers[AP_POLICY_COMMON_HEADERS] = {
    "accept", "accept-encoding", "accept-language", "user-agent", "referer", "origin", "cookie",
    "content-type", "content-encoding", "content-language", "dnt", "sec-gpc", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-ch-ua-platform-version",
    "sec-ch-ua-full-version-list", "sec-ch-ua-full-version", "sec-ch-ua-model", "sec-ch-ua-arch",
    "sec-ch-ua-bitness", "sec-ch-ua-wow64", "sec-ch-ua-form-factors", "sec-fetch-site",
    "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "x-forwarded-for", "x-real-ip",
    "forwarded", "x-requested-with", "cache-control", "pragma", "priority", "if-none-match",
    "if-modified-since", "upgrade-insecure-requests", "authorization", "x-forwarded-proto",
    "x-forwarded-host"};

/* Slot of a name of at least 3 bytes in common_slot: three of its bytes
 * (ORed with 0x20, which lower-cases letters and keeps digits and '-') and
 * its length, chosen so that no two common names share a slot; were two to
 * collide, the second would simply be looked up in the set. */
static unsigned common_hash(const char *s, size_t len)
{
    return ((unsigned)len + ((unsigned char)s[0] | 0x20) * 3u + ((unsigned char)s[len - 1] | 0x20) * 7u +
            ((unsigned char)s[len - 3] | 0x20) * 3u) & 255u;
}

static uint8_t common_slot[256]; /* index in common_headers + 1, 0: none */
static uint8_t common_len[AP_POLICY_COMMON_HEADERS];
/* Each name as words (the loads of name_word), with the bits that ASCII
 * case may flip: a name is the common one when every word of it, ORed with
 * the mask, equals the literal's word. 0x20 is set only where the literal
 * has a letter, so "A" | 0x20 == "a" but "@" | 0x20 is "`", no letter. */
static struct {
    uint64_t w, m;
} common_words[AP_POLICY_COMMON_HEADERS][4];
static bool common_ready;

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the word-at-a-time name comparison below assumes little-endian byte order"
#endif

static uint64_t load_word(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

static uint64_t load_half(const char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* Word k of a name of 3 to 32 bytes, read without going past it: 8-byte
 * words, the last one overlapping the one before; a name under 8 bytes is
 * one word, its first and last 4 bytes (or its 3 bytes). */
static uint64_t name_word(const char *s, size_t len, size_t k)
{
    if (len < 8)
        return len < 4 ? (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[1] << 8 |
                             (uint64_t)(unsigned char)s[2] << 16
                       : load_half(s) | load_half(s + len - 4) << 32;
    return load_word(8 * k + 8 < len ? s + 8 * k : s + len - 8);
}

static size_t name_nwords(size_t len)
{
    return len < 8 ? 1 : (len + 7) / 8;
}

static void build_common_slots(void)
{
    /* Built by the first ap_policy_finish, from constants: two threads
     * finishing policies at once write the same bytes. */
    if (__atomic_load_n(&common_ready, __ATOMIC_ACQUIRE))
        return;
    uint8_t t[256] = {0};
    for (size_t i = 0; i < AP_ARRAY_SIZE(common_headers); i++) {
        const char *n = common_headers[i];
        AP_BUG_ON(n == NULL); /* the list is shorter than AP_POLICY_COMMON_HEADERS */
        size_t len = strlen(n);
        AP_BUG_ON(len < 3 || len > 32);
        common_len[i] = (uint8_t)len;
        for (size_t k = 0; k < name_nwords(len); k++) {
            uint64_t w = name_word(n, len, k), m = 0;
            for (unsigned b = 0; b < 8; b++) {
                unsigned char c = (unsigned char)(w >> (8 * b));
                if (c >= 'a' && c <= 'z')
                    m |= (uint64_t)0x20 << (8 * b);
            }
            common_words[i][k].w = w;
            common_words[i][k].m = m;
        }
        unsigned h = common_hash(n, len);
        if (t[h] == 0)
            t[h] = (uint8_t)(i + 1);
    }
    memcpy(common_slot, t, sizeof(t));
    __atomic_store_n(&common_ready, true, __ATOMIC_RELEASE);
}

/* The index in common_headers of `name` (ASCII case ignored), or -1. */
static int common_header(struct ap_slice name)
{
    if (name.len < 3 || name.len > 32)
        return -1;
    unsigned v = common_slot[common_hash(name.p, name.len)];
    if (v == 0 || common_len[v - 1] != name.len)
        return -1;
    for (size_t k = 0; k < name_nwords(name.len); k++)
        if ((name_word(name.p, name.len, k) | common_words[v - 1][k].m) != common_words[v - 1][k].w)
            return -1;
    return (int)v - 1;
}

static int32_t set_class(const struct ap_policy *pol, struct ap_slice name);

/* Query parameters every profile knows. Vendor presets add their own. */
static const char *const url_params[] = {"url", "dl", "u", "page_url", "href", "current_url", "location"};
static const char *const referrer_params[] = {"dr", "urlref", "ref", "referrer", "referer"};
static const char *const id_params[] = {
    "uid", "user_id", "userid", "userId", "cid", "client_id", "clientId", "_id", "device_id",
    "deviceId", "distinct_id", "anonymous_id", "anonymousId", "visitor_id", "visitorId", "vid",
    "sid", "session_id", "sessionId", "email", "e_mail"};
static const char *const ip_params[] = {"cip", "uip", "ip", "_ip", "client_ip", "ip_address"};

int ap_policy_finish(struct ap_policy *pol)
{
    int rc = 0;
    for (size_t i = 0; i < AP_ARRAY_SIZE(profile_headers) && rc == 0; i++)
        rc = add_header_rule(pol, profile_headers[i].name, profile_headers[i].action, NULL, 1);
    for (size_t i = 0; i < AP_ARRAY_SIZE(url_params) && rc == 0; i++)
        rc = ap_policy_add_query_rule(pol, url_params[i], AP_QUERY_CLEAN_URL);
    for (size_t i = 0; i < AP_ARRAY_SIZE(referrer_params) && rc == 0; i++)
        rc = ap_policy_add_query_rule(pol, referrer_params[i], AP_QUERY_REFERRER);
    for (size_t i = 0; i < AP_ARRAY_SIZE(id_params) && rc == 0; i++)
        rc = ap_policy_add_query_rule(pol, id_params[i], AP_QUERY_PSEUDO);
    for (size_t i = 0; i < AP_ARRAY_SIZE(ip_params) && rc == 0; i++)
        rc = ap_policy_add_query_rule(pol, ip_params[i], pol->profile == AP_PROFILE_STRICT
                                                             ? AP_QUERY_DROP
                                                             : AP_QUERY_TRUNCATE_IP);
    if (rc != 0)
        return rc;
    pol->cookies.rules = pol->cookie_rules;
    pol->cookies.nrules = pol->ncookie_rules;
    pol->cookies.default_action = AP_COOKIE_DROP;
    pol->query.rules = pol->query_rules;
    pol->query.nrules = pol->nquery_rules;
    pol->query.default_action = AP_QUERY_KEEP;
    if (pol->url_keep != NULL) {
        pol->query.url_keep = (const char *const *)pol->url_keep;
        pol->query.nurl_keep = pol->nurl_keep;
    }
    pol->query.strict_referrer = pol->profile == AP_PROFILE_STRICT;
    /* Strict: a kept utm_* value holding an e-mail, phone number, IMEI, MAC
     * or IP address is dropped from cleaned URLs (url=, Referer, dl=...). */
    if (pol->profile == AP_PROFILE_STRICT)
        pol->query.clean_url_detect = (1u << AP_DETECT_EMAIL) | (1u << AP_DETECT_IP) |
                                      (1u << AP_DETECT_MAC) | (1u << AP_DETECT_IMEI) |
                                      (1u << AP_DETECT_PHONE);
    /* Strict: the same identifiers are cut out of paths, the target's and
     * those of URLs in parameters ("/user/jane@example.com/orders"). */
    pol->query.path_detect = pol->query.clean_url_detect;
    pol->query.path_tokens = pol->profile == AP_PROFILE_STRICT;
    /* The rules are final: compile them for the request path. */
    ap_text_globset_free(&pol->header_set);
    ap_text_globset_init(&pol->header_set, AP_TEXT_NOCASE);
    pol->compiled_headers = NULL;
    pol->header_set_removed = 0;
    /* Removed names are exact names: one with a glob character cannot go
     * in the set, and then the engine asks about them separately. */
    int literal = strpbrk(pol->addr_header, "*?") == NULL;
    for (size_t i = 0; i < pol->nremove_headers; i++)
        literal &= strpbrk(pol->remove_headers[i], "*?") == NULL;
    if (literal) {
        const char *n;
        for (size_t i = 0; (n = ap_clientaddr_address_header(i)) != NULL && rc == 0; i++)
            rc = ap_text_globset_add(&pol->header_set, n);
        for (size_t i = 0; i < pol->nremove_headers && rc == 0; i++)
            rc = ap_text_globset_add(&pol->header_set, pol->remove_headers[i]);
        if (rc == 0)
            rc = ap_text_globset_add(&pol->header_set, pol->addr_header);
        pol->header_set_removed = pol->header_set.n;
    }
    for (size_t i = 0; i < pol->nheaders && rc == 0; i++)
        rc = ap_text_globset_add(&pol->header_set, pol->headers[i].glob);
    if (rc == 0) {
        pol->compiled_headers = pol->headers;
        pol->compiled_nheaders = pol->nheaders;
        pol->compiled_addr_header = pol->addr_header;
        pol->compiled_nremove_headers = pol->nremove_headers;
        /* The common names, classified now as the set would at run time. */
        build_common_slots();
        for (size_t i = 0; i < AP_ARRAY_SIZE(common_headers); i++)
            pol->common_class[i] =
                set_class(pol, (struct ap_slice){common_headers[i], strlen(common_headers[i])});
        rc = ap_cookie_policy_compile(&pol->cookies);
    }
    if (rc == 0)
        rc = ap_query_policy_compile(&pol->query);
    return rc;
}

void ap_policy_free(struct ap_policy *pol)
{
    if (pol == NULL || pol->magic != AP_POLICY_MAGIC)
        return;
    for (size_t i = 0; i < pol->nheaders; i++) {
        free(pol->headers[i].glob);
        free(pol->headers[i].value);
    }
    free(pol->headers);
    for (size_t i = 0; i < pol->ncookie_rules; i++)
        free((char *)pol->cookie_rules[i].glob);
    free(pol->cookie_rules);
    for (size_t i = 0; i < pol->nquery_rules; i++)
        free((char *)pol->query_rules[i].glob);
    free(pol->query_rules);
    for (size_t i = 0; i < pol->nurl_keep; i++)
        free(pol->url_keep[i]);
    free(pol->url_keep);
    for (size_t i = 0; i < pol->nremove_headers; i++)
        free(pol->remove_headers[i]);
    free(pol->remove_headers);
    for (size_t i = 0; i < pol->nhdr_origin_strs; i++)
        free(pol->hdr_origin_strs[i]);
    free(pol->hdr_origin_strs);
    ap_text_globset_free(&pol->header_set);
    if (pol->cookies.magic == AP_COOKIE_POLICY_MAGIC)
        ap_cookie_policy_release(&pol->cookies);
    if (pol->query.magic == AP_QUERY_POLICY_MAGIC)
        ap_query_policy_release(&pol->query);
    free(pol->name);
    free(pol->site_id);
    free(pol->addr_header);
    pol->magic = 0;
}

/* ---- running ---- */

struct run {
    const struct ap_policy *pol;
    struct ap_engine_ctx *ctx;
    struct ap_request *req;
    struct ap_engine_result *res;
    struct ap_slice scope;
    struct ap_slice site_host; /* Host without port */
    size_t params_seen;        /* query parameters the current rewrite try has decided */
    size_t params_counted;     /* query parameters already counted (over every try) */
    size_t cookies_seen;       /* the same for the cookies of the current Cookie header */
    size_t cookies_counted;
    size_t redactions_seen;    /* the same for identifiers cut out of paths */
    size_t redactions_counted;
    /* Pseudonyms written into their final place are computed two at a time
     * (ap_pseudo_hex_deferred); the batch is flushed before the rewrite
     * returns. Outside the struct, which is zeroed whole per request. */
    struct ap_pseudo_batch *batch;
};

/* The audit half of count(), out of line: explain is rare, counting is
 * done for every header, cookie and parameter of every request. */
__attribute__((noinline)) static void record(struct run *r, enum ap_audit_kind kind,
                                             enum ap_audit_action act, struct ap_slice name,
                                             const char *rule)
{
    struct ap_engine_result *res = r->res;
    if (res->naudit == res->capaudit) {
        size_t nc = res->capaudit ? res->capaudit * 2 : 32;
        struct ap_audit_entry *na = ap_arena_alloc(r->ctx->arena, nc * sizeof(*na));
        if (na == NULL)
            return; /* the audit is best effort; the rewrite is not */
        if (res->naudit)
            memcpy(na, res->audit, res->naudit * sizeof(*na));
        res->audit = na;
        res->capaudit = nc;
    }
    res->audit[res->naudit++] = (struct ap_audit_entry){kind, act, name, rule};
}

static inline void count(struct run *r, enum ap_audit_kind kind, enum ap_audit_action act,
                         struct ap_slice name, const char *rule)
{
    if (r->ctx->stats != NULL)
        r->ctx->stats->actions[kind][act]++;
    if (r->ctx->audit)
        record(r, kind, act, name, rule);
}

/* The pseudonym of a value with the run's scope and the worker's keyring.
 * `in_place`: `out` is where the digits stay, and nothing reads them before
 * the rewrite ends, so they may come from the batch. */
static int pseudonymise(struct run *r, const char *val, size_t len, char *out, size_t outcap, bool in_place)
{
    char hex[AP_PSEUDO_HEX_MAX];
    if (r->ctx->keyring == NULL)
        return -ENOKEY;
    if (in_place && outcap > r->pol->pseudo_bits / 4) /* room for the digits and a NUL */
        return ap_pseudo_hex_deferred(r->batch, r->ctx->keyring, r->ctx->now, r->scope,
                                      (struct ap_slice){val, len}, r->pol->pseudo_bits, out, outcap);
    if (outcap > r->pol->pseudo_bits / 4)
        return ap_pseudo_hex(r->ctx->keyring, r->ctx->now, r->scope, (struct ap_slice){val, len},
                             r->pol->pseudo_bits, out, outcap);
    int n = ap_pseudo_hex(r->ctx->keyring, r->ctx->now, r->scope, (struct ap_slice){val, len},
                          r->pol->pseudo_bits, hex, sizeof(hex));
    if (n < 0)
        return n;
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, hex, (size_t)n);
    return n;
}

/* ap_text_fn for pseudonyms in the query, cookies and headers: every caller
 * leaves the digits where they are written and does not read them (hex
 * needs no encoding: pseudo_is_safe). */
static int pseudo_fn(void *vctx, const char *val, size_t len, char *out, size_t outcap)
{
    return pseudonymise(vctx, val, len, out, outcap, true);
}

/* ap_text_fn for addresses in parameters: truncated by the policy. */
static int truncate_fn(void *vctx, const char *val, size_t len, char *out, size_t outcap)
{
    struct run *r = vctx;
    struct ap_ip ip, t;
    if (ap_ip_parse(&ip, val, len) != 0)
        return -EINVAL;
    if (ap_ip_truncate(&t, &ip, r->pol->v4_prefix, r->pol->v6_prefix) != 0)
        return -EINVAL;
    char buf[AP_IP_STRLEN];
    int n = ap_ip_format(&t, buf, sizeof(buf));
    if (n < 0)
        return -EINVAL;
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, buf, (size_t)n);
    return n;
}

/* Run a rewriter into arena memory, growing the buffer on -ENOBUFS. */
typedef int (*rewrite_fn)(struct run *r, const char *in, size_t len, char *out, size_t cap,
                          size_t *outlen);

static int run_rewrite(struct run *r, rewrite_fn fn, const char *in, size_t len,
                       struct ap_slice *out)
{
    size_t cap = len * 2 + 128;
    r->redactions_counted = 0;
    for (int tries = 0; tries < 4; tries++) {
        char *buf = ap_arena_alloc(r->ctx->arena, cap);
        if (buf == NULL)
            return -ENOMEM;
        size_t olen = 0;
        int rc = fn(r, in, len, buf, cap, &olen);
        if (rc == 0) {
            *out = (struct ap_slice){buf, olen};
            return 0;
        }
        if (rc != -ENOBUFS)
            return rc;
        cap *= 4;
    }
    return -ENOBUFS;
}

/* ap_text_fn for the values of kept query parameters in the strict
 * profile: an e-mail address, phone number, IMEI or MAC address under any
 * parameter name becomes its pseudonym; a value that is an IP address is
 * truncated. Everything else is kept byte for byte (-EALREADY). */
static int detect_fn(void *vctx, const char *val, size_t len, char *out, size_t outcap)
{
    static const unsigned mask = (1u << AP_DETECT_EMAIL) | (1u << AP_DETECT_IP) |
                                 (1u << AP_DETECT_MAC) | (1u << AP_DETECT_IMEI) |
                                 (1u << AP_DETECT_PHONE);
    struct run *r = vctx;
    if (!ap_detect_may_match(mask, val, len))
        return -EALREADY;
    struct ap_detect_scan sc;
    struct ap_detect_match m;
    if (!ap_detect_scan_start(&sc, mask, val, len) || !ap_detect_scan_next(&sc, &m))
        return -EALREADY;
    if (m.kind == AP_DETECT_IP && m.off == 0 && m.len == len)
        return truncate_fn(r, val, len, out, outcap);
    return pseudo_fn(r, val, len, out, outcap);
}

static void observe_redaction(void *vctx, const char *what);

static void query_ctx(struct run *r, struct ap_query_ctx *q)
{
    memset(q, 0, sizeof(*q));
    r->redactions_seen = 0;
    if (r->ctx->audit || r->ctx->stats != NULL)
        q->observer = (struct ap_query_observer){NULL, r, observe_redaction};
    q->policy = &r->pol->query;
    q->site_host = r->site_host.p;
    q->site_host_len = r->site_host.len;
    q->pseudo = (struct ap_text_fn){pseudo_fn, r};
    q->pseudo_is_safe = true; /* lower-case hex digits */
    q->truncate_ip = (struct ap_text_fn){truncate_fn, r};
    if (r->pol->profile == AP_PROFILE_STRICT)
        q->keep_filter = (struct ap_text_fn){detect_fn, r};
}

static int rw_target(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    struct ap_query_ctx q;
    query_ctx(r, &q);
    return ap_query_rewrite_target(&q, in, len, out, cap, olen);
}

static void observe_param(void *vctx, const char *name, size_t len, enum ap_query_action a,
                          bool click_id);

/* rw_target that counts the parameters as it decides them. */
static int rw_target_counted(struct run *r, const char *in, size_t len, char *out, size_t cap,
                             size_t *olen)
{
    struct ap_query_ctx q;
    query_ctx(r, &q);
    q.observer.fn = observe_param;
    q.observer.ctx = r;
    r->params_seen = 0;
    return ap_query_rewrite_target(&q, in, len, out, cap, olen);
}

static void observe_cookie(void *vctx, const char *name, size_t len, enum ap_cookie_action a);

static int rw_cookie(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    /* pseudo_fn writes lower-case hex digits, cookie-octets all. */
    struct ap_cookie_ctx c = {&r->pol->cookies, {pseudo_fn, r}, true, {NULL, NULL}};
    if (r->ctx->audit || r->ctx->stats != NULL)
        c.observer = (struct ap_cookie_observer){observe_cookie, r};
    r->cookies_seen = 0;
    return ap_cookie_rewrite(&c, in, len, out, cap, olen);
}

static int rw_clean(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    return ap_query_clean_url(&r->pol->query, in, len, out, cap, olen);
}

static int rw_origin(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    return ap_query_origin(in, len, out, cap, olen);
}

static int rw_referrer(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    struct ap_query_ctx q;
    query_ctx(r, &q);
    if (r->pol->profile != AP_PROFILE_STRICT)
        return ap_query_referrer(&q, in, len, out, cap, olen);
    /* Strict: origin-only referrers; an external one is dropped. The
     * referrer module decides internal/external. */
    return ap_query_referrer_origin(&q, in, len, out, cap, olen);
}

static int rw_ua(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    return ap_ua_reduce(in, len, out, cap, olen);
}

static int rw_lang(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    return ap_lang_reduce(in, len, out, cap, olen);
}

static int rw_pseudo(struct run *r, const char *in, size_t len, char *out, size_t cap, size_t *olen)
{
    int n = pseudo_fn(r, in, len, out, cap);
    if (n < 0)
        return n;
    *olen = (size_t)n;
    return 0;
}

/* What happens to a header: REMOVED (an inbound client-address header),
 * or the first rule its name matches (*rule NULL: none, not allowed). */
enum header_class { HEADER_REMOVED, HEADER_RULE };

static int is_removed_address_header(const struct ap_policy *pol, struct ap_slice name)
{
    if (ap_clientaddr_is_address_header(name.p, name.len))
        return 1;
    for (size_t i = 0; i < pol->nremove_headers; i++)
        if (ap_slice_eq_ci(name, pol->remove_headers[i]))
            return 1;
    /* The outbound address header is always ours, never the client's. */
    return ap_slice_eq_ci(name, pol->addr_header);
}

static bool headers_compiled(const struct ap_policy *pol)
{
    return pol->header_set.magic == AP_TEXT_GLOBSET_MAGIC && pol->compiled_headers == pol->headers &&
           pol->compiled_nheaders == pol->nheaders && pol->compiled_addr_header == pol->addr_header &&
           pol->compiled_nremove_headers == pol->nremove_headers;
}

/* What the compiled header set says of a name: -2 removed, -1 no rule,
 * else the index of its rule in pol->headers. */
static int32_t set_class(const struct ap_policy *pol, struct ap_slice name)
{
    size_t removed = pol->header_set_removed;
    if (removed == 0 && is_removed_address_header(pol, name))
        return -2;
    /* One lookup: the removed names come first in the set. */
    size_t i = ap_text_globset_find(&pol->header_set, name.p, name.len);
    if (i < removed)
        return -2;
    return i != AP_TEXT_GLOBSET_NONE ? (int32_t)(i - removed) : -1;
}

int32_t ap_policy__header_class(const struct ap_policy *pol, struct ap_slice name, bool common)
{
    AP_CHECK_OBJ(pol, AP_POLICY_MAGIC);
    AP_BUG_ON(!headers_compiled(pol));
    int c = common ? common_header(name) : -1;
    return c >= 0 ? pol->common_class[c] : set_class(pol, name);
}

static enum header_class classify_header(const struct run *r, struct ap_slice name,
                                         const struct ap_header_rule **rule)
{
    const struct ap_policy *pol = r->pol;
    *rule = NULL;
    if (headers_compiled(pol)) {
        int c = common_header(name);
        int32_t k = c >= 0 ? pol->common_class[c] : set_class(pol, name);
        if (k == -2)
            return HEADER_REMOVED;
        if (k >= 0)
            *rule = &pol->headers[k];
        return HEADER_RULE;
    }
    if (is_removed_address_header(pol, name))
        return HEADER_REMOVED;
    for (size_t i = 0; i < pol->nheaders; i++) {
        if (ap_text_matches_glob(pol->headers[i].glob, name.p, name.len, AP_TEXT_NOCASE)) {
            *rule = &pol->headers[i];
            break;
        }
    }
    return HEADER_RULE;
}

static int append_header(struct run *r, const char *name, struct ap_slice value)
{
    struct ap_request *req = r->req;
    if (req->nheaders == req->headers_cap) {
        size_t nc = req->headers_cap * 2 + 8;
        struct ap_header *nh = ap_arena_alloc(r->ctx->arena, nc * sizeof(*nh));
        if (nh == NULL)
            return -ENOMEM;
        memcpy(nh, req->headers, req->nheaders * sizeof(*nh));
        req->headers = nh;
        req->headers_cap = nc;
    }
    req->headers[req->nheaders++] = (struct ap_header){{name, strlen(name)}, value, 0};
    return 0;
}

static void drop_header(struct run *r, struct ap_header *h, enum ap_audit_kind kind, const char *rule)
{
    h->flags |= AP_HEADER_DROPPED;
    count(r, kind, AP_ACT_DROP, h->name, rule);
}

/* ap_cookie_observer of the Cookie rewrite: counts each cookie as the
 * rewrite decides it, so the header is parsed once. A retry with a larger
 * buffer decides the same cookies again: those are counted once. */
static void observe_cookie(void *vctx, const char *name, size_t len, enum ap_cookie_action a)
{
    struct run *r = vctx;
    if (r->cookies_seen++ < r->cookies_counted)
        return;
    r->cookies_counted++;
    enum ap_audit_action act = a == AP_COOKIE_KEEP ? AP_ACT_KEEP
                               : a == AP_COOKIE_PSEUDO ? AP_ACT_PSEUDO
                                                       : AP_ACT_DROP;
    count(r, AP_AUDIT_COOKIE, act, (struct ap_slice){name, len}, "cookie rules");
}

/* Count one query parameter's decision. */
static void count_param(struct run *r, struct ap_slice name, enum ap_query_action a, bool click_id)
{
    static const enum ap_audit_action map[AP_QUERY_NACTIONS] = {
        [AP_QUERY_KEEP] = AP_ACT_KEEP,         [AP_QUERY_DROP] = AP_ACT_DROP,
        [AP_QUERY_PSEUDO] = AP_ACT_PSEUDO,     [AP_QUERY_TRUNCATE_IP] = AP_ACT_TRUNCATE,
        [AP_QUERY_CLEAN_URL] = AP_ACT_CLEAN,   [AP_QUERY_ORIGIN_ONLY] = AP_ACT_ORIGIN,
        [AP_QUERY_REFERRER] = AP_ACT_ORIGIN,
    };
    if (click_id) {
        count(r, AP_AUDIT_PARAM, AP_ACT_DROP, name, "click id");
        return;
    }
    /* The rewrite drops a parameter whose action it does not know. */
    enum ap_audit_action act = (unsigned)a < AP_QUERY_NACTIONS ? map[a] : AP_ACT_DROP;
    count(r, AP_AUDIT_PARAM, act, name, a == r->pol->query.default_action ? "default" : "query rules");
}

/* Per-parameter audit of the request target's query, from its parameter
 * number `skip` on (the ones before were counted as the rewrite decided
 * them). The names are taken as received: the query module decodes them
 * itself, as the rewrite does, so decoding here would audit another name. */
static void audit_params(struct run *r, struct ap_slice q, size_t skip)
{
    size_t i = 0, no = 0;
    while (i < q.len) {
        size_t s = i;
        const char *amp = memchr(q.p + i, '&', q.len - i);
        i = amp ? (size_t)(amp - q.p) : q.len;
        size_t e = i++;
        if (e == s || no++ < skip)
            continue;
        const char *eq = memchr(q.p + s, '=', e - s);
        struct ap_slice name = {q.p + s, eq ? (size_t)(eq - (q.p + s)) : e - s};
        bool click = ap_query_is_click_id(name.p, name.len);
        count_param(r, name, click ? AP_QUERY_DROP : ap_query_action_for(&r->pol->query, name.p, name.len),
                    click);
    }
}

/* ap_query_observer of the target's rewrite: counts each parameter as the
 * rewrite decides it, so the query is walked once. A retry with a larger
 * buffer decides the same parameters again: those are counted once. */
static void observe_param(void *vctx, const char *name, size_t len, enum ap_query_action a,
                          bool click_id)
{
    struct run *r = vctx;
    if (r->params_seen++ < r->params_counted)
        return;
    r->params_counted++;
    count_param(r, (struct ap_slice){name, len}, a, click_id);
}

/* ap_query_observer.redacted: counts each identifier cut out of a path,
 * once over the retries of one rewrite. */
static void observe_redaction(void *vctx, const char *what)
{
    struct run *r = vctx;
    if (r->redactions_seen++ < r->redactions_counted)
        return;
    r->redactions_counted++;
    count(r, AP_AUDIT_PATH, AP_ACT_REDACT, (struct ap_slice){what, strlen(what)},
          "strict: identifiers in paths");
}

/* Could the rewrite change this origin-form path (a detector may find an
 * identifier, or it is long enough to hold a token)? */
static bool path_may_change(const struct ap_policy *pol, struct ap_slice path)
{
    if (path.len == 0 || path.p[0] != '/')
        return false;
    if (pol->query.path_tokens && path.len > 16)
        return true;
    return pol->query.path_detect != 0 && ap_detect_may_match(pol->query.path_detect, path.p, path.len);
}

/* True when the rewrite of `t` (path and query) walks exactly the
 * parameters of req->query, so its decisions can be counted as the audit of
 * req->query. Always so for a request from ap_head_parse; a hand-made one
 * (a '#' in the target, a query slice elsewhere) is audited separately. */
static bool rewrite_walks_query(const struct ap_request *req, struct ap_slice t)
{
    if (t.len == 0 || t.p[0] != '/')
        return false;
    const char *q = memchr(t.p, '?', t.len);
    return q != NULL && q + 1 == req->query.p && t.p + t.len == req->query.p + req->query.len &&
           memchr(t.p, '#', t.len) == NULL;
}

static int set_client_address(struct run *r)
{
    const struct ap_policy *pol = r->pol;
    struct ap_engine_result *res = r->res;
    struct ap_slice none = {"", 0};
    char buf[AP_PSEUDO_HEX_MAX > AP_IP_STRLEN ? AP_PSEUDO_HEX_MAX : AP_IP_STRLEN];
    int n;
    switch (pol->addr_mode) {
    case AP_ADDR_DROP:
        count(r, AP_AUDIT_ADDRESS, AP_ACT_DROP, none, "client_address: drop");
        return 0;
    case AP_ADDR_PLACEHOLDER:
        count(r, AP_AUDIT_ADDRESS, AP_ACT_PLACEHOLDER, none, "client_address: placeholder");
        return append_header(r, pol->addr_header, (struct ap_slice){"0.0.0.0", 7});
    case AP_ADDR_TRUNCATE:
        n = ap_ip_format(&res->client_trunc, buf, sizeof(buf));
        count(r, AP_AUDIT_ADDRESS, AP_ACT_TRUNCATE, none, "client_address: truncate");
        break;
    case AP_ADDR_PSEUDO: {
        char ipbuf[AP_IP_STRLEN];
        int l = ap_ip_format(&res->client, ipbuf, sizeof(ipbuf));
        n = l < 0 ? l : pseudonymise(r, ipbuf, (size_t)l, buf, sizeof(buf), false);
        count(r, AP_AUDIT_ADDRESS, AP_ACT_PSEUDO, none, "client_address: pseudonymise");
        break;
    }
    default:
        return 0;
    }
    if (n <= 0)
        return 0; /* nothing safe to say: no header */
    char *v = ap_arena_strndup(r->ctx->arena, buf, (size_t)n);
    if (v == NULL)
        return -ENOMEM;
    return append_header(r, pol->addr_header, (struct ap_slice){v, (size_t)n});
}

int ap_engine_rewrite(const struct ap_policy *pol, struct ap_engine_ctx *ctx, const struct ap_ip *peer,
                      struct ap_request *req, struct ap_engine_result *res)
{
    AP_CHECK_OBJ(pol, AP_POLICY_MAGIC);
    AP_CHECK_OBJ(req, AP_REQUEST_MAGIC);
    memset(res, 0, sizeof(*res));
    struct ap_pseudo_batch batch;
    ap_pseudo_batch_init(&batch);
    struct run r = {pol, ctx, req, res, {NULL, 0}, {NULL, 0}, 0, 0, 0, 0, 0, 0, &batch};
    if (ctx->stats != NULL)
        ctx->stats->requests++;

    /* Site: the pseudonym scope and the "internal referrer" host. */
    r.site_host = req->host;
    if (r.site_host.len > 0) {
        /* The port goes, also after an IPv6 literal, whose brackets stay:
         * "[::1]:8443" and "[::1]" are one site, as "a:8443" and "a" are. */
        const char *from = r.site_host.p;
        if (from[0] == '[') {
            const char *rb = memchr(from, ']', r.site_host.len);
            from = rb != NULL ? rb : from + r.site_host.len;
        }
        const char *colon = memchr(from, ':', (size_t)(r.site_host.p + r.site_host.len - from));
        if (colon != NULL)
            r.site_host.len = (size_t)(colon - r.site_host.p);
    }
    if (pol->site_id != NULL)
        r.scope = (struct ap_slice){pol->site_id, strlen(pol->site_id)};
    else
        r.scope = r.site_host;
    res->scope = r.scope;

    /* Client address: decided before any header is touched. */
    struct ap_clientaddr_result ca;
    if (pol->clientaddr != NULL && peer != NULL &&
        ap_clientaddr_resolve(pol->clientaddr, peer, req->headers, req->nheaders, &ca) == 0) {
        res->client = ca.addr;
        res->stop = ca.stop;
    } else if (peer != NULL) {
        res->client = *peer;
        ap_ip_unmap(&res->client);
    }
    if (res->client.family != 0)
        ap_ip_truncate(&res->client_trunc, &res->client, pol->v4_prefix, pol->v6_prefix);

    int rc = 0;
    for (size_t i = 0; i < req->nheaders && rc == 0; i++) {
        struct ap_header *h = &req->headers[i];
        if (h->flags & (AP_HEADER_CONNECTION_NAMED | AP_HEADER_DROPPED))
            continue;
        const struct ap_header_rule *rule;
        if (classify_header(&r, h->name, &rule) == HEADER_REMOVED) {
            drop_header(&r, h, AP_AUDIT_HEADER, "client address header");
            continue;
        }
        if (rule == NULL) {
            drop_header(&r, h, AP_AUDIT_HEADER, "not in the allowlist");
            continue;
        }
        struct ap_slice out;
        enum ap_audit_action act = AP_ACT_KEEP;
        rewrite_fn fn = NULL;
        switch (rule->action) {
        case AP_HDR_KEEP:
            count(&r, AP_AUDIT_HEADER, AP_ACT_KEEP, h->name, rule->origin);
            continue;
        case AP_HDR_DROP:
            drop_header(&r, h, AP_AUDIT_HEADER, rule->origin);
            continue;
        case AP_HDR_SET:
            h->value = (struct ap_slice){rule->value, strlen(rule->value)};
            count(&r, AP_AUDIT_HEADER, AP_ACT_SET, h->name, rule->origin);
            continue;
        case AP_HDR_PSEUDO: fn = rw_pseudo; act = AP_ACT_PSEUDO; break;
        case AP_HDR_REDUCE_UA: fn = rw_ua; act = AP_ACT_REDUCE; break;
        case AP_HDR_REDUCE_LANG: fn = rw_lang; act = AP_ACT_REDUCE; break;
        case AP_HDR_REFERRER: fn = rw_referrer; act = AP_ACT_ORIGIN; break;
        case AP_HDR_CLEAN_URL: fn = rw_clean; act = AP_ACT_CLEAN; break;
        case AP_HDR_ORIGIN: fn = rw_origin; act = AP_ACT_ORIGIN; break;
        case AP_HDR_COOKIE: fn = rw_cookie; act = AP_ACT_PSEUDO; break;
        default:
            drop_header(&r, h, AP_AUDIT_HEADER, rule->origin);
            continue;
        }
        r.cookies_counted = 0;
        int wr = run_rewrite(&r, fn, h->value.p, h->value.len, &out);
        if (wr == -ENOMEM) {
            rc = wr;
            break;
        }
        if (wr != 0 || out.len == 0) {
            /* Failing closed: a value that cannot be rewritten is dropped. */
            drop_header(&r, h, AP_AUDIT_HEADER, rule->origin);
            continue;
        }
        h->value = out;
        if (rule->action != AP_HDR_COOKIE)
            count(&r, AP_AUDIT_HEADER, act, h->name, rule->origin);
    }

    /* Headers that a rule sets and the request did not carry. One the
     * client named in Connection is never forwarded, so it counts as not
     * carried: otherwise a client could suppress a header the policy sets. */
    for (size_t k = 0; k < pol->nheaders && rc == 0; k++) {
        const struct ap_header_rule *rule = &pol->headers[k];
        if (rule->action != AP_HDR_SET || strpbrk(rule->glob, "*?") != NULL)
            continue;
        size_t i = 0;
        while (i < req->nheaders && ((req->headers[i].flags & AP_HEADER_CONNECTION_NAMED) ||
                                     !ap_slice_eq_ci(req->headers[i].name, rule->glob)))
            i++;
        if (i < req->nheaders)
            continue;
        rc = append_header(&r, rule->glob, (struct ap_slice){rule->value, strlen(rule->value)});
        if (rc == 0)
            count(&r, AP_AUDIT_HEADER, AP_ACT_SET, req->headers[req->nheaders - 1].name, rule->origin);
    }

    if (rc == 0)
        rc = set_client_address(&r);

    /* The target's query, and its path when something in it may have to
     * go. */
    if (rc == 0 && (req->query.p != NULL || path_may_change(pol, req->path))) {
        const char *tend = req->target.p + req->target.len;
        struct ap_slice t = {req->path.p, (size_t)(tend - req->path.p)};
        struct ap_slice out;
        rewrite_fn fn = rw_target;
        if (ctx->audit || ctx->stats != NULL) {
            /* One walk decides and counts; otherwise the audit walks first. */
            if (rewrite_walks_query(req, t))
                fn = rw_target_counted;
            else
                audit_params(&r, req->query, 0);
        }
        int wr = run_rewrite(&r, fn, t.p, t.len, &out);
        /* A failed rewrite may have stopped early: the audit still names
         * every parameter. */
        if (fn == rw_target_counted && wr != 0)
            audit_params(&r, req->query, r.params_counted);
        if (wr == -ENOMEM) {
            rc = wr;
        } else if (wr != 0) {
            /* Unrewritable: forward the path alone. */
            req->target = req->path;
            req->query = (struct ap_slice){NULL, 0};
        } else {
            req->target = out;
            req->path = out;
            const char *q = memchr(out.p, '?', out.len);
            if (q != NULL) {
                req->path.len = (size_t)(q - out.p);
                req->query = (struct ap_slice){q + 1, (size_t)(out.p + out.len - q - 1)};
            } else {
                req->query = (struct ap_slice){NULL, 0};
            }
        }
    }
    /* Every placeholder gets its digits, also after an error. */
    ap_pseudo_batch_flush(&batch);
    if (rc != 0 && ctx->stats != NULL)
        ctx->stats->errors++;
    return rc;
}

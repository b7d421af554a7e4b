/* Types of a route's privacy policy and of the audit the engine writes. */
#ifndef ANONPROXY_POLICY_T_H
#define ANONPROXY_POLICY_T_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/clientaddr-t.h"
#include "anonproxy/cookie-t.h"
#include "anonproxy/http-t.h"
#include "anonproxy/ip-t.h"
#include "anonproxy/query-t.h"
#include "anonproxy/text-t.h"

enum ap_profile {
    AP_PROFILE_STRICT = 0, /* the default: the CNIL's conditions for analytics proxies */
    AP_PROFILE_BALANCED,
};

/* What reaches the backend as the client's address. */
enum ap_addr_mode {
    AP_ADDR_DROP = 0,    /* no address header at all */
    AP_ADDR_PLACEHOLDER, /* "0.0.0.0", so the backend does not geolocate the proxy */
    AP_ADDR_TRUNCATE,    /* prefix per family (default /24, /48) */
    AP_ADDR_PSEUDO,      /* pseudonym of the full address */
};

/* What happens to one request header. */
enum ap_hdr_action {
    AP_HDR_KEEP = 0,
    AP_HDR_DROP,
    AP_HDR_SET,        /* replaced (or added) with a constant */
    AP_HDR_PSEUDO,     /* value replaced by its pseudonym */
    AP_HDR_REDUCE_UA,  /* User-Agent to Chrome's reduced form */
    AP_HDR_REDUCE_LANG,/* Accept-Language to its first primary tag */
    AP_HDR_REFERRER,   /* internal: URL cleaned; external: origin, or dropped (strict) */
    AP_HDR_CLEAN_URL,  /* query and fragment removed but for url_keep */
    AP_HDR_ORIGIN,     /* reduced to scheme://host[:port] */
    AP_HDR_COOKIE,     /* per-cookie rules */
    AP_HDR_NACTIONS
};

/* One header rule: headers whose name matches `glob` (case-insensitive,
 * '*' and '?') get `action`. Rules are tried in order; the route's own rules
 * come before its profile's allowlist; a header no rule names is dropped. */
struct ap_header_rule {
    char *glob;
    enum ap_hdr_action action;
    char *value;        /* AP_HDR_SET */
    const char *origin; /* "route NAME" or "profile NAME": for the audit */
};

#define AP_POLICY_MAGIC 0x504f4c31u /* "POL1" */

/* A route's privacy policy: built once from the configuration (it mallocs)
 * and read-only afterwards, shared by every worker. */
/* The number of common header names classified in advance (policy.c). */
#define AP_POLICY_COMMON_HEADERS 40

struct ap_policy {
    unsigned magic;
    char *name;                   /* route name */
    enum ap_profile profile;
    char *site_id;                /* pseudonym scope; NULL: the request's Host */
    unsigned pseudo_bits;         /* default 64 */
    enum ap_addr_mode addr_mode;
    unsigned v4_prefix, v6_prefix;/* AP_ADDR_TRUNCATE; default 24 and 48 */
    char *addr_header;            /* outbound address header; default X-Forwarded-For */
    char **remove_headers;        /* more inbound address headers to remove */
    size_t nremove_headers;
    const struct ap_clientaddr_config *clientaddr; /* borrowed from the config */
    struct ap_header_rule *headers;
    size_t nheaders;
    struct ap_cookie_rule *cookie_rules;
    size_t ncookie_rules;
    struct ap_cookie_policy cookies;
    struct ap_query_rule *query_rules;
    size_t nquery_rules;
    char **url_keep;
    size_t nurl_keep;
    struct ap_query_policy query;
    char **hdr_origin_strs;       /* owned copies of rule origins */
    size_t nhdr_origin_strs;
    /* Built by ap_policy_finish from `headers` as they were then
     * (case-insensitive): a header name costs one hash, not a glob match
     * per rule. Rules added afterwards are still honoured: the engine then
     * matches one glob at a time. When header_set_removed > 0, the set
     * begins with that many names of inbound client-address headers (those
     * of ap_clientaddr_is_address_header, remove_headers, addr_header as
     * they were then), so one lookup also tells that a header is removed. */
    struct ap_text_globset header_set;
    const struct ap_header_rule *compiled_headers;
    size_t compiled_nheaders;
    size_t header_set_removed;
    const char *compiled_addr_header;
    size_t compiled_nremove_headers;
    /* What header_set says of each name policy.c knows as common (User-Agent,
     * Accept...), worked out with the set: most headers of a request are
     * classified by one small table look-up. -2: removed; -1: no rule; else
     * the index in `headers`. */
    int32_t common_class[AP_POLICY_COMMON_HEADERS];
};

/* What a rule did, for the audit and the counters. */
enum ap_audit_kind {
    AP_AUDIT_ADDRESS = 0, /* the client address */
    AP_AUDIT_HEADER,
    AP_AUDIT_COOKIE,
    AP_AUDIT_PARAM,       /* a query parameter of the request target */
    AP_AUDIT_PATH,        /* an identifier in a path (the target's or a URL's) */
    AP_AUDIT_NKINDS
};

enum ap_audit_action {
    AP_ACT_KEEP = 0,
    AP_ACT_DROP,
    AP_ACT_SET,
    AP_ACT_PSEUDO,
    AP_ACT_TRUNCATE,
    AP_ACT_REDUCE,
    AP_ACT_CLEAN,
    AP_ACT_ORIGIN,
    AP_ACT_PLACEHOLDER,
    AP_ACT_REDACT,
    AP_ACT_NACTIONS
};

struct ap_audit_entry {
    enum ap_audit_kind kind;
    enum ap_audit_action action;
    struct ap_slice name; /* header, cookie or parameter name as received */
    const char *rule;     /* NUL-terminated description of the deciding rule */
};

/* Per-worker counters of rule actions, exported as metrics later. */
struct ap_engine_stats {
    uint64_t actions[AP_AUDIT_NKINDS][AP_ACT_NACTIONS];
    uint64_t requests;
    uint64_t errors;
};

/* Everything the engine needs besides the policy and the request. Lives as
 * long as the worker; `arena` is the request's. */
struct ap_engine_ctx {
    struct ap_pseudo_keyring *keyring; /* the worker's; NULL: pseudonymised values are dropped */
    int64_t now;                       /* seconds since the epoch (UTC day of keys) */
    struct ap_arena *arena;            /* outputs are allocated here */
    struct ap_engine_stats *stats;     /* may be NULL */
    unsigned audit : 1;                /* record every decision (explain) */
};

/* What the engine decided besides the rewritten request. */
struct ap_engine_result {
    struct ap_ip client;       /* full client address: for geolocation only, then forgotten */
    struct ap_ip client_trunc; /* truncated by the policy's prefixes: safe for logs */
    enum ap_clientaddr_stop stop;
    struct ap_audit_entry *audit;
    size_t naudit, capaudit;
    struct ap_slice scope;     /* pseudonym scope: site_id, or the Host without port */
};

#endif

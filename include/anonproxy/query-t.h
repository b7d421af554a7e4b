/* Types of the query-string rewriter (proxy/engine/query.c). */
#ifndef ANONPROXY_QUERY_T_H
#define ANONPROXY_QUERY_T_H

#include <stdbool.h>
#include <stddef.h>

#include "anonproxy/detect-t.h"
#include "anonproxy/text-t.h"

/* What happens to one query parameter. A parameter without a value ("a" or
 * "a=") is kept unchanged by every action except AP_QUERY_DROP: there is
 * nothing in it to rewrite. */
enum ap_query_action {
    AP_QUERY_KEEP = 0,     /* copied byte for byte */
    AP_QUERY_DROP,         /* removed with its '&' */
    AP_QUERY_PSEUDO,       /* value replaced by ctx->pseudo's output */
    AP_QUERY_TRUNCATE_IP,  /* value replaced by ctx->truncate_ip's output */
    AP_QUERY_CLEAN_URL,    /* value is a URL: query and fragment removed but for policy->url_keep */
    AP_QUERY_ORIGIN_ONLY,  /* value is a URL: reduced to scheme://host[:port] */
    AP_QUERY_REFERRER,     /* value is a referrer URL: same host as the site: CLEAN_URL;
                              another host: ORIGIN_ONLY, or DROP with strict_referrer */
    AP_QUERY_NACTIONS
};

/* One line of the action table: parameters whose percent-decoded name
 * matches `glob` ('*' any run, '?' one byte; case-sensitive) get `action`. */
struct ap_query_rule {
    const char *glob; /* NUL-terminated; owned by whoever owns the policy */
    enum ap_query_action action;
};

#define AP_QUERY_POLICY_MAGIC 0x51504f31u /* "QPO1" */

/* The action table. Built once (from the configuration) and then shared
 * read-only by every worker: the rewriters never change it. Every pointer
 * must stay valid as long as the policy is used. Start from
 * ap_query_policy_init, which sets the magic and the defaults.
 *
 * Order of decision for a parameter:
 *   1. its decoded name is a click id (ap_query_is_click_id): dropped, always;
 *   2. the first rule whose glob matches the decoded name gives the action;
 *   3. otherwise default_action. */
struct ap_query_policy {
    unsigned magic;
    const struct ap_query_rule *rules; /* first match wins */
    size_t nrules;
    enum ap_query_action default_action; /* unlisted names; default AP_QUERY_KEEP */
    /* Globs of the parameters that CLEAN_URL keeps in the query of a URL (click
     * ids are dropped even when they match). NULL: utm_source, utm_medium and
     * utm_campaign. A non-NULL list with nurl_keep == 0 keeps nothing. */
    const char *const *url_keep;
    size_t nurl_keep;
    unsigned strict_referrer : 1; /* REFERRER drops external referrers */
    /* Detector kinds (1u << enum ap_detect_kind) that disqualify a parameter
     * CLEAN_URL would keep: an e-mail in utm_source is dropped with it. 0:
     * kept values are not read. */
    unsigned clean_url_detect;
    /* Detector kinds whose matches are cut out of paths: of the request
     * target, of URL values (url=, dl=...) and of cleaned URLs. Each match
     * becomes AP_QUERY_REDACTED, as GA4's URL redaction does, so that
     * "/user/jane@example.com/orders" reaches the backend as
     * "/user/(redacted)/orders". 0: paths are kept byte for byte. */
    unsigned path_detect;
    /* Cut tokens out of paths too (ap_query_path_token): UUIDs, runs of 16
     * or more hex digits, long random-looking strings. */
    bool path_tokens;
    /* Built by ap_query_policy_compile from rules and url_keep as they were
     * then (the compiled_* fields remember which): lookups take one hash
     * of the name instead of a glob match per rule. A policy that was never
     * compiled, or whose rules or url_keep changed since, is matched one
     * glob at a time, with the same result. */
    struct ap_text_globset rule_set;
    struct ap_text_globset keep_set;
    const struct ap_query_rule *compiled_rules;
    size_t compiled_nrules;
    const char *const *compiled_url_keep;
    size_t compiled_nurl_keep;
};

/* Told how the rewrite of a request target or query decided each of its
 * parameters (ap_query_rewrite_target, ap_query_rewrite_url,
 * ap_query_rewrite), in order, before the parameter is written: `name` is
 * the name as received (percent-encoded, a slice of the input), `action`
 * what the policy gives it and `click_id` whether that is because it is a
 * click id. Parameters inside URL values are not reported. A call that
 * fails with -ENOBUFS may have reported some parameters; a retry reports
 * them again from the first. */
struct ap_query_observer {
    void (*fn)(void *ctx, const char *name, size_t len, enum ap_query_action action, bool click_id);
    void *ctx;
    /* Told of each identifier cut out of a path (policy->path_detect,
     * path_tokens), also inside URL values, with what it was: a detector
     * kind's name ("email") or "token"; NULL: nobody is told. A retry after
     * -ENOBUFS reports them again from the first, as `fn` does. */
    void (*redacted)(void *ctx, const char *what);
};

/* What an identifier cut out of a path is replaced with. */
#define AP_QUERY_REDACTED "(redacted)"

/* Everything one rewrite needs besides its input. Lives on the caller's
 * stack for one call; nothing in it is kept. */
struct ap_query_ctx {
    const struct ap_query_policy *policy;
    /* Host of the site the request is for (its Host header; a port is
     * ignored). A referrer is internal when its host is equal to it, compared
     * case-insensitively; NULL or empty: every referrer is external. */
    const char *site_host;
    size_t site_host_len;
    struct ap_text_fn pseudo;      /* AP_QUERY_PSEUDO; fn NULL: such parameters are dropped */
    /* pseudo writes only unreserved bytes (ap_text_is_unreserved; hex
     * digits): its output is not percent-encoded, and not even read, which
     * lets the processor go on while a keyed hash is still being computed. */
    bool pseudo_is_safe;
    struct ap_text_fn truncate_ip; /* AP_QUERY_TRUNCATE_IP; fn NULL: dropped */
    /* Values of parameters kept by AP_QUERY_KEEP pass through this filter
     * when set (value detectors: an e-mail or phone number under any name).
     * fn gets the raw (still percent-encoded) value and returns the length
     * of a URL-safe replacement written to `out`, -EALREADY to keep the value
     * byte for byte (the common case), -ENOBUFS, or another negative errno
     * to drop the parameter. fn NULL: values are kept unread. */
    struct ap_text_fn keep_filter;
    struct ap_query_observer observer; /* fn NULL: nobody is told */
};

#endif

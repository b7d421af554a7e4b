/* Types of the Cookie header rewriter (proxy/engine/cookie.c). */
#ifndef ANONPROXY_COOKIE_T_H
#define ANONPROXY_COOKIE_T_H

#include <stddef.h>

#include "anonproxy/text-t.h"

enum ap_cookie_action {
    AP_COOKIE_DROP = 0, /* the default: a cookie nobody listed does not leave */
    AP_COOKIE_KEEP,     /* copied byte for byte */
    AP_COOKIE_PSEUDO,   /* value replaced by ctx->pseudo's output */
    AP_COOKIE_NACTIONS
};

/* Cookies whose name matches `glob` ('*' any run, '?' one byte;
 * case-sensitive, as cookie names are) get `action`. */
struct ap_cookie_rule {
    const char *glob; /* NUL-terminated; owned by whoever owns the policy */
    enum ap_cookie_action action;
};

#define AP_COOKIE_POLICY_MAGIC 0x43504f31u /* "CPO1" */

/* Built once from the configuration, then shared read-only. Start from
 * ap_cookie_policy_init. The first matching rule wins; names no rule
 * matches get default_action (AP_COOKIE_DROP unless changed). */
struct ap_cookie_policy {
    unsigned magic;
    const struct ap_cookie_rule *rules;
    size_t nrules;
    enum ap_cookie_action default_action;
    /* Built by ap_cookie_policy_compile from rules as they were then: a
     * lookup takes one hash of the name. A policy never compiled, or whose
     * rules changed since, is matched one glob at a time, with the same
     * result. */
    struct ap_text_globset rule_set;
    const struct ap_cookie_rule *compiled_rules;
    size_t compiled_nrules;
};

/* Told about each cookie as the rewrite decides it: its name (trimmed) and
 * what happens to it. A cookie the rewrite cannot read (a name that is not
 * a token, a value with control bytes) is reported as AP_COOKIE_DROP. */
struct ap_cookie_observer {
    void (*fn)(void *ctx, const char *name, size_t len, enum ap_cookie_action action);
    void *ctx;
};

/* One rewrite's context, on the caller's stack. */
struct ap_cookie_ctx {
    const struct ap_cookie_policy *policy;
    struct ap_text_fn pseudo; /* AP_COOKIE_PSEUDO; fn NULL: such cookies are dropped */
    /* pseudo writes only cookie-octets (hex digits): its output is not
     * checked, and not even read, which lets the processor go on while a
     * keyed hash is still being computed. */
    bool pseudo_is_safe;
    struct ap_cookie_observer observer; /* fn NULL: nobody is told */
};

#endif

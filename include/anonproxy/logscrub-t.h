/* Types of log record anonymisation (proxy/engine/logscrub.c): what
 * happens to each field of an application's log record. */
#ifndef ANONPROXY_LOGSCRUB_T_H
#define ANONPROXY_LOGSCRUB_T_H

#include <stddef.h>
#include <stdint.h>

/* What happens to a field, chosen by its name. */
enum ap_logscrub_action {
    AP_LOGSCRUB_TEXT = 0, /* free text: the value detectors replace what they find (default) */
    AP_LOGSCRUB_KEEP,     /* copied as it is */
    AP_LOGSCRUB_DROP,     /* the field is removed */
    AP_LOGSCRUB_ADDRESS,  /* IP address(es): truncated or pseudonymised as the route's client_address says */
    AP_LOGSCRUB_PSEUDO,   /* an identifier: replaced by its pseudonym */
    AP_LOGSCRUB_UA,       /* a User-Agent: reduced */
    AP_LOGSCRUB_URL,      /* a URL: userinfo, fragment and query cleaned (url_keep) */
    AP_LOGSCRUB_NACTIONS
};

/* A field rule: fields whose name matches `glob` (case-insensitive, '*'
 * and '?') get `action`. A route's rules come before the built-in ones. */
struct ap_logscrub_rule {
    char *glob;
    enum ap_logscrub_action action;
};

/* Counters of one thread's scrubbing. */
struct ap_logscrub_stats {
    uint64_t records;
    uint64_t fields[AP_LOGSCRUB_NACTIONS];
    uint64_t detections; /* values found and replaced inside free text */
    uint64_t rejected;   /* records that were not valid JSON */
};

struct ap_policy;
struct ap_pseudo_keyring;

/* Everything a scrub needs; lives on the caller's stack. */
struct ap_logscrub_ctx {
    const struct ap_policy *policy;          /* address mode, prefixes, pseudonym bits, url_keep */
    const struct ap_logscrub_rule *rules;    /* the route's own, may be NULL */
    size_t nrules;
    struct ap_pseudo_keyring *keyring;       /* the calling thread's; NULL: pseudonymised values are dropped */
    int64_t now;                             /* seconds since the epoch: the pseudonyms' day */
    const char *scope;                       /* pseudonym scope (the route's site_id or name) */
    struct ap_logscrub_stats *stats;         /* may be NULL */
};

#endif

/* Types of the body rewriter (proxy/engine/body.c, bodypath.c, bodywalk.c,
 * bodypreset.c): a route's body policy (path rules, detectors, limits), the
 * per-call context, and the result the network layer acts on. */
#ifndef ANONPROXY_BODY_T_H
#define ANONPROXY_BODY_T_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/arena-t.h"
#include "anonproxy/detect-t.h"
#include "anonproxy/query-t.h"
#include "anonproxy/text-t.h"

/* What a rule does to every value its path matches. */
enum ap_body_action {
    AP_BODY_KEEP = 0,     /* forwarded as it is; detectors skip it (and everything under it) */
    AP_BODY_DROP,         /* member, element or parameter removed */
    AP_BODY_PSEUDO,       /* strings and numbers: replaced by the pseudonym (a string) */
    AP_BODY_TRUNCATE_IP,  /* an address (with or without a port): truncated; anything else dropped */
    AP_BODY_CLEAN_URL,    /* a URL: query reduced to the url_keep list, fragment and userinfo removed */
    AP_BODY_ORIGIN_ONLY,  /* a URL: scheme://host[:port]; not a URL: dropped */
    AP_BODY_REDUCE_UA,    /* a User-Agent: reduced as the header is */
    AP_BODY_SET,          /* replaced by the rule's constant */
    AP_BODY_ROUND,        /* a number (or numeric string, or ISO 8601 time): rounded down */
    AP_BODY_GEO,          /* replaced by (or, when absent, given) the context's geo object */
    AP_BODY_NACTIONS
};

/* A layer step of a path: the string value holds an encoded document. */
enum ap_body_layer {
    AP_BODY_LAYER_NONE = 0,
    AP_BODY_LAYER_JSON,       /* ">json": JSON text in a string */
    AP_BODY_LAYER_BASE64JSON, /* ">base64json": base64 or base64url of JSON text */
    AP_BODY_LAYER_URL,        /* ">url": a URL (or bare query string); steps name its parameters */
    AP_BODY_NLAYERS
};

/* One step of a compiled path. */
enum ap_bodypath_op {
    AP_BODYPATH_KEY = 0, /* .name or ["name"]: an object member or parameter, exact bytes */
    AP_BODYPATH_GLOB,    /* .na*e: a member whose name matches the glob ('*', '?') */
    AP_BODYPATH_ANY,     /* .* or [*]: every member, element or parameter */
    AP_BODYPATH_INDEX,   /* [3]: an array element */
    AP_BODYPATH_LAYER,   /* >json, >base64json, >url */
};

struct ap_bodypath_step {
    enum ap_bodypath_op op;
    unsigned recursive : 1; /* "..": matches at any depth below (within one layer) */
    enum ap_body_layer layer;
    uint32_t index;         /* AP_BODYPATH_INDEX */
    const char *name;       /* KEY, GLOB: NUL-terminated, owned by the rule */
    size_t name_len;
};

/* Arguments of AP_BODY_ROUND. */
enum ap_body_round_unit {
    AP_BODY_ROUND_STEP = 0, /* numbers to a multiple of `step` */
    AP_BODY_ROUND_MINUTE,   /* epoch seconds or milliseconds, or ISO 8601 text */
    AP_BODY_ROUND_HOUR,
    AP_BODY_ROUND_DAY,
};

/* One rule of a body policy. */
struct ap_body_rule {
    char *text;                     /* the path as written, for errors and the audit */
    struct ap_bodypath_step *steps; /* owned */
    size_t nsteps;
    enum ap_body_action action;
    char *set_json;                 /* AP_BODY_SET: a JSON value (a string constant is quoted) */
    char *set_plain;                /* AP_BODY_SET: the same constant in forms and URLs */
    enum ap_body_round_unit round_unit;
    uint64_t round_step;            /* AP_BODY_ROUND_STEP: > 0 */
    const char *origin;             /* "route" or "preset NAME": for the audit; static */
    uint32_t state_base;            /* first matcher state of the rule (set by finish) */
};

/* A route's own regular expression (PCRE2), run like a detector. */
struct ap_body_regex {
    char *pattern;
    void *code; /* pcre2_code_8 *; opaque here so this header needs no PCRE2 */
    enum ap_body_action action; /* AP_BODY_PSEUDO (the match) or AP_BODY_DROP (the value) */
};

/* A query parameter that says how the body is compressed, e.g. PostHog's
 * compression=gzip-js. */
struct ap_body_qflag {
    char *name;
    char *value;
    int encoding; /* enum ap_body_encoding */
};

/* What the body does when it is not what its Content-Type promises. */
enum ap_body_on_invalid {
    AP_BODY_INVALID_REJECT = 0, /* 400 (or 415): the request is refused */
    AP_BODY_INVALID_DROP_BODY,  /* forwarded with an empty body */
};

/* What a Content-Type the rewriter cannot read gets. */
enum ap_body_on_unsupported {
    AP_BODY_UNSUPPORTED_REJECT = 0, /* 415 */
    AP_BODY_UNSUPPORTED_DROP_BODY,  /* forwarded with an empty body */
    AP_BODY_UNSUPPORTED_PASS,       /* forwarded as it is: only for routes that allow it */
};

enum ap_body_encoding {
    AP_BODY_ENC_IDENTITY = 0,
    AP_BODY_ENC_GZIP,
    AP_BODY_ENC_DEFLATE,
};

#define AP_BODY_POLICY_MAGIC 0x424f4459u /* "BODY" */

/* Defaults of the limits (see ap_body_policy_init). */
#define AP_BODY_MAX_BODY_DEFAULT (1u << 20)      /* bytes as received */
#define AP_BODY_MAX_INFLATED_DEFAULT (8u << 20)  /* bytes after decompression */
#define AP_BODY_MAX_RATIO_DEFAULT 100u           /* inflated / compressed */
#define AP_BODY_RATIO_FLOOR (64u << 10)          /* the ratio is enforced past this size */
#define AP_BODY_MAX_DEPTH_DEFAULT 64u            /* nesting of containers and layers */
#define AP_BODY_MAX_DEPTH_LIMIT 512u
#define AP_BODY_MAX_LAYERS 8u                    /* layers inside layers */

/* A route's body policy. Built once from the configuration (it mallocs),
 * then read-only and shared by every worker. */
struct ap_body_policy {
    unsigned magic;
    struct ap_body_rule *rules; /* in priority order: the first rule matching a value wins */
    size_t nrules;
    struct ap_body_regex *regexes;
    size_t nregexes;
    struct ap_body_qflag *qflags;
    size_t nqflags;
    enum ap_body_action detect[AP_DETECT_NKINDS]; /* KEEP = off; REGEX unused */
    uint64_t max_body;
    uint64_t max_inflated;
    unsigned max_ratio;       /* 0: no ratio check */
    unsigned max_depth;
    enum ap_body_on_invalid on_invalid;
    enum ap_body_on_unsupported on_unsupported;
    unsigned recompress : 1;  /* compress the rewritten body again, as it came */
    unsigned gzip_magic : 1;  /* a body starting with 1f 8b 08 and no header is gzip */
    unsigned finished : 1;
    unsigned v4_prefix, v6_prefix; /* AP_BODY_TRUNCATE_IP and the IP detector */
    /* The matcher, built by ap_body_policy_finish: state k is step
     * (state_map[k] & 0xff) of rule (state_map[k] >> 8); a state whose step
     * equals the rule's nsteps means "this value matches the rule". */
    uint32_t nstates;
    uint32_t *state_map;
    const struct ap_bodypath_step **state_steps; /* the step of each state; NULL: "matches" */
    uint16_t *root_states;         /* step 0 of every rule */
    uint32_t nroot;
};

/* Per-worker counters. */
struct ap_body_stats {
    uint64_t bodies;
    uint64_t rewritten;                     /* bodies whose bytes changed */
    uint64_t actions[AP_BODY_NACTIONS];     /* rule decisions */
    uint64_t detections[AP_DETECT_NKINDS];  /* detector findings */
    uint64_t inflated;                      /* bodies decompressed */
    uint64_t rejected_400, rejected_413, rejected_415, dropped_bodies;
};

/* Everything one call needs besides the policy and the body. Lives on the
 * caller's stack; nothing in it is kept. */
struct ap_body_ctx {
    struct ap_arena *arena;        /* outputs and scratch memory; must hold a few times the body */
    struct ap_text_fn pseudo;      /* the engine's HMAC pseudonyms; fn NULL: such values are dropped */
    const struct ap_query_policy *url_policy; /* url_keep of CLEAN_URL; NULL: the defaults */
    const char *geo_json;          /* AP_BODY_GEO: a JSON object; NULL: geo values are dropped */
    size_t geo_len;
    const char *query;             /* the request's query (after '?'), for compression flags */
    size_t query_len;
    struct ap_body_stats *stats;   /* may be NULL */
    unsigned audit : 1;            /* record every decision in out->audit */
};

enum ap_body_format {
    AP_BODY_FMT_EMPTY = 0,
    AP_BODY_FMT_JSON,
    AP_BODY_FMT_NDJSON,
    AP_BODY_FMT_FORM,       /* application/x-www-form-urlencoded */
    AP_BODY_FMT_FORM_LINES, /* text/plain lines of query strings (GA4 batches) */
    AP_BODY_FMT_TEXT,       /* other text/plain: detectors only */
    AP_BODY_FMT_OTHER,      /* a type the rewriter does not read */
    AP_BODY_NFORMATS
};

enum ap_body_verdict {
    AP_BODY_FORWARD = 0,  /* forward out->body (out->len bytes) */
    AP_BODY_FORWARD_EMPTY,/* forward the request with an empty body (on_invalid: drop-body) */
    AP_BODY_REJECT,       /* answer out->status, forward nothing */
};

/* One decision, for `anonproxy explain` and the counters. */
struct ap_body_audit {
    enum ap_body_action action;
    enum ap_detect_kind detector; /* AP_DETECT_NKINDS when a rule decided */
    const char *path;             /* concrete path: $.batch[2].properties["$ip"]; arena */
    const char *rule;             /* the rule's path text, or the detector's name; static or policy */
    const char *origin;           /* "route", "preset posthog", "detector" */
};

/* The result of ap_body_rewrite. */
struct ap_body_out {
    enum ap_body_verdict verdict;
    int status;                   /* 0, or 400 / 413 / 415 (also with FORWARD_EMPTY) */
    const char *reason;           /* static text for the log line and the error page */
    const char *body;             /* FORWARD: the bytes to send; may point into the input */
    size_t len;                   /* Content-Length to send */
    enum ap_body_format format;
    enum ap_body_encoding encoding_in;  /* how the body arrived */
    const char *content_encoding; /* Content-Encoding to send: NULL for none, "gzip", "deflate" */
    const char *strip_param;      /* query parameter to remove from the target, or NULL */
    unsigned changed : 1;         /* body bytes differ from what arrived */
    unsigned passthrough : 1;     /* FORWARD exactly as received: leave every body header alone */
    struct ap_body_audit *audit;  /* ctx->audit: every decision, in arena memory */
    size_t naudit, capaudit;
};

#endif

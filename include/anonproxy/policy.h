/* The anonymisation engine's entry point: a route's privacy policy applied
 * to a parsed request. Pure: no I/O, no locks; outputs come from the
 * caller's arena, so a warm worker allocates nothing per request. */
#ifndef ANONPROXY_POLICY_H
#define ANONPROXY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "anonproxy/policy-t.h"

struct ap_pseudo_keyring;

/* Building (configuration time; these malloc and return 0 or -ENOMEM /
 * -EINVAL). Order: ap_policy_init with the profile, the route's own rules
 * with the ap_policy_add_* functions (they take precedence, in the order
 * added), then ap_policy_finish, which appends the profile's defaults. */
int ap_policy_init(struct ap_policy *pol, const char *route_name, enum ap_profile profile);
int ap_policy_add_header_rule(struct ap_policy *pol, const char *glob, enum ap_hdr_action action,
                              const char *value);
int ap_policy_add_cookie_rule(struct ap_policy *pol, const char *glob, enum ap_cookie_action action);
int ap_policy_add_query_rule(struct ap_policy *pol, const char *glob, enum ap_query_action action);
int ap_policy_add_url_keep(struct ap_policy *pol, const char *glob);
int ap_policy_add_remove_header(struct ap_policy *pol, const char *name);
int ap_policy_finish(struct ap_policy *pol);
void ap_policy_free(struct ap_policy *pol);

/* Names used in configuration files and in the audit. The parsers return
 * 0 or -EINVAL. */
int ap_policy_profile_parse(const char *s, enum ap_profile *out);
const char *ap_policy_profile_name(enum ap_profile p);
int ap_policy_addr_mode_parse(const char *s, enum ap_addr_mode *out);
const char *ap_policy_addr_mode_name(enum ap_addr_mode m);
int ap_policy_hdr_action_parse(const char *s, enum ap_hdr_action *out);
const char *ap_policy_hdr_action_name(enum ap_hdr_action a);
int ap_policy_cookie_action_parse(const char *s, enum ap_cookie_action *out);
const char *ap_policy_cookie_action_name(enum ap_cookie_action a);
int ap_policy_query_action_parse(const char *s, enum ap_query_action *out);
const char *ap_policy_query_action_name(enum ap_query_action a);
const char *ap_audit_kind_name(enum ap_audit_kind k);
const char *ap_audit_action_name(enum ap_audit_action a);

/* Rewrite `req` by `pol`, in place:
 *   - the client address is decided from `peer` and the forwarding headers
 *     of trusted proxies (pol->clientaddr), and returned in `res` (full, for
 *     geolocation, and truncated, for logs);
 *   - every inbound client-address header is removed; the outbound address
 *     header is then set by pol->addr_mode (overwritten, never appended);
 *   - every other header goes through the header rules; unnamed headers
 *     are dropped (allowlist); Cookie goes through the cookie rules;
 *   - the query of the target goes through the query rules (click ids are
 *     always dropped).
 * Dropped headers are flagged AP_HEADER_DROPPED; new values and the new
 * target live in ctx->arena. With ctx->audit every decision is appended to
 * res->audit (arena memory). Returns 0, or -ENOMEM when the arena is
 * exhausted: the caller must then refuse the request, never forward it. */
int ap_engine_rewrite(const struct ap_policy *pol, struct ap_engine_ctx *ctx, const struct ap_ip *peer,
                      struct ap_request *req, struct ap_engine_result *res);

/* A pseudonymiser for other rewriters (bodies, logs): the route's HMAC
 * pseudonyms in `scope`, as ap_text_fn wants them. Build one per request
 * on the stack: {pol, ctx, res->scope}. */
struct ap_engine_pseudo {
    const struct ap_policy *pol;
    struct ap_engine_ctx *ctx;
    struct ap_slice scope;
};
int ap_engine_pseudo_text(void *vctx, const char *val, size_t len, char *out, size_t outcap);

/* For tests: how a finished policy classifies a header name: -2 removed
 * (client-address header), -1 no rule, else the index of its rule in
 * pol->headers; through the table of common names when `common` and the
 * name is one of them, through the header set otherwise. Both must always
 * agree. */
int32_t ap_policy__header_class(const struct ap_policy *pol, struct ap_slice name, bool common);

/* The Content-Type and Content-Encoding the body engine reads (empty
 * slices when absent), from the rewritten request. Returns 0. */
struct ap_body_out;
int ap_engine_body_input(struct ap_request *req, struct ap_slice *content_type,
                         struct ap_slice *content_encoding);

/* Apply a FORWARD or FORWARD_EMPTY body verdict to the request: the
 * Content-Encoding header set to the body's or removed, the compression flag
 * parameter removed from the target. Content-Length is the serialiser's.
 * Returns 0 or -ENOMEM (arena). */
int ap_engine_apply_body(struct ap_request *req, struct ap_arena *arena, const struct ap_body_out *out);

#endif

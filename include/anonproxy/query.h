/* Query-string and URL rewriting with a per-parameter action table. Pure
 * functions: no allocation, no I/O, thread-safe for a shared policy.
 *
 * Output convention of every rewriting function here: the result is written
 * to `out` NUL-terminated, its length (without the NUL) to *outlen, and the
 * function returns 0; or it returns -ENOBUFS when `outcap` is too small (then
 * `out` holds an empty string, *outlen is 0) and the caller may retry with a
 * larger buffer. A value being transformed is decoded into the unused end of
 * `out` first, so a buffer just large enough for the result may still be too
 * small by up to the length of that value. Without AP_QUERY_PSEUDO and
 * AP_QUERY_TRUNCATE_IP, 3 * len + 1 bytes always suffice; each callback
 * output of n bytes may need 3 * n more. Inputs are never modified and may
 * hold any bytes: malformed input gives a defined output, never an error. */
#ifndef ANONPROXY_QUERY_H
#define ANONPROXY_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "anonproxy/query-t.h"

/* Set the magic and the defaults: no rules, unlisted names kept, default
 * CLEAN_URL allowlist, non-strict referrers. */
void ap_query_policy_init(struct ap_query_policy *policy);

/* Compile policy->rules and the CLEAN_URL allowlist (policy->url_keep, or
 * its default) for fast lookups; call it once the policy's rules and
 * url_keep are final (configuration time: it mallocs). Compiling again
 * rebuilds. Returns 0 or -ENOMEM (the policy then stays usable,
 * uncompiled). Results never depend on whether a policy is compiled. */
int ap_query_policy_compile(struct ap_query_policy *policy);

/* Free what ap_query_policy_compile built; the policy stays usable. */
void ap_query_policy_release(struct ap_query_policy *policy);

/* Is the percent-encoded parameter name a click id (gclid, dclid, gbraid,
 * wbraid, fbclid, msclkid, ttclid, twclid, li_fat_id, mc_eid, _hsenc,
 * mkt_tok, igshid, yclid)? Compared after decoding and case-insensitively. */
bool ap_query_is_click_id(const char *name, size_t len);

/* Is a run of letters, digits, '-' and '_' from a path a token that
 * policy->path_tokens cuts out: a UUID (8-4-4-4-12 hex digits), 16 or more
 * hex digits (ids, hashes, card numbers), or 32 or more characters mixing
 * upper and lower case and digits with at most three '-' or '_' (a random
 * token, not a slug of words)? Numbers under 16 digits are not: "/u/12345"
 * may as well be an article. */
bool ap_query_path_token(const char *s, size_t len);

/* Write the `len` bytes of a path (no query) with what policy->path_detect
 * and policy->path_tokens cut out, as a rewrite of a target would. Returns
 * 0, or -ENOBUFS; `outcap` = len + 1 always suffices with path_tokens alone
 * (a token is longer than what replaces it). */
int ap_query_redact_path(const struct ap_query_policy *policy, const char *path, size_t len, char *out,
                         size_t outcap, size_t *outlen);

/* The action the policy gives the percent-encoded parameter name. */
enum ap_query_action ap_query_action_for(const struct ap_query_policy *policy, const char *name,
                                         size_t len);

/* Rewrite a query string (the part after '?', without it). Parameters are
 * separated by '&' only; the first '=' separates name and value, so encoded
 * "%26" and "%3D" stay inside names and values. Empty parameters ("a&&b",
 * a trailing '&') are removed; every other parameter, duplicates included,
 * gets its own action. Kept bytes are copied byte for byte, malformed
 * escapes included. An empty output means "no query". */
int ap_query_rewrite(const struct ap_query_ctx *ctx, const char *query, size_t len, char *out,
                     size_t outcap, size_t *outlen);

/* Rewrite a request target: origin-form "/path?query" keeps its path and
 * gets its query rewritten ('?' removed when nothing is left; a '#' and what
 * follows it are removed); absolute-form goes through ap_query_rewrite_url;
 * a target with no '?' (asterisk-form, authority-form) is copied. */
int ap_query_rewrite_target(const struct ap_query_ctx *ctx, const char *target, size_t len,
                            char *out, size_t outcap, size_t *outlen);

/* Rewrite a URL "scheme://[userinfo@]host[:port]/path?query#fragment": the
 * userinfo and the fragment are removed, scheme, host, port and path are
 * copied, the query is rewritten. Input without "scheme://" is treated as a
 * target (path?query). */
int ap_query_rewrite_url(const struct ap_query_ctx *ctx, const char *url, size_t len, char *out,
                         size_t outcap, size_t *outlen);

/* Clean a raw (not percent-encoded as a component) URL: userinfo and
 * fragment removed, query reduced to the parameters of policy->url_keep
 * (click ids never kept); scheme, host, port and path copied. Relative
 * references ("/p?q") are cleaned the same way. */
int ap_query_clean_url(const struct ap_query_policy *policy, const char *url, size_t len,
                       char *out, size_t outcap, size_t *outlen);

/* Reduce a raw absolute URL to its origin "scheme://host[:port]", scheme and
 * host lower-cased, userinfo removed. A URL without a valid scheme, host or
 * port gives an empty output (*outlen 0): drop it. */
int ap_query_origin(const char *url, size_t len, char *out, size_t outcap, size_t *outlen);

/* Reduce a referrer (a Referer header or a referrer carried in a parameter,
 * already decoded): internal (same host as ctx->site_host): cleaned as by
 * ap_query_clean_url; external: its origin, or nothing with
 * policy->strict_referrer; not an absolute URL: nothing. An empty output
 * means "drop the header or parameter". */
int ap_query_referrer(const struct ap_query_ctx *ctx, const char *url, size_t len, char *out,
                      size_t outcap, size_t *outlen);

/* The strict reduction of a referrer in one pass: the origin of an internal
 * referrer (same host as ctx->site_host, as ap_query_referrer decides),
 * nothing for an external one or for what is not an absolute URL. Gives
 * what ap_query_origin gives for a URL that ap_query_referrer keeps. */
int ap_query_referrer_origin(const struct ap_query_ctx *ctx, const char *url, size_t len, char *out,
                             size_t outcap, size_t *outlen);

#endif

/* Cookie request header rewriting with a per-cookie action table. Pure
 * functions: no allocation, no I/O, thread-safe for a shared policy. */
#ifndef ANONPROXY_COOKIE_H
#define ANONPROXY_COOKIE_H

#include <stddef.h>

#include "anonproxy/cookie-t.h"

/* Set the magic and the defaults: no rules, every cookie dropped. */
void ap_cookie_policy_init(struct ap_cookie_policy *policy);

/* Compile policy->rules for fast lookups once they are final
 * (configuration time: it mallocs); compiling again rebuilds. Returns 0 or
 * -ENOMEM (the policy then stays usable, uncompiled). Results never depend
 * on whether a policy is compiled. */
int ap_cookie_policy_compile(struct ap_cookie_policy *policy);

/* Free what ap_cookie_policy_compile built; the policy stays usable. */
void ap_cookie_policy_release(struct ap_cookie_policy *policy);

/* The action the policy gives a cookie name (exact bytes, not decoded). */
enum ap_cookie_action ap_cookie_action_for(const struct ap_cookie_policy *policy, const char *name,
                                           size_t len);

/* Rewrite a Cookie header value ("a=1; b=2"): each cookie gets its action;
 * duplicates are handled one by one. A malformed pair is dropped: no '=',
 * an empty name, a name that is not an RFC 9110 token, or a value holding a
 * control byte, a '"' other than a pair of enclosing quotes, or nothing but
 * one quote. Space around names and values is removed; kept pairs are
 * written "name=value" joined by "; ". The pseudonymiser gets the value
 * without enclosing quotes; its output must consist of cookie-octets
 * (RFC 6265), otherwise the cookie is dropped.
 *
 * The result is written NUL-terminated to `out`, its length to *outlen.
 * Returns 0 (an empty result means "drop the header"), or -ENOBUFS when
 * `outcap` is too small; 2 * len + 1 bytes always suffice without
 * AP_COOKIE_PSEUDO, and each pseudonym of n bytes may need n more. */
int ap_cookie_rewrite(const struct ap_cookie_ctx *ctx, const char *hdr, size_t len, char *out,
                      size_t outcap, size_t *outlen);

#endif

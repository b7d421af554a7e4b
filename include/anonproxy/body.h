/* The body rewriter: a route's body rules applied to a whole request body
 * in memory (JSON, NDJSON, forms, lines of query strings, other text),
 * through encoded layers and compression, with value detectors. Pure: no
 * I/O, no locks; outputs and scratch memory come from the caller's arena.
 *
 * Order of decision for one value (a JSON value, a form or URL parameter):
 *   1. the first rule (in the order added) whose path ends at the value
 *      gives the action; KEEP also turns detectors off below the value;
 *   2. otherwise, when some rule's path goes on through a layer step at
 *      this string, the layer is decoded, rewritten and encoded again;
 *   3. otherwise, for a string not under a KEEP, the detectors run.
 * A value an action cannot transform (truncate-ip on "hello", a rule on an
 * object that only strings take) is dropped: failing closed never forwards
 * the original. Everything no rule or detector touches is copied byte for
 * byte: numbers, key order, whitespace, escapes. */
#ifndef ANONPROXY_BODY_H
#define ANONPROXY_BODY_H

#include <stddef.h>

#include "anonproxy/body-t.h"
#include "anonproxy/policy-t.h"

/* ---- building (configuration time: these malloc) ---- */

/* Start a policy with the defaults of `profile`: the limits
 * AP_BODY_*_DEFAULT, on_invalid reject, on_unsupported reject, gzip by
 * magic bytes allowed, no recompression, prefixes /24 and /48, and in the
 * strict profile the detectors on (e-mail: pseudonymise, IP: truncate-ip,
 * MAC, IMEI, phone: pseudonymise, click ids: removed from URLs); in the
 * balanced profile only the click-id detector. */
void ap_body_policy_init(struct ap_body_policy *pol, enum ap_profile profile);

/* Append a rule. `arg`: for AP_BODY_SET the constant (JSON text such as 0,
 * null, "x" or {"a":1} is used as that value; anything else is a string);
 * for AP_BODY_ROUND a positive integer step, or "minute", "hour", "day";
 * NULL for the other actions. `origin` (static, may be NULL for "route")
 * names where the rule came from in the audit. Returns 0, -EINVAL (with
 * *err_off at the bad byte of `path`, or SIZE_MAX when the argument is
 * wrong), -ENOMEM. */
int ap_body_policy_add_rule(struct ap_body_policy *pol, const char *path, enum ap_body_action action,
                            const char *arg, size_t *err_off);
int ap_body_policy_add_rule_from(struct ap_body_policy *pol, const char *origin, const char *path,
                                 enum ap_body_action action, const char *arg, size_t *err_off);

/* Set what a detector does: AP_BODY_KEEP turns it off; AP_BODY_DROP drops
 * the whole value; AP_BODY_PSEUDO replaces the finding by its pseudonym;
 * AP_BODY_TRUNCATE_IP (AP_DETECT_IP only) truncates the address; the
 * click-id detector takes KEEP or DROP (drop the click-id parameters).
 * Returns 0 or -EINVAL. */
int ap_body_policy_set_detector(struct ap_body_policy *pol, enum ap_detect_kind kind,
                                enum ap_body_action action);

/* Append a PCRE2 regular expression (UTF mode) whose matches in any string
 * value are pseudonymised (AP_BODY_PSEUDO) or whose value is dropped
 * (AP_BODY_DROP). Returns 0, -EINVAL (*err_off at the pattern's error),
 * -ENOMEM. */
int ap_body_policy_add_regex(struct ap_body_policy *pol, const char *pattern, enum ap_body_action action,
                             size_t *err_off);

/* Declare that query parameter `name`=`value` (value compared without case)
 * means a body compressed with `enc`, e.g. ("compression", "gzip-js",
 * AP_BODY_ENC_GZIP). Returns 0, -EINVAL, -ENOMEM. */
int ap_body_policy_add_query_flag(struct ap_body_policy *pol, const char *name, const char *value,
                                  enum ap_body_encoding enc);

/* Build the matcher. Call once after the last add; the policy is then
 * read-only. Returns 0, -E2BIG (more than 65535 matcher states), -ENOMEM. */
int ap_body_policy_finish(struct ap_body_policy *pol);

/* Release everything; the policy may be initialised again. */
void ap_body_policy_free(struct ap_body_policy *pol);

/* Names used in configuration files and the audit; parsers return 0 or
 * -EINVAL. Actions: keep drop pseudonymise truncate-ip clean-url
 * origin-only reduce-ua set round geo. */
int ap_body_action_parse(const char *s, enum ap_body_action *out);
const char *ap_body_action_name(enum ap_body_action a);
int ap_body_on_invalid_parse(const char *s, enum ap_body_on_invalid *out);       /* reject, drop-body */
int ap_body_on_unsupported_parse(const char *s, enum ap_body_on_unsupported *out); /* reject, drop-body, pass */
const char *ap_body_format_name(enum ap_body_format f);
const char *ap_body_encoding_name(enum ap_body_encoding e);

/* ---- running (request path) ---- */

/* Rewrite one request body. `content_type` and `content_encoding` are the
 * header values (NULL or length 0 when absent); `in` is the whole body as
 * received (`inlen` bytes; NULL allowed when 0). It is not modified and is
 * borrowed: out->body may point into it.
 *
 * On return `out` says what to forward:
 *   FORWARD        with out->passthrough (an empty body, or a type the
 *                  route passes unread): forward the body and its headers
 *                  untouched. Otherwise
 *                  send out->len bytes at out->body; set Content-Length to
 *                  out->len; set Content-Encoding to out->content_encoding,
 *                  or remove the header when that is NULL; when
 *                  out->strip_param is not NULL remove that parameter from
 *                  the target's query (ap_body_strip_param).
 *   FORWARD_EMPTY  the route drops bodies it cannot read: send the request
 *                  with Content-Length: 0 and no Content-Encoding;
 *                  out->status says why (400/415), for the log.
 *   REJECT         answer out->status (400 invalid body, 413 too large or
 *                  a decompression bomb, 415 unreadable type or encoding,
 *                  500 arena exhausted) and forward nothing.
 * Memory: out->body, out->audit and every string they point to live in
 * ctx->arena (or in `in`) until the arena is reset. Returns 0 for FORWARD
 * and FORWARD_EMPTY, and for REJECT -EINVAL (400), -E2BIG (413), -ENOTSUP
 * (415) or -ENOMEM (500). */
int ap_body_rewrite(const struct ap_body_policy *pol, const struct ap_body_ctx *ctx,
                    const char *content_type, size_t ctlen, const char *content_encoding, size_t celen,
                    const char *in, size_t inlen, struct ap_body_out *out);

/* Remove every parameter named `name` (compared after percent-decoding)
 * from the query of the request target `target` (origin-form or absolute
 * form; the '?' goes too when nothing is left). Output convention of
 * query.h: NUL-terminated into `out`, length in *outlen; `len` + 1 bytes
 * always suffice. Returns 0 or -ENOBUFS. */
int ap_body_strip_param(const char *target, size_t len, const char *name, char *out, size_t outcap,
                        size_t *outlen);

#endif

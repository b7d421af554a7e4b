/* Anonymisation of application log records under a route's privacy policy,
 * for the log relay: JSON records field by field (addresses truncated or
 * pseudonymised, identifiers pseudonymised, User-Agents reduced, URLs
 * cleaned, secrets dropped) and free text through the value detectors of
 * anonproxy/detect.h (e-mail addresses, IP literals, MAC addresses, IMEIs,
 * phone numbers, click-id URLs). Pure: no I/O; outputs go to a struct
 * ap_buf whose limit bounds them. */
#ifndef ANONPROXY_LOGSCRUB_H
#define ANONPROXY_LOGSCRUB_H

#include <stddef.h>

#include "anonproxy/buf-t.h"
#include "anonproxy/logscrub-t.h"

/* Deepest JSON nesting accepted in a record. */
#define AP_LOGSCRUB_MAX_DEPTH 32

/* The action for a field named by the `len` bytes at `key` (decoded, not
 * NUL-terminated): the first of ctx's rules that matches, then the
 * built-in table (docs/logging.md), else AP_LOGSCRUB_TEXT. */
enum ap_logscrub_action ap_logscrub_action_for(const struct ap_logscrub_ctx *ctx, const char *key,
                                               size_t len);

/* Append the anonymised form of one JSON value (normally an object) to
 * `out`. Object members take the action of their name; a member without a
 * rule of its own inherits its parent's (so the fields of "user": {...}
 * are pseudonymised), array elements their array's. Member names go
 * through the detectors too. Returns 0, -EINVAL / -EILSEQ / -ELOOP when
 * the input is not one JSON value (nothing is appended then), or -E2BIG /
 * -ENOMEM when `out` reached its limit. */
int ap_logscrub_json(const struct ap_logscrub_ctx *ctx, const char *in, size_t len, struct ap_buf *out);

/* Append the anonymised form of one decoded string value under `action`
 * (AP_LOGSCRUB_DROP appends nothing) as raw bytes, not JSON-escaped.
 * Returns 0, 1 when the value must be dropped altogether (a pseudonym
 * without a keyring, an address under client_address: drop), or -E2BIG /
 * -ENOMEM. */
int ap_logscrub_value(const struct ap_logscrub_ctx *ctx, enum ap_logscrub_action action, const char *v,
                      size_t len, struct ap_buf *out);

/* Append free text with every detected value replaced: an e-mail address
 * by "[email:PSEUDONYM]", an IP literal as an ADDRESS field would be, a
 * MAC, IMEI or phone number by "[mac:...]", "[imei:...]", "[phone:...]"
 * (or "[email]" and so on without a keyring), a click-id URL by its
 * cleaned form. Returns 0, -E2BIG, -ENOMEM. */
int ap_logscrub_text(const struct ap_logscrub_ctx *ctx, const char *s, size_t len, struct ap_buf *out);

/* Configuration names: "text", "keep", "drop", "address", "pseudonymise"
 * (or "pseudonymize"), "reduce-ua", "clean-url". */
int ap_logscrub_action_parse(const char *s, enum ap_logscrub_action *out);
const char *ap_logscrub_action_name(enum ap_logscrub_action a);

#endif

/* Value detectors: personal data recognised by its shape inside any string
 * (e-mail addresses, IP literals, MAC addresses, IMEIs, E.164 phone
 * numbers, click ids in URLs). The body rewriter runs them over every string
 * value no rule kept explicitly. Pure functions: no allocation, no I/O.
 *
 * Every finder is linear in the string's length; boundaries are checked so
 * that a detector does not fire on a part of a longer token (the digits of
 * "1.2.3.4.5" are not an address, a 16-digit number holds no IMEI). */
#ifndef ANONPROXY_DETECT_H
#define ANONPROXY_DETECT_H

#include <stdbool.h>
#include <stddef.h>

#include "anonproxy/detect-t.h"

/* Start a scan of `len` bytes at `s` for the kinds whose bit (1u << kind)
 * is set in `mask` (AP_DETECT_REGEX is ignored: regexes are the caller's).
 * The string is borrowed for the scan's lifetime. */
void ap_detect_scan_init(struct ap_detect_scan *sc, unsigned mask, const char *s, size_t len);

/* ap_detect_scan_init, unless the string cannot hold a match of any kind of
 * `mask` (too few digits for a phone number, no '@' for an e-mail...): then
 * it returns false at once and `sc` is left untouched, where a scan would
 * have found nothing. Returns true when the scan was started. For short
 * strings, such as query values, this is most of the cost of a scan that
 * finds nothing. */
bool ap_detect_scan_start(struct ap_detect_scan *sc, unsigned mask, const char *s, size_t len);

/* The leftmost match at or after the end of the previous one (on a tie, the
 * longest). Returns true and fills `m`, or false when nothing is left. */
bool ap_detect_scan_next(struct ap_detect_scan *sc, struct ap_detect_match *m);

/* Could the string hold a match of a kind of `mask` at all? A cheap
 * prefilter over the bytes (one table look-up each) that the body rewriter
 * runs before a scan: a string without '@', digits, ':' or "http" cannot. */
bool ap_detect_may_match(unsigned mask, const char *s, size_t len);

/* Is a member or parameter name a click id (ap_query_is_click_id), or a
 * name ending in one after '_', '$' or '.' ("initial_gclid",
 * "$session_entry_gclid", "ep.fbclid")? The click-id detector drops such
 * members whatever their value. */
bool ap_detect_is_clickid_key(const char *k, size_t n);

/* Do the `n` ASCII digits pass the Luhn check? */
bool ap_detect_luhn_is_valid(const char *digits, size_t n);

/* Name of a kind for configuration and the audit ("email", "ip", "mac",
 * "imei", "phone", "click-id", "regex"), and its parser (0 or -EINVAL). */
const char *ap_detect_kind_name(enum ap_detect_kind k);
int ap_detect_kind_parse(const char *s, enum ap_detect_kind *out);

#endif

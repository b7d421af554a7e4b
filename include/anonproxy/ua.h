/* User-Agent reduction: a User-Agent header becomes one of a fixed set of
 * reduced forms (browser family and major version, platform family, device
 * class), a bot or tool name with its version, or "Other". The table of
 * forms is in proxy/engine/ua.c and docs/anonymisation.md. Pure functions:
 * no allocation, no I/O, thread-safe. */
#ifndef ANONPROXY_UA_H
#define ANONPROXY_UA_H

#include <stddef.h>

#include "anonproxy/ua-t.h"

/* Classify the `len` bytes at `ua` (not NUL-terminated; may be any bytes).
 * Never fails: what is not recognised is AP_UA_OTHER. `info` is fully
 * written and holds no pointer into `ua`. */
void ap_ua_classify(const char *ua, size_t len, struct ap_ua_info *info);

/* Write the reduced form of `info` to `out` as a NUL-terminated string and
 * its length (without the NUL) to *outlen. Returns 0, or -ENOBUFS when
 * `outcap` is too small (AP_UA_REDUCED_MAX always suffices); then `out`
 * holds an empty string. An `info` whose family, platform and device have no
 * form in the table is written as "Other". */
int ap_ua_format(const struct ap_ua_info *info, char *out, size_t outcap, size_t *outlen);

/* ap_ua_classify followed by ap_ua_format: the whole reduction. The output
 * is never empty, so the header is always kept (as "Other" at worst). */
int ap_ua_reduce(const char *ua, size_t len, char *out, size_t outcap, size_t *outlen);

/* Static display names for logs and statistics ("Chrome", "Android",
 * "mobile"...); an out-of-range value gives "?". */
const char *ap_ua_family_name(enum ap_ua_family family);
const char *ap_ua_platform_name(enum ap_ua_platform platform);
const char *ap_ua_device_name(enum ap_ua_device device);

#endif

/* Base64 and base64url (RFC 4648) as analytics SDKs send them: padded or
 * not, one alphabet per string. The decoder reports the style it saw so a
 * rewritten layer goes back out the way it came. Pure functions: no
 * allocation, no I/O. */
#ifndef ANONPROXY_BASE64_H
#define ANONPROXY_BASE64_H

#include <stddef.h>

/* Style bits. */
#define AP_BASE64_URL 0x1u    /* '-' and '_' instead of '+' and '/' */
#define AP_BASE64_NOPAD 0x2u  /* no trailing '=' */

/* Decode `len` bytes at `s` into `out`, which must hold len / 4 * 3 + 3
 * bytes, and store the decoded length in *outlen and the style in *style
 * (when not NULL). The input may use either alphabet but not both, may
 * omit the padding, and may not hold whitespace or anything after the
 * padding; bits left over in the last character must be zero (so every
 * input has one decoding and one encoding). An empty input decodes to
 * nothing. A string without '=' whose length needs none reports
 * AP_BASE64_NOPAD for the url alphabet and padding for the standard one.
 * Returns 0 or -EINVAL. */
int ap_base64_decode(const char *s, size_t len, char *out, size_t *outlen, unsigned *style);

/* Length ap_base64_encode writes for `len` bytes in `style`. */
size_t ap_base64_encoded_len(size_t len, unsigned style);

/* Encode `len` bytes into `out` (ap_base64_encoded_len bytes, no NUL) in
 * `style`. Returns the length written. */
size_t ap_base64_encode(const char *s, size_t len, unsigned style, char *out);

#endif

/* Types shared by the text rewriting modules (query, cookie): the value
 * transformer callback and the flags of glob matching. */
#ifndef ANONPROXY_TEXT_T_H
#define ANONPROXY_TEXT_T_H

#include <stddef.h>

/* A value transformer supplied by another module: the pseudonymiser (HMAC)
 * or the IP truncator. The engine's rewriters call it without knowing which.
 *
 * Contract of fn: read `len` bytes at `val` (not NUL-terminated, already
 * percent-decoded where the caller says so), write the replacement to `out`
 * (at most `outcap` bytes, no NUL needed) and return the number of bytes
 * written. Return -ENOBUFS when `outcap` is too small: the rewriter then
 * fails the whole call with -ENOBUFS so that its caller can retry with a
 * larger buffer. Any other negative errno means "this value cannot be
 * transformed" (say, not an IP address) and the rewriter drops the item:
 * failing closed never forwards the original value. fn must not allocate on
 * the heap on the request path and must not keep `val` or `out`. */
struct ap_text_fn {
    int (*fn)(void *ctx, const char *val, size_t len, char *out, size_t outcap);
    void *ctx;
};

/* Flags of ap_text_matches_glob. */
#define AP_TEXT_NOCASE 0x1u /* ASCII letters compare case-insensitively */
#define AP_TEXT_PCT 0x2u    /* the subject is percent-encoded: match its decoded bytes */
#define AP_TEXT_PLUS 0x4u   /* with AP_TEXT_PCT: '+' decodes to a space (form encoding) */

#endif

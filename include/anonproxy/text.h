/* Helpers shared by the text rewriting modules: glob matching of names and
 * percent-encoding. Pure functions: no allocation, no I/O. */
#ifndef ANONPROXY_TEXT_H
#define ANONPROXY_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "anonproxy/text-t.h"

/* Is the `len` bytes at `s` matched by the NUL-terminated pattern `glob`?
 * In the pattern, '*' matches any run of bytes (empty too) and '?' exactly
 * one byte; every other byte matches itself. There is no escape character.
 * `flags`: AP_TEXT_NOCASE, AP_TEXT_PCT (compare the decoded bytes of a
 * percent-encoded subject, so "%67clid" matches "gclid"; a malformed escape
 * stands for the literal '%'), AP_TEXT_PLUS. Runs in O(len * strlen(glob))
 * in the worst case, without allocating. */
bool ap_text_matches_glob(const char *glob, const char *s, size_t len, unsigned flags);

/* Start an empty set. `flags` is 0 (names compare byte for byte) or
 * AP_TEXT_NOCASE (ASCII letters compare case-insensitively). Allocates
 * nothing; ap_text_globset_free releases what ap_text_globset_add adds. */
void ap_text_globset_init(struct ap_text_globset *set, unsigned flags);

/* Append the NUL-terminated pattern `glob` (the syntax of
 * ap_text_matches_glob) with the next index, set->n. The set keeps its own
 * copy. Returns 0, -EINVAL (NULL pattern, or more than UINT32_MAX - 1
 * patterns) or -ENOMEM (the set is unchanged). */
int ap_text_globset_add(struct ap_text_globset *set, const char *glob);

/* The smallest index i such that pattern i matches the `len` bytes at `s`
 * (exactly ap_text_matches_glob(pattern_i, s, len, set->flags)), or
 * AP_TEXT_GLOBSET_NONE. The subject is taken as it is: decode a
 * percent-encoded name first. Allocates nothing. */
size_t ap_text_globset_find(const struct ap_text_globset *set, const char *s, size_t len);

/* Release the set's memory and leave it empty (as after
 * ap_text_globset_init with the same flags). */
void ap_text_globset_free(struct ap_text_globset *set);

/* Decode the percent-encoding of `len` bytes at `s` into `out`, which must
 * hold at least `len` bytes (decoding never grows). "%XX" with two hex
 * digits becomes one byte; a '%' not followed by two hex digits is copied
 * as it is. With AP_TEXT_PLUS in `flags`, '+' becomes a space. Returns the
 * decoded length. `out` may equal `s` (in-place decoding). */
size_t ap_text_pct_decode(const char *s, size_t len, char *out, unsigned flags);

/* Percent-encode `len` bytes at `s` the way encodeURIComponent does: ASCII
 * letters, digits and - _ . ! ~ * ' ( ) are copied, every other byte becomes
 * "%XX" (upper-case hex). Writes at most `outcap` bytes to `out` (no NUL)
 * and stores the length in *outlen. Returns 0, or -ENOBUFS when the encoded
 * form does not fit (then `out` holds a truncated prefix). */
int ap_text_pct_encode(const char *s, size_t len, char *out, size_t outcap, size_t *outlen);

/* Is the byte copied as it is by ap_text_pct_encode? (encodeURIComponent's
 * set: ASCII letters, digits and - _ . ! ~ * ' ( ).) Inline because the
 * encoders call it for every byte. */
static inline bool ap_text_is_unreserved(unsigned char c)
{
    static const unsigned char set[32] = {
        0x00, 0x00, 0x00, 0x00, 0x82, 0x67, 0xff, 0x03, /* ! ' ( ) * - . 0-9 */
        0xfe, 0xff, 0xff, 0x87, 0xfe, 0xff, 0xff, 0x47, /* A-Z _ a-z ~ */
    };
    return (set[c >> 3] >> (c & 7)) & 1;
}

/* Length that ap_text_pct_encode would produce for these bytes. */
size_t ap_text_pct_encoded_len(const char *s, size_t len);

/* Percent-encode, as ap_text_pct_encode, the `n` bytes at `buf` in place,
 * in a buffer of `cap` bytes, and store the encoded length in *outlen.
 * Returns 0, or -ENOBUFS when the encoded form does not fit in `cap` (then
 * `buf` is unchanged). */
int ap_text_pct_encode_in_place(char *buf, size_t n, size_t cap, size_t *outlen);

/* Index of `s` in the `n` configuration names `names` (exact match), the
 * American "pseudonymize" standing for "pseudonymise". Returns 0 with
 * *out set, or -EINVAL. Shared by the name parsers of the rewriters. */
int ap_text_name_index(const char *s, const char *const *names, size_t n, int *out);

#endif

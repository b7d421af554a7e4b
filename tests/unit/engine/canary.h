/* Test helper: does a canary value survive in a rewritten body, in any of
 * the encodings a collector could undo? */
#ifndef ANONPROXY_TEST_CANARY_H
#define ANONPROXY_TEST_CANARY_H

#include <stdbool.h>
#include <stddef.h>

/* Look for `canary` (case-insensitively) in `body`, in every view a
 * collector could decode: the bytes as they are, once and twice
 * percent-decoded ('+' as space too), gzip- or zlib-decoded when they are
 * compressed, and inside each of these as plain text, percent-encoded
 * (upper- or lower-case hex, once or twice), JSON-escaped (\u0040 for '@',
 * \/ for '/'), and base64 or base64url at any of the three alignments.
 * When found, *where (if not NULL) receives a static description of the
 * view and the encoding. */
bool canary_is_present(const char *body, size_t len, const char *canary, const char **where);

#endif

/* Accept-Language reduction to one primary language subtag. Pure function:
 * no allocation, no I/O. */
#ifndef ANONPROXY_LANG_H
#define ANONPROXY_LANG_H

#include <stddef.h>

#include "anonproxy/lang-t.h"

/* Reduce an Accept-Language value to the primary subtag of its first
 * language range, lower-cased: "de-CH,de;q=0.9,en;q=0.8" gives "de".
 * Empty list members and ranges with q=0 (not acceptable) are skipped; the
 * first remaining range decides: "*", a primary subtag that is not two or
 * three ASCII letters, a subtag that is not 1-8 letters or digits, or a
 * malformed weight make the result empty. '_' is accepted as a subtag
 * separator ("en_US"), as some clients send it.
 *
 * The result is written NUL-terminated to `out`, its length to *outlen.
 * Returns 0 (an empty result means "drop the header"), or -ENOBUFS when
 * `outcap` is too small (AP_LANG_REDUCED_MAX always suffices). */
int ap_lang_reduce(const char *val, size_t len, char *out, size_t outcap, size_t *outlen);

#endif

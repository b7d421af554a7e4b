/* Internal interface between body.c (formats, compression, verdicts) and
 * bodywalk.c (the rewriting walk over one decoded body). */
#ifndef ANONPROXY_BODYWALK_H
#define ANONPROXY_BODYWALK_H

#include <stddef.h>

#include "anonproxy/body-t.h"

/* Rewrite `len` bytes at `in` as format `fmt` (JSON, NDJSON, FORM,
 * FORM_LINES or TEXT). The result is *res / *reslen: `in` itself when
 * nothing changed, else arena memory; it may not grow past `out_limit`.
 * Audit entries go to `out`. Returns 0, -EINVAL (syntax), -EILSEQ (not
 * UTF-8), -ELOOP (nesting), -EBADMSG (JSON followed by more bytes: the
 * caller may try NDJSON), -E2BIG (output limit), -ENOMEM (arena). On error
 * *err_off is the offset where it was noticed (in the innermost layer). */
int ap_bodywalk_run(const struct ap_body_policy *pol, const struct ap_body_ctx *ctx,
                    struct ap_body_out *out, enum ap_body_format fmt, const char *in, size_t len,
                    size_t out_limit, const char **res, size_t *reslen, size_t *err_off);

/* Round `n` bytes of text (a JSON number, or an ISO 8601 time for the time
 * units) as `rule` says into `out` (64 bytes suffice). Returns the length,
 * or -EINVAL when the text cannot be rounded. Exposed for the tests. */
int ap_bodywalk_round(const struct ap_body_rule *rule, const char *v, size_t n, char *out, size_t cap);

#endif

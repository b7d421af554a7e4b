/* Access log records: their two output formats (JSON lines and a text
 * template) and the compact encoding that carries them from a worker to
 * the logger thread. Pure functions: no I/O; outputs go to a struct
 * ap_buf (bounded by its limit). */
#ifndef ANONPROXY_LOGFMT_H
#define ANONPROXY_LOGFMT_H

#include <stddef.h>

#include "anonproxy/buf-t.h"
#include "anonproxy/logfmt-t.h"

/* The text template when access_log.template is not set. */
#define AP_LOGFMT_DEFAULT_TEMPLATE \
    "$time $client $route \"$method $host$path $protocol\" $status $bytes_in $bytes_out $duration_ms \"$ua\""

/* Compile `s`: literal text with "$name" or "${name}" variables (the
 * names of docs/logging.md) and "$$" for a dollar sign. On error returns
 * -EINVAL and writes "column N: why" to `err`; -ENOMEM. Free with
 * ap_logfmt_template_free. */
int ap_logfmt_template_compile(const char *s, struct ap_logfmt_tmpl *t, char *err, size_t errlen);
void ap_logfmt_template_free(struct ap_logfmt_tmpl *t);

/* The name of a variable ("time", "client", ...). */
const char *ap_logfmt_var_name(enum ap_logfmt_var v);

/* Append the record as one JSON object, without a newline. Strings that
 * are not UTF-8 have their stray bytes written as \u00XX. Returns 0,
 * -E2BIG, -ENOMEM. */
int ap_logfmt_json(const struct ap_logfmt_rec *r, struct ap_buf *out);

/* Append the record through a template, without a newline. Values are
 * escaped so that a line stays one line and a quoted field stays quoted:
 * '"' and '\' get a backslash, other bytes outside 0x20..0x7e become \xHH.
 * Absent values are "-". Returns 0, -E2BIG, -ENOMEM. */
int ap_logfmt_text(const struct ap_logfmt_tmpl *t, const struct ap_logfmt_rec *r, struct ap_buf *out);

/* Append `n` bytes as a JSON string with its quotes: valid UTF-8 passes,
 * quotes, backslashes and controls are escaped, and every byte that is not
 * part of a valid UTF-8 sequence is written as \u00XX (read as Latin-1), so
 * the output is always valid JSON. n == 0 gives "" (not null). Returns 0,
 * -E2BIG, -ENOMEM. */
int ap_logfmt_json_string(struct ap_buf *out, const char *p, size_t n);

/* Bytes ap_logfmt_encode needs for `r`. */
size_t ap_logfmt_encoded_len(const struct ap_logfmt_rec *r);

/* Encode `r` into `out` of `cap` bytes (strings are copied). Returns the
 * length, or 0 when it does not fit. */
size_t ap_logfmt_encode(const struct ap_logfmt_rec *r, void *out, size_t cap);

/* Decode what ap_logfmt_encode wrote; the slices of `r` point into `in`.
 * Returns 0 or -EINVAL for a buffer that is not an encoded record. */
int ap_logfmt_decode(const void *in, size_t len, struct ap_logfmt_rec *r);

#endif

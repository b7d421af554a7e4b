/* JSON building blocks of the body rewriter (proxy/engine/json.c): strict
 * RFC 8259 scanning of strings, numbers and whole values without building a
 * tree, UTF-8 validation, and the escaping and unescaping of string
 * contents. Pure functions: no allocation, no I/O, thread-safe.
 *
 * Scanning functions take the whole input (`s`, `len`) and a position
 * `*pos`; on success they move `*pos` past what they read. They never read
 * outside [0, len) and accept any bytes. Their errors: -EINVAL for a syntax
 * error, -EILSEQ for bytes that are not UTF-8, -ELOOP for nesting deeper
 * than asked; *pos is then the offset of the offending byte. */
#ifndef ANONPROXY_JSON_H
#define ANONPROXY_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Flags that ap_json_scan_string reports. */
#define AP_JSON_STR_ESCAPED 0x1u /* holds at least one backslash escape */
#define AP_JSON_STR_NONASCII 0x2u /* holds at least one byte >= 0x80 */

/* Is the byte JSON whitespace (space, tab, LF, CR)? */
static inline bool ap_json_is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Move *pos past JSON whitespace. */
static inline void ap_json_skip_ws(const char *s, size_t len, size_t *pos)
{
    size_t i = *pos;
    while (i < len && ap_json_is_ws((unsigned char)s[i]))
        i++;
    *pos = i;
}

/* Scan the string whose opening quote is at s[*pos]: escapes must be one of
 * \" \\ \/ \b \f \n \r \t \uXXXX, control bytes (< 0x20) must be escaped,
 * and the bytes must be UTF-8 (no overlong forms, no encoded surrogates,
 * nothing above U+10FFFF). Escaped lone surrogates (\ud800) are valid JSON
 * and accepted. On success *pos is just past the closing quote and *flags
 * (when not NULL) receives AP_JSON_STR_* bits. Runs eight bytes at a time
 * over plain ASCII. */
int ap_json_scan_string(const char *s, size_t len, size_t *pos, unsigned *flags);

/* Scan the number starting at s[*pos]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
int ap_json_scan_number(const char *s, size_t len, size_t *pos);

/* Scan one value of any type (whitespace before it is skipped, after it is
 * not). Containers may nest `max_depth` levels: a scalar is depth 0, "[]"
 * depth 1. */
int ap_json_skip_value(const char *s, size_t len, size_t *pos, unsigned max_depth);

/* Is the input exactly one JSON value, with optional whitespace around it?
 * Returns 0 or the scanner's error. */
int ap_json_validate(const char *s, size_t len, unsigned max_depth);

/* Is every byte sequence well-formed UTF-8 (as ap_json_scan_string
 * checks it)? */
bool ap_json_is_utf8(const char *s, size_t len);

/* Decode the contents of a string that ap_json_scan_string accepted (the
 * bytes between the quotes) into `out`, which must hold `len` bytes:
 * decoding never grows. A lone surrogate escape becomes U+FFFD. Returns the
 * decoded length. `out` may not overlap `s`. */
size_t ap_json_unescape(const char *s, size_t len, char *out);

/* Bytes ap_json_escape writes for these bytes. */
size_t ap_json_escaped_len(const char *s, size_t len);

/* Write the contents of a JSON string (without quotes) holding these bytes
 * into `out`, which must hold ap_json_escaped_len(s, len) bytes (6 * len
 * always suffice): '"' and '\\' get a backslash, control bytes become \b
 * \f \n \r \t or \u00XX, everything else is copied. Returns the length. */
size_t ap_json_escape(const char *s, size_t len, char *out);

#endif

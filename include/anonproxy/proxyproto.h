/* PROXY protocol v1 (text) and v2 (binary) header parser. Pure: it reads
 * the bytes the caller has accumulated and keeps no state between calls. */
#ifndef ANONPROXY_PROXYPROTO_H
#define ANONPROXY_PROXYPROTO_H

#include "anonproxy/proxyproto-t.h"

/* Parse the PROXY header at the start of `buf` (`len` bytes received so
 * far). Call it again with the grown buffer after each read; it restarts
 * from the beginning (at most AP_PROXYPROTO_MAX_LEN bytes are examined).
 *
 * Returns the header length (> 0) once a complete, valid header is there:
 * `*out` is filled and the bytes after it belong to the client stream.
 * Returns 0 while every byte so far can still start a valid header (`*out`
 * is zeroed). Returns an AP_PROXYPROTO_ERR_* code (< 0) as soon as the
 * input can no longer become valid: a first byte that is neither 'P' nor
 * '\r' fails at once, a signature fails at its first wrong byte, a v1
 * field at its first impossible character, v2 header fields as soon as
 * their byte arrives. The receiver never guesses: there is no fallback to
 * "no header".
 *
 * v1 is strict: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport
 * CRLF with single spaces, dotted quads without leading zeros for TCP4, RFC
 * 4291 text (no zone) for TCP6, ports 0..65535 without leading zeros; or
 * "PROXY UNKNOWN" followed by CRLF or by SP and anything up to the CRLF. A
 * lone CR or LF is an error. v2: version 2, command LOCAL (the whole block
 * after the 16-byte header is skipped unread, as the spec says) or PROXY;
 * family and transport must be assigned values; the length must cover the
 * family's addresses (12, 36, 216 bytes); the rest must be a sequence of
 * whole TLVs, and a PP2_TYPE_CRC32C TLV must be 4 bytes and match. */
int ap_proxyproto_parse(const uint8_t *buf, size_t len, struct ap_proxyproto_result *out);

/* Static text for an AP_PROXYPROTO_ERR_* code, for logs. */
const char *ap_proxyproto_strerror(int err);

#endif

#ifndef ANONPROXY_HEAD_H
#define ANONPROXY_HEAD_H

#include "anonproxy/arena-t.h"
#include "anonproxy/head-t.h"
#include "anonproxy/http-t.h"

/* Scan the raw request head held in buf[0, len) from where the previous call
 * stopped (`s` keeps the position; the buffer may only grow between calls).
 * Every completed line is checked at once, so an invalid request line is
 * refused before the headers arrive. Returns the length of the complete head
 * (blank line included) when found, 0 when more bytes are needed, or -1 with
 * `err` set (status 400, 414 or 431) on a violation:
 *   bare CR or bare LF, obs-fold, an empty or non-tchar header name,
 *   whitespace before the colon, NUL or other CTLs in a value, a request line
 *   that is not `token SP target SP HTTP/d.d` (HTTP/0.9 included), limits. */
int ap_head_scan(struct ap_head_scan *s, const char *buf, size_t len,
                 const struct ap_head_limits *lim, struct ap_head_error *err);

/* Parse a head that ap_head_scan accepted into `req` and apply the semantic
 * rules of RFC 9110/9112 (version, Host, Content-Length, Transfer-Encoding,
 * target form, Expect). Slices in `req` point into `buf`, which must outlive
 * it; the header array comes from `arena`. Hop-by-hop headers (Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Expect,
 * Host, Content-Length and every header Connection names) are left out of
 * req->headers: the serialiser writes Host and framing itself. Returns 0, or
 * -1 with `err` set (400, 417, 501, 505) or status 500 when the arena is
 * exhausted. */
int ap_head_parse(const char *buf, size_t len, struct ap_request *req,
                  struct ap_arena *arena, struct ap_head_error *err);

/* How the serialised request frames its body. */
enum ap_head_framing {
    AP_FRAME_NONE = 0,  /* no body headers */
    AP_FRAME_LENGTH,    /* Content-Length: body_len */
    AP_FRAME_CHUNKED,   /* Transfer-Encoding: chunked */
};

/* Serialise `req` as an HTTP/1.1 request head into `out` (appended):
 * method, origin-form target, `Host: host`, every header not flagged
 * AP_HEADER_CONNECTION_NAMED or AP_HEADER_DROPPED, the framing header, and
 * the blank line. Returns 0 or the error of ap_buf_append. */
struct ap_buf;
int ap_head_serialize(const struct ap_request *req, struct ap_slice host, enum ap_head_framing framing,
                      uint64_t body_len, struct ap_buf *out);

/* Append a header to `req`, copying name and value into `arena` (the
 * header array grows in the arena when full). Returns 0 or -ENOMEM. */
int ap_request_add_header(struct ap_request *req, struct ap_arena *arena, const char *name,
                          size_t name_len, const char *value, size_t value_len);

/* True when `c` may appear in a token (RFC 9110 tchar). */
int ap_head_is_tchar(unsigned char c);

/* Case-insensitive comparison of a slice with a NUL-terminated string. */
int ap_slice_eq_ci(struct ap_slice s, const char *lit);

/* True when `name` is a hop-by-hop header the proxy never forwards. */
int ap_head_is_hop_by_hop(struct ap_slice name);

#endif

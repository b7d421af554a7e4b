/* gzip and deflate bodies through zlib, with every buffer and zlib's own
 * state in the request's arena, and the limits that turn a decompression
 * bomb into an error instead of memory. No I/O. */
#ifndef ANONPROXY_GZIP_H
#define ANONPROXY_GZIP_H

#include <stdbool.h>
#include <stddef.h>

struct ap_arena;

enum ap_gzip_kind {
    AP_GZIP_GZIP = 1,    /* RFC 1952; several members are read one after the other */
    AP_GZIP_DEFLATE = 2, /* RFC 1950 zlib, or a raw RFC 1951 stream (what some clients send) */
};

/* Does the input start like a gzip member (1f 8b 08)? */
bool ap_gzip_has_magic(const char *s, size_t len);

/* Decompress `len` bytes into arena memory. The output may not exceed
 * `max_out` bytes, nor `max_ratio` times `len` once it is past
 * `ratio_floor` bytes (a ratio of 0 turns that check off). *out receives
 * the output (valid as long as the arena; NUL-terminated for convenience)
 * and *outlen its length. Returns 0, -E2BIG (a limit), -EINVAL (not a
 * valid stream, or bytes after its end), -ENOMEM (arena exhausted). */
int ap_gzip_inflate(struct ap_arena *arena, enum ap_gzip_kind kind, const char *in, size_t len,
                    size_t max_out, unsigned max_ratio, size_t ratio_floor, char **out, size_t *outlen);

/* Compress `len` bytes into arena memory at `level` (0..9; zlib's default
 * when negative) as a gzip member or a zlib stream. Returns 0, -ENOMEM, or
 * -EIO if zlib fails otherwise. */
int ap_gzip_deflate(struct ap_arena *arena, enum ap_gzip_kind kind, int level, const char *in,
                    size_t len, char **out, size_t *outlen);

#endif

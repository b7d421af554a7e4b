/* zlib with the arena as its allocator: a worker that decodes a gzip body
 * allocates nothing on the heap for it, and the request's end frees zlib's
 * windows with everything else. */
#include "anonproxy/common.h"

#include <errno.h>
#include <limits.h>
#include <zlib.h>

#include "anonproxy/arena.h"
#include "anonproxy/gzip.h"

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    if (size != 0 && items > SIZE_MAX / size)
        return Z_NULL;
    return ap_arena_alloc(opaque, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    /* Arena memory goes away with the request. */
    (void)opaque;
    (void)p;
}

bool ap_gzip_has_magic(const char *s, size_t len)
{
    return len >= 3 && (unsigned char)s[0] == 0x1f && (unsigned char)s[1] == 0x8b &&
           (unsigned char)s[2] == 0x08;
}

/* Grow the arena buffer *buf of *cap bytes holding `used` of them. */
static int grow(struct ap_arena *a, char **buf, size_t *cap, size_t used, size_t max)
{
    size_t nc = *cap * 2;
    if (nc > max + 1)
        nc = max + 1;
    if (nc <= *cap)
        return -E2BIG;
    char *nb = ap_arena_alloc(a, nc);
    if (nb == NULL)
        return -ENOMEM;
    memcpy(nb, *buf, used);
    *buf = nb;
    *cap = nc;
    return 0;
}

static int inflate_once(struct ap_arena *arena, int wbits, const char *in, size_t len, size_t max_out,
                        unsigned max_ratio, size_t ratio_floor, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc;
    z.zfree = z_free;
    z.opaque = arena;
    if (inflateInit2(&z, wbits) != Z_OK)
        return -ENOMEM;
    /* Start from a guess of 4x, capped; the buffer doubles as needed. One
     * byte more than max_out is kept so that "exactly max_out" fits and
     * "more" is seen. */
    size_t cap = len < SIZE_MAX / 4 ? len * 4 + 256 : SIZE_MAX / 2;
    if (cap > max_out + 1)
        cap = max_out + 1;
    char *buf = ap_arena_alloc(arena, cap);
    if (buf == NULL)
        return -ENOMEM;
    size_t used = 0, consumed = 0;
    int rc = 0;
    for (;;) {
        if (used == cap) {
            rc = grow(arena, &buf, &cap, used, max_out);
            if (rc != 0)
                break;
        }
        size_t in_left = len - consumed;
        z.next_in = (Bytef *)(uintptr_t)(in + consumed);
        z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        z.next_out = (Bytef *)(buf + used);
        size_t out_left = cap - used;
        z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        uInt ai = z.avail_in, ao = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        consumed += ai - z.avail_in;
        used += ao - z.avail_out;
        if (used > max_out) {
            rc = -E2BIG;
            break;
        }
        if (max_ratio != 0 && used > ratio_floor && used / max_ratio > len) {
            rc = -E2BIG;
            break;
        }
        if (zr == Z_STREAM_END) {
            if (consumed == len)
                break;
            /* gzip: another member may follow (RFC 1952 2.2). */
            if (wbits == 16 + MAX_WBITS && len - consumed >= 3 &&
                ap_gzip_has_magic(in + consumed, len - consumed)) {
                if (inflateReset(&z) != Z_OK) {
                    rc = -EINVAL;
                    break;
                }
                continue;
            }
            rc = -EINVAL; /* trailing bytes */
            break;
        }
        if (zr == Z_BUF_ERROR) {
            if (consumed == len && z.avail_out != 0) {
                rc = -EINVAL; /* truncated stream */
                break;
            }
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            rc = -ENOMEM;
            break;
        }
        if (zr != Z_OK) {
            rc = -EINVAL;
            break;
        }
        if (consumed == len && z.avail_out != 0) {
            rc = -EINVAL; /* input ended before the stream did */
            break;
        }
    }
    inflateEnd(&z);
    if (rc != 0)
        return rc;
    if (used == cap && grow(arena, &buf, &cap, used, SIZE_MAX - 1) != 0)
        return -ENOMEM;
    buf[used] = '\0';
    *out = buf;
    *outlen = used;
    return 0;
}

int ap_gzip_inflate(struct ap_arena *arena, enum ap_gzip_kind kind, const char *in, size_t len,
                    size_t max_out, unsigned max_ratio, size_t ratio_floor, char **out, size_t *outlen)
{
    if (kind == AP_GZIP_GZIP)
        return inflate_once(arena, 16 + MAX_WBITS, in, len, max_out, max_ratio, ratio_floor, out,
                            outlen);
    if (kind != AP_GZIP_DEFLATE)
        return -EINVAL;
    /* RFC 9110 says zlib; some clients send raw deflate. A zlib header is a
     * multiple of 31 in its first two bytes with method 8. */
    bool zlib_hdr = len >= 2 && ((unsigned char)in[0] & 0x0f) == 8 &&
                    (((unsigned char)in[0] << 8) | (unsigned char)in[1]) % 31 == 0;
    int rc = inflate_once(arena, zlib_hdr ? MAX_WBITS : -MAX_WBITS, in, len, max_out, max_ratio,
                          ratio_floor, out, outlen);
    if (rc == -EINVAL && zlib_hdr)
        rc = inflate_once(arena, -MAX_WBITS, in, len, max_out, max_ratio, ratio_floor, out, outlen);
    return rc;
}

int ap_gzip_deflate(struct ap_arena *arena, enum ap_gzip_kind kind, int level, const char *in,
                    size_t len, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc;
    z.zfree = z_free;
    z.opaque = arena;
    int wbits = kind == AP_GZIP_GZIP ? 16 + MAX_WBITS : MAX_WBITS;
    if (level < 0 || level > 9)
        level = Z_DEFAULT_COMPRESSION;
    int zr = deflateInit2(&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
    if (zr == Z_MEM_ERROR)
        return -ENOMEM;
    if (zr != Z_OK)
        return -EIO;
    if (len > ULONG_MAX / 2) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    char *buf = ap_arena_alloc(arena, cap);
    if (buf == NULL) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    size_t consumed = 0, used = 0;
    int rc = 0;
    for (;;) {
        size_t in_left = len - consumed, out_left = cap - used;
        z.next_in = (Bytef *)(uintptr_t)(in + consumed);
        z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        z.next_out = (Bytef *)(buf + used);
        z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        uInt ai = z.avail_in, ao = z.avail_out;
        zr = deflate(&z, z.avail_in == in_left ? Z_FINISH : Z_NO_FLUSH);
        consumed += ai - z.avail_in;
        used += ao - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_OK || zr == Z_BUF_ERROR) {
            if (used == cap) {
                /* deflateBound is an upper bound; this is a safety net. */
                rc = grow(arena, &buf, &cap, used, SIZE_MAX / 2);
                if (rc != 0) {
                    rc = -ENOMEM;
                    break;
                }
            }
            continue;
        }
        rc = zr == Z_MEM_ERROR ? -ENOMEM : -EIO;
        break;
    }
    deflateEnd(&z);
    if (rc != 0)
        return rc;
    *out = buf;
    *outlen = used;
    return 0;
}

/* Fuzz target: compressed bodies. Even flag bytes: the input is a JSON or
 * form body that is gzip- or zlib-compressed here and sent with a
 * Content-Encoding header, the compression=gzip-js query flag, or as bare
 * magic bytes; odd ones: the input itself is the compressed body (corrupt
 * streams, trailing bytes, bombs). See fuzz_body.h. */
#include "fuzz_body.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t flags = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    const char *ct = (flags & 0x40) ? "application/x-www-form-urlencoded" : "application/json";
    static const char *const codings[] = {"gzip", "deflate", NULL, NULL};
    unsigned mode = (flags >> 1) & 3; /* header gzip, header deflate, query flag, magic only */
    const char *ce = codings[mode];
    const char *query = mode == 2 ? "compression=gzip-js" : NULL;
    if (flags & 1) {
        fuzz_body(flags, ct, ce ? ce : "gzip", query, in, len);
        return 0;
    }
    uLongf cap = compressBound((uLong)len) + 64;
    char *z = malloc(cap);
    if (z == NULL)
        return 0;
    z_stream s;
    memset(&s, 0, sizeof(s));
    if (deflateInit2(&s, 6, Z_DEFLATED, mode == 1 ? 15 : 31, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
        s.next_in = (Bytef *)(uintptr_t)in;
        s.avail_in = (uInt)len;
        s.next_out = (Bytef *)z;
        s.avail_out = (uInt)cap;
        if (deflate(&s, Z_FINISH) == Z_STREAM_END)
            fuzz_body(flags, ct, ce, query, z, cap - s.avail_out);
        deflateEnd(&s);
    }
    free(z);
    return 0;
}

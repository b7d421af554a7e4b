/* Base64 in both alphabets. Decoding is strict (no whitespace, zero spare
 * bits) because a payload that decodes two ways could hide an identifier
 * from the rewriter that the collector would still see. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/base64.h"

static const char std_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63: a digit of both alphabets; 64: '+' or '/'; 65: '-' or '_'; 255:
 * anything else. */
static signed char digit(unsigned char c, unsigned *alpha)
{
    if (c >= 'A' && c <= 'Z')
        return (signed char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (signed char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (signed char)(c - '0' + 52);
    if (c == '+' || c == '/') {
        *alpha |= 1;
        return c == '+' ? 62 : 63;
    }
    if (c == '-' || c == '_') {
        *alpha |= 2;
        return c == '-' ? 62 : 63;
    }
    return -1;
}

int ap_base64_decode(const char *s, size_t len, char *out, size_t *outlen, unsigned *style)
{
    size_t pad = 0;
    while (pad < 2 && len > 0 && s[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad > 0 && (len + pad) % 4 != 0)
        return -EINVAL;
    if (len % 4 == 1)
        return -EINVAL;
    unsigned alpha = 0;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        signed char d = digit((unsigned char)s[i], &alpha);
        if (d < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (alpha == 3 || acc != 0)
        return -EINVAL;
    *outlen = o;
    if (style != NULL)
        /* Without '=' and with a length that needs none, the padding is
         * unknown: base64url is then taken as unpadded (how JWTs and
         * Snowplow send it) and standard base64 as padded (btoa). */
        *style = (alpha == 2 ? AP_BASE64_URL : 0) |
                 (pad == 0 && (len % 4 != 0 || alpha == 2) ? AP_BASE64_NOPAD : 0);
    return 0;
}

size_t ap_base64_encoded_len(size_t len, unsigned style)
{
    if (style & AP_BASE64_NOPAD)
        return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
    return (len + 2) / 3 * 4;
}

size_t ap_base64_encode(const char *s, size_t len, unsigned style, char *out)
{
    const char *chars = (style & AP_BASE64_URL) ? url_chars : std_chars;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = chars[v >> 18];
        out[o++] = chars[(v >> 12) & 63];
        out[o++] = chars[(v >> 6) & 63];
        out[o++] = chars[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = chars[v >> 18];
        out[o++] = chars[(v >> 12) & 63];
        if (!(style & AP_BASE64_NOPAD)) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = chars[v >> 18];
        out[o++] = chars[(v >> 12) & 63];
        out[o++] = chars[(v >> 6) & 63];
        if (!(style & AP_BASE64_NOPAD))
            out[o++] = '=';
    }
    return o;
}

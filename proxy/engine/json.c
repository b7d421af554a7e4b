/* JSON scanning without a tree. The body rewriter copies every byte it does
 * not change, so it only needs to know where values start and end and that
 * they are valid; these functions tell it that in one pass, eight bytes at a
 * time over the plain ASCII that makes up most analytics payloads. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/json.h"

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero when some byte of v is zero (exact, no false positive on the
 * question "is there one"). */
static inline uint64_t has_zero(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}

/* Non-zero when some byte of v is below 0x20 or above 0x7f, or is '"' or
 * '\\': the bytes the string scanner must look at one by one. */
static inline uint64_t has_special(uint64_t v)
{
    uint64_t lt20 = (v - ONES * 0x20) & ~v & HIGHS;
    return lt20 | has_zero(v ^ (ONES * '"')) | has_zero(v ^ (ONES * '\\')) | (v & HIGHS);
}

/* Index of the first byte flagged in a has_zero/has_special result: those
 * are exact up to their lowest flagged byte (a borrow only runs upwards
 * from a flagged byte), so its position is the first special byte. On a
 * big-endian host the lowest byte in memory is the top one: answer 0 and
 * let the byte loop find it. */
static inline size_t first_flagged(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(m) >> 3;
#else
    (void)m;
    return 0;
#endif
}

/* Non-zero when some byte of v is below 0x20, '"' or '\\': the bytes that
 * ap_json_escape does not copy as they are. */
static inline uint64_t has_escapable(uint64_t v)
{
    uint64_t lt20 = (v - ONES * 0x20) & ~v & HIGHS;
    return lt20 | has_zero(v ^ (ONES * '"')) | has_zero(v ^ (ONES * '\\'));
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the well-formed UTF-8 sequence starting at s[i] (a byte >=
 * 0x80), or 0 when it is not one. Follows the table of Unicode 15 section
 * 3.9: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t i)
{
    unsigned char c = s[i];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (len - i < n)
        return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if (s[i + k] < 0x80 || s[i + k] > 0xbf)
            return 0;
    return n;
}

bool ap_json_is_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if ((v & HIGHS) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(s, len, i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

int ap_json_scan_string(const char *str, size_t len, size_t *pos, unsigned *flags)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = *pos;
    unsigned f = 0;
    if (i >= len || s[i] != '"')
        return -EINVAL;
    i++;
    for (;;) {
        while (len - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            uint64_t m = has_special(v);
            if (m != 0) {
                /* Straight to the special byte: a short key or value ends
                 * within this word, and stepping to its quote byte by byte
                 * would cost more than the rest of the scan. */
                i += first_flagged(m);
                break;
            }
            i += 8;
        }
        if (i >= len) {
            *pos = len;
            return -EINVAL; /* unterminated */
        }
        unsigned char c = s[i];
        if (c == '"') {
            *pos = i + 1;
            if (flags != NULL)
                *flags = f;
            return 0;
        }
        if (c == '\\') {
            f |= AP_JSON_STR_ESCAPED;
            if (len - i < 2) {
                *pos = i;
                return -EINVAL;
            }
            unsigned char e = s[i + 1];
            if (e == 'u') {
                if (len - i < 6 || hexval(s[i + 2]) < 0 || hexval(s[i + 3]) < 0 ||
                    hexval(s[i + 4]) < 0 || hexval(s[i + 5]) < 0) {
                    *pos = i;
                    return -EINVAL;
                }
                i += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                i += 2;
            } else {
                *pos = i;
                return -EINVAL;
            }
            continue;
        }
        if (c < 0x20) {
            *pos = i;
            return -EINVAL;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq(s, len, i);
            if (n == 0) {
                *pos = i;
                return -EILSEQ;
            }
            f |= AP_JSON_STR_NONASCII;
            i += n;
            continue;
        }
        i++;
    }
}

int ap_json_scan_number(const char *str, size_t len, size_t *pos)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = *pos;
#define DIGIT(k) ((k) < len && s[k] >= '0' && s[k] <= '9')
    if (i < len && s[i] == '-')
        i++;
    if (!DIGIT(i))
        goto bad;
    if (s[i] == '0') {
        i++;
    } else {
        while (DIGIT(i))
            i++;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (!DIGIT(i))
            goto bad;
        while (DIGIT(i))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i))
            goto bad;
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    *pos = i;
    return 0;
bad:
    *pos = i;
    return -EINVAL;
}

static int scan_literal(const char *s, size_t len, size_t *pos, const char *lit, size_t n)
{
    if (len - *pos < n || memcmp(s + *pos, lit, n) != 0)
        return -EINVAL;
    *pos += n;
    return 0;
}

/* Iterative on an explicit stack of container kinds, so hostile nesting
 * cannot exhaust the C stack whatever max_depth a route asks for. One bit
 * per level: set for an object. */
int ap_json_skip_value(const char *s, size_t len, size_t *pos, unsigned max_depth)
{
    uint64_t kinds[16] = {0}; /* 1024 levels */
    unsigned depth = 0;
    size_t i = *pos;
    int rc;
    if (max_depth > 1024)
        max_depth = 1024;
value:
    ap_json_skip_ws(s, len, &i);
    if (i >= len) {
        rc = -EINVAL;
        goto out;
    }
    switch (s[i]) {
    case '{':
    case '[':
        if (depth >= max_depth) {
            rc = -ELOOP;
            goto out;
        }
        if (s[i] == '{')
            kinds[depth / 64] |= 1ull << (depth % 64);
        else
            kinds[depth / 64] &= ~(1ull << (depth % 64));
        depth++;
        i++;
        ap_json_skip_ws(s, len, &i);
        {
            int obj = (kinds[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
            if (i < len && s[i] == (obj ? '}' : ']')) {
                i++;
                depth--;
                goto after;
            }
            if (obj)
                goto member;
        }
        goto value;
    case '"':
        rc = ap_json_scan_string(s, len, &i, NULL);
        break;
    case 't':
        rc = scan_literal(s, len, &i, "true", 4);
        break;
    case 'f':
        rc = scan_literal(s, len, &i, "false", 5);
        break;
    case 'n':
        rc = scan_literal(s, len, &i, "null", 4);
        break;
    default:
        rc = ap_json_scan_number(s, len, &i);
        break;
    }
    if (rc != 0)
        goto out;
after:
    if (depth == 0) {
        rc = 0;
        goto out;
    }
    ap_json_skip_ws(s, len, &i);
    if (i >= len) {
        rc = -EINVAL;
        goto out;
    }
    {
        int obj = (kinds[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
        if (s[i] == ',') {
            i++;
            if (obj)
                goto member;
            goto value;
        }
        if (s[i] == (obj ? '}' : ']')) {
            i++;
            depth--;
            goto after;
        }
        rc = -EINVAL;
        goto out;
    }
member:
    ap_json_skip_ws(s, len, &i);
    rc = ap_json_scan_string(s, len, &i, NULL);
    if (rc != 0)
        goto out;
    ap_json_skip_ws(s, len, &i);
    if (i >= len || s[i] != ':') {
        rc = -EINVAL;
        goto out;
    }
    i++;
    goto value;
out:
    *pos = i;
    return rc;
}

int ap_json_validate(const char *s, size_t len, unsigned max_depth)
{
    size_t pos = 0;
    int rc = ap_json_skip_value(s, len, &pos, max_depth);
    if (rc != 0)
        return rc;
    ap_json_skip_ws(s, len, &pos);
    return pos == len ? 0 : -EINVAL;
}

static size_t put_utf8(char *out, unsigned cp)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static unsigned hex4(const char *s)
{
    return (unsigned)(hexval((unsigned char)s[0]) << 12 | hexval((unsigned char)s[1]) << 8 |
                      hexval((unsigned char)s[2]) << 4 | hexval((unsigned char)s[3]));
}

size_t ap_json_unescape(const char *s, size_t len, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        const char *bs = memchr(s + i, '\\', len - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : len - i;
        memcpy(out + o, s + i, run);
        o += run;
        i += run;
        if (i >= len)
            break;
        /* Validated input: a backslash always has its escape after it; the
         * checks below only keep a caller's unvalidated input in bounds. */
        if (len - i < 2) {
            out[o++] = '\\';
            break;
        }
        char e = s[i + 1];
        switch (e) {
        case 'b': out[o++] = '\b'; i += 2; continue;
        case 'f': out[o++] = '\f'; i += 2; continue;
        case 'n': out[o++] = '\n'; i += 2; continue;
        case 'r': out[o++] = '\r'; i += 2; continue;
        case 't': out[o++] = '\t'; i += 2; continue;
        case 'u': break;
        default: out[o++] = e; i += 2; continue;
        }
        if (len - i < 6 || hexval((unsigned char)s[i + 2]) < 0 || hexval((unsigned char)s[i + 3]) < 0 ||
            hexval((unsigned char)s[i + 4]) < 0 || hexval((unsigned char)s[i + 5]) < 0) {
            out[o++] = 'u';
            i += 2;
            continue;
        }
        unsigned cp = hex4(s + i + 2);
        i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (len - i >= 6 && s[i] == '\\' && s[i + 1] == 'u' && hexval((unsigned char)s[i + 2]) >= 0 &&
                hexval((unsigned char)s[i + 3]) >= 0 && hexval((unsigned char)s[i + 4]) >= 0 &&
                hexval((unsigned char)s[i + 5]) >= 0) {
                unsigned lo = hex4(s + i + 2);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    i += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    o += put_utf8(out + o, cp);
                    continue;
                }
            }
            cp = 0xfffd;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            cp = 0xfffd;
        }
        o += put_utf8(out + o, cp);
    }
    return o;
}

/* What each byte becomes inside a JSON string: 0 copied, 1 a two-byte
 * escape, 2 \u00XX. */
static const unsigned char esc_kind[256] = {
    2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

size_t ap_json_escaped_len(const char *s, size_t len)
{
    size_t n = len;
    for (size_t i = 0; i < len; i++) {
        if (len - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (has_escapable(v) == 0) {
                i += 7;
                continue;
            }
        }
        unsigned char k = esc_kind[(unsigned char)s[i]];
        n += k == 1 ? 1 : k == 2 ? 5 : 0;
    }
    return n;
}

size_t ap_json_escape(const char *s, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (len - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (has_escapable(v) == 0) {
                memcpy(out + o, s + i, 8);
                o += 8;
                i += 7;
                continue;
            }
        }
        unsigned char c = (unsigned char)s[i];
        switch (esc_kind[c]) {
        case 0:
            out[o++] = (char)c;
            break;
        case 1:
            out[o++] = '\\';
            out[o++] = c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n' : c == '\r' ? 'r'
                       : c == '\t' ? 't' : (char)c;
            break;
        default:
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
            break;
        }
    }
    return o;
}

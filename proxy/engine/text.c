/* Glob matching and percent-encoding shared by the query and cookie
 * rewriters. Everything works on (pointer, length) input and never
 * allocates, because it runs for every parameter of every request. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/text.h"

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

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Read one logical byte of the subject at *i and advance *i past it. Only
 * called with *i < len. */
static unsigned char next_byte(const char *s, size_t len, size_t *i, unsigned flags)
{
    unsigned char c = (unsigned char)s[*i];
    if (flags & AP_TEXT_PCT) {
        if (c == '%' && len - *i >= 3) {
            int hi = hexval((unsigned char)s[*i + 1]);
            int lo = hexval((unsigned char)s[*i + 2]);
            if (hi >= 0 && lo >= 0) {
                *i += 3;
                c = (unsigned char)(hi * 16 + lo);
                return (flags & AP_TEXT_NOCASE) ? lower(c) : c;
            }
        }
        if (c == '+' && (flags & AP_TEXT_PLUS))
            c = ' ';
    }
    *i += 1;
    return (flags & AP_TEXT_NOCASE) ? lower(c) : c;
}

/* The classic single-backtrack algorithm: when a literal fails after a '*',
 * the '*' swallows one more subject byte and matching resumes. It is exact
 * for patterns made of literals, '?' and '*', and linear in practice. */
/* The same algorithm on raw bytes: the common case, kept free of the
 * decoding so that a policy of many rules stays cheap. */
static bool matches_plain(const char *glob, const char *s, size_t len)
{
    size_t gi = 0, si = 0, star_g = 0, star_s = 0;
    bool have_star = false;
    while (si < len) {
        char g = glob[gi];
        if (g == '*') {
            have_star = true;
            star_g = ++gi;
            star_s = si;
            continue;
        }
        if (g != '\0' && (g == '?' || g == s[si])) {
            gi++;
            si++;
            continue;
        }
        if (!have_star)
            return false;
        gi = star_g;
        si = ++star_s;
    }
    while (glob[gi] == '*')
        gi++;
    return glob[gi] == '\0';
}

bool ap_text_matches_glob(const char *glob, const char *s, size_t len, unsigned flags)
{
    AP_BUG_ON(glob == NULL);
    AP_BUG_ON(s == NULL && len > 0);
    if (flags == 0)
        return matches_plain(glob, s, len);
    size_t gi = 0, si = 0;
    size_t star_g = 0, star_s = 0;
    bool have_star = false;

    while (si < len) {
        unsigned char g = (unsigned char)glob[gi];
        if (g == '*') {
            have_star = true;
            star_g = ++gi;
            star_s = si;
            continue;
        }
        size_t ni = si;
        unsigned char c = next_byte(s, len, &ni, flags);
        if (g != '\0' && (g == '?' || ((flags & AP_TEXT_NOCASE) ? lower(g) : g) == c)) {
            gi++;
            si = ni;
            continue;
        }
        if (!have_star)
            return false;
        /* The last '*' takes one more subject byte. */
        gi = star_g;
        (void)next_byte(s, len, &star_s, flags);
        si = star_s;
    }
    while (glob[gi] == '*')
        gi++;
    return glob[gi] == '\0';
}

size_t ap_text_pct_decode(const char *s, size_t len, char *out, unsigned flags)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && len - i >= 3) {
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out[o++] = (c == '+' && (flags & AP_TEXT_PLUS)) ? ' ' : (char)c;
        i++;
    }
    return o;
}

size_t ap_text_pct_encoded_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ap_text_is_unreserved((unsigned char)s[i]) ? 1 : 3;
    return n;
}

int ap_text_pct_encode(const char *s, size_t len, char *out, size_t outcap, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ap_text_is_unreserved(c)) {
            if (o + 1 > outcap)
                return -ENOBUFS;
            out[o++] = (char)c;
        } else {
            if (o + 3 > outcap)
                return -ENOBUFS;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    *outlen = o;
    return 0;
}

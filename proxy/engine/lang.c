/* Accept-Language reduction. Only the primary language of the preferred
 * range survives: regions, scripts and the rest of the list are a strong
 * fingerprint and say little a site needs. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/lang.h"

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Parse the parameters after a range (the text after its first ';').
 * Returns false on anything but q weights; *zero is true for q=0. */
static bool parse_params(const char *p, size_t len, bool *zero)
{
    *zero = false;
    if (len == 0)
        return false; /* "de;" */
    size_t i = 0;
    while (i <= len) {
        size_t s = i;
        while (i < len && p[i] != ';')
            i++;
        size_t e = i;
        i++;
        while (s < e && is_ows(p[s]))
            s++;
        while (e > s && is_ows(p[e - 1]))
            e--;
        if (e - s < 2 || (p[s] != 'q' && p[s] != 'Q'))
            return false;
        s++;
        while (s < e && is_ows(p[s]))
            s++;
        if (s >= e || p[s] != '=')
            return false;
        s++;
        while (s < e && is_ows(p[s]))
            s++;
        /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
        if (s >= e || (p[s] != '0' && p[s] != '1'))
            return false;
        bool one = p[s] == '1';
        bool nonzero = one;
        s++;
        if (s < e) {
            if (p[s] != '.' || e - s - 1 > 3)
                return false;
            for (size_t k = s + 1; k < e; k++) {
                if (!is_digit((unsigned char)p[k]) || (one && p[k] != '0'))
                    return false;
                nonzero |= p[k] != '0';
            }
        }
        if (!nonzero)
            *zero = true;
    }
    return true;
}

int ap_lang_reduce(const char *val, size_t len, char *out, size_t outcap, size_t *outlen)
{
    AP_BUG_ON(outlen == NULL);
    AP_BUG_ON(val == NULL && len > 0);
    AP_BUG_ON(out == NULL && outcap > 0);
    *outlen = 0;
    if (outcap == 0)
        return -ENOBUFS;
    out[0] = '\0';
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        while (i < len && val[i] != ',')
            i++;
        size_t e = i;
        i++;
        while (s < e && is_ows(val[s]))
            s++;
        while (e > s && is_ows(val[e - 1]))
            e--;
        if (s == e)
            continue;
        const char *semi = memchr(val + s, ';', e - s);
        size_t re = semi ? (size_t)(semi - val) : e;
        while (re > s && is_ows(val[re - 1]))
            re--;
        bool zero = false;
        if (semi && !parse_params(semi + 1, e - (size_t)(semi - val) - 1, &zero))
            return 0;
        if (zero)
            continue;
        /* The first acceptable range decides. */
        size_t k = s, nsub = 0, primary = 0;
        while (k <= re) {
            size_t a = k;
            while (k < re && val[k] != '-' && val[k] != '_')
                k++;
            size_t sl = k - a;
            if (sl < 1 || sl > 8)
                return 0;
            for (size_t m = a; m < k; m++) {
                unsigned char c = (unsigned char)val[m];
                if (!(is_alpha(c) || (nsub > 0 && is_digit(c))))
                    return 0;
            }
            if (nsub == 0)
                primary = sl;
            nsub++;
            k++;
        }
        if (primary < 2 || primary > 3)
            return 0;
        if (primary + 1 > outcap)
            return -ENOBUFS;
        for (size_t m = 0; m < primary; m++) {
            char c = val[s + m];
            out[m] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        out[primary] = '\0';
        *outlen = primary;
        return 0;
    }
    return 0;
}

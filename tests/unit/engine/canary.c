/* The canary search of the privacy tests. It decodes what a collector
 * could decode and looks for every encoding of the value an SDK could have
 * used, so a canary hidden by percent-encoding, base64 or compression still
 * counts as leaked. */
#include "anonproxy/common.h"

#include <ctype.h>
#include <zlib.h>

#include "canary.h"

static bool find(const char *h, size_t hn, const char *n, size_t nn, bool nocase)
{
    if (nn == 0 || nn > hn)
        return false;
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t k = 0;
        if (nocase) {
            while (k < nn && tolower((unsigned char)h[i + k]) == tolower((unsigned char)n[k]))
                k++;
        } else {
            while (k < nn && h[i + k] == n[k])
                k++;
        }
        if (k == nn)
            return true;
    }
    return false;
}

static char *pct_decode(const char *s, size_t n, size_t *outn)
{
    char *o = malloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            o[j++] = (char)strtoul(hex, NULL, 16);
            i += 2;
        } else {
            o[j++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    *outn = j;
    return o;
}

static char *pct_encode(const char *s, bool lower)
{
    const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            o[j++] = (char)c;
        } else {
            o[j++] = '%';
            o[j++] = hex[c >> 4];
            o[j++] = hex[c & 15];
        }
    }
    o[j] = '\0';
    return o;
}

/* Undo JSON string escapes (\uXXXX below 0x80, \/ and the others), so
 * a canary spelled with escapes shows up as plain text. */
static char *json_unescape(const char *s, size_t n, size_t *outn)
{
    char *o = malloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 5 < n && s[i + 1] == 'u' && isxdigit((unsigned char)s[i + 2]) &&
            isxdigit((unsigned char)s[i + 3]) && isxdigit((unsigned char)s[i + 4]) &&
            isxdigit((unsigned char)s[i + 5])) {
            char hex[5] = {s[i + 2], s[i + 3], s[i + 4], s[i + 5], 0};
            unsigned long v = strtoul(hex, NULL, 16);
            o[j++] = v < 0x80 ? (char)v : '?';
            i += 5;
        } else if (s[i] == '\\' && i + 1 < n) {
            o[j++] = s[++i];
        } else {
            o[j++] = s[i];
        }
    }
    *outn = j;
    return o;
}

/* The base64 characters that depend only on the canary's bytes when it
 * starts `k` bytes into a 3-byte group. */
static char *b64_core(const char *s, unsigned k, bool url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    size_t total = k + n;
    unsigned char *in = calloc(total + 3, 1);
    memcpy(in + k, s, n);
    size_t nchars = total * 8 / 6;
    char *enc = malloc(nchars + 4);
    for (size_t c = 0; c < nchars; c++) {
        size_t bit = c * 6;
        unsigned v = ((unsigned)in[bit / 8] << 8 | in[bit / 8 + 1]) >> (10 - bit % 8) & 63;
        char ch = std[v];
        if (url && ch == '+')
            ch = '-';
        if (url && ch == '/')
            ch = '_';
        enc[c] = ch;
    }
    size_t start = (k * 8 + 5) / 6;
    size_t len = nchars > start ? nchars - start : 0;
    memmove(enc, enc + start, len);
    enc[len] = '\0';
    free(in);
    return enc;
}

static bool search_view(const char *v, size_t n, const char *canary, const char **where, const char *view)
{
    static char msg[128];
    char *pats[4];
    pats[0] = (char *)canary;
    pats[1] = pct_encode(canary, false);
    pats[2] = pct_encode(canary, true);
    pats[3] = pct_encode(pats[1], false);
    static const char *names[] = {"plain", "percent-encoded", "percent-encoded (lower)",
                                  "double percent-encoded"};
    bool hit = false;
    for (int i = 0; i < 4 && !hit; i++) {
        if (find(v, n, pats[i], strlen(pats[i]), true)) {
            snprintf(msg, sizeof(msg), "%s, %s", view, names[i]);
            hit = true;
        }
    }
    for (unsigned k = 0; k < 3 && !hit; k++) {
        for (int url = 0; url < 2 && !hit; url++) {
            char *b = b64_core(canary, k, url);
            /* Short cores match by chance; a canary has 16 or more bytes. */
            if (strlen(b) >= 12 && find(v, n, b, strlen(b), false)) {
                snprintf(msg, sizeof(msg), "%s, base64%s at offset %u", view, url ? "url" : "", k);
                hit = true;
            }
            free(b);
        }
    }
    for (int i = 1; i < 4; i++)
        free(pats[i]);
    if (hit && where)
        *where = msg;
    return hit;
}

static char *inflate_any(const char *s, size_t n, size_t *outn)
{
    bool gz = n >= 2 && (unsigned char)s[0] == 0x1f && (unsigned char)s[1] == 0x8b;
    bool zl = n >= 2 && ((unsigned char)s[0] & 0x0f) == 8 && (((unsigned char)s[0] << 8) | (unsigned char)s[1]) % 31 == 0;
    if (!gz && !zl)
        return NULL;
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, gz ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK)
        return NULL;
    size_t cap = n * 8 + 1024, used = 0;
    char *o = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)s;
    z.avail_in = (uInt)n;
    int r;
    do {
        if (used == cap) {
            cap *= 2;
            o = realloc(o, cap);
        }
        z.next_out = (Bytef *)o + used;
        z.avail_out = (uInt)(cap - used);
        r = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
    } while (r == Z_OK);
    inflateEnd(&z);
    *outn = used;
    return o;
}

bool canary_is_present(const char *body, size_t len, const char *canary, const char **where)
{
    /* Views: as sent, decompressed; each JSON-unescaped; each of those
     * percent-decoded once and twice. */
    const char *views[12];
    size_t lens[12];
    const char *names[12];
    char *owned[12];
    int nv = 0, no = 0;
    views[nv] = body;
    lens[nv] = len;
    names[nv++] = "as sent";
    size_t zn;
    char *z = inflate_any(body, len, &zn);
    if (z != NULL) {
        owned[no++] = z;
        views[nv] = z;
        lens[nv] = zn;
        names[nv++] = "decompressed";
    }
    int base = nv;
    for (int i = 0; i < base; i++) {
        size_t un;
        char *u = json_unescape(views[i], lens[i], &un);
        owned[no++] = u;
        views[nv] = u;
        lens[nv] = un;
        names[nv++] = "JSON-unescaped";
    }
    base = nv;
    for (int i = 0; i < base; i++) {
        size_t d1n, d2n;
        char *d1 = pct_decode(views[i], lens[i], &d1n);
        char *d2 = pct_decode(d1, d1n, &d2n);
        owned[no++] = d1;
        owned[no++] = d2;
        views[nv] = d1;
        lens[nv] = d1n;
        names[nv++] = "percent-decoded";
        views[nv] = d2;
        lens[nv] = d2n;
        names[nv++] = "percent-decoded twice";
    }
    bool hit = false;
    for (int i = 0; i < nv && !hit; i++)
        hit = search_view(views[i], lens[i], canary, where, names[i]);
    for (int i = 0; i < no; i++)
        free(owned[i]);
    return hit;
}

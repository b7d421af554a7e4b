/* Value detectors. Each finder scans forward from a position and is linear
 * in what it scans; the scan object caches each kind's next match so that
 * taking matches left to right over a string with many of them never
 * rescans a region for the same kind. Shapes are checked strictly (a MAC is
 * exactly six pairs, an IMEI exactly 15 digits with a valid Luhn digit, an
 * IP literal must parse as ap_ip_parse says) and at word boundaries, so
 * ordinary text and version numbers mostly pass untouched. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/detect.h"
#include "anonproxy/ip.h"
#include "anonproxy/query.h"

enum {
    C_DIGIT = 0x01,
    C_HEXL = 0x02,  /* a-f A-F */
    C_ALPHA = 0x04, /* every ASCII letter */
    C_LOCAL = 0x08, /* allowed in the local part of an address we detect */
    C_DOM = 0x10,   /* letters, digits, '-' and '.' */
    C_AT = 0x20,    /* '@' */
    C_PCT = 0x40,   /* '%' */
    C_MISC = 0x80,  /* ':' '+' '-' '?' : triggers of ip6/mac/phone/url */
};

static unsigned char cls[256];
static int cls_ready;

/* Counters for possible_kinds, packed in one word: a byte adds its lane's
 * one, and a string is summed in chunks short enough that no lane can
 * carry into the next. */
enum { L_DIGIT = 0, L_COLON, L_DASH, L_DOT, L_SIGN, L_AT, L_WIDTH = 10 };
#define LANE(l) (1ull << ((l) * L_WIDTH))
#define LANE_CHUNK 1000u /* < 1 << L_WIDTH */
static uint64_t lanes[256];

static void init_cls(void)
{
    /* Built on first use; the values are constant, so concurrent first
     * calls write the same bytes and the flag only saves work. */
    unsigned char t[256] = {0};
    for (int c = '0'; c <= '9'; c++)
        t[c] |= C_DIGIT | C_LOCAL | C_DOM;
    for (int c = 'a'; c <= 'z'; c++)
        t[c] |= C_ALPHA | C_LOCAL | C_DOM;
    for (int c = 'A'; c <= 'Z'; c++)
        t[c] |= C_ALPHA | C_LOCAL | C_DOM;
    for (int c = 'a'; c <= 'f'; c++)
        t[c] |= C_HEXL;
    for (int c = 'A'; c <= 'F'; c++)
        t[c] |= C_HEXL;
    t['.'] |= C_LOCAL | C_DOM;
    t['-'] |= C_LOCAL | C_DOM | C_MISC;
    t['_'] |= C_LOCAL;
    t['+'] |= C_LOCAL | C_MISC;
    t['%'] |= C_LOCAL | C_PCT;
    t['@'] |= C_AT;
    t[':'] |= C_MISC;
    t['?'] |= C_MISC;
    memcpy(cls, t, sizeof(t));
    uint64_t l[256] = {0};
    for (int c = '0'; c <= '9'; c++)
        l[c] = LANE(L_DIGIT);
    l[':'] = LANE(L_COLON);
    l['-'] = LANE(L_DASH);
    l['.'] = LANE(L_DOT);
    l['+'] = LANE(L_SIGN);
    l['%'] = LANE(L_SIGN) | LANE(L_AT);
    l['@'] = LANE(L_AT);
    memcpy(lanes, l, sizeof(l));
    __atomic_store_n(&cls_ready, 1, __ATOMIC_RELEASE);
}

static inline void ensure_cls(void)
{
    if (!__atomic_load_n(&cls_ready, __ATOMIC_ACQUIRE))
        init_cls();
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alnum(unsigned char c)
{
    return (cls[c] & (C_DIGIT | C_ALPHA)) != 0;
}

static inline bool is_hex(unsigned char c)
{
    return (cls[c] & (C_DIGIT | C_HEXL)) != 0;
}

#define U(i) ((unsigned char)s[i])

/* ---- e-mail ---- */

/* Length of the '@' at s[p]: 1 for '@', 3 for "%40", 5 for "%2540", 0
 * otherwise. */
static size_t at_len(const char *s, size_t len, size_t p)
{
    if (s[p] == '@')
        return 1;
    if (s[p] == '%' && len - p >= 3 && s[p + 1] == '4' && s[p + 2] == '0')
        return 3;
    /* Encoded twice ("%2540"), as trackers that encode an encoded URL send it. */
    if (s[p] == '%' && len - p >= 5 && s[p + 1] == '2' && s[p + 2] == '5' && s[p + 3] == '4' && s[p + 4] == '0')
        return 5;
    return 0;
}

/* A domain of at least two labels of letters, digits and '-', the last one
 * two or more letters, starting at s[d]. Returns its length or 0. */
static size_t domain_len(const char *s, size_t len, size_t d)
{
    size_t e = d;
    while (e < len && (cls[U(e)] & C_DOM))
        e++;
    /* Trailing dots and hyphens belong to the sentence, not the domain. */
    while (e > d && (s[e - 1] == '.' || s[e - 1] == '-'))
        e--;
    size_t last = d, dots = 0;
    for (size_t i = d; i < e; i++) {
        if (s[i] == '.') {
            if (i == last)
                return 0; /* empty label */
            dots++;
            last = i + 1;
        }
    }
    if (dots == 0 || e - last < 2 || last == d)
        return 0;
    for (size_t i = last; i < e; i++)
        if (!(cls[U(i)] & C_ALPHA))
            return 0;
    return e - d;
}

static bool find_email(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t p = from;
    while (p < len) {
        /* Next '@' or '%'. */
        while (p < len && !(cls[U(p)] & (C_AT | C_PCT)))
            p++;
        if (p >= len)
            return false;
        size_t al = at_len(s, len, p);
        if (al == 0) {
            p++;
            continue;
        }
        size_t k = p;
        while (k > from && (cls[U(k - 1)] & C_LOCAL))
            k--;
        while (k < p && s[k] == '.')
            k++;
        size_t dl = k < p ? domain_len(s, len, p + al) : 0;
        if (dl == 0) {
            p += al;
            continue;
        }
        /* "a@b.com@c.org": another '@' and domain right after belong to the
         * same token; leaving them would put an address back together
         * around the replacement. */
        size_t e = p + al + dl;
        size_t al2, dl2;
        while (e < len && (al2 = at_len(s, len, e)) > 0 && (dl2 = domain_len(s, len, e + al2)) > 0)
            e += al2 + dl2;
        *off = k;
        *mlen = e - k;
        return true;
    }
    return false;
}

/* ---- IP literals ---- */

static bool find_ipv4(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t p = from;
    while (p < len) {
        if (!is_digit(U(p))) {
            p++;
            continue;
        }
        size_t start = p;
        size_t e = p;
        while (e < len && (is_digit(U(e)) || s[e] == '.'))
            e++;
        size_t end = e;
        while (end > start && s[end - 1] == '.')
            end--;
        bool left_ok = start == 0 || !(is_alnum(U(start - 1)) || s[start - 1] == '.');
        bool right_ok = e >= len || !is_alnum(U(e));
        struct ap_ip ip;
        if (left_ok && right_ok && end - start >= 7 && end - start <= 15 &&
            ap_ip_parse(&ip, s + start, end - start) == 0 && ip.family == 4) {
            *off = start;
            *mlen = end - start;
            return true;
        }
        p = e;
    }
    return false;
}

static bool find_ipv6(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t p = from;
    while (p < len) {
        unsigned char c = U(p);
        if (!(is_hex(c) || c == ':')) {
            p++;
            continue;
        }
        size_t start = p, e = p, colons = 0;
        while (e < len && (is_hex(U(e)) || s[e] == ':' || s[e] == '.')) {
            colons += s[e] == ':';
            e++;
        }
        size_t end = e;
        while (end > start && s[end - 1] == '.')
            end--;
        bool left_ok = start == 0 || !(is_alnum(U(start - 1)) || s[start - 1] == '.' ||
                                       s[start - 1] == ':');
        bool right_ok = e >= len || !is_alnum(U(e));
        struct ap_ip ip;
        if (colons >= 2 && left_ok && right_ok && end - start > 2 && end - start <= 45 &&
            ap_ip_parse(&ip, s + start, end - start) == 0) {
            *off = start;
            *mlen = end - start;
            return true;
        }
        p = e > p ? e : p + 1;
        /* A word of other letters ends the run too: skip to its end so that
         * a long word is not rescanned from each of its letters. */
        while (p < len && is_alnum(U(p)) && !is_hex(U(p)))
            p++;
    }
    return false;
}

/* ---- MAC ---- */

static bool is_mac(const char *s)
{
    char sep = s[2];
    if (sep != ':' && sep != '-')
        return false;
    for (int g = 0; g < 6; g++) {
        if (!is_hex(U(g * 3)) || !is_hex(U(g * 3 + 1)))
            return false;
        if (g < 5 && s[g * 3 + 2] != sep)
            return false;
    }
    return true;
}

static bool find_mac(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t p = from;
    while (p < len) {
        unsigned char c = U(p);
        if (!is_hex(c)) {
            p++;
            continue;
        }
        size_t start = p, e = p;
        while (e < len && (is_hex(U(e)) || s[e] == ':' || s[e] == '-'))
            e++;
        bool left_ok = start == 0 || !is_alnum(U(start - 1));
        bool right_ok = e >= len || !is_alnum(U(e));
        if (e - start == 17 && left_ok && right_ok && is_mac(s + start)) {
            *off = start;
            *mlen = 17;
            return true;
        }
        p = e;
        while (p < len && is_alnum(U(p)))
            p++;
    }
    return false;
}

/* ---- IMEI ---- */

bool ap_detect_luhn_is_valid(const char *digits, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)digits[n - 1 - i];
        if (!is_digit(c))
            return false;
        unsigned d = c - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return n > 0 && sum % 10 == 0;
}

static bool find_imei(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t p = from;
    while (p < len) {
        if (!is_digit(U(p))) {
            p++;
            continue;
        }
        size_t start = p, e = p;
        while (e < len && is_digit(U(e)))
            e++;
        bool left_ok = start == 0 || !(is_alnum(U(start - 1)) ||
                                       (s[start - 1] == '.' && start >= 2 && is_digit(U(start - 2))));
        bool right_ok = e >= len || !(is_alnum(U(e)) ||
                                      (s[e] == '.' && e + 1 < len && is_digit(U(e + 1))));
        if (e - start == 15 && left_ok && right_ok && ap_detect_luhn_is_valid(s + start, 15)) {
            *off = start;
            *mlen = 15;
            return true;
        }
        p = e;
    }
    return false;
}

/* ---- phone numbers ---- */

static bool find_phone(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t p = from;
    while (p < len) {
        size_t pl = 0;
        if (s[p] == '+')
            pl = 1;
        else if (s[p] == '%' && len - p >= 3 && s[p + 1] == '2' && (s[p + 2] == 'B' || s[p + 2] == 'b'))
            pl = 3;
        if (pl == 0) {
            p++;
            continue;
        }
        size_t d = p + pl, e = d;
        while (e < len && is_digit(U(e)))
            e++;
        bool left_ok = p == 0 || !is_alnum(U(p - 1));
        bool right_ok = e >= len || !(is_alnum(U(e)) ||
                                      (s[e] == '.' && e + 1 < len && is_digit(U(e + 1))));
        if (left_ok && right_ok && e - d >= 7 && e - d <= 15 && s[d] != '0') {
            *off = p;
            *mlen = e - p;
            return true;
        }
        p = e > d ? e : p + pl;
    }
    return false;
}

/* ---- click ids in URLs ---- */

static bool starts_with_ci(const char *s, size_t len, const char *pfx)
{
    size_t n = strlen(pfx);
    return len >= n && strncasecmp(s, pfx, n) == 0;
}

static bool find_clickid(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    if (from != 0 || !(starts_with_ci(s, len, "http://") || starts_with_ci(s, len, "https://")))
        return false;
    const char *q = memchr(s, '?', len);
    if (q == NULL)
        return false;
    size_t i = (size_t)(q - s) + 1;
    const char *hash = memchr(s + i, '#', len - i);
    size_t qend = hash ? (size_t)(hash - s) : len;
    while (i < qend) {
        size_t st = i;
        while (i < qend && s[i] != '&')
            i++;
        size_t ne = st;
        while (ne < i && s[ne] != '=')
            ne++;
        if (ne > st && ap_query_is_click_id(s + st, ne - st)) {
            *off = 0;
            *mlen = len;
            return true;
        }
        i++;
    }
    return false;
}

bool ap_detect_is_clickid_key(const char *k, size_t n)
{
    if (ap_query_is_click_id(k, n))
        return true;
    for (size_t i = 0; i + 1 < n; i++)
        if ((k[i] == '_' || k[i] == '$' || k[i] == '.') && ap_query_is_click_id(k + i + 1, n - i - 1))
            return true;
    return false;
}

typedef bool (*finder)(const char *, size_t, size_t, size_t *, size_t *);

static const finder finders[AP_DETECT_NKINDS] = {
    [AP_DETECT_EMAIL] = find_email, [AP_DETECT_IP] = NULL,          [AP_DETECT_MAC] = find_mac,
    [AP_DETECT_IMEI] = find_imei,   [AP_DETECT_PHONE] = find_phone, [AP_DETECT_CLICKID] = find_clickid,
};

/* IPv4 and IPv6 share a kind: the leftmost of the two. */
static bool find_ip(const char *s, size_t len, size_t from, size_t *off, size_t *mlen)
{
    size_t o4 = 0, l4 = 0, o6 = 0, l6 = 0;
    bool f4 = find_ipv4(s, len, from, &o4, &l4);
    bool f6 = find_ipv6(s, len, from, &o6, &l6);
    if (f6 && (!f4 || o6 < o4 || (o6 == o4 && l6 > l4))) {
        *off = o6;
        *mlen = l6;
        return true;
    }
    if (f4) {
        *off = o4;
        *mlen = l4;
    }
    return f4;
}

/* The kinds of `mask` whose finder could match somewhere in the string,
 * from counts that every match needs: an IPv4 literal four digits and
 * three dots, an IPv6 one two colons, a MAC five ':' or five '-', an IMEI
 * a run of 15 digits, a phone number '+' (or "%2B") and a run of 7 digits,
 * an address '@' (or "%40"). One pass, a table look-up a byte; a kind left
 * out here is one its finder would not find, so scans give the same
 * matches with or without it. */
static unsigned possible_kinds(unsigned mask, const char *s, size_t len)
{
    size_t digits = 0, run = 0, maxrun = 0, colons = 0, dashes = 0, dots = 0, signs = 0, ats = 0;
    for (size_t i = 0; i < len;) {
        size_t end = len - i > LANE_CHUNK ? i + LANE_CHUNK : len;
        uint64_t sum = 0;
        for (; i < end; i++) {
            uint64_t t = lanes[U(i)];
            sum += t;
            /* Branch-free: the run of digits grows or restarts. */
            run = (run + 1) & (0 - (size_t)(t & 1));
            maxrun = run > maxrun ? run : maxrun;
        }
        const uint64_t m = (1ull << L_WIDTH) - 1;
        digits += (size_t)((sum >> (L_DIGIT * L_WIDTH)) & m);
        colons += (size_t)((sum >> (L_COLON * L_WIDTH)) & m);
        dashes += (size_t)((sum >> (L_DASH * L_WIDTH)) & m);
        dots += (size_t)((sum >> (L_DOT * L_WIDTH)) & m);
        signs += (size_t)((sum >> (L_SIGN * L_WIDTH)) & m);
        ats += (size_t)((sum >> (L_AT * L_WIDTH)) & m);
    }
    unsigned out = mask & (1u << AP_DETECT_CLICKID);
    if ((mask & (1u << AP_DETECT_EMAIL)) && ats > 0)
        out |= 1u << AP_DETECT_EMAIL;
    if ((mask & (1u << AP_DETECT_IP)) && ((dots >= 3 && digits >= 4) || colons >= 2))
        out |= 1u << AP_DETECT_IP;
    if ((mask & (1u << AP_DETECT_MAC)) && (colons >= 5 || dashes >= 5))
        out |= 1u << AP_DETECT_MAC;
    if ((mask & (1u << AP_DETECT_IMEI)) && maxrun >= 15)
        out |= 1u << AP_DETECT_IMEI;
    if ((mask & (1u << AP_DETECT_PHONE)) && signs > 0 && maxrun >= 7)
        out |= 1u << AP_DETECT_PHONE;
    return out;
}

bool ap_detect_scan_start(struct ap_detect_scan *sc, unsigned mask, const char *s, size_t len)
{
    ensure_cls();
    mask &= AP_DETECT_MASK_ALL;
    /* Click ids alone need no counts: their finder looks at the start. */
    if (mask & ~(1u << AP_DETECT_CLICKID))
        mask = possible_kinds(mask, s, len);
    if (mask == 0)
        return false;
    memset(sc, 0, sizeof(*sc));
    sc->s = s;
    sc->len = len;
    sc->mask = mask;
    return true;
}

void ap_detect_scan_init(struct ap_detect_scan *sc, unsigned mask, const char *s, size_t len)
{
    if (!ap_detect_scan_start(sc, mask, s, len)) {
        memset(sc, 0, sizeof(*sc));
        sc->s = s;
        sc->len = len;
    }
}

bool ap_detect_scan_next(struct ap_detect_scan *sc, struct ap_detect_match *m)
{
    size_t best = SIZE_MAX, best_len = 0;
    int best_k = -1;
    for (int k = 0; k < AP_DETECT_REGEX; k++) {
        unsigned bit = 1u << k;
        if (!(sc->mask & bit))
            continue;
        if (!(sc->have & bit) || sc->next_off[k] < sc->from) {
            finder f = k == AP_DETECT_IP ? find_ip : finders[k];
            size_t o, l;
            if (!f(sc->s, sc->len, sc->from, &o, &l)) {
                sc->mask &= ~bit;
                sc->have &= ~bit;
                continue;
            }
            sc->next_off[k] = o;
            sc->next_len[k] = l;
            sc->have |= bit;
        }
        if (sc->next_off[k] < best || (sc->next_off[k] == best && sc->next_len[k] > best_len)) {
            best = sc->next_off[k];
            best_len = sc->next_len[k];
            best_k = k;
        }
    }
    if (best_k < 0)
        return false;
    m->off = best;
    m->len = best_len;
    m->kind = (enum ap_detect_kind)best_k;
    sc->from = best + best_len;
    return true;
}

bool ap_detect_may_match(unsigned mask, const char *s, size_t len)
{
    ensure_cls();
    unsigned acc = 0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4)
        acc |= cls[U(i)] | cls[U(i + 1)] | cls[U(i + 2)] | cls[U(i + 3)];
    for (; i < len; i++)
        acc |= cls[U(i)];
    if ((mask & (1u << AP_DETECT_EMAIL)) && (acc & (C_AT | C_PCT)))
        return true;
    /* Digits alone: an IPv4 address takes 7 bytes at least ("1.2.3.4"), an
     * IMEI 15, and an IPv6 address has colons (the next test). Short
     * values, the most common, stop here. */
    if ((mask & ((1u << AP_DETECT_IP) | (1u << AP_DETECT_IMEI))) && (acc & C_DIGIT) && len >= 7)
        return true;
    if ((mask & ((1u << AP_DETECT_IP) | (1u << AP_DETECT_MAC))) && (acc & C_MISC) && (acc & (C_DIGIT | C_HEXL)))
        return true;
    /* A phone number is a sign and 7 digits at least. */
    if ((mask & (1u << AP_DETECT_PHONE)) && (acc & (C_MISC | C_PCT)) && (acc & C_DIGIT) && len >= 8)
        return true;
    if ((mask & (1u << AP_DETECT_CLICKID)) && len > 8 && (s[0] == 'h' || s[0] == 'H') &&
        memchr(s, '?', len) != NULL)
        return true;
    return false;
}

static const char *const kind_names[AP_DETECT_NKINDS] = {
    "email", "ip", "mac", "imei", "phone", "click-id", "regex",
};

const char *ap_detect_kind_name(enum ap_detect_kind k)
{
    return (unsigned)k < AP_DETECT_NKINDS ? kind_names[k] : "?";
}

int ap_detect_kind_parse(const char *s, enum ap_detect_kind *out)
{
    for (unsigned k = 0; k < AP_DETECT_NKINDS; k++) {
        if (strcmp(s, kind_names[k]) == 0) {
            *out = (enum ap_detect_kind)k;
            return 0;
        }
    }
    return -EINVAL;
}

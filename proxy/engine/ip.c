/* IP addresses and CIDR prefixes. Every parser here sees untrusted text
 * (headers, PROXY lines, configuration), so each one is strict, works on
 * (pointer, length) input without a NUL, and never reads past `len`. */
#include "anonproxy/common.h"

#include <errno.h>
#include <netinet/in.h>

#include "anonproxy/ip.h"

/* Longest zone id we accept. Interface names are at most 15 bytes on Linux;
 * the slack covers numeric and percent-encoded forms. */
#define ZONE_MAX 64

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Strict dotted quad: exactly four parts of 1..3 digits, each 0..255, no
 * leading zero (which some resolvers read as octal), nothing after. */
static int parse_v4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        if (i >= len || !is_digit(s[i]))
            return -EINVAL;
        if (s[i] == '0' && i + 1 < len && is_digit(s[i + 1]))
            return -EINVAL;
        unsigned v = 0;
        int digits = 0;
        while (i < len && is_digit(s[i])) {
            if (++digits > 3)
                return -EINVAL;
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        if (v > 255)
            return -EINVAL;
        out[part] = (uint8_t)v;
        if (part < 3) {
            if (i >= len || s[i] != '.')
                return -EINVAL;
            i++;
        }
    }
    return i == len ? 0 : -EINVAL;
}

/* RFC 4291 section 2.2 text forms: eight groups of 1..4 hex digits, at most
 * one "::" standing for one or more zero groups, and optionally a dotted
 * quad in place of the last two groups. */
static int parse_v6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t groups[8];
    int ng = 0;
    int gap = -1; /* index in groups where "::" stands, or -1 */
    size_t i = 0;

    if (len < 2)
        return -EINVAL;
    if (s[0] == ':') {
        if (s[1] != ':')
            return -EINVAL;
        gap = 0;
        i = 2;
    }
    while (i < len) {
        size_t start = i;
        unsigned v = 0;
        while (i < len && hex_value(s[i]) >= 0) {
            if (i - start == 4)
                break;
            v = (v << 4) | (unsigned)hex_value(s[i]);
            i++;
        }
        if (i < len && hex_value(s[i]) >= 0)
            return -EINVAL; /* a fifth hex digit */
        if (i < len && s[i] == '.') {
            /* The last 32 bits written as a dotted quad. */
            if (ng > 6)
                return -EINVAL;
            uint8_t q[4];
            if (parse_v4(s + start, len - start, q) != 0)
                return -EINVAL;
            groups[ng++] = (uint16_t)(q[0] << 8 | q[1]);
            groups[ng++] = (uint16_t)(q[2] << 8 | q[3]);
            i = len;
            break;
        }
        if (i == start || ng == 8)
            return -EINVAL;
        groups[ng++] = (uint16_t)v;
        if (i == len)
            break;
        if (s[i] != ':')
            return -EINVAL;
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0)
                return -EINVAL;
            gap = ng;
            i++;
        } else if (i == len) {
            return -EINVAL; /* a single trailing colon */
        }
    }

    if (gap < 0) {
        if (ng != 8)
            return -EINVAL;
    } else if (ng > 7) {
        return -EINVAL; /* "::" must stand for at least one group */
    }

    int fill = 8 - ng;
    int o = 0;
    for (int g = 0; g < ng; g++) {
        if (g == gap)
            for (int z = 0; z < fill; z++, o++)
                out[2 * o] = out[2 * o + 1] = 0;
        out[2 * o] = (uint8_t)(groups[g] >> 8);
        out[2 * o + 1] = (uint8_t)groups[g];
        o++;
    }
    if (gap == ng)
        for (; o < 8; o++)
            out[2 * o] = out[2 * o + 1] = 0;
    AP_BUG_ON(o != 8);
    return 0;
}

static bool is_zone_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '%';
}

static int parse_addr(struct ap_ip *out, const char *s, size_t len, bool allow_zone)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || len == 0)
        return -EINVAL;

    const char *pct = memchr(s, '%', len);
    size_t alen = pct ? (size_t)(pct - s) : len;
    if (pct != NULL) {
        size_t zlen = len - alen - 1;
        if (!allow_zone || zlen == 0 || zlen > ZONE_MAX)
            return -EINVAL;
        for (size_t i = 0; i < zlen; i++)
            if (!is_zone_char(pct[1 + i]))
                return -EINVAL;
    }

    if (memchr(s, ':', alen) != NULL) {
        if (parse_v6(s, alen, out->bytes) != 0) {
            memset(out, 0, sizeof(*out));
            return -EINVAL;
        }
        out->family = 6;
        return 0;
    }
    /* Zone ids belong to IPv6 scoped addresses only. */
    if (pct != NULL || parse_v4(s, alen, out->bytes) != 0) {
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    out->family = 4;
    return 0;
}

int ap_ip_parse(struct ap_ip *out, const char *s, size_t len)
{
    return parse_addr(out, s, len, true);
}

static int parse_port(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return -EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return -EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535 ? (int)v : -EINVAL;
}

int ap_ip_parse_hostport(struct ap_ip *out, int *port, const char *s, size_t len)
{
    *port = -1;
    memset(out, 0, sizeof(*out));
    if (s == NULL || len == 0)
        return -EINVAL;

    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -EINVAL;
        size_t alen = (size_t)(close - s) - 1;
        size_t rest = len - alen - 2;
        if (ap_ip_parse(out, s + 1, alen) != 0 || out->family != 6)
            goto bad;
        if (rest == 0)
            return 0;
        if (close[1] != ':')
            goto bad;
        int p = parse_port(close + 2, rest - 1);
        if (p < 0)
            goto bad;
        *port = p;
        return 0;
    }

    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return parse_addr(out, s, len, false);
    size_t hlen = (size_t)(colon - s);
    if (memchr(colon + 1, ':', len - hlen - 1) != NULL)
        return ap_ip_parse(out, s, len); /* bare IPv6, no port possible */
    if (parse_v4(s, hlen, out->bytes) != 0)
        goto bad;
    int p = parse_port(colon + 1, len - hlen - 1);
    if (p < 0)
        goto bad;
    out->family = 4;
    *port = p;
    return 0;

bad:
    memset(out, 0, sizeof(*out));
    *port = -1;
    return -EINVAL;
}

/* A tiny bounded writer so the formatter can neither overflow nor need
 * snprintf for every group. */
struct out {
    char *buf;
    size_t size;
    size_t len;
    bool overflow;
};

static void put_char(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len++] = c;
    else
        o->overflow = true;
}

static void put_str(struct out *o, const char *s)
{
    while (*s)
        put_char(o, *s++);
}

static void put_dec(struct out *o, unsigned v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        put_char(o, tmp[--n]);
}

static void put_hex16(struct out *o, unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 0xf;
        if (d || started || shift == 0) {
            put_char(o, digits[d]);
            started = true;
        }
    }
}

static void put_v4(struct out *o, const uint8_t b[4])
{
    for (int i = 0; i < 4; i++) {
        if (i)
            put_char(o, '.');
        put_dec(o, b[i]);
    }
}

static void put_v6(struct out *o, const uint8_t b[16])
{
    if (memcmp(b, v4_mapped_prefix, 12) == 0) {
        put_str(o, "::ffff:");
        put_v4(o, b + 12);
        return;
    }
    unsigned g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (unsigned)(b[2 * i] << 8 | b[2 * i + 1]);

    /* RFC 5952 4.2: shorten the longest run of zero groups, the first one
     * on a tie, and never a lone zero group. */
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            put_str(o, "::");
            i += best_len - 1;
            continue;
        }
        if (i && i != best + best_len)
            put_char(o, ':');
        put_hex16(o, g[i]);
    }
}

static int finish(struct out *o)
{
    if (o->size)
        o->buf[o->overflow ? 0 : o->len] = '\0';
    return o->overflow ? -ENOSPC : (int)o->len;
}

int ap_ip_format(const struct ap_ip *ip, char *buf, size_t size)
{
    struct out o = {buf, size, 0, size == 0};

    if (ip->family == 4)
        put_v4(&o, ip->bytes);
    else if (ip->family == 6)
        put_v6(&o, ip->bytes);
    else {
        if (size)
            buf[0] = '\0';
        return -EINVAL;
    }
    return finish(&o);
}

int ap_ip_from_sockaddr(struct ap_ip *out, int *port, const struct sockaddr *sa, size_t salen)
{
    memset(out, 0, sizeof(*out));
    if (port)
        *port = -1;
    if (sa == NULL || salen < sizeof(sa_family_t))
        return -EINVAL;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        if (salen < sizeof(sin))
            return -EINVAL;
        memcpy(&sin, sa, sizeof(sin)); /* the caller's buffer may be unaligned */
        out->family = 4;
        memcpy(out->bytes, &sin.sin_addr, 4);
        if (port)
            *port = ntohs(sin.sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        if (salen < sizeof(sin6))
            return -EINVAL;
        memcpy(&sin6, sa, sizeof(sin6));
        out->family = 6;
        memcpy(out->bytes, &sin6.sin6_addr, 16);
        if (port)
            *port = ntohs(sin6.sin6_port);
        return 0;
    }
    return -EAFNOSUPPORT;
}

bool ap_ip_is_v4_mapped(const struct ap_ip *ip)
{
    return ip->family == 6 && memcmp(ip->bytes, v4_mapped_prefix, 12) == 0;
}

void ap_ip_unmap(struct ap_ip *ip)
{
    if (!ap_ip_is_v4_mapped(ip))
        return;
    uint8_t v4[4];
    memcpy(v4, ip->bytes + 12, 4);
    memset(ip->bytes, 0, sizeof(ip->bytes));
    memcpy(ip->bytes, v4, 4);
    ip->family = 4;
}

bool ap_ip_is_equal(const struct ap_ip *a, const struct ap_ip *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

/* Clear every bit of `b` (nbytes long) from bit `prefix` on. */
static void clear_after(uint8_t *b, size_t nbytes, unsigned prefix)
{
    size_t full = prefix / 8;
    unsigned rem = prefix % 8;
    if (full < nbytes && rem) {
        b[full] &= (uint8_t)(0xffu << (8 - rem));
        full++;
    }
    if (full < nbytes)
        memset(b + full, 0, nbytes - full);
}

/* True when the first `prefix` bits of a and b agree. */
static bool same_prefix(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    size_t full = prefix / 8;
    unsigned rem = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rem));
    return (a[full] & mask) == (b[full] & mask);
}

int ap_ip_truncate(struct ap_ip *out, const struct ap_ip *in, unsigned v4_prefix, unsigned v6_prefix)
{
    struct ap_ip t = *in;

    ap_ip_unmap(&t);
    if (t.family == 4) {
        if (v4_prefix > 32)
            return -EINVAL;
        clear_after(t.bytes, 4, v4_prefix);
    } else if (t.family == 6) {
        if (v6_prefix > 128)
            return -EINVAL;
        clear_after(t.bytes, 16, v6_prefix);
    } else {
        return -EINVAL;
    }
    *out = t;
    return 0;
}

int ap_cidr_parse(struct ap_cidr *out, const char *s, size_t len)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return -EINVAL;

    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (parse_addr(&out->net, s, alen, false) != 0)
        return -EINVAL;
    unsigned max = out->net.family == 4 ? 32 : 128;
    unsigned prefix = max;

    if (slash != NULL) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3 || (p[0] == '0' && plen > 1))
            goto bad;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!is_digit(p[i]))
                goto bad;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > max)
            goto bad;
    }

    struct ap_ip masked = out->net;
    clear_after(masked.bytes, 16, prefix);
    if (!ap_ip_is_equal(&masked, &out->net))
        goto bad;

    if (out->net.family == 6 && prefix >= 96 && ap_ip_is_v4_mapped(&out->net)) {
        ap_ip_unmap(&out->net);
        prefix -= 96;
    }
    out->prefix = (uint8_t)prefix;
    return 0;

bad:
    memset(out, 0, sizeof(*out));
    return -EINVAL;
}

int ap_cidr_format(const struct ap_cidr *c, char *buf, size_t size)
{
    char tmp[AP_IP_STRLEN];
    int n = ap_ip_format(&c->net, tmp, sizeof(tmp));
    if (n < 0) {
        if (size)
            buf[0] = '\0';
        return n;
    }
    struct out o = {buf, size, 0, size == 0};
    put_str(&o, tmp);
    put_char(&o, '/');
    put_dec(&o, c->prefix);
    return finish(&o);
}

bool ap_cidr_contains(const struct ap_cidr *c, const struct ap_ip *ip)
{
    struct ap_ip a = *ip;

    ap_ip_unmap(&a);
    if (a.family == c->net.family)
        return same_prefix(a.bytes, c->net.bytes, c->prefix);
    if (a.family == 4 && c->net.family == 6) {
        /* Compare the mapped form, so that ::/0 or ::ffff:0:0/95 cover
         * IPv4 peers too. Mapped prefixes of /96 and longer were turned
         * into IPv4 prefixes by ap_cidr_parse and matched above. */
        uint8_t mapped[16];
        memcpy(mapped, v4_mapped_prefix, 12);
        memcpy(mapped + 12, a.bytes, 4);
        return same_prefix(mapped, c->net.bytes, c->prefix);
    }
    return false;
}

void ap_cidr_list_init(struct ap_cidr_list *l)
{
    memset(l, 0, sizeof(*l));
    l->magic = AP_CIDR_LIST_MAGIC;
}

int ap_cidr_list_add(struct ap_cidr_list *l, const struct ap_cidr *c)
{
    AP_CHECK_OBJ(l, AP_CIDR_LIST_MAGIC);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        if (nc > SIZE_MAX / sizeof(*l->items))
            return -ENOMEM;
        struct ap_cidr *ni = realloc(l->items, nc * sizeof(*ni));
        if (ni == NULL)
            return -ENOMEM;
        l->items = ni;
        l->cap = nc;
    }
    l->items[l->n++] = *c;
    return 0;
}

static bool is_list_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int ap_cidr_list_parse(struct ap_cidr_list *l, const char *s, size_t len, size_t *err_off)
{
    AP_CHECK_OBJ(l, AP_CIDR_LIST_MAGIC);
    size_t n_before = l->n;
    size_t i = 0;

    while (i < len) {
        if (is_list_sep(s[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && !is_list_sep(s[i]))
            i++;
        struct ap_cidr c;
        int rc = ap_cidr_parse(&c, s + start, i - start);
        if (rc == 0)
            rc = ap_cidr_list_add(l, &c);
        if (rc != 0) {
            l->n = n_before;
            if (err_off)
                *err_off = start;
            return rc;
        }
    }
    return 0;
}

bool ap_cidr_list_contains(const struct ap_cidr_list *l, const struct ap_ip *ip)
{
    AP_CHECK_OBJ(l, AP_CIDR_LIST_MAGIC);
    for (size_t i = 0; i < l->n; i++)
        if (ap_cidr_contains(&l->items[i], ip))
            return true;
    return false;
}

void ap_cidr_list_free(struct ap_cidr_list *l)
{
    AP_CHECK_OBJ(l, AP_CIDR_LIST_MAGIC);
    free(l->items);
    l->items = NULL;
    l->n = 0;
    l->cap = 0;
}

/* Client address resolution. The contract and the trust rule are written
 * in include/anonproxy/clientaddr.h; this file walks the header lists from
 * the right without allocating: a reverse scanner finds each list element's
 * bounds (tracking quoted strings for Forwarded), then a forward parser
 * reads just that element. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/clientaddr.h"
#include "anonproxy/ip.h"

/* Longest decoded Forwarded "for" value we look at: a bracketed IPv6
 * address with zone and port fits easily; longer values are not
 * addresses. */
#define NODE_MAX 128

enum node_kind {
    NODE_ADDR,
    NODE_INVALID,
    NODE_UNKNOWN,
    NODE_OBFUSCATED,
};

struct node {
    enum node_kind kind;
    struct ap_ip ip;
    int port;
};

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ASCII-only comparison: strncasecmp follows the locale, and header names
 * must not change meaning under, say, a Turkish locale. `lower` is already
 * lower case and NUL-terminated. */
static bool name_is(const char *p, size_t len, const char *lower)
{
    size_t i = 0;
    for (; i < len; i++)
        if (lower[i] == '\0' || ascii_lower(p[i]) != lower[i])
            return false;
    return lower[i] == '\0';
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar: a visible ASCII character that is not a delimiter. A
 * switch, because this runs for every byte of a Forwarded header. */
static bool is_tchar(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f)
        return false;
    switch (c) {
    case '"': case '(': case ')': case ',': case '/': case ':': case ';': case '<': case '=':
    case '>': case '?': case '@': case '[': case '\\': case ']': case '{': case '}':
        return false;
    default:
        return true;
    }
}

/* RFC 7239 obfnode / obfport characters after the leading '_'. */
static bool is_obf_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool is_obfuscated(const char *p, size_t len)
{
    if (len < 2 || p[0] != '_')
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_obf_char(p[i]))
            return false;
    return true;
}

static const char *header_name(enum ap_clientaddr_header h)
{
    return h == AP_CLIENTADDR_HDR_XFF ? "x-forwarded-for" : "forwarded";
}

/* Yields the elements of every line of one header, last line first, each
 * line's elements right to left, with OWS trimmed and empty ones skipped. */
struct rev_list {
    const struct ap_header *headers;
    size_t line;  /* headers[line] is being read when `active` */
    size_t end;   /* unread part of that line: value.p[0..end) */
    bool active;
    bool quoted;  /* Forwarded: track quoted strings */
    const char *name;
    size_t name_len;
};

static void rev_list_init(struct rev_list *it, const struct ap_header *headers, size_t nheaders,
                          enum ap_clientaddr_header h)
{
    it->headers = headers;
    it->line = nheaders;
    it->end = 0;
    it->active = false;
    it->quoted = h == AP_CLIENTADDR_HDR_FORWARDED;
    it->name = header_name(h);
    it->name_len = strlen(it->name);
}

/* Start of the element ending at `end`: one past the nearest comma outside
 * a quoted string, or 0. A quote is escaped when an odd number of
 * backslashes precedes it; each backslash run is counted by the one quote
 * that follows it, so the scan stays linear. *unbalanced is set when a
 * quoted string has no opening quote (only possible in malformed input). */
static size_t element_start(const char *p, size_t end, bool quoted, bool *unbalanced)
{
    bool in_string = false;
    size_t i = end;

    *unbalanced = false;
    while (i > 0) {
        char c = p[i - 1];
        if (quoted && c == '"') {
            size_t bs = 0;
            while (bs < i - 1 && p[i - 2 - bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                in_string = !in_string;
        } else if (c == ',' && !in_string) {
            return i;
        }
        i--;
    }
    *unbalanced = in_string;
    return 0;
}

static bool rev_list_next(struct rev_list *it, const char **ep, size_t *elen, bool *unbalanced)
{
    for (;;) {
        if (!it->active) {
            while (it->line > 0) {
                it->line--;
                const struct ap_slice *n = &it->headers[it->line].name;
                if (n->len == it->name_len && name_is(n->p, n->len, it->name)) {
                    it->active = true;
                    it->end = it->headers[it->line].value.len;
                    break;
                }
            }
            if (!it->active)
                return false;
        }
        const char *p = it->headers[it->line].value.p;
        size_t end = it->end;
        size_t start = p ? element_start(p, end, it->quoted, unbalanced) : 0;
        if (start == 0)
            it->active = false;
        else
            it->end = start - 1;
        while (start < end && is_ows(p[start]))
            start++;
        while (end > start && is_ows(p[end - 1]))
            end--;
        if (end > start) {
            *ep = p + start;
            *elen = end - start;
            return true;
        }
    }
}

static void parse_xff_entry(const char *p, size_t len, struct node *n)
{
    n->port = -1;
    memset(&n->ip, 0, sizeof(n->ip));
    if (name_is(p, len, "unknown")) {
        n->kind = NODE_UNKNOWN;
        return;
    }
    n->kind = ap_ip_parse_hostport(&n->ip, &n->port, p, len) == 0 ? NODE_ADDR : NODE_INVALID;
}

/* RFC 7239 node: nodename [ ":" node-port ], already unquoted. */
static void parse_forwarded_node(const char *v, size_t len, struct node *n)
{
    enum node_kind kind;
    const char *port = NULL;
    size_t plen = 0;

    n->kind = NODE_INVALID;
    n->port = -1;
    memset(&n->ip, 0, sizeof(n->ip));
    if (len == 0)
        return;

    if (v[0] == '[') {
        const char *close = memchr(v, ']', len);
        if (close == NULL)
            return;
        size_t nlen = (size_t)(close - v) - 1;
        size_t rest = len - nlen - 2;
        if (rest > 0) {
            if (close[1] != ':')
                return;
            port = close + 2;
            plen = rest - 1;
        }
        if (ap_ip_parse(&n->ip, v + 1, nlen) != 0 || n->ip.family != 6)
            return;
        kind = NODE_ADDR;
    } else {
        size_t nlen = len;
        const char *colon = memchr(v, ':', len);
        if (colon != NULL) {
            nlen = (size_t)(colon - v);
            port = colon + 1;
            plen = len - nlen - 1;
        }
        if (name_is(v, nlen, "unknown"))
            kind = NODE_UNKNOWN;
        else if (is_obfuscated(v, nlen))
            kind = NODE_OBFUSCATED;
        else if (ap_ip_parse(&n->ip, v, nlen) == 0 && n->ip.family == 4)
            kind = NODE_ADDR;
        else
            return; /* also IPv6 without brackets: its last group looks like a port */
    }

    int pv = -1;
    if (port != NULL && !is_obfuscated(port, plen)) {
        /* An obfuscated port hides the port, not the address. */
        if (plen == 0 || plen > 5)
            goto bad;
        unsigned acc = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                goto bad;
            acc = acc * 10 + (unsigned)(port[i] - '0');
        }
        if (acc > 65535)
            goto bad;
        pv = (int)acc;
    }
    n->kind = kind;
    n->port = kind == NODE_ADDR ? pv : -1;
    return;

bad:
    memset(&n->ip, 0, sizeof(n->ip));
}

/* Characters we accept in an unquoted value: RFC 7239 says token, but some
 * proxies write for=[2001:db8::1]:80 without the quotes. */
static bool is_value_char(unsigned char c)
{
    return is_tchar(c) || c == ':' || c == '[' || c == ']';
}

/* Parse one Forwarded element (the bytes between two commas) and describe
 * its "for" node. */
static void parse_forwarded_element(const char *p, size_t len, struct node *n)
{
    char forv[NODE_MAX];
    size_t forlen = 0;
    bool have_for = false;
    unsigned seen = 0; /* bit per registered parameter: for, by, host, proto */
    size_t i = 0;

    n->kind = NODE_INVALID;
    n->port = -1;
    memset(&n->ip, 0, sizeof(n->ip));

    for (;;) {
        while (i < len && is_ows(p[i]))
            i++;
        if (i == len)
            break;
        if (p[i] == ';') { /* an empty pair */
            i++;
            continue;
        }

        size_t name = i;
        while (i < len && is_tchar((unsigned char)p[i]))
            i++;
        size_t name_len = i - name;
        if (name_len == 0 || i == len || p[i] != '=')
            return;
        i++;

        static const char *const known[] = {"for", "by", "host", "proto"};
        bool is_for = false;
        for (unsigned k = 0; k < AP_ARRAY_SIZE(known); k++) {
            if (name_is(p + name, name_len, known[k])) {
                if (seen & (1u << k))
                    return; /* RFC 7239 4: at most once per element */
                seen |= 1u << k;
                is_for = k == 0;
            }
        }

        size_t vlen = 0;
        if (i < len && p[i] == '"') {
            i++;
            bool closed = false;
            while (i < len) {
                unsigned char c = (unsigned char)p[i];
                if (c == '"') {
                    closed = true;
                    i++;
                    break;
                }
                if (c == '\\') {
                    if (++i == len)
                        return;
                    c = (unsigned char)p[i];
                    if (c < 0x20 ? c != '\t' : c == 0x7f)
                        return;
                } else if (c < 0x20 ? c != '\t' : c == 0x7f) {
                    return;
                }
                if (is_for) {
                    if (vlen == sizeof(forv))
                        return;
                    forv[vlen] = (char)c;
                }
                vlen++;
                i++;
            }
            if (!closed)
                return;
        } else {
            size_t start = i;
            while (i < len && is_value_char((unsigned char)p[i]))
                i++;
            vlen = i - start;
            if (vlen == 0)
                return;
            if (is_for) {
                if (vlen > sizeof(forv))
                    return;
                memcpy(forv, p + start, vlen);
            }
        }
        if (is_for) {
            have_for = true;
            forlen = vlen;
        }

        while (i < len && is_ows(p[i]))
            i++;
        if (i == len)
            break;
        if (p[i] != ';')
            return;
        i++;
    }

    if (!have_for) {
        n->kind = NODE_UNKNOWN; /* this hop did not say where it came from */
        return;
    }
    parse_forwarded_node(forv, forlen, n);
}

static void set_result(struct ap_clientaddr_result *out, const struct ap_ip *ip, int port,
                       enum ap_clientaddr_stop stop)
{
    out->addr = *ip;
    out->port = port;
    out->stop = stop;
}

/* Walk one header kind. Returns false when it had no non-empty element,
 * so the next configured header is tried. */
static bool walk(const struct ap_clientaddr_config *cfg, const struct ap_ip *peer,
                 const struct ap_header *headers, size_t nheaders, enum ap_clientaddr_header h,
                 struct ap_clientaddr_result *out)
{
    struct rev_list it;
    struct ap_ip cur = *peer;
    int cur_port = -1;
    unsigned hops = 0;
    const char *e;
    size_t elen;
    bool unbalanced = false;

    rev_list_init(&it, headers, nheaders, h);
    while (rev_list_next(&it, &e, &elen, &unbalanced)) {
        struct node n;
        if (hops < UINT32_MAX)
            hops++;
        if (h == AP_CLIENTADDR_HDR_XFF)
            parse_xff_entry(e, elen, &n);
        else if (unbalanced)
            n.kind = NODE_INVALID;
        else
            parse_forwarded_element(e, elen, &n);

        out->header = h;
        out->hops = hops;
        switch (n.kind) {
        case NODE_INVALID:
            set_result(out, &cur, cur_port, AP_CLIENTADDR_STOP_INVALID);
            return true;
        case NODE_UNKNOWN:
            set_result(out, &cur, cur_port, AP_CLIENTADDR_STOP_UNKNOWN);
            return true;
        case NODE_OBFUSCATED:
            set_result(out, &cur, cur_port, AP_CLIENTADDR_STOP_OBFUSCATED);
            return true;
        case NODE_ADDR:
            break;
        }
        ap_ip_unmap(&n.ip);
        if (!ap_cidr_list_contains(cfg->trusted, &n.ip)) {
            set_result(out, &n.ip, n.port, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);
            return true;
        }
        cur = n.ip;
        cur_port = n.port;
    }
    if (hops == 0)
        return false;
    set_result(out, &cur, cur_port, AP_CLIENTADDR_STOP_ALL_TRUSTED);
    return true;
}

void ap_clientaddr_config_init(struct ap_clientaddr_config *cfg, const struct ap_cidr_list *trusted)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->magic = AP_CLIENTADDR_CONFIG_MAGIC;
    cfg->trusted = trusted;
    cfg->order[0] = AP_CLIENTADDR_HDR_XFF;
    cfg->norder = 1;
}

int ap_clientaddr_config_set_headers(struct ap_clientaddr_config *cfg, const char *spec, size_t len)
{
    AP_CHECK_OBJ(cfg, AP_CLIENTADDR_CONFIG_MAGIC);
    enum ap_clientaddr_header order[AP_CLIENTADDR_MAX_HEADERS];
    unsigned n = 0;
    size_t i = 0;

    if (spec == NULL)
        return -EINVAL;
    while (i < len) {
        if (spec[i] == ',' || is_ows(spec[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && spec[i] != ',' && !is_ows(spec[i]))
            i++;
        enum ap_clientaddr_header h;
        if (name_is(spec + start, i - start, "x-forwarded-for"))
            h = AP_CLIENTADDR_HDR_XFF;
        else if (name_is(spec + start, i - start, "forwarded"))
            h = AP_CLIENTADDR_HDR_FORWARDED;
        else
            return -EINVAL;
        for (unsigned k = 0; k < n; k++)
            if (order[k] == h)
                return -EINVAL;
        if (n == AP_CLIENTADDR_MAX_HEADERS)
            return -EINVAL;
        order[n++] = h;
    }
    if (n == 0)
        return -EINVAL;
    memcpy(cfg->order, order, n * sizeof(order[0]));
    cfg->norder = n;
    return 0;
}

int ap_clientaddr_resolve(const struct ap_clientaddr_config *cfg, const struct ap_ip *peer,
                          const struct ap_header *headers, size_t nheaders,
                          struct ap_clientaddr_result *out)
{
    if (cfg == NULL || peer == NULL || out == NULL || (headers == NULL && nheaders > 0))
        return -EINVAL;
    AP_CHECK_OBJ(cfg, AP_CLIENTADDR_CONFIG_MAGIC);
    memset(out, 0, sizeof(*out));
    out->port = -1;
    if (peer->family != 4 && peer->family != 6)
        return -EINVAL;

    struct ap_ip p = *peer;
    ap_ip_unmap(&p);
    out->addr = p;
    out->stop = AP_CLIENTADDR_STOP_PEER_UNTRUSTED;
    if (cfg->trusted == NULL || !ap_cidr_list_contains(cfg->trusted, &p))
        return 0;

    for (unsigned k = 0; k < cfg->norder; k++)
        if (walk(cfg, &p, headers, nheaders, cfg->order[k], out))
            return 0;
    out->stop = AP_CLIENTADDR_STOP_NO_HEADER;
    return 0;
}

static const char *const address_headers[] = {
    "x-forwarded-for", "x-real-ip",        "forwarded",   "true-client-ip",
    "cf-connecting-ip", "fastly-client-ip", "x-client-ip", "x-cluster-client-ip",
};

const char *ap_clientaddr_address_header(size_t i)
{
    return i < AP_ARRAY_SIZE(address_headers) ? address_headers[i] : NULL;
}

bool ap_clientaddr_is_address_header(const char *name, size_t len)
{
    /* Every header of every request is asked about: the length and the
     * first letter pick the one candidate to compare. */
    if (name == NULL || len == 0)
        return false;
    char c = ascii_lower(name[0]);
    switch (len) {
    case 9:
        return (c == 'x' && name_is(name, len, "x-real-ip")) ||
               (c == 'f' && name_is(name, len, "forwarded"));
    case 11:
        return c == 'x' && name_is(name, len, "x-client-ip");
    case 14:
        return c == 't' && name_is(name, len, "true-client-ip");
    case 15:
        return c == 'x' && name_is(name, len, "x-forwarded-for");
    case 16:
        return (c == 'c' && name_is(name, len, "cf-connecting-ip")) ||
               (c == 'f' && name_is(name, len, "fastly-client-ip"));
    case 19:
        return c == 'x' && name_is(name, len, "x-cluster-client-ip");
    default:
        return false;
    }
}

const char *ap_clientaddr_stop_name(enum ap_clientaddr_stop stop)
{
    switch (stop) {
    case AP_CLIENTADDR_STOP_PEER_UNTRUSTED:
        return "peer-untrusted";
    case AP_CLIENTADDR_STOP_NO_HEADER:
        return "no-header";
    case AP_CLIENTADDR_STOP_UNTRUSTED_HOP:
        return "untrusted-hop";
    case AP_CLIENTADDR_STOP_ALL_TRUSTED:
        return "all-trusted";
    case AP_CLIENTADDR_STOP_INVALID:
        return "invalid";
    case AP_CLIENTADDR_STOP_UNKNOWN:
        return "unknown";
    case AP_CLIENTADDR_STOP_OBFUSCATED:
        return "obfuscated";
    }
    return "?";
}

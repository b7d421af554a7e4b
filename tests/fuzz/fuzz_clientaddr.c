/* Fuzz client address resolution (proxy/engine/clientaddr.c) and the
 * address parsers under it (proxy/engine/ip.c).
 *
 * Input: byte 0 picks the header order and the peer; the rest is lines
 * separated by '\n', each "<kind><value>" where kind 'x'/'X' is an
 * X-Forwarded-For line, 'f'/'F' a Forwarded line (mixed-case names), and
 * anything else an unrelated header. The whole remainder is also fed to
 * the IP, host:port and CIDR parsers, whose results must round-trip. */
#include "anonproxy/common.h"

#include "anonproxy/clientaddr.h"
#include "anonproxy/ip.h"

#define MAX_HEADERS 64

static struct ap_cidr_list trusted;
static struct ap_clientaddr_config configs[4];

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    ap_cidr_list_init(&trusted);
    const char *t = "10.0.0.0/8 2001:db8::/32 127.0.0.1 ::ffff:192.168.0.0/112 fe80::/10";
    AP_BUG_ON(ap_cidr_list_parse(&trusted, t, strlen(t), NULL) != 0);
    static const char *const orders[4] = {"x-forwarded-for", "forwarded", "forwarded x-forwarded-for",
                                          "X-Forwarded-For,Forwarded"};
    for (int i = 0; i < 4; i++) {
        ap_clientaddr_config_init(&configs[i], &trusted);
        AP_BUG_ON(ap_clientaddr_config_set_headers(&configs[i], orders[i], strlen(orders[i])) != 0);
    }
}

/* Parse, format, parse again: the canonical form must be a fixed point. */
static void check_roundtrip(const char *p, size_t n)
{
    struct ap_ip ip, again;
    char buf[AP_IP_STRLEN];
    int port;

    if (ap_ip_parse(&ip, p, n) == 0) {
        int len = ap_ip_format(&ip, buf, sizeof(buf));
        AP_BUG_ON(len <= 0 || (size_t)len >= sizeof(buf));
        AP_BUG_ON(ap_ip_parse(&again, buf, (size_t)len) != 0);
        AP_BUG_ON(!ap_ip_is_equal(&ip, &again));
        struct ap_ip t;
        AP_BUG_ON(ap_ip_truncate(&t, &ip, AP_IP_TRUNCATE_V4_DEFAULT, AP_IP_TRUNCATE_V6_DEFAULT) != 0);
    }
    if (ap_ip_parse_hostport(&ip, &port, p, n) == 0) {
        AP_BUG_ON(ip.family != 4 && ip.family != 6);
        AP_BUG_ON(port < -1 || port > 65535);
    } else {
        AP_BUG_ON(port != -1 || ip.family != 0);
    }
    struct ap_cidr c, c2;
    if (ap_cidr_parse(&c, p, n) == 0) {
        char cb[AP_CIDR_STRLEN];
        int len = ap_cidr_format(&c, cb, sizeof(cb));
        AP_BUG_ON(len <= 0);
        AP_BUG_ON(ap_cidr_parse(&c2, cb, (size_t)len) != 0);
        AP_BUG_ON(memcmp(&c, &c2, sizeof(c)) != 0);
        AP_BUG_ON(!ap_cidr_contains(&c, &c.net));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ap_header h[MAX_HEADERS];
    size_t nh = 0;

    init_once();
    if (size == 0)
        return 0;
    unsigned sel = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    check_roundtrip(p, n);

    static const char *const names[] = {"X-Forwarded-For", "x-FORWARDED-for", "Forwarded", "FORWARDED",
                                        "X-Real-IP"};
    size_t i = 0;
    while (i < n && nh < MAX_HEADERS) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        if (end > i) {
            char kind = p[i];
            const char *name = kind == 'x' ? names[0] : kind == 'X' ? names[1]
                             : kind == 'f' ? names[2] : kind == 'F' ? names[3] : names[4];
            h[nh].name = (struct ap_slice){name, strlen(name)};
            h[nh].value = (struct ap_slice){p + i + 1, end - i - 1};
            AP_BUG_ON(!ap_clientaddr_is_address_header(name, strlen(name)));
            nh++;
        }
        i = end + 1;
    }

    struct ap_ip peer;
    const char *peer_txt = (sel & 4) ? ((sel & 8) ? "::ffff:10.0.0.1" : "2001:db8::1")
                                     : ((sel & 8) ? "203.0.113.1" : "10.0.0.1");
    AP_BUG_ON(ap_ip_parse(&peer, peer_txt, strlen(peer_txt)) != 0);

    struct ap_clientaddr_result r;
    AP_BUG_ON(ap_clientaddr_resolve(&configs[sel & 3], &peer, h, nh, &r) != 0);
    AP_BUG_ON(r.addr.family != 4 && r.addr.family != 6);
    AP_BUG_ON(ap_ip_is_v4_mapped(&r.addr));
    AP_BUG_ON(r.port < -1 || r.port > 65535);
    bool is_trusted = ap_cidr_list_contains(&trusted, &r.addr);
    switch (r.stop) {
    case AP_CLIENTADDR_STOP_PEER_UNTRUSTED:
        AP_BUG_ON(is_trusted || r.hops != 0 || r.header != AP_CLIENTADDR_HDR_NONE);
        break;
    case AP_CLIENTADDR_STOP_UNTRUSTED_HOP:
        AP_BUG_ON(is_trusted || r.hops == 0);
        break;
    case AP_CLIENTADDR_STOP_NO_HEADER:
        AP_BUG_ON(r.hops != 0);
        /* fall through */
    case AP_CLIENTADDR_STOP_ALL_TRUSTED:
    case AP_CLIENTADDR_STOP_INVALID:
    case AP_CLIENTADDR_STOP_UNKNOWN:
    case AP_CLIENTADDR_STOP_OBFUSCATED:
        /* The client is then a hop we trust (or the trusted peer). */
        AP_BUG_ON(!is_trusted);
        break;
    }
    AP_BUG_ON(r.hops > n + nh);
    char buf[AP_IP_STRLEN];
    AP_BUG_ON(ap_ip_format(&r.addr, buf, sizeof(buf)) <= 0);
    return 0;
}

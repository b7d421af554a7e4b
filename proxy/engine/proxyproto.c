/* PROXY protocol header parser (HAProxy doc/proxy-protocol.txt, v1 and v2).
 * The listener only expects this header from trusted load balancers, and
 * the spec forbids guessing whether it is present, so every deviation is an
 * error, reported at the first byte that proves it. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/ip.h"
#include "anonproxy/proxyproto.h"

static const uint8_t v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define PP2_TYPE_CRC32C 0x03

/* Longest address text per family: "255.255.255.255" and an IPv6 address
 * with an embedded dotted quad. */
#define V1_V4_MAX 15
#define V1_V6_MAX 45

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Can these bytes still grow into a strict dotted quad? Lets a v1 TCP4
 * address fail at its first impossible character rather than at the
 * following space. */
static bool v4_prefix_ok(const uint8_t *s, size_t n)
{
    int dots = 0, digits = 0;
    unsigned v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (digits == 0 || ++dots > 3)
                return false;
            digits = 0;
            v = 0;
        } else if (is_digit(s[i])) {
            if (digits == 1 && v == 0)
                return false; /* leading zero */
            if (++digits > 3)
                return false;
            v = v * 10 + (unsigned)(s[i] - '0');
            if (v > 255)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

static bool v6_char_ok(uint8_t c)
{
    return is_hex(c) || c == ':' || c == '.';
}

/* Read one address field of a TCP4/TCP6 line starting at *pos and ending
 * with a space. Returns 1 when complete (*pos past the space), 0 when more
 * bytes are needed, or an error. */
static int v1_addr(const uint8_t *buf, size_t len, size_t *pos, int family, struct ap_ip *ip)
{
    size_t start = *pos, i = start;
    size_t max = family == 4 ? V1_V4_MAX : V1_V6_MAX;

    for (; i < len && buf[i] != ' '; i++) {
        if (i - start >= max)
            return AP_PROXYPROTO_ERR_V1_ADDRESS;
        if (family == 6 && !v6_char_ok(buf[i]))
            return AP_PROXYPROTO_ERR_V1_ADDRESS;
    }
    if (family == 4 && !v4_prefix_ok(buf + start, i - start))
        return AP_PROXYPROTO_ERR_V1_ADDRESS;
    if (i == len)
        return 0;
    if (i == start)
        return AP_PROXYPROTO_ERR_V1_SYNTAX; /* two spaces */
    if (ap_ip_parse(ip, (const char *)buf + start, i - start) != 0 || ip->family != family)
        return AP_PROXYPROTO_ERR_V1_ADDRESS;
    *pos = i + 1;
    return 1;
}

/* Read a port ending with `term`. Same returns as v1_addr. */
static int v1_port(const uint8_t *buf, size_t len, size_t *pos, uint8_t term, uint16_t *port)
{
    size_t start = *pos, i = start;
    unsigned v = 0;

    for (; i < len && buf[i] != term; i++) {
        if (!is_digit(buf[i]))
            return buf[i] == ' ' || buf[i] == '\r' || buf[i] == '\n' ? AP_PROXYPROTO_ERR_V1_SYNTAX
                                                                     : AP_PROXYPROTO_ERR_V1_ADDRESS;
        if (i > start && v == 0)
            return AP_PROXYPROTO_ERR_V1_ADDRESS; /* leading zero */
        v = v * 10 + (unsigned)(buf[i] - '0');
        if (v > 65535)
            return AP_PROXYPROTO_ERR_V1_ADDRESS;
    }
    if (i == len)
        return 0;
    if (i == start)
        return AP_PROXYPROTO_ERR_V1_SYNTAX;
    *port = (uint16_t)v;
    *pos = i + 1;
    return 1;
}

static int parse_v1(const uint8_t *buf, size_t len, struct ap_proxyproto_result *out)
{
    /* Whatever arrives after byte 107 cannot be part of the header. */
    size_t n = len < AP_PROXYPROTO_V1_MAX_LEN ? len : AP_PROXYPROTO_V1_MAX_LEN;
    static const char *const protos[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    size_t i;
    int rc;

    for (i = 0; i < sizeof(v1_sig); i++) {
        if (i == n)
            return 0;
        if (buf[i] != v1_sig[i])
            return AP_PROXYPROTO_ERR_SIGNATURE;
    }

    int proto = -1;
    bool possible = false;
    for (int k = 0; k < 3; k++) {
        size_t plen = strlen(protos[k]);
        size_t m = n - i < plen ? n - i : plen;
        if (memcmp(buf + i, protos[k], m) != 0)
            continue;
        if (m == plen)
            proto = k;
        else
            possible = true;
    }
    if (proto < 0)
        return possible ? 0 : AP_PROXYPROTO_ERR_V1_SYNTAX;
    i += strlen(protos[proto]);

    out->version = 1;
    out->command = AP_PROXYPROTO_CMD_PROXY;

    if (proto == 2) {
        /* UNKNOWN: the receiver ignores the rest of the line, but the line
         * must still end with a real CRLF within the length limit. */
        if (i == n)
            return len > n ? AP_PROXYPROTO_ERR_V1_TOO_LONG : 0;
        if (buf[i] != '\r' && buf[i] != ' ')
            return AP_PROXYPROTO_ERR_V1_SYNTAX;
        for (; i < n; i++) {
            if (buf[i] == '\n')
                return AP_PROXYPROTO_ERR_V1_SYNTAX;
            if (buf[i] != '\r')
                continue;
            if (i + 1 == n)
                break;
            if (buf[i + 1] != '\n')
                return AP_PROXYPROTO_ERR_V1_SYNTAX;
            out->family = AP_PROXYPROTO_AF_UNSPEC;
            return (int)(i + 2);
        }
        return n == AP_PROXYPROTO_V1_MAX_LEN ? AP_PROXYPROTO_ERR_V1_TOO_LONG : 0;
    }

    int family = proto == 0 ? 4 : 6;
    out->family = family == 4 ? AP_PROXYPROTO_AF_INET : AP_PROXYPROTO_AF_INET6;
    out->transport = AP_PROXYPROTO_TR_STREAM;
    if ((rc = v1_addr(buf, n, &i, family, &out->src)) <= 0 ||
        (rc = v1_addr(buf, n, &i, family, &out->dst)) <= 0 ||
        (rc = v1_port(buf, n, &i, ' ', &out->src_port)) <= 0 ||
        (rc = v1_port(buf, n, &i, '\r', &out->dst_port)) <= 0)
        goto partial;
    if (i == n) {
        rc = 0;
        goto partial;
    }
    if (buf[i] != '\n')
        return AP_PROXYPROTO_ERR_V1_SYNTAX;
    out->has_addr = true;
    return (int)(i + 1);

partial:
    if (rc == 0 && n == AP_PROXYPROTO_V1_MAX_LEN)
        rc = AP_PROXYPROTO_ERR_V1_TOO_LONG;
    memset(out, 0, sizeof(*out));
    return rc;
}

/* CRC32C (Castagnoli, reflected 0x82f63b78) over buf[0..len) with the four
 * bytes at `skip` read as zeros, as the spec computes PP2_TYPE_CRC32C. A
 * bitwise loop is enough for at most AP_PROXYPROTO_MAX_LEN bytes once per
 * connection. */
static uint32_t crc32c_skipping(const uint8_t *buf, size_t len, size_t skip)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (i >= skip && i < skip + 4) ? 0 : buf[i];
        crc ^= b;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return crc ^ 0xffffffffu;
}

static int parse_v2(const uint8_t *buf, size_t len, struct ap_proxyproto_result *out)
{
    static const size_t addr_len[4] = {0, 12, 36, 216};

    for (size_t i = 0; i < sizeof(v2_sig); i++) {
        if (i == len)
            return 0;
        if (buf[i] != v2_sig[i])
            return AP_PROXYPROTO_ERR_SIGNATURE;
    }
    if (len < 13)
        return 0;
    if (buf[12] >> 4 != 2)
        return AP_PROXYPROTO_ERR_V2_VERSION;
    unsigned cmd = buf[12] & 0x0f;
    if (cmd > AP_PROXYPROTO_CMD_PROXY)
        return AP_PROXYPROTO_ERR_V2_COMMAND;
    if (len < 14)
        return 0;
    unsigned fam = buf[13] >> 4, tr = buf[13] & 0x0f;
    /* LOCAL ignores the family byte entirely, as the spec says. */
    if (cmd == AP_PROXYPROTO_CMD_PROXY && (fam > 3 || tr > 2))
        return AP_PROXYPROTO_ERR_V2_FAMILY;
    if (len < AP_PROXYPROTO_V2_HEADER_LEN)
        return 0;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    size_t total = AP_PROXYPROTO_V2_HEADER_LEN + body;
    if (total > AP_PROXYPROTO_MAX_LEN)
        return AP_PROXYPROTO_ERR_V2_TOO_LONG;
    if (cmd == AP_PROXYPROTO_CMD_PROXY && body < addr_len[fam])
        return AP_PROXYPROTO_ERR_V2_ADDR_LEN;
    if (len < total)
        return 0;

    out->version = 2;
    out->command = (enum ap_proxyproto_command)cmd;
    if (cmd == AP_PROXYPROTO_CMD_LOCAL)
        return (int)total;

    const uint8_t *a = buf + AP_PROXYPROTO_V2_HEADER_LEN;
    static const enum ap_proxyproto_family fams[4] = {
        AP_PROXYPROTO_AF_UNSPEC, AP_PROXYPROTO_AF_INET, AP_PROXYPROTO_AF_INET6, AP_PROXYPROTO_AF_UNIX};
    out->family = fams[fam];
    out->transport = (enum ap_proxyproto_transport)tr;
    if (fam == 1 || fam == 2) {
        size_t alen = fam == 1 ? 4 : 16;
        out->src.family = out->dst.family = fam == 1 ? 4 : 6;
        memcpy(out->src.bytes, a, alen);
        memcpy(out->dst.bytes, a + alen, alen);
        out->src_port = (uint16_t)(a[2 * alen] << 8 | a[2 * alen + 1]);
        out->dst_port = (uint16_t)(a[2 * alen + 2] << 8 | a[2 * alen + 3]);
        /* The spec asks receivers to ignore addresses of an UNSPEC transport. */
        out->has_addr = tr != AP_PROXYPROTO_TR_UNSPEC;
    }

    size_t off = AP_PROXYPROTO_V2_HEADER_LEN + addr_len[fam];
    size_t crc_at = 0;
    out->tlv_off = off;
    out->tlv_len = total - off;
    while (off < total) {
        if (total - off < 3)
            goto bad_tlv;
        uint8_t type = buf[off];
        size_t tlen = (size_t)buf[off + 1] << 8 | buf[off + 2];
        if (tlen > total - off - 3)
            goto bad_tlv;
        if (type == PP2_TYPE_CRC32C) {
            if (tlen != 4 || crc_at != 0)
                goto bad_tlv;
            crc_at = off + 3;
        }
        off += 3 + tlen;
    }
    if (crc_at != 0) {
        uint32_t want = (uint32_t)buf[crc_at] << 24 | (uint32_t)buf[crc_at + 1] << 16 |
                        (uint32_t)buf[crc_at + 2] << 8 | buf[crc_at + 3];
        if (crc32c_skipping(buf, total, crc_at) != want) {
            memset(out, 0, sizeof(*out));
            return AP_PROXYPROTO_ERR_V2_CRC;
        }
    }
    return (int)total;

bad_tlv:
    memset(out, 0, sizeof(*out));
    return AP_PROXYPROTO_ERR_V2_TLV;
}

int ap_proxyproto_parse(const uint8_t *buf, size_t len, struct ap_proxyproto_result *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return 0;
    if (buf == NULL)
        return -EINVAL;
    if (buf[0] == v1_sig[0])
        return parse_v1(buf, len, out);
    if (buf[0] == v2_sig[0])
        return parse_v2(buf, len, out);
    return AP_PROXYPROTO_ERR_SIGNATURE;
}

const char *ap_proxyproto_strerror(int err)
{
    switch (err) {
    case AP_PROXYPROTO_ERR_SIGNATURE:
        return "not a PROXY protocol header";
    case AP_PROXYPROTO_ERR_V1_SYNTAX:
        return "PROXY v1: malformed line";
    case AP_PROXYPROTO_ERR_V1_TOO_LONG:
        return "PROXY v1: no CRLF within 107 bytes";
    case AP_PROXYPROTO_ERR_V1_ADDRESS:
        return "PROXY v1: invalid address or port";
    case AP_PROXYPROTO_ERR_V2_VERSION:
        return "PROXY v2: unsupported version";
    case AP_PROXYPROTO_ERR_V2_COMMAND:
        return "PROXY v2: unknown command";
    case AP_PROXYPROTO_ERR_V2_FAMILY:
        return "PROXY v2: unknown address family or transport";
    case AP_PROXYPROTO_ERR_V2_TOO_LONG:
        return "PROXY v2: header too long";
    case AP_PROXYPROTO_ERR_V2_ADDR_LEN:
        return "PROXY v2: length shorter than the addresses";
    case AP_PROXYPROTO_ERR_V2_TLV:
        return "PROXY v2: malformed TLV";
    case AP_PROXYPROTO_ERR_V2_CRC:
        return "PROXY v2: CRC32C mismatch";
    }
    if (err == -EINVAL)
        return "invalid argument";
    return err > 0 ? "complete" : err == 0 ? "incomplete" : "unknown error";
}

/* Unit tests of proxy/engine/proxyproto.c: PROXY protocol v1 and v2,
 * complete, byte-by-byte incremental, and every error as early as it can
 * be known. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "anonproxy/ip.h"
#include "anonproxy/proxyproto.h"

static const uint8_t sig2[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static const char *fmt(const struct ap_ip *ip)
{
    static char buf[2][AP_IP_STRLEN];
    static int k;
    k ^= 1;
    if (ap_ip_format(ip, buf[k], sizeof(buf[k])) < 0)
        return "ERR";
    return buf[k];
}

/* Parse `buf` whole, and check that every strict prefix needs more. */
static int parse_all(const uint8_t *buf, size_t len, struct ap_proxyproto_result *r)
{
    int rc = ap_proxyproto_parse(buf, len, r);
    if (rc > 0) {
        for (size_t n = 0; n < (size_t)rc; n++) {
            struct ap_proxyproto_result tmp;
            int prc = ap_proxyproto_parse(buf, n, &tmp);
            if (prc != 0)
                fail_msg("prefix of %zu bytes: %d, want 0", n, prc);
        }
    }
    return rc;
}

static int parse_str(const char *s, struct ap_proxyproto_result *r)
{
    return parse_all((const uint8_t *)s, strlen(s), r);
}

/* The shortest prefix of `s` at which parsing fails, with the code. */
static size_t fail_at(const char *s, int *code)
{
    size_t len = strlen(s);
    for (size_t n = 1; n <= len; n++) {
        struct ap_proxyproto_result r;
        int rc = ap_proxyproto_parse((const uint8_t *)s, n, &r);
        if (rc < 0) {
            *code = rc;
            return n;
        }
        if (rc > 0)
            fail_msg("\"%s\" parsed (%d)", s, rc);
    }
    *code = 0;
    return 0;
}

static void test_v1_tcp4(void **state)
{
    (void)state;
    struct ap_proxyproto_result r;
    const char *line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(parse_str(line, &r), 47);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.command, AP_PROXYPROTO_CMD_PROXY);
    assert_int_equal(r.family, AP_PROXYPROTO_AF_INET);
    assert_int_equal(r.transport, AP_PROXYPROTO_TR_STREAM);
    assert_true(r.has_addr);
    assert_string_equal(fmt(&r.src), "192.168.0.1");
    assert_string_equal(fmt(&r.dst), "192.168.0.11");
    assert_int_equal(r.src_port, 56324);
    assert_int_equal(r.dst_port, 443);

    const char *max = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_int_equal(parse_str(max, &r), 56);
    assert_int_equal(r.src_port, 65535);
    assert_int_equal(parse_str("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", &r), 32);
    assert_int_equal(r.src_port, 0);
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    struct ap_proxyproto_result r;
    const char *line = "PROXY TCP6 2001:db8::1 2001:DB8::2 1 65535\r\n";
    assert_int_equal(parse_str(line, &r), (int)strlen(line));
    assert_int_equal(r.family, AP_PROXYPROTO_AF_INET6);
    assert_string_equal(fmt(&r.src), "2001:db8::1");
    assert_string_equal(fmt(&r.dst), "2001:db8::2");
    assert_int_equal(r.src_port, 1);

    /* The longest v6 line of the spec (104 bytes). */
    const char *full = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(full), 104);
    assert_int_equal(parse_str(full, &r), 104);

    /* Mapped addresses are reported as sent. */
    line = "PROXY TCP6 ::ffff:192.0.2.1 ::1 80 81\r\n";
    assert_int_equal(parse_str(line, &r), (int)strlen(line));
    assert_true(ap_ip_is_v4_mapped(&r.src));
}

static void test_v1_unknown(void **state)
{
    (void)state;
    struct ap_proxyproto_result r;
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &r), 15);
    assert_int_equal(r.version, 1);
    assert_false(r.has_addr);
    assert_int_equal(r.family, AP_PROXYPROTO_AF_UNSPEC);

    const char *longer = "PROXY UNKNOWN ffff:f...f:ffff whatever 65535 65535\r\nrest";
    assert_int_equal(parse_str(longer, &r), (int)strlen(longer) - 4);
    assert_false(r.has_addr);

    /* 107 bytes exactly is the limit. */
    char buf[200] = "PROXY UNKNOWN ";
    memset(buf + 14, 'x', 91);
    memcpy(buf + 105, "\r\n", 3);
    assert_int_equal(strlen(buf), 107);
    assert_int_equal(parse_str(buf, &r), 107);
    memset(buf + 14, 'x', 92);
    memcpy(buf + 106, "\r\n", 3);
    int code;
    assert_int_equal(fail_at(buf, &code), 107);
    assert_int_equal(code, AP_PROXYPROTO_ERR_V1_TOO_LONG);
}

static void test_v1_errors_are_early(void **state)
{
    (void)state;
    struct {
        const char *in;
        size_t at;
        int code;
    } cases[] = {
        {"GET / HTTP/1.1\r\n", 1, AP_PROXYPROTO_ERR_SIGNATURE},
        {"PRXY TCP4", 3, AP_PROXYPROTO_ERR_SIGNATURE},
        {"proxy TCP4", 1, AP_PROXYPROTO_ERR_SIGNATURE},
        {"PROXY  TCP4", 7, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP5 ", 10, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4  1.2.3.4", 12, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY UDP4 ", 8, AP_PROXYPROTO_ERR_V1_SYNTAX}, /* "U" may start UNKNOWN */
        {"PROXY UNKNOWNX\r\n", 14, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY UNKNOWN\n", 14, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY UNKNOWN\rX", 15, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY UNKNOWN x\ny\r\n", 16, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4 01.2.3.4 ", 13, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 256.1.1.1 ", 14, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", 17, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 1..2.3.4 ", 14, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 ::1 ::1 1 2\r\n", 12, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n", 19, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP6 fe80::1%eth0 ", 19, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP6 1::2::3 ::1 1 2\r\n", 19, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 29, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 32, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 31, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 32, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 29, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", 30, AP_PROXYPROTO_ERR_V1_SYNTAX},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 a 2\r\n", 28, AP_PROXYPROTO_ERR_V1_ADDRESS},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", 31, AP_PROXYPROTO_ERR_V1_ADDRESS},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        int code;
        size_t at = fail_at(cases[i].in, &code);
        if (at != cases[i].at || code != cases[i].code)
            fail_msg("\"%s\": failed at %zu with %d (%s), want %zu with %d", cases[i].in, at, code,
                     ap_proxyproto_strerror(code), cases[i].at, cases[i].code);
    }
}

static void test_v1_too_long(void **state)
{
    (void)state;
    /* A TCP6 line with embedded-IPv4 addresses can pass 107 bytes. */
    const char *s = "PROXY TCP6 1111:2222:3333:4444:5555:6666:123.123.123.123 "
                    "1111:2222:3333:4444:5555:6666:123.123.123.123 65535 65535\r\n";
    int code;
    assert_int_equal(fail_at(s, &code), 107);
    assert_int_equal(code, AP_PROXYPROTO_ERR_V1_TOO_LONG);

    /* An address field longer than any address fails at once. */
    char buf[200] = "PROXY TCP6 ";
    memset(buf + 11, 'a', 60);
    assert_int_equal(fail_at(buf, &code), 11 + 46);
    assert_int_equal(code, AP_PROXYPROTO_ERR_V1_ADDRESS);
}

/* Build a v2 header into `b`: returns its length. */
static size_t v2(uint8_t *b, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t body_len)
{
    memcpy(b, sig2, 12);
    b[12] = ver_cmd;
    b[13] = fam;
    b[14] = (uint8_t)(body_len >> 8);
    b[15] = (uint8_t)body_len;
    if (body_len)
        memcpy(b + 16, body, body_len);
    return 16 + body_len;
}

static void test_v2_inet(void **state)
{
    (void)state;
    uint8_t b[512];
    struct ap_proxyproto_result r;
    const uint8_t body[] = {192, 0, 2, 1, 198, 51, 100, 2, 0x1f, 0x90, 0x01, 0xbb};
    size_t n = v2(b, 0x21, 0x11, body, sizeof(body));
    memcpy(b + n, "GET", 3);
    assert_int_equal(parse_all(b, n + 3, &r), 28);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.command, AP_PROXYPROTO_CMD_PROXY);
    assert_int_equal(r.family, AP_PROXYPROTO_AF_INET);
    assert_int_equal(r.transport, AP_PROXYPROTO_TR_STREAM);
    assert_true(r.has_addr);
    assert_string_equal(fmt(&r.src), "192.0.2.1");
    assert_string_equal(fmt(&r.dst), "198.51.100.2");
    assert_int_equal(r.src_port, 8080);
    assert_int_equal(r.dst_port, 443);
    assert_int_equal(r.tlv_off, 28);
    assert_int_equal(r.tlv_len, 0);

    /* UDP is reported; UNSPEC transport hides the addresses. */
    n = v2(b, 0x21, 0x12, body, sizeof(body));
    assert_int_equal(parse_all(b, n, &r), 28);
    assert_int_equal(r.transport, AP_PROXYPROTO_TR_DGRAM);
    assert_true(r.has_addr);
    n = v2(b, 0x21, 0x10, body, sizeof(body));
    assert_int_equal(parse_all(b, n, &r), 28);
    assert_false(r.has_addr);
}

static void test_v2_inet6_and_tlvs(void **state)
{
    (void)state;
    uint8_t b[512], body[128] = {0};
    struct ap_proxyproto_result r;
    body[0] = 0x20;
    body[1] = 0x01;
    body[2] = 0x0d;
    body[3] = 0xb8;
    body[15] = 1;
    body[31] = 1; /* dst ::1 */
    body[32] = 0x30;
    body[33] = 0x39; /* 12345 */
    body[34] = 0;
    body[35] = 80;
    /* TLVs: ALPN "h2", NOOP of length 0, a custom TLV of 5 bytes. */
    const uint8_t tlvs[] = {0x01, 0, 2, 'h', '2', 0x04, 0, 0, 0xe0, 0, 5, 1, 2, 3, 4, 5};
    memcpy(body + 36, tlvs, sizeof(tlvs));
    size_t blen = 36 + sizeof(tlvs);
    size_t n = v2(b, 0x21, 0x21, body, blen);
    assert_int_equal(parse_all(b, n, &r), (int)n);
    assert_int_equal(r.family, AP_PROXYPROTO_AF_INET6);
    assert_string_equal(fmt(&r.src), "2001:db8::1");
    assert_string_equal(fmt(&r.dst), "::1");
    assert_int_equal(r.src_port, 12345);
    assert_int_equal(r.dst_port, 80);
    assert_int_equal(r.tlv_off, 52);
    assert_int_equal(r.tlv_len, sizeof(tlvs));

    /* A TLV one byte longer than the header: rejected. */
    body[36 + 2] = 3;
    n = v2(b, 0x21, 0x21, body, blen);
    assert_int_equal(ap_proxyproto_parse(b, n, &r), AP_PROXYPROTO_ERR_V2_TLV);
    body[36 + 2] = 2;
    /* Trailing bytes too short to be a TLV: rejected. */
    n = v2(b, 0x21, 0x21, body, blen + 2);
    assert_int_equal(ap_proxyproto_parse(b, n, &r), AP_PROXYPROTO_ERR_V2_TLV);
    /* Trailing complete empty TLV: fine. */
    n = v2(b, 0x21, 0x21, body, blen + 3);
    assert_int_equal(ap_proxyproto_parse(b, n, &r), (int)n);
}

static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

static void test_v2_crc32c(void **state)
{
    (void)state;
    /* The reference itself: the standard check value of CRC-32C. */
    assert_int_equal(crc32c_ref((const uint8_t *)"123456789", 9), 0xe3069283u);

    uint8_t b[128], body[64] = {127, 0, 0, 1, 127, 0, 0, 2, 0, 1, 0, 2};
    const uint8_t tlv[] = {0x03, 0, 4, 0, 0, 0, 0};
    memcpy(body + 12, tlv, sizeof(tlv));
    size_t n = v2(b, 0x21, 0x11, body, 12 + sizeof(tlv));
    uint32_t crc = crc32c_ref(b, n);
    b[n - 4] = (uint8_t)(crc >> 24);
    b[n - 3] = (uint8_t)(crc >> 16);
    b[n - 2] = (uint8_t)(crc >> 8);
    b[n - 1] = (uint8_t)crc;
    struct ap_proxyproto_result r;
    assert_int_equal(parse_all(b, n, &r), (int)n);
    assert_true(r.has_addr);

    b[n - 1] ^= 1;
    assert_int_equal(ap_proxyproto_parse(b, n, &r), AP_PROXYPROTO_ERR_V2_CRC);
    b[n - 1] ^= 1;
    b[17] ^= 1; /* a covered byte changes */
    assert_int_equal(ap_proxyproto_parse(b, n, &r), AP_PROXYPROTO_ERR_V2_CRC);

    /* A CRC TLV of the wrong size, or two of them: malformed. */
    const uint8_t bad[] = {0x03, 0, 3, 0, 0, 0};
    memcpy(body + 12, bad, sizeof(bad));
    n = v2(b, 0x21, 0x11, body, 12 + sizeof(bad));
    assert_int_equal(ap_proxyproto_parse(b, n, &r), AP_PROXYPROTO_ERR_V2_TLV);
    memcpy(body + 12, tlv, sizeof(tlv));
    memcpy(body + 12 + sizeof(tlv), tlv, sizeof(tlv));
    n = v2(b, 0x21, 0x11, body, 12 + 2 * sizeof(tlv));
    assert_int_equal(ap_proxyproto_parse(b, n, &r), AP_PROXYPROTO_ERR_V2_TLV);
}

static void test_v2_local_and_unspec(void **state)
{
    (void)state;
    uint8_t b[512], body[300] = {0};
    struct ap_proxyproto_result r;

    size_t n = v2(b, 0x20, 0x00, NULL, 0);
    assert_int_equal(parse_all(b, n, &r), 16);
    assert_int_equal(r.command, AP_PROXYPROTO_CMD_LOCAL);
    assert_false(r.has_addr);

    /* LOCAL skips its block unread, whatever the family byte says. */
    body[0] = 0xff;
    n = v2(b, 0x20, 0xff, body, 7);
    assert_int_equal(parse_all(b, n, &r), 23);
    assert_int_equal(r.command, AP_PROXYPROTO_CMD_LOCAL);

    /* PROXY with AF_UNSPEC: no addresses, the block is TLVs. */
    const uint8_t tlv[] = {0x05, 0, 1, 'x'};
    n = v2(b, 0x21, 0x00, tlv, sizeof(tlv));
    assert_int_equal(parse_all(b, n, &r), 20);
    assert_false(r.has_addr);
    assert_int_equal(r.tlv_off, 16);

    /* AF_UNIX: 216 address bytes, no IP addresses. */
    n = v2(b, 0x21, 0x31, body, 216);
    assert_int_equal(parse_all(b, n, &r), 232);
    assert_int_equal(r.family, AP_PROXYPROTO_AF_UNIX);
    assert_false(r.has_addr);
}

static void test_v2_errors(void **state)
{
    (void)state;
    uint8_t b[AP_PROXYPROTO_MAX_LEN + 64] = {0};
    struct ap_proxyproto_result r;

    /* Signature: the first wrong byte fails. */
    memcpy(b, sig2, 12);
    for (size_t i = 1; i < 12; i++) {
        b[i] ^= 0x40;
        assert_int_equal(ap_proxyproto_parse(b, i, &r), 0);
        assert_int_equal(ap_proxyproto_parse(b, i + 1, &r), AP_PROXYPROTO_ERR_SIGNATURE);
        b[i] ^= 0x40;
    }
    /* Version and command fail at byte 13, family at byte 14. */
    b[12] = 0x11;
    assert_int_equal(ap_proxyproto_parse(b, 13, &r), AP_PROXYPROTO_ERR_V2_VERSION);
    b[12] = 0x31;
    assert_int_equal(ap_proxyproto_parse(b, 13, &r), AP_PROXYPROTO_ERR_V2_VERSION);
    b[12] = 0x22;
    assert_int_equal(ap_proxyproto_parse(b, 13, &r), AP_PROXYPROTO_ERR_V2_COMMAND);
    b[12] = 0x2f;
    assert_int_equal(ap_proxyproto_parse(b, 13, &r), AP_PROXYPROTO_ERR_V2_COMMAND);
    b[12] = 0x21;
    assert_int_equal(ap_proxyproto_parse(b, 13, &r), 0);
    static const uint8_t badfam[] = {0x41, 0x13, 0x03, 0xf1, 0x1f};
    for (size_t i = 0; i < AP_ARRAY_SIZE(badfam); i++) {
        b[13] = badfam[i];
        assert_int_equal(ap_proxyproto_parse(b, 14, &r), AP_PROXYPROTO_ERR_V2_FAMILY);
    }
    /* Length: too long, or shorter than the addresses, fails at byte 16
     * before the body arrives. */
    b[13] = 0x11;
    b[14] = 0x0f;
    b[15] = 0xf1; /* 4081 + 16 > 4096 */
    assert_int_equal(ap_proxyproto_parse(b, 16, &r), AP_PROXYPROTO_ERR_V2_TOO_LONG);
    b[15] = 0xf0; /* exactly 4096 */
    assert_int_equal(ap_proxyproto_parse(b, 16, &r), 0);
    assert_int_equal(ap_proxyproto_parse(b, AP_PROXYPROTO_MAX_LEN - 1, &r), 0);
    /* The body is 12 address bytes then 4068 zeros: 1356 empty TLVs of
     * type 0, so the longest header is valid. */
    assert_int_equal(ap_proxyproto_parse(b, AP_PROXYPROTO_MAX_LEN, &r), AP_PROXYPROTO_MAX_LEN);
    assert_int_equal(r.tlv_len, 4068);
    b[15] = 0xef; /* 4067 TLV bytes: the last TLV is cut */
    assert_int_equal(ap_proxyproto_parse(b, AP_PROXYPROTO_MAX_LEN, &r), AP_PROXYPROTO_ERR_V2_TLV);
    b[14] = 0x0f;
    b[14] = 0;
    b[15] = 11;
    assert_int_equal(ap_proxyproto_parse(b, 16, &r), AP_PROXYPROTO_ERR_V2_ADDR_LEN);
    b[13] = 0x21;
    b[15] = 35;
    assert_int_equal(ap_proxyproto_parse(b, 16, &r), AP_PROXYPROTO_ERR_V2_ADDR_LEN);
    b[13] = 0x31;
    b[15] = 215;
    assert_int_equal(ap_proxyproto_parse(b, 16, &r), AP_PROXYPROTO_ERR_V2_ADDR_LEN);
}

static void test_first_byte(void **state)
{
    (void)state;
    struct ap_proxyproto_result r;
    assert_int_equal(ap_proxyproto_parse((const uint8_t *)"", 0, &r), 0);
    for (int c = 0; c < 256; c++) {
        uint8_t b = (uint8_t)c;
        int rc = ap_proxyproto_parse(&b, 1, &r);
        if (c == 'P' || c == 0x0d)
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, AP_PROXYPROTO_ERR_SIGNATURE);
    }
    /* TLS and HTTP/2 prefaces fail immediately. */
    const uint8_t tls[] = {0x16, 0x03, 0x01};
    assert_int_equal(ap_proxyproto_parse(tls, sizeof(tls), &r), AP_PROXYPROTO_ERR_SIGNATURE);
    assert_int_equal(ap_proxyproto_parse((const uint8_t *)"PRI * HTTP/2.0", 14, &r), AP_PROXYPROTO_ERR_SIGNATURE);
    assert_int_equal(ap_proxyproto_parse(NULL, 5, &r), -EINVAL);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = AP_PROXYPROTO_ERR_V2_CRC; e <= AP_PROXYPROTO_ERR_SIGNATURE; e++)
        assert_string_not_equal(ap_proxyproto_strerror(e), "unknown error");
    assert_string_equal(ap_proxyproto_strerror(AP_PROXYPROTO_ERR_SIGNATURE), "not a PROXY protocol header");
    assert_string_equal(ap_proxyproto_strerror(-5000), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),          cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),       cmocka_unit_test(test_v1_errors_are_early),
        cmocka_unit_test(test_v1_too_long),      cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_inet6_and_tlvs), cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_v2_local_and_unspec), cmocka_unit_test(test_v2_errors),
        cmocka_unit_test(test_first_byte),       cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

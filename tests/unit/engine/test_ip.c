/* Unit tests of proxy/engine/ip.c: parsing, RFC 5952 formatting, CIDR
 * matching and truncation. */
#include "anonproxy/common.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "anonproxy/ip.h"

/* Parse `in` and return its canonical text in a static buffer, or
 * "ERR" when parsing fails. */
static const char *canon(const char *in)
{
    static char buf[AP_IP_STRLEN];
    struct ap_ip ip;
    if (ap_ip_parse(&ip, in, strlen(in)) != 0)
        return "ERR";
    assert_true(ap_ip_format(&ip, buf, sizeof(buf)) > 0);
    return buf;
}

static void test_v4_valid(void **state)
{
    (void)state;
    assert_string_equal(canon("0.0.0.0"), "0.0.0.0");
    assert_string_equal(canon("1.2.3.4"), "1.2.3.4");
    assert_string_equal(canon("255.255.255.255"), "255.255.255.255");
    assert_string_equal(canon("10.0.100.1"), "10.0.100.1");
    assert_string_equal(canon("192.0.2.0"), "192.0.2.0");

    struct ap_ip ip;
    assert_int_equal(ap_ip_parse(&ip, "192.0.2.7", 9), 0);
    assert_int_equal(ip.family, 4);
    const uint8_t want[16] = {192, 0, 2, 7};
    assert_memory_equal(ip.bytes, want, 16);
}

static void test_v4_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "1.2.3", "1.2.3.4.5", "010.1.1.1", "1.02.3.4", "1.2.3.00", "256.1.1.1",
        "1.2.3.256", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4%eth0",
        "1.2.3.-4", "1.2.3.4/8", "1234.1.1.1", "0x1.1.1.1", "1.2.3.4a", "a.b.c.d", "1.2.3.1000",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++) {
        struct ap_ip ip;
        memset(&ip, 0xaa, sizeof(ip));
        if (ap_ip_parse(&ip, bad[i], strlen(bad[i])) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ip.family, 0); /* zeroed on error */
    }
}

static void test_v6_forms(void **state)
{
    (void)state;
    assert_string_equal(canon("::"), "::");
    assert_string_equal(canon("::1"), "::1");
    assert_string_equal(canon("1::"), "1::");
    assert_string_equal(canon("2001:db8::1"), "2001:db8::1");
    assert_string_equal(canon("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
    assert_string_equal(canon("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
    assert_string_equal(canon("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
    assert_string_equal(canon("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0");
    assert_string_equal(canon("::2:3:4:5:6:7:8"), "0:2:3:4:5:6:7:8");
    assert_string_equal(canon("fe80::1%eth0"), "fe80::1");
    assert_string_equal(canon("fe80::1%25eth0"), "fe80::1");
    assert_string_equal(canon("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
    assert_string_equal(canon("::FFFF:c000:0201"), "::ffff:192.0.2.1");
    assert_string_equal(canon("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");
    assert_string_equal(canon("1:2:3:4:5:6:1.2.3.4"), "1:2:3:4:5:6:102:304");
    assert_string_equal(canon("::1.2.3.4"), "::102:304");
    /* RFC 5952 4.2.2: a single zero group is not shortened. */
    assert_string_equal(canon("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
    /* 4.2.3: the longest run wins, the first one on a tie. */
    assert_string_equal(canon("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
    assert_string_equal(canon("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
    assert_string_equal(canon("0:0:1:0:0:1:0:0"), "::1:0:0:1:0:0");
}

static void test_v6_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1::", "1::2:",
        "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "12345::", "g::1", "1:2:3:4:5:6:7:1.2.3.4",
        "::1.2.3", "::01.2.3.4", "::1.2.3.4:5", "::1.2.3.4.5", "fe80::1%", "fe80::1%eth 0",
        "[::1]", "::1 ", "1:2:3:4:5:6:7:8%", "::ffff:1.2.3.256", "1.2.3.4::",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++) {
        struct ap_ip ip;
        if (ap_ip_parse(&ip, bad[i], strlen(bad[i])) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* A zone may contain '%' (percent-encoded), so "::%eth0%" is valid. */
    assert_string_equal(canon("::%eth0%"), "::");
    /* A zone id longer than 64 bytes is refused. */
    char longz[100] = "fe80::1%";
    memset(longz + 8, 'a', 65);
    assert_string_equal(canon(longz), "ERR");
}

static void test_len_is_respected(void **state)
{
    (void)state;
    /* The parser must stop at len: the bytes after it are not part of the
     * address (no NUL needed). */
    struct ap_ip ip;
    assert_int_equal(ap_ip_parse(&ip, "1.2.3.45", 7), 0);
    char buf[AP_IP_STRLEN];
    ap_ip_format(&ip, buf, sizeof(buf));
    assert_string_equal(buf, "1.2.3.4");
    assert_int_equal(ap_ip_parse(&ip, "::1", 0), -EINVAL);
    assert_int_equal(ap_ip_parse(&ip, NULL, 3), -EINVAL);
}

static void test_hostport(void **state)
{
    (void)state;
    struct {
        const char *in;
        int rc;
        const char *addr;
        int port;
    } cases[] = {
        {"1.2.3.4", 0, "1.2.3.4", -1},
        {"1.2.3.4:5678", 0, "1.2.3.4", 5678},
        {"1.2.3.4:0", 0, "1.2.3.4", 0},
        {"1.2.3.4:65535", 0, "1.2.3.4", 65535},
        {"[2001:db8::1]:443", 0, "2001:db8::1", 443},
        {"[2001:db8::1]", 0, "2001:db8::1", -1},
        {"[fe80::1%eth0]:80", 0, "fe80::1", 80},
        {"2001:db8::1", 0, "2001:db8::1", -1},
        {"::ffff:1.2.3.4", 0, "::ffff:1.2.3.4", -1},
        {"1.2.3.4:65536", -EINVAL, NULL, -1},
        {"1.2.3.4:", -EINVAL, NULL, -1},
        {"1.2.3.4:123456", -EINVAL, NULL, -1},
        {"1.2.3.4:80a", -EINVAL, NULL, -1},
        {"[1.2.3.4]:80", -EINVAL, NULL, -1},
        {"[2001:db8::1]:", -EINVAL, NULL, -1},
        {"[2001:db8::1]443", -EINVAL, NULL, -1},
        {"[2001:db8::1", -EINVAL, NULL, -1},
        {"[]", -EINVAL, NULL, -1},
        {"", -EINVAL, NULL, -1},
        {"example.com:80", -EINVAL, NULL, -1},
        {"010.1.1.1:80", -EINVAL, NULL, -1},
        {"2001:db8::1:80:", -EINVAL, NULL, -1},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        struct ap_ip ip;
        int port = 12345;
        int rc = ap_ip_parse_hostport(&ip, &port, cases[i].in, strlen(cases[i].in));
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
        assert_int_equal(port, cases[i].port);
        if (rc == 0) {
            char buf[AP_IP_STRLEN];
            ap_ip_format(&ip, buf, sizeof(buf));
            assert_string_equal(buf, cases[i].addr);
        }
    }
}

static void test_format_errors(void **state)
{
    (void)state;
    struct ap_ip ip;
    char buf[AP_IP_STRLEN];
    assert_int_equal(ap_ip_parse(&ip, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 39), 0);
    assert_int_equal(ap_ip_format(&ip, buf, sizeof(buf)), 39);
    assert_int_equal(ap_ip_format(&ip, buf, 39), -ENOSPC);
    assert_string_equal(buf, "");
    assert_int_equal(ap_ip_format(&ip, buf, 40), 39);
    assert_int_equal(ap_ip_format(&ip, NULL, 0), -ENOSPC);

    /* The longest possible text fits AP_IP_STRLEN exactly. */
    assert_int_equal(ap_ip_parse(&ip, "::ffff:255.255.255.255", 22), 0);
    assert_int_equal(ap_ip_format(&ip, buf, sizeof(buf)), 22);

    memset(&ip, 0, sizeof(ip));
    assert_int_equal(ap_ip_format(&ip, buf, sizeof(buf)), -EINVAL);
    ip.family = 5;
    assert_int_equal(ap_ip_format(&ip, buf, sizeof(buf)), -EINVAL);
}

static void test_mapped(void **state)
{
    (void)state;
    struct ap_ip ip, v4;
    assert_int_equal(ap_ip_parse(&ip, "::ffff:10.1.2.3", 15), 0);
    assert_int_equal(ip.family, 6);
    assert_true(ap_ip_is_v4_mapped(&ip));
    assert_int_equal(ap_ip_parse(&v4, "10.1.2.3", 8), 0);
    assert_false(ap_ip_is_equal(&ip, &v4));
    ap_ip_unmap(&ip);
    assert_int_equal(ip.family, 4);
    assert_true(ap_ip_is_equal(&ip, &v4));
    assert_memory_equal(&ip, &v4, sizeof(ip));

    /* Not mapped: left alone. */
    assert_int_equal(ap_ip_parse(&ip, "::10.1.2.3", 10), 0);
    assert_false(ap_ip_is_v4_mapped(&ip));
    ap_ip_unmap(&ip);
    assert_int_equal(ip.family, 6);
    ap_ip_unmap(&v4);
    assert_int_equal(v4.family, 4);
}

static const char *trunc_str(const char *in, unsigned p4, unsigned p6)
{
    static char buf[AP_IP_STRLEN];
    struct ap_ip ip, out;
    assert_int_equal(ap_ip_parse(&ip, in, strlen(in)), 0);
    if (ap_ip_truncate(&out, &ip, p4, p6) != 0)
        return "ERR";
    ap_ip_format(&out, buf, sizeof(buf));
    return buf;
}

static void test_truncate(void **state)
{
    (void)state;
    assert_string_equal(trunc_str("192.0.2.77", 24, 48), "192.0.2.0");
    assert_string_equal(trunc_str("192.0.2.77", 32, 48), "192.0.2.77");
    assert_string_equal(trunc_str("192.0.2.77", 0, 48), "0.0.0.0");
    assert_string_equal(trunc_str("192.0.2.77", 25, 48), "192.0.2.0");
    assert_string_equal(trunc_str("192.0.2.200", 25, 48), "192.0.2.128");
    assert_string_equal(trunc_str("255.255.255.255", 1, 48), "128.0.0.0");
    assert_string_equal(trunc_str("255.255.255.255", 31, 48), "255.255.255.254");
    assert_string_equal(trunc_str("192.0.2.77", 33, 48), "ERR");
    assert_string_equal(trunc_str("2001:db8:1234:5678::1", 24, 48), "2001:db8:1234::");
    assert_string_equal(trunc_str("2001:db8:1234:5678::1", 24, 128), "2001:db8:1234:5678::1");
    assert_string_equal(trunc_str("2001:db8:1234:5678::1", 24, 0), "::");
    assert_string_equal(trunc_str("2001:db8:1234:5678::1", 24, 47), "2001:db8:1234::");
    assert_string_equal(trunc_str("2001:db8:1235:5678::1", 24, 47), "2001:db8:1234::");
    assert_string_equal(trunc_str("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 24, 127),
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    assert_string_equal(trunc_str("2001:db8::1", 24, 129), "ERR");
    /* IPv4-mapped addresses are truncated as IPv4 with the IPv4 prefix. */
    assert_string_equal(trunc_str("::ffff:192.0.2.77", 24, 48), "192.0.2.0");
    assert_string_equal(trunc_str("::ffff:192.0.2.77", 32, 0), "192.0.2.77");

    /* In place, and defaults. */
    struct ap_ip ip;
    assert_int_equal(ap_ip_parse(&ip, "203.0.113.9", 11), 0);
    assert_int_equal(ap_ip_truncate(&ip, &ip, AP_IP_TRUNCATE_V4_DEFAULT, AP_IP_TRUNCATE_V6_DEFAULT), 0);
    const uint8_t want[16] = {203, 0, 113, 0};
    assert_memory_equal(ip.bytes, want, 16);

    memset(&ip, 0, sizeof(ip));
    assert_int_equal(ap_ip_truncate(&ip, &ip, 24, 48), -EINVAL);
}

static void test_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(8080);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    struct ap_ip ip;
    int port;
    char buf[AP_IP_STRLEN];

    assert_int_equal(ap_ip_from_sockaddr(&ip, &port, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ap_ip_format(&ip, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(ap_ip_from_sockaddr(&ip, NULL, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(ap_ip_from_sockaddr(&ip, &port, (struct sockaddr *)&sin, sizeof(sin) - 1), -EINVAL);

    struct sockaddr_in6 sin6 = {0};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(443);
    sin6.sin6_addr.s6_addr[10] = 0xff;
    sin6.sin6_addr.s6_addr[11] = 0xff;
    sin6.sin6_addr.s6_addr[12] = 198;
    sin6.sin6_addr.s6_addr[13] = 51;
    sin6.sin6_addr.s6_addr[14] = 100;
    sin6.sin6_addr.s6_addr[15] = 7;
    sin6.sin6_scope_id = 3;
    assert_int_equal(ap_ip_from_sockaddr(&ip, &port, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
    assert_int_equal(ip.family, 6);
    assert_true(ap_ip_is_v4_mapped(&ip));
    assert_int_equal(port, 443);
    ap_ip_unmap(&ip);
    ap_ip_format(&ip, buf, sizeof(buf));
    assert_string_equal(buf, "198.51.100.7");

    struct sockaddr sa = {0};
    sa.sa_family = AF_UNIX;
    assert_int_equal(ap_ip_from_sockaddr(&ip, &port, &sa, sizeof(sa)), -EAFNOSUPPORT);
    assert_int_equal(port, -1);
    assert_int_equal(ap_ip_from_sockaddr(&ip, &port, &sa, 1), -EINVAL);
}

static const char *cidr_str(const char *in)
{
    static char buf[AP_CIDR_STRLEN];
    struct ap_cidr c;
    if (ap_cidr_parse(&c, in, strlen(in)) != 0)
        return "ERR";
    assert_true(ap_cidr_format(&c, buf, sizeof(buf)) > 0);
    return buf;
}

static void test_cidr_parse(void **state)
{
    (void)state;
    assert_string_equal(cidr_str("10.0.0.0/8"), "10.0.0.0/8");
    assert_string_equal(cidr_str("0.0.0.0/0"), "0.0.0.0/0");
    assert_string_equal(cidr_str("192.0.2.1"), "192.0.2.1/32");
    assert_string_equal(cidr_str("192.0.2.1/32"), "192.0.2.1/32");
    assert_string_equal(cidr_str("2001:db8::/32"), "2001:db8::/32");
    assert_string_equal(cidr_str("::/0"), "::/0");
    assert_string_equal(cidr_str("::1"), "::1/128");
    assert_string_equal(cidr_str("2001:db8::1/128"), "2001:db8::1/128");
    assert_string_equal(cidr_str("::ffff:10.0.0.0/104"), "10.0.0.0/8");
    assert_string_equal(cidr_str("::ffff:0:0/96"), "0.0.0.0/0");
    assert_string_equal(cidr_str("::fffe:0:0/95"), "::fffe:0:0/95");
    assert_string_equal(cidr_str("::ffff:0:0/95"), "ERR"); /* bit 95 is set */

    static const char *const bad[] = {
        "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/8/8",
        "2001:db8::/129", "2001:db8::1/64", "fe80::%eth0/64", "/8", "", "10.0.0/8", "10.0.0.0/1000",
        "10.0.0.0/ 8", "10.0.0.0 /8",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++)
        if (strcmp(cidr_str(bad[i]), "ERR") != 0)
            fail_msg("accepted \"%s\"", bad[i]);

    char small[8];
    struct ap_cidr c;
    assert_int_equal(ap_cidr_parse(&c, "10.0.0.0/8", 10), 0);
    assert_int_equal(ap_cidr_format(&c, small, sizeof(small)), -ENOSPC);
}

static bool contains(const char *cidr, const char *addr)
{
    struct ap_cidr c;
    struct ap_ip ip;
    assert_int_equal(ap_cidr_parse(&c, cidr, strlen(cidr)), 0);
    assert_int_equal(ap_ip_parse(&ip, addr, strlen(addr)), 0);
    return ap_cidr_contains(&c, &ip);
}

static void test_cidr_contains(void **state)
{
    (void)state;
    assert_true(contains("10.0.0.0/8", "10.255.1.2"));
    assert_false(contains("10.0.0.0/8", "11.0.0.0"));
    assert_true(contains("0.0.0.0/0", "203.0.113.1"));
    assert_true(contains("192.0.2.1", "192.0.2.1"));
    assert_false(contains("192.0.2.1", "192.0.2.2"));
    assert_true(contains("192.0.2.128/25", "192.0.2.255"));
    assert_false(contains("192.0.2.128/25", "192.0.2.127"));
    assert_true(contains("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(contains("2001:db8::/32", "2001:db9::1"));
    assert_true(contains("::1", "::1"));
    assert_true(contains("::/0", "2001:db8::1"));
    assert_true(contains("2001:db8::1/128", "2001:db8::1"));
    assert_false(contains("2001:db8::1/128", "2001:db8::2"));
    /* Mapped addresses match IPv4 prefixes, and the reverse. */
    assert_true(contains("10.0.0.0/8", "::ffff:10.9.9.9"));
    assert_true(contains("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_true(contains("::ffff:10.0.0.0/104", "::ffff:10.9.9.9"));
    /* IPv6 prefixes that cover ::ffff:0:0/96 cover IPv4 too. */
    assert_true(contains("::/0", "192.0.2.1"));
    assert_true(contains("::fffe:0:0/95", "192.0.2.1"));
    assert_false(contains("::fffe:0:0/96", "192.0.2.1"));
    assert_false(contains("2001:db8::/32", "192.0.2.1"));
    /* IPv4 prefixes never match plain IPv6. */
    assert_false(contains("0.0.0.0/0", "2001:db8::1"));
    assert_false(contains("0.0.0.0/0", "::10.0.0.1"));
}

static void test_cidr_list(void **state)
{
    (void)state;
    struct ap_cidr_list l;
    struct ap_ip ip;
    size_t off = 99;

    ap_cidr_list_init(&l);
    assert_int_equal(ap_ip_parse(&ip, "10.1.1.1", 8), 0);
    assert_false(ap_cidr_list_contains(&l, &ip));

    const char *spec = " 10.0.0.0/8, 192.168.0.0/16 ::1,,\t2001:db8::/32\n";
    assert_int_equal(ap_cidr_list_parse(&l, spec, strlen(spec), &off), 0);
    assert_int_equal(l.n, 4);
    assert_true(ap_cidr_list_contains(&l, &ip));
    assert_int_equal(ap_ip_parse(&ip, "192.168.7.7", 11), 0);
    assert_true(ap_cidr_list_contains(&l, &ip));
    assert_int_equal(ap_ip_parse(&ip, "::1", 3), 0);
    assert_true(ap_cidr_list_contains(&l, &ip));
    assert_int_equal(ap_ip_parse(&ip, "::2", 3), 0);
    assert_false(ap_cidr_list_contains(&l, &ip));
    assert_int_equal(ap_ip_parse(&ip, "::ffff:192.168.1.1", 18), 0);
    assert_true(ap_cidr_list_contains(&l, &ip));

    /* A bad item: nothing appended, offset reported. */
    const char *bad = "172.16.0.0/12, 10.0.0.1/8";
    assert_int_equal(ap_cidr_list_parse(&l, bad, strlen(bad), &off), -EINVAL);
    assert_int_equal(off, 15);
    assert_int_equal(l.n, 4);

    /* Growth past the initial capacity. */
    for (int i = 0; i < 100; i++) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "100.64.%d.0/24", i);
        assert_int_equal(ap_cidr_list_parse(&l, buf, (size_t)n, NULL), 0);
    }
    assert_int_equal(l.n, 104);
    assert_int_equal(ap_ip_parse(&ip, "100.64.99.1", 11), 0);
    assert_true(ap_cidr_list_contains(&l, &ip));
    assert_int_equal(ap_ip_parse(&ip, "100.64.100.1", 12), 0);
    assert_false(ap_cidr_list_contains(&l, &ip));

    ap_cidr_list_free(&l);
    assert_int_equal(l.n, 0);
    assert_false(ap_cidr_list_contains(&l, &ip));
    ap_cidr_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_valid),       cmocka_unit_test(test_v4_invalid),
        cmocka_unit_test(test_v6_forms),       cmocka_unit_test(test_v6_invalid),
        cmocka_unit_test(test_len_is_respected), cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_format_errors),  cmocka_unit_test(test_mapped),
        cmocka_unit_test(test_truncate),       cmocka_unit_test(test_sockaddr),
        cmocka_unit_test(test_cidr_parse),     cmocka_unit_test(test_cidr_contains),
        cmocka_unit_test(test_cidr_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

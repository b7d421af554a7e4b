/* Unit tests of proxy/engine/detect.c: each detector's shapes and word
 * boundaries, the order of a scan over mixed findings, the prefilter, and
 * linear time on hostile strings. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include <cmocka.h>

#include "anonproxy/detect.h"

/* All findings of `mask` in `s`, written "kind:text|kind:text|". */
static const char *scan(unsigned mask, const char *s)
{
    static char out[4096];
    size_t o = 0;
    struct ap_detect_scan sc;
    struct ap_detect_match m;
    out[0] = '\0';
    ap_detect_scan_init(&sc, mask, s, strlen(s));
    while (ap_detect_scan_next(&sc, &m) && o < sizeof(out) - 200)
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s:%.*s|", ap_detect_kind_name(m.kind), (int)m.len, s + m.off);
    return out;
}

#define BIT(k) (1u << (k))

static void test_email(void **state)
{
    (void)state;
    unsigned e = BIT(AP_DETECT_EMAIL);
    assert_string_equal(scan(e, "john.doe@example.com"), "email:john.doe@example.com|");
    assert_string_equal(scan(e, "mail John.Doe+tag@Mail.Example.CO.UK now."), "email:John.Doe+tag@Mail.Example.CO.UK|");
    assert_string_equal(scan(e, "?email=john%40example.org&x=1"), "email:john%40example.org|");
    assert_string_equal(scan(e, "email%3Djohn%2540example.org"), "email:email%3Djohn%2540example.org|");
    assert_string_equal(scan(e, "<a@b.io>, <c@d.io>"), "email:a@b.io|email:c@d.io|");
    assert_string_equal(scan(e, "end with a dot x@y.com."), "email:x@y.com|");
    /* Not addresses: no local part, no dot, a numeric or one-letter TLD. */
    assert_string_equal(scan(e, "@example.com"), "");
    assert_string_equal(scan(e, "user@localhost"), "");
    assert_string_equal(scan(e, "user@host.c0m"), "");
    assert_string_equal(scan(e, "user@host.c"), "");
    assert_string_equal(scan(e, "a@b..com"), "");
    assert_string_equal(scan(e, "100% sure"), "");
    assert_string_equal(scan(e, "twitter @handle"), "");
}

static void test_ip(void **state)
{
    (void)state;
    unsigned ip = BIT(AP_DETECT_IP);
    assert_string_equal(scan(ip, "from 203.0.113.77 today"), "ip:203.0.113.77|");
    assert_string_equal(scan(ip, "203.0.113.77:8080"), "ip:203.0.113.77|");
    assert_string_equal(scan(ip, "ip=10.0.0.1."), "ip:10.0.0.1|");
    assert_string_equal(scan(ip, "2001:db8::1"), "ip:2001:db8::1|");
    assert_string_equal(scan(ip, "[2001:DB8:0:0:0:0:0:1]:443"), "ip:2001:DB8:0:0:0:0:0:1|");
    assert_string_equal(scan(ip, "peer ::ffff:192.0.2.1 ok"), "ip:::ffff:192.0.2.1|");
    assert_string_equal(scan(ip, "fe80::1%eth0"), "ip:fe80::1|");
    assert_string_equal(scan(ip, "a 1.2.3.4 and 5.6.7.8"), "ip:1.2.3.4|ip:5.6.7.8|");
    /* Versions, times, bad quads, parts of longer tokens. */
    assert_string_equal(scan(ip, "Chrome/120.0.6099.109"), "");
    assert_string_equal(scan(ip, "1.2.3.4.5"), "");
    assert_string_equal(scan(ip, "v1.2.3.4"), "");
    assert_string_equal(scan(ip, "1.2.3.4abc"), "");
    assert_string_equal(scan(ip, "01.2.3.4"), "");
    assert_string_equal(scan(ip, "256.1.1.1"), "");
    assert_string_equal(scan(ip, "12:34:56"), "");
    assert_string_equal(scan(ip, "2024-03-10T12:34:56.789+01:00"), "");
    assert_string_equal(scan(ip, "std::vector"), "");
    assert_string_equal(scan(ip, "a :: b"), "");
    assert_string_equal(scan(ip, "00:1a:2b:3c:4d:5e"), "");
}

static void test_mac(void **state)
{
    (void)state;
    unsigned m = BIT(AP_DETECT_MAC);
    assert_string_equal(scan(m, "mac 00:1a:2B:3c:4d:5e."), "mac:00:1a:2B:3c:4d:5e|");
    assert_string_equal(scan(m, "00-1A-2B-3C-4D-5E"), "mac:00-1A-2B-3C-4D-5E|");
    assert_string_equal(scan(m, "00:1a-2b:3c:4d:5e"), "");
    assert_string_equal(scan(m, "00:1a:2b:3c:4d:5e:6f"), "");
    assert_string_equal(scan(m, "x00:1a:2b:3c:4d:5e"), "");
    assert_string_equal(scan(m, "123e4567-e89b-12d3-a456-426614174000"), "");
}

static void test_imei(void **state)
{
    (void)state;
    unsigned i = BIT(AP_DETECT_IMEI);
    assert_true(ap_detect_luhn_is_valid("490154203237518", 15));
    assert_false(ap_detect_luhn_is_valid("490154203237519", 15));
    assert_false(ap_detect_luhn_is_valid("49015420323751x", 15));
    assert_string_equal(scan(i, "imei 490154203237518"), "imei:490154203237518|");
    assert_string_equal(scan(i, "imei:490154203237518,"), "imei:490154203237518|");
    assert_string_equal(scan(i, "490154203237519"), "");
    assert_string_equal(scan(i, "4901542032375180"), "");
    assert_string_equal(scan(i, "a490154203237518"), "");
    assert_string_equal(scan(i, "490154203237518.5"), "");
}

static void test_phone(void **state)
{
    (void)state;
    unsigned p = BIT(AP_DETECT_PHONE);
    assert_string_equal(scan(p, "call +14155552671 now"), "phone:+14155552671|");
    assert_string_equal(scan(p, "tel=%2B33612345678&x"), "phone:%2B33612345678|");
    assert_string_equal(scan(p, "+491701234567890"), "phone:+491701234567890|");
    assert_string_equal(scan(p, "+0123456789"), "");
    assert_string_equal(scan(p, "+12345"), "");
    assert_string_equal(scan(p, "+1234567890123456"), "");
    assert_string_equal(scan(p, "UTC+0100"), "");
    assert_string_equal(scan(p, "a+14155552671"), "");
}

static void test_clickid(void **state)
{
    (void)state;
    unsigned c = BIT(AP_DETECT_CLICKID);
    assert_string_equal(scan(c, "https://shop.example/p?utm_source=x&gclid=abc"),
                        "click-id:https://shop.example/p?utm_source=x&gclid=abc|");
    assert_string_equal(scan(c, "HTTP://x.example/?FBCLID=1#frag"), "click-id:HTTP://x.example/?FBCLID=1#frag|");
    assert_string_equal(scan(c, "https://x.example/?a=1#gclid=2"), "");
    assert_string_equal(scan(c, "see https://x.example/?gclid=1"), "");
    assert_string_equal(scan(c, "/relative?gclid=1"), "");
    assert_true(ap_detect_is_clickid_key("gclid", 5));
    assert_true(ap_detect_is_clickid_key("initial_gclid", 13));
    assert_true(ap_detect_is_clickid_key("$session_entry_fbclid", 21));
    assert_true(ap_detect_is_clickid_key("ep.msclkid", 10));
    assert_true(ap_detect_is_clickid_key("$initial_li_fat_id", 18));
    assert_false(ap_detect_is_clickid_key("gclidx", 6));
    assert_false(ap_detect_is_clickid_key("mygclid", 7));
    assert_false(ap_detect_is_clickid_key("utm_source", 10));
}

static void test_mixed_order(void **state)
{
    (void)state;
    const char *s = "x@y.com 1.2.3.4 00:11:22:33:44:55 +14155552671 490154203237518 2001:db8::2";
    assert_string_equal(scan(AP_DETECT_MASK_ALL, s),
                        "email:x@y.com|ip:1.2.3.4|mac:00:11:22:33:44:55|phone:+14155552671|"
                        "imei:490154203237518|ip:2001:db8::2|");
    /* A mask limits the kinds. */
    assert_string_equal(scan(BIT(AP_DETECT_IP) | BIT(AP_DETECT_PHONE), s),
                        "ip:1.2.3.4|phone:+14155552671|ip:2001:db8::2|");
    assert_string_equal(scan(0, s), "");
}

static void test_prefilter(void **state)
{
    (void)state;
    unsigned all = AP_DETECT_MASK_ALL;
    assert_false(ap_detect_may_match(all, "just words here", 15));
    assert_false(ap_detect_may_match(all, "", 0));
    assert_true(ap_detect_may_match(all, "a@b", 3));
    /* Digits alone under 7 bytes: no IPv4 address, IMEI or phone number
     * fits; 7 may be "1.2.3.4". */
    assert_false(ap_detect_may_match(all, "x1", 2));
    assert_false(ap_detect_may_match(all, "1920x10", 6));
    assert_true(ap_detect_may_match(all, "1.2.3.4", 7));
    assert_true(ap_detect_may_match(BIT(AP_DETECT_PHONE), "+1234567", 8));
    assert_false(ap_detect_may_match(BIT(AP_DETECT_PHONE), "+123456", 7));
    assert_true(ap_detect_may_match(BIT(AP_DETECT_IP), "::1", 3));
    assert_true(ap_detect_may_match(BIT(AP_DETECT_IP), "dead::beef", 10));
    assert_false(ap_detect_may_match(BIT(AP_DETECT_EMAIL), "x1", 2));
    assert_true(ap_detect_may_match(BIT(AP_DETECT_CLICKID), "https://a.b/?c", 14));
    assert_false(ap_detect_may_match(BIT(AP_DETECT_CLICKID), "https://a.b/c", 13));
}

/* The prefilter never hides a match: over every string of up to 8 bytes
 * drawn from the bytes detectors care about (and a sample of longer ones),
 * a scan finds something only where ap_detect_may_match said it might. */
static void test_prefilter_exact(void **state)
{
    (void)state;
    static const char alphabet[] = "0123456789a.:-+@%2B_x";
    const size_t na = sizeof(alphabet) - 1;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char s[40];
    unsigned found = 0;
    for (unsigned iter = 0; iter < 400000; iter++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        size_t len = iter < 200000 ? 1 + iter % 8 : 1 + (size_t)(rng % 39);
        uint64_t r = rng;
        for (size_t i = 0; i < len; i++) {
            if (i % 12 == 0) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                r = rng;
            }
            s[i] = alphabet[(r >> (5 * (i % 12))) % na];
        }
        for (unsigned mask = 1; mask <= AP_DETECT_MASK_ALL; mask = mask * 2 + 1) {
            unsigned m2 = mask & ~BIT(AP_DETECT_REGEX);
            struct ap_detect_scan sc;
            struct ap_detect_match m;
            ap_detect_scan_init(&sc, m2, s, len);
            if (ap_detect_scan_next(&sc, &m)) {
                found++;
                if (!ap_detect_may_match(m2, s, len))
                    fail_msg("may_match hides a %s in \"%.*s\"", ap_detect_kind_name(m.kind), (int)len, s);
            }
        }
    }
    assert_true(found > 1000);
}

static void test_names(void **state)
{
    (void)state;
    for (unsigned k = 0; k < AP_DETECT_NKINDS; k++) {
        enum ap_detect_kind back;
        assert_int_equal(ap_detect_kind_parse(ap_detect_kind_name((enum ap_detect_kind)k), &back), 0);
        assert_int_equal(back, k);
    }
    enum ap_detect_kind x;
    assert_int_equal(ap_detect_kind_parse("ssn", &x), -EINVAL);
    assert_string_equal(ap_detect_kind_name((enum ap_detect_kind)99), "?");
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Strings built to make a naive detector quadratic finish in linear time. */
static void test_linear_time(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *s = malloc(n + 1);
    static const char *const units[] = {"a@", "1.", "a:", "+1", "%4", "1", "a.b@c", "ab:cd:"};
    for (size_t u = 0; u < AP_ARRAY_SIZE(units); u++) {
        size_t ul = strlen(units[u]);
        for (size_t i = 0; i < n; i++)
            s[i] = units[u][i % ul];
        s[n] = '\0';
        double t0 = secs();
        struct ap_detect_scan sc;
        struct ap_detect_match m;
        size_t found = 0;
        ap_detect_scan_init(&sc, AP_DETECT_MASK_ALL, s, n);
        while (ap_detect_scan_next(&sc, &m))
            found++;
        double dt = secs() - t0;
        if (dt > 2.0)
            fail_msg("unit \"%s\": %.2f s for 1 MiB (%zu findings)", units[u], dt, found);
    }
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),   cmocka_unit_test(test_ip),          cmocka_unit_test(test_mac),
        cmocka_unit_test(test_imei),    cmocka_unit_test(test_phone),       cmocka_unit_test(test_clickid),
        cmocka_unit_test(test_mixed_order), cmocka_unit_test(test_prefilter), cmocka_unit_test(test_names), cmocka_unit_test(test_prefilter_exact),
        cmocka_unit_test(test_linear_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

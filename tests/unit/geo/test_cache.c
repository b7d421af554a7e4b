/* Unit tests of geo/cache.c: hits for every address of a cached network,
 * negative answers, IPv4-mapped addresses, generation flushes, bounded
 * size with least-recently-used eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/geo.h"
#include "geo-test.h"

static struct ap_geo_record rec(const char *country)
{
    struct ap_geo_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.country, sizeof(r.country), "%s", country);
    return r;
}

static int get(struct ap_geo_cache *c, uint64_t gen, const char *addr, struct ap_geo_record *r,
               int *status)
{
    struct ap_ip ip = IP(addr);
    return ap_geo_cache_get(c, gen, &ip, r, status);
}

static void put(struct ap_geo_cache *c, uint64_t gen, const char *addr, unsigned prefix,
                int status, const char *country)
{
    struct ap_ip ip = IP(addr);
    struct ap_geo_record r = rec(country);
    ap_geo_cache_put(c, gen, &ip, prefix, status, &r);
}

static void test_disabled(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 0), 0);
    put(&c, 1, "192.0.2.1", 24, 0, "FR");
    assert_int_equal(get(&c, 1, "192.0.2.1", &r, &status), -EAGAIN);
    struct ap_geo_cache_stats st;
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.capacity, 0);
    ap_geo_cache_free(&c);
}

static void test_one_entry_serves_the_network(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status = 99;
    assert_int_equal(ap_geo_cache_init(&c, 100), 0);
    assert_int_equal(get(&c, 1, "192.0.2.1", &r, &status), -EAGAIN);
    put(&c, 1, "192.0.2.77", 25, 0, "FR");
    assert_int_equal(get(&c, 1, "192.0.2.0", &r, &status), 0);
    assert_int_equal(status, 0);
    assert_string_equal(r.country, "FR");
    assert_int_equal(get(&c, 1, "192.0.2.127", &r, &status), 0);
    /* Outside the /25. */
    assert_int_equal(get(&c, 1, "192.0.2.128", &r, &status), -EAGAIN);
    /* IPv4-mapped addresses are the IPv4 address. */
    assert_int_equal(get(&c, 1, "::ffff:192.0.2.5", &r, &status), 0);
    assert_string_equal(r.country, "FR");
    /* Not an IPv6 entry, though: the same bytes in another family miss. */
    assert_int_equal(get(&c, 1, "c000:200::", &r, &status), -EAGAIN);

    struct ap_geo_cache_stats st;
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.entries, 1);
    assert_true(st.capacity >= 100 && st.capacity < 100 + AP_GEO_CACHE_WAYS);
    ap_geo_cache_free(&c);
}

static void test_prefix_lengths_coexist(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 64), 0);
    put(&c, 1, "198.51.100.9", 24, 0, "DE");
    put(&c, 1, "203.0.113.200", 26, 0, "NL");
    put(&c, 1, "2001:db8:2::1", 48, 0, "BR");
    put(&c, 1, "8.0.0.0", 7, 0, "US");
    put(&c, 1, "2a00::", 12, -ENOENT, "");
    assert_int_equal(get(&c, 1, "198.51.100.250", &r, &status), 0);
    assert_string_equal(r.country, "DE");
    assert_int_equal(get(&c, 1, "203.0.113.255", &r, &status), 0);
    assert_string_equal(r.country, "NL");
    assert_int_equal(get(&c, 1, "203.0.113.191", &r, &status), -EAGAIN);
    assert_int_equal(get(&c, 1, "2001:db8:2:ffff::1", &r, &status), 0);
    assert_string_equal(r.country, "BR");
    assert_int_equal(get(&c, 1, "9.9.9.9", &r, &status), 0);
    assert_string_equal(r.country, "US");
    /* A cached "not found". */
    assert_int_equal(get(&c, 1, "2a0f:1234::1", &r, &status), 0);
    assert_int_equal(status, -ENOENT);
    assert_string_equal(r.country, "");
    assert_int_equal(get(&c, 1, "2a10::1", &r, &status), -EAGAIN);
    ap_geo_cache_free(&c);
}

static void test_prefix_zero_and_statuses(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 8), 0);
    /* An IPv4-only database answers "nothing" for the whole IPv6 space. */
    put(&c, 1, "2001:db8::1", 0, -ENOENT, "");
    assert_int_equal(get(&c, 1, "::2", &r, &status), 0);
    assert_int_equal(status, -ENOENT);
    assert_int_equal(get(&c, 1, "ffff::", &r, &status), 0);
    assert_int_equal(get(&c, 1, "1.2.3.4", &r, &status), -EAGAIN);
    /* Errors and reserved answers are never cached; bad prefixes are
     * ignored. */
    put(&c, 1, "1.2.3.4", 24, -EIO, "");
    put(&c, 1, "1.2.3.4", 24, -EADDRNOTAVAIL, "");
    put(&c, 1, "1.2.3.4", 33, 0, "XX");
    assert_int_equal(get(&c, 1, "1.2.3.4", &r, &status), -EAGAIN);
    struct ap_ip bad;
    memset(&bad, 0, sizeof(bad));
    assert_int_equal(ap_geo_cache_get(&c, 1, &bad, &r, &status), -EINVAL);
    ap_geo_cache_free(&c);
}

static void test_generation_flush(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 16), 0);
    put(&c, 1, "8.8.8.8", 24, 0, "US");
    assert_int_equal(get(&c, 1, "8.8.8.1", &r, &status), 0);
    /* The database was swapped: the old answer must not come back. */
    assert_int_equal(get(&c, 2, "8.8.8.1", &r, &status), -EAGAIN);
    struct ap_geo_cache_stats st;
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.entries, 0);
    put(&c, 2, "8.8.8.8", 24, 0, "CA");
    assert_int_equal(get(&c, 2, "8.8.8.1", &r, &status), 0);
    assert_string_equal(r.country, "CA");
    /* A put from a lookup on an older database also flushes: answers of
     * two generations never mix. */
    put(&c, 1, "9.9.9.9", 24, 0, "CH");
    assert_int_equal(get(&c, 1, "8.8.8.1", &r, &status), -EAGAIN);
    ap_geo_cache_clear(&c);
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(get(&c, 1, "9.9.9.9", &r, &status), -EAGAIN);
    ap_geo_cache_free(&c);
}

static void test_bounded_lru(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    char addr[32], country[8];
    /* One set of AP_GEO_CACHE_WAYS ways. */
    assert_int_equal(ap_geo_cache_init(&c, AP_GEO_CACHE_WAYS), 0);
    for (unsigned i = 1; i <= AP_GEO_CACHE_WAYS; i++) {
        snprintf(addr, sizeof(addr), "%u.0.0.0", i);
        snprintf(country, sizeof(country), "A%u", i);
        put(&c, 1, addr, 24, 0, country);
    }
    assert_int_equal(get(&c, 1, "1.0.0.1", &r, &status), 0); /* 1 is now recent */
    put(&c, 1, "100.0.0.0", 24, 0, "NEW");
    struct ap_geo_cache_stats st;
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, AP_GEO_CACHE_WAYS);
    assert_int_equal(st.evictions, 1);
    /* 2 was the least recently used. */
    assert_int_equal(get(&c, 1, "2.0.0.1", &r, &status), -EAGAIN);
    assert_int_equal(get(&c, 1, "1.0.0.1", &r, &status), 0);
    assert_int_equal(get(&c, 1, "3.0.0.1", &r, &status), 0);
    assert_int_equal(get(&c, 1, "100.0.0.1", &r, &status), 0);
    assert_string_equal(r.country, "NEW");
    /* Refreshing an entry replaces it without evicting another. */
    put(&c, 1, "100.0.0.9", 24, 0, "NEW2");
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, AP_GEO_CACHE_WAYS);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(get(&c, 1, "100.0.0.1", &r, &status), 0);
    assert_string_equal(r.country, "NEW2");

    /* Many more networks than entries: the size stays bounded, and every
     * answer is still the right one. */
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "20.%u.%u.0", i / 256, i % 256);
        snprintf(country, sizeof(country), "N%u", i);
        put(&c, 1, addr, 24, 0, country);
    }
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, AP_GEO_CACHE_WAYS);
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "20.%u.%u.7", i / 256, i % 256);
        snprintf(country, sizeof(country), "N%u", i);
        if (get(&c, 1, addr, &r, &status) == 0)
            assert_string_equal(r.country, country);
    }
    ap_geo_cache_free(&c);
}

static void test_hints_never_lie(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 64), 0);
    /* Two networks inside one /24: the hint of the /24 points at the last
     * one used, and must not answer for an address of the other. */
    put(&c, 1, "203.0.113.0", 26, 0, "US");
    put(&c, 1, "203.0.113.64", 26, 0, "CA");
    assert_int_equal(get(&c, 1, "203.0.113.70", &r, &status), 0);
    assert_string_equal(r.country, "CA");
    assert_int_equal(get(&c, 1, "203.0.113.10", &r, &status), 0);
    assert_string_equal(r.country, "US");
    assert_int_equal(get(&c, 1, "203.0.113.70", &r, &status), 0);
    assert_string_equal(r.country, "CA");
    /* An address of that /24 in no cached network misses. */
    assert_int_equal(get(&c, 1, "203.0.113.200", &r, &status), -EAGAIN);
    /* After a flush, hints point at nothing. */
    ap_geo_cache_clear(&c);
    assert_int_equal(get(&c, 1, "203.0.113.70", &r, &status), -EAGAIN);
    /* A network wider than the hint's /24 serves every /24 in it. */
    put(&c, 1, "10.1.0.0", 16, 0, "NL");
    for (unsigned i = 0; i < 256; i += 51) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.1.%u.9", i);
        assert_int_equal(get(&c, 1, addr, &r, &status), 0);
        assert_string_equal(r.country, "NL");
    }
    ap_geo_cache_free(&c);
}

static void test_packed_text(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record in, out;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 16), 0);
    memset(&in, 0, sizeof(in));
    memcpy(in.continent, "EU", 3);
    memcpy(in.country, "CH", 3);
    snprintf(in.region, sizeof(in.region), "Zurich");
    snprintf(in.city, sizeof(in.city), "Zürich");
    snprintf(in.timezone, sizeof(in.timezone), "Europe/Zurich");
    in.has_coords = true;
    in.latitude = 47.3769;
    in.longitude = 8.5417;
    in.asn = 64500;
    in.flags = AP_GEO_FLAG_ASN_KNOWN | AP_GEO_FLAG_HOSTING;
    struct ap_ip ip = IP("9.9.9.9");
    ap_geo_cache_put(&c, 1, &ip, 24, 0, &in);
    memset(&out, 0x5a, sizeof(out));
    assert_int_equal(ap_geo_cache_get(&c, 1, &ip, &out, &status), 0);
    assert_int_equal(status, 0);
    assert_string_equal(out.continent, "EU");
    assert_string_equal(out.country, "CH");
    assert_string_equal(out.region, "Zurich");
    assert_string_equal(out.city, "Zürich");
    assert_string_equal(out.timezone, "Europe/Zurich");
    assert_true(out.has_coords);
    assert_true(out.latitude == in.latitude && out.longitude == in.longitude);
    assert_int_equal(out.asn, 64500);
    assert_int_equal(out.flags, in.flags);
    /* More text than an entry holds: not cached, and counted. */
    memset(in.city, 'x', 70);
    in.city[70] = '\0';
    ip = IP("1.1.1.1");
    ap_geo_cache_put(&c, 1, &ip, 24, 0, &in);
    assert_int_equal(ap_geo_cache_get(&c, 1, &ip, &out, &status), -EAGAIN);
    struct ap_geo_cache_stats st;
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.too_long, 1);
    ap_geo_cache_free(&c);
}

static void test_large_cache(void **state)
{
    struct ap_geo_cache c;
    struct ap_geo_record r;
    int status;
    assert_int_equal(ap_geo_cache_init(&c, 10000), 0);
    char addr[32];
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(addr, sizeof(addr), "30.%u.%u.0", i / 256, i % 256);
        put(&c, 1, addr, 24, 0, "XX");
    }
    unsigned hits = 0;
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(addr, sizeof(addr), "30.%u.%u.99", i / 256, i % 256);
        hits += get(&c, 1, addr, &r, &status) == 0;
    }
    /* Half full: only sets that drew more ways' worth of networks than
     * they have evict (well under 1% with eight ways). */
    assert_true(hits > 4950);
    ap_geo_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_one_entry_serves_the_network),
        cmocka_unit_test(test_prefix_lengths_coexist),
        cmocka_unit_test(test_prefix_zero_and_statuses),
        cmocka_unit_test(test_generation_flush),
        cmocka_unit_test(test_bounded_lru),
        cmocka_unit_test(test_hints_never_lie),
        cmocka_unit_test(test_packed_text),
        cmocka_unit_test(test_large_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

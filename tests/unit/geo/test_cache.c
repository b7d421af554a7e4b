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
    assert_true(st.capacity >= 100 && st.capacity < 104);
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
    /* One set of four ways. */
    assert_int_equal(ap_geo_cache_init(&c, 4), 0);
    put(&c, 1, "1.0.0.0", 24, 0, "A1");
    put(&c, 1, "2.0.0.0", 24, 0, "A2");
    put(&c, 1, "3.0.0.0", 24, 0, "A3");
    put(&c, 1, "4.0.0.0", 24, 0, "A4");
    assert_int_equal(get(&c, 1, "1.0.0.1", &r, &status), 0); /* 1 is now recent */
    put(&c, 1, "5.0.0.0", 24, 0, "A5");
    struct ap_geo_cache_stats st;
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(get(&c, 1, "2.0.0.1", &r, &status), -EAGAIN);
    assert_int_equal(get(&c, 1, "1.0.0.1", &r, &status), 0);
    assert_int_equal(get(&c, 1, "5.0.0.1", &r, &status), 0);
    assert_string_equal(r.country, "A5");
    /* Refreshing an entry replaces it without evicting another. */
    put(&c, 1, "5.0.0.9", 24, 0, "B5");
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(get(&c, 1, "5.0.0.1", &r, &status), 0);
    assert_string_equal(r.country, "B5");

    /* Many more networks than entries: the size stays bounded. */
    char addr[32];
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "20.%u.%u.0", i / 256, i % 256);
        put(&c, 1, addr, 24, 0, "ZZ");
    }
    ap_geo_cache_get_stats(&c, &st);
    assert_int_equal(st.entries, 4);
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
    /* Half full: only sets that drew more than four of the networks
     * evict (about 4% of the entries with four ways). */
    assert_true(hits > 4750);
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
        cmocka_unit_test(test_large_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

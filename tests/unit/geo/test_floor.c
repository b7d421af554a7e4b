/* Unit tests of geo/floor.c: region and city floors crossing their
 * thresholds, fallback to the next coarser level, distinct counting, UTC
 * days, bounded cells, the sketch's accuracy, and threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>
#include <pthread.h>

#include "anonproxy/geo.h"

/* 2026-11-27 12:00:00 UTC. */
#define NOON 1795780800LL

static struct ap_geo_record place(const char *region, const char *city)
{
    struct ap_geo_record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.continent, "EU", 3);
    memcpy(r.country, "FR", 3);
    snprintf(r.region, sizeof(r.region), "%s", region);
    snprintf(r.city, sizeof(r.city), "%s", city);
    return r;
}

static uint64_t visitor(struct ap_geo_floor *f, unsigned n)
{
    char key[32];
    int len = snprintf(key, sizeof(key), "visitor-%u", n);
    return ap_geo_floor_visitor_hash(f, key, (size_t)len);
}

static void test_init_errors(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 10, 50, 0), -EINVAL);
    assert_int_equal(ap_geo_floor_init(&f, 10, 50, ((size_t)1 << 24) + 1), -EINVAL);
    assert_int_equal(ap_geo_floor_init(&f, 10, 50, 100), 0);
    ap_geo_floor_free(&f);
}

static void test_region_threshold(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 10, 50, 1000), 0);
    struct ap_geo_record r = place("IDF", "Paris");
    for (unsigned i = 1; i <= 9; i++)
        assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON),
                         AP_GEO_LEVEL_COUNTRY);
    /* The same visitors again do not count. */
    for (unsigned i = 1; i <= 9; i++)
        assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON),
                         AP_GEO_LEVEL_COUNTRY);
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON), 9);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 10), NOON),
                     AP_GEO_LEVEL_REGION);
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON), 10);
    /* Open for everyone from now on, old visitors included. */
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_REGION);
    /* Another region is another cell. */
    struct ap_geo_record lyon = place("ARA", "Lyon");
    assert_int_equal(ap_geo_floor_admit(&f, &lyon, AP_GEO_LEVEL_REGION, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_COUNTRY);
    /* Coarser wants are never counted nor changed. */
    assert_int_equal(ap_geo_floor_admit(&f, &lyon, AP_GEO_LEVEL_COUNTRY, visitor(&f, 2), NOON),
                     AP_GEO_LEVEL_COUNTRY);
    assert_int_equal(ap_geo_floor_admit(&f, &lyon, AP_GEO_LEVEL_CONTINENT, visitor(&f, 2), NOON),
                     AP_GEO_LEVEL_CONTINENT);
    assert_int_equal(ap_geo_floor_count(&f, &lyon, AP_GEO_LEVEL_REGION, NOON), 1);
    ap_geo_floor_free(&f);
}

static void test_city_threshold_and_fallback(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 10, 50, 1000), 0);
    struct ap_geo_record lyon = place("ARA", "Lyon");
    struct ap_geo_record grenoble = place("ARA", "Grenoble");
    enum ap_geo_level l;
    for (unsigned i = 1; i <= 49; i++) {
        l = ap_geo_floor_admit(&f, &lyon, AP_GEO_LEVEL_CITY, visitor(&f, i), NOON);
        /* Below 10: the country; from 10 the region; the city not yet. */
        assert_int_equal(l, i < 10 ? AP_GEO_LEVEL_COUNTRY : AP_GEO_LEVEL_REGION);
    }
    l = ap_geo_floor_admit(&f, &lyon, AP_GEO_LEVEL_CITY, visitor(&f, 50), NOON);
    assert_int_equal(l, AP_GEO_LEVEL_CITY);
    assert_int_equal(ap_geo_floor_count(&f, &lyon, AP_GEO_LEVEL_CITY, NOON), 50);
    /* Grenoble shares the region, which is open, but not the city. */
    l = ap_geo_floor_admit(&f, &grenoble, AP_GEO_LEVEL_CITY, visitor(&f, 1000), NOON);
    assert_int_equal(l, AP_GEO_LEVEL_REGION);
    assert_int_equal(ap_geo_floor_count(&f, &grenoble, AP_GEO_LEVEL_CITY, NOON), 1);
    assert_int_equal(ap_geo_floor_count(&f, &grenoble, AP_GEO_LEVEL_REGION, NOON), 51);
    ap_geo_floor_free(&f);
}

static void test_disabled_floors(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 0, 0, 10), 0);
    struct ap_geo_record r = place("IDF", "Paris");
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_CITY);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_REGION);
    struct ap_geo_floor_stats st;
    ap_geo_floor_get_stats(&f, &st);
    assert_int_equal(st.cells, 0); /* nothing counted at all */
    /* A record without region cannot be a region. */
    struct ap_geo_record nl = place("", "");
    assert_int_equal(ap_geo_floor_admit(&f, &nl, AP_GEO_LEVEL_REGION, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_COUNTRY);
    ap_geo_floor_free(&f);

    /* Only the city floor disabled: a city still needs its region's. */
    assert_int_equal(ap_geo_floor_init(&f, 3, 0, 10), 0);
    for (unsigned i = 1; i <= 2; i++)
        assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, i), NOON),
                         AP_GEO_LEVEL_COUNTRY);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, 3), NOON),
                     AP_GEO_LEVEL_CITY);
    ap_geo_floor_free(&f);

    /* Only the region floor disabled. */
    assert_int_equal(ap_geo_floor_init(&f, 0, 2, 10), 0);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_REGION);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, 2), NOON),
                     AP_GEO_LEVEL_CITY);
    ap_geo_floor_free(&f);
}

static void test_city_needs_region_floor(void **state)
{
    struct ap_geo_floor f;
    /* A city floor below the region floor: the city header carries the
     * region, so the region's floor still holds it back. */
    assert_int_equal(ap_geo_floor_init(&f, 20, 5, 100), 0);
    struct ap_geo_record r = place("IDF", "Paris");
    for (unsigned i = 1; i < 20; i++)
        assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, i), NOON),
                         AP_GEO_LEVEL_COUNTRY);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_CITY, visitor(&f, 20), NOON),
                     AP_GEO_LEVEL_CITY);
    /* A city-state has no region to wait for. */
    struct ap_geo_record sg = place("", "Singapore");
    for (unsigned i = 1; i < 5; i++)
        assert_int_equal(ap_geo_floor_admit(&f, &sg, AP_GEO_LEVEL_CITY, visitor(&f, i), NOON),
                         AP_GEO_LEVEL_COUNTRY);
    assert_int_equal(ap_geo_floor_admit(&f, &sg, AP_GEO_LEVEL_CITY, visitor(&f, 5), NOON),
                     AP_GEO_LEVEL_CITY);
    ap_geo_floor_free(&f);
}

static void test_utc_days(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 3, 50, 100), 0);
    struct ap_geo_record r = place("IDF", "Paris");
    int64_t t = NOON;
    for (unsigned i = 1; i <= 3; i++)
        ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), t);
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 1), t),
                     AP_GEO_LEVEL_REGION);
    /* Still the same UTC day at 23:59:59. */
    int64_t last = NOON + 12 * 3600 - 1;
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 1), last),
                     AP_GEO_LEVEL_REGION);
    /* A new day starts from zero. */
    int64_t next = NOON + 12 * 3600;
    assert_int_equal(ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 1), next),
                     AP_GEO_LEVEL_COUNTRY);
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, next), 1);
    /* Asking about yesterday: nothing is kept. */
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON), 0);
    /* A clock stepping back does not wipe today's counts. */
    ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 2), NOON);
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, next), 2);
    struct ap_geo_floor_stats st;
    ap_geo_floor_get_stats(&f, &st);
    assert_int_equal(st.day, next / 86400);
    assert_int_equal(st.cells, 1);
    ap_geo_floor_free(&f);
}

static void test_bounded_cells(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 1, 1, 2), 0);
    struct ap_geo_record a = place("A", "A1");
    struct ap_geo_record b = place("B", "B1");
    /* City "A1" takes two cells (region A and city A1). */
    assert_int_equal(ap_geo_floor_admit(&f, &a, AP_GEO_LEVEL_CITY, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_CITY);
    /* No room left: B is never admitted finer than the country. */
    assert_int_equal(ap_geo_floor_admit(&f, &b, AP_GEO_LEVEL_CITY, visitor(&f, 1), NOON),
                     AP_GEO_LEVEL_COUNTRY);
    struct ap_geo_floor_stats st;
    ap_geo_floor_get_stats(&f, &st);
    assert_int_equal(st.cells, 2);
    assert_int_equal(st.cells_full, 2);
    ap_geo_floor_free(&f);

    /* Many cells: the table grows, every cell is found again. */
    assert_int_equal(ap_geo_floor_init(&f, 2, 50, 100000), 0);
    char name[32];
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "R%u", i);
        struct ap_geo_record r = place(name, "");
        ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON);
    }
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "R%u", i);
        struct ap_geo_record r = place(name, "");
        assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON), 1);
    }
    ap_geo_floor_get_stats(&f, &st);
    assert_int_equal(st.cells, 5000);
    ap_geo_floor_free(&f);
}

static void test_sketch_accuracy(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 1000000, 1000000, 10), 0);
    struct ap_geo_record r = place("IDF", "Paris");
    /* Exact while sparse (up to 64). */
    for (unsigned i = 0; i < 64; i++)
        ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON);
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON), 64);
    /* Then HyperLogLog with 256 registers (standard error 6.5%). The
     * visitor hash is keyed at random per floor, so the bounds are about
     * four standard errors wide: a test that fails one run in a hundred
     * teaches nothing. */
    ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, 64), NOON);
    unsigned n = ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON);
    assert_true(n >= 50 && n <= 80);
    for (unsigned i = 65; i < 1000; i++)
        ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON);
    n = ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON);
    assert_true(n >= 750 && n <= 1250);
    for (unsigned i = 1000; i < 100000; i++)
        ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON);
    n = ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON);
    /* 256 registers: a standard error of 6.5%; allow about four of them. */
    assert_true(n >= 75000 && n <= 125000);
    /* Repeats never move it. */
    for (unsigned i = 0; i < 1000; i++)
        ap_geo_floor_admit(&f, &r, AP_GEO_LEVEL_REGION, visitor(&f, i), NOON);
    assert_int_equal(ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_REGION, NOON), n);
    ap_geo_floor_free(&f);
}

struct thread_arg {
    struct ap_geo_floor *f;
    unsigned base;
};

static void *hammer(void *p)
{
    struct thread_arg *a = p;
    struct ap_geo_record r = place("IDF", "Paris");
    for (unsigned i = 0; i < 20000; i++)
        ap_geo_floor_admit(a->f, &r, AP_GEO_LEVEL_CITY, visitor(a->f, a->base + i % 500), NOON);
    return NULL;
}

static void test_threads(void **state)
{
    struct ap_geo_floor f;
    assert_int_equal(ap_geo_floor_init(&f, 10, 50, 100), 0);
    pthread_t t[4];
    struct thread_arg args[4];
    for (unsigned i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){&f, i * 500};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    struct ap_geo_record r = place("IDF", "Paris");
    unsigned n = ap_geo_floor_count(&f, &r, AP_GEO_LEVEL_CITY, NOON);
    /* 2000 distinct visitors; about four standard errors of the sketch. */
    assert_true(n >= 1500 && n <= 2500);
    ap_geo_floor_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_region_threshold),
        cmocka_unit_test(test_city_threshold_and_fallback),
        cmocka_unit_test(test_disabled_floors),
        cmocka_unit_test(test_city_needs_region_floor),
        cmocka_unit_test(test_utc_days),
        cmocka_unit_test(test_bounded_cells),
        cmocka_unit_test(test_sketch_accuracy),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of geo/lookup.c: the lookup pipeline (reserved ranges, cache,
 * floor, coarsening, truncated lookups) and hot reload: swaps, cache
 * invalidation, lookups in flight on the old database, missing and
 * corrupt new files, and lookups from threads during reloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "anonproxy/geo.h"
#include "geo-test.h"

#define NOON 1795780800LL

static struct ap_geo *open_geo(struct ap_geo_options *o)
{
    struct ap_geo *g = NULL;
    char err[AP_GEO_ERR_LEN];
    int rc = ap_geo_open(&g, o, err, sizeof(err));
    if (rc != 0)
        fail_msg("ap_geo_open: %d %s", rc, err);
    return g;
}

static int locate(struct ap_geo_worker *w, const char *addr, const char *visitor,
                  struct ap_geo_result *r)
{
    struct ap_ip ip = IP(addr);
    return ap_geo_lookup(w, &ip, visitor, visitor ? strlen(visitor) : 0, NOON, r);
}

static void test_open_errors(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    struct ap_geo *g = (struct ap_geo *)1;
    char err[AP_GEO_ERR_LEN];
    assert_int_equal(ap_geo_open(&g, &o, err, sizeof(err)), -EINVAL);
    assert_null(g);
    o.database = "/nonexistent/city.mmdb";
    assert_int_equal(ap_geo_open(&g, &o, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/city.mmdb"));
    ap_geo_close(NULL);
}

static void test_pipeline_precision(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.min_visitors_region = 0;
    o.min_visitors_city = 0;
    struct ap_geo_result r;
    for (int p = AP_GEO_LEVEL_NONE; p <= AP_GEO_LEVEL_CITY; p++) {
        o.precision = (enum ap_geo_level)p;
        struct ap_geo *g = open_geo(&o);
        struct ap_geo_worker *w;
        assert_int_equal(ap_geo_worker_new(&w, g), 0);
        assert_int_equal(locate(w, "198.51.100.20", NULL, &r), 0);
        assert_int_equal(r.level, p);
        assert_string_equal(r.continent, p >= AP_GEO_LEVEL_CONTINENT ? "EU" : "");
        assert_string_equal(r.country, p >= AP_GEO_LEVEL_COUNTRY ? "DE" : "");
        assert_string_equal(r.region, p >= AP_GEO_LEVEL_REGION ? "BE" : "");
        assert_string_equal(r.city, p >= AP_GEO_LEVEL_CITY ? "Berlin" : "");
        assert_false(r.has_coords);
        assert_string_equal(r.timezone, "");
        ap_geo_worker_free(w);
        ap_geo_close(g);
    }
}

static void test_pipeline_statuses(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.precision = AP_GEO_LEVEL_CITY;
    o.min_visitors_region = 0;
    o.min_visitors_city = 0;
    o.timezone = true;
    assert_int_equal(ap_geo_options_parse_coords(&o, "round:1"), 0);
    struct ap_geo *g = open_geo(&o);
    struct ap_geo_worker *w;
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    assert_int_equal(ap_geo_worker_generation(w), 0);
    struct ap_geo_result r;

    assert_int_equal(locate(w, "2001:db8:3::77", NULL, &r), 0);
    assert_string_equal(r.city, "Nairobi");
    assert_string_equal(r.timezone, "Africa/Nairobi");
    assert_true(r.has_coords);
    assert_int_equal(r.coord_decimals, 1);
    assert_true(r.latitude > -1.31 && r.latitude < -1.29);
    assert_int_equal(ap_geo_worker_generation(w), 1);
    /* The postal code is in the file; it never comes out. */
    char json[AP_GEO_JSON_MAX];
    assert_true(ap_geo_format_json(&r, json, sizeof(json)) > 0);
    assert_null(strstr(json, "00100"));
    assert_string_equal(json, "{\"level\":\"city\",\"continent\":\"AF\",\"country\":\"KE\","
                              "\"region\":\"30\",\"city\":\"Nairobi\",\"timezone\":\"Africa/Nairobi\","
                              "\"latitude\":-1.3,\"longitude\":36.8}");

    memset(&r, 0x5a, sizeof(r));
    assert_int_equal(locate(w, "10.9.9.9", NULL, &r), -EADDRNOTAVAIL);
    assert_int_equal(r.level, AP_GEO_LEVEL_NONE);
    assert_string_equal(r.country, "");
    assert_int_equal(locate(w, "::ffff:192.168.0.1", NULL, &r), -EADDRNOTAVAIL);
    assert_int_equal(locate(w, "5.5.5.5", NULL, &r), -ENOENT);
    assert_string_equal(r.country, "");
    struct ap_ip bad;
    memset(&bad, 0, sizeof(bad));
    assert_int_equal(ap_geo_lookup(w, &bad, NULL, 0, NOON, &r), -EINVAL);
    assert_int_equal(ap_geo_lookup(w, NULL, NULL, 0, NOON, &r), -EINVAL);
    ap_geo_worker_free(w);
    ap_geo_close(g);
}

static void test_floor_in_pipeline(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-ipl-v4.mmdb");
    o.database_v6 = fixture("fixture-ipl-v6.mmdb");
    o.schema = AP_GEO_SCHEMA_IP_LOCATION_DB;
    o.precision = AP_GEO_LEVEL_CITY;
    o.min_visitors_region = 3;
    o.min_visitors_city = 5;
    struct ap_geo *g = open_geo(&o);
    struct ap_geo_worker *w;
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    struct ap_geo_result r;
    char v[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(v, sizeof(v), "pseudo-%d", i);
        assert_int_equal(locate(w, "9.9.9.9", v, &r), 0);
        enum ap_geo_level want = i < 3 ? AP_GEO_LEVEL_COUNTRY
                                 : i < 5 ? AP_GEO_LEVEL_REGION
                                         : AP_GEO_LEVEL_CITY;
        assert_int_equal(r.level, want);
        assert_string_equal(r.country, "CH");
        assert_string_equal(r.region, i >= 3 ? "Zurich" : "");
        assert_string_equal(r.city, i >= 5 ? "Zürich" : "");
    }
    /* Without a visitor key, the client's /24 is the visitor: many
     * addresses of one /24 are one visitor. */
    for (int i = 1; i <= 10; i++) {
        snprintf(v, sizeof(v), "192.0.2.%d", i);
        assert_int_equal(locate(w, v, NULL, &r), 0);
        assert_int_equal(r.level, AP_GEO_LEVEL_COUNTRY);
    }
    ap_geo_worker_free(w);
    ap_geo_close(g);

    /* With /32 as the truncation prefix, each address is a visitor. */
    o.truncate_v4 = 32;
    g = open_geo(&o);
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    for (int i = 1; i <= 3; i++) {
        snprintf(v, sizeof(v), "192.0.2.%d", i);
        assert_int_equal(locate(w, v, NULL, &r), 0);
    }
    assert_int_equal(r.level, AP_GEO_LEVEL_REGION);
    assert_string_equal(r.region, "Île-de-France");
    ap_geo_worker_free(w);
    ap_geo_close(g);
}

static void test_truncated_lookup(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.precision = AP_GEO_LEVEL_CITY;
    o.min_visitors_region = 0;
    o.min_visitors_city = 0;
    struct ap_geo *g = open_geo(&o);
    struct ap_geo_worker *w;
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    struct ap_geo_result r;
    assert_int_equal(locate(w, "192.0.2.130", NULL, &r), 0);
    assert_string_equal(r.city, "Lyon");
    ap_geo_worker_free(w);
    ap_geo_close(g);

    /* lookup: truncated looks 192.0.2.0 up, which is Paris. */
    o.lookup = AP_GEO_ADDR_TRUNCATED;
    g = open_geo(&o);
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    assert_int_equal(locate(w, "192.0.2.130", NULL, &r), 0);
    assert_string_equal(r.city, "Paris");
    assert_int_equal(locate(w, "2001:db8:2:ab::1", NULL, &r), 0);
    assert_string_equal(r.city, "São Paulo");
    ap_geo_worker_free(w);
    ap_geo_close(g);
}

static void test_cache_in_pipeline(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.asn_database = fixture("fixture-asn.mmdb");
    o.min_visitors_region = 0;
    struct ap_geo *g = open_geo(&o);
    struct ap_geo_worker *w;
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    struct ap_geo_result r;
    struct ap_geo_cache_stats st;
    assert_int_equal(locate(w, "203.0.113.5", NULL, &r), 0);
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN | AP_GEO_FLAG_HOSTING);
    assert_int_equal(locate(w, "203.0.113.31", NULL, &r), 0);
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN | AP_GEO_FLAG_HOSTING);
    ap_geo_worker_get_cache_stats(w, &st);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 1);
    /* Same city network, another ASN network: a miss, and the right flags. */
    assert_int_equal(locate(w, "203.0.113.32", NULL, &r), 0);
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN);
    assert_string_equal(r.region, "CA");
    /* Not-found answers are cached too; reserved ones never reach it. */
    assert_int_equal(locate(w, "5.5.5.5", NULL, &r), -ENOENT);
    assert_int_equal(locate(w, "6.1.2.3", NULL, &r), -ENOENT);
    assert_int_equal(locate(w, "10.0.0.1", NULL, &r), -EADDRNOTAVAIL);
    ap_geo_worker_get_cache_stats(w, &st);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.entries, 3);
    ap_geo_worker_free(w);
    ap_geo_close(g);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* Install `from` at `path` the way geoipupdate does: write a new file,
 * then rename it over the old one. */
static void replace(const char *from, const char *path)
{
    char tmp[700];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    copy_file(from, tmp);
    assert_int_equal(rename(tmp, path), 0);
}

static const char *country_of(struct ap_geo_worker *w, const char *addr)
{
    static struct ap_geo_result r;
    int rc = locate(w, addr, NULL, &r);
    if (rc != 0)
        fail_msg("lookup %s: %d", addr, rc);
    return r.country;
}

static void test_reload(void **state)
{
    char dir[] = "/tmp/geo-reload-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600];
    snprintf(path, sizeof(path), "%s/city.mmdb", dir);
    replace(fixture("fixture-geoip2.mmdb"), path);

    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = path;
    o.min_visitors_region = 0;
    struct ap_geo *g = open_geo(&o);
    struct ap_geo_worker *w;
    assert_int_equal(ap_geo_worker_new(&w, g), 0);
    assert_string_equal(country_of(w, "8.8.8.8"), "US");
    assert_string_equal(country_of(w, "8.8.8.9"), "US"); /* cached */
    assert_false(ap_geo_is_changed(g));
    struct ap_geo_stats gs;
    ap_geo_get_stats(g, &gs);
    assert_int_equal(gs.generation, 1);

    /* A lookup in flight holds the old database. */
    struct ap_geo_db *inflight = ap_geo_acquire(g);

    replace(fixture("fixture-geoip2-b.mmdb"), path);
    assert_true(ap_geo_is_changed(g));
    char err[AP_GEO_ERR_LEN];
    assert_int_equal(ap_geo_reload(g, err, sizeof(err)), 0);
    assert_false(ap_geo_is_changed(g));
    ap_geo_get_stats(g, &gs);
    assert_int_equal(gs.generation, 2);
    assert_int_equal(gs.reloads, 1);
    assert_int_equal(gs.reload_failures, 0);

    /* No cached answer of the old database survives. */
    assert_string_equal(country_of(w, "8.8.8.8"), "CA");
    assert_int_equal(ap_geo_worker_generation(w), 2);
    struct ap_geo_cache_stats cs;
    ap_geo_worker_get_cache_stats(w, &cs);
    assert_int_equal(cs.flushes, 1);
    /* The in-flight lookup finishes on the old one. */
    struct ap_geo_record rec;
    unsigned prefix;
    struct ap_ip ip = IP("8.8.8.8");
    assert_int_equal(ap_geo_db_lookup(inflight, &ip, &rec, &prefix), 0);
    assert_string_equal(rec.country, "US");
    assert_int_equal(ap_geo_db_generation(inflight), 1);
    ap_geo_db_unref(inflight);

    /* A corrupt new file: the old one keeps serving; counted, reported,
     * and not retried until the file changes again. */
    char junk[600];
    snprintf(junk, sizeof(junk), "%s/junk", dir);
    FILE *f = fopen(junk, "wb");
    assert_non_null(f);
    for (int i = 0; i < 5000; i++)
        fputc(i * 13, f);
    assert_int_equal(fclose(f), 0);
    replace(junk, path);
    assert_true(ap_geo_is_changed(g));
    assert_int_equal(ap_geo_reload(g, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, path));
    assert_false(ap_geo_is_changed(g));
    ap_geo_get_stats(g, &gs);
    assert_int_equal(gs.generation, 2);
    assert_int_equal(gs.reload_failures, 1);
    assert_string_equal(gs.last_error, err);
    assert_string_equal(country_of(w, "8.8.8.8"), "CA");

    /* A missing file: the same. */
    assert_int_equal(unlink(path), 0);
    assert_true(ap_geo_is_changed(g));
    assert_int_equal(ap_geo_reload(g, NULL, 0), -ENOENT);
    ap_geo_get_stats(g, &gs);
    assert_int_equal(gs.reload_failures, 2);
    assert_non_null(strstr(gs.last_error, "No such file"));
    assert_string_equal(country_of(w, "8.8.8.8"), "CA");
    assert_string_equal(country_of(w, "192.0.2.1"), "ES");

    /* Back to a good file. */
    replace(fixture("fixture-geoip2.mmdb"), path);
    assert_true(ap_geo_is_changed(g));
    assert_int_equal(ap_geo_reload(g, err, sizeof(err)), 0);
    ap_geo_get_stats(g, &gs);
    assert_int_equal(gs.generation, 3);
    assert_int_equal(gs.reloads, 2);
    assert_string_equal(country_of(w, "8.8.8.8"), "US");
    assert_string_equal(country_of(w, "192.0.2.1"), "FR");

    ap_geo_worker_free(w);
    ap_geo_close(g);
    unlink(path);
    unlink(junk);
    assert_int_equal(rmdir(dir), 0);
}

struct load {
    struct ap_geo *g;
    atomic_bool stop;
    atomic_uint lookups;
    atomic_uint failures;
    atomic_uint mismatches;
};

/* Each answer must be one of the two databases', and consistent with the
 * generation the worker says it used. */
static void *load_worker(void *p)
{
    struct load *l = p;
    struct ap_geo_worker *w;
    if (ap_geo_worker_new(&w, l->g) != 0) {
        atomic_fetch_add(&l->failures, 1);
        return NULL;
    }
    const char *addrs[] = {"8.8.8.8", "192.0.2.77", "198.51.100.1", "2001:db8::5"};
    unsigned i = 0;
    while (!atomic_load(&l->stop)) {
        struct ap_geo_result r;
        struct ap_ip ip = IP(addrs[i++ % 4]);
        if (ap_geo_lookup(w, &ip, NULL, 0, NOON, &r) != 0) {
            atomic_fetch_add(&l->failures, 1);
            continue;
        }
        /* Odd generations are file A (US, FR, DE, FR), even ones B. */
        bool a = ap_geo_worker_generation(w) % 2 == 1;
        static const char *const in_a[] = {"US", "FR", "DE", "FR"};
        static const char *const in_b[] = {"CA", "ES", "IT", "ES"};
        const char *want = a ? in_a[(i - 1) % 4] : in_b[(i - 1) % 4];
        if (strcmp(r.country, want) != 0)
            atomic_fetch_add(&l->mismatches, 1);
        atomic_fetch_add(&l->lookups, 1);
    }
    ap_geo_worker_free(w);
    return NULL;
}

static void test_reload_under_lookups(void **state)
{
    char dir[] = "/tmp/geo-reload-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600];
    snprintf(path, sizeof(path), "%s/city.mmdb", dir);
    replace(fixture("fixture-geoip2.mmdb"), path);
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = path;
    o.min_visitors_region = 0;
    struct load l;
    l.g = open_geo(&o);
    atomic_init(&l.stop, false);
    atomic_init(&l.lookups, 0);
    atomic_init(&l.failures, 0);
    atomic_init(&l.mismatches, 0);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, load_worker, &l), 0);
    char err[AP_GEO_ERR_LEN];
    for (int i = 0; i < 20; i++) {
        replace(fixture(i % 2 == 0 ? "fixture-geoip2-b.mmdb" : "fixture-geoip2.mmdb"), path);
        assert_int_equal(ap_geo_reload(l.g, err, sizeof(err)), 0);
        usleep(2000);
    }
    atomic_store(&l.stop, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(atomic_load(&l.failures), 0);
    assert_int_equal(atomic_load(&l.mismatches), 0);
    assert_true(atomic_load(&l.lookups) > 100);
    struct ap_geo_stats gs;
    ap_geo_get_stats(l.g, &gs);
    assert_int_equal(gs.generation, 21);
    ap_geo_close(l.g);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

static void test_header_names(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.headers[AP_GEO_OUT_CITY] = "X-City";
    o.headers[AP_GEO_OUT_TIMEZONE] = NULL;
    char name[] = "X-Region-Mine";
    o.headers[AP_GEO_OUT_REGION] = name;
    struct ap_geo *g = open_geo(&o);
    name[0] = 'Y'; /* the options were copied */
    assert_string_equal(ap_geo_header_name(g, AP_GEO_OUT_COUNTRY), "X-Geo-Country");
    assert_string_equal(ap_geo_header_name(g, AP_GEO_OUT_CITY), "X-City");
    assert_string_equal(ap_geo_header_name(g, AP_GEO_OUT_REGION), "X-Region-Mine");
    assert_null(ap_geo_header_name(g, AP_GEO_OUT_TIMEZONE));
    assert_null(ap_geo_header_name(g, AP_GEO_OUT_COUNT));
    ap_geo_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_pipeline_precision),
        cmocka_unit_test(test_pipeline_statuses),
        cmocka_unit_test(test_floor_in_pipeline),
        cmocka_unit_test(test_truncated_lookup),
        cmocka_unit_test(test_cache_in_pipeline),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_under_lookups),
        cmocka_unit_test(test_header_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

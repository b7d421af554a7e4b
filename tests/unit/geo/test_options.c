/* Unit tests of geo/options.c: defaults, the parsers of the `geo:` keys,
 * field paths, validation messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/geo.h"

static void test_defaults(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    assert_null(o.database);
    assert_int_equal(o.schema, AP_GEO_SCHEMA_GEOIP2);
    assert_int_equal(o.precision, AP_GEO_LEVEL_REGION);
    assert_int_equal(o.coords, AP_GEO_COORDS_DROP);
    assert_false(o.timezone);
    assert_false(o.keep_asn);
    assert_int_equal(o.min_visitors_region, 10);
    assert_int_equal(o.min_visitors_city, 50);
    assert_int_equal(o.lookup, AP_GEO_ADDR_FULL);
    assert_int_equal(o.truncate_v4, 24);
    assert_int_equal(o.truncate_v6, 48);
    assert_int_equal(o.cache_size, 10000);
    assert_string_equal(o.headers[AP_GEO_OUT_CONTINENT], "X-Geo-Continent");
    assert_string_equal(o.headers[AP_GEO_OUT_COUNTRY], "X-Geo-Country");
    assert_string_equal(o.headers[AP_GEO_OUT_REGION], "X-Geo-Region");
    assert_string_equal(o.headers[AP_GEO_OUT_CITY], "X-Geo-City");
    assert_string_equal(o.headers[AP_GEO_OUT_TIMEZONE], "X-Geo-Timezone");
    char err[AP_GEO_ERR_LEN];
    /* Everything but the database is valid by default. */
    assert_int_equal(ap_geo_options_validate(&o, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "geo.database: a database file is required");
    o.database = "/x.mmdb";
    assert_int_equal(ap_geo_options_validate(&o, err, sizeof(err)), 0);
}

static void test_parse_enums(void **state)
{
    enum ap_geo_level l;
    const char *levels[] = {"none", "continent", "country", "region", "city"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ap_geo_options_parse_level(&l, levels[i]), 0);
        assert_int_equal(l, i);
    }
    assert_int_equal(ap_geo_options_parse_level(&l, "City"), -EINVAL);
    assert_int_equal(ap_geo_options_parse_level(&l, "postal"), -EINVAL);
    assert_int_equal(ap_geo_options_parse_level(&l, ""), -EINVAL);

    enum ap_geo_schema s;
    assert_int_equal(ap_geo_options_parse_schema(&s, "geoip2"), 0);
    assert_int_equal(s, AP_GEO_SCHEMA_GEOIP2);
    assert_int_equal(ap_geo_options_parse_schema(&s, "ip-location-db"), 0);
    assert_int_equal(s, AP_GEO_SCHEMA_IP_LOCATION_DB);
    assert_int_equal(ap_geo_options_parse_schema(&s, "maxmind"), -EINVAL);

    enum ap_geo_addr a;
    assert_int_equal(ap_geo_options_parse_addr(&a, "full"), 0);
    assert_int_equal(a, AP_GEO_ADDR_FULL);
    assert_int_equal(ap_geo_options_parse_addr(&a, "truncated"), 0);
    assert_int_equal(a, AP_GEO_ADDR_TRUNCATED);
    assert_int_equal(ap_geo_options_parse_addr(&a, "none"), -EINVAL);

    enum ap_geo_field f;
    assert_int_equal(ap_geo_options_parse_field(&f, "region"), 0);
    assert_int_equal(f, AP_GEO_FIELD_REGION);
    assert_int_equal(ap_geo_options_parse_field(&f, "timezone"), 0);
    assert_int_equal(f, AP_GEO_FIELD_TIMEZONE);
    /* Postal codes are never read, not even on request. */
    assert_int_equal(ap_geo_options_parse_field(&f, "postcode"), -EINVAL);
    assert_int_equal(ap_geo_options_parse_field(&f, "postal"), -EINVAL);
}

static void test_parse_coords(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    assert_int_equal(ap_geo_options_parse_coords(&o, "round:3"), 0);
    assert_int_equal(o.coords, AP_GEO_COORDS_ROUND);
    assert_int_equal(o.coord_decimals, 3);
    assert_int_equal(ap_geo_options_parse_coords(&o, "grid:2.5"), 0);
    assert_int_equal(o.coords, AP_GEO_COORDS_GRID);
    assert_true(o.coord_grid_km == 2.5);
    assert_int_equal(ap_geo_options_parse_coords(&o, "drop"), 0);
    assert_int_equal(o.coords, AP_GEO_COORDS_DROP);
    const char *bad[] = {"round:7", "round:", "round:12", "round:-1", "round:a", "grid:",
                         "grid:0.05", "grid:20001", "grid:inf", "grid:nan", "grid:1e3",
                         "grid:.5", "grid:5.", "grid: 5", "grid:0x10", "grid:1.2.3",
                         "Drop", "", "round", "keep"};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++) {
        o.coords = AP_GEO_COORDS_DROP;
        o.coord_decimals = 1;
        if (ap_geo_options_parse_coords(&o, bad[i]) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(o.coords, AP_GEO_COORDS_DROP);
        assert_int_equal(o.coord_decimals, 1);
    }
}

static void test_paths(void **state)
{
    assert_true(ap_geo_options_is_valid_path("country"));
    assert_true(ap_geo_options_is_valid_path("subdivisions.0.iso_code"));
    assert_true(ap_geo_options_is_valid_path("a-b.c_d.E9"));
    assert_true(ap_geo_options_is_valid_path("a.b.c.d.e.f.g.h"));
    assert_false(ap_geo_options_is_valid_path("a.b.c.d.e.f.g.h.i"));
    assert_false(ap_geo_options_is_valid_path(""));
    assert_false(ap_geo_options_is_valid_path(NULL));
    assert_false(ap_geo_options_is_valid_path(".a"));
    assert_false(ap_geo_options_is_valid_path("a."));
    assert_false(ap_geo_options_is_valid_path("a..b"));
    assert_false(ap_geo_options_is_valid_path("a b"));
    assert_false(ap_geo_options_is_valid_path("a/b"));
    char longp[300];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_false(ap_geo_options_is_valid_path(longp));

    assert_string_equal(ap_geo_options_default_path(AP_GEO_SCHEMA_GEOIP2, AP_GEO_FIELD_COUNTRY),
                        "country.iso_code");
    assert_string_equal(ap_geo_options_default_path(AP_GEO_SCHEMA_GEOIP2, AP_GEO_FIELD_REGION),
                        "subdivisions.0.iso_code");
    assert_string_equal(
        ap_geo_options_default_path(AP_GEO_SCHEMA_IP_LOCATION_DB, AP_GEO_FIELD_REGION), "state1");
    assert_null(ap_geo_options_default_path(AP_GEO_SCHEMA_IP_LOCATION_DB, AP_GEO_FIELD_CONTINENT));
    assert_null(ap_geo_options_default_path(AP_GEO_SCHEMA_GEOIP2, AP_GEO_FIELD_COUNT));
    /* Every default path is itself valid. */
    for (int s = 0; s < 2; s++) {
        for (int f = 0; f < AP_GEO_FIELD_COUNT; f++) {
            const char *p = ap_geo_options_default_path((enum ap_geo_schema)s, (enum ap_geo_field)f);
            if (p != NULL)
                assert_true(ap_geo_options_is_valid_path(p));
        }
    }
}

static void expect_invalid(const struct ap_geo_options *o, const char *fragment)
{
    char err[AP_GEO_ERR_LEN];
    err[0] = '\0';
    assert_int_equal(ap_geo_options_validate(o, err, sizeof(err)), -EINVAL);
    if (strstr(err, fragment) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, fragment);
}

static void test_validate(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = "/x.mmdb";
    struct ap_geo_options bad = o;
    bad.fields[AP_GEO_FIELD_CITY] = "city..names";
    expect_invalid(&bad, "geo.fields.city");
    bad = o;
    bad.headers[AP_GEO_OUT_CITY] = "X Geo City";
    expect_invalid(&bad, "geo.headers");
    bad.headers[AP_GEO_OUT_CITY] = "X-Geo-City\r\nX-Evil";
    expect_invalid(&bad, "geo.headers");
    bad = o;
    bad.precision = (enum ap_geo_level)9;
    expect_invalid(&bad, "geo.precision");
    bad = o;
    bad.coords = AP_GEO_COORDS_ROUND;
    bad.coord_decimals = 7;
    expect_invalid(&bad, "geo.coordinates");
    bad = o;
    bad.coords = AP_GEO_COORDS_GRID;
    bad.coord_grid_km = 0;
    expect_invalid(&bad, "geo.coordinates");
    bad = o;
    bad.floor_max_cells = 0;
    expect_invalid(&bad, "floor_max_cells");
    bad = o;
    bad.truncate_v4 = 33;
    expect_invalid(&bad, "truncation");
    bad = o;
    bad.database_v6 = "";
    expect_invalid(&bad, "geo.database_v6");
    bad = o;
    bad.nhosting_asns = 3;
    expect_invalid(&bad, "hosting_asns");
    bad = o;
    bad.cache_size = (size_t)1 << 30;
    expect_invalid(&bad, "geo.cache_size");
    /* A header left out is fine: that value is not emitted. */
    struct ap_geo_options ok = o;
    ok.headers[AP_GEO_OUT_TIMEZONE] = NULL;
    ok.fields[AP_GEO_FIELD_REGION] = "subdivisions.0.names.en";
    assert_int_equal(ap_geo_options_validate(&ok, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse_enums),
        cmocka_unit_test(test_parse_coords),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

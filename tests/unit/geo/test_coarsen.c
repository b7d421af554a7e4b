/* Unit tests of geo/coarsen.c: every precision level, records with
 * missing parts, coordinates dropped, rounded and snapped to a grid, the
 * time zone, the AS number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>
#include <math.h>

#include "anonproxy/geo.h"

static struct ap_geo_record paris(void)
{
    struct ap_geo_record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.continent, "EU", 3);
    memcpy(r.country, "FR", 3);
    memcpy(r.region, "IDF", 4);
    memcpy(r.city, "Paris", 6);
    memcpy(r.timezone, "Europe/Paris", 13);
    r.has_coords = true;
    r.latitude = 48.856613;
    r.longitude = 2.352222;
    r.asn = 3215;
    r.flags = AP_GEO_FLAG_ASN_KNOWN;
    return r;
}

static struct ap_geo_options opts(enum ap_geo_level precision)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.precision = precision;
    return o;
}

static void test_level_of(void **state)
{
    struct ap_geo_record r = paris();
    assert_int_equal(ap_geo_coarsen_level_of(&r), AP_GEO_LEVEL_CITY);
    r.city[0] = '\0';
    assert_int_equal(ap_geo_coarsen_level_of(&r), AP_GEO_LEVEL_REGION);
    r.region[0] = '\0';
    assert_int_equal(ap_geo_coarsen_level_of(&r), AP_GEO_LEVEL_COUNTRY);
    r.country[0] = '\0';
    assert_int_equal(ap_geo_coarsen_level_of(&r), AP_GEO_LEVEL_CONTINENT);
    r.continent[0] = '\0';
    assert_int_equal(ap_geo_coarsen_level_of(&r), AP_GEO_LEVEL_NONE);
    /* A city-state: a city without a region is still a city. */
    r = paris();
    r.region[0] = '\0';
    assert_int_equal(ap_geo_coarsen_level_of(&r), AP_GEO_LEVEL_CITY);
}

static void test_each_level(void **state)
{
    struct ap_geo_record r = paris();
    struct ap_geo_result out;
    struct ap_geo_options o = opts(AP_GEO_LEVEL_CITY);

    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_NONE, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_NONE);
    assert_string_equal(out.continent, "");
    assert_string_equal(out.country, "");

    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CONTINENT, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_CONTINENT);
    assert_string_equal(out.continent, "EU");
    assert_string_equal(out.country, "");

    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_COUNTRY, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_COUNTRY);
    assert_string_equal(out.country, "FR");
    assert_string_equal(out.region, "");
    assert_string_equal(out.city, "");

    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_REGION, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_REGION);
    assert_string_equal(out.country, "FR");
    assert_string_equal(out.region, "IDF");
    assert_string_equal(out.city, "");

    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_CITY);
    assert_string_equal(out.continent, "EU");
    assert_string_equal(out.country, "FR");
    assert_string_equal(out.region, "IDF");
    assert_string_equal(out.city, "Paris");
    /* Defaults: no coordinates, no time zone, no AS number; flags kept. */
    assert_false(out.has_coords);
    assert_string_equal(out.timezone, "");
    assert_int_equal(out.asn, 0);
    assert_int_equal(out.flags, AP_GEO_FLAG_ASN_KNOWN);
}

static void test_precision_caps(void **state)
{
    struct ap_geo_record r = paris();
    struct ap_geo_result out;
    for (int p = AP_GEO_LEVEL_NONE; p <= AP_GEO_LEVEL_CITY; p++) {
        struct ap_geo_options o = opts((enum ap_geo_level)p);
        ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
        assert_int_equal(out.level, p);
        assert_int_equal(out.city[0] != '\0', p >= AP_GEO_LEVEL_CITY);
        assert_int_equal(out.region[0] != '\0', p >= AP_GEO_LEVEL_REGION);
        assert_int_equal(out.country[0] != '\0', p >= AP_GEO_LEVEL_COUNTRY);
        assert_int_equal(out.continent[0] != '\0', p >= AP_GEO_LEVEL_CONTINENT);
    }
}

static void test_missing_parts(void **state)
{
    struct ap_geo_options o = opts(AP_GEO_LEVEL_CITY);
    struct ap_geo_result out;
    /* Region asked, none in the record: the country. */
    struct ap_geo_record r = paris();
    r.region[0] = '\0';
    r.city[0] = '\0';
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_REGION, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_COUNTRY);
    /* City without region: the city, region empty. */
    r = paris();
    r.region[0] = '\0';
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_CITY);
    assert_string_equal(out.region, "");
    assert_string_equal(out.city, "Paris");
    /* Region without city, city asked: the region. */
    r = paris();
    r.city[0] = '\0';
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_REGION);
    assert_false(out.has_coords);
    /* Nothing at all. */
    memset(&r, 0, sizeof(r));
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_int_equal(out.level, AP_GEO_LEVEL_NONE);
}

static void test_round(void **state)
{
    struct ap_geo_options o = opts(AP_GEO_LEVEL_CITY);
    assert_int_equal(ap_geo_options_parse_coords(&o, "round:2"), 0);
    struct ap_geo_record r = paris();
    struct ap_geo_result out;
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_true(out.has_coords);
    assert_int_equal(out.coord_decimals, 2);
    assert_true(fabs(out.latitude - 48.86) < 1e-9);
    assert_true(fabs(out.longitude - 2.35) < 1e-9);

    double lat, lon;
    assert_int_equal(ap_geo_options_parse_coords(&o, "round:0"), 0);
    assert_int_equal(ap_geo_coarsen_coords(&o, 48.5, -2.5, &lat, &lon), 0);
    assert_true(lat == 49.0 && lon == -3.0);
    /* No negative zero. */
    assert_int_equal(ap_geo_coarsen_coords(&o, -0.2, -0.4, &lat, &lon), 0);
    assert_false(signbit(lat));
    assert_false(signbit(lon));

    /* Coordinates belong to the city: not at region level. */
    assert_int_equal(ap_geo_options_parse_coords(&o, "round:1"), 0);
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_REGION, &out);
    assert_false(out.has_coords);
    /* None in the record, none out. */
    r.has_coords = false;
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_false(out.has_coords);
}

static void test_drop_and_bad_coords(void **state)
{
    struct ap_geo_options o = opts(AP_GEO_LEVEL_CITY);
    double lat, lon;
    assert_int_equal(ap_geo_coarsen_coords(&o, 48.0, 2.0, &lat, &lon), -ENOENT);
    assert_int_equal(ap_geo_options_parse_coords(&o, "round:3"), 0);
    assert_int_equal(ap_geo_coarsen_coords(&o, 91.0, 2.0, &lat, &lon), -EINVAL);
    assert_int_equal(ap_geo_coarsen_coords(&o, 0.0, -180.5, &lat, &lon), -EINVAL);
    assert_int_equal(ap_geo_coarsen_coords(&o, NAN, 0.0, &lat, &lon), -EINVAL);
    assert_int_equal(ap_geo_coarsen_coords(&o, 0.0, INFINITY, &lat, &lon), -EINVAL);
    struct ap_geo_record r = paris();
    r.latitude = NAN;
    struct ap_geo_result out;
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_false(out.has_coords);
}

static void test_grid(void **state)
{
    struct ap_geo_options o = opts(AP_GEO_LEVEL_CITY);
    assert_int_equal(ap_geo_options_parse_coords(&o, "grid:10"), 0);
    double lat1, lon1, lat2, lon2;
    /* Two points 300 m apart, far from cell edges, share a centre. */
    assert_int_equal(ap_geo_coarsen_coords(&o, 48.8566, 2.3522, &lat1, &lon1), 0);
    assert_int_equal(ap_geo_coarsen_coords(&o, 48.8590, 2.3550, &lat2, &lon2), 0);
    assert_true(lat1 == lat2 && lon1 == lon2);
    /* The centre is within half a cell of the point (10 km cells: 0.045
     * degrees of latitude, 0.068 of longitude at 48.9 degrees). */
    assert_true(fabs(lat1 - 48.8566) <= 0.0451);
    assert_true(fabs(lon1 - 2.3522) <= 0.0686);
    /* Every point of a cell maps to the same centre: the centre maps to
     * itself. */
    double lat3, lon3;
    assert_int_equal(ap_geo_coarsen_coords(&o, lat1, lon1, &lat3, &lon3), 0);
    assert_true(fabs(lat3 - lat1) < 1e-4 && fabs(lon3 - lon1) < 1e-4);
    /* Lyon is another cell. */
    assert_int_equal(ap_geo_coarsen_coords(&o, 45.764, 4.8357, &lat2, &lon2), 0);
    assert_false(lat1 == lat2 && lon1 == lon2);

    /* Edges of the world stay in range. */
    const double pts[][2] = {{90, 180}, {-90, -180}, {89.9999, 0}, {0, 179.9999}, {-89.99, 179.99}};
    for (size_t i = 0; i < AP_ARRAY_SIZE(pts); i++) {
        assert_int_equal(ap_geo_coarsen_coords(&o, pts[i][0], pts[i][1], &lat1, &lon1), 0);
        assert_true(lat1 >= -90 && lat1 <= 90 && lon1 >= -180 && lon1 <= 180);
    }
    /* Cells of 20000 km: the first band covers -90..89.66, and at its
     * centre the second column starts at -0.34 and is cut at 180. */
    assert_int_equal(ap_geo_options_parse_coords(&o, "grid:20000"), 0);
    assert_int_equal(ap_geo_coarsen_coords(&o, 48.85, 2.35, &lat1, &lon1), 0);
    double step = 20000 / 111.32;
    double want_lat = (-90 + (-90 + step)) / 2;
    double lstep = 20000 / (111.32 * cos(want_lat * M_PI / 180));
    double want_lon = (-180 + lstep + fmin(-180 + 2 * lstep, 180)) / 2;
    assert_true(fabs(lat1 - want_lat) < 1e-4);
    assert_true(fabs(lon1 - want_lon) < 1e-4);

    struct ap_geo_record r = paris();
    struct ap_geo_result out;
    assert_int_equal(ap_geo_options_parse_coords(&o, "grid:1"), 0);
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_true(out.has_coords);
    assert_int_equal(out.coord_decimals, 4);
    assert_false(out.latitude == r.latitude);
}

static void test_timezone_and_asn(void **state)
{
    struct ap_geo_options o = opts(AP_GEO_LEVEL_CITY);
    o.timezone = true;
    o.keep_asn = true;
    struct ap_geo_record r = paris();
    struct ap_geo_result out;
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_CITY, &out);
    assert_string_equal(out.timezone, "Europe/Paris");
    assert_int_equal(out.asn, 3215);
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_REGION, &out);
    assert_string_equal(out.timezone, "Europe/Paris");
    /* In large countries the zone tells the region: not at country level. */
    ap_geo_coarsen_apply(&o, &r, AP_GEO_LEVEL_COUNTRY, &out);
    assert_string_equal(out.timezone, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_of),
        cmocka_unit_test(test_each_level),
        cmocka_unit_test(test_precision_caps),
        cmocka_unit_test(test_missing_parts),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_drop_and_bad_coords),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_timezone_and_asn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

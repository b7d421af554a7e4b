/* Unit tests of geo/format.c: the JSON object and header values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/geo.h"

static struct ap_geo_result city(void)
{
    struct ap_geo_result r;
    memset(&r, 0, sizeof(r));
    r.level = AP_GEO_LEVEL_CITY;
    memcpy(r.continent, "EU", 3);
    memcpy(r.country, "CH", 3);
    memcpy(r.region, "ZH", 3);
    snprintf(r.city, sizeof(r.city), "Zürich");
    memcpy(r.timezone, "Europe/Zurich", 14);
    r.has_coords = true;
    r.latitude = 47.38;
    r.longitude = 8.54;
    r.coord_decimals = 2;
    return r;
}

static void test_json_full(void **state)
{
    struct ap_geo_result r = city();
    char buf[AP_GEO_JSON_MAX];
    int n = ap_geo_format_json(&r, buf, sizeof(buf));
    const char *want = "{\"level\":\"city\",\"continent\":\"EU\",\"country\":\"CH\",\"region\":\"ZH\","
                       "\"city\":\"Zürich\",\"timezone\":\"Europe/Zurich\",\"latitude\":47.38,"
                       "\"longitude\":8.54}";
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
    /* The exact size fits, one byte less does not. */
    char small[256];
    assert_int_equal(ap_geo_format_json(&r, small, (size_t)n + 1), n);
    assert_int_equal(ap_geo_format_json(&r, small, (size_t)n), -ENOSPC);
    assert_string_equal(small, "");
    assert_int_equal(ap_geo_format_json(&r, small, 0), -ENOSPC);
}

static void test_json_sparse(void **state)
{
    struct ap_geo_result r;
    memset(&r, 0, sizeof(r));
    char buf[AP_GEO_JSON_MAX];
    assert_int_equal(ap_geo_format_json(&r, buf, sizeof(buf)), 16);
    assert_string_equal(buf, "{\"level\":\"none\"}");
    r.level = AP_GEO_LEVEL_COUNTRY;
    memcpy(r.continent, "NA", 3);
    memcpy(r.country, "US", 3);
    r.asn = 64496;
    ap_geo_format_json(&r, buf, sizeof(buf));
    assert_string_equal(buf,
                        "{\"level\":\"country\",\"continent\":\"NA\",\"country\":\"US\",\"asn\":64496}");
    /* Negative coordinates, zero decimals, no negative zero. */
    r.asn = 0;
    r.has_coords = true;
    r.latitude = -33.9;
    r.longitude = -0.0;
    r.coord_decimals = 0;
    ap_geo_format_json(&r, buf, sizeof(buf));
    assert_string_equal(buf, "{\"level\":\"country\",\"continent\":\"NA\",\"country\":\"US\","
                             "\"latitude\":-34,\"longitude\":0}");
}

static void test_json_escaping(void **state)
{
    struct ap_geo_result r;
    memset(&r, 0, sizeof(r));
    r.level = AP_GEO_LEVEL_CITY;
    snprintf(r.city, sizeof(r.city), "a\"b\\c\x01\x7f");
    /* Invalid UTF-8: a lone continuation byte and a truncated sequence. */
    snprintf(r.region, sizeof(r.region), "x\x80y\xc3");
    char buf[AP_GEO_JSON_MAX];
    ap_geo_format_json(&r, buf, sizeof(buf));
    assert_string_equal(buf, "{\"level\":\"city\",\"region\":\"x\\ufffdy\\ufffd\","
                             "\"city\":\"a\\\"b\\\\c\\u0001\\u007f\"}");
}

static void test_json_max_suffices(void **state)
{
    struct ap_geo_result r;
    memset(&r, 0, sizeof(r));
    r.level = AP_GEO_LEVEL_CONTINENT; /* the longest level name */
    memset(r.continent, 0x80, sizeof(r.continent) - 1);
    memset(r.country, 0x80, sizeof(r.country) - 1);
    memset(r.region, 0x80, sizeof(r.region) - 1);
    memset(r.city, 0x01, sizeof(r.city) - 1);
    memset(r.timezone, 0xff, sizeof(r.timezone) - 1);
    r.has_coords = true;
    r.latitude = -89.999999;
    r.longitude = -179.999999;
    r.coord_decimals = 6;
    r.asn = UINT32_MAX;
    char buf[AP_GEO_JSON_MAX];
    int n = ap_geo_format_json(&r, buf, sizeof(buf));
    assert_true(n > 0 && n < AP_GEO_JSON_MAX);
}

static void test_headers(void **state)
{
    struct ap_geo_result r = city();
    char buf[AP_GEO_HEADER_MAX];
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_COUNTRY, buf, sizeof(buf)), 2);
    assert_string_equal(buf, "CH");
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_CITY, buf, sizeof(buf)), 11);
    assert_string_equal(buf, "Z%C3%BCrich");
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_TIMEZONE, buf, sizeof(buf)), 13);
    assert_string_equal(buf, "Europe/Zurich");
    snprintf(r.city, sizeof(r.city), "New York 100%%");
    ap_geo_format_header(&r, AP_GEO_OUT_CITY, buf, sizeof(buf));
    assert_string_equal(buf, "New%20York%20100%25");
    snprintf(r.city, sizeof(r.city), "a\r\nX-Evil: 1");
    ap_geo_format_header(&r, AP_GEO_OUT_CITY, buf, sizeof(buf));
    assert_string_equal(buf, "a%0D%0AX-Evil:%201");
    /* Absent values: nothing to emit. */
    r.region[0] = '\0';
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_REGION, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    /* Too small, unknown field. */
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_TIMEZONE, buf, 13), -ENOSPC);
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_TIMEZONE, buf, 14), 13);
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_COUNT, buf, sizeof(buf)), -EINVAL);
    /* The worst case fits AP_GEO_HEADER_MAX. */
    memset(r.city, 0xff, sizeof(r.city) - 1);
    r.city[sizeof(r.city) - 1] = '\0';
    assert_int_equal(ap_geo_format_header(&r, AP_GEO_OUT_CITY, buf, sizeof(buf)),
                     3 * (AP_GEO_NAME_LEN - 1));
}

static void test_level_names(void **state)
{
    assert_string_equal(ap_geo_format_level(AP_GEO_LEVEL_NONE), "none");
    assert_string_equal(ap_geo_format_level(AP_GEO_LEVEL_CONTINENT), "continent");
    assert_string_equal(ap_geo_format_level(AP_GEO_LEVEL_COUNTRY), "country");
    assert_string_equal(ap_geo_format_level(AP_GEO_LEVEL_REGION), "region");
    assert_string_equal(ap_geo_format_level(AP_GEO_LEVEL_CITY), "city");
    assert_string_equal(ap_geo_format_level((enum ap_geo_level)42), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_full),
        cmocka_unit_test(test_json_sparse),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_json_max_suffices),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

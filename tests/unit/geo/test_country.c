/* Unit tests of geo/country.c: continents of countries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include "anonproxy/geo.h"

static void test_known(void **state)
{
    const char *pairs[][2] = {
        {"FR", "EU"}, {"US", "NA"}, {"BR", "SA"}, {"AU", "OC"}, {"JP", "AS"}, {"KE", "AF"},
        {"AQ", "AN"}, {"RU", "EU"}, {"TR", "AS"}, {"EG", "AF"}, {"PA", "NA"}, {"MX", "NA"},
        {"NZ", "OC"}, {"XK", "EU"}, {"CW", "NA"}, {"SS", "AF"}, {"AD", "EU"}, {"ZW", "AF"},
        {"EU", "EU"}, {"AP", "AS"},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(pairs); i++) {
        const char *c = ap_geo_country_continent(pairs[i][0]);
        if (c == NULL)
            fail_msg("no continent for %s", pairs[i][0]);
        assert_string_equal(c, pairs[i][1]);
    }
}

static void test_unknown(void **state)
{
    assert_null(ap_geo_country_continent("ZZ"));
    assert_null(ap_geo_country_continent("fr"));
    assert_null(ap_geo_country_continent("FRA"));
    assert_null(ap_geo_country_continent("F"));
    assert_null(ap_geo_country_continent(""));
    assert_null(ap_geo_country_continent(NULL));
}

/* Every assigned code is found, which also proves the table is sorted
 * (bsearch would miss entries otherwise), and every answer is one of the
 * seven continent codes. */
static void test_whole_table(void **state)
{
    static const char *const continents[] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"};
    unsigned found = 0;
    char cc[3] = {0};
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            cc[0] = a;
            cc[1] = b;
            const char *c = ap_geo_country_continent(cc);
            if (c == NULL)
                continue;
            found++;
            bool ok = false;
            for (size_t i = 0; i < AP_ARRAY_SIZE(continents); i++)
                ok |= strcmp(c, continents[i]) == 0;
            assert_true(ok);
        }
    }
    /* 249 ISO 3166-1 codes, Kosovo's XK, and the EU and AP pseudo-codes. */
    assert_int_equal(found, 252);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_whole_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

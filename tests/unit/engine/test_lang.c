/* Unit tests of proxy/engine/lang.c. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/lang.h"

static const char *red(const char *v)
{
    static char out[AP_LANG_REDUCED_MAX];
    size_t n = 42;
    assert_int_equal(ap_lang_reduce(v, strlen(v), out, sizeof(out), &n), 0);
    assert_int_equal(n, strlen(out));
    return out;
}

static void test_reduce(void **state)
{
    (void)state;
    assert_string_equal(red("de-CH,de;q=0.9,en;q=0.8"), "de");
    assert_string_equal(red("EN-us"), "en");
    assert_string_equal(red("fr"), "fr");
    assert_string_equal(red("zh-Hant-TW,zh;q=0.9"), "zh");
    assert_string_equal(red("gsw-CH"), "gsw");
    assert_string_equal(red("en_US"), "en");
    assert_string_equal(red("es-419"), "es");
    assert_string_equal(red("  , ,  fr-CA ; q=0.7"), "fr");
    assert_string_equal(red("de;q=1.000"), "de");
    assert_string_equal(red("de;q=1"), "de");
    assert_string_equal(red("de;q=0.001"), "de");
    assert_string_equal(red("de ; Q = 0.5"), "de");
    /* q=0 means "not acceptable": the next range decides. */
    assert_string_equal(red("fr;q=0, it"), "it");
    assert_string_equal(red("fr;q=0.000,*;q=0,pt-BR"), "pt");
}

static void test_drop(void **state)
{
    (void)state;
    static const char *const drops[] = {
        "", " ", ",,", "*", "*;q=0.5, en", "*, en", "1234", "d", "deutsch", "de-", "-de",
        "de--CH", "de-CH-toolongsubtag", "de;q=abc", "de;x=1", "de;q=1.5", "de;q=0.1234",
        "de;q=", "de;q", "de;", "de;q=.5", "de;q=1.001", "fr;q=0", "d\xc3\xa9", "de CH",
        "i-klingon", "x-private", "de-C\x01",
    };
    for (size_t k = 0; k < AP_ARRAY_SIZE(drops); k++) {
        const char *got = red(drops[k]);
        if (got[0] != '\0')
            print_error("case %zu: [%s] -> [%s]\n", k, drops[k], got);
        assert_string_equal(got, "");
    }
    char out[4];
    size_t n;
    assert_int_equal(ap_lang_reduce("de\0", 3, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
}

static void test_small_buffer(void **state)
{
    (void)state;
    char out[8];
    size_t n = 3;
    assert_int_equal(ap_lang_reduce("de", 2, NULL, 0, &n), -ENOBUFS);
    assert_int_equal(n, 0);
    memset(out, 'Z', sizeof(out));
    assert_int_equal(ap_lang_reduce("de", 2, out, 2, &n), -ENOBUFS);
    assert_int_equal(out[2], 'Z');
    assert_int_equal(ap_lang_reduce("de", 2, out, 3, &n), 0);
    assert_string_equal(out, "de");
    assert_int_equal(ap_lang_reduce("gsw", 3, out, 3, &n), -ENOBUFS);
    assert_int_equal(ap_lang_reduce("gsw", 3, out, 4, &n), 0);
    /* A dropped value fits any buffer with room for the NUL. */
    assert_int_equal(ap_lang_reduce("*", 1, out, 1, &n), 0);
    assert_int_equal(n, 0);
}

static void test_long_input(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    char *v = malloc(len);
    assert_non_null(v);
    for (size_t k = 0; k < len; k++)
        v[k] = (k % 2) ? ',' : ' ';
    memcpy(v + len - 5, "nl-BE", 5);
    char out[AP_LANG_REDUCED_MAX];
    size_t n;
    assert_int_equal(ap_lang_reduce(v, len, out, sizeof(out), &n), 0);
    assert_string_equal(out, "nl");
    memset(v, 'a', len);
    assert_int_equal(ap_lang_reduce(v, len, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_long_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

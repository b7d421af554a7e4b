/* Unit tests of proxy/engine/text.c: glob matching and percent-encoding. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/text.h"

static bool m(const char *glob, const char *s, unsigned flags)
{
    return ap_text_matches_glob(glob, s, strlen(s), flags);
}

static void test_glob_literals_and_wildcards(void **state)
{
    (void)state;
    assert_true(m("gclid", "gclid", 0));
    assert_false(m("gclid", "gclidx", 0));
    assert_false(m("gclid", "gcli", 0));
    assert_true(m("utm_*", "utm_", 0));
    assert_true(m("utm_*", "utm_source", 0));
    assert_false(m("utm_*", "utm", 0));
    assert_true(m("_ga*", "_ga", 0));
    assert_true(m("_ga*", "_ga_ABC123", 0));
    assert_false(m("_ga*", "x_ga", 0));
    assert_true(m("*", "", 0));
    assert_true(m("", "", 0));
    assert_false(m("", "a", 0));
    assert_true(m("a?c", "abc", 0));
    assert_false(m("a?c", "ac", 0));
    assert_true(m("*a*b*c*", "xxaxxbxxcxx", 0));
    assert_false(m("*a*b*c*", "xxaxxcxxbxx", 0));
    assert_true(m("a*b", "aXbXb", 0));
    assert_false(m("a*b", "aXbXc", 0));
    assert_true(m("**", "anything", 0));
    assert_true(m("?*", "x", 0));
    assert_false(m("?*", "", 0));
}

static void test_glob_case(void **state)
{
    (void)state;
    assert_false(m("utm_*", "UTM_source", 0));
    assert_true(m("utm_*", "UTM_source", AP_TEXT_NOCASE));
    assert_true(m("GCLID", "gclid", AP_TEXT_NOCASE));
}

static void test_glob_percent(void **state)
{
    (void)state;
    assert_true(m("gclid", "%67clid", AP_TEXT_PCT));
    assert_true(m("gclid", "%67%63%6c%69%64", AP_TEXT_PCT));
    assert_true(m("gclid", "%47CLID", AP_TEXT_PCT | AP_TEXT_NOCASE));
    assert_false(m("gclid", "%67clid", 0));
    /* Malformed escapes are the literal '%'. */
    assert_true(m("%zz", "%zz", AP_TEXT_PCT));
    assert_true(m("a%4", "a%4", AP_TEXT_PCT));
    assert_true(m("a%", "a%", AP_TEXT_PCT));
    assert_true(m("a b", "a+b", AP_TEXT_PCT | AP_TEXT_PLUS));
    assert_false(m("a b", "a+b", AP_TEXT_PCT));
    /* '?' and '*' count decoded bytes. */
    assert_true(m("?", "%41", AP_TEXT_PCT));
    assert_true(m("a*", "a%41%42", AP_TEXT_PCT));
    assert_true(m("*b", "%41%42%62", AP_TEXT_PCT));
    /* A NUL byte in the subject does not end it. */
    assert_false(ap_text_matches_glob("a", "a\0b", 3, 0));
    assert_true(ap_text_matches_glob("a?b", "a\0b", 3, 0));
    assert_true(ap_text_matches_glob("a?b", "a%00b", 5, AP_TEXT_PCT));
}

static void test_pct_decode(void **state)
{
    (void)state;
    char out[64];
    size_t n = ap_text_pct_decode("a%20b%zz%4%41+", 14, out, AP_TEXT_PLUS);
    assert_int_equal(n, 10);
    assert_memory_equal(out, "a b%zz%4A ", 10);
    n = ap_text_pct_decode("a+b", 3, out, 0);
    assert_memory_equal(out, "a+b", 3);
    char inplace[] = "%41%42c";
    n = ap_text_pct_decode(inplace, 7, inplace, 0);
    assert_int_equal(n, 3);
    assert_memory_equal(inplace, "ABc", 3);
}

static void test_pct_encode(void **state)
{
    (void)state;
    char out[64];
    size_t n = 0;
    const char *in = "a b&c=d/é~*'()!-_.";
    assert_int_equal(ap_text_pct_encode(in, strlen(in), out, sizeof(out), &n), 0);
    assert_int_equal(n, ap_text_pct_encoded_len(in, strlen(in)));
    assert_memory_equal(out, "a%20b%26c%3Dd%2F%C3%A9~*'()!-_.", n);
    assert_int_equal(ap_text_pct_encode("a b", 3, out, 4, &n), -ENOBUFS);
    assert_int_equal(ap_text_pct_encode("a b", 3, out, 5, &n), 0);
    assert_int_equal(n, 5);
}

static void test_glob_long_subject(void **state)
{
    (void)state;
    size_t len = 100000;
    char *s = malloc(len);
    assert_non_null(s);
    memset(s, 'a', len);
    s[len - 1] = 'b';
    assert_true(ap_text_matches_glob("*a*b", s, len, 0));
    assert_false(ap_text_matches_glob("*c*", s, len, 0));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_literals_and_wildcards),
        cmocka_unit_test(test_glob_case),
        cmocka_unit_test(test_glob_percent),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_pct_encode),
        cmocka_unit_test(test_glob_long_subject),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

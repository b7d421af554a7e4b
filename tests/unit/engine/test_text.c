/* Unit tests of proxy/engine/text.c: glob matching and percent-encoding. */
#include "anonproxy/common.h"

#include <ctype.h>
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

/* Decoding copies runs without '%' or '+' a word at a time: escapes at
 * every position around and across the words, into another buffer and in
 * place, give what one byte at a time gives. */
/* Every pair of bytes after '%': decoded exactly when both are hex digits
 * (either case), kept as they are otherwise. */
static void test_pct_decode_every_pair(void **state)
{
    (void)state;
    for (int a = 0; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            char in[3] = {'%', (char)a, (char)b}, out[3];
            size_t n = ap_text_pct_decode(in, 3, out, 0);
            bool ha = isxdigit(a) != 0, hb = isxdigit(b) != 0;
            if (ha && hb) {
                char pair[3] = {(char)a, (char)b, '\0'};
                assert_int_equal(n, 1);
                assert_int_equal((unsigned char)out[0], strtoul(pair, NULL, 16));
            } else {
                assert_int_equal(n, 3);
                assert_memory_equal(out, in, 3);
            }
        }
    }
}

static void test_pct_decode_every_position(void **state)
{
    (void)state;
    static const char *const specials[] = {"%41", "+", "%zz", "%4", "%"};
    for (size_t k = 0; k < AP_ARRAY_SIZE(specials); k++) {
        size_t sl = strlen(specials[k]);
        for (size_t len = 0; len <= 24; len++) {
            for (size_t pos = 0; pos <= len; pos++) {
                char in[64], want[64], out[64];
                memset(in, 'x', len);
                memcpy(in + pos, specials[k], sl);
                memset(in + pos + sl, 'y', len - pos);
                size_t n = len + sl;
                /* The expected result, one byte at a time. */
                size_t w = 0;
                for (size_t i = 0; i < n;) {
                    if (in[i] == '%' && n - i >= 3 && in[i + 1] == '4' && in[i + 2] == '1') {
                        want[w++] = 'A';
                        i += 3;
                    } else {
                        want[w++] = in[i] == '+' ? ' ' : in[i];
                        i++;
                    }
                }
                size_t got = ap_text_pct_decode(in, n, out, AP_TEXT_PLUS);
                assert_int_equal(got, w);
                assert_memory_equal(out, want, w);
                got = ap_text_pct_decode(in, n, in, AP_TEXT_PLUS);
                assert_int_equal(got, w);
                assert_memory_equal(in, want, w);
            }
        }
    }
}

static void test_pct_encode_in_place(void **state)
{
    (void)state;
    char buf[64];
    size_t n = 0;
    const char *in = "a b&c=d/\xc3\xa9~*'()!-_.";
    size_t len = strlen(in);
    memcpy(buf, in, len);
    assert_int_equal(ap_text_pct_encode_in_place(buf, len, sizeof(buf), &n), 0);
    assert_int_equal(n, ap_text_pct_encoded_len(in, len));
    assert_memory_equal(buf, "a%20b%26c%3Dd%2F%C3%A9~*'()!-_.", n);
    /* Nothing to encode: unchanged. */
    memcpy(buf, "abc", 3);
    assert_int_equal(ap_text_pct_encode_in_place(buf, 3, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "abc", 3);
    /* Too small: -ENOBUFS, the bytes untouched. */
    memcpy(buf, "a b", 3);
    assert_int_equal(ap_text_pct_encode_in_place(buf, 3, 4, &n), -ENOBUFS);
    assert_memory_equal(buf, "a b", 3);
    assert_int_equal(ap_text_pct_encode_in_place(buf, 3, 5, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "a%20b", 5);
    /* Every byte value agrees with ap_text_pct_encode. */
    for (unsigned c = 0; c < 256; c++) {
        char one[4] = {(char)c}, ref[4];
        size_t rn = 0;
        assert_int_equal(ap_text_pct_encode(one, 1, ref, sizeof(ref), &rn), 0);
        assert_int_equal(ap_text_pct_encode_in_place(one, 1, sizeof(one), &n), 0);
        assert_int_equal(n, rn);
        assert_memory_equal(one, ref, n);
        assert_int_equal(ap_text_pct_encoded_len(ref, 1) == 1, ap_text_is_unreserved((unsigned char)c));
    }
}

/* ---- compiled sets ---- */

static size_t find(const struct ap_text_globset *set, const char *s)
{
    return ap_text_globset_find(set, s, strlen(s));
}

static void add_all(struct ap_text_globset *set, const char *const *globs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ap_text_globset_add(set, globs[i]), 0);
    assert_int_equal(set->n, n);
}

static void test_globset_exact_and_glob(void **state)
{
    (void)state;
    static const char *const globs[] = {"Accept", "X-*", "accept-language", "User-Agent",
                                        "x-device-id", "*-Id", "?"};
    struct ap_text_globset set;
    ap_text_globset_init(&set, AP_TEXT_NOCASE);
    add_all(&set, globs, AP_ARRAY_SIZE(globs));
    assert_int_equal(find(&set, "accept"), 0);
    assert_int_equal(find(&set, "ACCEPT"), 0);
    /* The glob added before the literal wins: first match. */
    assert_int_equal(find(&set, "X-Device-Id"), 1);
    assert_int_equal(find(&set, "Accept-Language"), 2);
    assert_int_equal(find(&set, "user-agent"), 3);
    assert_int_equal(find(&set, "Foo-Id"), 5);
    assert_int_equal(find(&set, "a"), 6);
    assert_int_equal(find(&set, ""), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&set, "Acceptx"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&set, "Accep"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&set, "User-Agent2"), AP_TEXT_GLOBSET_NONE);
    ap_text_globset_free(&set);
    /* A freed set is empty and can be filled again. */
    assert_int_equal(set.n, 0);
    assert_int_equal(find(&set, "accept"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(ap_text_globset_add(&set, "accept"), 0);
    assert_int_equal(find(&set, "Accept"), 0);
    ap_text_globset_free(&set);
}

static void test_globset_case(void **state)
{
    (void)state;
    struct ap_text_globset exact, nocase;
    ap_text_globset_init(&exact, 0);
    ap_text_globset_init(&nocase, AP_TEXT_NOCASE);
    static const char *const globs[] = {"utm_source", "a@[", "\xc3\x89t\xc3\xa9", "_pk_id*"};
    add_all(&exact, globs, AP_ARRAY_SIZE(globs));
    add_all(&nocase, globs, AP_ARRAY_SIZE(globs));
    assert_int_equal(find(&exact, "utm_source"), 0);
    assert_int_equal(find(&exact, "UTM_source"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&nocase, "UTM_SOURCE"), 0);
    /* Only ASCII letters fold: '@' and '`', '[' and '{' differ by the case
     * bit too, and so do the two bytes of UTF-8 "É" and "é". */
    assert_int_equal(find(&nocase, "A@["), 1);
    assert_int_equal(find(&nocase, "a`{"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&nocase, "\xc3\x89T\xc3\xa9"), 2);
    assert_int_equal(find(&nocase, "\xc3\xa9t\xc3\xa9"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&exact, "_pk_id.3.1fff"), 3);
    assert_int_equal(find(&exact, "_PK_ID.3"), AP_TEXT_GLOBSET_NONE);
    assert_int_equal(find(&nocase, "_PK_ID.3"), 3);
    /* A NUL byte is part of the subject. */
    assert_int_equal(ap_text_globset_find(&exact, "utm_source\0", 11), AP_TEXT_GLOBSET_NONE);
    ap_text_globset_free(&exact);
    ap_text_globset_free(&nocase);
}

static void test_globset_first_match(void **state)
{
    (void)state;
    static const char *const globs[] = {"a", "a", "b*", "b", "", "c?", "cd"};
    struct ap_text_globset set;
    ap_text_globset_init(&set, 0);
    add_all(&set, globs, AP_ARRAY_SIZE(globs));
    assert_int_equal(find(&set, "a"), 0);
    assert_int_equal(find(&set, "b"), 2);
    assert_int_equal(find(&set, ""), 4);
    assert_int_equal(find(&set, "cd"), 5);
    ap_text_globset_free(&set);
    assert_int_equal(ap_text_globset_add(&set, NULL), -EINVAL);
    ap_text_globset_free(&set);
}

/* Names of every length around the 8-byte words the set compares. */
static void test_globset_lengths(void **state)
{
    (void)state;
    char names[40][41];
    struct ap_text_globset set;
    ap_text_globset_init(&set, AP_TEXT_NOCASE);
    for (size_t n = 0; n < 40; n++) {
        for (size_t i = 0; i < n; i++)
            names[n][i] = (char)('a' + (i * 7 + n) % 26);
        names[n][n] = '\0';
        assert_int_equal(ap_text_globset_add(&set, names[n]), 0);
    }
    for (size_t n = 0; n < 40; n++) {
        char up[41];
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)(names[n][i] >= 'a' ? names[n][i] - 32 : names[n][i]);
        assert_int_equal(find(&set, up), n);
        if (n > 0) {
            up[n - 1] ^= 1; /* last byte differs: the tail word */
            assert_int_equal(find(&set, up), AP_TEXT_GLOBSET_NONE);
        }
    }
    ap_text_globset_free(&set);
}

static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* The set gives what a first-match walk with ap_text_matches_glob gives,
 * on patterns and subjects from a small alphabet so that matches are
 * frequent (case pairs, '@' and '`', bytes above 0x7f, NUL in subjects). */
static void test_globset_agrees_with_glob(void **state)
{
    (void)state;
    static const char pat_chars[] = "aAbB@`\xc1\xe1*?";
    static const char subj_chars[] = "aAbB@`\xc1\xe1";
    for (int round = 0; round < 300; round++) {
        unsigned flags = round % 2 ? AP_TEXT_NOCASE : 0;
        char globs[12][16];
        size_t n = 1 + rnd() % 12;
        struct ap_text_globset set;
        ap_text_globset_init(&set, flags);
        for (size_t i = 0; i < n; i++) {
            size_t len = rnd() % 12;
            /* Mostly literals, as real policies are. */
            size_t nchars = rnd() % 3 ? sizeof(pat_chars) - 3 : sizeof(pat_chars) - 1;
            for (size_t k = 0; k < len; k++)
                globs[i][k] = pat_chars[rnd() % nchars];
            globs[i][len] = '\0';
            assert_int_equal(ap_text_globset_add(&set, globs[i]), 0);
        }
        for (int t = 0; t < 200; t++) {
            char subj[16];
            size_t len;
            if (rnd() % 2) {
                /* A pattern's bytes, case-flipped at random: often a hit. */
                const char *g = globs[rnd() % n];
                len = strlen(g);
                for (size_t k = 0; k < len; k++) {
                    char c = g[k] == '*' || g[k] == '?' ? 'a' : g[k];
                    subj[k] = rnd() % 2 ? (char)(c ^ 0x20) : c;
                }
            } else {
                len = rnd() % 14;
                for (size_t k = 0; k < len; k++)
                    subj[k] = rnd() % 16 ? subj_chars[rnd() % (sizeof(subj_chars) - 1)] : '\0';
            }
            size_t want = AP_TEXT_GLOBSET_NONE;
            for (size_t i = 0; i < n && want == AP_TEXT_GLOBSET_NONE; i++)
                if (ap_text_matches_glob(globs[i], subj, len, flags))
                    want = i;
            assert_int_equal(ap_text_globset_find(&set, subj, len), want);
        }
        ap_text_globset_free(&set);
    }
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
        cmocka_unit_test(test_pct_decode_every_position),
        cmocka_unit_test(test_pct_decode_every_pair),
        cmocka_unit_test(test_pct_encode_in_place),
        cmocka_unit_test(test_globset_exact_and_glob),
        cmocka_unit_test(test_globset_case),
        cmocka_unit_test(test_globset_first_match),
        cmocka_unit_test(test_globset_lengths),
        cmocka_unit_test(test_globset_agrees_with_glob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

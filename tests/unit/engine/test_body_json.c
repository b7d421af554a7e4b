/* Unit tests of the body rewriter's building blocks: proxy/engine/json.c
 * (strict scanning, UTF-8, escaping), base64.c and gzip.c (limits,
 * multi-member streams, raw deflate, bombs). */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>
#include <zlib.h>

#include "anonproxy/arena.h"
#include "anonproxy/base64.h"
#include "anonproxy/gzip.h"
#include "anonproxy/json.h"

static int scan_str(const char *s, unsigned *flags, size_t *end)
{
    size_t pos = 0;
    int rc = ap_json_scan_string(s, strlen(s), &pos, flags);
    if (end)
        *end = pos;
    return rc;
}

static void test_string_valid(void **state)
{
    (void)state;
    unsigned f;
    size_t end;
    assert_int_equal(scan_str("\"\"", &f, &end), 0);
    assert_int_equal(end, 2);
    assert_int_equal(f, 0);
    assert_int_equal(scan_str("\"abc\" tail", &f, &end), 0);
    assert_int_equal(end, 5);
    assert_int_equal(scan_str("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\"", &f, &end), 0);
    assert_int_equal(f, AP_JSON_STR_ESCAPED);
    assert_int_equal(scan_str("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", &f, NULL), 0);
    assert_int_equal(f, AP_JSON_STR_NONASCII);
    /* An escaped lone surrogate is valid JSON. */
    assert_int_equal(scan_str("\"\\ud800\"", &f, NULL), 0);
}

static void test_string_invalid(void **state)
{
    (void)state;
    size_t end;
    assert_int_equal(scan_str("\"abc", NULL, NULL), -EINVAL);
    assert_int_equal(scan_str("abc\"", NULL, NULL), -EINVAL);
    assert_int_equal(scan_str("\"a\\x\"", NULL, &end), -EINVAL);
    assert_int_equal(end, 2);
    assert_int_equal(scan_str("\"\\u12g4\"", NULL, NULL), -EINVAL);
    assert_int_equal(scan_str("\"\\u12\"", NULL, NULL), -EINVAL);
    assert_int_equal(scan_str("\"a\\", NULL, NULL), -EINVAL);
    assert_int_equal(scan_str("\"tab\there\"", NULL, NULL), -EINVAL);
    assert_int_equal(scan_str("\"nl\nhere\"", NULL, NULL), -EINVAL);
    /* Overlong, surrogate, above U+10FFFF, truncated, stray continuation. */
    assert_int_equal(scan_str("\"\xc0\x80\"", NULL, NULL), -EILSEQ);
    assert_int_equal(scan_str("\"\xe0\x80\xaf\"", NULL, NULL), -EILSEQ);
    assert_int_equal(scan_str("\"\xed\xa0\x80\"", NULL, NULL), -EILSEQ);
    assert_int_equal(scan_str("\"\xf4\x90\x80\x80\"", NULL, NULL), -EILSEQ);
    assert_int_equal(scan_str("\"\xe2\x82\"", NULL, NULL), -EILSEQ);
    assert_int_equal(scan_str("\"\x80\"", NULL, NULL), -EILSEQ);
    assert_int_equal(scan_str("\"\xff\"", NULL, NULL), -EILSEQ);
}

/* The eight-bytes-at-a-time loop must see a special byte at every offset. */
static void test_string_swar_offsets(void **state)
{
    (void)state;
    char buf[64];
    for (size_t len = 0; len < 40; len++) {
        for (size_t at = 0; at < len; at++) {
            static const char specials[] = {'"', '\\', '\n', '\x01', '\x80'};
            for (size_t k = 0; k < sizeof(specials); k++) {
                buf[0] = '"';
                memset(buf + 1, 'a', len);
                buf[1 + at] = specials[k];
                buf[1 + len] = '"';
                size_t pos = 0;
                unsigned f = 0;
                int rc = ap_json_scan_string(buf, len + 2, &pos, &f);
                if (specials[k] == '"') {
                    assert_int_equal(rc, 0);
                    assert_int_equal(pos, at + 2);
                } else if (specials[k] == '\\') {
                    /* "\a" is not an escape */
                    assert_int_equal(rc, -EINVAL);
                } else if (specials[k] == '\x80') {
                    assert_int_equal(rc, -EILSEQ);
                } else {
                    assert_int_equal(rc, -EINVAL);
                }
            }
        }
    }
}

static int num(const char *s, size_t *end)
{
    size_t pos = 0;
    int rc = ap_json_scan_number(s, strlen(s), &pos);
    *end = pos;
    return rc;
}

static void test_numbers(void **state)
{
    (void)state;
    size_t end;
    static const char *const good[] = {"0", "-0", "7", "-12", "1.5", "1.50e3", "1E+2", "2e-7", "123456789012345678901234"};
    for (size_t i = 0; i < AP_ARRAY_SIZE(good); i++) {
        assert_int_equal(num(good[i], &end), 0);
        assert_int_equal(end, strlen(good[i]));
    }
    assert_int_equal(num("01", &end), 0);
    assert_int_equal(end, 1); /* the '1' is the next token: the caller rejects it */
    static const char *const bad[] = {"-", "1.", ".5", "1e", "1e+", "+1", "-a", ""};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++)
        assert_int_equal(num(bad[i], &end), -EINVAL);
}

static void test_validate(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{}", "[]", " {\"a\" : [1, 2.5, \"x\", true, false, null, {}] } ", "\"s\"", "0", "null",
        "{\"a\":{\"b\":{\"c\":[[[]]]}}}", "[1,[2,[3]]]",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(good); i++)
        assert_int_equal(ap_json_validate(good[i], strlen(good[i]), 16), 0);
    static const char *const bad[] = {
        "", " ", "{", "[", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "{a:1}", "tru", "nul",
        "{} {}", "01", "[01]", "{\"a\":1}x", "'a'", "[\"a\":1]", "{\"a\",1}", "}",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++)
        assert_int_not_equal(ap_json_validate(bad[i], strlen(bad[i]), 16), 0);
    assert_int_equal(ap_json_validate("[[[]]]", 6, 3), 0);
    assert_int_equal(ap_json_validate("[[[]]]", 6, 2), -ELOOP);
    assert_int_equal(ap_json_validate("\"\xff\"", 3, 2), -EILSEQ);
}

/* Hostile nesting never reaches the C stack: the skipper is iterative. */
static void test_deep_nesting(void **state)
{
    (void)state;
    size_t n = 200000;
    char *s = malloc(2 * n);
    memset(s, '[', n);
    memset(s + n, ']', n);
    assert_int_equal(ap_json_validate(s, 2 * n, 1024), -ELOOP);
    assert_int_equal(ap_json_validate(s + n - 1000, 2000, 1024), 0);
    free(s);
}

static void test_unescape(void **state)
{
    (void)state;
    char out[64];
    const char *in = "a\\\"b\\\\c\\/d\\n\\u00e9\\u20ac\\ud83d\\ude00\\ud800x\\udc00";
    size_t n = ap_json_unescape(in, strlen(in), out);
    const char *want = "a\"b\\c/d\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbdx\xef\xbf\xbd";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_true(n <= strlen(in));
}

static void test_escape(void **state)
{
    (void)state;
    const char in[] = "q\"b\\n\n\t\x01\x1f\x7f/\xc3\xa9";
    size_t len = sizeof(in) - 1;
    char out[128];
    size_t n = ap_json_escape(in, len, out);
    const char *want = "q\\\"b\\\\n\\n\\t\\u0001\\u001f\x7f/\xc3\xa9";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_int_equal(ap_json_escaped_len(in, len), n);
    /* Round trip through the scanner and the unescaper. */
    char quoted[130];
    quoted[0] = '"';
    memcpy(quoted + 1, out, n);
    quoted[n + 1] = '"';
    size_t pos = 0;
    assert_int_equal(ap_json_scan_string(quoted, n + 2, &pos, NULL), 0);
    char back[128];
    assert_int_equal(ap_json_unescape(out, n, back), len);
    assert_memory_equal(back, in, len);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(ap_json_is_utf8("", 0));
    assert_true(ap_json_is_utf8("plain ascii text here", 21));
    assert_true(ap_json_is_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(ap_json_is_utf8("abcdefgh\xc3", 9));
    assert_false(ap_json_is_utf8("\xed\xbf\xbf", 3));
    assert_false(ap_json_is_utf8("\xf5\x80\x80\x80", 4));
}

/* ---- base64 ---- */

static void b64_round(const char *text, const char *enc_want, unsigned style_want)
{
    char dec[256];
    size_t n = 0;
    unsigned style = 99;
    assert_int_equal(ap_base64_decode(enc_want, strlen(enc_want), dec, &n, &style), 0);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(dec, text, n);
    assert_int_equal(style, style_want);
    char enc[256];
    size_t en = ap_base64_encode(text, strlen(text), style, enc);
    assert_int_equal(en, strlen(enc_want));
    assert_int_equal(en, ap_base64_encoded_len(strlen(text), style));
    assert_memory_equal(enc, enc_want, en);
}

static void test_base64(void **state)
{
    (void)state;
    b64_round("", "", 0);
    b64_round("f", "Zg==", 0);
    b64_round("fo", "Zm8=", 0);
    b64_round("foo", "Zm9v", 0);
    b64_round("foob", "Zm9vYg", AP_BASE64_NOPAD);
    b64_round("fooba", "Zm9vYmE", AP_BASE64_NOPAD);
    b64_round("\xfb\xff", "-_8", AP_BASE64_URL | AP_BASE64_NOPAD);
    b64_round("\xfb\xff", "+/8=", 0);
    b64_round("{\"a\":1}", "eyJhIjoxfQ==", 0);
    char out[64];
    size_t n;
    /* Both alphabets, a lone character, bad padding, spare bits, junk. */
    static const char *const bad[] = {"+-8=", "Z", "Zg=", "Zg===", "Zh==", "Zm9v!", "Zm 9v", "Z=g=", "=="};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++)
        assert_int_equal(ap_base64_decode(bad[i], strlen(bad[i]), out, &n, NULL), -EINVAL);
}

/* ---- gzip ---- */

static size_t zcompress(int wbits, const char *in, size_t len, char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void test_gzip_roundtrip(void **state)
{
    (void)state;
    struct ap_arena a;
    ap_arena_init(&a, 4096, 0);
    const char *text = "{\"event\":\"pageview\",\"distinct_id\":\"abc\"}";
    char *z, *back;
    size_t zn, bn;
    for (int kind = AP_GZIP_GZIP; kind <= AP_GZIP_DEFLATE; kind++) {
        assert_int_equal(ap_gzip_deflate(&a, kind, 6, text, strlen(text), &z, &zn), 0);
        assert_int_equal(ap_gzip_has_magic(z, zn), kind == AP_GZIP_GZIP);
        assert_int_equal(ap_gzip_inflate(&a, kind, z, zn, 1 << 20, 100, 1024, &back, &bn), 0);
        assert_int_equal(bn, strlen(text));
        assert_memory_equal(back, text, bn);
        assert_int_equal(back[bn], '\0');
    }
    /* Raw deflate under "deflate", as some clients send it. */
    char raw[256];
    size_t rn = zcompress(-15, text, strlen(text), raw, sizeof(raw));
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_DEFLATE, raw, rn, 1 << 20, 100, 1024, &back, &bn), 0);
    assert_memory_equal(back, text, bn);
    /* Two gzip members are one body. */
    char two[512];
    size_t n1 = zcompress(31, "{\"a\":", 5, two, sizeof(two));
    size_t n2 = zcompress(31, "1}", 2, two + n1, sizeof(two) - n1);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, two, n1 + n2, 1 << 20, 100, 1024, &back, &bn), 0);
    assert_int_equal(bn, 7);
    assert_memory_equal(back, "{\"a\":1}", 7);
    /* Empty input is the empty body of nobody. */
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, "", 0, 100, 100, 1024, &back, &bn), -EINVAL);
    ap_arena_free(&a);
}

static void test_gzip_invalid(void **state)
{
    (void)state;
    struct ap_arena a;
    ap_arena_init(&a, 4096, 0);
    const char *text = "hello hello hello hello";
    char z[256], *back;
    size_t bn;
    size_t zn = zcompress(31, text, strlen(text), z, sizeof(z) - 8);
    /* Truncated, trailing garbage, corrupted CRC, not gzip at all. */
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn - 5, 1 << 20, 0, 0, &back, &bn), -EINVAL);
    memcpy(z + zn, "junk", 4);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn + 4, 1 << 20, 0, 0, &back, &bn), -EINVAL);
    z[zn - 6] ^= 0x55;
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn, 1 << 20, 0, 0, &back, &bn), -EINVAL);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, text, strlen(text), 1 << 20, 0, 0, &back, &bn), -EINVAL);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_DEFLATE, text, strlen(text), 1 << 20, 0, 0, &back, &bn), -EINVAL);
    ap_arena_free(&a);
}

static void test_gzip_limits(void **state)
{
    (void)state;
    struct ap_arena a;
    ap_arena_init(&a, 4096, 0);
    size_t big = 4 << 20;
    char *zeros = calloc(big, 1);
    char *z = malloc(big);
    size_t zn = zcompress(31, zeros, big, z, big);
    assert_true(zn < 8192); /* a bomb: a thousand to one */
    char *back;
    size_t bn;
    /* The size cap, exactly at and just below the output size. */
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn, big, 0, 0, &back, &bn), 0);
    assert_int_equal(bn, big);
    ap_arena_reset(&a);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn, big - 1, 0, 0, &back, &bn), -E2BIG);
    ap_arena_reset(&a);
    /* The ratio, past its floor. */
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn, big, 100, 65536, &back, &bn), -E2BIG);
    ap_arena_reset(&a);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, zn, big, 2000, 65536, &back, &bn), 0);
    ap_arena_reset(&a);
    /* A small body under the floor is not a bomb, whatever its ratio. */
    size_t sn = zcompress(31, zeros, 60000, z, big);
    assert_int_equal(ap_gzip_inflate(&a, AP_GZIP_GZIP, z, sn, big, 10, 65536, &back, &bn), 0);
    assert_int_equal(bn, 60000);
    /* An arena too small for the output is -ENOMEM, not a crash. */
    struct ap_arena small;
    ap_arena_init(&small, 1024, 32768);
    assert_int_equal(ap_gzip_inflate(&small, AP_GZIP_GZIP, z, sn, big, 0, 0, &back, &bn), -ENOMEM);
    ap_arena_free(&small);
    free(zeros);
    free(z);
    ap_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_valid),  cmocka_unit_test(test_string_invalid),
        cmocka_unit_test(test_string_swar_offsets), cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_validate),      cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_unescape),      cmocka_unit_test(test_escape),
        cmocka_unit_test(test_utf8),          cmocka_unit_test(test_base64),
        cmocka_unit_test(test_gzip_roundtrip), cmocka_unit_test(test_gzip_invalid),
        cmocka_unit_test(test_gzip_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

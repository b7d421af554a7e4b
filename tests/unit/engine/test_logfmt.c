/* Unit tests of proxy/engine/logfmt.c: JSON lines, text templates and
 * their errors, escaping of hostile values, and the queue encoding. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include "anonproxy/buf.h"
#include "anonproxy/logfmt.h"

static struct ap_slice S(const char *s)
{
    return (struct ap_slice){s, strlen(s)};
}

static struct ap_logfmt_rec sample(void)
{
    return (struct ap_logfmt_rec){
        .time_us = 1714566896789012LL, /* 2024-05-01T12:34:56.789012Z */
        .id = 0x2a,
        .status = 200,
        .bytes_in = 12,
        .bytes_out = 345,
        .duration_us = 1234567,
        .upstream_us = 999,
        .route = S("collect"),
        .method = S("POST"),
        .host = S("a.example"),
        .path = S("/c\"x\n\xff\xc3\xa9"),
        .protocol = S("HTTP/1.1"),
        .upstream = S("127.0.0.1:9000"),
        .client = S("203.0.113.0"),
        .ua = S("Chrome 120"),
        .rules = S("address:truncate header:drop*2"),
    };
}

static char *str(struct ap_buf *b)
{
    assert_int_equal(ap_buf_append(b, "", 1), 0);
    return b->data;
}

static void test_json(void **state)
{
    struct ap_logfmt_rec r = sample();
    struct ap_buf b;
    ap_buf_init(&b, 4096);
    assert_int_equal(ap_logfmt_json(&r, &b), 0);
    assert_string_equal(str(&b),
                        "{\"time\":\"2024-05-01T12:34:56.789Z\",\"id\":\"000000000000002a\",\"route\":\"collect\","
                        "\"method\":\"POST\",\"host\":\"a.example\",\"path\":\"/c\\\"x\\u000a\\u00ff\xc3\xa9\","
                        "\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_in\":12,\"bytes_out\":345,"
                        "\"duration_ms\":1234.567,\"upstream_ms\":0.999,\"upstream\":\"127.0.0.1:9000\","
                        "\"tls\":null,\"client\":\"203.0.113.0\",\"geo\":null,\"ua\":\"Chrome 120\","
                        "\"rules\":\"address:truncate header:drop*2\"}");
    ap_buf_free(&b);
    /* An output that would pass the buffer's limit is an error. */
    ap_buf_init(&b, 50);
    assert_int_equal(ap_logfmt_json(&r, &b), -E2BIG);
    ap_buf_free(&b);
}

static void test_text(void **state)
{
    struct ap_logfmt_tmpl t;
    char err[128];
    assert_int_equal(ap_logfmt_template_compile("$client [$time_local] \"${method} $path\" $status $$5 ${upstream_ms}ms $tls",
                                                &t, err, sizeof(err)),
                     0);
    struct ap_logfmt_rec r = sample();
    struct ap_buf b;
    ap_buf_init(&b, 4096);
    assert_int_equal(ap_logfmt_text(&t, &r, &b), 0);
    assert_string_equal(str(&b), "203.0.113.0 [01/May/2024:12:34:56 +0000] \"POST /c\\\"x\\x0a\\xff\\xc3\\xa9\" 200 $5 0.999ms -");
    ap_logfmt_template_free(&t);
    /* The default template compiles and never yields a line break. */
    assert_int_equal(ap_logfmt_template_compile(AP_LOGFMT_DEFAULT_TEMPLATE, &t, err, sizeof(err)), 0);
    ap_buf_reset(&b);
    r.status = 0;
    r.upstream_us = -1;
    assert_int_equal(ap_logfmt_text(&t, &r, &b), 0);
    assert_null(memchr(b.data, '\n', b.len));
    assert_non_null(strstr(str(&b), "HTTP/1.1\" - 12 345 1234.567 \"Chrome 120\""));
    ap_logfmt_template_free(&t);
    ap_buf_free(&b);
}

static void test_template_errors(void **state)
{
    struct ap_logfmt_tmpl t;
    char err[128];
    assert_int_equal(ap_logfmt_template_compile("$status $cookie", &t, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "column 9: unknown variable 'cookie'");
    assert_int_equal(ap_logfmt_template_compile("x ${path", &t, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "column 3: '${' without '}'");
    assert_int_equal(ap_logfmt_template_compile("100$ ", &t, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "column 4: '$' without a variable name (write $$ for a dollar sign)");
    assert_int_equal(ap_logfmt_template_compile("a\nb", &t, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "column 2: control character in template");
    for (int v = 1; v < AP_LOGFMT_NVARS; v++) {
        char s[64];
        snprintf(s, sizeof(s), "${%s}", ap_logfmt_var_name((enum ap_logfmt_var)v));
        assert_int_equal(ap_logfmt_template_compile(s, &t, err, sizeof(err)), 0);
        assert_int_equal(t.nsegs, 1);
        assert_int_equal(t.segs[0].var, v);
        ap_logfmt_template_free(&t);
    }
}

static void test_encoding(void **state)
{
    struct ap_logfmt_rec r = sample();
    char buf[1024];
    size_t n = ap_logfmt_encode(&r, buf, sizeof(buf));
    assert_int_equal(n, ap_logfmt_encoded_len(&r));
    assert_int_equal(ap_logfmt_encode(&r, buf, n - 1), 0);
    struct ap_logfmt_rec d;
    assert_int_equal(ap_logfmt_decode(buf, n, &d), 0);
    struct ap_buf a, b;
    ap_buf_init(&a, 4096);
    ap_buf_init(&b, 4096);
    assert_int_equal(ap_logfmt_json(&r, &a), 0);
    assert_int_equal(ap_logfmt_json(&d, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(d.upstream_us, 999);
    assert_int_equal(d.tls.len, 0);
    /* Damaged buffers are refused, never read past. */
    assert_int_equal(ap_logfmt_decode(buf, n - 1, &d), -EINVAL);
    assert_int_equal(ap_logfmt_decode(buf, 10, &d), -EINVAL);
    buf[0] ^= 1;
    assert_int_equal(ap_logfmt_decode(buf, n, &d), -EINVAL);
    ap_buf_free(&a);
    ap_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

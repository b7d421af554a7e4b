/* Unit tests of proxy/head.c: the strict request-head scanner and parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include "anonproxy/arena.h"
#include "anonproxy/head.h"

static const struct ap_head_limits lim = {
    .line_bytes = 200, .head_bytes = 1000, .header_count = 5, .target_bytes = 100};

/* Scan `s` in one piece; returns the scan result and fills err. */
static int scan(const char *s, struct ap_head_error *err)
{
    struct ap_head_scan st;
    memset(&st, 0, sizeof(st));
    return ap_head_scan(&st, s, strlen(s), &lim, err);
}

static int scan_status(const char *s)
{
    struct ap_head_error err = {0, NULL};
    int rc = scan(s, &err);
    if (rc < 0)
        return err.status;
    return rc == 0 ? 0 : 200;
}

/* Scan, then parse; returns 200 when accepted or the error status. */
static int parse_status(const char *s, struct ap_request *req, struct ap_arena *a)
{
    struct ap_head_error err = {0, NULL};
    int rc = scan(s, &err);
    if (rc <= 0)
        return rc < 0 ? err.status : 0;
    if (ap_head_parse(s, (size_t)rc, req, a, &err) != 0)
        return err.status;
    return 200;
}

static int status_of(const char *s)
{
    struct ap_arena a;
    struct ap_request req;
    ap_arena_init(&a, 1024, 0);
    int st = parse_status(s, &req, &a);
    ap_arena_free(&a);
    return st;
}

static void test_scan_complete_and_incremental(void **state)
{
    const char *h = "GET / HTTP/1.1\r\nHost: a\r\n\r\nXYZ";
    struct ap_head_scan st;
    struct ap_head_error err;
    memset(&st, 0, sizeof(st));
    size_t full = strlen(h);
    /* Feed one byte at a time: the head ends before "XYZ". */
    int rc = 0;
    size_t n;
    for (n = 1; n <= full && rc == 0; n++)
        rc = ap_head_scan(&st, h, n, &lim, &err);
    assert_int_equal(rc, (int)(full - 3));
}

static void test_scan_violations(void **state)
{
    assert_int_equal(scan_status("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);   /* bare LF */
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400);   /* bare LF */
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n"), 400); /* bare CR */
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\n: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nX@Y: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nX Y: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(scan_status("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    /* NUL and DEL in a value. */
    struct ap_head_error err;
    struct ap_head_scan st;
    memset(&st, 0, sizeof(st));
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(ap_head_scan(&st, nul, sizeof(nul) - 1, &lim, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), 400);
    /* obs-text is allowed in values. */
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), 200);
}

static void test_http09_refused_at_once(void **state)
{
    /* No headers follow: the answer must not wait for them. */
    assert_int_equal(scan_status("GET /\r\n"), 400);
    assert_int_equal(scan_status("GET / \r\n"), 400);
}

static void test_scan_limits(void **state)
{
    char buf[2048];
    /* Target over 100 bytes. */
    int n = snprintf(buf, sizeof(buf), "GET /%0150d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    assert_true(n > 0);
    assert_int_equal(scan_status(buf), 414);
    /* A header line over 200 bytes, detected before its end. */
    snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: %0300d", 0);
    assert_int_equal(scan_status(buf), 431);
    /* More than 5 headers. */
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n\r\n"), 431);
    assert_int_equal(scan_status("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n"), 200);
}

static void test_parse_fields(void **state)
{
    struct ap_arena a;
    struct ap_request r;
    ap_arena_init(&a, 1024, 0);
    assert_int_equal(parse_status("POST /c/x?a=1&b HTTP/1.1\r\nHost: Ex.COM:8080\r\n"
                                  "Content-Length: 3\r\nConnection: close, X-A\r\nX-A: 1\r\n"
                                  "User-Agent:  t  \r\n\r\n",
                                  &r, &a),
                     200);
    assert_int_equal(r.magic, AP_REQUEST_MAGIC);
    assert_int_equal(r.method.len, 4);
    assert_memory_equal(r.path.p, "/c/x", 4);
    assert_int_equal(r.path.len, 4);
    assert_int_equal(r.query.len, 5);
    assert_memory_equal(r.query.p, "a=1&b", 5);
    assert_int_equal(r.host.len, 11);
    assert_int_equal(r.content_length, 3);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(r.version_minor, 1);
    /* Host, Content-Length and Connection are not in the header list. */
    assert_int_equal(r.nheaders, 2);
    assert_true(ap_slice_eq_ci(r.headers[0].name, "x-a"));
    assert_int_equal(r.headers[0].flags & AP_HEADER_CONNECTION_NAMED, AP_HEADER_CONNECTION_NAMED);
    assert_int_equal(r.headers[1].value.len, 1); /* OWS trimmed */
    assert_int_equal(r.headers[1].flags, 0);
    ap_arena_free(&a);
}

static void test_parse_framing(void **state)
{
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 200);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"), 200);
}

static void test_parse_host_and_target(void **state)
{
    assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.0\r\n\r\n"), 200);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a:abc\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 200);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n"), 400);
    assert_int_equal(status_of("GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_int_equal(status_of("GET http://evil/x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_int_equal(status_of("GET a.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n"), 501);
    assert_int_equal(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(status_of("PRI * HTTP/2.0\r\n\r\n"), 505);
    assert_int_equal(status_of("GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a/%2E%2e/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a/..b/.c HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"), 200);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"), 417);
}

static void test_parse_keep_alive(void **state)
{
    struct ap_arena a;
    struct ap_request r;
    ap_arena_init(&a, 1024, 0);
    assert_int_equal(parse_status("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, &a), 200);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(parse_status("GET / HTTP/1.0\r\n\r\n", &r, &a), 200);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &r, &a), 200);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(r.nheaders, 0); /* Upgrade never forwarded */
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", &r, &a), 200);
    assert_int_equal(r.expect_continue, 1);
    assert_int_equal(r.nheaders, 0);
    ap_arena_free(&a);
}

static void test_arena_cap(void **state)
{
    struct ap_arena a;
    ap_arena_init(&a, 64, 256);
    assert_non_null(ap_arena_alloc(&a, 100));
    assert_null(ap_arena_alloc(&a, 1000));
    ap_arena_reset(&a);
    char *s = ap_arena_strndup(&a, "hello", 3);
    assert_string_equal(s, "hel");
    ap_arena_free(&a);
}

/* Scan `len` bytes in one piece and return the reason ("" when accepted). */
static const char *reason_of(const char *s, size_t len)
{
    struct ap_head_scan st;
    struct ap_head_error err = {0, NULL};
    memset(&st, 0, sizeof(st));
    static const struct ap_head_limits big = {
        .line_bytes = 8192, .head_bytes = 65536, .header_count = 100, .target_bytes = 8192};
    int rc = ap_head_scan(&st, s, len, &big, &err);
    assert_true(rc != 0);
    return rc > 0 ? "" : err.reason;
}

/* Values and targets are checked several bytes at a time: every position
 * of a bad byte, around and across those words, is still found, and the
 * bytes that are allowed (HTAB, obs-text) are still allowed. */
static void test_scan_every_position(void **state)
{
    char buf[256];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            static const struct {
                char byte;
                const char *reason;
            } cases[] = {
                {'\x01', "invalid character in header value"},
                {'\x1f', "invalid character in header value"},
                {'\x7f', "invalid character in header value"},
                {'\0', "invalid character in header value"},
                {'\r', "bare CR in request head"},
                {'\t', ""},
                {'\x80', ""},
                {'\xff', ""},
            };
            for (size_t c = 0; c < AP_ARRAY_SIZE(cases); c++) {
                char value[64];
                memset(value, 'v', len);
                value[pos] = cases[c].byte;
                /* Leading and trailing tabs are OWS, not folding: keep the
                 * first byte a letter for the tab case. */
                if (cases[c].byte == '\t' && pos == 0)
                    continue;
                /* By hand, not snprintf: the value may hold a NUL. */
                size_t n = 0;
                memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
                n += 19;
                memcpy(buf + n, value, len);
                n += len;
                memcpy(buf + n, "\r\n\r\n", 4);
                n += 4;
                assert_string_equal(reason_of(buf, n), cases[c].reason);
            }
            char target[64];
            memset(target, 't', len);
            target[0] = '/';
            if (pos == 0)
                continue;
            static const struct {
                char byte;
                const char *reason;
            } tcases[] = {
                {'#', "fragment in request target"},
                {'\x7f', "invalid character in request target"},
                {'\x80', "invalid character in request target"},
                {'\x01', "invalid character in request target"},
                {'~', ""},
            };
            for (size_t c = 0; c < AP_ARRAY_SIZE(tcases); c++) {
                target[pos] = tcases[c].byte;
                int n = snprintf(buf, sizeof(buf), "GET %.*s HTTP/1.1\r\nHost: a\r\n\r\n", (int)len, target);
                assert_string_equal(reason_of(buf, (size_t)n), tcases[c].reason);
            }
        }
    }
}

/* The order of errors is the order of the bytes: a bare CR or a line past
 * its limit is reported before what is wrong earlier in the same line,
 * whose content is only checked once the line is complete. */
static void test_scan_error_order(void **state)
{
    struct ap_head_error err = {0, NULL};
    assert_true(scan("GET / HTTP/1.1\r\nX@Y: a\rb\r\n\r\n", &err) < 0);
    assert_string_equal(err.reason, "bare CR in request head");
    assert_true(scan("GET /#\rx HTTP/1.1\r\n\r\n", &err) < 0);
    assert_string_equal(err.reason, "bare CR in request head");
    char line[400];
    int n = snprintf(line, sizeof(line), "GET / HTTP/1.1\r\nX@Y: %0250d\r\n\r\n", 0);
    assert_true(n > 0);
    assert_true(scan(line, &err) < 0);
    assert_int_equal(err.status, 431);
    assert_string_equal(err.reason, "header line too long");
    /* Incomplete: the bytes so far are checked, the line's content waits. */
    struct ap_head_scan st;
    memset(&st, 0, sizeof(st));
    const char *part = "GET / HTTP/1.1\r\nX@Y: a\r";
    assert_int_equal(ap_head_scan(&st, part, strlen(part), &lim, &err), 0);
    assert_int_equal(st.off, strlen(part) - 1); /* the CR waits for its LF */
    const char *more = "GET / HTTP/1.1\r\nX@Y: a\r\n";
    assert_true(ap_head_scan(&st, more, strlen(more), &lim, &err) < 0);
    assert_string_equal(err.reason, "invalid character in header name");
    assert_int_equal(st.off, strlen(more) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_complete_and_incremental),
        cmocka_unit_test(test_scan_violations),
        cmocka_unit_test(test_http09_refused_at_once),
        cmocka_unit_test(test_scan_limits),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_framing),
        cmocka_unit_test(test_parse_host_and_target),
        cmocka_unit_test(test_parse_keep_alive),
        cmocka_unit_test(test_arena_cap),
        cmocka_unit_test(test_scan_every_position),
        cmocka_unit_test(test_scan_error_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

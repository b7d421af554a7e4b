/* Differential tests of proxy/head.c's fast paths. This file includes
 * head.c itself, so its static helpers can be called, and links the
 * portable build of the same file (head_portable.c):
 *   - the run-length helpers (token, value and target spans), SSE2 and
 *     portable, against plain byte-by-byte loops at every position;
 *   - the parser's line finder and LF counter against memchr;
 *   - ap_head_scan and ap_head_parse, SSE2 against portable, on generated
 *     and mutated heads fed whole, byte by byte and in random splits: the
 *     same result, error status and reason, scan state and parsed request.
 * On a machine without SSE2 both builds are the portable one and the test
 * still checks the splits and the spans. */
/* Before cmocka.h, whose fail() macro would clash with head.c's fail(). */
#include "../../../proxy/head.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "head_portable.h"

/* xorshift64*: a fixed seed, so a failure is reproducible. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

/* The byte-by-byte definitions the fast paths must agree with. */
static size_t ref_token_span(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && tchar_table[(unsigned char)p[i]])
        i++;
    return i;
}

static size_t ref_value_span(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && ((unsigned char)p[i] >= 0x20 || p[i] == '\t') && (unsigned char)p[i] != 0x7f)
        i++;
    return i;
}

static size_t ref_target_span(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f && p[i] != '#')
        i++;
    return i;
}

/* Every byte value at every position of runs of every length up to 80
 * (five 16-byte steps), over fillers from each class. The buffer is
 * allocated at its exact length, so ASan catches any read past it. */
static void test_spans(void **state)
{
    static const char fillers[] = {'a', 'Z', '7', '-', '_', ' ', '\t', '\x80'};
    for (size_t f = 0; f < sizeof(fillers); f++) {
        for (size_t len = 0; len <= 80; len++) {
            char *p = malloc(len ? len : 1);
            assert_non_null(p);
            for (size_t pos = 0; pos <= len; pos++) {
                for (unsigned b = 0; b < 256; b++) {
                    if (pos == len && b > 0)
                        break;
                    memset(p, fillers[f], len);
                    if (pos < len)
                        p[pos] = (char)b;
                    assert_int_equal(token_span(p, len), ref_token_span(p, len));
                    assert_int_equal(value_span(p, len), ref_value_span(p, len));
                    assert_int_equal(target_span(p, len), ref_target_span(p, len));
                    assert_int_equal(portable_token_span(p, len), ref_token_span(p, len));
                    assert_int_equal(portable_value_span(p, len), ref_value_span(p, len));
                    assert_int_equal(portable_target_span(p, len), ref_target_span(p, len));
                }
            }
            free(p);
        }
    }
}

/* Random runs with several special bytes, the case the per-position test
 * above does not reach (a tab, then a bad byte further on). */
static void test_spans_random(void **state)
{
    static const char pool[] = "aZ9-_.:!# \t\r\n\x01\x7f\x80\xff";
    for (int round = 0; round < 200000; round++) {
        size_t len = rnd_below(100);
        char *p = malloc(len ? len : 1);
        assert_non_null(p);
        for (size_t i = 0; i < len; i++)
            p[i] = rnd_below(4) == 0 ? pool[rnd_below(sizeof(pool) - 1)] : "abcXYZ019-"[rnd_below(10)];
        assert_int_equal(token_span(p, len), ref_token_span(p, len));
        assert_int_equal(value_span(p, len), ref_value_span(p, len));
        assert_int_equal(target_span(p, len), ref_target_span(p, len));
        assert_int_equal(portable_token_span(p, len), ref_token_span(p, len));
        assert_int_equal(portable_value_span(p, len), ref_value_span(p, len));
        assert_int_equal(portable_target_span(p, len), ref_target_span(p, len));
        free(p);
    }
}

#if HEAD_SSE2
/* The parser's window: line ends and colons as memchr finds them, over
 * buffers longer than a window, with lines longer than one. */
static void test_parse_find(void **state)
{
    for (int round = 0; round < 3000; round++) {
        size_t len = 1 + rnd_below(round % 10 == 0 ? 3 * PARSE_WIN_BYTES : 300);
        char *buf = malloc(len);
        assert_non_null(buf);
        size_t density = 1 + rnd_below(round % 7 == 0 ? 4000 : 40);
        for (size_t i = 0; i < len; i++) {
            size_t r = rnd_below(density);
            buf[i] = r == 0 ? '\r' : r == 1 ? ':' : r == 2 ? '\n' : 'x';
        }
        size_t nl = 0;
        for (size_t i = 0; i < len; i++)
            nl += buf[i] == '\n';
        assert_int_equal(count_lf(buf, len), nl);
        struct parse_win w;
        const char *end = buf + len;
        const char *p = buf + rnd_below(len);
        /* As in ap_head_parse: the first window starts at the first line. */
        parse_win_build(&w, p, (size_t)(end - p));
        while (p < end) {
            const char *e, *colon;
            parse_find(&w, p, end, &e, &colon);
            const char *re = memchr(p, '\r', (size_t)(end - p));
            const char *rc = re != NULL ? memchr(p, ':', (size_t)(re - p)) : NULL;
            assert_ptr_equal(e, re);
            if (e == NULL)
                break;
            assert_ptr_equal(colon, rc);
            p = e + 1 + rnd_below(3);
        }
        free(buf);
    }
}
#endif

/* Generated heads: a request line, then header lines built from pieces
 * that reach every branch of the scanner and the parser. */
struct gen {
    char *p;
    size_t len, cap;
};

static void put(struct gen *g, const char *s, size_t n)
{
    if (g->len + n > g->cap) {
        g->cap = (g->len + n) * 2;
        g->p = realloc(g->p, g->cap);
        assert_non_null(g->p);
    }
    memcpy(g->p + g->len, s, n);
    g->len += n;
}

static void puts_(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void put_random(struct gen *g, const char *pool, size_t n)
{
    size_t pn = strlen(pool);
    for (size_t i = 0; i < n; i++)
        put(g, &pool[rnd_below(pn)], 1);
}

static const char *const names[] = {
    "User-Agent", "Accept", "Accept-Language", "Cookie", "X-Forwarded-For",
    "Sec-CH-UA-Full-Version-List", "X_Under_Score", "x.dotted!name", "X-A", "a",
};

/* The headers the parser acts on, picked less often. */
static const char *const special_names[] = {
    "Host", "host", "HOST", "Content-Length", "content-length", "Transfer-Encoding",
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Expect",
};

static const char *const values[] = {
    "a", "example.com", "[::1]:8080", "u@h", "0", "5", "12", " 7 ", "chunked", "gzip, chunked",
    "chunked, gzip", "close", "keep-alive", "close, X-A", "X-A, Cookie", "100-continue", "x",
    "", "  ", "\tt\t", "caf\xc3\xa9", "a:b:c", "v=\"1\"; q=0.9",
};

static void gen_head(struct gen *g)
{
    g->len = 0;
    static const char *const methods[] = {"GET", "POST", "OPTIONS", "CONNECT", "HEAD", "M_X"};
    static const char *const targets[] = {"/", "/a?b=1", "*", "http://a/x", "http://example.com/p?q",
                                          "/a/../b", "/a/%2e/b", "a.com:443", "/x#f"};
    static const char *const versions[] = {"HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"};
    puts_(g, methods[rnd_below(AP_ARRAY_SIZE(methods))]);
    puts_(g, " ");
    puts_(g, targets[rnd_below(2) ? rnd_below(2) : rnd_below(AP_ARRAY_SIZE(targets))]);
    if (rnd_below(4) == 0)
        put_random(g, "abcdefgh/?=&%0123456789", rnd_below(rnd_below(5) == 0 ? 600 : 60));
    puts_(g, " ");
    puts_(g, versions[rnd_below(AP_ARRAY_SIZE(versions))]);
    puts_(g, "\r\n");
    if (rnd_below(4) != 0)
        puts_(g, rnd_below(2) ? "Host: a\r\n" : "Host: example.com\r\n");
    size_t nh = rnd_below(6) == 0 ? rnd_below(160) : rnd_below(25);
    for (size_t h = 0; h < nh; h++) {
        if (rnd_below(3) == 0)
            put_random(g, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
                       1 + rnd_below(rnd_below(8) == 0 ? 70 : 20));
        else if (rnd_below(6) == 0)
            puts_(g, special_names[rnd_below(AP_ARRAY_SIZE(special_names))]);
        else
            puts_(g, names[rnd_below(AP_ARRAY_SIZE(names))]);
        puts_(g, rnd_below(20) == 0 ? " :" : ":");
        if (rnd_below(2) == 0)
            puts_(g, " ");
        if (rnd_below(3) == 0)
            put_random(g, "abcdefghijklmnopqrstuvwxyz0123456789 ;,=\"/:\t\x80\xfe",
                       rnd_below(rnd_below(10) == 0 ? 1500 : 80));
        else
            puts_(g, values[rnd_below(AP_ARRAY_SIZE(values))]);
        puts_(g, "\r\n");
    }
    if (rnd_below(10) != 0)
        puts_(g, "\r\n");
    if (rnd_below(4) == 0)
        puts_(g, "BODY\r\n");
    /* Mutations: the bytes every check is about, anywhere. */
    static const char special[] = "\r\n: \t\x01\x7f\x80#_@a\0";
    size_t nm = rnd_below(3) == 0 ? 0 : rnd_below(4);
    for (size_t m = 0; m < nm && g->len > 0; m++) {
        size_t at = rnd_below(g->len);
        char c = special[rnd_below(sizeof(special) - 1)];
        switch (rnd_below(3)) {
        case 0:
            g->p[at] = c;
            break;
        case 1: /* insert */
            put(g, "x", 1);
            memmove(g->p + at + 1, g->p + at, g->len - 1 - at);
            g->p[at] = c;
            break;
        default: /* delete */
            memmove(g->p + at, g->p + at + 1, g->len - 1 - at);
            g->len--;
            break;
        }
    }
}

typedef int (*scan_fn)(struct ap_head_scan *, const char *, size_t, const struct ap_head_limits *,
                       struct ap_head_error *);
typedef int (*parse_fn)(const char *, size_t, struct ap_request *, struct ap_arena *,
                        struct ap_head_error *);

struct scan_result {
    int rc;
    int status;
    const char *reason;
    struct ap_head_scan st;
};

/* Scan buf[0, len) handed in growing pieces ending at cuts[0, ncuts), then
 * whole; stop at the first answer, as the connection does. */
static struct scan_result scan_pieces(scan_fn fn, const char *buf, size_t len, const size_t *cuts,
                                      size_t ncuts, const struct ap_head_limits *lim)
{
    struct scan_result r;
    struct ap_head_error err = {0, NULL};
    memset(&r, 0, sizeof(r));
    r.rc = 0;
    for (size_t k = 0; k <= ncuts && r.rc == 0; k++) {
        size_t n = k < ncuts ? cuts[k] : len;
        /* Each piece in a buffer of its own exact size: the scanner may
         * look at no byte that has not arrived. */
        char *piece = malloc(n ? n : 1);
        assert_non_null(piece);
        memcpy(piece, buf, n);
        r.rc = fn(&r.st, piece, n, lim, &err);
        free(piece);
    }
    r.status = r.rc < 0 ? err.status : 0;
    r.reason = r.rc < 0 ? err.reason : "";
    return r;
}

static void assert_same_scan(struct scan_result a, struct scan_result b)
{
    assert_int_equal(a.rc, b.rc);
    assert_int_equal(a.status, b.status);
    assert_string_equal(a.reason, b.reason);
    assert_int_equal(a.st.off, b.st.off);
    assert_int_equal(a.st.nlines, b.st.nlines);
    assert_int_equal(a.st.line_start, b.st.line_start);
}

static size_t off_in(const char *buf, struct ap_slice s)
{
    return s.p == NULL ? SIZE_MAX : (size_t)(s.p - buf);
}

static void assert_same_slice(const char *abuf, struct ap_slice a, const char *bbuf, struct ap_slice b)
{
    assert_int_equal(off_in(abuf, a), off_in(bbuf, b));
    assert_int_equal(a.len, b.len);
}

static void parse_both(const char *buf, size_t len, size_t arena_cap)
{
    struct ap_arena a1, a2;
    struct ap_request r1, r2;
    struct ap_head_error e1 = {0, NULL}, e2 = {0, NULL};
    ap_arena_init(&a1, 1024, arena_cap);
    ap_arena_init(&a2, 1024, arena_cap);
    int rc1 = ap_head_parse(buf, len, &r1, &a1, &e1);
    int rc2 = portable_head_parse(buf, len, &r2, &a2, &e2);
    assert_int_equal(rc1, rc2);
    assert_int_equal(e1.status, e2.status);
    if (rc1 != 0) {
        assert_string_equal(e1.reason, e2.reason);
    } else {
        assert_same_slice(buf, r1.method, buf, r2.method);
        assert_same_slice(buf, r1.target, buf, r2.target);
        assert_same_slice(buf, r1.path, buf, r2.path);
        assert_same_slice(buf, r1.query, buf, r2.query);
        assert_same_slice(buf, r1.host, buf, r2.host);
        assert_int_equal(r1.version_minor, r2.version_minor);
        assert_int_equal(r1.nheaders, r2.nheaders);
        assert_int_equal(r1.headers_cap, r2.headers_cap);
        assert_int_equal(r1.content_length, r2.content_length);
        assert_int_equal(r1.chunked, r2.chunked);
        assert_int_equal(r1.expect_continue, r2.expect_continue);
        assert_int_equal(r1.keep_alive, r2.keep_alive);
        for (size_t i = 0; i < r1.nheaders; i++) {
            assert_same_slice(buf, r1.headers[i].name, buf, r2.headers[i].name);
            assert_same_slice(buf, r1.headers[i].value, buf, r2.headers[i].value);
            assert_int_equal(r1.headers[i].flags, r2.headers[i].flags);
        }
    }
    ap_arena_free(&a1);
    ap_arena_free(&a2);
}

static const struct ap_head_limits limit_sets[] = {
    {.line_bytes = 8192, .head_bytes = 65536, .header_count = 200, .target_bytes = 8192},
    {.line_bytes = 200, .head_bytes = 1000, .header_count = 5, .target_bytes = 100},
    {.line_bytes = 1024, .head_bytes = 4096, .header_count = 50, .target_bytes = 512},
    {.line_bytes = 40, .head_bytes = 3000, .header_count = 120, .target_bytes = 30},
};

/* One head: SSE2 and portable, whole, byte by byte and in random pieces,
 * all give the same answer; then the same parse when accepted. */
static void check_head(const char *buf, size_t len)
{
    const struct ap_head_limits *lim = &limit_sets[rnd_below(AP_ARRAY_SIZE(limit_sets))];
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    struct scan_result whole = scan_pieces(ap_head_scan, buf, len, NULL, 0, lim);
    assert_same_scan(whole, scan_pieces(portable_head_scan, buf, len, NULL, 0, lim));
    /* Byte by byte (long heads: every byte of the first 3000). */
    size_t nb = len < 3000 ? len : 3000;
    for (size_t k = 0; k < nb; k++)
        cuts[k] = k + 1;
    assert_same_scan(whole, scan_pieces(ap_head_scan, buf, len, cuts, nb, lim));
    assert_same_scan(whole, scan_pieces(portable_head_scan, buf, len, cuts, nb, lim));
    /* Random splits, including cuts between CR and LF. */
    for (int round = 0; round < 4; round++) {
        size_t ncuts = 0, at = 0;
        while (at < len && ncuts < len) {
            at += 1 + rnd_below(round == 0 ? 4 : 200);
            if (at < len)
                cuts[ncuts++] = at;
        }
        assert_same_scan(whole, scan_pieces(ap_head_scan, buf, len, cuts, ncuts, lim));
        assert_same_scan(whole, scan_pieces(portable_head_scan, buf, len, cuts, ncuts, lim));
    }
    free(cuts);
    if (whole.rc > 0) {
        parse_both(buf, (size_t)whole.rc, 0);
        parse_both(buf, (size_t)whole.rc, 64 + rnd_below(2048)); /* out of memory, maybe */
    }
}

static void test_generated_heads(void **state)
{
    struct gen g = {NULL, 0, 0};
    int accepted = 0, parsed = 0;
    for (int round = 0; round < 4000; round++) {
        gen_head(&g);
        char *copy = malloc(g.len ? g.len : 1);
        assert_non_null(copy);
        memcpy(copy, g.p, g.len);
        check_head(copy, g.len);
        struct ap_head_scan st;
        struct ap_head_error err;
        memset(&st, 0, sizeof(st));
        int rc = ap_head_scan(&st, copy, g.len, &limit_sets[0], &err);
        accepted += rc > 0;
        if (rc > 0) {
            struct ap_arena a;
            struct ap_request r;
            ap_arena_init(&a, 1024, 0);
            parsed += ap_head_parse(copy, (size_t)rc, &r, &a, &err) == 0;
            ap_arena_free(&a);
        }
        free(copy);
    }
    free(g.p);
    print_message("accepted %d, parsed %d of 4000\n", accepted, parsed);
    /* The generator must reach both sides of the checks. */
    assert_true(accepted > 400 && accepted < 3600);
    assert_true(parsed > 200 && parsed < accepted);
}

/* The parser on its own, on heads the scanner never saw (its contract says
 * scanned heads only; both builds must still agree byte for byte). */
static void test_parse_unscanned(void **state)
{
    struct gen g = {NULL, 0, 0};
    for (int round = 0; round < 4000; round++) {
        gen_head(&g);
        char *copy = malloc(g.len ? g.len : 1);
        assert_non_null(copy);
        memcpy(copy, g.p, g.len);
        parse_both(copy, g.len, 0);
        free(copy);
    }
    free(g.p);
}

int main(void)
{
    /* HEAD_DIFF_SEED=n picks another sequence of generated heads. */
    const char *seed = getenv("HEAD_DIFF_SEED");
    if (seed != NULL && strtoull(seed, NULL, 10) != 0)
        rng_state = strtoull(seed, NULL, 10);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_spans_random),
#if HEAD_SSE2
        cmocka_unit_test(test_parse_find),
#endif
        cmocka_unit_test(test_generated_heads),
        cmocka_unit_test(test_parse_unscanned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

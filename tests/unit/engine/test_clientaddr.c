/* Unit tests of proxy/engine/clientaddr.c: the right-to-left trust walk
 * over X-Forwarded-For and Forwarded, and the address header list. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "anonproxy/clientaddr.h"
#include "anonproxy/ip.h"

#define MAXH 8

struct fixture {
    struct ap_cidr_list trusted;
    struct ap_clientaddr_config cfg;
    struct ap_header h[MAXH];
    size_t nh;
    struct ap_clientaddr_result r;
    char addr[AP_IP_STRLEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    ap_cidr_list_init(&f->trusted);
    const char *t = "10.0.0.0/8, 2001:db8:ffff::/48, 192.0.2.1";
    assert_int_equal(ap_cidr_list_parse(&f->trusted, t, strlen(t), NULL), 0);
    ap_clientaddr_config_init(&f->cfg, &f->trusted);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ap_cidr_list_free(&f->trusted);
    free(f);
    return 0;
}

static void add(struct fixture *f, const char *name, const char *value)
{
    assert_true(f->nh < MAXH);
    f->h[f->nh].name = (struct ap_slice){name, strlen(name)};
    f->h[f->nh].value = (struct ap_slice){value, strlen(value)};
    f->nh++;
}

/* Resolve with peer `peer` and return the client address as text. */
static const char *resolve(struct fixture *f, const char *peer)
{
    struct ap_ip p;
    assert_int_equal(ap_ip_parse(&p, peer, strlen(peer)), 0);
    assert_int_equal(ap_clientaddr_resolve(&f->cfg, &p, f->h, f->nh, &f->r), 0);
    assert_true(ap_ip_format(&f->r.addr, f->addr, sizeof(f->addr)) > 0);
    return f->addr;
}

static void test_untrusted_peer(void **state)
{
    struct fixture *f = *state;
    add(f, "X-Forwarded-For", "1.1.1.1");
    assert_string_equal(resolve(f, "203.0.113.5"), "203.0.113.5");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_PEER_UNTRUSTED);
    assert_int_equal(f->r.header, AP_CLIENTADDR_HDR_NONE);
    assert_int_equal(f->r.port, -1);
    assert_int_equal(f->r.hops, 0);
}

static void test_trusted_peer_no_header(void **state)
{
    struct fixture *f = *state;
    add(f, "Host", "example.com");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_NO_HEADER);

    /* Headers that are present but hold only empty elements count as absent. */
    add(f, "X-Forwarded-For", "");
    add(f, "x-forwarded-for", " , ,\t");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_NO_HEADER);
    assert_int_equal(f->r.hops, 0);
}

static void test_xff_simple(void **state)
{
    struct fixture *f = *state;
    add(f, "X-Forwarded-For", "203.0.113.7");
    assert_string_equal(resolve(f, "10.0.0.1"), "203.0.113.7");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);
    assert_int_equal(f->r.header, AP_CLIENTADDR_HDR_XFF);
    assert_int_equal(f->r.hops, 1);
}

static void test_xff_spoofed_left_part(void **state)
{
    struct fixture *f = *state;
    /* The client sent "1.1.1.1, 10.9.9.9"; our edge proxy appended the
     * client's real address. The spoofed part is never reached. */
    add(f, "X-Forwarded-For", "1.1.1.1, 10.9.9.9, 198.51.100.20, 10.0.0.2");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.20");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);
    assert_int_equal(f->r.hops, 2);
}

static void test_xff_all_trusted(void **state)
{
    struct fixture *f = *state;
    add(f, "X-Forwarded-For", "10.1.1.1, 10.2.2.2 ,10.3.3.3");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.1.1.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_ALL_TRUSTED);
    assert_int_equal(f->r.hops, 3);
}

static void test_xff_multiple_lines(void **state)
{
    struct fixture *f = *state;
    /* Lines are one list in received order: the last line is rightmost. */
    add(f, "X-Forwarded-For", "198.51.100.1, 10.1.1.1");
    add(f, "Accept", "*/*");
    add(f, "x-FORWARDED-for", "10.2.2.2");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.1");
    assert_int_equal(f->r.hops, 3);

    f->nh = 0;
    add(f, "X-Forwarded-For", "10.1.1.1");
    add(f, "X-Forwarded-For", "198.51.100.2, 10.2.2.2");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.2");
}

static void test_xff_ports_and_v6(void **state)
{
    struct fixture *f = *state;
    add(f, "X-Forwarded-For", "[2001:db8::7]:4711, 10.1.1.1:8080");
    assert_string_equal(resolve(f, "10.0.0.1"), "2001:db8::7");
    assert_int_equal(f->r.port, 4711);

    f->nh = 0;
    add(f, "X-Forwarded-For", "203.0.113.9:1234");
    assert_string_equal(resolve(f, "10.0.0.1"), "203.0.113.9");
    assert_int_equal(f->r.port, 1234);

    f->nh = 0;
    add(f, "X-Forwarded-For", "2001:db8::8, 2001:db8:ffff::1");
    assert_string_equal(resolve(f, "2001:db8:ffff::2"), "2001:db8::8");
    assert_int_equal(f->r.port, -1);

    f->nh = 0;
    add(f, "X-Forwarded-For", "fe80::1%eth0");
    assert_string_equal(resolve(f, "10.0.0.1"), "fe80::1");
}

static void test_xff_mapped(void **state)
{
    struct fixture *f = *state;
    /* A dual-stack socket reports a trusted IPv4 peer as mapped. */
    add(f, "X-Forwarded-For", "::ffff:198.51.100.3, ::ffff:10.1.1.1");
    assert_string_equal(resolve(f, "::ffff:10.0.0.1"), "198.51.100.3");
    assert_int_equal(f->r.addr.family, 4);
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);

    f->nh = 0;
    assert_string_equal(resolve(f, "::ffff:203.0.113.1"), "203.0.113.1");
    assert_int_equal(f->r.addr.family, 4);
}

static void test_xff_garbage(void **state)
{
    struct fixture *f = *state;
    /* Garbage written by the trusted peer: the peer is the client. */
    add(f, "X-Forwarded-For", "198.51.100.1, not-an-ip");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_INVALID);
    assert_int_equal(f->r.port, -1);
    assert_int_equal(f->r.hops, 1);

    /* Garbage behind a trusted hop: that hop, with its port, is the client;
     * the address left of the garbage is never believed. */
    f->nh = 0;
    add(f, "X-Forwarded-For", "198.51.100.1, 010.1.1.1, 10.7.7.7:99");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.7.7.7");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_INVALID);
    assert_int_equal(f->r.port, 99);
    assert_int_equal(f->r.hops, 2);

    static const char *const junk[] = {
        "1.2.3", "1.2.3.4.5", "\"1.2.3.4\"", "1.2.3.4:99999", "[1.2.3.4]", "1.2.3.4 5.6.7.8",
        "::1::", "[::1", "\x01", "1.2.3.4;for=5.6.7.8", "for=1.2.3.4", "_hidden",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(junk); i++) {
        f->nh = 0;
        add(f, "X-Forwarded-For", junk[i]);
        assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
        assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_INVALID);
    }

    f->nh = 0;
    add(f, "X-Forwarded-For", "unknown");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNKNOWN);
}

static void test_xff_empty_elements(void **state)
{
    struct fixture *f = *state;
    add(f, "X-Forwarded-For", ",198.51.100.4,, ,10.1.1.1,");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.4");
    assert_int_equal(f->r.hops, 2);
}

static void test_many_entries(void **state)
{
    struct fixture *f = *state;
    /* 150 trusted hops after the client: walked fully, linear time. */
    static char big[150 * 16 + 32];
    size_t n = (size_t)snprintf(big, sizeof(big), "198.51.100.77");
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, ", 10.0.%d.%d", i / 250, i % 250);
    add(f, "X-Forwarded-For", big);
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.77");
    assert_int_equal(f->r.hops, 151);

    /* 200 spoofed entries left of the real client are never looked at. */
    static char spoof[200 * 12 + 32];
    n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(spoof + n, sizeof(spoof) - n, "1.1.1.%d, ", i % 250);
    snprintf(spoof + n, sizeof(spoof) - n, "203.0.113.8");
    f->nh = 0;
    add(f, "X-Forwarded-For", spoof);
    assert_string_equal(resolve(f, "10.0.0.1"), "203.0.113.8");
    assert_int_equal(f->r.hops, 1);

    /* 1000 commas and nothing else. */
    static char commas[1001];
    memset(commas, ',', 1000);
    f->nh = 0;
    add(f, "X-Forwarded-For", commas);
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_NO_HEADER);
}

static void use_forwarded(struct fixture *f)
{
    assert_int_equal(ap_clientaddr_config_set_headers(&f->cfg, "forwarded", 9), 0);
}

static void test_forwarded_basic(void **state)
{
    struct fixture *f = *state;
    use_forwarded(f);
    add(f, "Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43");
    assert_string_equal(resolve(f, "10.0.0.1"), "192.0.2.60");
    assert_int_equal(f->r.header, AP_CLIENTADDR_HDR_FORWARDED);
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);

    /* The trusted host route 192.0.2.1 is skipped like any trusted hop. */
    f->nh = 0;
    add(f, "Forwarded", "for=192.0.2.1");
    assert_string_equal(resolve(f, "10.0.0.1"), "192.0.2.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_ALL_TRUSTED);

    /* X-Forwarded-For is ignored when only Forwarded is configured. */
    f->nh = 0;
    add(f, "X-Forwarded-For", "198.51.100.1");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_NO_HEADER);
}

static void test_forwarded_rfc_examples(void **state)
{
    struct fixture *f = *state;
    use_forwarded(f);
    add(f, "Forwarded", "For=\"[2001:db8:cafe::17]:4711\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "2001:db8:cafe::17");
    assert_int_equal(f->r.port, 4711);
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);

    f->nh = 0;
    add(f, "Forwarded", "for=192.0.2.43, for=198.51.100.17");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.17");
    assert_int_equal(f->r.hops, 1);

    f->nh = 0;
    add(f, "Forwarded", "for=198.51.100.17, for=10.1.1.1;by=10.0.0.1;proto=https");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.17");
    assert_int_equal(f->r.hops, 2);

    f->nh = 0;
    add(f, "Forwarded", "FOR=198.51.100.18 ; PROTO=https");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.18");

    f->nh = 0;
    add(f, "Forwarded", "for=\"198.51.100.19:8080\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.19");
    assert_int_equal(f->r.port, 8080);

    f->nh = 0;
    add(f, "Forwarded", "for=\"198.51.100.19:_abc\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.19");
    assert_int_equal(f->r.port, -1);
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);

    /* Quoted pairs are decoded. */
    f->nh = 0;
    add(f, "Forwarded", "for=\"\\1\\98.51.100.20\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.20");

    /* Unquoted IPv6 with brackets is tolerated. */
    f->nh = 0;
    add(f, "Forwarded", "for=[2001:db8::9]:80");
    assert_string_equal(resolve(f, "10.0.0.1"), "2001:db8::9");
    assert_int_equal(f->r.port, 80);
}

static void test_forwarded_unknown_obfuscated(void **state)
{
    struct fixture *f = *state;
    use_forwarded(f);
    add(f, "Forwarded", "for=198.51.100.1, for=unknown, for=10.1.1.1");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.1.1.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNKNOWN);
    assert_int_equal(f->r.hops, 2);

    f->nh = 0;
    add(f, "Forwarded", "for=\"_gazonk\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_OBFUSCATED);

    f->nh = 0;
    add(f, "Forwarded", "for=_hidden:_port");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_OBFUSCATED);

    f->nh = 0;
    add(f, "Forwarded", "for=UNKNOWN:80");
    resolve(f, "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNKNOWN);

    /* An element without for= says nothing about its hop. */
    f->nh = 0;
    add(f, "Forwarded", "for=198.51.100.1, proto=https;by=10.0.0.1");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.0.0.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNKNOWN);
}

static void test_forwarded_garbage(void **state)
{
    struct fixture *f = *state;
    use_forwarded(f);
    static const char *const junk[] = {
        "for=",
        "for",
        "=1.2.3.4",
        "for=1.2.3.4;for=5.6.7.8",           /* duplicate parameter */
        "for=\"1.2.3.4",                      /* unterminated */
        "for=1.2.3.4\"",                      /* stray quote */
        "for=\"2001:db8::1\"",                /* IPv6 without brackets */
        "for=\"[1.2.3.4]\"",
        "for=\"[2001:db8::1]:\"",
        "for=\"[2001:db8::1]x\"",
        "for=\"1.2.3.4:99999\"",
        "for=\"1.2.3.4:\"",
        "for=1.2.3.4 x",
        "for=1.2.3.4;;proto=http;proto=https",
        "for=\"1.2.3.4\" \"x\"",
        "for=\"a\x01\"",
        "for=_",
        "for=_hid den",
        "for=\"_a\\\"",
        "for=1.2.3.4\\",
        "for=010.1.1.1",
        "for=\"\\\"\"",
        "for=\"[2001:db8::1\"",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(junk); i++) {
        f->nh = 0;
        add(f, "Forwarded", junk[i]);
        const char *got = resolve(f, "10.0.0.1");
        if (strcmp(got, "10.0.0.1") != 0 || f->r.stop != AP_CLIENTADDR_STOP_INVALID)
            fail_msg("\"%s\": client %s stop %s", junk[i], got, ap_clientaddr_stop_name(f->r.stop));
    }
}

static void test_forwarded_quotes_hide_commas(void **state)
{
    struct fixture *f = *state;
    use_forwarded(f);
    /* A comma inside a quoted string does not split elements. */
    add(f, "Forwarded", "for=198.51.100.5;ext=\"a, for=1.1.1.1\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.5");
    assert_int_equal(f->r.hops, 1);

    /* An escaped quote does not end the string. */
    f->nh = 0;
    add(f, "Forwarded", "for=198.51.100.6;ext=\"a\\\", for=1.1.1.1\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.6");

    /* An escaped backslash before the closing quote does end it. */
    f->nh = 0;
    add(f, "Forwarded", "for=198.51.100.6, for=10.1.1.1;ext=\"a\\\\\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.6");
    assert_int_equal(f->r.hops, 2);

    /* A client's unbalanced quote left of a trusted append does not hide
     * the append. */
    f->nh = 0;
    add(f, "Forwarded", "for=\", for=198.51.100.7");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.7");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);

    /* ... and reaching it is INVALID, never a guess. */
    f->nh = 0;
    add(f, "Forwarded", "for=\"198.51.100.8, for=10.1.1.1");
    assert_string_equal(resolve(f, "10.0.0.1"), "10.1.1.1");
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_INVALID);
}

static void test_forwarded_multiple_lines_and_many(void **state)
{
    struct fixture *f = *state;
    use_forwarded(f);
    add(f, "Forwarded", "for=198.51.100.9");
    add(f, "forwarded", "for=10.1.1.1, for=\"[2001:db8:ffff::5]\"");
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.9");
    assert_int_equal(f->r.hops, 3);

    static char big[120 * 40 + 32];
    size_t n = (size_t)snprintf(big, sizeof(big), "for=198.51.100.10");
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, ", For=\"10.1.%d.1\";proto=https", i);
    f->nh = 0;
    add(f, "Forwarded", big);
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.10");
    assert_int_equal(f->r.hops, 121);
}

static void test_header_order(void **state)
{
    struct fixture *f = *state;
    add(f, "X-Forwarded-For", "198.51.100.11");
    add(f, "Forwarded", "for=198.51.100.12");

    /* Default: X-Forwarded-For only. */
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.11");

    const char *spec = "forwarded, x-forwarded-for";
    assert_int_equal(ap_clientaddr_config_set_headers(&f->cfg, spec, strlen(spec)), 0);
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.12");
    assert_int_equal(f->r.header, AP_CLIENTADDR_HDR_FORWARDED);

    /* The first configured header that is absent falls through. */
    f->nh = 1;
    assert_string_equal(resolve(f, "10.0.0.1"), "198.51.100.11");
    assert_int_equal(f->r.header, AP_CLIENTADDR_HDR_XFF);

    spec = "X-Forwarded-For Forwarded";
    assert_int_equal(ap_clientaddr_config_set_headers(&f->cfg, spec, strlen(spec)), 0);
    assert_int_equal(f->cfg.norder, 2);
    assert_int_equal(f->cfg.order[0], AP_CLIENTADDR_HDR_XFF);

    static const char *const bad[] = {"", " , ", "x-real-ip", "forwarded,forwarded",
                                      "forwarded x-forwarded-for forwarded", "forwarde"};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++)
        assert_int_equal(ap_clientaddr_config_set_headers(&f->cfg, bad[i], strlen(bad[i])), -EINVAL);
    assert_int_equal(f->cfg.norder, 2); /* unchanged */
}

static void test_bad_args(void **state)
{
    struct fixture *f = *state;
    struct ap_ip p = {0};
    assert_int_equal(ap_clientaddr_resolve(&f->cfg, &p, NULL, 0, &f->r), -EINVAL);
    assert_int_equal(ap_ip_parse(&p, "10.0.0.1", 8), 0);
    assert_int_equal(ap_clientaddr_resolve(&f->cfg, &p, NULL, 1, &f->r), -EINVAL);
    assert_int_equal(ap_clientaddr_resolve(NULL, &p, NULL, 0, &f->r), -EINVAL);
    assert_int_equal(ap_clientaddr_resolve(&f->cfg, &p, NULL, 0, &f->r), 0);
    assert_int_equal(f->r.stop, AP_CLIENTADDR_STOP_NO_HEADER);
}

static void test_address_headers(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "X-Forwarded-For", "x-forwarded-for", "X-REAL-IP", "Forwarded", "True-Client-IP",
        "cf-connecting-ip", "Fastly-Client-IP", "X-Client-IP", "X-Cluster-Client-IP",
    };
    static const char *const no[] = {
        "X-Forwarded-Fo", "X-Forwarded-For2", "X-Forwarded-Host", "Host", "", "Forwarded ",
        "X-Forwarded-Proto", "Client-IP",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(yes); i++)
        assert_true(ap_clientaddr_is_address_header(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < AP_ARRAY_SIZE(no); i++)
        assert_false(ap_clientaddr_is_address_header(no[i], strlen(no[i])));
    /* Only `len` bytes count. */
    assert_true(ap_clientaddr_is_address_header("Forwarded: x", 9));
    assert_false(ap_clientaddr_is_address_header(NULL, 0));
    /* The list of names agrees with the predicate, one letter off does not
     * match (the predicate picks its candidate by length and first letter). */
    size_t n = 0;
    for (const char *name; (name = ap_clientaddr_address_header(n)) != NULL; n++) {
        assert_true(ap_clientaddr_is_address_header(name, strlen(name)));
        char near[32];
        size_t len = strlen(name);
        assert_true(len < sizeof(near));
        for (size_t k = 0; k < len; k++) {
            memcpy(near, name, len);
            near[k] = near[k] == 'q' ? 'z' : 'q';
            assert_false(ap_clientaddr_is_address_header(near, len));
        }
    }
    assert_int_equal(n, AP_ARRAY_SIZE(yes) - 1); /* yes[] has two spellings of one name */
}

static void test_stop_names(void **state)
{
    (void)state;
    assert_string_equal(ap_clientaddr_stop_name(AP_CLIENTADDR_STOP_UNTRUSTED_HOP), "untrusted-hop");
    assert_string_equal(ap_clientaddr_stop_name(AP_CLIENTADDR_STOP_INVALID), "invalid");
    assert_string_equal(ap_clientaddr_stop_name((enum ap_clientaddr_stop)99), "?");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_untrusted_peer),
        T(test_trusted_peer_no_header),
        T(test_xff_simple),
        T(test_xff_spoofed_left_part),
        T(test_xff_all_trusted),
        T(test_xff_multiple_lines),
        T(test_xff_ports_and_v6),
        T(test_xff_mapped),
        T(test_xff_garbage),
        T(test_xff_empty_elements),
        T(test_many_entries),
        T(test_forwarded_basic),
        T(test_forwarded_rfc_examples),
        T(test_forwarded_unknown_obfuscated),
        T(test_forwarded_garbage),
        T(test_forwarded_quotes_hide_commas),
        T(test_forwarded_multiple_lines_and_many),
        T(test_header_order),
        T(test_bad_args),
        T(test_address_headers),
        T(test_stop_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

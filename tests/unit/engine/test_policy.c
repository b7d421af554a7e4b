/* Unit tests of proxy/engine/policy.c: ap_engine_rewrite on realistic
 * requests. Policies are built the way the server builds them, from YAML
 * through the configuration loader, so each test reads as the
 * configuration an operator would write. Requests go through the real head
 * scanner and parser. Pseudonyms use a keyring on a fixed secret, so they
 * are reproducible. */
#include "anonproxy/common.h"

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include "anonproxy/arena.h"
#include "anonproxy/config.h"
#include "anonproxy/head.h"
#include "anonproxy/ip.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"
#include "config-int.h"

/* 2023-11-14 22:13:20 UTC. */
#define NOW INT64_C(1700000000)
#define DAY INT64_C(86400)

static const char secret[] = "0123456789abcdef-test-secret";

/* Upstreams are files: nothing here resolves a name. */
#define CONFIG_HEAD                                                               \
    "listen: [{address: 127.0.0.1:8080}]\n"                                      \
    "upstreams: {u: {file: out.ndjson}}\n"

struct fx {
    struct ap_config *cfg;
    struct ap_arena parse_arena; /* the request head's */
    struct ap_arena arena;       /* the engine's outputs */
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    struct ap_engine_stats stats;
    struct ap_engine_ctx ctx;
    struct ap_request req;
    struct ap_engine_result res;
};

static int no_resolve(void *ctx, const char *host, struct sockaddr_storage *ss, socklen_t *len,
                      const char **why)
{
    *why = "no resolver in this test";
    return -ENOENT;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    ap_arena_init(&f->parse_arena, 4096, 0);
    ap_arena_init(&f->arena, 4096, 0);
    assert_int_equal(ap_pseudo_source_init_secret(&f->src, (const uint8_t *)secret,
                                                  sizeof(secret) - 1), 0);
    ap_pseudo_keyring_init(&f->kr, &f->src);
    assert_int_equal(ap_pseudo_keyring_prepare(&f->kr, NOW), 0);
    f->ctx.keyring = &f->kr;
    f->ctx.now = NOW;
    f->ctx.arena = &f->arena;
    f->ctx.stats = &f->stats;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ap_config_unref(f->cfg);
    ap_arena_free(&f->parse_arena);
    ap_arena_free(&f->arena);
    ap_pseudo_keyring_free(&f->kr);
    ap_pseudo_source_free(&f->src);
    free(f);
    return 0;
}

/* Loads CONFIG_HEAD + `yaml` (which holds at least `routes:`). */
static void load(struct fx *f, const char *yaml)
{
    char *text = NULL;
    assert_true(asprintf(&text, CONFIG_HEAD "%s", yaml) > 0);
    static const struct ap_config__opts opts = { .resolve = no_resolve, .ncpus = 1 };
    char *errors = NULL;
    ap_config_unref(f->cfg);
    f->cfg = ap_config__parse(text, strlen(text), "policy.yaml", &opts, &errors);
    free(text);
    if (f->cfg == NULL)
        fail_msg("configuration refused:\n%s", errors);
}

/* Parses `raw` (which must outlive the request) into f->req. */
static void request(struct fx *f, const char *raw)
{
    static const struct ap_head_limits lim = { 8192, 65536, 200, 8192 };
    struct ap_head_scan st;
    struct ap_head_error err = { 0, NULL };
    memset(&st, 0, sizeof(st));
    ap_arena_reset(&f->parse_arena);
    int n = ap_head_scan(&st, raw, strlen(raw), &lim, &err);
    if (n <= 0)
        fail_msg("head refused (%d): %s", err.status, err.reason ? err.reason : "incomplete");
    memset(&f->req, 0, sizeof(f->req));
    if (ap_head_parse(raw, (size_t)n, &f->req, &f->parse_arena, &err) != 0)
        fail_msg("head refused (%d): %s", err.status, err.reason);
}

/* Rewrites f->req with route `route`'s policy for a connection from `peer`. */
static int rewrite(struct fx *f, size_t route, const char *peer)
{
    struct ap_ip ip;
    assert_int_equal(ap_ip_parse(&ip, peer, strlen(peer)), 0);
    assert_true(route < f->cfg->nroutes);
    ap_arena_reset(&f->arena);
    return ap_engine_rewrite(f->cfg->routes[route].policy, &f->ctx, &ip, &f->req, &f->res);
}

static int forwarded(const struct ap_header *h)
{
    return (h->flags & (AP_HEADER_DROPPED | AP_HEADER_CONNECTION_NAMED)) == 0;
}

/* How many headers named `name` the backend would get. */
static size_t count_fwd(const struct fx *f, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < f->req.nheaders; i++)
        if (forwarded(&f->req.headers[i]) && ap_slice_eq_ci(f->req.headers[i].name, name))
            n++;
    return n;
}

/* The value of the one forwarded header `name` as a NUL-terminated string
 * in `buf`, or NULL when there is none. Two of them fail the test: the
 * engine never appends to a header it owns. */
static const char *fwd(const struct fx *f, const char *name, char *buf, size_t size)
{
    const struct ap_header *found = NULL;
    for (size_t i = 0; i < f->req.nheaders; i++) {
        const struct ap_header *h = &f->req.headers[i];
        if (!forwarded(h) || !ap_slice_eq_ci(h->name, name))
            continue;
        if (found != NULL)
            fail_msg("header %s forwarded twice", name);
        found = h;
    }
    if (found == NULL)
        return NULL;
    assert_true(found->value.len < size);
    memcpy(buf, found->value.p, found->value.len);
    buf[found->value.len] = '\0';
    return buf;
}

#define FWD(f, name) fwd((f), (name), (char[1024]){ 0 }, 1024)

static char *target(const struct fx *f)
{
    static char buf[2048];
    assert_true(f->req.target.len < sizeof(buf));
    memcpy(buf, f->req.target.p, f->req.target.len);
    buf[f->req.target.len] = '\0';
    return buf;
}

static void assert_hex(const char *s, size_t len)
{
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    for (size_t i = 0; i < len; i++)
        assert_true(isxdigit((unsigned char)s[i]) && !isupper((unsigned char)s[i]));
}

/* `got` must match `pattern`, where each '#' stands for one lower-case hex
 * digit (a pseudonym) and every other byte for itself. */
static void assert_pattern(const char *got, const char *pattern)
{
    assert_non_null(got);
    int ok = strlen(got) == strlen(pattern);
    for (size_t i = 0; ok && pattern[i]; i++)
        ok = pattern[i] == '#' ? isxdigit((unsigned char)got[i]) && !isupper((unsigned char)got[i])
                               : got[i] == pattern[i];
    if (!ok)
        fail_msg("'%s' does not match '%s'", got, pattern);
}

static const char chrome_ua[] =
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.5414.120 Safari/537.36";
static const char chrome_ua_reduced[] =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.0.0 Safari/537.36";

/* A browser's analytics hit with every kind of identifying header. */
static const char hit[] =
    "POST /matomo.php HTTP/1.1\r\n"
    "Host: shop.example\r\n"
    "User-Agent: Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.5414.120 Safari/537.36\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: de-CH,de;q=0.9,en;q=0.8\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\n"
    "Content-Length: 0\r\n"
    "Origin: https://shop.example\r\n"
    "Referer: https://shop.example/cart?item=42&utm_source=news#top\r\n"
    "Cookie: _pk_id.1.1fff=3c2a9b8e1f0d4a5b.1700000000.; _pk_ses.1.1fff=1; consent=yes; "
    "_ga=GA1.2.123.456\r\n"
    "X-Forwarded-For: 198.51.100.23\r\n"
    "X-Real-IP: 198.51.100.23\r\n"
    "X-Device-Id: 5d41402abc4b2a76b9719d911017c592\r\n"
    "X-User-Id: alice@example.com\r\n"
    "X-Shop-Session: s-8f14e45fceea167a\r\n"
    "Sec-CH-UA: \"Chromium\";v=\"109\", \"Not_A Brand\";v=\"99\"\r\n"
    "Sec-CH-UA-Mobile: ?0\r\n"
    "Sec-CH-UA-Platform: \"Windows\"\r\n"
    "Sec-CH-UA-Model: \"\"\r\n"
    "Sec-CH-UA-Platform-Version: \"0.1.0\"\r\n"
    "Sec-CH-UA-Full-Version-List: \"Chromium\";v=\"109.0.5414.120\"\r\n"
    "Sec-CH-UA-Arch: \"x86\"\r\n"
    "Sec-CH-UA-Bitness: \"64\"\r\n"
    "Sec-CH-UA-WoW64: ?1\r\n"
    "DNT: 1\r\n"
    "Sec-GPC: 1\r\n"
    "\r\n";

static void test_strict_without_rules(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u}]\n");
    request(f, hit);
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);

    /* No client address, in any header. */
    assert_int_equal(count_fwd(f, "X-Forwarded-For"), 0);
    assert_int_equal(count_fwd(f, "X-Real-IP"), 0);
    /* The peer is still known, for geolocation and (truncated) logs. */
    char b[AP_IP_STRLEN];
    ap_ip_format(&f->res.client, b, sizeof(b));
    assert_string_equal(b, "203.0.113.77");
    ap_ip_format(&f->res.client_trunc, b, sizeof(b));
    assert_string_equal(b, "203.0.113.0");
    assert_int_equal(f->res.stop, AP_CLIENTADDR_STOP_PEER_UNTRUSTED);

    /* No cookie, no identifier, no header the allowlist does not name. */
    assert_int_equal(count_fwd(f, "Cookie"), 0);
    assert_int_equal(count_fwd(f, "X-Device-Id"), 0);
    assert_int_equal(count_fwd(f, "X-User-Id"), 0);
    assert_int_equal(count_fwd(f, "X-Shop-Session"), 0);

    /* The allowlist, unchanged. */
    assert_string_equal(FWD(f, "Accept"), "*/*");
    assert_string_equal(FWD(f, "Accept-Encoding"), "gzip, deflate, br");
    assert_string_equal(FWD(f, "Content-Type"), "application/x-www-form-urlencoded");
    assert_string_equal(FWD(f, "Origin"), "https://shop.example");
    assert_string_equal(FWD(f, "Sec-CH-UA"), "\"Chromium\";v=\"109\", \"Not_A Brand\";v=\"99\"");
    assert_string_equal(FWD(f, "Sec-CH-UA-Mobile"), "?0");
    assert_string_equal(FWD(f, "Sec-CH-UA-Platform"), "\"Windows\"");
    assert_string_equal(FWD(f, "DNT"), "1");
    assert_string_equal(FWD(f, "Sec-GPC"), "1");

    /* Reduced. */
    assert_string_equal(FWD(f, "User-Agent"), chrome_ua_reduced);
    assert_string_equal(FWD(f, "Accept-Language"), "de");
    /* Strict: an internal referrer is reduced to its origin. */
    assert_string_equal(FWD(f, "Referer"), "https://shop.example");

    /* High-entropy client hints are not in the allowlist. */
    static const char *const hints[] = {
        "Sec-CH-UA-Model", "Sec-CH-UA-Platform-Version", "Sec-CH-UA-Full-Version-List",
        "Sec-CH-UA-Arch", "Sec-CH-UA-Bitness", "Sec-CH-UA-WoW64",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(hints); i++)
        assert_int_equal(count_fwd(f, hints[i]), 0);

    /* Exactly the allowlisted headers leave, nothing was added. */
    size_t n = 0;
    for (size_t i = 0; i < f->req.nheaders; i++)
        n += forwarded(&f->req.headers[i]);
    assert_int_equal(n, 12);
    assert_int_equal(f->stats.requests, 1);
    assert_int_equal(f->stats.errors, 0);
    assert_int_equal(f->stats.actions[AP_AUDIT_ADDRESS][AP_ACT_DROP], 1);
    assert_int_equal(f->stats.actions[AP_AUDIT_HEADER][AP_ACT_REDUCE], 2);
}

static void test_strict_referrer(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u}, {upstream: u, privacy: {profile: balanced}}]\n");
    static const struct {
        const char *referer;
        const char *strict;   /* NULL: dropped */
        const char *balanced;
    } cases[] = {
        /* Internal: strict keeps the origin, balanced the cleaned URL. */
        { "https://shop.example/p/1?id=7&utm_campaign=w#x", "https://shop.example",
          "https://shop.example/p/1?utm_campaign=w" },
        { "https://SHOP.example:443/", "https://shop.example:443", "https://SHOP.example:443/" },
        /* External: strict drops it, balanced keeps the origin. */
        { "https://www.google.com/search?q=private+words", NULL, "https://www.google.com" },
        { "http://user:pw@evil.example/x", NULL, "http://evil.example" },
        /* An app's referrer is external too. */
        { "android-app://com.example.app/", NULL, "android-app://com.example.app" },
        /* Not a URL: dropped by both. */
        { "not a url", NULL, NULL },
        { "/relative/path?x=1", NULL, NULL },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        char raw[512];
        snprintf(raw, sizeof(raw),
                 "GET /p HTTP/1.1\r\nHost: shop.example\r\nReferer: %s\r\n\r\n",
                 cases[i].referer);
        for (size_t route = 0; route < 2; route++) {
            request(f, raw);
            assert_int_equal(rewrite(f, route, "192.0.2.1"), 0);
            const char *want = route == 0 ? cases[i].strict : cases[i].balanced;
            const char *got = FWD(f, "Referer");
            if (want == NULL && got != NULL)
                fail_msg("%s (route %zu): forwarded as '%s'", cases[i].referer, route, got);
            if (want != NULL)
                assert_non_null(got);
            if (want != NULL)
                assert_string_equal(got, want);
        }
    }
}

static void test_balanced_truncates(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy: {profile: balanced}\n"
            "  - upstream: u\n"
            "    privacy: {profile: balanced, truncate: {ipv4: 16, ipv6: 32}}\n");
    /* The inbound header comes from an untrusted peer: ignored, replaced. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n"
               "x-forwarded-for: 9.9.9.9\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "203.0.113.0");
    assert_int_equal(f->stats.actions[AP_AUDIT_ADDRESS][AP_ACT_TRUNCATE], 1);

    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "2001:db8:1234:5678:9abc::1"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "2001:db8:1234::");

    /* A dual-stack socket's IPv4-mapped peer is truncated as IPv4. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "::ffff:198.51.100.200"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "198.51.100.0");

    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    assert_int_equal(rewrite(f, 1, "203.0.113.77"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "203.0.0.0");
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_int_equal(rewrite(f, 1, "2001:db8:1234:5678::1"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "2001:db8::");
}

static void test_placeholder(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {client_address: placeholder}}]\n");
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "0.0.0.0");
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "2001:db8::1"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "0.0.0.0");
}

/* The pseudonym route `route` gives the address `peer` on `host`, at `now`. */
static void addr_pseudonym(struct fx *f, size_t route, const char *host, const char *peer,
                           int64_t now, char out[65])
{
    static char raw[256];
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
    request(f, raw);
    f->ctx.now = now;
    assert_int_equal(rewrite(f, route, peer), 0);
    f->ctx.now = NOW;
    const char *v = FWD(f, "X-Forwarded-For");
    assert_non_null(v);
    assert_true(strlen(v) < 65);
    memcpy(out, v, strlen(v) + 1);
}

static void test_pseudonymised_address(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - {name: a, upstream: u, privacy: {client_address: pseudonymise, site_id: a}}\n"
            "  - {name: b, upstream: u, privacy: {client_address: pseudonymise, site_id: b}}\n"
            "  - {name: host, upstream: u, privacy: {client_address: pseudonymise}}\n"
            "  - {name: long, upstream: u, privacy: {client_address: pseudonymise,\n"
            "     site_id: a, pseudonym_bits: 128}}\n");
    char p1[65], p2[65], p3[65];
    addr_pseudonym(f, 0, "x.example", "203.0.113.77", NOW, p1);
    assert_hex(p1, 16);
    /* Stable within the day and the scope: the Host does not matter once
     * site_id is set. */
    addr_pseudonym(f, 0, "y.example", "203.0.113.77", NOW - NOW % DAY, p2);
    assert_string_equal(p1, p2);
    addr_pseudonym(f, 0, "x.example", "203.0.113.77", NOW - NOW % DAY + DAY - 1, p2);
    assert_string_equal(p1, p2);
    /* Another day, another site, another address: unlinkable. */
    assert_int_equal(ap_pseudo_keyring_prepare(&f->kr, NOW + DAY), 0);
    addr_pseudonym(f, 0, "x.example", "203.0.113.77", NOW + DAY, p2);
    assert_hex(p2, 16);
    assert_string_not_equal(p1, p2);
    addr_pseudonym(f, 1, "x.example", "203.0.113.77", NOW, p2);
    assert_hex(p2, 16);
    assert_string_not_equal(p1, p2);
    addr_pseudonym(f, 0, "x.example", "203.0.113.78", NOW, p2);
    assert_string_not_equal(p1, p2);
    /* Without site_id the Host (without its port) is the scope. */
    addr_pseudonym(f, 2, "x.example", "203.0.113.77", NOW, p2);
    addr_pseudonym(f, 2, "x.example:8443", "203.0.113.77", NOW, p3);
    assert_string_equal(p2, p3);
    addr_pseudonym(f, 2, "y.example", "203.0.113.77", NOW, p3);
    assert_string_not_equal(p2, p3);
    /* So is an IPv6 literal's, brackets kept and port dropped. */
    addr_pseudonym(f, 2, "[2001:db8::1]", "203.0.113.77", NOW, p2);
    addr_pseudonym(f, 2, "[2001:db8::1]:8443", "203.0.113.77", NOW, p3);
    assert_string_equal(p2, p3);
    /* The length follows pseudonym_bits. */
    addr_pseudonym(f, 3, "x.example", "203.0.113.77", NOW, p2);
    assert_hex(p2, 32);

    /* Without a keyring nothing safe can be said: no header at all. */
    f->ctx.keyring = NULL;
    request(f, "GET / HTTP/1.1\r\nHost: x.example\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    assert_int_equal(count_fwd(f, "X-Forwarded-For"), 0);
}

static void test_trusted_proxies(void **state)
{
    struct fx *f = *state;
    load(f, "trusted_proxies: [10.0.0.0/8, \"::1\"]\n"
            "routes: [{upstream: u, privacy: {profile: balanced, truncate: {ipv4: 32}}}]\n");
    char b[AP_IP_STRLEN];

    /* Trusted peer: the chain is walked from the right to the first
     * untrusted hop; whatever the client wrote further left is ignored. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n"
               "X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.2.2.2\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "10.1.1.1"), 0);
    ap_ip_format(&f->res.client, b, sizeof(b));
    assert_string_equal(b, "198.51.100.7");
    assert_int_equal(f->res.stop, AP_CLIENTADDR_STOP_UNTRUSTED_HOP);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "198.51.100.7");

    /* Several header lines are one list. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 198.51.100.8\r\n"
               "X-Forwarded-For: 10.9.9.9\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "::1"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "198.51.100.8");

    /* Untrusted peer: its headers are the client's own words. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n"
               "X-Forwarded-For: 198.51.100.7, 10.2.2.2\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.9"), 0);
    ap_ip_format(&f->res.client, b, sizeof(b));
    assert_string_equal(b, "192.0.2.9");
    assert_int_equal(f->res.stop, AP_CLIENTADDR_STOP_PEER_UNTRUSTED);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "192.0.2.9");

    /* Forwarded (RFC 7239), when configured, and only then. */
    load(f, "trusted_proxies: 10.0.0.0/8\n"
            "client_address_headers: [forwarded]\n"
            "routes: [{upstream: u, privacy: {profile: balanced, truncate: {ipv4: 32}}}]\n");
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n"
               "X-Forwarded-For: 203.0.113.1\r\n"
               "Forwarded: for=198.51.100.9;proto=https, for=\"10.3.3.3:8080\"\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "10.1.1.1"), 0);
    assert_string_equal(FWD(f, "X-Forwarded-For"), "198.51.100.9");
    assert_int_equal(count_fwd(f, "Forwarded"), 0);
}

static void test_address_headers_removed(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      profile: balanced\n"
            "      address_header: X-Real-IP\n"
            "      remove_headers: [X-Original-Forwarded-For, X-Azure-ClientIP]\n"
            "      headers: {\"X-*\": keep, \"*-IP\": keep}\n");
    /* Even rules that would keep them cannot. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\n"
               "x-forwarded-for: 1.1.1.1\r\n"
               "X-REAL-IP: 1.1.1.2\r\n"
               "forwarded: for=1.1.1.3\r\n"
               "True-Client-Ip: 1.1.1.4\r\n"
               "cf-connecting-ip: 1.1.1.5\r\n"
               "FASTLY-CLIENT-IP: 1.1.1.6\r\n"
               "x-client-ip: 1.1.1.7\r\n"
               "X-Cluster-Client-IP: 1.1.1.8\r\n"
               "x-original-forwarded-for: 1.1.1.9\r\n"
               "X-AZURE-CLIENTIP: 1.1.1.10\r\n"
               "X-Other: kept\r\n"
               "\r\n");
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    static const char *const gone[] = {
        "X-Forwarded-For", "Forwarded", "True-Client-IP", "CF-Connecting-IP",
        "Fastly-Client-IP", "X-Client-IP", "X-Cluster-Client-IP", "X-Original-Forwarded-For",
        "X-Azure-ClientIP",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(gone); i++)
        if (count_fwd(f, gone[i]) != 0)
            fail_msg("%s was forwarded", gone[i]);
    /* The outbound address header is ours alone: set once, never appended. */
    assert_string_equal(FWD(f, "X-Real-IP"), "203.0.113.0");
    assert_string_equal(FWD(f, "X-Other"), "kept");
    for (size_t i = 0; i < f->req.nheaders; i++) {
        const struct ap_header *h = &f->req.headers[i];
        if (forwarded(h) && memmem(h->value.p, h->value.len, "1.1.1.", 6) != NULL)
            fail_msg("an inbound address leaked in %.*s", (int)h->name.len, h->name.p);
    }
}

static void test_identifier_headers(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      site_id: shop\n"
            "      headers:\n"
            "        X-Requested-With: keep\n"
            "        X-Device-Id: pseudonymise\n"
            "        X-Debug: drop\n"
            "        X-Proxy: { set: anonproxy }\n"
            "        User-Agent: keep\n"
            "        \"X-Shop-*\": origin-only\n");
    request(f, "GET / HTTP/1.1\r\nHost: shop.example\r\n"
               "User-Agent: Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like "
               "Gecko) Chrome/109.0.5414.120 Safari/537.36\r\n"
               "X-Requested-With: XMLHttpRequest\r\n"
               "X-Device-Id: 5d41402abc4b2a76b9719d911017c592\r\n"
               "X-Debug: 1\r\n"
               "X-Shop-Page: https://shop.example/p?uid=1\r\n"
               "X-User-Id: alice\r\n"
               "\r\n");
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    assert_string_equal(FWD(f, "X-Requested-With"), "XMLHttpRequest");
    /* A route rule comes before the profile's reduction. */
    assert_string_equal(FWD(f, "User-Agent"), chrome_ua);
    const char *dev = FWD(f, "X-Device-Id");
    assert_pattern(dev, "################");
    char first[17];
    memcpy(first, dev, 17);
    assert_int_equal(count_fwd(f, "X-Debug"), 0);
    assert_int_equal(count_fwd(f, "X-User-Id"), 0);
    assert_string_equal(FWD(f, "X-Shop-Page"), "https://shop.example");
    /* `set` adds a header the request did not have. */
    assert_string_equal(FWD(f, "X-Proxy"), "anonproxy");

    /* ... and replaces one it had; the pseudonym is stable. */
    request(f, "GET / HTTP/1.1\r\nHost: other.example\r\nX-Proxy: evil\r\n"
               "X-Device-Id: 5d41402abc4b2a76b9719d911017c592\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(FWD(f, "X-Proxy"), "anonproxy");
    assert_string_equal(FWD(f, "X-Device-Id"), first);
}

/* A client that names a header in Connection makes it hop-by-hop; a header
 * the policy sets must reach the backend all the same. */
static void test_set_header_named_by_connection(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {headers: {X-Proxy: {set: anonproxy}}}}]\n");
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Proxy\r\n"
               "X-Proxy: evil\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    const char *v = FWD(f, "X-Proxy");
    if (v == NULL)
        fail_msg("X-Proxy, set by the policy, was not forwarded");
    assert_string_equal(v, "anonproxy");
}

static void test_client_hints_kept_by_rule(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {headers: {Sec-CH-UA-Arch: keep, "
            "\"sec-ch-ua-*-version*\": keep}}}]\n");
    request(f, hit);
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(FWD(f, "Sec-CH-UA-Arch"), "\"x86\"");
    assert_string_equal(FWD(f, "Sec-CH-UA-Platform-Version"), "\"0.1.0\"");
    assert_string_equal(FWD(f, "Sec-CH-UA-Full-Version-List"),
                        "\"Chromium\";v=\"109.0.5414.120\"");
    assert_int_equal(count_fwd(f, "Sec-CH-UA-Model"), 0);
    assert_int_equal(count_fwd(f, "Sec-CH-UA-Bitness"), 0);
    assert_int_equal(count_fwd(f, "Sec-CH-UA-WoW64"), 0);
}

static void test_cookies(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      site_id: shop\n"
            "      cookies: {\"_pk_id*\": pseudonymise, consent: keep, \"_pk_ses*\": drop, "
            "\"_p*\": keep}\n");
    request(f, hit);
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_pattern(FWD(f, "Cookie"), "_pk_id.1.1fff=################; consent=yes");

    /* Nothing left: no Cookie header at all, rather than an empty one. */
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nCookie: _ga=1; sid=2\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_int_equal(count_fwd(f, "Cookie"), 0);

    /* No cookie rules (strict default): every cookie is dropped. */
    load(f, "routes: [{upstream: u}]\n");
    request(f, "GET / HTTP/1.1\r\nHost: a.example\r\nCookie: consent=yes\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_int_equal(count_fwd(f, "Cookie"), 0);
}

static void test_query(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      site_id: shop\n"
            "      query: {action_name: keep, \"secret*\": drop, ref: origin-only}\n"
            "      url_keep: [utm_source, mtm_campaign]\n"
            "  - upstream: u\n"
            "    privacy: {profile: balanced}\n");
    request(f, "GET /matomo.php?idsite=1&rec=1&action_name=Home&gclid=Cj0KCQ&fbclid=IwAR2x"
               "&msclkid=abc&ttclid=t1&dclid=d&uid=alice&_id=3c2a9b8e1f0d4a5b&cid=123.456"
               "&url=https%3A%2F%2Fshop.example%2Fp%3Fa%3D1%26utm_source%3Dnews%26gclid%3Dx"
               "%26mtm_campaign%3Dw%23frag&secret_token=x&cip=203.0.113.77"
               "&ref=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Dme HTTP/1.1\r\n"
               "Host: shop.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    char *t = target(f);
    /* Click ids are gone, whatever the rules. */
    static const char *const clicks[] = { "gclid", "fbclid", "msclkid", "ttclid", "dclid" };
    for (size_t i = 0; i < AP_ARRAY_SIZE(clicks); i++)
        if (strstr(t, clicks[i]) != NULL)
            fail_msg("%s forwarded in %s", clicks[i], t);
    /* Identifiers: pseudonyms; secret*: dropped; addresses: dropped
     * (strict); url: cleaned to url_keep; ref: its origin. */
    assert_pattern(t, "/matomo.php?idsite=1&rec=1&action_name=Home&uid=################"
                      "&_id=################&cid=################"
                      "&url=https%3A%2F%2Fshop.example%2Fp%3Futm_source%3Dnews%26mtm_campaign%3Dw"
                      "&ref=https%3A%2F%2Fwww.google.com");
    /* Path and query slices follow the new target. */
    assert_int_equal(f->req.path.len, strlen("/matomo.php"));
    assert_int_equal(f->req.query.p, f->req.target.p + strlen("/matomo.php?"));

    /* Balanced: an address parameter is truncated, not dropped. */
    request(f, "GET /c?cip=203.0.113.77&uip=2001%3Adb8%3A1%3A2%3A%3A1&e_c=x HTTP/1.1\r\n"
               "Host: shop.example\r\n\r\n");
    assert_int_equal(rewrite(f, 1, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/c?cip=203.0.113.0&uip=2001%3Adb8%3A1%3A%3A&e_c=x");

    /* Nothing left of the query: no '?'. */
    request(f, "GET /c?gclid=1&fbclid=2 HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/c");
    assert_null(f->req.query.p);
}

/* Strict: value detectors over kept parameters, whatever their names;
 * balanced keeps them unread. */
static void test_query_value_detectors(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "  - upstream: u\n"
            "    privacy: {profile: balanced}\n");
    const char *req = "GET /c?note=ann%40example.com&who=198.51.100.7&tel=%2B41791234567"
                      "&mac=00-1A-2B-3C-4D-5E&x=hello&n=42 HTTP/1.1\r\nHost: shop.example\r\n\r\n";
    request(f, req);
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_pattern(target(f), "/c?note=################&who=198.51.100.0&tel=################"
                              "&mac=################&x=hello&n=42");
    request(f, req);
    assert_int_equal(rewrite(f, 1, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/c?note=ann%40example.com&who=198.51.100.7&tel=%2B41791234567"
                                   "&mac=00-1A-2B-3C-4D-5E&x=hello&n=42");
    /* Cleaned URLs: a kept utm_* value that holds an e-mail goes too. */
    request(f, "GET /c?url=https%3A%2F%2Fshop.example%2Fp%3Futm_source%3Dnl-ann%2540example.com"
               "%26utm_medium%3Demail HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/c?url=https%3A%2F%2Fshop.example%2Fp%3Futm_medium%3Demail");
}

/* Without a keyring, every value to pseudonymise is dropped, never
 * forwarded as it came. */
static void test_no_keyring_drops(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {headers: {X-Device-Id: pseudonymise}, "
            "cookies: {\"_pk_id*\": pseudonymise, consent: keep}}}]\n");
    f->ctx.keyring = NULL;
    request(f, "GET /c?uid=alice&e_c=b HTTP/1.1\r\nHost: a.example\r\n"
               "X-Device-Id: d1\r\nCookie: _pk_id.1=abc; consent=yes\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_int_equal(count_fwd(f, "X-Device-Id"), 0);
    assert_string_equal(FWD(f, "Cookie"), "consent=yes");
    assert_null(strstr(target(f), "alice"));
    assert_string_equal(target(f), "/c?e_c=b");
}

/* Finds an audit entry; NULL when there is none. */
static const struct ap_audit_entry *audit_find(const struct fx *f, enum ap_audit_kind kind,
                                               const char *name)
{
    for (size_t i = 0; i < f->res.naudit; i++) {
        const struct ap_audit_entry *e = &f->res.audit[i];
        if (e->kind == kind && e->name.len == strlen(name) &&
            strncasecmp(e->name.p, name, e->name.len) == 0)
            return e;
    }
    return NULL;
}

/* Strict: identifiers in the target's path are cut out, also when the
 * target has no query, and audited; balanced keeps paths. */
static void test_path_identifiers(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "  - upstream: u\n"
            "    privacy: {profile: balanced}\n");
    f->ctx.audit = true;
    const char *req = "GET /u/ann%40example.com/orders HTTP/1.1\r\nHost: shop.example\r\n\r\n";
    request(f, req);
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/u/(redacted)/orders");
    assert_null(f->req.query.p);
    const struct ap_audit_entry *e = audit_find(f, AP_AUDIT_PATH, "email");
    assert_non_null(e);
    assert_int_equal(e->action, AP_ACT_REDACT);
    assert_true(f->stats.actions[AP_AUDIT_PATH][AP_ACT_REDACT] >= 1);
    request(f, req);
    assert_int_equal(rewrite(f, 1, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/u/ann%40example.com/orders");
    /* Nothing to find: the target is not even rewritten. */
    request(f, "GET /plain/path HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/plain/path");
    /* Tokens: a UUID in the path (no query) goes in strict, stays in balanced. */
    const char *uuid = "GET /users/123e4567-e89b-12d3-a456-426614174000/orders HTTP/1.1\r\n"
                       "Host: shop.example\r\n\r\n";
    request(f, uuid);
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/users/(redacted)/orders");
    e = audit_find(f, AP_AUDIT_PATH, "token");
    assert_non_null(e);
    assert_int_equal(e->action, AP_ACT_REDACT);
    request(f, uuid);
    assert_int_equal(rewrite(f, 1, "192.0.2.1"), 0);
    assert_string_equal(target(f), "/users/123e4567-e89b-12d3-a456-426614174000/orders");
}

/* The common header names are classified from a table built with the
 * header set: in any ASCII case, and for every one-byte change of them,
 * the table and the set agree, on profiles with and without globs. */
static void test_common_headers_agree(void **state)
{
    struct fx *f = *state;
    static const char *const names[] = {
        "accept", "accept-encoding", "accept-language", "user-agent", "referer", "origin", "cookie",
        "content-type", "content-encoding", "content-language", "dnt", "sec-gpc", "sec-ch-ua",
        "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-ch-ua-platform-version",
        "sec-ch-ua-full-version-list", "sec-ch-ua-full-version", "sec-ch-ua-model", "sec-ch-ua-arch",
        "sec-ch-ua-bitness", "sec-ch-ua-wow64", "sec-ch-ua-form-factors", "sec-fetch-site",
        "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "x-forwarded-for", "x-real-ip",
        "forwarded", "x-requested-with", "cache-control", "pragma", "priority", "if-none-match",
        "if-modified-since", "upgrade-insecure-requests", "authorization", "x-forwarded-proto",
        "x-forwarded-host", "x-device-id", "sec-ch-ua-x", "accept-charset"};
    load(f, "routes:\n"
            "  - upstream: u\n"
            "  - upstream: u\n"
            "    privacy: {profile: balanced, headers: {\"Sec-CH-UA-*\": keep, Priority: drop,\n"
            "              X-Requested-With: {set: x}}, remove_headers: [Cache-Control]}\n"
            "  - upstream: u\n"
            "    privacy: {headers: {\"*\": keep}}\n");
    unsigned agreed = 0;
    for (size_t route = 0; route < f->cfg->nroutes; route++) {
        const struct ap_policy *pol = f->cfg->routes[route].policy;
        for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++) {
            size_t len = strlen(names[i]);
            char v[40];
            for (int variant = 0; variant < 4; variant++) {
                for (size_t k = 0; k < len; k++) {
                    char c = names[i][k];
                    bool up = variant == 1 || (variant == 2 && k % 2) || (variant == 3 && k % 3 == 0);
                    v[k] = up && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
                }
                struct ap_slice n = {v, len};
                assert_int_equal(ap_policy__header_class(pol, n, true), ap_policy__header_class(pol, n, false));
                agreed++;
                /* Every one-byte change, to a byte 0x20 away or to '-', 'a'. */
                for (size_t k = 0; k < len; k++) {
                    char keep = v[k];
                    static const char repl[] = {'-', 'a', 'Z', '_'};
                    for (size_t r = 0; r < 5; r++) {
                        v[k] = r < 4 ? repl[r] : (char)(keep ^ 0x20);
                        assert_int_equal(ap_policy__header_class(pol, n, true),
                                         ap_policy__header_class(pol, n, false));
                    }
                    v[k] = keep;
                }
            }
        }
    }
    assert_true(agreed > 300);
    /* And the table does decide them: a rule the route names. */
    const struct ap_policy *pol = f->cfg->routes[1].policy;
    int32_t k = ap_policy__header_class(pol, (struct ap_slice){"PRIORITY", 8}, true);
    assert_true(k >= 0);
    assert_int_equal(pol->headers[k].action, AP_HDR_DROP);
    assert_int_equal(ap_policy__header_class(pol, (struct ap_slice){"Cache-Control", 13}, true), -2);
    assert_int_equal(ap_policy__header_class(pol, (struct ap_slice){"X-Forwarded-For", 15}, true), -2);
}

/* Pseudonyms are computed in pairs once their place is known: each one
 * reaching the request, from the query, a cookie, a header and a value the
 * detectors caught, is exactly ap_pseudo_hex's, with nothing left of the
 * placeholder, for every count of them. */
static void test_pseudonyms_exact(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {headers: {X-Device-Id: pseudonymise}, "
            "cookies: {\"_pk_id*\": pseudonymise}}}]\n");
    const struct ap_policy *pol = f->cfg->routes[0].policy;
    struct ap_slice scope = {"shop.example", 12};
    char want[6][AP_PSEUDO_HEX_MAX];
    const char *vals[6] = {"alice", "c1", "u7", "d-1", "ann@example.com", "bob"};
    for (int i = 0; i < 6; i++)
        assert_true(ap_pseudo_hex(&f->kr, NOW, scope, (struct ap_slice){vals[i], strlen(vals[i])},
                                  pol->pseudo_bits, want[i], sizeof(want[i])) > 0);
    /* ann%40example.com is decoded before it is pseudonymised. */
    request(f, "GET /c?uid=alice&cid=c1&x=1&note=ann%40example.com HTTP/1.1\r\nHost: shop.example\r\n"
               "Cookie: _pk_id.1=u7\r\nX-Device-Id: d-1\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    char t[320];
    snprintf(t, sizeof(t), "/c?uid=%s&cid=%s&x=1&note=", want[0], want[1]);
    assert_int_equal(strncmp(target(f), t, strlen(t)), 0);
    char c[96];
    snprintf(c, sizeof(c), "_pk_id.1=%s", want[2]);
    assert_string_equal(FWD(f, "Cookie"), c);
    assert_string_equal(FWD(f, "X-Device-Id"), want[3]);
    /* An odd count: one alone, flushed at the end. */
    request(f, "GET /c?uid=bob HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    snprintf(t, sizeof(t), "/c?uid=%s", want[5]);
    assert_string_equal(target(f), t);
}

static void test_audit(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - name: collect\n"
            "    upstream: u\n"
            "    privacy:\n"
            "      profile: balanced\n"
            "      headers: {X-Device-Id: pseudonymise}\n"
            "      cookies: {consent: keep}\n");
    request(f, "GET /c?gclid=1&uid=a&e_c=b HTTP/1.1\r\nHost: a.example\r\n"
               "User-Agent: curl/8.0\r\nX-Device-Id: d1\r\nX-Forwarded-For: 1.1.1.1\r\n"
               "X-Secret: s\r\nCookie: consent=1; _ga=2\r\n\r\n");

    /* Off: nothing recorded. */
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    assert_int_equal(f->res.naudit, 0);
    assert_null(f->res.audit);

    request(f, "GET /c?gclid=1&uid=a&e_c=b HTTP/1.1\r\nHost: a.example\r\n"
               "User-Agent: curl/8.0\r\nX-Device-Id: d1\r\nX-Forwarded-For: 1.1.1.1\r\n"
               "X-Secret: s\r\nCookie: consent=1; _ga=2\r\n\r\n");
    f->ctx.audit = 1;
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    f->ctx.audit = 0;
    static const struct {
        enum ap_audit_kind kind;
        const char *name;
        enum ap_audit_action action;
        const char *rule;
    } want[] = {
        { AP_AUDIT_ADDRESS, "", AP_ACT_TRUNCATE, "client_address: truncate" },
        { AP_AUDIT_HEADER, "X-Forwarded-For", AP_ACT_DROP, "client address header" },
        { AP_AUDIT_HEADER, "X-Secret", AP_ACT_DROP, "not in the allowlist" },
        { AP_AUDIT_HEADER, "X-Device-Id", AP_ACT_PSEUDO, "route collect" },
        { AP_AUDIT_HEADER, "User-Agent", AP_ACT_REDUCE, "profile balanced" },
        { AP_AUDIT_COOKIE, "consent", AP_ACT_KEEP, "cookie rules" },
        { AP_AUDIT_COOKIE, "_ga", AP_ACT_DROP, "cookie rules" },
        { AP_AUDIT_PARAM, "gclid", AP_ACT_DROP, "click id" },
        { AP_AUDIT_PARAM, "uid", AP_ACT_PSEUDO, "query rules" },
        { AP_AUDIT_PARAM, "e_c", AP_ACT_KEEP, "default" },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(want); i++) {
        const struct ap_audit_entry *e = audit_find(f, want[i].kind, want[i].name);
        if (e == NULL)
            fail_msg("no audit entry for %s %s", ap_audit_kind_name(want[i].kind), want[i].name);
        assert_string_equal(ap_audit_action_name(e->action),
                            ap_audit_action_name(want[i].action));
        assert_string_equal(e->rule, want[i].rule);
    }
    assert_true(f->res.naudit <= f->res.capaudit);
}

/* The audit tells what happened to each parameter as received (still
 * percent-encoded), however its name is spelt. */
static void test_audit_param_names(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {query: {\"long*\": drop}}}]\n");
    static char raw[1024];
    char longname[301];
    memset(longname, 'a', sizeof(longname) - 1);
    memcpy(longname, "long", 4);
    longname[300] = '\0';
    /* "gc%256Cid" is "gc%6Cid" once decoded: not a click id, kept. */
    snprintf(raw, sizeof(raw),
             "GET /c?gc%%256Cid=1&%%67clid=2&%s=3 HTTP/1.1\r\nHost: a.example\r\n\r\n",
             longname);
    request(f, raw);
    f->ctx.audit = 1;
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    f->ctx.audit = 0;
    assert_string_equal(target(f), "/c?gc%256Cid=1");
    const struct ap_audit_entry *e = audit_find(f, AP_AUDIT_PARAM, "gc%256Cid");
    assert_non_null(e);
    assert_string_equal(ap_audit_action_name(e->action), "keep");
    e = audit_find(f, AP_AUDIT_PARAM, "%67clid");
    assert_non_null(e);
    assert_string_equal(ap_audit_action_name(e->action), "drop");
    assert_string_equal(e->rule, "click id");
    e = audit_find(f, AP_AUDIT_PARAM, longname);
    assert_non_null(e);
    assert_string_equal(ap_audit_action_name(e->action), "drop");
    assert_string_equal(e->rule, "query rules");
}

/* Every arena size too small for the rewrite gives -ENOMEM, never a
 * half-rewritten request reported as success; a large enough one gives
 * the same result as an unbounded arena. */
static void test_arena_exhaustion(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      profile: balanced\n"
            "      client_address: pseudonymise\n"
            "      headers: {X-Device-Id: pseudonymise, X-Proxy: {set: p}}\n"
            "      cookies: {\"_pk_id*\": pseudonymise}\n");
    static const char raw[] =
        "GET /matomo.php?idsite=1&uid=alice&gclid=x&url=https%3A%2F%2Fshop.example%2F%3Fa%3D1 "
        "HTTP/1.1\r\n"
        "Host: shop.example\r\n"
        "User-Agent: Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/109.0.5414.120 Safari/537.36\r\n"
        "Accept-Language: de-CH,de;q=0.9\r\n"
        "Referer: https://shop.example/cart?item=42\r\n"
        "Cookie: _pk_id.1.1fff=3c2a9b8e1f0d4a5b; consent=yes\r\n"
        "X-Device-Id: d1\r\n"
        "\r\n";
    request(f, raw);
    f->ctx.audit = 1;
    assert_int_equal(rewrite(f, 0, "203.0.113.77"), 0);
    char *ref_target = strdup(target(f));
    char ref_cookie[256];
    snprintf(ref_cookie, sizeof(ref_cookie), "%s", FWD(f, "Cookie"));

    int succeeded = 0;
    unsigned failures = 0;
    struct ap_arena small;
    for (size_t cap = 1; cap < 64 * 1024 && !succeeded; cap += 8) {
        ap_arena_init(&small, 256, cap);
        f->ctx.arena = &small;
        request(f, raw);
        struct ap_ip peer;
        ap_ip_parse(&peer, "203.0.113.77", 12);
        uint64_t errors = f->stats.errors;
        int rc = ap_engine_rewrite(f->cfg->routes[0].policy, &f->ctx, &peer, &f->req, &f->res);
        if (rc == 0) {
            succeeded = 1;
            assert_string_equal(target(f), ref_target);
            assert_string_equal(FWD(f, "Cookie"), ref_cookie);
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(f->stats.errors, errors + 1);
            failures++;
        }
        ap_arena_free(&small);
    }
    f->ctx.arena = &f->arena;
    f->ctx.audit = 0;
    assert_true(succeeded);
    assert_true(failures > 0);
    free(ref_target);
}

/* Header rules are compiled (literal names by hash, globs in order) by
 * ap_policy_finish: the first matching rule still wins, names compare
 * case-insensitively, route rules come before the profile's, and a rule
 * added after ap_policy_finish is still honoured. */
static void test_header_rules_compiled(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      headers: {\"x-*\": drop, x-keep: keep, accept: drop, \"Sec-CH-UA-?odel\": keep, "
            "dnt: {set: \"0\"}}\n");
    request(f, "GET /c HTTP/1.1\r\nHost: a.example\r\nX-Keep: 1\r\nACCEPT: */*\r\n"
               "accept-encoding: gzip\r\nSec-CH-UA-Model: \"m\"\r\nSEC-CH-UA-MODELS: x\r\n"
               "Dnt: 1\r\nuser-agent: curl/8.0\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_null(FWD(f, "X-Keep"));             /* "x-*" was added first */
    assert_null(FWD(f, "Accept"));             /* the route's rule before the profile's */
    assert_string_equal(FWD(f, "Accept-Encoding"), "gzip");
    assert_string_equal(FWD(f, "Sec-CH-UA-Model"), "\"m\"");
    assert_null(FWD(f, "Sec-CH-UA-Models"));
    assert_string_equal(FWD(f, "DNT"), "0");
    assert_string_equal(FWD(f, "User-Agent"), "curl/8");

    /* A rule added after ap_policy_finish. */
    struct ap_policy pol;
    assert_int_equal(ap_policy_init(&pol, "late", AP_PROFILE_STRICT), 0);
    assert_int_equal(ap_policy_finish(&pol), 0);
    assert_int_equal(ap_policy_add_header_rule(&pol, "X-Late", AP_HDR_KEEP, NULL), 0);
    request(f, "GET /c HTTP/1.1\r\nHost: a.example\r\nx-late: 1\r\nAccept: */*\r\n\r\n");
    struct ap_ip ip;
    ap_ip_parse(&ip, "192.0.2.1", 9);
    assert_int_equal(ap_engine_rewrite(&pol, &f->ctx, &ip, &f->req, &f->res), 0);
    assert_string_equal(FWD(f, "X-Late"), "1");
    assert_string_equal(FWD(f, "Accept"), "*/*");
    /* Cookie, query and url_keep rules added late are honoured too (their
     * arrays may move: the policies follow them). */
    for (int i = 0; i < 20; i++)
        assert_int_equal(ap_policy_add_cookie_rule(&pol, i ? "pad*" : "late", AP_COOKIE_KEEP), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ap_policy_add_query_rule(&pol, i ? "pad*" : "late", AP_QUERY_DROP), 0);
    assert_int_equal(ap_policy_add_url_keep(&pol, "k"), 0);
    request(f, "GET /c?late=1&url=%2Fp%3Fk%3D1%26utm_source%3D2&x=3 HTTP/1.1\r\nHost: a.example\r\n"
               "Cookie: late=1; other=2\r\n\r\n");
    assert_int_equal(ap_engine_rewrite(&pol, &f->ctx, &ip, &f->req, &f->res), 0);
    assert_string_equal(FWD(f, "Cookie"), "late=1");
    assert_string_equal(target(f), "/c?url=%2Fp%3Fk%3D1&x=3");
    ap_policy_free(&pol);
}

/* Inbound client-address headers are removed before any rule is asked,
 * whether they are named by the resolver, by remove_headers or as the
 * outbound address header, also when a rule would keep them; and so are
 * those added to remove_headers after ap_policy_finish. */
static void test_removed_before_rules(void **state)
{
    struct fx *f = *state;
    load(f, "routes:\n"
            "  - upstream: u\n"
            "    privacy:\n"
            "      profile: balanced\n"
            "      address_header: X-Client-Address\n"
            "      remove_headers: [X-Azure-ClientIP]\n"
            "      headers: {\"X-*\": keep, \"*\": keep}\n");
    request(f, "GET /c HTTP/1.1\r\nHost: a.example\r\nX-Real-IP: 1.1.1.1\r\n"
               "x-azure-clientip: 2.2.2.2\r\nX-CLIENT-ADDRESS: 3.3.3.3\r\nX-Other: 4\r\n"
               "Forwarded: for=5.5.5.5\r\nVia: 1.1 p\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_null(FWD(f, "X-Real-IP"));
    assert_null(FWD(f, "X-Azure-ClientIP"));
    assert_null(FWD(f, "Forwarded"));
    assert_string_equal(FWD(f, "X-Client-Address"), "192.0.2.0"); /* ours, not the client's */
    assert_string_equal(FWD(f, "X-Other"), "4");
    assert_string_equal(FWD(f, "Via"), "1.1 p");

    struct ap_policy *pol = f->cfg->routes[0].policy;
    assert_int_equal(ap_policy_add_remove_header(pol, "via"), 0);
    request(f, "GET /c HTTP/1.1\r\nHost: a.example\r\nVia: 1.1 p\r\nX-Other: 4\r\n\r\n");
    assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
    assert_null(FWD(f, "Via"));
    assert_string_equal(FWD(f, "X-Other"), "4");

    /* A removed name is an exact name, even with a glob character in it. */
    struct ap_policy own;
    assert_int_equal(ap_policy_init(&own, "exact", AP_PROFILE_BALANCED), 0);
    assert_int_equal(ap_policy_add_header_rule(&own, "X-*", AP_HDR_KEEP, NULL), 0);
    assert_int_equal(ap_policy_add_remove_header(&own, "X-R*"), 0);
    assert_int_equal(ap_policy_finish(&own), 0);
    request(f, "GET /c HTTP/1.1\r\nHost: a.example\r\nX-Real: 1\r\nX-Real-IP: 2\r\n\r\n");
    struct ap_ip ip;
    ap_ip_parse(&ip, "192.0.2.1", 9);
    assert_int_equal(ap_engine_rewrite(&own, &f->ctx, &ip, &f->req, &f->res), 0);
    assert_string_equal(FWD(f, "X-Real"), "1");
    assert_null(FWD(f, "X-Real-IP"));
    ap_policy_free(&own);
}

/* The query is walked once: the audit and the counters come from the
 * rewrite's own decisions, one entry per parameter in received order, also
 * when the rewrite is tried again in a larger buffer. */
static void test_audit_params_once(void **state)
{
    struct fx *f = *state;
    load(f, "routes: [{upstream: u, privacy: {query: {\"k*\": drop, url: clean-url}}}]\n");
    static char raw[4096];
    char slashes[601];
    memset(slashes, '/', sizeof(slashes) - 1);
    slashes[600] = '\0';
    static const char *const names[] = {"a", "kx", "%67clid", "uid", "url", "e_c", "K"};
    static const char *const rules[] = {"default", "query rules", "click id", "query rules",
                                        "query rules", "default", "default"};
    static const enum ap_audit_action acts[] = {AP_ACT_KEEP, AP_ACT_DROP, AP_ACT_DROP, AP_ACT_PSEUDO,
                                                AP_ACT_CLEAN, AP_ACT_KEEP, AP_ACT_KEEP};
    for (int big = 0; big < 2; big++) {
        /* The big URL's slashes come back as "%2F": three times longer than
         * the target, past the first buffer the engine tries. */
        snprintf(raw, sizeof(raw),
                 "GET /c?a=1&kx=2&&%%67clid=3&uid=4&url=http://h/%s&e_c=5&K HTTP/1.1\r\n"
                 "Host: a.example\r\n\r\n",
                 big ? slashes : "p");
        request(f, raw);
        memset(&f->stats, 0, sizeof(f->stats));
        f->ctx.audit = 1;
        assert_int_equal(rewrite(f, 0, "192.0.2.1"), 0);
        f->ctx.audit = 0;
        if (big)
            assert_true(f->req.target.len > 3 * 600);
        size_t k = 0;
        for (size_t i = 0; i < f->res.naudit; i++) {
            const struct ap_audit_entry *e = &f->res.audit[i];
            if (e->kind != AP_AUDIT_PARAM)
                continue;
            assert_true(k < AP_ARRAY_SIZE(names));
            assert_int_equal(e->name.len, strlen(names[k]));
            assert_memory_equal(e->name.p, names[k], e->name.len);
            assert_string_equal(ap_audit_action_name(e->action), ap_audit_action_name(acts[k]));
            assert_string_equal(e->rule, rules[k]);
            k++;
        }
        assert_int_equal(k, AP_ARRAY_SIZE(names));
        uint64_t counted = 0;
        for (int a = 0; a < AP_ACT_NACTIONS; a++)
            counted += f->stats.actions[AP_AUDIT_PARAM][a];
        assert_int_equal(counted, AP_ARRAY_SIZE(names));
        assert_int_equal(f->stats.actions[AP_AUDIT_PARAM][AP_ACT_KEEP], 3);
        assert_int_equal(f->stats.actions[AP_AUDIT_PARAM][AP_ACT_DROP], 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_strict_without_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict_referrer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_balanced_truncates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placeholder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pseudonymised_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trusted_proxies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_headers_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identifier_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_header_named_by_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_hints_kept_by_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_value_detectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_identifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_common_headers_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pseudonyms_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_keyring_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_param_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_exhaustion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_rules_compiled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_params_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_before_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of proxy/engine/query.c: actions, click ids, globs, encoded
 * names and separators, malformed escapes, URLs in parameters, referrers,
 * targets, small buffers and long inputs. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/detect.h"
#include "anonproxy/query.h"

/* Test pseudonymiser: "p" and 8 hex digits of an FNV-1a hash of the value;
 * "fail" cannot be pseudonymised; "amp" gives bytes that need encoding. */
static int fake_pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    int *calls = ctx;
    if (calls)
        (*calls)++;
    if (len == 4 && memcmp(val, "fail", 4) == 0)
        return -EINVAL;
    if (len == 3 && memcmp(val, "amp", 3) == 0) {
        if (outcap < 5)
            return -ENOBUFS;
        memcpy(out, "x&y=z", 5);
        return 5;
    }
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)val[k]) * 16777619u;
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), "p%08x", h);
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, tmp, (size_t)n);
    return n;
}

static const char *pseudo_of(const char *v)
{
    static char buf[32];
    int n = fake_pseudo(NULL, v, strlen(v), buf, sizeof(buf) - 1);
    buf[n] = '\0';
    return buf;
}

/* Test IP truncator: dotted quads lose their last octet, anything else
 * fails. */
static int fake_ip(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    const char *dot = NULL;
    for (size_t k = 0; k < len; k++) {
        if (val[k] == '.')
            dot = val + k;
        else if (val[k] < '0' || val[k] > '9')
            return -EINVAL;
    }
    if (dot == NULL)
        return -EINVAL;
    size_t keep = (size_t)(dot - val) + 1;
    if (keep + 1 > outcap)
        return -ENOBUFS;
    memcpy(out, val, keep);
    out[keep] = '0';
    return (int)keep + 1;
}

struct fixture {
    struct ap_query_policy policy;
    struct ap_query_ctx ctx;
};

static struct fixture fx;

/* Every test runs twice: on policies as built (each rule's glob matched in
 * turn) and compiled (ap_query_policy_compile): the results must be the
 * same. */
static bool compiled;

static void maybe_compile(void)
{
    if (compiled)
        assert_int_equal(ap_query_policy_compile(&fx.policy), 0);
}

static void reset_policy(void)
{
    if (fx.policy.magic == AP_QUERY_POLICY_MAGIC)
        ap_query_policy_release(&fx.policy);
    ap_query_policy_init(&fx.policy);
}

static void setup_ctx(const struct ap_query_rule *rules, size_t nrules, enum ap_query_action dflt)
{
    reset_policy();
    fx.policy.rules = rules;
    fx.policy.nrules = nrules;
    fx.policy.default_action = dflt;
    maybe_compile();
    memset(&fx.ctx, 0, sizeof(fx.ctx));
    fx.ctx.policy = &fx.policy;
    fx.ctx.pseudo.fn = fake_pseudo;
    fx.ctx.truncate_ip.fn = fake_ip;
    fx.ctx.site_host = "shop.example";
    fx.ctx.site_host_len = strlen("shop.example");
}

static char obuf[1 << 16];

static const char *rw(const char *q)
{
    size_t n = 777;
    int rc = ap_query_rewrite(&fx.ctx, q, strlen(q), obuf, sizeof(obuf), &n);
    assert_int_equal(rc, 0);
    assert_int_equal(n, strlen(obuf));
    return obuf;
}

static const char *rw_target(const char *t)
{
    size_t n;
    assert_int_equal(ap_query_rewrite_target(&fx.ctx, t, strlen(t), obuf, sizeof(obuf), &n), 0);
    assert_int_equal(n, strlen(obuf));
    return obuf;
}

static const char *rw_url(const char *u)
{
    size_t n;
    assert_int_equal(ap_query_rewrite_url(&fx.ctx, u, strlen(u), obuf, sizeof(obuf), &n), 0);
    assert_int_equal(n, strlen(obuf));
    return obuf;
}

static const char *origin(const char *u)
{
    size_t n;
    assert_int_equal(ap_query_origin(u, strlen(u), obuf, sizeof(obuf), &n), 0);
    assert_int_equal(n, strlen(obuf));
    return obuf;
}

static const char *referrer(const char *u)
{
    size_t n;
    assert_int_equal(ap_query_referrer(&fx.ctx, u, strlen(u), obuf, sizeof(obuf), &n), 0);
    assert_int_equal(n, strlen(obuf));
    return obuf;
}

static void test_keep_and_separators(void **state)
{
    (void)state;
    setup_ctx(NULL, 0, AP_QUERY_KEEP);
    assert_string_equal(rw("a=1&b=2"), "a=1&b=2");
    assert_string_equal(rw(""), "");
    assert_string_equal(rw("a&&b"), "a&b");
    assert_string_equal(rw("&a"), "a");
    assert_string_equal(rw("a&"), "a");
    assert_string_equal(rw("&&&"), "");
    assert_string_equal(rw("a=&b="), "a=&b=");
    assert_string_equal(rw("=x"), "=x");
    assert_string_equal(rw("a==b"), "a==b");
    assert_string_equal(rw("a=1;gclid=2"), "a=1;gclid=2"); /* ';' is not a separator */
    /* Encoded separators stay inside values and names. */
    assert_string_equal(rw("a=x%26gclid%3Dy&b%3Dc=1"), "a=x%26gclid%3Dy&b%3Dc=1");
    /* Malformed escapes are kept byte for byte. */
    assert_string_equal(rw("a=%zz&b=%4&%g=1&c=%"), "a=%zz&b=%4&%g=1&c=%");
    /* Encodings of kept parameters are not normalised. */
    assert_string_equal(rw("q=a%2fb+c%2Fd&%75tm=1"), "q=a%2fb+c%2Fd&%75tm=1");
}

static void test_click_ids(void **state)
{
    (void)state;
    setup_ctx(NULL, 0, AP_QUERY_KEEP);
    static const char *const ids[] = {"gclid", "dclid", "gbraid", "wbraid", "fbclid",
                                      "msclkid", "ttclid", "twclid", "li_fat_id", "mc_eid",
                                      "_hsenc", "mkt_tok", "igshid", "yclid"};
    for (size_t k = 0; k < AP_ARRAY_SIZE(ids); k++) {
        char q[128];
        snprintf(q, sizeof(q), "a=1&%s=XYZ&b=2&%s", ids[k], ids[k]);
        assert_string_equal(rw(q), "a=1&b=2");
        assert_true(ap_query_is_click_id(ids[k], strlen(ids[k])));
    }
    /* Case-insensitive and compared after decoding. */
    assert_string_equal(rw("GCLID=1&FbClId=2&%67clid=3&%47%43%4C%49%44=4&x=5"), "x=5");
    assert_false(ap_query_is_click_id("gclidx", 6));
    assert_false(ap_query_is_click_id("xgclid", 6));
    /* Even an explicit keep rule does not keep a click id. */
    static const struct ap_query_rule keep_all[] = {{"*", AP_QUERY_KEEP}, {"gclid", AP_QUERY_KEEP}};
    setup_ctx(keep_all, 2, AP_QUERY_KEEP);
    assert_string_equal(rw("gclid=1&a=2"), "a=2");
    assert_int_equal(ap_query_action_for(&fx.policy, "gclid", 5), AP_QUERY_DROP);
}

static void test_rules_and_globs(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {
        {"utm_*", AP_QUERY_KEEP},
        {"_ga*", AP_QUERY_DROP},
        {"page", AP_QUERY_KEEP},
        {"id?", AP_QUERY_KEEP},
        {"", AP_QUERY_KEEP},
    };
    setup_ctx(rules, AP_ARRAY_SIZE(rules), AP_QUERY_DROP);
    assert_string_equal(rw("utm_source=x&_ga=1&_gat_UA=2&q=3&page=4"), "utm_source=x&page=4");
    /* Names are case-sensitive. */
    assert_string_equal(rw("UTM_source=x&Page=1&page=2"), "page=2");
    /* '?' is exactly one byte. */
    assert_string_equal(rw("id=1&id1=2&id12=3"), "id1=2");
    /* Names are compared decoded, kept encoded. */
    assert_string_equal(rw("%75tm_x=1&utm%5Fy=2&pag%65=3"), "%75tm_x=1&utm%5Fy=2&pag%65=3");
    /* The empty name has its own rule. */
    assert_string_equal(rw("=x&y"), "=x");
    /* Duplicates: the rule applies to each. */
    assert_string_equal(rw("page=1&q=2&page=3&page"), "page=1&page=3&page");
    /* First match wins. */
    static const struct ap_query_rule order[] = {{"a*", AP_QUERY_DROP}, {"ab", AP_QUERY_KEEP}};
    setup_ctx(order, 2, AP_QUERY_KEEP);
    assert_string_equal(rw("ab=1&b=2"), "b=2");
    assert_int_equal(ap_query_action_for(&fx.policy, "ab", 2), AP_QUERY_DROP);
    assert_int_equal(ap_query_action_for(&fx.policy, "zz", 2), AP_QUERY_KEEP);
    /* Long names take the decoding matcher instead of the stack copy. */
    static const struct ap_query_rule long_rules[] = {{"utm_*z", AP_QUERY_KEEP}, {"*", AP_QUERY_DROP}};
    setup_ctx(long_rules, 2, AP_QUERY_KEEP);
    char longq[700];
    memcpy(longq, "utm_", 4);
    memset(longq + 4, 'a', 300);
    memcpy(longq + 304, "%7A=1&", 6);
    memcpy(longq + 310, "utm_", 4);
    memset(longq + 314, 'b', 300);
    memcpy(longq + 614, "=2", 3);
    char wantq[400];
    memcpy(wantq, longq, 309);
    wantq[309] = '\0';
    assert_string_equal(rw(longq), wantq);
    assert_int_equal(ap_query_action_for(&fx.policy, longq, 307), AP_QUERY_KEEP);
    assert_int_equal(ap_query_action_for(&fx.policy, longq + 310, 304), AP_QUERY_DROP);
    /* '+' in a name is a space. */
    static const struct ap_query_rule space_rules[] = {{"a b", AP_QUERY_DROP}};
    setup_ctx(space_rules, 1, AP_QUERY_KEEP);
    assert_string_equal(rw("a+b=1&a%20b=2&a_b=3"), "a_b=3");
    /* An action the engine does not know is dropped. */
    static const struct ap_query_rule bogus[] = {{"x", (enum ap_query_action)77}};
    setup_ctx(bogus, 1, AP_QUERY_KEEP);
    assert_string_equal(rw("x=1&y=2"), "y=2");
}

static void test_pseudo(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"uid", AP_QUERY_PSEUDO}, {"ip", AP_QUERY_TRUNCATE_IP}};
    setup_ctx(rules, 2, AP_QUERY_KEEP);
    char want[256];
    snprintf(want, sizeof(want), "uid=%s&a=1", pseudo_of("abc"));
    assert_string_equal(rw("uid=abc&a=1"), want);
    /* The callback gets the decoded value, '+' as a space. */
    snprintf(want, sizeof(want), "uid=%s", pseudo_of("a@b c"));
    assert_string_equal(rw("uid=a%40b+c"), want);
    assert_string_equal(rw("uid=a%40b%20c"), want);
    /* Duplicates are pseudonymised one by one. */
    char p1[32], p2[32];
    snprintf(p1, sizeof(p1), "%s", pseudo_of("1"));
    snprintf(p2, sizeof(p2), "%s", pseudo_of("2"));
    snprintf(want, sizeof(want), "uid=%s&uid=%s", p1, p2);
    assert_string_equal(rw("uid=1&uid=2"), want);
    /* No value: nothing to pseudonymise. */
    assert_string_equal(rw("uid&uid=&a=1"), "uid&uid=&a=1");
    /* A failing callback drops the parameter, wherever it is. */
    assert_string_equal(rw("uid=fail&a=1"), "a=1");
    assert_string_equal(rw("a=1&uid=fail"), "a=1");
    assert_string_equal(rw("a=1&uid=fail&b=2"), "a=1&b=2");
    /* The callback's output is percent-encoded. */
    assert_string_equal(rw("uid=amp"), "uid=x%26y%3Dz");
    /* Without a callback the parameter is dropped. */
    fx.ctx.pseudo.fn = NULL;
    assert_string_equal(rw("uid=abc&a=1"), "a=1");
    /* IP truncation. */
    assert_string_equal(rw("ip=192.168.1.77&a=1"), "ip=192.168.1.0&a=1");
    assert_string_equal(rw("ip=192%2E168%2E1%2E77"), "ip=192.168.1.0");
    assert_string_equal(rw("ip=notanip&a=1"), "a=1");
    fx.ctx.truncate_ip.fn = NULL;
    assert_string_equal(rw("ip=192.168.1.77&a=1"), "a=1");
}

static void test_clean_url(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"dl", AP_QUERY_CLEAN_URL}, {"url", AP_QUERY_CLEAN_URL}};
    setup_ctx(rules, 2, AP_QUERY_KEEP);
    assert_string_equal(
        rw("v=2&dl=https%3A%2F%2Fex.com%2Fp%3Futm_source%3Dnews%26id%3D5%26gclid%3Dx%23frag&tid=1"),
        "v=2&dl=https%3A%2F%2Fex.com%2Fp%3Futm_source%3Dnews&tid=1");
    /* Unencoded characters in the value are encoded on the way out; the
     * value is decoded once, so "%20" in it is a space of the URL. */
    assert_string_equal(rw("url=https://ex.com/a b?utm_medium=m%20x"),
                        "url=https%3A%2F%2Fex.com%2Fa%20b%3Futm_medium%3Dm%20x");
    /* Userinfo goes, port and path stay, nothing left: no '?'. */
    assert_string_equal(rw("dl=https%3A%2F%2Fuser%3Apw%40ex.com%3A8443%2Fa%2Fb%3Fsid%3D1"),
                        "dl=https%3A%2F%2Fex.com%3A8443%2Fa%2Fb");
    /* Encoded bytes inside the nested query survive a decode and re-encode. */
    assert_string_equal(rw("dl=https%3A%2F%2Fx%2F%3Futm_source%3Da%2526b"),
                        "dl=https%3A%2F%2Fx%2F%3Futm_source%3Da%2526b");
    /* Click ids inside are dropped, case-insensitively. */
    assert_string_equal(rw("dl=https%3A%2F%2Fx%2F%3FGCLID%3D1%26utm_campaign%3Dc"),
                        "dl=https%3A%2F%2Fx%2F%3Futm_campaign%3Dc");
    /* Relative references are cleaned too. */
    assert_string_equal(rw("dl=%2Fcart%3Fitem%3D3%26utm_source%3Dm"), "dl=%2Fcart%3Futm_source%3Dm");
    /* A malformed escape becomes a literal '%', encoded as %25. */
    assert_string_equal(rw("dl=%zz"), "dl=%25zz");
    assert_string_equal(rw("dl="), "dl=");
    /* A configured allowlist replaces the default. */
    static const char *const keep[] = {"ref*", "lang"};
    fx.policy.url_keep = keep;
    fx.policy.nurl_keep = 2;
    maybe_compile();
    assert_string_equal(rw("dl=https%3A%2F%2Fx%2F%3Futm_source%3Da%26referrer%3Db%26lang%3Dde%26fbclid%3D1"),
                        "dl=https%3A%2F%2Fx%2F%3Freferrer%3Db%26lang%3Dde");
    fx.policy.nurl_keep = 0;
    maybe_compile();
    assert_string_equal(rw("dl=https%3A%2F%2Fx%2F%3Flang%3Dde"), "dl=https%3A%2F%2Fx%2F");

    /* The raw-URL entry point. */
    reset_policy();
    maybe_compile();
    char out[256];
    size_t n;
    const char *u = "https://a:b@ex.com/p?utm_source=s&x=1&utm_medium=m#top";
    assert_int_equal(ap_query_clean_url(&fx.policy, u, strlen(u), out, sizeof(out), &n), 0);
    assert_string_equal(out, "https://ex.com/p?utm_source=s&utm_medium=m");
}

static void test_origin(void **state)
{
    (void)state;
    assert_string_equal(origin("HTTPS://User@Ex.COM:8443/path?q#f"), "https://ex.com:8443");
    assert_string_equal(origin("http://ex.com"), "http://ex.com");
    assert_string_equal(origin("http://ex.com?x"), "http://ex.com");
    assert_string_equal(origin("https://[2001:DB8::1]:443/x"), "https://[2001:db8::1]:443");
    assert_string_equal(origin("https://evil.example\\@shop.example/"), "https://evil.example");
    assert_string_equal(origin("https://[::1/x"), "");
    assert_string_equal(origin("https://[::1]x/"), "");
    assert_string_equal(origin("https://ex.com:99999/"), "");
    assert_string_equal(origin("https://ex.com:/"), "");
    assert_string_equal(origin("https://ex.com:8a/"), "");
    assert_string_equal(origin("https:///path"), "");
    assert_string_equal(origin("https://ex com/"), "");
    assert_string_equal(origin("javascript:alert(1)"), "");
    assert_string_equal(origin("//ex.com/x"), "");
    assert_string_equal(origin("/relative"), "");
    assert_string_equal(origin(""), "");

    static const struct ap_query_rule rules[] = {{"ref", AP_QUERY_ORIGIN_ONLY}};
    setup_ctx(rules, 1, AP_QUERY_KEEP);
    assert_string_equal(rw("ref=https%3A%2F%2FUser%40Ex.COM%3A8443%2Fpath%3Fq&a=1"),
                        "ref=https%3A%2F%2Fex.com%3A8443&a=1");
    assert_string_equal(rw("ref=hello&a=1"), "a=1");
}

static void test_referrer(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"dr", AP_QUERY_REFERRER}, {"urlref", AP_QUERY_REFERRER}};
    setup_ctx(rules, 2, AP_QUERY_KEEP);
    /* Internal: cleaned. */
    assert_string_equal(rw("dr=https%3A%2F%2Fshop.example%2Fcart%3Futm_source%3Dx%26sid%3D1"),
                        "dr=https%3A%2F%2Fshop.example%2Fcart%3Futm_source%3Dx");
    assert_string_equal(rw("dr=https%3A%2F%2FSHOP.example.%3A8080%2Fcart"),
                        "dr=https%3A%2F%2FSHOP.example.%3A8080%2Fcart");
    /* External: origin only. */
    assert_string_equal(rw("dr=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Dsecret&x=1"),
                        "dr=https%3A%2F%2Fwww.google.com&x=1");
    assert_string_equal(rw("urlref=https%3A%2F%2Fsub.shop.example%2Fa"),
                        "urlref=https%3A%2F%2Fsub.shop.example");
    /* Not an absolute URL: dropped. */
    assert_string_equal(rw("dr=%2Flocal&x=1"), "x=1");
    assert_string_equal(rw("dr=android-app%3A%2F%2Fcom.google"), "dr=android-app%3A%2F%2Fcom.google");
    /* Strict: external referrers are dropped. */
    fx.policy.strict_referrer = 1;
    assert_string_equal(rw("dr=https%3A%2F%2Fwww.google.com%2Fsearch&x=1"), "x=1");
    assert_string_equal(rw("dr=https%3A%2F%2Fshop.example%2F"), "dr=https%3A%2F%2Fshop.example%2F");
    fx.policy.strict_referrer = 0;
    /* A site host with a port, or an IPv6 literal. */
    fx.ctx.site_host = "shop.example:8080";
    fx.ctx.site_host_len = strlen(fx.ctx.site_host);
    assert_string_equal(referrer("https://shop.example/a?b=1#c"), "https://shop.example/a");
    fx.ctx.site_host = "[::1]:8080";
    fx.ctx.site_host_len = strlen(fx.ctx.site_host);
    assert_string_equal(referrer("http://[::1]:9/a?utm_source=q"), "http://[::1]:9/a?utm_source=q");
    assert_string_equal(referrer("http://[::2]/a"), "http://[::2]");
    /* No site host: everything is external. */
    fx.ctx.site_host = NULL;
    fx.ctx.site_host_len = 0;
    assert_string_equal(referrer("https://shop.example/a"), "https://shop.example");
    /* Look-alike hosts are external. */
    fx.ctx.site_host = "shop.example";
    fx.ctx.site_host_len = strlen(fx.ctx.site_host);
    assert_string_equal(referrer("https://shop.example.evil.com/x"), "https://shop.example.evil.com");
    /* A browser reads this as host shop.example, path "\\@evil.com/x". */
    assert_string_equal(referrer("https://shop.example\\@evil.com/x"), "https://shop.example\\@evil.com/x");
    assert_string_equal(referrer("https://evil.com\\@shop.example/x"), "https://evil.com");
    assert_string_equal(referrer("not a url"), "");
    assert_string_equal(referrer("https://shop.example:bad/"), "");
}

static void test_targets_and_urls(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"utm_*", AP_QUERY_KEEP}};
    setup_ctx(rules, 1, AP_QUERY_DROP);
    assert_string_equal(rw_target("/p/a?gclid=1&utm_source=2#x"), "/p/a?utm_source=2");
    assert_string_equal(rw_target("/p?gclid=1"), "/p");
    assert_string_equal(rw_target("/p?"), "/p");
    assert_string_equal(rw_target("/p"), "/p");
    assert_string_equal(rw_target("/"), "/");
    assert_string_equal(rw_target("/p#frag?x=1"), "/p");
    assert_string_equal(rw_target("*"), "*");
    assert_string_equal(rw_target("ex.com:443"), "ex.com:443");
    assert_string_equal(rw_target("//evil?utm_x=1&a=1"), "//evil?utm_x=1");
    assert_string_equal(rw_target("/a%3Fb?c=1"), "/a%3Fb");
    assert_string_equal(rw_target("http://u:p@h:80/p?fbclid=1&utm_x=2#f"), "http://h:80/p?utm_x=2");
    assert_string_equal(rw_url("https://ex.com/p?utm_source=a&gclid=b&q=secret#frag"),
                        "https://ex.com/p?utm_source=a");
    assert_string_equal(rw_url("https://ex.com"), "https://ex.com");
    assert_string_equal(rw_url("https://ex.com?q=1"), "https://ex.com");
    assert_string_equal(rw_url("/rel?utm_a=1&b=2"), "/rel?utm_a=1");
    assert_string_equal(rw_url(""), "");
}

/* Each output buffer size below the need gives -ENOBUFS and writes nothing
 * past the buffer. A transformed value is decoded into the unused end of the
 * buffer, so sizes just above the need may still give -ENOBUFS; with room
 * for the input on top, the call must succeed. */
static void check_all_caps(int (*fn)(const char *in, char *out, size_t cap, size_t *n),
                           const char *in)
{
    size_t need;
    assert_int_equal(fn(in, obuf, sizeof(obuf), &need), 0);
    char want[4096];
    memcpy(want, obuf, need + 1);
    static char buf[8192];
    size_t slack = strlen(in);
    for (size_t cap = 0; cap <= need + 1 + slack; cap++) {
        memset(buf, 'Z', sizeof(buf));
        size_t n = 5;
        int rc = fn(in, cap ? buf : NULL, cap, &n);
        if (cap <= need || (rc != 0 && cap < need + 1 + slack)) {
            assert_int_equal(rc, -ENOBUFS);
            assert_int_equal(n, 0);
            if (cap > 0)
                assert_int_equal(buf[0], '\0');
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(n, need);
            assert_string_equal(buf, want);
        }
        for (size_t k = cap; k < sizeof(buf); k++)
            if (buf[k] != 'Z')
                fail_msg("write past cap %zu at %zu", cap, k);
    }
}

static int via_rewrite(const char *in, char *out, size_t cap, size_t *n)
{
    return ap_query_rewrite(&fx.ctx, in, strlen(in), out, cap, n);
}

static int via_target(const char *in, char *out, size_t cap, size_t *n)
{
    return ap_query_rewrite_target(&fx.ctx, in, strlen(in), out, cap, n);
}

static int via_referrer(const char *in, char *out, size_t cap, size_t *n)
{
    return ap_query_referrer(&fx.ctx, in, strlen(in), out, cap, n);
}

static int via_origin(const char *in, char *out, size_t cap, size_t *n)
{
    return ap_query_origin(in, strlen(in), out, cap, n);
}

static int via_clean(const char *in, char *out, size_t cap, size_t *n)
{
    return ap_query_clean_url(&fx.policy, in, strlen(in), out, cap, n);
}

static void test_small_buffers(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {
        {"uid", AP_QUERY_PSEUDO}, {"ip", AP_QUERY_TRUNCATE_IP}, {"dl", AP_QUERY_CLEAN_URL},
        {"ref", AP_QUERY_ORIGIN_ONLY}, {"dr", AP_QUERY_REFERRER}, {"x*", AP_QUERY_DROP},
    };
    setup_ctx(rules, AP_ARRAY_SIZE(rules), AP_QUERY_KEEP);
    check_all_caps(via_rewrite, "a=1&uid=abc&ip=10.1.2.3&dl=https%3A%2F%2Fe.com%2F%3Futm_source%3D1%26z%3D2"
                                "&ref=http://h:1/p&dr=https%3A%2F%2Fshop.example%2Fz%3Fq&xx=1&uid=amp&b");
    check_all_caps(via_rewrite, "dl=a b c d e f g");
    check_all_caps(via_target, "/path/x?uid=1&gclid=2&k=v#f");
    check_all_caps(via_referrer, "https://shop.example/a?utm_source=x&y=1");
    check_all_caps(via_referrer, "https://other.example:8080/a?utm_source=x&y=1");
    check_all_caps(via_origin, "HTTPS://EX.COM:1/x");
    check_all_caps(via_clean, "https://u@ex.com/p?utm_medium=1&q=2#f");
}

/* Without callbacks, 3 * len + 1 bytes are enough, however bad the input. */
static void test_documented_bound(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {
        {"d*", AP_QUERY_CLEAN_URL}, {"o*", AP_QUERY_ORIGIN_ONLY}, {"r*", AP_QUERY_REFERRER},
    };
    setup_ctx(rules, AP_ARRAY_SIZE(rules), AP_QUERY_KEEP);
    static const char *const inputs[] = {
        "d= \x01\x02 \xff",
        "d=http://shop.example/ \x80?utm_source=\x01\x02",
        "r=http://shop.example/  ?utm_source=  ",
        "o=HTTP://A:1",
        "d=%",
        "d=+++++",
        "k=1&d=%zz%zz",
    };
    for (size_t k = 0; k < AP_ARRAY_SIZE(inputs); k++) {
        size_t len = strlen(inputs[k]);
        size_t n;
        char *out = malloc(3 * len + 1);
        assert_non_null(out);
        assert_int_equal(ap_query_rewrite(&fx.ctx, inputs[k], len, out, 3 * len + 1, &n), 0);
        assert_int_equal(ap_query_rewrite_target(&fx.ctx, inputs[k], len, out, 3 * len + 1, &n), 0);
        free(out);
    }
}

static void test_long_input(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"dl", AP_QUERY_CLEAN_URL}, {"uid", AP_QUERY_PSEUDO}};
    setup_ctx(rules, 2, AP_QUERY_KEEP);
    const char *unit = "a=1&gclid=2&dl=https%3A%2F%2Fe.com%2F%3Fz%3D1&";
    const char *want_unit = "a=1&dl=https%3A%2F%2Fe.com%2F&";
    size_t reps = 20000, ul = strlen(unit), wl = strlen(want_unit);
    char *in = malloc(ul * reps + 1);
    char *want = malloc(wl * reps + 1);
    char *out = malloc(3 * ul * reps + 1);
    assert_non_null(in);
    assert_non_null(want);
    assert_non_null(out);
    for (size_t k = 0; k < reps; k++) {
        memcpy(in + k * ul, unit, ul);
        memcpy(want + k * wl, want_unit, wl);
    }
    size_t n;
    assert_int_equal(ap_query_rewrite(&fx.ctx, in, ul * reps, out, 3 * ul * reps + 1, &n), 0);
    assert_int_equal(n, wl * reps - 1); /* no trailing '&' */
    assert_memory_equal(out, want, n);
    /* One enormous value. */
    size_t big = 1 << 19;
    memset(in, 'v', ul * reps);
    memcpy(in, "uid=", 4);
    assert_int_equal(ap_query_rewrite(&fx.ctx, in, big, out, 3 * ul * reps + 1, &n), 0);
    assert_int_equal(n, 4 + 9);
    memcpy(in, "dl=v", 4);
    assert_int_equal(ap_query_rewrite(&fx.ctx, in, big, out, 3 * ul * reps + 1, &n), 0);
    assert_int_equal(n, big);
    free(in);
    free(want);
    free(out);
}

/* A rule table on which compiled and uncompiled lookups are compared. */
static const struct ap_query_rule mix_rules[] = {
    {"uid", AP_QUERY_PSEUDO},   {"u*", AP_QUERY_DROP},      {"UID", AP_QUERY_KEEP},
    {"a b", AP_QUERY_TRUNCATE_IP}, {"e\xc3\xa9", AP_QUERY_CLEAN_URL}, {"x?", AP_QUERY_ORIGIN_ONLY},
    {"%41", AP_QUERY_REFERRER}, {"", AP_QUERY_DROP},         {"gclid", AP_QUERY_KEEP},
    {"*id", AP_QUERY_PSEUDO},   {"idsite", AP_QUERY_KEEP},  {"verylongparametername", AP_QUERY_DROP},
};

/* Names as received: plain, percent-encoded, '+', malformed escapes,
 * case variants, click ids, lengths around 8-byte words and past the
 * 128-byte stack copy. */
static const char *const mix_names[] = {
    "uid", "u%69d", "%75%69%64", "UID", "Uid", "user", "a+b", "a%20b", "a b", "e%C3%A9", "e%c3%a9",
    "xy", "x", "xyz", "%41", "%2541", "A", "", "gclid", "GCLID", "%67clid", "g%43lid", "fbclid",
    "sid", "cid", "id", "idsite", "IDSITE", "idsitex", "%zz", "a%2", "verylongparametername",
    "verylongparameternam%65", "verylongparameternamE",
};

static void test_compiled_agrees(void **state)
{
    (void)state;
    struct ap_query_policy plain, comp;
    ap_query_policy_init(&plain);
    ap_query_policy_init(&comp);
    plain.rules = comp.rules = mix_rules;
    plain.nrules = comp.nrules = AP_ARRAY_SIZE(mix_rules);
    plain.default_action = comp.default_action = AP_QUERY_ORIGIN_ONLY;
    assert_int_equal(ap_query_policy_compile(&comp), 0);
    char name[400];
    for (size_t k = 0; k < AP_ARRAY_SIZE(mix_names); k++) {
        size_t len = strlen(mix_names[k]);
        assert_int_equal(ap_query_action_for(&comp, mix_names[k], len),
                         ap_query_action_for(&plain, mix_names[k], len));
        /* The same name, padded past the stack copy with "%30" escapes
         * that a glob ending in '*' must see decoded. */
        memcpy(name, mix_names[k], len);
        for (size_t i = 0; i < 60; i++)
            memcpy(name + len + 3 * i, "%30", 3);
        assert_int_equal(ap_query_action_for(&comp, name, len + 180),
                         ap_query_action_for(&plain, name, len + 180));
    }
    /* Spot checks of what they agree on. */
    assert_int_equal(ap_query_action_for(&comp, "u%69d", 5), AP_QUERY_PSEUDO);
    assert_int_equal(ap_query_action_for(&comp, "UID", 3), AP_QUERY_KEEP);
    assert_int_equal(ap_query_action_for(&comp, "user", 4), AP_QUERY_DROP);
    assert_int_equal(ap_query_action_for(&comp, "a+b", 3), AP_QUERY_TRUNCATE_IP);
    assert_int_equal(ap_query_action_for(&comp, "%2541", 5), AP_QUERY_REFERRER);
    assert_int_equal(ap_query_action_for(&comp, "%41", 3), AP_QUERY_ORIGIN_ONLY);
    assert_int_equal(ap_query_action_for(&comp, "g%43lid", 7), AP_QUERY_DROP);
    assert_int_equal(ap_query_action_for(&comp, "sid", 3), AP_QUERY_PSEUDO);
    assert_int_equal(ap_query_action_for(&comp, "IDSITE", 6), AP_QUERY_ORIGIN_ONLY);

    /* Rules changed after compiling are still honoured. */
    static const struct ap_query_rule other[] = {{"uid", AP_QUERY_KEEP}};
    comp.rules = other;
    comp.nrules = 1;
    assert_int_equal(ap_query_action_for(&comp, "uid", 3), AP_QUERY_KEEP);
    assert_int_equal(ap_query_action_for(&comp, "user", 4), AP_QUERY_ORIGIN_ONLY);
    comp.rules = mix_rules;
    comp.nrules = 2;
    assert_int_equal(ap_query_action_for(&comp, "UID", 3), AP_QUERY_ORIGIN_ONLY);
    ap_query_policy_release(&comp);
    ap_query_policy_release(&plain); /* never compiled: nothing to free */
}

/* The CLEAN_URL allowlist, compiled: percent-encoded names, globs, click
 * ids never kept, and the default list when url_keep is NULL. */
static void test_compiled_url_keep(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"dl", AP_QUERY_CLEAN_URL}};
    static const char *const keep[] = {"utm_*", "lang", "gclid"};
    for (int c = 0; c < 2; c++) {
        setup_ctx(rules, 1, AP_QUERY_KEEP);
        assert_string_equal(rw("dl=%2Fp%3Futm_%2573ource%3D1%26x%3D2%26utm_medium%3D3"),
                            "dl=%2Fp%3Futm_%2573ource%3D1%26utm_medium%3D3");
        fx.policy.url_keep = keep;
        fx.policy.nurl_keep = AP_ARRAY_SIZE(keep);
        if (c)
            assert_int_equal(ap_query_policy_compile(&fx.policy), 0);
        assert_string_equal(rw("dl=%2Fp%3Futm_x%3D1%26l%2561ng%3D2%26gclid%3D3%26Lang%3D4"),
                            "dl=%2Fp%3Futm_x%3D1%26l%2561ng%3D2");
    }
}

struct seen {
    char names[16][32];
    enum ap_query_action acts[16];
    bool clicks[16];
    size_t n;
};

static void observe(void *ctx, const char *name, size_t len, enum ap_query_action a, bool click)
{
    struct seen *s = ctx;
    assert_true(s->n < 16 && len < 32);
    memcpy(s->names[s->n], name, len);
    s->names[s->n][len] = '\0';
    s->acts[s->n] = a;
    s->clicks[s->n++] = click;
}

static void test_observer(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"uid", AP_QUERY_PSEUDO}, {"url", AP_QUERY_CLEAN_URL},
                                                 {"gclid", AP_QUERY_KEEP}};
    setup_ctx(rules, AP_ARRAY_SIZE(rules), AP_QUERY_KEEP);
    struct seen s = {.n = 0};
    fx.ctx.observer = (struct ap_query_observer){observe, &s, NULL};
    const char *t = "/p?u%69d=1&&url=%2Fx%3Fgclid%3D1%26a%3D2&%47CLID=3&b&=4#frag";
    assert_string_equal(rw_target(t), "/p?u%69d=p340ca71c&url=%2Fx&b&=4");
    /* In order, names as received, empty parameters and those inside the
     * URL value left out. */
    assert_int_equal(s.n, 5);
    assert_string_equal(s.names[0], "u%69d");
    assert_int_equal(s.acts[0], AP_QUERY_PSEUDO);
    assert_false(s.clicks[0]);
    assert_string_equal(s.names[1], "url");
    assert_int_equal(s.acts[1], AP_QUERY_CLEAN_URL);
    assert_string_equal(s.names[2], "%47CLID");
    assert_int_equal(s.acts[2], AP_QUERY_DROP);
    assert_true(s.clicks[2]);
    assert_string_equal(s.names[3], "b");
    assert_int_equal(s.acts[3], AP_QUERY_KEEP);
    assert_false(s.clicks[3]);
    assert_string_equal(s.names[4], "");
    /* A buffer too small stops the walk early; the retry reports again
     * from the first parameter. */
    s.n = 0;
    char small[8];
    size_t n;
    assert_int_equal(ap_query_rewrite_target(&fx.ctx, t, strlen(t), small, sizeof(small), &n), -ENOBUFS);
    assert_true(s.n >= 1 && s.n < 5);
    s.n = 0;
    rw_target(t);
    assert_int_equal(s.n, 5);
}

/* The strict Referer reduction in one pass gives what the two-step one
 * (ap_query_referrer with strict_referrer, then ap_query_origin of what it
 * keeps) gives. */
static void test_referrer_origin(void **state)
{
    (void)state;
    setup_ctx(NULL, 0, AP_QUERY_KEEP);
    fx.policy.strict_referrer = 1;
    static const char *const urls[] = {
        "https://shop.example/cart?item=42#top", "HTTPS://Shop.Example.:8443/a", "https://shop.example:bad/",
        "https://www.google.com/search?q=me",    "https://user:pw@shop.example/x",
        "https://evil.com\\@shop.example/x",      "https://shop.example\\@evil.com/x",
        "http://[::1]:9/a",                       "/relative?x=1",
        "not a url",                              "",
        "android-app://com.google",              "https://shop.example.evil.com/",
        "https://sh%6Fp.example/",                "https://shop.example:99999/",
    };
    static const char *const hosts[] = {"shop.example", "shop.example:8080", "[::1]", NULL};
    for (size_t h = 0; h < AP_ARRAY_SIZE(hosts); h++) {
        fx.ctx.site_host = hosts[h];
        fx.ctx.site_host_len = hosts[h] ? strlen(hosts[h]) : 0;
        for (size_t k = 0; k < AP_ARRAY_SIZE(urls); k++) {
            char one[256], two[256];
            size_t n1 = 0, n2 = 0;
            assert_int_equal(ap_query_referrer(&fx.ctx, urls[k], strlen(urls[k]), two, sizeof(two), &n2), 0);
            if (n2 > 0)
                assert_int_equal(ap_query_origin(urls[k], strlen(urls[k]), two, sizeof(two), &n2), 0);
            assert_int_equal(ap_query_referrer_origin(&fx.ctx, urls[k], strlen(urls[k]), one,
                                                      sizeof(one), &n1), 0);
            assert_int_equal(n1, n2);
            assert_string_equal(one, n2 ? two : "");
        }
    }
    fx.ctx.site_host = "shop.example";
    fx.ctx.site_host_len = strlen(fx.ctx.site_host);
    char out[64];
    size_t n;
    const char *u = "HTTPS://Shop.Example:8443/cart?sid=1";
    assert_int_equal(ap_query_referrer_origin(&fx.ctx, u, strlen(u), out, sizeof(out), &n), 0);
    assert_string_equal(out, "https://shop.example:8443");
    assert_int_equal(ap_query_referrer_origin(&fx.ctx, u, strlen(u), out, 10, &n), -ENOBUFS);
    assert_int_equal(n, 0);
    fx.policy.strict_referrer = 0;
}

static int group_plain(void **state)
{
    (void)state;
    compiled = false;
    return 0;
}

static int group_compiled(void **state)
{
    (void)state;
    compiled = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (fx.policy.magic == AP_QUERY_POLICY_MAGIC)
        ap_query_policy_release(&fx.policy);
    return 0;
}

static unsigned redactions[AP_DETECT_NKINDS + 1]; /* the last: tokens */

static void on_redacted(void *ctx, const char *what)
{
    (void)ctx;
    enum ap_detect_kind k;
    if (strcmp(what, "token") == 0)
        redactions[AP_DETECT_NKINDS]++;
    else if (ap_detect_kind_parse(what, &k) == 0)
        redactions[k]++;
    else
        fail_msg("redacted an unknown kind: %s", what);
}

/* policy->path_detect: identifiers in paths are cut out, in the target and
 * in URL values, encoded or not; everything else in a path is kept byte for
 * byte; with no kinds, paths are not read. */
static void test_path_redaction(void **state)
{
    (void)state;
    static const struct ap_query_rule rules[] = {{"url", AP_QUERY_CLEAN_URL}, {"u2", AP_QUERY_KEEP}};
    setup_ctx(rules, AP_ARRAY_SIZE(rules), AP_QUERY_KEEP);
    assert_string_equal(rw_target("/u/jane@example.com/x?a=1"), "/u/jane@example.com/x?a=1");

    fx.policy.path_detect = (1u << AP_DETECT_EMAIL) | (1u << AP_DETECT_IP) | (1u << AP_DETECT_PHONE) |
                            (1u << AP_DETECT_IMEI) | (1u << AP_DETECT_MAC);
    memset(redactions, 0, sizeof(redactions));
    fx.ctx.observer = (struct ap_query_observer){NULL, NULL, on_redacted};
    assert_string_equal(rw_target("/u/jane@example.com/x?a=1"), "/u/(redacted)/x?a=1");
    assert_string_equal(rw_target("/u/jane%40example.com"), "/u/(redacted)");
    assert_string_equal(rw_target("/ip/203.0.113.9/and/2001:db8::1/"), "/ip/(redacted)/and/(redacted)/");
    assert_string_equal(rw_target("/call/+41446681800"), "/call/(redacted)");
    assert_string_equal(rw_target("/dev/00:1A:2B:3C:4D:5E"), "/dev/(redacted)");
    assert_int_equal(redactions[AP_DETECT_EMAIL], 2);
    assert_int_equal(redactions[AP_DETECT_IP], 2);
    assert_int_equal(redactions[AP_DETECT_PHONE], 1);
    assert_int_equal(redactions[AP_DETECT_MAC], 1);
    /* Nothing to find: the path is copied as it came. */
    assert_string_equal(rw_target("/a/b%2Fc/2024/11/27/article-1234?x=1"), "/a/b%2Fc/2024/11/27/article-1234?x=1");
    assert_string_equal(rw_target("/matomo.php"), "/matomo.php");
    /* URL values: the cleaned URL's path too, encoded again. */
    assert_string_equal(rw_target("/t?url=https%3A%2F%2Fshop.example%2Fuser%2Fjane%40example.com%2Forders%3Futm_source%3Dx"),
                        "/t?url=https%3A%2F%2Fshop.example%2Fuser%2F(redacted)%2Forders%3Futm_source%3Dx");
    assert_string_equal(rw_url("https://shop.example/u/jane@example.com?u2=1"),
                        "https://shop.example/u/(redacted)?u2=1");
    /* A URL whose host is an address keeps its host: only paths are read. */
    assert_string_equal(rw_url("http://192.0.2.1/p"), "http://192.0.2.1/p");
    /* Growth past the first buffer: -ENOBUFS, nothing half written. */
    char small[8];
    size_t n = 99;
    assert_int_equal(ap_query_rewrite_target(&fx.ctx, "/a@b.co", 7, small, sizeof(small), &n), -ENOBUFS);
    assert_int_equal(n, 0);
    char big[32];
    assert_int_equal(ap_query_rewrite_target(&fx.ctx, "/a@b.co", 7, big, sizeof(big), &n), 0);
    assert_string_equal(big, "/(redacted)");
    assert_int_equal(redactions[AP_DETECT_NKINDS], 0);

    /* Tokens: UUIDs, 16+ hex digits, long random mixes; not numbers, slugs
     * or words. */
    fx.policy.path_tokens = true;
    assert_string_equal(rw_target("/u/123e4567-e89b-12d3-A456-426614174000/x"), "/u/(redacted)/x");
    assert_string_equal(rw_target("/f/6f1e2d3c4b5a6978.pdf?a=1"), "/f/(redacted).pdf?a=1");
    assert_string_equal(rw_target("/reset/eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"), "/reset/(redacted)");
    assert_string_equal(rw_target("/card/4111111111111111"), "/card/(redacted)");
    assert_string_equal(rw_target("/u/12345/orders/987654321012345"), "/u/12345/orders/987654321012345");
    assert_string_equal(rw_target("/blog/how-to-make-a-cake-at-home-in-2024-with-kids"),
                        "/blog/how-to-make-a-cake-at-home-in-2024-with-kids");
    assert_string_equal(rw_target("/p/Product-X200-Black-Edition-Limited-2024"),
                        "/p/Product-X200-Black-Edition-Limited-2024");
    assert_string_equal(rw_target("/t?url=https%3A%2F%2Fa.example%2Fs%2F0123456789abcdef0123%2F"),
                        "/t?url=https%3A%2F%2Fa.example%2Fs%2F(redacted)%2F");
    assert_int_equal(redactions[AP_DETECT_NKINDS], 5);
    fx.policy.path_tokens = false;
    fx.policy.path_detect = 0;
}

/* ap_query_redact_path: a path alone, also one that starts with "//"
 * (no authority there: it is a path). */
static void test_redact_path(void **state)
{
    (void)state;
    struct ap_query_policy p;
    ap_query_policy_init(&p);
    p.path_tokens = true;
    char out[128];
    size_t n = 0;
    const char *in = "//123e4567-e89b-12d3-a456-426614174000/x/0123456789abcdef.json";
    assert_int_equal(ap_query_redact_path(&p, in, strlen(in), out, strlen(in) + 1, &n), 0);
    assert_string_equal(out, "//(redacted)/x/(redacted).json");
    assert_int_equal(n, strlen(out));
    p.path_tokens = false;
    assert_int_equal(ap_query_redact_path(&p, in, strlen(in), out, sizeof(out), &n), 0);
    assert_string_equal(out, in);
    assert_int_equal(ap_query_redact_path(&p, in, strlen(in), out, 8, &n), -ENOBUFS);
}

static void test_path_token_rules(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "123e4567-e89b-12d3-a456-426614174000", "0123456789abcdef", "ABCDEF0123456789ABCD",
        "1234567890123456", "dGhpcyBpcyBhIHRva2VuIDEyMzQ1Njc4OQ", "aB3_cD4-eF5_gH6iJ7kL8mN9oP0qR1sT2uV3",
    };
    static const char *const no[] = {
        "123456789012345", "0123456789abcde", "abcdefghijklmnopqrstuvwxyz", "how-to-make-a-cake-at-home",
        "123e4567-e89b-12d3-a456-42661417400", "123e4567_e89b_12d3_a456_426614174000x",
        "aB3-cD4-eF5-gH6-iJ7-kL8-mN9-oP0-qR1", "Checkout", "",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(yes); i++)
        if (!ap_query_path_token(yes[i], strlen(yes[i])))
            fail_msg("not a token: %s", yes[i]);
    for (size_t i = 0; i < AP_ARRAY_SIZE(no); i++)
        if (ap_query_path_token(no[i], strlen(no[i])))
            fail_msg("a token: %s", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_and_separators),
        cmocka_unit_test(test_click_ids),
        cmocka_unit_test(test_rules_and_globs),
        cmocka_unit_test(test_pseudo),
        cmocka_unit_test(test_clean_url),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_referrer),
        cmocka_unit_test(test_targets_and_urls),
        cmocka_unit_test(test_small_buffers),
        cmocka_unit_test(test_documented_bound),
        cmocka_unit_test(test_long_input),
        cmocka_unit_test(test_compiled_agrees),
        cmocka_unit_test(test_compiled_url_keep),
        cmocka_unit_test(test_observer),
        cmocka_unit_test(test_referrer_origin),
        cmocka_unit_test(test_path_redaction),
        cmocka_unit_test(test_path_token_rules),
        cmocka_unit_test(test_redact_path),
    };
    int rc = cmocka_run_group_tests_name("as built", tests, group_plain, group_teardown);
    rc |= cmocka_run_group_tests_name("compiled", tests, group_compiled, group_teardown);
    return rc;
}

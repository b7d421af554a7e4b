/* Unit tests of the body rewriter (proxy/engine/body.c, bodypath.c,
 * bodywalk.c): the policy API and path errors, matching (keys, globs,
 * wildcards, recursion, indexes, duplicates, priority), every action, JSON
 * byte-exactness and separators, NDJSON, forms and GA4-style lines, layers
 * (>json, >base64json, >url), compression (headers, query flags, magic
 * bytes, recompression, bombs), detectors and regexes in bodies, verdicts,
 * the audit and counters, arena exhaustion, and linear time. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include <cmocka.h>
#include <zlib.h>

#include "anonproxy/arena.h"
#include "anonproxy/base64.h"
#include "anonproxy/body.h"
#include "anonproxy/bodypath.h"
#include "anonproxy/bodypreset.h"
#include "anonproxy/gzip.h"
#include "anonproxy/json.h"
#include "anonproxy/text.h"
#include "engine/bodywalk.h"

/* Test pseudonymiser: "p" and 8 hex digits of FNV-1a; "fail" fails. */
static int fake_pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    if (len == 4 && memcmp(val, "fail", 4) == 0)
        return -EINVAL;
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

static const char *P(const char *v)
{
    static char bufs[4][16];
    static int k;
    char *b = bufs[k++ & 3];
    int n = fake_pseudo(NULL, v, strlen(v), b, 15);
    b[n] = '\0';
    return b;
}

/* ---- fixture: one policy, one arena, one call at a time ---- */

struct env {
    struct ap_body_policy pol;
    struct ap_arena arena;
    struct ap_body_ctx ctx;
    struct ap_body_out out;
    struct ap_body_stats stats;
    int rc;
    char text[1 << 16]; /* the forwarded body, NUL-terminated */
};

static struct env *E;

static int setup(void **state)
{
    E = calloc(1, sizeof(*E));
    ap_body_policy_init(&E->pol, AP_PROFILE_STRICT);
    ap_arena_init(&E->arena, 4096, 0);
    E->ctx.arena = &E->arena;
    E->ctx.pseudo.fn = fake_pseudo;
    E->ctx.stats = &E->stats;
    E->ctx.audit = 1;
    *state = E;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ap_body_policy_free(&E->pol);
    ap_arena_free(&E->arena);
    free(E);
    return 0;
}

static void rule(const char *path, enum ap_body_action a, const char *arg)
{
    size_t off;
    int rc = ap_body_policy_add_rule(&E->pol, path, a, arg, &off);
    if (rc != 0)
        fail_msg("rule %s: %d at %zu", path, rc, off);
}

static void finish(void)
{
    assert_int_equal(ap_body_policy_finish(&E->pol), 0);
}

/* Rewrite and return the forwarded body as a string ("<rc status>" when
 * rejected). */
static const char *rwn(const char *ct, const char *ce, const char *body, size_t len)
{
    if (!E->pol.finished)
        finish();
    ap_arena_reset(&E->arena);
    E->rc = ap_body_rewrite(&E->pol, &E->ctx, ct, ct ? strlen(ct) : 0, ce, ce ? strlen(ce) : 0, body, len,
                            &E->out);
    if (E->out.verdict == AP_BODY_REJECT) {
        snprintf(E->text, sizeof(E->text), "<%d %d>", E->rc, E->out.status);
    } else {
        assert_true(E->out.len < sizeof(E->text));
        memcpy(E->text, E->out.body, E->out.len);
        E->text[E->out.len] = '\0';
    }
    return E->text;
}

static const char *rw(const char *ct, const char *body)
{
    return rwn(ct, NULL, body, strlen(body));
}

static const char *json(const char *body)
{
    return rw("application/json", body);
}

static const char *form(const char *body)
{
    return rw("application/x-www-form-urlencoded", body);
}

static void detectors_off(void)
{
    for (unsigned k = 0; k < AP_DETECT_REGEX; k++)
        assert_int_equal(ap_body_policy_set_detector(&E->pol, (enum ap_detect_kind)k, AP_BODY_KEEP), 0);
}

/* ---- policy ---- */

static void test_path_errors(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        size_t off;
    } bad[] = {
        {"", 0},          {"a.b", 0},         {"$", 1},           {"$.", 2},      {"$..", 3},
        {"$.a[", 4},      {"$.a[x]", 4},      {"$.a[01]", 4},     {"$.a[\"b]", 4}, {"$.a>json", 8},
        {"$.a>jso.b", 4}, {"$.a>json>url", 8}, {"$..>json.a", 3}, {"$.a b", 3},   {"$['a'", 5},
        {"$[\"a\\q\"]", 2}, {"$a", 1},        {"$.a[4294967296]", 4},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++) {
        size_t off = 999;
        int rc = ap_body_policy_add_rule(&E->pol, bad[i].path, AP_BODY_DROP, NULL, &off);
        if (rc != -EINVAL || off != bad[i].off)
            fail_msg("\"%s\": rc %d off %zu, want -EINVAL at %zu", bad[i].path, rc, off, bad[i].off);
    }
    size_t off;
    assert_int_equal(ap_body_policy_add_rule(&E->pol, NULL, AP_BODY_DROP, NULL, &off), -EINVAL);
    /* Arguments: SET and ROUND need one, the others take none. */
    assert_int_equal(ap_body_policy_add_rule(&E->pol, "$.a", AP_BODY_SET, NULL, &off), -EINVAL);
    assert_int_equal(off, SIZE_MAX);
    assert_int_equal(ap_body_policy_add_rule(&E->pol, "$.a", AP_BODY_DROP, "x", &off), -EINVAL);
    static const char *const bad_round[] = {"0", "", "-5", "1.5", "weekly", "10000000000000000000"};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad_round); i++)
        assert_int_equal(ap_body_policy_add_rule(&E->pol, "$.a", AP_BODY_ROUND, bad_round[i], &off), -EINVAL);
    assert_int_equal(ap_body_policy_add_rule(&E->pol, "$.a", AP_BODY_SET, "\xff", &off), -EINVAL);
    assert_int_equal(ap_body_policy_add_rule(&E->pol, "$.a", (enum ap_body_action)99, NULL, &off), -EINVAL);
    assert_int_equal(E->pol.nrules, 0);
    /* Good ones. */
    static const char *const good[] = {
        "$.a", "$.a.b", "$..a", "$.*", "$[*]", "$[0]", "$.a[12].b", "$['x y']", "$[\"q\\\"\"]",
        "$.properties.$ip", "$.utm_*", "$..*_id", "$.d>base64json.x", "$.u>url.gclid", "$.p>json[*]..id",
        "$..[*]", "$..['a']",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(good); i++)
        assert_int_equal(ap_body_policy_add_rule(&E->pol, good[i], AP_BODY_DROP, NULL, &off), 0);
    finish();
    /* A finished policy takes no more rules. */
    assert_int_equal(ap_body_policy_add_rule(&E->pol, "$.z", AP_BODY_DROP, NULL, &off), -EINVAL);
    assert_int_equal(ap_body_policy_finish(&E->pol), 0);
}

static void test_path_steps(void **state)
{
    (void)state;
    struct ap_bodypath_step *st;
    size_t n;
    assert_int_equal(ap_bodypath_parse("$..a[*].b*c['d.e'][3]>json.f", &st, &n, NULL), 0);
    assert_int_equal(n, 7);
    assert_int_equal(st[0].op, AP_BODYPATH_KEY);
    assert_true(st[0].recursive);
    assert_string_equal(st[0].name, "a");
    assert_int_equal(st[1].op, AP_BODYPATH_ANY);
    assert_int_equal(st[2].op, AP_BODYPATH_GLOB);
    assert_string_equal(st[2].name, "b*c");
    assert_int_equal(st[3].op, AP_BODYPATH_KEY);
    assert_string_equal(st[3].name, "d.e");
    assert_int_equal(st[4].op, AP_BODYPATH_INDEX);
    assert_int_equal(st[4].index, 3);
    assert_int_equal(st[5].op, AP_BODYPATH_LAYER);
    assert_int_equal(st[5].layer, AP_BODY_LAYER_JSON);
    assert_string_equal(st[6].name, "f");
    ap_bodypath_free(st, n);
}

static void test_names(void **state)
{
    (void)state;
    for (unsigned a = 0; a < AP_BODY_NACTIONS; a++) {
        enum ap_body_action back;
        assert_int_equal(ap_body_action_parse(ap_body_action_name((enum ap_body_action)a), &back), 0);
        assert_int_equal(back, a);
    }
    enum ap_body_action a;
    assert_int_equal(ap_body_action_parse("pseudonymize", &a), 0);
    assert_int_equal(a, AP_BODY_PSEUDO);
    assert_int_equal(ap_body_action_parse("encrypt", &a), -EINVAL);
    assert_int_equal(ap_body_action_parse(NULL, &a), -EINVAL);
    enum ap_body_on_invalid oi;
    assert_int_equal(ap_body_on_invalid_parse("drop-body", &oi), 0);
    assert_int_equal(oi, AP_BODY_INVALID_DROP_BODY);
    enum ap_body_on_unsupported ou;
    assert_int_equal(ap_body_on_unsupported_parse("pass", &ou), 0);
    assert_int_equal(ou, AP_BODY_UNSUPPORTED_PASS);
    assert_int_equal(ap_body_on_unsupported_parse("ignore", &ou), -EINVAL);
    assert_string_equal(ap_body_format_name(AP_BODY_FMT_FORM_LINES), "form-lines");
    assert_string_equal(ap_body_encoding_name(AP_BODY_ENC_DEFLATE), "deflate");
    assert_string_equal(ap_body_action_name((enum ap_body_action)77), "?");
}

static void test_detector_and_flag_api(void **state)
{
    (void)state;
    struct ap_body_policy *p = &E->pol;
    assert_int_equal(ap_body_policy_set_detector(p, AP_DETECT_IP, AP_BODY_TRUNCATE_IP), 0);
    assert_int_equal(ap_body_policy_set_detector(p, AP_DETECT_EMAIL, AP_BODY_TRUNCATE_IP), -EINVAL);
    assert_int_equal(ap_body_policy_set_detector(p, AP_DETECT_EMAIL, AP_BODY_DROP), 0);
    assert_int_equal(ap_body_policy_set_detector(p, AP_DETECT_CLICKID, AP_BODY_PSEUDO), -EINVAL);
    assert_int_equal(ap_body_policy_set_detector(p, AP_DETECT_REGEX, AP_BODY_DROP), -EINVAL);
    assert_int_equal(ap_body_policy_set_detector(p, AP_DETECT_MAC, AP_BODY_SET), -EINVAL);
    size_t off;
    assert_int_equal(ap_body_policy_add_regex(p, "cust-[0-9]+", AP_BODY_PSEUDO, &off), 0);
    assert_int_equal(ap_body_policy_add_regex(p, "ab(c", AP_BODY_PSEUDO, &off), -EINVAL);
    assert_int_equal(off, 4);
    assert_int_equal(ap_body_policy_add_regex(p, "x", AP_BODY_CLEAN_URL, &off), -EINVAL);
    assert_int_equal(ap_body_policy_add_query_flag(p, "compression", "gzip-js", AP_BODY_ENC_GZIP), 0);
    assert_int_equal(ap_body_policy_add_query_flag(p, "compression", "GZIP-JS", AP_BODY_ENC_GZIP), 0);
    assert_int_equal(p->nqflags, 1);
    assert_int_equal(ap_body_policy_add_query_flag(p, "", "x", AP_BODY_ENC_GZIP), -EINVAL);
    assert_int_equal(ap_body_policy_add_query_flag(p, "c", "x", AP_BODY_ENC_IDENTITY), -EINVAL);
    /* Profiles: strict turns the detectors on, balanced only click ids. */
    struct ap_body_policy b;
    ap_body_policy_init(&b, AP_PROFILE_BALANCED);
    assert_int_equal(b.detect[AP_DETECT_EMAIL], AP_BODY_KEEP);
    assert_int_equal(b.detect[AP_DETECT_CLICKID], AP_BODY_DROP);
    ap_body_policy_free(&b);
    assert_int_equal(E->pol.detect[AP_DETECT_IMEI], AP_BODY_PSEUDO);
}

/* ---- matching ---- */

static void test_match_keys(void **state)
{
    (void)state;
    detectors_off();
    rule("$.device_id", AP_BODY_PSEUDO, NULL);
    rule("$.events[*].user_id", AP_BODY_DROP, NULL);
    rule("$..distinct_id", AP_BODY_PSEUDO, NULL);
    rule("$.properties[\"$ip\"]", AP_BODY_TRUNCATE_IP, NULL);
    rule("$.ctx.utm_*", AP_BODY_DROP, NULL);
    rule("$.list[1]", AP_BODY_SET, "0");
    rule("$.any.*", AP_BODY_SET, "\"x\"");
    char want[256];
    snprintf(want, sizeof(want), "{\"device_id\":\"%s\",\"other\":\"d1\"}", P("d1"));
    assert_string_equal(json("{\"device_id\":\"d1\",\"other\":\"d1\"}"), want);
    snprintf(want, sizeof(want), "{\"distinct_id\":\"%s\",\"a\":[{\"b\":{\"distinct_id\":\"%s\"}}],\"distinct_id\":\"%s\"}",
             P("x"), P("y"), P("z"));
    assert_string_equal(json("{\"distinct_id\":\"x\",\"a\":[{\"b\":{\"distinct_id\":\"y\"}}],\"distinct_id\":\"z\"}"), want);
    assert_string_equal(json("{\"properties\":{\"$ip\":\"198.51.100.23\",\"ip\":\"1.2.3.4\"}}"),
                        "{\"properties\":{\"$ip\":\"198.51.100.0\",\"ip\":\"1.2.3.4\"}}");
    assert_string_equal(json("{\"ctx\":{\"utm_source\":\"a\",\"utmx\":1,\"utm_\":2}}"), "{\"ctx\":{\"utmx\":1}}");
    assert_string_equal(json("{\"list\":[5,6,7],\"l2\":[6]}"), "{\"list\":[5,0,7],\"l2\":[6]}");
    assert_string_equal(json("{\"any\":{\"a\":1,\"b\":[2]},\"n\":{\"any\":3}}"),
                        "{\"any\":{\"a\":\"x\",\"b\":\"x\"},\"n\":{\"any\":3}}");
    /* [*] and .* take object members and array elements alike. */
    assert_string_equal(json("{\"any\":[1,{}]}"), "{\"any\":[\"x\",\"x\"]}");
}

static void test_match_escaped_keys_and_priority(void **state)
{
    (void)state;
    detectors_off();
    rule("$.keep", AP_BODY_KEEP, NULL);
    rule("$..keep", AP_BODY_DROP, NULL);
    rule("$.a.b", AP_BODY_SET, "1");
    rule("$.a.*", AP_BODY_SET, "2");
    /* An escaped key is compared decoded. */
    assert_string_equal(json("{\"\\u0061\":{\"\\u0062\":0,\"c\":0}}"), "{\"\\u0061\":{\"\\u0062\":1,\"c\":2}}");
    /* The first rule matching a value wins. */
    assert_string_equal(json("{\"keep\":\"v\",\"x\":{\"keep\":\"w\"}}"), "{\"keep\":\"v\",\"x\":{}}");
}

static void test_keep_turns_detectors_off(void **state)
{
    (void)state;
    rule("$.trusted", AP_BODY_KEEP, NULL);
    rule("$.trusted.inner.id", AP_BODY_PSEUDO, NULL);
    char want[256];
    snprintf(want, sizeof(want),
             "{\"trusted\":{\"mail\":\"a@b.com\",\"inner\":{\"id\":\"%s\"}},\"mail\":\"%s\"}", P("i"), P("a@b.com"));
    assert_string_equal(json("{\"trusted\":{\"mail\":\"a@b.com\",\"inner\":{\"id\":\"i\"}},\"mail\":\"a@b.com\"}"), want);
}

/* ---- JSON byte-exactness and separators ---- */

static void test_json_untouched_bytes(void **state)
{
    (void)state;
    rule("$.id", AP_BODY_PSEUDO, NULL);
    const char *body = " { \"z\" : 1.50e3 , \"a\":[ -0 , 1E+2,true,null ] ,\"s\":\"caf\\u00e9 \\/ \xc3\xa9\" ,\"id\" : \"u\" } \n";
    char want[512];
    snprintf(want, sizeof(want),
             " { \"z\" : 1.50e3 , \"a\":[ -0 , 1E+2,true,null ] ,\"s\":\"caf\\u00e9 \\/ \xc3\xa9\" ,\"id\" : \"%s\" } \n", P("u"));
    assert_string_equal(json(body), want);
    /* Nothing to change: the very input bytes are forwarded, no copy. */
    const char *same = "{\"b\":2,\"a\":1}";
    json(same);
    assert_ptr_equal(E->out.body, same);
    assert_false(E->out.changed);
}

static void test_json_drop_separators(void **state)
{
    (void)state;
    detectors_off();
    rule("$..x", AP_BODY_DROP, NULL);
    static const char *const cases[][2] = {
        {"{\"x\":1}", "{}"},
        {"{\"x\":1,\"a\":2}", "{\"a\":2}"},
        {"{\"a\":2,\"x\":1}", "{\"a\":2}"},
        {"{\"a\":2,\"x\":1,\"b\":3}", "{\"a\":2,\"b\":3}"},
        {"{\"x\":1,\"x\":2,\"a\":3,\"x\":4}", "{\"a\":3}"},
        {"{ \"x\" : 1 , \"a\" : 2 }", "{  \"a\" : 2 }"},
        {"{\"a\":{\"x\":[1,{\"x\":2}]},\"x\":{}}", "{\"a\":{}}"},
        {"[{\"x\":1},{\"y\":1,\"x\":2}]", "[{},{\"y\":1}]"},
        {"{}", "{}"},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        const char *got = json(cases[i][0]);
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("%s -> %s, want %s", cases[i][0], got, cases[i][1]);
        assert_int_equal(ap_json_validate(got, strlen(got), 16), 0);
    }
}

static void test_json_drop_elements(void **state)
{
    (void)state;
    detectors_off();
    rule("$.a[*].drop", AP_BODY_DROP, NULL);
    rule("$.b[0]", AP_BODY_DROP, NULL);
    rule("$.b[2]", AP_BODY_DROP, NULL);
    rule("$.c[*]", AP_BODY_DROP, NULL);
    assert_string_equal(json("{\"b\":[0,1,2,3],\"c\":[1,2,3],\"a\":[]}"), "{\"b\":[1,3],\"c\":[],\"a\":[]}");
    /* Whitespace around what is kept is kept. */
    assert_string_equal(json("{\"b\":[ 0 , 1 ]}"), "{\"b\":[  1 ]}");
}

/* ---- actions ---- */

static void test_action_pseudo_and_failures(void **state)
{
    (void)state;
    detectors_off();
    rule("$..id", AP_BODY_PSEUDO, NULL);
    char want[256];
    snprintf(want, sizeof(want), "{\"id\":\"%s\",\"n\":{\"id\":\"%s\"},\"e\":{\"id\":\"\"},\"z\":{\"id\":null},\"t\":{\"id\":true}}",
             P("a\"b"), P("12.5"));
    /* Escapes decoded before hashing; numbers hashed as written; empty,
     * null and booleans carry nothing and stay. */
    assert_string_equal(json("{\"id\":\"a\\\"b\",\"n\":{\"id\":12.5},\"e\":{\"id\":\"\"},\"z\":{\"id\":null},\"t\":{\"id\":true}}"), want);
    /* A value the pseudonymiser refuses, and a container: dropped. */
    assert_string_equal(json("{\"id\":\"fail\",\"k\":1}"), "{\"k\":1}");
    assert_string_equal(json("{\"k\":1,\"id\":{\"deep\":1}}"), "{\"k\":1}");
    /* No keyring: pseudonymised values are dropped, never forwarded. */
    E->ctx.pseudo.fn = NULL;
    assert_string_equal(json("{\"id\":\"secret\",\"k\":1}"), "{\"k\":1}");
}

static void test_action_ip_url_ua(void **state)
{
    (void)state;
    detectors_off();
    rule("$.ip", AP_BODY_TRUNCATE_IP, NULL);
    rule("$.url", AP_BODY_CLEAN_URL, NULL);
    rule("$.ref", AP_BODY_ORIGIN_ONLY, NULL);
    rule("$.ua", AP_BODY_REDUCE_UA, NULL);
    assert_string_equal(json("{\"ip\":\"203.0.113.77\"}"), "{\"ip\":\"203.0.113.0\"}");
    assert_string_equal(json("{\"ip\":\"2001:db8:1:2::5\"}"), "{\"ip\":\"2001:db8:1::\"}");
    assert_string_equal(json("{\"ip\":\"[2001:db8::5]:443\"}"), "{\"ip\":\"2001:db8::\"}");
    assert_string_equal(json("{\"ip\":\"198.51.100.7:8080\"}"), "{\"ip\":\"198.51.100.0\"}");
    assert_string_equal(json("{\"ip\":\"$remote\",\"k\":0}"), "{\"k\":0}");
    assert_string_equal(json("{\"ip\":7}"), "{}");
    assert_string_equal(json("{\"url\":\"https://u:p@shop.example/a/b?utm_source=n&gclid=1&q=2#frag\"}"),
                        "{\"url\":\"https://shop.example/a/b?utm_source=n\"}");
    assert_string_equal(json("{\"url\":\"/page?utm_medium=m&email=x\"}"), "{\"url\":\"/page?utm_medium=m\"}");
    assert_string_equal(json("{\"ref\":\"https://www.Example.com:8443/search?q=secret\"}"),
                        "{\"ref\":\"https://www.example.com:8443\"}");
    assert_string_equal(json("{\"ref\":\"/relative/path\",\"k\":1}"), "{\"k\":1}");
    assert_string_equal(json("{\"ua\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                             "Chrome/120.0.6099.109 Safari/537.36\"}"),
                        "{\"ua\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/120.0.0.0 Safari/537.36\"}");
}

static void test_action_set_geo(void **state)
{
    (void)state;
    detectors_off();
    rule("$.s", AP_BODY_SET, "redacted");
    rule("$.j", AP_BODY_SET, " {\"a\": [1]} ");
    rule("$.q", AP_BODY_SET, "\"quo\\\"ted\"");
    rule("$.loc", AP_BODY_GEO, NULL);
    rule("$.props.$geo", AP_BODY_GEO, NULL);
    E->ctx.geo_json = "{\"country\":\"FR\",\"region\":\"IDF\"}";
    E->ctx.geo_len = strlen(E->ctx.geo_json);
    assert_string_equal(json("{\"s\":{\"deep\":[1]},\"j\":1,\"q\":null,\"loc\":\"Paris\"}"),
                        "{\"s\":\"redacted\",\"j\": {\"a\": [1]} ,\"q\":\"quo\\\"ted\",\"loc\":{\"country\":\"FR\",\"region\":\"IDF\"}}");
    /* Missing: the geo object is added to its parent. */
    assert_string_equal(json("{\"props\":{}}"),
                        "{\"props\":{\"$geo\":{\"country\":\"FR\",\"region\":\"IDF\"}},\"loc\":{\"country\":\"FR\",\"region\":\"IDF\"}}");
    assert_string_equal(json("{\"props\":{\"a\":1}}"),
                        "{\"props\":{\"a\":1,\"$geo\":{\"country\":\"FR\",\"region\":\"IDF\"}},\"loc\":{\"country\":\"FR\",\"region\":\"IDF\"}}");
    /* Forms get the plain constant. */
    assert_string_equal(form("s=1&q=2"), "s=redacted&q=quo%22ted");
    /* No geo for this request: the member goes. */
    E->ctx.geo_json = NULL;
    assert_string_equal(json("{\"loc\":\"Paris\",\"k\":1}"), "{\"k\":1}");
}

static void test_action_round(void **state)
{
    (void)state;
    detectors_off();
    rule("$.w", AP_BODY_ROUND, "100");
    rule("$.t", AP_BODY_ROUND, "hour");
    rule("$.d", AP_BODY_ROUND, "day");
    rule("$.m", AP_BODY_ROUND, "minute");
    assert_string_equal(json("{\"w\":1279,\"t\":1700000123}"), "{\"w\":1200,\"t\":1699999200}");
    assert_string_equal(json("{\"w\":-1,\"t\":1700000123456}"), "{\"w\":-100,\"t\":1699999200000}");
    assert_string_equal(json("{\"w\":1299.99,\"t\":1.7000001e9}"), "{\"w\":1200,\"t\":1699999200}");
    assert_string_equal(json("{\"w\":\"1920\"}"), "{\"w\":\"1900\"}");
    assert_string_equal(json("{\"t\":\"2024-03-10T12:34:56.789Z\",\"d\":\"2024-03-10 12:34:56+01:00\",\"m\":\"2024-03-10T12:34:56\"}"),
                        "{\"t\":\"2024-03-10T12:00:00.000Z\",\"d\":\"2024-03-10 00:00:00+01:00\",\"m\":\"2024-03-10T12:34:00\"}");
    /* Already round: unchanged bytes. */
    assert_string_equal(json("{\"w\":1200}"), "{\"w\":1200}");
    assert_false(E->out.changed);
    /* Not a number nor a time: dropped. */
    assert_string_equal(json("{\"w\":\"wide\",\"t\":\"2024-13\",\"k\":1}"), "{\"k\":1}");
    assert_string_equal(json("{\"w\":\"2024-03-10T12:34:56Z\"}"), "{}");
    struct ap_body_rule r = {0};
    r.round_unit = AP_BODY_ROUND_STEP;
    r.round_step = 7;
    char out[64];
    assert_int_equal(ap_bodywalk_round(&r, "-15", 3, out, sizeof(out)), 3);
    assert_memory_equal(out, "-21", 3);
    assert_int_equal(ap_bodywalk_round(&r, "1e400", 5, out, sizeof(out)), -EINVAL);
}

/* ---- formats ---- */

static void test_formats_and_sniffing(void **state)
{
    (void)state;
    detectors_off();
    rule("$.id", AP_BODY_DROP, NULL);
    assert_string_equal(rw("application/json; charset=utf-8", "{\"id\":1,\"a\":2}"), "{\"a\":2}");
    assert_string_equal(rw("Application/Vnd.API+JSON", "{\"id\":1}"), "{}");
    assert_int_equal(E->out.format, AP_BODY_FMT_JSON);
    assert_string_equal(rw("text/plain;charset=UTF-8", " {\"id\":1}"), " {}");
    assert_int_equal(E->out.format, AP_BODY_FMT_JSON);
    assert_string_equal(rw(NULL, "{\"id\":1,\"x\":[1]}"), "{\"x\":[1]}");
    /* $.id names a member of a root object, not of a root array's element. */
    assert_string_equal(rw(NULL, "[{\"id\":1}]"), "[{\"id\":1}]");
    assert_string_equal(rw("application/x-ndjson", "{\"id\":1}\n\n{\"b\":2,\"id\":3}\r\n"), "{}\n\n{\"b\":2}\r\n");
    assert_int_equal(E->out.format, AP_BODY_FMT_NDJSON);
    /* NDJSON sent as text/plain is recognised after the first line. */
    assert_string_equal(rw("text/plain", "{\"id\":1}\n{\"id\":2,\"c\":3}"), "{}\n{\"c\":3}");
    assert_int_equal(E->out.format, AP_BODY_FMT_NDJSON);
    assert_string_equal(form("a=1&id=2&b=3"), "a=1&b=3");
    assert_string_equal(rw("text/plain", "en=x&id=1\r\nen=y&id=2&z=3"), "en=x\r\nen=y&z=3");
    assert_int_equal(E->out.format, AP_BODY_FMT_FORM_LINES);
    assert_string_equal(rw("text/plain", "hello world"), "hello world");
    assert_int_equal(E->out.format, AP_BODY_FMT_TEXT);
    /* Empty bodies pass whatever their type. */
    assert_string_equal(rwn("image/png", NULL, "", 0), "");
    assert_int_equal(E->rc, 0);
    assert_true(E->out.passthrough);
}

static void test_form_details(void **state)
{
    (void)state;
    detectors_off();
    rule("$.uid", AP_BODY_PSEUDO, NULL);
    rule("$.drop", AP_BODY_DROP, NULL);
    rule("$['ep.name']", AP_BODY_DROP, NULL);
    char want[256];
    /* Names and values are compared and transformed decoded, and the
     * replacement is encoded again. */
    snprintf(want, sizeof(want), "%%75id=%s&x=a+b", P("a b&c"));
    assert_string_equal(form("%75id=a+b%26c&x=a+b"), want);
    assert_string_equal(form("drop=1&drop&a=2&drop=3"), "a=2");
    assert_string_equal(form("drop=1&&a=2&"), "a=2");
    assert_string_equal(form("ep.name=x&ep.other=y"), "ep.other=y");
    assert_string_equal(form("uid&uid="), "uid&uid=");
    assert_string_equal(form("drop=1"), "");
    /* Bytes kept as they came, malformed escapes included. */
    const char *odd = "a=%zz&b=%E2%82%AC";
    assert_string_equal(form(odd), odd);
    assert_ptr_equal(E->out.body, odd);
}

static void test_unsupported_and_invalid(void **state)
{
    (void)state;
    finish();
    assert_string_equal(rw("multipart/form-data; boundary=x", "--x--"), "<-95 415>");
    assert_string_equal(rw("text/plain; charset=iso-8859-1", "{}"), "<-95 415>");
    assert_string_equal(json("{\"a\":1,}"), "<-22 400>");
    assert_string_equal(json("{\"a\":1} {}"), "<-22 400>");
    assert_string_equal(json("{\"a\":\"\xff\"}"), "<-22 400>");
    assert_string_equal(form("a=\xc3"), "<-22 400>");
    assert_string_equal(rw("application/x-ndjson", "{}\n{\n}"), "<-22 400>");
    assert_string_equal(E->out.reason, "invalid body");
    /* Too deep for the route. */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_string_equal(rwn("application/json", NULL, deep, 200), "<-22 400>");
    assert_string_equal(E->out.reason, "body nested too deeply");
    assert_int_equal(E->stats.rejected_400, 6);
    assert_int_equal(E->stats.rejected_415, 2);
}

static void test_on_invalid_drop_body(void **state)
{
    (void)state;
    E->pol.on_invalid = AP_BODY_INVALID_DROP_BODY;
    E->pol.on_unsupported = AP_BODY_UNSUPPORTED_DROP_BODY;
    assert_string_equal(json("{oops"), "");
    assert_int_equal(E->rc, 0);
    assert_int_equal(E->out.verdict, AP_BODY_FORWARD_EMPTY);
    assert_int_equal(E->out.status, 400);
    assert_int_equal(E->out.len, 0);
    assert_string_equal(rw("application/octet-stream", "\x01\x02"), "");
    assert_int_equal(E->out.verdict, AP_BODY_FORWARD_EMPTY);
    assert_int_equal(E->out.status, 415);
    assert_int_equal(E->stats.dropped_bodies, 2);
    /* Too large is never forwarded, whatever the route says. */
    E->pol.max_body = 4;
    assert_string_equal(json("{\"a\":1}"), "<-7 413>");
}

static void test_on_unsupported_pass(void **state)
{
    (void)state;
    E->pol.on_unsupported = AP_BODY_UNSUPPORTED_PASS;
    const char *bin = "\x89PNG....";
    assert_string_equal(rw("image/png", bin), bin);
    assert_true(E->out.passthrough);
    assert_int_equal(E->out.verdict, AP_BODY_FORWARD);
    assert_string_equal(rwn("application/json", "br", "xx", 2), "xx");
    assert_true(E->out.passthrough);
}

/* ---- layers ---- */

static void test_layer_json(void **state)
{
    (void)state;
    detectors_off();
    rule("$.data[*].co>json.data[*].data.id", AP_BODY_PSEUDO, NULL);
    rule("$.f>json.uid", AP_BODY_DROP, NULL);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"data\":[{\"co\":\"{\\\"data\\\":[{\\\"data\\\":{\\\"id\\\":\\\"%s\\\",\\\"n\\\":1}}]}\",\"e\":\"pv\"}]}", P("pv1"));
    assert_string_equal(json("{\"data\":[{\"co\":\"{\\\"data\\\":[{\\\"data\\\":{\\\"id\\\":\\\"pv1\\\",\\\"n\\\":1}}]}\",\"e\":\"pv\"}]}"), want);
    /* In a form: the value is percent-decoded, rewritten, encoded again. */
    assert_string_equal(form("f=%7B%22uid%22%3A1%2C%22k%22%3A2%7D&g=1"), "f=%7B%22k%22%3A2%7D&g=1");
    /* Not JSON: the layer does not apply and the value stays. */
    assert_string_equal(form("f=plain&g=1"), "f=plain&g=1");
    /* Looks like JSON but is broken: failing closed, the value goes. */
    assert_string_equal(form("f=%7B%22uid%22&g=1"), "g=1");
    assert_string_equal(E->out.audit[0].rule, "invalid layer");
}

static void test_layer_base64(void **state)
{
    (void)state;
    detectors_off();
    rule("$.data>base64json..distinct_id", AP_BODY_SET, "\"x\"");
    char enc[256], dec[256];
    const char *inner = "{\"event\":\"e\",\"properties\":{\"distinct_id\":\"abc\",\"k\":\"\xc3\xa9\"}}";
    const char *want_inner = "{\"event\":\"e\",\"properties\":{\"distinct_id\":\"x\",\"k\":\"\xc3\xa9\"}}";
    for (unsigned style = 0; style < 4; style++) {
        size_t en = ap_base64_encode(inner, strlen(inner), style, enc);
        char body[512];
        snprintf(body, sizeof(body), "{\"data\":\"%.*s\"}", (int)en, enc);
        const char *got = json(body);
        assert_int_equal(strncmp(got, "{\"data\":\"", 9), 0);
        size_t gl = strlen(got) - 11;
        size_t dn;
        unsigned gs;
        assert_int_equal(ap_base64_decode(got + 9, gl, dec, &dn, &gs), 0);
        assert_int_equal(dn, strlen(want_inner));
        assert_memory_equal(dec, want_inner, dn);
        /* The same alphabet and padding go back out. */
        bool url_visible = memchr(enc, '-', en) != NULL || memchr(enc, '_', en) != NULL;
        for (size_t k = 9; k < 9 + gl; k++) {
            if (style & AP_BASE64_URL)
                assert_true(got[k] != '+' && got[k] != '/');
            else
                assert_true(got[k] != '-' && got[k] != '_');
            if ((style & AP_BASE64_NOPAD) && url_visible)
                assert_true(got[k] != '=');
        }
        (void)gs;
    }
    /* In a form, with '+' turned into spaces by form decoding: find a
     * spacing whose encoding holds a '+'. */
    char inner2[64], body[256];
    size_t en = 0;
    for (int pad = 0; pad < 3; pad++) {
        snprintf(inner2, sizeof(inner2), "{%*s\"distinct_id\":\"v\",\"z\":\"\xef\xbf\xbe\"}", pad, "");
        en = ap_base64_encode(inner2, strlen(inner2), 0, enc);
        if (memchr(enc, '+', en) != NULL)
            break;
    }
    assert_non_null(memchr(enc, '+', en));
    snprintf(body, sizeof(body), "data=%.*s", (int)en, enc);
    const char *got = form(body);
    assert_int_equal(strncmp(got, "data=", 5), 0);
    char b64[256];
    size_t bn = ap_text_pct_decode(got + 5, strlen(got) - 5, b64, 0);
    size_t dn;
    assert_int_equal(ap_base64_decode(b64, bn, dec, &dn, NULL), 0);
    dec[dn] = '\0';
    assert_non_null(strstr(dec, "\"distinct_id\":\"x\",\"z\":\"\xef\xbf\xbe\"}"));
    /* Not base64 of JSON: left alone. */
    assert_string_equal(form("data=aGVsbG8%3D"), "data=aGVsbG8%3D");
}

static void test_layer_url(void **state)
{
    (void)state;
    rule("$.u>url.gid", AP_BODY_PSEUDO, NULL);
    rule("$.requests[*]>url._id", AP_BODY_PSEUDO, NULL);
    rule("$.requests[*]>url.cvar>json.mail", AP_BODY_DROP, NULL);
    char want[512];
    snprintf(want, sizeof(want), "{\"u\":\"https://a.example/p?gid=%s&q=1#f\"}", P("5"));
    assert_string_equal(json("{\"u\":\"https://a.example/p?gid=5&q=1#f\"}"), want);
    snprintf(want, sizeof(want), "{\"requests\":[\"?idsite=1&_id=%s\",\"?_id=%s&cvar=%%7B%%7D\"]}", P("c4a9"), P("x"));
    assert_string_equal(json("{\"requests\":[\"?idsite=1&_id=c4a9\",\"?_id=x&cvar=%7B%22mail%22%3A1%7D\"]}"), want);
    /* Detectors see the rest of the URL: its path, its other parameters. */
    snprintf(want, sizeof(want), "{\"u\":\"https://a.example/u/%s?gid=%s\"}", P("a@b.com"), P("7"));
    assert_string_equal(json("{\"u\":\"https://a.example/u/a@b.com?gid=7\"}"), want);
    /* A bare query string in a form value. */
    snprintf(want, sizeof(want), "u=gid%%3D%s%%26k%%3D2", P("9"));
    assert_string_equal(form("u=gid%3D9%26k%3D2"), want);
}

static void test_layer_limits(void **state)
{
    (void)state;
    detectors_off();
    rule("$.a>json.a>json.a>json.a>json.a>json.a>json.a>json.a>json.a>json.a", AP_BODY_DROP, NULL);
    /* Nine layers deep: more than AP_BODY_MAX_LAYERS. */
    char *body = malloc(16);
    memcpy(body, "{\"a\":1}", 8);
    size_t n = 7;
    for (int i = 0; i < 9; i++) {
        char *next = malloc(6 * n + 16);
        memcpy(next, "{\"a\":\"", 6);
        size_t m = 6 + ap_json_escape(body, n, next + 6);
        memcpy(next + m, "\"}", 2);
        free(body);
        body = next;
        n = m + 2;
    }
    /* The ninth layer cannot be read: like any unreadable layer, the value
     * holding it does not leave; the rest of the body does. */
    rwn("application/json", NULL, body, n);
    assert_int_equal(E->rc, 0);
    assert_int_equal(E->out.naudit, 1);
    assert_string_equal(E->out.audit[0].rule, "invalid layer");
    assert_true(E->out.len < n);
    assert_int_equal(ap_json_validate(E->out.body, E->out.len, 8), 0);
    free(body);
}

/* ---- compression ---- */

static size_t gz(const char *s, char *out, size_t cap, int wbits)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)s;
    z.avail_in = (uInt)strlen(s);
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void test_compression(void **state)
{
    (void)state;
    detectors_off();
    rule("$.id", AP_BODY_DROP, NULL);
    assert_int_equal(ap_body_policy_add_query_flag(&E->pol, "compression", "gzip-js", AP_BODY_ENC_GZIP), 0);
    char z[256];
    size_t zn = gz("{\"id\":1,\"a\":2}", z, sizeof(z), 31);
    /* Content-Encoding: gzip: decoded, forwarded plain, header removed. */
    assert_string_equal(rwn("application/json", "gzip", z, zn), "{\"a\":2}");
    assert_int_equal(E->out.encoding_in, AP_BODY_ENC_GZIP);
    assert_null(E->out.content_encoding);
    assert_null(E->out.strip_param);
    /* deflate, and a list with identity. */
    size_t dn = gz("{\"id\":1,\"a\":3}", z + 128, 128, 15);
    assert_string_equal(rwn("application/json", "identity, deflate", z + 128, dn), "{\"a\":3}");
    /* The query flag, without a header: the flag goes once decoded. */
    E->ctx.query = "ip=1&compression=gzip-js&ver=1.0";
    E->ctx.query_len = strlen(E->ctx.query);
    assert_string_equal(rwn("text/plain", NULL, z, zn), "{\"a\":2}");
    assert_string_equal(E->out.strip_param, "compression");
    /* The flag on a plain body is stale: read as it is, flag left alone. */
    assert_string_equal(rw("text/plain", "{\"id\":1,\"b\":1}"), "{\"b\":1}");
    assert_null(E->out.strip_param);
    assert_int_equal(E->out.encoding_in, AP_BODY_ENC_IDENTITY);
    E->ctx.query = NULL;
    E->ctx.query_len = 0;
    /* No header, no flag: the magic bytes (PostHog's current SDK). */
    assert_string_equal(rwn("text/plain", NULL, z, zn), "{\"a\":2}");
    assert_int_equal(E->out.encoding_in, AP_BODY_ENC_GZIP);
    /* Unsupported codings and corrupt streams. */
    assert_string_equal(rwn("application/json", "br", z, zn), "<-95 415>");
    assert_string_equal(rwn("application/json", "gzip, gzip", z, zn), "<-95 415>");
    assert_string_equal(rwn("application/json", "gzip", z, zn - 3), "<-22 400>");
    assert_string_equal(E->out.reason, "invalid compressed body");
    assert_int_equal(E->stats.inflated, 4);
}

static void test_compression_magic_off(void **state)
{
    (void)state;
    E->pol.gzip_magic = 0;
    char z[256];
    size_t zn = gz("{\"a\":2}", z, sizeof(z), 31);
    /* Not decoded: gzip bytes are not UTF-8 text, so the body is refused. */
    assert_string_equal(rwn("text/plain", NULL, z, zn), "<-22 400>");
}

static void test_recompress(void **state)
{
    (void)state;
    detectors_off();
    rule("$.id", AP_BODY_DROP, NULL);
    E->pol.recompress = 1;
    assert_int_equal(ap_body_policy_add_query_flag(&E->pol, "compression", "gzip-js", AP_BODY_ENC_GZIP), 0);
    finish();
    char z[256];
    size_t zn = gz("{\"id\":1,\"a\":2}", z, sizeof(z), 31);
    rwn("application/json", "gzip", z, zn);
    assert_int_equal(E->rc, 0);
    assert_string_equal(E->out.content_encoding, "gzip");
    char *plain;
    size_t pn;
    assert_int_equal(ap_gzip_inflate(&E->arena, AP_GZIP_GZIP, E->out.body, E->out.len, 1 << 20, 0, 0, &plain, &pn), 0);
    assert_string_equal(plain, "{\"a\":2}");
    /* With the flag it goes on as it came: no header, flag kept. */
    E->ctx.query = "compression=gzip-js";
    E->ctx.query_len = strlen(E->ctx.query);
    rwn("text/plain", NULL, z, zn);
    assert_null(E->out.content_encoding);
    assert_null(E->out.strip_param);
    assert_true(ap_gzip_has_magic(E->out.body, E->out.len));
    /* Nothing changed: the very compressed bytes go on. */
    size_t un = gz("{\"a\":2}", z, sizeof(z), 31);
    rwn("application/json", "gzip", z, un);
    assert_ptr_equal(E->out.body, z);
    assert_int_equal(E->out.len, un);
    assert_string_equal(E->out.content_encoding, "gzip");
}

static void test_bomb(void **state)
{
    (void)state;
    size_t big = 2 << 20;
    char *s = malloc(big + 16);
    memcpy(s, "{\"a\":\"", 6);
    memset(s + 6, 'a', big);
    memcpy(s + 6 + big, "\"}", 3);
    char *z = malloc(big);
    size_t zn = gz(s, z, big, 31);
    E->pol.max_inflated = 1 << 20;
    assert_string_equal(rwn("application/json", "gzip", z, zn), "<-7 413>");
    assert_string_equal(E->out.reason, "decompressed body too large");
    E->pol.max_inflated = 8 << 20;
    assert_string_equal(rwn("application/json", "gzip", z, zn), "<-7 413>");
    E->pol.max_ratio = 0;
    assert_int_equal(ap_body_rewrite(&E->pol, &E->ctx, "application/json", 16, "gzip", 4, z, zn, &E->out), 0);
    assert_int_equal(E->out.len, big + 8);
    assert_int_equal(E->stats.rejected_413, 2);
    free(s);
    free(z);
}

/* ---- detectors and regexes in bodies ---- */

static void test_detectors_in_bodies(void **state)
{
    (void)state;
    char want[512];
    snprintf(want, sizeof(want), "{\"t\":\"mail %s from 10.1.2.0 on %s\",\"n\":42,\"k\":\"plain\"}", P("Jo@Ex.org"),
             P("00:11:22:33:44:55"));
    assert_string_equal(json("{\"t\":\"mail Jo@Ex.org from 10.1.2.3 on 00:11:22:33:44:55\",\"n\":42,\"k\":\"plain\"}"), want);
    /* Escaped text is decoded first, then written back escaped. */
    snprintf(want, sizeof(want), "{\"t\":\"%s\\n\"}", P("a@b.io"));
    assert_string_equal(json("{\"t\":\"a\\u0040b.io\\n\"}"), want);
    /* Click ids: members named like one, and URLs carrying one. */
    assert_string_equal(json("{\"gclid\":\"x\",\"initial_fbclid\":null,\"u\":\"https://s.example/?gclid=1&utm_source=a\"}"),
                        "{\"u\":\"https://s.example/?utm_source=a\"}");
    assert_string_equal(form("msclkid=1&ok=2"), "ok=2");
    /* A document that is one string a detector drops becomes null. */
    ap_body_policy_free(&E->pol);
    ap_body_policy_init(&E->pol, AP_PROFILE_STRICT);
    assert_int_equal(ap_body_policy_set_detector(&E->pol, AP_DETECT_EMAIL, AP_BODY_DROP), 0);
    assert_string_equal(json(" \"mail x@y.org\" "), " null ");
    assert_string_equal(rw("application/x-ndjson", "\"x@y.org\"\n{}"), "null\n{}");
    ap_body_policy_free(&E->pol);
    ap_body_policy_init(&E->pol, AP_PROFILE_STRICT);
    /* Plain text bodies: detectors only. */
    snprintf(want, sizeof(want), "contact %s", P("x@y.org"));
    assert_string_equal(rw("text/plain", "contact x@y.org"), want);
    /* Detectors drop when told to. */
    ap_body_policy_free(&E->pol);
    ap_body_policy_init(&E->pol, AP_PROFILE_STRICT);
    assert_int_equal(ap_body_policy_set_detector(&E->pol, AP_DETECT_PHONE, AP_BODY_DROP), 0);
    assert_string_equal(json("{\"p\":\"+14155552671\",\"k\":1}"), "{\"k\":1}");
}

/* Names are scanned too: an address used as a key is pseudonymised. */
static void test_detectors_on_keys(void **state)
{
    (void)state;
    rule("$.m.z", AP_BODY_DROP, NULL);
    rule("$.m.*@*", AP_BODY_DROP, NULL);
    rule("$.t", AP_BODY_KEEP, NULL);
    char want[256];
    snprintf(want, sizeof(want), "{\"users\":{\"%s\":{\"n\":1}}}", P("a@b.com"));
    assert_string_equal(json("{\"users\":{\"a@b.com\":{\"n\":1}}}"), want);
    /* The replaced key of the first member kept after a dropped one. */
    assert_string_equal(json("{\"m\":{\"z\":1,\"10.1.2.3\":2,\"q\":3}}"), "{\"m\":{\"10.1.2.0\":2,\"q\":3}}");
    /* A key is replaced, then a rule drops its value: the member goes
     * whole, wherever it stands. */
    assert_string_equal(json("{\"m\":{\"a\":1,\"x@y.com\":2,\"b\":3}}"), "{\"m\":{\"a\":1,\"b\":3}}");
    assert_string_equal(json("{\"m\":{\"x@y.com\":2,\"b\":3}}"), "{\"m\":{\"b\":3}}");
    assert_string_equal(json("{\"m\":{\"z\":0,\"x@y.com\":2}}"), "{\"m\":{}}");
    /* Kept subtrees keep their keys. */
    assert_string_equal(json("{\"t\":{\"a@b.com\":1}}"), "{\"t\":{\"a@b.com\":1}}");
    snprintf(want, sizeof(want), "%s=1&k=2", P("x@y.com"));
    assert_string_equal(form("x%40y.com=1&k=2"), want);
    snprintf(want, sizeof(want), "k=2&%s", P("x@y.com"));
    assert_string_equal(form("k=2&x%40y.com"), want);
}

static void test_detectors_off_in_balanced(void **state)
{
    (void)state;
    ap_body_policy_free(&E->pol);
    ap_body_policy_init(&E->pol, AP_PROFILE_BALANCED);
    const char *b = "{\"t\":\"a@b.com 1.2.3.4\"}";
    assert_string_equal(json(b), b);
}

static void test_regex(void **state)
{
    (void)state;
    detectors_off();
    size_t off;
    assert_int_equal(ap_body_policy_add_regex(&E->pol, "cust-[0-9]{4,}", AP_BODY_PSEUDO, &off), 0);
    assert_int_equal(ap_body_policy_add_regex(&E->pol, "(?i)secret", AP_BODY_DROP, &off), 0);
    assert_int_equal(ap_body_policy_add_regex(&E->pol, "x*", AP_BODY_PSEUDO, &off), 0);
    char want[256];
    snprintf(want, sizeof(want), "{\"a\":\"%s and %s\",\"c\":\"cust-12\"}", P("cust-1234"), P("cust-98765"));
    assert_string_equal(json("{\"a\":\"cust-1234 and cust-98765\",\"c\":\"cust-12\"}"), want);
    assert_string_equal(json("{\"a\":\"my SeCrEt\",\"b\":1}"), "{\"b\":1}");
    snprintf(want, sizeof(want), "q=%s", P("cust-00001"));
    assert_string_equal(form("q=cust-00001"), want);
    /* Catastrophic backtracking hits the match limit: value dropped. */
    ap_body_policy_free(&E->pol);
    ap_body_policy_init(&E->pol, AP_PROFILE_BALANCED);
    assert_int_equal(ap_body_policy_add_regex(&E->pol, "(a+)+$", AP_BODY_PSEUDO, &off), 0);
    char body[128] = "{\"a\":\"";
    memset(body + 6, 'a', 40);
    memcpy(body + 46, "!\",\"b\":1}", 9);
    assert_string_equal(json(body), "{\"b\":1}");
}

/* ---- audit, counters, presets ---- */

static void test_audit(void **state)
{
    (void)state;
    rule("$.events[*].user_id", AP_BODY_PSEUDO, NULL);
    assert_int_equal(ap_bodypreset_add(&E->pol, "posthog"), 0);
    assert_int_equal(ap_bodypreset_add(&E->pol, "nosuch"), -ENOENT);
    json("{\"events\":[{\"user_id\":\"u\"},{\"user_id\":\"v\",\"distinct_id\":\"d\",\"t\":\"a@b.com\",\"we ird\":{\"gclid\":1}}]}");
    assert_int_equal(E->rc, 0);
    assert_int_equal(E->out.naudit, 5);
    assert_string_equal(E->out.audit[0].path, "$.events[0].user_id");
    assert_string_equal(E->out.audit[0].rule, "$.events[*].user_id");
    assert_string_equal(E->out.audit[0].origin, "route");
    assert_int_equal(E->out.audit[0].action, AP_BODY_PSEUDO);
    assert_int_equal(E->out.audit[0].detector, AP_DETECT_NKINDS);
    assert_string_equal(E->out.audit[2].path, "$.events[1].distinct_id");
    assert_string_equal(E->out.audit[2].origin, "preset posthog");
    assert_string_equal(E->out.audit[3].path, "$.events[1].t");
    assert_int_equal(E->out.audit[3].detector, AP_DETECT_EMAIL);
    assert_string_equal(E->out.audit[4].path, "$.events[1][\"we ird\"].gclid");
    assert_int_equal(E->out.audit[4].action, AP_BODY_DROP);
    assert_int_equal(E->stats.actions[AP_BODY_PSEUDO], 3);
    assert_int_equal(E->stats.detections[AP_DETECT_EMAIL], 1);
    assert_int_equal(E->stats.detections[AP_DETECT_CLICKID], 1);
    assert_int_equal(E->stats.bodies, 1);
    assert_int_equal(E->stats.rewritten, 1);
    /* Without the audit flag nothing is recorded, counters still count. */
    E->ctx.audit = 0;
    json("{\"distinct_id\":\"d\"}");
    assert_int_equal(E->out.naudit, 0);
    assert_int_equal(E->stats.actions[AP_BODY_PSEUDO], 4);
}

static void test_every_preset_loads(void **state)
{
    (void)state;
    const char *const *names = ap_bodypreset_names();
    size_t n = 0;
    for (; names[n] != NULL; n++) {
        struct ap_body_policy p;
        ap_body_policy_init(&p, AP_PROFILE_STRICT);
        assert_int_equal(ap_bodypreset_add(&p, names[n]), 0);
        assert_true(p.nrules > 3);
        assert_int_equal(ap_body_policy_finish(&p), 0);
        ap_body_policy_free(&p);
    }
    assert_int_equal(n, 10);
}

/* ---- the query flag helper ---- */

static void test_strip_param(void **state)
{
    (void)state;
    char out[256];
    size_t n;
    static const char *const cases[][3] = {
        {"/e/?compression=gzip-js&ver=1", "compression", "/e/?ver=1"},
        {"/e/?ip=1&compression=gzip-js", "compression", "/e/?ip=1"},
        {"/e/?compression=gzip-js", "compression", "/e/"},
        {"/e/?comp%72ession=x&a=1&compression", "compression", "/e/?a=1"},
        {"/e/?a=1#frag", "compression", "/e/?a=1#frag"},
        {"/e/", "compression", "/e/"},
        {"http://h.example/e?x=1&compression=1", "compression", "http://h.example/e?x=1"},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        assert_int_equal(ap_body_strip_param(cases[i][0], strlen(cases[i][0]), cases[i][1], out, sizeof(out), &n), 0);
        assert_string_equal(out, cases[i][2]);
        assert_int_equal(n, strlen(cases[i][2]));
    }
    assert_int_equal(ap_body_strip_param("/e/?a=1", 7, "b", out, 7, &n), -ENOBUFS);
    assert_int_equal(ap_body_strip_param("/e/?a=1", 7, "b", out, 8, &n), 0);
}

/* ---- memory ---- */

static void test_output_limit(void **state)
{
    (void)state;
    detectors_off();
    char big[2048];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rule("$[*]", AP_BODY_SET, big);
    char body[2100];
    size_t n = 0;
    body[n++] = '[';
    for (int i = 0; i < 1000; i++) {
        body[n++] = '1';
        body[n++] = ',';
    }
    body[n - 1] = ']';
    assert_string_equal(rwn("application/json", NULL, body, n), "<-7 413>");
    assert_string_equal(E->out.reason, "rewritten body too large");
}

/* Every arena size from nothing to enough: an error or the right answer,
 * never a crash or a leak (curl's torture test, by arena cap). */
static void test_arena_exhaustion(void **state)
{
    (void)state;
    rule("$..id", AP_BODY_PSEUDO, NULL);
    rule("$.d>base64json.x", AP_BODY_DROP, NULL);
    assert_int_equal(ap_body_policy_add_regex(&E->pol, "cust-[0-9]+", AP_BODY_PSEUDO, NULL), 0);
    finish();
    const char *body = "{\"id\":\"a\",\"l\":[{\"id\":\"b\",\"t\":\"x@y.com cust-77\"}],\"d\":\"eyJ4IjoxLCJ5IjoyfQ==\"}";
    char ref[512];
    snprintf(ref, sizeof(ref), "%s", json(body));
    assert_int_equal(E->rc, 0);
    int ok = 0, oom = 0;
    for (size_t cap = 0; cap < 64 * 1024; cap += 64) {
        struct ap_arena a;
        ap_arena_init(&a, 256, cap);
        E->ctx.arena = &a;
        struct ap_body_out out;
        int rc = ap_body_rewrite(&E->pol, &E->ctx, "application/json", 16, NULL, 0, body, strlen(body), &out);
        if (rc == 0) {
            assert_int_equal(out.len, strlen(ref));
            assert_memory_equal(out.body, ref, out.len);
            ok++;
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(out.status, 500);
            assert_int_equal(out.verdict, AP_BODY_REJECT);
            oom++;
        }
        ap_arena_free(&a);
    }
    E->ctx.arena = &E->arena;
    assert_true(ok > 0);
    assert_true(oom > 0);
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Nothing quadratic in string length or key count. */
static void test_linear_time(void **state)
{
    (void)state;
    rule("$..id", AP_BODY_PSEUDO, NULL);
    rule("$..*_x", AP_BODY_DROP, NULL);
    finish();
    E->ctx.audit = 0;
    size_t n = 4 << 20;
    E->pol.max_body = n + 1024;
    char *b = malloc(n + 64);
    /* One long string full of escapes and e-mail-like bits. */
    size_t o = 0;
    o += (size_t)snprintf(b, 64, "{\"id\":\"");
    while (o < n - 16) {
        memcpy(b + o, "\\u0040a@\\n1.2", 13);
        o += 13;
    }
    memcpy(b + o, "\"}", 3);
    o += 2;
    double t0 = secs();
    ap_arena_free(&E->arena);
    ap_arena_init(&E->arena, 1 << 20, 0);
    E->rc = ap_body_rewrite(&E->pol, &E->ctx, "application/json", 16, NULL, 0, b, o, &E->out);
    assert_int_equal(E->rc, 0);
    double t1 = secs() - t0;
    /* Many keys. */
    o = 0;
    b[o++] = '{';
    int k = 0;
    while (o < n - 64)
        o += (size_t)snprintf(b + o, 64, "\"k%d_x\":%d,\"s%d\":\"a@b.com\",", k, k, k), k++;
    b[o - 1] = '}';
    t0 = secs();
    E->rc = ap_body_rewrite(&E->pol, &E->ctx, "application/json", 16, NULL, 0, b, o, &E->out);
    assert_int_equal(E->rc, 0);
    double t2 = secs() - t0;
    if (t1 > 5.0 || t2 > 5.0)
        fail_msg("4 MiB took %.2f s (one string) and %.2f s (%d keys)", t1, t2, k);
    free(b);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_path_errors),
        T(test_path_steps),
        T(test_names),
        T(test_detector_and_flag_api),
        T(test_match_keys),
        T(test_match_escaped_keys_and_priority),
        T(test_keep_turns_detectors_off),
        T(test_json_untouched_bytes),
        T(test_json_drop_separators),
        T(test_json_drop_elements),
        T(test_action_pseudo_and_failures),
        T(test_action_ip_url_ua),
        T(test_action_set_geo),
        T(test_action_round),
        T(test_formats_and_sniffing),
        T(test_form_details),
        T(test_unsupported_and_invalid),
        T(test_on_invalid_drop_body),
        T(test_on_unsupported_pass),
        T(test_layer_json),
        T(test_layer_base64),
        T(test_layer_url),
        T(test_layer_limits),
        T(test_compression),
        T(test_compression_magic_off),
        T(test_recompress),
        T(test_bomb),
        T(test_detectors_in_bodies),
        T(test_detectors_on_keys),
        T(test_detectors_off_in_balanced),
        T(test_regex),
        T(test_audit),
        T(test_every_preset_loads),
        T(test_strip_param),
        T(test_output_limit),
        T(test_arena_exhaustion),
        T(test_linear_time),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

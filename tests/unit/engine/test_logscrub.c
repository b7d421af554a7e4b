/* Unit tests of proxy/engine/logscrub.c: field actions by name (built-in
 * and route rules), inheritance into nested objects and arrays, free-text
 * detectors, address modes, pseudonyms with and without a keyring, and
 * inputs that are not JSON, too deep, or too large for the output. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <time.h>

#include <cmocka.h>

#include "anonproxy/buf.h"
#include "anonproxy/json.h"
#include "anonproxy/logscrub.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"

static struct ap_pseudo_source src;
static struct ap_pseudo_keyring kr;
static struct ap_policy pol;
static int64_t now;

static int group_setup(void **state)
{
    now = (int64_t)time(NULL);
    static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
    if (ap_pseudo_source_init_secret(&src, secret, 32) != 0)
        return -1;
    ap_pseudo_keyring_init(&kr, &src);
    if (ap_pseudo_keyring_prepare(&kr, now) != 0)
        return -1;
    if (ap_policy_init(&pol, "applogs", AP_PROFILE_STRICT) != 0 || ap_policy_finish(&pol) != 0)
        return -1;
    pol.addr_mode = AP_ADDR_TRUNCATE;
    return 0;
}

static int group_teardown(void **state)
{
    ap_policy_free(&pol);
    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
    return 0;
}

static struct ap_logscrub_ctx ctx_default(void)
{
    return (struct ap_logscrub_ctx){.policy = &pol, .keyring = &kr, .now = now, .scope = "applogs"};
}

/* Scrubs `in` and returns the output as a malloc'd NUL-terminated string. */
static char *scrub(const struct ap_logscrub_ctx *ctx, const char *in, int *rc)
{
    struct ap_buf out;
    ap_buf_init(&out, 1 << 20);
    *rc = ap_logscrub_json(ctx, in, strlen(in), &out);
    char *s = malloc(out.len + 1);
    assert_non_null(s);
    memcpy(s, out.data ? out.data : "", out.len);
    s[out.len] = '\0';
    ap_buf_free(&out);
    return s;
}

static char *pseudo_of(const char *v)
{
    static char h[AP_PSEUDO_HEX_MAX];
    int n = ap_pseudo_hex(&kr, now, (struct ap_slice){"applogs", 7}, (struct ap_slice){v, strlen(v)}, 64,
                          h, sizeof(h));
    assert_int_equal(n, 16);
    return h;
}

static void assert_absent(const char *hay, const char *needle)
{
    assert_non_null(hay);
    assert_non_null(needle);
    if (strstr(hay, needle) != NULL)
        fail_msg("'%s' still present in %s", needle ? needle : "", hay ? hay : "");
}

static void assert_present(const char *hay, const char *needle)
{
    assert_non_null(hay);
    assert_non_null(needle);
    if (strstr(hay, needle) == NULL)
        fail_msg("'%s' missing from %s", needle ? needle : "", hay ? hay : "");
}

static void test_builtin_fields(void **state)
{
    struct ap_logscrub_ctx ctx = ctx_default();
    struct ap_logscrub_stats st = {0};
    ctx.stats = &st;
    const char *in =
        "{\"ts\":\"2024-05-01T00:00:00Z\",\"level\":\"info\",\"client_ip\":\"203.0.113.77\","
        "\"x-forwarded-for\":\"198.51.100.23, 2001:db8:1234:5678::1\",\"user_id\":123456,"
        "\"email\":\"Alice@Example.com\",\"session_id\":\"s3ss10n-canary\",\"password\":\"hunter2\","
        "\"user_agent\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.109 Safari/537.36\",\"url\":\"https://shop.example/p?id=7&email=bob%40example.org"
        "&utm_source=news&gclid=abc#frag\",\"msg\":\"login by carol@example.net from 192.0.2.200 ok\","
        "\"n\":1.5e3,\"ok\":true,\"nothing\":null}";
    int rc;
    char *out = scrub(&ctx, in, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(ap_json_validate(out, strlen(out), 8), 0);
    /* Addresses: truncated to /24 and /48. */
    assert_present(out, "\"client_ip\":\"203.0.113.0\"");
    assert_present(out, "\"x-forwarded-for\":\"198.51.100.0, 2001:db8:1234::\"");
    /* Identifiers: pseudonyms; numbers too. */
    char want[128];
    snprintf(want, sizeof(want), "\"user_id\":\"%s\"", pseudo_of("123456"));
    assert_present(out, want);
    snprintf(want, sizeof(want), "\"session_id\":\"%s\"", pseudo_of("s3ss10n-canary"));
    assert_present(out, want);
    /* Secrets are gone with their names. */
    assert_absent(out, "password");
    assert_absent(out, "hunter2");
    /* User-Agent reduced, URL cleaned, free text detected. */
    assert_absent(out, "6099");
    assert_present(out, "\"user_agent\":\"Mozilla/5.0");
    assert_present(out, "\"url\":\"https://shop.example/p?utm_source=news\"");
    assert_absent(out, "Alice@Example.com");
    assert_absent(out, "carol@example.net");
    assert_absent(out, "bob%40example.org");
    assert_absent(out, "192.0.2.200");
    assert_present(out, "from 192.0.2.0 ok");
    snprintf(want, sizeof(want), "login by [email:%s]", pseudo_of("carol@example.net"));
    assert_present(out, want);
    /* Other values are copied. */
    assert_present(out, "\"level\":\"info\"");
    assert_present(out, "\"n\":1.5e3,\"ok\":true,\"nothing\":null}");
    assert_int_equal(st.records, 1);
    assert_true(st.detections >= 2);
    assert_true(st.fields[AP_LOGSCRUB_DROP] >= 1);
    free(out);
}

static void test_nested_and_arrays(void **state)
{
    struct ap_logscrub_ctx ctx = ctx_default();
    const char *in = "{\"user\":{\"name\":\"alice\",\"id\":42,\"ip\":\"10.1.2.3\"},"
                     "\"ips\":[\"10.9.9.9\"],\"peers\":{\"addr\":[\"10.8.8.8\",\"[2001:db8::7]:443\"]},"
                     "\"tags\":[\"a\",{\"note\":\"mail dave@example.com\"}],\"alice@example.com\":1}";
    int rc;
    char *out = scrub(&ctx, in, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(ap_json_validate(out, strlen(out), 8), 0);
    /* Fields of "user" inherit its pseudonymisation; "ip" has its own. */
    char want[128];
    snprintf(want, sizeof(want), "\"name\":\"%s\"", pseudo_of("alice"));
    assert_present(out, want);
    assert_present(out, "\"ip\":\"10.1.2.0\"");
    assert_present(out, "\"addr\":[\"10.8.8.0\",\"2001:db8::\"]");
    assert_absent(out, "dave@example.com");
    /* Member names are free text too. */
    assert_absent(out, "alice@example.com");
    /* "ips" has no rule of its own: its strings are free text, and the
     * detector still truncates the address. */
    assert_present(out, "\"ips\":[\"10.9.9.0\"]");
    free(out);
}

static void test_route_rules_and_modes(void **state)
{
    struct ap_logscrub_rule rules[] = {
        {"client_ip", AP_LOGSCRUB_KEEP},
        {"order_*", AP_LOGSCRUB_PSEUDO},
        {"debug", AP_LOGSCRUB_DROP},
    };
    struct ap_logscrub_ctx ctx = ctx_default();
    ctx.rules = rules;
    ctx.nrules = AP_ARRAY_SIZE(rules);
    assert_int_equal(ap_logscrub_action_for(&ctx, "CLIENT_IP", 9), AP_LOGSCRUB_KEEP);
    assert_int_equal(ap_logscrub_action_for(&ctx, "order_ref", 9), AP_LOGSCRUB_PSEUDO);
    assert_int_equal(ap_logscrub_action_for(&ctx, "remote_addr", 11), AP_LOGSCRUB_ADDRESS);
    assert_int_equal(ap_logscrub_action_for(&ctx, "message", 7), AP_LOGSCRUB_TEXT);
    int rc;
    char *out = scrub(&ctx, "{\"client_ip\":\"203.0.113.77\",\"order_ref\":\"X1\",\"debug\":{\"a\":1},\"remote_addr\":\"203.0.113.5\"}", &rc);
    assert_int_equal(rc, 0);
    char want[160];
    snprintf(want, sizeof(want), "{\"client_ip\":\"203.0.113.77\",\"order_ref\":\"%s\",\"remote_addr\":\"203.0.113.0\"}",
             pseudo_of("X1"));
    assert_string_equal(out, want);
    free(out);

    /* The route's client_address mode applies to addresses. */
    enum ap_addr_mode saved = pol.addr_mode;
    pol.addr_mode = AP_ADDR_PSEUDO;
    ctx = ctx_default();
    out = scrub(&ctx, "{\"ip\":\"203.0.113.77\",\"m\":\"from 203.0.113.77\"}", &rc);
    snprintf(want, sizeof(want), "{\"ip\":\"%s\",\"m\":\"from [ip:%s]\"}", pseudo_of("203.0.113.77"),
             pseudo_of("203.0.113.77"));
    assert_string_equal(out, want);
    free(out);
    pol.addr_mode = AP_ADDR_DROP;
    out = scrub(&ctx, "{\"ip\":\"203.0.113.77\",\"m\":\"from 203.0.113.77\"}", &rc);
    assert_string_equal(out, "{\"m\":\"from [ip]\"}");
    free(out);
    pol.addr_mode = AP_ADDR_PLACEHOLDER;
    out = scrub(&ctx, "{\"ip\":\"203.0.113.77\"}", &rc);
    assert_string_equal(out, "{\"ip\":\"0.0.0.0\"}");
    free(out);
    pol.addr_mode = saved;
}

static void test_without_keyring(void **state)
{
    struct ap_logscrub_ctx ctx = ctx_default();
    ctx.keyring = NULL;
    int rc;
    char *out = scrub(&ctx, "{\"user_id\":\"u1\",\"msg\":\"to eve@example.com\",\"a\":1}", &rc);
    assert_int_equal(rc, 0);
    /* Pseudonymised fields cannot be made: they are dropped, never kept. */
    assert_string_equal(out, "{\"msg\":\"to [email]\",\"a\":1}");
    free(out);
}

static void test_escapes_are_decoded(void **state)
{
    struct ap_logscrub_ctx ctx = ctx_default();
    int rc;
    /* An address hidden behind JSON escapes is still found. */
    char *out = scrub(&ctx, "{\"m\":\"x frank\\u0040example.com \\\"q\\\" 10.0.0.1\\n\"}", &rc);
    assert_int_equal(rc, 0);
    assert_absent(out, "frank");
    assert_present(out, "\\\"q\\\" 10.0.0.0\\n\"}");
    free(out);
}

static void test_urls_in_text(void **state)
{
    struct ap_logscrub_ctx ctx = ctx_default();
    struct ap_buf out;
    ap_buf_init(&out, 4096);
    const char *t = "GET https://shop.example/cart?uid=77&utm_medium=mail#x then HTTP://a.example/?q=1 done";
    assert_int_equal(ap_logscrub_text(&ctx, t, strlen(t), &out), 0);
    assert_int_equal(ap_buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, "GET https://shop.example/cart?utm_medium=mail then HTTP://a.example/ done");
    ap_buf_free(&out);
}

static void test_bad_inputs(void **state)
{
    struct ap_logscrub_ctx ctx = ctx_default();
    struct ap_logscrub_stats st = {0};
    ctx.stats = &st;
    const char *bad[] = {"", "{", "{\"a\":}", "{\"a\":1,}", "[1 2]", "{\"a\":1} x", "\"\xff\"",
                         "{\"a\":\"\x01\"}", "nul", "{'a':1}"};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad); i++) {
        struct ap_buf out;
        ap_buf_init(&out, 1024);
        assert_int_equal(ap_buf_append(&out, "keep", 4), 0);
        int rc = ap_logscrub_json(&ctx, bad[i], strlen(bad[i]), &out);
        if (rc >= 0)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(out.len, 4);
        ap_buf_free(&out);
    }
    assert_int_equal(st.rejected, AP_ARRAY_SIZE(bad));
    /* Too deep. */
    char deep[200];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    struct ap_buf out;
    ap_buf_init(&out, 1024);
    assert_true(ap_logscrub_json(&ctx, deep, n, &out) < 0);
    assert_int_equal(out.len, 0);
    /* Output limit: the record is refused, the buffer left as it was. */
    ap_buf_free(&out);
    ap_buf_init(&out, 10);
    assert_int_equal(ap_logscrub_json(&ctx, "{\"message\":\"a long enough text\"}", 32, &out), -E2BIG);
    assert_int_equal(out.len, 0);
    ap_buf_free(&out);
}

static void test_action_names(void **state)
{
    enum ap_logscrub_action a;
    for (int i = 0; i < AP_LOGSCRUB_NACTIONS; i++) {
        assert_int_equal(ap_logscrub_action_parse(ap_logscrub_action_name((enum ap_logscrub_action)i), &a), 0);
        assert_int_equal(a, i);
    }
    assert_int_equal(ap_logscrub_action_parse("pseudonymize", &a), 0);
    assert_int_equal(a, AP_LOGSCRUB_PSEUDO);
    assert_int_equal(ap_logscrub_action_parse("hash", &a), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_fields),
        cmocka_unit_test(test_nested_and_arrays),
        cmocka_unit_test(test_route_rules_and_modes),
        cmocka_unit_test(test_without_keyring),
        cmocka_unit_test(test_escapes_are_decoded),
        cmocka_unit_test(test_urls_in_text),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_action_names),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* Unit tests of proxy/engine/cookie.c. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/cookie.h"

/* Test pseudonymiser: "P" and the value's length; "fail" fails; "semi"
 * returns a byte that is not a cookie-octet. */
static int fake_pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    if (len == 4 && memcmp(val, "fail", 4) == 0)
        return -EINVAL;
    char tmp[32];
    int n = (len == 4 && memcmp(val, "semi", 4) == 0) ? snprintf(tmp, sizeof(tmp), "a;b")
                                                      : snprintf(tmp, sizeof(tmp), "P%zu", len);
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, tmp, (size_t)n);
    return n;
}

static struct ap_cookie_policy policy;
static struct ap_cookie_ctx ctx;

/* Every test runs twice: on policies as built (each rule's glob matched in
 * turn) and compiled (ap_cookie_policy_compile): the results must be the
 * same. */
static bool compiled;

static void setup(const struct ap_cookie_rule *rules, size_t n)
{
    if (policy.magic == AP_COOKIE_POLICY_MAGIC)
        ap_cookie_policy_release(&policy);
    ap_cookie_policy_init(&policy);
    policy.rules = rules;
    policy.nrules = n;
    if (compiled)
        assert_int_equal(ap_cookie_policy_compile(&policy), 0);
    memset(&ctx, 0, sizeof(ctx));
    ctx.policy = &policy;
    ctx.pseudo.fn = fake_pseudo;
}

static const char *rw(const char *h)
{
    static char out[1 << 16];
    size_t n = 99;
    assert_int_equal(ap_cookie_rewrite(&ctx, h, strlen(h), out, sizeof(out), &n), 0);
    assert_int_equal(n, strlen(out));
    return out;
}

static void test_default_drop(void **state)
{
    (void)state;
    setup(NULL, 0);
    assert_string_equal(rw("a=1; b=2"), "");
    assert_string_equal(rw(""), "");
    assert_int_equal(ap_cookie_action_for(&policy, "x", 1), AP_COOKIE_DROP);
}

static void test_globs(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {
        {"_ga*", AP_COOKIE_KEEP}, {"SID", AP_COOKIE_KEEP}, {"uid", AP_COOKIE_PSEUDO},
        {"sess?", AP_COOKIE_KEEP},
    };
    setup(rules, AP_ARRAY_SIZE(rules));
    assert_string_equal(rw("_ga=GA1.2.3.4; _gid=GA1.2.5; _ga_ABC=GS1.1.2; sess=xyz; _gat=1"),
                        "_ga=GA1.2.3.4; _ga_ABC=GS1.1.2; _gat=1");
    /* Names are case-sensitive. */
    assert_string_equal(rw("sid=1; SID=2; Sid=3"), "SID=2");
    assert_string_equal(rw("sess1=a; sess12=b; sess=c"), "sess1=a");
    assert_string_equal(rw("uid=abc"), "uid=P3");
    /* Duplicates are handled one by one. */
    assert_string_equal(rw("SID=1; SID=2; uid=x; uid=yy"), "SID=1; SID=2; uid=P1; uid=P2");
    assert_int_equal(ap_cookie_action_for(&policy, "uid", 3), AP_COOKIE_PSEUDO);
}

static void test_spacing_and_quotes(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {{"*", AP_COOKIE_KEEP}, {"nope", AP_COOKIE_PSEUDO}};
    setup(rules, 2);
    assert_string_equal(rw(" a = 1 ;\tb=2 ;;; c=3;"), "a=1; b=2; c=3");
    assert_string_equal(rw("a=1;b=2"), "a=1; b=2");
    assert_string_equal(rw("a=\"quoted\"; e="), "a=\"quoted\"; e=");
    assert_string_equal(rw("a=x=y"), "a=x=y");
    assert_string_equal(rw("a=b c,d"), "a=b c,d");
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {{"*", AP_COOKIE_KEEP}};
    setup(rules, 1);
    assert_string_equal(rw("novalue; =x; a b=1; ok=1; bad=\"x; q=\x01; r=\"a\"b\"; s=\""
                           "; t=x\x7f; (x)=1; u\"=2; ok2=2"),
                        "ok=1; ok2=2");
    assert_string_equal(rw(";;;"), "");
    assert_string_equal(rw("="), "");
    assert_string_equal(rw("a"), "");
}

static void test_pseudo(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {{"u*", AP_COOKIE_PSEUDO}, {"k", AP_COOKIE_KEEP}};
    setup(rules, 2);
    /* Enclosing quotes are not part of the value given to the callback. */
    assert_string_equal(rw("u=\"abc\"; k=1"), "u=P3; k=1");
    assert_string_equal(rw("u1=fail; k=1; u2=semi; u3="), "k=1; u3=P0");
    ctx.pseudo.fn = NULL;
    assert_string_equal(rw("u=abc; k=1"), "k=1");
}

static void test_small_buffer(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {{"u", AP_COOKIE_PSEUDO}, {"*", AP_COOKIE_KEEP}};
    setup(rules, 2);
    const char *h = "a=1;u=xyz;bb=22";
    const char *want = "a=1; u=P3; bb=22";
    size_t need = strlen(want);
    char buf[64];
    for (size_t cap = 0; cap <= need + 1; cap++) {
        memset(buf, 'Z', sizeof(buf));
        size_t n = 7;
        int rc = ap_cookie_rewrite(&ctx, h, strlen(h), cap ? buf : NULL, cap, &n);
        if (cap <= need) {
            assert_int_equal(rc, -ENOBUFS);
            assert_int_equal(n, 0);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(buf, want);
        }
        for (size_t k = cap; k < sizeof(buf); k++)
            assert_int_equal(buf[k], 'Z');
    }
}

static void test_long_header(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {{"_ga*", AP_COOKIE_KEEP}};
    setup(rules, 1);
    size_t reps = 50000;
    const char *unit = "_ga=1;x=2;";
    size_t ul = strlen(unit);
    char *in = malloc(ul * reps);
    char *out = malloc(2 * ul * reps + 1);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t k = 0; k < reps; k++)
        memcpy(in + k * ul, unit, ul);
    size_t n;
    assert_int_equal(ap_cookie_rewrite(&ctx, in, ul * reps, out, 2 * ul * reps + 1, &n), 0);
    assert_int_equal(n, reps * strlen("_ga=1; ") - 2);
    /* The documented bound: 2 * len + 1 with every pair kept. */
    static const struct ap_cookie_rule all[] = {{"*", AP_COOKIE_KEEP}};
    setup(all, 1);
    memset(in, 0, ul * reps);
    for (size_t k = 0; k + 4 <= ul * reps; k += 4)
        memcpy(in + k, "a=;", 3), in[k + 3] = ';';
    assert_int_equal(ap_cookie_rewrite(&ctx, in, ul * reps, out, 2 * ul * reps + 1, &n), 0);
    free(in);
    free(out);
}

/* Literal names by hash, globs in order, first match wins, case-sensitive,
 * no decoding; rules changed after compiling are still honoured. */
static void test_compiled_rules(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {
        {"_pk_id*", AP_COOKIE_PSEUDO}, {"_pk_id.1", AP_COOKIE_KEEP}, {"sid", AP_COOKIE_PSEUDO},
        {"SID", AP_COOKIE_KEEP},       {"s?d", AP_COOKIE_DROP},      {"s%69d", AP_COOKIE_KEEP},
        {"consent", AP_COOKIE_KEEP},   {"*", AP_COOKIE_DROP},
    };
    struct ap_cookie_policy comp;
    ap_cookie_policy_init(&comp);
    comp.rules = rules;
    comp.nrules = AP_ARRAY_SIZE(rules);
    comp.default_action = AP_COOKIE_KEEP;
    assert_int_equal(ap_cookie_policy_compile(&comp), 0);
    static const struct {
        const char *name;
        enum ap_cookie_action want;
    } cases[] = {
        {"_pk_id.1", AP_COOKIE_PSEUDO}, {"_pk_id", AP_COOKIE_PSEUDO}, {"sid", AP_COOKIE_PSEUDO},
        {"SID", AP_COOKIE_KEEP},        {"Sid", AP_COOKIE_DROP},      {"s%69d", AP_COOKIE_KEEP},
        {"consent", AP_COOKIE_KEEP},    {"Consent", AP_COOKIE_DROP},  {"consentx", AP_COOKIE_DROP},
        {"", AP_COOKIE_DROP},
    };
    for (size_t k = 0; k < AP_ARRAY_SIZE(cases); k++) {
        assert_int_equal(ap_cookie_action_for(&comp, cases[k].name, strlen(cases[k].name)),
                         cases[k].want);
        struct ap_cookie_policy plain = comp;
        memset(&plain.rule_set, 0, sizeof(plain.rule_set)); /* as never compiled */
        assert_int_equal(ap_cookie_action_for(&plain, cases[k].name, strlen(cases[k].name)),
                         cases[k].want);
    }
    comp.nrules = 3; /* without "SID" and what follows */
    assert_int_equal(ap_cookie_action_for(&comp, "SID", 3), AP_COOKIE_KEEP);
    assert_int_equal(ap_cookie_action_for(&comp, "consent", 7), AP_COOKIE_KEEP);
    comp.default_action = AP_COOKIE_DROP;
    assert_int_equal(ap_cookie_action_for(&comp, "consent", 7), AP_COOKIE_DROP);
    comp.nrules = AP_ARRAY_SIZE(rules);
    ap_cookie_policy_release(&comp);
    assert_int_equal(ap_cookie_action_for(&comp, "SID", 3), AP_COOKIE_KEEP);
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
    if (policy.magic == AP_COOKIE_POLICY_MAGIC)
        ap_cookie_policy_release(&policy);
    return 0;
}

/* The observer hears every cookie with a name once, trimmed, with what the
 * rewrite does to it: unreadable ones are drops. */
static char seen[512];

static void observe(void *octx, const char *name, size_t len, enum ap_cookie_action a)
{
    (void)octx;
    static const char *const names[] = {[AP_COOKIE_KEEP] = "keep", [AP_COOKIE_DROP] = "drop",
                                        [AP_COOKIE_PSEUDO] = "pseudo"};
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof(seen) - n, "%.*s:%s,", (int)len, name, names[a]);
}

static void test_observer(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {
        {"_ga*", AP_COOKIE_KEEP}, {"uid", AP_COOKIE_PSEUDO}, {"bad", AP_COOKIE_KEEP},
    };
    setup(rules, AP_ARRAY_SIZE(rules));
    ctx.observer = (struct ap_cookie_observer){observe, NULL};
    seen[0] = '\0';
    assert_string_equal(rw(" _ga = 1 ; uid=u1; other=2; noeq; bad=\"x; b@d=3"), "_ga=1; uid=P2");
    assert_string_equal(seen, "_ga:keep,uid:pseudo,other:drop,bad:drop,b@d:drop,");
    /* Without a pseudonymiser, a pseudonymised cookie is dropped, and said so. */
    ctx.pseudo.fn = NULL;
    seen[0] = '\0';
    assert_string_equal(rw("uid=u1"), "");
    assert_string_equal(seen, "uid:drop,");
}

/* Values are checked eight bytes at a time: a bad byte at every position
 * of values of every length up to 24 is found, and bytes next to the bad
 * range (space, 0x80, 0xff, '!') are not refused. */
static void test_value_bytes_every_position(void **state)
{
    (void)state;
    static const struct ap_cookie_rule rules[] = {{"k", AP_COOKIE_KEEP}};
    setup(rules, AP_ARRAY_SIZE(rules));
    static const unsigned char bad[] = {0x00, 0x01, 0x09, 0x1f, 0x7f, '"'};
    static const unsigned char good[] = {' ', '!', 0x80, 0xff, '#', '~'};
    for (size_t len = 1; len <= 24; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t b = 0; b < sizeof(bad); b++) {
                char h[40], out[80];
                memcpy(h, "k=", 2);
                memset(h + 2, 'v', len);
                bool end = pos == 0 || pos == len - 1;
                if (end && bad[b] == '\t')
                    continue; /* a tab there is trimmed as whitespace */
                h[2 + pos] = (char)bad[b];
                size_t n = 0;
                assert_int_equal(ap_cookie_rewrite(&ctx, h, 2 + len, out, sizeof(out), &n), 0);
                assert_int_equal(n, 0);
                if (end)
                    continue; /* a space there is trimmed, a quote there quotes */
                h[2 + pos] = (char)good[b];
                assert_int_equal(ap_cookie_rewrite(&ctx, h, 2 + len, out, sizeof(out), &n), 0);
                assert_int_equal(n, 2 + len);
                assert_memory_equal(out, h, 2 + len);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_drop),
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_spacing_and_quotes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_pseudo),
        cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_long_header),
        cmocka_unit_test(test_compiled_rules),
        cmocka_unit_test(test_observer),
        cmocka_unit_test(test_value_bytes_every_position),
    };
    int rc = cmocka_run_group_tests_name("as built", tests, group_plain, group_teardown);
    rc |= cmocka_run_group_tests_name("compiled", tests, group_compiled, group_teardown);
    return rc;
}

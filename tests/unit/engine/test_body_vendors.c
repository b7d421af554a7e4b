/* Vendor fixtures through the vendor presets (proxy/engine/bodypreset.c)
 * in the strict profile: the privacy test. Every request body that a
 * vendor's SDK sent (tests/fixtures/vendors/<vendor>/, see
 * tests/fixtures/capture/capture.sh) is rewritten as the proxy would, and
 * then no canary value (user id, device id, e-mail, IP, click id, and the
 * ids the SDK generated) may be found in the output in any encoding
 * (canary.c). Each vendor also has checks that what the collector needs
 * (keys, event names, the pseudonyms themselves) is still there.
 *
 * Usage: test_body_vendors FIXTURES_DIR */
#include "anonproxy/common.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/arena.h"
#include "anonproxy/body.h"
#include "anonproxy/bodypreset.h"
#include "anonproxy/json.h"
#include "canary.h"

static const char *fixtures;

static int fake_pseudo(void *ctx, const char *val, size_t len, char *out, size_t outcap)
{
    (void)ctx;
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)val[k]) * 1099511628211ull;
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%016llx", (unsigned long long)h);
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, tmp, (size_t)n);
    return n;
}

static char *pseudo_of(const char *v)
{
    static char buf[32];
    int n = fake_pseudo(NULL, v, strlen(v), buf, sizeof(buf) - 1);
    buf[n] = '\0';
    return buf;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The string value of a top-level member of a flat JSON object, or NULL
 * (also for null). Malloc'd. */
static char *json_member(const char *s, size_t n, const char *key)
{
    size_t i = 0;
    ap_json_skip_ws(s, n, &i);
    if (i >= n || s[i] != '{')
        return NULL;
    i++;
    for (;;) {
        ap_json_skip_ws(s, n, &i);
        size_t ks = i;
        if (ap_json_scan_string(s, n, &i, NULL) != 0)
            return NULL;
        bool match = i - ks - 2 == strlen(key) && memcmp(s + ks + 1, key, i - ks - 2) == 0;
        ap_json_skip_ws(s, n, &i);
        i++; /* ':' */
        ap_json_skip_ws(s, n, &i);
        size_t vs = i;
        if (ap_json_skip_value(s, n, &i, 16) != 0)
            return NULL;
        if (match) {
            if (s[vs] != '"')
                return NULL;
            char *v = malloc(i - vs);
            v[ap_json_unescape(s + vs + 1, i - vs - 2, v)] = '\0';
            return v;
        }
        ap_json_skip_ws(s, n, &i);
        if (i >= n || s[i] != ',')
            return NULL;
        i++;
    }
}

/* Every string value anywhere in a JSON document (keys excluded). */
static void collect_strings(const char *s, size_t n, size_t *i, char ***out, size_t *nout)
{
    ap_json_skip_ws(s, n, i);
    if (*i >= n)
        return;
    if (s[*i] == '"') {
        size_t vs = *i;
        ap_json_scan_string(s, n, i, NULL);
        char *v = malloc(*i - vs);
        v[ap_json_unescape(s + vs + 1, *i - vs - 2, v)] = '\0';
        *out = realloc(*out, (*nout + 1) * sizeof(char *));
        (*out)[(*nout)++] = v;
        return;
    }
    if (s[*i] == '{') {
        (*i)++;
        for (;;) {
            ap_json_skip_ws(s, n, i);
            if (*i < n && s[*i] == '}') {
                (*i)++;
                return;
            }
            ap_json_scan_string(s, n, i, NULL); /* key */
            ap_json_skip_ws(s, n, i);
            (*i)++;
            collect_strings(s, n, i, out, nout);
            ap_json_skip_ws(s, n, i);
            if (*i < n && s[*i] == ',')
                (*i)++;
        }
    }
    ap_json_skip_value(s, n, i, 16);
}

struct fixture {
    char *body;
    size_t len;
    char *target, *ctype, *cenc;
    char name[256];
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The fixtures of one vendor, sorted by name. */
static size_t load(const char *vendor, struct fixture **out)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/%s", fixtures, vendor);
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("no fixtures in %s", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".body") == 0) {
            names = realloc(names, (n + 1) * sizeof(*names));
            names[n] = malloc(l - 4);
            memcpy(names[n], de->d_name, l - 5);
            names[n][l - 5] = '\0';
            n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    *out = calloc(n ? n : 1, sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        struct fixture *f = &(*out)[i];
        char path[1400];
        snprintf(f->name, sizeof(f->name), "%s/%s", vendor, names[i]);
        snprintf(path, sizeof(path), "%s/%s.body", dir, names[i]);
        f->body = read_file(path, &f->len);
        assert_non_null(f->body);
        size_t ml = 0;
        snprintf(path, sizeof(path), "%s/%s.json", dir, names[i]);
        char *meta = read_file(path, &ml);
        assert_non_null(meta);
        f->target = json_member(meta, ml, "target");
        f->ctype = json_member(meta, ml, "content_type");
        f->cenc = json_member(meta, ml, "content_encoding");
        free(meta);
        free(names[i]);
    }
    free(names);
    return n;
}

static void free_fixtures(struct fixture *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].body);
        free(f[i].target);
        free(f[i].ctype);
        free(f[i].cenc);
    }
    free(f);
}

struct result {
    char *out; /* malloc'd copy of the forwarded body */
    size_t len;
    enum ap_body_format format;
    const char *strip_param;
};

/* Rewrite one fixture with the strict profile and the vendor's preset, and
 * check that no canary of the vendor survives. */
static void rewrite_checked(const char *vendor, const struct fixture *f, char **canaries, size_t ncanaries,
                            struct result *res)
{
    struct ap_body_policy pol;
    ap_body_policy_init(&pol, AP_PROFILE_STRICT);
    assert_int_equal(ap_bodypreset_add(&pol, vendor), 0);
    assert_int_equal(ap_body_policy_finish(&pol), 0);
    struct ap_arena arena;
    ap_arena_init(&arena, 1 << 16, 0);
    struct ap_body_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.arena = &arena;
    ctx.pseudo.fn = fake_pseudo;
    const char *q = f->target ? strchr(f->target, '?') : NULL;
    ctx.query = q ? q + 1 : NULL;
    ctx.query_len = q ? strlen(q + 1) : 0;
    struct ap_body_out out;
    int rc = ap_body_rewrite(&pol, &ctx, f->ctype, f->ctype ? strlen(f->ctype) : 0, f->cenc,
                             f->cenc ? strlen(f->cenc) : 0, f->body, f->len, &out);
    if (rc != 0)
        fail_msg("%s: rewrite failed: %d %s", f->name, rc, out.reason);
    assert_int_equal(out.verdict, AP_BODY_FORWARD);
    for (size_t c = 0; c < ncanaries; c++) {
        const char *where = NULL;
        if (canary_is_present(out.body, out.len, canaries[c], &where))
            fail_msg("%s: canary \"%s\" survives (%s):\n%.*s", f->name, canaries[c], where,
                     (int)(out.len < 4000 ? out.len : 4000), out.body);
    }
    if (out.format == AP_BODY_FMT_JSON && out.content_encoding == NULL)
        assert_int_equal(ap_json_validate(out.body, out.len, 64), 0);
    res->out = malloc(out.len + 1);
    memcpy(res->out, out.body, out.len);
    res->out[out.len] = '\0';
    res->len = out.len;
    res->format = out.format;
    res->strip_param = out.strip_param;
    ap_arena_free(&arena);
    ap_body_policy_free(&pol);
}

/* Run every fixture of a vendor; `check` (may be NULL) inspects each
 * output. Returns the number of fixtures. */
static size_t run_vendor(const char *vendor, void (*check)(const struct fixture *, const struct result *))
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s/canaries.json", fixtures, vendor);
    size_t cl = 0;
    char *cj = read_file(path, &cl);
    assert_non_null(cj);
    char **canaries = NULL;
    size_t ncanaries = 0, pos = 0;
    collect_strings(cj, cl, &pos, &canaries, &ncanaries);
    free(cj);
    assert_true(ncanaries >= 5);
    struct fixture *fx;
    size_t n = load(vendor, &fx);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        struct result r;
        rewrite_checked(vendor, &fx[i], canaries, ncanaries, &r);
        if (check)
            check(&fx[i], &r);
        free(r.out);
    }
    free_fixtures(fx, n);
    for (size_t c = 0; c < ncanaries; c++)
        free(canaries[c]);
    free(canaries);
    return n;
}

static bool has(const struct result *r, const char *s)
{
    return strstr(r->out, s) != NULL;
}

/* ---- per vendor ---- */

static void check_posthog(const struct fixture *f, const struct result *r)
{
    /* gzip bodies are forwarded decoded (no recompression by default). */
    assert_true(r->format == AP_BODY_FMT_JSON || r->format == AP_BODY_FMT_FORM);
    if (r->format == AP_BODY_FMT_JSON) {
        assert_true(has(r, "\"api_key\":\"phc_canaryProjectToken\""));
        assert_true(has(r, pseudo_of("canary-user-81b2e7d4")));
        assert_true(has(r, "\"event\":\""));
        assert_true(has(r, "\"$lib\":\"web\""));
        assert_false(has(r, "\"gclid\""));
    } else {
        assert_non_null(strstr(f->target, "compression=base64"));
        assert_true(strncmp(r->out, "data=", 5) == 0);
    }
}

static void check_segment(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(has(r, "\"anonymousId\":\""));
    assert_true(has(r, "\"messageId\":\"ajs-next-"));
    assert_true(has(r, pseudo_of("canary-user-81b2e7d4")));
    assert_false(has(r, "Canary Person"));
    /* Page URLs keep their path and their utm_ parameters. */
    assert_true(has(r, "/page/segment?utm_source=newsletter&utm_medium=email\""));
}

static void check_rudderstack(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(has(r, "\"userId\":\""));
    assert_true(has(r, pseudo_of("canary-user-81b2e7d4")));
    assert_false(has(r, "firstName"));
    assert_true(has(r, "\"referrer\":\"https://referrer.example\""));
    /* Already Chrome's reduced User-Agent: reducing it changes nothing. */
    assert_true(has(r, "\"userAgent\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/124.0.0.0 Safari/537.36\""));
}

static void check_amplitude(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(has(r, "\"api_key\":\"canaryApiKey0123456789abcdef0123\""));
    assert_true(has(r, pseudo_of("canary-device-5f3a9c21")));
    /* Numbers pass byte for byte: the session id is a timestamp. */
    assert_true(has(r, "\"session_id\":17"));
}

static void check_mixpanel(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(strncmp(r->out, "data=", 5) == 0);
    assert_int_equal(r->format, AP_BODY_FMT_FORM);
}

static void check_snowplow(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(has(r, "\"schema\":\"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4\""));
    assert_true(has(r, "\"e\":\"pv\""));
    assert_true(has(r, pseudo_of("canary-user-81b2e7d4")));
}

static void check_plausible(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(has(r, "\"d\":\"canary.example\""));
    assert_true(has(r, "/page/"));
}

static void check_umami(const struct fixture *f, const struct result *r)
{
    (void)f;
    assert_true(has(r, "\"website\":\"0f1e2d3c-4b5a-4678-9abc-def012345678\""));
}

static void check_matomo(const struct fixture *f, const struct result *r)
{
    (void)f;
    if (r->format == AP_BODY_FMT_FORM) {
        assert_true(has(r, "idsite=1&rec=1"));
        /* The visitor id stays 16 hex digits, as Matomo requires. */
        char want[64];
        snprintf(want, sizeof(want), "_id=%s&", pseudo_of("c4a9e2f01b7d3e58"));
        assert_true(has(r, want));
    } else {
        assert_true(has(r, "{\"requests\":[\"?"));
        assert_true(has(r, pseudo_of("c4a9e2f01b7d3e58")));
    }
}

static void check_ga4(const struct fixture *f, const struct result *r)
{
    (void)f;
    if (r->format == AP_BODY_FMT_FORM_LINES) {
        assert_true(has(r, "en=scroll&epn.percent_scrolled=90&_et=3021\r\nen=click&"));
        assert_true(has(r, "ep.link_url=https%3A%2F%2Fexample.com%2Fout&"));
    } else {
        assert_true(has(r, "\"events\":[{\"name\":\"page_view\""));
        assert_true(has(r, "\"ip_override\":\"203.0.113.0\""));
    }
}

#define VENDOR_TEST(v)                                                                                \
    static void test_##v(void **state)                                                                \
    {                                                                                                 \
        (void)state;                                                                                  \
        assert_true(run_vendor(#v, check_##v) > 0);                                                   \
    }
VENDOR_TEST(posthog)
VENDOR_TEST(segment)
VENDOR_TEST(rudderstack)
VENDOR_TEST(amplitude)
VENDOR_TEST(mixpanel)
VENDOR_TEST(snowplow)
VENDOR_TEST(plausible)
VENDOR_TEST(umami)
VENDOR_TEST(matomo)
VENDOR_TEST(ga4)

/* The canary search itself must find what it claims to find. */
static void test_canary_helper(void **state)
{
    (void)state;
    const char *c = "canary.person@example.org";
    const char *where;
    assert_true(canary_is_present("x canary.person@example.org y", 29, c, &where));
    assert_true(canary_is_present("a=canary.person%40example.org", 29, c, &where));
    assert_true(canary_is_present("a=canary.person%2540example.org", 31, c, &where));
    assert_true(canary_is_present("\"canary.person\\u0040example.org\"", 32, c, &where));
    /* base64 of "{\"e\":\"canary.person@example.org\"}" */
    const char *b64 = "eyJlIjoiY2FuYXJ5LnBlcnNvbkBleGFtcGxlLm9yZyJ9";
    assert_true(canary_is_present(b64, strlen(b64), c, &where));
    /* ... shifted by one and two bytes, and percent-encoded */
    const char *b64b = "eyJlZSI6ImNhbmFyeS5wZXJzb25AZXhhbXBsZS5vcmcifQ%3D%3D";
    assert_true(canary_is_present(b64b, strlen(b64b), c, &where));
    const char *b64c = "eyJlZWUiOiJjYW5hcnkucGVyc29uQGV4YW1wbGUub3JnIn0=";
    assert_true(canary_is_present(b64c, strlen(b64c), c, &where));
    assert_false(canary_is_present("nothing to see", 14, c, &where));
    assert_false(canary_is_present("canary.person@example.net", 25, c, &where));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canary_helper), cmocka_unit_test(test_posthog),  cmocka_unit_test(test_segment),
        cmocka_unit_test(test_rudderstack),   cmocka_unit_test(test_amplitude), cmocka_unit_test(test_mixpanel),
        cmocka_unit_test(test_snowplow),      cmocka_unit_test(test_plausible), cmocka_unit_test(test_umami),
        cmocka_unit_test(test_matomo),        cmocka_unit_test(test_ga4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

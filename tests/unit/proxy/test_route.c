/* Unit tests of proxy/route.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include "anonproxy/route.h"

static struct ap_slice S(const char *s)
{
    return (struct ap_slice){s, strlen(s)};
}

static void test_host_patterns(void **state)
{
    assert_true(ap_route_host_matches("*", S("anything")));
    assert_true(ap_route_host_matches("a.example", S("A.Example")));
    assert_false(ap_route_host_matches("a.example", S("b.example")));
    assert_true(ap_route_host_matches("*.example.com", S("x.example.com")));
    assert_true(ap_route_host_matches("*.example.com", S("y.x.example.com")));
    assert_false(ap_route_host_matches("*.example.com", S("example.com")));
    assert_false(ap_route_host_matches("*.example.com", S("badexample.com")));
}

static void test_first_match_wins(void **state)
{
    char *hosts_a[] = {"*.shop.example"};
    char *post[] = {"POST"};
    struct ap_config_route routes[3];
    memset(routes, 0, sizeof(routes));
    routes[0].name = "shop-collect";
    routes[0].hosts = hosts_a;
    routes[0].nhosts = 1;
    routes[0].path_prefix = "/collect";
    routes[0].methods = post;
    routes[0].nmethods = 1;
    routes[1].name = "collect";
    routes[1].path_prefix = "/collect";
    routes[2].name = "health";
    routes[2].path_prefix = "/healthz";
    struct ap_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.routes = routes;
    cfg.nroutes = 3;

    const struct ap_config_route *r;
    r = ap_route_match(&cfg, S("www.shop.example:8080"), S("POST"), S("/collect/x"));
    assert_string_equal(r->name, "shop-collect");
    r = ap_route_match(&cfg, S("www.shop.example."), S("POST"), S("/collect"));
    assert_string_equal(r->name, "shop-collect");
    r = ap_route_match(&cfg, S("www.shop.example"), S("GET"), S("/collect"));
    assert_string_equal(r->name, "collect");
    r = ap_route_match(&cfg, S("other"), S("POST"), S("/collect"));
    assert_string_equal(r->name, "collect");
    assert_null(ap_route_match(&cfg, S("other"), S("GET"), S("/")));
    assert_null(ap_route_match(&cfg, S("other"), S("GET"), S("/health")));
    r = ap_route_match(&cfg, S("[::1]:80"), S("GET"), S("/healthz"));
    assert_string_equal(r->name, "health");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_patterns),
        cmocka_unit_test(test_first_match_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of proxy/config.c: values, defaults, every error kind with its
 * exact FILE:LINE:COL, several errors in one run, and the print/parse round
 * trip. Host names go through a fake resolver so no test waits on DNS. */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "anonproxy/body.h"
#include "anonproxy/bodypreset.h"
#include "anonproxy/config.h"
#include "anonproxy/geo.h"
#include "anonproxy/ip.h"
#include "anonproxy/policy.h"
#include "config-int.h"

/* Resolves "backend.local" to 192.0.2.10 and "v6.local" to 2001:db8::1;
 * everything else fails. Counts its calls. */
static unsigned resolve_calls;

static int fake_resolve(void *ctx, const char *host, struct sockaddr_storage *ss,
                        socklen_t *len, const char **why)
{
    (void)ctx;
    resolve_calls++;
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "backend.local") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        inet_pton(AF_INET, "192.0.2.10", &sin->sin_addr);
        *len = sizeof(*sin);
        return 0;
    }
    if (strcmp(host, "v6.local") == 0) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr);
        *len = sizeof(*sin6);
        return 0;
    }
    *why = "no such host (test resolver)";
    return -ENOENT;
}

static const struct ap_config__opts test_opts = { .resolve = fake_resolve, .ncpus = 3 };

static struct ap_config *parse(const char *yaml, char **errors)
{
    return ap_config__parse(yaml, strlen(yaml), "t.yaml", &test_opts, errors);
}

/* Parses `yaml`, which must fail with exactly `expected`. */
static void expect_errors(const char *yaml, const char *expected)
{
    char *errors = NULL;
    struct ap_config *cfg = parse(yaml, &errors);
    assert_null(cfg);
    assert_non_null(errors);
    assert_string_equal(errors, expected);
    free(errors);
}

static struct ap_config *parse_ok(const char *yaml)
{
    char *errors = NULL;
    struct ap_config *cfg = parse(yaml, &errors);
    if (cfg == NULL)
        fail_msg("unexpected errors:\n%s", errors ? errors : "(null)");
    assert_null(errors);
    return cfg;
}

/* The three required sections, for tests about something else. Three lines:
 * whatever a test appends starts on line 4. */
#define MINIMAL                                                                   \
    "listen: [{address: 127.0.0.1:8080}]\n"                                      \
    "upstreams: {u: {file: out.ndjson}}\n"                                       \
    "routes: [{upstream: u}]\n"

static const char example[] =
    "workers: 4\n"
    "log_level: warn\n"
    "listen:\n"
    "  - address: 127.0.0.1:8080\n"
    "    proxy_protocol: true\n"
    "    backlog: 1024\n"
    "  - address: \"[::1]:8443\"\n"
    "upstreams:\n"
    "  events:\n"
    "    file: var/events.ndjson\n"
    "  matomo:\n"
    "    servers: [http://127.0.0.1:9000, \"http://[::1]:9001\", http://Backend.LOCAL]\n"
    "    keepalive: { max_idle: 16, idle_timeout: 90s }\n"
    "    max_fails: 3\n"
    "    fail_timeout: 20s\n"
    "    host: preserve\n"
    "routes:\n"
    "  - name: collect\n"
    "    match:\n"
    "      host: [Analytics.Example.com, \"*.example.org\"]\n"
    "      path: /collect\n"
    "      methods: [get, POST]\n"
    "    upstream: matomo\n"
    "    max_body_bytes: 2m\n"
    "  - upstream: events\n"
    "limits:\n"
    "  header_line_bytes: 4k\n"
    "  header_bytes: 16KiB\n"
    "  header_count: 50\n"
    "  target_bytes: 2kb\n"
    "  body_bytes: 512k\n"
    "  connections_per_worker: 500\n"
    "timeouts:\n"
    "  request_head: 5s\n"
    "  body_idle: 250ms\n"
    "  keepalive: 2m\n"
    "  upstream_connect: 1\n"
    "  upstream_head: 1h\n"
    "  upstream_body_idle: 45s\n"
    "  drain: 3s\n";

static void check_sockaddr(const struct sockaddr_storage *ss, socklen_t len, int family,
                           const char *addr, uint16_t port)
{
    char buf[INET6_ADDRSTRLEN];
    assert_int_equal(ss->ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        assert_int_equal(len, sizeof(*sin));
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        assert_int_equal(len, sizeof(*sin6));
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(buf, addr);
}

static void test_full_example(void **state)
{
    (void)state;
    resolve_calls = 0;
    struct ap_config *cfg = parse_ok(example);
    assert_int_equal(cfg->magic, AP_CONFIG_MAGIC);
    assert_int_equal(cfg->refcount, 1);
    assert_string_equal(cfg->path, "t.yaml");
    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->workers_auto, 0);
    assert_string_equal(cfg->log_level, "warn");

    assert_int_equal(cfg->nlisteners, 2);
    assert_string_equal(cfg->listeners[0].address, "127.0.0.1:8080");
    check_sockaddr(&cfg->listeners[0].addr, cfg->listeners[0].addrlen, AF_INET, "127.0.0.1",
                   8080);
    assert_int_equal(cfg->listeners[0].proxy_protocol, 1);
    assert_int_equal(cfg->listeners[0].backlog, 1024);
    assert_int_equal(cfg->listeners[0].pos.line, 4);
    assert_int_equal(cfg->listeners[0].pos.col, 5);
    assert_string_equal(cfg->listeners[1].address, "[::1]:8443");
    check_sockaddr(&cfg->listeners[1].addr, cfg->listeners[1].addrlen, AF_INET6, "::1", 8443);
    assert_int_equal(cfg->listeners[1].proxy_protocol, 0);
    assert_int_equal(cfg->listeners[1].backlog, 511);

    assert_int_equal(cfg->nupstreams, 2);
    const struct ap_config_upstream *ev = &cfg->upstreams[0];
    assert_string_equal(ev->name, "events");
    assert_int_equal(ev->kind, AP_UPSTREAM_FILE);
    assert_string_equal(ev->file_path, "var/events.ndjson");
    assert_int_equal(ev->nservers, 0);
    assert_int_equal(ev->pos.line, 9);
    assert_int_equal(ev->pos.col, 3);

    const struct ap_config_upstream *m = &cfg->upstreams[1];
    assert_string_equal(m->name, "matomo");
    assert_int_equal(m->kind, AP_UPSTREAM_HTTP);
    assert_null(m->file_path);
    assert_int_equal(m->nservers, 3);
    assert_string_equal(m->servers[0].url, "http://127.0.0.1:9000");
    assert_string_equal(m->servers[0].host, "127.0.0.1");
    assert_int_equal(m->servers[0].port, 9000);
    assert_string_equal(m->servers[0].authority, "127.0.0.1:9000");
    check_sockaddr(&m->servers[0].addr, m->servers[0].addrlen, AF_INET, "127.0.0.1", 9000);
    assert_string_equal(m->servers[1].url, "http://[::1]:9001");
    assert_string_equal(m->servers[1].host, "::1");
    assert_int_equal(m->servers[1].port, 9001);
    assert_string_equal(m->servers[1].authority, "[::1]:9001");
    check_sockaddr(&m->servers[1].addr, m->servers[1].addrlen, AF_INET6, "::1", 9001);
    assert_string_equal(m->servers[2].url, "http://Backend.LOCAL");
    assert_string_equal(m->servers[2].host, "backend.local");
    assert_int_equal(m->servers[2].port, 80);
    assert_string_equal(m->servers[2].authority, "backend.local");
    check_sockaddr(&m->servers[2].addr, m->servers[2].addrlen, AF_INET, "192.0.2.10", 80);
    assert_int_equal(resolve_calls, 1);
    assert_int_equal(m->keepalive_max_idle, 16);
    assert_int_equal(m->keepalive_idle_timeout_ms, 90000);
    assert_int_equal(m->max_fails, 3);
    assert_int_equal(m->fail_timeout_ms, 20000);
    assert_int_equal(m->preserve_host, 1);

    assert_int_equal(cfg->nroutes, 2);
    const struct ap_config_route *r = &cfg->routes[0];
    assert_string_equal(r->name, "collect");
    assert_int_equal(r->nhosts, 2);
    assert_string_equal(r->hosts[0], "analytics.example.com");
    assert_string_equal(r->hosts[1], "*.example.org");
    assert_string_equal(r->path_prefix, "/collect");
    assert_int_equal(r->nmethods, 2);
    assert_string_equal(r->methods[0], "GET");
    assert_string_equal(r->methods[1], "POST");
    assert_ptr_equal(r->upstream, m);
    assert_int_equal(r->max_body_bytes, 2 * 1024 * 1024);
    assert_int_equal(r->pos.line, 18);
    assert_int_equal(r->pos.col, 5);
    r = &cfg->routes[1];
    assert_string_equal(r->name, "route2");
    assert_int_equal(r->nhosts, 0);
    assert_string_equal(r->path_prefix, "/");
    assert_int_equal(r->nmethods, 0);
    assert_ptr_equal(r->upstream, ev);
    assert_int_equal(r->max_body_bytes, 512 * 1024); /* limits.body_bytes, written after */

    assert_int_equal(cfg->limits.header_line_bytes, 4096);
    assert_int_equal(cfg->limits.header_bytes, 16384);
    assert_int_equal(cfg->limits.header_count, 50);
    assert_int_equal(cfg->limits.target_bytes, 2048);
    assert_int_equal(cfg->limits.body_bytes, 512 * 1024);
    assert_int_equal(cfg->limits.connections_per_worker, 500);

    assert_int_equal(cfg->timeouts.request_head, 5000);
    assert_int_equal(cfg->timeouts.body_idle, 250);
    assert_int_equal(cfg->timeouts.keepalive, 120000);
    assert_int_equal(cfg->timeouts.upstream_connect, 1000);
    assert_int_equal(cfg->timeouts.upstream_head, 3600000);
    assert_int_equal(cfg->timeouts.upstream_body_idle, 45000);
    assert_int_equal(cfg->timeouts.drain, 3000);
    ap_config_unref(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(MINIMAL);
    assert_int_equal(cfg->workers_auto, 1);
    assert_int_equal(cfg->workers, 3); /* test_opts.ncpus */
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->listeners[0].backlog, 511);
    assert_int_equal(cfg->listeners[0].proxy_protocol, 0);
    const struct ap_config_upstream *u = &cfg->upstreams[0];
    assert_int_equal(u->keepalive_max_idle, 32);
    assert_int_equal(u->keepalive_idle_timeout_ms, 60000);
    assert_int_equal(u->max_fails, 1);
    assert_int_equal(u->fail_timeout_ms, 10000);
    assert_int_equal(u->preserve_host, 0);
    const struct ap_config_route *r = &cfg->routes[0];
    assert_string_equal(r->name, "route1");
    assert_string_equal(r->path_prefix, "/");
    assert_int_equal(r->nhosts, 0);
    assert_int_equal(r->nmethods, 0);
    assert_int_equal(r->max_body_bytes, 1048576);
    assert_int_equal(cfg->limits.header_line_bytes, 8192);
    assert_int_equal(cfg->limits.header_bytes, 32768);
    assert_int_equal(cfg->limits.header_count, 100);
    assert_int_equal(cfg->limits.target_bytes, 8192);
    assert_int_equal(cfg->limits.body_bytes, 1048576);
    assert_int_equal(cfg->limits.connections_per_worker, 10000);
    assert_int_equal(cfg->timeouts.request_head, 10000);
    assert_int_equal(cfg->timeouts.body_idle, 30000);
    assert_int_equal(cfg->timeouts.keepalive, 60000);
    assert_int_equal(cfg->timeouts.upstream_connect, 5000);
    assert_int_equal(cfg->timeouts.upstream_head, 60000);
    assert_int_equal(cfg->timeouts.upstream_body_idle, 60000);
    assert_int_equal(cfg->timeouts.drain, 30000);
    ap_config_unref(cfg);

    /* Empty sections are allowed and mean "all defaults". */
    cfg = parse_ok(MINIMAL "limits:\ntimeouts: {}\n");
    assert_int_equal(cfg->limits.header_bytes, 32768);
    assert_int_equal(cfg->timeouts.drain, 30000);
    ap_config_unref(cfg);
}

static void test_workers_auto_uses_cpu_count(void **state)
{
    (void)state;
    char *errors = NULL;
    const char *yaml = MINIMAL "workers: auto\n";
    struct ap_config *cfg = ap_config_parse(yaml, strlen(yaml), "t.yaml", &errors);
    assert_non_null(cfg);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg->workers, n < 1 ? 1 : n > 256 ? 256 : n);
    assert_int_equal(cfg->workers_auto, 1);
    ap_config_unref(cfg);

    cfg = parse_ok(MINIMAL "workers: 256\n");
    assert_int_equal(cfg->workers, 256);
    assert_int_equal(cfg->workers_auto, 0);
    ap_config_unref(cfg);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } cases[] = {
        { "250ms", 250 }, { "10s", 10000 }, { "5m", 300000 }, { "1h", 3600000 },
        { "7", 7000 },    { "2S", 2000 },   { "3 s", 3000 },  { "24h", 86400000 },
        { "1ms", 1 },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), MINIMAL "timeouts: {drain: %s}\n", cases[i].text);
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->timeouts.drain, cases[i].ms);
        ap_config_unref(cfg);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        { "0", 0 },           { "1000", 1000 },       { "100b", 100 },
        { "1k", 1024 },       { "1K", 1024 },         { "2kb", 2048 },
        { "2KiB", 2048 },     { "1m", 1048576 },      { "3MB", 3145728 },
        { "1g", 1073741824 }, { "1GiB", 1073741824 }, { "1024g", 1099511627776 },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), MINIMAL "limits: {body_bytes: %s}\n", cases[i].text);
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->limits.body_bytes, cases[i].bytes);
        assert_int_equal(cfg->routes[0].max_body_bytes, cases[i].bytes);
        ap_config_unref(cfg);
    }
}

static void test_booleans(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned v;
    } cases[] = {
        { "true", 1 }, { "yes", 1 }, { "on", 1 },  { "True", 1 },
        { "false", 0 }, { "no", 0 }, { "off", 0 }, { "OFF", 0 },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 "listen: [{address: 127.0.0.1:80, proxy_protocol: %s}]\n"
                 "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                 cases[i].text);
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->listeners[0].proxy_protocol, cases[i].v);
        ap_config_unref(cfg);
    }
    expect_errors("listen: [{address: 127.0.0.1:80, proxy_protocol: maybe}]\n"
                  "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                  "t.yaml:1:50: listen[0].proxy_protocol: expected a boolean (true/false, "
                  "yes/no, on/off), got 'maybe'\n");
}

static void test_aliases(void **state)
{
    (void)state;
    /* Anchors and aliases are plain YAML; one name resolves once. */
    resolve_calls = 0;
    struct ap_config *cfg = parse_ok("listen: [{address: 127.0.0.1:80}]\n"
                                     "upstreams:\n"
                                     "  a: &srv {servers: http://backend.local:81}\n"
                                     "  b: *srv\n"
                                     "routes: [{upstream: a}, {upstream: b}]\n");
    assert_int_equal(cfg->nupstreams, 2);
    assert_int_equal(cfg->upstreams[1].servers[0].port, 81);
    assert_int_equal(resolve_calls, 1);
    ap_config_unref(cfg);
}

static void test_real_resolver(void **state)
{
    (void)state;
    /* localhost comes from /etc/hosts: no network involved. */
    const char *yaml = "listen: [{address: 127.0.0.1:80}]\n"
                       "upstreams: {u: {servers: 'http://localhost:8081/'}}\n"
                       "routes: [{upstream: u}]\n";
    char *errors = NULL;
    struct ap_config *cfg = ap_config_parse(yaml, strlen(yaml), "t.yaml", &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    const struct ap_config_server *s = &cfg->upstreams[0].servers[0];
    assert_string_equal(s->authority, "localhost:8081");
    assert_true(s->addr.ss_family == AF_INET || s->addr.ss_family == AF_INET6);
    if (s->addr.ss_family == AF_INET)
        assert_int_equal(ntohs(((const struct sockaddr_in *)&s->addr)->sin_port), 8081);
    else
        assert_int_equal(ntohs(((const struct sockaddr_in6 *)&s->addr)->sin6_port), 8081);
    ap_config_unref(cfg);
}

static void test_normalisation(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok("listen: [{address: 127.0.0.1:80}]\n"
                                     "upstreams: {u: {servers: 'HTTP://V6.local:8080'}}\n"
                                     "routes:\n"
                                     "  - upstream: u\n"
                                     "    match: {host: WWW.Example.COM, methods: patch}\n"
                                     "  - upstream: u\n"
                                     "    match: {host: '[2001:DB8::1]', methods: [m-search]}\n");
    assert_string_equal(cfg->upstreams[0].servers[0].authority, "v6.local:8080");
    check_sockaddr(&cfg->upstreams[0].servers[0].addr, cfg->upstreams[0].servers[0].addrlen,
                   AF_INET6, "2001:db8::1", 8080);
    assert_int_equal(cfg->routes[0].nhosts, 1);
    assert_string_equal(cfg->routes[0].hosts[0], "www.example.com");
    assert_string_equal(cfg->routes[0].methods[0], "PATCH");
    assert_string_equal(cfg->routes[1].hosts[0], "[2001:db8::1]");
    assert_string_equal(cfg->routes[1].methods[0], "M-SEARCH");
    ap_config_unref(cfg);
}

static void test_syntax_error(void **state)
{
    (void)state;
    expect_errors("listen: [127.0.0.1:80\nupstreams: {}\n",
                  "t.yaml:2:10: syntax error: did not find expected ',' or ']' "
                  "(while parsing a flow sequence at 1:9)\n");
    expect_errors("workers: 2\nlog_level: a: b\n",
                  "t.yaml:2:13: syntax error: mapping values are not allowed in this context\n");
    expect_errors("a: *nothing\n", "t.yaml:1:4: syntax error: found undefined alias\n");
    expect_errors("workers: 2\nlog_level: \xff\n",
                  "t.yaml:2:12: syntax error: invalid leading UTF-8 octet (byte 0xff)\n");
}

static void test_empty_and_top_level(void **state)
{
    (void)state;
    expect_errors("", "t.yaml:1:1: empty configuration\n");
    expect_errors("# only a comment\n\n", "t.yaml:1:1: empty configuration\n");
    expect_errors("\n- a\n- b\n", "t.yaml:2:1: expected a mapping at the top level, got a list\n");
    expect_errors("hello\n", "t.yaml:1:1: expected a mapping at the top level, got a scalar\n");
    expect_errors(MINIMAL "---\nworkers: 2\n",
                  "t.yaml:5:1: only one YAML document is allowed\n");
}

static void test_missing_sections(void **state)
{
    (void)state;
    expect_errors("workers: 2\n",
                  "t.yaml:1:1: missing required key 'listen'\n"
                  "t.yaml:1:1: missing required key 'upstreams'\n"
                  "t.yaml:1:1: missing required key 'routes'\n");
    expect_errors("listen: []\nupstreams: {}\nroutes:\n",
                  "t.yaml:1:9: listen: at least one listener is required\n"
                  "t.yaml:2:12: upstreams: at least one upstream is required\n"
                  "t.yaml:3:8: routes: at least one route is required\n");
    expect_errors("listen: [{backlog: 5}]\nupstreams: {u: {file: x}}\nroutes: [{name: r}]\n",
                  "t.yaml:1:10: listen[0]: missing required key 'address'\n"
                  "t.yaml:3:10: routes[0]: missing required key 'upstream'\n");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_errors("listen: {address: 127.0.0.1:80}\n"
                  "upstreams: [u]\n"
                  "routes: [{upstream: u}, 5]\n"
                  "limits: 8k\n"
                  "timeouts: {drain: [1s]}\n"
                  "workers: [1]\n",
                  "t.yaml:1:9: listen: expected a list of listeners, got a mapping\n"
                  "t.yaml:2:12: upstreams: expected a mapping of upstream names, got a list\n"
                  "t.yaml:3:25: routes[1]: expected a mapping, got a scalar\n"
                  "t.yaml:4:9: limits: expected a mapping, got a scalar\n"
                  "t.yaml:5:19: timeouts.drain: expected a duration, got a list\n"
                  "t.yaml:6:10: workers: expected 'auto' or an integer, got a list\n");
    expect_errors(MINIMAL "limits: {header_count: lots, body_bytes: {a: 1}}\n"
                          "workers: many\n"
                          "log_level:\n",
                  "t.yaml:4:24: limits.header_count: expected an integer, got 'lots'\n"
                  "t.yaml:4:42: limits.body_bytes: expected a size, got a mapping\n"
                  "t.yaml:5:10: workers: expected 'auto' or an integer, got 'many'\n"
                  "t.yaml:6:11: log_level: missing value (expected a log level)\n");
    expect_errors(MINIMAL "log_level: \"a\\0b\"\n",
                  "t.yaml:4:12: log_level: value contains a NUL byte\n");
    expect_errors(MINIMAL "log_level: verbose\n",
                  "t.yaml:4:12: log_level: invalid log level 'verbose' (expected debug, "
                  "info, warn or error)\n");
    expect_errors(MINIMAL "? [a]\n: 1\n",
                  "t.yaml:4:3: expected a key name, got a list\n");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_errors(MINIMAL "worker: 2\n"
                          "timeouts: {drian: 1s, frobnicate: 2s}\n"
                          "limits:\n"
                          "  header_byte: 1k\n",
                  "t.yaml:4:1: unknown key 'worker', did you mean 'workers'?\n"
                  "t.yaml:5:12: timeouts: unknown key 'drian', did you mean 'drain'?\n"
                  "t.yaml:5:23: timeouts: unknown key 'frobnicate'\n"
                  "t.yaml:7:3: limits: unknown key 'header_byte', did you mean "
                  "'header_bytes'?\n");
    expect_errors("listen: [{adress: 127.0.0.1:80}]\n"
                  "upstreams: {u: {file: x, keepalive: {max_idel: 3}}}\n"
                  "routes: [{upstream: u, match: {paths: /}}]\n",
                  "t.yaml:1:10: listen[0]: missing required key 'address'\n"
                  "t.yaml:1:11: listen[0]: unknown key 'adress', did you mean 'address'?\n"
                  "t.yaml:2:26: upstreams.u.keepalive: only applies to upstreams with "
                  "'servers'\n"
                  "t.yaml:2:38: upstreams.u.keepalive: unknown key 'max_idel', did you mean "
                  "'max_idle'?\n"
                  "t.yaml:3:32: routes[0].match: unknown key 'paths', did you mean 'path'?\n");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_errors(MINIMAL "workers: 2\nworkers: 3\n",
                  "t.yaml:5:1: duplicate key 'workers' (first at 4:1)\n");
}

static void test_bad_listen_addresses(void **state)
{
    (void)state;
    expect_errors("listen:\n"
                  "  - address: 127.0.0.1\n"
                  "  - address: 127.0.0.1:0\n"
                  "  - address: 127.0.0.1:65536\n"
                  "  - address: localhost:80\n"
                  "  - address: 127.0.0.1:http\n"
                  "  - address: '[::1]'\n"
                  "  - address: '[::g]:80'\n"
                  "  - address: ::1:80\n"
                  "  - address: '[127.0.0.1]:80'\n"
                  "  - address: 1.2.3:80\n"
                  "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                  "t.yaml:2:14: listen[0].address: invalid address '127.0.0.1': missing port "
                  "(expected a.b.c.d:port or [ipv6]:port)\n"
                  "t.yaml:3:14: listen[1].address: invalid port '0' (expected 1..65535)\n"
                  "t.yaml:4:14: listen[2].address: invalid port '65536' (expected 1..65535)\n"
                  "t.yaml:5:14: listen[3].address: invalid address 'localhost:80': not a numeric "
                  "IPv4 address (host names are not allowed here)\n"
                  "t.yaml:6:14: listen[4].address: invalid port 'http' (expected 1..65535)\n"
                  "t.yaml:7:14: listen[5].address: invalid address '[::1]': missing port "
                  "(expected a.b.c.d:port or [ipv6]:port)\n"
                  "t.yaml:8:14: listen[6].address: invalid address '[::g]:80': not a numeric "
                  "IPv6 address\n"
                  "t.yaml:9:14: listen[7].address: invalid address '::1:80': IPv6 addresses must "
                  "be written in brackets: [addr]:port (expected a.b.c.d:port or [ipv6]:port)\n"
                  "t.yaml:10:14: listen[8].address: invalid address '[127.0.0.1]:80': not a "
                  "numeric IPv6 address\n"
                  "t.yaml:11:14: listen[9].address: invalid address '1.2.3:80': not a numeric "
                  "IPv4 address (host names are not allowed here)\n");
}

static void test_duplicate_listener(void **state)
{
    (void)state;
    expect_errors("listen:\n"
                  "  - address: 127.0.0.1:8080\n"
                  "  - address: '[::1]:8080'\n"
                  "  - {backlog: 5, address: '[0:0::1]:8080'}\n"
                  "  - address: 127.0.0.1:8080\n"
                  "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                  "t.yaml:4:27: listen[2].address: duplicate listener address '[0:0::1]:8080' "
                  "(first at 3:5)\n"
                  "t.yaml:5:14: listen[3].address: duplicate listener address '127.0.0.1:8080' "
                  "(first at 2:5)\n");
}

static void test_bad_server_urls(void **state)
{
    (void)state;
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams:\n"
                  "  u:\n"
                  "    servers:\n"
                  "      - https://127.0.0.1:0\n"
                  "      - ftp://127.0.0.1\n"
                  "      - 127.0.0.1:80\n"
                  "      - http://user@127.0.0.1\n"
                  "      - http://127.0.0.1/api\n"
                  "      - http://127.0.0.1/?a=1\n"
                  "      - http://127.0.0.1:0\n"
                  "      - 'http://127.0.0.1:'\n"
                  "      - 'http://[::1'\n"
                  "      - http://bad_host!\n"
                  "      - http://nowhere.test\n"
                  "      - http://1.2.3.999\n"
                  "      - http://\n"
                  "      - http://127.0.0.1#frag\n"
                  "routes: [{upstream: u}]\n",
                  "t.yaml:5:9: upstreams.u.servers[0]: invalid port '0' in server URL "
                  "'https://127.0.0.1:0' (expected 1..65535)\n"
                  "t.yaml:6:9: upstreams.u.servers[1]: unsupported scheme in server URL "
                  "'ftp://127.0.0.1' (expected http:// or https://)\n"
                  "t.yaml:7:9: upstreams.u.servers[2]: invalid server URL '127.0.0.1:80' "
                  "(expected http://host[:port])\n"
                  "t.yaml:8:9: upstreams.u.servers[3]: user info is not allowed in server URL "
                  "'http://user@127.0.0.1'\n"
                  "t.yaml:9:9: upstreams.u.servers[4]: a path is not allowed in server URL "
                  "'http://127.0.0.1/api'\n"
                  "t.yaml:10:9: upstreams.u.servers[5]: a query is not allowed in server URL "
                  "'http://127.0.0.1/?a=1'\n"
                  "t.yaml:11:9: upstreams.u.servers[6]: invalid port '0' in server URL "
                  "'http://127.0.0.1:0' (expected 1..65535)\n"
                  "t.yaml:12:9: upstreams.u.servers[7]: invalid port '' in server URL "
                  "'http://127.0.0.1:' (expected 1..65535)\n"
                  "t.yaml:13:9: upstreams.u.servers[8]: invalid host in server URL "
                  "'http://[::1'\n"
                  "t.yaml:14:9: upstreams.u.servers[9]: invalid host in server URL "
                  "'http://bad_host!'\n"
                  "t.yaml:15:9: upstreams.u.servers[10]: cannot resolve 'nowhere.test': no "
                  "such host (test resolver)\n"
                  "t.yaml:16:9: upstreams.u.servers[11]: invalid host in server URL "
                  "'http://1.2.3.999'\n"
                  "t.yaml:17:9: upstreams.u.servers[12]: invalid host in server URL 'http://'\n"
                  "t.yaml:18:9: upstreams.u.servers[13]: a fragment is not allowed in server "
                  "URL 'http://127.0.0.1#frag'\n");
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams: {u: {servers: []}, v: {servers: {a: b}}}\n"
                  "routes: [{upstream: u}]\n",
                  "t.yaml:2:26: upstreams.u.servers: at least one server is required\n"
                  "t.yaml:2:44: upstreams.v.servers: expected a server URL or a list of them, "
                  "got a mapping\n");
}

static void test_upstream_kind_errors(void **state)
{
    (void)state;
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams:\n"
                  "  both: {file: x, servers: http://127.0.0.1}\n"
                  "  neither: {max_fails: 2}\n"
                  "  file:\n"
                  "    file: out.ndjson\n"
                  "    host: preserve\n"
                  "    fail_timeout: 1s\n"
                  "  bad name: {file: ''}\n"
                  "  mode: {servers: http://127.0.0.1, host: client}\n"
                  "  nothing:\n"
                  "routes: [{upstream: both}]\n",
                  "t.yaml:3:3: upstreams.both: both 'file' and 'servers' are set, an upstream "
                  "has one or the other\n"
                  "t.yaml:4:3: upstreams.neither: either 'file' or 'servers' is required\n"
                  "t.yaml:7:5: upstreams.file.host: only applies to upstreams with 'servers'\n"
                  "t.yaml:8:5: upstreams.file.fail_timeout: only applies to upstreams with "
                  "'servers'\n"
                  "t.yaml:9:3: upstreams: invalid upstream name 'bad name' (letters, digits, '_', "
                  "'-', '.'; at most 64)\n"
                  "t.yaml:9:20: upstreams.bad name.file: empty file path\n"
                  "t.yaml:10:43: upstreams.mode.host: invalid host mode 'client' (expected "
                  "upstream or preserve)\n"
                  "t.yaml:11:11: upstreams.nothing: expected a mapping, got nothing\n");
}

static void test_duplicate_names(void **state)
{
    (void)state;
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams:\n"
                  "  u: {file: a}\n"
                  "  u: {file: b}\n"
                  "routes:\n"
                  "  - {name: r, upstream: u}\n"
                  "  - {name: route3, upstream: u}\n"
                  "  - {upstream: u}\n"
                  "  - {name: r, upstream: u}\n",
                  "t.yaml:4:3: upstreams: duplicate upstream name 'u' (first at 3:3)\n"
                  "t.yaml:8:5: routes[2]: duplicate route name 'route3' (first at 7:12)\n"
                  "t.yaml:9:12: routes[3]: duplicate route name 'r' (first at 6:12)\n");
}

static void test_unknown_upstream(void **state)
{
    (void)state;
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams: {matomo: {file: x}}\n"
                  "routes:\n"
                  "  - upstream: matmo\n"
                  "  - upstream: elsewhere\n"
                  "  - {upstream: matomo, name: 'no/slash'}\n",
                  "t.yaml:4:15: routes[0].upstream: unknown upstream 'matmo', did you mean "
                  "'matomo'?\n"
                  "t.yaml:5:15: routes[1].upstream: unknown upstream 'elsewhere'\n"
                  "t.yaml:6:30: routes[2].name: invalid route name 'no/slash' (letters, digits, "
                  "'_', '-', '.'; at most 64)\n");
    /* A broken upstreams section is reported once, not once per route. */
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams: matomo\n"
                  "routes: [{upstream: matomo}, {upstream: matomo}]\n",
                  "t.yaml:2:12: upstreams: expected a mapping of upstream names, got a scalar\n");
}

static void test_bad_match(void **state)
{
    (void)state;
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams: {u: {file: x}}\n"
                  "routes:\n"
                  "  - upstream: u\n"
                  "    match:\n"
                  "      host: [ok.example, '*', '*.', 'a..b', 'x.example:80', '', '-a.b', "
                  "'[::1', '**.a']\n"
                  "      path: collect\n"
                  "      methods: [GET, 'PO ST', '']\n"
                  "  - upstream: u\n"
                  "    match: {path: '/a b', methods: {GET: 1}}\n",
                  "t.yaml:6:26: routes[0].match.host[1]: invalid host pattern '*' (expected a "
                  "host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:31: routes[0].match.host[2]: invalid host pattern '*.' (expected a "
                  "host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:37: routes[0].match.host[3]: invalid host pattern 'a..b' (expected "
                  "a host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:45: routes[0].match.host[4]: invalid host pattern 'x.example:80' "
                  "(expected a host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:61: routes[0].match.host[5]: invalid host pattern '' (expected a "
                  "host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:65: routes[0].match.host[6]: invalid host pattern '-a.b' (expected "
                  "a host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:73: routes[0].match.host[7]: invalid host pattern '[::1' (expected "
                  "a host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:6:81: routes[0].match.host[8]: invalid host pattern '**.a' (expected "
                  "a host name, \"*.\" and a domain, or [ipv6]; no port)\n"
                  "t.yaml:7:13: routes[0].match.path: path prefix 'collect' must start with "
                  "'/'\n"
                  "t.yaml:8:22: routes[0].match.methods[1]: invalid method 'PO ST' (expected a "
                  "token such as GET)\n"
                  "t.yaml:8:31: routes[0].match.methods[2]: invalid method '' (expected a token "
                  "such as GET)\n"
                  "t.yaml:10:19: routes[1].match.path: invalid character in path prefix '/a "
                  "b'\n"
                  "t.yaml:10:36: routes[1].match.methods: expected a method or a list of them, "
                  "got a mapping\n");
}

static void test_bad_durations_and_sizes(void **state)
{
    (void)state;
    expect_errors(MINIMAL "timeouts:\n"
                          "  drain: 0\n"
                          "  keepalive: 0ms\n"
                          "  body_idle: 10x\n"
                          "  request_head: -1s\n"
                          "  upstream_head: 25h\n"
                          "  upstream_connect: 99999999999999999999s\n"
                          "  upstream_body_idle: 1.5s\n"
                          "limits:\n"
                          "  body_bytes: 1t\n"
                          "  header_bytes: 10 k\n"
                          "  target_bytes: 8\n"
                          "  header_line_bytes: 2m\n"
                          "  connections_per_worker: 0\n"
                          "  header_count: 10001\n",
                  "t.yaml:5:10: timeouts.drain: duration must be greater than 0\n"
                  "t.yaml:6:14: timeouts.keepalive: duration must be greater than 0\n"
                  "t.yaml:7:14: timeouts.body_idle: invalid duration '10x' (expected e.g. "
                  "250ms, 10s, 5m, 1h)\n"
                  "t.yaml:8:17: timeouts.request_head: invalid duration '-1s' (expected e.g. "
                  "250ms, 10s, 5m, 1h)\n"
                  "t.yaml:9:18: timeouts.upstream_head: '25h' is out of range (1ms..24h)\n"
                  "t.yaml:10:21: timeouts.upstream_connect: '99999999999999999999s' is out of "
                  "range (1ms..24h)\n"
                  "t.yaml:11:23: timeouts.upstream_body_idle: invalid duration '1.5s' (expected "
                  "e.g. 250ms, 10s, 5m, 1h)\n"
                  "t.yaml:13:15: limits.body_bytes: invalid size '1t' (expected bytes, or a "
                  "number with a k, m or g suffix)\n"
                  "t.yaml:15:17: limits.target_bytes: '8' is out of range (16..1m)\n"
                  "t.yaml:16:22: limits.header_line_bytes: '2m' is out of range (64..1m)\n"
                  "t.yaml:17:27: limits.connections_per_worker: '0' is out of range "
                  "(1..1000000)\n"
                  "t.yaml:18:17: limits.header_count: '10001' is out of range (1..10000)\n");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_errors("workers: 0\n"
                  "listen: [{address: 127.0.0.1:80, backlog: 0}, {address: 127.0.0.1:81, "
                  "backlog: 65536}]\n"
                  "upstreams: {u: {servers: http://127.0.0.1, max_fails: 1001, keepalive: "
                  "{max_idle: 100001, idle_timeout: 2h}}}\n"
                  "routes: [{upstream: u, max_body_bytes: 2048g}]\n",
                  "t.yaml:1:10: workers: '0' is out of range (1..256)\n"
                  "t.yaml:2:43: listen[0].backlog: '0' is out of range (1..65535)\n"
                  "t.yaml:2:80: listen[1].backlog: '65536' is out of range (1..65535)\n"
                  "t.yaml:3:55: upstreams.u.max_fails: '1001' is out of range (0..1000)\n"
                  "t.yaml:3:83: upstreams.u.keepalive.max_idle: '100001' is out of range "
                  "(0..100000)\n"
                  "t.yaml:4:40: routes[0].max_body_bytes: '2048g' is out of range (0..1024g)\n");
    expect_errors(MINIMAL "workers: 257\n", "t.yaml:4:10: workers: '257' is out of range (1..256)\n");
}

static void test_list_caps(void **state)
{
    (void)state;
    /* 257 listeners and 10001 routes, cheaply written with aliases. */
    size_t cap = 64 * 1024, n = 0;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    n += (size_t)snprintf(yaml + n, cap - n, "listen: [&l {address: 127.0.0.1:80}");
    for (int i = 1; i < 257; i++)
        n += (size_t)snprintf(yaml + n, cap - n, ", *l");
    n += (size_t)snprintf(yaml + n, cap - n, "]\nupstreams: {u: {file: x}}\nroutes: [&r {upstream: u}");
    for (int i = 1; i < 10001; i++)
        n += (size_t)snprintf(yaml + n, cap - n, ", *r");
    snprintf(yaml + n, cap - n, "]\n");
    assert_true(n < cap - 8);
    expect_errors(yaml, "t.yaml:1:9: listen: too many listeners (257, at most 256)\n"
                        "t.yaml:3:9: routes: too many routes (10001, at most 10000)\n");
    free(yaml);
}

static void test_header_limit_conflict(void **state)
{
    (void)state;
    expect_errors(MINIMAL "limits: {header_bytes: 16k, header_line_bytes: 20k}\n",
                  "t.yaml:4:48: limits.header_line_bytes: 20k is larger than header_bytes "
                  "(16k)\n");
    expect_errors(MINIMAL "limits:\n  header_bytes: 4k\n",
                  "t.yaml:5:17: limits.header_bytes: 4k is smaller than header_line_bytes "
                  "(8k)\n");
    /* Equal is fine. */
    struct ap_config *cfg = parse_ok(MINIMAL "limits: {header_bytes: 8k}\n");
    assert_int_equal(cfg->limits.header_bytes, 8192);
    ap_config_unref(cfg);
}

static void test_many_errors_in_one_run(void **state)
{
    (void)state;
    /* Errors come sorted by position whatever order they were found in. */
    expect_errors("routes:\n"
                  "  - upstream: nope\n"
                  "workers: zero\n"
                  "listen:\n"
                  "  - address: 10.0.0.1:99999\n"
                  "upstreams:\n"
                  "  a: {servers: ftp://x}\n"
                  "limits: {body_bytes: huge}\n"
                  "timeouts: {drain: soon}\n"
                  "extra: 1\n",
                  "t.yaml:2:15: routes[0].upstream: unknown upstream 'nope'\n"
                  "t.yaml:3:10: workers: expected 'auto' or an integer, got 'zero'\n"
                  "t.yaml:5:14: listen[0].address: invalid port '99999' (expected 1..65535)\n"
                  "t.yaml:7:16: upstreams.a.servers: unsupported scheme in server URL 'ftp://x' "
                  "(expected http:// or https://)\n"
                  "t.yaml:8:22: limits.body_bytes: invalid size 'huge' (expected bytes, or a "
                  "number with a k, m or g suffix)\n"
                  "t.yaml:9:19: timeouts.drain: invalid duration 'soon' (expected e.g. 250ms, "
                  "10s, 5m, 1h)\n"
                  "t.yaml:10:1: unknown key 'extra'\n");
}

static void test_too_many_errors(void **state)
{
    (void)state;
    /* One route repeated 300 times through an alias: 300 errors found,
     * AP_CONFIG__MAX_ERRORS shown, then one line counting the rest. */
    char yaml[4096];
    int n;
    n = snprintf(yaml, sizeof(yaml),
                 "listen: [{address: 127.0.0.1:80}]\nupstreams: {u: {file: x}}\nroutes: [&r "
                 "{upstream: u, bogus: 1}");
    for (int i = 0; i < 299; i++)
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, ", *r");
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "]\n");
    char *errors = NULL;
    assert_null(parse(yaml, &errors));
    assert_non_null(errors);
    size_t lines = 0;
    for (const char *c = errors; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, AP_CONFIG__MAX_ERRORS + 1);
    assert_non_null(strstr(errors, "t.yaml:3:27: routes[0]: unknown key 'bogus'\n"));
    assert_non_null(strstr(errors, "t.yaml:3:27: too many errors, 200 more not shown\n"));
    free(errors);
}

static char *print_to_string(const struct ap_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(ap_config_print(cfg, f), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *inputs[] = {
        example,
        MINIMAL,
        "workers: 1\n"
        "listen: [{address: '[::]:1', proxy_protocol: on}]\n"
        "upstreams:\n"
        "  'we.ird-na_me': {servers: ['http://v6.local:65535/', 'http://[2001:db8::2]']}\n"
        "routes: [{upstream: we.ird-na_me, match: {host: '[::1]', path: '/a\"b\\\\c'}, "
        "max_body_bytes: 1000}]\n"
        "limits: {body_bytes: 0, header_bytes: 1025, header_line_bytes: 1000}\n"
        "timeouts: {drain: 1001ms, keepalive: 90m}\n",
        /* Values made by YAML escapes that libyaml would fold (\\L, \\N) or
         * refuse (\\x80) if printed raw: found by fuzz_config. */
        "listen: [{address: 127.0.0.1:80}]\n"
        "upstreams: {u: {file: \"a\\Lb\\x80\\t\\P\\N\\uFEFF\\U0001F600 \xc3\xa9\\\"\"}}\n"
        "routes: [{upstream: u}]\n",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(inputs); i++) {
        struct ap_config *a = parse_ok(inputs[i]);
        char *text_a = print_to_string(a);
        struct ap_config *b = parse_ok(text_a);
        char *text_b = print_to_string(b);
        /* Same path ("t.yaml") so the header line matches too. */
        assert_string_equal(text_a, text_b);

        assert_int_equal(a->workers, b->workers);
        assert_int_equal(a->workers_auto, b->workers_auto);
        assert_int_equal(a->nlisteners, b->nlisteners);
        for (size_t j = 0; j < a->nlisteners; j++) {
            assert_int_equal(a->listeners[j].addrlen, b->listeners[j].addrlen);
            assert_memory_equal(&a->listeners[j].addr, &b->listeners[j].addr,
                                a->listeners[j].addrlen);
            assert_int_equal(a->listeners[j].proxy_protocol, b->listeners[j].proxy_protocol);
        }
        assert_int_equal(a->nupstreams, b->nupstreams);
        for (size_t j = 0; j < a->nupstreams; j++) {
            assert_string_equal(a->upstreams[j].name, b->upstreams[j].name);
            assert_int_equal(a->upstreams[j].nservers, b->upstreams[j].nservers);
            for (size_t k = 0; k < a->upstreams[j].nservers; k++)
                assert_memory_equal(&a->upstreams[j].servers[k].addr,
                                    &b->upstreams[j].servers[k].addr,
                                    a->upstreams[j].servers[k].addrlen);
        }
        assert_int_equal(a->nroutes, b->nroutes);
        for (size_t j = 0; j < a->nroutes; j++) {
            assert_string_equal(a->routes[j].name, b->routes[j].name);
            assert_string_equal(a->routes[j].path_prefix, b->routes[j].path_prefix);
            assert_int_equal(a->routes[j].max_body_bytes, b->routes[j].max_body_bytes);
            assert_int_equal(a->routes[j].upstream - a->upstreams,
                             b->routes[j].upstream - b->upstreams);
        }
        assert_memory_equal(&a->limits, &b->limits, sizeof(a->limits));
        assert_memory_equal(&a->timeouts, &b->timeouts, sizeof(a->timeouts));
        for (size_t j = 0; j < a->nupstreams; j++)
            if (a->upstreams[j].file_path != NULL)
                assert_string_equal(a->upstreams[j].file_path, b->upstreams[j].file_path);
        free(text_a);
        free(text_b);
        ap_config_unref(a);
        ap_config_unref(b);
    }
}

static void test_escaped_values(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok("listen: [{address: 127.0.0.1:80}]\n"
                                     "upstreams: {u: {file: \"a\\Lb\\x80\"}}\n"
                                     "routes: [{upstream: u}]\n");
    assert_string_equal(cfg->upstreams[0].file_path, "a\xe2\x80\xa8" "b\xc2\x80");
    char *text = print_to_string(cfg);
    assert_non_null(strstr(text, "    file: \"a\\u2028b\\x80\"\n"));
    free(text);
    ap_config_unref(cfg);
    /* Request targets are ASCII on the wire: a prefix that is not never matches. */
    expect_errors("listen: [{address: 127.0.0.1:80}]\n"
                  "upstreams: {u: {file: x}}\n"
                  "routes: [{upstream: u, match: {path: \"/\xc3\xa9\"}}]\n",
                  "t.yaml:3:38: routes[0].match.path: invalid character in path prefix "
                  "'/\xc3\xa9'\n");
}

static void test_print_format(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(MINIMAL "workers: 2\n");
    char *text = print_to_string(cfg);
    assert_string_equal(text,
                        "# Effective configuration loaded from \"t.yaml\", every default filled "
                        "in.\n"
                        "workers: 2\n"
                        "log_level: \"info\"\n"
                        "listen:\n"
                        "  - address: \"127.0.0.1:8080\"\n"
                        "    proxy_protocol: false\n"
                        "    backlog: 511\n"
                        "upstreams:\n"
                        "  \"u\":\n"
                        "    file: \"out.ndjson\"\n"
                        "routes:\n"
                        "  - name: \"route1\"\n"
                        "    match:\n"
                        "      host: []\n"
                        "      path: \"/\"\n"
                        "      methods: []\n"
                        "    upstream: \"u\"\n"
                        "    max_body_bytes: 1m\n"
                        "    privacy:\n"
                        "      profile: strict\n"
                        "      site_id: ~ # not set: the request's Host\n"
                        "      client_address: drop\n"
                        "      truncate:\n"
                        "        ipv4: 24\n"
                        "        ipv6: 48\n"
                        "      address_header: \"X-Forwarded-For\"\n"
                        "      remove_headers: []\n"
                        "      pseudonym_bits: 64\n"
                        "      headers: {}\n"
                        "      cookies: {}\n"
                        "      query: {}\n"
                        "      url_keep: ~ # not set: utm_source, utm_medium and utm_campaign\n"
                        "limits:\n"
                        "  header_line_bytes: 8k\n"
                        "  header_bytes: 32k\n"
                        "  header_count: 100\n"
                        "  target_bytes: 8k\n"
                        "  body_bytes: 1m\n"
                        "  connections_per_worker: 10000\n"
                        "timeouts:\n"
                        "  request_head: 10s\n"
                        "  body_idle: 30s\n"
                        "  keepalive: 1m\n"
                        "  upstream_connect: 5s\n"
                        "  upstream_head: 1m\n"
                        "  upstream_body_idle: 1m\n"
                        "  drain: 30s\n"
                        "trusted_proxies: []\n"
                        "client_address_headers: [\"x-forwarded-for\"]\n"
                        "pseudonyms:\n"
                        "  secret_file: ~ # not set: a random key per UTC day, in memory only\n"
                        "  bits: 64\n"
                        "run_as_root: false\n");
    free(text);
    ap_config_unref(cfg);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = MINIMAL "log_level: debug\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    char *errors = (char *)"sentinel";
    struct ap_config *cfg = ap_config_load(path, &errors);
    assert_non_null(cfg);
    assert_null(errors);
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->log_level, "debug");
    ap_config_unref(cfg);

    /* Errors name the file as given. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "workers: 0\n", 11), 11);
    close(fd);
    assert_null(ap_config_load(path, &errors));
    char expected[256];
    snprintf(expected, sizeof(expected),
             "%s:1:1: missing required key 'listen'\n"
             "%s:1:1: missing required key 'upstreams'\n"
             "%s:1:1: missing required key 'routes'\n"
             "%s:1:10: workers: '0' is out of range (1..256)\n",
             path, path, path, path);
    assert_string_equal(errors, expected);
    free(errors);
    unlink(path);

    assert_null(ap_config_load("/nonexistent/anonproxy.yaml", &errors));
    assert_string_equal(errors,
                        "/nonexistent/anonproxy.yaml: cannot open: No such file or directory\n");
    free(errors);
    assert_null(ap_config_load("/", &errors));
    assert_string_equal(errors, "/: cannot read: Is a directory\n");
    free(errors);
}

static void test_refcount(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(MINIMAL);
    assert_int_equal(cfg->refcount, 1);
    assert_ptr_equal(ap_config_ref(cfg), cfg);
    assert_int_equal(cfg->refcount, 2);
    ap_config_unref(cfg);
    assert_int_equal(cfg->refcount, 1);
    ap_config_unref(cfg); /* frees: ASan reports a leak or double free otherwise */
    ap_config_unref(NULL);
}

/* ---- Client address, pseudonyms and routes[].privacy ---- */

/* A route with a privacy mapping: its keys start on line 6, column 7. */
#define PRIV_HEAD                                                                 \
    "listen: [{address: 127.0.0.1:8080}]\n"                                      \
    "upstreams: {u: {file: out.ndjson}}\n"                                       \
    "routes:\n"                                                                  \
    "  - upstream: u\n"                                                          \
    "    privacy:\n"

/* Writes `len` bytes to a new temporary file whose path goes to `path`. */
static void make_file(char path[64], size_t len)
{
    snprintf(path, 64, "/tmp/test_config_secret_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char buf[8192];
    assert_true(len <= sizeof(buf));
    memset(buf, 'k', len);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* The privacy example of docs/configuration.md, with the secret file at
 * `secret`. */
static char *privacy_example(const char *secret)
{
    static const char fmt[] =
        "listen: [{address: 127.0.0.1:8080}]\n"
        "upstreams: {x: {file: out.ndjson}}\n"
        "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8, \"::1/128\"]\n"
        "client_address_headers: [forwarded, X-Forwarded-For]\n"
        "pseudonyms:\n"
        "  secret_file: %s\n"
        "  bits: 96\n"
        "routes:\n"
        "  - name: collect\n"
        "    upstream: x\n"
        "    privacy:\n"
        "      profile: balanced\n"
        "      site_id: shop.example\n"
        "      client_address: truncate\n"
        "      truncate: { ipv4: 16, ipv6: 32 }\n"
        "      address_header: X-Real-IP\n"
        "      remove_headers: [X-Original-Forwarded-For, X-Azure-ClientIP]\n"
        "      pseudonym_bits: 64\n"
        "      headers:\n"
        "        X-Requested-With: keep\n"
        "        X-Device-Id: pseudonymise\n"
        "        X-Debug: drop\n"
        "        X-Proxy: { set: anonproxy }\n"
        "        User-Agent: keep\n"
        "        \"X-Custom-*\": drop\n"
        "      cookies:\n"
        "        \"_pk_id*\": pseudonymise\n"
        "        consent: keep\n"
        "      query:\n"
        "        uid: pseudonymize\n"
        "        \"utm_*\": keep\n"
        "        ip: truncate-ip\n"
        "      url_keep: [utm_source, utm_medium, utm_campaign, \"mtm_*\"]\n"
        "  - upstream: x\n";
    char *s = NULL;
    assert_true(asprintf(&s, fmt, secret) > 0);
    return s;
}

static void check_cidr(const struct ap_cidr *c, const char *text)
{
    char b[AP_CIDR_STRLEN];
    assert_true(ap_cidr_format(c, b, sizeof(b)) > 0);
    assert_string_equal(b, text);
}

static void test_privacy_example(void **state)
{
    (void)state;
    char secret[64];
    make_file(secret, 32);
    char *yaml = privacy_example(secret);
    struct ap_config *cfg = parse_ok(yaml);

    assert_int_equal(cfg->trusted_proxies.n, 3);
    check_cidr(&cfg->trusted_proxies.items[0], "127.0.0.1/32");
    check_cidr(&cfg->trusted_proxies.items[1], "10.0.0.0/8");
    check_cidr(&cfg->trusted_proxies.items[2], "::1/128");
    assert_ptr_equal(cfg->clientaddr.trusted, &cfg->trusted_proxies);
    assert_int_equal(cfg->clientaddr.norder, 2);
    assert_int_equal(cfg->clientaddr.order[0], AP_CLIENTADDR_HDR_FORWARDED);
    assert_int_equal(cfg->clientaddr.order[1], AP_CLIENTADDR_HDR_XFF);
    assert_string_equal(cfg->pseudonym_secret_file, secret);
    assert_int_equal(cfg->pseudonym_bits, 96);

    const struct ap_policy *pol = cfg->routes[0].policy;
    assert_non_null(pol);
    assert_int_equal(pol->magic, AP_POLICY_MAGIC);
    assert_string_equal(pol->name, "collect");
    assert_int_equal(pol->profile, AP_PROFILE_BALANCED);
    assert_string_equal(pol->site_id, "shop.example");
    assert_int_equal(pol->addr_mode, AP_ADDR_TRUNCATE);
    assert_int_equal(pol->v4_prefix, 16);
    assert_int_equal(pol->v6_prefix, 32);
    assert_string_equal(pol->addr_header, "X-Real-IP");
    assert_int_equal(pol->nremove_headers, 2);
    assert_string_equal(pol->remove_headers[0], "X-Original-Forwarded-For");
    assert_string_equal(pol->remove_headers[1], "X-Azure-ClientIP");
    assert_int_equal(pol->pseudo_bits, 64); /* the route's own, over pseudonyms.bits */
    assert_ptr_equal(pol->clientaddr, &cfg->clientaddr);

    /* The route's header rules first, in file order, then the profile's. */
    static const struct {
        const char *glob;
        enum ap_hdr_action action;
        const char *value;
    } hdr[] = {
        { "X-Requested-With", AP_HDR_KEEP, NULL }, { "X-Device-Id", AP_HDR_PSEUDO, NULL },
        { "X-Debug", AP_HDR_DROP, NULL },          { "X-Proxy", AP_HDR_SET, "anonproxy" },
        { "User-Agent", AP_HDR_KEEP, NULL },       { "X-Custom-*", AP_HDR_DROP, NULL },
    };
    assert_true(pol->nheaders > AP_ARRAY_SIZE(hdr));
    for (size_t i = 0; i < AP_ARRAY_SIZE(hdr); i++) {
        assert_string_equal(pol->headers[i].glob, hdr[i].glob);
        assert_int_equal(pol->headers[i].action, hdr[i].action);
        if (hdr[i].value != NULL)
            assert_string_equal(pol->headers[i].value, hdr[i].value);
        else
            assert_null(pol->headers[i].value);
        assert_string_equal(pol->headers[i].origin, "route collect");
    }
    assert_string_equal(pol->headers[AP_ARRAY_SIZE(hdr)].origin, "profile balanced");

    assert_int_equal(pol->ncookie_rules, 2);
    assert_string_equal(pol->cookie_rules[0].glob, "_pk_id*");
    assert_int_equal(pol->cookie_rules[0].action, AP_COOKIE_PSEUDO);
    assert_string_equal(pol->cookie_rules[1].glob, "consent");
    assert_int_equal(pol->cookie_rules[1].action, AP_COOKIE_KEEP);
    assert_ptr_equal(pol->cookies.rules, pol->cookie_rules);

    assert_true(pol->nquery_rules > 3);
    assert_string_equal(pol->query_rules[0].glob, "uid");
    assert_int_equal(pol->query_rules[0].action, AP_QUERY_PSEUDO);
    assert_string_equal(pol->query_rules[1].glob, "utm_*");
    assert_int_equal(pol->query_rules[1].action, AP_QUERY_KEEP);
    assert_string_equal(pol->query_rules[2].glob, "ip");
    assert_int_equal(pol->query_rules[2].action, AP_QUERY_TRUNCATE_IP);
    assert_int_equal(pol->nurl_keep, 4);
    assert_string_equal(pol->url_keep[3], "mtm_*");
    assert_int_equal(pol->query.nurl_keep, 4);
    assert_int_equal(pol->query.strict_referrer, 0);

    /* A route without `privacy:` gets the strict profile, and the global
     * pseudonym length. */
    const struct ap_policy *dflt = cfg->routes[1].policy;
    assert_non_null(dflt);
    assert_string_equal(dflt->name, "route2");
    assert_int_equal(dflt->profile, AP_PROFILE_STRICT);
    assert_int_equal(dflt->pseudo_bits, 96);
    assert_ptr_equal(dflt->clientaddr, &cfg->clientaddr);

    ap_config_unref(cfg);
    free(yaml);
    unlink(secret);
}

static void test_privacy_defaults(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(MINIMAL);
    assert_int_equal(cfg->trusted_proxies.n, 0);
    assert_int_equal(cfg->clientaddr.magic, AP_CLIENTADDR_CONFIG_MAGIC);
    assert_ptr_equal(cfg->clientaddr.trusted, &cfg->trusted_proxies);
    assert_int_equal(cfg->clientaddr.norder, 1);
    assert_int_equal(cfg->clientaddr.order[0], AP_CLIENTADDR_HDR_XFF);
    assert_null(cfg->pseudonym_secret_file);
    assert_int_equal(cfg->pseudonym_bits, 64);
    const struct ap_policy *pol = cfg->routes[0].policy;
    assert_non_null(pol);
    assert_string_equal(pol->name, "route1");
    assert_int_equal(pol->profile, AP_PROFILE_STRICT);
    assert_null(pol->site_id);
    assert_int_equal(pol->addr_mode, AP_ADDR_DROP);
    assert_int_equal(pol->v4_prefix, 24);
    assert_int_equal(pol->v6_prefix, 48);
    assert_string_equal(pol->addr_header, "X-Forwarded-For");
    assert_int_equal(pol->nremove_headers, 0);
    assert_int_equal(pol->pseudo_bits, 64);
    assert_int_equal(pol->ncookie_rules, 0);
    assert_int_equal(pol->nurl_keep, 0);
    assert_null(pol->query.url_keep);
    assert_int_equal(pol->query.strict_referrer, 1);
    assert_string_equal(pol->headers[0].origin, "profile strict");
    assert_ptr_equal(pol->clientaddr, &cfg->clientaddr);
    ap_config_unref(cfg);

    /* Null values: every default. */
    cfg = parse_ok(PRIV_HEAD "      site_id:\n      url_keep: ~\n      headers:\n"
                             "      cookies:\n      query:\n      remove_headers:\n"
                             "      truncate:\n"
                             "pseudonyms: {secret_file: null}\n"
                             "trusted_proxies:\n");
    pol = cfg->routes[0].policy;
    assert_null(pol->site_id);
    assert_int_equal(pol->nurl_keep, 0);
    assert_int_equal(pol->ncookie_rules, 0);
    assert_int_equal(pol->v4_prefix, 24);
    assert_null(cfg->pseudonym_secret_file);
    assert_int_equal(cfg->trusted_proxies.n, 0);
    ap_config_unref(cfg);

    /* `privacy:` alone is the strict profile too. */
    cfg = parse_ok(PRIV_HEAD);
    assert_int_equal(cfg->routes[0].policy->profile, AP_PROFILE_STRICT);
    ap_config_unref(cfg);

    /* The balanced profile truncates by default; pseudonyms.bits is every
     * route's default. */
    cfg = parse_ok(PRIV_HEAD "      profile: balanced\npseudonyms: {bits: 128}\n");
    pol = cfg->routes[0].policy;
    assert_int_equal(pol->profile, AP_PROFILE_BALANCED);
    assert_int_equal(pol->addr_mode, AP_ADDR_TRUNCATE);
    assert_int_equal(pol->pseudo_bits, 128);
    assert_int_equal(pol->query.strict_referrer, 0);
    assert_string_equal(pol->headers[0].origin, "profile balanced");
    ap_config_unref(cfg);
}

static void test_privacy_values(void **state)
{
    (void)state;
    /* Every client address mode, by name. */
    static const struct {
        const char *text;
        enum ap_addr_mode mode;
    } modes[] = {
        { "drop", AP_ADDR_DROP },
        { "placeholder", AP_ADDR_PLACEHOLDER },
        { "truncate", AP_ADDR_TRUNCATE },
        { "pseudonymise", AP_ADDR_PSEUDO },
        { "pseudonymize", AP_ADDR_PSEUDO },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(modes); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), PRIV_HEAD "      client_address: %s\n", modes[i].text);
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->routes[0].policy->addr_mode, modes[i].mode);
        ap_config_unref(cfg);
    }

    /* Every header action by name; `set` only with a value. */
    for (int a = 0; a < AP_HDR_NACTIONS; a++) {
        char yaml[512];
        const char *name = ap_policy_hdr_action_name((enum ap_hdr_action)a);
        if (a == AP_HDR_SET)
            snprintf(yaml, sizeof(yaml), PRIV_HEAD "      headers: {X-A: {set: \"v 1\"}}\n");
        else
            snprintf(yaml, sizeof(yaml), PRIV_HEAD "      headers: {X-A: %s}\n", name);
        struct ap_config *cfg = parse_ok(yaml);
        const struct ap_policy *pol = cfg->routes[0].policy;
        assert_string_equal(pol->headers[0].glob, "X-A");
        assert_int_equal(pol->headers[0].action, a);
        if (a == AP_HDR_SET)
            assert_string_equal(pol->headers[0].value, "v 1");
        ap_config_unref(cfg);
    }
    for (int a = 0; a < AP_QUERY_NACTIONS; a++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), PRIV_HEAD "      query: {\"p*\": %s}\n",
                 ap_policy_query_action_name((enum ap_query_action)a));
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->routes[0].policy->query_rules[0].action, a);
        ap_config_unref(cfg);
    }
    for (int a = 0; a < AP_COOKIE_NACTIONS; a++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), PRIV_HEAD "      cookies: {\"c?\": %s}\n",
                 ap_policy_cookie_action_name((enum ap_cookie_action)a));
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->routes[0].policy->cookie_rules[0].action, a);
        ap_config_unref(cfg);
    }

    /* Prefixes in one string, single headers as a string, any case. */
    struct ap_config *cfg = parse_ok(MINIMAL "trusted_proxies: \"10.0.0.0/8, 192.168.0.0/16 ::1\"\n"
                                             "client_address_headers: Forwarded\n");
    assert_int_equal(cfg->trusted_proxies.n, 3);
    check_cidr(&cfg->trusted_proxies.items[1], "192.168.0.0/16");
    check_cidr(&cfg->trusted_proxies.items[2], "::1/128");
    assert_int_equal(cfg->clientaddr.norder, 1);
    assert_int_equal(cfg->clientaddr.order[0], AP_CLIENTADDR_HDR_FORWARDED);
    ap_config_unref(cfg);

    /* The extremes of every range. */
    cfg = parse_ok(PRIV_HEAD "      truncate: {ipv4: 0, ipv6: 128}\n"
                             "      pseudonym_bits: 256\n"
                             "pseudonyms: {bits: 32}\n");
    assert_int_equal(cfg->routes[0].policy->v4_prefix, 0);
    assert_int_equal(cfg->routes[0].policy->v6_prefix, 128);
    assert_int_equal(cfg->routes[0].policy->pseudo_bits, 256);
    assert_int_equal(cfg->pseudonym_bits, 32);
    ap_config_unref(cfg);
}

static void test_privacy_errors(void **state)
{
    (void)state;
    expect_errors(PRIV_HEAD "      profile: strikt\n",
                  "t.yaml:6:16: routes[0].privacy.profile: unknown profile 'strikt', did you "
                  "mean 'strict'? (expected one of: strict, balanced)\n");
    expect_errors(PRIV_HEAD "      client_address: Truncat\n",
                  "t.yaml:6:23: routes[0].privacy.client_address: unknown client address mode "
                  "'Truncat', did you mean 'truncate'? (expected one of: drop, placeholder, "
                  "truncate, pseudonymise)\n");
    expect_errors(PRIV_HEAD "      sit_id: a\n",
                  "t.yaml:6:7: routes[0].privacy: unknown key 'sit_id', did you mean "
                  "'site_id'?\n");
    expect_errors(PRIV_HEAD "      profile: strict\n      profile: balanced\n",
                  "t.yaml:7:7: routes[0].privacy: duplicate key 'profile' (first at 6:7)\n");
    expect_errors("listen: [{address: 127.0.0.1:8080}]\n"
                  "upstreams: {u: {file: out.ndjson}}\n"
                  "routes: [{upstream: u, privacy: strict}]\n",
                  "t.yaml:3:33: routes[0].privacy: expected a mapping, got a scalar\n");
    expect_errors(PRIV_HEAD "      site_id: \"\"\n",
                  "t.yaml:6:16: routes[0].privacy.site_id: invalid site id '' (1..255 "
                  "characters, no control characters)\n");

    /* Header rules. */
    expect_errors(PRIV_HEAD "      headers:\n"
                            "        X-A: kep\n"
                            "        X-B: set\n"
                            "        X-C: {set: }\n"
                            "        X-D: {sett: 1}\n"
                            "        X-E: [keep]\n"
                            "        X-F: {set: \"a\\nb\"}\n"
                            "        \"X F\": keep\n"
                            "        Host: keep\n"
                            "        x-forwarded-for: keep\n"
                            "        X-A: drop\n",
                  "t.yaml:7:14: routes[0].privacy.headers.X-A: unknown header action 'kep', "
                  "did you mean 'keep'? (expected one of: keep, drop, set, pseudonymise, "
                  "reduce-ua, reduce-language, referrer, clean-url, origin-only, cookies)\n"
                  "t.yaml:8:14: routes[0].privacy.headers.X-B: 'set' needs a value: write "
                  "{ set: VALUE }\n"
                  "t.yaml:9:20: routes[0].privacy.headers.X-C.set: missing value (expected a "
                  "header value)\n"
                  "t.yaml:10:14: routes[0].privacy.headers.X-D: expected an action name or "
                  "{ set: VALUE }\n"
                  "t.yaml:11:14: routes[0].privacy.headers.X-E: expected a header action, got "
                  "a list\n"
                  "t.yaml:12:20: routes[0].privacy.headers.X-F.set: invalid header value "
                  "'a?b' (no control characters, no leading or trailing space, not empty)\n"
                  "t.yaml:13:9: routes[0].privacy.headers.X F: invalid header name 'X F' (a "
                  "token, where '*' and '?' are wildcards)\n"
                  "t.yaml:14:9: routes[0].privacy.headers.Host: 'Host' is managed by the proxy "
                  "itself and cannot have a rule\n"
                  "t.yaml:15:9: routes[0].privacy.headers.x-forwarded-for: 'x-forwarded-for' "
                  "carries client addresses and is always removed; the outbound address is "
                  "set by client_address and address_header\n"
                  "t.yaml:16:9: routes[0].privacy.headers.X-A: duplicate rule 'X-A' (first at "
                  "7:9)\n");
    /* The route's own address headers are address headers too. */
    expect_errors(PRIV_HEAD "      address_header: X-Client\n"
                            "      remove_headers: X-Orig\n"
                            "      headers: {x-client: keep, X-ORIG: {set: a}}\n",
                  "t.yaml:8:17: routes[0].privacy.headers.x-client: 'x-client' carries client "
                  "addresses and is always removed; the outbound address is set by "
                  "client_address and address_header\n"
                  "t.yaml:8:33: routes[0].privacy.headers.X-ORIG: 'X-ORIG' carries client "
                  "addresses and is always removed; the outbound address is set by "
                  "client_address and address_header\n");
    expect_errors(PRIV_HEAD "      headers: [X-A]\n",
                  "t.yaml:6:16: routes[0].privacy.headers: expected a mapping of header names "
                  "to actions, got a list\n");

    /* Address headers. */
    expect_errors(PRIV_HEAD "      address_header: \"X Real\"\n"
                            "      remove_headers: [X-Ok, Connection, \"\"]\n",
                  "t.yaml:6:23: routes[0].privacy.address_header: invalid header name 'X Real' "
                  "(expected a token such as X-Forwarded-For)\n"
                  "t.yaml:7:30: routes[0].privacy.remove_headers[1]: 'Connection' is managed "
                  "by the proxy itself\n"
                  "t.yaml:7:42: routes[0].privacy.remove_headers[2]: invalid header name '' "
                  "(expected a token such as X-Forwarded-For)\n");
    expect_errors(PRIV_HEAD "      address_header: forwarded\n",
                  "t.yaml:6:23: routes[0].privacy.address_header: Forwarded needs the RFC "
                  "7239 syntax, which this header does not get; use X-Forwarded-For or "
                  "X-Real-IP\n");

    /* Cookies, query, url_keep. */
    expect_errors(PRIV_HEAD "      cookies: {\"a;b\": keep, c: keeps, c: drop}\n"
                            "      query: {gclid: keep, \"\": drop, u: origin, U: drop, u: keep}\n"
                            "      url_keep: [fbclid, \"utm_*\"]\n",
                  "t.yaml:6:17: routes[0].privacy.cookies.a;b: invalid cookie name 'a;b' (a "
                  "token, where '*' and '?' are wildcards)\n"
                  "t.yaml:6:33: routes[0].privacy.cookies.c: unknown cookie action 'keeps', "
                  "did you mean 'keep'? (expected one of: drop, keep, pseudonymise)\n"
                  "t.yaml:6:40: routes[0].privacy.cookies.c: duplicate rule 'c' (first at "
                  "6:30)\n"
                  "t.yaml:7:15: routes[0].privacy.query.gclid: 'gclid' is a click id: click "
                  "ids are always dropped\n"
                  "t.yaml:7:28: routes[0].privacy.query: invalid parameter name '' (1..256 "
                  "characters, no control characters)\n"
                  "t.yaml:7:41: routes[0].privacy.query.u: unknown query action 'origin' "
                  "(expected one of: keep, drop, pseudonymise, truncate-ip, clean-url, "
                  "origin-only, referrer)\n"
                  "t.yaml:7:58: routes[0].privacy.query.u: duplicate rule 'u' (first at "
                  "7:38)\n"
                  "t.yaml:8:18: routes[0].privacy.url_keep[0]: 'fbclid' is a click id: click "
                  "ids are always dropped\n");
    expect_errors(PRIV_HEAD "      url_keep: []\n",
                  "t.yaml:6:17: routes[0].privacy.url_keep: an empty list is not supported; "
                  "leave the key out to keep the default (utm_source, utm_medium, "
                  "utm_campaign)\n");

    /* Numbers. */
    expect_errors(PRIV_HEAD "      truncate: {ipv4: 33, ipv6: 129, ipv5: 1}\n"
                            "      pseudonym_bits: 66\n"
                            "pseudonyms: {bits: 512}\n",
                  "t.yaml:6:24: routes[0].privacy.truncate.ipv4: '33' is out of range "
                  "(0..32)\n"
                  "t.yaml:6:34: routes[0].privacy.truncate.ipv6: '129' is out of range "
                  "(0..128)\n"
                  "t.yaml:6:39: routes[0].privacy.truncate: unknown key 'ipv5', did you mean "
                  "'ipv4'?\n"
                  "t.yaml:7:23: routes[0].privacy.pseudonym_bits: '66' is not a multiple of 4 "
                  "(pseudonyms are written in hex digits)\n"
                  "t.yaml:8:20: pseudonyms.bits: '512' is out of range (32..256)\n");
    expect_errors(MINIMAL "pseudonyms: {bits: 28, secret_file: \"\"}\n",
                  "t.yaml:4:20: pseudonyms.bits: '28' is out of range (32..256)\n"
                  "t.yaml:4:37: pseudonyms.secret_file: empty file path\n");

    /* Client address resolution. */
    expect_errors(MINIMAL "trusted_proxies: [10.0.0.1/8, \"2001:db8::1/32\", nope, \"\", "
                          "\"10.0.0.0/8 1.2.3.4/33\", {a: 1}]\n",
                  "t.yaml:4:19: trusted_proxies[0]: invalid CIDR prefix '10.0.0.1/8': bits "
                  "are set after /8 (did you mean '10.0.0.0/8'?)\n"
                  "t.yaml:4:31: trusted_proxies[1]: invalid CIDR prefix '2001:db8::1/32': "
                  "bits are set after /32 (did you mean '2001:db8::/32'?)\n"
                  "t.yaml:4:49: trusted_proxies[2]: invalid CIDR prefix 'nope' (expected an "
                  "IPv4 or IPv6 address with an optional /prefix, such as 10.0.0.0/8 or ::1)\n"
                  "t.yaml:4:55: trusted_proxies[3]: empty CIDR prefix\n"
                  "t.yaml:4:59: trusted_proxies[4]: invalid CIDR prefix '1.2.3.4/33' "
                  "(expected an IPv4 or IPv6 address with an optional /prefix, such as "
                  "10.0.0.0/8 or ::1)\n"
                  "t.yaml:4:84: trusted_proxies[5]: expected a CIDR prefix, got a mapping\n");
    expect_errors(MINIMAL "client_address_headers: [x-forwarded-fo, X-Real-IP, forwarded, "
                          "Forwarded]\n",
                  "t.yaml:4:26: client_address_headers[0]: unknown client address header "
                  "'x-forwarded-fo', did you mean 'x-forwarded-for'? (expected one of: "
                  "x-forwarded-for, forwarded)\n"
                  "t.yaml:4:42: client_address_headers[1]: unknown client address header "
                  "'X-Real-IP' (expected one of: x-forwarded-for, forwarded)\n"
                  "t.yaml:4:64: client_address_headers[3]: duplicate header 'Forwarded' "
                  "(first at 4:53)\n");
    expect_errors(MINIMAL "client_address_headers: []\n",
                  "t.yaml:4:25: client_address_headers: at least one header is required "
                  "(x-forwarded-for, forwarded, or both)\n");
}

static void test_privacy_caps(void **state)
{
    (void)state;
    /* 256 rules are accepted, 257 are refused, in each map. */
    for (unsigned n = 256; n <= 257; n++) {
        size_t cap = 64 + n * 16;
        char *yaml = malloc(sizeof(PRIV_HEAD) + cap);
        assert_non_null(yaml);
        size_t off = (size_t)snprintf(yaml, sizeof(PRIV_HEAD) + cap, PRIV_HEAD "      query: {");
        for (unsigned i = 0; i < n; i++)
            off += (size_t)snprintf(yaml + off, sizeof(PRIV_HEAD) + cap - off, "%sp%u: drop",
                                    i ? ", " : "", i);
        snprintf(yaml + off, sizeof(PRIV_HEAD) + cap - off, "}\n");
        char *errors = NULL;
        struct ap_config *cfg = parse(yaml, &errors);
        if (n == 256) {
            assert_non_null(cfg);
            assert_string_equal(cfg->routes[0].policy->query_rules[255].glob, "p255");
            ap_config_unref(cfg);
        } else {
            assert_null(cfg);
            assert_string_equal(errors, "t.yaml:6:14: routes[0].privacy.query: too many "
                                        "entries (257, at most 256)\n");
            free(errors);
        }
        free(yaml);
    }
}

/* Aliases give many routes one big map; each route's policy copies it, so
 * all routes together have a budget of 100000 entries. */
static void test_privacy_total_budget(void **state)
{
    (void)state;
    size_t cap = 16384 + 400 * 4;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    size_t off = (size_t)snprintf(yaml, cap, "listen: [{address: 127.0.0.1:8080}]\n"
                                             "upstreams: {u: {file: out.ndjson}}\n"
                                             "x: &q {");
    for (unsigned i = 0; i < 256; i++)
        off += (size_t)snprintf(yaml + off, cap - off, "%sp%u: drop", i ? ", " : "", i);
    off += (size_t)snprintf(yaml + off, cap - off, "}\nroutes: [");
    for (unsigned i = 0; i < 400; i++)
        off += (size_t)snprintf(yaml + off, cap - off, "%s{upstream: u, privacy: {query: *q}}",
                                i ? ", " : "");
    snprintf(yaml + off, cap - off, "]\n");
    char *errors = NULL;
    assert_null(parse(yaml, &errors));
    /* 390 routes fit (99840 entries); the 10 others are refused, at the
     * shared node, in route order. "x" is an unknown key too. */
    const char *first = strstr(errors, "routes[390]");
    assert_non_null(first);
    assert_int_equal(strncmp(first, "routes[390].privacy.query: too many privacy rules in all "
                                    "routes together (at most 100000)\n", 82), 0);
    assert_null(strstr(errors, "routes[389]"));
    assert_non_null(strstr(errors, "routes[399].privacy.query: too many"));
    size_t lines = 0;
    for (const char *c = errors; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 11);
    free(errors);
    free(yaml);
}

static void test_secret_file(void **state)
{
    (void)state;
    char ok[64], small[64], big[64], yaml[512], expected[512];
    make_file(ok, 16);
    make_file(small, 15);
    make_file(big, 4097);

    snprintf(yaml, sizeof(yaml), MINIMAL "pseudonyms: {secret_file: %s}\n", ok);
    struct ap_config *cfg = parse_ok(yaml);
    assert_string_equal(cfg->pseudonym_secret_file, ok);
    ap_config_unref(cfg);

    snprintf(yaml, sizeof(yaml), MINIMAL "pseudonyms: {secret_file: %s}\n", small);
    snprintf(expected, sizeof(expected),
             "t.yaml:4:27: pseudonyms.secret_file: secret file '%s' holds 15 bytes (expected "
             "16..4096)\n", small);
    expect_errors(yaml, expected);
    snprintf(yaml, sizeof(yaml), MINIMAL "pseudonyms: {secret_file: %s}\n", big);
    snprintf(expected, sizeof(expected),
             "t.yaml:4:27: pseudonyms.secret_file: secret file '%s' holds 4097 bytes "
             "(expected 16..4096)\n", big);
    expect_errors(yaml, expected);
    expect_errors(MINIMAL "pseudonyms: {secret_file: /nonexistent/key}\n",
                  "t.yaml:4:27: pseudonyms.secret_file: cannot use secret file "
                  "'/nonexistent/key': No such file or directory\n");
    expect_errors(MINIMAL "pseudonyms: {secret_file: /tmp}\n",
                  "t.yaml:4:27: pseudonyms.secret_file: secret file '/tmp' is not a regular "
                  "file\n");
    /* Root reads anything, so the permission case needs another user. */
    if (geteuid() != 0) {
        assert_int_equal(chmod(ok, 0), 0);
        snprintf(yaml, sizeof(yaml), MINIMAL "pseudonyms: {secret_file: %s}\n", ok);
        snprintf(expected, sizeof(expected),
                 "t.yaml:4:27: pseudonyms.secret_file: cannot read secret file '%s': "
                 "Permission denied\n", ok);
        expect_errors(yaml, expected);
    }
    unlink(ok);
    unlink(small);
    unlink(big);
}

/* Prints, parses the output, prints again: both texts and both policies
 * must agree; the profile's own rules must not turn into route rules. */
static void test_privacy_round_trip(void **state)
{
    (void)state;
    char secret[64];
    make_file(secret, 40);
    char *inputs[] = {
        privacy_example(secret),
        strdup(PRIV_HEAD "      profile: balanced\n"
                         "      site_id: \"caf\xc3\xa9 \\\"x\\\"\"\n"
                         "      client_address: placeholder\n"
                         "      headers: {\"*\": keep, X-S: {set: \"a \\\\ \\\"b\\\"\"}}\n"
                         "      cookies: {\"*\": drop}\n"),
        strdup(MINIMAL),
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(inputs); i++) {
        struct ap_config *a = parse_ok(inputs[i]);
        char *text_a = print_to_string(a);
        struct ap_config *b = parse_ok(text_a);
        char *text_b = print_to_string(b);
        assert_string_equal(text_a, text_b);
        assert_null(strstr(text_a, "Accept-Language")); /* a profile rule */
        assert_null(strstr(text_a, "\"client_id\""));   /* a profile query rule */

        assert_int_equal(a->trusted_proxies.n, b->trusted_proxies.n);
        assert_memory_equal(a->trusted_proxies.items, b->trusted_proxies.items,
                            a->trusted_proxies.n * sizeof(*a->trusted_proxies.items));
        assert_int_equal(a->clientaddr.norder, b->clientaddr.norder);
        assert_memory_equal(a->clientaddr.order, b->clientaddr.order, sizeof(a->clientaddr.order));
        assert_int_equal(a->pseudonym_bits, b->pseudonym_bits);
        assert_int_equal(a->pseudonym_secret_file == NULL, b->pseudonym_secret_file == NULL);
        for (size_t r = 0; r < a->nroutes; r++) {
            const struct ap_policy *pa = a->routes[r].policy, *pb = b->routes[r].policy;
            assert_string_equal(pa->name, pb->name);
            assert_int_equal(pa->profile, pb->profile);
            assert_int_equal(pa->site_id == NULL, pb->site_id == NULL);
            if (pa->site_id != NULL)
                assert_string_equal(pa->site_id, pb->site_id);
            assert_int_equal(pa->addr_mode, pb->addr_mode);
            assert_int_equal(pa->v4_prefix, pb->v4_prefix);
            assert_int_equal(pa->v6_prefix, pb->v6_prefix);
            assert_int_equal(pa->pseudo_bits, pb->pseudo_bits);
            assert_string_equal(pa->addr_header, pb->addr_header);
            assert_int_equal(pa->nremove_headers, pb->nremove_headers);
            for (size_t k = 0; k < pa->nremove_headers; k++)
                assert_string_equal(pa->remove_headers[k], pb->remove_headers[k]);
            assert_int_equal(pa->nheaders, pb->nheaders);
            for (size_t k = 0; k < pa->nheaders; k++) {
                assert_string_equal(pa->headers[k].glob, pb->headers[k].glob);
                assert_int_equal(pa->headers[k].action, pb->headers[k].action);
                assert_string_equal(pa->headers[k].origin, pb->headers[k].origin);
                if (pa->headers[k].value != NULL)
                    assert_string_equal(pa->headers[k].value, pb->headers[k].value);
            }
            assert_int_equal(pa->ncookie_rules, pb->ncookie_rules);
            for (size_t k = 0; k < pa->ncookie_rules; k++) {
                assert_string_equal(pa->cookie_rules[k].glob, pb->cookie_rules[k].glob);
                assert_int_equal(pa->cookie_rules[k].action, pb->cookie_rules[k].action);
            }
            assert_int_equal(pa->nquery_rules, pb->nquery_rules);
            for (size_t k = 0; k < pa->nquery_rules; k++) {
                assert_string_equal(pa->query_rules[k].glob, pb->query_rules[k].glob);
                assert_int_equal(pa->query_rules[k].action, pb->query_rules[k].action);
            }
            assert_int_equal(pa->nurl_keep, pb->nurl_keep);
            for (size_t k = 0; k < pa->nurl_keep; k++)
                assert_string_equal(pa->url_keep[k], pb->url_keep[k]);
        }
        free(text_a);
        free(text_b);
        ap_config_unref(a);
        ap_config_unref(b);
        free(inputs[i]);
    }
    unlink(secret);
}

static void test_privacy_print(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(PRIV_HEAD "      profile: balanced\n"
                                               "      headers: {X-A: keep, X-B: {set: v}}\n"
                                               "      query: {uid: keep}\n"
                                               "      url_keep: [a]\n"
                                               "trusted_proxies: [\"::ffff:10.0.0.0/104\"]\n");
    char *text = print_to_string(cfg);
    assert_non_null(strstr(text, "    privacy:\n"
                                 "      profile: balanced\n"
                                 "      site_id: ~ # not set: the request's Host\n"
                                 "      client_address: truncate\n"
                                 "      truncate:\n"
                                 "        ipv4: 24\n"
                                 "        ipv6: 48\n"
                                 "      address_header: \"X-Forwarded-For\"\n"
                                 "      remove_headers: []\n"
                                 "      pseudonym_bits: 64\n"
                                 "      headers:\n"
                                 "        \"X-A\": keep\n"
                                 "        \"X-B\": { set: \"v\" }\n"
                                 "      cookies: {}\n"
                                 "      query:\n"
                                 "        \"uid\": keep\n"
                                 "      url_keep: [\"a\"]\n"));
    /* An IPv4-mapped prefix is printed as the IPv4 prefix it stands for. */
    assert_non_null(strstr(text, "trusted_proxies: [\"10.0.0.0/8\"]\n"));
    free(text);
    ap_config_unref(cfg);
}

/* ---- TLS keys (listen[].tls, upstreams.NAME.tls, https servers) ---- */

/* Certificates and keys made at test time in a temporary directory:
 * nothing is committed. */
static char tls_dir[64];

static char *tls_path(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", tls_dir, file);
    return out;
}

static void write_key_and_cert(const char *stem, EVP_PKEY *key, const char *cn, long days)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400L);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s, DNS:www.%s", cn, cn);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.pem", tls_dir, stem);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", tls_dir, stem);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
}

static void write_text(const char *file, const char *text)
{
    char path[128];
    FILE *f = fopen(tls_path(path, sizeof(path), file), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int tls_setup(void **state)
{
    (void)state;
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/test_config_tls_XXXXXX");
    if (mkdtemp(tls_dir) == NULL)
        return -1;
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    if (rsa == NULL || ec == NULL || other == NULL)
        return -1;
    write_key_and_cert("rsa", rsa, "a.example", 365);
    write_key_and_cert("ec", ec, "a.example", 365);
    write_key_and_cert("other", other, "b.example", 365);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other);
    write_text("bad.pem", "-----BEGIN CERTIFICATE-----\nnot*base64*at*all\n"
                          "-----END CERTIFICATE-----\n");
    write_text("text.pem", "just some text\n");
    char path[128];
    snprintf(path, sizeof(path), "%s/dir", tls_dir);
    return mkdir(path, 0700);
}

static int tls_teardown(void **state)
{
    (void)state;
    static const char *const files[] = { "rsa.pem", "rsa.key", "ec.pem", "ec.key", "other.pem",
                                         "other.key", "bad.pem", "text.pem" };
    char path[128];
    for (size_t i = 0; i < AP_ARRAY_SIZE(files); i++)
        unlink(tls_path(path, sizeof(path), files[i]));
    rmdir(tls_path(path, sizeof(path), "dir"));
    return rmdir(tls_dir);
}

/* Replaces every "@" of `tmpl` by the fixture directory. */
static char *with_dir(const char *tmpl)
{
    size_t n = strlen(tmpl) + 1, dl = strlen(tls_dir);
    for (const char *q = tmpl; *q; q++)
        n += *q == '@' ? dl : 0;
    char *out = malloc(n), *w = out;
    assert_non_null(out);
    for (const char *q = tmpl; *q; q++) {
        if (*q == '@') {
            memcpy(w, tls_dir, dl);
            w += dl;
        } else {
            *w++ = *q;
        }
    }
    *w = '\0';
    return out;
}

static struct ap_config *parse_ok_dir(const char *tmpl)
{
    char *yaml = with_dir(tmpl);
    struct ap_config *cfg = parse_ok(yaml);
    free(yaml);
    return cfg;
}

static void expect_errors_dir(const char *tmpl, const char *expected_tmpl)
{
    char *yaml = with_dir(tmpl), *expected = with_dir(expected_tmpl);
    expect_errors(yaml, expected);
    free(yaml);
    free(expected);
}

#define TLS_TAIL                                                                 \
    "upstreams: {u: {file: out.ndjson}}\n"                                       \
    "routes: [{upstream: u}]\n"

static void test_tls_listener_values(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok_dir(
        "listen:\n"
        "  - address: 127.0.0.1:8443\n"
        "    tls:\n"
        "      certificates:\n"
        "        - {cert: @/rsa.pem, key: @/rsa.key, names: [A.example, '*.a.example']}\n"
        "        - cert: @/ec.pem\n"
        "          key: @/ec.key\n"
        "          chain: @/other.pem\n"
        "          names: ['*.a.example', a.example]\n"
        "        - {cert: @/other.pem, key: @/other.key}\n"
        "      protocols: TLSv1.3\n"
        "      ciphers: ECDHE-RSA-AES256-GCM-SHA384\n"
        "      ciphersuites: TLS_AES_256_GCM_SHA384\n"
        "      session_tickets: off\n"
        "      ticket_key_rotation: 1h\n"
        "      session_cache: 0\n"
        "      handshake_timeout: 2s\n"
        "  - address: 127.0.0.1:8080\n" TLS_TAIL);
    assert_null(cfg->listeners[1].tls);
    const struct ap_config_tls_listener *t = cfg->listeners[0].tls;
    assert_non_null(t);
    assert_int_equal(t->pos.line, 4);
    assert_int_equal(t->pos.col, 7);
    assert_int_equal(t->ncerts, 3);
    char path[128];
    assert_string_equal(t->certs[0].cert, tls_path(path, sizeof(path), "rsa.pem"));
    assert_string_equal(t->certs[0].key, tls_path(path, sizeof(path), "rsa.key"));
    assert_null(t->certs[0].chain);
    assert_int_equal(t->certs[0].nnames, 2);
    assert_string_equal(t->certs[0].names[0], "a.example");
    assert_string_equal(t->certs[0].names[1], "*.a.example");
    assert_string_equal(t->certs[1].chain, tls_path(path, sizeof(path), "other.pem"));
    assert_int_equal(t->certs[1].pos.line, 6);
    assert_int_equal(t->certs[1].pos.col, 11);
    assert_int_equal(t->certs[2].nnames, 0);
    assert_int_equal(t->protocols, AP_TLS_PROTO_TLS13);
    assert_string_equal(t->ciphers, "ECDHE-RSA-AES256-GCM-SHA384");
    assert_string_equal(t->ciphersuites, "TLS_AES_256_GCM_SHA384");
    assert_int_equal(t->session_tickets, 0);
    assert_int_equal(t->ticket_key_rotation_ms, 3600000);
    assert_int_equal(t->session_cache, 0);
    assert_int_equal(t->handshake_timeout_ms, 2000);
    ap_config_unref(cfg);
}

static void test_tls_listener_defaults(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok_dir(
        "listen: [{address: 127.0.0.1:8443, tls: {certificates: [{cert: @/ec.pem, key: "
        "@/ec.key}]}}]\n" TLS_TAIL);
    const struct ap_config_tls_listener *t = cfg->listeners[0].tls;
    assert_int_equal(t->protocols, AP_TLS_PROTO_TLS12 | AP_TLS_PROTO_TLS13);
    assert_string_equal(t->ciphers,
                        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    assert_string_equal(t->ciphersuites,
                        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                        "TLS_CHACHA20_POLY1305_SHA256");
    assert_int_equal(t->session_tickets, 1);
    assert_int_equal(t->ticket_key_rotation_ms, 12 * 3600000ull);
    assert_int_equal(t->session_cache, 20000);
    assert_int_equal(t->handshake_timeout_ms, 10000);
    assert_int_equal(t->certs[0].nnames, 0);
    ap_config_unref(cfg);
}

static void test_tls_file_errors(void **state)
{
    (void)state;
    /* Each error names the file and points at the key that names it. */
    expect_errors_dir(
        "listen:\n"
        "  - address: 127.0.0.1:8443\n"
        "    tls:\n"
        "      certificates:\n"
        "        - cert: @/missing.pem\n"
        "          key: @/rsa.key\n"
        "        - cert: @/dir\n"
        "          key: @/rsa.key\n"
        "          names: [x.example]\n"
        "        - cert: @/bad.pem\n"
        "          key: @/rsa.key\n"
        "          names: [y.example]\n"
        "        - cert: @/text.pem\n"
        "          key: @/rsa.key\n"
        "          names: [z.example]\n"
        "        - cert: @/rsa.pem\n"
        "          key: @/ec.key\n"
        "        - cert: @/rsa.pem\n"
        "          key: @/rsa.pem\n"
        "        - cert: @/ec.pem\n"
        "          key: @/ec.key\n"
        "          chain: @/text.pem\n" TLS_TAIL,
        "t.yaml:5:17: listen[0].tls.certificates[0].cert: @/missing.pem: cannot open: No such "
        "file or directory\n"
        "t.yaml:7:17: listen[0].tls.certificates[1].cert: @/dir: not a regular file\n"
        "t.yaml:10:17: listen[0].tls.certificates[2].cert: @/bad.pem: malformed PEM "
        "certificate: bad base64 decode\n"
        "t.yaml:13:17: listen[0].tls.certificates[3].cert: @/text.pem: no PEM certificate "
        "found\n"
        "t.yaml:17:16: listen[0].tls.certificates[4].key: @/ec.key: key does not match "
        "certificate @/rsa.pem\n"
        "t.yaml:19:16: listen[0].tls.certificates[5].key: @/rsa.pem: no PEM private key "
        "found\n"
        "t.yaml:22:18: listen[0].tls.certificates[6].chain: @/text.pem: no PEM certificate "
        "found\n");
}

static void test_tls_large_files(void **state)
{
    (void)state;
    /* A 5 MiB file (sparse) is refused before it is read. */
    char path[128];
    tls_path(path, sizeof(path), "big.pem");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 5 * 1024 * 1024), 0);
    close(fd);
    expect_errors_dir("listen:\n"
                      "  - address: 127.0.0.1:8443\n"
                      "    tls:\n"
                      "      certificates:\n"
                      "        - cert: @/big.pem\n"
                      "          key: @/rsa.key\n" TLS_TAIL,
                      "t.yaml:5:17: listen[0].tls.certificates[0].cert: @/big.pem: file too "
                      "large (over 4 MiB)\n");
    unlink(path);
    /* A file that says it is empty but is not (procfs) is read up to the
     * same limit, never further: /proc/self/pagemap is far longer. */
    expect_errors_dir("listen:\n"
                      "  - address: 127.0.0.1:8443\n"
                      "    tls:\n"
                      "      certificates:\n"
                      "        - cert: /proc/self/pagemap\n"
                      "          key: @/rsa.key\n" TLS_TAIL,
                      "t.yaml:5:17: listen[0].tls.certificates[0].cert: /proc/self/pagemap: file "
                      "too large (over 4 MiB)\n");
}

static void test_tls_listener_errors(void **state)
{
    (void)state;
    expect_errors_dir(
        "listen:\n"
        "  - address: 127.0.0.1:8443\n"
        "    tls:\n"
        "      certificates:\n"
        "        - cert: @/rsa.pem\n"
        "          key: @/rsa.key\n"
        "          names: [a.example, b.example]\n"
        "        - cert: @/ec.pem\n"
        "          key: @/ec.key\n"
        "          names: [a.example, 'a.b!', a.EXAMPLE]\n"
        "        - key: @/ec.key\n"
        "          names: ['*.com.', '*']\n"
        "      protocols: [TLSv1.1, TLSv1.2, SSLv3, TLS2]\n"
        "      ciphers: 'NONSENSE:ALSO-BAD'\n"
        "      ciphersuites: TLS_AES_128_CBC\n"
        "      session_tickets: maybe\n"
        "      ticket_key_rotation: 10s\n"
        "      session_cache: -1\n"
        "      handshake_timeout: 2h\n"
        "      ocsp: on\n"
        "  - {address: 127.0.0.1:8444, tls: ~}\n"
        "  - {address: 127.0.0.1:8445, tls: {certificates: []}}\n"
        "  - {address: 127.0.0.1:8446, tls: [a]}\n"
        "  - {address: 127.0.0.1:8447, tls: {certificates: [], protocols: []}}\n" TLS_TAIL,
        "t.yaml:10:18: listen[0].tls.certificates[1].names: name 'a.example' is also in "
        "certificates[0], whose names differ (entries that share a name must list the same "
        "names)\n"
        "t.yaml:10:30: listen[0].tls.certificates[1].names[1]: invalid server name 'a.b!' "
        "(expected a host name or *.domain.tld)\n"
        "t.yaml:10:38: listen[0].tls.certificates[1].names[2]: duplicate server name "
        "'a.EXAMPLE'\n"
        "t.yaml:11:11: listen[0].tls.certificates[2]: missing required key 'cert'\n"
        "t.yaml:12:19: listen[0].tls.certificates[2].names[0]: invalid server name '*.com.' "
        "(expected a host name or *.domain.tld)\n"
        "t.yaml:12:29: listen[0].tls.certificates[2].names[1]: invalid server name '*' "
        "(expected a host name or *.domain.tld)\n"
        "t.yaml:13:19: listen[0].tls.protocols[0]: 'TLSv1.1' is not supported (only TLSv1.2 "
        "and TLSv1.3 are)\n"
        "t.yaml:13:37: listen[0].tls.protocols[2]: 'SSLv3' is not supported (only TLSv1.2 and "
        "TLSv1.3 are)\n"
        "t.yaml:13:44: listen[0].tls.protocols[3]: unknown protocol 'TLS2' (expected TLSv1.2 "
        "or TLSv1.3)\n"
        "t.yaml:14:16: listen[0].tls.ciphers: no usable TLS 1.2 cipher in 'NONSENSE:ALSO-BAD' "
        "(e.g. ECDHE-RSA-AES128-GCM-SHA256)\n"
        "t.yaml:15:21: listen[0].tls.ciphersuites: invalid TLS 1.3 cipher suites "
        "'TLS_AES_128_CBC' (e.g. TLS_AES_128_GCM_SHA256)\n"
        "t.yaml:16:24: listen[0].tls.session_tickets: expected a boolean (true/false, yes/no, "
        "on/off), got 'maybe'\n"
        "t.yaml:17:28: listen[0].tls.ticket_key_rotation: '10s' is out of range (1m..24h)\n"
        "t.yaml:18:22: listen[0].tls.session_cache: expected an integer, got '-1'\n"
        "t.yaml:19:26: listen[0].tls.handshake_timeout: '2h' is out of range (1ms..1h)\n"
        "t.yaml:20:7: listen[0].tls: unknown key 'ocsp'\n"
        "t.yaml:21:36: listen[1].tls: missing required key 'certificates'\n"
        "t.yaml:22:51: listen[2].tls.certificates: at least one certificate is required\n"
        "t.yaml:23:36: listen[3].tls: expected a mapping, got a list\n"
        "t.yaml:24:51: listen[4].tls.certificates: at least one certificate is required\n"
        "t.yaml:24:66: listen[4].tls.protocols: at least one protocol is required\n");
}

static void test_https_upstreams(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok_dir(
        "listen: [{address: 127.0.0.1:8080}]\n"
        "upstreams:\n"
        "  plain: {servers: [http://127.0.0.1:9000]}\n"
        "  secure:\n"
        "    servers: [https://127.0.0.1, HTTPS://Backend.LOCAL:8443/, 'https://[::1]:443']\n"
        "    tls:\n"
        "      ca_file: @/rsa.pem\n"
        "      verify: no\n"
        "      server_name: API.Example\n"
        "      client_cert: @/ec.pem\n"
        "      client_key: @/ec.key\n"
        "  defaults: {servers: https://backend.local}\n"
        "routes: [{upstream: secure}]\n");
    const struct ap_config_upstream *plain = &cfg->upstreams[0], *u = &cfg->upstreams[1],
                                     *d = &cfg->upstreams[2];
    assert_int_equal(plain->servers[0].tls, 0);
    assert_int_equal(plain->tls.set, 0);
    assert_int_equal(plain->tls.verify, 1);
    assert_int_equal(u->nservers, 3);
    assert_int_equal(u->servers[0].tls, 1);
    assert_int_equal(u->servers[0].port, 443);
    assert_string_equal(u->servers[0].authority, "127.0.0.1");
    check_sockaddr(&u->servers[0].addr, u->servers[0].addrlen, AF_INET, "127.0.0.1", 443);
    assert_int_equal(u->servers[1].port, 8443);
    assert_string_equal(u->servers[1].host, "backend.local");
    assert_string_equal(u->servers[1].authority, "backend.local:8443");
    assert_string_equal(u->servers[2].authority, "[::1]");
    assert_int_equal(u->tls.set, 1);
    assert_int_equal(u->tls.pos.line, 7);
    assert_int_equal(u->tls.verify, 0);
    char path[128];
    assert_string_equal(u->tls.ca_file, tls_path(path, sizeof(path), "rsa.pem"));
    assert_string_equal(u->tls.server_name, "api.example");
    assert_string_equal(u->tls.client_cert, tls_path(path, sizeof(path), "ec.pem"));
    assert_string_equal(u->tls.client_key, tls_path(path, sizeof(path), "ec.key"));
    assert_int_equal(d->servers[0].port, 443);
    assert_int_equal(d->tls.set, 0);
    assert_int_equal(d->tls.verify, 1);
    assert_null(d->tls.ca_file);
    assert_null(d->tls.server_name);
    assert_null(d->tls.client_cert);
    ap_config_unref(cfg);
}

static void test_https_upstream_errors(void **state)
{
    (void)state;
    expect_errors_dir(
        "listen: [{address: 127.0.0.1:8080}]\n"
        "upstreams:\n"
        "  a: {servers: http://127.0.0.1, tls: {verify: yes}}\n"
        "  b:\n"
        "    servers: https://127.0.0.1\n"
        "    tls:\n"
        "      client_cert: @/ec.pem\n"
        "  c:\n"
        "    servers: https://127.0.0.1\n"
        "    tls:\n"
        "      client_key: @/ec.key\n"
        "      ca_file: @/text.pem\n"
        "  d: {servers: https://127.0.0.1, tls: {server_name: 'bad name', verify: 2}}\n"
        "  e:\n"
        "    servers: https://127.0.0.1\n"
        "    tls:\n"
        "      client_cert: @/rsa.pem\n"
        "      client_key: @/other.key\n"
        "  f: {file: x.ndjson, tls: {}}\n"
        "  g:\n"
        "    servers: https://127.0.0.1\n"
        "    tls:\n"
        "      ca_file: @/missing.pem\n"
        "      crl: x\n"
        "routes: [{upstream: a}]\n",
        "t.yaml:3:34: upstreams.a.tls: only applies to upstreams with https:// servers\n"
        "t.yaml:7:7: upstreams.b.tls.client_cert: needs 'client_key' too\n"
        "t.yaml:11:7: upstreams.c.tls.client_key: needs 'client_cert' too\n"
        "t.yaml:12:16: upstreams.c.tls.ca_file: @/text.pem: no PEM certificate found\n"
        "t.yaml:13:54: upstreams.d.tls.server_name: invalid server name 'bad name' (expected a "
        "host name)\n"
        "t.yaml:13:74: upstreams.d.tls.verify: expected a boolean (true/false, yes/no, on/off), "
        "got '2'\n"
        "t.yaml:18:19: upstreams.e.tls.client_key: @/other.key: key does not match "
        "certificate @/rsa.pem\n"
        "t.yaml:19:23: upstreams.f.tls: only applies to upstreams with 'servers'\n"
        "t.yaml:23:16: upstreams.g.tls.ca_file: @/missing.pem: cannot open: No such file or "
        "directory\n"
        "t.yaml:24:7: upstreams.g.tls: unknown key 'crl'\n");
}

static void test_tls_round_trip(void **state)
{
    (void)state;
    char *yaml = with_dir(
        "listen:\n"
        "  - address: 127.0.0.1:8443\n"
        "    tls:\n"
        "      certificates:\n"
        "        - {cert: @/rsa.pem, key: @/rsa.key}\n"
        "        - {cert: @/ec.pem, key: @/ec.key, chain: @/rsa.pem, names: ['*.a.example']}\n"
        "      protocols: [TLSv1.2]\n"
        "      session_tickets: false\n"
        "      ticket_key_rotation: 90m\n"
        "  - address: 127.0.0.1:8080\n"
        "upstreams:\n"
        "  s: {servers: ['https://127.0.0.1:8443', http://127.0.0.1:80], tls: {verify: off, "
        "server_name: x.example, ca_file: @/ec.pem}}\n"
        "  p: {servers: http://127.0.0.1:81}\n"
        "routes: [{upstream: s}]\n");
    struct ap_config *a = parse_ok(yaml);
    char *text_a = print_to_string(a);
    struct ap_config *b = parse_ok(text_a);
    char *text_b = print_to_string(b);
    assert_string_equal(text_a, text_b);
    char path[128], line[300];
    snprintf(line, sizeof(line),
             "    tls:\n"
             "      certificates:\n"
             "        - cert: \"%s\"\n",
             tls_path(path, sizeof(path), "rsa.pem"));
    assert_non_null(strstr(text_a, line));
    assert_non_null(strstr(text_a, "          names: [\"*.a.example\"]\n"
                                   "      protocols: [\"TLSv1.2\"]\n"));
    assert_non_null(strstr(text_a, "      session_tickets: false\n"
                                   "      ticket_key_rotation: 90m\n"
                                   "      session_cache: 20000\n"
                                   "      handshake_timeout: 10s\n"));
    assert_non_null(strstr(text_a, "      verify: false\n      server_name: \"x.example\"\n"));
    /* Plain listeners and plain upstreams print no tls section. */
    assert_null(strstr(text_a, "tls:\n  - address"));
    assert_null(strstr(strstr(text_a, "\"p\":"), "tls"));
    const struct ap_config_tls_listener *ta = a->listeners[0].tls, *tb = b->listeners[0].tls;
    assert_int_equal(ta->ncerts, tb->ncerts);
    assert_int_equal(ta->protocols, tb->protocols);
    assert_int_equal(ta->session_tickets, tb->session_tickets);
    assert_int_equal(ta->ticket_key_rotation_ms, tb->ticket_key_rotation_ms);
    assert_string_equal(ta->certs[1].chain, tb->certs[1].chain);
    assert_string_equal(ta->certs[1].names[0], tb->certs[1].names[0]);
    assert_null(b->listeners[1].tls);
    assert_int_equal(b->upstreams[0].tls.verify, 0);
    assert_string_equal(b->upstreams[0].tls.server_name, "x.example");
    assert_int_equal(b->upstreams[0].servers[0].tls, 1);
    assert_int_equal(b->upstreams[0].servers[1].tls, 0);
    free(text_a);
    free(text_b);
    free(yaml);
    ap_config_unref(a);
    ap_config_unref(b);
}

/* ---- geo: ---- */

/* MINIMAL, then `geo:` on line 4 and `database: <db>` on line 5: whatever
 * `body` holds starts on line 6, at the section's indentation. */
static char *geo_yaml(const char *db, const char *body)
{
    size_t n = strlen(MINIMAL) + strlen(db) + strlen(body) + 64;
    char *yaml = malloc(n);
    assert_non_null(yaml);
    snprintf(yaml, n, MINIMAL "geo:\n  database: %s\n%s", db, body);
    return yaml;
}

static void expect_geo_error(const char *db, const char *body, const char *expected)
{
    char *yaml = geo_yaml(db, body);
    char *errors = NULL;
    struct ap_config *cfg = parse(yaml, &errors);
    free(yaml);
    if (cfg != NULL) {
        ap_config_unref(cfg);
        fail_msg("accepted:\n%s", body);
    }
    assert_non_null(errors);
    assert_string_equal(errors, expected);
    free(errors);
}

static const char geo_example_body[] =
    "  database_v6: %s\n"                                            /* 6 */
    "  schema: ip-location-db\n"                                     /* 7 */
    "  fields: {region: state2, city: \"names.0\"}\n"                /* 8 */
    "  asn_database: %s\n"                                           /* 9 */
    "  hosting_asns: [16509, 15169, 4294967295]\n"                   /* 10 */
    "  keep_asn: yes\n"                                              /* 11 */
    "  precision: city\n"                                            /* 12 */
    "  coordinates: grid:2.5\n"                                      /* 13 */
    "  timezone: true\n"                                             /* 14 */
    "  min_visitors: {region: 0, city: 1000000}\n"                   /* 15 */
    "  floor_max_cells: 1000\n"                                      /* 16 */
    "  lookup: truncated\n"                                          /* 17 */
    "  headers: {continent: ~, country: Geo-Country, timezone: ~}\n" /* 18 */
    "  cache_size: 0\n"                                              /* 19 */
    "  check_interval: 5m\n";                                        /* 20 */

/* The example with every key, its files at db, db6 and asn. */
static char *geo_example(const char *db, const char *db6, const char *asn)
{
    char body[1024];
    snprintf(body, sizeof(body), geo_example_body, db6, asn);
    return geo_yaml(db, body);
}

static void test_geo_example(void **state)
{
    (void)state;
    char db[64], db6[64], asn[64];
    make_file(db, 16);
    make_file(db6, 16);
    make_file(asn, 16);
    char *yaml = geo_example(db, db6, asn);
    struct ap_config *cfg = parse_ok(yaml);
    const struct ap_geo_options *o = &cfg->geo.opts;
    assert_int_equal(cfg->geo.enabled, 1);
    assert_int_equal(cfg->geo.pos.line, 5);
    assert_int_equal(cfg->geo.pos.col, 3);
    assert_string_equal(o->database, db);
    assert_string_equal(o->database_v6, db6);
    assert_string_equal(o->asn_database, asn);
    assert_int_equal(o->schema, AP_GEO_SCHEMA_IP_LOCATION_DB);
    assert_null(o->fields[AP_GEO_FIELD_CONTINENT]);
    assert_null(o->fields[AP_GEO_FIELD_COUNTRY]);
    assert_string_equal(o->fields[AP_GEO_FIELD_REGION], "state2");
    assert_string_equal(o->fields[AP_GEO_FIELD_CITY], "names.0");
    assert_null(o->fields[AP_GEO_FIELD_TIMEZONE]);
    assert_non_null(o->hosting_asns);
    assert_int_equal(o->nhosting_asns, 3);
    assert_int_equal(o->hosting_asns[0], 16509);
    assert_int_equal(o->hosting_asns[1], 15169);
    assert_int_equal(o->hosting_asns[2], UINT32_MAX);
    assert_true(o->keep_asn);
    assert_int_equal(o->precision, AP_GEO_LEVEL_CITY);
    assert_int_equal(o->coords, AP_GEO_COORDS_GRID);
    assert_true(o->coord_grid_km == 2.5);
    assert_true(o->timezone);
    assert_int_equal(o->min_visitors_region, 0);
    assert_int_equal(o->min_visitors_city, 1000000);
    assert_int_equal(o->floor_max_cells, 1000);
    assert_int_equal(o->lookup, AP_GEO_ADDR_TRUNCATED);
    /* Not keys: the route policies' prefixes are wired by the server. */
    assert_int_equal(o->truncate_v4, AP_IP_TRUNCATE_V4_DEFAULT);
    assert_int_equal(o->truncate_v6, AP_IP_TRUNCATE_V6_DEFAULT);
    assert_null(o->headers[AP_GEO_OUT_CONTINENT]);
    assert_string_equal(o->headers[AP_GEO_OUT_COUNTRY], "Geo-Country");
    assert_string_equal(o->headers[AP_GEO_OUT_REGION], "X-Geo-Region");
    assert_string_equal(o->headers[AP_GEO_OUT_CITY], "X-Geo-City");
    assert_null(o->headers[AP_GEO_OUT_TIMEZONE]);
    assert_int_equal(o->cache_size, 0);
    assert_int_equal(cfg->geo.check_interval_ms, 5 * 60 * 1000);
    char msg[AP_GEO_ERR_LEN];
    assert_int_equal(ap_geo_options_validate(o, msg, sizeof(msg)), 0);
    ap_config_unref(cfg);
    free(yaml);
    unlink(db);
    unlink(db6);
    unlink(asn);
}

static void test_geo_defaults(void **state)
{
    (void)state;
    /* Without the section, or with `geo: ~`: off, the defaults in place. */
    const char *off[] = { MINIMAL, MINIMAL "geo: ~\n", MINIMAL "geo:\n" };
    for (size_t i = 0; i < AP_ARRAY_SIZE(off); i++) {
        struct ap_config *cfg = parse_ok(off[i]);
        assert_int_equal(cfg->geo.enabled, 0);
        assert_null(cfg->geo.opts.database);
        assert_int_equal(cfg->geo.check_interval_ms, 60000);
        assert_string_equal(cfg->geo.opts.headers[AP_GEO_OUT_COUNTRY], "X-Geo-Country");
        char *text = print_to_string(cfg);
        assert_null(strstr(text, "geo:"));
        free(text);
        ap_config_unref(cfg);
    }

    char db[64];
    make_file(db, 1);
    char *yaml = geo_yaml(db, "");
    struct ap_config *cfg = parse_ok(yaml);
    const struct ap_geo_options *o = &cfg->geo.opts;
    assert_int_equal(cfg->geo.enabled, 1);
    assert_int_equal(cfg->geo.pos.line, 5);
    assert_int_equal(cfg->geo.pos.col, 3);
    assert_string_equal(o->database, db);
    assert_null(o->database_v6);
    assert_null(o->asn_database);
    assert_int_equal(o->schema, AP_GEO_SCHEMA_GEOIP2);
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++)
        assert_null(o->fields[i]);
    assert_null(o->hosting_asns);
    assert_int_equal(o->nhosting_asns, 0);
    assert_false(o->keep_asn);
    assert_int_equal(o->precision, AP_GEO_LEVEL_REGION);
    assert_int_equal(o->coords, AP_GEO_COORDS_DROP);
    assert_false(o->timezone);
    assert_int_equal(o->min_visitors_region, 10);
    assert_int_equal(o->min_visitors_city, 50);
    assert_int_equal(o->floor_max_cells, 65536);
    assert_int_equal(o->lookup, AP_GEO_ADDR_FULL);
    assert_int_equal(o->truncate_v4, 24);
    assert_int_equal(o->truncate_v6, 48);
    assert_int_equal(o->cache_size, 10000);
    assert_string_equal(o->headers[AP_GEO_OUT_CONTINENT], "X-Geo-Continent");
    assert_string_equal(o->headers[AP_GEO_OUT_COUNTRY], "X-Geo-Country");
    assert_string_equal(o->headers[AP_GEO_OUT_REGION], "X-Geo-Region");
    assert_string_equal(o->headers[AP_GEO_OUT_CITY], "X-Geo-City");
    assert_string_equal(o->headers[AP_GEO_OUT_TIMEZONE], "X-Geo-Timezone");
    assert_int_equal(cfg->geo.check_interval_ms, 60000);
    ap_config_unref(cfg);
    free(yaml);
    unlink(db);
}

static void test_geo_values(void **state)
{
    (void)state;
    char db[64];
    make_file(db, 16);
    struct {
        const char *body;
        enum ap_geo_out out;
        const char *header; /* NULL: not emitted */
    } headers[] = {
        { "  headers: {city: ~}\n", AP_GEO_OUT_CITY, NULL },
        { "  headers: {city: ~}\n", AP_GEO_OUT_REGION, "X-Geo-Region" },
        { "  headers: {city: null}\n", AP_GEO_OUT_CITY, NULL },
        { "  headers: {city: x-town}\n", AP_GEO_OUT_CITY, "x-town" },
        { "  headers: {}\n", AP_GEO_OUT_TIMEZONE, "X-Geo-Timezone" },
        { "  headers: ~\n", AP_GEO_OUT_CONTINENT, "X-Geo-Continent" },
        /* A name freed by one value can be taken by another. */
        { "  headers: {country: ~, region: X-Geo-Country}\n", AP_GEO_OUT_REGION,
          "X-Geo-Country" },
        /* The longest name geo/ takes: 64 characters. */
        { "  headers: {country: X-Geo-Country-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
          "AAAAAAA}\n", AP_GEO_OUT_COUNTRY,
          "X-Geo-Country-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(headers); i++) {
        char *yaml = geo_yaml(db, headers[i].body);
        struct ap_config *cfg = parse_ok(yaml);
        if (headers[i].header == NULL)
            assert_null(cfg->geo.opts.headers[headers[i].out]);
        else
            assert_string_equal(cfg->geo.opts.headers[headers[i].out], headers[i].header);
        char msg[AP_GEO_ERR_LEN];
        assert_int_equal(ap_geo_options_validate(&cfg->geo.opts, msg, sizeof(msg)), 0);
        ap_config_unref(cfg);
        free(yaml);
    }

    struct {
        const char *body;
        enum ap_geo_coords mode;
        unsigned decimals;
        double km;
    } coords[] = {
        { "  coordinates: drop\n", AP_GEO_COORDS_DROP, 1, 10.0 },
        { "  coordinates: round:0\n", AP_GEO_COORDS_ROUND, 0, 10.0 },
        { "  coordinates: \"round:6\"\n", AP_GEO_COORDS_ROUND, 6, 10.0 },
        { "  coordinates: grid:0.1\n", AP_GEO_COORDS_GRID, 1, 0.1 },
        { "  coordinates: grid:20000\n", AP_GEO_COORDS_GRID, 1, 20000.0 },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(coords); i++) {
        char *yaml = geo_yaml(db, coords[i].body);
        struct ap_config *cfg = parse_ok(yaml);
        assert_int_equal(cfg->geo.opts.coords, coords[i].mode);
        assert_int_equal(cfg->geo.opts.coord_decimals, coords[i].decimals);
        assert_true(cfg->geo.opts.coord_grid_km == coords[i].km);
        ap_config_unref(cfg);
        free(yaml);
    }

    /* hosting_asns: null is the built-in list, [] none, one number a list. */
    char *yaml = geo_yaml(db, "  hosting_asns: []\n");
    struct ap_config *cfg = parse_ok(yaml);
    assert_non_null(cfg->geo.opts.hosting_asns);
    assert_int_equal(cfg->geo.opts.nhosting_asns, 0);
    ap_config_unref(cfg);
    free(yaml);
    yaml = geo_yaml(db, "  hosting_asns: ~\n");
    cfg = parse_ok(yaml);
    assert_null(cfg->geo.opts.hosting_asns);
    ap_config_unref(cfg);
    free(yaml);
    yaml = geo_yaml(db, "  hosting_asns: 64496\n");
    cfg = parse_ok(yaml);
    assert_int_equal(cfg->geo.opts.nhosting_asns, 1);
    assert_int_equal(cfg->geo.opts.hosting_asns[0], 64496);
    ap_config_unref(cfg);
    free(yaml);

    /* Optional files and fields set to null are unset; the limits' ends. */
    yaml = geo_yaml(db, "  database_v6: ~\n  asn_database:\n  fields: {country: ~}\n"
                        "  check_interval: 1s\n  cache_size: 16777216\n"
                        "  floor_max_cells: 16777216\n  precision: none\n");
    cfg = parse_ok(yaml);
    assert_null(cfg->geo.opts.database_v6);
    assert_null(cfg->geo.opts.asn_database);
    assert_null(cfg->geo.opts.fields[AP_GEO_FIELD_COUNTRY]);
    assert_int_equal(cfg->geo.check_interval_ms, 1000);
    assert_int_equal(cfg->geo.opts.cache_size, 16777216);
    assert_int_equal(cfg->geo.opts.floor_max_cells, 16777216);
    assert_int_equal(cfg->geo.opts.precision, AP_GEO_LEVEL_NONE);
    char msg[AP_GEO_ERR_LEN];
    assert_int_equal(ap_geo_options_validate(&cfg->geo.opts, msg, sizeof(msg)), 0);
    ap_config_unref(cfg);
    free(yaml);
    yaml = geo_yaml(db, "  check_interval: 24h\n  precision: continent\n");
    cfg = parse_ok(yaml);
    assert_int_equal(cfg->geo.check_interval_ms, 24ull * 3600 * 1000);
    assert_int_equal(cfg->geo.opts.precision, AP_GEO_LEVEL_CONTINENT);
    ap_config_unref(cfg);
    free(yaml);
    unlink(db);
}

static void test_geo_file_errors(void **state)
{
    (void)state;
    char db[64], expected[512];
    make_file(db, 16);
    expect_errors(MINIMAL "geo:\n  precision: city\n",
                  "t.yaml:5:3: geo: missing required key 'database'\n");
    expect_errors(MINIMAL "geo: {database: ~}\n",
                  "t.yaml:4:17: geo.database: missing value (expected a file path)\n");
    expect_errors(MINIMAL "geo: {database: \"\"}\n",
                  "t.yaml:4:17: geo.database: empty file path\n");
    expect_errors(MINIMAL "geo: {database: [a]}\n",
                  "t.yaml:4:17: geo.database: expected a file path, got a list\n");
    expect_geo_error("/nonexistent/city.mmdb", "",
                     "t.yaml:5:13: geo.database: cannot use database file "
                     "'/nonexistent/city.mmdb': No such file or directory\n");
    expect_geo_error("/tmp", "",
                     "t.yaml:5:13: geo.database: database file '/tmp' is not a regular file\n");
    expect_geo_error(db, "  database_v6: /nonexistent/v6.mmdb\n",
                     "t.yaml:6:16: geo.database_v6: cannot use database file "
                     "'/nonexistent/v6.mmdb': No such file or directory\n");
    expect_geo_error(db, "  asn_database: /dev/null\n",
                     "t.yaml:6:17: geo.asn_database: database file '/dev/null' is not a "
                     "regular file\n");
    /* Root reads anything, so the permission case needs another user. */
    if (geteuid() != 0) {
        assert_int_equal(chmod(db, 0), 0);
        char *yaml = geo_yaml(db, "");
        snprintf(expected, sizeof(expected),
                 "t.yaml:5:13: geo.database: cannot read database file '%s': Permission "
                 "denied\n", db);
        expect_errors(yaml, expected);
        free(yaml);
    }
    unlink(db);
}

static void test_geo_errors(void **state)
{
    (void)state;
    char db[64];
    make_file(db, 16);
    static const struct {
        const char *body, *expected;
    } cases[] = {
        { "  schema: maxmind\n",
          "t.yaml:6:11: geo.schema: unknown schema 'maxmind' (expected one of: geoip2, "
          "ip-location-db)\n" },
        { "  schema: geoip3\n",
          "t.yaml:6:11: geo.schema: unknown schema 'geoip3', did you mean 'geoip2'? (expected "
          "one of: geoip2, ip-location-db)\n" },
        { "  fields: {contry: country_code}\n",
          "t.yaml:6:12: geo.fields: unknown key 'contry', did you mean 'country'?\n" },
        { "  fields: {postcode: postal.code}\n",
          "t.yaml:6:22: geo.fields.postcode: postal codes are never read: 'postcode' is not "
          "a field\n" },
        { "  fields: {region: subdivisions..iso_code}\n",
          "t.yaml:6:20: geo.fields.region: invalid field path 'subdivisions..iso_code' (1 to 8 "
          "names or array indexes of letters, digits, '_' and '-', joined by dots)\n" },
        { "  fields: {city: a.b.c.d.e.f.g.h.i}\n",
          "t.yaml:6:18: geo.fields.city: invalid field path 'a.b.c.d.e.f.g.h.i' (1 to 8 names "
          "or array indexes of letters, digits, '_' and '-', joined by dots)\n" },
        { "  fields: [city]\n", "t.yaml:6:11: geo.fields: expected a mapping, got a list\n" },
        { "  hosting_asns: [16509, 0, AS15169, 4294967296]\n",
          "t.yaml:6:25: geo.hosting_asns[1]: invalid AS number '0' (expected 1..4294967295)\n"
          "t.yaml:6:28: geo.hosting_asns[2]: invalid AS number 'AS15169' (expected "
          "1..4294967295)\n"
          "t.yaml:6:37: geo.hosting_asns[3]: invalid AS number '4294967296' (expected "
          "1..4294967295)\n" },
        { "  hosting_asns: {aws: 16509}\n",
          "t.yaml:6:17: geo.hosting_asns: expected an AS number or a list of them, got a "
          "mapping\n" },
        { "  keep_asn: maybe\n",
          "t.yaml:6:13: geo.keep_asn: expected a boolean (true/false, yes/no, on/off), got "
          "'maybe'\n" },
        { "  timezone: 1\n",
          "t.yaml:6:13: geo.timezone: expected a boolean (true/false, yes/no, on/off), got "
          "'1'\n" },
        { "  precision: town\n",
          "t.yaml:6:14: geo.precision: unknown precision level 'town' (expected one of: none, "
          "continent, country, region, city)\n" },
        { "  precision: City\n",
          "t.yaml:6:14: geo.precision: unknown precision level 'City', did you mean 'city'? "
          "(expected one of: none, continent, country, region, city)\n" },
        { "  coordinates: round:7\n",
          "t.yaml:6:16: geo.coordinates: invalid coordinates 'round:7' (expected drop, round:N "
          "with N in 0..6, or grid:KM with KM in 0.1..20000)\n" },
        { "  coordinates: grid:0.05\n",
          "t.yaml:6:16: geo.coordinates: invalid coordinates 'grid:0.05' (expected drop, "
          "round:N with N in 0..6, or grid:KM with KM in 0.1..20000)\n" },
        { "  coordinates: grid:1e3\n",
          "t.yaml:6:16: geo.coordinates: invalid coordinates 'grid:1e3' (expected drop, "
          "round:N with N in 0..6, or grid:KM with KM in 0.1..20000)\n" },
        { "  min_visitors: {region: 1000001}\n",
          "t.yaml:6:26: geo.min_visitors.region: '1000001' is out of range (0..1000000)\n" },
        { "  min_visitors: {town: 5}\n",
          "t.yaml:6:18: geo.min_visitors: unknown key 'town'\n" },
        { "  min_visitors: {city: -1}\n",
          "t.yaml:6:24: geo.min_visitors.city: expected an integer, got '-1'\n" },
        { "  floor_max_cells: 0\n",
          "t.yaml:6:20: geo.floor_max_cells: '0' is out of range (1..16777216)\n" },
        { "  floor_max_cells: 16777217\n",
          "t.yaml:6:20: geo.floor_max_cells: '16777217' is out of range (1..16777216)\n" },
        { "  lookup: partial\n",
          "t.yaml:6:11: geo.lookup: unknown lookup mode 'partial' (expected one of: full, "
          "truncated)\n" },
        { "  headers: {country: \"X Geo\"}\n",
          "t.yaml:6:22: geo.headers.country: invalid header name 'X Geo' (expected a token of "
          "at most 64 characters, such as X-Geo-Country)\n" },
        { "  headers: {country: X-Geo-Country-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
          "AAAAAAAA}\n",
          "t.yaml:6:22: geo.headers.country: invalid header name "
          "'X-Geo-Country-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...' (expected a token "
          "of at most 64 characters, such as X-Geo-Country)\n" },
        { "  headers: {city: Host}\n",
          "t.yaml:6:19: geo.headers.city: header 'Host' is managed by the proxy and cannot "
          "carry a location\n" },
        { "  headers: {city: Connection}\n",
          "t.yaml:6:19: geo.headers.city: header 'Connection' is managed by the proxy and "
          "cannot carry a location\n" },
        { "  headers: {city: x-geo-country}\n",
          "t.yaml:6:19: geo.headers.city: header 'x-geo-country' is already the country "
          "header\n" },
        { "  headers: {country: X-Geo-City}\n",
          "t.yaml:6:22: geo.headers.country: header 'X-Geo-City' is already the city header\n" },
        { "  headers: {region: X-Geo, city: X-Geo}\n",
          "t.yaml:6:34: geo.headers.city: header 'X-Geo' is already the region header\n" },
        { "  headers: {zip: X-Zip}\n", "t.yaml:6:13: geo.headers: unknown key 'zip'\n" },
        /* The refused name keeps its default, X-Geo-Country: no clash reported. */
        { "  headers: {city: X-Geo-Country, country: \"a b\"}\n",
          "t.yaml:6:43: geo.headers.country: invalid header name 'a b' (expected a token of "
          "at most 64 characters, such as X-Geo-Country)\n" },
        { "  headers: [X-Geo]\n", "t.yaml:6:12: geo.headers: expected a mapping, got a list\n" },
        { "  cache_size: 16777217\n",
          "t.yaml:6:15: geo.cache_size: '16777217' is out of range (0..16777216)\n" },
        { "  check_interval: 500ms\n",
          "t.yaml:6:19: geo.check_interval: '500ms' is out of range (1s..24h)\n" },
        { "  check_interval: 25h\n",
          "t.yaml:6:19: geo.check_interval: '25h' is out of range (1s..24h)\n" },
        { "  check_interval: 0\n",
          "t.yaml:6:19: geo.check_interval: duration must be greater than 0\n" },
        { "  check_interval: weekly\n",
          "t.yaml:6:19: geo.check_interval: invalid duration 'weekly' (expected e.g. 250ms, "
          "10s, 5m, 1h)\n" },
        { "  truncate_v4: 16\n",
          "t.yaml:6:3: geo: unknown key 'truncate_v4'\n" },
        { "  databse_v6: x\n",
          "t.yaml:6:3: geo: unknown key 'databse_v6', did you mean 'database_v6'?\n" },
        { "  precision: city\n  precision: country\n",
          "t.yaml:7:3: geo: duplicate key 'precision' (first at 6:3)\n" },
        /* Several at once, in file order. */
        { "  schema: x\n  lookup: y\n  cache_size: z\n",
          "t.yaml:6:11: geo.schema: unknown schema 'x' (expected one of: geoip2, "
          "ip-location-db)\n"
          "t.yaml:7:11: geo.lookup: unknown lookup mode 'y' (expected one of: full, "
          "truncated)\n"
          "t.yaml:8:15: geo.cache_size: expected an integer, got 'z'\n" },
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(cases); i++)
        expect_geo_error(db, cases[i].body, cases[i].expected);
    expect_errors(MINIMAL "geo: [database]\n", "t.yaml:4:6: geo: expected a mapping, got a list\n");
    expect_errors(MINIMAL "geo: on\n", "t.yaml:4:6: geo: expected a mapping, got a scalar\n");

    /* A list longer than the cap is refused before it is read. */
    size_t n = 100001, cap = 64 + n * 3;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t off = (size_t)snprintf(body, cap, "  hosting_asns: [1");
    for (size_t i = 1; i < n; i++)
        off += (size_t)snprintf(body + off, cap - off, ",1");
    snprintf(body + off, cap - off, "]\n");
    expect_geo_error(db, body,
                     "t.yaml:6:17: geo.hosting_asns: too many AS numbers (100001, at most "
                     "100000)\n");
    free(body);
    unlink(db);
}

/* --print-config writes every key of the section back, and what it writes
 * reads back as the same options. */
static void test_geo_round_trip(void **state)
{
    (void)state;
    char db[64], db6[64], asn[64];
    make_file(db, 16);
    make_file(db6, 16);
    make_file(asn, 16);
    char *inputs[] = {
        geo_example(db, db6, asn),
        geo_yaml(db, ""),
        geo_yaml(db, "  hosting_asns: []\n  coordinates: round:3\n"
                     "  headers: {continent: ~, country: ~, region: ~, city: ~, timezone: ~}\n"
                     "  fields: {continent: \"cont.code\", country: a-b_c.0, latitude: l.1,"
                     " longitude: l.2, timezone: tz}\n"),
        geo_yaml(db, "  coordinates: grid:0.123456789\n  check_interval: 90s\n"),
        geo_yaml(db, "  coordinates: grid:12345.6789\n  check_interval: 1500ms\n"),
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(inputs); i++) {
        struct ap_config *a = parse_ok(inputs[i]);
        char *text_a = print_to_string(a);
        struct ap_config *b = parse_ok(text_a);
        char *text_b = print_to_string(b);
        assert_string_equal(text_a, text_b);
        const struct ap_geo_options *x = &a->geo.opts, *y = &b->geo.opts;
        assert_int_equal(b->geo.enabled, 1);
        assert_string_equal(x->database, y->database);
        assert_true((x->database_v6 == NULL) == (y->database_v6 == NULL));
        assert_true((x->asn_database == NULL) == (y->asn_database == NULL));
        assert_int_equal(x->schema, y->schema);
        for (size_t j = 0; j < AP_GEO_FIELD_COUNT; j++) {
            assert_true((x->fields[j] == NULL) == (y->fields[j] == NULL));
            if (x->fields[j] != NULL)
                assert_string_equal(x->fields[j], y->fields[j]);
        }
        assert_true((x->hosting_asns == NULL) == (y->hosting_asns == NULL));
        assert_int_equal(x->nhosting_asns, y->nhosting_asns);
        if (x->nhosting_asns > 0)
            assert_memory_equal(x->hosting_asns, y->hosting_asns,
                                x->nhosting_asns * sizeof(*x->hosting_asns));
        assert_int_equal(x->keep_asn, y->keep_asn);
        assert_int_equal(x->precision, y->precision);
        assert_int_equal(x->coords, y->coords);
        assert_int_equal(x->coord_decimals, y->coord_decimals);
        assert_true(x->coord_grid_km == y->coord_grid_km);
        assert_int_equal(x->timezone, y->timezone);
        assert_int_equal(x->min_visitors_region, y->min_visitors_region);
        assert_int_equal(x->min_visitors_city, y->min_visitors_city);
        assert_int_equal(x->floor_max_cells, y->floor_max_cells);
        assert_int_equal(x->lookup, y->lookup);
        assert_int_equal(x->cache_size, y->cache_size);
        for (size_t j = 0; j < AP_GEO_OUT_COUNT; j++) {
            assert_true((x->headers[j] == NULL) == (y->headers[j] == NULL));
            if (x->headers[j] != NULL)
                assert_string_equal(x->headers[j], y->headers[j]);
        }
        assert_int_equal(a->geo.check_interval_ms, b->geo.check_interval_ms);
        free(text_a);
        free(text_b);
        ap_config_unref(a);
        ap_config_unref(b);
        free(inputs[i]);
    }
    unlink(db);
    unlink(db6);
    unlink(asn);
}

static void test_geo_print(void **state)
{
    (void)state;
    char db[64], db6[64], asn[64], expected[2048];
    make_file(db, 16);
    make_file(db6, 16);
    make_file(asn, 16);
    char *yaml = geo_example(db, db6, asn);
    struct ap_config *cfg = parse_ok(yaml);
    char *text = print_to_string(cfg);
    snprintf(expected, sizeof(expected),
             "  bits: 64\n"
             "geo:\n"
             "  database: \"%s\"\n"
             "  database_v6: \"%s\"\n"
             "  schema: ip-location-db\n"
             "  fields:\n"
             "    region: \"state2\"\n"
             "    city: \"names.0\"\n"
             "  asn_database: \"%s\"\n"
             "  hosting_asns: [16509, 15169, 4294967295]\n"
             "  keep_asn: true\n"
             "  precision: city\n"
             "  coordinates: \"grid:2.5\"\n"
             "  timezone: true\n"
             "  min_visitors:\n"
             "    region: 0\n"
             "    city: 1000000\n"
             "  floor_max_cells: 1000\n"
             "  lookup: truncated\n"
             "  headers:\n"
             "    continent: ~ # not emitted\n"
             "    country: \"Geo-Country\"\n"
             "    region: \"X-Geo-Region\"\n"
             "    city: \"X-Geo-City\"\n"
             "    timezone: ~ # not emitted\n"
             "  cache_size: 0\n"
             "  check_interval: 5m\n"
             "run_as_root: false\n",
             db, db6, asn);
    if (strstr(text, expected) == NULL)
        fail_msg("geo block not found in:\n%s", text);
    ap_config_unref(cfg);
    free(text);
    free(yaml);

    yaml = geo_yaml(db, "");
    cfg = parse_ok(yaml);
    text = print_to_string(cfg);
    snprintf(expected, sizeof(expected),
             "geo:\n"
             "  database: \"%s\"\n"
             "  database_v6: ~ # not set\n"
             "  schema: geoip2\n"
             "  fields: {} # the schema's paths\n"
             "  asn_database: ~ # not set\n"
             "  hosting_asns: ~ # not set: the built-in list of hosting providers\n"
             "  keep_asn: false\n"
             "  precision: region\n"
             "  coordinates: drop\n"
             "  timezone: false\n"
             "  min_visitors:\n"
             "    region: 10\n"
             "    city: 50\n"
             "  floor_max_cells: 65536\n"
             "  lookup: full\n"
             "  headers:\n"
             "    continent: \"X-Geo-Continent\"\n"
             "    country: \"X-Geo-Country\"\n"
             "    region: \"X-Geo-Region\"\n"
             "    city: \"X-Geo-City\"\n"
             "    timezone: \"X-Geo-Timezone\"\n"
             "  cache_size: 10000\n"
             "  check_interval: 1m\n",
             db);
    if (strstr(text, expected) == NULL)
        fail_msg("geo block not found in:\n%s", text);
    ap_config_unref(cfg);
    free(text);
    free(yaml);
    unlink(db);
    unlink(db6);
    unlink(asn);
}

/* ---- routes[].body ---- */

/* A route with a body mapping: its keys start on line 6, column 7. */
#define BODY_HEAD                                                                 \
    "listen: [{address: 127.0.0.1:8080}]\n"                                      \
    "upstreams: {u: {file: out.ndjson}}\n"                                       \
    "routes:\n"                                                                  \
    "  - upstream: u\n"                                                          \
    "    body:\n"

/* Listeners and upstreams only: a test's routes start on line 3. */
#define BODY_BASE                                                                 \
    "listen: [{address: 127.0.0.1:8080}]\n"                                      \
    "upstreams: {u: {file: out.ndjson}}\n"

static const char body_example[] =
    "listen: [{address: 127.0.0.1:8080}]\n"
    "upstreams: {x: {file: out.ndjson}}\n"
    "routes:\n"
    "  - name: posthog\n"
    "    upstream: x\n"
    "    max_body_bytes: 4m\n"
    "    privacy: {profile: balanced, truncate: {ipv4: 16, ipv6: 40}}\n"
    "    body:\n"
    "      presets: [posthog, segment]\n"
    "      rules:\n"
    "        - {path: \"$.events[*].user_id\", action: pseudonymise}\n"
    "        - {path: \"$.ts\", action: round, value: hour}\n"
    "        - {path: \"$.k\",  action: set,   value: redacted}\n"
    "      detectors: {email: pseudonymise, ip: truncate-ip, mac: pseudonymise, "
    "imei: pseudonymise, phone: pseudonymise, click-id: drop}\n"
    "      regex: [{pattern: 'cust-[0-9]+', action: pseudonymise}]\n"
    "      max_body: 1m\n"
    "      max_inflated: 8m\n"
    "      max_ratio: 100\n"
    "      max_depth: 64\n"
    "      on_invalid: reject\n"
    "      on_unsupported: reject\n"
    "      recompress: false\n"
    "      gzip_magic: true\n"
    "      compression_flags: [{param: compression, value: gzip-js, encoding: gzip}]\n"
    "  - upstream: x\n"
    "    body: {}\n"
    "  - upstream: x\n"
    "    body: ~\n"
    "  - upstream: x\n"
    "    body:\n"
    "  - upstream: x\n";

/* Rules and query flags that preset `name` adds, counted by the engine. */
static void preset_counts(const char *name, size_t *nrules, size_t *nqflags)
{
    struct ap_body_policy pol;
    ap_body_policy_init(&pol, AP_PROFILE_STRICT);
    assert_int_equal(ap_bodypreset_add(&pol, name), 0);
    *nrules = pol.nrules;
    *nqflags = pol.nqflags;
    ap_body_policy_free(&pol);
}

static void test_body_example(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(body_example);
    assert_int_equal(cfg->nroutes, 5);
    const struct ap_body_policy *b = cfg->routes[0].body;
    assert_non_null(b);
    assert_int_equal(b->magic, AP_BODY_POLICY_MAGIC);
    assert_int_equal(b->finished, 1);

    /* The route's rules first, then posthog's, then segment's. */
    size_t nposthog, nsegment, qposthog, qsegment;
    preset_counts("posthog", &nposthog, &qposthog);
    preset_counts("segment", &nsegment, &qsegment);
    assert_int_equal(b->nrules, 3 + nposthog + nsegment);
    assert_string_equal(b->rules[0].text, "$.events[*].user_id");
    assert_int_equal(b->rules[0].action, AP_BODY_PSEUDO);
    assert_string_equal(b->rules[0].origin, "route");
    assert_string_equal(b->rules[1].text, "$.ts");
    assert_int_equal(b->rules[1].action, AP_BODY_ROUND);
    assert_int_equal(b->rules[1].round_unit, AP_BODY_ROUND_HOUR);
    assert_string_equal(b->rules[2].text, "$.k");
    assert_int_equal(b->rules[2].action, AP_BODY_SET);
    assert_string_equal(b->rules[2].set_json, "\"redacted\"");
    assert_string_equal(b->rules[2].set_plain, "redacted");
    assert_string_equal(b->rules[3].origin, "preset posthog");
    assert_string_equal(b->rules[3 + nposthog].origin, "preset segment");
    assert_string_equal(b->rules[b->nrules - 1].origin, "preset segment");

    assert_int_equal(b->detect[AP_DETECT_EMAIL], AP_BODY_PSEUDO);
    assert_int_equal(b->detect[AP_DETECT_IP], AP_BODY_TRUNCATE_IP);
    assert_int_equal(b->detect[AP_DETECT_MAC], AP_BODY_PSEUDO);
    assert_int_equal(b->detect[AP_DETECT_IMEI], AP_BODY_PSEUDO);
    assert_int_equal(b->detect[AP_DETECT_PHONE], AP_BODY_PSEUDO);
    assert_int_equal(b->detect[AP_DETECT_CLICKID], AP_BODY_DROP);
    assert_int_equal(b->nregexes, 1);
    assert_string_equal(b->regexes[0].pattern, "cust-[0-9]+");
    assert_int_equal(b->regexes[0].action, AP_BODY_PSEUDO);
    assert_non_null(b->regexes[0].code);

    assert_int_equal(b->max_body, 1024 * 1024);
    assert_int_equal(b->max_inflated, 8 * 1024 * 1024);
    assert_int_equal(b->max_ratio, 100);
    assert_int_equal(b->max_depth, 64);
    assert_int_equal(b->on_invalid, AP_BODY_INVALID_REJECT);
    assert_int_equal(b->on_unsupported, AP_BODY_UNSUPPORTED_REJECT);
    assert_int_equal(b->recompress, 0);
    assert_int_equal(b->gzip_magic, 1);
    /* posthog's own flag is the route's: the engine keeps one. */
    assert_int_equal(qposthog, 1);
    assert_int_equal(b->nqflags, 1);
    assert_string_equal(b->qflags[0].name, "compression");
    assert_string_equal(b->qflags[0].value, "gzip-js");
    assert_int_equal(b->qflags[0].encoding, AP_BODY_ENC_GZIP);
    /* Prefixes from privacy.truncate. */
    assert_int_equal(b->v4_prefix, 16);
    assert_int_equal(b->v6_prefix, 40);

    /* body: {} builds a policy; body: ~, a bare body: and no key do not. */
    assert_non_null(cfg->routes[1].body);
    assert_int_equal(cfg->routes[1].body->nrules, 0);
    assert_null(cfg->routes[2].body);
    assert_null(cfg->routes[3].body);
    assert_null(cfg->routes[4].body);
    ap_config_unref(cfg);
}

static void test_body_defaults(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok("listen: [{address: 127.0.0.1:8080}]\n"
                                     "upstreams: {u: {file: out.ndjson}}\n"
                                     "routes:\n"
                                     "  - {upstream: u, body: {}}\n"
                                     "  - {upstream: u, max_body_bytes: 300k, body: {}}\n"
                                     "  - {upstream: u, privacy: {profile: balanced}, body: {}}\n"
                                     "limits: {body_bytes: 2m}\n");
    for (size_t i = 0; i < 3; i++) {
        const struct ap_body_policy *b = cfg->routes[i].body;
        assert_non_null(b);
        assert_int_equal(b->finished, 1);
        assert_int_equal(b->nrules, 0);
        assert_int_equal(b->nregexes, 0);
        assert_int_equal(b->nqflags, 0);
        assert_int_equal(b->max_inflated, AP_BODY_MAX_INFLATED_DEFAULT);
        assert_int_equal(b->max_ratio, AP_BODY_MAX_RATIO_DEFAULT);
        assert_int_equal(b->max_depth, AP_BODY_MAX_DEPTH_DEFAULT);
        assert_int_equal(b->on_invalid, AP_BODY_INVALID_REJECT);
        assert_int_equal(b->on_unsupported, AP_BODY_UNSUPPORTED_REJECT);
        assert_int_equal(b->recompress, 0);
        assert_int_equal(b->gzip_magic, 1);
        assert_int_equal(b->v4_prefix, 24);
        assert_int_equal(b->v6_prefix, 48);
        assert_int_equal(b->detect[AP_DETECT_CLICKID], AP_BODY_DROP);
    }
    /* max_body: the route's max_body_bytes, itself limits.body_bytes. */
    assert_int_equal(cfg->routes[0].body->max_body, 2 * 1024 * 1024);
    assert_int_equal(cfg->routes[1].body->max_body, 300 * 1024);
    /* Detectors: all on in strict, only click ids in balanced. */
    const struct ap_body_policy *s = cfg->routes[0].body, *bal = cfg->routes[2].body;
    assert_int_equal(s->detect[AP_DETECT_EMAIL], AP_BODY_PSEUDO);
    assert_int_equal(s->detect[AP_DETECT_IP], AP_BODY_TRUNCATE_IP);
    assert_int_equal(s->detect[AP_DETECT_MAC], AP_BODY_PSEUDO);
    assert_int_equal(s->detect[AP_DETECT_IMEI], AP_BODY_PSEUDO);
    assert_int_equal(s->detect[AP_DETECT_PHONE], AP_BODY_PSEUDO);
    for (int k = AP_DETECT_EMAIL; k < AP_DETECT_CLICKID; k++)
        assert_int_equal(bal->detect[k], AP_BODY_KEEP);
    ap_config_unref(cfg);
}

static void test_body_values(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(BODY_HEAD
                                     "      presets: matomo\n"
                                     "      rules:\n"
                                     "        - {path: $.n, action: round, value: 100}\n"
                                     "        - {path: $.m, action: round, value: minute}\n"
                                     "        - {path: $.d, action: round, value: day}\n"
                                     "        - {path: $.z, action: set, value: 0}\n"
                                     "        - {path: $.o, action: set, value: '{\"a\": 1}'}\n"
                                     "        - {path: $.q, action: set, value: '\"0\"'}\n"
                                     "        - {path: \"$.p['$ip']\", action: pseudonymize}\n"
                                     "        - {path: $.u>url.gclid, action: drop}\n"
                                     "        - {path: $..ua, action: reduce-ua}\n"
                                     "      detectors: {email: keep, ip: pseudonymise, "
                                     "click-id: keep}\n"
                                     "      regex:\n"
                                     "        - {pattern: '^secret', action: drop}\n"
                                     "        - {pattern: 'k[0-9]{4}', action: pseudonymise}\n"
                                     "      max_ratio: 0\n"
                                     "      max_depth: 512\n"
                                     "      max_body: 0\n"
                                     "      max_inflated: 1g\n"
                                     "      on_invalid: drop-body\n"
                                     "      on_unsupported: pass\n"
                                     "      recompress: yes\n"
                                     "      gzip_magic: off\n"
                                     "      compression_flags:\n"
                                     "        - {param: enc, value: DEF, encoding: deflate}\n"
                                     "        - {param: enc, value: gz, encoding: gzip}\n");
    const struct ap_body_policy *b = cfg->routes[0].body;
    size_t nmatomo, qmatomo;
    preset_counts("matomo", &nmatomo, &qmatomo);
    assert_int_equal(b->nrules, 9 + nmatomo);
    assert_int_equal(b->rules[0].round_unit, AP_BODY_ROUND_STEP);
    assert_int_equal(b->rules[0].round_step, 100);
    assert_int_equal(b->rules[1].round_unit, AP_BODY_ROUND_MINUTE);
    assert_int_equal(b->rules[2].round_unit, AP_BODY_ROUND_DAY);
    assert_string_equal(b->rules[3].set_json, "0");
    assert_string_equal(b->rules[4].set_json, "{\"a\": 1}");
    assert_string_equal(b->rules[5].set_json, "\"0\"");
    assert_string_equal(b->rules[5].set_plain, "0");
    assert_string_equal(b->rules[6].text, "$.p['$ip']");
    assert_int_equal(b->rules[6].action, AP_BODY_PSEUDO);
    assert_int_equal(b->rules[7].nsteps, 3);
    assert_int_equal(b->rules[8].action, AP_BODY_REDUCE_UA);
    assert_string_equal(b->rules[9].origin, "preset matomo");
    assert_int_equal(b->detect[AP_DETECT_EMAIL], AP_BODY_KEEP);
    assert_int_equal(b->detect[AP_DETECT_IP], AP_BODY_PSEUDO);
    assert_int_equal(b->detect[AP_DETECT_MAC], AP_BODY_PSEUDO); /* strict default */
    assert_int_equal(b->detect[AP_DETECT_CLICKID], AP_BODY_KEEP);
    assert_int_equal(b->nregexes, 2);
    assert_int_equal(b->regexes[0].action, AP_BODY_DROP);
    assert_string_equal(b->regexes[1].pattern, "k[0-9]{4}");
    assert_int_equal(b->max_ratio, 0);
    assert_int_equal(b->max_depth, 512);
    assert_int_equal(b->max_body, 0);
    assert_int_equal(b->max_inflated, 1024 * 1024 * 1024);
    assert_int_equal(b->on_invalid, AP_BODY_INVALID_DROP_BODY);
    assert_int_equal(b->on_unsupported, AP_BODY_UNSUPPORTED_PASS);
    assert_int_equal(b->recompress, 1);
    assert_int_equal(b->gzip_magic, 0);
    assert_int_equal(b->nqflags, 2);
    assert_string_equal(b->qflags[0].value, "DEF");
    assert_int_equal(b->qflags[0].encoding, AP_BODY_ENC_DEFLATE);
    assert_int_equal(b->qflags[1].encoding, AP_BODY_ENC_GZIP);
    ap_config_unref(cfg);

    /* Null lists are empty lists. */
    cfg = parse_ok(BODY_HEAD "      presets:\n      rules: ~\n      regex:\n"
                             "      compression_flags: ~\n      detectors:\n");
    assert_non_null(cfg->routes[0].body);
    assert_int_equal(cfg->routes[0].body->nrules, 0);
    assert_int_equal(cfg->routes[0].body->detect[AP_DETECT_EMAIL], AP_BODY_PSEUDO);
    ap_config_unref(cfg);
}

static void test_body_errors(void **state)
{
    (void)state;
    /* Paths: the byte offset the engine gives, counted from 0. */
    expect_errors(BODY_HEAD "      rules: [{path: \"$.events[*.id\", action: drop}]\n",
                  "t.yaml:6:22: routes[0].body.rules[0].path: invalid path '$.events[*.id' at "
                  "byte 9 (near '*.id')\n");
    expect_errors(BODY_HEAD "      rules:\n        - {path: $., action: keep}\n",
                  "t.yaml:7:18: routes[0].body.rules[0].path: invalid path '$.' at byte 2 "
                  "(unexpected end)\n");
    expect_errors(BODY_HEAD "      rules: [{path: a.b, action: keep}]\n",
                  "t.yaml:6:22: routes[0].body.rules[0].path: invalid path 'a.b' at byte 0 "
                  "(near 'a.b')\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: keep}, {path: $.a, action: drop}]\n",
                  "t.yaml:6:49: routes[0].body.rules[1].path: duplicate rule for '$.a' (first "
                  "at 6:22; the first rule that matches wins)\n");
    /* Actions and their values. */
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: pseudonimise}]\n",
                  "t.yaml:6:35: routes[0].body.rules[0].action: unknown action 'pseudonimise', "
                  "did you mean 'pseudonymise'? (expected one of: keep, drop, pseudonymise, "
                  "truncate-ip, clean-url, origin-only, reduce-ua, set, round, geo)\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: set}]\n",
                  "t.yaml:6:15: routes[0].body.rules[0]: missing required key 'value' (action "
                  "set needs one: the constant)\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: round}]\n",
                  "t.yaml:6:15: routes[0].body.rules[0]: missing required key 'value' (action "
                  "round needs one: a step, minute, hour or day)\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: drop, value: x}]\n",
                  "t.yaml:6:48: routes[0].body.rules[0].value: action drop takes no value\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: round, value: week}]\n",
                  "t.yaml:6:49: routes[0].body.rules[0].value: invalid round value 'week' (a "
                  "positive integer up to 10^18, minute, hour or day)\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: round, value: 0}]\n",
                  "t.yaml:6:49: routes[0].body.rules[0].value: invalid round value '0' (a "
                  "positive integer up to 10^18, minute, hour or day)\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: set, value: {a: 1}}]\n",
                  "t.yaml:6:47: routes[0].body.rules[0].value: expected a scalar (quote JSON "
                  "objects and arrays: '{\"a\": 1}'), got a mapping\n");
    expect_errors(BODY_HEAD "      rules: [{action: keep}]\n",
                  "t.yaml:6:15: routes[0].body.rules[0]: missing required key 'path'\n");
    expect_errors(BODY_HEAD "      rules: [{path: $.a, action: keep, colour: red}]\n",
                  "t.yaml:6:41: routes[0].body.rules[0]: unknown key 'colour'\n");
    expect_errors(BODY_HEAD "      rules: [$.a]\n",
                  "t.yaml:6:15: routes[0].body.rules[0]: expected a mapping with path and "
                  "action, got a scalar\n");
    expect_errors(BODY_HEAD "      rules: {path: $.a}\n",
                  "t.yaml:6:14: routes[0].body.rules: expected a list of rules, got a mapping\n");
    /* Presets. */
    expect_errors(BODY_HEAD "      presets: [posthgo]\n",
                  "t.yaml:6:17: routes[0].body.presets[0]: unknown preset 'posthgo', did you "
                  "mean 'posthog'? (expected one of: posthog, segment, rudderstack, amplitude, "
                  "mixpanel, snowplow, plausible, umami, matomo, ga4)\n");
    expect_errors(BODY_HEAD "      presets: [ga4, matomo, ga4]\n",
                  "t.yaml:6:30: routes[0].body.presets[2]: preset 'ga4' is listed twice\n");
    /* Detectors. */
    expect_errors(BODY_HEAD "      detectors: {emial: drop}\n",
                  "t.yaml:6:19: routes[0].body.detectors: unknown detector 'emial', did you "
                  "mean 'email'? (expected one of: email, ip, mac, imei, phone, click-id)\n");
    expect_errors(BODY_HEAD "      detectors: {mac: truncate-ip}\n",
                  "t.yaml:6:24: routes[0].body.detectors.mac: the mac detector cannot "
                  "truncate-ip (expected one of: keep, drop, pseudonymise)\n");
    expect_errors(BODY_HEAD "      detectors: {click-id: pseudonymise}\n",
                  "t.yaml:6:29: routes[0].body.detectors.click-id: the click-id detector "
                  "cannot pseudonymise (expected one of: keep, drop)\n");
    expect_errors(BODY_HEAD "      detectors: {ip: trunc}\n",
                  "t.yaml:6:23: routes[0].body.detectors.ip: unknown action 'trunc' (expected "
                  "one of: keep, drop, pseudonymise, truncate-ip)\n");
    expect_errors(BODY_HEAD "      detectors: {phone: dorp}\n",
                  "t.yaml:6:26: routes[0].body.detectors.phone: unknown action 'dorp', did you "
                  "mean 'drop'? (expected one of: keep, drop, pseudonymise)\n");
    expect_errors(BODY_HEAD "      detectors: {regex: drop}\n",
                  "t.yaml:6:19: routes[0].body.detectors: regular expressions are written under "
                  "the key regex, with their action\n");
    expect_errors(BODY_HEAD "      detectors: {ip: drop, ip: keep}\n",
                  "t.yaml:6:29: routes[0].body.detectors: duplicate key 'ip' (first at 6:19)\n");
    expect_errors(BODY_HEAD "      detectors: [email]\n",
                  "t.yaml:6:18: routes[0].body.detectors: expected a mapping of detector names "
                  "to actions, got a list\n");
    /* Regular expressions: PCRE2's offset and words. */
    expect_errors(BODY_HEAD "      regex: [{pattern: 'cust-[0-9+', action: pseudonymise}]\n",
                  "t.yaml:6:25: routes[0].body.regex[0].pattern: invalid regular expression "
                  "'cust-[0-9+' at byte 10: missing terminating ] for character class\n");
    expect_errors(BODY_HEAD "      regex: [{pattern: 'a(b', action: drop}]\n",
                  "t.yaml:6:25: routes[0].body.regex[0].pattern: invalid regular expression "
                  "'a(b' at byte 3: missing closing parenthesis\n");
    expect_errors(BODY_HEAD "      regex: [{pattern: x, action: keep}]\n",
                  "t.yaml:6:36: routes[0].body.regex[0].action: a regular expression takes "
                  "pseudonymise (the match) or drop (the value), not keep\n");
    expect_errors(BODY_HEAD "      regex: [{pattern: '', action: drop}]\n",
                  "t.yaml:6:25: routes[0].body.regex[0].pattern: a pattern has 1..4096 bytes\n");
    /* Limits and switches. */
    expect_errors(BODY_HEAD "      max_body: 2m\n",
                  "t.yaml:6:17: routes[0].body.max_body: 2m is more than the route's "
                  "max_body_bytes (1m), which no body gets past\n");
    expect_errors(BODY_HEAD "      max_body: lots\n",
                  "t.yaml:6:17: routes[0].body.max_body: invalid size 'lots' (expected bytes, or "
                  "a number with a k, m or g suffix)\n");
    expect_errors(BODY_HEAD "      max_inflated: 0\n",
                  "t.yaml:6:21: routes[0].body.max_inflated: '0' is out of range (1..1024g)\n");
    expect_errors(BODY_HEAD "      max_depth: 513\n",
                  "t.yaml:6:18: routes[0].body.max_depth: '513' is out of range (1..512)\n");
    expect_errors(BODY_HEAD "      max_ratio: 1000001\n",
                  "t.yaml:6:18: routes[0].body.max_ratio: '1000001' is out of range "
                  "(0..1000000)\n");
    expect_errors(BODY_HEAD "      on_invalid: pass\n",
                  "t.yaml:6:19: routes[0].body.on_invalid: unknown on_invalid policy 'pass' "
                  "(expected one of: reject, drop-body)\n");
    expect_errors(BODY_HEAD "      on_unsupported: dropbody\n",
                  "t.yaml:6:23: routes[0].body.on_unsupported: unknown on_unsupported policy "
                  "'dropbody', did you mean 'drop-body'? (expected one of: reject, drop-body, "
                  "pass)\n");
    expect_errors(BODY_HEAD "      recompress: maybe\n",
                  "t.yaml:6:19: routes[0].body.recompress: expected a boolean (true/false, "
                  "yes/no, on/off), got 'maybe'\n");
    expect_errors(BODY_HEAD "      gzip_magic: [true]\n",
                  "t.yaml:6:19: routes[0].body.gzip_magic: expected a boolean, got a list\n");
    /* Compression flags. */
    expect_errors(BODY_HEAD "      compression_flags: [{param: c, value: x, encoding: br}]\n",
                  "t.yaml:6:58: routes[0].body.compression_flags[0].encoding: unknown encoding "
                  "'br' (expected one of: gzip, deflate)\n");
    expect_errors(BODY_HEAD "      compression_flags:\n"
                            "        - {param: c, value: GZ, encoding: gzip}\n"
                            "        - {param: c, value: gz, encoding: deflate}\n",
                  "t.yaml:8:11: routes[0].body.compression_flags[1]: duplicate compression flag "
                  "c=gz (first at 7:11)\n");
    expect_errors(BODY_HEAD "      compression_flags: [{param: c, encoding: gzip}]\n",
                  "t.yaml:6:27: routes[0].body.compression_flags[0]: missing required key "
                  "'value'\n");
    expect_errors(BODY_HEAD "      compression_flags: [{param: '', value: x, encoding: gzip}]\n",
                  "t.yaml:6:35: routes[0].body.compression_flags[0].param: invalid parameter "
                  "name '' (1..256 characters, no control characters)\n");
    /* The section itself. */
    expect_errors(BODY_HEAD "      rulez: []\n",
                  "t.yaml:6:7: routes[0].body: unknown key 'rulez', did you mean 'rules'?\n");
    expect_errors(BODY_BASE "routes: [{upstream: u, body: [presets]}]\n",
                  "t.yaml:3:30: routes[0].body: expected a mapping, got a list\n");
    expect_errors(BODY_BASE "log_sinks: {s: {type: stdout}}\n"
                                    "routes: [{type: logs, log_sinks: s, body: {}}]\n",
                  "t.yaml:4:37: routes[0].body: only applies to routes of type http\n");
    /* Every mistake of one section in one run. */
    expect_errors(BODY_HEAD "      presets: [nope]\n"
                            "      rules: [{path: $, action: keep}]\n"
                            "      max_depth: 0\n",
                  "t.yaml:6:17: routes[0].body.presets[0]: unknown preset 'nope' (expected one "
                  "of: posthog, segment, rudderstack, amplitude, mixpanel, snowplow, plausible, "
                  "umami, matomo, ga4)\n"
                  "t.yaml:7:22: routes[0].body.rules[0].path: invalid path '$' at byte 1 "
                  "(unexpected end)\n"
                  "t.yaml:8:18: routes[0].body.max_depth: '0' is out of range (1..512)\n");
}

/* A YAML list of `n` rules whose paths have `steps` steps each. */
static char *many_rules(size_t n, size_t steps)
{
    size_t cap = n * (steps * 2 + 64) + 64, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    len += (size_t)snprintf(s + len, cap - len, "      rules:\n");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len, "        - {action: keep, path: \"$");
        for (size_t k = 1; k < steps; k++)
            len += (size_t)snprintf(s + len, cap - len, ".a");
        len += (size_t)snprintf(s + len, cap - len, ".r%zu\"}\n", i);
    }
    return s;
}

static void test_body_caps(void **state)
{
    (void)state;
    char *rules = many_rules(1001, 1), *yaml = NULL;
    assert_true(asprintf(&yaml, BODY_HEAD "%s", rules) > 0);
    expect_errors(yaml, "t.yaml:7:9: routes[0].body.rules: too many rules (1001, at most 1000)\n");
    free(rules);
    free(yaml);

    /* 1000 rules of 64 steps and ten presets: more matcher states than
     * the engine can number. */
    rules = many_rules(1000, 64);
    assert_true(asprintf(&yaml, BODY_HEAD "      presets: [posthog, segment, rudderstack, "
                                          "amplitude, mixpanel, snowplow, plausible, umami, "
                                          "matomo, ga4]\n%s", rules) > 0);
    expect_errors(yaml, "t.yaml:6:7: routes[0].body: the rules are too long for one route (more "
                        "than 65535 steps in all, presets included): split the route or drop a "
                        "preset\n");
    free(yaml);
    /* The same rules alone fit. */
    assert_true(asprintf(&yaml, BODY_HEAD "%s", rules) > 0);
    struct ap_config *cfg = parse_ok(yaml);
    assert_int_equal(cfg->routes[0].body->nrules, 1000);
    ap_config_unref(cfg);
    free(yaml);
    free(rules);

    /* An alias repeats one section in many routes: the presets' rules
     * count against the budget all routes share. */
    size_t nall = 0;
    const char *const *names = ap_bodypreset_names();
    for (size_t i = 0; names[i] != NULL; i++) {
        size_t r, q;
        preset_counts(names[i], &r, &q);
        nall += r;
    }
    size_t nroutes = 100000 / nall + 2;
    size_t cap = nroutes * 32 + 1024, len = 0;
    yaml = malloc(cap);
    assert_non_null(yaml);
    len += (size_t)snprintf(yaml + len, cap - len,
                            "listen: [{address: 127.0.0.1:8080}]\n"
                            "upstreams: {u: {file: out.ndjson}}\n"
                            "routes:\n"
                            "  - {upstream: u, body: &b {presets: [posthog, segment, rudderstack, "
                            "amplitude, mixpanel, snowplow, plausible, umami, matomo, ga4]}}\n");
    for (size_t i = 1; i < nroutes; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "  - {upstream: u, body: *b}\n");
    char *errors = NULL;
    cfg = parse(yaml, &errors);
    assert_null(cfg);
    assert_non_null(errors);
    /* The first route over the budget is the one reported; at most one error per route after. */
    char first[256];
    snprintf(first, sizeof(first),
             "t.yaml:4:38: routes[%zu].body.presets: too many privacy rules in all routes "
             "together (at most 100000, body rules and their presets included)\n",
             100000 / nall);
    if (strncmp(errors, first, strlen(first)) != 0)
        fail_msg("expected first error\n%s\ngot\n%.400s", first, errors);
    free(errors);
    free(yaml);
}

/* Compares two body policies field by field. */
static void check_same_body(const struct ap_body_policy *a, const struct ap_body_policy *b)
{
    assert_int_equal(a == NULL, b == NULL);
    if (a == NULL)
        return;
    assert_int_equal(a->nrules, b->nrules);
    for (size_t k = 0; k < a->nrules; k++) {
        const struct ap_body_rule *x = &a->rules[k], *y = &b->rules[k];
        assert_string_equal(x->text, y->text);
        assert_int_equal(x->action, y->action);
        assert_string_equal(x->origin, y->origin);
        assert_int_equal(x->nsteps, y->nsteps);
        assert_int_equal(x->round_unit, y->round_unit);
        assert_int_equal(x->round_step, y->round_step);
        assert_int_equal(x->set_json == NULL, y->set_json == NULL);
        if (x->set_json != NULL) {
            assert_string_equal(x->set_json, y->set_json);
            assert_string_equal(x->set_plain, y->set_plain);
        }
    }
    assert_int_equal(a->nregexes, b->nregexes);
    for (size_t k = 0; k < a->nregexes; k++) {
        assert_string_equal(a->regexes[k].pattern, b->regexes[k].pattern);
        assert_int_equal(a->regexes[k].action, b->regexes[k].action);
    }
    assert_int_equal(a->nqflags, b->nqflags);
    for (size_t k = 0; k < a->nqflags; k++) {
        assert_string_equal(a->qflags[k].name, b->qflags[k].name);
        assert_string_equal(a->qflags[k].value, b->qflags[k].value);
        assert_int_equal(a->qflags[k].encoding, b->qflags[k].encoding);
    }
    assert_memory_equal(a->detect, b->detect, sizeof(a->detect));
    assert_int_equal(a->max_body, b->max_body);
    assert_int_equal(a->max_inflated, b->max_inflated);
    assert_int_equal(a->max_ratio, b->max_ratio);
    assert_int_equal(a->max_depth, b->max_depth);
    assert_int_equal(a->on_invalid, b->on_invalid);
    assert_int_equal(a->on_unsupported, b->on_unsupported);
    assert_int_equal(a->recompress, b->recompress);
    assert_int_equal(a->gzip_magic, b->gzip_magic);
    assert_int_equal(a->v4_prefix, b->v4_prefix);
    assert_int_equal(a->v6_prefix, b->v6_prefix);
    assert_int_equal(a->nstates, b->nstates);
}

static void test_body_round_trip(void **state)
{
    (void)state;
    const char *inputs[] = {
        body_example,
        BODY_HEAD "      presets: umami\n",
        BODY_HEAD "      rules:\n"
                  "        - {path: \"$.p[\\\"a\\\\\\\"b\\\"]\", action: set, value: "
                  "\"t\\u00e9\\tx \\\"q\\\"\"}\n"
                  "        - {path: $.n, action: set, value: ' 7 '}\n"
                  "        - {path: $.j, action: set, value: '[1, \"two\"]'}\n"
                  "        - {path: $.s, action: round, value: 5}\n"
                  "        - {path: $..geo, action: geo}\n"
                  "      detectors: {email: drop, ip: keep, click-id: keep}\n"
                  "      regex: [{pattern: \"\\\\d{3}-\\\\d{4}\", action: drop}]\n"
                  "      max_body: 1000\n"
                  "      max_ratio: 0\n"
                  "      on_unsupported: drop-body\n"
                  "      recompress: true\n"
                  "      gzip_magic: false\n"
                  "      compression_flags: [{param: \"z\\\"\", value: '', encoding: deflate}]\n"
                  "  - upstream: u\n"
                  "    privacy: {profile: balanced}\n"
                  "    body: {presets: [posthog], compression_flags: "
                  "[{param: compression, value: GZIP-JS, encoding: deflate}]}\n",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(inputs); i++) {
        struct ap_config *a = parse_ok(inputs[i]);
        char *text_a = print_to_string(a);
        struct ap_config *b = parse_ok(text_a);
        char *text_b = print_to_string(b);
        assert_string_equal(text_a, text_b);
        assert_int_equal(a->nroutes, b->nroutes);
        for (size_t r = 0; r < a->nroutes; r++)
            check_same_body(a->routes[r].body, b->routes[r].body);
        free(text_a);
        free(text_b);
        ap_config_unref(a);
        ap_config_unref(b);
    }
}

static void test_body_print(void **state)
{
    (void)state;
    struct ap_config *cfg = parse_ok(BODY_HEAD "      presets: [ga4]\n"
                                               "      rules:\n"
                                               "        - {path: $.a, action: round, value: 10}\n"
                                               "        - {path: $.b, action: drop}\n"
                                               "      detectors: {phone: keep}\n"
                                               "      regex: [{pattern: x+, action: drop}]\n"
                                               "      compression_flags: [{param: c, value: g, "
                                               "encoding: gzip}]\n");
    char *text = print_to_string(cfg);
    const char *expected = "    body:\n"
                           "      presets: [ga4]\n"
                           "      rules:\n"
                           "        - path: \"$.a\"\n"
                           "          action: round\n"
                           "          value: \"10\"\n"
                           "        - path: \"$.b\"\n"
                           "          action: drop\n"
                           "      detectors:\n"
                           "        email: pseudonymise\n"
                           "        ip: truncate-ip\n"
                           "        mac: pseudonymise\n"
                           "        imei: pseudonymise\n"
                           "        phone: keep # off\n"
                           "        click-id: drop\n"
                           "      regex:\n"
                           "        - pattern: \"x+\"\n"
                           "          action: drop\n"
                           "      max_body: 1m\n"
                           "      max_inflated: 8m\n"
                           "      max_ratio: 100\n"
                           "      max_depth: 64\n"
                           "      on_invalid: reject\n"
                           "      on_unsupported: reject\n"
                           "      recompress: false\n"
                           "      gzip_magic: true\n"
                           "      compression_flags:\n"
                           "        - param: \"c\"\n"
                           "          value: \"g\"\n"
                           "          encoding: gzip\n"
                           "limits:\n";
    if (strstr(text, expected) == NULL)
        fail_msg("body block not found in:\n%s", text);
    /* None of the preset's rules is printed as the route's own. */
    assert_null(strstr(text, "$.cid"));
    free(text);
    ap_config_unref(cfg);

    /* An empty section prints every default; no section prints nothing. */
    cfg = parse_ok(BODY_HEAD "      rules: []\n"
                   "  - upstream: u\n");
    text = print_to_string(cfg);
    assert_non_null(strstr(text, "    body:\n"
                                 "      presets: []\n"
                                 "      rules: []\n"
                                 "      detectors:\n"));
    assert_non_null(strstr(text, "      compression_flags: []\n"
                                 "  - name: \"route2\"\n"));
    assert_null(strstr(strstr(text, "route2"), "body:"));
    free(text);
    ap_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_workers_auto_uses_cpu_count),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_real_resolver),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_empty_and_top_level),
        cmocka_unit_test(test_missing_sections),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_bad_listen_addresses),
        cmocka_unit_test(test_duplicate_listener),
        cmocka_unit_test(test_bad_server_urls),
        cmocka_unit_test(test_upstream_kind_errors),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_unknown_upstream),
        cmocka_unit_test(test_bad_match),
        cmocka_unit_test(test_bad_durations_and_sizes),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_list_caps),
        cmocka_unit_test(test_header_limit_conflict),
        cmocka_unit_test(test_many_errors_in_one_run),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_escaped_values),
        cmocka_unit_test(test_print_format),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_privacy_example),
        cmocka_unit_test(test_privacy_defaults),
        cmocka_unit_test(test_privacy_values),
        cmocka_unit_test(test_privacy_errors),
        cmocka_unit_test(test_privacy_caps),
        cmocka_unit_test(test_privacy_total_budget),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_privacy_round_trip),
        cmocka_unit_test(test_privacy_print),
        cmocka_unit_test(test_geo_example),
        cmocka_unit_test(test_geo_defaults),
        cmocka_unit_test(test_geo_values),
        cmocka_unit_test(test_geo_file_errors),
        cmocka_unit_test(test_geo_errors),
        cmocka_unit_test(test_geo_round_trip),
        cmocka_unit_test(test_geo_print),
        cmocka_unit_test(test_body_example),
        cmocka_unit_test(test_body_defaults),
        cmocka_unit_test(test_body_values),
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_body_caps),
        cmocka_unit_test(test_body_round_trip),
        cmocka_unit_test(test_body_print),
    };
    const struct CMUnitTest tls_tests[] = {
        cmocka_unit_test(test_tls_listener_values),
        cmocka_unit_test(test_tls_listener_defaults),
        cmocka_unit_test(test_tls_file_errors),
        cmocka_unit_test(test_tls_large_files),
        cmocka_unit_test(test_tls_listener_errors),
        cmocka_unit_test(test_https_upstreams),
        cmocka_unit_test(test_https_upstream_errors),
        cmocka_unit_test(test_tls_round_trip),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + cmocka_run_group_tests(tls_tests, tls_setup, tls_teardown);
}

/* Unit tests of the logging keys of proxy/config.c (issue 8): log_sinks of
 * every type, access_log, routes of type logs with log_fields,
 * syslog_listen; defaults, every error with its position, and the
 * print/parse round trip. */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/un.h>

#include <cmocka.h>

#include "anonproxy/config.h"
#include "anonproxy/logspool-t.h"
#include "config-int.h"

static int fake_resolve(void *ctx, const char *host, struct sockaddr_storage *ss, socklen_t *len,
                        const char **why)
{
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "logs.local") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        inet_pton(AF_INET, "192.0.2.20", &sin->sin_addr);
        *len = sizeof(*sin);
        return 0;
    }
    *why = "no such host (test resolver)";
    return -ENOENT;
}

static const struct ap_config__opts test_opts = {.resolve = fake_resolve, .ncpus = 2};

static struct ap_config *parse(const char *yaml, char **errors)
{
    return ap_config__parse(yaml, strlen(yaml), "t.yaml", &test_opts, errors);
}

static struct ap_config *parse_ok(const char *yaml)
{
    char *errors = NULL;
    struct ap_config *cfg = parse(yaml, &errors);
    if (cfg == NULL)
        fail_msg("unexpected errors:\n%s", errors ? errors : "(null)");
    return cfg;
}

static void expect_errors(const char *yaml, const char *expected)
{
    char *errors = NULL;
    struct ap_config *cfg = parse(yaml, &errors);
    if (cfg != NULL) {
        ap_config_unref(cfg);
        fail_msg("accepted, expected:\n%s", expected);
    }
    assert_non_null(errors);
    assert_string_equal(errors, expected);
    free(errors);
}

#define HEAD                                        \
    "listen:\n"                                     \
    "  - address: 127.0.0.1:8080\n"                 \
    "upstreams:\n"                                  \
    "  b:\n"                                        \
    "    servers: [\"http://127.0.0.1:9000\"]\n"

static const char full[] =
    HEAD
    "log_sinks:\n"
    "  f:\n"
    "    type: file\n"
    "    path: /var/log/anonproxy/access.log\n"
    "    spool: { dir: /tmp/spool-f, max_bytes: 10m, fsync: always }\n"
    "  out:\n"
    "    type: stdout\n"
    "    when_full: drop_newest\n"
    "    queue: 50\n"
    "  sys:\n"
    "    type: syslog\n"
    "    address: tcp://logs.local:6514\n"
    "    format: rfc3164\n"
    "    facility: local3\n"
    "    app_name: edge\n"
    "  sysu:\n"
    "    type: syslog\n"
    "    address: unix:/dev/log\n"
    "    facility: 1\n"
    "  web:\n"
    "    type: http\n"
    "    url: http://127.0.0.1:9200/_bulk?x=1\n"
    "    headers: { Authorization: \"Bearer abc\" }\n"
    "    gzip: true\n"
    "    batch: { max_events: 500, max_bytes: 256k, max_age: 2s }\n"
    "    retry: { initial: 100ms, max: 5s }\n"
    "    when_full: block\n"
    "access_log:\n"
    "  format: text\n"
    "  template: \"$client $status $path\"\n"
    "  sinks: [f, web]\n"
    "routes:\n"
    "  - name: web\n"
    "    upstream: b\n"
    "  - name: applogs\n"
    "    type: logs\n"
    "    match: { path: /logs }\n"
    "    log_sinks: [sys, web]\n"
    "    log_fields: { order_id: pseudonymise, debug_*: drop }\n"
    "syslog_listen:\n"
    "  - address: udp://127.0.0.1:5514\n"
    "    route: applogs\n"
    "  - address: tcp://[::1]:5514\n"
    "    route: applogs\n"
    "    max_message_bytes: 16k\n";

static void test_values(void **state)
{
    struct ap_config *cfg = parse_ok(full);
    assert_int_equal(cfg->nlog_sinks, 5);
    const struct ap_config_log_sink *f = &cfg->log_sinks[0];
    assert_string_equal(f->name, "f");
    assert_int_equal(f->type, AP_LOG_SINK_FILE);
    assert_string_equal(f->path, "/var/log/anonproxy/access.log");
    assert_string_equal(f->spool.dir, "/tmp/spool-f");
    assert_int_equal(f->spool.max_bytes, 10u << 20);
    assert_int_equal(f->spool.fsync, AP_LOGSPOOL_FSYNC_ALWAYS);
    assert_int_equal(f->queue, 10000);
    assert_int_equal(f->when_full, AP_LOG_WHEN_FULL_SPOOL);

    const struct ap_config_log_sink *o = &cfg->log_sinks[1];
    assert_int_equal(o->type, AP_LOG_SINK_STDOUT);
    assert_int_equal(o->when_full, AP_LOG_WHEN_FULL_DROP_NEWEST);
    assert_int_equal(o->queue, 50);
    /* Default spool directory: one per sink. */
    assert_string_equal(o->spool.dir, "/var/spool/anonproxy/out");
    assert_int_equal(o->spool.fsync, AP_LOGSPOOL_FSYNC_BATCH);

    const struct ap_config_log_sink *s = &cfg->log_sinks[2];
    assert_int_equal(s->transport, AP_LOG_TCP);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&s->addr;
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 6514);
    assert_int_equal(s->syslog_format, 1);
    assert_int_equal(s->facility, 19);
    assert_string_equal(s->app_name, "edge");
    assert_int_equal(s->max_message_bytes, 8192);

    const struct ap_config_log_sink *u = &cfg->log_sinks[3];
    assert_int_equal(u->transport, AP_LOG_UNIX);
    assert_string_equal(((const struct sockaddr_un *)&u->addr)->sun_path, "/dev/log");
    assert_int_equal(u->facility, 1);
    assert_string_equal(u->app_name, "anonproxy");

    const struct ap_config_log_sink *w = &cfg->log_sinks[4];
    assert_int_equal(w->type, AP_LOG_SINK_HTTP);
    assert_string_equal(w->url_authority, "127.0.0.1:9200");
    assert_string_equal(w->url_path, "/_bulk?x=1");
    assert_int_equal(w->url_port, 9200);
    assert_int_equal(w->nheaders, 1);
    assert_string_equal(w->headers[0], "Authorization: Bearer abc");
    assert_true(w->gzip);
    assert_int_equal(w->batch_max_events, 500);
    assert_int_equal(w->batch_max_bytes, 256u << 10);
    assert_int_equal(w->batch_max_age_ms, 2000);
    assert_int_equal(w->retry_initial_ms, 100);
    assert_int_equal(w->retry_max_ms, 5000);
    assert_int_equal(w->when_full, AP_LOG_WHEN_FULL_BLOCK);
    assert_int_equal(w->timeout_ms, 10000);

    assert_true(cfg->access_log.set);
    assert_int_equal(cfg->access_log.format, AP_LOG_FORMAT_TEXT);
    assert_string_equal(cfg->access_log.template, "$client $status $path");
    assert_int_equal(cfg->access_log.nsinks, 2);
    assert_ptr_equal(cfg->access_log.sinks[0], f);
    assert_ptr_equal(cfg->access_log.sinks[1], w);
    assert_int_equal(cfg->access_log.worker_queue_bytes, 4u << 20);

    assert_int_equal(cfg->routes[0].type, AP_ROUTE_HTTP);
    const struct ap_config_route *r = &cfg->routes[1];
    assert_int_equal(r->type, AP_ROUTE_LOGS);
    assert_null(r->upstream);
    assert_int_equal(r->nlog_sinks, 2);
    assert_ptr_equal(r->log_sinks[0], s);
    assert_int_equal(r->nlog_fields, 2);
    assert_string_equal(r->log_fields[1].glob, "debug_*");
    assert_int_equal(r->log_fields[1].action, AP_LOGSCRUB_DROP);
    assert_non_null(r->policy);

    assert_int_equal(cfg->nsyslog_listen, 2);
    assert_int_equal(cfg->syslog_listen[0].transport, AP_LOG_UDP);
    assert_ptr_equal(cfg->syslog_listen[0].route, r);
    assert_int_equal(cfg->syslog_listen[0].max_message_bytes, 64u << 10);
    assert_int_equal(cfg->syslog_listen[1].transport, AP_LOG_TCP);
    assert_int_equal(cfg->syslog_listen[1].addr.ss_family, AF_INET6);
    assert_int_equal(cfg->syslog_listen[1].max_message_bytes, 16u << 10);
    ap_config_unref(cfg);
}

static char *print(const struct ap_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(ap_config_print(cfg, f), 0);
    fclose(f);
    return buf;
}

static void test_round_trip(void **state)
{
    struct ap_config *cfg = parse_ok(full);
    char *a = print(cfg);
    ap_config_unref(cfg);
    struct ap_config *again = parse_ok(a);
    char *b = print(again);
    /* The first line names the file, which differs. */
    assert_string_equal(strchr(a, '\n'), strchr(b, '\n'));
    assert_non_null(strstr(a, "    type: logs\n"));
    assert_non_null(strstr(a, "\"order_id\": pseudonymise"));
    assert_non_null(strstr(a, "when_full: drop_newest"));
    ap_config_unref(again);
    free(a);
    free(b);
}

static void test_without_logging_nothing_printed(void **state)
{
    struct ap_config *cfg = parse_ok(HEAD "routes:\n  - upstream: b\n");
    char *a = print(cfg);
    assert_null(strstr(a, "log_sinks"));
    assert_null(strstr(a, "access_log"));
    assert_null(strstr(a, "syslog_listen"));
    assert_null(strstr(a, "type:"));
    assert_false(cfg->access_log.set);
    assert_int_equal(cfg->access_log.worker_queue_bytes, 4u << 20);
    ap_config_unref(cfg);
    free(a);
}

static void test_errors(void **state)
{
    expect_errors(HEAD "log_sinks:\n  a:\n    type: kafka\n    path: x\nroutes:\n  - upstream: b\n",
                  "t.yaml:8:11: log_sinks.a.type: unknown sink type 'kafka' (expected one of: file, "
                  "stdout, syslog, http)\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: file\nroutes:\n  - upstream: b\n",
                  "t.yaml:8:5: log_sinks.a: missing required key 'path' (a file sink needs one)\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: file\n    path: /x\n    url: http://127.0.0.1:1/\nroutes:\n"
                       "  - upstream: b\n",
                  "t.yaml:10:5: log_sinks.a.url: only applies to http sinks\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: http\n    url: ftp://a.local/\nroutes:\n  - upstream: b\n",
                  "t.yaml:9:10: log_sinks.a.url: invalid URL 'ftp://a.local/' (expected "
                  "http[s]://host[:port][/path])\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: syslog\n    address: udp://nope.local:514\nroutes:\n"
                       "  - upstream: b\n",
                  "t.yaml:9:14: log_sinks.a.address: cannot resolve 'nope.local': no such host (test "
                  "resolver)\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: syslog\n    address: unix:dev/log\nroutes:\n"
                       "  - upstream: b\n",
                  "t.yaml:9:14: log_sinks.a.address: invalid address 'unix:dev/log' (a unix socket "
                  "path is absolute and at most 107 characters)\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: stdout\n    when_full: wait\nroutes:\n  - upstream: b\n",
                  "t.yaml:9:16: log_sinks.a.when_full: unknown when_full policy 'wait' (expected one "
                  "of: spool, block, drop_newest)\n");
}

/* https:// URLs (port 443 by default) and their tls: section, which only
 * an https:// URL may have. */
static void test_https_sink(void **state)
{
    struct ap_config *cfg = parse_ok(HEAD "log_sinks:\n  w:\n    type: http\n"
                                          "    url: https://logs.local/in\n"
                                          "    tls: { verify: false, server_name: Ingest.Example }\n"
                                          "  d:\n    type: http\n    url: https://127.0.0.1:8443\n"
                                          "routes:\n  - upstream: b\n");
    const struct ap_config_log_sink *w = &cfg->log_sinks[0];
    assert_true(w->url_tls);
    assert_int_equal(w->url_port, 443);
    assert_string_equal(w->url_authority, "logs.local");
    assert_string_equal(w->url_path, "/in");
    assert_true(w->tls.set);
    assert_false(w->tls.verify);
    assert_string_equal(w->tls.server_name, "ingest.example");
    assert_null(w->tls.ca_file);
    const struct ap_config_log_sink *d = &cfg->log_sinks[1];
    assert_true(d->url_tls);
    assert_int_equal(d->url_port, 8443);
    assert_false(d->tls.set);
    assert_true(d->tls.verify);
    assert_null(d->tls.server_name);
    char *a = print(cfg);
    assert_non_null(strstr(a, "    tls:\n      verify: false\n      server_name: \"ingest.example\"\n"));
    struct ap_config *again = parse_ok(a);
    char *b = print(again);
    assert_string_equal(a, b);
    ap_config_unref(again);
    ap_config_unref(cfg);
    free(a);
    free(b);

    expect_errors(HEAD "log_sinks:\n  a:\n    type: http\n    url: http://127.0.0.1:1/\n"
                       "    tls: { verify: false }\nroutes:\n  - upstream: b\n",
                  "t.yaml:10:10: log_sinks.a.tls: only applies to https:// URLs\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: http\n    url: https://127.0.0.1:1/\n"
                       "    tls:\n      server_name: \"bad name\"\n      verify: maybe\n"
                       "routes:\n  - upstream: b\n",
                  "t.yaml:11:20: log_sinks.a.tls.server_name: invalid server name 'bad name' "
                  "(expected a host name)\n"
                  "t.yaml:12:15: log_sinks.a.tls.verify: expected a boolean (true/false, yes/no, on/off), got 'maybe'\n");
    expect_errors(HEAD "log_sinks:\n  a:\n    type: http\n    url: https://127.0.0.1:1/\n"
                       "    tls: { ca_file: /nonexistent/ca.pem }\nroutes:\n  - upstream: b\n",
                  "t.yaml:10:21: log_sinks.a.tls.ca_file: /nonexistent/ca.pem: cannot open: No such file or "
                  "directory\n");
}

static void test_errors_refs(void **state)
{
    /* The default spool directories differ per sink: no error there. */
    struct ap_config *cfg = parse_ok(HEAD "log_sinks:\n  a: { type: stdout }\n  c: { type: stdout }\n"
                                          "routes:\n  - upstream: b\n");
    ap_config_unref(cfg);
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout, spool: { dir: /s } }\n"
                       "  c: { type: stdout, spool: { dir: /s } }\nroutes:\n  - upstream: b\n",
                  "t.yaml:8:3: log_sinks.c: spool.dir '/s' is also the spool of sink 'a'\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\naccess_log:\n  sinks: [a, zz, a]\n"
                       "routes:\n  - upstream: b\n",
                  "t.yaml:9:14: access_log.sinks[1]: unknown log sink 'zz' (sinks are defined under "
                  "log_sinks)\n"
                  "t.yaml:9:18: access_log.sinks[2]: log sink 'a' is listed twice\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\naccess_log:\n  template: \"$status\"\n"
                       "  sinks: a\nroutes:\n  - upstream: b\n",
                  "t.yaml:9:13: access_log.template: a template applies only to format: text\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\naccess_log:\n  format: text\n"
                       "  template: \"$cookie\"\n  sinks: a\nroutes:\n  - upstream: b\n",
                  "t.yaml:10:13: access_log.template: invalid template: column 1: unknown variable "
                  "'cookie'\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\naccess_log:\n  format: json\n"
                       "routes:\n  - upstream: b\n",
                  "t.yaml:9:3: access_log: missing required key 'sinks'\n");
    /* Routes of type logs. */
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\nroutes:\n  - type: logs\n    upstream: b\n"
                       "    log_sinks: a\n",
                  "t.yaml:10:5: routes[0].upstream: a route of type logs has no upstream: its "
                  "records go to its log_sinks\n");
    expect_errors(HEAD "routes:\n  - type: logs\n",
                  "t.yaml:7:5: routes[0]: missing required key 'log_sinks' (a route of type logs "
                  "needs one)\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\nroutes:\n  - name: x\n    log_sinks: a\n",
                  "t.yaml:9:5: routes[0]: missing required key 'upstream'\n"
                  "t.yaml:10:5: routes[0].log_sinks: only applies to routes of type logs\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\nroutes:\n  - type: logs\n    log_sinks: a\n"
                       "    log_fields: { ip: hash }\n",
                  "t.yaml:11:23: routes[0].log_fields.ip: unknown field action 'hash' (expected one "
                  "of: text, keep, drop, address, pseudonymise, reduce-ua, clean-url)\n");
    expect_errors(HEAD "routes:\n  - type: queue\n    upstream: b\n",
                  "t.yaml:7:11: routes[0].type: unknown route type 'queue' (expected one of: http, "
                  "logs)\n");
    /* Syslog listeners. */
    expect_errors(HEAD "routes:\n  - name: web\n    upstream: b\nsyslog_listen:\n"
                       "  - address: udp://127.0.0.1:514\n    route: web\n"
                       "  - address: tcp://localhost:514\n    route: nope\n",
                  "t.yaml:11:12: syslog_listen[0].route: route 'web' is not of type logs\n"
                  "t.yaml:12:14: syslog_listen[1].address: invalid address 'tcp://localhost:514': not "
                  "a numeric address (host names are not allowed here)\n"
                  "t.yaml:13:12: syslog_listen[1].route: unknown route 'nope'\n");
    expect_errors(HEAD "log_sinks:\n  a: { type: stdout }\nroutes:\n  - { name: l, type: logs, log_sinks: a }\n"
                       "syslog_listen:\n  - { address: \"udp://127.0.0.1:514\", route: l }\n"
                       "  - { address: \"udp://127.0.0.1:514\", route: l }\n",
                  "t.yaml:12:16: syslog_listen[1].address: duplicate syslog listener "
                  "'udp://127.0.0.1:514' (first at 11:5)\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_without_logging_nothing_printed),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_https_sink),
        cmocka_unit_test(test_errors_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

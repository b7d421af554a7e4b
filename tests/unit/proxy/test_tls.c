/* Unit tests of proxy/tls.c without sockets: a client connection (an https
 * upstream) and a server connection (a TLS listener) of the same process
 * are wired back to back through their senders. Certificates are made at
 * test time; the ticket key clock is a fake one. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "anonproxy/config.h"
#include "anonproxy/tls.h"

static char dir[64];

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* ---- certificates ---- */

static EVP_PKEY *ca_key;
static X509 *ca_cert;

static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, int is_ca)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 90L * 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, is_ca ? name : X509_get_subject_name(ca_cert));
    X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, is_ca ? x : ca_cert, x, NULL, NULL, 0);
    const char *exts[][2] = {
        {"basicConstraints", is_ca ? "critical,CA:true" : "critical,CA:false"},
        {"subjectAltName", san},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(exts); i++) {
        if (exts[i][1] == NULL)
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, is_ca ? key : ca_key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *file, X509 *x, EVP_PKEY *k)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (x != NULL)
        assert_int_equal(PEM_write_X509(f, x), 1);
    if (k != NULL)
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

/* Writes STEM.pem and STEM.key: a leaf for `san` signed by the test CA. */
static void make_leaf(const char *stem, const char *cn, const char *san, int rsa)
{
    EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = make_cert(k, cn, san, 0);
    char f[64];
    snprintf(f, sizeof(f), "%s.pem", stem);
    write_pem(f, x, NULL);
    snprintf(f, sizeof(f), "%s.key", stem);
    write_pem(f, NULL, k);
    X509_free(x);
    EVP_PKEY_free(k);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_tls_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    ca_key = EVP_EC_gen("P-256");
    ca_cert = make_cert(ca_key, "test CA", NULL, 1);
    write_pem("ca.pem", ca_cert, NULL);
    make_leaf("a-rsa", "a rsa", "DNS:a.example, DNS:www.a.example", 1);
    make_leaf("a-ec", "a ec", "DNS:a.example, DNS:www.a.example", 0);
    make_leaf("b", "b", "DNS:b.example, DNS:*.b.example", 0);
    make_leaf("a-rsa2", "a rsa too", "DNS:a.example, DNS:www.a.example", 1);
    make_leaf("nodns", "no dns", NULL, 0);
    make_leaf("client", "client", NULL, 0);
    ap_tls__set_clock(fake_clock);
    return 0;
}

static int teardown(void **state)
{
    static const char *const stems[] = { "a-rsa", "a-ec", "b", "a-rsa2", "nodns", "client" };
    char path[128];
    for (size_t i = 0; i < AP_ARRAY_SIZE(stems); i++) {
        snprintf(path, sizeof(path), "%s/%s.pem", dir, stems[i]);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s.key", dir, stems[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    unlink(path);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    ap_tls__set_clock(NULL);
    return rmdir(dir);
}

/* ---- configurations ---- */

/* Replaces every "@" of `tmpl` by the fixture directory, then parses. */
static struct ap_config *config(const char *tmpl)
{
    char yaml[8192], *w = yaml;
    for (const char *q = tmpl; *q; q++) {
        if (*q == '@') {
            size_t n = strlen(dir);
            memcpy(w, dir, n);
            w += n;
        } else {
            *w++ = *q;
        }
        assert_true(w < yaml + sizeof(yaml) - 128);
    }
    *w = '\0';
    char *errors = NULL;
    struct ap_config *cfg = ap_config_parse(yaml, strlen(yaml), "t.yaml", &errors);
    if (cfg == NULL)
        fail_msg("config: %s", errors);
    return cfg;
}

#define LISTEN_AB                                                                         \
    "listen:\n"                                                                           \
    "  - address: 127.0.0.1:8443\n"                                                       \
    "    tls:\n"                                                                          \
    "      ticket_key_rotation: 1m\n"                                                     \
    "      certificates:\n"                                                               \
    "        - {cert: @/a-rsa.pem, key: @/a-rsa.key}\n"                                   \
    "        - {cert: @/a-ec.pem, key: @/a-ec.key}\n"                                     \
    "        - {cert: @/b.pem, key: @/b.key}\n"                                           \
    "routes: [{upstream: a}]\n"

/* Upstreams: "a" checks a.example, "b" b.example, "x" a name nobody serves,
 * "raw" offers no SNI and checks nothing. */
#define UPSTREAMS                                                                         \
    "upstreams:\n"                                                                        \
    "  a: {servers: https://127.0.0.1:8443, tls: {ca_file: @/ca.pem, server_name: a.example}}\n" \
    "  b: {servers: https://127.0.0.1:8443, tls: {ca_file: @/ca.pem, server_name: x.b.example}}\n" \
    "  x: {servers: https://127.0.0.1:8443, tls: {ca_file: @/ca.pem, server_name: zzz.example}}\n" \
    "  raw: {servers: https://127.0.0.1:8443, tls: {verify: false}}\n"

static struct ap_tls *tls_new(const struct ap_config *cfg)
{
    struct ap_tls *t = NULL;
    char *errors = NULL;
    int rc = ap_tls_new(cfg, &t, &errors);
    if (rc != 0)
        fail_msg("ap_tls_new: %s", errors);
    assert_null(errors);
    return t;
}

static const struct ap_config_upstream *upstream(const struct ap_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0)
            return &cfg->upstreams[i];
    fail_msg("no upstream %s", name);
    return NULL;
}

/* ---- a connected pair ---- */

struct wire {
    char buf[256 * 1024];
    size_t len;
    unsigned sends;
};

static int wire_send(void *ctx, const char *p, size_t n)
{
    struct wire *w = ctx;
    assert_true(w->len + n <= sizeof(w->buf));
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    w->sends++;
    return 0;
}

struct pair {
    struct ap_tls_conn *cli, *srv;
    struct wire to_srv, to_cli;
    char got_srv[65536], got_cli[65536];
    size_t nsrv, ncli;
    ssize_t last_srv, last_cli;
};

/* Delivers what is on the wire to `c` and keeps the plaintext. */
static ssize_t deliver(struct ap_tls_conn *c, struct wire *w, char *got, size_t *ngot)
{
    static char tmp[256 * 1024];
    size_t n = w->len;
    memcpy(tmp, w->buf, n);
    w->len = 0;
    ap_tls_feed(c, tmp, n);
    for (;;) {
        char *out;
        ssize_t r = ap_tls_read(c, &out);
        if (r <= 0) {
            ap_tls_feed(c, NULL, 0);
            return r;
        }
        assert_true(*ngot + (size_t)r <= 65536);
        memcpy(got + *ngot, out, (size_t)r);
        *ngot += (size_t)r;
    }
}

/* Runs both sides until nothing moves; returns 0 when both are established. */
static int pump(struct pair *p)
{
    for (int i = 0; i < 20 && (p->to_srv.len > 0 || p->to_cli.len > 0); i++) {
        if (p->to_srv.len > 0 && p->srv != NULL)
            p->last_srv = deliver(p->srv, &p->to_srv, p->got_srv, &p->nsrv);
        if (p->to_cli.len > 0 && p->cli != NULL)
            p->last_cli = deliver(p->cli, &p->to_cli, p->got_cli, &p->ncli);
        if (p->last_srv < 0 || p->last_cli < 0)
            break;
    }
    return ap_tls_is_established(p->cli) && ap_tls_is_established(p->srv) ? 0 : -1;
}

static int connect_pair(struct pair *p, struct ap_tls *t, const struct ap_config *cfg,
                        const char *up)
{
    memset(p, 0, sizeof(*p));
    p->cli = ap_tls_connect(t, upstream(cfg, up), 0, (struct ap_tls_sender){wire_send, &p->to_srv});
    p->srv = ap_tls_accept(t, &cfg->listeners[0], 0, (struct ap_tls_sender){wire_send, &p->to_cli});
    assert_non_null(p->cli);
    assert_non_null(p->srv);
    char *out;
    assert_int_equal(ap_tls_read(p->cli, &out), 0); /* ClientHello */
    assert_true(p->to_srv.len > 0);
    return pump(p);
}

static void pair_free(struct pair *p)
{
    ap_tls_conn_free(p->cli);
    ap_tls_conn_free(p->srv);
    p->cli = p->srv = NULL;
}

/* ---- tests ---- */

static void test_handshake_and_data(void **state)
{
    struct ap_config *cfg = config(LISTEN_AB UPSTREAMS);
    struct ap_tls *t = tls_new(cfg);
    struct pair p;
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    assert_int_equal(ap_tls_is_resumed(p.srv), 0);
    assert_string_equal(ap_tls_strerror(p.srv), "");

    /* Many small buffers leave as one record: one send, 22 bytes of TLS 1.3
     * overhead (header, content type, tag). */
    uv_buf_t bufs[5] = {uv_buf_init("GET / HTTP/1.1\r\n", 16), uv_buf_init("Host: a", 7),
                        uv_buf_init("\r\n", 2), uv_buf_init("X: y\r\n", 6),
                        uv_buf_init("\r\n", 2)};
    unsigned sends = p.to_srv.sends;
    assert_int_equal(ap_tls_writev(p.cli, bufs, 5), 0);
    assert_int_equal(p.to_srv.sends, sends + 1);
    assert_int_equal(p.to_srv.len, 33 + 22);
    pump(&p);
    assert_int_equal(p.nsrv, 33);
    assert_memory_equal(p.got_srv, "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n", 33);

    /* 40000 bytes: three records (16384, 16384, 7232). */
    static char big[40000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    uv_buf_t b = uv_buf_init(big, sizeof(big));
    assert_int_equal(ap_tls_writev(p.srv, &b, 1), 0);
    assert_int_equal(p.to_cli.len, sizeof(big) + 3 * 22);
    pump(&p);
    assert_int_equal(p.ncli, sizeof(big));
    assert_memory_equal(p.got_cli, big, sizeof(big));

    /* close_notify reads as AP_TLS_EOF. */
    ap_tls_shutdown(p.srv);
    ap_tls_idle(p.srv);
    pump(&p);
    assert_int_equal(p.last_cli, AP_TLS_EOF);
    assert_int_equal(ap_tls_writev(p.srv, &b, 1), -ENOTCONN);
    pair_free(&p);

    struct ap_tls_stats st;
    assert_int_equal(ap_tls_listener_stats(t, "127.0.0.1:8443", &st), 0);
    assert_int_equal(st.handshakes, 1);
    assert_int_equal(ap_tls_listener_stats(t, "127.0.0.1:1", &st), -ENOENT);
    ap_tls_free(t);
    ap_config_unref(cfg);
}

static void test_sni(void **state)
{
    struct ap_config *cfg = config(LISTEN_AB UPSTREAMS);
    struct ap_tls *t = tls_new(cfg);
    struct pair p;
    /* Each client checks the name it sends: a wrong certificate would be
     * a verification failure. */
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    pair_free(&p);
    assert_int_equal(connect_pair(&p, t, cfg, "b"), 0); /* x.b.example: the wildcard */
    pair_free(&p);
    /* An unknown name gets the default (a.example): not valid for it. */
    assert_int_not_equal(connect_pair(&p, t, cfg, "x"), 0);
    assert_string_equal(ap_tls_strerror(p.cli), "hostname mismatch");
    pair_free(&p);
    assert_int_equal(connect_pair(&p, t, cfg, "raw"), 0);
    pair_free(&p);
    ap_tls_free(t);
    ap_config_unref(cfg);
}

static void test_resumption_and_ticket_rotation(void **state)
{
    struct ap_config *cfg = config(LISTEN_AB UPSTREAMS);
    struct ap_tls *t = tls_new(cfg);
    struct pair p;
    fake_now = 1000000;
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    assert_int_equal(ap_tls_is_resumed(p.cli), 0);
    pair_free(&p);
    /* Within the period: resumed with the ticket of the last handshake. */
    fake_now += 30000;
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    assert_int_equal(ap_tls_is_resumed(p.cli), 1);
    assert_int_equal(ap_tls_is_resumed(p.srv), 1);
    pair_free(&p);
    /* Over one period after the key was made: still accepted (and a new
     * key encrypts the new ticket). */
    fake_now += 50000;
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    assert_int_equal(ap_tls_is_resumed(p.srv), 1);
    pair_free(&p);
    /* The new ticket is under the new key: fine 59 s later... */
    fake_now += 59000;
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    assert_int_equal(ap_tls_is_resumed(p.srv), 1);
    pair_free(&p);
    /* ...but a ticket whose key was made more than two periods ago is not. */
    fake_now += 125000;
    assert_int_equal(connect_pair(&p, t, cfg, "a"), 0);
    assert_int_equal(ap_tls_is_resumed(p.srv), 0);
    pair_free(&p);
    struct ap_tls_stats st;
    assert_int_equal(ap_tls_listener_stats(t, "127.0.0.1:8443", &st), 0);
    assert_int_equal(st.handshakes, 5);
    assert_int_equal(st.resumed, 3);
    ap_tls_free(t);
    ap_config_unref(cfg);
}

static void test_failures_counted(void **state)
{
    struct ap_config *cfg = config(LISTEN_AB UPSTREAMS);
    struct ap_tls *t = tls_new(cfg);
    struct wire w = {0};
    struct ap_tls_sender snd = {wire_send, &w};
    char *out;

    /* Plain HTTP on a TLS port. */
    struct ap_tls_conn *c = ap_tls_accept(t, &cfg->listeners[0], 0, snd);
    static const char http[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ap_tls_feed(c, http, sizeof(http) - 1);
    assert_int_equal(ap_tls_read(c, &out), -EPROTO);
    assert_int_equal(ap_tls_read(c, &out), -EPROTO); /* stays failed */
    ap_tls_conn_free(c);
    /* Silent until the timeout; closed during the handshake. */
    c = ap_tls_accept(t, &cfg->listeners[0], 0, snd);
    assert_int_equal(ap_tls_read(c, &out), 0);
    assert_int_equal(ap_tls_writev(c, &(uv_buf_t){.base = "x", .len = 1}, 1), -ENOTCONN);
    ap_tls_note_timeout(c);
    assert_string_equal(ap_tls_strerror(c), "handshake timed out");
    ap_tls_conn_free(c);
    c = ap_tls_accept(t, &cfg->listeners[0], 0, snd);
    ap_tls_conn_free(c);
    /* A TLS 1.0 ClientHello (record version 3,1; hello version 3,1). */
    static const unsigned char hello10[] = {
        0x16, 0x03, 0x01, 0x00, 0x2d, 0x01, 0x00, 0x00, 0x29, 0x03, 0x01,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
        0x00, 0x00, 0x02, 0xc0, 0x13, 0x01, 0x00};
    c = ap_tls_accept(t, &cfg->listeners[0], 0, snd);
    ap_tls_feed(c, (const char *)hello10, sizeof(hello10));
    w.len = 0;
    assert_int_equal(ap_tls_read(c, &out), -EPROTO);
    /* The client is told: an alert record went out. */
    assert_true(w.len >= 7);
    assert_int_equal((unsigned char)w.buf[0], 0x15);
    ap_tls_conn_free(c);

    struct ap_tls_stats st;
    assert_int_equal(ap_tls_listener_stats(t, "127.0.0.1:8443", &st), 0);
    assert_int_equal(st.failures[AP_TLS_FAIL_NOT_TLS], 1);
    assert_int_equal(st.failures[AP_TLS_FAIL_TIMEOUT], 1);
    assert_int_equal(st.failures[AP_TLS_FAIL_EOF], 1);
    assert_int_equal(st.failures[AP_TLS_FAIL_PROTOCOL], 1);
    assert_int_equal(st.handshakes, 0);
    ap_tls_free(t);
    ap_config_unref(cfg);
}

static void expect_tls_error(const char *tmpl, const char *needle)
{
    struct ap_config *cfg = config(tmpl);
    struct ap_tls *t = NULL;
    char *errors = NULL;
    assert_int_equal(ap_tls_new(cfg, &t, &errors), -EINVAL);
    assert_null(t);
    assert_non_null(errors);
    if (strstr(errors, needle) == NULL)
        fail_msg("expected '%s' in: %s", needle, errors);
    free(errors);
    ap_config_unref(cfg);
}

static void test_context_errors(void **state)
{
    expect_tls_error("listen:\n"
                     "  - address: 127.0.0.1:8443\n"
                     "    tls:\n"
                     "      certificates:\n"
                     "        - {cert: @/a-rsa.pem, key: @/a-rsa.key}\n"
                     "        - {cert: @/a-rsa2.pem, key: @/a-rsa2.key}\n"
                     "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                     "t.yaml:6:11: listen[0].tls.certificates[1]: ");
    expect_tls_error("listen:\n"
                     "  - address: 127.0.0.1:8443\n"
                     "    tls:\n"
                     "      certificates:\n"
                     "        - {cert: @/a-rsa.pem, key: @/a-rsa.key}\n"
                     "        - {cert: @/a-rsa2.pem, key: @/a-rsa2.key}\n"
                     "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                     "a-rsa2.pem: a second RSA certificate for the same names as "
                     "certificates[0]");
    /* Names from the certificates: www.a.example in two different groups. */
    expect_tls_error("listen:\n"
                     "  - address: 127.0.0.1:8443\n"
                     "    tls:\n"
                     "      certificates:\n"
                     "        - {cert: @/a-rsa.pem, key: @/a-rsa.key}\n"
                     "        - {cert: @/a-ec.pem, key: @/a-ec.key, names: [www.a.example]}\n"
                     "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                     "name 'www.a.example' is already served by certificates[0]");
    expect_tls_error("listen:\n"
                     "  - address: 127.0.0.1:8443\n"
                     "    tls:\n"
                     "      certificates:\n"
                     "        - {cert: @/a-ec.pem, key: @/a-ec.key}\n"
                     "        - {cert: @/nodns.pem, key: @/nodns.key}\n"
                     "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n",
                     "nodns.pem: no server name");
    /* A certificate without DNS names is fine as the default. */
    struct ap_config *cfg = config("listen:\n"
                                   "  - address: 127.0.0.1:8443\n"
                                   "    tls: {certificates: [{cert: @/nodns.pem, key: @/nodns.key}]}\n"
                                   "upstreams: {u: {servers: https://127.0.0.1:8443, tls: {verify: off}}}\n"
                                   "routes: [{upstream: u}]\n");
    struct ap_tls *t = tls_new(cfg);
    struct pair p;
    assert_int_equal(connect_pair(&p, t, cfg, "u"), 0);
    pair_free(&p);
    ap_tls_free(t);
    ap_config_unref(cfg);
}

static void test_client_certificate_and_reload(void **state)
{
    struct ap_config *cfg = config(LISTEN_AB UPSTREAMS
                                   "  m: {servers: https://127.0.0.1:8443, tls: {ca_file: @/ca.pem, "
                                   "server_name: b.example, client_cert: @/client.pem, client_key: "
                                   "@/client.key}}\n");
    struct ap_tls *t = tls_new(cfg);
    struct pair old;
    assert_int_equal(connect_pair(&old, t, cfg, "m"), 0);

    /* Reload without b.example: new handshakes for it get the default
     * certificate (a.example) and fail the client's check... */
    struct ap_config *cfg2 = config("listen:\n"
                                    "  - address: 127.0.0.1:8443\n"
                                    "    tls:\n"
                                    "      certificates:\n"
                                    "        - {cert: @/a-ec.pem, key: @/a-ec.key}\n"
                                    "routes: [{upstream: a}]\n" UPSTREAMS);
    char *errors = NULL;
    assert_int_equal(ap_tls_reload(t, cfg2, &errors), 0);
    assert_null(errors);
    struct pair p;
    assert_int_not_equal(connect_pair(&p, t, cfg2, "b"), 0);
    assert_string_equal(ap_tls_strerror(p.cli), "hostname mismatch");
    pair_free(&p);
    assert_int_equal(connect_pair(&p, t, cfg2, "a"), 0);
    pair_free(&p);
    /* ...the open connection keeps working on its own. */
    uv_buf_t b = uv_buf_init("ping", 4);
    assert_int_equal(ap_tls_writev(old.cli, &b, 1), 0);
    pump(&old);
    assert_int_equal(old.nsrv, 4);
    pair_free(&old);

    /* A reload that fails changes nothing. */
    struct ap_config *bad = config("listen:\n"
                                   "  - address: 127.0.0.1:8443\n"
                                   "    tls:\n"
                                   "      certificates:\n"
                                   "        - {cert: @/a-rsa.pem, key: @/a-rsa.key}\n"
                                   "        - {cert: @/a-rsa2.pem, key: @/a-rsa2.key}\n"
                                   "upstreams: {u: {file: x}}\nroutes: [{upstream: u}]\n");
    assert_int_equal(ap_tls_reload(t, bad, &errors), -EINVAL);
    assert_non_null(errors);
    free(errors);
    assert_int_not_equal(connect_pair(&p, t, cfg2, "b"), 0);
    pair_free(&p);
    assert_int_equal(connect_pair(&p, t, cfg2, "a"), 0);
    pair_free(&p);
    /* The first configuration again: b.example is served again. */
    struct ap_config *cfg3 = config(LISTEN_AB UPSTREAMS);
    assert_int_equal(ap_tls_reload(t, cfg3, &errors), 0);
    assert_int_equal(connect_pair(&p, t, cfg3, "b"), 0);
    pair_free(&p);
    ap_config_unref(cfg3);
    ap_config_unref(bad);
    ap_tls_free(t);
    ap_config_unref(cfg);
    ap_config_unref(cfg2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_resumption_and_ticket_rotation),
        cmocka_unit_test(test_failures_counted),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test(test_client_certificate_and_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

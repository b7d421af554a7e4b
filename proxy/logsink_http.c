/* HTTP sink: batches of NDJSON lines POSTed to a URL over HTTP/1.1 with
 * keep-alive, gzip optional. The answer decides: 2xx delivered; 408, 429
 * and 5xx but 501 (and no answer at all: refused, reset, timeout) retried
 * with back-off, honouring Retry-After; anything else rejected for good.
 * One request at a time, so batches arrive in order.
 *
 * https:// URLs speak TLS 1.2 or later through OpenSSL memory BIOs on the
 * logger loop: libuv still does every socket read and write, the SSL object
 * only turns ciphertext into plaintext and back. The server certificate is
 * checked against the system CAs (or tls.ca_file) and the URL's host (or
 * tls.server_name); a failed check is a failed attempt like a refused
 * connection, so the batch is retried and spooled, never sent in clear.
 * proxy/tls.c is not used: its contexts belong to upstreams and are shared
 * by the workers, while this sink needs one context of its own. */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "anonproxy/arena.h"
#include "anonproxy/buf.h"
#include "anonproxy/gzip.h"
#include "anonproxy/log.h"
#include "logger-int.h"

#ifndef ANONPROXY_VERSION
#define ANONPROXY_VERSION "0"
#endif

struct hconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct ap_logsink *s; /* NULL once abandoned */
    llhttp_t parser;
    int connected;
    int reused;           /* carried an earlier request */
    int got_bytes;        /* response bytes seen for the current request */
    SSL *ssl;             /* https only */
    BIO *rbio;            /* ciphertext read from the socket, for OpenSSL */
    BIO *wbio;            /* ciphertext OpenSSL produced, for the socket */
    int handshaken;
};

/* A ciphertext write: the bytes live until libuv is done with them. */
struct twrite {
    uv_write_t req;
    struct hconn *c;
    size_t len;
    char data[];
};

struct httpsink {
    struct hconn *conn;
    uv_timer_t timer;
    llhttp_settings_t settings;
    struct ap_buf head;
    struct ap_buf body;
    struct ap_arena arena;   /* gzip output */
    const char *send_body;
    size_t send_len;
    int status;
    uint64_t retry_after_ms;
    int in_retry_after;      /* the header being read is Retry-After */
    char hname[16];
    size_t hname_len;
    int complete;
    int resent;              /* the batch was sent again on a fresh connection */
    SSL_CTX *ctx;            /* https only */
};

static void start_request(struct ap_logsink *s);

static void on_conn_closed(uv_handle_t *h)
{
    struct hconn *c = h->data;
    SSL_free(c->ssl); /* frees both BIOs */
    free(c);
}

static void drop_conn(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    struct hconn *c = hs->conn;
    if (c == NULL)
        return;
    hs->conn = NULL;
    c->s = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void finish(struct ap_logsink *s, enum ap_logsink_result r, uint64_t retry_after)
{
    struct httpsink *hs = s->impl;
    uv_timer_stop(&hs->timer);
    ap_arena_reset(&hs->arena);
    ap_logsink_done(s, r, 0, retry_after);
}

static void fail(struct ap_logsink *s, const char *why)
{
    ap_logsink_error(s, "POST %s: %s", s->cfg->url, why);
    drop_conn(s);
    finish(s, AP_LOGSINK_RETRY, 0);
}

/* ---- response parsing ---- */

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct httpsink *hs = ((struct ap_logsink *)p->data)->impl;
    hs->in_retry_after = 0;
    if (hs->hname_len + len < sizeof(hs->hname)) {
        memcpy(hs->hname + hs->hname_len, at, len);
        hs->hname_len += len;
    } else {
        hs->hname_len = sizeof(hs->hname);
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct httpsink *hs = ((struct ap_logsink *)p->data)->impl;
    if (hs->hname_len != 0) {
        hs->in_retry_after = hs->hname_len == 11 && strncasecmp(hs->hname, "retry-after", 11) == 0;
        hs->hname_len = 0;
        if (hs->in_retry_after)
            hs->retry_after_ms = 0;
    }
    if (!hs->in_retry_after)
        return 0;
    /* Delay-seconds only; an HTTP date is ignored (back-off applies). */
    for (size_t i = 0; i < len; i++) {
        if (at[i] < '0' || at[i] > '9') {
            if (at[i] != ' ' && at[i] != '\t')
                hs->retry_after_ms = 0;
            continue;
        }
        if (hs->retry_after_ms < 86400000ull)
            hs->retry_after_ms = hs->retry_after_ms * 10 + (uint64_t)(at[i] - '0') * 1000;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct httpsink *hs = ((struct ap_logsink *)p->data)->impl;
    hs->hname_len = 0;
    hs->status = llhttp_get_status_code(p);
    /* Interim responses (100 Continue) are skipped. */
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct httpsink *hs = ((struct ap_logsink *)p->data)->impl;
    if (hs->status >= 100 && hs->status < 200)
        return 0;
    hs->complete = 1;
    return HPE_PAUSED;
}

static enum ap_logsink_result classify(int status)
{
    if (status >= 200 && status < 300)
        return AP_LOGSINK_OK;
    if (status == 408 || status == 429 || (status >= 500 && status != 501))
        return AP_LOGSINK_RETRY;
    return AP_LOGSINK_REJECT;
}

static void on_response(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    struct hconn *c = hs->conn;
    int keep = llhttp_should_keep_alive(&c->parser);
    enum ap_logsink_result r = classify(hs->status);
    if (r != AP_LOGSINK_OK) {
        char why[64];
        snprintf(why, sizeof(why), "answered %d", hs->status);
        ap_logsink_error(s, "POST %s: %s%s", s->cfg->url, why,
                         r == AP_LOGSINK_REJECT ? " (batch rejected, not retried)" : "");
    }
    if (!keep || r == AP_LOGSINK_RETRY)
        drop_conn(s);
    else
        c->reused = 1;
    finish(s, r, r == AP_LOGSINK_RETRY ? hs->retry_after_ms : 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[16384];
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

/* Response bytes (decrypted for https). Returns 1 when the request ended,
 * answered or failed. */
static int on_response_bytes(struct ap_logsink *s, struct hconn *c, const char *p, size_t n)
{
    struct httpsink *hs = s->impl;
    c->got_bytes = 1;
    llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
    if (e == HPE_PAUSED || hs->complete) {
        on_response(s);
        return 1;
    }
    if (e != HPE_OK) {
        fail(s, "malformed response");
        return 1;
    }
    return 0;
}

/* The connection ended (UV_EOF, close_notify or a libuv error) while a
 * request was in flight. */
static void on_conn_end(struct ap_logsink *s, struct hconn *c, ssize_t err)
{
    struct httpsink *hs = s->impl;
    if (err == UV_EOF && llhttp_finish(&c->parser) == HPE_OK && hs->complete) {
        on_response(s);
        return;
    }
    if (c->reused && !c->got_bytes && !hs->resent) {
        /* A kept-alive connection the server had closed: the batch was
         * not read. Send it again, once, on a fresh connection. */
        hs->resent = 1;
        drop_conn(s);
        start_request(s);
        return;
    }
    fail(s, err == UV_EOF ? "connection closed before the response" : uv_strerror((int)err));
}

/* ---- TLS (https:// URLs) ---- */

static void on_write_status(struct hconn *c, int status);

static void on_tls_write(uv_write_t *req, int status)
{
    struct twrite *w = req->data;
    struct hconn *c = w->c;
    free(w);
    on_write_status(c, status);
}

/* Sends what OpenSSL wrote into the write BIO. Returns 0 or a negative
 * libuv error. */
static int tls_flush(struct hconn *c)
{
    size_t pending = BIO_ctrl_pending(c->wbio);
    if (pending == 0)
        return 0;
    if (pending > INT_MAX)
        return UV_E2BIG;
    struct twrite *w = malloc(sizeof(*w) + pending);
    if (w == NULL)
        return UV_ENOMEM;
    if (BIO_read(c->wbio, w->data, (int)pending) != (int)pending) {
        free(w);
        return UV_EIO;
    }
    w->c = c;
    w->len = pending;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)pending);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write);
    if (rc != 0)
        free(w);
    return rc;
}

/* Names why a TLS call failed, into `why`: the certificate check first,
 * since that is the failure an operator can fix. */
static void tls_why(struct hconn *c, char *why, size_t size)
{
    long v = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK)
        snprintf(why, size, "TLS handshake failed: certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (e != 0 && ERR_reason_error_string(e) != NULL)
        snprintf(why, size, "TLS %s failed: %s", c->handshaken ? "session" : "handshake",
                 ERR_reason_error_string(e));
    else
        snprintf(why, size, "TLS %s failed: connection closed",
                 c->handshaken ? "session" : "handshake");
    ERR_clear_error();
}

static void tls_fail(struct ap_logsink *s, struct hconn *c)
{
    char why[256];
    tls_why(c, why, sizeof(why));
    fail(s, why);
}

static int is_ip_literal(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* Creates the connection's SSL object and sends the ClientHello. SNI and
 * the name checked are tls.server_name, else the URL's host; an IP
 * literal sends no SNI (RFC 6066) and is checked against the
 * certificate's IP addresses. Returns 0 or a negative error. */
static int tls_start(struct ap_logsink *s, struct hconn *c)
{
    struct httpsink *hs = s->impl;
    const struct ap_config_log_sink *k = s->cfg;
    c->ssl = SSL_new(hs->ctx);
    if (c->ssl == NULL)
        return UV_ENOMEM;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return UV_ENOMEM;
    }
    /* An empty read BIO means "more to come", not end of stream. */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    const char *name = k->tls.server_name != NULL ? k->tls.server_name : k->url_host;
    int ip = k->tls.server_name == NULL && is_ip_literal(name);
    if (!ip && SSL_set_tlsext_host_name(c->ssl, name) != 1)
        return UV_ENOMEM;
    if (k->tls.verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : X509_VERIFY_PARAM_set1_host(vp, name, 0);
        if (ok != 1)
            return UV_ENOMEM;
    }
    SSL_set_connect_state(c->ssl);
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
        return UV_EPROTO;
    return tls_flush(c);
}

static void send_request(struct ap_logsink *s);

/* Ciphertext from the socket: runs the handshake, sends the request once
 * it completes, then decrypts the response. */
static void tls_input(struct ap_logsink *s, struct hconn *c, const char *p, size_t n)
{
    if (BIO_write(c->rbio, p, (int)n) != (int)n) {
        fail(s, "out of memory");
        return;
    }
    if (!c->handshaken) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        int rc = tls_flush(c);
        if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
            tls_fail(s, c);
            return;
        }
        if (rc != 0) {
            fail(s, uv_strerror(rc));
            return;
        }
        if (e == SSL_ERROR_WANT_READ)
            return;
        c->handshaken = 1;
        send_request(s);
        if (c->s == NULL)
            return;
    }
    for (;;) {
        char plain[16384];
        ERR_clear_error();
        int r = SSL_read(c->ssl, plain, (int)sizeof(plain));
        if (r > 0) {
            if (on_response_bytes(s, c, plain, (size_t)r))
                return;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            /* A key update may have produced an answer. */
            int rc = tls_flush(c);
            if (rc != 0)
                fail(s, uv_strerror(rc));
            return;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            on_conn_end(s, c, UV_EOF);
            return;
        }
        tls_fail(s, c);
        return;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *c = st->data;
    struct ap_logsink *s = c->s;
    if (s == NULL || nread == 0)
        return;
    if (s->inflight == 0) {
        /* Idle keep-alive connection: the server closed it (or talks out
         * of turn). Drop it; the next batch opens a new one. */
        drop_conn(s);
        return;
    }
    if (nread < 0)
        on_conn_end(s, c, nread);
    else if (c->ssl != NULL)
        tls_input(s, c, buf->base, (size_t)nread);
    else
        on_response_bytes(s, c, buf->base, (size_t)nread);
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

/* Builds the https context: TLS 1.2 or later, the peer checked against
 * tls.ca_file or the system CAs unless tls.verify is false, and the client
 * certificate when one is configured. Returns 0 or -EINVAL (logged). */

static int tls_ctx_new(struct ap_logsink *s, SSL_CTX **out)
{
    const struct ap_config_upstream_tls *t = &s->cfg->tls;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return -ENOMEM;
    const char *what = NULL;
    /* Encrypted keys are refused rather than prompted for on a terminal. */
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        what = "TLS 1.2";
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (what == NULL && t->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = t->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL)
                                    : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1)
            what = t->ca_file != NULL ? t->ca_file : "the system CAs";
    } else if (what == NULL) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        ap_log(AP_LOG_WARN, "log sink %s: tls.verify is off: the server's certificate is not checked",
               s->cfg->name);
    }
    if (what == NULL && t->client_cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, t->client_cert) != 1)
            what = t->client_cert;
        else if (SSL_CTX_use_PrivateKey_file(ctx, t->client_key, SSL_FILETYPE_PEM) != 1 ||
                 SSL_CTX_check_private_key(ctx) != 1)
            what = t->client_key;
    }
    if (what != NULL) {
        unsigned long e = ERR_peek_last_error();
        const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
        ap_log(AP_LOG_ERROR, "log sink %s: cannot load %s: %s", s->cfg->name, what,
               reason != NULL ? reason : "unknown error");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    *out = ctx;
    return 0;
}

/* ---- sending ---- */

static void on_write_status(struct hconn *c, int status)
{
    struct ap_logsink *s = c->s;
    if (s == NULL || status == 0)
        return;
    struct httpsink *hs = s->impl;
    if (c->reused && !hs->resent) {
        hs->resent = 1;
        drop_conn(s);
        start_request(s);
        return;
    }
    fail(s, uv_strerror(status));
}

static void on_write(uv_write_t *req, int status)
{
    on_write_status(req->data, status);
}

static void send_request(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    struct hconn *c = hs->conn;
    llhttp_init(&c->parser, HTTP_RESPONSE, &hs->settings);
    c->parser.data = s;
    c->got_bytes = 0;
    hs->status = 0;
    hs->complete = 0;
    hs->retry_after_ms = 0;
    hs->hname_len = 0;
    hs->in_retry_after = 0;
    if (c->ssl != NULL) {
        /* The write BIO grows as needed, so SSL_write takes everything. */
        ERR_clear_error();
        if (SSL_write(c->ssl, hs->head.data, (int)hs->head.len) <= 0 ||
            (hs->send_len > 0 && SSL_write(c->ssl, hs->send_body, (int)hs->send_len) <= 0)) {
            tls_fail(s, c);
            return;
        }
        int rc = tls_flush(c);
        if (rc != 0)
            fail(s, uv_strerror(rc));
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(hs->head.data, (unsigned)hs->head.len),
                        uv_buf_init((char *)hs->send_body, (unsigned)hs->send_len)};
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, 2, on_write);
    if (rc != 0)
        fail(s, uv_strerror(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hconn *c = req->data;
    struct ap_logsink *s = c->s;
    if (s == NULL)
        return;
    struct httpsink *hs = s->impl;
    if (status != 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
        fail(s, why);
        return;
    }
    c->connected = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (hs->ctx == NULL) {
        send_request(s);
        return;
    }
    /* https: the request goes out once the handshake completed. */
    int rc = tls_start(s, c);
    if (rc == UV_EPROTO)
        tls_fail(s, c);
    else if (rc != 0)
        fail(s, uv_strerror(rc));
}

static void start_request(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    if (hs->conn != NULL && hs->conn->connected && (hs->conn->ssl == NULL || hs->conn->handshaken)) {
        send_request(s);
        return;
    }
    drop_conn(s);
    struct hconn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        finish(s, AP_LOGSINK_BUSY, 0);
        return;
    }
    c->s = s;
    uv_tcp_init(&s->lg->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    hs->conn = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&s->cfg->addr, on_connect);
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(rc));
        fail(s, why);
    }
}

static void on_timeout(uv_timer_t *t)
{
    struct ap_logsink *s = t->data;
    char why[96];
    snprintf(why, sizeof(why), "no response within %llu ms", (unsigned long long)s->cfg->timeout_ms);
    fail(s, why);
}

static void http_deliver(struct ap_logsink *s, struct ap_lrec *first, size_t n)
{
    struct httpsink *hs = s->impl;
    ap_buf_reset(&hs->body);
    struct ap_lrec *r = first;
    for (size_t i = 0; i < n; i++, r = r->next) {
        if (ap_buf_append(&hs->body, r->data, r->len) != 0 || ap_buf_append(&hs->body, "\n", 1) != 0) {
            ap_logsink_done(s, AP_LOGSINK_BUSY, 0, 0);
            return;
        }
    }
    hs->send_body = hs->body.data;
    hs->send_len = hs->body.len;
    if (s->cfg->gzip) {
        char *z = NULL;
        size_t zl = 0;
        if (ap_gzip_deflate(&hs->arena, AP_GZIP_GZIP, 6, hs->body.data, hs->body.len, &z, &zl) == 0) {
            hs->send_body = z;
            hs->send_len = zl;
        } else {
            ap_arena_reset(&hs->arena);
            ap_logsink_done(s, AP_LOGSINK_BUSY, 0, 0);
            return;
        }
    }
    ap_buf_reset(&hs->head);
    int rc = ap_buf_appendf(&hs->head,
                            "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: anonproxy/" ANONPROXY_VERSION
                            "\r\nContent-Type: application/x-ndjson\r\nContent-Length: %zu\r\n%s",
                            s->cfg->url_path, s->cfg->url_authority, hs->send_len,
                            s->cfg->gzip ? "Content-Encoding: gzip\r\n" : "");
    for (size_t i = 0; i < s->cfg->nheaders && rc == 0; i++) {
        rc = ap_buf_append(&hs->head, s->cfg->headers[i], strlen(s->cfg->headers[i]));
        rc = rc ? rc : ap_buf_append(&hs->head, "\r\n", 2);
    }
    rc = rc ? rc : ap_buf_append(&hs->head, "\r\n", 2);
    if (rc != 0) {
        ap_arena_reset(&hs->arena);
        ap_logsink_done(s, AP_LOGSINK_BUSY, 0, 0);
        return;
    }
    hs->resent = 0;
    uv_timer_start(&hs->timer, on_timeout, s->cfg->timeout_ms, 0);
    start_request(s);
}

static int http_init(struct ap_logsink *s)
{
    struct httpsink *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return -ENOMEM;
    s->impl = hs;
    if (s->cfg->url_tls) {
        int rc = tls_ctx_new(s, &hs->ctx);
        if (rc != 0) {
            free(hs);
            s->impl = NULL;
            return rc;
        }
    }
    llhttp_settings_init(&hs->settings);
    hs->settings.on_header_field = on_header_field;
    hs->settings.on_header_value = on_header_value;
    hs->settings.on_headers_complete = on_headers_complete;
    hs->settings.on_message_complete = on_message_complete;
    ap_buf_init(&hs->head, 64u * 1024u);
    ap_buf_init(&hs->body, s->cfg->batch_max_bytes + 2u * 1024u * 1024u);
    ap_arena_init(&hs->arena, 64u * 1024u, 0);
    uv_timer_init(&s->lg->loop, &hs->timer);
    hs->timer.data = s;
    return 0;
}

static void http_abort(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    if (hs == NULL)
        return;
    uv_timer_stop(&hs->timer);
    drop_conn(s);
}

static void http_close(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    if (hs == NULL)
        return;
    drop_conn(s);
    uv_close((uv_handle_t *)&hs->timer, ap_logsink_on_closed);
}

static void http_destroy(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    if (hs == NULL)
        return;
    ap_buf_free(&hs->head);
    ap_buf_free(&hs->body);
    ap_arena_free(&hs->arena);
    SSL_CTX_free(hs->ctx);
    free(hs);
    s->impl = NULL;
}

const struct ap_logsink_ops ap_logsink_http_ops = {
    .name = "http",
    .init = http_init,
    .deliver = http_deliver,
    .abort = http_abort,
    .close = http_close,
    .destroy = http_destroy,
    .batching = 1,
};

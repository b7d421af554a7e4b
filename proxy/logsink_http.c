/* HTTP sink: batches of NDJSON lines POSTed to a URL over HTTP/1.1 with
 * keep-alive, gzip optional. The answer decides: 2xx delivered; 408, 429
 * and 5xx but 501 (and no answer at all: refused, reset, timeout) retried
 * with back-off, honouring Retry-After; anything else rejected for good.
 * One request at a time, so batches arrive in order. Plain http:// only:
 * https needs TLS client support that this sink does not have yet. */
#include "anonproxy/common.h"

#include <errno.h>
#include <llhttp.h>

#include "anonproxy/arena.h"
#include "anonproxy/buf.h"
#include "anonproxy/gzip.h"
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
};

static void start_request(struct ap_logsink *s);

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
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

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *c = st->data;
    struct ap_logsink *s = c->s;
    if (s == NULL || nread == 0)
        return;
    struct httpsink *hs = s->impl;
    if (s->inflight == 0) {
        /* Idle keep-alive connection: the server closed it (or talks out
         * of turn). Drop it; the next batch opens a new one. */
        drop_conn(s);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && llhttp_finish(&c->parser) == HPE_OK && hs->complete) {
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
        fail(s, nread == UV_EOF ? "connection closed before the response" : uv_strerror((int)nread));
        return;
    }
    c->got_bytes = 1;
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (e == HPE_PAUSED || hs->complete) {
        on_response(s);
        return;
    }
    if (e != HPE_OK)
        fail(s, "malformed response");
}

/* ---- sending ---- */

static void on_write(uv_write_t *req, int status)
{
    struct hconn *c = req->data;
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
    if (status != 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
        fail(s, why);
        return;
    }
    c->connected = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    send_request(s);
}

static void start_request(struct ap_logsink *s)
{
    struct httpsink *hs = s->impl;
    if (hs->conn != NULL && hs->conn->connected) {
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

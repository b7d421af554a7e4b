/* Upstream side of an exchange: server choice (round robin with passive
 * failure marking), per-worker keep-alive pools, request serialisation,
 * response parsing with llhttp and re-serialisation to the client.
 *
 * The request is re-serialised from the parsed head, never copied: Host and
 * framing are written by us, hop-by-hop headers never pass. Responses are
 * re-serialised the same way. */
#include "anonproxy/common.h"

#include <errno.h>
#include <inttypes.h>

#include "anonproxy/buf.h"
#include "anonproxy/head.h"
#include "anonproxy/log.h"
#include "anonproxy/tls.h"
#include "net.h"

#define RESP_HEAD_LIMIT (64 * 1024)

struct upwreq {
    uv_write_t req;
    struct ap_upconn *uc;
    struct ap_chunk *owned; /* chunks freed with the request */
    unsigned nbufs;
    char sizes[][24];       /* chunk-size lines; the raw bytes of a TLS write */
};

static void up_close(struct ap_upconn *uc);
static void up_fail(struct ap_exchange *ex, int status, const char *reason);
static void up_acquire(struct ap_exchange *ex, int fresh);
static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_up_timer(uv_timer_t *t);

/* ---- chunk queues ---- */

int ap_chunkq_append(struct ap_chunkq *q, const char *p, size_t n)
{
    while (n > 0) {
        struct ap_chunk *t = q->tail;
        if (t == NULL || t->len == t->cap) {
            /* Most analytics bodies are small: the first chunk fits them
             * closely; a body that keeps coming gets 16 KiB chunks. */
            size_t want = q->head == NULL ? 2048 : 16384;
            size_t cap = n > want ? n : want;
            t = malloc(sizeof(*t) + cap);
            if (t == NULL)
                return -ENOMEM;
            t->next = NULL;
            t->len = 0;
            t->cap = cap;
            if (q->tail)
                q->tail->next = t;
            else
                q->head = t;
            q->tail = t;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, p, k);
        t->len += k;
        q->bytes += k;
        p += k;
        n -= k;
    }
    return 0;
}

void ap_chunkq_free(struct ap_chunkq *q)
{
    struct ap_chunk *c = q->head;
    while (c != NULL) {
        struct ap_chunk *next = c->next;
        free(c);
        c = next;
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static void chunk_list_free(struct ap_chunk *c)
{
    while (c != NULL) {
        struct ap_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* ---- pools and server choice ---- */

static uint64_t now_ms(struct ap_worker *w)
{
    return uv_now(&w->loop);
}

static void pool_unlink(struct ap_upconn *uc)
{
    struct ap_pool *p = uc->pool;
    if (!uc->idle)
        return;
    if (uc->prev_idle)
        uc->prev_idle->next_idle = uc->next_idle;
    else
        p->idle = uc->next_idle;
    if (uc->next_idle)
        uc->next_idle->prev_idle = uc->prev_idle;
    uc->next_idle = uc->prev_idle = NULL;
    uc->idle = 0;
    p->nidle--;
}

static void mark_failure(struct ap_pool *p, struct ap_worker *w, const char *why)
{
    p->fails++;
    if (p->fails >= (p->up->max_fails ? p->up->max_fails : 1)) {
        p->down_until = now_ms(w) + p->up->fail_timeout_ms;
        ap_log(AP_LOG_WARN, "upstream %s server %s marked down for %" PRIu64 " ms: %s",
               p->up->name, p->srv->url, p->up->fail_timeout_ms, why);
    }
}

static struct ap_pool *pick_pool(struct ap_exchange *ex, int *all_down)
{
    struct ap_upstream_state *us = ex->ups;
    size_t n = us->up->nservers;
    uint64_t now = now_ms(ex->w);
    *all_down = 1;
    for (size_t i = 0; i < n; i++) {
        size_t idx = (us->rr + i) % n;
        struct ap_pool *p = &us->pools[idx];
        if (p->down_until > now)
            continue;
        *all_down = 0;
        if (idx < 32 && (ex->tried_servers & (1u << idx)))
            continue;
        us->rr = (unsigned)(idx + 1);
        if (idx < 32)
            ex->tried_servers |= 1u << idx;
        return p;
    }
    return NULL;
}

/* ---- connection handles ---- */

static void on_up_handle_closed(uv_handle_t *h)
{
    struct ap_upconn *uc = h->data;
    if (--uc->handles_open > 0)
        return;
    struct ap_worker *w = uc->w;
    ap_buf_free(&uc->hbuf);
    free(uc->hdrs);
    ap_tls_conn_free(uc->tls);
    uc->magic = 0;
    free(uc);
    w->nupconns--;
    if (w->draining)
        uv_async_send(&w->wakeup);
}

static void up_close(struct ap_upconn *uc)
{
    if (uc->closing)
        return;
    uc->closing = 1;
    pool_unlink(uc);
    if (uc->ex != NULL && uc->ex->uc == uc)
        uc->ex->uc = NULL;
    uc->ex = NULL;
    uv_close((uv_handle_t *)&uc->tcp, on_up_handle_closed);
    uv_close((uv_handle_t *)&uc->timer, on_up_handle_closed);
}

static void on_up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ap_upconn *uc = h->data;
    buf->base = uc->w->readbuf;
    buf->len = sizeof(uc->w->readbuf);
}

static void up_read_start(struct ap_upconn *uc)
{
    if (uc->reading || uc->read_paused || uc->closing)
        return;
    if (uv_read_start((uv_stream_t *)&uc->tcp, on_up_alloc, on_up_read) == 0)
        uc->reading = 1;
}

static void up_read_stop(struct ap_upconn *uc)
{
    if (!uc->reading)
        return;
    uv_read_stop((uv_stream_t *)&uc->tcp);
    uc->reading = 0;
}

/* ---- response parsing ---- */

static int resp_on_message_begin(llhttp_t *p)
{
    struct ap_upconn *uc = p->data;
    ap_buf_reset(&uc->hbuf);
    uc->nhdrs = 0;
    uc->in_value = 0;
    return 0;
}

static int resp_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct ap_upconn *uc = p->data;
    if (uc->nhdrs == 0 || uc->in_value) {
        if (uc->nhdrs == uc->caphdrs) {
            size_t nc = uc->caphdrs ? uc->caphdrs * 2 : 32;
            if (nc > 512)
                return HPE_USER;
            struct ap_resp_hdr *nh = realloc(uc->hdrs, nc * sizeof(*nh));
            if (nh == NULL)
                return HPE_USER;
            uc->hdrs = nh;
            uc->caphdrs = nc;
        }
        uc->hdrs[uc->nhdrs++] = (struct ap_resp_hdr){uc->hbuf.len, 0, 0, 0};
        uc->in_value = 0;
    }
    if (ap_buf_append(&uc->hbuf, at, len) != 0)
        return HPE_USER;
    uc->hdrs[uc->nhdrs - 1].name_len += len;
    return 0;
}

static int resp_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct ap_upconn *uc = p->data;
    struct ap_resp_hdr *h = &uc->hdrs[uc->nhdrs - 1];
    if (!uc->in_value) {
        h->value_off = uc->hbuf.len;
        uc->in_value = 1;
    }
    if (ap_buf_append(&uc->hbuf, at, len) != 0)
        return HPE_USER;
    h->value_len += len;
    return 0;
}

static struct ap_slice hdr_name(struct ap_upconn *uc, size_t i)
{
    return (struct ap_slice){uc->hbuf.data + uc->hdrs[i].name_off, uc->hdrs[i].name_len};
}

static struct ap_slice hdr_value(struct ap_upconn *uc, size_t i)
{
    struct ap_slice v = {uc->hbuf.data + uc->hdrs[i].value_off, uc->hdrs[i].value_len};
    while (v.len > 0 && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* True when header `i` is named by a Connection header of the response. */
static int named_by_connection(struct ap_upconn *uc, struct ap_slice name)
{
    for (size_t k = 0; k < uc->nhdrs; k++) {
        if (!ap_slice_eq_ci(hdr_name(uc, k), "connection"))
            continue;
        struct ap_slice v = hdr_value(uc, k);
        size_t s = 0;
        for (size_t i = 0; i <= v.len; i++) {
            if (i < v.len && v.p[i] != ',')
                continue;
            size_t a = s, b = i;
            while (a < b && (v.p[a] == ' ' || v.p[a] == '\t'))
                a++;
            while (b > a && (v.p[b - 1] == ' ' || v.p[b - 1] == '\t'))
                b--;
            if (b - a == name.len && b > a) {
                size_t j = 0;
                while (j < name.len && ((v.p[a + j] | 0x20) == (name.p[j] | 0x20)))
                    j++;
                if (j == name.len)
                    return 1;
            }
            s = i + 1;
        }
    }
    return 0;
}

static int append_filtered_headers(struct ap_upconn *uc, struct ap_buf *out)
{
    for (size_t i = 0; i < uc->nhdrs; i++) {
        struct ap_slice n = hdr_name(uc, i), v = hdr_value(uc, i);
        if (ap_head_is_hop_by_hop(n) || ap_slice_eq_ci(n, "content-length") ||
            named_by_connection(uc, n))
            continue;
        if (ap_buf_append(out, n.p, n.len) || ap_buf_append(out, ": ", 2) ||
            ap_buf_append(out, v.p, v.len) || ap_buf_append(out, "\r\n", 2))
            return -1;
    }
    return 0;
}

/* Writing to the client failed inside a response callback: the client is
 * gone, which is not the upstream's fault (no 502, no failure mark). */
static int client_failed(struct ap_exchange *ex)
{
    ex->client_gone = 1;
    return HPE_USER;
}

static int resp_on_headers_complete(llhttp_t *p)
{
    struct ap_upconn *uc = p->data;
    struct ap_exchange *ex = uc->ex;
    struct ap_conn *c = ex->c;
    int status = p->status_code;
    struct ap_buf out;
    ap_buf_init(&out, RESP_HEAD_LIMIT * 2);

    if (status == 101) {
        ex->status = 502;
        return HPE_USER; /* never a tunnel */
    }
    if (status < 200) {
        /* Interim responses: 103 goes to HTTP/1.1 clients, others are ours
         * (we answer Expect ourselves) and are dropped. */
        if (status == 103 && ex->req.version_minor == 1) {
            int rc = ap_buf_appendf(&out, "HTTP/1.1 103 Early Hints\r\n");
            if (rc == 0)
                rc = append_filtered_headers(uc, &out);
            if (rc == 0)
                rc = ap_buf_append(&out, "\r\n", 2);
            if (rc == 0)
                rc = ap_conn_write(c, out.data, out.len);
            ap_buf_free(&out);
            if (rc != 0)
                return client_failed(ex);
        }
        return 0;
    }
    ex->got_final = 1;
    ex->status = status;

    int no_body = ex->is_head || status == 204 || status == 304;
    int has_cl = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
    if (no_body)
        ex->framing = AP_RESP_NONE;
    else if (has_cl)
        ex->framing = AP_RESP_LENGTH;
    else if (ex->req.version_minor == 1)
        ex->framing = AP_RESP_CHUNKED;
    else
        ex->framing = AP_RESP_CLOSE;

    int close = !ex->req.keep_alive || c->close_after || ex->w->draining ||
                ex->framing == AP_RESP_CLOSE || c->state == AP_CS_BODY;
    /* One allocation for a typical head. */
    int rc = ap_buf_reserve(&out, 1024);
    if (rc == 0)
        rc = ap_buf_appendf(&out, "HTTP/1.1 %d %s\r\n", status, ap_status_reason(status));
    if (rc == 0)
        rc = append_filtered_headers(uc, &out);
    if (rc == 0 && has_cl && (ex->framing == AP_RESP_LENGTH || ex->is_head))
        rc = ap_buf_appendf(&out, "Content-Length: %" PRIu64 "\r\n", p->content_length);
    if (rc == 0 && ex->framing == AP_RESP_CHUNKED)
        rc = ap_buf_appendf(&out, "Transfer-Encoding: chunked\r\n");
    if (rc == 0 && close)
        rc = ap_buf_appendf(&out, "Connection: close\r\n");
    else if (rc == 0 && ex->req.version_minor == 0)
        rc = ap_buf_appendf(&out, "Connection: keep-alive\r\n");
    if (rc == 0)
        rc = ap_buf_append(&out, "\r\n", 2);
    if (close)
        c->close_after = 1;
    if (rc == 0)
        rc = ap_conn_write(c, out.data, out.len);
    ap_buf_free(&out);
    if (rc != 0)
        return client_failed(ex);
    ex->resp_started = 1;
    /* 1 tells llhttp that this response has no body (HEAD). */
    return ex->is_head ? 1 : 0;
}

static int resp_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct ap_upconn *uc = p->data;
    struct ap_exchange *ex = uc->ex;
    struct ap_conn *c = ex->c;
    int rc;
    if (ex->framing == AP_RESP_NONE)
        return 0;
    if (ex->framing == AP_RESP_CHUNKED) {
        char sz[24];
        int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
        uv_buf_t b[3] = {uv_buf_init(sz, (unsigned)n), uv_buf_init((char *)at, (unsigned)len),
                         uv_buf_init("\r\n", 2)};
        rc = ap_conn_writev(c, b, 3);
    } else {
        rc = ap_conn_write(c, at, len);
    }
    if (rc != 0)
        return client_failed(ex);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > AP_HIGH_WATER) {
        up_read_stop(uc);
        uc->read_paused = 1;
    }
    return 0;
}

static int resp_on_message_complete(llhttp_t *p)
{
    struct ap_upconn *uc = p->data;
    struct ap_exchange *ex = uc->ex;
    if (!ex->got_final)
        return 0; /* end of an interim response */
    if (ex->framing == AP_RESP_CHUNKED) {
        /* Response trailers are dropped: the last chunk carries none. */
        if (ap_conn_write(ex->c, "0\r\n\r\n", 5) != 0)
            return client_failed(ex);
    }
    ex->resp_done = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_message_begin = resp_on_message_begin,
    .on_header_field = resp_on_header_field,
    .on_header_value = resp_on_header_value,
    .on_headers_complete = resp_on_headers_complete,
    .on_body = resp_on_body,
    .on_message_complete = resp_on_message_complete,
};

/* ---- finishing ---- */

static void on_idle_read(struct ap_upconn *uc)
{
    /* Data or EOF on an idle pooled connection: it is no longer usable. */
    up_close(uc);
}

static void finish_exchange(struct ap_upconn *uc)
{
    struct ap_exchange *ex = uc->ex;
    struct ap_conn *c = ex->c;
    struct ap_pool *p = uc->pool;
    uv_timer_stop(&uc->timer);
    ex->uc = NULL;
    uc->ex = NULL;
    ex->up_ns = uv_hrtime() - ex->up_start_ns + 1;
    chunk_list_free(ex->sent.head);
    ex->sent.head = ex->sent.tail = NULL;
    ex->sent.bytes = 0;
    int keep = uc->keep && llhttp_should_keep_alive(&uc->parser) && ex->body_done &&
               ex->body.bytes == 0 && uc->writes_pending == 0 && !ex->w->draining &&
               ex->gen == ex->w->gen && p->nidle < p->up->keepalive_max_idle;
    if (keep) {
        uc->idle = 1;
        uc->reused = 0;
        uc->next_idle = p->idle;
        uc->prev_idle = NULL;
        if (p->idle)
            p->idle->prev_idle = uc;
        p->idle = uc;
        p->nidle++;
        uc->read_paused = 0;
        up_read_start(uc);
        if (uc->tls != NULL)
            ap_tls_idle(uc->tls);
        uv_timer_start(&uc->timer, on_up_timer, p->up->keepalive_idle_timeout_ms, 0);
    } else {
        up_close(uc);
    }
    ap_conn_response_done(c);
}

/* ---- reading responses ---- */

/* Response bytes as plaintext (after TLS, for an https server). */
static void up_on_data(struct ap_upconn *uc, ssize_t nread, const uv_buf_t *buf)
{
    if (nread == 0)
        return;
    struct ap_exchange *ex = uc->ex;
    if (ex == NULL) {
        on_idle_read(uc);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            llhttp_errno_t e = llhttp_finish(&uc->parser);
            if ((e == HPE_OK || e == HPE_PAUSED) && ex->resp_done) {
                uc->keep = 0;
                finish_exchange(uc);
                return;
            }
        }
        up_fail(ex, 502, nread == UV_EOF ? "upstream closed the connection early"
                                         : "upstream connection reset");
        return;
    }
    if (!uc->got_bytes) {
        uc->got_bytes = 1;
        /* The first response byte ends any chance of a retry. */
        chunk_list_free(ex->sent.head);
        ex->sent.head = ex->sent.tail = NULL;
        ex->sent.bytes = 0;
        ex->retryable = 0;
    }
    uv_timer_start(&uc->timer, on_up_timer, ex->w->cfg->timeouts.upstream_body_idle, 0);
    llhttp_errno_t e = llhttp_execute(&uc->parser, buf->base, (size_t)nread);
    if (e == HPE_PAUSED) {
        if (llhttp_get_error_pos(&uc->parser) != buf->base + nread)
            uc->keep = 0; /* bytes after the response: do not reuse */
    } else if (e != HPE_OK) {
        if (ex->client_gone) {
            ap_log(AP_LOG_DEBUG, "client went away during the response");
            up_close(uc);
            ap_conn_abort(ex->c);
            return;
        }
        if (ex->status == 502)
            up_fail(ex, 502, "upstream tried to switch protocols");
        else
            up_fail(ex, 502, "invalid response from upstream");
        return;
    }
    if (ex->resp_done)
        finish_exchange(uc);
}

/* ---- failures and retries ---- */

static void up_fail(struct ap_exchange *ex, int status, const char *reason)
{
    struct ap_upconn *uc = ex->uc;
    int reused = uc != NULL && uc->reused;
    int got = uc != NULL && uc->got_bytes;
    if (uc != NULL)
        up_close(uc);
    ex->uc = NULL;
    if (reused && !got && ex->retryable && !ex->retried && !ex->resp_started) {
        /* A pooled connection that the server closed while idle: resend the
         * whole request once on a fresh connection. */
        ex->retried = 1;
        ex->head_sent = 0;
        ex->last_chunk_sent = 0;
        if (ex->sent.head != NULL) {
            ex->sent.tail->next = ex->body.head;
            if (ex->body.tail == NULL)
                ex->body.tail = ex->sent.tail;
            ex->body.head = ex->sent.head;
            ex->body.bytes += ex->sent.bytes;
            ex->sent.head = ex->sent.tail = NULL;
            ex->sent.bytes = 0;
        }
        ap_log(AP_LOG_DEBUG, "retrying request on a fresh upstream connection: %s", reason);
        up_acquire(ex, 1);
        return;
    }
    if (ex->c != NULL)
        ap_conn_send_error(ex->c, status, reason);
}

/* ---- writing requests ---- */

static void on_up_write(uv_write_t *req, int status)
{
    struct upwreq *wr = (struct upwreq *)req;
    struct ap_upconn *uc = wr->uc;
    chunk_list_free(wr->owned);
    free(wr);
    uc->writes_pending--;
    if (uc->closing)
        return;
    struct ap_exchange *ex = uc->ex;
    if (ex == NULL)
        return;
    if (status < 0) {
        up_fail(ex, 502, "upstream write failed");
        return;
    }
    if (ex->c != NULL && ex->c->read_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) < AP_LOW_WATER)
        ap_conn_upstream_writable(ex->c);
    /* head_sent: a TLS handshake write is not the request. */
    if (ex->head_sent && ex->body_done && ex->body.bytes == 0 && uc->writes_pending == 0 &&
        !uc->got_bytes)
        uv_timer_start(&uc->timer, on_up_timer, ex->w->cfg->timeouts.upstream_head, 0);
}

static int build_head(struct ap_exchange *ex)
{
    const struct ap_request *r = &ex->req;
    const struct ap_config_server *srv = ex->pool->srv;
    struct ap_slice host = {srv->authority, strlen(srv->authority)};
    if (ex->ups->up->preserve_host && r->host.len > 0)
        host = r->host;
    enum ap_head_framing framing = AP_FRAME_NONE;
    uint64_t len = 0;
    if (ex->body_done) {
        if (r->content_length >= 0 || r->chunked) {
            framing = AP_FRAME_LENGTH;
            len = ex->body_bytes;
        }
    } else if (r->content_length >= 0) {
        framing = AP_FRAME_LENGTH;
        len = (uint64_t)r->content_length;
    } else {
        framing = AP_FRAME_CHUNKED;
        ex->chunked_out = 1;
    }
    ap_buf_reset(&ex->out_head);
    if (ap_buf_reserve(&ex->out_head, 2048) != 0) /* one allocation for a typical head */
        return -ENOMEM;
    return ap_head_serialize(r, host, framing, len, &ex->out_head);
}

/* Write the head (if not yet sent), the queued body and the last chunk. */
static void up_send(struct ap_exchange *ex)
{
    struct ap_upconn *uc = ex->uc;
    size_t nchunks = 0;
    for (struct ap_chunk *k = ex->body.head; k != NULL; k = k->next)
        nchunks++;
    int need_head = !ex->head_sent;
    int need_last = ex->chunked_out && ex->body_done && !ex->last_chunk_sent;
    if (need_head) {
        ex->up_start_ns = uv_hrtime();
        if (build_head(ex) != 0) {
            ap_conn_send_error(ex->c, 431, "request head too large to forward");
            return;
        }
        need_last = ex->chunked_out && ex->body_done;
        ex->retryable = ex->body_done;
    }
    if (!need_head && nchunks == 0 && !need_last)
        return;
    unsigned maxbufs = (unsigned)(1 + nchunks * 3 + 1);
    struct upwreq *wr = malloc(sizeof(*wr) + (nchunks ? nchunks : 1) * sizeof(wr->sizes[0]));
    uv_buf_t *bufs = malloc(maxbufs * sizeof(*bufs));
    if (wr == NULL || bufs == NULL) {
        free(wr);
        free(bufs);
        ap_conn_send_error(ex->c, 503, "out of memory");
        return;
    }
    wr->uc = uc;
    wr->owned = NULL;
    unsigned nb = 0;
    if (need_head)
        bufs[nb++] = uv_buf_init(ex->out_head.data, (unsigned)ex->out_head.len);
    size_t i = 0;
    for (struct ap_chunk *k = ex->body.head; k != NULL; k = k->next, i++) {
        if (ex->chunked_out) {
            int n = snprintf(wr->sizes[i], sizeof(wr->sizes[i]), "%zx\r\n", k->len);
            bufs[nb++] = uv_buf_init(wr->sizes[i], (unsigned)n);
            bufs[nb++] = uv_buf_init(k->data, (unsigned)k->len);
            bufs[nb++] = uv_buf_init("\r\n", 2);
        } else {
            bufs[nb++] = uv_buf_init(k->data, (unsigned)k->len);
        }
    }
    if (need_last) {
        bufs[nb++] = uv_buf_init("0\r\n\r\n", 5);
        ex->last_chunk_sent = 1;
    }
    /* Chunks live until the write completes; a retryable request keeps them
     * until the first response byte. */
    if (ex->retryable) {
        if (ex->body.head != NULL) {
            if (ex->sent.tail)
                ex->sent.tail->next = ex->body.head;
            else
                ex->sent.head = ex->body.head;
            ex->sent.tail = ex->body.tail;
            ex->sent.bytes += ex->body.bytes;
        }
    } else {
        wr->owned = ex->body.head;
    }
    ex->body.head = ex->body.tail = NULL;
    ex->body.bytes = 0;
    ex->head_sent = 1;
    int r;
    if (uc->tls != NULL) {
        /* Encrypted now: the records go out as their own writes (see
         * up_tls_send), so the plaintext chunks are done with. */
        r = ap_tls_writev(uc->tls, bufs, nb);
        free(bufs);
        chunk_list_free(wr->owned);
        free(wr);
        if (r < 0) {
            up_fail(ex, 502, "upstream write failed");
            return;
        }
    } else {
        r = uv_write(&wr->req, (uv_stream_t *)&uc->tcp, bufs, nb, on_up_write);
        free(bufs);
        if (r < 0) {
            chunk_list_free(wr->owned);
            free(wr);
            up_fail(ex, 502, "upstream write failed");
            return;
        }
        uc->writes_pending++;
    }
    if (ex->c != NULL && !ex->c->read_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) > AP_HIGH_WATER) {
        ex->c->read_paused = 1;
        if (ex->c->reading) {
            uv_read_stop((uv_stream_t *)&ex->c->tcp);
            ex->c->reading = 0;
        }
        ap_conn_timer_stop(ex->c);
    }
}

void ap_upstream_pump(struct ap_exchange *ex)
{
    if (ex->ups == NULL)
        return;
    /* A route with body rules sends nothing before the whole body was
     * read and rewritten. */
    if (ex->route->body != NULL) {
        if (!ex->body_done)
            return;
        if (!ex->body_rewritten && ap_exchange_rewrite_body(ex) != 0)
            return; /* answered */
    }
    if (ex->ups->up->kind == AP_UPSTREAM_FILE) {
        if (ex->body_done && !ex->sink_busy)
            ap_filesink_deliver(ex);
        return;
    }
    struct ap_upconn *uc = ex->uc;
    if (uc == NULL || !uc->connected)
        return;
    if (!ex->head_sent && !ex->body_done && ex->body.bytes < AP_STREAM_THRESHOLD)
        return;
    up_send(ex);
}

/* ---- TLS to https servers ---- */

/* The sender of an upstream TLS connection: each batch of records is one
 * uv_write that on_up_write completes like a plain request write. */
static int up_tls_send(void *ctx, const char *p, size_t n)
{
    struct ap_upconn *uc = ctx;
    struct upwreq *wr = malloc(sizeof(*wr) + n);
    if (wr == NULL)
        return UV_ENOMEM;
    wr->uc = uc;
    wr->owned = NULL;
    wr->nbufs = 0;
    memcpy(wr->sizes, p, n);
    uv_buf_t b = uv_buf_init((char *)wr->sizes, (unsigned)n);
    int r = uv_write(&wr->req, (uv_stream_t *)&uc->tcp, &b, 1, on_up_write);
    if (r < 0) {
        free(wr);
        return r;
    }
    uc->writes_pending++;
    return 0;
}

/* A failed handshake counts against the server like a failed connect:
 * the client gets 502 with OpenSSL's reason (e.g. "hostname mismatch"). */
static void up_tls_failed(struct ap_upconn *uc, const char *why)
{
    struct ap_exchange *ex = uc->ex;
    char msg[192];
    snprintf(msg, sizeof(msg), "upstream TLS handshake failed: %s", why);
    mark_failure(uc->pool, uc->w, msg);
    up_close(uc);
    if (ex != NULL) {
        ex->uc = NULL;
        if (ex->c != NULL)
            ap_conn_send_error(ex->c, 502, msg);
    }
}

/* The TCP connection is up: start the handshake (the connect timer keeps
 * running and covers it). */
static void up_tls_start(struct ap_upconn *uc)
{
    size_t idx = (size_t)(uc->pool->srv - uc->pool->up->servers);
    struct ap_tls_sender snd = {up_tls_send, uc};
    uc->tls = ap_tls_connect(uc->w->server->tls, uc->pool->up, idx, snd);
    if (uc->tls == NULL) {
        up_tls_failed(uc, "no TLS context for this upstream");
        return;
    }
    up_read_start(uc);
    char *unused;
    if (ap_tls_read(uc->tls, &unused) < 0) /* sends the ClientHello */
        up_tls_failed(uc, ap_tls_strerror(uc->tls));
}

/* The handshake completed: the connection is ready for requests. */
static void up_tls_ready(struct ap_upconn *uc)
{
    uc->connected = 1;
    uc->pool->fails = 0;
    uv_timer_stop(&uc->timer);
    if (uc->ex != NULL)
        ap_upstream_pump(uc->ex);
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ap_upconn *uc = s->data;
    if (uc->tls == NULL || nread == 0) {
        up_on_data(uc, nread, buf);
        return;
    }
    if (nread < 0) {
        if (!uc->connected)
            up_tls_failed(uc, nread == UV_EOF ? "connection closed during the handshake"
                                              : uv_strerror((int)nread));
        else
            up_on_data(uc, nread, buf);
        return;
    }
    int established = ap_tls_is_established(uc->tls);
    ap_tls_feed(uc->tls, buf->base, (size_t)nread);
    while (!uc->closing) {
        char *plain;
        ssize_t n = ap_tls_read(uc->tls, &plain);
        if (!established && ap_tls_is_established(uc->tls)) {
            established = 1;
            up_tls_ready(uc);
            if (uc->closing)
                break;
        }
        if (n == 0)
            break;
        if (n < 0) {
            if (!uc->connected)
                up_tls_failed(uc, ap_tls_strerror(uc->tls));
            else
                up_on_data(uc, n == AP_TLS_EOF ? UV_EOF : UV_ECONNRESET, NULL);
            break;
        }
        uv_buf_t b = uv_buf_init(plain, (unsigned)n);
        up_on_data(uc, n, &b);
    }
    ap_tls_feed(uc->tls, NULL, 0); /* the read buffer is the worker's */
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    struct ap_upconn *uc = req->data;
    if (uc->closing)
        return;
    struct ap_exchange *ex = uc->ex;
    if (status < 0) {
        mark_failure(uc->pool, uc->w, uv_strerror(status));
        up_close(uc);
        if (ex == NULL)
            return;
        ex->uc = NULL;
        char why[128];
        snprintf(why, sizeof(why), "upstream connect failed: %s", uv_strerror(status));
        if (ex->tried_servers != 0) {
            int all_down;
            /* Nothing was sent: another server may take it. */
            struct ap_pool *next = pick_pool(ex, &all_down);
            if (next != NULL) {
                ex->pool = next;
                up_acquire(ex, 1);
                return;
            }
        }
        if (ex->c != NULL)
            ap_conn_send_error(ex->c, 502, why);
        return;
    }
    if (uc->pool->srv->tls) {
        uv_tcp_nodelay(&uc->tcp, 1);
        up_tls_start(uc);
        return;
    }
    uc->connected = 1;
    uc->pool->fails = 0;
    uv_tcp_nodelay(&uc->tcp, 1);
    uv_timer_stop(&uc->timer);
    up_read_start(uc);
    if (ex != NULL) {
        ap_upstream_pump(ex);
        if (!ex->head_sent || !ex->body_done)
            return;
    }
}

static void on_up_timer(uv_timer_t *t)
{
    struct ap_upconn *uc = t->data;
    struct ap_exchange *ex = uc->ex;
    if (ex == NULL) {
        up_close(uc); /* idle keep-alive timeout */
        return;
    }
    if (!uc->connected) {
        if (uc->tls != NULL)
            ap_tls_note_timeout(uc->tls); /* counted as a handshake timeout */
        mark_failure(uc->pool, uc->w, "connect timeout");
        up_close(uc);
        ap_conn_send_error(ex->c, 504, "upstream connect timeout");
        return;
    }
    if (!uc->got_bytes) {
        up_close(uc);
        ap_conn_send_error(ex->c, 504, "upstream response timeout");
        return;
    }
    up_close(uc);
    ap_log(AP_LOG_INFO, "upstream body idle timeout");
    ap_conn_abort(ex->c);
}

static void up_acquire(struct ap_exchange *ex, int fresh)
{
    struct ap_worker *w = ex->w;
    struct ap_pool *p = ex->pool;
    if (!fresh) {
        while (p->idle != NULL) {
            struct ap_upconn *uc = p->idle;
            pool_unlink(uc);
            uv_timer_stop(&uc->timer);
            uc->reused = 1;
            uc->got_bytes = 0;
            uc->keep = 1;
            uc->ex = ex;
            ex->uc = uc;
            llhttp_init(&uc->parser, HTTP_RESPONSE, &resp_settings);
            uc->parser.data = uc;
            return;
        }
    }
    struct ap_upconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        ap_conn_send_error(ex->c, 503, "out of memory");
        return;
    }
    uc->magic = AP_UPCONN_MAGIC;
    uc->w = w;
    uc->pool = p;
    uc->keep = 1;
    uv_tcp_init(&w->loop, &uc->tcp);
    uv_timer_init(&w->loop, &uc->timer);
    uc->tcp.data = uc;
    uc->timer.data = uc;
    uc->creq.data = uc;
    uc->handles_open = 2;
    w->nupconns++;
    ap_buf_init(&uc->hbuf, RESP_HEAD_LIMIT);
    llhttp_init(&uc->parser, HTTP_RESPONSE, &resp_settings);
    uc->parser.data = uc;
    uc->ex = ex;
    ex->uc = uc;
    int r = uv_tcp_connect(&uc->creq, &uc->tcp, (const struct sockaddr *)&p->srv->addr, on_connect);
    if (r < 0) {
        mark_failure(p, w, uv_strerror(r));
        up_close(uc);
        ex->uc = NULL;
        ap_conn_send_error(ex->c, 502, "upstream connect failed");
        return;
    }
    uv_timer_start(&uc->timer, on_up_timer, w->cfg->timeouts.upstream_connect, 0);
}

void ap_upstream_start(struct ap_exchange *ex)
{
    size_t idx = (size_t)(ex->route->upstream - ex->gen->cfg->upstreams);
    ex->ups = &ex->gen->ups[idx];
    if (ex->ups->up->kind == AP_UPSTREAM_FILE)
        return; /* delivered when the body is complete */
    int all_down;
    ex->pool = pick_pool(ex, &all_down);
    if (ex->pool == NULL) {
        ap_conn_send_error(ex->c, 503, "no healthy upstream server");
        return;
    }
    int had_idle = ex->pool->idle != NULL;
    up_acquire(ex, 0);
    if (had_idle && ex->uc != NULL && ex->uc->connected)
        ap_upstream_pump(ex);
}

void ap_upstream_detach(struct ap_exchange *ex)
{
    if (ex->uc != NULL) {
        struct ap_upconn *uc = ex->uc;
        ex->uc = NULL;
        uc->ex = NULL;
        up_close(uc);
    }
}

void ap_upstream_client_writable(struct ap_exchange *ex)
{
    struct ap_upconn *uc = ex->uc;
    if (uc == NULL || !uc->read_paused)
        return;
    uc->read_paused = 0;
    up_read_start(uc);
}

void ap_upstream_worker_close(struct ap_worker *w)
{
    if (w->gen != NULL)
        ap_upstream_gen_close_idle(w->gen);
}

void ap_upstream_gen_close_idle(struct ap_gen *g)
{
    if (g->ups == NULL)
        return;
    for (size_t i = 0; i < g->cfg->nupstreams; i++) {
        struct ap_upstream_state *us = &g->ups[i];
        if (us->pools == NULL)
            continue;
        for (size_t k = 0; k < us->up->nservers; k++)
            while (us->pools[k].idle != NULL)
                up_close(us->pools[k].idle);
    }
}

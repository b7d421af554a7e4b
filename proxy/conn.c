/* Client connections: read, check and frame requests, one at a time per
 * connection (pipelined requests wait in order), and write responses.
 *
 * Parsing is two layers. proxy/head.c scans and checks every request head
 * strictly, line by line, before anything else sees it; llhttp (8.1.0, strict
 * mode) then frames the body (Content-Length, chunked) and checks chunk
 * syntax. Nothing goes upstream until the head passed both. */
#include "anonproxy/common.h"

#include <errno.h>
#include <time.h>

#include "anonproxy/accesslog.h"
#include "anonproxy/arena.h"
#include "anonproxy/body.h"
#include "anonproxy/buf.h"
#include "anonproxy/geo.h"
#include "anonproxy/head.h"
#include "anonproxy/ip.h"
#include "anonproxy/log.h"
#include "anonproxy/logrelay.h"
#include "anonproxy/policy.h"
#include "anonproxy/proxyproto.h"
#include "anonproxy/route.h"
#include "anonproxy/tls.h"
#include "net.h"

/* How long a closing connection keeps reading (and discarding) so that the
 * kernel does not reset the error response away (nginx lingering_close). */
#define LINGER_MS 2000

struct wreq {
    uv_write_t req;
    struct ap_conn *c;
    char data[];
};

static void conn_process(struct ap_conn *c, const char *data, size_t len);
static void conn_close(struct ap_conn *c);
static void conn_read_start(struct ap_conn *c);
static void conn_read_stop(struct ap_conn *c);

const char *ap_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static const struct ap_config *conn_cfg(struct ap_conn *c)
{
    return c->w->cfg;
}

/* ---- request framing callbacks (llhttp) ---- */

static int req_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct ap_exchange *ex = p->data;
    ex->body_bytes += len;
    if (ex->body_bytes > ex->max_body) {
        ex->too_large = 1;
        return HPE_USER;
    }
    if (ap_chunkq_append(&ex->body, at, len) != 0)
        return HPE_USER;
    return 0;
}

static int req_on_message_complete(llhttp_t *p)
{
    struct ap_exchange *ex = p->data;
    ex->body_done = 1;
    /* Stop here: the bytes after this request belong to the next one,
     * which waits until this response is written. */
    return HPE_PAUSED;
}

/* Header bytes that reach llhttp after our own scanner are chunked-body
 * trailers: they are dropped, but must be as strict as a head. */
static int req_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct ap_exchange *ex = p->data;
    ex->tv_end = NULL;
    for (size_t i = 0; i < len; i++) {
        if (!ap_head_is_tchar((unsigned char)at[i])) {
            llhttp_set_error_reason(p, "invalid character in trailer name");
            return HPE_USER;
        }
    }
    return 0;
}

static int req_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct ap_exchange *ex = p->data;
    /* llhttp joins an obs-folded line to the value as a second span: a
     * span that does not continue the previous one (in the same buffer, or
     * at the start of the next when the previous ended its buffer) is one. */
    if (ex->tv_end != NULL && at != ex->tv_end && !(ex->tv_at_feed_end && at == ex->feed_start)) {
        llhttp_set_error_reason(p, "obsolete line folding in trailer");
        return HPE_USER;
    }
    ex->tv_end = at + len;
    ex->tv_at_feed_end = at + len == ex->feed_end;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            llhttp_set_error_reason(p, "invalid character in trailer value");
            return HPE_USER;
        }
    }
    return 0;
}

static const llhttp_settings_t req_settings = {
    .on_header_field = req_on_header_field,
    .on_header_value = req_on_header_value,
    .on_body = req_on_body,
    .on_message_complete = req_on_message_complete,
};

/* ---- exchanges ---- */

static struct ap_exchange *exchange_new(struct ap_conn *c)
{
    struct ap_exchange *ex = calloc(1, sizeof(*ex));
    if (ex == NULL)
        return NULL;
    ex->magic = AP_EXCHANGE_MAGIC;
    ex->c = c;
    ex->w = c->w;
    ex->gen = c->w->gen;
    ap_gen_ref(ex->gen);
    ap_arena_init(&ex->arena, 4096, (size_t)conn_cfg(c)->limits.header_bytes * 4 + 65536);
    ap_buf_init(&ex->out_head, (size_t)conn_cfg(c)->limits.header_bytes * 2 + 4096);
    ex->start_ms = uv_now(&c->w->loop);
    ex->start_ns = uv_hrtime();
    return ex;
}

void ap_exchange_free(struct ap_exchange *ex)
{
    AP_CHECK_OBJ(ex, AP_EXCHANGE_MAGIC);
    if (!ex->sink_busy)
        ap_accesslog_exchange_done(ex); /* once: the final free */
    if (ex->c != NULL && ex->c->ex == ex)
        ex->c->ex = NULL;
    ex->c = NULL;
    ap_upstream_detach(ex);
    if (ex->sink_busy)
        return; /* the file sink frees it when its write completes */
    if (ex->status != 0 && !ex->counted) {
        ex->counted = 1;
        ap_server_count_request(ex->w, ex, ex->status);
    }
    ap_chunkq_free(&ex->body);
    ap_chunkq_free(&ex->sent);
    ap_buf_free(&ex->out_head);
    ap_arena_free(&ex->arena);
    ap_gen_unref(ex->w, ex->gen);
    ex->magic = 0;
    free(ex);
}

/* ---- writing ---- */

static void on_client_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct ap_conn *c = wr->c;
    free(wr);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (status < 0) {
        if (status != UV_ECANCELED)
            ap_log(AP_LOG_DEBUG, "client write failed: %s", uv_strerror(status));
        ap_conn_abort(c);
        return;
    }
    if (c->state == AP_CS_CLOSING)
        return;
    if (c->ex != NULL && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < AP_LOW_WATER)
        ap_upstream_client_writable(c->ex);
}

/* Bytes as they go on the wire: plaintext, or a TLS connection's records. */
static int conn_write_raw(struct ap_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS)
        return r;
    size_t done = r > 0 ? (size_t)r : 0;
    if (done == total)
        return 0;
    struct wreq *wr = malloc(sizeof(*wr) + (total - done));
    if (wr == NULL)
        return UV_ENOMEM;
    wr->c = c;
    size_t off = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(wr->data + off, bufs[i].base + skip, l - skip);
        off += l - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)off);
    r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_client_write);
    if (r < 0) {
        free(wr);
        return r;
    }
    return 0;
}

/* The sender of a client TLS connection: ciphertext goes out like any
 * write (copied when the socket does not take it at once). */
static int conn_tls_send(void *ctx, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return conn_write_raw(ctx, &b, 1);
}

int ap_conn_writev(struct ap_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (c->ex != NULL)
        for (unsigned i = 0; i < nbufs; i++)
            c->ex->resp_bytes += bufs[i].len;
    if (c->tls != NULL)
        return ap_tls_writev(c->tls, bufs, nbufs);
    return conn_write_raw(c, bufs, nbufs);
}

int ap_conn_write(struct ap_conn *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return ap_conn_writev(c, &b, 1);
}

/* ---- closing ---- */

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct ap_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    struct ap_worker *w = c->w;
    ap_buf_free(&c->head);
    ap_buf_free(&c->pending);
    if (c->gen != NULL)
        ap_gen_unref(w, c->gen);
    ap_tls_conn_free(c->tls);
    c->magic = 0;
    free(c);
    if (w->draining && w->nconns == 0)
        uv_async_send(&w->wakeup);
}

static void conn_close(struct ap_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->ex != NULL)
        ap_exchange_free(c->ex);
    c->state = AP_CS_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->w->nconns--;
    ap_conn_timer_stop(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

void ap_conn_abort(struct ap_conn *c)
{
    conn_close(c);
}

static void on_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ap_conn *c = s->data;
    if (nread < 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ap_conn *c = h->data;
    buf->base = c->w->readbuf;
    buf->len = sizeof(c->w->readbuf);
}

static void on_timer(struct ap_conn *c);
static void on_kick(struct ap_conn *c);

/* ---- timers ---- */

static void arm_worker_timer(struct ap_worker *w, uint64_t due)
{
    if (w->conn_timer_due != 0 && w->conn_timer_due <= due)
        return;
    uint64_t now = uv_now(&w->loop);
    w->conn_timer_due = due;
    uv_timer_start(&w->conn_timer, ap_conn_on_timers, due > now ? due - now : 0, 0);
}

void ap_conn_timer_stop(struct ap_conn *c)
{
    if (c->tclass == AP_T_NONE)
        return;
    struct ap_tlist *l = &c->w->tq[c->tclass];
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        l->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        l->tail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tclass = AP_T_NONE;
}

static void conn_timer(struct ap_conn *c, enum ap_tclass cls, uint64_t ms)
{
    ap_conn_timer_stop(c);
    struct ap_worker *w = c->w;
    struct ap_tlist *l = &w->tq[cls];
    c->deadline = uv_now(&w->loop) + ms;
    c->tclass = (unsigned char)cls;
    /* Lists stay sorted: the tail is the place unless the timeout differs
     * within the class (handshake_timeout is per listener). */
    struct ap_conn *after = l->tail;
    while (after != NULL && after->deadline > c->deadline)
        after = after->tprev;
    c->tprev = after;
    c->tnext = after ? after->tnext : l->head;
    if (c->tnext)
        c->tnext->tprev = c;
    else
        l->tail = c;
    if (after)
        after->tnext = c;
    else
        l->head = c;
    arm_worker_timer(w, c->deadline);
}

void ap_conn_on_timers(uv_timer_t *t)
{
    struct ap_worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    w->conn_timer_due = 0;
    for (int cls = 1; cls < AP_T_NCLASSES; cls++) {
        struct ap_tlist *l = &w->tq[cls];
        while (l->head != NULL && l->head->deadline <= now) {
            struct ap_conn *c = l->head;
            ap_conn_timer_stop(c);
            if (cls == AP_T_KICK)
                on_kick(c);
            else
                on_timer(c);
        }
    }
    uint64_t next = 0;
    for (int cls = 1; cls < AP_T_NCLASSES; cls++) {
        struct ap_conn *h = w->tq[cls].head;
        if (h != NULL && (next == 0 || h->deadline < next))
            next = h->deadline;
    }
    if (next != 0)
        arm_worker_timer(w, next);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct ap_conn *c = req->data;
    free(req);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Read and discard until the client closes or the linger time ends. */
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read) != 0) {
        conn_close(c);
        return;
    }
    conn_timer(c, AP_T_LINGER, LINGER_MS);
}

/* Close after everything queued has been written. */
static void conn_close_after_write(struct ap_conn *c)
{
    if (c->ex != NULL)
        ap_exchange_free(c->ex);
    conn_read_stop(c);
    ap_conn_timer_stop(c);
    c->state = AP_CS_CLOSING;
    if (c->tls != NULL)
        ap_tls_shutdown(c->tls); /* close_notify goes before the FIN */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

void ap_conn_send_error(struct ap_conn *c, int status, const char *reason)
{
    if (c->state == AP_CS_CLOSING)
        return;
    struct ap_exchange *ex = c->ex;
    if (ex != NULL && ex->resp_started) {
        ap_log(AP_LOG_INFO, "response aborted after it started: %s", reason);
        ap_conn_abort(c);
        return;
    }
    ap_log(status >= 500 ? AP_LOG_WARN : AP_LOG_INFO, "%d %s: %s", status,
           ap_status_reason(status), reason);
    if (ex != NULL) {
        ex->status = status;
    } else {
        ap_server_count_request(c->w, NULL, status);
        ap_accesslog_conn_error(c, status);
    }
    char body[256], head[256];
    int bl = snprintf(body, sizeof(body), "%d %s: %s\n", status, ap_status_reason(status), reason);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        bl = (int)sizeof(body) - 1;
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n",
                      status, ap_status_reason(status), bl);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init(body, (unsigned)bl)};
    if (ex != NULL && ex->is_head)
        bufs[1].len = 0;
    if (ap_conn_writev(c, bufs, 2) != 0) {
        conn_close(c);
        return;
    }
    conn_close_after_write(c);
}

/* ---- reading ---- */

static void conn_tls_read(struct ap_conn *c, const char *data, size_t len);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ap_conn *c = s->data;
    if (nread == 0)
        return;
    if (c->tls != NULL && nread > 0) {
        conn_tls_read(c, buf->base, (size_t)nread);
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF)
            ap_log(AP_LOG_DEBUG, "client read failed: %s", uv_strerror((int)nread));
        /* A client that half-closes after a complete request still gets
         * its response; anywhere else the connection is done. */
        if (c->state == AP_CS_WAIT && nread == UV_EOF) {
            conn_read_stop(c);
            c->close_after = 1;
            return;
        }
        conn_close(c);
        return;
    }
    conn_process(c, buf->base, (size_t)nread);
}

static void conn_read_start(struct ap_conn *c)
{
    if (c->reading || c->read_paused || c->state == AP_CS_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void conn_read_stop(struct ap_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

void ap_conn_upstream_writable(struct ap_conn *c)
{
    if (!c->read_paused)
        return;
    c->read_paused = 0;
    if (c->state == AP_CS_BODY) {
        conn_read_start(c);
        conn_timer(c, AP_T_BODY, conn_cfg(c)->timeouts.body_idle);
    }
}

static void start_idle(struct ap_conn *c)
{
    c->state = AP_CS_IDLE;
    /* The first request gets the head timeout, later ones keep-alive; a TLS
     * connection first gets handshake_timeout for its handshake. */
    if (c->tls != NULL && !ap_tls_is_established(c->tls)) {
        conn_timer(c, AP_T_HANDSHAKE, c->listener->tls->handshake_timeout_ms);
    } else if (c->nrequests == 0) {
        conn_timer(c, AP_T_HEAD, conn_cfg(c)->timeouts.request_head);
    } else {
        conn_timer(c, AP_T_KEEPALIVE, conn_cfg(c)->timeouts.keepalive);
        if (c->tls != NULL)
            ap_tls_idle(c->tls); /* an idle TLS connection holds no buffer */
    }
    conn_read_start(c);
}

static void on_kick(struct ap_conn *c)
{
    /* Bytes that arrived behind the previous request: take them over so
     * that new leftovers can be stored again. */
    struct ap_buf pend = c->pending;
    ap_buf_init(&c->pending, pend.limit);
    start_idle(c);
    conn_process(c, pend.data, pend.len);
    ap_buf_free(&pend);
}

void ap_conn_response_done(struct ap_conn *c)
{
    AP_CHECK_OBJ(c, AP_CONN_MAGIC);
    struct ap_exchange *ex = c->ex;
    int keep = ex != NULL && ex->req.keep_alive && ex->body_done && !c->close_after &&
               !c->w->draining && ex->framing != AP_RESP_CLOSE;
    if (ex != NULL)
        ap_exchange_free(ex);
    c->nrequests++;
    if (!keep) {
        conn_close_after_write(c);
        return;
    }
    ap_buf_free(&c->head);
    if (c->pending.len > 0) {
        /* Run the next pipelined request from the loop, not from inside the
         * callback that finished this one. */
        c->state = AP_CS_IDLE;
        conn_timer(c, AP_T_KICK, 0);
        return;
    }
    ap_buf_free(&c->pending);
    start_idle(c);
}

static void on_timer(struct ap_conn *c)
{
    switch (c->state) {
    case AP_CS_PROXY:
        ap_log(AP_LOG_DEBUG, "PROXY protocol header not received in time");
        conn_close(c);
        break;
    case AP_CS_IDLE:
        if (c->tls != NULL && !ap_tls_is_established(c->tls))
            ap_tls_note_timeout(c->tls);
        conn_close(c);
        break;
    case AP_CS_HEAD:
        if (c->head.len > 0)
            ap_conn_send_error(c, 408, "request head not received in time");
        else
            conn_close(c);
        break;
    case AP_CS_BODY:
        ap_conn_send_error(c, 408, "request body idle timeout");
        break;
    case AP_CS_WAIT:
        break;
    case AP_CS_CLOSING:
        conn_close(c);
        break;
    }
}

static void stash_pending(struct ap_conn *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (ap_buf_append(&c->pending, data, len) != 0)
        c->close_after = 1; /* more pipelined bytes than we hold: serve, then close */
}

int ap_exchange_rewrite_body(struct ap_exchange *ex)
{
    struct ap_conn *c = ex->c;
    const struct ap_config_route *route = ex->route;
    ex->body_rewritten = 1;
    /* One contiguous input: the body arrived in chunks. */
    const char *in = "";
    size_t inlen = (size_t)ex->body_bytes;
    if (ex->body.head != NULL && ex->body.head->next == NULL) {
        in = ex->body.head->data;
    } else if (inlen > 0) {
        char *buf = ap_arena_alloc(&ex->arena, inlen);
        if (buf == NULL) {
            ap_conn_send_error(c, 500, "out of memory for the body");
            return -1;
        }
        size_t off = 0;
        for (struct ap_chunk *k = ex->body.head; k != NULL; k = k->next) {
            memcpy(buf + off, k->data, k->len);
            off += k->len;
        }
        in = buf;
    }
    struct ap_engine_ctx ectx = {
        .keyring = &c->w->keyring,
        .now = (int64_t)time(NULL),
        .arena = &ex->arena,
        .stats = &c->w->stats,
    };
    struct ap_engine_pseudo ep = {route->policy, &ectx, ex->res.scope};
    char geo_json[AP_GEO_JSON_MAX];
    int geo_len = ex->geo.level != AP_GEO_LEVEL_NONE ? ap_geo_format_json(&ex->geo, geo_json, sizeof(geo_json)) : -1;
    struct ap_body_ctx bctx = {
        .arena = &ex->arena,
        .pseudo = {ap_engine_pseudo_text, &ep},
        .url_policy = &route->policy->query,
        .geo_json = geo_len > 0 ? geo_json : NULL,
        .geo_len = geo_len > 0 ? (size_t)geo_len : 0,
        .query = ex->req.query.p,
        .query_len = ex->req.query.len,
        .stats = &c->w->body_stats,
    };
    struct ap_slice ct, ce;
    ap_engine_body_input(&ex->req, &ct, &ce);
    struct ap_body_out out;
    ap_body_rewrite(route->body, &bctx, ct.p, ct.len, ce.p, ce.len, in, inlen, &out);
    if (out.verdict == AP_BODY_REJECT) {
        ap_conn_send_error(c, out.status ? out.status : 400, out.reason ? out.reason : "body refused");
        return -1;
    }
    if (out.passthrough)
        return 0;
    if (out.verdict == AP_BODY_FORWARD_EMPTY)
        ap_log(AP_LOG_INFO, "body dropped (%d): %s", out.status, out.reason ? out.reason : "");
    if (ap_engine_apply_body(&ex->req, &ex->arena, &out) != 0) {
        ap_conn_send_error(c, 500, "out of memory for the body");
        return -1;
    }
    /* The rewritten body replaces the one read; Content-Length follows. */
    if (out.body != in || out.len != inlen || out.verdict != AP_BODY_FORWARD) {
        ap_chunkq_free(&ex->body);
        size_t n = out.verdict == AP_BODY_FORWARD ? out.len : 0;
        if (n > 0 && ap_chunkq_append(&ex->body, out.body, n) != 0) {
            ap_conn_send_error(c, 500, "out of memory for the body");
            return -1;
        }
        ex->body_bytes = n;
    }
    /* A body now always has a length, even one that came chunked. */
    if (ex->req.content_length < 0 && !ex->req.chunked && ex->body_bytes > 0)
        ex->req.content_length = (int64_t)ex->body_bytes;
    return 0;
}

/* Coarse location headers from the full client address, which is then
 * forgotten. Inbound headers of the same names are removed first, so a
 * client cannot forge them; the visitor key of the population floor is
 * the truncated address. */
static int add_geo_headers(struct ap_exchange *ex)
{
    const struct ap_geo *geo = ex->gen->geo->geo;
    struct ap_request *req = &ex->req;
    for (size_t i = 0; i < req->nheaders; i++) {
        struct ap_header *h = &req->headers[i];
        /* Every X-Geo-* too: a name left out of `headers:` is still ours. */
        if (h->name.len >= 6 && strncasecmp(h->name.p, "x-geo-", 6) == 0) {
            h->flags |= AP_HEADER_DROPPED;
            continue;
        }
        for (int f = 0; f < AP_GEO_OUT_COUNT; f++) {
            const char *name = ap_geo_header_name(geo, (enum ap_geo_out)f);
            if (name != NULL && ap_slice_eq_ci(h->name, name))
                h->flags |= AP_HEADER_DROPPED;
        }
    }
    if (ex->res.client.family == 0)
        return 0;
    struct ap_worker *w = ex->w;
    int rc = ap_geo_lookup(ex->gen->geo_worker, &ex->res.client, &ex->res.client_trunc,
                           sizeof(ex->res.client_trunc), (int64_t)time(NULL), &ex->geo);
    AP_STAT_ADD(w->geo_results[rc == 0 ? 0 : rc == -ENOENT ? 1 : rc == -EADDRNOTAVAIL ? 2 : 3], 1);
    struct ap_geo_cache_stats cs;
    ap_geo_worker_get_cache_stats(ex->gen->geo_worker, &cs);
    /* The worker's cache counts per generation; publish the total. */
    AP_STAT_ADD(w->geo_cache_hits, cs.hits - ex->gen->geo_hits_seen);
    AP_STAT_ADD(w->geo_cache_misses, cs.misses - ex->gen->geo_misses_seen);
    ex->gen->geo_hits_seen = cs.hits;
    ex->gen->geo_misses_seen = cs.misses;
    if (rc != 0)
        return 0; /* not found, private or reserved: no location */
    for (int f = 0; f < AP_GEO_OUT_COUNT; f++) {
        const char *name = ap_geo_header_name(geo, (enum ap_geo_out)f);
        char v[AP_GEO_HEADER_MAX];
        if (name == NULL)
            continue;
        int n = ap_geo_format_header(&ex->geo, (enum ap_geo_out)f, v, sizeof(v));
        if (n > 0 && ap_request_add_header(req, &ex->arena, name, strlen(name), v, (size_t)n) != 0)
            return -1;
    }
    return 0;
}

/* The request head is complete in c->head: parse, route, start upstream. */
static int on_head(struct ap_conn *c)
{
    const struct ap_config *cfg = conn_cfg(c);
    struct ap_exchange *ex = exchange_new(c);
    if (ex == NULL) {
        ap_conn_send_error(c, 503, "out of memory");
        return -1;
    }
    c->ex = ex;
    struct ap_head_error err;
    if (ap_head_parse(c->head.data, c->head.len, &ex->req, &ex->arena, &err) != 0) {
        ap_conn_send_error(c, err.status, err.reason);
        return -1;
    }
    ex->is_head = ap_slice_eq_ci(ex->req.method, "HEAD");
    ex->route = ap_route_match(cfg, ex->req.host, ex->req.method, ex->req.path);
    if (ex->route == NULL) {
        ap_conn_send_error(c, 404, "no route matches this request");
        return -1;
    }
    /* The engine rewrites the request before anything else sees it: from
     * here on, ex->req is what the backend may receive. */
    const struct ap_policy *pol = ex->route->policy;
    AP_BUG_ON(pol == NULL); /* the config builds one for every route */
    struct ap_engine_ctx ectx = {
        .keyring = &c->w->keyring,
        .now = (int64_t)time(NULL),
        .arena = &ex->arena,
        .stats = &c->w->stats,
        .audit = ap_accesslog_wants_audit(), /* the access log lists the rules that fired */
    };
    if (ap_engine_rewrite(pol, &ectx, &c->peer, &ex->req, &ex->res) != 0) {
        ap_conn_send_error(c, 503, "request could not be anonymised");
        return -1;
    }
    if (ex->gen->geo_worker != NULL && add_geo_headers(ex) != 0) {
        ap_conn_send_error(c, 503, "request could not be anonymised");
        return -1;
    }
    /* The full address served the engine and geolocation only. */
    memset(&ex->res.client, 0, sizeof(ex->res.client));
    ex->max_body = ex->route->max_body_bytes ? ex->route->max_body_bytes : cfg->limits.body_bytes;
    if (ex->route->body != NULL) {
        /* The body engine works in the request's arena: room for the body,
         * what it inflates to, and their rewritten copies. */
        uint64_t need = 4 * ex->route->body->max_body + 2 * ex->route->body->max_inflated + (1u << 20);
        ex->arena.cap = need > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)need;
    }
    if (ex->req.content_length > 0 && (uint64_t)ex->req.content_length > ex->max_body) {
        ap_conn_send_error(c, 413, "request body larger than max_body_bytes");
        return -1;
    }

    llhttp_init(&ex->parser, HTTP_REQUEST, &req_settings);
    ex->parser.data = ex;
    ex->feed_start = c->head.data;
    ex->feed_end = c->head.data + c->head.len;
    llhttp_errno_t e = llhttp_execute(&ex->parser, c->head.data, c->head.len);
    if (e == HPE_PAUSED) {
        if (llhttp_get_error_pos(&ex->parser) != c->head.data + c->head.len) {
            ap_conn_send_error(c, 400, "request head framing mismatch");
            return -1;
        }
        llhttp_resume(&ex->parser);
    } else if (e != HPE_OK) {
        ap_conn_send_error(c, 400, llhttp_get_error_reason(&ex->parser));
        return -1;
    }

    if (ex->body_done) {
        /* Reading goes on while the response is pending (pipelined bytes
         * wait in c->pending): stopping and restarting it would cost two
         * epoll_ctl calls per request. */
        c->state = AP_CS_WAIT;
        ap_conn_timer_stop(c);
    } else {
        c->state = AP_CS_BODY;
        conn_timer(c, AP_T_BODY, cfg->timeouts.body_idle);
        if (ex->req.expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (ap_conn_write(c, cont, sizeof(cont) - 1) != 0) {
                conn_close(c);
                return -1;
            }
        }
    }
    if (ex->route->type == AP_ROUTE_LOGS)
        ap_logrelay_exchange(ex); /* application logs to log sinks (issue 8) */
    else
        ap_upstream_start(ex);
    return c->state == AP_CS_CLOSING ? -1 : 0;
}

/* Feed body bytes to llhttp. Returns bytes consumed, or -1 when the
 * connection was answered or closed. */
static ssize_t feed_body(struct ap_conn *c, const char *data, size_t len)
{
    struct ap_exchange *ex = c->ex;
    ex->feed_start = data;
    ex->feed_end = data + len;
    llhttp_errno_t e = llhttp_execute(&ex->parser, data, len);
    if (e == HPE_OK)
        return (ssize_t)len;
    if (e == HPE_PAUSED) {
        size_t used = (size_t)(llhttp_get_error_pos(&ex->parser) - data);
        llhttp_resume(&ex->parser);
        return (ssize_t)used;
    }
    if (ex->too_large)
        ap_conn_send_error(c, 413, "request body larger than max_body_bytes");
    else
        ap_conn_send_error(c, 400, llhttp_get_error_reason(&ex->parser) ? llhttp_get_error_reason(&ex->parser)
                                                                        : "invalid request body framing");
    return -1;
}

/* PROXY protocol v1/v2 on listeners that ask for it, from trusted peers
 * only (checked at accept). Returns bytes consumed, or -1 when the
 * connection was closed. Never guessed: anything else closes. */
static ssize_t read_proxy_header(struct ap_conn *c, const char *data, size_t len)
{
    size_t room = AP_PROXYPROTO_MAX_LEN - c->head.len;
    size_t n = len < room ? len : room;
    if (ap_buf_append(&c->head, data, n) != 0) {
        conn_close(c);
        return -1;
    }
    struct ap_proxyproto_result pp;
    int rc = ap_proxyproto_parse((const uint8_t *)c->head.data, c->head.len, &pp);
    if (rc == 0 && c->head.len < AP_PROXYPROTO_MAX_LEN)
        return (ssize_t)n;
    if (rc <= 0) {
        ap_log(AP_LOG_INFO, "PROXY protocol header refused: %s",
               rc == 0 ? "too long" : ap_proxyproto_strerror(rc));
        conn_close(c);
        return -1;
    }
    if (pp.command == AP_PROXYPROTO_CMD_PROXY && pp.has_addr) {
        c->peer = pp.src;
        ap_ip_unmap(&c->peer);
    }
    size_t extra = c->head.len - (size_t)rc;
    ap_buf_free(&c->head);
    ap_buf_init(&c->head, c->w->cfg->limits.header_bytes);
    start_idle(c);
    return (ssize_t)(n - extra);
}

static void conn_process(struct ap_conn *c, const char *data, size_t len)
{
    const struct ap_config *cfg = conn_cfg(c);
    while (len > 0) {
        switch (c->state) {
        case AP_CS_PROXY: {
            ssize_t used = read_proxy_header(c, data, len);
            if (used < 0)
                return;
            data += used;
            len -= (size_t)used;
            break;
        }
        case AP_CS_IDLE:
            c->state = AP_CS_HEAD;
            memset(&c->scan, 0, sizeof(c->scan));
            ap_buf_init(&c->head, cfg->limits.header_bytes);
            conn_timer(c, AP_T_HEAD, cfg->timeouts.request_head);
            /* fallthrough */
        case AP_CS_HEAD: {
            size_t room = c->head.limit - c->head.len;
            size_t n = len < room ? len : room;
            if (ap_buf_append(&c->head, data, n) != 0) {
                ap_conn_send_error(c, 503, "out of memory");
                return;
            }
            struct ap_head_limits lim = {
                .line_bytes = cfg->limits.header_line_bytes,
                .head_bytes = cfg->limits.header_bytes,
                .header_count = cfg->limits.header_count,
                .target_bytes = cfg->limits.target_bytes,
            };
            struct ap_head_error err;
            int rc = ap_head_scan(&c->scan, c->head.data, c->head.len, &lim, &err);
            if (rc < 0) {
                ap_conn_send_error(c, err.status, err.reason);
                return;
            }
            if (rc == 0) {
                if (c->head.len >= c->head.limit) {
                    ap_conn_send_error(c, 431, "request head too large");
                    return;
                }
                data += n;
                len -= n;
                break;
            }
            size_t extra = c->head.len - (size_t)rc;
            c->head.len = (size_t)rc;
            data += n - extra;
            len -= n - extra;
            if (on_head(c) != 0)
                return;
            break;
        }
        case AP_CS_BODY: {
            ssize_t used = feed_body(c, data, len);
            if (used < 0)
                return;
            data += used;
            len -= (size_t)used;
            if (c->ex->body_done) {
                c->state = AP_CS_WAIT;
                ap_conn_timer_stop(c);
            } else {
                conn_timer(c, AP_T_BODY, cfg->timeouts.body_idle);
            }
            break;
        }
        case AP_CS_WAIT:
            stash_pending(c, data, len);
            /* Stop only when another full read might not fit. */
            if (c->close_after || c->pending.len + sizeof(c->w->readbuf) > c->pending.limit)
                conn_read_stop(c);
            len = 0;
            break;
        case AP_CS_CLOSING:
            return;
        }
    }
    if (c->ex != NULL && (c->state == AP_CS_BODY || c->state == AP_CS_WAIT))
        c->ex->route->type == AP_ROUTE_LOGS ? ap_logrelay_exchange(c->ex) : ap_upstream_pump(c->ex);
}

/* Ciphertext from a TLS client. A PROXY protocol header, when the listener
 * expects one, comes before TLS; then every byte goes through the TLS
 * connection and the plaintext through conn_process, record by record. */
static void conn_tls_read(struct ap_conn *c, const char *data, size_t len)
{
    if (c->state == AP_CS_PROXY) {
        ssize_t used = read_proxy_header(c, data, len);
        if (used < 0)
            return;
        data += used;
        len -= (size_t)used;
        if (c->state == AP_CS_PROXY || len == 0)
            return;
    }
    int established = ap_tls_is_established(c->tls);
    ap_tls_feed(c->tls, data, len);
    for (;;) {
        char *plain;
        ssize_t n = ap_tls_read(c->tls, &plain);
        if (!established && ap_tls_is_established(c->tls)) {
            established = 1;
            /* The first request gets request_head from the handshake on. */
            if (c->state == AP_CS_IDLE)
                conn_timer(c, AP_T_HEAD, conn_cfg(c)->timeouts.request_head);
        }
        if (n == 0)
            break;
        if (n < 0) {
            /* close_notify after a complete request: answer, then close. */
            if (n == AP_TLS_EOF && c->state == AP_CS_WAIT) {
                conn_read_stop(c);
                c->close_after = 1;
            } else {
                conn_close(c);
            }
            break;
        }
        conn_process(c, plain, (size_t)n);
        if (c->state == AP_CS_CLOSING || uv_is_closing((uv_handle_t *)&c->tcp))
            break;
    }
    ap_tls_feed(c->tls, NULL, 0); /* the read buffer is the worker's */
}

/* ---- accepting ---- */

void ap_conn_on_accept(uv_stream_t *listener, int status)
{
    struct ap_listener *l = listener->data;
    struct ap_worker *w = l->w;
    if (status < 0) {
        ap_log(AP_LOG_WARN, "accept failed: %s", uv_strerror(status));
        return;
    }
    struct ap_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Take the connection off the queue so the loop does not spin. */
        uv_tcp_t tmp;
        uv_tcp_init(&w->loop, &tmp);
        if (uv_accept(listener, (uv_stream_t *)&tmp) == 0)
            uv_close((uv_handle_t *)&tmp, NULL);
        return;
    }
    c->magic = AP_CONN_MAGIC;
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    c->handles_open = 1;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    ap_buf_init(&c->head, w->cfg->limits.header_bytes);
    ap_buf_init(&c->pending, (size_t)w->cfg->limits.header_bytes + sizeof(w->readbuf));
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (w->draining) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0 ||
        ap_ip_from_sockaddr(&c->peer, NULL, (struct sockaddr *)&ss, (size_t)sslen) != 0) {
        conn_close(c);
        return;
    }
    ap_ip_unmap(&c->peer);
    c->gen = l->gen;
    ap_gen_ref(c->gen);
    c->listener = l->lcfg;
    if (c->listener->tls != NULL) {
        /* Before anything is written: an error answer in plaintext would
         * mean nothing to a TLS client (ap_conn_send_error then closes). */
        struct ap_tls_sender snd = {conn_tls_send, c};
        c->tls = ap_tls_accept(w->server->tls, c->listener, w->id, snd);
        if (c->tls == NULL) {
            conn_close(c);
            return;
        }
    }
    if (w->nconns > w->cfg->limits.connections_per_worker) {
        ap_conn_send_error(c, 503, "too many connections");
        return;
    }
    if (c->listener->proxy_protocol) {
        if (!ap_cidr_list_contains(&w->cfg->trusted_proxies, &c->peer)) {
            ap_log(AP_LOG_INFO, "PROXY protocol from an untrusted peer refused");
            conn_close(c);
            return;
        }
        c->state = AP_CS_PROXY;
        conn_timer(c, AP_T_HEAD, w->cfg->timeouts.request_head);
        conn_read_start(c);
        return;
    }
    start_idle(c);
}

void ap_conn_close_idle(struct ap_worker *w)
{
    struct ap_conn *c = w->conns;
    while (c != NULL) {
        struct ap_conn *next = c->next;
        if (c->state == AP_CS_IDLE || c->state == AP_CS_PROXY ||
            (c->state == AP_CS_HEAD && c->head.len == 0))
            conn_close(c);
        c = next;
    }
}

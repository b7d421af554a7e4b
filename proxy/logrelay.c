/* Log relay: application logs under the same privacy rules as requests.
 * NDJSON batches POSTed to a route of type logs are anonymised on the
 * worker (anonproxy/logscrub.h, with the worker's pseudonym keys) and
 * queued, all or nothing, as one entry of the worker's queue. Syslog
 * messages reach listeners that run on the logger thread, become JSON
 * records and go through the same scrubbing. */
#include "anonproxy/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "anonproxy/arena.h"
#include "anonproxy/buf.h"
#include "anonproxy/gzip.h"
#include "anonproxy/log.h"
#include "anonproxy/logfmt.h"
#include "anonproxy/logger.h"
#include "anonproxy/logrelay.h"
#include "anonproxy/logring.h"
#include "anonproxy/logscrub.h"
#include "anonproxy/policy.h"
#include "anonproxy/syslogmsg.h"
#include "logger-int.h"
#include "net.h"

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t route_mask(const struct ap_logger *lg, const struct ap_config_route *route)
{
    uint64_t m = 0;
    for (size_t i = 0; i < route->nlog_sinks; i++) {
        int k = ap_logger__sink_index(lg, route->log_sinks[i]->name);
        if (k >= 0)
            m |= (uint64_t)1 << k;
    }
    return m;
}

static void scrub_ctx(struct ap_logscrub_ctx *ctx, const struct ap_config_route *route,
                      struct ap_pseudo_keyring *kr)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->policy = route->policy;
    ctx->rules = route->log_fields;
    ctx->nrules = route->nlog_fields;
    ctx->keyring = kr;
    ctx->now = (int64_t)time(NULL);
    ctx->scope = route->policy != NULL && route->policy->site_id != NULL ? route->policy->site_id
                                                                          : route->name;
}

static int reply(char *why, size_t whylen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reply(char *why, size_t whylen, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return status;
}

static void count_rejected(struct ap_logger *lg)
{
    __atomic_fetch_add(&lg->relay_rejected, 1, __ATOMIC_RELAXED);
}

int ap_logrelay_ndjson(unsigned worker, struct ap_pseudo_keyring *kr, const struct ap_config_route *route,
                       const char *body, size_t len, size_t *accepted, char *why, size_t whylen)
{
    *accepted = 0;
    if (whylen > 0)
        why[0] = '\0';
    struct ap_logger *lg = ap_logger__get();
    if (lg == NULL || worker >= lg->nrings)
        return reply(why, whylen, 503, "the log relay is not running");
    uint64_t mask = route_mask(lg, route);
    if (mask == 0)
        return reply(why, whylen, 503, "none of the route's log sinks is running");
    struct ap_buf *out = &lg->ws[worker].scratch;
    ap_buf_reset(out);
    struct ap_logmsg_hdr h = {.kind = AP_LOGMSG_LINES, .pri = 255, .sinks = mask, .time_us = wall_us()};
    if (ap_buf_append(out, &h, sizeof(h)) != 0)
        return reply(why, whylen, 503, "out of memory");
    struct ap_logscrub_ctx ctx;
    scrub_ctx(&ctx, route, kr);
    size_t a = 0, lineno = 0, count = 0;
    while (a < len) {
        const char *nl = memchr(body + a, '\n', len - a);
        size_t e = nl ? (size_t)(nl - body) : len;
        size_t b = e;
        lineno++;
        if (b > a && body[b - 1] == '\r')
            b--;
        size_t s = a;
        while (s < b && (body[s] == ' ' || body[s] == '\t'))
            s++;
        a = e + 1;
        if (s == b)
            continue;
        int rc = ap_logscrub_json(&ctx, body + s, b - s, out);
        if (rc == -E2BIG) {
            count_rejected(lg);
            return reply(why, whylen, 413, "batch too large once anonymised (at most %zu bytes)",
                         out->limit);
        }
        if (rc == -ENOMEM) {
            count_rejected(lg);
            return reply(why, whylen, 503, "out of memory");
        }
        if (rc != 0) {
            count_rejected(lg);
            return reply(why, whylen, 400, "line %zu is not a JSON value%s", lineno,
                         rc == -ELOOP ? " (nested too deep)" : rc == -EILSEQ ? " (not UTF-8)" : "");
        }
        if (ap_buf_append(out, "\n", 1) != 0) {
            count_rejected(lg);
            return reply(why, whylen, 413, "batch too large once anonymised");
        }
        count++;
    }
    if (count == 0) {
        count_rejected(lg);
        return reply(why, whylen, 400, "no record in the batch");
    }
    h.count = (uint32_t)count;
    memcpy(out->data, &h, sizeof(h));
    struct ap_logring *ring = &lg->rings[worker];
    int was_empty = ap_logring_used(ring) == 0;
    if (ap_logring_push(ring, out->data, out->len) != 0) {
        count_rejected(lg);
        return reply(why, whylen, 503, "log queue full, try again later");
    }
    if (was_empty)
        uv_async_send(&lg->wake);
    *accepted = count;
    return 202;
}

/* ---- HTTP glue (worker thread) ---- */

static const struct ap_header *find_header(const struct ap_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct ap_header *h = &req->headers[i];
        if (h->name.len == n && strncasecmp(h->name.p, name, n) == 0)
            return h;
    }
    return NULL;
}

static int slice_is(struct ap_slice s, const char *v)
{
    return s.len == strlen(v) && strncasecmp(s.p, v, s.len) == 0;
}

static void respond(struct ap_exchange *ex, size_t accepted)
{
    struct ap_conn *c = ex->c;
    char body[64], head[256];
    int bl = snprintf(body, sizeof(body), "{\"accepted\":%zu}\n", accepted);
    int close = !ex->req.keep_alive || c->close_after || ex->w->draining;
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
                      bl, close ? "Connection: close\r\n"
                                : (ex->req.version_minor == 0 ? "Connection: keep-alive\r\n" : ""));
    ex->status = 202;
    ex->framing = AP_RESP_LENGTH;
    if (close)
        c->close_after = 1;
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init(body, (unsigned)bl)};
    if (ap_conn_writev(c, bufs, ex->is_head ? 1 : 2) != 0) {
        ap_conn_abort(c);
        return;
    }
    ex->resp_started = 1;
    ap_conn_response_done(c);
}

void ap_logrelay_exchange(struct ap_exchange *ex)
{
    AP_CHECK_OBJ(ex, AP_EXCHANGE_MAGIC);
    struct ap_conn *c = ex->c;
    if (c == NULL || ex->resp_started)
        return;
    if (!slice_is(ex->req.method, "POST")) {
        ap_conn_send_error(c, 405, "a route of type logs takes POST");
        return;
    }
    if (!ex->body_done)
        return; /* the whole batch first */
    const struct ap_header *ce = find_header(&ex->req, "Content-Encoding");
    enum ap_gzip_kind kind = 0;
    if (ce != NULL && (slice_is(ce->value, "gzip") || slice_is(ce->value, "x-gzip")))
        kind = AP_GZIP_GZIP;
    else if (ce != NULL && slice_is(ce->value, "deflate"))
        kind = AP_GZIP_DEFLATE;
    else if (ce != NULL && !slice_is(ce->value, "identity")) {
        ap_conn_send_error(c, 415, "Content-Encoding must be gzip, deflate or identity");
        return;
    }
    size_t n = (size_t)ex->body.bytes;
    char *body = malloc(n + 1);
    if (body == NULL) {
        ap_conn_send_error(c, 503, "out of memory");
        return;
    }
    size_t off = 0;
    for (struct ap_chunk *k = ex->body.head; k != NULL; k = k->next) {
        memcpy(body + off, k->data, k->len);
        off += k->len;
    }
    const char *data = body;
    size_t dlen = off;
    struct ap_arena zarena;
    ap_arena_init(&zarena, 64u * 1024u, 0);
    if (kind != 0) {
        char *z = NULL;
        size_t zl = 0;
        /* A decompressed batch may be 8 times the body limit, no more. */
        size_t max_out = (size_t)(ex->max_body ? ex->max_body : 1024u * 1024u) * 8u;
        int rc = ap_gzip_inflate(&zarena, kind, body, off, max_out, 1000, 64u * 1024u, &z, &zl);
        if (rc != 0) {
            free(body);
            ap_arena_free(&zarena);
            ap_conn_send_error(c, rc == -E2BIG ? 413 : 400,
                               rc == -E2BIG ? "decompressed batch too large" : "invalid compressed body");
            return;
        }
        data = z;
        dlen = zl;
    }
    size_t accepted = 0;
    char why[160];
    int status = ap_logrelay_ndjson(ex->w->id, &ex->w->keyring, ex->route, data, dlen, &accepted, why,
                                    sizeof(why));
    free(body);
    ap_arena_free(&zarena);
    if (status == 202)
        respond(ex, accepted);
    else
        ap_conn_send_error(c, status, why);
}

/* ---- syslog listeners (logger thread) ---- */

#define MAX_SYSLOG_CONNS 256

struct sconn_in {
    uv_tcp_t tcp;
    struct ap_logger_listener *l;
    struct sconn_in *prev, *next;
    struct ap_syslogmsg_deframer d;
    char rbuf[16384];
};

struct ap_logger_listener {
    struct ap_logger *lg;
    const struct ap_config_syslog_listen *cfg;
    uint64_t mask;
    uv_udp_t udp;
    uv_tcp_t tcp;
    int inited;
    char *ubuf;
    size_t ubuf_cap;
    struct sconn_in *conns;
    unsigned nconns;
};

static const char *const severity_names[] = {"emerg", "alert", "crit", "err",
                                             "warning", "notice", "info", "debug"};
static const char *const facility_names[] = {
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7"};

static int put_field(struct ap_buf *b, const char *name, struct ap_slice v, int *first)
{
    if (v.len == 0)
        return 0;
    int rc = ap_buf_append(b, *first ? "" : ",", *first ? 0 : 1);
    *first = 0;
    rc = rc ? rc : ap_logfmt_json_string(b, name, strlen(name));
    rc = rc ? rc : ap_buf_append(b, ":", 1);
    return rc ? rc : ap_logfmt_json_string(b, v.p, v.len);
}

/* An SD-PARAM value without its escapes (\" \\ \]). */
static size_t sd_unescape(struct ap_slice v, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] == '\\' && i + 1 < v.len && (v.p[i + 1] == '"' || v.p[i + 1] == '\\' || v.p[i + 1] == ']'))
            i++;
        out[n++] = v.p[i];
    }
    return n;
}

/* The message as a JSON object, before anonymisation. */
static int to_json(const struct ap_syslogmsg *m, int64_t now_us, struct ap_buf *b)
{
    int first = 1;
    char t[64]; /* room for any int the compiler imagines */
    time_t sec = (time_t)(now_us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((now_us / 1000) % 1000));
    int rc = ap_buf_append(b, "{", 1);
    rc = rc ? rc : put_field(b, "time", (struct ap_slice){t, strlen(t)}, &first);
    rc = rc ? rc : put_field(b, "timestamp", m->timestamp, &first);
    rc = rc ? rc : put_field(b, "host", m->hostname, &first);
    rc = rc ? rc : put_field(b, "app", m->app, &first);
    rc = rc ? rc : put_field(b, "procid", m->procid, &first);
    rc = rc ? rc : put_field(b, "msgid", m->msgid, &first);
    if (rc == 0 && m->pri >= 0) {
        const char *f = facility_names[(m->pri >> 3) < 24 ? m->pri >> 3 : 23];
        const char *s = severity_names[m->pri & 7];
        rc = put_field(b, "facility", (struct ap_slice){f, strlen(f)}, &first);
        rc = rc ? rc : put_field(b, "severity", (struct ap_slice){s, strlen(s)}, &first);
    }
    if (rc == 0 && m->sd.len > 0) {
        /* "sd": {"id": {"param": "value", ...}, ...}; a malformed rest is
         * kept as text in "sd_raw". */
        struct ap_syslogmsg_sditer it;
        struct ap_syslogmsg_param p;
        ap_syslogmsg_sd_init(&it, m->sd);
        rc = ap_buf_append(b, first ? "\"sd\":{" : ",\"sd\":{", first ? 6 : 7);
        first = 0;
        struct ap_slice cur = {NULL, 0};
        int open = 0, firstp = 1, r;
        char *tmp = malloc(m->sd.len + 1);
        if (tmp == NULL)
            return -ENOMEM;
        while (rc == 0 && (r = ap_syslogmsg_sd_next(&it, &p)) == 1) {
            if (!open || p.sd_id.p != cur.p) {
                if (open)
                    rc = ap_buf_append(b, "},", 2);
                rc = rc ? rc : ap_logfmt_json_string(b, p.sd_id.p, p.sd_id.len);
                rc = rc ? rc : ap_buf_append(b, ":{", 2);
                open = 1;
                firstp = 1;
                cur = p.sd_id;
            }
            if (p.name.len == 0)
                continue;
            size_t vl = sd_unescape(p.value, tmp);
            rc = rc ? rc : ap_buf_append(b, firstp ? "" : ",", firstp ? 0 : 1);
            firstp = 0;
            rc = rc ? rc : ap_logfmt_json_string(b, p.name.p, p.name.len);
            rc = rc ? rc : ap_buf_append(b, ":", 1);
            rc = rc ? rc : ap_logfmt_json_string(b, tmp, vl);
        }
        free(tmp);
        if (open)
            rc = rc ? rc : ap_buf_append(b, "}", 1);
        rc = rc ? rc : ap_buf_append(b, "}", 1);
        if (rc == 0 && r < 0)
            rc = put_field(b, "sd_raw", m->sd, &first);
    }
    rc = rc ? rc : put_field(b, "message", m->msg, &first);
    return rc ? rc : ap_buf_append(b, "}", 1);
}

static void on_message(void *arg, const char *msg, size_t n)
{
    struct ap_logger_listener *l = arg;
    struct ap_logger *lg = l->lg;
    AP_LOGSTAT_ADD(lg->syslog_messages, 1);
    if (l->cfg->route == NULL || l->mask == 0)
        return;
    struct ap_syslogmsg m;
    ap_syslogmsg_parse(msg, n, &m);
    int64_t now = wall_us();
    ap_buf_reset(&lg->relay_raw);
    ap_buf_reset(&lg->relay_out);
    struct ap_logscrub_ctx ctx;
    scrub_ctx(&ctx, l->cfg->route, &lg->keyring);
    int rc = to_json(&m, now, &lg->relay_raw);
    rc = rc ? rc : ap_logscrub_json(&ctx, lg->relay_raw.data, lg->relay_raw.len, &lg->relay_out);
    if (rc != 0) {
        count_rejected(lg);
        return;
    }
    AP_LOGSTAT_ADD(lg->relay_records, 1);
    ap_logger__dispatch_lines(lg, l->mask, (uint8_t)(m.pri >= 0 ? m.pri : 13), now, lg->relay_out.data,
                              lg->relay_out.len);
}

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ap_logger_listener *l = h->data;
    buf->base = l->ubuf;
    buf->len = l->ubuf_cap;
}

static void on_udp_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                        unsigned flags)
{
    struct ap_logger_listener *l = u->data;
    if (nread <= 0)
        return;
    size_t n = (size_t)nread;
    if (n > l->cfg->max_message_bytes)
        n = l->cfg->max_message_bytes;
    on_message(l, buf->base, n);
}

static void on_sconn_closed(uv_handle_t *h)
{
    struct sconn_in *sc = h->data;
    ap_syslogmsg_deframer_free(&sc->d);
    free(sc);
}

static void sconn_close(struct sconn_in *sc)
{
    struct ap_logger_listener *l = sc->l;
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        l->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    l->nconns--;
    uv_close((uv_handle_t *)&sc->tcp, on_sconn_closed);
}

static void on_sconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sconn_in *sc = h->data;
    buf->base = sc->rbuf;
    buf->len = sizeof(sc->rbuf);
}

static void on_sconn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn_in *sc = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* A last message without its LF still counts. */
        if (sc->d.len > 0 && sc->d.skip == 0 && !sc->d.skip_to_lf)
            ap_syslogmsg_deframer_feed(&sc->d, "\n", 1, on_message, sc->l);
        sconn_close(sc);
        return;
    }
    if (ap_syslogmsg_deframer_feed(&sc->d, buf->base, (size_t)nread, on_message, sc->l) != 0)
        sconn_close(sc);
}

static void on_tmp_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_syslog_conn(uv_stream_t *server, int status)
{
    struct ap_logger_listener *l = server->data;
    if (status < 0)
        return;
    struct sconn_in *sc = calloc(1, sizeof(*sc));
    if (sc == NULL || l->nconns >= MAX_SYSLOG_CONNS) {
        /* Take it off the queue so the loop does not spin. */
        free(sc);
        uv_tcp_t *tmp = malloc(sizeof(*tmp));
        if (tmp == NULL)
            return;
        uv_tcp_init(&l->lg->loop, tmp);
        tmp->data = tmp;
        uv_accept(server, (uv_stream_t *)tmp);
        uv_close((uv_handle_t *)tmp, on_tmp_closed);
        return;
    }
    uv_tcp_init(&l->lg->loop, &sc->tcp);
    sc->tcp.data = sc;
    sc->l = l;
    ap_syslogmsg_deframer_init(&sc->d, l->cfg->max_message_bytes);
    sc->next = l->conns;
    if (l->conns)
        l->conns->prev = sc;
    l->conns = sc;
    l->nconns++;
    if (uv_accept(server, (uv_stream_t *)&sc->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&sc->tcp, on_sconn_alloc, on_sconn_read) != 0)
        sconn_close(sc);
}

/* Set up listener `l` for `lc` on the logger loop: bind it, or, when fd
 * is not negative, take over that socket (bound by the main thread). */
static int listener_open(struct ap_logger *lg, struct ap_logger_listener *l,
                         const struct ap_config_syslog_listen *lc, int fd)
{
    l->lg = lg;
    l->cfg = lc;
    l->mask = lc->route != NULL ? route_mask(lg, lc->route) : 0;
    int rc;
    if (lc->transport == AP_LOG_UDP) {
        l->ubuf_cap = lc->max_message_bytes + 1;
        l->ubuf = malloc(l->ubuf_cap);
        if (l->ubuf == NULL) {
            if (fd >= 0)
                close(fd);
            return -ENOMEM;
        }
        rc = uv_udp_init(&lg->loop, &l->udp);
        l->udp.data = l;
        l->inited = rc == 0;
        if (rc == 0)
            rc = fd >= 0 ? uv_udp_open(&l->udp, fd)
                         : uv_udp_bind(&l->udp, (const struct sockaddr *)&lc->addr, UV_UDP_REUSEADDR);
        if (rc == 0)
            rc = uv_udp_recv_start(&l->udp, on_udp_alloc, on_udp_recv);
    } else {
        rc = uv_tcp_init(&lg->loop, &l->tcp);
        l->tcp.data = l;
        l->inited = rc == 0;
        if (rc == 0)
            rc = fd >= 0 ? uv_tcp_open(&l->tcp, fd) : uv_tcp_bind(&l->tcp, (const struct sockaddr *)&lc->addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, 128, on_syslog_conn);
    }
    if (rc != 0) {
        ap_log(AP_LOG_ERROR, "syslog_listen %s: %s", lc->address, uv_strerror(rc));
        return -EADDRINUSE;
    }
    ap_log(AP_LOG_INFO, "syslog listener on %s for route %s", lc->address,
           lc->route_name ? lc->route_name : "?");
    return 0;
}

int ap_logrelay_listen_start(struct ap_logger *lg)
{
    const struct ap_config *cfg = lg->cfg;
    if (cfg->nsyslog_listen == 0)
        return 0;
    lg->listeners = calloc(cfg->nsyslog_listen, sizeof(*lg->listeners));
    if (lg->listeners == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->nsyslog_listen; i++) {
        struct ap_logger_listener *l = calloc(1, sizeof(*l));
        if (l == NULL)
            return -ENOMEM;
        lg->listeners[i] = l;
        lg->nlisteners = i + 1;
        int rc = listener_open(lg, l, &cfg->syslog_listen[i], -1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
}

static void on_listener_freed(uv_handle_t *h)
{
    struct ap_logger_listener *l = h->data;
    free(l->ubuf);
    free(l);
}

/* Close the connections and the socket of `l`; `cb` runs when it closed. */
static void listener_close(struct ap_logger_listener *l, uv_close_cb cb)
{
    while (l->conns != NULL)
        sconn_close(l->conns);
    if (l->inited) {
        if (l->cfg->transport == AP_LOG_UDP)
            uv_close((uv_handle_t *)&l->udp, cb);
        else
            uv_close((uv_handle_t *)&l->tcp, cb);
        l->inited = 0;
    } else if (cb == on_listener_freed) {
        free(l->ubuf);
        free(l);
    }
}

void ap_logrelay_listen_stop(struct ap_logger *lg)
{
    if (lg->listeners_stopped)
        return;
    lg->listeners_stopped = 1;
    for (size_t i = 0; i < lg->nlisteners; i++)
        if (lg->listeners[i] != NULL)
            listener_close(lg->listeners[i], on_listener_closed);
}

void ap_logrelay_listen_remask(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nlisteners; i++) {
        struct ap_logger_listener *l = lg->listeners[i];
        if (l != NULL)
            l->mask = l->cfg->route != NULL ? route_mask(lg, l->cfg->route) : 0;
    }
}

void ap_logrelay_listen_update(struct ap_logger *lg, const struct ap_config *cfg, const int *keep,
                               const int *fds)
{
    size_t n = cfg->nsyslog_listen;
    struct ap_logger_listener **nl = calloc(n ? n : 1, sizeof(*nl));
    if (nl == NULL) {
        /* Keep the old listeners: the main thread's sockets are closed. */
        ap_log(AP_LOG_ERROR, "logger: out of memory: syslog listeners not reloaded");
        for (size_t j = 0; j < n; j++)
            if (keep[j] < 0 && fds[j] >= 0)
                close(fds[j]);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        if (keep[j] >= 0 && (size_t)keep[j] < lg->nlisteners && lg->listeners[keep[j]] != NULL) {
            nl[j] = lg->listeners[keep[j]];
            lg->listeners[keep[j]] = NULL;
            /* The new configuration's copy: same address, maybe another route. */
            nl[j]->cfg = &cfg->syslog_listen[j];
        }
    }
    for (size_t i = 0; i < lg->nlisteners; i++) {
        if (lg->listeners[i] != NULL) {
            ap_log(AP_LOG_INFO, "syslog listener on %s closed (reload)", lg->listeners[i]->cfg->address);
            listener_close(lg->listeners[i], on_listener_freed);
        }
    }
    free(lg->listeners);
    lg->listeners = nl;
    lg->nlisteners = n;
    for (size_t j = 0; j < n; j++) {
        if (nl[j] != NULL)
            continue;
        struct ap_logger_listener *l = calloc(1, sizeof(*l));
        if (l == NULL || listener_open(lg, l, &cfg->syslog_listen[j], fds[j]) != 0) {
            if (l == NULL) {
                close(fds[j]);
                ap_log(AP_LOG_ERROR, "syslog_listen %s: out of memory", cfg->syslog_listen[j].address);
            } else {
                listener_close(l, on_listener_freed);
            }
            continue;
        }
        nl[j] = l;
    }
    ap_logrelay_listen_remask(lg);
}

void ap_logrelay_listen_free(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nlisteners; i++) {
        if (lg->listeners[i] != NULL) {
            free(lg->listeners[i]->ubuf);
            free(lg->listeners[i]);
        }
    }
    free(lg->listeners);
    lg->listeners = NULL;
    lg->nlisteners = 0;
}

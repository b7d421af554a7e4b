/* Syslog sink: RFC 5424 (or RFC 3164) messages over UDP (one datagram per
 * record, RFC 5426), TCP (octet counting, RFC 6587 3.4.1) or a unix
 * datagram socket such as /dev/log. Syslog has no acknowledgements: over
 * TCP a record counts as delivered once the kernel took it, over UDP once
 * it was sent. A refused datagram (ICMP port unreachable on the connected
 * socket) or a broken connection makes the sink retry and spool. */
#include "anonproxy/common.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "anonproxy/buf.h"
#include "anonproxy/syslogmsg.h"
#include "logger-int.h"

struct sconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct ap_logsink *s; /* NULL once abandoned: its callbacks do nothing */
    int connected;
    int busy;             /* a connect or a write of the sink's delivery is pending */
};

struct syslogsink {
    uv_udp_t udp;
    int udp_inited;
    int udp_connected;
    int ufd;
    struct sconn *conn;
    uv_timer_t timer;
    struct ap_buf buf;
    char host[256];
    int pid;
};

static int sys_init(struct ap_logsink *s)
{
    struct syslogsink *y = calloc(1, sizeof(*y));
    if (y == NULL)
        return -ENOMEM;
    s->impl = y;
    y->ufd = -1;
    y->pid = (int)getpid();
    if (gethostname(y->host, sizeof(y->host) - 1) != 0)
        memcpy(y->host, "-", 2);
    ap_buf_init(&y->buf, 8u * 1024u * 1024u);
    uv_timer_init(&s->lg->loop, &y->timer);
    y->timer.data = s;
    if (s->cfg->transport == AP_LOG_UDP) {
        int rc = uv_udp_init(&s->lg->loop, &y->udp);
        if (rc != 0)
            return -EIO;
        y->udp_inited = 1;
        y->udp.data = s;
    }
    return 0;
}

/* Append one message (header, record) to buf, cut to max_message_bytes. */
static int format_msg(struct ap_logsink *s, const struct ap_lrec *r, struct ap_buf *out, int framed)
{
    struct syslogsink *y = s->impl;
    struct ap_syslogmsg_hdr h = {
        .pri = r->pri == 255 ? (int)(s->cfg->facility * 8 + 6) : r->pri,
        .time_us = r->time_us,
        .hostname = y->host,
        .app = s->cfg->app_name,
        .procid = y->pid,
        .msgid = NULL,
    };
    char head[256];
    int hl = ap_syslogmsg_header((enum ap_syslogmsg_format)s->cfg->syslog_format, &h, head, sizeof(head));
    if (hl < 0)
        return hl;
    size_t total = (size_t)hl + r->len;
    size_t max = s->cfg->max_message_bytes;
    if (total > max)
        total = max > (size_t)hl ? max : (size_t)hl;
    size_t body = total - (size_t)hl;
    int rc = 0;
    if (framed) {
        char pre[24];
        int pl = ap_syslogmsg_octet_prefix(total, pre, sizeof(pre));
        rc = pl < 0 ? pl : ap_buf_append(out, pre, (size_t)pl);
    }
    rc = rc ? rc : ap_buf_append(out, head, (size_t)hl);
    rc = rc ? rc : ap_buf_append(out, r->data, body);
    return rc;
}

/* ---- UDP ---- */

static void udp_deliver(struct ap_logsink *s, struct ap_lrec *first, size_t n)
{
    struct syslogsink *y = s->impl;
    if (!y->udp_connected) {
        int rc = uv_udp_connect(&y->udp, (const struct sockaddr *)&s->cfg->addr);
        if (rc != 0 && rc != UV_EISCONN) {
            ap_logsink_error(s, "cannot connect to %s: %s", s->cfg->address, uv_strerror(rc));
            ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
            return;
        }
        y->udp_connected = 1;
    }
    struct ap_lrec *r = first;
    for (size_t i = 0; i < n; i++, r = r->next) {
        ap_buf_reset(&y->buf);
        if (format_msg(s, r, &y->buf, 0) != 0) {
            ap_logsink_done(s, AP_LOGSINK_BUSY, i, 0);
            return;
        }
        uv_buf_t b = uv_buf_init(y->buf.data, (unsigned)y->buf.len);
        int rc = uv_udp_try_send(&y->udp, &b, 1, NULL);
        if (rc >= 0)
            continue;
        if (rc == UV_EAGAIN || rc == UV_ENOBUFS) {
            ap_logsink_done(s, AP_LOGSINK_BUSY, i, 0);
            return;
        }
        ap_logsink_error(s, "send to %s failed: %s", s->cfg->address, uv_strerror(rc));
        ap_logsink_done(s, AP_LOGSINK_RETRY, i, 0);
        return;
    }
    ap_logsink_done(s, AP_LOGSINK_OK, n, 0);
}

/* ---- unix datagram ---- */

static void unix_deliver(struct ap_logsink *s, struct ap_lrec *first, size_t n)
{
    struct syslogsink *y = s->impl;
    if (y->ufd < 0) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)&s->cfg->addr, s->cfg->addrlen) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            ap_logsink_error(s, "cannot connect to %s: %s", s->cfg->address, strerror(e));
            ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
            return;
        }
        y->ufd = fd;
    }
    struct ap_lrec *r = first;
    for (size_t i = 0; i < n; i++, r = r->next) {
        ap_buf_reset(&y->buf);
        if (format_msg(s, r, &y->buf, 0) != 0) {
            ap_logsink_done(s, AP_LOGSINK_BUSY, i, 0);
            return;
        }
        size_t len = y->buf.len;
        for (;;) {
            ssize_t w = send(y->ufd, y->buf.data, len, MSG_NOSIGNAL);
            if (w >= 0)
                break;
            if (errno == EINTR)
                continue;
            if (errno == EMSGSIZE && len > 1024) {
                /* The socket takes less than max_message_bytes: cut. */
                len = 1024;
                continue;
            }
            int e = errno;
            if (e == EAGAIN || e == ENOBUFS) {
                ap_logsink_done(s, AP_LOGSINK_BUSY, i, 0);
                return;
            }
            close(y->ufd);
            y->ufd = -1;
            ap_logsink_error(s, "send to %s failed: %s", s->cfg->address, strerror(e));
            ap_logsink_done(s, AP_LOGSINK_RETRY, i, 0);
            return;
        }
    }
    ap_logsink_done(s, AP_LOGSINK_OK, n, 0);
}

/* ---- TCP ---- */

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Abandon the connection; a delivery that was waiting on it failed. */
static void drop_conn(struct ap_logsink *s, int fail_delivery)
{
    struct syslogsink *y = s->impl;
    struct sconn *c = y->conn;
    if (c == NULL)
        return;
    y->conn = NULL;
    int busy = c->busy;
    c->s = NULL;
    c->tcp.data = c;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_timer_stop(&y->timer);
    if (busy && fail_delivery)
        ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
}

static void on_tcp_timeout(uv_timer_t *t)
{
    struct ap_logsink *s = t->data;
    ap_logsink_error(s, "%s did not take the records within %llu ms", s->cfg->address,
                     (unsigned long long)s->cfg->timeout_ms);
    drop_conn(s, 1);
}

static void on_tcp_write(uv_write_t *req, int status)
{
    struct sconn *c = req->data;
    struct ap_logsink *s = c->s;
    if (s == NULL)
        return;
    struct syslogsink *y = s->impl;
    c->busy = 0;
    uv_timer_stop(&y->timer);
    if (status != 0) {
        ap_logsink_error(s, "write to %s failed: %s", s->cfg->address, uv_strerror(status));
        drop_conn(s, 0);
        ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
        return;
    }
    ap_logsink_done(s, AP_LOGSINK_OK, s->inflight, 0);
}

static void tcp_write(struct ap_logsink *s)
{
    struct syslogsink *y = s->impl;
    struct sconn *c = y->conn;
    uv_buf_t b = uv_buf_init(y->buf.data, (unsigned)y->buf.len);
    c->wreq.data = c;
    c->busy = 1;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_tcp_write);
    if (rc != 0) {
        c->busy = 0;
        ap_logsink_error(s, "write to %s failed: %s", s->cfg->address, uv_strerror(rc));
        drop_conn(s, 0);
        ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
    }
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[256];
    buf->base = sink;
    buf->len = sizeof(sink);
}

/* The receiver says nothing; a read only tells that it closed. */
static void on_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *c = st->data;
    if (c->s == NULL || nread >= 0)
        return;
    drop_conn(c->s, 1);
}

static void on_tcp_connect(uv_connect_t *req, int status)
{
    struct sconn *c = req->data;
    struct ap_logsink *s = c->s;
    if (s == NULL)
        return;
    c->busy = 0;
    if (status != 0) {
        ap_logsink_error(s, "cannot connect to %s: %s", s->cfg->address, uv_strerror(status));
        drop_conn(s, 0);
        ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
        return;
    }
    c->connected = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read);
    tcp_write(s);
}

static void tcp_deliver(struct ap_logsink *s, struct ap_lrec *first, size_t n)
{
    struct syslogsink *y = s->impl;
    ap_buf_reset(&y->buf);
    struct ap_lrec *r = first;
    for (size_t i = 0; i < n; i++, r = r->next) {
        if (format_msg(s, r, &y->buf, 1) != 0) {
            ap_logsink_done(s, AP_LOGSINK_BUSY, 0, 0);
            return;
        }
    }
    uv_timer_start(&y->timer, on_tcp_timeout, s->cfg->timeout_ms, 0);
    if (y->conn != NULL && y->conn->connected) {
        tcp_write(s);
        return;
    }
    struct sconn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        uv_timer_stop(&y->timer);
        ap_logsink_done(s, AP_LOGSINK_BUSY, 0, 0);
        return;
    }
    c->s = s;
    uv_tcp_init(&s->lg->loop, &c->tcp);
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    c->creq.data = c;
    y->conn = c;
    c->busy = 1;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&s->cfg->addr, on_tcp_connect);
    if (rc != 0) {
        c->busy = 0;
        ap_logsink_error(s, "cannot connect to %s: %s", s->cfg->address, uv_strerror(rc));
        drop_conn(s, 0);
        ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
    }
}

/* ---- ops ---- */

static void sys_deliver(struct ap_logsink *s, struct ap_lrec *first, size_t n)
{
    switch (s->cfg->transport) {
    case AP_LOG_UDP: udp_deliver(s, first, n); break;
    case AP_LOG_UNIX: unix_deliver(s, first, n); break;
    case AP_LOG_TCP:
    default: tcp_deliver(s, first, n); break;
    }
}

static void sys_abort(struct ap_logsink *s)
{
    struct syslogsink *y = s->impl;
    if (y != NULL && y->conn != NULL)
        y->conn->busy = 0;
    if (y != NULL)
        drop_conn(s, 0);
}

static void sys_close(struct ap_logsink *s)
{
    struct syslogsink *y = s->impl;
    if (y == NULL)
        return;
    if (y->conn != NULL)
        y->conn->busy = 0;
    drop_conn(s, 0);
    if (y->udp_inited)
        uv_close((uv_handle_t *)&y->udp, ap_logsink_on_closed);
    uv_close((uv_handle_t *)&y->timer, ap_logsink_on_closed);
    if (y->ufd >= 0)
        close(y->ufd);
    y->ufd = -1;
}

static void sys_destroy(struct ap_logsink *s)
{
    struct syslogsink *y = s->impl;
    if (y == NULL)
        return;
    ap_buf_free(&y->buf);
    free(y);
    s->impl = NULL;
}

const struct ap_logsink_ops ap_logsink_syslog_ops = {
    .name = "syslog",
    .init = sys_init,
    .deliver = sys_deliver,
    .abort = sys_abort,
    .close = sys_close,
    .destroy = sys_destroy,
    .batching = 0,
};

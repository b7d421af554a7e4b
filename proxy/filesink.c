/* The embedded `file:` upstream: every forwarded request becomes one JSON
 * line appended to a file, so a new user sees exactly what an analytics
 * backend would receive without installing one. The write runs on libuv's
 * thread pool (uv_fs_write), never blocking the worker loop; the client gets
 * 204 once the line is written. One write(2) per line on an O_APPEND
 * descriptor keeps lines from several workers whole. */
#include "anonproxy/common.h"

#include <time.h>

#include "anonproxy/buf.h"
#include "anonproxy/log.h"
#include "net.h"

struct sinkreq {
    uv_fs_t fs;
    struct ap_exchange *ex;
    struct ap_buf line;
    size_t written;
};

static int json_str(struct ap_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (ap_buf_append(b, "\"", 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[6];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            if (ap_buf_append(b, esc, 2))
                return -1;
        } else if (c < 0x20 || c >= 0x7f) {
            /* Header bytes are not UTF-8 by contract: escape them all, read
             * as Latin-1, so the line is always valid JSON. */
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            if (ap_buf_append(b, esc, 6))
                return -1;
        } else if (ap_buf_append(b, (const char *)&c, 1)) {
            return -1;
        }
    }
    return ap_buf_append(b, "\"", 1);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int is_utf8(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(u + i, n - i);
        if (l == 0)
            return 0;
        i += l;
    }
    return 1;
}

/* JSON string of valid UTF-8 text: only quotes, backslashes and controls are
 * escaped; multi-byte characters pass as they are. */
static int json_utf8(struct ap_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (ap_buf_append(b, "\"", 1))
        return -1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        if (ap_buf_append(b, p + start, i - start))
            return -1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            if (ap_buf_append(b, esc, 2))
                return -1;
        } else if (ap_buf_append(b, esc, 6)) {
            return -1;
        }
        start = i + 1;
    }
    if (ap_buf_append(b, p + start, n - start))
        return -1;
    return ap_buf_append(b, "\"", 1);
}

static int base64(struct ap_buf *b, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (ap_buf_reserve(b, (n + 2) / 3 * 4 + 2))
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int build_line(struct ap_exchange *ex, struct ap_buf *b)
{
    const struct ap_request *r = &ex->req;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int rc = ap_buf_appendf(b, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"method\":",
                            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                            tm.tm_sec, ts.tv_nsec / 1000000);
    rc = rc ? rc : json_str(b, r->method.p, r->method.len);
    rc = rc ? rc : ap_buf_append(b, ",\"target\":", 10);
    const char *tend = r->target.p + r->target.len;
    rc = rc ? rc : json_str(b, r->path.p, (size_t)(tend - r->path.p));
    rc = rc ? rc : ap_buf_append(b, ",\"headers\":[[\"Host\",", 20);
    rc = rc ? rc : json_str(b, r->host.p, r->host.len);
    rc = rc ? rc : ap_buf_append(b, "]", 1);
    for (size_t i = 0; i < r->nheaders && rc == 0; i++) {
        const struct ap_header *h = &r->headers[i];
        if (h->flags & (AP_HEADER_CONNECTION_NAMED | AP_HEADER_DROPPED))
            continue;
        rc = ap_buf_append(b, ",[", 2);
        rc = rc ? rc : json_str(b, h->name.p, h->name.len);
        rc = rc ? rc : ap_buf_append(b, ",", 1);
        rc = rc ? rc : json_str(b, h->value.p, h->value.len);
        rc = rc ? rc : ap_buf_append(b, "]", 1);
    }
    if (rc == 0 && (r->content_length >= 0 || r->chunked))
        rc = ap_buf_appendf(b, ",[\"Content-Length\",\"%llu\"]",
                            (unsigned long long)ex->body_bytes);
    rc = rc ? rc : ap_buf_append(b, "],\"body\":", 9);
    /* Gather the body into one piece for the UTF-8 check. */
    struct ap_buf body;
    ap_buf_init(&body, ex->body_bytes + 1);
    for (struct ap_chunk *k = ex->body.head; k != NULL && rc == 0; k = k->next)
        rc = ap_buf_append(&body, k->data, k->len);
    if (rc == 0) {
        if (is_utf8(body.data, body.len)) {
            rc = json_utf8(b, body.data ? body.data : "", body.len);
            rc = rc ? rc : ap_buf_append(b, ",\"body_encoding\":\"utf8\"}\n", 25);
        } else {
            rc = base64(b, (const unsigned char *)body.data, body.len);
            rc = rc ? rc : ap_buf_append(b, ",\"body_encoding\":\"base64\"}\n", 27);
        }
    }
    ap_buf_free(&body);
    return rc;
}

static void respond(struct ap_exchange *ex, int ok)
{
    struct ap_conn *c = ex->c;
    if (!ok) {
        ap_conn_send_error(c, 503, "event sink write failed");
        return;
    }
    int close = !ex->req.keep_alive || c->close_after || ex->w->draining;
    char head[128];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 204 No Content\r\n%s\r\n",
                     close ? "Connection: close\r\n"
                           : (ex->req.version_minor == 0 ? "Connection: keep-alive\r\n" : ""));
    ex->status = 204;
    ex->framing = AP_RESP_NONE;
    if (close)
        c->close_after = 1;
    if (ap_conn_write(c, head, (size_t)n) != 0) {
        ap_conn_abort(c);
        return;
    }
    ex->resp_started = 1;
    ap_conn_response_done(c);
}

static void on_written(uv_fs_t *fs)
{
    struct sinkreq *sr = (struct sinkreq *)fs;
    struct ap_exchange *ex = sr->ex;
    ssize_t res = fs->result;
    uv_fs_req_cleanup(fs);
    if (res > 0 && sr->written + (size_t)res < sr->line.len) {
        /* Short write (disk nearly full, signal): write the rest. */
        sr->written += (size_t)res;
        uv_buf_t b = uv_buf_init(sr->line.data + sr->written, (unsigned)(sr->line.len - sr->written));
        if (uv_fs_write(&ex->w->loop, &sr->fs, ex->ups->fd, &b, 1, -1, on_written) == 0)
            return;
        res = -1;
    }
    if (res < 0)
        ap_log(AP_LOG_ERROR, "file upstream %s: write failed: %s", ex->ups->up->file_path,
               uv_strerror((int)res));
    ap_buf_free(&sr->line);
    free(sr);
    ex->sink_busy = 0;
    if (ex->c == NULL) {
        ap_exchange_free(ex); /* the client left while we wrote */
        return;
    }
    respond(ex, res >= 0);
}

void ap_filesink_deliver(struct ap_exchange *ex)
{
    struct sinkreq *sr = calloc(1, sizeof(*sr));
    if (sr == NULL) {
        ap_conn_send_error(ex->c, 503, "out of memory");
        return;
    }
    sr->ex = ex;
    ap_buf_init(&sr->line, ex->body_bytes * 2 + 65536 + (size_t)ex->w->cfg->limits.header_bytes * 6);
    if (build_line(ex, &sr->line) != 0) {
        ap_buf_free(&sr->line);
        free(sr);
        ap_conn_send_error(ex->c, 503, "event line too large");
        return;
    }
    uv_buf_t b = uv_buf_init(sr->line.data, (unsigned)sr->line.len);
    ex->sink_busy = 1;
    int r = uv_fs_write(&ex->w->loop, &sr->fs, ex->ups->fd, &b, 1, -1, on_written);
    if (r < 0) {
        ex->sink_busy = 0;
        ap_buf_free(&sr->line);
        free(sr);
        ap_conn_send_error(ex->c, 503, "event sink write failed");
    }
}

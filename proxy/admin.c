/* The admin listener, served by the main thread's loop (never a worker):
 *   GET /metrics   Prometheus text format 0.0.4
 *   GET /healthz   200 while the process runs
 *   GET /readyz    200, or 503 while draining
 *   POST /reload   reload the configuration file, like SIGHUP
 *   GET /config    the effective configuration (secrets masked)
 * One request per connection; an optional bearer token guards everything.
 * Requests are read with the same strict head parser as the proxy. */
#include "anonproxy/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "anonproxy/arena.h"
#include "anonproxy/buf.h"
#include "anonproxy/config.h"
#include "anonproxy/geo.h"
#include "anonproxy/head.h"
#include "anonproxy/log.h"
#include "anonproxy/logger.h"
#include "anonproxy/policy.h"
#include "anonproxy/tls.h"
#include "net.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_MAX_CONNS 64

struct admin_conn;

struct ap_admin {
    uv_tcp_t tcp;
    struct ap_server *s;
    struct admin_conn *conns;
    char token[256];
    size_t token_len;
    unsigned nconns;
};

struct admin_conn {
    uv_tcp_t tcp;
    struct ap_admin *a;
    struct admin_conn *prev, *next;
    struct ap_buf in;
    struct ap_buf out;
    uv_write_t wreq;
    int responded;
};

/* ---- systemd notify ---- */

void ap_notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if (plen >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, plen);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    if (sendto(fd, msg, (size_t)(n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1), MSG_NOSIGNAL,
               (struct sockaddr *)&sa, salen) < 0)
        ap_log(AP_LOG_DEBUG, "NOTIFY_SOCKET: %s", strerror(errno));
    close(fd);
}

/* ---- metrics ---- */

static void hist_sum(struct ap_hist *dst, const struct ap_hist *src)
{
    for (int i = 0; i <= AP_HIST_BUCKETS; i++)
        dst->bucket[i] += AP_STAT_GET(src->bucket[i]);
    dst->count += AP_STAT_GET(src->count);
    dst->sum_us += AP_STAT_GET(src->sum_us);
}

static void label_escape(struct ap_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            ap_buf_append(b, "\\", 1);
        if (*s == '\n') {
            ap_buf_append(b, "\\n", 2);
            continue;
        }
        ap_buf_append(b, s, 1);
    }
}

static void hist_print(struct ap_buf *b, const char *name, const char *route, const struct ap_hist *h)
{
    uint64_t cum = 0;
    for (int i = 0; i <= AP_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        ap_buf_appendf(b, "%s_bucket{route=\"", name);
        label_escape(b, route);
        if (i < AP_HIST_BUCKETS)
            ap_buf_appendf(b, "\",le=\"%g\"} %llu\n", ap_hist_bounds[i], (unsigned long long)cum);
        else
            ap_buf_appendf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    ap_buf_appendf(b, "%s_sum{route=\"", name);
    label_escape(b, route);
    ap_buf_appendf(b, "\"} %.6f\n", (double)h->sum_us / 1e6);
    ap_buf_appendf(b, "%s_count{route=\"", name);
    label_escape(b, route);
    ap_buf_appendf(b, "\"} %llu\n", (unsigned long long)h->count);
}

static void render_metrics(struct ap_server *s, struct ap_buf *b)
{
    static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    unsigned n = s->nroute_names;
    struct ap_route_stats *sum = calloc(n ? n : 1, sizeof(*sum));
    struct ap_engine_stats es;
    memset(&es, 0, sizeof(es));
    uint64_t conns = 0;
    if (sum == NULL)
        return;
    for (unsigned w = 0; w < s->nworkers; w++) {
        struct ap_worker *wk = &s->workers[w];
        if (wk->rstats == NULL)
            continue;
        conns += __atomic_load_n(&wk->nconns, __ATOMIC_RELAXED);
        for (unsigned r = 0; r < n; r++) {
            for (int k = 1; k <= 5; k++)
                sum[r].status[k] += AP_STAT_GET(wk->rstats[r].status[k]);
            hist_sum(&sum[r].request, &wk->rstats[r].request);
            hist_sum(&sum[r].upstream, &wk->rstats[r].upstream);
        }
        for (int k = 0; k < AP_AUDIT_NKINDS; k++)
            for (int a = 0; a < AP_ACT_NACTIONS; a++)
                es.actions[k][a] += AP_STAT_GET(wk->stats.actions[k][a]);
        es.requests += AP_STAT_GET(wk->stats.requests);
        es.errors += AP_STAT_GET(wk->stats.errors);
    }

    ap_buf_appendf(b, "# HELP anonproxy_requests_total Requests answered, by route and status class.\n"
                      "# TYPE anonproxy_requests_total counter\n");
    for (unsigned r = 0; r < n; r++)
        for (int k = 1; k <= 5; k++) {
            ap_buf_appendf(b, "anonproxy_requests_total{route=\"");
            label_escape(b, s->route_names[r]);
            ap_buf_appendf(b, "\",code=\"%s\"} %llu\n", classes[k],
                           (unsigned long long)sum[r].status[k]);
        }
    ap_buf_appendf(b, "# HELP anonproxy_request_duration_seconds Time from the request head to the end of the response.\n"
                      "# TYPE anonproxy_request_duration_seconds histogram\n");
    for (unsigned r = 0; r < n; r++)
        hist_print(b, "anonproxy_request_duration_seconds", s->route_names[r], &sum[r].request);
    ap_buf_appendf(b, "# HELP anonproxy_upstream_duration_seconds Time from the upstream request to the end of its response.\n"
                      "# TYPE anonproxy_upstream_duration_seconds histogram\n");
    for (unsigned r = 0; r < n; r++)
        hist_print(b, "anonproxy_upstream_duration_seconds", s->route_names[r], &sum[r].upstream);
    ap_buf_appendf(b, "# HELP anonproxy_active_connections Client connections open.\n"
                      "# TYPE anonproxy_active_connections gauge\n"
                      "anonproxy_active_connections %llu\n", (unsigned long long)conns);
    ap_buf_appendf(b, "# HELP anonproxy_rule_actions_total What the anonymisation rules did, by kind of item and action.\n"
                      "# TYPE anonproxy_rule_actions_total counter\n");
    for (int k = 0; k < AP_AUDIT_NKINDS; k++)
        for (int a = 0; a < AP_ACT_NACTIONS; a++)
            if (es.actions[k][a] != 0)
                ap_buf_appendf(b, "anonproxy_rule_actions_total{kind=\"%s\",action=\"%s\"} %llu\n",
                               ap_audit_kind_name((enum ap_audit_kind)k),
                               ap_audit_action_name((enum ap_audit_action)a),
                               (unsigned long long)es.actions[k][a]);
    ap_buf_appendf(b, "# HELP anonproxy_engine_requests_total Requests rewritten by the engine.\n"
                      "# TYPE anonproxy_engine_requests_total counter\n"
                      "anonproxy_engine_requests_total %llu\n"
                      "# HELP anonproxy_engine_errors_total Requests the engine refused to rewrite.\n"
                      "# TYPE anonproxy_engine_errors_total counter\n"
                      "anonproxy_engine_errors_total %llu\n",
                   (unsigned long long)es.requests, (unsigned long long)es.errors);
    static const char *const fail_names[AP_TLS_FAIL_NREASONS] = {
        "protocol", "cipher", "not_tls", "alpn", "alert", "verify", "timeout", "eof", "other"};
    ap_buf_appendf(b, "# HELP anonproxy_tls_handshakes_total TLS handshakes on listeners, by result.\n"
                      "# TYPE anonproxy_tls_handshakes_total counter\n");
    for (size_t i = 0; s->tls != NULL && i < s->cfg->nlisteners; i++) {
        const struct ap_config_listener *l = &s->cfg->listeners[i];
        struct ap_tls_stats ts;
        if (ap_tls_listener_stats(s->tls, l->address, &ts) != 0)
            continue;
        ap_buf_appendf(b, "anonproxy_tls_handshakes_total{listener=\"");
        label_escape(b, l->address);
        ap_buf_appendf(b, "\",result=\"full\"} %llu\n",
                       (unsigned long long)(ts.handshakes - ts.resumed));
        ap_buf_appendf(b, "anonproxy_tls_handshakes_total{listener=\"");
        label_escape(b, l->address);
        ap_buf_appendf(b, "\",result=\"resumed\"} %llu\n", (unsigned long long)ts.resumed);
        for (int k = 0; k < AP_TLS_FAIL_NREASONS; k++) {
            ap_buf_appendf(b, "anonproxy_tls_handshakes_total{listener=\"");
            label_escape(b, l->address);
            ap_buf_appendf(b, "\",result=\"failed_%s\"} %llu\n", fail_names[k],
                           (unsigned long long)ts.failures[k]);
        }
    }
    static const char *const geo_names[4] = {"located", "not_found", "private", "error"};
    uint64_t geo_res[4] = {0, 0, 0, 0}, hits = 0, misses = 0;
    for (unsigned w = 0; w < s->nworkers; w++) {
        for (int k = 0; k < 4; k++)
            geo_res[k] += AP_STAT_GET(s->workers[w].geo_results[k]);
        hits += AP_STAT_GET(s->workers[w].geo_cache_hits);
        misses += AP_STAT_GET(s->workers[w].geo_cache_misses);
    }
    ap_buf_appendf(b, "# HELP anonproxy_geo_lookups_total Geolocation lookups, by result.\n"
                      "# TYPE anonproxy_geo_lookups_total counter\n");
    for (int k = 0; k < 4; k++)
        ap_buf_appendf(b, "anonproxy_geo_lookups_total{result=\"%s\"} %llu\n", geo_names[k],
                       (unsigned long long)geo_res[k]);
    ap_buf_appendf(b, "# HELP anonproxy_geo_cache_hits_total Lookups answered by a worker's cache.\n"
                      "# TYPE anonproxy_geo_cache_hits_total counter\n"
                      "anonproxy_geo_cache_hits_total %llu\n"
                      "# HELP anonproxy_geo_cache_misses_total Lookups that went to the database.\n"
                      "# TYPE anonproxy_geo_cache_misses_total counter\n"
                      "anonproxy_geo_cache_misses_total %llu\n",
                   (unsigned long long)hits, (unsigned long long)misses);
    if (s->geo != NULL) {
        struct ap_geo_stats gs;
        ap_geo_get_stats(s->geo->geo, &gs);
        struct stat st;
        double age = -1;
        if (stat(s->cfg->geo.opts.database, &st) == 0)
            age = difftime(time(NULL), st.st_mtime);
        ap_buf_appendf(b, "# HELP anonproxy_geo_database_age_seconds Age of the database file in use.\n"
                          "# TYPE anonproxy_geo_database_age_seconds gauge\n"
                          "anonproxy_geo_database_age_seconds %.0f\n"
                          "# HELP anonproxy_geo_reloads_total Database replacements, by result.\n"
                          "# TYPE anonproxy_geo_reloads_total counter\n"
                          "anonproxy_geo_reloads_total{result=\"success\"} %llu\n"
                          "anonproxy_geo_reloads_total{result=\"failure\"} %llu\n",
                       age, (unsigned long long)gs.reloads, (unsigned long long)gs.reload_failures);
    }
    struct ap_logger_stats *ls = calloc(1, sizeof(*ls));
    if (ls != NULL && ap_logger_get_stats(ls) == 0) {
        ap_buf_appendf(b, "# HELP anonproxy_log_records_total Log records, by sink and result.\n"
                          "# TYPE anonproxy_log_records_total counter\n");
        for (size_t i = 0; i < ls->nsinks; i++) {
            const struct ap_logsink_stats *k = &ls->sinks[i];
            const struct {
                const char *result;
                uint64_t v;
            } rows[] = {{"in", k->in}, {"delivered", k->delivered}, {"rejected", k->rejected},
                        {"retried", k->retries}, {"spooled", k->spooled}, {"replayed", k->replayed},
                        {"dropped_queue_full", k->dropped_queue_full},
                        {"dropped_spool_full", k->dropped_spool_full},
                        {"dropped_disk", k->dropped_disk}, {"dropped_shutdown", k->dropped_shutdown}};
            for (size_t r = 0; r < AP_ARRAY_SIZE(rows); r++) {
                ap_buf_appendf(b, "anonproxy_log_records_total{sink=\"");
                label_escape(b, k->name);
                ap_buf_appendf(b, "\",result=\"%s\"} %llu\n", rows[r].result, (unsigned long long)rows[r].v);
            }
        }
        ap_buf_appendf(b, "# HELP anonproxy_spool_bytes Bytes in each sink's on-disk spool.\n"
                          "# TYPE anonproxy_spool_bytes gauge\n");
        for (size_t i = 0; i < ls->nsinks; i++) {
            ap_buf_appendf(b, "anonproxy_spool_bytes{sink=\"");
            label_escape(b, ls->sinks[i].name);
            ap_buf_appendf(b, "\"} %llu\n", (unsigned long long)ls->sinks[i].spool_bytes);
        }
        ap_buf_appendf(b, "# HELP anonproxy_log_queue_drops_total Records a worker could not hand to the logger.\n"
                          "# TYPE anonproxy_log_queue_drops_total counter\n"
                          "anonproxy_log_queue_drops_total %llu\n",
                       (unsigned long long)ls->queue_drops);
    }
    free(ls);
    ap_buf_appendf(b, "# HELP anonproxy_config_reloads_total Configuration reloads, by result.\n"
                      "# TYPE anonproxy_config_reloads_total counter\n"
                      "anonproxy_config_reloads_total{result=\"success\"} %llu\n"
                      "anonproxy_config_reloads_total{result=\"failure\"} %llu\n"
                      "# HELP anonproxy_config_generation Generation of the configuration in use.\n"
                      "# TYPE anonproxy_config_generation gauge\n"
                      "anonproxy_config_generation %lu\n",
                   (unsigned long long)s->reloads_ok, (unsigned long long)s->reloads_failed,
                   s->generation);
    ap_buf_appendf(b, "# HELP anonproxy_start_time_seconds Start of the process, in seconds since the epoch.\n"
                      "# TYPE anonproxy_start_time_seconds gauge\n"
                      "anonproxy_start_time_seconds %llu\n"
                      "# HELP anonproxy_workers Worker threads.\n"
                      "# TYPE anonproxy_workers gauge\n"
                      "anonproxy_workers %u\n",
                   (unsigned long long)s->start_time, s->nworkers);
    free(sum);
}

/* ---- HTTP ---- */

static void on_admin_closed(uv_handle_t *h)
{
    struct admin_conn *ac = h->data;
    ac->a->nconns--;
    if (ac->prev)
        ac->prev->next = ac->next;
    else
        ac->a->conns = ac->next;
    if (ac->next)
        ac->next->prev = ac->prev;
    ap_buf_free(&ac->in);
    ap_buf_free(&ac->out);
    free(ac);
}

static void on_admin_written(uv_write_t *req, int status)
{
    struct admin_conn *ac = req->data;
    uv_close((uv_handle_t *)&ac->tcp, on_admin_closed);
}

static void respond(struct admin_conn *ac, int status, const char *ctype, const char *body, size_t len)
{
    ac->responded = 1;
    uv_read_stop((uv_stream_t *)&ac->tcp);
    struct ap_buf *o = &ac->out;
    ap_buf_appendf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                   status, ap_status_reason(status), ctype, len);
    ap_buf_append(o, body, len);
    uv_buf_t b = uv_buf_init(o->data, (unsigned)o->len);
    ac->wreq.data = ac;
    if (uv_write(&ac->wreq, (uv_stream_t *)&ac->tcp, &b, 1, on_admin_written) != 0)
        uv_close((uv_handle_t *)&ac->tcp, on_admin_closed);
}

static void respond_text(struct admin_conn *ac, int status, const char *text)
{
    respond(ac, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Constant time, so the token cannot be guessed byte by byte. */
static int token_ok(const struct ap_admin *a, const struct ap_request *req)
{
    if (a->token_len == 0)
        return 1;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct ap_header *h = &req->headers[i];
        if (!ap_slice_eq_ci(h->name, "authorization") || h->value.len != a->token_len + 7 ||
            strncasecmp(h->value.p, "Bearer ", 7) != 0)
            continue;
        return CRYPTO_memcmp(h->value.p + 7, a->token, a->token_len) == 0;
    }
    return 0;
}

static void print_config(struct ap_server *s, struct ap_buf *b)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return;
    ap_config_print(s->cfg, f);
    fclose(f);
    /* Secrets are files, never inline values: the paths are printed, their
     * contents never read here. Mask the token file path anyway. */
    ap_buf_append(b, text, len);
    free(text);
}

static void handle(struct admin_conn *ac, struct ap_request *req)
{
    struct ap_server *s = ac->a->s;
    if (!token_ok(ac->a, req)) {
        respond_text(ac, 401, "401 Unauthorized: a bearer token is required\n");
        return;
    }
    int get = ap_slice_eq_ci(req->method, "GET") || ap_slice_eq_ci(req->method, "HEAD");
    int post = ap_slice_eq_ci(req->method, "POST");
    struct ap_slice path = req->path;
    if (ap_slice_eq_ci(path, "/metrics") && get) {
        struct ap_buf b;
        ap_buf_init(&b, 16 << 20);
        render_metrics(s, &b);
        respond(ac, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
        ap_buf_free(&b);
    } else if (ap_slice_eq_ci(path, "/healthz") && get) {
        respond_text(ac, 200, "ok\n");
    } else if (ap_slice_eq_ci(path, "/readyz") && get) {
        if (s->stopping)
            respond_text(ac, 503, "draining\n");
        else
            respond_text(ac, 200, "ready\n");
    } else if (ap_slice_eq_ci(path, "/reload") && post) {
        ap_log(AP_LOG_INFO, "admin: reload requested");
        int rc = ap_server_reload(s);
        char msg[320];
        snprintf(msg, sizeof(msg), "%s (generation %lu)\n", s->last_reload, s->generation);
        respond_text(ac, rc == 0 ? 200 : 422, msg);
    } else if (ap_slice_eq_ci(path, "/config") && get) {
        struct ap_buf b;
        ap_buf_init(&b, 64 << 20);
        print_config(s, &b);
        respond(ac, 200, "application/yaml", b.data ? b.data : "", b.len);
        ap_buf_free(&b);
    } else if (ap_slice_eq_ci(path, "/metrics") || ap_slice_eq_ci(path, "/healthz") ||
               ap_slice_eq_ci(path, "/readyz") || ap_slice_eq_ci(path, "/reload") ||
               ap_slice_eq_ci(path, "/config")) {
        respond_text(ac, 405, "405 Method Not Allowed\n");
    } else {
        respond_text(ac, 404, "404 Not Found: /metrics /healthz /readyz /reload /config\n");
    }
}

static void on_admin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[4096]; /* main thread only */
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

static void on_admin_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *ac = st->data;
    if (nread == 0 || ac->responded)
        return;
    if (nread < 0 || ap_buf_append(&ac->in, buf->base, (size_t)nread) != 0) {
        if (nread < 0)
            uv_close((uv_handle_t *)&ac->tcp, on_admin_closed);
        else
            respond_text(ac, 431, "431 Request Header Fields Too Large\n");
        return;
    }
    const struct ap_head_limits lim = {.line_bytes = 4096, .head_bytes = ADMIN_HEAD_MAX,
                                       .header_count = 50, .target_bytes = 1024};
    struct ap_head_scan scan;
    struct ap_head_error err;
    memset(&scan, 0, sizeof(scan));
    int rc = ap_head_scan(&scan, ac->in.data, ac->in.len, &lim, &err);
    if (rc == 0)
        return;
    if (rc < 0) {
        respond_text(ac, err.status, err.reason);
        return;
    }
    struct ap_arena arena;
    struct ap_request req;
    ap_arena_init(&arena, 4096, 1 << 20);
    if (ap_head_parse(ac->in.data, (size_t)rc, &req, &arena, &err) != 0)
        respond_text(ac, err.status, err.reason);
    else
        handle(ac, &req);
    ap_arena_free(&arena);
}

static void on_admin_conn(uv_stream_t *server, int status)
{
    struct ap_admin *a = server->data;
    if (status < 0)
        return;
    struct admin_conn *ac = calloc(1, sizeof(*ac));
    if (ac == NULL)
        return;
    ac->a = a;
    a->nconns++;
    ac->next = a->conns;
    if (a->conns)
        a->conns->prev = ac;
    a->conns = ac;
    ap_buf_init(&ac->in, ADMIN_HEAD_MAX);
    ap_buf_init(&ac->out, 64 << 20);
    uv_tcp_init(server->loop, &ac->tcp);
    ac->tcp.data = ac;
    if (uv_accept(server, (uv_stream_t *)&ac->tcp) != 0 || a->nconns > ADMIN_MAX_CONNS ||
        uv_read_start((uv_stream_t *)&ac->tcp, on_admin_alloc, on_admin_read) != 0)
        uv_close((uv_handle_t *)&ac->tcp, on_admin_closed);
}

static int read_token(const char *path, char *out, size_t cap, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "admin.token_file %.200s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "admin.token_file %.200s: %s", path, strerror(errno));
        return -1;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    if (n < 16) {
        snprintf(err, errlen, "admin.token_file %.200s: the token must have at least 16 characters", path);
        return -1;
    }
    for (ssize_t i = 0; i < n; i++) {
        if ((unsigned char)out[i] <= 0x20 || (unsigned char)out[i] >= 0x7f) {
            snprintf(err, errlen, "admin.token_file %.200s: the token must be printable ASCII without spaces", path);
            return -1;
        }
    }
    out[n] = '\0';
    *len = (size_t)n;
    return 0;
}

int ap_admin_start(struct ap_server *s, const struct ap_config_admin *cfg, char *err, size_t errlen)
{
    if (!cfg->enabled)
        return 0;
    struct ap_admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->s = s;
    if (cfg->token_file != NULL &&
        read_token(cfg->token_file, a->token, sizeof(a->token), &a->token_len, err, errlen) != 0) {
        free(a);
        return -1;
    }
    uv_tcp_init(s->main_loop, &a->tcp);
    a->tcp.data = a;
    int r = uv_tcp_bind(&a->tcp, (const struct sockaddr *)&cfg->addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&a->tcp, 64, on_admin_conn);
    if (r != 0) {
        snprintf(err, errlen, "admin listener %s: %s", cfg->address, uv_strerror(r));
        uv_close((uv_handle_t *)&a->tcp, (uv_close_cb)free);
        return -1;
    }
    s->admin = a;
    ap_log(AP_LOG_INFO, "admin listener on %s", cfg->address);
    return 0;
}

static void on_admin_server_closed(uv_handle_t *h)
{
    struct ap_admin *a = h->data;
    /* Close callbacks run in the order of uv_close: the connections, which
     * point at `a`, are gone by now. */
    AP_BUG_ON(a->conns != NULL);
    OPENSSL_cleanse(a->token, sizeof(a->token));
    free(a);
}

void ap_admin_stop(struct ap_server *s)
{
    if (s->admin == NULL)
        return;
    for (struct admin_conn *ac = s->admin->conns; ac != NULL; ac = ac->next)
        if (!uv_is_closing((uv_handle_t *)&ac->tcp))
            uv_close((uv_handle_t *)&ac->tcp, on_admin_closed);
    uv_close((uv_handle_t *)&s->admin->tcp, on_admin_server_closed);
    s->admin = NULL;
}

/* Access log records, built on the worker thread when an exchange ends.
 * Only anonymised data goes in: the engine's truncated client address (or
 * the pseudonym it put in the outbound address header), the path without
 * its query and with the value detectors run over it, the reduced
 * User-Agent, the rules that fired. The raw address was wiped right after
 * the engine ran; cookies, identifiers and the query never reach a record.
 * The record is copied into the worker's queue; the logger thread formats
 * and writes it. */
#include "anonproxy/common.h"

#include <time.h>

#include "anonproxy/accesslog.h"
#include "anonproxy/arena.h"
#include "anonproxy/buf.h"
#include "anonproxy/geo.h"
#include "anonproxy/ip.h"
#include "anonproxy/logfmt.h"
#include "anonproxy/logger.h"
#include "anonproxy/logring.h"
#include "anonproxy/logscrub.h"
#include "anonproxy/policy.h"
#include "anonproxy/query.h"
#include "anonproxy/ua.h"
#include "anonproxy/tls.h"
#include "logger-int.h"
#include "net.h"

int ap_accesslog_wants_audit(void)
{
    struct ap_logger *lg = ap_logger__get();
    return lg != NULL && ap_logger__access_mask(lg) != 0;
}

void ap_accesslog_reopen(void)
{
    ap_logger_reopen();
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct ap_slice S(const char *s)
{
    return (struct ap_slice){s, s ? strlen(s) : 0};
}

static const struct ap_header *find_header(const struct ap_request *req, const char *name, int live_only)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct ap_header *h = &req->headers[i];
        if (live_only && (h->flags & (AP_HEADER_DROPPED | AP_HEADER_CONNECTION_NAMED)))
            continue;
        if (h->name.len == n && strncasecmp(h->name.p, name, n) == 0)
            return h;
    }
    return NULL;
}

/* "address:truncate header:drop*3 ..." from the engine's audit: what was
 * done, never to which value. */
static size_t rules_summary(const struct ap_engine_result *res, char *out, size_t cap)
{
    unsigned counts[AP_AUDIT_NKINDS][AP_ACT_NACTIONS];
    memset(counts, 0, sizeof(counts));
    for (size_t i = 0; i < res->naudit; i++) {
        const struct ap_audit_entry *a = &res->audit[i];
        if ((size_t)a->kind < AP_AUDIT_NKINDS && (size_t)a->action < AP_ACT_NACTIONS &&
            a->action != AP_ACT_KEEP)
            counts[a->kind][a->action]++;
    }
    size_t n = 0;
    for (int k = 0; k < AP_AUDIT_NKINDS; k++) {
        for (int a = 0; a < AP_ACT_NACTIONS; a++) {
            if (counts[k][a] == 0)
                continue;
            int w = counts[k][a] > 1
                        ? snprintf(out + n, cap - n, "%s%s:%s*%u", n ? " " : "",
                                   ap_audit_kind_name((enum ap_audit_kind)k),
                                   ap_audit_action_name((enum ap_audit_action)a), counts[k][a])
                        : snprintf(out + n, cap - n, "%s%s:%s", n ? " " : "",
                                   ap_audit_kind_name((enum ap_audit_kind)k),
                                   ap_audit_action_name((enum ap_audit_action)a));
            if (w < 0 || (size_t)w >= cap - n)
                return n;
            n += (size_t)w;
        }
    }
    return n;
}

/* Copy the record into the worker's queue and wake the logger when the
 * queue was empty (otherwise it is draining already, or its 50 ms tick
 * will). A full queue drops the record; the ring counts it. */
static void submit(struct ap_logger *lg, unsigned worker, const struct ap_logfmt_rec *r)
{
    struct ap_logring *ring = &lg->rings[worker];
    size_t need = sizeof(struct ap_logmsg_hdr) + ap_logfmt_encoded_len(r);
    int was_empty = ap_logring_used(ring) == 0;
    char *p = ap_logring_reserve(ring, need);
    if (p == NULL)
        return;
    struct ap_logmsg_hdr h = {.kind = AP_LOGMSG_ACCESS, .pri = 255, .count = 1, .time_us = r->time_us};
    memcpy(p, &h, sizeof(h));
    size_t n = ap_logfmt_encode(r, p + sizeof(h), need - sizeof(h));
    AP_BUG_ON(n == 0);
    ap_logring_commit(ring, need);
    if (was_empty)
        uv_async_send(&lg->wake);
}

static uint64_t next_id(struct ap_logger *lg, unsigned worker)
{
    uint64_t c = lg->ws[worker].next_id++;
    return lg->id_prefix | (uint64_t)(worker & 0xff) << 40 | (c & 0xffffffffffull);
}

void ap_accesslog_exchange_done(struct ap_exchange *ex)
{
    struct ap_logger *lg = ap_logger__get();
    if (lg == NULL || ap_logger__access_mask(lg) == 0)
        return;
    AP_CHECK_OBJ(ex, AP_EXCHANGE_MAGIC);
    struct ap_worker *w = ex->w;
    if (w->id >= lg->nrings)
        return;
    struct ap_logfmt_rec r;
    memset(&r, 0, sizeof(r));
    int64_t dur = (int64_t)((uv_hrtime() - ex->start_ns) / 1000);
    r.time_us = wall_us() - dur;
    r.duration_us = dur;
    r.upstream_us = ex->up_ns != 0 ? (int64_t)(ex->up_ns / 1000) : -1;
    r.id = next_id(lg, w->id);
    r.status = ex->status;
    r.bytes_in = ex->body_bytes;
    r.bytes_out = ex->resp_bytes;
    const struct ap_request *req = &ex->req;
    const struct ap_policy *pol = ex->route != NULL ? ex->route->policy : NULL;
    if (ex->route != NULL)
        r.route = S(ex->route->name);
    r.method = req->method;
    r.host = req->host;
    char proto[16] = "";
    if (req->method.len > 0) {
        snprintf(proto, sizeof(proto), "HTTP/1.%d", req->version_minor);
        r.protocol = S(proto);
    }
    /* The path loses its query by construction; the detectors take out
     * what it may still carry (an e-mail address in a REST path). */
    struct ap_buf *pb = &lg->ws[w->id].path;
    ap_buf_reset(pb);
    struct ap_slice path = req->path;
    const char *q = path.len ? memchr(path.p, '?', path.len) : NULL;
    if (q != NULL)
        path.len = (size_t)(q - path.p);
    struct ap_logscrub_ctx sctx = {
        .policy = pol,
        .keyring = &w->keyring,
        .now = (int64_t)time(NULL),
        .scope = pol != NULL && pol->site_id != NULL ? pol->site_id : (ex->route ? ex->route->name : "-"),
    };
    if (path.len > 0 && ap_logscrub_text(&sctx, path.p, path.len, pb) == 0)
        r.path = (struct ap_slice){pb->data, pb->len};
    /* A request that matched no route had no profile and its path was not
     * rewritten: its tokens (UUIDs, long hex ids) go as a strict route's
     * would (the detectors above took the rest). */
    if (ex->route == NULL && r.path.len > 16 && r.path.p[0] == '/') {
        static const struct ap_query_policy unrouted = {
            .magic = AP_QUERY_POLICY_MAGIC, .default_action = AP_QUERY_KEEP, .path_tokens = true};
        size_t cap = r.path.len + 1, n = 0;
        char *t = ap_arena_alloc(&ex->arena, cap);
        if (t != NULL && ap_query_redact_path(&unrouted, r.path.p, r.path.len, t, cap, &n) == 0)
            r.path = (struct ap_slice){t, n};
        else
            r.path = (struct ap_slice){NULL, 0}; /* failing closed: no path */
    }
    if (ex->pool != NULL && ex->pool->srv != NULL)
        r.upstream = S(ex->pool->srv->authority);
    if (ex->c != NULL && ex->c->tls != NULL) {
        const char *v = ap_tls_version(ex->c->tls);
        r.tls = (struct ap_slice){v, strlen(v)};
    }
    /* The client: the pseudonym the engine put in the outbound header, or
     * the address truncated by the route's prefixes. */
    char client[AP_IP_STRLEN];
    if (pol != NULL && pol->addr_mode == AP_ADDR_PSEUDO) {
        const struct ap_header *h = find_header(req, pol->addr_header ? pol->addr_header : "X-Forwarded-For", 1);
        if (h != NULL)
            r.client = h->value;
    } else if (ex->res.client_trunc.family != 0) {
        if (ap_ip_format(&ex->res.client_trunc, client, sizeof(client)) > 0)
            r.client = S(client);
    } else if (ex->c != NULL) {
        /* The engine did not run (no route, a bad head): the peer, cut to
         * the default prefixes. */
        struct ap_ip t;
        if (ap_ip_truncate(&t, &ex->c->peer, AP_IP_TRUNCATE_V4_DEFAULT, AP_IP_TRUNCATE_V6_DEFAULT) == 0 &&
            ap_ip_format(&t, client, sizeof(client)) > 0)
            r.client = S(client);
    }
    /* Coarse location, as the geo module let it out (its population floor
     * already applied): "FR", "FR/IDF", "FR/IDF/Paris", or a continent. */
    char geo[3 * AP_GEO_HEADER_MAX + 4];
    size_t gl = 0;
    if (ex->geo.level != AP_GEO_LEVEL_NONE) {
        static const enum ap_geo_out parts[] = {AP_GEO_OUT_COUNTRY, AP_GEO_OUT_REGION, AP_GEO_OUT_CITY};
        char v[AP_GEO_HEADER_MAX];
        for (size_t i = 0; i < AP_ARRAY_SIZE(parts); i++) {
            int n = ap_geo_format_header(&ex->geo, parts[i], v, sizeof(v));
            if (n <= 0)
                break;
            if (gl > 0)
                geo[gl++] = '/';
            memcpy(geo + gl, v, (size_t)n);
            gl += (size_t)n;
        }
        if (gl == 0) {
            int n = ap_geo_format_header(&ex->geo, AP_GEO_OUT_CONTINENT, v, sizeof(v));
            if (n > 0) {
                memcpy(geo, v, (size_t)n);
                gl = (size_t)n;
            }
        }
    }
    if (gl > 0)
        r.geo = (struct ap_slice){geo, gl};
    char ua[AP_UA_REDUCED_MAX];
    const struct ap_header *uah = find_header(req, "User-Agent", 0);
    size_t ual = 0;
    if (uah != NULL && ap_ua_reduce(uah->value.p, uah->value.len, ua, sizeof(ua), &ual) == 0)
        r.ua = (struct ap_slice){ua, ual};
    char rules[512];
    size_t rl = rules_summary(&ex->res, rules, sizeof(rules));
    if (rl > 0)
        r.rules = (struct ap_slice){rules, rl};
    submit(lg, w->id, &r);
}

void ap_accesslog_conn_error(struct ap_conn *c, int status)
{
    struct ap_logger *lg = ap_logger__get();
    if (lg == NULL || ap_logger__access_mask(lg) == 0)
        return;
    AP_CHECK_OBJ(c, AP_CONN_MAGIC);
    if (c->w->id >= lg->nrings)
        return;
    struct ap_logfmt_rec r;
    memset(&r, 0, sizeof(r));
    r.time_us = wall_us();
    r.upstream_us = -1;
    r.id = next_id(lg, c->w->id);
    r.status = status;
    char client[AP_IP_STRLEN];
    struct ap_ip t;
    if (ap_ip_truncate(&t, &c->peer, AP_IP_TRUNCATE_V4_DEFAULT, AP_IP_TRUNCATE_V6_DEFAULT) == 0 &&
        ap_ip_format(&t, client, sizeof(client)) > 0)
        r.client = S(client);
    if (c->tls != NULL) {
        const char *v = ap_tls_version(c->tls);
        r.tls = (struct ap_slice){v, strlen(v)};
    }
    submit(lg, c->w->id, &r);
}

/* Process and workers: N threads, one libuv loop each; every worker binds
 * every listener itself with SO_REUSEPORT, so the kernel spreads connections
 * and no state is shared on the request path. The main thread owns signals,
 * reloads and the admin listener.
 *
 * Reload (SIGHUP, POST /reload): the main thread parses the new file, binds
 * the sockets of new listeners and opens new file sinks — everything that
 * can fail — and only then hands each worker a new generation (struct
 * ap_gen). A worker installs it between two callbacks: new listeners start
 * accepting before removed ones close, and the old generation stays alive
 * while a connection accepted under it or a request started under it still
 * refers to it. A config that fails leaves the old one serving. */
#include "anonproxy/common.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "anonproxy/config.h"
#include "anonproxy/geo.h"
#include "anonproxy/accesslog.h"
#include "anonproxy/log.h"
#include "anonproxy/logger.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"
#include "anonproxy/server.h"
#include "anonproxy/tls.h"
#include "net.h"

const double ap_hist_bounds[AP_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                0.05,   0.1,   0.25,   0.5,   1,    5};

void ap_hist_add(struct ap_hist *h, uint64_t us)
{
    int i = 0;
    while (i < AP_HIST_BUCKETS && (double)us > ap_hist_bounds[i] * 1e6)
        i++;
    AP_STAT_ADD(h->bucket[i], 1);
    AP_STAT_ADD(h->count, 1);
    AP_STAT_ADD(h->sum_us, us);
}

void ap_server_count_request(struct ap_worker *w, const struct ap_exchange *ex, int status)
{
    if (w->rstats == NULL || status < 100 || status > 599)
        return;
    unsigned slot = ex != NULL && ex->route != NULL ? ex->route->stats_id : 0;
    if (slot >= AP_MAX_ROUTE_STATS)
        slot = 0;
    struct ap_route_stats *rs = &w->rstats[slot];
    AP_STAT_ADD(rs->status[status / 100], 1);
    if (ex == NULL)
        return;
    ap_hist_add(&rs->request, (uv_hrtime() - ex->start_ns) / 1000);
    if (ex->up_ns != 0)
        ap_hist_add(&rs->upstream, ex->up_ns / 1000);
}

/* Give every route of `cfg` its metrics slot, by name, so that counters
 * carry on across reloads. Main thread, before the config is published. */
static void assign_stats_ids(struct ap_server *s, struct ap_config *cfg)
{
    if (s->nroute_names == 0) {
        s->route_names[0] = strdup("-");
        s->nroute_names = 1;
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct ap_config_route *r = &cfg->routes[i];
        unsigned k = 1;
        while (k < s->nroute_names && strcmp(s->route_names[k], r->name) != 0)
            k++;
        if (k == s->nroute_names && k < AP_MAX_ROUTE_STATS) {
            s->route_names[k] = strdup(r->name);
            if (s->route_names[k] != NULL)
                s->nroute_names++;
            else
                k = 0;
        }
        r->stats_id = k < AP_MAX_ROUTE_STATS ? k : 0;
    }
}

static int open_listener_fd(const struct ap_config_listener *l, char *err, size_t errlen)
{
    int family = l->addr.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        snprintf(err, errlen, "setsockopt: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
        snprintf(err, errlen, "setsockopt IPV6_V6ONLY: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0) {
        snprintf(err, errlen, "bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    /* listen() here, not in the worker, so that a new listener queues
     * connections from the moment the reload succeeds. */
    if (listen(fd, l->backlog > 0 ? l->backlog : 511) != 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Open (creating the directory) the append descriptor of a file upstream. */
static int open_sink(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "mkdir %.200s: %s", dir, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "open %.200s: %s", path, strerror(errno));
    return fd;
}

static void on_handle_closed_noop(uv_handle_t *h)
{
}

/* ---- geolocation ---- */

static struct ap_geo_shared *geo_shared_ref(struct ap_geo_shared *g)
{
    if (g != NULL)
        __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

/* Any thread: the last reference closes the service (its workers are
 * freed by then: every generation frees its worker before its reference). */
static void geo_shared_unref(struct ap_geo_shared *g)
{
    if (g == NULL || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    ap_geo_close(g->geo);
    free(g);
}

/* Main thread: open the databases of `cfg` (blocking: they are verified). */
static struct ap_geo_shared *geo_open(const struct ap_config *cfg, char *err, size_t errlen)
{
    struct ap_geo_shared *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char why[256];
    if (ap_geo_open(&g->geo, &cfg->geo.opts, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "geo: %s", why);
        free(g);
        return NULL;
    }
    g->refs = 1;
    return g;
}

/* Main thread timer: a database replaced on disk (geoipupdate renames a new
 * file over the old) is opened, verified and swapped, off the workers.
 * Lookups in flight finish on the old one; a bad file keeps the old one. */
static void on_geo_timer(uv_timer_t *t)
{
    struct ap_server *s = t->data;
    if (s->geo == NULL || !ap_geo_is_changed(s->geo->geo))
        return;
    char err[256];
    if (ap_geo_reload(s->geo->geo, err, sizeof(err)) != 0)
        ap_log(AP_LOG_ERROR, "geo: database reload failed, the old one keeps serving: %s", err);
    else
        ap_log(AP_LOG_INFO, "geo: database reloaded");
}

static void geo_timer_arm(struct ap_server *s, const struct ap_config *cfg)
{
    if (s->geo_timer.loop == NULL)
        return; /* not started yet: ap_server_run arms it */
    uv_timer_stop(&s->geo_timer);
    if (s->geo != NULL) {
        uint64_t ms = cfg->geo.check_interval_ms ? cfg->geo.check_interval_ms : 60000;
        uv_timer_start(&s->geo_timer, on_geo_timer, ms, ms);
    }
}

/* ---- generations ---- */

static void gen_free(struct ap_gen *g)
{
    if (g->geo_worker != NULL)
        ap_geo_worker_free(g->geo_worker);
    geo_shared_unref(g->geo);
    if (g->ups != NULL) {
        for (size_t i = 0; i < g->cfg->nupstreams; i++) {
            free(g->ups[i].pools);
            if (g->ups[i].fd >= 0)
                close(g->ups[i].fd);
        }
    }
    if (g->lfds != NULL)
        for (size_t i = 0; i < g->cfg->nlisteners; i++)
            if (g->lnew[i] && g->lfds[i] >= 0)
                close(g->lfds[i]); /* never handed to a worker */
    free(g->ups);
    free(g->lfds);
    free(g->lnew);
    ap_config_unref(g->cfg);
    g->magic = 0;
    free(g);
}

void ap_gen_ref(struct ap_gen *g)
{
    AP_CHECK_OBJ(g, AP_GEN_MAGIC);
    g->refs++;
}

void ap_gen_unref(struct ap_worker *w, struct ap_gen *g)
{
    AP_CHECK_OBJ(g, AP_GEN_MAGIC);
    AP_BUG_ON(g->refs == 0);
    if (--g->refs > 0)
        return;
    /* Sockets now belong to ap_listener handles or were closed with them. */
    for (size_t i = 0; i < g->cfg->nlisteners; i++)
        g->lnew[i] = 0;
    ap_upstream_gen_close_idle(g);
    gen_free(g);
}

/* Build a worker's generation for `cfg`. `prev` is the worker's current
 * listener set (main thread's copy): sockets of unchanged addresses are
 * reused. `sink_fds` are the main thread's descriptors, dup'ed per worker. */
static struct ap_gen *gen_build(struct ap_config *cfg, unsigned worker_id, unsigned long id,
                                const struct ap_lsock *prev, size_t nprev, const int *sink_fds,
                                struct ap_geo_shared *geo, char *err, size_t errlen)
{
    struct ap_gen *g = calloc(1, sizeof(*g));
    if (g == NULL)
        goto oom;
    g->magic = AP_GEN_MAGIC;
    g->id = id;
    g->cfg = ap_config_ref(cfg);
    g->refs = 1;
    g->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*g->ups));
    g->lfds = malloc((cfg->nlisteners ? cfg->nlisteners : 1) * sizeof(*g->lfds));
    g->lnew = calloc(cfg->nlisteners ? cfg->nlisteners : 1, 1);
    if (g->ups == NULL || g->lfds == NULL || g->lnew == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        g->ups[i].fd = -1;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        g->lfds[i] = -1;
    if (geo != NULL) {
        g->geo = geo_shared_ref(geo);
        if (ap_geo_worker_new(&g->geo_worker, geo->geo) != 0)
            goto oom;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct ap_config_upstream *up = &cfg->upstreams[i];
        g->ups[i].up = up;
        if (up->kind == AP_UPSTREAM_FILE) {
            g->ups[i].fd = fcntl(sink_fds[i], F_DUPFD_CLOEXEC, 0);
            if (g->ups[i].fd < 0) {
                snprintf(err, errlen, "upstream %s: dup: %s", up->name, strerror(errno));
                gen_free(g);
                return NULL;
            }
            continue;
        }
        g->ups[i].pools = calloc(up->nservers, sizeof(struct ap_pool));
        if (g->ups[i].pools == NULL)
            goto oom;
        for (size_t k = 0; k < up->nservers; k++) {
            g->ups[i].pools[k].up = up;
            g->ups[i].pools[k].srv = &up->servers[k];
        }
        /* Workers start at different servers so that load spreads. */
        g->ups[i].rr = worker_id;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct ap_config_listener *l = &cfg->listeners[i];
        for (size_t k = 0; k < nprev; k++) {
            if (prev[k].addrlen == l->addrlen && memcmp(&prev[k].addr, &l->addr, l->addrlen) == 0) {
                g->lfds[i] = prev[k].fd;
                break;
            }
        }
        if (g->lfds[i] >= 0)
            continue;
        char why[256];
        g->lfds[i] = open_listener_fd(l, why, sizeof(why));
        if (g->lfds[i] < 0) {
            snprintf(err, errlen, "listen %s: %s", l->address, why);
            gen_free(g);
            return NULL;
        }
        g->lnew[i] = 1;
    }
    return g;
oom:
    snprintf(err, errlen, "out of memory");
    if (g != NULL)
        gen_free(g);
    return NULL;
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Make the worker's listening handles match `g`: keep sockets whose
 * address stays, open the new ones, then close the removed ones. */
static void worker_apply_listeners(struct ap_worker *w, struct ap_gen *g)
{
    for (size_t i = 0; i < g->cfg->nlisteners; i++) {
        struct ap_listener *l = w->listeners;
        while (l != NULL && l->fd != g->lfds[i])
            l = l->next;
        if (l != NULL) {
            l->gen = g;
            l->lcfg = &g->cfg->listeners[i];
            continue;
        }
        l = calloc(1, sizeof(*l));
        if (l == NULL) {
            ap_log(AP_LOG_ERROR, "worker %u: out of memory for listener %s", w->id,
                   g->cfg->listeners[i].address);
            continue;
        }
        l->w = w;
        l->fd = g->lfds[i];
        l->gen = g;
        l->lcfg = &g->cfg->listeners[i];
        uv_tcp_init(&w->loop, &l->tcp);
        l->tcp.data = l;
        int r = uv_tcp_open(&l->tcp, l->fd);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&l->tcp, l->lcfg->backlog > 0 ? l->lcfg->backlog : 511,
                          ap_conn_on_accept);
        g->lnew[i] = 0; /* the handle owns the socket now */
        if (r != 0) {
            ap_log(AP_LOG_ERROR, "worker %u: listen %s: %s", w->id, l->lcfg->address, uv_strerror(r));
            uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
            continue;
        }
        l->next = w->listeners;
        w->listeners = l;
    }
    struct ap_listener **pp = &w->listeners;
    while (*pp != NULL) {
        struct ap_listener *l = *pp;
        size_t i = 0;
        while (i < g->cfg->nlisteners && g->lfds[i] != l->fd)
            i++;
        if (i < g->cfg->nlisteners) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
}

static void worker_close_listeners(struct ap_worker *w)
{
    while (w->listeners != NULL) {
        struct ap_listener *l = w->listeners;
        w->listeners = l->next;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
}

static void worker_install(struct ap_worker *w, struct ap_gen *g)
{
    struct ap_gen *old = w->gen;
    w->gen = g;
    w->cfg = g->cfg;
    worker_apply_listeners(w, g);
    if (old != NULL) {
        ap_upstream_gen_close_idle(old);
        ap_gen_unref(w, old);
    }
}

/* ---- worker lifecycle ---- */

static void worker_finish(struct ap_worker *w)
{
    /* Close what keeps the loop alive; uv_run then returns. */
    ap_upstream_worker_close(w);
    uv_handle_t *hs[] = {(uv_handle_t *)&w->drain_timer, (uv_handle_t *)&w->conn_timer,
                         (uv_handle_t *)&w->key_timer, (uv_handle_t *)&w->wakeup};
    for (size_t i = 0; i < AP_ARRAY_SIZE(hs); i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], on_handle_closed_noop);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct ap_worker *w = t->data;
    if (w->nconns > 0)
        ap_log(AP_LOG_WARN, "worker %u: drain timeout, closing %u connections", w->id, w->nconns);
    struct ap_conn *c = w->conns;
    while (c != NULL) {
        struct ap_conn *next = c->next;
        ap_conn_abort(c);
        c = next;
    }
    worker_finish(w);
}

static void on_wakeup(uv_async_t *a)
{
    struct ap_worker *w = a->data;
    struct ap_gen *g = __atomic_exchange_n(&w->pending_gen, NULL, __ATOMIC_ACQ_REL);
    if (g != NULL) {
        if (w->draining)
            ap_gen_unref(w, g);
        else
            worker_install(w, g);
    }
    if (!__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE))
        return;
    if (!w->draining) {
        w->draining = 1;
        worker_close_listeners(w);
        ap_conn_close_idle(w);
        ap_upstream_worker_close(w);
        uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->timeouts.drain, 0);
    }
    if (w->nconns == 0 && !uv_is_closing((uv_handle_t *)&w->wakeup)) {
        uv_timer_stop(&w->drain_timer);
        worker_finish(w);
    }
}

/* Derive today's and tomorrow's pseudonym keys on the worker's own thread,
 * hourly, so the request path never derives one at midnight. */
static void on_key_timer(uv_timer_t *t)
{
    struct ap_worker *w = t->data;
    int rc = ap_pseudo_keyring_prepare(&w->keyring, (int64_t)time(NULL));
    if (rc != 0)
        ap_log(AP_LOG_ERROR, "worker %u: pseudonym key derivation failed: %d", w->id, rc);
}

static void worker_main(void *arg)
{
    struct ap_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
}

static int worker_init(struct ap_server *s, struct ap_worker *w, unsigned id, struct ap_gen *g,
                       char *err, size_t errlen)
{
    struct ap_lsock *ls = w->lsocks; /* recorded by build_gens */
    size_t nls = w->nlsocks;
    memset(w, 0, sizeof(*w));
    w->lsocks = ls;
    w->nlsocks = nls;
    w->magic = AP_WORKER_MAGIC;
    w->rstats = calloc(AP_MAX_ROUTE_STATS, sizeof(*w->rstats));
    if (w->rstats == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->id = id;
    w->server = s;
    int r = uv_loop_init(&w->loop);
    if (r != 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(r));
        return -1;
    }
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->conn_timer);
    w->conn_timer.data = w;
    uv_timer_init(&w->loop, &w->key_timer);
    w->key_timer.data = w;
    ap_pseudo_keyring_init(&w->keyring, &s->pseudo);
    if (ap_pseudo_keyring_prepare(&w->keyring, (int64_t)time(NULL)) != 0) {
        snprintf(err, errlen, "pseudonym key derivation failed");
        return -1;
    }
    uv_timer_start(&w->key_timer, on_key_timer, 3600 * 1000, 3600 * 1000);
    worker_install(w, g);
    return 0;
}

static void worker_destroy(struct ap_worker *w)
{
    if (w->magic != AP_WORKER_MAGIC)
        return;
    /* Close anything left (after a failed start) and let callbacks run. */
    worker_close_listeners(w);
    worker_finish(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->gen != NULL)
        ap_gen_unref(w, w->gen);
    struct ap_gen *pend = __atomic_exchange_n(&w->pending_gen, NULL, __ATOMIC_ACQ_REL);
    if (pend != NULL)
        ap_gen_unref(w, pend);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    ap_pseudo_keyring_free(&w->keyring);
    free(w->lsocks);
    w->lsocks = NULL;
    free(w->rstats);
    w->rstats = NULL;
    w->magic = 0;
}

/* ---- main thread: start, reload, stop ---- */

static void close_sinks(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
}

static int *open_sinks(const struct ap_config *cfg, char *err, size_t errlen)
{
    int *fds = malloc((cfg->nupstreams ? cfg->nupstreams : 1) * sizeof(*fds));
    if (fds == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        fds[i] = -1;
        if (cfg->upstreams[i].kind != AP_UPSTREAM_FILE)
            continue;
        char why[384];
        fds[i] = open_sink(cfg->upstreams[i].file_path, why, sizeof(why));
        if (fds[i] < 0) {
            snprintf(err, errlen, "upstream %s: %s", cfg->upstreams[i].name, why);
            close_sinks(fds, i);
            return NULL;
        }
    }
    return fds;
}

static void set_reload_status(struct ap_server *s, const char *fmt, const char *detail)
{
    snprintf(s->last_reload, sizeof(s->last_reload), fmt, detail ? detail : "");
}

/* Build every worker's generation for `cfg` or none. */
/* Build every worker's generation for `cfg`, or none. Nothing the server
 * holds changes until commit_gens: a later step may still refuse them. */
static int build_gens(struct ap_server *s, struct ap_config *cfg, struct ap_gen **gens,
                      struct ap_geo_shared **geo_out, char *err, size_t errlen)
{
    int *sinks = open_sinks(cfg, err, errlen);
    if (sinks == NULL)
        return -1;
    struct ap_geo_shared *geo = NULL;
    if (cfg->geo.enabled && (geo = geo_open(cfg, err, errlen)) == NULL) {
        close_sinks(sinks, cfg->nupstreams);
        return -1;
    }
    unsigned long id = s->generation + 1;
    for (unsigned i = 0; i < s->nworkers; i++) {
        gens[i] = gen_build(cfg, i, id, s->workers[i].lsocks, s->workers[i].nlsocks, sinks, geo,
                            err, errlen);
        if (gens[i] == NULL) {
            while (i-- > 0)
                gen_free(gens[i]);
            close_sinks(sinks, cfg->nupstreams);
            geo_shared_unref(geo);
            return -1;
        }
    }
    close_sinks(sinks, cfg->nupstreams);
    *geo_out = geo;
    return 0;
}

/* Drop generations that were built but are not to be used: their new
 * sockets are closed, kept ones stay with the running generation. */
static void discard_gens(struct ap_server *s, struct ap_gen **gens, struct ap_geo_shared *geo)
{
    for (unsigned i = 0; i < s->nworkers; i++)
        gen_free(gens[i]);
    geo_shared_unref(geo);
}

/* The generations are going to the workers: remember what the next reload
 * needs (sockets to reuse, the geo service to check, the number). */
static void commit_gens(struct ap_server *s, struct ap_config *cfg, struct ap_gen **gens,
                        struct ap_geo_shared *geo)
{
    geo_shared_unref(s->geo); /* the main thread's own reference */
    s->geo = geo;
    geo_timer_arm(s, cfg);
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct ap_lsock *ls = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*ls));
        if (ls == NULL)
            continue; /* the next reload binds fresh sockets: still correct */
        for (size_t k = 0; k < cfg->nlisteners; k++) {
            ls[k].addr = cfg->listeners[k].addr;
            ls[k].addrlen = cfg->listeners[k].addrlen;
            ls[k].fd = gens[i]->lfds[k];
        }
        free(s->workers[i].lsocks);
        s->workers[i].lsocks = ls;
        s->workers[i].nlsocks = cfg->nlisteners;
    }
    s->generation = gens[0]->id;
}

/* Logs TLS errors (one per line, each naming its file) and frees them;
 * returns rc. */
static int log_tls_errors(int rc, char *errors, const char *prefix)
{
    for (const char *e = errors; e != NULL && *e;) {
        const char *nl = strchr(e, '\n');
        int n = nl ? (int)(nl - e) : (int)strlen(e);
        ap_log(AP_LOG_ERROR, "%s%.*s", prefix, n, e);
        e += n + (nl != NULL);
    }
    free(errors);
    return rc;
}

/* File descriptors the configuration may need: a client and an upstream
 * connection for every connection a worker may hold, and room for
 * listeners, log files, sinks and the admin listener. */
static rlim_t files_needed(const struct ap_config *cfg)
{
    return (rlim_t)cfg->workers * cfg->limits.connections_per_worker * 2 + 1024;
}

/* Raise the soft limit of open files towards what the configuration needs,
 * as far as the hard limit allows (nginx's worker_rlimit_nofile does the
 * same by hand). Past the limit, the kernel refuses accept(2) and libuv
 * then accepts and closes connections itself, which no log would show: so
 * a limit too low for connections_per_worker is said at start. */
static void raise_open_files(const struct ap_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = files_needed(cfg);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit nl = rl;
        nl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl = nl;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        ap_log(AP_LOG_WARN,
               "open files limited to %llu (hard limit %llu): %u workers x %u connections_per_worker "
               "need about %llu; past it new connections are closed unanswered (raise LimitNOFILE "
               "or ulimit -n, or lower connections_per_worker)",
               (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, cfg->workers,
               cfg->limits.connections_per_worker, (unsigned long long)want);
    else
        ap_log(AP_LOG_INFO, "open files limit %llu", (unsigned long long)rl.rlim_cur);
}

int ap_server_reload(struct ap_server *s)
{
    if (s->stopping)
        return -1;
    char *errors = NULL;
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    ap_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
              (unsigned long long)mono.tv_sec * 1000000ull + (unsigned long long)mono.tv_nsec / 1000);
    struct ap_config *cfg = ap_config_load(s->cfg_path, &errors);
    if (cfg == NULL) {
        /* Each error line is FILE:LINE:COL: message. */
        const char *e = errors ? errors : "unknown error\n";
        while (*e) {
            const char *nl = strchr(e, '\n');
            int n = nl ? (int)(nl - e) : (int)strlen(e);
            ap_log(AP_LOG_ERROR, "reload failed: %.*s", n, e);
            e += n + (nl != NULL);
        }
        s->reloads_failed++;
        set_reload_status(s, "reload failed: %s", errors ? "invalid configuration" : "error");
        free(errors);
        ap_notify("READY=1\nSTATUS=%s", s->last_reload);
        return -1;
    }
    assign_stats_ids(s, cfg);
    /* One reload at a time: wait until every worker took the previous
     * generation (one loop turn; bounded), so sockets are never handed twice. */
    for (int spins = 0; spins < 5000; spins++) {
        unsigned busy = 0;
        for (unsigned i = 0; i < s->nworkers; i++)
            busy += __atomic_load_n(&s->workers[i].pending_gen, __ATOMIC_ACQUIRE) != NULL;
        if (busy == 0)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    struct ap_gen **gens = calloc(s->nworkers, sizeof(*gens));
    struct ap_geo_shared *geo = NULL;
    char err[512];
    if (gens == NULL || build_gens(s, cfg, gens, &geo, err, sizeof(err)) != 0) {
        if (gens == NULL)
            snprintf(err, sizeof(err), "out of memory");
        ap_log(AP_LOG_ERROR, "reload failed: %s", err);
        s->reloads_failed++;
        set_reload_status(s, "reload failed: %.200s", err);
        free(gens);
        ap_config_unref(cfg);
        ap_notify("READY=1\nSTATUS=%s", s->last_reload);
        return -1;
    }
    /* The logging sections: spool directories, files and syslog ports are
     * checked (and the ports bound) now; the logger thread swaps later. */
    struct ap_logger_update *logupd = NULL;
    if (ap_logger_reload_prepare(cfg, &logupd, err, sizeof(err)) != 0) {
        ap_log(AP_LOG_ERROR, "reload failed: %s", err);
        discard_gens(s, gens, geo);
        free(gens);
        s->reloads_failed++;
        set_reload_status(s, "reload failed: %.200s", err);
        ap_config_unref(cfg);
        ap_notify("READY=1\nSTATUS=%s", s->last_reload);
        return -1;
    }
    /* Certificates last, when nothing else can fail: new handshakes get the
     * new ones, open connections keep theirs. */
    if (log_tls_errors(ap_tls_reload(s->tls, cfg, &errors), errors, "reload failed: ") != 0) {
        ap_logger_reload_discard(logupd);
        discard_gens(s, gens, geo);
        free(gens);
        s->reloads_failed++;
        set_reload_status(s, "reload failed: %s", "TLS certificates");
        ap_config_unref(cfg);
        ap_notify("READY=1\nSTATUS=%s", s->last_reload);
        return -1;
    }
    commit_gens(s, cfg, gens, geo);
    ap_logger_reload_commit(logupd);
    if (cfg->log_level != NULL)
        ap_log_set_level(cfg->log_level);
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct ap_worker *w = &s->workers[i];
        /* The previous generation's bookkeeping must stay valid for the next
         * reload's socket reuse: keep a main-thread view of it. */
        struct ap_gen *old = __atomic_exchange_n(&w->pending_gen, gens[i], __ATOMIC_ACQ_REL);
        if (old != NULL) {
            /* A worker stuck for seconds never took the previous one: it never
             * will, and this one replaces it. Its sockets are in gens[i] too. */
            ap_log(AP_LOG_WARN, "worker %u did not take generation %lu in time", w->id, old->id);
            for (size_t k = 0; k < old->cfg->nlisteners; k++)
                for (size_t j = 0; j < cfg->nlisteners; j++)
                    if (old->lnew[k] && gens[i]->lfds[j] == old->lfds[k]) {
                        gens[i]->lnew[j] = 1;
                        old->lnew[k] = 0;
                    }
            gen_free(old);
        }
        uv_async_send(&w->wakeup);
    }
    free(gens);
    if (files_needed(cfg) != files_needed(s->cfg))
        raise_open_files(cfg);
    ap_config_unref(s->cfg);
    s->cfg = cfg;
    s->reloads_ok++;
    set_reload_status(s, "reload %s", "succeeded");
    ap_log(AP_LOG_INFO, "configuration reloaded (generation %lu)", s->generation);
    ap_notify("READY=1\nSTATUS=configuration generation %lu: %s", s->generation, s->last_reload);
    return 0;
}

/* The admin listener answers /readyz with 503 while workers drain; once
 * every worker loop has returned, the main loop closes its last handles. */
static void on_stop_timer(uv_timer_t *t)
{
    struct ap_server *s = t->data;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (!__atomic_load_n(&s->workers[i].finished, __ATOMIC_ACQUIRE))
            return;
    uv_close((uv_handle_t *)t, on_handle_closed_noop);
    ap_admin_stop(s);
}

static void on_watchdog(uv_timer_t *t)
{
    ap_notify("WATCHDOG=1");
}

static void server_stop(struct ap_server *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    ap_log(AP_LOG_INFO, "%s: stopping, draining connections (up to %llu ms)", why,
           (unsigned long long)s->cfg->timeouts.drain);
    for (unsigned i = 0; i < s->nworkers; i++) {
        __atomic_store_n(&s->workers[i].stopping, 1, __ATOMIC_RELEASE);
        uv_async_send(&s->workers[i].wakeup);
    }
    ap_notify("STOPPING=1\nSTATUS=draining");
    uv_close((uv_handle_t *)&s->sigterm, on_handle_closed_noop);
    uv_close((uv_handle_t *)&s->sigint, on_handle_closed_noop);
    uv_close((uv_handle_t *)&s->sighup, on_handle_closed_noop);
    uv_close((uv_handle_t *)&s->sigusr1, on_handle_closed_noop);
    if (uv_is_active((uv_handle_t *)&s->watchdog_timer))
        uv_timer_stop(&s->watchdog_timer);
    uv_close((uv_handle_t *)&s->watchdog_timer, on_handle_closed_noop);
    uv_close((uv_handle_t *)&s->geo_timer, on_handle_closed_noop);
    uv_timer_start(&s->stop_timer, on_stop_timer, 20, 20);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct ap_server *s = h->data;
    if (signum == SIGHUP) {
        ap_log(AP_LOG_INFO, "SIGHUP: reloading %s", s->cfg_path);
        ap_server_reload(s);
        return;
    }
    if (signum == SIGUSR1) {
        /* Log files are reopened by their owners (access logs, issue 8). */
        ap_log(AP_LOG_INFO, "SIGUSR1: reopening log files");
        ap_accesslog_reopen();
        return;
    }
    server_stop(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* After every socket is bound and every file opened: switch to the
 * configured user and group. Refuses to go on as root unless the
 * configuration says so explicitly. */
static int drop_privileges(const struct ap_config *cfg, char *err, size_t errlen)
{
    if (cfg->user == NULL) {
        if (geteuid() == 0 && !cfg->run_as_root) {
            snprintf(err, errlen, "refusing to run as root: set `user:` (and `group:`) to drop "
                                  "privileges, or `run_as_root: true` to run as root on purpose");
            return -1;
        }
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL) {
        snprintf(err, errlen, "user %.100s: %s", cfg->user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (cfg->group != NULL) {
        errno = 0;
        struct group *gr = getgrnam(cfg->group);
        if (gr == NULL) {
            snprintf(err, errlen, "group %.100s: %s", cfg->group, errno ? strerror(errno) : "no such group");
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (geteuid() == 0 && setgroups(0, NULL) != 0) {
        snprintf(err, errlen, "setgroups: %s", strerror(errno));
        return -1;
    }
    if (setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "switching to %.100s: %s", cfg->user, strerror(errno));
        return -1;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, errlen, "privileges could be regained after dropping them");
        return -1;
    }
    ap_log(AP_LOG_INFO, "running as %s (uid %u, gid %u)", cfg->user, (unsigned)pw->pw_uid, (unsigned)gid);
    return 0;
}

static int init_pseudonyms(struct ap_server *s, const struct ap_config *cfg)
{
    if (cfg->pseudonym_secret_file == NULL) {
        if (ap_pseudo_source_init_random(&s->pseudo) != 0) {
            ap_log(AP_LOG_ERROR, "cannot make a random pseudonym key");
            return -1;
        }
        return 0;
    }
    uint8_t secret[AP_PSEUDO_SECRET_MAX];
    size_t slen = 0;
    int r = ap_pseudo_secret_read_file(cfg->pseudonym_secret_file, secret, sizeof(secret), &slen);
    if (r == 0)
        r = ap_pseudo_source_init_secret(&s->pseudo, secret, slen);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (r != 0) {
        ap_log(AP_LOG_ERROR, "pseudonyms.secret_file %s: %s", cfg->pseudonym_secret_file,
               r == -EINVAL ? "not a regular file of at least 16 bytes" : strerror(-r));
        return -1;
    }
    return 0;
}

int ap_server_run(struct ap_config *cfg, const char *cfg_path)
{
    struct ap_server s;
    memset(&s, 0, sizeof(s));
    s.magic = AP_SERVER_MAGIC;
    s.cfg = ap_config_ref(cfg);
    s.cfg_path = (char *)cfg_path;
    char err[512];
    int rc = 1;
    struct ap_gen **gens = NULL;
    char *tls_errors = NULL;

    signal(SIGPIPE, SIG_IGN);
    raise_open_files(cfg);
    if (init_pseudonyms(&s, cfg) != 0) {
        ap_config_unref(s.cfg);
        return 1;
    }
    s.workers = calloc(cfg->workers, sizeof(*s.workers));
    gens = calloc(cfg->workers, sizeof(*gens));
    if (s.workers == NULL || gens == NULL) {
        ap_log(AP_LOG_ERROR, "out of memory");
        goto out;
    }
    s.nworkers = cfg->workers;
    assign_stats_ids(&s, cfg);
    if (log_tls_errors(ap_tls_new(cfg, &s.tls, &tls_errors), tls_errors, "") != 0)
        goto out;
    struct ap_geo_shared *geo = NULL;
    if (build_gens(&s, cfg, gens, &geo, err, sizeof(err)) != 0) {
        ap_log(AP_LOG_ERROR, "%s", err);
        goto out;
    }
    commit_gens(&s, cfg, gens, geo);
    /* Log sinks, spools and syslog listeners (issue 8): before the
     * privilege drop (port 514, /var/log) and before the workers. */
    if (ap_logger_start(cfg, &s.pseudo, s.nworkers) != 0) {
        for (unsigned k = 0; k < s.nworkers; k++)
            gen_free(gens[k]);
        goto out;
    }
    /* The admin listener binds before the privilege drop too. */
    s.main_loop = uv_default_loop();
    if (ap_admin_start(&s, &cfg->admin, err, sizeof(err)) != 0 ||
        drop_privileges(cfg, err, sizeof(err)) != 0) {
        ap_log(AP_LOG_ERROR, "%s", err);
        ap_admin_stop(&s);
        uv_run(s.main_loop, UV_RUN_NOWAIT); /* its close callbacks */
        for (unsigned k = 0; k < s.nworkers; k++)
            gen_free(gens[k]);
        goto out;
    }
    for (unsigned i = 0; i < s.nworkers; i++) {
        if (worker_init(&s, &s.workers[i], i, gens[i], err, sizeof(err)) != 0) {
            ap_log(AP_LOG_ERROR, "%s", err[0] ? err : "worker start failed");
            for (unsigned k = i; k < s.nworkers; k++)
                if (gens[k] != NULL && gens[k] != s.workers[k].gen)
                    gen_free(gens[k]);
            goto out;
        }
    }

    uv_loop_t *main_loop = uv_default_loop();
    s.main_loop = main_loop;
    s.start_time = (uint64_t)time(NULL);
    uv_signal_init(main_loop, &s.sigterm);
    uv_signal_init(main_loop, &s.sigint);
    uv_signal_init(main_loop, &s.sighup);
    uv_signal_init(main_loop, &s.sigusr1);
    uv_timer_init(main_loop, &s.stop_timer);
    uv_timer_init(main_loop, &s.watchdog_timer);
    uv_timer_init(main_loop, &s.geo_timer);
    s.geo_timer.data = &s;
    geo_timer_arm(&s, cfg);
    s.sigterm.data = s.sigint.data = s.sighup.data = s.sigusr1.data = &s;
    s.stop_timer.data = s.watchdog_timer.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sighup, on_signal, SIGHUP);
    uv_signal_start(&s.sigusr1, on_signal, SIGUSR1);
    const char *wd = getenv("WATCHDOG_USEC");
    unsigned long long wd_usec = wd ? strtoull(wd, NULL, 10) : 0;
    if (wd_usec > 0)
        uv_timer_start(&s.watchdog_timer, on_watchdog, wd_usec / 2000 ? wd_usec / 2000 : 1,
                       wd_usec / 2000 ? wd_usec / 2000 : 1);

    for (unsigned i = 0; i < s.nworkers; i++) {
        if (uv_thread_create(&s.workers[i].thread, worker_main, &s.workers[i]) != 0) {
            ap_log(AP_LOG_ERROR, "cannot start worker thread %u", i);
            abort(); /* boot may abort; requests may not */
        }
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        ap_log(AP_LOG_INFO, "listening on %s", cfg->listeners[i].address);
    ap_log(AP_LOG_INFO, "anonproxy started with %u workers", s.nworkers);
    ap_notify("READY=1\nSTATUS=serving, configuration generation %lu\nMAINPID=%ld", s.generation,
              (long)getpid());

    uv_run(main_loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < s.nworkers; i++)
        uv_thread_join(&s.workers[i].thread);
    /* Every record the workers queued is in the rings now. */
    ap_logger_stop(cfg->timeouts.drain < 3000 ? (unsigned)cfg->timeouts.drain : 3000);
    uv_run(main_loop, UV_RUN_DEFAULT);
    uv_loop_close(main_loop);
    if (s.tls != NULL)
        ap_tls_log_stats(s.tls);
    ap_log(AP_LOG_INFO, "stopped");
    rc = 0;
out:
    ap_logger_stop(0); /* a failed start; nothing when already stopped */
    for (unsigned i = 0; i < s.nworkers; i++) {
        worker_destroy(&s.workers[i]);
        free(s.workers[i].lsocks); /* workers that never started */
        s.workers[i].lsocks = NULL;
    }
    ap_tls_free(s.tls); /* after the workers: their connections hold contexts */
    free(gens);
    free(s.workers);
    geo_shared_unref(s.geo);
    ap_pseudo_source_free(&s.pseudo);
    ap_config_unref(s.cfg);
    for (unsigned i = 0; i < s.nroute_names; i++)
        free(s.route_names[i]);
    return rc;
}

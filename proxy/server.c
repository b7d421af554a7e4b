/* Process and workers: N threads, one libuv loop each; every worker binds
 * every listener itself with SO_REUSEPORT, so the kernel spreads connections
 * and no state is shared on the request path. The main thread owns signals
 * and the shared file descriptors of file upstreams. */
#include "anonproxy/common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "anonproxy/config.h"
#include "anonproxy/log.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"
#include "anonproxy/server.h"
#include "net.h"

uint64_t ap_server_now(struct ap_worker *w)
{
    return uv_now(&w->loop);
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
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
    return fd;
}

static void on_handle_closed_noop(uv_handle_t *h)
{
}

static void worker_finish(struct ap_worker *w)
{
    /* Close what keeps the loop alive; uv_run then returns. */
    ap_upstream_worker_close(w);
    if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
        uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed_noop);
    if (!uv_is_closing((uv_handle_t *)&w->conn_timer))
        uv_close((uv_handle_t *)&w->conn_timer, on_handle_closed_noop);
    if (!uv_is_closing((uv_handle_t *)&w->key_timer))
        uv_close((uv_handle_t *)&w->key_timer, on_handle_closed_noop);
    if (!uv_is_closing((uv_handle_t *)&w->wakeup))
        uv_close((uv_handle_t *)&w->wakeup, on_handle_closed_noop);
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
    if (!__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE))
        return;
    if (!w->draining) {
        w->draining = 1;
        for (size_t i = 0; i < w->nlisteners; i++)
            if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
                uv_close((uv_handle_t *)&w->listeners[i], on_handle_closed_noop);
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
}

static int worker_init(struct ap_server *s, struct ap_worker *w, unsigned id, char *err, size_t errlen)
{
    const struct ap_config *cfg = s->cfg;
    memset(w, 0, sizeof(*w));
    w->magic = AP_WORKER_MAGIC;
    w->id = id;
    w->server = s;
    w->cfg = s->cfg;
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

    w->ups = calloc(cfg->nupstreams, sizeof(*w->ups));
    if (w->ups == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct ap_config_upstream *up = &cfg->upstreams[i];
        w->ups[i].up = up;
        w->ups[i].fd = s->file_fds[i];
        if (up->kind != AP_UPSTREAM_HTTP)
            continue;
        w->ups[i].pools = calloc(up->nservers, sizeof(struct ap_pool));
        if (w->ups[i].pools == NULL)
            return -1;
        for (size_t k = 0; k < up->nservers; k++) {
            w->ups[i].pools[k].up = up;
            w->ups[i].pools[k].srv = &up->servers[k];
        }
        /* Workers start at different servers so that load spreads. */
        w->ups[i].rr = id;
    }

    w->listeners = calloc(cfg->nlisteners, sizeof(*w->listeners));
    if (w->listeners == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct ap_config_listener *l = &cfg->listeners[i];
        char why[256];
        int fd = open_listener_fd(l, why, sizeof(why));
        if (fd < 0) {
            snprintf(err, errlen, "listen %s: %s", l->address, why);
            return -1;
        }
        uv_tcp_init(&w->loop, &w->listeners[i]);
        w->listeners[i].data = w;
        w->nlisteners++;
        r = uv_tcp_open(&w->listeners[i], fd);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&w->listeners[i], l->backlog > 0 ? l->backlog : 511,
                          ap_conn_on_accept);
        if (r != 0) {
            snprintf(err, errlen, "listen %s: %s", l->address, uv_strerror(r));
            return -1;
        }
    }
    return 0;
}

static void worker_destroy(struct ap_worker *w)
{
    /* Close anything left (after a failed start) and let callbacks run. */
    for (size_t i = 0; i < w->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
            uv_close((uv_handle_t *)&w->listeners[i], on_handle_closed_noop);
    if (w->magic == AP_WORKER_MAGIC) {
        if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
            uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed_noop);
        if (!uv_is_closing((uv_handle_t *)&w->conn_timer))
            uv_close((uv_handle_t *)&w->conn_timer, on_handle_closed_noop);
        if (!uv_is_closing((uv_handle_t *)&w->key_timer))
            uv_close((uv_handle_t *)&w->key_timer, on_handle_closed_noop);
        if (!uv_is_closing((uv_handle_t *)&w->wakeup))
            uv_close((uv_handle_t *)&w->wakeup, on_handle_closed_noop);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    if (w->keyring.magic != 0)
        ap_pseudo_keyring_free(&w->keyring);
    if (w->ups != NULL)
        for (size_t i = 0; i < w->cfg->nupstreams; i++)
            free(w->ups[i].pools);
    free(w->ups);
    free(w->listeners);
    w->magic = 0;
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
    uv_close((uv_handle_t *)&s->sigterm, on_handle_closed_noop);
    uv_close((uv_handle_t *)&s->sigint, on_handle_closed_noop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct ap_server *s = h->data;
    server_stop(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

int ap_server_run(struct ap_config *cfg)
{
    struct ap_server s;
    memset(&s, 0, sizeof(s));
    s.magic = AP_SERVER_MAGIC;
    s.cfg = cfg;
    char err[512];
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    s.file_fds = malloc((cfg->nupstreams ? cfg->nupstreams : 1) * sizeof(*s.file_fds));
    s.workers = calloc(cfg->workers, sizeof(*s.workers));
    if (s.file_fds == NULL || s.workers == NULL) {
        ap_log(AP_LOG_ERROR, "out of memory");
        free(s.file_fds);
        free(s.workers);
        return 1;
    }
    if (cfg->pseudonym_secret_file != NULL) {
        uint8_t secret[AP_PSEUDO_SECRET_MAX];
        size_t slen = 0;
        int r = ap_pseudo_secret_read_file(cfg->pseudonym_secret_file, secret, sizeof(secret), &slen);
        if (r == 0)
            r = ap_pseudo_source_init_secret(&s.pseudo, secret, slen);
        OPENSSL_cleanse(secret, sizeof(secret));
        if (r != 0) {
            ap_log(AP_LOG_ERROR, "pseudonyms.secret_file %s: %s", cfg->pseudonym_secret_file,
                   r == -EINVAL ? "not a regular file of at least 16 bytes" : strerror(-r));
            free(s.file_fds);
            free(s.workers);
            return 1;
        }
    } else if (ap_pseudo_source_init_random(&s.pseudo) != 0) {
        ap_log(AP_LOG_ERROR, "cannot make a random pseudonym key");
        free(s.file_fds);
        free(s.workers);
        return 1;
    }
    s.default_policy = calloc(1, sizeof(*s.default_policy));
    if (s.default_policy == NULL || ap_policy_init(s.default_policy, "default", AP_PROFILE_STRICT) != 0 ||
        ap_policy_finish(s.default_policy) != 0) {
        ap_log(AP_LOG_ERROR, "out of memory");
        abort(); /* boot may abort */
    }
    s.default_policy->clientaddr = cfg->clientaddr.magic ? &cfg->clientaddr : NULL;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        s.file_fds[i] = -1;
        if (cfg->upstreams[i].kind == AP_UPSTREAM_FILE) {
            s.file_fds[i] = open_sink(cfg->upstreams[i].file_path, err, sizeof(err));
            if (s.file_fds[i] < 0) {
                ap_log(AP_LOG_ERROR, "upstream %s: %s", cfg->upstreams[i].name, err);
                goto out;
            }
        }
    }
    for (unsigned i = 0; i < cfg->workers; i++) {
        s.nworkers = i + 1;
        if (worker_init(&s, &s.workers[i], i, err, sizeof(err)) != 0) {
            ap_log(AP_LOG_ERROR, "%s", err[0] ? err : "worker start failed");
            goto out;
        }
    }

    uv_loop_t *main_loop = uv_default_loop();
    s.main_loop = main_loop;
    uv_signal_init(main_loop, &s.sigterm);
    uv_signal_init(main_loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);

    for (unsigned i = 0; i < s.nworkers; i++) {
        if (uv_thread_create(&s.workers[i].thread, worker_main, &s.workers[i]) != 0) {
            ap_log(AP_LOG_ERROR, "cannot start worker thread %u", i);
            abort(); /* boot may abort; requests may not */
        }
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        ap_log(AP_LOG_INFO, "listening on %s", cfg->listeners[i].address);
    ap_log(AP_LOG_INFO, "anonproxy started with %u workers", s.nworkers);

    uv_run(main_loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < s.nworkers; i++)
        uv_thread_join(&s.workers[i].thread);
    uv_loop_close(main_loop);
    ap_log(AP_LOG_INFO, "stopped");
    rc = 0;
out:
    for (unsigned i = 0; i < s.nworkers; i++)
        worker_destroy(&s.workers[i]);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (s.file_fds[i] >= 0)
            close(s.file_fds[i]);
    free(s.file_fds);
    free(s.workers);
    ap_policy_free(s.default_policy);
    free(s.default_policy);
    ap_pseudo_source_free(&s.pseudo);
    return rc;
}

/* The logger thread: one libuv loop that owns every log sink, the syslog
 * listeners, and all log I/O. Workers write records into their own ring
 * (one producer, one consumer, no lock) and wake this loop; it formats
 * access records, hands every record to its sinks, and flushes the spools
 * once per cycle. A worker never waits for it: a full ring costs the
 * record, counted (ap_logring_drops). */
#include "anonproxy/common.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "anonproxy/buf.h"
#include "anonproxy/config.h"
#include "anonproxy/log.h"
#include "anonproxy/logfmt.h"
#include "anonproxy/logger.h"
#include "anonproxy/logring.h"
#include "anonproxy/logspool.h"
#include "anonproxy/pseudo.h"
#include "logger-int.h"

#define TICK_MS 50
#define LINE_MAX_BYTES (1024u * 1024u)

static struct ap_logger *g_logger;

struct ap_logger *ap_logger__get(void)
{
    return __atomic_load_n(&g_logger, __ATOMIC_ACQUIRE);
}

int ap_logger_is_running(void)
{
    return ap_logger__get() != NULL;
}

uint64_t ap_logger__now(struct ap_logger *lg)
{
    return uv_now(&lg->loop);
}

static const struct ap_logger_map *map_of(const struct ap_logger *lg)
{
    return __atomic_load_n(&lg->map, __ATOMIC_ACQUIRE);
}

uint64_t ap_logger__access_mask(const struct ap_logger *lg)
{
    return map_of(lg)->access_mask;
}

int ap_logger__sink_index(const struct ap_logger *lg, const char *name)
{
    const struct ap_logger_map *m = map_of(lg);
    for (size_t i = 0; i < m->nslots; i++)
        if (strcmp(m->names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The sink of slot i, or NULL. Any thread. */
static struct ap_logsink *slot(const struct ap_logger *lg, size_t i)
{
    return __atomic_load_n(&lg->sinks[i], __ATOMIC_ACQUIRE);
}

/* Build the map of `cfg`'s sinks in the slots of plan[] (plan[j] = slot of
 * cfg->log_sinks[j]). */
static struct ap_logger_map *map_new(const struct ap_config *cfg, const int *plan)
{
    struct ap_logger_map *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    for (size_t j = 0; j < cfg->nlog_sinks && j < AP_LOGGER_MAX_SINKS; j++) {
        snprintf(m->names[plan[j]], sizeof(m->names[0]), "%s", cfg->log_sinks[j].name);
        if ((size_t)plan[j] + 1 > m->nslots)
            m->nslots = (size_t)plan[j] + 1;
    }
    if (cfg->access_log.set) {
        for (size_t i = 0; i < cfg->access_log.nsinks; i++) {
            for (size_t j = 0; j < cfg->nlog_sinks && j < AP_LOGGER_MAX_SINKS; j++)
                if (cfg->access_log.sinks[i] == &cfg->log_sinks[j])
                    m->access_mask |= (uint64_t)1 << plan[j];
        }
    }
    return m;
}

/* ---- dispatching ---- */

static int mask_has_room(struct ap_logger *lg, uint64_t mask, uint32_t count)
{
    for (size_t i = 0; i < lg->nsinks; i++) {
        if (!(mask & ((uint64_t)1 << i)) || lg->sinks[i] == NULL)
            continue;
        const struct ap_logsink *s = lg->sinks[i];
        if (s->cfg->when_full == AP_LOG_WHEN_FULL_BLOCK && s->qcount + count > s->cfg->queue &&
            s->qcount > 0)
            return 0;
    }
    return 1;
}

static void push_all(struct ap_logger *lg, uint64_t mask, const char *p, size_t n, uint8_t pri,
                     int64_t time_us)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        if ((mask & ((uint64_t)1 << i)) && lg->sinks[i] != NULL)
            ap_logsink_push(lg->sinks[i], p, n, pri, time_us);
}

void ap_logger__dispatch_lines(struct ap_logger *lg, uint64_t mask, uint8_t pri, int64_t time_us,
                               const char *lines, size_t len)
{
    size_t a = 0;
    while (a < len) {
        const char *nl = memchr(lines + a, '\n', len - a);
        size_t e = nl ? (size_t)(nl - lines) : len;
        if (e > a)
            push_all(lg, mask, lines + a, e - a, pri, time_us);
        a = e + 1;
    }
}

static void dispatch_access(struct ap_logger *lg, const void *p, size_t n, int64_t time_us)
{
    struct ap_logfmt_rec r;
    if (ap_logfmt_decode(p, n, &r) != 0) {
        ap_log(AP_LOG_ERROR, "logger: damaged access record in a worker queue (dropped)");
        return;
    }
    ap_buf_reset(lg->line);
    int rc = lg->format == AP_LOG_FORMAT_TEXT ? ap_logfmt_text(&lg->tmpl, &r, lg->line)
                                              : ap_logfmt_json(&r, lg->line);
    if (rc != 0) {
        ap_log(AP_LOG_ERROR, "logger: access record too large to format (dropped)");
        return;
    }
    AP_LOGSTAT_ADD(lg->access_records, 1);
    push_all(lg, lg->access_mask, lg->line->data, lg->line->len, 255, time_us);
}

/* Take every record the workers queued (until a `block` sink is full). */
static void drain(struct ap_logger *lg)
{
    lg->blocked = 0;
    for (unsigned i = 0; i < lg->nrings; i++) {
        struct ap_logring *ring = &lg->rings[i];
        for (;;) {
            size_t n;
            const char *p = ap_logring_peek(ring, &n);
            if (p == NULL)
                break;
            struct ap_logmsg_hdr h;
            if (n < sizeof(h)) {
                ap_logring_consume(ring);
                continue;
            }
            memcpy(&h, p, sizeof(h));
            uint64_t mask = h.kind == AP_LOGMSG_ACCESS ? lg->access_mask : h.sinks;
            if (!lg->stopping && !mask_has_room(lg, mask, h.kind == AP_LOGMSG_ACCESS ? 1 : h.count)) {
                /* when_full: block. The record waits in the worker's queue;
                 * the tick tries again. */
                lg->blocked = 1;
                break;
            }
            if (h.kind == AP_LOGMSG_ACCESS) {
                dispatch_access(lg, p + sizeof(h), n - sizeof(h), h.time_us);
            } else if (h.kind == AP_LOGMSG_LINES) {
                AP_LOGSTAT_ADD(lg->relay_records, h.count);
                ap_logger__dispatch_lines(lg, mask, h.pri, h.time_us, p + sizeof(h), n - sizeof(h));
            }
            ap_logring_consume(ring);
        }
    }
    for (size_t i = 0; i < lg->nsinks; i++)
        if (lg->sinks[i] != NULL)
            ap_logsink_sync(lg->sinks[i]);
    for (struct ap_logsink *r = lg->retiring; r != NULL; r = r->next)
        ap_logsink_sync(r);
}

/* ---- stopping ---- */

static void finish(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        if (lg->sinks[i] != NULL)
            ap_logsink_shutdown(lg->sinks[i]);
    for (struct ap_logsink *r = lg->retiring; r != NULL; r = r->next)
        ap_logsink_shutdown(r);
    ap_logrelay_listen_stop(lg);
    uv_close((uv_handle_t *)&lg->tick, ap_logsink_on_closed);
    uv_close((uv_handle_t *)&lg->wake, ap_logsink_on_closed);
}

static void check_stop(struct ap_logger *lg)
{
    if (!lg->stopping || uv_is_closing((uv_handle_t *)&lg->tick))
        return;
    int idle = 1;
    for (size_t i = 0; i < lg->nsinks; i++) {
        const struct ap_logsink *s = lg->sinks[i];
        /* A sink that is down keeps its records in the spool: do not wait
         * for it. */
        if (s != NULL && !ap_logsink_is_idle(s) && !s->down)
            idle = 0;
    }
    for (const struct ap_logsink *r = lg->retiring; r != NULL; r = r->next)
        if (!ap_logsink_is_idle(r) && !r->down)
            idle = 0;
    if (idle || ap_logger__now(lg) >= lg->stop_deadline)
        finish(lg);
}

static void begin_stop(struct ap_logger *lg)
{
    if (lg->stopping)
        return;
    lg->stopping = 1;
    lg->stop_deadline = ap_logger__now(lg) + lg->grace_ms;
    ap_logrelay_listen_stop(lg);
    drain(lg);
    /* Partial batches go now. */
    for (size_t i = 0; i < lg->nsinks; i++)
        if (lg->sinks[i] != NULL)
            ap_logsink_pump(lg->sinks[i]);
    for (struct ap_logsink *r = lg->retiring; r != NULL; r = r->next)
        ap_logsink_pump(r);
    check_stop(lg);
}

/* ---- reload ---- */

/* A removed or changed sink gets this long to deliver what it holds before
 * it is shut down (what is left stays in its spool). */
#define RETIRE_MS 10000u

enum { PLAN_KEEP = 1, PLAN_NEW };

/* A reload for the logger thread, built and checked on the main thread. */
struct ap_logger_update {
    struct ap_config *cfg;              /* a reference */
    struct ap_logger_map *map;
    int plan[AP_LOGGER_MAX_SINKS];      /* slot of cfg->log_sinks[j] */
    int action[AP_LOGGER_MAX_SINKS];    /* PLAN_KEEP or PLAN_NEW */
    int *lkeep;                         /* per cfg->syslog_listen: the old listener kept, or -1 */
    int *lfds;                          /* ... or the socket bound for it, or -1 */
    struct ap_logfmt_tmpl tmpl;
    unsigned nkept, nadded, nchanged;
};

static void update_free(struct ap_logger_update *u)
{
    if (u == NULL)
        return;
    for (size_t j = 0; u->lfds != NULL && j < u->cfg->nsyslog_listen; j++)
        if (u->lfds[j] >= 0)
            close(u->lfds[j]);
    free(u->lfds);
    free(u->lkeep);
    free(u->map);
    ap_logfmt_template_free(&u->tmpl);
    ap_config_unref(u->cfg);
    free(u);
}

static void push_list(struct ap_logsink **list, struct ap_logsink *s)
{
    s->next = *list;
    *list = s;
}

/* Take `s` off the retiring list (if it is there). */
static void unlist(struct ap_logsink **list, struct ap_logsink *s)
{
    for (struct ap_logsink **pp = list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            return;
        }
    }
}

static void bury(struct ap_logger *lg, struct ap_logsink *s)
{
    ap_logsink_shutdown(s);
    push_list(&lg->dead, s);
}

/* A sink left the configuration (or changed): it takes no new record and
 * delivers what it holds, then it is shut down. */
static void retire(struct ap_logger *lg, struct ap_logsink *s)
{
    if (ap_logsink_is_idle(s)) {
        bury(lg, s);
        return;
    }
    s->retire_deadline = ap_logger__now(lg) + RETIRE_MS;
    push_list(&lg->retiring, s);
    ap_logsink_pump(s);
}

static void retire_check(struct ap_logger *lg)
{
    struct ap_logsink *s = lg->retiring;
    while (s != NULL) {
        struct ap_logsink *n = s->next;
        if (ap_logsink_is_idle(s) || ap_logger__now(lg) >= s->retire_deadline) {
            unlist(&lg->retiring, s);
            bury(lg, s);
        }
        s = n;
    }
}

static int same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Would a sink made from `b` behave exactly like one made from `a`? */
static int sink_is_same(const struct ap_config_log_sink *a, const struct ap_config_log_sink *b)
{
    if (a->type != b->type || !same_str(a->path, b->path) || !same_str(a->address, b->address) ||
        a->transport != b->transport || a->addrlen != b->addrlen ||
        memcmp(&a->addr, &b->addr, a->addrlen) != 0 || a->syslog_format != b->syslog_format ||
        a->facility != b->facility || !same_str(a->app_name, b->app_name) ||
        a->max_message_bytes != b->max_message_bytes || !same_str(a->url, b->url) ||
        a->url_tls != b->url_tls || !same_str(a->tls.ca_file, b->tls.ca_file) ||
        a->tls.verify != b->tls.verify || !same_str(a->tls.server_name, b->tls.server_name) ||
        !same_str(a->tls.client_cert, b->tls.client_cert) || !same_str(a->tls.client_key, b->tls.client_key) ||
        a->nheaders != b->nheaders || a->gzip != b->gzip || a->timeout_ms != b->timeout_ms ||
        a->queue != b->queue || a->when_full != b->when_full || !same_str(a->spool.dir, b->spool.dir) ||
        a->spool.max_bytes != b->spool.max_bytes || a->spool.segment_bytes != b->spool.segment_bytes ||
        a->spool.fsync != b->spool.fsync || a->batch_max_events != b->batch_max_events ||
        a->batch_max_bytes != b->batch_max_bytes || a->batch_max_age_ms != b->batch_max_age_ms ||
        a->retry_initial_ms != b->retry_initial_ms || a->retry_max_ms != b->retry_max_ms)
        return 0;
    for (size_t i = 0; i < a->nheaders; i++)
        if (!same_str(a->headers[i], b->headers[i]))
            return 0;
    return 1;
}

static int uses_spool(const struct ap_config_log_sink *c)
{
    return c->when_full == AP_LOG_WHEN_FULL_SPOOL && c->spool.dir != NULL;
}

static void apply_update(struct ap_logger *lg, struct ap_logger_update *u)
{
    if (lg->stopping) {
        update_free(u);
        return;
    }
    /* What the workers queued so far goes out under the old configuration. */
    drain(lg);
    struct ap_logsink *ns[AP_LOGGER_MAX_SINKS] = {0};
    const struct ap_config *cfg = u->cfg;
    for (size_t j = 0; j < cfg->nlog_sinks && j < AP_LOGGER_MAX_SINKS; j++) {
        if (u->action[j] == PLAN_KEEP) {
            ns[u->plan[j]] = lg->sinks[u->plan[j]];
            lg->sinks[u->plan[j]] = NULL;
        }
    }
    unsigned nremoved = 0;
    for (size_t i = 0; i < lg->nsinks; i++) {
        if (lg->sinks[i] != NULL) {
            struct ap_logsink *s = lg->sinks[i];
            __atomic_store_n(&lg->sinks[i], NULL, __ATOMIC_RELEASE);
            retire(lg, s);
            nremoved++;
        }
    }
    for (size_t j = 0; j < cfg->nlog_sinks && j < AP_LOGGER_MAX_SINKS; j++) {
        if (u->action[j] != PLAN_NEW)
            continue;
        const struct ap_config_log_sink *c = &cfg->log_sinks[j];
        /* One spool has one owner: a retiring sink of the same spool saves
         * its queue there and leaves it to the new one, which replays it. */
        for (struct ap_logsink *r = lg->retiring; r != NULL && uses_spool(c);) {
            struct ap_logsink *n = r->next;
            if (uses_spool(r->cfg) && strcmp(r->cfg->spool.dir, c->spool.dir) == 0) {
                unlist(&lg->retiring, r);
                bury(lg, r);
            }
            r = n;
        }
        struct ap_logsink *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            ap_log(AP_LOG_ERROR, "log sink %s: out of memory: not started", c->name);
            continue;
        }
        int rc = ap_logsink_init(s, lg, (unsigned)u->plan[j], c);
        s->cfg_ref = ap_config_ref(u->cfg);
        if (rc != 0) {
            ap_log(AP_LOG_ERROR, "log sink %s: cannot start: %s", c->name, strerror(-rc));
            bury(lg, s);
            continue;
        }
        ns[u->plan[j]] = s;
    }
    for (size_t i = 0; i < AP_LOGGER_MAX_SINKS; i++)
        __atomic_store_n(&lg->sinks[i], ns[i], __ATOMIC_RELEASE);
    __atomic_store_n(&lg->nsinks, u->map->nslots, __ATOMIC_RELEASE);
    lg->access_mask = u->map->access_mask;
    lg->format = cfg->access_log.format;
    struct ap_logfmt_tmpl t = lg->tmpl;
    lg->tmpl = u->tmpl;
    u->tmpl = t;
    u->map->older = lg->map;
    __atomic_store_n(&lg->map, u->map, __ATOMIC_RELEASE);
    u->map = NULL;
    struct ap_config *old = lg->cfg;
    lg->cfg = u->cfg;
    u->cfg = ap_config_ref(lg->cfg);
    ap_logrelay_listen_update(lg, lg->cfg, u->lkeep, u->lfds);
    for (size_t j = 0; j < cfg->nsyslog_listen; j++)
        u->lfds[j] = -1;
    ap_config_unref(old);
    ap_log(AP_LOG_INFO, "logger: reloaded: %u sinks kept, %u added, %u changed, %u removed; access log %s, "
                        "%zu syslog listeners",
           u->nkept, u->nadded, u->nchanged, nremoved - u->nchanged, lg->access_mask ? "on" : "off",
           lg->nlisteners);
    update_free(u);
    for (size_t i = 0; i < lg->nsinks; i++)
        if (lg->sinks[i] != NULL)
            ap_logsink_pump(lg->sinks[i]);
}

/* ---- loop callbacks ---- */

static void on_wake(uv_async_t *a)
{
    struct ap_logger *lg = a->data;
    if (__atomic_exchange_n(&lg->reopen, 0, __ATOMIC_ACQ_REL)) {
        ap_log(AP_LOG_INFO, "logger: reopening log files");
        for (size_t i = 0; i < lg->nsinks; i++)
            if (lg->sinks[i] != NULL)
                ap_logsink_reopen(lg->sinks[i]);
    }
    struct ap_logger_update *u = __atomic_exchange_n(&lg->pending, NULL, __ATOMIC_ACQ_REL);
    if (u != NULL)
        apply_update(lg, u);
    if (!lg->stopping)
        drain(lg);
    if (__atomic_load_n(&lg->stop, __ATOMIC_ACQUIRE))
        begin_stop(lg);
}

static void on_tick(uv_timer_t *t)
{
    struct ap_logger *lg = t->data;
    if (!lg->stopping)
        drain(lg);
    uint64_t s = ap_logger__now(lg) / 1000;
    if (s != lg->last_tick_s) {
        lg->last_tick_s = s;
        for (size_t i = 0; i < lg->nsinks; i++)
            if (lg->sinks[i] != NULL)
                ap_logsink_tick(lg->sinks[i]);
        for (struct ap_logsink *r = lg->retiring; r != NULL; r = r->next)
            ap_logsink_tick(r);
        if (s % 3600 == 0)
            ap_pseudo_keyring_prepare(&lg->keyring, (int64_t)time(NULL));
    }
    if (!lg->stopping)
        retire_check(lg);
    check_stop(lg);
}

static void logger_main(void *arg)
{
    struct ap_logger *lg = arg;
    uv_run(&lg->loop, UV_RUN_DEFAULT);
}

/* ---- start and stop ---- */

static void sink_free(struct ap_logsink *s)
{
    struct ap_config *ref = s->cfg_ref;
    ap_logsink_destroy(s);
    free(s);
    ap_config_unref(ref);
}

static void logger_free(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        if (lg->sinks[i] != NULL)
            sink_free(lg->sinks[i]);
    struct ap_logsink *lists[2] = {lg->retiring, lg->dead};
    for (size_t k = 0; k < 2; k++) {
        while (lists[k] != NULL) {
            struct ap_logsink *n = lists[k]->next;
            sink_free(lists[k]);
            lists[k] = n;
        }
    }
    update_free(__atomic_exchange_n(&lg->pending, NULL, __ATOMIC_ACQ_REL));
    while (lg->map != NULL) {
        struct ap_logger_map *o = lg->map->older;
        free(lg->map);
        lg->map = o;
    }
    for (unsigned i = 0; i < lg->nrings; i++) {
        ap_logring_free(&lg->rings[i]);
        ap_buf_free(&lg->ws[i].scratch);
        ap_buf_free(&lg->ws[i].path);
    }
    free(lg->rings);
    free(lg->ws);
    ap_buf_free(&lg->relay_raw);
    ap_buf_free(&lg->relay_out);
    ap_logfmt_template_free(&lg->tmpl);
    if (lg->line != NULL) {
        ap_buf_free(lg->line);
        free(lg->line);
    }
    if (lg->keyring.magic != 0)
        ap_pseudo_keyring_free(&lg->keyring);
    ap_logrelay_listen_free(lg);
    ap_config_unref(lg->main_cfg);
    ap_config_unref(lg->cfg);
    lg->magic = 0;
    free(lg);
}

/* Close and run the loop until every handle is closed (after a failed start). */
static void close_all(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        if (lg->sinks[i] != NULL)
            ap_logsink_shutdown(lg->sinks[i]);
    ap_logrelay_listen_stop(lg);
    if (!uv_is_closing((uv_handle_t *)&lg->tick))
        uv_close((uv_handle_t *)&lg->tick, ap_logsink_on_closed);
    if (!uv_is_closing((uv_handle_t *)&lg->wake))
        uv_close((uv_handle_t *)&lg->wake, ap_logsink_on_closed);
    uv_run(&lg->loop, UV_RUN_DEFAULT);
    uv_loop_close(&lg->loop);
}

int ap_logger_start(struct ap_config *cfg, struct ap_pseudo_source *pseudo, unsigned nworkers)
{
    AP_BUG_ON(ap_logger__get() != NULL);
    if (cfg->nlog_sinks == 0)
        return 0;
    struct ap_logger *lg = calloc(1, sizeof(*lg));
    if (lg == NULL)
        return -ENOMEM;
    lg->magic = AP_LOGGER_MAGIC;
    lg->cfg = ap_config_ref(cfg);
    int rc = uv_loop_init(&lg->loop);
    if (rc != 0) {
        ap_log(AP_LOG_ERROR, "logger: uv_loop_init: %s", uv_strerror(rc));
        ap_config_unref(lg->cfg);
        free(lg);
        return -EIO;
    }
    uv_async_init(&lg->loop, &lg->wake, on_wake);
    lg->wake.data = lg;
    uv_timer_init(&lg->loop, &lg->tick);
    lg->tick.data = lg;
    lg->line = malloc(sizeof(*lg->line));
    lg->rings = calloc(nworkers ? nworkers : 1, sizeof(*lg->rings));
    lg->ws = aligned_alloc(64, (nworkers ? nworkers : 1) * sizeof(*lg->ws));
    ap_buf_init(&lg->relay_raw, LINE_MAX_BYTES);
    ap_buf_init(&lg->relay_out, LINE_MAX_BYTES);
    if (lg->line == NULL || lg->rings == NULL || lg->ws == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    ap_buf_init(lg->line, LINE_MAX_BYTES);
    memset(lg->ws, 0, (nworkers ? nworkers : 1) * sizeof(*lg->ws));
    for (unsigned i = 0; i < nworkers; i++) {
        ap_buf_init(&lg->ws[i].scratch, 0);
        ap_buf_init(&lg->ws[i].path, 16u * 1024u);
        if (ap_logring_init(&lg->rings[i], cfg->access_log.worker_queue_bytes) != 0) {
            rc = -ENOMEM;
            goto fail;
        }
        lg->nrings++;
        /* A relay batch is one queue entry: its output may fill one. */
        lg->ws[i].scratch.limit = lg->rings[i].max_entry;
    }
    lg->format = cfg->access_log.format;
    if (lg->format == AP_LOG_FORMAT_TEXT) {
        char why[160];
        const char *t = cfg->access_log.template ? cfg->access_log.template : AP_LOGFMT_DEFAULT_TEMPLATE;
        if (ap_logfmt_template_compile(t, &lg->tmpl, why, sizeof(why)) != 0) {
            ap_log(AP_LOG_ERROR, "logger: access_log.template: %s", why);
            rc = -EINVAL;
            goto fail;
        }
    }
    ap_pseudo_keyring_init(&lg->keyring, pseudo);
    if (ap_pseudo_keyring_prepare(&lg->keyring, (int64_t)time(NULL)) != 0) {
        ap_log(AP_LOG_ERROR, "logger: pseudonym key derivation failed");
        rc = -EIO;
        goto fail;
    }
    lg->nworkers = nworkers;
    int plan[AP_LOGGER_MAX_SINKS];
    for (size_t i = 0; i < AP_LOGGER_MAX_SINKS; i++)
        plan[i] = (int)i;
    lg->map = map_new(cfg, plan);
    if (lg->map == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    lg->main_map = lg->map;
    lg->main_cfg = ap_config_ref(cfg);
    lg->access_mask = lg->map->access_mask;
    for (size_t i = 0; i < cfg->nlog_sinks && i < AP_LOGGER_MAX_SINKS; i++) {
        struct ap_logsink *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        lg->sinks[i] = s;
        lg->nsinks = i + 1;
        rc = ap_logsink_init(s, lg, (unsigned)i, &cfg->log_sinks[i]);
        s->cfg_ref = ap_config_ref(cfg);
        if (rc != 0) {
            ap_log(AP_LOG_ERROR, "log sink %s: cannot start: %s", cfg->log_sinks[i].name, strerror(-rc));
            goto fail;
        }
    }
    uint16_t r16 = 0;
    if (RAND_bytes((unsigned char *)&r16, sizeof(r16)) != 1)
        r16 = (uint16_t)uv_hrtime();
    lg->id_prefix = (uint64_t)r16 << 48;
    rc = ap_logrelay_listen_start(lg);
    if (rc != 0)
        goto fail;
    uv_timer_start(&lg->tick, on_tick, TICK_MS, TICK_MS);
    /* Published before the workers start, so they see it from their first
     * request; the thread starts after, so it sees the whole struct. */
    __atomic_store_n(&g_logger, lg, __ATOMIC_RELEASE);
    if (uv_thread_create(&lg->thread, logger_main, lg) != 0) {
        __atomic_store_n(&g_logger, NULL, __ATOMIC_RELEASE);
        ap_log(AP_LOG_ERROR, "logger: cannot start its thread");
        rc = -EAGAIN;
        goto fail;
    }
    ap_log(AP_LOG_INFO, "logger: %zu sinks, access log %s, %zu syslog listeners", lg->nsinks,
           lg->access_mask ? "on" : "off", lg->nlisteners);
    return 0;
fail:
    close_all(lg);
    logger_free(lg);
    return rc;
}

static void log_summary(struct ap_logger *lg)
{
    struct ap_logger_stats st;
    ap_logger_get_stats(&st);
    ap_log(AP_LOG_INFO, "logger: access=%" PRIu64 " relay=%" PRIu64 " relay_rejected=%" PRIu64
                        " syslog=%" PRIu64 " queue_drops=%" PRIu64,
           st.access_records, st.relay_records, st.relay_rejected, st.syslog_messages, st.queue_drops);
    for (size_t i = 0; i < st.nsinks; i++) {
        const struct ap_logsink_stats *k = &st.sinks[i];
        ap_log(AP_LOG_INFO, "log sink %s: in=%" PRIu64 " delivered=%" PRIu64 " rejected=%" PRIu64
                            " retries=%" PRIu64 " spooled=%" PRIu64 " replayed=%" PRIu64
                            " dropped_queue_full=%" PRIu64 " dropped_spool_full=%" PRIu64
                            " dropped_disk=%" PRIu64 " dropped_shutdown=%" PRIu64
                            " spool_corrupt=%" PRIu64 " spool_bytes=%" PRIu64 " spool_peak_bytes=%" PRIu64,
               k->name, k->in, k->delivered, k->rejected, k->retries, k->spooled, k->replayed,
               k->dropped_queue_full, k->dropped_spool_full, k->dropped_disk, k->dropped_shutdown,
               k->spool_corrupt, k->spool_bytes, k->spool_peak_bytes);
    }
}

void ap_logger_stop(unsigned grace_ms)
{
    struct ap_logger *lg = ap_logger__get();
    if (lg == NULL)
        return;
    lg->grace_ms = grace_ms;
    __atomic_store_n(&lg->stop, 1, __ATOMIC_RELEASE);
    uv_async_send(&lg->wake);
    uv_thread_join(&lg->thread);
    log_summary(lg);
    __atomic_store_n(&g_logger, NULL, __ATOMIC_RELEASE);
    uv_loop_close(&lg->loop);
    logger_free(lg);
}

void ap_logger_reopen(void)
{
    struct ap_logger *lg = ap_logger__get();
    if (lg == NULL)
        return;
    __atomic_store_n(&lg->reopen, 1, __ATOMIC_RELEASE);
    uv_async_send(&lg->wake);
}

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int ap_logger_get_stats(struct ap_logger_stats *out)
{
    struct ap_logger *lg = ap_logger__get();
    memset(out, 0, sizeof(*out));
    if (lg == NULL)
        return -ENOENT;
    out->access_records = ld(&lg->access_records);
    out->relay_records = ld(&lg->relay_records);
    out->relay_rejected = ld(&lg->relay_rejected);
    out->syslog_messages = ld(&lg->syslog_messages);
    for (unsigned i = 0; i < lg->nrings; i++)
        out->queue_drops += ap_logring_drops(&lg->rings[i]);
    size_t nslots = __atomic_load_n(&lg->nsinks, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < nslots && i < AP_LOGGER_MAX_SINKS; i++) {
        /* A sink replaced meanwhile stays allocated until the logger stops. */
        const struct ap_logsink *sk = slot(lg, i);
        if (sk == NULL)
            continue;
        const struct ap_logsink_stats *s = &sk->st;
        struct ap_logsink_stats *d = &out->sinks[out->nsinks++];
        memcpy(d->name, s->name, sizeof(d->name));
        d->type = s->type;
        d->in = ld(&s->in);
        d->delivered = ld(&s->delivered);
        d->rejected = ld(&s->rejected);
        d->retries = ld(&s->retries);
        d->spooled = ld(&s->spooled);
        d->replayed = ld(&s->replayed);
        d->dropped_queue_full = ld(&s->dropped_queue_full);
        d->dropped_spool_full = ld(&s->dropped_spool_full);
        d->dropped_disk = ld(&s->dropped_disk);
        d->dropped_shutdown = ld(&s->dropped_shutdown);
        d->spool_corrupt = ld(&s->spool_corrupt);
        d->queue_len = ld(&s->queue_len);
        d->spool_bytes = ld(&s->spool_bytes);
        d->spool_peak_bytes = ld(&s->spool_peak_bytes);
        d->up = __atomic_load_n(&s->up, __ATOMIC_RELAXED);
    }
    return 0;
}

/* ---- reload, main thread ---- */

/* Create `dir` and its parents (mode 0750) and check that it is writable:
 * what the spool will need when the logger thread opens it. */
static int check_dir(const char *dir, char *err, size_t errlen)
{
    char p[4096];
    int n = snprintf(p, sizeof(p), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(p)) {
        snprintf(err, errlen, "spool directory name too long");
        return -ENAMETOOLONG;
    }
    for (char *c = p + 1; ; c++) {
        if (*c == '/' || *c == '\0') {
            char save = *c;
            *c = '\0';
            if (mkdir(p, 0750) != 0 && errno != EEXIST) {
                int e = errno;
                snprintf(err, errlen, "spool directory %.200s: %s", p, strerror(e));
                return -e;
            }
            *c = save;
            if (save == '\0')
                break;
        }
    }
    if (access(dir, W_OK | X_OK) != 0) {
        int e = errno;
        snprintf(err, errlen, "spool directory %.200s: %s", dir, strerror(e));
        return -e;
    }
    return 0;
}

/* Everything a new or changed sink needs that can fail now rather than
 * on the logger thread. */
static int check_sink(const struct ap_config_log_sink *c, char *err, size_t errlen)
{
    char why[400];
    if (uses_spool(c) && check_dir(c->spool.dir, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "log sink %s: %s", c->name, why);
        return -1;
    }
    if (c->type == AP_LOG_SINK_FILE && c->path != NULL) {
        int fd = open(c->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            snprintf(err, errlen, "log sink %s: %s: %s", c->name, c->path, strerror(errno));
            return -1;
        }
        close(fd);
    }
    return 0;
}

/* Bind (and for TCP listen on) a socket for a new syslog listener. */
static int bind_listener(const struct ap_config_syslog_listen *lc, char *err, size_t errlen)
{
    int udp = lc->transport == AP_LOG_UDP;
    int fd = socket(lc->addr.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "syslog_listen %s: socket: %s", lc->address, strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0 || (!udp && listen(fd, 128) != 0)) {
        snprintf(err, errlen, "syslog_listen %s: %s", lc->address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int listener_is_same(const struct ap_config_syslog_listen *a, const struct ap_config_syslog_listen *b)
{
    return a->transport == b->transport && a->addrlen == b->addrlen &&
           memcmp(&a->addr, &b->addr, a->addrlen) == 0 && a->max_message_bytes == b->max_message_bytes;
}

static const struct ap_config_log_sink *find_sink(const struct ap_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nlog_sinks; i++)
        if (strcmp(cfg->log_sinks[i].name, name) == 0)
            return &cfg->log_sinks[i];
    return NULL;
}

int ap_logger_reload_prepare(struct ap_config *cfg, struct ap_logger_update **out, char *err, size_t errlen)
{
    *out = NULL;
    struct ap_logger *lg = ap_logger__get();
    if (lg == NULL) {
        if (cfg->nlog_sinks == 0)
            return 0;
        snprintf(err, errlen, "log_sinks: the logger was not started (no sink at start): "
                              "adding the first sink needs a restart");
        return -ENOTSUP;
    }
    /* One logger reload at a time: the plan is made against the sink set
     * the logger thread has. */
    for (int spins = 0; __atomic_load_n(&lg->pending, __ATOMIC_ACQUIRE) != NULL; spins++) {
        if (spins >= 2000) {
            snprintf(err, errlen, "the logger thread has not applied the previous reload yet");
            return -EBUSY;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (cfg->nlog_sinks > AP_LOGGER_MAX_SINKS) {
        snprintf(err, errlen, "log_sinks: at most %d sinks", AP_LOGGER_MAX_SINKS);
        return -EINVAL;
    }
    struct ap_logger_update *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    u->cfg = ap_config_ref(cfg);
    size_t nl = cfg->nsyslog_listen;
    u->lkeep = malloc((nl ? nl : 1) * sizeof(int));
    u->lfds = malloc((nl ? nl : 1) * sizeof(int));
    if (u->lkeep == NULL || u->lfds == NULL) {
        free(u->lfds);
        u->lfds = NULL;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < nl; j++)
        u->lkeep[j] = u->lfds[j] = -1;
    /* Syslog listeners: the same address keeps its socket; a new one is
     * bound here, so a port in use fails the reload before anything changed. */
    uint64_t ltaken = 0;
    for (size_t j = 0; j < nl; j++) {
        const struct ap_config_syslog_listen *lc = &cfg->syslog_listen[j];
        for (size_t i = 0; i < lg->main_cfg->nsyslog_listen && i < 64; i++) {
            if (!(ltaken & ((uint64_t)1 << i)) && listener_is_same(&lg->main_cfg->syslog_listen[i], lc)) {
                ltaken |= (uint64_t)1 << i;
                u->lkeep[j] = (int)i;
                break;
            }
        }
        if (u->lkeep[j] < 0 && (u->lfds[j] = bind_listener(lc, err, errlen)) < 0)
            goto fail;
    }
    /* Sinks: a name keeps its slot; a new name takes a slot free before
     * this reload, so a record queued under the old set never reaches a
     * different sink of the same slot. */
    const struct ap_logger_map *cur = lg->main_map;
    uint64_t taken = 0;
    for (size_t i = 0; i < cur->nslots; i++)
        if (cur->names[i][0] != '\0')
            taken |= (uint64_t)1 << i;
    for (size_t j = 0; j < cfg->nlog_sinks; j++) {
        const struct ap_config_log_sink *c = &cfg->log_sinks[j];
        const struct ap_config_log_sink *o = find_sink(lg->main_cfg, c->name);
        int k = -1;
        for (size_t i = 0; o != NULL && i < cur->nslots; i++)
            if (strcmp(cur->names[i], c->name) == 0)
                k = (int)i;
        if (k >= 0 && sink_is_same(o, c)) {
            u->plan[j] = k;
            u->action[j] = PLAN_KEEP;
            u->nkept++;
            continue;
        }
        if (check_sink(c, err, errlen) != 0)
            goto fail;
        if (k >= 0) {
            u->nchanged++;
        } else {
            for (k = 0; k < AP_LOGGER_MAX_SINKS && (taken & ((uint64_t)1 << k)); k++)
                ;
            if (k == AP_LOGGER_MAX_SINKS) {
                snprintf(err, errlen, "log sink %s: no free sink slot until the removed sinks are gone "
                                      "(at most %d)", c->name, AP_LOGGER_MAX_SINKS);
                goto fail;
            }
            taken |= (uint64_t)1 << k;
            u->nadded++;
        }
        u->plan[j] = k;
        u->action[j] = PLAN_NEW;
    }
    u->map = map_new(cfg, u->plan);
    if (u->map == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->access_log.format == AP_LOG_FORMAT_TEXT) {
        char why[160];
        const char *t = cfg->access_log.template ? cfg->access_log.template : AP_LOGFMT_DEFAULT_TEMPLATE;
        if (ap_logfmt_template_compile(t, &u->tmpl, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "access_log.template: %s", why);
            goto fail;
        }
    }
    if (cfg->access_log.worker_queue_bytes != lg->main_cfg->access_log.worker_queue_bytes)
        ap_log(AP_LOG_WARN, "access_log.worker_queue_bytes: a change takes effect at the next start");
    *out = u;
    return 0;
fail:
    update_free(u);
    return -EINVAL;
}

void ap_logger_reload_commit(struct ap_logger_update *u)
{
    if (u == NULL)
        return;
    struct ap_logger *lg = ap_logger__get();
    AP_BUG_ON(lg == NULL);
    lg->main_map = u->map;
    ap_config_unref(lg->main_cfg);
    lg->main_cfg = ap_config_ref(u->cfg);
    struct ap_logger_update *old = __atomic_exchange_n(&lg->pending, u, __ATOMIC_ACQ_REL);
    /* prepare waited until the previous one was taken. */
    AP_BUG_ON(old != NULL);
    uv_async_send(&lg->wake);
}

void ap_logger_reload_discard(struct ap_logger_update *u)
{
    update_free(u);
}

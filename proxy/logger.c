/* The logger thread: one libuv loop that owns every log sink, the syslog
 * listeners, and all log I/O. Workers write records into their own ring
 * (one producer, one consumer, no lock) and wake this loop; it formats
 * access records, hands every record to its sinks, and flushes the spools
 * once per cycle. A worker never waits for it: a full ring costs the
 * record, counted (ap_logring_drops). */
#include "anonproxy/common.h"

#include <errno.h>
#include <inttypes.h>
#include <time.h>

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

int ap_logger__sink_index(const struct ap_logger *lg, const char *name)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        if (strcmp(lg->sinks[i].cfg->name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- dispatching ---- */

static int mask_has_room(struct ap_logger *lg, uint64_t mask, uint32_t count)
{
    for (size_t i = 0; i < lg->nsinks; i++) {
        if (!(mask & ((uint64_t)1 << i)))
            continue;
        const struct ap_logsink *s = &lg->sinks[i];
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
        if (mask & ((uint64_t)1 << i))
            ap_logsink_push(&lg->sinks[i], p, n, pri, time_us);
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
        ap_logsink_sync(&lg->sinks[i]);
}

/* ---- stopping ---- */

static void finish(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        ap_logsink_shutdown(&lg->sinks[i]);
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
        const struct ap_logsink *s = &lg->sinks[i];
        /* A sink that is down keeps its records in the spool: do not wait
         * for it. */
        if (!ap_logsink_is_idle(s) && !s->down)
            idle = 0;
    }
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
        ap_logsink_pump(&lg->sinks[i]);
    check_stop(lg);
}

/* ---- loop callbacks ---- */

static void on_wake(uv_async_t *a)
{
    struct ap_logger *lg = a->data;
    if (__atomic_exchange_n(&lg->reopen, 0, __ATOMIC_ACQ_REL)) {
        ap_log(AP_LOG_INFO, "logger: reopening log files");
        for (size_t i = 0; i < lg->nsinks; i++)
            ap_logsink_reopen(&lg->sinks[i]);
    }
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
            ap_logsink_tick(&lg->sinks[i]);
        if (s % 3600 == 0)
            ap_pseudo_keyring_prepare(&lg->keyring, (int64_t)time(NULL));
    }
    check_stop(lg);
}

static void logger_main(void *arg)
{
    struct ap_logger *lg = arg;
    uv_run(&lg->loop, UV_RUN_DEFAULT);
}

/* ---- start and stop ---- */

static void logger_free(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        ap_logsink_destroy(&lg->sinks[i]);
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
    ap_config_unref(lg->cfg);
    lg->magic = 0;
    free(lg);
}

/* Close and run the loop until every handle is closed (after a failed start). */
static void close_all(struct ap_logger *lg)
{
    for (size_t i = 0; i < lg->nsinks; i++)
        ap_logsink_shutdown(&lg->sinks[i]);
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
    for (size_t i = 0; i < cfg->nlog_sinks && i < AP_LOGGER_MAX_SINKS; i++) {
        lg->nsinks = i + 1;
        rc = ap_logsink_init(&lg->sinks[i], lg, (unsigned)i, &cfg->log_sinks[i]);
        if (rc != 0) {
            ap_log(AP_LOG_ERROR, "log sink %s: cannot start: %s", cfg->log_sinks[i].name, strerror(-rc));
            goto fail;
        }
    }
    if (cfg->access_log.set) {
        for (size_t i = 0; i < cfg->access_log.nsinks; i++) {
            int k = ap_logger__sink_index(lg, cfg->access_log.sinks[i]->name);
            if (k >= 0)
                lg->access_mask |= (uint64_t)1 << k;
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
    out->nsinks = lg->nsinks;
    for (size_t i = 0; i < lg->nsinks; i++) {
        const struct ap_logsink_stats *s = &lg->sinks[i].st;
        struct ap_logsink_stats *d = &out->sinks[i];
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

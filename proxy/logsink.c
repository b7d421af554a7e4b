/* What every log sink shares, on the logger thread: a bounded memory
 * queue, the spool it spills to, batching, and retries with exponential
 * back-off and full jitter. The sink types (logsink_file.c,
 * logsink_syslog.c, logsink_http.c) only deliver batches.
 *
 * Order. Every record gets the sink's next sequence number. The memory
 * queue holds the oldest records; once anything goes to the spool
 * (`spooling`), every new record does too, until the spool is empty
 * again, so the queue is always "memory records, then records read back
 * from the spool" and delivery follows the sequence numbers. When a
 * delivery fails, the memory records are written in front of the spool
 * (ap_logspool_prepend) and the queue is refilled from the spool once the
 * destination is back: a crash during an outage loses nothing that was
 * queued. At stop, the same happens to whatever is left. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdarg.h>

#include "anonproxy/log.h"
#include "anonproxy/logspool.h"
#include "logger-int.h"

#define ERROR_LOG_INTERVAL_MS 10000
#define REFILL_MAX_BYTES (8u * 1024u * 1024u)
#define BUSY_RETRY_MS 20

static uint64_t rnd_state;

/* xorshift64*: jitter needs no cryptographic quality. Logger thread only. */
static uint64_t rnd(void)
{
    if (rnd_state == 0)
        rnd_state = uv_hrtime() | 1;
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 0x2545F4914F6CDD1Dull;
}

static const struct ap_logsink_ops *ops_of(enum ap_log_sink_type t)
{
    switch (t) {
    case AP_LOG_SINK_FILE: return &ap_logsink_file_ops;
    case AP_LOG_SINK_STDOUT: return &ap_logsink_stdout_ops;
    case AP_LOG_SINK_SYSLOG: return &ap_logsink_syslog_ops;
    case AP_LOG_SINK_HTTP: return &ap_logsink_http_ops;
    default: return NULL;
    }
}

void ap_logsink_on_closed(uv_handle_t *h)
{
}

void ap_logsink_error(struct ap_logsink *s, const char *fmt, ...)
{
    /* At most one line per kind of error every 10 s: a sink that is down
     * must not flood the log, nor hide a different problem (a full
     * spool behind refused connections). */
    uint64_t now = ap_logger__now(s->lg);
    size_t k = 0, oldest = 0;
    for (; k < AP_ARRAY_SIZE(s->errlog); k++) {
        if (s->errlog[k].fmt == fmt || s->errlog[k].fmt == NULL)
            break;
        if (s->errlog[k].last < s->errlog[oldest].last)
            oldest = k;
    }
    if (k == AP_ARRAY_SIZE(s->errlog)) {
        k = oldest;
        s->errlog[k].fmt = NULL;
    }
    if (s->errlog[k].fmt == fmt && now - s->errlog[k].last < ERROR_LOG_INTERVAL_MS) {
        s->errlog[k].suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (s->errlog[k].fmt == fmt && s->errlog[k].suppressed > 0)
        ap_log(AP_LOG_WARN, "log sink %s: %s (and %llu more like it)", s->cfg->name, msg,
               (unsigned long long)s->errlog[k].suppressed);
    else
        ap_log(AP_LOG_WARN, "log sink %s: %s", s->cfg->name, msg);
    s->errlog[k].fmt = fmt;
    s->errlog[k].last = now;
    s->errlog[k].suppressed = 0;
}

static void note_spool(struct ap_logsink *s)
{
    if (!s->has_spool)
        return;
    AP_LOGSTAT_SET(s->st.spool_bytes, s->spool.bytes);
    AP_LOGSTAT_SET(s->st.spool_peak_bytes, s->spool.peak_bytes);
    AP_LOGSTAT_SET(s->st.spool_corrupt, s->spool.corrupt);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct ap_logsink *s = t->data;
    s->down = 0;
    ap_logsink_pump(s);
}

static void on_batch_timer(uv_timer_t *t)
{
    struct ap_logsink *s = t->data;
    s->batch_timer_on = 0;
    ap_logsink_pump(s);
}

int ap_logsink_init(struct ap_logsink *s, struct ap_logger *lg, unsigned index,
                    const struct ap_config_log_sink *cfg)
{
    memset(s, 0, sizeof(*s));
    s->magic = AP_LOGSINK_MAGIC;
    s->index = index;
    s->cfg = cfg;
    s->lg = lg;
    s->ops = ops_of(cfg->type);
    AP_BUG_ON(s->ops == NULL);
    snprintf(s->st.name, sizeof(s->st.name), "%s", cfg->name);
    s->st.type = cfg->type;
    s->st.up = 1;
    s->next_seq = 1;
    uv_timer_init(&lg->loop, &s->retry_timer);
    s->retry_timer.data = s;
    uv_timer_init(&lg->loop, &s->batch_timer);
    s->batch_timer.data = s;
    if (cfg->when_full == AP_LOG_WHEN_FULL_SPOOL && cfg->spool.dir != NULL) {
        struct ap_logspool_opts o = {
            .max_bytes = cfg->spool.max_bytes,
            .segment_bytes = cfg->spool.segment_bytes,
            .fsync = (enum ap_logspool_fsync)cfg->spool.fsync,
        };
        int rc = ap_logspool_open(&s->spool, cfg->spool.dir, &o);
        if (rc != 0) {
            ap_log(AP_LOG_WARN, "log sink %s: spool %s unavailable (%s): records will be dropped "
                                "when its queue is full",
                   cfg->name, cfg->spool.dir, strerror(-rc));
        } else {
            s->has_spool = 1;
            s->next_seq = s->spool.last_seq + 1;
            if (!ap_logspool_is_empty(&s->spool)) {
                s->spooling = 1;
                ap_log(AP_LOG_INFO, "log sink %s: %llu bytes left in the spool by an earlier run, "
                                    "replaying them first",
                       cfg->name, (unsigned long long)s->spool.bytes);
            }
            note_spool(s);
        }
    }
    return s->ops->init(s);
}

/* ---- the memory queue ---- */

static struct ap_lrec *rec_new(uint64_t seq, const void *data, size_t len, uint8_t pri, int64_t time_us,
                               uint64_t now)
{
    struct ap_lrec *r = malloc(sizeof(*r) + len);
    if (r == NULL)
        return NULL;
    r->next = NULL;
    r->seq = seq;
    r->time_us = time_us;
    r->t_in = now;
    r->len = (uint32_t)len;
    r->pri = pri;
    r->from_spool = 0;
    memset(&r->pos, 0, sizeof(r->pos));
    if (len > 0)
        memcpy(r->data, data, len);
    return r;
}

static void enqueue(struct ap_logsink *s, struct ap_lrec *r)
{
    if (s->qtail)
        s->qtail->next = r;
    else
        s->qhead = r;
    s->qtail = r;
    s->qcount++;
    s->qbytes += r->len;
    AP_LOGSTAT_SET(s->st.queue_len, s->qcount);
}

static struct ap_lrec *dequeue(struct ap_logsink *s)
{
    struct ap_lrec *r = s->qhead;
    if (r == NULL)
        return NULL;
    s->qhead = r->next;
    if (s->qhead == NULL)
        s->qtail = NULL;
    s->qcount--;
    s->qbytes -= r->len;
    AP_LOGSTAT_SET(s->st.queue_len, s->qcount);
    return r;
}

/* ---- the spool ---- */

static void spool_write(struct ap_logsink *s, uint64_t seq, const char *data, size_t len, uint8_t pri,
                        int64_t time_us)
{
    struct ap_logspool_item it = {.seq = seq, .time_us = time_us, .pri = pri, .data = data, .len = len};
    int rc = ap_logspool_append(&s->spool, &it);
    if (rc == 0) {
        AP_LOGSTAT_ADD(s->st.spooled, 1);
    } else if (rc == -EDQUOT) {
        AP_LOGSTAT_ADD(s->st.dropped_spool_full, 1);
        ap_logsink_error(s, "spool full (spool.max_bytes %llu): record dropped",
                         (unsigned long long)s->cfg->spool.max_bytes);
    } else {
        AP_LOGSTAT_ADD(s->st.dropped_disk, 1);
        ap_logsink_error(s, "cannot write the spool in %s: %s: record dropped", s->cfg->spool.dir,
                         strerror(-rc));
    }
    note_spool(s);
}

/* Read records back from the spool into the queue, behind what is there. */
static void refill(struct ap_logsink *s)
{
    if (!s->has_spool || s->closed)
        return;
    uint64_t now = ap_logger__now(s->lg);
    /* After a failure read back only about one batch: the next attempt may
     * fail too, and whatever was read is dropped from memory then. */
    size_t want = s->cfg->queue;
    size_t one = s->ops->batching ? s->cfg->batch_max_events : 1024;
    if (s->attempt > 0 && want > one)
        want = one;
    while (s->qcount < want && s->qbytes < REFILL_MAX_BYTES) {
        struct ap_logspool_item it;
        struct ap_logspool_pos pos;
        int rc = ap_logspool_read(&s->spool, &it, &pos);
        if (rc == 0)
            break;
        if (rc < 0) {
            ap_logsink_error(s, "cannot read the spool in %s: %s", s->cfg->spool.dir, strerror(-rc));
            break;
        }
        struct ap_lrec *r = rec_new(it.seq, it.data, it.len, it.pri, it.time_us, now);
        if (r == NULL) {
            /* Read again after the next delivery. */
            ap_logspool_rewind(&s->spool);
            break;
        }
        r->from_spool = 1;
        r->pos = pos;
        enqueue(s, r);
        AP_LOGSTAT_ADD(s->st.replayed, 1);
    }
    note_spool(s);
}

/* Save the records of the queue that are not in the spool yet in front of
 * it, and forget those that are (the reader is rewound). Returns 0, or a
 * negative errno with the queue left as it was. */
static int demote(struct ap_logsink *s)
{
    size_t m = 0;
    for (struct ap_lrec *r = s->qhead; r != NULL && !r->from_spool; r = r->next)
        m++;
    if (m > 0) {
        struct ap_logspool_item *items = malloc(m * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        struct ap_lrec *r = s->qhead;
        for (size_t i = 0; i < m; i++, r = r->next)
            items[i] = (struct ap_logspool_item){.seq = r->seq, .time_us = r->time_us, .pri = r->pri,
                                                 .data = r->data, .len = r->len};
        int rc = ap_logspool_prepend(&s->spool, items, m);
        free(items);
        if (rc != 0) {
            note_spool(s);
            return rc;
        }
        AP_LOGSTAT_ADD(s->st.spooled, m);
    }
    struct ap_lrec *r;
    while ((r = dequeue(s)) != NULL)
        free(r);
    ap_logspool_rewind(&s->spool);
    s->spooling = 1;
    note_spool(s);
    return 0;
}

/* ---- pushing and delivering ---- */

int ap_logsink_has_room(const struct ap_logsink *s)
{
    if (s->cfg->when_full != AP_LOG_WHEN_FULL_BLOCK)
        return 1;
    return s->qcount < s->cfg->queue;
}

void ap_logsink_push(struct ap_logsink *s, const char *data, size_t len, uint8_t pri, int64_t time_us)
{
    AP_CHECK_OBJ(s, AP_LOGSINK_MAGIC);
    AP_LOGSTAT_ADD(s->st.in, 1);
    uint64_t seq = s->next_seq++;
    if (s->closed) {
        AP_LOGSTAT_ADD(s->st.dropped_shutdown, 1);
        return;
    }
    if (s->spooling && s->has_spool) {
        spool_write(s, seq, data, len, pri, time_us);
        ap_logsink_pump(s);
        return;
    }
    if (s->qcount < s->cfg->queue) {
        struct ap_lrec *r = rec_new(seq, data, len, pri, time_us, ap_logger__now(s->lg));
        if (r != NULL) {
            enqueue(s, r);
            ap_logsink_pump(s);
            return;
        }
        /* Out of memory: the spool may still take it. */
    }
    if (s->cfg->when_full == AP_LOG_WHEN_FULL_SPOOL && s->has_spool) {
        s->spooling = 1;
        spool_write(s, seq, data, len, pri, time_us);
        return;
    }
    AP_LOGSTAT_ADD(s->st.dropped_queue_full, 1);
    ap_logsink_error(s, "queue full (%u records): record dropped", s->cfg->queue);
}

void ap_logsink_pump(struct ap_logsink *s)
{
    AP_CHECK_OBJ(s, AP_LOGSINK_MAGIC);
    if (s->in_pump || s->closed)
        return;
    s->in_pump = 1;
    for (;;) {
        if (s->inflight > 0 || s->down)
            break;
        refill(s);
        if (s->qcount == 0)
            break;
        int batching = s->ops->batching;
        size_t max_ev = batching ? s->cfg->batch_max_events : 1024;
        uint64_t max_b = batching ? s->cfg->batch_max_bytes : 1024u * 1024u;
        size_t n = 0;
        uint64_t bytes = 0;
        for (struct ap_lrec *r = s->qhead; r != NULL && n < max_ev; r = r->next) {
            if (n > 0 && bytes + r->len + 1 > max_b)
                break;
            n++;
            bytes += r->len + 1;
        }
        if (batching && !s->lg->stopping && n == s->qcount && n < max_ev && bytes < max_b &&
            (!s->has_spool || ap_logspool_is_drained(&s->spool))) {
            /* A partial batch waits for more records, up to max_age. */
            uint64_t now = ap_logger__now(s->lg);
            uint64_t due = s->qhead->t_in + s->cfg->batch_max_age_ms;
            if (now < due) {
                if (!s->batch_timer_on) {
                    s->batch_timer_on = 1;
                    uv_timer_start(&s->batch_timer, on_batch_timer, due - now, 0);
                }
                break;
            }
        }
        if (s->batch_timer_on) {
            s->batch_timer_on = 0;
            uv_timer_stop(&s->batch_timer);
        }
        s->inflight = n;
        s->in_deliver = 1;
        s->ops->deliver(s, s->qhead, n);
        s->in_deliver = 0;
    }
    s->in_pump = 0;
}

/* Remove `k` records from the head of the queue; they were dealt with.
 * Records read from the spool are acknowledged there. */
static void pop_done(struct ap_logsink *s, size_t k)
{
    struct ap_logspool_pos last;
    int have = 0;
    for (size_t i = 0; i < k; i++) {
        struct ap_lrec *r = dequeue(s);
        AP_BUG_ON(r == NULL);
        if (r->from_spool) {
            last = r->pos;
            have = 1;
        }
        free(r);
    }
    if (!have)
        return;
    int rc = ap_logspool_ack(&s->spool, &last);
    if (rc != 0)
        ap_logsink_error(s, "cannot record delivered records in the spool: %s (they may be "
                            "sent again after a restart)", strerror(-rc));
    if (ap_logspool_is_empty(&s->spool) && !s->down)
        s->spooling = 0;
    note_spool(s);
}

static uint64_t backoff_ms(const struct ap_logsink *s, uint64_t hint)
{
    uint64_t cap = s->cfg->retry_initial_ms;
    for (unsigned i = 1; i < s->attempt && cap < s->cfg->retry_max_ms; i++)
        cap *= 2;
    if (cap > s->cfg->retry_max_ms)
        cap = s->cfg->retry_max_ms;
    /* Full jitter: uniform in [0, cap], so that many proxies recovering
     * at once do not retry in step. */
    uint64_t d = rnd() % (cap + 1);
    if (hint > 0) {
        uint64_t h = hint < s->cfg->retry_max_ms ? hint : s->cfg->retry_max_ms;
        if (d < h)
            d = h;
    }
    return d < 10 ? 10 : d;
}

void ap_logsink_done(struct ap_logsink *s, enum ap_logsink_result result, size_t n_ok,
                     uint64_t retry_after_ms)
{
    AP_CHECK_OBJ(s, AP_LOGSINK_MAGIC);
    size_t n = s->inflight;
    AP_BUG_ON(n == 0 || n_ok > n);
    s->inflight = 0;
    if (n_ok > 0) {
        pop_done(s, n_ok);
        AP_LOGSTAT_ADD(s->st.delivered, n_ok);
    }
    size_t rest = n - n_ok;
    switch (result) {
    case AP_LOGSINK_OK:
        pop_done(s, rest);
        AP_LOGSTAT_ADD(s->st.delivered, rest);
        break;
    case AP_LOGSINK_REJECT:
        pop_done(s, rest);
        AP_LOGSTAT_ADD(s->st.rejected, rest);
        break;
    case AP_LOGSINK_BUSY:
        s->down = 1;
        uv_timer_start(&s->retry_timer, on_retry_timer, BUSY_RETRY_MS, 0);
        break;
    case AP_LOGSINK_RETRY: {
        AP_LOGSTAT_ADD(s->st.retries, 1);
        AP_LOGSTAT_SET(s->st.up, 0);
        s->attempt++;
        s->down = 1;
        if (s->has_spool && !s->closed) {
            int rc = demote(s);
            if (rc != 0)
                ap_logsink_error(s, "cannot save its queue to the spool: %s (kept in memory)",
                                 strerror(-rc));
        }
        uint64_t d = backoff_ms(s, retry_after_ms);
        uv_timer_start(&s->retry_timer, on_retry_timer, d, 0);
        break;
    }
    }
    if (result == AP_LOGSINK_OK || result == AP_LOGSINK_REJECT) {
        if (s->attempt > 0)
            ap_log(AP_LOG_INFO, "log sink %s: delivering again after %u failed attempts",
                   s->cfg->name, s->attempt);
        s->attempt = 0;
        AP_LOGSTAT_SET(s->st.up, 1);
        if (s->has_spool && ap_logspool_is_empty(&s->spool) && s->qcount == 0)
            s->spooling = 0;
    }
    if (!s->in_deliver)
        ap_logsink_pump(s);
}

void ap_logsink_sync(struct ap_logsink *s)
{
    if (!s->has_spool)
        return;
    int rc = ap_logspool_sync(&s->spool);
    if (rc != 0)
        ap_logsink_error(s, "cannot sync the spool: %s", strerror(-rc));
}

void ap_logsink_tick(struct ap_logsink *s)
{
    if (s->closed)
        return;
    if (s->ops->tick != NULL)
        s->ops->tick(s);
    note_spool(s);
    /* A sink that got records while its queue was empty and nothing
     * else woke it (refill after a restart). */
    ap_logsink_pump(s);
}

void ap_logsink_reopen(struct ap_logsink *s)
{
    if (!s->closed && s->ops->reopen != NULL)
        s->ops->reopen(s);
}

int ap_logsink_is_idle(const struct ap_logsink *s)
{
    return s->qcount == 0 && s->inflight == 0 && (!s->has_spool || ap_logspool_is_empty(&s->spool));
}

void ap_logsink_shutdown(struct ap_logsink *s)
{
    AP_CHECK_OBJ(s, AP_LOGSINK_MAGIC);
    if (s->closed)
        return;
    if (s->inflight > 0) {
        /* The destination may have the batch already: it comes again
         * after the restart (a duplicate, never a loss). */
        if (s->ops->abort != NULL)
            s->ops->abort(s);
        s->inflight = 0;
    }
    s->closed = 1;
    uv_timer_stop(&s->retry_timer);
    uv_timer_stop(&s->batch_timer);
    if (s->has_spool) {
        int rc = s->qcount > 0 ? demote(s) : 0;
        if (rc != 0) {
            ap_log(AP_LOG_ERROR, "log sink %s: %zu records lost at stop: cannot save them to the "
                                 "spool: %s", s->cfg->name, s->qcount, strerror(-rc));
            AP_LOGSTAT_ADD(s->st.dropped_shutdown, s->qcount);
        }
        if (!ap_logspool_is_empty(&s->spool))
            ap_log(AP_LOG_INFO, "log sink %s: %llu bytes kept in the spool %s for the next start",
                   s->cfg->name, (unsigned long long)s->spool.bytes, s->cfg->spool.dir);
        note_spool(s);
    } else if (s->qcount > 0) {
        ap_log(AP_LOG_WARN, "log sink %s: %zu records not delivered at stop and no spool to keep "
                            "them (when_full is not spool)", s->cfg->name, s->qcount);
        AP_LOGSTAT_ADD(s->st.dropped_shutdown, s->qcount);
    }
    struct ap_lrec *r;
    while ((r = dequeue(s)) != NULL)
        free(r);
    if (s->has_spool) {
        ap_logspool_close(&s->spool);
        s->has_spool = 0;
    }
    s->ops->close(s);
    uv_close((uv_handle_t *)&s->retry_timer, ap_logsink_on_closed);
    uv_close((uv_handle_t *)&s->batch_timer, ap_logsink_on_closed);
}

void ap_logsink_destroy(struct ap_logsink *s)
{
    if (s->magic != AP_LOGSINK_MAGIC)
        return;
    if (s->ops->destroy != NULL)
        s->ops->destroy(s);
    s->magic = 0;
}

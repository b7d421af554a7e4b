/* Single-producer single-consumer byte ring between a worker thread and the
 * logger thread. The producer owns `head`, the consumer owns `tail`; each
 * publishes its counter with a release store and reads the other's with an
 * acquire load, which is all the ordering the entries need. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/logring.h"

#define HDR 8u
#define WRAP 0xffffffffu

static size_t round8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

int ap_logring_init(struct ap_logring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    size_t c = 4096;
    while (c < cap && c < ((size_t)1 << 40))
        c <<= 1;
    r->buf = aligned_alloc(64, c);
    if (r->buf == NULL)
        return -ENOMEM;
    r->cap = c;
    r->max_entry = c / 4 - HDR;
    r->magic = AP_LOGRING_MAGIC;
    return 0;
}

void ap_logring_free(struct ap_logring *r)
{
    if (r->magic != AP_LOGRING_MAGIC)
        return;
    free(r->buf);
    r->buf = NULL;
    r->magic = 0;
}

static void count_drop(struct ap_logring *r)
{
    /* One writer: a relaxed load and store suffice; readers see a value
     * that is at worst a moment old. */
    uint64_t d = __atomic_load_n(&r->drops, __ATOMIC_RELAXED);
    __atomic_store_n(&r->drops, d + 1, __ATOMIC_RELAXED);
}

void *ap_logring_reserve(struct ap_logring *r, size_t n)
{
    AP_CHECK_OBJ(r, AP_LOGRING_MAGIC);
    if (n > r->max_entry) {
        count_drop(r);
        return NULL;
    }
    size_t need = HDR + round8(n);
    size_t head = r->head;
    size_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    size_t pos = head & (r->cap - 1);
    size_t contig = r->cap - pos;
    size_t skip = contig < need ? contig : 0;
    if (r->cap - (head - tail) < skip + need) {
        count_drop(r);
        return NULL;
    }
    if (skip != 0) {
        uint32_t w = WRAP;
        memcpy(r->buf + pos, &w, sizeof(w));
    }
    r->res_pos = head + skip;
    r->res_next = r->res_pos + need;
    return r->buf + (r->res_pos & (r->cap - 1)) + HDR;
}

void ap_logring_commit(struct ap_logring *r, size_t n)
{
    AP_CHECK_OBJ(r, AP_LOGRING_MAGIC);
    AP_BUG_ON(r->res_next == 0 || r->res_pos + HDR + round8(n) > r->res_next);
    uint32_t len = (uint32_t)n;
    uint32_t zero = 0;
    char *at = r->buf + (r->res_pos & (r->cap - 1));
    memcpy(at, &len, sizeof(len));
    memcpy(at + 4, &zero, sizeof(zero));
    size_t next = r->res_pos + HDR + round8(n);
    r->res_next = 0;
    __atomic_store_n(&r->head, next, __ATOMIC_RELEASE);
}

int ap_logring_push(struct ap_logring *r, const void *p, size_t n)
{
    void *dst = ap_logring_reserve(r, n);
    if (dst == NULL)
        return -ENOBUFS;
    if (n > 0)
        memcpy(dst, p, n);
    ap_logring_commit(r, n);
    return 0;
}

const void *ap_logring_peek(struct ap_logring *r, size_t *n)
{
    AP_CHECK_OBJ(r, AP_LOGRING_MAGIC);
    size_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    size_t tail = r->tail;
    for (;;) {
        if (tail == head)
            return NULL;
        size_t pos = tail & (r->cap - 1);
        uint32_t len;
        memcpy(&len, r->buf + pos, sizeof(len));
        if (len == WRAP) {
            /* The producer skipped the end of the buffer: move past it now,
             * so that its room is given back at once. */
            tail += r->cap - pos;
            __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
            continue;
        }
        AP_BUG_ON(len > r->max_entry);
        *n = len;
        return r->buf + pos + HDR;
    }
}

void ap_logring_consume(struct ap_logring *r)
{
    AP_CHECK_OBJ(r, AP_LOGRING_MAGIC);
    size_t tail = r->tail;
    uint32_t len;
    memcpy(&len, r->buf + (tail & (r->cap - 1)), sizeof(len));
    AP_BUG_ON(len == WRAP || len > r->max_entry);
    __atomic_store_n(&r->tail, tail + HDR + round8(len), __ATOMIC_RELEASE);
}

uint64_t ap_logring_drops(const struct ap_logring *r)
{
    return __atomic_load_n(&r->drops, __ATOMIC_RELAXED);
}

size_t ap_logring_used(const struct ap_logring *r)
{
    size_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    size_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    return head - tail;
}

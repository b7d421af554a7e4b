/* Single-producer single-consumer byte ring (proxy/logring.c). A worker
 * thread reserves room for one record, writes it in place and commits; the
 * logger thread peeks the oldest record and consumes it. Nothing allocates
 * after ap_logring_init and nothing blocks: a full ring makes the producer
 * count a drop and move on, because a worker loop never waits for logs. */
#ifndef ANONPROXY_LOGRING_H
#define ANONPROXY_LOGRING_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/logring-t.h"

/* Make a ring of `cap` bytes (rounded up to a power of two, at least 4 KiB).
 * A single entry may hold up to a quarter of it. Returns 0 or -ENOMEM. */
int ap_logring_init(struct ap_logring *r, size_t cap);

/* Release the buffer. No thread may use the ring afterwards. */
void ap_logring_free(struct ap_logring *r);

/* Producer: reserve `n` contiguous bytes for one entry and return where to
 * write them, or NULL when the ring has no room (the drop is counted) or n
 * is larger than r->max_entry. The entry becomes visible to the consumer
 * only at ap_logring_commit; reserving again without committing abandons
 * the earlier reservation. `n` may shrink at commit. */
void *ap_logring_reserve(struct ap_logring *r, size_t n);

/* Producer: publish the reserved entry with its final length `n` (at most
 * what was reserved). */
void ap_logring_commit(struct ap_logring *r, size_t n);

/* Producer convenience: reserve, copy `n` bytes, commit. Returns 0 or
 * -ENOBUFS (no room; counted as a drop). */
int ap_logring_push(struct ap_logring *r, const void *p, size_t n);

/* Consumer: the oldest committed entry and its length, or NULL when the
 * ring is empty. The bytes stay valid until ap_logring_consume. */
const void *ap_logring_peek(struct ap_logring *r, size_t *n);

/* Consumer: release the entry returned by the last ap_logring_peek. */
void ap_logring_consume(struct ap_logring *r);

/* Either thread: entries the producer could not place (relaxed read). */
uint64_t ap_logring_drops(const struct ap_logring *r);

/* Either thread: bytes in use (approximate while the other side runs). */
size_t ap_logring_used(const struct ap_logring *r);

#endif

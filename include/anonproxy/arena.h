#ifndef ANONPROXY_ARENA_H
#define ANONPROXY_ARENA_H

#include "anonproxy/arena-t.h"

/* Initialise an arena. Nothing is allocated until the first ap_arena_alloc.
 * `cap` bounds the total bytes the arena may hold (0: no bound). */
void ap_arena_init(struct ap_arena *a, size_t chunk_size, size_t cap);

/* Allocate `n` bytes aligned for any type. The memory stays valid until
 * ap_arena_reset or ap_arena_free. Returns NULL when the cap is hit or
 * malloc fails; callers turn that into an error, never a crash. */
void *ap_arena_alloc(struct ap_arena *a, size_t n);

/* Copy `n` bytes into the arena and NUL-terminate them. */
char *ap_arena_strndup(struct ap_arena *a, const char *s, size_t n);

/* Forget every allocation but keep one chunk for reuse. */
void ap_arena_reset(struct ap_arena *a);

/* Release everything. */
void ap_arena_free(struct ap_arena *a);

#endif

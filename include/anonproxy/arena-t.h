/* Per-request memory arena (nginx pools, h2o mem pool): many small
 * allocations, freed in one go when the request ends. */
#ifndef ANONPROXY_ARENA_T_H
#define ANONPROXY_ARENA_T_H

#include <stddef.h>

struct ap_arena_chunk;

struct ap_arena {
    struct ap_arena_chunk *head;  /* chunk being filled */
    struct ap_arena_chunk *spare; /* kept across resets, so a warm arena does not malloc */
    size_t chunk_size;            /* default size of a new chunk */
    size_t cap;                   /* hard cap on bytes held; 0 = unlimited */
    size_t used;                  /* bytes currently held in chunks */
    void **big;                   /* arena_malloc mode: every allocation */
    size_t nbig, capbig;
};

#endif

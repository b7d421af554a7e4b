/* Per-request arena. Chunks are malloc'd on demand and kept (one spare) across
 * resets, so a warm connection allocates nothing per request. With
 * -Darena_malloc=true (AP_ARENA_MALLOC) every allocation is its own malloc, so
 * ASan sees exact bounds. */
#include "anonproxy/common.h"

#include <string.h>

#include "anonproxy/arena.h"

struct ap_arena_chunk {
    struct ap_arena_chunk *next;
    size_t size; /* bytes usable after the header */
    size_t off;
    max_align_t data[];
};

void ap_arena_init(struct ap_arena *a, size_t chunk_size, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->chunk_size = chunk_size ? chunk_size : 4096;
    a->cap = cap;
}

#ifdef AP_ARENA_MALLOC
void *ap_arena_alloc(struct ap_arena *a, size_t n)
{
    if (a->cap && (n > a->cap || a->used > a->cap - n))
        return NULL;
    if (a->nbig == a->capbig) {
        size_t nc = a->capbig ? a->capbig * 2 : 16;
        void **nb = realloc(a->big, nc * sizeof(*nb));
        if (nb == NULL)
            return NULL;
        a->big = nb;
        a->capbig = nc;
    }
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        return NULL;
    a->big[a->nbig++] = p;
    a->used += n;
    return p;
}

void ap_arena_reset(struct ap_arena *a)
{
    for (size_t i = 0; i < a->nbig; i++)
        free(a->big[i]);
    a->nbig = 0;
    a->used = 0;
}

void ap_arena_free(struct ap_arena *a)
{
    ap_arena_reset(a);
    free(a->big);
    a->big = NULL;
    a->capbig = 0;
}
#else
void *ap_arena_alloc(struct ap_arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    size_t need = (n + align - 1) & ~(align - 1);
    if (need < n)
        return NULL;
    struct ap_arena_chunk *c = a->head;
    if (c == NULL || c->size - c->off < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;
        if (a->cap && (size > a->cap || a->used > a->cap - size))
            return NULL;
        if (a->spare != NULL && a->spare->size >= size) {
            c = a->spare;
            a->spare = NULL;
        } else {
            c = malloc(sizeof(*c) + size);
            if (c == NULL)
                return NULL;
            c->size = size;
        }
        c->off = 0;
        c->next = a->head;
        a->head = c;
        a->used += c->size;
    }
    void *p = (char *)c->data + c->off;
    c->off += need;
    return p;
}

void ap_arena_reset(struct ap_arena *a)
{
    struct ap_arena_chunk *c = a->head, *keep = a->spare;
    while (c != NULL) {
        struct ap_arena_chunk *next = c->next;
        if (keep == NULL || c->size > keep->size) {
            free(keep);
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = NULL;
    a->spare = keep;
    a->used = 0;
}

void ap_arena_free(struct ap_arena *a)
{
    ap_arena_reset(a);
    free(a->spare);
    a->spare = NULL;
}
#endif

char *ap_arena_strndup(struct ap_arena *a, const char *s, size_t n)
{
    char *p = ap_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

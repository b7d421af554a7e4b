/* Types shared by the text rewriting modules (query, cookie): the value
 * transformer callback and the flags of glob matching. */
#ifndef ANONPROXY_TEXT_T_H
#define ANONPROXY_TEXT_T_H

#include <stddef.h>
#include <stdint.h>

/* A value transformer supplied by another module: the pseudonymiser (HMAC)
 * or the IP truncator. The engine's rewriters call it without knowing which.
 *
 * Contract of fn: read `len` bytes at `val` (not NUL-terminated, already
 * percent-decoded where the caller says so), write the replacement to `out`
 * (at most `outcap` bytes, no NUL needed) and return the number of bytes
 * written. Return -ENOBUFS when `outcap` is too small: the rewriter then
 * fails the whole call with -ENOBUFS so that its caller can retry with a
 * larger buffer. Any other negative errno means "this value cannot be
 * transformed" (say, not an IP address) and the rewriter drops the item:
 * failing closed never forwards the original value. fn must not allocate on
 * the heap on the request path and must not keep `val` or `out`. */
struct ap_text_fn {
    int (*fn)(void *ctx, const char *val, size_t len, char *out, size_t outcap);
    void *ctx;
};

/* Flags of ap_text_matches_glob. */
#define AP_TEXT_NOCASE 0x1u /* ASCII letters compare case-insensitively */
#define AP_TEXT_PCT 0x2u    /* the subject is percent-encoded: match its decoded bytes */
#define AP_TEXT_PLUS 0x4u   /* with AP_TEXT_PCT: '+' decodes to a space (form encoding) */

/* What ap_text_globset_find returns when no pattern matches. */
#define AP_TEXT_GLOBSET_NONE SIZE_MAX

#define AP_TEXT_GLOBSET_MAGIC 0x47534554u /* "GSET" */

struct ap_text_globset_lit;
struct ap_text_globset_glob;

/* An ordered list of glob patterns compiled for "which is the first pattern
 * that matches this name?" (ap_text_globset_*): patterns without '*' or '?'
 * are found through a hash table of their (lower-cased with
 * AP_TEXT_NOCASE) bytes, so a lookup costs one hash of the name whatever
 * the number of literal patterns; only real globs are matched one by one.
 * Built at configuration time (it mallocs), read-only afterwards, so any
 * number of threads may look names up at once. */
struct ap_text_globset {
    unsigned magic;
    unsigned flags;                      /* 0 or AP_TEXT_NOCASE */
    size_t n;                            /* patterns added; their indexes are 0..n-1 */
    struct ap_text_globset_lit *lits;    /* literal patterns, first of each name only */
    size_t nlits;
    uint32_t *slots;                     /* open addressing: index into lits + 1, 0 empty */
    size_t mask;                         /* slots has mask + 1 entries (a power of two) */
    uint64_t *words;                     /* the literal patterns as 8-byte words, their
                                            last word read as text.c's name_word reads it */
    size_t nwords, words_cap;
    struct ap_text_globset_glob *globs;  /* patterns with '*' or '?', in index order */
    size_t nglobs;
    uint64_t filter[16];                 /* a bit per literal's length and first and last
                                            bytes: most absent names stop at one test */
};

#endif

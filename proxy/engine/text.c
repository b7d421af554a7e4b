/* Glob matching and percent-encoding shared by the query and cookie
 * rewriters. Everything works on (pointer, length) input and never
 * allocates, because it runs for every parameter of every request. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/text.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Read one logical byte of the subject at *i and advance *i past it. Only
 * called with *i < len. */
static unsigned char next_byte(const char *s, size_t len, size_t *i, unsigned flags)
{
    unsigned char c = (unsigned char)s[*i];
    if (flags & AP_TEXT_PCT) {
        if (c == '%' && len - *i >= 3) {
            int hi = hexval((unsigned char)s[*i + 1]);
            int lo = hexval((unsigned char)s[*i + 2]);
            if (hi >= 0 && lo >= 0) {
                *i += 3;
                c = (unsigned char)(hi * 16 + lo);
                return (flags & AP_TEXT_NOCASE) ? lower(c) : c;
            }
        }
        if (c == '+' && (flags & AP_TEXT_PLUS))
            c = ' ';
    }
    *i += 1;
    return (flags & AP_TEXT_NOCASE) ? lower(c) : c;
}

/* The classic single-backtrack algorithm: when a literal fails after a '*',
 * the '*' swallows one more subject byte and matching resumes. It is exact
 * for patterns made of literals, '?' and '*', and linear in practice. */
/* The same algorithm on raw bytes: the common case, kept free of the
 * decoding so that a policy of many rules stays cheap. */
static bool matches_plain(const char *glob, const char *s, size_t len)
{
    size_t gi = 0, si = 0, star_g = 0, star_s = 0;
    bool have_star = false;
    while (si < len) {
        char g = glob[gi];
        if (g == '*') {
            have_star = true;
            star_g = ++gi;
            star_s = si;
            continue;
        }
        if (g != '\0' && (g == '?' || g == s[si])) {
            gi++;
            si++;
            continue;
        }
        if (!have_star)
            return false;
        gi = star_g;
        si = ++star_s;
    }
    while (glob[gi] == '*')
        gi++;
    return glob[gi] == '\0';
}

bool ap_text_matches_glob(const char *glob, const char *s, size_t len, unsigned flags)
{
    AP_BUG_ON(glob == NULL);
    AP_BUG_ON(s == NULL && len > 0);
    if (flags == 0)
        return matches_plain(glob, s, len);
    size_t gi = 0, si = 0;
    size_t star_g = 0, star_s = 0;
    bool have_star = false;

    while (si < len) {
        unsigned char g = (unsigned char)glob[gi];
        if (g == '*') {
            have_star = true;
            star_g = ++gi;
            star_s = si;
            continue;
        }
        size_t ni = si;
        unsigned char c = next_byte(s, len, &ni, flags);
        if (g != '\0' && (g == '?' || ((flags & AP_TEXT_NOCASE) ? lower(g) : g) == c)) {
            gi++;
            si = ni;
            continue;
        }
        if (!have_star)
            return false;
        /* The last '*' takes one more subject byte. */
        gi = star_g;
        (void)next_byte(s, len, &star_s, flags);
        si = star_s;
    }
    while (glob[gi] == '*')
        gi++;
    return glob[gi] == '\0';
}

/* ---- compiled sets of patterns ---- */

struct ap_text_globset_lit {
    uint32_t word; /* first word in set->words, lower-cased with AP_TEXT_NOCASE */
    uint32_t len;
    uint32_t hash;
    uint32_t idx;  /* pattern index */
};

struct ap_text_globset_glob {
    char *glob;      /* own copy */
    uint32_t idx;    /* pattern index */
    uint32_t minlen; /* bytes a subject needs: the pattern's non-'*' bytes */
    bool has_star;   /* without '*', a subject has exactly minlen bytes */
};

/* Names are hashed and compared 8 bytes at a time, lower-cased in the word
 * for AP_TEXT_NOCASE: a header name costs a handful of word operations. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t load_word(const char *s)
{
    uint64_t w;
    memcpy(&w, s, sizeof(w));
    return w;
}

/* The last n < 8 bytes, zero-padded, so never read past the subject. */
static uint64_t load_tail(const char *s, size_t n)
{
    uint64_t w = 0;
    for (size_t i = n; i-- > 0;)
        w = (w << 8) | (unsigned char)s[i];
    return w;
}

/* ASCII 'A'-'Z' to 'a'-'z' in every byte of w; other bytes unchanged. */
static uint64_t fold_word(uint64_t w)
{
    uint64_t low7 = w & ~HIGHS;
    uint64_t ge_a = low7 + ONES * (0x80 - 'A');
    uint64_t gt_z = low7 + ONES * (0x80 - 'Z' - 1);
    uint64_t upper = ge_a & ~gt_z & ~w & HIGHS;
    return w | (upper >> 2);
}

/* Word i of the subject as stored: zero-padded, folded when asked. */
static uint64_t subject_word(const char *s, size_t len, size_t i, bool fold)
{
    uint64_t w = 8 * i + 8 <= len ? load_word(s + 8 * i) : load_tail(s + 8 * i, len - 8 * i);
    return fold ? fold_word(w) : w;
}

static uint32_t hash_name(const char *s, size_t len, bool fold)
{
    uint64_t h = len * 0x9E3779B97F4A7C15ull;
    size_t nw = (len + 7) / 8;
    for (size_t i = 0; i < nw; i++) {
        h = (h ^ subject_word(s, len, i, fold)) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    return (uint32_t)(h ^ (h >> 29));
}

void ap_text_globset_init(struct ap_text_globset *set, unsigned flags)
{
    AP_BUG_ON(set == NULL);
    AP_BUG_ON((flags & ~AP_TEXT_NOCASE) != 0);
    memset(set, 0, sizeof(*set));
    set->magic = AP_TEXT_GLOBSET_MAGIC;
    set->flags = flags;
}

/* Find the literal pattern equal to the subject, or NULL. */
static const struct ap_text_globset_lit *find_lit(const struct ap_text_globset *set, const char *s,
                                                  size_t len, uint32_t h, bool fold)
{
    for (size_t slot = h & set->mask;; slot = (slot + 1) & set->mask) {
        uint32_t v = set->slots[slot];
        if (v == 0)
            return NULL;
        const struct ap_text_globset_lit *l = &set->lits[v - 1];
        if (l->hash != h || l->len != len)
            continue;
        const uint64_t *k = set->words + l->word;
        size_t nw = (len + 7) / 8, i = 0;
        while (i < nw && k[i] == subject_word(s, len, i, fold))
            i++;
        if (i == nw)
            return l;
    }
}

/* Rebuild the hash table with room for `want` literals at most half full. */
static int rehash(struct ap_text_globset *set, size_t want)
{
    size_t cap = 8;
    while (cap < want * 2)
        cap *= 2;
    if (cap <= set->mask + 1 && set->slots != NULL)
        return 0;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < set->nlits; i++) {
        size_t slot = set->lits[i].hash & (cap - 1);
        while (slots[slot] != 0)
            slot = (slot + 1) & (cap - 1);
        slots[slot] = (uint32_t)i + 1;
    }
    free(set->slots);
    set->slots = slots;
    set->mask = cap - 1;
    return 0;
}

static int add_lit(struct ap_text_globset *set, const char *glob, size_t len)
{
    bool fold = set->flags & AP_TEXT_NOCASE;
    uint32_t h = hash_name(glob, len, fold);
    if (set->slots != NULL && find_lit(set, glob, len, h, fold) != NULL)
        return 0; /* an earlier pattern already names it: it always wins */
    size_t nw = (len + 7) / 8;
    if (len > UINT32_MAX || nw > UINT32_MAX - set->nwords)
        return -EINVAL;
    int rc = rehash(set, set->nlits + 1);
    if (rc != 0)
        return rc;
    if (set->nwords + nw > set->words_cap) {
        size_t nc = set->words_cap ? set->words_cap : 16;
        while (nc < set->nwords + nw)
            nc *= 2;
        uint64_t *np = realloc(set->words, nc * sizeof(*np));
        if (np == NULL)
            return -ENOMEM;
        set->words = np;
        set->words_cap = nc;
    }
    struct ap_text_globset_lit *nl = realloc(set->lits, (set->nlits + 1) * sizeof(*nl));
    if (nl == NULL)
        return -ENOMEM;
    set->lits = nl;
    for (size_t i = 0; i < nw; i++)
        set->words[set->nwords + i] = subject_word(glob, len, i, fold);
    nl[set->nlits] = (struct ap_text_globset_lit){(uint32_t)set->nwords, (uint32_t)len, h,
                                                  (uint32_t)set->n};
    set->nwords += nw;
    size_t slot = h & set->mask;
    while (set->slots[slot] != 0)
        slot = (slot + 1) & set->mask;
    set->slots[slot] = (uint32_t)++set->nlits;
    return 0;
}

static int add_glob(struct ap_text_globset *set, const char *glob, size_t len)
{
    struct ap_text_globset_glob *ng = realloc(set->globs, (set->nglobs + 1) * sizeof(*ng));
    if (ng == NULL)
        return -ENOMEM;
    set->globs = ng;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, glob, len + 1);
    uint32_t minlen = 0;
    bool star = false;
    for (size_t i = 0; i < len; i++) {
        if (glob[i] == '*')
            star = true;
        else
            minlen++;
    }
    ng[set->nglobs++] = (struct ap_text_globset_glob){copy, (uint32_t)set->n, minlen, star};
    return 0;
}

int ap_text_globset_add(struct ap_text_globset *set, const char *glob)
{
    AP_CHECK_OBJ(set, AP_TEXT_GLOBSET_MAGIC);
    if (glob == NULL || set->n >= UINT32_MAX - 1)
        return -EINVAL;
    size_t len = strlen(glob);
    int rc = strpbrk(glob, "*?") == NULL ? add_lit(set, glob, len) : add_glob(set, glob, len);
    if (rc == 0)
        set->n++;
    return rc;
}

size_t ap_text_globset_find(const struct ap_text_globset *set, const char *s, size_t len)
{
    AP_CHECK_OBJ(set, AP_TEXT_GLOBSET_MAGIC);
    AP_BUG_ON(s == NULL && len > 0);
    bool fold = set->flags & AP_TEXT_NOCASE;
    size_t best = AP_TEXT_GLOBSET_NONE;
    if (set->nlits > 0) {
        const struct ap_text_globset_lit *l = find_lit(set, s, len, hash_name(s, len, fold), fold);
        if (l != NULL)
            best = l->idx;
    }
    /* A glob added before the literal still wins: first match. */
    for (size_t i = 0; i < set->nglobs; i++) {
        const struct ap_text_globset_glob *g = &set->globs[i];
        if (g->idx > best)
            break;
        if (len < g->minlen || (!g->has_star && len != g->minlen))
            continue;
        if (ap_text_matches_glob(g->glob, s, len, set->flags))
            return g->idx;
    }
    return best;
}

void ap_text_globset_free(struct ap_text_globset *set)
{
    if (set == NULL || set->magic != AP_TEXT_GLOBSET_MAGIC)
        return;
    for (size_t i = 0; i < set->nglobs; i++)
        free(set->globs[i].glob);
    free(set->globs);
    free(set->lits);
    free(set->slots);
    free(set->words);
    ap_text_globset_init(set, set->flags);
}

size_t ap_text_pct_decode(const char *s, size_t len, char *out, unsigned flags)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && len - i >= 3) {
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out[o++] = (c == '+' && (flags & AP_TEXT_PLUS)) ? ' ' : (char)c;
        i++;
    }
    return o;
}

size_t ap_text_pct_encoded_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ap_text_is_unreserved((unsigned char)s[i]) ? 1 : 3;
    return n;
}

int ap_text_pct_encode(const char *s, size_t len, char *out, size_t outcap, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ap_text_is_unreserved(c)) {
            if (o + 1 > outcap)
                return -ENOBUFS;
            out[o++] = (char)c;
        } else {
            if (o + 3 > outcap)
                return -ENOBUFS;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    *outlen = o;
    return 0;
}

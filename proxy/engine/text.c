/* Glob matching and percent-encoding shared by the query and cookie
 * rewriters. Everything works on (pointer, length) input and never
 * allocates, because it runs for every parameter of every request. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/text.h"

/* The value of a hex digit plus one, 0 for any other byte: a table, since
 * percent-decoding asks about two bytes per escape and URL values are
 * full of escapes. */
static const uint8_t hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int hexval(unsigned char c)
{
    return (int)hex1[c] - 1;
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
    uint32_t prefix; /* bytes before the first '*' or '?': a subject starts with them */
    bool has_star;   /* without '*', a subject has exactly minlen bytes */
    bool prefix_star;/* the pattern is its prefix and one final '*' */
};

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the word-at-a-time code below assumes little-endian byte order"
#endif

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

static uint64_t load_half(const char *s)
{
    uint32_t w;
    memcpy(&w, s, sizeof(w));
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

/* Word i of a name as the set stores it (i < (len + 7) / 8). The last,
 * partial word is read with loads that stay inside the name; where its
 * bytes land depends only on the length, which is compared separately, so
 * equal words mean equal bytes. Folded when asked. */
static inline uint64_t name_word(const char *s, size_t len, size_t i, bool fold)
{
    size_t n = len - 8 * i;
    uint64_t w;
    if (n >= 8)
        w = load_word(s + 8 * i);
    else if (len >= 8)
        w = load_word(s + len - 8) >> (8 * (8 - n));
    else if (n >= 4)
        w = load_half(s) | load_half(s + n - 4) << 32;
    else
        w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
            (uint64_t)(unsigned char)s[n - 1] << 16;
    return fold ? fold_word(w) : w;
}

/* The hash of a name from its words: two independent multiplies, so a
 * lookup waits for one multiplication, not a chain of them. Words past the
 * second are folded into the second first. */
static inline uint32_t hash_pair(uint64_t w0, uint64_t w1, size_t len)
{
    uint64_t h = ((w0 + len) * 0x9E3779B97F4A7C15ull) ^ (w1 * 0xC2B2AE3D27D4EB4Full);
    return (uint32_t)(h >> 32);
}

static inline uint64_t fold_in(uint64_t acc, uint64_t w)
{
    return (acc ^ w) * 0xff51afd7ed558ccdull;
}

/* Names up to this many words keep their words on the stack between
 * hashing and comparing. */
#define NAME_WORDS 4

static uint32_t hash_name(const char *s, size_t len, bool fold)
{
    size_t nw = (len + 7) / 8;
    uint64_t w0 = nw > 0 ? name_word(s, len, 0, fold) : 0;
    uint64_t w1 = nw > 1 ? name_word(s, len, 1, fold) : 0;
    for (size_t i = 2; i < nw; i++)
        w1 = fold_in(w1, name_word(s, len, i, fold));
    return hash_pair(w0, w1, len);
}

/* The filter bit of a name: a literal can only equal a name with the same
 * bit set in the same word. */
static inline uint64_t filter_bit(const char *s, size_t len, bool fold)
{
    if (len == 0)
        return 1;
    unsigned a = (unsigned char)s[0], b = (unsigned char)s[len - 1];
    if (fold) {
        a = lower((unsigned char)a);
        b = lower((unsigned char)b);
    }
    return 1ull << ((a + 3 * b) & 63);
}

void ap_text_globset_init(struct ap_text_globset *set, unsigned flags)
{
    AP_BUG_ON(set == NULL);
    AP_BUG_ON((flags & ~AP_TEXT_NOCASE) != 0);
    memset(set, 0, sizeof(*set));
    set->magic = AP_TEXT_GLOBSET_MAGIC;
    set->flags = flags;
}

/* The literal pattern equal to the subject, or NULL. `w` holds the first
 * NAME_WORDS words of the subject; the others are read again. */
static const struct ap_text_globset_lit *probe(const struct ap_text_globset *set, const char *s,
                                               size_t len, uint32_t h, const uint64_t *w, bool fold)
{
    size_t nw = (len + 7) / 8;
    for (size_t slot = h & set->mask;; slot = (slot + 1) & set->mask) {
        uint32_t v = set->slots[slot];
        if (v == 0)
            return NULL;
        const struct ap_text_globset_lit *l = &set->lits[v - 1];
        if (l->hash != h || l->len != len)
            continue;
        const uint64_t *k = set->words + l->word;
        size_t i = 0;
        while (i < nw && k[i] == (i < NAME_WORDS ? w[i] : name_word(s, len, i, fold)))
            i++;
        if (i == nw)
            return l;
    }
}

/* find_lit for names of 1 to 16 bytes, most of them: two words at most,
 * read without loops. The same words and hash as name_word and hash_name. */
static inline const struct ap_text_globset_lit *find_short(const struct ap_text_globset *set, const char *s,
                                                    size_t len, bool fold)
{
    uint64_t w[2] = {0, 0};
    if (len > 8) {
        w[0] = load_word(s);
        w[1] = load_word(s + len - 8) >> (8 * (16 - len));
    } else if (len == 8) {
        w[0] = load_word(s);
    } else if (len >= 4) {
        w[0] = load_half(s) | load_half(s + len - 4) << 32;
    } else {
        w[0] = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[len / 2] << 8 |
               (uint64_t)(unsigned char)s[len - 1] << 16;
    }
    if (fold) {
        w[0] = fold_word(w[0]);
        w[1] = fold_word(w[1]);
    }
    uint32_t h32 = hash_pair(w[0], w[1], len);
    for (size_t slot = h32 & set->mask;; slot = (slot + 1) & set->mask) {
        uint32_t v = set->slots[slot];
        if (v == 0)
            return NULL;
        const struct ap_text_globset_lit *l = &set->lits[v - 1];
        if (l->hash != h32 || l->len != len)
            continue;
        const uint64_t *k = set->words + l->word;
        if (k[0] == w[0] && (len <= 8 || k[1] == w[1]))
            return l;
    }
}

static const struct ap_text_globset_lit *find_lit(const struct ap_text_globset *set, const char *s,
                                                  size_t len, bool fold)
{
    if (len - 1 < 16)
        return find_short(set, s, len, fold);
    uint64_t w[NAME_WORDS] = {0};
    size_t nw = (len + 7) / 8;
    uint64_t acc = 0;
    for (size_t i = 0; i < nw; i++) {
        uint64_t x = name_word(s, len, i, fold);
        if (i < NAME_WORDS)
            w[i] = x;
        acc = i == 0 ? 0 : i == 1 ? x : fold_in(acc, x); /* as hash_name */
    }
    return probe(set, s, len, hash_pair(w[0], acc, len), w, fold);
}

/* Rebuild the hash table with room for `want` literals at most a quarter
 * full: a name that is not there (most header names, most parameters) is
 * then found missing at the first or second slot. */
static int rehash(struct ap_text_globset *set, size_t want)
{
    size_t cap = 16;
    while (cap < want * 4)
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
    if (set->slots != NULL && find_lit(set, glob, len, fold) != NULL)
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
        set->words[set->nwords + i] = name_word(glob, len, i, fold);
    nl[set->nlits] = (struct ap_text_globset_lit){(uint32_t)set->nwords, (uint32_t)len, h,
                                                  (uint32_t)set->n};
    set->nwords += nw;
    set->filter[len & 15] |= filter_bit(glob, len, fold);
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
    size_t prefix = strcspn(glob, "*?");
    bool prefix_star = prefix + 1 == len && glob[prefix] == '*';
    ng[set->nglobs++] = (struct ap_text_globset_glob){copy, (uint32_t)set->n, minlen,
                                                      (uint32_t)prefix, star, prefix_star};
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

/* The globs' half of ap_text_globset_find, out of line: most sets (header
 * allowlists, parameter rules) hold few globs or none, and the literal
 * lookup then runs without the registers this loop needs. */
__attribute__((noinline)) static size_t find_glob(const struct ap_text_globset *set, const char *s,
                                                  size_t len, size_t best)
{
    bool fold = set->flags & AP_TEXT_NOCASE;
    /* A glob added before the literal still wins: first match. */
    for (size_t i = 0; i < set->nglobs; i++) {
        const struct ap_text_globset_glob *g = &set->globs[i];
        if (g->idx > best)
            break;
        if (len < g->minlen || (!g->has_star && len != g->minlen))
            continue;
        /* The literal prefix decides most names before the matcher runs. */
        size_t k = 0;
        while (k < g->prefix && (fold ? lower((unsigned char)s[k]) == lower((unsigned char)g->glob[k])
                                      : s[k] == g->glob[k]))
            k++;
        if (k < g->prefix)
            continue;
        if (g->prefix_star || ap_text_matches_glob(g->glob, s, len, set->flags))
            return g->idx;
    }
    return best;
}

size_t ap_text_globset_find(const struct ap_text_globset *set, const char *s, size_t len)
{
    AP_CHECK_OBJ(set, AP_TEXT_GLOBSET_MAGIC);
    AP_BUG_ON(s == NULL && len > 0);
    bool fold = set->flags & AP_TEXT_NOCASE;
    size_t best = AP_TEXT_GLOBSET_NONE;
    if (set->filter[len & 15] & filter_bit(s, len, fold)) {
        const struct ap_text_globset_lit *l =
            len - 1 < 16 ? find_short(set, s, len, fold) : find_lit(set, s, len, fold);
        if (l != NULL)
            best = l->idx;
    }
    if (set->nglobs == 0 || set->globs[0].idx > best)
        return best;
    return find_glob(set, s, len, best);
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

/* Some byte of w equals c (exact for the lowest such byte). */
static uint64_t has_byte(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

/* Decode the one logical byte at s[*i] into out[*o]. */
static inline void decode_one(const char *s, size_t len, char *out, size_t *i, size_t *o,
                              unsigned flags)
{
    unsigned char c = (unsigned char)s[*i];
    if (c == '%' && len - *i >= 3) {
        int hi = hexval((unsigned char)s[*i + 1]);
        int lo = hexval((unsigned char)s[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            out[(*o)++] = (char)(hi * 16 + lo);
            *i += 3;
            return;
        }
    }
    out[(*o)++] = (c == '+' && (flags & AP_TEXT_PLUS)) ? ' ' : (char)c;
    *i += 1;
}

size_t ap_text_pct_decode(const char *s, size_t len, char *out, unsigned flags)
{
    size_t o = 0, i = 0;
    if (out != s) {
        /* Eight bytes at a time: the word is stored whole, and only its
         * bytes before the first '%' or '+' are taken (o <= i, so the store
         * stays inside the `len` bytes of `out`). In place, a store could
         * overwrite bytes not read yet: that case goes byte by byte. */
        while (len - i >= 8) {
            uint64_t w = load_word(s + i);
            uint64_t m = has_byte(w, '%') | has_byte(w, '+');
            memcpy(out + o, &w, sizeof(w));
            if (m == 0) {
                o += 8;
                i += 8;
                continue;
            }
            size_t k = (size_t)__builtin_ctzll(m) / 8;
            o += k;
            i += k;
            decode_one(s, len, out, &i, &o, flags);
        }
    }
    while (i < len)
        decode_one(s, len, out, &i, &o, flags);
    return o;
}

/* Bytes each byte takes percent-encoded: 1 for the unreserved set of
 * ap_text_is_unreserved, 3 for the rest. */
static const uint8_t enc_len[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 1, 3, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 1, 1, 3,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3,
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 1,
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

size_t ap_text_pct_encoded_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0, i = 0;
    for (; i + 4 <= len; i += 4)
        n += (size_t)enc_len[u[i]] + enc_len[u[i + 1]] + enc_len[u[i + 2]] + enc_len[u[i + 3]];
    for (; i < len; i++)
        n += enc_len[u[i]];
    return n;
}

int ap_text_pct_encode_in_place(char *buf, size_t n, size_t cap, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t enc = ap_text_pct_encoded_len(buf, n);
    if (enc > cap)
        return -ENOBUFS;
    /* Backwards, so that no byte is overwritten before it is read. */
    size_t src = n, dst = enc;
    while (src < dst) {
        unsigned char c = (unsigned char)buf[--src];
        if (enc_len[c] == 1) {
            buf[--dst] = (char)c;
        } else {
            buf[--dst] = hex[c & 15];
            buf[--dst] = hex[c >> 4];
            buf[--dst] = '%';
        }
    }
    *outlen = enc;
    return 0;
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

int ap_text_name_index(const char *s, const char *const *names, size_t n, int *out)
{
    if (s == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    if (strcmp(s, "pseudonymize") == 0)
        return ap_text_name_index("pseudonymise", names, n, out);
    return -EINVAL;
}

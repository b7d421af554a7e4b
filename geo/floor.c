/* The population floor: a region or a city is emitted only once enough
 * distinct visitors were seen in it today (UTC) by this process, so a
 * header never singles out the one visitor of a small town.
 *
 * Each cell counts distinct visitor hashes with a HyperLogLog sketch of
 * 256 one-byte registers, started in a sparse mode that keeps up to 64
 * hash prefixes exactly: the thresholds that matter (10, 50) are decided
 * on exact counts, and a cell never takes more than its fixed 256 bytes
 * whatever its traffic. The table of cells is bounded by max_cells and
 * emptied at each new UTC day. Counts live in memory only. */
#include "anonproxy/common.h"

#include <errno.h>
#include <math.h>
#include <sys/random.h>
#include <time.h>

#include "anonproxy/geo.h"

#define HLL_BITS 8
#define HLL_REGS (1u << HLL_BITS)
#define SPARSE_MAX 64
#define FIRST_SLOTS 1024

struct ap_geo_floor_cell {
    uint64_t key;
    uint16_t nsparse;
    bool dense;
    uint16_t zeros; /* registers still 0, for the small-range estimate */
    double sum;     /* sum of 2^-register */
    union {
        uint32_t sparse[SPARSE_MAX]; /* the top 32 bits of each visitor hash */
        uint8_t reg[HLL_REGS];
    } u;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* A seeded 64-bit hash built on the splitmix64 finaliser. Not a MAC: the
 * seed only keeps different processes' sketches independent. */
static uint64_t hash_bytes(uint64_t seed, uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h = mix(h ^ seed ^ (len * 0x9e3779b97f4a7c15ull));
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = mix(h ^ k);
        p += 8;
        len -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, p, len);
    return mix(h ^ k ^ ((uint64_t)len << 59));
}

static uint64_t cell_key(const struct ap_geo_floor *f, const struct ap_geo_record *r,
                         enum ap_geo_level level)
{
    uint64_t h = (uint64_t)level;
    h = hash_bytes(f->seed, h, r->country, strlen(r->country) + 1);
    h = hash_bytes(f->seed, h, r->region, strlen(r->region) + 1);
    if (level == AP_GEO_LEVEL_CITY)
        h = hash_bytes(f->seed, h, r->city, strlen(r->city) + 1);
    return h;
}

int ap_geo_floor_init(struct ap_geo_floor *f, unsigned min_region, unsigned min_city,
                      size_t max_cells)
{
    memset(f, 0, sizeof(*f));
    if (max_cells == 0 || max_cells > ((size_t)1 << 24))
        return -EINVAL;
    f->magic = AP_GEO_FLOOR_MAGIC;
    f->min_region = min_region;
    f->min_city = min_city;
    f->max_cells = max_cells;
    f->stats.day = INT64_MIN;
    if (getrandom(&f->seed, sizeof(f->seed), 0) != (ssize_t)sizeof(f->seed)) {
        /* Independence between processes is nice to have, not a security
         * property: fall back to the clock rather than fail. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        f->seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uintptr_t)f);
    }
    int rc = pthread_mutex_init(&f->lock, NULL);
    if (rc != 0) {
        f->magic = 0;
        return -rc;
    }
    return 0;
}

static void drop_cells(struct ap_geo_floor *f)
{
    for (size_t i = 0; i < f->nslots; i++) {
        free(f->slots[i]);
        f->slots[i] = NULL;
    }
    f->stats.cells = 0;
}

void ap_geo_floor_free(struct ap_geo_floor *f)
{
    AP_CHECK_OBJ(f, AP_GEO_FLOOR_MAGIC);
    drop_cells(f);
    free(f->slots);
    pthread_mutex_destroy(&f->lock);
    memset(f, 0, sizeof(*f));
}

uint64_t ap_geo_floor_visitor_hash(const struct ap_geo_floor *f, const void *key, size_t len)
{
    AP_CHECK_OBJ(f, AP_GEO_FLOOR_MAGIC);
    return hash_bytes(f->seed, 0x76697369746f72ull /* "visitor" */, key, len);
}

static int64_t day_of(int64_t now)
{
    return now >= 0 ? now / 86400 : -((-now + 86399) / 86400);
}

/* A clock that steps back keeps counting into the current day rather than
 * wiping it: only a later day starts afresh. */
static void roll(struct ap_geo_floor *f, int64_t now)
{
    int64_t day = day_of(now);
    if (day > f->stats.day) {
        drop_cells(f);
        f->stats.day = day;
    }
}

static struct ap_geo_floor_cell **find_slot(struct ap_geo_floor_cell **slots, size_t nslots,
                                            uint64_t key)
{
    size_t i = (size_t)key & (nslots - 1);
    while (slots[i] != NULL && slots[i]->key != key)
        i = (i + 1) & (nslots - 1);
    return &slots[i];
}

static int grow(struct ap_geo_floor *f)
{
    size_t n = f->nslots == 0 ? FIRST_SLOTS : f->nslots * 2;
    struct ap_geo_floor_cell **s = calloc(n, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < f->nslots; i++) {
        if (f->slots[i] != NULL)
            *find_slot(s, n, f->slots[i]->key) = f->slots[i];
    }
    free(f->slots);
    f->slots = s;
    f->nslots = n;
    return 0;
}

static struct ap_geo_floor_cell *lookup_cell(struct ap_geo_floor *f, uint64_t key, bool create)
{
    if (f->nslots > 0) {
        struct ap_geo_floor_cell **slot = find_slot(f->slots, f->nslots, key);
        if (*slot != NULL || !create)
            return *slot;
    } else if (!create) {
        return NULL;
    }
    if (f->stats.cells >= f->max_cells) {
        f->stats.cells_full++;
        return NULL;
    }
    /* Keep the load factor under one half. */
    if ((f->stats.cells + 1) * 2 > f->nslots && grow(f) != 0) {
        f->stats.alloc_fail++;
        return NULL;
    }
    struct ap_geo_floor_cell *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        f->stats.alloc_fail++;
        return NULL;
    }
    c->key = key;
    *find_slot(f->slots, f->nslots, key) = c;
    f->stats.cells++;
    return c;
}

static void reg_update(struct ap_geo_floor_cell *c, unsigned idx, unsigned rank)
{
    uint8_t old = c->u.reg[idx];
    if (rank <= old)
        return;
    if (old == 0)
        c->zeros--;
    c->sum += ldexp(1.0, -(int)rank) - ldexp(1.0, -(int)old);
    c->u.reg[idx] = (uint8_t)rank;
}

/* The register index is the top HLL_BITS bits, the rank the position of
 * the first 1 bit in what follows. */
static void dense_add(struct ap_geo_floor_cell *c, uint64_t h)
{
    uint64_t w = h << HLL_BITS;
    unsigned rank = w == 0 ? 64 - HLL_BITS + 1 : (unsigned)__builtin_clzll(w) + 1;
    reg_update(c, (unsigned)(h >> (64 - HLL_BITS)), rank);
}

static void to_dense(struct ap_geo_floor_cell *c)
{
    uint32_t saved[SPARSE_MAX];
    size_t n = c->nsparse;
    memcpy(saved, c->u.sparse, n * sizeof(saved[0]));
    memset(c->u.reg, 0, sizeof(c->u.reg));
    c->dense = true;
    c->zeros = HLL_REGS;
    c->sum = HLL_REGS;
    /* Only 32 bits of each hash were kept, 24 of them after the index: a
     * rank beyond those (1 in 16 million) is clamped to 25 by the bit set
     * just below them. */
    for (size_t i = 0; i < n; i++)
        dense_add(c, (uint64_t)saved[i] << 32 | 0x80000000u);
}

static void add(struct ap_geo_floor_cell *c, uint64_t h)
{
    if (!c->dense) {
        uint32_t top = (uint32_t)(h >> 32);
        for (size_t i = 0; i < c->nsparse; i++) {
            if (c->u.sparse[i] == top)
                return;
        }
        if (c->nsparse < SPARSE_MAX) {
            c->u.sparse[c->nsparse++] = top;
            return;
        }
        to_dense(c);
    }
    dense_add(c, h);
}

static unsigned estimate(const struct ap_geo_floor_cell *c)
{
    if (!c->dense)
        return c->nsparse;
    double m = HLL_REGS;
    double alpha = 0.7213 / (1.0 + 1.079 / m);
    double e = alpha * m * m / c->sum;
    /* Linear counting is the better estimate while registers are empty. */
    if (e <= 2.5 * m && c->zeros > 0)
        e = m * log(m / c->zeros);
    if (e > (double)UINT32_MAX)
        return UINT32_MAX;
    return (unsigned)(e + 0.5);
}

/* Count the visitor in a cell; true when the cell has reached `min`. */
static bool observe(struct ap_geo_floor *f, const struct ap_geo_record *rec,
                    enum ap_geo_level level, unsigned min, uint64_t visitor)
{
    struct ap_geo_floor_cell *c = lookup_cell(f, cell_key(f, rec, level), true);
    if (c == NULL)
        return false;
    add(c, visitor);
    return estimate(c) >= min;
}

enum ap_geo_level ap_geo_floor_admit(struct ap_geo_floor *f, const struct ap_geo_record *rec,
                                     enum ap_geo_level want, uint64_t visitor, int64_t now)
{
    AP_CHECK_OBJ(f, AP_GEO_FLOOR_MAGIC);
    if (want <= AP_GEO_LEVEL_COUNTRY)
        return want;
    if (want > AP_GEO_LEVEL_CITY)
        want = AP_GEO_LEVEL_CITY;
    bool has_region = rec->region[0] != '\0';
    bool has_city = rec->city[0] != '\0';
    bool count_region = has_region && f->min_region > 0;
    bool count_city = want == AP_GEO_LEVEL_CITY && has_city && f->min_city > 0;
    bool region_ok = has_region && f->min_region == 0;
    bool city_ok = has_city && f->min_city == 0;
    if (count_region || count_city) {
        pthread_mutex_lock(&f->lock);
        roll(f, now);
        if (count_region)
            region_ok = observe(f, rec, AP_GEO_LEVEL_REGION, f->min_region, visitor);
        if (count_city)
            city_ok = observe(f, rec, AP_GEO_LEVEL_CITY, f->min_city, visitor);
        pthread_mutex_unlock(&f->lock);
    }
    /* A city header carries its region too, so it needs both floors. */
    if (want == AP_GEO_LEVEL_CITY && city_ok && (region_ok || !has_region))
        return AP_GEO_LEVEL_CITY;
    if (region_ok)
        return AP_GEO_LEVEL_REGION;
    return AP_GEO_LEVEL_COUNTRY;
}

unsigned ap_geo_floor_count(struct ap_geo_floor *f, const struct ap_geo_record *rec,
                            enum ap_geo_level level, int64_t now)
{
    AP_CHECK_OBJ(f, AP_GEO_FLOOR_MAGIC);
    if (level != AP_GEO_LEVEL_REGION && level != AP_GEO_LEVEL_CITY)
        return 0;
    unsigned n = 0;
    pthread_mutex_lock(&f->lock);
    if (day_of(now) == f->stats.day) {
        const struct ap_geo_floor_cell *c = lookup_cell(f, cell_key(f, rec, level), false);
        if (c != NULL)
            n = estimate(c);
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

void ap_geo_floor_get_stats(struct ap_geo_floor *f, struct ap_geo_floor_stats *out)
{
    AP_CHECK_OBJ(f, AP_GEO_FLOOR_MAGIC);
    pthread_mutex_lock(&f->lock);
    *out = f->stats;
    pthread_mutex_unlock(&f->lock);
}

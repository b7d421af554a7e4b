/* A worker's geolocation cache, keyed by the database network that
 * answered: one entry serves every address of that network, so a /16 of
 * a mobile operator costs one entry, not 65536. Networks of one database
 * never overlap, so at most one entry can contain an address; a lookup
 * probes only the prefix lengths that some entry has, the most common
 * first (for DB-IP Lite, /24 then /16 answer most hits), so a hit costs a
 * probe or two and a miss one probe per length present (about 25).
 *
 * Memory layout is what makes the probes cheap: the 64-bit tags of all
 * entries (a hash of family, prefix and network) sit in their own array,
 * eight to a 64-byte line, small enough to stay in the CPU cache (80 KB
 * for 10000 entries), so a probe that misses costs a hash and one cached
 * line, and the entries (128 bytes, strings packed) are read only when a
 * tag matches; the use ticks that eviction compares have their own array.
 *
 * Hints make most hits skip the probes: a direct-mapped table keyed by the
 * address's /24 (IPv4) or /48 (IPv6) holds the slot that answered for it
 * last. A hint is only ever a guess, checked against the entry itself: as
 * all entries come from one generation of the database and its networks
 * never overlap, a live entry whose network contains the address is the
 * answer, whichever network the slot held when the hint was written.
 * Set-associative with least-recently-used eviction within a set: bounded
 * memory, no allocation after init. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip.h"

static uint64_t mix(uint64_t x)
{
    /* The splitmix64 finaliser: every input bit affects every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static void mask(uint8_t out[16], const uint8_t in[16], unsigned prefix)
{
    memset(out, 0, 16);
    unsigned full = prefix / 8, rest = prefix % 8;
    memcpy(out, in, full);
    if (rest != 0)
        out[full] = (uint8_t)(in[full] & (0xff00u >> rest));
}

static uint64_t key_hash(uint8_t family, unsigned prefix, const uint8_t net[16])
{
    uint64_t a, b;
    memcpy(&a, net, 8);
    memcpy(&b, net + 8, 8);
    /* Never 0, which marks a free slot. */
    return mix(a ^ mix(b ^ ((uint64_t)family << 8 | prefix))) | 1;
}

/* Lemire's multiply-shift maps the hash onto any number of sets; it uses
 * the high bits, the tag all of them. */
static size_t set_of(const struct ap_geo_cache *c, uint64_t h)
{
    return (size_t)(((unsigned __int128)h * c->nsets) >> 64);
}

_Static_assert(sizeof(struct ap_geo_cache_entry) == 128, "a cache entry is two cache lines");

/* Pack the strings of `r` into `e`; false when they do not fit. */
static bool pack(struct ap_geo_cache_entry *e, const struct ap_geo_record *r)
{
    const char *parts[5] = {r->continent, r->country, r->region, r->city, r->timezone};
    size_t used = 0;
    for (size_t i = 0; i < 5; i++) {
        size_t n = strlen(parts[i]);
        if (n > AP_GEO_CACHE_TEXT - used)
            return false;
        memcpy(e->text + used, parts[i], n);
        e->len[i] = (uint8_t)n;
        used += n;
    }
    e->latitude = r->latitude;
    e->longitude = r->longitude;
    e->has_coords = r->has_coords;
    e->asn = r->asn;
    e->flags = (uint8_t)r->flags;
    return true;
}

static void unpack(const struct ap_geo_cache_entry *e, struct ap_geo_record *r)
{
    char *parts[5] = {r->continent, r->country, r->region, r->city, r->timezone};
    size_t used = 0;
    for (size_t i = 0; i < 5; i++) {
        memcpy(parts[i], e->text + used, e->len[i]);
        parts[i][e->len[i]] = '\0';
        used += e->len[i];
    }
    r->latitude = e->latitude;
    r->longitude = e->longitude;
    r->has_coords = e->has_coords;
    r->asn = e->asn;
    r->flags = e->flags;
}

static uint64_t hint_key(const struct ap_ip *a)
{
    uint64_t k = 0;
    memcpy(&k, a->bytes, a->family == 4 ? 3 : 6);
    return mix(k ^ ((uint64_t)a->family << 56));
}

static void set_hint(struct ap_geo_cache *c, const struct ap_ip *a, size_t slot)
{
    c->hints[hint_key(a) & (c->nhints - 1)] = (uint32_t)slot + 1;
}

static bool contains(const struct ap_geo_cache_entry *e, const struct ap_ip *a)
{
    if (e->family != a->family)
        return false;
    uint8_t net[16];
    mask(net, a->bytes, e->prefix);
    return memcmp(net, e->net, 16) == 0;
}

static unsigned fam_index(uint8_t family)
{
    return family == 4 ? 0 : 1;
}

int ap_geo_cache_init(struct ap_geo_cache *c, size_t max_entries)
{
    memset(c, 0, sizeof(*c));
    c->magic = AP_GEO_CACHE_MAGIC;
    if (max_entries == 0)
        return 0;
    size_t nsets = (max_entries + AP_GEO_CACHE_WAYS - 1) / AP_GEO_CACHE_WAYS;
    c->tags = aligned_alloc(64, nsets * AP_GEO_CACHE_WAYS * sizeof(*c->tags));
    c->ticks = calloc(nsets * AP_GEO_CACHE_WAYS, sizeof(*c->ticks));
    c->entries = calloc(nsets * AP_GEO_CACHE_WAYS, sizeof(*c->entries));
    if (c->tags == NULL || c->ticks == NULL || c->entries == NULL) {
        free(c->tags);
        free(c->ticks);
        free(c->entries);
        memset(c, 0, sizeof(*c));
        c->magic = AP_GEO_CACHE_MAGIC;
        return -ENOMEM;
    }
    memset(c->tags, 0, nsets * AP_GEO_CACHE_WAYS * sizeof(*c->tags));
    size_t nhints = 1024;
    while (nhints < nsets * AP_GEO_CACHE_WAYS)
        nhints *= 2;
    c->hints = calloc(nhints, sizeof(*c->hints));
    if (c->hints == NULL) {
        free(c->tags);
        free(c->ticks);
        free(c->entries);
        memset(c, 0, sizeof(*c));
        c->magic = AP_GEO_CACHE_MAGIC;
        return -ENOMEM;
    }
    c->nhints = nhints;
    c->nsets = nsets;
    c->stats.capacity = nsets * AP_GEO_CACHE_WAYS;
    return 0;
}

void ap_geo_cache_free(struct ap_geo_cache *c)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    free(c->tags);
    free(c->ticks);
    free(c->entries);
    free(c->hints);
    memset(c, 0, sizeof(*c));
}

void ap_geo_cache_clear(struct ap_geo_cache *c)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    if (c->tags != NULL)
        memset(c->tags, 0, c->nsets * AP_GEO_CACHE_WAYS * sizeof(*c->tags));
    if (c->hints != NULL)
        memset(c->hints, 0, c->nhints * sizeof(*c->hints));
    if (c->entries != NULL)
        memset(c->entries, 0, c->nsets * AP_GEO_CACHE_WAYS * sizeof(*c->entries));
    memset(c->nprefix, 0, sizeof(c->nprefix));
    memset(c->norder, 0, sizeof(c->norder));
    c->order_stale = false;
    c->stats.entries = 0;
}

/* A new generation means a new database: nothing cached from the old one
 * may answer again. */
static void check_generation(struct ap_geo_cache *c, uint64_t generation)
{
    if (c->generation == generation)
        return;
    if (c->stats.entries > 0)
        c->stats.flushes++;
    ap_geo_cache_clear(c);
    c->generation = generation;
}

static int normalise(const struct ap_ip *ip, struct ap_ip *out)
{
    if (ip == NULL || (ip->family != 4 && ip->family != 6))
        return -EINVAL;
    *out = *ip;
    ap_ip_unmap(out);
    return 0;
}

static bool is_key(const struct ap_geo_cache_entry *e, uint8_t family, unsigned prefix,
                   const uint8_t net[16])
{
    return e->family == family && e->prefix == prefix && memcmp(e->net, net, 16) == 0;
}

/* Sort the prefixes present by their number of entries. Needed at once
 * when a prefix appears or vanishes (the probes must cover exactly the
 * present ones); otherwise now and then, as the mix shifts. */
static void sort_order(struct ap_geo_cache *c)
{
    for (unsigned f = 0; f < 2; f++) {
        const uint32_t *counts = c->nprefix[f];
        uint8_t *order = c->order[f];
        unsigned n = 0;
        for (unsigned p = 0; p <= 128; p++) {
            if (counts[p] == 0)
                continue;
            unsigned i = n++;
            while (i > 0 && counts[order[i - 1]] < counts[p]) {
                order[i] = order[i - 1];
                i--;
            }
            order[i] = (uint8_t)p;
        }
        c->norder[f] = (uint8_t)n;
    }
    c->order_stale = false;
    c->order_age = 0;
}

static void count_prefix(struct ap_geo_cache *c, uint8_t family, unsigned prefix, int delta)
{
    uint32_t *n = &c->nprefix[fam_index(family)][prefix];
    if ((*n == 0 && delta > 0) || (*n == 1 && delta < 0))
        c->order_stale = true;
    *n = (uint32_t)((int64_t)*n + delta);
}

int ap_geo_cache_get(struct ap_geo_cache *c, uint64_t generation, const struct ap_ip *ip,
                     struct ap_geo_record *out, int *status)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    struct ap_ip a;
    if (normalise(ip, &a) != 0)
        return -EINVAL;
    check_generation(c, generation);
    if (c->nsets == 0 || c->stats.entries == 0) {
        c->stats.misses++;
        return -EAGAIN;
    }
    /* The hint first: a live entry whose network contains the address
     * (contains() is false for a free slot, whose family is 0). */
    uint32_t hint = c->hints[hint_key(&a) & (c->nhints - 1)];
    size_t hslot = (size_t)hint - 1;
    if (hint != 0 && contains(&c->entries[hslot], &a)) {
        c->ticks[hslot] = ++c->tick;
        unpack(&c->entries[hslot], out);
        *status = c->entries[hslot].status;
        c->stats.hits++;
        return 0;
    }
    if (c->order_stale || c->order_age >= 4096)
        sort_order(c);
    /* Hash every present prefix and prefetch its tag line first, so the
     * memory loads of a miss overlap instead of queueing one by one. */
    unsigned f = fam_index(a.family), n = c->norder[f];
    uint64_t hashes[129];
    size_t bases[129];
    for (unsigned i = 0; i < n; i++) {
        uint8_t net[16];
        mask(net, a.bytes, c->order[f][i]);
        hashes[i] = key_hash(a.family, c->order[f][i], net);
        bases[i] = set_of(c, hashes[i]) * AP_GEO_CACHE_WAYS;
        __builtin_prefetch(&c->tags[bases[i]]);
    }
    for (unsigned i = 0; i < n; i++) {
        for (size_t w = 0; w < AP_GEO_CACHE_WAYS; w++) {
            size_t slot = bases[i] + w;
            if (c->tags[slot] != hashes[i] || !contains(&c->entries[slot], &a))
                continue;
            /* The tag matched and the network contains the address: with
             * networks that never overlap, that is the one. */
            c->ticks[slot] = ++c->tick;
            unpack(&c->entries[slot], out);
            *status = c->entries[slot].status;
            c->stats.hits++;
            set_hint(c, &a, slot);
            return 0;
        }
    }
    c->stats.misses++;
    return -EAGAIN;
}

void ap_geo_cache_put(struct ap_geo_cache *c, uint64_t generation, const struct ap_ip *ip,
                      unsigned prefix, int status, const struct ap_geo_record *rec)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    struct ap_ip a;
    if (normalise(ip, &a) != 0 || (status != 0 && status != -ENOENT))
        return;
    unsigned bits = a.family == 4 ? 32 : 128;
    if (prefix > bits)
        return;
    check_generation(c, generation);
    if (c->nsets == 0)
        return;
    struct ap_geo_cache_entry packed;
    memset(&packed, 0, sizeof(packed));
    if (status == 0 && (rec->flags > UINT8_MAX || !pack(&packed, rec))) {
        c->stats.too_long++;
        return;
    }
    uint8_t net[16];
    mask(net, a.bytes, prefix);
    uint64_t h = key_hash(a.family, prefix, net);
    size_t base = set_of(c, h) * AP_GEO_CACHE_WAYS;
    size_t slot = AP_GEO_CACHE_WAYS;
    bool same = false;
    for (size_t w = 0; w < AP_GEO_CACHE_WAYS; w++) {
        if (c->tags[base + w] == h && is_key(&c->entries[base + w], a.family, prefix, net)) {
            slot = w; /* the same network again: refresh it */
            same = true;
            break;
        }
        if (c->tags[base + w] == 0) {
            if (slot == AP_GEO_CACHE_WAYS || c->tags[base + slot] != 0)
                slot = w;
        } else if (slot == AP_GEO_CACHE_WAYS ||
                   (c->tags[base + slot] != 0 &&
                    (int32_t)(c->ticks[base + w] - c->ticks[base + slot]) < 0)) {
            slot = w;
        }
    }
    struct ap_geo_cache_entry *e = &c->entries[base + slot];
    if (c->tags[base + slot] != 0) {
        count_prefix(c, e->family, e->prefix, -1);
        c->stats.entries--;
        if (!same)
            c->stats.evictions++;
    }
    c->tags[base + slot] = h;
    *e = packed;
    e->family = a.family;
    e->prefix = (uint8_t)prefix;
    e->status = (int16_t)status;
    memcpy(e->net, net, 16);
    c->ticks[base + slot] = ++c->tick;
    count_prefix(c, a.family, prefix, +1);
    c->stats.entries++;
    set_hint(c, &a, base + slot);
    if (c->order_age < UINT16_MAX)
        c->order_age++;
}

void ap_geo_cache_get_stats(const struct ap_geo_cache *c, struct ap_geo_cache_stats *out)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    *out = c->stats;
}

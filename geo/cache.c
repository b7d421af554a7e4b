/* A worker's geolocation cache, keyed by the database network that
 * answered: one entry serves every address of that network, so a /16 of
 * a mobile operator costs one entry, not 65536. Networks of one database
 * never overlap, so at most one entry can contain an address; a lookup
 * probes only the prefix lengths that some entry has (a bitmap), longest
 * first. Set-associative with AP_GEO_CACHE_WAYS ways and least recently
 * used eviction within a set: bounded memory, no allocation after init,
 * no pointer chasing. */
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

static size_t set_of(const struct ap_geo_cache *c, uint8_t family, unsigned prefix,
                     const uint8_t net[16])
{
    uint64_t a, b;
    memcpy(&a, net, 8);
    memcpy(&b, net + 8, 8);
    uint64_t h = mix(a ^ mix(b ^ ((uint64_t)family << 8 | prefix)));
    /* Lemire's multiply-shift maps the hash onto any number of sets. */
    return (size_t)(((unsigned __int128)h * c->nsets) >> 64);
}

int ap_geo_cache_init(struct ap_geo_cache *c, size_t max_entries)
{
    memset(c, 0, sizeof(*c));
    c->magic = AP_GEO_CACHE_MAGIC;
    if (max_entries == 0)
        return 0;
    size_t nsets = (max_entries + AP_GEO_CACHE_WAYS - 1) / AP_GEO_CACHE_WAYS;
    c->entries = calloc(nsets * AP_GEO_CACHE_WAYS, sizeof(*c->entries));
    if (c->entries == NULL)
        return -ENOMEM;
    c->nsets = nsets;
    c->stats.capacity = nsets * AP_GEO_CACHE_WAYS;
    return 0;
}

void ap_geo_cache_free(struct ap_geo_cache *c)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    free(c->entries);
    memset(c, 0, sizeof(*c));
}

void ap_geo_cache_clear(struct ap_geo_cache *c)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    if (c->entries != NULL)
        memset(c->entries, 0, c->nsets * AP_GEO_CACHE_WAYS * sizeof(*c->entries));
    memset(c->nprefix, 0, sizeof(c->nprefix));
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
    unsigned bits = a.family == 4 ? 32 : 128;
    const uint32_t *counts = c->nprefix[a.family == 4 ? 0 : 1];
    for (unsigned p = bits + 1; p-- > 0;) {
        if (counts[p] == 0)
            continue;
        uint8_t net[16];
        mask(net, a.bytes, p);
        struct ap_geo_cache_entry *set = c->entries + set_of(c, a.family, p, net) * AP_GEO_CACHE_WAYS;
        for (size_t w = 0; w < AP_GEO_CACHE_WAYS; w++) {
            struct ap_geo_cache_entry *e = &set[w];
            if (e->family == a.family && e->prefix == p && memcmp(e->net, net, 16) == 0) {
                e->tick = ++c->tick;
                *out = e->rec;
                *status = e->status;
                c->stats.hits++;
                return 0;
            }
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
    uint8_t net[16];
    mask(net, a.bytes, prefix);
    struct ap_geo_cache_entry *set =
        c->entries + set_of(c, a.family, prefix, net) * AP_GEO_CACHE_WAYS;
    struct ap_geo_cache_entry *slot = NULL;
    for (size_t w = 0; w < AP_GEO_CACHE_WAYS; w++) {
        struct ap_geo_cache_entry *e = &set[w];
        if (e->family == a.family && e->prefix == prefix && memcmp(e->net, net, 16) == 0) {
            slot = e; /* the same network again: refresh it */
            break;
        }
        if (slot == NULL || (slot->family != 0 && (e->family == 0 ||
                                                   (int32_t)(e->tick - slot->tick) < 0)))
            slot = e;
    }
    if (slot->family != 0) {
        c->nprefix[slot->family == 4 ? 0 : 1][slot->prefix]--;
        c->stats.entries--;
        if (!(slot->family == a.family && slot->prefix == prefix && memcmp(slot->net, net, 16) == 0))
            c->stats.evictions++;
    }
    slot->family = a.family;
    slot->prefix = (uint8_t)prefix;
    slot->status = (int16_t)status;
    slot->tick = ++c->tick;
    memcpy(slot->net, net, 16);
    if (status == 0)
        slot->rec = *rec;
    else
        memset(&slot->rec, 0, sizeof(slot->rec));
    c->nprefix[a.family == 4 ? 0 : 1][prefix]++;
    c->stats.entries++;
}

void ap_geo_cache_get_stats(const struct ap_geo_cache *c, struct ap_geo_cache_stats *out)
{
    AP_CHECK_OBJ(c, AP_GEO_CACHE_MAGIC);
    *out = c->stats;
}

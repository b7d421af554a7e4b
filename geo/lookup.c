/* The geolocation service: the database serving now and its hot reload,
 * the per-worker handles, and the lookup pipeline (reserved ranges, cache,
 * database, population floor, coarsening).
 *
 * Swapping without stalling workers. ap_geo holds the current database
 * under a mutex and publishes its generation in an atomic. A worker
 * compares that atomic with the generation of the database it holds on
 * each lookup (one relaxed-cost load); only after a swap does it take the
 * mutex, once, to exchange its reference. The old database stays mapped
 * until its last holder lets go, so lookups in flight finish on it, and
 * the worker's cache is keyed by generation, so no answer of the old
 * database survives the swap. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdarg.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip.h"
#include "geo-int.h"

bool ap_geo_is_reserved(const struct ap_ip *ip)
{
    struct ap_ip a = *ip;
    ap_ip_unmap(&a);
    const uint8_t *b = a.bytes;
    if (a.family == 4) {
        return b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224 ||
               (b[0] == 100 && (b[1] & 0xc0) == 64) || (b[0] == 169 && b[1] == 254) ||
               (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
               (b[0] == 192 && b[1] == 0 && b[2] == 0) || (b[0] == 198 && (b[1] & 0xfe) == 18);
    }
    if (a.family != 6)
        return false;
    static const uint8_t zero[12];
    static const uint8_t discard[8] = {0x01, 0x00, 0, 0, 0, 0, 0, 0};
    static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
    return memcmp(b, zero, 12) == 0 || (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0x80)) ||
           b[0] == 0xff || memcmp(b, discard, 8) == 0 || memcmp(b, nat64_local, 6) == 0;
}

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int rc,
                                                      const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void free_owned(struct ap_geo_owned_options *oo)
{
    for (size_t i = 0; i < AP_ARRAY_SIZE(oo->strings); i++)
        free(oo->strings[i]);
    free(oo->hosting);
    memset(oo, 0, sizeof(*oo));
}

/* Copy a borrowed string into the owned set; NULL stays NULL. */
static int own(struct ap_geo_owned_options *oo, size_t *next, const char **s)
{
    if (*s == NULL)
        return 0;
    AP_BUG_ON(*next >= AP_ARRAY_SIZE(oo->strings));
    char *c = strdup(*s);
    if (c == NULL)
        return -ENOMEM;
    oo->strings[(*next)++] = c;
    *s = c;
    return 0;
}

static int copy_options(struct ap_geo_owned_options *oo, const struct ap_geo_options *o)
{
    memset(oo, 0, sizeof(*oo));
    oo->o = *o;
    size_t next = 0;
    int rc = own(oo, &next, &oo->o.database);
    rc |= own(oo, &next, &oo->o.database_v6);
    rc |= own(oo, &next, &oo->o.asn_database);
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++)
        rc |= own(oo, &next, &oo->o.fields[i]);
    for (size_t i = 0; i < AP_GEO_OUT_COUNT; i++)
        rc |= own(oo, &next, &oo->o.headers[i]);
    if (rc == 0 && o->hosting_asns != NULL) {
        /* One element at least, so an empty list stays distinct from the
         * NULL that means "built-in list". */
        oo->hosting = calloc(o->nhosting_asns + 1, sizeof(*oo->hosting));
        if (oo->hosting == NULL)
            rc = -ENOMEM;
        else
            memcpy(oo->hosting, o->hosting_asns, o->nhosting_asns * sizeof(*oo->hosting));
        oo->o.hosting_asns = oo->hosting;
    }
    if (rc != 0) {
        free_owned(oo);
        return -ENOMEM;
    }
    return 0;
}

/* Identities of the configured files as they are now. */
static void current_ids(const struct ap_geo_options *o, struct ap_geo_file_id ids[3])
{
    const char *paths[3] = {o->database, o->database_v6, o->asn_database};
    for (size_t i = 0; i < 3; i++)
        ap_geo_db_file_id(paths[i], &ids[i]);
}

/* Identities of the files a database actually opened. */
static void db_ids(const struct ap_geo_db *db, struct ap_geo_file_id ids[3])
{
    ids[0] = db->main.id;
    ids[1] = db->v6.id;
    ids[2] = db->asn.id;
}

int ap_geo_open(struct ap_geo **out, const struct ap_geo_options *o, char *err, size_t errlen)
{
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rc = ap_geo_options_validate(o, err, errlen);
    if (rc != 0)
        return rc;
    struct ap_geo *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return fail(err, errlen, -ENOMEM, "geo: out of memory");
    if (copy_options(&g->opts, o) != 0) {
        free(g);
        return fail(err, errlen, -ENOMEM, "geo: out of memory");
    }
    rc = pthread_mutex_init(&g->lock, NULL);
    if (rc != 0) {
        free_owned(&g->opts);
        free(g);
        return fail(err, errlen, -rc, "geo: pthread_mutex_init: %s", strerror(rc));
    }
    rc = pthread_mutex_init(&g->reload_lock, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&g->lock);
        free_owned(&g->opts);
        free(g);
        return fail(err, errlen, -rc, "geo: pthread_mutex_init: %s", strerror(rc));
    }
    rc = ap_geo_floor_init(&g->floor, o->min_visitors_region, o->min_visitors_city,
                           o->floor_max_cells);
    if (rc == 0) {
        rc = ap_geo_db_open(&g->current, &g->opts.o, 1, err, errlen);
        if (rc != 0)
            ap_geo_floor_free(&g->floor);
    } else {
        fail(err, errlen, rc, "geo: cannot make the population floor: %s", strerror(-rc));
    }
    if (rc != 0) {
        pthread_mutex_destroy(&g->reload_lock);
        pthread_mutex_destroy(&g->lock);
        free_owned(&g->opts);
        free(g);
        return rc;
    }
    g->magic = AP_GEO_MAGIC;
    atomic_init(&g->generation, 1);
    atomic_init(&g->workers, 0);
    g->stats.generation = 1;
    db_ids(g->current, g->attempted);
    *out = g;
    return 0;
}

void ap_geo_close(struct ap_geo *g)
{
    if (g == NULL)
        return;
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    AP_BUG_ON(atomic_load(&g->workers) != 0);
    ap_geo_db_unref(g->current);
    ap_geo_floor_free(&g->floor);
    pthread_mutex_destroy(&g->reload_lock);
    pthread_mutex_destroy(&g->lock);
    free_owned(&g->opts);
    g->magic = 0;
    free(g);
}

int ap_geo_reload(struct ap_geo *g, char *err, size_t errlen)
{
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    char local[AP_GEO_ERR_LEN];
    if (err == NULL || errlen == 0) {
        err = local;
        errlen = sizeof(local);
    }
    err[0] = '\0';
    pthread_mutex_lock(&g->reload_lock);
    struct ap_geo_file_id before[3];
    current_ids(&g->opts.o, before);
    uint64_t next = atomic_load(&g->generation) + 1;
    struct ap_geo_db *db = NULL;
    int rc = ap_geo_db_open(&db, &g->opts.o, next, err, errlen);

    struct ap_geo_db *old = NULL;
    pthread_mutex_lock(&g->lock);
    if (rc == 0) {
        old = g->current;
        g->current = db;
        atomic_store_explicit(&g->generation, next, memory_order_release);
        g->stats.generation = next;
        g->stats.reloads++;
        db_ids(db, g->attempted);
    } else {
        g->stats.reload_failures++;
        snprintf(g->stats.last_error, sizeof(g->stats.last_error), "%s", err);
        memcpy(g->attempted, before, sizeof(before));
    }
    pthread_mutex_unlock(&g->lock);
    /* Workers still holding the old database keep it alive. */
    ap_geo_db_unref(old);
    pthread_mutex_unlock(&g->reload_lock);
    return rc;
}

bool ap_geo_is_changed(struct ap_geo *g)
{
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    struct ap_geo_file_id now[3], seen[3];
    current_ids(&g->opts.o, now);
    pthread_mutex_lock(&g->lock);
    memcpy(seen, g->attempted, sizeof(seen));
    pthread_mutex_unlock(&g->lock);
    for (size_t i = 0; i < 3; i++) {
        if (!ap_geo_db_is_same_file(&now[i], &seen[i]))
            return true;
    }
    return false;
}

void ap_geo_get_stats(struct ap_geo *g, struct ap_geo_stats *out)
{
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    pthread_mutex_lock(&g->lock);
    *out = g->stats;
    pthread_mutex_unlock(&g->lock);
}

const char *ap_geo_header_name(const struct ap_geo *g, enum ap_geo_out f)
{
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    if ((unsigned)f >= AP_GEO_OUT_COUNT)
        return NULL;
    return g->opts.o.headers[f];
}

struct ap_geo_db *ap_geo_acquire(struct ap_geo *g)
{
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    pthread_mutex_lock(&g->lock);
    struct ap_geo_db *db = ap_geo_db_ref(g->current);
    pthread_mutex_unlock(&g->lock);
    return db;
}

int ap_geo_worker_new(struct ap_geo_worker **out, struct ap_geo *g)
{
    AP_CHECK_OBJ(g, AP_GEO_MAGIC);
    *out = NULL;
    struct ap_geo_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    if (ap_geo_cache_init(&w->cache, g->opts.o.cache_size) != 0) {
        free(w);
        return -ENOMEM;
    }
    w->magic = AP_GEO_WORKER_MAGIC;
    w->geo = g;
    atomic_fetch_add(&g->workers, 1);
    *out = w;
    return 0;
}

void ap_geo_worker_free(struct ap_geo_worker *w)
{
    if (w == NULL)
        return;
    AP_CHECK_OBJ(w, AP_GEO_WORKER_MAGIC);
    ap_geo_db_unref(w->db);
    ap_geo_cache_free(&w->cache);
    atomic_fetch_sub(&w->geo->workers, 1);
    w->magic = 0;
    free(w);
}

uint64_t ap_geo_worker_generation(const struct ap_geo_worker *w)
{
    AP_CHECK_OBJ(w, AP_GEO_WORKER_MAGIC);
    return w->db != NULL ? w->db->generation : 0;
}

void ap_geo_worker_get_cache_stats(const struct ap_geo_worker *w, struct ap_geo_cache_stats *out)
{
    AP_CHECK_OBJ(w, AP_GEO_WORKER_MAGIC);
    ap_geo_cache_get_stats(&w->cache, out);
}

/* Take the database of the newest generation when it changed. */
static void refresh(struct ap_geo_worker *w)
{
    uint64_t gen = atomic_load_explicit(&w->geo->generation, memory_order_acquire);
    if (w->db != NULL && w->db->generation == gen)
        return;
    struct ap_geo_db *fresh = ap_geo_acquire(w->geo);
    ap_geo_db_unref(w->db);
    w->db = fresh;
}

int ap_geo_lookup(struct ap_geo_worker *w, const struct ap_ip *client, const void *visitor,
                  size_t visitor_len, int64_t now, struct ap_geo_result *out)
{
    AP_CHECK_OBJ(w, AP_GEO_WORKER_MAGIC);
    memset(out, 0, sizeof(*out));
    if (client == NULL || (client->family != 4 && client->family != 6))
        return -EINVAL;
    const struct ap_geo_options *o = &w->geo->opts.o;
    struct ap_ip a = *client;
    ap_ip_unmap(&a);
    if (o->lookup == AP_GEO_ADDR_TRUNCATED &&
        ap_ip_truncate(&a, &a, o->truncate_v4, o->truncate_v6) != 0)
        return -EINVAL;
    if (ap_geo_is_reserved(&a))
        return -EADDRNOTAVAIL;

    refresh(w);
    struct ap_geo_record rec;
    int status;
    if (ap_geo_cache_get(&w->cache, w->db->generation, &a, &rec, &status) != 0) {
        unsigned prefix;
        status = ap_geo_db_lookup(w->db, &a, &rec, &prefix);
        ap_geo_cache_put(&w->cache, w->db->generation, &a, prefix, status, &rec);
    }
    if (status != 0)
        return status;

    enum ap_geo_level want = ap_geo_coarsen_level_of(&rec);
    if (want > o->precision)
        want = o->precision;
    if (want >= AP_GEO_LEVEL_REGION && (o->min_visitors_region > 0 || o->min_visitors_city > 0)) {
        uint64_t vh;
        if (visitor != NULL) {
            vh = ap_geo_floor_visitor_hash(&w->geo->floor, visitor, visitor_len);
        } else {
            struct ap_ip t;
            if (ap_ip_truncate(&t, &a, o->truncate_v4, o->truncate_v6) != 0)
                return -EINVAL;
            uint8_t key[17];
            key[0] = t.family;
            memcpy(key + 1, t.bytes, 16);
            vh = ap_geo_floor_visitor_hash(&w->geo->floor, key, sizeof(key));
        }
        want = ap_geo_floor_admit(&w->geo->floor, &rec, want, vh, now);
    }
    ap_geo_coarsen_apply(o, &rec, want, out);
    return 0;
}

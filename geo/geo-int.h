/* Internal types of geo/: the database handle, the service and the worker.
 * Only the files of geo/ include this; everything else sees them as opaque. */
#ifndef ANONPROXY_GEO_INT_H
#define ANONPROXY_GEO_INT_H

#include <maxminddb.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "anonproxy/geo-t.h"

#define AP_GEO_DB_MAGIC 0x47454f44u     /* "GEOD" */
#define AP_GEO_MAGIC 0x47454f53u        /* "GEOS" */
#define AP_GEO_WORKER_MAGIC 0x47454f57u /* "GEOW" */

/* What identifies the file behind a path, to notice a replacement. */
struct ap_geo_file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
};

/* One opened MMDB file. */
struct ap_geo_file {
    bool open;
    char *path;
    MMDB_s mmdb;
    struct ap_geo_file_id id;
};

/* A field path split into MMDB_aget_value components, NULL-terminated. */
struct ap_geo_path {
    bool set;
    const char *comp[AP_GEO_PATH_DEPTH + 1];
    char store[AP_GEO_PATH_MAX + 1];
};

struct ap_geo_db {
    unsigned magic;
    atomic_uint refs;
    uint64_t generation;
    enum ap_geo_schema schema;
    struct ap_geo_file main; /* IPv4 (and IPv6 when v6 is not open) */
    struct ap_geo_file v6;
    struct ap_geo_file asn;
    struct ap_geo_path paths[AP_GEO_FIELD_COUNT];
    uint32_t *hosting; /* sorted, for bsearch */
    size_t nhosting;
    bool keep_asn;
};

/* The options as ap_geo keeps them: every string owned. */
struct ap_geo_owned_options {
    struct ap_geo_options o;
    char *strings[3 + AP_GEO_FIELD_COUNT + AP_GEO_OUT_COUNT];
    uint32_t *hosting;
};

struct ap_geo {
    unsigned magic;
    struct ap_geo_owned_options opts;
    pthread_mutex_t lock;        /* guards current, stats, attempted */
    pthread_mutex_t reload_lock; /* serialises ap_geo_reload */
    struct ap_geo_db *current;
    atomic_uint_fast64_t generation; /* of current; read without the lock */
    struct ap_geo_stats stats;
    /* Identity of the files at the last reload attempt (or open). */
    struct ap_geo_file_id attempted[3];
    struct ap_geo_floor floor;
    atomic_uint workers; /* live workers; ap_geo_close checks it is 0 */
};

struct ap_geo_worker {
    unsigned magic;
    struct ap_geo *geo;
    struct ap_geo_db *db; /* this worker's reference */
    struct ap_geo_cache cache;
};

/* Fill `id` from stat(2) of `path`; a missing file gives exists false. */
void ap_geo_db_file_id(const char *path, struct ap_geo_file_id *id);
bool ap_geo_db_is_same_file(const struct ap_geo_file_id *a, const struct ap_geo_file_id *b);

#endif

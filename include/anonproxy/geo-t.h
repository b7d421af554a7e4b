/* Types of geolocation: options, the raw record a database returns, the
 * coarsened result that leaves geo/, the per-worker cache and the
 * population floor. The database handle, the process-wide service and the
 * per-worker handle are opaque (geo/geo-int.h). */
#ifndef ANONPROXY_GEO_T_H
#define ANONPROXY_GEO_T_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anonproxy/ip-t.h"

/* Text buffer sizes, NUL included. Codes are ISO 3166-1 alpha-2 and
 * continent codes; a longer value from a custom field is dropped. Names
 * longer than their buffer are cut at a UTF-8 character boundary. */
#define AP_GEO_CODE_LEN 8
#define AP_GEO_NAME_LEN 128
#define AP_GEO_TZ_LEN 64

/* Longest dotted field path accepted ("subdivisions.0.iso_code"), and its
 * number of components. */
#define AP_GEO_PATH_MAX 255
#define AP_GEO_PATH_DEPTH 8

/* Defaults of the options (docs/geo.md). */
#define AP_GEO_MIN_VISITORS_REGION_DEFAULT 10
#define AP_GEO_MIN_VISITORS_CITY_DEFAULT 50
#define AP_GEO_CACHE_SIZE_DEFAULT 10000
#define AP_GEO_FLOOR_CELLS_DEFAULT 65536
#define AP_GEO_COORD_DECIMALS_MAX 6
#define AP_GEO_GRID_KM_MIN 0.1
#define AP_GEO_GRID_KM_MAX 20000.0
#define AP_GEO_ERR_LEN 256

/* Precision levels, coarsest first, so levels compare with < and >. */
enum ap_geo_level {
    AP_GEO_LEVEL_NONE = 0,
    AP_GEO_LEVEL_CONTINENT,
    AP_GEO_LEVEL_COUNTRY,
    AP_GEO_LEVEL_REGION, /* first subdivision */
    AP_GEO_LEVEL_CITY,
};

/* How the record of a database is laid out. */
enum ap_geo_schema {
    /* MaxMind GeoIP2/GeoLite2 City and Country, DB-IP's GeoIP2-compatible
     * files: nested maps, one file for IPv4 and IPv6. */
    AP_GEO_SCHEMA_GEOIP2 = 0,
    /* The flat maps of the npm @ip-location-db packages (country_code,
     * state1, city, latitude, longitude, timezone), usually one file per
     * address family. */
    AP_GEO_SCHEMA_IP_LOCATION_DB,
};

/* The values a database is asked for; each has a dotted path that the
 * schema gives and the options may override. Postal codes are not among
 * them: they are never read. */
enum ap_geo_field {
    AP_GEO_FIELD_CONTINENT = 0,
    AP_GEO_FIELD_COUNTRY,
    AP_GEO_FIELD_REGION,
    AP_GEO_FIELD_CITY,
    AP_GEO_FIELD_LATITUDE,
    AP_GEO_FIELD_LONGITUDE,
    AP_GEO_FIELD_TIMEZONE,
    AP_GEO_FIELD_COUNT
};

/* The values a result can emit as headers, in header order. */
enum ap_geo_out {
    AP_GEO_OUT_CONTINENT = 0,
    AP_GEO_OUT_COUNTRY,
    AP_GEO_OUT_REGION,
    AP_GEO_OUT_CITY,
    AP_GEO_OUT_TIMEZONE,
    AP_GEO_OUT_COUNT
};

enum ap_geo_coords {
    AP_GEO_COORDS_DROP = 0, /* the default: no coordinates leave geo/ */
    AP_GEO_COORDS_ROUND,    /* rounded to coord_decimals decimals */
    AP_GEO_COORDS_GRID,     /* the centre of a grid cell of coord_grid_km */
};

/* Which address is looked up: the full client address (accuracy; it is
 * forgotten right after) or the truncated one. */
enum ap_geo_addr {
    AP_GEO_ADDR_FULL = 0,
    AP_GEO_ADDR_TRUNCATED,
};

/* Flags derived from the optional ASN database. */
#define AP_GEO_FLAG_ASN_KNOWN 0x1u /* the ASN database had the address */
#define AP_GEO_FLAG_HOSTING 0x2u   /* its AS is in the hosting/datacenter list */

/* Geolocation options, the `geo:` block of the configuration. Strings and
 * arrays are borrowed: ap_geo_open copies everything it keeps, so the
 * caller may free them once it returns. ap_geo_options_init fills the
 * defaults. */
struct ap_geo_options {
    const char *database;    /* required: the file for IPv4 (and IPv6) */
    const char *database_v6; /* optional: a separate file for IPv6 */
    enum ap_geo_schema schema;
    const char *fields[AP_GEO_FIELD_COUNT]; /* dotted paths; NULL = schema default */
    const char *asn_database;               /* optional; used only for flags */
    const uint32_t *hosting_asns;           /* NULL = the built-in list */
    size_t nhosting_asns;
    bool keep_asn;                          /* copy the AS number into results */
    enum ap_geo_level precision;            /* finest level emitted, default region */
    enum ap_geo_coords coords;
    unsigned coord_decimals;                /* AP_GEO_COORDS_ROUND: 0..6 */
    double coord_grid_km;                   /* AP_GEO_COORDS_GRID */
    bool timezone;                          /* emit the time zone, default false */
    unsigned min_visitors_region;           /* 0 disables the floor */
    unsigned min_visitors_city;
    size_t floor_max_cells;                 /* cells tracked per day */
    enum ap_geo_addr lookup;
    unsigned truncate_v4;                   /* prefixes for AP_GEO_ADDR_TRUNCATED */
    unsigned truncate_v6;                   /* and for the default visitor key */
    size_t cache_size;                      /* entries per worker; 0 disables */
    const char *headers[AP_GEO_OUT_COUNT];  /* header names; NULL = not emitted */
};

/* What a database says about one network, before any coarsening. Empty
 * strings mean absent. Text is valid UTF-8 without control characters.
 * This never leaves geo/ except through the raw-lookup API (tests, tools). */
struct ap_geo_record {
    char continent[AP_GEO_CODE_LEN];
    char country[AP_GEO_CODE_LEN];
    char region[AP_GEO_NAME_LEN];
    char city[AP_GEO_NAME_LEN];
    char timezone[AP_GEO_TZ_LEN];
    bool has_coords;
    double latitude;
    double longitude;
    uint32_t asn;   /* 0 when unknown */
    unsigned flags; /* AP_GEO_FLAG_* */
};

/* What leaves geo/: only the fields up to `level` are set (the others are
 * empty), coordinates already rounded or snapped, never a postal code. */
struct ap_geo_result {
    enum ap_geo_level level; /* the level emitted, after the floor */
    char continent[AP_GEO_CODE_LEN];
    char country[AP_GEO_CODE_LEN];
    char region[AP_GEO_NAME_LEN];
    char city[AP_GEO_NAME_LEN];
    char timezone[AP_GEO_TZ_LEN];
    bool has_coords;
    double latitude;
    double longitude;
    int coord_decimals; /* decimals worth printing */
    uint32_t asn;       /* 0 unless keep_asn */
    unsigned flags;     /* AP_GEO_FLAG_*, for rules; never a header */
};

/* Counters of a worker's cache. */
struct ap_geo_cache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
    uint64_t flushes; /* clears because the database generation changed */
    uint64_t too_long; /* answers not cached: more text than an entry holds */
    size_t entries;
    size_t capacity;
};

/* Bytes of text an entry holds: continent, country, region, city and
 * time zone back to back. A record with more text is not cached. */
#define AP_GEO_CACHE_TEXT 80

/* One cached answer, 128 bytes (two cache lines): the network of the
 * database that answered (the longer prefix when the ASN database also
 * answered) and what it said, with its strings packed. */
struct ap_geo_cache_entry {
    double latitude;
    double longitude;
    uint8_t net[16];
    uint32_t asn;
    uint8_t family; /* 4 or 6; 0 = free slot */
    uint8_t prefix;
    int16_t status; /* 0 or -ENOENT */
    uint8_t flags;
    bool has_coords;
    uint8_t len[5]; /* of continent, country, region, city, timezone */
    char text[AP_GEO_CACHE_TEXT];
};

#define AP_GEO_CACHE_MAGIC 0x47434143u /* "GCAC" */
#define AP_GEO_CACHE_WAYS 8

/* A worker's cache: set-associative, AP_GEO_CACHE_WAYS entries per set,
 * least recently used evicted within a set. A probe reads one 64-byte line
 * of 64-bit tags (a hash of family, prefix and network; 0 = free), which
 * stays in the CPU cache, and touches an entry only when a tag matches;
 * eviction reads one 32-byte line of ticks. A hint per /24 (IPv4) or /48
 * (IPv6) remembers which slot answered last, so most hits need no probe.
 * Owned by one thread; no locking. */
struct ap_geo_cache {
    unsigned magic;
    uint64_t *tags;                     /* nsets * AP_GEO_CACHE_WAYS */
    uint32_t *ticks;                    /* last use of each slot, for eviction */
    struct ap_geo_cache_entry *entries; /* parallel to tags and ticks */
    uint32_t *hints;                    /* per /24 or /48: 1 + the slot that last answered */
    size_t nhints;                      /* a power of two */
    size_t nsets;                       /* 0 = disabled */
    uint64_t generation;                /* of the database the entries came from */
    uint32_t tick;
    uint32_t nprefix[2][129];           /* entries per (family, prefix), to probe only those */
    uint8_t order[2][129];              /* the prefixes present, most entries first */
    uint8_t norder[2];
    uint16_t order_age;                 /* puts since the order was last sorted */
    bool order_stale;                   /* a prefix appeared or vanished */
    struct ap_geo_cache_stats stats;
};

/* Population floor counters. */
struct ap_geo_floor_stats {
    int64_t day;          /* UTC day the counts are for */
    size_t cells;         /* cells tracked today */
    uint64_t cells_full;  /* observations dropped because max_cells was reached */
    uint64_t alloc_fail;
};

struct ap_geo_floor_cell;

#define AP_GEO_FLOOR_MAGIC 0x47464c52u /* "GFLR" */

/* Distinct visitors per cell (a region or a city) and UTC day, shared by
 * every worker of the process (a mutex guards it). Memory is bounded:
 * at most max_cells cells of about 300 bytes each. */
struct ap_geo_floor {
    unsigned magic;
    unsigned min_region;
    unsigned min_city;
    size_t max_cells;
    pthread_mutex_t lock;
    uint64_t seed;                     /* keys the cell and visitor hashes */
    struct ap_geo_floor_cell **slots;  /* open addressing, nslots a power of two */
    size_t nslots;
    struct ap_geo_floor_stats stats;
};

/* Counters of the process-wide service. */
struct ap_geo_stats {
    uint64_t generation;      /* of the database serving now, 1 after open */
    uint64_t reloads;         /* successful swaps */
    uint64_t reload_failures; /* missing or corrupt new files (old one kept) */
    char last_error[AP_GEO_ERR_LEN];
};

/* An opened set of database files, immutable and reference-counted. */
struct ap_geo_db;
/* The process-wide service: the database serving now, hot reload, floor. */
struct ap_geo;
/* A worker's view: its reference to the database, its cache. */
struct ap_geo_worker;

#endif

/* The database handle: opening and verifying MMDB files (libmaxminddb,
 * mmap), the schemas and custom field paths, the raw lookup, the optional
 * ASN database, and the reference count that lets lookups in flight
 * finish on a database that a reload has already replaced. */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip.h"
#include "geo-int.h"

/* The verification walk is bounded so that opening a 100 MB database
 * stays well under a second; it still decodes thousands of records, which
 * catches truncated and corrupt files and wrong schemas. */
#define VERIFY_MAX_NODES 200000u
#define VERIFY_MAX_RECORDS 20000u

/* ASNs of large hosting and cloud providers, the default of
 * hosting_asns. A starting point, not a classification service: sites
 * that care set their own list. Sorted for bsearch. */
static const uint32_t builtin_hosting[] = {
    8075,   /* Microsoft (Azure) */
    9009,   /* M247 */
    12876,  /* Scaleway */
    14061,  /* DigitalOcean */
    14618,  /* Amazon */
    15169,  /* Google */
    16276,  /* OVH */
    16509,  /* Amazon (AWS) */
    20473,  /* Vultr */
    24940,  /* Hetzner */
    28753,  /* Leaseweb DE */
    30633,  /* Leaseweb US */
    31898,  /* Oracle Cloud */
    36352,  /* ColoCrossing */
    37963,  /* Alibaba */
    45090,  /* Tencent */
    45102,  /* Alibaba Cloud */
    51167,  /* Contabo */
    60781,  /* Leaseweb NL */
    63949,  /* Akamai Connected Cloud (Linode) */
    132203, /* Tencent Cloud */
    213230, /* Hetzner Cloud */
    396982, /* Google Cloud */
};

static const char *const asn_number_path[] = {"autonomous_system_number", NULL};

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

void ap_geo_db_file_id(const char *path, struct ap_geo_file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (path == NULL || stat(path, &st) != 0)
        return;
    id->exists = true;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

bool ap_geo_db_is_same_file(const struct ap_geo_file_id *a, const struct ap_geo_file_id *b)
{
    if (a->exists != b->exists)
        return false;
    if (!a->exists)
        return true;
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

static int u32_compare(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int open_file(struct ap_geo_file *f, const char *path, const char *key, char *err,
                     size_t errlen)
{
    f->path = strdup(path);
    if (f->path == NULL)
        return fail(err, errlen, -ENOMEM, "geo.%s: out of memory", key);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        return fail(err, errlen, e == ENOENT ? -ENOENT : e == EACCES ? -EACCES : -EIO,
                    "geo.%s: %s: %s", key, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, -EINVAL, "geo.%s: %s: not a regular file", key, path);
    /* The metadata marker alone is 14 bytes; an empty file (an interrupted
     * download) would otherwise be reported as an I/O error by mmap. */
    if (st.st_size < 64)
        return fail(err, errlen, -EINVAL, "geo.%s: %s: too small to be a MaxMind DB file", key,
                    path);
    struct ap_geo_file_id before;
    ap_geo_db_file_id(path, &before);

    int rc = MMDB_open(path, MMDB_MODE_MMAP, &f->mmdb);
    if (rc != MMDB_SUCCESS) {
        int e = errno;
        switch (rc) {
        case MMDB_FILE_OPEN_ERROR:
            return fail(err, errlen, e == ENOENT ? -ENOENT : e == EACCES ? -EACCES : -EIO,
                        "geo.%s: %s: cannot open: %s", key, path, strerror(e));
        case MMDB_OUT_OF_MEMORY_ERROR:
            return fail(err, errlen, -ENOMEM, "geo.%s: %s: out of memory", key, path);
        case MMDB_IO_ERROR:
            return fail(err, errlen, -EIO, "geo.%s: %s: %s", key, path, MMDB_strerror(rc));
        default:
            return fail(err, errlen, -EINVAL, "geo.%s: %s: not a valid MaxMind DB file (%s)", key,
                        path, MMDB_strerror(rc));
        }
    }
    f->open = true;
    ap_geo_db_file_id(path, &f->id);
    /* A rename over the path between the two stats means the mapping may
     * be of either file: refuse rather than record the wrong identity. */
    if (!ap_geo_db_is_same_file(&before, &f->id))
        return fail(err, errlen, -EAGAIN, "geo.%s: %s: replaced while being opened", key, path);

    const MMDB_metadata_s *md = &f->mmdb.metadata;
    if (md->binary_format_major_version != 2)
        return fail(err, errlen, -EINVAL, "geo.%s: %s: unsupported MMDB format version %u", key,
                    path, (unsigned)md->binary_format_major_version);
    if (md->ip_version != 4 && md->ip_version != 6)
        return fail(err, errlen, -EINVAL, "geo.%s: %s: bad ip_version %u in metadata", key, path,
                    (unsigned)md->ip_version);
    if (md->record_size != 24 && md->record_size != 28 && md->record_size != 32)
        return fail(err, errlen, -EINVAL, "geo.%s: %s: bad record_size %u in metadata", key,
                    path, (unsigned)md->record_size);
    if (md->node_count == 0)
        return fail(err, errlen, -EINVAL, "geo.%s: %s: empty search tree", key, path);
    return 0;
}

/* Walk the search tree depth first from the root, visiting at most
 * VERIFY_MAX_NODES nodes and decoding at most VERIFY_MAX_RECORDS data
 * records completely, and count the records that have the schema's key
 * field (the country, or the AS number for the ASN database). */
static int verify_file(const struct ap_geo_file *f, const char *const *key_path, const char *key,
                       char *err, size_t errlen)
{
    const MMDB_s *m = &f->mmdb;
    unsigned bits = m->metadata.ip_version == 6 ? 128 : 32;
    struct item {
        uint32_t node;
        uint32_t depth;
    } stack[2 * 129 + 4];
    size_t sp = 0;
    unsigned nodes = 0, records = 0, with_key = 0;
    stack[sp++] = (struct item){0, 0};
    while (sp > 0 && nodes < VERIFY_MAX_NODES && records < VERIFY_MAX_RECORDS) {
        struct item it = stack[--sp];
        MMDB_search_node_s sn;
        nodes++;
        int rc = MMDB_read_node(m, it.node, &sn);
        if (rc != MMDB_SUCCESS)
            return fail(err, errlen, -EINVAL, "geo.%s: %s: corrupt search tree (%s)", key, f->path,
                        MMDB_strerror(rc));
        uint8_t types[2] = {sn.right_record_type, sn.left_record_type};
        uint64_t recs[2] = {sn.right_record, sn.left_record};
        MMDB_entry_s entries[2] = {sn.right_record_entry, sn.left_record_entry};
        for (int side = 0; side < 2; side++) {
            switch (types[side]) {
            case MMDB_RECORD_TYPE_SEARCH_NODE:
                if (it.depth + 1 >= bits)
                    return fail(err, errlen, -EINVAL,
                                "geo.%s: %s: corrupt search tree (deeper than %u bits)", key,
                                f->path, bits);
                stack[sp++] = (struct item){(uint32_t)recs[side], it.depth + 1};
                break;
            case MMDB_RECORD_TYPE_EMPTY:
                break;
            case MMDB_RECORD_TYPE_DATA: {
                MMDB_entry_data_list_s *list = NULL;
                MMDB_entry_s e = entries[side];
                rc = MMDB_get_entry_data_list(&e, &list);
                MMDB_free_entry_data_list(list);
                if (rc != MMDB_SUCCESS)
                    return fail(err, errlen, rc == MMDB_OUT_OF_MEMORY_ERROR ? -ENOMEM : -EINVAL,
                                "geo.%s: %s: corrupt data section (%s)", key, f->path,
                                MMDB_strerror(rc));
                MMDB_entry_data_s d;
                e = entries[side];
                if (MMDB_aget_value(&e, &d, key_path) == MMDB_SUCCESS && d.has_data)
                    with_key++;
                records++;
                break;
            }
            default:
                return fail(err, errlen, -EINVAL, "geo.%s: %s: corrupt search tree (bad record)",
                            key, f->path);
            }
        }
    }
    if (records == 0)
        return fail(err, errlen, -EINVAL, "geo.%s: %s: no data records", key, f->path);
    if (with_key == 0) {
        char path[AP_GEO_PATH_MAX + 1];
        size_t n = 0;
        path[0] = '\0';
        for (size_t i = 0; key_path[i] != NULL; i++) {
            int w = snprintf(path + n, sizeof(path) - n, "%s%s", i ? "." : "", key_path[i]);
            if (w < 0 || (size_t)w >= sizeof(path) - n)
                break;
            n += (size_t)w;
        }
        return fail(err, errlen, -EINVAL,
                    "geo.%s: %s: no record has the field \"%s\" (wrong schema or wrong file?)", key,
                    f->path, path);
    }
    return 0;
}

static void set_path(struct ap_geo_path *p, const char *dotted)
{
    memset(p, 0, sizeof(*p));
    if (dotted == NULL)
        return;
    size_t len = strlen(dotted);
    AP_BUG_ON(len > AP_GEO_PATH_MAX);
    memcpy(p->store, dotted, len + 1);
    size_t n = 0;
    p->comp[n++] = p->store;
    for (size_t i = 0; i < len; i++) {
        if (p->store[i] == '.') {
            p->store[i] = '\0';
            AP_BUG_ON(n >= AP_GEO_PATH_DEPTH);
            p->comp[n++] = p->store + i + 1;
        }
    }
    p->comp[n] = NULL;
    p->set = true;
}

static void close_file(struct ap_geo_file *f)
{
    if (f->open)
        MMDB_close(&f->mmdb);
    free(f->path);
    memset(f, 0, sizeof(*f));
}

static void db_free(struct ap_geo_db *db)
{
    close_file(&db->main);
    close_file(&db->v6);
    close_file(&db->asn);
    free(db->hosting);
    db->magic = 0;
    free(db);
}

int ap_geo_db_open(struct ap_geo_db **out, const struct ap_geo_options *o, uint64_t generation,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rc = ap_geo_options_validate(o, err, errlen);
    if (rc != 0)
        return rc;
    struct ap_geo_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return fail(err, errlen, -ENOMEM, "geo: out of memory");
    db->magic = AP_GEO_DB_MAGIC;
    atomic_init(&db->refs, 1);
    db->generation = generation;
    db->schema = o->schema;
    db->keep_asn = o->keep_asn;
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++)
        set_path(&db->paths[i], o->fields[i] != NULL
                                    ? o->fields[i]
                                    : ap_geo_options_default_path(o->schema, (enum ap_geo_field)i));

    const uint32_t *hosting = o->hosting_asns != NULL ? o->hosting_asns : builtin_hosting;
    size_t nhosting = o->hosting_asns != NULL ? o->nhosting_asns : AP_ARRAY_SIZE(builtin_hosting);
    if (nhosting > 0) {
        db->hosting = malloc(nhosting * sizeof(*db->hosting));
        if (db->hosting == NULL) {
            db_free(db);
            return fail(err, errlen, -ENOMEM, "geo: out of memory");
        }
        memcpy(db->hosting, hosting, nhosting * sizeof(*db->hosting));
        qsort(db->hosting, nhosting, sizeof(*db->hosting), u32_compare);
        db->nhosting = nhosting;
    }

    rc = open_file(&db->main, o->database, "database", err, errlen);
    if (rc == 0)
        rc = verify_file(&db->main, db->paths[AP_GEO_FIELD_COUNTRY].comp, "database", err, errlen);
    if (rc == 0 && o->database_v6 != NULL) {
        rc = open_file(&db->v6, o->database_v6, "database_v6", err, errlen);
        if (rc == 0 && db->v6.mmdb.metadata.ip_version != 6)
            rc = fail(err, errlen, -EINVAL, "geo.database_v6: %s: an IPv4-only database",
                      o->database_v6);
        if (rc == 0)
            rc = verify_file(&db->v6, db->paths[AP_GEO_FIELD_COUNTRY].comp, "database_v6", err,
                             errlen);
    }
    if (rc == 0 && o->asn_database != NULL) {
        rc = open_file(&db->asn, o->asn_database, "asn_database", err, errlen);
        if (rc == 0)
            rc = verify_file(&db->asn, asn_number_path, "asn_database", err, errlen);
    }
    if (rc != 0) {
        db_free(db);
        return rc;
    }
    *out = db;
    return 0;
}

struct ap_geo_db *ap_geo_db_ref(struct ap_geo_db *db)
{
    AP_CHECK_OBJ(db, AP_GEO_DB_MAGIC);
    unsigned old = atomic_fetch_add_explicit(&db->refs, 1, memory_order_relaxed);
    AP_BUG_ON(old == 0);
    return db;
}

void ap_geo_db_unref(struct ap_geo_db *db)
{
    if (db == NULL)
        return;
    AP_CHECK_OBJ(db, AP_GEO_DB_MAGIC);
    unsigned old = atomic_fetch_sub_explicit(&db->refs, 1, memory_order_acq_rel);
    AP_BUG_ON(old == 0);
    if (old == 1)
        db_free(db);
}

uint64_t ap_geo_db_generation(const struct ap_geo_db *db)
{
    AP_CHECK_OBJ(db, AP_GEO_DB_MAGIC);
    return db->generation;
}

bool ap_geo_db_is_stale(const struct ap_geo_db *db)
{
    AP_CHECK_OBJ(db, AP_GEO_DB_MAGIC);
    const struct ap_geo_file *files[] = {&db->main, &db->v6, &db->asn};
    for (size_t i = 0; i < AP_ARRAY_SIZE(files); i++) {
        if (files[i]->path == NULL)
            continue;
        struct ap_geo_file_id now;
        ap_geo_db_file_id(files[i]->path, &now);
        if (!ap_geo_db_is_same_file(&now, &files[i]->id))
            return true;
    }
    return false;
}

/* Copy a database string into `buf`, or leave it empty when it is not
 * valid UTF-8 or holds a control character (it would end up in a header),
 * or, for a code, when it is not short ASCII. A long name is cut at a
 * character boundary. */
static void copy_text(char *buf, size_t size, const char *s, uint32_t len, bool code)
{
    buf[0] = '\0';
    const unsigned char *u = (const unsigned char *)s;
    size_t keep = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return;
            n = 1;
            cp = c;
        } else if (code) {
            return;
        } else if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return;
        }
        if (i + n > len)
            return;
        for (size_t k = 1; k < n; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates, values past U+10FFFF, C1 controls. */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp <= 0x9f))
            return;
        if (i + n < size)
            keep = i + n;
        else if (code)
            return;
        i += n;
    }
    memcpy(buf, s, keep);
    buf[keep] = '\0';
}

/* Absent and mistyped values are both "not there"; only a data section
 * that cannot be decoded is an error. */
static int get_value(const MMDB_entry_s *entry, const struct ap_geo_path *p, MMDB_entry_data_s *d)
{
    d->has_data = false;
    if (!p->set)
        return 0;
    MMDB_entry_s e = *entry;
    int rc = MMDB_aget_value(&e, d, p->comp);
    if (rc == MMDB_SUCCESS)
        return 0;
    d->has_data = false;
    if (rc == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR || rc == MMDB_INVALID_LOOKUP_PATH_ERROR)
        return 0;
    return -EIO;
}

static int get_text(const MMDB_entry_s *entry, const struct ap_geo_path *p, char *buf, size_t size,
                    bool code)
{
    MMDB_entry_data_s d;
    buf[0] = '\0';
    int rc = get_value(entry, p, &d);
    if (rc == 0 && d.has_data && d.type == MMDB_DATA_TYPE_UTF8_STRING)
        copy_text(buf, size, d.utf8_string, d.data_size, code);
    return rc;
}

static int get_number(const MMDB_entry_s *entry, const struct ap_geo_path *p, double *out,
                      bool *has)
{
    MMDB_entry_data_s d;
    *has = false;
    int rc = get_value(entry, p, &d);
    if (rc != 0 || !d.has_data)
        return rc;
    switch (d.type) {
    case MMDB_DATA_TYPE_DOUBLE:
        *out = d.double_value;
        break;
    case MMDB_DATA_TYPE_FLOAT:
        *out = d.float_value;
        break;
    case MMDB_DATA_TYPE_INT32:
        *out = d.int32;
        break;
    case MMDB_DATA_TYPE_UINT16:
        *out = d.uint16;
        break;
    case MMDB_DATA_TYPE_UINT32:
        *out = d.uint32;
        break;
    default:
        return 0;
    }
    *has = isfinite(*out);
    return 0;
}

static int extract(const struct ap_geo_db *db, const MMDB_entry_s *e, struct ap_geo_record *r)
{
    int rc = 0;
    rc |= get_text(e, &db->paths[AP_GEO_FIELD_CONTINENT], r->continent, sizeof(r->continent), true);
    rc |= get_text(e, &db->paths[AP_GEO_FIELD_COUNTRY], r->country, sizeof(r->country), true);
    rc |= get_text(e, &db->paths[AP_GEO_FIELD_REGION], r->region, sizeof(r->region), false);
    rc |= get_text(e, &db->paths[AP_GEO_FIELD_CITY], r->city, sizeof(r->city), false);
    rc |= get_text(e, &db->paths[AP_GEO_FIELD_TIMEZONE], r->timezone, sizeof(r->timezone), false);
    double lat = 0, lon = 0;
    bool has_lat, has_lon;
    rc |= get_number(e, &db->paths[AP_GEO_FIELD_LATITUDE], &lat, &has_lat);
    rc |= get_number(e, &db->paths[AP_GEO_FIELD_LONGITUDE], &lon, &has_lon);
    if (rc != 0)
        return -EIO;
    if (has_lat && has_lon && lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0) {
        r->has_coords = true;
        r->latitude = lat;
        r->longitude = lon;
    }
    if (r->continent[0] == '\0' && r->country[0] != '\0') {
        const char *c = ap_geo_country_continent(r->country);
        if (c != NULL)
            memcpy(r->continent, c, strlen(c) + 1);
    }
    return 0;
}

static void to_sockaddr(const struct ap_ip *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (ip->family == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, ip->bytes, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, ip->bytes, 16);
    }
}

/* Look `ip` up in one file. *prefix is the network length in the
 * address's own bits: libmaxminddb counts an IPv4 lookup in an IPv6 tree
 * from the IPv6 root, 96 bits above the IPv4 subtree. */
static int lookup_file(const struct ap_geo_file *f, const struct ap_ip *ip,
                       MMDB_lookup_result_s *res, unsigned *prefix)
{
    struct sockaddr_storage ss;
    int mmerr = MMDB_SUCCESS;
    to_sockaddr(ip, &ss);
    *prefix = 0;
    if (ip->family == 6 && f->mmdb.metadata.ip_version == 4)
        return -ENOENT;
    *res = MMDB_lookup_sockaddr(&f->mmdb, (const struct sockaddr *)&ss, &mmerr);
    if (mmerr == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR)
        return -ENOENT;
    if (mmerr != MMDB_SUCCESS)
        return -EIO;
    unsigned bits = ip->family == 4 ? 32 : 128;
    unsigned nm = res->netmask;
    if (ip->family == 4 && f->mmdb.metadata.ip_version == 6)
        nm = nm >= 96 ? nm - 96 : 0;
    *prefix = nm > bits ? bits : nm;
    return res->found_entry ? 0 : -ENOENT;
}

static void lookup_asn(const struct ap_geo_db *db, const struct ap_ip *ip, struct ap_geo_record *r,
                       unsigned *prefix)
{
    MMDB_lookup_result_s res;
    unsigned asn_prefix;
    int rc = lookup_file(&db->asn, ip, &res, &asn_prefix);
    /* Both networks contain the address, so one contains the other, and
     * the longer prefix is where both answers hold. */
    if (rc == 0 || rc == -ENOENT) {
        if (asn_prefix > *prefix)
            *prefix = asn_prefix;
    }
    if (rc != 0)
        return;
    MMDB_entry_data_s d;
    MMDB_entry_s e = res.entry;
    if (MMDB_aget_value(&e, &d, asn_number_path) != MMDB_SUCCESS || !d.has_data)
        return;
    uint64_t asn;
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16:
        asn = d.uint16;
        break;
    case MMDB_DATA_TYPE_UINT32:
        asn = d.uint32;
        break;
    case MMDB_DATA_TYPE_UINT64:
        asn = d.uint64;
        break;
    default:
        return;
    }
    if (asn == 0 || asn > UINT32_MAX)
        return;
    uint32_t a = (uint32_t)asn;
    r->flags |= AP_GEO_FLAG_ASN_KNOWN;
    if (db->nhosting > 0 &&
        bsearch(&a, db->hosting, db->nhosting, sizeof(*db->hosting), u32_compare) != NULL)
        r->flags |= AP_GEO_FLAG_HOSTING;
    if (db->keep_asn)
        r->asn = a;
}

int ap_geo_db_lookup(const struct ap_geo_db *db, const struct ap_ip *ip, struct ap_geo_record *out,
                     unsigned *prefix)
{
    AP_CHECK_OBJ(db, AP_GEO_DB_MAGIC);
    memset(out, 0, sizeof(*out));
    *prefix = 0;
    if (ip == NULL || (ip->family != 4 && ip->family != 6))
        return -EINVAL;
    struct ap_ip a = *ip;
    ap_ip_unmap(&a);
    if (ap_geo_is_reserved(&a))
        return -EADDRNOTAVAIL;
    const struct ap_geo_file *f = a.family == 6 && db->v6.open ? &db->v6 : &db->main;
    MMDB_lookup_result_s res;
    int rc = lookup_file(f, &a, &res, prefix);
    if (rc != 0)
        return rc;
    if (extract(db, &res.entry, out) != 0) {
        memset(out, 0, sizeof(*out));
        return -EIO;
    }
    if (db->asn.open)
        lookup_asn(db, &a, out, prefix);
    return 0;
}

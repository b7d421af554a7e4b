/* Fuzz target for MMDB decoding: the input is a whole database file. It is
 * opened and verified the way a reload does (both schemas, and as an ASN
 * database), and when that succeeds a fixed set of addresses is looked
 * up, coarsened and formatted. Nothing may crash, leak or read outside the
 * mapping, whatever the bytes. The file lives in a memfd, so no disk I/O. */
#include "anonproxy/common.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const addrs[] = {
    "192.0.2.1",  "198.51.100.200", "203.0.113.9", "8.8.8.8",       "1.1.1.1",
    "9.9.9.9",    "255.0.0.1",      "2001:db8::1", "2001:db8:2::5", "::ffff:203.0.113.70",
    "2a00::1",    "2606:4700:4700::1111",
};

static void exercise(const struct ap_geo_options *o)
{
    struct ap_geo_db *db;
    char err[AP_GEO_ERR_LEN];
    if (ap_geo_db_open(&db, o, 1, err, sizeof(err)) != 0)
        return;
    for (size_t i = 0; i < AP_ARRAY_SIZE(addrs); i++) {
        struct ap_ip ip;
        if (ap_ip_parse(&ip, addrs[i], strlen(addrs[i])) != 0)
            abort();
        struct ap_geo_record rec;
        unsigned prefix;
        int rc = ap_geo_db_lookup(db, &ip, &rec, &prefix);
        if (rc != 0 && rc != -ENOENT && rc != -EADDRNOTAVAIL && rc != -EIO)
            abort();
        if (prefix > 128)
            abort();
        if (rc != 0)
            continue;
        struct ap_geo_result res;
        ap_geo_coarsen_apply(o, &rec, AP_GEO_LEVEL_CITY, &res);
        char buf[AP_GEO_JSON_MAX];
        if (ap_geo_format_json(&res, buf, sizeof(buf)) < 0)
            abort();
        for (int f = 0; f < AP_GEO_OUT_COUNT; f++) {
            char h[AP_GEO_HEADER_MAX];
            if (ap_geo_format_header(&res, (enum ap_geo_out)f, h, sizeof(h)) < 0)
                abort();
        }
    }
    ap_geo_db_unref(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-geo", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            close(fd);
            return 0;
        }
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = path;
    o.precision = AP_GEO_LEVEL_CITY;
    o.coords = AP_GEO_COORDS_GRID;
    o.coord_grid_km = 25;
    o.timezone = true;
    o.keep_asn = true;
    exercise(&o);
    o.schema = AP_GEO_SCHEMA_IP_LOCATION_DB;
    o.coords = AP_GEO_COORDS_ROUND;
    o.coord_decimals = 2;
    exercise(&o);
    /* The same bytes as an ASN database; the AS number doubles as the
     * "country" the city verification looks for, so ASN seeds get there. */
    o.fields[AP_GEO_FIELD_COUNTRY] = "autonomous_system_number";
    o.asn_database = path;
    exercise(&o);
    close(fd);
    return 0;
}

/* Geolocation options: defaults, the parsers the configuration loader
 * calls for each `geo:` key, and validation. Pure: no I/O. */
#include "anonproxy/common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip-t.h"

static const char *const level_names[] = {"none", "continent", "country", "region", "city"};

static const char *const field_names[AP_GEO_FIELD_COUNT] = {
    "continent", "country", "region", "city", "latitude", "longitude", "timezone",
};

/* Region is the first subdivision's ISO code in GeoIP2 (the name would
 * depend on a language) and the region name in ip-location-db, which has
 * no codes. */
static const char *const geoip2_paths[AP_GEO_FIELD_COUNT] = {
    "continent.code",         "country.iso_code",   "subdivisions.0.iso_code", "city.names.en",
    "location.latitude",      "location.longitude", "location.time_zone",
};

static const char *const ipl_paths[AP_GEO_FIELD_COUNT] = {
    NULL, "country_code", "state1", "city", "latitude", "longitude", "timezone",
};

static const char *const default_headers[AP_GEO_OUT_COUNT] = {
    "X-Geo-Continent", "X-Geo-Country", "X-Geo-Region", "X-Geo-City", "X-Geo-Timezone",
};

void ap_geo_options_init(struct ap_geo_options *o)
{
    memset(o, 0, sizeof(*o));
    o->schema = AP_GEO_SCHEMA_GEOIP2;
    o->precision = AP_GEO_LEVEL_REGION;
    o->coords = AP_GEO_COORDS_DROP;
    o->coord_decimals = 1;
    o->coord_grid_km = 10.0;
    o->timezone = false;
    o->min_visitors_region = AP_GEO_MIN_VISITORS_REGION_DEFAULT;
    o->min_visitors_city = AP_GEO_MIN_VISITORS_CITY_DEFAULT;
    o->floor_max_cells = AP_GEO_FLOOR_CELLS_DEFAULT;
    o->lookup = AP_GEO_ADDR_FULL;
    o->truncate_v4 = AP_IP_TRUNCATE_V4_DEFAULT;
    o->truncate_v6 = AP_IP_TRUNCATE_V6_DEFAULT;
    o->cache_size = AP_GEO_CACHE_SIZE_DEFAULT;
    for (size_t i = 0; i < AP_GEO_OUT_COUNT; i++)
        o->headers[i] = default_headers[i];
}

int ap_geo_options_parse_level(enum ap_geo_level *out, const char *s)
{
    for (size_t i = 0; i < AP_ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum ap_geo_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int ap_geo_options_parse_schema(enum ap_geo_schema *out, const char *s)
{
    if (strcmp(s, "geoip2") == 0) {
        *out = AP_GEO_SCHEMA_GEOIP2;
        return 0;
    }
    if (strcmp(s, "ip-location-db") == 0) {
        *out = AP_GEO_SCHEMA_IP_LOCATION_DB;
        return 0;
    }
    return -EINVAL;
}

int ap_geo_options_parse_addr(enum ap_geo_addr *out, const char *s)
{
    if (strcmp(s, "full") == 0) {
        *out = AP_GEO_ADDR_FULL;
        return 0;
    }
    if (strcmp(s, "truncated") == 0) {
        *out = AP_GEO_ADDR_TRUNCATED;
        return 0;
    }
    return -EINVAL;
}

int ap_geo_options_parse_field(enum ap_geo_field *out, const char *s)
{
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++) {
        if (strcmp(s, field_names[i]) == 0) {
            *out = (enum ap_geo_field)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* A decimal number without sign or exponent: "10", "2.5". strtod alone
 * would also take "inf", "0x1p3" and leading spaces. */
static int parse_km(const char *s, double *out)
{
    size_t digits = 0, dots = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.' && dots == 0)
            dots++;
        else
            return -EINVAL;
    }
    if (digits == 0 || digits > 12 || s[0] == '.' || s[strlen(s) - 1] == '.')
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

int ap_geo_options_parse_coords(struct ap_geo_options *o, const char *s)
{
    if (strcmp(s, "drop") == 0) {
        o->coords = AP_GEO_COORDS_DROP;
        return 0;
    }
    if (strncmp(s, "round:", 6) == 0) {
        const char *n = s + 6;
        if (n[0] < '0' || n[0] > '9' || n[1] != '\0')
            return -EINVAL;
        unsigned d = (unsigned)(n[0] - '0');
        if (d > AP_GEO_COORD_DECIMALS_MAX)
            return -EINVAL;
        o->coords = AP_GEO_COORDS_ROUND;
        o->coord_decimals = d;
        return 0;
    }
    if (strncmp(s, "grid:", 5) == 0) {
        double km;
        if (parse_km(s + 5, &km) != 0 || km < AP_GEO_GRID_KM_MIN || km > AP_GEO_GRID_KM_MAX)
            return -EINVAL;
        o->coords = AP_GEO_COORDS_GRID;
        o->coord_grid_km = km;
        return 0;
    }
    return -EINVAL;
}

bool ap_geo_options_is_valid_path(const char *path)
{
    if (path == NULL)
        return false;
    size_t len = strlen(path), comps = 1, complen = 0;
    if (len == 0 || len > AP_GEO_PATH_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '.') {
            if (complen == 0)
                return false;
            comps++;
            complen = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
        complen++;
    }
    return complen > 0 && comps <= AP_GEO_PATH_DEPTH;
}

const char *ap_geo_options_default_path(enum ap_geo_schema schema, enum ap_geo_field f)
{
    if ((unsigned)f >= AP_GEO_FIELD_COUNT)
        return NULL;
    switch (schema) {
    case AP_GEO_SCHEMA_GEOIP2:
        return geoip2_paths[f];
    case AP_GEO_SCHEMA_IP_LOCATION_DB:
        return ipl_paths[f];
    }
    return NULL;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Header names are HTTP tokens; anything else would let a configuration
 * inject header syntax. */
static bool is_token(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
            return false;
    }
    return true;
}

int ap_geo_options_validate(const struct ap_geo_options *o, char *err, size_t errlen)
{
    if (o->database == NULL || o->database[0] == '\0')
        return fail(err, errlen, "geo.database: a database file is required");
    if (o->database_v6 != NULL && o->database_v6[0] == '\0')
        return fail(err, errlen, "geo.database_v6: empty path");
    if (o->asn_database != NULL && o->asn_database[0] == '\0')
        return fail(err, errlen, "geo.asn_database: empty path");
    if (o->schema != AP_GEO_SCHEMA_GEOIP2 && o->schema != AP_GEO_SCHEMA_IP_LOCATION_DB)
        return fail(err, errlen, "geo.schema: unknown schema %d", (int)o->schema);
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++) {
        if (o->fields[i] != NULL && !ap_geo_options_is_valid_path(o->fields[i]))
            return fail(err, errlen,
                        "geo.fields.%s: bad path (dot-separated names or indexes, at most %d)",
                        field_names[i], AP_GEO_PATH_DEPTH);
    }
    const char *country = o->fields[AP_GEO_FIELD_COUNTRY] != NULL
                              ? o->fields[AP_GEO_FIELD_COUNTRY]
                              : ap_geo_options_default_path(o->schema, AP_GEO_FIELD_COUNTRY);
    if (country == NULL)
        return fail(err, errlen, "geo.fields.country: no path");
    if (o->nhosting_asns > 0 && o->hosting_asns == NULL)
        return fail(err, errlen, "geo.hosting_asns: list missing");
    if ((unsigned)o->precision > AP_GEO_LEVEL_CITY)
        return fail(err, errlen, "geo.precision: unknown level %d", (int)o->precision);
    switch (o->coords) {
    case AP_GEO_COORDS_DROP:
        break;
    case AP_GEO_COORDS_ROUND:
        if (o->coord_decimals > AP_GEO_COORD_DECIMALS_MAX)
            return fail(err, errlen, "geo.coordinates: round:N needs N in 0..%d",
                        AP_GEO_COORD_DECIMALS_MAX);
        break;
    case AP_GEO_COORDS_GRID:
        if (!isfinite(o->coord_grid_km) || o->coord_grid_km < AP_GEO_GRID_KM_MIN ||
            o->coord_grid_km > AP_GEO_GRID_KM_MAX)
            return fail(err, errlen, "geo.coordinates: grid:KM needs KM in %g..%g",
                        AP_GEO_GRID_KM_MIN, AP_GEO_GRID_KM_MAX);
        break;
    default:
        return fail(err, errlen, "geo.coordinates: unknown mode %d", (int)o->coords);
    }
    if (o->lookup != AP_GEO_ADDR_FULL && o->lookup != AP_GEO_ADDR_TRUNCATED)
        return fail(err, errlen, "geo.lookup: unknown mode %d", (int)o->lookup);
    if (o->truncate_v4 > 32 || o->truncate_v6 > 128)
        return fail(err, errlen, "geo: truncation prefixes must be 0..32 and 0..128");
    if (o->min_visitors_region > 1000000 || o->min_visitors_city > 1000000)
        return fail(err, errlen, "geo.min_visitors: at most 1000000");
    if (o->floor_max_cells == 0 || o->floor_max_cells > ((size_t)1 << 24))
        return fail(err, errlen, "geo.floor_max_cells: 1..16777216");
    if (o->cache_size > ((size_t)1 << 24))
        return fail(err, errlen, "geo.cache_size: at most 16777216");
    for (size_t i = 0; i < AP_GEO_OUT_COUNT; i++) {
        if (o->headers[i] != NULL && !is_token(o->headers[i]))
            return fail(err, errlen, "geo.headers: \"%.64s\" is not a header name", o->headers[i]);
    }
    return 0;
}

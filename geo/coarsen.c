/* Coarsening: from what a database says to what may leave the proxy. The
 * level is capped to what the record holds, finer fields are cleared,
 * coordinates are rounded or snapped to a grid cell (never passed raw),
 * and postal codes do not exist here at all. Pure functions. */
#include "anonproxy/common.h"

#include <errno.h>
#include <math.h>

#include "anonproxy/geo.h"

/* Kilometres per degree of latitude (and of longitude at the equator);
 * the mean is good enough for cells meant to be kilometres wide. */
#define KM_PER_DEGREE 111.32

static bool supports(const struct ap_geo_record *r, enum ap_geo_level level)
{
    switch (level) {
    case AP_GEO_LEVEL_NONE:
        return true;
    case AP_GEO_LEVEL_CONTINENT:
        return r->continent[0] != '\0';
    case AP_GEO_LEVEL_COUNTRY:
        return r->country[0] != '\0';
    case AP_GEO_LEVEL_REGION:
        return r->country[0] != '\0' && r->region[0] != '\0';
    case AP_GEO_LEVEL_CITY:
        return r->country[0] != '\0' && r->city[0] != '\0';
    }
    return false;
}

enum ap_geo_level ap_geo_coarsen_level_of(const struct ap_geo_record *rec)
{
    for (int l = AP_GEO_LEVEL_CITY; l > AP_GEO_LEVEL_NONE; l--) {
        if (supports(rec, (enum ap_geo_level)l))
            return (enum ap_geo_level)l;
    }
    return AP_GEO_LEVEL_NONE;
}

static void copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Centre of the cell of `v` in a partition of [lo, hi] into cells of
 * `step` starting at lo; the last cell may be partial, and its centre is
 * then the middle of what is left, so the centre stays inside the range. */
static double cell_centre(double v, double lo, double hi, double step)
{
    if (step >= hi - lo)
        return (lo + hi) / 2.0;
    double index = floor((v - lo) / step);
    double start = lo + index * step;
    if (start >= hi) {
        index -= 1.0;
        start = lo + index * step;
    }
    double end = start + step;
    if (end > hi)
        end = hi;
    return (start + end) / 2.0;
}

static double round_to(double v, unsigned decimals)
{
    double scale = pow(10.0, (double)decimals);
    double r = round(v * scale) / scale;
    return r == 0.0 ? 0.0 : r; /* no "-0.0" in the output */
}

int ap_geo_coarsen_coords(const struct ap_geo_options *o, double lat, double lon, double *out_lat,
                          double *out_lon)
{
    if (!isfinite(lat) || !isfinite(lon) || lat < -90.0 || lat > 90.0 || lon < -180.0 ||
        lon > 180.0)
        return -EINVAL;
    switch (o->coords) {
    case AP_GEO_COORDS_DROP:
        return -ENOENT;
    case AP_GEO_COORDS_ROUND:
        if (o->coord_decimals > AP_GEO_COORD_DECIMALS_MAX)
            return -EINVAL;
        *out_lat = round_to(lat, o->coord_decimals);
        *out_lon = round_to(lon, o->coord_decimals);
        return 0;
    case AP_GEO_COORDS_GRID: {
        double km = o->coord_grid_km;
        if (!isfinite(km) || km < AP_GEO_GRID_KM_MIN || km > AP_GEO_GRID_KM_MAX)
            return -EINVAL;
        double clat = cell_centre(lat, -90.0, 90.0, km / KM_PER_DEGREE);
        /* Columns are as wide as the cell is high at the band's centre, so
         * every point of a band shares the same columns. */
        double c = cos(clat * M_PI / 180.0);
        double step = c > 1e-9 ? km / (KM_PER_DEGREE * c) : 360.0;
        double clon = cell_centre(lon, -180.0, 180.0, step);
        /* Four decimals (about 11 m) are finer than any cell. */
        *out_lat = round_to(clat, 4);
        *out_lon = round_to(clon, 4);
        return 0;
    }
    }
    return -EINVAL;
}

void ap_geo_coarsen_apply(const struct ap_geo_options *o, const struct ap_geo_record *rec,
                          enum ap_geo_level level, struct ap_geo_result *out)
{
    memset(out, 0, sizeof(*out));
    int l = (int)level;
    if (l > AP_GEO_LEVEL_CITY)
        l = AP_GEO_LEVEL_CITY;
    if (l > (int)o->precision)
        l = (int)o->precision;
    while (l > AP_GEO_LEVEL_NONE && !supports(rec, (enum ap_geo_level)l))
        l--;
    if (l < AP_GEO_LEVEL_NONE)
        l = AP_GEO_LEVEL_NONE;
    out->level = (enum ap_geo_level)l;
    if (l >= AP_GEO_LEVEL_CONTINENT)
        copy(out->continent, sizeof(out->continent), rec->continent);
    if (l >= AP_GEO_LEVEL_COUNTRY)
        copy(out->country, sizeof(out->country), rec->country);
    if (l >= AP_GEO_LEVEL_REGION)
        copy(out->region, sizeof(out->region), rec->region);
    if (l >= AP_GEO_LEVEL_CITY) {
        copy(out->city, sizeof(out->city), rec->city);
        if (rec->has_coords &&
            ap_geo_coarsen_coords(o, rec->latitude, rec->longitude, &out->latitude,
                                  &out->longitude) == 0) {
            out->has_coords = true;
            out->coord_decimals = o->coords == AP_GEO_COORDS_ROUND ? (int)o->coord_decimals : 4;
        }
    }
    if (o->timezone && l >= AP_GEO_LEVEL_REGION)
        copy(out->timezone, sizeof(out->timezone), rec->timezone);
    out->flags = rec->flags;
    out->asn = o->keep_asn ? rec->asn : 0;
}

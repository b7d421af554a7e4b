/* Output of a geolocation result: header values and a JSON object, into
 * caller buffers. Pure functions; they never write past `size`. */
#include "anonproxy/common.h"

#include <errno.h>
#include <math.h>

#include "anonproxy/geo.h"

static const char *const level_names[] = {"none", "continent", "country", "region", "city"};

const char *ap_geo_format_level(enum ap_geo_level level)
{
    if ((unsigned)level >= AP_ARRAY_SIZE(level_names))
        return "none";
    return level_names[level];
}

struct out {
    char *buf;
    size_t size;
    size_t len;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->size - o->len <= n) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

/* A JSON string (RFC 8259): quotes, backslashes and control characters
 * escaped, valid UTF-8 passed through, invalid bytes replaced by U+FFFD,
 * so the output is valid JSON whatever the result holds. */
static void put_json_string(struct out *o, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    put(o, "\"", 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(o, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(o, esc, 6);
            i++;
        } else {
            size_t n = utf8_len(u + i, len - i);
            if (n == 0) {
                puts_(o, "\\ufffd");
                i++;
            } else {
                put(o, s + i, n);
                i += n;
            }
        }
    }
    put(o, "\"", 1);
}

static void put_member(struct out *o, bool *first, const char *key, const char *value)
{
    if (value[0] == '\0')
        return;
    puts_(o, *first ? "\"" : ",\"");
    *first = false;
    puts_(o, key);
    puts_(o, "\":");
    put_json_string(o, value);
}

static void put_number(struct out *o, const char *key, double v, int decimals)
{
    char tmp[64];
    if (decimals < 0 || decimals > AP_GEO_COORD_DECIMALS_MAX)
        decimals = AP_GEO_COORD_DECIMALS_MAX;
    int n = snprintf(tmp, sizeof(tmp), ",\"%s\":%.*f", key, decimals, v == 0.0 ? 0.0 : v);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        o->full = true;
        return;
    }
    put(o, tmp, (size_t)n);
}

int ap_geo_format_json(const struct ap_geo_result *r, char *buf, size_t size)
{
    struct out o = {buf, size, 0, false};
    if (size == 0)
        return -ENOSPC;
    buf[0] = '\0';
    bool first = true;
    puts_(&o, "{");
    put_member(&o, &first, "level", ap_geo_format_level(r->level));
    put_member(&o, &first, "continent", r->continent);
    put_member(&o, &first, "country", r->country);
    put_member(&o, &first, "region", r->region);
    put_member(&o, &first, "city", r->city);
    put_member(&o, &first, "timezone", r->timezone);
    if (r->has_coords && isfinite(r->latitude) && isfinite(r->longitude)) {
        put_number(&o, "latitude", r->latitude, r->coord_decimals);
        put_number(&o, "longitude", r->longitude, r->coord_decimals);
    }
    if (r->asn != 0) {
        char tmp[32];
        int n = snprintf(tmp, sizeof(tmp), ",\"asn\":%u", (unsigned)r->asn);
        put(&o, tmp, (size_t)n);
    }
    puts_(&o, "}");
    if (o.full) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return (int)o.len;
}

int ap_geo_format_header(const struct ap_geo_result *r, enum ap_geo_out f, char *buf, size_t size)
{
    const char *v;
    switch (f) {
    case AP_GEO_OUT_CONTINENT:
        v = r->continent;
        break;
    case AP_GEO_OUT_COUNTRY:
        v = r->country;
        break;
    case AP_GEO_OUT_REGION:
        v = r->region;
        break;
    case AP_GEO_OUT_CITY:
        v = r->city;
        break;
    case AP_GEO_OUT_TIMEZONE:
        v = r->timezone;
        break;
    default:
        return -EINVAL;
    }
    if (size > 0)
        buf[0] = '\0';
    if (v[0] == '\0')
        return 0;
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        bool plain = *p > 0x20 && *p < 0x7f && *p != '%';
        size_t need = plain ? 1 : 3;
        if (len + need >= size) {
            if (size > 0)
                buf[0] = '\0';
            return -ENOSPC;
        }
        if (plain) {
            buf[len++] = (char)*p;
        } else {
            buf[len++] = '%';
            buf[len++] = hex[*p >> 4];
            buf[len++] = hex[*p & 0xf];
        }
    }
    buf[len] = '\0';
    return (int)len;
}

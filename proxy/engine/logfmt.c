/* Access log formats. A worker copies a record's fields into its queue in
 * the compact encoding below; the logger thread decodes it and writes the
 * line in the configured format, so formatting costs the request path
 * nothing but a copy. */
#include "anonproxy/common.h"

#include <errno.h>
#include <inttypes.h>
#include <time.h>

#include "anonproxy/buf.h"
#include "anonproxy/logfmt.h"

static const char *const var_names[AP_LOGFMT_NVARS] = {
    "", "time", "time_local", "id", "route", "method", "host", "path", "protocol", "status",
    "bytes_in", "bytes_out", "duration_ms", "upstream_ms", "upstream", "tls", "client", "geo",
    "ua", "rules"};

const char *ap_logfmt_var_name(enum ap_logfmt_var v)
{
    return (size_t)v < AP_ARRAY_SIZE(var_names) ? var_names[v] : "?";
}

/* ---- template ---- */

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int add_seg(struct ap_logfmt_tmpl *t, size_t *cap, enum ap_logfmt_var v, size_t off, size_t len)
{
    if (v == AP_LOGFMT_LITERAL && len == 0)
        return 0;
    /* Adjacent literals merge ("$$" splits one otherwise). */
    if (v == AP_LOGFMT_LITERAL && t->nsegs > 0 && t->segs[t->nsegs - 1].var == AP_LOGFMT_LITERAL &&
        t->segs[t->nsegs - 1].off + t->segs[t->nsegs - 1].len == off) {
        t->segs[t->nsegs - 1].len += len;
        return 0;
    }
    if (t->nsegs == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct ap_logfmt_seg *ns = realloc(t->segs, nc * sizeof(*ns));
        if (ns == NULL)
            return -ENOMEM;
        t->segs = ns;
        *cap = nc;
    }
    t->segs[t->nsegs++] = (struct ap_logfmt_seg){v, off, len};
    return 0;
}

int ap_logfmt_template_compile(const char *s, struct ap_logfmt_tmpl *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    size_t n = strlen(s);
    /* Literals are copied out with "$$" reduced to "$", so offsets refer to
     * the copy. */
    t->lits = malloc(n + 1);
    if (t->lits == NULL)
        return -ENOMEM;
    size_t cap = 0, w = 0, i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        if (s[i] != '$') {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 && c != '\t') {
                snprintf(err, errlen, "column %zu: control character in template", i + 1);
                rc = -EINVAL;
                break;
            }
            t->lits[w] = s[i];
            rc = add_seg(t, &cap, AP_LOGFMT_LITERAL, w, 1);
            w++;
            i++;
            continue;
        }
        if (i + 1 < n && s[i + 1] == '$') {
            t->lits[w] = '$';
            rc = add_seg(t, &cap, AP_LOGFMT_LITERAL, w, 1);
            w++;
            i += 2;
            continue;
        }
        size_t start = i + 1, end;
        int braced = start < n && s[start] == '{';
        if (braced) {
            start++;
            end = start;
            while (end < n && s[end] != '}')
                end++;
            if (end >= n) {
                snprintf(err, errlen, "column %zu: '${' without '}'", i + 1);
                rc = -EINVAL;
                break;
            }
        } else {
            end = start;
            while (end < n && is_name_char(s[end]))
                end++;
        }
        size_t len = end - start;
        int var = -1;
        for (int v = 1; v < AP_LOGFMT_NVARS; v++)
            if (strlen(var_names[v]) == len && memcmp(var_names[v], s + start, len) == 0)
                var = v;
        if (var < 0) {
            if (len == 0)
                snprintf(err, errlen, "column %zu: '$' without a variable name (write $$ for a dollar sign)",
                         i + 1);
            else
                snprintf(err, errlen, "column %zu: unknown variable '%.*s'", i + 1,
                         (int)(len > 40 ? 40 : len), s + start);
            rc = -EINVAL;
            break;
        }
        rc = add_seg(t, &cap, (enum ap_logfmt_var)var, 0, 0);
        i = braced ? end + 1 : end;
    }
    if (rc != 0) {
        ap_logfmt_template_free(t);
        return rc;
    }
    t->lits[w] = '\0';
    return 0;
}

void ap_logfmt_template_free(struct ap_logfmt_tmpl *t)
{
    free(t->segs);
    free(t->lits);
    memset(t, 0, sizeof(*t));
}

/* ---- escaping ---- */

static size_t utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0fu;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int ap_logfmt_json_string(struct ap_buf *b, const char *p0, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    struct ap_slice s = {p0, n};
    if (ap_buf_reserve(b, s.len * 6 + 2) != 0)
        return -E2BIG;
    char *o = b->data + b->len;
    const unsigned char *p = (const unsigned char *)s.p;
    *o++ = '"';
    for (size_t i = 0; i < s.len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            i++;
            continue;
        }
        size_t l = c >= 0x80 ? utf8_len(p + i, s.len - i) : 0;
        if (l > 0) {
            memcpy(o, p + i, l);
            o += l;
            i += l;
            continue;
        }
        /* Controls, DEL and stray bytes (read as Latin-1). */
        memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4];
        o[5] = hex[c & 15];
        o += 6;
        i++;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int json_str(struct ap_buf *b, struct ap_slice s)
{
    if (s.len == 0)
        return ap_buf_append(b, "null", 4);
    return ap_logfmt_json_string(b, s.p, s.len);
}

static int text_str(struct ap_buf *b, struct ap_slice s)
{
    static const char hex[] = "0123456789abcdef";
    if (s.len == 0)
        return ap_buf_append(b, "-", 1);
    if (ap_buf_reserve(b, s.len * 4) != 0)
        return -E2BIG;
    char *o = b->data + b->len;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            *o++ = (char)c;
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

/* ---- values ---- */

static void fmt_time(int64_t us, char out[80], int local)
{
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (local) {
        static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        snprintf(out, 80, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, mon[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return;
    }
    snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((us / 1000) % 1000));
}

/* Milliseconds with microsecond precision, "1.234". */
static void fmt_ms(int64_t us, char out[32])
{
    if (us < 0)
        us = 0;
    snprintf(out, 32, "%" PRId64 ".%03d", us / 1000, (int)(us % 1000));
}

int ap_logfmt_json(const struct ap_logfmt_rec *r, struct ap_buf *out)
{
    char t[80], d[32], u[32];
    fmt_time(r->time_us, t, 0);
    fmt_ms(r->duration_us, d);
    int rc = ap_buf_appendf(out, "{\"time\":\"%s\",\"id\":\"%016" PRIx64 "\",\"route\":", t, r->id);
    rc = rc ? rc : json_str(out, r->route);
    rc = rc ? rc : ap_buf_append(out, ",\"method\":", 10);
    rc = rc ? rc : json_str(out, r->method);
    rc = rc ? rc : ap_buf_append(out, ",\"host\":", 8);
    rc = rc ? rc : json_str(out, r->host);
    rc = rc ? rc : ap_buf_append(out, ",\"path\":", 8);
    rc = rc ? rc : json_str(out, r->path);
    rc = rc ? rc : ap_buf_append(out, ",\"protocol\":", 12);
    rc = rc ? rc : json_str(out, r->protocol);
    rc = rc ? rc : ap_buf_appendf(out, ",\"status\":%d,\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                                       ",\"duration_ms\":%s,\"upstream_ms\":",
                                  r->status, r->bytes_in, r->bytes_out, d);
    if (rc == 0 && r->upstream_us >= 0) {
        fmt_ms(r->upstream_us, u);
        rc = ap_buf_append(out, u, strlen(u));
    } else if (rc == 0) {
        rc = ap_buf_append(out, "null", 4);
    }
    rc = rc ? rc : ap_buf_append(out, ",\"upstream\":", 12);
    rc = rc ? rc : json_str(out, r->upstream);
    rc = rc ? rc : ap_buf_append(out, ",\"tls\":", 7);
    rc = rc ? rc : json_str(out, r->tls);
    rc = rc ? rc : ap_buf_append(out, ",\"client\":", 10);
    rc = rc ? rc : json_str(out, r->client);
    rc = rc ? rc : ap_buf_append(out, ",\"geo\":", 7);
    rc = rc ? rc : json_str(out, r->geo);
    rc = rc ? rc : ap_buf_append(out, ",\"ua\":", 6);
    rc = rc ? rc : json_str(out, r->ua);
    rc = rc ? rc : ap_buf_append(out, ",\"rules\":", 9);
    rc = rc ? rc : json_str(out, r->rules);
    rc = rc ? rc : ap_buf_append(out, "}", 1);
    return rc;
}

int ap_logfmt_text(const struct ap_logfmt_tmpl *t, const struct ap_logfmt_rec *r, struct ap_buf *out)
{
    int rc = 0;
    char tmp[80];
    for (size_t i = 0; i < t->nsegs && rc == 0; i++) {
        const struct ap_logfmt_seg *s = &t->segs[i];
        switch (s->var) {
        case AP_LOGFMT_LITERAL:
            rc = ap_buf_append(out, t->lits + s->off, s->len);
            break;
        case AP_LOGFMT_TIME:
        case AP_LOGFMT_TIME_LOCAL:
            fmt_time(r->time_us, tmp, s->var == AP_LOGFMT_TIME_LOCAL);
            rc = ap_buf_append(out, tmp, strlen(tmp));
            break;
        case AP_LOGFMT_ID:
            rc = ap_buf_appendf(out, "%016" PRIx64, r->id);
            break;
        case AP_LOGFMT_STATUS:
            rc = r->status > 0 ? ap_buf_appendf(out, "%d", r->status) : ap_buf_append(out, "-", 1);
            break;
        case AP_LOGFMT_BYTES_IN:
            rc = ap_buf_appendf(out, "%" PRIu64, r->bytes_in);
            break;
        case AP_LOGFMT_BYTES_OUT:
            rc = ap_buf_appendf(out, "%" PRIu64, r->bytes_out);
            break;
        case AP_LOGFMT_DURATION_MS:
            fmt_ms(r->duration_us, tmp);
            rc = ap_buf_append(out, tmp, strlen(tmp));
            break;
        case AP_LOGFMT_UPSTREAM_MS:
            if (r->upstream_us < 0) {
                rc = ap_buf_append(out, "-", 1);
            } else {
                fmt_ms(r->upstream_us, tmp);
                rc = ap_buf_append(out, tmp, strlen(tmp));
            }
            break;
        case AP_LOGFMT_ROUTE: rc = text_str(out, r->route); break;
        case AP_LOGFMT_METHOD: rc = text_str(out, r->method); break;
        case AP_LOGFMT_HOST: rc = text_str(out, r->host); break;
        case AP_LOGFMT_PATH: rc = text_str(out, r->path); break;
        case AP_LOGFMT_PROTOCOL: rc = text_str(out, r->protocol); break;
        case AP_LOGFMT_UPSTREAM: rc = text_str(out, r->upstream); break;
        case AP_LOGFMT_TLS: rc = text_str(out, r->tls); break;
        case AP_LOGFMT_CLIENT: rc = text_str(out, r->client); break;
        case AP_LOGFMT_GEO: rc = text_str(out, r->geo); break;
        case AP_LOGFMT_UA: rc = text_str(out, r->ua); break;
        case AP_LOGFMT_RULES: rc = text_str(out, r->rules); break;
        case AP_LOGFMT_NVARS:
        default:
            AP_BUG_ON(1);
        }
    }
    return rc;
}

/* ---- encoding ---- */

#define ENC_MAGIC 0x4c4f4731u /* "LOG1" */
#define NSTR 12

struct enc_hdr {
    uint32_t magic;
    int32_t status;
    int64_t time_us;
    uint64_t id;
    uint64_t bytes_in, bytes_out;
    int64_t duration_us, upstream_us;
    uint32_t lens[NSTR];
};

static void str_fields(const struct ap_logfmt_rec *r, const struct ap_slice *f[NSTR])
{
    f[0] = &r->route;
    f[1] = &r->method;
    f[2] = &r->host;
    f[3] = &r->path;
    f[4] = &r->protocol;
    f[5] = &r->upstream;
    f[6] = &r->tls;
    f[7] = &r->client;
    f[8] = &r->geo;
    f[9] = &r->ua;
    f[10] = &r->rules;
    f[11] = NULL;
}

size_t ap_logfmt_encoded_len(const struct ap_logfmt_rec *r)
{
    const struct ap_slice *f[NSTR];
    str_fields(r, f);
    size_t n = sizeof(struct enc_hdr);
    for (int i = 0; i < NSTR && f[i]; i++)
        n += f[i]->len;
    return n;
}

size_t ap_logfmt_encode(const struct ap_logfmt_rec *r, void *out, size_t cap)
{
    size_t need = ap_logfmt_encoded_len(r);
    if (need > cap)
        return 0;
    const struct ap_slice *f[NSTR];
    str_fields(r, f);
    struct enc_hdr h = {
        .magic = ENC_MAGIC, .status = r->status, .time_us = r->time_us, .id = r->id,
        .bytes_in = r->bytes_in, .bytes_out = r->bytes_out, .duration_us = r->duration_us,
        .upstream_us = r->upstream_us,
    };
    char *o = (char *)out + sizeof(h);
    for (int i = 0; i < NSTR && f[i]; i++) {
        uint32_t l = (uint32_t)f[i]->len;
        h.lens[i] = l;
        if (l)
            memcpy(o, f[i]->p, l);
        o += l;
    }
    memcpy(out, &h, sizeof(h));
    return need;
}

int ap_logfmt_decode(const void *in, size_t len, struct ap_logfmt_rec *r)
{
    struct enc_hdr h;
    if (len < sizeof(h))
        return -EINVAL;
    memcpy(&h, in, sizeof(h));
    if (h.magic != ENC_MAGIC)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    r->status = h.status;
    r->time_us = h.time_us;
    r->id = h.id;
    r->bytes_in = h.bytes_in;
    r->bytes_out = h.bytes_out;
    r->duration_us = h.duration_us;
    r->upstream_us = h.upstream_us;
    struct ap_slice *f[NSTR] = {&r->route, &r->method, &r->host, &r->path, &r->protocol,
                                &r->upstream, &r->tls, &r->client, &r->geo, &r->ua, &r->rules, NULL};
    const char *p = (const char *)in + sizeof(h);
    size_t left = len - sizeof(h);
    for (int i = 0; i < NSTR && f[i]; i++) {
        if (h.lens[i] > left)
            return -EINVAL;
        *f[i] = (struct ap_slice){h.lens[i] ? p : NULL, h.lens[i]};
        p += h.lens[i];
        left -= h.lens[i];
    }
    return left == 0 ? 0 : -EINVAL;
}

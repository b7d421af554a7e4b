/* Syslog messages: what the syslog sink writes (RFC 5424 or RFC 3164 with
 * RFC 6587 octet counting over TCP) and what the syslog listener reads.
 * The parsers are lenient, as receivers must be: anything is a message,
 * and what cannot be recognised stays in its text. */
#include "anonproxy/common.h"

#include <errno.h>
#include <time.h>

#include "anonproxy/syslogmsg.h"

/* ---- formatting ---- */

/* Append `s` cut to `max` bytes, PRINTUSASCII only, "-" when empty. */
static size_t put_field(char *out, size_t cap, size_t at, const char *s, size_t max, int nil_dash)
{
    size_t n = 0;
    if (s != NULL) {
        for (; s[n] != '\0' && n < max && at + n < cap; n++) {
            unsigned char c = (unsigned char)s[n];
            out[at + n] = c >= 33 && c <= 126 ? (char)c : '_';
        }
    }
    if (n == 0 && nil_dash && at < cap) {
        out[at] = '-';
        n = 1;
    }
    return n;
}

int ap_syslogmsg_header(enum ap_syslogmsg_format fmt, const struct ap_syslogmsg_hdr *h, char *out,
                        size_t cap)
{
    if (cap < 256)
        return -ENOBUFS;
    int pri = h->pri < 0 ? 0 : h->pri > AP_SYSLOG_PRI_MAX ? AP_SYSLOG_PRI_MAX : h->pri;
    time_t sec = (time_t)(h->time_us >= 0 ? h->time_us / 1000000 : 0);
    long usec = (long)(h->time_us >= 0 ? h->time_us % 1000000 : 0);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t at;
    if (fmt == AP_SYSLOGMSG_RFC5424) {
        int n = snprintf(out, cap, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%06ldZ ", pri,
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, usec);
        at = (size_t)n;
        /* 255 + 48 + 128 + 32 would not fit in 256: hostnames are cut to
         * 64 here, which every real one fits. */
        at += put_field(out, cap, at, h->hostname, 64, 1);
        out[at++] = ' ';
        at += put_field(out, cap, at, h->app, 48, 1);
        out[at++] = ' ';
        if (h->procid > 0)
            at += (size_t)snprintf(out + at, cap - at, "%d", h->procid);
        else
            out[at++] = '-';
        out[at++] = ' ';
        at += put_field(out, cap, at, h->msgid, 32, 1);
        memcpy(out + at, " - ", 3);
        at += 3;
        return (int)at;
    }
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int n = snprintf(out, cap, "<%d>%s %2d %02d:%02d:%02d ", pri, mon[tm.tm_mon], tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    at = (size_t)n;
    at += put_field(out, cap, at, h->hostname, 64, 1);
    out[at++] = ' ';
    /* A TAG is at most 32 alphanumeric characters. */
    size_t t = 0;
    if (h->app != NULL) {
        for (; h->app[t] != '\0' && t < 32; t++) {
            unsigned char c = (unsigned char)h->app[t];
            out[at + t] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                  c == '-' || c == '_' || c == '.'
                              ? (char)c
                              : '_';
        }
    }
    if (t == 0)
        out[at + t++] = '-';
    at += t;
    if (h->procid > 0)
        at += (size_t)snprintf(out + at, cap - at, "[%d]", h->procid);
    out[at++] = ':';
    out[at++] = ' ';
    return (int)at;
}

int ap_syslogmsg_octet_prefix(size_t len, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%zu ", len);
    return n < 0 || (size_t)n >= cap ? -ENOBUFS : n;
}

/* ---- parsing ---- */

static struct ap_slice slice(const char *p, size_t n)
{
    return (struct ap_slice){n ? p : NULL, n};
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "<PRI>" at s: returns its length (0 when absent) and the value. */
static size_t parse_pri(const char *s, size_t len, int *pri)
{
    if (len < 3 || s[0] != '<')
        return 0;
    size_t i = 1;
    int v = 0;
    while (i < len && i <= 4 && is_digit(s[i])) {
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == 1 || i >= len || s[i] != '>' || v > AP_SYSLOG_PRI_MAX || (i > 2 && s[1] == '0'))
        return 0;
    *pri = v;
    return i + 1;
}

/* The next space-separated token from *pos; "-" gives an empty slice. */
static struct ap_slice token(const char *s, size_t len, size_t *pos, int nil)
{
    size_t a = *pos, b = a;
    while (b < len && s[b] != ' ')
        b++;
    *pos = b < len ? b + 1 : b;
    if (nil && b - a == 1 && s[a] == '-')
        return slice(NULL, 0);
    return slice(s + a, b - a);
}

/* Length of the STRUCTURED-DATA at s (a run of "[...]" elements, with
 * quoted values that may hold escaped quotes and brackets), 1 for "-", or
 * 0 when it is neither. */
static size_t sd_length(const char *s, size_t len)
{
    if (len >= 1 && s[0] == '-' && (len == 1 || s[1] == ' '))
        return 1;
    size_t i = 0;
    while (i < len && s[i] == '[') {
        int quoted = 0;
        i++;
        for (; i < len; i++) {
            char c = s[i];
            if (quoted && c == '\\' && i + 1 < len) {
                i++;
                continue;
            }
            if (c == '"')
                quoted = !quoted;
            else if (c == ']' && !quoted)
                break;
        }
        if (i >= len)
            return 0;
        i++; /* past ']' */
    }
    return i;
}

static void parse_5424(const char *s, size_t len, size_t pos, struct ap_syslogmsg *m)
{
    m->version = 1;
    m->timestamp = token(s, len, &pos, 1);
    m->hostname = token(s, len, &pos, 1);
    m->app = token(s, len, &pos, 1);
    m->procid = token(s, len, &pos, 1);
    m->msgid = token(s, len, &pos, 1);
    size_t sdl = pos < len ? sd_length(s + pos, len - pos) : 0;
    if (sdl == 0) {
        /* Not structured data: keep the rest as the message. */
        m->msg = slice(s + pos, len - pos);
        return;
    }
    if (!(sdl == 1 && s[pos] == '-'))
        m->sd = slice(s + pos, sdl);
    pos += sdl;
    if (pos < len && s[pos] == ' ')
        pos++;
    /* A UTF-8 BOM in front of the message is not part of it. */
    if (len - pos >= 3 && memcmp(s + pos, "\xef\xbb\xbf", 3) == 0)
        pos += 3;
    m->msg = slice(s + pos, len - pos);
}

static int is_bsd_time(const char *s, size_t len)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (len < 16 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' || s[15] != ' ')
        return 0;
    int month = 0;
    for (int i = 0; i < 12; i++)
        if (memcmp(s, months + 3 * i, 3) == 0)
            month = 1;
    return month && (s[4] == ' ' || is_digit(s[4])) && is_digit(s[5]) && is_digit(s[7]) &&
           is_digit(s[8]) && is_digit(s[10]) && is_digit(s[11]) && is_digit(s[13]) &&
           is_digit(s[14]);
}

/* A TAG: up to 32 characters of [A-Za-z0-9._/-], optionally "[pid]",
 * followed by ':'. Returns the length through ": " or 0. */
static size_t parse_tag(const char *s, size_t len, struct ap_syslogmsg *m)
{
    size_t i = 0;
    while (i < len && i < 48 && s[i] != '[' && s[i] != ':' && s[i] != ' ')
        i++;
    if (i == 0 || i >= len)
        return 0;
    size_t tag = i, pa = 0, pl = 0;
    if (s[i] == '[') {
        size_t j = i + 1;
        while (j < len && j - i <= 20 && s[j] != ']')
            j++;
        if (j >= len || s[j] != ']')
            return 0;
        pa = i + 1;
        pl = j - i - 1;
        i = j + 1;
    }
    if (i >= len || s[i] != ':')
        return 0;
    m->app = slice(s, tag);
    m->procid = slice(s + pa, pl);
    i++;
    if (i < len && s[i] == ' ')
        i++;
    return i;
}

static void parse_3164(const char *s, size_t len, size_t pos, struct ap_syslogmsg *m)
{
    if (is_bsd_time(s + pos, len - pos)) {
        m->timestamp = slice(s + pos, 15);
        pos += 16;
        /* HOSTNAME follows the timestamp, unless the next word is the tag. */
        size_t save = pos;
        struct ap_slice host = token(s, len, &pos, 0);
        if (host.len > 0 && host.p[host.len - 1] != ':' && memchr(host.p, '[', host.len) == NULL)
            m->hostname = host;
        else
            pos = save;
    }
    size_t t = parse_tag(s + pos, len - pos, m);
    pos += t;
    m->msg = slice(s + pos, len - pos);
}

void ap_syslogmsg_parse(const char *s, size_t len, struct ap_syslogmsg *m)
{
    memset(m, 0, sizeof(*m));
    m->pri = -1;
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == '\0'))
        len--;
    size_t pos = parse_pri(s, len, &m->pri);
    if (pos > 0 && len - pos >= 2 && s[pos] == '1' && s[pos + 1] == ' ') {
        parse_5424(s, len, pos + 2, m);
        return;
    }
    parse_3164(s, len, pos, m);
}

void ap_syslogmsg_sd_init(struct ap_syslogmsg_sditer *it, struct ap_slice sd)
{
    memset(it, 0, sizeof(*it));
    it->sd = sd;
}

/* SD-NAME: 1..32 PRINTUSASCII except '=', SP, ']', '"'. */
static size_t sd_name(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && i < 32) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '=' || c == ']' || c == '"')
            break;
        i++;
    }
    return i;
}

int ap_syslogmsg_sd_next(struct ap_syslogmsg_sditer *it, struct ap_syslogmsg_param *param)
{
    const char *s = it->sd.p;
    size_t len = it->sd.len;
    size_t i = it->pos;
    for (;;) {
        if (!it->in_elem) {
            if (i >= len)
                return 0;
            if (s[i] != '[')
                goto bad;
            i++;
            size_t n = sd_name(s + i, len - i);
            if (n == 0)
                goto bad;
            it->id = slice(s + i, n);
            i += n;
            it->in_elem = 1;
            if (i < len && s[i] == ']') {
                /* An element without parameters. */
                it->in_elem = 0;
                it->pos = i + 1;
                *param = (struct ap_syslogmsg_param){it->id, slice(NULL, 0), slice(NULL, 0)};
                return 1;
            }
        }
        if (i < len && s[i] == ']') {
            it->in_elem = 0;
            i++;
            continue;
        }
        if (i >= len || s[i] != ' ')
            goto bad;
        i++;
        size_t n = sd_name(s + i, len - i);
        if (n == 0 || i + n + 1 >= len || s[i + n] != '=' || s[i + n + 1] != '"')
            goto bad;
        struct ap_slice name = slice(s + i, n);
        i += n + 2;
        size_t v = i;
        while (i < len && s[i] != '"') {
            if (s[i] == '\\' && i + 1 < len)
                i++;
            i++;
        }
        if (i >= len)
            goto bad;
        *param = (struct ap_syslogmsg_param){it->id, name, slice(s + v, i - v)};
        it->pos = i + 1;
        return 1;
    }
bad:
    it->pos = len;
    it->in_elem = 0;
    return -EINVAL;
}

/* ---- TCP framing ---- */

void ap_syslogmsg_deframer_init(struct ap_syslogmsg_deframer *d, size_t max)
{
    memset(d, 0, sizeof(*d));
    d->max = max ? max : 8192;
}

void ap_syslogmsg_deframer_free(struct ap_syslogmsg_deframer *d)
{
    free(d->buf);
    d->buf = NULL;
    d->len = d->cap = 0;
}

static void drop_front(struct ap_syslogmsg_deframer *d, size_t n)
{
    memmove(d->buf, d->buf + n, d->len - n);
    d->len -= n;
}

int ap_syslogmsg_deframer_feed(struct ap_syslogmsg_deframer *d, const char *data, size_t len,
                               void (*cb)(void *arg, const char *msg, size_t n), void *arg)
{
    while (len > 0 && (d->skip > 0 || d->skip_to_lf)) {
        if (d->skip > 0) {
            size_t k = len < d->skip ? len : d->skip;
            d->skip -= k;
            data += k;
            len -= k;
            continue;
        }
        const char *lf = memchr(data, '\n', len);
        if (lf == NULL)
            return 0;
        d->skip_to_lf = 0;
        len -= (size_t)(lf + 1 - data);
        data = lf + 1;
    }
    if (len == 0)
        return 0;
    if (d->len + len > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < d->len + len)
            cap *= 2;
        char *nb = realloc(d->buf, cap);
        if (nb == NULL)
            return -ENOMEM;
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;

    size_t off = 0;
    while (off < d->len) {
        char *p = d->buf + off;
        size_t avail = d->len - off;
        if (d->skip_to_lf) {
            char *lf = memchr(p, '\n', avail);
            if (lf == NULL) {
                off = d->len;
                break;
            }
            d->skip_to_lf = 0;
            off += (size_t)(lf + 1 - p);
            continue;
        }
        if (d->skip > 0) {
            size_t k = avail < d->skip ? avail : d->skip;
            d->skip -= k;
            off += k;
            continue;
        }
        char c = p[0];
        if (c == '\n' || c == '\r' || c == '\0') {
            off++;
            continue;
        }
        if (is_digit(c)) {
            /* Octet counting: MSG-LEN is 1..10 digits, no leading zero. */
            size_t i = 0;
            uint64_t n = 0;
            while (i < avail && i < 11 && is_digit(p[i])) {
                n = n * 10 + (uint64_t)(p[i] - '0');
                i++;
            }
            if (i == avail && i < 11)
                break; /* need more digits */
            if (i >= 11 || p[i] != ' ' || p[0] == '0' || n == 0) {
                /* Not a count after all: read the line as a message. */
                d->malformed++;
                goto by_lf;
            }
            size_t hdr = i + 1;
            if (n > d->max) {
                if (avail < hdr + d->max)
                    break;
                d->truncated++;
                cb(arg, p + hdr, d->max);
                size_t have = avail - hdr - d->max;
                uint64_t rest = n - d->max;
                size_t k = have < rest ? have : (size_t)rest;
                d->skip = (size_t)(rest - k);
                off += hdr + d->max + k;
                continue;
            }
            if (avail < hdr + n)
                break;
            cb(arg, p + hdr, (size_t)n);
            off += hdr + (size_t)n;
            continue;
        }
    by_lf:;
        char *lf = memchr(p, '\n', avail);
        if (lf == NULL) {
            /* Cut only past max + 1 bytes: a CR at max + 1 may still end
             * the line, and then the message is exactly max bytes. */
            if (avail > d->max + 1) {
                d->truncated++;
                cb(arg, p, d->max);
                off = d->len;
                d->skip_to_lf = 1;
            }
            break;
        }
        size_t n = (size_t)(lf - p);
        size_t m = n;
        if (m > 0 && p[m - 1] == '\r')
            m--;
        if (m > d->max) {
            d->truncated++;
            m = d->max;
        }
        cb(arg, p, m);
        off += n + 1;
    }
    drop_front(d, off);
    /* Keep the buffer from holding more than one partial message. */
    if (d->cap > 4 * (d->max + 32) && d->len < d->max) {
        char *nb = realloc(d->buf, d->max + 32 > d->len ? d->max + 32 : d->len);
        if (nb != NULL) {
            d->buf = nb;
            d->cap = d->max + 32 > d->len ? d->max + 32 : d->len;
        }
    }
    return 0;
}

/* Configuration loader: a YAML file becomes an immutable struct ap_config.
 *
 * The YAML is loaded with libyaml into a node tree, then walked by keyword
 * tables, one per section (HAProxy style). Every error is recorded with the
 * FILE:LINE:COL of the node at fault and the walk goes on, so that one run
 * reports every mistake; the config is returned only when there was none.
 *
 * How to add a key:
 *   1. Add the field to its struct in include/anonproxy/config-t.h and its
 *      default to set_defaults() (or to the place its section is created:
 *      new_listener, parse_upstream, parse_route).
 *   2. Add one line to the keyword table of its section below
 *      (root_kws, listener_kws, upstream_kws, keepalive_kws, route_kws,
 *      match_kws, privacy_kws, truncate_kws, limits_kws, timeouts_kws,
 *      pseudonyms_kws, geo_kws). The generic handlers cover
 *      integers (kw_integer/pr_integer), sizes (kw_size/pr_size), durations
 *      (kw_duration/pr_duration) and strings (pr_string); the line gives the
 *      key, its parse and print handlers, FIELD(struct, member) and the
 *      accepted range. The printer walks the same table, so
 *      ap_config_print and the round-trip test pick the key up unchanged.
 *   3. Document it in docs/configuration.md and test it in
 *      tests/unit/proxy/test_config.c.
 * How to add a top-level section: add its struct to struct ap_config, write
 * its keyword table, and add a line to root_kws using kw_section and
 * pr_section (or your own handlers when it is a list or needs cross-checks).
 * Tables are parsed in table order, not file order, so a section may rely on
 * the sections above it in root_kws (routes look up upstreams and take their
 * default body limit from limits). Errors are sorted by position before they
 * are returned, so the order of work does not show.
 */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "anonproxy/body.h"
#include "anonproxy/bodypreset.h"
#include "anonproxy/clientaddr.h"
#include "anonproxy/config.h"
#include "anonproxy/detect.h"
#include "anonproxy/geo.h"
#include "anonproxy/head.h"
#include "anonproxy/ip.h"
#include "anonproxy/logfmt.h"
#include "anonproxy/logscrub.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo-t.h"
#include "anonproxy/query.h"
#include "config-int.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)
#define SECOND_MS ((uint64_t)1000)
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS (60 * MINUTE_MS)
#define DAY_MS (24ull * HOUR_MS)

/* Largest config file ap_config_load reads; real ones are a few KiB. */
#define MAX_FILE_BYTES (16u * 1024u * 1024u)
#define MAX_WORKERS 256u
/* Caps on list sizes. Far above real needs; they keep the pairwise
 * duplicate checks cheap whatever the input (aliases repeat nodes). */
#define MAX_LISTENERS 256u
#define MAX_UPSTREAMS 1024u
#define MAX_SERVERS 1024u
#define MAX_ROUTES 10000u
/* Longest part of a user's value quoted back in an error message. */
#define SHOW_MAX 60

struct parser;
struct printer;

/* One key of a section. The generic handlers read `off`, `size`, `min` and
 * `max`; the others ignore what they do not need. */
struct keyword {
    const char *name;
    void (*parse)(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj);
    void (*print)(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
    size_t off;                 /* offset of the field in the section's struct */
    size_t size;                /* sizeof the field, for integers: 4 or 8 */
    uint64_t min, max;          /* accepted range (bytes, milliseconds, units) */
    const struct keyword *sub;  /* keyword table of a nested mapping */
    unsigned flags;
};

#define KW_REQUIRED 0x1u     /* missing is an error */
#define KW_SERVERS_ONLY 0x2u /* only meaningful for upstreams with servers */
#define KW_FILE_ONLY 0x4u    /* only meaningful for file upstreams */

#define FIELD(type, member) .off = offsetof(type, member), .size = sizeof(((type *)0)->member)

/* Keys found in one mapping, indexed like its keyword table. */
#define MAX_KEYWORDS 32
struct seen {
    yaml_node_t *key;
    yaml_node_t *val;
};

struct error {
    unsigned line, col; /* 1-based; the sort key */
    unsigned seq;       /* discovery order, to keep the sort stable */
    char *msg;          /* whole line without the newline */
};

struct resolved {
    char *host;
    int rc;
    const char *why;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct parser {
    yaml_document_t *doc;
    const char *name; /* FILE in messages */
    struct ap_config *cfg;
    struct ap_config__opts opts;
    char path[256];   /* key path of the node being parsed: "routes[0].match" */
    size_t pathlen;
    struct error *errors;
    size_t nerrors, errors_cap;
    unsigned seq;
    unsigned dropped;      /* errors past AP_CONFIG__MAX_ERRORS */
    struct error overflow; /* position of the first dropped one */
    int oom;
    int upstreams_bad;     /* the upstreams section was unusable */
    size_t privacy_rules;  /* rules and list entries of every route's privacy so far */
    struct resolved *cache;
    size_t ncache;
};

/* Error recording. */

static void add_error(struct parser *p, unsigned line, unsigned col, const char *text)
{
    if (p->nerrors >= AP_CONFIG__MAX_ERRORS) {
        if (p->dropped++ == 0) {
            p->overflow.line = line;
            p->overflow.col = col;
        }
        return;
    }
    if (p->nerrors == p->errors_cap) {
        size_t cap = p->errors_cap ? p->errors_cap * 2 : 8;
        struct error *ne = realloc(p->errors, cap * sizeof(*ne));
        if (ne == NULL) {
            p->oom = 1;
            return;
        }
        p->errors = ne;
        p->errors_cap = cap;
    }
    int n = snprintf(NULL, 0, "%s:%u:%u: %s", p->name, line, col, text);
    char *msg = n < 0 ? NULL : malloc((size_t)n + 1);
    if (msg == NULL) {
        p->oom = 1;
        return;
    }
    snprintf(msg, (size_t)n + 1, "%s:%u:%u: %s", p->name, line, col, text);
    p->errors[p->nerrors++] = (struct error){ line, col, p->seq++, msg };
}

/* Records an error at `node`, prefixed with the current key path. */
__attribute__((format(printf, 3, 4)))
static void err(struct parser *p, const yaml_node_t *node, const char *fmt, ...)
{
    char text[768];
    size_t off = 0;
    if (p->pathlen > 0)
        off = (size_t)snprintf(text, sizeof(text), "%s: ", p->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + off, sizeof(text) - off, fmt, ap);
    va_end(ap);
    add_error(p, (unsigned)node->start_mark.line + 1, (unsigned)node->start_mark.column + 1,
              text);
}

/* Quotes a user's value into `out` for a message: at most SHOW_MAX bytes,
 * control characters replaced, never cut inside a UTF-8 sequence. */
static const char *show(char out[SHOW_MAX + 4], const char *s, size_t len)
{
    size_t n = len > SHOW_MAX ? SHOW_MAX : len;
    if (n < len)
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Key path, for messages: push returns the length to restore with pop. */

static size_t push_key(struct parser *p, const char *key)
{
    size_t saved = p->pathlen;
    char shown[SHOW_MAX + 4];
    int n = snprintf(p->path + p->pathlen, sizeof(p->path) - p->pathlen, "%s%s",
                     p->pathlen ? "." : "", show(shown, key, strlen(key)));
    if (n > 0)
        p->pathlen += (size_t)n;
    if (p->pathlen >= sizeof(p->path))
        p->pathlen = sizeof(p->path) - 1;
    return saved;
}

static size_t push_index(struct parser *p, size_t i)
{
    size_t saved = p->pathlen;
    int n = snprintf(p->path + p->pathlen, sizeof(p->path) - p->pathlen, "[%zu]", i);
    if (n > 0)
        p->pathlen += (size_t)n;
    if (p->pathlen >= sizeof(p->path))
        p->pathlen = sizeof(p->path) - 1;
    return saved;
}

static void pop(struct parser *p, size_t saved)
{
    p->pathlen = saved;
    p->path[saved] = '\0';
}

static char *xstrdup(struct parser *p, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        p->oom = 1;
    return d;
}

static void *xcalloc(struct parser *p, size_t n, size_t size)
{
    void *d = calloc(n ? n : 1, size);
    if (d == NULL)
        p->oom = 1;
    return d;
}

/* Levenshtein distance, for "did you mean"; long strings are never close. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(prev));
    }
    return prev[lb];
}

/* Node helpers. */

static yaml_node_t *node_at(struct parser *p, int index)
{
    yaml_node_t *n = yaml_document_get_node(p->doc, index);
    AP_BUG_ON(n == NULL); /* libyaml only links nodes it created */
    return n;
}

static const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* A plain empty, "~" or "null" scalar: what `key:` with no value gives. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Returns the text of a scalar node, or NULL after reporting why there is
 * none: not a scalar, no value, or an embedded NUL byte. `what` completes
 * "expected ...". */
static const char *scalar(struct parser *p, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        err(p, n, "expected %s, got %s", what, type_name(n));
        return NULL;
    }
    if (is_null(n)) {
        err(p, n, "missing value (expected %s)", what);
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        err(p, n, "value contains a NUL byte");
        return NULL;
    }
    return v;
}

static struct ap_config_pos pos_of(const yaml_node_t *n)
{
    return (struct ap_config_pos){ (unsigned)n->start_mark.line + 1,
                                   (unsigned)n->start_mark.column + 1 };
}

/* Number syntax: the parsers return 0, -EINVAL (syntax) or -ERANGE. */

static int parse_uint(const char *s, size_t len, uint64_t *out)
{
    if (len == 0)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Splits "123unit" (spaces allowed between) into the number and the unit. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    int rc = parse_uint(s, n, num);
    if (rc != 0)
        return rc;
    while (s[n] == ' ')
        n++;
    *unit = s + n;
    return 0;
}

/* Durations: "250ms", "10s", "5m", "1h" or bare seconds; milliseconds out. */
static int parse_duration(const char *s, uint64_t *ms)
{
    uint64_t num;
    const char *unit;
    int rc = split_number(s, &num, &unit);
    if (rc != 0)
        return rc;
    uint64_t mult;
    if (*unit == '\0' || strcasecmp(unit, "s") == 0)
        mult = SECOND_MS;
    else if (strcasecmp(unit, "ms") == 0)
        mult = 1;
    else if (strcasecmp(unit, "m") == 0)
        mult = MINUTE_MS;
    else if (strcasecmp(unit, "h") == 0)
        mult = HOUR_MS;
    else
        return -EINVAL;
    if (num > UINT64_MAX / mult)
        return -ERANGE;
    *ms = num * mult;
    return 0;
}

/* Sizes: bytes, or k/m/g (1024-based) with an optional "b" or "ib". */
static int parse_size(const char *s, uint64_t *bytes)
{
    uint64_t num;
    const char *unit;
    int rc = split_number(s, &num, &unit);
    if (rc != 0)
        return rc;
    uint64_t mult = 1;
    char c = (char)tolower((unsigned char)*unit);
    if (c == 'k' || c == 'm' || c == 'g') {
        mult = c == 'k' ? KiB : c == 'm' ? MiB : GiB;
        unit++;
        if (strcasecmp(unit, "") != 0 && strcasecmp(unit, "b") != 0 &&
            strcasecmp(unit, "ib") != 0)
            return -EINVAL;
    } else if (strcasecmp(unit, "") != 0 && strcasecmp(unit, "b") != 0) {
        return -EINVAL;
    }
    if (num > UINT64_MAX / mult)
        return -ERANGE;
    *bytes = num * mult;
    return 0;
}

/* Shortest exact spelling of a value, as the printer writes it. */
static const char *fmt_size(char out[32], uint64_t v)
{
    if (v != 0 && v % GiB == 0)
        snprintf(out, 32, "%" PRIu64 "g", v / GiB);
    else if (v != 0 && v % MiB == 0)
        snprintf(out, 32, "%" PRIu64 "m", v / MiB);
    else if (v != 0 && v % KiB == 0)
        snprintf(out, 32, "%" PRIu64 "k", v / KiB);
    else
        snprintf(out, 32, "%" PRIu64, v);
    return out;
}

static const char *fmt_duration(char out[32], uint64_t ms)
{
    if (ms != 0 && ms % HOUR_MS == 0)
        snprintf(out, 32, "%" PRIu64 "h", ms / HOUR_MS);
    else if (ms != 0 && ms % MINUTE_MS == 0)
        snprintf(out, 32, "%" PRIu64 "m", ms / MINUTE_MS);
    else if (ms != 0 && ms % SECOND_MS == 0)
        snprintf(out, 32, "%" PRIu64 "s", ms / SECOND_MS);
    else
        snprintf(out, 32, "%" PRIu64 "ms", ms);
    return out;
}

/* Generic fields are 4 or 8 bytes wide. `int` and `unsigned` fields share
 * the uint32_t path: their ranges keep values where the bits agree. */
static void store_uint(void *obj, const struct keyword *kw, uint64_t v)
{
    char *f = (char *)obj + kw->off;
    if (kw->size == sizeof(uint64_t)) {
        memcpy(f, &v, sizeof(v));
    } else {
        AP_BUG_ON(kw->size != sizeof(uint32_t) || v > UINT32_MAX);
        uint32_t x = (uint32_t)v;
        memcpy(f, &x, sizeof(x));
    }
}

static uint64_t load_uint(const void *obj, const struct keyword *kw)
{
    const char *f = (const char *)obj + kw->off;
    if (kw->size == sizeof(uint64_t)) {
        uint64_t v;
        memcpy(&v, f, sizeof(v));
        return v;
    }
    AP_BUG_ON(kw->size != sizeof(uint32_t));
    uint32_t x;
    memcpy(&x, f, sizeof(x));
    return x;
}

/* The mapping walker: the heart of the table-driven design. */

static size_t table_len(const struct keyword *table)
{
    size_t n = 0;
    while (table[n].name != NULL)
        n++;
    AP_BUG_ON(n > MAX_KEYWORDS);
    return n;
}

/* Checks the keys of `map` against `table` (unknown, duplicate, missing),
 * then calls each present key's handler in table order with `obj`. Fills
 * `seen` (MAX_KEYWORDS entries, may be NULL) with the keys found. */
static void parse_table(struct parser *p, yaml_node_t *map, const struct keyword *table,
                        void *obj, struct seen *seen_out)
{
    struct seen local[MAX_KEYWORDS];
    struct seen *seen = seen_out ? seen_out : local;
    size_t n = table_len(table);
    memset(seen, 0, sizeof(local));
    AP_BUG_ON(map->type != YAML_MAPPING_NODE);

    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = node_at(p, pair->key);
        yaml_node_t *val = node_at(p, pair->value);
        if (key->type != YAML_SCALAR_NODE) {
            err(p, key, "expected a key name, got %s", type_name(key));
            continue;
        }
        const char *name = (const char *)key->data.scalar.value;
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(table[i].name, name) == 0)
                break;
        char shown[SHOW_MAX + 4];
        show(shown, name, key->data.scalar.length);
        if (i == n) {
            const char *best = NULL;
            size_t best_d = 3;
            for (size_t j = 0; j < n; j++) {
                size_t d = edit_distance(name, table[j].name);
                if (d < best_d) {
                    best_d = d;
                    best = table[j].name;
                }
            }
            if (best != NULL)
                err(p, key, "unknown key '%s', did you mean '%s'?", shown, best);
            else
                err(p, key, "unknown key '%s'", shown);
            continue;
        }
        if (seen[i].key != NULL) {
            err(p, key, "duplicate key '%s' (first at %u:%u)", shown,
                pos_of(seen[i].key).line, pos_of(seen[i].key).col);
            continue;
        }
        seen[i].key = key;
        seen[i].val = val;
    }

    for (size_t i = 0; i < n; i++) {
        if (seen[i].val == NULL) {
            if (table[i].flags & KW_REQUIRED)
                err(p, map, "missing required key '%s'", table[i].name);
            continue;
        }
        size_t saved = push_key(p, table[i].name);
        table[i].parse(p, &table[i], seen[i].val, obj);
        pop(p, saved);
    }
}

/* Generic handlers. */

static int check_range(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                       const char *text, uint64_t v, int rc,
                       const char *(*fmt)(char[32], uint64_t))
{
    char shown[SHOW_MAX + 4], lo[32], hi[32];
    if (rc == 0 && v >= kw->min && v <= kw->max)
        return 0;
    show(shown, text, strlen(text));
    if (fmt != NULL)
        err(p, node, "'%s' is out of range (%s..%s)", shown, fmt(lo, kw->min), fmt(hi, kw->max));
    else
        err(p, node, "'%s' is out of range (%" PRIu64 "..%" PRIu64 ")", shown, kw->min, kw->max);
    return -ERANGE;
}

static void kw_integer(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "an integer");
    if (s == NULL)
        return;
    uint64_t v = 0;
    int rc = parse_uint(s, strlen(s), &v);
    if (rc == -EINVAL) {
        char shown[SHOW_MAX + 4];
        err(p, node, "expected an integer, got '%s'", show(shown, s, strlen(s)));
        return;
    }
    if (check_range(p, kw, node, s, v, rc, NULL) == 0)
        store_uint(obj, kw, v);
}

static void kw_size(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "a size");
    if (s == NULL)
        return;
    uint64_t v = 0;
    int rc = parse_size(s, &v);
    if (rc == -EINVAL) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid size '%s' (expected bytes, or a number with a k, m or g suffix)",
            show(shown, s, strlen(s)));
        return;
    }
    if (check_range(p, kw, node, s, v, rc, fmt_size) == 0)
        store_uint(obj, kw, v);
}

static void kw_duration(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "a duration");
    if (s == NULL)
        return;
    uint64_t v = 0;
    int rc = parse_duration(s, &v);
    char shown[SHOW_MAX + 4];
    if (rc == -EINVAL) {
        err(p, node, "invalid duration '%s' (expected e.g. 250ms, 10s, 5m, 1h)",
            show(shown, s, strlen(s)));
        return;
    }
    if (rc == 0 && v == 0) {
        err(p, node, "duration must be greater than 0");
        return;
    }
    if (check_range(p, kw, node, s, v, rc, fmt_duration) == 0)
        store_uint(obj, kw, v);
}

/* Returns 1 for true, 0 for false, -1 after reporting a non-boolean. */
static int parse_bool(struct parser *p, yaml_node_t *node)
{
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };
    const char *s = scalar(p, node, "a boolean");
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < AP_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    char shown[SHOW_MAX + 4];
    err(p, node, "expected a boolean (true/false, yes/no, on/off), got '%s'",
        show(shown, s, strlen(s)));
    return -1;
}

/* A nested mapping whose keys live in the same struct (kw->off from obj). A
 * null value (`key:` alone) is an empty mapping: every default applies. */
static int parse_section(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                         void *obj, struct seen *seen)
{
    if (seen != NULL)
        memset(seen, 0, MAX_KEYWORDS * sizeof(*seen));
    if (is_null(node))
        return 0;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping, got %s", type_name(node));
        return -EINVAL;
    }
    parse_table(p, node, kw->sub, (char *)obj + kw->off, seen);
    return 0;
}

static void kw_section(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    parse_section(p, kw, node, obj, NULL);
}

/* Calls `each` for a value that is one string or a list of strings; a null
 * value is an empty list. Returns the number of strings, or -1 when the
 * value is of the wrong type (reported). */
static long for_each_string(struct parser *p, yaml_node_t *node, const char *what,
                            void (*each)(struct parser *, yaml_node_t *, const char *, void *),
                            void *obj)
{
    if (is_null(node))
        return 0;
    if (node->type == YAML_SCALAR_NODE) {
        const char *s = scalar(p, node, what);
        if (s != NULL)
            each(p, node, s, obj);
        return 1;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        err(p, node, "expected %s or a list of them, got %s", what, type_name(node));
        return -1;
    }
    long count = 0;
    for (yaml_node_item_t *it = node->data.sequence.items.start;
         it < node->data.sequence.items.top; it++, count++) {
        yaml_node_t *item = node_at(p, *it);
        size_t saved = push_index(p, (size_t)count);
        const char *s = scalar(p, item, what);
        if (s != NULL)
            each(p, item, s, obj);
        pop(p, saved);
    }
    return count;
}

static size_t seq_len(const yaml_node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return 1;
}

/* Names of upstreams and routes end up in logs and metrics labels. */
static int is_valid_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

/* Addresses. */

/* Parses a decimal port 1..65535. */
static int parse_port(const char *s, size_t len, uint16_t *port)
{
    uint64_t v;
    if (parse_uint(s, len, &v) != 0 || v == 0 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* Fills a numeric sockaddr from a host literal (brackets removed); returns
 * -EINVAL when `host` is not a numeric IPv4 or IPv6 address. */
static int numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                        socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -EINVAL;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static int same_addr(const struct sockaddr_storage *a, socklen_t alen,
                     const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && alen > 0 && memcmp(a, b, alen) == 0;
}

/* Splits "host:port" or "[v6]:port" into a NUL-terminated host (brackets
 * removed) and the port text. Returns a message on failure. */
static const char *split_hostport(const char *s, char *host, size_t hostsz, const char **port,
                                  int *bracketed)
{
    const char *colon;
    *bracketed = s[0] == '[';
    if (*bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return "missing ']'";
        if ((size_t)(close - s - 1) >= hostsz)
            return "address too long";
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
        if (*colon != ':')
            return *colon == '\0' ? "missing port" : "expected ':' after ']'";
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return "missing port";
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return "IPv6 addresses must be written in brackets: [addr]:port";
        if ((size_t)(colon - s) >= hostsz)
            return "address too long";
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    *port = colon + 1;
    return NULL;
}

/* A host name as DNS allows it: dot-separated labels of letters, digits and
 * hyphens, no empty label, at most 253 characters. Underscores are accepted
 * because internal names use them. */
static int is_valid_hostname(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)c) || c == '_' || (c == '-' && label > 0)) {
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

/* "999.1.1.1" is neither an address nor a name (RFC 1123: top-level labels
 * are not all digits); refusing it keeps a typo from reaching DNS. */
static int has_numeric_tld(const char *s)
{
    const char *dot = strrchr(s, '.');
    const char *last = dot ? dot + 1 : s;
    return strspn(last, "0123456789") == strlen(last);
}

static void lowercase(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Root keys. */

static unsigned ncpus(const struct parser *p)
{
    long n = p->opts.ncpus ? (long)p->opts.ncpus : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > (long)MAX_WORKERS)
        n = MAX_WORKERS;
    return (unsigned)n;
}

static void kw_workers(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    const char *s = scalar(p, node, "'auto' or an integer");
    if (s == NULL)
        return;
    if (strcmp(s, "auto") == 0) {
        cfg->workers_auto = 1;
        cfg->workers = ncpus(p);
        return;
    }
    uint64_t v = 0;
    int rc = parse_uint(s, strlen(s), &v);
    if (rc == -EINVAL) {
        char shown[SHOW_MAX + 4];
        err(p, node, "expected 'auto' or an integer, got '%s'", show(shown, s, strlen(s)));
        return;
    }
    if (check_range(p, kw, node, s, v, rc, NULL) == 0) {
        cfg->workers_auto = 0;
        cfg->workers = (unsigned)v;
    }
}

static void kw_log_level(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    static const char *const levels[] = { "debug", "info", "warn", "error" };
    struct ap_config *cfg = obj;
    const char *s = scalar(p, node, "a log level");
    if (s == NULL)
        return;
    for (size_t i = 0; i < AP_ARRAY_SIZE(levels); i++) {
        if (strcmp(s, levels[i]) == 0) {
            char *d = xstrdup(p, levels[i]);
            if (d != NULL) {
                free(cfg->log_level);
                cfg->log_level = d;
            }
            return;
        }
    }
    char shown[SHOW_MAX + 4];
    err(p, node, "invalid log level '%s' (expected debug, info, warn or error)",
        show(shown, s, strlen(s)));
}

/* listen: a list of listeners. */

static void kw_listen_address(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    struct ap_config_listener *l = obj;
    const char *s = scalar(p, node, "an address");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4], host[128];
    const char *port_text, *why;
    int bracketed;
    uint16_t port;
    show(shown, s, strlen(s));
    why = split_hostport(s, host, sizeof(host), &port_text, &bracketed);
    if (why != NULL) {
        err(p, node, "invalid address '%s': %s (expected a.b.c.d:port or [ipv6]:port)", shown,
            why);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int ok = numeric_addr(host, 0, &ss, &len) == 0 &&
             (ss.ss_family == AF_INET6) == (bracketed != 0);
    if (!ok) {
        err(p, node, "invalid address '%s': %s", shown,
            bracketed ? "not a numeric IPv6 address"
                      : "not a numeric IPv4 address (host names are not allowed here)");
        return;
    }
    if (parse_port(port_text, strlen(port_text), &port) != 0) {
        char shown_port[SHOW_MAX + 4];
        err(p, node, "invalid port '%s' (expected 1..65535)",
            show(shown_port, port_text, strlen(port_text)));
        return;
    }
    set_port(&ss, port);
    for (const struct ap_config_listener *q = p->cfg->listeners; q < l; q++) {
        if (same_addr(&q->addr, q->addrlen, &ss, len)) {
            err(p, node, "duplicate listener address '%s' (first at %u:%u)", shown, q->pos.line,
                q->pos.col);
            return;
        }
    }
    l->address = xstrdup(p, s);
    if (l->address == NULL)
        return;
    l->addr = ss;
    l->addrlen = len;
}

static void kw_proxy_protocol(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    struct ap_config_listener *l = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        l->proxy_protocol = (unsigned)b;
}

static void pr_proxy_protocol(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent);
static void pr_integer(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_size(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_duration(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_string(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_section(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_string_list(struct printer *pr, const char *name, char *const *v, size_t n,
                           int indent);

/* listen[].tls: TLS termination. Certificates, keys and CA files are read
 * here, so that a bad file is reported at the key that names it (and by
 * `anonproxy -t`); proxy/tls.c reads them again when it builds its
 * contexts, and warns about expiry there. */

#define TLS_MAX_PEM_BYTES (4u * 1024u * 1024u)
#define MAX_TLS_CERTS 64u
#define MAX_TLS_NAMES 1000u
/* Mozilla's "intermediate" TLS 1.2 list without DHE: ECDHE with AES-GCM or
 * ChaCha20-Poly1305 only, ECDSA first. */
#define CFG_TLS_DEFAULT_CIPHERS                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                     \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                     \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CFG_TLS_DEFAULT_SUITES                                                     \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* The most useful text of OpenSSL's error queue, which is then cleared. */
static const char *tls_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r != NULL ? r : "unknown error";
}

/* Reads a PEM file of at most TLS_MAX_PEM_BYTES into a memory BIO, or
 * reports why not at `node`. */
static BIO *tls_read_file(struct parser *p, yaml_node_t *node, const char *path)
{
    char shown[SHOW_MAX + 4];
    show(shown, path, strlen(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        err(p, node, "%s: cannot open: %s", shown, strerror(errno));
        return NULL;
    }
    struct stat st;
    BIO *b = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err(p, node, "%s: not a regular file", shown);
    } else if ((uint64_t)st.st_size > TLS_MAX_PEM_BYTES) {
        err(p, node, "%s: file too large (over 4 MiB)", shown);
    } else if ((b = BIO_new(BIO_s_mem())) == NULL) {
        p->oom = 1;
    } else {
        char buf[8192];
        size_t total = 0;
        for (;;) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                break;
            /* st_size is 0 for /proc files of any length: count. */
            total += n > 0 ? (size_t)n : 0;
            if (n > 0 && total <= TLS_MAX_PEM_BYTES && BIO_write(b, buf, (int)n) == (int)n)
                continue;
            if (n < 0)
                err(p, node, "%s: cannot read: %s", shown, strerror(errno));
            else if (total > TLS_MAX_PEM_BYTES)
                err(p, node, "%s: file too large (over 4 MiB)", shown);
            else
                p->oom = 1;
            BIO_free(b);
            b = NULL;
            break;
        }
        /* Keys pass through here: leave no copy on the stack. */
        OPENSSL_cleanse(buf, sizeof(buf));
    }
    close(fd);
    return b;
}

/* Checks that `path` holds one or more PEM certificates. Returns the first
 * (the caller frees it) when `leaf` is set, and the count, or -1 after
 * reporting. */
static int tls_check_certs(struct parser *p, yaml_node_t *node, const char *path, X509 **leaf)
{
    char shown[SHOW_MAX + 4];
    show(shown, path, strlen(path));
    BIO *b = tls_read_file(p, node, path);
    if (b == NULL)
        return -1;
    int n = 0;
    ERR_clear_error();
    for (;;) {
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (x == NULL) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                if (n > 0)
                    break;
                err(p, node, "%s: no PEM certificate found", shown);
            } else {
                err(p, node, "%s: malformed PEM certificate: %s", shown, tls_reason());
            }
            n = -1;
            break;
        }
        if (n == 0 && leaf != NULL)
            *leaf = x;
        else
            X509_free(x);
        n++;
    }
    BIO_free(b);
    if (n < 0 && leaf != NULL && *leaf != NULL) {
        X509_free(*leaf);
        *leaf = NULL;
    }
    return n;
}

static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

static EVP_PKEY *tls_check_key(struct parser *p, yaml_node_t *node, const char *path)
{
    char shown[SHOW_MAX + 4];
    show(shown, path, strlen(path));
    BIO *b = tls_read_file(p, node, path);
    if (b == NULL)
        return NULL;
    /* OpenSSL's decoders say "unsupported" for a file that holds only a
     * certificate; say what is wrong instead. */
    char *data = NULL;
    long dlen = BIO_get_mem_data(b, &data);
    if (dlen <= 0 || memmem(data, (size_t)dlen, "PRIVATE KEY-----", 16) == NULL) {
        err(p, node, "%s: no PEM private key found", shown);
        BIO_free(b);
        return NULL;
    }
    ERR_clear_error();
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, NULL);
    BIO_free(b);
    if (k == NULL) {
        unsigned long e = ERR_peek_last_error();
        int pem = ERR_GET_LIB(e) == ERR_LIB_PEM;
        if (pem && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
            err(p, node, "%s: no PEM private key found", shown);
        else if (pem && ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ)
            err(p, node, "%s: encrypted private keys are not supported", shown);
        else
            err(p, node, "%s: malformed PEM private key: %s", shown, tls_reason());
        ERR_clear_error();
        return NULL;
    }
    int type = EVP_PKEY_get_base_id(k);
    if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) {
        err(p, node, "%s: unsupported key type (RSA or EC expected)", shown);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

/* Checks a certificate file and its key file, and that they match; the
 * errors name the keys `cert_kw` and `key_kw` of the current section. */
static void tls_check_pair(struct parser *p, const char *cert_kw, yaml_node_t *cert_node,
                           const char *cert, const char *key_kw, yaml_node_t *key_node,
                           const char *key)
{
    X509 *x = NULL;
    size_t saved = push_key(p, cert_kw);
    int n = tls_check_certs(p, cert_node, cert, &x);
    pop(p, saved);
    saved = push_key(p, key_kw);
    EVP_PKEY *k = tls_check_key(p, key_node, key);
    if (n > 0 && k != NULL && X509_check_private_key(x, k) != 1) {
        char shown_k[SHOW_MAX + 4], shown_c[SHOW_MAX + 4];
        ERR_clear_error();
        err(p, key_node, "%s: key does not match certificate %s",
            show(shown_k, key, strlen(key)), show(shown_c, cert, strlen(cert)));
    }
    pop(p, saved);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* A file path: a non-empty string stored (a copy) at kw->off. */
static void kw_file_path(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "a file path");
    if (s == NULL)
        return;
    if (*s == '\0') {
        err(p, node, "empty file path");
        return;
    }
    char *d = xstrdup(p, s);
    if (d == NULL)
        return;
    char **f = (char **)((char *)obj + kw->off);
    free(*f);
    *f = d;
}

/* A server name of a certificate: "a.example.com" or "*.example.com". */
static void add_tls_name(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_config_tls_cert *c = obj;
    char shown[SHOW_MAX + 4], name[256];
    show(shown, s, strlen(s));
    size_t len = strlen(s);
    const char *base = s[0] == '*' && s[1] == '.' ? s + 2 : s;
    if (len >= sizeof(name) || !is_valid_hostname(base) || has_numeric_tld(base) ||
        (base != s && strchr(base, '.') == NULL)) {
        err(p, node, "invalid server name '%s' (expected a host name or *.domain.tld)", shown);
        return;
    }
    memcpy(name, s, len + 1);
    lowercase(name);
    for (size_t i = 0; i < c->nnames; i++) {
        if (strcmp(c->names[i], name) == 0) {
            err(p, node, "duplicate server name '%s'", shown);
            return;
        }
    }
    char *d = xstrdup(p, name);
    if (d != NULL)
        c->names[c->nnames++] = d; /* kw_tls_names sized the array */
}

static void kw_tls_names(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_tls_cert *c = obj;
    size_t n = is_null(node) ? 0 : seq_len(node);
    if (n > MAX_TLS_NAMES) {
        err(p, node, "too many names (%zu, at most %u)", n, MAX_TLS_NAMES);
        return;
    }
    if (n > 0 && (c->names = xcalloc(p, n, sizeof(*c->names))) == NULL)
        return;
    for_each_string(p, node, "a server name", add_tls_name, c);
}

static int same_name_set(const struct ap_config_tls_cert *a, const struct ap_config_tls_cert *b)
{
    if (a->nnames != b->nnames)
        return 0;
    for (size_t i = 0; i < a->nnames; i++) {
        size_t j = 0;
        while (j < b->nnames && strcmp(a->names[i], b->names[j]) != 0)
            j++;
        if (j == b->nnames)
            return 0;
    }
    return 1;
}

static void pr_opt_string(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_tls_names(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent);
static void pr_tls_certificates(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent);
static void pr_tls_protocols(struct printer *pr, const struct keyword *kw, const void *obj,
                             int indent);
static void pr_tls_tickets(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent);
static void pr_listener_tls(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent);

/* Indexes 0..3 are relied on by kw_tls_certificates. */
static const struct keyword tls_cert_kws[] = {
    { "cert", kw_file_path, pr_string, FIELD(struct ap_config_tls_cert, cert),
      .flags = KW_REQUIRED },
    { "key", kw_file_path, pr_string, FIELD(struct ap_config_tls_cert, key),
      .flags = KW_REQUIRED },
    { "chain", kw_file_path, pr_opt_string, FIELD(struct ap_config_tls_cert, chain) },
    { "names", kw_tls_names, pr_tls_names, .flags = 0 },
    { .name = NULL },
};

static void kw_tls_certificates(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                void *obj)
{
    struct ap_config_tls_listener *t = obj;
    if (node->type != YAML_SEQUENCE_NODE && !is_null(node)) {
        err(p, node, "expected a list of certificates, got %s", type_name(node));
        return;
    }
    size_t n = is_null(node) ? 0 : seq_len(node);
    if (n == 0) {
        err(p, node, "at least one certificate is required");
        return;
    }
    if (n > MAX_TLS_CERTS) {
        err(p, node, "too many certificates (%zu, at most %u)", n, MAX_TLS_CERTS);
        return;
    }
    if ((t->certs = xcalloc(p, n, sizeof(*t->certs))) == NULL)
        return;
    AP_BUG_ON(strcmp(tls_cert_kws[0].name, "cert") != 0 || strcmp(tls_cert_kws[3].name, "names"));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        struct ap_config_tls_cert *c = &t->certs[t->ncerts++];
        c->pos = pos_of(item);
        size_t saved = push_index(p, i);
        if (item->type != YAML_MAPPING_NODE) {
            err(p, item, "expected a mapping, got %s", type_name(item));
            pop(p, saved);
            continue;
        }
        struct seen seen[MAX_KEYWORDS];
        parse_table(p, item, tls_cert_kws, c, seen);
        if (c->cert != NULL && c->key != NULL)
            tls_check_pair(p, "cert", seen[0].val, c->cert, "key", seen[1].val, c->key);
        if (c->chain != NULL) {
            size_t s2 = push_key(p, "chain");
            tls_check_certs(p, seen[2].val, c->chain, NULL);
            pop(p, s2);
        }
        /* Entries that share a name serve the same names, together (an
         * RSA and an ECDSA certificate); otherwise the choice would be
         * ambiguous. */
        for (size_t j = 0; j < i && c->nnames > 0; j++) {
            const struct ap_config_tls_cert *o = &t->certs[j];
            if (o->nnames == 0 || same_name_set(c, o))
                continue;
            for (size_t k = 0; k < c->nnames; k++) {
                size_t m = 0;
                while (m < o->nnames && strcmp(c->names[k], o->names[m]) != 0)
                    m++;
                if (m == o->nnames)
                    continue;
                size_t s2 = push_key(p, "names");
                err(p, seen[3].val,
                    "name '%s' is also in certificates[%zu], whose names differ (entries "
                    "that share a name must list the same names)",
                    c->names[k], j);
                pop(p, s2);
                j = i;
                break;
            }
        }
        pop(p, saved);
    }
}

static void add_tls_protocol(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_config_tls_listener *t = obj;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (strcasecmp(s, "TLSv1.2") == 0) {
        t->protocols |= AP_TLS_PROTO_TLS12;
    } else if (strcasecmp(s, "TLSv1.3") == 0) {
        t->protocols |= AP_TLS_PROTO_TLS13;
    } else if (strcasecmp(s, "SSLv2") == 0 || strcasecmp(s, "SSLv3") == 0 ||
               strcasecmp(s, "TLSv1") == 0 || strcasecmp(s, "TLSv1.0") == 0 ||
               strcasecmp(s, "TLSv1.1") == 0) {
        err(p, node, "'%s' is not supported (only TLSv1.2 and TLSv1.3 are)", shown);
    } else {
        err(p, node, "unknown protocol '%s' (expected TLSv1.2 or TLSv1.3)", shown);
    }
}

static void kw_tls_protocols(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                             void *obj)
{
    struct ap_config_tls_listener *t = obj;
    unsigned saved = t->protocols;
    t->protocols = 0;
    long n = for_each_string(p, node, "a protocol name", add_tls_protocol, t);
    if (n == 0)
        err(p, node, "at least one protocol is required");
    if (t->protocols == 0)
        t->protocols = saved;
}

/* Cipher strings are checked by OpenSSL itself, on a scratch context. */
static void kw_tls_cipher_string(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                 void *obj)
{
    const char *s = scalar(p, node, "an OpenSSL cipher string");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    int suites = strcmp(kw->name, "ciphersuites") == 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        p->oom = 1;
        return;
    }
    int ok = *s != '\0' &&
             (suites ? SSL_CTX_set_ciphersuites(ctx, s) : SSL_CTX_set_cipher_list(ctx, s)) == 1;
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (!ok) {
        err(p, node, suites ? "invalid TLS 1.3 cipher suites '%s' (e.g. TLS_AES_128_GCM_SHA256)"
                            : "no usable TLS 1.2 cipher in '%s' (e.g. ECDHE-RSA-AES128-GCM-SHA256)",
            shown);
        return;
    }
    kw_file_path(p, kw, node, obj);
}

static void kw_tls_tickets(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                           void *obj)
{
    struct ap_config_tls_listener *t = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        t->session_tickets = (unsigned)b;
}

static const struct keyword listener_tls_kws[] = {
    { "certificates", kw_tls_certificates, pr_tls_certificates, .flags = KW_REQUIRED },
    { "protocols", kw_tls_protocols, pr_tls_protocols, .flags = 0 },
    { "ciphers", kw_tls_cipher_string, pr_string, FIELD(struct ap_config_tls_listener, ciphers) },
    { "ciphersuites", kw_tls_cipher_string, pr_string,
      FIELD(struct ap_config_tls_listener, ciphersuites) },
    { "session_tickets", kw_tls_tickets, pr_tls_tickets, .flags = 0 },
    { "ticket_key_rotation", kw_duration, pr_duration,
      FIELD(struct ap_config_tls_listener, ticket_key_rotation_ms), .min = MINUTE_MS,
      .max = DAY_MS },
    { "session_cache", kw_integer, pr_integer,
      FIELD(struct ap_config_tls_listener, session_cache), .min = 0, .max = 10000000 },
    { "handshake_timeout", kw_duration, pr_duration,
      FIELD(struct ap_config_tls_listener, handshake_timeout_ms), .min = 1, .max = HOUR_MS },
    { .name = NULL },
};

static void kw_listener_tls(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                            void *obj)
{
    struct ap_config_listener *l = obj;
    if (node->type != YAML_MAPPING_NODE) {
        if (is_null(node))
            err(p, node, "missing required key 'certificates'");
        else
            err(p, node, "expected a mapping, got %s", type_name(node));
        return;
    }
    struct ap_config_tls_listener *t = xcalloc(p, 1, sizeof(*t));
    if (t == NULL)
        return;
    l->tls = t;
    t->protocols = AP_TLS_PROTO_TLS12 | AP_TLS_PROTO_TLS13;
    t->ciphers = xstrdup(p, CFG_TLS_DEFAULT_CIPHERS);
    t->ciphersuites = xstrdup(p, CFG_TLS_DEFAULT_SUITES);
    t->session_tickets = 1;
    t->ticket_key_rotation_ms = 12 * HOUR_MS;
    t->session_cache = 20000;
    t->handshake_timeout_ms = 10 * SECOND_MS;
    t->pos = pos_of(node);
    parse_table(p, node, listener_tls_kws, t, NULL);
}

static const struct keyword listener_kws[] = {
    { "address", kw_listen_address, pr_string, FIELD(struct ap_config_listener, address),
      .flags = KW_REQUIRED },
    { "proxy_protocol", kw_proxy_protocol, pr_proxy_protocol, .flags = 0 },
    { "backlog", kw_integer, pr_integer, FIELD(struct ap_config_listener, backlog), .min = 1,
      .max = 65535 },
    { "tls", kw_listener_tls, pr_listener_tls, .flags = 0 },
    { .name = NULL },
};

/* Length of a required, non-empty, capped list of `what` (plural), or 0
 * after reporting why it is not one. */
static size_t required_list_len(struct parser *p, yaml_node_t *node, const char *what,
                                const char *one, size_t max)
{
    if (node->type != YAML_SEQUENCE_NODE && !is_null(node)) {
        err(p, node, "expected a list of %s, got %s", what, type_name(node));
        return 0;
    }
    size_t n = is_null(node) ? 0 : seq_len(node);
    if (n == 0) {
        err(p, node, "at least one %s is required", one);
        return 0;
    }
    if (n > max) {
        err(p, node, "too many %s (%zu, at most %zu)", what, n, max);
        return 0;
    }
    return n;
}

static void kw_listen(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    size_t n = required_list_len(p, node, "listeners", "listener", MAX_LISTENERS);
    if (n == 0)
        return;
    cfg->listeners = xcalloc(p, n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        struct ap_config_listener *l = &cfg->listeners[cfg->nlisteners++];
        l->backlog = 511;
        l->pos = pos_of(item);
        size_t saved = push_index(p, i);
        if (item->type != YAML_MAPPING_NODE)
            err(p, item, "expected a mapping, got %s", type_name(item));
        else
            parse_table(p, item, listener_kws, l, NULL);
        pop(p, saved);
    }
}

/* upstreams: a mapping of names to upstreams. */

/* Resolves a host name through the cache, so each name costs one lookup
 * however often it appears (aliases can repeat one node many times). */
static int resolve(struct parser *p, const char *host, struct sockaddr_storage *ss,
                   socklen_t *len, const char **why)
{
    for (size_t i = 0; i < p->ncache; i++) {
        struct resolved *r = &p->cache[i];
        if (strcmp(r->host, host) == 0) {
            *ss = r->addr;
            *len = r->addrlen;
            *why = r->why;
            return r->rc;
        }
    }
    struct resolved r = { 0 };
    if (p->opts.resolve != NULL) {
        r.rc = p->opts.resolve(p->opts.ctx, host, &r.addr, &r.addrlen, &r.why);
    } else {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host, NULL, &hints, &res);
        if (gai != 0 || res == NULL || res->ai_addrlen > sizeof(r.addr)) {
            r.rc = -ENOENT;
            r.why = gai != 0 ? gai_strerror(gai) : "no usable address";
        } else {
            memcpy(&r.addr, res->ai_addr, res->ai_addrlen);
            r.addrlen = res->ai_addrlen;
        }
        if (res != NULL)
            freeaddrinfo(res);
    }
    if (r.rc != 0 && r.why == NULL)
        r.why = "unknown error";
    struct resolved *nc = realloc(p->cache, (p->ncache + 1) * sizeof(*nc));
    r.host = strdup(host);
    if (nc == NULL || r.host == NULL) {
        if (nc != NULL)
            p->cache = nc;
        free(r.host);
        p->oom = 1;
        return -ENOMEM;
    }
    p->cache = nc;
    p->cache[p->ncache++] = r;
    *ss = r.addr;
    *len = r.addrlen;
    *why = r.why;
    return r.rc;
}

/* Parses "http://host[:port][/]" into `srv`; reports and returns -EINVAL. */
static int parse_server_url(struct parser *p, yaml_node_t *node, const char *url,
                            struct ap_config_server *srv)
{
    char shown[SHOW_MAX + 4];
    show(shown, url, strlen(url));
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        err(p, node, "invalid server URL '%s' (expected http://host[:port])", shown);
        return -EINVAL;
    }
    size_t slen = (size_t)(sep - url);
    int https = slen == 5 && strncasecmp(url, "https", 5) == 0;
    if (!https && (slen != 4 || strncasecmp(url, "http", 4) != 0)) {
        err(p, node, "unsupported scheme in server URL '%s' (expected http:// or https://)",
            shown);
        return -EINVAL;
    }
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (memchr(auth, '@', alen) != NULL) {
        err(p, node, "user info is not allowed in server URL '%s'", shown);
        return -EINVAL;
    }
    if (strchr(rest, '?') != NULL) {
        err(p, node, "a query is not allowed in server URL '%s'", shown);
        return -EINVAL;
    }
    if (strchr(rest, '#') != NULL) {
        err(p, node, "a fragment is not allowed in server URL '%s'", shown);
        return -EINVAL;
    }
    if (rest[0] != '\0' && strcmp(rest, "/") != 0) {
        err(p, node, "a path is not allowed in server URL '%s'", shown);
        return -EINVAL;
    }
    if (alen == 0 || alen > 300) {
        err(p, node, "invalid host in server URL '%s'", shown);
        return -EINVAL;
    }
    char a[301], host[301];
    memcpy(a, auth, alen);
    a[alen] = '\0';
    uint16_t port = https ? 443 : 80;
    int v6 = a[0] == '[';
    const char *port_text = NULL;
    if (v6) {
        char *close = strchr(a, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            err(p, node, "invalid host in server URL '%s'", shown);
            return -EINVAL;
        }
        *close = '\0';
        memcpy(host, a + 1, (size_t)(close - a));
        if (close[1] == ':')
            port_text = close + 2;
    } else {
        char *colon = strchr(a, ':');
        if (colon != NULL) {
            *colon = '\0';
            port_text = colon + 1;
        }
        memcpy(host, a, strlen(a) + 1);
    }
    if (port_text != NULL && parse_port(port_text, strlen(port_text), &port) != 0) {
        char shown_port[SHOW_MAX + 4];
        err(p, node, "invalid port '%s' in server URL '%s' (expected 1..65535)",
            show(shown_port, port_text, strlen(port_text)), shown);
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int numeric = numeric_addr(host, port, &ss, &len) == 0;
    if (v6 ? !numeric || ss.ss_family != AF_INET6
           : (numeric && ss.ss_family != AF_INET) ||
                 (!numeric && (!is_valid_hostname(host) || has_numeric_tld(host)))) {
        err(p, node, "invalid host in server URL '%s'", shown);
        return -EINVAL;
    }
    lowercase(host);
    if (!numeric) {
        const char *why = NULL;
        int rc = resolve(p, host, &ss, &len, &why);
        if (rc == -ENOMEM)
            return rc;
        if (rc != 0) {
            char shown_host[SHOW_MAX + 4];
            err(p, node, "cannot resolve '%s': %s", show(shown_host, host, strlen(host)), why);
            return -EINVAL;
        }
        set_port(&ss, port);
    }
    char authority[320];
    if (port == (https ? 443 : 80))
        snprintf(authority, sizeof(authority), v6 ? "[%s]" : "%s", host);
    else
        snprintf(authority, sizeof(authority), v6 ? "[%s]:%u" : "%s:%u", host, port);
    srv->url = xstrdup(p, url);
    srv->host = xstrdup(p, host);
    srv->authority = xstrdup(p, authority);
    srv->port = port;
    srv->tls = (unsigned)https;
    srv->addr = ss;
    srv->addrlen = len;
    return 0;
}

static void add_server(struct parser *p, yaml_node_t *node, const char *url, void *obj)
{
    struct ap_config_upstream *u = obj;
    /* kw_servers sized the array for every item. */
    struct ap_config_server *srv = &u->servers[u->nservers];
    if (parse_server_url(p, node, url, srv) == 0)
        u->nservers++;
}

static void kw_servers(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_upstream *u = obj;
    u->kind = AP_UPSTREAM_HTTP;
    if (is_null(node) || seq_len(node) == 0) {
        err(p, node, "at least one server is required");
        return;
    }
    if (seq_len(node) > MAX_SERVERS) {
        err(p, node, "too many servers (%zu, at most %u)", seq_len(node), MAX_SERVERS);
        return;
    }
    u->servers = xcalloc(p, seq_len(node), sizeof(*u->servers));
    if (u->servers == NULL)
        return;
    for_each_string(p, node, "a server URL", add_server, u);
}

static void kw_file(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_upstream *u = obj;
    u->kind = AP_UPSTREAM_FILE;
    const char *s = scalar(p, node, "a file path");
    if (s == NULL)
        return;
    if (*s == '\0') {
        err(p, node, "empty file path");
        return;
    }
    u->file_path = xstrdup(p, s);
}

static void kw_host_mode(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_upstream *u = obj;
    const char *s = scalar(p, node, "'upstream' or 'preserve'");
    if (s == NULL)
        return;
    if (strcmp(s, "upstream") == 0 || strcmp(s, "preserve") == 0) {
        u->preserve_host = s[0] == 'p';
        return;
    }
    char shown[SHOW_MAX + 4];
    err(p, node, "invalid host mode '%s' (expected upstream or preserve)",
        show(shown, s, strlen(s)));
}

static void pr_servers(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_file(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_host_mode(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent);


/* upstreams.NAME.tls: how the https servers of an upstream are checked. */

static void kw_upstream_verify(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct ap_config_upstream_tls *t = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        t->verify = (unsigned)b;
}

static void kw_upstream_server_name(struct parser *p, const struct keyword *kw,
                                    yaml_node_t *node, void *obj)
{
    struct ap_config_upstream_tls *t = obj;
    const char *s = scalar(p, node, "a host name");
    if (s == NULL)
        return;
    if (!is_valid_hostname(s) || has_numeric_tld(s)) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid server name '%s' (expected a host name)", show(shown, s, strlen(s)));
        return;
    }
    char *d = xstrdup(p, s);
    if (d == NULL)
        return;
    lowercase(d);
    free(t->server_name);
    t->server_name = d;
}

static void pr_opt_string(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_upstream_verify(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent);
static void pr_upstream_tls(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent);

/* Indexes are relied on by kw_upstream_tls. */
static const struct keyword upstream_tls_kws[] = {
    { "ca_file", kw_file_path, pr_opt_string, FIELD(struct ap_config_upstream_tls, ca_file) },
    { "verify", kw_upstream_verify, pr_upstream_verify, .flags = 0 },
    { "server_name", kw_upstream_server_name, pr_opt_string,
      FIELD(struct ap_config_upstream_tls, server_name) },
    { "client_cert", kw_file_path, pr_opt_string,
      FIELD(struct ap_config_upstream_tls, client_cert) },
    { "client_key", kw_file_path, pr_opt_string,
      FIELD(struct ap_config_upstream_tls, client_key) },
    { .name = NULL },
};

/* A client-side tls: section, shared by upstreams and the http log sink. */
static void parse_client_tls(struct parser *p, yaml_node_t *node, struct ap_config_upstream_tls *t)
{
    t->set = 1;
    t->pos = pos_of(node);
    if (is_null(node))
        return;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping, got %s", type_name(node));
        return;
    }
    struct seen seen[MAX_KEYWORDS];
    parse_table(p, node, upstream_tls_kws, t, seen);
    AP_BUG_ON(strcmp(upstream_tls_kws[0].name, "ca_file") != 0 ||
              strcmp(upstream_tls_kws[3].name, "client_cert") != 0 ||
              strcmp(upstream_tls_kws[4].name, "client_key") != 0);
    if (t->ca_file != NULL) {
        size_t s2 = push_key(p, "ca_file");
        tls_check_certs(p, seen[0].val, t->ca_file, NULL);
        pop(p, s2);
    }
    if ((seen[3].key != NULL) != (seen[4].key != NULL)) {
        int has_cert = seen[3].key != NULL;
        size_t s2 = push_key(p, has_cert ? "client_cert" : "client_key");
        err(p, has_cert ? seen[3].key : seen[4].key, "needs '%s' too",
            has_cert ? "client_key" : "client_cert");
        pop(p, s2);
    } else if (t->client_cert != NULL && t->client_key != NULL) {
        tls_check_pair(p, "client_cert", seen[3].val, t->client_cert, "client_key", seen[4].val,
                       t->client_key);
    }
}

static void kw_upstream_tls(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                            void *obj)
{
    struct ap_config_upstream *u = obj;
    parse_client_tls(p, node, &u->tls);
}

static int has_https_server(const struct ap_config_upstream *u)
{
    for (size_t i = 0; i < u->nservers; i++)
        if (u->servers[i].tls)
            return 1;
    return 0;
}

static const struct keyword keepalive_kws[] = {
    { "max_idle", kw_integer, pr_integer, FIELD(struct ap_config_upstream, keepalive_max_idle),
      .min = 0, .max = 100000 },
    { "idle_timeout", kw_duration, pr_duration,
      FIELD(struct ap_config_upstream, keepalive_idle_timeout_ms), .min = 1, .max = DAY_MS },
    { .name = NULL },
};

/* "file" and "servers" come first: the kind is known when the others run. */
static const struct keyword upstream_kws[] = {
    { "file", kw_file, pr_file, .flags = KW_FILE_ONLY },
    { "servers", kw_servers, pr_servers, .flags = KW_SERVERS_ONLY },
    { "keepalive", kw_section, pr_section, .off = 0, .sub = keepalive_kws,
      .flags = KW_SERVERS_ONLY },
    { "max_fails", kw_integer, pr_integer, FIELD(struct ap_config_upstream, max_fails), .min = 0,
      .max = 1000, .flags = KW_SERVERS_ONLY },
    { "fail_timeout", kw_duration, pr_duration, FIELD(struct ap_config_upstream, fail_timeout_ms),
      .min = 1, .max = DAY_MS, .flags = KW_SERVERS_ONLY },
    { "host", kw_host_mode, pr_host_mode, .flags = KW_SERVERS_ONLY },
    { "tls", kw_upstream_tls, pr_upstream_tls, .flags = KW_SERVERS_ONLY },
    { .name = NULL },
};

static void parse_upstream(struct parser *p, yaml_node_t *key, yaml_node_t *val,
                           struct ap_config_upstream *u)
{
    struct ap_config *cfg = p->cfg;
    u->keepalive_max_idle = 32;
    u->keepalive_idle_timeout_ms = 60 * SECOND_MS;
    u->max_fails = 1;
    u->fail_timeout_ms = 10 * SECOND_MS;
    u->tls.verify = 1;
    u->pos = pos_of(key);

    const char *name = scalar(p, key, "an upstream name");
    if (name == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, name, strlen(name));
    if (!is_valid_name(name)) {
        err(p, key, "invalid upstream name '%s' (letters, digits, '_', '-', '.'; at most 64)",
            shown);
    } else {
        for (const struct ap_config_upstream *q = cfg->upstreams; q < u; q++) {
            if (q->name != NULL && strcmp(q->name, name) == 0) {
                err(p, key, "duplicate upstream name '%s' (first at %u:%u)", shown, q->pos.line,
                    q->pos.col);
                break;
            }
        }
    }
    /* Kept even when invalid, so routes naming it get no second error. */
    u->name = xstrdup(p, name);

    size_t saved = push_key(p, name);
    if (val->type != YAML_MAPPING_NODE) {
        err(p, val, "expected a mapping, got %s", is_null(val) ? "nothing" : type_name(val));
        pop(p, saved);
        return;
    }
    struct seen seen[MAX_KEYWORDS];
    parse_table(p, val, upstream_kws, u, seen);
    size_t ifile = 0, iservers = 1;
    AP_BUG_ON(strcmp(upstream_kws[ifile].name, "file") != 0 ||
              strcmp(upstream_kws[iservers].name, "servers") != 0);
    if (seen[ifile].key != NULL && seen[iservers].key != NULL) {
        err(p, key, "both 'file' and 'servers' are set, an upstream has one or the other");
    } else if (seen[ifile].key == NULL && seen[iservers].key == NULL) {
        err(p, key, "either 'file' or 'servers' is required");
    } else if (u->kind == AP_UPSTREAM_FILE) {
        for (size_t i = 0; upstream_kws[i].name != NULL; i++) {
            if ((upstream_kws[i].flags & KW_SERVERS_ONLY) && seen[i].key != NULL) {
                size_t s2 = push_key(p, upstream_kws[i].name);
                err(p, seen[i].key, "only applies to upstreams with 'servers'");
                pop(p, s2);
            }
        }
    } else if (u->tls.set && u->nservers > 0 && !has_https_server(u)) {
        for (size_t i = 0; upstream_kws[i].name != NULL; i++) {
            if (strcmp(upstream_kws[i].name, "tls") == 0 && seen[i].key != NULL) {
                size_t s2 = push_key(p, "tls");
                err(p, seen[i].key, "only applies to upstreams with https:// servers");
                pop(p, s2);
            }
        }
    }
    pop(p, saved);
}

static void kw_upstreams(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    if (node->type != YAML_MAPPING_NODE && !is_null(node)) {
        err(p, node, "expected a mapping of upstream names, got %s", type_name(node));
        p->upstreams_bad = 1;
        return;
    }
    size_t n = is_null(node) ? 0
                             : (size_t)(node->data.mapping.pairs.top -
                                        node->data.mapping.pairs.start);
    if (n == 0) {
        err(p, node, "at least one upstream is required");
        p->upstreams_bad = 1;
        return;
    }
    if (n > MAX_UPSTREAMS) {
        err(p, node, "too many upstreams (%zu, at most %u)", n, MAX_UPSTREAMS);
        p->upstreams_bad = 1;
        return;
    }
    cfg->upstreams = xcalloc(p, n, sizeof(*cfg->upstreams));
    if (cfg->upstreams == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *pair = &node->data.mapping.pairs.start[i];
        struct ap_config_upstream *u = &cfg->upstreams[cfg->nupstreams++];
        parse_upstream(p, node_at(p, pair->key), node_at(p, pair->value), u);
    }
}

/* limits: a plain section plus one cross-check. */

static const struct keyword limits_kws[] = {
    { "header_line_bytes", kw_size, pr_size, FIELD(struct ap_config_limits, header_line_bytes),
      .min = 64, .max = MiB },
    { "header_bytes", kw_size, pr_size, FIELD(struct ap_config_limits, header_bytes), .min = 64,
      .max = 16 * MiB },
    { "header_count", kw_integer, pr_integer, FIELD(struct ap_config_limits, header_count),
      .min = 1, .max = 10000 },
    { "target_bytes", kw_size, pr_size, FIELD(struct ap_config_limits, target_bytes), .min = 16,
      .max = MiB },
    { "body_bytes", kw_size, pr_size, FIELD(struct ap_config_limits, body_bytes), .min = 0,
      .max = TiB },
    { "connections_per_worker", kw_integer, pr_integer,
      FIELD(struct ap_config_limits, connections_per_worker), .min = 1, .max = 1000000 },
    { .name = NULL },
};

static void kw_limits(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    struct seen seen[MAX_KEYWORDS];
    if (parse_section(p, kw, node, obj, seen) != 0)
        return;
    const struct ap_config_limits *l = &cfg->limits;
    if (l->header_line_bytes <= l->header_bytes)
        return;
    /* Blame the key the user wrote; index 0 and 1 are the two in conflict. */
    char a[32], b[32];
    if (seen[0].val != NULL) {
        size_t saved = push_key(p, "header_line_bytes");
        err(p, seen[0].val, "%s is larger than header_bytes (%s)",
            fmt_size(a, l->header_line_bytes), fmt_size(b, l->header_bytes));
        pop(p, saved);
    } else {
        size_t saved = push_key(p, "header_bytes");
        err(p, seen[1].val, "%s is smaller than header_line_bytes (%s)",
            fmt_size(a, l->header_bytes), fmt_size(b, l->header_line_bytes));
        pop(p, saved);
    }
}

/* routes: a list, first match wins. */

static void add_host(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_config_route *r = obj;
    char shown[SHOW_MAX + 4];
    const char *name = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    int ok;
    if (s[0] == '[') {
        /* A bracketed IPv6 literal, as a Host header carries it. */
        size_t len = strlen(s);
        char inner[64];
        ok = len >= 3 && len - 2 < sizeof(inner) && s[len - 1] == ']';
        if (ok) {
            memcpy(inner, s + 1, len - 2);
            inner[len - 2] = '\0';
            struct in6_addr a6;
            ok = inet_pton(AF_INET6, inner, &a6) == 1;
        }
    } else {
        ok = is_valid_hostname(name);
    }
    if (!ok) {
        err(p, node, "invalid host pattern '%s' (expected a host name, \"*.\" and a domain, or "
                     "[ipv6]; no port)", show(shown, s, strlen(s)));
        return;
    }
    char *d = xstrdup(p, s);
    if (d == NULL)
        return;
    lowercase(d);
    r->hosts[r->nhosts++] = d;
}

static void kw_hosts(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_route *r = obj;
    r->hosts = xcalloc(p, seq_len(node), sizeof(*r->hosts));
    if (r->hosts != NULL)
        for_each_string(p, node, "a host pattern", add_host, r);
}

/* RFC 9110 token characters, what a method name is made of. */
static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return 0;
    return 1;
}

static void add_method(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_config_route *r = obj;
    if (!is_token(s) || strlen(s) > 32) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid method '%s' (expected a token such as GET)",
            show(shown, s, strlen(s)));
        return;
    }
    char *d = xstrdup(p, s);
    if (d == NULL)
        return;
    for (char *c = d; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    r->methods[r->nmethods++] = d;
}

static void kw_methods(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_route *r = obj;
    r->methods = xcalloc(p, seq_len(node), sizeof(*r->methods));
    if (r->methods != NULL)
        for_each_string(p, node, "a method", add_method, r);
}

static void kw_path(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_route *r = obj;
    const char *s = scalar(p, node, "a path prefix");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    if (s[0] != '/') {
        err(p, node, "path prefix '%s' must start with '/'", show(shown, s, strlen(s)));
        return;
    }
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '?' || *c == '#') {
            err(p, node, "invalid character in path prefix '%s'", show(shown, s, strlen(s)));
            return;
        }
    }
    char *d = xstrdup(p, s);
    if (d != NULL) {
        free(r->path_prefix);
        r->path_prefix = d;
    }
}

static void kw_route_name(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                          void *obj)
{
    struct ap_config_route *r = obj;
    const char *s = scalar(p, node, "a route name");
    if (s == NULL)
        return;
    if (!is_valid_name(s)) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid route name '%s' (letters, digits, '_', '-', '.'; at most 64)",
            show(shown, s, strlen(s)));
        return;
    }
    r->name = xstrdup(p, s);
}

static void kw_route_upstream(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    struct ap_config_route *r = obj;
    const struct ap_config *cfg = p->cfg;
    const char *s = scalar(p, node, "an upstream name");
    if (s == NULL)
        return;
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const char *name = cfg->upstreams[i].name;
        if (name == NULL)
            continue;
        if (strcmp(name, s) == 0) {
            r->upstream = &cfg->upstreams[i];
            return;
        }
        size_t d = p->nerrors < AP_CONFIG__MAX_ERRORS ? edit_distance(s, name) : SIZE_MAX;
        if (d < best_d) {
            best_d = d;
            best = name;
        }
    }
    if (p->upstreams_bad || cfg->nupstreams == 0)
        return; /* already reported; every route would repeat it */
    char shown[SHOW_MAX + 4], shown_best[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (best != NULL)
        err(p, node, "unknown upstream '%s', did you mean '%s'?", shown,
            show(shown_best, best, strlen(best)));
    else
        err(p, node, "unknown upstream '%s'", shown);
}

/* routes[].privacy: the route's privacy policy (proxy/engine/policy.c). The
 * keys are parsed straight into a struct ap_policy that build_policy has
 * begun with ap_policy_init; build_policy finishes it afterwards. */

/* Rules per map (headers, cookies, query, url_keep, remove_headers). The
 * engine tries them in turn for every header and parameter, and their
 * duplicate check is pairwise, so the cap stays small. */
#define MAX_RULES 256u
/* All routes together: aliases can give thousands of routes one big map,
 * and each route's policy holds its own copy of it. */
#define MAX_TOTAL_RULES 100000u
#define MAX_SITE_ID 255u

/* Headers the proxy writes or strips itself (ap_head_parse leaves them out
 * of the request): a rule for one could only duplicate or contradict it. */
static int is_managed_header(const char *name)
{
    static const char *const managed[] = { "host", "content-length", "expect" };
    for (size_t i = 0; i < AP_ARRAY_SIZE(managed); i++)
        if (strcasecmp(name, managed[i]) == 0)
            return 1;
    return ap_head_is_hop_by_hop((struct ap_slice){ name, strlen(name) });
}

static int has_wildcard(const char *glob)
{
    return strpbrk(glob, "*?") != NULL;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Reports a name that none of policy.c's parsers knew: the valid names, and
 * the closest one when it is near enough to be a typo. */
static void bad_name(struct parser *p, yaml_node_t *node, const char *what, const char *s,
                     const char *const *names, size_t n)
{
    char list[512] = "", shown[SHOW_MAX + 4], shown_best[SHOW_MAX + 4], lower[65];
    size_t off = 0, best_d = 3;
    const char *best = NULL;
    /* The names are lower case; "Drop" is a near miss, not a stranger. */
    size_t ln = strlen(s) < 64 ? strlen(s) : 64;
    for (size_t i = 0; i < ln; i++)
        lower[i] = (char)tolower((unsigned char)s[i]);
    lower[ln] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", names[i]);
        if (w > 0 && (size_t)w < sizeof(list) - off)
            off += (size_t)w;
        size_t d = strlen(s) <= 64 ? edit_distance(lower, names[i]) : SIZE_MAX;
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    show(shown, s, strlen(s));
    if (best != NULL)
        err(p, node, "unknown %s '%s', did you mean '%s'? (expected one of: %s)", what, shown,
            show(shown_best, best, strlen(best)), list);
    else
        err(p, node, "unknown %s '%s' (expected one of: %s)", what, shown, list);
}

/* A pseudonym length: a number of bits in range that hex digits spell
 * exactly. Used by pseudonyms.bits and privacy.pseudonym_bits. */
static void kw_bits(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "a number of bits");
    if (s == NULL)
        return;
    uint64_t v = 0;
    int rc = parse_uint(s, strlen(s), &v);
    char shown[SHOW_MAX + 4];
    if (rc == -EINVAL) {
        err(p, node, "expected an integer, got '%s'", show(shown, s, strlen(s)));
        return;
    }
    if (check_range(p, kw, node, s, v, rc, NULL) != 0)
        return;
    if (v % 4 != 0) {
        err(p, node, "'%s' is not a multiple of 4 (pseudonyms are written in hex digits)",
            show(shown, s, strlen(s)));
        return;
    }
    store_uint(obj, kw, v);
}

/* Parsed by build_policy before the policy exists, since ap_policy_init
 * takes the profile; the table entry is there for the key checks and the
 * printer. */
static void kw_profile(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
}

static int parse_profile(struct parser *p, yaml_node_t *node, enum ap_profile *out)
{
    const char *s = scalar(p, node, "a profile name");
    if (s == NULL)
        return -EINVAL;
    if (ap_policy_profile_parse(s, out) == 0)
        return 0;
    const char *names[AP_PROFILE_BALANCED + 1];
    for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
        names[i] = ap_policy_profile_name((enum ap_profile)i);
    bad_name(p, node, "profile", s, names, AP_ARRAY_SIZE(names));
    return -EINVAL;
}

static void kw_site_id(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_policy *pol = obj;
    if (is_null(node))
        return; /* explicitly unset: the request's Host */
    const char *s = scalar(p, node, "a site id");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    if (*s == '\0' || strlen(s) > MAX_SITE_ID || has_control(s)) {
        err(p, node, "invalid site id '%s' (1..%u characters, no control characters)",
            show(shown, s, strlen(s)), MAX_SITE_ID);
        return;
    }
    char *d = xstrdup(p, s);
    if (d != NULL) {
        free(pol->site_id);
        pol->site_id = d;
    }
}

static void kw_client_address(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    struct ap_policy *pol = obj;
    const char *s = scalar(p, node, "a client address mode");
    if (s == NULL)
        return;
    if (ap_policy_addr_mode_parse(s, &pol->addr_mode) == 0)
        return;
    const char *names[AP_ADDR_PSEUDO + 1];
    for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
        names[i] = ap_policy_addr_mode_name((enum ap_addr_mode)i);
    bad_name(p, node, "client address mode", s, names, AP_ARRAY_SIZE(names));
}

/* A header name for address_header and remove_headers: a token the proxy
 * does not manage itself. Returns 0 or reports. */
static int check_header_name(struct parser *p, yaml_node_t *node, const char *s)
{
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (!is_token(s) || strlen(s) > 256) {
        err(p, node, "invalid header name '%s' (expected a token such as X-Forwarded-For)",
            shown);
        return -EINVAL;
    }
    if (is_managed_header(s)) {
        err(p, node, "'%s' is managed by the proxy itself", shown);
        return -EINVAL;
    }
    return 0;
}

static void kw_address_header(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    struct ap_policy *pol = obj;
    const char *s = scalar(p, node, "a header name");
    if (s == NULL || check_header_name(p, node, s) != 0)
        return;
    if (strcasecmp(s, "Forwarded") == 0) {
        /* The engine writes a bare address; Forwarded needs "for=". */
        err(p, node, "Forwarded needs the RFC 7239 syntax, which this header does not get; "
                     "use X-Forwarded-For or X-Real-IP");
        return;
    }
    char *d = xstrdup(p, s);
    if (d != NULL) {
        free(pol->addr_header);
        pol->addr_header = d;
    }
}

static void add_remove_header(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_policy *pol = obj;
    if (check_header_name(p, node, s) != 0)
        return;
    if (ap_policy_add_remove_header(pol, s) != 0)
        p->oom = 1;
}

/* Returns 0 when a map or list of `n` entries fits MAX_RULES and what is
 * left of MAX_TOTAL_RULES (which it then takes), or reports. */
static int check_rule_count(struct parser *p, yaml_node_t *node, size_t n)
{
    if (n > MAX_RULES) {
        err(p, node, "too many entries (%zu, at most %u)", n, MAX_RULES);
        return -E2BIG;
    }
    if (n > MAX_TOTAL_RULES - p->privacy_rules) {
        err(p, node, "too many privacy rules in all routes together (at most %u)",
            MAX_TOTAL_RULES);
        return -E2BIG;
    }
    p->privacy_rules += n;
    return 0;
}

static void kw_remove_headers(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    if (check_rule_count(p, node, seq_len(node)) == 0)
        for_each_string(p, node, "a header name", add_remove_header, obj);
}

/* A glob of query parameter names (decoded, so any byte but controls). A
 * click id is refused: the engine drops those whatever a rule says. */
static int check_param_glob(struct parser *p, yaml_node_t *node, const char *s)
{
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (*s == '\0' || strlen(s) > 256 || has_control(s)) {
        err(p, node, "invalid parameter name '%s' (1..256 characters, no control characters)",
            shown);
        return -EINVAL;
    }
    if (!has_wildcard(s) && ap_query_is_click_id(s, strlen(s))) {
        err(p, node, "'%s' is a click id: click ids are always dropped", shown);
        return -EINVAL;
    }
    return 0;
}

static void add_url_keep(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_policy *pol = obj;
    if (check_param_glob(p, node, s) == 0 && ap_policy_add_url_keep(pol, s) != 0)
        p->oom = 1;
}

static void kw_url_keep(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    if (is_null(node))
        return; /* explicitly unset: the default list */
    if (node->type == YAML_SEQUENCE_NODE && seq_len(node) == 0) {
        /* ap_policy_add_url_keep cannot express "keep nothing": no call
         * leaves the default list in force, which is not what [] says. */
        err(p, node, "an empty list is not supported; leave the key out to keep the default "
                     "(utm_source, utm_medium, utm_campaign)");
        return;
    }
    if (check_rule_count(p, node, seq_len(node)) == 0)
        for_each_string(p, node, "a parameter name", add_url_keep, obj);
}

/* Walks an ordered map of glob -> action for headers, cookies and query:
 * checks its shape, size and duplicate keys, then calls `each` for every
 * pair with the key path extended by the glob. Duplicates are compared
 * with `cmp` (header names are case-insensitive, the others are not). */
static void for_each_rule(struct parser *p, yaml_node_t *node, const char *what,
                          int (*cmp)(const char *, const char *),
                          void (*each)(struct parser *, yaml_node_t *key, const char *glob,
                                       yaml_node_t *val, void *obj),
                          void *obj)
{
    if (is_null(node))
        return;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping of %s to actions, got %s", what, type_name(node));
        return;
    }
    yaml_node_pair_t *start = node->data.mapping.pairs.start;
    size_t n = (size_t)(node->data.mapping.pairs.top - start);
    if (check_rule_count(p, node, n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key = node_at(p, start[i].key);
        yaml_node_t *val = node_at(p, start[i].value);
        const char *glob = scalar(p, key, "a name");
        if (glob == NULL)
            continue;
        /* An empty name would leave a dangling "." in the key path. */
        size_t saved = glob[0] != '\0' ? push_key(p, glob) : p->pathlen;
        size_t j;
        for (j = 0; j < i; j++) {
            yaml_node_t *k2 = node_at(p, start[j].key);
            if (k2->type == YAML_SCALAR_NODE && cmp((const char *)k2->data.scalar.value, glob) == 0)
                break;
        }
        if (j < i) {
            char shown[SHOW_MAX + 4];
            err(p, key, "duplicate rule '%s' (first at %u:%u)", show(shown, glob, strlen(glob)),
                pos_of(node_at(p, start[j].key)).line, pos_of(node_at(p, start[j].key)).col);
        } else {
            each(p, key, glob, val, obj);
        }
        pop(p, saved);
    }
}

/* A header value for `set`: visible characters, spaces and tabs inside,
 * never a line break (it would split the header). */
static int is_header_value(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static void add_header_rule(struct parser *p, yaml_node_t *key, const char *glob,
                            yaml_node_t *val, void *obj)
{
    struct ap_policy *pol = obj;
    char shown[SHOW_MAX + 4];
    show(shown, glob, strlen(glob));
    for (const char *c = glob; *c; c++) {
        if (!ap_head_is_tchar((unsigned char)*c) && *c != '?') {
            err(p, key, "invalid header name '%s' (a token, where '*' and '?' are wildcards)",
                shown);
            return;
        }
    }
    if (*glob == '\0' || strlen(glob) > 256) {
        err(p, key, "invalid header name '%s' (1..256 characters)", shown);
        return;
    }
    if (!has_wildcard(glob)) {
        if (is_managed_header(glob)) {
            err(p, key, "'%s' is managed by the proxy itself and cannot have a rule", shown);
            return;
        }
        int is_addr = ap_clientaddr_is_address_header(glob, strlen(glob)) ||
                      strcasecmp(glob, pol->addr_header) == 0;
        for (size_t i = 0; i < pol->nremove_headers && !is_addr; i++)
            is_addr = strcasecmp(glob, pol->remove_headers[i]) == 0;
        if (is_addr) {
            err(p, key, "'%s' carries client addresses and is always removed; the outbound "
                        "address is set by client_address and address_header", shown);
            return;
        }
    }

    enum ap_hdr_action action;
    const char *value = NULL;
    const char *names[AP_HDR_NACTIONS];
    for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
        names[i] = ap_policy_hdr_action_name((enum ap_hdr_action)i);
    if (val->type == YAML_MAPPING_NODE) {
        /* { set: VALUE }, the one action that takes an argument. */
        yaml_node_pair_t *pair = val->data.mapping.pairs.start;
        yaml_node_t *k = pair < val->data.mapping.pairs.top ? node_at(p, pair->key) : NULL;
        if (val->data.mapping.pairs.top - pair != 1 || k->type != YAML_SCALAR_NODE ||
            strcmp((const char *)k->data.scalar.value, "set") != 0) {
            err(p, val, "expected an action name or { set: VALUE }");
            return;
        }
        yaml_node_t *v = node_at(p, pair->value);
        size_t saved = push_key(p, "set");
        value = scalar(p, v, "a header value");
        if (value != NULL && !is_header_value(value)) {
            err(p, v, "invalid header value '%s' (no control characters, no leading or "
                      "trailing space, not empty)", show(shown, value, strlen(value)));
            value = NULL;
        }
        pop(p, saved);
        if (value == NULL)
            return;
        action = AP_HDR_SET;
    } else {
        const char *s = scalar(p, val, "a header action");
        if (s == NULL)
            return;
        if (ap_policy_hdr_action_parse(s, &action) != 0) {
            bad_name(p, val, "header action", s, names, AP_ARRAY_SIZE(names));
            return;
        }
        if (action == AP_HDR_SET) {
            err(p, val, "'set' needs a value: write { set: VALUE }");
            return;
        }
    }
    if (ap_policy_add_header_rule(pol, glob, action, value) != 0)
        p->oom = 1; /* every -EINVAL case was refused above */
}

static void kw_header_rules(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                            void *obj)
{
    for_each_rule(p, node, "header names", strcasecmp, add_header_rule, obj);
}

static void add_cookie_rule(struct parser *p, yaml_node_t *key, const char *glob,
                            yaml_node_t *val, void *obj)
{
    struct ap_policy *pol = obj;
    char shown[SHOW_MAX + 4];
    int ok = *glob != '\0' && strlen(glob) <= 256;
    for (const char *c = glob; *c && ok; c++)
        ok = ap_head_is_tchar((unsigned char)*c) || *c == '?';
    if (!ok) {
        err(p, key, "invalid cookie name '%s' (a token, where '*' and '?' are wildcards)",
            show(shown, glob, strlen(glob)));
        return;
    }
    const char *s = scalar(p, val, "a cookie action");
    if (s == NULL)
        return;
    enum ap_cookie_action action;
    if (ap_policy_cookie_action_parse(s, &action) != 0) {
        const char *names[AP_COOKIE_NACTIONS];
        for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
            names[i] = ap_policy_cookie_action_name((enum ap_cookie_action)i);
        bad_name(p, val, "cookie action", s, names, AP_ARRAY_SIZE(names));
        return;
    }
    if (ap_policy_add_cookie_rule(pol, glob, action) != 0)
        p->oom = 1;
}

static void kw_cookie_rules(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                            void *obj)
{
    for_each_rule(p, node, "cookie names", strcmp, add_cookie_rule, obj);
}

static void add_query_rule(struct parser *p, yaml_node_t *key, const char *glob,
                           yaml_node_t *val, void *obj)
{
    struct ap_policy *pol = obj;
    if (check_param_glob(p, key, glob) != 0)
        return;
    const char *s = scalar(p, val, "a query action");
    if (s == NULL)
        return;
    enum ap_query_action action;
    if (ap_policy_query_action_parse(s, &action) != 0) {
        const char *names[AP_QUERY_NACTIONS];
        for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
            names[i] = ap_policy_query_action_name((enum ap_query_action)i);
        bad_name(p, val, "query action", s, names, AP_ARRAY_SIZE(names));
        return;
    }
    if (ap_policy_add_query_rule(pol, glob, action) != 0)
        p->oom = 1;
}

static void kw_query_rules(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                           void *obj)
{
    for_each_rule(p, node, "parameter names", strcmp, add_query_rule, obj);
}

static void pr_profile(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_site_id(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_client_address(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent);
static void pr_remove_headers(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent);
static void pr_header_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent);
static void pr_cookie_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent);
static void pr_query_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent);
static void pr_url_keep(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

static const struct keyword truncate_kws[] = {
    { "ipv4", kw_integer, pr_integer, FIELD(struct ap_policy, v4_prefix), .min = 0, .max = 32 },
    { "ipv6", kw_integer, pr_integer, FIELD(struct ap_policy, v6_prefix), .min = 0, .max = 128 },
    { .name = NULL },
};

/* Table order is parse order: address_header and remove_headers come
 * before headers, whose rules may not name them. */
static const struct keyword privacy_kws[] = {
    { "profile", kw_profile, pr_profile, .flags = 0 },
    { "site_id", kw_site_id, pr_site_id, .flags = 0 },
    { "client_address", kw_client_address, pr_client_address, .flags = 0 },
    { "truncate", kw_section, pr_section, .off = 0, .sub = truncate_kws },
    { "address_header", kw_address_header, pr_string, FIELD(struct ap_policy, addr_header) },
    { "remove_headers", kw_remove_headers, pr_remove_headers, .flags = 0 },
    { "pseudonym_bits", kw_bits, pr_integer, FIELD(struct ap_policy, pseudo_bits),
      .min = AP_PSEUDO_BITS_MIN, .max = AP_PSEUDO_BITS_MAX },
    { "headers", kw_header_rules, pr_header_rules, .flags = 0 },
    { "cookies", kw_cookie_rules, pr_cookie_rules, .flags = 0 },
    { "query", kw_query_rules, pr_query_rules, .flags = 0 },
    { "url_keep", kw_url_keep, pr_url_keep, .flags = 0 },
    { .name = NULL },
};

/* Builds route `r`'s policy from its `privacy` mapping (NULL when the key
 * is absent: the strict profile with no rules of its own). Always leaves a
 * policy in r->policy, unless memory runs out, so config_free has one shape
 * to release. */
static void build_policy(struct parser *p, struct ap_config_route *r, yaml_node_t *node)
{
    enum ap_profile profile = AP_PROFILE_STRICT;
    size_t saved = push_key(p, "privacy");
    int is_map = node != NULL && node->type == YAML_MAPPING_NODE;
    if (node != NULL && !is_map && !is_null(node))
        err(p, node, "expected a mapping, got %s", type_name(node));
    if (is_map) {
        AP_BUG_ON(strcmp(privacy_kws[0].name, "profile") != 0);
        for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
             pair < node->data.mapping.pairs.top; pair++) {
            yaml_node_t *key = node_at(p, pair->key);
            if (key->type == YAML_SCALAR_NODE &&
                strcmp((const char *)key->data.scalar.value, "profile") == 0) {
                size_t s2 = push_key(p, "profile");
                parse_profile(p, node_at(p, pair->value), &profile);
                pop(p, s2);
                break; /* a second one is reported as a duplicate key */
            }
        }
    }
    struct ap_policy *pol = xcalloc(p, 1, sizeof(*pol));
    if (pol == NULL) {
        pop(p, saved);
        return;
    }
    r->policy = pol;
    if (ap_policy_init(pol, r->name != NULL ? r->name : "", profile) != 0) {
        p->oom = 1;
        pop(p, saved);
        return;
    }
    pol->clientaddr = &p->cfg->clientaddr;
    pol->pseudo_bits = p->cfg->pseudonym_bits;
    if (is_map)
        parse_table(p, node, privacy_kws, pol, NULL);
    if (ap_policy_finish(pol) != 0)
        p->oom = 1;
    pop(p, saved);
}

static void pr_hosts(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_methods(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_route_upstream(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent);
static void pr_privacy(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

/* kw_routes calls build_policy once the route's name is known. */
static void kw_privacy(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
}

/* Routes of `type: logs` (issue 8, docs/logging.md): NDJSON log batches
 * anonymised by the route's privacy policy and its `log_fields`, then
 * written to the `log_sinks` it names. They have no upstream. */

#define MAX_LOG_SINKS 64u       /* the logger addresses sinks with a 64-bit mask */
#define MAX_LOG_FIELD_RULES 1000u

/* Printers: defined with the others, after the printer helpers. */
static void pr_route_type(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_route_log_sinks(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent);
static void pr_route_log_fields(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent);
static void pr_log_sink_type(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_when_full(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_spool_fsync(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_syslog_format(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_facility(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_log_gzip(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_log_sink_field(struct printer *pr, const struct keyword *kw, const char *v, int indent);
static void pr_log_sink_address(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent);
static void pr_log_url(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_log_tls(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_log_headers(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_log_sinks(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void out_sink_refs(struct printer *pr, const char *name, struct ap_config_log_sink *const *v,
                          size_t n, int indent);
static void pr_access_format(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_access_template(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent);
static void pr_access_sinks(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_access_log(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_syslog_listen_address(struct printer *pr, const struct keyword *kw, const void *obj,
                                     int indent);
static void pr_syslog_listen_route(struct printer *pr, const struct keyword *kw, const void *obj,
                                   int indent);
static void pr_syslog_listen(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

static struct ap_config_log_sink *find_log_sink(struct ap_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nlog_sinks; i++)
        if (cfg->log_sinks[i].name != NULL && strcmp(cfg->log_sinks[i].name, name) == 0)
            return &cfg->log_sinks[i];
    return NULL;
}

struct sink_refs {
    struct ap_config_log_sink **v;
    size_t *n;
    size_t cap;
};

static void add_sink_ref(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct sink_refs *l = obj;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    struct ap_config_log_sink *k = find_log_sink(p->cfg, s);
    if (k == NULL) {
        err(p, node, "unknown log sink '%s' (sinks are defined under log_sinks)", shown);
        return;
    }
    for (size_t i = 0; i < *l->n; i++) {
        if (l->v[i] == k) {
            err(p, node, "log sink '%s' is listed twice", shown);
            return;
        }
    }
    AP_BUG_ON(*l->n >= l->cap);
    l->v[(*l->n)++] = k;
}

/* A sink name or a list of them, resolved against log_sinks. */
static void parse_sink_refs(struct parser *p, yaml_node_t *node, struct ap_config_log_sink ***v,
                            size_t *n)
{
    size_t cap = is_null(node) ? 0 : seq_len(node);
    if (cap > MAX_LOG_SINKS) {
        err(p, node, "too many log sinks (%zu, at most %u)", cap, MAX_LOG_SINKS);
        return;
    }
    *v = xcalloc(p, cap, sizeof(**v));
    if (*v == NULL)
        return;
    struct sink_refs l = { *v, n, cap };
    for_each_string(p, node, "a log sink name", add_sink_ref, &l);
}

static void kw_route_type(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    static const char *const names[] = { "http", "logs" };
    struct ap_config_route *r = obj;
    const char *s = scalar(p, node, "a route type");
    if (s == NULL)
        return;
    if (strcmp(s, "http") == 0)
        r->type = AP_ROUTE_HTTP;
    else if (strcmp(s, "logs") == 0)
        r->type = AP_ROUTE_LOGS;
    else
        bad_name(p, node, "route type", s, names, AP_ARRAY_SIZE(names));
}

static void kw_route_log_sinks(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct ap_config_route *r = obj;
    parse_sink_refs(p, node, &r->log_sinks, &r->nlog_sinks);
}

static void add_log_field(struct parser *p, yaml_node_t *key, const char *glob, yaml_node_t *val,
                          void *obj)
{
    struct ap_config_route *r = obj;
    char shown[SHOW_MAX + 4];
    if (glob[0] == '\0' || strlen(glob) > 128 || has_control(glob)) {
        err(p, key, "invalid field name '%s' (1..128 characters, no control characters)",
            show(shown, glob, strlen(glob)));
        return;
    }
    const char *s = scalar(p, val, "a field action");
    if (s == NULL)
        return;
    enum ap_logscrub_action action;
    if (ap_logscrub_action_parse(s, &action) != 0) {
        const char *names[AP_LOGSCRUB_NACTIONS];
        for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
            names[i] = ap_logscrub_action_name((enum ap_logscrub_action)i);
        bad_name(p, val, "field action", s, names, AP_ARRAY_SIZE(names));
        return;
    }
    char *g = xstrdup(p, glob);
    if (g == NULL)
        return;
    r->log_fields[r->nlog_fields++] = (struct ap_logscrub_rule){ g, action };
}

static void kw_route_log_fields(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                void *obj)
{
    struct ap_config_route *r = obj;
    size_t n = node->type == YAML_MAPPING_NODE
                   ? (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start)
                   : 0;
    if (n > MAX_LOG_FIELD_RULES) {
        err(p, node, "too many field rules (%zu, at most %u)", n, MAX_LOG_FIELD_RULES);
        return;
    }
    r->log_fields = xcalloc(p, n, sizeof(*r->log_fields));
    if (r->log_fields == NULL)
        return;
    /* Field names match case-insensitively: "IP" and "ip" are one rule. */
    for_each_rule(p, node, "field names", strcasecmp, add_log_field, r);
}

/* After a route's keys: an http route needs an upstream, a logs route
 * needs sinks and has no upstream. */
static void check_route_type(struct parser *p, yaml_node_t *item, const struct keyword *table,
                             const struct ap_config_route *r, const struct seen *seen)
{
    size_t iup = 0, isinks = 0, ifields = 0;
    for (size_t i = 0; table[i].name != NULL; i++) {
        if (strcmp(table[i].name, "upstream") == 0)
            iup = i;
        else if (strcmp(table[i].name, "log_sinks") == 0)
            isinks = i;
        else if (strcmp(table[i].name, "log_fields") == 0)
            ifields = i;
    }
    AP_BUG_ON(iup == 0 || isinks == 0 || ifields == 0);
    if (r->type == AP_ROUTE_LOGS) {
        if (seen[iup].key != NULL) {
            size_t saved = push_key(p, "upstream");
            err(p, seen[iup].key, "a route of type logs has no upstream: its records go to "
                                  "its log_sinks");
            pop(p, saved);
        }
        if (seen[isinks].key == NULL)
            err(p, item, "missing required key 'log_sinks' (a route of type logs needs one)");
        return;
    }
    if (seen[iup].key == NULL)
        err(p, item, "missing required key 'upstream'");
    for (size_t k = 0; k < 2; k++) {
        size_t i = k == 0 ? isinks : ifields;
        if (seen[i].key != NULL) {
            size_t saved = push_key(p, table[i].name);
            err(p, seen[i].key, "only applies to routes of type logs");
            pop(p, saved);
        }
    }
}

static void free_route_logging(struct ap_config_route *r)
{
    free(r->log_sinks);
    for (size_t j = 0; j < r->nlog_fields; j++)
        free(r->log_fields[j].glob);
    free(r->log_fields);
}

/* Body rules (`body:`, docs/configuration.md BODY RULES): a route's body
 * policy for proxy/engine/body.c. build_body makes it after the route's
 * privacy policy, whose profile (the detectors' defaults) and truncation
 * prefixes it takes; a route without the key (or with `body: ~`) has none,
 * and its bodies pass unread. */

#define MAX_BODY_RULES 1000u /* a route's own rules; the duplicate check is pairwise */
#define MAX_BODY_REGEX 64u   /* each one runs over every string of every body */
#define MAX_BODY_QFLAGS 64u
#define MAX_BODY_PATTERN 4096u

/* The policy and what the printer needs to write the section back as it
 * was given: which rules and flags are the route's own (the presets'
 * follow them), the presets' names, and each rule's value as written.
 * r->body points at `pol`; body_conf_of finds the rest. */
struct body_conf {
    struct ap_body_policy pol;
    const char **presets; /* static names from ap_bodypreset_names, in file order */
    size_t npresets;
    char **args;          /* value of each of the route's rules as written, or NULL */
    size_t nrules;        /* the route's own rules: the first nrules of pol.rules */
    size_t nqflags;       /* the route's own compression flags: the first of pol.qflags */
};

static struct body_conf *body_conf_of(const struct ap_body_policy *pol)
{
    return (struct body_conf *)((char *)(uintptr_t)pol - offsetof(struct body_conf, pol));
}

/* Takes `n` entries of a list capped at `max` from the budget the privacy
 * rules of all routes share (aliases can repeat a big body section in
 * thousands of routes). Returns 0 or reports. */
static int body_budget(struct parser *p, yaml_node_t *node, size_t n, size_t max,
                       const char *what)
{
    if (n > max) {
        err(p, node, "too many %s (%zu, at most %zu)", what, n, max);
        return -E2BIG;
    }
    if (n > MAX_TOTAL_RULES - p->privacy_rules) {
        err(p, node, "too many privacy rules in all routes together (at most %u, body rules "
                     "and their presets included)", MAX_TOTAL_RULES);
        return -E2BIG;
    }
    p->privacy_rules += n;
    return 0;
}

/* A list whose items are mappings. Returns its length, or -1 after
 * reporting another shape; a null value is an empty list. */
static long body_list(struct parser *p, yaml_node_t *node, const char *what)
{
    if (is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE) {
        err(p, node, "expected a list of %s, got %s", what, type_name(node));
        return -1;
    }
    return (long)seq_len(node);
}

static int parse_body_action(struct parser *p, yaml_node_t *node, enum ap_body_action *out)
{
    const char *s = scalar(p, node, "an action");
    if (s == NULL)
        return -EINVAL;
    if (ap_body_action_parse(s, out) == 0)
        return 0;
    const char *names[AP_BODY_NACTIONS];
    for (size_t i = 0; i < AP_ARRAY_SIZE(names); i++)
        names[i] = ap_body_action_name((enum ap_body_action)i);
    bad_name(p, node, "action", s, names, AP_ARRAY_SIZE(names));
    return -EINVAL;
}

/* One item of `rules` or `regex` as its keys were read; the rule is added
 * once every key is known. */
struct body_item {
    const char *text;        /* path or pattern */
    yaml_node_t *text_node;
    int have_action;
    enum ap_body_action action;
    yaml_node_t *action_node;
    const char *value;
    yaml_node_t *value_node;
    int encoding;            /* compression_flags: enum ap_body_encoding, 0 when bad */
};

static void kw_bitem_text(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct body_item *it = obj;
    it->text = scalar(p, node, strcmp(kw->name, "path") == 0      ? "a path such as $.user.id"
                               : strcmp(kw->name, "pattern") == 0 ? "a regular expression"
                                                                  : "a parameter name");
    it->text_node = node;
}

static void kw_bitem_action(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                            void *obj)
{
    struct body_item *it = obj;
    it->action_node = node;
    it->have_action = parse_body_action(p, node, &it->action) == 0;
}

static void kw_bitem_value(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                           void *obj)
{
    struct body_item *it = obj;
    it->value_node = node;
    if (node->type != YAML_SCALAR_NODE) {
        /* A JSON object or array for `set` is JSON text in a string. */
        err(p, node, "expected a scalar (quote JSON objects and arrays: '{\"a\": 1}'), got %s",
            type_name(node));
        return;
    }
    it->value = scalar(p, node, "a value");
}

static int parse_choice(struct parser *p, yaml_node_t *node, const char *what,
                        const char *const *names, size_t n);

static void kw_bitem_encoding(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    static const enum ap_body_encoding encs[] = { AP_BODY_ENC_GZIP, AP_BODY_ENC_DEFLATE };
    struct body_item *it = obj;
    const char *names[AP_ARRAY_SIZE(encs)];
    for (size_t i = 0; i < AP_ARRAY_SIZE(encs); i++)
        names[i] = ap_body_encoding_name(encs[i]);
    int i = parse_choice(p, node, "encoding", names, AP_ARRAY_SIZE(names));
    if (i >= 0)
        it->encoding = (int)encs[i];
}

static const struct keyword body_rule_kws[] = {
    { "path", kw_bitem_text, NULL, .flags = KW_REQUIRED },
    { "action", kw_bitem_action, NULL, .flags = KW_REQUIRED },
    { "value", kw_bitem_value, NULL, .flags = 0 },
    { .name = NULL },
};

static const struct keyword body_regex_kws[] = {
    { "pattern", kw_bitem_text, NULL, .flags = KW_REQUIRED },
    { "action", kw_bitem_action, NULL, .flags = KW_REQUIRED },
    { .name = NULL },
};

static const struct keyword body_qflag_kws[] = {
    { "param", kw_bitem_text, NULL, .flags = KW_REQUIRED },
    { "value", kw_bitem_value, NULL, .flags = KW_REQUIRED },
    { "encoding", kw_bitem_encoding, NULL, .flags = KW_REQUIRED },
    { .name = NULL },
};

/* Reports at `node` with `key` appended to the key path. */
#define err_at_key(p, key, node, ...)                                                     \
    do {                                                                                  \
        size_t saved_ = push_key((p), (key));                                             \
        err((p), (node), __VA_ARGS__);                                                    \
        pop((p), saved_);                                                                 \
    } while (0)

static void add_body_rule(struct parser *p, struct body_conf *bc, yaml_node_t *item,
                          const struct body_item *it, yaml_node_t **paths)
{
    char shown[SHOW_MAX + 4], shown2[SHOW_MAX + 4];
    if (it->text == NULL || !it->have_action)
        return; /* reported by the key's handler, or missing */
    const char *aname = ap_body_action_name(it->action);
    int takes_value = it->action == AP_BODY_SET || it->action == AP_BODY_ROUND;
    if (takes_value && it->value == NULL) {
        if (it->value_node == NULL)
            err(p, item, "missing required key 'value' (action %s needs one: %s)", aname,
                it->action == AP_BODY_SET ? "the constant" : "a step, minute, hour or day");
        return;
    }
    if (!takes_value && it->value_node != NULL) {
        err_at_key(p, "value", it->value_node, "action %s takes no value", aname);
        return;
    }
    for (size_t k = 0; k < bc->nrules; k++) {
        if (strcmp(bc->pol.rules[k].text, it->text) == 0) {
            err_at_key(p, "path", it->text_node,
                       "duplicate rule for '%s' (first at %u:%u; the first rule that matches "
                       "wins)", show(shown, it->text, strlen(it->text)), pos_of(paths[k]).line,
                       pos_of(paths[k]).col);
            return;
        }
    }
    size_t off = SIZE_MAX;
    int rc = ap_body_policy_add_rule(&bc->pol, it->text, it->action, it->value, &off);
    if (rc == -ENOMEM) {
        p->oom = 1;
        return;
    }
    if (rc == -EINVAL && off != SIZE_MAX) {
        size_t len = strlen(it->text);
        if (off > len)
            off = len;
        if (off < len)
            err_at_key(p, "path", it->text_node, "invalid path '%s' at byte %zu (near '%s')",
                       show(shown, it->text, len), off, show(shown2, it->text + off, len - off));
        else
            err_at_key(p, "path", it->text_node, "invalid path '%s' at byte %zu (unexpected end)",
                       show(shown, it->text, len), off);
        return;
    }
    if (rc != 0) {
        if (it->action == AP_BODY_ROUND)
            err_at_key(p, "value", it->value_node,
                       "invalid round value '%s' (a positive integer up to 10^18, minute, hour "
                       "or day)", show(shown, it->value, strlen(it->value)));
        else
            err_at_key(p, "value", it->value_node, "invalid value for %s", aname);
        return;
    }
    if (it->value != NULL) {
        bc->args[bc->nrules] = xstrdup(p, it->value);
        if (bc->args[bc->nrules] == NULL)
            return; /* the rule stays; the load fails anyway */
    }
    paths[bc->nrules] = it->text_node;
    bc->nrules++;
}

static void kw_body_rules(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct body_conf *bc = obj;
    long n = body_list(p, node, "rules");
    if (n <= 0 || body_budget(p, node, (size_t)n, MAX_BODY_RULES, "rules") != 0)
        return;
    bc->args = xcalloc(p, (size_t)n, sizeof(*bc->args));
    yaml_node_t **paths = xcalloc(p, (size_t)n, sizeof(*paths));
    for (long i = 0; i < n && bc->args != NULL && paths != NULL; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        size_t saved = push_index(p, (size_t)i);
        if (item->type != YAML_MAPPING_NODE) {
            err(p, item, "expected a mapping with path and action, got %s", type_name(item));
        } else {
            struct body_item it = { 0 };
            parse_table(p, item, body_rule_kws, &it, NULL);
            add_body_rule(p, bc, item, &it, paths);
        }
        pop(p, saved);
    }
    free(paths);
}

static void add_body_preset(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct body_conf *bc = obj;
    const char *const *names = ap_bodypreset_names();
    size_t n = 0, found = SIZE_MAX;
    for (; names[n] != NULL; n++)
        if (strcmp(names[n], s) == 0)
            found = n;
    if (found == SIZE_MAX) {
        bad_name(p, node, "preset", s, names, n);
        return;
    }
    for (size_t i = 0; i < bc->npresets; i++) {
        if (bc->presets[i] == names[found]) {
            char shown[SHOW_MAX + 4];
            err(p, node, "preset '%s' is listed twice", show(shown, s, strlen(s)));
            return;
        }
    }
    bc->presets[bc->npresets++] = names[found];
}

/* The names are checked here; build_body adds the presets' rules after
 * the route's own, which therefore win. */
static void kw_body_presets(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                            void *obj)
{
    struct body_conf *bc = obj;
    size_t cap = is_null(node) ? 0 : node->type == YAML_SEQUENCE_NODE ? seq_len(node) : 1;
    size_t n = 0;
    const char *const *names = ap_bodypreset_names();
    while (names[n] != NULL)
        n++;
    if (cap > n) {
        err(p, node, "too many presets (%zu; there are %zu)", cap, n);
        return;
    }
    bc->presets = xcalloc(p, cap, sizeof(*bc->presets));
    if (bc->presets != NULL)
        for_each_string(p, node, "a preset name", add_body_preset, bc);
}

/* The actions detector `kind` accepts, asked of the engine itself on a
 * scratch policy so that the two cannot disagree. Returns their number. */
static size_t detector_actions(enum ap_detect_kind kind, const char *names[AP_BODY_NACTIONS])
{
    struct ap_body_policy scratch;
    size_t n = 0;
    ap_body_policy_init(&scratch, AP_PROFILE_STRICT);
    for (size_t a = 0; a < AP_BODY_NACTIONS; a++)
        if (ap_body_policy_set_detector(&scratch, kind, (enum ap_body_action)a) == 0)
            names[n++] = ap_body_action_name((enum ap_body_action)a);
    ap_body_policy_free(&scratch);
    return n;
}

static void kw_body_detectors(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                              void *obj)
{
    struct body_conf *bc = obj;
    if (is_null(node))
        return;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping of detector names to actions, got %s", type_name(node));
        return;
    }
    const char *kinds[AP_DETECT_REGEX];
    for (size_t k = 0; k < AP_ARRAY_SIZE(kinds); k++)
        kinds[k] = ap_detect_kind_name((enum ap_detect_kind)k);
    yaml_node_t *seen[AP_DETECT_REGEX] = { 0 };
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = node_at(p, pair->key);
        yaml_node_t *val = node_at(p, pair->value);
        const char *name = scalar(p, key, "a detector name");
        if (name == NULL)
            continue;
        char shown[SHOW_MAX + 4];
        enum ap_detect_kind kind;
        if (ap_detect_kind_parse(name, &kind) != 0) {
            bad_name(p, key, "detector", name, kinds, AP_ARRAY_SIZE(kinds));
            continue;
        }
        if (kind >= AP_DETECT_REGEX) {
            err(p, key, "regular expressions are written under the key regex, with their action");
            continue;
        }
        if (seen[kind] != NULL) {
            err(p, key, "duplicate key '%s' (first at %u:%u)", show(shown, name, strlen(name)),
                pos_of(seen[kind]).line, pos_of(seen[kind]).col);
            continue;
        }
        seen[kind] = key;
        size_t saved = push_key(p, name);
        const char *allowed[AP_BODY_NACTIONS];
        size_t nallowed = detector_actions(kind, allowed);
        const char *s = scalar(p, val, "an action");
        enum ap_body_action action;
        if (s == NULL) {
            /* reported */
        } else if (ap_body_action_parse(s, &action) != 0) {
            bad_name(p, val, "action", s, allowed, nallowed);
        } else if (ap_body_policy_set_detector(&bc->pol, kind, action) != 0) {
            char list[256] = "";
            size_t off = 0;
            for (size_t i = 0; i < nallowed; i++) {
                int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                 allowed[i]);
                if (w > 0 && (size_t)w < sizeof(list) - off)
                    off += (size_t)w;
            }
            err(p, val, "the %s detector cannot %s (expected one of: %s)", kinds[kind],
                ap_body_action_name(action), list);
        }
        pop(p, saved);
    }
}

/* PCRE2's own words for why `pattern` does not compile. The engine gives
 * only the offset; compiling again on this error path costs nothing. The
 * options are the engine's (ap_body_policy_add_regex). */
static void regex_why(const char *pattern, char *buf, size_t len)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (re != NULL) {
        pcre2_code_free(re);
        snprintf(buf, len, "refused by the body engine");
        return;
    }
    if (pcre2_get_error_message(code, (PCRE2_UCHAR *)buf, len) < 0)
        snprintf(buf, len, "PCRE2 error %d", code);
}

static void kw_body_regex(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct body_conf *bc = obj;
    long n = body_list(p, node, "regular expressions");
    if (n <= 0 || body_budget(p, node, (size_t)n, MAX_BODY_REGEX, "regular expressions") != 0)
        return;
    for (long i = 0; i < n; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        size_t saved = push_index(p, (size_t)i);
        struct body_item it = { 0 };
        if (item->type != YAML_MAPPING_NODE)
            err(p, item, "expected a mapping with pattern and action, got %s", type_name(item));
        else
            parse_table(p, item, body_regex_kws, &it, NULL);
        char shown[SHOW_MAX + 4], why[160];
        if (it.text == NULL || !it.have_action) {
            /* reported */
        } else if (it.action != AP_BODY_PSEUDO && it.action != AP_BODY_DROP) {
            err_at_key(p, "action", it.action_node,
                       "a regular expression takes pseudonymise (the match) or drop (the "
                       "value), not %s", ap_body_action_name(it.action));
        } else if (it.text[0] == '\0' || strlen(it.text) > MAX_BODY_PATTERN) {
            err_at_key(p, "pattern", it.text_node, "a pattern has 1..%u bytes", MAX_BODY_PATTERN);
        } else {
            size_t off = SIZE_MAX;
            int rc = ap_body_policy_add_regex(&bc->pol, it.text, it.action, &off);
            if (rc == -ENOMEM) {
                p->oom = 1;
            } else if (rc != 0) {
                regex_why(it.text, why, sizeof(why));
                if (off != SIZE_MAX)
                    err_at_key(p, "pattern", it.text_node,
                               "invalid regular expression '%s' at byte %zu: %s",
                               show(shown, it.text, strlen(it.text)), off, why);
                else
                    err_at_key(p, "pattern", it.text_node, "invalid regular expression '%s': %s",
                               show(shown, it.text, strlen(it.text)), why);
            }
        }
        pop(p, saved);
    }
}

static void kw_body_qflags(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                           void *obj)
{
    struct body_conf *bc = obj;
    long n = body_list(p, node, "compression flags");
    if (n <= 0 || body_budget(p, node, (size_t)n, MAX_BODY_QFLAGS, "compression flags") != 0)
        return;
    yaml_node_t **firsts = xcalloc(p, (size_t)n, sizeof(*firsts));
    for (long i = 0; i < n && firsts != NULL; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        size_t saved = push_index(p, (size_t)i);
        struct body_item it = { 0 };
        if (item->type != YAML_MAPPING_NODE)
            err(p, item, "expected a mapping with param, value and encoding, got %s",
                type_name(item));
        else
            parse_table(p, item, body_qflag_kws, &it, NULL);
        char shown[SHOW_MAX + 4];
        if (it.text == NULL || it.value == NULL || it.encoding == 0) {
            /* reported */
        } else if (it.text[0] == '\0' || strlen(it.text) > 256 || has_control(it.text)) {
            err_at_key(p, "param", it.text_node,
                       "invalid parameter name '%s' (1..256 characters, no control characters)",
                       show(shown, it.text, strlen(it.text)));
        } else if (strlen(it.value) > 256 || has_control(it.value)) {
            err_at_key(p, "value", it.value_node,
                       "invalid parameter value '%s' (at most 256 characters, no control "
                       "characters)", show(shown, it.value, strlen(it.value)));
        } else {
            size_t k;
            for (k = 0; k < bc->nqflags; k++)
                if (strcmp(bc->pol.qflags[k].name, it.text) == 0 &&
                    strcasecmp(bc->pol.qflags[k].value, it.value) == 0)
                    break;
            if (k < bc->nqflags) {
                /* Values compare without case, as the engine matches them. */
                char shown_v[SHOW_MAX + 4];
                err(p, item, "duplicate compression flag %s=%s (first at %u:%u)",
                    show(shown, it.text, strlen(it.text)),
                    show(shown_v, it.value, strlen(it.value)), pos_of(firsts[k]).line,
                    pos_of(firsts[k]).col);
            } else if (ap_body_policy_add_query_flag(&bc->pol, it.text, it.value,
                                                     (enum ap_body_encoding)it.encoding) != 0) {
                p->oom = 1; /* every -EINVAL case was refused above */
            } else {
                firsts[bc->nqflags++] = item;
            }
        }
        pop(p, saved);
    }
    free(firsts);
}

/* Names of enum ap_body_on_invalid and enum ap_body_on_unsupported, by
 * value; the engine parses them (and has no printer for them). */
static const char *const body_on_invalid_names[] = { "reject", "drop-body" };
static const char *const body_on_unsupported_names[] = { "reject", "drop-body", "pass" };

static void kw_body_on_invalid(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct body_conf *bc = obj;
    const char *s = scalar(p, node, "reject or drop-body");
    if (s != NULL && ap_body_on_invalid_parse(s, &bc->pol.on_invalid) != 0)
        bad_name(p, node, "on_invalid policy", s, body_on_invalid_names,
                 AP_ARRAY_SIZE(body_on_invalid_names));
}

static void kw_body_on_unsupported(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                   void *obj)
{
    struct body_conf *bc = obj;
    const char *s = scalar(p, node, "reject, drop-body or pass");
    if (s != NULL && ap_body_on_unsupported_parse(s, &bc->pol.on_unsupported) != 0)
        bad_name(p, node, "on_unsupported policy", s, body_on_unsupported_names,
                 AP_ARRAY_SIZE(body_on_unsupported_names));
}

static void kw_body_recompress(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct body_conf *bc = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        bc->pol.recompress = (unsigned)b;
}

static void kw_body_gzip_magic(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct body_conf *bc = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        bc->pol.gzip_magic = (unsigned)b;
}

static void pr_body_presets(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent);
static void pr_body_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_body_detectors(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent);
static void pr_body_regex(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_body_on_invalid(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent);
static void pr_body_on_unsupported(struct printer *pr, const struct keyword *kw, const void *obj,
                                   int indent);
static void pr_body_bool(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent);
static void pr_body_qflags(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent);
static void pr_body(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

/* Printed in this order; parsed in this order too, except the presets,
 * whose rules build_body adds last. */
static const struct keyword body_kws[] = {
    { "presets", kw_body_presets, pr_body_presets, .flags = 0 },
    { "rules", kw_body_rules, pr_body_rules, .flags = 0 },
    { "detectors", kw_body_detectors, pr_body_detectors, .flags = 0 },
    { "regex", kw_body_regex, pr_body_regex, .flags = 0 },
    { "max_body", kw_size, pr_size, FIELD(struct body_conf, pol.max_body), .min = 0, .max = TiB },
    { "max_inflated", kw_size, pr_size, FIELD(struct body_conf, pol.max_inflated), .min = 1,
      .max = TiB },
    { "max_ratio", kw_integer, pr_integer, FIELD(struct body_conf, pol.max_ratio), .min = 0,
      .max = 1000000 },
    { "max_depth", kw_integer, pr_integer, FIELD(struct body_conf, pol.max_depth), .min = 1,
      .max = AP_BODY_MAX_DEPTH_LIMIT },
    { "on_invalid", kw_body_on_invalid, pr_body_on_invalid, .flags = 0 },
    { "on_unsupported", kw_body_on_unsupported, pr_body_on_unsupported, .flags = 0 },
    { "recompress", kw_body_recompress, pr_body_bool, .flags = 0 },
    { "gzip_magic", kw_body_gzip_magic, pr_body_bool, .flags = 0 },
    { "compression_flags", kw_body_qflags, pr_body_qflags, .flags = 0 },
    { .name = NULL },
};

/* build_body, called by kw_routes after build_policy, does the work. */
static void kw_body(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
}

static size_t body_kw_index(const char *name)
{
    size_t i = 0;
    while (strcmp(body_kws[i].name, name) != 0)
        i++;
    return i;
}

/* Builds route `r`'s body policy from its `body` mapping (`key` and
 * `node`, NULL when the key is absent). A null value leaves r->body NULL;
 * otherwise r->body is set as soon as the policy exists, so config_free
 * has one shape to release whatever failed. */
static void build_body(struct parser *p, struct ap_config_route *r, yaml_node_t *key,
                       yaml_node_t *node)
{
    if (node == NULL || is_null(node))
        return;
    size_t saved = push_key(p, "body");
    if (r->type == AP_ROUTE_LOGS) {
        err(p, key, "only applies to routes of type http");
        pop(p, saved);
        return;
    }
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping, got %s", type_name(node));
        pop(p, saved);
        return;
    }
    struct body_conf *bc = xcalloc(p, 1, sizeof(*bc));
    if (bc == NULL) {
        pop(p, saved);
        return;
    }
    /* The detectors' defaults are the privacy profile's, and addresses are
     * truncated in bodies as they are in headers. */
    ap_body_policy_init(&bc->pol, r->policy != NULL ? r->policy->profile : AP_PROFILE_STRICT);
    r->body = &bc->pol;
    if (r->policy != NULL) {
        bc->pol.v4_prefix = r->policy->v4_prefix;
        bc->pol.v6_prefix = r->policy->v6_prefix;
    }
    bc->pol.max_body = r->max_body_bytes;
    size_t before = p->nerrors + p->dropped;
    struct seen seen[MAX_KEYWORDS];
    parse_table(p, node, body_kws, bc, seen);

    yaml_node_t *presets = seen[body_kw_index("presets")].val;
    for (size_t i = 0; i < bc->npresets && !p->oom; i++) {
        size_t had = bc->pol.nrules;
        if (p->privacy_rules >= MAX_TOTAL_RULES) {
            err_at_key(p, "presets", presets, "too many privacy rules in all routes together "
                       "(at most %u, body rules and their presets included)", MAX_TOTAL_RULES);
            break;
        }
        int rc = ap_bodypreset_add(&bc->pol, bc->presets[i]);
        AP_BUG_ON(rc == -ENOENT); /* the name was checked */
        if (rc != 0)
            p->oom = 1;
        size_t added = bc->pol.nrules - had;
        p->privacy_rules += added < MAX_TOTAL_RULES - p->privacy_rules
                                ? added
                                : MAX_TOTAL_RULES - p->privacy_rules;
    }
    yaml_node_t *max_body = seen[body_kw_index("max_body")].val;
    if (max_body != NULL && bc->pol.max_body > r->max_body_bytes) {
        char a[32], b[32];
        err_at_key(p, "max_body", max_body,
                   "%s is more than the route's max_body_bytes (%s), which no body gets past",
                   fmt_size(a, bc->pol.max_body), fmt_size(b, r->max_body_bytes));
    }
    if (!p->oom && p->nerrors + p->dropped == before) {
        int rc = ap_body_policy_finish(&bc->pol);
        if (rc == -E2BIG)
            err(p, node, "the rules are too long for one route (more than 65535 steps in all, "
                         "presets included): split the route or drop a preset");
        else if (rc != 0)
            p->oom = 1;
    }
    pop(p, saved);
}

static void free_body(struct ap_config_route *r)
{
    if (r->body == NULL)
        return;
    struct body_conf *bc = body_conf_of(r->body);
    ap_body_policy_free(&bc->pol);
    for (size_t i = 0; i < bc->nrules; i++)
        free(bc->args[i]);
    free(bc->args);
    free(bc->presets);
    free(bc);
    r->body = NULL;
}

static const struct keyword match_kws[] = {
    { "host", kw_hosts, pr_hosts, .flags = 0 },
    { "path", kw_path, pr_string, FIELD(struct ap_config_route, path_prefix) },
    { "methods", kw_methods, pr_methods, .flags = 0 },
    { .name = NULL },
};

static const struct keyword route_kws[] = {
    { "name", kw_route_name, pr_string, FIELD(struct ap_config_route, name) },
    { "match", kw_section, pr_section, .off = 0, .sub = match_kws },
    { "type", kw_route_type, pr_route_type, .flags = 0 },
    { "upstream", kw_route_upstream, pr_route_upstream, .flags = 0 },
    { "max_body_bytes", kw_size, pr_size, FIELD(struct ap_config_route, max_body_bytes),
      .min = 0, .max = TiB },
    { "privacy", kw_privacy, pr_privacy, .flags = 0 },
    { "body", kw_body, pr_body, .flags = 0 },
    { "log_sinks", kw_route_log_sinks, pr_route_log_sinks, .flags = 0 },
    { "log_fields", kw_route_log_fields, pr_route_log_fields, .flags = 0 },
    { .name = NULL },
};

static void kw_routes(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    size_t n = required_list_len(p, node, "routes", "route", MAX_ROUTES);
    if (n == 0)
        return;
    cfg->routes = xcalloc(p, n, sizeof(*cfg->routes));
    yaml_node_t **name_nodes = xcalloc(p, n, sizeof(*name_nodes));
    if (cfg->routes == NULL || name_nodes == NULL) {
        free(name_nodes);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        struct ap_config_route *r = &cfg->routes[cfg->nroutes++];
        r->pos = pos_of(item);
        r->max_body_bytes = cfg->limits.body_bytes;
        r->path_prefix = xstrdup(p, "/");
        name_nodes[i] = item;
        size_t saved = push_index(p, i);
        yaml_node_t *privacy = NULL;
        struct seen body = { NULL, NULL };
        if (item->type != YAML_MAPPING_NODE) {
            err(p, item, "expected a mapping, got %s", type_name(item));
        } else {
            struct seen seen[MAX_KEYWORDS];
            parse_table(p, item, route_kws, r, seen);
            check_route_type(p, item, route_kws, r, seen);
            AP_BUG_ON(strcmp(route_kws[0].name, "name") != 0);
            if (seen[0].val != NULL)
                name_nodes[i] = seen[0].val;
            size_t ipriv = 0;
            while (strcmp(route_kws[ipriv].name, "privacy") != 0)
                ipriv++;
            privacy = seen[ipriv].val;
            size_t ibody = 0;
            while (strcmp(route_kws[ibody].name, "body") != 0)
                ibody++;
            body = seen[ibody];
        }
        if (r->name == NULL) {
            char def[32];
            snprintf(def, sizeof(def), "route%zu", i + 1);
            r->name = xstrdup(p, def);
        }
        /* After the name: the policy carries it into its audit. */
        build_policy(p, r, privacy);
        /* After the policy: the body rules take its profile and prefixes. */
        build_body(p, r, body.key, body.val);
        pop(p, saved);
    }
    /* Default names take part: "route2" written on route 1 clashes. */
    for (size_t i = 1; i < cfg->nroutes; i++) {
        for (size_t j = 0; j < i; j++) {
            if (cfg->routes[i].name == NULL || cfg->routes[j].name == NULL ||
                strcmp(cfg->routes[i].name, cfg->routes[j].name) != 0)
                continue;
            char shown[SHOW_MAX + 4];
            size_t saved = push_index(p, i);
            err(p, name_nodes[i], "duplicate route name '%s' (first at %u:%u)",
                show(shown, cfg->routes[i].name, strlen(cfg->routes[i].name)),
                pos_of(name_nodes[j]).line, pos_of(name_nodes[j]).col);
            pop(p, saved);
            break;
        }
    }
    free(name_nodes);
}

static const struct keyword timeouts_kws[] = {
    { "request_head", kw_duration, pr_duration, FIELD(struct ap_config_timeouts, request_head),
      .min = 1, .max = DAY_MS },
    { "body_idle", kw_duration, pr_duration, FIELD(struct ap_config_timeouts, body_idle),
      .min = 1, .max = DAY_MS },
    { "keepalive", kw_duration, pr_duration, FIELD(struct ap_config_timeouts, keepalive),
      .min = 1, .max = DAY_MS },
    { "upstream_connect", kw_duration, pr_duration,
      FIELD(struct ap_config_timeouts, upstream_connect), .min = 1, .max = DAY_MS },
    { "upstream_head", kw_duration, pr_duration, FIELD(struct ap_config_timeouts, upstream_head),
      .min = 1, .max = DAY_MS },
    { "upstream_body_idle", kw_duration, pr_duration,
      FIELD(struct ap_config_timeouts, upstream_body_idle), .min = 1, .max = DAY_MS },
    { "drain", kw_duration, pr_duration, FIELD(struct ap_config_timeouts, drain), .min = 1,
      .max = DAY_MS },
    { .name = NULL },
};

/* trusted_proxies: the proxies whose forwarding headers are believed. */

/* Every request walks the list, so it stays short. */
#define MAX_TRUSTED_PROXIES 1024u

/* Reports a bad prefix. The usual mistake is an address with bits set after
 * the prefix ("10.0.0.1/8"), which ap_cidr_parse refuses rather than widen
 * a trusted range silently; name the network that was probably meant. */
static void bad_cidr(struct parser *p, yaml_node_t *node, const char *item, size_t len)
{
    char shown[SHOW_MAX + 4], net_text[AP_IP_STRLEN];
    show(shown, item, len);
    const char *slash = memchr(item, '/', len);
    if (slash != NULL) {
        struct ap_ip ip, net;
        uint64_t bits = 0;
        size_t plen = len - (size_t)(slash + 1 - item);
        if (ap_ip_parse(&ip, item, (size_t)(slash - item)) == 0 && !ap_ip_is_v4_mapped(&ip) &&
            plen >= 1 && plen <= 3 && parse_uint(slash + 1, plen, &bits) == 0 &&
            bits <= (ip.family == 4 ? 32u : 128u) &&
            ap_ip_truncate(&net, &ip, (unsigned)bits, (unsigned)bits) == 0 &&
            !ap_ip_is_equal(&net, &ip) && ap_ip_format(&net, net_text, sizeof(net_text)) > 0) {
            err(p, node, "invalid CIDR prefix '%s': bits are set after /%u (did you mean "
                         "'%s/%u'?)", shown, (unsigned)bits, net_text, (unsigned)bits);
            return;
        }
    }
    err(p, node, "invalid CIDR prefix '%s' (expected an IPv4 or IPv6 address with an optional "
                 "/prefix, such as 10.0.0.0/8 or ::1)", shown);
}

static void add_trusted(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_config *cfg = obj;
    size_t len = strlen(s), off = 0;
    if (strspn(s, ", \t\r\n") == len) {
        err(p, node, "empty CIDR prefix");
        return;
    }
    int rc = ap_cidr_list_parse(&cfg->trusted_proxies, s, len, &off);
    if (rc == -ENOMEM) {
        p->oom = 1;
    } else if (rc != 0) {
        AP_BUG_ON(off >= len);
        bad_cidr(p, node, s + off, strcspn(s + off, ", \t\r\n"));
    }
}

static void kw_trusted_proxies(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct ap_config *cfg = obj;
    if (seq_len(node) > MAX_TRUSTED_PROXIES) {
        err(p, node, "too many trusted proxies (%zu, at most %u)", seq_len(node),
            MAX_TRUSTED_PROXIES);
        return;
    }
    for_each_string(p, node, "a CIDR prefix", add_trusted, cfg);
    /* One string may hold several prefixes ("10.0.0.0/8, ::1"). */
    if (cfg->trusted_proxies.n > MAX_TRUSTED_PROXIES)
        err(p, node, "too many trusted proxies (%zu, at most %u)", cfg->trusted_proxies.n,
            MAX_TRUSTED_PROXIES);
}

/* client_address_headers: which forwarding headers the trusted proxies set. */

static const char *const addr_header_names[] = { "x-forwarded-for", "forwarded" };

static const char *addr_header_name(enum ap_clientaddr_header h)
{
    return h == AP_CLIENTADDR_HDR_FORWARDED ? "forwarded" : "x-forwarded-for";
}

struct addr_headers {
    yaml_node_t *seen[AP_ARRAY_SIZE(addr_header_names)];
    char spec[64]; /* "forwarded, x-forwarded-for" at most */
    int bad;
};

static void add_addr_header(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct addr_headers *h = obj;
    char shown[SHOW_MAX + 4];
    size_t i;
    for (i = 0; i < AP_ARRAY_SIZE(addr_header_names); i++)
        if (strcasecmp(s, addr_header_names[i]) == 0)
            break;
    if (i == AP_ARRAY_SIZE(addr_header_names)) {
        bad_name(p, node, "client address header", s, addr_header_names,
                 AP_ARRAY_SIZE(addr_header_names));
        h->bad = 1;
        return;
    }
    if (h->seen[i] != NULL) {
        err(p, node, "duplicate header '%s' (first at %u:%u)", show(shown, s, strlen(s)),
            pos_of(h->seen[i]).line, pos_of(h->seen[i]).col);
        h->bad = 1;
        return;
    }
    h->seen[i] = node;
    size_t used = strlen(h->spec);
    snprintf(h->spec + used, sizeof(h->spec) - used, "%s%s", used ? ", " : "",
             addr_header_names[i]);
}

static void kw_client_address_headers(struct parser *p, const struct keyword *kw,
                                      yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    struct addr_headers h = { .bad = 0 };
    if (seq_len(node) > AP_CLIENTADDR_MAX_HEADERS + 8) {
        /* Longer lists can only hold duplicates; do not report each. */
        err(p, node, "too many headers (expected x-forwarded-for, forwarded, or both)");
        return;
    }
    long n = for_each_string(p, node, "a header name", add_addr_header, &h);
    if (n == 0) {
        err(p, node, "at least one header is required (x-forwarded-for, forwarded, or both)");
        return;
    }
    if (n < 0 || h.bad || h.spec[0] == '\0')
        return;
    int rc = ap_clientaddr_config_set_headers(&cfg->clientaddr, h.spec, strlen(h.spec));
    AP_BUG_ON(rc != 0); /* the names were checked above */
}

/* pseudonyms: a shared secret, and the length of pseudonyms. */

/* The secret is read by the server at start, never here (keys stay out of
 * the config process), but a path that cannot work fails the load now
 * rather than the start. stat(2) comes first so that a FIFO or a device is
 * never opened. */
static void kw_secret_file(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                           void *obj)
{
    struct ap_config *cfg = obj;
    if (is_null(node)) {
        free(cfg->pseudonym_secret_file);
        cfg->pseudonym_secret_file = NULL; /* explicitly unset: a random key per day */
        return;
    }
    const char *s = scalar(p, node, "a file path");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (*s == '\0') {
        err(p, node, "empty file path");
        return;
    }
    struct stat st;
    if (stat(s, &st) != 0) {
        err(p, node, "cannot use secret file '%s': %s", shown, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        err(p, node, "secret file '%s' is not a regular file", shown);
        return;
    }
    if (st.st_size < AP_PSEUDO_SECRET_MIN || st.st_size > AP_PSEUDO_SECRET_MAX) {
        err(p, node, "secret file '%s' holds %lld bytes (expected %d..%d)", shown,
            (long long)st.st_size, AP_PSEUDO_SECRET_MIN, AP_PSEUDO_SECRET_MAX);
        return;
    }
    int fd = open(s, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        err(p, node, "cannot read secret file '%s': %s", shown, strerror(errno));
        return;
    }
    close(fd);
    char *d = xstrdup(p, s);
    if (d != NULL) {
        free(cfg->pseudonym_secret_file);
        cfg->pseudonym_secret_file = d;
    }
}

static void pr_trusted_proxies(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent);
static void pr_client_address_headers(struct printer *pr, const struct keyword *kw,
                                      const void *obj, int indent);
static void pr_secret_file(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent);

static const struct keyword pseudonyms_kws[] = {
    { "secret_file", kw_secret_file, pr_secret_file, .flags = 0 },
    { "bits", kw_bits, pr_integer, FIELD(struct ap_config, pseudonym_bits),
      .min = AP_PSEUDO_BITS_MIN, .max = AP_PSEUDO_BITS_MAX },
    { .name = NULL },
};

/* admin: the admin listener (metrics, health, reload). user, group,
 * run_as_root: privileges after start-up. */

static void kw_admin_address(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                             void *obj)
{
    struct ap_config_admin *a = obj;
    const char *s = scalar(p, node, "an address");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4], host[128];
    const char *port_text, *why;
    int bracketed;
    uint16_t port;
    show(shown, s, strlen(s));
    why = split_hostport(s, host, sizeof(host), &port_text, &bracketed);
    struct sockaddr_storage ss;
    socklen_t len;
    if (why != NULL || numeric_addr(host, 0, &ss, &len) != 0 ||
        (ss.ss_family == AF_INET6) != (bracketed != 0) ||
        parse_port(port_text, strlen(port_text), &port) != 0) {
        err(p, node, "invalid address '%s' (expected a.b.c.d:port or [ipv6]:port)", shown);
        return;
    }
    set_port(&ss, port);
    for (size_t i = 0; i < p->cfg->nlisteners; i++) {
        if (same_addr(&p->cfg->listeners[i].addr, p->cfg->listeners[i].addrlen, &ss, len)) {
            err(p, node, "admin address '%s' is also a listener", shown);
            return;
        }
    }
    free(a->address);
    a->address = xstrdup(p, s);
    a->addr = ss;
    a->addrlen = len;
}

static void kw_admin_token_file(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                void *obj)
{
    struct ap_config_admin *a = obj;
    const char *s = scalar(p, node, "a file path");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (*s == '\0' || access(s, R_OK) != 0) {
        err(p, node, "cannot read token file '%s': %s", shown, *s ? strerror(errno) : "empty path");
        return;
    }
    free(a->token_file);
    a->token_file = xstrdup(p, s);
}

static void pr_opt_string(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);

static const struct keyword admin_kws[] = {
    { "address", kw_admin_address, pr_opt_string, FIELD(struct ap_config_admin, address) },
    { "token_file", kw_admin_token_file, pr_opt_string, FIELD(struct ap_config_admin, token_file) },
    { .name = NULL },
};

static void kw_admin(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    if (is_null(node))
        return;
    cfg->admin.enabled = 1;
    cfg->admin.pos = pos_of(node);
    parse_section(p, kw, node, &cfg->admin, NULL);
    if (cfg->admin.address == NULL) {
        cfg->admin.address = xstrdup(p, "127.0.0.1:9901");
        numeric_addr("127.0.0.1", 9901, &cfg->admin.addr, &cfg->admin.addrlen);
    }
}

static void pr_admin(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

/* geo: coarse location headers (docs/geo.md). Every string and list of
 * cfg->geo.opts is the config's own copy, defaults included, so that
 * config_free has a single shape. The loader checks that the database
 * files can be read but never opens them as databases: the server does
 * that when it starts a configuration (a slow, blocking verification) and
 * reports a bad file there. The value ranges are those of
 * ap_geo_options_validate, which runs last as the authority. */

#define GEO_MIN_VISITORS_MAX 1000000u
#define GEO_TABLE_MAX ((uint64_t)1 << 24) /* floor cells, cache entries */
#define GEO_HEADER_NAME_MAX 64
#define MAX_HOSTING_ASNS 100000u

static const char *const geo_schema_names[] = { "geoip2", "ip-location-db" };
static const char *const geo_lookup_names[] = { "full", "truncated" };

static void geo_defaults(struct parser *p, struct ap_config *cfg)
{
    ap_geo_options_init(&cfg->geo.opts);
    for (size_t i = 0; i < AP_GEO_OUT_COUNT; i++)
        cfg->geo.opts.headers[i] = xstrdup(p, cfg->geo.opts.headers[i]);
    cfg->geo.check_interval_ms = 60 * SECOND_MS;
}

static void geo_free(struct ap_config *cfg)
{
    struct ap_geo_options *o = &cfg->geo.opts;
    free((void *)o->database);
    free((void *)o->database_v6);
    free((void *)o->asn_database);
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++)
        free((void *)o->fields[i]);
    for (size_t i = 0; i < AP_GEO_OUT_COUNT; i++)
        free((void *)o->headers[i]);
    free((void *)o->hosting_asns);
}

/* Replaces the config-owned string at `field` with a copy of `s` (NULL
 * unsets it). */
static void geo_set_string(struct parser *p, const char **field, const char *s)
{
    char *d = NULL;
    if (s != NULL && (d = xstrdup(p, s)) == NULL)
        return;
    free((void *)*field);
    *field = d;
}

/* database, database_v6, asn_database: a readable regular file. stat(2)
 * comes first so that a FIFO or a device is never opened; the open proves
 * the permissions as this process has them now. */
static void kw_geo_file(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char **field = (const char **)((char *)obj + kw->off);
    if (!(kw->flags & KW_REQUIRED) && is_null(node)) {
        geo_set_string(p, field, NULL);
        return;
    }
    const char *s = scalar(p, node, "a file path");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (*s == '\0') {
        err(p, node, "empty file path");
        return;
    }
    struct stat st;
    if (stat(s, &st) != 0) {
        err(p, node, "cannot use database file '%s': %s", shown, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        err(p, node, "database file '%s' is not a regular file", shown);
        return;
    }
    int fd = open(s, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        err(p, node, "cannot read database file '%s': %s", shown, strerror(errno));
        return;
    }
    close(fd);
    geo_set_string(p, field, s);
}

static void kw_geo_schema(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    const char *s = scalar(p, node, "a schema");
    if (s != NULL && ap_geo_options_parse_schema(&cfg->geo.opts.schema, s) != 0)
        bad_name(p, node, "schema", s, geo_schema_names, AP_ARRAY_SIZE(geo_schema_names));
}

static void kw_geo_precision(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                             void *obj)
{
    struct ap_config *cfg = obj;
    const char *s = scalar(p, node, "a precision level");
    if (s == NULL || ap_geo_options_parse_level(&cfg->geo.opts.precision, s) == 0)
        return;
    const char *names[AP_GEO_LEVEL_CITY + 1];
    for (int i = AP_GEO_LEVEL_NONE; i <= AP_GEO_LEVEL_CITY; i++)
        names[i] = ap_geo_format_level((enum ap_geo_level)i);
    bad_name(p, node, "precision level", s, names, AP_ARRAY_SIZE(names));
}

static void kw_geo_lookup(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    const char *s = scalar(p, node, "a lookup mode");
    if (s != NULL && ap_geo_options_parse_addr(&cfg->geo.opts.lookup, s) != 0)
        bad_name(p, node, "lookup mode", s, geo_lookup_names, AP_ARRAY_SIZE(geo_lookup_names));
}

static void kw_geo_coords(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    const char *s = scalar(p, node, "a coordinates mode");
    if (s == NULL || ap_geo_options_parse_coords(&cfg->geo.opts, s) == 0)
        return;
    char shown[SHOW_MAX + 4];
    err(p, node, "invalid coordinates '%s' (expected drop, round:N with N in 0..%d, or grid:KM "
                 "with KM in %g..%g)",
        show(shown, s, strlen(s)), AP_GEO_COORD_DECIMALS_MAX, AP_GEO_GRID_KM_MIN,
        AP_GEO_GRID_KM_MAX);
}

/* keep_asn, timezone: bool fields of the options. */
static void kw_geo_bool(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    int b = parse_bool(p, node);
    if (b < 0)
        return;
    AP_BUG_ON(kw->size != sizeof(bool));
    bool v = b != 0;
    memcpy((char *)obj + kw->off, &v, sizeof(v));
}

/* fields.<name>: a dotted path replacing the schema's; null keeps it. The
 * name is looked up with geo's own parser, which knows no postcode. */
static void kw_geo_field(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_geo_options *o = obj;
    enum ap_geo_field f;
    if (ap_geo_options_parse_field(&f, kw->name) != 0) {
        err(p, node, "postal codes are never read: '%s' is not a field", kw->name);
        return;
    }
    if (is_null(node)) {
        geo_set_string(p, &o->fields[f], NULL);
        return;
    }
    const char *s = scalar(p, node, "a field path");
    if (s == NULL)
        return;
    if (!ap_geo_options_is_valid_path(s)) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid field path '%s' (1 to %d names or array indexes of letters, "
                     "digits, '_' and '-', joined by dots)",
            show(shown, s, strlen(s)), AP_GEO_PATH_DEPTH);
        return;
    }
    geo_set_string(p, &o->fields[f], s);
}

/* headers.<value>: the header name that carries it; null leaves the value
 * out. kw->min is the enum ap_geo_out of the value. */
static void kw_geo_header(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_geo_options *o = obj;
    AP_BUG_ON(kw->min >= AP_GEO_OUT_COUNT);
    if (is_null(node)) {
        geo_set_string(p, &o->headers[kw->min], NULL);
        return;
    }
    const char *s = scalar(p, node, "a header name");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    if (!is_token(s) || strlen(s) > GEO_HEADER_NAME_MAX) {
        err(p, node, "invalid header name '%s' (expected a token of at most %d characters, "
                     "such as X-Geo-Country)", shown, GEO_HEADER_NAME_MAX);
        return;
    }
    /* The proxy drops inbound headers of the geo names: one of these
     * would lose the request's own. */
    if (is_managed_header(s)) {
        err(p, node, "header '%s' is managed by the proxy and cannot carry a location", shown);
        return;
    }
    geo_set_string(p, &o->headers[kw->min], s);
}

/* Printed by pr_geo_fields and pr_geo_headers, which show nulls their way. */
static const struct keyword geo_fields_kws[] = {
    { "continent", kw_geo_field, NULL, .flags = 0 },
    { "country", kw_geo_field, NULL, .flags = 0 },
    { "region", kw_geo_field, NULL, .flags = 0 },
    { "city", kw_geo_field, NULL, .flags = 0 },
    { "latitude", kw_geo_field, NULL, .flags = 0 },
    { "longitude", kw_geo_field, NULL, .flags = 0 },
    { "timezone", kw_geo_field, NULL, .flags = 0 },
    /* Not a field: a key of its own so that its error says why. */
    { "postcode", kw_geo_field, NULL, .flags = 0 },
    { .name = NULL },
};

static const struct keyword geo_headers_kws[] = {
    { "continent", kw_geo_header, NULL, .min = AP_GEO_OUT_CONTINENT },
    { "country", kw_geo_header, NULL, .min = AP_GEO_OUT_COUNTRY },
    { "region", kw_geo_header, NULL, .min = AP_GEO_OUT_REGION },
    { "city", kw_geo_header, NULL, .min = AP_GEO_OUT_CITY },
    { "timezone", kw_geo_header, NULL, .min = AP_GEO_OUT_TIMEZONE },
    { .name = NULL },
};

static const struct keyword geo_min_visitors_kws[] = {
    { "region", kw_integer, pr_integer, FIELD(struct ap_geo_options, min_visitors_region),
      .min = 0, .max = GEO_MIN_VISITORS_MAX },
    { "city", kw_integer, pr_integer, FIELD(struct ap_geo_options, min_visitors_city),
      .min = 0, .max = GEO_MIN_VISITORS_MAX },
    { .name = NULL },
};

/* Two values may not share a header name, defaults included: one header
 * cannot carry both. Reported at the name the file wrote. */
static void kw_geo_headers(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                           void *obj)
{
    struct seen seen[MAX_KEYWORDS];
    size_t before = p->nerrors + p->dropped;
    /* A name refused above leaves its default, which may clash: say nothing. */
    if (parse_section(p, kw, node, obj, seen) != 0 || p->nerrors + p->dropped != before)
        return;
    const struct ap_geo_options *o = (const struct ap_geo_options *)((char *)obj + kw->off);
    /* geo_headers_kws, and so seen[], are in enum ap_geo_out order. */
    for (size_t j = 1; j < AP_GEO_OUT_COUNT; j++) {
        for (size_t i = 0; i < j; i++) {
            if (o->headers[i] == NULL || o->headers[j] == NULL ||
                strcasecmp(o->headers[i], o->headers[j]) != 0)
                continue;
            size_t at = seen[j].val != NULL ? j : i, other = at == j ? i : j;
            AP_BUG_ON(seen[at].val == NULL); /* the defaults differ from each other */
            char shown[SHOW_MAX + 4];
            size_t saved = push_key(p, geo_headers_kws[at].name);
            err(p, seen[at].val, "header '%s' is already the %s header",
                show(shown, o->headers[at], strlen(o->headers[at])), geo_headers_kws[other].name);
            pop(p, saved);
            break;
        }
    }
}

/* hosting_asns: null is the built-in list, [] none at all (an empty but
 * non-NULL array), else AS numbers. */
static void add_hosting_asn(struct parser *p, yaml_node_t *node, const char *s, void *obj)
{
    struct ap_config *cfg = obj;
    uint64_t v = 0;
    if (parse_uint(s, strlen(s), &v) != 0 || v == 0 || v > UINT32_MAX) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid AS number '%s' (expected 1..4294967295)", show(shown, s, strlen(s)));
        return;
    }
    uint32_t *list = (uint32_t *)cfg->geo.opts.hosting_asns;
    list[cfg->geo.opts.nhosting_asns++] = (uint32_t)v;
}

static void kw_geo_hosting_asns(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                void *obj)
{
    struct ap_config *cfg = obj;
    free((void *)cfg->geo.opts.hosting_asns);
    cfg->geo.opts.hosting_asns = NULL;
    cfg->geo.opts.nhosting_asns = 0;
    if (is_null(node))
        return;
    if (node->type == YAML_SEQUENCE_NODE && seq_len(node) > MAX_HOSTING_ASNS) {
        err(p, node, "too many AS numbers (%zu, at most %u)", seq_len(node), MAX_HOSTING_ASNS);
        return;
    }
    cfg->geo.opts.hosting_asns = xcalloc(p, seq_len(node), sizeof(uint32_t));
    if (cfg->geo.opts.hosting_asns != NULL)
        for_each_string(p, node, "an AS number", add_hosting_asn, cfg);
}

static void pr_geo_path(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_geo_schema(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_geo_fields(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_geo_hosting_asns(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent);
static void pr_geo_bool(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_geo_precision(struct printer *pr, const struct keyword *kw, const void *obj,
                             int indent);
static void pr_geo_coords(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_geo_lookup(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent);
static void pr_geo_headers(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent);

/* The `geo:` section; obj is the whole struct ap_config. */
static const struct keyword geo_kws[] = {
    { "database", kw_geo_file, pr_geo_path, FIELD(struct ap_config, geo.opts.database),
      .flags = KW_REQUIRED },
    { "database_v6", kw_geo_file, pr_geo_path, FIELD(struct ap_config, geo.opts.database_v6) },
    { "schema", kw_geo_schema, pr_geo_schema, .flags = 0 },
    { "fields", kw_section, pr_geo_fields, .off = offsetof(struct ap_config, geo.opts),
      .sub = geo_fields_kws },
    { "asn_database", kw_geo_file, pr_geo_path, FIELD(struct ap_config, geo.opts.asn_database) },
    { "hosting_asns", kw_geo_hosting_asns, pr_geo_hosting_asns, .flags = 0 },
    { "keep_asn", kw_geo_bool, pr_geo_bool, FIELD(struct ap_config, geo.opts.keep_asn) },
    { "precision", kw_geo_precision, pr_geo_precision, .flags = 0 },
    { "coordinates", kw_geo_coords, pr_geo_coords, .flags = 0 },
    { "timezone", kw_geo_bool, pr_geo_bool, FIELD(struct ap_config, geo.opts.timezone) },
    { "min_visitors", kw_section, pr_section, .off = offsetof(struct ap_config, geo.opts),
      .sub = geo_min_visitors_kws },
    { "floor_max_cells", kw_integer, pr_integer,
      FIELD(struct ap_config, geo.opts.floor_max_cells), .min = 1, .max = GEO_TABLE_MAX },
    { "lookup", kw_geo_lookup, pr_geo_lookup, .flags = 0 },
    { "headers", kw_geo_headers, pr_geo_headers, .off = offsetof(struct ap_config, geo.opts),
      .sub = geo_headers_kws },
    { "cache_size", kw_integer, pr_integer, FIELD(struct ap_config, geo.opts.cache_size),
      .min = 0, .max = GEO_TABLE_MAX },
    { "check_interval", kw_duration, pr_duration, FIELD(struct ap_config, geo.check_interval_ms),
      .min = SECOND_MS, .max = DAY_MS },
    { .name = NULL },
};

/* The section present turns geolocation on; `geo: ~` leaves it off, as
 * `admin: ~` does. ap_geo_options_validate has the last word on the whole
 * set of options, once every key parsed cleanly; its message names the key,
 * and is reported at the section. */
static void kw_geo(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    if (is_null(node))
        return;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping, got %s", type_name(node));
        return;
    }
    size_t before = p->nerrors + p->dropped;
    cfg->geo.enabled = 1;
    cfg->geo.pos = pos_of(node);
    parse_table(p, node, geo_kws, cfg, NULL);
    if (p->oom || p->nerrors + p->dropped != before)
        return;
    char msg[AP_GEO_ERR_LEN];
    if (ap_geo_options_validate(&cfg->geo.opts, msg, sizeof(msg)) != 0)
        add_error(p, cfg->geo.pos.line, cfg->geo.pos.col, msg);
}

static void pr_geo(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

static void kw_account(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "a name");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    if (!is_valid_name(s)) {
        err(p, node, "invalid %s name '%s'", kw->name, show(shown, s, strlen(s)));
        return;
    }
    char **field = (char **)((char *)obj + kw->off);
    free(*field);
    *field = xstrdup(p, s);
}

static void kw_run_as_root(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        cfg->run_as_root = (unsigned)b;
}

static void pr_run_as_root(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

static void pr_workers(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_listen(struct printer *pr, const struct keyword *kw, const void *obj, int indent);
static void pr_upstreams(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent);
static void pr_routes(struct printer *pr, const struct keyword *kw, const void *obj, int indent);

/* Log sinks, the access log and syslog listeners (issue 8,
 * docs/logging.md). `log_sinks` is parsed before the routes and the access
 * log, which name sinks; `syslog_listen` after the routes, whose `type:
 * logs` ones it names. */

#define KW_SINK_FILE 0x100u   /* only meaningful for file sinks */
#define KW_SINK_SYSLOG 0x200u
#define KW_SINK_HTTP 0x400u
#define KW_SINK_ALL (KW_SINK_FILE | KW_SINK_SYSLOG | KW_SINK_HTTP)
#define MAX_SYSLOG_LISTEN 64u
#define MAX_LOG_HEADERS 32u

/* Index k of these names is enum value k + 1. */
static const char *const log_sink_type_names[] = { "file", "stdout", "syslog", "http" };
static const char *const when_full_names[] = { "spool", "block", "drop_newest" };
static const char *const spool_fsync_names[] = { "batch", "always", "never" };
static const char *const syslog_format_names[] = { "rfc5424", "rfc3164" };
static const char *const facility_names[] = {
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7" };
static const char *const log_format_names[] = { "json", "text" };

/* A scalar that must be one of `names`: its index, or -1 after reporting. */
static int parse_choice(struct parser *p, yaml_node_t *node, const char *what,
                        const char *const *names, size_t n)
{
    const char *s = scalar(p, node, what);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    bad_name(p, node, what, s, names, n);
    return -1;
}

static unsigned sink_type_flag(enum ap_log_sink_type t)
{
    switch (t) {
    case AP_LOG_SINK_FILE: return KW_SINK_FILE;
    case AP_LOG_SINK_SYSLOG: return KW_SINK_SYSLOG;
    case AP_LOG_SINK_HTTP: return KW_SINK_HTTP;
    default: return 0;
    }
}

static void kw_log_sink_type(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    int i = parse_choice(p, node, "sink type", log_sink_type_names,
                         AP_ARRAY_SIZE(log_sink_type_names));
    if (i >= 0)
        k->type = (enum ap_log_sink_type)(i + 1);
}

/* A non-empty string without control characters into the char * at kw->off. */
static void kw_log_string(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    const char *s = scalar(p, node, "a string");
    if (s == NULL)
        return;
    if (has_control(s) || strlen(s) > 4000) {
        char shown[SHOW_MAX + 4];
        err(p, node, "invalid value '%s' (at most 4000 characters, no control characters)",
            show(shown, s, strlen(s)));
        return;
    }
    char *d = xstrdup(p, s);
    if (d == NULL)
        return;
    char **f = (char **)((char *)obj + kw->off);
    free(*f);
    *f = d;
}

static void kw_when_full(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    int i = parse_choice(p, node, "when_full policy", when_full_names, AP_ARRAY_SIZE(when_full_names));
    if (i >= 0)
        k->when_full = (enum ap_log_when_full)i;
}

static void kw_spool_fsync(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_spool *sp = obj;
    int i = parse_choice(p, node, "fsync policy", spool_fsync_names, AP_ARRAY_SIZE(spool_fsync_names));
    if (i >= 0)
        sp->fsync = (unsigned)i;
}

static void kw_syslog_format(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    int i = parse_choice(p, node, "syslog format", syslog_format_names,
                         AP_ARRAY_SIZE(syslog_format_names));
    if (i >= 0)
        k->syslog_format = (unsigned)i;
}

static void kw_facility(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    const char *s = scalar(p, node, "a facility");
    if (s == NULL)
        return;
    uint64_t v;
    if (parse_uint(s, strlen(s), &v) == 0) {
        if (v > 23) {
            err(p, node, "facility %s is out of range (0..23)", s);
            return;
        }
        k->facility = (unsigned)v;
        return;
    }
    int i = parse_choice(p, node, "facility", facility_names, AP_ARRAY_SIZE(facility_names));
    if (i >= 0)
        k->facility = (unsigned)i;
}

static void kw_log_gzip(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    int b = parse_bool(p, node);
    if (b >= 0)
        k->gzip = (unsigned)b;
}

/* "udp://host:port", "tcp://host:port", and with `allow_unix` "unix:/path".
 * Host names are resolved (once, now) when `allow_names`. Returns 0, or
 * -EINVAL after reporting. */
static int parse_log_address(struct parser *p, yaml_node_t *node, const char *s, int allow_unix,
                             int allow_names, enum ap_log_transport *tr,
                             struct sockaddr_storage *ss, socklen_t *len)
{
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    const char *rest;
    if (strncmp(s, "udp://", 6) == 0) {
        *tr = AP_LOG_UDP;
        rest = s + 6;
    } else if (strncmp(s, "tcp://", 6) == 0) {
        *tr = AP_LOG_TCP;
        rest = s + 6;
    } else if (allow_unix && strncmp(s, "unix:", 5) == 0) {
        const char *path = s + 5;
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        *tr = AP_LOG_UNIX;
        if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path)) {
            err(p, node, "invalid address '%s' (a unix socket path is absolute and at most %zu "
                         "characters)", shown, sizeof(sun->sun_path) - 1);
            return -EINVAL;
        }
        memset(ss, 0, sizeof(*ss));
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        return 0;
    } else {
        err(p, node, "invalid address '%s' (expected udp://host:port, tcp://host:port%s)", shown,
            allow_unix ? " or unix:/path" : "");
        return -EINVAL;
    }
    char host[300];
    const char *port_text;
    int bracketed;
    uint16_t port;
    const char *why = split_hostport(rest, host, sizeof(host), &port_text, &bracketed);
    if (why != NULL) {
        err(p, node, "invalid address '%s': %s", shown, why);
        return -EINVAL;
    }
    if (parse_port(port_text, strlen(port_text), &port) != 0) {
        char shown_port[SHOW_MAX + 4];
        err(p, node, "invalid port '%s' in '%s' (expected 1..65535)",
            show(shown_port, port_text, strlen(port_text)), shown);
        return -EINVAL;
    }
    if (numeric_addr(host, port, ss, len) == 0) {
        if ((ss->ss_family == AF_INET6) != (bracketed != 0)) {
            err(p, node, "invalid address '%s': IPv6 addresses are written in brackets, "
                         "[addr]:port", shown);
            return -EINVAL;
        }
        return 0;
    }
    if (!allow_names || bracketed || !is_valid_hostname(host) || has_numeric_tld(host)) {
        err(p, node, "invalid address '%s': %s", shown,
            allow_names ? "invalid host" : "not a numeric address (host names are not allowed here)");
        return -EINVAL;
    }
    lowercase(host);
    int rc = resolve(p, host, ss, len, &why);
    if (rc == -ENOMEM)
        return rc;
    if (rc != 0) {
        char shown_host[SHOW_MAX + 4];
        err(p, node, "cannot resolve '%s': %s", show(shown_host, host, strlen(host)), why);
        return -EINVAL;
    }
    set_port(ss, port);
    return 0;
}

static void kw_log_sink_address(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                void *obj)
{
    struct ap_config_log_sink *k = obj;
    const char *s = scalar(p, node, "an address");
    if (s == NULL || parse_log_address(p, node, s, 1, 1, &k->transport, &k->addr, &k->addrlen) != 0)
        return;
    k->address = xstrdup(p, s);
}

static void kw_log_url(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    const char *url = scalar(p, node, "a URL");
    if (url == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, url, strlen(url));
    int https = strncasecmp(url, "https://", 8) == 0;
    if (!https && strncasecmp(url, "http://", 7) != 0) {
        err(p, node, "invalid URL '%s' (expected http[s]://host[:port][/path])", shown);
        return;
    }
    const char *auth = url + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (strchr(rest, '#') != NULL || has_control(rest) || strchr(rest, ' ') != NULL) {
        err(p, node, "invalid URL '%s' (no fragment, spaces or control characters)", shown);
        return;
    }
    char base[400];
    if (alen > 300) {
        err(p, node, "invalid host in URL '%s'", shown);
        return;
    }
    snprintf(base, sizeof(base), "%s://%.*s", https ? "https" : "http", (int)alen, auth);
    struct ap_config_server srv;
    memset(&srv, 0, sizeof(srv));
    if (parse_server_url(p, node, base, &srv) != 0)
        return;
    free(srv.url);
    k->url = xstrdup(p, url);
    k->url_tls = (unsigned)https;
    k->url_host = srv.host;
    k->url_authority = srv.authority;
    k->url_port = srv.port;
    if (rest[0] == '/') {
        k->url_path = xstrdup(p, rest);
    } else {
        /* "http://h" is "/", "http://h?q" is "/?q". */
        size_t n = strlen(rest) + 2;
        k->url_path = malloc(n);
        if (k->url_path == NULL)
            p->oom = 1;
        else
            snprintf(k->url_path, n, "/%s", rest);
    }
    k->addr = srv.addr;
    k->addrlen = srv.addrlen;
}

/* log_sinks.NAME.tls: parsed after url (table order), so the scheme is known. */
static void kw_log_tls(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    if (k->url != NULL && !k->url_tls) {
        err(p, node, "only applies to https:// URLs");
        return;
    }
    parse_client_tls(p, node, &k->tls);
}

static void kw_log_headers(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_log_sink *k = obj;
    if (is_null(node))
        return;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping of header names to values, got %s", type_name(node));
        return;
    }
    yaml_node_pair_t *start = node->data.mapping.pairs.start;
    size_t n = (size_t)(node->data.mapping.pairs.top - start);
    if (n > MAX_LOG_HEADERS) {
        err(p, node, "too many headers (%zu, at most %u)", n, MAX_LOG_HEADERS);
        return;
    }
    k->headers = xcalloc(p, n, sizeof(*k->headers));
    if (k->headers == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key = node_at(p, start[i].key);
        yaml_node_t *val = node_at(p, start[i].value);
        const char *name = scalar(p, key, "a header name");
        const char *v = scalar(p, val, "a header value");
        if (name == NULL || v == NULL)
            continue;
        char shown[SHOW_MAX + 4];
        if (!is_token(name)) {
            err(p, key, "invalid header name '%s'", show(shown, name, strlen(name)));
            continue;
        }
        static const char *const managed[] = { "host", "content-length", "content-type",
                                               "content-encoding", "transfer-encoding",
                                               "connection" };
        int bad = 0;
        for (size_t j = 0; j < AP_ARRAY_SIZE(managed); j++)
            bad |= strcasecmp(name, managed[j]) == 0;
        if (bad) {
            err(p, key, "header '%s' is set by the sink itself", show(shown, name, strlen(name)));
            continue;
        }
        if (!is_header_value(v)) {
            err(p, val, "invalid header value (visible characters, no line breaks, no leading "
                        "or trailing blanks)");
            continue;
        }
        size_t len = strlen(name) + strlen(v) + 3;
        char *line = malloc(len);
        if (line == NULL) {
            p->oom = 1;
            return;
        }
        snprintf(line, len, "%s: %s", name, v);
        k->headers[k->nheaders++] = line;
    }
}

static const struct keyword log_spool_kws[] = {
    { "dir", kw_log_string, pr_string, FIELD(struct ap_config_log_spool, dir) },
    { "max_bytes", kw_size, pr_size, FIELD(struct ap_config_log_spool, max_bytes),
      .min = 64 * KiB, .max = 64 * TiB },
    { "segment_bytes", kw_size, pr_size, FIELD(struct ap_config_log_spool, segment_bytes),
      .min = 4 * KiB, .max = GiB },
    { "fsync", kw_spool_fsync, pr_spool_fsync, .flags = 0 },
    { .name = NULL },
};

static const struct keyword log_batch_kws[] = {
    { "max_events", kw_integer, pr_integer, FIELD(struct ap_config_log_sink, batch_max_events),
      .min = 1, .max = 1000000 },
    { "max_bytes", kw_size, pr_size, FIELD(struct ap_config_log_sink, batch_max_bytes),
      .min = KiB, .max = 64 * MiB },
    { "max_age", kw_duration, pr_duration, FIELD(struct ap_config_log_sink, batch_max_age_ms),
      .min = 1, .max = HOUR_MS },
    { .name = NULL },
};

static const struct keyword log_retry_kws[] = {
    { "initial", kw_duration, pr_duration, FIELD(struct ap_config_log_sink, retry_initial_ms),
      .min = 1, .max = HOUR_MS },
    { "max", kw_duration, pr_duration, FIELD(struct ap_config_log_sink, retry_max_ms),
      .min = 1, .max = DAY_MS },
    { .name = NULL },
};

static const struct keyword log_sink_kws[] = {
    { "type", kw_log_sink_type, pr_log_sink_type, .flags = KW_REQUIRED },
    { "path", kw_log_string, pr_string, FIELD(struct ap_config_log_sink, path),
      .flags = KW_SINK_FILE },
    { "address", kw_log_sink_address, pr_log_sink_address, .flags = KW_SINK_SYSLOG },
    { "format", kw_syslog_format, pr_syslog_format, .flags = KW_SINK_SYSLOG },
    { "facility", kw_facility, pr_facility, .flags = KW_SINK_SYSLOG },
    { "app_name", kw_log_string, pr_string, FIELD(struct ap_config_log_sink, app_name),
      .flags = KW_SINK_SYSLOG },
    { "max_message_bytes", kw_size, pr_size, FIELD(struct ap_config_log_sink, max_message_bytes),
      .min = 480, .max = MiB, .flags = KW_SINK_SYSLOG },
    { "url", kw_log_url, pr_log_url, .flags = KW_SINK_HTTP },
    { "tls", kw_log_tls, pr_log_tls, .flags = KW_SINK_HTTP },
    { "headers", kw_log_headers, pr_log_headers, .flags = KW_SINK_HTTP },
    { "gzip", kw_log_gzip, pr_log_gzip, .flags = KW_SINK_HTTP },
    { "batch", kw_section, pr_section, .off = 0, .sub = log_batch_kws, .flags = KW_SINK_HTTP },
    { "timeout", kw_duration, pr_duration, FIELD(struct ap_config_log_sink, timeout_ms),
      .min = 1, .max = HOUR_MS },
    { "queue", kw_integer, pr_integer, FIELD(struct ap_config_log_sink, queue),
      .min = 1, .max = 10000000 },
    { "when_full", kw_when_full, pr_when_full, .flags = 0 },
    { "spool", kw_section, pr_section, FIELD(struct ap_config_log_sink, spool),
      .sub = log_spool_kws },
    { "retry", kw_section, pr_section, .off = 0, .sub = log_retry_kws },
    { .name = NULL },
};

static void parse_log_sink(struct parser *p, yaml_node_t *key, yaml_node_t *val,
                           struct ap_config_log_sink *k)
{
    struct ap_config *cfg = p->cfg;
    k->pos = pos_of(key);
    k->queue = 10000;
    k->when_full = AP_LOG_WHEN_FULL_SPOOL;
    k->facility = 16;
    k->max_message_bytes = 8 * KiB;
    k->timeout_ms = 10 * SECOND_MS;
    k->batch_max_events = 1000;
    k->batch_max_bytes = MiB;
    k->batch_max_age_ms = SECOND_MS;
    k->retry_initial_ms = 500;
    k->retry_max_ms = 30 * SECOND_MS;
    k->tls.verify = 1;
    k->spool.max_bytes = GiB;
    k->spool.segment_bytes = 16 * MiB;
    k->app_name = xstrdup(p, "anonproxy");
    const char *name = scalar(p, key, "a sink name");
    if (name == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, name, strlen(name));
    if (!is_valid_name(name)) {
        err(p, key, "invalid sink name '%s' (letters, digits, '_', '-', '.'; at most 64)", shown);
    } else {
        for (const struct ap_config_log_sink *q = cfg->log_sinks; q < k; q++) {
            if (q->name != NULL && strcmp(q->name, name) == 0) {
                err(p, key, "duplicate sink name '%s' (first at %u:%u)", shown, q->pos.line,
                    q->pos.col);
                break;
            }
        }
    }
    k->name = xstrdup(p, name);
    char dir[128];
    snprintf(dir, sizeof(dir), "/var/spool/anonproxy/%s", name);
    k->spool.dir = xstrdup(p, dir);

    size_t saved = push_key(p, name);
    if (val->type != YAML_MAPPING_NODE) {
        err(p, val, "expected a mapping, got %s", is_null(val) ? "nothing" : type_name(val));
        pop(p, saved);
        return;
    }
    struct seen seen[MAX_KEYWORDS];
    parse_table(p, val, log_sink_kws, k, seen);
    unsigned have = sink_type_flag(k->type);
    for (size_t i = 0; log_sink_kws[i].name != NULL && k->type != 0; i++) {
        unsigned f = log_sink_kws[i].flags & KW_SINK_ALL;
        if (f != 0 && (f & have) == 0 && seen[i].key != NULL) {
            size_t s2 = push_key(p, log_sink_kws[i].name);
            err(p, seen[i].key, "only applies to %s sinks",
                f == KW_SINK_FILE ? "file" : f == KW_SINK_SYSLOG ? "syslog" : "http");
            pop(p, s2);
        }
    }
    const char *need = k->type == AP_LOG_SINK_FILE ? "path"
                       : k->type == AP_LOG_SINK_SYSLOG ? "address"
                       : k->type == AP_LOG_SINK_HTTP ? "url"
                                                      : NULL;
    for (size_t i = 0; need != NULL && log_sink_kws[i].name != NULL; i++)
        if (strcmp(log_sink_kws[i].name, need) == 0 && seen[i].key == NULL)
            err(p, val, "missing required key '%s' (a %s sink needs one)", need,
                log_sink_type_names[k->type - 1]);
    if (k->retry_max_ms < k->retry_initial_ms)
        err(p, val, "retry.max is shorter than retry.initial");
    pop(p, saved);
}

static void kw_log_sinks(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    if (is_null(node))
        return;
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping of sink names, got %s", type_name(node));
        return;
    }
    size_t n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    if (n > MAX_LOG_SINKS) {
        err(p, node, "too many log sinks (%zu, at most %u)", n, MAX_LOG_SINKS);
        return;
    }
    cfg->log_sinks = xcalloc(p, n, sizeof(*cfg->log_sinks));
    if (cfg->log_sinks == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *pair = &node->data.mapping.pairs.start[i];
        parse_log_sink(p, node_at(p, pair->key), node_at(p, pair->value),
                       &cfg->log_sinks[cfg->nlog_sinks++]);
    }
    /* Two sinks spooling into one directory would replay each other's
     * records; the spool lock would refuse the second at start anyway. */
    for (size_t i = 1; i < cfg->nlog_sinks; i++) {
        const struct ap_config_log_sink *a = &cfg->log_sinks[i];
        for (size_t j = 0; j < i && a->spool.dir != NULL; j++) {
            const struct ap_config_log_sink *b = &cfg->log_sinks[j];
            if (b->spool.dir == NULL || strcmp(a->spool.dir, b->spool.dir) != 0 ||
                a->when_full != AP_LOG_WHEN_FULL_SPOOL || b->when_full != AP_LOG_WHEN_FULL_SPOOL)
                continue;
            yaml_node_t *k = node_at(p, node->data.mapping.pairs.start[i].key);
            char shown[SHOW_MAX + 4];
            size_t saved = push_key(p, a->name ? a->name : "?");
            err(p, k, "spool.dir '%s' is also the spool of sink '%s'",
                show(shown, a->spool.dir, strlen(a->spool.dir)), b->name ? b->name : "?");
            pop(p, saved);
            break;
        }
    }
}

/* ---- access_log ---- */

static void kw_access_format(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_access_log *al = obj;
    int i = parse_choice(p, node, "log format", log_format_names, AP_ARRAY_SIZE(log_format_names));
    if (i >= 0)
        al->format = (enum ap_log_format)i;
}

static void kw_access_template(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                               void *obj)
{
    struct ap_config_access_log *al = obj;
    const char *s = scalar(p, node, "a template");
    if (s == NULL)
        return;
    if (al->format != AP_LOG_FORMAT_TEXT) {
        err(p, node, "a template applies only to format: text");
        return;
    }
    struct ap_logfmt_tmpl t;
    char why[160];
    int rc = ap_logfmt_template_compile(s, &t, why, sizeof(why));
    if (rc == -ENOMEM) {
        p->oom = 1;
        return;
    }
    if (rc != 0) {
        err(p, node, "invalid template: %s", why);
        return;
    }
    ap_logfmt_template_free(&t);
    al->template = xstrdup(p, s);
}

static void kw_access_sinks(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config_access_log *al = obj;
    if (is_null(node) || (node->type == YAML_SEQUENCE_NODE && seq_len(node) == 0)) {
        err(p, node, "at least one sink is required");
        return;
    }
    parse_sink_refs(p, node, &al->sinks, &al->nsinks);
}

static const struct keyword access_log_kws[] = {
    { "format", kw_access_format, pr_access_format, .flags = 0 },
    { "template", kw_access_template, pr_access_template, .flags = 0 },
    { "sinks", kw_access_sinks, pr_access_sinks, .flags = KW_REQUIRED },
    { "worker_queue", kw_size, pr_size, FIELD(struct ap_config_access_log, worker_queue_bytes),
      .min = 64 * KiB, .max = GiB },
    { .name = NULL },
};

static void kw_access_log(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    struct ap_config_access_log *al = &cfg->access_log;
    al->pos = pos_of(node);
    if (node->type != YAML_MAPPING_NODE) {
        err(p, node, "expected a mapping with at least 'sinks', got %s",
            is_null(node) ? "nothing" : type_name(node));
        return;
    }
    al->set = 1;
    parse_table(p, node, access_log_kws, al, NULL);
}

/* ---- syslog_listen ---- */

static void kw_syslog_listen_address(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                     void *obj)
{
    struct ap_config_syslog_listen *l = obj;
    const char *s = scalar(p, node, "an address");
    if (s == NULL || parse_log_address(p, node, s, 0, 0, &l->transport, &l->addr, &l->addrlen) != 0)
        return;
    for (const struct ap_config_syslog_listen *q = p->cfg->syslog_listen; q < l; q++) {
        if (q->address != NULL && q->transport == l->transport &&
            same_addr(&q->addr, q->addrlen, &l->addr, l->addrlen)) {
            char shown[SHOW_MAX + 4];
            err(p, node, "duplicate syslog listener '%s' (first at %u:%u)",
                show(shown, s, strlen(s)), q->pos.line, q->pos.col);
            return;
        }
    }
    l->address = xstrdup(p, s);
}

static void kw_syslog_listen_route(struct parser *p, const struct keyword *kw, yaml_node_t *node,
                                   void *obj)
{
    struct ap_config_syslog_listen *l = obj;
    const char *s = scalar(p, node, "a route name");
    if (s == NULL)
        return;
    char shown[SHOW_MAX + 4];
    show(shown, s, strlen(s));
    for (size_t i = 0; i < p->cfg->nroutes; i++) {
        const struct ap_config_route *r = &p->cfg->routes[i];
        if (r->name == NULL || strcmp(r->name, s) != 0)
            continue;
        if (r->type != AP_ROUTE_LOGS) {
            err(p, node, "route '%s' is not of type logs", shown);
            return;
        }
        l->route = r;
        l->route_name = xstrdup(p, s);
        return;
    }
    err(p, node, "unknown route '%s'", shown);
}

static const struct keyword syslog_listen_kws[] = {
    { "address", kw_syslog_listen_address, pr_syslog_listen_address, .flags = KW_REQUIRED },
    { "route", kw_syslog_listen_route, pr_syslog_listen_route, .flags = KW_REQUIRED },
    { "max_message_bytes", kw_size, pr_size,
      FIELD(struct ap_config_syslog_listen, max_message_bytes), .min = 480, .max = MiB },
    { .name = NULL },
};

static void kw_syslog_listen(struct parser *p, const struct keyword *kw, yaml_node_t *node, void *obj)
{
    struct ap_config *cfg = obj;
    if (is_null(node))
        return;
    if (node->type != YAML_SEQUENCE_NODE) {
        err(p, node, "expected a list of listeners, got %s", type_name(node));
        return;
    }
    size_t n = seq_len(node);
    if (n > MAX_SYSLOG_LISTEN) {
        err(p, node, "too many syslog listeners (%zu, at most %u)", n, MAX_SYSLOG_LISTEN);
        return;
    }
    cfg->syslog_listen = xcalloc(p, n, sizeof(*cfg->syslog_listen));
    if (cfg->syslog_listen == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(p, node->data.sequence.items.start[i]);
        struct ap_config_syslog_listen *l = &cfg->syslog_listen[cfg->nsyslog_listen++];
        l->pos = pos_of(item);
        l->max_message_bytes = 64 * KiB;
        size_t saved = push_index(p, i);
        if (item->type != YAML_MAPPING_NODE)
            err(p, item, "expected a mapping, got %s", type_name(item));
        else
            parse_table(p, item, syslog_listen_kws, l, NULL);
        pop(p, saved);
    }
}

static void free_logging(struct ap_config *cfg)
{
    for (size_t i = 0; i < cfg->nlog_sinks; i++) {
        struct ap_config_log_sink *k = &cfg->log_sinks[i];
        free(k->name);
        free(k->path);
        free(k->address);
        free(k->app_name);
        free(k->url);
        free(k->url_host);
        free(k->url_authority);
        free(k->url_path);
        free(k->tls.ca_file);
        free(k->tls.server_name);
        free(k->tls.client_cert);
        free(k->tls.client_key);
        for (size_t j = 0; j < k->nheaders; j++)
            free(k->headers[j]);
        free(k->headers);
        free(k->spool.dir);
    }
    free(cfg->log_sinks);
    free(cfg->access_log.sinks);
    free(cfg->access_log.template);
    for (size_t i = 0; i < cfg->nsyslog_listen; i++) {
        free(cfg->syslog_listen[i].address);
        free(cfg->syslog_listen[i].route_name);
    }
    free(cfg->syslog_listen);
}

/* Table order is parse order: limits and upstreams come before routes. */
static const struct keyword root_kws[] = {
    { "workers", kw_workers, pr_workers, .min = 1, .max = MAX_WORKERS },
    { "log_level", kw_log_level, pr_string, FIELD(struct ap_config, log_level) },
    { "listen", kw_listen, pr_listen, .flags = KW_REQUIRED },
    { "upstreams", kw_upstreams, pr_upstreams, .flags = KW_REQUIRED },
    { "routes", kw_routes, pr_routes, .flags = KW_REQUIRED },
    { "limits", kw_limits, pr_section, FIELD(struct ap_config, limits), .sub = limits_kws },
    { "timeouts", kw_section, pr_section, FIELD(struct ap_config, timeouts),
      .sub = timeouts_kws },
    { "trusted_proxies", kw_trusted_proxies, pr_trusted_proxies, .flags = 0 },
    { "client_address_headers", kw_client_address_headers, pr_client_address_headers,
      .flags = 0 },
    { "pseudonyms", kw_section, pr_section, .off = 0, .sub = pseudonyms_kws },
    { "geo", kw_geo, pr_geo, .flags = 0 },
    { "admin", kw_admin, pr_admin, .off = 0, .sub = admin_kws },
    { "user", kw_account, pr_opt_string, FIELD(struct ap_config, user) },
    { "group", kw_account, pr_opt_string, FIELD(struct ap_config, group) },
    { "run_as_root", kw_run_as_root, pr_run_as_root, .off = 0 },
    { "log_sinks", kw_log_sinks, pr_log_sinks, .flags = 0 },
    { "access_log", kw_access_log, pr_access_log, .flags = 0 },
    { "syslog_listen", kw_syslog_listen, pr_syslog_listen, .flags = 0 },
    { .name = NULL },
};

/* Parse order of root_kws: routes need limits (default body size), and
 * their policies the client address settings and the pseudonym length. */
static const char *const root_order[] = { "workers", "log_level", "listen", "upstreams",
                                          "limits", "timeouts", "trusted_proxies",
                                          "client_address_headers", "pseudonyms", "geo", "log_sinks",
                                          "routes", "access_log", "syslog_listen",
                                          "admin", "user", "group", "run_as_root" };

/* Whole-file handling. */

static void set_defaults(struct parser *p, struct ap_config *cfg)
{
    cfg->magic = AP_CONFIG_MAGIC;
    cfg->workers_auto = 1;
    cfg->workers = ncpus(p);
    cfg->log_level = xstrdup(p, "info");
    cfg->limits = (struct ap_config_limits){
        .header_line_bytes = 8 * KiB,
        .header_bytes = 32 * KiB,
        .header_count = 100,
        .target_bytes = 8 * KiB,
        .body_bytes = MiB,
        .connections_per_worker = 10000,
    };
    cfg->timeouts = (struct ap_config_timeouts){
        .request_head = 10 * SECOND_MS,
        .body_idle = 30 * SECOND_MS,
        .keepalive = 60 * SECOND_MS,
        .upstream_connect = 5 * SECOND_MS,
        .upstream_head = 60 * SECOND_MS,
        .upstream_body_idle = 60 * SECOND_MS,
        .drain = 30 * SECOND_MS,
    };
    ap_cidr_list_init(&cfg->trusted_proxies);
    ap_clientaddr_config_init(&cfg->clientaddr, &cfg->trusted_proxies);
    cfg->pseudonym_bits = AP_PSEUDO_BITS_DEFAULT;
    cfg->access_log.worker_queue_bytes = 4 * MiB;
    geo_defaults(p, cfg);
}

static void config_free(struct ap_config *cfg)
{
    free(cfg->path);
    free(cfg->log_level);
    free(cfg->admin.address);
    free(cfg->admin.token_file);
    free(cfg->user);
    free(cfg->group);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].address);
        struct ap_config_tls_listener *t = cfg->listeners[i].tls;
        if (t == NULL)
            continue;
        for (size_t j = 0; j < t->ncerts; j++) {
            struct ap_config_tls_cert *c = &t->certs[j];
            free(c->cert);
            free(c->key);
            free(c->chain);
            for (size_t k = 0; k < c->nnames; k++)
                free(c->names[k]);
            free(c->names);
        }
        free(t->certs);
        free(t->ciphers);
        free(t->ciphersuites);
        free(t);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct ap_config_upstream *u = &cfg->upstreams[i];
        free(u->name);
        for (size_t j = 0; j < u->nservers; j++) {
            free(u->servers[j].url);
            free(u->servers[j].host);
            free(u->servers[j].authority);
        }
        free(u->servers);
        free(u->file_path);
        free(u->tls.ca_file);
        free(u->tls.server_name);
        free(u->tls.client_cert);
        free(u->tls.client_key);
    }
    free(cfg->upstreams);
    free_logging(cfg);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct ap_config_route *r = &cfg->routes[i];
        free_route_logging(r);
        free(r->name);
        for (size_t j = 0; j < r->nhosts; j++)
            free(r->hosts[j]);
        free(r->hosts);
        free(r->path_prefix);
        for (size_t j = 0; j < r->nmethods; j++)
            free(r->methods[j]);
        free(r->methods);
        if (r->policy != NULL) {
            ap_policy_free(r->policy);
            free(r->policy);
        }
        free_body(r);
    }
    free(cfg->routes);
    ap_cidr_list_free(&cfg->trusted_proxies);
    free(cfg->pseudonym_secret_file);
    geo_free(cfg);
    cfg->magic = 0;
    free(cfg);
}

/* libyaml stops at its first syntax error; report it where it points. */
static void syntax_error(struct parser *p, const yaml_parser_t *yp, const char *yaml, size_t len)
{
    char text[512];
    unsigned line, col;
    if (yp->error == YAML_MEMORY_ERROR) {
        p->oom = 1;
        return;
    }
    if (yp->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        line = 1;
        col = 1;
        for (size_t i = 0; i < yp->problem_offset && i < len; i++) {
            if (yaml[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)yaml[i] & 0xC0) != 0x80) {
                col++;
            }
        }
        if (yp->problem_value >= 0)
            snprintf(text, sizeof(text), "syntax error: %s (byte 0x%02x)", yp->problem,
                     (unsigned)yp->problem_value);
        else
            snprintf(text, sizeof(text), "syntax error: %s", yp->problem);
    } else {
        line = (unsigned)yp->problem_mark.line + 1;
        col = (unsigned)yp->problem_mark.column + 1;
        if (yp->context != NULL)
            snprintf(text, sizeof(text), "syntax error: %s (%s at %u:%u)",
                     yp->problem ? yp->problem : "unknown", yp->context,
                     (unsigned)yp->context_mark.line + 1, (unsigned)yp->context_mark.column + 1);
        else
            snprintf(text, sizeof(text), "syntax error: %s",
                     yp->problem ? yp->problem : "unknown");
    }
    add_error(p, line, col, text);
}

static int error_cmp(const void *a, const void *b)
{
    const struct error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Joins the errors, sorted by position, one per line. */
static char *join_errors(struct parser *p)
{
    if (p->oom) {
        size_t n = strlen(p->name) + sizeof(": out of memory\n");
        char *s = malloc(n);
        if (s != NULL)
            snprintf(s, n, "%s: out of memory\n", p->name);
        return s;
    }
    qsort(p->errors, p->nerrors, sizeof(*p->errors), error_cmp);
    char tail[256] = "";
    if (p->dropped > 0)
        snprintf(tail, sizeof(tail), "%.120s:%u:%u: too many errors, %u more not shown\n",
                 p->name, p->overflow.line, p->overflow.col, p->dropped);
    size_t total = strlen(tail) + 1;
    for (size_t i = 0; i < p->nerrors; i++)
        total += strlen(p->errors[i].msg) + 1;
    char *s = malloc(total), *w = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < p->nerrors; i++) {
        size_t l = strlen(p->errors[i].msg);
        memcpy(w, p->errors[i].msg, l);
        w[l] = '\n';
        w += l + 1;
    }
    memcpy(w, tail, strlen(tail) + 1);
    return s;
}

static void parse_document(struct parser *p, yaml_parser_t *yp, const char *yaml, size_t len)
{
    yaml_document_t doc;
    if (!yaml_parser_load(yp, &doc)) {
        syntax_error(p, yp, yaml, len);
        return;
    }
    p->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        add_error(p, 1, 1, "empty configuration");
    } else if (root->type != YAML_MAPPING_NODE) {
        err(p, root, "expected a mapping at the top level, got %s", type_name(root));
    } else {
        /* Walk root_kws in root_order: a table whose order is its parse
         * order would print routes after limits. */
        struct keyword ordered[AP_ARRAY_SIZE(root_order) + 1];
        AP_BUG_ON(table_len(root_kws) != AP_ARRAY_SIZE(root_order));
        for (size_t i = 0; i < AP_ARRAY_SIZE(root_order); i++) {
            size_t j = 0;
            while (root_kws[j].name != NULL && strcmp(root_kws[j].name, root_order[i]) != 0)
                j++;
            AP_BUG_ON(root_kws[j].name == NULL);
            ordered[i] = root_kws[j];
        }
        ordered[AP_ARRAY_SIZE(root_order)] = (struct keyword){ 0 };
        parse_table(p, root, ordered, p->cfg, NULL);
    }
    p->doc = NULL;
    yaml_document_delete(&doc);

    if (root == NULL)
        return;
    /* A second document would be silently ignored otherwise. */
    if (!yaml_parser_load(yp, &doc)) {
        syntax_error(p, yp, yaml, len);
        return;
    }
    yaml_node_t *extra = yaml_document_get_root_node(&doc);
    if (extra != NULL)
        add_error(p, (unsigned)extra->start_mark.line + 1, (unsigned)extra->start_mark.column + 1,
                  "only one YAML document is allowed");
    yaml_document_delete(&doc);
}

struct ap_config *ap_config__parse(const char *yaml, size_t len, const char *name,
                                   const struct ap_config__opts *opts, char **errors)
{
    AP_BUG_ON(errors == NULL || name == NULL);
    *errors = NULL;
    struct parser p = { .name = name };
    if (opts != NULL)
        p.opts = *opts;
    if (yaml == NULL)
        yaml = "";

    struct ap_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        p.oom = 1;
        *errors = join_errors(&p);
        return NULL;
    }
    p.cfg = cfg;
    set_defaults(&p, cfg);
    cfg->path = xstrdup(&p, name);

    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp)) {
        p.oom = 1;
    } else {
        yaml_parser_set_input_string(&yp, (const unsigned char *)yaml, len);
        parse_document(&p, &yp, yaml, len);
        yaml_parser_delete(&yp);
    }

    for (size_t i = 0; i < p.ncache; i++)
        free(p.cache[i].host);
    free(p.cache);
    if (p.nerrors > 0 || p.oom) {
        *errors = join_errors(&p);
        for (size_t i = 0; i < p.nerrors; i++)
            free(p.errors[i].msg);
        free(p.errors);
        config_free(cfg);
        return NULL;
    }
    free(p.errors);
    cfg->refcount = 1;
    return cfg;
}

struct ap_config *ap_config_parse(const char *yaml, size_t len, const char *name, char **errors)
{
    return ap_config__parse(yaml, len, name, NULL, errors);
}

static char *simple_error(const char *path, const char *what, int errnum)
{
    const char *why = errnum ? strerror(errnum) : "";
    int n = snprintf(NULL, 0, "%s: %s%s%s\n", path, what, errnum ? ": " : "", why);
    char *s = n < 0 ? NULL : malloc((size_t)n + 1);
    if (s != NULL)
        snprintf(s, (size_t)n + 1, "%s: %s%s%s\n", path, what, errnum ? ": " : "", why);
    return s;
}

struct ap_config *ap_config_load(const char *path, char **errors)
{
    AP_BUG_ON(errors == NULL || path == NULL);
    *errors = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *errors = simple_error(path, "cannot open", errno);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_FILE_BYTES) {
                *errors = simple_error(path, "file too large (over 16 MiB)", 0);
                goto fail;
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                *errors = simple_error(path, "cannot read", ENOMEM);
                goto fail;
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *errors = simple_error(path, "cannot read", errno);
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    struct ap_config *cfg = ap_config_parse(buf, len, path, errors);
    free(buf);
    return cfg;
fail:
    close(fd);
    free(buf);
    return NULL;
}

struct ap_config *ap_config_ref(struct ap_config *cfg)
{
    AP_CHECK_OBJ(cfg, AP_CONFIG_MAGIC);
    int old = __atomic_fetch_add(&cfg->refcount, 1, __ATOMIC_RELAXED);
    AP_BUG_ON(old <= 0);
    return cfg;
}

void ap_config_unref(struct ap_config *cfg)
{
    if (cfg == NULL)
        return;
    AP_CHECK_OBJ(cfg, AP_CONFIG_MAGIC);
    /* Release so this thread's reads happen before the free; acquire so the
     * freeing thread sees every other thread's. */
    int now = __atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL);
    AP_BUG_ON(now < 0);
    if (now == 0)
        config_free(cfg);
}

/* Printer: the same tables, written back as YAML. */

struct printer {
    FILE *out;
    int dash;  /* the next line opens a list item: "- " replaces 2 spaces */
    int error; /* first errno seen */
};

static void out(struct printer *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct printer *pr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(pr->out, fmt, ap) < 0 && pr->error == 0)
        pr->error = errno ? errno : EIO;
    va_end(ap);
}

/* Starts a line at `indent` with "name: " (value follows on the line). */
static void line_start(struct printer *pr, int indent, const char *name)
{
    if (pr->dash) {
        out(pr, "%*s- %s:", indent - 2, "", name);
        pr->dash = 0;
    } else {
        out(pr, "%*s%s:", indent, "", name);
    }
}

/* Decodes one UTF-8 sequence at s (libyaml hands us valid UTF-8); returns
 * its length and the code point in *cp. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    uint32_t v = n == 1 ? s[0] : n == 2 ? s[0] & 0x1Fu : n == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { /* not reached with libyaml's output */
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return n;
}

/* Writes a double-quoted YAML string that reads back as exactly `s`. Only
 * characters that libyaml takes verbatim inside double quotes are written
 * as they are; line breaks (which it folds: NEL, LS, PS), controls, the BOM
 * and non-characters are written as escapes. */
static void out_quoted(struct printer *pr, const char *s)
{
    out(pr, "\"");
    while (*s) {
        uint32_t c;
        size_t n = utf8_decode((const unsigned char *)s, &c);
        if (c == '"' || c == '\\')
            out(pr, "\\%c", (char)c);
        else if (c >= 0x20 && c < 0x7F)
            out(pr, "%c", (char)c);
        else if ((c >= 0xA0 && c <= 0xD7FF && c != 0x2028 && c != 0x2029) ||
                 (c >= 0xE000 && c <= 0xFFFD && c != 0xFEFF) || (c >= 0x10000 && c <= 0x10FFFF))
            out(pr, "%.*s", (int)n, s);
        else if (c <= 0xFF)
            out(pr, "\\x%02x", (unsigned)c);
        else if (c <= 0xFFFF)
            out(pr, "\\u%04x", (unsigned)c);
        else
            out(pr, "\\U%08x", (unsigned)c);
        s += n;
    }
    out(pr, "\"");
}

static void print_table(struct printer *pr, const struct keyword *table, const void *obj,
                        int indent, unsigned skip)
{
    for (const struct keyword *kw = table; kw->name != NULL; kw++)
        if ((kw->flags & skip) == 0)
            kw->print(pr, kw, obj, indent);
}

static void pr_integer(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    line_start(pr, indent, kw->name);
    out(pr, " %" PRIu64 "\n", load_uint(obj, kw));
}

static void pr_size(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    char b[32];
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", fmt_size(b, load_uint(obj, kw)));
}

static void pr_duration(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    char b[32];
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", fmt_duration(b, load_uint(obj, kw)));
}

static void pr_string(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const char *s;
    AP_BUG_ON(kw->size != sizeof(char *));
    memcpy(&s, (const char *)obj + kw->off, sizeof(s));
    line_start(pr, indent, kw->name);
    out(pr, " ");
    out_quoted(pr, s != NULL ? s : "");
    out(pr, "\n");
}

static void pr_admin(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    if (!cfg->admin.enabled)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, admin_kws, &cfg->admin, indent + 2, 0);
}

/* Printers of the `geo:` section; obj is the whole struct ap_config. */

static void pr_geo(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    if (!cfg->geo.enabled)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, geo_kws, cfg, indent + 2, 0);
}

static void pr_geo_path(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const char *s;
    memcpy(&s, (const char *)obj + kw->off, sizeof(s));
    line_start(pr, indent, kw->name);
    if (s == NULL) {
        out(pr, " ~ # not set\n");
        return;
    }
    out(pr, " ");
    out_quoted(pr, s);
    out(pr, "\n");
}

static void pr_geo_schema(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const struct ap_config *cfg = obj;
    AP_BUG_ON((size_t)cfg->geo.opts.schema >= AP_ARRAY_SIZE(geo_schema_names));
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", geo_schema_names[cfg->geo.opts.schema]);
}

/* Only the paths the file overrides: the schema's own are not written
 * out, so a printed configuration whose schema is changed later does not
 * carry the old schema's paths along. */
static void pr_geo_fields(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const struct ap_config *cfg = obj;
    size_t n = 0;
    for (size_t i = 0; i < AP_GEO_FIELD_COUNT; i++)
        n += cfg->geo.opts.fields[i] != NULL;
    line_start(pr, indent, kw->name);
    if (n == 0) {
        out(pr, " {} # the schema's paths\n");
        return;
    }
    out(pr, "\n");
    for (const struct keyword *f = geo_fields_kws; f->name != NULL; f++) {
        enum ap_geo_field id;
        if (ap_geo_options_parse_field(&id, f->name) != 0 || cfg->geo.opts.fields[id] == NULL)
            continue;
        line_start(pr, indent + 2, f->name);
        out(pr, " ");
        out_quoted(pr, cfg->geo.opts.fields[id]);
        out(pr, "\n");
    }
}

static void pr_geo_hosting_asns(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    if (cfg->geo.opts.hosting_asns == NULL) {
        out(pr, " ~ # not set: the built-in list of hosting providers\n");
        return;
    }
    out(pr, " [");
    for (size_t i = 0; i < cfg->geo.opts.nhosting_asns; i++)
        out(pr, "%s%" PRIu32, i ? ", " : "", cfg->geo.opts.hosting_asns[i]);
    out(pr, "]\n");
}

static void pr_geo_bool(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    bool v;
    AP_BUG_ON(kw->size != sizeof(bool));
    memcpy(&v, (const char *)obj + kw->off, sizeof(v));
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", v ? "true" : "false");
}

static void pr_geo_precision(struct printer *pr, const struct keyword *kw, const void *obj,
                             int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", ap_geo_format_level(cfg->geo.opts.precision));
}

/* The fewest decimals that read back as exactly `km`. The value was parsed
 * from at most 12 digits, so 12 decimals always suffice; no exponent is
 * ever written, which the coordinates parser would refuse. */
static const char *fmt_km(char out_[32], double km)
{
    for (int d = 0; d <= 12; d++) {
        snprintf(out_, 32, "%.*f", d, km);
        if (strtod(out_, NULL) == km)
            break;
    }
    return out_;
}

static void pr_geo_coords(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const struct ap_geo_options *o = &((const struct ap_config *)obj)->geo.opts;
    char b[32];
    line_start(pr, indent, kw->name);
    switch (o->coords) {
    case AP_GEO_COORDS_ROUND:
        out(pr, " \"round:%u\"\n", o->coord_decimals);
        break;
    case AP_GEO_COORDS_GRID:
        out(pr, " \"grid:%s\"\n", fmt_km(b, o->coord_grid_km));
        break;
    default:
        out(pr, " drop\n");
        break;
    }
}

static void pr_geo_lookup(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const struct ap_config *cfg = obj;
    AP_BUG_ON((size_t)cfg->geo.opts.lookup >= AP_ARRAY_SIZE(geo_lookup_names));
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", geo_lookup_names[cfg->geo.opts.lookup]);
}

/* Every value, a null for the ones left out: a missing key would bring the
 * default name back on the next load. */
static void pr_geo_headers(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (const struct keyword *h = geo_headers_kws; h->name != NULL; h++) {
        const char *name = cfg->geo.opts.headers[h->min];
        line_start(pr, indent + 2, h->name);
        if (name == NULL) {
            out(pr, " ~ # not emitted\n");
            continue;
        }
        out(pr, " ");
        out_quoted(pr, name);
        out(pr, "\n");
    }
}

static void pr_run_as_root(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", cfg->run_as_root ? "true" : "false");
}

static void pr_section(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, kw->sub, (const char *)obj + kw->off, indent + 2, 0);
}

static void pr_string_list(struct printer *pr, const char *name, char *const *v, size_t n,
                           int indent)
{
    line_start(pr, indent, name);
    out(pr, " [");
    for (size_t i = 0; i < n; i++) {
        out(pr, i ? ", " : "");
        out_quoted(pr, v[i]);
    }
    out(pr, "]\n");
}

static void pr_workers(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    if (cfg->workers_auto)
        out(pr, " auto # %u on this machine\n", cfg->workers);
    else
        out(pr, " %u\n", cfg->workers);
}

static void pr_proxy_protocol(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent)
{
    const struct ap_config_listener *l = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", l->proxy_protocol ? "true" : "false");
}

static void pr_listen(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        pr->dash = 1;
        print_table(pr, listener_kws, &cfg->listeners[i], indent + 4, 0);
    }
}

static void pr_file(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_upstream *u = obj;
    line_start(pr, indent, kw->name);
    out(pr, " ");
    out_quoted(pr, u->file_path);
    out(pr, "\n");
}

static void pr_servers(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_upstream *u = obj;
    line_start(pr, indent, kw->name);
    out(pr, " [");
    for (size_t i = 0; i < u->nservers; i++) {
        out(pr, i ? ", " : "");
        out_quoted(pr, u->servers[i].url);
    }
    out(pr, "]\n");
}

static void pr_host_mode(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent)
{
    const struct ap_config_upstream *u = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", u->preserve_host ? "preserve" : "upstream");
}

static void pr_opt_string(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const char *s;
    AP_BUG_ON(kw->size != sizeof(char *));
    memcpy(&s, (const char *)obj + kw->off, sizeof(s));
    if (s != NULL)
        pr_string(pr, kw, obj, indent);
}

static void pr_tls_names(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent)
{
    const struct ap_config_tls_cert *c = obj;
    if (c->nnames > 0)
        pr_string_list(pr, kw->name, c->names, c->nnames, indent);
}

static void pr_tls_certificates(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent)
{
    const struct ap_config_tls_listener *t = obj;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t i = 0; i < t->ncerts; i++) {
        pr->dash = 1;
        print_table(pr, tls_cert_kws, &t->certs[i], indent + 4, 0);
    }
}

static void pr_tls_protocols(struct printer *pr, const struct keyword *kw, const void *obj,
                             int indent)
{
    const struct ap_config_tls_listener *t = obj;
    line_start(pr, indent, kw->name);
    out(pr, " [%s%s%s]\n", (t->protocols & AP_TLS_PROTO_TLS12) ? "\"TLSv1.2\"" : "",
        (t->protocols & AP_TLS_PROTO_TLS12) && (t->protocols & AP_TLS_PROTO_TLS13) ? ", " : "",
        (t->protocols & AP_TLS_PROTO_TLS13) ? "\"TLSv1.3\"" : "");
}

static void pr_tls_tickets(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent)
{
    const struct ap_config_tls_listener *t = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", t->session_tickets ? "true" : "false");
}

static void pr_listener_tls(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent)
{
    const struct ap_config_listener *l = obj;
    if (l->tls == NULL)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, listener_tls_kws, l->tls, indent + 2, 0);
}

static void pr_upstream_verify(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent)
{
    const struct ap_config_upstream_tls *t = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", t->verify ? "true" : "false");
}

static void pr_upstream_tls(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent)
{
    const struct ap_config_upstream *u = obj;
    if (!has_https_server(u))
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, upstream_tls_kws, &u->tls, indent + 2, 0);
}

static void pr_upstreams(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct ap_config_upstream *u = &cfg->upstreams[i];
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, u->name);
        out(pr, ":\n");
        print_table(pr, upstream_kws, u, indent + 4,
                    u->kind == AP_UPSTREAM_FILE ? KW_SERVERS_ONLY : KW_FILE_ONLY);
    }
}

static void pr_hosts(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_route *r = obj;
    pr_string_list(pr, kw->name, r->hosts, r->nhosts, indent);
}

static void pr_methods(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_route *r = obj;
    pr_string_list(pr, kw->name, r->methods, r->nmethods, indent);
}

static void pr_route_upstream(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent)
{
    const struct ap_config_route *r = obj;
    if (r->upstream == NULL)
        return; /* routes of type logs */
    line_start(pr, indent, kw->name);
    out(pr, " ");
    out_quoted(pr, r->upstream->name);
    out(pr, "\n");
}

static void pr_routes(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        pr->dash = 1;
        print_table(pr, route_kws, &cfg->routes[i], indent + 4, 0);
    }
}

static void pr_trusted_proxies(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, " [");
    for (size_t i = 0; i < cfg->trusted_proxies.n; i++) {
        char b[AP_CIDR_STRLEN];
        if (ap_cidr_format(&cfg->trusted_proxies.items[i], b, sizeof(b)) < 0) {
            if (pr->error == 0)
                pr->error = EINVAL;
            continue;
        }
        out(pr, i ? ", " : "");
        out_quoted(pr, b);
    }
    out(pr, "]\n");
}

static void pr_client_address_headers(struct printer *pr, const struct keyword *kw,
                                      const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    out(pr, " [");
    for (unsigned i = 0; i < cfg->clientaddr.norder; i++) {
        out(pr, i ? ", " : "");
        out_quoted(pr, addr_header_name(cfg->clientaddr.order[i]));
    }
    out(pr, "]\n");
}

static void pr_secret_file(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent)
{
    const struct ap_config *cfg = obj;
    line_start(pr, indent, kw->name);
    if (cfg->pseudonym_secret_file == NULL) {
        out(pr, " ~ # not set: a random key per UTC day, in memory only\n");
        return;
    }
    out(pr, " ");
    out_quoted(pr, cfg->pseudonym_secret_file);
    out(pr, "\n");
}

static void pr_privacy(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_route *r = obj;
    AP_CHECK_OBJ(r->policy, AP_POLICY_MAGIC);
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, privacy_kws, r->policy, indent + 2, 0);
}

static void pr_profile(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_policy *pol = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", ap_policy_profile_name(pol->profile));
}

static void pr_site_id(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_policy *pol = obj;
    line_start(pr, indent, kw->name);
    if (pol->site_id == NULL) {
        out(pr, " ~ # not set: the request's Host\n");
        return;
    }
    out(pr, " ");
    out_quoted(pr, pol->site_id);
    out(pr, "\n");
}

static void pr_client_address(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent)
{
    const struct ap_policy *pol = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", ap_policy_addr_mode_name(pol->addr_mode));
}

static void pr_remove_headers(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent)
{
    const struct ap_policy *pol = obj;
    pr_string_list(pr, kw->name, pol->remove_headers, pol->nremove_headers, indent);
}

/* How many header and query rules ap_policy_finish appends for `profile`.
 * The printer shows only the route's own rules, which come first (printing
 * the profile's would turn them into route rules on the next load). They
 * are counted on an empty policy, not copied from policy.c, so the two
 * cannot drift apart. Returns 0 or -ENOMEM. */
static int profile_rule_counts(enum ap_profile profile, size_t *nheaders, size_t *nquery)
{
    struct ap_policy pol;
    int rc = ap_policy_init(&pol, "", profile);
    if (rc == 0)
        rc = ap_policy_finish(&pol);
    *nheaders = pol.nheaders;
    *nquery = pol.nquery_rules;
    ap_policy_free(&pol);
    return rc;
}

/* The number of rules the route gave itself, or 0 after recording an error. */
static size_t own_rules(struct printer *pr, const struct ap_policy *pol, int query)
{
    size_t nh = 0, nq = 0;
    if (profile_rule_counts(pol->profile, &nh, &nq) != 0) {
        if (pr->error == 0)
            pr->error = ENOMEM;
        return 0;
    }
    size_t total = query ? pol->nquery_rules : pol->nheaders;
    size_t profile = query ? nq : nh;
    AP_BUG_ON(total < profile);
    return total - profile;
}

static void pr_header_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent)
{
    const struct ap_policy *pol = obj;
    size_t n = own_rules(pr, pol, 0);
    line_start(pr, indent, kw->name);
    out(pr, n ? "\n" : " {}\n");
    for (size_t i = 0; i < n; i++) {
        const struct ap_header_rule *r = &pol->headers[i];
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, r->glob);
        if (r->action == AP_HDR_SET) {
            out(pr, ": { set: ");
            out_quoted(pr, r->value);
            out(pr, " }\n");
        } else {
            out(pr, ": %s\n", ap_policy_hdr_action_name(r->action));
        }
    }
}

static void pr_cookie_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent)
{
    const struct ap_policy *pol = obj;
    line_start(pr, indent, kw->name);
    out(pr, pol->ncookie_rules ? "\n" : " {}\n");
    for (size_t i = 0; i < pol->ncookie_rules; i++) {
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, pol->cookie_rules[i].glob);
        out(pr, ": %s\n", ap_policy_cookie_action_name(pol->cookie_rules[i].action));
    }
}

static void pr_query_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent)
{
    const struct ap_policy *pol = obj;
    size_t n = own_rules(pr, pol, 1);
    line_start(pr, indent, kw->name);
    out(pr, n ? "\n" : " {}\n");
    for (size_t i = 0; i < n; i++) {
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, pol->query_rules[i].glob);
        out(pr, ": %s\n", ap_policy_query_action_name(pol->query_rules[i].action));
    }
}

static void pr_url_keep(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_policy *pol = obj;
    if (pol->nurl_keep == 0) {
        line_start(pr, indent, kw->name);
        out(pr, " ~ # not set: utm_source, utm_medium and utm_campaign\n");
        return;
    }
    pr_string_list(pr, kw->name, pol->url_keep, pol->nurl_keep, indent);
}

/* Printers of the logging keys (issue 8). */

static void pr_route_type(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_route *r = obj;
    if (r->type != AP_ROUTE_LOGS)
        return; /* http routes print as they always did */
    line_start(pr, indent, kw->name);
    out(pr, " logs\n");
}

static void pr_route_log_sinks(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent)
{
    const struct ap_config_route *r = obj;
    if (r->type == AP_ROUTE_LOGS)
        out_sink_refs(pr, kw->name, r->log_sinks, r->nlog_sinks, indent);
}

static void pr_route_log_fields(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent)
{
    const struct ap_config_route *r = obj;
    if (r->type != AP_ROUTE_LOGS)
        return;
    line_start(pr, indent, kw->name);
    out(pr, r->nlog_fields ? "\n" : " {}\n");
    for (size_t i = 0; i < r->nlog_fields; i++) {
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, r->log_fields[i].glob);
        out(pr, ": %s\n", ap_logscrub_action_name(r->log_fields[i].action));
    }
}

static void pr_log_sink_type(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", k->type >= 1 && k->type <= 4 ? log_sink_type_names[k->type - 1] : "?");
}

static void pr_when_full(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", when_full_names[k->when_full]);
}

static void pr_spool_fsync(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_spool *sp = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", spool_fsync_names[sp->fsync]);
}

static void pr_syslog_format(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", syslog_format_names[k->syslog_format]);
}

static void pr_facility(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", facility_names[k->facility]);
}

static void pr_log_gzip(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", k->gzip ? "true" : "false");
}

static void pr_log_sink_field(struct printer *pr, const struct keyword *kw, const char *v, int indent)
{
    line_start(pr, indent, kw->name);
    out(pr, " ");
    out_quoted(pr, v != NULL ? v : "");
    out(pr, "\n");
}

static void pr_log_sink_address(struct printer *pr, const struct keyword *kw, const void *obj,
                                int indent)
{
    pr_log_sink_field(pr, kw, ((const struct ap_config_log_sink *)obj)->address, indent);
}

static void pr_log_url(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    pr_log_sink_field(pr, kw, ((const struct ap_config_log_sink *)obj)->url, indent);
}

static void pr_log_tls(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    if (!k->url_tls)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, upstream_tls_kws, &k->tls, indent + 2, 0);
}

static void pr_log_headers(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_log_sink *k = obj;
    line_start(pr, indent, kw->name);
    out(pr, k->nheaders ? "\n" : " {}\n");
    for (size_t i = 0; i < k->nheaders; i++) {
        const char *colon = strchr(k->headers[i], ':');
        char name[256];
        size_t nl = (size_t)(colon - k->headers[i]);
        if (nl >= sizeof(name))
            nl = sizeof(name) - 1;
        memcpy(name, k->headers[i], nl);
        name[nl] = '\0';
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, name);
        out(pr, ": ");
        out_quoted(pr, colon + 2);
        out(pr, "\n");
    }
}

static void pr_log_sinks(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    if (cfg->nlog_sinks == 0)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t i = 0; i < cfg->nlog_sinks; i++) {
        const struct ap_config_log_sink *k = &cfg->log_sinks[i];
        out(pr, "%*s", indent + 2, "");
        out_quoted(pr, k->name);
        out(pr, ":\n");
        print_table(pr, log_sink_kws, k, indent + 4, KW_SINK_ALL & ~sink_type_flag(k->type));
    }
}

static void out_sink_refs(struct printer *pr, const char *name, struct ap_config_log_sink *const *v,
                          size_t n, int indent)
{
    line_start(pr, indent, name);
    out(pr, " [");
    for (size_t i = 0; i < n; i++) {
        out(pr, i ? ", " : "");
        out_quoted(pr, v[i]->name);
    }
    out(pr, "]\n");
}

static void pr_access_format(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_access_log *al = obj;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", log_format_names[al->format]);
}

static void pr_access_template(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent)
{
    const struct ap_config_access_log *al = obj;
    if (al->format != AP_LOG_FORMAT_TEXT)
        return;
    line_start(pr, indent, kw->name);
    out(pr, " ");
    out_quoted(pr, al->template != NULL ? al->template : AP_LOGFMT_DEFAULT_TEMPLATE);
    out(pr, "\n");
}

static void pr_access_sinks(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_access_log *al = obj;
    out_sink_refs(pr, kw->name, al->sinks, al->nsinks, indent);
}

static void pr_access_log(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    if (!cfg->access_log.set)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, access_log_kws, &cfg->access_log, indent + 2, 0);
}

static void pr_syslog_listen_address(struct printer *pr, const struct keyword *kw, const void *obj,
                                     int indent)
{
    pr_log_sink_field(pr, kw, ((const struct ap_config_syslog_listen *)obj)->address, indent);
}

static void pr_syslog_listen_route(struct printer *pr, const struct keyword *kw, const void *obj,
                                   int indent)
{
    pr_log_sink_field(pr, kw, ((const struct ap_config_syslog_listen *)obj)->route_name, indent);
}

static void pr_syslog_listen(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config *cfg = obj;
    if (cfg->nsyslog_listen == 0)
        return;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t i = 0; i < cfg->nsyslog_listen; i++) {
        pr->dash = 1;
        print_table(pr, syslog_listen_kws, &cfg->syslog_listen[i], indent + 4, 0);
    }
}

/* Printers of the `body:` section (obj: struct body_conf). They write the
 * route's own rules, presets and compression flags as given, and every
 * detector and limit as resolved, so that the output parses back into the
 * same policy. */

static void pr_body(struct printer *pr, const struct keyword *kw, const void *obj, int indent)
{
    const struct ap_config_route *r = obj;
    if (r->body == NULL)
        return; /* no body rules: bodies pass unread */
    AP_CHECK_OBJ(r->body, AP_BODY_POLICY_MAGIC);
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    print_table(pr, body_kws, body_conf_of(r->body), indent + 2, 0);
}

static void pr_body_presets(struct printer *pr, const struct keyword *kw, const void *obj,
                            int indent)
{
    const struct body_conf *bc = obj;
    line_start(pr, indent, kw->name);
    out(pr, " [");
    for (size_t i = 0; i < bc->npresets; i++)
        out(pr, "%s%s", i ? ", " : "", bc->presets[i]);
    out(pr, "]\n");
}

/* "- key: \"value\"" items: `first` opens the item. */
static void pr_item_string(struct printer *pr, int indent, int first, const char *key,
                           const char *v)
{
    pr->dash = first;
    line_start(pr, indent, key);
    out(pr, " ");
    out_quoted(pr, v);
    out(pr, "\n");
}

static void pr_body_rules(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const struct body_conf *bc = obj;
    line_start(pr, indent, kw->name);
    out(pr, bc->nrules ? "\n" : " []\n");
    for (size_t i = 0; i < bc->nrules; i++) {
        const struct ap_body_rule *r = &bc->pol.rules[i];
        pr_item_string(pr, indent + 4, 1, "path", r->text);
        line_start(pr, indent + 4, "action");
        out(pr, " %s\n", ap_body_action_name(r->action));
        if (bc->args[i] != NULL)
            pr_item_string(pr, indent + 4, 0, "value", bc->args[i]);
    }
}

static void pr_body_detectors(struct printer *pr, const struct keyword *kw, const void *obj,
                              int indent)
{
    const struct body_conf *bc = obj;
    line_start(pr, indent, kw->name);
    out(pr, "\n");
    for (size_t k = 0; k < AP_DETECT_REGEX; k++) {
        line_start(pr, indent + 2, ap_detect_kind_name((enum ap_detect_kind)k));
        out(pr, " %s%s\n", ap_body_action_name(bc->pol.detect[k]),
            bc->pol.detect[k] == AP_BODY_KEEP ? " # off" : "");
    }
}

static void pr_body_regex(struct printer *pr, const struct keyword *kw, const void *obj,
                          int indent)
{
    const struct body_conf *bc = obj;
    line_start(pr, indent, kw->name);
    out(pr, bc->pol.nregexes ? "\n" : " []\n");
    for (size_t i = 0; i < bc->pol.nregexes; i++) {
        pr_item_string(pr, indent + 4, 1, "pattern", bc->pol.regexes[i].pattern);
        line_start(pr, indent + 4, "action");
        out(pr, " %s\n", ap_body_action_name(bc->pol.regexes[i].action));
    }
}

static void pr_body_on_invalid(struct printer *pr, const struct keyword *kw, const void *obj,
                               int indent)
{
    const struct body_conf *bc = obj;
    size_t v = (size_t)bc->pol.on_invalid;
    AP_BUG_ON(v >= AP_ARRAY_SIZE(body_on_invalid_names));
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", body_on_invalid_names[v]);
}

static void pr_body_on_unsupported(struct printer *pr, const struct keyword *kw, const void *obj,
                                   int indent)
{
    const struct body_conf *bc = obj;
    size_t v = (size_t)bc->pol.on_unsupported;
    AP_BUG_ON(v >= AP_ARRAY_SIZE(body_on_unsupported_names));
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", body_on_unsupported_names[v]);
}

static void pr_body_bool(struct printer *pr, const struct keyword *kw, const void *obj,
                         int indent)
{
    const struct body_conf *bc = obj;
    unsigned v = strcmp(kw->name, "recompress") == 0 ? bc->pol.recompress : bc->pol.gzip_magic;
    line_start(pr, indent, kw->name);
    out(pr, " %s\n", v ? "true" : "false");
}

static void pr_body_qflags(struct printer *pr, const struct keyword *kw, const void *obj,
                           int indent)
{
    const struct body_conf *bc = obj;
    line_start(pr, indent, kw->name);
    out(pr, bc->nqflags ? "\n" : " []\n");
    for (size_t i = 0; i < bc->nqflags; i++) {
        const struct ap_body_qflag *f = &bc->pol.qflags[i];
        pr_item_string(pr, indent + 4, 1, "param", f->name);
        pr_item_string(pr, indent + 4, 0, "value", f->value);
        line_start(pr, indent + 4, "encoding");
        out(pr, " %s\n", ap_body_encoding_name((enum ap_body_encoding)f->encoding));
    }
}

int ap_config_print(const struct ap_config *cfg, FILE *fp)
{
    AP_CHECK_OBJ(cfg, AP_CONFIG_MAGIC);
    struct printer pr = { .out = fp };
    out(&pr, "# Effective configuration loaded from ");
    out_quoted(&pr, cfg->path != NULL ? cfg->path : "");
    out(&pr, ", every default filled in.\n");
    print_table(&pr, root_kws, cfg, 0, 0);
    if (fflush(fp) != 0 && pr.error == 0)
        pr.error = errno ? errno : EIO;
    return -pr.error;
}

/* The body walk: one pass over a JSON document, NDJSON lines or form
 * parameters that copies every byte it does not change.
 *
 * Why a streaming rewriter and not a tree. Rules touch a handful of values
 * in a payload of hundreds; a DOM parser would allocate a node per value and
 * then serialise everything again, changing number spellings, escapes and
 * whitespace on the way. Here the input is scanned once, validated as it
 * goes, and the output is built lazily: nothing is allocated or copied until
 * the first change, and then only the bytes between changes are copied, in
 * order. A body no rule touches is forwarded as the very input bytes.
 *
 * Matching. Every rule's path is a chain of steps; "state" k is one step of
 * one rule (policy->state_map). The set of states active at a value is
 * computed from its parent's set and the value's key or index, so a lookup
 * costs O(active states) per member whatever the number of rules or the
 * depth, and recursive steps ("..") simply stay in the set. Sets live on
 * one stack in the arena; a generation stamp per state removes duplicates.
 *
 * Removal. A dropped member takes its separator with it: a member owns the
 * ',' (or '&') before it; when every member before a kept one was dropped,
 * the kept one gives up its separator instead. Decisions about a member are
 * always taken before anything inside it is written, which keeps the output
 * in input order. */
#include "anonproxy/common.h"

#include <errno.h>
#include <limits.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "anonproxy/arena.h"
#include "anonproxy/base64.h"
#include "anonproxy/body.h"
#include "anonproxy/bodypath.h"
#include "anonproxy/detect.h"
#include "anonproxy/ip.h"
#include "anonproxy/json.h"
#include "anonproxy/query.h"
#include "anonproxy/text.h"
#include "anonproxy/ua.h"
#include "engine/bodywalk.h"

/* A set of matcher states: a slice of the walk's state stack. */
struct sset {
    uint32_t off, n;
    uint32_t own;  /* 1: pushed on the stack; 0: an alias of the parent's set */
    uint32_t bare; /* 1: known to hold no final and no layer state */
};

/* What a state does to a child's key, for the per-container shortcut of
 * ss_child_of: a state either never carries into a child (a final or a
 * layer step), or names keys, or indices, or anything else. */
enum { SK_DROP = 0, SK_KEY = 1, SK_INDEX = 2, SK_OTHER = 4 };

/* The states of one container's children, worked out at the first child
 * and reused for every child whose key no step can name. */
struct kids {
    bool ready, have_def;
    unsigned kinds;     /* SK_* of every state of the parent, or'ed */
    bool all_recursive; /* every state of the parent is recursive and carries on */
    struct sset def;    /* the child's set for a key that matches no step */
};

/* One output stream: the lazily built copy of an input buffer. */
struct emit {
    const char *in;
    size_t inlen;
    size_t lim;   /* parsers stop here (the end of an NDJSON line) */
    size_t done;  /* input bytes before this offset are accounted for */
    char *buf;    /* NULL while nothing changed */
    size_t len, cap;
};

/* The result of deciding one scalar value. */
enum { V_KEEP = 0, V_DROP, V_STR, V_RAW };
struct vres {
    int kind;
    const char *p; /* V_STR: decoded string contents; V_RAW: JSON text */
    size_t n;
};

struct walk {
    const struct ap_body_policy *pol;
    const struct ap_body_ctx *ctx;
    struct ap_body_out *out;
    struct ap_arena *arena;
    size_t out_limit;
    uint32_t *stamp;
    uint32_t gen;
    uint16_t *stk;
    uint32_t stk_len, stk_cap;
    uint8_t *skind;      /* SK_* of each state */
    uint8_t *shash;      /* key_hash of a KEY state's name */
    /* The click-id detector's answers for member names seen before: a
     * batch repeats the same names in every event. */
    struct {
        const char *p; /* the name, borrowed from the input or the arena */
        size_t n;
        int8_t clickid; /* -1: not asked yet */
    } memo[64];
    uint64_t kbloom[4];  /* key_hash of every KEY step's name */
    unsigned depth, layers;
    unsigned det_mask;
    bool det_any;
    bool audit;
    char *path;
    size_t plen, pcap;
    size_t err_off;
    pcre2_general_context *gctx;
    pcre2_match_context *mctx;
    pcre2_match_data *md;
};

static int fail(struct walk *w, int rc, size_t off)
{
    w->err_off = off;
    return rc;
}

/* ---- growable arena buffers ---- */

static int reserve(struct walk *w, char **buf, size_t *cap, size_t len, size_t need)
{
    if (*cap - len >= need)
        return 0;
    if (need > w->out_limit || len > w->out_limit - need)
        return -E2BIG;
    size_t nc = *cap ? *cap : 64;
    while (nc - len < need)
        nc *= 2;
    char *nb = ap_arena_alloc(w->arena, nc);
    if (nb == NULL)
        return -ENOMEM;
    if (len)
        memcpy(nb, *buf, len);
    *buf = nb;
    *cap = nc;
    return 0;
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static int sb_put(struct walk *w, struct sbuf *b, const char *p, size_t n)
{
    int rc = reserve(w, &b->p, &b->cap, b->len, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* ---- output streams ---- */

static void em_init(struct emit *e, const char *in, size_t len)
{
    memset(e, 0, sizeof(*e));
    e->in = in;
    e->inlen = len;
    e->lim = len;
}

static int em_copy_to(struct walk *w, struct emit *e, size_t pos)
{
    AP_BUG_ON(pos < e->done || pos > e->inlen);
    if (e->buf == NULL) {
        size_t guess = e->inlen + e->inlen / 8 + 64;
        if (guess > w->out_limit)
            guess = w->out_limit;
        e->buf = ap_arena_alloc(w->arena, guess ? guess : 1);
        if (e->buf == NULL)
            return -ENOMEM;
        e->cap = guess;
    }
    size_t n = pos - e->done;
    int rc = reserve(w, &e->buf, &e->cap, e->len, n);
    if (rc != 0)
        return rc;
    memcpy(e->buf + e->len, e->in + e->done, n);
    e->len += n;
    e->done = pos;
    return 0;
}

static int em_put(struct walk *w, struct emit *e, const char *p, size_t n)
{
    int rc = em_copy_to(w, e, e->done);
    if (rc == 0)
        rc = reserve(w, &e->buf, &e->cap, e->len, n);
    if (rc != 0)
        return rc;
    memcpy(e->buf + e->len, p, n);
    e->len += n;
    return 0;
}

static int em_skip(struct walk *w, struct emit *e, size_t from, size_t to)
{
    if (from == to)
        return 0;
    int rc = em_copy_to(w, e, from);
    if (rc == 0)
        e->done = to;
    return rc;
}

static int em_put_json_string(struct walk *w, struct emit *e, const char *p, size_t n)
{
    int rc = em_copy_to(w, e, e->done);
    size_t need = ap_json_escaped_len(p, n) + 2;
    if (rc == 0)
        rc = reserve(w, &e->buf, &e->cap, e->len, need);
    if (rc != 0)
        return rc;
    e->buf[e->len++] = '"';
    e->len += ap_json_escape(p, n, e->buf + e->len);
    e->buf[e->len++] = '"';
    return 0;
}

static int em_put_pct(struct walk *w, struct emit *e, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = em_copy_to(w, e, e->done);
    if (rc == 0)
        rc = reserve(w, &e->buf, &e->cap, e->len, 3 * n);
    if (rc != 0)
        return rc;
    char *o = e->buf + e->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '!' || c == '~' || c == '*' || c == '\'' || c == '(' || c == ')') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    e->len = (size_t)(o - e->buf);
    return 0;
}

static int em_finish(struct walk *w, struct emit *e, const char **res, size_t *n)
{
    if (e->buf == NULL) {
        *res = e->in;
        *n = e->inlen;
        return 0;
    }
    int rc = em_copy_to(w, e, e->inlen);
    if (rc != 0)
        return rc;
    *res = e->buf;
    *n = e->len;
    return 0;
}

/* ---- matcher states ---- */

static int ss_begin(struct walk *w, struct sset *ss)
{
    ss->off = w->stk_len;
    ss->n = 0;
    ss->own = 1;
    ss->bare = 0;
    if (++w->gen == 0) {
        memset(w->stamp, 0, w->pol->nstates * sizeof(*w->stamp));
        w->gen = 1;
    }
    return 0;
}

static int ss_add(struct walk *w, struct sset *ss, uint32_t id)
{
    if (w->stamp[id] == w->gen)
        return 0;
    w->stamp[id] = w->gen;
    if (w->stk_len == w->stk_cap) {
        uint32_t nc = w->stk_cap * 2;
        uint16_t *ns = ap_arena_alloc(w->arena, nc * sizeof(*ns));
        if (ns == NULL)
            return -ENOMEM;
        memcpy(ns, w->stk, w->stk_len * sizeof(*ns));
        w->stk = ns;
        w->stk_cap = nc;
    }
    w->stk[w->stk_len++] = (uint16_t)id;
    ss->n++;
    return 0;
}

static void ss_pop(struct walk *w, struct sset ss)
{
    if (ss.own)
        w->stk_len = ss.off;
}

static inline const struct ap_body_rule *st_rule(const struct walk *w, uint32_t id)
{
    return &w->pol->rules[w->pol->state_map[id] >> 8];
}

static inline uint32_t st_step(const struct walk *w, uint32_t id)
{
    return w->pol->state_map[id] & 0xff;
}

struct key {
    const char *p;
    size_t n;
    bool is_index;
    uint32_t index;
};

static bool step_matches(const struct ap_bodypath_step *st, const struct key *k)
{
    switch (st->op) {
    case AP_BODYPATH_KEY:
        return !k->is_index && k->n == st->name_len && memcmp(k->p, st->name, k->n) == 0;
    case AP_BODYPATH_GLOB:
        return !k->is_index && ap_text_matches_glob(st->name, k->p, k->n, 0);
    case AP_BODYPATH_ANY:
        return true;
    case AP_BODYPATH_INDEX:
        return k->is_index && k->index == st->index;
    default:
        return false;
    }
}

/* A small hash of a key for the filter of KEY step names: most members of
 * an analytics event are named by no rule, and this tells so in a few
 * instructions instead of a comparison against every active step. */
static inline unsigned key_hash(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    return ((unsigned)n * 37u + (unsigned char)p[0] * 5u + (unsigned char)p[n - 1]) & 255u;
}

/* The states active at a child with key `k` of a value whose states are
 * `parent`. Pushed on the stack: pop with ss_pop in reverse order. */
static int ss_child(struct walk *w, struct sset parent, const struct key *k, struct sset *child)
{
    const struct ap_bodypath_step *const *steps = w->pol->state_steps;
    /* A KEY step whose name hashes otherwise cannot match: most members
     * are told apart from most names without a comparison. */
    unsigned kh = k->is_index ? 256 : key_hash(k->p, k->n);
#define MATCHES(id, st) ((st)->op != AP_BODYPATH_KEY ? step_matches(st, k) \
                         : w->shash[id] == kh && step_matches(st, k))
    /* The common case: only recursive steps ("$..x") are active and none
     * names this key; the child's set is then the parent's, shared. */
    uint32_t j = 0;
    for (; j < parent.n; j++) {
        uint32_t id = w->stk[parent.off + j];
        const struct ap_bodypath_step *st = steps[id];
        if (st == NULL || !st->recursive || st->op == AP_BODYPATH_LAYER || MATCHES(id, st))
            break;
    }
    if (j == parent.n) {
        *child = parent;
        child->own = 0;
        return 0;
    }
    ss_begin(w, child);
    for (j = 0; j < parent.n; j++) {
        uint32_t id = w->stk[parent.off + j];
        const struct ap_bodypath_step *st = steps[id];
        if (st == NULL || st->op == AP_BODYPATH_LAYER)
            continue;
        int rc = 0;
        if (st->recursive)
            rc = ss_add(w, child, id);
        if (rc == 0 && MATCHES(id, st))
            rc = ss_add(w, child, id + 1);
        if (rc != 0)
            return rc;
    }
#undef MATCHES
    return 0;
}

static inline bool bloom_has(const struct walk *w, const struct key *k)
{
    unsigned h = key_hash(k->p, k->n);
    return (w->kbloom[h >> 6] >> (h & 63)) & 1u;
}

/* ss_child for the children of one container: a key that no KEY step can
 * name (the filter says so) and no other step could match gets the set of
 * the parent's recursive states, built once per container and shared.
 * `kd` starts zeroed; pop kd->def with ss_pop after the last child. The
 * result is the same set, in the same order, that ss_child builds. */
static int ss_child_of(struct walk *w, struct sset parent, struct kids *kd, const struct key *k,
                       struct sset *child)
{
    if (!kd->ready) {
        kd->ready = true;
        kd->all_recursive = true;
        for (uint32_t j = 0; j < parent.n; j++) {
            uint32_t id = w->stk[parent.off + j];
            unsigned kind = w->skind[id];
            kd->kinds |= kind;
            if (kind == SK_DROP || !w->pol->state_steps[id]->recursive)
                kd->all_recursive = false;
        }
    }
    bool may_name = k->is_index ? (kd->kinds & SK_INDEX) != 0 : (kd->kinds & SK_KEY) && bloom_has(w, k);
    if ((kd->kinds & SK_OTHER) || may_name)
        return ss_child(w, parent, k, child);
    if (!kd->have_def) {
        if (kd->all_recursive) {
            kd->def = parent;
            kd->def.own = 0;
        } else {
            ss_begin(w, &kd->def);
            for (uint32_t j = 0; j < parent.n; j++) {
                uint32_t id = w->stk[parent.off + j];
                if (w->skind[id] != SK_DROP && w->pol->state_steps[id]->recursive) {
                    int rc = ss_add(w, &kd->def, id);
                    if (rc != 0)
                        return rc;
                }
            }
        }
        kd->def.bare = 1;
        kd->have_def = true;
    }
    *child = kd->def;
    child->own = 0;
    return 0;
}

/* The rule that decides this value: the first, in policy order, whose path
 * ends here. */
static const struct ap_body_rule *ss_final(const struct walk *w, struct sset ss)
{
    uint32_t best = UINT32_MAX;
    if (ss.bare)
        return NULL;
    for (uint32_t j = 0; j < ss.n; j++) {
        uint32_t id = w->stk[ss.off + j];
        if (w->pol->state_steps[id] == NULL && (w->pol->state_map[id] >> 8) < best)
            best = w->pol->state_map[id] >> 8;
    }
    return best == UINT32_MAX ? NULL : &w->pol->rules[best];
}

/* Bit (1 << layer) for every layer step active at this value. */
static unsigned ss_layers(const struct walk *w, struct sset ss)
{
    unsigned m = 0;
    if (ss.bare)
        return 0;
    for (uint32_t j = 0; j < ss.n; j++) {
        const struct ap_bodypath_step *st = w->pol->state_steps[w->stk[ss.off + j]];
        if (st != NULL && st->op == AP_BODYPATH_LAYER)
            m |= 1u << st->layer;
    }
    return m;
}

/* The root states of a layer: the steps after each active `layer` step. */
static int ss_layer_root(struct walk *w, struct sset ss, enum ap_body_layer layer, struct sset *root)
{
    ss_begin(w, root);
    for (uint32_t j = 0; j < ss.n; j++) {
        uint32_t id = w->stk[ss.off + j];
        const struct ap_body_rule *r = st_rule(w, id);
        uint32_t s = st_step(w, id);
        if (s < r->nsteps && r->steps[s].op == AP_BODYPATH_LAYER && r->steps[s].layer == layer) {
            int rc = ss_add(w, root, id + 1);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* ---- audit ---- */

static bool simple_key(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '$' || c == '-'))
            return false;
    }
    return true;
}

/* Append a step to the concrete path; returns the length to pop back to. */
static size_t path_push(struct walk *w, const struct key *k, enum ap_body_layer layer)
{
    size_t old = w->plen;
    if (!w->audit)
        return old;
    char tmp[32];
    struct sbuf b = {w->path, w->plen, w->pcap};
    int rc = 0;
    if (layer != AP_BODY_LAYER_NONE) {
        rc = sb_put(w, &b, ">", 1);
        if (rc == 0)
            rc = sb_put(w, &b, ap_bodypath_layer_name(layer), strlen(ap_bodypath_layer_name(layer)));
    } else if (k->is_index) {
        int n = snprintf(tmp, sizeof(tmp), "[%u]", k->index);
        rc = sb_put(w, &b, tmp, (size_t)n);
    } else if (simple_key(k->p, k->n)) {
        rc = sb_put(w, &b, ".", 1);
        if (rc == 0)
            rc = sb_put(w, &b, k->p, k->n);
    } else {
        /* Bracketed and JSON-escaped, so the audit line stays one line. */
        size_t need = ap_json_escaped_len(k->p, k->n) + 4;
        rc = reserve(w, &b.p, &b.cap, b.len, need);
        if (rc == 0) {
            b.p[b.len++] = '[';
            b.p[b.len++] = '"';
            b.len += ap_json_escape(k->p, k->n, b.p + b.len);
            b.p[b.len++] = '"';
            b.p[b.len++] = ']';
        }
    }
    if (rc == 0) {
        w->path = b.p;
        w->plen = b.len;
        w->pcap = b.cap;
    }
    return old;
}

static void path_pop(struct walk *w, size_t old)
{
    w->plen = old;
}

static void note(struct walk *w, enum ap_body_action a, enum ap_detect_kind det, const char *rule,
                 const char *origin)
{
    struct ap_body_stats *st = w->ctx->stats;
    if (st != NULL) {
        if (det == AP_DETECT_NKINDS)
            st->actions[a]++;
        else
            st->detections[det]++;
    }
    if (!w->audit)
        return;
    struct ap_body_out *o = w->out;
    if (o->naudit == o->capaudit) {
        size_t nc = o->capaudit ? o->capaudit * 2 : 16;
        struct ap_body_audit *na = ap_arena_alloc(w->arena, nc * sizeof(*na));
        if (na == NULL)
            return; /* the audit is best effort; the rewrite is not */
        if (o->naudit)
            memcpy(na, o->audit, o->naudit * sizeof(*na));
        o->audit = na;
        o->capaudit = nc;
    }
    char *path = ap_arena_strndup(w->arena, w->path, w->plen);
    if (path == NULL)
        return;
    o->audit[o->naudit++] = (struct ap_body_audit){a, det, path, rule, origin};
}

static void note_rule(struct walk *w, const struct ap_body_rule *r, enum ap_body_action a)
{
    note(w, a, AP_DETECT_NKINDS, r->text, r->origin);
}

/* ---- value transformations ---- */

static int pseudo_value(struct walk *w, const char *v, size_t n, struct vres *res)
{
    const struct ap_text_fn *f = &w->ctx->pseudo;
    if (f->fn == NULL) {
        res->kind = V_DROP;
        return 0;
    }
    char *buf = ap_arena_alloc(w->arena, 256);
    if (buf == NULL)
        return -ENOMEM;
    int k = f->fn(f->ctx, v, n, buf, 256);
    if (k < 0) {
        res->kind = V_DROP; /* failing closed */
        return 0;
    }
    *res = (struct vres){V_STR, buf, (size_t)k};
    return 0;
}

static int truncate_value(struct walk *w, const char *v, size_t n, struct vres *res)
{
    struct ap_ip ip, t;
    int port;
    char *buf;
    if (ap_ip_parse_hostport(&ip, &port, v, n) != 0 ||
        ap_ip_truncate(&t, &ip, w->pol->v4_prefix, w->pol->v6_prefix) != 0) {
        res->kind = V_DROP;
        return 0;
    }
    buf = ap_arena_alloc(w->arena, AP_IP_STRLEN);
    if (buf == NULL)
        return -ENOMEM;
    int k = ap_ip_format(&t, buf, AP_IP_STRLEN);
    if (k < 0) {
        res->kind = V_DROP;
        return 0;
    }
    *res = (struct vres){V_STR, buf, (size_t)k};
    return 0;
}

static const struct ap_query_policy *url_policy(const struct walk *w, struct ap_query_policy *tmp)
{
    if (w->ctx->url_policy != NULL)
        return w->ctx->url_policy;
    ap_query_policy_init(tmp);
    return tmp;
}

static int url_value(struct walk *w, enum ap_body_action a, const char *v, size_t n, struct vres *res)
{
    size_t cap = 3 * n + 1;
    char *buf = ap_arena_alloc(w->arena, cap);
    if (buf == NULL)
        return -ENOMEM;
    size_t ol = 0;
    int rc;
    if (a == AP_BODY_CLEAN_URL) {
        struct ap_query_policy tmp;
        rc = ap_query_clean_url(url_policy(w, &tmp), v, n, buf, cap, &ol);
    } else {
        rc = ap_query_origin(v, n, buf, cap, &ol);
    }
    if (rc != 0 || ol == 0) {
        res->kind = V_DROP;
        return 0;
    }
    *res = (struct vres){V_STR, buf, ol};
    return 0;
}

static int ua_value(struct walk *w, const char *v, size_t n, struct vres *res)
{
    char *buf = ap_arena_alloc(w->arena, AP_UA_REDUCED_MAX);
    if (buf == NULL)
        return -ENOMEM;
    size_t ol = 0;
    if (ap_ua_reduce(v, n, buf, AP_UA_REDUCED_MAX, &ol) != 0) {
        res->kind = V_DROP;
        return 0;
    }
    *res = (struct vres){V_STR, buf, ol};
    return 0;
}

/* floor() without libm, for |x| < 2^63. */
static double floor_d(double x)
{
    if (!(x > -9.2e18 && x < 9.2e18))
        return x;
    long long i = (long long)x;
    double d = (double)i;
    return d > x ? d - 1.0 : d;
}

static int round_number(const struct ap_body_rule *rule, const char *v, size_t n, char *out, size_t cap)
{
    size_t p = 0;
    if (n == 0 || n > 63 || ap_json_scan_number(v, n, &p) != 0 || p != n)
        return -EINVAL;
    static const uint64_t unit_s[] = {0, 60, 3600, 86400};
    bool integral = memchr(v, '.', n) == NULL && memchr(v, 'e', n) == NULL && memchr(v, 'E', n) == NULL;
    char tmp[64];
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    if (integral && n <= 18) {
        /* Fits an int64 with room to spare for the rounding. */
        long long x = strtoll(tmp, NULL, 10);
        uint64_t step = rule->round_step;
        if (rule->round_unit != AP_BODY_ROUND_STEP) {
            unsigned long long ax = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
            step = unit_s[rule->round_unit] * (ax >= 100000000000ull ? 1000 : 1);
        }
        long long st = (long long)step;
        long long q = x / st;
        if (x % st != 0 && x < 0)
            q--;
        int k = snprintf(out, cap, "%lld", q * st);
        return k > 0 && (size_t)k < cap ? k : -EINVAL;
    }
    char *end;
    double x = strtod(tmp, &end);
    if (*end != '\0' || !(x > -1e300 && x < 1e300))
        return -EINVAL;
    double step = (double)rule->round_step;
    if (rule->round_unit != AP_BODY_ROUND_STEP)
        step = (double)unit_s[rule->round_unit] * ((x >= 1e11 || x <= -1e11) ? 1000.0 : 1.0);
    double y = floor_d(x / step) * step;
    int k = (y > -1e18 && y < 1e18) ? snprintf(out, cap, "%.0f", y) : snprintf(out, cap, "%.17g", y);
    return k > 0 && (size_t)k < cap ? k : -EINVAL;
}

static bool dig(const char *v, size_t i)
{
    return v[i] >= '0' && v[i] <= '9';
}

/* YYYY-MM-DD[T ]hh:mm[:ss[.fff]][Z|+hh:mm|-hhmm]: zero the fields below the
 * unit, keeping the text's shape. */
static int round_iso(const struct ap_body_rule *rule, const char *v, size_t n, char *out, size_t cap)
{
    if (rule->round_unit == AP_BODY_ROUND_STEP || n < 16 || n >= cap)
        return -EINVAL;
    if (!(dig(v, 0) && dig(v, 1) && dig(v, 2) && dig(v, 3) && v[4] == '-' && dig(v, 5) && dig(v, 6) &&
          v[7] == '-' && dig(v, 8) && dig(v, 9) && (v[10] == 'T' || v[10] == ' ' || v[10] == 't') &&
          dig(v, 11) && dig(v, 12) && v[13] == ':' && dig(v, 14) && dig(v, 15)))
        return -EINVAL;
    size_t i = 16;
    size_t sec = 0, frac_s = 0, frac_e = 0;
    if (i < n && v[i] == ':') {
        if (n - i < 3 || !dig(v, i + 1) || !dig(v, i + 2))
            return -EINVAL;
        sec = i + 1;
        i += 3;
        if (i < n && (v[i] == '.' || v[i] == ',')) {
            frac_s = ++i;
            while (i < n && dig(v, i))
                i++;
            frac_e = i;
            if (frac_e == frac_s)
                return -EINVAL;
        }
    }
    if (i < n) {
        if (v[i] == 'Z' || v[i] == 'z') {
            i++;
        } else if (v[i] == '+' || v[i] == '-') {
            size_t z = i + 1;
            if (n - z == 5 && dig(v, z) && dig(v, z + 1) && v[z + 2] == ':' && dig(v, z + 3) && dig(v, z + 4))
                i = n;
            else if (n - z == 4 && dig(v, z) && dig(v, z + 1) && dig(v, z + 2) && dig(v, z + 3))
                i = n;
            else if (n - z == 2 && dig(v, z) && dig(v, z + 1))
                i = n;
            else
                return -EINVAL;
        }
    }
    if (i != n)
        return -EINVAL;
    memcpy(out, v, n);
    if (sec) {
        out[sec] = '0';
        out[sec + 1] = '0';
    }
    for (size_t k = frac_s; k < frac_e; k++)
        out[k] = '0';
    if (rule->round_unit >= AP_BODY_ROUND_HOUR) {
        out[14] = '0';
        out[15] = '0';
    }
    if (rule->round_unit >= AP_BODY_ROUND_DAY) {
        out[11] = '0';
        out[12] = '0';
    }
    return (int)n;
}

int ap_bodywalk_round(const struct ap_body_rule *rule, const char *v, size_t n, char *out, size_t cap)
{
    int k = round_number(rule, v, n, out, cap);
    if (k < 0)
        k = round_iso(rule, v, n, out, cap);
    return k;
}

/* A rule's action on a decoded string (or on a number's text when
 * `number`). SET, GEO, DROP and KEEP are the callers'. */
static int transform(struct walk *w, const struct ap_body_rule *rule, const char *v, size_t n, bool number,
                     struct vres *res)
{
    res->kind = V_KEEP;
    if (n == 0)
        return 0; /* an empty string carries nothing */
    switch (rule->action) {
    case AP_BODY_PSEUDO:
        return pseudo_value(w, v, n, res);
    case AP_BODY_ROUND: {
        char *buf = ap_arena_alloc(w->arena, 64);
        if (buf == NULL)
            return -ENOMEM;
        int k = ap_bodywalk_round(rule, v, n, buf, 64);
        if (k < 0)
            res->kind = V_DROP;
        else
            *res = (struct vres){number ? V_RAW : V_STR, buf, (size_t)k};
        return 0;
    }
    default:
        break;
    }
    if (number) {
        res->kind = V_DROP; /* the string actions do not take numbers */
        return 0;
    }
    switch (rule->action) {
    case AP_BODY_TRUNCATE_IP:
        return truncate_value(w, v, n, res);
    case AP_BODY_CLEAN_URL:
    case AP_BODY_ORIGIN_ONLY:
        return url_value(w, rule->action, v, n, res);
    case AP_BODY_REDUCE_UA:
        return ua_value(w, v, n, res);
    default:
        res->kind = V_DROP;
        return 0;
    }
}

/* ---- detectors ---- */

static void *pcre_alloc(PCRE2_SIZE n, void *arena)
{
    return ap_arena_alloc(arena, n);
}

static void pcre_free(void *p, void *arena)
{
    (void)p;
    (void)arena;
}

static int regex_ready(struct walk *w)
{
    if (w->md != NULL)
        return 0;
    w->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, w->arena);
    if (w->gctx == NULL)
        return -ENOMEM;
    w->mctx = pcre2_match_context_create(w->gctx);
    w->md = pcre2_match_data_create(1, w->gctx);
    if (w->mctx == NULL || w->md == NULL)
        return -ENOMEM;
    /* Catastrophic backtracking ends in an error, and the value is dropped. */
    pcre2_set_match_limit(w->mctx, 200000);
    pcre2_set_depth_limit(w->mctx, 10000);
    return 0;
}

/* Run one regex over `cur`; matches are pseudonymised or drop the value. */
static int regex_pass(struct walk *w, const struct ap_body_regex *rx, const char **cur, size_t *curn,
                      bool *changed, struct vres *res)
{
    int rc = regex_ready(w);
    if (rc != 0)
        return rc;
    const char *s = *cur;
    size_t n = *curn, start = 0, last = 0;
    struct sbuf b = {0};
    bool any = false;
    while (start <= n) {
        int m = pcre2_match(rx->code, (PCRE2_SPTR)s, n, start, 0, w->md, w->mctx);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0) {
            res->kind = V_DROP; /* match limit or bad input: failing closed */
            note(w, AP_BODY_DROP, AP_DETECT_REGEX, rx->pattern, "regex");
            return 1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {
            /* An empty match hides nothing; step over one character. */
            start = me + 1;
            while (start < n && ((unsigned char)s[start] & 0xc0) == 0x80)
                start++;
            continue;
        }
        if (rx->action == AP_BODY_DROP) {
            res->kind = V_DROP;
            note(w, AP_BODY_DROP, AP_DETECT_REGEX, rx->pattern, "regex");
            return 1;
        }
        struct vres pr;
        rc = pseudo_value(w, s + ms, me - ms, &pr);
        if (rc != 0)
            return rc;
        if (pr.kind == V_DROP) {
            res->kind = V_DROP;
            return 1;
        }
        note(w, AP_BODY_PSEUDO, AP_DETECT_REGEX, rx->pattern, "regex");
        if ((rc = sb_put(w, &b, s + last, ms - last)) != 0 || (rc = sb_put(w, &b, pr.p, pr.n)) != 0)
            return rc;
        last = me;
        start = me;
        any = true;
    }
    if (any) {
        if ((rc = sb_put(w, &b, s + last, n - last)) != 0)
            return rc;
        *cur = b.p;
        *curn = b.len;
        *changed = true;
    }
    return 0;
}

static int clickid_value(struct walk *w, const char *v, size_t n, struct vres *res)
{
    struct ap_query_policy qp;
    ap_query_policy_init(&qp);
    struct ap_query_ctx qc;
    memset(&qc, 0, sizeof(qc));
    qc.policy = &qp;
    size_t cap = 3 * n + 1;
    char *buf = ap_arena_alloc(w->arena, cap);
    if (buf == NULL)
        return -ENOMEM;
    size_t ol = 0;
    if (ap_query_rewrite_url(&qc, v, n, buf, cap, &ol) != 0) {
        res->kind = V_DROP;
        return 0;
    }
    *res = (struct vres){V_STR, buf, ol};
    return 0;
}

/* The detectors over one decoded string. */
static int detect_value(struct walk *w, const char *v, size_t n, struct vres *res)
{
    const struct ap_body_policy *pol = w->pol;
    res->kind = V_KEEP;
    const char *cur = v;
    size_t curn = n;
    bool changed = false;
    int rc;
    unsigned mask = w->det_mask & ~(1u << AP_DETECT_CLICKID);
    if (w->det_mask & (1u << AP_DETECT_CLICKID)) {
        /* Click ids first: the match is the whole URL, and the other
         * detectors then look inside what is left of it. */
        struct ap_detect_scan sc;
        struct ap_detect_match m;
        ap_detect_scan_init(&sc, 1u << AP_DETECT_CLICKID, v, n);
        if (ap_detect_scan_next(&sc, &m)) {
            struct vres r;
            if ((rc = clickid_value(w, v, n, &r)) != 0)
                return rc;
            if (r.kind == V_DROP) {
                note(w, AP_BODY_DROP, AP_DETECT_CLICKID, "click-id", "detector");
                res->kind = V_DROP;
                return 0;
            }
            note(w, AP_BODY_CLEAN_URL, AP_DETECT_CLICKID, "click-id", "detector");
            v = cur = r.p;
            n = curn = r.n;
            changed = true;
        }
    }
    /* A replacement changes what its neighbours touch ("x+1555..." glued
     * to an address is no phone number until the address is replaced), so
     * the scan runs again over its own output until nothing changes, a few
     * times at most: replacements are stable under the detectors.
     * ap_detect_scan_init leaves out the kinds the string cannot hold (the
     * callers have mostly run ap_detect_may_match already), so a string
     * with nothing to find costs one counting pass here. */
    for (int round = 0; round < 4 && mask; round++) {
        struct ap_detect_scan sc;
        struct ap_detect_match m;
        struct sbuf b = {0};
        size_t last = 0;
        bool found = false;
        ap_detect_scan_init(&sc, mask, v, n);
        while (ap_detect_scan_next(&sc, &m)) {
            enum ap_body_action a = pol->detect[m.kind];
            const char *name = ap_detect_kind_name(m.kind);
            struct vres r = {V_KEEP, NULL, 0};
            if (a == AP_BODY_DROP) {
                note(w, AP_BODY_DROP, m.kind, name, "detector");
                res->kind = V_DROP;
                return 0;
            }
            if (a == AP_BODY_TRUNCATE_IP)
                rc = truncate_value(w, v + m.off, m.len, &r);
            else
                rc = pseudo_value(w, v + m.off, m.len, &r);
            if (rc != 0)
                return rc;
            if (r.kind == V_DROP) {
                note(w, AP_BODY_DROP, m.kind, name, "detector");
                res->kind = V_DROP;
                return 0;
            }
            if (r.n == m.len && memcmp(r.p, v + m.off, m.len) == 0)
                continue; /* already coarse (a truncated address): nothing to do */
            note(w, a, m.kind, name, "detector");
            if ((rc = sb_put(w, &b, v + last, m.off - last)) != 0 || (rc = sb_put(w, &b, r.p, r.n)) != 0)
                return rc;
            last = m.off + m.len;
            found = changed = true;
        }
        if (!found)
            break;
        if ((rc = sb_put(w, &b, v + last, n - last)) != 0)
            return rc;
        v = cur = b.p;
        n = curn = b.len;
    }
    for (size_t i = 0; i < pol->nregexes; i++) {
        rc = regex_pass(w, &pol->regexes[i], &cur, &curn, &changed, res);
        if (rc < 0)
            return rc;
        if (rc > 0)
            return 0; /* dropped */
    }
    if (changed)
        *res = (struct vres){V_STR, cur, curn};
    return 0;
}

/* ---- layers ---- */

static int j_document(struct walk *w, struct emit *e, size_t start, struct sset ss, bool kept);
static int f_params(struct walk *w, struct emit *e, size_t start, size_t end, struct sset ss, bool kept);

static bool is_syntax_error(int rc)
{
    return rc == -EINVAL || rc == -EILSEQ || rc == -ELOOP || rc == -EBADMSG;
}

static bool starts_json_container(const char *s, size_t n)
{
    size_t i = 0;
    ap_json_skip_ws(s, n, &i);
    return i < n && (s[i] == '{' || s[i] == '[');
}

/* Locate the query of a URL or bare query string inside `v`. */
static bool url_query(const char *v, size_t n, size_t *qs, size_t *qe)
{
    const char *q = memchr(v, '?', n);
    const char *h = memchr(v, '#', n);
    if (q != NULL && (h == NULL || q < h)) {
        *qs = (size_t)(q - v) + 1;
        *qe = h ? (size_t)(h - v) : n;
        return true;
    }
    /* No '?': a bare "a=1&b=2" starts with a parameter name, so its first
     * '=' comes before any ':' or '/' of a scheme or a path. */
    size_t end = h ? (size_t)(h - v) : n;
    size_t k = 0;
    while (k < end && v[k] != '=' && v[k] != ':' && v[k] != '/')
        k++;
    if (k == 0 || k == end || v[k] != '=')
        return false;
    *qs = 0;
    *qe = end;
    return true;
}

/* Decode and rewrite the layers a rule descends into at this string.
 * Returns 1 when a layer was recognised (and *res says what to do), 0 when
 * none was, or a negative error. */
static int layer_value(struct walk *w, struct sset ss, unsigned layers, const char *v, size_t n, bool kept,
                       struct vres *res)
{
    if (w->layers >= AP_BODY_MAX_LAYERS || w->depth >= w->pol->max_depth)
        return fail(w, -ELOOP, 0);
    for (unsigned l = AP_BODY_LAYER_JSON; l < AP_BODY_NLAYERS; l++) {
        if (!(layers & (1u << l)))
            continue;
        const char *doc = v;
        size_t docn = n;
        unsigned style = 0;
        char *dec = NULL;
        if (l == AP_BODY_LAYER_JSON) {
            if (!starts_json_container(v, n))
                continue;
        } else if (l == AP_BODY_LAYER_BASE64JSON) {
            dec = ap_arena_alloc(w->arena, n / 4 * 3 + 4);
            if (dec == NULL)
                return -ENOMEM;
            size_t dn = 0;
            if (ap_base64_decode(v, n, dec, &dn, &style) != 0) {
                /* A form decoder turned the '+' of unencoded base64 into
                 * spaces; put them back. */
                if (memchr(v, ' ', n) == NULL)
                    continue;
                char *fix = ap_arena_alloc(w->arena, n);
                if (fix == NULL)
                    return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                    fix[i] = v[i] == ' ' ? '+' : v[i];
                if (ap_base64_decode(fix, n, dec, &dn, &style) != 0)
                    continue;
            }
            if (!starts_json_container(dec, dn) || !ap_json_is_utf8(dec, dn))
                continue;
            doc = dec;
            docn = dn;
        }
        struct sset root;
        int rc = ss_layer_root(w, ss, (enum ap_body_layer)l, &root);
        if (rc != 0)
            return rc;
        struct key none = {NULL, 0, false, 0};
        size_t old = path_push(w, &none, (enum ap_body_layer)l);
        struct emit ie;
        em_init(&ie, doc, docn);
        uint32_t saved_stk = w->stk_len;
        unsigned saved_depth = w->depth;
        size_t saved_naudit = w->out->naudit;
        w->layers++;
        w->depth++;
        if (l == AP_BODY_LAYER_URL) {
            size_t qs, qe;
            rc = url_query(doc, docn, &qs, &qe) ? f_params(w, &ie, qs, qe, root, kept) : 0;
        } else {
            rc = j_document(w, &ie, 0, root, kept);
        }
        w->layers--;
        w->depth = saved_depth;
        w->stk_len = saved_stk;
        ss_pop(w, root);
        if (rc != 0) {
            path_pop(w, old);
            if (!is_syntax_error(rc))
                return rc;
            /* It looked like the layer but is broken: the collector may
             * read it some other way, so it does not leave. */
            w->out->naudit = saved_naudit;
            note(w, AP_BODY_DROP, AP_DETECT_NKINDS, "invalid layer", "layer");
            res->kind = V_DROP;
            return 1;
        }
        const char *r;
        size_t rn;
        rc = em_finish(w, &ie, &r, &rn);
        if (rc != 0) {
            path_pop(w, old);
            return rc;
        }
        if (l == AP_BODY_LAYER_URL && !kept && w->det_any) {
            /* The path and fragment of the URL hold text no parameter
             * rule sees: the detectors run over the whole rewritten URL. */
            struct vres d;
            rc = detect_value(w, r, rn, &d);
            if (rc != 0) {
                path_pop(w, old);
                return rc;
            }
            if (d.kind == V_DROP) {
                path_pop(w, old);
                res->kind = V_DROP;
                return 1;
            }
            if (d.kind == V_STR) {
                r = d.p;
                rn = d.n;
            }
        }
        path_pop(w, old);
        if (r == doc && rn == docn) {
            res->kind = V_KEEP;
            return 1;
        }
        if (l == AP_BODY_LAYER_BASE64JSON) {
            size_t en = ap_base64_encoded_len(rn, style);
            char *enc = ap_arena_alloc(w->arena, en ? en : 1);
            if (enc == NULL)
                return -ENOMEM;
            ap_base64_encode(r, rn, style, enc);
            *res = (struct vres){V_STR, enc, en};
        } else {
            *res = (struct vres){V_STR, r, rn};
        }
        return 1;
    }
    return 0;
}

/* ---- deciding a string value ---- */

/* Decide a decoded string: the rule, else layers, else detectors. `fr` is
 * the deciding rule (not SET, GEO, DROP: the callers do those). */
static int decide_string(struct walk *w, struct sset ss, const struct ap_body_rule *fr, bool kept,
                         const char *v, size_t n, struct vres *res)
{
    res->kind = V_KEEP;
    int rc = 0;
    if (fr != NULL) {
        if (fr->action == AP_BODY_KEEP)
            return 0;
        rc = transform(w, fr, v, n, false, res);
        if (rc == 0)
            note_rule(w, fr, res->kind == V_DROP ? AP_BODY_DROP : fr->action);
    } else {
        unsigned layers = ss.n ? ss_layers(w, ss) : 0;
        rc = layers ? layer_value(w, ss, layers, v, n, kept, res) : 0;
        if (rc > 0)
            rc = 0;
        else if (rc == 0 && !kept && w->det_any)
            rc = detect_value(w, v, n, res);
    }
    if (rc == 0 && res->kind == V_STR && res->n == n && memcmp(res->p, v, n) == 0)
        res->kind = V_KEEP;
    return rc;
}

/* ---- JSON ---- */

static int j_value(struct walk *w, struct emit *e, size_t *pos, struct sset ss, bool kept, size_t comma,
                   bool *dropped);

static int keep_comma(struct walk *w, struct emit *e, size_t comma)
{
    return comma == SIZE_MAX ? 0 : em_skip(w, e, comma, comma + 1);
}

static int skip_json(struct walk *w, struct emit *e, size_t *pos)
{
    unsigned room = w->pol->max_depth > w->depth ? w->pol->max_depth - w->depth : 0;
    int rc = ap_json_skip_value(e->in, e->lim, pos, room);
    return rc != 0 ? fail(w, rc, *pos) : 0;
}

/* The memoized click-id answer for a (non-empty) member name: -1 when not
 * asked yet. The entry is emptied when it held another name. */
static int8_t *key_memo(struct walk *w, const struct key *k)
{
    uint32_t a = 0, b = 0;
    if (k->n >= 4) {
        memcpy(&a, k->p, 4);
        memcpy(&b, k->p + k->n - 4, 4);
    } else {
        for (size_t i = 0; i < k->n; i++)
            a = a << 8 | (unsigned char)k->p[i];
    }
    unsigned h = ((a * 0x9e3779b1u) ^ (b * 0x85ebca77u) ^ (uint32_t)k->n * 0xc2b2ae3du) >> 26;
    if (w->memo[h].p == NULL || w->memo[h].n != k->n || memcmp(w->memo[h].p, k->p, k->n) != 0) {
        w->memo[h].p = k->p;
        w->memo[h].n = k->n;
        w->memo[h].clickid = -1;
    }
    return &w->memo[h].clickid;
}

/* Is this member named like a click id, with no rule deciding it? Then the
 * click-id detector drops it whatever it holds. */
static bool clickid_key(struct walk *w, bool kept, struct sset child, const struct key *k)
{
    if (kept || !(w->det_mask & (1u << AP_DETECT_CLICKID)) || k->n < 4)
        return false;
    if (child.n && ss_final(w, child) != NULL)
        return false;
    int8_t *hit = key_memo(w, k);
    if (*hit < 0)
        *hit = ap_detect_is_clickid_key(k->p, k->n);
    return *hit;
}

/* The detectors over a member or parameter name (decoded), unless a KEEP
 * rule or an ancestor's KEEP covers it. */
static int detect_key(struct walk *w, bool kept, struct sset child, const struct key *k, struct vres *res)
{
    res->kind = V_KEEP;
    if (kept || !w->det_any || k->n == 0)
        return 0;
    if (w->pol->nregexes == 0 && !ap_detect_may_match(w->det_mask, k->p, k->n))
        return 0;
    const struct ap_body_rule *fr = child.n ? ss_final(w, child) : NULL;
    if (fr != NULL && fr->action == AP_BODY_KEEP)
        return 0;
    int rc = detect_value(w, k->p, k->n, res);
    if (rc == 0 && res->kind == V_STR && res->n == k->n && memcmp(res->p, k->p, k->n) == 0)
        res->kind = V_KEEP;
    return rc;
}

/* Geo objects to add to an object that lacks their member. */
struct geo_pending {
    const struct ap_body_rule *rule;
    bool seen;
};
#define GEO_PENDING_MAX 4

static int j_object(struct walk *w, struct emit *e, size_t *pos, struct sset ss, bool kept)
{
    const char *s = e->in;
    size_t lim = e->lim;
    if (++w->depth > w->pol->max_depth)
        return fail(w, -ELOOP, *pos);
    struct geo_pending geo[GEO_PENDING_MAX];
    int ngeo = 0;
    if (ss.n && w->ctx->geo_json != NULL) {
        for (uint32_t j = 0; j < ss.n && ngeo < GEO_PENDING_MAX; j++) {
            uint32_t id = w->stk[ss.off + j];
            const struct ap_body_rule *r = st_rule(w, id);
            uint32_t st = st_step(w, id);
            if (r->action == AP_BODY_GEO && st + 1 == r->nsteps && r->steps[st].op == AP_BODYPATH_KEY &&
                !r->steps[st].recursive)
                geo[ngeo++] = (struct geo_pending){r, false};
        }
    }
    size_t i = *pos + 1, mstart = i, close = 0, nkept = 0;
    bool first = true;
    struct kids kd = {0};
    int rc;
    for (;;) {
        ap_json_skip_ws(s, lim, &i);
        if (first && i < lim && s[i] == '}') {
            close = i++;
            break;
        }
        if (i >= lim || s[i] != '"')
            return fail(w, -EINVAL, i);
        size_t ks = i;
        unsigned kf = 0;
        if ((rc = ap_json_scan_string(s, lim, &i, &kf)) != 0)
            return fail(w, rc, i);
        size_t kend = i;
        struct key k = {s + ks + 1, i - ks - 2, false, 0};
        if ((kf & AP_JSON_STR_ESCAPED) && (ss.n || w->audit || (!kept && w->det_any))) {
            char *dk = ap_arena_alloc(w->arena, k.n ? k.n : 1);
            if (dk == NULL)
                return -ENOMEM;
            k.n = ap_json_unescape(k.p, k.n, dk);
            k.p = dk;
        }
        ap_json_skip_ws(s, lim, &i);
        if (i >= lim || s[i] != ':')
            return fail(w, -EINVAL, i);
        i++;
        struct sset child = {w->stk_len, 0, 0, 0};
        if (ss.n && (rc = ss_child_of(w, ss, &kd, &k, &child)) != 0)
            return rc;
        for (int g = 0; g < ngeo; g++)
            if (k.n == geo[g].rule->steps[geo[g].rule->nsteps - 1].name_len &&
                memcmp(k.p, geo[g].rule->steps[geo[g].rule->nsteps - 1].name, k.n) == 0)
                geo[g].seen = true;
        size_t old = path_push(w, &k, AP_BODY_LAYER_NONE);
        bool dropped = false;
        struct vres kres = {V_KEEP, NULL, 0};
        if (clickid_key(w, kept, child, &k)) {
            kres.kind = V_DROP;
            note(w, AP_BODY_DROP, AP_DETECT_CLICKID, "click-id", "detector");
        } else if ((rc = detect_key(w, kept, child, &k, &kres)) != 0) {
            return rc;
        }
        if (kres.kind == V_DROP) {
            if ((rc = skip_json(w, e, &i)) == 0)
                dropped = true;
        } else if (kres.kind == V_STR) {
            /* The key itself held something (an address used as a key):
             * it is written before its value is decided, so remember where
             * the member started in case the value then drops it. */
            size_t len0;
            if ((rc = em_copy_to(w, e, mstart)) != 0)
                return rc;
            len0 = e->len;
            if ((!first && nkept == 0 && (rc = em_skip(w, e, mstart, mstart + 1)) != 0) ||
                (rc = em_copy_to(w, e, ks)) != 0 || (rc = em_put_json_string(w, e, kres.p, kres.n)) != 0)
                return rc;
            e->done = kend;
            rc = j_value(w, e, &i, child, kept, SIZE_MAX, &dropped);
            if (rc == 0 && dropped) {
                e->len = len0;
                e->done = mstart;
            }
        } else {
            rc = j_value(w, e, &i, child, kept, !first && nkept == 0 ? mstart : SIZE_MAX, &dropped);
        }
        path_pop(w, old);
        ss_pop(w, child);
        if (rc != 0)
            return rc;
        if (dropped) {
            if ((rc = em_skip(w, e, mstart, i)) != 0)
                return rc;
        } else {
            nkept++;
        }
        first = false;
        ap_json_skip_ws(s, lim, &i);
        if (i < lim && s[i] == ',') {
            mstart = i++;
            continue;
        }
        if (i < lim && s[i] == '}') {
            close = i++;
            break;
        }
        return fail(w, -EINVAL, i);
    }
    for (int g = 0; g < ngeo; g++) {
        if (geo[g].seen)
            continue;
        const struct ap_bodypath_step *st = &geo[g].rule->steps[geo[g].rule->nsteps - 1];
        if ((rc = em_copy_to(w, e, close)) != 0 || (nkept && (rc = em_put(w, e, ",", 1)) != 0) ||
            (rc = em_put_json_string(w, e, st->name, st->name_len)) != 0 || (rc = em_put(w, e, ":", 1)) != 0 ||
            (rc = em_put(w, e, w->ctx->geo_json, w->ctx->geo_len)) != 0)
            return rc;
        struct key k = {st->name, st->name_len, false, 0};
        size_t old = path_push(w, &k, AP_BODY_LAYER_NONE);
        note_rule(w, geo[g].rule, AP_BODY_GEO);
        path_pop(w, old);
        nkept++;
    }
    if (kd.have_def)
        ss_pop(w, kd.def);
    w->depth--;
    *pos = i;
    return 0;
}

static int j_array(struct walk *w, struct emit *e, size_t *pos, struct sset ss, bool kept)
{
    const char *s = e->in;
    size_t lim = e->lim;
    if (++w->depth > w->pol->max_depth)
        return fail(w, -ELOOP, *pos);
    size_t i = *pos + 1, mstart = i, nkept = 0;
    uint32_t index = 0;
    bool first = true;
    struct kids kd = {0};
    int rc;
    for (;;) {
        ap_json_skip_ws(s, lim, &i);
        if (first && i < lim && s[i] == ']') {
            i++;
            break;
        }
        struct key k = {NULL, 0, true, index++};
        struct sset child = {w->stk_len, 0, 0, 0};
        if (ss.n && (rc = ss_child_of(w, ss, &kd, &k, &child)) != 0)
            return rc;
        size_t old = path_push(w, &k, AP_BODY_LAYER_NONE);
        bool dropped = false;
        rc = j_value(w, e, &i, child, kept, !first && nkept == 0 ? mstart : SIZE_MAX, &dropped);
        path_pop(w, old);
        ss_pop(w, child);
        if (rc != 0)
            return rc;
        if (dropped) {
            if ((rc = em_skip(w, e, mstart, i)) != 0)
                return rc;
        } else {
            nkept++;
        }
        first = false;
        ap_json_skip_ws(s, lim, &i);
        if (i < lim && s[i] == ',') {
            mstart = i++;
            continue;
        }
        if (i < lim && s[i] == ']') {
            i++;
            break;
        }
        return fail(w, -EINVAL, i);
    }
    if (kd.have_def)
        ss_pop(w, kd.def);
    w->depth--;
    *pos = i;
    return 0;
}

/* Write a decided scalar that spans [vs, ve) of the input. */
static int j_emit(struct walk *w, struct emit *e, size_t vs, size_t ve, size_t comma, const struct vres *res,
                  bool *dropped)
{
    int rc;
    switch (res->kind) {
    case V_DROP:
        *dropped = true;
        return 0;
    case V_STR:
        if ((rc = keep_comma(w, e, comma)) != 0 || (rc = em_copy_to(w, e, vs)) != 0 ||
            (rc = em_put_json_string(w, e, res->p, res->n)) != 0)
            return rc;
        e->done = ve;
        return 0;
    case V_RAW:
        if ((rc = keep_comma(w, e, comma)) != 0 || (rc = em_copy_to(w, e, vs)) != 0 ||
            (rc = em_put(w, e, res->p, res->n)) != 0)
            return rc;
        e->done = ve;
        return 0;
    default:
        return keep_comma(w, e, comma);
    }
}

static int j_string(struct walk *w, struct emit *e, size_t *pos, struct sset ss, const struct ap_body_rule *fr,
                    bool kept, size_t comma, bool *dropped)
{
    const char *s = e->in;
    size_t vs = *pos;
    unsigned fl = 0;
    int rc = ap_json_scan_string(s, e->lim, pos, &fl);
    if (rc != 0)
        return fail(w, rc, *pos);
    const char *raw = s + vs + 1;
    size_t rawn = *pos - vs - 2;
    bool has_rule = fr != NULL && fr->action != AP_BODY_KEEP;
    bool has_layer = !has_rule && fr == NULL && ss.n && ss_layers(w, ss);
    bool detect = !has_rule && !has_layer && fr == NULL && !kept && w->det_any;
    if (detect && !(fl & AP_JSON_STR_ESCAPED) && w->pol->nregexes == 0 &&
        !ap_detect_may_match(w->det_mask, raw, rawn))
        detect = false;
    if (!has_rule && !has_layer && !detect) {
        if (fr != NULL)
            note_rule(w, fr, AP_BODY_KEEP);
        return keep_comma(w, e, comma);
    }
    const char *v = raw;
    size_t n = rawn;
    if (fl & AP_JSON_STR_ESCAPED) {
        char *d = ap_arena_alloc(w->arena, rawn ? rawn : 1);
        if (d == NULL)
            return -ENOMEM;
        n = ap_json_unescape(raw, rawn, d);
        v = d;
    }
    struct vres res;
    rc = decide_string(w, ss, has_rule ? fr : NULL, kept || fr != NULL, v, n, &res);
    if (rc != 0)
        return rc;
    return j_emit(w, e, vs, *pos, comma, &res, dropped);
}

static int scan_literal(struct walk *w, struct emit *e, size_t *pos)
{
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t k = 0; k < AP_ARRAY_SIZE(lits); k++) {
        size_t n = strlen(lits[k]);
        if (e->lim - *pos >= n && memcmp(e->in + *pos, lits[k], n) == 0) {
            *pos += n;
            return 0;
        }
    }
    return fail(w, -EINVAL, *pos);
}

static int j_value(struct walk *w, struct emit *e, size_t *pos, struct sset ss, bool kept, size_t comma,
                   bool *dropped)
{
    const char *s = e->in;
    ap_json_skip_ws(s, e->lim, pos);
    if (*pos >= e->lim)
        return fail(w, -EINVAL, *pos);
    size_t vs = *pos;
    unsigned char c = (unsigned char)s[vs];
    const struct ap_body_rule *fr = ss.n ? ss_final(w, ss) : NULL;
    int rc;
    if (fr != NULL) {
        switch (fr->action) {
        case AP_BODY_DROP:
            if ((rc = skip_json(w, e, pos)) != 0)
                return rc;
            note_rule(w, fr, AP_BODY_DROP);
            *dropped = true;
            return 0;
        case AP_BODY_SET:
        case AP_BODY_GEO: {
            if ((rc = skip_json(w, e, pos)) != 0)
                return rc;
            const char *val = fr->action == AP_BODY_SET ? fr->set_json : w->ctx->geo_json;
            if (val == NULL) {
                note_rule(w, fr, AP_BODY_DROP);
                *dropped = true;
                return 0;
            }
            size_t vn = fr->action == AP_BODY_SET ? strlen(val) : w->ctx->geo_len;
            note_rule(w, fr, fr->action);
            struct vres r = {V_RAW, val, vn};
            return j_emit(w, e, vs, *pos, comma, &r, dropped);
        }
        case AP_BODY_KEEP:
            if (c == '{' || c == '[')
                note_rule(w, fr, AP_BODY_KEEP);
            kept = true;
            break;
        default:
            if (c == '{' || c == '[') {
                /* String and number actions do not take containers. */
                if ((rc = skip_json(w, e, pos)) != 0)
                    return rc;
                note_rule(w, fr, AP_BODY_DROP);
                *dropped = true;
                return 0;
            }
            break;
        }
    }
    switch (c) {
    case '{':
        if ((rc = keep_comma(w, e, comma)) != 0)
            return rc;
        return j_object(w, e, pos, ss, kept);
    case '[':
        if ((rc = keep_comma(w, e, comma)) != 0)
            return rc;
        return j_array(w, e, pos, ss, kept);
    case '"':
        return j_string(w, e, pos, ss, fr, kept, comma, dropped);
    case 't':
    case 'f':
    case 'n':
        if ((rc = scan_literal(w, e, pos)) != 0)
            return rc;
        if (fr != NULL)
            note_rule(w, fr, AP_BODY_KEEP);
        return keep_comma(w, e, comma);
    default:
        if ((rc = ap_json_scan_number(s, e->lim, pos)) != 0)
            return fail(w, rc, *pos);
        if (fr != NULL && fr->action != AP_BODY_KEEP) {
            struct vres r;
            if ((rc = transform(w, fr, s + vs, *pos - vs, true, &r)) != 0)
                return rc;
            note_rule(w, fr, r.kind == V_DROP ? AP_BODY_DROP : fr->action);
            if (r.kind == V_RAW && r.n == *pos - vs && memcmp(r.p, s + vs, r.n) == 0)
                r.kind = V_KEEP;
            return j_emit(w, e, vs, *pos, comma, &r, dropped);
        }
        if (fr != NULL)
            note_rule(w, fr, AP_BODY_KEEP);
        return keep_comma(w, e, comma);
    }
}

static int j_document(struct walk *w, struct emit *e, size_t start, struct sset ss, bool kept)
{
    size_t pos = start;
    bool dropped = false;
    ap_json_skip_ws(e->in, e->lim, &pos);
    size_t vs = pos;
    int rc = j_value(w, e, &pos, ss, kept, SIZE_MAX, &dropped);
    if (rc != 0)
        return rc;
    /* No rule decides a root (paths have a step), but a detector can drop
     * a document that is a bare string: what stays is null. */
    if (dropped && ((rc = em_copy_to(w, e, vs)) != 0 || (rc = em_put(w, e, "null", 4)) != 0))
        return rc;
    if (dropped)
        e->done = pos;
    ap_json_skip_ws(e->in, e->lim, &pos);
    return pos == e->lim ? 0 : fail(w, -EBADMSG, pos);
}

/* ---- forms and URL queries ---- */

static int pct_decoded(struct walk *w, const char *p, size_t n, const char **out, size_t *outn)
{
    if (memchr(p, '%', n) == NULL && memchr(p, '+', n) == NULL) {
        *out = p;
        *outn = n;
        return 0;
    }
    char *d = ap_arena_alloc(w->arena, n ? n : 1);
    if (d == NULL)
        return -ENOMEM;
    *outn = ap_text_pct_decode(p, n, d, AP_TEXT_PCT | AP_TEXT_PLUS);
    *out = d;
    return 0;
}

static int f_params(struct walk *w, struct emit *e, size_t start, size_t end, struct sset ss, bool kept)
{
    const char *s = e->in;
    size_t i = start, mstart = start, nkept = 0;
    bool first = true;
    int rc;
    while (i <= end) {
        size_t ps = i;
        const char *amp = memchr(s + ps, '&', end - ps);
        size_t pe = amp ? (size_t)(amp - s) : end;
        size_t next = pe + 1;
        if (pe == ps) {
            /* An empty parameter ("a&&b", a trailing '&') says nothing:
             * it goes, with the separator it owns. */
            if ((rc = em_skip(w, e, mstart, pe)) != 0)
                return rc;
            first = false;
            if (amp == NULL)
                break;
            mstart = pe;
            i = next;
            continue;
        }
        const char *eq = memchr(s + ps, '=', pe - ps);
        size_t ne = eq ? (size_t)(eq - s) : pe;
        size_t vs = eq ? ne + 1 : pe;
        struct key k = {NULL, 0, false, 0};
        struct sset child = {w->stk_len, 0, 0, 0};
        size_t old = w->plen;
        if (ss.n || w->audit || (!kept && w->det_any)) {
            if ((rc = pct_decoded(w, s + ps, ne - ps, &k.p, &k.n)) != 0)
                return rc;
            if (ss.n && (rc = ss_child(w, ss, &k, &child)) != 0)
                return rc;
            old = path_push(w, &k, AP_BODY_LAYER_NONE);
        }
        const struct ap_body_rule *fr = child.n ? ss_final(w, child) : NULL;
        struct vres res = {V_KEEP, NULL, 0};
        bool this_kept = kept;
        rc = 0;
        if (fr == NULL && !kept && (w->det_mask & (1u << AP_DETECT_CLICKID))) {
            if (k.p == NULL && (rc = pct_decoded(w, s + ps, ne - ps, &k.p, &k.n)) != 0)
                return rc;
            if (ap_detect_is_clickid_key(k.p, k.n)) {
                res.kind = V_DROP;
                note(w, AP_BODY_DROP, AP_DETECT_CLICKID, "click-id", "detector");
            }
        }
        struct vres kres = {V_KEEP, NULL, 0};
        if (res.kind != V_DROP && k.p != NULL && (rc = detect_key(w, kept, child, &k, &kres)) != 0)
            return rc;
        if (kres.kind == V_DROP)
            res.kind = V_DROP;
        if (res.kind == V_DROP) {
            /* decided above */
        } else if (fr != NULL && (fr->action == AP_BODY_DROP || fr->action == AP_BODY_SET || fr->action == AP_BODY_GEO)) {
            if (fr->action == AP_BODY_DROP) {
                res.kind = V_DROP;
            } else if (fr->action == AP_BODY_SET) {
                res = (struct vres){V_STR, fr->set_plain, strlen(fr->set_plain)};
            } else if (w->ctx->geo_json != NULL) {
                res = (struct vres){V_STR, w->ctx->geo_json, w->ctx->geo_len};
            } else {
                res.kind = V_DROP;
            }
            note_rule(w, fr, res.kind == V_DROP ? AP_BODY_DROP : fr->action);
        } else if (eq != NULL && pe > vs) {
            bool has_rule = fr != NULL && fr->action != AP_BODY_KEEP;
            if (fr != NULL && fr->action == AP_BODY_KEEP) {
                note_rule(w, fr, AP_BODY_KEEP);
                this_kept = true;
            }
            bool has_layer = !has_rule && fr == NULL && child.n && ss_layers(w, child);
            bool detect = !has_rule && !has_layer && !this_kept && w->det_any;
            if (has_rule || has_layer || detect) {
                const char *v;
                size_t n;
                if ((rc = pct_decoded(w, s + vs, pe - vs, &v, &n)) != 0)
                    return rc;
                if (detect && w->pol->nregexes == 0 && !ap_detect_may_match(w->det_mask, v, n))
                    detect = false;
                if (has_rule || has_layer || detect)
                    rc = decide_string(w, child, has_rule ? fr : NULL, this_kept, v, n, &res);
            }
        } else if (fr != NULL) {
            note_rule(w, fr, AP_BODY_KEEP); /* nothing to transform in "a" or "a=" */
        }
        path_pop(w, old);
        ss_pop(w, child);
        if (rc != 0)
            return rc;
        if (res.kind == V_DROP) {
            if ((rc = em_skip(w, e, mstart, pe)) != 0)
                return rc;
        } else {
            if (!first && nkept == 0 && (rc = em_skip(w, e, mstart, mstart + 1)) != 0)
                return rc;
            if (kres.kind == V_STR) {
                if ((rc = em_copy_to(w, e, ps)) != 0 || (rc = em_put_pct(w, e, kres.p, kres.n)) != 0)
                    return rc;
                e->done = ne;
            }
            if (res.kind == V_STR || res.kind == V_RAW) {
                if ((rc = em_copy_to(w, e, vs)) != 0)
                    return rc;
                if (eq == NULL && (rc = em_put(w, e, "=", 1)) != 0)
                    return rc;
                if ((rc = em_put_pct(w, e, res.p, res.n)) != 0)
                    return rc;
                e->done = pe;
            }
            nkept++;
        }
        first = false;
        if (amp == NULL)
            break;
        mstart = pe;
        i = next;
    }
    return 0;
}

/* ---- entry ---- */

static int walk_lines(struct walk *w, struct emit *e, enum ap_body_format fmt, struct sset root)
{
    size_t i = 0;
    int rc;
    while (i < e->inlen) {
        const char *nl = memchr(e->in + i, '\n', e->inlen - i);
        size_t le = nl ? (size_t)(nl - e->in) : e->inlen;
        size_t ce = le > i && e->in[le - 1] == '\r' ? le - 1 : le;
        size_t b = i;
        ap_json_skip_ws(e->in, ce, &b);
        if (b < ce) {
            if (fmt == AP_BODY_FMT_NDJSON) {
                e->lim = le;
                rc = j_document(w, e, i, root, false);
                e->lim = e->inlen;
            } else {
                rc = f_params(w, e, i, ce, root, false);
            }
            if (rc != 0)
                return rc == -EBADMSG ? fail(w, -EINVAL, w->err_off) : rc;
        }
        i = le + 1;
    }
    return 0;
}

int ap_bodywalk_run(const struct ap_body_policy *pol, const struct ap_body_ctx *ctx,
                    struct ap_body_out *out, enum ap_body_format fmt, const char *in, size_t len,
                    size_t out_limit, const char **res, size_t *reslen, size_t *err_off)
{
    struct walk w;
    memset(&w, 0, sizeof(w));
    w.pol = pol;
    w.ctx = ctx;
    w.out = out;
    w.arena = ctx->arena;
    w.out_limit = out_limit;
    w.audit = ctx->audit;
    if (w.audit) {
        w.path = ap_arena_alloc(w.arena, 256);
        if (w.path == NULL)
            return -ENOMEM;
        w.path[0] = '$';
        w.plen = 1;
        w.pcap = 256;
    }
    for (unsigned k = 0; k < AP_DETECT_REGEX; k++)
        if (pol->detect[k] != AP_BODY_KEEP)
            w.det_mask |= 1u << k;
    w.det_any = w.det_mask != 0 || pol->nregexes > 0;
    *err_off = 0;
    int rc = 0;
    struct sset root = {0, 0, 0, 0};
    if (pol->nstates > 0) {
        w.stamp = ap_arena_alloc(w.arena, pol->nstates * sizeof(*w.stamp));
        w.stk_cap = pol->nstates > 256 ? pol->nstates * 2 : 512;
        w.stk = ap_arena_alloc(w.arena, w.stk_cap * sizeof(*w.stk));
        if (w.stamp == NULL || w.stk == NULL)
            return -ENOMEM;
        memset(w.stamp, 0, pol->nstates * sizeof(*w.stamp));
        w.skind = ap_arena_alloc(w.arena, pol->nstates);
        w.shash = ap_arena_alloc(w.arena, pol->nstates);
        if (w.skind == NULL || w.shash == NULL)
            return -ENOMEM;
        for (uint32_t id = 0; id < pol->nstates; id++) {
            const struct ap_bodypath_step *st = pol->state_steps[id];
            if (st == NULL || st->op == AP_BODYPATH_LAYER) {
                w.skind[id] = SK_DROP;
            } else if (st->op == AP_BODYPATH_KEY) {
                unsigned h = key_hash(st->name, st->name_len);
                w.shash[id] = (uint8_t)h;
                w.skind[id] = SK_KEY;
                w.kbloom[h >> 6] |= 1ull << (h & 63);
            } else {
                w.skind[id] = st->op == AP_BODYPATH_INDEX ? SK_INDEX : SK_OTHER;
            }
        }
        ss_begin(&w, &root);
        for (uint32_t j = 0; j < pol->nroot && rc == 0; j++)
            rc = ss_add(&w, &root, pol->root_states[j]);
        if (rc != 0)
            return rc;
    }
    struct emit e;
    em_init(&e, in, len);
    switch (fmt) {
    case AP_BODY_FMT_JSON:
        rc = j_document(&w, &e, 0, root, false);
        break;
    case AP_BODY_FMT_NDJSON:
    case AP_BODY_FMT_FORM_LINES:
        rc = walk_lines(&w, &e, fmt, root);
        break;
    case AP_BODY_FMT_FORM:
        rc = f_params(&w, &e, 0, len, root, false);
        break;
    case AP_BODY_FMT_TEXT: {
        struct vres r = {V_KEEP, NULL, 0};
        if (w.det_any)
            rc = detect_value(&w, in, len, &r);
        if (rc == 0 && r.kind == V_DROP)
            rc = em_skip(&w, &e, 0, len);
        else if (rc == 0 && r.kind == V_STR && (rc = em_put(&w, &e, r.p, r.n)) == 0)
            e.done = len;
        break;
    }
    default:
        rc = -EINVAL;
        break;
    }
    if (rc == 0)
        rc = em_finish(&w, &e, res, reslen);
    *err_off = w.err_off;
    return rc;
}

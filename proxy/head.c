/* Strict HTTP/1.1 request-head scanner and parser (RFC 9110, RFC 9112).
 *
 * llhttp 8.1.0 (the parser we use for framing, see proxy/conn.c) predates
 * several request-smuggling fixes, so every request head goes through this
 * file first. The scanner checks each line as soon as it is complete; the
 * parser then applies the semantic rules. Both are pure functions over a
 * buffer: no I/O, no allocation but the caller's arena, fuzzed by
 * tests/fuzz/fuzz_head.c. */
#include "anonproxy/common.h"

#include <ctype.h>

#include <inttypes.h>

#include "anonproxy/arena.h"
#include "anonproxy/buf.h"
#include "anonproxy/head.h"

/* SSE2 is part of the x86-64 baseline: with it the long runs of a head are
 * classified 16 bytes per step. AP_HEAD_PORTABLE forces the portable
 * word-at-a-time path, so that tests can build and check it on x86-64 too.
 * Every 16-byte load below lies inside [p, p + len): nothing is read past
 * the bytes the caller handed in. */
#if defined(__SSE2__) && !defined(AP_HEAD_PORTABLE)
#define HEAD_SSE2 1
#include <emmintrin.h>
#else
#define HEAD_SSE2 0
#endif

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static const uint8_t tchar_table[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* The longest method we accept; real ones are far shorter. */
#define METHOD_MAX 32
/* Request line = method SP target SP "HTTP/1.1": slack over target_bytes. */
#define REQUEST_LINE_SLACK (METHOD_MAX + 16)

int ap_head_is_tchar(unsigned char c)
{
    return tchar_table[c];
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static int slices_eq_ci(struct ap_slice a, struct ap_slice b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
            return 0;
    return 1;
}

int ap_slice_eq_ci(struct ap_slice s, const char *lit)
{
    return slices_eq_ci(s, (struct ap_slice){lit, strlen(lit)});
}

static int fail(struct ap_head_error *err, int status, const char *reason)
{
    err->status = status;
    err->reason = reason;
    return -1;
}

/* Word-at-a-time tests (8 bytes per step) for the long runs of a head:
 * the request target and header values. Each flags the bytes of the word
 * outside the run's set; the lowest flag is always exact (a borrow only
 * ever runs upwards from a flagged byte), so its position is the first
 * such byte. Little-endian: the lowest byte comes first in memory. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the word-at-a-time scanning below assumes little-endian byte order"
#endif
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* Some byte of w is below n (n <= 128). */
static uint64_t has_below(uint64_t w, unsigned n)
{
    return (w - ONES * n) & ~w & HIGHS;
}

/* Some byte of w equals c. */
static uint64_t has_byte(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

/* Some byte of w is 0x7f or above. */
static uint64_t has_del_or_high(uint64_t w)
{
    return (w | ((w & ~HIGHS) + ONES)) & HIGHS;
}

static int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

/* Length of the run of request-target bytes (VCHAR but '#') at p. */
static size_t target_span(const char *p, size_t len)
{
    size_t i = 0;
#if HEAD_SSE2
    /* Signed compares: bytes 0x80-0xff are negative, so "greater than
     * 0x20" is exactly 0x21-0x7f; DEL and '#' are then taken out. */
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), hash = _mm_set1_epi8('#');
    for (; i + 16 <= len; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(x, del), _mm_cmpeq_epi8(x, hash));
        unsigned m = ((unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(x, sp)) ^ 0xffffu) |
                     (unsigned)_mm_movemask_epi8(bad);
        if (m != 0)
            return i + (size_t)__builtin_ctz(m);
    }
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w = load64(p + i);
        uint64_t m = has_below(w, 0x21) | has_del_or_high(w) | has_byte(w, '#');
        if (m != 0)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
    while (i < len && is_target_char((unsigned char)p[i]))
        i++;
    return i;
}

static int is_value_char(unsigned char c)
{
    return (c >= 0x20 || c == '\t') && c != 0x7f;
}

/* Some byte of the word is a CTL but HTAB (which only needs a closer look). */
static uint64_t value_word_suspect(uint64_t w)
{
    return has_below(w, 0x20) | has_byte(w, 0x7f);
}

/* Length of the run of field-value bytes (no CTL but HTAB) at p. The
 * lowest flagged byte of a word is exactly the first CTL or DEL in it. */
static size_t value_span(const char *p, size_t len)
{
    size_t i = 0;
#if HEAD_SSE2
    /* min(x, 0x1f) == x is an unsigned "x <= 0x1f" (SSE2 has no unsigned
     * compare); the first flagged byte is the first CTL or DEL. */
    const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    while (i + 16 <= len) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, c1f), x);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(x, del)));
        if (m == 0) {
            i += 16;
            continue;
        }
        size_t j = i + (size_t)__builtin_ctz(m);
        if (p[j] != '\t')
            return j;
        i = j + 1; /* a tab belongs in a value: go on after it */
    }
#endif
    while (i + 8 <= len) {
        uint64_t m = value_word_suspect(load64(p + i));
        if (m == 0) {
            i += 8;
            continue;
        }
        size_t j = i + (size_t)__builtin_ctzll(m) / 8;
        if (p[j] != '\t')
            return j;
        i = j + 1; /* a tab belongs in a value: go on after it */
    }
    while (i < len && is_value_char((unsigned char)p[i]))
        i++;
    return i;
}

/* Length of the run of tchar bytes at p. */
static size_t token_span(const char *p, size_t len)
{
    size_t i = 0;
#if HEAD_SSE2
    /* Header names and methods are nearly always letters, digits and '-',
     * a set SSE2 classifies with a few compares (signed: bytes 0x80-0xff
     * are negative and so never in a range of letters or digits; x | 0x20
     * is in 'a'-'z' only for the ASCII letters). The first byte outside it
     * is looked up in tchar_table: another tchar goes on from the next
     * byte, anything else ends the run, exactly as the table alone would. */
    const __m128i lo_a = _mm_set1_epi8('a' - 1), hi_z = _mm_set1_epi8('z' + 1);
    const __m128i lo_0 = _mm_set1_epi8('0' - 1), hi_9 = _mm_set1_epi8('9' + 1);
    const __m128i dash = _mm_set1_epi8('-'), bit5 = _mm_set1_epi8(0x20);
    while (i + 16 <= len) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i l = _mm_or_si128(x, bit5);
        __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, lo_a), _mm_cmpgt_epi8(hi_z, l));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, lo_0), _mm_cmpgt_epi8(hi_9, x));
        __m128i ok = _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(x, dash));
        unsigned m = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
        if (m == 0) {
            i += 16;
            continue;
        }
        size_t j = i + (size_t)__builtin_ctz(m);
        if (!tchar_table[(unsigned char)p[j]])
            return j;
        i = j + 1;
    }
#endif
    while (i + 4 <= len && (tchar_table[(unsigned char)p[i]] & tchar_table[(unsigned char)p[i + 1]] &
                            tchar_table[(unsigned char)p[i + 2]] & tchar_table[(unsigned char)p[i + 3]]))
        i += 4;
    while (i < len && tchar_table[(unsigned char)p[i]])
        i++;
    return i;
}

static int check_request_line(const char *p, size_t len, const struct ap_head_limits *lim,
                              struct ap_head_error *err)
{
    size_t i = token_span(p, len);
    if (i == 0)
        return fail(err, 400, "invalid method");
    if (i > METHOD_MAX)
        return fail(err, 400, "method too long");
    if (i == len || p[i] != ' ')
        return fail(err, 400, "invalid character in method");
    size_t t = ++i;
    i += target_span(p + i, len - i);
    if (i < len && p[i] != ' ') {
        if (p[i] == '#')
            return fail(err, 400, "fragment in request target");
        return fail(err, 400, "invalid character in request target");
    }
    if (i == t)
        return fail(err, 400, "empty request target");
    if (i - t > lim->target_bytes)
        return fail(err, 414, "request target too long");
    if (i == len)
        return fail(err, 400, "request line without HTTP version (HTTP/0.9 is not supported)");
    i++;
    /* HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive. */
    if (len - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' ||
        p[i + 5] > '9' || p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
        return fail(err, 400, "invalid HTTP version");
    return 0;
}

static int check_header_line(const char *p, size_t len, struct ap_head_error *err)
{
    if (p[0] == ' ' || p[0] == '\t')
        return fail(err, 400, "obsolete line folding");
    size_t i = token_span(p, len);
    if (i == len)
        return fail(err, 400, "header line without colon");
    if (p[i] != ':') {
        if (p[i] == ' ' || p[i] == '\t')
            return fail(err, 400, "whitespace between header name and colon");
        return fail(err, 400, i == 0 ? "empty header name" : "invalid character in header name");
    }
    if (i == 0)
        return fail(err, 400, "empty header name");
    i++;
    if (value_span(p + i, len - i) != len - i)
        return fail(err, 400, "invalid character in header value");
    return 0;
}

/* The byte-order checks of the scan over buf[i, end), the unchecked part of
 * the current line, which holds no LF: a CR that is not right before the
 * LF at `end` (or the last byte received) is a bare CR, and a byte other
 * than CR past the line or head limit is too much. Whichever comes first in
 * the buffer is the error, as if the bytes were checked one by one. */
static int check_bytes(struct ap_head_scan *s, const char *buf, size_t i, size_t end,
                       const struct ap_head_limits *lim, struct ap_head_error *err)
{
    size_t line_lim = s->nlines == 0 ? (size_t)lim->target_bytes + REQUEST_LINE_SLACK
                                     : (size_t)lim->line_bytes;
    size_t line_at = s->line_start + line_lim; /* first byte past the line limit */
    size_t limit_at = line_at < lim->head_bytes ? line_at : lim->head_bytes;
    const char *cr = i < end ? memchr(buf + i, '\r', end - i) : NULL;
    size_t cr_at = cr != NULL && (size_t)(cr - buf) + 1 < end ? (size_t)(cr - buf) : end;
    size_t over = limit_at > i ? limit_at : i;
    if (over < end && buf[over] == '\r')
        over = end; /* the final CR, or a bare CR found above at `over` */
    if (cr_at < end && cr_at < over) {
        s->off = cr_at;
        return fail(err, 400, "bare CR in request head");
    }
    if (over < end) {
        s->off = over;
        if (over < line_at)
            return fail(err, 431, "request head too large");
        return s->nlines == 0 ? fail(err, 414, "request line too long")
                              : fail(err, 431, "header line too long");
    }
    return 0;
}

/* A complete, valid header line at p (token, ':', field-value bytes, CRLF)
 * in one pass: its length up to and including the LF; 0 when it is
 * anything else (incomplete, invalid, folded, the blank line), which the
 * general path then decides. */
static size_t simple_header_line(const char *p, size_t avail)
{
    size_t i = token_span(p, avail);
    if (i == 0 || i == avail || p[i] != ':')
        return 0;
    i++;
    i += value_span(p + i, avail - i);
    if (i + 1 < avail && p[i] == '\r' && p[i + 1] == '\n')
        return i + 2;
    return 0;
}

#if HEAD_SSE2
/* Header lines in bulk. Line by line, each search starts where the last
 * one ended, so the time per line is the latency of a chain of loads and
 * searches. Here the bytes of a window are first classified 16 at a time
 * into bit masks, with no dependency between the steps; the lines are then
 * walked with bit operations and each line's own checks only feed branches.
 *
 * Bit k of word k / 64 of a mask is byte start + k of the buffer. */
#define WIN_BYTES 1024
#define WIN_WORDS (WIN_BYTES / 64)

/* The 64 bytes at p, of which n are the buffer's, as four vectors: a
 * short tail is copied and padded with 'a', a byte in none of the classes
 * used below, so no load reaches past the buffer and padding never looks
 * like LF, CR, ':', a CTL or the end of a header name. */
static void load_block(const char *p, size_t n, __m128i v[4])
{
    char tmp[64];
    if (n < 64) {
        memset(tmp, 'a', sizeof(tmp));
        memcpy(tmp, p, n);
        p = tmp;
    }
    for (int q = 0; q < 4; q++)
        v[q] = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * q));
}

/* The byte masks of four vectors as one 64-bit mask. */
static uint64_t mask64(__m128i a, __m128i b, __m128i c, __m128i d)
{
    return (uint64_t)(unsigned)_mm_movemask_epi8(a) | (uint64_t)(unsigned)_mm_movemask_epi8(b) << 16 |
           (uint64_t)(unsigned)_mm_movemask_epi8(c) << 32 | (uint64_t)(unsigned)_mm_movemask_epi8(d) << 48;
}

/* Per-byte "x is an ASCII letter, digit or '-'", the bytes of nearly every
 * header name (signed compares: bytes 0x80-0xff are negative and never in
 * a range of letters or digits; x | 0x20 is in 'a'-'z' only for letters). */
static __m128i name_bytes(__m128i x)
{
    __m128i l = _mm_or_si128(x, _mm_set1_epi8(0x20));
    __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                                  _mm_cmpgt_epi8(_mm_set1_epi8('z' + 1), l));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                                  _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), x));
    return _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(x, _mm_set1_epi8('-')));
}

/* Position of the first bit at or after `pos` in m. Every window mask has
 * a sentinel bit just past its last byte, so the search always ends. */
static size_t next_bit(const uint64_t *m, size_t pos)
{
    size_t k = pos / 64;
    uint64_t w = m[k] & (~0ull << (pos % 64));
    while (w == 0)
        w = m[++k];
    return k * 64 + (size_t)__builtin_ctzll(w);
}

/* Set the sentinel bit n of a mask whose words [0, (n + 63) / 64) are in use. */
static void set_sentinel(uint64_t *m, size_t n)
{
    if (n % 64 == 0)
        m[n / 64] = 0;
    m[n / 64] |= 1ull << (n % 64);
}

struct scan_win {
    size_t start; /* buffer offset of bit 0 */
    size_t nw;    /* words in use */
    size_t clean; /* bytes [start, start + clean) hold no CTL but CRLF and HTAB */
    uint64_t lf[WIN_WORDS + 1]; /* and a sentinel at the window's end */
};

static void scan_win_build(struct scan_win *w, const char *buf, size_t start, size_t len)
{
    size_t n = len - start < WIN_BYTES ? len - start : WIN_BYTES;
    uint64_t ctl[WIN_WORDS];
    const __m128i nl = _mm_set1_epi8('\n'), tab = _mm_set1_epi8('\t');
    const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    w->start = start;
    w->nw = (n + 63) / 64;
    for (size_t k = 0; k < w->nw; k++) {
        __m128i v[4], c[4], l[4];
        load_block(buf + start + k * 64, n - k * 64, v);
        for (int q = 0; q < 4; q++) {
            /* CTL but HTAB (unsigned x <= 0x1f is min(x, 0x1f) == x), or DEL. */
            c[q] = _mm_andnot_si128(_mm_cmpeq_epi8(v[q], tab),
                                    _mm_cmpeq_epi8(_mm_min_epu8(v[q], c1f), v[q]));
            c[q] = _mm_or_si128(c[q], _mm_cmpeq_epi8(v[q], del));
            l[q] = _mm_cmpeq_epi8(v[q], nl);
        }
        w->lf[k] = mask64(l[0], l[1], l[2], l[3]);
        ctl[k] = mask64(c[0], c[1], c[2], c[3]);
    }
    /* Clean bytes: every CTL is an LF or the byte right before one (whether
     * that byte is a CR is checked per line). A CR last in the window is
     * not clean; an LF first in it is caught per line. */
    w->clean = n;
    for (size_t k = 0; k < w->nw; k++) {
        uint64_t next = k + 1 < w->nw ? w->lf[k + 1] : 0;
        uint64_t d = ctl[k] ^ (w->lf[k] | (w->lf[k] >> 1) | (next << 63));
        if (d != 0) {
            w->clean = k * 64 + (size_t)__builtin_ctzll(d);
            break;
        }
    }
    set_sentinel(w->lf, n);
}

/* Take the header lines from s->line_start on that the one-line fast path
 * of ap_head_scan would take (same checks, same order of state updates),
 * and stop at the first one it cannot vouch for, which the line-by-line
 * code then decides. A line is taken when, with e its LF and c the first
 * colon after its start: c is after the start and before e, the name
 * before c is all tchar, the byte before e is CR, every byte up to e is
 * clean (so the value holds no CTL but HTAB and no DEL), and the limits of
 * the fast path hold. That is exactly simple_header_line's acceptance. */
static int scan_bulk(struct ap_head_scan *s, const char *buf, size_t len,
                     const struct ap_head_limits *lim, struct ap_head_error *err)
{
    struct scan_win w;
    scan_win_build(&w, buf, s->line_start, len);
    size_t r = 0; /* window offset of the line being looked at */
    unsigned nlines = s->nlines;
    for (;; r = s->line_start - w.start) {
        size_t e = next_bit(w.lf, r); /* the sentinel when no LF: not clean */
        if (e >= w.clean)
            break;
        const char *p = buf + w.start + r;
        size_t avail = len - (w.start + r);
        /* The name: the first byte that is no letter, digit or '-' is
         * nearly always the colon; otherwise the tchar table decides. The
         * LF at e is no tchar, so a colon found this way is before it. */
        size_t c = 0;
        if (avail >= 16) {
            unsigned m = (unsigned)_mm_movemask_epi8(
                             name_bytes(_mm_loadu_si128((const __m128i *)(const void *)p))) ^ 0xffffu;
            if (m != 0)
                c = (size_t)__builtin_ctz(m);
        }
        if (c == 0 || p[c] != ':')
            c = token_span(p, avail);
        if (c == 0 || c >= e - r || p[c] != ':' || p[e - r - 1] != '\r')
            break;
        size_t lf_at = w.start + e;
        if (e - 1 - r > lim->line_bytes || lf_at - 1 > lim->head_bytes)
            break;
        nlines++;
        if (nlines - 1 > lim->header_count) {
            s->nlines = nlines;
            s->off = lf_at;
            return fail(err, 431, "too many header fields");
        }
        s->line_start = lf_at + 1;
    }
    s->nlines = nlines;
    return 0;
}
#endif

int ap_head_scan(struct ap_head_scan *s, const char *buf, size_t len,
                 const struct ap_head_limits *lim, struct ap_head_error *err)
{
    size_t i = s->off;
    while (i < len) {
        if (s->nlines > 0 && i == s->line_start) {
#if HEAD_SSE2
            if (scan_bulk(s, buf, len, lim, err) != 0)
                return -1;
            i = s->line_start;
            if (i >= len)
                break;
#endif
            /* Most lines: valid header lines, checked and delimited at once. */
            size_t n = simple_header_line(buf + i, len - i);
            size_t e = i + n - 1; /* the LF */
            if (n > 0 && n - 2 <= lim->line_bytes && e - 1 <= lim->head_bytes) {
                s->nlines++;
                if (s->nlines - 1 > lim->header_count) {
                    s->off = e;
                    return fail(err, 431, "too many header fields");
                }
                s->line_start = e + 1;
                i = e + 1;
                continue;
            }
        }
        const char *lf = memchr(buf + i, '\n', len - i);
        if (lf == NULL) {
            /* An incomplete line: check what arrived, then wait. */
            if (check_bytes(s, buf, i, len, lim, err) != 0)
                return -1;
            /* A CR last is looked at again with the byte after it. */
            s->off = buf[len - 1] == '\r' ? len - 1 : len;
            return 0;
        }
        size_t e = (size_t)(lf - buf);
        if (e == s->line_start || buf[e - 1] != '\r') {
            if (check_bytes(s, buf, i, e, lim, err) != 0)
                return -1;
            s->off = e;
            return fail(err, 400, "bare LF in request head");
        }
        const char *line = buf + s->line_start;
        size_t linelen = e - 1 - s->line_start;
        size_t line_lim = s->nlines == 0 ? (size_t)lim->target_bytes + REQUEST_LINE_SLACK
                                         : (size_t)lim->line_bytes;
        /* Within the limits, a line that passes its content check holds no
         * CR (a CTL everywhere): the byte-order checks are only needed when
         * something is wrong. */
        int within = linelen <= line_lim && e - 1 <= lim->head_bytes;
        if (!within && check_bytes(s, buf, i, e, lim, err) != 0)
            return -1;
        if (linelen == 0) {
            if (s->nlines == 0) {
                s->off = e;
                return fail(err, 400, "empty line before request line");
            }
            s->off = e + 1;
            return (int)(e + 1);
        }
        int rc = s->nlines == 0 ? check_request_line(line, linelen, lim, err)
                                : check_header_line(line, linelen, err);
        if (rc != 0) {
            if (within && check_bytes(s, buf, i, e, lim, err) != 0)
                return -1; /* an earlier bare CR */
            s->off = e;
            return rc;
        }
        s->nlines++;
        if (s->nlines - 1 > lim->header_count) {
            s->off = e;
            return fail(err, 431, "too many header fields");
        }
        s->line_start = e + 1;
        i = e + 1;
    }
    s->off = i;
    return 0;
}

static struct ap_slice trim_ows(const char *p, size_t len)
{
    while (len > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    return (struct ap_slice){p, len};
}

/* Calls `fn` for each element of a comma-separated list; empty elements make
 * it fail, as does a callback returning non-zero. */
static int each_list_element(struct ap_slice v, int (*fn)(struct ap_slice el, void *ctx), void *ctx)
{
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i < v.len && v.p[i] != ',')
            continue;
        struct ap_slice el = trim_ows(v.p + start, i - start);
        if (el.len == 0)
            return -1;
        int rc = fn(el, ctx);
        if (rc != 0)
            return rc;
        start = i + 1;
    }
    return 0;
}

static int is_token(struct ap_slice s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if (!tchar_table[(unsigned char)s.p[i]])
            return 0;
    return 1;
}

struct te_state {
    unsigned chunked_seen;
    unsigned other_seen;
    unsigned chunked_last;
    unsigned invalid;
};

static int te_element(struct ap_slice el, void *ctx)
{
    struct te_state *te = ctx;
    /* Transfer codings may carry parameters; chunked never does. */
    size_t n = 0;
    while (n < el.len && el.p[n] != ';')
        n++;
    struct ap_slice name = trim_ows(el.p, n);
    if (!is_token(name)) {
        te->invalid = 1;
        return -1;
    }
    if (ap_slice_eq_ci(name, "chunked")) {
        if (n != el.len || te->chunked_seen) {
            te->invalid = 1;
            return -1;
        }
        te->chunked_seen = 1;
        te->chunked_last = 1;
    } else {
        te->other_seen = 1;
        te->chunked_last = 0;
    }
    return 0;
}

struct conn_state {
    struct ap_slice names[32];
    unsigned nnames;
    unsigned close : 1;
    unsigned keep_alive : 1;
    unsigned overflow : 1;
};

static int conn_element(struct ap_slice el, void *ctx)
{
    struct conn_state *cs = ctx;
    if (!is_token(el))
        return -1;
    if (ap_slice_eq_ci(el, "close"))
        cs->close = 1;
    else if (ap_slice_eq_ci(el, "keep-alive"))
        cs->keep_alive = 1;
    else if (cs->nnames < AP_ARRAY_SIZE(cs->names))
        cs->names[cs->nnames++] = el;
    else
        cs->overflow = 1;
    return 0;
}

/* Strict Content-Length: 1 to 18 digits, nothing else. */
static int parse_content_length(struct ap_slice v, int64_t *out)
{
    if (v.len == 0 || v.len > 18)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (v.p[i] - '0');
    }
    *out = n;
    return 0;
}

static int is_regname_char(unsigned char c)
{
    /* unreserved / pct-encoded / sub-delims (RFC 3986), no "@" (userinfo). */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return strchr("-._~%!$&'()*+,;=", c) != NULL && c != '\0';
}

/* authority = host [ ":" port ] with no userinfo. Empty is allowed (RFC 9112
 * 3.2: a client sends an empty Host when the target URI has no authority). */
static int valid_authority(struct ap_slice a)
{
    size_t i = 0;
    if (a.len == 0)
        return 1;
    if (a.p[0] == '[') {
        while (i < a.len && a.p[i] != ']') {
            unsigned char c = (unsigned char)a.p[i];
            if (i > 0 && !(isxdigit(c) || c == ':' || c == '.'))
                return 0;
            i++;
        }
        if (i == a.len || i < 3)
            return 0;
        i++;
    } else {
        while (i < a.len && a.p[i] != ':') {
            if (!is_regname_char((unsigned char)a.p[i]))
                return 0;
            i++;
        }
        if (i == 0)
            return 0;
    }
    if (i == a.len)
        return 1;
    if (a.p[i] != ':')
        return 0;
    i++;
    size_t digits = a.len - i;
    if (digits == 0 || digits > 5)
        return 0;
    unsigned port = 0;
    for (; i < a.len; i++) {
        if (a.p[i] < '0' || a.p[i] > '9')
            return 0;
        port = port * 10 + (unsigned)(a.p[i] - '0');
    }
    return port <= 65535;
}

static int prefix_ci(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len < n)
        return 0;
    return ap_slice_eq_ci((struct ap_slice){p, n}, lit);
}

/* True when a path segment, with %2e decoded, is "." or "..". Such a path
 * could match one route here and mean another path at the backend. */
static int has_dot_segment(struct ap_slice path)
{
    size_t i = 0;
    while (i < path.len) {
        if (path.p[i] != '/') {
            i++;
            continue;
        }
        size_t j = i + 1, dots = 0, other = 0;
        while (j < path.len && path.p[j] != '/') {
            if (path.p[j] == '.') {
                dots++;
                j++;
            } else if (path.p[j] == '%' && j + 2 < path.len + 0 && path.p[j + 1] == '2' &&
                       (path.p[j + 2] == 'e' || path.p[j + 2] == 'E')) {
                dots++;
                j += 3;
            } else {
                other++;
                j++;
            }
        }
        if (other == 0 && (dots == 1 || dots == 2))
            return 1;
        i = j;
    }
    return 0;
}

/* Headers the parser acts on. */
enum special {
    SPECIAL_NONE = 0,
    SPECIAL_HOST,
    SPECIAL_CONTENT_LENGTH,
    SPECIAL_TRANSFER_ENCODING,
    SPECIAL_CONNECTION,
    SPECIAL_EXPECT,
    SPECIAL_HOP_BY_HOP, /* the other hop-by-hop headers: dropped */
};

/* ASCII 'A'-'Z' to 'a'-'z' in every byte of w; other bytes unchanged. */
static uint64_t fold_word(uint64_t w)
{
    uint64_t low7 = w & ~HIGHS;
    uint64_t ge_a = low7 + ONES * (0x80 - 'A');
    uint64_t gt_z = low7 + ONES * (0x80 - 'Z' - 1);
    return w | ((ge_a & ~gt_z & ~w & HIGHS) >> 2);
}

/* Is p[0, n) the lower-case literal `lit` (n bytes, n >= 8) but for the
 * case of ASCII letters? Eight bytes at a time; the last word overlaps. */
static int eq_lower_long(const char *p, const char *lit, size_t n)
{
    size_t i = 0;
    for (; i + 8 < n; i += 8)
        if (fold_word(load64(p + i)) != load64(lit + i))
            return 0;
    return fold_word(load64(p + n - 8)) == load64(lit + n - 8);
}

/* The same for short names, byte by byte. */
static int eq_lower_short(const char *p, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* What `name` is to the parser. The length and first letter pick the one
 * candidate to compare, since every header of every request asks. */
static enum special special_header(struct ap_slice name)
{
    if (name.len == 0)
        return SPECIAL_NONE;
    const char *p = name.p;
    unsigned char c = lower((unsigned char)p[0]);
    switch (name.len) {
    case 2:
        return c == 't' && eq_lower_short(p, "te", 2) ? SPECIAL_HOP_BY_HOP : SPECIAL_NONE;
    case 4:
        return c == 'h' && eq_lower_short(p, "host", 4) ? SPECIAL_HOST : SPECIAL_NONE;
    case 6:
        return c == 'e' && eq_lower_short(p, "expect", 6) ? SPECIAL_EXPECT : SPECIAL_NONE;
    case 7:
        return (c == 't' && eq_lower_short(p, "trailer", 7)) ||
                       (c == 'u' && eq_lower_short(p, "upgrade", 7))
                   ? SPECIAL_HOP_BY_HOP
                   : SPECIAL_NONE;
    case 10:
        if (c == 'c' && eq_lower_long(p, "connection", 10))
            return SPECIAL_CONNECTION;
        return c == 'k' && eq_lower_long(p, "keep-alive", 10) ? SPECIAL_HOP_BY_HOP : SPECIAL_NONE;
    case 14:
        return c == 'c' && eq_lower_long(p, "content-length", 14) ? SPECIAL_CONTENT_LENGTH
                                                                  : SPECIAL_NONE;
    case 16:
        return c == 'p' && eq_lower_long(p, "proxy-connection", 16) ? SPECIAL_HOP_BY_HOP
                                                                    : SPECIAL_NONE;
    case 17:
        return c == 't' && eq_lower_long(p, "transfer-encoding", 17) ? SPECIAL_TRANSFER_ENCODING
                                                                     : SPECIAL_NONE;
    default:
        return SPECIAL_NONE;
    }
}

/* Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding
 * and Upgrade (RFC 9110 7.6.1, and Proxy-Connection, which some clients
 * still send). */
int ap_head_is_hop_by_hop(struct ap_slice name)
{
    enum special sp = special_header(name);
    return sp == SPECIAL_HOP_BY_HOP || sp == SPECIAL_CONNECTION || sp == SPECIAL_TRANSFER_ENCODING;
}

#if HEAD_SSE2
/* The parser's view of a window of header lines: CR, ':' and LF masks
 * (bit k is base[k]), built in one pass with no dependency between steps,
 * so that finding each line's end and colon is a few bit operations. */
#define PARSE_WIN_BYTES 2048
#define PARSE_WIN_WORDS (PARSE_WIN_BYTES / 64)

struct parse_win {
    const char *base;
    size_t n;  /* bytes covered */
    size_t nw; /* words in use */
    uint64_t cr[PARSE_WIN_WORDS + 1]; /* both with a sentinel at n */
    uint64_t colon[PARSE_WIN_WORDS + 1];
    size_t nlf; /* LFs in the window */
};

static void parse_win_build(struct parse_win *w, const char *p, size_t avail)
{
    size_t n = avail < PARSE_WIN_BYTES ? avail : PARSE_WIN_BYTES;
    const __m128i cr = _mm_set1_epi8('\r'), co = _mm_set1_epi8(':'), nl = _mm_set1_epi8('\n');
    /* LFs counted per byte lane (subtracting the 0 or -1 of each compare);
     * a window is at most 128 steps of 16 bytes, so no lane passes 255. */
    __m128i nlf = _mm_setzero_si128();
    w->base = p;
    w->n = n;
    w->nw = (n + 63) / 64;
    for (size_t k = 0; k < w->nw; k++) {
        __m128i v[4], a[4], b[4];
        load_block(p + k * 64, n - k * 64, v);
        for (int q = 0; q < 4; q++) {
            a[q] = _mm_cmpeq_epi8(v[q], cr);
            b[q] = _mm_cmpeq_epi8(v[q], co);
            nlf = _mm_sub_epi8(nlf, _mm_cmpeq_epi8(v[q], nl));
        }
        w->cr[k] = mask64(a[0], a[1], a[2], a[3]);
        w->colon[k] = mask64(b[0], b[1], b[2], b[3]);
    }
    set_sentinel(w->cr, n);
    set_sentinel(w->colon, n);
    __m128i sums = _mm_sad_epu8(nlf, _mm_setzero_si128());
    w->nlf = (size_t)_mm_cvtsi128_si64(sums) + (size_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums));
}

/* The first CR in [p, end) (NULL when none) and the first ':' before it
 * (NULL when none), what two memchr calls would give. The window moves to
 * p when p has left it or its end was reached without a CR; a line longer
 * than a window is searched with memchr. */
static void parse_find(struct parse_win *w, const char *p, const char *end, const char **e,
                       const char **colon)
{
    for (int built = 0;; built = 1) {
        /* p only moves forwards and the first window starts at the
         * first header line, so p - base is never negative. */
        size_t r = (size_t)(p - w->base);
        if (r < w->n) {
            size_t ce = next_bit(w->cr, r);
            if (ce < w->n) {
                size_t cc = next_bit(w->colon, r);
                *e = w->base + ce;
                *colon = cc < ce ? w->base + cc : NULL;
                return;
            }
            if (w->base + w->n == end) {
                *e = NULL;
                *colon = NULL;
                return;
            }
        }
        if (built || p == w->base)
            break;
        parse_win_build(w, p, (size_t)(end - p));
    }
    *e = memchr(p, '\r', (size_t)(end - p));
    *colon = *e != NULL ? memchr(p, ':', (size_t)(*e - p)) : NULL;
}

/* Number of LFs in p[0, n), 16 bytes per step: each step subtracts the
 * compare result (0 or -1 per byte) from byte counters, which are summed
 * (psadbw) before any of them can pass 255. */
static size_t count_lf(const char *p, size_t n)
{
    const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    size_t total = 0, i = 0;
    while (i + 16 <= n) {
        __m128i acc = zero;
        for (unsigned k = 0; k < 255 && i + 16 <= n; k++, i += 16)
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + i)), nl));
        __m128i sums = _mm_sad_epu8(acc, zero);
        total += (size_t)_mm_cvtsi128_si64(sums) + (size_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums));
    }
    for (; i < n; i++)
        total += p[i] == '\n';
    return total;
}
#endif

int ap_head_parse(const char *buf, size_t len, struct ap_request *req,
                  struct ap_arena *arena, struct ap_head_error *err)
{
    memset(req, 0, sizeof(*req));
    req->magic = AP_REQUEST_MAGIC;
    req->content_length = -1;
    err->status = 0;
    err->reason = NULL;

    /* Request line (already validated by ap_head_scan). */
    const char *eol = memchr(buf, '\r', len);
    if (eol == NULL)
        return fail(err, 400, "incomplete request head");
    const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    if (sp1 == NULL)
        return fail(err, 400, "invalid request line");
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (sp2 == NULL || eol - sp2 != 9)
        return fail(err, 400, "invalid request line");
    req->method = (struct ap_slice){buf, (size_t)(sp1 - buf)};
    req->target = (struct ap_slice){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    const char *ver = sp2 + 1;
    if (memcmp(ver, "HTTP/1.", 7) != 0)
        return fail(err, 505, "HTTP version not supported");
    if (ver[7] == '1')
        req->version_minor = 1;
    else if (ver[7] == '0')
        req->version_minor = 0;
    else
        return fail(err, 505, "HTTP version not supported");

    /* Count header lines (every LF after the request line) to size the
     * array once. */
    const char *p = eol + 2;
    const char *end = buf + len;
    size_t nlines = 0;
#if HEAD_SSE2
    struct parse_win w;
    if (p < end) {
        /* Most heads fit in one window, whose masks count the LFs too. */
        parse_win_build(&w, p, (size_t)(end - p));
        nlines = w.n == (size_t)(end - p) ? w.nlf : count_lf(p, (size_t)(end - p));
    }
#else
    for (const char *q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        nlines++;
#endif
    req->headers_cap = nlines + 8; /* room for headers the engine adds */
    req->headers = ap_arena_alloc(arena, req->headers_cap * sizeof(*req->headers));
    if (req->headers == NULL)
        return fail(err, 500, "out of memory");

    struct conn_state cs;
    /* Not memset: names[] is only read below nnames. */
    cs.nnames = 0;
    cs.close = cs.keep_alive = cs.overflow = 0;
    struct te_state te;
    memset(&te, 0, sizeof(te));
    unsigned nhost = 0, ncl = 0, nte = 0;

    while (p < end) {
        const char *e, *colon;
#if HEAD_SSE2
        parse_find(&w, p, end, &e, &colon);
#else
        e = memchr(p, '\r', (size_t)(end - p));
        colon = e != NULL ? memchr(p, ':', (size_t)(e - p)) : NULL;
#endif
        if (e == NULL || e == p)
            break; /* blank line: end of head */
        if (colon == NULL)
            return fail(err, 400, "header line without colon");
        struct ap_slice name = {p, (size_t)(colon - p)};
        struct ap_slice value = trim_ows(colon + 1, (size_t)(e - colon - 1));
        p = e + 2;

        enum special sp = special_header(name);
        if (sp == SPECIAL_NONE) {
            AP_BUG_ON(req->nheaders >= req->headers_cap);
            req->headers[req->nheaders++] = (struct ap_header){name, value, 0};
            continue;
        }
        if (sp == SPECIAL_HOST) {
            if (++nhost > 1)
                return fail(err, 400, "duplicate Host header");
            if (!valid_authority(value))
                return fail(err, 400, "invalid Host header");
            req->host = value;
            continue;
        }
        if (sp == SPECIAL_CONTENT_LENGTH) {
            int64_t cl;
            if (parse_content_length(value, &cl) != 0)
                return fail(err, 400, "invalid Content-Length");
            if (ncl++ > 0 && cl != req->content_length)
                return fail(err, 400, "conflicting Content-Length headers");
            req->content_length = cl;
            continue;
        }
        if (sp == SPECIAL_TRANSFER_ENCODING) {
            nte++;
            if (each_list_element(value, te_element, &te) != 0 || te.invalid)
                return fail(err, 400, "invalid Transfer-Encoding");
            continue;
        }
        if (sp == SPECIAL_CONNECTION) {
            if (each_list_element(value, conn_element, &cs) != 0)
                return fail(err, 400, "invalid Connection header");
            continue;
        }
        if (sp == SPECIAL_EXPECT) {
            if (!ap_slice_eq_ci(value, "100-continue"))
                return fail(err, 417, "unsupported expectation");
            req->expect_continue = req->version_minor == 1;
            continue;
        }
        /* SPECIAL_HOP_BY_HOP: never forwarded. */
    }
    if (cs.overflow)
        return fail(err, 400, "too many names in Connection header");

    /* Headers named by Connection are hop-by-hop: flagged, never forwarded. */
    for (unsigned k = 0; k < cs.nnames; k++)
        for (size_t h = 0; h < req->nheaders; h++)
            if (slices_eq_ci(req->headers[h].name, cs.names[k]))
                req->headers[h].flags |= AP_HEADER_CONNECTION_NAMED;

    if (ap_slice_eq_ci(req->method, "CONNECT"))
        return fail(err, 501, "CONNECT is not supported");
    if (req->version_minor == 1 && nhost == 0)
        return fail(err, 400, "missing Host header");
    if (nte > 0) {
        if (req->version_minor == 0)
            return fail(err, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (ncl > 0)
            return fail(err, 400, "both Transfer-Encoding and Content-Length");
        if (!te.chunked_last)
            return fail(err, 400, "Transfer-Encoding does not end with chunked");
        if (te.other_seen)
            return fail(err, 501, "unsupported transfer coding");
        req->chunked = 1;
    }

    /* Request target forms (RFC 9112 3.2). */
    struct ap_slice t = req->target;
    if (t.p[0] == '/') {
        req->path = t;
    } else if (t.len == 1 && t.p[0] == '*') {
        if (!ap_slice_eq_ci(req->method, "OPTIONS"))
            return fail(err, 400, "asterisk target outside OPTIONS");
        req->path = t;
    } else if (prefix_ci(t.p, t.len, "http://") || prefix_ci(t.p, t.len, "https://")) {
        size_t skip = t.p[4] == ':' ? 7 : 8;
        const char *a = t.p + skip;
        const char *tend = t.p + t.len;
        const char *ae = a;
        while (ae < tend && *ae != '/' && *ae != '?')
            ae++;
        struct ap_slice auth = {a, (size_t)(ae - a)};
        if (auth.len == 0 || memchr(auth.p, '@', auth.len) != NULL || !valid_authority(auth))
            return fail(err, 400, "invalid authority in absolute-form target");
        if (nhost == 0 || !slices_eq_ci(auth, req->host))
            return fail(err, 400, "absolute-form target does not match Host");
        if (ae == tend || *ae == '?')
            return fail(err, 400, "absolute-form target without path");
        req->path = (struct ap_slice){ae, (size_t)(tend - ae)};
    } else {
        return fail(err, 400, "invalid request target form");
    }
    const char *q = memchr(req->path.p, '?', req->path.len);
    if (q != NULL) {
        req->query = (struct ap_slice){q + 1, (size_t)(req->path.p + req->path.len - q - 1)};
        req->path.len = (size_t)(q - req->path.p);
    }

    if (has_dot_segment(req->path))
        return fail(err, 400, "dot-segment in request path");

    if (req->version_minor == 1)
        req->keep_alive = !cs.close;
    else
        req->keep_alive = cs.keep_alive && !cs.close;
    return 0;
}

int ap_head_serialize(const struct ap_request *r, struct ap_slice host, enum ap_head_framing framing,
                      uint64_t body_len, struct ap_buf *b)
{
    /* Origin-form target: for an absolute-form request, from the path on. */
    const char *tend = r->target.p + r->target.len;
    struct ap_slice target = {r->path.p, (size_t)(tend - r->path.p)};
    int rc = ap_buf_append(b, r->method.p, r->method.len);
    rc = rc ? rc : ap_buf_append(b, " ", 1);
    rc = rc ? rc : ap_buf_append(b, target.p, target.len);
    rc = rc ? rc : ap_buf_append(b, " HTTP/1.1\r\nHost: ", 17);
    rc = rc ? rc : ap_buf_append(b, host.p, host.len);
    rc = rc ? rc : ap_buf_append(b, "\r\n", 2);
    for (size_t i = 0; i < r->nheaders && rc == 0; i++) {
        const struct ap_header *h = &r->headers[i];
        if (h->flags & (AP_HEADER_CONNECTION_NAMED | AP_HEADER_DROPPED))
            continue;
        rc = ap_buf_append(b, h->name.p, h->name.len);
        rc = rc ? rc : ap_buf_append(b, ": ", 2);
        rc = rc ? rc : ap_buf_append(b, h->value.p, h->value.len);
        rc = rc ? rc : ap_buf_append(b, "\r\n", 2);
    }
    if (rc == 0 && framing == AP_FRAME_LENGTH)
        rc = ap_buf_appendf(b, "Content-Length: %" PRIu64 "\r\n", body_len);
    else if (rc == 0 && framing == AP_FRAME_CHUNKED)
        rc = ap_buf_append(b, "Transfer-Encoding: chunked\r\n", 28);
    rc = rc ? rc : ap_buf_append(b, "\r\n", 2);
    return rc;
}

int ap_request_add_header(struct ap_request *req, struct ap_arena *arena, const char *name,
                          size_t name_len, const char *value, size_t value_len)
{
    if (req->nheaders == req->headers_cap) {
        size_t nc = req->headers_cap * 2 + 8;
        struct ap_header *nh = ap_arena_alloc(arena, nc * sizeof(*nh));
        if (nh == NULL)
            return -12; /* -ENOMEM */
        if (req->nheaders > 0)
            memcpy(nh, req->headers, req->nheaders * sizeof(*nh));
        req->headers = nh;
        req->headers_cap = nc;
    }
    char *n = ap_arena_strndup(arena, name, name_len);
    char *v = ap_arena_strndup(arena, value, value_len);
    if (n == NULL || v == NULL)
        return -12;
    req->headers[req->nheaders++] = (struct ap_header){{n, name_len}, {v, value_len}, 0};
    return 0;
}

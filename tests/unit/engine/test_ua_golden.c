/* Golden test of proxy/engine/ua.c: the reduction of every input of a fixed
 * set must stay byte-identical to what the implementation of commit 10bb2bc
 * produced, so that the reducer can be rewritten for speed without changing
 * a single output. The inputs are:
 *   C: the real User-Agents of tests/fetch-test-data.sh (the same strings
 *      test_ua_corpus.c loads, in the same order), recorded by a SHA-256
 *      prefix only because that data is never committed;
 *   I: inline inputs written out in the fixture: the string literals of
 *      test_ua.c, the fuzz corpus of tests/fuzz/corpus/ua, every prefix and
 *      many one-byte mutations of some real User-Agents, token soup, garbage
 *      bytes, very long strings;
 *   F: ap_ua_format over every (family, platform, device) with edge majors.
 * Each record holds the output string and every field of ap_ua_classify.
 *
 * Usage:
 *   test_ua_golden FIXTURE UA_JSON CRAWLER_JSON RANDOM_JSON        (check)
 *   test_ua_golden --write FIXTURE UA_JSON CRAWLER_JSON RANDOM_JSON SRCDIR
 * where SRCDIR is the source root (for test_ua.c and the fuzz corpus). The
 * fixture is gzip-compressed text (tests/fixtures/ua/golden.txt.gz). Write
 * it again only when an output change is intended, and say so in the commit. */
#include "anonproxy/common.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>
#include <openssl/sha.h>
#include <zlib.h>

#include "anonproxy/ua.h"
#include "ua_corpus.h"

/* ---- Corpus loading: ua_corpus.c, shared with test_ua_corpus.c. ---- */

/* ---- Records. ---- */

/* The output and every classification field, tab-separated; the output
 * never holds a tab (it is built from templates and table names). */
static void record(const char *in, size_t len, char *rec, size_t cap)
{
    char out[AP_UA_REDUCED_MAX];
    size_t n = 0;
    int rc = ap_ua_reduce(in, len, out, sizeof(out), &n);
    struct ap_ua_info info;
    memset(&info, 0xa5, sizeof(info));
    ap_ua_classify(in, len, &info);
    snprintf(rec, cap, "%d\t%s\t%d %d %d %u %u %u %u %s", rc, out, (int)info.family,
             (int)info.platform, (int)info.device, info.major, info.minor, info.nversion,
             info.engine_major, info.name ? info.name : "-");
}

static void format_record(const struct ap_ua_info *info, char *rec, size_t cap)
{
    char out[AP_UA_REDUCED_MAX];
    size_t n = 0;
    int rc = ap_ua_format(info, out, sizeof(out), &n);
    snprintf(rec, cap, "%d\t%zu\t%s", rc, n, out);
}

/* Escape arbitrary bytes into one printable line without tabs; `cap` must
 * be at least 4 * n + 1. */
static void escape(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    AP_BUG_ON(cap < 4 * n + 1);
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static size_t unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] != '\\') {
            out[o++] = s[k];
        } else if (s[k + 1] == '\\') {
            out[o++] = '\\';
            k++;
        } else {
            char hex[3] = {s[k + 2], s[k + 3], 0};
            out[o++] = (char)strtoul(hex, NULL, 16);
            k += 3;
        }
    }
    return o;
}

/* The first 64 bits of the SHA-256 of an input, in hex: enough to notice
 * that the test data changed, and a quarter of the fixture's size. */
#define ID_HEX 16

static void input_id(const char *s, size_t n, char hex[ID_HEX + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, n, md);
    for (int k = 0; k < ID_HEX / 2; k++)
        snprintf(hex + 2 * k, 3, "%02x", md[k]);
}

/* The ap_ua_format sweep: families, platforms and devices one past their
 * range, majors at and past their limits, bots and tools with each count of
 * version components. Calls `fn` with a label and the info. */
static void format_sweep(void (*fn)(void *, const char *, const struct ap_ua_info *), void *arg)
{
    static const unsigned majors[] = {0, 1, 7, 99, 131, 999, 1000, 4294967295u};
    char label[128];
    for (int f = 0; f <= AP_UA_NFAMILIES; f++)
        for (int p = 0; p <= AP_UA_NPLATFORMS; p++)
            for (int d = 0; d <= AP_UA_NDEVICES; d++)
                for (size_t m = 0; m < AP_ARRAY_SIZE(majors); m++)
                    for (size_t e = 0; e < AP_ARRAY_SIZE(majors); e += 2) {
                        struct ap_ua_info info;
                        memset(&info, 0, sizeof(info));
                        info.family = (enum ap_ua_family)f;
                        info.platform = (enum ap_ua_platform)p;
                        info.device = (enum ap_ua_device)d;
                        info.major = majors[m];
                        info.engine_major = majors[e == 0 ? 0 : e - 1];
                        snprintf(label, sizeof(label), "%d/%d/%d/%u/%u", f, p, d, info.major,
                                 info.engine_major);
                        fn(arg, label, &info);
                    }
    static const char *const names[] = {NULL, "Googlebot", "curl", "Screaming Frog SEO Spider"};
    for (int f = AP_UA_BOT; f <= AP_UA_TOOL; f++)
        for (size_t k = 0; k < AP_ARRAY_SIZE(names); k++)
            for (unsigned nv = 0; nv <= 3; nv++)
                for (size_t m = 0; m < AP_ARRAY_SIZE(majors); m++) {
                    struct ap_ua_info info;
                    memset(&info, 0, sizeof(info));
                    info.family = (enum ap_ua_family)f;
                    info.name = names[k];
                    info.nversion = nv;
                    info.major = majors[m];
                    info.minor = majors[AP_ARRAY_SIZE(majors) - 1 - m];
                    snprintf(label, sizeof(label), "%d/%s/%u/%u/%u", f, names[k] ? names[k] : "-",
                             nv, info.major, info.minor);
                    fn(arg, label, &info);
                }
}

/* ---- Writing the fixture (the generator). ---- */

/* Adds the string literals of a C file (adjacent literals joined, escapes
 * decoded) to `c`. Comments and character constants are skipped. */
static void add_c_literals(struct ua_corpus *c, const char *path)
{
    size_t len;
    char *src = ua_corpus_read_file(path, &len);
    AP_BUG_ON(src == NULL);
    static char buf[1 << 16];
    size_t o = 0;
    bool open = false; /* a literal run is being joined */
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '/' && src[i + 1] == '*') {
            const char *e = strstr(src + i + 2, "*/");
            i = e ? (size_t)(e - src) + 1 : len;
            continue;
        }
        if (ch == '/' && src[i + 1] == '/') {
            while (i < len && src[i] != '\n')
                i++;
            continue;
        }
        if (ch == '\'') {
            i++;
            while (i < len && src[i] != '\'')
                i += src[i] == '\\' ? 2 : 1;
            continue;
        }
        if (ch == '"') {
            open = true;
            for (i++; i < len && src[i] != '"'; i++) {
                if (src[i] != '\\') {
                    buf[o++] = src[i];
                    continue;
                }
                i++;
                switch (src[i]) {
                case 'n': buf[o++] = '\n'; break;
                case 't': buf[o++] = '\t'; break;
                case 'r': buf[o++] = '\r'; break;
                case '0': buf[o++] = '\0'; break;
                case 'x': {
                    unsigned v = 0;
                    while (i + 1 < len && strchr("0123456789abcdefABCDEF", src[i + 1]) != NULL) {
                        i++;
                        v = v * 16 + (unsigned)(src[i] <= '9' ? src[i] - '0' : (src[i] | 32) - 'a' + 10);
                    }
                    buf[o++] = (char)v;
                    break;
                }
                default: buf[o++] = src[i]; break;
                }
            }
            continue;
        }
        if (ch == ' ' || ch == '\n' || ch == '\t')
            continue;
        if (open) {
            AP_BUG_ON(ua_corpus_append(c, buf, o) < 0);
            open = false;
            o = 0;
        }
    }
    free(src);
}

static void add_dir_files(struct ua_corpus *c, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    AP_BUG_ON(n < 0);
    for (int k = 0; k < n; k++) {
        if (names[k]->d_name[0] != '.') {
            char path[4096 + 512];
            snprintf(path, sizeof(path), "%.4000s/%s", dir, names[k]->d_name);
            size_t len;
            char *data = ua_corpus_read_file(path, &len);
            AP_BUG_ON(data == NULL);
            AP_BUG_ON(ua_corpus_append(c, data, len) < 0);
            free(data);
        }
        free(names[k]);
    }
    free(names);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(rng_state >> 33);
}

/* The synthetic inputs: edge cases the real data does not hold. */
static void add_synthetic(struct ua_corpus *c)
{
    static const char *const real[] = {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.6422.165 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0 (Edition std-1)",
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.0.2903.56 Mobile/15E148 Safari/605.1.15",
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
        "Mozilla/5.0 (X11; CrOS aarch64 15633.69.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.212 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36 EdgA/131.0.2903.51",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.1 Mobile/15E148 Safari/605.1.15",
        "Mozilla/5.0 (Windows; Windows NT 10.0; rv:115.0) Gecko/20100101 Firefox/115.0",
        "Mozilla/5.0 (Linux; Android 14; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Screaming Frog SEO Spider/20.1",
        "python-requests/2.31.0",
        "curl/8.4.0",
    };
    static const char mut[] = " ()/;.,0x9\t-_Aa\x80";
    for (size_t r = 0; r < AP_ARRAY_SIZE(real); r++) {
        size_t n = strlen(real[r]);
        /* Every prefix and every suffix. */
        for (size_t k = 0; k <= n; k++) {
            AP_BUG_ON(ua_corpus_append(c, real[r], k) < 0);
            AP_BUG_ON(ua_corpus_append(c, real[r] + k, n - k) < 0);
        }
        /* One byte replaced, one byte deleted, one byte doubled. */
        char buf[512];
        for (size_t k = 0; k < n; k++) {
            for (size_t m = 0; m < sizeof(mut) - 1; m++) {
                if (r >= 8 && m % 3 != k % 3)
                    continue; /* fewer for the later strings */
                memcpy(buf, real[r], n);
                buf[k] = mut[m];
                AP_BUG_ON(ua_corpus_append(c, buf, n) < 0);
            }
            memcpy(buf, real[r], k);
            memcpy(buf + k, real[r] + k + 1, n - k - 1);
            AP_BUG_ON(ua_corpus_append(c, buf, n - 1) < 0);
            memcpy(buf, real[r], k + 1);
            memcpy(buf + k + 1, real[r] + k, n - k);
            AP_BUG_ON(ua_corpus_append(c, buf, n + 1) < 0);
            /* Upper and lower case of one byte. */
            memcpy(buf, real[r], n);
            buf[k] = (char)(buf[k] ^ 0x20);
            AP_BUG_ON(ua_corpus_append(c, buf, n) < 0);
        }
    }

    /* Token soup: random sequences of the words the parser knows. */
    static const char *const words[] = {
        "Mozilla/5.0 (", "Mozilla/5.0", "(", ")", " ", "; ", ";", "Windows NT 10.0", "Windows",
        "Win64; x64", "Macintosh", "Intel Mac OS X 10_15_7", "iPhone", "iPod", "iPod touch", "iPad",
        "CPU OS 17_0 like Mac OS X", "X11", "CrOS x86_64 1.2.3", "CrOS", "Linux", "Android 14",
        "Android", "Mobile", "Tablet", "wv", "rv:133.0", "K", "AppleWebKit/537.36",
        "(KHTML, like Gecko)", "KHTML, like Gecko", "Gecko/20100101", "Gecko", "Safari/537.36",
        "Safari", "Version/17.0", "Version/4.0", "Chrome/131.0.0.0", "Chrome/", "Chrome/0",
        "Chrome/999", "Chrome/1000", "Chrome/12a", "Chrome", "CriOS/131.0", "Firefox/133.0",
        "Firefox", "FxiOS/133.1", "Edg/131.0", "EdgA/131.0", "EdgiOS/131.0", "OPR/115.0",
        "(Edition std-1)", "(Edition", "SamsungBrowser/27.0", "Mobile/15E148", "YaBrowser/24.1",
        "Googlebot/2.1", "googlebot", "bingbot/2.0.1", "Slurp", "curl/8.4.0", "Wget", "node",
        "node-fetch/1.0", "Python/3.11", "1.2", "/", ".", "9999", "12345", "-", "_", "\t", "\xc3\xa9",
        "compatible", "+http://example.com/bot", "Sogou web spider/4.0", "Yeti/1.1", "DuckDuckBot-Https/1.1",
    };
    char buf[2048];
    for (int k = 0; k < 4000; k++) {
        size_t o = 0;
        int nw = (int)(rnd() % 14);
        if (k % 2 == 0) {
            memcpy(buf, "Mozilla/5.0 (", 13);
            o = 13;
        }
        for (int w = 0; w < nw; w++) {
            const char *s = words[rnd() % AP_ARRAY_SIZE(words)];
            size_t n = strlen(s);
            if (o + n + 1 >= sizeof(buf))
                break;
            memcpy(buf + o, s, n);
            o += n;
            if (rnd() % 3 == 0)
                buf[o++] = ' ';
        }
        AP_BUG_ON(ua_corpus_append(c, buf, o) < 0);
    }

    /* Garbage bytes: the whole byte range, and a User-Agent alphabet. */
    static const char alpha[] = "Mozilla/5.0 ();,.-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int k = 0; k < 400; k++) {
        size_t n = rnd() % 300;
        for (size_t i = 0; i < n; i++)
            buf[i] = k % 2 ? (char)(rnd() & 0xff) : alpha[rnd() % (sizeof(alpha) - 1)];
        AP_BUG_ON(ua_corpus_append(c, buf, n) < 0);
    }

    /* Short strings: every string of one byte, and of two from a small set. */
    for (int b = 0; b < 256; b++) {
        char ch = (char)b;
        AP_BUG_ON(ua_corpus_append(c, &ch, 1) < 0);
    }
    static const char few[] = " \t()/;.0aAyY";
    for (size_t a = 0; a < sizeof(few) - 1; a++)
        for (size_t b = 0; b < sizeof(few) - 1; b++) {
            char two[2] = {few[a], few[b]};
            AP_BUG_ON(ua_corpus_append(c, two, 2) < 0);
        }

    /* Versions at the edges, for browsers, bots and tools. */
    static const char *const vers[] = {"", "0", "1", "9", "01", "099", "999", "1000", "0131",
                                       "131", "131.", "131.0", "131a", "131-1", "131_1", "131 x",
                                       "1.2.3", "1.", ".1", "1234", "12345", "1234.5678", "1234.56789",
                                       "1.23456", "2.1a", "2.1-beta", "\xff"};
    static const char *const fmt[] = {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%s Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/%s",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:1.0) Gecko/20100101 Firefox/%s",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/%s Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%s Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/%s; +http://www.google.com/bot.html)",
        "Googlebot/%s",
        "curl/%s",
        "Wget/%s extra",
    };
    for (size_t f = 0; f < AP_ARRAY_SIZE(fmt); f++)
        for (size_t v = 0; v < AP_ARRAY_SIZE(vers); v++) {
            int n = snprintf(buf, sizeof(buf), fmt[f], vers[v]);
            AP_BUG_ON(ua_corpus_append(c, buf, (size_t)n) < 0);
        }

    /* Very long strings. */
    size_t big = 1 << 16;
    char *p = malloc(big + 512);
    AP_BUG_ON(p == NULL);
    memset(p, 'A', big);
    AP_BUG_ON(ua_corpus_append(c, p, big) < 0);
    memset(p, '(', big);
    AP_BUG_ON(ua_corpus_append(c, p, big) < 0);
    memset(p, ' ', big);
    AP_BUG_ON(ua_corpus_append(c, p, big) < 0);
    memcpy(p + big, "Googlebot/2.1", 13);
    AP_BUG_ON(ua_corpus_append(c, p, big + 13) < 0);
    const char *head = "Mozilla/5.0 (Linux; Android 14; ";
    const char *tail = ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    memcpy(p, head, strlen(head));
    memset(p + strlen(head), ';', 5000);
    memcpy(p + strlen(head) + 5000, tail, strlen(tail));
    AP_BUG_ON(ua_corpus_append(c, p, strlen(head) + 5000 + strlen(tail)) < 0);
    memset(p + strlen(head), 'x', 5000);
    AP_BUG_ON(ua_corpus_append(c, p, strlen(head) + 5000 + strlen(tail)) < 0);
    for (int k = 0; k < 30; k++) /* a platform comment of k parts */
        p[strlen(head) + 10 * k] = ';';
    AP_BUG_ON(ua_corpus_append(c, p, strlen(head) + 5000 + strlen(tail)) < 0);
    memset(p, 'x', big);
    memcpy(p + 3000, " Googlebot/2.1", 14);
    AP_BUG_ON(ua_corpus_append(c, p, big) < 0);
    free(p);
}

struct writer {
    gzFile gz;
};

static void write_format(void *arg, const char *label, const struct ap_ua_info *info)
{
    struct writer *w = arg;
    char rec[512];
    format_record(info, rec, sizeof(rec));
    gzprintf(w->gz, "F %s\t%s\n", label, rec);
}

static int write_fixture(const char *out, char *const paths[3], const char *srcdir)
{
    struct ua_corpus real = {0}, in = {0};
    const char *missing = ua_corpus_load(&real, paths);
    if (missing != NULL) {
        fprintf(stderr, "cannot read %s\n", missing);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/unit/engine/test_ua.c", srcdir);
    add_c_literals(&in, path);
    snprintf(path, sizeof(path), "%s/tests/unit/engine/test_ua_corpus.c", srcdir);
    add_c_literals(&in, path);
    snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/ua", srcdir);
    add_dir_files(&in, path);
    add_synthetic(&in);

    gzFile gz = gzopen(out, "wb9");
    if (gz == NULL) {
        fprintf(stderr, "cannot write %s\n", out);
        return 1;
    }
    /* Line sizes: 4 bytes per input byte at worst. */
    size_t esc_cap = 4 * (1 << 17) + 16;
    char *esc = malloc(esc_cap);
    AP_BUG_ON(esc == NULL);
    char rec[512], hex[ID_HEX + 1];
    gzprintf(gz, "# Golden outputs of ap_ua_reduce: tests/unit/engine/test_ua_golden.c\n");
    gzprintf(gz, "N %zu\n", real.count);
    const char *p = real.data;
    for (size_t k = 0; k < real.count; k++) {
        record(p, real.lens[k], rec, sizeof(rec));
        input_id(p, real.lens[k], hex);
        gzprintf(gz, "C %s\t%s\n", hex, rec);
        p += real.lens[k] + 1;
    }
    p = in.data;
    for (size_t k = 0; k < in.count; k++) {
        record(p, in.lens[k], rec, sizeof(rec));
        escape(p, in.lens[k], esc, esc_cap);
        gzputs(gz, "I ");
        gzputs(gz, esc);
        gzprintf(gz, "\t%s\n", rec);
        p += in.lens[k] + 1;
    }
    struct writer w = {gz};
    format_sweep(write_format, &w);
    int rc = gzclose(gz) == Z_OK ? 0 : 1;
    printf("wrote %s: %zu corpus, %zu inline inputs\n", out, real.count, in.count);
    free(esc);
    ua_corpus_free(&real);
    ua_corpus_free(&in);
    return rc;
}

/* ---- Checking (the test). ---- */

static char *fixture_path;
static char *json_paths[3];

struct checker {
    gzFile gz;
    char *line;
    size_t cap;
    size_t lineno;
    size_t bad;
    bool unread; /* next_line returns the current line again */
};

/* The next line without its newline, or NULL at the end. Lines may be long
 * (an escaped 64 KiB input), so they are read in pieces. */
static char *next_line(struct checker *ck)
{
    if (ck->unread) {
        ck->unread = false;
        return ck->line;
    }
    size_t n = 0;
    for (;;) {
        if (gzgets(ck->gz, ck->line + n, (int)(ck->cap - n)) == NULL)
            return n ? ck->line : NULL;
        n += strlen(ck->line + n);
        if (n > 0 && ck->line[n - 1] == '\n') {
            ck->line[n - 1] = '\0';
            ck->lineno++;
            return ck->line;
        }
        if (n + 1 < ck->cap)
            continue; /* end of file without a newline */
        char *nl = realloc(ck->line, ck->cap * 2);
        AP_BUG_ON(nl == NULL);
        ck->line = nl;
        ck->cap *= 2;
    }
}

static void mismatch(struct checker *ck, const char *what, const char *want, const char *got)
{
    if (ck->bad++ < 20)
        print_error("line %zu: %s\n   want: %s\n    got: %s\n", ck->lineno, what, want, got);
}

/* The ap_ua_reduce contract on a short buffer, checked for every input:
 * exactly the needed size works, one byte less gives -ENOBUFS and "". */
static void check_small_buffers(const char *in, size_t len)
{
    char full[AP_UA_REDUCED_MAX], out[AP_UA_REDUCED_MAX];
    size_t n, m = 99;
    assert_int_equal(ap_ua_reduce(in, len, full, sizeof(full), &n), 0);
    memset(out, 'Z', sizeof(out));
    assert_int_equal(ap_ua_reduce(in, len, out, n, &m), -ENOBUFS);
    assert_int_equal(m, 0);
    if (n > 0)
        assert_int_equal(out[0], '\0');
    assert_int_equal(out[n], 'Z');
    assert_int_equal(ap_ua_reduce(in, len, out, n + 1, &m), 0);
    assert_int_equal(m, n);
    assert_memory_equal(out, full, n + 1);
}

static void check_format(void *arg, const char *label, const struct ap_ua_info *info)
{
    struct checker *ck = arg;
    char rec[512], want[1024];
    format_record(info, rec, sizeof(rec));
    const char *line = next_line(ck);
    if (line == NULL || line[0] != 'F') {
        mismatch(ck, "fixture ends before the format sweep", "F ...", line ? line : "(end)");
        return;
    }
    snprintf(want, sizeof(want), "F %s\t%s", label, rec);
    if (strcmp(line, want) != 0)
        mismatch(ck, "ap_ua_format", line, want);
}

static void test_golden(void **state)
{
    (void)state;
    struct ua_corpus real = {0};
    const char *missing = ua_corpus_load(&real, json_paths);
    if (missing != NULL)
        fail_msg("test data missing: %s\n"
                 "Run tests/fetch-test-data.sh (it installs the pinned npm packages into "
                 "var/testdata/).",
                 missing);
    struct checker ck = {0};
    ck.gz = gzopen(fixture_path, "rb");
    if (ck.gz == NULL)
        fail_msg("cannot open %s", fixture_path);
    ck.cap = 1 << 16;
    ck.line = malloc(ck.cap);
    size_t inbuf_cap = 1 << 18;
    char *inbuf = malloc(inbuf_cap);
    assert_non_null(ck.line);
    assert_non_null(inbuf);

    const char *line = next_line(&ck);
    while (line != NULL && line[0] == '#')
        line = next_line(&ck);
    size_t count = 0;
    assert_non_null(line);
    assert_int_equal(sscanf(line, "N %zu", &count), 1);
    if (count != real.count)
        fail_msg("the corpus has %zu strings, the fixture %zu: the test data changed", real.count,
                 count);

    char rec[512], hex[ID_HEX + 1];
    const char *p = real.data;
    for (size_t k = 0; k < real.count; k++) {
        line = next_line(&ck);
        assert_non_null(line);
        assert_true(line[0] == 'C' && line[1] == ' ');
        input_id(p, real.lens[k], hex);
        if (strncmp(line + 2, hex, ID_HEX) != 0 || line[2 + ID_HEX] != '\t')
            fail_msg("line %zu: corpus string %zu is not the one recorded: the test data changed",
                     ck.lineno, k);
        record(p, real.lens[k], rec, sizeof(rec));
        if (strcmp(line + 3 + ID_HEX, rec) != 0)
            mismatch(&ck, p, line + 3 + ID_HEX, rec);
        check_small_buffers(p, real.lens[k]);
        p += real.lens[k] + 1;
    }

    size_t ninline = 0;
    while ((line = next_line(&ck)) != NULL && line[0] == 'I') {
        const char *tab = strchr(line, '\t');
        assert_non_null(tab);
        size_t elen = (size_t)(tab - line - 2);
        if (elen + 1 > inbuf_cap) {
            inbuf_cap = elen + 1;
            char *nb = realloc(inbuf, inbuf_cap);
            assert_non_null(nb);
            inbuf = nb;
        }
        size_t n = unescape(line + 2, elen, inbuf);
        record(inbuf, n, rec, sizeof(rec));
        if (strcmp(tab + 1, rec) != 0) {
            char what[256];
            snprintf(what, sizeof(what), "input %.200s", line + 2);
            mismatch(&ck, what, tab + 1, rec);
        }
        check_small_buffers(inbuf, n);
        ninline++;
    }
    assert_true(ninline > 1000);
    /* The first F line was read by the loop above: read it again. */
    assert_non_null(line);
    assert_int_equal(line[0], 'F');
    ck.unread = true;
    format_sweep(check_format, &ck);
    if (next_line(&ck) != NULL)
        mismatch(&ck, "fixture has more lines than the sweep", "(end)", ck.line);

    gzclose(ck.gz);
    free(ck.line);
    free(inbuf);
    printf("golden: %zu corpus strings, %zu inline inputs, %zu mismatches\n", real.count,
           ninline, ck.bad);
    ua_corpus_free(&real);
    if (ck.bad > 0)
        fail_msg("%zu outputs differ from %s", ck.bad, fixture_path);
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "--write") == 0)
        return write_fixture(argv[2], argv + 3, argv[6]);
    if (argc != 5) {
        fprintf(stderr, "usage: %s FIXTURE UA_JSON CRAWLER_JSON RANDOM_JSON\n"
                        "       %s --write FIXTURE UA_JSON CRAWLER_JSON RANDOM_JSON SRCDIR\n",
                argv[0], argv[0]);
        return 2;
    }
    fixture_path = argv[1];
    for (int k = 0; k < 3; k++)
        json_paths[k] = argv[k + 2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

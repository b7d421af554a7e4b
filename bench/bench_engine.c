/* Micro-benchmark of the request path's pure code on a typical analytics
 * request (20 headers, 15 query parameters, cookies): the strict head scan
 * and parse, then the engine with the strict profile and route rules.
 * Prints ns per request and heap allocations per request after warm-up.
 * Goal (issue 3): under 2 us and zero allocations per request.
 *
 *   meson test -C build --benchmark engine --verbose
 */
#include "anonproxy/common.h"

#include <dlfcn.h>
#include <time.h>

#include "anonproxy/arena.h"
#include "anonproxy/clientaddr.h"
#include "anonproxy/head.h"
#include "anonproxy/ip.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"

/* Count heap allocations: glibc's own entry points do the work. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static unsigned long allocs;

void *malloc(size_t n)
{
    allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    allocs++;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    allocs++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

static const char request[] =
    "POST /matomo.php?idsite=3&rec=1&action_name=Checkout&url=https%3A%2F%2Fshop.example%2Fcart%3Fstep%3D2%26utm_source%3Dnews%26gclid%3Dabc"
    "&urlref=https%3A%2F%2Fsearch.example%2Fq%3Dshoes&_id=6f1e2d3c4b5a6978&uid=user-4711&cid=9a8b7c6d"
    "&res=1920x1080&h=14&m=2&s=33&gclid=Cj0KCQjw&fbclid=IwAR2x&cip=198.51.100.23&lang=de HTTP/1.1\r\n"
    "Host: shop.example\r\n"
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36\r\n"
    "Accept: */*\r\n"
    "Accept-Language: de-CH,de;q=0.9,en;q=0.8\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n"
    "Content-Length: 0\r\n"
    "Origin: https://shop.example\r\n"
    "Referer: https://shop.example/cart?step=2&session=abc\r\n"
    "Cookie: _pk_id.3.1fff=6f1e2d3c4b5a6978.1700000000.; _pk_ses.3.1fff=1; _ga=GA1.2.123.456; consent=analytics\r\n"
    "Sec-CH-UA: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n"
    "Sec-CH-UA-Mobile: ?0\r\n"
    "Sec-CH-UA-Platform: \"Windows\"\r\n"
    "Sec-CH-UA-Platform-Version: \"15.0.0\"\r\n"
    "Sec-CH-UA-Full-Version-List: \"Chromium\";v=\"131.0.6778.86\"\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "DNT: 1\r\n"
    "X-Forwarded-For: 203.0.113.9, 10.0.0.2\r\n"
    "X-Device-Id: 0b7c1e2f-7d4a-4c51-9d0e-2b8f6a1c3e5d\r\n"
    "\r\n";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* `n` requests: head scan and parse, then the engine when `engine`. */
static int run_batch(const struct ap_head_limits *lim, struct ap_arena *arena, const struct ap_policy *pol,
                     struct ap_engine_ctx *ctx, const struct ap_ip *peer, unsigned long n, bool engine)
{
    for (unsigned long i = 0; i < n; i++) {
        ap_arena_reset(arena);
        struct ap_head_scan scan;
        struct ap_head_error err;
        struct ap_request req;
        struct ap_engine_result res;
        memset(&scan, 0, sizeof(scan));
        int hl = ap_head_scan(&scan, request, sizeof(request) - 1, lim, &err);
        if (hl <= 0 || ap_head_parse(request, (size_t)hl, &req, arena, &err) != 0) {
            fprintf(stderr, "parse failed: %s\n", hl < 0 ? err.reason : "incomplete");
            return -1;
        }
        if (engine && ap_engine_rewrite(pol, ctx, peer, &req, &res) != 0) {
            fprintf(stderr, "engine failed\n");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    struct ap_cidr_list trusted;
    struct ap_cidr c;
    ap_cidr_list_init(&trusted);
    ap_cidr_parse(&c, "10.0.0.0/8", 10);
    ap_cidr_list_add(&trusted, &c);
    struct ap_clientaddr_config ca;
    ap_clientaddr_config_init(&ca, &trusted);

    struct ap_policy pol;
    if (ap_policy_init(&pol, "matomo", AP_PROFILE_STRICT) != 0 ||
        ap_policy_add_cookie_rule(&pol, "_pk_id*", AP_COOKIE_PSEUDO) != 0 ||
        ap_policy_add_header_rule(&pol, "X-Device-Id", AP_HDR_PSEUDO, NULL) != 0 ||
        ap_policy_finish(&pol) != 0) {
        fprintf(stderr, "policy setup failed\n");
        return 1;
    }
    pol.clientaddr = &ca;

    static const uint8_t secret[32] = "bench-secret-bench-secret-bench";
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    int64_t now = (int64_t)time(NULL);
    ap_pseudo_source_init_secret(&src, secret, sizeof(secret));
    ap_pseudo_keyring_init(&kr, &src);
    ap_pseudo_keyring_prepare(&kr, now);

    struct ap_ip peer;
    ap_ip_parse(&peer, "10.0.0.2", 8);
    const struct ap_head_limits lim = {8192, 32768, 100, 8192};
    struct ap_arena arena;
    ap_arena_init(&arena, 16384, 0);
    struct ap_engine_stats stats;
    memset(&stats, 0, sizeof(stats));
    struct ap_engine_ctx ctx = {.keyring = &kr, .now = now, .arena = &arena, .stats = &stats};

    /* Timing: a clock read costs about 20 ns, as much as a small rule, so
     * the clock is read once per batch, never per request. A batch of head
     * scan+parse alone and a batch of head scan+parse plus the engine
     * alternate; the engine's cost is their difference. Several rounds,
     * and the median of each is reported, so a burst of noise on this
     * shared machine moves one round, not the result. */
    enum { ROUNDS = 7 };
    double head_ns[ROUNDS], all_ns[ROUNDS];
    unsigned long head_allocs = 0, all_allocs = 0;
    unsigned long warm = iters / 10 + 100;
    if (run_batch(&lim, &arena, &pol, &ctx, &peer, warm, true) != 0)
        return 1;
    for (int round = 0; round < ROUNDS; round++) {
        unsigned long a0 = allocs;
        uint64_t t0 = now_ns();
        if (run_batch(&lim, &arena, &pol, &ctx, &peer, iters, false) != 0)
            return 1;
        uint64_t t1 = now_ns();
        unsigned long a1 = allocs;
        if (run_batch(&lim, &arena, &pol, &ctx, &peer, iters, true) != 0)
            return 1;
        uint64_t t2 = now_ns();
        head_allocs += a1 - a0;
        all_allocs += allocs - a1;
        head_ns[round] = (double)(t1 - t0) / (double)iters;
        all_ns[round] = (double)(t2 - t1) / (double)iters;
    }
    double eng_ns[ROUNDS];
    for (int round = 0; round < ROUNDS; round++)
        eng_ns[round] = all_ns[round] - head_ns[round];
    double p = median(head_ns, ROUNDS), e = median(eng_ns, ROUNDS), t = median(all_ns, ROUNDS);
    double n = (double)iters * ROUNDS;
    printf("requests: %lu x %d rounds (after %lu warm-up); medians of the rounds\n", iters, ROUNDS, warm);
    printf("head scan+parse: %8.0f ns/request, %.3f heap allocations/request\n", p,
           (double)head_allocs / n);
    printf("engine rewrite:  %8.0f ns/request, %.3f heap allocations/request\n", e,
           (double)(all_allocs - head_allocs) / n);
    printf("total:           %8.0f ns/request (goal < 2000), %.3f allocations/request (goal 0)\n", t,
           (double)all_allocs / n);
    ap_arena_free(&arena);
    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
    ap_policy_free(&pol);
    ap_cidr_list_free(&trusted);
    return 0;
}

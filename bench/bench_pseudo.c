/* Micro-benchmark of ap_pseudo_hex: nanoseconds per pseudonym and heap
 * allocations per call on a prepared keyring (the request path), next to
 * the cost of a cold derivation (what a keyring pays once per day).
 *
 * It counts every malloc/calloc/realloc of the process by wrapping glibc's
 * allocator, so build it without sanitizers:
 *   cc -std=c17 -O2 -D_GNU_SOURCE -Iinclude bench/bench_pseudo.c \
 *      proxy/engine/pseudo.c -lcrypto -o bench_pseudo && ./bench_pseudo
 * Exit status 1 when a prepared call allocates. */
#include "anonproxy/common.h"

#include <time.h>

#include "anonproxy/pseudo.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static volatile long allocs;

void *malloc(size_t n)
{
    allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    allocs++;
    return __libc_calloc(n, m);
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

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    static const uint8_t secret[32] = "bench secret bench secret bench";
    const int64_t t0 = 1710028800; /* 2024-03-10T00:00:00Z */
    const long iters = 2000000;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    char out[AP_PSEUDO_HEX_MAX];
    char value[16] = "198.51.100.000";
    unsigned sink = 0;

    if (ap_pseudo_source_init_secret(&src, secret, sizeof(secret)) != 0)
        return 2;
    ap_pseudo_keyring_init(&kr, &src);

    long a0 = allocs;
    double c0 = now_ns();
    if (ap_pseudo_keyring_prepare(&kr, t0) != 0)
        return 2;
    double c1 = now_ns();
    long prep_allocs = allocs - a0;

    static const unsigned bits[] = {32, 64, 256};
    int bad = 0;
    for (size_t b = 0; b < AP_ARRAY_SIZE(bits); b++) {
        long before = allocs;
        double s = now_ns();
        for (long i = 0; i < iters; i++) {
            value[12] = (char)('0' + i % 10);
            value[13] = (char)('0' + (i / 10) % 10);
            struct ap_slice scope = {"ip", 2}, val = {value, 14};
            if (ap_pseudo_hex(&kr, t0 + (i & 0xffff), scope, val, bits[b], out, sizeof(out)) < 0)
                return 2;
            sink += (unsigned char)out[0];
        }
        double e = now_ns();
        long n = allocs - before;
        printf("ap_pseudo_hex bits=%-3u %7.1f ns/call  %ld allocations in %ld calls\n", bits[b],
               (e - s) / (double)iters, n, iters);
        if (n != 0)
            bad = 1;
    }
    printf("keyring_prepare (2 days, HKDF) %.1f us, %ld allocations\n", (c1 - c0) / 1e3, prep_allocs);
    printf("(sink %u)\n", sink);
    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
    return bad;
}

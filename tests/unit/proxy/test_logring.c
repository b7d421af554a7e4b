/* Unit tests of proxy/logring.c: order, wrap-around, full ring, oversized
 * entries, and a producer and a consumer thread racing over a small ring. */
#include "anonproxy/common.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include "anonproxy/logring.h"

static void test_order_and_wrap(void **state)
{
    struct ap_logring r;
    assert_int_equal(ap_logring_init(&r, 4096), 0);
    assert_int_equal(r.cap, 4096);
    size_t n;
    assert_null(ap_logring_peek(&r, &n));
    /* 10000 entries of varying size through a 4 KiB ring, consumed as
     * they go: every wrap position is crossed. */
    unsigned next_in = 0, next_out = 0;
    char buf[300];
    while (next_out < 10000) {
        while (next_in < 10000) {
            size_t len = 1 + next_in % 250;
            if (len < sizeof(next_in))
                len = sizeof(next_in);
            memset(buf, (int)(next_in & 0xff), len);
            memcpy(buf, &next_in, sizeof(next_in));
            if (ap_logring_push(&r, buf, len) != 0)
                break;
            next_in++;
        }
        const char *p = ap_logring_peek(&r, &n);
        assert_non_null(p);
        unsigned v;
        memcpy(&v, p, sizeof(v));
        assert_int_equal(v, next_out);
        size_t want = 1 + next_out % 250;
        assert_int_equal(n, want < sizeof(v) ? sizeof(v) : want);
        for (size_t i = sizeof(v); i < n; i++)
            assert_int_equal((unsigned char)p[i], next_out & 0xff);
        ap_logring_consume(&r);
        next_out++;
    }
    assert_null(ap_logring_peek(&r, &n));
    assert_int_equal(ap_logring_used(&r), 0);
    ap_logring_free(&r);
}

static void test_full_and_oversized(void **state)
{
    struct ap_logring r;
    assert_int_equal(ap_logring_init(&r, 1000), 0);
    assert_int_equal(r.cap, 4096);
    char big[2000] = {0};
    /* More than a quarter of the ring is refused outright. */
    assert_int_equal(ap_logring_push(&r, big, r.max_entry + 1), -ENOBUFS);
    assert_int_equal(ap_logring_drops(&r), 1);
    int pushed = 0;
    while (ap_logring_push(&r, big, 100) == 0)
        pushed++;
    /* 108 bytes per entry in 4096. */
    assert_int_equal(pushed, 4096 / 112);
    assert_int_equal(ap_logring_drops(&r), 2);
    size_t n;
    assert_non_null(ap_logring_peek(&r, &n));
    ap_logring_consume(&r);
    assert_int_equal(ap_logring_push(&r, big, 100), 0);
    /* Commit may shrink a reservation. */
    ap_logring_free(&r);
    assert_int_equal(ap_logring_init(&r, 4096), 0);
    char *w = ap_logring_reserve(&r, 500);
    assert_non_null(w);
    memcpy(w, "short", 5);
    ap_logring_commit(&r, 5);
    const char *p = ap_logring_peek(&r, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "short", 5);
    ap_logring_consume(&r);
    assert_int_equal(ap_logring_used(&r), 0);
    /* An empty entry is an entry. */
    assert_int_equal(ap_logring_push(&r, NULL, 0), 0);
    assert_non_null(ap_logring_peek(&r, &n));
    assert_int_equal(n, 0);
    ap_logring_consume(&r);
    ap_logring_free(&r);
}

#define RACE_N 2000000u

static void *producer(void *arg)
{
    struct ap_logring *r = arg;
    for (uint32_t i = 0; i < RACE_N;) {
        size_t len = 4 + (i * 7u) % 60;
        char *w = ap_logring_reserve(r, len);
        if (w == NULL)
            continue; /* the consumer catches up */
        memcpy(w, &i, 4);
        for (size_t k = 4; k < len; k++)
            w[k] = (char)(i + k);
        ap_logring_commit(r, len);
        i++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct ap_logring r;
    assert_int_equal(ap_logring_init(&r, 8192), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &r), 0);
    uint32_t want = 0;
    while (want < RACE_N) {
        size_t n;
        const char *p = ap_logring_peek(&r, &n);
        if (p == NULL)
            continue;
        uint32_t v;
        memcpy(&v, p, 4);
        if (v != want)
            fail_msg("got entry %u, expected %u", v, want);
        if (n != 4 + (want * 7u) % 60)
            fail_msg("entry %u has %zu bytes", want, n);
        for (size_t k = 4; k < n; k++)
            if (p[k] != (char)(want + k))
                fail_msg("entry %u byte %zu damaged", want, k);
        ap_logring_consume(&r);
        want++;
    }
    pthread_join(t, NULL);
    size_t n;
    assert_null(ap_logring_peek(&r, &n));
    ap_logring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_wrap),
        cmocka_unit_test(test_full_and_oversized),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of proxy/logspool.c: the record format and its checksums, torn
 * and damaged files, replay order across segments and restarts, front
 * segments, acknowledgements, the size cap and the directory lock. */
#include "anonproxy/common.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "anonproxy/logspool.h"

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/ap-spool-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct ap_logspool_opts opts(uint64_t max, uint64_t seg)
{
    return (struct ap_logspool_opts){.max_bytes = max, .segment_bytes = seg,
                                     .fsync = AP_LOGSPOOL_FSYNC_BATCH};
}

static void put(struct ap_logspool *sp, uint64_t seq)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "record %llu", (unsigned long long)seq);
    struct ap_logspool_item it = {.seq = seq, .time_us = (int64_t)seq * 1000, .pri = 134,
                                  .data = buf, .len = (size_t)n};
    assert_int_equal(ap_logspool_append(sp, &it), 0);
}

/* Reads every remaining record and checks they are first..last in order. */
static void expect_range(struct ap_logspool *sp, uint64_t first, uint64_t last,
                         struct ap_logspool_pos *lastpos)
{
    struct ap_logspool_item it;
    struct ap_logspool_pos pos;
    for (uint64_t s = first; s <= last; s++) {
        assert_int_equal(ap_logspool_read(sp, &it, &pos), 1);
        assert_int_equal(it.seq, s);
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "record %llu", (unsigned long long)s);
        assert_int_equal(it.len, (size_t)n);
        assert_memory_equal(it.data, buf, (size_t)n);
        assert_int_equal(it.pri, 134);
        assert_int_equal(it.time_us, (int64_t)s * 1000);
        if (lastpos)
            *lastpos = pos;
    }
    assert_int_equal(ap_logspool_read(sp, &it, &pos), 0);
}

static void seg_path(char *out, size_t n, uint64_t id)
{
    snprintf(out, n, "%s/%016llx.seg", dir, (unsigned long long)id);
}

static off_t file_size(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_size;
}

static void test_header_encoding(void **state)
{
    unsigned char h[AP_LOGSPOOL_HDR];
    struct ap_logspool_item it = {.seq = 0x0102030405060708ull, .time_us = 42, .pri = 13,
                                  .data = "abc", .len = 3};
    ap_logspool_encode_header(h, &it);
    assert_memory_equal(h, "APR1", 4);
    assert_int_equal(h[4], 3);
    assert_int_equal(h[8], 0x08);
    assert_int_equal(h[15], 0x01);
    assert_int_equal(h[16], 42);
    assert_int_equal(h[24], 13);
    unsigned char h2[AP_LOGSPOOL_HDR];
    it.data = "abd";
    ap_logspool_encode_header(h2, &it);
    /* The checksum covers the payload. */
    assert_memory_not_equal(h + 28, h2 + 28, 4);
    assert_memory_equal(h, h2, 28);
}

static void test_append_read_ack_reopen(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    assert_true(ap_logspool_is_empty(&sp));
    for (uint64_t s = 1; s <= 10; s++)
        put(&sp, s);
    assert_false(ap_logspool_is_empty(&sp));
    /* Sequence numbers only grow. */
    struct ap_logspool_item bad = {.seq = 10, .data = "x", .len = 1};
    assert_int_equal(ap_logspool_append(&sp, &bad), -EINVAL);

    struct ap_logspool_item it;
    struct ap_logspool_pos pos, pos4 = {0};
    for (uint64_t s = 1; s <= 4; s++) {
        assert_int_equal(ap_logspool_read(&sp, &it, &pos), 1);
        assert_int_equal(it.seq, s);
        pos4 = pos;
    }
    assert_int_equal(ap_logspool_ack(&sp, &pos4), 0);
    ap_logspool_close(&sp);

    /* Records 5..10 come back after a restart, 1..4 do not. */
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    assert_int_equal(sp.last_seq, 10);
    expect_range(&sp, 5, 10, &pos);
    /* Rewind replays what is not acknowledged. */
    ap_logspool_rewind(&sp);
    expect_range(&sp, 5, 10, &pos);
    assert_true(ap_logspool_is_drained(&sp));
    assert_int_equal(ap_logspool_ack(&sp, &pos), 0);
    assert_true(ap_logspool_is_empty(&sp));
    assert_int_equal(sp.nsegs, 0);
    assert_int_equal(sp.bytes, 0);
    /* A new record after everything was delivered starts a new segment. */
    put(&sp, 11);
    expect_range(&sp, 11, 11, &pos);
    ap_logspool_close(&sp);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    expect_range(&sp, 11, 11, &pos);
    assert_int_equal(sp.corrupt, 0);
    assert_int_equal(sp.order_errors, 0);
    ap_logspool_close(&sp);
}

static void test_torn_tail_is_cut(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    for (uint64_t s = 1; s <= 3; s++)
        put(&sp, s);
    ap_logspool_close(&sp);
    char p[512];
    seg_path(p, sizeof(p), 1);
    off_t sz = file_size(p);
    /* A crash in the middle of the third record's payload. */
    assert_int_equal(truncate(p, sz - 3), 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    assert_int_equal(sp.last_seq, 2);
    assert_int_equal(file_size(p), sz - (off_t)(AP_LOGSPOOL_HDR + strlen("record 3")));
    /* Appending continues cleanly after the cut. */
    put(&sp, 3);
    put(&sp, 4);
    expect_range(&sp, 1, 4, NULL);
    assert_int_equal(sp.corrupt, 0);
    ap_logspool_close(&sp);

    /* A torn header (fewer bytes than a header) is cut too. */
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "APR1\x05", 5), 5);
    close(fd);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    expect_range(&sp, 1, 4, NULL);
    ap_logspool_close(&sp);
}

static void test_damaged_record_is_skipped(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    for (uint64_t s = 1; s <= 5; s++)
        put(&sp, s);
    ap_logspool_close(&sp);
    char p[512];
    seg_path(p, sizeof(p), 1);
    /* Flip one payload byte of record 2 ("record 2" after record 1). */
    size_t rec1 = AP_LOGSPOOL_HDR + strlen("record 1");
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)(rec1 + AP_LOGSPOOL_HDR + 2)), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)(rec1 + AP_LOGSPOOL_HDR + 2)), 1);
    close(fd);

    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    struct ap_logspool_item it;
    struct ap_logspool_pos pos;
    uint64_t want[] = {1, 3, 4, 5};
    for (size_t i = 0; i < AP_ARRAY_SIZE(want); i++) {
        assert_int_equal(ap_logspool_read(&sp, &it, &pos), 1);
        assert_int_equal(it.seq, want[i]);
    }
    assert_int_equal(ap_logspool_read(&sp, &it, &pos), 0);
    assert_int_equal(sp.corrupt, 1);
    ap_logspool_close(&sp);

    /* Garbage in front of a valid record: the record is found again. */
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    put(&sp, 6);
    ap_logspool_close(&sp);
    fd = open(p, O_RDWR);
    /* Damage record 1's magic: the reader must resynchronise on record 2's
     * header... which is damaged too, so on record 3's. */
    assert_int_equal(pwrite(fd, "XXXX", 4, 0), 4);
    close(fd);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    uint64_t want2[] = {3, 4, 5, 6};
    for (size_t i = 0; i < AP_ARRAY_SIZE(want2); i++) {
        assert_int_equal(ap_logspool_read(&sp, &it, &pos), 1);
        assert_int_equal(it.seq, want2[i]);
    }
    assert_int_equal(ap_logspool_read(&sp, &it, &pos), 0);
    ap_logspool_close(&sp);
}

static void test_segments_and_replay_order(void **state)
{
    struct ap_logspool sp;
    /* Tiny segments: every few records start a new file. */
    struct ap_logspool_opts o = opts(0, 128);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    for (uint64_t s = 100; s < 200; s++)
        put(&sp, s);
    assert_true(sp.nsegs > 20);
    struct ap_logspool_item it;
    struct ap_logspool_pos pos, ackpos = {0};
    for (uint64_t s = 100; s < 150; s++) {
        assert_int_equal(ap_logspool_read(&sp, &it, &pos), 1);
        assert_int_equal(it.seq, s);
        ackpos = pos;
    }
    size_t before = sp.nsegs;
    assert_int_equal(ap_logspool_ack(&sp, &ackpos), 0);
    assert_true(sp.nsegs < before);
    ap_logspool_close(&sp);

    /* After a restart: 150..199 in order, then new records. */
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    for (uint64_t s = 200; s < 210; s++)
        put(&sp, s);
    expect_range(&sp, 150, 209, &pos);
    assert_int_equal(sp.order_errors, 0);
    ap_logspool_close(&sp);
}

static void test_prepend_sorts_first(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    for (uint64_t s = 50; s < 60; s++)
        put(&sp, s);
    /* Records 40..49 were in memory: they go in front. */
    char bufs[10][64];
    struct ap_logspool_item items[10];
    for (int i = 0; i < 10; i++) {
        uint64_t s = 40 + (uint64_t)i;
        int n = snprintf(bufs[i], sizeof(bufs[i]), "record %llu", (unsigned long long)s);
        items[i] = (struct ap_logspool_item){.seq = s, .time_us = (int64_t)s * 1000, .pri = 134,
                                             .data = bufs[i], .len = (size_t)n};
    }
    /* Not older than the spool: refused. */
    struct ap_logspool_item late = items[0];
    late.seq = 55;
    assert_int_equal(ap_logspool_prepend(&sp, &late, 1), -EINVAL);
    assert_int_equal(ap_logspool_prepend(&sp, items, 10), 0);
    /* Appends still go to the end. */
    put(&sp, 60);
    expect_range(&sp, 40, 60, NULL);
    ap_logspool_close(&sp);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    expect_range(&sp, 40, 60, NULL);
    ap_logspool_close(&sp);
}

static void test_prepend_into_empty_spool(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    char b[] = "record 7";
    struct ap_logspool_item it = {.seq = 7, .time_us = 7000, .pri = 134, .data = b, .len = 8};
    assert_int_equal(ap_logspool_prepend(&sp, &it, 1), 0);
    put(&sp, 8);
    expect_range(&sp, 7, 8, NULL);
    ap_logspool_close(&sp);
}

static void test_max_bytes(void **state)
{
    struct ap_logspool sp;
    size_t rec = AP_LOGSPOOL_HDR + strlen("record 1");
    struct ap_logspool_opts o = opts(rec * 3, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    put(&sp, 1);
    put(&sp, 2);
    put(&sp, 3);
    char b[] = "record 4";
    struct ap_logspool_item it = {.seq = 4, .time_us = 4000, .pri = 134, .data = b, .len = 8};
    assert_int_equal(ap_logspool_append(&sp, &it), -EDQUOT);
    assert_int_equal(sp.bytes, rec * 3);
    assert_int_equal(sp.peak_bytes, rec * 3);
    /* Delivering makes room. */
    struct ap_logspool_item r;
    struct ap_logspool_pos pos;
    assert_int_equal(ap_logspool_read(&sp, &r, &pos), 1);
    assert_int_equal(ap_logspool_read(&sp, &r, &pos), 1);
    assert_int_equal(ap_logspool_read(&sp, &r, &pos), 1);
    assert_int_equal(ap_logspool_ack(&sp, &pos), 0);
    assert_int_equal(ap_logspool_append(&sp, &it), 0);
    expect_range(&sp, 4, 4, NULL);
    ap_logspool_close(&sp);
}

static void test_big_records(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    size_t n = 700 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    for (uint64_t s = 1; s <= 3; s++) {
        struct ap_logspool_item it = {.seq = s, .data = big, .len = n};
        assert_int_equal(ap_logspool_append(&sp, &it), 0);
    }
    struct ap_logspool_item too = {.seq = 9, .data = big, .len = AP_LOGSPOOL_MAX_RECORD + 1};
    char *huge = calloc(1, AP_LOGSPOOL_MAX_RECORD + 1);
    too.data = huge;
    assert_int_equal(ap_logspool_append(&sp, &too), -EMSGSIZE);
    struct ap_logspool_item it;
    struct ap_logspool_pos pos;
    for (uint64_t s = 1; s <= 3; s++) {
        assert_int_equal(ap_logspool_read(&sp, &it, &pos), 1);
        assert_int_equal(it.seq, s);
        assert_int_equal(it.len, n);
        assert_memory_equal(it.data, big, n);
    }
    assert_int_equal(ap_logspool_read(&sp, &it, &pos), 0);
    free(big);
    free(huge);
    ap_logspool_close(&sp);
}

static void test_lock(void **state)
{
    struct ap_logspool a, b;
    struct ap_logspool_opts o = opts(0, 0);
    assert_int_equal(ap_logspool_open(&a, dir, &o), 0);
    assert_int_equal(ap_logspool_open(&b, dir, &o), -EBUSY);
    ap_logspool_close(&a);
    assert_int_equal(ap_logspool_open(&b, dir, &o), 0);
    ap_logspool_close(&b);
}

static void test_bad_directory(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    char p[300];
    snprintf(p, sizeof(p), "%s/file", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    /* A regular file where the directory should be. */
    assert_int_equal(ap_logspool_open(&sp, p, &o), -ENOTDIR);
    snprintf(p, sizeof(p), "%s/file/sub", dir);
    assert_int_equal(ap_logspool_open(&sp, p, &o), -ENOTDIR);
}

static void test_stale_ack_file(void **state)
{
    struct ap_logspool sp;
    struct ap_logspool_opts o = opts(0, 0);
    /* An ack file naming a segment that is gone must not make a later
     * open delete newer segments with smaller ids. */
    char p[300];
    snprintf(p, sizeof(p), "%s/ack", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "%016x 100\n", 0x500);
    fclose(f);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    put(&sp, 1);
    put(&sp, 2);
    ap_logspool_close(&sp);
    assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
    expect_range(&sp, 1, 2, NULL);
    ap_logspool_close(&sp);
}

static void test_fsync_policies(void **state)
{
    enum ap_logspool_fsync pol[] = {AP_LOGSPOOL_FSYNC_ALWAYS, AP_LOGSPOOL_FSYNC_NEVER,
                                    AP_LOGSPOOL_FSYNC_BATCH};
    uint64_t base = 1;
    for (size_t k = 0; k < AP_ARRAY_SIZE(pol); k++) {
        struct ap_logspool sp;
        struct ap_logspool_opts o = {.max_bytes = 0, .segment_bytes = 256, .fsync = pol[k]};
        assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
        for (uint64_t s = base; s < base + 20; s++)
            put(&sp, s);
        assert_int_equal(ap_logspool_sync(&sp), 0);
        assert_int_equal(sp.wdirty, 0);
        ap_logspool_close(&sp);
        assert_int_equal(ap_logspool_open(&sp, dir, &o), 0);
        struct ap_logspool_pos pos;
        expect_range(&sp, base, base + 19, &pos);
        assert_int_equal(ap_logspool_ack(&sp, &pos), 0);
        ap_logspool_close(&sp);
        base += 20;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encoding),
        cmocka_unit_test_setup_teardown(test_append_read_ack_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_and_replay_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepend_sorts_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepend_into_empty_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_ack_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_policies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

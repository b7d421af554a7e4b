/* Unit tests of proxy/engine/syslogmsg.c: RFC 5424 and RFC 3164 headers,
 * octet-counting framing (RFC 6587), parsing of both formats, structured
 * data, and the TCP deframer fed byte by byte and in bulk. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include "anonproxy/syslogmsg.h"

static void assert_slice(struct ap_slice s, const char *want)
{
    if (want == NULL) {
        assert_int_equal(s.len, 0);
        return;
    }
    char buf[512];
    assert_true(s.len < sizeof(buf));
    memcpy(buf, s.p ? s.p : "", s.len);
    buf[s.len] = '\0';
    assert_string_equal(buf, want);
}

static void test_header_5424(void **state)
{
    char out[256];
    /* 2024-05-01T12:34:56.789012Z */
    struct ap_syslogmsg_hdr h = {.pri = 134, .time_us = 1714566896789012LL, .hostname = "edge-1",
                                 .app = "anonproxy", .procid = 4242, .msgid = "access"};
    int n = ap_syslogmsg_header(AP_SYSLOGMSG_RFC5424, &h, out, sizeof(out));
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "<134>1 2024-05-01T12:34:56.789012Z edge-1 anonproxy 4242 access - ");
    /* Empty fields are NILVALUEs; spaces and controls become '_'. */
    struct ap_syslogmsg_hdr h2 = {.pri = 999, .time_us = 0, .hostname = "", .app = "a b\x01",
                                  .procid = 0, .msgid = NULL};
    n = ap_syslogmsg_header(AP_SYSLOGMSG_RFC5424, &h2, out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "<191>1 1970-01-01T00:00:00.000000Z - a_b_ - - - ");
    assert_int_equal(ap_syslogmsg_header(AP_SYSLOGMSG_RFC5424, &h, out, 100), -ENOBUFS);
    /* A 300-character host name is cut: the header stays within 256. */
    char host[301];
    memset(host, 'h', 300);
    host[300] = '\0';
    h.hostname = host;
    n = ap_syslogmsg_header(AP_SYSLOGMSG_RFC5424, &h, out, sizeof(out));
    assert_true(n > 0 && n < 256);
}

static void test_header_3164(void **state)
{
    char out[256];
    struct ap_syslogmsg_hdr h = {.pri = 13, .time_us = 1714566896789012LL, .hostname = "edge-1",
                                 .app = "anonproxy", .procid = 7};
    int n = ap_syslogmsg_header(AP_SYSLOGMSG_RFC3164, &h, out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "<13>May  1 12:34:56 edge-1 anonproxy[7]: ");
    h.procid = 0;
    h.app = "a:b c";
    n = ap_syslogmsg_header(AP_SYSLOGMSG_RFC3164, &h, out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "<13>May  1 12:34:56 edge-1 a_b_c: ");
}

static void test_octet_prefix(void **state)
{
    char out[24];
    assert_int_equal(ap_syslogmsg_octet_prefix(0, out, sizeof(out)), 2);
    assert_memory_equal(out, "0 ", 2);
    assert_int_equal(ap_syslogmsg_octet_prefix(65536, out, sizeof(out)), 6);
    assert_memory_equal(out, "65536 ", 6);
    assert_int_equal(ap_syslogmsg_octet_prefix(65536, out, 3), -ENOBUFS);
}

static void test_parse_5424(void **state)
{
    struct ap_syslogmsg m;
    const char *s = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
                    "[exampleSDID@32473 iut=\"3\" eventSource=\"Appli\\\"cation\" eventID=\"1011\"]"
                    "[examplePriority@32473 class=\"high\"] \xef\xbb\xbf" "An application event\n";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_int_equal(m.pri, 165);
    assert_int_equal(m.version, 1);
    assert_slice(m.timestamp, "2003-10-11T22:14:15.003Z");
    assert_slice(m.hostname, "mymachine.example.com");
    assert_slice(m.app, "evntslog");
    assert_slice(m.procid, NULL);
    assert_slice(m.msgid, "ID47");
    assert_slice(m.msg, "An application event");
    struct ap_syslogmsg_sditer it;
    struct ap_syslogmsg_param p;
    ap_syslogmsg_sd_init(&it, m.sd);
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 1);
    assert_slice(p.sd_id, "exampleSDID@32473");
    assert_slice(p.name, "iut");
    assert_slice(p.value, "3");
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 1);
    assert_slice(p.name, "eventSource");
    assert_slice(p.value, "Appli\\\"cation");
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 1);
    assert_slice(p.name, "eventID");
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 1);
    assert_slice(p.sd_id, "examplePriority@32473");
    assert_slice(p.name, "class");
    assert_slice(p.value, "high");
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 0);

    /* NILVALUE structured data, no message. */
    s = "<34>1 2003-10-11T22:14:15.003Z host su - - -";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_int_equal(m.pri, 34);
    assert_slice(m.sd, NULL);
    assert_slice(m.msg, NULL);
    assert_slice(m.app, "su");
    /* An element without parameters, and a broken one. */
    ap_syslogmsg_sd_init(&it, (struct ap_slice){"[a][b x=\"1\"][c y=1]", 19});
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 1);
    assert_slice(p.sd_id, "a");
    assert_slice(p.name, NULL);
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 1);
    assert_slice(p.sd_id, "b");
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), -EINVAL);
    assert_int_equal(ap_syslogmsg_sd_next(&it, &p), 0);
}

static void test_parse_3164(void **state)
{
    struct ap_syslogmsg m;
    const char *s = "<13>Feb  5 17:32:18 10.0.0.99 myapp[1234]: user alice@example.com logged in";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_int_equal(m.pri, 13);
    assert_int_equal(m.version, 0);
    assert_slice(m.timestamp, "Feb  5 17:32:18");
    assert_slice(m.hostname, "10.0.0.99");
    assert_slice(m.app, "myapp");
    assert_slice(m.procid, "1234");
    assert_slice(m.msg, "user alice@example.com logged in");
    /* No host name: the tag follows the timestamp. */
    s = "<13>Feb  5 17:32:18 myapp: hello";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_slice(m.hostname, NULL);
    assert_slice(m.app, "myapp");
    assert_slice(m.msg, "hello");
    /* What local programs send to /dev/log: no timestamp. */
    s = "<14>tag: text";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_int_equal(m.pri, 14);
    assert_slice(m.app, "tag");
    assert_slice(m.msg, "text");
    /* Anything else is all message. */
    s = "just some words";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_int_equal(m.pri, -1);
    assert_slice(m.msg, "just some words");
    s = "<999>x";
    ap_syslogmsg_parse(s, strlen(s), &m);
    assert_int_equal(m.pri, -1);
    assert_slice(m.msg, "<999>x");
    ap_syslogmsg_parse("", 0, &m);
    assert_slice(m.msg, NULL);
}

struct got {
    char msgs[16][128];
    size_t n;
};

static void collect(void *arg, const char *msg, size_t n)
{
    struct got *g = arg;
    assert_true(g->n < 16);
    assert_true(n < 128);
    memcpy(g->msgs[g->n], msg, n);
    g->msgs[g->n][n] = '\0';
    g->n++;
}

static void test_deframer(void **state)
{
    const char *stream = "11 <13>1 hello\n"    /* counted: 11 bytes "<13>1 hello" then LF noise */
                         "<14>line one\r\n"    /* LF framing */
                         "5 a b c"             /* counted, 5 bytes with spaces */
                         "<15>line two\n"
                         "0123 not a count\n"; /* leading zero: read as a line */
    struct ap_syslogmsg_deframer d;
    struct got g;
    /* In bulk. */
    memset(&g, 0, sizeof(g));
    ap_syslogmsg_deframer_init(&d, 64);
    assert_int_equal(ap_syslogmsg_deframer_feed(&d, stream, strlen(stream), collect, &g), 0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.msgs[0], "<13>1 hello");
    assert_string_equal(g.msgs[1], "<14>line one");
    assert_string_equal(g.msgs[2], "a b c");
    assert_string_equal(g.msgs[3], "<15>line two");
    assert_string_equal(g.msgs[4], "0123 not a count");
    assert_int_equal(d.malformed, 1);
    ap_syslogmsg_deframer_free(&d);
    /* One byte at a time gives the same messages. */
    memset(&g, 0, sizeof(g));
    ap_syslogmsg_deframer_init(&d, 64);
    for (size_t i = 0; i < strlen(stream); i++)
        assert_int_equal(ap_syslogmsg_deframer_feed(&d, stream + i, 1, collect, &g), 0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.msgs[2], "a b c");
    assert_string_equal(g.msgs[4], "0123 not a count");
    ap_syslogmsg_deframer_free(&d);
}

static void test_deframer_limits(void **state)
{
    struct ap_syslogmsg_deframer d;
    struct got g;
    memset(&g, 0, sizeof(g));
    ap_syslogmsg_deframer_init(&d, 8);
    /* A counted message over the cap is cut, the rest skipped even when it
     * arrives later; the next message is intact. */
    const char *a = "20 0123456789";
    const char *b = "abcdefghij3 xyz";
    assert_int_equal(ap_syslogmsg_deframer_feed(&d, a, strlen(a), collect, &g), 0);
    assert_int_equal(ap_syslogmsg_deframer_feed(&d, b, strlen(b), collect, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.msgs[0], "01234567");
    assert_string_equal(g.msgs[1], "xyz");
    /* A line over the cap: cut, then discarded up to its LF. */
    const char *c = "<1>abcdefghijklmnop";
    const char *e = "qrstuv\n<2>ok\n";
    assert_int_equal(ap_syslogmsg_deframer_feed(&d, c, strlen(c), collect, &g), 0);
    assert_int_equal(ap_syslogmsg_deframer_feed(&d, e, strlen(e), collect, &g), 0);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.msgs[2], "<1>abcde");
    assert_string_equal(g.msgs[3], "<2>ok");
    assert_int_equal(d.truncated, 2);
    /* Nothing is kept between messages. */
    assert_int_equal(d.len, 0);
    ap_syslogmsg_deframer_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_5424),
        cmocka_unit_test(test_header_3164),
        cmocka_unit_test(test_octet_prefix),
        cmocka_unit_test(test_parse_5424),
        cmocka_unit_test(test_parse_3164),
        cmocka_unit_test(test_deframer),
        cmocka_unit_test(test_deframer_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

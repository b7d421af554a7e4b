/* Fuzz target of proxy/engine/syslogmsg.c: parsing, structured data, and
 * the TCP deframer. Checks, besides the sanitizers: every parsed slice lies
 * inside the input, and the deframer gives the same messages whether the
 * input arrives at once or one byte at a time. */
#include "anonproxy/common.h"

#include "anonproxy/syslogmsg.h"

static void in_input(struct ap_slice s, const char *p, size_t n)
{
    AP_BUG_ON(s.len > 0 && (s.p < p || s.p + s.len > p + n));
}

struct acc {
    char *buf;
    size_t len, cap;
    unsigned count;
};

static void collect(void *arg, const char *msg, size_t n)
{
    struct acc *a = arg;
    if (a->len + n + 1 > a->cap) {
        size_t cap = (a->len + n + 1) * 2;
        char *nb = realloc(a->buf, cap);
        AP_BUG_ON(nb == NULL);
        a->buf = nb;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, msg, n);
    a->len += n;
    a->buf[a->len++] = '\x1e';
    a->count++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct ap_syslogmsg m;
    ap_syslogmsg_parse(s, size, &m);
    AP_BUG_ON(m.pri < -1 || m.pri > AP_SYSLOG_PRI_MAX);
    in_input(m.timestamp, s, size);
    in_input(m.hostname, s, size);
    in_input(m.app, s, size);
    in_input(m.procid, s, size);
    in_input(m.msgid, s, size);
    in_input(m.sd, s, size);
    in_input(m.msg, s, size);
    struct ap_syslogmsg_sditer it;
    struct ap_syslogmsg_param p;
    ap_syslogmsg_sd_init(&it, (struct ap_slice){s, size});
    for (int i = 0; i < 10000 && ap_syslogmsg_sd_next(&it, &p) == 1; i++) {
        in_input(p.sd_id, s, size);
        in_input(p.name, s, size);
        in_input(p.value, s, size);
    }
    struct ap_syslogmsg_deframer d1, d2;
    struct acc a1 = {0}, a2 = {0};
    ap_syslogmsg_deframer_init(&d1, 64);
    ap_syslogmsg_deframer_init(&d2, 64);
    AP_BUG_ON(ap_syslogmsg_deframer_feed(&d1, s, size, collect, &a1) != 0);
    for (size_t i = 0; i < size; i++)
        AP_BUG_ON(ap_syslogmsg_deframer_feed(&d2, s + i, 1, collect, &a2) != 0);
    AP_BUG_ON(a1.count != a2.count || a1.len != a2.len ||
              (a1.len > 0 && memcmp(a1.buf, a2.buf, a1.len) != 0));
    ap_syslogmsg_deframer_free(&d1);
    ap_syslogmsg_deframer_free(&d2);
    free(a1.buf);
    free(a2.buf);
    return 0;
}

/* Types of syslog message formatting, parsing and TCP framing
 * (proxy/engine/syslogmsg.c). */
#ifndef ANONPROXY_SYSLOGMSG_T_H
#define ANONPROXY_SYSLOGMSG_T_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/http-t.h"

/* Largest PRI value: facility 23, severity 7. */
#define AP_SYSLOG_PRI_MAX 191

enum ap_syslogmsg_format {
    AP_SYSLOGMSG_RFC5424 = 0,
    AP_SYSLOGMSG_RFC3164,
};

/* What ap_syslogmsg_format writes besides the message. */
struct ap_syslogmsg_hdr {
    int pri;             /* 0..191 */
    int64_t time_us;     /* microseconds since the epoch */
    const char *hostname;/* NUL-terminated; NULL or "" gives "-" (5424) */
    const char *app;     /* APP-NAME / TAG */
    int procid;          /* <= 0: "-" */
    const char *msgid;   /* 5424 MSGID; NULL gives "-" */
};

/* A parsed message: slices into the input (not NUL-terminated). A field
 * that the message does not carry has p NULL and len 0. */
struct ap_syslogmsg {
    int pri;                  /* -1 when the message had none */
    int version;              /* 1 for RFC 5424, 0 for RFC 3164 or unknown */
    struct ap_slice timestamp;
    struct ap_slice hostname;
    struct ap_slice app;      /* APP-NAME, or the TAG of RFC 3164 */
    struct ap_slice procid;
    struct ap_slice msgid;
    struct ap_slice sd;       /* STRUCTURED-DATA as written, "[...]..." */
    struct ap_slice msg;
};

/* One SD-PARAM of a structured data element. The value is as written
 * (escapes \" \\ \] still in it). */
struct ap_syslogmsg_param {
    struct ap_slice sd_id;
    struct ap_slice name;
    struct ap_slice value;
};

/* Iterator over the SD-PARAMs of a STRUCTURED-DATA slice. */
struct ap_syslogmsg_sditer {
    struct ap_slice sd;
    size_t pos;
    struct ap_slice id; /* SD-ID of the element being walked */
    int in_elem;
};

/* Splits a TCP stream into messages, by octet counting ("LEN SP MSG",
 * RFC 6587 3.4.1) or by LF (3.4.2), decided per message by its first byte. */
struct ap_syslogmsg_deframer {
    char *buf;
    size_t len, cap;
    size_t max;         /* largest message kept; longer ones are cut */
    size_t skip;        /* bytes still to discard of an over-long message */
    int skip_to_lf;     /* discarding up to the next LF */
    uint64_t truncated; /* messages cut to max */
    uint64_t malformed; /* bad octet counts */
};

#endif

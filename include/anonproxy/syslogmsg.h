/* Syslog messages: RFC 5424 and RFC 3164 formatting for the syslog sink,
 * octet-counting framing (RFC 6587) for TCP, and the parsers and the
 * stream deframer of the syslog listener. Pure functions (the deframer
 * grows its own buffer up to its cap): no I/O. */
#ifndef ANONPROXY_SYSLOGMSG_H
#define ANONPROXY_SYSLOGMSG_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/syslogmsg-t.h"

/* Write the header of a message in `fmt` to `out` of `cap` bytes:
 *   RFC 5424: "<PRI>1 2024-05-01T12:00:00.123456Z HOST APP PROCID MSGID - "
 *   RFC 3164: "<PRI>May  1 12:00:00 HOST APP[PROCID]: "
 * Header fields are cut to their RFC lengths and characters outside
 * PRINTUSASCII are replaced by '_'. The message follows as it is. Returns
 * the length written (no NUL), or -ENOBUFS. 256 bytes always suffice. */
int ap_syslogmsg_header(enum ap_syslogmsg_format fmt, const struct ap_syslogmsg_hdr *h, char *out,
                        size_t cap);

/* Write the octet-counting prefix of a `len`-byte message ("LEN ") to
 * `out` (24 bytes suffice). Returns its length. */
int ap_syslogmsg_octet_prefix(size_t len, char *out, size_t cap);

/* Parse one message: RFC 5424 when "<PRI>1 " starts it, else RFC 3164
 * (with or without the BSD timestamp and host), else the whole input is
 * the message (pri -1). A trailing LF, CR or NUL is not part of the
 * message. Never fails: anything is a message. */
void ap_syslogmsg_parse(const char *s, size_t len, struct ap_syslogmsg *out);

/* Walk the SD-PARAMs of a STRUCTURED-DATA slice ("-" has none). Each call
 * fills *param with the next one; an element without parameters gives one
 * entry with an empty name. Returns 1, 0 at the end, or -EINVAL when the
 * rest is not well-formed structured data (the walk stops there). */
void ap_syslogmsg_sd_init(struct ap_syslogmsg_sditer *it, struct ap_slice sd);
int ap_syslogmsg_sd_next(struct ap_syslogmsg_sditer *it, struct ap_syslogmsg_param *param);

/* Deframer of a TCP connection; messages over `max` bytes are cut. */
void ap_syslogmsg_deframer_init(struct ap_syslogmsg_deframer *d, size_t max);
void ap_syslogmsg_deframer_free(struct ap_syslogmsg_deframer *d);

/* Feed `len` bytes and call `cb` for every complete message, in order.
 * Returns 0, or -ENOMEM (the connection should be closed). */
int ap_syslogmsg_deframer_feed(struct ap_syslogmsg_deframer *d, const char *data, size_t len,
                               void (*cb)(void *arg, const char *msg, size_t n), void *arg);

#endif

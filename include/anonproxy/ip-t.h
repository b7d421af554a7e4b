/* Types of IP addresses and CIDR prefixes. An address is a plain value (no
 * pointers), so it can be copied, compared with memcmp and stored in
 * results without ownership questions. */
#ifndef ANONPROXY_IP_T_H
#define ANONPROXY_IP_T_H

#include <stddef.h>
#include <stdint.h>

/* Longest text ap_ip_format writes, including the NUL:
 * "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 characters. */
#define AP_IP_STRLEN 46

/* Longest text ap_cidr_format writes, including the NUL ("/128" added). */
#define AP_CIDR_STRLEN (AP_IP_STRLEN + 4)

/* Default prefixes that ap_ip_truncate callers use to anonymise an address:
 * an IPv4 /24 and an IPv6 /48 (one site) stay useful for geography and
 * abuse handling but no longer name a host. */
#define AP_IP_TRUNCATE_V4_DEFAULT 24
#define AP_IP_TRUNCATE_V6_DEFAULT 48

/* An IPv4 or IPv6 address. family is 4 or 6 (0 only in a zeroed struct,
 * which no parser returns). bytes are in network order; an IPv4 address
 * uses bytes[0..3] and keeps bytes[4..15] zero, so two addresses are equal
 * exactly when their structs compare equal with memcmp. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) stay family 6 until ap_ip_unmap is asked. */
struct ap_ip {
    uint8_t family;
    uint8_t bytes[16];
};

/* A network prefix: net has every bit after prefix cleared. prefix is
 * 0..32 for family 4 and 0..128 for family 6. An IPv4-mapped IPv6 prefix of
 * /96 or longer is always stored as the equivalent IPv4 prefix. */
struct ap_cidr {
    struct ap_ip net;
    uint8_t prefix;
};

#define AP_CIDR_LIST_MAGIC 0x43494452u /* "CIDR" */

/* A growable list of prefixes, built at configuration time (it mallocs)
 * and read-only afterwards, so any number of threads may query it. */
struct ap_cidr_list {
    unsigned magic;
    struct ap_cidr *items;
    size_t n;
    size_t cap;
};

#endif

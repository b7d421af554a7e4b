/* Types of client address resolution: which forwarding headers to read,
 * which proxies to believe, and what the walk concluded. */
#ifndef ANONPROXY_CLIENTADDR_T_H
#define ANONPROXY_CLIENTADDR_T_H

#include "anonproxy/ip-t.h"

/* A forwarding header the resolver can walk. */
enum ap_clientaddr_header {
    AP_CLIENTADDR_HDR_NONE = 0,
    AP_CLIENTADDR_HDR_XFF,       /* X-Forwarded-For */
    AP_CLIENTADDR_HDR_FORWARDED, /* RFC 7239 Forwarded, "for=" parameter */
};

/* Why the walk ended, which tells the caller how much to believe `addr`. */
enum ap_clientaddr_stop {
    AP_CLIENTADDR_STOP_PEER_UNTRUSTED = 0, /* peer is not a trusted proxy: it is the client */
    AP_CLIENTADDR_STOP_NO_HEADER,          /* trusted peer sent no usable header: peer */
    AP_CLIENTADDR_STOP_UNTRUSTED_HOP,      /* normal case: the first untrusted hop */
    AP_CLIENTADDR_STOP_ALL_TRUSTED,        /* every hop trusted: the leftmost one */
    AP_CLIENTADDR_STOP_INVALID,            /* unparseable entry: the nearest trusted hop */
    AP_CLIENTADDR_STOP_UNKNOWN,            /* Forwarded "for=unknown" or no "for=": as INVALID */
    AP_CLIENTADDR_STOP_OBFUSCATED,         /* Forwarded "for=_hidden": as INVALID */
};

#define AP_CLIENTADDR_MAX_HEADERS 2

#define AP_CLIENTADDR_CONFIG_MAGIC 0x434c4943u /* "CLIC" */

/* Resolver settings, built at configuration time and read-only afterwards.
 * `trusted` is not owned: it must outlive the config. */
struct ap_clientaddr_config {
    unsigned magic;
    const struct ap_cidr_list *trusted;
    enum ap_clientaddr_header order[AP_CLIENTADDR_MAX_HEADERS];
    unsigned norder;
};

/* What ap_clientaddr_resolve found. `addr` is always a valid address
 * (IPv4-mapped addresses are unmapped). `port` is the port the deciding
 * header entry carried, or -1 (always -1 when addr is the peer). `header`
 * names the header that was walked, or AP_CLIENTADDR_HDR_NONE. `hops` counts
 * the header entries examined. */
struct ap_clientaddr_result {
    struct ap_ip addr;
    int port;
    enum ap_clientaddr_header header;
    enum ap_clientaddr_stop stop;
    unsigned hops;
};

#endif

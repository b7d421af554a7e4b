/* Types of the PROXY protocol (HAProxy doc/proxy-protocol.txt) header that
 * a load balancer may send before the first byte of the client stream. */
#ifndef ANONPROXY_PROXYPROTO_T_H
#define ANONPROXY_PROXYPROTO_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anonproxy/ip-t.h"

/* Longest header ap_proxyproto_parse accepts: a version 1 line is at most
 * 107 bytes with its CRLF; a version 2 header is 16 bytes plus a length
 * field we bound at 4080, which leaves room for every registered TLV while
 * keeping the read buffer small. A buffer of AP_PROXYPROTO_MAX_LEN bytes
 * always suffices. */
#define AP_PROXYPROTO_V1_MAX_LEN 107
#define AP_PROXYPROTO_V2_HEADER_LEN 16
#define AP_PROXYPROTO_MAX_LEN 4096

/* Errors of ap_proxyproto_parse. They lie below -1000 so they cannot be
 * confused with negative errno values; ap_proxyproto_strerror names them. */
enum ap_proxyproto_error {
    AP_PROXYPROTO_ERR_SIGNATURE = -1001,  /* neither "PROXY " nor the v2 signature */
    AP_PROXYPROTO_ERR_V1_SYNTAX = -1002,  /* v1 line does not match the grammar */
    AP_PROXYPROTO_ERR_V1_TOO_LONG = -1003, /* no CRLF within 107 bytes */
    AP_PROXYPROTO_ERR_V1_ADDRESS = -1004, /* v1 address or port invalid for its family */
    AP_PROXYPROTO_ERR_V2_VERSION = -1005, /* version nibble is not 2 */
    AP_PROXYPROTO_ERR_V2_COMMAND = -1006, /* command is neither LOCAL nor PROXY */
    AP_PROXYPROTO_ERR_V2_FAMILY = -1007,  /* unassigned address family or transport */
    AP_PROXYPROTO_ERR_V2_TOO_LONG = -1008, /* length beyond AP_PROXYPROTO_MAX_LEN */
    AP_PROXYPROTO_ERR_V2_ADDR_LEN = -1009, /* length shorter than the family's addresses */
    AP_PROXYPROTO_ERR_V2_TLV = -1010,     /* TLV overruns the header or has a bad size */
    AP_PROXYPROTO_ERR_V2_CRC = -1011,     /* PP2_TYPE_CRC32C present and wrong */
};

enum ap_proxyproto_command {
    AP_PROXYPROTO_CMD_LOCAL = 0, /* health check by the proxy itself: use the socket's addresses */
    AP_PROXYPROTO_CMD_PROXY = 1, /* relayed: use src/dst when has_addr */
};

enum ap_proxyproto_family {
    AP_PROXYPROTO_AF_UNSPEC = 0, /* also v1 UNKNOWN and v2 LOCAL */
    AP_PROXYPROTO_AF_INET = 4,
    AP_PROXYPROTO_AF_INET6 = 6,
    AP_PROXYPROTO_AF_UNIX = 1,
};

enum ap_proxyproto_transport {
    AP_PROXYPROTO_TR_UNSPEC = 0,
    AP_PROXYPROTO_TR_STREAM = 1,
    AP_PROXYPROTO_TR_DGRAM = 2,
};

/* A parsed header. When has_addr is false the caller keeps the socket's
 * own addresses (v1 UNKNOWN, v2 LOCAL, AF_UNSPEC, AF_UNIX or an UNSPEC
 * transport). Addresses are as sent: an IPv4-mapped TCP6 source stays
 * family 6. tlv_off/tlv_len locate the v2 TLVs inside the parsed buffer
 * (both 0 otherwise); they were length-checked but not interpreted. */
struct ap_proxyproto_result {
    int version; /* 1 or 2 */
    enum ap_proxyproto_command command;
    enum ap_proxyproto_family family;
    enum ap_proxyproto_transport transport;
    bool has_addr;
    struct ap_ip src;
    struct ap_ip dst;
    uint16_t src_port;
    uint16_t dst_port;
    size_t tlv_off;
    size_t tlv_len;
};

#endif

/* Client address resolution from the connection peer and the forwarding
 * headers that trusted proxies add (X-Forwarded-For, RFC 7239 Forwarded).
 *
 * The rule, and why it is safe. Each proxy on the path appends the address
 * of the node it received the request from; a client can put anything it
 * likes to the left of the first append. So only entries vouched for by a
 * trusted node are believed, and the walk goes from the right:
 *
 *   1. If the peer (the TCP/PROXY-protocol source) is not in the trusted
 *      list, it is the client and the headers are ignored.
 *   2. Otherwise take the first configured header that has at least one
 *      non-empty list element; all its header lines are read as one list,
 *      in received order. No usable header: the peer is the client.
 *   3. Walk that list from the right. "current" starts as the peer. Each
 *      entry was written by `current`, which is trusted, so it is believed:
 *      - a valid address that is not trusted is the client (UNTRUSTED_HOP);
 *      - a valid trusted address becomes `current` and the walk goes on;
 *      - running out of entries makes the leftmost entry, the last
 *        `current`, the client (ALL_TRUSTED); the entries are never skipped
 *        to take something further left;
 *      - an entry that is not an address (garbage, "unknown", an obfuscated
 *        "_name", a Forwarded element without "for=") stops the walk, and
 *        `current`, the nearest trusted proxy that reported it, is the
 *        client (INVALID / UNKNOWN / OBFUSCATED). Everything left of such an
 *        entry may have been written by the client, and the entry itself
 *        names no address, so `current` is the last address anybody we
 *        trust has vouched for. Skipping the entry and walking on would
 *        let a client choose its own address; giving up would lose the
 *        only reliable fact we have.
 *
 * Empty list elements ("a,,b", empty header lines) are ignored, as RFC 9110
 * 5.6.1 asks of recipients. The walk reads each byte of the chosen header
 * lines at most twice, allocates nothing and uses bounded stack, so any
 * number of entries costs linear time.
 *
 * Configure only headers that your trusted proxies set or overwrite: a
 * header a trusted proxy passes through unchanged is client-controlled.
 *
 * X-Forwarded-For entries: an IPv4 address with an optional port, a bare
 * IPv6 address, or a bracketed IPv6 address with an optional port ("[::1]",
 * "[::1]:443"), surrounded by optional whitespace; zone ids are dropped.
 * Forwarded elements: ";"-separated pairs with case-insensitive names and
 * token or quoted-string values (quoted pairs decoded); each name at most
 * once per element. The "for" node is an IPv4 address, a bracketed IPv6
 * address, "unknown" or an obfuscated "_name", each with an optional
 * ":port" or obfuscated ":_port". Optional whitespace around ";" and ","
 * is tolerated, and so are ':' '[' ']' in an unquoted value (some proxies
 * omit the quotes RFC 7239 requires there).
 */
#ifndef ANONPROXY_CLIENTADDR_H
#define ANONPROXY_CLIENTADDR_H

#include <stdbool.h>

#include "anonproxy/clientaddr-t.h"
#include "anonproxy/http-t.h"

/* Make `cfg` read X-Forwarded-For only, trusting the proxies in `trusted`
 * (borrowed: it must stay alive and unchanged while `cfg` is used). */
void ap_clientaddr_config_init(struct ap_clientaddr_config *cfg, const struct ap_cidr_list *trusted);

/* Set which headers are read and in which order from a list of 1..2 names
 * separated by commas and/or whitespace, case-insensitive:
 * "x-forwarded-for", "forwarded", "forwarded, x-forwarded-for". Returns 0,
 * or -EINVAL (unknown name, a name twice, empty list) leaving `cfg`
 * unchanged. */
int ap_clientaddr_config_set_headers(struct ap_clientaddr_config *cfg, const char *spec, size_t len);

/* Decide the client address of one request (see the rule above) from the
 * connection `peer` and the request's `nheaders` headers. Fills every field
 * of `out`. Pure: no allocation, no writes except to `out`, safe from any
 * number of threads. Returns 0; the only failure, a NULL argument or a
 * peer without family, is -EINVAL. */
int ap_clientaddr_resolve(const struct ap_clientaddr_config *cfg, const struct ap_ip *peer,
                          const struct ap_header *headers, size_t nheaders,
                          struct ap_clientaddr_result *out);

/* True for the names of headers that carry client addresses and so must
 * not reach the backend unchanged: X-Forwarded-For, X-Real-IP, Forwarded,
 * True-Client-IP, CF-Connecting-IP, Fastly-Client-IP, X-Client-IP,
 * X-Cluster-Client-IP (case-insensitive, exact length). */
bool ap_clientaddr_is_address_header(const char *name, size_t len);

/* The names ap_clientaddr_is_address_header knows, lower-case, one by one:
 * the i-th (a static string), or NULL past the last. */
const char *ap_clientaddr_address_header(size_t i);

/* Static name of a stop reason, for logs ("untrusted-hop", ...). */
const char *ap_clientaddr_stop_name(enum ap_clientaddr_stop stop);

#endif

/* IP addresses and CIDR prefixes: strict parsing, RFC 5952 formatting,
 * prefix matching and truncation. Pure functions: no allocation except in
 * ap_cidr_list_add/ap_cidr_list_parse (configuration time), no I/O. */
#ifndef ANONPROXY_IP_H
#define ANONPROXY_IP_H

#include <stdbool.h>
#include <sys/socket.h>

#include "anonproxy/ip-t.h"

/* Parse a bare address of `len` bytes at `s` (no NUL needed): a strict
 * IPv4 dotted quad (exactly four decimal parts 0..255, no leading zeros, so
 * "010.1.1.1" and "1.2.3" are rejected) or any RFC 4291 IPv6 text form
 * ("::", "2001:db8::1", "::ffff:192.0.2.1", upper or lower case hex). An
 * IPv6 zone id ("fe80::1%eth0") is accepted and dropped; it must be 1..64
 * characters of ALPHA / DIGIT / "-" / "." / "_" / "~" / "%". No brackets,
 * no port, no surrounding whitespace. IPv4-mapped addresses stay family 6.
 * Returns 0, or -EINVAL with *out zeroed. */
int ap_ip_parse(struct ap_ip *out, const char *s, size_t len);

/* Parse an address with an optional port: "192.0.2.1", "192.0.2.1:8080",
 * "[2001:db8::1]", "[2001:db8::1]:443", and a bare IPv6 address without
 * brackets ("2001:db8::1", no port possible then). A port is 1..5 digits
 * with a value of 0..65535. *port is set to the port, or -1 when none was
 * given. Zone ids are accepted and dropped as in ap_ip_parse. Returns 0, or
 * -EINVAL with *out zeroed and *port -1. */
int ap_ip_parse_hostport(struct ap_ip *out, int *port, const char *s, size_t len);

/* Write the canonical text of `ip` (RFC 5952 for IPv6: lower case, no
 * leading zeros, the longest run of two or more zero groups shortened to
 * "::" (the first on a tie), IPv4-mapped addresses as "::ffff:a.b.c.d")
 * into `buf` of `size` bytes, NUL-terminated. AP_IP_STRLEN always
 * suffices. Returns the length written without the NUL, -ENOSPC when `buf`
 * is too small (buf then holds "" if size > 0), -EINVAL for a family that
 * is neither 4 nor 6. */
int ap_ip_format(const struct ap_ip *ip, char *buf, size_t size);

/* Fill `out` from a socket address of `salen` bytes (AF_INET or
 * AF_INET6; the scope id is dropped). When `port` is not NULL it receives
 * the port in host order. IPv4-mapped IPv6 peers, which dual-stack sockets
 * report, stay family 6 (call ap_ip_unmap). Returns 0, -EAFNOSUPPORT for
 * another family, -EINVAL when `salen` is too short. */
int ap_ip_from_sockaddr(struct ap_ip *out, int *port, const struct sockaddr *sa, size_t salen);

/* True when `ip` is an IPv4-mapped IPv6 address (::ffff:0:0/96). */
bool ap_ip_is_v4_mapped(const struct ap_ip *ip);

/* Turn an IPv4-mapped IPv6 address into the IPv4 address it carries, in
 * place; any other address is left alone. */
void ap_ip_unmap(struct ap_ip *ip);

/* True when both addresses have the same family and bytes (no unmapping:
 * 192.0.2.1 and ::ffff:192.0.2.1 differ). */
bool ap_ip_is_equal(const struct ap_ip *a, const struct ap_ip *b);

/* Clear every bit after the prefix: `v4_prefix` (0..32) for IPv4 and
 * IPv4-mapped addresses, which are unmapped first, `v6_prefix` (0..128) for
 * other IPv6 addresses. `out` may equal `in`. Returns 0, or -EINVAL for a
 * prefix out of range or a bad family (then *out is not written). */
int ap_ip_truncate(struct ap_ip *out, const struct ap_ip *in, unsigned v4_prefix, unsigned v6_prefix);

/* Parse "address/prefix" or a bare address (a host route: /32 or /128).
 * The address is strict as in ap_ip_parse but without a zone id; the
 * prefix is 1..3 digits without leading zeros and at most 32 or 128. Bits
 * after the prefix must be zero ("10.0.0.1/8" is rejected: it is almost
 * always a typo, and silently widening a trusted range is dangerous). An
 * IPv4-mapped prefix of /96 or longer becomes the IPv4 prefix.
 * Returns 0, or -EINVAL with *out zeroed. */
int ap_cidr_parse(struct ap_cidr *out, const char *s, size_t len);

/* Write "net/prefix" into `buf` (AP_CIDR_STRLEN suffices). Returns the
 * length without the NUL, or -ENOSPC / -EINVAL as ap_ip_format. */
int ap_cidr_format(const struct ap_cidr *c, char *buf, size_t size);

/* True when `ip` lies inside `c`. IPv4-mapped addresses are matched as the
 * IPv4 address they carry; an IPv4 address also matches an IPv6 prefix
 * that covers its mapped form (so ::/0 contains every address). */
bool ap_cidr_contains(const struct ap_cidr *c, const struct ap_ip *ip);

/* Make `l` an empty list. Nothing is allocated yet. */
void ap_cidr_list_init(struct ap_cidr_list *l);

/* Append a copy of `c` (which must be normalised as ap_cidr_parse leaves
 * it). Returns 0, or -ENOMEM with the list unchanged. */
int ap_cidr_list_add(struct ap_cidr_list *l, const struct ap_cidr *c);

/* Append every prefix of a list separated by commas and/or whitespace
 * ("10.0.0.0/8, 192.168.0.0/16 ::1"). On error nothing is appended and,
 * when `err_off` is not NULL, it receives the byte offset of the first bad
 * item. Returns 0, -EINVAL for a bad item, -ENOMEM. */
int ap_cidr_list_parse(struct ap_cidr_list *l, const char *s, size_t len, size_t *err_off);

/* True when some prefix of `l` contains `ip` (see ap_cidr_contains). Does
 * not allocate or write; safe from any number of threads once the list is
 * no longer modified. */
bool ap_cidr_list_contains(const struct ap_cidr_list *l, const struct ap_ip *ip);

/* Release the list's memory and leave it empty (it may be reused). */
void ap_cidr_list_free(struct ap_cidr_list *l);

#endif

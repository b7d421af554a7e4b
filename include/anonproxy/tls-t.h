/* Types of the TLS module (proxy/tls.c): handshake failure reasons and the
 * counters a listener keeps. The contexts and connections are opaque. */
#ifndef ANONPROXY_TLS_T_H
#define ANONPROXY_TLS_T_H

#include <stddef.h>
#include <stdint.h>

/* Why a handshake failed. Counted per listener (and per upstream for
 * client handshakes); each failure is logged at debug level only, so a
 * scanner cannot flood the log. */
enum ap_tls_failure {
    AP_TLS_FAIL_PROTOCOL = 0, /* no common protocol version (a TLS 1.0/1.1 client) */
    AP_TLS_FAIL_CIPHER,       /* no shared cipher suite, group or signature algorithm */
    AP_TLS_FAIL_NOT_TLS,      /* bytes that are not TLS (plain HTTP on a TLS port) */
    AP_TLS_FAIL_ALPN,         /* the client offered ALPN without http/1.1 */
    AP_TLS_FAIL_ALERT,        /* the peer sent a fatal alert (e.g. unknown CA) */
    AP_TLS_FAIL_VERIFY,       /* the upstream's certificate failed verification */
    AP_TLS_FAIL_TIMEOUT,      /* handshake_timeout passed */
    AP_TLS_FAIL_EOF,          /* the peer closed during the handshake */
    AP_TLS_FAIL_OTHER,
    AP_TLS_FAIL_NREASONS,
};

/* Counters of one TLS listener or one upstream, since the process started
 * (they survive ap_tls_reload). */
struct ap_tls_stats {
    uint64_t handshakes;                     /* completed handshakes */
    uint64_t resumed;                        /* of which resumed sessions */
    uint64_t failures[AP_TLS_FAIL_NREASONS]; /* failed handshakes by reason */
};

/* Where a connection's ciphertext goes: called with the bytes to send, it
 * must write or copy all of them before it returns. Returns 0 or a
 * negative libuv error, which the TLS call that produced the bytes then
 * returns. */
struct ap_tls_sender {
    int (*send)(void *ctx, const char *p, size_t n);
    void *ctx;
};

/* Process-wide TLS state: server contexts of every TLS listener, client
 * contexts of every upstream with https servers, ticket keys. */
struct ap_tls;

/* One TLS connection, client or server side. */
struct ap_tls_conn;

#endif

/* TLS with OpenSSL 3, for the libuv network layer.
 *
 * libuv keeps doing every socket read and write. A connection's SSL object
 * reads ciphertext from a pointer the caller hands it (ap_tls_feed: the
 * worker's read buffer, nothing copied) and writes ciphertext through the
 * caller's send function, which must take or copy the bytes at once. The
 * plaintext and ciphertext scratch buffers belong to the calling thread, so
 * an idle connection holds no buffer at all (SSL_MODE_RELEASE_BUFFERS, and
 * ap_tls_idle frees what OpenSSL still holds).
 *
 * Threads. struct ap_tls is shared by every worker: contexts, the TLS 1.2
 * session cache and the ticket keys are process-wide, so a session issued
 * by one worker resumes on any other. A struct ap_tls_conn belongs to the
 * worker that created it.
 */
#ifndef ANONPROXY_TLS_H
#define ANONPROXY_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "anonproxy/config-t.h"
#include "anonproxy/tls-t.h"

/* ap_tls_read returns this when the peer sent close_notify. */
#define AP_TLS_EOF (-4095)

/* Builds the TLS state of `cfg`: a server context set for every listener
 * with `tls:` and a client context for every upstream with an https
 * server. Reads every certificate, key and CA file. On success returns 0
 * and *out (free with ap_tls_free); *errors is NULL. On failure returns
 * -EINVAL (or -ENOMEM) and sets *errors to a malloc'd text, one line per
 * problem, "CONFIG:LINE:COL: KEY.PATH: FILE: message" (the caller frees
 * it). Expired or soon-expiring certificates are logged as warnings, not
 * errors. Blocking: call it before the workers start or off their loops.
 * The state keeps no pointer into cfg. */
int ap_tls_new(const struct ap_config *cfg, struct ap_tls **out, char **errors);

/* Rebuilds every context from `cfg` and swaps them in when all of them
 * built; on any error nothing changes and *errors is set as above. New
 * handshakes use the new certificates; open connections keep theirs.
 * Ticket keys, the session cache of a listener that keeps its address and
 * the counters survive. Thread-safe against workers accepting and
 * connecting. Returns 0 or a negative errno. */
int ap_tls_reload(struct ap_tls *t, const struct ap_config *cfg, char **errors);

/* Frees the state; every connection must have been freed before. NULL is
 * accepted. */
void ap_tls_free(struct ap_tls *t);

/* Logs, at info level, the counters of each listener and upstream that
 * saw a handshake. */
void ap_tls_log_stats(struct ap_tls *t);

/* Copies the counters of the TLS listener at `address` (as written in the
 * config). Returns 0, or -ENOENT for an unknown or plain listener. */
int ap_tls_listener_stats(struct ap_tls *t, const char *address, struct ap_tls_stats *out);

/* A server-side connection accepted on listener `l` (which has tls set);
 * `worker` only names the worker in debug logs. Returns NULL when out of
 * memory or when `l` has no TLS context. The handshake starts with the
 * first ap_tls_read. */
struct ap_tls_conn *ap_tls_accept(struct ap_tls *t, const struct ap_config_listener *l,
                                  unsigned worker, struct ap_tls_sender sender);

/* A client-side connection to server `server` (an index into up->servers,
 * an https server). Sends SNI and checks the certificate as up->tls says,
 * and offers the last session of that server for resumption. Returns NULL
 * when out of memory or when `up` has no TLS context. The handshake starts
 * with the first ap_tls_read (call it once with nothing fed to send the
 * ClientHello). */
struct ap_tls_conn *ap_tls_connect(struct ap_tls *t, const struct ap_config_upstream *up,
                                   size_t server, struct ap_tls_sender sender);

/* Hands `n` bytes just read from the socket to the connection. The bytes
 * are not copied: they must stay valid until ap_tls_read returned 0 or an
 * error, which happens only once all of them were consumed. */
void ap_tls_feed(struct ap_tls_conn *c, const char *p, size_t n);

/* Runs the handshake until it completes, then decrypts. Returns the
 * number of plaintext bytes (> 0) stored at *out, valid until the next
 * TLS call on this thread; 0 when every fed byte is consumed and more are
 * needed; AP_TLS_EOF after the peer's close_notify; or another negative
 * errno when the connection failed (a handshake failure is counted and
 * logged at debug level). Call it again until it returns <= 0. Any bytes
 * the handshake produces go out through the sender before it returns. */
ssize_t ap_tls_read(struct ap_tls_conn *c, char **out);

/* Encrypts the buffers (small ones coalesced into full records) and sends
 * the ciphertext through the sender. Returns 0, -ENOTCONN before the
 * handshake completed, or a negative error. */
int ap_tls_writev(struct ap_tls_conn *c, const uv_buf_t *bufs, unsigned nbufs);

/* Sends close_notify once, when the handshake completed. */
void ap_tls_shutdown(struct ap_tls_conn *c);

/* The connection is idle: frees OpenSSL's read and write buffers when they
 * hold nothing. */
void ap_tls_idle(struct ap_tls_conn *c);

/* The handshake timed out; the caller closes the connection next. */
void ap_tls_note_timeout(struct ap_tls_conn *c);

int ap_tls_is_established(const struct ap_tls_conn *c);
int ap_tls_is_resumed(const struct ap_tls_conn *c);

/* Why the connection failed, for error messages ("certificate verify
 * failed: hostname mismatch"); a static string, "" when it did not. */
/* The negotiated protocol version ("TLSv1.3", "TLSv1.2"), a static
 * string; "TLS" before the handshake completed. */
const char *ap_tls_version(const struct ap_tls_conn *c);

const char *ap_tls_strerror(const struct ap_tls_conn *c);

/* Frees the connection. A connection freed before its handshake completed
 * counts as a failure (eof, or timeout after ap_tls_note_timeout). NULL is
 * accepted. */
void ap_tls_conn_free(struct ap_tls_conn *c);

/* Testing hook: replaces the millisecond clock of ticket key rotation
 * (NULL restores the real one). Not thread-safe; call before any TLS use. */
void ap_tls__set_clock(uint64_t (*now_ms)(void));

#endif

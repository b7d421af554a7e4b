/* The access log (proxy/accesslog.c): one record per request, built on the
 * worker thread only from data the engine already anonymised (the
 * truncated client address or its pseudonym, the path without its query,
 * a reduced User-Agent, the rules that fired), copied into the worker's
 * queue towards the logger thread. Nothing here blocks or does I/O; when
 * that queue is full the record is dropped and counted. The record's
 * fields and formats are in anonproxy/logfmt-t.h and docs/logging.md. */
#ifndef ANONPROXY_ACCESSLOG_H
#define ANONPROXY_ACCESSLOG_H

struct ap_exchange;
struct ap_conn;

/* Log the exchange (call once, when it completes or fails; conn.c does it
 * in ap_exchange_free). Worker thread of the exchange. Does nothing when
 * no access log is configured. */
void ap_accesslog_exchange_done(struct ap_exchange *ex);

/* Log a request refused before it had an exchange (a head that could not
 * be read, too many connections): only the status and the truncated
 * address of the peer. Worker thread of the connection. */
void ap_accesslog_conn_error(struct ap_conn *c, int status);

/* Should the engine record its audit for the request? True when an access
 * log is on: the record lists the rules that fired. Any thread. */
int ap_accesslog_wants_audit(void);

/* Reopen every file sink (SIGUSR1 after logrotate). Async-signal-safe. */
void ap_accesslog_reopen(void);

#endif

/* Log relay (proxy/logrelay.c): application logs sent to a route of type
 * logs, as NDJSON over HTTP or as syslog messages to a syslog_listen
 * address, go through the route's privacy policy (anonproxy/logscrub.h)
 * and on to the route's log sinks. */
#ifndef ANONPROXY_LOGRELAY_H
#define ANONPROXY_LOGRELAY_H

#include <stddef.h>

#include "anonproxy/config-t.h"

struct ap_exchange;
struct ap_pseudo_keyring;

/* Anonymise an NDJSON batch (one JSON value per line; blank lines and a
 * trailing CR are ignored) under `route` and queue its records for the
 * route's sinks, all or nothing. Worker thread `worker`, with that
 * worker's keyring. Returns the HTTP status to answer: 202 (every record
 * queued; *accepted says how many), 400 (empty, or a line that is not
 * JSON: nothing queued; `why` names the line), 413 (larger than a worker
 * queue entry once anonymised), 503 (the logger is not running, none of
 * the route's sinks is, or the worker's queue is full: try again). `why`
 * receives a short reason for non-2xx answers. */
int ap_logrelay_ndjson(unsigned worker, struct ap_pseudo_keyring *kr, const struct ap_config_route *route,
                       const char *body, size_t len, size_t *accepted, char *why, size_t whylen);

/* Network glue for conn.c: call it for an exchange on a route of type logs
 * instead of ap_upstream_start / ap_upstream_pump (each time more of the
 * body arrived). It waits for the whole body, decodes a gzip or deflate
 * Content-Encoding, calls ap_logrelay_ndjson and answers the client (202
 * with {"accepted":N}, or the error). Methods other than POST get 405. */
void ap_logrelay_exchange(struct ap_exchange *ex);

#endif

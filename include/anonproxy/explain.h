#ifndef ANONPROXY_EXPLAIN_H
#define ANONPROXY_EXPLAIN_H

#include <stdio.h>

#include "anonproxy/config-t.h"

/* Read one HTTP request (head and body; bare-LF line ends accepted) from
 * `in`, choose its route (`route_name`, or by matching as the proxy does),
 * run the engine with `peer_text` as the connection's address, and print to
 * `out` the request as the backend would receive it followed by every
 * decision (kind, name, action, rule). Problems go to `errout`. Returns the
 * exit code: 0, or 1 when the request would be refused or cannot be read. */
int ap_explain_run(const struct ap_config *cfg, const char *route_name, const char *peer_text,
                   FILE *in, FILE *out, FILE *errout);

#endif

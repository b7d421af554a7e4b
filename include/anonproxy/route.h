#ifndef ANONPROXY_ROUTE_H
#define ANONPROXY_ROUTE_H

#include "anonproxy/config-t.h"
#include "anonproxy/http-t.h"

/* Return the first route of `cfg` whose host, path prefix and method match,
 * or NULL (the caller answers 404). `host` is the Host header value and may
 * carry a port, which is ignored; names compare case-insensitively. The
 * returned pointer lives as long as `cfg`. */
const struct ap_config_route *ap_route_match(const struct ap_config *cfg, struct ap_slice host,
                                             struct ap_slice method, struct ap_slice path);

/* True when `host` (no port) matches `pattern`: exact, "*" (any), or
 * "*.example.com" (any name below example.com, not example.com itself). */
int ap_route_host_matches(const char *pattern, struct ap_slice host);

#endif

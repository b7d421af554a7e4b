/* Route selection: host, path prefix, method; first match wins. The upstream
 * comes from the route, never from the request, so the proxy cannot be used
 * as an open proxy. */
#include "anonproxy/common.h"

#include "anonproxy/head.h"
#include "anonproxy/route.h"

static struct ap_slice strip_port(struct ap_slice h)
{
    if (h.len == 0)
        return h;
    if (h.p[0] == '[') {
        const char *rb = memchr(h.p, ']', h.len);
        if (rb != NULL)
            h.len = (size_t)(rb - h.p) + 1;
        return h;
    }
    const char *colon = memchr(h.p, ':', h.len);
    if (colon != NULL)
        h.len = (size_t)(colon - h.p);
    /* A fully qualified name may end with a dot; it names the same host. */
    if (h.len > 1 && h.p[h.len - 1] == '.')
        h.len--;
    return h;
}

int ap_route_host_matches(const char *pattern, struct ap_slice host)
{
    if (pattern[0] == '*' && pattern[1] == '\0')
        return 1;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t sl = strlen(pattern + 1); /* ".example.com" */
        if (host.len <= sl)
            return 0;
        return ap_slice_eq_ci((struct ap_slice){host.p + host.len - sl, sl}, pattern + 1);
    }
    return ap_slice_eq_ci(host, pattern);
}

const struct ap_config_route *ap_route_match(const struct ap_config *cfg, struct ap_slice host,
                                             struct ap_slice method, struct ap_slice path)
{
    struct ap_slice h = strip_port(host);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct ap_config_route *r = &cfg->routes[i];
        if (r->nhosts > 0) {
            size_t k = 0;
            while (k < r->nhosts && !ap_route_host_matches(r->hosts[k], h))
                k++;
            if (k == r->nhosts)
                continue;
        }
        if (r->nmethods > 0) {
            size_t k = 0;
            while (k < r->nmethods &&
                   !(strlen(r->methods[k]) == method.len &&
                     memcmp(r->methods[k], method.p, method.len) == 0))
                k++;
            if (k == r->nmethods)
                continue;
        }
        const char *prefix = r->path_prefix ? r->path_prefix : "/";
        size_t pl = strlen(prefix);
        if (path.len < pl || memcmp(path.p, prefix, pl) != 0) {
            /* "*" (OPTIONS) only matches a route for "/". */
            if (!(path.len == 1 && path.p[0] == '*' && pl == 1))
                continue;
        }
        return r;
    }
    return NULL;
}

/* Helpers shared by the geo unit tests: fixture paths and address
 * parsing. GEO_FIXTURE_DIR is the build directory where meson built the
 * fixture databases from the CSVs of geo/fixtures. */
#ifndef GEO_TEST_H
#define GEO_TEST_H

#include "anonproxy/common.h"

#include "anonproxy/ip.h"

#ifndef GEO_FIXTURE_DIR
#error GEO_FIXTURE_DIR must name the directory of the fixture databases
#endif

/* The path of fixture `name`; each call returns a new static slot, enough
 * for the few paths a test holds at once. */
static inline const char *fixture(const char *name)
{
    static char paths[8][512];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", GEO_FIXTURE_DIR, name);
    return p;
}

static inline struct ap_ip IP(const char *s)
{
    struct ap_ip ip;
    int rc = ap_ip_parse(&ip, s, strlen(s));
    AP_BUG_ON(rc != 0);
    return ip;
}

#endif

/* geolookup: look addresses up the way the proxy does (same schema, same
 * field paths, same coarsening; the population floor is off because one
 * command-line run sees no visitors) and print one line per address.
 * Used by the integration test that compares our answers with
 * mmdblookup's, and handy to check a database before deploying it.
 *
 *   geolookup -d FILE [-6 FILE] [-s SCHEMA] [-a ASNFILE] [-p LEVEL]
 *             [-c COORDS] [-t] [-f NAME=PATH]... [-j] [ADDRESS...]
 *
 * Without addresses, reads one per line from standard input. Output, one
 * line per address, tab-separated:
 *   address status level continent country region city timezone
 * where status is "ok", "notfound", "reserved", "error" or "badaddr" and
 * absent values are "-". With -j, the JSON object instead of the fields. */
#include "anonproxy/common.h"

#include <errno.h>
#include <getopt.h>
#include <time.h>

#include "anonproxy/geo.h"
#include "anonproxy/ip.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: geolookup -d FILE [-6 FILE] [-s geoip2|ip-location-db] [-a ASNFILE]\n"
               "                 [-p none|continent|country|region|city] [-c drop|round:N|grid:KM]\n"
               "                 [-t] [-f NAME=PATH]... [-j] [ADDRESS...]\n");
}

static const char *or_dash(const char *s)
{
    return s[0] != '\0' ? s : "-";
}

static const char *status_name(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case -ENOENT:
        return "notfound";
    case -EADDRNOTAVAIL:
        return "reserved";
    case -EINVAL:
        return "badaddr";
    default:
        return "error";
    }
}

static int one(struct ap_geo_worker *w, const char *text, bool json)
{
    struct ap_ip ip;
    struct ap_geo_result r;
    int rc = ap_ip_parse(&ip, text, strlen(text));
    if (rc == 0)
        rc = ap_geo_lookup(w, &ip, NULL, 0, (int64_t)time(NULL), &r);
    else
        memset(&r, 0, sizeof(r));
    if (json) {
        char buf[AP_GEO_JSON_MAX];
        if (ap_geo_format_json(&r, buf, sizeof(buf)) < 0)
            return -ENOSPC;
        printf("%s\t%s\t%s\n", text, status_name(rc), buf);
    } else {
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", text, status_name(rc),
               ap_geo_format_level(r.level), or_dash(r.continent), or_dash(r.country),
               or_dash(r.region), or_dash(r.city), or_dash(r.timezone));
    }
    return rc == -EIO ? -EIO : 0;
}

int main(int argc, char **argv)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.precision = AP_GEO_LEVEL_CITY;
    o.min_visitors_region = 0;
    o.min_visitors_city = 0;
    bool json = false;
    static const struct option longopts[] = {
        {"database", required_argument, NULL, 'd'},
        {"database-v6", required_argument, NULL, '6'},
        {"schema", required_argument, NULL, 's'},
        {"asn-database", required_argument, NULL, 'a'},
        {"precision", required_argument, NULL, 'p'},
        {"coordinates", required_argument, NULL, 'c'},
        {"timezone", no_argument, NULL, 't'},
        {"field", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "d:6:s:a:p:c:tf:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.database = optarg;
            break;
        case '6':
            o.database_v6 = optarg;
            break;
        case 'a':
            o.asn_database = optarg;
            break;
        case 's':
            if (ap_geo_options_parse_schema(&o.schema, optarg) != 0) {
                fprintf(stderr, "geolookup: unknown schema \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'p':
            if (ap_geo_options_parse_level(&o.precision, optarg) != 0) {
                fprintf(stderr, "geolookup: unknown precision \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'c':
            if (ap_geo_options_parse_coords(&o, optarg) != 0) {
                fprintf(stderr, "geolookup: bad coordinates \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 't':
            o.timezone = true;
            break;
        case 'f': {
            char *eq = strchr(optarg, '=');
            enum ap_geo_field f;
            if (eq == NULL) {
                fprintf(stderr, "geolookup: -f wants NAME=PATH\n");
                return 2;
            }
            *eq = '\0';
            if (ap_geo_options_parse_field(&f, optarg) != 0) {
                fprintf(stderr, "geolookup: unknown field \"%s\"\n", optarg);
                return 2;
            }
            o.fields[f] = eq + 1;
            break;
        }
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o.database == NULL) {
        usage(stderr);
        return 2;
    }
    char err[AP_GEO_ERR_LEN];
    struct ap_geo *g;
    int rc = ap_geo_open(&g, &o, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "geolookup: %s\n", err);
        return 1;
    }
    struct ap_geo_worker *w;
    if (ap_geo_worker_new(&w, g) != 0) {
        fprintf(stderr, "geolookup: out of memory\n");
        ap_geo_close(g);
        return 1;
    }
    int status = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++)
            status |= one(w, argv[i], json) != 0;
    } else {
        char line[256];
        while (fgets(line, sizeof(line), stdin) != NULL) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] != '\0')
                status |= one(w, line, json) != 0;
        }
    }
    ap_geo_worker_free(w);
    ap_geo_close(g);
    return status;
}

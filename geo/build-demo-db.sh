#!/bin/sh
# Build the demo geolocation databases of the quickstart, so anonproxy
# geolocates out of the box without any download:
#
#   geo/build-demo-db.sh OUTDIR
#
# writes OUTDIR/demo-city.mmdb (GeoIP2 schema: the documentation ranges
# 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 split
# into several countries, regions and cities, plus 8.8.8.0/24, 1.1.1.0/24,
# 9.9.9.0/24 and their IPv6 resolvers) and OUTDIR/demo-asn.mmdb, from the
# CSVs of geo/fixtures. Made-up data for demos and tests only.
# Needs libmaxmind-db-writer-perl.
set -eu
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: geo/build-demo-db.sh OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
perl "$here/build-fixture-db" --schema geoip2 --out "$1/demo-city.mmdb" "$here/fixtures/geo.csv"
perl "$here/build-fixture-db" --schema asn --out "$1/demo-asn.mmdb" "$here/fixtures/asn.csv"
echo "build-demo-db: wrote $1/demo-city.mmdb and $1/demo-asn.mmdb" >&2

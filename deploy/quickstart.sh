#!/bin/sh
# Install, build and run anonproxy on deploy/quickstart.yaml (Debian 12, root).
# The proxy listens on 127.0.0.1:8080 and appends every forwarded request to
# var/events.ndjson: try  curl -d '{"e":1}' 'http://127.0.0.1:8080/collect?gclid=x'
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh
[ -d build-release ] || meson setup build-release --buildtype=release >/dev/null
ninja -C build-release proxy/anonproxy
# A demo geolocation database (made-up data for documentation ranges and a
# few public resolvers); see docs/geo.md for real ones.
[ -f var/geo/demo-city.mmdb ] || sh geo/build-demo-db.sh var/geo
exec ./build-release/proxy/anonproxy -c deploy/quickstart.yaml

#!/bin/sh
# Install what anonproxy needs on Debian 12, as root.
#   deploy/install-deps.sh          build and run dependencies
#   deploy/install-deps.sh --test   plus everything the test suite uses
set -eu
export DEBIAN_FRONTEND=noninteractive
build_pkgs="gcc pkg-config meson ninja-build libuv1-dev libssl-dev libmaxminddb-dev
  libyaml-dev zlib1g-dev node-llhttp libcmocka-dev ca-certificates libpcre2-dev"
test_pkgs="python3 python3-prometheus-client curl openssl clang
  mmdb-bin nginx libnginx-mod-http-geoip2 wrk testssl.sh rsyslog"
pkgs="$build_pkgs"
[ "${1:-}" = "--test" ] && pkgs="$pkgs $test_pkgs"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm fetches test data (tests/fetch-test-data.sh); any npm will do.
if [ "${1:-}" = "--test" ] && ! command -v npm >/dev/null 2>&1; then
  missing="$missing npm"
fi
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi

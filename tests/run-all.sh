#!/bin/sh
# Install everything, build with warnings as errors under ASan+UBSan, and run
# the whole test suite (unit, fuzz corpus replay, integration). Debian 12, root.
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh --test
if [ -f tests/fetch-test-data.sh ]; then sh tests/fetch-test-data.sh; fi
if [ ! -d build-ci ]; then
  meson setup build-ci --buildtype=debugoptimized -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C build-ci
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
set +e
# sh has no pipefail: keep meson's own exit status beside its output.
{ meson test -C build-ci --suite unit --suite fuzz-replay --suite integration \
    --print-errorlogs --num-processes 2; echo $? > build-ci/test-rc; } | tee build-ci/test-summary.txt
rc=$(cat build-ci/test-rc)
set -e
ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' build-ci/test-summary.txt | tail -n 1)
fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' build-ci/test-summary.txt | tail -n 1)
timeout=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' build-ci/test-summary.txt | tail -n 1)
ok=${ok:-0}
fail=$(( ${fail:-0} + ${timeout:-0} ))
# The short benchmark next to nginx (about 2 minutes, release build): it
# prints the table and fails only when anonproxy's throughput collapses
# under half of nginx's in the same run (bench/README.md). Counted as one
# more test. BENCH=0 skips it.
if [ "${BENCH:-1}" != 0 ]; then
  if sh bench/run.sh --short --gate; then
    ok=$((ok + 1))
  else
    fail=$((fail + 1))
    [ "$rc" = 0 ] && rc=1
  fi
fi
echo "$ok passed, $fail failed"
exit $rc

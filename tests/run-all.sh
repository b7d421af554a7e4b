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
echo "${ok:-0} passed, $(( ${fail:-0} + ${timeout:-0} )) failed"
exit $rc

#!/bin/sh
# Fetch the public data sets that some tests read into var/testdata/ (never
# committed). Idempotent: does nothing when every package is already there
# at its pinned version. Needs npm (Debian package npm).
#
# To add a data set, add one line "name@exact-version" to PACKAGES below,
# with a comment naming its license and the tests that read it. All packages
# are installed in one npm call, because a later "npm install --no-save"
# would remove the packages an earlier one installed.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
DEST="$REPO/var/testdata"

PACKAGES="
user-agents@2.1.198
crawler-user-agents@1.60.0
random-useragent@0.5.0
"
# user-agents (BSD-2-Clause): real browser User-Agents with their share of
#   traffic; tests/unit/engine/test_ua_corpus.c.
# crawler-user-agents (MIT): User-Agents of real crawlers; test_ua_corpus.c.
# random-useragent (MIT): older real User-Agents of many browsers;
#   test_ua_corpus.c.

if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-test-data: npm not found; install the Debian package npm" >&2
    exit 1
fi

missing=""
for spec in $PACKAGES; do
    name=${spec%@*}
    version=${spec##*@}
    pj="$DEST/node_modules/$name/package.json"
    have=""
    if [ -f "$pj" ]; then
        have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -n 1)
    fi
    if [ "$have" != "$version" ]; then
        missing="$missing $spec"
    fi
done

if [ -z "$missing" ]; then
    echo "fetch-test-data: up to date in $DEST"
    exit 0
fi

# npm removes what it was not asked for; ask again for whatever is already
# installed there (by hand or by an older list), at the version it has.
keep=""
for pj in "$DEST"/node_modules/*/package.json "$DEST"/node_modules/@*/*/package.json; do
    [ -f "$pj" ] || continue
    dir=${pj%/package.json}
    name=${dir#"$DEST"/node_modules/}
    case " $PACKAGES " in *"
$name@"*) continue ;; esac
    version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -n 1)
    [ -n "$version" ] && keep="$keep $name@$version"
done

echo "fetch-test-data: installing$missing"
mkdir -p "$DEST"
# shellcheck disable=SC2086 # one word per package is what we want
npm install --no-save --no-audit --no-fund --ignore-scripts --prefix "$DEST" $PACKAGES $keep
echo "fetch-test-data: done"

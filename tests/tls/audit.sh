#!/bin/sh
# TLS audit of an anonproxy listener with Debian's testssl.sh (package
# testssl.sh), and a summary: findings by severity, every finding above LOW,
# the protocols offered, and whether every cipher suite has forward secrecy.
#
#   tests/tls/audit.sh                 start a proxy (ANONPROXY, or the first
#                                      build*/proxy/anonproxy) with a listener
#                                      using its default TLS settings and
#                                      certificates made here, audit it, stop it
#   tests/tls/audit.sh HOST:PORT [NAME] audit a running listener (NAME: the
#                                      server name to send, default HOST)
#
# Exit status: 0 when nothing is above LOW, only TLS 1.2/1.3 are offered and
# every suite is forward-secret; 1 otherwise; 2 on a usage or setup error.
# The run takes one to three minutes. Traffic goes to HOST:PORT only
# (127.0.0.1 in the first form); testssl.sh is run without --phone-out.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
testssl=$(command -v testssl || command -v testssl.sh || true)
if [ -z "$testssl" ]; then
    echo "audit.sh: testssl.sh is not installed (apt-get install -y testssl.sh)" >&2
    exit 2
fi

work=$(mktemp -d /tmp/anonproxy-audit-XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ -n "${AUDIT_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

addca=""
if [ $# -ge 1 ]; then
    target=$1
    name=${2:-${target%:*}}
    ip=${target%:*}
else
    bin=${ANONPROXY:-}
    if [ -z "$bin" ]; then
        for d in "$root"/build*; do
            if [ -x "$d/proxy/anonproxy" ]; then bin="$d/proxy/anonproxy"; break; fi
        done
    fi
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        echo "audit.sh: set ANONPROXY to the anonproxy binary" >&2
        exit 2
    fi
    # A CA and two server certificates (RSA and ECDSA, same name) with a CRL
    # and an OCSP URI, as a public CA would issue them; made here, deleted
    # at exit.
    cd "$work"
    ossl() { openssl "$@" >/dev/null 2>&1 || { echo "audit.sh: openssl $1 failed" >&2; exit 2; }; }
    ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 400 \
        -subj "/CN=anonproxy audit CA" -addext "basicConstraints=critical,CA:true" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    cat > leaf.ext <<EXT
basicConstraints=critical,CA:false
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:audit.test
crlDistributionPoints=URI:http://crl.audit.invalid/ca.crl
authorityInfoAccess=OCSP;URI:http://ocsp.audit.invalid/
EXT
    for kind in rsa ec; do
        if [ $kind = rsa ]; then newkey="-newkey rsa:2048"; else
            newkey="-newkey ec -pkeyopt ec_paramgen_curve:P-256"; fi
        # shellcheck disable=SC2086
        ossl req $newkey -nodes -keyout $kind.key -out $kind.csr -subj "/CN=audit.test"
        ossl x509 -req -in $kind.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
            -days 365 -sha256 -extfile leaf.ext -out $kind.pem
    done
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > audit.yaml <<YAML
run_as_root: true
workers: 1
listen:
  - address: 127.0.0.1:$port
    tls:
      certificates:
        - {cert: $work/rsa.pem, key: $work/rsa.key}
        - {cert: $work/ec.pem, key: $work/ec.key}
upstreams: {sink: {file: $work/events.ndjson}}
routes: [{upstream: sink}]
YAML
    "$bin" -c audit.yaml >proxy.log 2>&1 &
    pid=$!
    i=0
    until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "audit.sh: the proxy did not start:" >&2
            cat proxy.log >&2
            exit 2
        fi
        sleep 0.1
    done
    target=audit.test:$port
    name=audit.test
    ip=127.0.0.1
    addca="--add-ca $work/ca.pem"
fi

version=$("$testssl" --version 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | awk '/testssl +[0-9]/ { print $1, $2; exit }')
echo "auditing $target (server name $name, address $ip) with ${version:-testssl.sh}"
tport=${target##*:}
# shellcheck disable=SC2086
"$testssl" --quiet --color 0 --warnings off --openssl-timeout 10 --ip "$ip" \
    --sneaky --jsonfile "$work/audit.json" $addca "$name:$tport" >"$work/audit.txt" 2>&1 || true
if [ ! -s "$work/audit.json" ]; then
    echo "audit.sh: testssl.sh produced no results:" >&2
    tail -30 "$work/audit.txt" >&2
    exit 2
fi

python3 - "$work/audit.json" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))
order = ["OK", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "DEBUG"]
count = {}
for it in items:
    count[it.get("severity", "?")] = count.get(it.get("severity", "?"), 0) + 1
print("findings by severity: " + ", ".join("%s=%d" % (s, count[s]) for s in order if s in count))
# testssl.sh also fetches "/" and rates the HTTP response headers. Those come
# from the backend (anonproxy forwards them, as a site decides its own HSTS
# and security headers): shown apart, not part of the TLS verdict.
HTTP_IDS = ("security_headers", "HSTS", "HPKP", "banner_", "cookie_", "HTTP_",
            "X-", "Cache-Control", "Pragma")
def is_http(it):
    return it["id"].startswith(HTTP_IDS)
above = [it for it in items if it.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")]
bad = [it for it in above if not is_http(it)]
for it in items:
    sev = it.get("severity")
    if sev in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN"):
        tag = "HTTP header" if is_http(it) else ("ABOVE LOW" if it in bad else sev.lower())
        print("  %-11s %-9s %-30s %s" % (tag, sev, it["id"], it["finding"]))
byid = {it["id"]: it for it in items}
on = [p for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")
      if byid.get(p, {}).get("finding", "").startswith("offered")]
print("protocols offered: " + (", ".join(on) or "none"))
proto_ok = bool(on) and set(on) <= {"TLS1_2", "TLS1_3"}
suites = set()
for it in items:
    if it["id"].startswith(("cipherorder_", "supportedciphers_")):
        suites.update(it["finding"].split())
fs_id = "FS" if "FS" in byid else "PFS"
fs_suites = set(byid.get(fs_id + "_ciphers", {}).get("finding", "").split())
nonfs = sorted(suites - fs_suites)
print("cipher suites offered: " + (" ".join(sorted(suites)) or "?"))
print("forward secrecy: %s; suites without it: %s"
      % (byid.get(fs_id, {}).get("finding", "?"), " ".join(nonfs) or "none"))
ok = not bad and proto_ok and bool(suites) and not nonfs
print("RESULT: %s" % ("PASS: no TLS finding above LOW, TLS 1.2/1.3 only, forward secrecy "
                      "for every suite" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY

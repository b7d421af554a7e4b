#!/usr/bin/env python3
"""Geolocation through the proxy: coarse headers from the client address
of a trusted forwarding header, forged inbound X-Geo-* removed, the
population floor, and a database replaced under load (zero failed
requests, no stale answer after the swap)."""

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Proxy, check, free_port, make_config, run_cases, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_db(csv, out):
    r = subprocess.run(["perl", os.path.join(ROOT, "geo", "build-fixture-db"), "--schema", "geoip2",
                        "--out", out, os.path.join(ROOT, "geo", "fixtures", csv)],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "build-fixture-db %s: %s" % (csv, r.stderr[-300:]))


def send(port, xff, extra=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        h = {"Host": "shop.example", "X-Forwarded-For": xff}
        h.update(extra or {})
        conn.request("GET", "/collect", headers=h)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def geo_config(port, backend, db, **geo):
    cfg = make_config(port, backend)
    cfg["trusted_proxies"] = ["127.0.0.1/32"]
    g = {"database": db, "precision": "city", "min_visitors": {"region": 0, "city": 0},
         "check_interval": "1s"}
    g.update(geo)
    cfg["geo"] = g
    return cfg


def last_geo(b):
    req = b.requests[-1]
    return {k: req.header(k) for k in ("X-Geo-Continent", "X-Geo-Country", "X-Geo-Region", "X-Geo-City")}


def t_headers_from_trusted_client_address():
    with tempfile.TemporaryDirectory() as d, Backend() as b:
        db = os.path.join(d, "city.mmdb")
        build_db("geo.csv", db)
        port, aport = free_port(), free_port()
        cfg = geo_config(port, b, db)
        cfg["admin"] = {"address": "127.0.0.1:%d" % aport}
        with Proxy(config=cfg, port=port):
            check(send(port, "192.0.2.10", {"X-Geo-City": "Forged", "X-Geo-Anything": "x"}) == 200,
                  "request")
            b.wait_requests(1, 3.0)
            g = last_geo(b)
            check(g == {"X-Geo-Continent": "EU", "X-Geo-Country": "FR", "X-Geo-Region": "IDF",
                        "X-Geo-City": "Paris"}, "geo headers %r" % g)
            req = b.requests[-1]
            check(req.header("X-Geo-Anything") is None, "forged X-Geo-* reached the backend")
            check(req.header("X-Forwarded-For") is None, "address header reached the backend")
            raw = b.raw()
            check(b"192.0.2.10" not in raw, "the client address reached the backend")
            # A private address is never looked up.
            check(send(port, "10.1.2.3") == 200, "private")
            b.wait_requests(2, 3.0)
            check(b.requests[-1].header("X-Geo-Country") is None, "private address located")
            import urllib.request
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % aport, timeout=5) as r:
                text = r.read().decode()
            check('anonproxy_geo_lookups_total{result="located"} 1' in text, "located count: %s" % text[-600:])
            check('anonproxy_geo_lookups_total{result="private"} 1' in text, "private count")
            check("anonproxy_geo_database_age_seconds" in text, "database age")


def t_population_floor():
    with tempfile.TemporaryDirectory() as d, Backend() as b:
        db = os.path.join(d, "city.mmdb")
        build_db("geo.csv", db)
        port = free_port()
        cfg = geo_config(port, b, db, precision="region", min_visitors={"region": 3, "city": 0})
        # Visitors are told apart by their truncated address: /64s here, so
        # that several of them fall in the fixture's one Paris /48.
        cfg["routes"][0]["privacy"] = {"truncate": {"ipv4": 24, "ipv6": 64}}
        with Proxy(config=cfg, port=port):
            seen = []
            for i in range(4):
                check(send(port, "2001:db8:0:%x::1" % (i + 1)) == 200, "request %d" % i)
                b.wait_requests(i + 1, 3.0)
                seen.append(last_geo(b))
            check(seen[0]["X-Geo-Country"] is not None, "country from the start: %r" % seen[0])
            check(seen[0]["X-Geo-Region"] is None, "region before the floor: %r" % seen[0])
            check(seen[3]["X-Geo-Region"] is not None, "region after 3 visitors: %r" % seen)


def t_database_replaced_under_load():
    with tempfile.TemporaryDirectory() as d, Backend() as b:
        db = os.path.join(d, "city.mmdb")
        build_db("geo.csv", db)
        newdb = os.path.join(d, "city-b.mmdb")
        build_db("geo-b.csv", newdb)
        port = free_port()
        with Proxy(config=geo_config(port, b, db, check_interval="1s"), port=port) as p:
            failures, done = [], threading.Event()

            def load():
                while not done.is_set():
                    try:
                        if send(port, "192.0.2.10") != 200:
                            failures.append("status")
                    except Exception as e:  # noqa
                        failures.append(repr(e))
            ts = [threading.Thread(target=load) for _ in range(3)]
            for t in ts:
                t.start()
            time.sleep(0.5)
            os.rename(newdb, db)  # as geoipupdate does
            ok = wait_for(lambda: "geo: database reloaded" in p.stderr_text(), 15.0)
            time.sleep(0.3)
            done.set()
            for t in ts:
                t.join(10)
            check(ok, "reload not logged: %s" % p.stderr_text()[-300:])
            check(not failures, "%d failed requests: %s" % (len(failures), failures[:3]))
            n = len(b.requests)
            check(send(port, "192.0.2.10") == 200, "after reload")
            b.wait_requests(n + 1, 3.0)
            g = last_geo(b)
            check(g["X-Geo-Country"] == "ES", "stale answer after the swap: %r" % g)
            # A corrupt replacement keeps the new database serving.
            with open(db + ".tmp", "wb") as f:
                f.write(b"not an mmdb" * 100)
            os.rename(db + ".tmp", db)
            check(wait_for(lambda: "reload failed" in p.stderr_text(), 15.0), "corrupt file not reported")
            check(send(port, "192.0.2.10") == 200, "serving after a corrupt file")
            b.wait_requests(n + 2, 3.0)
            check(last_geo(b)["X-Geo-Country"] == "ES", "answers after a corrupt file")


CASES = [
    ("geo_headers_from_trusted_client_address", t_headers_from_trusted_client_address),
    ("geo_population_floor", t_population_floor),
    ("geo_database_replaced_under_load", t_database_replaced_under_load, 60),
]

if __name__ == "__main__":
    run_cases(CASES)

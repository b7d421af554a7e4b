#!/usr/bin/env python3
"""Configuration reload (SIGHUP): under load with zero failed requests,
invalid configurations keep the old one serving, listeners added and
removed, requests in flight finish under the configuration they started
with."""

import http.client
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Proxy, check, free_port, make_config,  # noqa: E402
                     run_cases, to_yaml, wait_for)


class Load:
    """Client threads sending keep-alive GETs until stopped; every failure
    (exception, status other than 200, wrong body) is counted."""

    def __init__(self, port, threads=4, body=b"hello from backend"):
        self.port = port
        self.body = body
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]

    def run(self, i):
        conn = None
        n = 0
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                # Every tenth request on a new connection: both paths count.
                if n % 10 == 9:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/load/%d/%d" % (i, n), headers={"Host": "a.example"})
                r = conn.getresponse()
                data = r.read()
                n += 1
                if r.status != 200 or data != self.body:
                    with self.lock:
                        self.failures.append("status %d body %r" % (r.status, data[:60]))
                else:
                    with self.lock:
                        self.ok += 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: every failure counts
                with self.lock:
                    self.failures.append("%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def write_config(p, cfg):
    tmp = p.cfg_path + ".new"
    with open(tmp, "w") as f:
        f.write(to_yaml(cfg) + "\n")
    os.rename(tmp, p.cfg_path)


def reloads_seen(p):
    return p.stderr_text().count("configuration reloaded")


def t_hundred_reloads_under_load():
    with Backend() as b:
        port = free_port()
        variants = []
        for i in range(2):
            cfg = make_config(port, b, workers=2)
            # Each variant differs in a rule, so every reload changes something.
            cfg["routes"][0]["max_body_bytes"] = "%dk" % (512 + i)
            variants.append(cfg)
        with Proxy(config=variants[0], port=port) as p:
            with Load(port) as load:
                time.sleep(0.3)
                for i in range(100):
                    write_config(p, variants[i % 2])
                    p.signal(signal.SIGHUP)
                    time.sleep(0.03)
                check(wait_for(lambda: reloads_seen(p) >= 100, 30.0),
                      "%d reloads logged, want 100" % reloads_seen(p))
                time.sleep(0.3)
            check(not load.failures, "%d failed requests of %d, first: %s" % (
                len(load.failures), load.ok + len(load.failures), load.failures[:3]))
            check(load.ok > 200, "only %d requests completed" % load.ok)
            print("  100 reloads, %d requests, 0 failed" % load.ok, flush=True)


def t_invalid_config_keeps_serving():
    with Backend() as b:
        port = free_port()
        cfg = make_config(port, b)
        with Proxy(config=cfg, port=port) as p:
            with Load(port, threads=2) as load:
                time.sleep(0.2)
                with open(p.cfg_path, "w") as f:
                    f.write(to_yaml(cfg) + "\nroutes:\n  - name: x\n    upstrem: backend\n")
                p.signal(signal.SIGHUP)
                check(wait_for(lambda: "reload failed" in p.stderr_text(), 3.0), "no error logged")
                time.sleep(0.3)
            check(not load.failures, "failed requests: %s" % load.failures[:3])
            text = p.stderr_text()
            check("cfg.yaml:" in text and "reload failed" in text,
                  "error without FILE:LINE:COL: %s" % text[-400:])
            # A valid file again reloads fine.
            write_config(p, cfg)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: reloads_seen(p) >= 1, 3.0), "valid reload not applied")


def get_status(port, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path, headers={"Host": "a.example"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def t_listener_added_and_removed():
    with Backend(delay=0.0) as b, Backend(delay=1.0, body=b"slow") as slow:
        pa, pb = free_port(), free_port()
        cfg = make_config(pa, b)
        cfg["upstreams"]["slow"] = {"servers": [slow.url]}
        cfg["routes"].insert(0, {"name": "slow", "match": {"path": "/slow"}, "upstream": "slow"})
        with Proxy(config=cfg, port=pa) as p:
            check(get_status(pa) == 200, "first listener serves")
            cfg2 = dict(cfg)
            cfg2["listen"] = [{"address": "127.0.0.1:%d" % pa}, {"address": "127.0.0.1:%d" % pb}]
            write_config(p, cfg2)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: reloads_seen(p) >= 1, 3.0), "reload 1 not applied")
            check(wait_for(lambda: _accepts(pb), 3.0), "added listener does not accept")
            check(get_status(pb) == 200 and get_status(pa) == 200, "both listeners serve")
            # A request in flight on the listener about to go away.
            c = Client(pa, timeout=5.0)
            c.send(b"GET /slow HTTP/1.1\r\nHost: a.example\r\n\r\n")
            slow.wait_requests(1, 3.0)
            cfg3 = dict(cfg)
            cfg3["listen"] = [{"address": "127.0.0.1:%d" % pb}]
            write_config(p, cfg3)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: reloads_seen(p) >= 2, 3.0), "reload 2 not applied")
            check(wait_for(lambda: not _accepts(pa), 3.0), "removed listener still accepts")
            r = c.response()
            check(r is not None and r.status == 200 and r.body == b"slow",
                  "request in flight on the removed listener: %r" % r)
            c.close()
            check(get_status(pb) == 200, "remaining listener serves")


def _accepts(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        s.close()
        return True
    except OSError:
        return False


def t_reload_listener_in_use_fails_cleanly():
    with Backend() as b:
        pa = free_port()
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        pbusy = busy.getsockname()[1]
        cfg = make_config(pa, b)
        with Proxy(config=cfg, port=pa) as p:
            cfg2 = dict(cfg)
            cfg2["listen"] = [{"address": "127.0.0.1:%d" % pa}, {"address": "127.0.0.1:%d" % pbusy}]
            write_config(p, cfg2)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: "reload failed" in p.stderr_text(), 3.0),
                  "binding a port in use did not fail the reload")
            check(get_status(pa) == 200, "old config no longer serves")
        busy.close()


CASES = [
    ("hundred_reloads_under_load_zero_failures", t_hundred_reloads_under_load, 90),
    ("invalid_config_keeps_serving", t_invalid_config_keeps_serving),
    ("listener_added_and_removed_in_flight_finishes", t_listener_added_and_removed),
    ("reload_with_port_in_use_keeps_old_config", t_reload_listener_in_use_fails_cleanly),
]

if __name__ == "__main__":
    run_cases(CASES)

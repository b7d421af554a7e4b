#!/usr/bin/env python3
"""Admin listener (/metrics parsed by the real Prometheus text parser,
/healthz, /readyz while draining, /reload, /config, bearer token), systemd
notify protocol and watchdog, privilege drop."""

import http.client
import os
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Proxy, check, free_port, make_config, run_cases,  # noqa: E402
                     run_cli, to_yaml, wait_for)

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # reported as a failure by the cases that need it
    text_string_to_metric_families = None


def admin_get(port, path, method="GET", token=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace"), r
    finally:
        conn.close()


def proxy_get(port, path="/", host="a.example"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def admin_config(backend, admin_port, **extra):
    port = free_port()
    cfg = make_config(port, backend)
    cfg["admin"] = dict({"address": "127.0.0.1:%d" % admin_port}, **extra)
    cfg["routes"][0]["match"] = {"path": "/ok"}
    return port, cfg


def samples(text):
    check(text_string_to_metric_families is not None,
          "python3-prometheus-client is not installed (deploy/install-deps.sh --test)")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def t_metrics_match_traffic():
    with Backend() as b:
        aport = free_port()
        port, cfg = admin_config(b, aport)
        with Proxy(config=cfg, port=port):
            for _ in range(7):
                check(proxy_get(port, "/ok?gclid=x&uid=1") == 200, "request to /ok")
            for _ in range(3):
                check(proxy_get(port, "/nothing-here") == 404, "request without route")
            st, text, r = admin_get(aport, "/metrics")
            check(st == 200, "metrics status %d" % st)
            check(r.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"),
                  "content type %r" % r.getheader("Content-Type"))
            m = samples(text)
            ok = m.get(("anonproxy_requests_total", (("code", "2xx"), ("route", "main"))))
            nf = m.get(("anonproxy_requests_total", (("code", "4xx"), ("route", "-"))))
            check(ok == 7, "2xx on route main: %r" % ok)
            check(nf == 3, "4xx without route: %r" % nf)
            cnt = m.get(("anonproxy_request_duration_seconds_count", (("route", "main"),)))
            check(cnt == 7, "duration histogram count %r" % cnt)
            inf = m.get(("anonproxy_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "main"))))
            check(inf == 7, "+Inf bucket %r" % inf)
            up = m.get(("anonproxy_upstream_duration_seconds_count", (("route", "main"),)))
            check(up == 7, "upstream histogram count %r" % up)
            clicks = m.get(("anonproxy_rule_actions_total", (("action", "drop"), ("kind", "param"))), 0)
            pseud = m.get(("anonproxy_rule_actions_total", (("action", "pseudonymise"), ("kind", "param"))), 0)
            check(clicks >= 7 and pseud >= 7, "rule actions: drop %r pseudonymise %r" % (clicks, pseud))
            check(m.get(("anonproxy_config_generation", ())) == 1, "generation")
            check(("anonproxy_active_connections", ()) in m, "active connections gauge")


def t_health_ready_reload_config():
    with Backend() as b:
        aport = free_port()
        port, cfg = admin_config(b, aport)
        with Proxy(config=cfg, port=port) as p:
            check(admin_get(aport, "/healthz")[0] == 200, "healthz")
            check(admin_get(aport, "/readyz")[0] == 200, "readyz")
            st, body, _ = admin_get(aport, "/reload", method="POST")
            check(st == 200 and "generation 2" in body, "reload: %d %r" % (st, body))
            check(admin_get(aport, "/reload")[0] == 405, "GET /reload is not allowed")
            st, body, _ = admin_get(aport, "/config")
            check(st == 200 and "listen:" in body and "admin:" in body, "config: %r" % body[:200])
            with open(p.cfg_path, "a") as f:
                f.write("bogus_key: 1\n")
            st, body, _ = admin_get(aport, "/reload", method="POST")
            check(st == 422 and "failed" in body, "invalid reload: %d %r" % (st, body))
            check(proxy_get(port, "/ok") == 200, "still serving")
            st, text, _ = admin_get(aport, "/metrics")
            m = samples(text)
            check(m.get(("anonproxy_config_reloads_total", (("result", "failure"),))) == 1,
                  "failed reloads counted")
            check(m.get(("anonproxy_config_reloads_total", (("result", "success"),))) == 1,
                  "successful reloads counted")
            check(admin_get(aport, "/nope")[0] == 404, "unknown path")


def t_readyz_503_while_draining():
    with Backend(delay=1.5, body=b"slow") as b:
        aport = free_port()
        port, cfg = admin_config(b, aport)
        p = Proxy(config=cfg, port=port)
        try:
            result = {}
            t = threading.Thread(target=lambda: result.setdefault("st", proxy_get(port, "/ok")))
            t.start()
            b.wait_requests(1, 3.0)
            p.signal(signal.SIGTERM)
            check(wait_for(lambda: admin_get(aport, "/readyz")[0] == 503, 1.0),
                  "readyz not 503 while draining")
            check(admin_get(aport, "/healthz")[0] == 200, "healthz while draining")
            t.join(5)
            check(result.get("st") == 200, "request in flight finished: %r" % result)
            check(wait_for(lambda: p.proc.poll() is not None, 5.0), "process did not exit")
            check(p.proc.returncode == 0, "exit code %r" % p.proc.returncode)
        finally:
            p.stop()


def t_bearer_token():
    with Backend() as b, tempfile.TemporaryDirectory() as d:
        tok = "s3cret-token-0123456789"
        path = os.path.join(d, "token")
        with open(path, "w") as f:
            f.write(tok + "\n")
        aport = free_port()
        port, cfg = admin_config(b, aport, token_file=path)
        with Proxy(config=cfg, port=port):
            check(admin_get(aport, "/metrics")[0] == 401, "no token")
            check(admin_get(aport, "/metrics", token="wrong-token-0123456789")[0] == 401, "wrong token")
            check(admin_get(aport, "/metrics", token=tok)[0] == 200, "right token")


class NotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="anonproxy-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []

    def wait(self, needle, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.msgs:
                if needle in m:
                    return m
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return None

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def t_systemd_notify_and_watchdog():
    ns = NotifySocket()
    try:
        with Backend() as b:
            port = free_port()
            cfg = make_config(port, b)
            env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "200000"}
            p = Proxy(config=cfg, port=port, env=env)
            try:
                ready = ns.wait("READY=1")
                check(ready is not None and "STATUS=" in ready, "READY=1 with STATUS: %r" % ns.msgs)
                check(ns.wait("WATCHDOG=1", 2.0) is not None, "no WATCHDOG=1 within 2 s")
                ns.msgs.clear()
                p.signal(signal.SIGHUP)
                m = ns.wait("RELOADING=1")
                check(m is not None and "MONOTONIC_USEC=" in m, "RELOADING=1 with MONOTONIC_USEC: %r" % ns.msgs)
                m = ns.wait("READY=1")
                check(m is not None and "generation 2" in m, "READY=1 after reload: %r" % ns.msgs)
                p.signal(signal.SIGTERM)
                check(ns.wait("STOPPING=1") is not None, "STOPPING=1: %r" % ns.msgs)
            finally:
                p.stop()
    finally:
        ns.close()


def t_refuses_root_without_opt_in():
    if os.geteuid() != 0:
        return  # the rule is about root; nothing to check as another user
    with Backend() as b, tempfile.TemporaryDirectory() as d:
        cfg = make_config(free_port(), b)
        del cfg["run_as_root"]
        path = os.path.join(d, "cfg.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(cfg) + "\n")
        r = run_cli(["-c", path], timeout=10)
        check(r.returncode == 1 and "refusing to run as root" in r.stderr,
              "rc %r stderr %r" % (r.returncode, r.stderr[-300:]))


def t_drops_to_configured_user():
    if os.geteuid() != 0:
        return
    with Backend() as b:
        port = free_port()
        cfg = make_config(port, b)
        del cfg["run_as_root"]
        cfg["user"] = "nobody"
        cfg["group"] = "nogroup"
        with Proxy(config=cfg, port=port) as p:
            with open("/proc/%d/status" % p.pid) as f:
                status = f.read()
            uid = [l for l in status.splitlines() if l.startswith("Uid:")][0].split()
            check(all(int(x) == 65534 for x in uid[1:]), "uids %r" % uid)
            check(proxy_get(port, "/") == 200, "serves after dropping privileges")


CASES = [
    ("metrics_parsed_and_match_traffic", t_metrics_match_traffic),
    ("health_ready_reload_config_endpoints", t_health_ready_reload_config),
    ("readyz_503_while_draining", t_readyz_503_while_draining),
    ("admin_bearer_token", t_bearer_token),
    ("systemd_notify_ready_reloading_stopping_watchdog", t_systemd_notify_and_watchdog),
    ("refuses_root_without_opt_in", t_refuses_root_without_opt_in),
    ("drops_privileges_to_configured_user", t_drops_to_configured_user),
]

if __name__ == "__main__":
    run_cases(CASES)

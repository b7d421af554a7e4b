#!/usr/bin/env python3
"""The shipped configurations stay valid, and the quickstart does what the
README says: a POST lands in var/events.ndjson, anonymised."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proxy, check, free_port, run_cases, run_cli, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def demo_db(d):
    """The quickstart's demo database, built as the quickstart builds it."""
    out = os.path.join(d, "geo")
    r = subprocess.run(["sh", os.path.join(ROOT, "geo", "build-demo-db.sh"), out],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "build-demo-db.sh: %s" % r.stderr[-300:])
    return os.path.join(out, "demo-city.mmdb")


def validate(text, name):
    with tempfile.TemporaryDirectory() as d:
        text = text.replace("var/geo/demo-city.mmdb", demo_db(d))
        key = os.path.join(d, "key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write("t" * 32 + "\n")
        text = re.sub(r"/etc/anonproxy/(secret/)?pseudonym\.key", key, text)
        text = text.replace("/etc/anonproxy/secret/admin.token", tok)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        r = run_cli(["-t", "-c", path])
        check(r.returncode == 0, "%s: %s" % (name, r.stderr[-500:]))


def t_shipped_configs_valid():
    for name in ("quickstart.yaml", "anonproxy.yaml"):
        with open(os.path.join(ROOT, "deploy", name)) as f:
            validate(f.read(), name)
    with open(os.path.join(ROOT, "deploy", "kubernetes", "anonproxy.yaml")) as f:
        k8s = f.read()
    m = re.search(r"anonproxy\.yaml: \|\n((?:    .*\n)+)", k8s)
    check(m is not None, "no config in the Kubernetes ConfigMap")
    # The Service name resolves only inside a cluster.
    cfg = "\n".join(l[4:] for l in m.group(1).splitlines()) + "\n"
    validate(cfg.replace("analytics.default.svc.cluster.local", "127.0.0.1"), "k8s.yaml")


def t_quickstart_writes_anonymised_events():
    with open(os.path.join(ROOT, "deploy", "quickstart.yaml")) as f:
        text = f.read()
    port = free_port()
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    with tempfile.TemporaryDirectory() as d:
        events = os.path.join(d, "var", "events.ndjson")
        text = text.replace("var/events.ndjson", events)
        text = text.replace("var/geo/demo-city.mmdb", demo_db(d))
        with Proxy(config_text=text, port=port):
            req = urllib.request.Request(
                "http://127.0.0.1:%d/collect?e=pageview&gclid=CANARY1&uid=CANARY2&note=canary7%%40example.com" % port,
                data=b'{"event":"pageview","email":"canary6@example.com"}', method="POST",
                headers={"Content-Type": "application/json", "Cookie": "_ga=CANARY3",
                         "X-Forwarded-For": "198.51.100.77", "X-Device-Id": "CANARY4",
                         "X-Geo-City": "CANARY5"})
            with urllib.request.urlopen(req, timeout=5) as r:
                check(r.status == 204, "status %d" % r.status)
            check(wait_for(lambda: os.path.exists(events) and os.path.getsize(events) > 0, 3.0),
                  "no event written")
        with open(events) as f:
            lines = f.read().splitlines()
        check(len(lines) == 1, "%d lines" % len(lines))
        ev = json.loads(lines[0])
        check(ev["method"] == "POST" and ev["target"].startswith("/collect?e=pageview"), "event %r" % ev)
        body = json.loads(ev["body"])
        check(body["event"] == "pageview" and len(body["email"]) == 16, "body %r" % ev["body"])
        for canary in ("CANARY1", "CANARY2", "CANARY3", "CANARY4", "CANARY5", "198.51.100.77",
                       "canary6", "canary7"):
            check(canary not in lines[0], "%s reached the backend: %s" % (canary, lines[0]))


CASES = [
    ("shipped_configs_are_valid", t_shipped_configs_valid),
    ("quickstart_writes_anonymised_events", t_quickstart_writes_anonymised_events),
]

if __name__ == "__main__":
    run_cases(CASES)

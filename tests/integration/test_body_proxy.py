#!/usr/bin/env python3
"""Body rules through the proxy: JSON rewritten by path rules, a vendor
preset and the detectors, gzip bodies decoded and forwarded with the right
Content-Length and no Content-Encoding, invalid JSON refused before the
backend sees a byte, decompression bombs refused with 413."""

import gzip
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Proxy, check, free_port, make_config, run_cases  # noqa: E402

CANARIES = ["dev-CANARY-1", "user-CANARY-2", "canary3@example.com", "198.51.100.201"]


def post(port, path, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        h = {"Host": "shop.example", "Content-Type": "application/json"}
        h.update(headers or {})
        conn.request("POST", path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, data
    finally:
        conn.close()


def body_config(port, b, body):
    cfg = make_config(port, b)
    cfg["routes"][0]["body"] = body
    return cfg


def event():
    # Written by hand: the number must reach the backend as "3.50".
    return ('{"event": "pageview", "device_id": "%s", "properties": {"distinct_id": "%s", '
            '"email": "%s", "$ip": "%s", "$current_url": '
            '"https://shop.example/p?gclid=abc&utm_source=nl", "count": 3.50}}'
            % tuple(CANARIES)).encode()


def check_clean(raw, canaries=CANARIES):
    for c in canaries:
        check(c.encode() not in raw, "%s reached the backend: %r" % (c, raw[:400]))


def t_json_rules_and_detectors():
    with Backend() as b:
        port = free_port()
        cfg = body_config(port, b, {"rules": [{"path": "$.device_id", "action": "pseudonymise"},
                                              {"path": "$..distinct_id", "action": "drop"}]})
        with Proxy(config=cfg, port=port):
            st, _ = post(port, "/e", event())
            check(st == 200, "status %d" % st)
            b.wait_requests(1, 3.0)
            req = b.requests[-1]
            check_clean(b.raw())
            doc = json.loads(req.body)
            check(doc["event"] == "pageview", "untouched value: %r" % doc)
            check(len(doc["device_id"]) == 16, "pseudonymised device id: %r" % doc["device_id"])
            check("distinct_id" not in doc["properties"], "dropped key: %r" % doc)
            check(b'"count": 3.50' in req.body, "number not byte-exact: %r" % req.body)
            check(int(req.header("Content-Length")) == len(req.body), "Content-Length")


def t_gzip_body_decoded():
    with Backend() as b:
        port = free_port()
        cfg = body_config(port, b, {"rules": [{"path": "$.device_id", "action": "drop"}]})
        with Proxy(config=cfg, port=port):
            st, _ = post(port, "/e", gzip.compress(event()), {"Content-Encoding": "gzip"})
            check(st == 200, "status %d" % st)
            b.wait_requests(1, 3.0)
            req = b.requests[-1]
            check(req.header("Content-Encoding") is None, "Content-Encoding still sent")
            doc = json.loads(req.body)
            check("device_id" not in doc, "rule not applied: %r" % doc)
            # distinct_id has no rule here; the detectors take the e-mail and the IP.
            check_clean(b.raw(), [CANARIES[0], CANARIES[2], CANARIES[3]])
            check(int(req.header("Content-Length")) == len(req.body), "Content-Length")


def t_invalid_json_refused():
    with Backend() as b:
        port = free_port()
        cfg = body_config(port, b, {"rules": [{"path": "$.device_id", "action": "drop"}]})
        with Proxy(config=cfg, port=port):
            st, _ = post(port, "/e", b'{"device_id": "dev-CANARY-1", ')
            check(st == 400, "status %d" % st)
            check(b.total_bytes() == 0, "the backend received %d bytes" % b.total_bytes())


def t_decompression_bomb_413():
    with Backend() as b:
        port = free_port()
        cfg = body_config(port, b, {"rules": [{"path": "$.x", "action": "drop"}],
                                    "max_inflated": "1m", "max_ratio": 100})
        with Proxy(config=cfg, port=port):
            bomb = gzip.compress(b'{"x": "' + b"a" * (8 << 20) + b'"}')
            st, _ = post(port, "/e", bomb, {"Content-Encoding": "gzip"})
            check(st == 413, "status %d" % st)
            check(b.total_bytes() == 0, "the backend received %d bytes" % b.total_bytes())


CASES = [
    ("body_json_rules_and_detectors", t_json_rules_and_detectors),
    ("body_gzip_decoded_forwarded_plain", t_gzip_body_decoded),
    ("body_invalid_json_400_nothing_forwarded", t_invalid_json_refused),
    ("body_decompression_bomb_413", t_decompression_bomb_413),
]

if __name__ == "__main__":
    run_cases(CASES)

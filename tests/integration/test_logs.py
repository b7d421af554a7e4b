#!/usr/bin/env python3
"""Access logs, log sinks and the log relay (issue 8), with real receivers:
rsyslog (UDP, TCP with octet counting, unix socket) and an HTTP receiver of
ours. The canary case sends personal data in every place a request can
carry it and greps every sink for it, in every encoding."""

import base64
import binascii
import gzip
import html
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Proxy, TestPKI, check, connect, free_port, make_config,  # noqa: E402
                     run_cases, wait_for)
from logs_support import (HttpReceiver, KeepAliveClient, RSyslog, free_udp_port, get,  # noqa: E402
                          json_lines, logger_stats, post, read_lines, sink_stats)

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/119.0.6045.199 Safari/537.36")

CANARIES = [
    "198.51.100.77",            # client address, in X-Forwarded-For from a trusted peer
    "2001:db8:cafe:77::99",     # and an IPv6 one
    "canary.user@example.com",  # e-mail in the query
    "canary.path@example.org",  # e-mail in the path
    "canary.ref@example.net",   # e-mail in the Referer
    "CANARYUID77",              # identifier in the query
    "CANARYCLICK",              # click id
    "CANARYSESSION99",          # cookies
    "CANARYGA55",
    "CANARYDEVICE42",           # device id header
    "CANARYTOKEN",              # Authorization
    "6045.199",                 # User-Agent build: reduced away
]


def encodings(c):
    """Forms a canary might take in a log line."""
    b = c.encode()
    forms = {c, c.lower(), c.upper(), urllib.parse.quote(c, safe=""), urllib.parse.quote_plus(c),
             base64.b64encode(b).decode().rstrip("="), base64.urlsafe_b64encode(b).decode().rstrip("="),
             binascii.hexlify(b).decode(), html.escape(c), json.dumps(c)[1:-1],
             c.replace("@", "\\u0040"), c.replace("@", "#040"), c.replace(".", "\\.")}
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)$", c)
    if m:
        n = 0
        for part in m.groups():
            n = n * 256 + int(part)
        forms |= {str(n), "%08x" % n}
    return forms


def assert_no_canary(name, text):
    for c in CANARIES:
        for form in encodings(c):
            if form and form in text:
                i = text.find(form)
                raise AssertionError("sink %s holds canary %r as %r: ...%s..." % (
                    name, c, form, text[max(0, i - 80):i + 80]))


def canary_request(i):
    q = urllib.parse.urlencode({"email": "canary.user@example.com", "uid": "CANARYUID77",
                                "gclid": "CANARYCLICK", "utm_source": "news"})
    target = "/account/canary.path@example.org/view/%d?%s" % (i, q)
    xff = "198.51.100.77" if i % 2 == 0 else "2001:db8:cafe:77::99"
    return (("GET %s HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: %s\r\n"
             "Cookie: session=CANARYSESSION99; _ga=GA1.2.CANARYGA55\r\n"
             "X-Device-Id: CANARYDEVICE42\r\nAuthorization: Bearer CANARYTOKEN\r\n"
             "Referer: https://ref.example/p?email=canary.ref@example.net\r\n"
             "User-Agent: %s\r\nConnection: close\r\n\r\n") % (target, xff, UA)).encode()


def send_raw(port, data, timeout=5.0):
    s = connect(port, timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def logs_config(port, backend, sinks, access_sinks=None, routes_extra=None, **extra):
    cfg = make_config(port, backend, workers=extra.pop("workers", 2))
    cfg["trusted_proxies"] = ["127.0.0.0/8"]
    cfg["log_sinks"] = sinks
    if access_sinks:
        cfg["access_log"] = dict({"sinks": access_sinks}, **extra.pop("access_log", {}))
    if routes_extra:
        cfg["routes"] = routes_extra + cfg["routes"]
    cfg.update(extra)
    return cfg


def tmpdir():
    return tempfile.mkdtemp(prefix="ap-logs-")


def t_canary_every_sink():
    d = tmpdir()
    with Backend() as b, RSyslog() as rs, HttpReceiver() as rx:
        port = free_port()
        template = ("$time|$time_local|$id|$route|$method|$host|$path|$protocol|$status|$bytes_in|"
                    "$bytes_out|$duration_ms|$upstream_ms|$upstream|$tls|$client|$geo|$ua|$rules")
        sinks = {
            "json": {"type": "file", "path": d + "/access.json", "spool": {"dir": d + "/s-json"}},
            "out": {"type": "stdout", "when_full": "drop_newest"},
            "udp": {"type": "syslog", "address": "udp://127.0.0.1:%d" % rs.udp_port,
                    "spool": {"dir": d + "/s-udp"}},
            "tcp": {"type": "syslog", "address": "tcp://127.0.0.1:%d" % rs.tcp_port,
                    "spool": {"dir": d + "/s-tcp"}},
            "unix": {"type": "syslog", "address": "unix:" + rs.sock, "format": "rfc3164",
                     "spool": {"dir": d + "/s-unix"}},
            "web": {"type": "http", "url": rx.url, "gzip": True, "spool": {"dir": d + "/s-web"},
                    "batch": {"max_age": "100ms"}},
        }
        cfg = logs_config(port, b, sinks, list(sinks))
        # One access log has one format: the text template gets a proxy of
        # its own below.
        n = 12
        with Proxy(config=cfg, port=port) as p:
            for i in range(n):
                r = send_raw(port, canary_request(i))
                check(r.startswith(b"HTTP/1.1 200"), "request %d: %r" % (i, r[:100]))
            # A request that fails to parse still gets a record.
            r = send_raw(port, b"GET /bad?email=canary.user@example.com HTTP/1.1\r\nHost: shop.example\r\n"
                               b"X-Forwarded-For: 198.51.100.77\r\nBad Header\r\n\r\n")
            check(r.startswith(b"HTTP/1.1 400"), "bad request: %r" % r[:100])
            check(wait_for(lambda: len(rx.delivered()) >= n + 1, 10.0), "http sink got %d records"
                  % len(rx.delivered()))
            check(rs.wait_lines("imudp", n + 1) and rs.wait_lines("imtcp", n + 1) and
                  rs.wait_lines("imuxsock", n + 1), "rsyslog got %d/%d/%d records: %s" % (
                      len(rs.lines("imudp")), len(rs.lines("imtcp")), len(rs.lines("imuxsock")),
                      rs.stderr()))
            p.stop()
            stats = sink_stats(p.stderr_text())
            stdout = p.stdout_text()
        outputs = {
            "json": "\n".join(read_lines(d + "/access.json")),
            "out": stdout,
            "udp": "\n".join(rs.lines("imudp")),
            "tcp": "\n".join(rs.lines("imtcp")),
            "unix": "\n".join(rs.lines("imuxsock")),
            "web": rx.text(),
        }
        for name, text in outputs.items():
            check(text.count("/account/") >= n, "sink %s has %d records of %d" % (
                name, text.count("/account/"), n))
            # The truncated addresses prove the trusted X-Forwarded-For was
            # read, and anonymised.
            check("198.51.100.0" in text and "2001:db8:cafe::" in text,
                  "sink %s lacks the truncated client addresses" % name)
            assert_no_canary(name, text)
            check(stats.get(name, {}).get("delivered", 0) >= n + 1, "sink %s: %r" % (name, stats.get(name)))
        recs = json_lines(read_lines(d + "/access.json"))
        r0 = [r for r in recs if r["path"] and r["path"].startswith("/account/")][0]
        check(r0["route"] == "main" and r0["method"] == "GET" and r0["status"] == 200 and
              r0["host"] == "shop.example" and r0["protocol"] == "HTTP/1.1", "record: %r" % r0)
        # The strict route redacted the e-mail in the path before forwarding;
        # the record shows the path as forwarded.
        check(r0["path"].startswith("/account/(redacted)/view/") and "?" not in r0["path"],
              "path: %r" % r0["path"])
        check(r0["ua"] == "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
              "Gecko) Chrome/119.0.0.0 Safari/537.36", "ua: %r" % r0["ua"])
        check(r0["upstream"] == b.authority and r0["bytes_out"] > 0 and r0["upstream_ms"] is not None,
              "upstream fields: %r" % r0)
        check("cookie:drop" in r0["rules"] and "header:drop" in r0["rules"], "rules: %r" % r0["rules"])
        check(len(r0["id"]) == 16 and len({r["id"] for r in recs}) == len(recs), "ids not unique")
        bad = [r for r in recs if r["status"] == 400]
        # Refused while its head was read: no exchange, no engine; the peer
        # (127.0.0.1) is logged cut to /24.
        check(len(bad) == 1 and bad[0]["client"] == "127.0.0.0" and bad[0]["route"] is None,
              "the 400 record: %r" % bad)
        # Syslog framing: RFC 5424 over UDP and TCP, RFC 3164 on the socket.
        for line in rs.lines("imtcp"):
            check(re.match(r"^<134>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ anonproxy \d+ - - \{", line),
                  "tcp message: %r" % line[:120])
        for line in rs.lines("imuxsock"):
            check(re.match(r"^<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ anonproxy\[\d+\]: \{", line),
                  "unix message: %r" % line[:120])
        check(all(b.headers.get("content-encoding") == "gzip" for b in rx.all_batches()),
              "http batches not gzip")
        check(all(b.headers.get("content-type") == "application/x-ndjson" for b in rx.all_batches()),
              "http batches not NDJSON")

    # The text template, through a proxy of its own.
    with Backend() as b:
        port = free_port()
        cfg = logs_config(port, b, {"text": {"type": "file", "path": d + "/access.txt",
                                             "spool": {"dir": d + "/s-text"}}}, ["text"],
                          access_log={"format": "text", "template": template})
        with Proxy(config=cfg, port=port):
            for i in range(4):
                check(send_raw(port, canary_request(i)).startswith(b"HTTP/1.1 200"), "text request")
        lines = read_lines(d + "/access.txt")
        check(len(lines) == 4, "text sink has %d lines" % len(lines))
        assert_no_canary("text", "\n".join(lines))
        f = lines[0].split("|")
        check(len(f) == 19, "text fields: %r" % lines[0])
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", f[0]) and
              re.match(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$", f[1]), "times: %r" % f[:2])
        check(f[3:6] == ["main", "GET", "shop.example"] and f[7] == "HTTP/1.1" and f[8] == "200" and
              f[14] == "-" and f[15] == "198.51.100.0" and f[16] == "-", "fields: %r" % f)


def t_logrotate_and_sigusr1():
    d = tmpdir()
    with Backend() as b:
        port = free_port()
        path = d + "/access.log"
        cfg = logs_config(port, b, {"f": {"type": "file", "path": path, "spool": {"dir": d + "/s"}}}, ["f"])
        with Proxy(config=cfg, port=port) as p:
            c = KeepAliveClient(port)
            for i in range(5):
                check(c.get("/a/%d" % i) == 200, "request a")
            check(wait_for(lambda: len(read_lines(path)) == 5, 5.0), "5 records before the move")
            # logrotate without a postrotate command: the inode check follows.
            os.rename(path, path + ".1")
            check(wait_for(lambda: os.path.exists(path), 3.0), "file not reopened after the move")
            for i in range(5):
                check(c.get("/b/%d" % i) == 200, "request b")
            check(wait_for(lambda: len(read_lines(path)) == 5, 5.0), "5 records after the move: %r"
                  % read_lines(path))
            # logrotate with postrotate `kill -USR1`.
            os.rename(path, path + ".2")
            p.signal(signal.SIGUSR1)
            check(p.wait_log("logger: reopening log files", 3.0), "SIGUSR1 not seen")
            check(wait_for(lambda: os.path.exists(path), 3.0), "file not reopened on SIGUSR1")
            for i in range(5):
                check(c.get("/c/%d" % i) == 200, "request c")
            check(wait_for(lambda: len(read_lines(path)) == 5, 5.0), "5 records after SIGUSR1")
            c.close()
        paths = [json.loads(l)["path"] for l in read_lines(path + ".1") + read_lines(path + ".2") +
                 read_lines(path)]
        want = ["/a/%d" % i for i in range(5)] + ["/b/%d" % i for i in range(5)] + \
               ["/c/%d" % i for i in range(5)]
        check(paths == want, "records across the rotations: %r" % paths)


def relay_route(sinks, fields=None, privacy=None):
    r = {"name": "applogs", "type": "logs", "match": {"path": "/logs"}, "log_sinks": sinks}
    if fields:
        r["log_fields"] = fields
    r["privacy"] = privacy or {"profile": "balanced", "client_address": "truncate"}
    return r


def t_relay_ndjson():
    d = tmpdir()
    with Backend() as b:
        port = free_port()
        path = d + "/app.log"
        cfg = logs_config(port, b, {"app": {"type": "file", "path": path, "spool": {"dir": d + "/s"}}},
                          routes_extra=[relay_route(["app"], {"order_ref": "pseudonymise", "debug": "drop"})])
        recs = [
            {"level": "info", "msg": "login by canary.user@example.com from 198.51.100.77",
             "client_ip": "198.51.100.77", "user_id": "CANARYUID77", "session": "CANARYSESSION99",
             "user_agent": UA, "url": "https://shop.example/p?email=canary.user@example.com&utm_source=x",
             "order_ref": "CANARYCLICK", "debug": {"token": "CANARYTOKEN"}, "n": 3},
            {"level": "warn", "device": {"id": "CANARYDEVICE42", "ip": "2001:db8:cafe:77::99"}},
            {"msg": "plain text, nothing personal", "count": 7},
        ]
        body = ("\n".join(json.dumps(r) for r in recs) + "\n\n").encode()
        with Proxy(config=cfg, port=port) as p:
            st, resp = post(port, "/logs", body, {"Content-Type": "application/x-ndjson"})
            check(st == 202 and json.loads(resp) == {"accepted": 3}, "POST: %d %r" % (st, resp))
            # Not JSON: the whole batch is refused, nothing of it is written.
            st, resp = post(port, "/logs", b'{"msg":"first canary.user@example.com"}\n{oops\n')
            check(st == 400 and b"line 2" in resp, "bad batch: %d %r" % (st, resp))
            st, resp = post(port, "/logs", b"\n\n")
            check(st == 400, "empty batch: %d" % st)
            check(get(port, "/logs") == 405, "GET on a logs route")
            # gzip-compressed batches are accepted.
            st, resp = post(port, "/logs", gzip.compress(b'{"msg":"zipped"}\n'), {"Content-Encoding": "gzip"})
            check(st == 202, "gzip POST: %d %r" % (st, resp))
            st, resp = post(port, "/logs", b"{}", {"Content-Encoding": "br"})
            check(st == 415, "unknown encoding: %d" % st)
            check(wait_for(lambda: len(read_lines(path)) >= 4, 5.0), "records: %r" % read_lines(path))
            p.stop()
            lst = logger_stats(p.stderr_text())
        lines = read_lines(path)
        check(len(lines) == 4, "4 records expected: %r" % lines)
        text = "\n".join(lines)
        assert_no_canary("app", text)
        out = json_lines(lines)
        check(out[0]["client_ip"] == "198.51.100.0" and out[0]["level"] == "info" and out[0]["n"] == 3,
              "record 0: %r" % out[0])
        check(out[0]["url"] == "https://shop.example/p?utm_source=x", "url: %r" % out[0]["url"])
        check("debug" not in out[0] and re.match(r"^[0-9a-f]{16}$", out[0]["order_ref"]),
              "rules of the route: %r" % out[0])
        check(out[0]["msg"].startswith("login by [email:") and out[0]["msg"].endswith("from 198.51.100.0"),
              "msg: %r" % out[0]["msg"])
        check(out[1]["device"]["ip"] == "2001:db8:cafe::", "nested: %r" % out[1])
        check(out[2] == recs[2], "untouched record changed: %r" % out[2])
        check(out[3] == {"msg": "zipped"}, "gzip record: %r" % out[3])
        check(lst["relay"] == 4 and lst["relay_rejected"] >= 2, "logger stats: %r" % lst)


def t_relay_syslog_listener():
    d = tmpdir()
    with Backend() as b:
        port = free_port()
        uport, tport = free_udp_port(), free_port()
        path = d + "/sys.log"
        cfg = logs_config(port, b, {"app": {"type": "file", "path": path, "spool": {"dir": d + "/s"}}},
                          routes_extra=[relay_route(["app"])],
                          syslog_listen=[{"address": "udp://127.0.0.1:%d" % uport, "route": "applogs"},
                                         {"address": "tcp://127.0.0.1:%d" % tport, "route": "applogs"}])
        msgs = [
            b"<134>1 2024-05-01T10:00:00Z 198.51.100.77 shop 42 LOGIN [meta user_id=\"CANARYUID77\" "
            b"ip=\"198.51.100.77\"] user canary.user@example.com logged in",
            b"<13>May  1 10:00:00 webhost app[7]: session for canary.ref@example.net from 198.51.100.77",
        ]
        with Proxy(config=cfg, port=port):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for m in msgs:
                u.sendto(m, ("127.0.0.1", uport))
            u.close()
            t = socket.create_connection(("127.0.0.1", tport), timeout=5)
            # Octet counting, then LF framing, on one connection.
            t.sendall(b"%d %s" % (len(msgs[0]), msgs[0]) + msgs[1] + b"\n")
            t.close()
            check(wait_for(lambda: len(read_lines(path)) >= 4, 5.0), "records: %r" % read_lines(path))
        lines = read_lines(path)
        check(len(lines) == 4, "4 records expected: %r" % lines)
        assert_no_canary("sys", "\n".join(lines))
        recs = json_lines(lines)
        r5424 = [r for r in recs if r.get("msgid") == "LOGIN"]
        r3164 = [r for r in recs if r.get("app") == "app"]
        check(len(r5424) == 2 and len(r3164) == 2, "records: %r" % recs)
        r = r5424[0]
        check(r["host"] == "198.51.100.0" and r["app"] == "shop" and r["procid"] == "42" and
              r["severity"] == "info" and r["facility"] == "local0", "5424 record: %r" % r)
        check(r["sd"]["meta"]["ip"] == "198.51.100.0" and re.match(r"^[0-9a-f]{16}$", r["sd"]["meta"]["user_id"]),
              "structured data: %r" % r["sd"])
        check(r["message"].startswith("user [email:"), "message: %r" % r["message"])
        r = r3164[0]
        check(r["host"] == "webhost" and r["procid"] == "7" and r["severity"] == "notice", "3164: %r" % r)


def http_sink_config(port, b, rx, d, **kw):
    sink = {"type": "http", "url": rx.url, "spool": {"dir": d + "/s"}, "batch": {"max_age": "50ms",
            "max_events": kw.pop("max_events", 1000)}, "retry": {"initial": "50ms", "max": "300ms"},
            "timeout": kw.pop("timeout", "10s")}
    if "retry" in kw:
        sink["retry"] = kw.pop("retry")
    sink.update(kw)
    return logs_config(port, b, {"web": sink}, ["web"], workers=1)


def t_http_retry_statuses():
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx:
        port = free_port()
        rx.status_seq = [(429, "1"), 503, 502, 500]
        cfg = http_sink_config(port, b, rx, d, retry={"initial": "50ms", "max": "2s"})
        with Proxy(config=cfg, port=port) as p:
            c = KeepAliveClient(port)
            t0 = time.monotonic()
            for i in range(10):
                check(c.get("/r/%d" % i) == 200, "request")
            c.close()
            check(wait_for(lambda: len(rx.delivered()) >= 10, 15.0), "delivered %d" % len(rx.delivered()))
            el = time.monotonic() - t0
            p.stop()
            st = sink_stats(p.stderr_text())["web"]
        batches = rx.all_batches()
        check([bt.status for bt in batches[:5]] == [429, 503, 502, 500, 204], "statuses: %r" % [
            bt.status for bt in batches])
        check(el >= 1.0, "Retry-After: 1 not honoured (%.2fs)" % el)
        paths = [json.loads(l)["path"] for l in rx.delivered()]
        check(paths == ["/r/%d" % i for i in range(10)], "paths: %r" % paths)
        check(st["retries"] == 4 and st["delivered"] == 10 and st["rejected"] == 0, "stats: %r" % st)


def t_http_rejects_not_retried():
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx:
        port = free_port()
        rx.status_seq = [400, 501, 413]
        with Proxy(config=http_sink_config(port, b, rx, d, max_events=2), port=port) as p:
            c = KeepAliveClient(port)
            for i in range(10):
                check(c.get("/r/%d" % i) == 200, "request")
            c.close()
            check(wait_for(lambda: len(rx.delivered()) >= 4, 10.0), "delivered %d" % len(rx.delivered()))
            time.sleep(0.5)
            p.stop()
            st = sink_stats(p.stderr_text())["web"]
        batches = rx.all_batches()
        check([bt.status for bt in batches[:3]] == [400, 501, 413], "statuses: %r" % [bt.status for bt in batches])
        # Each rejected batch was sent once: no record twice.
        seen = [json.loads(l)["path"] for bt in batches for l in bt.lines]
        check(len(seen) == len(set(seen)), "a rejected batch was retried: %r" % seen)
        check(st["rejected"] == 6 and st["retries"] == 0 and st["rejected"] + st["delivered"] == st["in"],
              "stats: %r" % st)


def t_http_hang_then_recover():
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx:
        port = free_port()
        rx.set_mode("hang")
        with Proxy(config=http_sink_config(port, b, rx, d, timeout="400ms"), port=port) as p:
            c = KeepAliveClient(port)
            for i in range(20):
                check(c.get("/h/%d" % i) == 200, "request")
            time.sleep(1.2)
            rx.set_mode("ok")
            for i in range(20, 30):
                check(c.get("/h/%d" % i) == 200, "request")
            c.close()
            check(wait_for(lambda: len(rx.delivered()) >= 30, 15.0), "delivered %d" % len(rx.delivered()))
            p.stop()
            st = sink_stats(p.stderr_text())["web"]
            err = p.stderr_text()
        paths = [json.loads(l)["path"] for l in rx.delivered()]
        check(paths == ["/h/%d" % i for i in range(30)], "order or loss: %r" % paths)
        check(st["retries"] >= 1 and st["spooled"] >= 20 and st["replayed"] >= 20, "stats: %r" % st)
        check("no response within 400 ms" in err, "timeout not logged")


def t_https_verify_spool_replay():
    """An https:// sink: records arrive over TLS 1.2 or later, checked
    against tls.ca_file and the URL's IP address (no SNI for an IP). A
    receiver whose certificate names another host gets no request at all:
    the records are retried and spooled, never sent in clear. Once it shows
    a right certificate again the spooled records arrive, in order."""
    d = tmpdir()
    pki = TestPKI()
    try:
        good = pki.leaf("rx", dns=["logs.test"], ips=["127.0.0.1"])
        wrong = pki.leaf("wrong", dns=["other.test"])
        with Backend() as b, HttpReceiver(tls=good) as rx:
            port = free_port()
            check(rx.url.startswith("https://127.0.0.1:"), "url %s" % rx.url)
            cfg = http_sink_config(port, b, rx, d, tls={"ca_file": pki.ca})
            with Proxy(config=cfg, port=port) as p:
                c = KeepAliveClient(port)
                for i in range(5):
                    check(c.get("/s/%d" % i) == 200, "request")
                check(wait_for(lambda: len(rx.delivered()) >= 5, 10.0),
                      "delivered %d over https" % len(rx.delivered()))
                check(rx.handshakes >= 1 and rx.tls_failures == 0, "handshakes %d failures %d" % (
                    rx.handshakes, rx.tls_failures))
                check(set(rx.tls_versions) <= {"TLSv1.2", "TLSv1.3"}, "versions %r" % rx.tls_versions)
                check(rx.sni is None, "SNI %r sent for an IP address" % rx.sni)
                sent = rx.requests
                rx.set_tls(wrong)
                rx.drop_connections()
                for i in range(5, 15):
                    check(c.get("/s/%d" % i) == 200, "request")
                check(wait_for(lambda: rx.tls_failures >= 3, 10.0),
                      "handshakes refused %d" % rx.tls_failures)
                check(len(rx.delivered()) == 5 and rx.requests == sent,
                      "a batch passed a wrong certificate: %d records, %d requests" % (
                          len(rx.delivered()), rx.requests - sent))
                rx.set_tls(good)
                for i in range(15, 20):
                    check(c.get("/s/%d" % i) == 200, "request")
                c.close()
                check(wait_for(lambda: len(rx.delivered()) >= 20, 15.0),
                      "delivered %d after the fix" % len(rx.delivered()))
                p.stop()
                err = p.stderr_text()
                st = sink_stats(err)["web"]
            paths = [json.loads(l)["path"] for l in rx.delivered()]
            check(paths == ["/s/%d" % i for i in range(20)], "order or loss: %r" % paths)
            check(st["retries"] >= 3 and st["spooled"] >= 10 and st["replayed"] >= 10
                  and st["delivered"] == 20 and st["rejected"] == 0, "stats: %r" % st)
            check("certificate verify failed" in err, "verify failure not logged: %s" % err[-2000:])
    finally:
        pki.cleanup()


def t_https_sni_client_cert():
    """tls.server_name is sent as SNI and checked in place of the URL's
    host; client_cert/client_key answer a receiver that asks for one."""
    d = tmpdir()
    pki = TestPKI()
    try:
        named = pki.leaf("named", dns=["logs.test"], issuer="inter")
        with open(named[0], "a") as f, open(pki.inter) as i:
            f.write(i.read())
        client = pki.leaf("shipper", client=True)
        with Backend() as b, HttpReceiver(tls=named, client_ca=pki.ca) as rx:
            port = free_port()
            cfg = http_sink_config(port, b, rx, d, gzip=True, tls={
                "ca_file": pki.ca, "server_name": "logs.test", "client_cert": client[0],
                "client_key": client[1]})
            with Proxy(config=cfg, port=port) as p:
                for i in range(3):
                    check(get(port, "/m/%d" % i) == 200, "request")
                check(wait_for(lambda: len(rx.delivered()) >= 3, 10.0),
                      "delivered %d (failures %d)" % (len(rx.delivered()), rx.tls_failures))
                p.stop()
                st = sink_stats(p.stderr_text())["web"]
            check(rx.sni == "logs.test", "SNI %r" % rx.sni)
            check(rx.peer_cn == "shipper", "client certificate %r" % rx.peer_cn)
            check(rx.all_batches()[0].headers.get("content-encoding") == "gzip", "gzip over https")
            paths = [json.loads(l)["path"] for l in rx.delivered()]
            check(paths == ["/m/%d" % i for i in range(3)], "paths %r" % paths)
            check(st["delivered"] == 3 and st["retries"] == 0, "stats: %r" % st)
    finally:
        pki.cleanup()


def t_geo_field():
    """With geolocation on, the record carries the coarse location the geo
    module let out, never the address it came from."""
    from test_geo_proxy import build_db
    d = tmpdir()
    db = os.path.join(d, "city.mmdb")
    build_db("geo.csv", db)
    with Backend() as b:
        port = free_port()
        path = d + "/access.log"
        cfg = logs_config(port, b, {"f": {"type": "file", "path": path, "spool": {"dir": d + "/s"}}}, ["f"])
        cfg["geo"] = {"database": db, "precision": "region", "min_visitors": {"region": 0, "city": 0}}
        with Proxy(config=cfg, port=port):
            check(get(port, "/g/1", {"X-Forwarded-For": "192.0.2.10"}) == 200, "request")
            check(get(port, "/g/2", {"X-Forwarded-For": "10.1.2.3"}) == 200, "request")
            check(wait_for(lambda: len(read_lines(path)) == 2, 5.0), "records")
        recs = json_lines(read_lines(path))
        check(recs[0]["geo"] == "FR/IDF" and recs[0]["client"] == "192.0.2.0", "located: %r" % recs[0])
        check(recs[1]["geo"] is None, "a private address located: %r" % recs[1])
        check("192.0.2.10" not in "\n".join(read_lines(path)), "the address reached the log")


def t_unrouted_path_tokens():
    """A request no route takes has no profile: its record's path still
    loses e-mails (the detectors) and tokens (a UUID, a long hex id), as a
    strict route's would."""
    d = tmpdir()
    with Backend() as b:
        port = free_port()
        path = d + "/access.log"
        cfg = logs_config(port, b, {"f": {"type": "file", "path": path, "spool": {"dir": d + "/s"}}}, ["f"])
        cfg["routes"][0]["match"] = {"path": "/collect"}
        with Proxy(config=cfg, port=port):
            st = get(port, "/nope/123e4567-e89b-12d3-a456-426614174000/f/0123456789abcdef0123.json"
                           "/u/ann%40example.com")
            check(st == 404, "status %r" % st)
            check(wait_for(lambda: len(read_lines(path)) == 1, 5.0), "records: %r" % read_lines(path))
        text = "\n".join(read_lines(path))
        for canary in ("426614174000", "0123456789abcdef0123", "ann%40example"):
            check(canary not in text, "%s reached the log: %s" % (canary, text))
        rec = json_lines(read_lines(path))[0]
        check(rec["path"].startswith("/nope/(redacted)/f/(redacted).json/u/"), "path: %r" % rec["path"])


def t_metrics_throughput():
    """Records per second through the logger and its memory, printed for
    the report (not a pass/fail threshold beyond "all arrived")."""
    d = tmpdir()
    with Backend() as b:
        port = free_port()
        path = d + "/app.log"
        cfg = logs_config(port, b, {"app": {"type": "file", "path": path, "spool": {"dir": d + "/s"},
                                            "queue": 100000}},
                          routes_extra=[relay_route(["app"])], workers=2)
        line = json.dumps({"level": "info", "msg": "order 12345 shipped to 198.51.100.77 for a@b.example",
                           "user_id": 4242, "path": "/checkout?step=2"})
        body = ("\n".join([line] * 1000) + "\n").encode()
        with Proxy(config=cfg, port=port) as p:
            rss0 = p.rss_kb()
            t0 = time.monotonic()
            nb = 100
            for _ in range(nb):
                st, _ = post(port, "/logs", body)
                check(st == 202, "POST %d" % st)
            check(wait_for(lambda: os.path.getsize(path) > 0 and len(read_lines(path)) >= nb * 1000, 60.0),
                  "only %d records" % len(read_lines(path)))
            el = time.monotonic() - t0
            rss1 = p.rss_kb()
        print("# logger throughput: %d relayed records in %.2fs = %.0f records/s (scrub + file), "
              "RSS %d kB -> %d kB" % (nb * 1000, el, nb * 1000 / el, rss0, rss1), flush=True)


CASES = [
    ("canary values reach no sink in any encoding", t_canary_every_sink, 120),
    ("logrotate move and SIGUSR1 reopen the file", t_logrotate_and_sigusr1, 60),
    ("NDJSON relay route anonymises and refuses bad batches", t_relay_ndjson, 60),
    ("syslog listener over UDP and TCP relays anonymised records", t_relay_syslog_listener, 60),
    ("http sink retries 408/429/5xx with Retry-After", t_http_retry_statuses, 60),
    ("http sink rejects other 4xx and 501 without retry", t_http_rejects_not_retried, 60),
    ("http sink times out a hanging receiver and recovers in order", t_http_hang_then_recover, 60),
    ("https sink verifies the receiver, spools on a wrong name, replays", t_https_verify_spool_replay, 90),
    ("https sink sends SNI and a client certificate", t_https_sni_client_cert, 60),
    ("geo field is the coarse location", t_geo_field, 60),
    ("unrouted request paths lose their tokens", t_unrouted_path_tokens, 60),
    ("logger throughput and memory", t_metrics_throughput, 180),
]

if __name__ == "__main__":
    run_cases(CASES)

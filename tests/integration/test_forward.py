#!/usr/bin/env python3
"""Forwarding: re-serialisation, Host, hop-by-hop headers, keep-alive and
pipelining, chunked in both directions, 100-continue, HEAD, 1xx, trailers,
routing and the file sink.

Routes have no `privacy:` key, so the strict profile applies: request headers
outside its allowlist never reach the backend. End-to-end request headers in
these cases are therefore allowlisted ones (Accept, Content-Type, DNT), which
also makes the hop-by-hop cases meaningful: a header the allowlist would keep
must still go when Connection names it."""

import base64
import calendar
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, CaseFailure, Client, Proxy, check, curl,  # noqa: E402
                     error_why, exchange, free_port, make_config,
                     proxy_error_problems, run_cases, short, wait_for)


def one_request(backend, timeout=3.0):
    """The single request the backend received (fails on 0 or several)."""
    reqs = backend.wait_requests(1, timeout)
    time.sleep(0.1)
    reqs = backend.requests
    check(len(reqs) == 1, "backend got %d requests, want 1: %r" % (len(reqs), reqs))
    r = reqs[0]
    check(r.well_formed, "backend got a malformed request: %r; raw %s" % (r.errors, short(backend.raw())))
    return r


def get(path="/", host="a.example", extra=b"", version=b"HTTP/1.1", method=b"GET"):
    return (method + b" " + path.encode() + b" " + version + b"\r\nHost: " + host.encode()
            + b"\r\n" + extra + b"\r\n")


# ---------------------------------------------------------------------------

def t_get_forwarded():
    target = "/a%2Fb/c;p?x=1&y=%20&z"
    with Backend(body=b"payload", headers=[("X-From-Backend", "yes"), ("Set-Cookie", "a=1")]) as b, \
            Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get(target, extra=b"Content-Type: text/x-42\r\nAccept: a/1\r\nAccept: b/2\r\n"))
        check(r is not None and r.status == 200, "response %r" % r)
        check(r.body == b"payload", "body %s" % short(r.body))
        check(r.header("X-From-Backend") == "yes", "backend header lost: %r" % r.headers)
        q = one_request(b)
        check(q.request_line == "GET %s HTTP/1.1" % target, "request line %r" % q.request_line)
        check(q.headers.get_all("Host") == [b.authority], "Host %r, want [%r]" % (
            q.headers.get_all("Host"), b.authority))
        check(q.header("Content-Type") == "text/x-42", "Content-Type %r" % q.header("Content-Type"))
        check(q.headers.get_all("Accept") in (["a/1", "b/2"], ["a/1, b/2"], ["a/1,b/2"]),
              "two Accept lines became %r" % q.headers.get_all("Accept"))


def t_host_preserve():
    with Backend() as b, Proxy(backend=b, upstream_extra={"host": "preserve"}) as p:
        ex = exchange(p.port, get("/", host="a.example:8080", extra=b"Connection: close\r\n"))
        r = ex.first()
        check(r is not None and r.status == 200, ex.describe())
        q = one_request(b)
        check(q.headers.get_all("Host") == ["a.example:8080"], "Host %r" % q.headers.get_all("Host"))


def t_http10_reserialised():
    with Backend(body=b"ten") as b, Proxy(backend=b) as p:
        ex = exchange(p.port, b"GET /ten HTTP/1.0\r\nHost: a.example\r\nAccept:    v/1   \r\n\r\n")
        r = ex.first()
        check(r is not None and r.status == 200 and r.body == b"ten", ex.describe())
        check(ex.closed, "HTTP/1.0 connection without keep-alive left open")
        q = one_request(b)
        check(q.request_line == "GET /ten HTTP/1.1", "request line %r" % q.request_line)
        raw = b.raw()
        check(b"\r\nAccept: v/1\r\n" in raw, "header not re-serialised as 'Accept: v/1': %s" % short(raw))


def t_hop_by_hop_request():
    extra = (b"Connection: keep-alive, Accept\r\nAccept: drop/me\r\nKeep-Alive: timeout=5\r\n"
             b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Later\r\n"
             b"DNT: 1\r\n")
    with Backend() as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/hop", extra=extra))
        check(r is not None and r.status == 200, "response %r" % r)
        q = one_request(b)
        for h in ("Accept", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
                  "Transfer-Encoding"):
            check(not q.headers.has(h), "backend received hop-by-hop %s: %r" % (h, q.headers))
        conn = ",".join(q.headers.get_all("Connection")).lower()
        check("accept" not in conn, "Connection still names Accept: %r" % conn)
        check(q.header("DNT") == "1", "end-to-end header DNT lost: %r" % q.headers)


def t_connection_close_named():
    with Backend() as b, Proxy(backend=b) as p:
        ex = exchange(p.port, get("/", extra=b"Connection: close, Accept\r\nAccept: x/1\r\nDNT: 1\r\n"))
        r = ex.first()
        check(r is not None and r.status == 200, ex.describe())
        check(ex.closed, "Connection: close not honoured: %s" % ex.describe())
        q = one_request(b)
        check(not q.headers.has("Accept"), "Accept named by Connection was forwarded: %r" % q.headers)
        check(q.header("DNT") == "1", "DNT lost: %r" % q.headers)


def t_hop_by_hop_response():
    hdrs = [("Connection", "X-Bar"), ("X-Bar", "secret"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("Upgrade", "foo/2"), ("X-Keep", "1")]
    with Backend(headers=hdrs, body=b"resp") as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200 and r.body == b"resp", "response %r" % r)
        for h in ("X-Bar", "Keep-Alive", "Proxy-Connection", "Upgrade"):
            check(not r.headers.has(h), "client received hop-by-hop %s: %r" % (h, r.headers))
        check("x-bar" not in (r.header("Connection") or "").lower(), "Connection %r" % r.header("Connection"))
        check(r.header("X-Keep") == "1", "X-Keep lost: %r" % r.headers)


def t_keepalive_sequential():
    with Backend(body=lambda q: q.target.encode()) as b, Proxy(backend=b) as p, Client(p.port) as c:
        for i in range(5):
            r = c.request(get("/seq%d" % i))
            check(r is not None and r.status == 200 and r.body == b"/seq%d" % i,
                  "request %d on the kept-alive connection: %r" % (i, r))
        check(not c.is_closed(0.3), "proxy closed a keep-alive connection")


def t_pipelined_in_order():
    delay = lambda q: 0.5 if q.target == "/slow" else 0  # noqa: E731
    with Backend(body=lambda q: q.target.encode(), delay=delay) as b, Proxy(backend=b) as p, \
            Client(p.port) as c:
        c.send(get("/slow") + get("/fast") + get("/third"))
        got = []
        for _ in range(3):
            r = c.response()
            check(r is not None, "only %d responses: %r" % (len(got), got))
            got.append(r.body)
        check(got == [b"/slow", b"/fast", b"/third"], "responses out of order: %r" % got)


def t_pipelined_post_then_get():
    with Backend(body=lambda q: q.target.encode()) as b, Proxy(backend=b) as p, Client(p.port) as c:
        c.send(b"POST /post HTTP/1.1\r\nHost: a.example\r\nContent-Length: 11\r\n\r\nhello world"
               + get("/after"))
        r1 = c.response()
        r2 = c.response()
        check(r1 is not None and r1.body == b"/post", "first response %r" % r1)
        check(r2 is not None and r2.body == b"/after", "second response %r" % r2)
        reqs = b.wait_requests(2)
        check(len(reqs) == 2, "backend got %r" % reqs)
        check(all(q.well_formed for q in reqs), "malformed: %r" % reqs)
        check([q.target for q in reqs] == ["/post", "/after"], "order %r" % reqs)
        check(reqs[0].body == b"hello world" and reqs[1].body == b"", "bodies %r" % reqs)


def t_pipelined_chunked_post_then_get():
    with Backend(body=lambda q: q.target.encode()) as b, Proxy(backend=b) as p, Client(p.port) as c:
        c.send(b"POST /c HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n" + get("/after"))
        r1, r2 = c.response(), c.response()
        check(r1 is not None and r1.body == b"/c", "first %r" % r1)
        check(r2 is not None and r2.body == b"/after", "second %r" % r2)
        reqs = b.wait_requests(2)
        check(len(reqs) == 2 and all(q.well_formed for q in reqs), "backend got %r" % reqs)
        check(reqs[0].body == b"wikipedia" and reqs[1].target == "/after", "backend got %r" % reqs)


def t_chunked_request_streamed():
    chunks = [b"1a;ext=\"q\"\r\n" + b"A" * 26 + b"\r\n", b"3\r\nxyz", b"\r\n",
              b"10\r\n" + b"0123456789abcdef" + b"\r\n", b"0\r\n\r\n"]
    with Backend() as b, Proxy(backend=b) as p, Client(p.port) as c:
        c.send(b"POST /up HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
        for ch in chunks:
            time.sleep(0.1)
            c.send(ch)
        r = c.response()
        check(r is not None and r.status == 200, "response %r" % r)
        q = one_request(b)
        check(q.body == b"A" * 26 + b"xyz0123456789abcdef", "decoded body %s" % short(q.body))
        check(not q.headers.has("Content-Length") or not q.headers.has("Transfer-Encoding"),
              "both framings forwarded")


def t_content_length_streamed():
    body = os.urandom(3000)
    with Backend() as b, Proxy(backend=b) as p, Client(p.port) as c:
        c.send(b"PUT /put HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3000\r\n\r\n")
        for i in range(0, 3000, 1000):
            time.sleep(0.1)
            c.send(body[i:i + 1000])
        r = c.response()
        check(r is not None and r.status == 200, "response %r" % r)
        q = one_request(b)
        check(q.method == "PUT" and q.body == body, "body differs (%d bytes)" % q.body_len)


def t_empty_post():
    with Backend() as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(b"POST /e HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n")
        check(r is not None and r.status == 200, "response %r" % r)
        q = one_request(b)
        check(q.body == b"", "body %s" % short(q.body))


def t_large_bodies():
    up = os.urandom(512 * 1024)
    down = os.urandom(1024 * 1024)
    with Backend(body=down) as b, Proxy(backend=b) as p, Client(p.port, timeout=10) as c:
        r = c.request(b"POST /big HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % len(up) + up)
        check(r is not None and r.status == 200, "response %r" % r)
        check(r.body == down, "response body differs (%d of %d bytes)" % (len(r.body), len(down)))
        q = one_request(b)
        check(q.body == up, "request body differs (%d of %d bytes)" % (q.body_len, len(up)))


def t_response_content_length_kept():
    with Backend(body=b"0123456789") as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.framing == "length" and r.header("Content-Length") == "10",
              "framing %s headers %r" % (r and r.framing, r and r.headers))
        check(not r.headers.has("Transfer-Encoding"), "TE with CL: %r" % r.headers)


def t_chunked_response_to_http11():
    with Backend(body=b"chunky body", framing="chunked") as b, Proxy(backend=b) as p, \
            Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200 and r.body == b"chunky body", "response %r" % r)
        check(r.framing == "chunked" and not r.headers.has("Content-Length"),
              "framing %s headers %r" % (r.framing, r.headers))
        r = c.request(get("/again"))
        check(r is not None and r.body == b"chunky body", "second response %r" % r)


def t_close_delimited_response_to_http11():
    with Backend(body=b"until close", framing="close") as b, Proxy(backend=b) as p, \
            Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200 and r.body == b"until close", "response %r" % r)
        check(r.framing == "chunked", "want chunked framing to an HTTP/1.1 client, got %s %r"
              % (r.framing, r.headers))
        r = c.request(get("/again"))
        check(r is not None and r.body == b"until close", "second request on the connection: %r" % r)


def t_chunked_response_to_http10():
    with Backend(body=b"for an old client", framing="chunked") as b, Proxy(backend=b) as p:
        ex = exchange(p.port, b"GET / HTTP/1.0\r\nHost: a.example\r\n\r\n")
        r = ex.first()
        check(r is not None and r.status == 200, ex.describe())
        check(not r.headers.has("Transfer-Encoding"), "chunked sent to an HTTP/1.0 client: %r" % r.headers)
        check(r.body == b"for an old client", "body %s" % short(r.body))
        check(ex.closed, "connection not closed after a close-delimited body")


def t_expect_100_continue():
    with Backend() as b, Proxy(backend=b) as p, Client(p.port, timeout=3) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        first = c.raw_response()
        check(first is not None and first.status == 100,
              "want HTTP/1.1 100 Continue before sending the body, got %r" % first)
        check(first.raw_head.startswith(b"HTTP/1.1 100 Continue"), "status line %s" % short(first.raw_head))
        c.send(b"hello")
        r = c.response()
        check(r is not None and r.status == 200, "final %r" % r)
        q = one_request(b)
        check(not q.headers.has("Expect"), "Expect forwarded: %r" % q.headers)
        check(q.body == b"hello", "body %s" % short(q.body))


def t_request_trailers_dropped():
    with Backend() as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(b"POST /t HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n"
                      b"Trailer: X-Trail\r\n\r\n5\r\nhello\r\n0\r\nX-Trail: secret\r\n\r\n")
        check(r is not None and r.status == 200, "response %r" % r)
        q = one_request(b)
        check(q.body == b"hello", "body %s" % short(q.body))
        check(not q.headers.has("X-Trail") and not q.trailers.has("X-Trail"),
              "trailer reached the backend: headers %r trailers %r" % (q.headers, q.trailers))
        check(b"secret" not in b.raw(), "trailer bytes reached the backend: %s" % short(b.raw()))


def t_response_trailers_dropped():
    with Backend(body=b"with trailer", trailers=[("X-Resp-Trailer", "t1")]) as b, \
            Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200 and r.body == b"with trailer", "response %r" % r)
        check(not r.headers.has("X-Resp-Trailer") and not r.trailers.has("X-Resp-Trailer"),
              "response trailer reached the client: %r %r" % (r.headers, r.trailers))
        check(not r.headers.has("Trailer"), "Trailer header reached the client: %r" % r.headers)


def t_head():
    with Backend(body=b"eleven byte") as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/h", method=b"HEAD"), method="HEAD")
        check(r is not None and r.status == 200, "HEAD response %r" % r)
        q = one_request(b)
        check(q.method == "HEAD", "backend got %s" % q.method)
        # A body sent after the HEAD head would be read as the next response.
        r = c.request(get("/g"))
        check(r is not None and r.status == 200 and r.body == b"eleven byte",
              "GET after HEAD on the same connection: %r" % r)


def t_early_hints_http11():
    with Backend(body=b"final", early_hints=True) as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200 and r.body == b"final", "final %r" % r)
        check([i.status for i in r.interim] == [103], "interim responses %r" % r.interim)
        check(r.interim[0].header("Link") == "</style.css>; rel=preload", "103 headers %r" % r.interim[0].headers)


def t_early_hints_not_to_http10():
    with Backend(body=b"final", early_hints=True) as b, Proxy(backend=b) as p:
        ex = exchange(p.port, b"GET / HTTP/1.0\r\nHost: a.example\r\n\r\n")
        check(ex.responses and ex.responses[0].status == 200 and ex.responses[0].body == b"final",
              "HTTP/1.0 client must get only the final response: %s" % ex.describe())


def t_204_passthrough():
    with Backend(mode="204") as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 204 and r.header("X-Backend") == "1", "response %r" % r)
        r = c.request(get("/2"))
        check(r is not None and r.status == 204, "second response %r" % r)


def t_backend_error_passthrough():
    with Backend(status=500, body=b"backend says oops") as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 500 and r.body == b"backend says oops",
              "backend 500 not passed through: %r" % r)


def t_curl_get():
    with Backend(body=b"via curl") as b, Proxy(backend=b) as p:
        res = curl(p.url("/c?x=1"), "-H", "Host: a.example")
        check(res.status == 200 and res.body == b"via curl", "curl %r" % res)
        q = one_request(b)
        check(q.target == "/c?x=1", "target %r" % q.target)


def t_route_404():
    with Backend() as b:
        port = free_port()
        cfg = make_config(port, b, routes=[{"name": "api", "match": {"path": "/api"}, "upstream": "backend"}])
        with Proxy(cfg, port=port) as p:
            ex = exchange(p.port, get("/other"))
            r = ex.first()
            probs = proxy_error_problems(r, 404)
            check(not probs, "%s; %s" % ("; ".join(probs), ex.describe()))
            why = error_why(r)
            check(why, "empty reason in %s" % short(r.body))
            check(p.wait_log(why), "no log line with %r on stderr: %s" % (why, p.stderr_tail()))
            ex = exchange(p.port, get("/api/x", extra=b"Connection: close\r\n"))
            check(ex.first() is not None and ex.first().status == 200, "/api/x: %s" % ex.describe())
            time.sleep(0.1)
            check([q.target for q in b.requests] == ["/api/x"], "backend got %r" % b.requests)


def t_route_path_first_match():
    with Backend(body=b"A") as a, Backend(body=b"B") as bb:
        port = free_port()
        ups = {"a": {"servers": [a.url]}, "b": {"servers": [bb.url]}}
        routes = [{"name": "api", "match": {"path": "/api/"}, "upstream": "a"},
                  {"name": "rest", "match": {"path": "/"}, "upstream": "b"},
                  {"name": "never", "match": {"path": "/api/x"}, "upstream": "b"}]
        with Proxy(make_config(port, upstreams=ups, routes=routes), port=port) as p, Client(p.port) as c:
            for path, want in (("/api/x", b"A"), ("/api/", b"A"), ("/apix", b"B"), ("/", b"B"),
                               ("/other/api/", b"B")):
                r = c.request(get(path))
                check(r is not None and r.body == want, "%s went to %r, want %r" % (
                    path, r and r.body, want))


def t_route_host_and_method():
    with Backend(body=b"A") as a, Backend(body=b"B") as bb, Backend(body=b"C") as cc:
        port = free_port()
        ups = {"a": {"servers": [a.url]}, "b": {"servers": [bb.url]}, "c": {"servers": [cc.url]}}
        routes = [{"name": "exact", "match": {"host": ["a.example"], "path": "/"}, "upstream": "a"},
                  {"name": "wild", "match": {"host": ["*.b.example"], "path": "/"}, "upstream": "b"},
                  {"name": "ro", "match": {"host": ["c.example"], "path": "/", "methods": ["GET", "HEAD"]},
                   "upstream": "c"}]
        with Proxy(make_config(port, upstreams=ups, routes=routes), port=port) as p:
            for host, method, want in (("a.example", b"GET", b"A"), ("A.Example", b"GET", b"A"),
                                       ("x.b.example", b"GET", b"B"), ("y.x.b.example", b"GET", b"B"),
                                       ("c.example", b"GET", b"C"), ("c.example", b"POST", 404),
                                       ("d.example", b"GET", 404), ("a.example.evil", b"GET", 404),
                                       ("xb.example", b"GET", 404)):
                extra = b"Content-Length: 0\r\n" if method == b"POST" else b""
                ex = exchange(p.port, get("/", host=host, method=method,
                                          extra=extra + b"Connection: close\r\n"))
                r = ex.first()
                check(r is not None, "%s %s: %s" % (method, host, ex.describe()))
                if want == 404:
                    probs = proxy_error_problems(r, 404)
                    check(not probs, "%s %s: %s" % (method, host, "; ".join(probs)))
                else:
                    check(r.status == 200 and r.body == want, "%s %s got %r, want %r" % (
                        method, host, r, want))


def t_absolute_form_same_host():
    with Backend() as b, Proxy(backend=b) as p:
        ex = exchange(p.port, b"GET http://a.example/abs?q=1 HTTP/1.1\r\nHost: a.example\r\n"
                      b"Connection: close\r\n\r\n")
        r = ex.first()
        check(r is not None and r.status == 200, ex.describe())
        q = one_request(b)
        check(q.target in ("/abs?q=1", "http://a.example/abs?q=1"), "target %r" % q.target)
        check(q.headers.get_all("Host") == [b.authority], "Host %r" % q.headers.get_all("Host"))


RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def t_file_sink():
    binary = bytes(range(256)) * 2
    tmp = tempfile.mkdtemp(prefix="anonproxy-it-sink-")
    try:
        sink_path = os.path.join(tmp, "events.ndjson")
        binfile = os.path.join(tmp, "bin.dat")
        with open(binfile, "wb") as f:
            f.write(binary)
        port = free_port()
        cfg = make_config(port, upstreams={"sink": {"file": sink_path}},
                          routes=[{"name": "collect", "match": {"path": "/"}, "upstream": "sink"}])
        calls = [
            ("POST", "/collect?a=1", ["-H", "Content-Type: text/plain", "--data-binary", "hello world"],
             b"hello world"),
            ("POST", "/collect?bin=1", ["-H", "Content-Type: application/octet-stream",
                                        "--data-binary", "@" + binfile], binary),
            ("POST", "/collect/utf8", ["-H", "Accept: x-test/1", "--data-binary", "h\u00e9llo \u2713"],
             "h\u00e9llo \u2713".encode()),
            ("GET", "/collect?b=2", ["-H", "Accept: x-test/get"], b""),
        ]
        t0 = time.time()
        with Proxy(cfg, port=port) as p:
            for method, target, args, _ in calls:
                res = curl(p.url(target), "-X", method, *args)
                check(res.status == 204, "%s %s via curl: %r" % (method, target, res))

            def complete():
                try:
                    with open(sink_path, "rb") as f:
                        data = f.read()
                except OSError:
                    return None
                return data if data.count(b"\n") >= 4 else None
            data = wait_for(complete, 3.0)
            if not data:
                raise CaseFailure("sink file has fewer than 4 lines: %s" % (
                    short(open(sink_path, "rb").read()) if os.path.exists(sink_path) else "no file"))
        rows = data.split(b"\n")
        check(rows[-1] == b"" and len(rows) == 5,
              "want exactly 4 newline-terminated lines: %s" % short(data, 600))
        for (method, target, args, body), row in zip(calls, rows):
            try:
                ev = json.loads(row)
            except ValueError as e:
                raise CaseFailure("line is not JSON (%s): %s" % (e, short(row)))
            check(isinstance(ev, dict), "line is not a JSON object: %s" % short(row))
            check(ev.get("method") == method and ev.get("target") == target,
                  "method/target %r %r, want %s %s" % (ev.get("method"), ev.get("target"), method, target))
            tm = ev.get("time")
            check(isinstance(tm, str) and RFC3339_UTC.match(tm), "time %r is not RFC 3339 UTC" % tm)
            ts = calendar.timegm(time.strptime(tm[:19], "%Y-%m-%dT%H:%M:%S"))
            check(abs(ts - t0) < 120, "time %r is not now" % tm)
            hdrs = ev.get("headers")
            check(isinstance(hdrs, list) and all(isinstance(h, list) and len(h) == 2 and
                                                 all(isinstance(x, str) for x in h) for h in hdrs),
                  "headers not a list of [name, value]: %r" % hdrs)
            xt = [a for a in args if a.startswith("Accept: ")]
            if xt:
                got = [v for k, v in hdrs if k.lower() == "accept"]
                check(got == [xt[0][8:]], "Accept in the sink %r, want %r" % (got, xt[0][8:]))
            enc = ev.get("body_encoding")
            if enc == "base64":
                got = base64.b64decode(ev.get("body") or "")
            else:
                check(enc == "utf8", "body_encoding %r" % enc)
                got = (ev.get("body") or "").encode("utf-8")
            check(got == body, "%s %s body %s, want %s" % (method, target, short(got), short(body)))
            if body == binary:
                check(enc == "base64", "binary body encoded as %r" % enc)
            elif body:
                check(enc == "utf8", "text body encoded as %r" % enc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def t_expect_body_sent_at_once():
    with Backend() as b, Proxy(backend=b) as p, Client(p.port, timeout=3) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
               b"hello" + get("/next"))
        r = c.response()
        check(r is not None and r.status == 200, "final %r" % r)
        check(all(i.status == 100 for i in r.interim), "interim %r" % r.interim)
        r2 = c.response()
        check(r2 is not None and r2.status == 200, "pipelined request after the body: %r" % r2)
        reqs = b.wait_requests(2)
        check([q.target for q in reqs] == ["/e", "/next"] and reqs[0].body == b"hello" and
              all(q.well_formed for q in reqs), "backend got %r" % reqs)


def t_head_chunked_upstream_then_get():
    with Backend(body=b"chunked body", framing="chunked") as b, Proxy(backend=b) as p, Client(p.port) as c:
        c.send(get("/h", method=b"HEAD") + get("/g"))
        r1 = c.response("HEAD")
        check(r1 is not None and r1.status == 200, "HEAD %r" % r1)
        r2 = c.response("GET")
        check(r2 is not None and r2.status == 200 and r2.body == b"chunked body",
              "GET pipelined after HEAD: %r" % r2)


def t_concurrent_clients():
    import threading
    errors = []
    with Backend(body=lambda q: q.target.encode(), delay=0.05) as b, Proxy(backend=b) as p:
        def worker(k):
            try:
                with Client(p.port, timeout=10) as c:
                    for i in range(5):
                        path = "/c%d/%d" % (k, i)
                        r = c.request(get(path))
                        if r is None or r.status != 200 or r.body != path.encode():
                            errors.append("%s: %r" % (path, r))
                            return
            except Exception as e:  # noqa: collect every worker's failure
                errors.append("client %d: %s: %s" % (k, type(e).__name__, e))
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(30)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(25)
        check(not errors, "%d of 30 clients failed: %s" % (len(errors), errors[:3]))
        check(len(b.requests) == 150, "backend got %d requests, want 150" % len(b.requests))


def t_two_workers():
    with Backend(body=b"w") as b:
        port = free_port()
        with Proxy(make_config(port, b, workers=2), port=port) as p:
            for i in range(6):
                ex = exchange(p.port, get("/%d" % i, extra=b"Connection: close\r\n"))
                r = ex.first()
                check(r is not None and r.status == 200 and r.body == b"w", "request %d: %s" % (i, ex.describe()))


def t_client_aborts_mid_body():
    with Backend() as b, Proxy(backend=b) as p:
        with Client(p.port) as c:
            c.send(b"POST /abort HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
            time.sleep(0.2)
        time.sleep(0.3)
        check(not [q for q in b.requests if q.complete], "backend got a complete request: %r" % b.requests)
        check(p.alive(), "proxy died")
        with Client(p.port) as c:
            r = c.request(get("/after"))
            check(r is not None and r.status == 200, "request after an aborted upload: %r" % r)


def t_client_leaves_while_waiting():
    with Backend(delay=lambda q: 0.5 if q.target == "/slow" else 0, body=lambda q: q.target.encode()) as b, \
            Proxy(backend=b) as p:
        with Client(p.port) as c:
            c.send(get("/slow"))
            time.sleep(0.1)
        time.sleep(0.7)
        check(p.alive(), "proxy died")
        with Client(p.port) as c:
            for path in ("/a", "/b"):
                r = c.request(get(path))
                check(r is not None and r.status == 200 and r.body == path.encode(),
                      "%s after a client left mid-request: %r" % (path, r))


def t_ipv6_listen():
    import socket as so
    try:
        t = so.socket(so.AF_INET6)
        t.bind(("::1", 0))
        port = t.getsockname()[1]
        t.close()
    except OSError:
        print("# ::1 unavailable, IPv6 listener not tested")
        return
    with Backend(body=b"v6") as b:
        cfg = make_config(port, b)
        cfg["listen"] = [{"address": "[::1]:%d" % port}]
        with Proxy(cfg, port=port, host="::1") as p, Client(port, host="::1") as c:
            r = c.request(get("/"))
            check(r is not None and r.status == 200 and r.body == b"v6", "over ::1: %r" % r)


def t_strict_paths_redacted():
    """Strict profile: an e-mail, phone number or address in the target's
    path, or in the path of a page URL in a parameter, never reaches the
    backend, encoded or not; a path without one is forwarded as it came."""
    target = ("/u/canary.path%40example.com/call/+41446681800/ip/198.51.100.77"
              "/s/123e4567-e89b-12d3-a456-426614174000"
              "?url=https%3A%2F%2Fa.example%2Fuser%2Fcanary.url%40example.com%2Forders&x=1")
    with Backend() as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get(target))
        check(r is not None and r.status == 200, "response %r" % r)
        q = one_request(b)
        raw = b.raw()
        for canary in (b"canary.path", b"canary.url", b"41446681800", b"198.51.100.77", b"%40",
                       b"426614174000"):
            check(canary not in raw, "%r reached the backend: %s" % (canary, short(raw)))
        want = ("GET /u/(redacted)/call/(redacted)/ip/(redacted)/s/(redacted)?url=https%3A%2F%2Fa.example"
                "%2Fuser%2F(redacted)%2Forders&x=1 HTTP/1.1")
        check(q.request_line == want, "request line %r, want %r" % (q.request_line, want))
        c.request(get("/plain/2024/11/27/article-1234567"))
        reqs = b.wait_requests(2, 3.0)
        check(reqs[1].request_line == "GET /plain/2024/11/27/article-1234567 HTTP/1.1",
              "clean path changed: %r" % reqs[1].request_line)


CASES = [
    ("get_forwarded_reserialised_with_upstream_host", t_get_forwarded),
    ("host_preserve", t_host_preserve),
    ("http10_request_reserialised_as_http11", t_http10_reserialised),
    ("hop_by_hop_request_headers_removed", t_hop_by_hop_request),
    ("connection_close_and_named_header", t_connection_close_named),
    ("hop_by_hop_response_headers_removed", t_hop_by_hop_response),
    ("keepalive_sequential_requests", t_keepalive_sequential),
    ("pipelined_responses_in_order", t_pipelined_in_order),
    ("pipelined_post_with_body_then_get", t_pipelined_post_then_get),
    ("pipelined_chunked_post_then_get", t_pipelined_chunked_post_then_get),
    ("chunked_request_streamed_in_pieces", t_chunked_request_streamed),
    ("content_length_request_streamed_in_pieces", t_content_length_streamed),
    ("empty_post_body", t_empty_post),
    ("large_request_and_response_bodies", t_large_bodies),
    ("response_content_length_kept", t_response_content_length_kept),
    ("chunked_response_to_http11_client", t_chunked_response_to_http11),
    ("close_delimited_response_chunked_to_http11", t_close_delimited_response_to_http11),
    ("chunked_response_close_delimited_to_http10", t_chunked_response_to_http10),
    ("expect_100_continue_answered_by_proxy", t_expect_100_continue),
    ("expect_100_body_sent_without_waiting", t_expect_body_sent_at_once),
    ("request_trailers_dropped", t_request_trailers_dropped),
    ("response_trailers_dropped", t_response_trailers_dropped),
    ("head_has_no_body", t_head),
    ("head_on_chunked_upstream_then_pipelined_get", t_head_chunked_upstream_then_get),
    ("early_hints_103_to_http11", t_early_hints_http11),
    ("no_1xx_to_http10", t_early_hints_not_to_http10),
    ("status_204_passthrough", t_204_passthrough),
    ("backend_500_passthrough", t_backend_error_passthrough),
    ("curl_get", t_curl_get),
    ("route_no_match_404", t_route_404),
    ("route_path_prefix_first_match", t_route_path_first_match),
    ("route_host_and_method", t_route_host_and_method),
    ("absolute_form_same_host", t_absolute_form_same_host),
    ("file_sink_ndjson", t_file_sink),
    ("concurrent_clients_30x5", t_concurrent_clients),
    ("two_workers", t_two_workers),
    ("client_aborts_mid_body", t_client_aborts_mid_body),
    ("client_leaves_while_waiting", t_client_leaves_while_waiting),
    ("ipv6_listener", t_ipv6_listen),
    ("strict_paths_redacted", t_strict_paths_redacted),
]

if __name__ == "__main__":
    run_cases(CASES)

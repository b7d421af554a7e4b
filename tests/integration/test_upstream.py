#!/usr/bin/env python3
"""Upstream failures and limits: 502 on refused/reset/garbage, 504 on a slow
head, truncation on a reset mid-body, the pooled connection and its retry,
and the 413/414/431/503 limits."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Proxy, Truncated, check, error_why,  # noqa: E402
                     exchange, free_port, make_config, proxy_error_problems,
                     run_cases, short)


def get(path="/", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a.example\r\n" + extra + b"\r\n"


def expect_error(p, raw, code, within=None, log=True):
    """Send raw on a fresh connection: a proxy-generated `code`, the
    connection closed, and (if `log`) a log line with the reason."""
    ex = exchange(p.port, raw, timeout=(within or 3.0) + 2.0)
    r = ex.first()
    probs = proxy_error_problems(r, code)
    check(not probs, "%s; %s" % ("; ".join(probs), ex.describe()))
    check(ex.closed, "connection left open after %d" % code)
    if within is not None:
        check(ex.elapsed <= within, "%d after %.2fs, want <= %.1fs" % (code, ex.elapsed, within))
    if log:
        why = error_why(r)
        check(why and p.wait_log(why), "no log line with the reason %r on stderr: %s" % (why, p.stderr_tail()))
    return ex


def survives(p, b):
    """The proxy still serves after the failure (backend switched to ok)."""
    b.mode = "ok"
    check(p.alive(), "proxy died; stderr: %s" % p.stderr_tail())
    ex = exchange(p.port, get("/after", b"Connection: close\r\n"), timeout=3.0)
    r = ex.first()
    check(r is not None and r.status == 200, "request after the failure: %s" % ex.describe())


# --- failures -----------------------------------------------------------

def t_upstream_down():
    port = free_port()
    cfg = make_config(port, upstreams={"backend": {"servers": ["http://127.0.0.1:%d" % free_port()]}})
    with Proxy(cfg, port=port) as p:
        expect_error(p, get("/"), 502, within=2.0)
        # The refused server is now marked down (max_fails 1, fail_timeout
        # 10s): with no healthy server left the answer is 503, as Envoy's
        # "no healthy upstream".
        ex = expect_error(p, get("/again"), 503, within=2.0, log=False)
        check(ex.first() is not None, "second request")


def t_upstream_head_timeout():
    with Backend(mode="hang") as b, Proxy(backend=b, timeouts={"upstream_head": "500ms"}) as p:
        ex = expect_error(p, get("/slow"), 504, within=3.0)
        check(ex.elapsed >= 0.4, "504 after %.2fs, before upstream_head (500ms)" % ex.elapsed)
        survives(p, b)


def t_slow_within_timeout():
    with Backend(delay=0.5, body=b"late") as b, Proxy(backend=b, timeouts={"upstream_head": "2s"}) as p, \
            Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200 and r.body == b"late", "response %r" % r)


def t_reset_before_response():
    with Backend(mode="reset_before") as b, Proxy(backend=b) as p:
        expect_error(p, get("/"), 502, within=3.0)
        survives(p, b)


def t_close_without_answer():
    with Backend(mode="close_no_answer") as b, Proxy(backend=b) as p:
        expect_error(p, get("/x"), 502, within=3.0)
        time.sleep(0.2)
        n = len([q for q in b.requests if q.target == "/x"])
        check(1 <= n <= 2, "backend saw the request %d times (at most one retry)" % n)
        survives(p, b)


def t_garbage_response():
    with Backend(mode="garbage") as b, Proxy(backend=b) as p:
        ex = expect_error(p, get("/"), 502, within=3.0)
        check(b"abc" not in ex.data, "garbage passed to the client: %s" % short(ex.data))
        survives(p, b)


def t_unsolicited_101():
    with Backend(mode="101") as b, Proxy(backend=b) as p:
        ex = exchange(p.port, get("/"), timeout=3.0)
        check(b"TUNNEL-BYTES" not in ex.data, "tunnel opened: %s" % ex.describe())
        r = ex.first()
        check(r is not None and r.status != 101, "101 relayed: %s" % ex.describe())
        probs = proxy_error_problems(r, 502)
        check(not probs, "%s; %s" % ("; ".join(probs), ex.describe()))
        survives(p, b)


def reset_mid_body(framing):
    body = b"x" * 100000
    with Backend(mode="reset_mid_body", body=body, framing=framing) as b, Proxy(backend=b) as p, \
            Client(p.port, timeout=3.0) as c:
        c.send(get("/mid"))
        try:
            r = c.response()
            raise AssertionError("complete response from a backend that reset mid-body: %r" % r)
        except Truncated as e:
            r = e.partial
            check(r is not None and r.status == 200, "want the 200 head then a truncation, got %r" % r)
            check(len(r.body) < len(body), "body complete")
        except socket.timeout:
            raise AssertionError("client connection not closed within 3s after the upstream reset")
        time.sleep(0.2)
        n = len([q for q in b.requests if q.target == "/mid"])
        check(n == 1, "request sent %d times; no retry once response bytes went out" % n)
        survives(p, b)


def t_reset_mid_body_length():
    reset_mid_body("length")


def t_reset_mid_body_chunked():
    reset_mid_body("chunked")


def t_upstream_body_idle():
    body = b"y" * 10000
    with Backend(mode="hang_mid_body", body=body) as b, \
            Proxy(backend=b, timeouts={"upstream_body_idle": "500ms"}) as p, Client(p.port, timeout=4.0) as c:
        t0 = time.monotonic()
        c.send(get("/"))
        try:
            r = c.response()
            raise AssertionError("complete response from a stalled backend: %r" % r)
        except Truncated as e:
            check(e.partial is not None and e.partial.status == 200, "partial %r" % e.partial)
        except socket.timeout:
            raise AssertionError("client connection not closed 4s after the upstream stalled "
                                 "(upstream_body_idle 500ms)")
        el = time.monotonic() - t0
        check(el >= 0.5, "closed after %.2fs, before upstream_body_idle" % el)


def t_upstream_connect_timeout():
    ls = socket.socket()
    fillers = []
    try:
        ls.bind(("127.0.0.1", 0))
        ls.listen(0)
        for _ in range(4):
            f = socket.socket()
            f.settimeout(0.2)
            try:
                f.connect(ls.getsockname())
            except OSError:
                pass
            fillers.append(f)
        port = free_port()
        cfg = make_config(port, upstreams={"backend": {"servers": ["http://127.0.0.1:%d" % ls.getsockname()[1]]}},
                          timeouts={"upstream_connect": "500ms"})
        with Proxy(cfg, port=port) as p:
            ex = exchange(p.port, get("/"), timeout=4.0)
            r = ex.first()
            check(r is not None and r.status in (502, 504), "want 502/504: %s" % ex.describe())
            check(not proxy_error_problems(r, r.status), "; ".join(proxy_error_problems(r, r.status)))
            check(0.4 <= ex.elapsed <= 3.0, "answered after %.2fs with upstream_connect 500ms" % ex.elapsed)
    finally:
        for f in fillers:
            f.close()
        ls.close()


# --- pooling and retries -------------------------------------------------

def t_pool_reuses_connection():
    with Backend(body=b"pooled") as b, Proxy(backend=b) as p:
        for i in range(5):
            ex = exchange(p.port, get("/%d" % i, b"Connection: close\r\n"), timeout=3.0)
            r = ex.first()
            check(r is not None and r.status == 200, "request %d: %s" % (i, ex.describe()))
        check(len(b.requests) == 5, "backend got %d requests" % len(b.requests))
        check(b.nconns() == 1, "5 sequential requests used %d upstream connections, want 1 (pooled)"
              % b.nconns())


def stale_pool(mode, n, gap):
    with Backend(mode=mode, body=lambda q: q.target.encode()) as b, Proxy(backend=b) as p, \
            Client(p.port) as c:
        for i in range(n):
            r = c.request(get("/r%d" % i))
            check(r is not None and r.status == 200 and r.body == b"/r%d" % i,
                  "request %d of %d: %r; stderr: %s" % (i, n, r, p.stderr_tail(300)))
            if gap:
                time.sleep(gap)


def t_stale_pool_closed_idle_spaced():
    stale_pool("close_idle", 8, 0.15)


def t_stale_pool_closed_idle_back_to_back():
    stale_pool("close_idle", 20, 0)


def t_stale_pool_request_dropped():
    stale_pool("drop_reused", 10, 0.05)


def t_retry_only_once():
    with Backend(mode="ok") as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/first"))
        check(r is not None and r.status == 200, "first %r" % r)
        b.mode = "close_no_answer"
        ex = exchange(p.port, get("/second"), timeout=4.0)
        probs = proxy_error_problems(ex.first(), 502)
        check(not probs, "%s; %s" % ("; ".join(probs), ex.describe()))
        time.sleep(0.2)
        n = len([q for q in b.requests if q.target == "/second"])
        check(n == 2, "request sent %d times on a failing upstream, want 2 (one retry)" % n)


# --- limits ----------------------------------------------------------------

LIMITS = {"target_bytes": "1k", "header_line_bytes": "2k", "header_bytes": "6k",
          "header_count": 10, "body_bytes": "1k"}
ROUTE_NO_MAX = [{"name": "main", "match": {"path": "/"}, "upstream": "backend"}]


def limited(b):
    port = free_port()
    return Proxy(make_config(port, b, limits=LIMITS, routes=ROUTE_NO_MAX), port=port)


def ok(p, raw, what):
    ex = exchange(p.port, raw, timeout=3.0)
    r = ex.first()
    check(r is not None and r.status == 200, "%s: %s" % (what, ex.describe()))


def t_413_by_content_length():
    with Backend() as b, limited(b) as p:
        # The body is never sent: the proxy must answer on the head alone.
        expect_error(p, b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1025\r\n\r\n", 413, within=1.0)
        time.sleep(0.2)
        check(b.total_bytes() == 0, "backend received %s" % short(b.raw()))
        ok(p, b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n"
           + b"z" * 1024, "body of exactly body_bytes")


def t_413_route_max_body_bytes():
    with Backend() as b:
        port = free_port()
        cfg = make_config(port, b, routes=[
            {"name": "small", "match": {"path": "/small"}, "upstream": "backend", "max_body_bytes": "100"},
            {"name": "big", "match": {"path": "/"}, "upstream": "backend", "max_body_bytes": "64k"}])
        with Proxy(cfg, port=port) as p:
            expect_error(p, b"POST /small HTTP/1.1\r\nHost: a.example\r\nContent-Length: 101\r\n\r\n",
                         413, within=1.0)
            ok(p, b"POST /big HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"
               + b"z" * 5000, "5000 bytes under a 64k route limit")


def t_413_chunked_over_limit():
    with Backend() as b, limited(b) as p, Client(p.port, timeout=3.0) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(6):
                c.send(b"100\r\n" + b"q" * 256 + b"\r\n")
                time.sleep(0.02)
        except OSError:
            pass
        try:
            r = c.response()
        except (Truncated, ConnectionResetError) as e:
            raise AssertionError("connection closed before a 413 arrived: %s" % e)
        probs = proxy_error_problems(r, 413)
        check(not probs, "; ".join(probs) + " %r" % r)
        time.sleep(0.2)
        done = [q for q in b.requests if q.complete]
        check(not done, "backend received a complete over-limit request: %r" % done)


def t_414_target():
    with Backend() as b, limited(b) as p:
        expect_error(p, get("/" + "t" * 1100), 414)
        ok(p, get("/" + "t" * 900, b"Connection: close\r\n"), "900-byte target")
        time.sleep(0.1)
        check(len(b.requests) == 1, "backend got %r" % b.requests)


def t_431_header_line():
    with Backend() as b, limited(b) as p:
        expect_error(p, get("/", b"X-Long: " + b"a" * 2100 + b"\r\n"), 431)
        ok(p, get("/", b"X-Long: " + b"a" * 1900 + b"\r\nConnection: close\r\n"), "1900-byte header line")


def t_431_header_total():
    with Backend() as b, limited(b) as p:
        big = b"".join(b"X-B%d: %s\r\n" % (i, b"b" * 1500) for i in range(5))
        expect_error(p, get("/", big), 431)
        ok(p, get("/", big[:3 * 1508] + b"Connection: close\r\n"), "4.5k head")


def t_431_header_count():
    with Backend() as b, limited(b) as p:
        eleven = b"".join(b"X-N%d: 1\r\n" % i for i in range(10))  # + Host = 11
        expect_error(p, get("/", eleven), 431)
        ten = b"".join(b"X-N%d: 1\r\n" % i for i in range(8)) + b"Connection: close\r\n"
        ok(p, get("/", ten), "10 header lines")


def t_503_connections_per_worker():
    with Backend() as b, Proxy(backend=b, limits={"connections_per_worker": 2}) as p:
        idle = [Client(p.port), Client(p.port)]
        try:
            time.sleep(0.3)
            ex = exchange(p.port, get("/"), timeout=3.0)
            probs = proxy_error_problems(ex.first(), 503)
            check(not probs, "third connection with connections_per_worker 2: %s; %s"
                  % ("; ".join(probs), ex.describe()))
            check(ex.closed, "503 connection left open")
        finally:
            idle[0].close()
        time.sleep(0.3)
        try:
            ok(p, get("/", b"Connection: close\r\n"), "a connection after one was freed")
        finally:
            idle[1].close()


# --- malformed responses ---------------------------------------------------

def bad_response(raw, what, ok=None, close=False):
    """The backend answers `raw`: the client gets a proxy 502, or (when
    `ok` is given) a response that ok(exchange) accepts as safely
    normalised. Either way the proxy keeps serving."""
    with Backend(mode="raw", raw_response=raw, raw_close=close) as b, Proxy(backend=b) as p:
        ex = exchange(p.port, get("/"), timeout=3.0,
                      done=lambda rs: any(r.status >= 200 for r in rs))
        r = ex.first()
        check(r is not None, "%s: %s" % (what, ex.describe()))
        if r.status == 502:
            probs = proxy_error_problems(r, 502)
            check(not probs, "%s: %s; %s" % (what, "; ".join(probs), ex.describe()))
        else:
            check(ok is not None, "%s: want 502, %s" % (what, ex.describe()))
            why = ok(ex)
            check(why is None, "%s: %s; %s" % (what, why, ex.describe()))
        survives(p, b)


def t_response_cl_and_te():
    def ok(ex):
        r = ex.first()
        if r.header("Content-Length") is not None and r.header("Transfer-Encoding") is not None:
            return "both Content-Length and Transfer-Encoding forwarded"
        if r.body != b"hello":
            return "body %s, want the chunked decoding 'hello'" % short(r.body)
        return None
    bad_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n", "response with Content-Length and Transfer-Encoding", ok)


def t_response_two_content_lengths():
    bad_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!",
                 "response with two different Content-Length", close=True)


def t_response_bad_content_length():
    bad_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello", "Content-Length: 5x",
                 close=True)


def t_response_obs_fold():
    def ok(ex):
        r = ex.first()
        if b"\r\n " in ex.data.split(b"\r\n\r\n")[0] or b"\r\n\t" in ex.data.split(b"\r\n\r\n")[0]:
            return "obs-fold forwarded"
        v = r.header("X-Fold")
        if v is not None and v not in ("a b", "a  b"):
            return "X-Fold %r" % v
        return None
    bad_response(b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
                 "response header with obs-fold", ok)


def t_response_space_before_colon():
    def ok(ex):
        if b"X-Bad :" in ex.data:
            return "'X-Bad :' forwarded with the space"
        return None
    bad_response(b"HTTP/1.1 200 OK\r\nX-Bad : 1\r\nContent-Length: 2\r\n\r\nok",
                 "response header with space before colon", ok)


def t_response_nul_in_header():
    def ok(ex):
        head = ex.data.split(b"\r\n\r\n")[0]
        return "NUL forwarded in the response head" if b"\x00" in head else None
    bad_response(b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\nok",
                 "response header with NUL", ok)


def t_response_head_too_big():
    bad_response(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"h" * 1000) for i in range(200))
                 + b"Content-Length: 2\r\n\r\nok", "200 KB response head", close=True)


def t_response_extra_bytes_after_body():
    """Bytes after a Content-Length body must never reach the client, as a
    body or as the next response (response splitting)."""
    raw = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
           b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
    with Backend(mode="raw", raw_response=raw) as b, Proxy(backend=b) as p, Client(p.port) as c:
        r = c.request(get("/one"))
        check(r is not None and r.status == 200 and r.body == b"hello", "first response %r" % r)
        b.mode = "ok"
        b.body = b"second"
        r = c.request(get("/two"))
        check(r is not None and r.body == b"second", "second response %r (the extra bytes of the "
              "first were taken as a response)" % r)


def t_response_bad_chunk_after_head():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
    with Backend(mode="raw", raw_response=raw) as b, Proxy(backend=b) as p, Client(p.port, timeout=3.0) as c:
        c.send(get("/"))
        try:
            r = c.response()
            raise AssertionError("complete response from a broken chunked body: %r" % r)
        except Truncated as e:
            check(e.partial is None or e.partial.status == 200, "partial %r" % e.partial)
        except socket.timeout:
            raise AssertionError("client connection not closed after an invalid chunk from upstream")
        survives(p, b)


CASES = [
    ("upstream_down_502", t_upstream_down),
    ("upstream_head_timeout_504", t_upstream_head_timeout),
    ("upstream_slow_within_timeout_200", t_slow_within_timeout),
    ("upstream_reset_before_response_502", t_reset_before_response),
    ("upstream_close_without_answer_502", t_close_without_answer),
    ("upstream_garbage_response_502", t_garbage_response),
    ("upstream_unsolicited_101_502", t_unsolicited_101),
    ("upstream_reset_mid_body_content_length", t_reset_mid_body_length),
    ("upstream_reset_mid_body_chunked", t_reset_mid_body_chunked),
    ("upstream_body_idle_timeout", t_upstream_body_idle),
    ("upstream_connect_timeout", t_upstream_connect_timeout),
    ("response_content_length_and_chunked", t_response_cl_and_te),
    ("response_two_content_lengths_502", t_response_two_content_lengths),
    ("response_bad_content_length_502", t_response_bad_content_length),
    ("response_obs_fold", t_response_obs_fold),
    ("response_space_before_colon", t_response_space_before_colon),
    ("response_nul_in_header", t_response_nul_in_header),
    ("response_head_too_big_502", t_response_head_too_big),
    ("response_extra_bytes_after_body_dropped", t_response_extra_bytes_after_body),
    ("response_invalid_chunk_after_head_truncates", t_response_bad_chunk_after_head),
    ("pool_reuses_upstream_connection", t_pool_reuses_connection),
    ("stale_pool_backend_closes_idle_spaced", t_stale_pool_closed_idle_spaced),
    ("stale_pool_backend_closes_idle_back_to_back", t_stale_pool_closed_idle_back_to_back),
    ("stale_pool_reused_request_dropped_retried", t_stale_pool_request_dropped),
    ("retry_only_once", t_retry_only_once),
    ("limit_413_by_content_length", t_413_by_content_length),
    ("limit_413_route_max_body_bytes", t_413_route_max_body_bytes),
    ("limit_413_chunked_over_limit", t_413_chunked_over_limit),
    ("limit_414_target", t_414_target),
    ("limit_431_header_line", t_431_header_line),
    ("limit_431_header_total", t_431_header_total),
    ("limit_431_header_count", t_431_header_count),
    ("limit_503_connections_per_worker", t_503_connections_per_worker),
]

if __name__ == "__main__":
    run_cases(CASES)

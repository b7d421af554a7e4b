#!/usr/bin/env python3
"""Strict request parsing: malformed and smuggling-prone requests get a
proxy-generated 4xx (or the named 5xx) and a close, and the backend receives
nothing. Where a request may legitimately be normalised, the backend must
receive exactly one well-formed request.

The table CASES is data: add a row to add a case. A row is
    (name, raw request bytes, accepted statuses, options)
with options (all optional):
    "forward": a check(list of backend Requests) -> None or a problem;
               when given, a 2xx answer is also accepted if the backend got
               exactly one request and the check passes
    "phase":   "head" (default): the backend must receive no byte;
               "body": the error is in the body, which the proxy may see
               only after it started forwarding: the backend must never
               receive a complete request
    "latency": the response must arrive within this many seconds while the
               client keeps the connection open
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Proxy, check, exchange, make_config,  # noqa: E402
                     proxy_error_problems, run_cases, short, CaseFailure)

HOST = b"Host: a.example"


def R(*headers, body=b"", line=b"GET / HTTP/1.1"):
    """A request from a request line, header lines (no CRLF) and a body."""
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def CHUNKED_POST(chunks):
    return R(HOST, b"Transfer-Encoding: chunked", body=chunks, line=b"POST / HTTP/1.1")


def forwarded(body=b"", absent=(), target="/"):
    """A forward check: one well-formed request, the given decoded body, none
    of the `absent` headers, and no hop-by-hop header that names them."""
    def chk(reqs):
        if len(reqs) != 1:
            return "backend got %d requests, want 1: %r" % (len(reqs), reqs)
        r = reqs[0]
        if not r.well_formed:
            return "backend got a malformed request: %r raw head %s" % (r.errors, short(r.raw_head))
        if r.body != body:
            return "backend body %s, want %s" % (short(r.body), short(body))
        if r.target != target:
            return "backend target %r, want %r" % (r.target, target)
        for h in absent:
            if r.headers.has(h):
                return "backend received header %s: %r" % (h, r.headers.get_all(h))
        conn = ",".join(r.headers.get_all("Connection")).lower()
        for h in absent:
            if h.lower() in conn:
                return "backend Connection header still names %s: %r" % (h, conn)
        return None
    return chk


E400 = {400}
E400_501 = {400, 501}
E400_505 = {400, 505}
BODY = {"phase": "body"}

CASES = [
    # --- positive controls: the harness and the proxy agree on valid input
    ("valid_get", R(HOST), {200}, {"forward": forwarded()}),
    ("valid_post_content_length", R(HOST, b"Content-Length: 5", body=b"hello", line=b"POST / HTTP/1.1"),
     {200}, {"forward": forwarded(b"hello")}),
    ("valid_chunked_with_extension",
     CHUNKED_POST(b"5;name=value\r\nhello\r\n6;x;y=\"q\"\r\n world\r\n0\r\n\r\n"),
     {200}, {"forward": forwarded(b"hello world")}),
    # RFC 9112 7.1.1 allows BWS before ';' but rejecting it is the safer
    # choice many servers make: either is fine, a wrong forward is not.
    ("chunk_extension_with_bws",
     CHUNKED_POST(b"5 ; x\r\nhello\r\n0\r\n\r\n"),
     {400}, {"forward": forwarded(b"hello"), "phase": "body"}),
    ("valid_empty_header_value", R(HOST, b"X-Empty:"), {200}, {"forward": forwarded()}),
    ("valid_body_on_get", R(HOST, b"Content-Length: 3", body=b"abc"), {200}, {"forward": forwarded(b"abc")}),
    ("valid_http10_without_host", b"GET / HTTP/1.0\r\n\r\n", {200}, {"forward": forwarded()}),
    ("valid_te_upper_case_chunked",
     R(HOST, b"Transfer-Encoding: CHUNKED", body=b"3\r\nabc\r\n0\r\n\r\n", line=b"POST / HTTP/1.1"),
     {200, 400, 501}, {"forward": forwarded(b"abc")}),

    # --- line endings
    ("bare_cr_in_request_line", b"GET / HTTP/1.1\rHost: a.example\r\n\r\n", E400, {}),
    ("bare_cr_header_line_end", b"GET / HTTP/1.1\r\nHost: a.example\rX-A: 1\r\n\r\n", E400, {}),
    ("bare_lf_request_line", b"GET / HTTP/1.1\nHost: a.example\r\n\r\n", E400, {}),
    ("bare_lf_header_line_end", b"GET / HTTP/1.1\r\nHost: a.example\nX-A: 1\r\n\r\n", E400, {}),
    ("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: a.example\n\n", E400, {}),

    # --- header field syntax
    ("space_before_colon_host", R(b"Host : a.example"), E400, {}),
    ("space_before_colon_other", R(HOST, b"X-A : 1"), E400, {}),
    ("tab_before_colon_content_length",
     R(HOST, b"Content-Length\t: 5", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("space_before_colon_transfer_encoding",
     R(HOST, b"Transfer-Encoding : chunked", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"), E400, {}),
    ("obs_fold_space", R(HOST, b"X-A: 1", b" continued"), E400, {}),
    ("obs_fold_htab", R(HOST, b"X-A: 1", b"\tcontinued"), E400, {}),
    ("obs_fold_first_header", R(b" Host: a.example", HOST), E400, {}),
    ("empty_header_name", R(HOST, b": x"), E400, {}),
    ("header_without_colon", R(HOST, b"X-A 1"), E400, {}),
    ("header_name_at_sign", R(HOST, b"X@Y: 1"), E400, {}),
    ("header_name_space", R(HOST, b"X Y: 1"), E400, {}),
    ("header_name_quotes", R(HOST, b'"X": 1'), E400, {}),
    ("header_name_nul", R(HOST, b"X\x00Y: 1"), E400, {}),
    ("header_name_non_ascii", R(HOST, b"X\xc3\xa9: 1"), E400, {}),
    ("nul_in_value", R(HOST, b"X-A: a\x00b"), E400, {}),
    ("cr_in_value", R(HOST, b"X-A: a\rb"), E400, {}),
    ("lf_in_value", R(HOST, b"X-A: a\nb"), E400, {}),
    ("control_char_in_value", R(HOST, b"X-A: a\x01b"), E400, {}),
    ("del_in_value", R(HOST, b"X-A: a\x7fb"), E400, {}),

    # --- Content-Length
    ("content_length_plus", R(HOST, b"Content-Length: +5", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_minus", R(HOST, b"Content-Length: -5", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_hex", R(HOST, b"Content-Length: 0x5", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_inner_space", R(HOST, b"Content-Length: 5 5", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_list_differ", R(HOST, b"Content-Length: 5,6", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    # RFC 9110 8.6 lets a recipient take a list of identical values as one.
    ("content_length_list_same", R(HOST, b"Content-Length: 5,5", body=b"hello", line=b"POST / HTTP/1.1"),
     E400, {"forward": forwarded(b"hello")}),
    ("content_length_empty", R(HOST, b"Content-Length: ", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_letters", R(HOST, b"Content-Length: five", body=b"hello", line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_overflow",
     R(HOST, b"Content-Length: 184467440737095516160", body=b"hello", line=b"POST / HTTP/1.1"), {400, 413}, {}),
    ("two_content_length_differ",
     R(HOST, b"Content-Length: 5", b"Content-Length: 6", body=b"hello!", line=b"POST / HTTP/1.1"), E400, {}),
    ("two_content_length_same",
     R(HOST, b"Content-Length: 5", b"Content-Length: 5", body=b"hello", line=b"POST / HTTP/1.1"),
     E400, {"forward": forwarded(b"hello")}),
    ("three_content_length_same",
     R(HOST, b"Content-Length: 5", b"Content-Length:5", b"Content-Length: 5 ", body=b"hello",
       line=b"POST / HTTP/1.1"), E400, {"forward": forwarded(b"hello")}),
    ("content_length_over_body_limit",
     R(HOST, b"Content-Length: 99999999999", body=b"hello", line=b"POST / HTTP/1.1"), {413}, {}),
    ("content_length_zero_with_chunked",
     R(HOST, b"Content-Length: 0", b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n",
       line=b"POST / HTTP/1.1"), E400, {}),
    ("content_length_then_transfer_encoding",
     R(HOST, b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400, {}),
    ("transfer_encoding_then_content_length",
     R(HOST, b"Transfer-Encoding: chunked", b"Content-Length: 5", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400, {}),

    # --- Transfer-Encoding
    ("te_chunked_then_gzip",
     R(HOST, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"), E400_501, {}),
    # RFC 9112 6.3: a request whose final coding is not chunked gets 400.
    ("te_gzip_alone", R(HOST, b"Transfer-Encoding: gzip", body=b"abc", line=b"POST / HTTP/1.1"), {400, 501}, {}),
    ("te_unknown_coding", R(HOST, b"Transfer-Encoding: foo", body=b"abc", line=b"POST / HTTP/1.1"), E400_501, {}),
    ("te_identity", R(HOST, b"Transfer-Encoding: identity", body=b"abc", line=b"POST / HTTP/1.1"), E400_501, {}),
    ("te_chunked_twice_two_headers",
     R(HOST, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n",
       line=b"POST / HTTP/1.1"), E400, {}),
    ("te_chunked_then_identity_two_headers",
     R(HOST, b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity", body=b"0\r\n\r\n",
       line=b"POST / HTTP/1.1"), E400_501, {}),
    ("te_xchunked", R(HOST, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400_501, {}),
    ("te_chunked_vtab", R(HOST, b"Transfer-Encoding: chunked\x0b", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400_501, {}),
    ("te_vtab_chunked", R(HOST, b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400_501, {}),
    ("te_chunked_formfeed", R(HOST, b"Transfer-Encoding: chunked\x0c", body=b"0\r\n\r\n",
                              line=b"POST / HTTP/1.1"), E400_501, {}),
    ("te_empty_value", R(HOST, b"Transfer-Encoding: ", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400_501, {}),
    ("te_chunked_and_empty_header",
     R(HOST, b"Transfer-Encoding: chunked", b"Transfer-Encoding: ", body=b"0\r\n\r\n", line=b"POST / HTTP/1.1"),
     E400_501, {}),
    ("te_in_http10", R(HOST, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n",
                       line=b"POST / HTTP/1.0"), E400, {}),

    # --- chunked body syntax (errors found after the head: see "phase")
    ("chunk_size_overflow", CHUNKED_POST(b"FFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"), {400, 413}, BODY),
    ("chunk_size_0x_prefix", CHUNKED_POST(b"0x5\r\nhello\r\n0\r\n\r\n"), E400, BODY),
    ("chunk_size_negative", CHUNKED_POST(b"-1\r\nhello\r\n0\r\n\r\n"), E400, BODY),
    ("chunk_size_space_garbage", CHUNKED_POST(b"5 x\r\nhello\r\n0\r\n\r\n"), E400, BODY),
    ("chunk_size_empty", CHUNKED_POST(b"\r\nhello\r\n0\r\n\r\n"), E400, BODY),
    ("chunk_size_bare_lf", CHUNKED_POST(b"5\nhello\r\n0\r\n\r\n"), E400, BODY),
    ("chunk_data_without_crlf", CHUNKED_POST(b"5\r\nhelloX0\r\n\r\n"), E400, BODY),
    ("chunk_data_longer_than_size", CHUNKED_POST(b"3\r\nhello\r\n0\r\n\r\n"), E400, BODY),

    ("chunk_extension_bare_cr", CHUNKED_POST(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), E400, BODY),
    ("chunk_trailer_bad_name", CHUNKED_POST(b"5\r\nhello\r\n0\r\nX Bad: 1\r\n\r\n"), E400, BODY),
    ("chunk_trailer_obs_fold", CHUNKED_POST(b"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"), E400, BODY),

    # --- Host
    ("missing_host_http11", R(), E400, {}),
    ("two_host_headers", R(HOST, b"Host: b.example"), E400, {}),
    ("host_with_userinfo", R(b"Host: user@a.example"), E400, {}),
    ("host_port_not_numeric", R(b"Host: a.example:abc"), E400, {}),
    ("host_port_too_big", R(b"Host: a.example:99999"), E400, {}),
    ("host_with_space", R(b"Host: a example"), E400, {}),
    # An empty reg-name is valid URI syntax but not for "http" (RFC 9110
    # 4.2.1): reject, or route it like any other host.
    ("host_empty_http11", R(b"Host: "), E400, {"forward": forwarded()}),
    ("host_with_path", R(b"Host: a.example/x"), E400, {}),
    ("host_unclosed_ipv6_bracket", R(b"Host: [::1"), E400, {}),

    # --- request target
    ("absolute_form_other_host", R(HOST, line=b"GET http://evil.example/x HTTP/1.1"), E400, {}),
    ("absolute_form_userinfo", R(HOST, line=b"GET http://user@a.example/x HTTP/1.1"), E400, {}),
    ("target_with_fragment", R(HOST, line=b"GET /a#b HTTP/1.1"), E400, {}),
    ("absolute_form_without_host", R(HOST, line=b"GET http:///x HTTP/1.1"), E400, {}),
    ("target_without_leading_slash", R(HOST, line=b"GET x HTTP/1.1"), E400, {}),
    ("target_bad_percent_encoding", R(HOST, line=b"GET /%zz HTTP/1.1"), E400,
     {"forward": forwarded(target="/%zz")}),
    ("target_with_space", R(HOST, line=b"GET /a b HTTP/1.1"), E400, {}),
    ("target_non_ascii", R(HOST, line=b"GET /\xff HTTP/1.1"), E400, {}),
    ("asterisk_with_get", R(HOST, line=b"GET * HTTP/1.1"), E400, {}),

    # --- request line and version
    ("http09_request", b"GET /\r\n", E400, {"latency": 1.0}),
    ("request_line_method_only", R(HOST, line=b"GET"), E400, {}),
    ("request_line_without_version", R(HOST, line=b"GET / "), E400, {}),
    ("request_line_two_spaces", R(HOST, line=b"GET  / HTTP/1.1"), E400, {}),
    ("request_line_tabs", R(HOST, line=b"GET\t/\tHTTP/1.1"), E400, {}),
    ("request_line_leading_space", R(HOST, line=b" GET / HTTP/1.1"), E400, {}),
    ("request_line_trailing_space", R(HOST, line=b"GET / HTTP/1.1 "), E400, {}),
    ("version_http2", R(HOST, line=b"GET / HTTP/2.0"), E400_505, {}),
    ("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", E400_505, {}),
    ("version_http12", R(HOST, line=b"GET / HTTP/1.2"), E400_505, {}),
    ("version_http30", R(HOST, line=b"GET / HTTP/3.0"), E400_505, {}),
    ("version_http110", R(HOST, line=b"GET / HTTP/1.10"), E400_505, {}),
    ("version_lower_case", R(HOST, line=b"GET / http/1.1"), E400, {}),
    ("version_without_minor", R(HOST, line=b"GET / HTTP/1"), E400, {}),
    ("method_with_parenthesis", R(HOST, line=b"GE(T / HTTP/1.1"), E400, {}),
    ("method_with_at_sign", R(HOST, line=b"G@T / HTTP/1.1"), E400, {}),
    ("crlf_injected_in_target", b"GET /a\r\nX-Injected: 1 HTTP/1.1\r\nHost: a.example\r\n\r\n", E400, {}),

    # --- tunnels are never opened
    ("connect_method", R(b"Host: a.example:443", line=b"CONNECT a.example:443 HTTP/1.1"), {501, 400, 405}, {}),
    ("upgrade_websocket",
     R(HOST, b"Connection: Upgrade", b"Upgrade: websocket", b"Sec-WebSocket-Version: 13",
       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
     E400_501, {"forward": forwarded(absent=("Upgrade",))}),
    ("upgrade_h2c",
     R(HOST, b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
     E400_501, {"forward": forwarded(absent=("Upgrade", "HTTP2-Settings"))}),

    # --- size limits (defaults: 8k line, 32k head, 100 headers, 8k target)
    ("header_line_too_long", R(HOST, b"X-Long: " + b"a" * 9000), {431}, {}),
    ("too_many_headers", R(HOST, *[b"X-H%d: 1" % i for i in range(101)]), {431}, {}),
    ("head_too_big", R(HOST, *[b"X-H%d: %s" % (i, b"b" * 4000) for i in range(9)]), {431}, {}),
    ("target_too_long", R(HOST, line=b"GET /" + b"t" * 9000 + b" HTTP/1.1"), {414}, {}),
]

state = {}


def run_case(name, raw, statuses, opts):
    proxy, backend = state["proxy"], state["backend"]
    check(proxy.alive(), "proxy is not running (died in an earlier case); stderr: %s"
          % proxy.stderr_tail())
    backend.reset()
    ex = exchange(proxy.port, raw, timeout=2.0,
                  done=lambda rs: any(200 <= r.status < 300 for r in rs))
    resp = ex.first()
    check(not any(r.status == 101 for r in ex.responses),
          "proxy answered 101 (tunnel): %s" % ex.describe())
    check(resp is not None, "no response to %s: %s%s" % (
        short(raw, 200), ex.describe(), "; " + ex.parse_error if ex.parse_error else ""))
    if 200 <= resp.status < 300:
        check("forward" in opts, "answered %d, want %s; request %s; backend got %r" % (
            resp.status, sorted(statuses), short(raw, 200), backend.requests))
        reqs = backend.wait_requests(1, 2.0)
        time.sleep(0.2)
        reqs = backend.requests
        why = opts["forward"](reqs)
        check(why is None, "answered %d but %s" % (resp.status, why))
    else:
        check(resp.status in statuses, "status %d, want %s; request %s; %s" % (
            resp.status, sorted(statuses), short(raw, 200), ex.describe()))
        probs = proxy_error_problems(resp, resp.status)
        check(not probs, "error response not in the proxy format: %s; %s" % (
            "; ".join(probs), ex.describe()))
        check(ex.closed, "connection left open after %d: %s" % (resp.status, ex.describe()))
        if "latency" in opts:
            check(ex.elapsed is not None and ex.elapsed <= opts["latency"],
                  "response took %.2fs, want <= %.1fs" % (ex.elapsed or -1, opts["latency"]))
        time.sleep(0.25)
        if opts.get("phase", "head") == "head":
            check(backend.total_bytes() == 0, "backend received %s" % short(backend.raw()))
        else:
            done = [r for r in backend.requests if r.complete]
            check(not done, "backend received a complete request: %r" % done)
    check(proxy.alive(), "proxy died; stderr: %s" % proxy.stderr_tail())


def case_fn(row):
    name, raw, statuses, opts = row
    return lambda: run_case(name, raw, statuses, opts)


def proxy_survives():
    proxy, backend = state["proxy"], state["backend"]
    backend.reset()
    ex = exchange(proxy.port, R(HOST, b"Connection: close"), timeout=3.0)
    r = ex.first()
    check(r is not None and r.status == 200, "valid request after the strict cases: %s" % ex.describe())


def proxy_stops():
    proxy = state["proxy"]
    rc = proxy.stop()
    check(not proxy.killed, "proxy needed SIGKILL; stderr: %s" % proxy.stderr_tail())
    check(rc == 0, "proxy exited %s after SIGTERM; stderr: %s" % (rc, proxy.stderr_tail()))


def main():
    names = [row[0] for row in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    backend = Backend(mode="ok", body=b"ok", upgrade_101=True)
    state["backend"] = backend
    proxy = None
    try:
        try:
            proxy = Proxy(backend=backend)
        except CaseFailure as e:
            err = str(e)

            def fail():
                raise CaseFailure(err)
            run_cases([(row[0], fail, 5) for row in CASES])
        state["proxy"] = proxy
        cases = [(row[0], case_fn(row), 15) for row in CASES]
        cases += [("proxy_survives_strict_cases", proxy_survives, 10),
                  ("proxy_exits_0_on_sigterm", proxy_stops, 20)]
        run_cases(cases)
    finally:
        if proxy is not None:
            proxy.stop()
            proxy.cleanup()
        backend.close()


if __name__ == "__main__":
    main()

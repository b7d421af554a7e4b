"""Shared helpers of the integration tests: a recording backend, the proxy
under test as a child process, raw HTTP/1.x clients and a tiny case runner.

Python 3 standard library only, so the suite runs on a fresh Debian with
python3 and curl. Every blocking operation here has a timeout: a broken
proxy makes a case fail, never hang the suite.

Run:  meson test -C BUILD --suite integration
  or  ANONPROXY=BUILD/proxy/anonproxy python3 tests/integration/test_strict.py
IT_ONLY=<substring> runs only the cases whose name contains it.
"""

import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------

REASONS = {
    100: "Continue", 101: "Switching Protocols", 103: "Early Hints",
    200: "OK", 204: "No Content",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required", 413: "Content Too Large",
    414: "URI Too Long", 417: "Expectation Failed",
    421: "Misdirected Request", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

# Older names a proxy may still use; RFC 9110 renamed these two.
REASON_ALIASES = {
    413: {"Content Too Large", "Payload Too Large", "Request Entity Too Large"},
    414: {"URI Too Long", "Request-URI Too Long"},
}

TCHAR = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class CaseFailure(AssertionError):
    """A check of a case did not hold."""


def check(cond, msg):
    """Fail the current case with `msg` unless `cond` holds."""
    if not cond:
        raise CaseFailure(msg)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_for(pred, timeout, interval=0.02):
    """Poll `pred` until it returns a true value or `timeout` seconds pass;
    returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def short(b, limit=300):
    """A printable, bounded rendering of bytes for failure messages."""
    if b is None:
        return "None"
    if len(b) > limit:
        return repr(bytes(b[:limit])) + "...(%d bytes)" % len(b)
    return repr(bytes(b))


# ---------------------------------------------------------------------------
# HTTP/1.x message reading (shared by the backend and the clients)
# ---------------------------------------------------------------------------

class ParseError(Exception):
    pass


class Truncated(Exception):
    """The peer closed (or reset) before the message was complete."""

    def __init__(self, msg, partial=None):
        super().__init__(msg)
        self.partial = partial


class Reader:
    """Buffered reads from a socket with a per-recv timeout and an overall
    deadline. `on_data` sees every received chunk (for byte-exact recording).
    """

    def __init__(self, sock, timeout=5.0, on_data=None, deadline=None):
        self.sock = sock
        self.buf = bytearray()
        self.timeout = timeout
        self.on_data = on_data
        self.deadline = deadline
        self.eof = False
        self.reset = False

    def fill(self):
        """Read once; returns False at EOF/reset. Raises socket.timeout."""
        if self.eof:
            return False
        t = self.timeout
        if self.deadline is not None:
            t = min(t, self.deadline - time.monotonic())
            if t <= 0:
                raise socket.timeout("deadline")
        self.sock.settimeout(t)
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        if self.on_data:
            self.on_data(data)
        self.buf += data
        return True

    def read_line(self, limit=1 << 20):
        """One line including its terminator (CRLF expected; a bare LF is
        returned as is so the caller can flag it). None at a clean EOF."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ParseError("line longer than %d bytes" % limit)
            if not self.fill():
                if self.buf:
                    rest = bytes(self.buf)
                    self.buf.clear()
                    raise Truncated("EOF inside a line", rest)
                return None

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                got = bytes(self.buf)
                self.buf.clear()
                raise Truncated("EOF after %d of %d bytes" % (len(got), n), got)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_into(self, n, sink):
        """Stream n bytes to sink(chunk) without holding them all."""
        left = n
        while left > 0:
            if not self.buf and not self.fill():
                raise Truncated("EOF with %d body bytes missing" % left)
            take = min(left, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            left -= take

    def read_to_eof(self, sink=None):
        out = bytearray()
        while True:
            if self.buf:
                if sink:
                    sink(bytes(self.buf))
                else:
                    out += self.buf
                self.buf.clear()
            if not self.fill():
                return bytes(out)


class Headers:
    """An ordered list of (name, value) with case-insensitive lookups."""

    def __init__(self, items=None):
        self.items = list(items or [])

    def get(self, name, default=None):
        n = name.lower()
        for k, v in self.items:
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def has(self, name):
        return bool(self.get_all(name))

    def names(self):
        return [k for k, _ in self.items]

    def __iter__(self):
        return iter(self.items)

    def __repr__(self):
        return repr(self.items)


def read_head_lines(reader, errors, strict=True, max_lines=10000):
    """Header lines up to the empty line. Lines that break RFC 9112 are
    noted in `errors` (strict mode) so a test can see that the proxy
    forwarded something malformed."""
    items = []
    for _ in range(max_lines):
        line = reader.read_line()
        if line is None:
            raise Truncated("EOF inside the header section")
        if not line.endswith(b"\r\n"):
            errors.append("header line not ended by CRLF: %s" % short(line))
            body = line[:-1]
        else:
            body = line[:-2]
        if b"\r" in body:
            errors.append("bare CR in header line: %s" % short(line))
        if body == b"":
            return Headers(items)
        if body[:1] in (b" ", b"\t"):
            errors.append("obs-fold line: %s" % short(line))
            continue
        name, sep, value = body.partition(b":")
        if not sep:
            errors.append("header line without colon: %s" % short(line))
            continue
        if not TCHAR.match(name):
            errors.append("header name not a token: %s" % short(name))
        v = value.strip(b" \t")
        if any(c < 0x20 and c != 0x09 or c == 0x7F for c in v):
            errors.append("control character in value of %s" % short(name))
        items.append((name.decode("latin-1"), v.decode("latin-1")))
    raise ParseError("too many header lines")


def parse_chunked(reader, errors, sink):
    """Decode a chunked body into sink; returns the trailer Headers."""
    total = 0
    while True:
        line = reader.read_line()
        if line is None:
            raise Truncated("EOF before a chunk-size line")
        if not line.endswith(b"\r\n"):
            errors.append("chunk-size line not ended by CRLF: %s" % short(line))
        size_part = line.rstrip(b"\r\n").split(b";", 1)[0].rstrip(b" \t")
        if not re.match(rb"^[0-9A-Fa-f]{1,16}$", size_part):
            errors.append("bad chunk size: %s" % short(line))
            raise ParseError("bad chunk size %s" % short(line))
        n = int(size_part, 16)
        if n == 0:
            trailers = read_head_lines(reader, errors)
            return trailers
        reader.read_into(n, sink)
        total += n
        crlf = reader.read_exact(2)
        if crlf != b"\r\n":
            errors.append("chunk data not followed by CRLF: %s" % short(crlf))
            raise ParseError("chunk data not followed by CRLF")


class BodySink:
    """Collects a body: length, sha256 and the bytes up to a cap."""

    def __init__(self, store_limit):
        self.len = 0
        self.sha = hashlib.sha256()
        self.data = bytearray()
        self.store_limit = store_limit
        self.stored_all = True

    def __call__(self, chunk):
        self.len += len(chunk)
        self.sha.update(chunk)
        if len(self.data) + len(chunk) <= self.store_limit:
            self.data += chunk
        else:
            self.stored_all = False


# ---------------------------------------------------------------------------
# Responses as the client sees them
# ---------------------------------------------------------------------------

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = Headers()
        self.body = b""
        self.trailers = Headers()
        self.framing = None       # "length", "chunked", "close", "none"
        self.interim = []         # 1xx responses before this one
        self.raw_head = b""
        self.errors = []

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return "<%s %s %r headers=%r body=%s>" % (
            self.version, self.status, self.reason, self.headers.items,
            short(self.body, 200))


STATUS_LINE = re.compile(rb"^(HTTP/\d\.\d) (\d{3}) ?(.*)$")


def read_response(reader, method="GET", body_limit=64 << 20):
    """One response (a 1xx counts as one). Returns None at a clean EOF
    before any byte. Raises Truncated if the peer closes mid-message."""
    line = reader.read_line()
    while line == b"\r\n":  # tolerate a stray CRLF between messages
        line = reader.read_line()
    if line is None:
        return None
    r = Response()
    r.raw_head = line
    if not line.endswith(b"\r\n"):
        r.errors.append("status line not ended by CRLF")
    m = STATUS_LINE.match(line.rstrip(b"\r\n"))
    if not m:
        raise ParseError("bad status line %s" % short(line))
    r.version = m.group(1).decode()
    r.status = int(m.group(2))
    r.reason = m.group(3).decode("latin-1")
    r.headers = read_head_lines(reader, r.errors)
    if 100 <= r.status < 200 or r.status in (204, 304) or method == "HEAD":
        r.framing = "none"
        return r
    sink = BodySink(body_limit)
    te = r.headers.get("Transfer-Encoding")
    cl = r.headers.get_all("Content-Length")
    try:
        if te is not None:
            if te.strip().lower() != "chunked":
                raise ParseError("unsupported response Transfer-Encoding %r" % te)
            r.framing = "chunked"
            r.trailers = parse_chunked(reader, r.errors, sink)
        elif cl:
            if len(cl) > 1 or not cl[0].isdigit():
                raise ParseError("bad response Content-Length %r" % cl)
            r.framing = "length"
            reader.read_into(int(cl[0]), sink)
        else:
            r.framing = "close"
            reader.read_to_eof(sink)
    except Truncated as e:
        r.body = bytes(sink.data)
        e.partial = r
        raise
    r.body = bytes(sink.data)
    r.body_len = sink.len
    return r


def read_final(reader, method="GET"):
    """The final response, with any 1xx before it in .interim."""
    interim = []
    while True:
        r = read_response(reader, method)
        if r is None:
            return None
        if 100 <= r.status < 200 and r.status != 101:
            interim.append(r)
            continue
        r.interim = interim
        return r


class BytesSock:
    """A fake socket over a byte string, to parse captured data."""

    def __init__(self, data):
        self.data = data

    def settimeout(self, t):
        pass

    def recv(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


def parse_responses(data, methods=None):
    """All responses in `data` (1xx included, in order). Returns
    (responses, leftover_error or None)."""
    rd = Reader(BytesSock(bytes(data)))
    out = []
    methods = list(methods or [])
    i = 0
    try:
        while True:
            m = methods[i] if i < len(methods) else "GET"
            r = read_response(rd, m)
            if r is None:
                return out, None
            out.append(r)
            if not (100 <= r.status < 200):
                i += 1
    except (ParseError, Truncated) as e:
        return out, "%s: %s" % (type(e).__name__, e)


# ---------------------------------------------------------------------------
# Raw clients
# ---------------------------------------------------------------------------

def connect(port, timeout=5.0, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Client:
    """One client connection to the proxy, for keep-alive conversations."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1"):
        self.sock = connect(port, timeout, host)
        self.reader = Reader(self.sock, timeout=timeout)
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def response(self, method="GET", timeout=None):
        if timeout is not None:
            self.reader.timeout = timeout
        return read_final(self.reader, method)

    def raw_response(self, method="GET"):
        return read_response(self.reader, method)

    def request(self, data, method=None, timeout=None):
        self.send(data)
        if method is None:
            method = data.split(b" ", 1)[0].decode("latin-1")
        return self.response(method, timeout)

    def is_closed(self, timeout=2.0):
        """True once the peer closed (EOF or reset) within `timeout`
        (bytes that arrive meanwhile are kept in the buffer)."""
        deadline = time.monotonic() + timeout
        while not self.reader.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.reader.timeout = left
            try:
                self.reader.fill()
            except socket.timeout:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Exchange:
    """What came back for raw bytes sent on a fresh connection."""

    def __init__(self):
        self.data = b""
        self.closed = False     # the proxy closed (EOF or reset)
        self.reset = False
        self.elapsed = None     # seconds until the first response byte
        self.close_elapsed = None
        self.responses = []
        self.parse_error = None
        self.send_error = None

    def first(self):
        """The first final (non-1xx) response, or None."""
        for r in self.responses:
            if not (100 <= r.status < 200):
                return r
        return None

    def describe(self):
        return "got %s (closed=%s reset=%s)" % (
            short(self.data, 400), self.closed, self.reset)


def exchange(port, data, timeout=3.0, shut_wr=False, methods=None,
             pieces=None, pause=0.0, done=None):
    """Send `data` (or each of `pieces` with `pause` seconds between them)
    on a fresh connection, then read until the proxy closes or `timeout`
    seconds pass with nothing more. The write side stays open unless
    `shut_wr`, so a proxy cannot mistake our EOF for the end of a message.
    `done(responses)` returning true ends the read early (e.g. once a
    complete keep-alive response is in)."""
    ex = Exchange()
    t0 = time.monotonic()
    s = connect(port, timeout)
    try:
        try:
            if pieces is None:
                s.sendall(data)
            else:
                for i, p in enumerate(pieces):
                    if i and pause:
                        time.sleep(pause)
                    s.sendall(p)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            ex.send_error = e
        buf = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                ex.closed = ex.reset = True
                ex.close_elapsed = time.monotonic() - t0
                break
            if not chunk:
                ex.closed = True
                ex.close_elapsed = time.monotonic() - t0
                break
            if ex.elapsed is None:
                ex.elapsed = time.monotonic() - t0
            buf += chunk
            if done is not None:
                rs, err = parse_responses(bytes(buf), methods)
                if err is None and done(rs):
                    break
        ex.data = bytes(buf)
    finally:
        s.close()
    ex.responses, ex.parse_error = parse_responses(ex.data, methods)
    return ex


def proxy_error_problems(resp, code):
    """What differs from the proxy-generated error format of the spec:
    `HTTP/1.1 <code> <reason>`, text/plain, Content-Length, Connection:
    close, body `<code> <Reason>: <why>\\n`."""
    probs = []
    if resp is None:
        return ["no response"]
    if resp.version != "HTTP/1.1":
        probs.append("version %r, want HTTP/1.1" % resp.version)
    if resp.status != code:
        probs.append("status %r, want %d" % (resp.status, code))
        return probs
    reasons = REASON_ALIASES.get(code, {REASONS.get(code)})
    if resp.reason not in reasons:
        probs.append("reason %r, want %r" % (resp.reason, REASONS.get(code)))
    ct = resp.header("Content-Type") or ""
    if not ct.lower().startswith("text/plain"):
        probs.append("Content-Type %r, want text/plain" % ct)
    cl = resp.header("Content-Length")
    if cl is None or not cl.isdigit() or int(cl) != len(resp.body):
        probs.append("Content-Length %r for a %d-byte body" % (cl, len(resp.body)))
    conn = (resp.header("Connection") or "").lower()
    if "close" not in conn:
        probs.append("no Connection: close (got %r)" % resp.header("Connection"))
    body = resp.body.decode("latin-1")
    prefix_ok = any(body.startswith("%d %s: " % (code, r)) for r in reasons)
    if not prefix_ok or not body.endswith("\n"):
        probs.append("body %r, want '%d %s: <why>\\n'" % (body, code, REASONS.get(code)))
    return probs


def error_why(resp):
    """The <why> part of a proxy-generated error body."""
    body = resp.body.decode("latin-1").rstrip("\n")
    return body.split(": ", 1)[1] if ": " in body else ""


# ---------------------------------------------------------------------------
# The recording backend
# ---------------------------------------------------------------------------

class Request:
    """A request as the backend received it."""

    def __init__(self, conn_id, index):
        self.conn_id = conn_id
        self.index = index          # position on its connection, from 0
        self.method = None
        self.target = None
        self.version = None
        self.request_line = None
        self.headers = Headers()
        self.body = b""
        self.body_len = 0
        self.body_sha256 = None
        self.body_complete = True   # False when only a prefix was stored
        self.framing = "none"       # "length", "chunked", "none"
        self.trailers = Headers()
        self.errors = []            # what is not well-formed HTTP/1.1
        self.complete = False       # head and whole body were received
        self.raw_head = b""
        self.time = time.monotonic()

    def header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def well_formed(self):
        return self.complete and not self.errors

    def __repr__(self):
        return "<%s %s %s headers=%r body=%s errors=%r>" % (
            self.method, self.target, self.version, self.headers.items,
            short(self.body, 120), self.errors)


class BackendConn:
    def __init__(self, cid, sock, raw_limit):
        self.id = cid
        self.sock = sock
        self.raw = bytearray()
        self.raw_total = 0
        self.raw_limit = raw_limit
        self.requests = []
        self.closed_by_peer = False

    def on_data(self, data):
        self.raw_total += len(data)
        room = self.raw_limit - len(self.raw)
        if room > 0:
            self.raw += data[:room]


REQUEST_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP/1\.[01])$")


class Backend:
    """A threaded HTTP/1.1 origin on 127.0.0.1 that records byte-exact what
    it receives and answers according to `mode` (a string, or a callable
    taking the Request and returning one):

      "ok"            status/headers/body (body may be callable(req)),
                      framed by `framing`: "length", "chunked" or "close"
      "204"           204 No Content
      "hang"          never answer (until the backend is closed)
      "reset_before"  read the request, then RST (SO_LINGER 0)
      "reset_mid_body" send the head and half the body, then RST
      "hang_mid_body" send the head and half the body, then hang
      "close_no_answer" read the request, close without a byte
      "close_idle"    answer, then close at once without Connection: close
      "drop_reused"   answer the first request of a connection; close
                      without answering any later one
      "garbage"       "HTTP/1.1 abc"
      "101"           an unsolicited 101 Switching Protocols
      "raw"           send `raw_response` (bytes or callable(req)) as is and
                      keep the connection (close it if `raw_close`)

    `delay` (seconds, or callable(req)) sleeps before the head;
    `early_hints` sends a 103 first; `trailers` (list of pairs) forces a
    chunked response with a trailer section. A request carrying Upgrade is
    answered 101 when `upgrade_101` is set, to catch a tunnelling proxy.
    """

    def __init__(self, mode="ok", status=200, body=b"hello from backend",
                 headers=None, framing="length", delay=0, early_hints=False,
                 trailers=None, raw_limit=1 << 20, store_limit=8 << 20,
                 upgrade_101=False, read_timeout=60.0, raw_response=b"",
                 raw_close=False):
        self.mode = mode
        self.raw_response = raw_response
        self.raw_close = raw_close
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.framing = framing
        self.delay = delay
        self.early_hints = early_hints
        self.trailers = trailers
        self.raw_limit = raw_limit
        self.store_limit = store_limit
        self.upgrade_101 = upgrade_101
        self.read_timeout = read_timeout
        self.conns = []
        self.requests = []
        self.errors = []          # exceptions of handler threads
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.threads = []
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    # -- inspection --------------------------------------------------------

    @property
    def authority(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def total_bytes(self):
        with self.lock:
            return sum(c.raw_total for c in self.conns)

    def raw(self):
        """Everything received, all connections concatenated (capped)."""
        with self.lock:
            return b"".join(bytes(c.raw) for c in self.conns)

    def nconns(self):
        with self.lock:
            return len(self.conns)

    def reset(self):
        """Forget what was recorded (connections stay open)."""
        with self.lock:
            for c in self.conns:
                c.raw = bytearray()
                c.raw_total = 0
                c.requests = []
            self.conns = [c for c in self.conns if not c.closed_by_peer]
            self.requests = []

    def wait_requests(self, n, timeout=5.0):
        """Wait until n requests were received; returns the list."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = [c.sock for c in self.conns]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- serving -----------------------------------------------------------

    def _accept(self):
        cid = 0
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            if self.stopping.is_set():
                s.close()
                return
            c = BackendConn(cid, s, self.raw_limit)
            cid += 1
            with self.lock:
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        rd = Reader(c.sock, timeout=self.read_timeout, on_data=c.on_data)
        try:
            index = 0
            while not self.stopping.is_set():
                req = self._read_request(c, rd, index)
                if req is None:
                    c.closed_by_peer = True
                    return
                keep = self._answer(c, req, index)
                index += 1
                if not keep:
                    return
        except (Truncated, ParseError, socket.timeout, OSError) as e:
            # The proxy closed mid-request or sent garbage: the recorded
            # bytes tell the test what happened.
            c.closed_by_peer = True
            with self.lock:
                self.errors.append("conn %d: %s: %s" % (c.id, type(e).__name__, e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def _read_request(self, c, rd, index):
        line = rd.read_line()
        if line is None:
            return None
        req = Request(c.id, index)
        req.raw_head = line
        if not line.endswith(b"\r\n"):
            req.errors.append("request line not ended by CRLF")
        m = REQUEST_LINE.match(line.rstrip(b"\r\n"))
        if not m:
            req.errors.append("bad request line %s" % short(line))
            parts = line.rstrip(b"\r\n").split(b" ")
            parts += [b""] * 3
            req.method, req.target, req.version = (p.decode("latin-1") for p in parts[:3])
        else:
            req.method, req.target, req.version = (g.decode("latin-1") for g in m.groups())
        req.request_line = line.rstrip(b"\r\n").decode("latin-1")
        req.headers = read_head_lines(rd, req.errors)
        h = req.headers
        te = h.get_all("Transfer-Encoding")
        cl = h.get_all("Content-Length")
        hosts = h.get_all("Host")
        if len(hosts) != 1:
            req.errors.append("%d Host headers" % len(hosts))
        if te and cl:
            req.errors.append("both Transfer-Encoding and Content-Length")
        sink = BodySink(self.store_limit)
        with self.lock:
            # Visible as soon as the head is in, so big uploads can be
            # watched while they stream.
            c.requests.append(req)
        try:
            if te:
                if len(te) != 1 or te[0].strip().lower() != "chunked":
                    req.errors.append("Transfer-Encoding %r" % te)
                    raise ParseError("unsupported Transfer-Encoding")
                req.framing = "chunked"
                req.trailers = parse_chunked(rd, req.errors, sink)
            elif cl:
                if len(set(cl)) != 1 or not re.match(r"^[0-9]+$", cl[0]):
                    req.errors.append("bad Content-Length %r" % cl)
                    raise ParseError("bad Content-Length")
                if len(cl) > 1:
                    req.errors.append("%d Content-Length headers" % len(cl))
                req.framing = "length"
                rd.read_into(int(cl[0]), sink)
            req.complete = True
        finally:
            req.body = bytes(sink.data)
            req.body_len = sink.len
            req.body_sha256 = sink.sha.hexdigest()
            req.body_complete = sink.stored_all
            with self.cond:
                self.requests.append(req)
                self.cond.notify_all()
        return req

    def _value(self, v, req):
        return v(req) if callable(v) else v

    def _rst(self, s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()

    def _hang(self, s):
        self.stopping.wait(120)

    def _answer(self, c, req, index):
        s = c.sock
        mode = self._value(self.mode, req)
        delay = self._value(self.delay, req)
        if self.upgrade_101 and req.headers.has("Upgrade"):
            mode = "101"
        if mode == "drop_reused":
            if index > 0:
                s.close()
                return False
            mode = "ok"
        if mode == "close_no_answer":
            s.close()
            return False
        if mode == "reset_before":
            self._rst(s)
            return False
        if mode == "hang":
            self._hang(s)
            return False
        if delay:
            if self.stopping.wait(delay):
                return False
        if mode == "raw":
            s.sendall(self._value(self.raw_response, req))
            if self.raw_close:
                s.close()
                return False
            return True
        if mode == "garbage":
            s.sendall(b"HTTP/1.1 abc\r\n\r\n")
            s.close()
            return False
        if mode == "101":
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\nTUNNEL-BYTES")
            self._hang(s)
            return False
        if self.early_hints:
            s.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
        if mode == "204":
            s.sendall(b"HTTP/1.1 204 No Content\r\nX-Backend: 1\r\n\r\n")
            return True
        status = self._value(self.status, req)
        body = self._value(self.body, req)
        extra = self._value(self.headers, req)
        framing = self._value(self.framing, req)
        if self.trailers:
            framing = "chunked"
        head = "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Whatever"))
        for k, v in extra:
            head += "%s: %s\r\n" % (k, v)
        if framing == "length":
            head += "Content-Length: %d\r\n" % len(body)
        elif framing == "chunked":
            head += "Transfer-Encoding: chunked\r\n"
            if self.trailers:
                head += "Trailer: %s\r\n" % ", ".join(k for k, _ in self.trailers)
        elif framing == "close":
            head += "Connection: close\r\n"
        head = head.encode("latin-1") + b"\r\n"
        if req.method == "HEAD" or status in (204, 304):
            s.sendall(head)
            return mode != "close_idle" and framing != "close"
        if mode in ("reset_mid_body", "hang_mid_body"):
            half = body[:len(body) // 2]
            if framing == "chunked":
                s.sendall(head + b"%x\r\n" % len(half) + half + b"\r\n")
            else:
                s.sendall(head + half)
            time.sleep(0.2)
            if mode == "reset_mid_body":
                self._rst(s)
            else:
                self._hang(s)
            return False
        if framing == "chunked":
            out = bytearray(head)
            step = max(1, len(body) // 3 + 1)
            for i in range(0, len(body), step):
                part = body[i:i + step]
                out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
            out += b"0\r\n"
            for k, v in (self.trailers or []):
                out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
            out += b"\r\n"
            s.sendall(bytes(out))
        else:
            s.sendall(head + body)
        if framing == "close":
            s.close()
            return False
        if mode == "close_idle":
            s.close()
            return False
        return True


# ---------------------------------------------------------------------------
# Configuration and the proxy process
# ---------------------------------------------------------------------------

PLAIN_SCALAR = re.compile(r"^[A-Za-z0-9_./:@-]+$")


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if PLAIN_SCALAR.match(s) and s not in ("true", "false", "null", "yes", "no", "on", "off", "~"):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts and lists of dicts; flow lists of scalars."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                out.append("%s%s: [%s]" % (pad, k, ", ".join(yaml_scalar(x) for x in v)))
            else:
                out.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            sub = to_yaml(item, indent + 1).split("\n")
            first = sub[0].lstrip()
            out.append("%s- %s" % (pad, first))
            out.extend(sub[1:])
    return "\n".join(x for x in out if x != "")


DEFAULT_LIMITS = {
    "header_line_bytes": "8k", "header_bytes": "32k", "header_count": 100,
    "target_bytes": "8k", "body_bytes": "1m", "connections_per_worker": 10000,
}
DEFAULT_TIMEOUTS = {
    "request_head": "10s", "body_idle": "30s", "keepalive": "60s",
    "upstream_connect": "5s", "upstream_head": "60s",
    "upstream_body_idle": "60s", "drain": "5s",
}


def make_config(port, backend=None, upstreams=None, routes=None, limits=None,
                timeouts=None, workers=1, route_extra=None, upstream_extra=None):
    """A config dict for the proxy listening on 127.0.0.1:`port`.
    By default one upstream "backend" (the given Backend) and one catch-all
    route to it; `limits`/`timeouts` override single keys of the defaults."""
    if upstreams is None:
        up = {"servers": [backend.url],
              "keepalive": {"max_idle": 32, "idle_timeout": "60s"}}
        up.update(upstream_extra or {})
        upstreams = {"backend": up}
    if routes is None:
        r = {"name": "main", "match": {"path": "/"}, "upstream": "backend",
             "max_body_bytes": "1m"}
        r.update(route_extra or {})
        routes = [r]
    lim = dict(DEFAULT_LIMITS)
    lim.update(limits or {})
    tmo = dict(DEFAULT_TIMEOUTS)
    tmo.update(timeouts or {})
    return {
        "workers": workers,
        # Tests run as root in CI; a real deployment sets `user:` instead.
        "run_as_root": True,
        "listen": [{"address": "127.0.0.1:%d" % port}],
        "upstreams": upstreams,
        "routes": routes,
        "limits": lim,
        "timeouts": tmo,
    }


def anonproxy_path():
    p = os.environ.get("ANONPROXY")
    if not p:
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.dirname(os.path.dirname(here))
        for d in sorted(os.listdir(root)):
            cand = os.path.join(root, d, "proxy", "anonproxy")
            if d.startswith("build") and os.access(cand, os.X_OK):
                p = cand
                break
    if not p or not os.access(p, os.X_OK):
        raise CaseFailure("set ANONPROXY to the anonproxy binary (got %r)" % p)
    return p


def run_cli(args, timeout=10.0, env=None):
    """Run the binary with `args`; returns CompletedProcess (text output)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([anonproxy_path()] + list(args), capture_output=True,
                          timeout=timeout, env=e, text=True, errors="replace")


class Proxy:
    """The proxy under test: a config in a temp dir, the process, its stderr
    in a file. Use as a context manager: on exit it is stopped by SIGTERM
    and the case fails if it had to be killed, exited non-zero or died
    before the end."""

    def __init__(self, config=None, port=None, backend=None, env=None,
                 start=True, config_text=None, host="127.0.0.1", **kw):
        self.host = host  # where to probe for readiness
        self.tmp = tempfile.mkdtemp(prefix="anonproxy-it-")
        self.port = port or free_port()
        if config_text is None:
            if config is None:
                config = make_config(self.port, backend, **kw)
            config_text = to_yaml(config) + "\n"
        self.config_text = config_text
        self.cfg_path = os.path.join(self.tmp, "cfg.yaml")
        with open(self.cfg_path, "w") as f:
            f.write(config_text)
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stdout_path = os.path.join(self.tmp, "stdout.log")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.killed = False
        self.returncode = None
        self.died_early = None
        if start:
            self.start()

    def start(self, timeout=15.0):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([anonproxy_path(), "-c", self.cfg_path],
                                     stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     cwd=self.tmp)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise CaseFailure("proxy exited with %s at start; stderr: %s" % (
                    self.returncode, self.stderr_tail()))
            try:
                s = socket.create_connection((self.host, self.port), timeout=0.5)
                s.close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise CaseFailure("proxy did not accept on port %d within %.0fs; stderr: %s"
                                  % (self.port, timeout, self.stderr_tail()))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=1500):
        t = self.stderr_text()
        return repr(t[-n:]) if t else "(empty)"

    def wait_log(self, needle, timeout=2.0):
        """True once `needle` (str or compiled regex) appears on stderr."""
        def found():
            t = self.stderr_text()
            return needle.search(t) if hasattr(needle, "search") else needle in t
        return bool(wait_for(found, timeout, 0.05))

    def rss_kb(self):
        """VmRSS of the proxy and all its descendant processes, in kB."""
        return sum(_rss_kb(p) for p in [self.pid] + _descendants(self.pid))

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=10.0):
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code."""
        if self.proc is None:
            return None
        if getattr(self, "stopped", False):
            return self.returncode
        self.stopped = True
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        elif self.died_early is None:
            self.died_early = self.proc.returncode
        self.returncode = self.proc.returncode
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f:
                f.close()
        return self.returncode

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            rc = self.stop()
            if exc_type is None:
                if self.died_early is not None:
                    raise CaseFailure("proxy died during the case (exit %s); stderr: %s"
                                      % (self.died_early, self.stderr_tail()))
                if self.killed:
                    raise CaseFailure("proxy did not exit within 10s of SIGTERM (killed); "
                                      "stderr: %s" % self.stderr_tail())
                if rc != 0:
                    raise CaseFailure("proxy exited %s after SIGTERM; stderr: %s"
                                      % (rc, self.stderr_tail()))
        finally:
            self.cleanup()


def _rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


# ---------------------------------------------------------------------------
# curl
# ---------------------------------------------------------------------------

class CurlResult:
    def __init__(self, rc, status, body, stderr):
        self.rc = rc
        self.status = status
        self.body = body
        self.stderr = stderr

    def __repr__(self):
        return "<curl rc=%d status=%s body=%s stderr=%r>" % (
            self.rc, self.status, short(self.body, 200), self.stderr)


CURL_MARK = b"\n@@CURL-STATUS@@"


def curl(url, *args, timeout=10.0):
    """`curl -sS -o - -w ...` returning the status code and the body."""
    cmd = ["curl", "-sS", "-o", "-", "-w", CURL_MARK.decode() + "%{http_code}",
           "--max-time", str(timeout)] + list(args) + [url]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
    out = p.stdout
    i = out.rfind(CURL_MARK)
    status, body = None, out
    if i >= 0:
        body = out[:i]
        try:
            status = int(out[i + len(CURL_MARK):].strip())
        except ValueError:
            pass
    return CurlResult(p.returncode, status, body, p.stderr.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------
# The case runner
# ---------------------------------------------------------------------------

class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout("case exceeded its time bound")


def run_cases(cases, default_timeout=30):
    """Run (name, fn) or (name, fn, timeout) cases in order; print one line
    each and the summary; exit 1 if any failed."""
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    only = os.environ.get("IT_ONLY")
    for case in cases:
        name, fn = case[0], case[1]
        if only and only not in name:
            continue
        tmo = case[2] if len(case) > 2 else default_timeout
        t0 = time.monotonic()
        signal.alarm(int(tmo))
        try:
            fn()
            signal.alarm(0)
            passed += 1
            print("ok - %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
        except BaseException as e:  # noqa: report everything, keep going
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            if isinstance(e, (CaseFailure, CaseTimeout)):
                why = str(e)
            else:
                why = "%s: %s | %s" % (type(e).__name__, e,
                                       traceback.format_exc().strip().splitlines()[-3].strip())
            print("FAIL - %s: %s" % (name, why.replace("\n", "\\n")), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


# ---------------------------------------------------------------------------
# TLS: a throw-away PKI made with the openssl CLI at test time
# ---------------------------------------------------------------------------

class TestPKI:
    """A CA, an intermediate CA and leaf certificates, made in a temporary
    directory with the `openssl` command (nothing is committed). Leaves are
    made with leaf(); every path is absolute. Call cleanup() when done."""

    def __init__(self, tmp=None):
        self.dir = tmp or tempfile.mkdtemp(prefix="anonproxy-pki-")
        self._own = tmp is None
        self.serial = 100
        self.ca, self.ca_key = self._self_signed("ca", "anonproxy test root CA")
        self.inter, self.inter_key = self.leaf(
            "inter", cn="anonproxy test intermediate CA", ca=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, args):
        p = subprocess.run(["openssl"] + args, capture_output=True, timeout=60,
                           cwd=self.dir)
        if p.returncode != 0:
            raise CaseFailure("openssl %s failed: %s" % (args[0], p.stderr.decode(
                "utf-8", "replace")[-500:]))

    def _key_args(self, kind):
        if kind == "rsa":
            return ["-newkey", "rsa:2048"]
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]

    def _self_signed(self, stem, cn):
        key, crt = self.path(stem + ".key"), self.path(stem + ".pem")
        self._run(["req", "-x509"] + self._key_args("rsa") + [
            "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=" + cn, "-days", "61",
            "-addext", "basicConstraints=critical,CA:true",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return crt, key

    def leaf(self, stem, cn=None, dns=(), ips=(), kind="ec", issuer="ca", days=60,
             client=False, ca=False):
        """Makes STEM.pem and STEM.key signed by the root ("ca") or the
        intermediate ("inter"); returns (cert, key)."""
        key, csr, crt = (self.path(stem + ext) for ext in (".key", ".csr", ".pem"))
        self._run(["req"] + self._key_args(kind) + [
            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + (cn or stem)])
        ext = []
        if ca:
            ext += ["basicConstraints=critical,CA:true",
                    "keyUsage=critical,keyCertSign,cRLSign"]
        else:
            ext += ["basicConstraints=critical,CA:false",
                    "extendedKeyUsage=%s" % ("clientAuth" if client else "serverAuth")]
            alt = ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]
            if alt:
                ext.append("subjectAltName=" + ",".join(alt))
        extfile = self.path(stem + ".ext")
        with open(extfile, "w") as f:
            f.write("\n".join(ext) + "\n")
        icrt, ikey = (self.ca, self.ca_key) if issuer == "ca" else (self.inter, self.inter_key)
        self.serial += 1
        self._run(["x509", "-req", "-in", csr, "-CA", icrt, "-CAkey", ikey,
                   "-set_serial", str(self.serial), "-days", str(days), "-sha256",
                   "-out", crt, "-extfile", extfile])
        return crt, key

    def cleanup(self):
        if self._own:
            shutil.rmtree(self.dir, ignore_errors=True)


def tls_listener(port, certificates, **kw):
    """A listener dict with a tls: section (extra tls keys in kw)."""
    tls = {"certificates": certificates}
    tls.update(kw)
    return {"address": "127.0.0.1:%d" % port, "tls": tls}


def s_client(port, *args, stdin=b"", timeout=10.0, env=None):
    """`openssl s_client -connect 127.0.0.1:PORT ARGS` with `stdin` as its
    input; returns (exit code, stdout+stderr text)."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=stdin, capture_output=True, timeout=timeout, env=e)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

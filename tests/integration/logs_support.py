"""Receivers and helpers of the logging tests (issue 8): a real rsyslog
started by the test, an HTTP receiver of ours that can be told to fail,
hang or answer any status, and parsers of the proxy's stop summary.

Python 3 standard library only (and the Debian rsyslog package). Every
blocking operation has a timeout; every process started here is stopped by
its PID.
"""

import gzip
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import zlib

from harness import CaseFailure, check, free_port, wait_for


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------
# rsyslog as a UDP, TCP and unix-socket receiver writing raw messages to a file
# ---------------------------------------------------------------------------

class RSyslog:
    """rsyslogd -n with a config in a temp dir: imudp, imtcp (octet counting
    and LF framing) and imuxsock on a socket of ours; every message is
    written raw, one per line, prefixed by the input that took it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ap-rsyslog-")
        self.udp_port = free_udp_port()
        self.tcp_port = free_port()
        self.sock = os.path.join(self.dir, "log.sock")
        self.out = os.path.join(self.dir, "out.log")
        self.pidfile = os.path.join(self.dir, "rsyslogd.pid")
        os.mkdir(os.path.join(self.dir, "work"))
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(
                'global(workDirectory="%s/work" maxMessageSize="64k")\n'
                'module(load="imudp")\n'
                'module(load="imtcp")\n'
                'module(load="imuxsock" SysSock.Use="off")\n'
                'input(type="imudp" address="127.0.0.1" port="%d")\n'
                'input(type="imtcp" address="127.0.0.1" port="%d")\n'
                'input(type="imuxsock" Socket="%s")\n'
                'template(name="raw" type="string" string="%%inputname%% %%rawmsg%%\\n")\n'
                '*.* action(type="omfile" file="%s" template="raw" flushOnTXEnd="on")\n'
                % (self.dir, self.udp_port, self.tcp_port, self.sock, self.out))
        self.conf = conf
        self.proc = None
        self.log = None
        self.start()

    def start(self):
        """Start rsyslogd (again: same ports, same output file)."""
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        if not os.access(rsyslogd, os.X_OK):
            raise CaseFailure("rsyslogd not found: install the Debian package rsyslog "
                              "(deploy/install-deps.sh --test)")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.log = open(os.path.join(self.dir, "rsyslogd.stderr"), "ab")
        self.proc = subprocess.Popen([rsyslogd, "-n", "-f", self.conf, "-i", self.pidfile],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        ok = wait_for(lambda: os.path.exists(self.sock) and self._tcp_ready(), 10.0, 0.05)
        if not ok:
            self.stop()
            raise CaseFailure("rsyslogd did not start: %s" % self.stderr())

    def _tcp_ready(self):
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stderr(self):
        try:
            with open(os.path.join(self.dir, "rsyslogd.stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def text(self):
        try:
            with open(self.out, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def lines(self, inputname=None):
        out = []
        for line in self.text().splitlines():
            name, _, msg = line.partition(" ")
            if inputname is None or name == inputname:
                out.append(msg)
        return out

    def wait_lines(self, inputname, n, timeout=10.0):
        return wait_for(lambda: len(self.lines(inputname)) >= n, timeout, 0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()


# ---------------------------------------------------------------------------
# An HTTP receiver of NDJSON batches that can fail on demand
# ---------------------------------------------------------------------------

class Batch:
    def __init__(self, headers, body, status):
        self.headers = headers
        self.body = body
        self.status = status
        self.lines = [l for l in body.decode("utf-8", "replace").split("\n") if l]


class HttpReceiver:
    """Modes: "ok" (204), ("status", code[, retry_after]) answers that code,
    "hang" reads the request and never answers, "down" closes the listening
    socket (connections are refused) and every open connection. Batches are
    recorded with the status they got; delivered() lists the lines of the
    batches answered 2xx, in arrival order.

    With tls=(cert, key) it speaks HTTPS (TLS 1.2 or later); set_tls()
    changes the certificate for the next connections, client_ca asks for a
    client certificate signed by that CA. Handshakes are counted
    (handshakes, tls_failures); sni and peer_cn keep what the last client
    sent."""

    def __init__(self, port=None, tls=None, client_ca=None):
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.ctx = None
        self.handshakes = 0
        self.tls_failures = 0
        self.tls_versions = []
        self.sni = None
        self.peer_cn = None
        if tls is not None:
            self.set_tls(tls, client_ca)
        self.batches = []
        self.mode = "ok"
        self.status_seq = []  # statuses to answer first, one per batch
        self.conns = []
        self.lsock = None
        self.stopping = False
        self.requests = 0
        self.up()

    @property
    def url(self):
        return "%s://127.0.0.1:%d/ingest" % ("https" if self.ctx else "http", self.port)

    def set_tls(self, tls, client_ca=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(tls[0], tls[1])
        if client_ca is not None:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED

        def on_sni(sock, name, _ctx):
            with self.lock:
                self.sni = name
        ctx.sni_callback = on_sni
        with self.lock:
            self.ctx = ctx

    def drop_connections(self):
        """Closes every open connection, so the next batch handshakes anew."""
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self):
        with self.lock:
            if self.lsock is not None:
                return
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            deadline = time.monotonic() + 10
            while True:
                try:
                    s.bind(("127.0.0.1", self.port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            s.listen(64)
            s.settimeout(0.2)
            self.lsock = s
            self.mode = "ok" if self.mode == "down" else self.mode
        t = threading.Thread(target=self._accept, args=(s,), daemon=True)
        t.start()

    def down(self):
        with self.lock:
            s, self.lsock = self.lsock, None
            conns, self.conns = self.conns, []
            self.mode = "down"
        if s is not None:
            s.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode

    def _accept(self, s):
        while not self.stopping:
            with self.lock:
                if self.lsock is not s:
                    return
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_request(self, c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, buf
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            d = c.recv(65536)
            if not d:
                return None, b""
            rest += d
        body, buf = rest[:n], rest[n:]
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return (lines[0], headers, body), buf

    def _handshake(self, c):
        """Wraps an accepted socket in TLS; None when the handshake failed
        (the socket is closed)."""
        with self.lock:
            ctx = self.ctx
        t = None
        try:
            t = ctx.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
            t.settimeout(10)
            t.do_handshake()
        except (OSError, ValueError):
            with self.lock:
                self.tls_failures += 1
                if c in self.conns:
                    self.conns.remove(c)
            (t or c).close()
            return None
        peer = t.getpeercert()
        with self.lock:
            self.handshakes += 1
            self.tls_versions.append(t.version())
            if peer:
                self.peer_cn = dict(x[0] for x in peer.get("subject", ())).get("commonName")
            if c in self.conns:
                self.conns[self.conns.index(c)] = t
        return t

    def _serve(self, c):
        buf = b""
        c.settimeout(60)
        if self.ctx is not None:
            c = self._handshake(c)
            if c is None:
                return
        try:
            while not self.stopping:
                req, buf = self._read_request(c, buf)
                if req is None:
                    return
                _, headers, body = req
                with self.lock:
                    self.requests += 1
                    mode = self.mode
                    status, retry_after = 204, None
                    if self.status_seq:
                        st = self.status_seq.pop(0)
                        status, retry_after = (st, None) if isinstance(st, int) else st
                    elif isinstance(mode, tuple):
                        status = mode[1]
                        retry_after = mode[2] if len(mode) > 2 else None
                    if mode != "hang" and mode != "down":
                        self.batches.append(Batch(headers, body, status))
                if mode == "hang":
                    while not self.stopping and self.mode == "hang":
                        time.sleep(0.05)
                    return
                if mode == "down":
                    return
                resp = "HTTP/1.1 %d X\r\nContent-Length: 0\r\n" % status
                if retry_after is not None:
                    resp += "Retry-After: %s\r\n" % retry_after
                c.sendall((resp + "\r\n").encode())
        except OSError:
            return
        finally:
            with self.lock:
                if c in self.conns:
                    self.conns.remove(c)
            c.close()

    def delivered(self):
        with self.lock:
            out = []
            for b in self.batches:
                if 200 <= b.status < 300:
                    out.extend(b.lines)
            return out

    def all_batches(self):
        with self.lock:
            return list(self.batches)

    def text(self):
        with self.lock:
            return "\n".join(b.body.decode("utf-8", "replace") for b in self.batches)

    def close(self):
        self.stopping = True
        self.down()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# The proxy's stop summary
# ---------------------------------------------------------------------------

SINK_LINE = re.compile(r"log sink (\S+): in=(\d+)((?: \w+=\d+)+)")


def sink_stats(stderr_text):
    """{sink name: {counter: value}} from the last summary in the text."""
    out = {}
    for m in SINK_LINE.finditer(stderr_text):
        d = {"in": int(m.group(2))}
        for kv in m.group(3).split():
            k, _, v = kv.partition("=")
            d[k] = int(v)
        out[m.group(1)] = d
    return out


def logger_stats(stderr_text):
    m = None
    for m in re.finditer(r"logger: access=(\d+) relay=(\d+) relay_rejected=(\d+) syslog=(\d+) "
                         r"queue_drops=(\d+)", stderr_text):
        pass
    if m is None:
        return None
    keys = ["access", "relay", "relay_rejected", "syslog", "queue_drops"]
    return dict(zip(keys, (int(x) for x in m.groups())))


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return [l for l in f.read().decode("utf-8", "replace").split("\n") if l]
    except OSError:
        return []


def json_lines(lines):
    out = []
    for l in lines:
        try:
            out.append(json.loads(l))
        except ValueError:
            raise CaseFailure("not a JSON line: %r" % l[:300])
    return out


def post(port, path, body, headers=None, timeout=10.0):
    """POST `body` (bytes); returns (status, response body)."""
    h = {"Host": "logs.example", "Content-Length": str(len(body))}
    h.update(headers or {})
    req = ("POST %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in h.items()) +
           "Connection: close\r\n\r\n").encode() + body
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(req)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, rest


def get(port, target, headers=None, timeout=10.0):
    """One GET on its own connection; returns the status."""
    h = {"Host": "shop.example"}
    h.update(headers or {})
    req = ("GET %s HTTP/1.1\r\n" % target + "".join("%s: %s\r\n" % kv for kv in h.items()) +
           "Connection: close\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(req)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    head = data.split(b"\r\n", 1)[0]
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


class KeepAliveClient:
    """Many GETs on one keep-alive connection (fast, for load)."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.s = None
        self.buf = b""

    def _connect(self):
        self.s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.buf = b""

    def get(self, target, host="shop.example"):
        for attempt in range(2):
            if self.s is None:
                self._connect()
            try:
                self.s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, host)).encode())
                return self._response()
            except (OSError, ValueError):
                self.close()
                if attempt == 1:
                    raise
        return 0

    def _response(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ValueError("closed")
            self.buf += d
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        n = 0
        close = False
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v.strip())
            if k.strip().lower() == b"connection" and v.strip().lower() == b"close":
                close = True
        while len(rest) < n:
            d = self.s.recv(65536)
            if not d:
                raise ValueError("closed")
            rest += d
        self.buf = rest[n:]
        if close:
            self.close()
        return status

    def close(self):
        if self.s is not None:
            self.s.close()
        self.s = None

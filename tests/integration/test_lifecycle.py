#!/usr/bin/env python3
"""Process lifecycle and timeouts: graceful stop, drain, slowloris,
keep-alive and body idle timeouts, and large streamed uploads with bounded
memory."""

import hashlib
import os
import resource
import signal
import socket
import select
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, CaseFailure, Client, Proxy, anonproxy_path, check,  # noqa: E402
                     connect, curl, exchange, free_port, make_config, run_cases, short,
                     wait_for)


def get(path="/", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a.example\r\n" + extra + b"\r\n"


def t_graceful_stop_inflight():
    with Backend(delay=1.0, body=b"finished") as b:
        p = Proxy(backend=b)
        try:
            c = Client(p.port, timeout=5.0)
            t0 = time.monotonic()
            c.send(get("/inflight"))
            b.wait_requests(1, 3.0)
            time.sleep(0.1)
            p.signal(signal.SIGTERM)
            time.sleep(0.3)
            # New connections are refused once the stop began.
            refused = False
            try:
                s = socket.create_connection(("127.0.0.1", p.port), timeout=1.0)
                s.settimeout(1.0)
                try:
                    s.sendall(get("/late"))
                    data = s.recv(100)
                    refused = data == b""
                    why = "a new connection was accepted and got %s" % short(data)
                except (ConnectionResetError, BrokenPipeError):
                    refused = True
                except socket.timeout:
                    why = "a new connection was accepted and left waiting"
                s.close()
            except OSError:
                # Refused (or not even answered): the listener is gone.
                refused = True
            check(refused, why if not refused else "")
            r = c.response()
            el = time.monotonic() - t0
            check(r is not None and r.status == 200 and r.body == b"finished",
                  "in-flight request after SIGTERM: %r" % r)
            check(el >= 0.9, "answered after %.2fs although the backend takes 1s" % el)
            c.close()
            try:
                p.proc.wait(5.0)
            except Exception:
                raise AssertionError("proxy still running 5s after the in-flight request ended")
            check(p.proc.returncode == 0, "exit code %s; stderr: %s" % (p.proc.returncode, p.stderr_tail()))
            check(len([q for q in b.requests if q.target == "/late"]) == 0, "late request forwarded")
        finally:
            p.stop()
            p.cleanup()


def t_sigterm_idle_exits_fast():
    with Backend() as b:
        p = Proxy(backend=b)
        try:
            t0 = time.monotonic()
            p.signal(signal.SIGTERM)
            try:
                p.proc.wait(2.0)
            except Exception:
                raise AssertionError("idle proxy still running 2s after SIGTERM")
            check(p.proc.returncode == 0, "exit code %s; stderr: %s" % (p.proc.returncode, p.stderr_tail()))
            check(time.monotonic() - t0 < 2.0, "slow exit")
        finally:
            p.stop()
            p.cleanup()


def t_drain_bounds_stop():
    with Backend(mode="hang") as b:
        p = Proxy(backend=b, timeouts={"drain": "1s"})
        try:
            c = Client(p.port, timeout=5.0)
            c.send(get("/forever"))
            b.wait_requests(1, 3.0)
            idle = Client(p.port)
            t0 = time.monotonic()
            p.signal(signal.SIGTERM)
            try:
                p.proc.wait(4.0)
            except Exception:
                raise AssertionError("proxy still running 4s after SIGTERM with drain 1s")
            el = time.monotonic() - t0
            check(el >= 0.8, "exited after %.2fs, before the 1s drain with a request in flight" % el)
            check(c.is_closed(1.0), "in-flight client connection not closed")
            check(idle.is_closed(1.0), "idle client connection not closed")
            c.close()
            idle.close()
        finally:
            p.stop()
            p.cleanup()


def t_slowloris():
    with Backend() as b, Proxy(backend=b, timeouts={"request_head": "1s"}) as p:
        s = connect(p.port)
        try:
            data = b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Slow: " + b"a" * 100
            t0 = time.monotonic()
            got = b""
            closed_at = None
            for i in range(len(data)):
                try:
                    s.sendall(data[i:i + 1])
                except OSError:
                    closed_at = time.monotonic() - t0
                    break
                r, _, _ = select.select([s], [], [], 0.1)
                if r:
                    try:
                        chunk = s.recv(4096)
                    except ConnectionResetError:
                        chunk = b""
                    got += chunk
                    if not chunk:
                        closed_at = time.monotonic() - t0
                        break
                if time.monotonic() - t0 > 4.0:
                    break
            check(closed_at is not None, "connection still open %.1fs into a slowloris head "
                  "(request_head 1s); got %s" % (time.monotonic() - t0, short(got)))
            check(0.8 <= closed_at <= 2.5, "closed after %.2fs, want about 1s" % closed_at)
            if got:
                check(got.startswith(b"HTTP/1.1 408 "), "want 408 or a plain close, got %s" % short(got))
            check(b.total_bytes() == 0, "backend received %s" % short(b.raw()))
        finally:
            s.close()


def t_keepalive_timeout():
    with Backend() as b, Proxy(backend=b, timeouts={"keepalive": "500ms"}) as p, Client(p.port) as c:
        r = c.request(get("/"))
        check(r is not None and r.status == 200, "response %r" % r)
        t0 = time.monotonic()
        check(c.is_closed(3.0), "idle keep-alive connection open 3s after the response (keepalive 500ms)")
        el = time.monotonic() - t0
        check(el >= 0.4, "idle connection closed after %.2fs, before keepalive 500ms" % el)
        check(not c.reader.buf, "bytes on an idle connection: %s" % short(bytes(c.reader.buf)))


def t_body_idle_timeout():
    with Backend() as b, Proxy(backend=b, timeouts={"body_idle": "500ms"}) as p, Client(p.port) as c:
        t0 = time.monotonic()
        c.send(b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\n\r\nabc")
        check(c.is_closed(4.0), "connection open 4s into a stalled body (body_idle 500ms)")
        el = time.monotonic() - t0
        check(el >= 0.4, "closed after %.2fs, before body_idle" % el)
        data = bytes(c.reader.buf)
        check(data == b"" or data.startswith(b"HTTP/1.1 408 ") or data.startswith(b"HTTP/1.1 400 "),
              "want 408 (or a close) on a stalled body, got %s" % short(data))
        time.sleep(0.2)
        check(not [q for q in b.requests if q.complete], "backend got a complete request: %r" % b.requests)


# --- large uploads ------------------------------------------------------------

BLOCK = os.urandom(1 << 20)


class RssWatch:
    def __init__(self, proxy):
        self.proxy = proxy
        self.max = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            self.max = max(self.max, self.proxy.rss_kb())
            self.stop.wait(0.05)

    def done(self):
        self.stop.set()
        self.t.join(2)
        return self.max


def big_upload(total_mb, chunked):
    # ASan keeps freed memory in a quarantine (256 MB by default), which
    # would read as growth; a small quarantine keeps the measure honest.
    env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")}
    with Backend(store_limit=0, raw_limit=4096, body=b"stored") as b, \
            Proxy(backend=b, env=env, route_extra={"max_body_bytes": "1g"},
                  limits={"body_bytes": "1g"}) as p, Client(p.port, timeout=30.0) as c:
        r = c.request(get("/warmup"))
        check(r is not None and r.status == 200, "warm-up %r" % r)
        time.sleep(0.2)
        base = p.rss_kb()
        watch = RssWatch(p)
        sha = hashlib.sha256()
        n = total_mb << 20
        t0 = time.monotonic()
        try:
            if chunked:
                c.send(b"POST /big HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                c.send(b"POST /big HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % n)
            for _ in range(total_mb):
                sha.update(BLOCK)
                if chunked:
                    c.send(b"100000\r\n" + BLOCK + b"\r\n")
                else:
                    c.send(BLOCK)
            if chunked:
                c.send(b"0\r\n\r\n")
            r = c.response()
        finally:
            peak = watch.done()
        el = time.monotonic() - t0
        check(r is not None and r.status == 200 and r.body == b"stored", "response %r" % r)
        reqs = [q for q in b.requests if q.target == "/big"]
        check(len(reqs) == 1 and reqs[0].well_formed, "backend got %r" % reqs)
        q = reqs[0]
        check(q.body_len == n, "backend got %d bytes, want %d" % (q.body_len, n))
        check(q.body_sha256 == sha.hexdigest(), "body differs (sha256)")
        growth = (peak - base) / 1024.0
        check(growth < 64, "proxy RSS grew by %.0f MB during a %d MB upload (base %.0f MB, peak %.0f MB)"
              % (growth, total_mb, base / 1024.0, peak / 1024.0))
        print("# %d MB %s upload: %.1fs, RSS growth %.1f MB" % (
            total_mb, "chunked" if chunked else "Content-Length", el, growth), flush=True)


def t_upload_content_length_128m():
    big_upload(128, chunked=False)


def t_upload_chunked_64m():
    big_upload(64, chunked=True)


def _limits(pid):
    """(soft, hard) open-files limits of a process, from /proc."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    raise CaseFailure("no open-files line in /proc/%d/limits" % pid)


def _cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def start_limited(p, nofile):
    """Start Proxy `p` under `prlimit --nofile=SOFT:HARD` (prlimit execs the
    proxy, so p.pid is the proxy's)."""
    wrapper = os.path.join(p.tmp, "limited.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec prlimit --nofile=%s %s \"$@\"\n" % (nofile, anonproxy_path()))
    os.chmod(wrapper, 0o755)
    saved = os.environ.get("ANONPROXY")
    os.environ["ANONPROXY"] = wrapper
    try:
        p.start()
    finally:
        if saved is None:
            del os.environ["ANONPROXY"]
        else:
            os.environ["ANONPROXY"] = saved


def t_open_files_limit():
    """The soft open-files limit is raised towards what workers x
    connections_per_worker need (up to the hard limit); a hard limit too low
    is said at start. With the descriptors exhausted, the proxy does not
    spin, stays up, and serves again once connections close."""
    with Backend() as b:
        port = free_port()
        # Only root may raise a hard limit: stay under the test's own.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        conns = min(3000, (hard - 1024 - 100) // 2)
        check(conns >= 100, "the test's own open-files hard limit (%d) is too low" % hard)
        cfg = make_config(port, b, limits={"connections_per_worker": conns})
        # Soft 256 under a higher hard limit: raised to 2 x conns + 1024.
        p = Proxy(config=cfg, port=port, start=False)
        start_limited(p, "256:%d" % hard)
        want = 2 * conns + 1024
        try:
            soft, got_hard = _limits(p.pid)
            check(soft == want and got_hard == hard, "limits %d/%d, want %d/%d" % (soft, got_hard, want, hard))
            check("open files limit %d" % want in p.stderr_text(), "no info line: %s" % p.stderr_tail())
        finally:
            p.stop()
        # A hard limit below the need: warned, and the proxy survives running out.
        p = Proxy(config=cfg, port=port, start=False)
        start_limited(p, "40:40")
        try:
            check(wait_for(lambda: "open files limited to 40" in p.stderr_text(), 3.0),
                  "no warning: %s" % p.stderr_tail())
            held = []
            for _ in range(80):
                try:
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                except OSError:
                    break
            t0 = _cpu_ticks(p.pid)
            time.sleep(1.0)
            spent = _cpu_ticks(p.pid) - t0
            check(p.alive(), "proxy died out of descriptors: %s" % p.stderr_tail())
            check(spent < 50, "proxy spins out of descriptors: %d ticks in 1 s" % spent)
            for h in held:
                h.close()

            def serves():
                try:
                    return curl(p.url("/"), timeout=2).status == 200
                except Exception:
                    return False
            check(wait_for(serves, 5.0), "no 200 after the connections closed")
        finally:
            p.stop()


CASES = [
    ("graceful_stop_completes_inflight_request", t_graceful_stop_inflight, 20),
    ("sigterm_idle_exits_0_quickly", t_sigterm_idle_exits_fast, 15),
    ("drain_timeout_bounds_stop", t_drain_bounds_stop, 20),
    ("slowloris_request_head_timeout", t_slowloris, 20),
    ("keepalive_idle_timeout", t_keepalive_timeout, 15),
    ("body_idle_timeout", t_body_idle_timeout, 15),
    ("upload_128m_content_length_bounded_rss", t_upload_content_length_128m, 120),
    ("upload_64m_chunked_bounded_rss", t_upload_chunked_64m, 120),
    ("open_files_limit_raised_warned_survived", t_open_files_limit, 30),
]

if __name__ == "__main__":
    run_cases(CASES)

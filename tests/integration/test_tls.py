#!/usr/bin/env python3
"""TLS termination and TLS to upstreams, end to end: openssl s_client and
curl against the proxy, a real nginx as an https upstream. Certificates are
made at test time (harness.TestPKI); nothing is committed.

Needs the `openssl`, `curl` and `nginx` commands (Debian: openssl, curl,
nginx); the nginx case is skipped with a message when nginx is missing.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, CaseFailure, Proxy, Reader, TestPKI, check, curl,  # noqa: E402
                     free_port, make_config, read_final, run_cases, s_client, short,
                     tls_listener, wait_for)

PKI = None


def pki():
    """One PKI for the whole run: a root, an intermediate and leaves."""
    global PKI
    if PKI is None:
        p = TestPKI()
        # a.test: an RSA pair signed by the intermediate (served with its
        # chain file) and an ECDSA pair signed by the root, same names.
        p.a_rsa = p.leaf("a-rsa", cn="a.test rsa", dns=["a.test", "www.a.test"], kind="rsa",
                         issuer="inter")
        p.a_ec = p.leaf("a-ec", cn="a.test ec", dns=["a.test", "www.a.test"], kind="ec")
        # b.test and every name under it, ECDSA.
        p.b_ec = p.leaf("b-ec", cn="b.test", dns=["b.test", "*.b.test"], kind="ec")
        # The https upstream (nginx): a name and 127.0.0.1.
        p.backend = p.leaf("backend", cn="backend.test", dns=["backend.test"],
                           ips=["127.0.0.1"], kind="ec")
        p.client = p.leaf("client", cn="anonproxy client", kind="ec", client=True)
        p.soon = p.leaf("soon", cn="soon.test", dns=["soon.test"], days=2)
        PKI = p
    return PKI


def certs_ab():
    p = pki()
    return [
        {"cert": p.a_rsa[0], "key": p.a_rsa[1], "chain": p.inter},
        {"cert": p.a_ec[0], "key": p.a_ec[1]},
        {"cert": p.b_ec[0], "key": p.b_ec[1]},
    ]


def tls_proxy(backend, workers=1, log_level="info", tls_extra=None, **kw):
    """A proxy whose only listener terminates TLS with certs_ab()."""
    port = free_port()
    cfg = make_config(port, backend, workers=workers, **kw)
    cfg["log_level"] = log_level
    cfg["listen"] = [tls_listener(port, certs_ab(), **(tls_extra or {}))]
    return Proxy(config=cfg, port=port)


# s_client without Debian's system-wide minimum (MinProtocol = TLSv1.2,
# SECLEVEL=2), so that it really offers TLS 1.0 and 1.1.
OLD_CLIENT_ENV = None


def old_client_env():
    global OLD_CLIENT_ENV
    if OLD_CLIENT_ENV is None:
        path = os.path.join(pki().dir, "openssl-empty.cnf")
        with open(path, "w") as f:
            f.write("# no system defaults\n")
        OLD_CLIENT_ENV = {"OPENSSL_CONF": path}
    return OLD_CLIENT_ENV


def field(out, name):
    """The value of "NAME: value" in s_client -brief output."""
    m = re.search(r"^%s: (.*)$" % re.escape(name), out, re.M)
    return m.group(1).strip() if m else None


def brief(port, *args, **kw):
    return s_client(port, "-brief", "-CAfile", pki().ca, "-verify_return_error", *args, **kw)


GET = b"GET /tls HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


def fetch(port, *args, **kw):
    """One request through s_client; -ign_eof keeps reading until the proxy
    closes, so TLS 1.3 tickets arrive before s_client exits."""
    return s_client(port, "-CAfile", pki().ca, "-ign_eof", *args, stdin=GET, **kw)


# ---------------------------------------------------------------------------


def t_protocols():
    with Backend() as b:
        with tls_proxy(b) as p:
            for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                rc, out = brief(p.port, "-servername", "a.test", flag)
                check(rc == 0 and field(out, "Protocol version") == version,
                      "%s refused: rc=%d %s" % (version, rc, out[-600:]))
                check(field(out, "Verification") == "OK", "verification: %s" % out[-600:])
            for flag in ("-tls1", "-tls1_1"):
                rc, out = s_client(p.port, flag, "-cipher", "DEFAULT@SECLEVEL=0",
                                   env=old_client_env())
                check(rc != 0 and "alert protocol version" in out,
                      "%s was not refused with protocol_version: rc=%d %s"
                      % (flag, rc, out[-600:]))
            # A TLS 1.2 client is offered forward-secret AEAD suites only.
            for cipher in ("AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA256",
                           "ECDHE-RSA-AES256-SHA", "DHE-RSA-AES128-GCM-SHA256"):
                rc, out = brief(p.port, "-tls1_2", "-cipher", cipher)
                check(rc != 0, "TLS 1.2 cipher %s was accepted: %s" % (cipher, out[-400:]))
            rc, out = brief(p.port, "-tls1_2", "-servername", "a.test")
            suite = field(out, "Ciphersuite") or ""
            check(rc == 0 and suite.startswith("ECDHE-") and
                  ("GCM" in suite or "CHACHA20" in suite), "TLS 1.2 suite %r" % suite)
            # Groups: X25519 and P-256 only.
            rc, out = brief(p.port, "-groups", "P-384")
            check(rc != 0, "P-384 alone was accepted: %s" % out[-400:])
            rc, out = brief(p.port, "-groups", "P-256")
            temp_key = field(out, "Server Temp Key") or ""
            check(rc == 0 and ("P-256" in temp_key or "prime256v1" in temp_key),
                  "P-256: %s" % out[-400:])
    # The TLS 1.0 client itself works: refused by the proxy, not locally.
    port = free_port()
    srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                            "-cert", pki().a_rsa[0], "-key", pki().a_rsa[1], "-tls1",
                            "-cipher", "DEFAULT@SECLEVEL=0", "-naccept", "2", "-quiet"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=dict(os.environ, **old_client_env()))
    try:
        wait_for(lambda: _can_connect(port), 5)
        rc, out = s_client(port, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", "-brief",
                           env=old_client_env())
        check(field(out, "Protocol version") == "TLSv1",
              "control: this openssl cannot speak TLS 1.0 at all: %s" % out[-400:])
    finally:
        srv.kill()
        srv.wait(5)


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def t_sni_and_key_types():
    with Backend() as b:
        with tls_proxy(b) as p:
            cases = [
                # (servername, extra args, expected peer, expected signature type)
                ("a.test", ["-sigalgs", "ecdsa_secp256r1_sha256"], "CN = a.test ec", "ECDSA"),
                ("a.test", ["-sigalgs", "rsa_pss_rsae_sha256"], "CN = a.test rsa", "RSA-PSS"),
                ("www.a.test", ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
                 "CN = a.test rsa", None),
                ("A.TEST", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
                 "CN = a.test ec", None),
                ("b.test", [], "CN = b.test", "ECDSA"),
                ("deep.b.test", [], "CN = b.test", "ECDSA"),       # wildcard
                ("x.deep.b.test", [], "CN = a.test", None),        # one label only: default
                ("unknown.test", [], "CN = a.test", None),         # default group
            ]
            for name, extra, peer, sig in cases:
                rc, out = s_client(p.port, "-brief", "-servername", name, *extra)
                got = field(out, "Peer certificate") or ""
                check(got.startswith(peer), "SNI %s %s: peer %r, expected %r; %s"
                      % (name, extra, got, peer, out[-500:]))
                if sig is not None:
                    check(field(out, "Signature type") == sig,
                          "SNI %s: signature type %r" % (name, field(out, "Signature type")))
            rc, out = s_client(p.port, "-brief", "-noservername")
            check((field(out, "Peer certificate") or "").startswith("CN = a.test"),
                  "no SNI: %s" % out[-400:])
            # The RSA leaf is signed by the intermediate: the chain file
            # makes it verify against the root alone.
            rc, out = brief(p.port, "-servername", "a.test", "-sigalgs", "rsa_pss_rsae_sha256",
                            "-verify_hostname", "a.test")
            check(rc == 0 and field(out, "Verification") == "OK",
                  "chain not sent or not verifiable: %s" % out[-600:])


def t_alpn():
    with Backend() as b:
        with tls_proxy(b) as p:
            for offer in ("http/1.1", "h2,http/1.1", "h3,http/1.1,spdy/3"):
                rc, out = s_client(p.port, "-alpn", offer)
                check("ALPN protocol: http/1.1" in out, "offer %s: %s" % (offer, out[-400:]))
            rc, out = s_client(p.port, "-alpn", "h2")
            check(rc != 0 and "no application protocol" in out,
                  "h2 alone was not refused: %s" % out[-400:])
            rc, out = s_client(p.port)
            check(rc == 0 and "No ALPN negotiated" in out, "without ALPN: %s" % out[-400:])


def _resume(port, tmp, *args):
    """Returns (first output, second output) of a fresh then a resumed
    connection."""
    sess = os.path.join(tmp, "sess-%d.pem" % time.monotonic_ns())
    rc1, out1 = fetch(port, "-sess_out", sess, *args)
    check(rc1 == 0 and "HTTP/1.1 200" in out1, "first connection: %s" % out1[-600:])
    check(os.path.exists(sess), "no session was saved: %s" % out1[-600:])
    rc2, out2 = fetch(port, "-sess_in", sess, *args)
    check(rc2 == 0 and "HTTP/1.1 200" in out2, "second connection: %s" % out2[-600:])
    return out1, out2


def t_resumption():
    tmp = tempfile.mkdtemp(prefix="anonproxy-sess-")
    try:
        with Backend() as b:
            with tls_proxy(b) as p:
                for args in (("-tls1_3",), ("-tls1_2",), ("-tls1_2", "-no_ticket")):
                    out1, out2 = _resume(p.port, tmp, "-servername", "a.test", *args)
                    check(re.search(r"^New, TLSv1\.[23]", out1, re.M) is not None,
                          "%s: first was not a full handshake: %s" % (args, out1[-400:]))
                    check(re.search(r"^Reused, TLSv1\.[23]", out2, re.M) is not None,
                          "%s: not resumed: %s" % (args, out2[-600:]))
        # Without tickets nor cache nothing resumes (TLS 1.3 gets no ticket
        # at all, a TLS 1.2 session id is not remembered).
        with Backend() as b:
            with tls_proxy(b, tls_extra={"session_tickets": False, "session_cache": 0}) as p:
                for args in (("-tls1_3",), ("-tls1_2",)):
                    sess = os.path.join(tmp, "off%s.pem" % args[0])
                    rc, out = fetch(p.port, "-sess_out", sess, "-servername", "a.test", *args)
                    check(rc == 0 and "HTTP/1.1 200" in out, "first: %s" % out[-400:])
                    if not os.path.exists(sess):
                        continue  # nothing offered to resume: as expected
                    rc, out = fetch(p.port, "-sess_in", sess, "-servername", "a.test", *args)
                    check(re.search(r"^New, ", out, re.M) is not None,
                          "%s: resumed with tickets and cache off: %s" % (args, out[-400:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def t_resumption_across_workers():
    """A ticket issued by one worker resumes on the other: the kernel
    spreads connections over both (SO_REUSEPORT), the debug log names the
    worker of each handshake."""
    tmp = tempfile.mkdtemp(prefix="anonproxy-sess-")
    try:
        with Backend() as b:
            with tls_proxy(b, workers=2, log_level="debug") as p:
                for args in (("-tls1_3",), ("-tls1_2",), ("-tls1_2", "-no_ticket")):
                    sess = os.path.join(tmp, "s%s.pem" % "".join(args))
                    rc, out = fetch(p.port, "-sess_out", sess, "-servername", "a.test", *args)
                    check(rc == 0 and os.path.exists(sess), "first: %s" % out[-400:])
                    check(p.wait_log(re.compile(r"worker \d: handshake done: \S+ \S+\n")), "log")
                    full = re.findall(r"worker (\d): handshake done: \S+ \S+\n", p.stderr_text())
                    issuer = full[-1]
                    resumed_on = set()
                    for i in range(16):
                        rc, out = fetch(p.port, "-sess_in", sess, "-servername", "a.test", *args)
                        check(re.search(r"^Reused, ", out, re.M) is not None,
                              "%s try %d: not resumed: %s" % (args, i, out[-500:]))
                        text = p.stderr_text()
                        resumed_on = set(re.findall(r"worker (\d): handshake done: .*\(resumed\)",
                                                    text))
                        if resumed_on - {issuer}:
                            break
                    check(resumed_on - {issuer},
                          "%s: 16 resumptions, none on a worker other than %s (resumed on %s)"
                          % (args, issuer, sorted(resumed_on)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def t_curl_end_to_end():
    with Backend(body=b"hello over tls") as b:
        with tls_proxy(b, workers=2) as p:
            url = "https://a.test:%d/page?x=1" % p.port
            resolve = "a.test:%d:127.0.0.1" % p.port
            r = curl(url, "--cacert", pki().ca, "--resolve", resolve)
            check(r.rc == 0 and r.status == 200 and r.body == b"hello over tls", repr(r))
            r = curl(url, "--cacert", pki().ca, "--resolve", resolve, "--data-binary",
                     "payload=" + "x" * 100000, "-H",
                     "Content-Type: application/x-www-form-urlencoded")
            check(r.rc == 0 and r.status == 200, repr(r))
            check(b.wait_requests(2, 5.0), "backend saw %d requests" % len(b.requests))
            post = b.requests[-1]
            check(post.method == "POST" and post.body_len == len("payload=") + 100000,
                  "POST reached the backend as %r" % post)
            # Several requests on one kept-alive TLS connection.
            r = curl(url, "--cacert", pki().ca, "--resolve", resolve, "-H", "X: 1",
                     "--next", "--cacert", pki().ca, "--resolve", resolve, url)
            check(r.rc == 0 and r.body.count(b"hello over tls") == 2, repr(r))
            # A wrong CA: curl refuses our certificate (it really is checked).
            other = TestPKI()
            try:
                r = curl(url, "--cacert", other.ca, "--resolve", resolve)
                check(r.rc == 60, "curl with another CA: %r" % r)
            finally:
                other.cleanup()
            # Plain HTTP on the TLS port gets no answer, only a close.
            s = socket.create_connection(("127.0.0.1", p.port), timeout=3)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            s.settimeout(3)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            s.close()
            check(b"HTTP/1.1" not in data, "plain HTTP answered in plaintext: %s" % short(data))


def t_access_log_tls_version():
    """The access record names the negotiated protocol version."""
    with Backend(body=b"ok") as b:
        port = free_port()
        cfg = make_config(port, b)
        cfg["listen"] = [tls_listener(port, certs_ab())]
        logfile = os.path.join(pki().dir, "access-%d.log" % port)
        cfg["log_sinks"] = {"file1": {"type": "file", "path": logfile,
                                      "spool": {"dir": logfile + ".spool"}}}
        cfg["access_log"] = {"sinks": ["file1"]}
        with Proxy(config=cfg, port=port):
            url = "https://a.test:%d/page" % port
            r = curl(url, "--cacert", pki().ca, "--resolve", "a.test:%d:127.0.0.1" % port,
                     "--tlsv1.3")
            check(r.rc == 0 and r.status == 200, repr(r))
            check(wait_for(lambda: os.path.exists(logfile) and os.path.getsize(logfile) > 0, 5.0),
                  "no access record")
        with open(logfile) as f:
            text = f.read()
        check('"TLSv1.3"' in text, "access record without the TLS version: %s" % text[-400:])


def t_keepalive_and_large_response():
    body = os.urandom(3 * 1024 * 1024 + 7)
    with Backend(body=body) as b:
        with tls_proxy(b) as p:
            ctx = ssl.create_default_context(cafile=pki().ca)
            with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                    check(s.selected_alpn_protocol() is None, "ALPN without an offer")
                    for i in range(3):
                        s.sendall(b"GET /big%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
                        head = b""
                        while b"\r\n\r\n" not in head:
                            chunk = s.recv(65536)
                            check(chunk, "closed during head %d" % i)
                            head += chunk
                        h, rest = head.split(b"\r\n\r\n", 1)
                        m = re.search(rb"content-length: (\d+)", h, re.I)
                        check(m is not None and int(m.group(1)) == len(body), "head %r" % h)
                        got = bytearray(rest)
                        while len(got) < len(body):
                            chunk = s.recv(1 << 20)
                            check(chunk, "closed mid-body %d at %d" % (i, len(got)))
                            got += chunk
                        check(bytes(got) == body, "body %d differs" % i)


def t_handshake_failures_counted_not_logged():
    with Backend() as b:
        with tls_proxy(b, log_level="info", tls_extra={"handshake_timeout": "1s"}) as p:
            # A silent client is closed after handshake_timeout.
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            t0 = time.monotonic()
            s.settimeout(5)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            el = time.monotonic() - t0
            s.close()
            check(data == b"" and 0.8 <= el <= 3.0, "silent client closed after %.2fs" % el)
            for flag in ("-tls1", "-tls1_1"):
                s_client(p.port, flag, "-cipher", "DEFAULT@SECLEVEL=0", env=old_client_env())
            s_client(p.port, "-alpn", "h2")
            s = socket.create_connection(("127.0.0.1", p.port), timeout=3)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(3)
            try:
                s.recv(100)
            except OSError:
                pass
            s.close()
            time.sleep(0.3)
            during = p.stderr_text()
            check("handshake failed" not in during,
                  "handshake failures logged at info level: %s" % during[-600:])
            # Counted by reason: the summary at stop.
            p.stop()
            text = p.stderr_text()
            m = re.search(r"tls listener 127\.0\.0\.1:%d: .* failed: (.*)" % p.port, text)
            check(m is not None, "no TLS summary at stop: %s" % text[-600:])
            counts = dict(kv.split("=") for kv in m.group(1).split())
            check(counts.get("protocol") == "2" and counts.get("alpn") == "1" and
                  counts.get("not_tls") == "1" and counts.get("timeout") == "1",
                  "failure counts %r" % counts)
    with Backend() as b:
        with tls_proxy(b, log_level="debug") as p:
            s_client(p.port, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", env=old_client_env())
            check(p.wait_log("handshake failed (protocol): unsupported protocol"),
                  "no debug line for a refused TLS 1.0 client: %s" % p.stderr_tail())
            check("127.0.0.1:" not in re.sub(r"tls listener 127\.0\.0\.1:\d+", "",
                                             re.sub(r"(listening on|address) 127\.0\.0\.1:\d+",
                                                    "", p.stderr_text())),
                  "a client address in the log: %s" % p.stderr_tail())


def t_config_errors_name_files():
    p = pki()
    port = free_port()
    cfg = make_config(port, upstreams={"u": {"file": "out.ndjson"}},
                      routes=[{"upstream": "u"}])
    cfg["listen"] = [tls_listener(port, [{"cert": p.a_rsa[0], "key": p.a_ec[1]}])]
    from harness import to_yaml, run_cli  # noqa: E402
    tmp = tempfile.mkdtemp(prefix="anonproxy-cfg-")
    try:
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(cfg) + "\n")
        r = run_cli(["-t", "-c", path])
        check(r.returncode == 1 and "%s: key does not match certificate %s" % (p.a_ec[1], p.a_rsa[0])
              in r.stderr, "-t: %s" % r.stderr)
        bad = os.path.join(tmp, "bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
        cfg["listen"] = [tls_listener(port, [{"cert": bad, "key": p.a_ec[1]}])]
        with open(path, "w") as f:
            f.write(to_yaml(cfg) + "\n")
        r = run_cli(["-t", "-c", path])
        check(r.returncode == 1 and "%s: malformed PEM certificate" % bad in r.stderr,
              "-t: %s" % r.stderr)
        # A certificate that expires in two days starts, with a warning.
        with Backend() as b:
            cfg = make_config(port, b)
            cfg["listen"] = [tls_listener(port, [{"cert": p.soon[0], "key": p.soon[1]}])]
            with Proxy(config=cfg, port=port) as px:
                check(px.wait_log(re.compile(r"\[warn\] .*%s: certificate expires in [12] days"
                                             % re.escape(p.soon[0]))),
                      "no expiry warning: %s" % px.stderr_tail())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def t_reload_certificates():
    """SIGHUP: new handshakes get the new certificate, an open connection
    keeps working with the one it has; a broken certificate keeps the old."""
    p = pki()
    with Backend(body=b"ok") as b:
        with tls_proxy(b) as px:
            ctx = ssl.create_default_context(cafile=p.ca)
            raw = socket.create_connection(("127.0.0.1", px.port), timeout=5)
            old = ctx.wrap_socket(raw, server_hostname="b.test")
            reader = Reader(old, timeout=5)
            old.sendall(b"GET /1 HTTP/1.1\r\nHost: b.test\r\n\r\n")
            r = read_final(reader)
            check(r.status == 200 and r.body == b"ok", "first request on the old connection")
            old_der = old.getpeercert(binary_form=True)
            # Replace b.test's pair by a new one (same names) and reload.
            new = p.leaf("b-ec2", cn="b.test renewed", dns=["b.test", "*.b.test"])
            cfg = make_config(px.port, b)
            certs = certs_ab()
            certs[2] = {"cert": new[0], "key": new[1]}
            cfg["listen"] = [tls_listener(px.port, certs)]
            from harness import to_yaml  # noqa: E402
            with open(px.cfg_path, "w") as f:
                f.write(to_yaml(cfg) + "\n")
            px.signal(signal.SIGHUP)
            check(px.wait_log("configuration reloaded", 5), "reload: %s" % px.stderr_tail())
            rc, out = s_client(px.port, "-brief", "-servername", "b.test")
            check(field(out, "Peer certificate") == "CN = b.test renewed",
                  "after reload: %s" % out[-400:])
            old.sendall(b"GET /2 HTTP/1.1\r\nHost: b.test\r\n\r\n")
            r = read_final(reader)
            check(r.status == 200 and r.body == b"ok", "the old connection after reload: %r" % r)
            check(old.getpeercert(binary_form=True) == old_der, "old connection changed")
            old.close()
            # A reload with a key that does not match fails and changes nothing.
            certs[2] = {"cert": new[0], "key": p.a_ec[1]}
            cfg["listen"] = [tls_listener(px.port, certs)]
            with open(px.cfg_path, "w") as f:
                f.write(to_yaml(cfg) + "\n")
            px.signal(signal.SIGHUP)
            check(px.wait_log(re.compile(r"reload failed: .*key does not match"), 5),
                  "bad reload: %s" % px.stderr_tail())
            rc, out = s_client(px.port, "-brief", "-servername", "b.test")
            check(field(out, "Peer certificate") == "CN = b.test renewed",
                  "after a failed reload: %s" % out[-400:])


# ---------------------------------------------------------------------------
# An https upstream: a real nginx with our CA


class Nginx:
    """nginx in a temporary prefix, two TLS servers: `port` (server
    certificate for backend.test and 127.0.0.1) and `mtls_port` (the same,
    and a client certificate from our CA required). Stopped by PID."""

    def __init__(self):
        self.bin = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access(
            "/usr/sbin/nginx", os.X_OK) else None)
        if self.bin is None:
            raise CaseFailure("nginx is not installed (Debian package nginx)")
        p = pki()
        self.prefix = tempfile.mkdtemp(prefix="anonproxy-nginx-")
        self.port, self.mtls_port = free_port(), free_port()
        self.log = os.path.join(self.prefix, "access.log")
        conf = os.path.join(self.prefix, "nginx.conf")
        tls = """
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:S:1m;
        ssl_session_tickets on;
        keepalive_requests 1000;
""".format(crt=p.backend[0], key=p.backend[1])
        with open(conf, "w") as f:
            f.write("""
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format t '$server_port $request $ssl_protocol reused=$ssl_session_reused '
                 'sni=$ssl_server_name client=$ssl_client_verify conn=$connection';
    access_log {log} t;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name backend.test;
        {tls}
        location / {{ return 200 "nginx tls $request_uri\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{mport} ssl;
        server_name backend.test;
        {tls}
        ssl_verify_client on;
        ssl_client_certificate {ca};
        location / {{ return 200 "nginx mtls $ssl_client_s_dn\\n"; }}
    }}
}}
""".format(prefix=self.prefix, log=self.log, port=self.port, mport=self.mtls_port, tls=tls,
           ca=p.ca))
        self.proc = subprocess.Popen([self.bin, "-p", self.prefix, "-c", conf, "-e",
                                      os.path.join(self.prefix, "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_for(lambda: _can_connect(self.port) and _can_connect(self.mtls_port), 10):
            self.stop()
            raise CaseFailure("nginx did not start: %s" % self.errors())

    def errors(self):
        try:
            with open(os.path.join(self.prefix, "error.log")) as f:
                return f.read()[-1000:]
        except OSError:
            return ""

    def access(self):
        try:
            with open(self.log) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc.stderr.close()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def t_upstream_nginx():
    p = pki()
    with Nginx() as ng:
        port = free_port()
        ka = {"max_idle": 0, "idle_timeout": "60s"}   # a new connection per request
        ups = {
            "byname": {"servers": ["https://127.0.0.1:%d" % ng.port], "keepalive": ka,
                       "tls": {"ca_file": p.ca, "server_name": "backend.test"}},
            "byip": {"servers": ["https://127.0.0.1:%d" % ng.port],
                     "tls": {"ca_file": p.ca}},
            "wrongname": {"servers": ["https://127.0.0.1:%d" % ng.port],
                          "tls": {"ca_file": p.ca, "server_name": "wrong.test"}},
            "systemca": {"servers": ["https://127.0.0.1:%d" % ng.port],
                         "tls": {"server_name": "backend.test"}},
            "noverify": {"servers": ["https://127.0.0.1:%d" % ng.port],
                         "tls": {"verify": False, "server_name": "wrong.test"}},
            "mtls": {"servers": ["https://127.0.0.1:%d" % ng.mtls_port],
                     "tls": {"ca_file": p.ca, "server_name": "backend.test",
                             "client_cert": p.client[0], "client_key": p.client[1]}},
            "nocert": {"servers": ["https://127.0.0.1:%d" % ng.mtls_port],
                       "tls": {"ca_file": p.ca, "server_name": "backend.test"}},
        }
        routes = [{"name": n, "match": {"path": "/" + n + "/"}, "upstream": n,
                   "max_body_bytes": "1m"} for n in ups]
        cfg = make_config(port, upstreams=ups, routes=routes)
        cfg["listen"] = [tls_listener(port, certs_ab())]
        with Proxy(config=cfg, port=port) as px:
            def get(path):
                return curl("https://a.test:%d%s" % (port, path), "--cacert", p.ca,
                            "--resolve", "a.test:%d:127.0.0.1" % port)
            for i in range(3):
                r = get("/byname/%d" % i)
                check(r.status == 200 and r.body == b"nginx tls /byname/%d\n" % i, repr(r))
            r = get("/byip/x")
            check(r.status == 200 and r.body == b"nginx tls /byip/x\n", repr(r))
            r = get("/wrongname/x")
            check(r.status == 502 and b"hostname mismatch" in r.body, "wrong name: %r" % r)
            r = get("/systemca/x")
            check(r.status == 502 and b"certificate" in r.body, "system CAs: %r" % r)
            r = get("/noverify/x")
            check(r.status == 200, "verify off: %r" % r)
            r = get("/mtls/x")
            check(r.status == 200 and b"CN=anonproxy client" in r.body, "mTLS: %r" % r)
            r = get("/nocert/x")
            check(r.status in (400, 502), "no client certificate: %r" % r)
            # Session reuse towards nginx: every request of /byname/ had a
            # connection of its own; all but the first resumed.
            lines = [l for l in ng.access() if "/byname/" in l]
            check(len(lines) == 3, "nginx saw %r" % lines)
            check("reused=." in lines[0] and all("reused=r" in l for l in lines[1:]),
                  "TLS sessions to the upstream not reused: %r" % lines)
            check(all("sni=backend.test" in l for l in lines), "SNI: %r" % lines)
            byip = [l for l in ng.access() if "/byip/" in l]
            check(byip and re.search(r"sni=-? ", byip[0]) is not None,
                  "an IP upstream without server_name sent SNI: %r" % byip)
            # Keep-alive pooling as for plain upstreams: one TLS connection.
            for i in range(4):
                r = get("/byip/k%d" % i)
                check(r.status == 200, repr(r))
            conns = {re.search(r"conn=(\d+)", l).group(1) for l in ng.access() if "/byip/k" in l}
            check(len(conns) == 1, "pooled TLS connections not reused: %r" % conns)
            px.stop()
            text = px.stderr_text()
            check(re.search(r"tls upstream wrongname: .*verify=1", text) is not None,
                  "verify failure not counted: %s" % text[-800:])


CASES = [
    ("protocols: TLS 1.0/1.1 refused, 1.2/1.3 with AEAD ECDHE only", t_protocols, 60),
    ("SNI picks the certificate (exact, wildcard, default; RSA and ECDSA)",
     t_sni_and_key_types, 60),
    ("ALPN answers http/1.1 only", t_alpn, 60),
    ("resumption: TLS 1.3 PSK, TLS 1.2 tickets and session cache", t_resumption, 60),
    ("resumption across workers", t_resumption_across_workers, 120),
    ("curl --cacert end to end to a plain backend", t_curl_end_to_end, 60),
    ("keep-alive and a 3 MiB response over TLS", t_keepalive_and_large_response, 60),
    ("handshake failures: counted by reason, debug log only, timeout",
     t_handshake_failures_counted_not_logged, 60),
    ("config errors name the file; expiry warning", t_config_errors_name_files, 60),
    ("reload: new certificate for new handshakes only", t_reload_certificates, 60),
    ("access log names the TLS version", t_access_log_tls_version),
    ("https upstream: nginx, verification, wrong name 502, mTLS, session reuse",
     t_upstream_nginx, 120),
]

if __name__ == "__main__":
    try:
        run_cases(CASES)
    finally:
        if PKI is not None:
            PKI.cleanup()

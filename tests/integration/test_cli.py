#!/usr/bin/env python3
"""The command line: -c, -t (config check with FILE:LINE:COL errors),
--version, --help, and logs on stderr."""

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Proxy, check, exchange, free_port, make_config,  # noqa: E402
                     run_cli, run_cases, to_yaml)


class ConfigFile:
    """A config file in a temp dir, removed on exit."""

    def __init__(self, text, name="cfg.yaml"):
        self.dir = tempfile.mkdtemp(prefix="anonproxy-it-cli-")
        self.path = os.path.join(self.dir, name)
        with open(self.path, "w") as f:
            f.write(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


def good_config():
    return to_yaml(make_config(free_port(), upstreams={"backend": {"servers": ["http://127.0.0.1:9"]}})) + "\n"


def located_errors(stderr, path):
    """{line: message} of the `FILE:LINE:COL: message` lines for `path`."""
    out = {}
    pat = re.compile(r"^" + re.escape(path) + r":(\d+):(\d+): (.+)$")
    for line in stderr.splitlines():
        m = pat.match(line)
        if m and int(m.group(2)) >= 1:
            out.setdefault(int(m.group(1)), m.group(3))
    return out


def check_errors_at(text, want_lines, what):
    """`anonproxy -t -c` on `text` exits 1 naming each line of want_lines."""
    with ConfigFile(text) as cf:
        r = run_cli(["-t", "-c", cf.path])
        check(r.returncode == 1, "%s: exit %d, want 1; stderr %r" % (what, r.returncode, r.stderr))
        errs = located_errors(r.stderr, cf.path)
        check(errs, "%s: no FILE:LINE:COL: message on stderr: %r" % (what, r.stderr))
        missing = [ln for ln in want_lines if ln not in errs]
        check(not missing, "%s: no FILE:LINE:COL error for line(s) %s; stderr %r"
              % (what, missing, r.stderr))


def t_version():
    r = run_cli(["--version"])
    check(r.returncode == 0, "exit %d; stderr %r" % (r.returncode, r.stderr))
    check(re.match(r"^anonproxy \d+\.\d+\S*\n?$", r.stdout), "stdout %r, want 'anonproxy <version>'" % r.stdout)


def t_help():
    r = run_cli(["--help"])
    check(r.returncode == 0, "exit %d; stderr %r" % (r.returncode, r.stderr))
    out = r.stdout + r.stderr
    check("-c" in out and "-t" in out, "help does not mention -c and -t: %r" % out)


def t_unknown_option():
    r = run_cli(["--no-such-option"])
    check(r.returncode not in (0, None), "exit %d for an unknown option" % r.returncode)
    check(r.stderr.strip(), "no message on stderr")


def t_check_ok():
    with ConfigFile(good_config()) as cf:
        r = run_cli(["-t", "-c", cf.path])
        check(r.returncode == 0, "exit %d for a valid config; stderr %r" % (r.returncode, r.stderr))


def t_check_missing_file():
    d = tempfile.mkdtemp(prefix="anonproxy-it-cli-")
    try:
        path = os.path.join(d, "nope.yaml")
        r = run_cli(["-t", "-c", path])
        check(r.returncode == 1, "exit %d; stderr %r" % (r.returncode, r.stderr))
        check(path in r.stderr, "stderr does not name the file: %r" % r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


BAD = """workers: 1
listen:
  - address: 127.0.0.1:8080
upstreams:
  backend:
    servers: [http://127.0.0.1:9]
routes:
  - name: main
    match: { path: / }
    upstream: nosuch
timeouts:
  request_head: 10parsecs
"""


def t_check_errors_located():
    check_errors_at(BAD, [10, 12], "unknown upstream and bad duration")


def t_check_bad_size():
    check_errors_at("""workers: 1
listen:
  - address: 127.0.0.1:8080
upstreams:
  backend:
    servers: [http://127.0.0.1:9]
routes:
  - name: main
    match: { path: / }
    upstream: backend
    max_body_bytes: 12zb
""", [11], "bad size")


def t_check_bad_address():
    check_errors_at("""workers: 1
listen:
  - address: 127.0.0.1:99999
upstreams:
  backend:
    servers: [http://127.0.0.1:9]
routes:
  - name: main
    match: { path: / }
    upstream: backend
""", [3], "listen port out of range")


def t_check_unknown_key():
    check_errors_at("""workers: 1
listen:
  - address: 127.0.0.1:8080
upstreams:
  backend:
    servers: [http://127.0.0.1:9]
routes:
  - name: main
    match: { path: / }
    upstream: backend
timeouts:
  reqest_head: 1s
""", [12], "misspelt key")


def t_check_yaml_syntax():
    check_errors_at("""workers: 1
listen:
  - address: 127.0.0.1:8080
upstreams:
  backend:
    servers: [http://127.0.0.1:9
routes:
""", [], "YAML syntax error")
    with ConfigFile("workers: 1\nlisten: [\n") as cf:
        r = run_cli(["-t", "-c", cf.path])
        check(r.returncode == 1 and located_errors(r.stderr, cf.path),
              "YAML syntax error: exit %d stderr %r" % (r.returncode, r.stderr))


def t_run_bad_config_exits_1():
    with ConfigFile(BAD) as cf:
        t0 = time.monotonic()
        r = run_cli(["-c", cf.path], timeout=10)
        check(r.returncode == 1, "exit %d for -c with a bad config; stderr %r" % (r.returncode, r.stderr))
        check(located_errors(r.stderr, cf.path), "no FILE:LINE:COL error: %r" % r.stderr)
        check(time.monotonic() - t0 < 5, "took %.1fs" % (time.monotonic() - t0))


def t_logs_on_stderr():
    with Backend() as b:
        port = free_port()
        cfg = make_config(port, b, routes=[{"name": "api", "match": {"path": "/api"}, "upstream": "backend"}])
        with Proxy(cfg, port=port) as p:
            ex = exchange(p.port, b"GET /nothing-here HTTP/1.1\r\nHost: a.example\r\n\r\n")
            check(ex.first() is not None and ex.first().status == 404, ex.describe())
            check(p.wait_log("404"), "no log line on stderr for a 404: %s" % p.stderr_tail())
            p.stop()
            check(p.stdout_text() == "", "stdout is not empty: %r" % p.stdout_text()[:300])


CASES = [
    ("version", t_version),
    ("help", t_help),
    ("unknown_option", t_unknown_option),
    ("check_valid_config", t_check_ok),
    ("check_missing_file", t_check_missing_file),
    ("check_errors_file_line_col", t_check_errors_located),
    ("check_bad_size", t_check_bad_size),
    ("check_bad_listen_address", t_check_bad_address),
    ("check_unknown_key", t_check_unknown_key),
    ("check_yaml_syntax_error", t_check_yaml_syntax),
    ("run_with_bad_config_exits_1", t_run_bad_config_exits_1),
    ("logs_on_stderr_not_stdout", t_logs_on_stderr),
]

if __name__ == "__main__":
    run_cases(CASES)

#!/usr/bin/env python3
"""Reloading the logging sections (issue 9): sinks added, removed and
changed, the access log format switched, syslog listeners added and
removed, all under load with zero failed requests and zero lost records;
a reload that cannot bind a syslog port fails as a whole."""

import http.client
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Proxy, check, free_port, make_config,  # noqa: E402
                     run_cases, to_yaml, wait_for)
from logs_support import read_lines  # noqa: E402


class Load:
    """Client threads sending GETs, each to a path of its own; the paths of
    the requests that succeeded are kept, every failure is counted."""

    def __init__(self, port, threads=4):
        self.port = port
        self.done = []
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]

    def run(self, i):
        conn = None
        n = 0
        while not self.stop.is_set():
            path = "/load/t%dx/n%dx" % (i, n)
            n += 1
            try:
                if conn is None or n % 7 == 0:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path, headers={"Host": "a.example"})
                r = conn.getresponse()
                r.read()
                with self.lock:
                    if r.status == 200:
                        self.done.append(path)
                    else:
                        self.failures.append("%s: status %d" % (path, r.status))
            except Exception as e:  # noqa: every failure counts
                with self.lock:
                    self.failures.append("%s: %s: %s" % (path, type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def write_config(p, cfg):
    tmp = p.cfg_path + ".new"
    with open(tmp, "w") as f:
        f.write(to_yaml(cfg) + "\n")
    os.rename(tmp, p.cfg_path)


def config(port, b, sinks, access_sinks, fmt="json", template=None, routes_extra=None, **extra):
    cfg = make_config(port, b, workers=2)
    cfg["log_sinks"] = sinks
    al = {"sinks": access_sinks, "format": fmt}
    if template:
        al["template"] = template
    cfg["access_log"] = al
    if routes_extra:
        cfg["routes"] = routes_extra + cfg["routes"]
    cfg.update(extra)
    return cfg


def file_sink(d, name):
    return {"type": "file", "path": "%s/%s.log" % (d, name), "spool": {"dir": "%s/spool-%s" % (d, name)}}


def json_paths(lines):
    out = []
    for ln in lines:
        r = json.loads(ln)  # every line of the first sink is JSON
        out.append((r["id"], r["path"]))
    return out


def text_paths(lines):
    out = []
    for ln in lines:
        check(not ln.startswith("{"), "a JSON line in the text sink: %r" % ln)
        parts = ln.split(" ")
        check(len(parts) == 3 and parts[0] == "T", "not the reloaded template: %r" % ln)
        out.append((parts[1], parts[2]))
    return out


def t_sinks_and_format_under_load():
    d = tempfile.mkdtemp(prefix="ap-logreload-")
    with Backend() as b:
        port = free_port()
        cfg1 = config(port, b, {"first": file_sink(d, "first")}, ["first"], "json")
        cfg2 = config(port, b, {"second": file_sink(d, "second")}, ["second"], "text",
                      template="T $id $path")
        with Proxy(config=cfg1, port=port) as p:
            with Load(port) as load:
                check(wait_for(lambda: len(load.done) >= 100, 10.0), "load did not start")
                write_config(p, cfg2)
                p.signal(signal.SIGHUP)
                check(wait_for(lambda: "logger: reloaded" in p.stderr_text(), 5.0),
                      "no logger reload: %s" % p.stderr_tail())
                at_switch = len(load.done)
                check(wait_for(lambda: len(load.done) >= at_switch + 100, 10.0), "load stalled")
            check(not load.failures, "%d failed requests, first: %s" % (len(load.failures), load.failures[:3]))
            want = sorted(load.done)

            def got():
                return (json_paths(read_lines(d + "/first.log")) + text_paths(read_lines(d + "/second.log")))
            check(wait_for(lambda: len(got()) >= len(want), 10.0),
                  "records: %d of %d" % (len(got()), len(want)))
            first, second = json_paths(read_lines(d + "/first.log")), text_paths(read_lines(d + "/second.log"))
            check(first and second, "both sinks must have records: %d, %d" % (len(first), len(second)))
            paths = sorted(x[1] for x in first + second)
            check(paths == want, "each request exactly once: %d records for %d requests, missing %r, "
                  "extra %r" % (len(paths), len(want), sorted(set(want) - set(paths))[:5],
                                [x for x in set(paths) if paths.count(x) > 1][:5]))
            ids = [x[0] for x in first + second]
            check(len(set(ids)) == len(ids), "a request id twice")
            check(os.path.isdir(d + "/spool-first"), "the removed sink's spool must stay on disk")
            # The removed sink takes nothing more.
            n_first = len(first)
            time.sleep(0.3)
            check(len(read_lines(d + "/first.log")) == n_first, "the removed sink still writes")
            print("  %d requests (%d before, %d after the switch), 0 lost, 0 failed" %
                  (len(want), len(first), len(second)), flush=True)


def t_twenty_switches_under_load():
    """The sinks come and go twenty times: a sink that comes back appends to
    its file again, and still no record is lost or written twice."""
    d = tempfile.mkdtemp(prefix="ap-logreload-")
    with Backend() as b:
        port = free_port()
        cfgs = [config(port, b, {"first": file_sink(d, "first")}, ["first"], "json"),
                config(port, b, {"second": file_sink(d, "second")}, ["second"], "text",
                       template="T $id $path")]
        with Proxy(config=cfgs[0], port=port) as p:
            with Load(port, threads=3) as load:
                check(wait_for(lambda: len(load.done) >= 50, 10.0), "load did not start")
                for i in range(1, 21):
                    write_config(p, cfgs[i % 2])
                    p.signal(signal.SIGHUP)
                    check(wait_for(lambda: p.stderr_text().count("logger: reloaded") >= i, 5.0),
                          "reload %d not applied: %s" % (i, p.stderr_tail()))
                    time.sleep(0.05)
            check(not load.failures, "%d failed requests, first: %s" % (len(load.failures), load.failures[:3]))
            want = sorted(load.done)

            def got():
                return sorted(x[1] for x in json_paths(read_lines(d + "/first.log")) +
                              text_paths(read_lines(d + "/second.log")))
            check(wait_for(lambda: len(got()) >= len(want), 10.0), "records: %d of %d" % (len(got()), len(want)))
            time.sleep(0.2)
            paths = got()
            check(paths == want, "each request exactly once: %d records for %d requests, missing %r" % (
                len(paths), len(want), sorted(set(want) - set(paths))[:5]))
            print("  20 switches, %d requests, 0 lost, 0 duplicated" % len(want), flush=True)


def t_unchanged_sink_keeps_running():
    d = tempfile.mkdtemp(prefix="ap-logreload-")
    with Backend() as b:
        port = free_port()
        cfg1 = config(port, b, {"keep": file_sink(d, "keep")}, ["keep"])
        cfg2 = config(port, b, {"keep": file_sink(d, "keep"), "more": file_sink(d, "more")}, ["keep", "more"])
        with Proxy(config=cfg1, port=port) as p:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/one", headers={"Host": "a.example"})
            check(c.getresponse().read() is not None, "")
            write_config(p, cfg2)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: "logger: reloaded" in p.stderr_text(), 5.0), p.stderr_tail())
            check("1 sinks kept, 1 added, 0 changed, 0 removed" in p.stderr_text(),
                  "the unchanged sink was not kept: %s" % p.stderr_tail())
            c.request("GET", "/two", headers={"Host": "a.example"})
            c.getresponse().read()
            c.close()
            check(wait_for(lambda: len(read_lines(d + "/keep.log")) == 2 and
                           len(read_lines(d + "/more.log")) == 1, 5.0),
                  "keep %r more %r" % (read_lines(d + "/keep.log"), read_lines(d + "/more.log")))


def syslog_send(port, msg):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(msg + b"\n")
    s.close()


def t_syslog_listener_port_in_use_fails():
    d = tempfile.mkdtemp(prefix="ap-logreload-")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    pbusy = busy.getsockname()[1]
    with Backend() as b:
        port, t1, t2 = free_port(), free_port(), free_port()
        route = {"name": "applogs", "type": "logs", "match": {"path": "/logs"}, "log_sinks": ["app"],
                 "privacy": {"profile": "balanced", "client_address": "truncate"}}
        sinks = {"acc": file_sink(d, "acc"), "app": file_sink(d, "app")}
        lsn1 = {"address": "tcp://127.0.0.1:%d" % t1, "route": "applogs"}
        cfg1 = config(port, b, sinks, ["acc"], routes_extra=[route], syslog_listen=[lsn1])
        bad = dict(sinks, extra=file_sink(d, "extra"))
        cfg_bad = config(port, b, bad, ["acc", "extra"], "text", routes_extra=[route],
                         syslog_listen=[lsn1, {"address": "tcp://127.0.0.1:%d" % pbusy, "route": "applogs"}])
        cfg2 = config(port, b, sinks, ["acc"], routes_extra=[route],
                      syslog_listen=[{"address": "tcp://127.0.0.1:%d" % t2, "route": "applogs"}])
        with Proxy(config=cfg1, port=port) as p:
            write_config(p, cfg_bad)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: "reload failed" in p.stderr_text(), 5.0), "no failure: %s" % p.stderr_tail())
            check("syslog_listen tcp://127.0.0.1:%d" % pbusy in p.stderr_text(), p.stderr_tail())
            check("logger: reloaded" not in p.stderr_text(), "the logger changed")
            check(not os.path.exists(d + "/extra.log"), "the failed reload created a sink's file")
            # The old listener and the old format still work.
            syslog_send(t1, b"<13>May  1 10:00:00 h app[1]: before")
            check(wait_for(lambda: len(read_lines(d + "/app.log")) == 1, 5.0), "old listener dead")
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/x", headers={"Host": "a.example"})
            c.getresponse().read()
            check(wait_for(lambda: len(read_lines(d + "/acc.log")) == 1, 5.0), "no access record")
            json.loads(read_lines(d + "/acc.log")[0])
            # A good reload moves the listener.
            write_config(p, cfg2)
            p.signal(signal.SIGHUP)
            check(wait_for(lambda: "logger: reloaded" in p.stderr_text(), 5.0), p.stderr_tail())
            syslog_send(t2, b"<13>May  1 10:00:01 h app[1]: after")
            check(wait_for(lambda: len(read_lines(d + "/app.log")) == 2, 5.0), "new listener dead")
            try:
                socket.create_connection(("127.0.0.1", t1), timeout=2).close()
                check(False, "the removed listener still accepts")
            except ConnectionRefusedError:
                pass
            c.request("GET", "/y", headers={"Host": "a.example"})
            c.getresponse().read()
            c.close()
            check(wait_for(lambda: len(read_lines(d + "/acc.log")) == 2, 5.0), "no access record")
    busy.close()


CASES = [
    ("sinks_and_format_switch_under_load_zero_lost", t_sinks_and_format_under_load, 60),
    ("twenty_switches_under_load_zero_lost", t_twenty_switches_under_load, 60),
    ("unchanged_sink_keeps_running", t_unchanged_sink_keeps_running),
    ("syslog_listener_port_in_use_fails_whole_reload", t_syslog_listener_port_in_use_fails),
]

if __name__ == "__main__":
    run_cases(CASES)

#!/usr/bin/env python3
"""Log shipping that loses nothing (issue 8): receivers down and back up,
the proxy restarted with records in its spool, a full spool and a full
disk, and the long run: 100,000 records under load, the HTTP sink down for
20 s in the middle and the proxy restarted once."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Proxy, check, free_port, make_config, run_cases, wait_for  # noqa: E402
from logs_support import (HttpReceiver, KeepAliveClient, RSyslog, read_lines,  # noqa: E402
                          sink_stats)


def tmpdir():
    return tempfile.mkdtemp(prefix="ap-logs-dur-")


def config(port, backend, sinks, access, workers=1):
    cfg = make_config(port, backend, workers=workers)
    cfg["log_sinks"] = sinks
    cfg["access_log"] = {"sinks": access}
    return cfg


def web_sink(rx, spool, **kw):
    s = {"type": "http", "url": rx.url, "queue": kw.pop("queue", 50),
         "spool": {"dir": spool, "segment_bytes": kw.pop("segment_bytes", "64k")},
         "batch": {"max_events": kw.pop("max_events", 100), "max_age": "50ms"},
         "retry": {"initial": "50ms", "max": kw.pop("retry_max", "500ms")}, "timeout": "2s"}
    s.update(kw)
    return s


def ids_of(lines, prefix):
    out = []
    for l in lines:
        p = json.loads(l)["path"]
        if p and p.startswith(prefix):
            out.append(int(p[len(prefix):]))
    return out


def first_occurrences(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def seg_files(d):
    try:
        return [f for f in os.listdir(d) if f.endswith(".seg")]
    except OSError:
        return []


def t_outage_zero_lost_in_order():
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx:
        port = free_port()
        cfg = config(port, b, {"web": web_sink(rx, d + "/spool")}, ["web"])
        with Proxy(config=cfg, port=port) as p:
            c = KeepAliveClient(port)
            n = 600
            for i in range(n):
                if i == 200:
                    rx.down()
                if i == 450:
                    time.sleep(1.0)
                    rx.up()
                check(c.get("/r/%d" % i) == 200, "request %d" % i)
            c.close()
            check(wait_for(lambda: len(set(ids_of(rx.delivered(), "/r/"))) >= n, 20.0),
                  "delivered %d of %d" % (len(set(ids_of(rx.delivered(), "/r/"))), n))
            p.stop()
            st = sink_stats(p.stderr_text())["web"]
        got = ids_of(rx.delivered(), "/r/")
        check(sorted(set(got)) == list(range(n)), "missing: %r" % sorted(set(range(n)) - set(got))[:20])
        firsts = first_occurrences(got)
        check(firsts == sorted(firsts), "order broken: %r" % [
            (a, b2) for a, b2 in zip(firsts, firsts[1:]) if b2 < a][:10])
        check(st["spooled"] > 0 and st["replayed"] > 0 and st["retries"] > 0, "stats: %r" % st)
        check(st["dropped_queue_full"] + st["dropped_spool_full"] + st["dropped_disk"] +
              st["dropped_shutdown"] == 0, "drops: %r" % st)
        check(seg_files(d + "/spool") == [], "spool not empty at the end: %r" % seg_files(d + "/spool"))
        print("# outage: %d records, %d delivered lines (%d duplicates), spool peak %d bytes" % (
            n, len(got), len(got) - n, st["spool_peak_bytes"]), flush=True)


def t_restart_replays_spool():
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx:
        rx.down()
        port = free_port()
        cfg = config(port, b, {"web": web_sink(rx, d + "/spool")}, ["web"])
        n = 300
        p = Proxy(config=cfg, port=port)
        try:
            c = KeepAliveClient(port)
            for i in range(n):
                check(c.get("/q/%d" % i) == 200, "request %d" % i)
            c.close()
            time.sleep(0.3)
            check(p.stop() == 0, "first run exit code")
            err1 = p.stderr_text()
        finally:
            p.stop()
            p.cleanup()
        st1 = sink_stats(err1)["web"]
        check("kept in the spool" in err1 and seg_files(d + "/spool"), "nothing kept at stop: %s" % err1[-800:])
        check(st1["delivered"] == 0 and st1["dropped_shutdown"] == 0, "first run: %r" % st1)
        rx.up()
        with Proxy(config=cfg, port=port) as p2:
            check(p2.wait_log("left in the spool by an earlier run", 5.0), "replay not announced")
            check(wait_for(lambda: len(set(ids_of(rx.delivered(), "/q/"))) >= n, 15.0),
                  "delivered %d of %d after the restart" % (len(set(ids_of(rx.delivered(), "/q/"))), n))
            p2.stop()
            st2 = sink_stats(p2.stderr_text())["web"]
        got = ids_of(rx.delivered(), "/q/")
        check(got == list(range(n)), "after the restart: order, loss or duplicates: %r" % got[:30])
        check(st2["replayed"] >= n and seg_files(d + "/spool") == [], "second run: %r" % st2)


def t_spool_max_bytes_counted():
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx:
        rx.down()
        port = free_port()
        sink = web_sink(rx, d + "/spool", queue=10, segment_bytes="16k")
        sink["spool"]["max_bytes"] = "64k"
        cfg = config(port, b, {"web": sink}, ["web"])
        with Proxy(config=cfg, port=port) as p:
            c = KeepAliveClient(port)
            n = 800
            for i in range(n):
                check(c.get("/f/%d" % i) == 200, "request %d while the spool is full" % i)
            c.close()
            check(p.wait_log("spool full", 3.0), "spool full not reported")
            rx.up()
            time.sleep(2.0)
            p.stop()
            st = sink_stats(p.stderr_text())["web"]
        got = ids_of(rx.delivered(), "/f/")
        check(st["dropped_spool_full"] > 0, "no spool_full drop counted: %r" % st)
        # Every record is accounted for: delivered, or dropped and counted.
        check(st["delivered"] + st["dropped_spool_full"] == n and len(set(got)) == st["delivered"],
              "accounting: %r, %d delivered ids" % (st, len(set(got))))
        check(st["spool_peak_bytes"] <= 64 * 1024, "spool grew past max_bytes: %r" % st)


def t_disk_full_tmpfs():
    d = tmpdir()
    mnt = d + "/tmpfs"
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", mnt],
                       capture_output=True, text=True)
    check(r.returncode == 0, "cannot mount a tmpfs (run the suite as root): %s" % r.stderr)
    try:
        with Backend() as b, HttpReceiver() as rx:
            rx.down()
            port = free_port()
            sink = web_sink(rx, mnt + "/spool", queue=10, segment_bytes="16k")
            sink["spool"]["max_bytes"] = "100m"  # the disk fills first
            cfg = config(port, b, {"web": sink}, ["web"])
            with Proxy(config=cfg, port=port) as p:
                c = KeepAliveClient(port)
                n = 1500
                for i in range(n):
                    check(c.get("/d/%d" % i) == 200, "request %d with a full disk" % i)
                c.close()
                check(p.wait_log("No space left on device", 3.0), "ENOSPC not reported: %s" %
                      p.stderr_text()[-600:])
                rx.up()
                time.sleep(2.5)
                p.stop()
                st = sink_stats(p.stderr_text())["web"]
            got = ids_of(rx.delivered(), "/d/")
            check(st["dropped_disk"] > 0, "no disk drop counted: %r" % st)
            check(st["delivered"] + st["dropped_disk"] == n and len(set(got)) == st["delivered"],
                  "accounting: %r" % st)
    finally:
        subprocess.run(["umount", mnt], capture_output=True)


def t_syslog_tcp_receiver_restart():
    d = tmpdir()
    with Backend() as b:
        rs = RSyslog()
        try:
            port = free_port()
            sink = {"type": "syslog", "address": "tcp://127.0.0.1:%d" % rs.tcp_port, "queue": 20,
                    "spool": {"dir": d + "/spool"}, "timeout": "1s",
                    "retry": {"initial": "50ms", "max": "300ms"}}
            cfg = config(port, b, {"tcp": sink}, ["tcp"])
            with Proxy(config=cfg, port=port) as p:
                c = KeepAliveClient(port)
                for i in range(50):
                    check(c.get("/s/%d" % i) == 200, "request")
                check(rs.wait_lines("imtcp", 50), "first 50 records: %d" % len(rs.lines("imtcp")))
                rs.stop()
                time.sleep(0.3)
                for i in range(50, 200):
                    check(c.get("/s/%d" % i) == 200, "request")
                time.sleep(0.5)
                rs.start()
                check(rs.wait_lines("imtcp", 200, 15.0), "after the receiver restarted: %d of 200" %
                      len(rs.lines("imtcp")))
                c.close()
                p.stop()
                st = sink_stats(p.stderr_text())["tcp"]
            paths = [json.loads(l[l.index("{"):])["path"] for l in rs.lines("imtcp")]
            ids = [int(x.split("/")[2]) for x in paths]
            check(sorted(set(ids)) == list(range(200)), "missing: %r" % sorted(set(range(200)) - set(ids)))
            check(first_occurrences(ids) == sorted(first_occurrences(ids)), "order broken")
            check(st["spooled"] > 0 and st["retries"] > 0, "stats: %r" % st)
        finally:
            rs.stop()
            rs.cleanup()


def t_block_and_drop_newest():
    """when_full: block holds records in the workers' queues (and drops,
    counted, only when those are full); drop_newest drops and counts."""
    d = tmpdir()
    with Backend() as b, HttpReceiver() as rx1, HttpReceiver() as rx2:
        rx1.down()
        rx2.down()
        port = free_port()
        sinks = {"blk": web_sink(rx1, d + "/s1", queue=10, when_full="block"),
                 "drp": web_sink(rx2, d + "/s2", queue=10, when_full="drop_newest")}
        cfg = config(port, b, sinks, ["blk", "drp"])
        cfg["access_log"]["worker_queue"] = "64k"
        with Proxy(config=cfg, port=port) as p:
            c = KeepAliveClient(port)
            n = 60  # fits in a 64 KiB worker queue (about 400 bytes each)
            for i in range(n):
                check(c.get("/k/%d" % i) == 200, "request %d" % i)
            time.sleep(0.5)
            rx1.up()
            rx2.up()
            check(wait_for(lambda: len(rx1.delivered()) >= n, 10.0), "block sink: %d of %d"
                  % (len(rx1.delivered()), n))
            got = ids_of(rx1.delivered(), "/k/")
            check(got == list(range(n)), "block sink lost or reordered: %r" % got)
            time.sleep(0.5)
            # Now past what the queues hold while the receivers are down.
            rx1.down()
            rx2.down()
            m = 1000
            for i in range(n, n + m):
                check(c.get("/k/%d" % i) == 200, "request %d with a blocked sink" % i)
            rx1.up()
            rx2.up()
            time.sleep(2.0)
            c.close()
            p.stop()
            err = p.stderr_text()
        blk, drp = sink_stats(err)["blk"], sink_stats(err)["drp"]
        m_total = n + m
        from logs_support import logger_stats
        lst = logger_stats(err)
        check(lst["queue_drops"] > 0, "no worker queue drop counted: %r" % lst)
        # Every record is either delivered or counted where it was dropped.
        check(blk["delivered"] + lst["queue_drops"] + blk["dropped_queue_full"] +
              blk["dropped_shutdown"] == m_total, "block accounting: %r %r" % (blk, lst))
        check(drp["dropped_queue_full"] > 0 and drp["delivered"] + drp["dropped_queue_full"] +
              drp["dropped_shutdown"] == drp["in"], "drop_newest accounting: %r" % drp)
        check(not os.path.exists(d + "/s1") and not os.path.exists(d + "/s2"),
              "a spool was opened without when_full: spool")


def t_durability_100k():
    """100,000 records under load; the HTTP sink down for 20 s in the middle;
    the proxy restarted once during the outage. Every id must arrive."""
    d = tmpdir()
    total, nthreads = 100000, 4
    with Backend() as b, HttpReceiver() as rx:
        port = free_port()
        sink = web_sink(rx, d + "/spool", queue=10000, max_events=1000, segment_bytes="4m",
                        retry_max="2s")
        cfg = config(port, b, {"web": sink}, ["web"], workers=2)
        state = {"p": Proxy(config=cfg, port=port), "errors": [], "done": 0}
        runs = []
        lock = threading.Lock()

        def load(k):
            c = KeepAliveClient(port, timeout=10)
            for i in range(k, total, nthreads):
                for attempt in range(400):
                    try:
                        if c.get("/x/%d" % i) == 200:
                            break
                    except OSError:
                        c.close()
                    time.sleep(0.05)  # the proxy is restarting
                else:
                    with lock:
                        state["errors"].append(i)
                with lock:
                    state["done"] += 1
            c.close()

        rss = {"max": 0, "stop": False}

        def sample():
            while not rss["stop"]:
                try:
                    rss["max"] = max(rss["max"], state["p"].rss_kb())
                except Exception:
                    pass
                time.sleep(0.2)

        threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(nthreads)]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            check(wait_for(lambda: state["done"] >= total * 0.3, 300, 0.1), "load too slow")
            rx.down()
            t_down = time.monotonic()
            # Restart under load, during the outage: the spool carries over.
            check(wait_for(lambda: state["done"] >= total * 0.6, 300, 0.05), "load too slow")
            check(time.monotonic() - t_down < 18, "load too slow to restart inside the outage")
            p = state["p"]
            check(p.stop() == 0, "exit code of the first run")
            runs.append(p.stderr_text())
            p.cleanup()
            state["p"] = Proxy(config=cfg, port=port)
            time.sleep(max(0.0, 20 - (time.monotonic() - t_down)))
            rx.up()
            t_up = time.monotonic()
            for t in threads:
                t.join(600)
            check(not state["errors"], "requests that never got a 200: %r" % state["errors"][:10])
            load_s = time.monotonic() - t0
            check(wait_for(lambda: len(set(ids_of(rx.delivered(), "/x/"))) >= total, 300, 0.5),
                  "delivered %d of %d" % (len(set(ids_of(rx.delivered(), "/x/"))), total))
            catch_up = time.monotonic() - t_up
            p = state["p"]
            p.stop()
            runs.append(p.stderr_text())
        finally:
            rss["stop"] = True
            state["p"].stop()
            state["p"].cleanup()
        got = ids_of(rx.delivered(), "/x/")
        missing = set(range(total)) - set(got)
        check(not missing, "%d ids missing, e.g. %r" % (len(missing), sorted(missing)[:10]))
        stats = [sink_stats(e)["web"] for e in runs]
        peak = max(s["spool_peak_bytes"] for s in stats)
        drops = sum(s["dropped_queue_full"] + s["dropped_spool_full"] + s["dropped_disk"] +
                    s["dropped_shutdown"] for s in stats)
        check(drops == 0, "drops: %r" % stats)
        check(stats[1]["in"] > 0, "the restart happened after the load: %r" % stats)
        print("# durability: %d records, %d lines delivered, %d duplicates, spool peak %d bytes, "
              "load %.1fs, catch-up after the outage %.1fs, proxy RSS peak %d kB, runs: %r" % (
                  total, len(got), len(got) - total, peak, load_s, catch_up, rss["max"],
                  [{k: s[k] for k in ("in", "delivered", "spooled", "replayed", "retries")} for s in stats]),
              flush=True)


CASES = [
    ("http receiver down then up: zero lost, order kept", t_outage_zero_lost_in_order, 90),
    ("proxy stopped with records in the spool: all delivered after restart", t_restart_replays_spool, 90),
    ("spool.max_bytes: drops counted, requests served", t_spool_max_bytes_counted, 90),
    ("full disk (tmpfs): drops counted, no crash", t_disk_full_tmpfs, 90),
    ("syslog TCP receiver restarted: records spooled and sent", t_syslog_tcp_receiver_restart, 90),
    ("when_full block and drop_newest: counted, never blocking", t_block_and_drop_newest, 90),
    ("100k records, 20 s outage and a restart: every id arrives", t_durability_100k, 900),
]

if __name__ == "__main__":
    run_cases(CASES)

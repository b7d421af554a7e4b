#!/bin/sh
# Compare two builds of bench_engine: run them alternately N times (default
# 8) and print the median and minimum of each one's engine and head+engine
# ns per request. One run against another says little on a shared machine
# (about +-30 ns from run to run); alternating medians do.
#
#   bench/engine-ab.sh OLD/bench/bench_engine NEW/bench/bench_engine [N]
set -eu
[ $# -ge 2 ] || { echo "usage: $0 BENCH_ENGINE_A BENCH_ENGINE_B [RUNS]" >&2; exit 2; }
A=$1 B=$2 N=${3:-8}
i=0
while [ "$i" -lt "$N" ]; do
    for side in A B; do
        if [ "$side" = A ]; then bin=$A; else bin=$B; fi
        "$bin" 100000 | grep -oE '[0-9]+ ns/request' | awk -v s="$side" '{v[NR]=$1} END {print s, v[2], v[3]}'
    done
    i=$((i + 1))
done | python3 -c '
import statistics, sys
d = {"A": ([], []), "B": ([], [])}
for line in sys.stdin:
    side, eng, tot = line.split()
    d[side][0].append(int(eng))
    d[side][1].append(int(tot))
for side in "AB":
    e, t = d[side]
    print("%s engine median %d ns (min %d), head+engine median %d ns (min %d)"
          % (side, statistics.median(e), min(e), statistics.median(t), min(t)))
'

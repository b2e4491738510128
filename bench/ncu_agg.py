#!/usr/bin/env python3
"""Where a GPU training step goes: ncu's per-kernel times, summed by kernel.

    ncu --clock-control none --metrics gpu__time_duration.sum --csv \\
        build/bench_cuda --profile > ncu.csv
    python3 bench/ncu_agg.py ncu.csv [STEPS]

bench_cuda --profile runs STEPS (default 2) training steps of the mha
tracker at batch 32; the table gives each kernel's time per step, its
launches per step and the total.  ncu runs kernels one at a time, so the
total is an upper bound of the step (no overlap, no graph)."""
import collections
import csv
import sys

SCALE = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    agg, total, hdr = collections.defaultdict(lambda: [0, 0.0]), 0.0, None
    for r in csv.reader(open(sys.argv[1])):
        if "Kernel Name" in r and "Metric Value" in r:
            hdr = r
            continue
        if not hdr or len(r) != len(hdr):
            continue
        d = dict(zip(hdr, r))
        if d["Metric Name"] != "gpu__time_duration.sum":
            continue
        us = float(d["Metric Value"].replace(",", "")) * SCALE[d["Metric Unit"]]
        k = d["Kernel Name"][:70]
        agg[k][0] += 1
        agg[k][1] += us
        total += us
    print("  us/step  launches  kernel")
    for k, (c, t) in sorted(agg.items(), key=lambda x: -x[1][1]):
        print("%9.1f %9d  %s" % (t / steps, c // steps, k))
    print("%9.1f            total per step" % (total / steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""ab_rows.py: every `bench` row of two builds, rounds in turn, and the ratio of their best times.

Issue 15 asks that nothing be slower than at an older commit (503b9a9). Build that commit's bench
somewhere else (its header, bench/bench.c and examples/cli.h where it has one, the Makefile's
command), then:

    bench/ab_rows.py OLD_BENCH NEW_BENCH [--rounds R] [--cpu C] [--max-n N]

Each round runs both binaries (OMP_NUM_THREADS=1, pinned to CPU C with taskset, `--threads 1
--json`), the order swapped every round so that neither always runs on a warmer or quieter
machine: R rounds of --tracker --attn --rows --gemm (up to --max-n), then R + 1 of --decode
--moe (short rows, noisier). A row's figure is its best round; the ratio is new / old (< 1:
faster now). Prints every row sorted by ratio with each round's figure, then the range.
Exit status 0, or 2 for bad arguments or a binary that does not run. No package beyond Python's
own."""
import argparse
import json
import os
import shutil
import subprocess
import sys

TIMES = ("ms", "ms_per_token")  # besides every key that ends in _ms
SKIP = ("threads", "isa", "compiler")  # the same for both builds: not part of a row's name


def is_time(key):
    return key.endswith("_ms") or key in TIMES


def is_figure(key):
    return is_time(key) or "gflops" in key or "bytes" in key or key in ("mflop_per_frame", "pct_peak")


def die(msg):
    print("ab_rows: " + msg, file=sys.stderr)
    sys.exit(2)


def run(binary, args, cpu):
    cmd = ["--threads", "1", "--json"] + args
    cmd = (["taskset", "-c", str(cpu)] if shutil.which("taskset") else []) + [binary] + cmd
    out = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    if out.returncode != 0:
        die("%s exited with %d: %s" % (" ".join(cmd), out.returncode, out.stderr.strip()[-400:]))
    rows = []
    for line in out.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict) or d.get("group") == "peak":
            continue
        name = " ".join(str(v) if k in ("group", "attn") else "%s=%s" % (k, v)
                        for k, v in d.items() if not is_figure(k) and k not in SKIP)
        rows += [(name + " " + k, v) for k, v in d.items() if is_time(k)]
    names = [n for n, _ in rows]
    if len(set(names)) != len(names):  # two rows would pool their rounds
        die("%s printed two rows of one name: %s" % (binary, sorted(n for n in set(names) if names.count(n) > 1)[0]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the older build's bench binary")
    ap.add_argument("new", help="the newer build's bench binary")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the long rows (default 3)")
    ap.add_argument("--cpu", type=int, default=1, help="the CPU both run on (default 1)")
    ap.add_argument("--max-n", type=int, default=1024, help="longest sequence of the attention rows (default 1024)")
    a = ap.parse_args()
    if a.rounds < 1 or a.rounds > 50 or a.max_n < 64 or a.cpu < 0:
        ap.error("--rounds takes 1-50, --max-n at least 64, --cpu a CPU number")
    for b in (a.old, a.new):
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            ap.error("%s is not an executable file" % b)
    times = {}
    sets = ((["--tracker", "--attn", "--rows", "--gemm", "--max-n", str(a.max_n)], a.rounds),
            (["--decode", "--moe"], a.rounds + 1))
    for args, rounds in sets:
        for r in range(rounds):
            order = ((a.old, 0), (a.new, 1)) if r % 2 == 0 else ((a.new, 1), (a.old, 0))
            for binary, side in order:
                for name, t in run(binary, args, a.cpu):
                    times.setdefault(name, ([], []))[side].append(t)
    table = sorted((min(n) / min(o), name, o, n) for name, (o, n) in times.items() if o and n and min(o) > 0)
    if not table:
        die("no row that both builds printed")
    for ratio, name, o, n in table:
        print("  %-58s old best %9.3f new best %9.3f ratio %.2f   old %s | new %s" % (
            name[:58], min(o), min(n), ratio, " ".join("%g" % x for x in o), " ".join("%g" % x for x in n)))
    print("rows: %d, ratios %.2f-%.2f (new / old, best of each)" % (len(table), table[0][0], table[-1][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

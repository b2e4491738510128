#!/usr/bin/env bash
# Data-parallel scaling: the same training run on ranks x threads
# combinations, timed by the program itself (training seconds, evaluation
# excluded), printed as a Markdown table.
#
#   bench/mpi_scaling.sh BINARY "1x1 2x1 4x1 8x1 1x8" -- ARGS...
#
# BINARY is an MPI build (make mpi: build/track_mpi or build/classify_mpi);
# ARGS are its flags (--json is added).  Each RxT runs `mpirun -np R` with
# --threads T, every rank bound to T cores of its own (MPIRUN overrides the
# launcher, e.g. MPIRUN="mpirun --allow-run-as-root").  ROUNDS (default 1)
# repeats the whole list, combinations alternating, and keeps each one's
# fastest round: shared machines are noisy.  Speed-up is against the first
# combination; efficiency is speed-up / (cores used / its cores).
set -euo pipefail
if [ $# -lt 3 ] || [ "$3" != "--" ]; then
  echo "usage: $0 BINARY \"RxT ...\" -- ARGS..." >&2
  exit 2
fi
bin=$1
combos=$2
shift 3
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root}
ROUNDS=${ROUNDS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for round in $(seq "$ROUNDS"); do
  for c in $combos; do
    r=${c%x*}
    t=${c#*x}
    # each rank on t cores of its own; without a usable topology, unbound
    if ! $MPIRUN --map-by "slot:PE=$t" --bind-to core -np "$r" "$bin" "$@" --threads "$t" --json \
         > "$tmp/out.json" 2> "$tmp/err.txt"; then
      $MPIRUN --bind-to none --oversubscribe -np "$r" "$bin" "$@" --threads "$t" --json \
        > "$tmp/out.json" 2> "$tmp/err.txt" || { echo "$c failed: $(tail -1 "$tmp/err.txt")" >&2; continue; }
      echo "$c: ran unbound" >&2
    fi
    tail -1 "$tmp/out.json" >> "$tmp/$c.jsonl"
  done
done
python3 - "$tmp" $combos <<'EOF'
import json, os, sys
d, combos = sys.argv[1], sys.argv[2:]
print("| processes x threads | cores | training s (fastest of %s) | of which in the all-reduce | speed-up | efficiency | result |"
      % os.environ.get("ROUNDS", "1"))
print("|---|---|---|---|---|---|---|")
base = None
for c in combos:
    p = os.path.join(d, c + ".jsonl")
    if not os.path.exists(p):
        print("| %s | failed | | | | | |" % c)
        continue
    runs = [json.loads(l) for l in open(p) if l.strip()]
    j = min(runs, key=lambda j: j["train_seconds"])
    r, t = (int(x) for x in c.split("x"))
    s = j["train_seconds"]
    if base is None:
        base = (s, r * t)
    sp = base[0] / s
    res = ("top-1 %.2f%%" % (100 * j["top1"]) if "top1" in j
           else "error %.3f px, %.1f%% within 2 px" % (j["mean_err_px"], 100 * j["within2px"]))
    allr = ", ".join("%.2f" % x["train_seconds"] for x in runs)
    print("| %d x %d | %d | %.2f (%s) | %.2f | %.2fx | %.0f%% | %s |"
          % (r, t, r * t, s, allr, j.get("comm_seconds", 0.0), sp, 100 * sp / (r * t / base[1]), res))
EOF

#!/usr/bin/env bash
# make test-mpi: data-parallel training over MPI processes (examples/dist.h)
# against one process.  Needs OpenMPI (mpirun) and build/{track,classify}_mpi.
#   - 2 ranks give the loss curve of 1 process with the same global batch
#     (within 1e-5 relative) and the same test result, tracker and ViT;
#   - 2-rank runs repeat bit for bit;
#   - a run saved by 2 ranks resumes on 1 and ends where 2 ranks end;
#   - only rank 0 prints and writes (one result line, one file, no leftovers);
#   - a configuration that differs between ranks, a rank that fails and a
#     rank that is killed each end the whole job with a message, never a hang.
set -uo pipefail
B=${1:-build}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
pass=0
fail=0
ok() { echo "  ok    $1"; pass=$((pass + 1)); }
bad() { echo "  FAIL  $1"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# the largest relative difference of column $3 between two CSV logs (rows must match)
curve_diff() {
  python3 - "$1" "$2" "${3:-loss}" <<'EOF'
import csv, sys
a = list(csv.DictReader(open(sys.argv[1])))
b = list(csv.DictReader(open(sys.argv[2])))
k = sys.argv[3]
if len(a) != len(b) or not a:
    print("rows", len(a), len(b)); sys.exit(0)
print(max(abs(float(x[k]) - float(y[k])) / max(abs(float(x[k])), 1e-30) for x, y in zip(a, b)))
EOF
}
below() { python3 -c "import sys; v=sys.argv[1]; sys.exit(0 if not v.startswith('rows') and float(v) <= float(sys.argv[2]) else 1)" "$1" "$2"; }
jget() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])" "$1" "$2"; }

echo "mpi: $(mpirun --version 2>&1 | head -1)"

TR=(--videos 30 --frames 20 --epochs 2 --batch 16 --threads 1 --latency-runs 0 --json --quiet)
timeout 300 "$B/track_mpi" "${TR[@]}" --loss-log "$T/t1.csv" > "$T/t1.json"
timeout 300 "${MPIRUN[@]}" -np 2 "$B/track_mpi" "${TR[@]}" --loss-log "$T/t2.csv" > "$T/t2.json"
timeout 300 "${MPIRUN[@]}" -np 2 "$B/track_mpi" "${TR[@]}" --loss-log "$T/t2b.csv" > "$T/t2b.json"
d=$(curve_diff "$T/t1.csv" "$T/t2.csv")
check "tracker: 2 ranks follow 1 process's loss curve ($(wc -l < "$T/t1.csv") lines, worst relative difference $d)" \
  "below '$d' 1e-5"
e1=$(jget "$T/t1.json" mean_err_px); e2=$(jget "$T/t2.json" mean_err_px)
check "tracker: test error $e1 px (1 process) / $e2 px (2 ranks)" "below \$(python3 -c 'print(abs($e1-$e2)/$e1)') 1e-4"
check "tracker: two 2-rank runs give the same loss log bit for bit" "cmp -s '$T/t2.csv' '$T/t2b.csv'"
check "tracker: and the same test error" "[ \"\$(jget '$T/t2.json' mean_err_px)\" = \"\$(jget '$T/t2b.json' mean_err_px)\" ]"
check "tracker: one result line from 2 ranks" "[ \$(grep -c '\"attn\"' '$T/t2.json') -eq 1 ] && [ \"\$(jget '$T/t2.json' processes)\" = 2 ]"

CL=(--model vit --images 600 --test-images 200 --epochs 2 --batch 40 --augment --threads 1 --latency-runs 0 --json --quiet)
timeout 300 "$B/classify_mpi" "${CL[@]}" --loss-log "$T/c1.csv" > "$T/c1.json"
timeout 300 "${MPIRUN[@]}" -np 2 "$B/classify_mpi" "${CL[@]}" --loss-log "$T/c2.csv" > "$T/c2.json"
d=$(curve_diff "$T/c1.csv" "$T/c2.csv")
check "classify vit (augmented): 2 ranks follow 1 process's loss curve (worst relative difference $d)" "below '$d' 1e-5"
check "classify vit: the same top-1 on the training batches" "[ \"\$(cut -d, -f5 '$T/c1.csv' | md5sum)\" = \"\$(cut -d, -f5 '$T/c2.csv' | md5sum)\" ]"
check "classify vit: the same test top-1 ($(jget "$T/c1.json" top1) / $(jget "$T/c2.json" top1))" \
  "[ \"\$(jget '$T/c1.json' top1)\" = \"\$(jget '$T/c2.json' top1)\" ]"

# compare: rows spread over ranks (row i on rank i % 2), the search too; one table, the same top-1 / top-5
CM=(--model mlp --attn none,performer,mha --images 300 --test-images 100 --epochs 1 --batch 32 --threads 1 --quiet
    --search --candidates 2 --search-epochs 1 --val 60)
timeout 300 "$B/compare_mpi" "${CM[@]}" --out "$T/cm1" 2> "$T/cm1.txt"
timeout 300 "${MPIRUN[@]}" -np 2 "$B/compare_mpi" "${CM[@]}" --out "$T/cm2" 2> "$T/cm2.txt"
chosen() { python3 -c "import json,sys; print([{k: v for k, v in r.items() if k != 'seconds'} for r in json.load(open(sys.argv[1]))['rows']])" "$1"; }
acc() { python3 -c "import csv,sys; print([(r['row'], r['top1'], r['top5']) for r in csv.DictReader(open(sys.argv[1]))])" "$1"; }
check "compare on 2 ranks: the table of 1 process ($(acc "$T/cm2/compare.csv" 2>&1))" \
  "[ -n \"\$(acc '$T/cm1/compare.csv')\" ] && [ \"\$(acc '$T/cm1/compare.csv')\" = \"\$(acc '$T/cm2/compare.csv')\" ]"
check "compare on 2 ranks: the search chose the same configurations" \
  "[ -n \"\$(chosen '$T/cm1/search.json')\" ] && [ \"\$(chosen '$T/cm1/search.json')\" = \"\$(chosen '$T/cm2/search.json')\" ]"

# the CNN host (batch norm over each rank's images) trains and saves on 2 ranks
mkdir -p "$T/cnn"
( cd "$T/cnn" && timeout 300 "${MPIRUN[@]}" -np 2 "$OLDPWD/$B/classify_mpi" --model cnn --images 200 --test-images 50 \
    --epochs 1 --batch 20 --threads 1 --latency-runs 0 --quiet --save cnn.eack > out.txt 2> err.txt )
check "classify cnn on 2 ranks: trains and writes one checkpoint, no leftovers" \
  "[ \"\$(ls '$T/cnn' | sort | tr '\n' ' ')\" = 'cnn.eack err.txt out.txt ' ] && [ \$(grep -c '^result:' '$T/cnn/out.txt') -eq 1 ]"

# resume on another number of processes: 2 ranks save after epoch 1, 1 process finishes
TRR=(--videos 30 --frames 20 --epochs 3 --batch 16 --threads 1 --latency-runs 0 --json --quiet)
timeout 300 "${MPIRUN[@]}" -np 2 "$B/track_mpi" "${TRR[@]}" --loss-log "$T/r_full.csv" > "$T/r_full.json"
timeout 300 "${MPIRUN[@]}" -np 2 "$B/track_mpi" "${TRR[@]}" --save "$T/r.eack" --stop-after 1 --loss-log "$T/r_part.csv" > /dev/null
timeout 300 "$B/track_mpi" "${TRR[@]}" --resume "$T/r.eack" --loss-log "$T/r_part.csv" > "$T/r_res.json"
d=$(curve_diff "$T/r_full.csv" "$T/r_part.csv")
check "resume: saved by 2 ranks, finished by 1, the uninterrupted 2-rank loss curve (worst relative difference $d)" \
  "below '$d' 1e-5"
check "resume: the same test error to 1e-4" \
  "below \$(python3 -c \"print(abs($(jget "$T/r_full.json" mean_err_px)-$(jget "$T/r_res.json" mean_err_px))/$(jget "$T/r_full.json" mean_err_px))\") 1e-4"
check "only rank 0 wrote the checkpoint (no temporary file left)" "[ -f '$T/r.eack' ] && ! ls '$T'/*.tmp > /dev/null 2>&1"

# a configuration that differs between ranks (MPMD launch with another --lr)
timeout 120 "${MPIRUN[@]}" -np 1 "$B/track_mpi" "${TR[@]}" : -np 1 "$B/track_mpi" "${TR[@]}" --lr 2e-3 > /dev/null 2> "$T/mm.txt"
rc=$?
check "differing configurations end every rank with a message (exit $rc)" \
  "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'rank 1 runs another configuration' '$T/mm.txt'"

# a rank that fails alone (rank 0 cannot write its loss log) while the other waits in the all-reduce
timeout 120 "${MPIRUN[@]}" -np 2 "$B/track_mpi" "${TR[@]}" --loss-log /nonexistent/dir/log.csv > /dev/null 2> "$T/f.txt"
rc=$?
check "a failing rank ends the job, not a hang (exit $rc)" \
  "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'cannot write the loss log' '$T/f.txt'"

# a rank killed mid-training
"${MPIRUN[@]}" -np 2 "$B/track_mpi" --videos 200 --epochs 50 --threads 1 --latency-runs 0 --quiet > /dev/null 2> "$T/k.txt" &
mp=$!
for _ in $(seq 50); do sleep 0.2; [ "$(pgrep -x track_mpi | wc -l)" -ge 2 ] && break; done
sleep 1
kill -9 "$(pgrep -x track_mpi | tail -1)" 2> /dev/null
t0=$(date +%s)
for _ in $(seq 300); do kill -0 "$mp" 2> /dev/null || break; sleep 0.2; done
if kill -0 "$mp" 2> /dev/null; then
  kill -9 "$mp"; pkill -9 -x track_mpi
  bad "a killed rank: the job still runs after 60 s"
else
  wait "$mp"; rc=$?
  for _ in $(seq 50); do [ -z "$(pgrep -x track_mpi)" ] && break; sleep 0.2; done
  check "a killed rank ends the job in $(( $(date +%s) - t0 )) s (exit $rc)" "[ $rc -ne 0 ] && [ -z \"\$(pgrep -x track_mpi)\" ]"
fi

echo "test-mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

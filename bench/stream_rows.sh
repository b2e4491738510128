#!/usr/bin/env bash
# The streaming tracker, every row: train on clips, stream one long video,
# and tabulate error, frames within 2 px, latency and memory at 100, 1,000
# and 10,000 frames (examples/stream.c's own measurements, --json).
#
#   bench/stream_rows.sh OUTDIR [FRAMES] [ROWS...] [-- EXTRA FLAGS]
#
# Writes OUTDIR/ROW.json (stream's JSON line), OUTDIR/ROW.log (its progress)
# and OUTDIR/table.md (TABLE_ONLY=1 redoes the table alone).  JOBS (default 2) rows run at a time, each on one
# thread (--threads 1), so latencies are upper bounds on a busy machine.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUTDIR [FRAMES] [ROWS...] [-- FLAGS]" >&2
  exit 2
fi
out=$1; shift
frames=${1:-10000}; [ $# -gt 0 ] && shift
rows=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do rows+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#rows[@]} -eq 0 ] && rows=(mha mqa gqa mla h2o crossmem mamba)
JOBS=${JOBS:-2}
bin=${STREAM:-build/stream}
mkdir -p "$out"
for r in "${rows[@]}"; do
  [ -n "${TABLE_ONLY:-}" ] && break   # TABLE_ONLY=1: tabulate the JSON already in OUTDIR
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
  extra=(); [ "$r" = h2o ] && extra=(--full-cache-frames 1000)   # h2o: against a cache that keeps everything
  ( "$bin" --attn "$r" --frames "$frames" --threads 1 --json "${extra[@]}" "$@" > "$out/$r.json" 2> "$out/$r.log" \
      || echo "stream --attn $r failed (see $out/$r.log)" >&2 ) &
done
wait
python3 - "$out" "${rows[@]}" <<'PY' | tee "$out/table.md"
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
def kib(b): return f"{b/1024:.0f} KiB" if b < 1 << 20 else f"{b/1048576:.2f} MiB"
print("| row | time | window | error (px) at 100 / 1,000 / 10,000 | within 2 px | ms / frame at 100 / 10,000 | state in use at 100 / 10,000 | arena peak at 100 / 10,000 |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    try:
        j = json.loads(open(f"{out}/{r}.json").read().strip().splitlines()[-1])
    except Exception as e:
        print(f"| `{r}` | failed: {e} |"); continue
    rep = j["reports"]; a, z = rep[0], rep[-1]
    errs = " / ".join(f"{x['mean_err_px']:.3f}" for x in rep[:3])
    t = j.get("time", "-") if r not in ("crossmem", "mamba") else "-"
    w = f"{j.get('window_frames', 0)} frames" if r not in ("crossmem", "mamba") else "-"
    extra = f" (full cache, first {j['full_cache_frames']}: {j['full_cache_err_px']:.2f} px)" if "full_cache_err_px" in j else ""
    print(f"| `{r}` | {t} | {w} | {errs}{extra} | {100*j['within2px']:.1f}% | {a['latency_ms']:.3f} / {z['latency_ms']:.3f} | "
          f"{kib(a['state_used_bytes'])} / {kib(z['state_used_bytes'])} | {kib(a['arena_peak_bytes'])} / {kib(z['arena_peak_bytes'])} |")
PY

#!/usr/bin/env bash
# Whole-program timings of the examples with hyperfine (speed lives in
# benchmarks, never in tests).  Usage: bench/hyperfine.sh [OUTDIR]
# Writes OUTDIR/hyperfine.md (default out/).  Needs hyperfine
# (apt-get install hyperfine) and `make` (builds build/track).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out}
mkdir -p "$out"
if ! command -v hyperfine >/dev/null 2>&1; then
  echo "bench/hyperfine.sh: hyperfine is not installed (apt-get install hyperfine)" >&2
  exit 2
fi
make -s build/track
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //')"
echo "date: $(date -u +%Y-%m-%d)"
# Inference: seed 000's PyTorch-trained weights over 100 videos (4,900 pairs
# in batches of 256, plus the 110 batch-1 latency runs), one thread.
# Training: one epoch of 48 videos (2,352 pairs, 74 steps of 32), one thread.
hyperfine --warmup 1 --runs 5 --export-markdown "$out/hyperfine.md" \
  -n "eval mha (4,900 pairs)" "OMP_NUM_THREADS=1 build/track --attn mha --load tests/data/seed000/mha.safetensors --epochs 0 --videos 100 --quiet" \
  -n "eval mqa (4,900 pairs)" "OMP_NUM_THREADS=1 build/track --attn mqa --load tests/data/seed000/mqa.safetensors --epochs 0 --videos 100 --quiet" \
  -n "train mha 1 epoch (74 steps)" "OMP_NUM_THREADS=1 build/track --attn mha --videos 60 --epochs 1 --quiet" \
  -n "train mqa 1 epoch (74 steps)" "OMP_NUM_THREADS=1 build/track --attn mqa --videos 60 --epochs 1 --quiet"
echo "written: $out/hyperfine.md"

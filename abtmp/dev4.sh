#!/bin/bash
exec > >(tee $OUT/dev4.txt) 2>&1
date; git log --oneline -1 | cat
PY=/opt/torch/.venv/bin/python
make -s build/bench 2>&1 | tail -2
./build/bench --peak --threads 16
for t in 1 4 16; do echo "== peers --threads $t"; $PY bench/peers/torch_peer.py --threads $t --max-n 1024 --rounds 2 2>&1 | grep -v -E "Warning|onnx.export"; done
date

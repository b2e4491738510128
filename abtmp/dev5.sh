#!/bin/bash
exec > >(tee $OUT/dev5.txt) 2>&1
date
PY=/opt/torch/.venv/bin/python
make -s build/bench 2>&1 | tail -2
for r in 1 2; do
./build/bench --peak --threads 1
echo "== peers --threads 1, run $r"; $PY bench/peers/torch_peer.py --threads 1 --max-n 1024 --rounds 2 2>&1 | grep -v -E "Warning|onnx.export"
done
./build/bench --peak --threads 1
echo "== peers --threads 4"; $PY bench/peers/torch_peer.py --threads 4 --max-n 1024 --rounds 2 2>&1 | grep -v -E "Warning|onnx.export"
date

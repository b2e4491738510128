#!/usr/bin/python3
"""PyTorch as the peer for the classifiers: seed 002's ViT and seed 001's CNN
and MLP hosts at Fashion-MNIST's size (1x28x28, 10 classes), the same
measurements as `build/bench --classify`, in one invocation, side by side,
with effattn/PyTorch ratios (> 1 means effattn is faster).

    /usr/bin/python3 bench/peers/classify_peer.py [--threads N] [--rounds R]

A training step is forward, label-smoothed cross-entropy, backward and
AdamW at batch 128 (the model in training mode); an epoch of Fashion-MNIST
is 469 such steps.  effattn builds the batch's gradient in cache-sized
chunks, as classify trains (ea_classifier_grad: 12 images a pass for the
ViT; the CNN host, with batch norm, and the MLP host take the batch
whole); PyTorch takes the batch in one pass, its fastest way: the same
accumulation in chunks of 16 made its ViT step slower here (167 ms in one
pass, 185 ms in chunks of 16, 221 ms in chunks of 8; 2026-11-30).  Inference runs under torch.no_grad() in eval mode.
Both sides are measured R times (default 3), alternating, and each figure
is the fastest of its R medians.  The modules come from
tests/make_classifier_parity.py, the same ones the parity fixtures use.

Needs Debian's python3-torch and libopenblas0-pthread; skips with a message
when PyTorch is absent.  Never needed by make test.
"""
import argparse
import json
import os
import subprocess
import sys

from torch_peer import ROOT, timed  # the same timing rule as the tracker's peer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.rounds < 1 or a.threads < 1:
        ap.error("--rounds and --threads must be >= 1")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("classify_peer: PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread); skipped")
        return 0
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from make_classifier_parity import ViT, CNNHost, MLPHost

    torch.set_num_threads(a.threads)
    bench = os.path.join(ROOT, "build", "bench")
    subprocess.check_call(["make", "-s", "build/bench"], cwd=ROOT)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    models = {
        "vit": lambda: ViT(chans=1, img=28),
        "cnn": lambda: CNNHost(chans=1),
        "mlp": lambda: MLPHost(inputs=28 * 28, tokens=16, dim=32, heads=4, hidden=256),
    }

    def effattn():
        out = subprocess.run([bench, "--json", "--threads", str(a.threads), "--classify"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        return {r["model"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{")) if r["group"] == "classify"}

    def pytorch():
        res = {}
        for name, make in models.items():
            torch.manual_seed(0)
            m = make()
            x1, x32, x128 = torch.rand(1, 1, 28, 28), torch.rand(32, 1, 28, 28), torch.rand(128, 1, 28, 28)
            y = torch.arange(128) % 10
            opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
            m.eval()
            with torch.no_grad():
                t1 = timed(lambda: m(x1), 10, 51)
                t32 = timed(lambda: m(x32), 3, 21)
            m.train()

            def step():
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(x128), y, label_smoothing=0.1).backward()
                opt.step()

            ttr = timed(step, 3, 11)
            res[name] = {"infer_b1_ms": t1 * 1e3, "infer_b32_ms": t32 * 1e3, "train_b128_ms": ttr * 1e3}
        return res

    ea_best, pt_best = {}, {}
    for _ in range(a.rounds):
        for best, got in ((ea_best, effattn()), (pt_best, pytorch())):
            for name, r in got.items():
                b = best.setdefault(name, {})
                for k in ("infer_b1_ms", "infer_b32_ms", "train_b128_ms"):
                    b[k] = min(b.get(k, float("inf")), r[k])
    print("classifiers at 1x28x28, %d thread%s, PyTorch %s, fastest of %d alternating rounds (times in ms)" %
          (a.threads, "" if a.threads == 1 else "s", torch.__version__, a.rounds))
    print("%-26s %10s %10s %8s" % ("", "effattn", "PyTorch", "ratio"))
    for name in models:
        for k, label in (("infer_b1_ms", "inference, batch 1"), ("infer_b32_ms", "inference, batch 32"),
                         ("train_b128_ms", "train step, batch 128")):
            e, p = ea_best[name][k], pt_best[name][k]
            print("%-26s %10.3f %10.3f %7.2fx" % ("%s %s" % (name, label), e, p, p / e))
        e, p = ea_best[name]["train_b128_ms"] * 469 / 1e3, pt_best[name]["train_b128_ms"] * 469 / 1e3
        print("%-26s %9.1fs %9.1fs %7.2fx" % ("%s epoch (469 steps)" % name, e, p, p / e))
    return 0


if __name__ == "__main__":
    sys.exit(main())

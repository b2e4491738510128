#!/usr/bin/python3
"""PyTorch as the peer: the same tracker and attention shapes as bench/bench.c,
measured in the same invocation, printed side by side with effattn/PyTorch
ratios (> 1 means effattn is faster).

    /usr/bin/python3 bench/peers/torch_peer.py [--threads N] [--max-n N]

Needs Debian's python3-torch and libopenblas0-pthread (without an optimised
BLAS PyTorch falls back to the reference BLAS, about 10x slower: an unfair
peer).  Skips with a message when PyTorch is absent.  Never needed by make test.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-n", type=int, default=4096)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_peer: PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread); skipped")
        return 0
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from make_parity import Tracker  # the same module layout the parity fixtures use

    torch.set_num_threads(a.threads)
    bench = os.path.join(ROOT, "build", "bench")
    if not os.path.exists(bench):
        subprocess.check_call(["make", "-s", "build/bench"], cwd=ROOT)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = subprocess.run([bench, "--json", "--threads", str(a.threads), "--tracker", "--attn", "--max-n", str(a.max_n)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    ours = [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    print("machine: %s; PyTorch %s (%s), %d thread(s)" % (os.uname().machine, torch.__version__,
                                                          torch.backends.mkldnn.is_available() and "oneDNN" or "no oneDNN",
                                                          a.threads))
    print("\ntracker                     effattn ms   PyTorch ms   ratio")
    for row in (r for r in ours if r["group"] == "tracker"):
        torch.manual_seed(0)
        m = Tracker(row["attn"] == "mqa").eval()
        x1, x32 = torch.rand(1, 2, 32, 32), torch.rand(32, 2, 32, 32)
        y32 = torch.rand(32, 2) * 32
        with torch.no_grad():
            t1 = timed(lambda: m(x1), 10, 100)
            t32 = timed(lambda: m(x32), 3, 21)
        mt = Tracker(row["attn"] == "mqa").train()
        opt = torch.optim.AdamW(mt.parameters(), lr=1e-3, weight_decay=0.01)

        def step():
            opt.zero_grad()
            F.mse_loss(mt(x32), y32).backward()
            opt.step()

        ttr = timed(step, 3, 11)
        for label, ours_ms, theirs in (("inference, batch 1", row["infer_b1_ms"], t1),
                                       ("inference, batch 32", row["infer_b32_ms"], t32),
                                       ("train step, batch 32", row["train_b32_ms"], ttr)):
            print("  %s %-21s %9.3f %12.3f %7.2fx" % (row["attn"], label, ours_ms, theirs * 1e3, theirs * 1e3 / ours_ms))

    sdpa = getattr(F, "scaled_dot_product_attention", None)
    if sdpa is None:  # PyTorch < 2.0 (Debian 12 ships 1.13): the explicit formula
        def sdpa(q, k, v):
            return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v
    print("\nattention (exact; PyTorch: %s)" % ("scaled_dot_product_attention" if hasattr(F, "scaled_dot_product_attention")
                                              else "softmax(QK^T/sqrt(d))V"))
    print("  HxD        n   effattn fwd   PyTorch fwd  ratio   effattn f+b   PyTorch f+b  ratio")
    for row in (r for r in ours if r["group"] == "attn"):
        H, d, n = row["heads"], row["dim"], row["n"]
        q, k, v = (torch.randn(1, H, n, d, requires_grad=True) for _ in range(3))
        runs = 7 if n <= 1024 else 3
        with torch.no_grad():
            tf = timed(lambda: sdpa(q, k, v), 1, runs)

        def fb():
            sdpa(q, k, v).square().mean().backward()

        tb = timed(fb, 1, runs)
        print("  %dx%-3d %7d %11.3f ms %11.3f ms %5.2fx %11.3f ms %11.3f ms %5.2fx" % (
            H, d, n, row["fwd_ms"], tf * 1e3, tf * 1e3 / row["fwd_ms"], row["fwd_bwd_ms"], tb * 1e3,
            tb * 1e3 / row["fwd_bwd_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""PyTorch on the GPU as the peer of bench/bench_cuda.c: the same tracker and
attention shapes, measured in the same invocation, alternating rounds, and
printed side by side (ratio > 1: effattn is faster).

    python3 bench/peers/torch_cuda_peer.py [--rounds R]     (needs build/bench_cuda and a GPU)

PyTorch runs in fp32 with its defaults (TF32 off for matmuls, as effattn's
cuBLAS calls), eager and, as the strongest fair peer for batch 1, replayed
from a torch.cuda.CUDAGraph.  Batch-1 times include copying the frame pair in
and the (x, y) out, on both sides.  Never needed by make test.
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
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def pytorch(rows):
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from make_parity import Tracker
    res = {}
    for row in (r for r in rows if r["group"] == "tracker"):
        torch.manual_seed(0)
        m = Tracker(row["attn"] == "mqa").cuda().eval()
        x1 = torch.rand(1, 2, 32, 32).pin_memory()
        xb = torch.rand(1024, 2, 32, 32)
        with torch.no_grad():
            eager1 = timed(lambda: m(x1.cuda()).cpu(), 20, 201)
            static_x = torch.zeros(1, 2, 32, 32, device="cuda")
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    m(static_x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                static_y = m(static_x)

            def replay():
                static_x.copy_(x1, non_blocking=True)
                g.replay()
                return static_y.cpu()

            graph1 = timed(replay, 20, 201)
            big = timed(lambda: m(xb.cuda()).cpu(), 3, 31)
            xd = xb.cuda()
            big_dev = timed(lambda: m(xd), 3, 31)
        mt = Tracker(row["attn"] == "mqa").cuda().train()
        opt = torch.optim.AdamW(mt.parameters(), lr=1e-4, weight_decay=0.01)
        x32, y32 = torch.rand(32, 2, 32, 32), torch.rand(32, 2) * 24 + 4

        def step():  # what track does: batch in from the host, loss out
            opt.zero_grad()
            loss = F.mse_loss(mt(x32.cuda()), y32.cuda())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(mt.parameters(), 1.0)
            opt.step()
            return loss.item()

        train = timed(step, 20, 201)
        res[("tracker", row["attn"])] = (eager1 * 1e3, graph1 * 1e3, 1024 / big, 1024 / big_dev, train * 1e3)
    for row in (r for r in rows if r["group"] in ("attn", "attn_tf32", "attn_bf16")):
        B, H, d, n = row["batch"], row["heads"], row["dim"], row["n"]
        dt = torch.bfloat16 if row["group"] == "attn_bf16" else torch.float32  # tf32: PyTorch's fp32 is the peer
        q, k, v = (torch.randn(B, H, n, d, device="cuda", dtype=dt, requires_grad=True) for _ in range(3))
        with torch.no_grad():
            tf = timed(lambda: F.scaled_dot_product_attention(q, k, v), 2, 5)
        tb = timed(lambda: F.scaled_dot_product_attention(q, k, v).backward(q), 1, 3) if row["fwd_bwd_ms"] else 0.0
        res[(row["group"], n)] = (tf * 1e3, tb * 1e3)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    try:
        import torch
    except ImportError:
        print("torch_cuda_peer: PyTorch is not installed; skipped")
        return 0
    if not torch.cuda.is_available():
        print("torch_cuda_peer: no GPU; skipped")
        return 0
    bench = os.path.join(ROOT, "build", "bench_cuda")
    ours, theirs = None, None
    for r in range(a.rounds):
        print("round %d of %d ..." % (r + 1, a.rounds), file=sys.stderr, flush=True)
        out = subprocess.run([bench, "--json"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        o = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        t = pytorch(o)
        if ours is None:
            ours, theirs = o, t
            continue
        for mine, new in zip(ours, o):
            for key in ("b1_ms", "b1_graph_ms", "b1_copies_ms", "b1_eager_ms", "train32_ms", "fwd_ms", "fwd_bwd_ms"):
                if key in mine:
                    mine[key] = min(mine[key], new[key])
            for key in ("b1024_fps", "b1024_dev_fps", "b1024_graph_fps", "b1024_graph_dev_fps"):
                if key in mine:
                    mine[key] = max(mine[key], new[key])
        for key in theirs:
            best = []
            for i, (x, y) in enumerate(zip(theirs[key], t[key])):
                best.append(max(x, y) if key[0] == "tracker" and i in (2, 3) else min(x, y))
            theirs[key] = tuple(best)
    print("GPU: %s; PyTorch %s, CUDA %s; fp32 (TF32 off); best of %d rounds" % (
        torch.cuda.get_device_name(0), torch.__version__, torch.version.cuda, a.rounds))
    print("\ntracker                                   effattn      PyTorch   ratio")
    for row in (r for r in ours if r["group"] == "tracker"):
        e1, g1, fb, fbd, tr = theirs[("tracker", row["attn"])]
        for label, mine, theirs_v, unit, higher in (
                ("batch 1, ms (PyTorch eager)", row["b1_ms"], e1, "ms", False),
                ("batch 1, ms (PyTorch CUDA graph)", row["b1_ms"], g1, "ms", False),
                ("batch 1024, frames/s (host memory)", row["b1024_fps"], fb, "/s", True),
                ("batch 1024, frames/s (on device)", row["b1024_dev_fps"], fbd, "/s", True),
                ("train step, batch 32, ms (eager)", row["train32_ms"], tr, "ms", False)):
            ratio = mine / theirs_v if higher else theirs_v / mine
            print("  %s %-36s %10.4g %12.4g %6.2fx" % (row["attn"], label, mine, theirs_v, ratio))
        print("  %s %-36s %10.4g" % (row["attn"], "batch 1, ms (effattn graph)", row["b1_graph_ms"]))
        print("  %s %-36s %10.4g" % (row["attn"], "batch 1, ms (effattn eager)", row["b1_eager_ms"]))
        print("  %s %-36s %10.4g" % (row["attn"], "batch 1, ms (copies in and out alone)", row["b1_copies_ms"]))
        if "b1024_graph_fps" in row:
            print("  %s %-36s %10.4g %12.4g %6.2fx" % (row["attn"], "batch 1024, /s (effattn graph, host)", row["b1024_graph_fps"],
                                                      fb, row["b1024_graph_fps"] / fb))
            print("  %s %-36s %10.4g %12.4g %6.2fx" % (row["attn"], "batch 1024, /s (effattn graph, device)",
                                                      row["b1024_graph_dev_fps"], fbd, row["b1024_graph_dev_fps"] / fbd))
    for group, label in (("attn", "fp32"), ("attn_tf32", "fp32 buffers (effattn: the forward on TF32 tensor cores, fp32 "
                                                        "accumulation and softmax; PyTorch: fp32); forward only"),
                         ("attn_bf16", "bf16 (effattn: tensor cores, fp32 accumulation)")):
        print("\nexact attention %s, B 4, H 8, dh 64 (PyTorch: scaled_dot_product_attention); TFLOP/s as FlashAttention "
              "counts them (4·B·H·n²·dh forward, 3.5 times that forward + backward)" % label)
        print("      n   effattn fwd   PyTorch fwd  ratio   effattn f+b   PyTorch f+b  ratio   TFLOP/s fwd (ours, theirs)"
              "   f+b (ours, theirs)")
        for row in (r for r in ours if r["group"] == group):
            tf, tb = theirs[(group, row["n"])]
            fl = 4.0 * row["batch"] * row["heads"] * row["n"] ** 2 * row["dim"] * 1e-9  # per ms -> TFLOP/s
            if not row["fwd_bwd_ms"]:
                print("  %5d %10.3f ms %10.3f ms %5.2fx %42s %6.1f %6.1f" % (
                    row["n"], row["fwd_ms"], tf, tf / row["fwd_ms"], "", fl / row["fwd_ms"], fl / tf))
                continue
            print("  %5d %10.3f ms %10.3f ms %5.2fx %10.3f ms %10.3f ms %5.2fx   %6.1f %6.1f   %6.1f %6.1f" % (
                row["n"], row["fwd_ms"], tf, tf / row["fwd_ms"], row["fwd_bwd_ms"], tb, tb / row["fwd_bwd_ms"],
                fl / row["fwd_ms"], fl / tf, 3.5 * fl / row["fwd_bwd_ms"], 3.5 * fl / tb))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""PyTorch and ONNX Runtime as the peers: the same tracker and attention shapes
as bench/bench.c, measured in the same invocation, printed side by side with
ratios (> 1 means effattn is faster).

    /usr/bin/python3 bench/peers/torch_peer.py [--threads N] [--max-n N] [--rounds R] [--also PYTHON]

ONNX Runtime joins the tracker's inference rows when it can be imported: the
same PyTorch module (random weights: speed does not depend on them) exported
to ONNX once per batch size, run by the CPU execution provider with every
graph optimisation on, intra-op threads = --threads, one inter-op thread.
On Debian 12 put it beside the system's PyTorch in a venv that sees it:
    /usr/bin/python3 -m venv --system-site-packages /tmp/ortvenv
    /tmp/ortvenv/bin/pip install onnxruntime
    /tmp/ortvenv/bin/python bench/peers/torch_peer.py

With --also PYTHON (repeatable) the PyTorch under another interpreter joins the
same table as further columns, measured in the same rounds: one command runs
all three peers of issue 15 here, e.g. PyTorch 2.x and ONNX Runtime from a venv
with Debian's PyTorch 1.13 beside them:
    /tmp/t2venv/bin/python bench/peers/torch_peer.py --also /usr/bin/python3
(that interpreter runs this script with --worker: effattn's rows in on
standard input, its PyTorch's times out as JSON).

The table ends with issue 15's targets for the thread count given, each with
its figure and whether it is met: the tracker's % of one core's FMA peak uses
the model's FLOPs (bench's mflop_per_frame; a training step 3x the forward's)
and the highest `bench --peak` of the rounds (a quiet core's).  The 1 -> 16
thread speed-up and batch 1 on 4 threads against 1 take two runs: compare
their effattn columns.

With --rounds R (default 3) both sides are measured R times, alternating
effattn and PyTorch, and each figure is the fastest of its R medians: on a
shared machine that keeps a burst of other work from landing on one side only.

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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--also", action="append", default=[], metavar="PYTHON",
                    help="another interpreter whose PyTorch joins the table (repeatable)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # for --also: rows in, times out
    a = ap.parse_args()
    if a.rounds < 1 or a.threads < 1 or a.max_n < 64:
        ap.error("--rounds and --threads must be >= 1, --max-n >= 64")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_peer: PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread); skipped")
        return 1 if a.worker else 0
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from make_parity import Tracker  # the same module layout the parity fixtures use

    torch.set_num_threads(a.threads)
    bench = os.path.join(ROOT, "build", "bench")
    subprocess.check_call(["make", "-s", "build/bench"], cwd=ROOT)  # rebuilt if the header changed
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    def effattn():
        out = subprocess.run([bench, "--json", "--threads", str(a.threads), "--tracker", "--attn", "--max-n",
                              str(a.max_n)], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    sdpa = getattr(F, "scaled_dot_product_attention", None)
    if sdpa is None:  # PyTorch < 2.0 (Debian 12 ships 1.13): the explicit formula
        def sdpa(q, k, v):
            return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v

    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        ort = None

    def onnxrt(rows):
        """ONNX Runtime's tracker inference at batch 1 and 32, keyed like pytorch()'s."""
        import io
        import warnings
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the export traces one shape per batch size
        res = {}
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        for row in (r for r in rows if r["group"] == "tracker"):
            torch.manual_seed(0)
            m = Tracker(row["attn"] == "mqa").eval()
            times = []
            for b, warm, runs in ((1, 10, 100), (32, 3, 21)):
                x = torch.rand(b, 2, 32, 32)
                f = io.BytesIO()
                kw = dict(opset_version=14, input_names=["x"], output_names=["y"], do_constant_folding=True)
                try:  # PyTorch >= 2.9 exports through dynamo by default (needs onnxscript); the tracer needs nothing
                    torch.onnx.export(m, x, f, dynamo=False, **kw)
                except TypeError:  # PyTorch < 2.5: no such argument, the tracer is all there is
                    torch.onnx.export(m, x, f, **kw)
                sess = ort.InferenceSession(f.getvalue(), so, providers=["CPUExecutionProvider"])
                xn = {"x": x.numpy().astype(np.float32)}
                times.append(timed(lambda: sess.run(None, xn), warm, runs) * 1e3)
            res[("tracker", row["attn"])] = tuple(times)
        return res

    def pytorch(rows):
        """The same measurements as bench's rows, keyed like them."""
        res = {}
        for row in (r for r in rows if r["group"] == "tracker"):
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

            res[("tracker", row["attn"])] = (t1 * 1e3, t32 * 1e3, timed(step, 3, 11) * 1e3)
        for row in (r for r in rows if r["group"] == "attn"):
            B, H, d, n = row.get("batch", 1), row["heads"], row["dim"], row["n"]
            q, k, v = (torch.randn(B, H, n, d, requires_grad=True) for _ in range(3))
            runs = 7 if n <= 1024 else 3
            with torch.no_grad():
                tf = timed(lambda: sdpa(q, k, v), 1, runs)

            def fb():
                sdpa(q, k, v).square().mean().backward()

            res[("attn", B, H, d, n)] = (tf * 1e3, timed(fb, 1, runs) * 1e3)
        return res

    def version():
        return "%s (%s)" % (torch.__version__, "oneDNN" if torch.backends.mkldnn.is_available() else "no oneDNN")

    if a.worker:
        res = pytorch(json.load(sys.stdin))
        json.dump({"version": version(), "times": [[list(k), v] for k, v in res.items()]}, sys.stdout)
        return 0

    def other(python, rows):
        """The PyTorch under another interpreter, keyed like pytorch()'s."""
        try:
            p = subprocess.run([python, os.path.abspath(__file__), "--worker", "--threads", str(a.threads)],
                               input=json.dumps(rows), env=env, capture_output=True, text=True)
        except OSError as e:
            sys.exit("torch_peer: --also %s: %s (expected a Python interpreter with PyTorch)" % (python, e))
        if p.returncode != 0:
            sys.exit("torch_peer: %s --worker failed:\n%s%s" % (python, p.stdout, p.stderr))
        out = json.loads(p.stdout)
        return out["version"], {tuple(k): tuple(v) for k, v in out["times"]}

    ours, theirs, onnx, others, names = None, None, None, None, []
    for r in range(a.rounds):
        print("round %d of %d ..." % (r + 1, a.rounds), file=sys.stderr, flush=True)
        o = effattn()
        t = pytorch(o)
        x = onnxrt(o) if ort else {}
        y = [other(py, o) for py in a.also]
        names = [v for v, _ in y]
        y = [times for _, times in y]
        if ours is None:
            ours, theirs, onnx, others = o, t, x, y
            continue
        for mine, new in zip(others, y):
            for key in mine:
                mine[key] = tuple(min(p, q) for p, q in zip(mine[key], new[key]))
        for key in onnx:
            onnx[key] = tuple(min(p, q) for p, q in zip(onnx[key], x[key]))
        for mine, new in zip(ours, o):  # the same rows in the same order
            for key in ("infer_b1_ms", "infer_b32_ms", "infer_b1_packed_ms", "infer_b32_packed_ms", "train_b32_ms", "fwd_ms",
                        "fwd_bwd_ms"):
                if key in mine:
                    mine[key] = min(mine[key], new[key])
            if "peak_gflops" in mine:
                mine["peak_gflops"] = max(mine["peak_gflops"], new["peak_gflops"])
        for key in theirs:
            theirs[key] = tuple(min(x, y) for x, y in zip(theirs[key], t[key]))

    peak = max(r["peak_gflops"] for r in ours if r["group"] == "tracker" and "peak_gflops" in r) if any(
        r["group"] == "tracker" for r in ours) else None
    print("machine: %s; PyTorch %s, ONNX Runtime %s%s; %d thread(s); fastest of %d rounds%s" % (
        os.uname().machine, version(), ort.__version__ if ort else "not installed",
        "".join("; PyTorch %s (%s)" % (v, py) for v, py in zip(names, a.also)), a.threads, a.rounds,
        "; one core's FMA peak %.1f GFLOP/s (bench --peak, the highest of the rounds)" % peak if peak else ""))
    short = ["PyTorch " + torch.__version__.split("+")[0]] + ["PyTorch " + v.split("+")[0].split(" ")[0] for v in names]
    head = "%-16s %7s" % (short[0], "ratio") + "  ONNX Runtime   ratio" + "".join("  %16s %7s" % (n, "ratio") for n in short[1:])
    print("\ntracker                     effattn ms  %% peak  %s" % head)
    target = []  # (what, figure, met)
    for row in (r for r in ours if r["group"] == "tracker"):
        key = ("tracker", row["attn"])
        t1, t32, ttr = theirs[key]
        o1, o32 = onnx.get(key, (None, None))
        # inference with the weights packed once (ea_params_pack), as ONNX Runtime prepacks its own
        b1, b32 = row.get("infer_b1_packed_ms", row["infer_b1_ms"]), row.get("infer_b32_packed_ms", row["infer_b32_ms"])
        mf = row.get("mflop_per_frame")
        for k, (label, ours_ms, their_ms, onnx_ms, flop) in enumerate((
                ("inference, batch 1", b1, t1, o1, None),
                ("inference, batch 32", b32, t32, o32, mf and 32 * mf * 1e6),
                ("train step, batch 32", row["train_b32_ms"], ttr, None, mf and 3 * 32 * mf * 1e6))):
            # one core's peak: a share of it means something at one thread only
            pct = 100.0 * flop / (ours_ms * 1e-3) / 1e9 / peak if flop and peak and a.threads == 1 else None
            line = "  %s %-21s %9.3f %7s  %16.3f %6.2fx" % (row["attn"], label, ours_ms, "%.1f%%" % pct if pct else "-",
                                                           their_ms, their_ms / ours_ms)
            line += "%15.3f %6.2fx" % (onnx_ms, onnx_ms / ours_ms) if onnx_ms else "%15s %7s" % ("-", "")
            for o in others:
                line += "  %16.3f %6.2fx" % (o[key][k], o[key][k] / ours_ms)
            print(line)
            if row["attn"] != "mha":
                continue
            # issue 15's targets (the tracker's rows: mha)
            torch2 = [t[key][k] for v, t in zip([torch.__version__] + names, [theirs] + others) if not v.startswith("1.")]
            if a.threads == 1:
                if k < 2 and onnx_ms:
                    want = 1.5 if k == 0 else 1.3
                    target.append(("%s >= %.1fx ONNX Runtime" % (label, want), "%.2fx" % (onnx_ms / ours_ms),
                                   onnx_ms / ours_ms >= want))
                if k == 2 and torch2:
                    r2 = min(torch2) / ours_ms
                    target.append(("%s >= 1.5x PyTorch 2.x" % label, "%.2fx" % r2, r2 >= 1.5))
                if pct:
                    target.append(("%s >= 65%% of peak" % label, "%.1f%%" % pct, pct >= 65.0))
            elif a.threads == 16 and k > 0:
                peers = torch2 + ([onnx_ms] if onnx_ms else [])
                if peers:
                    r2 = min(peers) / ours_ms
                    target.append(("%s >= 1.5x the faster of PyTorch 2.x and ONNX Runtime" % label, "%.2fx" % r2, r2 >= 1.5))

    print("\nattention (exact; PyTorch: %s)" % ("scaled_dot_product_attention" if hasattr(F, "scaled_dot_product_attention")
                                              else "softmax(QK^T/sqrt(d))V"))
    print("   B HxD        n   effattn fwd   %s fwd  ratio   effattn f+b   %s f+b  ratio%s" % (
        short[0][8:].rjust(7), short[0][8:].rjust(7), "".join("  %7s fwd  ratio  %7s f+b  ratio" % (n[8:], n[8:]) for n in short[1:])))
    for row in (r for r in ours if r["group"] == "attn"):
        B, H, d, n = row.get("batch", 1), row["heads"], row["dim"], row["n"]
        key = ("attn", B, H, d, n)
        tf, tb = theirs[key]
        line = "  %2d %dx%-3d %7d %11.3f ms %11.3f ms %5.2fx %11.3f ms %11.3f ms %5.2fx" % (
            B, H, d, n, row["fwd_ms"], tf, tf / row["fwd_ms"], row["fwd_bwd_ms"], tb, tb / row["fwd_bwd_ms"])
        for o in others:
            line += " %8.3f ms %5.2fx %8.3f ms %5.2fx" % (o[key][0], o[key][0] / row["fwd_ms"], o[key][1], o[key][1] / row["fwd_bwd_ms"])
        print(line)
        torch2 = [t for v, t in zip([torch.__version__] + names, [theirs[key]] + [o[key] for o in others])
                  if not v.startswith("1.")]
        if torch2 and (a.threads == 16 or (a.threads == 1 and (H, d) == (8, 64) and n >= 256)):
            want = 1.2 if a.threads == 1 else 1.0
            for k, what in ((0, "forward"), (1, "forward + backward")):
                r2 = min(t[k] for t in torch2) / (row["fwd_ms"] if k == 0 else row["fwd_bwd_ms"])
                target.append(("attention %dx%d, n = %d, %s >= %.1fx SDPA" % (H, d, n, what, want), "%.2fx" % r2, r2 >= want))
    if target:
        print("\nissue 15's targets at %d thread%s, mha (1 -> 16 threads and batch 1 on 4 threads: compare two runs' effattn ms)" % (
            a.threads, "" if a.threads == 1 else "s"))
        for what, fig, met in target:
            print("  %-62s %8s  %s" % (what, fig, "met" if met else "missed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PyTorch's figures for the first 10 of seed 000's videos (the subset that
`make test-arm` evaluates under emulation, where all 100 take too long).

    /usr/bin/python3 tests/seed000_subset.py

Uses the Tracker of tests/make_parity.py (Debian's python3-torch); prints
the mean error in pixels of each model over the 10 x 49 pairs."""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_parity import Tracker  # noqa: E402


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": "<f4", "U8": "u1"}[e["dtype"]]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(e["shape"])
    return out


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "seed000")
    data = load_safetensors(os.path.join(here, "videos.safetensors"))
    videos = torch.tensor(data["videos"][:10].astype(np.float32))
    pos = torch.tensor(data["positions"][:10].copy())
    for name, mqa in (("mha", False), ("mqa", True)):
        m = Tracker(mqa)
        w = load_safetensors(os.path.join(here, name + ".safetensors"))
        m.load_state_dict({k: torch.tensor(v.copy()) for k, v in w.items()})
        m.eval()
        errs = []
        with torch.no_grad():
            for v in range(10):
                x = torch.stack([videos[v, :-1], videos[v, 1:]], dim=1)
                d = m(x) - pos[v, 1:]
                errs.append(torch.sqrt((d * d).sum(dim=1)).double())
        print("%s: mean error over the first 10 videos %.6f px" % (name, torch.cat(errs).mean().item()))


if __name__ == "__main__":
    sys.exit(main())

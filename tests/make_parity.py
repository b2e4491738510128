#!/usr/bin/python3
"""Build seed 000's tracker in PyTorch and save parity fixtures for the C tests.

For `mha` and `mqa`: the parameters (state_dict names), a batch of inputs and
targets, PyTorch's outputs and MSE loss, and the gradient of that loss with
respect to every parameter ("grad." + name), in one safetensors file each:
tests/data/parity_{mha,mqa}.safetensors.  The files are committed, so
`make test` needs no Python; rerun this (Debian's python3-torch) to refresh.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn


class Attention(nn.Module):
    def __init__(self, dim=64, heads=4, mqa=False):
        super().__init__()
        self.h, self.dh, self.mqa = heads, dim // heads, mqa
        if mqa:
            self.q_proj = nn.Linear(dim, dim)
            self.k_proj = nn.Linear(dim, self.dh)
            self.v_proj = nn.Linear(dim, self.dh)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        if self.mqa:
            q = self.q_proj(x).reshape(B, N, self.h, self.dh).transpose(1, 2)
            k = self.k_proj(x).reshape(B, N, 1, self.dh).transpose(1, 2)
            v = self.v_proj(x).reshape(B, N, 1, self.dh).transpose(1, 2)
        else:
            q, k, v = self.qkv(x).reshape(B, N, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * self.dh ** -0.5).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, mqa):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, 4, mqa)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(2, 64, kernel_size=4, stride=4)


class Tracker(nn.Module):
    def __init__(self, mqa):
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.pos_embed = nn.Parameter(torch.randn(1, 64, 64) * 0.02)
        self.blocks = nn.ModuleList([Block(64, mqa) for _ in range(4)])
        self.norm = nn.LayerNorm(64)
        self.head = nn.Sequential(nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 2))

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x).mean(dim=1))


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    for name, mqa in (("mha", False), ("mqa", True)):
        torch.manual_seed(2026)
        m = Tracker(mqa)
        # discs on a blank frame (like the videos) plus a little noise, so
        # every input pixel matters
        x = (torch.rand(4, 2, 32, 32) > 0.9).float() + 0.05 * torch.randn(4, 2, 32, 32)
        y = 8.0 + 16.0 * torch.rand(4, 2)
        pred = m(x)
        loss = nn.functional.mse_loss(pred, y)
        loss.backward()
        t = {k: v for k, v in m.state_dict().items()}
        t.update({"input": x, "target": y, "output": pred, "loss": loss.reshape(1)})
        for k, p in m.named_parameters():
            t["grad." + k] = p.grad
        path = os.path.join(out, "parity_%s.safetensors" % name)
        save_safetensors(path, t)
        print("%s: %d parameters, loss %.6f -> %s" % (name, sum(p.numel() for p in m.parameters()), loss.item(), path))


if __name__ == "__main__":
    sys.exit(main())

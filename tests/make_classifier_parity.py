#!/usr/bin/python3
"""Build effattn's image classifiers in PyTorch and save parity fixtures.

tests/data/parity_cls_{vit,cnn,mlp}.safetensors hold the parameters (and
batch-norm buffers) under their state_dict names, a batch of images and
labels, PyTorch's logits and label-smoothed cross-entropy (0.1) in training
mode, the gradient of that loss for every parameter ("grad." + name), and:
  vit: seed 002's configuration (3x32x32, patch 4, dim 48, depth 4, 4 heads,
       MLP 192, QKV bias, class token), so its parameter count is checked;
  cnn: seed 001's CNN host (convs 32 and 64 channels, batch norm, 4-head
       attention over the 8x8 map); also the running statistics after the
       training-mode forward ("after." + name) and the logits in eval mode
       ("eval_output") with those statistics;
  mlp: seed 001's MLP host at a small size (1x8x8, 4 tokens of 8); its
       default size's parameter count is stored as "count_default".
The files are committed, so `make test` needs no Python; rerun this
(Debian's python3-torch) to refresh them.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_parity import Attention, Block, save_safetensors  # the tracker's layers: the same layout


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)


class ViT(nn.Module):
    """Seed 002's classifier: class token, learned positions, pre-norm blocks."""

    def __init__(self, chans=3, img=32, patch=4, dim=48, depth=4, heads=4, hidden=192, classes=10):
        super().__init__()
        t = (img // patch) ** 2
        self.patch_embed = PatchEmbed(chans, dim, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, t + 1, dim) * 0.02)
        assert heads == 4 and hidden == 4 * dim, "make_parity's Block: 4 heads, MLP 4 x dim"
        self.blocks = nn.ModuleList([Block(dim, False) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


class CNNHost(nn.Module):
    """Seed 001's CNN host: two conv-BN-ReLU layers, attention over the map."""

    def __init__(self, chans=3, width=32, dim=64, heads=4, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(chans, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, dim, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)
        self.attn = Attention(dim, heads)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.attn(x.flatten(2).transpose(1, 2))
        return self.head(x.mean(dim=1))


class MLPHost(nn.Module):
    """Seed 001's MLP host with the hidden vector split into tokens."""

    def __init__(self, inputs=64, tokens=4, dim=8, heads=2, hidden=16, classes=10):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.fc1 = nn.Linear(inputs, tokens * dim)
        self.attn = Attention(dim, heads)
        self.fc2 = nn.Linear(tokens * dim, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        h = F.relu(self.fc1(x.flatten(1))).reshape(x.shape[0], self.tokens, self.dim)
        h = self.attn(h).reshape(x.shape[0], -1)
        return self.head(F.relu(self.fc2(h)))


def fixture(name, model, x, extra=None):
    labels = torch.arange(x.shape[0]) % 10
    state = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    model.train()
    out = model(x)
    loss = F.cross_entropy(out, labels, label_smoothing=0.1)
    loss.backward()
    t = dict(state)
    t.update({"input": x, "labels": labels.float(), "output": out, "loss": loss.reshape(1),
              "count": torch.tensor([float(sum(p.numel() for p in model.parameters()))])})
    for k, p in model.named_parameters():
        t["grad." + k] = p.grad
    if extra:
        t.update(extra(model, x))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "parity_cls_%s.safetensors" % name)
    save_safetensors(path, t)
    print("%s: %d parameters, loss %.6f -> %s" % (name, int(t["count"].item()), loss.item(), path))


def cnn_extra(model, x):
    e = {"after." + k: v.detach().clone().float() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    model.eval()
    with torch.no_grad():
        e["eval_output"] = model(x)
    return e


def main():
    torch.manual_seed(2026)
    fixture("vit", ViT(), torch.randn(4, 3, 32, 32))
    torch.manual_seed(2027)
    fixture("cnn", CNNHost(), torch.randn(4, 3, 32, 32), cnn_extra)
    torch.manual_seed(2028)
    default = MLPHost(inputs=3 * 32 * 32, tokens=16, dim=32, heads=4, hidden=256)
    n_default = float(sum(p.numel() for p in default.parameters()))
    fixture("mlp", MLPHost(), torch.randn(6, 1, 8, 8), lambda m, x: {"count_default": torch.tensor([n_default])})


if __name__ == "__main__":
    sys.exit(main())

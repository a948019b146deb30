"""Side-by-side training speed: npnet vs PyTorch (CPU) on one Transformer encoder block.

Network: a functional model on (64 steps, 128 features): self-attention
(MultiHeadAttention, 4 heads of 32) - Add (residual) - LayerNormalization - Dense(256,
relu) - Dense(128) - Add (residual) - LayerNormalization (post-norm, no dropout) -
GlobalAveragePooling1D - Dense(10, softmax); sparse categorical cross-entropy, Adam;
batch 64, float32. PyTorch runs the same layers (``nn.MultiheadAttention`` with
``batch_first=True``, ``nn.LayerNorm`` with Keras' epsilon 1e-3, ``nn.Linear``). Steps
alternate between the libraries in blocks, so both see the same machine load. Prints
both parameter counts, seconds per training step (forward + backward + update) with the
page faults per step, the ratio npnet / PyTorch, and npnet's time per layer call.

Run: ``make bench`` or ``python benchmarks/bench_transformer.py --steps 60 --threads 2``.
On a busy machine, ``--threads 1 --cpu-time`` times each step by the process's CPU time,
which other processes disturb much less than the wall clock (a thread pool of two
threads, waiting for a core, can make a step ten times slower).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    StepProfile,
    add_cpu_time,
    alternate,
    fastest_block,
    npnet_train_step,
    parse_and_pin_threads,
    step_clock,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per library")
    parser.add_argument("--block", type=int, default=10, help="steps per alternation block")
    parser.add_argument("--timesteps", type=int, default=64)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ff", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    add_cpu_time(parser)
    args = parse_and_pin_threads(parser)
    clock = step_clock(parser, args)
    import numpy as np
    import torch
    from torch import nn

    import npnet
    from npnet import layers as L

    rng = np.random.default_rng(0)
    n, t, dim, heads, ff, k = args.batch_size, args.timesteps, args.dim, args.heads, args.ff, args.classes
    x = rng.normal(size=(n, t, dim)).astype(np.float32)
    y = rng.integers(0, k, size=n)

    inp = npnet.Input(shape=(t, dim))
    h = L.LayerNormalization()(L.Add()([inp, L.MultiHeadAttention(heads, dim // heads)(inp, inp)]))
    h = L.LayerNormalization()(L.Add()([h, L.Dense(dim)(L.Dense(ff, activation="relu")(h))]))
    out = L.Dense(k, activation="softmax")(L.GlobalAveragePooling1D()(h))
    model = npnet.Model(inp, out)
    model.compile(npnet.Adam(1e-3), "sparse_categorical_crossentropy")
    npnet_step = npnet_train_step(model, x, y)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-3), nn.LayerNorm(dim, eps=1e-3)
            self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)
            self.head = nn.Linear(dim, k)

        def forward(self, a):
            a = self.norm1(a + self.attn(a, a, a, need_weights=False)[0])
            a = self.norm2(a + self.ff2(torch.relu(self.ff1(a))))
            return self.head(a.mean(dim=1))

    net = Block()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        opt.step()

    n_np = sum(w.size for w in model.trainable_weights)
    n_pt = sum(p.numel() for p in net.parameters())
    assert n_np == n_pt, (n_np, n_pt)

    for _ in range(3):  # warm-up: first-call allocations, thread pools
        npnet_step()
        torch_step()
    times, faults = alternate({"npnet": lambda i: npnet_step(), "pytorch": lambda i: torch_step()},
                              max(1, args.steps // args.block), args.block, clock)
    med = {key: statistics.median(v) for key, v in times.items()}
    best = {key: fastest_block(v, args.block) for key, v in times.items()}
    rows, reps = _split(model, npnet_step, clock)

    print(f"Transformer encoder block, batch {n}, {t} steps x {dim}, {heads} heads of {dim // heads}, "
          f"feed-forward {ff}, {k} classes, Adam, {args.threads} threads, numpy {np.__version__}, "
          f"torch {torch.__version__}")
    print(f"parameters: npnet {n_np:,}, PyTorch {n_pt:,}")
    what = "CPU s/step" if args.cpu_time else "s/step"
    print(f"| library | {what} (median) | {what} (fastest block) | page faults/step |")
    print("|---|---|---|---|")
    for key in ("npnet", "pytorch"):
        print(f"| {key} | {med[key]:.4f} | {best[key]:.4f} | {faults[key]:.0f} |")
    print(f"ratio npnet/PyTorch: {med['npnet'] / med['pytorch']:.2f} "
          f"(fastest blocks: {best['npnet'] / best['pytorch']:.2f})")
    print("\nnpnet's training step by layer call (ms/step):")
    print(f"  {'':<28} {'forward':>8} {'backward':>9}")
    for name, f, b in rows:
        back = "" if b is None else f"{1000 * b / reps:9.2f}"
        print(f"  {name:<28} {1000 * f / reps:8.2f} {back}".rstrip())


def _split(model, step, clock, reps: int = 20) -> tuple[list[tuple[str, float, float | None]], int]:
    """npnet's forward and backward seconds per layer call, the optimizer, and the rest
    (loss, tape), summed over ``reps`` steps."""
    prof = StepProfile(clock)
    layers = prof.layer_calls(model)
    prof.wrap(model.optimizer, "step", "optimizer")
    t0 = clock()
    for _ in range(reps):
        step()
    total = clock() - t0
    prof.restore()
    s = prof.seconds
    rows: list[tuple[str, float, float | None]]
    rows = sorted(((layer.name, s[(layer.name, "forward")], s[(layer.name, "backward")]) for layer in layers),
                  key=lambda r: -(r[1] + r[2]))
    counted = sum(f + (b or 0.0) for _, f, b in rows) + s["optimizer"]
    rows += [("optimizer (Adam)", s["optimizer"], None), ("loss and tape", total - counted, None),
             ("total", total, None)]
    return rows, reps


if __name__ == "__main__":
    main()

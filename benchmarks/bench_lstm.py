"""Side-by-side LSTM speed: npnet vs PyTorch (CPU), one forward and backward pass.

An LSTM of 128 units over 32 steps of 64 features at batch 64, float32: the layer's
forward pass and its backward pass from a fixed gradient of the last output (no
optimizer, no loss). Passes alternate between the two libraries so both see the same
machine load; the figure that matters is the ratio npnet / PyTorch.

Run: ``python benchmarks/bench_lstm.py --threads 2``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import alternate, parse_and_pin_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds per library")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    args = parse_and_pin_threads(parser)
    import numpy as np
    import torch

    import npnet

    rng = np.random.default_rng(0)
    n, steps, d, u = args.batch_size, args.steps, args.features, args.units
    x = rng.normal(size=(n, steps, d)).astype(np.float32)
    dy = rng.normal(size=(n, u)).astype(np.float32)

    layer = npnet.layers.LSTM(u)
    layer(x[:1])
    net = torch.nn.LSTM(d, u, batch_first=True)
    xt = torch.from_numpy(x).requires_grad_(True)
    dyt = torch.from_numpy(dy)

    def npnet_pass(_: int) -> None:
        y, cache = layer.forward(x, training=True)
        layer.backward(cache, dy)

    def torch_pass(_: int) -> None:
        net.zero_grad(set_to_none=True)
        _, (h, _) = net(xt)
        h[0].backward(dyt)

    for _ in range(3):  # warm-up
        npnet_pass(0)
        torch_pass(0)
    times, faults = alternate({"npnet": npnet_pass, "pytorch": torch_pass}, args.rounds, block=5)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"LSTM({u}), {steps} steps x {d} features, batch {n}, forward + backward, {args.threads} threads, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print("| library | ms/pass (median) | page faults/pass |")
    print("|---|---|---|")
    for k in ("npnet", "pytorch"):
        print(f"| {k} | {1e3 * med[k]:.2f} | {faults[k]:.0f} |")
    print(f"ratio npnet/PyTorch: {med['npnet'] / med['pytorch']:.2f}")


if __name__ == "__main__":
    main()

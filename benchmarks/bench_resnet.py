"""Side-by-side training speed: npnet vs PyTorch (CPU) on the example's residual network.

Network: the Chinese-MNIST example's ``build_model("resnet", 0)``, a functional model:
rescaling, a stem (3x3 convolution with 32 filters, 2x2 max pooling, batch norm, ReLU),
then three residual blocks of 32, 64 and 128 filters with 2x2 pooling between them
(each ``relu(skip + bn(conv(relu(bn(conv(x))))))``, the skip through a 1x1 convolution
and batch norm when the width changes), flatten, dropout 0.3, Dense 15 with softmax;
Adam; batch 64 of 64x64 float32 images. PyTorch runs the same network. Steps alternate
between the libraries in blocks, so both see the same machine load. Prints seconds per
step (forward + backward + update), page faults per step and the ratio npnet / PyTorch.
This is the benchmark for the graph core: fan-out, residual sums and the tape.

Run: ``make bench`` or ``python benchmarks/bench_resnet.py --steps 40 --threads 2``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import alternate, example_model, npnet_train_step, parse_and_pin_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per library")
    parser.add_argument("--block", type=int, default=10, help="steps per alternation block")
    args = parse_and_pin_threads(parser)
    import numpy as np
    import torch
    from torch import nn

    import npnet

    rng = np.random.default_rng(0)
    n = args.batch_size
    x = 255 * rng.random((n, 64, 64), dtype=np.float32)
    y = rng.integers(0, 15, size=n)

    model = example_model("resnet")
    model.compile(npnet.Adam(1e-3), "sparse_categorical_crossentropy")
    npnet_step = npnet_train_step(model, x, y, fused=False)

    def conv_bn(cin: int, cout: int, k: int = 3) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                             nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01))

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.skip = nn.Identity() if cin == cout else conv_bn(cin, cout, 1)
            self.a, self.b = conv_bn(cin, cout), conv_bn(cout, cout)

        def forward(self, h):
            return torch.relu(self.skip(h) + self.b(torch.relu(self.a(h))))

    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(32, eps=1e-3, momentum=0.01),
        nn.ReLU(), Block(32, 32), nn.MaxPool2d(2), Block(32, 64), nn.MaxPool2d(2), Block(64, 128),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * 8 * 128, 15))
    assert sum(p.numel() for p in net.parameters()) == sum(w.size for w in model.trainable_weights)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x[:, None]), torch.from_numpy(y)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xt * (1 / 255)), yt).backward()
        opt.step()

    for _ in range(3):  # warm-up: first-call allocations, thread pools
        npnet_step()
        torch_step()
    times, faults = alternate({"npnet": lambda i: npnet_step(), "pytorch": lambda i: torch_step()},
                              max(1, args.steps // args.block), args.block)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"Chinese-MNIST residual network, batch {n}, 64x64x1, Adam, {args.threads} threads, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print("| library | s/step (median) | page faults/step |")
    print("|---|---|---|")
    for k in ("npnet", "pytorch"):
        print(f"| {k} | {med[k]:.4f} | {faults[k]:.0f} |")
    print(f"ratio npnet/PyTorch: {med['npnet'] / med['pytorch']:.2f}")


if __name__ == "__main__":
    main()

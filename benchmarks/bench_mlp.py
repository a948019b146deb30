"""Side-by-side training speed: npnet vs PyTorch (CPU) on the seed network.

The network is the original project's 4096-128-15 MLP (ReLU, softmax), trained with
Adam at batch 64 on 13,000 random float32 inputs (the size of the Chinese-MNIST training
split). Epochs alternate between the two libraries so both see the same machine load;
the figure that matters is the ratio npnet / PyTorch.

Run: ``make bench`` (installs the ``bench`` extra), or
``python benchmarks/bench_mlp.py --epochs 3 --threads 2``.
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
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per library")
    parser.add_argument("--samples", type=int, default=13000)
    args = parse_and_pin_threads(parser)
    import numpy as np
    import torch

    import npnet

    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 4096), dtype=np.float32)
    y = rng.integers(0, 15, size=args.samples)

    model = npnet.Sequential([npnet.Input(shape=(4096,)), npnet.Dense(128, activation="relu"),
                              npnet.Dense(15, activation="softmax")], seed=0)
    model.compile(npnet.Adam(1e-3), "sparse_categorical_crossentropy")

    net = torch.nn.Sequential(torch.nn.Linear(4096, 128), torch.nn.ReLU(), torch.nn.Linear(128, 15))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_epoch(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(args.samples, generator=g)
        for i in range(0, args.samples, args.batch_size):
            idx = order[i:i + args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    def npnet_epoch(seed: int) -> None:
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, seed=seed)

    # Warm-up (first-call allocations, thread pools), then interleaved timing.
    npnet_epoch(0)
    torch_epoch(0)
    times, faults = alternate({"npnet": npnet_epoch, "pytorch": torch_epoch}, args.epochs)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"4096-128-15 MLP, Adam, batch {args.batch_size}, {args.samples} samples, {args.threads} threads, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print("| library | s/epoch (median) | all epochs | page faults/epoch |")
    print("|---|---|---|---|")
    for k in ("npnet", "pytorch"):
        print(f"| {k} | {med[k]:.3f} | {', '.join(f'{t:.3f}' for t in times[k])} | {faults[k]:.0f} |")
    print(f"ratio npnet/PyTorch: {med['npnet'] / med['pytorch']:.2f}")


if __name__ == "__main__":
    main()

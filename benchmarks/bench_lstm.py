"""Side-by-side training speed: npnet vs PyTorch (CPU) on an LSTM classifier.

Network: Input(32 steps, 64 features) - LSTM(128) (last output) - Dense(10, softmax),
sparse categorical cross-entropy, Adam; batch 64, float32; and the same network in
PyTorch (``nn.LSTM`` with ``batch_first=True``, ``nn.Linear``, ``CrossEntropyLoss``,
Adam). Steps alternate between the libraries in blocks, so both see the same machine
load. Prints seconds per training step (forward + backward + update) with the page faults
per step, the ratio npnet / PyTorch, npnet's time split (forward, backward, optimizer,
and inside the LSTM: the input GEMM, the loop over the steps, the weight-gradient GEMMs),
and the LSTM layer alone (forward + backward from a fixed output gradient, no loss, no
update) in both libraries.

Run: ``make bench`` or ``python benchmarks/bench_lstm.py --steps 100 --threads 2``.
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
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per library")
    parser.add_argument("--block", type=int, default=10, help="steps per alternation block")
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    add_cpu_time(parser)
    args = parse_and_pin_threads(parser)
    clock = step_clock(parser, args)
    import numpy as np
    import torch
    from torch import nn

    import npnet

    rng = np.random.default_rng(0)
    n, steps, d, u, k = args.batch_size, args.timesteps, args.features, args.units, args.classes
    x = rng.normal(size=(n, steps, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)

    model = npnet.Sequential([npnet.Input(shape=(steps, d)), npnet.layers.LSTM(u),
                              npnet.layers.Dense(k, activation="softmax")])
    model.compile(npnet.Adam(1e-3), "sparse_categorical_crossentropy")
    npnet_step = npnet_train_step(model, x, y)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(d, u, batch_first=True)
            self.head = nn.Linear(u, k)

        def forward(self, a):
            return self.head(self.lstm(a)[1][0][0])  # the last step's h

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        opt.step()

    for _ in range(3):  # warm-up: first-call allocations, thread pools
        npnet_step()
        torch_step()
    times, faults = alternate({"npnet": lambda i: npnet_step(), "pytorch": lambda i: torch_step()},
                              max(1, args.steps // args.block), args.block, clock)
    med = {key: statistics.median(v) for key, v in times.items()}
    best = {key: fastest_block(v, args.block) for key, v in times.items()}
    split, reps = _split(model, npnet_step, clock)
    layer_med = _layer_only(npnet, torch, np, rng, n, steps, d, u, max(1, args.steps // 2), args.block, clock)

    n_np = sum(w.size for w in model.trainable_weights)
    n_pt = sum(p.numel() for p in net.parameters())
    print(f"LSTM({u}) classifier, {steps} steps x {d} features, batch {n}, {k} classes, Adam, "
          f"{args.threads} threads, numpy {np.__version__}, torch {torch.__version__}")
    print(f"parameters: npnet {n_np:,}, PyTorch {n_pt:,} (PyTorch's LSTM has two bias vectors, Keras' one)")
    what = "CPU s/step" if args.cpu_time else "s/step"
    print(f"| library | {what} (median) | {what} (fastest block) | page faults/step |")
    print("|---|---|---|---|")
    for key in ("npnet", "pytorch"):
        print(f"| {key} | {med[key]:.4f} | {best[key]:.4f} | {faults[key]:.0f} |")
    print(f"ratio npnet/PyTorch: {med['npnet'] / med['pytorch']:.2f} "
          f"(fastest blocks: {best['npnet'] / best['pytorch']:.2f})")
    print("\nnpnet's training step (ms/step):")
    for label, sec in split:
        print(f"  {label:<44} {1000 * sec / reps:8.2f}")
    (a, a_best), (b, b_best) = layer_med["npnet"], layer_med["pytorch"]
    print(f"\nthe LSTM layer alone, forward + backward (median; fastest block): npnet {1e3 * a:.2f}; "
          f"{1e3 * a_best:.2f} ms, PyTorch {1e3 * b:.2f}; {1e3 * b_best:.2f} ms, ratio {a / b:.2f}; "
          f"{a_best / b_best:.2f}")


def _split(model, step, clock, reps: int = 20) -> tuple[list[tuple[str, float]], int]:
    """npnet's step split into its parts, summed over ``reps`` steps."""
    lstm, dense = model.layers[0], model.layers[1]
    prof = StepProfile(clock)
    prof.layer_calls(model)
    prof.wrap(model.optimizer, "step", "optimizer")
    prof.wrap(lstm, "_scan", "scan")
    prof.wrap(lstm, "_scan_backward", "scan_backward")
    prof.wrap(lstm, "_recurrent_grad", "recurrent_grad")
    t0 = clock()
    for _ in range(reps):
        step()
    total = clock() - t0
    prof.restore()
    s = prof.seconds
    lf, lb = s[(lstm.name, "forward")], s[(lstm.name, "backward")]
    df, db = s[(dense.name, "forward")], s[(dense.name, "backward")]
    # recurrent_grad runs inside scan_backward; the kernel GEMM and the bias sum after it
    weight_grads = s["recurrent_grad"] + lb - s["scan_backward"]
    rows = [
        ("LSTM forward: input GEMM (x W + b, all steps)", lf - s["scan"]),
        ("LSTM forward: loop over the steps", s["scan"]),
        ("LSTM backward: loop over the steps", s["scan_backward"] - s["recurrent_grad"]),
        ("LSTM backward: weight-gradient GEMMs", weight_grads),
        ("Dense forward + backward", df + db),
        ("optimizer (Adam)", s["optimizer"]),
        ("loss and tape", total - lf - lb - df - db - s["optimizer"]),
        ("total", total),
    ]
    return rows, reps


def _layer_only(npnet, torch, np, rng, n, steps, d, u, rounds, block, clock) -> dict[str, tuple[float, float]]:
    """Seconds of one forward + backward pass of the LSTM layer alone: the median and the
    fastest block's mean."""
    x = rng.normal(size=(n, steps, d)).astype(np.float32)
    dy = rng.normal(size=(n, u)).astype(np.float32)
    layer = npnet.layers.LSTM(u)
    layer(x[:1])
    layer.compute_input_grad = False  # as the first layer of a model
    net = torch.nn.LSTM(d, u, batch_first=True)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

    def npnet_pass(_: int) -> None:
        _, cache = layer.forward(x, training=True)
        layer.backward(cache, dy)

    def torch_pass(_: int) -> None:
        net.zero_grad(set_to_none=True)
        _, (h, _) = net(xt)
        h[0].backward(dyt)

    for _ in range(3):
        npnet_pass(0)
        torch_pass(0)
    times, _ = alternate({"npnet": npnet_pass, "pytorch": torch_pass}, max(1, rounds // block), block, clock)
    return {key: (statistics.median(v), fastest_block(v, block)) for key, v in times.items()}


if __name__ == "__main__":
    main()

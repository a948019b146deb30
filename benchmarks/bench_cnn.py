"""Side-by-side training speed: npnet vs PyTorch (CPU) on the Chinese-MNIST example's CNN.

Network: the example's own ``build_model("cnn", 0)``: rescaling by 1/255, 3 x [Conv2D 3x3
"same" (32, 64, 128 filters, no bias) - MaxPool 2x2 - BatchNorm - ReLU], flatten
(8x8x128), dropout 0.3, Dense 15 with softmax; Adam; batch 64 of 64x64 float32 images
(one channel); and the same network written in PyTorch. Steps alternate between the
libraries in blocks, so both see the same machine load. Prints seconds per step
(forward + backward + update) for each with the page faults per step (fresh large arrays
cost page faults, which can weigh as much as the arithmetic), the ratio npnet / PyTorch,
and npnet's time per layer.

Run: ``make bench`` or ``python benchmarks/bench_cnn.py --steps 60 --threads 2``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import alternate, example_model, npnet_train_step, parse_and_pin_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per library")
    parser.add_argument("--block", type=int, default=10, help="steps per alternation block")
    args = parse_and_pin_threads(parser)
    import numpy as np
    import torch

    import npnet
    from npnet import _tape

    rng = np.random.default_rng(0)
    n = args.batch_size
    x = 255 * rng.random((n, 64, 64), dtype=np.float32)  # pixel values, as the example feeds them
    y = rng.integers(0, 15, size=n)

    model = example_model("cnn")
    model.compile(npnet.Adam(1e-3), "sparse_categorical_crossentropy")
    npnet_step = npnet_train_step(model, x, y)

    tl = []
    cin = 1
    for f in (32, 64, 128):
        tl += [torch.nn.Conv2d(cin, f, 3, padding=1, bias=False), torch.nn.MaxPool2d(2),
               torch.nn.BatchNorm2d(f, eps=1e-3, momentum=0.01), torch.nn.ReLU()]
        cin = f
    tl += [torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(8 * 8 * 128, 15)]
    net = torch.nn.Sequential(*tl)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt = torch.from_numpy(x[:, None])  # PyTorch's NCHW
    yt = torch.from_numpy(y)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xt * (1 / 255)), yt).backward()
        opt.step()

    # The step fit() takes: a tape of layer calls, with output arrays kept between batches.
    for _ in range(3):  # warm-up: first-call allocations, thread pools
        npnet_step()
        torch_step()
    times, faults = alternate({"npnet": lambda i: npnet_step(), "pytorch": lambda i: torch_step()},
                              max(1, args.steps // args.block), args.block)
    with _tape.running(_tape.Run(training=True, buffers=npnet_step.buffers)):
        per_layer, reps = _per_layer(model, x, y)
    med = {k: statistics.median(v) for k, v in times.items()}

    print(f"Chinese-MNIST CNN, batch {n}, 64x64x1, Adam, {args.threads} threads, numpy {np.__version__}, "
          f"torch {torch.__version__}")
    print("| library | s/step (median) | page faults/step |")
    print("|---|---|---|")
    for k in ("npnet", "pytorch"):
        print(f"| {k} | {med[k]:.4f} | {faults[k]:.0f} |")
    print(f"ratio npnet/PyTorch: {med['npnet'] / med['pytorch']:.2f}")
    print("\nnpnet forward+backward time per layer (ms/step):")
    for name, t in sorted(per_layer.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28} {1000 * t / reps:8.2f}")


def _per_layer(model, x, y, reps: int = 5) -> tuple[dict[str, float], int]:
    """npnet's forward + backward seconds per layer, summed over ``reps`` passes (the last
    layer's softmax fused into the loss, as in training)."""
    per_layer = {layer.name: 0.0 for layer in model.layers}
    loss = model.loss
    for _ in range(reps):
        h, caches = x, []
        for layer in model.layers:
            t0 = time.perf_counter()
            out, cache = layer.forward(h, True)
            per_layer[layer.name] += time.perf_counter() - t0
            caches.append((h, cache))
            h = out
        last = model.layers[-1]
        _, logits = last._fusion(caches[-1][1], [caches[-1][0]])
        loss._forward_logits(y, logits)
        t0 = time.perf_counter()
        d = last._backward_from_logits(caches[-1][1], loss.backward())
        per_layer[last.name] += time.perf_counter() - t0
        # as in training, layers before the first one with parameters are asked for no dx
        first = next(i for i, layer in enumerate(model.layers) if layer.params)
        for i, layer, (_, cache) in zip(range(len(model.layers) - 2, -1, -1), reversed(model.layers[:-1]),
                                        reversed(caches[:-1])):
            layer.compute_input_grad = i > first
            t0 = time.perf_counter()
            d = layer.backward(cache, d)
            per_layer[layer.name] += time.perf_counter() - t0
            layer.compute_input_grad = True
            if d is None:
                break
    return per_layer, reps


if __name__ == "__main__":
    main()

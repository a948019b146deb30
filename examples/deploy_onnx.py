"""Export a trained Chinese-MNIST model to ONNX, run it in onnxruntime, and time both.

    python examples/deploy_onnx.py                          # train the example's CNN briefly, then export
    python examples/deploy_onnx.py --model runs/cnn-random-seed0/model.npnet   # a model trained by chinese_mnist.py
    python examples/deploy_onnx.py --dataset digits         # scikit-learn's 8x8 digits instead

Needs ``pip install "npnet[onnx]" onnxruntime``. The archive is found as in
``examples/chinese_mnist.py`` (--data, $NPNET_CHINESE_MNIST, ~/.npnet/datasets). The script
checks that onnxruntime's outputs match ``model.predict`` (max abs difference <= 1e-5),
then times ``model.predict`` and ``InferenceSession.run`` on the same batch of test images
with the same number of threads, and prints the median of several runs of each.
"""

from __future__ import annotations

import argparse
import os
import runpy
import statistics
import sys
import time

import numpy as np

import npnet

HERE = os.path.dirname(os.path.abspath(__file__))


def _data(dataset: str, path: str | None):
    """(x_train, y_train), (x_test, y_test) and the task of the Chinese-MNIST example."""
    example = runpy.run_path(os.path.join(HERE, "chinese_mnist.py"))
    if dataset == "chinese-mnist":
        from npnet.datasets import chinese_mnist as cm

        return cm.load_data(path), example["CHINESE_MNIST"], example
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target
    return ((x[:1400], y[:1400]), (x[1400:], y[1400:])), example["DIGITS"], example


def _median_time(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a model saved by examples/chinese_mnist.py (default: train the CNN briefly)")
    p.add_argument("--dataset", choices=["chinese-mnist", "digits"], default=None)
    p.add_argument("--data", help="path of the Chinese-MNIST archive")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--batch", type=int, default=1000, help="test images in the timed batch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=os.path.join("runs", "deploy"))
    args = p.parse_args(argv)
    import onnxruntime as ort

    dataset = args.dataset
    if dataset is None:
        from npnet.datasets import chinese_mnist as cm

        try:
            cm.find_archive(args.data)
            dataset = "chinese-mnist"
        except cm.DataSetError:
            print("note: Chinese-MNIST archive not found; using scikit-learn's 8x8 digits")
            dataset = "digits"
    ((x_train, y_train), (x_test, y_test)), task, example = _data(dataset, args.data)
    if args.model:
        model = npnet.load_model(args.model)
    else:
        model = example["build_model"]("cnn", 0, task)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        n = min(args.train_size, len(x_train))
        model.fit(x_train[:n], y_train[:n], epochs=args.epochs, batch_size=64, verbose=0, seed=0)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{model.name}.onnx")
    model.export(path)
    threads = npnet.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    batch = np.ascontiguousarray(x_test[: args.batch], dtype=np.float32)
    want = model.predict(batch, batch_size=len(batch), verbose=0)
    (got,) = sess.run(None, {name: batch})
    diff = float(np.abs(got - want).max())
    accuracy = float((got.argmax(axis=1) == y_test[: len(batch)]).mean())
    t_npnet = _median_time(lambda: model.predict(batch, batch_size=len(batch), verbose=0), args.repeats)
    t_ort = _median_time(lambda: sess.run(None, {name: batch}), args.repeats)
    print(f"{task.title}: {model.name}, {model.count_params():,} weights, exported to {path}")
    print(f"max |onnxruntime - predict| = {diff:.2e} on {len(batch)} test images; accuracy {accuracy:.4f}")
    print(f"one batch of {len(batch)}, {threads} thread(s), median of {args.repeats}: "
          f"npnet predict {t_npnet * 1e3:.1f} ms, onnxruntime {t_ort * 1e3:.1f} ms "
          f"(onnxruntime {t_npnet / t_ort:.1f}x faster)")
    if diff > 1e-5:
        sys.exit(f"error: the exported model differs from predict by {diff:.2e}")
    return {"max_abs_diff": diff, "accuracy": accuracy, "npnet_s": t_npnet, "onnxruntime_s": t_ort, "path": path}


if __name__ == "__main__":
    main()

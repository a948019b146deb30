"""Shared set-up of the side-by-side benchmarks."""

from __future__ import annotations

import argparse
import os


def parse_and_pin_threads(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add ``--batch-size`` and ``--threads``, parse, and give both libraries the same threads.

    Must run before NumPy or PyTorch is imported: BLAS reads its thread count at import.
    """
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    return args

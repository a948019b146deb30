"""Hypothesis strategies shared by the tests."""

import numpy as np
from hypothesis import strategies as st


def away_from_zero(rng: np.random.Generator, shape, margin=0.1, scale=1.0):
    """Values with |v| >= margin: no input sits on a ReLU kink."""
    u = rng.normal(scale=scale, size=shape)
    return np.sign(u + 1e-12) * (margin + np.abs(u))


seeds = st.integers(min_value=0, max_value=2**31 - 1)
batch = st.integers(min_value=1, max_value=4)
features = st.integers(min_value=1, max_value=5)


def well_apart(rng: np.random.Generator, shapes, gap=0.1):
    """One array per shape, every value distinct and about ``gap`` from every other, across
    the arrays too: no ties inside a max-pool window or in an element-wise maximum."""
    sizes = [int(np.prod(s)) for s in shapes]
    total = sum(sizes)
    values = (rng.permutation(total) - total / 2) * gap + rng.normal(scale=gap / 10, size=total)
    return [part.reshape(s) for part, s in zip(np.split(values, np.cumsum(sizes)[:-1]), shapes)]

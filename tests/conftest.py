import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import npnet

settings.register_profile(
    "npnet", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("npnet")


@pytest.fixture(autouse=True)
def _float32_default():
    """Every test starts and ends with the default float type."""
    npnet.set_floatx("float32")
    yield
    npnet.set_floatx("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def toy_data():
    """Three Gaussian blobs in 4-D, 300 samples, labels 0-2 (learnable to ~100%)."""
    r = np.random.default_rng(7)
    centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=np.float64)
    y = np.repeat(np.arange(3), 100)
    x = centers[y] + r.normal(scale=0.5, size=(300, 4))
    return x.astype(np.float32), y


def chinese_mnist_path():
    """Path of the real archive from NPNET_CHINESE_MNIST, or skip with a reason.

    If the variable is set but the file is missing, the test fails rather than skips.
    """
    path = os.environ.get("NPNET_CHINESE_MNIST")
    if not path:
        pytest.skip("NPNET_CHINESE_MNIST is not set; it points to the Chinese-MNIST archive")
    if not os.path.exists(path):
        pytest.fail(f"NPNET_CHINESE_MNIST={path!r} is set but no file is there")
    return path

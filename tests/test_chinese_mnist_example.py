"""The showcase example: end to end on a tiny generated archive, and an accuracy floor on
the real archive (NPNET_CHINESE_MNIST)."""

import csv
import json
import pathlib
import runpy

import numpy as np
import pytest

import npnet

from .conftest import chinese_mnist_path
from .datasets.test_chinese_mnist import _entries, _write_zip

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "chinese_mnist.py"


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(EXAMPLE))


def test_example_writes_every_output_on_a_tiny_archive(tmp_path, example, monkeypatch):
    monkeypatch.setenv("NPNET_CACHE_DIR", str(tmp_path / "cache"))
    archive = _write_zip(tmp_path / "tiny.zip", _entries(writers=(1, 2, 3, 4), samples=(1, 2, 3), codes=tuple(range(1, 16))))
    out = tmp_path / "out"
    results = example["main"](["--data", archive, "--epochs", "2", "--test-size", "30", "--val-size", "30",
                               "--out", str(out), "--verbose", "0"])
    for name in ("model.npnet", "history.csv", "results.json", "learning_curves.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["test_accuracy"] == results["test_accuracy"]
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["epochs_run"] == 2
    assert len(results["per_class_accuracy"]) == 15


def test_example_reports_a_missing_archive(tmp_path, example):
    with pytest.raises(SystemExit, match=r"error: Chinese-MNIST archive not found; looked at: .*nowhere.zip"):
        example["main"](["--data", str(tmp_path / "nowhere.zip"), "--out", str(tmp_path)])


def test_mlp_accuracy_floor_on_the_real_archive(tmp_path, example, monkeypatch):
    """Six epochs of the original 4096-128-15 MLP already read most characters."""
    path = chinese_mnist_path()
    monkeypatch.setenv("NPNET_CACHE_DIR", str(tmp_path / "cache"))
    results = example["main"](["--data", path, "--epochs", "6", "--out", str(tmp_path / "run"), "--verbose", "0",
                               "--no-plots"])
    assert results["test_accuracy"] >= 0.85
    assert results["best_val_accuracy"] >= 0.85


def test_cnn_example_trains_and_reloads_on_a_tiny_archive(tmp_path, example, monkeypatch):
    model = example["build_model"]("cnn", 0)
    # 3x3 kernels: 9*1*32 + 9*32*64 + 9*64*128; batch norm: 4 values per channel, half of
    # them moving statistics; Dense on the flattened 8x8x128 maps: 8192*15 + 15.
    assert model.count_params() == 288 + 18432 + 73728 + 4 * (32 + 64 + 128) + 8192 * 15 + 15 == 216239
    monkeypatch.setenv("NPNET_CACHE_DIR", str(tmp_path / "cache"))
    archive = _write_zip(tmp_path / "tiny.zip", _entries(writers=(1, 2, 3, 4), samples=(1, 2, 3), codes=tuple(range(1, 16))))
    out = tmp_path / "out"
    results = example["main"](["--data", archive, "--model", "cnn", "--epochs", "3", "--test-size", "30",
                               "--val-size", "30", "--out", str(out), "--verbose", "0", "--no-plots"])
    assert results["model"] == "cnn" and results["epochs_run"] == 3
    # The CNN's early stopping watches validation loss; the run reports the epoch it restored.
    with open(out / "history.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    val_loss = [float(r["val_loss"]) for r in rows]
    best = int(np.argmin(val_loss))
    assert results["best_epoch"] == best + 1
    assert results["best_val_accuracy"] == pytest.approx(float(rows[best]["val_accuracy"]))
    reloaded = npnet.load_model(out / "model.npnet")
    assert [type(layer).__name__ for layer in reloaded.layers][-4:] == ["ReLU", "Flatten", "Dropout", "Dense"]
    x = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64)).astype(np.float32)
    trained = example["build_model"]("cnn", 0)
    trained.set_weights(reloaded.get_weights())
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), trained.predict(x, verbose=0), rtol=1e-6)


def test_resnet_example_is_a_functional_model_that_trains_and_reloads(tmp_path, example, monkeypatch):
    model = example["build_model"]("resnet", 0)
    assert isinstance(model, npnet.models.Functional)
    # stem 9*32 + bn 4*32; block 32: 2 convs 9*32*32 + 2 bn; block 64: 1x1 32*64, 9*32*64, 9*64*64 and
    # 3 bn of 4*64; block 128: 1x1 64*128, 9*64*128, 9*128*128 and 3 bn of 4*128; Dense 8192*15 + 15
    assert model.count_params() == (288 + 128) + (2 * 9216 + 256) + (2048 + 18432 + 36864 + 768) \
        + (8192 + 73728 + 147456 + 1536) + 122895 == 431023
    adds = [layer for layer in model.layers if isinstance(layer, npnet.layers.Add)]
    assert len(adds) == 3
    monkeypatch.setenv("NPNET_CACHE_DIR", str(tmp_path / "cache"))
    archive = _write_zip(tmp_path / "tiny.zip", _entries(writers=(1, 2, 3, 4), samples=(1, 2, 3), codes=tuple(range(1, 16))))
    out = tmp_path / "out"
    results = example["main"](["--data", archive, "--model", "resnet", "--epochs", "2", "--test-size", "30",
                               "--val-size", "30", "--out", str(out), "--verbose", "0", "--no-plots"])
    assert results["model"] == "resnet" and results["epochs_run"] == 2
    reloaded = npnet.load_model(out / "model.npnet")
    assert isinstance(reloaded, npnet.models.Functional) and reloaded.count_params() == 431023
    x = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64)).astype(np.float32)
    trained = example["build_model"]("resnet", 0)
    trained.set_weights(reloaded.get_weights())
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), trained.predict(x, verbose=0), rtol=1e-6)

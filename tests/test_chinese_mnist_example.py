"""The showcase example: end to end on a tiny generated archive, and an accuracy floor on
the real archive (NPNET_CHINESE_MNIST)."""

import json
import pathlib
import runpy

import pytest

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

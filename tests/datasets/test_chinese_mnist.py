"""The Chinese-MNIST loader on tiny generated archives (every path and every error), and
once on the real archive when NPNET_CHINESE_MNIST points to it."""

import io
import os
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from npnet.datasets import chinese_mnist as cm

from ..conftest import chinese_mnist_path


def _jpeg(value=0, size=(64, 64), mode="L"):
    rng = np.random.default_rng(value)
    arr = (rng.random((size[1], size[0])) * 40).astype(np.uint8)
    arr[10:20, 10:50] = 200 + value % 50
    im = Image.fromarray(arr, "L").convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _entries(writers=(1, 2, 3), samples=(1, 2), codes=(1, 2, 15)):
    rows = ["suite_id,sample_id,code,value,character"]
    files = {}
    for w in writers:
        for s in samples:
            for c in codes:
                _, char, value = cm.CLASSES[c - 1]
                rows.append(f"{w},{s},{c},{value},{char}")
                files[f"data/data/input_{w}_{s}_{c}.jpg"] = _jpeg(w * 100 + s * 10 + c)
    files["chinese_mnist.csv"] = ("\n".join(rows) + "\n").encode("utf-8")
    return files


def _write_zip(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return str(path)


def _write_dir(path, files):
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return str(path)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_reads_a_zip_and_a_folder_identically(tmp_path, cache):
    files = _entries()
    z = cm.load(_write_zip(tmp_path / "a.zip", files), cache_dir=cache)
    d = cm.load(_write_dir(tmp_path / "extracted", files), cache_dir=cache)
    assert z.images.shape == (18, 64, 64) and z.images.dtype == np.uint8
    for a, b in zip((z.images, z.labels, z.writers, z.samples), (d.images, d.labels, d.writers, d.samples)):
        np.testing.assert_array_equal(a, b)
    assert sorted(set(z.labels.tolist())) == [0, 1, 14]  # codes 1, 2, 15
    assert z.writers.tolist()[:6] == [1] * 6
    assert z.images[0, 15, 30] > 150  # the bright bar drawn into every test image


def test_class_names():
    assert cm.CHARACTERS[0] == "零" and cm.VALUES[0] == 0
    assert cm.CHARACTERS[14] == "亿" and cm.VALUES[14] == 100_000_000
    assert len(cm.CLASSES) == 15 and cm.VALUES[11] == 100


def test_path_from_env_and_default_and_not_found(tmp_path, cache, monkeypatch):
    zpath = _write_zip(tmp_path / "env.zip", _entries())
    monkeypatch.setenv("NPNET_CHINESE_MNIST", zpath)
    assert cm.load(cache_dir=cache).images.shape[0] == 18
    monkeypatch.delenv("NPNET_CHINESE_MNIST")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(cm.DataSetError, match=r"not found; looked at: .*home/.npnet/datasets/chinese-mnist.zip "
                                              r"\(the default location\).*kaggle.com/datasets/gpreda/chinese-mnist"):
        cm.load(cache_dir=cache)
    default = tmp_path / "home" / ".npnet" / "datasets"
    default.mkdir(parents=True)
    _write_zip(default / "chinese-mnist.zip", _entries())
    assert cm.load(cache_dir=cache).images.shape[0] == 18
    with pytest.raises(cm.DataSetError, match=r"looked at: .*nowhere.zip \(the `path` argument\)"):
        cm.load(tmp_path / "nowhere.zip", cache_dir=cache)


def test_cache_is_used_then_rebuilt_when_corrupt_or_stale(tmp_path, cache, monkeypatch):
    zpath = _write_zip(tmp_path / "a.zip", _entries())
    first = cm.load(zpath, cache_dir=cache)
    (npz,) = list(cache.iterdir())

    def boom(source):
        raise AssertionError("decoded although a valid cache exists")

    monkeypatch.setattr(cm, "_decode", boom)
    np.testing.assert_array_equal(cm.load(zpath, cache_dir=cache).images, first.images)
    monkeypatch.undo()

    npz.write_bytes(b"garbage")  # corrupt cache: rebuilt, not trusted
    np.testing.assert_array_equal(cm.load(zpath, cache_dir=cache).images, first.images)
    with np.load(npz) as z:
        assert z["images"].shape == (18, 64, 64)

    # stale cache under the right name but another archive's key: rebuilt
    with np.load(npz) as z:
        items = {k: z[k] for k in z.files}
    items["key"] = np.array("0-deadbeef")
    items["images"] = np.zeros_like(items["images"])
    np.savez(npz, **items)
    np.testing.assert_array_equal(cm.load(zpath, cache_dir=cache).images, first.images)

    # a changed archive gets its own cache entry
    _write_zip(tmp_path / "a.zip", _entries(writers=(1, 2)))
    assert cm.load(zpath, cache_dir=cache).images.shape[0] == 12


def test_missing_pillow_names_the_extra(tmp_path, cache, monkeypatch):
    zpath = _write_zip(tmp_path / "a.zip", _entries())
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"needs Pillow .* pip install 'npnet\[datasets\]'"):
        cm.load(zpath, cache=False)


def _bad(files_fn):
    def make():
        files = _entries()
        files_fn(files)
        return files
    return make


def _drop_row(files):
    lines = files["chinese_mnist.csv"].decode().splitlines()
    files["chinese_mnist.csv"] = ("\n".join(lines[:-1]) + "\n").encode()


def _add_row(files, row):
    files["chinese_mnist.csv"] += (row + "\n").encode()


BAD = {
    "row without image": (_bad(lambda f: f.pop("data/data/input_2_1_2.jpg")),
                          r"chinese_mnist.csv line \d+ has no image input_2_1_2.jpg"),
    "image without row": (_bad(_drop_row), r"image data/data/input_3_2_15.jpg has no row in chinese_mnist.csv"),
    "not 64x64": (_bad(lambda f: f.update({"data/data/input_1_1_1.jpg": _jpeg(size=(32, 32))})),
                  r"data/data/input_1_1_1.jpg must be a 64x64 grayscale image, found mode L and size 32x32"),
    "not grayscale": (_bad(lambda f: f.update({"data/data/input_1_1_1.jpg": _jpeg(mode="RGB")})),
                      r"input_1_1_1.jpg must be a 64x64 grayscale image, found mode RGB"),
    "corrupt jpeg": (_bad(lambda f: f.update({"data/data/input_1_1_1.jpg": b"\xff\xd8\xff\xe0 broken"})),
                     r"data/data/input_1_1_1.jpg is not a readable JPEG"),
    "code outside 1-15": (_bad(lambda f: _add_row(f, "1,1,16,0,x")), r"line 20: code 16 is outside 1-15"),
    "duplicate row": (_bad(lambda f: _add_row(f, "1,1,1,0,零")), r"line 20: duplicate row for suite 1, sample 1, code 1"),
    "no csv": (_bad(lambda f: f.pop("chinese_mnist.csv")), r"expected one chinese_mnist.csv, found 0"),
    "bad columns": (_bad(lambda f: f.update({"chinese_mnist.csv": b"a,b\n1,2\n"})), r"must have columns suite_id"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_inconsistent_archives_name_the_file(tmp_path, case, layout):
    make, match = BAD[case]
    files = make()
    path = _write_zip(tmp_path / "bad.zip", files) if layout == "zip" else _write_dir(tmp_path / "bad", files)
    with pytest.raises(cm.DataSetError, match=match):
        cm.load(path, cache=False)


def test_not_a_zip(tmp_path):
    p = tmp_path / "archive.zip"
    p.write_text("not a zip")
    with pytest.raises(cm.DataSetError, match=r"archive.zip: not a readable zip archive"):
        cm.load(p, cache=False)


def test_split_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"`split` must be one of \['random', 'writer'\], received 'person'"):
        cm.load_data(_write_zip(tmp_path / "a.zip", _entries()), split="person", cache=False)


def test_real_archive(tmp_path):
    path = chinese_mnist_path()
    data = cm.load(path, cache_dir=tmp_path)
    assert data.images.shape == (15000, 64, 64) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [1000] * 15
    assert len(np.unique(data.writers)) == 100 and set(np.unique(data.samples)) == set(range(1, 11))
    (xtr, ytr), (xte, yte), (wtr, wte) = cm.load_data(path, split="writer", return_writers=True, cache_dir=tmp_path)
    assert not set(wtr) & set(wte) and len(xte) == 1950 and len(xtr) == 13050
    (xtr, ytr), (xte, yte) = cm.load_data(path, cache_dir=tmp_path)
    assert len(xtr) == 13000 and len(xte) == 2000
    assert np.abs(np.bincount(yte) - 2000 / 15).max() < 1
    assert os.listdir(tmp_path)  # the cache was written

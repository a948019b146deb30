"""Chinese-MNIST: 15,000 handwritten Chinese numerals, 64x64 grayscale, 15 classes.

The data set was collected at Newcastle University (Dr K. Nazarpour and Dr M. Chen):
100 writers (``suite_id`` 1-100) each wrote each of the 15 characters 10 times
(``sample_id`` 1-10). It is published on Kaggle as "Chinese MNIST" (gpreda/chinese-mnist).
npnet does not ship it: download the archive and point the loader at it.

The archive holds ``chinese_mnist.csv`` (columns ``suite_id,sample_id,code,value,character``)
and ``data/data/input_{suite_id}_{sample_id}_{code}.jpg``. The loader reads the ``.zip``
itself or the folder it extracts to.

Where it looks, in order: the ``path`` argument; ``$NPNET_CHINESE_MNIST``;
``~/.npnet/datasets/chinese-mnist.zip``; ``~/.npnet/datasets/chinese-mnist/``.

Decoded images are cached as an ``.npz`` in ``$NPNET_CACHE_DIR`` (default
``~/.cache/npnet``), keyed by the archive's size and SHA-256, so later loads take a
fraction of a second. A cache that does not match, or does not read back cleanly, is
rebuilt, never trusted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import group_split, stratified_split

__all__ = ["CLASSES", "CHARACTERS", "VALUES", "ChineseMNIST", "DataSetError", "load", "load_data", "find_archive",
           "DEFAULT_PATHS"]

#: (code, character, numeric value) for class ids 0..14 (class id = code - 1).
CLASSES: tuple[tuple[int, str, int], ...] = (
    (1, "零", 0), (2, "一", 1), (3, "二", 2), (4, "三", 3), (5, "四", 4), (6, "五", 5), (7, "六", 6),
    (8, "七", 7), (9, "八", 8), (10, "九", 9), (11, "十", 10), (12, "百", 100), (13, "千", 1000),
    (14, "万", 10000), (15, "亿", 100000000),
)
#: The character of each class id.
CHARACTERS: tuple[str, ...] = tuple(c for _, c, _ in CLASSES)
#: The numeric value of each class id.
VALUES: tuple[int, ...] = tuple(v for _, _, v in CLASSES)

DEFAULT_PATHS = ("~/.npnet/datasets/chinese-mnist.zip", "~/.npnet/datasets/chinese-mnist")
_NAME = re.compile(r"(?:^|/)input_(\d+)_(\d+)_(\d+)\.jpg$")
_CACHE_VERSION = 1
_HOW_TO_GET = (
    "Download the archive from https://www.kaggle.com/datasets/gpreda/chinese-mnist "
    "and pass its path, or set NPNET_CHINESE_MNIST to it."
)


class DataSetError(ValueError):
    """The archive is missing, incomplete or inconsistent; the message names the file."""


@dataclass(frozen=True)
class ChineseMNIST:
    """The whole data set, in a fixed order (writer, then sample, then code).

    Attributes
    ----------
    images : ndarray of uint8, shape (15000, 64, 64)
    labels : ndarray of int64, shape (15000,)
        Class ids 0-14 (``code - 1``); see :data:`CHARACTERS` and :data:`VALUES`.
    writers : ndarray of int64, shape (15000,)
        ``suite_id``, 1-100.
    samples : ndarray of int64, shape (15000,)
        ``sample_id``, 1-10.
    """

    images: np.ndarray
    labels: np.ndarray
    writers: np.ndarray
    samples: np.ndarray


def find_archive(path: str | os.PathLike | None = None) -> str:
    """Resolve where the archive is, or raise :class:`DataSetError` saying where it looked."""
    tried = []
    candidates = []
    if path is not None:
        candidates.append(("the `path` argument", os.fspath(path)))
    elif os.environ.get("NPNET_CHINESE_MNIST"):
        candidates.append(("$NPNET_CHINESE_MNIST", os.environ["NPNET_CHINESE_MNIST"]))
    else:
        candidates += [("the default location", os.path.expanduser(p)) for p in DEFAULT_PATHS]
    for source, p in candidates:
        if os.path.exists(p):
            return p
        tried.append(f"{p} ({source})")
    raise DataSetError("Chinese-MNIST archive not found; looked at: " + "; ".join(tried) + ". " + _HOW_TO_GET)


class _Source:
    """A zip file or an extracted folder, listing member names relative to its root."""

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.isdir(path):
            self.zf = None
            names = []
            for root, _, files in os.walk(path):
                for f in files:
                    names.append(os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/"))
            self.names = sorted(names)
        else:
            try:
                self.zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataSetError(f"{path}: not a readable zip archive ({exc}). {_HOW_TO_GET}") from None
            self.names = sorted(n for n in self.zf.namelist() if not n.endswith("/"))

    def read(self, name: str) -> bytes:
        try:
            if self.zf is not None:
                return self.zf.read(name)
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        except Exception as exc:
            raise DataSetError(f"{self.path}: cannot read {name}: {exc}") from None

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()


def _fingerprint(path: str) -> str:
    """SHA-256 over the archive (or over every file of a folder, names included) plus its size."""
    h = hashlib.sha256()
    size = 0
    files = [path] if not os.path.isdir(path) else sorted(
        os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
    for f in files:
        if os.path.isdir(path):
            h.update(os.path.relpath(f, path).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    return f"{size}-{h.hexdigest()}"


def _cache_dir(cache_dir: str | os.PathLike | None) -> str:
    if cache_dir is not None:
        return os.fspath(cache_dir)
    return os.environ.get("NPNET_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "npnet")


def _read_cache(path: str, key: str) -> ChineseMNIST | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key or int(z["version"]) != _CACHE_VERSION:
                return None
            images, labels, writers, samples = z["images"], z["labels"], z["writers"], z["samples"]
    except Exception:
        return None
    n = labels.shape[0]
    ok = (images.dtype == np.uint8 and images.shape == (n, 64, 64) and labels.shape == writers.shape == samples.shape
          == (n,) and n > 0 and labels.min() >= 0 and labels.max() < 15)
    return ChineseMNIST(images, labels.astype(np.int64), writers.astype(np.int64), samples.astype(np.int64)) if ok else None


def _write_cache(path: str, key: str, data: ChineseMNIST) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), version=np.array(_CACHE_VERSION), images=data.images, labels=data.labels,
                     writers=data.writers, samples=data.samples)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder only costs speed


def _decode(source: _Source) -> ChineseMNIST:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "Reading Chinese-MNIST needs Pillow to decode its JPEGs: pip install 'npnet[datasets]' "
            "(or 'npnet[examples]')"
        ) from None
    path = source.path
    csv_names = [n for n in source.names if n.split("/")[-1] == "chinese_mnist.csv"]
    if len(csv_names) != 1:
        raise DataSetError(f"{path}: expected one chinese_mnist.csv, found {len(csv_names)}. {_HOW_TO_GET}")
    images_by_key: dict[tuple[int, int, int], str] = {}
    for name in source.names:
        m = _NAME.search(name)
        if m:
            key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
            if key in images_by_key:
                raise DataSetError(f"{path}: two images for suite {key[0]}, sample {key[1]}, code {key[2]}: "
                                   f"{images_by_key[key]} and {name}")
            images_by_key[key] = name
    text = source.read(csv_names[0]).decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    required = {"suite_id", "sample_id", "code"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        raise DataSetError(f"{path}: {csv_names[0]} must have columns suite_id,sample_id,code,value,character; "
                           f"found {reader.fieldnames}")
    rows: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int, int]] = set()
    for line, row in enumerate(reader, start=2):
        try:
            key = (int(row["suite_id"]), int(row["sample_id"]), int(row["code"]))
        except (TypeError, ValueError):
            raise DataSetError(f"{path}: {csv_names[0]} line {line}: non-integer id in {row}") from None
        if not 1 <= key[2] <= 15:
            raise DataSetError(f"{path}: {csv_names[0]} line {line}: code {key[2]} is outside 1-15")
        if key in seen:
            raise DataSetError(f"{path}: {csv_names[0]} line {line}: duplicate row for suite {key[0]}, "
                               f"sample {key[1]}, code {key[2]}")
        if key not in images_by_key:
            raise DataSetError(f"{path}: {csv_names[0]} line {line} has no image "
                               f"input_{key[0]}_{key[1]}_{key[2]}.jpg")
        seen.add(key)
        rows.append(key)
    orphans = sorted(set(images_by_key) - seen)
    if orphans:
        raise DataSetError(f"{path}: image {images_by_key[orphans[0]]} has no row in {csv_names[0]} "
                           f"({len(orphans)} such images)")
    if not rows:
        raise DataSetError(f"{path}: {csv_names[0]} has no rows")
    rows.sort()
    images = np.empty((len(rows), 64, 64), dtype=np.uint8)
    for i, key in enumerate(rows):
        name = images_by_key[key]
        try:
            with Image.open(io.BytesIO(source.read(name))) as im:
                im.load()
                mode, size = im.mode, im.size
                arr = np.asarray(im)
        except DataSetError:
            raise
        except Exception as exc:
            raise DataSetError(f"{path}: {name} is not a readable JPEG ({exc})") from None
        if mode != "L" or size != (64, 64):
            raise DataSetError(f"{path}: {name} must be a 64x64 grayscale image, found mode {mode} and size "
                               f"{size[0]}x{size[1]}")
        images[i] = arr
    keys = np.array(rows, dtype=np.int64)
    return ChineseMNIST(images=images, labels=keys[:, 2] - 1, writers=keys[:, 0], samples=keys[:, 1])


def load(path: str | os.PathLike | None = None, *, cache: bool = True,
         cache_dir: str | os.PathLike | None = None) -> ChineseMNIST:
    """Read the whole data set (all 15,000 images with labels, writers and sample ids).

    Parameters
    ----------
    path : str or path, optional
        The ``.zip`` or its extracted folder; see the module docs for where it looks otherwise.
    cache : bool, default True
        Use and refresh the ``.npz`` cache of decoded images.
    cache_dir : str or path, optional
        Folder of the cache (default ``$NPNET_CACHE_DIR`` or ``~/.cache/npnet``).

    Raises
    ------
    DataSetError
        When the archive is missing or a file in it is inconsistent (the message names it).
    ImportError
        When Pillow is not installed and there is no valid cache.
    """
    where = find_archive(path)
    key = _fingerprint(where) if cache else ""
    cache_path = os.path.join(_cache_dir(cache_dir), f"chinese-mnist-{key[:40]}.npz") if cache else ""
    if cache and os.path.exists(cache_path):
        hit = _read_cache(cache_path, key)
        if hit is not None:
            return hit
    source = _Source(where)
    try:
        data = _decode(source)
    finally:
        source.close()
    if cache:
        _write_cache(cache_path, key, data)
    return data


def load_data(path: str | os.PathLike | None = None, *, split: str = "random", test_size: int = 2000, seed: int = 0,
              return_writers: bool = False, cache: bool = True, cache_dir: str | os.PathLike | None = None) -> Any:
    """Train/test split in the style of ``keras.datasets``.

    Parameters
    ----------
    path : str or path, optional
        See :func:`load`.
    split : {"random", "writer"}
        ``"random"``: stratified by class, ``test_size`` images in the test part (the original
        project's 13,000 / 2,000). ``"writer"``: writer-disjoint, whole writers in the test
        part until it holds about ``test_size`` images (13 writers, 1,950 images, for 2,000),
        which measures how the model reads a new person's hand.
    test_size : int, default 2000
    seed : int, default 0
        Seed of the split.
    return_writers : bool, default False
        Also return ``(writers_train, writers_test)``, for writer-disjoint validation splits.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 images of shape (n, 64, 64) and int64 class ids 0-14; with ``return_writers``
        a third pair of writer ids.
    """
    if split not in ("random", "writer"):
        raise ValueError(f"load_data: `split` must be one of ['random', 'writer'], received {split!r}")
    data = load(path, cache=cache, cache_dir=cache_dir)
    if split == "random":
        train, test = stratified_split(data.labels, test_size, seed)
    else:
        train, test = group_split(data.writers, test_size, seed)
    out = ((data.images[train], data.labels[train]), (data.images[test], data.labels[test]))
    if return_writers:
        return out + ((data.writers[train], data.writers[test]),)
    return out

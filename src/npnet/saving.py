"""Saving and loading: one zip file, JSON for structure and ``.npy`` for arrays, no pickle.

Layout of a saved model::

    config.json          format name and version, npnet version, model config,
                         compile config, and a manifest of every array
    weights/0000.npy     one array per parameter or state array, in layer order
    optimizer/0000.npy   optimizer slots (optional)

Why no pickle: unpickling can run arbitrary code, so a model file from the internet
would be a program. Here arrays are read with ``allow_pickle=False`` and layer classes
are looked up in npnet's registry (plus classes registered with
:func:`npnet.register_layer`), never imported by a name taken from the file.

Writes are atomic: the zip is written to a temporary file in the same folder, synced,
then renamed over the target, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._config import floatx
from .layers import base as _base

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "SavedModelError", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MODEL_FORMAT = "npnet.model"
_WEIGHTS_FORMAT = "npnet.weights"
_MAX_CONFIG_BYTES = 16 * 2**20


class SavedModelError(ValueError):
    """A file could not be read as an npnet model or weights file; the message says why."""


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _atomic_write(path: str, entries: list[tuple[str, bytes]]) -> None:
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a directory; give a file path such as 'model.npnet'")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".npnet-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as zf:
                for name, data in entries:
                    zf.writestr(name, data)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _weight_entries(model: Any) -> tuple[list[dict], list[tuple[str, bytes]]]:
    manifest, files = [], []
    i = 0
    for layer in model.layers:
        for key, arr in layer._weight_items():
            fname = f"weights/{i:04d}.npy"
            manifest.append({"layer": layer.name, "key": key, "file": fname,
                             "shape": list(arr.shape), "dtype": str(arr.dtype)})
            files.append((fname, _npy_bytes(arr)))
            i += 1
    return manifest, files


def _compile_config(model: Any) -> dict | None:
    if not model.compiled:
        return None
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "loss": _losses.serialize(model.loss),
        "metrics": [{"class_name": type(m).__name__, "config": m.get_config()} for m in model.metrics],
    }


def _header(model: Any, fmt: str) -> dict[str, Any]:
    from . import __version__

    return {"format": fmt, "format_version": FORMAT_VERSION, "npnet_version": __version__,
            "model": model.get_config()}


def save_model(model: Any, filepath: str | os.PathLike, include_optimizer: bool = True) -> None:
    """Save a model's architecture, weights, compile settings and (optionally) optimizer state.

    Parameters
    ----------
    model : Sequential
        A built model.
    filepath : str or path
        Target file; ``.npnet`` is the conventional suffix.
    include_optimizer : bool, default True
        Also store the optimizer's step count and slots, so training resumes exactly.
    """
    model._require_built("save")
    path = os.fspath(filepath)
    manifest, files = _weight_entries(model)
    header = _header(model, _MODEL_FORMAT)
    header["compile"] = _compile_config(model)
    header["weights"] = manifest
    header["optimizer_state"] = None
    opt = model.optimizer
    if include_optimizer and opt is not None and opt._shapes is not None:
        state = opt.get_state()
        slots: dict[str, list[dict[str, Any]]] = {}
        j = 0
        for slot, arrays in state["slots"].items():
            slots[slot] = []
            for arr in arrays:
                fname = f"optimizer/{j:04d}.npy"
                slots[slot].append({"file": fname, "shape": list(arr.shape), "dtype": str(arr.dtype)})
                files.append((fname, _npy_bytes(arr)))
                j += 1
        header["optimizer_state"] = {"iterations": state["iterations"], "slots": slots}
    _atomic_write(path, [("config.json", json.dumps(header, indent=1).encode("utf-8"))] + files)


def save_weights(model: Any, filepath: str | os.PathLike) -> None:
    """Save only the weights (with the architecture for checking) to one file, atomically."""
    model._require_built("save_weights")
    manifest, files = _weight_entries(model)
    header = _header(model, _WEIGHTS_FORMAT)
    header["weights"] = manifest
    _atomic_write(os.fspath(filepath), [("config.json", json.dumps(header, indent=1).encode("utf-8"))] + files)


class _Reader:
    """Validating reader: every failure becomes a SavedModelError naming the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.isdir(path):
            raise SavedModelError(f"load: {path!r} is a directory, not an npnet file")
        if not os.path.exists(path):
            raise SavedModelError(f"load: no file at {path!r}")
        try:
            self.zf = zipfile.ZipFile(path, "r")
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SavedModelError(f"load: {path!r} is not an npnet file (not a readable zip: {exc})") from None
        self.names = set(self.zf.namelist())
        if "config.json" not in self.names:
            raise SavedModelError(f"load: {path!r} has no config.json; it is not an npnet file")
        info = self.zf.getinfo("config.json")
        if info.file_size > _MAX_CONFIG_BYTES:
            raise SavedModelError(f"load: {path!r}: config.json is implausibly large ({info.file_size} bytes)")
        try:
            self.header = json.loads(self.zf.read("config.json").decode("utf-8"))
        except Exception as exc:
            raise SavedModelError(f"load: {path!r}: config.json is unreadable: {exc}") from None
        if not isinstance(self.header, dict):
            raise SavedModelError(f"load: {path!r}: config.json does not hold an object")
        version = self.header.get("format_version")
        if not isinstance(version, int):
            raise SavedModelError(f"load: {path!r}: config.json has no integer format_version")
        if version > FORMAT_VERSION:
            raise SavedModelError(
                f"load: {path!r} uses format version {version}, newer than this npnet supports "
                f"({FORMAT_VERSION}); upgrade npnet"
            )
        if self.header.get("format") not in (_MODEL_FORMAT, _WEIGHTS_FORMAT):
            raise SavedModelError(f"load: {path!r}: unknown format {self.header.get('format')!r}")

    def array(self, entry: Any, what: str) -> np.ndarray:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise SavedModelError(f"load: {self.path!r}: malformed manifest entry for {what}")
        fname = entry["file"]
        if fname not in self.names:
            raise SavedModelError(f"load: {self.path!r}: array {fname!r} for {what} is missing")
        try:
            arr = np.load(io.BytesIO(self.zf.read(fname)), allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise SavedModelError(
                    f"load: {self.path!r}: {fname!r} holds an object array, which npnet never writes "
                    "and refuses to unpickle") from None
            raise SavedModelError(f"load: {self.path!r}: {fname!r} is not a valid .npy array: {exc}") from None
        except Exception as exc:
            raise SavedModelError(f"load: {self.path!r}: {fname!r} could not be read: {exc}") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
            raise SavedModelError(
                f"load: {self.path!r}: {fname!r} for {what} has dtype {getattr(arr, 'dtype', type(arr))}, "
                "expected a float array")
        if list(arr.shape) != list(entry.get("shape", [])) or str(arr.dtype) != entry.get("dtype"):
            raise SavedModelError(
                f"load: {self.path!r}: {fname!r} for {what} has shape {arr.shape} and dtype {arr.dtype}, "
                f"the manifest says {tuple(entry.get('shape', []))} and {entry.get('dtype')}")
        return arr

    def check_no_extra(self, used: set[str]) -> None:
        extra = sorted(self.names - used - {"config.json"})
        if extra:
            raise SavedModelError(f"load: {self.path!r} holds unexpected files {extra[:5]}; it may have been tampered with")


def _assign_weights(reader: _Reader, model: Any, replace: bool = False) -> set[str]:
    manifest = reader.header.get("weights")
    items = [(layer, key, arr) for layer in model.layers for key, arr in layer._weight_items()]
    if not isinstance(manifest, list) or len(manifest) != len(items):
        n = len(manifest) if isinstance(manifest, list) else "no"
        raise SavedModelError(f"load: {reader.path!r} holds {n} weight arrays, the model has {len(items)}")
    arrays = []
    for entry, (layer, key, target) in zip(manifest, items):
        what = f"layer {layer.name!r} weight {key!r}"
        arr = reader.array(entry, what)
        if arr.shape != target.shape:
            raise SavedModelError(
                f"load: {reader.path!r}: {what} has shape {arr.shape}, the model expects {target.shape}")
        arrays.append(arr)
    for (layer, key, target), arr in zip(items, arrays):
        if replace:
            # The model was built with placeholders (see Layer.add_weight): put real arrays in.
            value = np.array(arr, dtype=floatx())
            (layer.params if key in layer.params else layer.state)[key] = value
            if key in layer.grads:
                layer.grads[key] = np.zeros_like(value)
        else:
            np.copyto(target, arr, casting="unsafe")
    return {e["file"] for e in manifest}


def _build_model(reader: _Reader, custom_objects: dict[str, type] | None) -> Any:
    from .model import Sequential

    config = reader.header.get("model")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise SavedModelError(f"load: {reader.path!r}: config.json has no model description")
    for entry in config["layers"]:
        name = entry.get("class_name") if isinstance(entry, dict) else None
        if not (custom_objects and name in custom_objects) and name not in _base.layer_classes():
            raise SavedModelError(
                f"load: {reader.path!r} uses unknown layer class {name!r}; register it with "
                "npnet.register_layer or pass custom_objects")
    if config.get("input_shape") is None:
        raise SavedModelError(f"load: {reader.path!r}: the saved model has no input shape")
    _base._SKIP_INIT[0] = True
    try:
        model = Sequential.from_config(config, custom_objects=custom_objects)
    finally:
        _base._SKIP_INIT[0] = False
    return model


def load_model(filepath: str | os.PathLike, custom_objects: dict[str, type] | None = None,
               compile: bool = True) -> Any:
    """Load a model written by :func:`save_model`.

    Parameters
    ----------
    filepath : str or path
    custom_objects : dict of str to type, optional
        Your own layer classes by class name (alternatively use :func:`npnet.register_layer`).
    compile : bool, default True
        Restore the compile settings and optimizer state, so ``fit`` continues exactly.

    Raises
    ------
    SavedModelError
        For anything but a valid file: not a zip, truncated, missing or extra arrays, wrong
        shapes or dtypes, object arrays, unknown layer classes, a newer format version.
    """
    path = os.fspath(filepath)
    reader = _Reader(path)
    try:
        with reader.zf:
            if reader.header.get("format") != _MODEL_FORMAT:
                raise SavedModelError(f"load_model: {path!r} is a weights-only file; use model.load_weights")
            model = _build_model(reader, custom_objects)
            used = _assign_weights(reader, model, replace=True)
            comp = reader.header.get("compile")
            state = reader.header.get("optimizer_state")
            if compile and comp is not None:
                metrics = [_metric_from(m) for m in comp.get("metrics", [])]
                model.compile(optimizer=_optimizers.get(comp["optimizer"]), loss=_losses.get(comp["loss"]),
                              metrics=metrics)
                if state is not None:
                    slots = {}
                    for slot, entries in state["slots"].items():
                        slots[slot] = [reader.array(e, f"optimizer slot {slot!r}") for e in entries]
                        used |= {e["file"] for e in entries}
                    iterations = state["iterations"]
                    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
                        raise SavedModelError(f"load: {path!r}: invalid optimizer iterations {iterations!r}")
                    model.optimizer.set_state({"iterations": iterations, "slots": slots}, model._trainable()[0])
            elif state is not None:
                used |= {e["file"] for entries in state["slots"].values() for e in entries}
            reader.check_no_extra(used)
    except SavedModelError:
        raise
    except Exception as exc:
        raise SavedModelError(f"load: {path!r} is corrupt or inconsistent: {type(exc).__name__}: {exc}") from None
    return model


def _metric_from(entry: Any) -> Any:
    classes = {c.__name__: c for c in vars(_metrics).values() if isinstance(c, type) and issubclass(c, _metrics.Metric)}
    name = entry.get("class_name") if isinstance(entry, dict) else None
    if name not in classes:
        raise SavedModelError(f"load: unknown metric class {name!r}")
    return classes[name].from_config(entry.get("config", {}))


def load_weights(model: Any, filepath: str | os.PathLike) -> None:
    """Load weights from a file written by :func:`save_weights` or :func:`save_model`.

    The model must have the same architecture; an unbuilt model is built from the input
    shape stored in the file.
    """
    path = os.fspath(filepath)
    reader = _Reader(path)
    try:
        with reader.zf:
            if not model.built:
                shape = (reader.header.get("model") or {}).get("input_shape")
                if shape is None:
                    raise SavedModelError(f"load_weights: build the model first; {path!r} has no input shape")
                model.build((None,) + tuple(shape))
            used = _assign_weights(reader, model)
            state = reader.header.get("optimizer_state")
            if state:
                used |= {e["file"] for entries in state["slots"].values() for e in entries}
            reader.check_no_extra(used)
    except SavedModelError:
        raise
    except Exception as exc:
        raise SavedModelError(f"load_weights: {path!r} is corrupt or inconsistent: {type(exc).__name__}: {exc}") from None

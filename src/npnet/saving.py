"""Saving and loading: one zip file, JSON for structure and ``.npy`` for arrays, no pickle.

Layout of a saved model::

    config.json          format name and version, npnet version, model class and
                         config, compile config, and a manifest of every array
    weights/0000.npy     one array per parameter or state array
    optimizer/0000.npy   optimizer slots (optional)

Every array in the manifest carries its *path*: the names of the layers that hold it
and the weight's name (``block/dense/kernel``). Weights load by path, never by position,
so a model whose layers were reordered in code, or rebuilt in another process, still
finds its weights. Inside Sequential and functional models a layer's path segment is its
name; inside a subclassed model or composite layer it is the attribute that holds it
(``blocks/0`` for the first layer of a list ``self.blocks``).

Format version 2 stores any model (Sequential, functional, subclassed); files of
version 1 (npnet 0.1, Sequential only) still load. Format version 3 marks files written
since ``activation="leaky_relu"`` means Keras' function (slope 0.2); in older files that
name meant the ``LeakyReLU`` layer's default slope 0.3, and they load with 0.3 (see
:func:`load_model`).

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
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _tape
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._config import floatx
from .layers import base as _base

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "SavedModelError", "FORMAT_VERSION",
           "register_keras_serializable", "get_custom_objects"]

FORMAT_VERSION = 3
_MODEL_FORMAT = "npnet.model"
_WEIGHTS_FORMAT = "npnet.weights"
_MAX_CONFIG_BYTES = 16 * 2**20


class SavedModelError(ValueError):
    """A file could not be read as an npnet model or weights file; the message says why."""


# Metric classes and metric functions registered with register_keras_serializable, by name.
_METRIC_CLASSES: dict[str, type] = {}
_METRIC_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _check_bool(value: Any, argument: str, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: `{argument}` must be True or False, received {value!r}")
    return bool(value)


def _check_target(path: str, overwrite: Any, where: str) -> None:
    """Keras asks on the terminal before overwriting when ``overwrite=False``; npnet refuses."""
    if not _check_bool(overwrite, "overwrite", where) and os.path.exists(path):
        raise FileExistsError(
            f"{where}: {path!r} exists and overwrite=False; remove it, choose another path or pass overwrite=True")


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
    structural = [p for p, _, _ in model._weight_entries(structural=True)]
    for i, ((path, layer, key), spath) in enumerate(zip(model._weight_entries(), structural)):
        arr = model._array(layer, key)
        fname = f"weights/{i:04d}.npy"
        manifest.append({"path": path, "structural_path": spath, "file": fname, "shape": list(arr.shape),
                         "dtype": str(arr.dtype)})
        files.append((fname, _npy_bytes(arr)))
    return manifest, files


def _param_paths(model: Any, structural: bool = False) -> list[str]:
    """Paths of the trainable parameters, in the order the optimizer holds their slots."""
    paths = {(id(layer), key): path for path, layer, key in model._weight_entries(structural=structural)}
    return [paths[(id(layer), key)] for layer, key in model._trainable_entries()]


def _model_config(model: Any) -> dict[str, Any]:
    from .layers.base import get_layer_class
    from .models import Functional, Sequential

    cls = type(model)
    if not isinstance(model, (Functional, Sequential)):
        try:
            registered = get_layer_class(cls.__name__) is cls
        except ValueError:
            registered = False
        if not registered:
            raise ValueError(
                f"save: {cls.__name__} is a subclassed model; register it with @npnet.register_layer so that "
                "load_model can find it (or use save_weights)")
        try:
            cls.from_config(model.get_config())
        except Exception as exc:
            raise ValueError(
                f"save: {cls.__name__}.from_config(model.get_config()) fails ({type(exc).__name__}: {exc}); "
                "give the class a get_config() that returns its constructor arguments (or use save_weights)"
            ) from None
    return {"class_name": cls.__name__, "config": model.get_config(),
            "build_shapes": _json_shapes(model._build_shapes)}


def _json_shapes(shapes: Any) -> Any:
    if isinstance(shapes, dict):
        return {"dict": {str(k): _json_shapes(v) for k, v in shapes.items()}}
    if isinstance(shapes, list):
        return [_json_shapes(s) for s in shapes]
    if isinstance(shapes, tuple):
        return {"shape": [None if d is None else int(d) for d in shapes]}
    return None


def _shapes_from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_shapes_from_json(v) for v in value]
    if isinstance(value, dict) and set(value) == {"shape"} and isinstance(value["shape"], list):
        return tuple(value["shape"])
    if isinstance(value, dict) and set(value) == {"dict"} and isinstance(value["dict"], dict):
        return {k: _shapes_from_json(v) for k, v in value["dict"].items()}
    raise SavedModelError(f"load: malformed build shapes {value!r}")


def _compile_config(model: Any) -> dict | None:
    if not model.compiled or model._heads is None:
        return None
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "heads": [{"name": h.name, "loss": None if h.loss is None else _losses.serialize(h.loss), "weight": h.weight,
                   "metrics": [{"class_name": type(m).__name__, "config": m.get_config()} for m in h.metrics],
                   "weighted_metrics": [{"class_name": type(m).__name__, "config": m.get_config()}
                                        for m in h.weighted]}
                  for h in model._heads],
    }


def _loss_from(entry: Any, custom_objects: dict[str, Any] | None) -> Any:
    """The loss a file names: a class in ``custom_objects`` first, then npnet's and the
    registered ones."""
    if entry is None:
        return None
    name = entry.get("class_name") if isinstance(entry, dict) else None
    cls = (custom_objects or {}).get(name) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, _losses.Loss):
        return cls.from_config(entry.get("config") or {})
    if isinstance(name, str) and name not in _losses._BY_CLASS:
        raise SavedModelError(
            f"load: unknown loss class {name!r}; pass your own loss classes in custom_objects "
            f"(load_model(..., custom_objects={{{name!r}: ...}})), register them with "
            "@npnet.saving.register_keras_serializable(), or load with compile=False")
    return _losses.get(entry)


def _compile_from(model: Any, comp: Any, custom_objects: dict[str, Any] | None = None) -> None:
    """Compile ``model`` as the file says (format 1: one loss; format 2: one entry per output)."""
    if not isinstance(comp, dict):
        raise SavedModelError("load: malformed compile settings")
    optimizer = _optimizers.get(comp["optimizer"])
    if "heads" not in comp:
        metrics = [_metric_from(m, custom_objects) for m in comp.get("metrics", [])]
        model.compile(optimizer=optimizer, loss=_loss_from(comp["loss"], custom_objects), metrics=metrics)
        return
    heads = comp["heads"]
    if not isinstance(heads, list) or not heads or not all(isinstance(h, dict) for h in heads):
        raise SavedModelError("load: malformed compile settings")
    def metrics_of(h: dict, what: str) -> list:
        return [_metric_from(m, custom_objects) for m in h.get(what, [])]

    if len(heads) == 1:
        h = heads[0]
        model.compile(optimizer=optimizer, loss=_loss_from(h["loss"], custom_objects), loss_weights=None if h["weight"] == 1.0
                      else [h["weight"]], metrics=metrics_of(h, "metrics"),
                      weighted_metrics=metrics_of(h, "weighted_metrics"))
        return
    model.compile(
        optimizer=optimizer,
        loss={h["name"]: _loss_from(h["loss"], custom_objects) for h in heads},
        loss_weights={h["name"]: h["weight"] for h in heads},
        metrics={h["name"]: metrics_of(h, "metrics") for h in heads},
        weighted_metrics={h["name"]: metrics_of(h, "weighted_metrics") for h in heads},
    )


def _header(model: Any, fmt: str) -> dict[str, Any]:
    from . import __version__

    if fmt == _MODEL_FORMAT:
        description = _model_config(model)
    else:  # weights only: the class and input shapes, for building an unbuilt model
        description = {"class_name": type(model).__name__, "build_shapes": _json_shapes(model._build_shapes)}
    return {"format": fmt, "format_version": FORMAT_VERSION, "npnet_version": __version__, "model": description}


def save_model(model: Any, filepath: str | os.PathLike, overwrite: bool = True, zipped: bool | None = None, *,
               include_optimizer: bool = True) -> None:
    """Save a model's architecture, weights, compile settings and (optionally) optimizer state.

    Parameters
    ----------
    model : Model
        A built model: Sequential, functional, or a subclassed model whose class is
        registered (:func:`npnet.register_layer`) and has a ``get_config``.
    filepath : str or path
        Target file; ``.npnet`` is the conventional suffix.
    overwrite : bool, default True
        Replace an existing file. With ``False`` an existing file is an error (Keras
        asks on the terminal instead).
    zipped : None or True
        npnet always writes one zip file; ``zipped=False`` (Keras' unzipped folder) is
        refused.
    include_optimizer : bool, default True
        Keyword only. Also store the optimizer's step count and slots, so training
        resumes exactly.

    Raises
    ------
    FileExistsError
        If ``overwrite=False`` and ``filepath`` exists.

    Examples
    --------
    >>> import os, tempfile, npnet
    >>> model = npnet.Sequential([npnet.Input((3,)), npnet.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npnet")
    >>> npnet.saving.save_model(model, path)
    >>> npnet.saving.save_model(model, path, overwrite=False)
    Traceback (most recent call last):
    ...
    FileExistsError: save: '...model.npnet' exists and overwrite=False; remove it, choose another path or pass overwrite=True
    """
    if zipped is not None and not isinstance(zipped, (bool, np.bool_)):
        raise TypeError(f"save: `zipped` must be None, True or False, received {zipped!r}")
    if zipped is not None and not zipped:
        raise ValueError("save: npnet always writes one zip file; zipped=False (an unzipped folder, as Keras "
                         "writes for the Hugging Face Hub) is not supported; leave `zipped` out")
    path = os.fspath(filepath)
    _check_target(path, overwrite, "save")
    _check_bool(include_optimizer, "include_optimizer", "save")
    if not model.built:
        raise ValueError(f"save: model {model.name!r} is not built; call fit(), build() or the model on data first")
    manifest, files = _weight_entries(model)
    header = _header(model, _MODEL_FORMAT)
    header["compile"] = _compile_config(model)
    header["weights"] = manifest
    header["optimizer_state"] = None
    opt = model.optimizer
    if include_optimizer and opt is not None and opt._shapes is not None:
        state = opt.get_state()
        slots: dict[str, list[dict[str, Any]]] = {}
        paths = _param_paths(model)
        j = 0
        for slot, arrays in state["slots"].items():
            slots[slot] = []
            if len(arrays) != len(paths):
                raise ValueError(
                    f"save: the optimizer holds {len(arrays)} {slot!r} slots for {len(paths)} trainable weights; "
                    "fit the model again after changing which layers are trainable")
            for arr, ppath, spath in zip(arrays, paths, _param_paths(model, structural=True)):
                fname = f"optimizer/{j:04d}.npy"
                slots[slot].append({"path": ppath, "structural_path": spath, "file": fname, "shape": list(arr.shape),
                                    "dtype": str(arr.dtype)})
                files.append((fname, _npy_bytes(arr)))
                j += 1
        header["optimizer_state"] = {"iterations": state["iterations"], "slots": slots}
    _atomic_write(path, [("config.json", json.dumps(header, indent=1).encode("utf-8"))] + files)


def save_weights(model: Any, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Save only the weights (with the architecture for checking) to one file, atomically.

    Parameters
    ----------
    model : Model
        A built model.
    filepath : str or path
        Target file.
    overwrite : bool, default True
        Replace an existing file; with ``False`` an existing file raises
        :class:`FileExistsError` (Keras asks on the terminal instead).
    """
    path = os.fspath(filepath)
    _check_target(path, overwrite, "save_weights")
    if not model.built:
        raise ValueError(f"save_weights: model {model.name!r} is not built; call fit(), build() or the model on data first")
    manifest, files = _weight_entries(model)
    header = _header(model, _WEIGHTS_FORMAT)
    header["weights"] = manifest
    _atomic_write(path, [("config.json", json.dumps(header, indent=1).encode("utf-8"))] + files)


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
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
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


def _manifest_paths(reader: _Reader, structural: bool = False) -> dict[str, Any]:
    """Manifest entries by weight path (format 1 named them by layer and key), or by
    structural path (layers named by class and rank in their container)."""
    manifest = reader.header.get("weights")
    if not isinstance(manifest, list):
        raise SavedModelError(f"load: {reader.path!r}: config.json has no weights manifest")
    v1_structural: dict[str, str] = {}
    model = reader.header.get("model")
    if structural and reader.header.get("format_version") == 1 and isinstance(model, dict):
        counts: dict[str, int] = {}
        for layer in model.get("layers") or []:
            if isinstance(layer, dict) and isinstance(layer.get("config"), dict):
                kind = _base._snake(str(layer.get("class_name")))
                n = counts.get(kind, 0)
                counts[kind] = n + 1
                v1_structural[str(layer["config"].get("name"))] = kind if n == 0 else f"{kind}_{n}"
    by_path: dict[str, Any] = {}
    for entry in manifest:
        if not isinstance(entry, dict):
            raise SavedModelError(f"load: {reader.path!r}: malformed manifest entry {entry!r}")
        path = entry.get("structural_path" if structural else "path")
        if path is None and isinstance(entry.get("layer"), str) and isinstance(entry.get("key"), str):
            layer = entry["layer"]
            path = f"{v1_structural.get(layer, layer) if structural else layer}/{entry['key']}"
        if not isinstance(path, str):
            raise SavedModelError(f"load: {reader.path!r}: manifest entry without a weight path: {entry!r}")
        if path in by_path:
            raise SavedModelError(f"load: {reader.path!r}: weight {path!r} appears twice in the manifest")
        by_path[path] = entry
    return by_path


def _assign_weights(reader: _Reader, model: Any, replace: bool = False, skip_mismatch: bool = False) -> set[str]:
    """Match the file's arrays to the model's weights by path: layer names first; if the
    names differ (automatic names of another instance of the same architecture), by the
    structural path, where each layer is named by its class and rank in its container.

    With ``skip_mismatch``, as in Keras, a layer is skipped (with a warning naming it) when
    one of its weights is missing from the file or has another shape there; the other
    layers load, and arrays of the file that match no weight are ignored."""
    by_path = _manifest_paths(reader)
    items = model._weight_entries()
    wanted = [path for path, _, _ in items]
    missing = [p for p in wanted if p not in by_path]
    extra = sorted(set(by_path) - set(wanted))
    if missing or extra:
        structural = [p for p, _, _ in model._weight_entries(structural=True)]
        by_structure = _manifest_paths(reader, structural=True)
        if len(by_structure) == len(by_path) and set(by_structure) == set(structural):
            by_path = {p: by_structure[sp] for p, sp in zip(wanted, structural)}
            missing, extra = [], []
        elif skip_mismatch and sum(sp in by_structure for sp in structural) > len(wanted) - len(missing):
            by_path = {p: by_structure[sp] for p, sp in zip(wanted, structural) if sp in by_structure}
    hint = "" if skip_mismatch else "; pass skip_mismatch=True to load the layers that match"
    if (missing or extra) and not skip_mismatch:
        raise SavedModelError(
            f"load: {reader.path!r} holds {len(by_path)} weight arrays, the model has {len(items)}; "
            f"missing from the file: {missing[:5]}, not in the model: {extra[:5]}{hint}")
    arrays: list[np.ndarray | None] = []
    problems: dict[int, list[str]] = {}  # id(layer) -> what does not match
    for path, layer, key in items:
        target = model._array(layer, key)
        what = f"weight {path!r}"
        if path not in by_path:
            problems.setdefault(id(layer), []).append(f"{key}: not in the file")
            arrays.append(None)
            continue
        arr = reader.array(by_path[path], what)
        if arr.shape != target.shape:
            if not skip_mismatch:
                raise SavedModelError(
                    f"load: {reader.path!r}: {what} has shape {arr.shape}, the model expects {target.shape}{hint}")
            problems.setdefault(id(layer), []).append(
                f"{key}: shape {arr.shape} in the file, {target.shape} in the model")
        arrays.append(arr)
    for (_, layer, key), found in zip(items, arrays):
        if found is None or id(layer) in problems:
            continue
        arr = found
        target = model._array(layer, key)
        if replace:
            # The model was built with placeholders (see Layer.add_weight): put real arrays in.
            value = np.array(arr, dtype=floatx())
            (layer.params if key in layer.params else layer.state)[key] = value
            if key in layer.grads:
                layer.grads[key] = np.zeros_like(value)
        else:
            np.copyto(target, arr, casting="unsafe")
    if skip_mismatch:
        used_files = {by_path[p]["file"] for p in wanted if p in by_path}
        unused = [p for p, e in _manifest_paths(reader).items() if e["file"] not in used_files]
        _warn_skipped(reader.path, items, problems, unused)
        return {e["file"] for e in _manifest_paths(reader).values()}
    return {e["file"] for e in by_path.values()}


def _warn_skipped(path: str, items: list[tuple[str, Any, str]], problems: dict[int, list[str]],
                  unused: list[str]) -> None:
    layers: dict[int, str] = {}
    for wpath, layer, _ in items:
        if id(layer) in problems:
            layers.setdefault(id(layer), wpath.rsplit("/", 1)[0])
    parts = []
    if layers:
        listed = "; ".join(f"{name!r} ({'; '.join(problems[i])})" for i, name in layers.items())
        parts.append(f"skipped {len(layers)} layer{'s' if len(layers) > 1 else ''} whose weights do not match "
                     f"and kept their current weights: {listed}")
    if unused:
        parts.append(f"ignored {len(unused)} weights in the file that match no weight of the model: {unused[:10]}")
    if parts:
        warnings.warn(f"load_weights: {path!r} (skip_mismatch=True): " + "; ".join(parts), UserWarning, stacklevel=4)


def _class_names(config: Any) -> list[Any]:
    """Every layer ``class_name`` in a (nested) model config (initializers, regularizers and
    constraints are looked up by their own modules)."""
    found = []
    if isinstance(config, dict):
        if "class_name" in config:
            found.append(config["class_name"])
        for k, v in config.items():
            if not (isinstance(k, str) and k.endswith(("_initializer", "_regularizer", "_constraint"))):
                found.extend(_class_names(v))
    elif isinstance(config, list):
        for v in config:
            found.extend(_class_names(v))
    return found


def _keep_old_leaky_relu(entry: Any, custom_objects: dict[str, Any] | None) -> Any:
    """A config from a file of format 1 or 2 with every ``activation="leaky_relu"`` made
    explicit as the slope it had then (0.3, the LeakyReLU layer's default): in a Dense,
    Conv2D or other layer with an ``activation`` argument it becomes
    ``{"class_name": "LeakyReLU", "config": {"negative_slope": 0.3}}``, and an
    ``Activation("leaky_relu")`` layer becomes a ``LeakyReLU`` layer of the same name."""
    from .layers.activation import _Activated
    from .layers.core import Activation

    if isinstance(entry, list):
        return [_keep_old_leaky_relu(v, custom_objects) for v in entry]
    if not isinstance(entry, dict):
        return entry
    out = {k: _keep_old_leaky_relu(v, custom_objects) for k, v in entry.items()}
    config, name = out.get("config"), out.get("class_name")
    if isinstance(config, dict) and isinstance(name, str) and config.get("activation") == "leaky_relu":
        cls = (custom_objects or {}).get(name) or _base.layer_classes().get(name)
        old = {"negative_slope": 0.3}
        if isinstance(cls, type) and issubclass(cls, Activation):
            kept = {k: config[k] for k in ("name", "trainable") if k in config}
            return {**out, "class_name": "LeakyReLU", "config": {**kept, **old}}
        if isinstance(cls, type) and issubclass(cls, _Activated):
            return {**out, "config": {**config, "activation": {"class_name": "LeakyReLU", "config": old}}}
    return out


def _build_model(reader: _Reader, custom_objects: dict[str, Any] | None) -> Any:
    from .models import Sequential
    from .models.sequential import _layer_from

    entry = reader.header.get("model")
    version = reader.header.get("format_version")
    if version == 1:  # npnet 0.1: a Sequential config
        if not isinstance(entry, dict) or not isinstance(entry.get("layers"), list):
            raise SavedModelError(f"load: {reader.path!r}: config.json has no model description")
        if entry.get("input_shape") is None:
            raise SavedModelError(f"load: {reader.path!r}: the saved model has no input shape")
        entry = {"class_name": "Sequential", "config": entry, "build_shapes": None}
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise SavedModelError(f"load: {reader.path!r}: config.json has no model description")
    if version < 3:
        entry = _keep_old_leaky_relu(entry, custom_objects)
    for name in _class_names(entry):
        if not (custom_objects and name in custom_objects) and name not in _base.layer_classes():
            raise SavedModelError(
                f"load: {reader.path!r} uses unknown layer class {name!r}; register it with "
                "npnet.register_layer or pass custom_objects")
    with _tape.skip_init():
        model = _layer_from({"class_name": entry["class_name"], "config": entry["config"]}, custom_objects)
        if not model.built:
            shapes = entry.get("build_shapes")
            if shapes is None:
                raise SavedModelError(f"load: {reader.path!r}: the saved model has no input shape")
            model.build(_shapes_from_json(shapes))
    from .models import Model

    if not isinstance(model, Model) and not isinstance(model, Sequential):
        raise SavedModelError(f"load: {reader.path!r}: {entry['class_name']!r} is a layer, not a model")
    return model


def load_model(filepath: str | os.PathLike, custom_objects: dict[str, Any] | None = None,
               compile: bool = True) -> Any:
    """Load a model written by :func:`save_model`.

    Parameters
    ----------
    filepath : str or path
    custom_objects : dict of str to class or function, optional
        Your own layer, loss and metric classes by class name, and metric functions
        (``compile(metrics=[my_metric])``) by function name; they take precedence over
        classes and functions registered with :func:`register_keras_serializable` (which
        need no entry here).
    compile : bool, default True
        Restore the compile settings and optimizer state, so ``fit`` continues exactly.

    Raises
    ------
    SavedModelError
        For anything but a valid file: not a zip, truncated, missing or extra arrays, wrong
        shapes or dtypes, object arrays, unknown layer classes, a newer format version.

    Notes
    -----
    In files written before format version 3, ``activation="leaky_relu"`` meant slope 0.3;
    such layers load with that slope, stored explicitly as
    ``{"class_name": "LeakyReLU", "config": {"negative_slope": 0.3}}`` (an
    ``Activation("leaky_relu")`` layer loads as a ``LeakyReLU`` layer of the same name),
    so the model computes what it computed when it was saved, and saving it again keeps
    that slope.
    """
    if not isinstance(filepath, (str, bytes, os.PathLike)):
        raise TypeError(f"load_model: `filepath` must be a str or path, received {filepath!r} of type "
                        f"{type(filepath).__name__}")
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
                _compile_from(model, comp, custom_objects)
                if state is not None:
                    slots = {}
                    paths = (_param_paths(model), _param_paths(model, structural=True))
                    for slot, entries in state["slots"].items():
                        entries = _order_slots(reader, entries, paths, slot)
                        slots[slot] = [reader.array(e, f"optimizer slot {slot!r}") for e in entries]
                        used |= {e["file"] for e in entries}
                    iterations = state["iterations"]
                    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
                        raise SavedModelError(f"load: {path!r}: invalid optimizer iterations {iterations!r}")
                    model.optimizer.set_state({"iterations": iterations, "slots": slots}, model.trainable_weights)
            elif state is not None:
                used |= {e["file"] for entries in state["slots"].values() for e in entries}
            reader.check_no_extra(used)
    except SavedModelError:
        raise
    except Exception as exc:
        raise SavedModelError(f"load: {path!r} is corrupt or inconsistent: {type(exc).__name__}: {exc}") from None
    return model


def _order_slots(reader: _Reader, entries: Any, paths: tuple[list[str], list[str]], slot: str) -> list[Any]:
    """Optimizer slot entries in the order of the model's trainable weights: by path, or
    by structural path as the weights themselves (format 1 stored them in that order)."""
    if not isinstance(entries, list):
        raise SavedModelError(f"load: {reader.path!r}: malformed optimizer slot {slot!r}")
    if all(isinstance(e, dict) and "path" not in e for e in entries):
        return entries
    for key, wanted in zip(("path", "structural_path"), paths):
        by_path = {e.get(key): e for e in entries if isinstance(e, dict)}
        if len(by_path) == len(entries) and sorted(map(str, by_path)) == sorted(wanted):
            return [by_path[p] for p in wanted]
    raise SavedModelError(f"load: {reader.path!r}: optimizer slot {slot!r} does not match the model's trainable weights")


def _metric_from(entry: Any, custom_objects: dict[str, Any] | None = None) -> Any:
    """The metric a file describes. Classes and metric functions are looked up in
    ``custom_objects`` first, then among those registered with
    :func:`register_keras_serializable`, then among npnet's own."""
    custom = custom_objects or {}
    classes = {c.__name__: c for c in vars(_metrics).values() if isinstance(c, type) and issubclass(c, _metrics.Metric)}
    classes.update(_METRIC_CLASSES)
    classes.update({k: c for k, c in custom.items() if isinstance(c, type) and issubclass(c, _metrics.Metric)})
    name = entry.get("class_name") if isinstance(entry, dict) else None
    if name not in classes:
        raise SavedModelError(
            f"load: unknown metric class {name!r}; pass your own metric classes in custom_objects "
            f"(load_model(..., custom_objects={{{name!r}: ...}})), register them with "
            "@npnet.saving.register_keras_serializable(), or load with compile=False")
    cls, config = classes[name], entry.get("config") or {}
    fn = config.get("fn") if isinstance(config, dict) else None
    if cls is _metrics.MeanMetricWrapper and isinstance(fn, str):
        from .metrics import _functions

        found = custom.get(fn)
        if found is None or isinstance(found, type) or not callable(found):
            found = _METRIC_FUNCTIONS.get(fn)
        if found is None and fn not in _functions.BY_NAME:
            raise SavedModelError(
                f"load: the model was compiled with the metric function {fn!r}, which a file names but cannot "
                f"hold; pass it as load_model(..., custom_objects={{{fn!r}: ...}}), register it with "
                "@npnet.saving.register_keras_serializable(), or load with compile=False")
        if found is not None:
            return cls(found, **{k: v for k, v in config.items() if k != "fn"})
    return cls.from_config(config)


def _stored_shapes(reader: _Reader) -> Any:
    entry = reader.header.get("model") or {}
    if reader.header.get("format_version") == 1:
        shape = entry.get("input_shape")
        if shape is None:
            raise SavedModelError(f"load_weights: build the model first; {reader.path!r} has no input shape")
        return (None,) + tuple(shape)
    shapes = entry.get("build_shapes")
    if shapes is None:
        raise SavedModelError(f"load_weights: build the model first; {reader.path!r} has no input shape")
    return _shapes_from_json(shapes)


def load_weights(model: Any, filepath: str | os.PathLike, skip_mismatch: bool = False) -> None:
    """Load weights from a file written by :func:`save_weights` or :func:`save_model`.

    Weights are matched by path (layer names and weight name), never by position. The
    model must hold the same weights; an unbuilt model is built from the input shapes
    stored in the file.

    Parameters
    ----------
    model : Model
    filepath : str or path
    skip_mismatch : bool, default False
        As in Keras: skip each layer whose weights do not match the file (a weight missing
        from the file, or of another shape there), with a warning naming the layers and
        weights, and load the others. Arrays of the file that match no weight of the
        model are then ignored (also with a warning). With ``False`` any mismatch raises
        :class:`SavedModelError` and the model is left unchanged.
    """
    path = os.fspath(filepath)
    skip_mismatch = _check_bool(skip_mismatch, "skip_mismatch", "load_weights")
    reader = _Reader(path)
    try:
        with reader.zf:
            if not model.built:
                model.build(_stored_shapes(reader))
            used = _assign_weights(reader, model, skip_mismatch=skip_mismatch)
            state = reader.header.get("optimizer_state")
            if state:
                used |= {e["file"] for entries in state["slots"].values() for e in entries}
            reader.check_no_extra(used)
    except SavedModelError:
        raise
    except Exception as exc:
        raise SavedModelError(f"load_weights: {path!r} is corrupt or inconsistent: {type(exc).__name__}: {exc}") from None


def _builtin_metric_names() -> tuple[set[str], set[str]]:
    from .metrics import _functions

    classes = {c.__name__ for c in vars(_metrics).values()
               if isinstance(c, type) and issubclass(c, _metrics.Metric) and c.__module__.startswith("npnet.")}
    return classes, set(_functions.BY_NAME)


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Any:
    """Keras' decorator for making a class or function loadable by name.

    What it registers, by kind:

    - a layer or model class (subclass of :class:`npnet.layers.Layer`): as
      :func:`npnet.register_layer` does;
    - a loss class (subclass of :class:`npnet.losses.Loss`): as
      :func:`npnet.losses.register_loss` does;
    - a metric class (subclass of :class:`npnet.metrics.Metric`) or a metric function
      ``fn(y_true, y_pred)``: :func:`load_model` finds it without ``custom_objects``;
    - a regularizer or constraint class: returned unchanged, since subclasses of
      :class:`npnet.regularizers.Regularizer` and :class:`npnet.constraints.Constraint`
      are found by class name anyway.

    Parameters
    ----------
    package : str, default "Custom"
        Accepted for Keras compatibility; npnet registers objects by their own name alone.
    name : str, optional
        Must be ``None`` or the object's ``__name__``: a saved file names a class by its
        class name and a function by its function name.

    Returns
    -------
    callable
        A decorator that registers the object and returns it unchanged.

    Raises
    ------
    TypeError
        If the decorated object is none of the above.
    ValueError
        If ``name`` differs from the object's name, or the name belongs to one of npnet's
        own losses, metrics or metric functions.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> @npnet.saving.register_keras_serializable(package="MyLayers")
    ... class Twice(npnet.layers.Layer):
    ...     def forward(self, x, training=False):
    ...         return 2 * x, ()
    ...     def backward(self, cache, dy):
    ...         return 2 * dy
    >>> npnet.layers.get_layer_class("Twice") is Twice
    True
    >>> @npnet.saving.register_keras_serializable()
    ... def max_abs_error(y_true, y_pred):
    ...     return np.max(np.abs(np.asarray(y_true) - np.asarray(y_pred)), axis=-1)
    >>> npnet.saving.get_custom_objects()["max_abs_error"] is max_abs_error
    True
    """
    if isinstance(package, type) or (callable(package) and not isinstance(package, str)):
        return register_keras_serializable()(package)  # used without parentheses
    if not isinstance(package, str):
        raise TypeError(f"register_keras_serializable: `package` must be a string, received {package!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_keras_serializable: `name` must be a string or None, received {name!r}")

    def decorate(obj: Any) -> Any:
        from . import constraints as _constraints
        from . import regularizers as _regularizers

        is_class = isinstance(obj, type)
        is_function = not is_class and callable(obj) and isinstance(getattr(obj, "__name__", None), str)
        kinds = (_base.Layer, _losses.Loss, _metrics.Metric, _regularizers.Regularizer, _constraints.Constraint)
        if not ((is_class and issubclass(obj, kinds)) or is_function):
            raise TypeError(
                "register_keras_serializable: npnet registers subclasses of npnet.layers.Layer (layers and "
                "models), npnet.losses.Loss, npnet.metrics.Metric, npnet.regularizers.Regularizer and "
                f"npnet.constraints.Constraint, and metric functions; received {obj!r}")
        if name is not None and name != obj.__name__:
            raise ValueError(
                f"register_keras_serializable: npnet saves an object under its own name {obj.__name__!r}; "
                f"received name={name!r} (leave `name` out)")
        if is_function:
            if obj.__name__ in _builtin_metric_names()[1]:
                raise ValueError(f"register_keras_serializable: the name {obj.__name__!r} belongs to npnet's own "
                                 "metric function; give yours another name")
            _METRIC_FUNCTIONS[obj.__name__] = obj
            return obj
        if issubclass(obj, _base.Layer):
            return _base.register_layer(obj)
        if issubclass(obj, _losses.Loss):
            return _losses.register_loss(obj)
        if issubclass(obj, _metrics.Metric):
            if obj.__name__ in _builtin_metric_names()[0] and not obj.__module__.startswith("npnet."):
                raise ValueError(f"register_keras_serializable: the name {obj.__name__!r} belongs to npnet's own "
                                 "metric; give yours another name")
            _METRIC_CLASSES[obj.__name__] = obj
        return obj  # regularizers and constraints are found by class name

    return decorate


def get_custom_objects() -> dict[str, Any]:
    """The classes and functions registered by the user, by name (a copy).

    Layer and model classes (registered with :func:`register_keras_serializable` or
    :func:`npnet.register_layer`), loss classes (or :func:`npnet.losses.register_loss`),
    metric classes and metric functions; npnet's own are not listed.

    Examples
    --------
    >>> import npnet
    >>> "Dense" in npnet.saving.get_custom_objects()
    False
    """
    found: dict[str, Any] = {k: c for k, c in _base.layer_classes().items() if not c.__module__.startswith("npnet.")}
    found.update({k: c for k, c in _losses._BY_CLASS.items() if not c.__module__.startswith("npnet.")})
    found.update(_METRIC_CLASSES)
    found.update(_METRIC_FUNCTIONS)
    return found

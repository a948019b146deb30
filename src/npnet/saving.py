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

Loading a file from someone else is safe by construction: the loader refuses anything but
a regular file, checks every zip member's declared size against the manifest and the
file's size before decompressing it, caps the configuration (:data:`MAX_CONFIG_BYTES`,
:data:`MAX_LAYERS`), and accepts only finite float arrays; see the docs page "Security and
reliability".

Writes are atomic: the zip is written to a temporary file in the target's folder,
``.<name>.npnet-tmp-<pid>-<random>``, synced, given the target's permission mode and
renamed over the target, and then the folder is synced; so a crash, a kill or a full disk
mid-save leaves the previous file intact. A temporary file left by a killed save is
removed by the next save of the same target once the process that wrote it has died.
A symbolic link is written through: the file it points to is replaced, the link kept.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import threading
import warnings
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from . import _tape
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._config import floatx
from .layers import base as _base

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "SavedModelError", "FORMAT_VERSION",
           "MAX_CONFIG_BYTES", "MAX_LAYERS", "MAX_EXPANSION", "MAX_ITERATIONS",
           "register_keras_serializable", "get_custom_objects"]

FORMAT_VERSION = 3
_MODEL_FORMAT = "npnet.model"
_WEIGHTS_FORMAT = "npnet.weights"

#: The largest ``config.json`` a file may hold, in bytes (16 MiB; a model of 10,000 layers
#: needs about 6 MiB).
MAX_CONFIG_BYTES = 16 * 2**20
#: The most layers a saved model may list, counting the layers of nested models and the
#: layer calls of functional models.
MAX_LAYERS = 10_000
#: The members of a file may together expand to at most this many times the file's size
#: (plus 1 MiB): npnet stores members uncompressed, and a file recompressed with deflate
#: expands about 1.1 times, but a zip bomb a thousand times.
MAX_EXPANSION = 100
#: The largest optimizer step count a file may hold (that of a signed 64-bit integer, as
#: Keras stores it).
MAX_ITERATIONS = 2**63 - 1
_MAX_DEPTH = 100  # nesting of JSON objects and lists in config.json
_NPY_HEADER_BYTES = 16 * 1024  # room for an .npy header (numpy writes 128 bytes for small shapes)
_DTYPES = {"float16": 2, "float32": 4, "float64": 8}  # the array types a file may hold, and their sizes


class SavedModelError(ValueError):
    """A file could not be read as an npnet model or weights file; the message says why."""


# Metric classes and metric functions registered with register_keras_serializable, by name.
_METRIC_CLASSES: dict[str, type] = {}
_METRIC_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _check_bool(value: Any, argument: str, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: `{argument}` must be True or False, received {value!r}")
    return bool(value)


def _save_path(filepath: Any, where: str) -> str:
    """The target of a save as a str (a bytes path is decoded as the file system does)."""
    try:
        path = os.fsdecode(os.fspath(filepath))
    except TypeError:
        raise TypeError(f"{where}: `filepath` must be a str or path, received {filepath!r}") from None
    if not path:
        raise ValueError(f"{where}: `filepath` must be a file path such as 'model.npnet', received ''")
    return path


def _check_target(path: str, overwrite: Any, where: str) -> None:
    """Keras asks on the terminal before overwriting when ``overwrite=False``; npnet refuses."""
    if not _check_bool(overwrite, "overwrite", where) and os.path.exists(path):
        raise _target_error(FileExistsError, errno.EEXIST, f"{where}: {path!r} exists and overwrite=False; remove it, "
                            "choose another path or pass overwrite=True")


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _atomic_write(path: str, entries: list[tuple[str, bytes]], where: str = "save") -> None:
    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in entries:
                zf.writestr(name, data)

    _atomic_write_file(path, write, where)


# ---------------------------------------------------------------- writing files safely
# A temporary file is named ``.<target name>.npnet-tmp-<pid>-<8 hex digits>`` and lives in
# the target's folder, so a leftover of a killed save is recognisably npnet's own, tied to
# its target, and removed by the next save of that target once its process is dead.
_TMP_TAG = ".npnet-tmp-"
_MAX_STEM_BYTES = 160  # keeps the temporary name within the usual 255-byte limit
_WRITE_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only"}
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _temp_prefix(base: str) -> str:
    """The start of every temporary file name for a target named ``base``."""
    stem = base
    if len(os.fsencode(base)) > _MAX_STEM_BYTES:
        digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:16]
        while len(os.fsencode(stem)) > _MAX_STEM_BYTES - 17:
            stem = stem[:-1]
        stem = f"{stem}~{digest}"
    return f".{stem}{_TMP_TAG}"


# Temporary files this process is writing now, so that a save recognises them as live
# (another thread's) while a file carrying this process's id but not listed here is a
# leftover of an earlier process that had the same id, as a restarted container's often has.
_writing: set[str] = set()
_writing_lock = threading.Lock()
_CLOCK_SLACK = 2.0  # seconds: /proc/stat gives the boot time to the second


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _is_leftover(path: str, pid: int, mtime: float) -> bool:
    """Whether the temporary file ``path``, named for process ``pid`` and last written at
    ``mtime``, is one that no live process is writing; False when unsure."""
    if pid == os.getpid():
        with _writing_lock:
            return path not in _writing
    if pid <= 0 or os.name != "posix":
        return False  # elsewhere than POSIX, os.kill(pid, 0) would terminate the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it runs, under another user
        pass
    # A live process that started after the file was last written is not its writer: it
    # reuses the id of the dead one.
    started = _process_start_time(pid)
    return started is not None and started > mtime + _CLOCK_SLACK


def _remove_leftovers(folder: str, base: str) -> None:
    """Remove the temporary files of earlier saves of ``base`` whose process has died.

    Only names of the exact pattern for this target, only regular files (never a link or
    a folder), never a file a live process may be writing (see :func:`_is_leftover`).
    Failures are ignored: cleaning up never makes a save fail.
    """
    pattern = re.compile(re.escape(_temp_prefix(base)) + r"([0-9]{1,10})-[0-9a-f]{8}")
    try:
        with os.scandir(folder) as it:
            found = [(e.path, int(m.group(1)), e.stat(follow_symlinks=False).st_mtime) for e in it
                     if (m := pattern.fullmatch(e.name)) and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for leftover, pid, mtime in found:
        if _is_leftover(leftover, pid, mtime):
            try:
                os.unlink(leftover)  # never follows a link
            except OSError:
                pass


def _write_error(exc: OSError, where: str, path: str, doing: str) -> OSError:
    """``exc`` as the same kind of OSError (same class and errno) with a message naming the
    file, the reason and what was being done."""
    reason = exc.strerror or str(exc)
    if exc.errno in _WRITE_REASONS:
        reason += f" ({_WRITE_REASONS[exc.errno]})"
    cls = type(exc) if type(exc).__module__ == "builtins" else OSError
    error = cls(f"{where}: cannot write {path!r}: {reason} while {doing}; any previous file is unchanged and no "
                "temporary file is left")
    error.errno = exc.errno
    return error


def _target_error(cls: type[OSError], code: int, message: str) -> OSError:
    error = cls(message)
    error.errno = code
    return error


def _resolve_target(path: str, where: str) -> tuple[str, os.stat_result | None]:
    """The file a save replaces: ``path`` with symbolic links followed (a save writes
    through a link, as ``open`` does), and its status if it exists."""
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise _target_error(OSError, errno.ELOOP, f"{where}: cannot write {path!r}: it is a symbolic link that loops")
    try:
        st: os.stat_result | None = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):  # the folder is checked below
        st = None
    except OSError as exc:
        raise _write_error(exc, where, path, f"reading the status of {target!r}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _target_error(IsADirectoryError, errno.EISDIR,
                            f"{where}: {path!r} is a directory; give a file path such as 'model.npnet'")
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        raise _target_error(OSError, errno.EINVAL,
                            f"{where}: cannot write {path!r}: it is {kind}, not a regular file; a save writes a new "
                            "file and renames it over the target, which would replace it; give a file path")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        if os.path.lexists(folder):
            raise _target_error(NotADirectoryError, errno.ENOTDIR, f"{where}: {folder!r} is not a folder")
        raise _target_error(FileNotFoundError, errno.ENOENT, f"{where}: folder {folder!r} does not exist")
    return target, st


def _sync_folder(folder: str, where: str, path: str) -> None:
    """fsync ``folder``, so that the rename survives a power cut (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a folder we may write but not read: the rename stands, unsynced
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES):
            reason = exc.strerror or str(exc)
            error = type(exc) if type(exc).__module__ == "builtins" else OSError
            raise _target_error(error, exc.errno or 0,
                                f"{where}: {path!r} was written, but syncing its folder {folder!r} failed: {reason}; "
                                "the new file may not survive a power cut") from None
    finally:
        os.close(fd)


def _atomic_write_file(path: str, write: Callable[[IO[bytes]], Any], where: str) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file in the target's folder,
    which is synced, given the target's permission mode and renamed over the target; then
    the folder is synced.

    A symbolic link is written through (the file it points to is replaced, the link kept).
    An existing file keeps its permission mode (and, where allowed, its owner); a new file
    gets the mode ``open`` would give it (``0o666`` less the umask). Leftovers of earlier
    saves of the same target whose process has died are removed first. Any OSError comes
    out as the same kind of OSError naming the file and the reason; the previous file is
    then unchanged and the temporary file removed.
    """
    target, st = _resolve_target(path, where)
    folder, base = os.path.split(target)
    _remove_leftovers(folder, base)
    tmp = os.path.join(folder, f"{_temp_prefix(base)}{os.getpid()}-{secrets.token_hex(4)}")
    with _writing_lock:
        _writing.add(tmp)
    try:
        _write_temporary(tmp, target, st, write, where, path)
    finally:
        with _writing_lock:
            _writing.discard(tmp)
    _sync_folder(folder, where, path)


def _write_temporary(tmp: str, target: str, st: os.stat_result | None, write: Callable[[IO[bytes]], Any],
                     where: str, path: str) -> None:
    """Create ``tmp``, fill it, sync it and rename it over ``target``; remove it on failure."""
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    # Never more permissive than the final mode while the data is written.
    try:
        fd = os.open(tmp, flags, 0o666 if st is None else stat.S_IMODE(st.st_mode) & 0o666)
    except OSError as exc:
        raise _write_error(exc, where, path, f"creating a temporary file in the folder "
                           f"{os.path.dirname(tmp)!r}") from None
    doing = "writing the data"
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None and os.name == "posix":
                now = os.fstat(fd)
                if (now.st_uid, now.st_gid) != (st.st_uid, st.st_gid):
                    try:
                        os.fchown(fd, st.st_uid, st.st_gid)
                    except OSError:
                        pass  # without the privilege to, the file becomes the saver's
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
            write(f)
            doing = "flushing it to disk"
            f.flush()
            os.fsync(f.fileno())
        doing = f"renaming the temporary file over {target!r}"
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(exc, where, path, doing) from None
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
    if isinstance(value, dict) and set(value) == {"shape"} and isinstance(value["shape"], list) and all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in value["shape"]):
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
    OSError
        If the file cannot be written: a full disk, no permission, a missing folder
        (:class:`FileNotFoundError`), a directory (:class:`IsADirectoryError`), a target
        that is not a regular file (a pipe or device). The error is of the class and
        ``errno`` the system gave, and its message names the file and the reason; the
        previous file is then unchanged and no temporary file is left.

    Notes
    -----
    The file is written atomically (see :mod:`npnet.saving`): a temporary file in the
    target's folder is synced and renamed over the target, then the folder is synced. An
    existing file keeps its permission mode (and its owner, where the system allows); a
    new file gets the mode ``open`` would give it. A symbolic link is written through.
    Writing needs permission to create files in the target's folder.

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
    path = _save_path(filepath, "save")
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

    Raises
    ------
    OSError
        If the file cannot be written, naming the file and the reason, as
        :func:`save_model` does; the previous file is then unchanged.
    """
    path = _save_path(filepath, "save_weights")
    _check_target(path, overwrite, "save_weights")
    if not model.built:
        raise ValueError(f"save_weights: model {model.name!r} is not built; call fit(), build() or the model on data first")
    manifest, files = _weight_entries(model)
    header = _header(model, _WEIGHTS_FORMAT)
    header["weights"] = manifest
    _atomic_write(path, [("config.json", json.dumps(header, indent=1).encode("utf-8"))] + files, "save_weights")


def _open_regular_file(path: str) -> tuple[Any, int]:
    """Open ``path`` for reading if it is a regular file: a directory, device (``/dev/zero``),
    named pipe or socket is refused at once, never read (a pipe is opened without waiting
    for a writer)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SavedModelError(f"load: no file at {path!r}") from None
    except IsADirectoryError:
        raise SavedModelError(f"load: {path!r} is a directory, not an npnet file") from None
    except OSError as exc:
        raise SavedModelError(f"load: {path!r} cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SavedModelError(f"load: {path!r} is a directory, not an npnet file")
        if not stat.S_ISREG(info.st_mode):
            kind = ("a named pipe" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode)
                    or stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
            raise SavedModelError(f"load: {path!r} is {kind}, not a regular file; npnet reads model files only")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"


class _Reader:
    """Validating reader: every failure becomes a SavedModelError naming the file, and the
    member when one is at fault.

    Before anything is decompressed it checks the zip's directory: one entry per member,
    stored or deflated, not encrypted, together at most :data:`MAX_EXPANSION` times the
    file's size; ``config.json`` at most :data:`MAX_CONFIG_BYTES`. Once the JSON is read,
    every other member must be an array the manifest lists, once, and no larger than the
    manifest's shape and dtype allow; each array is then checked against its ``.npy``
    header before its data is read.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file, size = _open_regular_file(path)
        try:
            try:
                self.zf = zipfile.ZipFile(self._file, "r")
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
                raise SavedModelError(f"load: {path!r} is not an npnet file (not a readable zip: {exc})") from None
            try:
                self._check_members(size)
                self.header = self._read_header()
                self.entries = self._check_manifest()
            except BaseException:
                self.zf.close()
                raise
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zf.close()
        self._file.close()

    def _fail(self, message: str) -> SavedModelError:
        return SavedModelError(f"load: {self.path!r}: {message}")

    def _check_members(self, file_size: int) -> None:
        infos = self.zf.infolist()
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if name in seen:
                raise self._fail(f"member {name!r} appears twice in the zip (npnet writes each member once; "
                                 "the file may have been tampered with)")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise self._fail(f"member {name!r} is encrypted; npnet files are not")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._fail(f"member {name!r} uses zip compression method {info.compress_type}; npnet reads "
                                 "stored or deflated members only")
        self.names = seen
        self.infos = {info.filename: info for info in infos}
        total = sum(info.file_size for info in infos)
        allowed = MAX_EXPANSION * file_size + 2**20
        if total > allowed:
            worst = max(infos, key=lambda i: i.file_size / max(i.compress_size, 1))
            raise self._fail(
                f"member {worst.filename!r} declares {worst.file_size} bytes compressed into {worst.compress_size}; "
                f"the members would expand to {total} bytes from a file of {file_size} bytes, more than "
                f"npnet.saving.MAX_EXPANSION = {MAX_EXPANSION} times its size (a zip bomb?)")
        if "config.json" not in seen:
            raise SavedModelError(f"load: {self.path!r} has no config.json; it is not an npnet file")
        declared = self.infos["config.json"].file_size
        if declared > MAX_CONFIG_BYTES:
            raise self._fail(f"config.json is implausibly large ({declared} bytes; "
                             f"npnet.saving.MAX_CONFIG_BYTES = {MAX_CONFIG_BYTES})")

    def _read_header(self) -> dict[str, Any]:
        try:
            with self.zf.open("config.json") as fp:
                text = fp.read(MAX_CONFIG_BYTES + 1)
            header = json.loads(text.decode("utf-8"), parse_float=_json_float, parse_constant=_json_constant,
                                object_pairs_hook=_json_object)
        except Exception as exc:
            raise self._fail(f"config.json is unreadable: {type(exc).__name__}: {exc}") from None
        if not isinstance(header, dict):
            raise self._fail("config.json does not hold an object")
        version = header.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self._fail(f"config.json has no valid format_version (a positive integer), "
                             f"received {_short(version)}")
        if version > FORMAT_VERSION:
            raise SavedModelError(
                f"load: {self.path!r} uses format version {version}, newer than this npnet supports "
                f"({FORMAT_VERSION}); upgrade npnet"
            )
        if header.get("format") not in (_MODEL_FORMAT, _WEIGHTS_FORMAT):
            raise self._fail(f"unknown format {_short(header.get('format'))}")
        self._check_values(header)
        return header

    def _check_values(self, header: dict[str, Any]) -> None:
        """Walk the JSON once: its depth, the number of layers, and ``trainable`` flags."""
        layers = 0
        stack: list[tuple[Any, int]] = [(header, 0)]
        while stack:
            value, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise self._fail(f"config.json nests objects more than {_MAX_DEPTH} deep")
            if isinstance(value, dict):
                for key in ("layers", "nodes"):
                    if isinstance(value.get(key), list):
                        layers += len(value[key])
                if "trainable" in value and not isinstance(value["trainable"], bool):
                    where = value.get("name")
                    raise self._fail(
                        f"`trainable` must be true or false{'' if where is None else f' (layer {_short(where)})'}, "
                        f"received {_short(value['trainable'])}")
                stack.extend((v, depth + 1) for v in value.values())
            elif isinstance(value, list):
                stack.extend((v, depth + 1) for v in value)
        if layers > MAX_LAYERS:
            raise self._fail(f"the model lists {layers} layers and layer calls, more than "
                             f"npnet.saving.MAX_LAYERS = {MAX_LAYERS}")

    def _check_manifest(self) -> dict[str, tuple[dict[str, Any], str]]:
        """Every array the manifest lists, by member name, with what it is; checks each
        listed member's declared size against the shape and dtype the manifest gives it."""
        weights = self.header.get("weights")
        if not isinstance(weights, list):
            raise self._fail("config.json has no weights manifest")
        listed: list[tuple[Any, str]] = []
        for entry in weights:
            if isinstance(entry, dict):
                path = entry.get("path")
                if path is None and isinstance(entry.get("layer"), str) and isinstance(entry.get("key"), str):
                    path = f"{entry['layer']}/{entry['key']}"
                listed.append((entry, f"weight {path!r}"))
            else:
                listed.append((entry, "a weight"))
        state = self.header.get("optimizer_state")
        if state is not None:
            if not isinstance(state, dict) or not isinstance(state.get("slots"), dict):
                raise self._fail("malformed optimizer state")
            iterations = state.get("iterations")
            if (isinstance(iterations, bool) or not isinstance(iterations, int)
                    or not 0 <= iterations <= MAX_ITERATIONS):
                raise self._fail(f"invalid optimizer iterations {_short(iterations)}: expected an integer from 0 "
                                 f"to npnet.saving.MAX_ITERATIONS = 2**63 - 1")
            for slot, entries in state["slots"].items():
                if not isinstance(entries, list):
                    raise self._fail(f"malformed optimizer slot {slot!r}")
                for entry in entries:
                    path = entry.get("path") if isinstance(entry, dict) else None
                    listed.append((entry, f"optimizer slot {slot!r}" + ("" if path is None else f" of {path!r}")))
        found: dict[str, tuple[dict[str, Any], str]] = {}
        for entry, what in listed:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise self._fail(f"malformed manifest entry for {what}")
            fname = entry["file"]
            if fname in found:
                raise self._fail(f"member {fname!r} is listed twice in the manifest, for {found[fname][1]} and {what}")
            shape, dtype = entry.get("shape"), entry.get("dtype")
            if not (isinstance(shape, list) and len(shape) <= 32
                    and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
                raise self._fail(f"the manifest gives {what} ({fname!r}) the invalid shape {_short(shape)}")
            if dtype not in _DTYPES:
                raise self._fail(f"the manifest gives {what} ({fname!r}) the dtype {_short(dtype)}; "
                                 f"npnet files hold {', '.join(_DTYPES)} arrays")
            info = self.infos.get(fname)
            if info is not None:
                most = math.prod(shape) * _DTYPES[dtype] + _NPY_HEADER_BYTES
                if info.file_size > most:
                    raise self._fail(
                        f"member {fname!r} ({what}) declares {info.file_size} bytes, but an array of shape "
                        f"{tuple(shape)} and dtype {dtype} takes at most {most}")
            found[fname] = (entry, what)
        extra = sorted(self.names - set(found) - {"config.json"})
        if extra:
            raise SavedModelError(f"load: {self.path!r} holds unexpected files {extra[:5]} that the manifest does "
                                  "not list; it may have been tampered with")
        return found

    def array(self, entry: Any, what: str, nonnegative: bool = False) -> np.ndarray:
        """The array of a manifest entry as a new C-ordered floatx array, after checking its
        ``.npy`` header against the manifest and its values (finite; ``>= 0`` if asked)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise self._fail(f"malformed manifest entry for {what}")
        fname = entry["file"]
        if fname not in self.names:
            raise self._fail(f"array {fname!r} for {what} is missing")
        where = f"{fname!r} for {what}"
        try:
            with self.zf.open(fname) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                if dtype.hasobject:
                    raise self._fail(f"{fname!r} holds an object array, which npnet never writes and refuses "
                                     "to unpickle")
                if dtype.kind != "f" or dtype.fields is not None:
                    raise self._fail(f"{where} has dtype {dtype}, expected a float array")
                if list(shape) != entry.get("shape") or dtype.name != entry.get("dtype"):
                    raise self._fail(f"{where} has shape {shape} and dtype {dtype}, the manifest says "
                                     f"{tuple(entry.get('shape', []))} and {entry.get('dtype')}")
                nbytes = math.prod(shape) * dtype.itemsize
                size = self.infos[fname].file_size
                if fp.tell() + nbytes != size:
                    raise self._fail(f"member {where} declares {size} bytes, its .npy header "
                                     f"describes {fp.tell() + nbytes}")
                data = fp.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"the data ends after {len(data)} of {nbytes} bytes")
        except SavedModelError:
            raise
        except ValueError as exc:
            raise self._fail(f"{where} is not a valid .npy array: {exc}") from None
        except Exception as exc:
            raise self._fail(f"{where} could not be read: {type(exc).__name__}: {exc}") from None
        stored = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.array(stored, dtype=floatx(), order="C")
        if not np.isfinite(arr).all():
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            if np.isfinite(stored).all():
                raise self._fail(f"{where} holds {bad} values too large for {floatx()} (up to "
                                 f"{float(np.max(np.abs(stored))):.3g})")
            raise self._fail(f"{where} holds {bad} non-finite values (NaN or inf)")
        if nonnegative and (arr < 0).any():
            raise self._fail(f"{where} holds negative values (down to {float(arr.min()):.3g}); "
                             "the optimizer keeps this slot >= 0")
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
            # The model was built with placeholders (see Layer.add_weight): put real arrays in
            # (reader.array returns a new C-ordered floatx array).
            value = arr
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
    version = int(reader.header["format_version"])  # checked by the reader
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
        For anything but a valid file, naming the file and the member at fault: not a
        regular file, not a zip, truncated, a member that expands more than
        :data:`MAX_EXPANSION` allows or is larger than its manifest entry, duplicate,
        missing or extra members, wrong shapes or dtypes, object arrays, non-finite
        weights or slots, out-of-range counters, mistyped JSON values, more than
        :data:`MAX_LAYERS` layers, unknown layer classes, a newer format version.

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
        with reader:
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
                    positive = getattr(model.optimizer, "_nonnegative_slots", ())
                    for slot, entries in state["slots"].items():
                        entries = _order_slots(reader, entries, paths, slot)
                        slots[slot] = [reader.array(e, reader.entries[e["file"]][1], nonnegative=slot in positive)
                                       for e in entries]
                        used |= {e["file"] for e in entries}
                    iterations = state["iterations"]
                    model.optimizer.set_state({"iterations": iterations, "slots": slots}, model.trainable_weights)
            elif state is not None:
                used |= {e["file"] for entries in state["slots"].values() for e in entries}
            reader.check_no_extra(used)
    except SavedModelError as exc:
        raise _naming(exc, path) from None
    except Exception as exc:
        raise SavedModelError(f"load: {path!r} is corrupt or inconsistent: {type(exc).__name__}: {exc}") from None
    return model


def _naming(exc: SavedModelError, path: str) -> SavedModelError:
    """``exc``, with the file's path put in if its message does not name it."""
    message = str(exc)
    if repr(path) in message:
        return exc
    return SavedModelError(f"load: {path!r}: {message.removeprefix('load: ')}")


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
        with reader:
            if not model.built:
                model.build(_stored_shapes(reader))
            used = _assign_weights(reader, model, skip_mismatch=skip_mismatch)
            state = reader.header.get("optimizer_state")
            if state:
                used |= {e["file"] for entries in state["slots"].values() for e in entries}
            reader.check_no_extra(used)
    except SavedModelError as exc:
        raise _naming(exc, path) from None
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

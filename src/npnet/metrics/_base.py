"""The metric base class, its state variables, and the (weighted) mean and sum reductions."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Metric", "Variable", "Mean", "Sum", "MeanMetricWrapper"]


def _snake(name: str) -> str:
    """``TopKCategoricalAccuracy`` -> ``top_k_categorical_accuracy``, ``F1Score`` -> ``f1_score``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _to_result(value: Any) -> Any:
    """What ``result()`` hands out: a Python float for a scalar, a float ndarray (a copy) otherwise."""
    if isinstance(value, dict):
        return {k: _to_result(v) for k, v in value.items()}
    arr = np.asarray(value)
    if arr.ndim == 0:
        return float(arr)
    return np.array(arr, dtype=np.float64 if arr.dtype.kind in "biu" else arr.dtype)


class Variable(np.lib.mixins.NDArrayOperatorsMixin):
    """One piece of a metric's state: an array that ``reset_state`` sets back to its start.

    Arithmetic and NumPy functions see the current value (``v + 1``, ``np.sum(v)``);
    ``assign``, ``assign_add`` and ``assign_sub`` replace it. Created by
    :meth:`Metric.add_variable`.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.Metric(name="demo")
    >>> v = m.add_variable(shape=(2,), name="counts")
    >>> v.assign_add([1.0, 2.0])
    >>> v + 1
    array([2., 3.])
    """

    def __init__(self, value: np.ndarray, name: str | None = None, aggregation: str = "none") -> None:
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise TypeError(f"Variable: `value` must be a NumPy array of numbers, received {value!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Variable: `name` must be a string or None, received {name!r}")
        if not isinstance(aggregation, str) or aggregation not in _AGGREGATIONS:
            raise ValueError(f"Variable: `aggregation` must be one of {[a for a in _AGGREGATIONS if a]}, "
                             f"received {aggregation!r}")
        self.value = value
        self.name = name
        #: How a distributed run would combine replicas' values (Keras' argument; npnet
        #: runs in one process, so it is only stored).
        self.aggregation = aggregation
        self._initial = value.copy()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def ndim(self) -> int:
        return self.value.ndim

    def assign(self, value: Any) -> None:
        """Replace the value (broadcast to the variable's shape, cast to its dtype)."""
        value = np.asarray(value.value if isinstance(value, Variable) else value)
        try:
            self.value = np.array(np.broadcast_to(value, self.value.shape), dtype=self.value.dtype)
        except ValueError:
            raise ValueError(
                f"Variable {self.name!r}: cannot assign a value of shape {value.shape} "
                f"to a variable of shape {self.value.shape}") from None

    def assign_add(self, value: Any) -> None:
        """Add ``value`` to the current value."""
        self.assign(self.value + np.asarray(value.value if isinstance(value, Variable) else value))

    def assign_sub(self, value: Any) -> None:
        """Subtract ``value`` from the current value."""
        self.assign(self.value - np.asarray(value.value if isinstance(value, Variable) else value))

    def reset(self) -> None:
        """Set the value back to the initial one."""
        self.value = self._initial.copy()

    def numpy(self) -> np.ndarray:
        """A copy of the current value."""
        return self.value.copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self.value, dtype=dtype) if copy else np.asarray(self.value, dtype=dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(x.value if isinstance(x, Variable) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    def __len__(self) -> int:
        return len(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return f"<Variable {self.name!r} shape={self.value.shape} value={self.value!r}>"


class Metric:
    """Base class of metrics: state that accumulates over batches.

    A subclass creates its state in ``__init__`` with :meth:`add_variable`, and defines
    ``update_state(y_true, y_pred, sample_weight=None)`` (add one batch) and
    ``result()`` (the value so far). ``reset_state()`` sets every variable back to its
    initial value; override it if the state lives elsewhere. ``result()`` hands out a
    Python float for a scalar, a float ndarray for an array (one value per threshold or
    per class), or a dict of those.

    ``fit`` and ``evaluate`` reset each metric at the start of an epoch, update it on
    every batch and log ``result()`` under the metric's ``name``.

    Parameters
    ----------
    name : str, optional
        Key in training logs. Defaults to the class name in snake case.
    dtype : str or numpy dtype, optional
        A floating-point dtype for the state (``"float32"``, ``"float64"``, ...).
        Defaults to float64, so long runs accumulate exactly enough (Keras uses floatx).

    Notes
    -----
    The arguments are ``(name, dtype)``, in the order of every concrete metric (``Mean``,
    ``Precision``, ...); Keras' base class alone takes ``(dtype, name)``. Pass them by
    keyword, ``super().__init__(name=name, dtype=dtype)`` or
    ``super().__init__(name=name, **kwargs)``, and the same code runs in both.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> class TruePositives(npnet.metrics.Metric):
    ...     def __init__(self, name="true_positives", dtype=None):
    ...         super().__init__(name=name, dtype=dtype)
    ...         self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
    ...     def update_state(self, y_true, y_pred, sample_weight=None):
    ...         hits = (np.asarray(y_true) == 1) & (np.asarray(y_pred) > 0.5)
    ...         w = 1.0 if sample_weight is None else np.asarray(sample_weight)
    ...         self.tp.assign_add(np.sum(hits * w))
    ...     def result(self):
    ...         return self.tp
    >>> m = TruePositives()
    >>> m.update_state([1, 0, 1], [0.9, 0.8, 0.2])
    >>> m.update_state([1, 1], [0.7, 0.6], sample_weight=[0.5, 1.0])
    >>> m.result()
    2.5
    >>> m.reset_state()
    >>> m.result()
    0.0
    """

    name: str = "metric"

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string, received {name!r}")
        self.name = name if name is not None else _snake(type(self).__name__)
        self.dtype = None if dtype is None else _float_dtype(dtype, self._owner, name)
        self._variables: list[Variable] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "result" in vars(cls):
            raw = vars(cls)["result"]

            @functools.wraps(raw)
            def result(self: Metric) -> Any:
                return _to_result(raw(self))

            cls.result = result  # type: ignore[method-assign]

    @property
    def _owner(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    @property
    def _state_dtype(self) -> np.dtype:
        return np.dtype(self.dtype or "float64")

    def add_variable(self, shape: Any = (), initializer: Any = "zeros", dtype: Any = None,
                     aggregation: str | None = "sum", name: str | None = None) -> Variable:
        """Create a state variable that :meth:`reset_state` sets back to its initial value.

        The arguments are Keras' ``Metric.add_variable``'s, in its order.

        Parameters
        ----------
        shape : int or tuple of int, default ()
        initializer : str, Initializer, callable, number or array-like, default "zeros"
            A name or an object of :mod:`npnet.initializers` (``"zeros"``,
            ``npnet.initializers.Zeros()``, ...), any ``fn(shape, dtype)`` returning an
            array of ``shape``, or a value broadcast to ``shape``. ``None`` means zeros.
        dtype : str, optional
            Defaults to the metric's state dtype.
        aggregation : {"sum", "mean", "none", "only_first_replica", None}, default "sum"
            How a distributed run combines the replicas' values, as in Keras. npnet runs in
            one process, so it is only stored (``variable.aggregation``); ``None`` is
            ``"none"``.
        name : str, optional

        Returns
        -------
        Variable

        Examples
        --------
        >>> import npnet
        >>> m = npnet.metrics.Metric(name="demo")
        >>> v = m.add_variable(shape=(2,), initializer=npnet.initializers.Ones(), name="counts")
        >>> v.value, v.aggregation
        (array([1., 1.]), 'sum')
        """
        if "_variables" not in vars(self):
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() in __init__ before add_variable()")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{self._owner}: add_variable `name` must be a string, received {name!r}")
        where = f"{self._owner}: add_variable(name={name!r})"
        shape = _variable_shape(shape, where)
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"{where}: `aggregation` must be one of {list(_AGGREGATIONS)}, received {aggregation!r}")
        dt = self._state_dtype if dtype is None else _any_dtype(dtype, where)
        value = _initial_value(initializer, shape, dt, where)
        v = Variable(value, name, "none" if aggregation is None else aggregation)
        self._variables.append(v)
        return v

    def add_weight(self, shape: Any = (), initializer: Any = None, dtype: Any = None,
                   name: str | None = None) -> Variable:
        """Keras' older name for :meth:`add_variable`, with its argument order
        ``(shape, initializer, dtype, name)`` (no ``aggregation``)."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    @property
    def variables(self) -> list[Variable]:
        """The state variables created with :meth:`add_variable`."""
        return list(vars(self).get("_variables", []))

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Add one batch to the state."""
        raise NotImplementedError(f"{type(self).__name__} must define update_state()")

    def result(self) -> Any:
        """The metric's value over every batch since the last reset."""
        raise NotImplementedError(f"{type(self).__name__} must define result()")

    def reset_state(self) -> None:
        """Forget every batch seen: set each variable back to its initial value."""
        for v in self.variables:
            v.reset()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Update the state with one batch and return the result."""
        self.update_state(*args, **kwargs)
        return self.result()

    # Names used by earlier releases.
    def reset(self) -> None:
        """Same as :meth:`reset_state`."""
        self.reset_state()

    def update(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Same as :meth:`update_state`."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self) -> dict[str, Any]:
        """The arguments that rebuild this metric with :meth:`from_config`."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        """Build a metric from the output of :meth:`get_config`."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


# ---------------------------------------------------------------- arguments of Metric
_AGGREGATIONS = ("sum", "mean", "none", "only_first_replica", None)


def _float_dtype(dtype: Any, owner: str, name: Any) -> str:
    """The name of a floating-point ``dtype``, or an error naming ``owner`` and ``dtype``."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.kind != "f":
        hint = ""
        if isinstance(name, str) and re.fullmatch(r"b?float\d+|u?int\d+|bool|float|int", name):
            hint = ("; npnet's Metric takes (name, dtype) in that order, Keras' base class (dtype, name): "
                    "pass them by keyword")
        error = ValueError if isinstance(dtype, str) else TypeError
        raise error(f"{owner}: `dtype` must be a floating-point dtype such as 'float32' or 'float64', "
                    f"received {dtype!r}{hint}")
    return dt.name


def _any_dtype(dtype: Any, where: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.kind not in "biuf":
        error = ValueError if isinstance(dtype, str) else TypeError
        raise error(f"{where}: `dtype` must be a numeric dtype such as 'float64' or 'int64', received {dtype!r}")
    return dt


def _variable_shape(shape: Any, where: str) -> tuple[int, ...]:
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if items is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                                for d in items):
        raise TypeError(f"{where}: `shape` must be an int or a tuple of non-negative ints, received {shape!r}")
    return tuple(int(d) for d in items)


def _initial_value(initializer: Any, shape: tuple[int, ...], dt: np.dtype, where: str) -> np.ndarray:
    """The starting value of a metric variable, from any initializer Keras' ``add_variable`` takes."""
    from .. import initializers

    init = initializer
    if init is None:
        init = "zeros"
    if isinstance(init, str) and init in initializers._BY_CLASS:  # Keras also takes "Zeros"
        init = initializers._BY_CLASS[init]()
    if isinstance(init, type) and issubclass(init, initializers.Initializer):
        init = init()
    if isinstance(init, (str, dict)):
        init = initializers.get(init, owner=f"{where}: `initializer`")
    if callable(init):
        value = np.asarray(init(shape, dtype=dt.name))
        if value.shape != shape:
            raise ValueError(f"{where}: `initializer` {initializer!r} returned shape {value.shape}, "
                             f"expected {shape}")
        return np.array(value, dtype=dt)
    try:
        arr = np.asarray(init)
        ok = arr.dtype.kind in "biuf"
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(f"{where}: `initializer` must be an initializer name or object "
                        f"(npnet.initializers), a function of (shape, dtype), a number or an array, "
                        f"received {initializer!r} of type {type(initializer).__name__}")
    try:
        return np.array(np.broadcast_to(arr.astype(dt), shape))
    except ValueError:
        raise ValueError(f"{where}: `initializer` of shape {arr.shape} does not broadcast to the "
                         f"variable's shape {shape}") from None


# ---------------------------------------------------------------- shapes and weights
def same_rank(x1: np.ndarray, x2: np.ndarray, expand_rank_1: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Squeeze or expand a trailing axis of size 1 when the ranks differ by exactly one (Keras' rule)."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def as_numbers(x: Any, what: str, owner: str) -> np.ndarray:
    """``x`` as a numeric ndarray, or a TypeError naming ``what``."""
    arr = np.asarray(x.value if isinstance(x, Variable) else x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{owner}: `{what}` must hold numbers, received an array of dtype {arr.dtype}")
    return arr


def check_pair(y_true: Any, y_pred: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Both targets and predictions as arrays with the same number of samples."""
    t, p = as_numbers(y_true, "y_true", owner), as_numbers(y_pred, "y_pred", owner)
    if t.ndim and p.ndim and t.shape[0] != p.shape[0]:
        raise ValueError(f"{owner}: y_true and y_pred must have the same number of samples, "
                         f"received shapes {t.shape} and {p.shape}")
    return t, p


def reduce_to_samplewise(values: np.ndarray, sample_weight: Any, reduce_fn: Callable[..., np.ndarray],
                         dtype: np.dtype, owner: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Weighted per-sample values and per-sample weights, as Keras' Mean reduces them.

    The weight's rank is matched to the values' (a trailing axis of 1 squeezed or added),
    the values are reduced over the axes the weight lacks, multiplied by the broadcast
    weight, and both are reduced to one value per sample.
    """
    values = np.asarray(values, dtype=dtype)
    weight = None
    if sample_weight is not None:
        weight = as_numbers(sample_weight, "sample_weight", owner).astype(dtype)
        given = weight.shape
        values, weight = same_rank(values, weight)
        w_ndim = weight.ndim
        if values.ndim > w_ndim:
            values = reduce_fn(values, axis=tuple(range(w_ndim, values.ndim)))
        try:
            weight = np.broadcast_to(weight, values.shape)
        except ValueError:
            raise ValueError(f"{owner}: `sample_weight` of shape {given} does not broadcast to the "
                             f"per-sample values of shape {values.shape}") from None
        values = values * weight
        if w_ndim > 1:
            weight = reduce_fn(weight, axis=tuple(range(1, w_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, weight


class Sum(Metric):
    """The (weighted) sum of the values given to ``update_state(values, sample_weight=None)``.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.Sum()
    >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    >>> m.result()
    4.0
    """

    def __init__(self, name: str = "sum", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), name="total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        vals, _ = reduce_to_samplewise(as_numbers(values, "values", self._owner), sample_weight, np.sum,
                                       self._state_dtype, self._owner)
        self.total.assign_add(np.sum(vals))

    def result(self) -> Any:
        return self.total.value


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight=None)``.

    .. math:: \\text{result} = \\frac{\\sum_i w_i v_i}{\\sum_i w_i}

    over every sample of every batch since the last reset. A value of shape
    ``(batch, d1, ...)`` is first averaged to one value per sample. ``sample_weight``
    follows Keras: of shape ``(batch,)`` (or ``(batch, 1)``) it weights each sample;
    of the values' full shape it weights each entry (a sample then counts with the
    mean of its entry weights); a scalar weight turns the whole batch into one
    sample of that weight. A result over no weight at all is 0.

    Examples
    --------
    >>> import npnet
    >>> m = npnet.metrics.Mean()
    >>> m.update_state([1, 3, 5, 7])
    >>> m.result()
    4.0
    >>> m.reset_state()
    >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    >>> m.result()
    2.0
    """

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), name="total")
        self.count = self.add_variable(shape=(), name="count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        self._add(as_numbers(values, "values", self._owner), sample_weight)

    def _add(self, values: np.ndarray, sample_weight: Any) -> None:
        vals, weight = reduce_to_samplewise(values, sample_weight, np.mean, self._state_dtype, self._owner)
        self.total.assign_add(np.sum(vals))
        if weight is not None:
            self.count.assign_add(np.sum(weight))
        else:
            self.count.assign_add(vals.shape[0] if vals.ndim else 1)

    def result(self) -> Any:
        count = float(self.count.value)
        return float(self.total.value) / count if count != 0 else 0.0


class MeanMetricWrapper(Mean):
    """The (weighted) mean of ``fn(y_true, y_pred, **kwargs)``, one value per sample.

    Parameters
    ----------
    fn : callable
        ``fn(y_true, y_pred, **kwargs) -> ndarray of shape (batch, ...)``.
    name : str, optional
        Defaults to the function's name.
    dtype : str, optional
    **kwargs
        Passed on to ``fn``.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> def abs_error(y_true, y_pred):
    ...     return np.abs(np.asarray(y_true) - np.asarray(y_pred))
    >>> m = npnet.metrics.MeanMetricWrapper(abs_error)
    >>> m.update_state([1.0, 2.0], [1.5, 1.0], sample_weight=[3.0, 1.0])
    >>> m.result()
    0.625
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: `fn` must be callable, received {fn!r}")
        super().__init__(name=name if name is not None else getattr(fn, "__name__", "mean_metric_wrapper"),
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        t, p = check_pair(y_true, y_pred, self._owner)
        self._add(np.asarray(self._fn(t, p, **self._fn_kwargs)), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "fn": getattr(self._fn, "__name__", repr(self._fn)),
                **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        from . import _functions

        if cls is not MeanMetricWrapper:  # subclasses fix their function
            return cls(**config)
        config = dict(config)
        fn = config.pop("fn", None)
        if isinstance(fn, str):
            if fn not in _functions.BY_NAME:
                raise ValueError(f"MeanMetricWrapper.from_config: unknown metric function {fn!r}; "
                                 f"known: {sorted(_functions.BY_NAME)}")
            fn = _functions.BY_NAME[fn]
        return cls(fn, **config)

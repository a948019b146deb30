r"""Wrappers: layers that apply another layer in a new way.

:class:`TimeDistributed` applies one layer to every time step of a sequence;
:class:`Bidirectional` runs a recurrent layer over a sequence in both directions.

Both are *composite* layers: their ``call`` is written out of other layers and they have
no backward pass of their own. The reshaping they need is done by small private
primitives, each with its own forward and backward:

- ``_FoldTime``: ``(batch, time, ...)`` to ``(batch * time, ...)``, so that the wrapped
  layer sees every step as one more sample; backward reshapes ``dy`` back.
- ``_UnfoldTime``: the inverse, ``(batch * time, ...)`` to ``(batch, time, ...)``; it
  takes the original input as a second input only to read its batch and time sizes.
- ``_ReverseTime``: reverses the time axis, ``y[:, t] = x[:, T - 1 - t]``; its backward
  reverses ``dy`` the same way.
- ``_ZeroMaskedSteps``: multiplies each step by its mask entry (0 for a padded step); its
  backward multiplies ``dy`` the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _masks
from .base import Layer
from .merge import Add, Average, Concatenate, Multiply

__all__ = ["TimeDistributed", "Bidirectional"]


# ---------------------------------------------------------------- private primitives
class _FoldTime(Layer):
    r"""``(batch, time, ...)`` to ``(batch * time, ...)``: step ``t`` of sample ``b`` becomes
    row ``b * time + t``. Backward: ``dx = dy.reshape(x.shape)``.

    A mask of shape ``(batch, time)`` says nothing about one step on its own, so the
    output has none; a mask of higher rank, ``(batch, time, steps)``, is folded the same
    way into ``(batch * time, steps)`` (Keras gives the wrapped layer ``mask[:, t]``).
    """

    supports_masking = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.built = True

    def forward(self, x, training=False, mask=None):
        x = np.asarray(x)
        return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), x.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        return dy.reshape(cache)

    def compute_mask(self, inputs, mask=None):
        if mask is None or np.ndim(mask) < 3:
            return None
        mask = np.asarray(mask)
        return mask.reshape((mask.shape[0] * mask.shape[1],) + mask.shape[2:])

    def compute_output_shape(self, input_shape):
        n, steps = input_shape[0], input_shape[1]
        return (None if n is None or steps is None else n * steps,) + tuple(input_shape[2:])


class _UnfoldTime(Layer):
    r"""``[y, x]`` to ``y.reshape(x.shape[:2] + y.shape[1:])``: rows ``(batch * time, ...)``
    back into ``(batch, time, ...)``. ``x`` only lends its batch and time sizes: its
    gradient is None. Backward: ``dy`` reshaped to ``y``'s shape.

    The output takes the mask of ``x`` when it is a ``(batch, time)`` mask (Keras'
    TimeDistributed passes its input's mask on); a mask of higher rank was meant for the
    wrapped layer, which has used it, and the output gets none.
    """

    _multi_input = True
    supports_masking = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.built = True

    def _check_build_shapes(self, shapes):
        pass

    def _check_shapes(self, shapes):
        pass

    def forward(self, x, training=False, mask=None):
        y, seq = x
        return y.reshape(tuple(np.shape(seq)[:2]) + y.shape[1:]), y.shape

    def backward(self, cache, dy):
        self._require_cache(cache)
        return [dy.reshape(cache), None]

    def compute_mask(self, inputs, mask=None):
        seq_mask = mask[1] if isinstance(mask, (list, tuple)) else None
        return seq_mask if seq_mask is not None and np.ndim(seq_mask) == 2 else None

    def compute_output_shape(self, input_shape):
        y, seq = input_shape
        return (seq[0], seq[1]) + tuple(y[1:])


class _ReverseTime(Layer):
    r"""Reverse the time axis: :math:`y_{b, t} = x_{b, T-1-t}`; backward reverses ``dy``.

    The mask is passed on unchanged: the layer turns the output of a ``go_backwards``
    recurrent layer (last step first) back into time order, and that output carries its
    input's mask in time order already (as in Keras).
    """

    supports_masking = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.built = True

    def forward(self, x, training=False, mask=None):
        x = np.asarray(x)
        return np.ascontiguousarray(x[:, ::-1]), ()

    def backward(self, cache, dy):
        self._require_cache(cache)
        return np.ascontiguousarray(dy[:, ::-1])


class _ZeroMaskedSteps(Layer):
    r"""Zero the masked steps: :math:`y_{b, t} = m_{b, t} \, x_{b, t}`, and
    :math:`dx = m \, dy`. Without a mask, the identity.

    Keras' Bidirectional sets ``zero_output_for_mask`` on its layers when they return
    sequences: a masked step outputs zeros rather than repeating the previous output.
    """

    supports_masking = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.built = True

    def forward(self, x, training=False, mask=None):
        x = np.asarray(x)
        if mask is None:
            return x, (None,)
        m = np.asarray(mask, dtype=bool)
        keep = m.reshape(m.shape + (1,) * (x.ndim - m.ndim)).astype(x.dtype)
        return x * keep, (keep,)

    def backward(self, cache, dy):
        self._require_cache(cache)
        (keep,) = cache
        return dy if keep is None else dy * keep


def _check_layer(layer: Any, owner: str, argument: str = "layer") -> None:
    if not isinstance(layer, Layer):
        raise TypeError(f"{owner}: `{argument}` must be an npnet layer instance, received {layer!r}")


def _layer_config(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _rank_of(x: Any) -> tuple[int, tuple]:
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    return len(shape), shape


# ---------------------------------------------------------------- TimeDistributed
class TimeDistributed(Layer):
    r"""Apply a layer to every time step of a sequence, with one set of weights.

    For an input of shape ``(batch, time, ...)`` the output is

    .. math::
        y_{b, t} = f(x_{b, t}) \quad \text{for every step } t,

    where :math:`f` is the wrapped layer. The steps are folded into the batch axis,
    ``(batch * time, ...)``, the wrapped layer runs once on all of them, and the result is
    unfolded to ``(batch, time, ...)``. Its gradients therefore sum over the steps.

    Parameters
    ----------
    layer : Layer
        Any npnet layer or model that takes ``(batch, ...)``: ``Dense``, ``Conv2D`` on a
        video ``(batch, time, height, width, channels)``, ``Dropout``, a ``Sequential``.
    name : str, optional
    trainable : bool, default True

    Notes
    -----
    A mask on the input ``(batch, time)`` is passed on to the output, as Keras does. A
    mask with more axes, ``(batch, time, steps)``, is folded like the input and reaches
    the wrapped layer (a recurrent layer over each step's own sequence, for example).
    The wrapped layer sees all steps as one batch: a ``BatchNormalization`` inside
    computes its statistics over ``batch * time`` rows.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> layer = npnet.layers.TimeDistributed(npnet.layers.Dense(3))
    >>> x = np.ones((2, 5, 4), dtype="float32")
    >>> layer(x).shape
    (2, 5, 3)
    >>> layer.layer.params["kernel"].shape
    (4, 3)
    """

    _graph_from_config = True  # from_config takes custom_objects for the wrapped layer

    def __init__(self, layer: Layer, name: str | None = None, trainable: bool = True) -> None:
        _check_layer(layer, "TimeDistributed")
        super().__init__(name=name, trainable=trainable)
        self.layer = layer
        self._fold = _FoldTime(name=f"{self.name}_fold")
        self._unfold = _UnfoldTime(name=f"{self.name}_unfold")

    def _children(self) -> list[tuple[str, Layer]]:
        return [(self.layer.name, self.layer)]

    def _check_input(self, inputs: Any) -> None:
        if isinstance(inputs, (list, tuple, dict)):
            raise TypeError(f"{self._owner}: expected one input tensor (batch, time, ...), "
                            f"received a {type(inputs).__name__}")
        rank, shape = _rank_of(inputs)
        if rank < 3:
            raise ValueError(f"{self._owner}: expected input of rank >= 3 (batch, time, ...), "
                             f"received shape {shape}")

    def call(self, inputs: Any, training: bool = False, mask: Any = None) -> Any:
        self._check_input(inputs)
        if mask is not None:
            m_shape = np.shape(mask)
            if len(m_shape) < 2 or tuple(m_shape[:2]) != tuple(np.shape(inputs)[:2]):
                raise ValueError(f"{self._owner}: expected a mask of shape {tuple(np.shape(inputs)[:2])} "
                                 f"(batch, time), received {tuple(m_shape)}")
        fold_kw: dict[str, Any] = {} if mask is None else {"mask": mask}
        folded = self._fold(inputs, **fold_kw)
        y = self.layer(folded, training=training)
        if isinstance(y, (list, tuple, dict)):
            raise ValueError(f"{self._owner}: the wrapped layer {self.layer._owner} returned "
                             f"{len(y)} outputs; TimeDistributed needs a layer with one output")
        unfold_kw: dict[str, Any] = {} if mask is None else {"mask": [None, mask]}
        return self._unfold([y, inputs], **unfold_kw)

    def compute_output_shape(self, input_shape: Any) -> Any:
        from ..models.sequential import _output_shape

        shape = tuple(input_shape)
        if len(shape) < 3:
            raise ValueError(f"{self._owner}: expected input of rank >= 3 (batch, time, ...), "
                             f"received shape {shape}")
        n, steps = shape[0], shape[1]
        inner = _output_shape(self.layer, (None if n is None or steps is None else n * steps,) + shape[2:])
        return (n, steps) + tuple(inner[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": _layer_config(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> TimeDistributed:
        from ..models.sequential import _layer_from

        config = dict(config)
        layer = _layer_from(config.pop("layer"), custom_objects)
        return super().from_config({**config, "layer": layer})  # type: ignore[return-value]


# ---------------------------------------------------------------- Bidirectional
_MERGE_MODES = ("sum", "mul", "ave", "concat", None)
_RECURRENT_ATTRIBUTES = ("go_backwards", "return_sequences", "return_state")


def _remove_prefix(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    r"""Run a recurrent layer over a sequence forwards and backwards, and merge the two.

    A forward copy of ``layer`` reads the steps in order; a backward copy (the same
    layer with ``go_backwards=True``, or ``backward_layer``) reads them from the last.
    With ``return_sequences=True`` the backward outputs are put back in time order, so
    that step :math:`t` of the result sees the whole sequence:

    .. math::
        y_t = \operatorname{merge}\big(\overrightarrow{h}_t, \overleftarrow{h}_t\big)

    with merge ``"concat"`` (along the last axis), ``"sum"``, ``"mul"``, ``"ave"``
    (:math:`(a + b) / 2`) or ``None`` (the two as a list).

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The forward layer is rebuilt from its config (fresh weights, named
        ``forward_<name>``); any layer with ``go_backwards``, ``return_sequences`` and
        ``return_state`` and a ``get_config`` works.
    merge_mode : {"concat", "sum", "mul", "ave", None}, default "concat"
    weights : list of ndarray, optional
        Initial weights: the first half for the forward layer, the rest for the backward
        layer (each in its ``get_weights`` order).
    backward_layer : layer, optional
        The layer for the backward direction, with ``go_backwards`` opposite to
        ``layer``'s and the same ``return_sequences`` and ``return_state``. By default a
        copy of ``layer`` with ``go_backwards=True``, named ``backward_<name>``.
    name : str, optional
    trainable : bool, default True

    Notes
    -----
    With ``return_sequences=True`` and a mask, the masked steps of both halves are zeros
    (Keras sets ``zero_output_for_mask`` on the wrapped layers).

    Call arguments: ``mask`` (passed to both directions) and ``initial_state``: a list of
    the forward states followed by the backward states (``[h_f, c_f, h_b, c_b]`` for an
    LSTM); the first half goes to the forward layer, the second to the backward one.

    With ``return_state=True`` the output is ``[merged, *forward_states,
    *backward_states]`` (``[y_forward, y_backward, *forward_states, *backward_states]``
    with ``merge_mode=None``).

    The weights are saved under ``<bidirectional>/forward_<name>/...`` and
    ``<bidirectional>/backward_<name>/...``; ``get_weights`` lists the forward layer's
    weights, then the backward layer's.

    Examples
    --------
    >>> import numpy as np, npnet
    >>> layer = npnet.layers.Bidirectional(npnet.layers.LSTM(3, return_sequences=True))
    >>> x = np.ones((2, 5, 4), dtype="float32")
    >>> layer(x).shape
    (2, 5, 6)
    >>> layer.forward_layer.name.startswith("forward_"), layer.backward_layer.go_backwards
    (True, True)
    """

    _graph_from_config = True  # from_config takes custom_objects for the wrapped layers

    def __init__(self, layer: Layer, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Layer | None = None, name: str | None = None, trainable: bool = True) -> None:
        owner = "Bidirectional"
        _check_layer(layer, owner)
        if backward_layer is not None:
            _check_layer(backward_layer, owner, "backward_layer")
        for what, candidate in (("layer", layer), ("backward_layer", backward_layer)):
            if candidate is not None and not all(hasattr(candidate, a) for a in _RECURRENT_ATTRIBUTES):
                raise ValueError(
                    f"{owner}: `{what}` must be a recurrent layer (SimpleRNN, LSTM, GRU, or a layer with "
                    f"go_backwards, return_sequences and return_state), received {candidate._owner}")
        if not (merge_mode is None or (isinstance(merge_mode, str) and merge_mode in _MERGE_MODES)):
            raise ValueError(f"{owner}: `merge_mode` must be one of 'concat', 'sum', 'mul', 'ave' or None, "
                             f"received {merge_mode!r}")
        super().__init__(name=name, trainable=trainable)
        config = layer.get_config()
        config["name"] = "forward_" + _remove_prefix(layer.name, "forward_")
        # Any: a recurrent layer (it has go_backwards, return_sequences, return_state)
        forward: Any = type(layer).from_config(config)
        self.forward_layer = forward
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = True
            config["name"] = "backward_" + _remove_prefix(layer.name, "backward_")
            backward_layer = type(layer).from_config(config)
        self.backward_layer: Any = backward_layer
        self._verify_layers()
        self.merge_mode = merge_mode
        self.return_sequences = bool(forward.return_sequences)
        self.return_state = bool(forward.return_state)
        self.stateful = bool(getattr(forward, "stateful", False))
        self._pending_weights: list[Any] | None = None
        if weights is not None and len(weights):  # Keras ignores an empty list
            weights = list(weights)
            if len(weights) % 2:
                raise ValueError(f"{self._owner}: `weights` must hold the forward layer's weights followed by "
                                 f"the backward layer's (an even number), received {len(weights)} arrays")
            self._pending_weights = weights
        self._reverse = _ReverseTime(name=f"{self.name}_reverse")
        self._zero = _ZeroMaskedSteps(name=f"{self.name}_zero_masked")
        merge = {"concat": Concatenate, "sum": Add, "mul": Multiply, "ave": Average}.get(merge_mode or "")
        self._merge = None if merge is None else merge(name=f"{self.name}_{merge_mode}")

    def _verify_layers(self) -> None:
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError(
                f"{self._owner}: the forward and backward layers must have different `go_backwards`, received "
                f"go_backwards={f.go_backwards} for both ({f._owner} and {b._owner})")
        for a in ("stateful", "return_sequences", "return_state"):
            if getattr(f, a, False) != getattr(b, a, False):
                raise ValueError(
                    f"{self._owner}: the forward and backward layers must have the same `{a}`, received "
                    f"{getattr(f, a, False)} for {f._owner} and {getattr(b, a, False)} for {b._owner}")
        if f.name == b.name:
            raise ValueError(f"{self._owner}: the forward and backward layers must have different names, "
                             f"both are named {f.name!r}")

    def _children(self) -> list[tuple[str, Layer]]:
        return [(self.forward_layer.name, self.forward_layer), (self.backward_layer.name, self.backward_layer)]

    def _n_states(self, layer: Layer) -> int:
        return len(getattr(layer, "_states", ("h",)))

    # ------------------------------------------------------------ calling
    def __call__(self, inputs: Any, training: bool | None = None, initial_state: Any = None, **kwargs: Any) -> Any:
        """Apply the layer: ``layer(x)`` or ``layer(x, initial_state=[*forward, *backward])``,
        which is the same as ``layer([x, *forward, *backward])``."""
        if initial_state is not None:
            if isinstance(inputs, (list, tuple)):
                raise TypeError(f"{self._owner}: pass the initial states either in the input list or as "
                                "initial_state=, not both")
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            inputs = [inputs, *states]
        return super().__call__(inputs, training=training, **kwargs)

    def _build_inner(self, shape: tuple) -> None:
        """Build both layers now (for ``weights=``) and set the initial weights."""
        from ._symbolic import Input

        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                if layer._is_composite():
                    layer(Input(shape=shape[1:]))
                else:
                    layer._check_build_spec(shape)
                    layer._build_from((None,) + tuple(shape[1:]))
        weights: list[Any] = self._pending_weights or []
        self._pending_weights = None
        half = len(weights) // 2
        for layer, part in ((self.forward_layer, weights[:half]), (self.backward_layer, weights[half:])):
            try:
                layer.set_weights(part)
            except ValueError as exc:
                raise ValueError(f"{self._owner}: `weights` do not fit the layers: {exc}") from None

    def call(self, inputs: Any, training: bool = False, mask: Any = None) -> Any:
        if isinstance(inputs, dict):
            raise TypeError(f"{self._owner}: expected a sequence tensor, received a dict")
        if isinstance(inputs, (list, tuple)):
            seq, states = inputs[0], list(inputs[1:])
            if isinstance(mask, (list, tuple)):
                mask = mask[0] if mask else None
        else:
            seq, states = inputs, []
        rank, shape = _rank_of(seq)
        if rank != 3:
            raise ValueError(f"{self._owner}: expected input of rank 3 (batch, timesteps, features), "
                             f"received shape {shape}")
        if self._pending_weights is not None:
            self._build_inner(shape)
        fkw: dict[str, Any] = {"training": training}
        bkw: dict[str, Any] = {"training": training}
        if mask is not None:
            fkw["mask"] = bkw["mask"] = mask
        if states:
            nf, nb = self._n_states(self.forward_layer), self._n_states(self.backward_layer)
            if len(states) != nf + nb:
                raise ValueError(
                    f"{self._owner}: expected {nf + nb} initial states ({nf} for the forward layer, then {nb} "
                    f"for the backward layer), received {len(states)}")
            fkw["initial_state"], bkw["initial_state"] = states[:nf], states[nf:]
        y = self.forward_layer(seq, **fkw)
        y_rev = self.backward_layer(seq, **bkw)
        f_states: list[Any] = []
        b_states: list[Any] = []
        if self.return_state:
            y, f_states = y[0], list(y[1:])
            y_rev, b_states = y_rev[0], list(y_rev[1:])
        if self.return_sequences:
            y_rev = self._reverse(y_rev)
            if mask is not None or _masks.get_mask(y) is not None:
                # masked steps output zeros, as Keras' zero_output_for_mask
                zkw = {} if mask is None else {"mask": mask}
                y, y_rev = self._zero(y, **zkw), self._zero(y_rev, **zkw)
        output = [y, y_rev] if self._merge is None else [self._merge([y, y_rev])]
        if self.return_state:
            return output + f_states + b_states
        return output if self._merge is None else output[0]

    def compute_output_shape(self, input_shape: Any) -> Any:
        seq = tuple(input_shape[0]) if isinstance(input_shape, list) else tuple(input_shape)
        out = self.forward_layer.compute_output_shape(seq)
        states: list[Any] = []
        if self.return_state:
            out, states = out[0], list(out[1:])
        out = tuple(out)
        outputs = [out, out] if self.merge_mode is None else [
            out[:-1] + (None if out[-1] is None else 2 * out[-1],) if self.merge_mode == "concat" else out]
        if self.return_state:
            return outputs + states + states
        return outputs if self.merge_mode is None else outputs[0]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Keras' rule: the input mask for each sequence output (``return_sequences=True``),
        else None; None for each state."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        out = mask if self.return_sequences else None
        outputs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            n = self._n_states(self.forward_layer) + self._n_states(self.backward_layer)
            return outputs + [None] * n
        return outputs if self.merge_mode is None else out

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "merge_mode": self.merge_mode, "layer": _layer_config(self.forward_layer),
                "backward_layer": _layer_config(self.backward_layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Bidirectional:
        from ..models.sequential import _layer_from

        config = dict(config)
        layer = _layer_from(config.pop("layer"), custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            backward = _layer_from(backward, custom_objects)
        return super().from_config({**config, "layer": layer, "backward_layer": backward})  # type: ignore[return-value]

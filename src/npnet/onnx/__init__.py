"""Export to ONNX: train in NumPy, serve with onnxruntime (or any ONNX runtime).

:func:`export` (also :meth:`npnet.Model.export` with ``format="onnx"``) traces a model in
inference mode and writes each primitive layer call as ONNX operators, with the
``onnx`` package's helpers alone. It needs the optional extra: ``pip install "npnet[onnx]"``;
importing npnet never imports ``onnx``.

Each layer class has a converter (:func:`register_converter`); a layer without one is
refused with an error naming it, never exported approximately.
"""

from ._export import DEFAULT_OPSET, MIN_OPSET, export
from ._graph import ExportContext, converters, register_converter, register_mask_converter

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportContext", "converters", "export", "register_converter",
           "register_mask_converter"]

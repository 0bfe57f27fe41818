"""Run a small ONNX graph as a differentiable ``torch.nn.Module``.

Pretrained face recognisers ship as ONNX files; losses need gradients through them.
:class:`OnnxGraphModule` rebuilds the graph node by node from its initializers, for
the operators convolutional recognisers use (Conv, BatchNormalization, PRelu, Relu,
Add, Sub, Mul, Gemm, MatMul, Flatten, Reshape, Dropout, pooling, Identity). Any
other operator is refused up front with its name, never approximated.

Weights become buffers (constants of the graph) and BatchNormalization runs with
its stored statistics, as in inference: the module computes exactly what the ONNX
file computes, and :meth:`torch.nn.Module.to` moves it to a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["SUPPORTED_OPS", "OnnxGraphModule", "UnsupportedOnnxError"]


class UnsupportedOnnxError(ValueError):
    """The graph uses an operator or an attribute this converter does not implement."""


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(a: dict, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedOnnxError("Conv with auto_pad is not supported")
    pads = list(a.get("pads", [0] * (2 * (w.dim() - 2))))
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    if begin != end:  # asymmetric padding: pad explicitly (F.pad takes the last dim first)
        spec = [p for pair in zip(reversed(begin), reversed(end)) for p in pair]
        x, padding = F.pad(x, spec), 0
    else:
        padding = begin
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[w.dim()]
    return conv(
        x,
        w,
        b,
        stride=a.get("strides", 1),
        padding=padding,
        dilation=a.get("dilations", 1),
        groups=a.get("group", 1),
    )


def _batchnorm(a: dict, x, scale, bias, mean, var) -> torch.Tensor:
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=a.get("epsilon", 1e-5))


def _prelu(a: dict, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    # ONNX broadcasts the slope, (C, 1, 1) for images; F.prelu wants (C,)
    return torch.where(x >= 0, x, x * slope)


def _gemm(a: dict, x, w, b=None) -> torch.Tensor:
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = a.get("alpha", 1.0) * (x @ w)
    if b is not None:
        y = y + a.get("beta", 1.0) * b
    return y


def _flatten(a: dict, x: torch.Tensor) -> torch.Tensor:
    axis = a.get("axis", 1)
    return x.flatten(axis) if axis > 0 else x.reshape(1, -1)


def _reshape(a: dict, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    dims = [int(d) for d in shape.tolist()]
    dims = [x.shape[i] if d == 0 and not a.get("allowzero", 0) else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _pool(kind: str) -> Callable[..., torch.Tensor]:
    def run(a: dict, x: torch.Tensor) -> torch.Tensor:
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or a.get("ceil_mode", 0):
            raise UnsupportedOnnxError(f"{kind} with auto_pad or ceil_mode is not supported")
        pads = a.get("pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            raise UnsupportedOnnxError(f"{kind} with asymmetric pads is not supported")
        kernel, strides = a["kernel_shape"], a.get("strides", 1)
        if kind == "MaxPool":
            return F.max_pool2d(x, kernel, strides, pads[:2])
        include = bool(a.get("count_include_pad", 0))
        return F.avg_pool2d(x, kernel, strides, pads[:2], count_include_pad=include)

    return run


OPS: dict[str, Callable[..., torch.Tensor]] = {
    # each takes (attributes, *inputs); an omitted optional input arrives as None
    "Conv": _conv,
    "BatchNormalization": _batchnorm,
    "PRelu": _prelu,
    "Relu": lambda a, x: F.relu(x),
    "Sigmoid": lambda a, x: torch.sigmoid(x),
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y,
    "Gemm": _gemm,
    "MatMul": lambda a, x, y: x @ y,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": lambda a, x, *rest: x,  # inference: identity
    "Identity": lambda a, x: x,
    "GlobalAveragePool": lambda a, x: x.mean(dim=(2, 3), keepdim=True),
    "MaxPool": _pool("MaxPool"),
    "AveragePool": _pool("AveragePool"),
}
SUPPORTED_OPS = tuple(sorted(OPS))


class OnnxGraphModule(torch.nn.Module):
    """An ONNX ``ModelProto`` with one input and one output, as a torch module.

    ``forward(x)`` evaluates the nodes in graph order. Initializers are registered
    as buffers named after the ONNX tensors (dots replaced), so ``state_dict()``
    holds every weight and ``.to(device, dtype)`` moves them.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        unsupported = sorted({n.op_type for n in graph.node} - set(OPS))
        if unsupported:
            raise UnsupportedOnnxError(
                f"ONNX graph {graph.name!r} uses operator(s) {', '.join(unsupported)}; "
                f"supported: {', '.join(SUPPORTED_OPS)}"
            )
        weights = {t.name for t in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in weights]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise UnsupportedOnnxError(
                f"ONNX graph {graph.name!r} must have one input and one output, "
                f"got inputs {inputs} and {len(graph.output)} outputs"
            )
        self.input_name = inputs[0]
        self.output_name = graph.output[0].name
        self._buffer_names: dict[str, str] = {}
        for tensor in graph.initializer:
            array = numpy_helper.to_array(tensor).copy()
            key = "w_" + tensor.name.replace(".", "_")
            self._buffer_names[tensor.name] = key
            self.register_buffer(key, torch.from_numpy(array))
        self._nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in graph.node]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.input_name: x}
        for name, key in self._buffer_names.items():
            values[name] = getattr(self, key)
        for op, inputs, outputs, attrs in self._nodes:
            args = [values[i] if i else None for i in inputs]
            values[outputs[0]] = OPS[op](attrs, *args)
        return values[self.output_name]

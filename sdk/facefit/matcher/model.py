"""The matcher network: SFace split into a frozen trunk and a trainable tail.

The sketch matcher keeps SFace's architecture and changes only the weights of its
last layers, so the trained network is still "the SFace graph" and exports to ONNX
by writing the new weights into that graph:

- :func:`graph_prefix` — the ONNX graph up to a tensor (``conv_13_relu`` by default),
  run once with ONNX Runtime to precompute the frozen trunk's features;
- :class:`GraphTail` — the nodes after that tensor as a torch module whose weights are
  ``nn.Parameter``\\ s (BatchNormalization keeps its stored statistics, as in
  inference; only its scale and shift train; Dropout is active in training mode);
- :func:`with_weights` — the full graph with some initializers replaced: the export.

The same split works on any single-input, single-output graph made of the operators
of :mod:`facefit.weights.onnx_torch` whose tail does not reach back before the split (no skip
connection across it); anything else is refused with the reason.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facefit.errors import InputError
from facefit.weights.onnx_graphs import batchable

__all__ = [
    "DEFAULT_SPLIT",
    "GraphTail",
    "batchable",
    "graph_nodes_after",
    "graph_prefix",
    "load_base",
    "model_digest",
    "run_prefix",
    "split_points",
    "with_weights",
]

DEFAULT_SPLIT = "conv_13_relu"
"""SFace tensor where training starts: conv_14 (1024 channels, 7×7), bn1 and the embedding
layer (pre_fc1 + fc1) train; conv_1 … conv_13 stay as published."""

_FROZEN_INPUTS = {"BatchNormalization": (3, 4), "Reshape": (1,)}
"""Inputs that never train: BatchNormalization's stored statistics, Reshape's shape."""


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _input_name(model: Any) -> str:
    weights = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise InputError(
            f"ONNX graph {model.graph.name!r}: the matcher needs one input and one output, "
            f"got inputs {inputs} and {len(model.graph.output)} outputs"
        )
    return inputs[0]


def load_base(path: str | Path | None = None) -> Any:
    """The base SFace ONNX model (``facefit.weights.resolve("sface", path)``), batchable.

    As :func:`facefit_plugins.face_encoders.sface.load_sface_onnx`: weights are removed from the graph
    inputs and the batch dimension becomes ``N``; the file is not changed.
    """
    import onnx

    from facefit.weights import resolve

    return batchable(onnx.load(str(resolve("sface", path))))


def split_points(model: Any) -> list[str]:
    """Tensors where ``model`` can be split: outputs of its nodes, in graph order."""
    return [n.output[0] for n in model.graph.node[:-1]]


def _split_index(model: Any, split: str) -> int:
    for index, node in enumerate(model.graph.node):
        if split in node.output:
            if index == len(model.graph.node) - 1:
                break
            return index
    points = split_points(model)
    shown = ", ".join(points[-8:])
    raise InputError(
        f"split tensor {split!r} is not an inner node output of graph {model.graph.name!r}; "
        f"choose one of its node outputs (the last ones: {shown})"
    )


def graph_nodes_after(model: Any, split: str) -> list[Any]:
    """The nodes that compute the output from ``split`` (checked to need nothing earlier)."""
    index = _split_index(model, split)
    tail = list(model.graph.node[index + 1 :])
    known = {split} | {t.name for t in model.graph.initializer}
    for node in tail:
        missing = [i for i in node.input if i and i not in known]
        if missing:
            raise InputError(
                f"cannot split graph {model.graph.name!r} at {split!r}: node {node.name!r} "
                f"also reads {', '.join(missing)} from before the split (a skip connection); "
                "split after it"
            )
        known.update(node.output)
    return tail


def graph_prefix(model: Any, split: str) -> Any:
    """An ONNX model computing tensor ``split`` from the input: the frozen trunk."""
    import onnx
    from onnx import helper

    index = _split_index(model, split)
    nodes = list(model.graph.node[: index + 1])
    used = {i for n in nodes for i in n.input}
    initializers = [t for t in model.graph.initializer if t.name in used]
    input_name = _input_name(model)
    inputs = [copy.deepcopy(i) for i in model.graph.input if i.name == input_name]
    output = helper.make_tensor_value_info(split, onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, f"{model.graph.name}-to-{split}", inputs, [output])
    graph.initializer.extend(initializers)
    prefix = helper.make_model(graph, opset_imports=list(model.opset_import))
    prefix.ir_version = model.ir_version
    return prefix


def model_digest(model: Any) -> str:
    """sha256 of a model's serialised bytes (to key caches and name versions)."""
    return hashlib.sha256(model.SerializeToString()).hexdigest()


def run_prefix(
    prefix: Any, crops: np.ndarray, *, batch_size: int = 32, threads: int = 0, progress=None
) -> np.ndarray:
    """Run the trunk on ``(N, S, S, 3)`` uint8 RGB crops with ONNX Runtime → float16 features.

    ``progress``: an optional callable given the number of crops done after each batch.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads > 0:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        prefix.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    out: np.ndarray | None = None
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size]
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        features = session.run(None, {input_name: blob})[0]
        if out is None:
            out = np.empty((len(crops), *features.shape[1:]), np.float16)
        out[start : start + len(batch)] = features
        if progress is not None:
            progress(len(batch))
    if out is None:
        raise InputError("run_prefix: no crops given")
    return out


class GraphTail(nn.Module):
    """The nodes of an ONNX graph after tensor ``split``, as a trainable torch module.

    ``forward(features)`` takes the split tensor (e.g. ``(N, 1024, 7, 7)``) and returns the
    graph's output. Every weight is an ``nn.Parameter`` (named after its ONNX tensor in
    :meth:`onnx_weights`) except BatchNormalization's stored mean and variance, which stay
    buffers: batch normalization always uses them, in training too, so a small
    fine-tuning set cannot shift the statistics the rest of the network was trained with.
    Dropout nodes drop with their ONNX ratio in training mode.
    """

    def __init__(self, model: Any, split: str) -> None:
        super().__init__()
        from onnx import numpy_helper

        from facefit.weights.onnx_torch import OPS, SUPPORTED_OPS

        nodes = graph_nodes_after(model, split)
        unsupported = sorted({n.op_type for n in nodes} - set(OPS))
        if unsupported:
            raise InputError(
                f"graph {model.graph.name!r} uses operator(s) {', '.join(unsupported)} after "
                f"{split!r}; supported: {', '.join(SUPPORTED_OPS)}"
            )
        self.split = split
        self.output_name = model.graph.output[0].name
        frozen = {
            node.input[i]
            for node in nodes
            for i in _FROZEN_INPUTS.get(node.op_type, ())
            if i < len(node.input)
        }
        initializers = {t.name: t for t in model.graph.initializer}
        self._keys: dict[str, str] = {}
        self.params = nn.ParameterDict()
        self.consts = nn.Module()
        for name in dict.fromkeys(i for n in nodes for i in n.input if i in initializers):
            key = "w_" + "".join(c if c.isalnum() else "_" for c in name)
            self._keys[name] = key
            value = torch.from_numpy(numpy_helper.to_array(initializers[name]).copy())
            if name in frozen or not value.is_floating_point():
                self.consts.register_buffer(key, value)
            else:
                self.params[key] = nn.Parameter(value)
        self._nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in nodes]
        self._ops = OPS

    def _value(self, name: str) -> torch.Tensor:
        key = self._keys[name]
        return self.params[key] if key in self.params else getattr(self.consts, key)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.split: features}
        for name in self._keys:
            values[name] = self._value(name)
        for op, inputs, outputs, attrs in self._nodes:
            args = [values[i] if i else None for i in inputs]
            if op == "Dropout":
                values[outputs[0]] = F.dropout(
                    args[0], float(attrs.get("ratio", 0.5)), self.training
                )
            else:
                values[outputs[0]] = self._ops[op](attrs, *args)
        return values[self.output_name]

    def trainable(self) -> list[nn.Parameter]:
        """The parameters fine-tuning updates."""
        return list(self.params.values())

    def trainable_names(self) -> list[str]:
        """ONNX names of the weights fine-tuning updates."""
        return [name for name, key in self._keys.items() if key in self.params]

    def onnx_weights(self) -> dict[str, np.ndarray]:
        """Every weight of the tail, named after its ONNX initializer, as float32 arrays."""
        return {name: self._value(name).detach().cpu().numpy() for name in self._keys}


def with_weights(model: Any, weights: Mapping[str, np.ndarray]) -> Any:
    """A copy of ``model`` whose initializers named in ``weights`` hold the new values.

    Shapes and dtypes must match the originals; an unknown name is an error.
    """
    from onnx import numpy_helper

    out = copy.deepcopy(model)
    index = {t.name: i for i, t in enumerate(out.graph.initializer)}
    unknown = sorted(set(weights) - set(index))
    if unknown:
        raise InputError(f"with_weights: graph has no initializer(s) {', '.join(unknown)}")
    for name, value in weights.items():
        old = out.graph.initializer[index[name]]
        array = np.asarray(value)
        reference = numpy_helper.to_array(old)
        if array.shape != reference.shape:
            raise InputError(
                f"with_weights: {name} has shape {array.shape}, the graph wants {reference.shape}"
            )
        new = numpy_helper.from_array(array.astype(reference.dtype), name)
        out.graph.initializer[index[name]].CopyFrom(new)
    return out
